//! RDB → stored value: everything `protocol::rdb` decodes (ours, Redis
//! 7.0's and Codis 3.2's encodings, old ones included) rebuilt in the
//! encoding Redis 7.0 gives a loaded value under this server's thresholds
//! (`hash-max-listpack-*`, `set-max-intset-entries`, `zset-max-listpack-*`,
//! `list-max-listpack-size`). Empty collections, repeated set / zset
//! members, repeated fields of a plain hash and NaN scores are bad data.

use protocol::rdb::{self, PayloadError, Value};

use crate::config::Config;
use crate::db::{Entry, Object};
use crate::ds::hash::Limits;
use crate::ds::list::DEFAULT_FILL;
use crate::ds::{Hash, List, Set, ZSet};

/// Strings longer than this are restored as `Object::Str` (no extra copy).
const BIG_STRING: usize = 64 * 1024;

/// A value rebuilt from its encoding, ready to become an [`Entry`].
#[derive(Debug, Clone, PartialEq)]
pub enum Restored {
    Str(Vec<u8>),
    Obj(Object),
}

impl Restored {
    /// The entry for `key` (`expire`: absolute unix ms; `lru`: LRU clock).
    pub fn into_entry(self, key: &[u8], expire: Option<u64>, lru: u32) -> Entry {
        match self {
            // Big strings keep their buffer (no copy into the entry blob);
            // both forms report the "raw" encoding past 44 bytes.
            Restored::Str(v) if v.len() > BIG_STRING => {
                Entry::new_obj(key, Object::Str(v), expire, lru)
            }
            Restored::Str(v) => Entry::new_str(key, &v, expire, lru),
            Restored::Obj(o) => Entry::new_obj(key, o, expire, lru),
        }
    }

    /// True for a list (RESTORE signals blocked clients for those).
    pub fn is_list(&self) -> bool {
        matches!(self, Restored::Obj(Object::List(_)))
    }
}

/// The encoding thresholds in force (read once per value or batch).
#[derive(Debug, Clone)]
pub struct Thresholds {
    pub hash: Limits,
    /// `list-max-listpack-size` (0 taken as the default).
    pub fill: i32,
    pub intset: usize,
    pub zset_entries: usize,
    pub zset_value: usize,
}

impl Thresholds {
    pub fn from_config(c: &Config) -> Thresholds {
        let us = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Thresholds {
            hash: Limits {
                max_entries: us(c.hash_max_listpack_entries),
                max_value: us(c.hash_max_listpack_value),
            },
            fill: list_fill(c),
            intset: us(c.set_max_intset_entries),
            zset_entries: us(c.zset_max_listpack_entries),
            zset_value: us(c.zset_max_listpack_value),
        }
    }
}

/// The quicklist fill in force (`list-max-listpack-size`, 0 = default).
pub fn list_fill(c: &Config) -> i32 {
    match c.list_max_listpack_size {
        0 => DEFAULT_FILL,
        f => f,
    }
}

/// Verifies, decodes and rebuilds a DUMP payload (no keyspace access:
/// callers decode before taking any slot lock).
pub fn restore_payload(payload: &[u8], t: &Thresholds) -> Result<Restored, PayloadError> {
    rebuild(rdb::decode(payload)?, t)
}

/// Decodes and rebuilds a value given as type byte and body (an RDB file's
/// value, no footer).
pub fn restore_value(value: &[u8], t: &Thresholds) -> Result<Restored, PayloadError> {
    rebuild(rdb::decode_value(value)?, t)
}

