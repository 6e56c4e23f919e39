//! Async ("semi-async") migration engine, source side (codis.md §2.7,
//! §2.7.1, §2.7.3, §2.7.6).
//!
//! * Per DB one cached [`Conn`] to a target `host:port`: a tokio task owns
//!   the socket; the shared [`ConnState`] (behind a std mutex, never held
//!   across an await) holds at most one [`Batch`].
//! * A batch is a list of keys registered in flight (`Server::begin_flight`:
//!   readable, not writable) and turned into `SLOTSRESTORE-ASYNC` messages
//!   one at a time, each produced under the key's slot lock: `delete`, then
//!   `string` / `object` (DUMP payload) or chunks of at most `maxbulks`
//!   bulks and the send window's bytes (`list|hash|dict|zset`, temporary TTL
//!   3 × timeout) and a final `expire`. How a value ships, the payload and
//!   the chunks' elements are `crate::codec`'s (`plan`, `dump_payload`,
//!   `Chunker`); `KeyIter` frames them as messages. The first batch on a
//!   connection is preceded by `SLOTSRESTORE-ASYNC-AUTH` (when we have a
//!   password) and `SLOTSRESTORE-ASYNC-SELECT db`.
//! * Streams (ours: codis-server 3.2 has none) ship as `object` or as our
//!   `stream` chunks (`codec::stream_chunk`). Before the first stream on a
//!   connection the target gets `SLOTSRESTORE-ASYNC stream <key> 0 0
//!   probe`, and nothing more is sent until it is answered: our targets ACK
//!   it with 0; codis-server 3.2 answers `unknown command (…)` (as would a
//!   build of ours without streams) and closes the connection, and the batch
//!   fails with `ERR interrupted: target … cannot take streams (…)` naming
//!   the key, before any message of the stream went out.
//! * Flow control: messages are produced while the unacked bytes stay under
//!   `maxbytes` (at least one message is always in flight); every message
//!   gets one `[SLOTSRESTORE-ASYNC-ACK, code, msg]` frame back. On the last
//!   ACK the shipped keys are deleted on the source (big values dropped on a
//!   background thread), the flight guard is released and every waiter (the
//!   caller, fences) gets the result. Any failure reaches every waiter as
//!   `ERR interrupted: ...` and deletes nothing.
//! * Lock order: registry slot → `ConnState` → keyspace slot locks.
//! * Differences from Codis: a caller is parked on its deferred reply, so
//!   "previous operation has not finished" cannot happen; chunks of pairs
//!   never exceed `maxbulks` (Codis may add one pair more: see
//!   `codec::chunk`); the window is
//!   counted in unacked bytes rather than output-buffer bytes; SLOT-form
//!   batches count tag-group members as one message each when filling.
//! * Known gap with `io-threads` > 1: the execution gate checks the
//!   in-flight registry before the handler takes its slot lock, so a write
//!   that passed the gate just before a batch registered its keys could
//!   land after the value was shipped (and be lost when the batch deletes
//!   the key). With the default single-threaded runtime the gate, the
//!   handler and the batch's reads are serialized and this cannot happen.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocol::resp::Reply;
use protocol::resp::request::{array as header, bulk, bulk_u64};
use protocol::slot::hash_tag;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

use crate::codec::{self, ChunkKind, Chunker, Shipping};
use crate::db::{Db, Entry, KeyAccess, Kind, now_ms};
use crate::errors;
use crate::migrate::{FlightGuard, KeySet, ttl_of};
use crate::server::Server;
use crate::warning;

/// An idle cached connection is closed after this long (codis.md §2.7.1).
pub const IDLE_TIMEOUT_MS: u64 = 60_000;
/// Upper bound on unacked messages, whatever their size.
const MAX_WINDOW_MSGS: usize = 10_000;
/// Largest frame accepted from the target (ACKs are tiny).
const MAX_FRAME: usize = 1 << 20;

pub const RESTORE_CMD: &[u8] = b"SLOTSRESTORE-ASYNC";
pub const AUTH_CMD: &[u8] = b"SLOTSRESTORE-ASYNC-AUTH";
pub const SELECT_CMD: &[u8] = b"SLOTSRESTORE-ASYNC-SELECT";
pub const ACK_CMD: &[u8] = b"SLOTSRESTORE-ASYNC-ACK";

/// Batch parameters after defaults and clamps.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub timeout: u64,
    pub maxbulks: usize,
    pub maxbytes: usize,
}

// ---------------------------------------------------------------------------
// Per-key iterator
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Delete,
    Value,
    Chunks,
    Expire,
    Done,
}

/// Estimated messages of a key's value (codis.md §2.7.1): 1, or its chunks.
fn estimate(e: &Entry, maxbulks: usize) -> usize {
    codec::plan(e.value(), maxbulks).messages(maxbulks)
}

/// The probe that asks a target whether it takes streams.
fn probe_msg(key: &[u8], out: &mut Vec<u8>) {
    header(out, 6);
    bulk(out, RESTORE_CMD);
    bulk(out, ChunkKind::Stream.word());
    bulk(out, key);
    bulk(out, b"0");
    bulk(out, b"0");
    bulk(out, codec::stream_chunk::PROBE);
}

/// Whether a target's answer to the probe is that of a server without
/// streams (codis-server 3.2 checks the arguments, then finds no such
/// subcommand).
fn refuses_streams(msg: &[u8]) -> bool {
    msg.starts_with(b"unknown command") || msg.starts_with(b"wrong number of arguments")
}

/// Produces the messages of one key, one per [`KeyIter::step`].
struct KeyIter {
    key: Vec<u8>,
    kind: Kind,
    how: Shipping,
    stage: Stage,
    hint: usize,
    expire: Option<u64>,
    /// The chunk emitter of a chunked value.
    chunker: Option<Chunker>,
    chunked_msgs: usize,
}

impl KeyIter {
    fn new(key: Vec<u8>, e: &Entry, maxbulks: usize) -> KeyIter {
        let plan = codec::plan(e.value(), maxbulks);
        KeyIter {
            key,
            kind: e.kind(),
            how: plan.how,
            stage: Stage::Delete,
            hint: plan.hint,
            expire: e.expire(),
            chunker: match plan.how {
                Shipping::Chunked(kind) => Some(Chunker::new(kind)),
                _ => None,
            },
            chunked_msgs: plan.chunks(maxbulks),
        }
    }

    /// The iterator of a key not looked up yet (STATUS' prepare stage).
    fn blank() -> KeyIter {
        KeyIter {
            key: Vec::new(),
            kind: Kind::String,
            how: Shipping::Str,
            stage: Stage::Delete,
            hint: 0,
            expire: None,
            chunker: None,
            chunked_msgs: 0,
        }
    }

    fn done(&self) -> bool {
        self.stage == Stage::Done
    }

    fn delete_msg(&self, out: &mut Vec<u8>) {
        header(out, 3);
        bulk(out, RESTORE_CMD);
        bulk(out, b"delete");
        bulk(out, &self.key);
    }

