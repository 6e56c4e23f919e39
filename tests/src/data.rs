//! Test data for the migration tests (codis.md §2.5–§2.7): fill a tag group
//! with every data type and encoding a Codis 3.2 or Redis 7.0 server can
//! hold, take a comparable snapshot of keys (contents with unordered
//! collections sorted, zset scores as exact doubles, PTTL), compare two
//! snapshots with a TTL tolerance, and drive a slot migration to the end.
//!
//! Everything here uses only commands Redis 3.2 understands (HMSET, not
//! multi-field HSET; no RESTORE ABSTTL), so the same helpers work against our
//! codis-server, a real Codis 3.2 codis-server and redis-server 7.0.
//!
//! * [`fill_all_types`]: strings (ints, empty, binary, compressible, random),
//!   small and big lists / hashes / sets / zsets (big = [`BIG`] elements, far
//!   above the `maxbulks` of 100 the interop tests use, so the async path
//!   chunks them; Codis 3.2 keeps the small ones ziplist/intset-encoded),
//!   some with TTLs. Returns the key names.
//! * [`snapshot`] / [`read_key`]: a [`Snapshot`] of existing keys.
//! * [`assert_same`]: same keys, same contents, TTLs within a slack.
//! * [`assert_gone`], [`slot_size`]: the source side after a migration.
//! * [`keys_in_slot`], [`tags_in_slot`]: names that hash to a given slot.
//! * [`drain_slot_sync`] / [`drain_slot_async`]: loop SLOTSMGRTTAGSLOT or
//!   SLOTSMGRTTAGSLOT-ASYNC until the slot is empty (bounded).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::{Conn, Value, escape, escape_max};

/// Elements in the "big" values of [`fill_all_types`].
pub const BIG: usize = 1000;

/// The keys [`fill_all_types`] creates, without the prefix, and which of
/// them get a TTL.
pub const ALL_TYPES: &[(&str, bool)] = &[
    ("str", false),
    ("int", false),
    ("negint", false),
    ("empty", false),
    ("binary", false),
    ("bigstr", false),
    ("rndstr", false),
    ("strttl", true),
    ("lsmall", false),
    ("lbig", true),
    ("lbigval", false),
    ("hsmall", false),
    ("hbig", true),
    ("hlongval", false),
    ("sint", true),
    ("sintbig", false),
    ("ssmall", false),
    ("sbig", false),
    ("zsmall", true),
    ("zbig", false),
    ("zlongmember", false),
];

/// Sends `cmds` pipelined and panics if any reply is an error.
pub fn pipeline(c: &mut Conn, cmds: &[Vec<Vec<u8>>]) {
    for window in cmds.chunks(64) {
        let mut bytes = Vec::new();
        for cmd in window {
            bytes.extend_from_slice(&crate::resp::encode_command(cmd));
        }
        c.write_raw(&bytes)
            .unwrap_or_else(|e| panic!("pipeline write: {e}"));
        for cmd in window {
            let r = c
                .read_reply()
                .unwrap_or_else(|e| panic!("{}: {e}", crate::describe(cmd)));
            assert!(
                !r.starts_with(b"-"),
                "{}: {}",
                crate::describe(cmd),
                escape(&r)
            );
        }
    }
}

/// A deterministic xorshift generator for test contents.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// [`fill_all_types_n`] with [`BIG`]-element big values.
pub fn fill_all_types(c: &mut Conn, prefix: &str) -> Vec<String> {
    fill_all_types_n(c, prefix, BIG)
}

