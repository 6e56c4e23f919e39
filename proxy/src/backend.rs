//! Backend connections: one pipelined TCP connection task per (server, DB,
//! parallel index), shared by every session (codis.md §3.6).
//!
//! The hot path has no channel and no allocation per request:
//!
//! * A session appends a request's bytes to the connection's shared queue
//!   buffer ([`BackendConn::submit`], one lock per batch of requests) together
//!   with a [`Batch`]: "the next `n` replies belong to session inbox X,
//!   sequence numbers `first..first+n`". Only the first submit after the
//!   connection task went idle wakes it, so a batch of requests from many
//!   sessions costs one wake-up.
//! * The connection task moves the queued bytes into its write buffer (a
//!   buffer swap when it is empty), yields once so that the sessions woken
//!   in the same round add theirs, reads replies before it writes, and
//!   right after a write reads once more without waiting for the I/O
//!   driver's report (a backend on the same core has usually answered by
//!   then): so each round's replies reach their sessions before the next
//!   batch goes out, and a backend wake-up serves one bigger batch instead
//!   of two small ones. Every reply frame parsed from one read is appended
//!   to its session's [`Inbox`] (one lock per run of frames for the same
//!   session) and each session is woken once.
//!
//! On connect the task sends `AUTH product_auth` (or, on a user's
//! connections, `AUTH user pass`: see [`user_lane`]) and `SELECT db` first. When
//! the connection breaks, every request already taken from the queue fails
//! (`backend conn reset`); requests still queued are sent on the next
//! connection. The first 10 consecutive connect failures retry at once (on
//! the next request); after that the delay doubles from 50 ms to 5 s and
//! requests arriving meanwhile fail at once, as in Codis. A backend that does
//! not answer within `backend_recv_timeout` while requests are outstanding is
//! disconnected, and so is one that does not take our writes within
//! `backend_send_timeout`. At most `backend_max_pipeline` requests are in
//! flight; the rest wait in the queue.
//!
//! Fail-fast ([`Health`], one per server, shared by all its connections):
//! a connection that has waited `backend_probe_period` for a reply with
//! requests outstanding has the server probed on a fresh connection (AUTH,
//! PING). A probe not answered within `backend_probe_timeout` marks the
//! server down: its connections end (their outstanding requests fail with
//! `backend conn reset`), new requests fail at once, and the probe repeats
//! every `backend_probe_period` until the server answers, which marks it
//! up. A server that answers the probe is only slow: nothing happens.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::router::{Chan, SlotGuard};

/// What a one-off call ([`ReplyTo::Call`]) resolves to: a raw reply frame,
/// or a failure.
pub type BackendResult = Result<Vec<u8>, BackendError>;

/// A transport failure (the session wraps it as `ERR handle response, ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// Connection broken or not (yet) available: `backend conn reset`.
    Reset,
}

impl BackendError {
    pub fn text(&self) -> &'static str {
        match self {
            BackendError::Reset => crate::errors::CONN_RESET,
        }
    }
}

/// Buffered request bytes above which a connection writes without first
/// yielding (see [`Step::Yield`]).
const FLUSH_NOW: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Registers `cx`'s waker in `slot` unless the same task is already there.
fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// One reply (or failure) for a session, as stored in its [`Inbox`].
#[derive(Clone, Copy, Debug)]
pub struct Item {
    /// The session's sequence number of the request.
    pub seq: u64,
    /// The reply frame: `data[start..end]` of the drained inbox.
    pub start: usize,
    pub end: usize,
    /// The connection broke before the reply came (`backend conn reset`).
    pub reset: bool,
}

/// Where backend connections put a session's replies: the frames' bytes in
/// one buffer plus an index. The session swaps both vectors out in one lock
/// (and hands back its emptied ones, so the buffers are reused).
///
/// The inbox also enforces the session's hard limit on reply bytes
/// (`session_reply_hard_limit`): a reply that would take the inbox plus
/// what the session holds ([`Inbox::set_held`]) over it detaches the
/// session: the inbox is emptied, every later reply is dropped as it comes
/// (so the connections it shares never wait on it) and the session closes
/// without flushing. A reply alone (nothing else held) is always taken, so
/// a value larger than the limit can still be read by a client that reads.
#[derive(Default)]
pub struct Inbox {
    m: Mutex<InboxState>,
    /// Proxy shutdown: the session stops reading (see [`Inbox::stop`]).
    stop: AtomicBool,
    /// Reply bytes the session holds outside the inbox (published by it).
    held: AtomicUsize,
    /// The hard limit in bytes (0: none).
    limit: usize,
    /// Over the limit, or the session is gone: replies are dropped.
    detached: AtomicBool,
}

#[derive(Default)]
struct InboxState {
    data: Vec<u8>,
    items: Vec<Item>,
    waker: Option<Waker>,
}

/// Appends replies to an inbox under its lock (see [`Inbox::deliver`]).
pub struct Deliver<'a> {
    st: &'a mut InboxState,
    held: usize,
    limit: usize,
    detached: bool,
}

impl Deliver<'_> {
    pub fn reply(&mut self, seq: u64, frame: &[u8]) {
        if self.detached {
            return;
        }
        if self.limit != 0 {
            let have = self.st.data.len() + self.held;
            if have != 0 && have + frame.len() > self.limit {
                self.detached = true;
                self.st.data = Vec::new();
                self.st.items = Vec::new();
                return;
            }
        }
        let start = self.st.data.len();
        self.st.data.extend_from_slice(frame);
        self.st.items.push(Item {
            seq,
            start,
            end: self.st.data.len(),
            reset: false,
        });
    }

    pub fn reset(&mut self, seq: u64) {
        if self.detached {
            return;
        }
        let at = self.st.data.len();
        self.st.items.push(Item {
            seq,
            start: at,
            end: at,
            reset: true,
        });
    }
}

