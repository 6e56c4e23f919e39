//! The parameter table: one row per redis 7.0 config parameter (TLS ones
//! excepted: codis-server has no TLS), with its alias, type, bounds, flags and
//! default, and where its value lives (a typed [`Config`] field, or the
//! generic store for parameters codis-server accepts and reports but does not
//! act on).

use super::{Config, FieldValue, Value};

/// `CONFIG SET` refuses it ("can't set immutable config"), as in redis.
pub(crate) const IMMUTABLE: u8 = 1 << 0;
/// `CONFIG SET` needs `enable-protected-configs` ("can't set protected config").
pub(crate) const PROTECTED: u8 = 1 << 1;
/// The value is a secret (redact it from SLOWLOG / MONITOR / logs).
pub(crate) const SENSITIVE: u8 = 1 << 2;
/// Mutable in redis, but codis-server does not re-apply it at runtime (no
/// listener rebinding): `CONFIG SET` answers like for an immutable one.
pub(crate) const NO_RUNTIME: u8 = 1 << 3;
/// Left out of `CONFIG GET` patterns (redis' `HIDDEN_CONFIG`: test knobs);
/// an exact name still reads it.
pub(crate) const HIDDEN: u8 = 1 << 4;

const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;
const LLONG_MAX: i64 = i64::MAX;
const UINT_MAX: i64 = u32::MAX as i64;

/// Extra validation of a string parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrCheck {
    None,
    DbFilename,
    AppendFilename,
    AppendDirname,
    ProcTitle,
    Hostname,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// `yes` / `no` (any case).
    Bool,
    /// `string2ll` integer within `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// `memtoull` memory value within `min..=max`; `unsigned` for the C
    /// `unsigned long long` ones (bounds compared as u64); `percent` also
    /// accepts `N%` (stored negated, as redis does).
    Mem {
        min: i128,
        max: i128,
        unsigned: bool,
        percent: bool,
    },
    /// Octal integer (`unixsocketperm`).
    Octal {
        min: i64,
        max: i64,
    },
    /// One of `names` (any case); `flags`: several names OR-ed together.
    Enum {
        names: &'static [(&'static str, i32)],
        flags: bool,
    },
    Str(StrCheck),
    Save,
    Bind,
    Dir,
    ClientOutputBufferLimit,
    OomScoreAdjValues,
    Percentiles,
    NotifyKeyspaceEvents,
    ReplicaOf,
}

impl Kind {
    /// redis' MULTI_ARG_CONFIG: takes several words (a single config-file
    /// argument is re-split; CONFIG SET splits its value on spaces).
    pub(crate) fn multi_arg(&self) -> bool {
        match self {
            Kind::Save
            | Kind::Bind
            | Kind::ClientOutputBufferLimit
            | Kind::OomScoreAdjValues
            | Kind::Percentiles
            | Kind::ReplicaOf => true,
            Kind::Enum { flags, .. } => *flags,
            _ => false,
        }
    }
}

/// Where a parameter's value is stored.
pub(crate) enum Access {
    /// A typed field of [`Config`]: read it as a [`Value`], write a [`Value`].
    Field(fn(&Config) -> Value, fn(&mut Config, Value)),
    /// The generic store (`Config::others[index]`).
    Other,
}

pub(crate) struct Param {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub flags: u8,
    pub kind: Kind,
    /// The default, written as a config-file value (multi-arg ones split on
    /// spaces). `dir`'s default is the process' working directory.
    pub default: &'static str,
    pub access: Access,
}

pub(crate) const YESNO_LOCAL: &[(&str, i32)] = &[("no", 0), ("yes", 1), ("local", 2)];
pub(crate) const LOGLEVEL: &[(&str, i32)] =
    &[("debug", 0), ("verbose", 1), ("notice", 2), ("warning", 3)];
