//! Backend connections: one pipelined TCP connection task per (server, DB,
//! parallel index), shared by every session (codis.md §3.6).
//!
//! Sessions send [`Request`]s (raw RESP bytes plus a oneshot for the reply)
//! over a bounded mpsc. The writer half batches whatever is queued into one
//! write and hands the reply slots, in order, to the reader half, which
//! matches reply frames FIFO. On connect it sends `AUTH product_auth` and
//! `SELECT db` first. When the connection breaks, every unanswered request
//! is dropped, which its session reports as `backend conn reset`. The first
//! 10 consecutive connect failures retry at once (on the next request); after
//! that the delay doubles from 50 ms to 5 s and requests arriving meanwhile
//! fail at once, as in Codis. A backend that does not answer within
//! `backend_recv_timeout` while requests are outstanding is disconnected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::router::SlotGuard;

/// What a forwarded request resolves to: a raw reply frame, or a failure.
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
            BackendError::Reset => "backend conn reset",
        }
    }
}

/// One request for a backend connection.
pub struct Request {
    pub data: Vec<u8>,
    pub tx: oneshot::Sender<BackendResult>,
    /// Keeps the slot's in-flight count up until the reply arrives (or the
    /// request is dropped), so a slot switch can drain it.
    pub guard: Option<SlotGuard>,
}

struct Waiter {
    tx: oneshot::Sender<BackendResult>,
    _guard: Option<SlotGuard>,
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

/// Handle of one connection task.
#[derive(Clone)]
pub struct BackendConn {
    tx: mpsc::Sender<Request>,
    pub state: Arc<ConnState>,
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
    pub fn spawn(addr: String, db: usize, opts: Arc<BackendOptions>, eager: bool) -> BackendConn {
        let (tx, rx) = mpsc::channel(1024);
        let state = Arc::new(ConnState::default());
        tokio::spawn(conn_task(addr, db, opts, rx, state.clone(), eager));
        BackendConn { tx, state }
    }

    /// Queues a request; its reply (or failure) arrives on `req.tx`.
    pub async fn send(&self, req: Request) {
        self.state.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.send(req).await {
            let _ = e.0.tx.send(Err(BackendError::Reset));
        }
    }
}

async fn conn_task(
    addr: String,
    db: usize,
    opts: Arc<BackendOptions>,
    mut rx: mpsc::Receiver<Request>,
    state: Arc<ConnState>,
    eager: bool,
) {
    let mut fails: u32 = 0;
    let mut retry_at: Option<Instant> = None;
    let mut delay = Duration::from_millis(50);
    let mut carry: Option<Request> = None;
    // Eager connections try at once, then on their backoff timer.
    let mut background_try = eager;
    loop {
        let first = match carry.take() {
            Some(r) => Some(r),
            None if background_try => {
                let wake = tokio::time::Instant::from_std(retry_at.unwrap_or_else(Instant::now));
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => Some(r),
                        None => return,
                    },
                    _ = tokio::time::sleep_until(wake) => None,
                }
            }
            None => match rx.recv().await {
                Some(r) => Some(r),
                None => return,
            },
        };
        let backing_off = retry_at.is_some_and(|t| Instant::now() < t);
        if backing_off && let Some(f) = first {
            fail_queued(f, &mut rx);
            continue;
        }
        match connect(&addr, db, &opts).await {
            Ok(stream) => {
                if fails > 0 {
                    crate::log::info(&format!("backend {addr} db {db}: connected"));
                }
                fails = 0;
                retry_at = None;
                delay = Duration::from_millis(50);
                state.connected.store(true, Ordering::Relaxed);
                let (why, unsent) = run(stream, first, &mut rx, &opts, &state).await;
                carry = unsent;
                state.connected.store(false, Ordering::Relaxed);
                state.failures.fetch_add(1, Ordering::Relaxed);
                match why {
                    Some(why) => {
                        crate::log::warn(&format!("backend {addr} db {db}: connection lost: {why}"))
                    }
                    None => return,
                }
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
                if let Some(f) = first {
                    fail_queued(f, &mut rx);
                }
            }
        }
    }
}

/// Fails `first` and everything already queued behind it.
fn fail_queued(first: Request, rx: &mut mpsc::Receiver<Request>) {
    let _ = first.tx.send(Err(BackendError::Reset));
    while let Ok(r) = rx.try_recv() {
        let _ = r.tx.send(Err(BackendError::Reset));
    }
}

