//! Async ("semi-async") migration between two or three of our servers
//! (codis.md §2.7): every data type (big values chunked) moved by each of
//! the four batch commands, reply shapes, ASYNC-DUMP, FENCE / CANCEL /
//! STATUS, SLOTSMGRT-EXEC-WRAPPER codes, target-side errors, AUTH/SELECT
//! with requirepass, a concurrent INCR load forwarded the way the proxy
//! does, and a target killed mid-batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use protocol::slot::slot_of;
use tests::{Conn, Server, Value};

const BIG: usize = 20_000;
/// Elements of the list a slow batch ships one per message.
const SLOW_N: usize = 10_000;

fn v(c: &mut Conn, args: &[&[u8]]) -> Value {
    c.send_value(args)
}

fn s(c: &mut Conn, line: &str) -> Value {
    c.value(line)
}

fn ok(val: &Value) {
    assert_eq!(val, &Value::Simple("OK".into()), "{val:?}");
}

fn int(val: &Value) -> i64 {
    val.as_int()
        .unwrap_or_else(|| panic!("expected an integer, got {val:?}"))
}

fn pair(a: i64, b: i64) -> Value {
    Value::Array(vec![Value::Int(a), Value::Int(b)])
}

fn cmd(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// Fills `key` with a value of `kind` and `n` elements (in 1000-element
/// commands).
fn fill(c: &mut Conn, kind: &str, key: &str, n: usize) {
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        let mut args: Vec<Vec<u8>> = match kind {
            "list" => vec![b"RPUSH".to_vec()],
            "hash" => vec![b"HSET".to_vec()],
            "set" => vec![b"SADD".to_vec()],
            _ => vec![b"ZADD".to_vec()],
        };
        args.push(key.as_bytes().to_vec());
        for j in i..end {
            match kind {
                "list" => args.push(format!("e{j}-{}", "x".repeat(j % 7)).into_bytes()),
                "hash" => {
                    args.push(format!("f{j}").into_bytes());
                    args.push(format!("v{j}").into_bytes());
                }
                "set" => args.push(format!("m{j}").into_bytes()),
                _ => {
                    args.push(format!("{}", (j as f64) * 0.25 - 100.0).into_bytes());
                    args.push(format!("z{j}").into_bytes());
                }
            }
        }
        cmds.push(args);
        i = end;
    }
    tests::pipeline(c, &cmds, usize::MAX);
}

/// Creates the test data set under tag `{t}`: every type, small and big,
/// some with TTLs. Returns the keys.
fn make_data(c: &mut Conn, t: &str, big: usize) -> Vec<String> {
    let k = |n: &str| format!("{{{t}}}{n}");
    ok(&v(c, &[b"SET", k("str").as_bytes(), b"hello"]));
    ok(&v(c, &[b"SET", k("int").as_bytes(), b"12345"]));
    ok(&v(
        c,
        &[b"SET", k("strttl").as_bytes(), b"tmp", b"PX", b"500000"],
    ));
    fill(c, "hash", &k("hsmall"), 5);
    fill(c, "list", &k("lsmall"), 5);
    fill(c, "zset", &k("zsmall"), 5);
    tests::pipeline(
        c,
        &[cmd(&[b"SADD", k("intset").as_bytes(), b"1", b"2", b"3"])],
        usize::MAX,
    );
    fill(c, "hash", &k("hbig"), big);
    fill(c, "list", &k("lbig"), big);
    fill(c, "set", &k("sbig"), big);
    fill(c, "zset", &k("zbig"), big);
    for key in [k("hbig"), k("lbig")] {
        assert_eq!(int(&v(c, &[b"PEXPIRE", key.as_bytes(), b"900000"])), 1);
    }
    [
        "str", "int", "strttl", "hsmall", "lsmall", "zsmall", "intset", "hbig", "lbig", "sbig",
        "zbig",
    ]
    .iter()
    .map(|n| k(n))
    .collect()
}

/// Type, content (order-independent where the type is) and TTL presence.
fn snapshot(c: &mut Conn, key: &str) -> (String, Value, i64) {
    let k = key.as_bytes();
    let ty = v(c, &[b"TYPE", k]).as_text().unwrap_or_default();
    let content = match ty.as_str() {
        "string" => v(c, &[b"GET", k]),
        "list" => v(c, &[b"LRANGE", k, b"0", b"-1"]),
        "hash" => v(c, &[b"HGETALL", k]).sorted(),
        "set" => v(c, &[b"SMEMBERS", k]).sorted(),
        "zset" => v(c, &[b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"]),
        _ => Value::Nil,
    };
    let pttl = int(&v(c, &[b"PTTL", k]));
    (ty, content, pttl)
}

fn snapshots(c: &mut Conn, keys: &[String]) -> Vec<(String, Value, i64)> {
    keys.iter().map(|k| snapshot(c, k)).collect()
}

fn assert_moved(src: &mut Conn, dst: &mut Conn, keys: &[String], before: &[(String, Value, i64)]) {
    for (k, b) in keys.iter().zip(before) {
        assert_eq!(
            int(&v(src, &[b"EXISTS", k.as_bytes()])),
            0,
            "{k} still on source"
        );
        let a = snapshot(dst, k);
        assert_eq!(a.0, b.0, "{k}: type");
        assert!(a.1 == b.1, "{k}: content differs");
        if b.2 < 0 {
            assert_eq!(a.2, -1, "{k}: unexpected TTL {}", a.2);
        } else {
            assert!(a.2 > 0 && a.2 <= b.2, "{k}: TTL {} (was {})", a.2, b.2);
            // Not the temporary 3 × timeout TTL.
            assert!(b.2 - a.2 < 60_000, "{k}: TTL {} (was {})", a.2, b.2);
        }
    }
}

fn host_port(dst: &Server) -> (String, String) {
    ("127.0.0.1".into(), dst.port().to_string())
}

/// Loops a SLOT-form command until it answers `[0, 0]`; returns the calls.
fn drain_slot(c: &mut Conn, cmd_name: &str, dst: &Server, slot: usize, extra: &[&str]) -> usize {
    let (h, p) = host_port(dst);
    let slot = slot.to_string();
    let mut args: Vec<&str> = vec![cmd_name, &h, &p];
    args.extend_from_slice(extra);
    args.push(&slot);
    args.push("0");
    // One call may move a whole tag (100k keys) in one batch: on a loaded
    // 2-core machine (parallel test binaries, debug build, the migration
    // thread at nice 10) that took over 15 s once.
    c.set_timeout(Duration::from_secs(120));
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 10_000, "{cmd_name} does not converge");
        let r = c.send_value(&args);
        let a = r
            .as_array()
            .unwrap_or_else(|| panic!("{cmd_name}: {r:?}"))
            .to_vec();
        if a == [Value::Int(0), Value::Int(0)] {
            c.set_timeout(tests::READ_TIMEOUT);
            return calls;
        }
    }
}

