//! Replication, master side (Redis 7.0's `replication.c`), first part: a
//! replica (a redis-server 7.0.15, or ours later) that sends PSYNC or SYNC
//! and cannot continue from the backlog gets a full resynchronization: `+FULLRESYNC <replid> <offset>`, a
//! forkless RDB snapshot taken at that offset (disk-based: `$<len>` and the
//! file; newlines keep the link alive while it is written), then the
//! propagation stream from exactly that point (a channel consumer
//! subscribed while every slot is locked). The replica's `REPLCONF ACK`
//! offsets feed INFO replication and ROLE; a PING goes to the replicas
//! every `repl-ping-replica-period`. Owns the replica registry; the
//! connection is handed over by the connection loop (net/mod.rs).
//!
//! What is queued for a replica and not yet written to it is held to the
//! replica class of `client-output-buffer-limit` (256mb 64mb 60 by
//! default): over it the replica is dropped, as Redis does.
//!
//! A replica that comes back with PSYNC and an offset the backlog still
//! covers (propagate.rs keeps it) gets `+CONTINUE` and only what it missed.
//!
//! Not yet (issue 13 goes on): a second replication ID, diskless transfer,
//! the replica side (REPLICAOF), WAIT.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use protocol::resp::{Limits, RequestParser};

pub mod diskless;
pub mod failover;
pub mod replica;

use crate::client::Client;
use crate::persist::rdb;
use crate::server::Server;
use crate::{notice, warning};

/// A replica's state (Redis' `replstate`, as INFO names it).
pub const WAIT_BGSAVE: u8 = 0;
pub const SEND_BULK: u8 = 1;
pub const ONLINE: u8 = 2;

/// What PSYNC / SYNC ask of the connection loop: hand the connection over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    /// PSYNC (answered `+FULLRESYNC …` or `+CONTINUE …` first) rather than
    /// the old SYNC.
    pub psync: bool,
    /// PSYNC's replication ID and offset (`?` and -1: no history).
    pub replid: Vec<u8>,
    pub offset: i64,
    /// The replica announced `capa psync2` (`+CONTINUE` then names our ID).
    pub psync2: bool,
    /// The replica announced `capa eof`: it can take a diskless transfer.
    pub eof: bool,
}

/// One attached replica.
pub struct Replica {
    pub client_id: u64,
    pub ip: String,
    /// `REPLCONF listening-port`.
    pub port: i64,
    pub state: AtomicU8,
    /// The last `REPLCONF ACK` offset.
    pub ack: AtomicU64,
    /// When it came (unix ms).
    pub ack_ms: AtomicU64,
    /// It came with the old SYNC: it sends no ACKs (no `repl-timeout`).
    pub pre_psync: bool,
    /// When the pending write of its full sync started (unix ms; 0: none
    /// pending).
    pub io_ms: AtomicU64,
}

impl Replica {
    /// `n` bytes came from the replica: any of them (an ACK, or the
    /// newline a loading replica sends every second) shows it is alive
    /// (Redis refreshes `repl_ack_time` on both).
    fn heard(&self, srv: &Server, n: usize) {
        srv.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
        self.ack_ms.store(crate::db::now_ms(), Relaxed);
    }

    /// The replica goes online: its ACK clock starts now (Redis'
    /// `putSlaveOnline`).
    fn online(&self) {
        self.ack_ms.store(crate::db::now_ms(), Relaxed);
        self.state.store(ONLINE, Relaxed);
    }
}

/// The replication IDs (PSYNC2): ours, and the one we had before (our
/// old master's, after a promotion) with the first offset it does not
/// cover, so the old master's replicas can continue with us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    pub replid: String,
    pub replid2: String,
    /// -1 when there is no second ID.
    pub second_offset: i64,
}

/// The ID of nothing (`master_replid2` with no second ID).
pub const NO_ID: &str = "0000000000000000000000000000000000000000";

fn random_id() -> String {
    (0..40)
        .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
        .collect()
}