/// Creates one key per entry of [`ALL_TYPES`], named `<prefix><name>` (give
/// a tag such as `{t}` as the prefix to keep them in one slot and one tag
/// group), with `big` elements in the big collections. Existing keys of
/// those names are replaced. Returns the key names in [`ALL_TYPES`] order.
///
/// What Codis 3.2 (default config) makes of them: `lsmall`/`hsmall`/
/// `zsmall` ziplists, `sint`/`sintbig` intsets (`sintbig` has 400 members:
/// above maxbulks 100 but compact, so sent whole), `hlongval`/`ssmall`/
/// `zlongmember` hash-table/skiplist encodings with few bulks (sent whole),
/// `lbig`/`hbig`/`sbig`/`zbig` big encodings with `big` elements (chunked),
/// `bigstr` LZF-compressed in DUMP payloads, `int`/`negint` int-encoded.
pub fn fill_all_types_n(c: &mut Conn, prefix: &str, big: usize) -> Vec<String> {
    let k = |n: &str| format!("{prefix}{n}").into_bytes();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (prefix.len() as u64 + 1));
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let names: Vec<Vec<u8>> = ALL_TYPES.iter().map(|(n, _)| k(n)).collect();
    let mut del = vec![b("DEL")];
    del.extend(names.iter().cloned());
    cmds.push(del);

    // Strings.
    cmds.push(vec![b("SET"), k("str"), b("hello world")]);
    cmds.push(vec![b("SET"), k("int"), b("12345")]);
    cmds.push(vec![b("SET"), k("negint"), b("-9223372036854775808")]);
    cmds.push(vec![b("SET"), k("empty"), b("")]);
    cmds.push(vec![b("SET"), k("binary"), (0..=255u8).collect()]);
    cmds.push(vec![b("SET"), k("bigstr"), b(&"abcdefgh".repeat(2_500))]);
    cmds.push(vec![b("SET"), k("rndstr"), rng.bytes(300)]);
    cmds.push(vec![
        b("SET"),
        k("strttl"),
        b("temporary"),
        b("PX"),
        b("500000"),
    ]);

    // Lists: small mixed (ziplist ints and strings), big, one huge element.
    cmds.push(vec![
        b("RPUSH"),
        k("lsmall"),
        b("a"),
        b("1"),
        b("-2"),
        b("300000"),
        b(""),
    ]);
    let mut pushed = 0;
    while pushed < big {
        let end = (pushed + 500).min(big);
        let mut cmd = vec![b("RPUSH"), k("lbig")];
        for i in pushed..end {
            cmd.push(match i % 4 {
                0 => i.to_string().into_bytes(),
                1 => format!("elem-{i}").into_bytes(),
                2 => format!("long-{i}-{}", "L".repeat(70)).into_bytes(),
                _ => rng.bytes(1 + (i % 13)),
            });
        }
        cmds.push(cmd);
        pushed = end;
    }
    cmds.push(vec![
        b("RPUSH"),
        k("lbigval"),
        b("x"),
        b(&"y".repeat(10_000)),
        b("z"),
    ]);

    // Hashes: small, big, one long value (hash-table encoded in 3.2).
    cmds.push(vec![
        b("HMSET"),
        k("hsmall"),
        b("f1"),
        b("v1"),
        b("f2"),
        b("2"),
        b("n"),
        b("-77"),
        b("e"),
        b(""),
        b("f5"),
        b("v5"),
    ]);
    let mut done = 0;
    while done < big {
        let end = (done + 500).min(big);
        let mut cmd = vec![b("HMSET"), k("hbig")];
        for i in done..end {
            cmd.push(format!("field:{i}").into_bytes());
            cmd.push(if i % 3 == 0 {
                i.to_string().into_bytes()
            } else {
                format!("value-{i}-{}", "v".repeat(i % 80)).into_bytes()
            });
        }
        cmds.push(cmd);
        done = end;
    }
    cmds.push(vec![
        b("HMSET"),
        k("hlongval"),
        b("a"),
        b("1"),
        b("long"),
        b(&"h".repeat(200)),
        b("c"),
        b("3"),
    ]);

    // Sets: small intset, big intset, small strings, big strings.
    cmds.push(vec![b("SADD"), k("sint"), b("1"), b("2"), b("3"), b("-5")]);
    let mut cmd = vec![b("SADD"), k("sintbig")];
    cmd.extend((0..400i64).map(|i| (i * 7 - 1000).to_string().into_bytes()));
    cmds.push(cmd);
    cmds.push(vec![b("SADD"), k("ssmall"), b("a"), b("b"), b("c")]);
    let mut done = 0;
    while done < big {
        let end = (done + 500).min(big);
        let mut cmd = vec![b("SADD"), k("sbig")];
        cmd.extend((done..end).map(|i| format!("member-{i}").into_bytes()));
        cmds.push(cmd);
        done = end;
    }

    // Sorted sets: small (ziplist), big (skiplist, equal scores, infinities,
    // inexact decimals), one long member (skiplist with few bulks).
    cmds.push(vec![
        b("ZADD"),
        k("zsmall"),
        b("1"),
        b("one"),
        b("2.5"),
        b("two"),
        b("-3"),
        b("neg"),
        b("0.1"),
        b("tenth"),
        b("10000000000"),
        b("huge"),
    ]);
    let mut done = 0;
    while done < big {
        let end = (done + 500).min(big);
        let mut cmd = vec![b("ZADD"), k("zbig")];
        for i in done..end {
            let score = match i % 10 {
                0 => "7".to_string(),
                1 if i == 1 => "inf".to_string(),
                1 if i == 11 => "-inf".to_string(),
                2 => format!("{}", i as f64 / 3.0),
                _ => format!("{}", i as f64 * 0.25 - 100.0),
            };
            cmd.push(score.into_bytes());
            cmd.push(format!("zm-{i}").into_bytes());
        }
        cmds.push(cmd);
        done = end;
    }
    cmds.push(vec![
        b("ZADD"),
        k("zlongmember"),
        b("1.5"),
        b(&"m".repeat(100)),
        b("-2"),
        b("short"),
    ]);

    // TTLs (strttl got one with SET PX).
    for (name, ttl) in ALL_TYPES {
        if *ttl && *name != "strttl" {
            cmds.push(vec![b("PEXPIRE"), k(name), b("900000")]);
        }
    }
    pipeline(c, &cmds);
    names
        .into_iter()
        .map(|n| String::from_utf8(n).unwrap_or_default())
        .collect()
}

