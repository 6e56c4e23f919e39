//! Listener and connection loop.
//!
//! Each connection is one task that owns its socket and buffers. Per read it
//! parses every complete command in the buffer, executes each inline (no
//! channel hop, no per-command allocation on the common path) and writes all
//! replies with one syscall. Protocol errors are answered and the connection
//! is closed, as Redis does. The query buffer is capped at
//! `client-query-buffer-limit`; `maxclients`, `timeout`, `requirepass` and
//! protected mode are applied here.
//!
//! Backpressure: a connection stops running its pipelined commands once
//! `client-output-backpressure` of replies is waiting, writes them, and goes
//! on as the client reads; so one read never produces unbounded output and
//! a client that never reads holds about that much (Redis buffers every
//! reply until `client-output-buffer-limit` closes the client). A client
//! stalled on its socket is held to the soft limit and to `timeout`.
//!
//! A blocking command (BLPOP & co.) leaves a request in the client; the loop
//! then stops parsing, flushes earlier replies and waits in
//! [`crate::block::wait`] (still reading, to notice a disconnect) before it
//! goes on with the buffered commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use protocol::resp::{Limits, Reply, RequestParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{Client, ClientInfo};
use crate::db::now_ms;
use crate::exec;
use crate::server::Server;
use crate::{errors, warning};

const READ_CHUNK: usize = 16 * 1024;
/// Replies of a pipelined batch up to this size wait for the end of the
/// event-loop turn (see `serve_loop`).
const DEFER_MAX: usize = 32 * 1024;

/// A batch that ran this long (ns) has its replies deferred to the end of
/// the turn even if it is one command (see the write below).
const DEFER_BUSY_NS: u64 = 4_000;

/// Replies held for a streaming client while more of its requests are
/// readable (see `serve_loop`), at most this many bytes.
const HOLD_MAX: usize = 64 * 1024;

/// ... and for at most this long (ns) after the first of them.
const HOLD_NS: u64 = 1_000_000;

/// A streaming client's batch that ran this long (ns) yields once more
/// after its deferred write, before running the next batch (see below).
const LONG_BATCH_NS: u64 = 100_000;

/// Accepts connections on `listener` until shutdown.
pub async fn accept_loop(srv: Arc<Server>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = srv.shutdown.notified() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let srv2 = srv.clone();
                tokio::spawn(async move { handle(srv2, stream, peer).await });
            }
            Err(e) => {
                warning!("Accepting client connection: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn handle(srv: Arc<Server>, mut stream: TcpStream, peer: SocketAddr) {
    srv.stats.total_connections.fetch_add(1, Relaxed);
    let (maxclients, needs_auth, timeout, keepalive, protected) = {
        let c = srv.config();
        (
            c.maxclients,
            !srv.acl.default_open(),
            c.timeout_secs,
            c.tcp_keepalive,
            c.protected_mode,
        )
    };
    if srv.clients.len() >= maxclients {
        srv.stats.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream
            .write_all(format!("-{}\r\n", errors::MAX_CLIENTS).as_bytes())
            .await;
        return;
    }
    if protected && !needs_auth && !is_local(peer.ip()) {
        // Redis 7.0's protected mode: no password for the default user and
        // a client that is not local, whatever `bind` is.
        srv.stats.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream
            .write_all(format!("-{}\r\n", errors::PROTECTED_MODE).as_bytes())
            .await;
        return;
    }
    let _ = stream.set_nodelay(true);
    if keepalive > 0 {
        let ka = socket2::TcpKeepalive::new().with_time(Duration::from_secs(keepalive));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&ka);
    }
    let id = srv.next_client_id.fetch_add(1, Relaxed);
    let laddr = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let fd = fd_of(&stream);
    let info = Arc::new(ClientInfo::new(id, peer.to_string(), laddr, fd, now_ms()));
    info.authenticated.store(!needs_auth, Relaxed);
    srv.clients.add(info.clone());
    let mut client = Client::new(info.clone(), !needs_auth);
    let rbuf = Vec::with_capacity(READ_CHUNK);
    let served = serve(&srv, &mut stream, &mut client, timeout, rbuf, false).await;
    crate::multi::unwatch_all(&srv, &mut client);
    srv.pubsub.forget(&mut client);
    srv.monitors.forget(client.id);
    crate::tracking::disable(&srv, &mut client);
    if let Served::Replica(req, rest) = served {
        crate::repl::serve_replica(&srv, &mut stream, &mut client, req, rest).await;
        srv.clients.remove(id);
        return;
    }
    if let Served::Migration(rest) = served {
        // Another server's migration stream: go on serving it on the
        // low-priority migration thread (migrate::background), so restoring
        // its keys only uses CPU our clients leave idle.
        if let (Some(rt), Ok(std)) = (crate::migrate::background(), stream.into_std()) {
            let srv2 = srv.clone();
            drop(rt.spawn(async move {
                if let Ok(mut stream) = TcpStream::from_std(std) {
                    let _ = serve(&srv2, &mut stream, &mut client, timeout, rest, true).await;
                }
                srv2.clients.remove(id);
            }));
            return;
        }
    }
    srv.clients.remove(id);
}

