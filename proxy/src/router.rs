//! The routing table: 1024 slots, each pointing at a backend (and maybe a
//! migrate-from server), published as an immutable snapshot (`arc-swap`) that
//! sessions read without locking; the backend connection pools; global stats.
//!
//! Slot switch (Codis' "fill", codis.md §3.5): the slots whose owner changes
//! are first published as *blocked*; the updater then waits until the
//! requests already dispatched on those slots are answered (per-slot
//! in-flight counters), and only then publishes the new owners. So no request
//! is answered by the old owner after the switch and none is reordered. A
//! `locked` slot stays blocked; requests wait on it at most
//! `slot_locked_timeout` (Codis waits forever).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::backend::{BackendConn, BackendOptions, Health, Inbox};
use crate::config::Config;
use crate::slots::{MAX_SLOTS, Slot};

/// Which backend connections a session uses: its DB and protocol (RESP3
/// sessions get their own connections, opened with `HELLO 3`, so every
/// reply reaches the client in the shape a Redis 7.0 server gives it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chan {
    pub db: usize,
    pub resp3: bool,
    /// Whose connections: 0 for the proxy's (`product_auth`), else a
    /// user's lane ([`crate::backend::user_lane`]).
    pub user: u16,
}

/// One lane's connections to a server: `[db * 2 + resp3][parallel index]`.
type Lane = Box<[std::sync::OnceLock<Vec<BackendConn>>]>;

/// All connections to one server: the proxy's lane, and one per user that
/// sessions authenticated as; made lazily.
pub struct BackendAddr {
    pub addr: String,
    dbs: Lane,
    /// `users[lane - 1]`, made on a user's first request to this server.
    users: Box<[std::sync::OnceLock<Lane>]>,
    parallel: usize,
    opts: Arc<BackendOptions>,
    eager: bool,
    /// The server's health (shared by the primary and replica pools).
    pub health: Arc<Health>,
}

impl BackendAddr {
    /// The connection for `db`, chosen by `seed` among the parallel ones (a
    /// session always uses the same one, so its requests stay ordered).
    pub fn conn(&self, ch: Chan, seed: u64) -> Option<&BackendConn> {
        let lane = match ch.user {
            0 => &self.dbs,
            u => self.users.get(u as usize - 1)?.get_or_init(|| {
                (0..self.dbs.len())
                    .map(|_| std::sync::OnceLock::new())
                    .collect()
            }),
        };
        let v = lane.get(ch.db * 2 + ch.resp3 as usize)?.get_or_init(|| {
            (0..self.parallel)
                .map(|_| {
                    BackendConn::spawn(
                        self.addr.clone(),
                        ch,
                        self.opts.clone(),
                        self.eager,
                        self.health.clone(),
                    )
                })
                .collect()
        });
        v.get((seed % v.len().max(1) as u64) as usize)
    }

    /// A usable connection for a replica read: made, connected, not stale.
    pub fn ready_conn(&self, ch: Chan, seed: u64) -> Option<&BackendConn> {
        let c = self.conn(ch, seed)?;
        let st = &c.state;
        (st.connected.load(Ordering::Relaxed)
            && !st.stale.load(Ordering::Relaxed)
            && !self.health.is_down())
        .then_some(c)
    }

    /// Whether any made connection is currently up (for stats).
    pub fn connected(&self) -> bool {
        let users = self.users.iter().filter_map(|l| l.get());
        std::iter::once(&self.dbs)
            .chain(users)
            .flat_map(|l| l.iter())
            .filter_map(|d| d.get())
            .flatten()
            .any(|c| c.state.connected.load(Ordering::Relaxed))
    }
}

/// One slot's routing entry in a snapshot.
#[derive(Clone, Default)]
pub struct Route {
    pub model: Slot,
    pub backend: Option<Arc<BackendAddr>>,
    pub migrate: Option<Arc<BackendAddr>>,
    /// Replica servers by preference bucket (`replica_groups`).
    pub replicas: Vec<Vec<Arc<BackendAddr>>>,
    /// Requests must wait (slot being switched, or `locked`).
    pub blocked: bool,
}

impl Route {
    fn same_owner(&self, other: &Route) -> bool {
        self.model.backend_addr == other.model.backend_addr
            && self.model.migrate_from == other.model.migrate_from
            && self.model.forward_method == other.model.forward_method
            && self.model.locked == other.model.locked
            && self.model.replica_groups == other.model.replica_groups
    }
}

