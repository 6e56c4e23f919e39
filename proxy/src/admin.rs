//! The proxy's HTTP admin API on `admin_addr` (codis.md §3.10): Codis' routes
//! and JSON shapes for the overview, model, stats and slots, the xauth-checked
//! `/api/proxy/...` calls (fillslots, start, stats reset, shutdown, loglevel),
//! errors as HTTP status 800 with `{"Cause", "Stack"}`, and Prometheus text at
//! `/metrics`.
//!
//! xauth is Codis' formula: the lower-case hex of the first 16 bytes of
//! SHA-256 over `Codis-XAuth-[<product_name>]-[<product_auth>]-[<token>]`.
//! The token differs from Go codis-proxy's (it is derived from the product
//! name, the addresses, the pid and the start time), and is published in
//! `/proxy/model`.
//!
//! Safer than Codis by default: with an empty `product_auth` anyone who can
//! read the token can compute xauth, so then the token is shown to loopback
//! callers only and state-changing calls (start, fillslots, shutdown,
//! loglevel, stats reset, forcegc) are refused to other callers. With a
//! `product_auth` set, xauth needs the secret and every caller is treated
//! as Codis does. Non-GET calls are logged with the caller's address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router as HttpRouter;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::errors;
use crate::router::Router;
use crate::slots::parse_slots;

/// Debug/test hook: when this environment variable is `1`, loopback
/// callers are treated as remote ones (for tests on machines without a
/// non-loopback address).
pub const LOOPBACK_IS_REMOTE_ENV: &str = "CODIS_PROXY_ADMIN_LOOPBACK_IS_REMOTE";

struct Admin {
    router: Arc<Router>,
    token: String,
    xauth: String,
    start_time: String,
    stop: tokio::sync::watch::Sender<bool>,
    /// [`LOOPBACK_IS_REMOTE_ENV`] was set at start-up.
    loopback_is_remote: bool,
}

type Ctx = State<Arc<Admin>>;
type Peer = ConnectInfo<SocketAddr>;

/// Whether `ip` is a loopback address (IPv4-mapped ones included).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_loopback(),
        IpAddr::V6(v) => v.is_loopback() || v.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
    }
}

pub(crate) fn hex16(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Codis' xauth for a proxy.
pub fn xauth(product: &str, auth: &str, token: &str) -> String {
    hex16(format!("Codis-XAuth-[{product}]-[{auth}]-[{token}]").as_bytes())
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        serde_json::to_string_pretty(&v).unwrap_or_default(),
    )
        .into_response()
}

fn fail(cause: &str) -> Response {
    let status = StatusCode::from_u16(800).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"Cause": cause, "Stack": []});
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

impl Admin {
    /// Read-only calls: the xauth alone.
    fn check(&self, x: &str) -> Result<(), Box<Response>> {
        if x == self.xauth {
            Ok(())
        } else {
            Err(Box::new(fail(errors::ADMIN_BAD_XAUTH)))
        }
    }

    /// Whether the caller is on this host (and not made remote by the
    /// test hook).
    fn local(&self, peer: SocketAddr) -> bool {
        is_loopback(peer.ip()) && !self.loopback_is_remote
    }

    /// Whether the caller may see the token: always when xauth needs a
    /// secret (`product_auth`), else only from loopback.
    fn token_visible(&self, peer: SocketAddr) -> bool {
        !self.router.cfg.product_auth.is_empty() || self.local(peer)
    }

    /// State-changing calls: logged with the caller; from another host
    /// only with a non-empty `product_auth`; always the xauth.
    fn check_change(&self, x: &str, peer: SocketAddr, what: &str) -> Result<(), Box<Response>> {
        crate::log::info(&format!("admin: PUT {what} from {peer}"));
        if !self.local(peer) && self.router.cfg.product_auth.is_empty() {
            crate::log::warn(&format!(
                "admin: refused PUT {what} from {peer}: product_auth is empty"
            ));
            return Err(Box::new(fail(errors::ADMIN_REMOTE_REFUSED)));
        }
        self.check(x)
    }

