//! codis-proxy against hostile and broken peers (issue 19): the admin API
//! refuses state-changing calls from other hosts unless `product_auth` is
//! set (and then only with its xauth), and never shows the token that would
//! let a stranger compute xauth; clients that pipeline large replies and
//! never read are held back and disconnected at the configured byte limit
//! without growing the proxy or stalling other clients on the same backend
//! connection (one of them, and 100 at once); a frozen backend (SIGSTOP)
//! makes its requests fail within the configured probe time and is used
//! again once it answers, while a backend that is only slow keeps working
//! with the defaults.

use std::process::Command;
use std::time::{Duration, Instant};

use tests::proxy::{Proxy, http_to, split_slots};
use tests::{Server, assert_reply};

/// Codis' xauth: the first 16 bytes of SHA-256 over
/// `Codis-XAuth-[<product>]-[<auth>]-[<token>]`, lower-case hex (computed
/// with coreutils' sha256sum, an implementation independent of the proxy's).
fn xauth(product: &str, auth: &str, token: &str) -> String {
    let text = format!("Codis-XAuth-[{product}]-[{auth}]-[{token}]");
    let out = Command::new("sh")
        .args(["-c", "printf '%s' \"$1\" | sha256sum", "sh", &text])
        .output()
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)[..32].to_string()
}

/// The `"token"` field of a model JSON text.
fn token_of(body: &str) -> String {
    let at = body.find("\"token\": \"").expect("token field") + "\"token\": \"".len();
    body[at..].split('"').next().unwrap_or_default().to_string()
}

fn get(host: &str, port: u16, path: &str) -> String {
    http_to(
        host,
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

fn put(host: &str, port: u16, path: &str, body: &str) -> String {
    http_to(
        host,
        port,
        &format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The machine's first non-loopback IPv4 address, if it has one.
fn non_loopback_ipv4() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified())
        })
        .map(str::to_string)
}

/// The token the proxy logged at start-up (local knowledge only).
fn logged_token(p: &Proxy) -> String {
    let log = p.log();
    let at = log.find("admin: token ").expect("token in log") + "admin: token ".len();
    log[at..at + 32].to_string()
}

/// Every state-changing route of the admin API, with its body.
fn changing_routes(x: &str, slots: &str) -> Vec<(String, String)> {
    vec![
        (format!("/api/proxy/start/{x}"), String::new()),
        (format!("/api/proxy/stats/reset/{x}"), String::new()),
        (format!("/api/proxy/forcegc/{x}"), String::new()),
        (format!("/api/proxy/loglevel/{x}/debug"), String::new()),
        (format!("/api/proxy/fillslots/{x}"), slots.to_string()),
        (format!("/api/proxy/shutdown/{x}"), String::new()),
    ]
}

/// Without `product_auth`, a caller on another host (the machine's own
/// non-loopback address when it has one; the loopback-is-remote test hook
/// always) gets no token and every state-changing call is refused, even
/// with the right xauth; the proxy keeps its slots and keeps serving.
#[test]
fn admin_without_product_auth_refuses_remote_changes() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let slots = split_slots(a.port(), a.port(), 512);
    let other = split_slots(b.port(), b.port(), 512);
    let mut setups: Vec<(String, Vec<(&str, &str)>)> = vec![(
        "127.0.0.1".into(),
        vec![("CODIS_PROXY_ADMIN_LOOPBACK_IS_REMOTE", "1")],
    )];
    match non_loopback_ipv4() {
        Some(ip) => setups.push((ip, vec![])),
        None => eprintln!("no non-loopback IPv4 address: only the test hook is used"),
    }
    for (host, env) in setups {
        let p = Proxy::start_with(Some(&slots), &[], &host, &env);
        let mut c = p.conn();
        assert_reply(&c.send(&["SET", "k", "v1"]), b"+OK\r\n");
        let real = logged_token(&p);
        for path in ["/api/proxy/model", "/proxy/model", "/proxy"] {
            let body = get(&host, p.admin, path);
            assert!(body.starts_with("HTTP/1.1 200"), "{host} {path}: {body}");
            assert!(
                !body.contains(&real),
                "{host} {path} shows the token: {body}"
            );
        }
        assert_eq!(token_of(&get(&host, p.admin, "/api/proxy/model")), "");
        // The right xauth (computed from the logged token) and the one a
        // stranger would compute from the model: both refused.
        for x in [xauth("codis-demo", "", &real), xauth("codis-demo", "", "")] {
            for (path, body) in changing_routes(&x, &other) {
                let r = put(&host, p.admin, &path, &body);
                assert!(r.starts_with("HTTP/1.1 800"), "{host} {path}: {r}");
                assert!(r.contains("product_auth is empty"), "{host} {path}: {r}");
            }
        }
        // Read-only xauth routes still answer the right xauth.
        let x = xauth("codis-demo", "", &real);
        let r = get(&host, p.admin, &format!("/api/proxy/xping/{x}"));
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        // Still serving, on the old slots, same log level.
        assert_reply(&c.send(&["GET", "k"]), b"$2\r\nv1\r\n");
        let log = p.log();
        assert!(
            log.contains("refused PUT /api/proxy/shutdown from"),
            "{log}"
        );
        assert!(!log.contains("[DEBUG]"), "loglevel changed: {log}");
    }
}