pub(crate) const MAXMEMORY_POLICY: &[(&str, i32)] = &[
    ("volatile-lru", 0),
    ("volatile-lfu", 1),
    ("volatile-random", 2),
    ("volatile-ttl", 3),
    ("allkeys-lru", 4),
    ("allkeys-lfu", 5),
    ("allkeys-random", 6),
    ("noeviction", 7),
];
pub(crate) const APPENDFSYNC: &[(&str, i32)] = &[("everysec", 0), ("always", 1), ("no", 2)];
pub(crate) const SUPERVISED: &[(&str, i32)] =
    &[("upstart", 0), ("systemd", 1), ("auto", 2), ("no", 3)];
pub(crate) const SHUTDOWN: &[(&str, i32)] = &[
    ("default", 0),
    ("save", 1),
    ("nosave", 2),
    ("now", 4),
    ("force", 8),
];
const ACL_PUBSUB: &[(&str, i32)] = &[("allchannels", 1), ("resetchannels", 0)];
const ENDPOINT: &[(&str, i32)] = &[("ip", 0), ("hostname", 1), ("unknown-endpoint", 2)];
const OOM_SCORE_ADJ: &[(&str, i32)] = &[("no", 0), ("yes", 1), ("relative", 1), ("absolute", 2)];
const PROPAGATION: &[(&str, i32)] = &[("ignore", 0), ("panic", 1), ("panic-on-replicas", 2)];
const DISKLESS_LOAD: &[(&str, i32)] = &[("disabled", 0), ("on-empty-db", 1), ("swapdb", 2)];
const SANITIZE: &[(&str, i32)] = &[("no", 0), ("yes", 1), ("clients", 2)];
const SYSLOG_FACILITY: &[(&str, i32)] = &[
    ("user", 0),
    ("local0", 1),
    ("local1", 2),
    ("local2", 3),
    ("local3", 4),
    ("local4", 5),
    ("local5", 6),
    ("local6", 7),
    ("local7", 8),
];

macro_rules! field {
    ($f:ident) => {
        Access::Field(
            |c: &Config| FieldValue::to_value(&c.$f),
            |c: &mut Config, v: Value| {
                if let Some(x) = FieldValue::from_value(v) {
                    c.$f = x;
                }
            },
        )
    };
}

macro_rules! p {
    ($name:literal, $alias:expr, $flags:expr, $kind:expr, $def:literal) => {
        Param {
            name: $name,
            alias: $alias,
            flags: $flags,
            kind: $kind,
            default: $def,
            access: Access::Other,
        }
    };
    ($name:literal, $alias:expr, $flags:expr, $kind:expr, $def:literal, $f:ident) => {
        Param {
            name: $name,
            alias: $alias,
            flags: $flags,
            kind: $kind,
            default: $def,
            access: field!($f),
        }
    };
}

const B: Kind = Kind::Bool;
const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}
const fn mem(min: i64, max: i64) -> Kind {
    Kind::Mem {
        min: min as i128,
        max: max as i128,
        unsigned: false,
        percent: false,
    }
}
const MEM_ULL: Kind = Kind::Mem {
    min: 0,
    max: u64::MAX as i128,
    unsigned: true,
    percent: false,
};
const fn en(names: &'static [(&'static str, i32)]) -> Kind {
    Kind::Enum {
        names,
        flags: false,
    }
}
const S: Kind = Kind::Str(StrCheck::None);
const N: Option<&str> = None;

