//! codis-proxy integration tests: the proxy in front of two codis-servers
//! with the slots split between them (codis.md §3, checklist §6 items 6–8).
//!
//! Covers routing by the hashed argument (checked by asking each backend
//! directly where keys landed, tags included), MGET/MSET/DEL/EXISTS split and
//! merge, in-order replies under deep pipelines from several clients, the
//! NotAllow and in-proxy commands byte for byte, session auth, the offline
//! gate, backend down (fast errors, other slots keep working, recovery), a
//! fake misbehaving backend (garbage, half reply then close, silence), bad
//! slot files and config, a watched slot-file switch under an INCR load,
//! both migration forwarding modes against a fake migrate-from server, and
//! the CLI, max clients, pidfile and SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::proxy::{
    Proxy, http_get, http_put, proxy_bin, replace_file, split_slots, wait_slots, write_conf,
};
use tests::{Conn, Server, assert_reply, codis_server_bin, free_port};

fn slot(key: &str) -> usize {
    protocol::slot::slot_of(key.as_bytes())
}

#[test]
fn routing_split_and_local_commands() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut c = p.conn();
    let mut ca = a.conn();
    let mut cb = b.conn();

    // Routing by argument 1, tags included: each key lands on its slot's owner.
    let keys = [
        "a",
        "b",
        "c",
        "foo",
        "hello",
        "{user:1000}:name",
        "{user:1000}:email",
        "a{b}c",
        "{}",
        "x{y",
        "k1",
    ];
    for (i, k) in keys.iter().enumerate() {
        assert_reply(&c.send(&["SET", k, &i.to_string()]), b"+OK\r\n");
    }
    for (i, k) in keys.iter().enumerate() {
        let v = format!("${}\r\n{i}\r\n", i.to_string().len());
        let (owner, other) = if slot(k) < 512 {
            (&mut ca, &mut cb)
        } else {
            (&mut cb, &mut ca)
        };
        assert_reply(&owner.send(&["GET", k]), v.as_bytes());
        assert_reply(&other.send(&["GET", k]), b"$-1\r\n");
        assert_reply(&c.send(&["GET", k]), v.as_bytes());
    }
    assert!(
        slot("a") >= 512 && slot("foo") < 512,
        "test keys must span both servers"
    );

    // Multi-key commands go to their slot's owner when every key hashes
    // there (ZUNIONSTORE: the destination and the sources), and get
    // CROSSSLOT otherwise (Codis hashed argument 3 and ran it anyway).
    c.send(&["ZADD", "{foo}:z", "1", "m"]);
    let tag_owner = if slot("foo") < 512 { &mut ca } else { &mut cb };
    assert_reply(
        &c.send(&["ZUNIONSTORE", "{foo}:dst", "1", "{foo}:z"]),
        b":1\r\n",
    );
    assert_reply(&tag_owner.send(&["ZCARD", "{foo}:dst"]), b":1\r\n");
    assert_reply(
        &c.send(&["ZUNIONSTORE", "dst-anywhere", "1", "{foo}:z"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );

    // Split commands, merged in order.
    assert_reply(
        &c.send(&["MSET", "a", "1", "foo", "2", "hello", "3"]),
        b"+OK\r\n",
    );
    assert_reply(
        &c.send(&["MGET", "a", "nokey", "foo", "hello"]),
        b"*4\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n$1\r\n3\r\n",
    );
    assert_reply(&c.send(&["EXISTS", "a", "foo", "nokey", "a"]), b":3\r\n");
    assert_reply(&c.send(&["TOUCH", "a", "foo", "nokey"]), b":2\r\n");
    assert_reply(&c.send(&["DEL", "a", "foo", "nokey"]), b":2\r\n");
    assert_reply(&ca.send(&["EXISTS", "foo"]), b":0\r\n");
    assert_reply(&cb.send(&["EXISTS", "a"]), b":0\r\n");
    assert_reply(
        &c.send(&["MGET"]),
        b"-ERR wrong number of arguments for 'MGET' command\r\n",
    );
    assert_reply(
        &c.send(&["MSET", "a"]),
        b"-ERR wrong number of arguments for 'MSET' command\r\n",
    );
    assert_reply(
        &c.send(&["MSET", "a", "1", "b"]),
        b"-ERR wrong number of arguments for 'MSET' command\r\n",
    );
    c.send(&["SET", "alist", "x"]);
    assert_reply(&c.send(&["UNLINK", "alist", "hello", "nokey"]), b":2\r\n");

    // NotAllow, byte for byte; the connection stays open.
    for cmd in ["KEYS", "FLUSHALL", "FLUSHDB", "PSYNC", "MONITOR"] {
        let want = format!("-ERR handle request, command '{cmd}' is not allowed\r\n");
        assert_reply(
            &c.send(&[cmd.to_ascii_lowercase().as_str(), "x", "y"]),
            want.as_bytes(),
        );
    }
    assert_reply(&c.send(&["PING"]), b"+PONG\r\n");

    // Transactions whose keys share a slot run whole on its owner (see
    // tests/tests/proxy_tx.rs); a key of another slot makes EXEC abort, and
    // nothing is applied.
    assert_reply(&c.send(&["MULTI"]), b"+OK\r\n");
    assert_reply(&c.send(&["SET", "{tx}a", "1"]), b"+QUEUED\r\n");
    assert_reply(
        &c.send(&["SET", "other", "1"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );
    assert_reply(
        &c.send(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    assert_reply(&ca.send(&["EXISTS", "{tx}a"]), b":0\r\n");
    assert_reply(&cb.send(&["EXISTS", "{tx}a"]), b":0\r\n");
    assert_reply(&c.send(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
    assert_reply(&c.send(&["DISCARD"]), b"-ERR DISCARD without MULTI\r\n");

    // DBSIZE summed over the servers that hold slots, per DB; TIME from the
    // proxy's clock.
    let count = |c: &mut tests::Conn| -> i64 {
        let r = c.send(&["DBSIZE"]);
        String::from_utf8_lossy(&r[1..r.len() - 2]).parse().unwrap()
    };
    let (na, nb) = (count(&mut ca), count(&mut cb));
    assert!(na > 0 && nb > 0, "{na} {nb}");
    assert_eq!(count(&mut c), na + nb);
    c.send(&["SELECT", "1"]);
    assert_eq!(count(&mut c), 0);
    c.send(&["SET", "in-db1", "x"]);
    assert_eq!(count(&mut c), 1);
    c.send(&["DEL", "in-db1"]);
    c.send(&["SELECT", "0"]);
    assert_reply(
        &c.send(&["DBSIZE", "x"]),
        b"-ERR wrong number of arguments for 'DBSIZE' command\r\n",
    );
    let t = String::from_utf8_lossy(&c.send(&["TIME"])).into_owned();
    let parts: Vec<&str> = t.split("\r\n").collect();
    assert_eq!(parts[0], "*2", "{t}");
    let secs: u64 = parts[2].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) <= 2, "{t}");
    assert!(parts[4].parse::<u32>().unwrap() < 1_000_000, "{t}");

    // In-proxy commands.
    assert_reply(
        &c.send(&["AUTH", "x"]),
        b"-ERR Client sent AUTH, but no password is set\r\n",
    );
    assert_reply(
        &c.send(&["AUTH"]),
        b"-ERR wrong number of arguments for 'AUTH' command\r\n",
    );
    assert_reply(
        &c.send(&["SELECT", "16"]),
        b"-ERR invalid DB index, only accept DB [0,16)\r\n",
    );
    assert_reply(&c.send(&["SELECT", "x"]), b"-ERR invalid DB index\r\n");
    assert_reply(
        &c.send(&["PING", "hello"]),
        b"-ERR backend server 'hello' not found\r\n",
    );
    assert_reply(
        &c.send(&["INFO", "9.9.9.9:1"]),
        b"-ERR backend server '9.9.9.9:1' not found\r\n",
    );
    // INFO <section>: the proxy's own sections.
    let info = String::from_utf8(c.send(&["INFO", "server"])).unwrap();
    assert!(
        info.starts_with("$") && info.contains("# Server\r\nredis_version:7.0.15\r\n"),
        "{info}"
    );
    assert!(
        !info.contains("# Keyspace") && !info.ends_with("\r\n\r\n\r\n"),
        "{info}"
    );
    assert_reply(&c.send(&["PING", &a.addr()]), b"+PONG\r\n");
    assert_reply(
        &c.send(&["SLOTSINFO"]),
        b"-ERR wrong number of arguments for 'SLOTSINFO' command\r\n",
    );
    assert_reply(
        &c.send(&["SLOTSINFO", "1.2.3.4:5"]),
        b"-ERR backend server '1.2.3.4:5' not found\r\n",
    );
    assert_reply(
        &c.send(&["SLOTSSCAN", "1024", "0"]),
        b"-ERR parse slotnum '1024' failed, out of range\r\n",
    );
    assert_reply(
        &c.send(&["SLOTSMAPPING", "1", "2"]),
        b"-ERR wrong number of arguments for 'SLOTSMAPPING' command\r\n",
    );
    let want = format!("*4\r\n+3\r\n+127.0.0.1:{}\r\n+\r\n*0\r\n", a.port());
    assert_reply(&c.send(&["SLOTSMAPPING", "3"]), want.as_bytes());
    let all = c.send(&["SLOTSMAPPING"]);
    assert!(all.starts_with(b"*1024\r\n*4\r\n+0\r\n"));
    let long = "X".repeat(65);
    assert_reply(
        &c.send(&[long.as_str()]),
        b"-ERR handle request, bad command length, too short or too long\r\n",
    );

    // SELECT switches the backend DB.
    assert_reply(&c.send(&["SELECT", "3"]), b"+OK\r\n");
    assert_reply(&c.send(&["SET", "foo", "db3"]), b"+OK\r\n");
    ca.send(&["SELECT", "3"]);
    assert_reply(&ca.send(&["GET", "foo"]), b"$3\r\ndb3\r\n");
    assert_reply(&c.send(&["SELECT", "0"]), b"+OK\r\n");
    assert_reply(&c.send(&["GET", "foo"]), b"$-1\r\n");

    // Inline commands are forwarded too.
    assert_reply(&c.send_raw(b"SET inl 5\r\n").unwrap(), b"+OK\r\n");
    assert_reply(&c.send_raw(b"GET inl\r\n").unwrap(), b"$1\r\n5\r\n");

    // QUIT answers +OK and closes.
    c.write_raw(b"*1\r\n$4\r\nQUIT\r\n").unwrap();
    let (rest, closed) = c.read_until_close(Duration::from_secs(3), Duration::from_secs(5));
    assert_eq!(rest, b"+OK\r\n");
    assert!(closed);

    // Admin API answers with Codis' shapes.
    let body = http_get(p.admin, "/proxy/slots");
    assert!(body.contains("\"backend_addr_group_id\": 2"), "{body}");
    let stats = http_get(p.admin, "/proxy/stats");
    assert!(stats.contains("\"online\": true"), "{stats}");
    let bad = http_put(p.admin, "/api/proxy/fillslots/wrong", "[]");
    assert!(bad.starts_with("HTTP/1.1 800"), "{bad}");
}

#[test]
fn deep_pipelines_from_many_clients_stay_in_order() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 300)), &[]);
    let port = p.port;
    let threads: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Conn::connect(port).unwrap();
                let n = 3000;
                let mut req = Vec::new();
                for i in 0..n {
                    let k = format!("t{t}:k{i}");
                    req.extend_from_slice(&tests::resp::encode_command(&[
                        "SET",
                        &k,
                        &i.to_string(),
                    ]));
                    req.extend_from_slice(&tests::resp::encode_command(&["GET", &k]));
                    if i % 10 == 0 {
                        let k2 = format!("t{t}:k{}", i / 2);
                        req.extend_from_slice(&tests::resp::encode_command(&[
                            "MGET", &k, "nokey", &k2,
                        ]));
                    }
                }
                c.write_raw(&req).unwrap();
                for i in 0..n {
                    assert_reply(&c.read_reply().unwrap(), b"+OK\r\n");
                    let v = i.to_string();
                    let want = format!("${}\r\n{v}\r\n", v.len());
                    assert_reply(&c.read_reply().unwrap(), want.as_bytes());
                    if i % 10 == 0 {
                        let v2 = (i / 2).to_string();
                        let want = format!(
                            "*3\r\n${}\r\n{v}\r\n$-1\r\n${}\r\n{v2}\r\n",
                            v.len(),
                            v2.len()
                        );
                        assert_reply(&c.read_reply().unwrap(), want.as_bytes());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn offline_auth_and_bad_slot_files() {
    // No slot config: offline.
    let p = Proxy::start(None, &[]);
    let mut c = p.conn();
    let (got, closed) = c.read_until_close(Duration::from_secs(3), Duration::from_secs(5));
    assert_eq!(got, b"-ERR router is not online\r\n");
    assert!(closed);
    // The admin API says so, and why.
    let stats = http_get(p.admin, "/proxy/stats");
    assert!(stats.contains("\"online\": false"), "{stats}");
    assert!(
        stats.contains("\"online_reason\": \"no slot table yet"),
        "{stats}"
    );
    drop(p);

    // Bad slot files are refused at start-up with a clear message.
    for bad in [
        "[{",
        r#"[{"id":1024,"backend_addr":"127.0.0.1:1"}]"#,
        r#"[{"id":1},{"id":1}]"#,
        r#"[{"id":1,"backend_addr":"nope"}]"#,
    ] {
        let e = Proxy::try_start(Some(bad), &[]).err().expect("must refuse");
        assert!(e.contains("bad slot file"), "{e}");
    }
    // Unknown config key / bad duration refused.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("proxy.toml");
    std::fs::write(&conf, "nosuch = 1\n").unwrap();
    let e = Proxy::try_start(None, &[&format!("--config={}", conf.display())])
        .err()
        .expect("must refuse");
    assert!(e.contains("nosuch"), "{e}");
    std::fs::write(&conf, "session_recv_timeout = \"30\"\n").unwrap();
    let e = Proxy::try_start(None, &["--config", &conf.display().to_string()])
        .err()
        .expect("must refuse");
    assert!(e.contains("session_recv_timeout"), "{e}");

    // Session auth.
    let a = Server::start(&[]);
    let p = Proxy::start(
        Some(&split_slots(a.port(), a.port(), 512)),
        &["--session_auth=pw"],
    );
    let mut c = p.conn();
    assert_reply(
        &c.send(&["GET", "x"]),
        b"-NOAUTH Authentication required\r\n",
    );
    assert_reply(&c.send(&["AUTH", "bad"]), b"-ERR invalid password\r\n");
    assert_reply(&c.send(&["AUTH", "pw"]), b"+OK\r\n");
    assert_reply(&c.send(&["GET", "x"]), b"$-1\r\n");

    // A bad file written while running is refused; the table is kept.
    let mut c = p.conn();
    c.send(&["AUTH", "pw"]);
    replace_file(&p.slot_file(), r#"[{"id":5000}]"#);
    // The watcher polls every 500 ms; wait for its verdict (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.log().contains("refused") {
        assert!(Instant::now() < deadline, "not refused: {}", p.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_reply(&c.send(&["SET", "x", "1"]), b"+OK\r\n");
    // A file with no slots takes every slot offline.
    replace_file(&p.slot_file(), "[]");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.send(&["GET", "x"]);
        if r == b"-ERR handle request, slot is not ready, may be offline\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slot file change not applied: {}",
            tests::escape(&r)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A codis-server on a fixed port that the test can stop and restart.
fn spawn_server(port: u16, dir: &Path) -> Child {
    let child = Command::new(codis_server_bin())
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            &dir.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn codis-server");
    // Up once it answers PING with +PONG (not -LOADING).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut buf = [0u8; 64];
            if s.write_all(b"PING\r\n").is_ok()
                && let Ok(n) = s.read(&mut buf)
                && buf[..n].starts_with(b"+PONG")
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "codis-server did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn backend_down_fails_fast_and_recovers() {
    let a = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let bport = free_port();
    let mut b = spawn_server(bport, dir.path());
    let p = Proxy::start(Some(&split_slots(a.port(), bport, 512)), &[]);
    let mut c = p.conn();
    c.set_timeout(Duration::from_secs(5));
    assert_reply(&c.send(&["SET", "a", "1"]), b"+OK\r\n"); // slot 579: on b
    assert_reply(&c.send(&["SET", "foo", "1"]), b"+OK\r\n"); // slot 289: on a

    let _ = b.kill();
    let _ = b.wait();
    let t0 = Instant::now();
    for _ in 0..30 {
        let r = c.send(&["GET", "a"]);
        assert_reply(&r, b"-ERR handle response, backend conn reset\r\n");
    }
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "errors must be fast: {:?}",
        t0.elapsed()
    );
    // Other slots keep working; split commands report the failure.
    assert_reply(&c.send(&["GET", "foo"]), b"$1\r\n1\r\n");
    assert_reply(
        &c.send(&["MGET", "foo", "a"]),
        b"-ERR handle response, backend conn reset\r\n",
    );

    // The backend comes back: the proxy reconnects by itself.
    let mut b = spawn_server(bport, dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if c.send(&["SET", "a", "2"]) == b"+OK\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "proxy did not reconnect");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_reply(
        &c.send(&["MGET", "foo", "a"]),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n",
    );
    let _ = b.kill();
    let _ = b.wait();
}

#[test]
fn slot_file_switch_under_incr_load() {
    // Move half the slots, [512, 1024), from a to b while clients INCR keys: lock the
    // slots (requests wait), copy the counters, then switch the owner. No
    // request may fail and the final sums must be exact.
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let (_conf_dir, conf) = write_conf("slot_locked_timeout = \"20s\"\n");
    let p = Proxy::start(
        Some(&split_slots(a.port(), b.port(), 1024)),
        &["--config", &conf],
    );
    let keys: Vec<String> = (0..64).map(|i| format!("ctr:{i}")).collect();
    let port = p.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let keys = keys.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(port).unwrap();
                let mut sent = vec![0u64; keys.len()];
                let mut i = w;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = i % keys.len();
                    let r = c.send(&["INCR", &keys[k]]);
                    assert_eq!(r.first(), Some(&b':'), "INCR failed: {}", tests::escape(&r));
                    sent[k] += 1;
                    i += 1;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Phase 1: lock the moving slots.
    let moving = |i: usize| (512..1024).contains(&i);
    let locked: Vec<String> = (0..1024)
        .map(|i| {
            let port = a.port();
            let lock = if moving(i) { r#","locked":true"# } else { "" };
            format!(r#"{{"id":{i},"backend_addr":"127.0.0.1:{port}"{lock}}}"#)
        })
        .collect();
    replace_file(&p.slot_file(), &format!("[{}]", locked.join(",")));
    // Applied (and drained) once the admin API shows the lock.
    wait_slots(p.admin, |body| body.contains("\"locked\": true"));
    // Phase 2: copy the moving counters a -> b.
    let mut ca = a.conn();
    let mut cb = b.conn();
    for k in keys.iter().filter(|k| moving(slot(k))) {
        let v = ca.send_value(&["GET", k]);
        if let tests::Value::Bulk(v) = v {
            cb.send(&[b"SET".as_slice(), k.as_bytes(), &v]);
            ca.send(&["DEL", k]);
        }
    }
    // Phase 3: switch the owner, unlocked.
    replace_file(&p.slot_file(), &split_slots(a.port(), b.port(), 512));
    let bport = format!("127.0.0.1:{}", b.port());
    wait_slots(p.admin, |body| {
        !body.contains("\"locked\"") && body.contains(&bport)
    });
    std::thread::sleep(Duration::from_millis(300)); // keep the load running on the new owner
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = vec![0u64; keys.len()];
    for w in workers {
        for (t, s) in total.iter_mut().zip(w.join().unwrap()) {
            *t += s;
        }
    }
    let mut c = p.conn();
    for (k, want) in keys.iter().zip(&total) {
        let got = c.send(&["GET", k]);
        let expect = if *want == 0 {
            "$-1\r\n".to_string()
        } else {
            format!("${}\r\n{want}\r\n", want.to_string().len())
        };
        assert_reply(&got, expect.as_bytes());
    }
    assert!(keys.iter().any(|k| moving(slot(k))), "some keys must move");
}

/// A fake backend: replies `+OK` to each read, except when the request
/// mentions `garbage` (invalid RESP), `half` (half a reply, then close) or
/// `slow` (no reply for 3 s).
fn fake_backend() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    if text.contains("garbage") {
                        let _ = s.write_all(b"?what\r\n");
                    } else if text.contains("half") {
                        let _ = s.write_all(b"$10\r\nabc");
                        return;
                    } else if text.contains("slow") {
                        std::thread::sleep(Duration::from_secs(3));
                        return;
                    } else {
                        let _ = s.write_all(b"+OK\r\n");
                    }
                }
            });
        }
    });
    port
}

/// A key with the given prefix whose slot is in `[lo, hi)`.
fn key_in(prefix: &str, lo: usize, hi: usize) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}:{i}"))
        .find(|k| (lo..hi).contains(&slot(k)))
        .unwrap()
}

