//! Unit tests of Codis' tag index (codis.md §2.1, checklist §6 item 2): per
//! slot, the index (tag CRC-32 → keys) must name exactly the tagged keys the
//! slot holds after every path that adds or drops keys — SET/DEL, lazy and
//! active expiry, RENAME, MOVE, COPY, SWAPDB, FLUSHDB/FLUSHALL, SLOTSDEL
//! (`SlotRef::clear`) and RESTORE (`put` of an object) — driven through the
//! keyspace API the command handlers use.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::ds::List;

type Index = BTreeSet<(u32, Vec<u8>)>;

fn crc_of(key: &[u8]) -> Option<u32> {
    let (tag, tagged) = hash_tag(key);
    tagged.then(|| crc32fast::hash(tag))
}

/// Asserts the index of every slot of `db` equals what its keys imply, and
/// returns the whole index.
fn check(ks: &Keyspace, db: &Db) -> Index {
    let mut all = Index::new();
    for s in 0..SLOTS {
        let r = ks.lock_slot(db, s);
        let expected: Index = r
            .iter()
            .filter_map(|e| crc_of(e.key()).map(|c| (c, e.key().to_vec())))
            .collect();
        let got: Index = r.tag_index().map(|(c, k)| (c, k.to_vec())).collect();
        assert_eq!(got, expected, "tag index of slot {s}");
        assert!(
            r.t.tags
                .as_ref()
                .is_none_or(|t| !t.is_empty() && t.values().all(|v| !v.is_empty())),
            "slot {s} keeps an empty tag group"
        );
        for &(c, ref k) in &got {
            assert_eq!(slot_of(k), s, "{k:?} indexed in the wrong slot");
            assert!(r.tag_keys(c).contains(k));
        }
        all.extend(got);
    }
    all
}

fn set(ks: &Keyspace, db: &Db, k: &str, exp: Option<u64>) {
    ks.lock_key(db, k.as_bytes())
        .put(Entry::new_str(k.as_bytes(), b"v", exp, 0));
}

fn del(ks: &Keyspace, db: &Db, k: &str) -> bool {
    ks.lock_key(db, k.as_bytes()).remove(k.as_bytes()).is_some()
}

fn group(ks: &Keyspace, db: &Db, tag: &str) -> BTreeSet<Vec<u8>> {
    let crc = crc32fast::hash(tag.as_bytes());
    ks.lock_slot(db, (crc as usize) % SLOTS)
        .tag_keys(crc)
        .into_iter()
        .collect()
}

fn names(v: &[&str]) -> BTreeSet<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// RENAME as the handler does it: take the source entry out, rebuild it
/// under the new name (overwriting the destination), in one multi-slot lock.
fn rename(ks: &Keyspace, db: &Db, from: &str, to: &str) {
    let mut m = ks.lock_keys(db, [from.as_bytes(), to.as_bytes()]);
    let e = m.remove(from.as_bytes()).expect("source exists");
    let v = e.as_str().expect("string").to_vec();
    m.put(Entry::new_str(to.as_bytes(), &v, e.expire(), 0));
}

#[test]
fn set_del_overwrite() {
    let ks = Keyspace::new(1);
    let db = ks.db(0).unwrap();
    set(&ks, db, "{user}:1", None);
    set(&ks, db, "{user}:2", None);
    set(&ks, db, "plain", None);
    set(&ks, db, "{}empty", None);
    set(&ks, db, "a{b}c", None);
    assert_eq!(group(&ks, db, "user"), names(&["{user}:1", "{user}:2"]));
    assert_eq!(group(&ks, db, "b"), names(&["a{b}c"]));
    // Overwriting keeps exactly one index entry; the empty tag is a tag.
    set(&ks, db, "{user}:1", Some(u64::MAX));
    assert_eq!(check(&ks, db).len(), 4);
    assert_eq!(group(&ks, db, ""), names(&["{}empty"]));
    assert!(del(&ks, db, "{user}:1"));
    assert!(!del(&ks, db, "{user}:1"));
    assert_eq!(group(&ks, db, "user"), names(&["{user}:2"]));
    assert!(del(&ks, db, "{user}:2"));
    assert!(group(&ks, db, "user").is_empty());
    assert!(del(&ks, db, "plain"));
    assert_eq!(check(&ks, db).len(), 2);
}

