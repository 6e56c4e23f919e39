//! Unit tests of the point-in-time snapshot hook ([`Snapshots`]): whatever
//! commands do after `snapshot_begin`, the saver sees every key of the
//! snapshot point exactly once, with its value at that point.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;

/// (db, key) → value.
type Written = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

/// (key, value) pairs added, not committed.
type Batch = Vec<(Vec<u8>, Vec<u8>)>;

/// Collects what the snapshot wrote: (db, key) → value.
/// Keys starting with `big` are written a byte per slice by the walker.
#[derive(Default)]
struct Collect {
    keys: Mutex<Written>,
    /// Per thread: `add`ed, not yet committed.
    batch: Mutex<std::collections::HashMap<std::thread::ThreadId, Batch>>,
    /// Keys written one by one (`save_key`: a client settled them).
    one_by_one: AtomicUsize,
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
    fn is_big(&self, e: &Entry) -> bool {
        e.key().starts_with(b"big")
    }

    fn add(&self, e: &Entry) -> usize {
        let mut all = self.batch.lock().unwrap();
        let b = all.entry(std::thread::current().id()).or_default();
        b.push((e.key().to_vec(), e.as_str().unwrap_or_default().to_vec()));
        // As if each key took 1 KiB: batches of 16 keys.
        b.len() * 1024
    }

    fn commit(&self, db: usize) {
        let batch = self
            .batch
            .lock()
            .unwrap()
            .remove(&std::thread::current().id())
            .unwrap_or_default();
        for (k, v) in batch {
            self.done(db, &k, v);
        }
    }

