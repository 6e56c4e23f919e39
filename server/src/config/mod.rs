//! Server configuration: owns redis.conf / command-line parsing, the parameter
//! table behind `CONFIG GET` / `CONFIG SET` / `CONFIG REWRITE`, and the typed
//! [`Config`] the rest of the server reads. It mirrors redis-server 7.0's
//! config table (`config.c`): the same parameter names and aliases, types,
//! bounds, defaults, flags and, byte for byte, the same error texts — both the
//! `*** FATAL CONFIG FILE ERROR ***` report at startup and the `CONFIG SET`
//! replies. Pure code: no sockets, no tokio, and it never changes the process'
//! working directory (see [`Config::dir`]).
//!
//! Deliberate differences from redis-server 7.0 (all documented on the items):
//! * no TLS parameters (codis-server has no TLS);
//! * `port` and `bind` cannot be changed with `CONFIG SET` (redis rebinds its
//!   listeners; codis-server does not): the reply is redis' "can't set
//!   immutable config" error;
//! * `daemonize yes` is accepted and reported, but codis-server always stays
//!   in the foreground (the caller logs a warning);
//! * `unixsocket` is accepted and reported, but no unix socket is opened;
//! * `loadmodule` is refused at startup (no module support).

mod parse;

mod table;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use protocol::resp::{repr, split_args};
use table::{Access, Kind, PARAMS, Param, StrCheck};

/// The redis version codis-server reports (`INFO`, `--version`, the fatal
/// config error banner) for client compatibility.
pub const VERSION: &str = "7.0.15";

/// Maximum number of `bind` addresses (redis' CONFIG_BINDADDR_MAX).
pub const BIND_MAX: usize = 16;

/// One `save <seconds> <changes>` point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveParam {
    pub seconds: i64,
    pub changes: i32,
}

/// One class of `client-output-buffer-limit` (0 = no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ClientBufferLimit {
    pub hard_bytes: u64,
    pub soft_bytes: u64,
    pub soft_seconds: i64,
}

/// Index into [`Config::client_output_buffer_limit`].
pub const CLIENT_CLASS_NORMAL: usize = 0;
pub const CLIENT_CLASS_REPLICA: usize = 1;
pub const CLIENT_CLASS_PUBSUB: usize = 2;

/// `maxmemory-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxmemoryPolicy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    NoEviction,
}

/// `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendFsync {
    Everysec,
    Always,
    No,
}

/// `supervised`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supervised {
    Upstart,
    Systemd,
    Auto,
    No,
}

/// `enable-protected-configs`, `enable-debug-command`, `enable-module-command`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableLevel {
    No,
    Yes,
    /// Only for connections from loopback / unix socket.
    Local,
}

impl EnableLevel {
    /// Whether a client (local = loopback or unix socket) may use the feature.
    pub fn allows(self, client_is_local: bool) -> bool {
        match self {
            EnableLevel::No => false,
            EnableLevel::Yes => true,
            EnableLevel::Local => client_is_local,
        }
    }
}

/// `shutdown-on-sigint` / `shutdown-on-sigterm` flag bits (0 = default).
pub mod shutdown_flags {
    pub const SAVE: u32 = 1;
    pub const NOSAVE: u32 = 2;
    pub const NOW: u32 = 4;
    pub const FORCE: u32 = 8;
}

/// `notify-keyspace-events` flag bits (same meaning as redis' NOTIFY_*).
pub mod notify {
    pub const KEYSPACE: u32 = 1 << 0; // K
    pub const KEYEVENT: u32 = 1 << 1; // E
    pub const GENERIC: u32 = 1 << 2; // g
    pub const STRING: u32 = 1 << 3; // $
    pub const LIST: u32 = 1 << 4; // l
    pub const SET: u32 = 1 << 5; // s
    pub const HASH: u32 = 1 << 6; // h
    pub const ZSET: u32 = 1 << 7; // z
    pub const EXPIRED: u32 = 1 << 8; // x
    pub const EVICTED: u32 = 1 << 9; // e
    pub const STREAM: u32 = 1 << 10; // t
    pub const KEY_MISS: u32 = 1 << 11; // m (not part of A)
    pub const MODULE: u32 = 1 << 12; // d
    pub const NEW: u32 = 1 << 13; // n (not part of A)
    /// `A`: every type/event class except `m` and `n`.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// The parsed configuration. Field defaults are redis 7.0's; every field
/// below is backed by the parameter named in its doc and is kept in sync by
/// [`load`] and [`Config::set`]. Parameters without a field (cluster,
/// replication tuning, defrag, ...) are accepted, validated and reported by
/// `CONFIG GET` but not acted upon; read them with [`Config::get_one`].
#[derive(Clone, Debug)]
pub struct Config {
    // ---- networking ----
    /// `port` (0 = no TCP listener in redis). Not settable at runtime.
    pub port: u16,
    /// `bind`: addresses as written (`*`, `-::*`, a leading `-` = optional).
    /// Empty = listen on nothing (redis' `bind ""`). Not settable at runtime.
    pub bind: Vec<String>,
    /// `unixsocket`: accepted and reported only; codis-server opens no unix
    /// socket. Empty = none.
    pub unixsocket: String,
    /// `unixsocketperm` (octal on the wire).
    pub unixsocketperm: u32,
    /// `tcp-backlog`.
    pub tcp_backlog: u32,
    /// `timeout`: idle client timeout in seconds, 0 = never.
    pub timeout_secs: u64,
    /// `tcp-keepalive` seconds, 0 = off.
    pub tcp_keepalive: u64,
    /// `protected-mode`.
    pub protected_mode: bool,
    /// `maxclients`.
    pub maxclients: usize,
    /// `io-threads`: codis-server's executor worker-thread count.
    pub io_threads: usize,

    // ---- general ----
    /// `daemonize`: accepted and reported, but codis-server always runs in
    /// the foreground (the caller should log a warning when it is true).
    pub daemonize: bool,
    /// `supervised`.
    pub supervised: Supervised,
    /// `pidfile`, empty = none.
    pub pidfile: String,
    /// `loglevel`.
    pub loglevel: crate::log::Level,
    /// `logfile`, empty = stdout. Relative paths are relative to [`Config::dir`].
    pub logfile: String,
    /// `always-show-logo`.
    pub always_show_logo: bool,
    /// `databases`.
    pub databases: usize,
    /// `hz` (clamped to 1..=500 like redis).
    pub hz: u64,
    /// `dynamic-hz`.
    pub dynamic_hz: bool,
    /// `dir`: always an absolute, canonical path. redis `chdir()`s when it
    /// reads `dir`; this module never touches the process' cwd, so the caller
    /// must `set_current_dir(&cfg.dir)` after [`load`] (and after a successful
    /// `CONFIG SET dir`).
    pub dir: String,
    /// `requirepass`: `None` when empty (no password).
    pub requirepass: Option<Vec<u8>>,
    /// `enable-protected-configs`.
    pub enable_protected_configs: EnableLevel,
    /// `enable-debug-command`.
    pub enable_debug_command: EnableLevel,
    /// `enable-module-command`.
    pub enable_module_command: EnableLevel,
    /// `shutdown-on-sigint` ([`shutdown_flags`] bits).
    pub shutdown_on_sigint: u32,
    /// `shutdown-on-sigterm` ([`shutdown_flags`] bits).
    pub shutdown_on_sigterm: u32,
    /// `shutdown-timeout` seconds.
    pub shutdown_timeout: u32,
    /// `acllog-max-len`.
    pub acllog_max_len: u64,

