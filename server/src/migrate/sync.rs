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
//!    writes already past the gate), lock again and serialize each as a DUMP
//!    payload with its remaining TTL (min 1 ms, 0 = none);
//! 3. send `[AUTH <our requirepass>] [SELECT db] SLOTSRESTORE k ttl p ...`
//!    (written in 64 KB pieces, each bounded by the timeout) and read one reply
//!    per command (each read bounded by the timeout); the AUTH/SELECT prefix
//!    is answered before SLOTSRESTORE is sent (see below);
//! 4. on `+OK`, lock the slot again and delete exactly the shipped keys (only
//!    entries that are still the ones serialized), then end the flight and
//!    reply (`moved`, or `[moved, remaining]` with the slot size after the
//!    deletion). On any error nothing is deleted and the socket is closed.
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
//! * Like Codis, each value is still serialized and sent as one payload: a
//!   very big key is dumped under its slot lock in one go (other slots are
//!   unaffected) and must reach the target within the timeout. The async
//!   family (`migrate/asyncm.rs`) is the one that chunks big values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::slot::{hash_tag, slot_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::db::{Entry, KeyAccess, Object, SlotRef, ValueRef};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::Ctx;
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

/// Starts one migration step for the calling client (DB = its selected DB)
/// and defers its reply until the step is done.
pub fn start(ctx: &mut Ctx, host: String, port: Vec<u8>, timeout_ms: u64, what: What) -> CmdResult {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return Err(CmdError::Static(errors::MGRT_WRITE));
    };
    let srv = ctx.srv_arc();
    let db = ctx.client.db;
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
    ctx.defer(Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| format!("-{}\r\n", errors::MGRT_FAILED).into_bytes())
    }));
    Ok(())
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
    ttl: u64,
    payload: Vec<u8>,
    id: Identity,
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
    Ready(Batch),
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