/// Replication's state: the master side, and the replica side's link
/// (replica.rs).
pub struct Repl {
    ids: Mutex<Ids>,
    /// The replica side: our master and the link to it.
    pub link: replica::Link,
    replicas: Mutex<Vec<Arc<Replica>>>,
    /// When the last replica left (unix ms; 0 = one is attached or none
    /// ever was): the backlog goes `repl-backlog-ttl` later.
    alone_since_ms: AtomicU64,
    /// INFO stats' `sync_full`, `sync_partial_ok`, `sync_partial_err`.
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// FAILOVER's state (failover.rs).
    pub failover: Mutex<failover::Failover>,
    /// Replicas waiting for a diskless transfer (diskless.rs).
    pub diskless: diskless::Room,
    /// Woken by every `REPLCONF ACK` (WAIT, SHUTDOWN's wait).
    pub acked: tokio::sync::Notify,
    /// A SHUTDOWN waits for its replicas; SHUTDOWN ABORT sets `aborted`.
    shutdown_waiting: AtomicBool,
    shutdown_aborted: AtomicBool,
    shutdown_abort: tokio::sync::Notify,
    /// The command gate's one load: set while we are a replica, or while
    /// `min-replicas-to-write` refuses writes.
    pub gate: AtomicBool,
    /// Online replicas lagging at most `min-replicas-max-lag` seconds
    /// (INFO `min_slaves_good_slaves`), and whether they are too few.
    pub good: AtomicUsize,
    too_few: AtomicBool,
}

impl Repl {
    pub fn new() -> Repl {
        Repl {
            ids: Mutex::new(Ids {
                replid: random_id(),
                replid2: NO_ID.to_string(),
                second_offset: -1,
            }),
            link: replica::Link::default(),
            replicas: Mutex::new(Vec::new()),
            alone_since_ms: AtomicU64::new(0),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            acked: tokio::sync::Notify::new(),
            shutdown_waiting: AtomicBool::new(false),
            shutdown_aborted: AtomicBool::new(false),
            shutdown_abort: tokio::sync::Notify::new(),
            diskless: diskless::Room::default(),
            failover: Mutex::new(failover::Failover::default()),
            gate: AtomicBool::new(false),
            good: AtomicUsize::new(0),
            too_few: AtomicBool::new(false),
        }
    }

