//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, and later
//! BZPOPMIN/BZPOPMAX/BZMPOP): the waiter registry and the serving loop,
//! mirroring Redis 7.0's `blocked.c` semantics:
//!
//! * waiters queue per (db, key), first blocked first served;
//! * a blocked connection processes no further pipelined command until it is
//!   served, times out (nil: RESP2 `*-1`/`$-1`, RESP3 `_`), is killed or
//!   disconnects; other connections run normally;
//! * data pushed to a key someone waits on is handed to the waiters right
//!   after the pushing command, by the pushing connection itself, before it
//!   runs its next command (as Redis' `handleClientsBlockedOnKeys`);
//! * a waiter that disconnects or is killed leaves every queue at once, so a
//!   later push is never handed to a dead client.
//!
//! # API for command handlers
//!
//! A blocking handler first tries to serve the request exactly like its
//! non-blocking twin. When there is nothing to serve it calls
//! [`Ctx::block_on`](crate::exec::Ctx::block_on)`(argv, keys, deadline, nil)`
//! and returns `Ok(())` without writing a reply; `deadline` comes from
//! [`parse_timeout`] (None = forever) and `nil` says which null the timeout
//! replies ([`Nil::Array`] for every Redis 7.0 blocking command). When the key becomes ready the same handler is run
//! again with the same argv (on the serving connection's thread, with the
//! blocked client's db and protocol); if it calls `block_on` again the client
//! simply stays blocked in its place. Handlers therefore need no special
//! "woken" path.
//!
//! Every change a command reports (`Ctx::changed`, the one modified-key
//! signal) marks the key ready (a single atomic load when nobody is
//! blocked); the gate (`exec::call`) then calls [`serve_ready`] after the
//! command, and work outside the gate (deferred restores) calls it itself.
//! A woken command runs again through `exec::call_wakeup`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::resp::Reply;

use crate::client::{Client, ClientInfo};
use crate::errors::{self, CmdError};
use crate::exec;
use crate::server::Server;

/// Which null a timed-out blocking command replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nil {
    /// `*-1` (RESP3 `_`): what Redis 7.0 replies on timeout for every
    /// blocking command, BLMOVE/BRPOPLPUSH included.
    Array,
    /// `$-1` (RESP3 `_`), for a future command that needs it.
    Bulk,
}

/// What a handler asks for when it cannot serve yet (stored in the client
/// by `Ctx::block_on` and picked up by the connection loop).
#[derive(Debug, Clone)]
pub struct BlockRequest {
    pub argv: Vec<Vec<u8>>,
    pub keys: Vec<Vec<u8>>,
    /// Absolute unix ms; None = block forever.
    pub deadline: Option<u64>,
    pub nil: Nil,
    /// Whether this waiter is served on its own terms (XREAD's IDs, a
    /// consumer group's last ID): one that cannot be served does not stop
    /// the waiters queued behind it, as a list waiter does.
    pub each: bool,
}

/// Parses a blocking timeout in seconds (fractions allowed) into an absolute
/// deadline in unix ms; `0` means forever (None). Redis' texts:
/// `ERR timeout is not a float or out of range`, `ERR timeout is negative`.
/// Redis rounds `seconds * 1000` up in long double precision, so every
/// timeout up to 9223372036854775.807 s is accepted (a plain decimal is
/// computed exactly here; f64 would lose the last digits near that bound).
pub fn parse_timeout(arg: &[u8], now: u64) -> Result<Option<u64>, CmdError> {
    let secs =
        protocol::number::parse_f64(arg).ok_or(CmdError::Static(errors::TIMEOUT_NOT_FLOAT))?;
    let ms: i128 = match decimal_ms_ceil(arg) {
        Some(ms) => ms,
        None => {
            let ms = (secs * 1000.0).ceil();
            if ms.is_finite() && ms.abs() < 1.7e38 {
                ms as i128
            } else {
                i128::MIN
            }
        }
    };
    // Redis casts to long long: out-of-range values (and inf) become
    // LLONG_MIN on x86, hence "negative".
    let tval = i64::try_from(ms).unwrap_or(i64::MIN);
    if tval < 0 {
        return Err(CmdError::Static(errors::TIMEOUT_NEGATIVE));
    }
    let ms = tval as u64;
    if ms == 0 {
        Ok(None)
    } else {
        Ok(Some(now.saturating_add(ms)))
    }
}

