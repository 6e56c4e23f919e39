//! The keyspace: `databases` logical DBs, each split into Codis' 1024 per-slot
//! tables (codis.md §2.1), each table behind its own mutex.
//!
//! * The slot is the unit of atomicity: a command locks the slots of its keys
//!   (ascending order, so multi-key commands never deadlock) for the whole
//!   command; whole-DB operations (FLUSHDB, SWAPDB) lock every slot. A later
//!   migration step can serialize and delete a key while holding its slot.
//! * Keys are hashed with a per-process random ahash seed (client-controlled
//!   keys; bucket order leaks through SCAN/KEYS).
//! * Per-DB atomic counters make DBSIZE O(1); per-slot atomic counts serve
//!   SLOTSINFO and RANDOMKEY without locking.
//! * Expiry: lazy on every lookup, plus [`Keyspace::active_expire`] with a time
//!   budget (Redis' active expire cycle).
//! * SCAN cursor = `slot | bucket << 10 | table_generation << 48`: the slot's
//!   hashbrown table bumps its generation whenever an insert may relocate
//!   entries (growth or in-place rehash); a cursor from an older generation
//!   restarts that slot, so keys present for the whole scan are never missed
//!   (duplicates are allowed by SCAN's contract).

pub mod entry;

use smallvec::SmallVec;
use std::cell::{RefCell, RefMut};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;
use protocol::slot::{SLOTS, hash_tag, slot_of};

pub use entry::{Entry, Kind, Object, ValueRef};

/// One slot's keys. Kept small (88 bytes with its mutex): every DB has
/// 1024 of them from the start, and that memory counts against maxmemory.
#[derive(Default)]
pub struct SlotTable {
    table: HashTable<Entry>,
    /// Where the active expire cycle resumes in this slot.
    expire_cursor: u32,
    /// Bumped whenever entries may have moved between buckets (wrapping:
    /// only compared for equality, and SCAN keeps 15 bits of it).
    generation: u32,
    /// Codis' tag index (codis.md §2.1): full CRC-32 of the hash tag → the
    /// keys of this slot that have a tag. All keys of one tag CRC share a
    /// slot, so the index lives per slot and moves with it (SWAPDB, FLUSH).
    /// Kept exact by `t_insert`/`t_remove`, the only paths that add or drop
    /// keys.
    /// Boxed: most slots never hold a tagged key.
    tags: Option<Box<TagIndex>>,
    /// The snapshot epoch this slot was last armed for (see [`Snapshots`]);
    /// kept across FLUSH and moved by SWAPDB, as `mark` is. The epoch's low
    /// 32 bits, never 0 for an armed slot (see [`epoch32`]).
    snap_epoch: u32,
    /// The snapshot bit ([`Entry::snap_bit`]) of a key written into the
    /// snapshot of `snap_epoch`. Arming a slot flips it, so every key of the
    /// slot is then pending; keys created later get it at once (they are
    /// not in the snapshot). Outside a snapshot every key of the slot has it.
    mark: bool,
    /// The snapshot this slot's keys are still being written for.
    snap: Option<Box<SlotSnap>>,
}

/// A slot's share of a snapshot in progress: how many of the keys it had
/// at the snapshot point are not written yet.
struct SlotSnap {
    epoch: u64,
    /// The DB the slot had at the snapshot point (SWAPDB may move the
    /// table; the file keeps the snapshot's DB).
    db: usize,
    pending: usize,
    saver: std::sync::Arc<dyn SlotSaver>,
    /// The big value the walker is writing in slices.
    big: Option<Box<[u8]>>,
}

thread_local! {
    /// Set while a command that changes nothing runs during a snapshot
    /// (the executor's [`ReadOnly`] guard): its lookups need not write the
    /// key they find into the snapshot first.
    static READ_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How this thread's command treats expired keys ([`Expiry`]).
    static EXPIRY: std::cell::Cell<Expiry> = const { std::cell::Cell::new(Expiry::Delete) };
}

/// How lookups treat a key past its expiry (Redis' `expireIfNeeded`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expiry {
    /// A master's: the key is deleted (and its DEL propagated).
    Delete,
    /// A replica's master client: the key is there until the master's
    /// DEL removes it.
    Keep,
    /// A replica's other clients: the key reads as missing, and stays.
    Hide,
}

/// Sets this thread's [`Expiry`] for as long as the guard lives.
pub struct ExpiryScope(Expiry);

impl ExpiryScope {
    pub fn enter(mode: Expiry) -> ExpiryScope {
        ExpiryScope(EXPIRY.with(|c| c.replace(mode)))
    }
}

impl Drop for ExpiryScope {
    fn drop(&mut self) {
        EXPIRY.with(|c| c.set(self.0));
    }
}

fn expiry() -> Expiry {
    EXPIRY.with(|c| c.get())
}

/// Marks this thread's command as one that changes nothing (or as one that
/// may change keys), for as long as the guard lives; the previous state
/// comes back on drop (EXEC runs commands of both kinds inside itself).
pub struct ReadOnly(bool);

impl ReadOnly {
    pub fn enter(read_only: bool) -> ReadOnly {
        ReadOnly(READ_ONLY.with(|c| c.replace(read_only)))
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        READ_ONLY.with(|c| c.set(self.0));
    }
}

impl SlotTable {
    /// Before `key`'s entry may change or go: if it is still pending in the
    /// snapshot in progress, it is written first, as it is now (the hot
    /// path reads one field).
    #[inline(always)]
    fn settle(&mut self, h: u64, key: &[u8]) {
        if self.snap.is_some() {
            self.settle_slow(h, key);
        }
    }

    /// [`SlotTable::settle`] for a lookup that hands out a mutable entry:
    /// skipped when the running command changes nothing, so reading a big
    /// value during a snapshot does not serialize it on the reader's path.
    #[inline(always)]
    fn settle_lookup(&mut self, h: u64, key: &[u8]) {
        if self.snap.is_some() && !READ_ONLY.with(|c| c.get()) {
            self.settle_slow(h, key);
        }
    }

    #[cold]
    #[inline(never)]
    fn settle_slow(&mut self, h: u64, key: &[u8]) {
        let mark = self.mark;
        let Some(sn) = self.snap.as_mut() else {
            return;
        };
        let Some(e) = self.table.find_mut(h, |e| e.key() == key) else {
            return;
        };
        if e.snap_bit() == mark {
            return;
        }
        if sn.saver.live() {
            if sn.big.as_deref() == Some(key) {
                sn.saver.finish_key(sn.db, e);
                sn.big = None;
            } else {
                sn.saver.save_key(sn.db, e);
            }
        }
        e.set_snap_bit(mark);
        sn.pending -= 1;
        if sn.pending == 0 {
            self.snap = None;
        }
    }

    /// Writes every pending key of the slot now (it is about to be
    /// emptied).
    fn settle_all(&mut self) {
        let Some(sn) = self.snap.take() else {
            return;
        };
        let mark = self.mark;
        let live = sn.saver.live();
        for e in self.table.iter_mut() {
            if e.snap_bit() == mark {
                continue;
            }
            if live {
                if sn.big.as_deref() == Some(e.key()) {
                    sn.saver.finish_key(sn.db, e);
                } else {
                    sn.saver.save_key(sn.db, e);
                }
            }
            e.set_snap_bit(mark);
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// Counters shared by a DB's slots.
#[derive(Default)]
pub struct DbCounters {
    keys: AtomicUsize,
    expires: AtomicUsize,
    /// Keys per slot (u32: 4 bytes per slot of every DB, all allocated at
    /// start, count against `used_memory_startup`).
    slot_keys: Vec<AtomicU32>,
    /// Keys with an expiry per slot (eviction's volatile sampling).
    slot_expires: Vec<AtomicU32>,
}

/// One logical database.
pub struct Db {
    /// This DB's index (held lock sets are keyed by DB and slot).
    index: usize,
    slots: Vec<Mutex<SlotTable>>,
    counters: DbCounters,
    /// Stats of lazily / actively expired keys for INFO.
    pub expired: AtomicU64,
}

/// All databases plus the shared hasher.
pub struct Keyspace {
    dbs: Vec<Db>,
    hasher: ahash::RandomState,
    /// Who hears of keys created and keys expired (the server: keyspace
    /// notifications, WATCH, propagation of the expiry's DEL). Set once
    /// after the server that owns this keyspace exists.
    events: std::sync::OnceLock<std::sync::Weak<dyn KeyEvents>>,
    /// Whether `KeyEvents::created` is wanted (`new` notifications are on);
    /// the insert path reads only this when they are off.
    pub created_events: AtomicBool,
    /// The point-in-time snapshot in progress, if any.
    snap: Snapshots,
}

/// Writes keys into a point-in-time snapshot (persist/), each exactly once,
/// as it was at the snapshot point. Called with the key's slot locked.
pub trait SlotSaver: Send + Sync {
    /// Whether `e` is written in slices by the walker (`slice_key`) rather
    /// than in one go.
    fn is_big(&self, e: &Entry) -> bool;
    /// Adds `e`'s record to this thread's batch; returns the batch's size.
    fn add(&self, e: &Entry) -> usize;
    /// Hands this thread's batch to the snapshot as keys of DB `db`.
    fn commit(&self, db: usize);
    /// Writes `e` in one go (a client is about to change it).
    fn save_key(&self, db: usize, e: &Entry) {
        self.add(e);
        self.commit(db);
    }
    /// Writes the next slice of big value `e` (the walker, with the slot
    /// locked); true once its whole record is written.
    fn slice_key(&self, db: usize, e: &Entry) -> bool {
        self.save_key(db, e);
        true
    }
    /// Writes the rest of the big value in slices `e` now (it is about to
    /// change).
    fn finish_key(&self, db: usize, e: &Entry);
    /// Whether the snapshot still takes writes (an abandoned one does not).
    fn live(&self) -> bool {
        true
    }
}

/// Forkless point-in-time snapshots (Dragonfly's versioning, per key on
/// our slots): a snapshot has an epoch, set while every slot is locked (so
/// no command is half-done). The first lock of a slot afterwards arms it
/// (flips its mark: O(1)), making each of its keys pending; a pending key
/// is written out, as it is, before anything changes or drops it
/// ([`SlotTable::settle`]: one key, never the whole slot), and a walker
/// locking every slot in turn writes the rest in bounded batches. The hot
/// path pays one relaxed atomic load per slot lock and one field test per
/// key change.
#[derive(Default)]
struct Snapshots {
    /// The active epoch, 0 when none.
    active: AtomicU64,
    /// The last epoch handed out.
    last: AtomicU64,
    saver: Mutex<Option<std::sync::Arc<dyn SlotSaver>>>,
}

/// The part of a snapshot epoch a slot keeps ([`SlotTable::snap_epoch`]):
/// epochs whose low 32 bits are 0 are skipped, so an armed slot never looks
/// like one never armed.
#[inline]
fn epoch32(epoch: u64) -> u32 {
    epoch as u32
}

/// Serialized bytes the walker writes per slot lock.
const WALK_BATCH: usize = 16 * 1024;

/// Locks one slot table, arming it for the snapshot in progress first if it
/// is not yet.
#[inline]
fn lock<'m>(ks: &Keyspace, db: usize, m: &'m Mutex<SlotTable>) -> MutexGuard<'m, SlotTable> {
    // A panic while holding a slot (a bug) must not take the slot down with it.
    let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
    let epoch = ks.snap.active.load(Ordering::Relaxed);
    if epoch != 0 && g.snap_epoch != epoch32(epoch) {
        ks.arm_slot(db, epoch, &mut g);
    }
    g
}

/// Changes the DB layer makes on its own, reported while the key's slot is
/// still locked (so what the listener emits is ordered with the slot's
/// other changes).
pub trait KeyEvents: Send + Sync {
    /// `key` of DB `db` was found expired and removed (lazily or by the
    /// active cycle): Redis' `deleteExpiredKeyAndPropagate`.
    fn expired(&self, db: usize, key: &[u8]);
    /// `key` of DB `db` was created (Redis' `dbAdd` `new` event); called only
    /// while `created_events` is set.
    fn created(&self, db: usize, key: &[u8]);
}

impl Keyspace {
    pub fn new(databases: usize) -> Self {
        let dbs = (0..databases.max(1)).map(Db::new).collect();
        Keyspace {
            dbs,
            hasher: ahash::RandomState::new(),
            events: std::sync::OnceLock::new(),
            created_events: AtomicBool::new(false),
            snap: Snapshots::default(),
        }
    }

