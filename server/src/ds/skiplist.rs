//! The full ("skiplist") encoding of a sorted set: a skiplist with spans (as
//! in Redis' `zskiplist`, ordered by score then member bytes, levels drawn with
//! p = 1/4 up to 32) plus a member index (member → node) for O(1) ZSCORE.
//!
//! Nodes live in an arena (`Vec<Node>`) linked by `u32` indexes, so there is
//! no `unsafe` and no per-link pointer cost; freed nodes go on a free list and
//! are reused. Level 0 is stored inline in the node (3 of 4 nodes have only
//! that level); higher levels are a small boxed slice. The member index is a
//! `hashbrown::HashTable<u32>` that stores only node indexes and hashes the
//! member through the arena, so member bytes are stored once.
//!
//! Every position-based operation goes through ranks (0-based here): callers
//! turn score/lex ranges into a rank interval with [`SkipList::count_while`]
//! and then read or delete that interval.

use hashbrown::HashTable;

pub const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;
const HEAD: u32 = u32::MAX - 1;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Level {
    next: u32,
    span: u32,
}

#[derive(Debug, Clone)]
struct Node {
    member: Box<[u8]>,
    score: f64,
    back: u32,
    l0: Level,
    upper: Option<Box<[Level]>>,
}

impl Node {
    #[cfg(test)]
    fn height(&self) -> usize {
        1 + self.upper.as_ref().map_or(0, |u| u.len())
    }
}