    pub fn ids(&self) -> Ids {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// This server's replication ID (40 hex digits).
    pub fn replid(&self) -> String {
        self.ids().replid
    }

    /// A new history of our own (a promotion): the current ID becomes the
    /// second one, valid up to offset `offset` (Redis' `shiftReplicationId`).
    pub fn shift_ids(&self, offset: u64) {
        let mut g = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        g.replid2 = std::mem::replace(&mut g.replid, random_id());
        g.second_offset = offset as i64 + 1;
    }

    /// A master restarted from an RDB with replication fields (Redis 7.0's
    /// `loadDataFromDisk`): the file's ID becomes our second one up to its
    /// offset, the stream goes on from that offset with a backlog, so the
    /// replicas we had continue with PSYNC. The backlog goes after
    /// `repl-backlog-ttl` if none comes.
    pub fn restore_history(&self, replid: &str, offset: u64) {
        {
            let mut g = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            g.replid2 = replid.to_string();
            g.second_offset = offset as i64 + 1;
        }
        self.alone_since_ms
            .store(crate::db::now_ms().max(1), Relaxed);
    }

    /// Our master's history: its ID, and no second one (a full sync).
    pub fn adopt_id(&self, replid: &str) {
        *self.ids.lock().unwrap_or_else(|p| p.into_inner()) = Ids {
            replid: replid.to_string(),
            replid2: NO_ID.to_string(),
            second_offset: -1,
        };
    }

    /// Our master's new ID after a partial resync (it was promoted): ours
    /// becomes the second one, valid up to `offset` (Redis: the replica
    /// side of `+CONTINUE <new id>`).
    pub fn continue_as(&self, replid: &str, offset: u64) {
        let mut g = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        g.replid2 = std::mem::replace(&mut g.replid, replid.to_string());
        g.second_offset = offset as i64 + 1;
    }

    /// Whether PSYNC `replid` `offset` continues our history: our ID, or
    /// our second one up to where it ends (PSYNC2).
    fn knows(&self, replid: &[u8], offset: i64) -> bool {
        let g = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        replid == g.replid.as_bytes()
            || (replid == g.replid2.as_bytes() && offset <= g.second_offset)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Replica>>> {
        self.replicas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The attached replicas, in attach order.
    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.lock().clone()
    }

    /// Online replicas that acknowledged `offset` (Redis'
    /// `replicationCountAcksByOffset`).
    pub fn acked_by(&self, offset: u64) -> usize {
        self.lock()
            .iter()
            .filter(|r| r.state.load(Relaxed) == ONLINE && r.ack.load(Relaxed) >= offset)
            .count()
    }

    /// Counts the good replicas (Redis' `refreshGoodSlavesCount`):
    /// writes are refused while fewer than `to_write` lag at most
    /// `max_lag` seconds (both set).
    pub fn refresh_good(&self, to_write: i64, max_lag: i64) {
        let now_s = crate::db::now_ms() / 1000;
        let good = self
            .lock()
            .iter()
            .filter(|r| {
                r.state.load(Relaxed) == ONLINE
                    && now_s.saturating_sub(r.ack_ms.load(Relaxed) / 1000) as i64 <= max_lag
            })
            .count();
        self.good.store(good, Relaxed);
        let active = to_write > 0 && max_lag > 0;
        self.too_few
            .store(active && (good as i64) < to_write, Relaxed);
        self.refresh_gate();
    }

    /// Recomputes [`Repl::gate`].
    pub fn refresh_gate(&self) {
        self.gate.store(
            self.link.is_replica() || self.too_few.load(Relaxed),
            Relaxed,
        );
    }

    /// Whether every replica acknowledged the whole stream (Redis'
    /// `isReadyToShutdown`).
    pub fn in_sync(&self, end: u64) -> bool {
        self.lock().iter().all(|r| r.ack.load(Relaxed) == end)
    }

    /// SHUTDOWN ABORT: stops a shutdown waiting for its replicas.
    pub fn abort_shutdown(&self) -> bool {
        if !self.shutdown_waiting.load(Relaxed) {
            return false;
        }
        self.shutdown_aborted.store(true, Relaxed);
        self.shutdown_abort.notify_waiters();
        true
    }

    pub fn has_replicas(&self) -> bool {
        !self.lock().is_empty()
    }

    fn remove(&self, client_id: u64) {
        let mut l = self.lock();
        l.retain(|r| r.client_id != client_id);
        if l.is_empty() {
            self.alone_since_ms
                .store(crate::db::now_ms().max(1), Relaxed);
        }
    }
}

impl Default for Repl {
    fn default() -> Self {
        Repl::new()
    }
}

/// Why a command is refused by replication's state (the command gate's
/// cold path): a replica's (replica.rs), or `min-replicas-to-write`'s.
#[cold]
pub fn refusal(srv: &Server, spec: &protocol::command::CommandSpec) -> Option<&'static str> {
    if srv.repl.link.is_replica() {
        return replica::refusal(srv, spec);
    }
    (srv.repl.too_few.load(Relaxed) && spec.has(protocol::command::flags::WRITE))
        .then_some(crate::errors::NOREPLICAS)
}

/// The replication PING (Redis sends it into the stream, so it counts in
/// the offsets, and never to the AOF).
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// What WAIT sends into the stream so that replicas ACK at once.
const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";

/// Before a shutdown (SHUTDOWN without NOW, SIGTERM; Redis 7.0's
/// `prepareForShutdown`): with replicas behind, writes are held and a
/// GETACK sent until every replica acknowledged the whole stream or
/// `shutdown-timeout` seconds passed. `false` when SHUTDOWN ABORT came.
pub async fn wait_before_shutdown(srv: &Server) -> bool {
    let timeout = srv.config().shutdown_timeout;
    if timeout == 0 || !srv.repl.has_replicas() || srv.repl.in_sync(srv.prop.repl_offset()) {
        return true;
    }
    let r = &srv.repl;
    if r.shutdown_waiting.swap(true, Relaxed) {
        // (One wait at a time: a second SHUTDOWN fails, as Redis'.)
        return false;
    }
    r.shutdown_aborted.store(false, Relaxed);
    srv.pause.hold(crate::pause::Hold::Shutdown, true);
    srv.prop.emit_to_consumers(GETACK);
    notice!("Waiting for replicas before shutting down.");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout as u64);
    let aborted = loop {
        let acked = r.acked.notified();
        let abort = r.shutdown_abort.notified();
        if r.shutdown_aborted.load(Relaxed) {
            break true;
        }
        if r.in_sync(srv.prop.repl_offset()) {
            break false;
        }
        tokio::select! {
            _ = acked => {}
            _ = abort => {}
            _ = tokio::time::sleep_until(deadline) => break false,
            // (A replica that left counts as in sync.)
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    };
    srv.pause.hold(crate::pause::Hold::Shutdown, false);
    r.shutdown_waiting.store(false, Relaxed);
    if aborted {
        notice!("Shutdown manually aborted.");
        return false;
    }
    let end = srv.prop.repl_offset();
    let replicas = r.replicas();
    let mut lagging = 0;
    for x in &replicas {
        let ack = x.ack.load(Relaxed);
        if ack != end {
            lagging += 1;
            warning!(
                "Lagging replica {}:{} reported offset {} behind master, lag={}, state={}.",
                x.ip,
                x.port,
                end.saturating_sub(ack),
                crate::db::now_ms().saturating_sub(x.ack_ms.load(Relaxed)) / 1000,
                if x.state.load(Relaxed) == ONLINE {
                    "online"
                } else {
                    "wait_bgsave"
                }
            );
        }
    }
    notice!(
        "{} of {} replicas are in sync when shutting down.",
        replicas.len() - lagging,
        replicas.len()
    );
    true
}

/// WAIT's wait: until `want` replicas acknowledged `offset`, or
/// `timeout_ms` passed (0: no limit). The reply is how many did.
pub fn wait_for_acks(
    srv: Arc<Server>,
    offset: u64,
    want: usize,
    timeout_ms: u64,
) -> crate::migrate::Pending {
    Box::pin(async move {
        let deadline = (timeout_ms > 0)
            .then(|| tokio::time::Instant::now() + Duration::from_millis(timeout_ms));
        srv.prop.emit_to_consumers(GETACK);
        loop {
            let acked = srv.repl.acked.notified();
            let n = srv.repl.acked_by(offset);
            if n >= want {
                return format!(":{n}\r\n").into_bytes();
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, acked).await.is_err() {
                        let n = srv.repl.acked_by(offset);
                        return format!(":{n}\r\n").into_bytes();
                    }
                }
                None => acked.await,
            }
        }
    })
}

