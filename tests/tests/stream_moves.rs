//! Streams leaving a server: DUMP / RESTORE with redis-server 7.0.15 both
//! ways (groups, PELs, consumers, deleted entries, empty streams with
//! groups, LZF-compressed and int-encoded strings), RDB files (SAVE and a
//! restart, redis-server loading ours), and slot migration: a big stream
//! with two groups moved in chunks between two of our servers while another
//! client keeps both answering, and a codis-server 3.2 stand-in (a fake
//! target answering as Codis 3.2 does) refusing streams with a clear error,
//! async and sync, while other types still go through.
//!
//! Streams are built on redis-server and RESTOREd here (the tests that need
//! it skip without redis-server, unless `REQUIRE_REDIS=1`), except the
//! Codis 3.2 ones, which use a payload captured from redis-server 7.0.15.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use protocol::rdb::crc64;
use protocol::slot::slot_of;
use tests::data::{Content, read_key};
use tests::{Conn, RedisServer, Server, Value, escape};

fn bulk(v: Value) -> Vec<u8> {
    match v {
        Value::Bulk(b) => b,
        other => panic!("expected a bulk, got {other:?}"),
    }
}

fn ok(v: Value) {
    assert_eq!(v, Value::Simple("OK".into()));
}

fn dump(c: &mut Conn, k: &str) -> Vec<u8> {
    bulk(c.send_value(&["DUMP", k]))
}

fn restore(c: &mut Conn, k: &str, payload: &[u8]) {
    let r = c.send(&[b"RESTORE", k.as_bytes(), b"0", payload]);
    assert_eq!(r, b"+OK\r\n", "RESTORE {k}: {}", escape(&r));
}

fn args(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// Builds the test streams on `r` (a redis-server); returns their keys.
fn build_streams(r: &mut Conn, tag: &str) -> Vec<String> {
    let k = |n: &str| format!("{{{tag}}}:{n}");
    let mut cmds = Vec::new();
    // Groups, PEL, consumers, deleted entries, a consumer without pending
    // entries, a group behind, one at the end, an int-encoded group name.
    let s = k("groups");
    for i in 1..=600u64 {
        let (a, b) = (i.to_string(), (i * 7).to_string());
        cmds.push(args(&[
            "XADD",
            &s,
            &format!("{i}-1"),
            "a",
            &a,
            "b",
            &b,
            "c",
            "x",
        ]));
    }
    for i in (5..600).step_by(13) {
        cmds.push(args(&["XDEL", &s, &format!("{i}-1")]));
    }
    cmds.push(args(&["XGROUP", "CREATE", &s, "g1", "0"]));
    cmds.push(args(&["XGROUP", "CREATE", &s, "123", "300-1"]));
    cmds.push(args(&["XGROUP", "CREATE", &s, "atend", "$"]));
    for (who, n) in [("alice", "150"), ("bob", "60"), ("456", "7")] {
        cmds.push(args(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            who,
            "COUNT",
            n,
            "STREAMS",
            &s,
            ">",
        ]));
    }
    cmds.push(args(&[
        "XREADGROUP",
        "GROUP",
        "123",
        "zed",
        "COUNT",
        "9",
        "STREAMS",
        &s,
        ">",
    ]));
    cmds.push(args(&["XACK", &s, "g1", "1-1", "2-1", "3-1", "100-1"]));
    cmds.push(args(&["XCLAIM", &s, "g1", "bob", "0", "10-1", "11-1"]));
    cmds.push(args(&["XGROUP", "CREATECONSUMER", &s, "g1", "carol"]));
    // Entries deleted while pending (alice has them).
    cmds.push(args(&["XDEL", &s, "20-1", "21-1"]));
    // An empty stream with groups, one whose entries were all deleted, a
    // trimmed one (a node with deleted entries at its head), one with
    // compressible values and changing fields.
    let e = k("emptygroups");
    cmds.push(args(&["XGROUP", "CREATE", &e, "g", "$", "MKSTREAM"]));
    cmds.push(args(&["XGROUP", "CREATECONSUMER", &e, "g", "c"]));
    let gone = k("allgone");
    for i in 1..=3 {
        cmds.push(args(&["XADD", &gone, &format!("{i}-0"), "f", "v"]));
    }
    cmds.push(args(&["XDEL", &gone, "1-0", "2-0", "3-0"]));
    let t = k("trimmed");
    for i in 1..=1000 {
        cmds.push(args(&["XADD", &t, &format!("{i}-0"), "f", &i.to_string()]));
    }
    cmds.push(args(&["XTRIM", &t, "MAXLEN", "333"]));
    let big = k("bigvals");
    for i in 0..300 {
        let v = format!("{i:05}").repeat(40);
        let f = format!("field{}", i % 4);
        cmds.push(args(&["XADD", &big, "*", &f, &v, "other", "1"]));
    }
    tests::pipeline(r, &cmds, 256);
    vec![s, e, gone, t, big]
}