#[test]
fn misbehaving_backend_errors_and_other_slots_keep_serving() {
    let a = Server::start(&[]);
    let fake = fake_backend();
    let (_conf_dir, conf) = write_conf("backend_recv_timeout = \"1s\"\n");
    let p = Proxy::start(
        Some(&split_slots(a.port(), fake, 512)),
        &["--config", &conf],
    );
    let mut c = p.conn();
    c.set_timeout(Duration::from_secs(10));
    let good = key_in("good", 0, 512);
    assert_reply(&c.send(&["SET", &good, "v"]), b"+OK\r\n");
    assert_reply(&c.send(&["GET", &key_in("okay", 512, 1024)]), b"+OK\r\n");
    for word in ["garbage", "half", "slow"] {
        let t0 = Instant::now();
        let k = key_in(word, 512, 1024);
        assert_reply(
            &c.send(&["GET", &k]),
            b"-ERR handle response, backend conn reset\r\n",
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{word}: took {:?}",
            t0.elapsed()
        );
        assert_reply(&c.send(&["GET", &good]), b"$1\r\nv\r\n");
        // The proxy reconnects to the fake by itself.
        assert_reply(&c.send(&["GET", &key_in("okay", 512, 1024)]), b"+OK\r\n");
    }
}

/// A fake migrate-from server for the forwarding modes: SLOTSMGRTTAGONE
/// answers `:1`; SLOTSMGRT-EXEC-WRAPPER answers code 2 (run on the source)
/// for keys containing `onsrc`, code 1 (being moved) the first 3 times for
/// keys containing `moving`, else code 0 (not here). Returns its port and a
/// log of the commands it saw.
fn fake_source() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let moving = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let seen = seen2.clone();
            let moving = moving.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request at a time: parse complete multibulks.
                    while let Some((args, used)) = parse_request(&buf) {
                        buf.drain(..used);
                        let text = args.join(" ");
                        seen.lock().unwrap().push(text.clone());
                        let reply: Vec<u8> = if args[0] == "SLOTSMGRTTAGONE" {
                            b":1\r\n".to_vec()
                        } else if args[0] == "SLOTSMGRT-EXEC-WRAPPER" {
                            if text.contains("onsrc") {
                                b"*2\r\n:2\r\n$3\r\nsrc\r\n".to_vec()
                            } else if text.contains("moving")
                                && moving.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3
                            {
                                b"*2\r\n:1\r\n-ERR moving\r\n".to_vec()
                            } else {
                                b"*2\r\n:0\r\n$-1\r\n".to_vec()
                            }
                        } else {
                            b"+PONG\r\n".to_vec()
                        };
                        if s.write_all(&reply).is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (port, seen)
}

