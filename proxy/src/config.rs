//! `proxy.toml`: every key of Codis 3.2's proxy config (codis.md §3.13) with
//! its default, Go-style durations (`"1s"`, `"1m30s"`) and byte sizes
//! (`"128kb"`), validation, and `--default-config` output.
//!
//! Unknown keys and invalid values are refused at start-up with a message
//! naming the key, as codis-proxy refuses a bad config file.

use serde::Deserialize;
use std::time::Duration;

/// The whole proxy configuration (Codis names, Codis defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub product_name: String,
    pub product_auth: String,
    pub session_auth: String,
    pub admin_addr: String,
    pub proto_type: String,
    pub proxy_addr: String,
    pub jodis_name: String,
    pub jodis_addr: String,
    pub jodis_auth: String,
    pub jodis_timeout: GoDuration,
    pub jodis_compatible: bool,
    pub proxy_datacenter: String,
    pub proxy_max_clients: i64,
    pub proxy_max_offheap_size: ByteSize,
    pub proxy_heap_placeholder: ByteSize,
    pub backend_ping_period: GoDuration,
    pub backend_recv_bufsize: ByteSize,
    pub backend_recv_timeout: GoDuration,
    pub backend_send_bufsize: ByteSize,
    pub backend_send_timeout: GoDuration,
    pub backend_max_pipeline: i64,
    pub backend_primary_only: bool,
    pub backend_primary_parallel: i64,
    pub backend_replica_parallel: i64,
    pub backend_keepalive_period: GoDuration,
    pub backend_number_databases: i64,
    pub session_recv_bufsize: ByteSize,
    pub session_recv_timeout: GoDuration,
    pub session_send_bufsize: ByteSize,
    pub session_send_timeout: GoDuration,
    pub session_max_pipeline: i64,
    pub session_keepalive_period: GoDuration,
    pub session_break_on_failure: bool,
    pub metrics_report_server: String,
    pub metrics_report_period: GoDuration,
    pub metrics_report_influxdb_server: String,
    pub metrics_report_influxdb_period: GoDuration,
    pub metrics_report_influxdb_username: String,
    pub metrics_report_influxdb_password: String,
    pub metrics_report_influxdb_database: String,
    pub metrics_report_statsd_server: String,
    pub metrics_report_statsd_period: GoDuration,
    pub metrics_report_statsd_prefix: String,
    /// Extension (not in Codis): how long a request may wait on a `locked`
    /// slot before it is answered with an error. Codis waits forever.
    pub slot_locked_timeout: GoDuration,
    /// Extension: answer KEYS by asking every server (off by default, as
    /// Codis refuses KEYS: it blocks each backend while it runs).
    pub proxy_allow_keys: bool,
    /// Extension: run FLUSHDB / FLUSHALL on every server (off by default).
    pub proxy_allow_flush: bool,
    /// Extension: reply bytes owed to one client (not yet taken by it,
    /// whether held here or in its socket's send queue, plus replies
    /// expected for its requests in flight) at which the proxy stops
    /// reading that client's requests (0: never).
    pub session_reply_soft_limit: ByteSize,
    /// Extension: reply bytes held for one client above which it is closed
    /// at once, without writing what is buffered (0: no limit).
    pub session_reply_hard_limit: ByteSize,
    /// Extension: a backend connection with requests outstanding and no
    /// reply for this long makes the proxy probe the server on a separate
    /// connection; also the probe interval while it is down (0: no probes).
    pub backend_probe_period: GoDuration,
    /// Extension: a probe not answered within this marks the server down:
    /// its connections are dropped (outstanding requests fail) and new
    /// requests fail at once until a probe is answered.
    pub backend_probe_timeout: GoDuration,
}

