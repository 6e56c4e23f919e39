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
