//! Sync migration: SLOTSMGRTONE / SLOTSMGRTTAGONE / SLOTSMGRTSLOT /
//! SLOTSMGRTTAGSLOT and their per-target socket cache (codis.md §2.6,
//! §2.6.1). Argument parsing is in `cmd/codis.rs`; this module does one
//! migration step:
//!
//! 1. take a cached socket to `host:port` (or connect: TCP_NODELAY, connect
//!    bounded by the timeout) *before* looking at the keys, as Codis does;
//! 2. with the slot locked, pick the key(s) (the key, its tag group through the
//!    tag index, or a random key of the slot and maybe its tag group); unlock,
//!    register them in flight (`Server::begin_flight`, which also waits out
//!    writes already past the gate), then serialize each as a DUMP payload
//!    (see "Big values" below), in the spawned task, never in the handler;
//! 3. send `[AUTH <our requirepass>] [SELECT db] SLOTSRESTORE k ttl p ...`
//!    with each key's remaining TTL at sending time (min 1 ms, 0 = none),
//!    written in 64 KB pieces, each bounded by the timeout (a yield to other
//!    tasks every 256 KiB; then the payload pieces are freed on the blocking
//!    pool, see `free_pieces`), and read one reply per command (each read
//!    bounded by the timeout); the AUTH/SELECT prefix is answered before
//!    SLOTSRESTORE is sent (see below);
//! 4. on `+OK`, delete exactly the shipped keys (only entries that are still
//!    the ones serialized), 256 per slot lock with a yield in between, big
//!    values freed on the lazy-free thread (`db::drop_later`); then end the
//!    flight and reply (`moved`, or `[moved, remaining]` with the slot size
//!    after the deletion). On any error nothing is deleted and the socket is
//!    closed.
//!
//! Payloads are `crate::codec`'s. Big values: a value of fewer than 1,000
//! elements and 256 KiB is serialized in one go under the slot lock
//! (`codec::dump_payload`, as `DUMP`). A bigger one is written in slices
//! (`codec::SlicedPayload`, wrapped in `Big`): each slice holds the slot
//! lock for about 250 µs, then the lock is released and the task yields to
//! the other clients before the codec's cursor resumes (lists by index,
//! zsets by rank, strings by byte offset, hashes and sets by their SCAN
//! cursor: the value cannot change while in flight, so a full bucket walk
//! meets every element exactly once). The element count goes in the header
//! up front; the payload is handed out in pieces of about 128 KiB with a
//! running CRC-64, so no big buffer is ever copied, grown or checksummed in
//! one go. The pieces are byte for byte what `DUMP` gives. Before every
//! slice the key is looked up again: if it was deleted (FLUSHDB, expiry) or
//! replaced (SLOTSRESTORE) meanwhile, or its size changed, it is dropped
//! from the batch (not moved, not deleted).
//!
//! Where we differ from Codis:
//! * Codis blocks the whole server (blocking socket I/O in the event loop)
//!   for the round trip. We do not: the step runs in a spawned task, the
//!   caller's reply is deferred (`Ctx::defer`), and other clients keep being
//!   served. The shipped keys stay readable on the source while in flight;
//!   direct writes to them (and their tag group) get
//!   `ERR the specified key is being migrated` until the step ends, so source
//!   and target never diverge. A SLOTSMGRT* command for a key that is already
//!   in flight waits for that flight to end, then runs (it then usually finds
//!   the key gone and moves 0), which keeps Codis' sync forwarding
//!   (`SLOTSMGRTTAGONE key` then the command on the target) correct.
//! * Codis pipelines `AUTH`, `SELECT` and `SLOTSRESTORE` in one write, so a
//!   target that refuses AUTH (it has no password) or SELECT (fewer DBs)
//!   still runs the SLOTSRESTORE, unauthenticated or into its current DB,
//!   while the source reports an error and keeps the keys. We wait for the
//!   prefix replies first (one extra round trip on a socket's first use or a
//!   DB change only), so a refused prefix writes nothing on the target.
//! * Several steps may run at once, so the cache holds a few idle sockets per
//!   target instead of one; a socket in use is never shared.
//! * A refused or reset connect is reported as
//!   `IOERR error or timeout writing to target`, what Codis answers for a
//!   non-listening port (its non-blocking connect "succeeds" and the write
//!   fails); only a name that does not resolve or a bad port gives
//!   `ERR Can't connect to target node: <reason>`.
//! * Codis serializes a big value in one go, blocking the server. We slice
//!   the serialization, the sending and the deletion (see "Big values"), so
//!   other clients keep being served; the value still travels as one
//!   payload in one SLOTSRESTORE and must reach the target within the
//!   timeout (every 64 KB write is bounded by it). The async family
//!   (`migrate/asyncm.rs`) is the one that also splits big values into
//!   several messages on the wire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::resp::request as req;
use protocol::slot::{hash_tag, slot_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::codec::{self, Progress, SlicedPayload};
use crate::db::{Entry, KeyAccess, Object, SlotRef, ValueRef, now_ms};
use crate::errors::{self, CmdError};
use crate::migrate::{FlightGuard, KeySet};
use crate::server::Server;

/// Cached sockets idle for longer than this are closed by the cron.
const IDLE_CLOSE: Duration = Duration::from_secs(15);
/// Idle sockets kept per target.
const MAX_IDLE_PER_TARGET: usize = 4;
/// The request is written in pieces of this size, each within the timeout.
const WRITE_PIECE: usize = 64 * 1024;
/// Longest reply line accepted from the target.
const MAX_LINE: usize = 64 * 1024;
/// Bytes written to the target between two yields to the other tasks.
const YIELD_BYTES: usize = 256 * 1024;
/// A value with at least this many elements, or this many heap bytes (a
/// string: bytes), is serialized in slices; smaller ones in one go.
const BIG_ELEMS: usize = 1000;
const BIG_BYTES: usize = 256 * 1024;
/// A slice of serialization (slot locked) ends once it ran this long.
const SLICE_TIME: Duration = Duration::from_micros(250);
/// Payload pieces adding up to this much are freed off the event loop.
const FREE_INLINE: usize = 1 << 20;
/// Shipped keys deleted per slot lock after the target's OK.
const DELETE_SLICE: usize = 256;

/// What one command moves.
#[derive(Debug, Clone)]
pub enum What {
    One(Vec<u8>),
    TagOne(Vec<u8>),
    Slot(usize),
    TagSlot(usize),
}

impl What {
    fn slot(&self) -> usize {
        match self {
            What::One(k) | What::TagOne(k) => slot_of(k),
            What::Slot(s) | What::TagSlot(s) => *s,
        }
    }

    fn by_slot(&self) -> bool {
        matches!(self, What::Slot(_) | What::TagSlot(_))
    }

    fn tagged(&self) -> bool {
        matches!(self, What::TagOne(_) | What::TagSlot(_))
    }
}

/// A connection to a target with what Codis remembers about it.
struct Cached {
    stream: TcpStream,
    /// The DB selected on this connection (None until a SELECT succeeded;
    /// a fresh connection is on DB 0 but Codis still selects once).
    db: Option<usize>,
    authed: bool,
    last_used: Instant,
    rbuf: Vec<u8>,
}

/// Idle target sockets keyed by `"host:port"` (the strings as given).
#[derive(Default)]
pub struct SocketCache {
    map: Mutex<HashMap<String, Vec<Cached>>>,
}

impl SocketCache {
    fn take(&self, key: &str) -> Option<Cached> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let v = m.get_mut(key)?;
        let c = v.pop();
        if v.is_empty() {
            m.remove(key);
        }
        c
    }

    fn put(&self, key: String, mut c: Cached) {
        c.last_used = Instant::now();
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let v = m.entry(key).or_default();
        if v.len() < MAX_IDLE_PER_TARGET {
            v.push(c);
        }
    }

    /// Closes sockets idle for more than `max_idle`; returns how many.
    fn close_idle(&self, max_idle: Duration) -> usize {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = 0;
        m.retain(|addr, v| {
            let before = v.len();
            v.retain(|c| c.last_used.elapsed() <= max_idle);
            if v.len() < before {
                crate::verbose!("slotsmgrt: closing idle socket to {addr}");
            }
            closed += before - v.len();
            !v.is_empty()
        });
        closed
    }

    /// Number of idle cached sockets (tests).
    pub fn idle(&self) -> usize {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.values().map(Vec::len).sum()
    }
}