/// A key's value in a form that compares equal across servers: unordered
/// collections sorted, zset scores as exact doubles (Redis 3.2 prints them
/// with `%.17g`, 7.0 with the shortest form, so text differs).
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    /// `(member, score)` in rank order.
    ZSet(Vec<(Vec<u8>, f64)>),
    Stream(StreamBody),
}

/// A stream as its DUMP payload describes it, normalised so that two
/// servers holding the same stream (byte-identical nodes, the same
/// counters, groups, PELs and consumers) give equal values whatever their
/// RDB version and `rdbcompression`: strings decompressed and written
/// plain, numbers as fixed-width integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamBody {
    /// The RDB type (15 or 19).
    pub ty: u8,
    pub nodes: usize,
    /// Live entries.
    pub length: u64,
    pub groups: usize,
    pub canonical: Vec<u8>,
}

impl StreamBody {
    /// Parses a stream value's body (after the type byte); panics when it
    /// is malformed.
    pub fn parse(ty: u8, body: &[u8]) -> StreamBody {
        let v2 = ty == protocol::rdb::types::STREAM_LISTPACKS_2;
        let mut r = BodyReader { b: body, at: 0 };
        let mut out = Vec::new();
        let nodes = r.len();
        out.extend_from_slice(&nodes.to_le_bytes());
        for _ in 0..2 * nodes {
            r.string_into(&mut out);
        }
        let length = r.len();
        out.extend_from_slice(&length.to_le_bytes());
        for _ in 0..if v2 { 7 } else { 2 } {
            let n = r.len();
            out.extend_from_slice(&n.to_le_bytes());
        }
        let groups = r.len();
        out.extend_from_slice(&groups.to_le_bytes());
        for _ in 0..groups {
            r.string_into(&mut out);
            for _ in 0..if v2 { 3 } else { 2 } {
                let n = r.len();
                out.extend_from_slice(&n.to_le_bytes());
            }
            let pel = r.len();
            out.extend_from_slice(&pel.to_le_bytes());
            for _ in 0..pel {
                out.extend_from_slice(r.raw(24));
                let n = r.len();
                out.extend_from_slice(&n.to_le_bytes());
            }
            let consumers = r.len();
            out.extend_from_slice(&consumers.to_le_bytes());
            for _ in 0..consumers {
                r.string_into(&mut out);
                out.extend_from_slice(r.raw(8));
                let n = r.len();
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(r.raw(16 * n as usize));
            }
        }
        assert_eq!(r.at, body.len(), "bytes after the stream body");
        StreamBody {
            ty,
            nodes: nodes as usize,
            length,
            groups: groups as usize,
            canonical: out,
        }
    }
}

