//! One client session (codis.md §3.2–§3.4), served by a single task that
//! reads requests, dispatches them and writes the replies.
//!
//! Requests are parsed from the read buffer and classified with the shared
//! command table; in-proxy commands are answered at once, the rest get a
//! per-session sequence number and are staged, bytes as read, for their
//! backend connection. After a read batch every staged connection gets its
//! requests in one [`BackendConn::submit`]. Backend connections put the
//! replies into the session's [`Inbox`]; the session swaps them out in one
//! lock and answers in request order from a FIFO of pending replies,
//! however backends interleave. A reply that is next in line is copied
//! straight from the inbox buffer into the output buffer; only replies that
//! arrive ahead of an earlier one (several backends) or belong to a split
//! are kept aside. All replies ready after one wake-up go out in one write.
//!
//! Requests forwarded whole keep their original bytes. The parts:
//! `policy.rs` (what the shared command table says the proxy does with a
//! command), `multikey.rs` (MGET/MSET/DEL/EXISTS/TOUCH/UNLINK split per key
//! and merged with Codis' aggregation and error texts; KEYS/FLUSH* fanned
//! out), `migrating.rs` (forwarding by slot, and Codis' sync or semi-async
//! forwarding for slots with `migrate_from`; that path, and waiting on a
//! blocked slot, keep delivering earlier replies while they wait,
//! [`Session::pumped`]), `queue.rs` (MULTI queuing; EXEC and WATCH run in
//! `transaction.rs`); blocking commands run in `blocking.rs`, subscribed
//! clients in `pubsub.rs`, and every reply text is in `errors.rs`.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use protocol::command::{self, ProxyPolicy, flags};
use protocol::resp::{Limits, RequestParser};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::backend::{BackendConn, Inbox, Item, Outgoing, encode};
use crate::local::{ClientOut, ReplyMode};
use crate::router::{Chan, RouteError, Router, SlotGuard};

use crate::errors::{
    BAD_LEN as ERR_BAD_LEN, EXECABORT as ERR_EXECABORT, LOCKED as ERR_LOCKED, NOAUTH as ERR_NOAUTH,
    NOT_READY as ERR_NOT_READY, OK, RESET as ERR_RESET,
};

/// No per-command stats slot (the request had no usable name).
const NO_CMD: usize = usize::MAX;

/// A result slot, by sequence number.
enum Res {
    Wait,
    Got(Vec<u8>),
    Reset,
}

/// A reply owed to the client, in request order.
struct Entry {
    what: What,
    /// Per-command stats index ([`NO_CMD`]: none).
    cmd: usize,
    /// When the request was read (start of its batch).
    t0: Instant,
    /// CLIENT REPLY OFF/SKIP: counted but not sent.
    quiet: bool,
}

enum What {
    /// Decided in the proxy.
    Ready(Vec<u8>),
    Static(&'static [u8]),
    /// Forwarded whole: the next sequence number.
    One,
    /// Split: the next `n` sequence numbers, merged.
    Split(SplitKind, usize),
    /// Sub-requests of a split that failed half-way: waited for, dropped.
    Drop(usize),
    /// INFO: the proxy's sections, then the keyspace summed from the next
    /// `n` sequence numbers.
    Info(Vec<u8>, usize),
}

/// Where a reply came from (for the error counters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Proxy,
    Backend,
}

/// Outcome of dispatching one (sub-)request.
enum Fwd {
    /// Staged for a backend (the next sequence number).
    Sent,
    /// A final reply decided without the new owner (exec-wrapper code 2).
    Reply(Vec<u8>),
    /// A request error (`ERR handle request, <text>`).
    Fail(String),
}

/// What woke the session.
enum Io {
    /// Replies in the inbox, bytes read, or the output drained.
    Progress,
    /// The client closed (or its socket failed) on the read side.
    Eof,
    /// Writing to the client failed: nothing more can be sent.
    Broken,
    /// The client's replies went over `session_reply_hard_limit` (the
    /// inbox detached it): closed at once, nothing more is written.
    Overflow,
    /// Proxy shutdown.
    Stop,
    Timer,
}

use crate::errors::line as err_line;

mod migrating;
mod multikey;
mod policy;
mod queue;

use migrating::*;
use multikey::*;
use policy::*;
use queue::*;

use crate::errors::arity as arity_err;

/// The client's read buffer: `buf[pos..len]` is unparsed. Kept initialized
/// (zeroed once when it grows) so reads need no `unsafe`.
struct ReadSide {
    buf: Vec<u8>,
    pos: usize,
    len: usize,
}

impl ReadSide {
    /// Makes room for the next read (at least 4 KiB).
    fn prepare(&mut self) {
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
            if self.buf.len() > 1 << 20 {
                // A huge request is done: give the memory back.
                self.buf.truncate(16 * 1024);
                self.buf.shrink_to_fit();
            }
        }
        if self.buf.len() - self.len < 4096 {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.len, 0);
                self.len -= self.pos;
                self.pos = 0;
            }
            if self.buf.len() - self.len < 4096 {
                let n = (self.buf.len() * 2).max(16 * 1024);
                self.buf.resize(n, 0);
            }
        }
    }
}