/// Whether protected mode lets `ip` in: Redis 7.0's `islocalClient` takes
/// exactly 127.0.0.1 and ::1 (other 127/8 addresses are remote); an
/// IPv4-mapped ::ffff:127.0.0.1 (a dual-stack listener's view of 127.0.0.1)
/// is local too.
pub fn is_local(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST)
        }
    }
}

/// Whether a listener on `addr` can be reached from other hosts.
pub fn reachable_from_outside(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => !v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|m| m.is_loopback()))
        }
    }
}

#[cfg(unix)]
fn fd_of(s: &TcpStream) -> i64 {
    use std::os::fd::AsRawFd;
    s.as_raw_fd() as i64
}

#[cfg(not(unix))]
fn fd_of(_: &TcpStream) -> i64 {
    -1
}

/// How [`serve`] left a connection.
enum Served {
    Closed,
    /// A migration stream (only when `background` is false: the caller
    /// moves it to the migration thread), with its unparsed bytes.
    Migration(Vec<u8>),
    /// A replica's PSYNC / SYNC: the replication code takes the connection.
    Replica(crate::repl::SyncRequest, Vec<u8>),
}

/// Serves one connection until it closes, or until it turned out to be a
/// migration stream or a replica (see [`Served`]).
async fn serve(
    srv: &Server,
    stream: &mut TcpStream,
    client: &mut Client,
    timeout_secs: u64,
    rbuf: Vec<u8>,
    background: bool,
) -> Served {
    match serve_loop(srv, stream, client, timeout_secs, rbuf, background).await {
        None => Served::Closed,
        Some(rest) => match client.sync.take() {
            Some(req) => Served::Replica(req, rest),
            None => Served::Migration(rest),
        },
    }
}