    // ---- persistence ----
    /// `save`: empty = no automatic snapshots.
    pub save_params: Vec<SaveParam>,
    /// `stop-writes-on-bgsave-error`.
    pub stop_writes_on_bgsave_error: bool,
    /// `rdbcompression`.
    pub rdbcompression: bool,
    /// `rdbchecksum`.
    pub rdbchecksum: bool,
    /// `rdb-save-incremental-fsync`.
    pub rdb_save_incremental_fsync: bool,
    /// `dbfilename` (a bare file name).
    pub dbfilename: String,
    /// `appendonly`.
    pub appendonly: bool,
    /// `appendfilename`.
    pub appendfilename: String,
    /// `appenddirname`.
    pub appenddirname: String,
    /// `appendfsync`.
    pub appendfsync: AppendFsync,
    /// `no-appendfsync-on-rewrite`.
    pub no_appendfsync_on_rewrite: bool,
    /// `auto-aof-rewrite-percentage`.
    pub auto_aof_rewrite_percentage: i64,
    /// `auto-aof-rewrite-min-size`.
    pub auto_aof_rewrite_min_size: i64,
    /// `aof-load-truncated`.
    pub aof_load_truncated: bool,
    /// `repl-ping-replica-period` (seconds).
    pub repl_ping_replica_period: i64,
    /// `repl-backlog-size` (bytes).
    pub repl_backlog_size: i64,
    /// `repl-backlog-ttl` (seconds; 0 = never freed).
    pub repl_backlog_ttl: i64,
    /// `key-load-delay` (hidden, for tests, as redis): a pause per key
    /// loaded at start-up, in µs; negative: 1 µs every `-n` keys.
    pub key_load_delay: i64,
    /// `aof-use-rdb-preamble`.
    pub aof_use_rdb_preamble: bool,
    /// `aof-timestamp-enabled`.
    pub aof_timestamp_enabled: bool,
    /// `aof-rewrite-incremental-fsync`.
    pub aof_rewrite_incremental_fsync: bool,
    /// `aof-disable-auto-gc`.
    pub aof_disable_auto_gc: bool,

    // ---- replication ----
    /// `replicaof` / `slaveof`: `None` = master (`replicaof no one`).
    pub replicaof: Option<(String, u16)>,
    /// `replica-read-only`.
    pub replica_read_only: bool,
    /// `masterauth` / `masteruser`: how a replica authenticates to its
    /// master (empty: it does not).
    pub masterauth: String,
    pub masteruser: String,
    /// `replica-serve-stale-data`.
    pub replica_serve_stale_data: bool,
    /// `repl-timeout` seconds.
    pub repl_timeout: i64,
    /// `replica-priority`, `replica-announced`, `replica-announce-ip`,
    /// `replica-announce-port`.
    pub replica_priority: i64,
    pub replica_announced: bool,
    pub replica_announce_ip: String,
    pub replica_announce_port: i64,
    /// `repl-diskless-sync`, `repl-diskless-sync-delay` (seconds),
    /// `repl-diskless-sync-max-replicas`.
    pub repl_diskless_sync: bool,
    pub repl_diskless_sync_delay: i64,
    pub repl_diskless_sync_max_replicas: i64,
    /// `repl-diskless-load`: 0 disabled, 1 on-empty-db (swapdb is refused).
    pub repl_diskless_load: i64,
    /// `min-replicas-to-write` / `min-replicas-max-lag`.
    pub min_replicas_to_write: i64,
    pub min_replicas_max_lag: i64,

    // ---- memory and client limits ----
    /// `maxmemory` bytes, 0 = unlimited.
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub maxmemory_policy: MaxmemoryPolicy,
    /// `maxmemory-samples`.
    pub maxmemory_samples: u32,
    /// `maxmemory-eviction-tenacity` (0..=100).
    pub maxmemory_eviction_tenacity: u32,
    /// `replica-ignore-maxmemory`.
    pub replica_ignore_maxmemory: bool,
    /// `client-query-buffer-limit` bytes.
    pub client_query_buffer_limit: u64,
    /// `proto-max-bulk-len` bytes.
    pub proto_max_bulk_len: u64,
    /// `client-output-buffer-limit`, indexed by `CLIENT_CLASS_*`.
    pub client_output_buffer_limit: [ClientBufferLimit; 3],
    /// `client-output-backpressure` bytes (codis-server's own parameter):
    /// a connection stops running its pipelined commands while this much of
    /// its output is unsent, and goes on as the client reads (0 = never
    /// stop, as redis).
    pub client_output_backpressure: u64,
    /// `tracking-table-max-keys`.
    pub tracking_table_max_keys: u64,
    /// `lazyfree-lazy-eviction`.
    pub lazyfree_lazy_eviction: bool,
    /// `lazyfree-lazy-expire`.
    pub lazyfree_lazy_expire: bool,
    /// `lazyfree-lazy-server-del`.
    pub lazyfree_lazy_server_del: bool,
    /// `lazyfree-lazy-user-del`.
    pub lazyfree_lazy_user_del: bool,
    /// `lazyfree-lazy-user-flush`.
    pub lazyfree_lazy_user_flush: bool,

    // ---- latency, slow log, notifications ----
    /// `busy-reply-threshold` / `lua-time-limit`, milliseconds.
    pub busy_reply_threshold_ms: u64,
    /// `slowlog-log-slower-than` microseconds (-1 = off, 0 = everything).
    pub slowlog_log_slower_than: i64,
    /// `slowlog-max-len`.
    pub slowlog_max_len: u64,
    /// `latency-monitor-threshold` milliseconds.
    pub latency_monitor_threshold: u64,
    /// `latency-tracking`.
    pub latency_tracking: bool,
    /// `latency-tracking-info-percentiles`.
    pub latency_tracking_info_percentiles: Vec<f64>,
    /// `notify-keyspace-events` ([`notify`] bits).
    pub notify_keyspace_events: u32,