/// Serves one accepted client until it disconnects.
pub async fn serve(router: Arc<Router>, sock: TcpStream, id: u64) {
    let _ = sock.set_nodelay(true);
    crate::backend::set_tcp_keepalive(&sock, router.cfg.session_keepalive_period.0);
    let inbox = Arc::new(Inbox::with_limit(
        router.cfg.session_reply_hard_limit.0 as usize,
    ));
    let soft = router.cfg.session_reply_soft_limit.0 as usize;
    router.register_session(&inbox);
    let now = Instant::now();
    let addr =
        |a: std::io::Result<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let meta = crate::local::Meta {
        id,
        resp3: false,
        name: Vec::new(),
        lib_name: Vec::new(),
        lib_ver: Vec::new(),
        peer: addr(sock.peer_addr()),
        local: addr(sock.local_addr()),
        since: now,
        user: 0,
    };
    let mut s = Session {
        meta,
        reply_mode: ReplyMode::On,
        quiet: false,
        router: router.clone(),
        db: 0,
        authed: router.cfg.session_auth.is_empty(),
        seed: id,
        sock,
        inbox,
        fifo: VecDeque::new(),
        res: VecDeque::new(),
        res_base: 0,
        stage: Vec::new(),
        out: Vec::with_capacity(16 * 1024),
        out_off: 0,
        in_data: Vec::new(),
        in_items: Vec::new(),
        now,
        cur: NO_CMD,
        pure_read: false,
        write_blocked: None,
        broken: false,
        ops: 0,
        acc: None,
        redis_errors: 0,
        redis_oom: 0,
        tx: None,
        watch_slot: None,
        pin: Default::default(),
        handover: None,
        blocked: None,
        stash: 0,
        soft,
        // Until a reply is seen, assume it fills the soft limit: one
        // request in flight (the estimate then follows the real sizes), so
        // a burst of new clients asking for big values does not pull
        // several of them each through the backend connections at once.
        avg_reply: soft,
        sized: false,
        kq: 0,
        kq_exact: true,
        kq_stuck: None,
        kq_pause: KQ_POLL_MIN,
    };
    let recv_timeout = router.cfg.session_recv_timeout.0;
    let send_timeout = router.cfg.session_send_timeout.0;
    let max_pipeline = router.cfg.session_max_pipeline.max(1) as usize;
    let mut parser = RequestParser::new();
    let limits = Limits::default();
    let mut rd = ReadSide {
        buf: vec![0; 16 * 1024],
        pos: 0,
        len: 0,
    };
    let mut last_read = now;
    let mut closing = router.closed.load(Ordering::SeqCst);
    // One timer for both timeouts, pushed later lazily (it only fires at
    // the earliest possible deadline, then is re-armed).
    let far = Duration::from_secs(3600 * 24 * 365);
    let mut timer = (!recv_timeout.is_zero() || !send_timeout.is_zero() || soft != 0)
        .then(|| Box::pin(tokio::time::sleep(far)));
    loop {
        if s.blocked.is_some() {
            // A blocked client is not idle: its idle time starts when its
            // reply comes (Redis counts from the last interaction).
            last_read = s.now;
        }
        s.poll_blocked();
        // Dispatch every complete request read so far (until the replies
        // held for the client reach the soft limit: backpressure).
        let mut held_back = false;
        while !closing && s.blocked.is_none() && s.handover.is_none() {
            if s.over_soft() {
                held_back = true;
                break;
            }
            let p = match parser.parse(&rd.buf[rd.pos..rd.len], limits) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(_) => {
                    // Protocol error: close without a reply.
                    closing = true;
                    break;
                }
            };
            let base: &[u8] = if p.in_scratch {
                parser.scratch()
            } else {
                &rd.buf[rd.pos..rd.len]
            };
            let ranges = parser.ranges();
            let mut small: [&[u8]; 8] = [&[]; 8];
            let many: Vec<&[u8]>;
            let argv: &[&[u8]] = if ranges.len() <= small.len() {
                for (d, &(a, b)) in small.iter_mut().zip(ranges) {
                    *d = &base[a..b];
                }
                &small[..ranges.len()]
            } else {
                many = ranges.iter().map(|&(a, b)| &base[a..b]).collect();
                &many
            };
            if !argv.is_empty() {
                if s.fifo.len() > max_pipeline {
                    // Codis closes such a client; what is buffered for it
                    // is dropped, not flushed.
                    crate::log::warn(&format!(
                        "session {id}: too many pipelined requests (over {max_pipeline}), closed"
                    ));
                    return;
                }
                let raw = (!p.in_scratch && rd.buf.get(rd.pos) == Some(&b'*'))
                    .then(|| &rd.buf[rd.pos..rd.pos + p.consumed]);
                if !s.handle(argv, raw).await {
                    closing = true;
                }
            }
            rd.pos += p.consumed;
        }
        s.flush_stage();
        s.advance();
        s.poll_blocked();
        if s.blocked.is_some() {
            last_read = s.now;
        }
        s.flush_stats();
        if s.broken {
            return;
        }
        if s.handover.is_some() && s.fifo.is_empty() && s.out_off == s.out.len() && !closing {
            // Subscribed mode: the relay serves the client until its last
            // subscription is gone.
            let first = s.handover.take().unwrap_or_default();
            let mut pending = rd.buf[rd.pos..rd.len].to_vec();
            let ch = s.ch();
            let out = crate::pubsub::relay(&s.router, &mut s.sock, &mut pending, first, ch).await;
            s.now = Instant::now();
            last_read = s.now;
            parser = RequestParser::new();
            rd.pos = 0;
            rd.len = 0;
            if rd.buf.len() < pending.len() {
                rd.buf.resize(pending.len(), 0);
            }
            rd.buf[..pending.len()].copy_from_slice(&pending);
            rd.len = pending.len();
            match out {
                crate::pubsub::Outcome::Back => continue,
                crate::pubsub::Outcome::Closed => break,
            }
        }
        if closing && s.fifo.is_empty() && s.out_off == s.out.len() {
            break;
        }
        // Wait for replies, client bytes, writability, shutdown or a timer.
        // Over the soft limit the client is not read (its bytes wait in the
        // socket) until its replies go out; nor while requests it already
        // sent wait in the buffer (an EOF read now would drop them). A
        // blocked client is read on (its requests wait in the buffer, up
        // to 1 MiB, see below), so that it is seen to leave.
        let paused = !closing && s.blocked.is_none() && (held_back || s.over_soft());
        if !(paused && s.kernel_paused()) {
            s.kq_stuck = None;
        }
        if !closing && !paused {
            rd.prepare();
        }
        if let Some(t) = timer.as_mut() {
            let mut next = tokio::time::Instant::from_std(s.now + far);
            if !closing && !recv_timeout.is_zero() {
                next = next.min((last_read + recv_timeout).into());
            }
            if let Some(b) = s.stalled_since()
                && !send_timeout.is_zero()
            {
                next = next.min((b + send_timeout).into());
            }
            if next < t.deadline() {
                t.as_mut().reset(next);
            }
        }
        let mut got = 0usize;
        let ev = poll_fn(|cx| {
            // A blocked client's further requests wait in the buffer (up
            // to 1 MiB; reading on also sees it close).
            let full = s.blocked.is_some() && rd.len - rd.pos > 1 << 20;
            let want = (!closing && !full && !paused).then_some(&mut rd.buf[rd.len..]);
            let r = s.poll_io(cx, want, &mut got, paused);
            if r.is_pending()
                && let Some(t) = timer.as_mut()
            {
                if paused && s.kernel_paused() {
                    // Held back by what the kernel holds for the client
                    // (maybe only since the output above went there): its
                    // queue drains without a wake-up, so look again.
                    let at = tokio::time::Instant::from_std(s.now + s.kq_pause);
                    if at < t.deadline() {
                        t.as_mut().reset(at);
                    }
                }
                if t.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Io::Timer);
                }
            }
            if r.is_pending()
                && (closing || s.handover.is_some())
                && s.fifo.is_empty()
                && s.out_off == s.out.len()
            {
                return Poll::Ready(Io::Progress);
            }
            r
        })
        .await;
        s.now = Instant::now();
        // The client may have taken some of what its socket holds.
        s.kq_exact = false;
        if got > 0 {
            rd.len += got;
            last_read = s.now;
        }
        match ev {
            Io::Progress => {}
            Io::Eof | Io::Stop => {
                closing = true;
                s.cancel_blocked();
            }
            Io::Broken => return,
            Io::Overflow => {
                crate::log::warn(&format!(
                    "session {id}: replies over session_reply_hard_limit ({}), closed",
                    crate::config::size_text(s.router.cfg.session_reply_hard_limit.0)
                ));
                return;
            }
            Io::Timer => {
                if let Some(b) = s.stalled_since()
                    && !send_timeout.is_zero()
                    && s.now >= b + send_timeout
                {
                    return; // the client does not read: give up
                }
                if !closing
                    && s.blocked.is_none()
                    && !recv_timeout.is_zero()
                    && s.now >= last_read + recv_timeout
                {
                    closing = true; // idle timeout
                }
                if let Some(t) = timer.as_mut() {
                    t.as_mut()
                        .reset(tokio::time::Instant::from_std(s.now + far));
                }
            }
        }
        s.take_replies();
    }
    let _ = s.sock.shutdown().await;
}

struct Session {
    /// Id, protocol, name and library of the connection (HELLO, CLIENT).
    meta: crate::local::Meta,
    /// CLIENT REPLY: `Skip` silences the next command only.
    reply_mode: ReplyMode,
    /// The replies of the request being handled are not sent.
    quiet: bool,
    router: Arc<Router>,
    db: usize,
    authed: bool,
    seed: u64,
    sock: TcpStream,
    inbox: Arc<Inbox>,
    /// Replies owed to the client, in request order.
    fifo: VecDeque<Entry>,
    /// Backend results by sequence number: `res[seq - res_base]`.
    res: VecDeque<Res>,
    res_base: u64,
    /// Requests staged per backend connection, submitted after each batch.
    stage: Vec<(BackendConn, Outgoing)>,
    /// Replies to write: `out[out_off..]`.
    out: Vec<u8>,
    out_off: usize,
    /// The inbox's contents, swapped out (empty between wake-ups).
    in_data: Vec<u8>,
    in_items: Vec<Item>,
    /// Time of the current wake-up (request start, reply end).
    now: Instant,
    /// Stats index of the request being handled.
    cur: usize,
    /// Whether it is a pure read (may go to a replica).
    pure_read: bool,
    /// Since when a write to the client has been waiting for the socket.
    write_blocked: Option<Instant>,
    /// Writing to the client failed: the session ends.
    broken: bool,
    /// Counters batched per wake-up: requests, per-command
    /// (index, calls, µs, fails, backend errors), backend error replies.
    ops: u64,
    acc: Option<(usize, u64, u64, u64, u64)>,
    redis_errors: u64,
    /// Of those, `-OOM` replies.
    redis_oom: u64,
    /// Inside MULTI: the queued transaction (see `transaction.rs`).
    tx: Option<TxQueue>,
    /// The slot of the keys WATCHed since the last EXEC/DISCARD/UNWATCH.
    watch_slot: Option<usize>,
    /// The connection pinned by WATCH for the transaction.
    pin: crate::transaction::Shared,
    /// A subscribe request waiting for every earlier reply, then for the
    /// pub/sub relay (see `pubsub.rs`).
    handover: Option<Vec<Vec<u8>>>,
    /// A blocking command waiting for its turn or its reply: no further
    /// request is read until it is answered.
    blocked: Option<Blocked>,
    /// Bytes of the replies kept aside (`Res::Got`).
    stash: usize,
    /// `session_reply_soft_limit` (0: none).
    soft: usize,
    /// Running estimate of this client's reply size (rises fast, falls
    /// slowly), for the bytes its requests in flight will bring.
    avg_reply: usize,
    /// A reply has been seen (`avg_reply` is no longer the initial guess).
    sized: bool,
    /// Bytes written to the client's socket that it has not taken: the
    /// last reading of the kernel's send queue ([`unsent`]) plus what was
    /// written since (an upper bound), read again only when it decides
    /// backpressure (`kq_exact`: it is a fresh reading).
    kq: usize,
    kq_exact: bool,
    /// Since when the kernel's queue has kept the session paused without
    /// shrinking (a client that does not read: `session_send_timeout`).
    kq_stuck: Option<Instant>,
    /// How long to wait before looking at the kernel's queue again while
    /// it keeps the session paused (doubles up to [`KQ_POLL_MAX`]).
    kq_pause: Duration,
}