/// Rebuilds a decoded value in the encoding Redis 7.0 gives it.
pub fn rebuild(value: Value, t: &Thresholds) -> Result<Restored, PayloadError> {
    const BAD: PayloadError = PayloadError::BadFormat;
    Ok(match value {
        Value::Str(v) => Restored::Str(v),
        Value::List(items) => Restored::Obj(Object::List(List::from_iter(
            items.iter().map(Vec::as_slice),
            t.fill,
        ))),
        Value::Set(members) => {
            let mut s = Set::new();
            for m in &members {
                if !s.insert(m, t.intset) {
                    return Err(BAD);
                }
            }
            Restored::Obj(Object::Set(s))
        }
        Value::Hash(pairs) => {
            let mut h = Hash::new();
            for (f, v) in &pairs {
                h.set(f, v, &t.hash);
            }
            // A plain hash (RDB file) repeating a field is bad data.
            if h.len() != pairs.len() {
                return Err(BAD);
            }
            h.trim();
            Restored::Obj(Object::Hash(h))
        }
        Value::ZSet(mut items) => {
            if items.iter().any(|(_, s)| s.is_nan()) {
                return Err(BAD);
            }
            items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if items.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(BAD);
            }
            items.sort_by(|a, b| score_cmp(a.1, b.1).then_with(|| a.0.cmp(&b.0)));
            Restored::Obj(Object::ZSet(ZSet::from_sorted(
                &items,
                t.zset_entries,
                t.zset_value,
            )))
        }
        Value::Stream(ty, body) => {
            let v2 = ty == protocol::rdb::types::STREAM_LISTPACKS_2;
            match crate::ds::stream::Stream::read_rdb(&body, v2) {
                Some((s, n)) if n == body.len() => Restored::Obj(Object::Stream(Box::new(s))),
                _ => return Err(BAD),
            }
        }
    })
}