/// The cron's part: a PING to the replicas every `repl-ping-replica-period`
/// seconds.
pub fn cron(srv: &Server, now_ms: u64, last_ping_ms: &mut u64) {
    failover::cron(&srv.arc(), now_ms);
    {
        let c = srv.config();
        let (to_write, max_lag) = (c.min_replicas_to_write, c.min_replicas_max_lag);
        drop(c);
        srv.repl.refresh_good(to_write, max_lag);
    }
    if !srv.repl.has_replicas() {
        // Redis frees the backlog `repl-backlog-ttl` seconds after the
        // last replica left (0: never); the stream then costs nothing.
        let since = srv.repl.alone_since_ms.load(Relaxed);
        let ttl = srv.config().repl_backlog_ttl;
        // (A replica keeps its backlog: it continues its replicas after a
        // promotion.)
        if since != 0
            && ttl > 0
            && now_ms.saturating_sub(since) / 1000 >= ttl as u64
            && !srv.repl.link.is_replica()
        {
            srv.repl.alone_since_ms.store(0, Relaxed);
            srv.prop.drop_backlog();
            notice!("Replication backlog freed after {ttl} seconds without connected replicas.");
        }
        return;
    }
    // An online replica silent for `repl-timeout` seconds is dropped
    // (Redis' "Disconnecting timedout replica").
    let timeout_ms = srv.config().repl_timeout.max(1) as u64 * 1000;
    for r in srv.repl.replicas() {
        let online = r.state.load(Relaxed) == ONLINE;
        // Online: no ACK (nor newline) for that long. Before: a write of
        // its transfer stuck for that long (a replica that stopped reading
        // would hold the snapshot, and every later one, forever).
        let (since, what) = if online {
            (r.ack_ms.load(Relaxed), "streaming sync")
        } else {
            (r.io_ms.load(Relaxed), "full sync")
        };
        if since != 0
            && (!online || !r.pre_psync)
            && now_ms.saturating_sub(since) > timeout_ms
            && let Some(c) = srv.clients.get(r.client_id)
            && !c.killed.load(Relaxed)
        {
            warning!(
                "Disconnecting timedout replica ({what}): {}:{}",
                r.ip,
                r.port
            );
            c.kill();
        }
    }
    if srv.repl.link.is_replica() {
        // A replica relays its master's PINGs.
        return;
    }
    let period = srv.config().repl_ping_replica_period.max(1) as u64;
    if now_ms.saturating_sub(*last_ping_ms) >= period * 1000 {
        *last_ping_ms = now_ms;
        srv.prop.emit_to_consumers(PING);
    }
}