fn content(c: &mut Conn, k: &str) -> Content {
    read_key(c, k.as_bytes())
        .unwrap_or_else(|| panic!("{k}: missing"))
        .content
}

/// Redis' streams RESTOREd on ours, DUMPed by ours and RESTOREd on redis
/// again come back byte for byte (redis' own DUMP of both), and ours holds
/// the same stream (TYPE, OBJECT ENCODING, the normalised body); SCAN TYPE,
/// SORT and MEMORY USAGE see them as Redis does.
#[test]
fn stream_payloads_travel_both_ways_with_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let ours = Server::start(&[]);
    let (mut r, mut o) = (redis.conn(), ours.conn());
    let keys = build_streams(&mut r, "t");
    for k in &keys {
        let p = dump(&mut r, k);
        restore(&mut o, k, &p);
        assert_eq!(
            o.value(&format!("TYPE {k}")),
            Value::Simple("stream".into())
        );
        assert_eq!(
            o.value(&format!("OBJECT ENCODING {k}")),
            Value::Bulk(b"stream".to_vec())
        );
        let want = content(&mut r, k);
        assert_eq!(content(&mut o, k), want, "{k} on ours");
        let back = format!("{k}:back");
        restore(&mut r, &back, &dump(&mut o, k));
        assert_eq!(
            dump(&mut r, &back),
            p,
            "{k}: redis' DUMP after the round trip"
        );
        // Ours again from its own payload.
        let again = format!("{k}:again");
        let own = dump(&mut o, k);
        restore(&mut o, &again, &own);
        assert_eq!(dump(&mut o, &again), dump(&mut o, k));
        let mem = o.value(&format!("MEMORY USAGE {k}")).as_int().unwrap();
        assert!(mem > 0, "{k}: MEMORY USAGE {mem}");
        let sort = o.cmd(&format!("SORT {k}"));
        assert!(sort.starts_with(b"-WRONGTYPE"), "{}", escape(&sort));
    }
    // MEMORY USAGE grows with the PEL (redis counts it too).
    let groups = &keys[0];
    let (m_groups, m_trimmed) = (
        o.value(&format!("MEMORY USAGE {groups}")).as_int().unwrap(),
        o.value(&format!("MEMORY USAGE {}", keys[3]))
            .as_int()
            .unwrap(),
    );
    assert!(m_groups > m_trimmed, "{m_groups} vs {m_trimmed}");
    // SCAN TYPE stream finds exactly the streams.
    ok(o.value("SET plain v"));
    let mut found = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let v = o.value(&format!("SCAN {cursor} TYPE stream COUNT 1000"));
        let [c, ks] = v.as_array().unwrap() else {
            panic!("{v:?}")
        };
        found.extend(ks.as_array().unwrap().iter().map(|k| k.as_text().unwrap()));
        cursor = c.as_text().unwrap();
        if cursor == "0" {
            break;
        }
    }
    found.sort();
    let mut want: Vec<String> = keys
        .iter()
        .flat_map(|k| [k.clone(), format!("{k}:again")])
        .collect();
    want.sort();
    assert_eq!(found, want);
}

