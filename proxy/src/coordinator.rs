//! Going online through a Codis dashboard, and Jodis registration, as
//! codis-proxy 3.2 does (codis.md §3.1, §3.12, §4.2).
//!
//! * `--dashboard ADDR`: asks that dashboard to adopt the proxy: `GET
//!   /api/topom/model` (the product names must match, else the proxy stops
//!   with an error), then `PUT /api/topom/proxy/online/<xauth>/<admin
//!   addr>`; the dashboard then reads `/api/proxy/model`, checks xauth
//!   (`xping`), pushes every slot (`fillslots`), calls `start` and pushes the
//!   sentinels. `xauth` is the dashboard's: the first 16 bytes of SHA-256
//!   over `Codis-XAuth-[<product_name>]`, in hex.
//! * `--filesystem DIR` / `--zookeeper ADDR` / `--etcd ADDR`: the
//!   dashboard's address comes from the coordinator's `topom` record
//!   (`DIR/data/codis3/<product>/topom`, the ZooKeeper node
//!   `/codis3/<product>/topom` (the `zookeeper-client` crate, digest auth),
//!   or the etcd v2 key `/codis3/<product>/topom`, which etcd 3.4 serves
//!   with `--enable-v2`), then as above.
//!
//! Codis tries 10 (dashboard) or 30 (coordinator) times, 3 s apart, then
//! exits; this proxy keeps trying (a log line per try), so a dashboard that
//! starts late does not take proxies down.
//!
//! Jodis: while online, the node `/jodis/<product>/proxy-<token>`
//! (`/zk/codis/db_<product>/proxy/<token>` with `jodis_compatible`) holds
//! `{"addr","admin","start","token","state"}`: in ZooKeeper an ephemeral
//! node of a session with `jodis_timeout`, in etcd (v2) a node with that
//! TTL refreshed every half of it (as Codis' etcd client); re-created
//! after a failure (1 s doubling to 30 s), deleted on shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::router::Router;
use cluster::http::{self, basic_auth, form_escape};

/// Where the dashboard's address comes from.
pub enum Coordinator {
    Dashboard(String),
    Filesystem(PathBuf),
    Etcd { addr: String, auth: String },
    ZooKeeper { addr: String, auth: String },
}

impl Coordinator {
    pub fn describe(&self) -> String {
        match self {
            Coordinator::Dashboard(a) => format!("dashboard {a}"),
            Coordinator::Filesystem(p) => format!("filesystem {}", p.display()),
            Coordinator::Etcd { addr, .. } => format!("etcd {addr}"),
            Coordinator::ZooKeeper { addr, .. } => format!("zookeeper {addr}"),
        }
    }
}

/// The dashboard's xauth for a product.
pub fn dashboard_xauth(product: &str) -> String {
    crate::admin::hex16(format!("Codis-XAuth-[{product}]").as_bytes())
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// The first etcd endpoint of a Codis-style address list.
fn first_endpoint(addrs: &str) -> String {
    addrs
        .split(',')
        .map(|a| a.trim().trim_start_matches("http://").trim_end_matches('/'))
        .find(|a| !a.is_empty())
        .unwrap_or("127.0.0.1:2379")
        .to_string()
}

/// Reads a node of etcd's v2 keys API (None: absent).
async fn etcd_v2_get(addr: &str, auth: &str, key: &str) -> Result<Option<String>, String> {
    let mut headers = Vec::new();
    if !auth.is_empty() {
        headers.push(("authorization", basic_auth(auth)));
    }
    let r = http::request(
        "GET",
        &first_endpoint(addr),
        &format!("/v2/keys{key}?quorum=true"),
        None,
        &headers,
        TIMEOUT,
    )
    .await?;
    if r.status == 404 {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("etcd v2: bad reply: {e}"))?;
    if r.status != 200 {
        return Err(format!("etcd v2 {key}: {}", r.text().trim()));
    }
    Ok(v["node"]["value"].as_str().map(String::from))
}

/// The dashboard's admin address from the coordinator.
async fn dashboard_addr(c: &Coordinator, product: &str) -> Result<Option<String>, String> {
    let topom = match c {
        Coordinator::Dashboard(a) => return Ok(Some(a.clone())),
        Coordinator::Filesystem(root) => {
            let p = root.join("data/codis3").join(product).join("topom");
            match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
            }
        }
        Coordinator::Etcd { addr, auth } => {
            match etcd_v2_get(addr, auth, &format!("/codis3/{product}/topom")).await? {
                Some(t) => t,
                None => return Ok(None),
            }
        }
        Coordinator::ZooKeeper { addr, auth } => {
            let c = zk_connect(addr, auth, TIMEOUT).await?;
            match c.get_data(&format!("/codis3/{product}/topom")).await {
                Ok((data, _)) => String::from_utf8_lossy(&data).into_owned(),
                Err(zookeeper_client::Error::NoNode) => return Ok(None),
                Err(e) => return Err(format!("zookeeper {addr}: {e}")),
            }
        }
    };
    let v: Value = serde_json::from_str(&topom).map_err(|e| format!("bad topom record: {e}"))?;
    Ok(v["admin_addr"].as_str().map(String::from))
}