/// Serves a connection that sent PSYNC or SYNC until it closes: the full
/// sync, then the stream. `rbuf` holds what the replica sent after its
/// PSYNC (REPLCONF ACKs come later).
pub async fn serve_replica(
    srv: &Arc<Server>,
    stream: &mut TcpStream,
    client: &mut Client,
    req: SyncRequest,
    rbuf: Vec<u8>,
) {
    let info = client.info.clone();
    let ip = client.repl_ip_address.clone().unwrap_or_else(|| {
        info.addr
            .rsplit_once(':')
            .map_or(info.addr.clone(), |(h, _)| {
                h.trim_matches(['[', ']']).to_string()
            })
    });
    let replica = Arc::new(Replica {
        client_id: info.id,
        ip,
        port: client.repl_listening_port,
        state: AtomicU8::new(WAIT_BGSAVE),
        ack: AtomicU64::new(0),
        ack_ms: AtomicU64::new(crate::db::now_ms()),
        pre_psync: !req.psync,
        io_ms: AtomicU64::new(0),
    });
    srv.repl.lock().push(replica.clone());
    srv.repl.alone_since_ms.store(0, Relaxed);
    info.replica.store(true, Relaxed);
    let addr = format!("{}:{}", replica.ip, replica.port);
    notice!("Replica {addr} asks for synchronization");
    let r = link(srv, stream, &info, &replica, req, rbuf).await;
    if let Err(why) = r {
        warning!("Connection with replica {addr} lost ({why}).");
    }
    srv.repl.remove(info.id);
}

/// The whole life of one replica link: a partial resynchronization when
/// the backlog allows it, else a full one, then the stream. `Err` says
/// why it ended.
async fn link(
    srv: &Arc<Server>,
    stream: &mut TcpStream,
    client_info: &Arc<crate::client::ClientInfo>,
    replica: &Replica,
    req: SyncRequest,
    rbuf: Vec<u8>,
) -> Result<(), String> {
    let info = &**client_info;
    // What the replica has not taken of the stream (while its snapshot is
    // transferred, or behind a slow link) is held to the replica class of
    // client-output-buffer-limit: over it, the replica is dropped.
    // (The check runs under the stream's lock: it is handed the limits and
    // takes no lock itself.)
    let check = || -> crate::propagate::QueueCheck {
        let info = client_info.clone();
        Box::new(move |n, l| info.check_output_limit(n, l))
    };
    if req.psync && req.replid != b"?" {
        let ours = srv.repl.knows(&req.replid, req.offset);
        let cont = if ours && req.offset > 0 {
            srv.prop.subscribe_continue(req.offset as u64, check())
        } else {
            None
        };
        if let Some(rx) = cont {
            srv.repl.sync_partial_ok.fetch_add(1, Relaxed);
            let line = if req.psync2 {
                format!("+CONTINUE {}\r\n", srv.repl.replid())
            } else {
                "+CONTINUE\r\n".to_string()
            };
            write(stream, info, line.as_bytes()).await?;
            notice!(
                "Partial resynchronization request from {}:{} accepted. Sending {} bytes of backlog starting from offset {}.",
                replica.ip,
                replica.port,
                srv.prop.repl_offset() + 1 - req.offset as u64,
                req.offset
            );
            replica.online();
            return stream_to(srv, stream, info, replica, rx, rbuf).await;
        }
        srv.repl.sync_partial_err.fetch_add(1, Relaxed);
        let ids = srv.repl.ids();
        if ours {
            notice!(
                "Unable to partial resync with replica {}:{} for lack of backlog (Replica request was: {}).",
                replica.ip,
                replica.port,
                req.offset
            );
        } else {
            notice!(
                "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{}', my replication IDs are '{}' and '{}')",
                String::from_utf8_lossy(&req.replid),
                ids.replid,
                ids.replid2
            );
        }
    }
    srv.repl.sync_full.fetch_add(1, Relaxed);
    if req.eof && srv.config().repl_diskless_sync {
        return diskless_sync(srv, stream, info, replica, &req, check(), rbuf).await;
    }
    full_sync(srv, stream, info, replica, &req, check(), rbuf).await
}