/// A cursor over a stream's RDB body (test data: panics on bad input).
struct BodyReader<'a> {
    b: &'a [u8],
    at: usize,
}

impl BodyReader<'_> {
    fn raw(&mut self, n: usize) -> &[u8] {
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        s
    }

    fn len(&mut self) -> u64 {
        let first = self.raw(1)[0];
        match first >> 6 {
            0 => u64::from(first & 0x3f),
            1 => (u64::from(first & 0x3f) << 8) | u64::from(self.raw(1)[0]),
            _ if first == 0x80 => u64::from(u32::from_be_bytes(self.raw(4).try_into().unwrap())),
            _ if first == 0x81 => u64::from_be_bytes(self.raw(8).try_into().unwrap()),
            _ => panic!("not an RDB length: {first:#x}"),
        }
    }

    /// A string (any encoding), appended as its length and bytes.
    fn string_into(&mut self, out: &mut Vec<u8>) {
        let (s, n) = protocol::rdb::file::read_string(&self.b[self.at..]).expect("an RDB string");
        self.at += n;
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(&s);
    }
}

impl Content {
    pub fn type_name(&self) -> &'static str {
        match self {
            Content::Str(_) => "string",
            Content::List(_) => "list",
            Content::Hash(_) => "hash",
            Content::Set(_) => "set",
            Content::ZSet(_) => "zset",
            Content::Stream(_) => "stream",
        }
    }

    /// Elements (1 for a string, fields for a hash).
    pub fn len(&self) -> usize {
        match self {
            Content::Str(_) => 1,
            Content::List(v) => v.len(),
            Content::Hash(m) => m.len(),
            Content::Set(s) => s.len(),
            Content::ZSet(v) => v.len(),
            Content::Stream(s) => s.length as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A short description of the first difference to `other`, if any.
    pub fn diff(&self, other: &Content) -> Option<String> {
        if self == other {
            return None;
        }
        if self.type_name() != other.type_name() {
            return Some(format!(
                "type {} vs {}",
                self.type_name(),
                other.type_name()
            ));
        }
        if self.len() != other.len() {
            return Some(format!("{} elements vs {}", self.len(), other.len()));
        }
        let show = |x: &[u8]| escape_max(x, 60);
        let first = match (self, other) {
            (Content::Str(a), Content::Str(b)) => format!("{} vs {}", show(a), show(b)),
            (Content::List(a), Content::List(b)) => a
                .iter()
                .zip(b)
                .enumerate()
                .find(|(_, (x, y))| x != y)
                .map(|(i, (x, y))| format!("[{i}] {} vs {}", show(x), show(y)))
                .unwrap_or_default(),
            (Content::Hash(a), Content::Hash(b)) => a
                .iter()
                .zip(b)
                .find(|(x, y)| x != y)
                .map(|((f, v), (g, w))| {
                    format!("{}={} vs {}={}", show(f), show(v), show(g), show(w))
                })
                .unwrap_or_default(),
            (Content::Set(a), Content::Set(b)) => a
                .iter()
                .zip(b)
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("{} vs {}", show(x), show(y)))
                .unwrap_or_default(),
            (Content::ZSet(a), Content::ZSet(b)) => a
                .iter()
                .zip(b)
                .enumerate()
                .find(|(_, (x, y))| x != y)
                .map(|(i, ((m, s), (n, t)))| {
                    format!("[{i}] {}@{s:?} vs {}@{t:?}", show(m), show(n))
                })
                .unwrap_or_default(),
            (Content::Stream(a), Content::Stream(b)) => {
                let at = a
                    .canonical
                    .iter()
                    .zip(&b.canonical)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.canonical.len().min(b.canonical.len()));
                format!(
                    "stream type {} vs {}, {} nodes vs {}, {} groups vs {}, bodies differ at byte {at}",
                    a.ty, b.ty, a.nodes, b.nodes, a.groups, b.groups
                )
            }
            _ => String::new(),
        };
        Some(first)
    }
}