    fn save_key(&self, db: usize, e: &Entry) {
        self.one_by_one.fetch_add(1, Ordering::Relaxed);
        self.add(e);
        self.commit(db);
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
    // One of big1 / big3 was mid-way (finished), the other not started
    // (written whole), as was big2.
    assert_eq!(saver.finished_early.load(Ordering::Relaxed), 1);
    assert_eq!(saver.one_by_one.load(Ordering::Relaxed), 2);
    assert!(saver.partial.lock().unwrap().is_empty());
    // Nothing pending is left behind.
    for db in 0..2 {
        for s in 0..SLOTS {
            assert!(ks.db(db).unwrap().slots[s].lock().unwrap().snap.is_none());
        }
    }
}

/// A client's change writes the one key it changes, not its slot; the
/// walker writes the rest.
#[test]
fn a_change_writes_only_its_key() {
    let ks = Keyspace::new(1);
    for i in 0..3000 {
        set(&ks, 0, &format!("{{t}}k{i}"), "old");
    }
    let c = Arc::new(Collect::default());
    let epoch = ks.snapshot_begin(c.clone(), |_| {});
    set(&ks, 0, "{t}k7", "new");
    set(&ks, 0, "{t}fresh", "new");
    assert_eq!(c.keys.lock().unwrap().len(), 1);
    assert_eq!(c.one_by_one.load(Ordering::Relaxed), 1);
    assert!(ks.snapshot_walk(epoch, || true));
    let keys = c.keys.lock().unwrap();
    assert_eq!(keys.len(), 3000);
    assert!(keys.values().all(|v| v == b"old"));
}

/// The walker's batches are bounded, and keys moved by a table growing
/// mid-walk are still written once each.
#[test]
fn the_walk_survives_growth_between_batches() {
    let ks = Keyspace::new(1);
    for i in 0..20_000 {
        set(&ks, 0, &format!("{{t}}k{i}"), "old");
    }
    let c = Arc::new(Collect::default());
    let epoch = ks.snapshot_begin(c.clone(), |_| {});
    let mut grown = 0;
    let mut next = 20_000;
    assert!(ks.snapshot_walk(epoch, || {
        // Once the walker is in the slot: grow it (rehash) between
        // batches, and change old keys.
        if !c.keys.lock().unwrap().is_empty() && grown < 10 {
            grown += 1;
            for _ in 0..2000 {
                set(&ks, 0, &format!("{{t}}k{next}"), "new");
                set(&ks, 0, &format!("{{t}}k{}", next % 20_000), "new");
                next += 1;
            }
        }
        true
    }));
    assert_eq!(grown, 10);
    let keys = c.keys.lock().unwrap();
    assert_eq!(keys.len(), 20_000);
    assert!(keys.values().all(|v| v == b"old"));
}

/// An abandoned snapshot leaves some keys written, some not; the next one
/// still writes every key once.
#[test]
fn a_snapshot_after_an_abandoned_one_writes_every_key() {
    let ks = Keyspace::new(1);
    for i in 0..1000 {
        set(&ks, 0, &format!("{{t}}k{i}"), "v1");
    }
    let c = Arc::new(Collect::default());
    let epoch = ks.snapshot_begin(c.clone(), |_| {});
    for i in 0..300 {
        set(&ks, 0, &format!("{{t}}k{i}"), "v2");
    }
    ks.snapshot_end(epoch);
    for i in 0..100 {
        set(&ks, 0, &format!("{{t}}k{i}"), "v3");
    }
    let c2 = Arc::new(Collect::default());
    let e2 = ks.snapshot_begin(c2.clone(), |_| {});
    assert!(ks.snapshot_walk(e2, || true));
    let keys = c2.keys.lock().unwrap();
    assert_eq!(keys.len(), 1000);
    for i in 0..1000 {
        let want: &[u8] = if i < 100 {
            b"v3"
        } else if i < 300 {
            b"v2"
        } else {
            b"v1"
        };
        assert_eq!(keys[&(0, format!("{{t}}k{i}").into_bytes())], want, "k{i}");
    }
}

/// Writers on several threads (overwrites, deletes, creations, expiry
/// changes, cross-slot renames) while the walker runs: the saver gets
/// exactly the state at the snapshot point.
#[test]
fn concurrent_writers_see_a_consistent_snapshot() {
    let ks = Arc::new(Keyspace::new(2));
    for i in 0..20_000 {
        set(&ks, i % 2, &format!("k{i}"), &format!("v{i}"));
    }
    // (No writer runs before the snapshot point.)
    let expected: Written = (0..20_000)
        .map(|i| {
            (
                (i % 2, format!("k{i}").into_bytes()),
                format!("v{i}").into_bytes(),
            )
        })
        .collect();
    let c = Arc::new(Collect::default());
    let epoch = ks.snapshot_begin(c.clone(), |_| {});
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (ks, stop) = (ks.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = w * 7919;
                while !stop.load(Ordering::Relaxed) {
                    i = (i * 31 + 17) % 20_000;
                    let db = i % 2;
                    let d = ks.db(db).unwrap();
                    let key = format!("k{i}");
                    match i % 5 {
                        0 => set(&ks, db, &key, "new"),
                        1 => {
                            ks.lock_key(d, key.as_bytes()).remove(key.as_bytes());
                        }
                        2 => set(&ks, db, &format!("fresh{i}"), "new"),
                        3 => {
                            ks.lock_key(d, key.as_bytes())
                                .set_expire(key.as_bytes(), Some(u64::MAX / 2));
                        }
                        _ => {
                            let to = format!("r{i}");
                            let mut m = ks.lock_keys(d, [key.as_bytes(), to.as_bytes()]);
                            if let Some(e) = m.remove(key.as_bytes()) {
                                let moved = e.with_key(to.as_bytes(), None);
                                m.put(moved);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    assert!(ks.snapshot_walk(epoch, || {
        std::thread::yield_now();
        true
    }));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let keys = c.keys.lock().unwrap();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| keys.get(*k) != Some(*v))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "missing or changed: {wrong:?}");
    assert_eq!(keys.len(), expected.len());
}

/// A command that changes nothing reads a pending key without writing it
/// into the snapshot (the walker writes it, as it was); a lookup of any
/// other command writes it first. The guard nests (EXEC).
#[test]
fn read_only_lookups_leave_pending_keys_to_the_walker() {
    let ks = Keyspace::new(1);
    set(&ks, 0, "{t}a", "1");
    set(&ks, 0, "{t}b", "2");
    let c = Arc::new(Collect::default());
    let epoch = ks.snapshot_begin(c.clone(), |_| {});
    let d = ks.db(0).unwrap();
    {
        let _ro = ReadOnly::enter(true);
        assert!(ks.lock_key(d, b"{t}a").get(b"{t}a", 0).is_some());
        assert!(ks.lock_key(d, b"{t}a").peek(b"{t}a").is_some());
        {
            // A write inside (EXEC): its lookups settle.
            let _w = ReadOnly::enter(false);
            assert!(ks.lock_key(d, b"{t}b").get(b"{t}b", 0).is_some());
        }
        assert!(ks.lock_key(d, b"{t}a").get(b"{t}a", 0).is_some());
    }
    assert_eq!(
        c.one_by_one.load(Ordering::Relaxed),
        1,
        "only b was written early"
    );
    assert!(ks.snapshot_walk(epoch, || true));
    let keys = c.keys.lock().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[&(0, b"{t}a".to_vec())], b"1");
}