#[test]
fn lazy_and_active_expiry() {
    let ks = Keyspace::new(1);
    let db = ks.db(0).unwrap();
    for i in 0..50 {
        set(
            &ks,
            db,
            &format!("{{t}}:{i}"),
            Some(if i % 2 == 0 { 10 } else { 1000 }),
        );
        set(&ks, db, &format!("{{u{i}}}x"), Some(10));
    }
    // Lazy: a lookup after the deadline drops the key and its index entry.
    {
        let mut r = ks.lock_key(db, b"{t}:0");
        assert!(r.get(b"{t}:0", 11).is_none());
    }
    assert_eq!(group(&ks, db, "t").len(), 49);
    check(&ks, db);
    // Active: the cycle reclaims the rest of the expired keys.
    let removed = ks.active_expire(11, Duration::from_secs(10));
    assert_eq!(removed, 24 + 50);
    let idx = check(&ks, db);
    assert_eq!(idx.len(), 25);
    assert_eq!(group(&ks, db, "t").len(), 25);
    // SCAN and RANDOMKEY expire what they meet, too.
    ks.scan(db, 0, 1000, 2000, |_, _| {});
    assert!(check(&ks, db).is_empty());
    for i in 0..10 {
        set(&ks, db, &format!("{{r}}{i}"), Some(5));
    }
    assert_eq!(ks.random_key(db, 100), None);
    assert!(check(&ks, db).is_empty());
}

#[test]
fn rename_move_copy() {
    let ks = Keyspace::new(2);
    let (d0, d1) = (ks.db(0).unwrap(), ks.db(1).unwrap());
    set(&ks, d0, "{a}1", None);
    set(&ks, d0, "{b}1", None);
    // RENAME between tag groups (and onto an existing key).
    rename(&ks, d0, "{a}1", "{b}2");
    assert!(group(&ks, d0, "a").is_empty());
    assert_eq!(group(&ks, d0, "b"), names(&["{b}1", "{b}2"]));
    rename(&ks, d0, "{b}2", "{b}1");
    assert_eq!(group(&ks, d0, "b"), names(&["{b}1"]));
    rename(&ks, d0, "{b}1", "untagged");
    assert!(check(&ks, d0).is_empty());
    rename(&ks, d0, "untagged", "{c}z");
    assert_eq!(group(&ks, d0, "c"), names(&["{c}z"]));
    // MOVE to DB 1.
    {
        let (mut a, mut b) = ks.locker().lock_cross_db(0, b"{c}z", 1, b"{c}z").unwrap();
        let e = a.remove(b"{c}z").unwrap();
        b.insert(e);
    }
    assert!(check(&ks, d0).is_empty());
    assert_eq!(group(&ks, d1, "c"), names(&["{c}z"]));
    // COPY inside DB 1 and across to DB 0.
    {
        let mut m = ks.lock_keys(d1, [&b"{c}z"[..], b"{c}copy"]);
        let e = m.get(b"{c}z", 0).unwrap().clone();
        let v = e.as_str().unwrap().to_vec();
        m.put(Entry::new_str(b"{c}copy", &v, None, 0));
    }
    {
        let (mut a, mut b) = ks
            .locker()
            .lock_cross_db(1, b"{c}z", 0, b"{d}copy")
            .unwrap();
        let v = a.get(b"{c}z", 0).unwrap().as_str().unwrap().to_vec();
        b.put(Entry::new_str(b"{d}copy", &v, None, 0));
    }
    assert_eq!(group(&ks, d1, "c"), names(&["{c}z", "{c}copy"]));
    assert_eq!(group(&ks, d0, "d"), names(&["{d}copy"]));
    check(&ks, d0);
    check(&ks, d1);
}

