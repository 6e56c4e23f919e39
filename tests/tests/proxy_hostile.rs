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

/// `VmRSS` and `VmHWM` (peak) of a process, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        st.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `sessions.alive` from `/proxy/stats`.
fn sessions_alive(p: &Proxy) -> u64 {
    let body = tests::proxy::http_get(p.admin, "/proxy/stats");
    let at = body.find("\"alive\": ").expect("alive") + "\"alive\": ".len();
    body[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const MB: usize = 1 << 20;

/// A backend holding `bigkey` (1 MiB) and `small`, and a proxy with the
/// given extra proxy.toml text, all slots on that backend (so every client
/// shares one backend connection).
fn big_setup(conf: &str) -> (Server, Proxy, tempfile::TempDir) {
    let a = Server::start(&[]);
    let mut d = a.conn();
    assert_reply(&d.send(&["SET", "bigkey", &"x".repeat(MB)]), b"+OK\r\n");
    assert_reply(&d.send(&["SET", "small", "v"]), b"+OK\r\n");
    let (dir, path) = tests::proxy::write_conf(conf);
    let p = Proxy::start(
        Some(&split_slots(a.port(), a.port(), 512)),
        &["--config", &path],
    );
    (a, p, dir)
}

/// `n` pipelined `GET <key>` requests.
fn gets(key: &str, n: usize) -> Vec<u8> {
    let one = tests::resp::encode_command(&["GET", key]);
    one.repeat(n)
}

/// Sends `bytes` on a new connection from a thread (the proxy may stop
/// reading it) and never reads; the socket is kept open until `hold`.
fn never_reader(port: u16, bytes: Vec<u8>, hold: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_write_timeout(Some(hold)).unwrap();
        let _ = std::io::Write::write_all(&mut s, &bytes);
        std::thread::sleep(hold);
    })
}

/// Measures round trips of PING and `GET small` on its own connection for
/// `dur`; returns the slowest, and checks every reply.
fn probe_latency(port: u16, dur: Duration) -> Duration {
    let mut c = tests::Conn::connect(port).unwrap();
    c.set_timeout(Duration::from_secs(5));
    let mut worst = Duration::ZERO;
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let t = Instant::now();
        assert_reply(&c.send(&["PING"]), b"+PONG\r\n");
        assert_reply(&c.send(&["GET", "small"]), b"$1\r\nv\r\n");
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    worst
}