    fn model(&self, peer: SocketAddr) -> Value {
        let c = &self.router.cfg;
        let token = if self.token_visible(peer) {
            self.token.as_str()
        } else {
            ""
        };
        json!({
            "token": token,
            "start_time": self.start_time,
            "admin_addr": c.admin_addr,
            "proto_type": c.proto_type,
            "proxy_addr": c.proxy_addr,
            "product_name": c.product_name,
            "pid": std::process::id(),
            "pwd": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
            "sys": std::env::consts::OS,
            "hostname": hostname(),
            "datacenter": c.proxy_datacenter,
            "jodis_path": if c.jodis_name.is_empty() {
                String::new()
            } else {
                crate::coordinator::jodis_path(&c.product_name, token, c.jodis_compatible)
            },
        })
    }

    fn stats(&self) -> Value {
        let s = &self.router.stats;
        let backends: Vec<Value> = self
            .router
            .backends()
            .iter()
            .map(
                |b| json!({"addr": b.addr, "connected": b.connected(), "down": b.health.is_down()}),
            )
            .collect();
        let mut cmds: Vec<Value> = Vec::new();
        for (i, c) in s.cmds.iter().enumerate() {
            let calls = c.calls.load(Ordering::Relaxed);
            if calls == 0 {
                continue;
            }
            let usecs = c.usecs.load(Ordering::Relaxed);
            cmds.push(json!({
                "opstr": crate::router::Stats::cmd_name(i),
                "calls": calls,
                "usecs": usecs,
                "usecs_percall": usecs / calls,
                "fails": c.fails.load(Ordering::Relaxed),
                "redis_errtype": c.redis_errtype.load(Ordering::Relaxed),
            }));
        }
        cmds.sort_by(|x, y| x["opstr"].as_str().cmp(&y["opstr"].as_str()));
        let online = self.router.is_online();
        let closed = self.router.closed.load(Ordering::Relaxed);
        json!({
            "online": online,
            "online_reason": offline_reason(online, closed),
            "closed": closed,
            "table": self.table(),
            "sentinels": {
                "servers": *self.router.ha.servers.lock().unwrap_or_else(|p| p.into_inner()),
                "masters": self.router.ha.masters.lock().unwrap_or_else(|p| p.into_inner())
                    .iter().map(|(g, a)| (g.to_string(), Value::String(a.clone())))
                    .collect::<serde_json::Map<String, Value>>(),
                "switched": self.router.ha.switched.load(Ordering::Relaxed),
            },
            "ops": {
                "total": s.ops_total.load(Ordering::Relaxed),
                "fails": s.ops_fails.load(Ordering::Relaxed),
                "redis": {
                    "errors": s.redis_errors.load(Ordering::Relaxed),
                    "oom": s.redis_oom.load(Ordering::Relaxed),
                },
                "qps": s.qps.load(Ordering::Relaxed),
                "cmd": cmds,
            },
            "sessions": {
                "total": s.sessions_total.load(Ordering::Relaxed),
                "alive": s.sessions_alive.load(Ordering::Relaxed),
            },
            "backend": {"primary_only": self.router.cfg.backend_primary_only, "servers": backends},
        })
    }

    /// The cluster table being served (its version, where it comes from,
    /// whether that store is reachable): what `codis-ctl` waits on.
    fn table(&self) -> Value {
        let source = match self.router.table_source.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        json!({
            "source": source,
            "version": self.router.table_version.load(Ordering::SeqCst),
            "degraded": self.router.degraded.load(Ordering::Relaxed),
        })
    }

    fn slots(&self) -> Value {
        serde_json::to_value(self.router.slot_models()).unwrap_or(Value::Null)
    }

