//! Slot migration shared state (codis.md §2.6, §2.7).
//!
//! * [`InFlight`]: per DB, the key sets that are being shipped to another
//!   server right now (a sync SLOTSMGRT* step waiting for the target's
//!   answer, or an async batch waiting for its last ACK). While a key (or,
//!   for a tagged key, its whole tag group) is in flight it stays readable on
//!   the source, but writes to it are refused: through
//!   SLOTSMGRT-EXEC-WRAPPER with code 1 (codis.md §2.7.4, the proxy retries),
//!   and for direct clients with `ERR the specified key is being migrated`
//!   from the execution gate. Codis 3.2 lets direct writes through and then
//!   loses them when the batch deletes the shipped keys; refusing keeps the
//!   value on source and target identical until the source copy is deleted.
//!   Once the target has acknowledged a set it is marked handed over
//!   ([`Server::hand_over`]) before its keys are deleted here: from then on
//!   the wrapper answers code 0 (go to the target) for them, and the
//!   wrapper's check and command run inside one writer epoch, so no wrapped
//!   read or write straddles a deletion (the migration thread deletes while
//!   commands run on other threads; in Codis both are one event loop).
//! * Deferred replies: a migration command that must wait for the network
//!   hands the connection a [`Pending`] future (`Ctx::defer`); the connection
//!   loop flushes earlier replies, awaits it, writes its bytes and goes on
//!   with the pipeline. Other clients keep being served meanwhile (Codis'
//!   sync commands block the whole server).

pub mod asyncm;
pub mod sync;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use protocol::slot::hash_tag;

/// A reply that is not ready yet: resolves to the RESP bytes to write.
pub type Pending = Pin<Box<dyn Future<Output = Vec<u8>> + Send + Sync + 'static>>;

/// Keys of one migration step or batch.
#[derive(Default)]
pub struct KeySet {
    keys: hashbrown::HashSet<Vec<u8>>,
    /// Tag CRCs of tagged keys in the set: a write to any key of the same
    /// tag group is refused too (codis.md §2.7.4, code 1).
    tags: hashbrown::HashSet<u32>,
    done: tokio::sync::Notify,
    finished: std::sync::atomic::AtomicBool,
    /// The target has acknowledged every key: they are about to be deleted
    /// here, and the wrapper sends their readers to the target (code 0).
    handed_over: std::sync::atomic::AtomicBool,
}

impl KeySet {
    pub fn new<I: IntoIterator<Item = Vec<u8>>>(keys: I) -> KeySet {
        let keys = keys.into_iter();
        let mut s = KeySet::default();
        s.keys.reserve(keys.size_hint().0);
        for k in keys {
            let (tag, tagged) = hash_tag(&k);
            if tagged {
                s.tags.insert(crc32fast::hash(tag));
            }
            s.keys.insert(k);
        }
        s
    }

