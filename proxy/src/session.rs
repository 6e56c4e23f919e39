//! One client session (codis.md §3.2–§3.4): a reader that parses requests,
//! classifies them with the shared command table, answers the in-proxy
//! commands and dispatches the rest by slot; and a writer that answers in
//! request order from a FIFO of pending replies, however backends interleave.
//!
//! Requests forwarded whole keep their original bytes. MGET/MSET/DEL/EXISTS
//! are split per key and merged with Codis' aggregation and error texts.
//! Slots with `migrate_from` use Codis' sync (SLOTSMGRTTAGONE first) or
//! semi-async (SLOTSMGRT-EXEC-WRAPPER with its retry ladder) forwarding.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use protocol::command::{self, ProxyPolicy, flags};
use protocol::resp::{Limits, RequestParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{BackendResult, Request, encode};
use crate::router::{RouteError, Router};

/// Codis' effective NotAllow list (codis.md §3.3), plus Redis 7 commands
/// that would change the state of a shared backend connection.
const NOT_ALLOWED: &[&str] = &[
    "ASKING",
    "BGREWRITEAOF",
    "BGSAVE",
    "BITOP",
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "CLIENT",
    "CLUSTER",
    "CONFIG",
    "DBSIZE",
    "DEBUG",
    "DISCARD",
    "EXEC",
    "FLUSHALL",
    "FLUSHDB",
    "HOST:",
    "KEYS",
    "LASTSAVE",
    "LATENCY",
    "MIGRATE",
    "MONITOR",
    "MOVE",
    "MSETNX",
    "MULTI",
    "OBJECT",
    "POST",
    "PSUBSCRIBE",
    "PSYNC",
    "PUBLISH",
    "PUNSUBSCRIBE",
    "RANDOMKEY",
    "READONLY",
    "READWRITE",
    "RENAME",
    "RENAMENX",
    "REPLCONF",
    "RESTORE",
    "SAVE",
    "SCAN",
    "SCRIPT",
    "SHUTDOWN",
    "SLAVEOF",
    "SLOTSCHECK",
    "SLOTSDEL",
    "SLOTSMGRTONE",
    "SLOTSMGRTSLOT",
    "SLOTSMGRTTAGONE",
    "SLOTSMGRTTAGSLOT",
    "SLOWLOG",
    "SUBSCRIBE",
    "SYNC",
    "TIME",
    "UNSUBSCRIBE",
    "UNWATCH",
    "WAIT",
    "WATCH",
    // Redis 7 additions (connection state on a shared backend connection).
    "HELLO",
    "RESET",
    "REPLICAOF",
    "SSUBSCRIBE",
    "SUNSUBSCRIBE",
    "SPUBLISH",
    "FAILOVER",
];

const ERR_BAD_LEN: &[u8] = b"-ERR handle request, bad command length, too short or too long\r\n";
const ERR_NOT_READY: &str = "slot is not ready, may be offline";
const ERR_LOCKED: &str = "slot is locked, timed out waiting for it to be unlocked";
const ERR_NOAUTH: &[u8] = b"-NOAUTH Authentication required\r\n";

/// Command index (per-command stats) and start time of a request.
type Stamp = Option<(usize, std::time::Instant)>;

/// A reply slot in the session's FIFO.
enum Pending {
    Ready(Vec<u8>),
    Wait(oneshot::Receiver<BackendResult>),
    Split(SplitKind, Vec<Sub>),
}

enum Sub {
    Ready(Vec<u8>),
    Wait(oneshot::Receiver<BackendResult>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SplitKind {
    Mget,
    Mset,
    Del,
    Exists,
    /// TOUCH and UNLINK (split as the issue asks; Codis sends them whole).
    Sum(&'static str),
}

/// Outcome of dispatching one (sub-)request.
enum Fwd {
    Wait(oneshot::Receiver<BackendResult>),
    /// A final reply decided without the new owner (exec-wrapper code 2).
    Reply(Vec<u8>),
    /// A request error (`ERR handle request, <text>`).
    Fail(String),
}

fn err_line(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 3);
    v.push(b'-');
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

fn arity_err(name: &str) -> Vec<u8> {
    err_line(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Serves one accepted client until it disconnects.
pub async fn serve(router: Arc<Router>, sock: TcpStream, id: u64) {
    let _ = sock.set_nodelay(true);
    crate::backend::set_tcp_keepalive(&sock, router.cfg.session_keepalive_period.0);
    let (mut rd, wr) = sock.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<(Pending, Stamp)>();
    let outstanding = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_loop(wr, rx, outstanding.clone(), router.clone()));
    let mut s = Session {
        router: router.clone(),
        db: 0,
        authed: router.cfg.session_auth.is_empty(),
        seed: id,
        tx,
        cur: None,
        pure_read: false,
        outstanding,
    };
    let recv_timeout = router.cfg.session_recv_timeout.0;
    let max_pipeline = router.cfg.session_max_pipeline.max(1) as usize;
    let mut stop = router.stop.subscribe();
    let mut parser = RequestParser::new();
    let limits = Limits::default();
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut pos = 0usize;
    'outer: loop {
        loop {
            match parser.parse(&buf[pos..], limits) {
                Ok(Some(p)) => {
                    let base: &[u8] = if p.in_scratch {
                        parser.scratch()
                    } else {
                        &buf[pos..]
                    };
                    let argv: Vec<&[u8]> =
                        parser.ranges().iter().map(|&(a, b)| &base[a..b]).collect();
                    if !argv.is_empty() {
                        if s.outstanding.load(Ordering::Relaxed) > max_pipeline {
                            crate::log::warn(&format!(
                                "session {id}: too many pipelined requests, closing"
                            ));
                            break 'outer;
                        }
                        let raw = (!p.in_scratch && buf.get(pos) == Some(&b'*'))
                            .then(|| &buf[pos..pos + p.consumed]);
                        if !s.handle(&argv, raw).await {
                            break 'outer;
                        }
                    }
                    pos += p.consumed;
                }
                Ok(None) => break,
                Err(_) => break 'outer, // protocol error: close without a reply
            }
        }
        if pos == buf.len() {
            buf.clear();
            pos = 0;
        } else if pos > 0 {
            buf.drain(..pos);
            pos = 0;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let read = async {
            if recv_timeout.is_zero() {
                Some(rd.read_buf(&mut buf).await)
            } else {
                tokio::time::timeout(recv_timeout, rd.read_buf(&mut buf))
                    .await
                    .ok()
            }
        };
        let r = tokio::select! {
            r = read => match r {
                Some(r) => r,
                None => break, // idle timeout
            },
            _ = stop.wait_for(|v| *v) => break, // shutdown
        };
        match r {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(s);
    let _ = writer.await;
}

struct Session {
    router: Arc<Router>,
    db: usize,
    authed: bool,
    seed: u64,
    tx: mpsc::UnboundedSender<(Pending, Stamp)>,
    /// The request being handled: command index and start time.
    cur: Stamp,
    /// Whether it is a pure read (may go to a replica).
    pure_read: bool,
    outstanding: Arc<AtomicUsize>,
}

impl Session {
    fn push(&self, p: Pending) {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send((p, self.cur));
    }

    fn reply(&self, bytes: Vec<u8>) {
        self.push(Pending::Ready(bytes));
    }

    /// A request-side failure: counted, wrapped, and maybe closing.
    fn fail(&self, text: &str) -> bool {
        self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
        self.reply(err_line(&format!("ERR handle request, {text}")));
        !self.router.cfg.session_break_on_failure
    }

    /// Handles one request; `false` closes the session (after queued replies).
    async fn handle(&mut self, argv: &[&[u8]], raw: Option<&[u8]>) -> bool {
        self.router.stats.ops_total.fetch_add(1, Ordering::Relaxed);
        let name = argv[0];
        if name.is_empty() || name.len() > 64 {
            self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
            self.reply(ERR_BAD_LEN.to_vec());
            return !self.router.cfg.session_break_on_failure;
        }
        let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
        let letters_only = name.iter().all(|c| c.is_ascii_alphabetic() || *c == b':');
        let id = if letters_only {
            command::lookup(name)
        } else {
            None
        };
        let spec = id.map(|id| id.spec());
        self.cur = Some((
            id.map(|i| i as usize).unwrap_or(command::count()),
            std::time::Instant::now(),
        ));
        let not_allowed = letters_only
            && (NOT_ALLOWED.contains(&upper.as_str())
                || spec
                    .is_some_and(|s| s.proxy == ProxyPolicy::NotAllow || s.has(flags::BLOCKING)));
        if not_allowed {
            return self.fail(&format!("command '{upper}' is not allowed"));
        }
        self.pure_read = spec.is_some_and(|s| {
            s.has(flags::READONLY)
                && (s.proxy == ProxyPolicy::Read || matches!(upper.as_str(), "MGET" | "EXISTS"))
                && upper != "TOUCH"
        });
        match upper.as_str() {
            "QUIT" => {
                self.reply(b"+OK\r\n".to_vec());
                return false;
            }
            "AUTH" => {
                if argv.len() != 2 {
                    self.reply(arity_err("AUTH"));
                } else if self.router.cfg.session_auth.is_empty() {
                    self.reply(err_line("ERR Client sent AUTH, but no password is set"));
                } else if argv[1] == self.router.cfg.session_auth.as_bytes() {
                    self.authed = true;
                    self.reply(b"+OK\r\n".to_vec());
                } else {
                    self.authed = false;
                    self.reply(err_line("ERR invalid password"));
                }
                return true;
            }
            _ => {}
        }
        if !self.authed {
            self.reply(ERR_NOAUTH.to_vec());
            return true;
        }
        match upper.as_str() {
            "SELECT" => {
                if argv.len() != 2 {
                    self.reply(arity_err("SELECT"));
                } else {
                    let n = self.router.cfg.databases();
                    match std::str::from_utf8(argv[1])
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        None => self.reply(err_line("ERR invalid DB index")),
                        Some(v) if v < 0 || v >= n as i64 => self.reply(err_line(&format!(
                            "ERR invalid DB index, only accept DB [0,{n})"
                        ))),
                        Some(v) => {
                            self.db = v as usize;
                            self.reply(b"+OK\r\n".to_vec());
                        }
                    }
                }
                true
            }
            "PING" | "INFO" => {
                if argv.len() == 1 {
                    let slot = (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_nanos() as usize)
                        % crate::slots::MAX_SLOTS;
                    let data = raw.map(<[u8]>::to_vec).unwrap_or_else(|| reencode(argv));
                    return self.forward_single(slot, b"", argv, data).await;
                }
                let Some(b) = self.router.known_backend(argv[1]) else {
                    self.reply(err_line(&format!(
                        "ERR backend server '{}' not found",
                        String::from_utf8_lossy(argv[1])
                    )));
                    return true;
                };
                let mut args: Vec<&[u8]> = vec![argv[0]];
                args.extend_from_slice(&argv[2..]);
                self.direct(&b, reencode(&args)).await;
                true
            }
            "SLOTSINFO" => {
                if argv.len() != 2 {
                    self.reply(arity_err("SLOTSINFO"));
                    return true;
                }
                let Some(b) = self.router.known_backend(argv[1]) else {
                    self.reply(err_line(&format!(
                        "ERR backend server '{}' not found",
                        String::from_utf8_lossy(argv[1])
                    )));
                    return true;
                };
                self.direct(&b, reencode(&[b"SLOTSINFO"])).await;
                true
            }
            "SLOTSSCAN" => {
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
                match self.router.route(slot).await {
                    Ok(r) => {
                        let Some(conn) = r.backend.conn(self.db, self.seed) else {
                            return self.fail(ERR_NOT_READY);
                        };
                        let (tx, rx) = oneshot::channel();
                        conn.send(Request {
                            data,
                            tx,
                            guard: Some(r.guard),
                        })
                        .await;
                        self.push(Pending::Wait(rx));
                        true
                    }
                    Err(e) => self.fail(route_err_text(&e)),
                }
            }
            "SLOTSMAPPING" => {
                self.slotsmapping(argv);
                true
            }
            "MGET" | "MSET" | "DEL" | "EXISTS" | "TOUCH" | "UNLINK" => {
                self.split(&upper, argv, raw).await
            }
            _ => {
                let hkey: &[u8] = match upper.as_str() {
                    "ZINTERSTORE" | "ZUNIONSTORE" | "EVAL" | "EVALSHA" => {
                        argv.get(3).copied().unwrap_or(b"")
                    }
                    _ => argv.get(1).copied().unwrap_or(b""),
                };
                let slot = protocol::slot::slot_of(hkey);
                let data = raw.map(<[u8]>::to_vec).unwrap_or_else(|| reencode(argv));
                self.forward_single(slot, hkey, argv, data).await
            }
        }
    }

    /// Sends a request straight to a known server (PING/INFO/SLOTSINFO addr).
    async fn direct(&self, b: &crate::router::BackendAddr, data: Vec<u8>) {
        match b.conn(self.db, self.seed) {
            Some(conn) => {
                let (tx, rx) = oneshot::channel();
                conn.send(Request {
                    data,
                    tx,
                    guard: None,
                })
                .await;
                self.push(Pending::Wait(rx));
            }
            None => self.reply(err_line("ERR handle request, backend conn reset")),
        }
    }

    async fn forward_single(
        &mut self,
        slot: usize,
        hkey: &[u8],
        argv: &[&[u8]],
        data: Vec<u8>,
    ) -> bool {
        match self.forward(slot, hkey, argv, data).await {
            Fwd::Wait(rx) => {
                self.push(Pending::Wait(rx));
                true
            }
            Fwd::Reply(r) => {
                self.reply(r);
                true
            }
            Fwd::Fail(t) => self.fail(&t),
        }
    }

    /// Routes one (sub-)request by slot, with migration-aware forwarding.
    async fn forward(&mut self, slot: usize, hkey: &[u8], argv: &[&[u8]], data: Vec<u8>) -> Fwd {
        let mut tries: u64 = 0;
        loop {
            let routed = match self.router.route(slot).await {
                Ok(r) => r,
                Err(e) => return Fwd::Fail(route_err_text(&e).to_string()),
            };
            if let Some(from) = routed.migrate.as_ref().filter(|_| !hkey.is_empty()) {
                let Some(src) = from.conn(self.db, self.seed) else {
                    return Fwd::Fail("backend conn reset".into());
                };
                if routed.method == 0 {
                    // Sync: move the key (with its tag group) first.
                    let (host, port) = routed
                        .backend
                        .addr
                        .rsplit_once(':')
                        .unwrap_or((&routed.backend.addr, "0"));
                    let mut req = Vec::new();
                    encode(
                        &mut req,
                        &[
                            b"SLOTSMGRTTAGONE",
                            host.as_bytes(),
                            port.as_bytes(),
                            b"3000",
                            hkey,
                        ],
                    );
                    match call(src, req).await {
                        Ok(r) if r.starts_with(b":") => {}
                        Ok(r) => return Fwd::Fail(format!("bad slotsmgrt resp: {}", show(&r))),
                        Err(t) => return Fwd::Fail(t.to_string()),
                    }
                } else {
                    // Semi-async: let the source run it if it still has the key.
                    let mut args: Vec<&[u8]> = vec![b"SLOTSMGRT-EXEC-WRAPPER", hkey];
                    args.extend_from_slice(argv);
                    match call(src, reencode(&args)).await {
                        Ok(r) => match parse_wrapper(&r) {
                            Some((2, inner)) => return Fwd::Reply(inner.to_vec()),
                            Some((0, _)) => {}
                            Some((1, _)) => {
                                drop(routed);
                                let ms = match tries {
                                    0..5 => 0,
                                    5..20 => tries,
                                    _ => 20,
                                };
                                tries += 1;
                                if ms == 0 {
                                    tokio::task::yield_now().await;
                                } else {
                                    tokio::time::sleep(Duration::from_millis(ms)).await;
                                }
                                continue;
                            }
                            _ => {
                                return Fwd::Fail(format!(
                                    "bad slotsmgrt-exec-wrapper resp: {}",
                                    show(&r)
                                ));
                            }
                        },
                        Err(t) => return Fwd::Fail(t.to_string()),
                    }
                }
            }
            let replica = if self.pure_read {
                routed.replica_conn(self.db, self.seed)
            } else {
                None
            };
            let Some(conn) = replica.or_else(|| routed.backend.conn(self.db, self.seed)) else {
                return Fwd::Fail("backend conn reset".into());
            };
            let conn = conn.clone();
            let (tx, rx) = oneshot::channel();
            conn.send(Request {
                data,
                tx,
                guard: Some(routed.guard),
            })
            .await;
            return Fwd::Wait(rx);
        }
    }

    /// MGET/MSET/DEL/EXISTS split per key (codis.md §3.4).
    async fn split(&mut self, upper: &str, argv: &[&[u8]], raw: Option<&[u8]>) -> bool {
        let (kind, step) = match upper {
            "MGET" => (SplitKind::Mget, 1),
            "MSET" => (SplitKind::Mset, 2),
            "DEL" => (SplitKind::Del, 1),
            "TOUCH" => (SplitKind::Sum("touch"), 1),
            "UNLINK" => (SplitKind::Sum("unlink"), 1),
            _ => (SplitKind::Exists, 1),
        };
        let nargs = argv.len() - 1;
        if nargs == 0 || !nargs.is_multiple_of(step) {
            self.reply(arity_err(upper));
            return true;
        }
        if nargs == step {
            let data = raw.map(<[u8]>::to_vec).unwrap_or_else(|| reencode(argv));
            return self
                .forward_single(protocol::slot::slot_of(argv[1]), argv[1], argv, data)
                .await;
        }
        let mut subs = Vec::with_capacity(nargs / step);
        for chunk in argv[1..].chunks(step) {
            let mut sub: Vec<&[u8]> = Vec::with_capacity(1 + step);
            sub.push(argv[0]);
            sub.extend_from_slice(chunk);
            let key = chunk[0];
            match self
                .forward(protocol::slot::slot_of(key), key, &sub, reencode(&sub))
                .await
            {
                Fwd::Wait(rx) => subs.push(Sub::Wait(rx)),
                Fwd::Reply(r) => subs.push(Sub::Ready(r)),
                Fwd::Fail(t) => return self.fail(&t),
            }
        }
        self.push(Pending::Split(kind, subs));
        true
    }

    fn slotsmapping(&self, argv: &[&[u8]]) {
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
        Ok(_) => Err(format!("ERR parse slotnum '{s}' failed, out of range")),
        Err(_) => Err(format!(
            "ERR parse slotnum '{s}' failed, strconv.Atoi: parsing \"{s}\": invalid syntax"
        )),
    }
}

fn reencode(argv: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    encode(&mut v, argv);
    v
}

/// One synchronous round trip on a backend connection (migration helpers).
async fn call(conn: &crate::backend::BackendConn, data: Vec<u8>) -> Result<Vec<u8>, &'static str> {
    let (tx, rx) = oneshot::channel();
    conn.send(Request {
        data,
        tx,
        guard: None,
    })
    .await;
    match rx.await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.text()),
        Err(_) => Err("backend conn reset"),
    }
}

/// `*2 :code <inner>` from SLOTSMGRT-EXEC-WRAPPER.
fn parse_wrapper(r: &[u8]) -> Option<(i64, &[u8])> {
    let rest = r.strip_prefix(b"*2\r\n:")?;
    let nl = memchr::memchr(b'\n', rest)?;
    let code: i64 = std::str::from_utf8(rest.get(..nl.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    Some((code, rest.get(nl + 1..)?))
}

/// A short printable form of a reply for error messages.
fn show(r: &[u8]) -> String {
    let s = String::from_utf8_lossy(&r[..r.len().min(64)]).into_owned();
    s.replace("\r\n", " ").trim_end().to_string()
}

/// Codis' name for a reply's type (`resp.Type` in its error texts).
fn type_name(r: &[u8]) -> &'static str {
    match r.first() {
        Some(b'+') => "<string>",
        Some(b'-') => "<error>",
        Some(b':') => "<int>",
        Some(b'$') => "<bulkbytes>",
        Some(b'*') => "<array>",
        _ => "<unknown>",
    }
}

/// The first line's payload (after the type byte, before CRLF).
fn head(r: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\r', r).unwrap_or(r.len());
    r.get(1..end).unwrap_or(b"")
}

fn parse_int(r: &[u8]) -> Option<i64> {
    if r.first() != Some(&b':') {
        return None;
    }
    std::str::from_utf8(head(r)).ok()?.parse().ok()
}

/// Merges split sub-replies in order (Codis' coalesce rules).
fn merge(kind: SplitKind, subs: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    match kind {
        SplitKind::Mget => {
            let mut out = format!("*{}\r\n", subs.len()).into_bytes();
            for r in subs {
                let ok = r.starts_with(b"*1\r\n");
                if !ok {
                    let n = if r.first() == Some(&b'*') {
                        std::str::from_utf8(head(r))
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                            .unwrap_or(0)
                            .max(0)
                    } else {
                        0
                    };
                    return Err(format!("bad mget resp: {} array.len = {n}", type_name(r)));
                }
                out.extend_from_slice(&r[4..]);
            }
            Ok(out)
        }
        SplitKind::Mset => {
            let mut last = b"+OK\r\n".to_vec();
            for r in subs {
                if r.first() != Some(&b'+') {
                    return Err(format!(
                        "bad mset resp: {} value.len = {}",
                        type_name(r),
                        head(r).len()
                    ));
                }
                last = r.clone();
            }
            Ok(last)
        }
        SplitKind::Del | SplitKind::Exists | SplitKind::Sum(_) => {
            let name = match kind {
                SplitKind::Del => "del",
                SplitKind::Sum(n) => n,
                _ => "exists",
            };
            let mut n: i64 = 0;
            for r in subs {
                match parse_int(r) {
                    Some(v) if kind != SplitKind::Exists => n += v,
                    Some(v) => n += (v != 0) as i64,
                    None => {
                        return Err(format!(
                            "bad {name} resp: {} value.len = {}",
                            type_name(r),
                            head(r).len()
                        ));
                    }
                }
            }
            Ok(format!(":{n}\r\n").into_bytes())
        }
    }
}

const ERR_RESET: &[u8] = b"-ERR handle response, backend conn reset\r\n";

async fn resolve_one(rx: oneshot::Receiver<BackendResult>) -> Result<Vec<u8>, String> {
    match rx.await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.text().to_string()),
        Err(_) => Err("backend conn reset".to_string()),
    }
}

async fn resolve(p: Pending) -> Vec<u8> {
    match p {
        Pending::Ready(b) => b,
        Pending::Wait(rx) => match resolve_one(rx).await {
            Ok(r) => r,
            Err(t) if t == "backend conn reset" => ERR_RESET.to_vec(),
            Err(t) => err_line(&format!("ERR handle response, {t}")),
        },
        Pending::Split(kind, subs) => {
            let mut got = Vec::with_capacity(subs.len());
            let mut failure: Option<String> = None;
            for s in subs {
                let r = match s {
                    Sub::Ready(b) => Ok(b),
                    Sub::Wait(rx) => resolve_one(rx).await,
                };
                match r {
                    Ok(b) => got.push(b),
                    Err(t) => {
                        failure.get_or_insert(t);
                    }
                }
            }
            if let Some(t) = failure {
                return err_line(&format!("ERR handle response, {t}"));
            }
            match merge(kind, &got) {
                Ok(b) => b,
                Err(t) => err_line(&format!("ERR handle response, {t}")),
            }
        }
    }
}

/// Whether a pending reply can be produced without waiting.
fn is_ready(p: &mut Pending) -> bool {
    match p {
        Pending::Ready(_) => true,
        Pending::Wait(rx) => !rx.is_empty() || rx.is_terminated(),
        Pending::Split(_, subs) => subs.iter().all(|s| match s {
            Sub::Ready(_) => true,
            Sub::Wait(rx) => !rx.is_empty() || rx.is_terminated(),
        }),
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<(Pending, Stamp)>,
    outstanding: Arc<AtomicUsize>,
    router: Arc<Router>,
) {
    let send_timeout = router.cfg.session_send_timeout.0;
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    async fn flush(wr: &mut OwnedWriteHalf, out: &mut Vec<u8>, t: Duration) -> bool {
        if out.is_empty() {
            return true;
        }
        let ok = if t.is_zero() {
            wr.write_all(out).await.is_ok()
        } else {
            matches!(tokio::time::timeout(t, wr.write_all(out)).await, Ok(Ok(())))
        };
        out.clear();
        ok
    }
    loop {
        let (mut p, stamp) = if out.is_empty() {
            match rx.recv().await {
                Some(p) => p,
                None => break,
            }
        } else {
            match rx.try_recv() {
                Ok(p) => p,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if !flush(&mut wr, &mut out, send_timeout).await {
                        return;
                    }
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        };
        if !is_ready(&mut p) && !flush(&mut wr, &mut out, send_timeout).await {
            return;
        }
        let from_backend = matches!(p, Pending::Wait(_));
        let bytes = resolve(p).await;
        let is_err = bytes.first() == Some(&b'-');
        let from_backend = from_backend && !bytes.starts_with(ERR_RESET);
        if from_backend && is_err {
            router.stats.redis_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((i, t0)) = stamp
            && let Some(c) = router.stats.cmds.get(i)
        {
            c.calls.fetch_add(1, Ordering::Relaxed);
            c.usecs
                .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            if is_err {
                if from_backend {
                    &c.redis_errtype
                } else {
                    &c.fails
                }
                .fetch_add(1, Ordering::Relaxed);
            }
        }
        outstanding.fetch_sub(1, Ordering::Relaxed);
        out.extend_from_slice(&bytes);
        if out.len() >= 64 * 1024 && !flush(&mut wr, &mut out, send_timeout).await {
            return;
        }
    }
    let _ = flush(&mut wr, &mut out, send_timeout).await;
    let _ = wr.shutdown().await;
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