    fn config(&self) -> Value {
        let c = &self.router.cfg;
        json!({
            "product_name": c.product_name,
            "admin_addr": c.admin_addr,
            "proto_type": c.proto_type,
            "proxy_addr": c.proxy_addr,
            "proxy_datacenter": c.proxy_datacenter,
            "proxy_max_clients": c.proxy_max_clients,
            "backend_number_databases": c.backend_number_databases,
            "backend_max_pipeline": c.backend_max_pipeline,
            "backend_primary_parallel": c.backend_primary_parallel,
            "session_max_pipeline": c.session_max_pipeline,
            "session_break_on_failure": c.session_break_on_failure,
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The proxy's identity: its token (derived from the product name, the
/// addresses, the pid and the start time) and its start time.
pub struct Identity {
    pub token: String,
    pub start_time: String,
}

impl Identity {
    pub fn new(c: &crate::config::Config) -> Identity {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let token = hex16(
            format!(
                "{}-{}-{}-{}-{}",
                c.product_name,
                c.proxy_addr,
                c.admin_addr,
                std::process::id(),
                now.as_nanos()
            )
            .as_bytes(),
        );
        Identity {
            token,
            start_time: format!("{}", now.as_secs()),
        }
    }
}

/// Serves the admin API until the process exits.
pub async fn serve(
    router: Arc<Router>,
    listener: tokio::net::TcpListener,
    stop: tokio::sync::watch::Sender<bool>,
    id: Identity,
) {
    let c = &router.cfg;
    let Identity { token, start_time } = id;
    let admin = Arc::new(Admin {
        xauth: xauth(&c.product_name, &c.product_auth, &token),
        token,
        start_time,
        router: router.clone(),
        stop,
        loopback_is_remote: std::env::var(LOOPBACK_IS_REMOTE_ENV).is_ok_and(|v| v == "1"),
    });
    // The token is local knowledge: operators on this host (who can read
    // the log) may compute xauth with it.
    crate::log::info(&format!("admin: token {}", admin.token));
    if admin.loopback_is_remote {
        crate::log::warn(&format!(
            "admin: {LOOPBACK_IS_REMOTE_ENV}=1, loopback callers are treated as remote"
        ));
    }
    let app = HttpRouter::new()
        .route("/", get(|| async { Redirect::temporary("/proxy") }))
        .route("/proxy", get(overview))
        .route(
            "/proxy/model",
            get(|State(a): Ctx, ConnectInfo(p): Peer| async move { ok(a.model(p)) }),
        )
        .route(
            "/proxy/stats",
            get(|State(a): Ctx| async move { ok(a.stats()) }),
        )
        .route(
            "/proxy/table",
            get(|State(a): Ctx, ConnectInfo(p): Peer| async move {
                let mut t = a.table();
                if a.token_visible(p) {
                    t["token"] = json!(a.token);
                }
                ok(t)
            }),
        )
        .route(
            "/proxy/slots",
            get(|State(a): Ctx| async move { ok(a.slots()) }),
        )
        .route(
            "/api/proxy/model",
            get(|State(a): Ctx, ConnectInfo(p): Peer| async move { ok(a.model(p)) }),
        )
        .route("/api/proxy/xping/{xauth}", get(xping))
        .route("/api/proxy/stats/{xauth}", get(stats_auth))
        .route("/api/proxy/stats/{xauth}/{flags}", get(stats_auth_flags))
        .route("/api/proxy/slots/{xauth}", get(slots_auth))
        .route("/api/proxy/start/{xauth}", put(start))
        .route("/api/proxy/stats/reset/{xauth}", put(reset))
        .route("/api/proxy/forcegc/{xauth}", put(forcegc))
        .route("/api/proxy/shutdown/{xauth}", put(shutdown))
        .route("/api/proxy/loglevel/{xauth}/{level}", put(loglevel))
        .route("/api/proxy/fillslots/{xauth}", put(fillslots))
        .route("/api/proxy/sentinels/{xauth}", put(sentinels))
        .route(
            "/api/proxy/sentinels/{xauth}/rewatch",
            put(sentinels_rewatch),
        )
        .route("/metrics", get(metrics))
        .with_state(admin);
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        crate::log::error(&format!("admin server: {e}"));
    }
}

async fn overview(State(a): Ctx, ConnectInfo(p): Peer) -> Response {
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "compile": "rust",
        "config": a.config(),
        "model": a.model(p),
        "stats": a.stats(),
        "slots": a.slots(),
    }))
}

async fn xping(State(a): Ctx, Path(x): Path<String>) -> Response {
    match a.check(&x) {
        Ok(()) => ok(json!("OK")),
        Err(r) => *r,
    }
}