    /// Writes the next message of this key into `out`; false when the key
    /// has nothing more to send. `budget` is the space left in the send
    /// window (chunks stop there, after at least one element).
    fn step(
        &mut self,
        srv: &Server,
        db: &Db,
        now: u64,
        p: &Params,
        budget: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        loop {
            match self.stage {
                Stage::Done => return false,
                Stage::Delete => {
                    self.delete_msg(out);
                    self.stage = match self.how {
                        Shipping::Chunked(_) => Stage::Chunks,
                        _ => Stage::Value,
                    };
                    return true;
                }
                Stage::Value => {
                    self.stage = Stage::Done;
                    let mut r = srv.ks.lock_key(db, &self.key);
                    // The key vanished (FLUSHDB, expiry): the target only
                    // got `delete`, which is consistent.
                    let Some(e) = r.peek(&self.key) else {
                        return false;
                    };
                    let ttl = ttl_of(e.expire(), now);
                    header(out, 5);
                    bulk(out, RESTORE_CMD);
                    match (self.how, e.as_str()) {
                        (Shipping::Str, Some(s)) => {
                            bulk(out, b"string");
                            bulk(out, &self.key);
                            bulk_u64(out, ttl);
                            bulk(out, s);
                        }
                        _ => {
                            bulk(out, b"object");
                            bulk(out, &self.key);
                            bulk_u64(out, ttl);
                            bulk(out, &codec::dump_payload(e.value()));
                        }
                    }
                    return true;
                }
                Stage::Chunks => {
                    let mut r = srv.ks.lock_key(db, &self.key);
                    let Some(e) = r.peek(&self.key) else {
                        // Vanished mid-way: drop the partial copy too.
                        self.stage = Stage::Done;
                        self.delete_msg(out);
                        return true;
                    };
                    let (wrote, finished) = self.chunk(e, p, budget, out);
                    if finished {
                        self.stage = Stage::Expire;
                    }
                    if wrote {
                        return true;
                    }
                }
                Stage::Expire => {
                    self.stage = Stage::Done;
                    let mut r = srv.ks.lock_key(db, &self.key);
                    let Some(e) = r.peek(&self.key) else {
                        self.delete_msg(out);
                        return true;
                    };
                    let ttl = ttl_of(e.expire(), now);
                    header(out, 4);
                    bulk(out, RESTORE_CMD);
                    bulk(out, b"expire");
                    bulk(out, &self.key);
                    bulk_u64(out, ttl);
                    return true;
                }
            }
        }
    }

    /// One chunk message (if it has elements); returns (wrote, finished).
    fn chunk(&mut self, e: &Entry, p: &Params, budget: usize, out: &mut Vec<u8>) -> (bool, bool) {
        let Some(c) = self.chunker.as_mut() else {
            return (false, true);
        };
        let mut body = Vec::new();
        let (n, finished) = c.next(e.value(), p.maxbulks, budget, &mut body);
        if n == 0 {
            return (false, finished);
        }
        header(out, 5 + n);
        bulk(out, RESTORE_CMD);
        bulk(out, c.kind().word());
        bulk(out, &self.key);
        bulk_u64(out, p.timeout.saturating_mul(3));
        bulk_u64(out, self.hint as u64);
        out.extend_from_slice(&body);
        (true, finished)
    }

    /// STATUS fields of a key iterator, numbered as Codis does: Redis 3.2
    /// type numbers, stages 0 prepare .. 4 done, absolute expiry or -1, and
    /// the value's chunk count (0 when not chunked).
    fn status(&self, r: &mut Reply) {
        let ty = match self.kind {
            Kind::String => 0,
            Kind::List => 1,
            Kind::Set => 2,
            Kind::ZSet => 3,
            Kind::Hash => 4,
            Kind::Stream => 6,
        };
        let stage = match self.stage {
            Stage::Delete => 0,
            Stage::Value => 1,
            Stage::Chunks => 2,
            Stage::Expire => 3,
            Stage::Done => 4,
        };
        iter_status(
            r,
            &self.key,
            ty,
            stage,
            self.expire.map_or(-1, |e| e as i64),
            self,
        );
    }
}

fn iter_status(r: &mut Reply, key: &[u8], ty: i64, stage: i64, expire: i64, it: &KeyIter) {
    let (cursor, lindex, zindex) = it.chunker.as_ref().map_or((0, 0, 0), Chunker::positions);
    r.array(16);
    r.bulk(b"key");
    r.bulk(key);
    r.bulk(b"val.type");
    r.bulk_int(ty);
    r.bulk(b"stage");
    r.bulk_int(stage);
    r.bulk(b"expire");
    r.bulk_int(expire);
    r.bulk(b"cursor");
    r.bulk_int(cursor as i64);
    r.bulk(b"lindex");
    r.bulk_int(lindex as i64);
    r.bulk(b"zindex");
    r.bulk_int(zindex as i64);
    r.bulk(b"chunked_msgs");
    r.bulk_int(it.chunked_msgs as i64);
}

/// SLOTSMGRT{ONE,TAGONE}-ASYNC-DUMP: every message for `keys`, as one array
/// (codis.md §2.7.2). Keys that do not exist produce nothing.
pub fn dump_messages(srv: &Server, db: &Db, keys: &[Vec<u8>], p: &Params, now: u64, r: &mut Reply) {
    let mut body = Vec::new();
    let mut n = 0usize;
    for key in keys {
        let it = {
            let mut s = srv.ks.lock_key(db, key);
            s.get(key, now)
                .map(|e| KeyIter::new(key.clone(), e, p.maxbulks))
        };
        let Some(mut it) = it else { continue };
        while it.step(srv, db, now, p, usize::MAX, &mut body) {
            n += 1;
        }
    }
    r.array(n);
    r.buf.extend_from_slice(&body);
}

// ---------------------------------------------------------------------------
// Key selection
// ---------------------------------------------------------------------------

/// ONE / TAGONE: the listed keys (deduplicated, in order), with TAGONE
/// adding every key of a listed key's tag group (sorted).
pub fn select_keys(srv: &Server, db: &Db, keys: &[&[u8]], tag: bool) -> Vec<Vec<u8>> {
    let mut seen = hashbrown::HashSet::new();
    let mut out = Vec::new();
    for &k in keys {
        let (t, tagged) = hash_tag(k);
        // The listed key first, then the rest of its tag group (sorted).
        if seen.insert(k.to_vec()) {
            out.push(k.to_vec());
        }
        if tag && tagged {
            let mut group = srv.ks.lock_key(db, k).tag_keys(crc32fast::hash(t));
            group.sort_unstable();
            for g in group {
                if seen.insert(g.clone()) {
                    out.push(g);
                }
            }
        }
    }
    out
}

/// The key selection of a SLOT-form batch, done in steps of at most
/// [`STEP`](crate::migrate::STEP) on the migration thread (a step walks part
/// of the slot under its lock, then registers what it chose).
pub struct Picking {
    numkeys: usize,
    tag: bool,
    /// Hashes of the keys chosen so far (a key met twice, after the table
    /// moved its entries between two steps, is chosen once; a hash
    /// collision only leaves a key for the next batch).
    seen: hashbrown::HashSet<u64>,
    hasher: ahash::RandomState,
    /// Buckets walked so far: the walk stops after one lap.
    walked: usize,
}

impl Picking {
    pub fn new(numkeys: usize, tag: bool) -> Picking {
        Picking {
            numkeys,
            tag,
            seen: hashbrown::HashSet::new(),
            hasher: ahash::RandomState::new(),
            walked: 0,
        }
    }

    fn first_time(&mut self, key: &[u8]) -> bool {
        self.seen.insert(self.hasher.hash_one(key))
    }
}