/// Polling of a client's kernel send queue while it holds the session
/// paused: from 1 ms (after progress) up to 100 ms.
const KQ_POLL_MIN: Duration = Duration::from_millis(1);
const KQ_POLL_MAX: Duration = Duration::from_millis(100);

/// Bytes in the socket's send queue that the client has not acknowledged
/// (Linux SIOCOUTQ): what the kernel holds for a client that does not read.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn unsent(sock: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (= SIOCOUTQ) stores one int through the pointer,
    // which is valid for the call; the descriptor is open while `sock` is
    // borrowed.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r == 0 { n.max(0) as usize } else { 0 }
}

#[cfg(not(target_os = "linux"))]
fn unsent(_: &TcpStream) -> usize {
    0
}

impl Drop for Session {
    fn drop(&mut self) {
        // Replies still in flight are dropped as they arrive.
        self.inbox.close();
    }
}

/// What runs exclusively for a session (nothing more is read meanwhile).
enum Job {
    Blocking(crate::blocking::Call),
    Tx(crate::transaction::Job),
}

/// A blocking command, WATCH or EXEC of this session (see `blocking.rs`,
/// `transaction.rs`).
struct Blocked {
    seq: u64,
    /// The job, until it is issued (once every earlier reply is in).
    call: Option<Job>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Blocked {
    fn drop(&mut self) {
        // A session that ends takes its blocked backend client with it.
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Session {
    /// Reply bytes held for the client: output not yet taken by its socket
    /// and replies kept aside.
    fn held(&self) -> usize {
        self.out.len() - self.out_off + self.stash
    }

    /// The replies held plus those expected for the requests in flight.
    fn owed(&self) -> usize {
        self.held() + self.res.len() * self.avg_reply
    }

    /// Backpressure: whether the replies owed, plus what the client's
    /// socket still holds unsent, reach `session_reply_soft_limit`. So a
    /// client that does not read gets nothing more requested for it once
    /// its socket is full: its replies wait in the kernel, not here.
    fn over_soft(&mut self) -> bool {
        if self.soft == 0 {
            return false;
        }
        let owed = self.owed();
        if owed >= self.soft {
            return true;
        }
        if owed + self.kq < self.soft {
            return false;
        }
        if !self.kq_exact {
            let now = unsent(&self.sock);
            if now < self.kq {
                // The client took some: look again soon.
                self.kq_stuck = None;
                self.kq_pause = KQ_POLL_MIN;
            } else {
                self.kq_stuck.get_or_insert(self.now);
                self.kq_pause = (self.kq_pause * 2).min(KQ_POLL_MAX);
            }
            self.kq = now;
            self.kq_exact = true;
        }
        owed + self.kq >= self.soft
    }

    /// Whether it is the kernel's queue that keeps the session paused
    /// (nothing wakes it when that drains: it is looked at again).
    fn kernel_paused(&self) -> bool {
        self.soft != 0 && self.owed() < self.soft && self.kq != 0
    }

    /// Since when the client has taken nothing: a write waiting for its
    /// socket, or a paused session whose socket's queue does not shrink.
    fn stalled_since(&self) -> Option<Instant> {
        match (self.write_blocked, self.kq_stuck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The client's socket took only part of the output: what it took is
    /// dropped from the buffer, and a buffer much bigger than the rest is
    /// replaced by a right-sized one, so a client that does not read costs
    /// its unsent bytes only (not what the kernel already holds, nor the
    /// slack of a buffer that grew while replies were assembled).
    fn compact_out(&mut self) {
        let rest = self.out.len() - self.out_off;
        if self.out.capacity() > 64 * 1024 && self.out.capacity() / 2 > rest {
            let mut b = Vec::with_capacity(rest.max(16 * 1024));
            b.extend_from_slice(&self.out[self.out_off..]);
            self.out = b;
            self.out_off = 0;
        } else if self.out_off >= 64 * 1024 {
            self.out.copy_within(self.out_off.., 0);
            self.out.truncate(rest);
            self.out_off = 0;
        }
    }

    /// Writes pending output, takes inbox replies and reads client bytes
    /// (into `read`, count in `got`). Ready when anything happened; with
    /// `paused`, also when the output drained below the soft limit.
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        read: Option<&mut [u8]>,
        got: &mut usize,
        paused: bool,
    ) -> Poll<Io> {
        while self.out_off < self.out.len() {
            match Pin::new(&mut self.sock).poll_write(cx, &self.out[self.out_off..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    // Nothing more can reach the client: drop all output.
                    self.broken = true;
                    self.out.clear();
                    self.out_off = 0;
                    return Poll::Ready(Io::Broken);
                }
                Poll::Ready(Ok(n)) => {
                    self.out_off += n;
                    self.kq += n;
                    self.kq_exact = false;
                    if self.out_off == self.out.len() {
                        self.out.clear();
                        self.out_off = 0;
                        self.write_blocked = None;
                        if self.out.capacity() > 1 << 20 {
                            self.out.shrink_to(64 * 1024);
                        }
                        break;
                    }
                }
                Poll::Pending => {
                    self.write_blocked.get_or_insert_with(Instant::now);
                    self.compact_out();
                    break;
                }
            }
        }
        self.inbox.set_held(self.held());
        if self.inbox.detached() {
            return Poll::Ready(Io::Overflow);
        }
        if paused && !self.over_soft() {
            return Poll::Ready(Io::Progress);
        }
        if self.in_items.is_empty()
            && self
                .inbox
                .take(&mut self.in_data, &mut self.in_items, Some(cx))
        {
            return Poll::Ready(Io::Progress);
        }
        if read.is_some() && self.inbox.stopped() {
            return Poll::Ready(Io::Stop);
        }
        if let Some(buf) = read {
            let mut rb = ReadBuf::new(buf);
            match Pin::new(&mut self.sock).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        return Poll::Ready(Io::Eof);
                    }
                    *got = n;
                    return Poll::Ready(Io::Progress);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Io::Eof),
                Poll::Pending => {}
            }
        }
        // A drained output alone is no reason to wake up.
        Poll::Pending
    }

    /// Runs `fut` (a slow path: waiting on a blocked slot, a migration
    /// round trip) while still answering earlier requests as their replies
    /// come in.
    async fn pumped<F: Future>(&mut self, fut: F) -> F::Output {
        self.flush_stage();
        let mut fut = std::pin::pin!(fut);
        loop {
            self.advance();
            self.flush_stats();
            let mut got = 0;
            let r = poll_fn(|cx| {
                if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Some(v));
                }
                match self.poll_io(cx, None, &mut got, false) {
                    Poll::Ready(_) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            self.now = Instant::now();
            match r {
                Some(v) => return v,
                None => self.take_replies(),
            }
        }
    }

    /// Issues the blocking command once every earlier request is answered;
    /// forgets it once its own reply is in.
    fn poll_blocked(&mut self) {
        let Some(b) = &mut self.blocked else {
            return;
        };
        let Some(i) = b.seq.checked_sub(self.res_base) else {
            self.blocked = None; // answered and sent
            return;
        };
        let i = i as usize;
        if !matches!(self.res.get(i), Some(Res::Wait)) {
            self.blocked = None;
            return;
        }
        if b.task.is_none()
            && self.res.iter().take(i).all(|r| !matches!(r, Res::Wait))
            && let Some(call) = b.call.take()
        {
            b.task = Some(match call {
                Job::Blocking(call) => tokio::spawn(crate::blocking::run(
                    self.router.clone(),
                    call,
                    self.inbox.clone(),
                    b.seq,
                )),
                Job::Tx(job) => tokio::spawn(crate::transaction::run(
                    self.router.clone(),
                    job,
                    self.inbox.clone(),
                    b.seq,
                )),
            });
        }
    }

    /// The client left while blocked: its backend client goes too, and the
    /// reply slot is failed so the session can end.
    fn cancel_blocked(&mut self) {
        if let Some(b) = self.blocked.take()
            && let Some(i) = b.seq.checked_sub(self.res_base)
            && let Some(r) = self.res.get_mut(i as usize)
            && matches!(r, Res::Wait)
        {
            *r = Res::Reset;
        }
    }

    /// A blocking command: queued for a dedicated backend connection (see
    /// `blocking.rs`); nothing more is read from the client until it is
    /// answered.
    fn blocking(&mut self, slot: usize, hkey: &[u8], more: &[&[u8]], argv: &[&[u8]]) -> bool {
        let mut up = argv[0].to_vec();
        up.make_ascii_uppercase();
        let Some((timeout_at, unit)) = crate::blocking::timeout_index(&up, argv) else {
            return self.fail(&crate::errors::not_allowed(&String::from_utf8_lossy(&up)));
        };
        let seq = self.res_base + self.res.len() as u64;
        self.res.push_back(Res::Wait);
        self.push(What::One);
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(1 + more.len());
        if !hkey.is_empty() {
            keys.push(hkey.to_vec());
        }
        keys.extend(more.iter().map(|k| k.to_vec()));
        self.blocked = Some(Blocked {
            seq,
            call: Some(Job::Blocking(crate::blocking::Call {
                argv: argv.iter().map(|a| a.to_vec()).collect(),
                keys,
                timeout_at,
                unit,
                slot,
                ch: self.ch(),
                seed: self.seed,
            })),
            task: None,
        });
        true
    }

    /// Processes the replies swapped out of the inbox.
    fn take_replies(&mut self) {
        if self.in_items.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.in_items);
        let data = std::mem::take(&mut self.in_data);
        for it in &items {
            if !it.reset {
                // The first reply replaces the initial guess; then the
                // estimate rises halfway to a bigger reply and falls 1/8
                // of the way to a smaller one.
                let len = it.end - it.start;
                self.avg_reply = if !self.sized {
                    self.sized = true;
                    len
                } else if len > self.avg_reply {
                    self.avg_reply + (len - self.avg_reply).div_ceil(2)
                } else {
                    self.avg_reply - ((self.avg_reply - len) >> 3)
                };
            }
            let Some(idx) = it.seq.checked_sub(self.res_base) else {
                continue;
            };
            let idx = idx as usize;
            let next_in_line = idx == 0
                && matches!(self.res.front(), Some(Res::Wait))
                && matches!(
                    self.fifo.front(),
                    Some(Entry {
                        what: What::One,
                        ..
                    })
                );
            if next_in_line {
                // The common case: straight from the inbox to the output.
                self.res.pop_front();
                self.res_base += 1;
                if let Some(e) = self.fifo.pop_front() {
                    if it.reset {
                        self.emit(e.cmd, e.t0, ERR_RESET, Origin::Proxy, e.quiet);
                    } else {
                        let frame = &data[it.start..it.end];
                        self.emit(e.cmd, e.t0, frame, Origin::Backend, e.quiet);
                    }
                }
                self.advance();
            } else if let Some(r) = self.res.get_mut(idx) {
                *r = if it.reset {
                    Res::Reset
                } else {
                    self.stash += it.end - it.start;
                    Res::Got(data[it.start..it.end].to_vec())
                };
            }
        }
        self.advance();
        // Hand the buffers back for reuse.
        let (mut items, mut data) = (items, data);
        items.clear();
        data.clear();
        if data.capacity() > 1 << 20 {
            data.shrink_to(64 * 1024);
        }
        self.in_items = items;
        self.in_data = data;
    }

    /// Writes every reply at the head of the FIFO that is complete.
    fn advance(&mut self) {
        while let Some(e) = self.fifo.front() {
            let need = match e.what {
                What::Ready(_) | What::Static(_) => 0,
                What::One => 1,
                What::Split(_, n) | What::Drop(n) | What::Info(_, n) => n,
            };
            // Complete when none is still waiting; the bytes kept aside
            // leave the stash with them.
            let mut kept = 0;
            for r in self.res.iter().take(need) {
                match r {
                    Res::Wait => return,
                    Res::Got(b) => kept += b.len(),
                    Res::Reset => {}
                }
            }
            let Some(e) = self.fifo.pop_front() else {
                return;
            };
            self.stash -= kept;
            let mut results = self.res.drain(..need.min(self.res.len()));
            self.res_base += need as u64;
            match e.what {
                What::Ready(b) => {
                    drop(results);
                    self.emit(e.cmd, e.t0, &b, Origin::Proxy, e.quiet);
                }
                What::Static(b) => {
                    drop(results);
                    self.emit(e.cmd, e.t0, b, Origin::Proxy, e.quiet);
                }
                What::One => match results.next() {
                    Some(Res::Got(b)) => {
                        drop(results);
                        self.emit(e.cmd, e.t0, &b, Origin::Backend, e.quiet);
                    }
                    _ => {
                        drop(results);
                        self.emit(e.cmd, e.t0, ERR_RESET, Origin::Proxy, e.quiet);
                    }
                },
                What::Split(kind, _) => {
                    let mut got = Vec::with_capacity(need);
                    let mut reset = false;
                    for r in results {
                        match r {
                            Res::Got(b) => got.push(b),
                            _ => reset = true,
                        }
                    }
                    let b = if reset {
                        crate::errors::RESET.to_vec()
                    } else {
                        match merge(kind, &got) {
                            Ok(b) => b,
                            Err(t) => err_line(&crate::errors::handle_response(&t)),
                        }
                    };
                    self.emit(e.cmd, e.t0, &b, Origin::Proxy, e.quiet);
                }
                What::Drop(_) => drop(results),
                What::Info(text, _) => {
                    let subs: Vec<Vec<u8>> = results
                        .filter_map(|r| match r {
                            Res::Got(b) => Some(b),
                            _ => None,
                        })
                        .collect();
                    let mut text = text;
                    crate::info::keyspace(&mut text, &subs);
                    let b = crate::info::reply(self.meta.resp3, &text);
                    self.emit(e.cmd, e.t0, &b, Origin::Proxy, e.quiet);
                }
            }
        }
    }

    /// Appends one reply to the output and counts it.
    fn emit(&mut self, cmd: usize, t0: Instant, bytes: &[u8], origin: Origin, quiet: bool) {
        if !self.broken && !quiet {
            self.out.extend_from_slice(bytes);
        }
        let is_err = bytes.first() == Some(&b'-');
        let backend_err = is_err && origin == Origin::Backend;
        if backend_err {
            self.redis_errors += 1;
            if bytes.starts_with(b"-OOM ") {
                self.redis_oom += 1;
            }
        }
        if cmd == NO_CMD {
            return;
        }
        let us = self.now.saturating_duration_since(t0).as_micros() as u64;
        let (fails, rerr) = match (is_err, backend_err) {
            (true, true) => (0, 1),
            (true, false) => (1, 0),
            _ => (0, 0),
        };
        match &mut self.acc {
            Some(a) if a.0 == cmd => {
                a.1 += 1;
                a.2 += us;
                a.3 += fails;
                a.4 += rerr;
            }
            _ => {
                self.flush_cmd();
                self.acc = Some((cmd, 1, us, fails, rerr));
            }
        }
    }

    fn flush_cmd(&mut self) {
        if let Some((i, calls, us, fails, rerr)) = self.acc.take()
            && let Some(c) = self.router.stats.cmds.get(i)
        {
            c.calls.fetch_add(calls, Ordering::Relaxed);
            c.usecs.fetch_add(us, Ordering::Relaxed);
            if fails > 0 {
                c.fails.fetch_add(fails, Ordering::Relaxed);
            }
            if rerr > 0 {
                c.redis_errtype.fetch_add(rerr, Ordering::Relaxed);
            }
        }
    }

    /// Publishes the batched counters (before every wait).
    fn flush_stats(&mut self) {
        let st = &self.router.stats;
        if self.ops > 0 {
            st.ops_total.fetch_add(self.ops, Ordering::Relaxed);
            self.ops = 0;
        }
        if self.redis_errors > 0 {
            st.redis_errors
                .fetch_add(self.redis_errors, Ordering::Relaxed);
            self.redis_errors = 0;
            if self.redis_oom > 0 {
                st.redis_oom.fetch_add(self.redis_oom, Ordering::Relaxed);
                self.redis_oom = 0;
            }
        }
        self.flush_cmd();
    }

    /// Submits every staged request (one lock and at most one wake-up per
    /// backend connection).
    fn flush_stage(&mut self) {
        for (c, o) in &mut self.stage {
            c.submit(o);
        }
        if self.stage.len() > 8 {
            self.stage.clear();
        }
    }

    /// Stages `data` for `conn`; returns its sequence number.
    fn stage(&mut self, conn: &BackendConn, data: &[u8], guard: Option<SlotGuard>) -> u64 {
        let seq = self.res_base + self.res.len() as u64;
        self.res.push_back(Res::Wait);
        let i = match self.stage.iter().position(|(c, _)| c.same(conn)) {
            Some(i) => i,
            None => {
                self.stage.push((conn.clone(), Outgoing::default()));
                self.stage.len() - 1
            }
        };
        if let Some((_, o)) = self.stage.get_mut(i) {
            o.push(data, &self.inbox, seq, guard);
        }
        seq
    }

    /// The backend connections this session's requests use.
    fn ch(&self) -> Chan {
        Chan {
            db: self.db,
            resp3: self.meta.resp3,
            user: self.meta.user,
        }
    }

    /// A result known at once, in sequence (a split's exec-wrapper reply).
    fn got(&mut self, b: Vec<u8>) -> u64 {
        let seq = self.res_base + self.res.len() as u64;
        self.stash += b.len();
        self.res.push_back(Res::Got(b));
        seq
    }

    fn push(&mut self, what: What) {
        self.fifo.push_back(Entry {
            what,
            cmd: self.cur,
            t0: self.now,
            quiet: self.quiet,
        });
    }

    fn reply(&mut self, bytes: Vec<u8>) {
        self.push(What::Ready(bytes));
    }

    fn reply_static(&mut self, bytes: &'static [u8]) {
        self.push(What::Static(bytes));
    }

    /// A request-side failure: counted, wrapped, and maybe closing.
    fn fail(&mut self, text: &str) -> bool {
        self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
        self.reply(err_line(&crate::errors::handle_request(text)));
        !self.router.cfg.session_break_on_failure
    }

    /// Handles one request; `false` closes the session (after queued replies).
    async fn handle(&mut self, argv: &[&[u8]], raw: Option<&[u8]>) -> bool {
        self.ops += 1;
        self.quiet = match self.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::Skip => {
                self.reply_mode = ReplyMode::On;
                true
            }
        };
        let name = argv[0];
        if name.is_empty() || name.len() > 64 {
            self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
            self.cur = NO_CMD;
            self.reply_static(ERR_BAD_LEN);
            return !self.router.cfg.session_break_on_failure;
        }
        let mut upbuf = [0u8; 64];
        let up = &mut upbuf[..name.len()];
        up.copy_from_slice(name);
        up.make_ascii_uppercase();
        let up: &[u8] = up;
        let letters_only = name.iter().all(|c| c.is_ascii_alphabetic() || *c == b':');
        let id = if letters_only {
            command::lookup(name)
        } else {
            None
        };
        self.cur = id.map(|i| i as usize).unwrap_or(command::count());
        let class = id
            .and_then(|i| classes().get(i as usize).copied())
            .unwrap_or(0);
        let upper = String::from_utf8_lossy(up);
        let not_allowed = if id.is_some() {
            class & C_NOT_ALLOWED != 0
        } else {
            letters_only && command::PROXY_NOT_ALLOWED.contains(&&*upper)
        };
        if up == b"RESET" {
            // Back to a new connection's state (Redis runs RESET even inside
            // MULTI and before AUTH).
            self.db = 0;
            self.meta.resp3 = false;
            self.meta.name.clear();
            self.meta.user = 0;
            self.tx = None;
            self.unpin();
            self.handover = None;
            self.reply_mode = ReplyMode::On;
            self.quiet = false;
            self.authed = self.router.cfg.session_auth.is_empty();
            self.reply_static(b"+RESET\r\n");
            return true;
        }
        if let Some(done) = self.transaction(up, id, argv) {
            return done;
        }
        if not_allowed {
            return self.fail(&format!("command '{upper}' is not allowed"));
        }
        self.pure_read = class & 2 != 0;
        match up {
            b"QUIT" => {
                self.reply_static(OK);
                return false;
            }
            b"HELLO" => {
                self.hello(argv).await;
                return true;
            }
            b"AUTH" if argv.len() == 3 && self.router.cfg.session_auth.is_empty() => {
                // AUTH <user> <pass> without session_auth: the servers'
                // users, passed through.
                match self.pass_through_auth(argv[1], argv[2]).await {
                    Ok(()) => self.reply_static(OK),
                    Err(e) => self.reply(e),
                }
                return true;
            }
            b"AUTH" if argv.len() == 3 => {
                // AUTH <user> <pass> with session_auth: the proxy's one user
                // is `default`.
                let sa = self.router.cfg.session_auth.as_bytes();
                if argv[1] == b"default" && argv[2] == sa {
                    self.authed = true;
                    self.reply_static(OK);
                } else {
                    self.reply(err_line(crate::errors::WRONGPASS));
                }
                return true;
            }
            b"AUTH" => {
                if argv.len() != 2 {
                    self.reply(arity_err("AUTH"));
                } else if self.router.cfg.session_auth.is_empty() {
                    self.reply(err_line(crate::errors::NO_PASSWORD));
                } else if argv[1] == self.router.cfg.session_auth.as_bytes() {
                    self.authed = true;
                    self.reply_static(OK);
                } else {
                    self.authed = false;
                    self.reply(err_line(crate::errors::INVALID_PASSWORD));
                }
                return true;
            }
            _ => {}
        }
        if !self.authed {
            self.reply_static(ERR_NOAUTH);
            return true;
        }
        match up {
            b"CLIENT" => {
                let db = self.db;
                match crate::local::client(&mut self.meta, db, argv) {
                    ClientOut::Reply(r) => self.reply(r),
                    ClientOut::Mode(mode, r) => {
                        self.reply_mode = mode;
                        self.quiet = mode != ReplyMode::On;
                        self.reply(r.unwrap_or_default());
                    }
                    ClientOut::NotAllowed(name) => {
                        return self.fail(&crate::errors::not_allowed(&name));
                    }
                }
                true
            }
            b"COMMAND" => {
                self.reply(crate::local::command(self.meta.resp3, argv, &served));
                true
            }
            b"ECHO" => {
                self.reply(crate::local::echo(self.meta.resp3, argv));
                true
            }
            b"CONFIG" => match crate::local::config(&self.router.cfg, self.meta.resp3, argv) {
                Ok(r) => {
                    self.reply(r);
                    true
                }
                Err(name) => self.fail(&crate::errors::not_allowed(&name)),
            },
            b"SELECT" => {
                if argv.len() != 2 {
                    self.reply(arity_err("SELECT"));
                } else {
                    let n = self.router.cfg.databases();
                    match std::str::from_utf8(argv[1])
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        None => self.reply(err_line(crate::errors::INVALID_DB)),
                        Some(v) if v < 0 || v >= n as i64 => {
                            self.reply(err_line(&crate::errors::invalid_db_range(n)))
                        }
                        Some(v) => {
                            self.db = v as usize;
                            self.reply_static(OK);
                        }
                    }
                }
                true
            }
            b"INFO" if argv.len() == 1 || !argv[1].contains(&b':') => self.info(argv),
            b"PING" | b"INFO" => {
                if argv.len() == 1 {
                    let slot = (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_nanos() as usize)
                        % crate::slots::MAX_SLOTS;
                    return match raw {
                        Some(r) => self.forward_single(slot, b"", argv, r).await,
                        None => self.forward_single(slot, b"", argv, &reencode(argv)).await,
                    };
                }
                let Some(b) = self.router.known_backend(argv[1]) else {
                    self.reply(err_line(&crate::errors::backend_not_found(argv[1])));
                    return true;
                };
                let mut args: Vec<&[u8]> = vec![argv[0]];
                args.extend_from_slice(&argv[2..]);
                self.direct(&b, &reencode(&args));
                true
            }
            b"SLOTSINFO" => {
                if argv.len() != 2 {
                    self.reply(arity_err("SLOTSINFO"));
                    return true;
                }
                let Some(b) = self.router.known_backend(argv[1]) else {
                    self.reply(err_line(&crate::errors::backend_not_found(argv[1])));
                    return true;
                };
                self.direct(&b, &reencode(&[b"SLOTSINFO"]));
                true
            }
            b"SLOTSSCAN" => {
                if argv.len() < 3 {
                    self.reply(arity_err("SLOTSSCAN"));
                    return true;
                }
                let s = String::from_utf8_lossy(argv[1]).into_owned();
                let slot = match parse_slot(&s) {
                    Ok(v) => v,
                    Err(e) => {
                        self.reply(err_line(&e));
                        return true;
                    }
                };
                let data = raw.map(<[u8]>::to_vec).unwrap_or_else(|| reencode(argv));
                // Codis skips migration handling here (scans the new owner).
                let router = self.router.clone();
                match self.pumped(router.route(slot)).await {
                    Ok(r) => {
                        let Some(conn) = r.backend.conn(self.ch(), self.seed) else {
                            return self.fail(ERR_NOT_READY);
                        };
                        self.stage(conn, &data, Some(r.guard));
                        self.push(What::One);
                        true
                    }
                    Err(e) => self.fail(route_err_text(&e)),
                }
            }
            b"SCAN" => self.scan(argv).await,
            b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE" => {
                if argv.len() < 2 {
                    self.reply(arity_err(&String::from_utf8_lossy(up).to_ascii_lowercase()));
                    return true;
                }
                // Handed to the pub/sub relay once every earlier request
                // is answered (see `pubsub.rs`).
                self.handover = Some(argv.iter().map(|a| a.to_vec()).collect());
                true
            }
            b"UNSUBSCRIBE" | b"PUNSUBSCRIBE" | b"SUNSUBSCRIBE" => {
                // Not subscribed: Redis' confirmations with count 0.
                let kind = String::from_utf8_lossy(up).to_ascii_lowercase();
                let mut out = Vec::new();
                let head: &[u8] = if self.meta.resp3 {
                    b">3\r\n"
                } else {
                    b"*3\r\n"
                };
                let chans: Vec<&[u8]> = if argv.len() > 1 {
                    argv[1..].to_vec()
                } else {
                    vec![]
                };
                let n = chans.len().max(1);
                for i in 0..n {
                    out.extend_from_slice(head);
                    out.extend_from_slice(format!("${}\r\n{kind}\r\n", kind.len()).as_bytes());
                    match chans.get(i) {
                        Some(c) => {
                            out.extend_from_slice(format!("${}\r\n", c.len()).as_bytes());
                            out.extend_from_slice(c);
                            out.extend_from_slice(b"\r\n");
                        }
                        None if self.meta.resp3 => out.extend_from_slice(b"_\r\n"),
                        None => out.extend_from_slice(b"$-1\r\n"),
                    }
                    out.extend_from_slice(b":0\r\n");
                }
                self.reply(out);
                true
            }
            b"PUBLISH" | b"SPUBLISH" | b"PUBSUB" => {
                // Where publishers and subscribers meet (see `pubsub.rs`).
                let sub = argv
                    .get(1)
                    .map(|a| a.to_ascii_uppercase())
                    .unwrap_or_default();
                let slot = match (up, sub.as_slice()) {
                    (b"SPUBLISH", _) | (b"PUBSUB", b"SHARDNUMSUB")
                        if argv.len() > 2 || up == b"SPUBLISH" =>
                    {
                        protocol::slot::slot_of(
                            argv.get(if up == b"SPUBLISH" { 1 } else { 2 })
                                .copied()
                                .unwrap_or(b""),
                        )
                    }
                    _ => crate::pubsub::PUBSUB_SLOT,
                };
                match raw {
                    Some(r) => self.forward_single(slot, b"", argv, r).await,
                    None => self.forward_single(slot, b"", argv, &reencode(argv)).await,
                }
            }
            b"RANDOMKEY" => {
                if argv.len() != 1 {
                    self.reply(arity_err("randomkey"));
                    return true;
                }
                self.randomkey().await
            }
            b"KEYS" => {
                if !self.router.cfg.proxy_allow_keys {
                    return self.fail(&crate::errors::not_allowed("KEYS"));
                }
                if argv.len() != 2 {
                    self.reply(arity_err("keys"));
                    return true;
                }
                if let Some(n) = self.fan_out(argv) {
                    self.push(What::Split(SplitKind::Keys, n));
                }
                true
            }
            b"SCRIPT" | b"FUNCTION" => {
                // Every server gets the script and function commands, so
                // EVALSHA and FCALL work whichever server owns the key
                // (issue 15).
                let sub = argv
                    .get(1)
                    .map(|a| a.to_ascii_uppercase())
                    .unwrap_or_default();
                let kind = match sub.as_slice() {
                    b"EXISTS" => SplitKind::And,
                    b"FLUSH" if up == b"SCRIPT" => SplitKind::AllOk("script"),
                    b"FLUSH" => SplitKind::AllOk("function"),
                    b"KILL" => SplitKind::AnyOk,
                    _ => SplitKind::Same,
                };
                if let Some(n) = self.fan_out(argv) {
                    self.push(What::Split(kind, n));
                }
                true
            }
            b"FLUSHDB" | b"FLUSHALL" => {
                if !self.router.cfg.proxy_allow_flush {
                    return self.fail(&crate::errors::not_allowed(&upper));
                }
                let name = if up == b"FLUSHDB" {
                    "flushdb"
                } else {
                    "flushall"
                };
                if let Some(n) = self.fan_out(argv) {
                    self.push(What::Split(SplitKind::AllOk(name), n));
                }
                true
            }
            b"SLOTSMAPPING" => {
                self.slotsmapping(argv);
                true
            }
            b"TIME" => {
                if argv.len() != 1 {
                    self.reply(arity_err("TIME"));
                    return true;
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let (secs, usecs) = (now.as_secs().to_string(), now.subsec_micros().to_string());
                self.reply(
                    format!(
                        "*2\r\n${}\r\n{secs}\r\n${}\r\n{usecs}\r\n",
                        secs.len(),
                        usecs.len()
                    )
                    .into_bytes(),
                );
                true
            }
            b"DBSIZE" => {
                if argv.len() != 1 {
                    self.reply(arity_err("DBSIZE"));
                    return true;
                }
                self.dbsize()
            }
            b"MGET" | b"MSET" | b"DEL" | b"EXISTS" | b"TOUCH" | b"UNLINK" => {
                self.split(&upper, argv, raw).await
            }
            _ => {
                let mut more: Vec<&[u8]> = Vec::new();
                let hkey: &[u8] = if class & C_KEYS != 0
                    && let Some(keys) = id.and_then(|i| command_keys(i.spec(), argv))
                    && let Some((&first, rest)) = keys.split_first()
                {
                    // Every key must hash to the first one's slot; keys of
                    // other tag groups must also be moved first while the
                    // slot migrates.
                    let slot = protocol::slot::slot_of(first);
                    let tag = protocol::slot::hash_tag(first);
                    for &k in rest {
                        if protocol::slot::slot_of(k) != slot {
                            self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
                            self.reply_static(crate::errors::CROSSSLOT);
                            return true;
                        }
                        let t = protocol::slot::hash_tag(k);
                        if t != tag && !more.iter().any(|m| protocol::slot::hash_tag(m) == t) {
                            more.push(k);
                        }
                    }
                    first
                } else {
                    match up {
                        b"ZINTERSTORE" | b"ZUNIONSTORE" | b"EVAL" | b"EVALSHA" | b"EVAL_RO"
                        | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
                            argv.get(3).copied().unwrap_or(b"")
                        }
                        _ => argv.get(1).copied().unwrap_or(b""),
                    }
                };
                let slot = protocol::slot::slot_of(hkey);
                let data = match raw {
                    Some(r) => std::borrow::Cow::Borrowed(r),
                    None => std::borrow::Cow::Owned(reencode(argv)),
                };
                // XREAD / XREADGROUP block only with BLOCK.
                if class & C_BLOCKING != 0
                    && (!matches!(up, b"XREAD" | b"XREADGROUP")
                        || crate::blocking::timeout_index(up, argv).is_some())
                {
                    return self.blocking(slot, hkey, &more, argv);
                }
                let f = self.forward(slot, hkey, &more, argv, &data).await;
                self.answer(f)
            }
        }
    }

    /// SCAN cursor [MATCH p] [COUNT n] [TYPE t] over every slot (see
    /// `scan.rs`): SLOTSSCAN calls, slot after slot, until COUNT keys are
    /// found or 64 calls were made.
    async fn scan(&mut self, argv: &[&[u8]]) -> bool {
        use crate::scan::{Cursor, parse, parse_reply, servers_tag};
        let o = match parse(argv) {
            Ok(o) => o,
            Err(e) => {
                self.reply(e);
                return true;
            }
        };
        let mut c = Cursor::decode(o.cursor);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let router = self.router.clone();
        let count = o.count.to_string();
        let mut calls = 0;
        while c.slot < crate::slots::MAX_SLOTS && (keys.len() as u64) < o.count && calls < 64 {
            let routed = match self.pumped(router.route(c.slot)).await {
                Ok(r) => r,
                Err(e) => return self.fail(route_err_text(&e)),
            };
            let tag = servers_tag(
                &routed.backend.addr,
                routed.migrate.as_ref().map(|m| m.addr.as_str()),
            );
            if c.backend != 0 && c.tag != tag {
                // The slot's servers changed mid-slot: scan it again.
                c.phase = 0;
                c.backend = 0;
            }
            c.tag = tag;
            let server = match (c.phase, &routed.migrate) {
                (0, Some(m)) => m.clone(),
                (0, None) => {
                    c.phase = 1;
                    continue;
                }
                _ => routed.backend.clone(),
            };
            drop(routed);
            let Some(conn) = server.conn(self.ch(), self.seed).cloned() else {
                return self.fail(crate::errors::CONN_RESET);
            };
            let req = reencode(&[
                b"SLOTSSCAN",
                c.slot.to_string().as_bytes(),
                c.backend.to_string().as_bytes(),
                b"COUNT",
                count.as_bytes(),
            ]);
            calls += 1;
            let r = match self.pumped(conn.call(&req)).await {
                Ok(r) => r,
                Err(e) => return self.fail(e.text()),
            };
            if r.first() == Some(&b'-') {
                self.reply(r);
                return true;
            }
            let Some((next, mut batch)) = parse_reply(&r) else {
                return self.fail(&format!("bad slotsscan resp: {}", show(&r)));
            };
            if let Some(p) = o.pattern {
                batch.retain(|k| protocol::glob::string_match(p, k, false));
            }
            if let Some(t) = o.kind
                && !batch.is_empty()
            {
                batch = match self.keep_type(&conn, batch, t).await {
                    Ok(b) => b,
                    Err(e) => return self.fail(&e),
                };
            }
            keys.extend(batch);
            if next == 0 {
                if c.phase == 0 {
                    c.phase = 1;
                } else {
                    c.slot += 1;
                    c.phase = 0;
                }
                c.backend = 0;
            } else {
                c.backend = next;
            }
        }
        let cursor = if c.slot >= crate::slots::MAX_SLOTS {
            0
        } else {
            match c.encode() {
                Some(v) => v,
                None => return self.fail("bad slotsscan resp: cursor too large"),
            }
        };
        self.reply(crate::scan::reply(cursor, &keys));
        true
    }

    /// The keys whose TYPE is `t` (one pipelined round trip).
    async fn keep_type(
        &mut self,
        conn: &BackendConn,
        keys: Vec<Vec<u8>>,
        t: &[u8],
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut rxs = Vec::with_capacity(keys.len());
        for k in &keys {
            let (tx, rx) = tokio::sync::oneshot::channel();
            conn.send_one(&reencode(&[b"TYPE", k]), crate::backend::ReplyTo::Call(tx));
            rxs.push(rx);
        }
        let mut out = Vec::new();
        for (k, rx) in keys.into_iter().zip(rxs) {
            match self.pumped(rx).await {
                Ok(Ok(r)) => {
                    if r.get(1..r.len().saturating_sub(2))
                        .is_some_and(|ty| ty.eq_ignore_ascii_case(t))
                    {
                        out.push(k);
                    }
                }
                _ => return Err(crate::errors::CONN_RESET.into()),
            }
        }
        Ok(out)
    }

    /// `AUTH user pass` checked by a server (the first of the slot table,
    /// from this session's seed); once accepted, this session's requests go
    /// on that user's own backend connections, so every server applies the
    /// user's ACL. Users must exist on every server, as in a Redis cluster.
    /// A refused AUTH leaves the session as it was (as Redis does).
    async fn pass_through_auth(&mut self, user: &[u8], pass: &[u8]) -> Result<(), Vec<u8>> {
        let servers = self.servers();
        if servers.is_empty() {
            return Err(err_line(crate::errors::NO_SERVER_FOR_AUTH));
        }
        let addr = servers[(self.seed % servers.len() as u64) as usize]
            .addr
            .clone();
        self.pumped(crate::backend::check_auth(&addr, user, pass))
            .await?;
        let lane = if user == b"default" && pass == self.router.cfg.product_auth.as_bytes() {
            // The proxy's own connections are that user already.
            0
        } else {
            crate::backend::user_lane(user, pass)
                .ok_or_else(|| err_line(crate::errors::TOO_MANY_USERS))?
        };
        self.meta.user = lane;
        Ok(())
    }

    /// HELLO [protover [AUTH username password] [SETNAME clientname]]
    async fn hello(&mut self, argv: &[&[u8]]) {
        use crate::errors as e;
        let mut ver = None;
        let mut i = 1;
        if let Some(a) = argv.get(1) {
            match std::str::from_utf8(a)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                None => return self.reply(err_line(e::HELLO_PROTO_NOT_INT)),
                Some(v) if !(2..=3).contains(&v) => return self.reply(err_line(e::NOPROTO)),
                Some(v) => ver = Some(v == 3),
            }
            i = 2;
        }
        let mut creds = None;
        let mut name = None;
        while let Some(&opt) = argv.get(i) {
            let more = argv.len() - 1 - i;
            if opt.eq_ignore_ascii_case(b"auth") && more >= 2 {
                creds = Some((argv[i + 1], argv[i + 2]));
                i += 3;
            } else if opt.eq_ignore_ascii_case(b"setname") && more >= 1 {
                if !crate::local::valid_name(argv[i + 1]) {
                    return self.reply(err_line(e::CLIENT_NAME_INVALID));
                }
                name = Some(argv[i + 1]);
                i += 2;
            } else {
                return self.reply(e::hello_syntax(opt));
            }
        }
        if let Some((user, pass)) = creds {
            let sa = self.router.cfg.session_auth.as_bytes();
            if sa.is_empty() {
                if let Err(r) = self.pass_through_auth(user, pass).await {
                    return self.reply(r);
                }
            } else if user != b"default" || pass != sa {
                return self.reply(err_line(e::WRONGPASS));
            }
            self.authed = true;
        }
        if !self.authed {
            return self.reply(err_line(e::HELLO_NOAUTH));
        }
        if let Some(n) = name {
            self.meta.name = n.to_vec();
        }
        if let Some(v) = ver {
            self.meta.resp3 = v;
        }
        self.reply(crate::local::hello(self.meta.resp3, self.meta.id));
    }

    /// Sends a request straight to a known server (PING/INFO/SLOTSINFO addr).
    fn direct(&mut self, b: &crate::router::BackendAddr, data: &[u8]) {
        match b.conn(self.ch(), self.seed) {
            Some(conn) => {
                self.stage(conn, data, None);
                self.push(What::One);
            }
            None => self.reply(err_line(&crate::errors::handle_request(
                crate::errors::CONN_RESET,
            ))),
        }
    }

    /// Every server that holds slots: each slot's owner and, while a slot
    /// migrates, its source (a key is on one of them; during a sync step a
    /// key can briefly be on both).
    fn servers(&self) -> Vec<Arc<crate::router::BackendAddr>> {
        let t = self.router.table.load();
        let mut v: Vec<Arc<crate::router::BackendAddr>> = Vec::new();
        for b in t
            .slots
            .iter()
            .flat_map(|r| r.backend.iter().chain(r.migrate.iter()))
        {
            if !v.iter().any(|x| x.addr == b.addr) {
                v.push(b.clone());
            }
        }
        v
    }

    /// Sends `args` to every server of [`Self::servers`]; the number of
    /// sub-requests, or `None` after answering with the failure.
    fn fan_out(&mut self, args: &[&[u8]]) -> Option<usize> {
        let servers = self.servers();
        if servers.is_empty() {
            self.fail(ERR_NOT_READY);
            return None;
        }
        let data = reencode(args);
        let mut n = 0usize;
        for b in &servers {
            let Some(conn) = b.conn(self.ch(), self.seed) else {
                if n > 0 {
                    self.push(What::Drop(n));
                }
                self.fail(crate::errors::CONN_RESET);
                return None;
            };
            self.stage(conn, &data, None);
            n += 1;
        }
        Some(n)
    }

    /// DBSIZE summed over every server that holds slots.
    fn dbsize(&mut self) -> bool {
        if let Some(n) = self.fan_out(&[b"DBSIZE"]) {
            self.push(What::Split(SplitKind::Sum("dbsize"), n));
        }
        true
    }

    /// RANDOMKEY: from servers in a pseudo-random order until one has a key.
    async fn randomkey(&mut self) -> bool {
        let mut servers = self.servers();
        if servers.is_empty() {
            return self.fail(ERR_NOT_READY);
        }
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos() as usize
            % servers.len();
        servers.rotate_left(start);
        let req = reencode(&[b"RANDOMKEY"]);
        let mut last = None;
        for b in servers {
            let Some(conn) = b.conn(self.ch(), self.seed).cloned() else {
                return self.fail(crate::errors::CONN_RESET);
            };
            match self.pumped(conn.call(&req)).await {
                Ok(r) if r.starts_with(b"$-1") || r.starts_with(b"_") => last = Some(r),
                Ok(r) => {
                    self.reply(r);
                    return true;
                }
                Err(e) => return self.fail(e.text()),
            }
        }
        self.reply(last.unwrap_or_else(|| b"$-1\r\n".to_vec()));
        true
    }

    /// INFO [section ...]: the proxy's own server, clients, stats,
    /// commandstats and keyspace (summed over the servers) sections.
    fn info(&mut self, argv: &[&[u8]]) -> bool {
        let want = crate::info::Sections::parse(&argv[1..]);
        let text = crate::info::render(&self.router, &want);
        if want.keyspace {
            if let Some(n) = self.fan_out(&[b"INFO", b"keyspace"]) {
                self.push(What::Info(text.into_bytes(), n));
            }
            return true;
        }
        self.reply(crate::info::reply(self.meta.resp3, text.as_bytes()));
        true
    }

    fn slotsmapping(&mut self, argv: &[&[u8]]) {
        let t = self.router.table.load();
        let entry = |out: &mut Vec<u8>, r: &crate::router::Route| {
            let m = &r.model;
            out.extend_from_slice(b"*4\r\n");
            for s in [
                m.id.to_string().as_str(),
                m.backend_addr.as_str(),
                m.migrate_from.as_str(),
            ] {
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(format!("*{}\r\n", m.replica_groups.len()).as_bytes());
            for g in &m.replica_groups {
                out.extend_from_slice(format!("*{}\r\n", g.len()).as_bytes());
                for a in g {
                    out.push(b'+');
                    out.extend_from_slice(a.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        };
        let mut out = Vec::new();
        match argv.len() {
            1 => {
                out.extend_from_slice(format!("*{}\r\n", t.slots.len()).as_bytes());
                for r in &t.slots {
                    entry(&mut out, r);
                }
            }
            2 => match parse_slot(&String::from_utf8_lossy(argv[1])) {
                Ok(i) => entry(&mut out, &t.slots[i]),
                Err(e) => out = err_line(&e),
            },
            _ => out = arity_err("SLOTSMAPPING"),
        }
        self.reply(out);
    }
}

fn route_err_text(e: &RouteError) -> &'static str {
    match e {
        RouteError::NotReady => ERR_NOT_READY,
        RouteError::LockedTimeout => ERR_LOCKED,
    }
}

/// Parses a slot number as Codis does (`ERR parse slotnum ...`).
fn parse_slot(s: &str) -> Result<usize, String> {
    match s.parse::<i64>() {
        Ok(v) if (0..crate::slots::MAX_SLOTS as i64).contains(&v) => Ok(v as usize),
        Ok(_) => Err(crate::errors::slotnum_out_of_range(s)),
        Err(_) => Err(crate::errors::slotnum_invalid(s)),
    }
}

fn reencode(argv: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    encode(&mut v, argv);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges() {
        let m = merge(
            SplitKind::Mget,
            &[b"*1\r\n$1\r\na\r\n".to_vec(), b"*1\r\n$-1\r\n".to_vec()],
        )
        .unwrap();
        assert_eq!(m, b"*2\r\n$1\r\na\r\n$-1\r\n");
        assert_eq!(
            merge(SplitKind::Mget, &[b"-ERR x\r\n".to_vec()]).unwrap_err(),
            "bad mget resp: <error> array.len = 0"
        );
        assert_eq!(
            merge(
                SplitKind::Del,
                &[b":1\r\n".to_vec(), b":0\r\n".to_vec(), b":1\r\n".to_vec()]
            )
            .unwrap(),
            b":2\r\n"
        );
        assert_eq!(
            merge(SplitKind::Exists, &[b":2\r\n".to_vec(), b":0\r\n".to_vec()]).unwrap(),
            b":1\r\n"
        );
        assert_eq!(
            merge(
                SplitKind::Sum("touch"),
                &[b":1\r\n".to_vec(), b":1\r\n".to_vec()]
            )
            .unwrap(),
            b":2\r\n"
        );
        assert_eq!(
            merge(SplitKind::Sum("unlink"), &[b"-ERR x\r\n".to_vec()]).unwrap_err(),
            "bad unlink resp: <error> value.len = 5"
        );
        assert_eq!(
            merge(SplitKind::Mset, &[b"+OK\r\n".to_vec(), b"+OK\r\n".to_vec()]).unwrap(),
            b"+OK\r\n"
        );
        assert!(merge(SplitKind::Mset, &[b"-ERR\r\n".to_vec()]).is_err());
    }

    #[test]
    fn refusals_come_from_the_table() {
        for c in command::COMMANDS {
            let upper = c.name.to_ascii_uppercase();
            let listed = command::PROXY_NOT_ALLOWED.contains(&upper.as_str());
            assert_eq!(listed, c.proxy == ProxyPolicy::NotAllow, "{upper}");
        }
        for n in ["MONITOR", "HOST:", "POST", "BGSAVE", "REPLICAOF"] {
            assert!(command::PROXY_NOT_ALLOWED.contains(&n), "{n}");
        }
        assert!(!command::PROXY_NOT_ALLOWED.contains(&"MULTI"));
        let spec = |n: &[u8]| command::intro::find(n).unwrap();
        assert!(served(spec(b"client|setname")) && !served(spec(b"client|kill")));
        assert!(served(spec(b"config|get")) && !served(spec(b"config|set")));
        assert!(served(spec(b"get")) && served(spec(b"multi")) && !served(spec(b"monitor")));
    }

    #[test]
    fn slots_and_wrapper() {
        assert_eq!(parse_slot("5"), Ok(5));
        assert_eq!(
            parse_slot("1024").unwrap_err(),
            "ERR parse slotnum '1024' failed, out of range"
        );
        assert!(
            parse_slot("x")
                .unwrap_err()
                .starts_with("ERR parse slotnum 'x' failed, ")
        );
        assert_eq!(
            parse_wrapper(b"*2\r\n:2\r\n+OK\r\n"),
            Some((2, &b"+OK\r\n"[..]))
        );
        assert_eq!(parse_wrapper(b"*2\r\n:0\r\n$-1\r\n").map(|x| x.0), Some(0));
        assert_eq!(parse_wrapper(b"-ERR\r\n"), None);
    }
}
