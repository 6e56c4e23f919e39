//! Sync migration between two codis-servers (codis.md §2.5, §2.6, §2.6.1;
//! checklist §6 item 3): SLOTSMGRTONE / SLOTSMGRTTAGONE / SLOTSMGRTSLOT /
//! SLOTSMGRTTAGSLOT move every data type with its TTL and tag group, the
//! AUTH / SELECT prefix, the exact error replies (nothing is deleted on an
//! error), Codis' sync forwarding under concurrent load, and a target killed
//! in the middle of a slot.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tests::{Conn, Server, Value, assert_reply, free_port};

fn err(text: &str) -> Vec<u8> {
    format!("-{text}\r\n").into_bytes()
}

fn int(n: i64) -> Vec<u8> {
    format!(":{n}\r\n").into_bytes()
}

fn pair(a: i64, b: i64) -> Vec<u8> {
    format!("*2\r\n:{a}\r\n:{b}\r\n").into_bytes()
}

fn ok(c: &mut Conn, argv: &[&str]) {
    let r = c.send(argv);
    assert!(
        !r.starts_with(b"-"),
        "{argv:?}: {}",
        String::from_utf8_lossy(&r)
    );
}

/// A type-aware, order-normalized dump of a key's value (None if missing).
fn snapshot(c: &mut Conn, key: &str) -> Option<String> {
    let t = c.send_value(&["TYPE", key]).as_text().unwrap();
    let flat = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_text().unwrap())
            .collect()
    };
    Some(match t.as_str() {
        "none" => return None,
        "string" => format!("string:{}", c.send_value(&["GET", key]).as_text().unwrap()),
        "list" => format!("list:{:?}", flat(c.send_value(&["LRANGE", key, "0", "-1"]))),
        "hash" => {
            let f = flat(c.send_value(&["HGETALL", key]));
            let m: BTreeMap<_, _> = f.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            format!("hash:{m:?}")
        }
        "set" => {
            let s: BTreeSet<_> = flat(c.send_value(&["SMEMBERS", key])).into_iter().collect();
            format!("set:{s:?}")
        }
        "zset" => format!(
            "zset:{:?}",
            flat(c.send_value(&["ZRANGE", key, "0", "-1", "WITHSCORES"]))
        ),
        other => panic!("unexpected type {other}"),
    })
}

fn pttl(c: &mut Conn, key: &str) -> i64 {
    c.send_value(&["PTTL", key]).as_int().unwrap()
}

/// Fills `key` with a value of type `kind` (0..=5) and maybe a TTL.
fn fill(c: &mut Conn, key: &str, kind: usize, ttl_ms: Option<u64>) {
    match kind % 6 {
        0 => ok(c, &["SET", key, &format!("value-of-{key}")]),
        1 => ok(c, &["SET", key, &"x".repeat(20_000)]),
        2 => {
            let mut argv = vec!["RPUSH", key];
            let items: Vec<String> = (0..300).map(|i| format!("item{i}")).collect();
            argv.extend(items.iter().map(String::as_str));
            ok(c, &argv);
        }
        3 => {
            let mut argv = vec!["HSET", key];
            let items: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
            for f in &items {
                argv.push(f);
                argv.push(f);
            }
            ok(c, &argv);
        }
        4 => {
            let mut argv = vec!["SADD", key];
            let items: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
            argv.extend(items.iter().map(String::as_str));
            argv.push("12345");
            ok(c, &argv);
        }
        _ => {
            let mut argv = vec!["ZADD", key];
            let items: Vec<String> = (0..150).map(|i| format!("{}.5 z{i}", i)).collect();
            for it in &items {
                argv.extend(it.split(' '));
            }
            ok(c, &argv);
        }
    }
    if let Some(ms) = ttl_ms {
        ok(c, &["PEXPIRE", key, &ms.to_string()]);
    }
}

/// `n` distinct untagged keys named `<prefix><i>` that hash to `slot`.
fn keys_in_slot(c: &mut Conn, slot: i64, n: usize, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < n {
        let batch: Vec<String> = (i..i + 2000).map(|j| format!("{prefix}{j}")).collect();
        i += 2000;
        let mut argv = vec!["SLOTSHASHKEY"];
        argv.extend(batch.iter().map(String::as_str));
        let v = c.send_value(&argv);
        for (k, s) in batch.iter().zip(v.as_array().unwrap()) {
            if s.as_int() == Some(slot) && out.len() < n {
                out.push(k.clone());
            }
        }
    }
    out
}

fn slot_of(c: &mut Conn, key: &str) -> i64 {
    c.send_value(&["SLOTSHASHKEY", key]).as_array().unwrap()[0]
        .as_int()
        .unwrap()
}