/// One step of a SLOT / TAGSLOT selection: more keys of `slot` until the
/// batch holds `numkeys` keys (or estimated messages), the walk has made
/// one lap of the slot's buckets, or `deadline` passed. TAGSLOT expands
/// every admitted tagged key to its tag group. Expired keys met on the way
/// are removed. `have` is the batch's (keys, estimated messages) so far.
/// Returns the new keys, their estimated messages and whether the selection
/// is over. The walk starts where the previous step or batch of the same
/// slot stopped (the buckets before it were emptied by that batch), or at a
/// random bucket, and wraps around.
#[allow(clippy::too_many_arguments)]
pub fn select_slot(
    srv: &Server,
    dbi: usize,
    db: &Db,
    slot: usize,
    pick: &mut Picking,
    have: (usize, usize),
    maxbulks: usize,
    now: u64,
    deadline: std::time::Instant,
) -> (Vec<Vec<u8>>, usize, bool) {
    let mut r = srv.ks.lock_slot(db, slot);
    let nb = r.num_buckets();
    if r.is_empty() || nb == 0 {
        return (Vec::new(), 0, true);
    }
    let start = srv
        .asyncm
        .resume_at(dbi, slot)
        .filter(|&b| b < nb)
        .unwrap_or_else(|| rand::random_range(0..nb));
    let numkeys = pick.numkeys;
    let (mut count, mut est) = have;
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut expired: Vec<Vec<u8>> = Vec::new();
    let lap = nb.saturating_sub(pick.walked);
    let mut done = true;
    let mut stop = start;
    let mut i = 0;
    while i < lap {
        stop = (start + i) % nb;
        if count >= numkeys || est >= numkeys {
            break;
        }
        if i > 0 && std::time::Instant::now() >= deadline {
            done = false;
            break;
        }
        i += 1;
        let Some(e) = r.bucket(stop) else {
            continue;
        };
        if e.is_expired(now) {
            expired.push(e.key().to_vec());
            continue;
        }
        let m = estimate(e, maxbulks);
        if count > 0 && est + m > 2 * numkeys {
            continue;
        }
        if !pick.first_time(e.key()) {
            continue;
        }
        let key = e.key().to_vec();
        let (t, tagged) = hash_tag(&key);
        let group = if pick.tag && tagged {
            let mut g = r.tag_keys(crc32fast::hash(t));
            g.sort_unstable();
            g
        } else {
            Vec::new()
        };
        est += m;
        count += 1;
        out.push(key);
        // Tag-group members count one message each here (their values
        // are not looked at while the slot table is being walked).
        for g in group {
            if pick.first_time(&g) {
                est += 1;
                count += 1;
                out.push(g);
            }
        }
    }
    if i == lap {
        // One lap made: resume after the last bucket next time.
        stop = (start + i) % nb;
    }
    pick.walked += i;
    for k in &expired {
        if let Some(old) = r.remove(k) {
            db.expired
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::db::KeyEvents::expired(srv, dbi, k);
            crate::db::drop_later(old);
        }
    }
    srv.asyncm.set_resume(dbi, slot, stop);
    (out, est - have.1, done)
}

// ---------------------------------------------------------------------------
// Batches and connections
// ---------------------------------------------------------------------------

/// One batch of keys being shipped.
pub struct Batch {
    /// Tells this batch from a later one of the same connection.
    serial: u64,
    slot: Option<usize>,
    params: Params,
    keys: Vec<Vec<u8>>,
    next_key: usize,
    cur: Option<KeyIter>,
    shipped: Vec<Vec<u8>>,
    estimate_msgs: usize,
    chunked_vals: usize,
    waiters: Vec<oneshot::Sender<Vec<u8>>>,
    /// The batch's keys are registered in flight (one guard per selection
    /// step for SLOT forms).
    guards: Vec<FlightGuard>,
    last_progress: u64,
    /// The unacked messages, oldest first.
    unacked: VecDeque<Sent>,
    unacked_bytes: usize,
    /// After the last ACK: the next shipped key to delete and the reply.
    deleting: Option<(usize, Vec<u8>)>,
    /// SLOT forms while keys are still being chosen. The connection task
    /// picks and registers the keys on the migration thread, in steps, so
    /// the walk over the slot and the allocations it needs never delay the
    /// clients of the main executor; what is chosen ships meanwhile.
    picking: Option<Picking>,
}

impl Batch {
    fn exhausted(&self) -> bool {
        self.picking.is_none()
            && self.cur.as_ref().is_none_or(KeyIter::done)
            && self.next_key >= self.keys.len()
    }

    fn sent(&mut self, bytes: usize) {
        self.unacked.push_back(Sent {
            bytes,
            probe: false,
        });
        self.unacked_bytes += bytes;
    }

    /// Ends the batch with an error for every waiter (nothing is deleted).
    fn fail(mut self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 3);
        bytes.push(b'-');
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.guards.clear();
        for w in self.waiters.drain(..) {
            let _ = w.send(bytes.clone());
        }
    }
}

/// One unacked message.
#[derive(Debug, Clone, Copy)]
struct Sent {
    bytes: usize,
    /// The stream probe (nothing more is sent until it is answered).
    probe: bool,
}

/// What a connection knows of its target's streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Streams {
    #[default]
    Unknown,
    /// The probe is out, sent for this key.
    Probing(Vec<u8>),
    /// The target answered the probe with 0.
    Taken,
}

/// Shared state of one cached connection.
pub struct ConnState {
    timeout: u64,
    lastuse: u64,
    /// AUTH/SELECT were sent on this connection.
    used: bool,
    streams: Streams,
    aborted: bool,
    batch: Option<Batch>,
}

/// One cached connection of a DB to a target.
pub struct Conn {
    pub host: String,
    pub port: u16,
    db: usize,
    st: Mutex<ConnState>,
    wake: Notify,
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tears the connection down: waiters get `text`, the task exits.
    /// False if it was already torn down.
    fn abort(self: &Arc<Self>, srv: &Server, text: &str) -> bool {
        let batch = {
            let mut st = self.lock();
            if st.aborted {
                return false;
            }
            st.aborted = true;
            st.batch.take()
        };
        srv.asyncm.remove_if(self.db, self);
        if let Some(b) = batch {
            b.fail(text);
        }
        self.wake.notify_one();
        true
    }
}

/// Per-DB cached connections (a field of [`Server`]).
pub struct Registry {
    dbs: Vec<Mutex<Option<Arc<Conn>>>>,
    /// Per DB: where the last SLOT-form batch stopped walking its slot
    /// (`slot << 32 | bucket`), so the next batch of the same slot goes on
    /// from there instead of re-walking the buckets emptied by the batches
    /// before it.
    resume: Vec<std::sync::atomic::AtomicU64>,
}

impl Registry {
    pub fn new(databases: usize) -> Registry {
        Registry {
            dbs: (0..databases.max(1)).map(|_| Mutex::new(None)).collect(),
            resume: (0..databases.max(1))
                .map(|_| std::sync::atomic::AtomicU64::new(u64::MAX))
                .collect(),
        }
    }

    /// The bucket to start a batch of `slot` from (see `resume`).
    fn resume_at(&self, db: usize, slot: usize) -> Option<usize> {
        let v = self
            .resume
            .get(db)?
            .load(std::sync::atomic::Ordering::Relaxed);
        (v >> 32 == slot as u64).then_some((v & 0xffff_ffff) as usize)
    }