#[test]
fn swapdb_flushdb_flushall_slotsdel_restore() {
    let ks = Keyspace::new(3);
    let (d0, d1, d2) = (ks.db(0).unwrap(), ks.db(1).unwrap(), ks.db(2).unwrap());
    for i in 0..200 {
        set(&ks, d0, &format!("{{g{}}}:{i}", i % 7), None);
        set(&ks, d1, &format!("{{h}}:{i}"), None);
        set(&ks, d2, &format!("k{i}"), None);
    }
    let before0 = check(&ks, d0);
    let before1 = check(&ks, d1);
    ks.swap_db(0, 1);
    assert_eq!(check(&ks, d0), before1);
    assert_eq!(check(&ks, d1), before0);
    assert_eq!(group(&ks, d0, "h").len(), 200);
    assert!(group(&ks, d1, "h").is_empty());
    // SLOTSDEL empties one slot: its tag groups go with it.
    let hslot = slot_of(b"{h}");
    assert_eq!(ks.lock_slot(d0, hslot).clear(), 200);
    assert!(check(&ks, d0).is_empty());
    // RESTORE: an object value (put replaces or adds).
    let mut l = List::default();
    l.push_back(b"x", -2);
    ks.lock_key(d0, b"{h}list")
        .put(Entry::new_obj(b"{h}list", Object::List(l.clone()), None, 0));
    ks.lock_key(d0, b"{h}list").put(Entry::new_obj(
        b"{h}list",
        Object::List(l),
        Some(u64::MAX),
        0,
    ));
    assert_eq!(group(&ks, d0, "h"), names(&["{h}list"]));
    // FLUSHDB, then FLUSHALL.
    ks.flush_db(1);
    assert!(check(&ks, d1).is_empty());
    for i in 0..3 {
        ks.flush_db(i);
    }
    for d in [d0, d1, d2] {
        assert!(check(&ks, d).is_empty());
    }
    // The index works again after a flush.
    set(&ks, d1, "{g0}:again", None);
    assert_eq!(group(&ks, d1, "g0"), names(&["{g0}:again"]));
}

#[test]
fn randomized_workload_stays_exact() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let ks = Keyspace::new(2);
    let keys: Vec<String> = (0..60)
        .map(|i| match i % 4 {
            0 => format!("plain{i}"),
            1 => format!("{{t{}}}:{i}", i % 5),
            2 => format!("x{{t{}}}{i}", i % 3),
            _ => format!("{{}}{i}"),
        })
        .collect();
    let mut now = 100u64;
    for round in 0..4000 {
        let db = ks.db(rng.random_range(0..2)).unwrap();
        let k = &keys[rng.random_range(0..keys.len())];
        let k2 = &keys[rng.random_range(0..keys.len())];
        match rng.random_range(0..10) {
            0..=2 => {
                let exp = rng.random_bool(0.3).then(|| now + rng.random_range(0..20));
                set(&ks, db, k, exp);
            }
            3 => {
                del(&ks, db, k);
            }
            4 => {
                let mut r = ks.lock_key(db, k.as_bytes());
                r.get(k.as_bytes(), now);
            }
            5 if k != k2 => {
                let mut m = ks.lock_keys(db, [k.as_bytes(), k2.as_bytes()]);
                if let Some(e) = m.remove(k.as_bytes()) {
                    m.put(Entry::new_str(k2.as_bytes(), b"r", e.expire(), 0));
                }
            }
            6 => {
                let (mut a, mut b) = ks
                    .locker()
                    .lock_cross_db(0, k.as_bytes(), 1, k.as_bytes())
                    .unwrap();
                if b.peek(k.as_bytes()).is_none()
                    && let Some(e) = a.remove(k.as_bytes())
                {
                    b.insert(e);
                }
            }
            7 => {
                ks.active_expire(now, Duration::from_millis(50));
            }
            8 if round % 50 == 0 => ks.swap_db(0, 1),
            9 if round % 400 == 0 => {
                ks.flush_db(rng.random_range(0..2));
            }
            _ => {
                ks.lock_key(db, k.as_bytes()).clear();
            }
        }
        now += rng.random_range(0..3);
        if round % 500 == 0 {
            check(&ks, ks.db(0).unwrap());
            check(&ks, ks.db(1).unwrap());
        }
    }
    check(&ks, ks.db(0).unwrap());
    check(&ks, ks.db(1).unwrap());
}

#[test]
fn slot_tables_stay_small() {
    // 16 DBs × 1024 of them exist from the start (used_memory_startup).
    assert!(std::mem::size_of::<std::sync::Mutex<super::SlotTable>>() <= 72);
}