/// Checks that every key of `expected` is gone from `src` and on `dst` with
/// the same value and (roughly) the same TTL.
fn assert_moved(src: &mut Conn, dst: &mut Conn, expected: &BTreeMap<String, (String, i64)>) {
    for (k, (snap, ttl)) in expected {
        assert_eq!(snapshot(src, k), None, "{k} still on the source");
        assert_eq!(snapshot(dst, k).as_ref(), Some(snap), "{k} on the target");
        let t = pttl(dst, k);
        if *ttl < 0 {
            assert_eq!(t, -1, "{k} gained a TTL");
        } else {
            assert!(t > 0 && t <= *ttl, "{k}: ttl {t} vs {ttl} before");
        }
    }
}

fn record(c: &mut Conn, keys: &[String]) -> BTreeMap<String, (String, i64)> {
    keys.iter()
        .map(|k| (k.clone(), (snapshot(c, k).expect(k), pttl(c, k))))
        .collect()
}

#[test]
fn every_type_moved_by_each_command() {
    let (s, d) = (Server::start(&[]), Server::start(&[]));
    let (mut src, mut dst) = (s.conn(), d.conn());
    let port = d.port().to_string();
    let mgrt = |c: &mut Conn, cmd: &str, arg: &str| c.send(&[cmd, "127.0.0.1", &port, "5000", arg]);

    // SLOTSMGRTONE: each type, with and without TTL; tagged keys move alone.
    let one: Vec<String> = (0..12).map(|i| format!("one:{i}")).collect();
    for (i, k) in one.iter().enumerate() {
        fill(&mut src, k, i, (i % 2 == 0).then_some(100_000));
    }
    fill(&mut src, "{solo}a", 0, None);
    fill(&mut src, "{solo}b", 2, None);
    let mut exp = record(&mut src, &one);
    exp.extend(record(&mut src, &["{solo}a".to_string()]));
    for k in one.iter().chain(["{solo}a".to_string()].iter()) {
        assert_reply(&mgrt(&mut src, "SLOTSMGRTONE", k), &int(1));
    }
    assert_reply(&mgrt(&mut src, "SLOTSMGRTONE", "missing"), &int(0));
    assert_moved(&mut src, &mut dst, &exp);
    assert!(snapshot(&mut src, "{solo}b").is_some());

    // SLOTSMGRTTAGONE: the whole tag group, whichever member is named; an
    // untagged key behaves like SLOTSMGRTONE.
    let group: Vec<String> = (0..6).map(|i| format!("{{grp}}:{i}")).collect();
    for (i, k) in group.iter().enumerate() {
        fill(&mut src, k, i, (i % 3 == 0).then_some(200_000));
    }
    fill(&mut src, "x{grp}y", 4, None);
    fill(&mut src, "untagged", 3, Some(50_000));
    let mut all = group.clone();
    all.push("x{grp}y".into());
    let exp = record(&mut src, &all);
    assert_reply(&mgrt(&mut src, "SLOTSMGRTTAGONE", "{grp}:3"), &int(7));
    assert_reply(&mgrt(&mut src, "SLOTSMGRTTAGONE", "{grp}:3"), &int(0));
    assert_reply(&mgrt(&mut src, "SLOTSMGRTTAGONE", "{grp}nothere"), &int(0));
    assert_moved(&mut src, &mut dst, &exp);
    let exp = record(&mut src, &["untagged".to_string()]);
    assert_reply(&mgrt(&mut src, "SLOTSMGRTTAGONE", "untagged"), &int(1));
    assert_moved(&mut src, &mut dst, &exp);

    // SLOTSMGRTSLOT: one random key per call until the slot is empty.
    let slot = 333;
    let keys = keys_in_slot(&mut src, slot, 12, "slotkey:");
    for (i, k) in keys.iter().enumerate() {
        fill(&mut src, k, i, (i % 4 == 1).then_some(300_000));
    }
    fill(&mut src, "elsewhere", 0, None);
    let exp = record(&mut src, &keys);
    for left in (0..12).rev() {
        assert_reply(&mgrt(&mut src, "SLOTSMGRTSLOT", "333"), &pair(1, left));
    }
    assert_reply(&mgrt(&mut src, "SLOTSMGRTSLOT", "333"), &pair(0, 0));
    assert_moved(&mut src, &mut dst, &exp);
    assert!(snapshot(&mut src, "elsewhere").is_some());

    // SLOTSMGRTTAGSLOT: codis.md §2.6's verified example, then a mixed slot.
    for k in ["a", "{tag}x", "{tag}y", "{tag}list"] {
        fill(&mut src, k, 0, None);
    }
    let exp = record(
        &mut src,
        &["{tag}x".into(), "{tag}y".into(), "{tag}list".into()],
    );
    assert_reply(&mgrt(&mut src, "SLOTSMGRTTAGSLOT", "899"), &pair(3, 0));
    assert_reply(&mgrt(&mut src, "SLOTSMGRTTAGSLOT", "899"), &pair(0, 0));
    assert_moved(&mut src, &mut dst, &exp);
    let tslot = slot_of(&mut src, "k{t1}");
    let plain = keys_in_slot(&mut src, tslot, 3, "ts:");
    let mut keys: Vec<String> = plain.clone();
    for t in &plain {
        // tags whose text is a key of the slot hash to that slot
        for j in 0..3 {
            keys.push(format!("{{{t}}}:{j}"));
        }
    }
    for (i, k) in keys.iter().enumerate() {
        fill(&mut src, k, i, (i % 5 == 0).then_some(400_000));
    }
    let exp = record(&mut src, &keys);
    let mut left = keys.len() as i64;
    let mut calls = 0;
    while left > 0 {
        let v = src.send_value(&[
            "SLOTSMGRTTAGSLOT",
            "127.0.0.1",
            &port,
            "5000",
            &tslot.to_string(),
        ]);
        let a = v.as_array().unwrap_or_else(|| panic!("{v:?}"));
        let (moved, rem) = (a[0].as_int().unwrap(), a[1].as_int().unwrap());
        assert!(
            moved == 1 || moved == 3,
            "moved {moved}: a plain key or one tag group"
        );
        assert_eq!(rem, left - moved);
        left = rem;
        calls += 1;
    }
    assert_eq!(calls, 6);
    assert_moved(&mut src, &mut dst, &exp);
    assert_reply(&src.cmd("SLOTSCHECK"), b"+OK\r\n");
    assert_reply(&dst.cmd("SLOTSCHECK"), b"+OK\r\n");
    // what stayed behind
    assert_reply(&src.cmd("DBSIZE"), &int(3));
}

