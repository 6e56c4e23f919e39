//! End-to-end Codis slot migration through codis-proxy with our own servers
//! (issue 5 + issue 6; codis.md §3.5 and §4.3 driven by hand, the way the
//! dashboard does it with a file-based slot config):
//!
//! 1. the moving slots are locked (prepared), then switched to
//!    `backend_addr = B, migrate_from = A` with the chosen forward method;
//! 2. the data moves with SLOTSMGRTTAGSLOT-ASYNC (semi-async) or
//!    SLOTSMGRTTAGSLOT (sync) on A, slot by slot until nothing remains;
//! 3. the slots are finished (owner B, no `migrate_from`).
//!
//! All the while clients INCR counters through the proxy (no request may fail)
//! and a reader checks that no counter ever goes backwards or disappears;
//! beside them an LMOVE loop between two keys of one moving slot with
//! different tags, a BLPOP consumer and an RPUSH producer on a moving key
//! (every element popped once, in order) and repeated full SCANs that must
//! return every pre-filled key.
//! Afterwards: the exact INCR sums, every pre-filled value intact on B, and
//! nothing of the moved slots left on A.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tests::proxy::{Proxy, replace_file, wait_slots};
use tests::{Conn, Server, Value};

fn slot(key: &str) -> usize {
    protocol::slot::slot_of(key.as_bytes())
}

fn moving(slot: usize) -> bool {
    slot >= 512
}

