//! Codis' inspection commands, which redis-server does not have, checked
//! against the verified values of codis.md §1.3 (slot hashing test vectors)
//! and §2.4 (SLOTSHASHKEY / SLOTSINFO replies and error texts).

use tests::{Server, assert_reply};

/// (key bytes, slot) from codis.md §1.3.
const VECTORS: &[(&[u8], i64)] = &[
    (b"a", 579),
    (b"b", 1017),
    (b"c", 879),
    (b"foo", 289),
    (b"hello", 646),
    (b"12345", 540),
    (b"k1", 169),
    (b"counter:42", 240),
    (b"user:1000", 995),
    (b"{user:1000}:name", 995),
    (b"{user:1000}:email", 995),
    (b"a{b}c", 1017),
    (b"{a}{b}", 579),
    (b"foo{bar}{zap}", 170),
    (b"a}b{c}", 879),
    (b"{{a}}", 780),
    (b"{}", 0),
    (b"abc{}def", 0),
    (b"foo{}{bar}", 0),
    (b"", 0),
    (b"{", 825),
    (b"}{", 496),
    (b"{abc", 81),
    (b"{bar", 313),
    (b"x{y", 351),
    (b"abc}", 465),
    (b"\xe4\xb8\xad\xe6\x96\x87", 311),
    (b"\x00\xff", 370),
];

fn ints(vals: &[i64]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", vals.len()).into_bytes();
    for v in vals {
        out.extend_from_slice(format!(":{v}\r\n").as_bytes());
    }
    out
}

fn pairs(vals: &[(i64, i64)]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", vals.len()).into_bytes();
    for (s, n) in vals {
        out.extend_from_slice(format!("*2\r\n:{s}\r\n:{n}\r\n").as_bytes());
    }
    out
}

fn err(text: &str) -> Vec<u8> {
    format!("-{text}\r\n").into_bytes()
}

#[test]
fn slotshashkey_vectors() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    assert_reply(&c.cmd("SLOTSHASHKEY a b c"), &ints(&[579, 1017, 879]));
    assert_reply(&c.cmd("slotshashkey"), b"*0\r\n");
    // every vector in one call, in order
    let mut argv: Vec<&[u8]> = vec![b"SLOTSHASHKEY"];
    argv.extend(VECTORS.iter().map(|(k, _)| *k));
    let expected: Vec<i64> = VECTORS.iter().map(|(_, s)| *s).collect();
    assert_reply(&c.send(&argv), &ints(&expected));
    // and one by one
    for (k, s) in VECTORS {
        assert_reply(&c.send(&[&b"SLOTSHASHKEY"[..], k]), &ints(&[*s]));
    }
    // the same in RESP3 (plain arrays of integers either way)
    assert_eq!(c.cmd("HELLO 3").first(), Some(&b'%'));
    assert_reply(&c.cmd("SLOTSHASHKEY a b c"), &ints(&[579, 1017, 879]));
}