/// `ceil(arg * 1000)` of a plain decimal (`[+-]digits[.digits]`), exactly;
/// None for any other float syntax (exponents, `inf`) or over 30 digits.
fn decimal_ms_ceil(arg: &[u8]) -> Option<i128> {
    let (neg, body) = match arg.first()? {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[..0]),
    };
    if int.len() + frac.len() == 0
        || int.len() > 30
        || !int.iter().chain(frac).all(u8::is_ascii_digit)
    {
        return None;
    }
    let digits = |d: &[u8]| d.iter().fold(0i128, |a, &c| a * 10 + i128::from(c - b'0'));
    let mut ms = digits(int) * 1000;
    for (i, &c) in frac.iter().take(3).enumerate() {
        ms += i128::from(c - b'0') * [100, 10, 1][i];
    }
    let rest = frac.iter().skip(3).any(|&c| c != b'0');
    Some(match (neg, rest) {
        // Toward +inf: a positive remainder rounds up, a negative one to 0.
        (false, true) => ms + 1,
        (false, false) => ms,
        (true, _) => -ms,
    })
}

#[derive(Debug)]
enum State {
    Waiting,
    /// Served: the reply bytes to send.
    Done(Vec<u8>),
    /// Timed out, killed or disconnected.
    Cancelled,
}

/// One blocked client.
pub struct Waiter {
    seq: u64,
    info: Arc<ClientInfo>,
    db: usize,
    resp3: bool,
    req: BlockRequest,
    state: Mutex<State>,
    notify: tokio::sync::Notify,
}

type Queues = HashMap<(usize, Vec<u8>), VecDeque<Arc<Waiter>>>;

/// The registry of blocked clients (one per server).
#[derive(Default)]
pub struct Blocking {
    queues: Mutex<Queues>,
    /// Number of registered waiters (fast path for writers).
    waiters: AtomicUsize,
    ready: Mutex<Vec<(usize, Vec<u8>)>>,
    has_ready: AtomicBool,
    /// Serializes serving and cancelling, so a waiter is never served after
    /// it left, and queues are served in order.
    serving: Mutex<()>,
    seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Blocking {
    /// Number of clients currently blocked (INFO `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.waiters.load(Relaxed)
    }

    /// Total number of keys with waiters (INFO `total_blocking_keys`).
    pub fn blocking_keys(&self) -> usize {
        lock(&self.queues).len()
    }

    /// Marks a key as having received data (writers call this through
    /// `Server::changed`).
    #[inline]
    pub fn signal(&self, db: usize, key: &[u8]) {
        if self.waiters.load(SeqCst) == 0 {
            return;
        }
        self.signal_waiting(db, key);
    }

    fn signal_waiting(&self, db: usize, key: &[u8]) {
        if !lock(&self.queues).contains_key(&(db, key.to_vec())) {
            return;
        }
        lock(&self.ready).push((db, key.to_vec()));
        self.has_ready.store(true, SeqCst);
    }

    #[inline]
    pub fn has_ready(&self) -> bool {
        self.has_ready.load(Relaxed)
    }

    fn register(&self, w: &Arc<Waiter>) {
        let mut q = lock(&self.queues);
        for k in &w.req.keys {
            let dq = q.entry((w.db, k.clone())).or_default();
            // BLPOP k k 0 lists a key twice: queue once.
            if !dq.iter().any(|x| x.seq == w.seq) {
                dq.push_back(w.clone());
            }
        }
        self.waiters.fetch_add(1, SeqCst);
    }

    /// Removes `w` from every queue (caller holds `serving`).
    fn unregister(&self, w: &Waiter) {
        let mut q = lock(&self.queues);
        let mut found = false;
        for k in &w.req.keys {
            let id = (w.db, k.clone());
            if let Some(dq) = q.get_mut(&id) {
                let before = dq.len();
                dq.retain(|x| x.seq != w.seq);
                found |= dq.len() != before;
                if dq.is_empty() {
                    q.remove(&id);
                }
            }
        }
        if found {
            self.waiters.fetch_sub(1, SeqCst);
        }
    }

    /// The `n`th waiter queued on a key.
    fn nth(&self, db: usize, key: &[u8], n: usize) -> Option<Arc<Waiter>> {
        lock(&self.queues)
            .get(&(db, key.to_vec()))
            .and_then(|q| q.get(n).cloned())
    }
}

/// Serves waiters of every key signalled ready, FIFO per key, running the
/// waiters' commands on this thread. Called by the gate after a command (the
/// caller holds no slot lock).
pub fn serve_ready(srv: &Server) {
    let b = &srv.blocking;
    if !b.has_ready() {
        return;
    }
    let _g = lock(&b.serving);
    loop {
        b.has_ready.store(false, SeqCst);
        let batch = std::mem::take(&mut *lock(&b.ready));
        if batch.is_empty() {
            break;
        }
        for (db, key) in batch {
            // Served waiters leave the queue; unserved ones that wait on
            // their own terms are stepped over.
            let mut skip = 0;
            while let Some(w) = b.nth(db, &key, skip) {
                match serve_one(srv, &w, &key) {
                    Served::Yes => {}
                    Served::No if !w.req.each => break,
                    Served::No | Served::OtherType => skip += 1,
                }
            }
        }
    }
}