#[test]
fn every_type_moved_by_each_batch_command() {
    let src = Server::start(&[]);
    let dst = Server::start(&[]);
    let mut a = src.conn();
    let mut b = dst.conn();
    let (h, p) = host_port(&dst);
    let t0 = Instant::now();

    // SLOTSMGRTONE-ASYNC: the listed keys (one call, all keys).
    let keys = make_data(&mut a, "one", BIG);
    let before = snapshots(&mut a, &keys);
    let mut args: Vec<&str> = vec!["SLOTSMGRTONE-ASYNC", &h, &p, "5000", "100", "0"];
    args.extend(keys.iter().map(|s| s.as_str()));
    args.push("missing-key");
    assert_eq!(a.send_value(&args), Value::Int(keys.len() as i64));
    assert_moved(&mut a, &mut b, &keys, &before);
    for (k, enc) in [
        ("{one}hbig", "hashtable"),
        ("{one}zbig", "skiplist"),
        ("{one}sbig", "hashtable"),
    ] {
        assert_eq!(
            s(&mut b, &format!("OBJECT ENCODING {k}"))
                .as_text()
                .unwrap(),
            enc
        );
    }

    // SLOTSMGRTTAGONE-ASYNC: one key brings its whole tag group.
    let keys = make_data(&mut a, "tagone", BIG);
    let before = snapshots(&mut a, &keys);
    let r = a.send_value(&[
        "SLOTSMGRTTAGONE-ASYNC",
        &h,
        &p,
        "5000",
        "100",
        "0",
        "{tagone}str",
    ]);
    assert_eq!(r, Value::Int(keys.len() as i64));
    assert_moved(&mut a, &mut b, &keys, &before);

    // SLOTSMGRTSLOT-ASYNC: numkeys 3 at a time until [0, 0].
    let keys = make_data(&mut a, "slot", BIG / 4);
    let slot = slot_of(b"{slot}");
    let before = snapshots(&mut a, &keys);
    let (hh, pp) = host_port(&dst);
    let slot_s = slot.to_string();
    let r = a.send_value(&[
        "SLOTSMGRTSLOT-ASYNC",
        &hh,
        &pp,
        "5000",
        "100",
        "0",
        &slot_s,
        "3",
    ]);
    let arr = r.as_array().unwrap().to_vec();
    assert_eq!(arr.len(), 2);
    assert_eq!(int(&arr[1]), keys.len() as i64, "slot size before deletion");
    let moved = int(&arr[0]);
    assert!((1..=6).contains(&moved), "{r:?}");
    drain_slot(
        &mut a,
        "SLOTSMGRTSLOT-ASYNC",
        &dst,
        slot,
        &["5000", "100", "0"],
    );
    assert_moved(&mut a, &mut b, &keys, &before);

    // SLOTSMGRTTAGSLOT-ASYNC with a small window (maxbytes 4096).
    let keys = make_data(&mut a, "tagslot", BIG / 4);
    let slot = slot_of(b"{tagslot}");
    let before = snapshots(&mut a, &keys);
    let calls = drain_slot(
        &mut a,
        "SLOTSMGRTTAGSLOT-ASYNC",
        &dst,
        slot,
        &["5000", "100", "4096"],
    );
    assert_eq!(calls, 2, "one tag group = one batch, then [0,0]");
    assert_moved(&mut a, &mut b, &keys, &before);
    assert_eq!(int(&s(&mut a, "DBSIZE")), 0);
    eprintln!("every_type: {:?} for 4 data sets", t0.elapsed());
}