/// A client that pipelines 2000 `GET bigkey` (1 MiB each) and never reads
/// is held by backpressure (the proxy stops reading it at the soft limit)
/// and closed by `session_send_timeout`; the proxy's RSS stays within a few
/// MiB of where it was, and another client on the same backend connection
/// keeps sub-100 ms round trips meanwhile.
/// The tests that measure round trips beside heavy load run one at a time
/// (the test harness runs the others beside them): on a 2-core machine two
/// of them at once measure each other.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn never_reading_client_is_held_and_others_keep_their_latency() {
    let _heavy = heavy();
    let (_a, p, _d) = big_setup(
        "session_reply_soft_limit = \"1mb\"\nsession_reply_hard_limit = \"8mb\"\nsession_send_timeout = \"2s\"\n",
    );
    let pid = p.child.id();
    // Warm up (first connections, buffers) before the baseline.
    let mut c = p.conn();
    for _ in 0..3 {
        assert_eq!(c.send(&["GET", "bigkey"]).len(), MB + 12);
    }
    let (base, _) = rss(pid);
    let t0 = Instant::now();
    let hostile = never_reader(p.port, gets("bigkey", 2000), Duration::from_secs(4));
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        let end = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < end {
            peak = peak.max(rss(pid).0);
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    });
    let worst = probe_latency(p.port, Duration::from_millis(1500));
    let peak = sampler.join().unwrap();
    assert!(
        worst < Duration::from_millis(300),
        "round trip beside a never-reading client took {worst:?}"
    );
    // Held: what it holds is bounded by the soft limit plus the replies
    // in flight (and allocator slack), nowhere near its 2000 MiB of replies.
    let grew = peak.saturating_sub(base);
    eprintln!("never-reading client: worst round trip {worst:?}, RSS {base} -> peak {peak}");
    assert!(grew < (16 * MB) as u64, "proxy grew by {grew} bytes");
    // Closed by session_send_timeout (2 s) while it still holds its socket.
    let deadline = t0 + Duration::from_secs(4);
    while sessions_alive(&p) > 1 {
        assert!(Instant::now() < deadline, "never-reading client not closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    hostile.join().unwrap();
    assert_reply(&c.send(&["GET", "small"]), b"$1\r\nv\r\n");
}

/// A client that sent small requests first (so the proxy expects small
/// replies) and then pipelines 100 `GET bigkey` without reading goes over
/// `session_reply_hard_limit`: it is closed at once, without the buffered
/// replies being written, and the proxy does not keep the memory.
#[test]
fn client_over_the_hard_limit_is_closed_without_flushing() {
    let (_a, p, _d) =
        big_setup("session_reply_soft_limit = \"1mb\"\nsession_reply_hard_limit = \"4mb\"\n");
    let pid = p.child.id();
    let mut warm = p.conn();
    assert_eq!(warm.send(&["GET", "bigkey"]).len(), MB + 12);
    let (base, _) = rss(pid);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // 1000 small replies, read: the estimate of this client's reply size
    // falls to a few bytes.
    std::io::Write::write_all(&mut s, &gets("small", 1000)).unwrap();
    let want = b"$1\r\nv\r\n".len() * 1000;
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while got.len() < want {
        let n = std::io::Read::read(&mut s, &mut chunk).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&chunk[..n]);
    }
    let t0 = Instant::now();
    std::io::Write::write_all(&mut s, &gets("bigkey", 100)).unwrap();
    // Not read: closed once its replies pass 4 MiB.
    while sessions_alive(&p) > 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "client over the hard limit not closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // What reached it is what its socket took before the limit: far less
    // than the 100 MiB it asked for, then EOF.
    let mut total = 0usize;
    loop {
        match std::io::Read::read(&mut s, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 16 * MB, "{total} bytes reached the client");
    let log = p.log();
    assert!(
        log.contains("over session_reply_hard_limit (4mb), closed"),
        "{log}"
    );
    let (now, hwm) = rss(pid);
    assert!(
        hwm.saturating_sub(base) < (32 * MB) as u64,
        "peak grew by {}",
        hwm - base
    );
    let _ = now;
    assert_reply(&warm.send(&["GET", "small"]), b"$1\r\nv\r\n");
}

/// A slow reader (pipelines 50 `GET bigkey`, half-closes its socket, waits
/// a second, then reads) gets every reply, whole and in order:
/// backpressure only delays it, and the EOF behind the held-back requests
/// does not drop them.
#[test]
fn slow_reader_gets_every_reply() {
    let (_a, p, _d) =
        big_setup("session_reply_soft_limit = \"1mb\"\nsession_reply_hard_limit = \"8mb\"\n");
    let mut c = p.conn();
    c.set_timeout(Duration::from_secs(10));
    let mut req = gets("bigkey", 50);
    req.extend_from_slice(&tests::resp::encode_command(&["GET", "small"]));
    c.write_raw(&req).unwrap();
    c.shutdown_write();
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..50 {
        let r = c.read_reply().unwrap();
        assert_eq!(r.len(), MB + 12, "reply {i}");
    }
    assert_reply(&c.read_reply().unwrap(), b"$1\r\nv\r\n");
    let (rest, closed) = c.read_until_close(Duration::from_secs(3), Duration::from_secs(5));
    assert!(rest.is_empty() && closed, "{rest:?} {closed}");
}

/// 100 clients that each pipeline 200 `GET bigkey` and never read: the
/// proxy's peak RSS stays within 1.5 x (hard limit x clients) of its
/// baseline, another client's round trips stay under a few seconds, and every
/// one of them is closed (hard limit or send timeout) within seconds.
#[test]
fn hundred_never_reading_clients_bound_the_proxy_memory() {
    let _heavy = heavy();
    const CLIENTS: usize = 100;
    const HARD: usize = 2 * MB;
    let (_a, p, _d) = big_setup(
        "session_reply_soft_limit = \"1mb\"\nsession_reply_hard_limit = \"2mb\"\nsession_send_timeout = \"2s\"\n",
    );
    let pid = p.child.id();
    let mut c = p.conn();
    for _ in 0..3 {
        assert_eq!(c.send(&["GET", "bigkey"]).len(), MB + 12);
    }
    let (base, base_hwm) = rss(pid);
    let t0 = Instant::now();
    let hostile: Vec<_> = (0..CLIENTS)
        .map(|_| never_reader(p.port, gets("bigkey", 200), Duration::from_secs(5)))
        .collect();
    let worst = probe_latency(p.port, Duration::from_millis(2000));
    let deadline = t0 + Duration::from_secs(5);
    while sessions_alive(&p) > 1 {
        assert!(
            Instant::now() < deadline,
            "never-reading clients not closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, hwm) = rss(pid);
    let bound = base.max(base_hwm) + (HARD * CLIENTS * 3 / 2) as u64;
    eprintln!(
        "{CLIENTS} never-reading clients: worst round trip {worst:?}, RSS {base} (peak {base_hwm}) -> peak {hwm}, bound {bound}, all closed after {:?}",
        t0.elapsed()
    );
    assert!(hwm <= bound, "peak RSS {hwm} over {bound}");
    // The probe's GET queues behind up to 100 x 1 MiB of replies on the one
    // shared backend connection (0.5-1.5 s measured on a 2-core VM): slow,
    // never stuck.
    assert!(worst < Duration::from_secs(4), "round trip took {worst:?}");
    for h in hostile {
        h.join().unwrap();
    }
}

/// Sends `sig` to a server process; a guard sends SIGCONT when dropped (a
/// failing test must not leave a stopped server behind).
struct Frozen(u32);

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain syscall on the pid of a child we own and have not
    // reaped (the Server is alive for the whole test).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

impl Frozen {
    /// Stops the server and waits until the kernel reports every thread
    /// stopped (SIGSTOP is delivered asynchronously: under load a request
    /// sent at once could still be served).
    fn new(s: &Server) -> Frozen {
        signal(s.pid(), libc::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_stopped(s.pid()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Frozen(s.pid())
    }
}

/// Whether every thread of `pid` is in the stopped state (`T`).
fn all_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|st| st.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
            .unwrap_or(false)
    })
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

/// A key whose slot is in `lo..hi`.
fn key_in(prefix: &str, lo: usize, hi: usize) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}:{i}"))
        .find(|k| (lo..hi).contains(&protocol::slot::slot_of(k.as_bytes())))
        .unwrap()
}

const RESET: &[u8] = b"-ERR handle response, backend conn reset\r\n";

/// A frozen backend (SIGSTOP): a request to it fails within
/// `backend_probe_period` + `backend_probe_timeout` (0.5 s + 1 s here), a
/// client blocked on it (BLPOP) gets the same error, new requests fail at
/// once while it is down, the other backend serves throughout, and after
/// SIGCONT the next probe brings it back.
#[test]
fn frozen_backend_fails_fast_and_returns() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let (_d, conf) = tests::proxy::write_conf(
        "backend_probe_period = \"500ms\"\nbackend_probe_timeout = \"1s\"\n",
    );
    let p = Proxy::start(
        Some(&split_slots(a.port(), b.port(), 512)),
        &["--config", &conf],
    );
    let (ka, kb) = (key_in("a", 0, 512), key_in("b", 512, 1024));
    let mut c = p.conn();
    c.set_timeout(Duration::from_secs(10));
    assert_reply(&c.send(&["SET", &ka, "va"]), b"+OK\r\n");
    assert_reply(&c.send(&["SET", &kb, "vb"]), b"+OK\r\n");
    let mut blocked = p.conn();
    blocked.set_timeout(Duration::from_secs(10));
    let list = key_in("list", 0, 512);
    blocked
        .write_raw(&tests::resp::encode_command(&["BLPOP", &list, "0"]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let frozen = Frozen::new(&a);
    let t0 = Instant::now();
    let r = c.send(&["GET", &ka]);
    let took = t0.elapsed();
    assert_reply(&r, RESET);
    assert!(
        took < Duration::from_millis(2500),
        "error after {took:?} (probe 0.5 s + 1 s)"
    );
    assert_reply(&blocked.read_reply().unwrap(), RESET);
    // Down: fails at once; the other server is unaffected.
    let t0 = Instant::now();
    assert_reply(&c.send(&["GET", &ka]), RESET);
    assert!(
        t0.elapsed() < Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert_reply(&c.send(&["GET", &kb]), b"$2\r\nvb\r\n");
    let stats = tests::proxy::http_get(p.admin, "/proxy/stats");
    assert!(stats.contains("\"down\": true"), "{stats}");
    assert!(p.log().contains("marked down"), "{}", p.log());
    drop(frozen);
    // Back once a probe is answered (every 0.5 s while down).
    let t0 = Instant::now();
    loop {
        let r = c.send(&["GET", &ka]);
        if r == b"$2\r\nva\r\n" {
            break;
        }
        assert_reply(&r, RESET);
        assert!(t0.elapsed() < Duration::from_secs(3), "backend not back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(p.log().contains("answers a probe again, up"), "{}", p.log());
    assert_reply(&c.send(&["GET", &kb]), b"$2\r\nvb\r\n");
}

/// With the default probe settings (1 s, then 5 s for an answer) a backend
/// that stalls for 2.5 s (SIGSTOP, then SIGCONT) is only slow: the request
/// waits and gets its real reply, and no server is marked down.
#[test]
fn slow_backend_keeps_working_with_the_defaults() {
    let a = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), a.port(), 512)), &[]);
    let mut c = p.conn();
    c.set_timeout(Duration::from_secs(10));
    assert_reply(&c.send(&["SET", "k", "v"]), b"+OK\r\n");
    let frozen = Frozen::new(&a);
    let t0 = Instant::now();
    c.write_raw(&tests::resp::encode_command(&["GET", "k"]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    drop(frozen);
    assert_reply(&c.read_reply().unwrap(), b"$1\r\nv\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(2500));
    assert_reply(&c.send(&["GET", "k"]), b"$1\r\nv\r\n");
    assert!(!p.log().contains("marked down"), "{}", p.log());
}