async fn stats_auth(State(a): Ctx, Path(x): Path<String>) -> Response {
    match a.check(&x) {
        Ok(()) => ok(a.stats()),
        Err(r) => *r,
    }
}

async fn stats_auth_flags(State(a): Ctx, Path((x, _flags)): Path<(String, String)>) -> Response {
    match a.check(&x) {
        Ok(()) => ok(a.stats()),
        Err(r) => *r,
    }
}

async fn slots_auth(State(a): Ctx, Path(x): Path<String>) -> Response {
    match a.check(&x) {
        Ok(()) => ok(a.slots()),
        Err(r) => *r,
    }
}

async fn forcegc(State(a): Ctx, ConnectInfo(p): Peer, Path(x): Path<String>) -> Response {
    match a.check_change(&x, p, "/api/proxy/forcegc") {
        Ok(()) => ok(json!("OK")),
        Err(r) => *r,
    }
}

async fn start(State(a): Ctx, ConnectInfo(p): Peer, Path(x): Path<String>) -> Response {
    if let Err(r) = a.check_change(&x, p, "/api/proxy/start") {
        return *r;
    }
    a.router.online.store(true, Ordering::SeqCst);
    ok(json!("OK"))
}

async fn reset(State(a): Ctx, ConnectInfo(p): Peer, Path(x): Path<String>) -> Response {
    if let Err(r) = a.check_change(&x, p, "/api/proxy/stats/reset") {
        return *r;
    }
    a.router.stats.reset();
    ok(json!("OK"))
}

async fn shutdown(State(a): Ctx, ConnectInfo(p): Peer, Path(x): Path<String>) -> Response {
    if let Err(r) = a.check_change(&x, p, "/api/proxy/shutdown") {
        return *r;
    }
    crate::log::warn("admin: shutdown requested");
    let _ = a.stop.send(true);
    ok(json!("OK"))
}

async fn loglevel(
    State(a): Ctx,
    ConnectInfo(p): Peer,
    Path((x, level)): Path<(String, String)>,
) -> Response {
    if let Err(r) = a.check_change(&x, p, "/api/proxy/loglevel") {
        return *r;
    }
    match crate::log::parse_level(&level) {
        Some(l) => {
            crate::log::set_level(l);
            ok(json!("OK"))
        }
        None => fail(&errors::admin_bad_loglevel(&level)),
    }
}

async fn fillslots(
    State(a): Ctx,
    ConnectInfo(p): Peer,
    Path(x): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = a.check_change(&x, p, "/api/proxy/fillslots") {
        return *r;
    }
    match parse_slots(&body) {
        Ok(slots) => {
            crate::log::info(&format!("admin: fillslots with {} slots", slots.len()));
            a.router.fill(&slots).await;
            ok(json!("OK"))
        }
        Err(e) => fail(&e),
    }
}

async fn sentinels(
    State(a): Ctx,
    ConnectInfo(p): Peer,
    Path(x): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = a.check_change(&x, p, "/api/proxy/sentinels") {
        return *r;
    }
    // Codis' models.Sentinel: {"servers": [...], "out_of_sync": bool}.
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return fail(&format!("bad sentinels json: {e}")),
    };
    let servers: Vec<String> = match v.get("servers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        Some(_) => return fail("bad sentinels json: servers is not a list"),
    };
    if let Some(bad) = servers.iter().find(|s| !crate::slots::valid_addr(s)) {
        return fail(&format!("invalid sentinel address {bad:?}"));
    }
    crate::sentinel::set(&a.router, servers);
    ok(json!("OK"))
}

async fn sentinels_rewatch(State(a): Ctx, ConnectInfo(p): Peer, Path(x): Path<String>) -> Response {
    if let Err(r) = a.check_change(&x, p, "/api/proxy/sentinels/rewatch") {
        return *r;
    }
    crate::sentinel::rewatch(&a.router);
    ok(json!("OK"))
}