#[test]
fn reply_shapes_dump_and_slot_sizes() {
    let src = Server::start(&[]);
    let dst = Server::start(&[]);
    let mut a = src.conn();
    let mut b = dst.conn();
    let (h, p) = host_port(&dst);
    for i in 0..5 {
        ok(&s(&mut a, &format!("SET {{five}}k{i} v{i}")));
    }
    let slot = slot_of(b"{five}").to_string();
    let args = ["SLOTSMGRTSLOT-ASYNC", &h, &p, "1000", "0", "0", &slot, "0"];
    assert_eq!(a.send_value(&args), pair(5, 5));
    assert_eq!(a.send_value(&args), pair(0, 0));
    assert_eq!(int(&s(&mut b, "DBSIZE")), 5);
    // ONE with only missing keys: 0, immediately.
    assert_eq!(
        a.send_value(&["SLOTSMGRTONE-ASYNC", &h, &p, "1000", "0", "0", "nope"]),
        Value::Int(0)
    );
    // An existing key on the target is overwritten (delete first).
    ok(&s(&mut a, "SET dup new"));
    ok(&s(&mut b, "SET dup old"));
    assert_eq!(
        a.send_value(&["SLOTSMGRTONE-ASYNC", &h, &p, "1000", "0", "0", "dup"]),
        Value::Int(1)
    );
    assert_eq!(s(&mut b, "GET dup").as_text().unwrap(), "new");

    // ASYNC-DUMP (codis.md §2.7.2).
    ok(&s(&mut a, "SET s1 x EX 100"));
    assert_eq!(int(&s(&mut a, "HSET h1 f v g w")), 2);
    let d = s(&mut a, "SLOTSMGRTONE-ASYNC-DUMP 0 0 s1 missing h1");
    let msgs = d.as_array().unwrap();
    assert_eq!(msgs.len(), 4, "{d:?}");
    let texts = |m: &Value| -> Vec<Vec<u8>> {
        m.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_bytes().unwrap().to_vec())
            .collect()
    };
    assert_eq!(
        texts(&msgs[0]),
        cmd(&[b"SLOTSRESTORE-ASYNC", b"delete", b"s1"])
    );
    let m1 = texts(&msgs[1]);
    assert_eq!(m1.len(), 5);
    assert_eq!(
        &m1[..3],
        &cmd(&[b"SLOTSRESTORE-ASYNC", b"string", b"s1"])[..]
    );
    let ttl: i64 = String::from_utf8_lossy(&m1[3]).parse().unwrap();
    assert!((90_000..=100_000).contains(&ttl), "ttl {ttl}");
    assert_eq!(m1[4], b"x");
    assert_eq!(
        texts(&msgs[2]),
        cmd(&[b"SLOTSRESTORE-ASYNC", b"delete", b"h1"])
    );
    let m3 = texts(&msgs[3]);
    assert_eq!(
        &m3[..4],
        &cmd(&[b"SLOTSRESTORE-ASYNC", b"object", b"h1", b"0"])[..]
    );
    let dumped = s(&mut a, "DUMP h1");
    assert_eq!(m3[4], dumped.as_bytes().unwrap());
    // The messages replay on another server.
    let mut c = dst.conn();
    for m in msgs {
        let args = texts(m);
        let r = c.send_value(&args);
        let r = r.as_array().unwrap();
        assert_eq!(r[1].as_bytes().unwrap(), b"0", "{r:?}");
    }
    assert_eq!(s(&mut c, "HGET h1 g").as_text().unwrap(), "w");

    // Chunked DUMP: a list of 25 with maxbulks 10, TTL: delete, 3 chunks,
    // expire; the chunks carry 3 × timeout and the hint.
    fill(&mut a, "list", "{tag}l", 25);
    assert_eq!(int(&s(&mut a, "PEXPIRE {tag}l 50000")), 1);
    ok(&s(&mut a, "SET {tag}other 1"));
    let d = s(&mut a, "SLOTSMGRTTAGONE-ASYNC-DUMP 1000 10 {tag}l");
    let msgs = d.as_array().unwrap();
    assert_eq!(msgs.len(), 1 + 3 + 1 + 2, "{d:?}");
    let chunk = texts(&msgs[1]);
    assert_eq!(
        &chunk[..5],
        &cmd(&[b"SLOTSRESTORE-ASYNC", b"list", b"{tag}l", b"3000", b"25"])[..]
    );
    assert_eq!(chunk.len(), 15);
    let exp = texts(&msgs[4]);
    assert_eq!(
        &exp[..3],
        &cmd(&[b"SLOTSRESTORE-ASYNC", b"expire", b"{tag}l"])[..]
    );
    // Argument errors.
    assert_eq!(
        s(&mut a, "SLOTSMGRTONE-ASYNC-DUMP x 0 k"),
        Value::Error("ERR invalid value of timeout (x)".into())
    );
    let e = |t: &str| Value::Error(t.into());
    assert_eq!(
        a.send_value(&["SLOTSMGRTONE-ASYNC", &h, "0", "1000", "0", "0", "k"]),
        e("ERR invalid value of port (0)")
    );
    assert_eq!(
        a.send_value(&["SLOTSMGRTONE-ASYNC", &h, &p, "-1", "0", "0", "k"]),
        e("ERR invalid value of timeout (-1)")
    );
    assert_eq!(
        a.send_value(&["SLOTSMGRTSLOT-ASYNC", &h, &p, "0", "0", "0", "1024", "0"]),
        e("ERR invalid value of slot (1024)")
    );
    assert_eq!(
        a.send_value(&["SLOTSMGRTSLOT-ASYNC", &h, &p, "0", "0", "zz", "1", "0"]),
        e("ERR invalid value of maxbytes (zz)")
    );
    assert_eq!(
        a.send_value(&["SLOTSMGRTSLOT-ASYNC", &h, &p, "0", "0", "0", "1", "-3"]),
        e("ERR invalid value of numkeys (-3)")
    );
    assert_eq!(
        s(&mut a, "SLOTSMGRTSLOT-ASYNC h 1 0 0 0 1"),
        e("ERR wrong number of arguments for 'slotsmgrtslot-async' command")
    );
    assert_eq!(
        s(&mut a, "SLOTSMGRTONE-ASYNC h 1 0 0 0"),
        e("ERR wrong number of arguments for 'slotsmgrtone-async' command")
    );
    // Unresolvable host: create client failed.
    assert_eq!(
        a.send_value(&[
            "SLOTSMGRTONE-ASYNC",
            "no-such-host.invalid",
            "6379",
            "1000",
            "0",
            "0",
            "s1"
        ]),
        e("ERR create client to no-such-host.invalid:6379 failed")
    );
    // Refused port: the batch fails with connection closed; nothing moved.
    let closed = tests::free_port().to_string();
    assert_eq!(
        a.send_value(&[
            "SLOTSMGRTONE-ASYNC",
            "127.0.0.1",
            &closed,
            "1000",
            "0",
            "0",
            "s1"
        ]),
        e("ERR interrupted: connection closed")
    );
    assert_eq!(int(&s(&mut a, "EXISTS s1")), 1);
}

/// A key whose batch takes a while: a list shipped one element per message
/// with a one-message window.
fn slow_key(c: &mut Conn, key: &str, n: usize) {
    fill(c, "list", key, n);
}

fn start_slow_batch(port: u16, dst: &Server, key: &str) -> thread::JoinHandle<Value> {
    let (h, p) = host_port(dst);
    let key = key.to_string();
    thread::spawn(move || {
        let mut c = Conn::connect(port).unwrap();
        c.set_timeout(Duration::from_secs(60));
        c.send_value(&["SLOTSMGRTONE-ASYNC", &h, &p, "20000", "1", "1", &key])
    })
}