/// A diskless full resynchronization (diskless.rs), then the stream.
#[allow(clippy::too_many_arguments)]
async fn diskless_sync(
    srv: &Arc<Server>,
    stream: &mut TcpStream,
    info: &crate::client::ClientInfo,
    replica: &Replica,
    req: &SyncRequest,
    check: crate::propagate::QueueCheck,
    rbuf: Vec<u8>,
) -> Result<(), String> {
    let mut start = diskless::join(srv, check);
    notice!("Delay next BGSAVE for diskless SYNC");
    // Newlines while waiting (the replica's read timeout).
    let session = loop {
        tokio::select! {
            s = &mut start => match s {
                Ok(s) => break s,
                Err(_) => return Err("the diskless transfer could not start".into()),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                transfer(stream, info, replica, b"\n").await?;
            }
            _ = info.kill.notified() => return Err("killed".into()),
        }
    };
    let diskless::Session {
        offset,
        rx,
        mut chunks,
    } = session;
    if req.psync {
        let line = format!("+FULLRESYNC {} {offset}\r\n", srv.repl.replid());
        transfer(stream, info, replica, line.as_bytes()).await?;
    }
    let mark = diskless::eof_mark();
    let mut head = b"$EOF:".to_vec();
    head.extend_from_slice(&mark);
    head.extend_from_slice(b"\r\n");
    transfer(stream, info, replica, &head).await?;
    replica.state.store(SEND_BULK, Relaxed);
    loop {
        match chunks.recv().await {
            Some(diskless::Chunk::Data(d)) => {
                srv.stats
                    .net_repl_output_bytes
                    .fetch_add(d.len() as u64, Relaxed);
                transfer(stream, info, replica, &d).await?;
            }
            Some(diskless::Chunk::End(true)) => break,
            _ => return Err("the diskless snapshot failed".into()),
        }
    }
    transfer(stream, info, replica, &mark).await?;
    // The replica goes online with its first ACK, after it loaded the
    // payload (Redis' `repl_put_online_on_ack`): the mark must be the last
    // thing it reads before that, or it could not find the payload's end.
    let mut rbuf = rbuf;
    let mut parser = RequestParser::new();
    let limits = Limits {
        max_bulk: 1 << 20,
        unauthenticated: false,
    };
    let timeout = Duration::from_secs(srv.config().repl_timeout.max(1) as u64);
    let mut last_io = tokio::time::Instant::now();
    loop {
        if read_acks(&mut parser, &mut rbuf, limits, replica, &srv.repl.acked)? {
            break;
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(4096);
        }
        tokio::select! {
            n = stream.read_buf(&mut rbuf) => match n {
                Ok(0) | Err(_) => return Err("closed by the replica".into()),
                Ok(n) => {
                    last_io = tokio::time::Instant::now();
                    replica.heard(srv, n);
                }
            },
            _ = tokio::time::sleep_until(last_io + timeout) => {
                return Err("timeout waiting for the replica's first ACK".into());
            }
            _ = info.kill.notified() => return Err("killed".into()),
        }
    }
    replica.online();
    notice!(
        "Synchronization with replica {}:{} succeeded",
        replica.ip,
        replica.port
    );
    stream_to(srv, stream, info, replica, rx, rbuf).await
}

/// A full resynchronization, then the stream.
#[allow(clippy::too_many_arguments)]
async fn full_sync(
    srv: &Arc<Server>,
    stream: &mut TcpStream,
    info: &crate::client::ClientInfo,
    replica: &Replica,
    req: &SyncRequest,
    check: crate::propagate::QueueCheck,
    rbuf: Vec<u8>,
) -> Result<(), String> {
    // One snapshot at a time: wait for a BGSAVE or AOF rewrite to end.
    // (A newline every second meanwhile, as while it is written.)
    let mut last_nl = tokio::time::Instant::now();
    while !srv.persist.try_claim() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = info.kill.notified() => return Err("killed".into()),
        }
        if last_nl.elapsed() >= Duration::from_secs(1) {
            last_nl = tokio::time::Instant::now();
            transfer(stream, info, replica, b"\n").await?;
        }
    }
    let tmp = format!("temp-repl-{}-{}.rdb", std::process::id(), info.id);
    let dest = rdb::Dest {
        tmp: format!("{tmp}.part"),
        target: tmp.clone(),
        aof_base: false,
        commands: false,
        incremental_fsync: false,
    };
    // The snapshot point and the stream's start are one instant.
    let mut sub = None;
    let job = rdb::Job::start_to(srv, dest, |s| sub = Some(s.prop.subscribe(Some(check))));
    let (job, (rx, offset)) = match (job, sub) {
        (Ok(j), Some(s)) => (j, s),
        _ => {
            srv.persist.saving.store(false, Relaxed);
            return Err("can't start the snapshot".into());
        }
    };
    notice!("Starting BGSAVE for SYNC with target: disk (replication offset {offset})");
    if req.psync {
        let line = format!("+FULLRESYNC {} {offset}\r\n", srv.repl.replid());
        if transfer(stream, info, replica, line.as_bytes())
            .await
            .is_err()
        {
            srv.persist.saving.store(false, Relaxed);
            return Err("write error".into());
        }
    }
    let srv2 = srv.clone();
    // (The slot is let go on the job's own thread: FLUSHALL's wait for it
    // must not depend on this task running.)
    let mut saving = tokio::task::spawn_blocking(move || {
        let r = job.run(&srv2);
        srv2.persist.saving.store(false, Relaxed);
        r
    });
    // Newlines while the file is written (the replica's read timeout).
    let saved = loop {
        tokio::select! {
            r = &mut saving => break r,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if transfer(stream, info, replica, b"\n").await.is_err() {
                    // The job goes on to its end (its file is removed
                    // below); the stream is let go at once, so it pins
                    // nothing meanwhile.
                    drop(rx);
                    let _ = saving.await;
                    let _ = std::fs::remove_file(&tmp);
                    return Err("write error".into());
                }
            }
        }
    };
    if !matches!(saved, Ok(Some(true))) {
        let _ = std::fs::remove_file(&tmp);
        return Err("the snapshot failed".into());
    }
    replica.state.store(SEND_BULK, Relaxed);
    let sent = send_file(srv, stream, info, replica, &tmp).await;
    let _ = std::fs::remove_file(&tmp);
    sent?;
    replica.online();
    notice!(
        "Synchronization with replica {}:{} succeeded",
        replica.ip,
        replica.port
    );
    stream_to(srv, stream, info, replica, rx, rbuf).await
}