#[test]
fn slotsinfo_counts_and_ranges() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    assert_reply(&c.cmd("SLOTSINFO"), b"*0\r\n");
    for k in ["a", "{tag}x", "{tag}y", "{tag}list"] {
        assert_reply(&c.send(&["SET", k, "v"]), b"+OK\r\n");
    }
    assert_reply(&c.cmd("SLOTSINFO"), &pairs(&[(579, 1), (899, 3)]));
    assert_reply(&c.cmd("SLOTSINFO 0"), &pairs(&[(579, 1), (899, 3)]));
    assert_reply(&c.cmd("SLOTSINFO 0 1024"), &pairs(&[(579, 1), (899, 3)]));
    assert_reply(
        &c.cmd("SLOTSINFO 0 2147483647"),
        &pairs(&[(579, 1), (899, 3)]),
    );
    assert_reply(&c.cmd("SLOTSINFO 579 1"), &pairs(&[(579, 1)]));
    assert_reply(&c.cmd("SLOTSINFO 0 579"), b"*0\r\n");
    assert_reply(&c.cmd("SLOTSINFO 0 580"), &pairs(&[(579, 1)]));
    assert_reply(&c.cmd("SLOTSINFO 580"), &pairs(&[(899, 3)]));
    assert_reply(&c.cmd("SLOTSINFO 899 0"), b"*0\r\n");
    assert_reply(&c.cmd("SLOTSINFO 900"), b"*0\r\n");
    assert_reply(&c.cmd("SLOTSINFO 1023"), b"*0\r\n");
    // overwriting a key does not change the count; a new key in slot 579 does
    assert_reply(&c.cmd("SET a w"), b"+OK\r\n");
    assert_reply(&c.cmd("SET {a}2 w"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSINFO"), &pairs(&[(579, 2), (899, 3)]));
    // other databases are separate
    assert_reply(&c.cmd("SELECT 1"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSINFO"), b"*0\r\n");
    assert_reply(&c.cmd("SET foo 1"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSINFO"), &pairs(&[(289, 1)]));
    assert_reply(&c.cmd("SELECT 0"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSINFO"), &pairs(&[(579, 2), (899, 3)]));
    // the per-slot counts follow deletions and FLUSHDB
    assert_reply(&c.cmd("DEL a {a}2 {tag}x"), b":3\r\n");
    assert_reply(&c.cmd("SLOTSINFO"), &pairs(&[(899, 2)]));
    assert_reply(&c.cmd("FLUSHDB"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSINFO"), b"*0\r\n");
}

#[test]
fn slotsinfo_errors() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    assert_reply(&c.cmd("SLOTSINFO -1"), &err("ERR invalid slot number = -1"));
    assert_reply(
        &c.cmd("SLOTSINFO 1024"),
        &err("ERR invalid slot number = 1024"),
    );
    assert_reply(
        &c.cmd("SLOTSINFO 0 -1"),
        &err("ERR invalid slot count = -1"),
    );
    assert_reply(
        &c.cmd("SLOTSINFO 1 2 3"),
        &err("ERR wrong number of arguments for 'slotsinfo' command"),
    );
    assert_reply(
        &c.cmd("SLOTSINFO 1 2 3 4"),
        &err("ERR wrong number of arguments for 'slotsinfo' command"),
    );
    assert_reply(
        &c.cmd("SLOTSINFO abc"),
        &err("ERR value is not an integer or out of range"),
    );
    assert_reply(
        &c.cmd("SLOTSINFO 0 abc"),
        &err("ERR value is not an integer or out of range"),
    );
    assert_reply(
        &c.cmd("SLOTSINFO 4294967296"),
        &err("ERR value is out of range"),
    );
    assert_reply(
        &c.cmd("SLOTSINFO 0 4294967296"),
        &err("ERR value is out of range"),
    );
    // the connection is still fine afterwards
    assert_reply(&c.cmd("PING"), b"+PONG\r\n");
}

// ---------------------------------------------------------------------------
// SLOTSSCAN / SLOTSDEL / SLOTSCHECK (codis.md §2.4) and SLOTSRESTORE (§2.5)
// ---------------------------------------------------------------------------

use std::collections::BTreeSet;

use tests::Value;

/// One SLOTSSCAN call: (next cursor, keys).
fn slotsscan(c: &mut tests::Conn, args: &[&str]) -> (String, Vec<Vec<u8>>) {
    let mut argv = vec!["SLOTSSCAN"];
    argv.extend_from_slice(args);
    let v = c.send_value(&argv);
    let parts = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v:?}"));
    assert_eq!(parts.len(), 2, "{v:?}");
    let cursor = parts[0].as_text().expect("cursor is a bulk string");
    assert!(matches!(parts[0], Value::Bulk(_)), "{v:?}");
    let keys = parts[1]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k.as_bytes().expect("bulk key").to_vec())
        .collect();
    (cursor, keys)
}

/// A full SLOTSSCAN of one slot with COUNT `count`: every key seen, and the
/// number of calls.
fn scan_all(c: &mut tests::Conn, slot: usize, count: usize) -> (BTreeSet<Vec<u8>>, usize) {
    let (slot, count) = (slot.to_string(), count.to_string());
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    let mut calls = 0;
    loop {
        let (next, keys) = slotsscan(c, &[&slot, &cursor, "COUNT", &count]);
        calls += 1;
        seen.extend(keys);
        if next == "0" {
            return (seen, calls);
        }
        cursor = next;
        assert!(calls < 100_000, "SLOTSSCAN does not terminate");
    }
}

fn set_of(keys: &[&str]) -> BTreeSet<Vec<u8>> {
    keys.iter().map(|k| k.as_bytes().to_vec()).collect()
}

/// `n` distinct keys that hash to `slot` (untagged).
fn keys_in_slot(c: &mut tests::Conn, slot: i64, n: usize, prefix: &str) -> Vec<String> {
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

#[test]
fn slotsscan_replies() {
    let srv = Server::start(&["--enable-debug-command", "yes"]);
    let mut c = srv.conn();
    // empty slot
    assert_reply(&c.cmd("SLOTSSCAN 899 0"), b"*2\r\n$1\r\n0\r\n*0\r\n");
    for k in ["a", "{tag}x", "{tag}y", "{tag}list"] {
        assert_reply(&c.send(&["SET", k, "v"]), b"+OK\r\n");
    }
    assert_reply(&c.cmd("SLOTSINFO"), &pairs(&[(579, 1), (899, 3)]));
    let (next, keys) = slotsscan(&mut c, &["899", "0"]);
    assert_eq!(next, "0");
    assert_eq!(
        keys.into_iter().collect::<BTreeSet<_>>(),
        set_of(&["{tag}x", "{tag}y", "{tag}list"])
    );
    assert_reply(
        &c.cmd("SLOTSSCAN 579 0"),
        b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n",
    );
    assert_reply(
        &c.cmd("SLOTSSCAN 579 0 count 100"),
        b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n",
    );
    // COUNT 1 walks the slot in several calls
    let (seen, _) = scan_all(&mut c, 899, 1);
    assert_eq!(seen, set_of(&["{tag}x", "{tag}y", "{tag}list"]));
    // other DBs are separate
    assert_reply(&c.cmd("SELECT 3"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSSCAN 899 0"), b"*2\r\n$1\r\n0\r\n*0\r\n");
    // expired keys still present are listed (no active expiry here)
    assert_reply(&c.cmd("DEBUG SET-ACTIVE-EXPIRE 0"), b"+OK\r\n");
    assert_reply(&c.cmd("PSETEX {tag}gone 1 v"), b"+OK\r\n");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (_, keys) = slotsscan(&mut c, &["899", "0"]);
    assert_eq!(keys, vec![b"{tag}gone".to_vec()]);
    assert_reply(&c.cmd("SLOTSINFO"), &pairs(&[(899, 1)]));
    assert_reply(&c.cmd("DEBUG SET-ACTIVE-EXPIRE 1"), b"+OK\r\n");
}

#[test]
fn slotsscan_big_slot_with_growth() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    let slot = 77;
    let keys = keys_in_slot(&mut c, slot, 1500, "s:");
    let (stable, extra) = keys.split_at(500);
    for k in stable {
        assert_reply(&c.send(&["SET", k.as_str(), "1"]), b"+OK\r\n");
    }
    let (seen, calls) = scan_all(&mut c, slot as usize, 10);
    assert_eq!(seen.len(), 500);
    assert!(calls >= 50, "COUNT must bound each call ({calls} calls)");
    // the table grows while we scan: keys present throughout are never missed
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    let mut more = extra.iter();
    loop {
        let (next, got) = slotsscan(&mut c, &["77", &cursor, "COUNT", "7"]);
        assert!(got.len() <= 7 * 10);
        seen.extend(got);
        for k in more.by_ref().take(20) {
            assert_reply(&c.send(&["SET", k.as_str(), "2"]), b"+OK\r\n");
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    for k in stable {
        assert!(seen.contains(k.as_bytes()), "missed {k}");
    }
    // a garbage cursor (wrong table generation or past the end) restarts or
    // ends the slot instead of looping
    let mut cursor = "999999999999".to_string();
    for _ in 0..10_000 {
        let (next, _) = slotsscan(&mut c, &["77", &cursor, "COUNT", "50"]);
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0");
}

#[test]
fn slotsscan_errors() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    let arity = err("ERR wrong number of arguments for 'slotsscan' command");
    assert_reply(&c.cmd("SLOTSSCAN"), &arity);
    assert_reply(&c.cmd("SLOTSSCAN 1"), &arity);
    assert_reply(&c.cmd("SLOTSSCAN 1 0 COUNT"), &arity);
    assert_reply(&c.cmd("SLOTSSCAN 1 0 COUNT 1 x"), &arity);
    assert_reply(
        &c.cmd("SLOTSSCAN -1 0"),
        &err("ERR invalid slot number = -1"),
    );
    assert_reply(
        &c.cmd("SLOTSSCAN 1024 0"),
        &err("ERR invalid slot number = 1024"),
    );
    assert_reply(
        &c.cmd("SLOTSSCAN x 0"),
        &err("ERR value is not an integer or out of range"),
    );
    assert_reply(
        &c.cmd("SLOTSSCAN 4294967296 0"),
        &err("ERR value is out of range"),
    );
    assert_reply(&c.cmd("SLOTSSCAN 1 abc"), &err("ERR invalid cursor"));
    assert_reply(&c.cmd("SLOTSSCAN 1 0 COUNT 0"), &err("ERR syntax error"));
    assert_reply(&c.cmd("SLOTSSCAN 1 0 COUNT -5"), &err("ERR syntax error"));
    assert_reply(&c.cmd("SLOTSSCAN 1 0 MATCH *"), &err("ERR syntax error"));
    assert_reply(
        &c.cmd("SLOTSSCAN 1 0 COUNT x"),
        &err("ERR value is not an integer or out of range"),
    );
    assert_reply(&c.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn slotsdel_replies_and_errors() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    for k in ["a", "{tag}x", "{tag}y", "{tag}list", "foo"] {
        assert_reply(&c.send(&["SET", k, "v"]), b"+OK\r\n");
    }
    assert_reply(
        &c.cmd("SLOTSDEL 579 899 0"),
        &pairs(&[(579, 0), (899, 0), (0, 0)]),
    );
    assert_reply(&c.cmd("SLOTSINFO"), &pairs(&[(289, 1)]));
    assert_reply(&c.cmd("EXISTS a {tag}x {tag}y {tag}list foo"), b":1\r\n");
    assert_reply(&c.cmd("SLOTSCHECK"), b"+OK\r\n");
    // every slot is checked before anything is deleted
    assert_reply(
        &c.cmd("SLOTSDEL 289 1024"),
        &err("ERR invalid slot number = 1024"),
    );
    assert_reply(
        &c.cmd("SLOTSDEL 289 -3"),
        &err("ERR invalid slot number = -3"),
    );
    assert_reply(
        &c.cmd("SLOTSDEL 289 x"),
        &err("ERR value is not an integer or out of range"),
    );
    assert_reply(&c.cmd("EXISTS foo"), b":1\r\n");
    assert_reply(
        &c.cmd("SLOTSDEL"),
        &err("ERR wrong number of arguments for 'slotsdel' command"),
    );
    // per DB
    assert_reply(&c.cmd("SELECT 1"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSDEL 289"), &pairs(&[(289, 0)]));
    assert_reply(&c.cmd("SELECT 0"), b"+OK\r\n");
    assert_reply(&c.cmd("EXISTS foo"), b":1\r\n");
    assert_reply(&c.cmd("SLOTSDEL 289 289"), &pairs(&[(289, 0), (289, 0)]));
    assert_reply(&c.cmd("DBSIZE"), b":0\r\n");
}

/// `DUMP` of the string `hello` (codis.md §2.5, verified).
const HELLO_PAYLOAD: &[u8] = b"\x00\x05hello\x07\x00\x9c\x40\x0a\x85\x6d\xfe\xf5\x10";

/// A payload with a valid version and checksum around `body`.
fn payload(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&[7, 0]);
    let crc = protocol::rdb::crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

#[test]
fn slotsrestore_semantics() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    assert_eq!(payload(b"\x00\x05hello"), HELLO_PAYLOAD);
    assert_reply(
        &c.send(&[&b"SLOTSRESTORE"[..], b"k", b"0", HELLO_PAYLOAD]),
        b"+OK\r\n",
    );
    assert_reply(&c.cmd("GET k"), b"$5\r\nhello\r\n");
    assert_reply(&c.cmd("TTL k"), b":-1\r\n");
    // overwrites silently, with a TTL
    assert_reply(&c.cmd("RPUSH k2 x"), b":1\r\n");
    assert_reply(
        &c.send(&[
            &b"SLOTSRESTORE"[..],
            b"k2",
            b"5000",
            HELLO_PAYLOAD,
            b"{t}k3",
            b"0",
            HELLO_PAYLOAD,
        ]),
        b"+OK\r\n",
    );
    assert_reply(&c.cmd("GET k2"), b"$5\r\nhello\r\n");
    let pttl = c.value("PTTL k2").as_int().unwrap();
    assert!((4000..=5000).contains(&pttl), "pttl {pttl}");
    assert_reply(&c.cmd("GET {t}k3"), b"$5\r\nhello\r\n");
    // the payload DUMP produces round-trips, for every type
    assert_reply(&c.cmd("RPUSH l a b c"), b":3\r\n");
    assert_reply(&c.cmd("HSET h f v"), b":1\r\n");
    assert_reply(&c.cmd("SADD s m1 m2"), b":2\r\n");
    assert_reply(&c.cmd("ZADD z 1.5 a 2 b"), b":2\r\n");
    for k in ["l", "h", "s", "z"] {
        let dump = c.send_value(&["DUMP", k]);
        let p = dump.as_bytes().expect("DUMP payload").to_vec();
        let copy = format!("{k}-copy");
        assert_reply(
            &c.send(&[b"SLOTSRESTORE", copy.as_bytes(), b"0", &p]),
            b"+OK\r\n",
        );
        if k == "s" {
            // A set's DUMP lists members in its hash table's order, which
            // differs between two tables (random hash seeds): compare members.
            let mut members = |key: &str| {
                let v = c.value(&format!("SMEMBERS {key}"));
                let mut m: Vec<Vec<u8>> = v
                    .as_array()
                    .expect("SMEMBERS array")
                    .iter()
                    .map(|x| x.as_bytes().expect("member").to_vec())
                    .collect();
                m.sort();
                m
            };
            let (a, b) = (members(&copy), members(k));
            assert_eq!(a, b);
            assert_eq!(a, vec![b"m1".to_vec(), b"m2".to_vec()]);
        } else {
            let d2 = c.send_value(&["DUMP", copy.as_str()]);
            assert_eq!(d2.as_bytes(), Some(&p[..]), "{k}");
        }
    }
    assert_reply(&c.cmd("SLOTSCHECK"), b"+OK\r\n");
    let mut bad = HELLO_PAYLOAD.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    // all-or-nothing: a bad triple after good ones writes nothing
    let cases: Vec<(Vec<&[u8]>, Vec<u8>)> = vec![
        (
            vec![b"n1", b"0", HELLO_PAYLOAD, b"n2", b"0", &bad],
            err("ERR dump payload version or checksum are wrong"),
        ),
        (
            vec![b"n1", b"0", HELLO_PAYLOAD, b"n2", b"-1", HELLO_PAYLOAD],
            err("ERR invalid ttl value, must be >= 0"),
        ),
        (
            vec![b"n1", b"abc", HELLO_PAYLOAD],
            err("ERR value is not an integer or out of range"),
        ),
        (
            vec![b"n1", b"0", b"x"],
            err("ERR dump payload version or checksum are wrong"),
        ),
    ];
    for (args, expected) in cases {
        let mut argv: Vec<&[u8]> = vec![b"SLOTSRESTORE"];
        argv.extend(args);
        assert_reply(&c.send(&argv), &expected);
    }
    let garbage = payload(b"\x00\x05hel");
    assert_reply(
        &c.send(&[
            &b"SLOTSRESTORE"[..],
            b"n1",
            b"0",
            HELLO_PAYLOAD,
            b"n2",
            b"0",
            &garbage,
        ]),
        &err("ERR bad data format"),
    );
    let unknown_type = payload(b"\x7fxyz");
    assert_reply(
        &c.send(&[&b"SLOTSRESTORE"[..], b"n2", b"0", &unknown_type]),
        &err("ERR bad data format"),
    );
    assert_reply(&c.cmd("EXISTS n1 n2"), b":0\r\n");
    let arity = err("ERR wrong number of arguments for 'slotsrestore' command");
    assert_reply(&c.cmd("SLOTSRESTORE"), &arity);
    assert_reply(&c.cmd("SLOTSRESTORE k 0"), &arity);
    assert_reply(
        &c.send(&[&b"SLOTSRESTORE"[..], b"k", b"0", HELLO_PAYLOAD, b"x"]),
        &arity,
    );
    assert_reply(
        &c.send(&[&b"SLOTSRESTORE"[..], b"k", b"0", HELLO_PAYLOAD, b"x", b"0"]),
        &arity,
    );
    assert_reply(&c.cmd("EXISTS x"), b":0\r\n");
}

/// SLOTSCHECK stays OK after every path that adds or drops keys, across DBs.
#[test]
fn slotscheck_after_mixed_workload() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    assert_reply(&c.cmd("SLOTSCHECK"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSCHECK any args at all"), b"+OK\r\n");
    for i in 0..300 {
        let k = format!("{{g{}}}:{i}", i % 13);
        assert_reply(&c.send(&["SET", k.as_str(), "v"]), b"+OK\r\n");
        let k = format!("plain:{i}");
        assert_reply(&c.send(&["RPUSH", k.as_str(), "v"]), b":1\r\n");
    }
    let script = [
        "DEL {g0}:0 {g1}:1 plain:0",
        "PEXPIRE {g2}:2 1",
        "PSETEX {g3}:new 1 v",
        "SET {g4}:ttl v PX 1",
        "RENAME {g5}:5 {g6}:renamed",
        "RENAME plain:1 {g7}:fromplain",
        "RENAME {g8}:8 plain:fromtag",
        "MOVE {g9}:9 1",
        "COPY {g10}:10 {g10}:copy",
        "COPY {g11}:11 {g12}:copy DB 2",
        "SWAPDB 0 2",
        "SWAPDB 0 2",
        "SELECT 1",
        "SET {g9}:db1 v",
        "FLUSHDB",
        "SET {g9}:again v",
        "SELECT 0",
        "SLOTSDEL 0 1 2 3 4 5",
        "GETDEL {g6}:6",
        "LPOP plain:2",
    ];
    for line in script {
        let r = c.cmd(line);
        assert!(
            !r.starts_with(b"-"),
            "{line}: {}",
            String::from_utf8_lossy(&r)
        );
    }
    let dump = c.send_value(&["DUMP", "{g12}:12"]);
    let p = dump.as_bytes().unwrap().to_vec();
    assert_reply(
        &c.send(&[&b"RESTORE"[..], b"{g12}:restored", b"0", &p]),
        b"+OK\r\n",
    );
    assert_reply(
        &c.send(&[&b"RESTORE"[..], b"{g12}:12", b"0", &p, b"REPLACE"]),
        b"+OK\r\n",
    );
    assert_reply(
        &c.send(&[&b"SLOTSRESTORE"[..], b"{g11}:slotsrestored", b"0", &p]),
        b"+OK\r\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    // lazy expiry of one, active expiry of the others
    assert_reply(&c.cmd("GET {g2}:2"), b"$-1\r\n");
    std::thread::sleep(std::time::Duration::from_millis(300));
    for db in 0..3 {
        assert_reply(&c.cmd(&format!("SELECT {db}")), b"+OK\r\n");
        assert_reply(&c.cmd("SLOTSCHECK"), b"+OK\r\n");
    }
    assert_reply(&c.cmd("SELECT 0"), b"+OK\r\n");
    assert_reply(&c.cmd("EXISTS {g3}:new {g4}:ttl {g2}:2"), b":0\r\n");
    assert_reply(
        &c.cmd("EXISTS {g7}:fromplain plain:fromtag {g10}:copy {g12}:restored"),
        b":4\r\n",
    );
    assert_reply(&c.cmd("FLUSHALL"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSCHECK"), b"+OK\r\n");
    assert_reply(&c.cmd("SLOTSINFO"), b"*0\r\n");
}