#[test]
fn expired_keys_are_not_moved_and_ttl_is_clamped() {
    let (s, d) = (
        Server::start(&["--enable-debug-command", "yes"]),
        Server::start(&[]),
    );
    let (mut src, mut dst) = (s.conn(), d.conn());
    let port = d.port().to_string();
    assert_reply(&src.cmd("DEBUG SET-ACTIVE-EXPIRE 0"), b"+OK\r\n");
    ok(&mut src, &["SET", "{e}dead", "v", "PX", "1"]);
    ok(&mut src, &["SET", "{e}live", "v", "PX", "60000"]);
    thread::sleep(Duration::from_millis(20));
    assert_reply(
        &src.cmd("SLOTSINFO"),
        &format!("*1\r\n*2\r\n:{}\r\n:2\r\n", slot_of(&mut src, "{e}")).into_bytes(),
    );
    assert_reply(
        &src.send(&["SLOTSMGRTTAGONE", "127.0.0.1", &port, "1000", "{e}live"]),
        &int(1),
    );
    assert_reply(&dst.cmd("EXISTS {e}dead {e}live"), &int(1));
    assert_reply(&src.cmd("DBSIZE"), &int(0));
    // the remaining TTL is what is sent (timeout 0 = 100 ms is plenty here)
    ok(&mut src, &["SET", "k", "v", "PX", "100000"]);
    assert_reply(
        &src.send(&["SLOTSMGRTONE", "127.0.0.1", &port, "0", "k"]),
        &int(1),
    );
    let t = pttl(&mut dst, "k");
    assert!(t > 90_000 && t <= 100_000, "{t}");
}

#[test]
fn auth_and_select_prefix() {
    let s = Server::start(&["--requirepass", "sekret"]);
    let d = Server::start(&["--requirepass", "sekret"]);
    let (mut src, mut dst) = (s.conn(), d.conn());
    assert_reply(&src.cmd("AUTH sekret"), b"+OK\r\n");
    assert_reply(&dst.cmd("AUTH sekret"), b"+OK\r\n");
    let port = d.port().to_string();
    for db in [5, 0, 5, 15] {
        assert_reply(&src.cmd(&format!("SELECT {db}")), b"+OK\r\n");
        let k = format!("{{db{db}}}k");
        ok(&mut src, &["SET", &k, &format!("in-{db}")]);
        ok(&mut src, &["SET", &format!("{{db{db}}}j"), "2"]);
        assert_reply(
            &src.send(&["SLOTSMGRTTAGONE", "127.0.0.1", &port, "2000", &k]),
            &int(2),
        );
        assert_reply(&src.cmd("DBSIZE"), &int(0));
        assert_reply(&dst.cmd(&format!("SELECT {db}")), b"+OK\r\n");
        assert_reply(
            &dst.send(&["GET", &k]),
            &format!("${}\r\nin-{db}\r\n", 3 + db.to_string().len()).into_bytes(),
        );
        assert_reply(&dst.cmd("DBSIZE"), &int(2));
    }
    // the target saw one connection authenticate once and select as needed
    let clients = dst.send_value(&["CLIENT", "LIST"]).as_text().unwrap();
    assert_eq!(clients.lines().count(), 2, "{clients}");
}