/// Waits until STATUS shows a batch whose current key is being chunked
/// (stage 2), so chunks are flowing.
fn wait_status_busy(c: &mut Conn) {
    fn field<'a>(a: &'a [Value], name: &str) -> Option<&'a Value> {
        let i = a
            .iter()
            .position(|x| x.as_text().as_deref() == Some(name))?;
        a.get(i + 1)
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = s(c, "SLOTSMGRT-ASYNC-STATUS");
        let stage = st
            .as_array()
            .and_then(|a| field(a, "batched_iterator"))
            .and_then(Value::as_array)
            .and_then(|b| field(b, "iterators"))
            .and_then(Value::as_array)
            .and_then(|it| it.get(1))
            .and_then(Value::as_array)
            .and_then(|k| field(k, "stage"))
            .and_then(Value::as_text);
        if stage.as_deref() == Some("2") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no chunking batch in STATUS: {st:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn fence_cancel_status_and_wrapper_codes() {
    let src = Server::start(&[]);
    let dst = Server::start(&[]);
    let mut a = src.conn();
    let (h, p) = host_port(&dst);
    assert_eq!(s(&mut a, "SLOTSMGRT-ASYNC-STATUS"), Value::NilArray);
    ok(&s(&mut a, "SLOTSMGRT-ASYNC-FENCE"));
    assert_eq!(s(&mut a, "SLOTSMGRT-ASYNC-CANCEL"), Value::Int(0));

    // EXEC-WRAPPER outside migration.
    let e = |t: &str| Value::Error(t.into());
    let w = |c: &mut Conn, line: &str| c.value(&format!("SLOTSMGRT-EXEC-WRAPPER {line}"));
    assert_eq!(
        w(&mut a, "k nosuchcmd k"),
        Value::Array(vec![
            Value::Int(-1),
            e("ERR invalid command specified (nosuchcmd)")
        ])
    );
    assert_eq!(
        w(&mut a, "k get"),
        Value::Array(vec![
            Value::Int(-1),
            e("ERR wrong number of arguments for command (get)")
        ])
    );
    assert_eq!(
        w(&mut a, "k get k"),
        Value::Array(vec![
            Value::Int(0),
            e("ERR the specified key doesn't exist")
        ])
    );
    ok(&s(&mut a, "SET k 1"));
    assert_eq!(
        w(&mut a, "k incr k"),
        Value::Array(vec![Value::Int(2), Value::Int(2)])
    );
    assert_eq!(
        w(&mut a, "k get k"),
        Value::Array(vec![Value::Int(2), Value::Bulk(b"2".to_vec())])
    );
    assert_eq!(
        w(&mut a, "k lpush k x"),
        Value::Array(vec![
            Value::Int(2),
            e("WRONGTYPE Operation against a key holding the wrong kind of value")
        ])
    );
    assert_eq!(
        s(&mut a, "SLOTSMGRT-EXEC-WRAPPER k"),
        e("ERR wrong number of arguments for 'slotsmgrt-exec-wrapper' command")
    );

    // A slow batch: STATUS, EXEC-WRAPPER code 1, FENCE gets the result.
    slow_key(&mut a, "{slow}list", SLOW_N);
    ok(&s(&mut a, "SET {slow}str v"));
    let t0 = Instant::now();
    let batch = start_slow_batch(src.port(), &dst, "{slow}list");
    wait_status_busy(&mut a);
    let st = s(&mut a, "SLOTSMGRT-ASYNC-STATUS");
    let st = st.as_array().unwrap();
    let field = |name: &str| {
        let i = st
            .iter()
            .position(|x| x.as_text().as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in STATUS"));
        st[i + 1].clone()
    };
    assert_eq!(field("host").as_text().unwrap(), "127.0.0.1");
    assert_eq!(field("port").as_text().unwrap(), p);
    assert_eq!(field("timeout").as_text().unwrap(), "20000");
    assert_eq!(field("blocked_clients").as_text().unwrap(), "1");
    // maxbytes 1: one unacked message at a time.
    let inflight = field("sending_msgs").as_text().unwrap();
    assert!(
        inflight == "0" || inflight == "1",
        "sending_msgs {inflight}"
    );
    let it = field("batched_iterator");
    let it = it.as_array().unwrap();
    assert_eq!(it[0].as_text().unwrap(), "keys");
    assert_eq!(it[1].as_array().unwrap()[0].as_text().unwrap(), "1");
    let iters = it[15].as_array().unwrap();
    assert_eq!(iters[0].as_text().unwrap(), "1");
    let cur: Vec<String> = iters[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_text().unwrap())
        .collect();
    assert_eq!(
        &cur[..6],
        &["key", "{slow}list", "val.type", "1", "stage", "2"]
    );
    assert_eq!(
        &cur[14..],
        &["chunked_msgs".to_string(), SLOW_N.to_string()]
    );
    assert_eq!(
        a.send_value(&["SLOTSMGRTONE-ASYNC", &h, &p, "1000", "0", "0", "k"]),
        e("ERR the specified DB is being migrated")
    );
    // Writes to the key (and its tag group) are refused, reads run.
    assert_eq!(
        w(&mut a, "{slow}list rpush {slow}list x"),
        Value::Array(vec![
            Value::Int(1),
            e("ERR the specified key is being migrated")
        ])
    );
    assert_eq!(
        w(&mut a, "{slow}str set {slow}str y"),
        Value::Array(vec![
            Value::Int(1),
            e("ERR the specified key is being migrated")
        ])
    );
    assert_eq!(
        w(&mut a, "{slow}list llen {slow}list"),
        Value::Array(vec![Value::Int(2), Value::Int(SLOW_N as i64)])
    );
    assert_eq!(
        s(&mut a, "RPUSH {slow}list x"),
        e("ERR the specified key is being migrated")
    );
    // A transaction writing a key in flight is refused whole, in any
    // position: its other writes do not run.
    ok(&s(&mut a, "MULTI"));
    assert_eq!(s(&mut a, "SET untouched 1"), Value::Simple("QUEUED".into()));
    assert_eq!(
        s(&mut a, "RPUSH {slow}list x"),
        Value::Simple("QUEUED".into())
    );
    assert_eq!(
        s(&mut a, "EXEC"),
        e("EXECABORT Transaction discarded because of: ERR the specified key is being migrated")
    );
    assert_eq!(s(&mut a, "EXISTS untouched"), Value::Int(0));
    // One that only reads it runs.
    ok(&s(&mut a, "MULTI"));
    assert_eq!(s(&mut a, "LLEN {slow}list"), Value::Simple("QUEUED".into()));
    assert_eq!(
        s(&mut a, "EXEC"),
        Value::Array(vec![Value::Int(SLOW_N as i64)])
    );
    assert_eq!(
        w(&mut a, "k incr k"),
        Value::Array(vec![Value::Int(2), Value::Int(3)])
    );
    a.set_timeout(Duration::from_secs(60));
    assert_eq!(s(&mut a, "SLOTSMGRT-ASYNC-FENCE"), Value::Int(1));
    assert_eq!(batch.join().unwrap(), Value::Int(1));
    eprintln!(
        "slow batch ({SLOW_N} one-element messages): {:?}",
        t0.elapsed()
    );
    assert_eq!(
        w(&mut a, "{slow}list rpush {slow}list x"),
        Value::Array(vec![
            Value::Int(0),
            e("ERR the specified key doesn't exist")
        ])
    );
    let mut b = dst.conn();
    assert_eq!(int(&s(&mut b, "LLEN {slow}list")), SLOW_N as i64);
    assert_eq!(int(&s(&mut b, "PTTL {slow}list")), -1);

    // Idle connection: STATUS shows it; CANCEL tears it down.
    let st = s(&mut a, "SLOTSMGRT-ASYNC-STATUS");
    let st = st.as_array().unwrap();
    assert_eq!(st.len(), 18);
    assert_eq!(st[17], Value::NilArray);
    assert_eq!(st[5].as_text().unwrap(), "1", "used");
    assert_eq!(s(&mut a, "SLOTSMGRT-ASYNC-CANCEL"), Value::Int(1));
    assert_eq!(s(&mut a, "SLOTSMGRT-ASYNC-STATUS"), Value::NilArray);

    // CANCEL during a batch: the caller gets the error, nothing is deleted.
    slow_key(&mut a, "{slow2}list", SLOW_N);
    let batch = start_slow_batch(src.port(), &dst, "{slow2}list");
    wait_status_busy(&mut a);
    let mut f = src.conn();
    f.set_timeout(Duration::from_secs(30));
    f.write_raw(&tests::resp::encode_command(&["SLOTSMGRT-ASYNC-FENCE"]))
        .unwrap();
    // Cancel once the fence is parked (2 blocked clients) and a partial
    // copy exists on the target.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = s(&mut a, "SLOTSMGRT-ASYNC-STATUS");
        let st = st.as_array().unwrap();
        if st[15].as_text().as_deref() == Some("2") {
            break;
        }
        assert!(Instant::now() < deadline, "fence not parked");
        thread::sleep(Duration::from_millis(2));
    }
    while int(&s(&mut b, "EXISTS {slow2}list")) == 0 {
        assert!(Instant::now() < deadline, "no partial copy on the target");
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(s(&mut a, "SLOTSMGRT-ASYNC-CANCEL"), Value::Int(1));
    assert_eq!(batch.join().unwrap(), e("ERR interrupted: canceled"));
    assert_eq!(
        tests::parse_one(&f.read_reply().unwrap()).unwrap(),
        e("ERR interrupted: canceled")
    );
    assert_eq!(int(&s(&mut a, "LLEN {slow2}list")), SLOW_N as i64);
    assert_eq!(int(&s(&mut a, "RPUSH {slow2}list y")), SLOW_N as i64 + 1);
    // The partial copy on the target carries the temporary TTL.
    let pttl = int(&s(&mut b, "PTTL {slow2}list"));
    assert!(pttl > 0 && pttl <= 60_000, "partial copy TTL {pttl}");
}

#[test]
fn migration_timeout_aborts_the_batch() {
    // A "target" that accepts and never answers.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let hold = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        thread::sleep(Duration::from_secs(4));
        drop(s);
    });
    let src = Server::start(&[]);
    let mut a = src.conn();
    ok(&s(&mut a, "SET k v"));
    let t0 = Instant::now();
    assert_eq!(
        a.send_value(&[
            "SLOTSMGRTONE-ASYNC",
            "127.0.0.1",
            &port,
            "500",
            "0",
            "0",
            "k"
        ]),
        Value::Error("ERR interrupted: migration timeout".into())
    );
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    assert_eq!(s(&mut a, "GET k").as_text().unwrap(), "v");
    ok(&s(&mut a, "SET k w"));
    hold.join().unwrap();
}