/// The stream to an online replica, and its ACKs, until the link ends.
async fn stream_to(
    srv: &Server,
    stream: &mut TcpStream,
    info: &crate::client::ClientInfo,
    replica: &Replica,
    rx: crate::propagate::Reader,
    mut rbuf: Vec<u8>,
) -> Result<(), String> {
    let mut parser = RequestParser::new();
    let mut out = Vec::with_capacity(64 * 1024);
    let limits = Limits {
        max_bulk: 1 << 20,
        unauthenticated: false,
    };
    loop {
        // ACKs are read even while there is always more to send.
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(4096);
        }
        match stream.try_read_buf(&mut rbuf) {
            Ok(0) => return Err("closed by the replica".into()),
            Ok(n) => replica.heard(srv, n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Err("closed by the replica".into()),
        }
        read_acks(&mut parser, &mut rbuf, limits, replica, &srv.repl.acked)?;
        // What the replica has not taken, straight from the shared buffer
        // (up to 1 MiB per write).
        out.clear();
        match srv.prop.read(&rx, &mut out, 1 << 20) {
            None => return Err("stream closed".into()),
            Some(0) => {}
            Some(n) => {
                srv.stats.net_repl_output_bytes.fetch_add(n as u64, Relaxed);
                write_reading(stream, info, replica, srv, &out, &mut rbuf).await?;
                continue;
            }
        }
        tokio::select! {
            _ = rx.changed() => {}
            n = stream.read_buf(&mut rbuf) => match n {
                Ok(0) | Err(_) => return Err("closed by the replica".into()),
                Ok(n) => replica.heard(srv, n),
            },
            _ = info.kill.notified() => return Err("killed".into()),
        }
    }
}

/// `$<len>\r\n` and the file, in chunks. (The file was just written: its
/// reads come from the page cache, so plain reads do not hold the
/// executor up.)
async fn send_file(
    srv: &Server,
    stream: &mut TcpStream,
    info: &crate::client::ClientInfo,
    replica: &Replica,
    path: &str,
) -> Result<(), String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| format!("can't open the RDB for the replica: {e}"))?;
    let len = f
        .metadata()
        .map_err(|e| format!("can't stat the RDB for the replica: {e}"))?
        .len();
    transfer(stream, info, replica, format!("${len}\r\n").as_bytes()).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("can't read the RDB for the replica: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        transfer(stream, info, replica, &buf[..n]).await?;
        srv.stats.net_repl_output_bytes.fetch_add(n as u64, Relaxed);
    }
}

/// Writes `bytes` to the replica, unless it is killed meanwhile (CLIENT
/// KILL, its output limit): a replica that stopped reading cannot hold the
/// link open.
async fn write(
    stream: &mut TcpStream,
    info: &crate::client::ClientInfo,
    bytes: &[u8],
) -> Result<(), String> {
    if info.killed.load(Relaxed) {
        return Err("killed".into());
    }
    tokio::select! {
        r = stream.write_all(bytes) => r.map_err(|_| "write error".to_string()),
        _ = info.kill.notified() => Err("killed".into()),
    }
}