    #[cold]
    #[inline(never)]
    fn arm_slot(&self, db: usize, epoch: u64, t: &mut SlotTable) {
        if t.snap.take().is_some() {
            // An abandoned snapshot left keys pending: the marks become
            // uniform again (once per slot, only after an aborted save).
            let mark = t.mark;
            for e in t.table.iter_mut() {
                e.set_snap_bit(mark);
            }
        }
        t.snap_epoch = epoch32(epoch);
        if t.table.is_empty() {
            return;
        }
        let saver = self
            .snap
            .saver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // The epoch may have ended between the load and here: then there is
        // no saver, and nothing to write.
        if let Some(saver) = saver
            && self.snap.active.load(Ordering::Relaxed) == epoch
        {
            t.mark = !t.mark;
            t.snap = Some(Box::new(SlotSnap {
                epoch,
                db,
                pending: t.table.len(),
                saver,
                big: None,
            }));
        }
    }

    /// Starts a point-in-time snapshot written through `saver`: locks every
    /// slot of every DB (waiting for commands in flight), calls `at_start`
    /// with them all held (sizes, the propagation offset: whatever must be
    /// taken at the same instant), arms the epoch, and unlocks. Returns the
    /// epoch; [`Keyspace::snapshot_walk`] then completes it.
    pub fn snapshot_begin(
        &self,
        saver: std::sync::Arc<dyn SlotSaver>,
        at_start: impl FnOnce(&Keyspace),
    ) -> u64 {
        let mut guards = Vec::with_capacity(self.dbs.len() * SLOTS);
        for db in &self.dbs {
            for m in &db.slots {
                guards.push(lock(self, db.index, m));
            }
        }
        at_start(self);
        let mut epoch = self.snap.last.fetch_add(1, Ordering::Relaxed) + 1;
        if epoch32(epoch) == 0 {
            epoch = self.snap.last.fetch_add(1, Ordering::Relaxed) + 1;
        }
        *self.snap.saver.lock().unwrap_or_else(|p| p.into_inner()) = Some(saver);
        self.snap.active.store(epoch, Ordering::Relaxed);
        drop(guards);
        epoch
    }

    /// Writes out every key still pending in snapshot `epoch` (DB by DB,
    /// slot by slot, `WALK_BATCH` bytes or one slice of a big value per
    /// lock), calling `progress` before each lock; `progress` returning
    /// false abandons the walk. Returns whether it completed. The epoch
    /// ends either way.
    pub fn snapshot_walk(&self, epoch: u64, mut progress: impl FnMut() -> bool) -> bool {
        let mut complete = true;
        'all: for db in &self.dbs {
            for m in &db.slots {
                // Bucket cursor; restarted when the table moves entries.
                let mut cursor = 0;
                let mut generation = None;
                let mut found = false;
                loop {
                    if self.snap.active.load(Ordering::Relaxed) != epoch || !progress() {
                        complete = false;
                        break 'all;
                    }
                    let mut g = lock(self, db.index, m);
                    if self.walk_step(&mut g, epoch, &mut cursor, &mut generation, &mut found) {
                        break;
                    }
                }
            }
        }
        self.snapshot_end(epoch);
        complete
    }

    /// One lock's worth of the walk through slot table `t`; true once
    /// nothing of it is pending.
    fn walk_step(
        &self,
        t: &mut SlotTable,
        epoch: u64,
        cursor: &mut usize,
        generation: &mut Option<u64>,
        found: &mut bool,
    ) -> bool {
        let mark = t.mark;
        let Some(sn) = t.snap.as_mut() else {
            return true;
        };
        if sn.epoch != epoch {
            return true;
        }
        if let Some(k) = sn.big.as_deref() {
            let h = self.hash(k);
            // (Always found: a change or a drop settles it first.)
            if let Some(e) = t.table.find_mut(h, |e| e.key() == k) {
                if !sn.saver.slice_key(sn.db, e) {
                    return false;
                }
                e.set_snap_bit(mark);
                sn.pending -= 1;
            }
            sn.big = None;
        } else {
            if *generation != Some(t.generation as u64) {
                *generation = Some(t.generation as u64);
                *cursor = 0;
            }
            let n = t.table.num_buckets();
            let mut any = false;
            while *cursor < n {
                if let Some(e) = t.table.get_bucket_mut(*cursor)
                    && e.snap_bit() != mark
                {
                    any = true;
                    if sn.saver.is_big(e) {
                        sn.big = Some(e.key().into());
                        break;
                    }
                    let batch = sn.saver.add(e);
                    e.set_snap_bit(mark);
                    sn.pending -= 1;
                    if sn.pending == 0 || batch >= WALK_BATCH {
                        *cursor += 1;
                        break;
                    }
                }
                *cursor += 1;
            }
            sn.saver.commit(sn.db);
            *found |= any;
            if *cursor >= n && sn.pending != 0 && sn.big.is_none() {
                // Keys still pending behind the cursor: they moved. A pass
                // from the start that finds none means the count is off (a
                // bug): the slot is let go rather than walked forever.
                debug_assert!(*found, "pending count without pending keys");
                if !*found {
                    t.snap = None;
                    return true;
                }
                *cursor = 0;
                *found = false;
            }
        }
        if t.snap.as_ref().is_some_and(|sn| sn.pending == 0) {
            t.snap = None;
        }
        t.snap.is_none()
    }

    /// Ends snapshot `epoch` (if it is still the active one): slots not yet
    /// written are never written.
    pub fn snapshot_end(&self, epoch: u64) {
        if self
            .snap
            .active
            .compare_exchange(epoch, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            *self.snap.saver.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// The snapshot in progress (0 when none).
    pub fn snapshot_active(&self) -> u64 {
        self.snap.active.load(Ordering::Relaxed)
    }

    /// Registers the listener of [`KeyEvents`] (once).
    pub fn set_events(&self, l: std::sync::Weak<dyn KeyEvents>) {
        let _ = self.events.set(l);
    }

    #[inline]
    fn on_expired(&self, db: usize, key: &[u8]) {
        if let Some(l) = self.events.get().and_then(|w| w.upgrade()) {
            l.expired(db, key);
        }
    }

    #[inline]
    fn on_created(&self, db: usize, key: &[u8]) {
        if self.created_events.load(Ordering::Relaxed)
            && let Some(l) = self.events.get().and_then(|w| w.upgrade())
        {
            l.created(db, key);
        }
    }

    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    pub fn db(&self, i: usize) -> Option<&Db> {
        self.dbs.get(i)
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Direct locking (no caller-held set): migration, expiry, tests.
    #[inline]
    pub fn locker(&self) -> Locker<'_> {
        Locker {
            ks: self,
            held: None,
            one: None,
        }
    }

    /// Locks the slot of `key` in DB `db`.
    #[inline]
    pub fn lock_key<'a>(&'a self, db: &'a Db, key: &[u8]) -> SlotRef<'a> {
        self.locker().lock_key(db, key)
    }

    #[inline]
    pub fn lock_slot<'a>(&'a self, db: &'a Db, slot: usize) -> SlotRef<'a> {
        self.locker().lock_slot(db, slot)
    }

    /// Locks slot `slot` of DB `db` if nobody holds it now (eviction never
    /// waits for a slot a migration or a transaction holds).
    pub fn try_lock_slot<'a>(&'a self, db: &'a Db, slot: usize) -> Option<SlotRef<'a>> {
        let slot = slot & (SLOTS - 1);
        Some(SlotRef {
            t: SlotGuard::Own(try_lock(self, db.index, &db.slots[slot])?),
            db,
            ks: self,
            slot,
        })
    }

    /// Locks slot `slot` of DB `db` for a caller that lends the table to a
    /// command ([`OneSlot`]); `None` when there is no such DB.
    #[inline]
    pub fn lock_slot_table(&self, db: usize, slot: usize) -> Option<MutexGuard<'_, SlotTable>> {
        let s = slot & (SLOTS - 1);
        Some(lock(self, db, &self.dbs.get(db)?.slots[s]))
    }

    /// Locks every slot of the given keys (ascending, deduplicated).
    pub fn lock_keys<'a, 'k, I: IntoIterator<Item = &'k [u8]>>(
        &'a self,
        db: &'a Db,
        keys: I,
    ) -> MultiRef<'a> {
        self.locker().lock_keys(db, keys)
    }

    /// FLUSHDB without a held lock set.
    pub fn flush_db(&self, i: usize) -> usize {
        self.locker().flush_db(i)
    }

    /// SWAPDB without a held lock set.
    pub fn swap_db(&self, a: usize, b: usize) {
        self.locker().swap_db(a, b)
    }

    /// SCAN step without a held lock set (see [`Locker::scan`]).
    pub fn scan<'a>(
        &'a self,
        db: &'a Db,
        cursor: u64,
        count: usize,
        now: u64,
        f: impl FnMut(&Entry, bool),
    ) -> u64 {
        self.locker().scan(db, cursor, count, now, f)
    }

    pub fn random_key<'a>(&'a self, db: &'a Db, now: u64) -> Option<Vec<u8>> {
        self.locker().random_key(db, now)
    }

    /// One active-expiry pass over all DBs, stopping after `budget`.
    /// Returns the number of keys removed.
    pub fn active_expire(&self, now_ms: u64, budget: std::time::Duration) -> usize {
        let start = std::time::Instant::now();
        let mut removed = 0;
        for db in &self.dbs {
            if db.counters.expires.load(Ordering::Relaxed) == 0 {
                continue;
            }
            for s in 0..SLOTS {
                let mut r = self.lock_slot(db, s);
                if db.counters.slot_expires[s].load(Ordering::Relaxed) == 0 {
                    continue;
                }
                removed += r.expire_some(now_ms, 256);
                drop(r);
                if start.elapsed() >= budget {
                    return removed;
                }
            }
        }
        removed
    }
}

impl Db {
    fn new(index: usize) -> Self {
        Db {
            index,
            slots: (0..SLOTS)
                .map(|_| Mutex::new(SlotTable::default()))
                .collect(),
            counters: DbCounters {
                keys: AtomicUsize::new(0),
                expires: AtomicUsize::new(0),
                slot_keys: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
                slot_expires: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            },
            expired: AtomicU64::new(0),
        }
    }