/// A fake target: on each accepted connection, reads one request and
/// answers it with the next reply of `script`, in turn (the last reply after
/// `last_delay`); then keeps the connection open without answering (an empty
/// script never answers).
fn fake_target_slow(script: &'static [&'static [u8]], last_delay: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 65536];
            for (i, reply) in script.iter().enumerate() {
                if !matches!(s.read(&mut buf), Ok(n) if n > 0) {
                    break;
                }
                if i + 1 == script.len() {
                    thread::sleep(last_delay);
                }
                let _ = s.write_all(reply);
            }
            held.push(s);
        }
    });
    port
}

fn fake_target(script: &'static [&'static [u8]]) -> u16 {
    fake_target_slow(script, Duration::ZERO)
}

/// While a step waits for its target, the shipped keys stay readable and
/// refuse writes, the server keeps serving, and a second SLOTSMGRT* for the
/// same tag group waits for the first and then finds nothing to move.
#[test]
fn in_flight_keys_are_readable_not_writable_and_waited_for() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    ok(&mut c, &["SET", "{w}k", "v"]);
    ok(&mut c, &["SET", "{w}j", "v2"]);
    let slow = fake_target_slow(&[b"+OK\r\n", b"+OK\r\n"], Duration::from_millis(2000));
    let sport = s.port();
    let first = thread::spawn(move || {
        let mut a = Conn::connect(sport).unwrap();
        let r = a.send(&[
            "SLOTSMGRTTAGONE",
            "127.0.0.1",
            &slow.to_string(),
            "5000",
            "{w}k",
        ]);
        (r, Instant::now())
    });
    thread::sleep(Duration::from_millis(300));
    let second = thread::spawn(move || {
        let mut b = Conn::connect(sport).unwrap();
        let r = b.send(&[
            "SLOTSMGRTONE",
            "127.0.0.1",
            &slow.to_string(),
            "5000",
            "{w}j",
        ]);
        (r, Instant::now())
    });
    thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    assert_reply(&c.cmd("GET {w}k"), b"$1\r\nv\r\n");
    assert_reply(&c.cmd("GET {w}j"), b"$2\r\nv2\r\n");
    assert_reply(
        &c.cmd("SET {w}j x"),
        &err("ERR the specified key is being migrated"),
    );
    assert_reply(
        &c.cmd("DEL {w}k"),
        &err("ERR the specified key is being migrated"),
    );
    assert_reply(
        &c.cmd("SET {w}other x"),
        &err("ERR the specified key is being migrated"),
    );
    assert_reply(&c.cmd("SET unrelated x"), b"+OK\r\n");
    // the first step's reply comes ~1.6 s from now: a blocked server would
    // answer these only then
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "the server is blocked"
    );
    let (r1, t1) = first.join().unwrap();
    let (r2, t2) = second.join().unwrap();
    assert_reply(&r1, &int(2));
    assert_reply(&r2, &int(0));
    assert!(t2 >= t1 - Duration::from_millis(50));
    assert_reply(&c.cmd("EXISTS {w}k {w}j"), &int(0));
    assert_reply(&c.cmd("SET {w}k again"), b"+OK\r\n");
}