impl Default for Config {
    fn default() -> Self {
        let d = |s: &str| GoDuration(parse_duration(s).unwrap_or_default());
        let b = |s: &str| ByteSize(parse_size(s).unwrap_or_default());
        Config {
            product_name: "codis-demo".into(),
            product_auth: String::new(),
            session_auth: String::new(),
            admin_addr: "127.0.0.1:11080".into(),
            proto_type: "tcp4".into(),
            proxy_addr: "0.0.0.0:19000".into(),
            jodis_name: String::new(),
            jodis_addr: String::new(),
            jodis_auth: String::new(),
            jodis_timeout: d("20s"),
            jodis_compatible: false,
            proxy_datacenter: String::new(),
            proxy_max_clients: 1000,
            proxy_max_offheap_size: b("1024mb"),
            proxy_heap_placeholder: b("256mb"),
            backend_ping_period: d("5s"),
            backend_recv_bufsize: b("128kb"),
            backend_recv_timeout: d("30s"),
            backend_send_bufsize: b("128kb"),
            backend_send_timeout: d("30s"),
            backend_max_pipeline: 20480,
            backend_primary_only: false,
            backend_primary_parallel: 1,
            backend_replica_parallel: 1,
            backend_keepalive_period: d("75s"),
            backend_number_databases: 16,
            session_recv_bufsize: b("128kb"),
            session_recv_timeout: d("30m"),
            session_send_bufsize: b("64kb"),
            session_send_timeout: d("30s"),
            session_max_pipeline: 10000,
            session_keepalive_period: d("75s"),
            session_break_on_failure: false,
            metrics_report_server: String::new(),
            metrics_report_period: d("1s"),
            metrics_report_influxdb_server: String::new(),
            metrics_report_influxdb_period: d("1s"),
            metrics_report_influxdb_username: String::new(),
            metrics_report_influxdb_password: String::new(),
            metrics_report_influxdb_database: String::new(),
            metrics_report_statsd_server: String::new(),
            metrics_report_statsd_period: d("1s"),
            metrics_report_statsd_prefix: String::new(),
            slot_locked_timeout: d("5s"),
            proxy_allow_keys: false,
            proxy_allow_flush: false,
            session_reply_soft_limit: b("4mb"),
            session_reply_hard_limit: b("32mb"),
            backend_probe_period: d("1s"),
            backend_probe_timeout: d("5s"),
        }
    }
}

/// The text `--default-config` prints (valid input for [`Config::from_toml`]).
pub const DEFAULT_TOML: &str = r#"##################################################
#                                                #
#                  Codis-Proxy                   #
#                                                #
##################################################

# Set Codis Product Name/Auth.
product_name = "codis-demo"
product_auth = ""

# Set auth for client session
session_auth = ""

# Set bind address for admin(rpc), tcp only.
# Loopback by default (Codis binds 0.0.0.0). To let a dashboard on another
# host manage this proxy, bind a reachable address and set product_auth (the
# same as the dashboard's): without it, state-changing calls are only
# accepted from loopback and the token is shown to loopback callers only.
admin_addr = "127.0.0.1:11080"

# Set bind address for proxy, proto_type can be "tcp", "tcp4", "tcp6", "unix" or "unixpacket".
proto_type = "tcp4"
proxy_addr = "0.0.0.0:19000"

# Set jodis address & session timeout (jodis_name "zookeeper", or "etcd":
# etcd's v2 keys API, etcd 3.4 with --enable-v2).
jodis_name = ""
jodis_addr = ""
jodis_auth = ""
jodis_timeout = "20s"
jodis_compatible = false

# Set datacenter of proxy.
proxy_datacenter = ""

# Set max number of alive sessions.
proxy_max_clients = 1000

# Set max offheap memory size. (0 to disable)
proxy_max_offheap_size = "1024mb"

# Set heap placeholder to reduce GC frequency.
proxy_heap_placeholder = "256mb"

# Proxy will ping backend redis (and clear 'MASTERDOWN' state) in a predefined interval. (0 to disable)
backend_ping_period = "5s"

# Set backend recv buffer size & timeout.
backend_recv_bufsize = "128kb"
backend_recv_timeout = "30s"

# Set backend send buffer & timeout.
backend_send_bufsize = "128kb"
backend_send_timeout = "30s"

# Set backend pipeline buffer size.
backend_max_pipeline = 20480

# Set backend never read replica groups, default is false
backend_primary_only = false

# Set backend parallel connections per server
backend_primary_parallel = 1
backend_replica_parallel = 1

# Set backend tcp keepalive period. (0 to disable)
backend_keepalive_period = "75s"

# Set number of databases of backend.
backend_number_databases = 16

# If there is no request from client for a long time, the connection will be closed. (0 to disable)
# Set session recv buffer size & timeout.
session_recv_bufsize = "128kb"
session_recv_timeout = "30m"

# Set session send buffer size & timeout.
session_send_bufsize = "64kb"
session_send_timeout = "30s"

# Make sure this is higher than the max number of requests for each pipeline request, or your client may be blocked.
# Set session pipeline buffer size.
session_max_pipeline = 10000

# Set session tcp keepalive period. (0 to disable)
session_keepalive_period = "75s"