/// An address others can reach: an unspecified host (`0.0.0.0`, `[::]`,
/// empty) becomes this host's address on the route towards `peer`.
pub fn announce(addr: &str, peer: &str) -> String {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return addr.to_string();
    };
    if !matches!(host, "" | "0.0.0.0" | "[::]" | "::") {
        return addr.to_string();
    }
    let ip = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect(peer)?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into());
    format!("{ip}:{port}")
}

/// One attempt: Ok(true) when the dashboard adopted the proxy.
async fn online_once(router: &Router, c: &Coordinator) -> Result<bool, String> {
    let product = &router.cfg.product_name;
    let Some(dash) = dashboard_addr(c, product).await? else {
        return Err(format!(
            "no topom record for product {product:?} (is a dashboard running?)"
        ));
    };
    let r = http::request("GET", &dash, "/api/topom/model", None, &[], TIMEOUT).await?;
    if r.status != 200 {
        return Err(format!(
            "dashboard {dash}: model: HTTP {}: {}",
            r.status,
            r.text()
        ));
    }
    let model: Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("dashboard {dash}: bad model: {e}"))?;
    let theirs = model["product_name"].as_str().unwrap_or_default();
    if theirs != product {
        crate::log::error(&format!(
            "dashboard {dash} serves product {theirs:?}, this proxy is {product:?}: exiting"
        ));
        std::process::exit(1);
    }
    let admin = announce(&router.cfg.admin_addr, &dash);
    let path = format!(
        "/api/topom/proxy/online/{}/{admin}",
        dashboard_xauth(product)
    );
    let r = http::request("PUT", &dash, &path, None, &[], Duration::from_secs(30)).await?;
    if r.status == 200 {
        crate::log::warn(&format!("rpc online proxy seems OK (dashboard {dash})"));
        Ok(true)
    } else {
        Err(format!(
            "dashboard {dash}: online: HTTP {}: {}",
            r.status,
            r.text()
        ))
    }
}