impl Inbox {
    /// An inbox that detaches its session above `limit` reply bytes (0:
    /// never).
    pub fn with_limit(limit: usize) -> Inbox {
        Inbox {
            limit,
            ..Inbox::default()
        }
    }

    /// Appends under one lock, then wakes the session (if it waits).
    pub fn deliver(&self, f: impl FnOnce(&mut Deliver<'_>)) {
        let w = {
            let mut g = lock(&self.m);
            let was = self.detached.load(Ordering::Relaxed);
            let mut d = Deliver {
                st: &mut g,
                held: self.held.load(Ordering::Relaxed),
                limit: self.limit,
                detached: was,
            };
            f(&mut d);
            if d.detached && !was {
                self.detached.store(true, Ordering::SeqCst);
            }
            g.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// The session publishes the reply bytes it holds (unwritten output,
    /// replies kept aside) for the hard-limit check.
    pub fn set_held(&self, n: usize) {
        self.held.store(n, Ordering::Relaxed);
    }

    /// Whether the session was detached (over its hard limit).
    pub fn detached(&self) -> bool {
        self.detached.load(Ordering::SeqCst)
    }

    /// The session is gone: replies still in flight are dropped on arrival
    /// and the buffers are freed now.
    pub fn close(&self) {
        let mut g = lock(&self.m);
        self.detached.store(true, Ordering::SeqCst);
        g.data = Vec::new();
        g.items = Vec::new();
        g.waker = None;
    }

    /// Tells the session to stop reading new requests, and wakes it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let w = lock(&self.m).waker.take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Whether [`Inbox::stop`] was called. Checked after
    /// [`Inbox::take`] registered the waker, so a stop is never missed.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Takes everything delivered so far into `data`/`items` (which must be
    /// empty); with `cx`, registers the task to be woken by the next
    /// delivery when there is nothing. Returns whether anything was taken.
    pub fn take(
        &self,
        data: &mut Vec<u8>,
        items: &mut Vec<Item>,
        cx: Option<&Context<'_>>,
    ) -> bool {
        let mut g = lock(&self.m);
        if g.items.is_empty() {
            if let Some(cx) = cx {
                set_waker(&mut g.waker, cx);
            }
            return false;
        }
        std::mem::swap(&mut g.data, data);
        std::mem::swap(&mut g.items, items);
        true
    }
}

/// Who gets the replies of a run of requests.
pub enum ReplyTo {
    /// A session: replies go to its inbox with `seq`, `seq + 1`, ...
    Session(Arc<Inbox>, u64),
    /// A one-off call (migration helpers, health checks); `n` is 1.
    Call(oneshot::Sender<BackendResult>),
    /// Nobody waits (keepalive PING).
    Discard,
}

/// `n` consecutive requests answered to the same place.
pub struct Batch {
    pub to: ReplyTo,
    pub n: u32,
}

impl Batch {
    /// Fails every request of the batch with `backend conn reset`.
    fn fail(self) {
        match self.to {
            ReplyTo::Session(inbox, first) => inbox.deliver(|d| {
                for k in 0..self.n as u64 {
                    d.reset(first + k);
                }
            }),
            ReplyTo::Call(tx) => {
                let _ = tx.send(Err(BackendError::Reset));
            }
            ReplyTo::Discard => {}
        }
    }

    /// Splits off the first `k` requests (0 < k < n).
    fn take_front(&mut self, k: u32) -> Batch {
        let to = match &mut self.to {
            ReplyTo::Session(inbox, first) => {
                let t = ReplyTo::Session(inbox.clone(), *first);
                *first += k as u64;
                t
            }
            // Calls are single requests; never split.
            ReplyTo::Call(_) | ReplyTo::Discard => ReplyTo::Discard,
        };
        self.n -= k;
        Batch { to, n: k }
    }
}

/// Per request: its length in the byte stream and its slot guard, which
/// keeps the slot's in-flight count up until the reply arrives (or the
/// request fails), so a slot switch can drain it.
pub struct Req {
    pub len: usize,
    pub guard: Option<SlotGuard>,
}

/// Requests staged by a session for one connection, submitted in one go.
#[derive(Default)]
pub struct Outgoing {
    pub buf: Vec<u8>,
    pub batches: Vec<Batch>,
    pub reqs: Vec<Req>,
}

impl Outgoing {
    /// Adds one request answered to `inbox` with sequence number `seq`.
    pub fn push(&mut self, data: &[u8], inbox: &Arc<Inbox>, seq: u64, guard: Option<SlotGuard>) {
        self.buf.extend_from_slice(data);
        self.reqs.push(Req {
            len: data.len(),
            guard,
        });
        if let Some(Batch {
            to: ReplyTo::Session(i, first),
            n,
        }) = self.batches.last_mut()
            && *first + *n as u64 == seq
            && Arc::ptr_eq(i, inbox)
        {
            *n += 1;
            return;
        }
        self.batches.push(Batch {
            to: ReplyTo::Session(inbox.clone(), seq),
            n: 1,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// The most distinct users (name and password) that sessions may
/// authenticate as through the proxy; each has its own backend connections.
pub const MAX_USERS: usize = 64;

/// Users that sessions authenticated as with `AUTH user pass` passed
/// through to the servers (`session_auth` empty). `Chan::user` is an index
/// into it plus one; 0 is the proxy's own `product_auth` connections.
/// Append-only (a lane's connections stay pooled for the proxy's life), and
/// only credentials a server accepted are added.
static USERS: std::sync::RwLock<Vec<(Vec<u8>, Vec<u8>)>> = std::sync::RwLock::new(Vec::new());

/// The lane of `user`/`pass` (added on first use); None when
/// [`MAX_USERS`] lanes are taken.
pub fn user_lane(user: &[u8], pass: &[u8]) -> Option<u16> {
    let find = |v: &Vec<(Vec<u8>, Vec<u8>)>| {
        v.iter()
            .position(|(u, p)| u == user && p == pass)
            .map(|i| i as u16 + 1)
    };
    if let Some(i) = find(&USERS.read().unwrap_or_else(|p| p.into_inner())) {
        return Some(i);
    }
    let mut g = USERS.write().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = find(&g) {
        return Some(i);
    }
    if g.len() >= MAX_USERS {
        return None;
    }
    g.push((user.to_vec(), pass.to_vec()));
    Some(g.len() as u16)
}

/// The name and password of a lane (None for lane 0).
pub fn user_creds(lane: u16) -> Option<(Vec<u8>, Vec<u8>)> {
    let g = USERS.read().unwrap_or_else(|p| p.into_inner());
    g.get((lane as usize).checked_sub(1)?).cloned()
}

/// The user name a lane authenticates as (`default` for lane 0).
pub fn user_name(lane: u16) -> Vec<u8> {
    user_creds(lane).map_or_else(|| b"default".to_vec(), |(u, _)| u)
}

/// Asks the server at `addr` whether it accepts `AUTH user pass`, on a
/// connection of its own: Ok, or the reply frame to give the client (the
/// server's error, or the proxy's when the server cannot be reached).
pub async fn check_auth(addr: &str, user: &[u8], pass: &[u8]) -> Result<(), Vec<u8>> {
    let run = async {
        let mut s = TcpStream::connect(addr).await.map_err(|_| ())?;
        let mut req = Vec::new();
        encode(&mut req, &[b"AUTH", user, pass]);
        s.write_all(&req).await.map_err(|_| ())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            let n = s.read(&mut chunk).await.map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Ok(Some(len)) = frame_len(&buf) {
                buf.truncate(len);
                return Ok(buf);
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(5), run).await {
        Ok(Ok(r)) if r.starts_with(b"+") => Ok(()),
        Ok(Ok(r)) => Err(r),
        _ => Err(crate::errors::line(&crate::errors::handle_response(
            crate::errors::CONN_RESET,
        ))),
    }
}

/// Settings every backend connection needs.
#[derive(Clone, Debug)]
pub struct BackendOptions {
    pub auth: String,
    pub recv_timeout: Duration,
    pub send_timeout: Duration,
    pub max_pipeline: usize,
    /// Keepalive: an idle connection sends PING this often (0: never).
    pub ping_period: Duration,
    /// TCP keepalive period (0: off).
    pub tcp_keepalive: Duration,
    /// A reply overdue this long has the server probed (0: never).
    pub probe_period: Duration,
    /// A probe unanswered this long marks the server down.
    pub probe_timeout: Duration,
}

/// Whether one backend server answers, shared by all its connections
/// (see the module comment).
pub struct Health {
    addr: String,
    opts: Arc<BackendOptions>,
    down: AtomicBool,
    /// A probe task is running.
    probing: AtomicBool,
}

impl Health {
    pub fn new(addr: String, opts: Arc<BackendOptions>) -> Arc<Health> {
        Arc::new(Health {
            addr,
            opts,
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
        })
    }

    /// Marked down by a probe (until one is answered).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// A connection waited too long for a reply: probe the server, unless
    /// a probe is already running.
    fn suspect(self: &Arc<Self>) {
        if self.opts.probe_period.is_zero() || self.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let h = self.clone();
        tokio::spawn(async move {
            loop {
                match probe(&h.addr, &h.opts).await {
                    Ok(()) => {
                        if h.down.swap(false, Ordering::SeqCst) {
                            crate::log::warn(&format!(
                                "backend {}: answers a probe again, up",
                                h.addr
                            ));
                        } else {
                            // Alive but slow: probe again no sooner than a
                            // period from now.
                            tokio::time::sleep(h.opts.probe_period).await;
                        }
                        h.probing.store(false, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        if !h.down.swap(true, Ordering::SeqCst) {
                            crate::log::warn(&format!(
                                "backend {}: probe failed ({e}), marked down",
                                h.addr
                            ));
                        }
                    }
                }
                tokio::time::sleep(h.opts.probe_period).await;
            }
        });
    }
}

/// One probe: a fresh connection, `AUTH` when set, `PING`; any reply to
/// each counts (the server is running commands), within `probe_timeout`.
async fn probe(addr: &str, opts: &BackendOptions) -> Result<(), String> {
    let run = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut req = Vec::new();
        let mut expect = 1;
        if !opts.auth.is_empty() {
            encode(&mut req, &[b"AUTH", opts.auth.as_bytes()]);
            expect += 1;
        }
        req.extend_from_slice(PING);
        s.write_all(&req).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        while expect > 0 {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Ok(Some(len)) = frame_len(&buf) {
                buf.drain(..len);
                expect -= 1;
            }
        }
        Ok(())
    };
    match tokio::time::timeout(opts.probe_timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            crate::config::go_duration(opts.probe_timeout)
        )),
    }
}

/// Turns on TCP keepalive with `period` (idle time and probe interval);
/// a zero period leaves it off.
pub fn set_tcp_keepalive(stream: &TcpStream, period: Duration) {
    if period.is_zero() {
        return;
    }
    let ka = socket2::TcpKeepalive::new()
        .with_time(period)
        .with_interval(period);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
        crate::log::debug(&format!("set tcp keepalive: {e}"));
    }
}

/// The queue between sessions and a connection task.
#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    batches: VecDeque<Batch>,
    reqs: VecDeque<Req>,
    /// The connection task, when it waits for requests.
    waker: Option<Waker>,
}

impl Queue {
    /// Fails everything queued.
    fn fail_all(&mut self) -> Vec<Batch> {
        self.buf.clear();
        self.reqs.clear();
        self.batches.drain(..).collect()
    }
}

/// Handle of one connection task.
#[derive(Clone)]
pub struct BackendConn {
    q: Arc<Mutex<Queue>>,
    pub state: Arc<ConnState>,
    /// The server's health, shared with its other connections.
    pub health: Arc<Health>,
}

/// Observable state of a connection (for stats and metrics).
#[derive(Default)]
pub struct ConnState {
    pub connected: AtomicBool,
    /// The server answered MASTERDOWN/LOADING: skipped for replica reads
    /// until a keepalive INFO shows it healthy again.
    pub stale: AtomicBool,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
}

impl BackendConn {
    /// Spawns the connection task. A lazy one connects on the first request;
    /// an eager one (replicas) connects at once and keeps reconnecting in the
    /// background, so its `connected` state is meaningful without traffic.
    pub fn spawn(
        addr: String,
        ch: Chan,
        opts: Arc<BackendOptions>,
        eager: bool,
        health: Arc<Health>,
    ) -> BackendConn {
        let c = BackendConn {
            q: Arc::new(Mutex::new(Queue::default())),
            state: Arc::new(ConnState::default()),
            health,
        };
        tokio::spawn(conn_task(addr, ch, opts, c.clone(), eager));
        c
    }

    /// Whether two handles are the same connection.
    pub fn same(&self, other: &BackendConn) -> bool {
        Arc::ptr_eq(&self.q, &other.q)
    }

    /// Queues everything staged in `out` (leaving it empty, buffers kept)
    /// and wakes the connection task if it is idle.
    pub fn submit(&self, out: &mut Outgoing) {
        if out.is_empty() {
            return;
        }
        self.state
            .requests
            .fetch_add(out.reqs.len() as u64, Ordering::Relaxed);
        let w = {
            let mut q = lock(&self.q);
            if q.buf.is_empty() {
                std::mem::swap(&mut q.buf, &mut out.buf);
            } else {
                q.buf.extend_from_slice(&out.buf);
                out.buf.clear();
            }
            if out.buf.capacity() > 1 << 20 {
                out.buf = Vec::new();
            }
            q.batches.extend(out.batches.drain(..));
            q.reqs.extend(out.reqs.drain(..));
            q.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Queues one request answered to a one-off receiver (or to nobody).
    pub fn send_one(&self, data: &[u8], to: ReplyTo) {
        let mut out = Outgoing::default();
        out.buf.extend_from_slice(data);
        out.reqs.push(Req {
            len: data.len(),
            guard: None,
        });
        out.batches.push(Batch { to, n: 1 });
        self.submit(&mut out);
    }

    /// One round trip (migration helpers): the raw reply frame.
    pub async fn call(&self, data: &[u8]) -> BackendResult {
        let (tx, rx) = oneshot::channel();
        self.send_one(data, ReplyTo::Call(tx));
        rx.await.unwrap_or(Err(BackendError::Reset))
    }

    /// Waits until requests are queued (or `until` passes): `true` when
    /// there are requests.
    async fn wait_queued(&self, until: Option<tokio::time::Instant>) -> bool {
        let queued = poll_fn(|cx| {
            let mut q = lock(&self.q);
            if !q.reqs.is_empty() {
                return Poll::Ready(());
            }
            set_waker(&mut q.waker, cx);
            Poll::Pending
        });
        match until {
            None => {
                queued.await;
                true
            }
            Some(t) => tokio::time::timeout_at(t, queued).await.is_ok(),
        }
    }

    fn fail_queued(&self) {
        let failed = lock(&self.q).fail_all();
        for b in failed {
            b.fail();
        }
    }
}

async fn conn_task(
    addr: String,
    ch: Chan,
    opts: Arc<BackendOptions>,
    conn: BackendConn,
    eager: bool,
) {
    let state = conn.state.clone();
    let db = format!("{}{}", ch.db, if ch.resp3 { " resp3" } else { "" });
    let mut fails: u32 = 0;
    let mut retry_at: Option<Instant> = None;
    let mut delay = Duration::from_millis(50);
    // Eager connections try at once, then on their backoff timer.
    let mut background_try = eager;
    loop {
        let until = background_try
            .then(|| tokio::time::Instant::from_std(retry_at.unwrap_or_else(Instant::now)));
        let has_requests = conn.wait_queued(until).await;
        if conn.health.is_down() {
            // Marked down by a probe: fail fast, do not connect until a
            // probe is answered.
            if has_requests {
                conn.fail_queued();
            }
            if eager {
                let wait = opts.probe_period.max(Duration::from_millis(100));
                retry_at = Some(Instant::now() + wait);
                background_try = true;
            }
            continue;
        }
        let backing_off = retry_at.is_some_and(|t| Instant::now() < t);
        if backing_off && has_requests {
            conn.fail_queued();
            continue;
        }
        match connect(&addr, ch, &opts).await {
            Ok(stream) => {
                if fails > 0 {
                    crate::log::info(&format!("backend {addr} db {db}: connected"));
                }
                fails = 0;
                retry_at = None;
                delay = Duration::from_millis(50);
                state.connected.store(true, Ordering::Relaxed);
                let mut run = Run::new(stream, &conn, &opts);
                let why = loop {
                    match poll_fn(|cx| run.poll(cx)).await {
                        Step::Yield => tokio::task::yield_now().await,
                        Step::End(why) => break why,
                    }
                };
                run.fail_inflight();
                drop(run);
                state.connected.store(false, Ordering::Relaxed);
                state.failures.fetch_add(1, Ordering::Relaxed);
                crate::log::warn(&format!("backend {addr} db {db}: connection lost: {why}"));
                background_try = eager;
            }
            Err(e) => {
                fails += 1;
                state.failures.fetch_add(1, Ordering::Relaxed);
                if fails == 1 || fails == 11 {
                    crate::log::warn(&format!("backend {addr} db {db}: connect failed: {e}"));
                }
                if fails > 10 || eager {
                    retry_at = Some(Instant::now() + delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                if has_requests {
                    conn.fail_queued();
                }
            }
        }
    }
}

pub async fn connect(addr: &str, ch: Chan, opts: &BackendOptions) -> Result<TcpStream, String> {
    let dial = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr));
    let mut s = match dial.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("dial timeout".into()),
    };
    let _ = s.set_nodelay(true);
    set_tcp_keepalive(&s, opts.tcp_keepalive);
    let mut hello = Vec::new();
    let mut expect = 0;
    if let Some((user, pass)) = user_creds(ch.user) {
        encode(&mut hello, &[b"AUTH", &user, &pass]);
        expect += 1;
    } else if !opts.auth.is_empty() {
        encode(&mut hello, &[b"AUTH", opts.auth.as_bytes()]);
        expect += 1;
    }
    if ch.resp3 {
        encode(&mut hello, &[b"HELLO", b"3"]);
        expect += 1;
    }
    if ch.db != 0 {
        encode(&mut hello, &[b"SELECT", ch.db.to_string().as_bytes()]);
        expect += 1;
    }
    if expect > 0 {
        let fut = async {
            s.write_all(&hello).await.map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            let mut got = 0;
            while got < expect {
                let mut chunk = [0u8; 512];
                let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("closed during handshake".to_string());
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Ok(Some(len)) = frame_len(&buf) {
                    // +OK to AUTH and SELECT, a map to HELLO 3.
                    if !buf.starts_with(b"+") && !buf.starts_with(b"%") {
                        return Err(format!(
                            "handshake refused: {}",
                            String::from_utf8_lossy(&buf[..len]).trim_end()
                        ));
                    }
                    buf.drain(..len);
                    got += 1;
                }
            }
            Ok(())
        };
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .map_err(|_| "handshake timeout".to_string())??;
    }
    Ok(s)
}

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const INFO: &[u8] = b"*1\r\n$4\r\nINFO\r\n";

/// What [`Run::poll`] asks of its caller.
enum Step {
    /// New requests are buffered: yield once before writing them, so that
    /// the sessions the I/O driver wakes next add theirs to the same write
    /// (bigger batches, fewer backend wake-ups; what twemproxy gets by
    /// writing on the next EPOLLOUT).
    Yield,
    /// The connection ended, for this reason.
    End(String),
}

/// One established connection, driven by [`Run::poll`] until it breaks.
struct Run<'a> {
    stream: TcpStream,
    conn: &'a BackendConn,
    opts: &'a BackendOptions,
    /// Requests written (or being written), oldest first.
    inflight: VecDeque<Batch>,
    guards: VecDeque<Option<SlotGuard>>,
    wbuf: Vec<u8>,
    woff: usize,
    /// Read buffer: `rbuf[rstart..rlen]` is unparsed (kept initialized).
    rbuf: Vec<u8>,
    rstart: usize,
    rlen: usize,
    /// Last time a reply arrived (or the connection became busy).
    last_read: Instant,
    /// Last time a request was written (keepalive PING after `ping_period`).
    last_write: Instant,
    /// Since when a write has been waiting for the socket.
    write_blocked: Option<Instant>,
    /// While a reply is overdue: when to look at the server's health next.
    probe_next: Instant,
    /// The next deadline check; pushed later lazily.
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Whether the buffered requests already waited one yield.
    yielded: bool,
    /// A batch was just written: read once without waiting for the I/O
    /// driver's readiness report.
    probe: bool,
    /// Replies parsed from the current read for one session, flushed into
    /// its inbox in one lock.
    run_inbox: Option<Arc<Inbox>>,
    run_items: Vec<(u64, usize, usize)>,
}

impl<'a> Run<'a> {
    fn new(stream: TcpStream, conn: &'a BackendConn, opts: &'a BackendOptions) -> Run<'a> {
        let now = Instant::now();
        Run {
            stream,
            conn,
            opts,
            inflight: VecDeque::new(),
            guards: VecDeque::new(),
            wbuf: Vec::with_capacity(16 * 1024),
            woff: 0,
            rbuf: vec![0; 16 * 1024],
            rstart: 0,
            rlen: 0,
            last_read: now,
            last_write: now,
            write_blocked: None,
            probe_next: now,
            yielded: false,
            probe: false,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            run_inbox: None,
            run_items: Vec::new(),
        }
    }

    fn ping_period(&self) -> Duration {
        if self.opts.ping_period.is_zero() {
            Duration::from_secs(3600 * 24 * 365)
        } else {
            self.opts.ping_period.max(Duration::from_secs(1))
        }
    }

    /// Moves queued requests (up to the pipeline limit) into the write buffer.
    fn take_queued(&mut self, cx: &Context<'_>) -> bool {
        let room = self
            .opts
            .max_pipeline
            .max(1)
            .saturating_sub(self.guards.len());
        if room == 0 {
            return false;
        }
        let mut q = lock(&self.conn.q);
        if q.reqs.is_empty() {
            set_waker(&mut q.waker, cx);
            return false;
        }
        if self.guards.is_empty() {
            self.last_read = Instant::now();
        }
        if q.reqs.len() <= room {
            if self.wbuf.len() == self.woff {
                self.wbuf.clear();
                self.woff = 0;
                std::mem::swap(&mut self.wbuf, &mut q.buf);
            } else {
                self.wbuf.extend_from_slice(&q.buf);
                q.buf.clear();
            }
            self.guards.extend(q.reqs.drain(..).map(|r| r.guard));
            self.inflight.extend(q.batches.drain(..));
            return true;
        }
        // Only `room` requests: split at a request boundary.
        let mut bytes = 0;
        for r in q.reqs.drain(..room) {
            bytes += r.len;
            self.guards.push_back(r.guard);
        }
        self.wbuf.extend_from_slice(&q.buf[..bytes]);
        q.buf.drain(..bytes);
        let mut left = room as u32;
        while left > 0 {
            let Some(b) = q.batches.front_mut() else {
                break;
            };
            if b.n <= left {
                left -= b.n;
                if let Some(b) = q.batches.pop_front() {
                    self.inflight.push_back(b);
                }
            } else {
                let part = b.take_front(left);
                self.inflight.push_back(part);
                left = 0;
            }
        }
        true
    }

    /// Adds a request of our own (keepalive PING, health INFO).
    fn push_own(&mut self, data: &[u8], to: ReplyTo) {
        if self.guards.is_empty() {
            self.last_read = Instant::now();
        }
        self.wbuf.extend_from_slice(data);
        self.guards.push_back(None);
        self.inflight.push_back(Batch { to, n: 1 });
    }

    /// Hands the replies gathered for one session to its inbox.
    fn flush_run(&mut self) {
        if let Some(inbox) = self.run_inbox.take() {
            let rbuf = &self.rbuf;
            let items = &self.run_items;
            inbox.deliver(|d| {
                for &(seq, a, b) in items {
                    d.reply(seq, &rbuf[a..b]);
                }
            });
            self.run_items.clear();
        }
    }

    /// Matches every complete reply frame in the read buffer to its request.
    fn dispatch(&mut self) -> Result<(), String> {
        loop {
            let n = match frame_len(&self.rbuf[self.rstart..self.rlen]) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(()) => {
                    self.flush_run();
                    return Err("bad reply from backend".into());
                }
            };
            let (a, b) = (self.rstart, self.rstart + n);
            self.rstart = b;
            if self.rbuf[a] == b'-' {
                let f = &self.rbuf[a..b];
                if f.starts_with(b"-MASTERDOWN") || f.starts_with(b"-LOADING") {
                    self.conn.state.stale.store(true, Ordering::Relaxed);
                }
            }
            let Some(batch) = self.inflight.front_mut() else {
                self.flush_run();
                return Err("reply without a request".into());
            };
            let mut switch: Option<Arc<Inbox>> = None;
            let mut seq = None;
            if let ReplyTo::Session(inbox, first) = &mut batch.to {
                if !self
                    .run_inbox
                    .as_ref()
                    .is_some_and(|r| Arc::ptr_eq(r, inbox))
                {
                    switch = Some(inbox.clone());
                }
                seq = Some(*first);
                *first += 1;
            }
            batch.n -= 1;
            let done = batch.n == 0;
            if let Some(inbox) = switch {
                self.flush_run();
                self.run_inbox = Some(inbox);
            }
            if let Some(seq) = seq {
                self.run_items.push((seq, a, b));
            }
            if done
                && let Some(done) = self.inflight.pop_front()
                && let ReplyTo::Call(tx) = done.to
            {
                let _ = tx.send(Ok(self.rbuf[a..b].to_vec()));
            }
            self.guards.pop_front();
        }
        self.flush_run();
        if self.rstart == self.rlen {
            self.rstart = 0;
            self.rlen = 0;
            if self.rbuf.len() > 1 << 20 {
                // A huge reply is done: give the memory back.
                self.rbuf.truncate(16 * 1024);
                self.rbuf.shrink_to_fit();
            }
        }
        Ok(())
    }

    /// Drives the connection; returns why it ended.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        if self.conn.health.is_down() {
            return Poll::Ready(Step::End("server marked down by a probe".into()));
        }
        loop {
            let mut progress = self.take_queued(cx);
            if !self.yielded && self.woff < self.wbuf.len() && self.wbuf.len() < FLUSH_NOW {
                self.yielded = true;
                return Poll::Ready(Step::Yield);
            }
            // Read first: replies to earlier writes are handed to their
            // sessions before the next batch goes out (see `probe`).
            if self.rlen == self.rbuf.len() {
                if self.rstart > 0 {
                    self.rbuf.copy_within(self.rstart..self.rlen, 0);
                    self.rlen -= self.rstart;
                    self.rstart = 0;
                } else {
                    let n = self.rbuf.len() * 2;
                    self.rbuf.resize(n, 0);
                }
            }
            let mut rb = ReadBuf::new(&mut self.rbuf[self.rlen..]);
            let got = match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => Some(rb.filled().len()),
                Poll::Ready(Err(e)) => return Poll::Ready(Step::End(e.to_string())),
                Poll::Pending if std::mem::take(&mut self.probe) => {
                    match (&*socket2::SockRef::from(&self.stream)).read(&mut self.rbuf[self.rlen..])
                    {
                        Ok(n) => Some(n),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
                        Err(e) => return Poll::Ready(Step::End(e.to_string())),
                    }
                }
                Poll::Pending => None,
            };
            if let Some(n) = got {
                if n == 0 {
                    return Poll::Ready(Step::End("closed by backend".into()));
                }
                self.rlen += n;
                self.last_read = Instant::now();
                if let Err(e) = self.dispatch() {
                    return Poll::Ready(Step::End(e));
                }
                progress = true;
            }
            // Write.
            if self.woff < self.wbuf.len() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf[self.woff..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Step::End("write returned zero".into()));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.woff += n;
                        progress = true;
                        if self.woff == self.wbuf.len() {
                            self.wbuf.clear();
                            if self.wbuf.capacity() > 1 << 20 {
                                self.wbuf.shrink_to(64 * 1024);
                            }
                            self.woff = 0;
                            self.yielded = false;
                            self.write_blocked = None;
                            self.last_write = Instant::now();
                            // The backend usually answers before we run
                            // again (same core: it preempts us), but the
                            // I/O driver reports that only at its next
                            // poll: look at once, so the replies reach
                            // their sessions before the next batch is sent.
                            self.probe = true;
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Step::End(e.to_string())),
                    Poll::Pending => {
                        self.write_blocked.get_or_insert_with(Instant::now);
                    }
                }
            }
            if progress {
                continue;
            }
            // Deadlines: recv/send timeouts, the probe and the keepalive.
            let busy = !self.guards.is_empty();
            let mut next = self.last_write + self.ping_period();
            if busy && !self.opts.recv_timeout.is_zero() {
                next = next.min(self.last_read + self.opts.recv_timeout);
            }
            let probe = !self.opts.probe_period.is_zero();
            if busy && probe {
                // Once overdue, the server's health is looked at every
                // 50 ms (`probe_next`, set when the timer fires).
                let overdue = self.last_read + self.opts.probe_period;
                next = next.min(overdue.max(self.probe_next));
            }
            if let Some(t) = self.write_blocked
                && !self.opts.send_timeout.is_zero()
            {
                next = next.min(t + self.opts.send_timeout);
            }
            let next = tokio::time::Instant::from_std(next);
            if next < self.timer.deadline() {
                self.timer.as_mut().reset(next);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if busy
                && !self.opts.recv_timeout.is_zero()
                && now >= self.last_read + self.opts.recv_timeout
            {
                return Poll::Ready(Step::End("recv timeout".into()));
            }
            if busy && probe && now >= self.last_read + self.opts.probe_period {
                if self.conn.health.is_down() {
                    return Poll::Ready(Step::End("server marked down by a probe".into()));
                }
                self.conn.health.suspect();
                self.probe_next = now + Duration::from_millis(50);
            }
            if let Some(t) = self.write_blocked
                && !self.opts.send_timeout.is_zero()
                && now >= t + self.opts.send_timeout
            {
                return Poll::Ready(Step::End("send timeout".into()));
            }
            if now >= self.last_write + self.ping_period() {
                self.last_write = now;
                if !busy {
                    self.keepalive();
                }
            }
            // Re-arm for the next check (pulled earlier above when needed).
            let far = tokio::time::Instant::from_std(now + self.ping_period());
            self.timer.as_mut().reset(far);
        }
    }

    /// The idle keepalive: PING, or INFO while marked stale.
    fn keepalive(&mut self) {
        if self.conn.state.stale.load(Ordering::Relaxed) {
            // Stale: ask INFO, clear the mark once healthy.
            let (tx, rx) = oneshot::channel::<BackendResult>();
            let st = self.conn.state.clone();
            tokio::spawn(async move {
                if let Ok(Ok(r)) = rx.await {
                    let healthy = !r.starts_with(b"-")
                        && memchr::memmem::find(&r, b"master_link_status:down").is_none()
                        && memchr::memmem::find(&r, b"loading:1").is_none();
                    if healthy {
                        st.stale.store(false, Ordering::Relaxed);
                    }
                }
            });
            self.push_own(INFO, ReplyTo::Call(tx));
        } else {
            // Keepalive PING; nobody waits for its reply.
            self.push_own(PING, ReplyTo::Discard);
        }
    }

    /// Fails every request taken from the queue (the connection is gone).
    fn fail_inflight(&mut self) {
        self.run_inbox = None;
        self.run_items.clear();
        for b in self.inflight.drain(..) {
            b.fail();
        }
        self.guards.clear();
    }
}