# Set session to be sensitive to failures. Default is false, instead of closing socket, proxy will send an error response to client.
session_break_on_failure = false

# Set metrics server (such as http://localhost:28000), proxy will report json formatted metrics to specified server in a predefined period.
metrics_report_server = ""
metrics_report_period = "1s"

# Set influxdb server (such as http://localhost:8086), proxy will report metrics to influxdb.
metrics_report_influxdb_server = ""
metrics_report_influxdb_period = "1s"
metrics_report_influxdb_username = ""
metrics_report_influxdb_password = ""
metrics_report_influxdb_database = ""

# Set statsd server (such as localhost:8125), proxy will report metrics to statsd.
metrics_report_statsd_server = ""
metrics_report_statsd_period = "1s"
metrics_report_statsd_prefix = ""

# Extension: max wait of a request on a locked slot before it fails (Codis waits forever).
slot_locked_timeout = "5s"

# Extension: KEYS asks every server (it blocks each one while it runs).
proxy_allow_keys = false

# Extension: FLUSHDB / FLUSHALL run on every server.
proxy_allow_flush = false

# Extension: per-client reply buffers. At the soft limit (replies the client
# has not taken, in the proxy or its socket's send queue, plus the replies
# expected for its requests in flight) the proxy stops reading that client
# until it reads; above the hard limit (replies held in the proxy) the
# client is closed at once, without flushing. (0 to disable)
session_reply_soft_limit = "4mb"
session_reply_hard_limit = "32mb"

# Extension: backend health probe. A connection waiting this long for a
# reply makes the proxy PING the server on a separate connection; a probe
# unanswered within backend_probe_timeout marks the server down (its
# requests fail at once) until a probe is answered again. (0 to disable)
backend_probe_period = "1s"
backend_probe_timeout = "5s"
"#;

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        c.validate()?;
        Ok(c)
    }

    /// Codis' validation rules plus a few of our own (address syntax).
    pub fn validate(&self) -> Result<(), String> {
        let nonneg = [
            ("proxy_max_clients", self.proxy_max_clients),
            ("backend_max_pipeline", self.backend_max_pipeline),
            ("backend_primary_parallel", self.backend_primary_parallel),
            ("backend_replica_parallel", self.backend_replica_parallel),
            ("session_max_pipeline", self.session_max_pipeline),
        ];
        for (k, v) in nonneg {
            if v < 0 {
                return Err(format!("invalid {k} = {v}: must not be negative"));
            }
        }
        let (soft, hard) = (
            self.session_reply_soft_limit.0,
            self.session_reply_hard_limit.0,
        );
        if soft != 0 && hard != 0 && hard < soft {
            return Err(format!(
                "invalid session_reply_hard_limit = {}: below session_reply_soft_limit = {}",
                size_text(hard),
                size_text(soft)
            ));
        }
        if !self.backend_probe_period.0.is_zero() && self.backend_probe_timeout.0.is_zero() {
            return Err(
                "invalid backend_probe_timeout = 0s: must be set when backend_probe_period is"
                    .into(),
            );
        }
        if self.proxy_addr.is_empty() {
            return Err("invalid proxy_addr: empty".into());
        }
        if self.admin_addr.is_empty() {
            return Err("invalid admin_addr: empty".into());
        }
        if !valid_product_name(&self.product_name) {
            return Err(format!(
                "invalid product_name = {:?}: must match ^\\w[\\w\\.\\-]*$",
                self.product_name
            ));
        }
        if !matches!(
            self.proto_type.as_str(),
            "tcp" | "tcp4" | "tcp6" | "unix" | "unixpacket"
        ) {
            return Err(format!("invalid proto_type = {:?}", self.proto_type));
        }
        if !matches!(self.proto_type.as_str(), "tcp" | "tcp4" | "tcp6") {
            return Err(format!(
                "proto_type = {:?} is not supported by this proxy (use tcp, tcp4 or tcp6)",
                self.proto_type
            ));
        }
        if self.backend_number_databases < 1 || self.backend_number_databases > 1 << 16 {
            return Err(format!(
                "invalid backend_number_databases = {}",
                self.backend_number_databases
            ));
        }
        if !self.jodis_name.is_empty() {
            if !matches!(self.jodis_name.as_str(), "zookeeper" | "etcd") {
                return Err(format!("invalid jodis_name = {:?}", self.jodis_name));
            }
            if self.jodis_addr.is_empty() {
                return Err("invalid jodis_addr: empty while jodis_name is set".into());
            }
        }
        Ok(())
    }

    /// Number of backend databases (SELECT bound), at least 1.
    pub fn databases(&self) -> usize {
        self.backend_number_databases.max(1) as usize
    }
}