/// [`serve`]'s loop: `Some(unparsed bytes)` for a hand-over.
async fn serve_loop(
    srv: &Server,
    stream: &mut TcpStream,
    client: &mut Client,
    mut timeout_secs: u64,
    mut rbuf: Vec<u8>,
    background: bool,
) -> Option<Vec<u8>> {
    let mut out = Reply::new();
    let mut parser = RequestParser::new();
    // Reused across batches: the argv slices of one command.
    let mut argv_store: Vec<&'static [u8]> = Vec::with_capacity(16);
    let info = client.info.clone();
    // Set after a blocking command was served: the buffer may already hold
    // the next commands, so parse before reading again.
    let mut skip_read = !rbuf.is_empty();
    // The last read filled the buffer: the client is streaming (a pipeline,
    // a migration's messages), so yield after answering, as Redis serves
    // one read per client per event-loop turn. Otherwise tokio's
    // cooperative budget would let one connection run up to 128 reads in a
    // row while the others wait.
    let mut filled = false;
    // Set when held replies (below) were followed by a read that filled
    // the buffer again: the client is still streaming.
    let mut more = false;
    // When the oldest held reply was produced (0: none held).
    let mut held_since = 0u64;
    loop {
        if filled {
            filled = false;
            tokio::task::yield_now().await;
        }
        if skip_read {
            skip_read = false;
        } else {
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
                rbuf.reserve(READ_CHUNK);
            }
            let room = rbuf.capacity() - rbuf.len();
            // Subscribers are exempt from the idle timeout (Redis).
            let timeout_secs = if info.in_pubsub() { 0 } else { timeout_secs };
            let read = async {
                if timeout_secs > 0 {
                    match tokio::time::timeout(
                        Duration::from_secs(timeout_secs),
                        stream.read_buf(&mut rbuf),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Ok(0),
                    }
                } else {
                    stream.read_buf(&mut rbuf).await
                }
            };
            // Only subscribers, monitors and RESP3 connections (which may
            // get client-side caching invalidations, tracking.rs) get mail:
            // the others wait on the socket and the kill signal alone (a
            // third branch costs a waiter-list lock and a random branch order
            // per read).
            let mail =
                info.in_pubsub() || info.monitor.load(Relaxed) || info.resp.load(Relaxed) == 3;
            let n = if mail {
                tokio::select! {
                    biased;
                    _ = info.kill.notified() => 0,
                    // Reads first: mail is also written after every batch.
                    r = read => r.unwrap_or_default(),
                    _ = info.mail.notified() => {
                        // Mail (pub/sub messages) while idle: write it, read on.
                        if !flush_mail(srv, stream, &info).await {
                            return None;
                        }
                        skip_read = false;
                        continue;
                    }
                }
            } else {
                tokio::select! {
                    r = read => r.unwrap_or_default(),
                    _ = info.kill.notified() => 0,
                }
            };
            if n == 0 || info.killed.load(Relaxed) {
                return None;
            }
            filled = n >= room;
            srv.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
        }
        let now = now_ms();
        // The batch's first command starts its clock here (exec.rs reads
        // the clock once per command: each one starts where the previous
        // ended), so the batch's length is known at its end for free.
        let batch_start = crate::stats::mono_ns();
        client.cmd_clock = batch_start;
        info.last_interaction_ms.store(now, Relaxed);
        let (limits, qbuf_limit, out_limit, pause_at) = {
            let c = srv.config();
            // CONFIG SET timeout applies to connections already open.
            timeout_secs = c.timeout_secs;
            (
                Limits {
                    max_bulk: c.proto_max_bulk_len,
                    unauthenticated: !client.authenticated,
                },
                c.client_query_buffer_limit,
                c.client_output_buffer_limit[crate::config::CLIENT_CLASS_NORMAL],
                match c.client_output_backpressure {
                    0 => usize::MAX,
                    n => usize::try_from(n).unwrap_or(usize::MAX),
                },
            )
        };
        // The normal class of client-output-buffer-limit applies to the
        // replies of clients that are not subscribers (those are held to
        // the pubsub class where their mail is delivered).
        let out_limit = (!info.in_pubsub()).then_some(out_limit);
        let mut limits = limits;
        let mut pos = 0usize;
        let mut fatal = false;
        let mut handoff = false;
        // A command held back by CLIENT PAUSE (not consumed).
        let mut held = false;
        // Stopped with commands left in the buffer because this much output
        // is waiting: they run once the client has taken it.
        let mut backpressure = false;
        let mut argv: Vec<&[u8]> = reuse(std::mem::take(&mut argv_store));
        // Commands run from this read.
        let mut ran = 0u32;
        while rbuf.len() - pos >= parser.needed() && !client.close_after_reply {
            let buf = &rbuf[pos..];
            match parser.parse(buf, limits) {
                Ok(Some(p)) => {
                    if !background
                        && !p.in_scratch
                        && parser
                            .ranges()
                            .first()
                            .and_then(|&(s, e)| buf.get(s..e))
                            .is_some_and(is_migration_stream)
                        && crate::migrate::background().is_some()
                    {
                        // Not consumed: it runs on the migration thread.
                        handoff = true;
                        break;
                    }
                    if p.in_scratch {
                        // Quoted inline command: arguments were unescaped.
                        let base = parser.scratch();
                        let args: Vec<&[u8]> = parser
                            .ranges()
                            .iter()
                            .filter_map(|&(s, e)| base.get(s..e))
                            .collect();
                        if srv.pause.holds(client, &args, now) {
                            held = true;
                            break;
                        }
                        if !args.is_empty() {
                            exec::execute(srv, client, &mut out, now, &args);
                        }
                    } else {
                        argv.clear();
                        argv.extend(parser.ranges().iter().filter_map(|&(s, e)| buf.get(s..e)));
                        if srv.pause.holds(client, &argv, now) {
                            held = true;
                            break;
                        }
                        if !argv.is_empty() {
                            exec::execute(srv, client, &mut out, now, &argv);
                        }
                    }
                    limits.unauthenticated = !client.authenticated;
                    pos += p.consumed;
                    ran += 1;
                    if let Some(l) = out_limit
                        && over_hard_limit(&l, out.buf.len())
                    {
                        output_limit_reached(&info);
                        return None;
                    }
                    if background {
                        // A migration stream: let woken clients run.
                        crate::migrate::courtesy();
                    }
                    if client.block.is_some() || client.pending.is_some() || client.sync.is_some() {
                        // Blocked: later pipelined commands wait (Redis).
                        break;
                    }
                    if out.buf.len() >= pause_at {
                        // Backpressure: one read never produces more than
                        // about `client-output-backpressure` of replies; the
                        // rest of the pipeline runs as the client reads.
                        backpressure = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let mut msg = Vec::new();
                    e.write_message(&mut msg);
                    exec::reply_error(srv, &mut out, &msg);
                    fatal = true;
                    break;
                }
            }
        }
        argv.clear();
        argv_store = reuse(argv);
        if srv.tracking.bcast_pending() {
            // BCAST invalidations of the keys this batch modified (Redis
            // sends them before its event loop sleeps).
            crate::tracking::broadcast(srv);
        }
        if pos > 0 {
            rbuf.drain(..pos);
        }
        if !fatal && rbuf.len() as u64 > qbuf_limit {
            warning!(
                "Closing client that reached max query buffer length (qbuf={})",
                rbuf.len()
            );
            return None;
        }
        info.qbuf.store(rbuf.len(), Relaxed);
        info.qbuf_free.store(rbuf.capacity() - rbuf.len(), Relaxed);
        info.buf_mem
            .store(rbuf.capacity() + out.buf.capacity(), Relaxed);
        let climit = crate::evict::clients_limit(srv);
        if climit != 0
            && (rbuf.capacity() + out.buf.capacity() + info.pending_output()) as u64 > climit / 8
        {
            crate::evict::evict_clients(srv);
        }
        // A streaming client (its read filled the buffer: the rest of its
        // pipeline is on the way) has its replies held while more of its
        // requests can be read at once, and answered with them: Redis reads
        // 16 KiB per client per event-loop turn and writes every client's
        // replies at the turn's end, so a client streaming a big pipeline
        // (16 MSETs of 1 KB values) is woken about once per pipeline; we
        // wrote the replies of every 16 KiB read, and redis-benchmark was
        // woken ten times per pipeline (sleeping in between: 13% of the
        // server's CPU went to those wake-ups). Held only while requests
        // are waiting in the socket (when none are, the replies go now),
        // and for at most HOLD_NS: holding a whole 160 KB pipeline's
        // replies raised throughput 30% but redis-benchmark's p50 from
        // 3 ms (redis) to 15 ms; 1 ms of holding gave 42-45k rps against
        // redis' 43k with a p50 of 2.3-2.5 ms (2.5 ms: 51k, p50 4.5 ms).
        let streaming = filled || std::mem::take(&mut more);
        if !out.buf.is_empty() && held_since == 0 {
            held_since = batch_start;
        }
        if streaming
            && client.cmd_clock.saturating_sub(held_since) < HOLD_NS
            && !out.buf.is_empty()
            && out.buf.len() <= HOLD_MAX
            && !fatal
            && !held
            && !handoff
            && !backpressure
            && client.block.is_none()
            && client.pending.is_none()
            && client.sync.is_none()
            && !client.close_after_reply
            && info.omem.load(Relaxed) == 0
        {
            // The streaming client's yield to the others (`filled`).
            tokio::task::yield_now().await;
            filled = false;
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
                rbuf.reserve(READ_CHUNK);
            }
            let room = rbuf.capacity() - rbuf.len();
            if info.killed.load(Relaxed) {
                return None;
            }
            match stream.try_read_buf(&mut rbuf) {
                Ok(0) => return None,
                Ok(n) => {
                    srv.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
                    more = n >= room;
                    skip_read = true;
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
        }
        held_since = 0;
        if !out.buf.is_empty() {
            // (cmd_clock: when the batch's last command ended; 0 when it
            // served blocked clients.)
            let busy = client.cmd_clock.saturating_sub(batch_start);
            if (ran > 1 || busy >= DEFER_BUSY_NS) && out.buf.len() <= DEFER_MAX {
                // A pipeline's replies leave at the end of the event-loop
                // turn, after every connection that was ready has run its
                // batch (Redis writes in beforeSleep): a reply written while
                // the client sleeps in epoll_wait costs the kernel a wake-up
                // of the client (a cross-CPU interrupt), and writing the
                // turn's replies in one burst lets the client take most of
                // them in one wake-up. With 50 clients at P=16 this halved
                // the server's kernel time per request (docs/performance.md).
                // Single cheap commands (P=1) gained nothing from it and paid
                // one more pass through the scheduler (3% of INCR's CPU); a
                // single command that ran long (an MSET that evicts ten keys)
                // finds its client asleep as a pipeline does, and gained 11%
                // of its CPU. Large replies go at once (the client is what is
                // slow there).
                tokio::task::yield_now().await;
                // The turn's yield is also the one a streaming client owes
                // the others (`filled`), unless its batch ran long: then the
                // next batch waits one more turn, so that the other
                // connections woken with this one write their replies first
                // instead of after this one's next batch (Redis reads 16 KiB
                // per client per turn and writes all replies at its end).
                // Without it, 50 clients pipelining 16 MSETs of 1 KB values
                // each found the client asleep at every write: 11% of the
                // server's CPU. Short batches skip it (2% of a P=16 SET's).
                if busy < LONG_BATCH_NS {
                    filled = false;
                }
            }
            if srv.persist.aof.writer.gate() {
                // Replies leave once the changes they acknowledge are in the
                // AOF: fdatasynced (`always`) or written (`everysec`, `no`).
                srv.persist.aof.writer.before_reply(srv).await;
            }
            srv.stats
                .net_output_bytes
                .fetch_add(out.buf.len() as u64, Relaxed);
            // Subscribers are exempt from the idle timeout (Redis).
            let idle = if info.in_pubsub() { 0 } else { timeout_secs };
            if !write_replies(stream, &mut out.buf, &info, out_limit, idle).await {
                return None;
            }
            out.buf.clear();
            if out.buf.capacity() > 1024 * 1024 {
                out.buf = Vec::with_capacity(READ_CHUNK);
            }
        }
        if backpressure {
            // The rest of the buffered pipeline once the client has taken
            // most of it, after a turn for the others.
            let idle = if info.in_pubsub() { 0 } else { timeout_secs };
            if !wait_drained(stream, &info, pause_at, out_limit, idle).await {
                return None;
            }
            skip_read = true;
            filled = true;
        }
        if info.omem.load(Relaxed) != 0 && !flush_mail(srv, stream, &info).await {
            return None;
        }
        if held {
            // Paused: wait for the end of the pause, then parse the held
            // command again (the buffer still holds it).
            tokio::select! {
                _ = srv.pause.wait() => {}
                _ = info.kill.notified() => return None,
            }
            parser = RequestParser::new();
            skip_read = true;
            continue;
        }
        if let Some(pending) = client.pending.take() {
            // A migration command answers when its network work is done.
            let r = tokio::select! {
                r = pending => r,
                _ = info.kill.notified() => return None,
            };
            if srv.persist.aof.writer.gate() {
                srv.persist.aof.writer.before_reply(srv).await;
            }
            srv.stats
                .net_output_bytes
                .fetch_add(r.len() as u64, Relaxed);
            if stream.write_all(&r).await.is_err() {
                return None;
            }
            info.last_interaction_ms.store(now_ms(), Relaxed);
            skip_read = !rbuf.is_empty();
        }
        if let Some(req) = client.block.take() {
            let resp3 = out.resp3;
            match crate::block::wait(srv, stream, &mut rbuf, client, resp3, req, qbuf_limit).await {
                crate::block::Outcome::Reply(r) => {
                    if srv.persist.aof.writer.gate() {
                        srv.persist.aof.writer.before_reply(srv).await;
                    }
                    srv.stats
                        .net_output_bytes
                        .fetch_add(r.len() as u64, Relaxed);
                    if stream.write_all(&r).await.is_err() {
                        return None;
                    }
                }
                crate::block::Outcome::Closed => return None,
            }
            info.last_interaction_ms.store(now_ms(), Relaxed);
            skip_read = !rbuf.is_empty();
        }
        if fatal || client.close_after_reply || srv.shutting_down.load(Relaxed) {
            return None;
        }
        if handoff || client.sync.is_some() {
            return Some(rbuf);
        }
        if rbuf.is_empty() && rbuf.capacity() > 1024 * 1024 {
            rbuf = Vec::with_capacity(READ_CHUNK);
        }
    }
}

/// Writes one batch of replies. When the socket takes it whole (the common
/// case) that is one syscall and nothing more. Otherwise the unsent part is
/// the client's pending output (CLIENT LIST `obl`/`oll`/`omem`) until the
/// client reads it: over the soft limit of `limit` for longer than its
/// seconds the client is closed as over its output limit, and with
/// `timeout` set a client that takes no byte for that long is closed as
/// idle (Redis counts a write as an interaction: a slow reader stays, one
/// that stopped reading goes, whatever it has pending). Returns false when
/// the connection must close.
async fn write_replies(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    info: &ClientInfo,
    limit: Option<crate::config::ClientBufferLimit>,
    timeout_secs: u64,
) -> bool {
    let mut off = match stream.try_write(buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return false,
    };
    if off < buf.len() && buf.capacity() >= 2 * (buf.len() - off) + READ_CHUNK {
        // Stalled: keep only what is unsent (a client that stopped reading
        // holds its pending bytes, not the whole batch's buffer).
        buf.drain(..off);
        buf.shrink_to_fit();
        off = 0;
    }
    let soft = limit.filter(|l| l.soft_bytes > 0);
    let mut progress = tokio::time::Instant::now();
    let mut soft_since: Option<tokio::time::Instant> = None;
    let done = loop {
        let left = buf.len() - off;
        if left == 0 {
            break true;
        }
        info.reply_pending.store(left, Relaxed);
        let soft_end = match soft {
            Some(l) if left as u64 >= l.soft_bytes => {
                // Redis closes the client once it has been over for more
                // than soft-seconds, counted in whole seconds.
                let since = *soft_since.get_or_insert(progress);
                Some(since + Duration::from_secs(l.soft_seconds.max(0) as u64 + 1))
            }
            _ => {
                soft_since = None;
                None
            }
        };
        let idle_end = (timeout_secs > 0).then(|| progress + Duration::from_secs(timeout_secs));
        let end = match (soft_end, idle_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wrote = tokio::select! {
            r = stream.write(&buf[off..]) => r,
            _ = sleep_until(end) => {
                if soft_end.is_some_and(|s| Some(s) == end) {
                    output_limit_reached(info);
                } else {
                    crate::verbose!("Closing idle client");
                }
                break false;
            }
            _ = info.kill.notified() => break false,
        };
        match wrote {
            Ok(n) if n > 0 => {
                off += n;
                progress = tokio::time::Instant::now();
                info.last_interaction_ms.store(now_ms(), Relaxed);
            }
            _ => break false,
        }
    };
    info.reply_pending.store(0, Relaxed);
    done
}

/// After a batch cut short by backpressure: waits while the kernel still
/// holds `bound` bytes or more of this client's output, so a client that
/// does not read makes the server produce nothing more (its last replies
/// sit in the socket buffers, not in ours). Meanwhile those bytes are the
/// client's pending output: CLIENT LIST shows them and `limit` applies to
/// them as to Redis' reply buffers (which is where Redis would hold the
/// replies it went on producing). Polls with a backoff up to 100 ms: the
/// kernel reports writability only after its buffer was full, not when a
/// queue that never filled drains. Returns false when the connection must
/// close (killed, reset, over its limit, or idle past `timeout`).
async fn wait_drained(
    stream: &TcpStream,
    info: &ClientInfo,
    bound: usize,
    limit: Option<crate::config::ClientBufferLimit>,
    timeout_secs: u64,
) -> bool {
    let mut last = unsent(stream);
    if last < bound {
        return true;
    }
    let mut progress = tokio::time::Instant::now();
    let mut soft_since: Option<tokio::time::Instant> = None;
    let mut pause = Duration::from_millis(1);
    let done = loop {
        info.reply_pending.store(last, Relaxed);
        if let Some(l) = limit {
            let over_soft = l.soft_bytes > 0 && last as u64 >= l.soft_bytes;
            if !over_soft {
                soft_since = None;
            }
            let since =
                over_soft.then(|| *soft_since.get_or_insert_with(tokio::time::Instant::now));
            if over_hard_limit(&l, last)
                || since.is_some_and(|t| t.elapsed().as_secs() > l.soft_seconds.max(0) as u64)
            {
                output_limit_reached(info);
                break false;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = info.kill.notified() => break false,
        }
        if matches!(stream.take_error(), Ok(Some(_)) | Err(_)) {
            break false;
        }
        let now = unsent(stream);
        if now < bound {
            break true;
        }
        if now < last {
            progress = tokio::time::Instant::now();
            info.last_interaction_ms.store(now_ms(), Relaxed);
            pause = Duration::from_millis(1);
        } else {
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        last = now;
        if timeout_secs > 0 && progress.elapsed() >= Duration::from_secs(timeout_secs) {
            crate::verbose!("Closing idle client");
            break false;
        }
    };
    info.reply_pending.store(0, Relaxed);
    done
}

/// Bytes in the socket's send queue that the client has not acknowledged
/// (Linux SIOCOUTQ): what the kernel holds for a client that does not read.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn unsent(stream: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (= SIOCOUTQ) stores one int through the pointer,
    // which is valid for the call; the descriptor is open while `stream`
    // is borrowed.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r == 0 { n.max(0) as usize } else { 0 }
}

#[cfg(not(target_os = "linux"))]
fn unsent(_: &TcpStream) -> usize {
    0
}

/// Sleeps until `end`, or forever without one.
async fn sleep_until(end: Option<tokio::time::Instant>) {
    match end {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Writes what other tasks left in the client's mailbox (pub/sub
/// messages). The write gives way to a kill (a subscriber over its output
/// limit that does not read would otherwise hold the task forever).
/// Returns false when the connection must close.
pub(crate) async fn flush_mail(srv: &Server, stream: &mut TcpStream, info: &ClientInfo) -> bool {
    loop {
        let mail = info.take_mail();
        if mail.is_empty() {
            return !info.killed.load(Relaxed);
        }
        let ok = tokio::select! {
            r = stream.write_all(&mail) => r.is_ok(),
            _ = info.kill.notified() => false,
        };
        info.omem
            .fetch_sub(mail.len().min(info.omem.load(Relaxed)), Relaxed);
        if !ok || info.killed.load(Relaxed) {
            return false;
        }
        srv.stats
            .net_output_bytes
            .fetch_add(mail.len() as u64, Relaxed);
    }
}

/// Whether `pending` reply bytes pass the hard limit.
fn over_hard_limit(l: &crate::config::ClientBufferLimit, pending: usize) -> bool {
    l.hard_bytes > 0 && pending as u64 >= l.hard_bytes
}

/// Logs the close of a client over its output limit, as Redis does.
fn output_limit_reached(info: &ClientInfo) {
    if !info.killed.swap(true, Relaxed) {
        warning!(
            "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
            info.id,
            info.addr
        );
    }
}

/// Commands that only another server's migration sends (SLOTSRESTORE and the
/// SLOTSRESTORE-ASYNC family): a connection that sends one is moved to the
/// migration thread before it runs (see `handle`).
fn is_migration_stream(name: &[u8]) -> bool {
    name.len() >= 12
        && name
            .get(..12)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"slotsrestore"))
}

/// Reuses an empty vector's allocation for slices of another lifetime (the
/// in-place `collect` keeps the buffer since the element layout is identical).
fn reuse<'b>(v: Vec<&[u8]>) -> Vec<&'b [u8]> {
    debug_assert!(v.is_empty());
    v.into_iter().map(|_| &[][..]).collect()
}

/// Binds every configured address (Redis' `bind`, default all interfaces).
pub async fn bind_all(binds: &[String], port: u16) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    let mut last_err = None;
    let list: Vec<String> = if binds.is_empty() {
        vec!["*".into(), "-::*".into()]
    } else {
        binds.to_vec()
    };
    for b in &list {
        let (optional, host) = match b.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, b.as_str()),
        };
        let addr = match host {
            "*" => format!("0.0.0.0:{port}"),
            "::*" => format!("[::]:{port}"),
            h if h.contains(':') => format!("[{h}]:{port}"),
            h => format!("{h}:{port}"),
        };
        match bind_one(&addr).await {
            Ok(l) => out.push(l),
            Err(e) if optional || host == "::*" => {
                let _ = e;
            }
            Err(e) => last_err = Some(std::io::Error::new(e.kind(), format!("{addr}: {e}"))),
        }
    }
    if let Some(e) = last_err {
        return Err(e);
    }
    if out.is_empty() {
        return Err(std::io::Error::other("no address could be bound"));
    }
    Ok(out)
}

async fn bind_one(addr: &str) -> std::io::Result<TcpListener> {
    let sa: SocketAddr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("cannot resolve"))?;
    let sock = if sa.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(sa)?;
    sock.listen(511)
}