/// An immutable routing snapshot.
#[derive(Clone)]
pub struct Table {
    pub slots: Vec<Route>,
}

/// Global counters (`/proxy/stats`).
pub struct Stats {
    pub ops_total: AtomicU64,
    pub ops_fails: AtomicU64,
    pub redis_errors: AtomicU64,
    /// Of those, `-OOM` replies (a backend over its maxmemory).
    pub redis_oom: AtomicU64,
    pub sessions_total: AtomicU64,
    pub sessions_alive: AtomicU64,
    /// Requests per second, recomputed every second from `ops_total`.
    pub qps: AtomicU64,
    /// Per command (index = `CmdId`, last = commands not in the table).
    pub cmds: Vec<CmdStat>,
}

/// One command's counters (`ops.cmd[]` of `/proxy/stats`).
#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    pub usecs: AtomicU64,
    pub fails: AtomicU64,
    pub redis_errtype: AtomicU64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            ops_total: AtomicU64::new(0),
            ops_fails: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            redis_oom: AtomicU64::new(0),
            sessions_total: AtomicU64::new(0),
            sessions_alive: AtomicU64::new(0),
            qps: AtomicU64::new(0),
            cmds: (0..=protocol::command::count())
                .map(|_| CmdStat::default())
                .collect(),
        }
    }

    /// Name of a per-command slot (upper case, as Codis' `opstr`).
    pub fn cmd_name(i: usize) -> String {
        protocol::command::COMMANDS
            .get(i)
            .map(|c| c.name.to_ascii_uppercase())
            .unwrap_or_else(|| "OTHER".into())
    }

    /// Zeroes the counters (admin `stats/reset`).
    pub fn reset(&self) {
        for c in [
            &self.ops_total,
            &self.ops_fails,
            &self.redis_errors,
            &self.redis_oom,
            &self.qps,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.sessions_total.store(
            self.sessions_alive.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        for c in &self.cmds {
            for a in [&c.calls, &c.usecs, &c.fails, &c.redis_errtype] {
                a.store(0, Ordering::Relaxed);
            }
        }
    }
}

pub struct Router {
    pub table: ArcSwap<Table>,
    pub online: AtomicBool,
    pub closed: AtomicBool,
    /// Live sessions' inboxes, told to stop on shutdown
    /// ([`Router::stop_sessions`]).
    sessions: Mutex<Vec<std::sync::Weak<Inbox>>>,
    pub cfg: Arc<Config>,
    pub stats: Stats,
    /// Per-slot in-flight counters. Leaked (8 KiB per router; a proxy has
    /// one router for its whole life) so that guards need no `Arc`.
    inflight: &'static [AtomicU64],
    changed: Notify,
    pools: Mutex<HashMap<String, Arc<BackendAddr>>>,
    replica_pools: Mutex<HashMap<String, Arc<BackendAddr>>>,
    /// Per server address, shared by both pools.
    health: Mutex<HashMap<String, Arc<Health>>>,
    pub opts: Arc<BackendOptions>,
    /// When the proxy started (INFO uptime).
    pub started: std::time::Instant,
    fill_lock: tokio::sync::Mutex<()>,
    /// The version of the cluster table being served (0: none, or a
    /// Codis-style slot list without versions).
    pub table_version: AtomicU64,
    /// The slot-table store cannot be reached: the last table is served.
    pub degraded: AtomicBool,
    /// Where the table comes from (`--fillslots`), for the admin API.
    pub table_source: Mutex<String>,
    /// Sentinel-driven master switches (`sentinel.rs`).
    pub ha: crate::sentinel::Ha,
}

/// The longest a request waits on a locked slot while the slot-table
/// store is unreachable (beyond that, `slot_locked_timeout` applies).
const DEGRADED_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Why a request could not be routed.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NotReady,
    LockedTimeout,
}

/// Holds a slot's in-flight count up while a request is outstanding.
///
/// Just a reference to the slot's counter: making and dropping one per
/// request touches no shared reference count (the counters are leaked, see
/// [`Router::inflight`]).
pub struct SlotGuard {
    ctr: &'static AtomicU64,
}