    /// Number of keys (DBSIZE), including expired keys not yet reclaimed.
    pub fn len(&self) -> usize {
        self.counters.keys.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This DB's index.
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn expires(&self) -> usize {
        self.counters.expires.load(Ordering::Relaxed)
    }

    /// Keys in one slot (SLOTSINFO).
    pub fn slot_len(&self, slot: usize) -> usize {
        self.counters
            .slot_keys
            .get(slot)
            .map_or(0, |c| c.load(Ordering::Relaxed) as usize)
    }

    /// Keys with an expiry in one slot.
    pub fn slot_expires(&self, slot: usize) -> usize {
        self.counters
            .slot_expires
            .get(slot)
            .map_or(0, |c| c.load(Ordering::Relaxed) as usize)
    }
}

/// Values at least this big (heap bytes) are freed on a background thread
/// (Redis' lazy free): dropping millions of elements takes long enough to
/// stall every client of the event loop.
pub const LAZY_FREE_BYTES: usize = 64 * 1024;

/// Drops `e`: inline when small, else on the one "lazy-free" thread.
pub fn drop_later(e: Entry) {
    if e.heap_size() < LAZY_FREE_BYTES {
        return;
    }
    type Queue = Mutex<std::sync::mpsc::Sender<Entry>>;
    static WORKER: std::sync::OnceLock<Option<Queue>> = std::sync::OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Entry>();
        std::thread::Builder::new()
            .name("lazy-free".into())
            .spawn(move || {
                while let Ok(v) = rx.recv() {
                    drop(v);
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    if let Some(tx) = worker {
        // If the worker is gone the entry comes back and is dropped here.
        let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(e);
    }
}

/// Current time in unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Redis' 24-bit LRU clock (seconds resolution).
pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) & 0xff_ffff) as u32
}

/// Table operations shared by the single-slot and multi-slot guards.
#[allow(clippy::too_many_arguments)]
fn t_find<'t>(
    ks: &Keyspace,
    t: &'t mut SlotTable,
    c: &DbCounters,
    db: &Db,
    slot: usize,
    h: u64,
    key: &[u8],
    now: u64,
) -> Option<&'t mut Entry> {
    let expired = match t.table.find(h, |e| e.key() == key) {
        None => return None,
        Some(e) => e.is_expired(now),
    };
    if expired && expiry() != Expiry::Delete {
        if expiry() == Expiry::Hide {
            return None;
        }
    } else if expired {
        let old = t_remove(t, c, slot, h, key, &ks.hasher);
        db.expired.fetch_add(1, Ordering::Relaxed);
        ks.on_expired(db.index, key);
        if let Some(old) = old {
            drop_later(old);
        }
        return None;
    }
    t.settle_lookup(h, key);
    t.table.find_mut(h, |e| e.key() == key)
}

fn t_remove(
    t: &mut SlotTable,
    c: &DbCounters,
    slot: usize,
    h: u64,
    key: &[u8],
    hasher: &ahash::RandomState,
) -> Option<Entry> {
    t.settle(h, key);
    let Ok(occ) = t.table.find_entry(h, |e| e.key() == key) else {
        return None;
    };
    let (e, _) = occ.remove();
    tag_unindex(t, key);
    if e.expire().is_some() {
        c.expires.fetch_sub(1, Ordering::Relaxed);
        c.slot_expires[slot].fetch_sub(1, Ordering::Relaxed);
    }
    c.keys.fetch_sub(1, Ordering::Relaxed);
    c.slot_keys[slot].fetch_sub(1, Ordering::Relaxed);
    let buckets = t.table.num_buckets();
    if buckets >= 64 && t.table.len() < buckets / 8 * 7 * 3 / 8 {
        shrink(t, hasher);
    }
    Some(e)
}

/// Gives back the buckets of a slot under 3/8 full (it grows again at
/// full, so a slot whose key count wanders around a power of two does not
/// resize back and forth): per-slot tables would otherwise keep the size
/// of their busiest moment, which an evicting cache's random walk of
/// per-slot counts reaches sooner or later in every slot.
#[cold]
fn shrink(t: &mut SlotTable, hasher: &ahash::RandomState) {
    t.generation = t.generation.wrapping_add(1);
    let len = t.table.len();
    t.table.shrink_to(len, |x| hasher.hash_one(x.key()));
}

fn t_put(
    t: &mut SlotTable,
    c: &DbCounters,
    slot: usize,
    h: u64,
    e: Entry,
    hasher: &ahash::RandomState,
) -> Option<Entry> {
    t.settle(h, e.key());
    if let Some(old) = t.table.find_mut(h, |x| x.key() == e.key()) {
        let (before, after) = (old.expire().is_some(), e.expire().is_some());
        let mut e = e;
        e.set_snap_bit(t.mark);
        let prev = std::mem::replace(old, e);
        adjust_volatile(c, slot, before, after);
        return Some(prev);
    }
    t_insert(t, c, slot, h, e, hasher);
    None
}

fn t_insert(
    t: &mut SlotTable,
    c: &DbCounters,
    slot: usize,
    h: u64,
    e: Entry,
    hasher: &ahash::RandomState,
) {
    if t.table.len() == t.table.capacity() {
        // The insert will grow or rehash in place: bucket positions change.
        t.generation = t.generation.wrapping_add(1);
        reclaim_tombstones(t, hasher);
    }
    if e.expire().is_some() {
        c.expires.fetch_add(1, Ordering::Relaxed);
        c.slot_expires[slot].fetch_add(1, Ordering::Relaxed);
    }
    tag_index(t, e.key());
    c.keys.fetch_add(1, Ordering::Relaxed);
    c.slot_keys[slot].fetch_add(1, Ordering::Relaxed);
    // Created after any snapshot point: never pending.
    let mut e = e;
    e.set_snap_bit(t.mark);
    t.table.insert_unique(h, e, |x| hasher.hash_one(x.key()));
}

/// Rebuilds a full table at its own size when deletions, not keys, filled
/// it. hashbrown counts a deleted bucket against the room left until the
/// next rehash, and then grows any table more than half full: a slot that
/// deletes as fast as it inserts (an evicting cache, expiring keys) would
/// settle at twice the buckets its keys need. Costs one pass over the
/// slot's keys per quarter of its capacity inserted.
#[cold]
fn reclaim_tombstones(t: &mut SlotTable, hasher: &ahash::RandomState) {
    let buckets = t.table.num_buckets();
    let full = buckets / 8 * 7;
    if buckets < 16 || t.table.len() >= full * 3 / 4 {
        return;
    }
    let old = std::mem::replace(&mut t.table, HashTable::with_capacity(full));
    for e in old {
        t.table
            .insert_unique(hasher.hash_one(e.key()), e, |x| hasher.hash_one(x.key()));
    }
}

type TagIndex = hashbrown::HashMap<u32, hashbrown::HashSet<Box<[u8]>>>;

fn tag_index(t: &mut SlotTable, key: &[u8]) {
    let (tag, tagged) = hash_tag(key);
    if tagged {
        t.tags
            .get_or_insert_with(Default::default)
            .entry(crc32fast::hash(tag))
            .or_default()
            .insert(key.into());
    }
}

fn tag_unindex(t: &mut SlotTable, key: &[u8]) {
    let (tag, tagged) = hash_tag(key);
    if !tagged {
        return;
    }
    let crc = crc32fast::hash(tag);
    let Some(tags) = t.tags.as_mut() else {
        return;
    };
    if let Some(set) = tags.get_mut(&crc) {
        set.remove(key);
        if set.is_empty() {
            tags.remove(&crc);
        }
    }
    if tags.is_empty() {
        t.tags = None;
    }
}

/// A locked slot.
pub struct SlotRef<'a> {
    t: SlotGuard<'a>,
    db: &'a Db,
    ks: &'a Keyspace,
    /// The slot locked: every key reached through this guard is in it.
    slot: usize,
}

/// Keyed access shared by [`SlotRef`] and [`MultiRef`]; all lookups expire
/// lazily.
pub trait KeyAccess {
    /// Looks a key up, removing it if expired.
    fn get(&mut self, key: &[u8], now: u64) -> Option<&mut Entry>;
    /// Looks a key up without expiring it (inspection commands).
    fn peek(&mut self, key: &[u8]) -> Option<&mut Entry>;
    /// Removes a key (whether expired or not).
    fn remove(&mut self, key: &[u8]) -> Option<Entry>;
    /// Inserts an entry; the key must not be present (call `remove` first).
    fn insert(&mut self, e: Entry);
    /// Replaces or inserts an entry; returns the previous one.
    fn put(&mut self, e: Entry) -> Option<Entry>;
    /// Sets a key's expiry (the key must exist).
    fn set_expire(&mut self, key: &[u8], expire: Option<u64>) -> bool;
}

impl<'a> SlotRef<'a> {
    #[inline]
    fn slot_index(&self, key: &[u8]) -> usize {
        debug_assert_eq!(slot_of(key), self.slot, "key outside the locked slot");
        let _ = key;
        self.slot
    }

    /// Removes up to `max` expired keys from this slot, resuming where the last
    /// pass stopped. Returns how many were removed.
    fn expire_some(&mut self, now: u64, max: usize) -> usize {
        let n = self.t.table.num_buckets();
        if n == 0 {
            return 0;
        }
        let mut victims: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut i = self.t.expire_cursor as usize % n;
        let mut seen = 0;
        while seen < n && seen < max * 4 {
            if let Some(e) = self.t.table.get_bucket(i)
                && e.is_expired(now)
            {
                victims.push((self.ks.hash(e.key()), e.key().to_vec()));
                if victims.len() >= max {
                    break;
                }
            }
            i = (i + 1) % n;
            seen += 1;
        }
        self.t.expire_cursor = i as u32;
        let cnt = victims.len();
        for (h, k) in victims {
            let slot = slot_of(&k);
            if let Some(old) =
                t_remove(&mut self.t, &self.db.counters, slot, h, &k, &self.ks.hasher)
            {
                self.ks.on_expired(self.db.index, &k);
                drop_later(old);
            }
        }
        self.db.expired.fetch_add(cnt as u64, Ordering::Relaxed);
        cnt
    }

    /// Number of keys in this slot.
    pub fn len(&self) -> usize {
        self.t.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.table.is_empty()
    }

    pub fn generation(&self) -> u64 {
        self.t.generation as u64
    }

    pub fn num_buckets(&self) -> usize {
        self.t.table.num_buckets()
    }

    /// The entry in bucket `i`, if any (SCAN).
    pub fn bucket(&self, i: usize) -> Option<&Entry> {
        self.t.table.get_bucket(i)
    }

    /// Every entry in this slot (unordered).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.t.table.iter()
    }

    /// The keys of this slot whose hash tag has CRC-32 `crc` (the tag index).
    pub fn tag_keys(&self, crc: u32) -> Vec<Vec<u8>> {
        self.t
            .tags
            .as_ref()
            .and_then(|t| t.get(&crc))
            .map(|s| s.iter().map(|k| k.to_vec()).collect())
            .unwrap_or_default()
    }

    /// Every `(tag crc, key)` of the tag index (SLOTSCHECK).
    pub fn tag_index(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.t
            .tags
            .iter()
            .flat_map(|t| t.iter())
            .flat_map(|(&crc, set)| set.iter().map(move |k| (crc, &k[..])))
    }

    /// Removes every key of the slot; returns how many.
    pub fn clear(&mut self) -> usize {
        let keys: Vec<Vec<u8>> = self.t.table.iter().map(|e| e.key().to_vec()).collect();
        for k in &keys {
            self.remove(k);
        }
        keys.len()
    }
}