    pub fn covers(&self, key: &[u8]) -> bool {
        if self.keys.contains(key) {
            return true;
        }
        let (tag, tagged) = hash_tag(key);
        tagged && self.tags.contains(&crc32fast::hash(tag))
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|k| &k[..])
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the target has all of the set's keys (see
    /// [`Server::hand_over`]).
    pub fn handed_over(&self) -> bool {
        self.handed_over.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Waits until the set has been released (the step or batch ended, with
    /// success or failure).
    pub async fn wait(&self) {
        loop {
            let n = self.done.notified();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            n.await;
        }
    }
}

#[derive(Default)]
struct DbFlight {
    count: AtomicUsize,
    sets: Mutex<Vec<Arc<KeySet>>>,
}

/// Per-DB registry of key sets in flight.
///
/// Writes and registrations may run on different threads (`io-threads > 1`,
/// and the migration thread, which picks and registers SLOT-form batches):
/// a write may pass the gate's check just before a set is registered and
/// then change a key after it was serialized (a lost write). Writers
/// therefore announce themselves in one of two epoch counters
/// ([`InFlight::enter`], two uncontended atomic operations per write) for
/// the duration of check + handler, and registration ends with
/// [`InFlight::quiesce`]: flip the epoch, then wait until every writer of
/// the old epoch has finished. Writers entering after the flip see the new
/// set. Callers of `begin_flight` must not hold a slot lock (a writer being
/// waited for may need it) and must serialize the keys only after it
/// returns.
pub struct InFlight {
    dbs: Vec<DbFlight>,
    epoch: std::sync::atomic::AtomicU64,
    writers: [AtomicUsize; 2],
    quiesce_lock: Mutex<()>,
}

/// A running write command (see [`InFlight::enter`]).
pub struct WriterGuard<'a> {
    reg: &'a InFlight,
    e: usize,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.reg.writers[self.e].fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps a key set registered; dropping it releases the keys and wakes
/// everyone waiting on them.
pub struct FlightGuard {
    reg: Arc<Server>,
    db: usize,
    set: Arc<KeySet>,
}

use crate::server::Server;

impl InFlight {
    pub fn new(databases: usize) -> InFlight {
        InFlight {
            dbs: (0..databases.max(1)).map(|_| DbFlight::default()).collect(),
            epoch: std::sync::atomic::AtomicU64::new(0),
            writers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            quiesce_lock: Mutex::new(()),
        }
    }

    /// A write command starts; it counts as running until the guard is
    /// dropped (also if the handler panics).
    ///
    /// The count must land in the parity of an epoch that is still current
    /// after the increment: a writer delayed between reading the epoch and
    /// incrementing could otherwise count itself under an epoch whose flip
    /// (and wait) already happened, and a later registration's wait (on the
    /// other parity) would not see it. So re-check, and retry if it moved.
    #[inline]
    pub fn enter(&self) -> WriterGuard<'_> {
        loop {
            let ep = self.epoch.load(Ordering::SeqCst);
            let e = (ep & 1) as usize;
            self.writers[e].fetch_add(1, Ordering::SeqCst);
            if self.epoch.load(Ordering::SeqCst) == ep {
                return WriterGuard { reg: self, e };
            }
            self.writers[e].fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Waits until every write that entered before this call has finished.
    /// Registrations are serialized here: two overlapping flips would each
    /// wait on one parity only and could both miss a writer counted under
    /// the epoch between them.
    pub(crate) fn quiesce(&self) {
        let _one_at_a_time = self.quiesce_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = (self.epoch.fetch_add(1, Ordering::SeqCst) & 1) as usize;
        let mut spins = 0u32;
        while self.writers[old].load(Ordering::SeqCst) != 0 {
            // Writers hold no lock we hold and run for microseconds.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Whether anything is in flight in DB `db` (one atomic load: the
    /// execution gate calls it for every write).
    #[inline]
    pub fn any(&self, db: usize) -> bool {
        self.dbs
            .get(db)
            .is_some_and(|d| d.count.load(Ordering::Acquire) > 0)
    }

    /// The in-flight set that covers `key` in DB `db`, if any.
    pub fn covering(&self, db: usize, key: &[u8]) -> Option<Arc<KeySet>> {
        let d = self.dbs.get(db)?;
        if d.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let sets = d.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.iter().find(|s| s.covers(key)).cloned()
    }

    pub fn is_migrating(&self, db: usize, key: &[u8]) -> bool {
        self.covering(db, key).is_some()
    }
}

impl Server {
    /// Registers `set` as in flight in DB `db` until the guard is dropped.
    /// On return no write to those keys is running or can start, so they can
    /// be serialized. Must be called without holding any slot lock.
    pub fn begin_flight(self: &Arc<Self>, db: usize, set: KeySet) -> FlightGuard {
        let set = Arc::new(set);
        if let Some(d) = self.inflight.dbs.get(db) {
            d.sets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(set.clone());
            d.count.fetch_add(1, Ordering::SeqCst);
        }
        self.inflight.quiesce();
        FlightGuard {
            reg: self.clone(),
            db,
            set,
        }
    }
}

impl FlightGuard {
    pub fn set(&self) -> &Arc<KeySet> {
        &self.set
    }
}

impl Server {
    /// The target acknowledged the keys of `guards`: marks their sets handed
    /// over, then waits until every command that entered before has
    /// finished, so the keys can be deleted here. SLOTSMGRT-EXEC-WRAPPER
    /// holds an epoch across its existence check and its command: one that
    /// started before this call reads the keys here (same value as on the
    /// target), one that starts after sees the mark and answers code 0 (go
    /// to the target), so no wrapped read finds a key missing on both sides
    /// between its check and its command. Same locking rules as
    /// [`Server::begin_flight`].
    pub fn hand_over<'a>(&self, guards: impl IntoIterator<Item = &'a FlightGuard>) {
        let mut any = false;
        for g in guards {
            g.set.handed_over.store(true, Ordering::SeqCst);
            any = true;
        }
        if any {
            self.inflight.quiesce();
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Some(d) = self.reg.inflight.dbs.get(self.db) {
            let mut sets = d.sets.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = sets.iter().position(|s| Arc::ptr_eq(s, &self.set)) {
                sets.swap_remove(i);
                d.count.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.set.finished.store(true, Ordering::Release);
        self.set.done.notify_waiters();
    }
}

/// The runtime that runs migration streams: the async migration's
/// connection tasks on the source, and on the target the connections that
/// send SLOTSRESTORE-ASYNC messages (net/mod.rs hands them over). One thread
/// of its own at a low CPU priority (nice 10): producing, restoring and
/// deleting keys then mostly use CPU that clients leave idle, since a client
/// request wakes a normal-priority thread which the kernel prefers. Not the
/// lowest priority: a preempted migration thread may hold a slot lock that
/// a client needs, so it must get the CPU back soon (nice 19 showed 50 ms
/// stalls on a busy 2-core machine), and a server saturated by clients still
/// migrates. `None` if the thread cannot be started (callers then use their
/// own runtime).
pub fn background() -> Option<&'static tokio::runtime::Handle> {
    static RT: std::sync::OnceLock<Option<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("migration".into())
            .spawn(move || {
                lower_priority();
                LAST_OFFER.with(|c| c.set(Some(std::time::Instant::now())));
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(_) => return,
                };
                let _ = tx.send(rt.handle().clone());
                rt.block_on(std::future::pending::<()>());
            })
            .ok()?;
        rx.recv().ok()
    })
    .as_ref()
}

/// The longest one piece of migration work (a fill of the send window, a
/// step of key selection or deletion) runs on the migration thread before it
/// passes through [`courtesy`].
pub const STEP: std::time::Duration = std::time::Duration::from_micros(50);

thread_local! {
    /// Set on the migration thread only: when it last offered the CPU.
    static LAST_OFFER: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Called between two pieces of work on the migration thread: once it has
/// run [`STEP`] since the last offer, it yields the CPU (`sched_yield`), so
/// a thread woken by a client request (an executor, or the client itself on
/// this machine) runs now rather than after the migration's time slice.
/// Nice 10 alone does not do that: the kernel (EEVDF) lets a running task
/// finish its protected slice before a woken one runs, and `perf sched`
/// showed clients waiting ~1 ms behind a migration thread. With nobody else
/// runnable the yield returns at once. A no-op on any other thread.
pub fn courtesy() {
    LAST_OFFER.with(|c| {
        let Some(last) = c.get() else { return };
        let now = std::time::Instant::now();
        if now.duration_since(last) >= STEP {
            std::thread::yield_now();
            c.set(Some(std::time::Instant::now()));
        }
    });
}

/// Between two pieces of a migration task's work: lets the other tasks of
/// its runtime run, then offers the CPU if [`STEP`] has passed
/// ([`courtesy`]).
pub async fn pause() {
    tokio::task::yield_now().await;
    courtesy();
}

/// The migration thread's nice value (see [`background`]).
const MIGRATION_NICE: libc::c_int = 10;

/// Nice 10 for the calling thread (Linux: the nice value is per thread).
/// One of the server's two `unsafe` blocks (the other: `stats::mono_ns`):
/// two plain syscalls no safe API offers.
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; failure is harmless
    // (the thread keeps the normal priority).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, MIGRATION_NICE);
    }
}

/// Remaining TTL in ms as both migration protocols send it: 0 = no expiry,
/// else the time left, at least 1 (codis.md §2.6 step 3, §2.7.1).
pub fn ttl_of(expire: Option<u64>, now: u64) -> u64 {
    match expire {
        None => 0,
        Some(e) => e.saturating_sub(now).max(1),
    }
}

/// Once a second from the server cron: closes idle cached migration
/// connections and times out stalled migrations.
pub fn cron(srv: &Arc<Server>) {
    sync::cron(srv);
    asyncm::cron(srv);
}

/// How a migration authenticates on its target: as `migration-user` with
/// `migration-password` when a user is configured, else (as Codis) with
/// our `requirepass` as the default user's password; None: not at all.
pub fn credentials(srv: &Server) -> Option<(Option<Vec<u8>>, Vec<u8>)> {
    let c = srv.config();
    let user = c.get_one("migration-user").unwrap_or_default();
    if !user.is_empty() {
        return Some((
            Some(user),
            c.get_one("migration-password").unwrap_or_default(),
        ));
    }
    c.requirepass.clone().map(|p| (None, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_covers_keys_and_tag_groups() {
        let s = KeySet::new([b"plain".to_vec(), b"{user}:1".to_vec()]);
        assert!(s.covers(b"plain"));
        assert!(s.covers(b"{user}:1"));
        assert!(s.covers(b"{user}:2"));
        assert!(s.covers(b"x{user}y"));
        assert!(!s.covers(b"user"));
        assert!(!s.covers(b"other"));
        assert_eq!(s.len(), 2);
    }
}