/// [`write`] to an online replica that goes on reading what it sends
/// (its ACKs and keep-alive newlines) while the write waits on a full
/// socket: a replica busy loading is not taken for a dead one.
async fn write_reading(
    stream: &mut TcpStream,
    info: &crate::client::ClientInfo,
    replica: &Replica,
    srv: &Server,
    bytes: &[u8],
    rbuf: &mut Vec<u8>,
) -> Result<(), String> {
    let (mut rh, mut wh) = stream.split();
    let mut at = 0;
    while at < bytes.len() {
        if info.killed.load(Relaxed) {
            return Err("killed".into());
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(4096);
        }
        tokio::select! {
            r = wh.write(&bytes[at..]) => match r {
                Ok(0) | Err(_) => return Err("write error".into()),
                Ok(n) => at += n,
            },
            n = rh.read_buf(rbuf) => match n {
                Ok(0) | Err(_) => return Err("closed by the replica".into()),
                Ok(n) => replica.heard(srv, n),
            },
            _ = info.kill.notified() => return Err("killed".into()),
        }
    }
    Ok(())
}

/// [`write`] of part of a full sync's transfer: the replica's `io_ms`
/// marks the write as pending, so the cron drops a replica whose own write
/// is stuck for `repl-timeout` (one that waits for data is not).
async fn transfer(
    stream: &mut TcpStream,
    info: &crate::client::ClientInfo,
    replica: &Replica,
    bytes: &[u8],
) -> Result<(), String> {
    replica.io_ms.store(crate::db::now_ms().max(1), Relaxed);
    let r = write(stream, info, bytes).await;
    replica.io_ms.store(0, Relaxed);
    r
}

/// A protocol error in a replication link's input.
#[derive(Debug)]
pub struct ProtocolError;

/// Parses the next complete command at the start of `buf` and calls `f`
/// with its arguments: `Ok(Some(bytes it took))`, `Ok(None)` when it is
/// incomplete.
pub fn next_command(
    parser: &mut RequestParser,
    buf: &[u8],
    limits: Limits,
    f: impl FnOnce(&[&[u8]]),
) -> Result<Option<usize>, ProtocolError> {
    match parser.parse(buf, limits) {
        Ok(Some(p)) => {
            let base = if p.in_scratch { parser.scratch() } else { buf };
            let args: Vec<&[u8]> = parser
                .ranges()
                .iter()
                .filter_map(|&(s, e)| base.get(s..e))
                .collect();
            if !args.is_empty() {
                f(&args);
            }
            Ok(Some(p.consumed))
        }
        Ok(None) => Ok(None),
        Err(_) => Err(ProtocolError),
    }
}

/// Takes the complete commands in `rbuf`: `REPLCONF ACK <offset>` updates
/// the replica's offset; anything else a replica sends is ignored (Redis
/// runs it without a reply).
fn read_acks(
    parser: &mut RequestParser,
    rbuf: &mut Vec<u8>,
    limits: Limits,
    replica: &Replica,
    acked: &tokio::sync::Notify,
) -> Result<bool, String> {
    let mut pos = 0;
    let mut any = false;
    while rbuf.len() - pos >= parser.needed() {
        let r = next_command(parser, &rbuf[pos..], limits, |args| {
            if let [cmd, sub, off, ..] = args[..]
                && cmd.eq_ignore_ascii_case(b"replconf")
                && sub.eq_ignore_ascii_case(b"ack")
                && let Some(off) = protocol::number::parse_i64(off)
            {
                // (Offsets only go up: a stale ACK does not lower it.)
                replica.ack.fetch_max(off.max(0) as u64, Relaxed);
                replica.ack_ms.store(crate::db::now_ms(), Relaxed);
                acked.notify_waiters();
                any = true;
            }
        });
        match r {
            Ok(Some(n)) => pos += n,
            Ok(None) => break,
            Err(ProtocolError) => return Err("protocol error".into()),
        }
    }
    rbuf.drain(..pos);
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loading replica's keep-alive newlines and its ACKs, as they come.
    #[test]
    fn newlines_and_acks_from_a_replica() {
        let mut p = RequestParser::new();
        let limits = Limits {
            max_bulk: 1 << 20,
            unauthenticated: false,
        };
        let mut seen = Vec::new();
        let buf = b"\n\n*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n42\r\n";
        let mut pos = 0;
        while pos < buf.len() {
            match next_command(&mut p, &buf[pos..], limits, |a| {
                seen.push(a.iter().map(|x| x.to_vec()).collect::<Vec<_>>())
            }) {
                Ok(Some(n)) => pos += n,
                other => panic!("at {pos}: {other:?}"),
            }
        }
        assert_eq!(
            seen,
            vec![vec![b"REPLCONF".to_vec(), b"ACK".to_vec(), b"42".to_vec()]]
        );
    }
}