/// From loopback (no hook) the proxy behaves as Codis: token shown, calls
/// accepted with the xauth of an empty product_auth, refused without it.
#[test]
fn admin_from_loopback_works_without_product_auth() {
    let a = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), a.port(), 512)), &[]);
    let token = token_of(&get("127.0.0.1", p.admin, "/api/proxy/model"));
    assert_eq!(token, logged_token(&p));
    let x = xauth("codis-demo", "", &token);
    let r = put(
        "127.0.0.1",
        p.admin,
        &format!("/api/proxy/stats/reset/{x}"),
        "",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = put("127.0.0.1", p.admin, "/api/proxy/stats/reset/0123", "");
    assert!(
        r.starts_with("HTTP/1.1 800") && r.contains("invalid xauth"),
        "{r}"
    );
}

/// With `product_auth` set, a remote caller goes through the steps a
/// codis-dashboard takes to adopt a proxy (model, xping, fillslots, start,
/// stats) with the xauth computed from the model's token and the shared
/// secret; a wrong xauth is refused; shutdown stops the proxy.
#[test]
fn admin_with_product_auth_accepts_remote_dashboard() {
    let a = Server::start(&["--requirepass", "s3cret"]);
    let b = Server::start(&["--requirepass", "s3cret"]);
    let host = non_loopback_ipv4().unwrap_or_else(|| "127.0.0.1".into());
    let env = [("CODIS_PROXY_ADMIN_LOOPBACK_IS_REMOTE", "1")];
    let mut p = Proxy::start_with(
        None,
        &["--product_auth", "s3cret", "--product_name", "prod-1"],
        &host,
        &env,
    );
    let model = get(&host, p.admin, "/api/proxy/model");
    let token = token_of(&model);
    assert_eq!(token, logged_token(&p), "{model}");
    let x = xauth("prod-1", "s3cret", &token);
    let r = get(&host, p.admin, &format!("/api/proxy/xping/{x}"));
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let bad = xauth("prod-1", "", &token);
    let r = put(&host, p.admin, &format!("/api/proxy/start/{bad}"), "");
    assert!(
        r.starts_with("HTTP/1.1 800") && r.contains("invalid xauth"),
        "{r}"
    );
    let slots = split_slots(a.port(), b.port(), 512);
    let r = put(&host, p.admin, &format!("/api/proxy/fillslots/{x}"), &slots);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = put(&host, p.admin, &format!("/api/proxy/start/{x}"), "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = get(&host, p.admin, &format!("/api/proxy/stats/{x}"));
    assert!(r.contains("\"online\": true"), "{r}");
    let mut c = p.conn();
    assert_reply(&c.send(&["SET", "k", "v"]), b"+OK\r\n");
    assert_reply(&c.send(&["GET", "k"]), b"$1\r\nv\r\n");
    let r = put(&host, p.admin, &format!("/api/proxy/loglevel/{x}/warn"), "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = put(&host, p.admin, &format!("/api/proxy/shutdown/{x}"), "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(p.child.try_wait(), Ok(Some(_))) {
        assert!(Instant::now() < deadline, "proxy did not shut down");
        std::thread::sleep(Duration::from_millis(20));
    }
}