/// Parses one complete RESP multibulk request (test helper, trusted input).
fn parse_request(buf: &[u8]) -> Option<(Vec<String>, usize)> {
    fn line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
        let rel = buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[pos..pos + rel], pos + rel + 2))
    }
    let (head, mut pos) = line(buf, 0)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let (h, p) = line(buf, pos)?;
        let len: usize = std::str::from_utf8(h.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        let data = buf.get(p..p + len)?;
        args.push(String::from_utf8_lossy(data).to_string());
        pos = p + len + 2;
        if buf.len() < pos {
            return None;
        }
    }
    Some((args, pos))
}

#[test]
fn migration_aware_forwarding() {
    let target = Server::start(&[]);
    let (src, seen) = fake_source();
    let slots = |method: u32| -> String {
        let items: Vec<String> = (0..1024)
            .map(|i| {
                format!(
                    r#"{{"id":{i},"backend_addr":"127.0.0.1:{}","migrate_from":"127.0.0.1:{src}","forward_method":{method}}}"#,
                    target.port()
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    };
    // Semi-async: code 2 answers from the source, code 0 goes to the target,
    // code 1 is retried.
    let p = Proxy::start(Some(&slots(1)), &[]);
    let mut c = p.conn();
    let mut t = target.conn();
    assert_reply(&c.send(&["SET", "onsrc", "x"]), b"$3\r\nsrc\r\n");
    assert_reply(&t.send(&["EXISTS", "onsrc"]), b":0\r\n");
    assert_reply(&c.send(&["SET", "newkey", "v"]), b"+OK\r\n");
    assert_reply(&t.send(&["GET", "newkey"]), b"$1\r\nv\r\n");
    assert_reply(&c.send(&["SET", "moving", "m"]), b"+OK\r\n");
    assert_reply(&t.send(&["GET", "moving"]), b"$1\r\nm\r\n");
    let n_wrapped = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.contains("WRAPPER moving"))
        .count();
    assert_eq!(n_wrapped, 4, "code 1 must be retried until code 0");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s == "SLOTSMGRT-EXEC-WRAPPER newkey SET newkey v")
    );
    drop(p);

    // Sync: SLOTSMGRTTAGONE <host> <port> 3000 <key> first, then the target.
    let p = Proxy::start(Some(&slots(0)), &[]);
    let mut c = p.conn();
    assert_reply(&c.send(&["SET", "{tag}k", "1"]), b"+OK\r\n");
    assert_reply(&t.send(&["GET", "{tag}k"]), b"$1\r\n1\r\n");
    let want = format!("SLOTSMGRTTAGONE 127.0.0.1 {} 3000 {{tag}}k", target.port());
    assert!(
        seen.lock().unwrap().contains(&want),
        "{:?}",
        seen.lock().unwrap()
    );
}

