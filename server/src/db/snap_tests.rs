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
#[derive(Default)]
struct Collect {
    keys: Mutex<Written>,
    slots: Mutex<BTreeMap<(usize, usize), usize>>,
}

impl SlotSaver for Collect {
    fn save_slot(&self, db: usize, slot: usize, t: &SlotTable) {
        *self.slots.lock().unwrap().entry((db, slot)).or_default() += 1;
        let mut k = self.keys.lock().unwrap();
        for e in t.entries() {
            let v = e.as_str().unwrap_or_default().to_vec();
            assert!(
                k.insert((db, e.key().to_vec()), v).is_none(),
                "key written twice"
            );
        }
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
