//! Cluster operations with `codis-ctl` (issue 14): slot tables in etcd
//! (Debian's `etcd-server`, started on free ports by the harness) and in a
//! file, proxies following them, migrations under an INCR load through two
//! proxies with the tool killed half-way and resumed and with etcd killed
//! mid-migration, the change lock, dry runs, rebalance and promote.
//!
//! Every scenario ends with the same checks: no client request failed, every
//! counter holds exactly the number of INCRs acknowledged, every pre-filled
//! key still has its value, and every key lives on the master of the group
//! that owns its slot (SLOTSINFO on every master).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tests::cluster::{Etcd, ctl, ctl_ok, ctl_spawn, table_state};
use tests::proxy::{Proxy, http_get};
use tests::{Conn, Server, Value, assert_reply};

/// Fills `n` keys `pre:{i}` = i on a server, pipelined.
fn prefill(port: u16, n: usize) {
    let mut c = Conn::connect(port).unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut out = Vec::new();
        for i in chunk {
            let (k, v) = (format!("pre:{i}"), i.to_string());
            out.extend_from_slice(
                format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                    k.len(),
                    v.len()
                )
                .as_bytes(),
            );
        }
        c.write_raw(&out).unwrap();
        for _ in chunk {
            assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
        }
    }
}

/// INCR load: `threads` clients spread over the proxies, each on its own
/// counters; counts what was acknowledged and what failed.
/// What one load client ends with: acknowledged INCRs per key, errors.
type ClientResult = (HashMap<String, i64>, Vec<String>);

struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<ClientResult>>,
    ops: Arc<AtomicU64>,
}

impl Load {
    fn start(ports: &[u16], threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let handles = (0..threads)
            .map(|t| {
                let port = ports[t % ports.len()];
                let (stop, ops) = (stop.clone(), ops.clone());
                std::thread::spawn(move || {
                    let mut c = Conn::connect(port).unwrap();
                    c.set_timeout(Duration::from_secs(20));
                    let mut counts: HashMap<String, i64> = HashMap::new();
                    let mut errors = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Paced (about 2,000/s per client), so the machine
                        // is not starved when tests run side by side.
                        std::thread::sleep(Duration::from_micros(500));
                        let key = format!("ctr:{t}:{}", i % 300);
                        i += 1;
                        match c.try_send(&["INCR", &key]) {
                            Ok(r) if r.starts_with(b":") => {
                                *counts.entry(key).or_default() += 1;
                                ops.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => errors.push(String::from_utf8_lossy(&r).into_owned()),
                            Err(e) => {
                                errors.push(e.to_string());
                                break;
                            }
                        }
                    }
                    (counts, errors)
                })
            })
            .collect();
        Load { stop, handles, ops }
    }

    fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Stops the load; the acknowledged counts (errors fail the test).
    fn finish(self) -> HashMap<String, i64> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = HashMap::new();
        for h in self.handles {
            let (counts, errors) = h.join().unwrap();
            assert!(
                errors.is_empty(),
                "client errors: {:?}",
                &errors[..errors.len().min(5)]
            );
            all.extend(counts);
        }
        all
    }
}

/// The checks every scenario ends with.
fn verify(
    store: &str,
    proxy: &Proxy,
    masters: &HashMap<u64, u16>,
    counts: &HashMap<String, i64>,
    prefilled: usize,
) {
    let mut c = proxy.conn();
    for (k, n) in counts {
        assert_eq!(
            c.send(&["GET", k]),
            format!("${}\r\n{n}\r\n", n.to_string().len()).into_bytes(),
            "{k}"
        );
    }
    for i in (0..prefilled).step_by(7) {
        let v = i.to_string();
        assert_eq!(
            c.send(&["GET", &format!("pre:{i}")]),
            format!("${}\r\n{v}\r\n", v.len()).into_bytes()
        );
    }
    // Every key on its owner, nothing elsewhere.
    let (_, groups, actions, _) = table_state(store);
    assert_eq!(actions, 0, "moves left in the table");
    let mut total = 0i64;
    for (gid, port) in masters {
        let mut m = Conn::connect(*port).unwrap();
        let Value::Array(rows) = m.send_value(&["SLOTSINFO", "0", "1024"]) else {
            panic!("SLOTSINFO")
        };
        for r in rows {
            let Value::Array(p) = r else { panic!() };
            let (slot, n) = (p[0].as_int().unwrap(), p[1].as_int().unwrap());
            assert_eq!(
                groups[slot as usize], *gid,
                "slot {slot} has {n} keys on group {gid}'s master, owned by {}",
                groups[slot as usize]
            );
            total += n;
        }
    }
    assert_eq!(total as usize, prefilled + counts.len(), "keys in all");
}