fn push_cmd(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_header(out, b'*', args.len());
    for a in args {
        push_bulk(out, a);
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    let mut b = itoa::Buffer::new();
    out.push(kind);
    out.extend_from_slice(b.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, a: &[u8]) {
    push_header(out, b'$', a.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b"\r\n");
}

/// What the target answered wrong, per pipelined command.
#[derive(Clone, Copy)]
enum Expect {
    Auth,
    Select(usize),
    Restore,
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
        let batch = loop {
            match self.pick()? {
                Pick::Busy(set) => set.wait().await,
                Pick::Empty(remaining) => {
                    self.srv.sync_sockets.put(key, conn);
                    return Ok(self.reply(0, remaining));
                }
                Pick::Ready(b) => break b,
            }
        };
        self.exchange(&mut conn, &batch).await?;
        let remaining = self.delete(&batch);
        let moved = batch.items.len();
        drop(batch);
        self.srv.sync_sockets.put(key, conn);
        Ok(self.reply(moved, remaining))
    }

    fn reply(&self, moved: usize, remaining: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        if self.what.by_slot() {
            push_header(&mut out, b'*', 2);
            push_header(&mut out, b':', moved);
            push_header(&mut out, b':', remaining);
        } else {
            push_header(&mut out, b':', moved);
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

    /// With the slot locked: choose and serialize the keys, register them in
    /// flight.
    fn pick(&self) -> Result<Pick, CmdError> {
        let srv = &self.srv;
        let db = srv
            .ks
            .db(self.db)
            .ok_or(CmdError::Static(errors::INVALID_DB))?;
        let now = crate::db::now_ms();
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
        let mut r = srv.ks.lock_slot(db, self.what.slot());
        let mut items = Vec::with_capacity(group.len());
        for k in group {
            // The lookup expires lazily: a key past its TTL is not moved.
            let Some(e) = r.get(&k, now) else { continue };
            let ttl = e.expire().map_or(0, |x| x.saturating_sub(now).max(1));
            let payload = crate::cmd::dump::dump_payload(e.value());
            let id = identity(e);
            items.push(Item {
                key: k,
                ttl,
                payload,
                id,
            });
        }
        if items.is_empty() {
            return Ok(Pick::Empty(r.len()));
        }
        drop(r);
        Ok(Pick::Ready(Batch {
            items,
            _guard: guard,
        }))
    }

    /// Sends the request and checks every reply. The AUTH / SELECT prefix
    /// (only on a socket's first use or a DB change) is sent and answered
    /// before SLOTSRESTORE: pipelined as in Codis, a target that refused the
    /// prefix would still run SLOTSRESTORE, unauthenticated or in the wrong
    /// DB, while the source keeps the keys.
    async fn exchange(&self, conn: &mut Cached, batch: &Batch) -> Result<(), CmdError> {
        let mut prefix = Vec::new();
        let mut expect = Vec::with_capacity(2);
        let pass = self.srv.config().requirepass.clone();
        if let Some(p) = pass.filter(|_| !conn.authed) {
            push_cmd(&mut prefix, &[b"AUTH", &p]);
            expect.push(Expect::Auth);
        }
        if conn.db != Some(self.db) {
            let mut b = itoa::Buffer::new();
            push_cmd(&mut prefix, &[b"SELECT", b.format(self.db).as_bytes()]);
            expect.push(Expect::Select(self.db));
        }
        if !expect.is_empty() {
            self.round_trip(conn, &prefix, &expect).await?;
        }
        let size: usize = batch
            .items
            .iter()
            .map(|i| i.key.len() + i.payload.len() + 64)
            .sum();
        let mut req = Vec::with_capacity(size + 32);
        push_header(&mut req, b'*', 1 + 3 * batch.items.len());
        push_bulk(&mut req, b"SLOTSRESTORE");
        for it in &batch.items {
            let mut b = itoa::Buffer::new();
            push_bulk(&mut req, &it.key);
            push_bulk(&mut req, b.format(it.ttl).as_bytes());
            push_bulk(&mut req, &it.payload);
        }
        self.round_trip(conn, &req, &[Expect::Restore]).await
    }

    /// Writes `req` in 64 KB pieces, then reads one reply line per entry of
    /// `expect`; every write and read is bounded by the timeout.
    async fn round_trip(
        &self,
        conn: &mut Cached,
        req: &[u8],
        expect: &[Expect],
    ) -> Result<(), CmdError> {
        for piece in req.chunks(WRITE_PIECE) {
            match tokio::time::timeout(self.timeout, conn.stream.write_all(piece)).await {
                Ok(Ok(())) => {}
                _ => return Err(CmdError::Static(errors::MGRT_WRITE)),
            }
        }
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
                (Expect::Restore, true) => {}
                (Expect::Auth, false) => return Err(CmdError::Static(errors::MGRT_AUTH_FAILED)),
                (Expect::Select(_), false) => {
                    return Err(CmdError::Static(errors::MGRT_SELECT_FAILED));
                }
                (Expect::Restore, false) => return Err(CmdError::Static(errors::MGRT_FAILED)),
            }
        }
        if !conn.rbuf.is_empty() {
            // Unexpected extra bytes: the connection is out of step.
            return Err(CmdError::Static(errors::MGRT_READ));
        }
        Ok(())
    }

    /// After the target's OK: deletes the shipped keys that are still the
    /// entries serialized; returns the slot size afterwards.
    fn delete(&self, batch: &Batch) -> usize {
        let Some(db) = self.srv.ks.db(self.db) else {
            return 0;
        };
        let mut r = self.srv.ks.lock_slot(db, self.what.slot());
        for it in &batch.items {
            if r.peek(&it.key).is_some_and(|e| identity(e) == it.id) {
                r.remove(&it.key);
            }
        }
        r.len()
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

    #[test]
    fn request_encoding() {
        let mut v = Vec::new();
        push_cmd(&mut v, &[b"SELECT", b"3"]);
        assert_eq!(v, b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n");
    }
}