/// Closes cached target sockets idle for more than 15 s (codis.md §2.6.1).
pub fn cron(srv: &Arc<Server>) {
    srv.sync_sockets.close_idle(IDLE_CLOSE);
}

/// Starts one migration step of DB `db`; the returned future resolves to
/// the reply (RESP bytes) when the step is done (the command defers its
/// reply to it).
pub fn start(
    srv: Arc<Server>,
    db: usize,
    host: String,
    port: Vec<u8>,
    timeout_ms: u64,
    what: What,
) -> Result<super::Pending, CmdError> {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return Err(CmdError::Static(errors::MGRT_WRITE));
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let step = Step {
        srv,
        db,
        host,
        port,
        timeout: Duration::from_millis(timeout_ms),
        what,
    };
    // Spawned, so a caller that disconnects does not cut a step in half.
    rt.spawn(async move {
        let _ = tx.send(step.run().await);
    });
    Ok(Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| format!("-{}\r\n", errors::MGRT_FAILED).into_bytes())
    }))
}

struct Step {
    srv: Arc<Server>,
    db: usize,
    host: String,
    port: Vec<u8>,
    timeout: Duration,
    what: What,
}

/// One key selected for shipping.
struct Item {
    key: Vec<u8>,
    /// Absolute expiry (unix ms); the TTL is computed when sending.
    expire: Option<u64>,
    /// The DUMP payload in pieces (one for a small value), freed as sent.
    payload: Vec<Vec<u8>>,
    id: Identity,
    /// A stream (a target without streams refuses its payload).
    stream: bool,
}