impl From<protocol::rdb::Value> for Content {
    /// The content a decoded DUMP payload describes (zset members put in
    /// rank order: plain-encoded payloads list them in hash order).
    fn from(v: protocol::rdb::Value) -> Content {
        use protocol::rdb::Value as V;
        match v {
            V::Str(s) => Content::Str(s),
            V::List(l) => Content::List(l),
            V::Set(m) => Content::Set(m.into_iter().collect()),
            V::Hash(p) => Content::Hash(p.into_iter().collect()),
            V::ZSet(mut z) => {
                z.sort_by(|(m, s), (n, t)| s.total_cmp(t).then_with(|| m.cmp(n)));
                Content::ZSet(z)
            }
            V::Stream(ty, body) => Content::Stream(StreamBody::parse(ty, &body)),
        }
    }
}

/// One key: its value and PTTL (-1 without expiry).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyState {
    pub content: Content,
    pub pttl: i64,
}

/// Existing keys and their state, by name.
pub type Snapshot = BTreeMap<Vec<u8>, KeyState>;

fn bulk_of(v: &Value, what: &str) -> Vec<u8> {
    match v {
        Value::Bulk(b) => b.clone(),
        other => panic!("{what}: expected a bulk, got {other:?}"),
    }
}

fn bulks_of(v: Value, what: &str) -> Vec<Vec<u8>> {
    match v {
        Value::Array(a) => a.iter().map(|x| bulk_of(x, what)).collect(),
        other => panic!("{what}: expected an array, got {other:?}"),
    }
}

/// Parses a score as Redis 3.2 (`%.17g`, `inf`) or 7.0 prints it.
pub fn parse_score(text: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(text);
    s.parse::<f64>()
        .unwrap_or_else(|_| panic!("not a zset score: {s:?}"))
}

/// The state of `key`, or `None` when it does not exist.
pub fn read_key(c: &mut Conn, key: &[u8]) -> Option<KeyState> {
    let what = escape_max(key, 60);
    let ty = c
        .send_value(&[&b"TYPE"[..], key])
        .as_text()
        .unwrap_or_default();
    let content = match ty.as_str() {
        "none" => return None,
        "string" => Content::Str(bulk_of(&c.send_value(&[&b"GET"[..], key]), &what)),
        "list" => Content::List(bulks_of(
            c.send_value(&[&b"LRANGE"[..], key, b"0", b"-1"]),
            &what,
        )),
        "hash" => {
            let flat = bulks_of(c.send_value(&[&b"HGETALL"[..], key]), &what);
            assert!(flat.len().is_multiple_of(2), "{what}: odd HGETALL reply");
            Content::Hash(
                flat.chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            )
        }
        "set" => Content::Set(
            bulks_of(c.send_value(&[&b"SMEMBERS"[..], key]), &what)
                .into_iter()
                .collect(),
        ),
        "zset" => {
            let flat = bulks_of(
                c.send_value(&[&b"ZRANGE"[..], key, b"0", b"-1", b"WITHSCORES"]),
                &what,
            );
            assert!(flat.len().is_multiple_of(2), "{what}: odd ZRANGE reply");
            Content::ZSet(
                flat.chunks(2)
                    .map(|p| (p[0].clone(), parse_score(&p[1])))
                    .collect(),
            )
        }
        "stream" => {
            let p = bulk_of(&c.send_value(&[&b"DUMP"[..], key]), &what);
            protocol::rdb::decode(&p)
                .unwrap_or_else(|e| panic!("{what}: DUMP payload: {e:?}"))
                .into()
        }
        other => panic!("{what}: unexpected type {other}"),
    };
    let pttl = c
        .send_value(&[&b"PTTL"[..], key])
        .as_int()
        .unwrap_or_else(|| panic!("{what}: PTTL is not an integer"));
    Some(KeyState { content, pttl })
}