/// The slot file: slots below 512 on `a`; the others as `state` says.
fn slot_file(a: u16, b: u16, state: &str, method: u32) -> String {
    let items: Vec<String> = (0..1024)
        .map(|i| {
            if !moving(i) {
                return format!(r#"{{"id":{i},"backend_addr":"127.0.0.1:{a}"}}"#);
            }
            match state {
                "locked" => format!(r#"{{"id":{i},"backend_addr":"127.0.0.1:{a}","locked":true}}"#),
                "migrating" => format!(
                    r#"{{"id":{i},"backend_addr":"127.0.0.1:{b}","migrate_from":"127.0.0.1:{a}","forward_method":{method}}}"#
                ),
                _ => format!(r#"{{"id":{i},"backend_addr":"127.0.0.1:{b}"}}"#),
            }
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Two keys with different tags in one moving slot.
fn moving_pair() -> (String, String) {
    let mut by_slot: HashMap<usize, String> = HashMap::new();
    for i in 0.. {
        let k = format!("lm{i}");
        let s = slot(&k);
        if !moving(s) {
            continue;
        }
        if let Some(first) = by_slot.get(&s) {
            return (first.clone(), k);
        }
        by_slot.insert(s, k);
    }
    unreachable!()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::Bulk(b) => std::str::from_utf8(b).unwrap().parse().unwrap(),
        Value::Nil => 0,
        other => panic!("expected a number, got {other:?}"),
    }
}

/// Pre-fills a mix of types through the proxy and returns a snapshot
/// (key → canonical dump of its contents).
fn fill(c: &mut Conn) -> HashMap<String, String> {
    let mut snap = HashMap::new();
    for i in 0..1500 {
        let k = format!("str:{i}");
        c.send(&["SET", &k, &format!("value-{i}")]);
        let d = dump(c, &k);
        snap.insert(k, d);
    }
    for i in 0..12 {
        // Hashes and sets big enough to be chunked (maxbulks 100 below).
        let h = format!("{{grp{i}}}:hash");
        let mut cmd = vec!["HSET".to_string(), h.clone()];
        for f in 0..300 {
            cmd.push(format!("f{f}"));
            cmd.push(format!("v{f}-{i}"));
        }
        c.send(&cmd);
        let l = format!("{{grp{i}}}:list");
        let mut cmd = vec!["RPUSH".to_string(), l.clone()];
        cmd.extend((0..250).map(|e| format!("e{e}")));
        c.send(&cmd);
        let z = format!("{{grp{i}}}:zset");
        let mut cmd = vec!["ZADD".to_string(), z.clone()];
        for m in 0..220 {
            cmd.push(format!("{}.5", m));
            cmd.push(format!("m{m}"));
        }
        c.send(&cmd);
        let s = format!("{{grp{i}}}:set");
        let mut cmd = vec!["SADD".to_string(), s.clone()];
        cmd.extend((0..210).map(|m| format!("s{m}")));
        c.send(&cmd);
        c.send(&["EXPIRE", &s, "1000"]);
        for k in [h, l, z, s] {
            let d = dump(c, &k);
            snap.insert(k, d);
        }
    }
    snap
}

/// A canonical text of a key's value, read through any connection.
fn dump(c: &mut Conn, key: &str) -> String {
    let t = c.value(&format!("TYPE {key}"));
    let Value::Simple(t) = t else {
        panic!("TYPE {key}: {t:?}")
    };
    let v = match t.as_str() {
        "string" => c.send_value(&["GET", key]),
        "hash" => c.send_value(&["HGETALL", key]),
        "list" => c.send_value(&["LRANGE", key, "0", "-1"]),
        "zset" => c.send_value(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        "set" => c.send_value(&["SMEMBERS", key]),
        "none" => return "none".into(),
        other => panic!("unexpected type {other}"),
    };
    let mut items: Vec<String> = match v {
        Value::Array(a) => a.iter().map(|x| format!("{x:?}")).collect(),
        other => vec![format!("{other:?}")],
    };
    match t.as_str() {
        "hash" => {
            let mut pairs: Vec<String> = items.chunks(2).map(|p| p.join("=")).collect();
            pairs.sort();
            items = pairs;
        }
        "set" => items.sort(),
        _ => {}
    }
    format!("{t}:{}", items.join(","))
}

fn run(method: u32, server_args: &[&str]) {
    let a = Server::start(server_args);
    let b = Server::start(server_args);
    // Stable state: everything on a.
    let p = Proxy::start(
        Some(&slot_file(a.port(), a.port(), "finished", method)),
        &[],
    );
    let mut c = p.conn();
    let snap = fill(&mut c);
    assert!(snap.keys().any(|k| moving(slot(k))));
    assert!(snap.keys().any(|k| !moving(slot(k))));

    let counters: Vec<String> = (0..48)
        .map(|i| {
            if i % 3 == 0 {
                format!("{{ctr{}}}:n{i}", i % 5)
            } else {
                format!("ctr:{i}")
            }
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let port = p.port;
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (keys, stop) = (counters.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Conn::connect(port).unwrap();
                let mut sent = vec![0i64; keys.len()];
                let mut i = w * 7;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 200_000 {
                    let k = i % keys.len();
                    let r = c.send(&["INCR", &keys[k]]);
                    assert_eq!(
                        r.first(),
                        Some(&b':'),
                        "INCR {} failed: {}",
                        keys[k],
                        tests::escape(&r)
                    );
                    sent[k] += 1;
                    i += 1;
                    n += 1;
                }
                sent
            })
        })
        .collect();
    let reader = {
        let (keys, stop) = (counters.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            let mut seen = vec![0i64; keys.len()];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let k = i % keys.len();
                let v = int(&c.send_value(&["GET", &keys[k]]));
                assert!(
                    v >= seen[k],
                    "{} went from {} to {v} during the migration",
                    keys[k],
                    seen[k]
                );
                seen[k] = v;
                i += 1;
            }
        })
    };
    // Beside the counters: a multi-key command on two keys of one moving
    // slot with different tags, a blocking consumer and a producer on a
    // moving key, and full SCANs that must see every pre-filled key.
    let (l1, l2) = moving_pair();
    let elems: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let mut args = vec!["RPUSH", l1.as_str()];
    args.extend(elems.iter().map(String::as_str));
    c.send(&args);
    let mover = {
        let (l1, l2, stop) = (l1.clone(), l2.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            let mut moves = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (from, to) in [(&l1, &l2), (&l2, &l1)] {
                    let r = c.send(&["LMOVE", from, to, "LEFT", "RIGHT"]);
                    assert!(
                        r.starts_with(b"$"),
                        "LMOVE {from} {to}: {}",
                        tests::escape(&r)
                    );
                    moves += 1;
                }
            }
            moves
        })
    };
    let bq = (0..)
        .map(|i| format!("bq{i}"))
        .find(|k| moving(slot(k)))
        .unwrap();
    let producer = {
        let (bq, stop) = (bq.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = c.send(&["RPUSH", &bq, &n.to_string()]);
                assert!(r.starts_with(b":"), "RPUSH: {}", tests::escape(&r));
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let consumer = {
        let (bq, stop) = (bq.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            let mut next = 0u64;
            loop {
                let v = c.send_value(&["BLPOP", &bq, "1"]);
                match v {
                    Value::Array(kv) => {
                        assert_eq!(int(&kv[1]) as u64, next, "BLPOP order");
                        next += 1;
                    }
                    Value::NilArray | Value::Nil if stop.load(Ordering::Relaxed) => return next,
                    Value::NilArray | Value::Nil => {}
                    other => panic!("BLPOP: {other:?}"),
                }
            }
        })
    };
    let scanner = {
        let (want, stop) = (snap.keys().cloned().collect::<Vec<_>>(), stop.clone());
        std::thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            let mut scans = 0;
            while !stop.load(Ordering::Relaxed) || scans == 0 {
                let mut seen = std::collections::HashSet::new();
                let mut cursor = "0".to_string();
                loop {
                    let Value::Array(parts) = c.send_value(&["SCAN", &cursor, "COUNT", "20"])
                    else {
                        panic!("SCAN reply")
                    };
                    let Value::Array(keys) = &parts[1] else {
                        panic!()
                    };
                    for k in keys {
                        let Value::Bulk(k) = k else { panic!() };
                        seen.insert(String::from_utf8(k.clone()).unwrap());
                    }
                    cursor = String::from_utf8(match &parts[0] {
                        Value::Bulk(b) => b.clone(),
                        _ => panic!(),
                    })
                    .unwrap();
                    if cursor == "0" {
                        break;
                    }
                }
                for k in &want {
                    assert!(seen.contains(k), "SCAN {scans} missed {k}");
                }
                scans += 1;
            }
            scans
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // 1. prepared: lock the moving slots, then migrating.
    replace_file(
        &p.slot_file(),
        &slot_file(a.port(), b.port(), "locked", method),
    );
    wait_slots(p.admin, |body| body.contains("\"locked\": true"));
    replace_file(
        &p.slot_file(),
        &slot_file(a.port(), b.port(), "migrating", method),
    );
    wait_slots(p.admin, |body| {
        !body.contains("\"locked\"") && body.contains("migrate_from")
    });

    // 2. move the data, slot by slot, as the dashboard does.
    let mut ca = a.conn();
    ca.set_timeout(Duration::from_secs(60));
    let target = b.port().to_string();
    let started = Instant::now();
    let mut moved = 0;
    for s in 512..1024 {
        let slot_s = s.to_string();
        for round in 0.. {
            assert!(round < 10_000, "slot {s} never drained");
            let v = if method == 1 {
                ca.send_value(&[
                    "SLOTSMGRTTAGSLOT-ASYNC",
                    "127.0.0.1",
                    &target,
                    "30000",
                    "100",
                    "0",
                    &slot_s,
                    "50",
                ])
            } else {
                ca.send_value(&["SLOTSMGRTTAGSLOT", "127.0.0.1", &target, "3000", &slot_s])
            };
            let Value::Array(r) = v else {
                panic!("slot {s}: {v:?}")
            };
            moved += int(&r[0]);
            if int(&r[1]) == 0 {
                break;
            }
        }
    }
    eprintln!(
        "method {method}: moved {moved} keys in {:?}",
        started.elapsed()
    );

    // 3. finished.
    replace_file(
        &p.slot_file(),
        &slot_file(a.port(), b.port(), "finished", method),
    );
    wait_slots(p.admin, |body| !body.contains("migrate_from"));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut total = vec![0i64; counters.len()];
    for w in writers {
        for (t, s) in total.iter_mut().zip(w.join().unwrap()) {
            *t += s;
        }
    }
    reader.join().unwrap();
    let moves = mover.join().unwrap();
    let pushed = producer.join().unwrap();
    let popped = consumer.join().unwrap();
    let scans = scanner.join().unwrap();
    eprintln!(
        "method {method}: {moves} LMOVEs, {pushed} pushed / {popped} popped, {scans} full SCANs"
    );
    assert_eq!(pushed, popped, "every pushed element popped once");
    assert_eq!(int(&c.send_value(&["LLEN", &bq])), 0);
    let in_lists = int(&c.send_value(&["LLEN", &l1])) + int(&c.send_value(&["LLEN", &l2]));
    assert_eq!(in_lists, 20, "LMOVE kept every element");

    for (k, want) in counters.iter().zip(&total) {
        assert_eq!(int(&c.send_value(&["GET", k])), *want, "counter {k}");
    }
    for (k, want) in &snap {
        assert_eq!(&dump(&mut c, k), want, "value of {k} after the move");
        if moving(slot(k)) {
            assert_eq!(int(&ca.send_value(&["EXISTS", k])), 0, "{k} left on A");
        }
    }
    // TTLs travel with the keys.
    for i in 0..12 {
        let k = format!("{{grp{i}}}:set");
        let ttl = int(&c.send_value(&["TTL", &k]));
        assert!((900..=1000).contains(&ttl), "TTL of {k}: {ttl}");
    }
    // Nothing of the moved slots stays on A; B holds only moved slots.
    let Value::Array(info) = ca.value("SLOTSINFO") else {
        panic!()
    };
    for pair in info {
        let Value::Array(p) = pair else { panic!() };
        assert!(!moving(int(&p[0]) as usize), "slot {:?} left on A", p[0]);
    }
    let Value::Array(info) = b.conn().value("SLOTSINFO") else {
        panic!()
    };
    for pair in info {
        let Value::Array(p) = pair else { panic!() };
        assert!(moving(int(&p[0]) as usize), "slot {:?} on B", p[0]);
    }
    assert_eq!(a.conn().value("SLOTSCHECK"), Value::Simple("OK".into()));
    assert_eq!(b.conn().value("SLOTSCHECK"), Value::Simple("OK".into()));
}

#[test]
fn semi_async_migration_through_the_proxy() {
    run(1, &[]);
}

#[test]
fn sync_migration_through_the_proxy() {
    run(0, &[]);
}

/// The multi-threaded executor: writes racing the registration of keys in
/// flight must not be lost (migrate/mod.rs, writer epochs).
#[test]
fn both_methods_with_io_threads() {
    run(1, &["--io-threads", "2"]);
    run(0, &["--io-threads", "2"]);
}