    fn set_resume(&self, db: usize, slot: usize, bucket: usize) {
        if let Some(r) = self.resume.get(db) {
            let v = (slot as u64) << 32 | (bucket as u64 & 0xffff_ffff);
            r.store(v, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn slot(&self, db: usize) -> Option<MutexGuard<'_, Option<Arc<Conn>>>> {
        self.dbs
            .get(db)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn get(&self, db: usize) -> Option<Arc<Conn>> {
        self.slot(db)?.clone()
    }

    fn remove_if(&self, db: usize, conn: &Arc<Conn>) {
        if let Some(mut s) = self.slot(db)
            && s.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn))
        {
            *s = None;
        }
    }

    /// Whether this server is migrating a batch out of DB `db` (the target
    /// side refuses restores into a DB it is migrating out of).
    pub fn migrating(&self, db: usize) -> bool {
        self.get(db).is_some_and(|c| c.lock().batch.is_some())
    }
}

/// What a batch command asks for.
pub enum Select<'a> {
    Keys(Vec<&'a [u8]>, bool),
    Slot(usize, usize, bool),
}

/// Starts a batch on DB `db` to `host:port` (codis.md §2.7.1); the receiver
/// yields the RESP reply bytes for the caller.
pub fn start(
    srv: &Arc<Server>,
    db: usize,
    host: &str,
    port: u16,
    p: Params,
    sel: Select<'_>,
) -> Result<oneshot::Receiver<Vec<u8>>, String> {
    let Some(dbref) = srv.ks.db(db) else {
        return Err(errors::INVALID_DB.into());
    };
    let mut existing = srv.asyncm.get(db);
    if let Some(c) = existing.clone() {
        let (busy, dead) = {
            let st = c.lock();
            (st.batch.is_some(), st.aborted)
        };
        if busy && !dead {
            return Err(errors::ASYNC_DB_BEING_MIGRATED.into());
        }
        if dead {
            existing = None;
        } else if c.host != host || c.port != port {
            c.abort(srv, errors::ASYNC_NEW_CONN);
            existing = None;
        }
    }
    let now = now_ms();
    let (slot, keys, estimate_msgs, guards, picking) = match sel {
        Select::Keys(keys, tag) => {
            let keys = select_keys(srv, dbref, &keys, tag);
            let mut est = 0;
            for k in &keys {
                if let Some(e) = srv.ks.lock_key(dbref, k).peek(k) {
                    est += estimate(e, p.maxbulks);
                }
            }
            let guard = srv.begin_flight(db, KeySet::new(keys.iter().cloned()));
            (None, keys, est, vec![guard], None)
        }
        Select::Slot(slot, numkeys, tag) => (
            Some(slot),
            Vec::new(),
            0,
            Vec::new(),
            Some(Picking::new(numkeys, tag)),
        ),
    };
    let (tx, rx) = oneshot::channel();
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let batch = Batch {
        serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        slot,
        params: p,
        keys,
        next_key: 0,
        cur: None,
        shipped: Vec::new(),
        estimate_msgs,
        chunked_vals: 0,
        waiters: vec![tx],
        guards,
        last_progress: now,
        unacked: VecDeque::new(),
        deleting: None,
        picking,
        unacked_bytes: 0,
    };
    let conn = match existing {
        Some(c) => c,
        None => {
            let c = Arc::new(Conn {
                host: host.to_string(),
                port,
                db,
                st: Mutex::new(ConnState {
                    timeout: p.timeout,
                    lastuse: now,
                    used: false,
                    streams: Streams::Unknown,
                    aborted: false,
                    batch: None,
                }),
                wake: Notify::new(),
            });
            {
                let Some(mut s) = srv.asyncm.slot(db) else {
                    return Err(errors::INVALID_DB.into());
                };
                if s.as_ref().is_some_and(|o| !o.lock().aborted) {
                    // Another client raced us to this DB.
                    return Err(errors::ASYNC_DB_BEING_MIGRATED.into());
                }
                *s = Some(c.clone());
            }
            // On the low-priority migration thread (see migrate::background).
            match crate::migrate::background() {
                Some(rt) => drop(rt.spawn(conn_task(srv.clone(), c.clone()))),
                None => drop(tokio::spawn(conn_task(srv.clone(), c.clone()))),
            }
            c
        }
    };
    {
        let mut st = conn.lock();
        if st.aborted {
            drop(st);
            batch.fail(errors::ASYNC_CONN_CLOSED);
            return Ok(rx);
        }
        if st.batch.is_some() {
            return Err(errors::ASYNC_DB_BEING_MIGRATED.into());
        }
        st.timeout = p.timeout;
        st.lastuse = now;
        st.batch = Some(batch);
    }
    conn.wake.notify_one();
    Ok(rx)
}

/// SLOTSMGRT-ASYNC-FENCE: a receiver for the running batch's result, or
/// `None` when no batch is in flight on `db`.
pub fn fence(srv: &Server, db: usize) -> Option<oneshot::Receiver<Vec<u8>>> {
    let c = srv.asyncm.get(db)?;
    let mut st = c.lock();
    let b = st.batch.as_mut()?;
    let (tx, rx) = oneshot::channel();
    b.waiters.push(tx);
    Some(rx)
}

/// SLOTSMGRT-ASYNC-CANCEL: true if there was a connection to tear down.
pub fn cancel(srv: &Server, db: usize) -> bool {
    match srv.asyncm.get(db) {
        Some(c) => c.abort(srv, errors::ASYNC_CANCELED),
        None => false,
    }
}

/// SLOTSMGRT-ASYNC-STATUS (codis.md §2.7.3).
pub fn status(srv: &Server, db: usize, r: &mut Reply) {
    let Some(c) = srv.asyncm.get(db) else {
        r.null_array();
        return;
    };
    let now = now_ms();
    let st = c.lock();
    r.array(18);
    r.bulk(b"host");
    r.bulk(c.host.as_bytes());
    r.bulk(b"port");
    r.bulk_int(i64::from(c.port));
    r.bulk(b"used");
    r.bulk_int(i64::from(st.used));
    r.bulk(b"timeout");
    r.bulk_int(st.timeout as i64);
    r.bulk(b"lastuse");
    r.bulk_int(st.lastuse as i64);
    r.bulk(b"since_lastuse");
    r.bulk_int(now.saturating_sub(st.lastuse) as i64);
    r.bulk(b"sending_msgs");
    r.bulk_int(st.batch.as_ref().map_or(0, |b| b.unacked.len()) as i64);
    r.bulk(b"blocked_clients");
    r.bulk_int(st.batch.as_ref().map_or(0, |b| b.waiters.len()) as i64);
    r.bulk(b"batched_iterator");
    let Some(b) = st.batch.as_ref() else {
        r.null_array();
        return;
    };
    r.array(16);
    r.bulk(b"keys");
    r.array(2);
    r.bulk_int(b.keys.len() as i64);
    r.array(b.keys.len());
    for k in &b.keys {
        r.bulk(k);
    }
    r.bulk(b"timeout");
    r.bulk_int(b.params.timeout as i64);
    r.bulk(b"maxbulks");
    r.bulk_int(b.params.maxbulks as i64);
    r.bulk(b"maxbytes");
    r.bulk_int(b.params.maxbytes as i64);
    r.bulk(b"estimate_msgs");
    r.bulk_int(b.estimate_msgs as i64);
    r.bulk(b"removed_keys");
    r.bulk_int(b.shipped.len() as i64);
    r.bulk(b"chunked_vals");
    r.bulk_int(b.chunked_vals as i64);
    r.bulk(b"iterators");
    r.array(2);
    let cur = b.cur.as_ref().filter(|c| !c.done());
    let pending = b.keys.len().saturating_sub(b.next_key);
    r.bulk_int((pending + usize::from(cur.is_some())) as i64);
    match (cur, b.keys.get(b.next_key)) {
        (Some(it), _) => it.status(r),
        // The next key, not looked up yet (Codis' prepare stage).
        (None, Some(k)) => {
            iter_status(r, k, -1, 0, 0, &KeyIter::blank());
        }
        (None, None) => r.null_array(),
    }
}

/// Fills the send window; true when the batch is complete (every message
/// acked and nothing left to send).
fn produce(srv: &Server, conn: &Conn, st: &mut ConnState, out: &mut Vec<u8>) -> bool {
    let ConnState {
        used,
        batch,
        streams,
        ..
    } = st;
    let Some(b) = batch.as_mut() else {
        return false;
    };
    let Some(db) = srv.ks.db(conn.db) else {
        return false;
    };
    let now = now_ms();
    // A time budget per fill (Codis: 500 µs at start, 10 µs per ACK; ours
    // is migrate::STEP, then the task yields and offers the CPU) keeps the
    // thread responsive; more is produced as ACKs come back.
    let deadline = std::time::Instant::now() + crate::migrate::STEP;
    loop {
        if !b.unacked.is_empty() && std::time::Instant::now() >= deadline {
            break;
        }
        if matches!(streams, Streams::Probing(_)) {
            // The probe's answer first.
            break;
        }
        let room = b.unacked.is_empty()
            || (b.unacked_bytes < b.params.maxbytes && b.unacked.len() < MAX_WINDOW_MSGS);
        if !room {
            break;
        }
        if b.cur.as_ref().is_none_or(KeyIter::done) {
            b.cur = None;
            let Some(key) = b.keys.get(b.next_key).cloned() else {
                break;
            };
            b.next_key += 1;
            let it = {
                let mut r = srv.ks.lock_key(db, &key);
                r.get(&key, now)
                    .map(|e| KeyIter::new(key, e, b.params.maxbulks))
            };
            let Some(it) = it else { continue };
            if matches!(it.how, Shipping::Chunked(_)) {
                b.chunked_vals += 1;
            }
            b.shipped.push(it.key.clone());
            b.cur = Some(it);
            if !*used {
                *used = true;
                if let Some((user, pass)) = crate::migrate::credentials(srv) {
                    let at = out.len();
                    header(out, if user.is_some() { 3 } else { 2 });
                    bulk(out, AUTH_CMD);
                    if let Some(u) = &user {
                        bulk(out, u);
                    }
                    bulk(out, &pass);
                    b.sent(out.len() - at);
                }
                let at = out.len();
                header(out, 2);
                bulk(out, SELECT_CMD);
                bulk_u64(out, conn.db as u64);
                b.sent(out.len() - at);
            }
            if let Some(it) = b.cur.as_ref().filter(|it| it.kind == Kind::Stream)
                && *streams == Streams::Unknown
            {
                let at = out.len();
                probe_msg(&it.key, out);
                let bytes = out.len() - at;
                b.unacked.push_back(Sent { bytes, probe: true });
                b.unacked_bytes += bytes;
                *streams = Streams::Probing(it.key.clone());
            }
            continue;
        }
        let budget = b.params.maxbytes.saturating_sub(b.unacked_bytes);
        let at = out.len();
        let params = b.params;
        let wrote = match b.cur.as_mut() {
            Some(it) => it.step(srv, db, now, &params, budget, out),
            None => false,
        };
        if wrote {
            b.sent(out.len() - at);
        }
    }
    b.unacked.is_empty() && b.exhausted()
}

/// The last ACK arrived: hand the keys over (`Server::hand_over`: the exec
/// wrapper sends their callers to the target from now on), delete them for
/// at most [`STEP`](crate::migrate::STEP) per call (the task yields between
/// calls, so a batch of thousands of keys does not stall the loop; the keys
/// stay registered in flight, hence unwritable, until the last one is
/// gone), then answer every waiter. The slot size in
/// the reply is measured before the first deletion (codis.md §2.7.1).
/// Returns true when the batch is over.
fn complete(srv: &Server, conn: &Conn, st: &mut ConnState) -> bool {
    let Some(b) = st.batch.as_mut() else {
        return true;
    };
    st.lastuse = now_ms();
    let Some(db) = srv.ks.db(conn.db) else {
        if let Some(b) = st.batch.take() {
            b.fail(errors::ASYNC_CONN_CLOSED);
        }
        return true;
    };
    if b.deleting.is_none() {
        srv.hand_over(&b.guards);
    }
    let (next, _) = b.deleting.get_or_insert_with(|| {
        let reply = match b.slot {
            Some(s) => format!("*2\r\n:{}\r\n:{}\r\n", b.shipped.len(), db.slot_len(s)),
            None => format!(":{}\r\n", b.shipped.len()),
        };
        (0, reply.into_bytes())
    });
    let deadline = std::time::Instant::now() + crate::migrate::STEP;
    for k in b.shipped.get(*next..).unwrap_or_default() {
        let old = {
            let mut s = srv.ks.lock_key(db, k);
            let old = s.remove(k);
            if old.is_some() {
                srv.migrated_away(db.index(), k);
            }
            old
        };
        if let Some(e) = old {
            // Values with millions of elements are freed on a background
            // thread (Codis' lazy release).
            crate::db::drop_later(e);
        }
        *next += 1;
        if std::time::Instant::now() >= deadline {
            break;
        }
    }
    if *next < b.shipped.len() {
        return false;
    }
    let Some(mut b) = st.batch.take() else {
        return true;
    };
    b.guards.clear();
    let bytes = b.deleting.take().map(|(_, r)| r).unwrap_or_default();
    for w in b.waiters.drain(..) {
        let _ = w.send(bytes.clone());
    }
    true
}

// ---------------------------------------------------------------------------
// The connection task
// ---------------------------------------------------------------------------

async fn conn_task(srv: Arc<Server>, conn: Arc<Conn>) {
    if let Err(text) = run_conn(&srv, &conn).await {
        conn.abort(&srv, &text);
    }
}

async fn connect(host: &str, port: u16, timeout_ms: u64) -> Result<TcpStream, String> {
    let dur = Duration::from_millis(timeout_ms.clamp(1, 100));
    match tokio::time::timeout(dur, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => Ok(s),
        // A refused port "connects" in Codis (non-blocking connect) and
        // then fails the batch (codis.md §2.7.1).
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(errors::ASYNC_CONN_CLOSED.into())
        }
        _ => Err(errors::async_create_client(host, port)),
    }
}