#[test]
fn error_replies_leave_keys_on_the_source() {
    let s = Server::start(&[]);
    let mut src = s.conn();
    fill(&mut src, "{k}1", 2, Some(100_000));
    fill(&mut src, "{k}2", 0, None);
    let before = record(&mut src, &["{k}1".into(), "{k}2".into()]);
    let kslot = slot_of(&mut src, "{k}").to_string();
    let check_intact = |c: &mut Conn| {
        for (k, (snap, _)) in &before {
            assert_eq!(snapshot(c, k).as_ref(), Some(snap), "{k} after an error");
        }
        // not left in flight: writable again
        ok(c, &["PEXPIRE", "{k}1", "100000"]);
    };

    // nothing listens: the connect is refused (Codis: a write error)
    let dead = free_port().to_string();
    for (cmd, arg) in [
        ("SLOTSMGRTONE", "{k}1"),
        ("SLOTSMGRTONE", "missing"),
        ("SLOTSMGRTTAGONE", "{k}1"),
        ("SLOTSMGRTSLOT", &kslot[..]),
        ("SLOTSMGRTTAGSLOT", "5"),
    ] {
        assert_reply(
            &src.send(&[cmd, "127.0.0.1", &dead, "500", arg]),
            &err("IOERR error or timeout writing to target"),
        );
    }
    check_intact(&mut src);
    assert_reply(
        &src.send(&["SLOTSMGRTONE", "127.0.0.1", "notaport", "500", "{k}1"]),
        &err("ERR Can't connect to target node: Invalid port"),
    );
    let r = src.send(&[
        "SLOTSMGRTONE",
        "no-such-host.invalid",
        "6379",
        "3000",
        "{k}1",
    ]);
    assert!(
        r.starts_with(b"-ERR Can't connect to target node: ")
            || r == err("IOERR error or timeout connecting to the client"),
        "{}",
        String::from_utf8_lossy(&r)
    );

    // a target that never answers: read timeout (0 = 100 ms)
    let silent = fake_target(&[]);
    let t0 = Instant::now();
    assert_reply(
        &src.send(&[
            "SLOTSMGRTTAGONE",
            "127.0.0.1",
            &silent.to_string(),
            "0",
            "{k}2",
        ]),
        &err("IOERR error or timeout reading from target"),
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    check_intact(&mut src);

    // the target refuses SLOTSRESTORE / SELECT
    let refuse = fake_target(&[b"+OK\r\n", b"-ERR no way\r\n"]);
    assert_reply(
        &src.send(&[
            "SLOTSMGRTTAGSLOT",
            "127.0.0.1",
            &refuse.to_string(),
            "1000",
            &kslot,
        ]),
        &err("ERR error on slotsrestore, migration failed"),
    );
    let nosel = fake_target(&[b"-ERR DB index is out of range\r\n"]);
    assert_reply(
        &src.send(&[
            "SLOTSMGRTONE",
            "127.0.0.1",
            &nosel.to_string(),
            "1000",
            "{k}1",
        ]),
        &err("ERR error on slotsrestore, select failed"),
    );
    check_intact(&mut src);

    // real targets: password mismatch both ways
    let open = Server::start(&[]);
    let locked = Server::start(&["--requirepass", "pw"]);
    let sp = Server::start(&["--requirepass", "pw2"]);
    let mut srcp = sp.conn();
    assert_reply(&srcp.cmd("AUTH pw2"), b"+OK\r\n");
    ok(&mut srcp, &["SET", "x", "1"]);
    assert_reply(
        &srcp.send(&[
            "SLOTSMGRTONE",
            "127.0.0.1",
            &open.port().to_string(),
            "1000",
            "x",
        ]),
        &err("ERR error on slotsrestore, auth failed"),
    );
    assert_reply(
        &srcp.send(&[
            "SLOTSMGRTONE",
            "127.0.0.1",
            &locked.port().to_string(),
            "1000",
            "x",
        ]),
        &err("ERR error on slotsrestore, auth failed"),
    );
    assert_reply(&srcp.cmd("GET x"), b"$1\r\n1\r\n");
    assert_reply(
        &src.send(&[
            "SLOTSMGRTONE",
            "127.0.0.1",
            &locked.port().to_string(),
            "1000",
            "{k}1",
        ]),
        &err("ERR error on slotsrestore, select failed"),
    );
    let big = Server::start(&["--databases", "2"]);
    assert_reply(&src.cmd("SELECT 7"), b"+OK\r\n");
    ok(&mut src, &["SET", "y", "1"]);
    assert_reply(
        &src.send(&[
            "SLOTSMGRTONE",
            "127.0.0.1",
            &big.port().to_string(),
            "1000",
            "y",
        ]),
        &err("ERR error on slotsrestore, select failed"),
    );
    assert_reply(&src.cmd("GET y"), b"$1\r\n1\r\n");
    assert_reply(&src.cmd("SELECT 0"), b"+OK\r\n");
    check_intact(&mut src);
    // a refused AUTH or SELECT writes nothing on the target
    assert_reply(&open.conn().cmd("DBSIZE"), &int(0));
    let mut lc = locked.conn();
    assert_reply(&lc.cmd("AUTH pw"), b"+OK\r\n");
    assert_reply(&lc.cmd("DBSIZE"), &int(0));
    assert_reply(&big.conn().cmd("DBSIZE"), &int(0));

    // argument errors (codis.md §2.3)
    let p = open.port().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["SLOTSMGRTSLOT", "127.0.0.1", &p, "100", "1024"],
            "ERR invalid slot number = 1024",
        ),
        (
            &["SLOTSMGRTTAGSLOT", "127.0.0.1", &p, "100", "-1"],
            "ERR invalid slot number = -1",
        ),
        (
            &["SLOTSMGRTSLOT", "127.0.0.1", &p, "100", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["SLOTSMGRTONE", "127.0.0.1", &p, "-1", "k"],
            "ERR invalid timeout = -1",
        ),
        (
            &["SLOTSMGRTTAGONE", "127.0.0.1", &p, "abc", "k"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["SLOTSMGRTSLOT", "127.0.0.1", &p, "4294967296", "1"],
            "ERR value is out of range",
        ),
        (
            &["SLOTSMGRTONE", "127.0.0.1", &p, "100"],
            "ERR wrong number of arguments for 'slotsmgrtone' command",
        ),
        (
            &["SLOTSMGRTTAGSLOT", "127.0.0.1", &p, "100", "1", "2"],
            "ERR wrong number of arguments for 'slotsmgrttagslot' command",
        ),
    ];
    for (argv, e) in cases {
        assert_reply(&src.send(argv), &err(e));
    }
    check_intact(&mut src);
    assert_reply(&src.cmd("SLOTSCHECK"), b"+OK\r\n");
}

/// Codis' sync forwarding while a slot moves: before the migration the
/// writer INCRs on the source; once it starts, each INCR is preceded by
/// `SLOTSMGRTTAGONE key` on the source and goes to the target, while another
/// client loops SLOTSMGRTTAGSLOT over the slots. No increment may be lost.
#[test]
fn concurrent_forwarding_keeps_every_increment() {
    let (s, d) = (Server::start(&[]), Server::start(&[]));
    let (sport, dport) = (s.port(), d.port());
    let mut c = s.conn();
    // 100 tag groups of 2 counters, in 2 slots
    let mut bases = keys_in_slot(&mut c, 100, 50, "ctr:");
    bases.extend(keys_in_slot(&mut c, 901, 50, "ctr:"));
    let counters: Vec<String> = bases
        .iter()
        .flat_map(|b| [format!("{{{b}}}:a"), format!("{{{b}}}:b")])
        .collect();
    assert_eq!(counters.len(), 200);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let dports = dport.to_string();
    let migrator = thread::spawn(move || {
        go_rx.recv().unwrap();
        let mut c = Conn::connect(sport).unwrap();
        let mut steps = 0;
        for slot in ["100", "901"] {
            loop {
                let v = c.send_value(&["SLOTSMGRTTAGSLOT", "127.0.0.1", &dports, "5000", slot]);
                let a = v.as_array().unwrap_or_else(|| panic!("{v:?}"));
                steps += 1;
                if a[1].as_int() == Some(0) {
                    break;
                }
            }
        }
        steps
    });
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut dst = d.conn();
    let mut rng_state = 12345u64;
    let mut moved_by_writer = 0;
    for i in 0..5000 {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let k = &counters[(rng_state >> 33) as usize % counters.len()];
        *expected.entry(k.clone()).or_default() += 1;
        if i < 1000 {
            ok(&mut c, &["INCR", k]);
            if i == 999 {
                go_tx.send(()).unwrap();
            }
        } else {
            let v = c.send_value(&[
                "SLOTSMGRTTAGONE",
                "127.0.0.1",
                &dport.to_string(),
                "5000",
                k,
            ]);
            moved_by_writer += v.as_int().unwrap_or_else(|| panic!("{v:?}"));
            ok(&mut dst, &["INCR", k]);
        }
    }
    let steps = migrator.join().unwrap();
    eprintln!("migrator steps {steps}, keys moved by the writer {moved_by_writer}");
    assert_reply(&c.cmd("DBSIZE"), &int(0));
    assert_reply(&c.cmd("SLOTSINFO"), b"*0\r\n");
    let mut total = 0;
    for (k, n) in &expected {
        let v = dst.send_value(&["GET", k]);
        assert_eq!(v.as_text(), Some(n.to_string()), "{k}");
        total += n;
    }
    assert_eq!(total, 5000);
    assert_reply(&dst.cmd("SLOTSCHECK"), b"+OK\r\n");
}

/// SIGKILL the target part-way through a slot: every key is either still on
/// the source, intact, or was acknowledged by the dead target; re-running to
/// a fresh target converges.
#[test]
fn target_killed_mid_slot_then_rerun() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let slot = 512;
    let keys = keys_in_slot(&mut c, slot, 1500, "kill:");
    let value = |k: &str| format!("{k}:{}", "p".repeat(3000));
    for chunk in keys.chunks(100) {
        let mut argv = vec!["MSET".to_string()];
        for k in chunk {
            argv.push(k.clone());
            argv.push(value(k));
        }
        ok(&mut c, &argv.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let mut victim = Server::start(&[]);
    let vport = victim.port();
    let sport = s.port();
    let runner = thread::spawn(move || {
        let mut c = Conn::connect(sport).unwrap();
        let mut moved = 0i64;
        loop {
            let v = c.send_value(&[
                "SLOTSMGRTSLOT",
                "127.0.0.1",
                &vport.to_string(),
                "2000",
                "512",
            ]);
            match v.as_array() {
                Some(a) => {
                    moved += a[0].as_int().unwrap();
                    if a[1].as_int() == Some(0) {
                        return (moved, None);
                    }
                }
                None => return (moved, Some(v.as_text().unwrap_or_default())),
            }
        }
    });
    // let some keys go, then kill the target
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = c.send_value(&["SLOTSINFO", "512", "1"]);
        let n = left
            .as_array()
            .unwrap()
            .first()
            .map_or(0, |p| p.as_array().unwrap()[1].as_int().unwrap());
        if n <= 1400 {
            break;
        }
        assert!(Instant::now() < deadline, "migration does not progress");
        thread::sleep(Duration::from_millis(2));
    }
    unsafe {
        libc::kill(victim.pid() as i32, libc::SIGKILL);
    }
    let (moved, error) = runner.join().unwrap();
    let error = error.expect("the migration must fail when its target dies");
    eprintln!("moved {moved} before the kill, then: {error}");
    let dead_by = Instant::now() + Duration::from_secs(5);
    while victim.is_alive() {
        assert!(Instant::now() < dead_by, "SIGKILL did not kill the target");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        error.starts_with("IOERR") || error.starts_with("ERR"),
        "{error}"
    );
    assert!(
        moved >= 100 && (moved as usize) < keys.len(),
        "moved {moved}"
    );
    // every key not acknowledged is still on the source, intact
    let mut on_source = Vec::new();
    for k in &keys {
        let v = c.send_value(&["GET", k]);
        match v {
            Value::Nil => {}
            v => {
                assert_eq!(v.as_text(), Some(value(k)), "{k} damaged");
                on_source.push(k.clone());
            }
        }
    }
    assert_eq!(on_source.len() + moved as usize, keys.len());
    assert_reply(&c.cmd("SLOTSCHECK"), b"+OK\r\n");
    // writable again (nothing left in flight)
    ok(&mut c, &["APPEND", &on_source[0], ""]);
    // re-run to a fresh target: converges
    let fresh = Server::start(&[]);
    let fp = fresh.port().to_string();
    let mut rounds = 0;
    loop {
        let v = c.send_value(&["SLOTSMGRTTAGSLOT", "127.0.0.1", &fp, "5000", "512"]);
        let a = v.as_array().unwrap_or_else(|| panic!("{v:?}"));
        rounds += 1;
        if a[1].as_int() == Some(0) {
            break;
        }
    }
    assert_eq!(rounds, on_source.len());
    let mut f = fresh.conn();
    assert_reply(&f.cmd("DBSIZE"), &int(on_source.len() as i64));
    for k in &on_source {
        assert_eq!(f.send_value(&["GET", k]).as_text(), Some(value(k)));
    }
    assert_reply(&c.cmd("DBSIZE"), &int(0));
}

/// Sends `head` followed by `items` in commands of at most `per` items.
fn bulk_fill(c: &mut Conn, head: &[&str], items: &[String], per: usize) {
    for chunk in items.chunks(per) {
        let mut argv: Vec<&str> = head.to_vec();
        argv.extend(chunk.iter().map(String::as_str));
        ok(c, &argv);
    }
}

/// The content of a big key fetched in pieces (the harness re-parses a
/// partial reply on every read, so one huge reply is slow): elements in
/// order for lists and zsets (with scores), sorted for hashes and sets.
fn big_content(c: &mut Conn, key: &str) -> (String, Vec<Vec<u8>>) {
    let t = c.send_value(&["TYPE", key]).as_text().unwrap();
    let items = |v: &Value| -> Vec<Vec<u8>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_bytes().unwrap().to_vec())
            .collect()
    };
    let mut out = Vec::new();
    match t.as_str() {
        "string" => out.push(c.send_value(&["GET", key]).as_bytes().unwrap().to_vec()),
        "list" | "zset" => {
            let (cmd, extra) = if t == "list" {
                ("LRANGE", None)
            } else {
                ("ZRANGE", Some("WITHSCORES"))
            };
            for start in (0..).step_by(10_000) {
                let (a, b) = (start.to_string(), (start + 9_999).to_string());
                let mut argv = vec![cmd, key, &a, &b];
                argv.extend(extra);
                let got = items(&c.send_value(&argv));
                if got.is_empty() {
                    break;
                }
                out.extend(got);
            }
        }
        "hash" | "set" => {
            let cmd = if t == "hash" { "HSCAN" } else { "SSCAN" };
            let mut cursor = "0".to_string();
            loop {
                let v = c.send_value(&[cmd, key, &cursor, "COUNT", "10000"]);
                let a = v.as_array().unwrap();
                cursor = a[0].as_text().unwrap();
                let got = items(&a[1]);
                if t == "hash" {
                    out.extend(
                        got.chunks(2)
                            .map(|p| [&p[0][..], b"\0", &p[1][..]].concat()),
                    );
                } else {
                    out.extend(got);
                }
                if cursor == "0" {
                    break;
                }
            }
            out.sort();
            out.dedup();
        }
        other => panic!("{key}: unexpected type {other}"),
    }
    (t, out)
}