/// The state of every existing key of `keys` (missing ones are left out).
pub fn snapshot<K: AsRef<[u8]>>(c: &mut Conn, keys: &[K]) -> Snapshot {
    keys.iter()
        .filter_map(|k| read_key(c, k.as_ref()).map(|s| (k.as_ref().to_vec(), s)))
        .collect()
}

/// Panics unless `got` has exactly the keys of `expected` with equal
/// contents, and each TTL matches: both -1, or `got`'s in
/// `[expected - ttl_slack, expected + 5ms]` and positive (`expected` was
/// taken first; the TTL only shrinks, by at most the time in between).
#[track_caller]
pub fn assert_same(expected: &Snapshot, got: &Snapshot, ttl_slack: Duration) {
    let mut problems = Vec::new();
    let slack = i64::try_from(ttl_slack.as_millis()).unwrap_or(i64::MAX);
    for (k, e) in expected {
        let name = escape_max(k, 60);
        let Some(g) = got.get(k) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if let Some(d) = e.content.diff(&g.content) {
            problems.push(format!("{name}: {d}"));
        }
        let ttl_ok = if e.pttl < 0 {
            g.pttl == e.pttl
        } else {
            g.pttl > 0 && g.pttl <= e.pttl + 5 && g.pttl >= e.pttl.saturating_sub(slack)
        };
        if !ttl_ok {
            problems.push(format!("{name}: pttl {} vs {} before", g.pttl, e.pttl));
        }
    }
    for k in got.keys().filter(|k| !expected.contains_key(*k)) {
        problems.push(format!("{}: unexpected key", escape_max(k, 60)));
    }
    assert!(
        problems.is_empty(),
        "{} of {} keys differ:\n  {}",
        problems.len(),
        expected.len(),
        problems.join("\n  ")
    );
}

/// Panics if any of `keys` exists on `c`.
#[track_caller]
pub fn assert_gone<K: AsRef<[u8]>>(c: &mut Conn, keys: &[K]) {
    let left: Vec<String> = keys
        .iter()
        .filter(|k| c.send_value(&[&b"EXISTS"[..], k.as_ref()]).as_int() != Some(0))
        .map(|k| escape_max(k.as_ref(), 60))
        .collect();
    assert!(left.is_empty(), "still present: {left:?}");
}

/// Keys in `slot` according to SLOTSINFO (0 when the slot is empty).
pub fn slot_size(c: &mut Conn, slot: usize) -> i64 {
    let s = slot.to_string();
    let v = c.send_value(&["SLOTSINFO", &s, "1"]);
    let rows = v
        .as_array()
        .unwrap_or_else(|| panic!("SLOTSINFO {s} 1: {v:?}"));
    match rows.first().and_then(Value::as_array) {
        None => 0,
        Some([sl, n]) => {
            assert_eq!(sl.as_int(), i64::try_from(slot).ok(), "SLOTSINFO row {v:?}");
            n.as_int().unwrap_or_else(|| panic!("SLOTSINFO row {v:?}"))
        }
        Some(_) => panic!("SLOTSINFO {s} 1: {v:?}"),
    }
}

/// `n` distinct untagged key names `<prefix><i>` that hash to `slot`.
pub fn keys_in_slot(slot: usize, n: usize, prefix: &str) -> Vec<String> {
    (0u64..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| protocol::slot::slot_of(k.as_bytes()) == slot)
        .take(n)
        .collect()
}

/// `n` distinct tags `<prefix><i>` whose keys (`{tag}...`) hash to `slot`;
/// they have different CRCs, so they are different tag groups.
pub fn tags_in_slot(slot: usize, n: usize, prefix: &str) -> Vec<String> {
    keys_in_slot(slot, n, prefix)
}

fn pair_of(v: &Value, what: &str) -> (i64, i64) {
    match v.as_array() {
        Some([a, b]) => match (a.as_int(), b.as_int()) {
            (Some(a), Some(b)) => (a, b),
            _ => panic!("{what}: expected two integers, got {v:?}"),
        },
        _ => panic!("{what}: expected [moved, remaining], got {v:?}"),
    }
}