impl SlotGuard {
    fn acquire(ctr: &'static AtomicU64) -> SlotGuard {
        ctr.fetch_add(1, Ordering::SeqCst);
        SlotGuard { ctr }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.ctr.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A slot routed without waiting: its in-flight guard and the snapshot the
/// decision was read from (see [`Router::try_route`]).
pub struct Fast {
    pub guard: SlotGuard,
    pub table: arc_swap::Guard<Arc<Table>>,
    pub slot: usize,
}

impl Fast {
    pub fn route(&self) -> &Route {
        &self.table.slots[self.slot]
    }
}

/// A successful routing decision.
pub struct Routed {
    pub backend: Arc<BackendAddr>,
    pub migrate: Option<Arc<BackendAddr>>,
    pub method: i64,
    pub replicas: Vec<Vec<Arc<BackendAddr>>>,
    pub guard: SlotGuard,
}

/// The first connected, not stale replica of the preference buckets in
/// order, each from a pseudo-random start (Codis' choice for pure reads).
pub fn replica_conn(
    replicas: &[Vec<Arc<BackendAddr>>],
    ch: Chan,
    seed: u64,
) -> Option<&BackendConn> {
    if replicas.is_empty() {
        return None;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    for group in replicas {
        let n = group.len();
        for k in 0..n {
            let b = &group[(nanos as usize + k) % n];
            if let Some(c) = b.ready_conn(ch, seed) {
                return Some(c);
            }
        }
    }
    None
}

impl Router {
    pub fn new(cfg: Arc<Config>) -> Arc<Router> {
        let opts = Arc::new(BackendOptions {
            auth: cfg.product_auth.clone(),
            recv_timeout: cfg.backend_recv_timeout.0,
            send_timeout: cfg.backend_send_timeout.0,
            max_pipeline: cfg.backend_max_pipeline.max(1) as usize,
            ping_period: cfg.backend_ping_period.0,
            tcp_keepalive: cfg.backend_keepalive_period.0,
            probe_period: cfg.backend_probe_period.0,
            probe_timeout: cfg.backend_probe_timeout.0,
        });
        let slots = (0..MAX_SLOTS)
            .map(|i| Route {
                model: Slot {
                    id: i as i64,
                    ..Slot::default()
                },
                ..Route::default()
            })
            .collect();
        Arc::new(Router {
            table: ArcSwap::from_pointee(Table { slots }),
            online: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            sessions: Mutex::new(Vec::new()),
            cfg,
            stats: Stats::new(),
            inflight: Box::leak((0..MAX_SLOTS).map(|_| AtomicU64::new(0)).collect()),
            changed: Notify::new(),
            pools: Mutex::new(HashMap::new()),
            replica_pools: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            opts,
            started: std::time::Instant::now(),
            fill_lock: tokio::sync::Mutex::new(()),
            table_version: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            table_source: Mutex::new(String::new()),
            ha: Default::default(),
        })
    }

    /// Registers a new session for [`Router::stop_sessions`]; sessions
    /// that ended are pruned as the list grows.
    pub fn register_session(&self, inbox: &Arc<Inbox>) {
        let mut g = match self.sessions.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() >= 64 && g.len().is_power_of_two() {
            g.retain(|w| w.strong_count() > 0);
        }
        g.push(Arc::downgrade(inbox));
    }

    /// Shutdown: every session stops reading new requests, flushes the
    /// replies of those already read, and closes.
    pub fn stop_sessions(&self) {
        let live: Vec<Arc<Inbox>> = match self.sessions.lock() {
            Ok(g) => g.iter().filter_map(|w| w.upgrade()).collect(),
            Err(p) => p.into_inner().iter().filter_map(|w| w.upgrade()).collect(),
        };
        for i in live {
            i.stop();
        }
    }

    /// The pooled connections of `addr` (created on first use).
    fn pool(&self, addr: &str) -> Arc<BackendAddr> {
        self.pool_in(&self.pools, addr, false)
    }

    /// The replica pool's entry for `addr`: connected eagerly for every DB.
    fn replica_pool(&self, addr: &str) -> Arc<BackendAddr> {
        self.pool_in(&self.replica_pools, addr, true)
    }

    /// The health record of the server at `addr` (made on first use).
    pub fn health(&self, addr: &str) -> Arc<Health> {
        let mut g = match self.health.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.entry(addr.to_string())
            .or_insert_with(|| Health::new(addr.to_string(), self.opts.clone()))
            .clone()
    }

    fn pool_in(
        &self,
        pools: &Mutex<HashMap<String, Arc<BackendAddr>>>,
        addr: &str,
        replica: bool,
    ) -> Arc<BackendAddr> {
        let mut g = match pools.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.entry(addr.to_string())
            .or_insert_with(|| {
                let parallel = if replica {
                    self.cfg.backend_replica_parallel
                } else {
                    self.cfg.backend_primary_parallel
                };
                let b = Arc::new(BackendAddr {
                    addr: addr.to_string(),
                    dbs: (0..self.cfg.databases() * 2)
                        .map(|_| std::sync::OnceLock::new())
                        .collect(),
                    users: (0..crate::backend::MAX_USERS)
                        .map(|_| std::sync::OnceLock::new())
                        .collect(),
                    parallel: parallel.max(1) as usize,
                    opts: self.opts.clone(),
                    eager: replica,
                    health: self.health(addr),
                });
                if replica {
                    for db in 0..self.cfg.databases() {
                        let _ = b.conn(
                            Chan {
                                db,
                                resp3: false,
                                user: 0,
                            },
                            0,
                        );
                    }
                }
                b
            })
            .clone()
    }

    /// A server already known to the primary or replica pools
    /// (PING/INFO/SLOTSINFO `<addr>`).
    pub fn known_backend(&self, addr: &[u8]) -> Option<Arc<BackendAddr>> {
        let addr = std::str::from_utf8(addr).ok()?;
        let found = self.pools.lock().ok()?.get(addr).cloned();
        found.or_else(|| self.replica_pools.lock().ok()?.get(addr).cloned())
    }

    /// Every pooled server (for stats).
    pub fn backends(&self) -> Vec<Arc<BackendAddr>> {
        let mut v: Vec<Arc<BackendAddr>> = self
            .pools
            .lock()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default();
        if let Ok(g) = self.replica_pools.lock() {
            v.extend(g.values().cloned());
        }
        v
    }

    /// Routes `slot` without waiting: `None` while the slot is blocked
    /// (being switched, or locked). The in-flight count goes up before the
    /// snapshot is read, so a concurrent [`Router::fill`] either sees the
    /// count or this sees the blocked snapshot.
    pub fn try_route(&self, slot: usize) -> Option<Result<Fast, RouteError>> {
        let slot = slot % MAX_SLOTS;
        let guard = SlotGuard::acquire(&self.inflight[slot]);
        fence(Ordering::SeqCst);
        let table = self.table.load();
        let r = &table.slots[slot];
        if r.blocked {
            return None;
        }
        if r.backend.is_none() {
            return Some(Err(RouteError::NotReady));
        }
        Some(Ok(Fast { guard, table, slot }))
    }

    /// Routes a request on `slot`; waits while the slot is blocked.
    pub async fn route(self: &Arc<Self>, slot: usize) -> Result<Routed, RouteError> {
        let slot = slot % MAX_SLOTS;
        let mut deadline: Option<tokio::time::Instant> = None;
        let started = std::time::Instant::now();
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_route(slot) {
                Some(Ok(f)) => {
                    let r = f.route();
                    let Some(b) = &r.backend else {
                        return Err(RouteError::NotReady);
                    };
                    return Ok(Routed {
                        backend: b.clone(),
                        migrate: r.migrate.clone(),
                        method: r.model.forward_method,
                        replicas: if self.cfg.backend_primary_only {
                            Vec::new()
                        } else {
                            r.replicas.clone()
                        },
                        guard: f.guard,
                    });
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
            let locked = self.table.load().slots[slot].model.locked;
            if locked {
                let lim = self.cfg.slot_locked_timeout.0.max(Duration::from_millis(1));
                let d = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + lim);
                if tokio::time::timeout_at(d, notified).await.is_err() {
                    // While the slot-table store is unreachable the lock
                    // waits for its coordinator rather than being stuck:
                    // keep waiting (bounded), and give the coordinator a
                    // full timeout once the store is back.
                    if self.degraded.load(Ordering::SeqCst)
                        && started.elapsed() < DEGRADED_LOCK_WAIT
                    {
                        deadline = Some(tokio::time::Instant::now() + lim);
                        continue;
                    }
                    return Err(RouteError::LockedTimeout);
                }
            } else {
                // Being drained: re-check regularly as well.
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        }
    }

    /// Applies slots (Codis `fillslots`): validates nothing (callers did),
    /// drains slots whose owner changes, then publishes. Goes online.
    pub async fn fill(self: &Arc<Self>, slots: &[Slot]) {
        let _g = self.fill_lock.lock().await;
        self.fill_locked(slots).await;
    }

    /// A fill computed from the current slots, with no other fill in
    /// between (`f` gets every slot's model and returns the slots to
    /// change).
    pub async fn update(self: &Arc<Self>, f: impl FnOnce(Vec<Slot>) -> Vec<Slot>) -> usize {
        let _g = self.fill_lock.lock().await;
        let changed = f(self.slot_models());
        if !changed.is_empty() {
            self.fill_locked(&changed).await;
        }
        changed.len()
    }

    async fn fill_locked(self: &Arc<Self>, slots: &[Slot]) {
        let cur = self.table.load_full();
        let mut next: Table = (*cur).clone();
        let mut changed = Vec::new();
        for s in slots {
            let Some(i) = usize::try_from(s.id).ok().filter(|&i| i < MAX_SLOTS) else {
                continue;
            };
            let r = Route {
                model: s.clone(),
                backend: (!s.backend_addr.is_empty()).then(|| self.pool(&s.backend_addr)),
                migrate: (!s.migrate_from.is_empty()).then(|| self.pool(&s.migrate_from)),
                replicas: s
                    .replica_groups
                    .iter()
                    .map(|g| g.iter().map(|a| self.replica_pool(a)).collect())
                    .collect(),
                blocked: s.locked,
            };
            if !r.same_owner(&cur.slots[i]) {
                changed.push(i);
            }
            next.slots[i] = r;
        }
        if !changed.is_empty() {
            // Phase 1: block the changing slots, then drain them.
            let mut blocked: Table = (*cur).clone();
            for &i in &changed {
                blocked.slots[i].blocked = true;
            }
            self.table.store(Arc::new(blocked));
            fence(Ordering::SeqCst);
            for &i in &changed {
                let mut waited = 0u64;
                while self.inflight[i].load(Ordering::SeqCst) > 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    waited += 1;
                    if waited.is_multiple_of(5000) {
                        crate::log::warn(&format!(
                            "slot-[{i}] still draining after {}s",
                            waited / 1000
                        ));
                    }
                }
            }
        }
        self.table.store(Arc::new(next));
        self.online.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
        if !changed.is_empty() {
            crate::log::info(&format!(
                "fill slots: {} given, {} switched",
                slots.len(),
                changed.len()
            ));
        }
    }

    /// The current model of every slot (`/proxy/slots`).
    pub fn slot_models(&self) -> Vec<Slot> {
        self.table
            .load()
            .slots
            .iter()
            .map(|r| r.model.clone())
            .collect()
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::SeqCst)
    }

    /// Number of requests outstanding on `slot` (tests, stats).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn inflight(&self, slot: usize) -> u64 {
        self.inflight
            .get(slot)
            .map(|c| c.load(Ordering::SeqCst))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fill_and_route() {
        let r = Router::new(Arc::new(Config::default()));
        assert!(!r.is_online());
        assert_eq!(r.route(5).await.err(), Some(RouteError::NotReady));
        let s = Slot {
            id: 5,
            backend_addr: "127.0.0.1:1".into(),
            ..Slot::default()
        };
        r.fill(std::slice::from_ref(&s)).await;
        assert!(r.is_online());
        let routed = r.route(5).await.ok().unwrap();
        assert_eq!(routed.backend.addr, "127.0.0.1:1");
        assert_eq!(r.inflight(5), 1);
        drop(routed);
        assert_eq!(r.inflight(5), 0);
        assert_eq!(r.route(6).await.err(), Some(RouteError::NotReady));
    }

    #[tokio::test]
    async fn fill_waits_for_inflight_and_locked_times_out() {
        let cfg = Config {
            slot_locked_timeout: crate::config::GoDuration(Duration::from_millis(50)),
            ..Config::default()
        };
        let r = Router::new(Arc::new(cfg));
        r.fill(&[Slot {
            id: 1,
            backend_addr: "127.0.0.1:1".into(),
            ..Slot::default()
        }])
        .await;
        let held = r.route(1).await.ok().unwrap();
        let r2 = r.clone();
        let t = tokio::spawn(async move {
            r2.fill(&[Slot {
                id: 1,
                backend_addr: "127.0.0.1:2".into(),
                ..Slot::default()
            }])
            .await;
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !t.is_finished(),
            "switch must wait for the in-flight request"
        );
        drop(held);
        t.await.unwrap();
        assert_eq!(r.route(1).await.ok().unwrap().backend.addr, "127.0.0.1:2");
        r.fill(&[Slot {
            id: 1,
            backend_addr: "127.0.0.1:2".into(),
            locked: true,
            ..Slot::default()
        }])
        .await;
        assert_eq!(r.route(1).await.err(), Some(RouteError::LockedTimeout));
    }
}