/// Score order as the skiplist compares (`<`, so -0 equals 0); no NaN here.
fn score_cmp(a: f64, b: f64) -> std::cmp::Ordering {
    a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{dump_payload, value_bytes};
    use crate::db::ValueRef;
    use crate::ds::set::MemberRef;

    pub(crate) fn t() -> Thresholds {
        Thresholds {
            hash: Limits::DEFAULT,
            fill: DEFAULT_FILL,
            intset: 512,
            zset_entries: 128,
            zset_value: 64,
        }
    }

    /// Through the payload and through the bare value: the same object.
    fn roundtrip(o: &Object) -> Object {
        let v = ValueRef::Obj(o);
        let a = restore_payload(&dump_payload(v), &t()).unwrap();
        let b = restore_value(&value_bytes(v), &t()).unwrap();
        assert_eq!(a, b);
        match a {
            Restored::Obj(r) => r,
            Restored::Str(s) => Object::Str(s),
        }
    }

    /// Every type and encoding comes back equal, in the encoding Redis 7.0
    /// gives it under the thresholds.
    #[test]
    fn every_type_and_encoding_roundtrips() {
        let small = List::from_iter([&b"a"[..], b"", b"c"], DEFAULT_FILL);
        let mut big = List::new();
        for i in 0..5000 {
            big.push_back(format!("element-{i}").as_bytes(), DEFAULT_FILL);
        }
        for l in [small, big] {
            let r = roundtrip(&Object::List(l.clone()));
            assert_eq!(r, Object::List(l));
        }

        let mut h = Hash::new();
        h.set(b"f", b"v", &Limits::DEFAULT);
        h.set(b"", b"", &Limits::DEFAULT);
        let Object::Hash(r) = roundtrip(&Object::Hash(h.clone())) else {
            panic!()
        };
        assert_eq!((r.encoding_name(), r == h), ("listpack", true));
        let mut big = Hash::new();
        for i in 0..200 {
            big.set(format!("f{i}").as_bytes(), b"v", &Limits::DEFAULT);
        }
        let Object::Hash(r) = roundtrip(&Object::Hash(big.clone())) else {
            panic!()
        };
        assert_eq!((r.encoding_name(), r == big), ("hashtable", true));
        let mut long = Hash::new();
        long.set(b"f", &[b'x'; 65], &Limits::DEFAULT);
        let Object::Hash(r) = roundtrip(&Object::Hash(long.clone())) else {
            panic!()
        };
        assert_eq!((r.encoding_name(), r == long), ("hashtable", true));

        let ints = Set::from_members([MemberRef::Int(3), MemberRef::Int(-1)], 512);
        let Object::Set(r) = roundtrip(&Object::Set(ints.clone())) else {
            panic!()
        };
        assert_eq!((r.encoding_name(), r == ints), ("intset", true));
        let many: Vec<i64> = (0..600).collect();
        let many = Set::from_members(many.iter().map(|&i| MemberRef::Int(i)), 512);
        let Object::Set(r) = roundtrip(&Object::Set(many.clone())) else {
            panic!()
        };
        assert_eq!((r.encoding_name(), r == many), ("hashtable", true));
        let mut strs = Set::new();
        strs.insert(b"x", 512);
        strs.insert(b"1", 512);
        let Object::Set(r) = roundtrip(&Object::Set(strs.clone())) else {
            panic!()
        };
        assert_eq!((r.encoding_name(), r == strs), ("hashtable", true));

        let mut items: Vec<(Vec<u8>, f64)> = vec![
            (b"n".to_vec(), f64::NEG_INFINITY),
            (b"z".to_vec(), -0.0),
            (b"a".to_vec(), 0.0),
            (b"b".to_vec(), 1.5),
            (b"i".to_vec(), f64::INFINITY),
        ];
        items.sort_by(|a, b| score_cmp(a.1, b.1).then_with(|| a.0.cmp(&b.0)));
        let z = ZSet::from_sorted(&items, 128, 64);
        let Object::ZSet(r) = roundtrip(&Object::ZSet(z.clone())) else {
            panic!()
        };
        assert_eq!((r.encoding_name(), r == z), ("listpack", true));
        let mut full = ZSet::new_full();
        for i in 0..300 {
            full.insert_new(format!("m{i}").as_bytes(), (i % 7) as f64 * 0.1, 128, 64);
        }
        let Object::ZSet(r) = roundtrip(&Object::ZSet(full.clone())) else {
            panic!()
        };
        assert_eq!((r.encoding_name(), r == full), ("skiplist", true));

        let s = vec![b'y'; BIG_STRING + 1];
        assert_eq!(roundtrip(&Object::Str(s.clone())), Object::Str(s));
        assert_eq!(
            restore_payload(&dump_payload(ValueRef::Str(b"v")), &t()),
            Ok(Restored::Str(b"v".to_vec()))
        );
    }

    /// Redis 7.0's own compact encodings (DUMP of redis-server 7.0.15).
    #[test]
    fn redis7_encodings_load() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        // RPUSH l a b c: quicklist 2 with one listpack node.
        let p = hex("12010210100000000300816102816202816302ff0a00c818b90c9533529e");
        let Ok(Restored::Obj(Object::List(l))) = restore_payload(&p, &t()) else {
            panic!("quicklist 2 not loaded")
        };
        let got: Vec<&[u8]> = l.iter().collect();
        assert_eq!(got, [&b"a"[..], b"b", b"c"]);
        // SADD s 1 2: intset (as a bare value, its footer cut off).
        let p = hex("0b0c0200000002000000010002000a006f7938b134eb202e");
        let Ok(Restored::Obj(Object::Set(s))) = restore_value(&p[..p.len() - 10], &t()) else {
            panic!("intset not loaded")
        };
        assert_eq!((s.encoding_name(), s.len()), ("intset", 2));
        // HSET h f v: listpack hash.
        let p = hex("100d0d0000000200816602817602ff0a0020f13d442354089d");
        let Ok(Restored::Obj(Object::Hash(h))) = restore_payload(&p, &t()) else {
            panic!("listpack hash not loaded")
        };
        assert_eq!(
            (h.encoding_name(), h.get(b"f")),
            ("listpack", Some(&b"v"[..]))
        );
        // ZADD z 1.5 m: listpack zset.
        let p = hex("110f0f0000000200816d0283312e3504ff0a0049d9876078254e8a");
        let Ok(Restored::Obj(Object::ZSet(z))) = restore_payload(&p, &t()) else {
            panic!("listpack zset not loaded")
        };
        assert_eq!((z.encoding_name(), z.score(b"m")), ("listpack", Some(1.5)));
    }

    fn payload(body: &[u8]) -> Vec<u8> {
        let mut p = body.to_vec();
        p.extend_from_slice(&7u16.to_le_bytes());
        let c = rdb::crc64(&p);
        p.extend_from_slice(&c.to_le_bytes());
        p
    }

    #[test]
    fn bad_data_like_redis() {
        let bad = |body: &[u8]| restore_payload(&payload(body), &t()).err();
        let b = Some(PayloadError::BadFormat);
        assert_eq!(bad(b"\x03\x01\x01a\xfd"), b, "nan score");
        assert_eq!(bad(b"\x03\x02\x01a\x011\x01a\x012"), b, "zset dup");
        assert_eq!(bad(b"\x02\x02\x01a\x01a"), b, "set dup");
        assert_eq!(bad(b"\x02\x00"), b, "empty set");
        assert_eq!(bad(b"\x01\x00"), b, "empty list");
        assert_eq!(bad(b"\x04\x02\x01a\x01x\x01a\x01y"), b, "hash dup");
        assert_eq!(bad(b"\x00\x01a"), None);
        assert_eq!(
            restore_value(b"\x02\x02\x01a\x01a", &t()).err(),
            b,
            "set dup, bare value"
        );
        let mut p = payload(b"\x00\x01a");
        p[1] ^= 1;
        assert_eq!(
            restore_payload(&p, &t()).err(),
            Some(PayloadError::VersionOrChecksum)
        );
    }

    /// A Redis 5–6 stream payload (type 15: no first / max-deleted ID,
    /// entries-added or groups' entries-read) restores with those derived
    /// as Redis 7.0 derives them; the same stream as type 19 keeps its own.
    #[test]
    fn stream_type_15_restores() {
        use crate::ds::stream::{Stream, StreamId};
        use protocol::rdb::file::write_string;
        use protocol::rdb::write_len;
        let src = crate::ds::stream::sample(20);
        // The type 15 body, written by hand as Redis 6 writes it.
        let mut body = vec![rdb::types::STREAM_LISTPACKS];
        write_len(&mut body, src.node_count() as u64);
        for (mid, lp) in src.nodes() {
            write_string(&mut body, &mid.to_key(), None);
            write_string(&mut body, lp, None);
        }
        write_len(&mut body, src.length);
        write_len(&mut body, src.last_id.ms);
        write_len(&mut body, src.last_id.seq);
        write_len(&mut body, src.groups.len() as u64);
        for (name, g) in &src.groups {
            write_string(&mut body, name, None);
            write_len(&mut body, g.last_id.ms);
            write_len(&mut body, g.last_id.seq);
            write_len(&mut body, g.pel.len() as u64);
            for (id, n) in &g.pel {
                body.extend_from_slice(&id.to_key());
                body.extend_from_slice(&n.delivery_time.to_le_bytes());
                write_len(&mut body, n.delivery_count);
            }
            write_len(&mut body, g.consumers.len() as u64);
            for (c, cons) in &g.consumers {
                write_string(&mut body, c, None);
                body.extend_from_slice(&cons.seen_time.to_le_bytes());
                write_len(&mut body, cons.pel.len() as u64);
                for id in &cons.pel {
                    body.extend_from_slice(&id.to_key());
                }
            }
        }
        let Ok(Restored::Obj(Object::Stream(got))) = restore_payload(&payload(&body), &t()) else {
            panic!("type 15 payload refused")
        };
        let mut want: Stream = src.clone();
        want.first_id = src.edge_id(true).unwrap();
        want.max_deleted = StreamId::MIN;
        want.entries_added = src.length;
        for g in want.groups.values_mut() {
            g.entries_read = -1;
        }
        // g1 was read up to an ID inside the stream with deletions before
        // it: unknown; g2 at 0-0, before the first entry: 0 read.
        want.groups.get_mut(&b"g2"[..]).unwrap().entries_read = 0;
        assert_eq!(*got, want);
        // The same bytes as type 19 miss fields: refused, not misread.
        let mut as19 = body.clone();
        as19[0] = rdb::types::STREAM_LISTPACKS_2;
        assert!(restore_payload(&payload(&as19), &t()).is_err());
        // And the type 19 payload of the stream restores it whole.
        assert_eq!(
            roundtrip(&Object::Stream(Box::new(src.clone()))),
            Object::Stream(Box::new(src))
        );
    }
}