async fn run_conn(srv: &Server, conn: &Conn) -> Result<(), String> {
    let timeout = conn.lock().timeout;
    let stream = connect(&conn.host, conn.port, timeout).await?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut inbuf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    loop {
        // Let the other connections of this thread run between two steps of
        // the migration (tokio's cooperative budget alone would let this
        // loop run up to 128 ready I/O operations in a row).
        crate::migrate::pause().await;
        select_pending(srv, conn);
        crate::migrate::courtesy();
        let active = {
            let mut st = conn.lock();
            if st.aborted {
                return Ok(());
            }
            let deleting = st.batch.as_ref().is_some_and(|b| b.deleting.is_some());
            if st.batch.is_some() {
                // The latency monitor's `slot-migration` event: one step
                // of producing or deleting keys (it holds their slots).
                let t0 = srv.latency.on().then(std::time::Instant::now);
                let r = if deleting || produce(srv, conn, &mut st, &mut out) {
                    if !complete(srv, conn, &mut st) {
                        // More keys to delete: come back after the yield.
                        conn.wake.notify_one();
                    }
                    false
                } else {
                    true
                };
                if let Some(t) = t0 {
                    srv.latency
                        .consider("slot-migration", t.elapsed().as_millis() as u64);
                }
                r
            } else {
                false
            }
        };
        let writing = pos < out.len();
        tokio::select! {
            r = wr.write(&out[pos..]), if writing => match r {
                Ok(n) if n > 0 => {
                    pos += n;
                    if pos == out.len() {
                        out.clear();
                        pos = 0;
                    } else if pos > 1 << 20 {
                        out.drain(..pos);
                        pos = 0;
                    }
                }
                _ => return Err(errors::ASYNC_CONN_CLOSED.into()),
            },
            r = rd.read_buf(&mut inbuf) => {
                match r {
                    Ok(n) if n > 0 && active => {}
                    _ => return Err(errors::ASYNC_CONN_CLOSED.into()),
                }
                let mut used = 0usize;
                while let Some((frame, n)) = parse_frame(inbuf.get(used..).unwrap_or(&[]))? {
                    used += n;
                    on_ack(conn, &frame)?;
                }
                inbuf.drain(..used);
            }
            _ = conn.wake.notified() => {}
        }
    }
}

