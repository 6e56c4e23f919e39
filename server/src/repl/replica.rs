//! Replication, replica side (Redis 7.0's `replication.c`: `replicaofCommand`,
//! `connectWithMaster`, `syncWithMaster`, `readSyncBulkPayload`, the master
//! client). Owns the link to our master: the handshake (PING, AUTH with
//! `masterauth`/`masteruser`, REPLCONF listening-port / ip-address /
//! capa eof psync2), PSYNC with our history (PSYNC2: our replication ID and
//! offset, so a link drop, a restart from our RDB, or a promoted sibling
//! continue without a full sync), the full sync's payload (`$<len>` or the
//! diskless `$EOF:<mark>` framing) into a temp file that becomes our RDB and
//! is loaded, then the master's stream: each command runs as the master
//! client (no reply, past `replica-read-only`, keys never expired by it) and
//! its bytes, as received, are relayed to our own replicas and backlog
//! (propagate.rs' relay mode). `REPLCONF ACK <offset>` goes back every
//! second and on `REPLCONF GETACK`; no byte from the master for
//! `repl-timeout` seconds drops the link, which is retried every second.
//!
//! Expiry on a replica (Redis' `expireIfNeeded` on replicas): the master
//! client sees every key; other clients' reads see a logically expired key
//! as missing but do not delete it; active expiry does not run.

use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use protocol::resp::{Limits, RequestParser};

use crate::client::{Client, ClientInfo};
use crate::db::now_ms;
use crate::server::Server;
use crate::{notice, warning};

/// The link's state (Redis' `repl_state`, as ROLE names it).
pub const CONNECT: u8 = 0;
pub const CONNECTING: u8 = 1;
pub const HANDSHAKE: u8 = 2;
pub const TRANSFER: u8 = 3;
pub const CONNECTED: u8 = 4;

/// The replication fields of an RDB file (its AUX fields).
#[derive(Default, Clone, Debug)]
pub struct FileRepl {
    pub replid: Option<String>,
    pub offset: Option<u64>,
    pub stream_db: usize,
}

impl FileRepl {
    /// Takes one AUX field.
    pub fn aux(&mut self, k: &[u8], v: &[u8]) {
        match k {
            b"repl-id" if v.len() == 40 => self.replid = Some(String::from_utf8_lossy(v).into()),
            b"repl-offset" => self.offset = protocol::number::parse_i64(v).map(|o| o.max(0) as u64),
            b"repl-stream-db" => {
                self.stream_db = protocol::number::parse_i64(v).unwrap_or(0).max(0) as usize
            }
            _ => {}
        }
    }
}

/// The replica side's state.
#[derive(Default)]
pub struct Link {
    /// Our master (`None`: we are a master).
    master: Mutex<Option<(String, u16)>>,
    /// Set while we are a replica: the command gate's one load.
    pub is_replica: AtomicBool,
    /// Bumped by every REPLICAOF: a link task of an older one ends.
    generation: AtomicU64,
    /// Woken with each bump (a link waiting on its master notices at once).
    changed: tokio::sync::Notify,
    /// Held by a link task for its life: the next one starts only once the
    /// previous one has ended (never two links applying or loading).
    task: tokio::sync::Mutex<()>,
    /// Held while REPLICAOF switches roles (two at once would shift the
    /// IDs twice).
    switching: Mutex<()>,
    pub state: AtomicU8,
    /// When the link went down (unix ms; 0 = never up).
    pub down_since_ms: AtomicU64,
    /// Last byte from the master (unix ms).
    pub last_io_ms: AtomicU64,
    /// The full sync's payload: its size (-1 while unknown, as with
    /// `$EOF:`) and what was read of it.
    pub transfer_size: AtomicI64,
    pub transfer_read: AtomicU64,
    /// Bytes of the stream read, applied or not (`slave_read_repl_offset`).
    pub read_offset: AtomicU64,
    /// The DB the master's stream is in (the master client's), for the
    /// `repl-stream-db` of our snapshots.
    stream_db: AtomicUsize,
    /// Held while one command of the master's stream runs and its bytes
    /// are relayed, and while a snapshot point is taken: a snapshot is
    /// never between a change and its relayed bytes.
    apply: Mutex<()>,
    /// PSYNC continues our history (`<replid> <offset+1>`) rather than
    /// asking `? -1`: false only for a replica started with no data.
    history: AtomicBool,
    /// The replication fields of the last RDB loaded.
    file: Mutex<FileRepl>,
    /// The master client, while the link streams (CLIENT KILL TYPE master).
    client: Mutex<Option<Arc<ClientInfo>>>,
    /// Set for a master's start-up load: it takes up its RDB's history
    /// (persist/rdb.rs, [`super::Repl::restore_history`]).
    pub restoring: AtomicBool,
}