impl KeyAccess for SlotRef<'_> {
    fn get(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        let h = self.ks.hash(key);
        let slot = self.slot_index(key);
        t_find(
            self.ks,
            &mut self.t,
            &self.db.counters,
            self.db,
            slot,
            h,
            key,
            now,
        )
    }

    fn peek(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let h = self.ks.hash(key);
        self.t.settle_lookup(h, key);
        self.t.table.find_mut(h, |e| e.key() == key)
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let h = self.ks.hash(key);
        let slot = self.slot_index(key);
        t_remove(
            &mut self.t,
            &self.db.counters,
            slot,
            h,
            key,
            &self.ks.hasher,
        )
    }

    fn insert(&mut self, e: Entry) {
        let h = self.ks.hash(e.key());
        let slot = self.slot_index(e.key());
        self.ks.on_created(self.db.index, e.key());
        t_insert(&mut self.t, &self.db.counters, slot, h, e, &self.ks.hasher);
    }

    fn put(&mut self, e: Entry) -> Option<Entry> {
        let h = self.ks.hash(e.key());
        let slot = self.slot_index(e.key());
        if self.ks.created_events.load(Ordering::Relaxed)
            && self.t.table.find(h, |x| x.key() == e.key()).is_none()
        {
            self.ks.on_created(self.db.index, e.key());
        }
        t_put(&mut self.t, &self.db.counters, slot, h, e, &self.ks.hasher)
    }

    fn set_expire(&mut self, key: &[u8], expire: Option<u64>) -> bool {
        let h = self.ks.hash(key);
        self.t.settle(h, key);
        let Some(e) = self.t.table.find_mut(h, |e| e.key() == key) else {
            return false;
        };
        let before = e.expire().is_some();
        e.set_expire(expire);
        adjust_volatile(&self.db.counters, self.slot, before, expire.is_some());
        true
    }
}

fn adjust_volatile(c: &DbCounters, slot: usize, before: bool, after: bool) {
    match (before, after) {
        (false, true) => {
            c.expires.fetch_add(1, Ordering::Relaxed);
            c.slot_expires[slot].fetch_add(1, Ordering::Relaxed);
        }
        (true, false) => {
            c.expires.fetch_sub(1, Ordering::Relaxed);
            c.slot_expires[slot].fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// The slots of a [`MultiRef`]: inline up to 16 (redis-benchmark's MSET has
/// ten keys), so most multi-key commands allocate nothing.
type MultiSlots = SmallVec<[usize; 16]>;
type MultiGuards<'a> = SmallVec<[SlotGuard<'a>; 16]>;

/// Several locked slots of one DB (multi-key commands).
pub struct MultiRef<'a> {
    slots: MultiSlots,
    guards: MultiGuards<'a>,
    db: &'a Db,
    ks: &'a Keyspace,
    /// The caller's lock set, which may know the slots of the command's keys.
    held: Option<&'a (dyn HeldSlots + 'a)>,
}

impl MultiRef<'_> {
    /// The one locked slot, when there is one: every key reached through
    /// this reference is in it.
    #[inline]
    fn only_slot(&self, key: &[u8]) -> Option<usize> {
        let [only] = self.slots[..] else { return None };
        debug_assert_eq!(slot_of(key), only, "key outside the locked slots");
        Some(only)
    }

    /// The slot of `key`: known by the caller's lock set for the command's
    /// own keys, hashed otherwise.
    #[inline]
    fn slot_for(&self, key: &[u8]) -> usize {
        self.only_slot(key)
            .unwrap_or_else(|| known_or_hash(self.held, key))
    }

    /// [`MultiRef::slot_for`] for an entry's own key: a copy, never one of
    /// the command's arguments, so the lock set cannot know it.
    #[inline]
    fn slot_for_entry(&self, key: &[u8]) -> usize {
        self.only_slot(key).unwrap_or_else(|| slot_of(key))
    }

    fn table(&mut self, slot: usize) -> Option<&mut SlotTable> {
        let i = self.slots.binary_search(&slot).ok()?;
        self.guards.get_mut(i).map(|g| &mut **g)
    }

    /// Starts loading what looking up `keys` will read (the blobs of the
    /// entries their hashes match, where keys are compared), so that the
    /// lookups of a multi-key command (MSET of values that are not in
    /// cache) overlap their cache misses instead of taking them in turn.
    pub fn prefetch<'k>(&mut self, keys: impl Iterator<Item = &'k [u8]>) {
        for key in keys {
            let h = self.ks.hash(key);
            let slot = self.slot_for(key);
            if let Some(t) = self.table(slot) {
                for e in t.table.iter_hash(h) {
                    e.prefetch();
                }
            }
        }
    }
}

impl KeyAccess for MultiRef<'_> {
    fn get(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        let h = self.ks.hash(key);
        let slot = self.slot_for(key);
        let (db, ks) = (self.db, self.ks);
        let t = self.table(slot)?;
        t_find(ks, t, &db.counters, db, slot, h, key, now)
    }

    fn peek(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let h = self.ks.hash(key);
        let t = self.table(self.slot_for(key))?;
        t.settle_lookup(h, key);
        t.table.find_mut(h, |e| e.key() == key)
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let h = self.ks.hash(key);
        let slot = self.slot_for(key);
        let (db, ks) = (self.db, self.ks);
        let t = self.table(slot)?;
        t_remove(t, &db.counters, slot, h, key, &ks.hasher)
    }

    fn insert(&mut self, e: Entry) {
        let h = self.ks.hash(e.key());
        let slot = self.slot_for_entry(e.key());
        let db = self.db;
        let hasher = &self.ks.hasher;
        // A key whose slot is not locked is a caller bug; dropping the write is
        // safer than locking out of order.
        let Some(i) = self.slots.binary_search(&slot).ok() else {
            debug_assert!(false, "insert into unlocked slot");
            return;
        };
        if let Some(g) = self.guards.get_mut(i) {
            self.ks.on_created(db.index, e.key());
            t_insert(g, &db.counters, slot, h, e, hasher);
        }
    }

    fn put(&mut self, e: Entry) -> Option<Entry> {
        let h = self.ks.hash(e.key());
        let slot = self.slot_for_entry(e.key());
        let db = self.db;
        let hasher = &self.ks.hasher;
        let i = self.slots.binary_search(&slot).ok()?;
        let g = self.guards.get_mut(i)?;
        if self.ks.created_events.load(Ordering::Relaxed)
            && g.table.find(h, |x| x.key() == e.key()).is_none()
        {
            self.ks.on_created(db.index, e.key());
        }
        t_put(g, &db.counters, slot, h, e, hasher)
    }

    fn set_expire(&mut self, key: &[u8], expire: Option<u64>) -> bool {
        let h = self.ks.hash(key);
        let db = self.db;
        let slot = self.slot_for(key);
        let Some(t) = self.table(slot) else {
            return false;
        };
        t.settle(h, key);
        let Some(e) = t.table.find_mut(h, |e| e.key() == key) else {
            return false;
        };
        let before = e.expire().is_some();
        e.set_expire(expire);
        adjust_volatile(&db.counters, slot, before, expire.is_some());
        true
    }
}

// ---------------------------------------------------------------------------
// Lock sets: slot locks taken by a caller and held across several commands.
// ---------------------------------------------------------------------------

/// A locked slot table: locked for this access, or borrowed from a lock set
/// the caller holds (EXEC holds the union of its commands' slots).
pub enum SlotGuard<'a> {
    Own(MutexGuard<'a, SlotTable>),
    Held(RefMut<'a, SlotTable>),
    Lent(Lent<'a>),
}

impl Deref for SlotGuard<'_> {
    type Target = SlotTable;
    #[inline]
    fn deref(&self) -> &SlotTable {
        match self {
            SlotGuard::Own(g) => g,
            SlotGuard::Held(g) => g,
            SlotGuard::Lent(l) => l.table(),
        }
    }
}

impl DerefMut for SlotGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut SlotTable {
        match self {
            SlotGuard::Own(g) => g,
            SlotGuard::Held(g) => g,
            SlotGuard::Lent(l) => l.table_mut(),
        }
    }
}

/// The one slot the gate locked for a single-key command (SET, INCR,
/// LPUSH …), lent to the handler's slot reference and handed back when it
/// drops; the gate keeps the lock until it has propagated the command. The
/// cheap case of a caller-held lock set: a borrowed table in a `Cell`, no
/// `RefCell`, no enum of sets, no trait object between gate and handler
/// (about 140 instructions less per single-key write than a [`LockSet`]).
pub struct OneSlot<'a> {
    db: usize,
    slot: usize,
    /// Address and length of the command's key argument.
    key: (usize, usize),
    table: std::cell::Cell<Option<&'a mut SlotTable>>,
}

impl<'a> OneSlot<'a> {
    /// `table` is slot `slot` of DB `db`, locked by the caller for the
    /// command whose key argument is `key`.
    #[inline]
    pub fn new(db: usize, slot: usize, key: &[u8], table: &'a mut SlotTable) -> OneSlot<'a> {
        OneSlot {
            db,
            slot: slot & (SLOTS - 1),
            key: (key.as_ptr() as usize, key.len()),
            table: std::cell::Cell::new(Some(table)),
        }
    }

    /// The slot of `key` when it is the command's key argument.
    #[inline]
    fn known_slot(&self, key: &[u8]) -> Option<usize> {
        ((key.as_ptr() as usize, key.len()) == self.key).then_some(self.slot)
    }

    /// Lends the table when it is `slot` of DB `db` and not lent already.
    #[inline]
    fn lend(&'a self, db: usize, slot: usize) -> Option<SlotGuard<'a>> {
        if (db, slot) != (self.db, self.slot) {
            return None;
        }
        let t = self.table.take()?;
        Some(SlotGuard::Lent(Lent {
            t: Some(t),
            home: &self.table,
        }))
    }
}

/// A lent [`OneSlot`] table; goes back to its lender when dropped.
pub struct Lent<'a> {
    /// `Some` until dropped.
    t: Option<&'a mut SlotTable>,
    home: &'a std::cell::Cell<Option<&'a mut SlotTable>>,
}

impl Lent<'_> {
    #[inline]
    fn table(&self) -> &SlotTable {
        match &self.t {
            Some(t) => t,
            None => unreachable!("a lent table is held until dropped"),
        }
    }

    #[inline]
    fn table_mut(&mut self) -> &mut SlotTable {
        match &mut self.t {
            Some(t) => t,
            None => unreachable!("a lent table is held until dropped"),
        }
    }
}

impl Drop for Lent<'_> {
    #[inline]
    fn drop(&mut self) {
        self.home.set(self.t.take());
    }
}

/// Slots a caller holds locked; commands run under it borrow their slots
/// from it instead of locking them.
pub trait HeldSlots {
    /// The held table of `slot` in DB `db`, or `None` when not held.
    fn held(&self, db: usize, slot: usize) -> Option<RefMut<'_, SlotTable>>;

    /// Whether every slot of every DB is held.
    fn holds_all(&self) -> bool {
        false
    }

    /// The slot of `key` when it is one of the command's own key arguments
    /// (the very slice, compared by address: the gate hashed it already).
    fn known_slot(&self, _key: &[u8]) -> Option<usize> {
        None
    }