/// Chooses and registers the keys of a SLOT-form batch that is waiting for
/// them (see `Batch::picking`), without holding the connection's
/// lock meanwhile (registering may wait for running writes).
fn select_pending(srv: &Server, conn: &Conn) {
    let (serial, slot, mut pick, have, maxbulks) = {
        let mut st = conn.lock();
        let Some(b) = st.batch.as_mut() else { return };
        let Some(slot) = b.slot else { return };
        let Some(pick) = b.picking.take() else { return };
        let have = (b.keys.len(), b.estimate_msgs);
        (b.serial, slot, pick, have, b.params.maxbulks)
    };
    let Some(db) = srv.ks.db(conn.db) else { return };
    let deadline = std::time::Instant::now() + crate::migrate::STEP;
    let (keys, est, done) = select_slot(
        srv,
        conn.db,
        db,
        slot,
        &mut pick,
        have,
        maxbulks,
        now_ms(),
        deadline,
    );
    let guard = (!keys.is_empty()).then(|| {
        srv.arc()
            .begin_flight(conn.db, KeySet::new(keys.iter().cloned()))
    });
    let mut st = conn.lock();
    // A CANCEL or a failure in between took the batch: the guard is dropped
    // here and the keys are released.
    if let Some(b) = st.batch.as_mut().filter(|b| b.serial == serial) {
        b.keys.extend(keys);
        b.estimate_msgs += est;
        b.guards.extend(guard);
        if !done {
            b.picking = Some(pick);
            // Come back for the rest after a yield.
            conn.wake.notify_one();
        }
    }
}

/// One ACK frame: retire a message, or fail the connection (with what
/// the probe's refusal means when it is the probe's answer).
fn on_ack(conn: &Conn, frame: &[Vec<u8>]) -> Result<(), String> {
    let closed = || errors::ASYNC_CONN_CLOSED.to_string();
    let [name, code, msg] = frame else {
        return Err(closed());
    };
    if !name.eq_ignore_ascii_case(ACK_CMD) {
        return Err(closed());
    }
    let ok = protocol::number::parse_i64(code) == Some(0);
    if !ok && refuses_streams(msg) {
        let st = conn.lock();
        let probing = st
            .batch
            .as_ref()
            .and_then(|b| b.unacked.front())
            .is_some_and(|s| s.probe);
        if let (true, Streams::Probing(key)) = (probing, &st.streams) {
            warning!(
                "async migration to {}:{} (db {}): the target takes no streams ({}); stream '{}' stays here",
                conn.host,
                conn.port,
                conn.db,
                String::from_utf8_lossy(msg),
                String::from_utf8_lossy(key)
            );
            return Err(errors::async_no_streams(&conn.host, conn.port, key, msg));
        }
    }
    if !ok {
        warning!(
            "async migration to {}:{} (db {}): target replied {} {}",
            conn.host,
            conn.port,
            conn.db,
            String::from_utf8_lossy(code),
            String::from_utf8_lossy(msg)
        );
        return Err(closed());
    }
    let mut st = conn.lock();
    let now = now_ms();
    st.lastuse = now;
    let Some(b) = st.batch.as_mut() else {
        return Err(closed());
    };
    let Some(sent) = b.unacked.pop_front() else {
        return Err(closed());
    };
    b.unacked_bytes = b.unacked_bytes.saturating_sub(sent.bytes);
    b.last_progress = now;
    if sent.probe {
        st.streams = Streams::Taken;
    }
    Ok(())
}

/// Parses one RESP frame from the target: an array of bulk strings, as an
/// ACK is. Anything else (an error line, a nested array, an oversized
/// frame) is a protocol error. `Ok(None)` when incomplete.
#[allow(clippy::type_complexity)]
fn parse_frame(buf: &[u8]) -> Result<Option<(Vec<Vec<u8>>, usize)>, String> {
    let bad = || Err(errors::ASYNC_CONN_CLOSED.to_string());
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = buf.get(at..)?;
        let i = memchr::memchr(b'\n', rest)?;
        let l = rest.get(..i)?;
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        Some((l, at + i + 1))
    }
    if buf.is_empty() {
        return Ok(None);
    }
    let Some((l, mut at)) = line(buf, 0) else {
        return if buf.len() > MAX_FRAME {
            bad()
        } else {
            Ok(None)
        };
    };
    let Some(count) = l.strip_prefix(b"*").and_then(protocol::number::parse_i64) else {
        return bad();
    };
    if !(0..=16).contains(&count) {
        return bad();
    }
    let mut args = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let Some((l, next)) = line(buf, at) else {
            return Ok(None);
        };
        let Some(len) = l.strip_prefix(b"$").and_then(protocol::number::parse_i64) else {
            return bad();
        };
        if !(0..=MAX_FRAME as i64).contains(&len) {
            return bad();
        }
        let end = next + len as usize;
        let Some(v) = buf.get(next..end) else {
            return Ok(None);
        };
        if buf.len() < end + 2 {
            return Ok(None);
        }
        args.push(v.to_vec());
        at = end + 2;
    }
    Ok(Some((args, at)))
}

