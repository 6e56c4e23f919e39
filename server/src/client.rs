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
    pub omem: AtomicUsize,
    pub no_evict: AtomicBool,
    pub killed: AtomicBool,
    pub kill: tokio::sync::Notify,
    pub authenticated: AtomicBool,
    pub multi: AtomicBool,
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
            no_evict: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
            authenticated: AtomicBool::new(false),
            multi: AtomicBool::new(false),
        }
    }

    /// Asks the connection to close (CLIENT KILL, shutdown).
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill.notify_one();
    }

    pub fn name(&self) -> Vec<u8> {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
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
    /// every batch).
    pub cmd_clock: Option<std::time::Instant>,
}

impl Client {
    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> Self {
        Client {
            id: info.id,
            db: 0,
            authenticated,
            close_after_reply: false,
            info,
            block: None,
            pending: None,
            cmd_clock: None,
        }
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