fn wait_until(what: &str, within: Duration, f: impl FnMut() -> bool) {
    wait_until_or(what, within, f, String::new);
}

/// [`wait_until`], with what to show when it times out.
fn wait_until_or(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> bool,
    show: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            show()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every registered proxy serves the table's version.
fn wait_proxies(store: &str, n: usize) {
    wait_until(
        "proxies to serve the table",
        Duration::from_secs(60),
        || {
            let (v, _, _, served) = table_state(store);
            served.len() == n && served.iter().all(|s| *s == v)
        },
    );
}

fn stats(p: &Proxy) -> String {
    http_get(p.admin, "/proxy/stats")
}

#[test]
fn etcd_two_proxies_migrate_with_the_tool_and_etcd_killed() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let store = etcd.url("t-etcd");
    let s1 = Server::start(&[]);
    let s2 = Server::start(&[]);
    let s3 = Server::start(&["--replicaof", "127.0.0.1", &s2.port().to_string()]);
    ctl_ok(&store, &["group", "add", "1", &s1.addr()]);
    ctl_ok(&store, &["group", "add", "2", &s2.addr(), &s3.addr()]);
    // Dry runs change nothing.
    let out = ctl_ok(
        &store,
        &["--dry-run", "assign", "--slots", "0-1023", "--group", "1"],
    );
    assert!(out.contains("would assign 1024 slots"), "{out}");
    assert_eq!(table_state(&store).0, 2);
    ctl_ok(&store, &["assign", "--slots", "0-1023", "--group", "1"]);
    const PRE: usize = 30_000;
    prefill(s1.port(), PRE);
    let fill = format!("--fillslots={store}");
    let p1 = Proxy::start(None, &[&fill, "--product_name=t-etcd"]);
    let p2 = Proxy::start(None, &[&fill, "--product_name=t-etcd"]);
    wait_proxies(&store, 2);
    let load = Load::start(&[p1.port, p2.port], 4);
    wait_until("load", Duration::from_secs(30), || load.ops() > 500);

    // A slow migration, killed half-way, then resumed.
    let dir = tempfile::tempdir().unwrap();
    let mut slow = ctl_spawn(
        &store,
        &[
            "migrate",
            "--slots",
            "512-1023",
            "--to",
            "2",
            "--parallel",
            "32",
            "--numkeys",
            "50",
            "--interval-us",
            "3000",
        ],
        &dir.path().join("slow.log"),
    );
    let slow_log = || std::fs::read_to_string(dir.path().join("slow.log")).unwrap_or_default();
    // (Generous: two test suites at once on two cores moved a slot a
    // second here.)
    wait_until_or(
        "some slots moved",
        Duration::from_secs(240),
        || {
            let (_, groups, _, _) = table_state(&store);
            groups.iter().filter(|g| **g == 2).count() >= 64
        },
        || {
            format!(
                "{}\n{}\n{}",
                slow_log(),
                String::from_utf8_lossy(&ctl(&store, &["status"]).stdout),
                p1.log()
            )
        },
    );
    slow.kill().unwrap();
    slow.wait().unwrap();
    let (_, groups, actions, _) = table_state(&store);
    assert!(actions > 0, "the run finished before it was killed");
    assert!(groups.iter().filter(|g| **g == 2).count() < 512);
    let out = ctl_ok(&store, &["status"]);
    assert!(out.contains("migrate --resume"), "{out}");
    // A plain migrate without --resume refuses nothing recorded, but a
    // move of the same slots elsewhere is refused.
    let o = ctl(&store, &["migrate", "--slots", "512-1023", "--to", "1"]);
    assert!(!o.status.success());
    ctl_ok(&store, &["migrate", "--resume"]);
    let (_, groups, actions, _) = table_state(&store);
    assert_eq!(actions, 0);
    assert!(groups[512..].iter().all(|g| *g == 2) && groups[..512].iter().all(|g| *g == 1));

    // etcd dies for a few seconds mid-migration: the tool waits and ends
    // the job, the proxies keep serving and report themselves degraded.
    let mut mover = ctl_spawn(
        &store,
        &[
            "migrate",
            "--slots",
            "256-511",
            "--to",
            "2",
            "--parallel",
            "16",
            "--numkeys",
            "50",
            "--interval-us",
            "2000",
        ],
        &dir.path().join("mover.log"),
    );
    wait_until("the second move to start", Duration::from_secs(60), || {
        table_state(&store).1.iter().filter(|g| **g == 2).count() > 512 + 16
    });
    etcd.kill();
    wait_until("a proxy to notice", Duration::from_secs(30), || {
        stats(&p1).contains("\"degraded\": true")
    });
    let before = load.ops();
    std::thread::sleep(Duration::from_secs(2));
    assert!(load.ops() > before, "the load stalled while etcd was down");
    etcd.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        if let Some(st) = mover.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "codis-ctl did not finish: {}",
            std::fs::read_to_string(dir.path().join("mover.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        st.success(),
        "{}",
        std::fs::read_to_string(dir.path().join("mover.log")).unwrap_or_default()
    );
    wait_proxies(&store, 2);
    assert!(stats(&p1).contains("\"degraded\": false"));
    assert!(stats(&p2).contains("\"degraded\": false"));
    let counts = load.finish();
    let masters = HashMap::from([(1, s1.port()), (2, s2.port())]);
    verify(&store, &p1, &masters, &counts, PRE);
    // The replica in group 2 got everything too.
    let n2 = Conn::connect(s2.port())
        .unwrap()
        .value("DBSIZE")
        .as_int()
        .unwrap();
    wait_until("the replica", Duration::from_secs(30), || {
        Conn::connect(s3.port()).unwrap().value("DBSIZE").as_int() == Some(n2)
    });
    // A clean proxy shutdown withdraws its registration.
    let mut p2 = p2;
    #[allow(unsafe_code)]
    // SAFETY: plain kill(2) on our child's pid.
    unsafe {
        libc::kill(p2.child.id() as i32, libc::SIGTERM);
    }
    p2.child.wait().unwrap();
    assert_eq!(table_state(&store).3.len(), 1);
}

#[test]
fn file_store_lock_dead_proxy_and_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slots.json").display().to_string();
    let s1 = Server::start(&[]);
    let s2 = Server::start(&[]);
    let s3 = Server::start(&[]);
    // A plain Redis-like address that is not a codis-server is refused.
    let o = ctl(&file, &["group", "add", "1", "127.0.0.1:1"]);
    assert!(!o.status.success());
    ctl_ok(&file, &["group", "add", "1", &s1.addr()]);
    ctl_ok(&file, &["group", "add", "2", &s2.addr()]);
    ctl_ok(&file, &["assign", "--slots", "0-1023", "--group", "1"]);
    const PRE: usize = 10_000;
    prefill(s1.port(), PRE);
    // Slots with keys are not reassigned without moving them.
    let o = ctl(&file, &["assign", "--slots", "0-1023", "--group", "2"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("use `migrate`"));
    let fill = format!("--fillslots={file}");
    let p1 = Proxy::start(None, &[&fill]);
    let mut dead = Proxy::start(None, &[&fill]);
    wait_proxies(&file, 2);
    // A proxy killed with -9 leaves its registration: the tool finds it
    // gone and removes it instead of waiting forever.
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let load = Load::start(&[p1.port], 3);
    wait_until("load", Duration::from_secs(30), || load.ops() > 300);
    // The change lock: a second run is refused while one runs; the lock of
    // a run killed with -9 is gone at once.
    let mut slow = ctl_spawn(
        &file,
        &[
            "migrate",
            "--slots",
            "512-1023",
            "--to",
            "2",
            "--parallel",
            "8",
            "--numkeys",
            "20",
            "--interval-us",
            "5000",
        ],
        &dir.path().join("slow.log"),
    );
    wait_until(
        "the slow run to start moving",
        Duration::from_secs(60),
        || table_state(&file).1.iter().filter(|g| **g == 2).count() >= 8,
    );
    let o = ctl(
        &file,
        &["--lock-wait", "0", "assign", "--slots", "0", "--group", "1"],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("holds the lock"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    slow.kill().unwrap();
    slow.wait().unwrap();
    ctl_ok(&file, &["--lock-wait", "0", "migrate", "--resume"]);
    // A third group, then rebalance (dry run first).
    ctl_ok(&file, &["group", "add", "3", &s3.addr()]);
    let v = table_state(&file).0;
    let out = ctl_ok(&file, &["--dry-run", "rebalance"]);
    assert!(out.contains("would move"), "{out}");
    assert_eq!(table_state(&file).0, v);
    ctl_ok(&file, &["rebalance"]);
    let (_, groups, _, _) = table_state(&file);
    for g in 1..=3u64 {
        let n = groups.iter().filter(|x| **x == g).count();
        assert!((341..=342).contains(&n), "group {g} has {n} slots");
    }
    let counts = load.finish();
    let masters = HashMap::from([(1, s1.port()), (2, s2.port()), (3, s3.port())]);
    verify(&file, &p1, &masters, &counts, PRE);
    // Removing a master that owns slots is refused.
    let o = ctl(&file, &["group", "del", "3", &s3.addr()]);
    assert!(!o.status.success());
}

#[test]
fn promote_a_replica_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slots.json").display().to_string();
    let s1 = Server::start(&[]);
    let s2 = Server::start(&["--replicaof", "127.0.0.1", &s1.port().to_string()]);
    // Added while it may still be loading its first sync.
    ctl_ok(&file, &["group", "add", "1", &s1.addr(), &s2.addr()]);
    wait_until("the replica's link", Duration::from_secs(30), || {
        String::from_utf8_lossy(&s2.conn().send(&["INFO", "replication"]))
            .contains("master_link_status:up")
    });
    ctl_ok(&file, &["assign", "--slots", "0-1023", "--group", "1"]);
    prefill(s1.port(), 2000);
    let p = Proxy::start(None, &[&format!("--fillslots={file}")]);
    wait_proxies(&file, 1);
    // Replica reads: the group's replica in every idle slot's view.
    ctl_ok(&file, &["group", "replica-reads", "1", "on"]);
    wait_proxies(&file, 1);
    let slots = http_get(p.admin, "/proxy/slots");
    assert!(
        slots.contains("replica_groups") && slots.contains(&s2.addr()),
        "{slots}"
    );
    assert_reply(&p.conn().send(&["GET", "pre:1"]), b"$1\r\n1\r\n");
    let load = Load::start(&[p.port], 2);
    wait_until("load", Duration::from_secs(30), || load.ops() > 300);
    let o = ctl(&file, &["promote", "1", &s1.addr()]);
    assert!(!o.status.success(), "promoting the master itself");
    ctl_ok(&file, &["promote", "1", &s2.addr()]);
    let before = load.ops();
    wait_until("writes on the new master", Duration::from_secs(30), || {
        load.ops() > before + 200
    });
    let counts = load.finish();
    let out = ctl_ok(&file, &["status"]);
    assert!(out.contains(&format!("master {}", s2.addr())), "{out}");
    assert!(out.contains(&format!("replicas [{}]", s1.addr())), "{out}");
    let role = Conn::connect(s2.port()).unwrap().value("ROLE");
    assert_eq!(role.as_array().unwrap()[0].as_text().unwrap(), "master");
    wait_until("the old master to follow", Duration::from_secs(30), || {
        let info = String::from_utf8_lossy(
            &Conn::connect(s1.port())
                .unwrap()
                .send(&["INFO", "replication"]),
        )
        .into_owned();
        info.contains(&format!("master_port:{}", s2.port()))
            && info.contains("master_link_status:up")
    });
    verify(&file, &p, &HashMap::from([(1, s2.port())]), &counts, 2000);
}

#[test]
fn proxy_started_while_etcd_is_down_goes_online_when_it_returns() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let store = etcd.url("t-down");
    let s1 = Server::start(&[]);
    ctl_ok(&store, &["group", "add", "1", &s1.addr()]);
    ctl_ok(&store, &["assign", "--slots", "0-1023", "--group", "1"]);
    etcd.kill();
    let p = Proxy::start(
        None,
        &[&format!("--fillslots={store}"), "--product_name=t-down"],
    );
    let mut c = p.conn();
    assert_eq!(c.send(&["GET", "a"]), b"-ERR router is not online\r\n");
    let m = http_get(p.admin, "/metrics");
    assert!(m.contains("codis_proxy_table_degraded 1"), "{m}");
    etcd.restart();
    wait_until("online", Duration::from_secs(30), || {
        p.conn()
            .try_send(&["SET", "a", "1"])
            .is_ok_and(|r| r == b"+OK\r\n")
    });
    // The version is published once the table is served, and the
    // degraded mark cleared once the watch runs: both follow shortly.
    wait_until(
        "the proxy to report the table",
        Duration::from_secs(30),
        || {
            let m = http_get(p.admin, "/metrics");
            m.contains("codis_proxy_table_degraded 0") && m.contains("codis_proxy_table_version 2")
        },
    );
    // A product mismatch between the URL and product_name is refused.
    let e = Proxy::try_start(
        None,
        &[&format!("--fillslots={store}"), "--product_name=other"],
    );
    assert!(e.is_err_and(|e| e.contains("product")));
}
