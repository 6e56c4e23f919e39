//! Process-wide state shared by every connection: configuration, keyspace,
//! stats, the client registry, and the cron (active expiry, instantaneous
//! metrics) that Redis runs as `serverCron`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::client::Registry;
use crate::config::Config;
use crate::db::{Keyspace, now_ms};
use crate::stats::Stats;

pub struct Server {
    config: RwLock<Config>,
    pub ks: Keyspace,
    pub stats: Stats,
    pub clients: Registry,
    pub next_client_id: AtomicU64,
    pub started: Instant,
    pub started_ms: u64,
    pub run_id: String,
    /// Set when SHUTDOWN or a signal asks the process to exit.
    pub shutting_down: AtomicBool,
    pub shutdown: tokio::sync::Notify,
    /// The port actually bound (for INFO when `port 0` was asked).
    pub port: AtomicU64,
    pub executable: String,
    pub config_file: String,
    /// Worker threads of the executor (`io-threads`).
    pub threads: usize,
    /// Whether the cron expires keys actively (`DEBUG SET-ACTIVE-EXPIRE`).
    pub active_expire: AtomicBool,
    /// Clients blocked in BLPOP & co. (block.rs).
    pub blocking: crate::block::Blocking,
    /// WATCHed keys (multi.rs).
    pub watches: crate::multi::Watches,
    /// Changes since the last save (INFO `rdb_changes_since_last_save`).
    pub dirty: AtomicU64,
    /// Channels, patterns and their subscribers (pubsub.rs).
    pub pubsub: crate::pubsub::PubSub,
    /// `notify-keyspace-events` bits, cached for the write path.
    pub notify_flags: std::sync::atomic::AtomicU32,
    /// CLIENT PAUSE state (pause.rs).
    pub pause: crate::pause::Pause,
    /// MONITOR clients (monitor.rs).
    pub monitors: crate::monitor::Monitors,
    pub slowlog: crate::slowlog::SlowLog,
    pub latency: crate::latency::Latency,
    /// Users and the ACL log (acl.rs).
    pub acl: crate::acl::Acl,
    /// maxmemory: eviction and the access clocks (evict.rs).
    pub evict: crate::evict::Evictor,
    /// The ordered stream of every change (propagate.rs).
    pub prop: crate::propagate::Stream,
    /// Replication, master side (repl/).
    pub repl: crate::repl::Repl,
    /// Keys being migrated out, per DB (migrate/mod.rs).
    pub inflight: crate::migrate::InFlight,
    /// Idle sockets of the sync migration commands (migrate/sync.rs).
    pub sync_sockets: crate::migrate::sync::SocketCache,
    /// Async migration connections and batches, per DB (migrate/asyncm.rs).
    pub asyncm: crate::migrate::asyncm::Registry,
    /// Client-side caching: tracked keys, BCAST prefixes (tracking.rs).
    pub tracking: crate::tracking::Tracking,
    /// Snapshots, save points, LASTSAVE (persist/).
    pub persist: crate::persist::Persist,
    /// Lua scripting: the script cache and busy scripts (script/).
    pub scripts: crate::script::Scripts,
    /// Function libraries (script/functions.rs).
    pub functions: crate::script::functions::Functions,
    /// This server's own `Arc` (deferred replies and migration tasks outlive
    /// the command that started them).
    me: std::sync::Weak<Server>,
}

impl Server {
    /// A server with the default configuration, for unit tests.
    #[cfg(test)]
    pub fn for_tests() -> Arc<Server> {
        let mut cfg = Config::default();
        // No save points: unit tests write no files unless they ask to.
        cfg.save_params.clear();
        Server::new(cfg, String::new(), String::new())
    }