    /// When `keys` are exactly the command's own key arguments in order
    /// (the usual multi-key handler: MSET, DEL, SUNIONSTORE …), pushes the
    /// held tables of their slots in DB `db`, ascending, with the slot
    /// numbers, and returns true: one call instead of a lookup per key and
    /// per slot. False (and nothing pushed) otherwise.
    fn own_keys<'s>(
        &'s self,
        _db: usize,
        _keys: &[&[u8]],
        _slots: &mut MultiSlots,
        _guards: &mut MultiGuards<'s>,
    ) -> bool {
        false
    }
}

/// The slot of `key`, from the caller's lock set when it knows it.
#[inline]
fn known_or_hash(held: Option<&dyn HeldSlots>, key: &[u8]) -> usize {
    match held.and_then(|h| h.known_slot(key)) {
        Some(s) => {
            debug_assert_eq!(s, slot_of(key));
            s
        }
        None => slot_of(key),
    }
}

/// Sorts and deduplicates a list of slots that was built skipping
/// immediate repeats (often it holds one slot and there is nothing to do).
#[inline]
fn sort_slots<A: smallvec::Array<Item = usize>>(slots: &mut SmallVec<A>) {
    if slots.len() > 1 {
        slots.sort_unstable();
        slots.dedup();
    }
}

/// Which slots a [`LockSet`] takes.
#[derive(Debug, Default, Clone)]
pub struct LockPlan {
    /// Slots as `db * SLOTS + slot` (one integer sorts and compares in one
    /// instruction); sorted and deduplicated by [`LockSet::lock`]. Inline
    /// for the few keys most commands have (no allocation).
    pub slots: SmallVec<[usize; 16]>,
    /// Every slot of every DB (commands whose keys are found at run time:
    /// KEYS, SCAN, FLUSHALL, SWAPDB, SORT … BY, MOVE …).
    pub all: bool,
    /// (address, length, slot) of the key arguments hashed for this plan,
    /// so handlers need not hash them again (see [`HeldSlots::known_slot`]).
    pub known: SmallVec<[(usize, usize, usize); 16]>,
    /// A slot was added for a key that is not in `known` (SORT's STORE
    /// destination).
    pub extra: bool,
}

impl LockPlan {
    /// Adds slot `slot` of DB `db` (a repeat of the last one is skipped:
    /// keys of one hash tag, or one key repeated, are common).
    #[inline]
    pub fn add(&mut self, db: usize, slot: usize) {
        let k = db * SLOTS + (slot & (SLOTS - 1));
        if self.slots.last() != Some(&k) {
            self.slots.push(k);
        }
    }

    /// The `(db, slot)` pairs planned so far.
    pub fn pairs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.slots.iter().map(|&k| (k / SLOTS, k % SLOTS))
    }
}

/// One locked slot a handler borrows.
type HeldSlot<'a> = RefCell<MutexGuard<'a, SlotTable>>;

/// Slot locks taken at once in the global order (ascending DB, then slot),
/// the order every other multi-slot locker follows, so holding them cannot
/// deadlock with other clients, the expiry cycle or the migration engines.
pub enum LockSet<'a> {
    /// Several slots (boxed: one allocation, and the enum stays small).
    Many(Box<ManySlots<'a>>),
    /// Every slot of every DB, DB-major.
    All(Vec<HeldSlot<'a>>),
}

/// The slots of a [`LockSet::Many`]: sorted by (db, slot) like `keys`;
/// `known` maps the command's key arguments (by address and length) to
/// their slots.
pub struct ManySlots<'a> {
    plan: LockPlan,
    guards: SmallVec<[HeldSlot<'a>; 16]>,
    /// Where the last `known_slot` lookup matched: handlers ask for their
    /// keys in argument order, so the next one is usually next.
    cursor: std::cell::Cell<usize>,
}

impl ManySlots<'_> {
    fn boxed(plan: LockPlan) -> Box<Self> {
        Box::new(ManySlots {
            plan,
            guards: SmallVec::new(),
            cursor: std::cell::Cell::new(0),
        })
    }
}

impl<'a> LockSet<'a> {
    pub fn lock(ks: &'a Keyspace, plan: LockPlan) -> LockSet<'a> {
        LockSet::lock_boxed(ks, ManySlots::boxed(plan))
    }

    /// Plans into a fresh boxed set (no copy of the plan afterwards) and
    /// locks it.
    pub fn plan_and_lock(ks: &'a Keyspace, f: impl FnOnce(&mut LockPlan)) -> LockSet<'a> {
        let mut m = ManySlots::boxed(LockPlan::default());
        f(&mut m.plan);
        LockSet::lock_boxed(ks, m)
    }

    fn lock_boxed(ks: &'a Keyspace, mut m: Box<ManySlots<'a>>) -> LockSet<'a> {
        let plan = &mut m.plan;
        if plan.all {
            return LockSet::All(
                ks.dbs
                    .iter()
                    .flat_map(|db| db.slots.iter().map(|m| RefCell::new(lock(ks, db.index, m))))
                    .collect(),
            );
        }
        let limit = ks.dbs.len() * SLOTS;
        plan.slots.retain(|k| *k < limit);
        sort_slots(&mut plan.slots);
        for &k in plan.slots.iter() {
            m.guards.push(RefCell::new(lock(
                ks,
                k / SLOTS,
                &ks.dbs[k / SLOTS].slots[k % SLOTS],
            )));
        }
        LockSet::Many(m)
    }

    /// Number of slot locks held.
    pub fn len(&self) -> usize {
        match self {
            LockSet::Many(m) => m.guards.len(),
            LockSet::All(guards) => guards.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl HeldSlots for LockSet<'_> {
    fn holds_all(&self) -> bool {
        matches!(self, LockSet::All(_))
    }

    #[inline]
    fn held(&self, db: usize, slot: usize) -> Option<RefMut<'_, SlotTable>> {
        let cell = match self {
            LockSet::Many(m) => {
                let k = db * SLOTS + (slot & (SLOTS - 1));
                m.guards.get(m.plan.slots.binary_search(&k).ok()?)?
            }
            LockSet::All(guards) => guards.get(db * SLOTS + (slot & (SLOTS - 1)))?,
        };
        // A handler holding the same slot twice at once would be a bug (it
        // would deadlock on a plain mutex); refuse instead of panicking.
        let g = cell.try_borrow_mut().ok()?;
        Some(RefMut::map(g, |g| &mut **g))
    }

    fn own_keys<'s>(
        &'s self,
        db: usize,
        keys: &[&[u8]],
        slots: &mut MultiSlots,
        guards: &mut MultiGuards<'s>,
    ) -> bool {
        let LockSet::Many(m) = self else {
            return false;
        };
        let plan = &m.plan;
        if plan.extra
            || keys.len() != plan.known.len()
            || keys
                .iter()
                .zip(&plan.known)
                .any(|(k, n)| (k.as_ptr() as usize, k.len()) != (n.0, n.1))
            || plan.slots.iter().any(|&k| k / SLOTS != db)
        {
            return false;
        }
        // The set's slots are exactly those of these keys.
        for (&k, cell) in plan.slots.iter().zip(&m.guards) {
            let Ok(g) = cell.try_borrow_mut() else {
                slots.clear();
                guards.clear();
                return false;
            };
            slots.push(k % SLOTS);
            guards.push(SlotGuard::Held(RefMut::map(g, |g| &mut **g)));
        }
        true
    }

    #[inline]
    fn known_slot(&self, key: &[u8]) -> Option<usize> {
        let addr = (key.as_ptr() as usize, key.len());
        match self {
            LockSet::Many(m) => {
                let (known, cursor) = (&m.plan.known, &m.cursor);
                let start = cursor.get().min(known.len());
                let i = known[start..]
                    .iter()
                    .position(|k| (k.0, k.1) == addr)
                    .map(|i| start + i)
                    .or_else(|| known[..start].iter().position(|k| (k.0, k.1) == addr))?;
                cursor.set(i + 1);
                Some(known[i].2)
            }
            _ => None,
        }
    }
}

/// Locks one slot table without waiting; armed for the snapshot in
/// progress like [`lock`]. None when another holder has it.
#[inline]
fn try_lock<'m>(
    ks: &Keyspace,
    db: usize,
    m: &'m Mutex<SlotTable>,
) -> Option<MutexGuard<'m, SlotTable>> {
    let mut g = match m.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    let epoch = ks.snap.active.load(Ordering::Relaxed);
    if epoch != 0 && g.snap_epoch != epoch32(epoch) {
        ks.arm_slot(db, epoch, &mut g);
    }
    Some(g)
}

/// How long [`GrowSet::grow`] waits for a slot below the held ones: far
/// longer than any command holds a slot, short enough that a wait cycle
/// (another holder waiting for one of this set's slots) ends soon.
pub const GROW_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// [`try_lock`] again and again until `limit` has passed: yields first,
/// then sleeps 100 µs between tries (std's mutex has no timed lock).
fn try_lock_for<'m>(
    ks: &Keyspace,
    db: usize,
    m: &'m Mutex<SlotTable>,
    limit: std::time::Duration,
) -> Option<MutexGuard<'m, SlotTable>> {
    let start = std::time::Instant::now();
    let mut tries = 0u32;
    loop {
        if let Some(g) = try_lock(ks, db, m) {
            return Some(g);
        }
        if start.elapsed() >= limit {
            return None;
        }
        tries += 1;
        if tries < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
}

/// What [`GrowSet::grow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grow {
    /// The slot was held already, or is now.
    Held,
    /// Another holder has the slot and waiting for it could deadlock (it
    /// is below a slot this set holds; with `wait`, it stayed taken for
    /// [`GROW_WAIT`]): nothing was taken.
    Contended,
}

/// A lock set that grows while it is held: a script's slots (script/),
/// its declared keys' slots taken at once in the global order, then the
/// slots its commands reach beyond them. A slot above every held one is
/// waited for (the global order still holds); one below is only tried,
/// and the caller decides what a contended one means (a script that has
/// not written restarts under every slot; see script/mod.rs).
pub struct GrowSet<'a> {
    ks: &'a Keyspace,
    /// The caller's set (EXEC's, which holds every slot for a script).
    parent: Option<&'a (dyn HeldSlots + 'a)>,
    /// Held slots as `db * SLOTS + slot`, ascending, and their guards
    /// (inline for the few slots most scripts touch: no allocation).
    slots: SmallVec<[usize; 8]>,
    guards: SmallVec<[HeldSlot<'a>; 8]>,
    /// Every slot of every DB (instead of `slots`).
    all: Option<LockSet<'a>>,
}