impl Config {
    /// Every setting as `(proxy.toml key, value text)`, for CONFIG GET;
    /// passwords (`*_auth`, `*_password`) are left out.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let d = |v: &GoDuration| go_duration(v.0);
        let b = |v: &ByteSize| size_text(v.0);
        vec![
            ("product_name", self.product_name.clone()),
            ("admin_addr", self.admin_addr.clone()),
            ("proto_type", self.proto_type.clone()),
            ("proxy_addr", self.proxy_addr.clone()),
            ("jodis_name", self.jodis_name.clone()),
            ("jodis_addr", self.jodis_addr.clone()),
            ("jodis_timeout", d(&self.jodis_timeout)),
            ("jodis_compatible", self.jodis_compatible.to_string()),
            ("proxy_datacenter", self.proxy_datacenter.clone()),
            ("proxy_max_clients", self.proxy_max_clients.to_string()),
            ("proxy_max_offheap_size", b(&self.proxy_max_offheap_size)),
            ("proxy_heap_placeholder", b(&self.proxy_heap_placeholder)),
            ("backend_ping_period", d(&self.backend_ping_period)),
            ("backend_recv_bufsize", b(&self.backend_recv_bufsize)),
            ("backend_recv_timeout", d(&self.backend_recv_timeout)),
            ("backend_send_bufsize", b(&self.backend_send_bufsize)),
            ("backend_send_timeout", d(&self.backend_send_timeout)),
            (
                "backend_max_pipeline",
                self.backend_max_pipeline.to_string(),
            ),
            (
                "backend_primary_only",
                self.backend_primary_only.to_string(),
            ),
            (
                "backend_primary_parallel",
                self.backend_primary_parallel.to_string(),
            ),
            (
                "backend_replica_parallel",
                self.backend_replica_parallel.to_string(),
            ),
            (
                "backend_keepalive_period",
                d(&self.backend_keepalive_period),
            ),
            (
                "backend_number_databases",
                self.backend_number_databases.to_string(),
            ),
            ("session_recv_bufsize", b(&self.session_recv_bufsize)),
            ("session_recv_timeout", d(&self.session_recv_timeout)),
            ("session_send_bufsize", b(&self.session_send_bufsize)),
            ("session_send_timeout", d(&self.session_send_timeout)),
            (
                "session_max_pipeline",
                self.session_max_pipeline.to_string(),
            ),
            (
                "session_keepalive_period",
                d(&self.session_keepalive_period),
            ),
            (
                "session_break_on_failure",
                self.session_break_on_failure.to_string(),
            ),
            ("metrics_report_server", self.metrics_report_server.clone()),
            ("metrics_report_period", d(&self.metrics_report_period)),
            (
                "metrics_report_influxdb_server",
                self.metrics_report_influxdb_server.clone(),
            ),
            (
                "metrics_report_influxdb_period",
                d(&self.metrics_report_influxdb_period),
            ),
            (
                "metrics_report_influxdb_username",
                self.metrics_report_influxdb_username.clone(),
            ),
            (
                "metrics_report_influxdb_database",
                self.metrics_report_influxdb_database.clone(),
            ),
            (
                "metrics_report_statsd_server",
                self.metrics_report_statsd_server.clone(),
            ),
            (
                "metrics_report_statsd_period",
                d(&self.metrics_report_statsd_period),
            ),
            (
                "metrics_report_statsd_prefix",
                self.metrics_report_statsd_prefix.clone(),
            ),
            ("slot_locked_timeout", d(&self.slot_locked_timeout)),
            ("proxy_allow_keys", self.proxy_allow_keys.to_string()),
            ("proxy_allow_flush", self.proxy_allow_flush.to_string()),
            (
                "session_reply_soft_limit",
                b(&self.session_reply_soft_limit),
            ),
            (
                "session_reply_hard_limit",
                b(&self.session_reply_hard_limit),
            ),
            ("backend_probe_period", d(&self.backend_probe_period)),
            ("backend_probe_timeout", d(&self.backend_probe_timeout)),
        ]
    }
}

