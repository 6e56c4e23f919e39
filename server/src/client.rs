//! Per-connection state: the private part the connection owns ([`Client`]) and
//! the shared part other connections read for CLIENT LIST/INFO/KILL
//! ([`ClientInfo`]), plus the registry of live clients.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// What other connections may see or change about a client.
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i64,
    pub created_ms: u64,
    pub name: Mutex<Vec<u8>>,
    pub lib_name: Mutex<Vec<u8>>,
    pub lib_ver: Mutex<Vec<u8>>,
    pub db: AtomicUsize,
    pub resp: AtomicU8,
    /// Table index + 1 of the last command (0 = none).
    pub last_cmd: AtomicUsize,
    pub last_interaction_ms: AtomicU64,
    pub qbuf: AtomicUsize,
    pub qbuf_free: AtomicUsize,
    /// Undelivered mailbox bytes (pub/sub messages, invalidations).
    pub omem: AtomicUsize,
    /// Reply bytes the client has not taken yet while the connection waits
    /// for its socket to drain (net/mod.rs); 0 between batches.
    pub reply_pending: AtomicUsize,
    /// Capacity of the connection's read and reply buffers (`tot-mem`).
    pub buf_mem: AtomicUsize,
    pub no_evict: AtomicBool,
    /// The ACL user's name (CLIENT LIST `user=`).
    pub user: Mutex<Vec<u8>>,
    pub killed: AtomicBool,
    pub kill: tokio::sync::Notify,
    pub authenticated: AtomicBool,
    pub multi: AtomicBool,
    /// Waiting in a blocking command (CLIENT LIST flag `b`).
    pub blocked: AtomicBool,
    /// In MONITOR mode (monitor.rs).
    pub monitor: AtomicBool,
    /// A replica's link (repl/): CLIENT LIST flag `S`, TYPE replica.
    pub replica: AtomicBool,
    /// Our master's link (repl/replica.rs): flag `M`, TYPE master.
    pub master: AtomicBool,
    /// Commands queued in the current MULTI (CLIENT LIST `multi=`).
    pub queued: AtomicUsize,
    /// A key this client WATCHes changed: its next EXEC fails.
    pub dirty_cas: AtomicBool,
    /// Subscription counts packed as channels | patterns << 20 | shard << 40
    /// (0 = not in pub/sub context).
    pub subs: AtomicUsize,
    /// The mailbox: bytes other tasks deliver (pub/sub messages), written
    /// by the connection loop between reply batches.
    pub outbox: Mutex<Vec<u8>>,
    /// Wakes the connection loop when the mailbox gets mail.
    pub mail: tokio::sync::Notify,
    /// When the output first went over the soft limit (unix ms, 0 = under).
    pub soft_since_ms: AtomicU64,
    /// CLIENT TRACKING state (tracking.rs).
    pub tracking: crate::tracking::ClientState,
}