/// Runs `SLOTSMGRTTAGSLOT 127.0.0.1 <port> <timeout_ms> <slot>` until the
/// reported remainder is 0 (at most 10000 calls); returns the keys moved.
pub fn drain_slot_sync(c: &mut Conn, port: u16, timeout_ms: u64, slot: usize) -> i64 {
    let args = [
        "SLOTSMGRTTAGSLOT".to_string(),
        "127.0.0.1".to_string(),
        port.to_string(),
        timeout_ms.to_string(),
        slot.to_string(),
    ];
    let mut moved = 0;
    for _ in 0..10_000 {
        let v = c.send_value(&args);
        let (m, left) = pair_of(&v, &args.join(" "));
        moved += m;
        if left == 0 {
            return moved;
        }
        assert!(m > 0, "{}: nothing moved, {left} left", args.join(" "));
    }
    panic!("{}: slot not drained after 10000 calls", args.join(" "));
}

/// Runs `SLOTSMGRTTAGSLOT-ASYNC 127.0.0.1 <port> <timeout_ms> <maxbulks>
/// <maxbytes> <slot> <numkeys>` until the reported slot size is 0 (the call
/// after the last batch; at most 10000 calls); returns the keys shipped.
pub fn drain_slot_async(
    c: &mut Conn,
    port: u16,
    timeout_ms: u64,
    maxbulks: usize,
    maxbytes: usize,
    slot: usize,
    numkeys: usize,
) -> i64 {
    let args = [
        "SLOTSMGRTTAGSLOT-ASYNC".to_string(),
        "127.0.0.1".to_string(),
        port.to_string(),
        timeout_ms.to_string(),
        maxbulks.to_string(),
        maxbytes.to_string(),
        slot.to_string(),
        numkeys.to_string(),
    ];
    let mut moved = 0;
    for _ in 0..10_000 {
        let v = c.send_value(&args);
        let (m, size) = pair_of(&v, &args.join(" "));
        moved += m;
        if size == 0 {
            return moved;
        }
        assert!(
            m > 0,
            "{}: nothing shipped, slot size {size}",
            args.join(" ")
        );
    }
    panic!("{}: slot not drained after 10000 calls", args.join(" "));
}

/// Key names per DB of a dataset written over several DBs.
pub type DbKeys = Vec<(usize, Vec<Vec<u8>>)>;