#[test]
fn cli_max_clients_and_sigterm() {
    let out = Command::new(proxy_bin())
        .arg("--default-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for key in [
        "product_name = \"codis-demo\"",
        "session_recv_timeout = \"30m\"",
        "backend_number_databases = 16",
    ] {
        assert!(text.contains(key), "{key} missing from --default-config");
    }
    let out = Command::new(proxy_bin()).arg("--version").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("codis-proxy"));
    // Every flag has a description; a bad flag prints usage, not a panic.
    let out = Command::new(proxy_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
        let words = line.split_whitespace().count();
        assert!(words > 2, "flag without a description: {line}");
    }
    let out = Command::new(proxy_bin()).arg("--bogus").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Usage") && !err.contains("panicked"));
    // bench-migration too: --help is usage, a bad flag usage and status 2.
    let bench = env!("CARGO_BIN_EXE_bench-migration");
    let out = Command::new(bench).arg("--help").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--keys N"));
    let out = Command::new(bench).arg("--bogus").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown option --bogus") && err.contains("usage:"),
        "{err}"
    );
    // --ulimit above the hard limit: refused with Codis' message.
    let out = Command::new(proxy_bin())
        .args(["--ulimit", "999999999999", "--host-proxy", "127.0.0.1:0"])
        .args(["--host-admin", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ulimit too small"),
        "{err}"
    );

    let a = Server::start(&[]);
    let (_d, conf) = write_conf("proxy_max_clients = 1\n");
    let pid_dir = tempfile::tempdir().unwrap();
    let pidfile = pid_dir.path().join("proxy.pid");
    let mut p = Proxy::start(
        Some(&split_slots(a.port(), a.port(), 512)),
        &[
            "--config",
            &conf,
            "--pidfile",
            &pidfile.display().to_string(),
            "--ncpu=2",
            "--max-ncpu=3",
            "--ulimit=256",
        ],
    );
    // The start-up probe connection may still count for a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c1 = loop {
        let mut c = p.conn();
        if c.send(&["PING"]) == b"+PONG\r\n" {
            break c;
        }
        assert!(Instant::now() < deadline, "no session slot became free");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_reply(&c1.send(&["PING"]), b"+PONG\r\n");
    let mut c2 = p.conn();
    let (got, closed) = c2.read_until_close(Duration::from_secs(3), Duration::from_secs(5));
    assert_eq!(got, b"-ERR max number of clients reached\r\n");
    assert!(closed);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid as u32, p.child.id());
    drop(c1);
    // SIGTERM: exits by itself and removes the pidfile.
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        if let Ok(Some(st)) = p.child.try_wait() {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(Instant::now() < deadline, "proxy did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pidfile.exists());
}

#[test]
fn replica_reads_only_for_pure_reads() {
    let primary = Server::start(&[]);
    let replica = Server::start(&[]);
    let items: Vec<String> = (0..1024)
        .map(|i| {
            format!(
                r#"{{"id":{i},"backend_addr":"127.0.0.1:{}","replica_groups":[["127.0.0.1:{}"]]}}"#,
                primary.port(),
                replica.port()
            )
        })
        .collect();
    let slots = format!("[{}]", items.join(","));
    primary.conn().send(&["SET", "rk", "primary"]);
    replica.conn().send(&["SET", "rk", "replica"]);
    let p = Proxy::start(Some(&slots), &[]);
    let mut c = p.conn();
    // Replica connections are made eagerly; reads move there once connected.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.send(&["GET", "rk"]) != b"$7\r\nreplica\r\n" {
        assert!(Instant::now() < deadline, "reads never went to the replica");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_reply(
        &c.send(&["MGET", "rk", "nokey"]),
        b"*2\r\n$7\r\nreplica\r\n$-1\r\n",
    );
    // Writes (and their replies) always go to the primary.
    assert_reply(&c.send(&["APPEND", "rk", "!"]), b":8\r\n");
    assert_reply(&primary.conn().send(&["GET", "rk"]), b"$8\r\nprimary!\r\n");
    assert_reply(
        &c.send(&["SLOTSMAPPING", "0"]),
        format!(
            "*4\r\n+0\r\n+127.0.0.1:{}\r\n+\r\n*1\r\n*1\r\n+127.0.0.1:{}\r\n",
            primary.port(),
            replica.port()
        )
        .as_bytes(),
    );
    drop(p);
    // backend_primary_only: never the replica.
    let (_d, conf) = write_conf("backend_primary_only = true\n");
    let p = Proxy::start(Some(&slots), &["--config", &conf]);
    let mut c = p.conn();
    std::thread::sleep(Duration::from_millis(300));
    assert_reply(&c.send(&["GET", "rk"]), b"$8\r\nprimary!\r\n");
}

#[test]
fn pipeline_limit_and_idle_timeout_close_the_session() {
    let a = Server::start(&[]);
    let fake = fake_backend();
    let (_d, conf) = write_conf(
        "session_max_pipeline = 10\nsession_recv_timeout = \"1s\"\nbackend_recv_timeout = \"1s\"\n",
    );
    let p = Proxy::start(
        Some(&split_slots(a.port(), fake, 512)),
        &["--config", &conf],
    );
    // 50 requests the (silent) backend does not answer: the session is
    // closed once more than 10 are outstanding, after flushing what it has.
    let slow = key_in("slow", 512, 1024);
    let mut req = Vec::new();
    for _ in 0..50 {
        req.extend_from_slice(&tests::resp::encode_command(&["GET", &slow]));
    }
    let mut c = p.conn();
    c.write_raw(&req).unwrap();
    let (got, closed) = c.read_until_close(Duration::from_secs(5), Duration::from_secs(10));
    assert!(closed, "session must be closed");
    let n = got.windows(2).filter(|w| w == b"\r\n").count();
    assert!(n < 50, "got {n} replies");
    // Idle clients are closed after session_recv_timeout.
    let mut c = p.conn();
    assert_reply(&c.send(&["GET", &key_in("good", 0, 512)]), b"$-1\r\n");
    let t0 = Instant::now();
    let (_, closed) = c.read_until_close(Duration::from_secs(4), Duration::from_secs(5));
    assert!(
        closed && t0.elapsed() < Duration::from_secs(4),
        "idle session not closed"
    );
}

/// A transactional pipeline as redis-py's default `pipeline()` sends it
/// (MULTI, the commands and EXEC in one write) runs whole when its keys
/// share a slot, and is refused whole (nothing applied) when they do not.
#[test]
fn transactional_pipeline_runs_or_is_refused_whole() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut c = p.conn();
    let run = |c: &mut tests::Conn, cmds: &[&[&str]]| -> Vec<String> {
        let mut bytes = Vec::new();
        for cmd in cmds {
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            protocol::resp::request::command(&mut bytes, &args);
        }
        c.write_raw(&bytes).unwrap();
        (0..cmds.len())
            .map(|_| String::from_utf8_lossy(&c.read_reply().unwrap()).into_owned())
            .collect()
    };
    let replies = run(
        &mut c,
        &[
            &["MULTI"],
            &["SET", "{t}a", "1"],
            &["INCR", "{t}n"],
            &["EXEC"],
        ],
    );
    assert_eq!(
        replies,
        [
            "+OK\r\n",
            "+QUEUED\r\n",
            "+QUEUED\r\n",
            "*2\r\n+OK\r\n:1\r\n"
        ]
    );
    let replies = run(
        &mut c,
        &[
            &["MULTI"],
            &["SET", "tx:a", "1"],
            &["INCR", "tx:n"],
            &["EXEC"],
        ],
    );
    assert_eq!(replies[0], "+OK\r\n");
    assert!(replies[2].starts_with("-CROSSSLOT "), "{replies:?}");
    assert!(replies[3].starts_with("-EXECABORT "), "{replies:?}");
    for s in [&a, &b] {
        let mut d = s.conn();
        assert_reply(&d.send(&["EXISTS", "tx:a", "tx:n"]), b":0\r\n");
    }
    // The session goes on: a plain pipeline runs.
    assert_reply(&c.send(&["INCR", "tx:n"]), b":1\r\n");
}