/// Encodes a command as a RESP multibulk.
pub use protocol::resp::request::command as encode;

/// `SLOTSMGRTTAGONE host port 3000 key`: moves a key's tag group from a
/// migration source to `host:port` (Codis' sync forwarding step).
pub fn mgrt_tag_one(host: &str, port: &str, key: &[u8]) -> Vec<u8> {
    let mut req = Vec::new();
    encode(
        &mut req,
        &[
            b"SLOTSMGRTTAGONE",
            host.as_bytes(),
            port.as_bytes(),
            b"3000",
            key,
        ],
    );
    req
}

/// Length of the complete RESP2/RESP3 reply frame at the start of `buf`:
/// `Ok(None)` when incomplete, `Err(())` on a malformed frame.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut pos = 0usize;
    // Elements still to read at each open aggregate level.
    let mut remaining: Vec<u64> = Vec::new();
    loop {
        let Some(&t) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(rel) = memchr::memchr(b'\n', &buf[pos..]) else {
            return Ok(None);
        };
        let eol = pos + rel;
        if eol < pos + 2 || buf[eol - 1] != b'\r' {
            return Err(());
        }
        let line = &buf[pos + 1..eol - 1];
        pos = eol + 1;
        let num = || -> Result<i64, ()> {
            std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or(())
        };
        let mut children: u64 = 0;
        match t {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'!' | b'=' => {
                let n = num()?;
                if n >= 0 {
                    let end = pos + n as usize + 2;
                    if buf.len() < end {
                        return Ok(None);
                    }
                    pos = end;
                }
            }
            b'*' | b'~' | b'>' => {
                let n = num()?;
                children = n.max(0) as u64;
            }
            b'%' | b'|' => {
                let n = num()?;
                children = (n.max(0) as u64) * 2;
            }
            _ => return Err(()),
        }
        if t == b'|' {
            // An attribute precedes the real value: read it as one more element.
            children += 1;
        }
        if children > 0 {
            remaining.push(children);
            continue;
        }
        // One value completed: close finished aggregates.
        loop {
            match remaining.last_mut() {
                None => return Ok(Some(pos)),
                Some(r) => {
                    *r -= 1;
                    if *r > 0 {
                        break;
                    }
                    remaining.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(frame_len(b"+OK\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"+OK\r"), Ok(None));
        assert_eq!(frame_len(b"$3\r\nabc\r\n+x"), Ok(Some(9)));
        assert_eq!(frame_len(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"*2\r\n$1\r\na\r\n:1\r\n"), Ok(Some(15)));
        assert_eq!(frame_len(b"*2\r\n$1\r\na\r\n"), Ok(None));
        assert_eq!(frame_len(b"*0\r\n"), Ok(Some(4)));
        assert_eq!(frame_len(b"*-1\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"*2\r\n*1\r\n:1\r\n*0\r\n:9"), Ok(Some(16)));
        assert_eq!(frame_len(b"%1\r\n+a\r\n:1\r\n"), Ok(Some(12)));
        assert_eq!(frame_len(b"?x\r\n"), Err(()));
        assert_eq!(frame_len(b""), Ok(None));
        assert_eq!(frame_len(b"\r\n"), Err(()));
        assert_eq!(frame_len(b"+\n"), Err(()));
        assert_eq!(frame_len(b"$x\r\n"), Err(()));
    }

    fn opts(max_pipeline: usize) -> Arc<BackendOptions> {
        Arc::new(BackendOptions {
            auth: String::new(),
            recv_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(5),
            max_pipeline,
            ping_period: Duration::ZERO,
            tcp_keepalive: Duration::ZERO,
            probe_period: Duration::ZERO,
            probe_timeout: Duration::ZERO,
        })
    }

    fn health(addr: &str, opts: &Arc<BackendOptions>) -> Arc<Health> {
        Health::new(addr.to_string(), opts.clone())
    }

    /// A fake backend answering `:<n>` to the n-th request (from 0).
    async fn counting_backend() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut buf, mut n) = (Vec::new(), 0u64);
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(k) = s.read(&mut chunk).await else {
                            return;
                        };
                        if k == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..k]);
                        let mut out = Vec::new();
                        while let Ok(Some(len)) = frame_len(&buf) {
                            buf.drain(..len);
                            out.extend_from_slice(format!(":{n}\r\n").as_bytes());
                            n += 1;
                        }
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Waits until `inbox` holds `n` items; returns (seq, reply) pairs.
    async fn collect(inbox: &Inbox, n: usize) -> Vec<(u64, Vec<u8>)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < n && Instant::now() < deadline {
            let (mut data, mut items) = (Vec::new(), Vec::new());
            if inbox.take(&mut data, &mut items, None) {
                for it in &items {
                    assert!(!it.reset, "unexpected reset");
                    got.push((it.seq, data[it.start..it.end].to_vec()));
                }
            } else {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        got
    }

    #[test]
    fn outgoing_merges_runs() {
        let a = Arc::new(Inbox::default());
        let b = Arc::new(Inbox::default());
        let mut o = Outgoing::default();
        o.push(b"x", &a, 5, None);
        o.push(b"yy", &a, 6, None);
        o.push(b"z", &b, 7, None);
        o.push(b"w", &a, 9, None);
        assert_eq!(o.buf, b"xyyzw");
        assert_eq!(o.reqs.len(), 4);
        let runs: Vec<u32> = o.batches.iter().map(|b| b.n).collect();
        assert_eq!(runs, [2, 1, 1]);
        let mut first = o.batches.remove(0);
        let front = first.take_front(1);
        assert!(matches!(front.to, ReplyTo::Session(_, 5)));
        assert!(matches!(first.to, ReplyTo::Session(_, 6)));
        assert_eq!((front.n, first.n), (1, 1));
        // Failing a batch resets each of its sequence numbers.
        o.batches.remove(0).fail();
        let (mut data, mut items) = (Vec::new(), Vec::new());
        assert!(b.take(&mut data, &mut items, None));
        assert_eq!(items.len(), 1);
        assert!(items[0].reset && items[0].seq == 7);
        assert!(!b.take(&mut data, &mut items, None) || items.is_empty());
    }

    #[tokio::test]
    async fn pipeline_limit_splits_runs_in_order() {
        let addr = counting_backend().await;
        // At most 3 requests in flight: runs of 5 must be split.
        let o = opts(3);
        let conn = BackendConn::spawn(
            addr.clone(),
            Chan::default(),
            o.clone(),
            false,
            health(&addr, &o),
        );
        let a = Arc::new(Inbox::default());
        let b = Arc::new(Inbox::default());
        let mut o = Outgoing::default();
        for seq in 0..5 {
            o.push(PING, &a, seq, None);
        }
        for seq in 100..103 {
            o.push(PING, &b, seq, None);
        }
        for seq in 5..10 {
            o.push(PING, &a, seq, None);
        }
        conn.submit(&mut o);
        assert!(o.is_empty());
        let ga = collect(&a, 10).await;
        let gb = collect(&b, 3).await;
        let seqs: Vec<u64> = ga.iter().map(|x| x.0).collect();
        assert_eq!(seqs, (0..10).collect::<Vec<u64>>());
        // Replies follow the wire order: a0..a4, b100..b102, a5..a9.
        assert_eq!(ga[4].1, b":4\r\n");
        assert_eq!(ga[5].1, b":8\r\n");
        assert_eq!(
            gb.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
            [b":5\r\n".to_vec(), b":6\r\n".to_vec(), b":7\r\n".to_vec()]
        );
        assert_eq!(conn.call(PING).await, Ok(b":13\r\n".to_vec()));
    }

    #[tokio::test]
    async fn refused_connection_resets_queued_requests() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let o = opts(16);
        let conn = BackendConn::spawn(
            addr.clone(),
            Chan::default(),
            o.clone(),
            false,
            health(&addr, &o),
        );
        let a = Arc::new(Inbox::default());
        let mut o = Outgoing::default();
        o.push(PING, &a, 0, None);
        o.push(PING, &a, 1, None);
        conn.submit(&mut o);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut resets = Vec::new();
        while resets.len() < 2 && Instant::now() < deadline {
            let (mut data, mut items) = (Vec::new(), Vec::new());
            if a.take(&mut data, &mut items, None) {
                resets.extend(items.iter().filter(|i| i.reset).map(|i| i.seq));
            } else {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        assert_eq!(resets, [0, 1]);
        assert_eq!(conn.call(PING).await, Err(BackendError::Reset));
    }
}