    pub fn new(config: Config, executable: String, config_file: String) -> Arc<Server> {
        crate::exec::install_handlers(crate::cmd::table);
        let threads = config.io_threads.max(1);
        let port = config.port as u64;
        let ks = Keyspace::new(config.databases);
        let run_id: String = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
            .collect();
        let databases = config.databases;
        let notify_flags = config.notify_keyspace_events;
        let srv = Arc::new_cyclic(|me| Server {
            inflight: crate::migrate::InFlight::new(databases),
            sync_sockets: Default::default(),
            asyncm: crate::migrate::asyncm::Registry::new(databases),
            me: me.clone(),
            config: RwLock::new(config),
            ks,
            stats: Stats::new(),
            clients: Registry::default(),
            // Redis 7.0 gives ids 1 and 2 to internal clients (Lua, modules):
            // its first connection is 3, and so is ours (CLIENT ID, REDIRECT).
            next_client_id: AtomicU64::new(3),
            started: Instant::now(),
            started_ms: now_ms(),
            run_id,
            shutting_down: AtomicBool::new(false),
            shutdown: tokio::sync::Notify::new(),
            port: AtomicU64::new(port),
            executable,
            config_file,
            threads,
            active_expire: AtomicBool::new(true),
            blocking: crate::block::Blocking::default(),
            watches: Default::default(),
            dirty: AtomicU64::new(0),
            pubsub: Default::default(),
            prop: Default::default(),
            repl: crate::repl::Repl::new(),
            monitors: Default::default(),
            slowlog: Default::default(),
            latency: Default::default(),
            evict: Default::default(),
            acl: Default::default(),
            pause: Default::default(),
            notify_flags: std::sync::atomic::AtomicU32::new(notify_flags),
            tracking: Default::default(),
            persist: crate::persist::Persist::new(),
            scripts: crate::script::Scripts::default(),
            functions: crate::script::functions::Functions::default(),
        });
        let weak: std::sync::Weak<dyn crate::db::KeyEvents> = Arc::downgrade(&srv) as _;
        srv.ks.set_events(weak);
        srv.apply_config(&srv.config());
        {
            let c = srv.config();
            srv.acl
                .set_default_password(c.requirepass.as_deref().filter(|p| !p.is_empty()));
            for u in &c.users {
                let rules: Vec<&[u8]> = u[1..].iter().map(|r| r.as_slice()).collect();
                // Checked when the configuration was read.
                let _ = srv.acl.set_user(&u[0], &rules);
            }
        }
        srv
    }

    /// The `Arc` this server lives in.
    pub fn arc(&self) -> Arc<Server> {
        // `Server::new` is the only constructor and always builds an Arc.
        self.me
            .upgrade()
            .expect("server is alive while its methods run")
    }