fn ack(code: &str, msg: &str) -> Value {
    Value::Array(vec![
        Value::Bulk(b"SLOTSRESTORE-ASYNC-ACK".to_vec()),
        Value::Bulk(code.as_bytes().to_vec()),
        Value::Bulk(msg.as_bytes().to_vec()),
    ])
}

/// Sends `args` on a fresh connection, expects the -1 ACK `msg`, and checks
/// the server closed the connection.
fn target_refuses(srv: &Server, args: &[&[u8]], msg: &str) {
    let mut c = srv.conn();
    assert_eq!(
        c.send_value(args),
        ack("-1", msg),
        "{:?}",
        String::from_utf8_lossy(args[1])
    );
    let (_, closed) = c.read_until_close(Duration::from_millis(500), Duration::from_secs(5));
    assert!(closed, "connection not closed after -1");
}

#[test]
fn target_side_messages_and_errors() {
    let t = Server::start(&[]);
    let mut c = t.conn();
    let ra = |c: &mut Conn, args: &[&[u8]]| {
        let mut a: Vec<&[u8]> = vec![b"SLOTSRESTORE-ASYNC"];
        a.extend_from_slice(args);
        c.send_value(&a)
    };
    assert_eq!(ra(&mut c, &[b"delete", b"k"]), ack("0", "0"));
    assert_eq!(ra(&mut c, &[b"string", b"k", b"0", b"v"]), ack("0", "1"));
    assert_eq!(ra(&mut c, &[b"DELETE", b"k"]), ack("0", "1"));
    assert_eq!(
        ra(&mut c, &[b"list", b"l", b"100000", b"3", b"a", b"b"]),
        ack("0", "2")
    );
    assert_eq!(
        ra(&mut c, &[b"list", b"l", b"0", b"3", b"c"]),
        ack("0", "3")
    );
    assert_eq!(int(&s(&mut c, "PTTL l")), -1);
    assert_eq!(
        ra(&mut c, &[b"hash", b"h", b"0", b"2", b"f", b"1", b"g", b"2"]),
        ack("0", "2")
    );
    assert_eq!(
        s(&mut c, "OBJECT ENCODING h").as_text().unwrap(),
        "hashtable"
    );
    assert_eq!(
        ra(&mut c, &[b"dict", b"d", b"0", b"2", b"1", b"2"]),
        ack("0", "2")
    );
    assert_eq!(
        s(&mut c, "OBJECT ENCODING d").as_text().unwrap(),
        "hashtable"
    );
    let one = 1.5f64.to_le_bytes();
    let two = (-2.0f64).to_le_bytes();
    assert_eq!(
        ra(&mut c, &[b"zset", b"z", b"0", b"2", b"a", &one, b"b", &two]),
        ack("0", "2")
    );
    assert_eq!(
        s(&mut c, "ZRANGE z 0 -1 WITHSCORES"),
        Value::Array(
            ["b", "-2", "a", "1.5"]
                .iter()
                .map(|x| Value::Bulk(x.as_bytes().to_vec()))
                .collect()
        )
    );
    assert_eq!(
        s(&mut c, "OBJECT ENCODING z").as_text().unwrap(),
        "skiplist"
    );
    assert_eq!(ra(&mut c, &[b"expire", b"z", b"5000"]), ack("0", "1"));
    let pttl = int(&s(&mut c, "PTTL z"));
    assert!(pttl > 0 && pttl <= 5000);
    assert_eq!(ra(&mut c, &[b"expire", b"z", b"0"]), ack("0", "1"));
    assert_eq!(int(&s(&mut c, "PTTL z")), -1);
    // Empty chunk on an existing key: fine.
    assert_eq!(ra(&mut c, &[b"zset", b"z", b"0", b"2"]), ack("0", "2"));
    // object with a real DUMP payload.
    ok(&s(&mut c, "SET src payload"));
    let payload = s(&mut c, "DUMP src").as_bytes().unwrap().to_vec();
    assert_eq!(
        ra(&mut c, &[b"object", b"o", b"0", &payload]),
        ack("0", "1")
    );
    assert_eq!(s(&mut c, "GET o").as_text().unwrap(), "payload");

    let mut bad = payload.clone();
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"object", b"o2", b"0", &bad],
        "invalid payload checksum",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"object", b"o", b"0", &payload],
        "the specified key already exists (o)",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"string", b"o", b"0", b"x"],
        "the specified key already exists (o)",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"expire", b"nokey", b"0"],
        "the specified key doesn't exist (nokey)",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"list", b"nokey", b"0", b"1"],
        "the specified key doesn't exist (nokey)",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"string", b"x", b"-1", b"v"],
        "invalid TTL value (TTL=-1)",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"list", b"x", b"0", b"-5", b"a"],
        "invalid Hint value (Hint=-5)",
    );
    // Codis' check order: argument count and TTL before the form's name.
    for (args, msg) in [
        (
            &[&b"frob"[..], b"x"][..],
            "wrong number of arguments (argc=3,cmd=frob)",
        ),
        (&[b"frob", b"x", b"y"], "invalid TTL value (TTL=y)"),
        (
            &[b"frob", b"x", b"0", b"0"],
            "unknown command (argc=5,cmd=frob)",
        ),
        (
            &[b"delete", b"x", b"0"],
            "wrong number of arguments (argc=4,cmd=delete)",
        ),
        (
            &[b"expire", b"x", b"0", b"1"],
            "wrong number of arguments (argc=5,cmd=expire)",
        ),
    ] {
        let mut a: Vec<&[u8]> = vec![b"SLOTSRESTORE-ASYNC"];
        a.extend_from_slice(args);
        target_refuses(&t, &a, msg);
    }
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"string", b"x", b"0"],
        "wrong number of arguments (argc=4,cmd=string)",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"hash", b"x", b"0", b"1", b"f"],
        "wrong number of arguments (argc=6,cmd=hash)",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"list", b"o", b"0", b"1", b"a"],
        "wrong type (expect=1/9,got=0/8)",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC", b"hash", b"l", b"0", b"1", b"f", b"v"],
        "wrong type (expect=4/2,got=1/9)",
    );
    target_refuses(
        &t,
        &[
            b"SLOTSRESTORE-ASYNC",
            b"zset",
            b"zz",
            b"0",
            b"1",
            b"m",
            b"1.5",
        ],
        "invalid zset score ([0]), bad raw bits",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC-AUTH", b"pw"],
        "Client sent AUTH, but no password is set",
    );
    target_refuses(
        &t,
        &[b"SLOTSRESTORE-ASYNC-SELECT", b"99"],
        "invalid DB index (99)",
    );
    let mut c2 = t.conn();
    assert_eq!(
        c2.send_value(&["SLOTSRESTORE-ASYNC-SELECT", "2"]),
        ack("0", "OK")
    );
    assert_eq!(
        c2.send_value(&["SLOTSRESTORE-ASYNC", "string", "in2", "0", "v"]),
        ack("0", "1")
    );
    assert_eq!(int(&s(&mut c, "EXISTS in2")), 0);
    ok(&s(&mut c, "SELECT 2"));
    assert_eq!(int(&s(&mut c, "EXISTS in2")), 1);

    // An ACK from an ordinary client: error, then closed.
    let mut c3 = t.conn();
    assert_eq!(
        c3.send_value(&["SLOTSRESTORE-ASYNC-ACK", "0", "1"]),
        Value::Error("ERR invalid client, permission denied".into())
    );
    let (_, closed) = c3.read_until_close(Duration::from_millis(500), Duration::from_secs(5));
    assert!(closed);
}