/// Once a second: times out stalled batches (no ACK progress for longer
/// than their timeout) and closes connections idle for 60 s.
pub fn cron(srv: &Arc<Server>) {
    let now = now_ms();
    for db in 0..srv.asyncm.dbs.len() {
        let Some(c) = srv.asyncm.get(db) else {
            continue;
        };
        let text = {
            let st = c.lock();
            match st.batch.as_ref() {
                Some(b) if now.saturating_sub(b.last_progress) > st.timeout => {
                    Some(errors::ASYNC_TIMEOUT)
                }
                Some(_) => None,
                None if now.saturating_sub(st.lastuse) > IDLE_TIMEOUT_MS => {
                    Some(errors::ASYNC_IDLE)
                }
                None => None,
            }
        };
        if let Some(t) = text {
            if t == errors::ASYNC_IDLE {
                crate::verbose!(
                    "async migration connection to {}:{} closed: idle timeout",
                    c.host,
                    c.port
                );
            }
            c.abort(srv, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let ack = b"*3\r\n$22\r\nSLOTSRESTORE-ASYNC-ACK\r\n$1\r\n0\r\n$1\r\n1\r\n";
        let (f, n) = parse_frame(ack).unwrap().unwrap();
        assert_eq!(n, ack.len());
        assert_eq!(f, vec![ACK_CMD.to_vec(), b"0".to_vec(), b"1".to_vec()]);
        for cut in 0..ack.len() {
            assert!(parse_frame(&ack[..cut]).unwrap().is_none(), "cut {cut}");
        }
        assert!(parse_frame(b"-ERR x\r\n").is_err());
        assert!(parse_frame(b"*1\r\n:1\r\n").is_err());
        assert!(parse_frame(b"*99\r\n").is_err());
    }

    /// Splits concatenated multibulk messages into their arguments.
    fn messages(mut buf: &[u8]) -> Vec<Vec<Vec<u8>>> {
        fn num(buf: &[u8], prefix: u8) -> (usize, &[u8]) {
            assert_eq!(buf[0], prefix);
            let end = buf.iter().position(|&c| c == b'\r').unwrap();
            let n = std::str::from_utf8(&buf[1..end]).unwrap().parse().unwrap();
            (n, &buf[end + 2..])
        }
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (n, mut rest) = num(buf, b'*');
            let mut args = Vec::new();
            for _ in 0..n {
                let (len, r) = num(rest, b'$');
                args.push(r[..len].to_vec());
                rest = &r[len + 2..];
            }
            out.push(args);
            buf = rest;
        }
        out
    }

    fn server_with_big_values(n: usize) -> Arc<Server> {
        use crate::db::Object;
        use crate::ds::{Hash, List, Set, ZSet, hash::Limits, list::DEFAULT_FILL};
        let srv = Server::for_tests();
        let db = srv.ks.db(0).unwrap();
        let (mut h, mut l, mut st, mut z) =
            (Hash::new(), List::new(), Set::new(), ZSet::new_full());
        for i in 0..n {
            let m = format!("m{i}");
            h.set(m.as_bytes(), format!("v{i}").as_bytes(), &Limits::DEFAULT);
            l.push_back(m.as_bytes(), DEFAULT_FILL);
            st.insert(m.as_bytes(), 512);
            z.insert_new(m.as_bytes(), i as f64 / 3.0, 128, 64);
        }
        let objs = [
            ("h", Object::Hash(h)),
            ("l", Object::List(l)),
            ("s", Object::Set(st)),
            ("z", Object::ZSet(z)),
        ];
        for (k, o) in objs {
            srv.ks.lock_key(db, k.as_bytes()).insert(Entry::new_obj(
                k.as_bytes(),
                o,
                Some(u64::MAX / 2),
                0,
            ));
        }
        srv
    }

    /// A SLOT-form selection made in many small steps (here one bucket
    /// each) honours numkeys, chooses every key at most once even when the
    /// slot grows (and its table resizes) between steps, and chooses all of
    /// a slot that does not change.
    #[test]
    fn stepwise_selection_chooses_each_key_once() {
        let srv = Server::for_tests();
        let db = srv.ks.db(0).unwrap();
        let slot = protocol::slot::slot_of(b"{s}");
        let put = |i: usize| {
            let k = format!("{{s}}:{i}");
            srv.ks
                .lock_key(db, k.as_bytes())
                .insert(Entry::new_str(k.as_bytes(), b"v", None, 0));
        };
        (0..300).for_each(put);
        let past = std::time::Instant::now();
        let run = |numkeys: usize, grow: bool| {
            let mut pick = Picking::new(numkeys, false);
            let (mut keys, mut est) = (Vec::new(), 0);
            let mut steps = 0;
            loop {
                let (k, e, done) =
                    select_slot(&srv, 0, db, slot, &mut pick, (keys.len(), est), 10, 0, past);
                keys.extend(k);
                est += e;
                steps += 1;
                if grow && steps % 7 == 0 && steps < 100 {
                    (1000 + steps * 20..1000 + steps * 20 + 20).for_each(put);
                }
                if done {
                    return (keys, est, steps);
                }
                assert!(steps < 100_000, "selection does not end");
            }
        };
        let (keys, est, steps) = run(100, false);
        assert_eq!((keys.len(), est), (100, 100));
        assert!(steps > 10, "{steps} steps");
        // Resizes between steps: a key may be left for a later batch (the
        // walk is not stable across a resize), but none is chosen twice.
        let (keys, _, _) = run(100_000, true);
        let set: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(set.len(), keys.len(), "a key chosen twice");
        // A stable slot: one lap in steps chooses every key exactly once.
        let (keys, _, _) = run(100_000, false);
        let set: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(set.len(), keys.len(), "a key chosen twice");
        assert_eq!(keys.len(), db.slot_len(slot), "a key missed");
    }

    #[test]
    fn chunked_messages_cover_every_element() {
        let n = 1000;
        let srv = server_with_big_values(n);
        let db = srv.ks.db(0).unwrap();
        let p = Params {
            timeout: 700,
            maxbulks: 7,
            maxbytes: usize::MAX,
        };
        for (key, word, per) in [
            ("h", "hash", 2),
            ("l", "list", 1),
            ("s", "dict", 1),
            ("z", "zset", 2),
        ] {
            let mut it = {
                let mut r = srv.ks.lock_key(db, key.as_bytes());
                KeyIter::new(
                    key.as_bytes().to_vec(),
                    r.get(key.as_bytes(), 0).unwrap(),
                    7,
                )
            };
            let mut buf = Vec::new();
            let mut count = 0;
            while it.step(&srv, db, 0, &p, 40, &mut buf) {
                count += 1;
            }
            let msgs = messages(&buf);
            assert_eq!(msgs.len(), count);
            assert_eq!(
                msgs[0],
                vec![
                    RESTORE_CMD.to_vec(),
                    b"delete".to_vec(),
                    key.as_bytes().to_vec()
                ]
            );
            let last = msgs.last().unwrap();
            assert_eq!(
                &last[..3],
                &[
                    RESTORE_CMD.to_vec(),
                    b"expire".to_vec(),
                    key.as_bytes().to_vec()
                ]
            );
            let mut seen = std::collections::BTreeSet::new();
            let mut prev_score = f64::INFINITY;
            for m in &msgs[1..msgs.len() - 1] {
                assert_eq!(m[1], word.as_bytes());
                assert_eq!(m[3], b"2100", "3 x timeout");
                assert_eq!(m[4], n.to_string().as_bytes(), "hint");
                let elems = &m[5..];
                assert!(
                    !elems.is_empty() && elems.len() <= 7,
                    "{key}: {} bulks",
                    elems.len()
                );
                // The byte budget (40) stops a chunk early.
                let bytes: usize = elems.iter().map(Vec::len).sum();
                assert!(bytes < 40 + 16, "{key}: {bytes} bytes");
                for e in elems.chunks(per) {
                    assert!(seen.insert(e[0].clone()), "{key}: duplicate");
                    if word == "zset" {
                        let s = f64::from_le_bytes(e[1].as_slice().try_into().unwrap());
                        assert!(s < prev_score, "zset walks from the highest rank down");
                        prev_score = s;
                    }
                }
            }
            assert_eq!(seen.len(), n, "{key}");
            if word == "list" {
                let all: Vec<Vec<u8>> = msgs[1..msgs.len() - 1]
                    .iter()
                    .flat_map(|m| m[5..].to_vec())
                    .collect();
                let expect: Vec<Vec<u8>> = (0..n).map(|i| format!("m{i}").into_bytes()).collect();
                assert_eq!(all, expect, "list order");
            }
        }
        // Small maxbulks limits, big budget: full chunks of maxbulks bulks.
        let mut r = srv.ks.lock_key(db, b"h");
        let mut it = KeyIter::new(b"h".to_vec(), r.get(b"h", 0).unwrap(), 7);
        drop(r);
        let mut buf = Vec::new();
        assert!(it.step(&srv, db, 0, &p, usize::MAX, &mut buf));
        assert!(it.step(&srv, db, 0, &p, usize::MAX, &mut buf));
        let msgs = messages(&buf);
        assert_eq!(msgs[1].len(), 5 + 6, "7 bulks: 3 whole pairs");
        // A key deleted mid-way: the iterator sends `delete` and stops.
        srv.ks.lock_key(db, b"h").remove(b"h");
        let mut buf = Vec::new();
        assert!(it.step(&srv, db, 0, &p, usize::MAX, &mut buf));
        assert_eq!(messages(&buf)[0][1], b"delete");
        assert!(!it.step(&srv, db, 0, &p, usize::MAX, &mut buf));
    }

    #[test]
    fn small_and_compact_values_are_one_object_message() {
        let srv = server_with_big_values(50);
        let db = srv.ks.db(0).unwrap();
        let p = Params {
            timeout: 1000,
            maxbulks: 200,
            maxbytes: usize::MAX,
        };
        let mut reply = Reply::new();
        let keys: Vec<Vec<u8>> = ["h", "l", "s", "z"]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        dump_messages(&srv, db, &keys, &p, 0, &mut reply);
        let body = &reply.buf[reply.buf.iter().position(|&c| c == b'\n').unwrap() + 1..];
        let msgs = messages(body);
        assert_eq!(msgs.len(), 8);
        for pair in msgs.chunks(2) {
            assert_eq!(pair[0][1], b"delete");
            assert_eq!(pair[1][1], b"object");
            assert_eq!(
                pair[1][3],
                (u64::MAX / 2).to_string().as_bytes(),
                "remaining TTL"
            );
        }
    }

    #[tokio::test]
    async fn empty_batch_then_idle_timeout_and_batch_timeout() {
        let srv = Server::for_tests();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Params {
            timeout: 1000,
            maxbulks: 10,
            maxbytes: 1024,
        };
        // No existing key: the batch completes at once with 0, nothing sent.
        let rx = start(
            &srv,
            0,
            "127.0.0.1",
            port,
            p,
            Select::Keys(vec![b"nokey"], false),
        )
        .unwrap();
        let (mut peer, _) = l.accept().await.unwrap();
        assert_eq!(rx.await.unwrap(), b":0\r\n");
        let c = srv.asyncm.get(0).unwrap();
        assert!(!c.lock().used);
        // Idle for more than 60 s: the cron closes it.
        c.lock().lastuse -= IDLE_TIMEOUT_MS + 1;
        cron(&srv);
        assert!(srv.asyncm.get(0).is_none());
        let mut buf = [0u8; 16];
        use tokio::io::AsyncReadExt;
        assert_eq!(peer.read(&mut buf).await.unwrap(), 0, "socket closed");

        // A batch without ACK progress for longer than its timeout fails
        // and keeps the key.
        let db = srv.ks.db(0).unwrap();
        srv.ks
            .lock_key(db, b"k")
            .insert(Entry::new_str(b"k", b"v", None, 0));
        let rx = start(
            &srv,
            0,
            "127.0.0.1",
            port,
            p,
            Select::Keys(vec![b"k"], false),
        )
        .unwrap();
        let (_peer, _) = l.accept().await.unwrap();
        let c = srv.asyncm.get(0).unwrap();
        loop {
            // Wait until AUTH/SELECT + the key's first message are out.
            if c.lock()
                .batch
                .as_ref()
                .is_some_and(|b| !b.unacked.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(srv.inflight.is_migrating(0, b"k"));
        if let Some(b) = c.lock().batch.as_mut() {
            b.last_progress -= 1001;
        }
        cron(&srv);
        assert_eq!(
            rx.await.unwrap(),
            b"-ERR interrupted: migration timeout\r\n"
        );
        assert!(!srv.inflight.is_migrating(0, b"k"));
        assert!(srv.ks.lock_key(db, b"k").get(b"k", 0).is_some());
        assert!(srv.asyncm.get(0).is_none());
    }

    /// Reads one multibulk message from a socket (the fake target's side).
    async fn read_msg(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Vec<Vec<u8>>> {
        loop {
            if let Some(n) = whole_message(buf) {
                let m = messages(&buf[..n]).pop();
                buf.drain(..n);
                return m;
            }
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The length of the first complete multibulk message in `b`.
    fn whole_message(b: &[u8]) -> Option<usize> {
        let line = |at: usize| -> Option<(usize, usize)> {
            let end = at + b.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
            let n = std::str::from_utf8(&b[at + 1..end]).ok()?.parse().ok()?;
            Some((n, end + 2))
        };
        let (n, mut at) = line(0)?;
        for _ in 0..n {
            let (len, next) = line(at)?;
            at = next + len + 2;
            if at > b.len() {
                return None;
            }
        }
        Some(at)
    }

    fn ack(code: &str, msg: &str) -> Vec<u8> {
        format!(
            "*3\r\n$22\r\nSLOTSRESTORE-ASYNC-ACK\r\n${}\r\n{code}\r\n${}\r\n{msg}\r\n",
            code.len(),
            msg.len()
        )
        .into_bytes()
    }

    /// A stream key reaching a target that refuses the probe as Codis 3.2
    /// does: only SELECT and the probe went out (no `delete`, no stream
    /// message), the batch fails naming the key, and the key stays.
    /// A target that takes the probe gets the stream's messages after it.
    #[tokio::test]
    async fn stream_probe_tells_codis32_from_ours() {
        use crate::db::Object;
        use tokio::io::AsyncWriteExt;
        let srv = Server::for_tests();
        let db = srv.ks.db(0).unwrap();
        let st = crate::ds::stream::sample(30);
        srv.ks.lock_key(db, b"s").insert(Entry::new_obj(
            b"s",
            Object::Stream(Box::new(st)),
            None,
            0,
        ));
        srv.ks
            .lock_key(db, b"a")
            .insert(Entry::new_str(b"a", b"v", None, 0));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Params {
            timeout: 5000,
            maxbulks: 8,
            maxbytes: 1 << 20,
        };
        for ours in [false, true] {
            let rx = start(
                &srv,
                0,
                "127.0.0.1",
                port,
                p,
                Select::Keys(vec![b"a", b"s"], false),
            )
            .unwrap();
            let (mut peer, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            loop {
                let Some(m) = read_msg(&mut peer, &mut buf).await else {
                    break;
                };
                let word = String::from_utf8_lossy(&m[1]).into_owned();
                let is_probe = m.last().is_some_and(|a| a == b"probe");
                got.push(if is_probe { "probe".to_string() } else { word });
                if is_probe && !ours {
                    peer.write_all(&ack("-1", "unknown command (argc=6,cmd=stream)"))
                        .await
                        .unwrap();
                    // Codis closes after a non-zero code.
                    drop(peer);
                    break;
                }
                peer.write_all(&ack("0", "1")).await.unwrap();
                if m[1] == b"expire" && m[2] == b"s" {
                    break;
                }
            }
            let reply = String::from_utf8(rx.await.unwrap()).unwrap();
            if ours {
                assert_eq!(reply, ":2\r\n");
                assert_eq!(got[..5], ["0", "delete", "string", "probe", "delete"]);
                assert!(got[5..got.len() - 1].iter().all(|w| w == "stream"));
                assert!(srv.ks.lock_key(db, b"s").get(b"s", 0).is_none(), "moved");
            } else {
                assert_eq!(got, ["0", "delete", "string", "probe"]);
                assert!(
                    reply.starts_with("-ERR interrupted: target 127.0.0.1:"),
                    "{reply}"
                );
                assert!(reply.contains("cannot take streams"), "{reply}");
                assert!(reply.contains("stream 's' not migrated"), "{reply}");
                assert!(srv.ks.lock_key(db, b"s").get(b"s", 0).is_some(), "kept");
                assert!(srv.ks.lock_key(db, b"a").get(b"a", 0).is_some(), "kept");
                assert!(srv.asyncm.get(0).is_none(), "connection dropped");
            }
        }
    }

    #[test]
    fn ttl_rules() {
        assert_eq!(ttl_of(None, 5), 0);
        assert_eq!(ttl_of(Some(3), 5), 1);
        assert_eq!(ttl_of(Some(105), 5), 100);
    }
}