async fn metrics(State(a): Ctx) -> Response {
    let s = &a.router.stats;
    let mut out = String::new();
    let mut line = |name: &str, kind: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    line(
        "codis_proxy_online",
        "gauge",
        "Whether the proxy is online.",
        a.router.is_online() as u64,
    );
    line(
        "codis_proxy_table_version",
        "gauge",
        "Version of the cluster table being served (0: none or unversioned).",
        a.router.table_version.load(Ordering::Relaxed),
    );
    line(
        "codis_proxy_table_degraded",
        "gauge",
        "Whether the slot-table store is unreachable (the last table is served).",
        a.router.degraded.load(Ordering::Relaxed) as u64,
    );
    line(
        "codis_proxy_ops_total",
        "counter",
        "Requests handled.",
        s.ops_total.load(Ordering::Relaxed),
    );
    line(
        "codis_proxy_ops_fails_total",
        "counter",
        "Requests that failed inside the proxy.",
        s.ops_fails.load(Ordering::Relaxed),
    );
    line(
        "codis_proxy_redis_errors_total",
        "counter",
        "Error replies passed through from backends.",
        s.redis_errors.load(Ordering::Relaxed),
    );
    line(
        "codis_proxy_redis_oom_errors_total",
        "counter",
        "-OOM replies from backends over their maxmemory.",
        s.redis_oom.load(Ordering::Relaxed),
    );
    line(
        "codis_proxy_sessions_total",
        "counter",
        "Sessions ever accepted.",
        s.sessions_total.load(Ordering::Relaxed),
    );
    line(
        "codis_proxy_sessions_alive",
        "gauge",
        "Sessions alive.",
        s.sessions_alive.load(Ordering::Relaxed),
    );
    out.push_str("# HELP codis_proxy_cmd_calls_total Calls per command.\n# TYPE codis_proxy_cmd_calls_total counter\n");
    let mut lat = String::from(
        "# HELP codis_proxy_cmd_usecs_total Microseconds spent per command (request read to reply ready).\n# TYPE codis_proxy_cmd_usecs_total counter\n",
    );
    for (i, c) in s.cmds.iter().enumerate() {
        let calls = c.calls.load(Ordering::Relaxed);
        if calls > 0 {
            let name = crate::router::Stats::cmd_name(i);
            out.push_str(&format!(
                "codis_proxy_cmd_calls_total{{cmd=\"{name}\"}} {calls}\n"
            ));
            lat.push_str(&format!(
                "codis_proxy_cmd_usecs_total{{cmd=\"{name}\"}} {}\n",
                c.usecs.load(Ordering::Relaxed)
            ));
        }
    }
    out.push_str(&lat);
    out.push_str("# HELP codis_proxy_backend_up Whether a backend server has a live connection.\n# TYPE codis_proxy_backend_up gauge\n");
    let backends = a.router.backends();
    for b in &backends {
        out.push_str(&format!(
            "codis_proxy_backend_up{{addr=\"{}\"}} {}\n",
            b.addr,
            b.connected() as u64
        ));
    }
    out.push_str("# HELP codis_proxy_backend_down Whether a probe marked a backend server down.\n# TYPE codis_proxy_backend_down gauge\n");
    for b in &backends {
        out.push_str(&format!(
            "codis_proxy_backend_down{{addr=\"{}\"}} {}\n",
            b.addr,
            b.health.is_down() as u64
        ));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

/// Why the proxy is not online (null when it is), for operators reading
/// `/api/proxy/stats`.
fn offline_reason(online: bool, closed: bool) -> Option<&'static str> {
    if closed {
        Some(errors::CLOSED_REASON)
    } else if online {
        None
    } else {
        Some(errors::OFFLINE_REASON)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn xauth_shape() {
        let x = super::xauth("codis-demo", "", "tok");
        assert_eq!(x.len(), 32);
        assert!(
            x.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(x, super::xauth("codis-demo", "pw", "tok"));
    }

    #[test]
    fn loopback_callers() {
        let l = |s: &str| super::is_loopback(s.parse().unwrap());
        assert!(l("127.0.0.1") && l("127.9.9.9") && l("::1") && l("::ffff:127.0.0.1"));
        assert!(!l("192.0.2.2") && !l("0.0.0.0") && !l("::ffff:10.0.0.1") && !l("fd00::2"));
    }
}