/// A duration in Go's `String()` form for whole units (`0s`, `500ms`,
/// `30s`, `1m30s`, `2h0m0s`).
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return if ns.is_multiple_of(1_000_000) {
            format!("{}ms", ns / 1_000_000)
        } else if ns.is_multiple_of(1_000) {
            format!("{}µs", ns / 1_000)
        } else {
            format!("{ns}ns")
        };
    }
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let s = if frac == 0 {
        format!("{}s", secs % 60)
    } else {
        let f = format!("{:09}", frac);
        format!("{}.{}s", secs % 60, f.trim_end_matches('0'))
    };
    match (secs / 3600, (secs / 60) % 60) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// A byte size as `proxy.toml` writes it (`128kb`, `1024mb`, `0`).
pub fn size_text(n: u64) -> String {
    for (unit, shift) in [("tb", 40), ("gb", 30), ("mb", 20), ("kb", 10)] {
        if n != 0 && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// `^\w[\w\.\-]*$`
pub fn valid_product_name(s: &str) -> bool {
    let w = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut it = s.chars();
    match it.next() {
        Some(c) if w(c) => it.all(|c| w(c) || c == '.' || c == '-'),
        _ => false,
    }
}

/// A Go `time.Duration` written as text (`"30s"`, `"1m30s"`, `"0"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(GoDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// A byte size written as text (`"128kb"`, `"1024mb"`) or an integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            I(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::I(v) if v >= 0 => Ok(ByteSize(v as u64)),
            Raw::I(v) => Err(serde::de::Error::custom(format!(
                "invalid size {v}: negative"
            ))),
            Raw::S(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses Go's `time.ParseDuration` syntax (negative durations are refused).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("invalid duration {s:?} (use Go syntax such as \"500ms\", \"30s\", \"1m30s\")");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let b = t.as_bytes();
    let mut i = 0;
    let mut total_ns: f64 = 0.0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let num: f64 = t[start..i].parse().map_err(|_| bad())?;
        let us = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let mult = match &t[us..i] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total_ns += num * mult;
    }
    if !total_ns.is_finite() || total_ns > 9.2e18 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

/// Parses a byte size: digits with an optional b/kb/mb/gb/tb suffix (any case).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?} (use e.g. \"128kb\", \"1024mb\")");
    let t = s.trim().to_ascii_lowercase();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits_end].parse().map_err(|_| bad())?;
    let mult: u64 = match t[digits_end..].trim() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn texts_round_trip() {
        for t in ["0s", "500ms", "30s", "1m30s", "2h0m0s", "1.5s"] {
            assert_eq!(go_duration(parse_duration(t).unwrap()), t);
        }
        for t in ["0", "128kb", "512mb", "1gb", "1000"] {
            assert_eq!(size_text(parse_size(t).unwrap()), t);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128kb").unwrap(), 128 * 1024);
        assert_eq!(parse_size("1024MB").unwrap(), 1 << 30);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert!(parse_size("12q").is_err());
    }

    #[test]
    fn default_text_matches_defaults() {
        let c = Config::from_toml(DEFAULT_TOML).unwrap();
        let d = Config::default();
        assert_eq!(c.session_recv_timeout, d.session_recv_timeout);
        assert_eq!(c.session_recv_timeout.0, Duration::from_secs(1800));
        assert_eq!(c.backend_recv_bufsize.0, 128 * 1024);
        assert_eq!(c.product_name, "codis-demo");
        assert_eq!(c.backend_number_databases, 16);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(
            Config::from_toml("no_such_key = 1")
                .unwrap_err()
                .contains("no_such_key")
        );
        assert!(Config::from_toml("backend_ping_period = \"5\"").is_err());
        assert!(Config::from_toml("proxy_max_clients = -1").is_err());
        assert!(Config::from_toml("backend_number_databases = 0").is_err());
        assert!(Config::from_toml("product_name = \"-x\"").is_err());
        assert!(Config::from_toml("jodis_name = \"zookeeper\"").is_err());
        assert!(Config::from_toml("session_max_pipeline = 3").is_ok());
        let e = Config::from_toml("session_reply_soft_limit = \"64mb\"").unwrap_err();
        assert!(e.contains("session_reply_hard_limit = 32mb"), "{e}");
        assert!(
            Config::from_toml("session_reply_soft_limit = 0\nsession_reply_hard_limit = \"1mb\"")
                .is_ok()
        );
        let e = Config::from_toml("backend_probe_timeout = \"0s\"").unwrap_err();
        assert!(e.contains("backend_probe_timeout"), "{e}");
        assert!(
            Config::from_toml("backend_probe_period = \"0\"\nbackend_probe_timeout = \"0\"")
                .is_ok()
        );
    }
}