impl<'a> GrowSet<'a> {
    pub fn new(ks: &'a Keyspace, parent: Option<&'a (dyn HeldSlots + 'a)>) -> GrowSet<'a> {
        GrowSet {
            ks,
            parent,
            slots: SmallVec::new(),
            guards: SmallVec::new(),
            all: None,
        }
    }

    /// Takes the slots of `plan` (an empty set only), waiting for each in
    /// the global order.
    pub fn lock_plan(&mut self, mut plan: LockPlan) {
        debug_assert!(self.slots.is_empty() && self.all.is_none());
        if plan.all {
            self.lock_everything();
            return;
        }
        let limit = self.ks.dbs.len() * SLOTS;
        plan.slots.retain(|k| *k < limit);
        sort_slots(&mut plan.slots);
        for &k in plan.slots.iter() {
            if self.parent_holds(k) {
                continue;
            }
            let (db, slot) = (k / SLOTS, k % SLOTS);
            self.guards.push(RefCell::new(lock(
                self.ks,
                db,
                &self.ks.dbs[db].slots[slot],
            )));
            self.slots.push(k);
        }
    }

    /// Holds every slot of every DB (an empty set only).
    pub fn lock_everything(&mut self) {
        debug_assert!(self.slots.is_empty() && self.all.is_none());
        let plan = LockPlan {
            all: true,
            ..LockPlan::default()
        };
        self.all = Some(LockSet::lock(self.ks, plan));
    }

    /// Releases every slot this set took (not the parent's).
    pub fn release(&mut self) {
        self.guards.clear();
        self.slots.clear();
        self.all = None;
    }

    /// Whether every slot is held.
    pub fn holds_everything(&self) -> bool {
        self.all.is_some() || self.parent.is_some_and(|p| p.holds_all())
    }

    /// Whether a caller's set is underneath (EXEC's).
    pub fn has_parent(&self) -> bool {
        self.parent.is_some()
    }

    fn parent_holds(&self, k: usize) -> bool {
        self.parent
            .is_some_and(|p| p.held(k / SLOTS, k % SLOTS).is_some())
    }

    /// Makes sure slot `slot` of DB `db` is held (see [`Grow`]). A slot
    /// above every held one is waited for; one below is tried once, or
    /// with `wait` for up to [`GROW_WAIT`]: every other holder that waits
    /// while holding takes its slots in the global order, so this bounded
    /// wait is the only one out of order and no wait cycle outlasts it.
    pub fn grow(&mut self, db: usize, slot: usize, wait: bool) -> Grow {
        if self.all.is_some() || db >= self.ks.dbs.len() {
            return Grow::Held;
        }
        let k = db * SLOTS + (slot & (SLOTS - 1));
        let pos = match self.slots.binary_search(&k) {
            Ok(_) => return Grow::Held,
            Err(pos) => pos,
        };
        if self.parent_holds(k) {
            return Grow::Held;
        }
        let m = &self.ks.dbs[db].slots[k % SLOTS];
        let g = if pos == self.slots.len() {
            // Above every held slot: the global order is kept.
            lock(self.ks, db, m)
        } else {
            match try_lock(self.ks, db, m) {
                Some(g) => g,
                None if wait => match try_lock_for(self.ks, db, m, GROW_WAIT) {
                    Some(g) => g,
                    None => return Grow::Contended,
                },
                None => return Grow::Contended,
            }
        };
        self.slots.insert(pos, k);
        self.guards.insert(pos, RefCell::new(g));
        Grow::Held
    }
}

impl HeldSlots for GrowSet<'_> {
    fn holds_all(&self) -> bool {
        self.holds_everything()
    }

    #[inline]
    fn held(&self, db: usize, slot: usize) -> Option<RefMut<'_, SlotTable>> {
        if let Some(all) = &self.all {
            return all.held(db, slot);
        }
        let k = db * SLOTS + (slot & (SLOTS - 1));
        if let Ok(i) = self.slots.binary_search(&k) {
            let g = self.guards[i].try_borrow_mut().ok()?;
            return Some(RefMut::map(g, |g| &mut **g));
        }
        self.parent.and_then(|p| p.held(db, slot))
    }
}

/// Takes slot locks for handlers: through the caller's lock set when there
/// is one (a slot outside it is locked directly; the lock-set rule must make
/// that impossible, and debug builds assert it), else directly.
#[derive(Clone, Copy)]
pub struct Locker<'a> {
    ks: &'a Keyspace,
    held: Option<&'a (dyn HeldSlots + 'a)>,
    /// The gate's one locked slot of a single-key command.
    one: Option<&'a OneSlot<'a>>,
}