/// Orders (score, member) pairs as Redis does: by score, then member bytes.
#[inline]
pub fn before(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

#[derive(Clone)]
pub struct SkipList {
    nodes: Vec<Node>,
    free: Vec<u32>,
    head: [Level; MAX_LEVEL],
    level: usize,
    len: usize,
    tail: u32,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    /// Member bytes plus upper-level bytes of live nodes (O(1) heap_size).
    extra_bytes: usize,
    /// Bumped whenever an index insert may move entries between buckets
    /// (ZSCAN cursors from an older generation restart).
    generation: u32,
}

impl std::fmt::Debug for SkipList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for SkipList {
    fn default() -> Self {
        Self::new()
    }
}

impl SkipList {
    pub fn new() -> Self {
        SkipList {
            nodes: Vec::new(),
            free: Vec::new(),
            head: [Level { next: NIL, span: 0 }; MAX_LEVEL],
            level: 1,
            len: 0,
            tail: NIL,
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            extra_bytes: 0,
            generation: 0,
        }
    }

    pub fn with_capacity(n: usize) -> Self {
        let mut s = Self::new();
        s.nodes.reserve(n);
        s.index.reserve(n, |_| 0);
        s
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes.
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * 4
            + self.index.capacity() * 5
            + self.extra_bytes
    }

    #[inline]
    fn lv(&self, x: u32, i: usize) -> Level {
        if x == HEAD {
            self.head[i]
        } else {
            let n = &self.nodes[x as usize];
            if i == 0 {
                n.l0
            } else {
                n.upper
                    .as_ref()
                    .map_or(Level { next: NIL, span: 0 }, |u| u[i - 1])
            }
        }
    }

    #[inline]
    fn lv_mut(&mut self, x: u32, i: usize) -> &mut Level {
        if x == HEAD {
            &mut self.head[i]
        } else {
            let n = &mut self.nodes[x as usize];
            if i == 0 {
                &mut n.l0
            } else {
                match n.upper.as_mut() {
                    Some(u) => &mut u[i - 1],
                    None => unreachable!("level above node height"),
                }
            }
        }
    }

    fn hash_of(&self, m: &[u8]) -> u64 {
        self.hasher.hash_one(m)
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        let h = self.hash_of(m);
        self.index
            .find(h, |&i| &*self.nodes[i as usize].member == m)
            .copied()
    }

    /// The score of `member`.
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.find(m).map(|i| self.nodes[i as usize].score)
    }

    fn random_level() -> usize {
        let r: u64 = rand::random();
        (1 + (r.trailing_zeros() as usize) / 2).min(MAX_LEVEL)
    }

    /// Inserts a member that is not present yet.
    pub fn insert(&mut self, score: f64, member: Box<[u8]>) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.lv(x, i);
                if l.next == NIL {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if before(n.score, &n.member, score, &member) {
                    rank[i] += l.span;
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let height = Self::random_level();
        if height > self.level {
            for i in self.level..height {
                rank[i] = 0;
                update[i] = HEAD;
                self.head[i].span = self.len as u32;
            }
            self.level = height;
        }
        self.extra_bytes += member.len() + (height - 1) * std::mem::size_of::<Level>();
        let node = Node {
            member,
            score,
            back: NIL,
            l0: Level { next: NIL, span: 0 },
            upper: if height > 1 {
                Some(vec![Level { next: NIL, span: 0 }; height - 1].into_boxed_slice())
            } else {
                None
            },
        };
        let id = match self.free.pop() {
            Some(f) => {
                self.nodes[f as usize] = node;
                f
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        for i in 0..height {
            let up = self.lv(update[i], i);
            let l = self.lv_mut(id, i);
            l.next = up.next;
            l.span = up.span - (rank[0] - rank[i]);
            let u = self.lv_mut(update[i], i);
            u.next = id;
            u.span = (rank[0] - rank[i]) + 1;
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(height) {
            self.lv_mut(u, i).span += 1;
        }
        let back = if update[0] == HEAD { NIL } else { update[0] };
        self.nodes[id as usize].back = back;
        let next0 = self.nodes[id as usize].l0.next;
        if next0 != NIL {
            self.nodes[next0 as usize].back = id;
        } else {
            self.tail = id;
        }
        self.len += 1;
        let h = self.hash_of(&self.nodes[id as usize].member);
        let nodes = &self.nodes;
        let hasher = &self.hasher;
        if self.index.len() >= self.index.capacity() {
            // No growth left: this insert resizes or rehashes in place.
            self.generation = self.generation.wrapping_add(1);
        }
        self.index
            .insert_unique(h, id, |&i| hasher.hash_one(&*nodes[i as usize].member));
    }

    /// Unlinks node `x` given its predecessors at every level.
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &up) in update.iter().enumerate().take(self.level) {
            let u = self.lv(up, i);
            if u.next == x {
                let xl = self.lv(x, i);
                let ul = self.lv_mut(up, i);
                ul.span += xl.span;
                ul.span -= 1;
                ul.next = xl.next;
            } else {
                self.lv_mut(up, i).span -= 1;
            }
        }
        let next0 = self.nodes[x as usize].l0.next;
        let back = self.nodes[x as usize].back;
        if next0 != NIL {
            self.nodes[next0 as usize].back = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.head[self.level - 1].next == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// Frees node `x` (already unlinked) and drops it from the index;
    /// returns its member and score.
    fn release(&mut self, x: u32) -> (Box<[u8]>, f64) {
        let h = self.hash_of(&self.nodes[x as usize].member);
        if let Ok(e) = self.index.find_entry(h, |&i| i == x) {
            e.remove();
        }
        let n = &mut self.nodes[x as usize];
        self.extra_bytes -= n.member.len()
            + n.upper
                .as_ref()
                .map_or(0, |u| u.len() * std::mem::size_of::<Level>());
        let m = std::mem::take(&mut n.member);
        n.upper = None;
        let s = n.score;
        self.free.push(x);
        if self.len == 0 {
            self.nodes.clear();
            self.free.clear();
        }
        (m, s)
    }

    /// Predecessors of (score, member) at each level.
    fn predecessors(&self, score: f64, member: &[u8]) -> [u32; MAX_LEVEL] {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lv(x, i);
                if l.next == NIL {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if before(n.score, &n.member, score, member) {
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        update
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let x = self.find(member)?;
        let score = self.nodes[x as usize].score;
        let update = self.predecessors(score, member);
        self.unlink(x, &update);
        Some(self.release(x).1)
    }

    /// Changes the score of an existing member.
    pub fn update_score(&mut self, member: &[u8], new: f64) {
        let Some(x) = self.find(member) else { return };
        let n = &self.nodes[x as usize];
        let old = n.score;
        // Position unchanged: update in place (Redis' zslUpdateScore shortcut).
        let back_ok = n.back == NIL || {
            let b = &self.nodes[n.back as usize];
            before(b.score, &b.member, new, member)
        };
        let next_ok = n.l0.next == NIL || {
            let f = &self.nodes[n.l0.next as usize];
            before(new, member, f.score, &f.member)
        };
        if back_ok && next_ok {
            self.nodes[x as usize].score = new;
            return;
        }
        let update = self.predecessors(old, member);
        self.unlink(x, &update);
        let (m, _) = self.release(x);
        self.insert(new, m);
    }

    /// Number of leading elements (in order) for which `pred` holds, assuming
    /// `pred` is true on a prefix; O(log n) through the spans.
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut x = HEAD;
        let mut rank = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lv(x, i);
                if l.next == NIL {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if pred(n.score, &n.member) {
                    rank += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
        }
        rank
    }

    /// 0-based rank of `member` and its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let x = self.find(member)?;
        let s = self.nodes[x as usize].score;
        let r = self.count_while(|sc, m| before(sc, m, s, member) || (sc == s && m == member));
        Some((r - 1, s))
    }

    /// Node at 0-based rank `r`.
    fn at_rank(&self, r: usize) -> u32 {
        let target = r + 1;
        let mut x = HEAD;
        let mut trav = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lv(x, i);
                if l.next != NIL && trav + l.span as usize <= target {
                    trav += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            if trav == target {
                return x;
            }
        }
        NIL
    }

    /// Element at 0-based rank `r`.
    pub fn get_rank(&self, r: usize) -> Option<(&[u8], f64)> {
        if r >= self.len {
            return None;
        }
        let x = self.at_rank(r);
        self.nodes.get(x as usize).map(|n| (&*n.member, n.score))
    }

    /// Calls `f` for ranks `a..b` (ascending, or descending when `rev`).
    pub fn for_ranks(&self, a: usize, b: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let b = b.min(self.len);
        if a >= b {
            return;
        }
        let mut x = self.at_rank(if rev { b - 1 } else { a });
        for _ in a..b {
            let Some(n) = self.nodes.get(x as usize) else {
                break;
            };
            f(&n.member, n.score);
            x = if rev { n.back } else { n.l0.next };
        }
    }

    /// Removes ranks `a..b`, calling `f` with each removed element in order.
    pub fn remove_ranks(&mut self, a: usize, b: usize, mut f: impl FnMut(Box<[u8]>, f64)) {
        let b = b.min(self.len);
        if a >= b {
            return;
        }
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        let mut trav = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lv(x, i);
                if l.next != NIL && trav + (l.span as usize) < a + 1 {
                    trav += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let mut cur = self.lv(x, 0).next;
        for _ in a..b {
            if cur == NIL {
                break;
            }
            let next = self.nodes[cur as usize].l0.next;
            self.unlink(cur, &update);
            let (m, s) = self.release(cur);
            f(m, s);
            cur = next;
        }
    }

    /// All elements in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let mut x = self.head[0].next;
        std::iter::from_fn(move || {
            let n = self.nodes.get(x as usize)?;
            x = n.l0.next;
            Some((&*n.member, n.score))
        })
    }

    /// Relocation generation of the member index.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Buckets of the member index (ZSCAN cursors walk them).
    pub fn num_buckets(&self) -> usize {
        self.index.num_buckets()
    }

    /// The element stored in index bucket `b`, if occupied.
    pub fn bucket(&self, b: usize) -> Option<(&[u8], f64)> {
        let &i = self.index.get_bucket(b)?;
        let n = self.nodes.get(i as usize)?;
        Some((&n.member, n.score))
    }

    /// Checks every structural invariant (tests).
    #[cfg(test)]
    pub fn check(&self) {
        // Level 0 order, back links, tail, len.
        let mut prev = NIL;
        let mut x = self.head[0].next;
        let mut order = Vec::new();
        while x != NIL {
            let n = &self.nodes[x as usize];
            assert_eq!(n.back, prev);
            if prev != NIL {
                let p = &self.nodes[prev as usize];
                assert!(before(p.score, &p.member, n.score, &n.member));
            }
            order.push(x);
            prev = x;
            x = n.l0.next;
        }
        assert_eq!(self.tail, prev);
        assert_eq!(order.len(), self.len);
        assert_eq!(self.index.len(), self.len);
        let pos: std::collections::HashMap<u32, usize> =
            order.iter().enumerate().map(|(i, &x)| (x, i + 1)).collect();
        // Spans at each level.
        for i in 0..MAX_LEVEL {
            let mut x = HEAD;
            let mut r = 0usize;
            loop {
                if x != HEAD && self.nodes[x as usize].height() <= i {
                    panic!("link to a node below level {i}");
                }
                let l = self.lv(x, i);
                if i >= self.level {
                    assert_eq!(self.head[i].next, NIL);
                    break;
                }
                if l.next == NIL {
                    break;
                }
                let nr = pos[&l.next];
                assert_eq!(nr - r, l.span as usize, "span at level {i}");
                r = nr;
                x = l.next;
            }
        }
        let mut extra = 0;
        for &x in &order {
            let n = &self.nodes[x as usize];
            assert_eq!(self.find(&n.member), Some(x));
            extra += n.member.len() + (n.height() - 1) * std::mem::size_of::<Level>();
        }
        assert_eq!(extra, self.extra_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    #[derive(Debug, Clone, Copy)]
    struct Sc(f64);
    impl PartialEq for Sc {
        fn eq(&self, o: &Self) -> bool {
            self.0.total_cmp(&o.0).is_eq()
        }
    }
    impl Eq for Sc {}
    impl PartialOrd for Sc {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Sc {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, i8),
        Rem(u8),
        RemRanks(u8, u8),
        Check(i8, i8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), any::<i8>()).prop_map(|(m, s)| Op::Add(m, s)),
            2 => any::<u8>().prop_map(Op::Rem),
            1 => (any::<u8>(), 0u8..8).prop_map(|(a, n)| Op::RemRanks(a, n)),
            1 => (any::<i8>(), any::<i8>()).prop_map(|(a, b)| Op::Check(a, b)),
        ]
    }

    fn member(m: u8) -> Vec<u8> {
        format!("m{}", m % 64).into_bytes()
    }

    proptest! {
        #[test]
        fn matches_btreeset_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut sl = SkipList::new();
            let mut model: BTreeSet<(Sc, Vec<u8>)> = BTreeSet::new();
            let mut scores: HashMap<Vec<u8>, f64> = HashMap::new();
            for o in ops {
                match o {
                    Op::Add(m, s) => {
                        let m = member(m);
                        let s = f64::from(s) / 4.0;
                        if let Some(old) = scores.insert(m.clone(), s) {
                            model.remove(&(Sc(old), m.clone()));
                            sl.update_score(&m, s);
                        } else {
                            sl.insert(s, m.clone().into_boxed_slice());
                        }
                        model.insert((Sc(s), m));
                    }
                    Op::Rem(m) => {
                        let m = member(m);
                        let got = sl.remove(&m);
                        let want = scores.remove(&m);
                        prop_assert_eq!(got, want);
                        if let Some(s) = want { model.remove(&(Sc(s), m)); }
                    }
                    Op::RemRanks(a, n) => {
                        let a = a as usize % (model.len() + 1);
                        let b = a + n as usize;
                        let want: Vec<(Sc, Vec<u8>)> = model.iter().skip(a).take(n as usize).cloned().collect();
                        let mut got = Vec::new();
                        sl.remove_ranks(a, b, |m, s| got.push((Sc(s), m.to_vec())));
                        prop_assert_eq!(&got, &want);
                        for (s, m) in want { model.remove(&(s, m.clone())); scores.remove(&m); }
                    }
                    Op::Check(lo, hi) => {
                        let (lo, hi) = (f64::from(lo) / 4.0, f64::from(hi) / 4.0);
                        let start = sl.count_while(|s, _| s < lo);
                        let end = sl.count_while(|s, _| s <= hi);
                        prop_assert_eq!(start, model.iter().filter(|(s, _)| s.0 < lo).count());
                        prop_assert_eq!(end, model.iter().filter(|(s, _)| s.0 <= hi).count());
                        let mut got = Vec::new();
                        sl.for_ranks(start, end, false, |m, s| got.push((Sc(s), m.to_vec())));
                        let want: Vec<_> = model.iter().filter(|(s, _)| s.0 >= lo && s.0 <= hi).cloned().collect();
                        prop_assert_eq!(&got, &want);
                        let mut rgot = Vec::new();
                        sl.for_ranks(start, end, true, |m, s| rgot.push((Sc(s), m.to_vec())));
                        rgot.reverse();
                        prop_assert_eq!(&rgot, &want);
                        // Lex count on the member order inside one score.
                        let lexmin = member(lo as u8);
                        let c = sl.count_while(|s, m| s < lo || (s == lo && m < &lexmin[..]));
                        prop_assert_eq!(c, model.iter().filter(|(s, m)| s.0 < lo || (s.0 == lo && m < &lexmin)).count());
                    }
                }
                sl.check();
                prop_assert_eq!(sl.len(), model.len());
                for (r, (s, m)) in model.iter().enumerate() {
                    prop_assert_eq!(sl.rank(m), Some((r, s.0)));
                    prop_assert_eq!(sl.get_rank(r), Some((&m[..], s.0)));
                    prop_assert_eq!(sl.score(m), Some(s.0));
                }
                let all: Vec<_> = sl.iter().map(|(m, s)| (Sc(s), m.to_vec())).collect();
                let want: Vec<_> = model.iter().cloned().collect();
                prop_assert_eq!(all, want);
            }
        }
    }
}