#[test]
fn backend_oom_replies_are_counted() {
    // A server over its maxmemory with noeviction answers -OOM: the
    // proxy passes it on and counts it (stats, INFO, /metrics).
    let s = Server::start(&["--maxmemory", "1", "--maxmemory-policy", "noeviction"]);
    let p = Proxy::start(Some(&split_slots(s.port(), s.port(), 512)), &[]);
    let mut c = p.conn();
    assert_eq!(
        c.cmd("SET a 1"),
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    assert_eq!(c.cmd("GET a"), b"$-1\r\n");
    let info = c.value("INFO stats").as_text().unwrap();
    assert!(info.contains("total_backend_oom_replies:1"), "{info}");
    let stats = http_get(p.admin, "/proxy/stats");
    assert!(stats.contains("\"oom\": 1"), "{stats}");
    let m = http_get(p.admin, "/metrics");
    assert!(m.contains("codis_proxy_redis_oom_errors_total 1"), "{m}");
}

/// GEO commands through the proxy (issue 17): routed by their key, and the
/// store forms only when the destination shares the source's slot (the
/// STORE key of GEORADIUS is found by the command table's key specs).
#[test]
fn geo_commands_are_routed_by_key() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut c = p.conn();
    for key in ["{g}:cities", "a", "foo"] {
        assert_reply(
            &c.send(&[
                "GEOADD",
                key,
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania",
            ]),
            b":2\r\n",
        );
        let owner = if slot(key) < 512 { &a } else { &b };
        assert_reply(&owner.conn().send(&["ZCARD", key]), b":2\r\n");
        assert_reply(
            &c.send(&["GEODIST", key, "Palermo", "Catania", "km"]),
            b"$8\r\n166.2742\r\n",
        );
        assert_reply(
            &c.send(&[
                "GEOSEARCH",
                key,
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "100",
                "km",
            ]),
            b"*1\r\n$7\r\nCatania\r\n",
        );
    }
    assert_reply(
        &c.send(&[
            "GEOSEARCHSTORE",
            "{g}:near",
            "{g}:cities",
            "FROMMEMBER",
            "Palermo",
            "BYRADIUS",
            "200",
            "km",
        ]),
        b":2\r\n",
    );
    assert_reply(
        &c.send(&[
            "GEORADIUS",
            "{g}:cities",
            "15",
            "37",
            "100",
            "km",
            "STORE",
            "{g}:r",
        ]),
        b":1\r\n",
    );
    assert_reply(&c.send(&["ZCARD", "{g}:r"]), b":1\r\n");
    let cross = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_reply(
        &c.send(&[
            "GEOSEARCHSTORE",
            "elsewhere",
            "{g}:cities",
            "FROMMEMBER",
            "Palermo",
            "BYRADIUS",
            "200",
            "km",
        ]),
        cross,
    );
    assert_reply(
        &c.send(&[
            "GEORADIUS",
            "{g}:cities",
            "15",
            "37",
            "100",
            "km",
            "STORE",
            "elsewhere",
        ]),
        cross,
    );
}