/// What became of a waiter offered a ready key.
enum Served {
    /// Answered (and removed from its queues).
    Yes,
    /// Still nothing to serve.
    No,
    /// The key holds a type the waiter does not take: it is not run.
    OtherType,
}

/// Runs `w`'s command for ready `key`.
fn serve_one(srv: &Server, w: &Arc<Waiter>, key: &[u8]) -> Served {
    let mut client = Client::new(w.info.clone(), true);
    client.select(w.db);
    client.woken_by = Some(key.to_vec());
    let mut out = Reply::new();
    out.resp3 = w.resp3;
    let argv: Vec<&[u8]> = w.req.argv.iter().map(|a| a.as_slice()).collect();
    if argv.is_empty() {
        return Served::No;
    }
    // A list or zset waiter whose key now holds another type keeps waiting
    // (Redis serves list waiters from lists and zset waiters from zsets
    // only); stream waiters judge for themselves (cmd/stream.rs).
    let wants = match argv[0].to_ascii_lowercase().as_slice() {
        b"bzpopmin" | b"bzpopmax" | b"bzmpop" => Some(crate::db::Kind::ZSet),
        b"xread" | b"xreadgroup" => None,
        _ => Some(crate::db::Kind::List),
    };
    if let (Some(want), Some(db)) = (wants, srv.ks.db(w.db)) {
        use crate::db::KeyAccess;
        let mut slot = srv.ks.lock_key(db, key);
        if slot.peek(key).is_some_and(|e| e.kind() != want) {
            return Served::OtherType;
        }
    }
    exec::call_wakeup(srv, &mut client, &mut out, crate::db::now_ms(), &argv);
    if client.block.is_some() {
        // Still nothing to serve (another waiter took it): keep waiting.
        return Served::No;
    }
    srv.blocking.unregister(w);
    *lock(&w.state) = State::Done(out.buf);
    w.notify.notify_one();
    Served::Yes
}

/// How a blocked connection's wait ended.
pub enum Outcome {
    /// The bytes to send (the served reply or the timeout's nil).
    Reply(Vec<u8>),
    /// The client disconnected or was killed: close the connection.
    Closed,
}

/// Blocks the connection until `req` is served, times out or the client goes
/// away. Keeps reading the socket into `rbuf` (without parsing it) to notice
/// a disconnect. Runs on the connection's task.
pub async fn wait(
    srv: &Server,
    stream: &mut tokio::net::TcpStream,
    rbuf: &mut Vec<u8>,
    client: &Client,
    resp3: bool,
    req: BlockRequest,
    qbuf_limit: u64,
) -> Outcome {
    use tokio::io::AsyncReadExt;
    let b = &srv.blocking;
    let w = Arc::new(Waiter {
        seq: b.seq.fetch_add(1, Relaxed),
        info: client.info.clone(),
        db: client.db,
        resp3,
        req,
        state: Mutex::new(State::Waiting),
        notify: tokio::sync::Notify::new(),
    });
    b.register(&w);
    // Data may have arrived between the handler's check and the
    // registration: treat our keys as ready (serving stays FIFO).
    {
        let mut r = lock(&b.ready);
        for k in &w.req.keys {
            r.push((w.db, k.clone()));
        }
        b.has_ready.store(true, SeqCst);
    }
    serve_ready(srv);
    let deadline = w.req.deadline.and_then(|d| {
        let now = crate::db::now_ms();
        // Past the clock's range is forever.
        tokio::time::Instant::now()
            .checked_add(std::time::Duration::from_millis(d.saturating_sub(now)))
    });
    let info = client.info.clone();
    // CLIENT LIST's `b` while this wait lasts, however it ends.
    struct Blocked<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Blocked<'_> {
        fn drop(&mut self) {
            self.0.store(false, Relaxed);
        }
    }
    info.blocked.store(true, Relaxed);
    let _blocked = Blocked(&info.blocked);
    loop {
        if let Some(r) = take_done(&w) {
            return Outcome::Reply(r);
        }
        if info.killed.load(Relaxed) {
            cancel(srv, &w);
            return Outcome::Closed;
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(16 * 1024);
        }
        tokio::select! {
            _ = w.notify.notified() => {}
            _ = sleep => {
                if let Some(r) = cancel(srv, &w) {
                    return Outcome::Reply(r);
                }
                let mut out = Reply::new();
                out.resp3 = resp3;
                match w.req.nil {
                    Nil::Array => out.null_array(),
                    Nil::Bulk => out.null(),
                }
                return Outcome::Reply(out.buf);
            }
            _ = info.kill.notified() => {
                cancel(srv, &w);
                return Outcome::Closed;
            }
            // Pushes (pub/sub in RESP3, tracking invalidations, MONITOR
            // lines) reach a blocked client at once, as in Redis.
            _ = info.mail.notified() => {
                if !crate::net::flush_mail(srv, stream, &info).await {
                    cancel(srv, &w);
                    return Outcome::Closed;
                }
            }
            r = stream.read_buf(rbuf) => {
                let n = r.unwrap_or(0);
                if n == 0 || rbuf.len() as u64 > qbuf_limit {
                    cancel(srv, &w);
                    return Outcome::Closed;
                }
                srv.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
            }
        }
    }
}