#[test]
fn auth_and_select_with_requirepass() {
    let src = Server::start(&["--requirepass", "sekret"]);
    let dst = Server::start(&["--requirepass", "sekret"]);
    let mut a = src.conn();
    ok(&s(&mut a, "AUTH sekret"));
    ok(&s(&mut a, "SELECT 3"));
    let keys = make_data(&mut a, "pw", 500);
    let before = snapshots(&mut a, &keys);
    let (h, p) = host_port(&dst);
    let slot = slot_of(b"{pw}").to_string();
    assert_eq!(
        a.send_value(&[
            "SLOTSMGRTTAGSLOT-ASYNC",
            &h,
            &p,
            "5000",
            "50",
            "0",
            &slot,
            "0"
        ]),
        pair(keys.len() as i64, keys.len() as i64)
    );
    let mut b = dst.conn();
    ok(&s(&mut b, "AUTH sekret"));
    assert_eq!(int(&s(&mut b, "DBSIZE")), 0);
    ok(&s(&mut b, "SELECT 3"));
    assert_moved(&mut a, &mut b, &keys, &before);

    // A target with another password refuses: the batch fails, keys stay.
    let other = Server::start(&["--requirepass", "different"]);
    ok(&s(&mut a, "SET lone 1"));
    let (h2, p2) = host_port(&other);
    assert_eq!(
        a.send_value(&["SLOTSMGRTONE-ASYNC", &h2, &p2, "5000", "0", "0", "lone"]),
        Value::Error("ERR interrupted: connection closed".into())
    );
    assert_eq!(int(&s(&mut a, "EXISTS lone")), 1);
    // ... and the old connection to `dst` was replaced and is gone.
    assert_eq!(s(&mut a, "SLOTSMGRT-ASYNC-STATUS"), Value::NilArray);
}