fn bv(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Writes a dataset over several DBs (the persistence tests' restart
/// round trips): every type and encoding (DB 0 and 9), TTLs, an empty
/// string, a 20k-element list, integer-like strings. Returns, per DB
/// used, the key names.
pub fn fill_dbs(c: &mut Conn) -> DbKeys {
    let b = bv;
    let mut out = Vec::new();
    for db in [0usize, 9] {
        c.send(&["SELECT", &db.to_string()]);
        let mut keys: Vec<Vec<u8>> = fill_all_types(c, &format!("d{db}:"))
            .into_iter()
            .map(String::into_bytes)
            .collect();
        let mut cmds = Vec::new();
        for i in 0..300 {
            let k = format!("k{db}:{i}");
            cmds.push(vec![b("SET"), b(&k), b(&(i * 1_000_003).to_string())]);
            if i % 3 == 0 {
                cmds.push(vec![b("PEXPIRE"), b(&k), b("500000")]);
            }
            keys.push(b(&k));
        }
        let big = format!("biglist{db}");
        cmds.push(vec![b("DEL"), b(&big)]);
        for chunk in 0..20 {
            let mut push = vec![b("RPUSH"), b(&big)];
            push.extend((0..1000).map(|i| b(&format!("e{}", chunk * 1000 + i))));
            cmds.push(push);
        }
        keys.push(b(&big));
        cmds.push(vec![b("SET"), b("{tag}a"), b("")]);
        keys.push(b("{tag}a"));
        pipeline(c, &cmds);
        out.push((db, keys));
    }
    c.send(&["SELECT", "0"]);
    out
}

/// A snapshot of every DB's keys of `sets`.
pub fn snapshot_dbs(c: &mut Conn, sets: &[(usize, Vec<Vec<u8>>)]) -> Vec<(usize, Snapshot)> {
    let snaps = sets
        .iter()
        .map(|(db, keys)| {
            c.send(&["SELECT", &db.to_string()]);
            (*db, snapshot(c, keys))
        })
        .collect();
    c.send(&["SELECT", "0"]);
    snaps
}

/// The keys of `sets` hold what `before` recorded (TTLs within 120 s: a
/// slow fsync on a loaded machine can hold a shutdown for many seconds, and
/// the dataset's TTLs are 500 s and more).
#[track_caller]
pub fn compare_dbs(c: &mut Conn, before: &[(usize, Snapshot)], sets: &[(usize, Vec<Vec<u8>>)]) {
    let after = snapshot_dbs(c, sets);
    for ((db, e), (_, g)) in before.iter().zip(&after) {
        assert!(!e.is_empty(), "db {db}: nothing was written");
        assert_same(e, g, Duration::from_secs(120));
    }
}

/// DBSIZE of each of the 16 DBs.
/// What the restart tests compare: the listed keys of each DB (DUMP +
/// PTTL) and every DB's size.
pub struct Dataset {
    keys: Vec<(usize, Snapshot)>,
    sizes: Vec<i64>,
    sets: DbKeys,
}

impl Dataset {
    pub fn take(c: &mut Conn, sets: &[(usize, Vec<Vec<u8>>)]) -> Dataset {
        Dataset {
            keys: snapshot_dbs(c, sets),
            sizes: db_sizes(c),
            sets: sets.to_vec(),
        }
    }

    /// Every DB's size when it was taken.
    pub fn sizes(&self) -> &[i64] {
        &self.sizes
    }

    /// The server behind `c` holds the same (`what` names the check).
    #[track_caller]
    pub fn check(&self, c: &mut Conn, what: &str) {
        assert_eq!(db_sizes(c), self.sizes, "DB sizes {what}");
        self.check_keys(c);
    }

    /// The listed keys are the same (other keys may have come or gone).
    #[track_caller]
    pub fn check_keys(&self, c: &mut Conn) {
        compare_dbs(c, &self.keys, &self.sets);
    }
}

pub fn db_sizes(c: &mut Conn) -> Vec<i64> {
    let sizes = (0..16)
        .map(|db| {
            c.send(&["SELECT", &db.to_string()]);
            c.value("DBSIZE").as_int().unwrap_or(-1)
        })
        .collect();
    c.send(&["SELECT", "0"]);
    sizes
}

/// One field of INFO persistence (panics when it is missing).
pub fn persistence_field(c: &mut Conn, field: &str) -> String {
    let text = c.value("INFO persistence").as_text().unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO persistence"))
        .trim()
        .to_string()
}

/// The migration the restart tests share: slots 17, 300 and 901 get 200
/// keys and one tagged list each on the source `s`; slot 17 moves to the
/// server on `dst_port` with SLOTSMGRTTAGSLOT, slot 300 with the async
/// command; slot 901 stays. Returns the three slots.
pub fn migrate_three_slots(s: &mut Conn, dst_port: u16) -> [usize; 3] {
    let b = bv;
    let mut cmds = Vec::new();
    let slots = [17usize, 300, 901];
    for &slot in &slots {
        for k in keys_in_slot(slot, 200, &format!("m{slot}:")) {
            cmds.push(vec![b("SET"), b(&k), b("v")]);
        }
        let tagged = format!("{{{}}}list", keys_in_slot(slot, 1, "t")[0]);
        cmds.push(vec![b("RPUSH"), b(&tagged), b("a"), b("b")]);
    }
    pipeline(s, &cmds);
    assert_eq!(drain_slot_sync(s, dst_port, 5000, 17), 201);
    assert!(drain_slot_async(s, dst_port, 5000, 200, 1 << 20, 300, 50) > 0);
    slots
}