fn take_done(w: &Waiter) -> Option<Vec<u8>> {
    let mut st = lock(&w.state);
    if !matches!(&*st, State::Done(_)) {
        return None;
    }
    match std::mem::replace(&mut *st, State::Cancelled) {
        State::Done(r) => Some(r),
        _ => None,
    }
}

/// Leaves every queue; returns the reply if the waiter was served meanwhile.
fn cancel(srv: &Server, w: &Waiter) -> Option<Vec<u8>> {
    let b = &srv.blocking;
    let _g = lock(&b.serving);
    b.unregister(w);
    let mut st = lock(&w.state);
    match std::mem::replace(&mut *st, State::Cancelled) {
        State::Done(r) => Some(r),
        _ => None,
    }
}

/// CLIENT UNBLOCK support: ends client `id`'s wait as if it timed out
/// (`error == false`: the nil reply) or with
/// `-UNBLOCKED client unblocked via CLIENT UNBLOCK`. Returns whether the
/// client was blocked. (For the CLIENT command's owner to call.)
pub fn unblock(srv: &Server, id: u64, error: bool) -> bool {
    let b = &srv.blocking;
    let _g = lock(&b.serving);
    let w = {
        let q = lock(&b.queues);
        q.values()
            .flat_map(|dq| dq.iter())
            .find(|w| w.info.id == id)
            .cloned()
    };
    let Some(w) = w else { return false };
    b.unregister(&w);
    let mut out = Reply::new();
    out.resp3 = w.resp3;
    if error {
        exec::reply_error(srv, &mut out, errors::UNBLOCKED.as_bytes());
    } else {
        match w.req.nil {
            Nil::Array => out.null_array(),
            Nil::Bulk => out.null(),
        }
    }
    *lock(&w.state) = State::Done(out.buf);
    w.notify.notify_one();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"0", 1000), Ok(None));
        // Rounded up to a millisecond, as Redis' ceill.
        assert_eq!(parse_timeout(b"0.0001", 1000), Ok(Some(1001)));
        assert_eq!(parse_timeout(b"0.001", 1000), Ok(Some(1001)));
        assert_eq!(parse_timeout(b"0.0010", 1000), Ok(Some(1001)));
        assert_eq!(parse_timeout(b"1e-4", 1000), Ok(Some(1001)));
        assert_eq!(parse_timeout(b".5", 1000), Ok(Some(1500)));
        // The largest timeouts Redis accepts.
        assert_eq!(
            parse_timeout(b"9223372036854775.807", 0),
            Ok(Some(i64::MAX as u64))
        );
        assert_eq!(
            parse_timeout(b"9223372036854775", 1000),
            Ok(Some(9_223_372_036_854_776_000))
        );
        assert_eq!(
            parse_timeout(b"9223372036854775.808", 0),
            Err(CmdError::Static(errors::TIMEOUT_NEGATIVE))
        );
        assert_eq!(
            parse_timeout(b"9223372036854775807", 0),
            Err(CmdError::Static(errors::TIMEOUT_NEGATIVE))
        );
        assert_eq!(parse_timeout(b"1.5", 1000), Ok(Some(2500)));
        assert_eq!(
            parse_timeout(b"-1", 1000),
            Err(CmdError::Static(errors::TIMEOUT_NEGATIVE))
        );
        assert_eq!(parse_timeout(b"-0.0001", 1000), Ok(None));
        assert_eq!(
            parse_timeout(b"inf", 1000),
            Err(CmdError::Static(errors::TIMEOUT_NEGATIVE))
        );
        assert_eq!(
            parse_timeout(b"1e20", 1000),
            Err(CmdError::Static(errors::TIMEOUT_NEGATIVE))
        );
        assert_eq!(
            parse_timeout(b"abc", 1000),
            Err(CmdError::Static(errors::TIMEOUT_NOT_FLOAT))
        );
        assert_eq!(
            parse_timeout(b"nan", 1000),
            Err(CmdError::Static(errors::TIMEOUT_NOT_FLOAT))
        );
    }
}