/// The serialized keys of one step, registered in flight.
struct Batch {
    items: Vec<Item>,
    _guard: FlightGuard,
}

enum Pick {
    /// Nothing to move; the slot's current size.
    Empty(usize),
    /// The key is part of another step in flight: wait for it.
    Busy(Arc<KeySet>),
    /// The keys to ship, registered in flight (not serialized yet).
    Ready(Vec<Vec<u8>>, FlightGuard),
}

/// Which stored entry a key was when it was serialized: its blob and object
/// allocations. Writes to in-flight keys are refused, so a different identity
/// at deletion time means the key was replaced by a path that bypasses the
/// gate (SLOTSRESTORE, FLUSHDB, SWAPDB); such a key is left alone.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Identity(usize, usize);

fn identity(e: &Entry) -> Identity {
    let obj = match e.value() {
        ValueRef::Obj(o) => o as *const Object as usize,
        ValueRef::Str(_) => 0,
    };
    Identity(e.key().as_ptr() as usize, obj)
}

/// A random key of the locked slot (random bucket probes, then a walk from
/// a random start), like Codis' random-entry sampling.
fn random_key(r: &SlotRef<'_>) -> Option<Vec<u8>> {
    use rand::Rng;
    let n = r.num_buckets();
    if r.is_empty() || n == 0 {
        return None;
    }
    let mut rng = rand::rng();
    for _ in 0..16 {
        if let Some(e) = r.bucket(rng.random_range(0..n)) {
            return Some(e.key().to_vec());
        }
    }
    let start = rng.random_range(0..n);
    (0..n)
        .map(|i| (start + i) % n)
        .find_map(|b| r.bucket(b).map(|e| e.key().to_vec()))
}