/// Every parameter, in the order `CONFIG GET` patterns report them.
pub(crate) static PARAMS: &[Param] = &[
    // --- networking ---
    p!("bind", N, NO_RUNTIME, Kind::Bind, "* -::*", bind),
    p!("port", N, NO_RUNTIME, int(0, 65535), "6379", port),
    p!("unixsocket", N, IMMUTABLE, S, "", unixsocket),
    p!(
        "unixsocketperm",
        N,
        IMMUTABLE,
        Kind::Octal { min: 0, max: 0o777 },
        "0",
        unixsocketperm
    ),
    p!("protected-mode", N, 0, B, "yes", protected_mode),
    p!(
        "tcp-backlog",
        N,
        IMMUTABLE,
        int(0, INT_MAX),
        "511",
        tcp_backlog
    ),
    p!("timeout", N, 0, int(0, INT_MAX), "0", timeout_secs),
    p!("tcp-keepalive", N, 0, int(0, INT_MAX), "300", tcp_keepalive),
    p!("maxclients", N, 0, int(1, UINT_MAX), "10000", maxclients),
    p!("io-threads", N, IMMUTABLE, int(1, 128), "1", io_threads),
    p!("io-threads-do-reads", N, IMMUTABLE, B, "no"),
    p!("bind-source-addr", N, 0, S, ""),
    p!("socket-mark-id", N, IMMUTABLE, int(0, UINT_MAX), "0"),
    // --- general ---
    p!("daemonize", N, IMMUTABLE, B, "no", daemonize),
    p!("supervised", N, IMMUTABLE, en(SUPERVISED), "no", supervised),
    p!("pidfile", N, IMMUTABLE, S, "", pidfile),
    p!("loglevel", N, 0, en(LOGLEVEL), "notice", loglevel),
    p!("logfile", N, IMMUTABLE, S, "", logfile),
    p!("syslog-enabled", N, IMMUTABLE, B, "no"),
    p!("syslog-ident", N, IMMUTABLE, S, "redis"),
    p!(
        "syslog-facility",
        N,
        IMMUTABLE,
        en(SYSLOG_FACILITY),
        "local0"
    ),
    p!("crash-log-enabled", N, 0, B, "yes"),
    p!("crash-memcheck-enabled", N, 0, B, "yes"),
    p!("databases", N, IMMUTABLE, int(1, INT_MAX), "16", databases),
    p!("always-show-logo", N, IMMUTABLE, B, "no", always_show_logo),
    p!("set-proc-title", N, IMMUTABLE, B, "yes"),
    p!(
        "proc-title-template",
        N,
        0,
        Kind::Str(StrCheck::ProcTitle),
        "{title} {listen-addr} {server-mode}"
    ),
    p!("hz", N, 0, int(0, INT_MAX), "10", hz),
    p!("dynamic-hz", N, 0, B, "yes", dynamic_hz),
    p!(
        "enable-protected-configs",
        N,
        IMMUTABLE,
        en(YESNO_LOCAL),
        "no",
        enable_protected_configs
    ),
    p!(
        "enable-debug-command",
        N,
        IMMUTABLE,
        en(YESNO_LOCAL),
        "no",
        enable_debug_command
    ),
    p!(
        "enable-module-command",
        N,
        IMMUTABLE,
        en(YESNO_LOCAL),
        "no",
        enable_module_command
    ),
    p!("ignore-warnings", N, 0, S, ""),
    p!(
        "shutdown-on-sigint",
        N,
        0,
        Kind::Enum {
            names: SHUTDOWN,
            flags: true
        },
        "default",
        shutdown_on_sigint
    ),
    p!(
        "shutdown-on-sigterm",
        N,
        0,
        Kind::Enum {
            names: SHUTDOWN,
            flags: true
        },
        "default",
        shutdown_on_sigterm
    ),
    p!(
        "shutdown-timeout",
        N,
        0,
        int(0, INT_MAX),
        "10",
        shutdown_timeout
    ),
    p!("oom-score-adj", N, 0, en(OOM_SCORE_ADJ), "no"),
    p!(
        "oom-score-adj-values",
        N,
        0,
        Kind::OomScoreAdjValues,
        "0 200 800"
    ),
    p!("disable-thp", N, IMMUTABLE, B, "yes"),
    p!("jemalloc-bg-thread", N, 0, B, "yes"),
    p!("server_cpulist", N, IMMUTABLE, S, ""),
    p!("bio_cpulist", N, IMMUTABLE, S, ""),
    p!("aof_rewrite_cpulist", N, IMMUTABLE, S, ""),
    p!("bgsave_cpulist", N, IMMUTABLE, S, ""),
    // --- security ---
    p!("requirepass", N, SENSITIVE, S, "", requirepass),
    p!("aclfile", N, IMMUTABLE, S, ""),
    p!(
        "acllog-max-len",
        N,
        0,
        int(0, LLONG_MAX),
        "128",
        acllog_max_len
    ),
    p!("acl-pubsub-default", N, 0, en(ACL_PUBSUB), "resetchannels"),
    // --- snapshotting ---
    p!(
        "save",
        N,
        0,
        Kind::Save,
        "3600 1 300 100 60 10000",
        save_params
    ),
    p!(
        "stop-writes-on-bgsave-error",
        N,
        0,
        B,
        "yes",
        stop_writes_on_bgsave_error
    ),
    p!("rdbcompression", N, 0, B, "yes", rdbcompression),
    p!("rdbchecksum", N, IMMUTABLE, B, "yes", rdbchecksum),
    p!("sanitize-dump-payload", N, 0, en(SANITIZE), "no"),
    p!(
        "dbfilename",
        N,
        PROTECTED,
        Kind::Str(StrCheck::DbFilename),
        "dump.rdb",
        dbfilename
    ),
    p!("rdb-del-sync-files", N, 0, B, "no"),
    p!(
        "rdb-save-incremental-fsync",
        N,
        0,
        B,
        "yes",
        rdb_save_incremental_fsync
    ),
    p!("dir", N, PROTECTED, Kind::Dir, "", dir),
    p!(
        "key-load-delay",
        N,
        HIDDEN,
        int(INT_MIN, INT_MAX),
        "0",
        key_load_delay
    ),
    // --- append only file ---
    p!("appendonly", N, 0, B, "no", appendonly),
    p!(
        "appendfilename",
        N,
        IMMUTABLE,
        Kind::Str(StrCheck::AppendFilename),
        "appendonly.aof",
        appendfilename
    ),
    p!(
        "appenddirname",
        N,
        IMMUTABLE,
        Kind::Str(StrCheck::AppendDirname),
        "appendonlydir",
        appenddirname
    ),
    p!(
        "appendfsync",
        N,
        0,
        en(APPENDFSYNC),
        "everysec",
        appendfsync
    ),
    p!(
        "no-appendfsync-on-rewrite",
        N,
        0,
        B,
        "no",
        no_appendfsync_on_rewrite
    ),
    p!(
        "auto-aof-rewrite-percentage",
        N,
        0,
        int(0, INT_MAX),
        "100",
        auto_aof_rewrite_percentage
    ),
    p!(
        "auto-aof-rewrite-min-size",
        N,
        0,
        mem(0, LLONG_MAX),
        "67108864",
        auto_aof_rewrite_min_size
    ),
    p!("aof-load-truncated", N, 0, B, "yes", aof_load_truncated),
    p!("aof-use-rdb-preamble", N, 0, B, "yes", aof_use_rdb_preamble),
    p!(
        "aof-timestamp-enabled",
        N,
        0,
        B,
        "no",
        aof_timestamp_enabled
    ),
    p!(
        "aof-rewrite-incremental-fsync",
        N,
        0,
        B,
        "yes",
        aof_rewrite_incremental_fsync
    ),
    p!("aof-disable-auto-gc", N, 0, B, "no", aof_disable_auto_gc),
    // --- replication ---
    p!(
        "replicaof",
        Some("slaveof"),
        IMMUTABLE,
        Kind::ReplicaOf,
        "",
        replicaof
    ),
    p!("masterauth", N, SENSITIVE, S, "", masterauth),
    p!("masteruser", N, 0, S, "", masteruser),
    p!(
        "replica-serve-stale-data",
        Some("slave-serve-stale-data"),
        0,
        B,
        "yes",
        replica_serve_stale_data
    ),
    p!(
        "replica-read-only",
        Some("slave-read-only"),
        0,
        B,
        "yes",
        replica_read_only
    ),
    p!("repl-diskless-sync", N, 0, B, "yes", repl_diskless_sync),
    p!(
        "repl-diskless-sync-delay",
        N,
        0,
        int(0, INT_MAX),
        "5",
        repl_diskless_sync_delay
    ),
    p!(
        "repl-diskless-sync-max-replicas",
        N,
        0,
        int(0, INT_MAX),
        "0",
        repl_diskless_sync_max_replicas
    ),
    p!(
        "repl-diskless-load",
        N,
        0,
        en(DISKLESS_LOAD),
        "disabled",
        repl_diskless_load
    ),
    p!(
        "repl-ping-replica-period",
        Some("repl-ping-slave-period"),
        0,
        int(1, INT_MAX),
        "10",
        repl_ping_replica_period
    ),
    p!("repl-timeout", N, 0, int(1, INT_MAX), "60", repl_timeout),
    p!("repl-disable-tcp-nodelay", N, 0, B, "no"),
    p!(
        "repl-backlog-size",
        N,
        0,
        mem(1, LLONG_MAX),
        "1048576",
        repl_backlog_size
    ),
    p!(
        "repl-backlog-ttl",
        N,
        0,
        int(0, LLONG_MAX),
        "3600",
        repl_backlog_ttl
    ),
    p!(
        "replica-priority",
        Some("slave-priority"),
        0,
        int(0, INT_MAX),
        "100",
        replica_priority
    ),
    p!("replica-announced", N, 0, B, "yes", replica_announced),
    p!(
        "min-replicas-to-write",
        Some("min-slaves-to-write"),
        0,
        int(0, INT_MAX),
        "0",
        min_replicas_to_write
    ),
    p!(
        "min-replicas-max-lag",
        Some("min-slaves-max-lag"),
        0,
        int(0, INT_MAX),
        "10",
        min_replicas_max_lag
    ),
    p!(
        "replica-announce-ip",
        Some("slave-announce-ip"),
        0,
        S,
        "",
        replica_announce_ip
    ),
    p!(
        "replica-announce-port",
        Some("slave-announce-port"),
        0,
        int(0, 65535),
        "0",
        replica_announce_port
    ),
    p!(
        "replica-ignore-maxmemory",
        Some("slave-ignore-maxmemory"),
        0,
        B,
        "yes",
        replica_ignore_maxmemory
    ),
    p!("replica-lazy-flush", Some("slave-lazy-flush"), 0, B, "no"),
    p!("replica-ignore-disk-write-errors", N, 0, B, "no"),
    p!(
        "propagation-error-behavior",
        N,
        0,
        en(PROPAGATION),
        "ignore"
    ),
    // --- clients and memory ---
    p!("maxmemory", N, 0, MEM_ULL, "0", maxmemory),
    p!(
        "maxmemory-policy",
        N,
        0,
        en(MAXMEMORY_POLICY),
        "noeviction",
        maxmemory_policy
    ),
    p!(
        "maxmemory-samples",
        N,
        0,
        int(1, INT_MAX),
        "5",
        maxmemory_samples
    ),
    p!(
        "maxmemory-eviction-tenacity",
        N,
        0,
        int(0, 100),
        "10",
        maxmemory_eviction_tenacity
    ),
    p!(
        "maxmemory-clients",
        N,
        0,
        Kind::Mem {
            min: -100,
            max: i64::MAX as i128,
            unsigned: false,
            percent: true
        },
        "0"
    ),
    p!(
        "client-query-buffer-limit",
        N,
        0,
        mem(1024 * 1024, LLONG_MAX),
        "1073741824",
        client_query_buffer_limit
    ),
    p!(
        "proto-max-bulk-len",
        N,
        0,
        mem(1024 * 1024, LLONG_MAX),
        "536870912",
        proto_max_bulk_len
    ),
    p!(
        "client-output-buffer-limit",
        N,
        0,
        Kind::ClientOutputBufferLimit,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        client_output_buffer_limit
    ),
    // codis-server's own: not in redis 7.0 (net/mod.rs).
    // The ACL user slot migrations authenticate as on the target (empty:
    // the default user with `requirepass`, as Codis), migrate/.
    p!("migration-user", N, 0, S, ""),
    p!("migration-password", N, SENSITIVE, S, ""),
    p!(
        "client-output-backpressure",
        N,
        0,
        mem(0, LLONG_MAX),
        "262144",
        client_output_backpressure
    ),
    p!(
        "tracking-table-max-keys",
        N,
        0,
        int(0, LLONG_MAX),
        "1000000",
        tracking_table_max_keys
    ),
    // --- lazy freeing ---
    p!(
        "lazyfree-lazy-eviction",
        N,
        0,
        B,
        "no",
        lazyfree_lazy_eviction
    ),
    p!("lazyfree-lazy-expire", N, 0, B, "no", lazyfree_lazy_expire),
    p!(
        "lazyfree-lazy-server-del",
        N,
        0,
        B,
        "no",
        lazyfree_lazy_server_del
    ),
    p!(
        "lazyfree-lazy-user-del",
        N,
        0,
        B,
        "no",
        lazyfree_lazy_user_del
    ),
    p!(
        "lazyfree-lazy-user-flush",
        N,
        0,
        B,
        "no",
        lazyfree_lazy_user_flush
    ),
    // --- scripting / latency / slow log ---
    p!(
        "busy-reply-threshold",
        Some("lua-time-limit"),
        0,
        int(0, LLONG_MAX),
        "5000",
        busy_reply_threshold_ms
    ),
    p!(
        "slowlog-log-slower-than",
        N,
        0,
        int(-1, LLONG_MAX),
        "10000",
        slowlog_log_slower_than
    ),
    p!(
        "slowlog-max-len",
        N,
        0,
        int(0, LLONG_MAX),
        "128",
        slowlog_max_len
    ),
    p!(
        "latency-monitor-threshold",
        N,
        0,
        int(0, LLONG_MAX),
        "0",
        latency_monitor_threshold
    ),
    p!("latency-tracking", N, 0, B, "yes", latency_tracking),
    p!(
        "latency-tracking-info-percentiles",
        N,
        0,
        Kind::Percentiles,
        "50 99 99.9",
        latency_tracking_info_percentiles
    ),
    p!(
        "notify-keyspace-events",
        N,
        0,
        Kind::NotifyKeyspaceEvents,
        "",
        notify_keyspace_events
    ),
    // --- encodings ---
    p!(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        0,
        int(0, LLONG_MAX),
        "512",
        hash_max_listpack_entries
    ),
    p!(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        0,
        mem(0, LLONG_MAX),
        "64",
        hash_max_listpack_value
    ),
    p!(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        0,
        int(INT_MIN, INT_MAX),
        "-2",
        list_max_listpack_size
    ),
    p!(
        "list-compress-depth",
        N,
        0,
        int(0, INT_MAX),
        "0",
        list_compress_depth
    ),
    p!(
        "set-max-intset-entries",
        N,
        0,
        int(0, LLONG_MAX),
        "512",
        set_max_intset_entries
    ),
    p!(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        0,
        int(0, LLONG_MAX),
        "128",
        zset_max_listpack_entries
    ),
    p!(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        0,
        mem(0, LLONG_MAX),
        "64",
        zset_max_listpack_value
    ),
    p!(
        "hll-sparse-max-bytes",
        N,
        0,
        mem(0, LLONG_MAX),
        "3000",
        hll_sparse_max_bytes
    ),
    p!(
        "stream-node-max-bytes",
        N,
        0,
        mem(0, LLONG_MAX),
        "4096",
        stream_node_max_bytes
    ),
    p!(
        "stream-node-max-entries",
        N,
        0,
        int(0, LLONG_MAX),
        "100",
        stream_node_max_entries
    ),
    p!("activerehashing", N, 0, B, "yes", activerehashing),
    p!(
        "active-expire-effort",
        N,
        0,
        int(1, 10),
        "1",
        active_expire_effort
    ),
    p!(
        "lfu-log-factor",
        N,
        0,
        int(0, INT_MAX),
        "10",
        lfu_log_factor
    ),
    p!("lfu-decay-time", N, 0, int(0, INT_MAX), "1", lfu_decay_time),
    // --- active defragmentation ---
    p!("activedefrag", N, 0, B, "no"),
    p!(
        "active-defrag-ignore-bytes",
        N,
        0,
        mem(1, LLONG_MAX),
        "104857600"
    ),
    p!("active-defrag-threshold-lower", N, 0, int(0, 1000), "10"),
    p!("active-defrag-threshold-upper", N, 0, int(0, 1000), "100"),
    p!("active-defrag-cycle-min", N, 0, int(1, 99), "1"),
    p!("active-defrag-cycle-max", N, 0, int(1, 99), "25"),
    p!(
        "active-defrag-max-scan-fields",
        N,
        0,
        int(1, LLONG_MAX),
        "1000"
    ),
    // --- cluster (accepted and reported; codis-server is never a cluster node) ---
    p!("cluster-enabled", N, IMMUTABLE, B, "no"),
    p!("cluster-config-file", N, IMMUTABLE, S, "nodes.conf"),
    p!("cluster-port", N, IMMUTABLE, int(0, 65535), "0"),
    p!("cluster-node-timeout", N, 0, int(0, LLONG_MAX), "15000"),
    p!(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        0,
        int(0, INT_MAX),
        "10"
    ),
    p!("cluster-migration-barrier", N, 0, int(0, INT_MAX), "1"),
    p!("cluster-allow-replica-migration", N, 0, B, "yes"),
    p!("cluster-require-full-coverage", N, 0, B, "yes"),
    p!(
        "cluster-replica-no-failover",
        Some("cluster-slave-no-failover"),
        0,
        B,
        "no"
    ),
    p!("cluster-allow-reads-when-down", N, 0, B, "no"),
    p!("cluster-allow-pubsubshard-when-down", N, 0, B, "yes"),
    p!("cluster-link-sendbuf-limit", N, 0, MEM_ULL, "0"),
    p!(
        "cluster-announce-hostname",
        N,
        0,
        Kind::Str(StrCheck::Hostname),
        ""
    ),
    p!("cluster-announce-ip", N, 0, S, ""),
    p!("cluster-announce-port", N, 0, int(0, 65535), "0"),
    p!("cluster-announce-bus-port", N, 0, int(0, 65535), "0"),
    p!("cluster-announce-tls-port", N, 0, int(0, 65535), "0"),
    p!("cluster-preferred-endpoint-type", N, 0, en(ENDPOINT), "ip"),
];

/// The row index of a parameter by canonical name or alias (any case), and
/// whether `name` was the alias.
pub(crate) fn lookup(name: &[u8]) -> Option<(usize, bool)> {
    PARAMS.iter().enumerate().find_map(|(i, p)| {
        if p.name.as_bytes().eq_ignore_ascii_case(name) {
            Some((i, false))
        } else if p
            .alias
            .is_some_and(|a| a.as_bytes().eq_ignore_ascii_case(name))
        {
            Some((i, true))
        } else {
            None
        }
    })
}

/// The index of a parameter by exact canonical name (used internally).
pub(crate) fn index_of(name: &str) -> Option<usize> {
    PARAMS.iter().position(|p| p.name == name)
}