    pub fn config(&self) -> RwLockReadGuard<'_, Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config_mut(&self) -> RwLockWriteGuard<'_, Config> {
        self.config.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The modified-key signal (see `exec::Ctx::changed`): dirty counter,
    /// WATCH, blocked clients, client-side caching invalidation, keyspace
    /// notifications.
    #[inline]
    pub fn changed(&self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        self.dirty.fetch_add(1, Relaxed);
        self.signal_modified(db, class, event, key);
    }

    /// [`Server::changed`] without the dirty counter (the gate counts a
    /// command's changes once, see `Ctx::changed`).
    #[inline]
    pub fn signal_modified(&self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        if self.watches.any() {
            let deleted = matches!(event, "del" | "expired" | "evicted");
            self.watches.touch(db, key, || !deleted);
        }
        self.blocking.signal(db, key);
        if self.tracking.armed() {
            crate::tracking::modified(self, key);
        }
        self.notify(db, class, event, key);
    }

    /// A change made by a migration command outside the gate (a restore on
    /// the target, a deletion on the source, SLOTSDEL), reported with the
    /// key's slot still locked: dirty counter, WATCH, blocked clients
    /// (when the key exists afterwards), tracking clients, and the stream
    /// entries `entries()` builds, when the stream has a consumer. No
    /// keyspace notification, as in Codis.
    pub fn migration_change(
        &self,
        db: usize,
        key: &[u8],
        exists: bool,
        entries: impl FnOnce() -> Vec<(usize, crate::propagate::Argv)>,
    ) {
        self.dirty.fetch_add(1, Relaxed);
        if self.watches.any() {
            self.watches.touch(db, key, || exists);
        }
        if exists {
            self.blocking.signal(db, key);
        }
        if self.tracking.armed() {
            crate::tracking::modified(self, key);
        }
        if self.prop.active() {
            self.prop.emit(&entries(), false);
        }
    }

    /// A key migrated to another server (or dropped by SLOTSDEL) was
    /// deleted here: a DEL in the stream, as Codis' `slotsremove`.
    pub fn migrated_away(&self, db: usize, key: &[u8]) {
        self.migration_change(db, key, false, || {
            vec![(db, vec![b"DEL".to_vec(), key.to_vec()])]
        });
    }

    /// A key written whole by a migration (SLOTSRESTORE, the async restore
    /// commands), its slot still locked in `slot`: its full value goes to
    /// the stream as an absolute-TTL `RESTORE … REPLACE ABSTTL` (the effect,
    /// whatever the command was).
    pub fn restored(&self, db: usize, key: &[u8], slot: &mut impl crate::db::KeyAccess) {
        self.migration_change(db, key, true, || {
            let Some(entry) = slot.peek(key) else {
                return Vec::new();
            };
            let argv: crate::propagate::Argv = vec![
                b"RESTORE".to_vec(),
                key.to_vec(),
                entry.expire().unwrap_or(0).to_string().into_bytes(),
                crate::codec::dump_payload(entry.value()),
                b"REPLACE".to_vec(),
                b"ABSTTL".to_vec(),
            ];
            vec![(db, argv)]
        });
    }

    /// Publishes a keyspace notification if its class is enabled.
    #[inline]
    pub fn notify(&self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        let flags = self.notify_flags.load(Relaxed);
        if flags & class != 0 {
            crate::pubsub::notify_keyspace(&self.pubsub, flags, db, class, event, key);
        }
    }

    /// Caches what the hot paths read of a changed configuration.
    pub fn apply_config(&self, c: &Config) {
        self.notify_flags.store(c.notify_keyspace_events, Relaxed);
        let new_on = c.notify_keyspace_events & crate::config::notify::NEW != 0
            && c.notify_keyspace_events
                & (crate::config::notify::KEYSPACE | crate::config::notify::KEYEVENT)
                != 0;
        self.ks.created_events.store(new_on, Relaxed);
        self.pubsub
            .set_limit(c.client_output_buffer_limit[crate::config::CLIENT_CLASS_PUBSUB]);
        self.tracking.set_max_keys(c.tracking_table_max_keys);
        self.slowlog
            .configure(c.slowlog_log_slower_than, c.slowlog_max_len);
        self.latency.configure(c.latency_monitor_threshold);
        self.latency.set_tracking(c.latency_tracking);
        self.evict.configure(c);
        self.acl.log_max.store(c.acllog_max_len, Relaxed);
        self.acl.pubsub_default_all.store(
            c.get_one("acl-pubsub-default").as_deref() == Some(b"allchannels".as_slice()),
            Relaxed,
        );
        self.prop
            .set_backlog_size(c.repl_backlog_size.max(1) as u64);
        let l = c.client_output_buffer_limit[crate::config::CLIENT_CLASS_REPLICA];
        self.prop.set_reader_limit(&l);
        self.repl
            .refresh_good(c.min_replicas_to_write, c.min_replicas_max_lag);
    }

    /// Loads `aclfile` at start-up (Redis' ACLLoadUsersAtStartup): it
    /// cannot be combined with `user` lines, and an unreadable or bad file
    /// stops the start.
    pub fn load_acl_at_startup(&self) -> Result<(), String> {
        let (file, users) = {
            let c = self.config();
            (
                String::from_utf8_lossy(&c.get_one("aclfile").unwrap_or_default()).into_owned(),
                !c.users.is_empty(),
            )
        };
        if file.is_empty() {
            return Ok(());
        }
        if users {
            return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
        }
        self.acl
            .load_file(&file)
            .map(|_| ())
            .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))
    }

    /// Starts shutting the server down (SHUTDOWN, SIGTERM).
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Relaxed);
        self.shutdown.notify_waiters();
        self.shutdown.notify_one();
    }

    /// serverCron: runs `hz` times a second until shutdown.
    pub async fn cron(self: Arc<Self>) {
        let mut last_ops = 0u64;
        let mut last_in = 0u64;
        let mut last_out = 0u64;
        let mut last_t = Instant::now();
        let mut last_persist = Instant::now();
        let mut last_repl_ping = now_ms();
        loop {
            let hz = self.config().hz.clamp(1, 500);
            tokio::time::sleep(Duration::from_millis(1000 / hz)).await;
            if self.shutting_down.load(Relaxed) {
                return;
            }
            // Active expiry: at most 25% of one core (Redis' slow cycle).
            let budget = Duration::from_micros(250_000 / hz);
            // No active expiry while clients are paused (Redis): a paused
            // dataset does not change.
            // (A replica's keys expire by its master's DELs.) Nor while a
            // script is busy: it holds its slots until it ends, and this
            // worker answers the other clients meanwhile (Redis' cron
            // does not expire keys during a script either).
            if self.active_expire.load(Relaxed)
                && self.pause.mode(now_ms()).is_none()
                && !self.repl.link.is_replica()
                && !self.scripts.busy()
            {
                let t0 = Instant::now();
                self.ks.active_expire(now_ms(), budget);
                self.latency
                    .consider("expire-cycle", t0.elapsed().as_millis() as u64);
            }
            if self.tracking.armed() {
                crate::tracking::cron(&self);
            }
            crate::evict::evict_clients(&self);
            let el = last_t.elapsed().as_secs_f64();
            if el >= 1.0 {
                let ops = self.stats.total_commands.load(Relaxed);
                let inp = self.stats.net_input_bytes.load(Relaxed);
                let out = self.stats.net_output_bytes.load(Relaxed);
                self.stats
                    .inst_ops
                    .store(((ops - last_ops.min(ops)) as f64 / el) as u64, Relaxed);
                self.stats
                    .inst_in_kbps
                    .store(((inp - last_in.min(inp)) as f64 / el) as u64, Relaxed);
                self.stats
                    .inst_out_kbps
                    .store(((out - last_out.min(out)) as f64 / el) as u64, Relaxed);
                last_ops = ops;
                last_in = inp;
                last_out = out;
                last_t = Instant::now();
                crate::migrate::cron(&self);
            }
            if last_persist.elapsed() >= Duration::from_millis(100) {
                last_persist = Instant::now();
                crate::persist::cron(&self);
                crate::repl::cron(&self, now_ms(), &mut last_repl_ping);
            }
        }
    }
}

/// What the DB layer does on its own (expiry, key creation) reaches the
/// same signals as a command's changes.
impl crate::db::KeyEvents for Server {
    fn expired(&self, db: usize, key: &[u8]) {
        // Redis' deleteExpiredKeyAndPropagate: `expired` event, the
        // modified-key signal (WATCH, tracking), a DEL in the propagation stream.
        if self.watches.any() {
            self.watches.touch(db, key, || false);
        }
        self.notify(db, crate::config::notify::EXPIRED, "expired", key);
        if self.tracking.armed() {
            crate::tracking::expired(self, key);
        }
        if self.prop.active() {
            self.prop.emit_del(db, key);
        }
    }

    fn created(&self, db: usize, key: &[u8]) {
        self.notify(db, crate::config::notify::NEW, "new", key);
    }
}