/// Stream commands go to their key's owner; XREAD / XREADGROUP over several
/// streams run when the streams share a slot (CROSSSLOT otherwise); with
/// BLOCK they wait on a connection of their own and are woken by an XADD
/// through the proxy; without BLOCK they are ordinary reads.
#[test]
fn stream_commands_are_routed_by_key() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut c = p.conn();
    for key in ["{s}:one", "a", "foo"] {
        assert_reply(&c.send(&["XADD", key, "1-1", "f", "v"]), b"$3\r\n1-1\r\n");
        let owner = if slot(key) < 512 { &a } else { &b };
        assert_reply(&owner.conn().send(&["XLEN", key]), b":1\r\n");
        assert_reply(
            &c.send(&["XRANGE", key, "-", "+"]),
            b"*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        );
        assert_reply(&c.send(&["XGROUP", "CREATE", key, "g", "0"]), b"+OK\r\n");
        let got = c.send(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", key, ">"]);
        assert!(
            got.starts_with(b"*1\r\n*2\r\n"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        assert_reply(&c.send(&["XACK", key, "g", "1-1"]), b":1\r\n");
    }
    assert_reply(
        &c.send(&["XADD", "{s}:two", "2-1", "x", "y"]),
        b"$3\r\n2-1\r\n",
    );
    let both = c.send(&[
        "XREAD", "COUNT", "5", "STREAMS", "{s}:one", "{s}:two", "0", "0",
    ]);
    assert!(
        both.starts_with(b"*2\r\n"),
        "{}",
        String::from_utf8_lossy(&both)
    );
    assert_ne!(slot("a"), slot("foo"));
    assert_reply(
        &c.send(&["XREAD", "STREAMS", "a", "foo", "0", "0"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );
    // BLOCK: a timeout, then a wake-up by an XADD from another client.
    assert_reply(
        &c.send(&["XREAD", "BLOCK", "50", "STREAMS", "{s}:one", "$"]),
        b"*-1\r\n",
    );
    c.write_raw(&tests::resp::encode_command(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c2",
        "BLOCK",
        "0",
        "STREAMS",
        "{s}:one",
        ">",
    ]))
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut d = p.conn();
    assert_reply(
        &d.send(&["XADD", "{s}:one", "5-1", "n", "1"]),
        b"$3\r\n5-1\r\n",
    );
    assert_reply(
        &c.read_reply().unwrap(),
        b"*1\r\n*2\r\n$7\r\n{s}:one\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nn\r\n$1\r\n1\r\n",
    );
    assert_reply(
        &d.send(&["XPENDING", "{s}:one", "g"]),
        b"*4\r\n:1\r\n$3\r\n5-1\r\n$3\r\n5-1\r\n*1\r\n*2\r\n$2\r\nc2\r\n$1\r\n1\r\n",
    );
}