fn resp_err(srv: &Server, e: &CmdError) -> Vec<u8> {
    let text = e.text();
    srv.stats.count_error(text.as_bytes());
    let mut v = Vec::with_capacity(text.len() + 3);
    v.push(b'-');
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// What the target answered wrong, per pipelined command.
#[derive(Clone, Copy)]
enum Expect<'a> {
    Auth,
    Select(usize),
    /// SLOTSRESTORE, and a stream it carries (the first).
    Restore(Option<&'a [u8]>),
}

/// What a server without streams (codis-server 3.2, Redis before 5)
/// answers a SLOTSRESTORE / RESTORE of a stream payload: the type byte is
/// unknown to it, or (a payload of a newer RDB version) the footer is.
fn refuses_streams(line: &[u8]) -> bool {
    line == b"-ERR Bad data format" || line == b"-ERR DUMP payload version or checksum are wrong"
}

impl Step {
    async fn run(self) -> Vec<u8> {
        match self.run_inner().await {
            Ok(bytes) => bytes,
            Err(e) => resp_err(&self.srv, &e),
        }
    }

    fn cache_key(&self) -> String {
        format!("{}:{}", self.host, errors::lossy(&self.port))
    }

    async fn run_inner(&self) -> Result<Vec<u8>, CmdError> {
        let key = self.cache_key();
        let mut conn = match self.srv.sync_sockets.take(&key) {
            Some(c) => c,
            None => self.connect().await?,
        };
        let (keys, guard) = loop {
            match self.pick()? {
                Pick::Busy(set) => set.wait().await,
                Pick::Empty(remaining) => {
                    self.srv.sync_sockets.put(key, conn);
                    return Ok(self.reply(0, remaining));
                }
                Pick::Ready(keys, guard) => break (keys, guard),
            }
        };
        let items = self.serialize(keys).await?;
        if items.is_empty() {
            // Every key expired or vanished before it was serialized.
            let remaining = self.slot_len();
            drop(guard);
            self.srv.sync_sockets.put(key, conn);
            return Ok(self.reply(0, remaining));
        }
        let mut batch = Batch {
            items,
            _guard: guard,
        };
        self.exchange(&mut conn, &mut batch).await?;
        self.srv.hand_over([&batch._guard]);
        let remaining = self.delete(&batch).await;
        let moved = batch.items.len();
        drop(batch);
        self.srv.sync_sockets.put(key, conn);
        Ok(self.reply(moved, remaining))
    }

    fn reply(&self, moved: usize, remaining: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        if self.what.by_slot() {
            req::header(&mut out, b'*', 2);
            req::header(&mut out, b':', moved);
            req::header(&mut out, b':', remaining);
        } else {
            req::header(&mut out, b':', moved);
        }
        out
    }

    async fn connect(&self) -> Result<Cached, CmdError> {
        let port = protocol::number::parse_i64(&self.port)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| CmdError::msg(errors::cant_connect("Invalid port")))?;
        let host = self.host.clone();
        let attempt = async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| {
                    let s = e.to_string();
                    let reason = s
                        .strip_prefix("failed to lookup address information: ")
                        .unwrap_or(&s)
                        .to_string();
                    CmdError::msg(errors::cant_connect(&reason))
                })?
                .collect();
            let Some(addr) = addrs.first() else {
                return Err(CmdError::msg(errors::cant_connect(
                    "Name or service not known",
                )));
            };
            TcpStream::connect(addr)
                .await
                .map_err(|_| CmdError::Static(errors::MGRT_WRITE))
        };
        let stream = tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| CmdError::Static(errors::MGRT_CONNECT_TIMEOUT))??;
        let _ = stream.set_nodelay(true);
        Ok(Cached {
            stream,
            db: None,
            authed: false,
            last_used: Instant::now(),
            rbuf: Vec::new(),
        })
    }

    fn slot_len(&self) -> usize {
        self.srv
            .ks
            .db(self.db)
            .map_or(0, |d| d.slot_len(self.what.slot()))
    }

    /// With the slot locked: choose the keys, then register them in flight.
    fn pick(&self) -> Result<Pick, CmdError> {
        let srv = &self.srv;
        let db = srv
            .ks
            .db(self.db)
            .ok_or(CmdError::Static(errors::INVALID_DB))?;
        let r = srv.ks.lock_slot(db, self.what.slot());
        let key = match &self.what {
            What::One(k) | What::TagOne(k) => k.clone(),
            What::Slot(_) | What::TagSlot(_) => match random_key(&r) {
                Some(k) => k,
                None => return Ok(Pick::Empty(r.len())),
            },
        };
        if let Some(set) = srv.inflight.covering(self.db, &key) {
            return Ok(Pick::Busy(set));
        }
        let (tag, has_tag) = hash_tag(&key);
        let group = if self.what.tagged() && has_tag {
            r.tag_keys(crc32fast::hash(tag))
        } else {
            vec![key]
        };
        // Register first, without the slot lock (a write being waited for
        // may need it), then serialize: no write to these keys can be
        // running or start from here on (migrate/mod.rs).
        drop(r);
        let guard = srv.begin_flight(self.db, KeySet::new(group.iter().cloned()));
        Ok(Pick::Ready(group, guard))
    }

    /// Serializes the registered keys in slices of about [`SLICE_TIME`]
    /// with the slot locked, yielding to the other tasks in between. Keys
    /// that are gone (or expired: the lookup expires lazily) are skipped, as
    /// are big values deleted or replaced part-way.
    async fn serialize(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Item>, CmdError> {
        let srv = &self.srv;
        let db = srv
            .ks
            .db(self.db)
            .ok_or(CmdError::Static(errors::INVALID_DB))?;
        let mut items = Vec::with_capacity(keys.len());
        let mut keys = keys.into_iter();
        let mut big: Option<Big> = None;
        let mut dropped = Vec::new();
        loop {
            let deadline = Instant::now() + SLICE_TIME;
            let now = now_ms();
            {
                // The slot lock must not live across the yield.
                let mut r = srv.ks.lock_slot(db, self.what.slot());
                loop {
                    if let Some(b) = big.as_mut() {
                        match b.advance(&mut r, deadline) {
                            Progress::More => break,
                            Progress::Done => items.extend(big.take().map(Big::into_item)),
                            Progress::Gone => {
                                dropped = big.take().map(Big::into_pieces).unwrap_or_default();
                                break;
                            }
                        }
                    } else {
                        let Some(k) = keys.next() else {
                            return Ok(items);
                        };
                        let Some(e) = r.get(&k, now) else { continue };
                        let (expire, id) = (e.expire(), identity(e));
                        let v = e.value();
                        let stream = matches!(v, ValueRef::Obj(Object::Stream(_)));
                        if is_big(v) {
                            big = Some(Big {
                                payload: SlicedPayload::new(v),
                                key: k,
                                expire,
                                id,
                                stream,
                            });
                            continue;
                        }
                        let payload = vec![codec::dump_payload(v)];
                        items.push(Item {
                            key: k,
                            expire,
                            payload,
                            id,
                            stream,
                        });
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
            free_pieces(std::mem::take(&mut dropped));
            super::pause().await;
        }
    }

    /// Sends the request and checks every reply. The AUTH / SELECT prefix
    /// (only on a socket's first use or a DB change) is sent and answered
    /// before SLOTSRESTORE: pipelined as in Codis, a target that refused the
    /// prefix would still run SLOTSRESTORE, unauthenticated or in the wrong
    /// DB, while the source keeps the keys.
    async fn exchange(&self, conn: &mut Cached, batch: &mut Batch) -> Result<(), CmdError> {
        let mut prefix = Vec::new();
        let mut expect = Vec::with_capacity(2);
        if let Some((user, p)) = crate::migrate::credentials(&self.srv).filter(|_| !conn.authed) {
            match &user {
                Some(u) => req::command(&mut prefix, &[b"AUTH", u, &p]),
                None => req::command(&mut prefix, &[b"AUTH", &p]),
            }
            expect.push(Expect::Auth);
        }
        if conn.db != Some(self.db) {
            let mut b = itoa::Buffer::new();
            req::command(&mut prefix, &[b"SELECT", b.format(self.db).as_bytes()]);
            expect.push(Expect::Select(self.db));
        }
        if !expect.is_empty() {
            self.round_trip(conn, &prefix, &expect).await?;
        }
        let written = self.write_restore(conn, batch).await;
        // The payloads are not needed any more, whatever happened.
        free_pieces(
            batch
                .items
                .iter_mut()
                .flat_map(|it| std::mem::take(&mut it.payload))
                .collect(),
        );
        written?;
        let stream = batch
            .items
            .iter()
            .find(|it| it.stream)
            .map(|it| &it.key[..]);
        self.read_replies(conn, &[Expect::Restore(stream)]).await
    }

    /// Writes `SLOTSRESTORE k ttl payload ...`: small parts gathered in a
    /// buffer, payload pieces that do not fit written as they are.
    async fn write_restore(&self, conn: &mut Cached, batch: &Batch) -> Result<(), CmdError> {
        let now = now_ms();
        let mut sent = 0usize;
        let mut buf = Vec::with_capacity(WRITE_PIECE + 1024);
        req::header(&mut buf, b'*', 1 + 3 * batch.items.len());
        req::bulk(&mut buf, b"SLOTSRESTORE");
        for it in &batch.items {
            req::bulk(&mut buf, &it.key);
            req::bulk_u64(&mut buf, crate::migrate::ttl_of(it.expire, now));
            req::header(&mut buf, b'$', it.payload.iter().map(Vec::len).sum());
            for piece in &it.payload {
                if buf.len() + piece.len() <= WRITE_PIECE {
                    buf.extend_from_slice(piece);
                } else {
                    self.write(conn, &buf, &mut sent).await?;
                    buf.clear();
                    self.write(conn, piece, &mut sent).await?;
                }
            }
            buf.extend_from_slice(b"\r\n");
            if buf.len() >= WRITE_PIECE {
                self.write(conn, &buf, &mut sent).await?;
                buf.clear();
            }
        }
        self.write(conn, &buf, &mut sent).await
    }

    /// Writes `bytes` in 64 KB pieces, each bounded by the timeout, yielding
    /// to the other tasks every [`YIELD_BYTES`] (`sent` carries the count
    /// across calls).
    async fn write(
        &self,
        conn: &mut Cached,
        bytes: &[u8],
        sent: &mut usize,
    ) -> Result<(), CmdError> {
        for piece in bytes.chunks(WRITE_PIECE) {
            match tokio::time::timeout(self.timeout, conn.stream.write_all(piece)).await {
                Ok(Ok(())) => {}
                _ => return Err(CmdError::Static(errors::MGRT_WRITE)),
            }
            *sent += piece.len();
            if *sent >= YIELD_BYTES {
                *sent = 0;
                super::pause().await;
            }
        }
        Ok(())
    }

    /// Writes `req`, then reads one reply line per entry of `expect`.
    async fn round_trip(
        &self,
        conn: &mut Cached,
        req: &[u8],
        expect: &[Expect<'_>],
    ) -> Result<(), CmdError> {
        self.write(conn, req, &mut 0).await?;
        self.read_replies(conn, expect).await
    }

    /// Reads one reply line per entry of `expect`, each bounded by the
    /// timeout; the first one that is not `+...` fails the step.
    async fn read_replies(&self, conn: &mut Cached, expect: &[Expect<'_>]) -> Result<(), CmdError> {
        for &e in expect {
            let line = match tokio::time::timeout(self.timeout, read_line(conn)).await {
                Ok(Some(l)) => l,
                _ => return Err(CmdError::Static(errors::MGRT_READ)),
            };
            let ok = line.first() == Some(&b'+');
            if !ok {
                crate::warning!(
                    "slotsmgrt: target {} answered '{}'",
                    self.cache_key(),
                    errors::lossy(&line)
                );
            }
            match (e, ok) {
                (Expect::Auth, true) => conn.authed = true,
                (Expect::Select(db), true) => conn.db = Some(db),
                (Expect::Restore(_), true) => {}
                (Expect::Auth, false) => return Err(CmdError::Static(errors::MGRT_AUTH_FAILED)),
                (Expect::Select(_), false) => {
                    return Err(CmdError::Static(errors::MGRT_SELECT_FAILED));
                }
                (Expect::Restore(Some(key)), false) if refuses_streams(&line) => {
                    let answer = line.get(1..).unwrap_or_default();
                    return Err(CmdError::msg(errors::mgrt_no_streams(key, answer)));
                }
                (Expect::Restore(_), false) => return Err(CmdError::Static(errors::MGRT_FAILED)),
            }
        }
        if !conn.rbuf.is_empty() {
            // Unexpected extra bytes: the connection is out of step.
            return Err(CmdError::Static(errors::MGRT_READ));
        }
        Ok(())
    }

    /// After the target's OK: deletes the shipped keys that are still the
    /// entries serialized, [`DELETE_SLICE`] per slot lock (big values are
    /// freed on the lazy-free thread); returns the slot size afterwards.
    async fn delete(&self, batch: &Batch) -> usize {
        let Some(db) = self.srv.ks.db(self.db) else {
            return 0;
        };
        let mut items = batch.items.iter();
        let mut freed = Vec::new();
        loop {
            let remaining = {
                let mut r = self.srv.ks.lock_slot(db, self.what.slot());
                for it in items.by_ref().take(DELETE_SLICE) {
                    if r.peek(&it.key).is_some_and(|e| identity(e) == it.id) {
                        freed.extend(r.remove(&it.key));
                        self.srv.migrated_away(self.db, &it.key);
                    }
                }
                r.len()
            };
            freed.drain(..).for_each(crate::db::drop_later);
            if items.len() == 0 {
                return remaining;
            }
            super::pause().await;
        }
    }
}

/// Frees payload pieces (in allocation order) on tokio's blocking pool,
/// last to first, when they add up to [`FREE_INLINE`] or more. Freeing a few
/// hundred MB returns memory to the kernel (trims), which takes
/// milliseconds; in allocation order the pieces would also coalesce into one
/// huge free block trimmed in one go, from the top down each free trims
/// little.
fn free_pieces(pieces: Vec<Vec<u8>>) {
    if pieces.iter().map(Vec::len).sum::<usize>() < FREE_INLINE {
        return;
    }
    let job = move || {
        let mut pieces = pieces;
        while pieces.pop().is_some() {}
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(job)),
        Err(_) => job(),
    }
}

/// True when `v` is serialized in slices (see the module comment).
fn is_big(v: ValueRef<'_>) -> bool {
    match codec::str_bytes(v) {
        Some(s) => s.len() >= BIG_BYTES,
        None => codec::len(v) >= BIG_ELEMS || codec::heap_size(v) >= BIG_BYTES,
    }
}

/// A big value being serialized in slices.
struct Big {
    key: Vec<u8>,
    expire: Option<u64>,
    id: Identity,
    payload: SlicedPayload,
    stream: bool,
}

impl Big {
    /// One slice with the slot locked: looks the key up again (Gone if it
    /// is not the entry serialized so far) and writes until the payload is
    /// complete or `deadline` passed.
    fn advance(&mut self, r: &mut SlotRef<'_>, deadline: Instant) -> Progress {
        match r.peek(&self.key) {
            Some(e) if identity(e) == self.id => self.payload.advance(e.value(), deadline),
            _ => Progress::Gone,
        }
    }

    /// The finished item: the last piece carries the version and CRC.
    fn into_item(self) -> Item {
        Item {
            key: self.key,
            expire: self.expire,
            payload: self.payload.finish(),
            id: self.id,
            stream: self.stream,
        }
    }

    /// The pieces of a payload given up (to be freed).
    fn into_pieces(self) -> Vec<Vec<u8>> {
        self.payload.into_pieces()
    }
}

/// Reads one `\r\n`-terminated line (without the terminator); None on EOF,
/// an I/O error or an over-long line.
async fn read_line(conn: &mut Cached) -> Option<Vec<u8>> {
    loop {
        if let Some(i) = memchr::memmem::find(&conn.rbuf, b"\r\n") {
            let line = conn.rbuf[..i].to_vec();
            conn.rbuf.drain(..i + 2);
            return Some(line);
        }
        if conn.rbuf.len() > MAX_LINE {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match conn.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => conn.rbuf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn cached(port: u16) -> Cached {
        Cached {
            stream: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            db: None,
            authed: false,
            last_used: Instant::now(),
            rbuf: Vec::new(),
        }
    }

    #[test]
    fn cache_reuses_and_closes_idle_sockets() {
        rt().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            let cache = SocketCache::default();
            let key = format!("127.0.0.1:{port}");
            assert!(cache.take(&key).is_none());
            let mut c = cached(port).await;
            c.db = Some(3);
            cache.put(key.clone(), c);
            for _ in 0..MAX_IDLE_PER_TARGET + 2 {
                let c = cached(port).await;
                cache.put(key.clone(), c);
            }
            assert_eq!(cache.idle(), MAX_IDLE_PER_TARGET);
            assert_eq!(cache.close_idle(IDLE_CLOSE), 0);
            assert!(cache.take("127.0.0.1:1").is_none());
            let c = cache.take(&key).unwrap();
            assert_eq!(cache.idle(), MAX_IDLE_PER_TARGET - 1);
            cache.put(key.clone(), c);
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(
                cache.close_idle(Duration::from_millis(1)),
                MAX_IDLE_PER_TARGET
            );
            assert_eq!(cache.idle(), 0);
            assert!(cache.map.lock().unwrap().is_empty());
        });
    }

    #[test]
    fn reply_lines() {
        rt().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            let mut c = cached(port).await;
            let (mut peer, _) = l.accept().await.unwrap();
            peer.write_all(b"+OK\r\n-ERR x").await.unwrap();
            assert_eq!(read_line(&mut c).await.as_deref(), Some(&b"+OK"[..]));
            peer.write_all(b"\r\n").await.unwrap();
            assert_eq!(read_line(&mut c).await.as_deref(), Some(&b"-ERR x"[..]));
            peer.write_all(&vec![b'a'; MAX_LINE + 10]).await.unwrap();
            assert_eq!(read_line(&mut c).await, None);
            drop(peer);
            let mut c = cached(port).await;
            drop(l);
            assert_eq!(read_line(&mut c).await, None);
        });
    }

    use crate::ds::{Hash, List, Set, hash::Limits, list::DEFAULT_FILL};
    use protocol::rdb::{Value, decode};

    /// Which values are serialized in slices (the slicing itself is
    /// `codec::SlicedPayload`'s, tested there).
    #[test]
    fn big_values() {
        assert!(!is_big(ValueRef::Str(b"small")));
        assert!(is_big(ValueRef::Str(&vec![b'x'; BIG_BYTES])));
        let under = Object::Str(vec![b'x'; BIG_BYTES - 1]);
        assert!(!is_big(ValueRef::Obj(&under)));
        let mut l = List::new();
        for _ in 0..BIG_ELEMS - 1 {
            l.push_back(b"e", DEFAULT_FILL);
        }
        let mut o = Object::List(l);
        assert!(!is_big(ValueRef::Obj(&o)));
        if let Object::List(l) = &mut o {
            l.push_back(b"e", DEFAULT_FILL);
        }
        assert!(is_big(ValueRef::Obj(&o)));
        let mut s = Set::new();
        s.insert(&vec![b'm'; BIG_BYTES], 512);
        assert!(is_big(ValueRef::Obj(&Object::Set(s))), "few but heavy");
    }

    fn step(srv: &Arc<Server>, key: &[u8]) -> Step {
        Step {
            srv: srv.clone(),
            db: 0,
            host: "127.0.0.1".into(),
            port: b"1".to_vec(),
            timeout: Duration::from_secs(1),
            what: What::TagOne(key.to_vec()),
        }
    }

    /// A big key deleted or replaced between two slices is dropped from the
    /// batch; the others are still serialized.
    #[test]
    fn vanishing_big_key_is_dropped() {
        let srv = Server::for_tests();
        let db = srv.ks.db(0).unwrap();
        let fill = |srv: &Arc<Server>| {
            let mut h = Hash::new();
            for i in 0..50_000 {
                let v = b"a value long enough for several pieces";
                h.set(format!("f{i}").as_bytes(), v, &Limits::DEFAULT);
            }
            let mut r = srv.ks.lock_key(db, b"{t}h");
            r.put(Entry::new_obj(b"{t}h", Object::Hash(h), None, 0));
            r.put(Entry::new_str(b"{t}s", b"small", Some(u64::MAX / 2), 0));
        };
        let keys = || vec![b"{t}h".to_vec(), b"{t}s".to_vec()];
        fill(&srv);
        let st = step(&srv, b"{t}h");
        rt().block_on(async {
            // Untouched: both keys, the hash complete.
            let items = st.serialize(keys()).await.unwrap();
            assert_eq!(items.len(), 2);
            assert!(items[0].payload.len() > 1, "big value not in pieces");
            let Ok(Value::Hash(p)) = decode(&items[0].payload.concat()) else {
                panic!()
            };
            assert_eq!(p.len(), 50_000);
            assert_eq!(items[1].expire, Some(u64::MAX / 2));

            for replace in [false, true] {
                let srv2 = srv.clone();
                let meddle = async move {
                    tokio::task::yield_now().await;
                    let mut r = srv2.ks.lock_key(db, b"{t}h");
                    if replace {
                        r.put(Entry::new_str(b"{t}h", b"new", None, 0));
                    } else {
                        r.remove(b"{t}h");
                    }
                };
                let (items, ()) = tokio::join!(st.serialize(keys()), meddle);
                let items = items.unwrap();
                assert_eq!(items.len(), 1, "replace={replace}");
                assert_eq!(items[0].key, b"{t}s");
                fill(&srv);
            }
        });
    }
}