impl<'a> Locker<'a> {
    pub fn new(
        ks: &'a Keyspace,
        held: Option<&'a (dyn HeldSlots + 'a)>,
        one: Option<&'a OneSlot<'a>>,
    ) -> Self {
        Locker { ks, held, one }
    }

    /// The keyspace itself.
    pub fn keyspace(self) -> &'a Keyspace {
        self.ks
    }

    pub fn db_count(self) -> usize {
        self.ks.dbs.len()
    }

    pub fn db(self, i: usize) -> Option<&'a Db> {
        self.ks.dbs.get(i)
    }

    #[inline]
    pub fn hash(self, key: &[u8]) -> u64 {
        self.ks.hasher.hash_one(key)
    }

    #[inline]
    fn guard(self, db: &'a Db, slot: usize) -> SlotGuard<'a> {
        let slot = slot & (SLOTS - 1);
        if let Some(o) = self.one {
            if let Some(g) = o.lend(db.index, slot) {
                return g;
            }
            debug_assert!(
                false,
                "slot {slot} of db {} is not the command's slot, or is lent twice",
                db.index
            );
        }
        if let Some(h) = self.held {
            if let Some(t) = h.held(db.index, slot) {
                return SlotGuard::Held(t);
            }
            debug_assert!(
                false,
                "slot {slot} of db {} is outside the held lock set",
                db.index
            );
        }
        SlotGuard::Own(lock(self.ks, db.index, &db.slots[slot]))
    }

    /// Locks the slot of `key` in DB `db`.
    #[inline(always)]
    pub fn lock_key(self, db: &'a Db, key: &[u8]) -> SlotRef<'a> {
        // The common case, inline: a single-key command's own key, lent by
        // the gate.
        if let Some(o) = self.one
            && o.known_slot(key).is_some()
            && let Some(t) = o.lend(db.index, o.slot)
        {
            return SlotRef {
                t,
                db,
                ks: self.ks,
                slot: o.slot,
            };
        }
        if self.one.is_none() && self.held.is_none() {
            // Nothing held by a caller (reads, tools): lock it here.
            let slot = slot_of(key);
            return SlotRef {
                t: SlotGuard::Own(lock(self.ks, db.index, &db.slots[slot])),
                db,
                ks: self.ks,
                slot,
            };
        }
        self.lock_key_slow(db, key)
    }

    #[inline(never)]
    fn lock_key_slow(self, db: &'a Db, key: &[u8]) -> SlotRef<'a> {
        let slot = match self.one.and_then(|o| o.known_slot(key)) {
            Some(s) => s,
            None => known_or_hash(self.held, key),
        };
        self.lock_slot(db, slot)
    }

    #[inline]
    pub fn lock_slot(self, db: &'a Db, slot: usize) -> SlotRef<'a> {
        let slot = slot & (SLOTS - 1);
        SlotRef {
            t: self.guard(db, slot),
            db,
            ks: self.ks,
            slot,
        }
    }

    /// Locks every slot of the given keys (ascending, deduplicated).
    pub fn lock_keys<'k, I: IntoIterator<Item = &'k [u8]>>(
        self,
        db: &'a Db,
        keys: I,
    ) -> MultiRef<'a> {
        let held = self.held;
        let mut slots = MultiSlots::new();
        if let Some(h) = held {
            let keys: SmallVec<[&[u8]; 16]> = keys.into_iter().collect();
            let mut guards = SmallVec::new();
            if !h.own_keys(db.index, &keys, &mut slots, &mut guards) {
                return self.lock_key_list(db, keys);
            }
            return MultiRef {
                slots,
                guards,
                db,
                ks: self.ks,
                held,
            };
        }
        self.lock_key_list(db, keys)
    }

    /// [`Locker::lock_keys`] one key at a time.
    fn lock_key_list<'k, I: IntoIterator<Item = &'k [u8]>>(
        self,
        db: &'a Db,
        keys: I,
    ) -> MultiRef<'a> {
        let held = self.held;
        let mut slots = MultiSlots::new();
        for k in keys {
            // Repeats of one slot (a hash tag, a repeated key) are common:
            // skip them before sorting.
            let s = known_or_hash(held, k);
            if slots.last() != Some(&s) {
                slots.push(s);
            }
        }
        sort_slots(&mut slots);
        let guards = slots.iter().map(|&s| self.guard(db, s)).collect();
        MultiRef {
            slots,
            guards,
            db,
            ks: self.ks,
            held,
        }
    }

    /// Locks all slots of several DBs (ascending DB index, then slot) for
    /// whole-keyspace operations. Returns guards per DB in the order given
    /// after sorting; the caller must pass distinct indexes.
    pub fn lock_all(self, dbs: &[usize]) -> Vec<(usize, Vec<SlotGuard<'a>>)> {
        let mut order: Vec<usize> = dbs.to_vec();
        order.sort_unstable();
        order.dedup();
        order
            .into_iter()
            .filter_map(|i| {
                self.ks
                    .dbs
                    .get(i)
                    .map(|db| (i, (0..SLOTS).map(|s| self.guard(db, s)).collect()))
            })
            .collect()
    }

    /// FLUSHDB: removes every key of DB `i`; returns how many were removed.
    pub fn flush_db(self, i: usize) -> usize {
        let Some(db) = self.ks.dbs.get(i) else {
            return 0;
        };
        let mut guards: Vec<_> = (0..SLOTS).map(|s| self.guard(db, s)).collect();
        let mut n = 0;
        for (s, g) in guards.iter_mut().enumerate() {
            n += g.table.len();
            g.settle_all();
            **g = SlotTable {
                generation: g.generation.wrapping_add(1),
                snap_epoch: g.snap_epoch,
                mark: g.mark,
                ..SlotTable::default()
            };
            db.counters.slot_keys[s].store(0, Ordering::Relaxed);
            db.counters.slot_expires[s].store(0, Ordering::Relaxed);
        }
        db.counters.keys.store(0, Ordering::Relaxed);
        db.counters.expires.store(0, Ordering::Relaxed);
        n
    }

    /// SWAPDB a b: exchanges the contents of two DBs atomically.
    pub fn swap_db(self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let (Some(da), Some(dbb)) = (self.ks.dbs.get(a), self.ks.dbs.get(b)) else {
            return;
        };
        let (first, second) = if a < b { (da, dbb) } else { (dbb, da) };
        let mut g1: Vec<_> = (0..SLOTS).map(|s| self.guard(first, s)).collect();
        let mut g2: Vec<_> = (0..SLOTS).map(|s| self.guard(second, s)).collect();
        for (x, y) in g1.iter_mut().zip(g2.iter_mut()) {
            std::mem::swap(&mut **x, &mut **y);
            x.generation = x.generation.wrapping_add(1);
            y.generation = y.generation.wrapping_add(1);
        }
        for s in 0..SLOTS {
            for (x, y) in [
                (&first.counters.slot_keys[s], &second.counters.slot_keys[s]),
                (
                    &first.counters.slot_expires[s],
                    &second.counters.slot_expires[s],
                ),
            ] {
                let t = x.load(Ordering::Relaxed);
                x.store(y.load(Ordering::Relaxed), Ordering::Relaxed);
                y.store(t, Ordering::Relaxed);
            }
        }
        for (x, y) in [
            (&first.counters.keys, &second.counters.keys),
            (&first.counters.expires, &second.counters.expires),
        ] {
            let t = x.load(Ordering::Relaxed);
            x.store(y.load(Ordering::Relaxed), Ordering::Relaxed);
            y.store(t, Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------
// Whole-DB iteration: SCAN, KEYS, RANDOMKEY, and cross-DB locking (MOVE/COPY).
// ---------------------------------------------------------------------------

/// SCAN cursor layout: `slot | bucket << 10 | (generation & 0x7fff) << 48`.
/// The generation is kept to 15 bits so cursors stay below 2^63 (Redis prints
/// cursors as signed numbers; clients parse them either way).
const SCAN_SLOT_MASK: u64 = (SLOTS as u64) - 1;
const SCAN_BUCKET_SHIFT: u32 = 10;
const SCAN_BUCKET_MASK: u64 = (1 << 38) - 1;
const SCAN_GEN_SHIFT: u32 = 48;
const SCAN_GEN_MASK: u64 = 0x7fff;

fn scan_cursor(slot: usize, bucket: usize, generation: u64) -> u64 {
    if slot >= SLOTS {
        return 0;
    }
    let gen_bits = if bucket == 0 {
        0
    } else {
        (generation & SCAN_GEN_MASK) << SCAN_GEN_SHIFT
    };
    slot as u64 | ((bucket as u64 & SCAN_BUCKET_MASK) << SCAN_BUCKET_SHIFT) | gen_bits
}

impl<'a> Locker<'a> {
    /// One SCAN step over DB `db`, starting at `cursor`; returns the next
    /// cursor (0 when the scan is complete).
    ///
    /// Buckets are visited slot by slot (each slot locked only while it is
    /// walked) until `count` occupied buckets were seen or `10 * count`
    /// buckets were visited, like Redis' `maxiterations`; empty slots are
    /// skipped for free through their atomic counters. `f` gets every occupied
    /// bucket's entry and whether it is logically expired; expired entries are
    /// removed afterwards (SCAN expires what it touches, as in Redis).
    ///
    /// Guarantee: a key present for the whole scan is returned at least once.
    /// Entries only move between buckets when a table grows or rehashes, which
    /// bumps the slot's generation; a cursor into a slot whose generation
    /// changed restarts that slot from bucket 0.
    pub fn scan(
        self,
        db: &'a Db,
        cursor: u64,
        count: usize,
        now: u64,
        mut f: impl FnMut(&Entry, bool),
    ) -> u64 {
        let mut slot = (cursor & SCAN_SLOT_MASK) as usize;
        let mut bucket = ((cursor >> SCAN_BUCKET_SHIFT) & SCAN_BUCKET_MASK) as usize;
        let generation = (cursor >> SCAN_GEN_SHIFT) & SCAN_GEN_MASK;
        let count = count.max(1);
        let budget = count.saturating_mul(10);
        let (mut seen, mut visited) = (0usize, 0usize);
        while slot < SLOTS {
            if seen >= count || visited >= budget {
                return scan_cursor(slot, 0, 0);
            }
            if db.slot_len(slot) == 0 {
                slot += 1;
                bucket = 0;
                continue;
            }
            let mut r = self.lock_slot(db, slot);
            if bucket != 0 && (r.t.generation as u64 & SCAN_GEN_MASK) != generation {
                bucket = 0;
            }
            let n = r.t.table.num_buckets();
            let mut victims: Vec<Vec<u8>> = Vec::new();
            while bucket < n && seen < count && visited < budget {
                visited += 1;
                if let Some(e) = r.t.table.get_bucket(bucket) {
                    seen += 1;
                    let expired = e.is_expired(now);
                    f(e, expired);
                    if expired && expiry() == Expiry::Delete {
                        victims.push(e.key().to_vec());
                    }
                }
                bucket += 1;
            }
            if !victims.is_empty() {
                for k in &victims {
                    r.remove(k);
                }
                self.note_expired(db, victims.len());
            }
            if bucket < n {
                return scan_cursor(slot, bucket, r.t.generation as u64);
            }
            slot += 1;
            bucket = 0;
        }
        0
    }

    fn note_expired(self, db: &Db, n: usize) {
        db.expired.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Calls `f` with every entry of DB `db` (expired ones included), one
    /// locked slot at a time (KEYS). Not a point-in-time snapshot across
    /// slots.
    pub fn for_each_entry(self, db: &'a Db, mut f: impl FnMut(&Entry)) {
        for s in 0..SLOTS {
            if db.slot_len(s) == 0 {
                continue;
            }
            let r = self.lock_slot(db, s);
            for e in r.t.table.iter() {
                f(e);
            }
        }
    }

    /// RANDOMKEY: a uniformly chosen slot position (weighted by the per-slot
    /// counters), then a random occupied bucket of that slot. Expired keys met
    /// on the way are removed and another key is drawn. `None` when the DB
    /// holds no live key.
    pub fn random_key(self, db: &'a Db, now: u64) -> Option<Vec<u8>> {
        use rand::Rng;
        let mut rng = rand::rng();
        // Every failed round either removes an expired key or lost a race with
        // a concurrent writer; after enough rounds fall back to a walk.
        for _ in 0..256 {
            let total = db.len();
            if total == 0 {
                return None;
            }
            let mut idx = rng.random_range(0..total);
            let mut chosen = None;
            for s in 0..SLOTS {
                let n = db.slot_len(s);
                if idx < n {
                    chosen = Some(s);
                    break;
                }
                idx -= n;
            }
            let Some(s) = chosen else { continue };
            let mut r = self.lock_slot(db, s);
            let nb = r.t.table.num_buckets();
            if r.t.table.is_empty() || nb == 0 {
                continue;
            }
            let mut pick = None;
            for _ in 0..16 {
                let b = rng.random_range(0..nb);
                if r.t.table.get_bucket(b).is_some() {
                    pick = Some(b);
                    break;
                }
            }
            if pick.is_none() {
                let start = rng.random_range(0..nb);
                pick = (0..nb)
                    .map(|i| (start + i) % nb)
                    .find(|&b| r.t.table.get_bucket(b).is_some());
            }
            let Some(e) = pick.and_then(|b| r.t.table.get_bucket(b)) else {
                continue;
            };
            let key = e.key().to_vec();
            if e.is_expired(now) {
                if expiry() == Expiry::Delete {
                    r.remove(&key);
                    self.note_expired(db, 1);
                }
                continue;
            }
            return Some(key);
        }
        // Pathological case (mostly expired keys): walk the slots in order.
        for s in 0..SLOTS {
            if db.slot_len(s) == 0 {
                continue;
            }
            let mut r = self.lock_slot(db, s);
            let mut victims = Vec::new();
            let mut found = None;
            for e in r.t.table.iter() {
                if e.is_expired(now) {
                    if expiry() == Expiry::Delete {
                        victims.push(e.key().to_vec());
                    }
                } else {
                    found = Some(e.key().to_vec());
                    break;
                }
            }
            for k in &victims {
                r.remove(k);
            }
            self.note_expired(db, victims.len());
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Locks `key_a`'s slot in DB `a` and `key_b`'s slot in DB `b` (MOVE,
    /// cross-DB COPY), in the global lock order: ascending DB index, then
    /// slot — the order [`Keyspace::lock_keys`], [`Keyspace::lock_all`] and
    /// [`Keyspace::swap_db`] follow, so this cannot deadlock with them.
    /// Returns the guards as (a, b); `None` if `a == b` (use `lock_keys`) or an
    /// index is out of range.
    pub fn lock_cross_db(
        self,
        a: usize,
        key_a: &[u8],
        b: usize,
        key_b: &[u8],
    ) -> Option<(SlotRef<'a>, SlotRef<'a>)> {
        if a == b {
            return None;
        }
        let (da, dbb) = (self.ks.dbs.get(a)?, self.ks.dbs.get(b)?);
        if a < b {
            let ra = self.lock_key(da, key_a);
            let rb = self.lock_key(dbb, key_b);
            Some((ra, rb))
        } else {
            let rb = self.lock_key(dbb, key_b);
            let ra = self.lock_key(da, key_a);
            Some((ra, rb))
        }
    }
}

#[cfg(test)]
mod snap_tests;
#[cfg(test)]
mod tag_tests;

#[cfg(test)]
mod scan_tests {
    use std::collections::HashSet;

    use super::*;

    fn put(ks: &Keyspace, db: &Db, k: &str, exp: Option<u64>) {
        ks.lock_key(db, k.as_bytes())
            .put(Entry::new_str(k.as_bytes(), b"v", exp, 0));
    }

    fn del(ks: &Keyspace, db: &Db, k: &str) {
        ks.lock_key(db, k.as_bytes()).remove(k.as_bytes());
    }

    fn step(ks: &Keyspace, db: &Db, cursor: u64, count: usize, out: &mut HashSet<Vec<u8>>) -> u64 {
        ks.scan(db, cursor, count, 0, |e, expired| {
            if !expired {
                out.insert(e.key().to_vec());
            }
        })
    }

    #[test]
    fn full_scan_returns_everything_once_idle() {
        let ks = Keyspace::new(1);
        let db = ks.db(0).unwrap();
        for i in 0..5000 {
            put(&ks, db, &format!("key:{i}"), None);
        }
        let mut got = HashSet::new();
        let mut c = 0;
        let mut calls = 0;
        loop {
            c = step(&ks, db, c, 10, &mut got);
            calls += 1;
            assert!(c < (1 << 63));
            if c == 0 {
                break;
            }
        }
        assert_eq!(got.len(), 5000);
        assert!(
            calls > 100,
            "COUNT must bound the work per call ({calls} calls)"
        );
    }

    #[test]
    fn keys_present_throughout_are_never_missed() {
        for count in [1usize, 7, 100] {
            let ks = Keyspace::new(1);
            let db = ks.db(0).unwrap();
            // Stable keys (present for the whole scan) and churn keys.
            let stable: Vec<String> = (0..3000).map(|i| format!("stable:{i}")).collect();
            for k in &stable {
                put(&ks, db, k, None);
            }
            for i in 0..2000 {
                put(&ks, db, &format!("doomed:{i}"), None);
            }
            let gens_before: u64 = (0..SLOTS).map(|s| ks.lock_slot(db, s).generation()).sum();
            let mut got = HashSet::new();
            let mut c = step(&ks, db, 0, count, &mut got);
            let mut round = 0usize;
            let per_call = count;
            let mut inserted = 0;
            while c != 0 {
                // Between calls: grow the tables (every slot's table grows
                // several times over the scan) and delete other keys.
                for j in 0..per_call {
                    put(&ks, db, &format!("new:{round}:{j}"), None);
                }
                inserted += per_call;
                for j in 0..3 {
                    del(&ks, db, &format!("doomed:{}", (round * 3 + j) % 2000));
                }
                round += 1;
                c = step(&ks, db, c, count, &mut got);
                assert!(round < 1_000_000, "scan does not terminate");
            }
            for k in &stable {
                assert!(got.contains(k.as_bytes()), "count {count}: missed {k}");
            }
            let grown: u64 = (0..SLOTS)
                .map(|s| ks.lock_slot(db, s).generation())
                .sum::<u64>()
                - gens_before;
            assert!(
                grown >= 500,
                "count {count}: only {grown} table growths during the scan"
            );
            assert!(db.len() >= 3000 + inserted);
        }
    }

    #[test]
    fn generation_change_restarts_slot() {
        let ks = Keyspace::new(1);
        let db = ks.db(0).unwrap();
        // Many keys in one slot: brute-force names that share the slot of "a".
        let target = slot_of(b"a");
        let same: Vec<String> = (0..200000)
            .map(|i| format!("k{i}"))
            .filter(|k| slot_of(k.as_bytes()) == target)
            .take(40)
            .collect();
        for k in &same[..20] {
            put(&ks, db, k, None);
        }
        let mut got = HashSet::new();
        let c = step(&ks, db, 0, 3, &mut got);
        assert_ne!(c, 0);
        assert_eq!(c & SCAN_SLOT_MASK, target as u64);
        // Force growth of that slot's table, then continue.
        for k in &same[20..] {
            put(&ks, db, k, None);
        }
        let mut c = c;
        while c != 0 {
            c = step(&ks, db, c, 3, &mut got);
        }
        for k in &same[..20] {
            assert!(got.contains(k.as_bytes()), "missed {k}");
        }
    }

    #[test]
    fn one_slot_growing_mid_scan() {
        // Fill one slot's table exactly to capacity, scan part of it, let one
        // insert grow the table (moving entries), then finish the scan.
        let target = slot_of(b"hot");
        let names: Vec<String> = (0u64..)
            .map(|i| format!("h{i}"))
            .filter(|k| slot_of(k.as_bytes()) == target)
            .take(2000)
            .collect();
        for fill in [7usize, 14, 28, 56, 112, 224, 448, 896] {
            for calls_before in [1usize, 2, 3, 5, 8, 13, 21] {
                let ks = Keyspace::new(1);
                let db = ks.db(0).unwrap();
                for k in &names[..fill] {
                    put(&ks, db, k, None);
                }
                assert_eq!(ks.lock_slot(db, target).len(), fill);
                let gen_before = ks.lock_slot(db, target).generation();
                let mut got = HashSet::new();
                let mut c = 0;
                for _ in 0..calls_before {
                    c = step(&ks, db, c, (fill / 16).max(1), &mut got);
                }
                if c == 0 {
                    continue;
                }
                put(&ks, db, &names[fill], None);
                assert_ne!(
                    ks.lock_slot(db, target).generation(),
                    gen_before,
                    "fill {fill} did not grow"
                );
                while c != 0 {
                    c = step(&ks, db, c, (fill / 16).max(1), &mut got);
                }
                for k in &names[..fill] {
                    assert!(
                        got.contains(k.as_bytes()),
                        "fill {fill}/{calls_before}: missed {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn scan_skips_and_removes_expired_and_handles_odd_cursors() {
        let ks = Keyspace::new(1);
        let db = ks.db(0).unwrap();
        put(&ks, db, "live", None);
        put(&ks, db, "dead", Some(5));
        let mut got = HashSet::new();
        let c = ks.scan(db, 0, 10, 10, |e, expired| {
            if !expired {
                got.insert(e.key().to_vec());
            }
        });
        assert_eq!(c, 0);
        assert_eq!(got.len(), 1);
        assert!(got.contains(&b"live"[..]));
        assert_eq!(db.len(), 1);
        assert_eq!(db.expired.load(Ordering::Relaxed), 1);
        // Garbage cursors terminate.
        assert_eq!(step(&ks, db, u64::MAX, 10, &mut got), 0);
        let mut c = 1u64 << 40;
        for _ in 0..2000 {
            if c == 0 {
                break;
            }
            c = step(&ks, db, c, 1, &mut got);
        }
        assert_eq!(c, 0);
    }

    #[test]
    fn random_key_and_for_each() {
        let ks = Keyspace::new(1);
        let db = ks.db(0).unwrap();
        assert_eq!(ks.random_key(db, 0), None);
        put(&ks, db, "only", None);
        assert_eq!(ks.random_key(db, 0).as_deref(), Some(&b"only"[..]));
        for i in 0..100 {
            put(&ks, db, &format!("exp{i}"), Some(5));
        }
        for _ in 0..20 {
            assert_eq!(ks.random_key(db, 10).as_deref(), Some(&b"only"[..]));
        }
        del(&ks, db, "only");
        assert_eq!(ks.random_key(db, 10), None);
        assert_eq!(db.len(), 0);
        let mut seen = HashSet::new();
        for i in 0..300 {
            put(&ks, db, &format!("r{i}"), None);
        }
        for _ in 0..3000 {
            seen.insert(ks.random_key(db, 0).unwrap());
        }
        assert!(seen.len() > 250, "random_key too unfair: {}", seen.len());
        let mut n = 0;
        ks.locker().for_each_entry(db, |_| n += 1);
        assert_eq!(n, 300);
    }

    #[test]
    fn cross_db_lock_orders_by_index() {
        let ks = Keyspace::new(3);
        assert!(ks.locker().lock_cross_db(1, b"a", 1, b"b").is_none());
        assert!(ks.locker().lock_cross_db(0, b"a", 9, b"b").is_none());
        {
            let (mut a, mut b) = ks.locker().lock_cross_db(2, b"k", 0, b"k").unwrap();
            a.insert(Entry::new_str(b"k", b"2", None, 0));
            b.insert(Entry::new_str(b"k", b"0", None, 0));
        }
        assert_eq!((ks.db(0).unwrap().len(), ks.db(2).unwrap().len()), (1, 1));
        // Concurrent opposite-direction locking must not deadlock.
        let ks = std::sync::Arc::new(ks);
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let ks = ks.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let (x, y) = if (t + i) % 2 == 0 { (0, 1) } else { (1, 0) };
                        drop(ks.locker().lock_cross_db(x, b"k", y, b"k"));
                        if i % 100 == 0 {
                            ks.swap_db(0, 1);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock set planned from `keys` in DB `db` as the gate plans one
    /// command's keys.
    fn planned<'a>(ks: &'a Keyspace, db: usize, keys: &[&[u8]]) -> LockSet<'a> {
        LockSet::plan_and_lock(ks, |p| {
            for k in keys {
                let slot = slot_of(k);
                p.add(db, slot);
                p.known.push((k.as_ptr() as usize, k.len(), slot));
            }
        })
    }

    #[test]
    fn the_gates_one_slot_is_lent_to_the_handler_and_comes_back() {
        let ks = Keyspace::new(2);
        let db = ks.db(1).unwrap();
        let key: &[u8] = b"k";
        let slot = slot_of(key);
        {
            let mut guard = ks.lock_slot_table(1, slot).unwrap();
            let one = OneSlot::new(1, slot, key, &mut guard);
            let locker = Locker::new(&ks, None, Some(&one));
            {
                let mut s = locker.lock_key(db, key);
                s.insert(Entry::new_str(key, b"v", None, 0));
                // Lent: a second taker of the same slot gets nothing.
                assert!(one.lend(1, slot).is_none());
            }
            // Back after the drop: an equal key at another address (found
            // by hashing) reaches the same table.
            let copy = key.to_vec();
            assert!(locker.lock_key(db, &copy).get(&copy, 0).is_some());
            // Another DB or slot is not this one.
            assert!(one.lend(0, slot).is_none());
            assert!(one.lend(1, slot ^ 1).is_none());
            assert!(one.lend(1, slot).is_some());
        }
        // The gate released the lock: anyone can take it now.
        assert_eq!(db.len(), 1);
        assert!(ks.lock_key(db, key).get(key, 0).is_some());
    }

    #[test]
    fn a_handler_locking_the_commands_own_keys_takes_the_sets_tables() {
        let ks = Keyspace::new(2);
        let db = ks.db(1).unwrap();
        let keys: [&[u8]; 4] = [b"a", b"b", b"{a}x", b"c"];
        let set = planned(&ks, 1, &keys);
        let held: &dyn HeldSlots = &set;
        let (mut slots, mut guards) = (MultiSlots::new(), MultiGuards::new());
        // The very arguments, in order: the set's slots, ascending.
        assert!(held.own_keys(1, &keys, &mut slots, &mut guards));
        let mut want: Vec<usize> = keys.iter().map(|k| slot_of(k)).collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(slots.to_vec(), want);
        assert_eq!(guards.len(), want.len());
        drop(slots);
        // While they are borrowed, a second taker gets nothing.
        fn takes(h: &dyn HeldSlots, db: usize, keys: &[&[u8]]) -> bool {
            let (mut s, mut g) = (MultiSlots::new(), MultiGuards::new());
            let took = h.own_keys(db, keys, &mut s, &mut g);
            assert_eq!(took, !s.is_empty());
            assert_eq!(s.len(), g.len());
            took
        }
        assert!(!takes(held, 1, &keys));
        drop(guards);
        assert!(takes(held, 1, &keys));
        // Equal keys at other addresses, a subset, another DB: no.
        let copies: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        let copies: Vec<&[u8]> = copies.iter().map(|k| k.as_slice()).collect();
        assert!(!takes(held, 1, &copies));
        assert!(!takes(held, 1, &keys[..2]));
        assert!(!takes(held, 0, &keys));
        // Through a Locker: MultiRef reads and writes under the set.
        let mut m = Locker::new(&ks, Some(held), None).lock_keys(db, keys);
        m.put(Entry::new_str(b"{a}x", b"1", None, 0));
        assert!(m.get(b"{a}x", 0).is_some());
        drop(m);
        drop(set);
        assert_eq!(db.len(), 1);
        // A plan with a slot no key argument explains (SORT … STORE).
        let set = LockSet::plan_and_lock(&ks, |p| {
            p.add(0, slot_of(b"a"));
            p.known.push((keys[0].as_ptr() as usize, 1, slot_of(b"a")));
            p.add(0, slot_of(b"dst"));
            p.extra = true;
        });
        assert!(!takes(&set, 0, &keys[..1]));
    }

    #[test]
    fn insert_get_remove_counts() {
        let ks = Keyspace::new(2);
        let db = ks.db(0).unwrap();
        {
            let mut s = ks.lock_key(db, b"a");
            s.insert(Entry::new_str(b"a", b"1", None, 0));
        }
        assert_eq!(db.len(), 1);
        assert_eq!(db.slot_len(579), 1);
        {
            let mut m = ks.lock_keys(db, [&b"a"[..], b"b", b"c"]);
            assert_eq!(m.get(b"a", 0).unwrap().as_str(), Some(&b"1"[..]));
            m.put(Entry::new_str(b"b", b"2", Some(100), 0));
            assert!(m.get(b"b", 50).is_some());
            assert_eq!(db.expires(), 1);
            // lazily expired
            assert!(m.get(b"b", 100).is_some());
            assert!(m.get(b"b", 101).is_none());
            assert_eq!(db.expires(), 0);
            assert!(m.remove(b"a").is_some());
        }
        assert_eq!(db.len(), 0);
        assert_eq!(db.slot_len(579), 0);
    }

    #[test]
    fn flush_swap_active_expire() {
        let ks = Keyspace::new(2);
        let (d0, d1) = (ks.db(0).unwrap(), ks.db(1).unwrap());
        for i in 0..1000u32 {
            let k = format!("k{i}");
            let exp = if i % 2 == 0 { Some(10) } else { None };
            ks.lock_key(d0, k.as_bytes())
                .insert(Entry::new_str(k.as_bytes(), b"v", exp, 0));
        }
        assert_eq!((d0.len(), d0.expires()), (1000, 500));
        ks.swap_db(0, 1);
        assert_eq!((d0.len(), d1.len(), d1.expires()), (0, 1000, 500));
        let removed = ks.active_expire(11, std::time::Duration::from_secs(5));
        assert_eq!(removed, 500);
        assert_eq!((d1.len(), d1.expires()), (500, 0));
        assert_eq!(ks.flush_db(1), 500);
        assert_eq!(d1.len(), 0);
        assert!((0..SLOTS).all(|s| d1.slot_len(s) == 0));
    }
}