/// Big values (300k-element hash, list, zset and set, a 20 MB string) move
/// in one SLOTSMGRTTAGONE while another client keeps being served: its
/// PINGs and GETs of an unrelated key all succeed (the source serializes,
/// sends and deletes big values in slices). No timing assertion: the
/// longest round trip is only printed.
#[test]
fn big_values_move_while_other_clients_are_served() {
    let (s, d) = (Server::start(&[]), Server::start(&[]));
    let (mut src, mut dst) = (s.conn(), d.conn());
    src.set_timeout(Duration::from_secs(120));
    dst.set_timeout(Duration::from_secs(120));
    let n: u64 = 300_000;
    let fields: Vec<String> = (0..n)
        .flat_map(|i| [format!("field:{i}"), format!("value:{i}")])
        .collect();
    bulk_fill(&mut src, &["HSET", "{big}h"], &fields, 2000);
    let elems: Vec<String> = (0..n).map(|i| format!("elem:{i}")).collect();
    bulk_fill(&mut src, &["RPUSH", "{big}l"], &elems, 1000);
    bulk_fill(&mut src, &["SADD", "{big}s"], &elems, 1000);
    let scored: Vec<String> = (0..n)
        .flat_map(|i| [format!("{}", (i * 7919) % 100_003), format!("elem:{i}")])
        .collect();
    bulk_fill(&mut src, &["ZADD", "{big}z"], &scored, 2000);
    let big_str: String = (0..20_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    ok(&mut src, &["SET", "{big}str", &big_str]);
    ok(&mut src, &["PEXPIRE", "{big}h", "600000"]);
    ok(&mut src, &["SET", "other", "still-here"]);
    ok(&mut dst, &["SET", "other", "still-here"]);
    let keys: Vec<String> = ["{big}h", "{big}l", "{big}s", "{big}z", "{big}str"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let before: Vec<_> = keys
        .iter()
        .map(|k| (big_content(&mut src, k), pttl(&mut src, k)))
        .collect();
    assert_eq!(before[0].0.1.len(), 300_000);
    assert_eq!(before[4].0.1[0].len(), big_str.len());
    drop(big_str);

    // The concurrent client: PING / GET on both servers until told to stop.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let ports = [s.port(), d.port()];
    let prober = thread::spawn(move || {
        let mut conns: Vec<Conn> = ports.iter().map(|&p| Conn::connect(p).unwrap()).collect();
        let (mut ops, mut worst) = (0u64, [Duration::ZERO; 2]);
        while stop_rx.try_recv().is_err() {
            for (c, w) in conns.iter_mut().zip(&mut worst) {
                let t = Instant::now();
                assert_reply(&c.send(&["PING"]), b"+PONG\r\n");
                assert_reply(&c.send(&["GET", "other"]), b"$10\r\nstill-here\r\n");
                *w = (*w).max(t.elapsed());
                ops += 2;
            }
        }
        (ops, worst)
    });
    let t = Instant::now();
    let r = src.send(&[
        "SLOTSMGRTTAGONE",
        "127.0.0.1",
        &d.port().to_string(),
        // Generous: a debug build on a loaded 2-core machine may need
        // tens of seconds for ~50 MB (the timeout bounds each I/O step).
        "120000",
        "{big}h",
    ]);
    let took = t.elapsed();
    thread::sleep(Duration::from_millis(100));
    stop_tx.send(()).unwrap();
    let (ops, worst) = prober.join().expect("the concurrent client failed");
    eprintln!(
        "moved 5 big keys in {took:?}; concurrent client: {ops} commands, longest PING+GET on source / target {:?} / {:?}",
        worst[0], worst[1]
    );
    assert_eq!(
        r,
        int(5),
        "SLOTSMGRTTAGONE answered {} after {took:?}",
        tests::escape(&r)
    );
    assert!(ops > 0);
    for (k, (content, ttl)) in keys.iter().zip(&before) {
        assert_eq!(src.send_value(&["EXISTS", k]).as_int(), Some(0), "{k} left");
        assert!(
            big_content(&mut dst, k) == *content,
            "{k} differs on the target"
        );
        let t = pttl(&mut dst, k);
        assert!(
            if *ttl < 0 {
                t == -1
            } else {
                t > 0 && t <= *ttl
            },
            "{k}: ttl {t} vs {ttl}"
        );
    }
    assert_reply(&src.cmd("DBSIZE"), &int(1));
    assert_reply(&dst.cmd("SLOTSCHECK"), b"+OK\r\n");
}