async fn connect(addr: &str, db: usize, opts: &BackendOptions) -> Result<TcpStream, String> {
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
    if !opts.auth.is_empty() {
        encode(&mut hello, &[b"AUTH", opts.auth.as_bytes()]);
        expect += 1;
    }
    if db != 0 {
        encode(&mut hello, &[b"SELECT", db.to_string().as_bytes()]);
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
                    if !buf.starts_with(b"+") {
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

/// Runs one established connection until it breaks (`Some(reason)`, plus a
/// request taken but not yet sent, to retry on the next connection) or every
/// sender is gone (`None`).
async fn run(
    stream: TcpStream,
    first: Option<Request>,
    rx: &mut mpsc::Receiver<Request>,
    opts: &BackendOptions,
    state: &Arc<ConnState>,
) -> (Option<String>, Option<Request>) {
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Waiter>();
    let outstanding = Arc::new(AtomicU64::new(0));
    let out2 = outstanding.clone();
    let recv_timeout = opts.recv_timeout;
    let rstate = state.clone();
    let mut reader = tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut start = 0usize;
        loop {
            // Deliver every complete frame.
            loop {
                match frame_len(&buf[start..]) {
                    Ok(Some(n)) => {
                        let Ok(w) = wrx.try_recv() else {
                            return "reply without a request".to_string();
                        };
                        out2.fetch_sub(1, Ordering::Relaxed);
                        let frame = &buf[start..start + n];
                        if frame.starts_with(b"-MASTERDOWN") || frame.starts_with(b"-LOADING") {
                            rstate.stale.store(true, Ordering::Relaxed);
                        }
                        let _ = w.tx.send(Ok(frame.to_vec()));
                        start += n;
                    }
                    Ok(None) => break,
                    Err(()) => return "bad reply from backend".to_string(),
                }
            }
            if start == buf.len() {
                buf.clear();
                start = 0;
            } else if start > 64 * 1024 {
                buf.drain(..start);
                start = 0;
            }
            if buf.capacity() - buf.len() < 8192 {
                buf.reserve(16 * 1024);
            }
            let busy = out2.load(Ordering::Relaxed) > 0;
            let r = if busy && !recv_timeout.is_zero() {
                match tokio::time::timeout(recv_timeout, rd.read_buf(&mut buf)).await {
                    Ok(r) => r,
                    Err(_) => return "recv timeout".to_string(),
                }
            } else {
                rd.read_buf(&mut buf).await
            };
            match r {
                Ok(0) => return "closed by backend".to_string(),
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
    });
    let mut wbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut next = first;
    let period = if opts.ping_period.is_zero() {
        Duration::from_secs(3600 * 24 * 365)
    } else {
        opts.ping_period.max(Duration::from_secs(1))
    };
    let mut idle_since = Instant::now();
    loop {
        let req = match next.take() {
            Some(r) => r,
            None => {
                let wake = tokio::time::Instant::from_std(idle_since + period);
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => r,
                        None => { reader.abort(); return (None, None); }
                    },
                    why = &mut reader => {
                        return (Some(why.unwrap_or_else(|e| e.to_string())), None);
                    }
                    _ = tokio::time::sleep_until(wake) => {
                        idle_since = Instant::now();
                        if outstanding.load(Ordering::Relaxed) > 0 {
                            continue;
                        }
                        if state.stale.load(Ordering::Relaxed) {
                            // Stale: ask INFO, clear the mark once healthy.
                            let (tx, rx) = oneshot::channel::<BackendResult>();
                            let st = state.clone();
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
                            Request { data: b"*1\r\n$4\r\nINFO\r\n".to_vec(), tx, guard: None }
                        } else {
                            // Keepalive PING; nobody waits for its reply.
                            let (tx, _) = oneshot::channel();
                            Request { data: b"*1\r\n$4\r\nPING\r\n".to_vec(), tx, guard: None }
                        }
                    }
                }
            }
        };
        idle_since = Instant::now();
        if reader.is_finished() {
            // The connection just died: send this one on the next connection.
            let why = (&mut reader).await.unwrap_or_else(|e| e.to_string());
            return (Some(why), Some(req));
        }
        // Batch everything already queued.
        wbuf.clear();
        let add = |r: Request, wbuf: &mut Vec<u8>| {
            wbuf.extend_from_slice(&r.data);
            outstanding.fetch_add(1, Ordering::Relaxed);
            let _ = wtx.send(Waiter {
                tx: r.tx,
                _guard: r.guard,
            });
        };
        add(req, &mut wbuf);
        while wbuf.len() < 256 * 1024
            && (outstanding.load(Ordering::Relaxed) as usize) < opts.max_pipeline.max(1)
        {
            match rx.try_recv() {
                Ok(r) => add(r, &mut wbuf),
                Err(_) => break,
            }
        }
        let w = wr.write_all(&wbuf);
        let res = if opts.send_timeout.is_zero() {
            w.await.map_err(|e| e.to_string())
        } else {
            match tokio::time::timeout(opts.send_timeout, w).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("send timeout".to_string()),
            }
        };
        if let Err(e) = res {
            reader.abort();
            return (Some(e), None);
        }
        // Back-pressure: do not let more than max_pipeline requests fly.
        while (outstanding.load(Ordering::Relaxed) as usize) >= opts.max_pipeline.max(1) {
            if reader.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Encodes a command as a RESP multibulk.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut b = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(b.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(b.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
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

    #[test]
    fn encodes() {
        let mut v = Vec::new();
        encode(&mut v, &[b"GET", b"k"]);
        assert_eq!(v, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}