impl Link {
    #[inline]
    pub fn is_replica(&self) -> bool {
        self.is_replica.load(Relaxed)
    }

    pub fn master(&self) -> Option<(String, u16)> {
        self.master
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn stream_db(&self) -> usize {
        self.stream_db.load(Relaxed)
    }

    /// Held around a snapshot point (see `apply`).
    pub fn hold_apply(&self) -> MutexGuard<'_, ()> {
        self.apply.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Link::hold_apply`] if it is free now.
    pub fn try_hold_apply(&self) -> Option<MutexGuard<'_, ()>> {
        match self.apply.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    pub fn set_file_repl(&self, f: FileRepl) {
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// Whether our data continues a replication history: always on a
    /// master; on a replica, once a sync succeeded (or its RDB said so).
    pub fn has_history(&self) -> bool {
        !self.is_replica() || self.history.load(Relaxed)
    }

    /// Whether the link is up (`master_link_status:up`).
    pub fn up(&self) -> bool {
        self.state.load(Relaxed) == CONNECTED
    }

    /// The master client's link, if it streams.
    pub fn master_client(&self) -> Option<Arc<ClientInfo>> {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What REPLICAOF did.
pub enum Changed {
    Ok,
    AlreadyConnected,
}

/// REPLICAOF host port | NO ONE (and `replicaof` at start-up).
pub fn set_master(srv: &Arc<Server>, target: Option<(String, u16)>) -> Changed {
    let link = &srv.repl.link;
    let _one = link.switching.lock().unwrap_or_else(|p| p.into_inner());
    let was = link.master();
    if target.is_some() && target == was {
        return Changed::AlreadyConnected;
    }
    *link.master.lock().unwrap_or_else(|p| p.into_inner()) = target.clone();
    srv.config_mut().replicaof = target.clone();
    let generation = link.generation.fetch_add(1, Relaxed) + 1;
    link.changed.notify_waiters();
    if let Some(c) = link.master_client() {
        c.kill();
    }
    match target {
        None => {
            if was.is_none() {
                return Changed::Ok;
            }
            // Promoted: a history of our own, which continues our old
            // master's (its ID becomes our second one).
            link.is_replica.store(false, Relaxed);
            srv.repl.refresh_gate();
            link.state.store(CONNECT, Relaxed);
            srv.repl.shift_ids(srv.prop.repl_offset());
            srv.prop.set_relay(false);
            // Our replicas reconnect to learn the new ID (and continue).
            srv.prop.drop_consumers();
            notice!("MASTER MODE enabled (user request from 'id=?')");
        }
        Some((host, port)) => {
            if was.is_none() {
                // A master turned replica offers its own history to its new
                // master (Redis' `replicationCacheMasterUsingMyself`).
                link.history.store(true, Relaxed);
                srv.prop.set_relay(true);
            }
            link.is_replica.store(true, Relaxed);
            srv.repl.refresh_gate();
            link.state.store(CONNECT, Relaxed);
            notice!("Connecting to MASTER {host}:{port}");
            let srv2 = srv.clone();
            tokio::spawn(async move { run(srv2, generation).await });
        }
    }
    Changed::Ok
}

/// At start-up with `replicaof` set: a replica whose RDB carries a
/// replication ID and offset continues from them (PSYNC2 after a
/// restart).
pub fn start(srv: &Arc<Server>, master: (String, u16), loaded_rdb: bool) {
    let link = &srv.repl.link;
    if loaded_rdb {
        let f = link.file.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let (Some(id), Some(off)) = (f.replid, f.offset) {
            srv.repl.adopt_id(&id);
            srv.prop.new_history(off);
            link.stream_db.store(f.stream_db, Relaxed);
            link.history.store(true, Relaxed);
            notice!("Cached master info: replid {id}, offset {off}");
        }
    }
    srv.prop.set_relay(true);
    *link.master.lock().unwrap_or_else(|p| p.into_inner()) = Some(master.clone());
    link.is_replica.store(true, Relaxed);
    srv.repl.refresh_gate();
    let generation = link.generation.fetch_add(1, Relaxed) + 1;
    notice!("Connecting to MASTER {}:{}", master.0, master.1);
    let srv2 = srv.clone();
    tokio::spawn(async move { run(srv2, generation).await });
}

/// The link task of one REPLICAOF: connects, syncs and streams, again a
/// second after each failure, until another REPLICAOF.
async fn run(srv: Arc<Server>, generation: u64) {
    let link = &srv.repl.link;
    let _only = link.task.lock().await;
    loop {
        if link.generation.load(Relaxed) != generation {
            return;
        }
        let Some((host, port)) = link.master() else {
            return;
        };
        link.state.store(CONNECTING, Relaxed);
        let r = session(&srv, generation, &host, port).await;
        if link.generation.load(Relaxed) != generation {
            return;
        }
        link.state.store(CONNECT, Relaxed);
        if link.down_since_ms.load(Relaxed) == 0 || r.is_ok() {
            link.down_since_ms.store(now_ms(), Relaxed);
        }
        match r {
            Ok(()) => notice!("Connection with master lost."),
            Err(why) => warning!("{why}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection to the master: `Err` says why it ended.
async fn session(srv: &Arc<Server>, generation: u64, host: &str, port: u16) -> Result<(), String> {
    let link = &srv.repl.link;
    let timeout = Duration::from_secs(srv.config().repl_timeout.max(1) as u64);
    let s = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("Error condition on socket for SYNC: {e}")),
        Err(_) => return Err("Timeout connecting to the MASTER...".into()),
    };
    let _ = s.set_nodelay(true);
    notice!("MASTER <-> REPLICA sync started");
    link.last_io_ms.store(now_ms(), Relaxed);
    link.state.store(HANDSHAKE, Relaxed);
    let mut io = Io {
        s,
        buf: Vec::with_capacity(64 * 1024),
        timeout,
        srv: srv.clone(),
        generation,
    };
    // The handshake (Redis' order).
    let pong = io.command(&[b"PING"]).await?;
    if pong.starts_with(b"-")
        && !pong.starts_with(b"-NOAUTH")
        && !pong.starts_with(b"-NOPERM")
        && !pong.starts_with(b"-ERR operation not permitted")
    {
        return Err(format!(
            "Error reply to PING from master: '{}'",
            String::from_utf8_lossy(&pong[1..])
        ));
    }
    notice!("Master replied to PING, replication can continue...");
    let (auth, user, announce_ip, announce_port, own_port) = {
        let c = srv.config();
        (
            c.masterauth.clone(),
            c.masteruser.clone(),
            c.replica_announce_ip.clone(),
            c.replica_announce_port,
            srv.port.load(Relaxed),
        )
    };
    if !auth.is_empty() {
        let r = if user.is_empty() {
            io.command(&[b"AUTH".as_slice(), auth.as_bytes()]).await?
        } else {
            io.command(&[b"AUTH".as_slice(), user.as_bytes(), auth.as_bytes()])
                .await?
        };
        if r.starts_with(b"-") {
            return Err(format!(
                "Unable to AUTH to MASTER: {}",
                String::from_utf8_lossy(&r)
            ));
        }
    }
    let lport = if announce_port > 0 {
        announce_port as u64
    } else {
        own_port
    };
    let mut ib = itoa::Buffer::new();
    let r = io
        .command(&[
            b"REPLCONF".as_slice(),
            b"listening-port",
            ib.format(lport).as_bytes(),
        ])
        .await?;
    if r.starts_with(b"-") {
        notice!(
            "(Non critical) Master does not understand REPLCONF listening-port: {}",
            String::from_utf8_lossy(&r)
        );
    }
    if !announce_ip.is_empty() {
        let r = io
            .command(&[
                b"REPLCONF".as_slice(),
                b"ip-address",
                announce_ip.as_bytes(),
            ])
            .await?;
        if r.starts_with(b"-") {
            notice!(
                "(Non critical) Master does not understand REPLCONF ip-address: {}",
                String::from_utf8_lossy(&r)
            );
        }
    }
    let r = io
        .command(&[b"REPLCONF".as_slice(), b"capa", b"eof", b"capa", b"psync2"])
        .await?;
    if r.starts_with(b"-") {
        notice!(
            "(Non critical) Master does not understand REPLCONF capa: {}",
            String::from_utf8_lossy(&r)
        );
    }
    // PSYNC: our history, or none.
    let (replid, offset) = if link.history.load(Relaxed) {
        (srv.repl.replid(), (srv.prop.repl_offset() + 1) as i64)
    } else {
        ("?".to_string(), -1)
    };
    if replid != "?" {
        notice!("Trying a partial resynchronization (request {replid}:{offset}).");
    }
    // The old master of a coordinated failover asks its target to take
    // over (failover.rs).
    let failing_over = super::failover::state(srv) == super::failover::IN_PROGRESS;
    let mut psync: Vec<&[u8]> = vec![b"PSYNC", replid.as_bytes(), ib.format(offset).as_bytes()];
    if failing_over {
        psync.push(b"FAILOVER");
    }
    let r = io.command(&psync).await?;
    if link.generation.load(Relaxed) != generation {
        return Ok(());
    }
    if failing_over {
        if r.starts_with(b"+CONTINUE") || r.starts_with(b"+FULLRESYNC") {
            super::failover::clear(srv);
        } else {
            super::failover::abort(srv, "Failover target rejected psync request");
            return Err(format!(
                "Failover target rejected psync request: {}",
                String::from_utf8_lossy(&r)
            ));
        }
    }
    let start_db;
    if let Some(rest) = r.strip_prefix(b"+CONTINUE") {
        let new_id = String::from_utf8_lossy(rest).trim().to_string();
        notice!("Successful partial resynchronization with master.");
        if !new_id.is_empty() && new_id != srv.repl.replid() {
            // Our master was promoted: its ID is new, our old one stays
            // valid up to here; our replicas learn it by reconnecting.
            srv.repl.continue_as(&new_id, srv.prop.repl_offset());
            srv.prop.drop_consumers();
            notice!("Master replication ID changed to {new_id}");
        }
        notice!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
        start_db = link.stream_db();
    } else if let Some(rest) = r.strip_prefix(b"+FULLRESYNC") {
        let mut it = std::str::from_utf8(rest).unwrap_or("").split_whitespace();
        let (id, off) = match (it.next(), it.next().and_then(|o| o.parse::<u64>().ok())) {
            (Some(id), Some(off)) if id.len() == 40 => (id.to_string(), off),
            _ => return Err("Master replied with wrong +FULLRESYNC syntax.".into()),
        };
        notice!("Full resync from master: {id}:{off}");
        start_db = full_sync(srv, &mut io, &id, off).await?;
    } else if r.starts_with(b"-NOMASTERLINK") || r.starts_with(b"-LOADING") {
        return Err(format!(
            "Master is currently unable to PSYNC but should be in the future: {}",
            String::from_utf8_lossy(&r)
        ));
    } else if r.starts_with(b"-") {
        // An old master: SYNC (the payload with no ID or offset).
        notice!(
            "Master does not support PSYNC or is in error state (reply: {})",
            String::from_utf8_lossy(&r)
        );
        io.send(&[b"SYNC"]).await?;
        let id: String = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
            .collect();
        start_db = full_sync(srv, &mut io, &id, 0).await?;
    } else {
        return Err(format!(
            "Unexpected reply to PSYNC from master: {}",
            String::from_utf8_lossy(&r)
        ));
    }
    link.history.store(true, Relaxed);
    stream(srv, generation, io, start_db).await
}

/// The connection while handshaking: commands and their one-line replies.
struct Io {
    s: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
    srv: Arc<Server>,
    /// The REPLICAOF this link serves: another one ends it.
    generation: u64,
}

impl Io {
    async fn send(&mut self, argv: &[&[u8]]) -> Result<(), String> {
        let mut out = Vec::with_capacity(64);
        crate::propagate::encode(&mut out, argv);
        self.s
            .write_all(&out)
            .await
            .map_err(|e| format!("Error writing to MASTER: {e}"))
    }

    async fn command(&mut self, argv: &[&[u8]]) -> Result<Vec<u8>, String> {
        self.send(argv).await?;
        self.line().await
    }

    async fn fill(&mut self) -> Result<(), String> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        let link = &self.srv.repl.link;
        let changed = link.changed.notified();
        if link.generation.load(Relaxed) != self.generation {
            return Err("Replication reconfigured: this link ends".into());
        }
        tokio::select! {
            r = tokio::time::timeout(self.timeout, self.s.read_buf(&mut self.buf)) => match r {
                Ok(Ok(0)) => Err("Master closed the connection".into()),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("Error reading from MASTER: {e}")),
                Err(_) => Err("Timeout reading from MASTER".into()),
            },
            _ = changed => Err("Replication reconfigured: this link ends".into()),
        }
    }

    /// One reply line, skipping the newlines a master sends to keep the
    /// link alive while it prepares the payload.
    async fn line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.is_empty() {
                    continue;
                }
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err("Master sent a line too long".into());
            }
            self.fill().await?;
        }
    }
}

/// Where the payload's end is: its size (`$<len>`), or the mark that
/// follows it (`$EOF:<mark>`, diskless).
enum Framing {
    Size { left: u64 },
    Mark { mark: Vec<u8>, carry: Vec<u8> },
}

impl Framing {
    /// The next bytes of the payload (`None` once it is complete). Bytes
    /// that follow it stay in `io.buf` for the stream.
    async fn next(&mut self, io: &mut Io) -> Result<Option<Vec<u8>>, String> {
        loop {
            match self {
                Framing::Size { left } => {
                    if *left == 0 {
                        return Ok(None);
                    }
                    if io.buf.is_empty() {
                        io.fill().await?;
                    }
                    let take = io.buf.len().min(*left as usize);
                    *left -= take as u64;
                    return Ok(Some(io.buf.drain(..take).collect()));
                }
                Framing::Mark { mark, carry } => {
                    if mark.is_empty() {
                        return Ok(None);
                    }
                    if io.buf.is_empty() {
                        io.fill().await?;
                    }
                    // What was held back (it could have been the mark's
                    // start), then what came.
                    let mut data = std::mem::take(carry);
                    data.extend_from_slice(&io.buf);
                    io.buf.clear();
                    if let Some(i) = data.windows(mark.len()).position(|w| w == mark.as_slice()) {
                        io.buf.extend_from_slice(&data[i + mark.len()..]);
                        data.truncate(i);
                        mark.clear();
                        return Ok(Some(data));
                    }
                    let keep = (mark.len() - 1).min(data.len());
                    *carry = data.split_off(data.len() - keep);
                    if !data.is_empty() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// The full sync's payload, loaded in place of our data: through a temp
/// file that becomes our RDB (`repl-diskless-load disabled`), or straight
/// from the socket when our data is empty (`on-empty-db`). Returns the
/// stream's DB.
async fn full_sync(
    srv: &Arc<Server>,
    io: &mut Io,
    replid: &str,
    offset: u64,
) -> Result<usize, String> {
    let link = &srv.repl.link;
    let generation = io.generation;
    let line = io.line().await?;
    if line.starts_with(b"-") {
        return Err(format!(
            "MASTER aborted replication with an error: {}",
            String::from_utf8_lossy(&line[1..])
        ));
    }
    if line.first() != Some(&b'$') {
        return Err(format!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{}'), are you sure the host and port are right?",
            String::from_utf8_lossy(&line)
        ));
    }
    let (mut framing, size) = match line.strip_prefix(b"$EOF:") {
        Some(m) if m.len() == 40 => (
            Framing::Mark {
                mark: m.to_vec(),
                carry: Vec::new(),
            },
            None,
        ),
        _ => {
            let n = protocol::number::parse_i64(&line[1..])
                .filter(|n| *n >= 0)
                .ok_or("Bad payload size from MASTER")?;
            (Framing::Size { left: n as u64 }, Some(n as u64))
        }
    };
    let empty = (0..srv.ks.db_count()).all(|i| srv.ks.db(i).is_none_or(|d| d.is_empty()));
    let direct = srv.config().repl_diskless_load == DISKLESS_LOAD_ON_EMPTY_DB && empty;
    let to = if direct { "memory" } else { "disk" };
    match size {
        Some(n) => notice!("MASTER <-> REPLICA sync: receiving {n} bytes from master to {to}"),
        None => {
            notice!("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to {to}")
        }
    }
    link.state.store(TRANSFER, Relaxed);
    link.transfer_size
        .store(size.map_or(-1, |n| n as i64), Relaxed);
    link.transfer_read.store(0, Relaxed);
    let mut read = 0u64;
    if direct {
        // The loader reads on a thread of its own what this task receives.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        let srv2 = srv.clone();
        let replid2 = replid.to_string();
        let loader = tokio::task::spawn_blocking(move || {
            load(
                &srv2,
                generation,
                Source::Stream(Box::new(ChannelReader {
                    rx,
                    cur: Vec::new(),
                    at: 0,
                })),
                &replid2,
                offset,
            )
        });
        let mut fed = Ok(());
        loop {
            match framing.next(io).await {
                Ok(Some(chunk)) => {
                    read += chunk.len() as u64;
                    link.transfer_read.store(read, Relaxed);
                    link.last_io_ms.store(now_ms(), Relaxed);
                    let tx = tx.clone();
                    // (A full channel blocks: the loader paces the socket.)
                    if tokio::task::spawn_blocking(move || tx.send(chunk))
                        .await
                        .map_or(true, |r| r.is_err())
                    {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    fed = Err(e);
                    break;
                }
            }
        }
        drop(tx);
        let loaded = while_loading(io, loader).await?;
        fed?;
        let db = loaded?;
        notice!("MASTER <-> REPLICA sync: Finished with success");
        return Ok(db);
    }
    use std::io::Write;
    let tmp = format!(
        "temp-{}.{}.rdb",
        crate::persist::unix_secs(),
        std::process::id()
    );
    let mut f = std::fs::File::create(&tmp).map_err(|e| {
        format!("Opening the temp file needed for MASTER <-> REPLICA synchronization: {e}")
    })?;
    let fail = |tmp: &str, e: String| {
        let _ = std::fs::remove_file(tmp);
        e
    };
    loop {
        let chunk = match framing.next(io).await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(fail(&tmp, e)),
        };
        link.last_io_ms.store(now_ms(), Relaxed);
        if let Err(e) = f.write_all(&chunk) {
            return Err(fail(
                &tmp,
                format!(
                    "Write error or short write writing to the DB dump file needed for MASTER <-> REPLICA synchronization: {e}"
                ),
            ));
        }
        read += chunk.len() as u64;
        link.transfer_read.store(read, Relaxed);
    }
    if let Err(e) = f.sync_all() {
        return Err(fail(
            &tmp,
            format!(
                "Failed trying to sync the temp DB to disk in MASTER <-> REPLICA synchronization: {e}"
            ),
        ));
    }
    drop(f);
    notice!("MASTER <-> REPLICA sync: Flushing old data");
    let target = srv.config().dbfilename.clone();
    if let Err(e) = std::fs::rename(&tmp, &target) {
        return Err(fail(
            &tmp,
            format!(
                "Failed trying to rename the temp DB into {target} in MASTER <-> REPLICA synchronization: {e}"
            ),
        ));
    }
    let srv2 = srv.clone();
    let replid2 = replid.to_string();
    let loader = tokio::task::spawn_blocking(move || {
        load(&srv2, generation, Source::File(target), &replid2, offset)
    });
    let loaded = while_loading(io, loader).await?;
    let db = loaded?;
    notice!("MASTER <-> REPLICA sync: Finished with success");
    Ok(db)
}

/// Waits for the load, sending our master a newline every second
/// meanwhile (Redis' `replicationSendNewlineToMaster`: the master's
/// `repl-timeout` sees a replica that loads, not a dead one).
async fn while_loading<T>(
    io: &mut Io,
    mut loader: tokio::task::JoinHandle<T>,
) -> Result<T, String> {
    loop {
        tokio::select! {
            r = &mut loader => return r.map_err(|_| "the load failed".to_string()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let _ = io.s.write_all(b"\n").await;
            }
        }
    }
}

/// `repl-diskless-load on-empty-db` (the config's enum value).
const DISKLESS_LOAD_ON_EMPTY_DB: i64 = 1;

/// What the loader reads: our RDB file, or the payload as it arrives.
enum Source {
    File(String),
    Stream(Box<dyn std::io::Read + Send>),
}

/// The payload's chunks, as a reader (the loader's thread blocks on the
/// channel while the link task receives).
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Replaces our data with the RDB `path` (clients get `-LOADING`
/// meanwhile) and takes the master's history. Returns the stream's DB.
fn load(
    srv: &Arc<Server>,
    generation: u64,
    src: Source,
    replid: &str,
    offset: u64,
) -> Result<usize, String> {
    srv.persist.begin_loading();
    // (Clients get -LOADING from here on, REPLICAOF included: the last
    // moment another one can have come.)
    if srv.repl.link.generation.load(Relaxed) != generation {
        srv.persist.end_loading();
        return Err("Replication reconfigured before the load".into());
    }
    let aof = srv.config().appendonly;
    if aof {
        // The AOF restarts from the new data (Redis' restartAOFAfterSYNC).
        crate::persist::aof::turn_off(srv);
    }
    // No snapshot while the data is replaced: one running stops (Redis
    // kills its child), none starts until the load ends.
    srv.persist.claim_first(srv);
    notice!("MASTER <-> REPLICA sync: Loading DB in memory");
    // Our replicas, of another history, sync again.
    srv.prop.new_history(offset);
    for i in 0..srv.ks.db_count() {
        srv.ks.flush_db(i);
    }
    // The master's functions replace ours (they come in its RDB).
    srv.functions.flush();
    let r = match src {
        Source::File(path) => {
            if let Ok(md) = std::fs::metadata(&path) {
                srv.persist.loading.set_total(md.len());
            }
            crate::persist::rdb::load_file(srv, &path, false)
        }
        Source::Stream(rd) => crate::persist::rdb::load_from(srv, rd, false)
            .map(|(keys, expired, _)| Some((keys, expired))),
    };
    // The master's history is ours only with its data: a failed load
    // leaves no history (the next PSYNC asks `? -1`), so nothing can
    // continue on an empty or partial dataset.
    let db = srv
        .repl
        .link
        .file
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .stream_db;
    let loaded = matches!(r, Ok(Some(_)));
    // (A role switch that slipped in just before the load keeps the IDs it
    // set: the master's are no longer ours to take.)
    let current = srv.repl.link.generation.load(Relaxed) == generation;
    if loaded && current {
        srv.repl.adopt_id(replid);
        srv.repl.link.stream_db.store(db, Relaxed);
    } else if !loaded {
        for i in 0..srv.ks.db_count() {
            srv.ks.flush_db(i);
        }
        srv.functions.flush();
        srv.repl.link.history.store(false, Relaxed);
    }
    srv.persist.saving.store(false, Relaxed);
    srv.persist.end_loading();
    if aof && let Err(e) = crate::persist::aof::turn_on(srv, false) {
        warning!("Failed enabling the AOF after successful master synchronization! {e}");
    }
    match r {
        Ok(Some((keys, expired))) => {
            srv.persist.set_loaded(keys, expired);
            notice!("Done loading RDB, keys loaded: {keys}, keys expired: {expired}.");
            Ok(db)
        }
        _ => Err("Failed trying to load the MASTER synchronization DB from disk".into()),
    }
}

/// The master's stream, until the link ends.
async fn stream(srv: &Arc<Server>, generation: u64, io: Io, db: usize) -> Result<(), String> {
    let link = &srv.repl.link;
    let Io {
        mut s,
        mut buf,
        timeout,
        ..
    } = io;
    let (host, port) = link.master().unwrap_or_default();
    let id = srv.next_client_id.fetch_add(1, Relaxed);
    let laddr = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let info = Arc::new(ClientInfo::new(
        id,
        format!("{host}:{port}"),
        laddr,
        -1,
        now_ms(),
    ));
    info.master.store(true, Relaxed);
    srv.clients.add(info.clone());
    *link.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
    let mut client = Client::new(info.clone(), true);
    client.from_master = true;
    client.select(db);
    link.state.store(CONNECTED, Relaxed);
    link.down_since_ms.store(0, Relaxed);
    link.last_io_ms.store(now_ms(), Relaxed);
    link.read_offset.store(srv.prop.repl_offset(), Relaxed);
    let r = apply_loop(srv, generation, &mut s, &mut buf, &mut client, timeout).await;
    *link.client.lock().unwrap_or_else(|p| p.into_inner()) = None;
    crate::multi::unwatch_all(srv, &mut client);
    srv.clients.remove(id);
    r
}

async fn apply_loop(
    srv: &Arc<Server>,
    generation: u64,
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    client: &mut Client,
    timeout: Duration,
) -> Result<(), String> {
    let link = &srv.repl.link;
    let mut parser = RequestParser::new();
    let limits = Limits {
        max_bulk: srv.config().proto_max_bulk_len,
        unauthenticated: false,
    };
    let mut out = protocol::resp::Reply::new();
    // A transaction's bytes are relayed whole, at its EXEC.
    let mut tx = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    send_ack(s, srv).await?;
    loop {
        let mut pos = 0;
        let mut ack_now = false;
        loop {
            let rest = &buf[pos..];
            if rest.len() < parser.needed() {
                break;
            }
            let mut acked = false;
            // One hold of the apply lock for the command, its relayed bytes
            // and the stream's DB: a snapshot point is never in between.
            let applying = link.hold_apply();
            if link.generation.load(Relaxed) != generation {
                // Another REPLICAOF: not one more command of this master.
                return Ok(());
            }
            let r = super::next_command(&mut parser, rest, limits, |argv| {
                let _relayed = crate::propagate::Relayed::enter();
                let now = now_ms();
                crate::exec::execute(srv, client, &mut out, now, argv);
                if out.buf.first() == Some(&b'-') {
                    warning!(
                        "== CRITICAL == This replica is sending an error to its master: '{}' after processing the command '{}'",
                        String::from_utf8_lossy(out.buf.strip_suffix(b"\r\n").unwrap_or(&out.buf)),
                        String::from_utf8_lossy(argv[0])
                    );
                }
                out.buf.clear();
                acked = std::mem::take(&mut client.ack_requested);
            });
            let n = match r {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(super::ProtocolError) => return Err("Protocol error from MASTER".into()),
            };
            ack_now |= acked;
            if client.multi.is_some() {
                tx.extend_from_slice(&rest[..n]);
            } else if tx.is_empty() {
                srv.prop.feed(&rest[..n]);
            } else {
                tx.extend_from_slice(&rest[..n]);
                srv.prop.feed(&tx);
                tx.clear();
            }
            link.stream_db.store(client.db, Relaxed);
            drop(applying);
            pos += n;
        }
        buf.drain(..pos);
        if ack_now {
            send_ack(s, srv).await?;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            n = s.read_buf(buf) => match n {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    link.last_io_ms.store(now_ms(), Relaxed);
                    link.read_offset.fetch_add(n as u64, Relaxed);
                    srv.stats.net_repl_input_bytes.fetch_add(n as u64, Relaxed);
                }
                Err(e) => return Err(format!("Error reading from MASTER: {e}")),
            },
            _ = tick.tick() => {
                if link.generation.load(Relaxed) != generation {
                    return Ok(());
                }
                let idle = now_ms().saturating_sub(link.last_io_ms.load(Relaxed));
                if idle > timeout.as_millis() as u64 {
                    return Err("MASTER timeout: no data nor PING received...".into());
                }
                send_ack(s, srv).await?;
            }
            _ = client.info.kill.notified() => return Ok(()),
        }
    }
}

/// `REPLCONF ACK <offset>`: what we applied of the stream.
async fn send_ack(s: &mut TcpStream, srv: &Server) -> Result<(), String> {
    let mut out = Vec::with_capacity(64);
    let mut ib = itoa::Buffer::new();
    crate::propagate::encode(
        &mut out,
        &[
            b"REPLCONF".as_slice(),
            b"ACK",
            ib.format(srv.prop.repl_offset()).as_bytes(),
        ],
    );
    s.write_all(&out)
        .await
        .map_err(|e| format!("Error writing to MASTER: {e}"))
}

/// The command gate on a replica (Redis' processCommand): writes are
/// refused by `replica-read-only`, and with the link down and
/// `replica-serve-stale-data no` every command without the `stale` flag.
#[cold]
pub fn refusal(srv: &Server, spec: &protocol::command::CommandSpec) -> Option<&'static str> {
    use protocol::command::flags;
    let c = srv.config();
    if !srv.repl.link.up() && !c.replica_serve_stale_data && !spec.has(flags::STALE) {
        return Some(crate::errors::MASTERDOWN);
    }
    if c.replica_read_only && spec.has(flags::WRITE) {
        return Some(crate::errors::READONLY_REPLICA);
    }
    None
}