/// SAVE and a restart keep every stream as it was; redis-check-rdb
/// accepts the file and redis-server loads it to the same streams.
#[test]
fn rdb_save_and_restart_keep_streams() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut r = redis.conn();
    let keys = build_streams(&mut r, "rdb");
    let want: Vec<Content> = keys.iter().map(|k| content(&mut r, k)).collect();
    let mut ours = Server::start_in(dir.path(), &["--save", ""]);
    {
        let mut o = ours.conn();
        for k in &keys {
            restore(&mut o, k, &dump(&mut r, k));
        }
        ok(o.value("SAVE"));
        ours.shutdown_with(o, &["SHUTDOWN", "NOSAVE"]);
    }
    let ours = Server::start_in(dir.path(), &["--save", ""]);
    let mut o = ours.conn();
    for (k, w) in keys.iter().zip(&want) {
        assert_eq!(&content(&mut o, k), w, "{k} after a restart");
    }
    let file = dir.path().join("dump.rdb");
    if let Some(check) = tests::redis_tool("redis-check-rdb") {
        let out = std::process::Command::new(check)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-check-rdb: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let rdir = tempfile::tempdir().unwrap();
    std::fs::copy(&file, rdir.path().join("dump.rdb")).unwrap();
    let Some(loaded) = RedisServer::start_in(rdir.path(), &["--dbfilename", "dump.rdb"]) else {
        return;
    };
    let mut l = loaded.conn();
    for (k, w) in keys.iter().zip(&want) {
        assert_eq!(&content(&mut l, k), w, "{k} loaded by redis-server");
    }
}

/// `XINFO STREAM key FULL`, consumers' seen times blanked (commands
/// cannot set them: a replay gives its own).
fn xinfo_full(c: &mut Conn, key: &str) -> Value {
    fn blank(v: &mut Value) {
        if let Value::Array(items) = v {
            let mut i = 0;
            while i < items.len() {
                if items[i] == Value::Bulk(b"seen-time".to_vec()) && i + 1 < items.len() {
                    items[i + 1] = Value::Nil;
                    i += 2;
                    continue;
                }
                blank(&mut items[i]);
                i += 1;
            }
        }
    }
    let mut v = c.send_value(&["XINFO", "STREAM", key, "FULL", "COUNT", "0"]);
    assert!(!v.is_error(), "{key}: {v:?}");
    blank(&mut v);
    v
}

/// Panics with the first difference between two replies (they can be
/// long).
#[track_caller]
fn assert_same_reply(got: &Value, want: &Value, what: &str) {
    if got == want {
        return;
    }
    let (g, w) = (format!("{got:?}"), format!("{want:?}"));
    let at = g
        .bytes()
        .zip(w.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(w.len()));
    let from = at.saturating_sub(200);
    panic!(
        "{what}: replies differ at {at}:\n  got  …{}\n  want …{}",
        &g[from..(at + 200).min(g.len())],
        &w[from..(at + 200).min(w.len())]
    );
}

/// Streams built here (XADD, XDEL, XTRIM, groups, XREADGROUP, XCLAIM)
/// RESTOREd on redis-server are the same streams there: XINFO STREAM
/// FULL, the normalised body.
#[test]
fn streams_built_here_restore_on_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let ours = Server::start(&[]);
    let (mut r, mut o) = (redis.conn(), ours.conn());
    for k in build_streams(&mut o, "here") {
        restore(&mut r, &k, &dump(&mut o, &k));
        assert_eq!(content(&mut r, &k), content(&mut o, &k), "{k}");
        assert_eq!(
            r.send_value(&["XINFO", "STREAM", &k, "FULL", "COUNT", "0"]),
            o.send_value(&["XINFO", "STREAM", &k, "FULL", "COUNT", "0"]),
            "{k}"
        );
    }
}

/// An AOF of plain commands (no RDB preamble), written at every change.
const AOF_COMMANDS: [&str; 6] = [
    "--appendonly",
    "yes",
    "--aof-use-rdb-preamble",
    "no",
    "--appendfsync",
    "always",
];