/// Retries until the proxy is online (or closed).
pub async fn go_online(router: Arc<Router>, c: Coordinator) {
    crate::log::warn(&format!("going online through {}", c.describe()));
    loop {
        if router.closed.load(Ordering::Relaxed) || router.is_online() {
            return;
        }
        match online_once(&router, &c).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => crate::log::warn(&format!("online proxy failed, retrying in 3s: {e}")),
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// A ZooKeeper session (`auth`: `user:password`, digest scheme, as Codis).
async fn zk_connect(
    addr: &str,
    auth: &str,
    session: Duration,
) -> Result<zookeeper_client::Client, String> {
    let mut c = zookeeper_client::Client::connector().with_session_timeout(session);
    if !auth.is_empty() {
        c = c.with_auth("digest", auth.as_bytes());
    }
    tokio::time::timeout(TIMEOUT * 2, c.connect(addr))
        .await
        .map_err(|_| format!("zookeeper {addr}: connect timed out"))?
        .map_err(|e| format!("zookeeper {addr}: {e}"))
}

/// The Jodis node path of a proxy.
pub fn jodis_path(product: &str, token: &str, compatible: bool) -> String {
    if compatible {
        format!("/zk/codis/db_{product}/proxy/{token}")
    } else {
        format!("/jodis/{product}/proxy-{token}")
    }
}

/// Keeps the Jodis node while the proxy is online; deletes it when the
/// proxy closes.
pub async fn jodis(router: Arc<Router>, token: String, start_time: String) {
    let cfg = &router.cfg;
    let path = jodis_path(&cfg.product_name, &token, cfg.jodis_compatible);
    let data = serde_json::to_string_pretty(&serde_json::json!({
        "addr": announce(&cfg.proxy_addr, &first_endpoint(&cfg.jodis_addr)),
        "admin": announce(&cfg.admin_addr, &first_endpoint(&cfg.jodis_addr)),
        "start": start_time,
        "token": token,
        "state": "online",
    }))
    .unwrap_or_default();
    if cfg.jodis_name == "zookeeper" {
        jodis_zk(router.clone(), path, data).await;
    } else {
        jodis_etcd(router.clone(), path, data).await;
    }
}

/// Jodis in ZooKeeper: an ephemeral node of a session whose timeout is
/// `jodis_timeout`; made again (with its parents) in a new session after
/// the session expires.
async fn jodis_zk(router: Arc<Router>, path: String, data: String) {
    use zookeeper_client::{Acls, CreateMode, Error, SessionState};
    let cfg = &router.cfg;
    let mut delay = Duration::from_secs(1);
    let acls = Acls::anyone_all();
    let ephemeral = CreateMode::Ephemeral.with_acls(acls);
    let persistent = CreateMode::Persistent.with_acls(acls);
    loop {
        if router.closed.load(Ordering::Relaxed) {
            return;
        }
        if !router.is_online() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let made = async {
            let c = zk_connect(&cfg.jodis_addr, &cfg.jodis_auth, cfg.jodis_timeout.0).await?;
            // Parents, then the node (one left by an earlier session of
            // ours that has not expired yet is replaced).
            let mut parent = String::new();
            for part in path
                .trim_start_matches('/')
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map(|(_, p)| p.to_vec())
                .unwrap_or_default()
            {
                parent.push('/');
                parent.push_str(part);
                match c.create(&parent, b"", &persistent).await {
                    Ok(_) | Err(Error::NodeExists) => {}
                    Err(e) => return Err(format!("zookeeper: create {parent}: {e}")),
                }
            }
            match c.create(&path, data.as_bytes(), &ephemeral).await {
                Ok(_) => {}
                Err(Error::NodeExists) => {
                    let _ = c.delete(&path, None).await;
                    c.create(&path, data.as_bytes(), &ephemeral)
                        .await
                        .map_err(|e| format!("zookeeper: create {path}: {e}"))?;
                }
                Err(e) => return Err(format!("zookeeper: create {path}: {e}")),
            }
            Ok::<_, String>(c)
        }
        .await;
        let c = match made {
            Ok(c) => c,
            Err(e) => {
                crate::log::warn(&format!("jodis node {path} failed: {e}"));
                sleep_unless_closed(&router, delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        crate::log::warn(&format!("jodis create node {path}"));
        delay = Duration::from_secs(1);
        let mut state = c.state_watcher();
        loop {
            tokio::select! {
                s = state.changed() => {
                    if matches!(s, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed) {
                        crate::log::warn(&format!("jodis session {s:?}: making {path} again"));
                        break;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if router.closed.load(Ordering::Relaxed) {
                        let _ = tokio::time::timeout(TIMEOUT, c.delete(&path, None)).await;
                        crate::log::warn(&format!("jodis remove node {path}"));
                        return;
                    }
                }
            }
        }
    }
}

/// Jodis in etcd (v2 keys API): a node with a TTL, refreshed.
async fn jodis_etcd(router: Arc<Router>, path: String, data: String) {
    let cfg = &router.cfg;
    let ttl = cfg.jodis_timeout.0.as_secs().max(1);
    let addr = first_endpoint(&cfg.jodis_addr);
    let mut headers = Vec::new();
    if !cfg.jodis_auth.is_empty() {
        headers.push(("authorization", basic_auth(&cfg.jodis_auth)));
    }
    let form = "application/x-www-form-urlencoded";
    let mut delay = Duration::from_secs(1);
    let mut created = false;
    loop {
        if router.closed.load(Ordering::Relaxed) {
            break;
        }
        if !router.is_online() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let (query, body) = if created {
            (
                format!("?prevExist=true&refresh=true&ttl={ttl}"),
                String::new(),
            )
        } else {
            (
                format!("?prevExist=false&ttl={ttl}"),
                format!("value={}", form_escape(&data)),
            )
        };
        let res = http::request(
            "PUT",
            &addr,
            &format!("/v2/keys{path}{query}"),
            Some((form, body.into_bytes())),
            &headers,
            TIMEOUT,
        )
        .await;
        match res {
            Ok(r) if r.status == 200 || r.status == 201 => {
                if !created {
                    crate::log::warn(&format!("jodis create node {path}"));
                }
                created = true;
                delay = Duration::from_secs(1);
                sleep_unless_closed(&router, Duration::from_secs(ttl) / 2).await;
            }
            other => {
                let why = match other {
                    Ok(r) => format!("HTTP {}: {}", r.status, r.text().trim()),
                    Err(e) => e,
                };
                crate::log::warn(&format!("jodis node {path} failed: {why}"));
                if created {
                    // The node expired or vanished: create it again.
                    created = false;
                } else {
                    sleep_unless_closed(&router, delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
    if created {
        let _ = http::request(
            "DELETE",
            &addr,
            &format!("/v2/keys{path}"),
            None,
            &headers,
            TIMEOUT,
        )
        .await;
        crate::log::warn(&format!("jodis remove node {path}"));
    }
}

async fn sleep_unless_closed(router: &Router, d: Duration) {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end && !router.closed.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100).min(end - tokio::time::Instant::now())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(dashboard_xauth("codis-demo").len(), 32);
        assert_eq!(jodis_path("p", "t", false), "/jodis/p/proxy-t");
        assert_eq!(jodis_path("p", "t", true), "/zk/codis/db_p/proxy/t");
        assert_eq!(announce("127.0.0.1:1", "10.0.0.1:2"), "127.0.0.1:1");
        assert!(!announce("0.0.0.0:1", "127.0.0.1:2").starts_with("0.0.0.0"));
        assert_eq!(first_endpoint("http://a:1/,b:2"), "a:1");
    }
}