impl ClientInfo {
    pub fn new(id: u64, addr: String, laddr: String, fd: i64, now_ms: u64) -> Self {
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            created_ms: now_ms,
            name: Mutex::new(Vec::new()),
            lib_name: Mutex::new(Vec::new()),
            lib_ver: Mutex::new(Vec::new()),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            last_cmd: AtomicUsize::new(0),
            last_interaction_ms: AtomicU64::new(now_ms),
            qbuf: AtomicUsize::new(0),
            qbuf_free: AtomicUsize::new(0),
            omem: AtomicUsize::new(0),
            reply_pending: AtomicUsize::new(0),
            buf_mem: AtomicUsize::new(0),
            no_evict: AtomicBool::new(false),
            user: Mutex::new(b"default".to_vec()),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
            authenticated: AtomicBool::new(false),
            multi: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            dirty_cas: AtomicBool::new(false),
            subs: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            monitor: AtomicBool::new(false),
            replica: AtomicBool::new(false),
            master: AtomicBool::new(false),
            outbox: Mutex::new(Vec::new()),
            mail: tokio::sync::Notify::new(),
            soft_since_ms: AtomicU64::new(0),
            tracking: Default::default(),
        }
    }

    /// Asks the connection to close (CLIENT KILL, shutdown).
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill.notify_one();
    }

    /// Appends `bytes` to the mailbox and wakes the connection; the pending
    /// output (`omem`) grows by as much. Returns the new pending size.
    pub fn deliver(&self, bytes: &[u8]) -> usize {
        if self.killed.load(Relaxed) {
            return 0;
        }
        let mut b = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let was_empty = b.is_empty();
        b.extend_from_slice(bytes);
        drop(b);
        let n = self.omem.fetch_add(bytes.len(), Relaxed) + bytes.len();
        if was_empty {
            self.mail.notify_one();
        }
        n
    }

    /// Enforces a `client-output-buffer-limit` class on `pending` bytes of
    /// undelivered mail: over the hard limit, or over the soft limit for
    /// soft-seconds, the client is killed (its mail dropped) and the event
    /// logged, as Redis' `checkClientOutputBufferLimits`.
    pub fn check_output_limit(&self, pending: usize, l: &crate::config::ClientBufferLimit) {
        let pending = pending as u64;
        let (hard, soft) = (l.hard_bytes, l.soft_bytes);
        let mut over = hard > 0 && pending >= hard;
        if !over && soft > 0 && pending >= soft {
            let now = crate::db::now_ms();
            let since = self.soft_since_ms.load(Relaxed);
            if since == 0 {
                // First time over the soft limit: the clock starts.
                self.soft_since_ms.store(now, Relaxed);
            } else if now.saturating_sub(since) / 1000 > l.soft_seconds.max(0) as u64 {
                over = true;
            }
        } else if soft > 0 && pending < soft {
            self.soft_since_ms.store(0, Relaxed);
        }
        if over && !self.killed.swap(true, Relaxed) {
            crate::warning!(
                "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                self.id,
                self.addr
            );
            self.kill.notify_one();
            // The unsent bytes go with the client.
            self.take_mail();
        }
    }

    /// Takes everything in the mailbox (the caller writes it, then lowers
    /// `omem` by its length).
    pub fn take_mail(&self) -> Vec<u8> {
        std::mem::take(&mut *self.outbox.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether the client is subscribed to anything (Redis' CLIENT_PUBSUB).
    #[inline]
    pub fn in_pubsub(&self) -> bool {
        self.subs.load(Relaxed) != 0
    }

    /// The `client-output-buffer-limit` class the client is held to
    /// (Redis 7.0's `getClientType`: subscribers are `pubsub`; everyone
    /// else, MONITOR clients included, `normal`).
    #[inline]
    pub fn limit_class(&self) -> usize {
        if self.in_pubsub() {
            crate::config::CLIENT_CLASS_PUBSUB
        } else {
            crate::config::CLIENT_CLASS_NORMAL
        }
    }

    /// [`ClientInfo::deliver`] held to the client's output-buffer limit
    /// class (`limits` is the configured table, by class).
    pub fn deliver_limited(&self, bytes: &[u8], limits: &[crate::config::ClientBufferLimit]) {
        let pending = self.deliver(bytes);
        if let Some(l) = limits.get(self.limit_class()) {
            self.check_output_limit(pending, l);
        }
    }

    /// Output the client has not taken yet: unsent replies plus mail.
    pub fn pending_output(&self) -> usize {
        self.reply_pending.load(Relaxed) + self.omem.load(Relaxed)
    }

    /// What the connection costs besides its pending output: its state and
    /// its buffers' capacity (CLIENT LIST `tot-mem`, INFO
    /// `mem_clients_normal`).
    pub fn fixed_mem(&self) -> usize {
        std::mem::size_of::<ClientInfo>()
            + std::mem::size_of::<Client>()
            + self.buf_mem.load(Relaxed)
            + self.name.lock().map_or(0, |n| n.capacity())
    }

    pub fn name(&self) -> Vec<u8> {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// CLIENT REPLY ON | OFF | SKIP (Redis' CLIENT_REPLY_OFF / _SKIP_NEXT / _SKIP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Set by CLIENT REPLY SKIP: the command after it is not answered.
    SkipNext,
    /// The current command is not answered.
    Skip,
}

/// State owned by the connection task.
pub struct Client {
    pub id: u64,
    pub db: usize,
    pub authenticated: bool,
    pub close_after_reply: bool,
    pub info: Arc<ClientInfo>,
    /// Set by a blocking command that could not be served yet (block.rs);
    /// the connection loop takes it and waits.
    pub block: Option<crate::block::BlockRequest>,
    /// Set by a command whose reply needs the network (migration); the
    /// connection loop awaits it before the next pipelined command.
    pub pending: Option<crate::migrate::Pending>,
    /// When the previous command of the current read batch ended: the next
    /// command's start for INFO commandstats, so a pipeline reads the clock
    /// once per command instead of twice (the connection loop clears it at
    /// every batch). [`crate::stats::mono_ns`]; 0 = not set.
    pub cmd_clock: u64,
    /// Inside MULTI: the queued commands.
    pub multi: Option<crate::multi::MultiState>,
    /// Keys this client WATCHes, as (db, key).
    pub watched: Vec<(usize, Vec<u8>)>,
    /// Running EXEC's commands: blocking commands do not block, replies of
    /// deferred work are not allowed.
    pub in_exec: bool,
    /// Commands run from a script (Redis' CLIENT_SCRIPT).
    pub in_script: bool,
    /// The key whose change re-runs this blocked command (stream waiters
    /// are served from that key alone, as Redis serves them).
    pub woken_by: Option<Vec<u8>>,
    /// Replays an AOF (DEBUG LOADAOF): its changes are not propagated.
    pub replaying: bool,
    /// Runs our master's stream (repl/replica.rs): past the read-only and
    /// persistence gates, keys never expired by it, no reply.
    pub from_master: bool,
    /// The ACL user this connection runs as (None: the server's default
    /// user).
    pub user: Option<Arc<crate::acl::UserCell>>,
    /// The check before this client's current command found memory over
    /// maxmemory with nothing left to evict (scripts refuse their writes
    /// that may grow memory: evict.rs).
    pub oom_at_start: bool,
    /// Set by `REPLCONF GETACK` from our master: ACK after this command.
    pub ack_requested: bool,
    /// The replication offset right after this client's last change
    /// (WAIT waits for replicas to acknowledge it).
    pub woff: u64,
    /// Channels, patterns and shard channels this client subscribes to.
    pub subs: crate::pubsub::ClientSubs,
    /// Changes the running command reported (`Ctx::changed`, `Ctx::dirty`):
    /// the gate propagates a command that changed something.
    pub call_dirty: u64,
    /// Entries the running command propagates instead of its own argv
    /// (`Ctx::propagate`), each with its DB; empty = its argv.
    pub prop: Vec<(usize, crate::propagate::Argv)>,
    /// CLIENT REPLY state: which replies the connection drops.
    pub reply: ReplyMode,
    /// The propagated entries of the running EXEC, emitted as one block.
    pub exec_prop: Vec<(usize, crate::propagate::Argv)>,
    /// Entries of `exec_prop` for one target only (a script's
    /// `redis.set_repl(REPL_AOF)` or `REPL_REPLICA`): (index, targets).
    pub exec_prop_to: Vec<(usize, u8)>,
    /// CLIENT CACHING and the invalidations owed after the running command
    /// (tracking.rs).
    pub tracking: crate::tracking::Local,
    /// `REPLCONF listening-port` (0 = not given).
    pub repl_listening_port: i64,
    /// `REPLCONF capa psync2`.
    pub repl_capa_psync2: bool,
    /// The replica announced `capa eof` (it takes a diskless transfer).
    pub repl_capa_eof: bool,
    /// `REPLCONF ip-address`: the address it is known by.
    pub repl_ip_address: Option<String>,
    /// Set by PSYNC / SYNC: the connection loop hands the connection to
    /// the replication code (repl/).
    pub sync: Option<crate::repl::SyncRequest>,
}

impl Client {
    /// Authenticated as `user` (AUTH, HELLO AUTH, SLOTSRESTORE-ASYNC-AUTH).
    pub fn log_in(&mut self, user: Arc<crate::acl::UserCell>) {
        *self.info.user.lock().unwrap_or_else(|p| p.into_inner()) = user.name.clone();
        self.user = Some(user);
        self.authenticated = true;
        self.info.authenticated.store(true, Relaxed);
    }

    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> Self {
        Client {
            id: info.id,
            db: 0,
            authenticated,
            user: None,
            close_after_reply: false,
            info,
            block: None,
            pending: None,
            cmd_clock: 0,
            multi: None,
            watched: Vec::new(),
            in_exec: false,
            in_script: false,
            woken_by: None,
            replaying: false,
            from_master: false,
            oom_at_start: false,
            ack_requested: false,
            woff: 0,
            subs: Default::default(),
            call_dirty: 0,
            prop: Vec::new(),
            exec_prop: Vec::new(),
            exec_prop_to: Vec::new(),
            reply: ReplyMode::On,
            tracking: Default::default(),
            repl_listening_port: 0,
            repl_capa_psync2: false,
            repl_capa_eof: false,
            repl_ip_address: None,
            sync: None,
        }
    }

    /// Whether the connection speaks RESP3.
    #[inline]
    pub fn info_resp3(&self) -> bool {
        self.info.resp.load(Relaxed) == 3
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.info.db.store(db, Relaxed);
    }
}

/// Live clients by id.
#[derive(Default)]
pub struct Registry {
    map: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    count: AtomicUsize,
}

impl Registry {
    pub fn add(&self, c: Arc<ClientInfo>) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.id, c);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn remove(&self, id: u64) {
        if self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .is_some()
        {
            self.count.fetch_sub(1, Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of all clients, ordered by id.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
}