/// Counters in 16 slots (16 tags × 40 keys); INCRs through the wrapper the
/// way the proxy forwards during semi-async migration, while the slots are
/// migrated with SLOTSMGRTTAGSLOT-ASYNC.
#[test]
fn concurrent_incr_load_during_migration() {
    concurrent_load(&[]);
}

/// The same on the multi-threaded runtime.
#[test]
fn concurrent_incr_load_during_migration_io_threads() {
    concurrent_load(&["--io-threads", "4"]);
}

fn concurrent_load(args: &[&str]) {
    let src = Server::start(args);
    let dst = Server::start(args);
    let mut a = src.conn();
    let tags: Vec<String> = (0..16).map(|i| format!("load{i}")).collect();
    let mut keys = Vec::new();
    let mut cmds = Vec::new();
    for t in &tags {
        for j in 0..40 {
            let k = format!("{{{t}}}c{j}");
            cmds.push(vec![b"SET".to_vec(), k.clone().into_bytes(), b"0".to_vec()]);
            keys.push(k);
        }
        // Something to chunk in every slot.
        cmds.push(vec![
            b"RPUSH".to_vec(),
            format!("{{{t}}}list").into_bytes(),
            b"a".to_vec(),
        ]);
    }
    tests::pipeline(&mut a, &cmds, usize::MAX);
    for t in &tags {
        fill(&mut a, "hash", &format!("{{{t}}}hash"), 2000);
    }
    let keys = Arc::new(keys);
    let done = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicI64::new(0));
    let retries = Arc::new(AtomicI64::new(0));
    let (sp, dp) = (src.port(), dst.port());
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (keys, done, total, retries) =
                (keys.clone(), done.clone(), total.clone(), retries.clone());
            thread::spawn(move || {
                let mut s = Conn::connect(sp).unwrap();
                let mut d = Conn::connect(dp).unwrap();
                let mut i = w * 7919;
                while !done.load(Ordering::Relaxed) {
                    i = (i * 31 + 17) % keys.len();
                    let k = keys[i].as_str();
                    loop {
                        let r = s.send_value(&["SLOTSMGRT-EXEC-WRAPPER", k, "INCR", k]);
                        let r = r.as_array().unwrap().to_vec();
                        match r[0].as_int().unwrap() {
                            2 => {
                                assert!(r[1].as_int().is_some(), "{r:?}");
                                break;
                            }
                            0 => {
                                let n = d.send_value(&["INCR", k]);
                                assert!(n.as_int().is_some(), "{n:?}");
                                break;
                            }
                            1 => {
                                retries.fetch_add(1, Ordering::Relaxed);
                                thread::sleep(Duration::from_millis(1));
                            }
                            c => panic!("code {c}: {r:?}"),
                        }
                    }
                    total.fetch_add(1, Ordering::Relaxed);
                    // A read through the wrapper: 2 (here, and then the
                    // counter is there) or 0 (moved; then it is on `dst`).
                    let r = s.send_value(&["SLOTSMGRT-EXEC-WRAPPER", k, "GET", k]);
                    let a = r.as_array().unwrap();
                    match a[0].as_int().unwrap() {
                        2 => assert!(matches!(a[1], Value::Bulk(_)), "{r:?}"),
                        0 => {
                            let n = d.send_value(&["GET", k]);
                            assert!(matches!(n, Value::Bulk(_)), "{k} on neither: {n:?}");
                        }
                        _ => panic!("{r:?}"),
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    for t in &tags {
        let slot = slot_of(format!("{{{t}}}").as_bytes()) as usize;
        drain_slot(
            &mut a,
            "SLOTSMGRTTAGSLOT-ASYNC",
            &dst,
            slot,
            &["5000", "50", "2048"],
        );
    }
    let elapsed = t0.elapsed();
    thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let mut b = dst.conn();
    let mut sum = 0i64;
    for k in keys.iter() {
        let on_src = int(&v(&mut a, &[b"EXISTS", k.as_bytes()]));
        let on_dst = int(&v(&mut b, &[b"EXISTS", k.as_bytes()]));
        assert_eq!((on_src, on_dst), (0, 1), "{k}");
        sum += s(&mut b, &format!("GET {k}"))
            .as_text()
            .unwrap()
            .parse::<i64>()
            .unwrap();
    }
    assert_eq!(
        sum,
        total.load(Ordering::Relaxed),
        "lost or duplicated INCRs"
    );
    assert_eq!(int(&s(&mut a, "DBSIZE")), 0);
    eprintln!(
        "concurrent load: 16 slots in {elapsed:?}, {} INCRs, {} code-1 retries",
        total.load(Ordering::Relaxed),
        retries.load(Ordering::Relaxed)
    );
}

#[test]
fn target_killed_mid_batch_then_new_target_converges() {
    let src = Server::start(&[]);
    let dst = Server::start(&[]);
    let mut a = src.conn();
    let keys = make_data(&mut a, "kill", 5000);
    let before = snapshots(&mut a, &keys);
    let slot = slot_of(b"{kill}") as usize;
    let (h, p) = host_port(&dst);
    let sp = src.port();
    let slot_s = slot.to_string();
    let batch = thread::spawn(move || {
        let mut c = Conn::connect(sp).unwrap();
        c.set_timeout(Duration::from_secs(60));
        c.send_value(&[
            "SLOTSMGRTTAGSLOT-ASYNC",
            &h,
            &p,
            "20000",
            "1",
            "1",
            &slot_s,
            "0",
        ])
    });
    wait_status_busy(&mut a);
    thread::sleep(Duration::from_millis(100));
    let status = std::process::Command::new("kill")
        .args(["-9", &dst.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        batch.join().unwrap(),
        Value::Error("ERR interrupted: connection closed".into())
    );
    // Nothing was deleted on the source.
    let after = snapshots(&mut a, &keys);
    for ((k, x), y) in keys.iter().zip(&after).zip(&before) {
        assert!(x.0 == y.0 && x.1 == y.1, "{k} changed on the source");
    }
    let dst2 = Server::start(&[]);
    drain_slot(
        &mut a,
        "SLOTSMGRTTAGSLOT-ASYNC",
        &dst2,
        slot,
        &["5000", "100", "0"],
    );
    let mut b = dst2.conn();
    assert_moved(&mut a, &mut b, &keys, &before);
}

#[test]
fn many_small_keys_timing() {
    let src = Server::start(&[]);
    let dst = Server::start(&[]);
    let mut a = src.conn();
    let n = 100_000;
    let mut cmds = Vec::new();
    for i in (0..n).step_by(1000) {
        let mut c = vec![b"MSET".to_vec()];
        for j in i..i + 1000 {
            c.push(format!("{{small}}k{j}").into_bytes());
            c.push(b"value".to_vec());
        }
        cmds.push(c);
    }
    tests::pipeline(&mut a, &cmds, usize::MAX);
    let slot = slot_of(b"{small}") as usize;
    let t0 = Instant::now();
    let calls = drain_slot(
        &mut a,
        "SLOTSMGRTTAGSLOT-ASYNC",
        &dst,
        slot,
        &["30000", "0", "0"],
    );
    eprintln!(
        "100k keys of one tag in one batch: {:?} ({calls} calls)",
        t0.elapsed()
    );
    let mut b = dst.conn();
    assert_eq!(int(&s(&mut b, "DBSIZE")), n as i64);
    assert_eq!(int(&s(&mut a, "DBSIZE")), 0);
    // The same with SLOT (100 keys per batch by default) on 20k keys.
    let mut cmds = Vec::new();
    for i in (0..20_000).step_by(1000) {
        let mut c = vec![b"MSET".to_vec()];
        for j in i..i + 1000 {
            c.push(format!("{{other}}k{j}").into_bytes());
            c.push(b"value".to_vec());
        }
        cmds.push(c);
    }
    tests::pipeline(&mut a, &cmds, usize::MAX);
    let slot = slot_of(b"{other}") as usize;
    let t0 = Instant::now();
    let calls = drain_slot(
        &mut a,
        "SLOTSMGRTSLOT-ASYNC",
        &dst,
        slot,
        &["30000", "0", "0"],
    );
    eprintln!("20k keys, numkeys 100: {:?} ({calls} calls)", t0.elapsed());
    assert_eq!(int(&s(&mut b, "DBSIZE")), n as i64 + 20_000);
}

#[test]
fn dropped_idle_connection_is_replaced() {
    let src = Server::start(&[]);
    let dst = Server::start(&[]);
    let mut a = src.conn();
    let mut b = dst.conn();
    let (h, p) = host_port(&dst);
    ok(&s(&mut a, "SET k1 v"));
    let one =
        |a: &mut Conn, k: &str| a.send_value(&["SLOTSMGRTONE-ASYNC", &h, &p, "1000", "0", "0", k]);
    assert_eq!(one(&mut a, "k1"), Value::Int(1));
    assert!(s(&mut a, "SLOTSMGRT-ASYNC-STATUS").as_array().is_some());
    // The target drops the migration connection (every client but us).
    let me = int(&s(&mut b, "CLIENT ID"));
    let list = s(&mut b, "CLIENT LIST").as_text().unwrap();
    for line in list.lines() {
        let id: i64 = line
            .split(' ')
            .find_map(|f| f.strip_prefix("id="))
            .unwrap()
            .parse()
            .unwrap();
        if id != me {
            assert_eq!(int(&s(&mut b, &format!("CLIENT KILL ID {id}"))), 1);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while s(&mut a, "SLOTSMGRT-ASYNC-STATUS") != Value::NilArray {
        assert!(Instant::now() < deadline, "closed connection still cached");
        thread::sleep(Duration::from_millis(10));
    }
    ok(&s(&mut a, "SET k2 v"));
    assert_eq!(one(&mut a, "k2"), Value::Int(1));
    assert_eq!(int(&s(&mut b, "EXISTS k1 k2")), 2);
}
