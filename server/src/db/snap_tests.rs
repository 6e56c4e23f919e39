//! Unit tests of the point-in-time snapshot hook ([`Snapshots`]): whatever
//! commands do after `snapshot_begin`, the saver sees every slot exactly
//! once, with its contents at the snapshot point.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;

/// (db, key) → value.
type Written = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

/// Collects what the snapshot wrote: (db, key) → value, and how many times
/// each slot was written.
/// Keys starting with `big` are deferred and written a byte per slice.
#[derive(Default)]
struct Collect {
    keys: Mutex<Written>,
    slots: Mutex<BTreeMap<(usize, usize), usize>>,
    /// Deferred keys in progress: bytes written so far.
    partial: Mutex<Written>,
    slices: AtomicUsize,
    finished_early: AtomicUsize,
}

impl Collect {
    fn done(&self, db: usize, key: &[u8], v: Vec<u8>) {
        let mut k = self.keys.lock().unwrap();
        assert!(
            k.insert((db, key.to_vec()), v).is_none(),
            "key written twice"
        );
    }
}

impl SlotSaver for Collect {
    fn save_slot(&self, db: usize, slot: usize, t: &SlotTable) -> Vec<Box<[u8]>> {
        *self.slots.lock().unwrap().entry((db, slot)).or_default() += 1;
        let mut deferred = Vec::new();
        for e in t.entries() {
            if e.key().starts_with(b"big") {
                deferred.push(e.key().into());
                continue;
            }
            self.done(db, e.key(), e.as_str().unwrap_or_default().to_vec());
        }
        deferred
    }

    fn slice_key(&self, db: usize, e: &Entry) -> bool {
        self.slices.fetch_add(1, Ordering::Relaxed);
        let v = e.as_str().unwrap_or_default();
        let mut p = self.partial.lock().unwrap();
        let got = p.entry((db, e.key().to_vec())).or_default();
        got.push(v[got.len()]);
        if got.len() < v.len() {
            return false;
        }
        let got = p.remove(&(db, e.key().to_vec())).unwrap();
        drop(p);
        self.done(db, e.key(), got);
        true
    }

    fn finish_key(&self, db: usize, e: &Entry) {
        self.finished_early.fetch_add(1, Ordering::Relaxed);
        let v = e.as_str().unwrap_or_default();
        let mut got = self
            .partial
            .lock()
            .unwrap()
            .remove(&(db, e.key().to_vec()))
            .unwrap_or_default();
        got.extend_from_slice(&v[got.len()..]);
        self.done(db, e.key(), got);
    }
}

fn set(ks: &Keyspace, db: usize, key: &str, val: &str) {
    let d = ks.db(db).unwrap();
    let mut r = ks.lock_key(d, key.as_bytes());
    r.put(Entry::new_str(key.as_bytes(), val.as_bytes(), None, 0));
}

#[test]
fn snapshot_sees_the_state_at_its_start() {
    let ks = Keyspace::new(2);
    for i in 0..2000 {
        set(&ks, i % 2, &format!("k{i}"), "old");
    }
    let c = Arc::new(Collect::default());
    let mut sizes = Vec::new();
    let epoch = ks.snapshot_begin(c.clone(), |ks| {
        sizes = (0..2).map(|i| ks.db(i).unwrap().len()).collect();
    });
    assert_eq!(sizes, [1000, 1000]);
    assert_eq!(ks.snapshot_active(), epoch);
    // Changes after the point: overwrite, delete, create, flush, swap.
    for i in 0..500 {
        set(&ks, i % 2, &format!("k{i}"), "new");
        set(&ks, 0, &format!("fresh{i}"), "new");
    }
    {
        let d = ks.db(1).unwrap();
        let mut r = ks.lock_key(d, b"k1999");
        r.remove(b"k1999");
    }
    ks.swap_db(0, 1);
    ks.flush_db(0);
    assert!(ks.snapshot_walk(epoch, || true));
    assert_eq!(ks.snapshot_active(), 0);
    let keys = c.keys.lock().unwrap();
    assert_eq!(keys.len(), 2000);
    assert!(keys.values().all(|v| v == b"old"));
    assert!(keys.keys().all(|(db, k)| {
        let i: usize = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
        i % 2 == *db
    }));
    let slots = c.slots.lock().unwrap();
    assert!(slots.values().all(|n| *n == 1), "a slot was written twice");
    // Writes after the end reach no saver.
    set(&ks, 0, "after", "x");
    assert_eq!(keys.len(), 2000);
}

#[test]
fn an_ended_snapshot_writes_nothing_more() {
    let ks = Keyspace::new(1);
    set(&ks, 0, "a", "1");
    let c = Arc::new(Collect::default());
    let epoch = ks.snapshot_begin(c.clone(), |_| {});
    ks.snapshot_end(epoch);
    set(&ks, 0, "a", "2");
    assert!(!ks.snapshot_walk(epoch, || true));
    assert!(c.keys.lock().unwrap().is_empty());
    // A later snapshot starts afresh.
    let c2 = Arc::new(Collect::default());
    let e2 = ks.snapshot_begin(c2.clone(), |_| {});
    assert!(e2 > epoch);
    assert!(ks.snapshot_walk(e2, || true));
    assert_eq!(
        c2.keys
            .lock()
            .unwrap()
            .get(&(0, b"a".to_vec()))
            .map(Vec::as_slice),
        Some(&b"2"[..])
    );
}

/// Big values are written by the walker a slice per lock, and one changed
/// (or dropped) mid-way is finished first, as it was at the snapshot point.
#[test]
fn deferred_big_values_are_written_at_the_snapshot_point() {
    let ks = Keyspace::new(2);
    set(&ks, 0, "big1", "0123456789");
    set(&ks, 0, "big2", "abcdefghij");
    set(&ks, 1, "big3", "ABCDEFGHIJ");
    set(&ks, 0, "small", "s");
    let saver = Arc::new(Collect::default());
    let epoch = ks.snapshot_begin(saver.clone(), |_| {});
    // A change to a deferred key before the walker: finished first.
    set(&ks, 0, "big2", "changed");
    // The walker, with a change to big1 mid-way and big3 dropped mid-way.
    let mut n = 0;
    assert!(ks.snapshot_walk(epoch, || {
        n += 1;
        if saver.slices.load(Ordering::Relaxed) == 3 {
            set(&ks, 0, "big1", "later");
            let d = ks.db(1).unwrap();
            ks.lock_key(d, b"big3").remove(b"big3");
        }
        true
    }));
    let k = saver.keys.lock().unwrap();
    assert_eq!(k[&(0, b"big1".to_vec())], b"0123456789");
    assert_eq!(k[&(0, b"big2".to_vec())], b"abcdefghij");
    assert_eq!(k[&(1, b"big3".to_vec())], b"ABCDEFGHIJ");
    assert_eq!(k[&(0, b"small".to_vec())], b"s");
    assert!(saver.finished_early.load(Ordering::Relaxed) >= 2);
    assert!(saver.partial.lock().unwrap().is_empty());
    // Nothing deferred is left behind.
    for db in 0..2 {
        for s in 0..SLOTS {
            assert!(
                ks.db(db).unwrap().slots[s]
                    .lock()
                    .unwrap()
                    .deferred
                    .is_none()
            );
        }
    }
}