/// The AOF (`aof-use-rdb-preamble no`) keeps streams with groups: after a
/// restart that replays the commands as they came, and after BGREWRITEAOF
/// (the commands form) and a restart, XINFO STREAM FULL is what it was
/// (consumers' seen times aside).
#[test]
fn aof_without_preamble_keeps_streams() {
    let dir = tempfile::tempdir().unwrap();
    let conf = AOF_COMMANDS;
    let srv = Server::start_in(dir.path(), &conf);
    let mut c = srv.conn();
    let keys = build_streams(&mut c, "aof");
    let before: Vec<Value> = keys.iter().map(|k| xinfo_full(&mut c, k)).collect();
    drop(c);
    srv.kill9();
    for round in ["replayed", "rewritten"] {
        let srv = Server::start_in(dir.path(), &conf);
        let mut c = srv.conn();
        for (k, b) in keys.iter().zip(&before) {
            assert_same_reply(&xinfo_full(&mut c, k), b, &format!("{k}, {round}"));
        }
        if round == "replayed" {
            let n = |c: &mut Conn| {
                let info = String::from_utf8(c.cmd("INFO persistence")).unwrap();
                info.lines()
                    .find_map(|l| l.strip_prefix("aof_rewrites:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap()
            };
            let done = n(&mut c);
            assert_eq!(
                c.cmd("BGREWRITEAOF"),
                b"+Background append only file rewriting started\r\n"
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            while n(&mut c) == done {
                assert!(Instant::now() < deadline, "no rewrite");
                thread::sleep(Duration::from_millis(20));
            }
            let info = String::from_utf8(c.cmd("INFO persistence")).unwrap();
            assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
        }
        drop(c);
        srv.kill9();
    }
}

/// Streams that arrive in chunks reach the target's AOF as commands that
/// rebuild them: after a restart from its AOF alone the target holds what
/// the source had (XINFO STREAM FULL; consumers' seen times aside), pending
/// entries of deleted entries included.
#[test]
fn chunked_streams_reach_the_targets_aof() {
    let dir = tempfile::tempdir().unwrap();
    let conf = AOF_COMMANDS;
    let src = Server::start(&[]);
    let dst = Server::start_in(dir.path(), &conf);
    let mut s = src.conn();
    let mut keys = build_streams(&mut s, "tomove");
    restore(&mut s, "{tomove}:redis", &stream_payload());
    keys.push("{tomove}:redis".into());
    let before: Vec<Value> = keys.iter().map(|k| xinfo_full(&mut s, k)).collect();
    let line = format!(
        "SLOTSMGRTTAGONE-ASYNC 127.0.0.1 {} 10000 8 0 {}",
        dst.port(),
        keys[0]
    );
    assert_eq!(s.value(&line), Value::Int(keys.len() as i64));
    let mut d = dst.conn();
    for (k, b) in keys.iter().zip(&before) {
        assert_same_reply(&xinfo_full(&mut d, k), b, &format!("{k} on the target"));
    }
    drop(d);
    dst.kill9();
    let dst = Server::start_in(dir.path(), &conf);
    let mut d = dst.conn();
    for (k, b) in keys.iter().zip(&before) {
        assert_same_reply(
            &xinfo_full(&mut d, k),
            b,
            &format!("{k} after the target's restart"),
        );
    }
}

// ---------------------------------------------------------------------------
// A big stream moved in chunks while both servers keep answering
// ---------------------------------------------------------------------------

/// Entries of the big stream: `$STREAM_MOVE_ENTRIES`, else 1M, or 300k
/// when our server builds it (XADDs one by one; slower in a debug build).
fn big_entries(on_redis: bool) -> u64 {
    std::env::var("STREAM_MOVE_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if on_redis { 1_000_000 } else { 300_000 })
}

/// Builds the big stream `key` (on redis-server or ours): `n` entries of 3 small
/// fields, every 97th deleted, group g1 with a PEL of n/5 + n/10 entries
/// over alice and bob (some acknowledged, a consumer without any), group
/// g2 with n/20 entries pending for carol.
fn build_big(r: &mut Conn, key: &str, n: u64) {
    let mut cmds = Vec::with_capacity(n as usize);
    for i in 1..=n {
        let (a, b) = ((i % 1000).to_string(), (i % 7).to_string());
        cmds.push(args(&[
            "XADD",
            key,
            &format!("{i}-0"),
            "a",
            &a,
            "b",
            &b,
            "c",
            "z",
        ]));
    }
    tests::pipeline(r, &cmds, 4096);
    let mut cmds = Vec::new();
    for i in (97..=n).step_by(97) {
        cmds.push(args(&["XDEL", key, &format!("{i}-0")]));
    }
    cmds.push(args(&["XGROUP", "CREATE", key, "g1", "0"]));
    cmds.push(args(&["XGROUP", "CREATE", key, "g2", "0"]));
    cmds.push(args(&["XGROUP", "CREATECONSUMER", key, "g1", "idle"]));
    tests::pipeline(r, &cmds, 4096);
    // Read in pieces of 1000 (small replies).
    let mut cmds = Vec::new();
    for (g, who, total) in [
        ("g1", "alice", n / 5),
        ("g1", "bob", n / 10),
        ("g2", "carol", n / 20),
    ] {
        for _ in 0..total.div_ceil(1000) {
            cmds.push(args(&[
                "XREADGROUP",
                "GROUP",
                g,
                who,
                "COUNT",
                "1000",
                "STREAMS",
                key,
                ">",
            ]));
        }
    }
    for i in (1..n / 5).step_by(11) {
        cmds.push(args(&["XACK", key, "g1", &format!("{i}-0")]));
    }
    tests::pipeline(r, &cmds, 64);
}

/// Keeps issuing PING and GET to each port until `stop`; returns the
/// slowest round trip and the number made.
fn pinger(ports: Vec<u16>, stop: Arc<AtomicBool>) -> thread::JoinHandle<(Duration, u64)> {
    thread::spawn(move || {
        let mut conns: Vec<Conn> = ports.iter().map(|&p| Conn::connect(p).unwrap()).collect();
        let (mut worst, mut n) = (Duration::ZERO, 0u64);
        while !stop.load(Ordering::Relaxed) {
            for c in &mut conns {
                for cmd in [&["PING"][..], &["GET", "probe:key"][..]] {
                    let t = Instant::now();
                    let r = c.send(cmd);
                    worst = worst.max(t.elapsed());
                    assert!(!r.starts_with(b"-"), "{}", escape(&r));
                    n += 1;
                }
            }
            thread::sleep(Duration::from_millis(1));
        }
        (worst, n)
    })
}

/// A big stream (1M entries, 300k without redis-server) with two groups, PELs and consumers moves by
/// SLOTSMGRTTAGSLOT-ASYNC in many bounded chunks; meanwhile PING / GET on
/// both servers never take more than 200 ms, and the target ends with the
/// very stream the source had. The stream is built on redis-server and
/// RESTOREd (faster), or on the source itself without redis-server.
#[test]
fn big_stream_moves_async_while_both_serve() {
    let redis = tests::which("redis-server").and_then(|_| RedisServer::start());
    let n = big_entries(redis.is_some());
    let key = "{bigstream}:s";
    let slot = slot_of(key.as_bytes());
    let (src, dst) = (Server::start(&[]), Server::start(&[]));
    let (mut s, mut d) = (src.conn(), dst.conn());
    s.set_timeout(Duration::from_secs(120));
    d.set_timeout(Duration::from_secs(120));
    let t0 = Instant::now();
    match redis {
        Some(redis) => {
            let mut r = redis.conn();
            r.set_timeout(Duration::from_secs(120));
            build_big(&mut r, key, n);
            let payload = dump(&mut r, key);
            restore(&mut s, key, &payload);
            assert_eq!(content(&mut s, key), content(&mut r, key), "restored");
        }
        None => build_big(&mut s, key, n),
    }
    let built = t0.elapsed();
    let want = content(&mut s, key);
    let Content::Stream(body) = &want else {
        panic!("not a stream")
    };
    assert!(
        body.length > n / 2 && body.groups == 2,
        "{} entries",
        body.length
    );
    let stop = Arc::new(AtomicBool::new(false));
    let ping = pinger(vec![src.port(), dst.port()], stop.clone());
    thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    // maxbulks 200, maxbytes 512 KiB: Codis' defaults.
    let moved =
        tests::data::drain_slot_async(&mut s, dst.port(), 60_000, 200, 512 * 1024, slot, 10);
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (worst, pings) = ping.join().unwrap();
    assert_eq!(moved, 1);
    eprintln!(
        "stream of {n} entries ({} nodes, built in {built:?}): moved in {took:?}; \
         {pings} PING/GET, slowest {worst:?}",
        body.nodes,
    );
    assert!(
        worst < Duration::from_millis(200),
        "a PING/GET took {worst:?}"
    );
    assert_eq!(
        s.value(&format!("EXISTS {key}")),
        Value::Int(0),
        "left the source"
    );
    assert_eq!(
        d.value(&format!("PTTL {key}")),
        Value::Int(-1),
        "no TTL left"
    );
    let got = content(&mut d, key);
    assert!(got == want, "{}", want.diff(&got).unwrap_or_default());
}

// ---------------------------------------------------------------------------
// A codis-server 3.2 target
// ---------------------------------------------------------------------------

/// DUMP of a stream by redis-server 7.0.15 (rdbcompression no): entries
/// 1-1, 1-3 (1-2 deleted), groups `123` and `g1`, PEL, three consumers.
const STREAM_BODY: &str = "130110000000000000000100000000000000013535000000160002010101010181610200010201000\
     100010101040103010001010102010401000100010201010181620203010601ff02010301010102\
     0302c07b010381ffffffffffffffff0000026731010303030000000000000001000000000000000\
     176424c51a2010000010000000000000001000000000000000276424c51a20100000100000000000\
     00001000000000000000376424c51a2010000010305616c69636576424c51a20100000200000000\
     0000000100000000000000010000000000000001000000000000000203626f6276424c51a201000\
     00100000000000000010000000000000003056361726f6c76424c51a201000000";

fn stream_payload() -> Vec<u8> {
    let hex: String = STREAM_BODY.split_whitespace().collect();
    let mut p: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    p.extend_from_slice(&10u16.to_le_bytes());
    let c = crc64(&p);
    p.extend_from_slice(&c.to_le_bytes());
    p
}

/// What the fake target received, one command per entry.
type Log = Arc<Mutex<Vec<Vec<Vec<u8>>>>>;

/// Reads one RESP multibulk command; None at EOF.
fn read_command(r: &mut BufReader<TcpStream>) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut argv = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut b = vec![0u8; len + 2];
        r.read_exact(&mut b).ok()?;
        b.truncate(len);
        argv.push(b);
    }
    Some(argv)
}

fn ack(code: &str, msg: &str) -> Vec<u8> {
    tests::resp::encode_command(&["SLOTSRESTORE-ASYNC-ACK", code, msg])
}

/// The RDB types Redis 3.2 knows (`rdbIsObjectType`).
fn codis32_type(t: u8) -> bool {
    matches!(t, 0..=4 | 9..=14)
}

/// Codis 3.2's answer to one command (codis.md §2.5, §2.7.5), and whether
/// it then closes the connection.
fn codis32_answer(argv: &[Vec<u8>]) -> (Vec<u8>, bool) {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_uppercase();
    let sub = argv
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .unwrap_or_default();
    let argc = argv.len();
    match name.as_str() {
        "SELECT" | "AUTH" => (b"+OK\r\n".to_vec(), false),
        "SLOTSRESTORE" => {
            let ok = argv[1..]
                .chunks(3)
                .all(|t| t.len() == 3 && t[2].first().is_some_and(|&b| codis32_type(b)));
            if ok {
                (b"+OK\r\n".to_vec(), false)
            } else {
                (b"-ERR Bad data format\r\n".to_vec(), false)
            }
        }
        "SLOTSRESTORE-ASYNC-SELECT" | "SLOTSRESTORE-ASYNC-AUTH" => (ack("0", "OK"), false),
        "SLOTSRESTORE-ASYNC" => {
            let unknown = format!("unknown command (argc={argc},cmd={sub})");
            match sub.as_str() {
                "delete" => (ack("0", "0"), false),
                "expire" | "string" => (ack("0", "1"), false),
                "object" if argv[4].first().is_some_and(|&b| codis32_type(b)) => {
                    (ack("0", "1"), false)
                }
                "object" => (ack("-1", "invalid payload type"), true),
                "list" | "hash" | "dict" | "zset" => (ack("0", "1"), false),
                _ if argc < 5 => (
                    ack(
                        "-1",
                        &format!("wrong number of arguments (argc={argc},cmd={sub})"),
                    ),
                    true,
                ),
                _ => (ack("-1", &unknown), true),
            }
        }
        _ => (b"-ERR unknown command\r\n".to_vec(), false),
    }
}

/// A TCP server answering as codis-server 3.2 would the commands a
/// migration sends; logs them.
fn fake_codis32() -> (u16, Log) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let log2 = log.clone();
    thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            let log = log2.clone();
            thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                while let Some(argv) = read_command(&mut r) {
                    let (reply, close) = codis32_answer(&argv);
                    log.lock().unwrap().push(argv);
                    if w.write_all(&reply).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (port, log)
}

fn words(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .map(|a| {
            a.iter()
                .take(3)
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// To a codis-server 3.2 target, an async batch holding a stream fails
/// naming it (the probe is the only stream message sent, before anything
/// of the stream) and keeps every key; the same batch without the stream
/// goes through. Sync migration names the refused stream too, and moves
/// other keys as before.
#[test]
fn codis32_target_refuses_streams_clearly() {
    let ours = Server::start(&[]);
    let mut o = ours.conn();
    let p = stream_payload();
    restore(&mut o, "{t}s", &p);
    ok(o.value("SET {t}a 1"));
    let (port, log) = fake_codis32();
    let port_s = port.to_string();
    // Async, the stream with a string of its tag group.
    let r = o.send(&[
        "SLOTSMGRTTAGONE-ASYNC",
        "127.0.0.1",
        &port_s,
        "5000",
        "100",
        "0",
        "{t}s",
    ]);
    let text = String::from_utf8_lossy(&r).into_owned();
    assert!(
        text.starts_with(&format!(
            "-ERR interrupted: target 127.0.0.1:{port} cannot take streams"
        )),
        "{text}"
    );
    assert!(
        text.contains("unknown command (argc=6,cmd=stream)"),
        "{text}"
    );
    assert!(text.contains("stream '{t}s' not migrated"), "{text}");
    assert_eq!(o.value("EXISTS {t}s {t}a"), Value::Int(2), "both kept");
    let sent = words(&log);
    let probe = sent
        .iter()
        .position(|w| w == "SLOTSRESTORE-ASYNC stream {t}s")
        .unwrap();
    assert_eq!(probe, sent.len() - 1, "nothing after the probe: {sent:?}");
    assert!(
        !sent.iter().any(|w| w == "SLOTSRESTORE-ASYNC delete {t}s"),
        "{sent:?}"
    );
    // Without the stream the same target takes the batch.
    let r = o.value(&format!(
        "SLOTSMGRTONE-ASYNC 127.0.0.1 {port} 5000 100 0 {{t}}a"
    ));
    assert_eq!(r, Value::Int(1));
    assert_eq!(o.value("EXISTS {t}a"), Value::Int(0));
    // Sync: the stream's SLOTSRESTORE is refused with Codis' words, ours
    // name the stream; a string still moves.
    ok(o.value("SET {t}b 2"));
    let r = o.send(&["SLOTSMGRTONE", "127.0.0.1", &port_s, "5000", "{t}s"]);
    let text = String::from_utf8_lossy(&r).into_owned();
    assert!(
        text.starts_with(
            "-ERR error on slotsrestore, migration failed: the target cannot take streams"
        ),
        "{text}"
    );
    assert!(
        text.contains("'ERR Bad data format'") && text.contains("'{t}s'"),
        "{text}"
    );
    assert_eq!(o.value("EXISTS {t}s"), Value::Int(1));
    assert_eq!(
        o.value(&format!("SLOTSMGRTONE 127.0.0.1 {port} 5000 {{t}}b")),
        Value::Int(1)
    );
    assert_eq!(o.value("EXISTS {t}b"), Value::Int(0));
}

/// Between two of ours the same small stream moves both ways (as `object`
/// with the defaults, in chunks with maxbulks 4), sync and async, and
/// arrives identical.
#[test]
fn small_stream_moves_between_ours() {
    let (a, b) = (Server::start(&[]), Server::start(&[]));
    let (mut ca, mut cb) = (a.conn(), b.conn());
    let p = stream_payload();
    restore(&mut ca, "{m}s", &p);
    assert_eq!(ca.value("PEXPIRE {m}s 500000"), Value::Int(1));
    let want = content(&mut ca, "{m}s");
    let hops: [(&str, &str); 4] = [
        (
            "SLOTSMGRTTAGONE-ASYNC 127.0.0.1 {port} 5000 0 0 {m}s",
            "a->b async object",
        ),
        (
            "SLOTSMGRTTAGONE-ASYNC 127.0.0.1 {port} 5000 4 0 {m}s",
            "b->a async chunks",
        ),
        ("SLOTSMGRTTAGONE 127.0.0.1 {port} 5000 {m}s", "a->b sync"),
        (
            "SLOTSMGRTTAGONE-ASYNC 127.0.0.1 {port} 5000 4 64 {m}s",
            "b->a async, 64 bytes",
        ),
    ];
    for (i, (cmd, what)) in hops.iter().enumerate() {
        let (from, to, port) = if i % 2 == 0 {
            (&mut ca, &mut cb, b.port())
        } else {
            (&mut cb, &mut ca, a.port())
        };
        let line = cmd.replace("{port}", &port.to_string());
        assert_eq!(from.value(&line), Value::Int(1), "{what}");
        assert_eq!(from.value("EXISTS {m}s"), Value::Int(0), "{what}");
        assert_eq!(content(to, "{m}s"), want, "{what}");
        let ttl = to.value("PTTL {m}s").as_int().unwrap();
        assert!(ttl > 400_000 && ttl <= 500_000, "{what}: {ttl}");
    }
}