    // ---- data structure encodings ----
    /// `hash-max-listpack-entries` / `hash-max-ziplist-entries`.
    pub hash_max_listpack_entries: u64,
    /// `hash-max-listpack-value` / `hash-max-ziplist-value`.
    pub hash_max_listpack_value: u64,
    /// `list-max-listpack-size` / `list-max-ziplist-size`.
    pub list_max_listpack_size: i32,
    /// `list-compress-depth`.
    pub list_compress_depth: u32,
    /// `set-max-intset-entries`.
    pub set_max_intset_entries: u64,
    /// `zset-max-listpack-entries` / `zset-max-ziplist-entries`.
    pub zset_max_listpack_entries: u64,
    /// `zset-max-listpack-value` / `zset-max-ziplist-value`.
    pub zset_max_listpack_value: u64,
    /// `hll-sparse-max-bytes`.
    pub hll_sparse_max_bytes: u64,
    /// `stream-node-max-bytes`.
    pub stream_node_max_bytes: u64,
    /// `stream-node-max-entries`.
    pub stream_node_max_entries: u64,
    /// `activerehashing`.
    pub activerehashing: bool,
    /// `active-expire-effort` (1..=10).
    pub active_expire_effort: u32,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time` minutes.
    pub lfu_decay_time: u32,

    // ---- not parameters ----
    /// The absolute path of the config file given on the command line (for
    /// `INFO`'s `config_file` and `CONFIG REWRITE`); `None` without one.
    pub config_file: Option<String>,
    /// `rename-command <old> <new>` directives, in order (new = "" disables).
    /// Validated against the command table; the caller applies them.
    pub rename_commands: Vec<(Vec<u8>, Vec<u8>)>,
    /// `user ...` directives (ACL rules, one Vec of words per line, without
    /// the leading `user`), stored unvalidated for the ACL layer.
    pub users: Vec<Vec<Vec<u8>>>,

    /// Values of the parameters without a typed field, by table index.
    others: Vec<Value>,
    /// While loading: whether a `save` line was seen (the first one replaces
    /// the defaults, later ones append).
    save_loaded: bool,
}

/// A parameter value in its parsed form.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// Placeholder in `others` for parameters stored in a typed field.
    Unused,
    Bool(bool),
    /// Integers, memory values (u64 bit pattern for the unsigned ones), octal,
    /// notify flags.
    Int(i64),
    Enum(i32),
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Save(Vec<SaveParam>),
    Obuf([ClientBufferLimit; 3]),
    Oom([i32; 3]),
    Floats(Vec<f64>),
    ReplicaOf(Option<(String, u16)>),
}

/// Conversion between a typed [`Config`] field and a [`Value`]; parsing has
/// already range-checked the value, so the integer casts cannot truncate.
pub(crate) trait FieldValue: Sized {
    fn to_value(&self) -> Value;
    fn from_value(v: Value) -> Option<Self>;
}

impl FieldValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::Int(i) => Some(i as $t),
                    // flag-set enums (`shutdown-on-sigint`) live in integer fields
                    Value::Enum(e) => Some(e as $t),
                    _ => None,
                }
            }
        }
    )*};
}
int_field!(u16, u32, i32, i64, u64, usize);

impl FieldValue for String {
    fn to_value(&self) -> Value {
        Value::Str(self.as_bytes().to_vec())
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Str(s) => Some(String::from_utf8_lossy(&s).into_owned()),
            _ => None,
        }
    }
}

impl FieldValue for Option<Vec<u8>> {
    fn to_value(&self) -> Value {
        Value::Str(self.clone().unwrap_or_default())
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Str(s) => Some(if s.is_empty() { None } else { Some(s) }),
            _ => None,
        }
    }
}

impl FieldValue for Vec<String> {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|s| s.as_bytes().to_vec()).collect())
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::List(l) => Some(
                l.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        }
    }
}

impl FieldValue for Vec<SaveParam> {
    fn to_value(&self) -> Value {
        Value::Save(self.clone())
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Save(s) => Some(s),
            _ => None,
        }
    }
}

impl FieldValue for [ClientBufferLimit; 3] {
    fn to_value(&self) -> Value {
        Value::Obuf(*self)
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Obuf(o) => Some(o),
            _ => None,
        }
    }
}

impl FieldValue for Vec<f64> {
    fn to_value(&self) -> Value {
        Value::Floats(self.clone())
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Floats(f) => Some(f),
            _ => None,
        }
    }
}

impl FieldValue for Option<(String, u16)> {
    fn to_value(&self) -> Value {
        Value::ReplicaOf(self.clone())
    }
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::ReplicaOf(r) => Some(r),
            _ => None,
        }
    }
}

macro_rules! enum_field {
    ($t:ty => $($v:path = $n:literal),* $(,)?) => {
        impl FieldValue for $t {
            fn to_value(&self) -> Value {
                Value::Enum(match self { $($v => $n),* })
            }
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    $(Value::Enum($n) => Some($v),)*
                    _ => None,
                }
            }
        }
    };
}
enum_field!(crate::log::Level =>
    crate::log::Level::Debug = 0, crate::log::Level::Verbose = 1,
    crate::log::Level::Notice = 2, crate::log::Level::Warning = 3);
enum_field!(MaxmemoryPolicy =>
    MaxmemoryPolicy::VolatileLru = 0, MaxmemoryPolicy::VolatileLfu = 1,
    MaxmemoryPolicy::VolatileRandom = 2, MaxmemoryPolicy::VolatileTtl = 3,
    MaxmemoryPolicy::AllkeysLru = 4, MaxmemoryPolicy::AllkeysLfu = 5,
    MaxmemoryPolicy::AllkeysRandom = 6, MaxmemoryPolicy::NoEviction = 7);
enum_field!(AppendFsync => AppendFsync::Everysec = 0, AppendFsync::Always = 1, AppendFsync::No = 2);
enum_field!(Supervised =>
    Supervised::Upstart = 0, Supervised::Systemd = 1, Supervised::Auto = 2, Supervised::No = 3);
enum_field!(EnableLevel => EnableLevel::No = 0, EnableLevel::Yes = 1, EnableLevel::Local = 2);

impl Default for Config {
    /// redis 7.0's defaults (`dir` = the current working directory).
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// A configuration with every parameter at its redis 7.0 default.
    pub fn new() -> Config {
        let mut c = Config {
            port: 0,
            bind: Vec::new(),
            unixsocket: String::new(),
            unixsocketperm: 0,
            tcp_backlog: 0,
            timeout_secs: 0,
            tcp_keepalive: 0,
            protected_mode: false,
            maxclients: 0,
            io_threads: 0,
            daemonize: false,
            supervised: Supervised::No,
            pidfile: String::new(),
            loglevel: crate::log::Level::Notice,
            logfile: String::new(),
            always_show_logo: false,
            databases: 0,
            hz: 0,
            dynamic_hz: false,
            dir: String::new(),
            requirepass: None,
            enable_protected_configs: EnableLevel::No,
            enable_debug_command: EnableLevel::No,
            enable_module_command: EnableLevel::No,
            shutdown_on_sigint: 0,
            shutdown_on_sigterm: 0,
            shutdown_timeout: 0,
            acllog_max_len: 0,
            save_params: Vec::new(),
            stop_writes_on_bgsave_error: false,
            rdbcompression: false,
            rdbchecksum: false,
            rdb_save_incremental_fsync: false,
            dbfilename: String::new(),
            appendonly: false,
            appendfilename: String::new(),
            appenddirname: String::new(),
            appendfsync: AppendFsync::Everysec,
            no_appendfsync_on_rewrite: false,
            auto_aof_rewrite_percentage: 0,
            auto_aof_rewrite_min_size: 0,
            key_load_delay: 0,
            repl_ping_replica_period: 0,
            repl_backlog_size: 0,
            repl_backlog_ttl: 0,
            aof_load_truncated: false,
            aof_use_rdb_preamble: false,
            aof_timestamp_enabled: false,
            aof_rewrite_incremental_fsync: false,
            aof_disable_auto_gc: false,
            replicaof: None,
            replica_read_only: false,
            masterauth: String::new(),
            masteruser: String::new(),
            replica_serve_stale_data: false,
            repl_timeout: 0,
            replica_priority: 0,
            replica_announced: false,
            replica_announce_ip: String::new(),
            replica_announce_port: 0,
            min_replicas_to_write: 0,
            repl_diskless_sync: false,
            repl_diskless_load: 0,
            repl_diskless_sync_delay: 0,
            repl_diskless_sync_max_replicas: 0,
            min_replicas_max_lag: 0,
            maxmemory: 0,
            maxmemory_policy: MaxmemoryPolicy::NoEviction,
            maxmemory_samples: 0,
            maxmemory_eviction_tenacity: 0,
            replica_ignore_maxmemory: true,
            client_query_buffer_limit: 0,
            proto_max_bulk_len: 0,
            client_output_buffer_limit: [ClientBufferLimit::default(); 3],
            client_output_backpressure: 0,
            tracking_table_max_keys: 0,
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            busy_reply_threshold_ms: 0,
            slowlog_log_slower_than: 0,
            slowlog_max_len: 0,
            latency_monitor_threshold: 0,
            latency_tracking: false,
            latency_tracking_info_percentiles: Vec::new(),
            notify_keyspace_events: 0,
            hash_max_listpack_entries: 0,
            hash_max_listpack_value: 0,
            list_max_listpack_size: 0,
            list_compress_depth: 0,
            set_max_intset_entries: 0,
            zset_max_listpack_entries: 0,
            zset_max_listpack_value: 0,
            hll_sparse_max_bytes: 0,
            stream_node_max_bytes: 0,
            stream_node_max_entries: 0,
            activerehashing: false,
            active_expire_effort: 0,
            lfu_log_factor: 0,
            lfu_decay_time: 0,
            config_file: None,
            rename_commands: Vec::new(),
            users: Vec::new(),
            others: vec![Value::Unused; PARAMS.len()],
            save_loaded: false,
        };
        for (i, p) in PARAMS.iter().enumerate() {
            let v = match p.kind {
                Kind::Dir => Value::Str(
                    std::env::current_dir()
                        .map(|d| path_bytes(&d))
                        .unwrap_or_else(|_| b"/".to_vec()),
                ),
                Kind::ReplicaOf => Value::ReplicaOf(None),
                _ => {
                    let words: Vec<&[u8]> = if p.kind.multi_arg() {
                        split_spaces(p.default.as_bytes())
                    } else {
                        vec![p.default.as_bytes()]
                    };
                    match c.parse_value(p, &words) {
                        Ok(v) => v,
                        Err(e) => {
                            debug_assert!(false, "bad default for {}: {e}", p.name);
                            continue;
                        }
                    }
                }
            };
            c.store(i, v);
        }
        c
    }

    /// The current value of one parameter (canonical name or alias, any
    /// case) rendered like `CONFIG GET` does, or `None` for an unknown name.
    pub fn get_one(&self, name: &str) -> Option<Vec<u8>> {
        let (i, _) = table::lookup(name.as_bytes())?;
        Some(self.render(i))
    }

    /// `CONFIG GET pattern [pattern ...]` (redis 7.0): a pattern without any
    /// of `*?[` is an exact (case-insensitive) name lookup and is reported
    /// under the name as the client typed it; other patterns are matched
    /// case-insensitively against every canonical name and every alias
    /// (aliases are reported as separate entries, like redis). Each reported
    /// name appears once. Order: patterns in order, table order within a
    /// pattern (redis' order is its dict order, i.e. unspecified).
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        let seen = |out: &Vec<(String, Vec<u8>)>, name: &[u8]| {
            out.iter()
                .any(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
        };
        for &pat in patterns {
            if !pat.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
                if seen(&out, pat) {
                    continue;
                }
                if let Some((i, _)) = table::lookup(pat) {
                    out.push((String::from_utf8_lossy(pat).into_owned(), self.render(i)));
                }
                continue;
            }
            for (i, p) in PARAMS.iter().enumerate() {
                if p.flags & table::HIDDEN != 0 {
                    continue;
                }
                for name in std::iter::once(p.name).chain(p.alias) {
                    if !seen(&out, name.as_bytes())
                        && protocol::glob::string_match(pat, name.as_bytes(), true)
                    {
                        out.push((name.to_string(), self.render(i)));
                    }
                }
            }
        }
        out
    }

    /// `CONFIG SET name value [name value ...]` from a client that is not
    /// local (see [`Config::set_from`]).
    pub fn set(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<Vec<&'static str>, String> {
        self.set_from(pairs, false)
    }

    /// `CONFIG SET` with redis 7.0 semantics. `client_is_local` (loopback or
    /// unix socket) matters only for protected parameters (`dir`,
    /// `dbfilename`) under `enable-protected-configs local`.
    ///
    /// All or nothing: every name is checked first (unknown / immutable /
    /// protected / given twice), then every value is parsed in order; on the
    /// first error nothing is changed. Errors are the full redis reply text
    /// without the leading `-`, e.g. `ERR CONFIG SET failed (possibly related
    /// to argument 'port') - argument couldn't be parsed into an integer`.
    /// Multi-word parameters (`save`, `client-output-buffer-limit`, ...) split
    /// their value on single spaces, like redis.
    ///
    /// Returns the canonical names of the parameters whose value actually
    /// changed (in argument order), so the caller can apply side effects
    /// (`maxmemory`, `loglevel`, `appendonly`, ...). An odd argument count is
    /// the caller's `ERR syntax error`.
    pub fn set_from(
        &mut self,
        pairs: &[(&[u8], &[u8])],
        client_is_local: bool,
    ) -> Result<Vec<&'static str>, String> {
        let mut unknown: Option<&[u8]> = None;
        let mut failure: Option<(&[u8], &str)> = None;
        let mut chosen: Vec<(usize, bool)> = Vec::with_capacity(pairs.len());
        for &(name, _) in pairs {
            let Some((idx, alias)) = table::lookup(name) else {
                if unknown.is_none() && failure.is_none() {
                    unknown = Some(name);
                }
                continue;
            };
            if unknown.is_some() || failure.is_some() {
                continue;
            }
            let p = &PARAMS[idx];
            if p.flags & (table::IMMUTABLE | table::NO_RUNTIME) != 0 {
                failure = Some((name, "can't set immutable config"));
                continue;
            }
            if p.flags & table::PROTECTED != 0
                && !self.enable_protected_configs.allows(client_is_local)
            {
                failure = Some((name, "can't set protected config"));
                continue;
            }
            // An alias is a separate entry for this check, as in redis.
            if chosen.contains(&(idx, alias)) {
                failure = Some((name, "duplicate parameter"));
                continue;
            }
            chosen.push((idx, alias));
        }
        if let Some(name) = unknown {
            return Err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            ));
        }
        if let Some((name, why)) = failure {
            return Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
                String::from_utf8_lossy(name)
            ));
        }

        let before: Vec<Vec<u8>> = chosen.iter().map(|&(i, _)| self.render(i)).collect();
        let backup = self.clone();
        for (&(idx, alias), &(_, value)) in chosen.iter().zip(pairs) {
            let p = &PARAMS[idx];
            let words: Vec<&[u8]> = if p.kind.multi_arg() {
                split_spaces(value)
            } else {
                vec![value]
            };
            let parsed = self.parse_value(p, &words);
            match parsed {
                Ok(v) => {
                    let v = match (p.name, v) {
                        // Resizing the backlog at runtime never goes below 16k
                        // (a config-file value is kept as written).
                        ("repl-backlog-size", Value::Int(b)) => Value::Int(b.max(16 * 1024)),
                        (_, v) => v,
                    };
                    self.store(idx, v)
                }
                Err(e) => {
                    *self = backup;
                    let shown = if alias {
                        p.alias.unwrap_or(p.name)
                    } else {
                        p.name
                    };
                    return Err(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{shown}') - {e}"
                    ));
                }
            }
        }
        let mut changed = Vec::new();
        for (&(idx, _), old) in chosen.iter().zip(before) {
            let name = PARAMS[idx].name;
            if self.render(idx) != old && !changed.contains(&name) {
                changed.push(name);
            }
        }
        Ok(changed)
    }

    /// `log_level()` for the logger.
    pub fn log_level(&self) -> crate::log::Level {
        self.loglevel
    }

    /// Whether `name` (any case, alias or canonical) is a secret parameter
    /// whose `CONFIG SET` value must be redacted from SLOWLOG / MONITOR.
    pub fn is_sensitive(name: &[u8]) -> bool {
        table::lookup(name).is_some_and(|(i, _)| PARAMS[i].flags & table::SENSITIVE != 0)
    }

    /// The canonical names of every parameter (for tests / `CONFIG GET *`).
    pub fn parameter_names() -> impl Iterator<Item = &'static str> {
        PARAMS.iter().map(|p| p.name)
    }

    /// Parses a complete configuration text (the contents of a redis.conf,
    /// possibly followed by `--name value` lines) on top of the defaults.
    /// Errors are formatted like [`load`]'s.
    pub fn from_text(text: &[u8]) -> Result<Config, String> {
        let mut c = Config::new();
        c.load_text(text, 0)?;
        c.finish_loading()?;
        Ok(c)
    }

    // ------------------------------------------------------------------
    // value storage and rendering

    fn value(&self, idx: usize) -> Value {
        let v = match &PARAMS[idx].access {
            Access::Field(get, _) => get(self),
            Access::Other => self.others.get(idx).cloned().unwrap_or(Value::Unused),
        };
        match (PARAMS[idx].kind, v) {
            (Kind::Enum { .. }, Value::Int(i)) => Value::Enum(i as i32),
            (_, v) => v,
        }
    }

    fn store(&mut self, idx: usize, v: Value) {
        let v = match (PARAMS[idx].name, v) {
            // redis treats hz as a hint and caps it.
            ("hz", Value::Int(h)) => Value::Int(h.clamp(1, 500)),
            (_, v) => v,
        };
        match &PARAMS[idx].access {
            Access::Field(_, put) => put(self, v),
            Access::Other => {
                if let Some(slot) = self.others.get_mut(idx) {
                    *slot = v;
                }
            }
        }
    }

    fn render(&self, idx: usize) -> Vec<u8> {
        render_value(&PARAMS[idx].kind, &self.value(idx))
    }

    // ------------------------------------------------------------------
    // parsing one parameter's words

    fn parse_value(&self, p: &Param, args: &[&[u8]]) -> Result<Value, String> {
        let single = || -> Result<&[u8], String> {
            match args {
                [one] => Ok(one),
                _ => Err("wrong number of arguments".into()),
            }
        };
        match p.kind {
            Kind::Bool => {
                let a = single()?;
                if a.eq_ignore_ascii_case(b"yes") {
                    if p.name == "activedefrag" {
                        // As a redis built without its patched jemalloc.
                        return Err(
                            "Active defragmentation cannot be enabled: it requires a Redis server compiled \
                                    with a modified Jemalloc like the one shipped by default with the Redis source \
                                    distribution"
                                .into(),
                        );
                    }
                    Ok(Value::Bool(true))
                } else if a.eq_ignore_ascii_case(b"no") {
                    Ok(Value::Bool(false))
                } else {
                    Err("argument must be 'yes' or 'no'".into())
                }
            }
            Kind::Int { min, max } => {
                let v = parse::string2ll(single()?)
                    .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
                if v < min || v > max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                Ok(Value::Int(v))
            }
            Kind::Octal { min, max } => {
                let a = single()?;
                let (v, end, overflow) = parse::strtoll(a, 8);
                if overflow || end != a.len() {
                    return Err("argument couldn't be parsed as an octal number".into());
                }
                if v < min || v > max {
                    return Err(format!(
                        "argument must be between {min:o} and {max:o} inclusive"
                    ));
                }
                Ok(Value::Int(v))
            }
            Kind::Mem {
                min,
                max,
                unsigned,
                percent,
            } => {
                let a = single()?;
                let v: i64 = if let Some(m) = parse::memtoull(a) {
                    m as i64
                } else if percent
                    && a.len() > 1
                    && a.last() == Some(&b'%')
                    && let Some(n) = parse::string2ll(&a[..a.len() - 1])
                    && n >= 0
                {
                    -n
                } else if percent {
                    return Err("argument must be a memory or percent value".into());
                } else {
                    return Err("argument must be a memory value".into());
                };
                if unsigned {
                    let u = v as u64 as i128;
                    if u < min || u > max {
                        return Err(format!(
                            "argument must be between {min} and {max} inclusive"
                        ));
                    }
                } else if percent && v < 0 {
                    if i128::from(v) < min {
                        return Err(format!(
                            "percentage argument must be less or equal to {}",
                            -min
                        ));
                    }
                } else if i128::from(v) < min || i128::from(v) > max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                Ok(Value::Int(v))
            }
            Kind::Enum { names, flags } => {
                let bad = || {
                    let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                    format!(
                        "argument(s) must be one of the following: {}",
                        list.join(", ")
                    )
                };
                if args.is_empty() || (!flags && args.len() != 1) {
                    return Err(bad());
                }
                let mut value = 0i32;
                for a in args {
                    let mut matched = false;
                    for &(n, v) in names {
                        if n.as_bytes().eq_ignore_ascii_case(a) {
                            value |= v;
                            matched = true;
                        }
                    }
                    if !matched {
                        return Err(bad());
                    }
                }
                if flags
                    && value & shutdown_flags::SAVE as i32 != 0
                    && value & shutdown_flags::NOSAVE as i32 != 0
                {
                    return Err(
                        "shutdown options SAVE and NOSAVE can't be used simultaneously".into(),
                    );
                }
                if p.name == "repl-diskless-load" && value == 2 {
                    // swapdb loads next to the old data and keeps it on a
                    // failed load: codis-server keeps no second dataset.
                    return Err(
                        "swapdb is not supported by codis-server: use disabled or on-empty-db"
                            .into(),
                    );
                }
                Ok(Value::Enum(value))
            }
            Kind::Str(check) => {
                let a = single()?;
                check_string(p.name, check, a)?;
                Ok(Value::Str(a.to_vec()))
            }
            Kind::Dir => {
                let a = single()?;
                Ok(Value::Str(self.resolve_dir(a)?))
            }
            Kind::NotifyKeyspaceEvents => {
                let a = single()?;
                parse_notify(a)
                    .map(|f| Value::Int(i64::from(f)))
                    .ok_or_else(|| {
                        "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string()
                    })
            }
            Kind::Save => {
                let words: &[&[u8]] = if args.len() == 1 && args[0].is_empty() {
                    &[]
                } else {
                    args
                };
                if !words.len().is_multiple_of(2) {
                    return Err("Invalid save parameters".into());
                }
                let mut out = Vec::with_capacity(words.len() / 2);
                for pair in words.chunks(2) {
                    let secs = parse::strtoll_full(pair[0]).filter(|&s| s >= 1);
                    let changes = parse::strtoll_full(pair[1]).filter(|&c| c >= 0);
                    match (secs, changes) {
                        // redis keeps `changes` in a C int.
                        (Some(s), Some(c)) => out.push(SaveParam {
                            seconds: s,
                            changes: c as i32,
                        }),
                        _ => return Err("Invalid save parameters".into()),
                    }
                }
                Ok(Value::Save(out))
            }
            Kind::Bind => {
                if args.len() > BIND_MAX {
                    return Err("Too many bind addresses specified.".into());
                }
                let words: &[&[u8]] = if args.len() == 1 && args[0].is_empty() {
                    &[]
                } else {
                    args
                };
                Ok(Value::List(words.iter().map(|w| w.to_vec()).collect()))
            }
            Kind::ClientOutputBufferLimit => {
                if !args.len().is_multiple_of(4) {
                    return Err("Wrong number of arguments in buffer limit configuration.".into());
                }
                let mut limits = match self.value(table_index(p)) {
                    Value::Obuf(o) => o,
                    _ => [ClientBufferLimit::default(); 3],
                };
                for chunk in args.chunks(4) {
                    let class = if chunk[0].eq_ignore_ascii_case(b"normal") {
                        CLIENT_CLASS_NORMAL
                    } else if chunk[0].eq_ignore_ascii_case(b"slave")
                        || chunk[0].eq_ignore_ascii_case(b"replica")
                    {
                        CLIENT_CLASS_REPLICA
                    } else if chunk[0].eq_ignore_ascii_case(b"pubsub") {
                        CLIENT_CLASS_PUBSUB
                    } else {
                        return Err(
                            "Invalid client class specified in buffer limit configuration.".into(),
                        );
                    };
                    let hard = parse::memtoull(chunk[1]);
                    let soft = parse::memtoull(chunk[2]);
                    let secs = parse::strtoll_full(chunk[3]).filter(|&s| s >= 0);
                    match (hard, soft, secs) {
                        (Some(h), Some(s), Some(t)) => {
                            limits[class] = ClientBufferLimit {
                                hard_bytes: h,
                                soft_bytes: s,
                                soft_seconds: t,
                            };
                        }
                        _ => {
                            return Err(
                                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
                            );
                        }
                    }
                }
                Ok(Value::Obuf(limits))
            }
            Kind::OomScoreAdjValues => {
                if args.len() != 3 {
                    return Err("wrong number of arguments".into());
                }
                let mut out = [0i32; 3];
                for (slot, a) in out.iter_mut().zip(args) {
                    match parse::strtoll_full(a) {
                        Some(v) if (-2000..=2000).contains(&v) => *slot = v as i32,
                        _ => {
                            return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into());
                        }
                    }
                }
                Ok(Value::Oom(out))
            }
            Kind::Percentiles => {
                let words: &[&[u8]] = if args.len() == 1 && args[0].is_empty() {
                    &[]
                } else {
                    args
                };
                let mut out = Vec::with_capacity(words.len());
                for w in words {
                    let v = parse::string2d(w).ok_or_else(|| {
                        "Invalid latency-tracking-info-percentiles parameters".to_string()
                    })?;
                    if !(0.0..=100.0).contains(&v) {
                        return Err(
                            "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into(),
                        );
                    }
                    out.push(v);
                }
                Ok(Value::Floats(out))
            }
            Kind::ReplicaOf => {
                let [host, port] = args else {
                    return Err("wrong number of arguments".into());
                };
                if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
                    return Ok(Value::ReplicaOf(None));
                }
                match parse::strtoll_full(port) {
                    Some(n) if (0..=65535).contains(&n) => Ok(Value::ReplicaOf(Some((
                        String::from_utf8_lossy(host).into_owned(),
                        n as u16,
                    )))),
                    _ => Err("Invalid master port".into()),
                }
            }
        }
    }

    /// `dir` semantics without `chdir()`: a relative path is taken relative to
    /// the current `dir`; the result must be an existing directory; errors are
    /// `chdir`'s `strerror` text.
    fn resolve_dir(&self, a: &[u8]) -> Result<Vec<u8>, String> {
        if a.is_empty() {
            return Err("No such file or directory".into());
        }
        let target = Path::new(self.dir.as_str()).join(bytes_path(a));
        let canon = std::fs::canonicalize(&target).map_err(|e| strerror(&e))?;
        match std::fs::metadata(&canon) {
            Ok(m) if m.is_dir() => Ok(path_bytes(&canon)),
            Ok(_) => Err("Not a directory".into()),
            Err(e) => Err(strerror(&e)),
        }
    }

    // ------------------------------------------------------------------
    // loading

    /// Processes a configuration text (redis `loadServerConfigFromString`).
    fn load_text(&mut self, text: &[u8], depth: usize) -> Result<(), String> {
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = trim_line(raw);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let fail = |err: &str| {
                format!(
                    "\n*** FATAL CONFIG FILE ERROR (Redis {VERSION}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{err}",
                    i + 1,
                    String::from_utf8_lossy(line)
                )
            };
            let Some(argv) = split_args(line) else {
                return Err(fail("Unbalanced quotes in configuration line"));
            };
            if argv.is_empty() {
                continue;
            }
            match self.load_directive(&argv, depth) {
                Ok(()) => {}
                Err(LineError::Line(e)) => return Err(fail(&e)),
                Err(LineError::Fatal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    fn load_directive(&mut self, argv: &[Vec<u8>], depth: usize) -> Result<(), LineError> {
        let name = argv[0].to_ascii_lowercase();
        let args: Vec<&[u8]> = argv[1..].iter().map(|a| a.as_slice()).collect();
        if let Some((idx, _)) = table::lookup(&name) {
            let p = &PARAMS[idx];
            if !p.kind.multi_arg() && args.len() != 1 {
                return Err(LineError::Line("wrong number of arguments".into()));
            }
            // `--save "900 1 300 10"`: one argument holding several words is
            // split again (an unbalanced one gives no words, like redis).
            let resplit: Vec<Vec<u8>> =
                if p.kind.multi_arg() && args.len() == 1 && !args[0].is_empty() {
                    split_args(args[0]).unwrap_or_default()
                } else {
                    argv[1..].to_vec()
                };
            let words_vec: Vec<&[u8]> = resplit.iter().map(|w| w.as_slice()).collect();
            let words: &[&[u8]] = &words_vec;
            let v = self.parse_value(p, words).map_err(LineError::Line)?;
            let v = match (p.kind, v) {
                // The first `save` line replaces the defaults, later ones append;
                // `save ""` always clears.
                (Kind::Save, Value::Save(new)) => {
                    let clear = words.len() == 1 && words[0].is_empty();
                    let mut cur = if clear || !self.save_loaded {
                        Vec::new()
                    } else {
                        self.save_params.clone()
                    };
                    self.save_loaded = true;
                    cur.extend(new);
                    Value::Save(cur)
                }
                (_, v) => v,
            };
            self.store(idx, v);
            return Ok(());
        }
        match (name.as_slice(), args.len()) {
            // Deprecated in 7.0 and silently ignored.
            (
                b"list-max-ziplist-entries" | b"list-max-ziplist-value" | b"lua-replicate-commands",
                1,
            ) => Ok(()),
            (b"include", 1) => {
                if depth >= 16 {
                    return Err(LineError::Line("Too many nested include directives".into()));
                }
                let path = Path::new(self.dir.as_str()).join(bytes_path(args[0]));
                let text = std::fs::read(&path).map_err(|e| {
                    LineError::Fatal(format!(
                        "Fatal error, can't open config file '{}': {}",
                        String::from_utf8_lossy(args[0]),
                        strerror(&e)
                    ))
                })?;
                self.load_text(&text, depth + 1).map_err(LineError::Fatal)
            }
            (b"rename-command", 2) => {
                let exists = |n: &[u8]| {
                    protocol::command::COMMANDS
                        .iter()
                        .any(|c| c.name.as_bytes().eq_ignore_ascii_case(n))
                };
                if !exists(args[0]) {
                    return Err(LineError::Line("No such command in rename-command".into()));
                }
                if !args[1].is_empty() && exists(args[1]) {
                    return Err(LineError::Line("Target command name already exists".into()));
                }
                self.rename_commands
                    .push((args[0].to_vec(), args[1].to_vec()));
                Ok(())
            }
            (b"user", n) if n >= 1 => {
                // Checked now (a bad rule stops the start, as in Redis),
                // applied when the server starts (acl.rs).
                let scratch = crate::acl::Acl::default();
                scratch
                    .set_user(args[0], &args[1..])
                    .map_err(|e| LineError::Line(e.trim_start_matches("ERR ").to_string()))?;
                self.users.push(args.iter().map(|a| a.to_vec()).collect());
                Ok(())
            }
            (b"loadmodule", n) if n >= 1 => Err(LineError::Line(
                "Module loading is not supported by codis-server".into(),
            )),
            (b"sentinel", 0) => Ok(()),
            (b"sentinel", _) => Err(LineError::Line(
                "sentinel directive while not in sentinel mode".into(),
            )),
            _ => Err(LineError::Line(
                "Bad directive or wrong number of arguments".into(),
            )),
        }
    }

    /// Checks done by redis once every line was read.
    fn finish_loading(&mut self) -> Result<(), String> {
        self.save_loaded = false;
        if !self.logfile.is_empty() {
            let path = Path::new(self.dir.as_str()).join(&self.logfile);
            if let Err(e) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                return Err(format!(
                    "\n*** FATAL CONFIG FILE ERROR (Redis {VERSION}) ***\nCan't open the log file: {}",
                    strerror(&e)
                ));
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // CONFIG REWRITE

    /// `CONFIG REWRITE`: rewrites [`Config::config_file`] in place, keeping
    /// comments, blank lines and unknown directives; every known parameter
    /// appearing in the file is rewritten at its first occurrence (later
    /// occurrences dropped); parameters not in the file are appended (after a
    /// `# Generated by CONFIG REWRITE` line, added once) when they differ from
    /// the default. Errors are the redis reply texts (without `-`).
    pub fn rewrite(&self) -> Result<(), String> {
        let Some(path) = self.config_file.as_deref() else {
            return Err("ERR The server is running without a config file".into());
        };
        let old = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("ERR Rewriting config file: {}", strerror(&e))),
        };
        let text = self.rewrite_text(&old);
        let tmp = format!("{path}.tmp-codis-rewrite");
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("ERR Rewriting config file: {}", strerror(&e))
            })
    }

    /// The new config file contents for [`Config::rewrite`].
    pub(crate) fn rewrite_text(&self, old: &[u8]) -> Vec<u8> {
        const MARKER: &[u8] = b"# Generated by CONFIG REWRITE";
        let defaults = Config::new();
        let mut done = vec![false; PARAMS.len()];
        let mut out: Vec<u8> = Vec::with_capacity(old.len() + 256);
        let mut has_marker = false;
        let mut lines: Vec<&[u8]> = old.split(|&b| b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for raw in lines {
            let line = trim_line(raw);
            has_marker |= line == MARKER;
            let known = split_args(line)
                .and_then(|argv| argv.first().cloned())
                .filter(|_| !line.starts_with(b"#"))
                .and_then(|name| table::lookup(&name));
            match known {
                Some((idx, _)) => {
                    if !done[idx] {
                        done[idx] = true;
                        out.extend(self.rewrite_lines(idx));
                    }
                }
                None => {
                    out.extend_from_slice(raw);
                    out.push(b'\n');
                }
            }
        }
        let mut tail = Vec::new();
        for (idx, p) in PARAMS.iter().enumerate() {
            if done[idx] || self.render(idx) == defaults.render(idx) {
                continue;
            }
            // A default-valued `dir` etc. is never forced; neither are
            // parameters that cannot be written back meaningfully.
            if matches!(p.kind, Kind::Dir) && self.dir == defaults.dir {
                continue;
            }
            tail.extend(self.rewrite_lines(idx));
        }
        if !tail.is_empty() {
            if out.last().is_some_and(|&b| b != b'\n') {
                out.push(b'\n');
            }
            if !has_marker {
                out.extend_from_slice(MARKER);
                out.push(b'\n');
            }
            out.extend(tail);
        }
        out
    }

    /// The config-file line(s) expressing parameter `idx`'s current value.
    fn rewrite_lines(&self, idx: usize) -> Vec<u8> {
        let p = &PARAMS[idx];
        let mut out = Vec::new();
        let mut line = |words: &[&[u8]]| {
            out.extend_from_slice(p.name.as_bytes());
            for w in words {
                out.push(b' ');
                out.extend_from_slice(&quote_if_needed(w));
            }
            out.push(b'\n');
        };
        match self.value(idx) {
            Value::Save(s) if s.is_empty() => line(&[b""]),
            Value::Save(s) => {
                for sp in s {
                    let a = sp.seconds.to_string();
                    let b = sp.changes.to_string();
                    line(&[a.as_bytes(), b.as_bytes()]);
                }
            }
            Value::Obuf(o) => {
                for (class, l) in ["normal", "slave", "pubsub"].iter().zip(o) {
                    let h = l.hard_bytes.to_string();
                    let s = l.soft_bytes.to_string();
                    let t = l.soft_seconds.to_string();
                    line(&[class.as_bytes(), h.as_bytes(), s.as_bytes(), t.as_bytes()]);
                }
            }
            // A master's `replicaof` line goes (Redis'
            // rewriteConfigReplicaOfOption).
            Value::ReplicaOf(None) => {}
            Value::List(l) if l.is_empty() => line(&[b""]),
            v if p.kind.multi_arg() => {
                let r = render_value(&p.kind, &v);
                let words = split_spaces(&r);
                line(&words);
            }
            v => {
                let r = render_value(&p.kind, &v);
                line(&[&r]);
            }
        }
        out
    }
}

enum LineError {
    /// Reported with the "at line N" context.
    Line(String),
    /// Already fully formatted (nested include, unreadable file).
    Fatal(String),
}

/// The table index of `p` (it is always a row of [`PARAMS`]).
fn table_index(p: &Param) -> usize {
    table::index_of(p.name).unwrap_or(0)
}

/// Renders a value the way `CONFIG GET` shows it.
fn render_value(kind: &Kind, v: &Value) -> Vec<u8> {
    match (kind, v) {
        (_, Value::Bool(b)) => (if *b { "yes" } else { "no" }).into(),
        (Kind::Mem { percent, .. }, Value::Int(i)) => {
            if *percent && *i < 0 {
                format!("{}%", i.unsigned_abs()).into_bytes()
            } else {
                (*i as u64).to_string().into_bytes()
            }
        }
        (Kind::Octal { .. }, Value::Int(i)) => format!("{i:o}").into_bytes(),
        (Kind::NotifyKeyspaceEvents, Value::Int(i)) => notify_to_string(*i as u32).into_bytes(),
        (_, Value::Int(i)) => i.to_string().into_bytes(),
        (Kind::Enum { names, flags }, Value::Enum(e)) => {
            if let Some((n, _)) = names.iter().find(|(_, v)| v == e) {
                return n.as_bytes().to_vec();
            }
            let mut out: Vec<&str> = Vec::new();
            let mut left = *e;
            if *flags {
                for &(n, v) in names.iter() {
                    if v != 0 && left & v == v {
                        out.push(n);
                        left &= !v;
                    }
                }
            }
            out.join(" ").into_bytes()
        }
        (_, Value::Enum(e)) => e.to_string().into_bytes(),
        (_, Value::Str(s)) => s.clone(),
        (_, Value::List(l)) => l.join(&b' '),
        (_, Value::Save(s)) => s
            .iter()
            .map(|p| format!("{} {}", p.seconds, p.changes))
            .collect::<Vec<_>>()
            .join(" ")
            .into_bytes(),
        (_, Value::Obuf(o)) => ["normal", "slave", "pubsub"]
            .iter()
            .zip(o)
            .map(|(c, l)| format!("{c} {} {} {}", l.hard_bytes, l.soft_bytes, l.soft_seconds))
            .collect::<Vec<_>>()
            .join(" ")
            .into_bytes(),
        (_, Value::Oom(o)) => format!("{} {} {}", o[0], o[1], o[2]).into_bytes(),
        (_, Value::Floats(f)) => f
            .iter()
            .map(|v| parse::d2string(*v))
            .collect::<Vec<_>>()
            .join(" ")
            .into_bytes(),
        (_, Value::ReplicaOf(r)) => match r {
            Some((h, p)) => format!("{h} {p}").into_bytes(),
            None => Vec::new(),
        },
        (_, Value::Unused) => Vec::new(),
    }
}

/// `notify-keyspace-events` letters to flags; `None` on an unknown letter.
fn parse_notify(s: &[u8]) -> Option<u32> {
    let mut f = 0;
    for &c in s {
        f |= match c {
            b'A' => notify::ALL,
            b'g' => notify::GENERIC,
            b'$' => notify::STRING,
            b'l' => notify::LIST,
            b's' => notify::SET,
            b'h' => notify::HASH,
            b'z' => notify::ZSET,
            b'x' => notify::EXPIRED,
            b'e' => notify::EVICTED,
            b'K' => notify::KEYSPACE,
            b'E' => notify::KEYEVENT,
            b't' => notify::STREAM,
            b'm' => notify::KEY_MISS,
            b'd' => notify::MODULE,
            b'n' => notify::NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// Flags back to letters, in redis' canonical order.
fn notify_to_string(f: u32) -> String {
    let mut s = String::new();
    if f & notify::ALL == notify::ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (notify::GENERIC, 'g'),
            (notify::STRING, '$'),
            (notify::LIST, 'l'),
            (notify::SET, 's'),
            (notify::HASH, 'h'),
            (notify::ZSET, 'z'),
            (notify::EXPIRED, 'x'),
            (notify::EVICTED, 'e'),
            (notify::STREAM, 't'),
            (notify::MODULE, 'd'),
            (notify::NEW, 'n'),
        ] {
            if f & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [
        (notify::KEYSPACE, 'K'),
        (notify::KEYEVENT, 'E'),
        (notify::KEY_MISS, 'm'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

fn check_string(name: &str, check: StrCheck, s: &[u8]) -> Result<(), String> {
    match check {
        StrCheck::None => Ok(()),
        StrCheck::DbFilename => {
            if s.contains(&b'/') {
                Err("dbfilename can't be a path, just a filename".into())
            } else {
                Ok(())
            }
        }
        StrCheck::AppendFilename | StrCheck::AppendDirname => {
            let what = if check == StrCheck::AppendFilename {
                "filename"
            } else {
                "dirname"
            };
            if s.is_empty() {
                Err(format!("{name} can't be empty"))
            } else if s.contains(&b'/') {
                Err(format!("{name} can't be a path, just a {what}"))
            } else {
                Ok(())
            }
        }
        StrCheck::Hostname => {
            if s.len() >= 256 {
                Err("Hostnames must be less than 256 characters".into())
            } else if !s
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
            {
                Err("Hostnames may only contain alphanumeric characters, hyphens or dots".into())
            } else {
                Ok(())
            }
        }
        StrCheck::ProcTitle => {
            if proc_title_ok(s) {
                Ok(())
            } else {
                Err("template format is invalid or contains unknown variables".into())
            }
        }
    }
}

/// redis' `validateProcTitleTemplate`: `{{` is a literal brace, `{name}` one of
/// the known variables, and the expansion must not be empty.
fn proc_title_ok(t: &[u8]) -> bool {
    const VARS: &[&[u8]] = &[
        b"title",
        b"listen-addr",
        b"server-mode",
        b"port",
        b"tls-port",
        b"unixsocket",
        b"config-file",
    ];
    let mut i = 0;
    let mut nonempty = false;
    while i < t.len() {
        if t[i] != b'{' {
            nonempty |= t[i] != b' ';
            i += 1;
            continue;
        }
        match t.get(i + 1) {
            None => return false,
            Some(b'{') => {
                nonempty = true;
                i += 2;
                continue;
            }
            Some(_) => {}
        }
        let Some(len) = t[i + 1..].iter().position(|&c| c == b'}') else {
            return false;
        };
        let var = &t[i + 1..i + 1 + len];
        if !VARS.contains(&var) {
            return false;
        }
        // title / server-mode / unixsocket / config-file may expand to "".
        nonempty |= matches!(var, b"listen-addr" | b"port" | b"tls-port");
        i += len + 2;
    }
    nonempty
}

/// redis `sdssplitlen(value, " ")`, as CONFIG SET does for multi-word
/// parameters: single-space separated, empty input = no words.
fn split_spaces(s: &[u8]) -> Vec<&[u8]> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(|&b| b == b' ').collect()
    }
}

/// redis `sdstrim(line, " \t\r\n")`.
fn trim_line(l: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = l.iter().position(|c| !ws(c)).unwrap_or(l.len());
    let end = l.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    &l[start..end.max(start)]
}

/// Quotes a config-file word only when it would not read back verbatim.
fn quote_if_needed(w: &[u8]) -> Vec<u8> {
    let plain = !w.is_empty()
        && w.iter()
            .all(|&c| c > b' ' && c < 0x7f && c != b'"' && c != b'\'' && c != b'#' && c != b'\\');
    if plain {
        w.to_vec()
    } else {
        repr(w).into_bytes()
    }
}

/// `strerror(errno)` for an I/O error (Rust's text without " (os error N)").
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(n) => s[..n].to_string(),
        None => s,
    }
}

fn path_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

fn bytes_path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

// ----------------------------------------------------------------------
// command line

/// What the command line asked for, before any file is read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Argv {
    pub config_file: Option<String>,
    pub from_stdin: bool,
    /// The `--name value` options as config lines (`name "value" ...`),
    /// joined with `\n`, exactly as redis builds them.
    pub options: Vec<u8>,
}

/// redis-server's `main()` option scan. `args` excludes argv[0].
///
/// * a first argument not starting with `-` is the config file;
/// * `-` as the first or the last argument reads the config from stdin;
/// * `--name` starts a new line; the following arguments are its values
///   (quoted with [`repr`]) until the next `--word`, except that right after a
///   bare `--name` the next argument is always a value, even if it starts
///   with `--` (`--requirepass --secret`);
/// * `--name value` given as one argument is split like a config line;
/// * `--save` directly followed by another option (or last) means `save ""`.
pub(crate) fn scan_argv(args: &[String]) -> Argv {
    let mut out = Argv::default();
    let mut j = 0;
    if let Some(first) = args.first()
        && !first.starts_with('-')
    {
        out.config_file = Some(first.clone());
        j = 1;
    }
    let n = args.len();
    let mut handled_last = true;
    let opts = &mut out.options;
    while j < n {
        let a = args[j].as_bytes();
        if a == b"-" && (j == 0 || j == n - 1) {
            out.from_stdin = true;
        } else if handled_last && a.starts_with(b"--") {
            if !opts.is_empty() {
                opts.push(b'\n');
            }
            opts.extend_from_slice(&a[2..]);
            opts.push(b' ');
            let words = split_args(a).map_or(0, |w| w.len());
            if words == 1 {
                handled_last = false;
                let next_is_option = j + 1 < n && args[j + 1].starts_with("--");
                if a.eq_ignore_ascii_case(b"--save") && (next_is_option || j == n - 1) {
                    opts.extend_from_slice(b"\"\"");
                    handled_last = next_is_option;
                } else if a.eq_ignore_ascii_case(b"--sentinel") && next_is_option {
                    handled_last = true;
                }
            } else {
                handled_last = true;
            }
        } else {
            opts.extend_from_slice(repr(a).as_bytes());
            opts.push(b' ');
            handled_last = true;
        }
        j += 1;
    }
    out
}

/// Loads the configuration like `redis-server [config-file] [--name value ...]`
/// (`args` excludes argv[0]; `--help` / `--version` are the caller's): the
/// file's lines first, then stdin's (with `-`), then one line per `--name`
/// option, later lines winning. On error, returns exactly what redis-server
/// 7.0 prints on stderr before exiting with status 1 (starting with a blank
/// line; no trailing newline — print it with `eprintln!`), e.g.
///
/// ```text
///
/// *** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***
/// Reading the configuration file, at line 2
/// >>> 'port "abc"'
/// argument couldn't be parsed into an integer
/// ```
///
/// An unreadable config file gives `Fatal error, can't open config file
/// '/abs/path': No such file or directory` (redis logs that one as a log
/// line).
pub fn load(args: &[String]) -> Result<Config, String> {
    let argv = scan_argv(args);
    let mut text = Vec::new();
    let mut cfg = Config::new();
    if let Some(file) = &argv.config_file {
        let abs = match std::env::current_dir() {
            Ok(cwd) if !file.starts_with('/') => cwd.join(file),
            _ => PathBuf::from(file),
        };
        let abs_s = abs.to_string_lossy().into_owned();
        match std::fs::read(&abs) {
            Ok(t) => text.extend_from_slice(&t),
            Err(e) => {
                return Err(format!(
                    "Fatal error, can't open config file '{abs_s}': {}",
                    strerror(&e)
                ));
            }
        }
        cfg.config_file = Some(abs_s);
    }
    if argv.from_stdin {
        let mut t = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut t) {
            return Err(format!(
                "Fatal error, can't read config from stdin: {}",
                strerror(&e)
            ));
        }
        text.extend_from_slice(&t);
    }
    if !argv.options.is_empty() {
        text.push(b'\n');
        text.extend_from_slice(&argv.options);
    }
    cfg.load_text(&text, 0)?;
    cfg.finish_loading()?;
    Ok(cfg)
}
