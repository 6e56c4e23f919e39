//! codis-proxy managed the Codis way (issue 14): going online through a
//! dashboard (`--dashboard`, or its address from Codis' filesystem or etcd
//! v2 coordinator), Jodis registration in etcd v2, and master switches
//! driven by redis-sentinel.
//!
//! The dashboard here is a stand-in that makes exactly the calls
//! codis-dashboard 3.2 makes when a proxy asks to be adopted (read from
//! its source: `OnlineProxy` → model, xping with the proxy's xauth,
//! fillslots, start, sentinels); with the real binaries (`CODIS_BIN`) the
//! real dashboard is driven too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tests::cluster::Etcd;
use tests::proxy::{Proxy, http_get, http_put, split_slots, write_conf};
use tests::{Conn, Sentinel, Server, assert_reply};

fn hex16(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn json_str(body: &str, field: &str) -> String {
    let pat = format!("\"{field}\": \"");
    let i = body.find(&pat).map(|i| i + pat.len()).unwrap_or(body.len());
    body[i..].split('"').next().unwrap_or("").to_string()
}

/// A stand-in codis-dashboard for product `product` that adopts proxies
/// with `slots` (a fillslots body); records the calls it got.
struct Dashboard {
    port: u16,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Dashboard {
    fn start(product: &str, slots: String) -> Dashboard {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (c, product) = (calls.clone(), product.to_string());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap_or(0);
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                c.lock()
                    .unwrap()
                    .push(format!("{} {path}", line.split(' ').next().unwrap_or("")));
                let (status, reply) = if path == "/api/topom/model" {
                    (
                        200,
                        format!(
                            r#"{{"token":"t","product_name":"{product}","admin_addr":"127.0.0.1:{port}"}}"#
                        ),
                    )
                } else if let Some(rest) = path.strip_prefix("/api/topom/proxy/online/") {
                    let (xauth, addr) = rest.split_once('/').unwrap_or(("", ""));
                    if xauth != hex16(&format!("Codis-XAuth-[{product}]")) {
                        (800, r#"{"Cause":"bad xauth"}"#.to_string())
                    } else {
                        match adopt(&product, addr, &slots) {
                            Ok(()) => (200, "\"OK\"".to_string()),
                            Err(e) => (800, format!(r#"{{"Cause":"{e}"}}"#)),
                        }
                    }
                } else {
                    (404, "{}".to_string())
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Dashboard { port, calls }
    }
}

/// What codis-dashboard 3.2 does to a proxy it adopts.
fn adopt(product: &str, admin: &str, slots: &str) -> Result<(), String> {
    let port: u16 = admin
        .rsplit_once(':')
        .ok_or("addr")?
        .1
        .parse()
        .map_err(|_| "port")?;
    let model = http_get(port, "/api/proxy/model");
    let token = json_str(&model, "token");
    if token.is_empty() {
        return Err(format!("no token in {model}"));
    }
    let x = hex16(&format!("Codis-XAuth-[{product}]-[]-[{token}]"));
    for (what, r) in [
        ("xping", http_get(port, &format!("/api/proxy/xping/{x}"))),
        (
            "fillslots",
            http_put(port, &format!("/api/proxy/fillslots/{x}"), slots),
        ),
        (
            "start",
            http_put(port, &format!("/api/proxy/start/{x}"), ""),
        ),
        (
            "sentinels",
            http_put(
                port,
                &format!("/api/proxy/sentinels/{x}"),
                r#"{"out_of_sync":false}"#,
            ),
        ),
        ("stats", http_get(port, &format!("/api/proxy/stats/{x}/7"))),
    ] {
        if !r.starts_with("HTTP/1.1 200") {
            return Err(format!("{what}: {r}"));
        }
    }
    Ok(())
}

fn wait_online(p: &Proxy) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = p.conn().try_send(&["SET", "online", "1"])
            && r == b"+OK\r\n"
        {
            return;
        }
        assert!(Instant::now() < deadline, "proxy not online: {}", p.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dashboard_adopts_the_proxy() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let d = Dashboard::start("demo", split_slots(a.port(), b.port(), 512));
    let p = Proxy::start(
        None,
        &[
            &format!("--dashboard=127.0.0.1:{}", d.port),
            "--product_name=demo",
        ],
    );
    wait_online(&p);
    let calls = d.calls.lock().unwrap().clone();
    assert_eq!(calls[0], "GET /api/topom/model");
    assert!(
        calls[1].starts_with("PUT /api/topom/proxy/online/"),
        "{calls:?}"
    );
    let mut c = p.conn();
    for i in 0..20 {
        assert_reply(&c.send(&["SET", &format!("k{i}"), "v"]), b"+OK\r\n");
    }
    assert!(a.conn().value("DBSIZE").as_int().unwrap() > 0);
    assert!(b.conn().value("DBSIZE").as_int().unwrap() > 0);
    // Through the filesystem coordinator: the dashboard's address from
    // its topom record.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data/codis3/demo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("topom"),
        format!(
            r#"{{"token":"t","product_name":"demo","admin_addr":"127.0.0.1:{}"}}"#,
            d.port
        ),
    )
    .unwrap();
    let p2 = Proxy::start(
        None,
        &[
            &format!("--filesystem={}", root.path().display()),
            "--product_name=demo",
        ],
    );
    wait_online(&p2);
    // Flags that cannot go together are refused.
    for bad in [
        vec![
            "--zookeeper=127.0.0.1:2181".to_string(),
            "--etcd=127.0.0.1:2379".into(),
        ],
        vec![
            format!("--dashboard=127.0.0.1:{}", d.port),
            "--filesystem=/tmp".into(),
        ],
    ] {
        let args: Vec<&str> = bad.iter().map(String::as_str).collect();
        assert!(Proxy::try_start(None, &args).is_err(), "{bad:?}");
    }
    assert!(Proxy::try_start(Some("[]"), &[&format!("--dashboard=127.0.0.1:{}", d.port)]).is_err());
}

#[test]
fn etcd_v2_coordinator_and_jodis() {
    let Some(etcd) = Etcd::start_with(&["--enable-v2=true"]) else {
        return;
    };
    let a = Server::start(&[]);
    let d = Dashboard::start("demo", split_slots(a.port(), a.port(), 512));
    let topom = format!(
        r#"{{"token":"t","product_name":"demo","admin_addr":"127.0.0.1:{}"}}"#,
        d.port
    );
    let body = format!("value={}", urlencode(&topom));
    let r = tests::proxy::http(
        etcd.port,
        &format!(
            "PUT /v2/keys/codis3/demo/topom HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(r.starts_with("HTTP/1.1 20"), "{r}");
    let (_conf_dir, conf) = write_conf(&format!(
        "product_name = \"demo\"\njodis_name = \"etcd\"\njodis_addr = \"127.0.0.1:{}\"\njodis_timeout = \"3s\"\n",
        etcd.port
    ));
    let mut p = Proxy::start(
        None,
        &[
            &format!("--etcd=127.0.0.1:{}", etcd.port),
            "--config",
            &conf,
        ],
    );
    wait_online(&p);
    // The Jodis node, with Codis' path and JSON.
    let model = http_get(p.admin, "/api/proxy/model");
    let token = json_str(&model, "token");
    assert_eq!(
        json_str(&model, "jodis_path"),
        format!("/jodis/demo/proxy-{token}")
    );
    let key = format!("/v2/keys/jodis/demo/proxy-{token}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let node = loop {
        let r = http_get(etcd.port, &key);
        if r.starts_with("HTTP/1.1 200") {
            break r;
        }
        assert!(Instant::now() < deadline, "no jodis node: {r}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for want in ["addr", "admin", "start", "token", "state", "online", "ttl"] {
        assert!(node.contains(want), "{node}");
    }
    // Refreshed: still there after more than its TTL.
    std::thread::sleep(Duration::from_secs(4));
    assert!(http_get(etcd.port, &key).starts_with("HTTP/1.1 200"));
    // Removed on shutdown.
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our child's pid.
    unsafe {
        libc::kill(p.child.id() as i32, libc::SIGTERM);
    }
    p.child.wait().unwrap();
    assert!(http_get(etcd.port, &key).starts_with("HTTP/1.1 404"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn sentinels_switch_the_proxy_to_a_new_master() {
    let master = Server::start(&[]);
    let ms = master.port().to_string();
    let replica = Server::start(&["--replicaof", "127.0.0.1", &ms]);
    let slots: Vec<String> = (0..1024)
        .map(|i| {
            format!(r#"{{"id":{i},"backend_addr":"127.0.0.1:{ms}","backend_addr_group_id":1}}"#)
        })
        .collect();
    let p = Proxy::start(
        Some(&format!("[{}]", slots.join(","))),
        &["--product_name=demo"],
    );
    let conf = format!(
        "sentinel monitor demo-1 127.0.0.1 {ms} 1\n\
         sentinel down-after-milliseconds demo-1 1000\n\
         sentinel failover-timeout demo-1 20000\n"
    );
    let sdir = tempfile::tempdir().unwrap();
    let Some(sentinel) = Sentinel::start_in(sdir.path(), &conf) else {
        return;
    };
    // Wait until the sentinel knows the replica.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = sentinel.conn().cmd("SENTINEL replicas demo-1");
        if String::from_utf8_lossy(&r).contains(&replica.port().to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sentinel did not find the replica"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The sentinel list, as the dashboard pushes it.
    let token = json_str(&http_get(p.admin, "/api/proxy/model"), "token");
    let x = hex16(&format!("Codis-XAuth-[demo]-[]-[{token}]"));
    let r = http_put(
        p.admin,
        &format!("/api/proxy/sentinels/{x}"),
        &format!(
            r#"{{"servers":["127.0.0.1:{}"],"out_of_sync":false}}"#,
            sentinel.port()
        ),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let mut c = p.conn();
    assert_reply(&c.send(&["SET", "before", "1"]), b"+OK\r\n");
    let stats = http_get(p.admin, "/proxy/stats");
    assert!(
        stats.contains(&format!("127.0.0.1:{}", sentinel.port())),
        "{stats}"
    );
    master.kill9();
    // Sentinel promotes the replica; the proxy follows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = Conn::connect(p.port).and_then(|mut c| {
            c.set_timeout(Duration::from_secs(2));
            c.try_send(&["SET", "after", "1"])
                .map_err(|e| std::io::Error::other(e.to_string()))
        }) && r == b"+OK\r\n"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "proxy did not switch: {}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_reply(&replica.conn().send(&["GET", "after"]), b"$1\r\n1\r\n");
    let stats = http_get(p.admin, "/proxy/stats");
    assert!(stats.contains("\"switched\": true"), "{stats}");
    assert!(
        stats.contains(&format!("\"1\": \"127.0.0.1:{}\"", replica.port())),
        "{stats}"
    );
}

/// codis-admin against the dashboard; panics unless it succeeds.
fn admin(bin: &std::path::Path, dash: u16, args: &[&str]) -> String {
    let out = std::process::Command::new(bin.join("codis-admin"))
        .arg(format!("--dashboard=127.0.0.1:{dash}"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "codis-admin {args:?}: {text}");
    text
}

/// The real codis-dashboard 3.2 (filesystem coordinator) adopts our proxy
/// (found through the coordinator), takes our servers into groups, pushes
/// slots and migrates 512 slots through the proxy while clients INCR
/// through it: exact sums, no error, every key on its new owner; the
/// dashboard's overview (what codis-fe shows) has the proxy online with
/// its stats.
#[test]
fn the_real_codis_dashboard_drives_our_proxy() {
    let Some(bin) = tests::codis_bin_dir() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let coord = root.path().join("coord");
    let dport = tests::free_port();
    let conf = root.path().join("dashboard.toml");
    std::fs::write(
        &conf,
        format!(
            "coordinator_name = \"filesystem\"\ncoordinator_addr = \"{}\"\nproduct_name = \"demo\"\nproduct_auth = \"\"\nadmin_addr = \"127.0.0.1:{dport}\"\nmigration_method = \"semi-async\"\n",
            coord.display()
        ),
    )
    .unwrap();
    let mut dash = std::process::Command::new(bin.join("codis-dashboard"))
        .arg(format!("--config={}", conf.display()))
        .arg(format!(
            "--log={}",
            root.path().join("dashboard.log").display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", dport)).is_err() {
        assert!(Instant::now() < deadline, "dashboard did not start");
        assert!(dash.try_wait().unwrap().is_none(), "dashboard exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _dash = Kill(dash);
    let s1 = Server::start(&[]);
    let s2 = Server::start(&[]);
    let p = Proxy::start(
        None,
        &[
            &format!("--filesystem={}", coord.display()),
            "--product_name=demo",
        ],
    );
    admin(&bin, dport, &["--create-group", "--gid=1"]);
    admin(&bin, dport, &["--create-group", "--gid=2"]);
    admin(
        &bin,
        dport,
        &["--group-add", "--gid=1", &format!("--addr={}", s1.addr())],
    );
    admin(
        &bin,
        dport,
        &["--group-add", "--gid=2", &format!("--addr={}", s2.addr())],
    );
    // The proxy is adopted (it asked the dashboard found in the coordinator).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !admin(&bin, dport, &["--list-proxy"]).contains(&format!("{}", p.admin)) {
        assert!(Instant::now() < deadline, "proxy not adopted: {}", p.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    admin(
        &bin,
        dport,
        &[
            "--slots-assign",
            "--beg=0",
            "--end=1023",
            "--gid=1",
            "--confirm",
        ],
    );
    wait_online(&p);
    // Clients INCR through our proxy while the dashboard moves 512 slots.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loads: Vec<_> = (0..3)
        .map(|t| {
            let (port, stop) = (p.port, stop.clone());
            std::thread::spawn(move || {
                let mut c = Conn::connect(port).unwrap();
                c.set_timeout(Duration::from_secs(30));
                let mut counts = std::collections::HashMap::<String, i64>::new();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = format!("c:{t}:{}", i % 200);
                    i += 1;
                    let r = c.send(&["INCR", &k]);
                    assert!(r.starts_with(b":"), "{}", String::from_utf8_lossy(&r));
                    *counts.entry(k).or_default() += 1;
                }
                counts
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    admin(
        &bin,
        dport,
        &[
            "--slot-action",
            "--create-range",
            "--beg=512",
            "--end=1023",
            "--gid=2",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = admin(&bin, dport, &["--slots-status"]);
        let done = st.matches("\"backend_addr_group_id\": 2").count() >= 512
            && !st.contains("migrate_from")
            && !st.contains("\"locked\": true");
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "migration did not finish: {}",
            std::fs::read_to_string(root.path().join("dashboard.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut c = p.conn();
    let mut total = 0;
    for h in loads {
        for (k, n) in h.join().unwrap() {
            total += 1;
            let v = n.to_string();
            assert_reply(
                &c.send(&["GET", &k]),
                format!("${}\r\n{v}\r\n", v.len()).as_bytes(),
            );
        }
    }
    // Every key on its owner.
    for (port, range) in [(s1.port(), 0..512), (s2.port(), 512..1024)] {
        let tests::Value::Array(rows) =
            Conn::connect(port)
                .unwrap()
                .send_value(&["SLOTSINFO", "0", "1024"])
        else {
            panic!()
        };
        for r in rows {
            let tests::Value::Array(p) = r else { panic!() };
            let slot = p[0].as_int().unwrap() as usize;
            assert!(range.contains(&slot), "slot {slot} on {port}");
        }
    }
    assert!(total > 0);
    // What codis-fe shows: the dashboard's overview with our proxy online.
    let overview = http_get(dport, "/topom");
    assert!(overview.contains("\"online\": true"), "{overview}");
    assert!(overview.contains("\"qps\""), "{overview}");
}

/// ZooKeeper, as Codis uses it: the dashboard's address from the
/// coordinator's topom node, and the Jodis node (ephemeral, Codis' path
/// and JSON), gone when the proxy stops.
#[test]
fn zookeeper_coordinator_and_jodis() {
    let Some(zk) = tests::cluster::ZooKeeper::start() else {
        return;
    };
    let a = Server::start(&[]);
    let d = Dashboard::start("demo", split_slots(a.port(), a.port(), 512));
    // A worker thread keeps the test's own ZooKeeper session alive between
    // its calls.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let zaddr = format!("127.0.0.1:{}", zk.port);
    let client = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match zookeeper_client::Client::connect(&zaddr).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "zookeeper: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let persistent =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    let topom = format!(
        r#"{{"token":"t","product_name":"demo","admin_addr":"127.0.0.1:{}"}}"#,
        d.port
    );
    rt.block_on(async {
        for (p, v) in [
            ("/codis3", &b""[..]),
            ("/codis3/demo", b""),
            ("/codis3/demo/topom", topom.as_bytes()),
        ] {
            client.create(p, v, &persistent).await.unwrap();
        }
    });
    let (_conf_dir, conf) = write_conf(&format!(
        "product_name = \"demo\"\njodis_name = \"zookeeper\"\njodis_addr = \"{zaddr}\"\njodis_timeout = \"4s\"\n"
    ));
    let mut p = Proxy::start(None, &[&format!("--zookeeper={zaddr}"), "--config", &conf]);
    wait_online(&p);
    let token = json_str(&http_get(p.admin, "/api/proxy/model"), "token");
    let path = format!("/jodis/demo/proxy-{token}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (data, stat) = loop {
        match rt.block_on(client.get_data(&path)) {
            Ok(x) => break x,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no jodis node {path}: {e}: {}",
                    p.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let text = String::from_utf8_lossy(&data);
    for want in ["\"addr\"", "\"admin\"", "\"start\"", &token, "\"online\""] {
        assert!(text.contains(want), "{text}");
    }
    assert!(stat.ephemeral_owner != 0, "not ephemeral");
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our child's pid.
    unsafe {
        libc::kill(p.child.id() as i32, libc::SIGTERM);
    }
    p.child.wait().unwrap();
    assert!(matches!(
        rt.block_on(client.get_data(&path)),
        Err(zookeeper_client::Error::NoNode)
    ));
}
