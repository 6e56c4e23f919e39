//! The full ("skiplist") encoding of a sorted set: a skiplist with spans (as
//! in Redis' `zskiplist`, ordered by score then member bytes, levels drawn with
//! p = 1/4 up to 32) plus a member index (member → node) for O(1) ZSCORE.
//!
//! Nodes live in one word arena (`Vec<u32>`), no `unsafe`: a node is a block
//! of `HDR + 2 × height` words (back link, member slot, height, score as two
//! words, then `next, span` per level) and links are block offsets. A step
//! of a search reads the current block's level and the next block's score,
//! which sit together, so it costs about one cache miss, as Redis' node with
//! its inline level array does (the first version kept the upper levels in a
//! separate allocation, and ZADD on a 100k-member set spent twice Redis'
//! time walking). Freed blocks go on a free list per height and are reused.
//! Member bytes are stored once, in a slot table; the member index is a
//! `hashbrown::HashTable<u32>` of block offsets that hashes the member
//! through the slot table. The head is the block at offset 0 with all
//! `MAX_LEVEL` levels. Offsets are `u32`: one set is limited to 4G words
//! (16 GB of nodes).
//!
//! Every position-based operation goes through ranks (0-based here): callers
//! turn score/lex ranges into a rank interval with [`SkipList::count_while`]
//! and then read or delete that interval.

use hashbrown::HashTable;

pub const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// Header words of a block: back link, member slot, height, score (2).
const HDR: usize = 5;
const H_BACK: usize = 0;
const H_MEMBER: usize = 1;
const H_HEIGHT: usize = 2;
const H_SCORE: usize = 3;
/// Words of the head block.
const HEAD_WORDS: usize = HDR + 2 * MAX_LEVEL;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Level {
    next: u32,
    span: u32,
}

/// Orders (score, member) pairs as Redis does: by score, then member bytes.
#[inline]
pub fn before(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

/// Where a member sits, from [`SkipList::locate`]; valid until the list
/// changes.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef(u32);

#[derive(Clone)]
pub struct SkipList {
    /// Node blocks (see the module comment); the head block first.
    a: Vec<u32>,
    /// Free blocks by height - 1.
    free: Vec<Vec<u32>>,
    /// Member bytes by slot; `mfree` lists the unused slots.
    members: Vec<Box<[u8]>>,
    mfree: Vec<u32>,
    level: usize,
    len: usize,
    tail: u32,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    /// Member bytes of live nodes (O(1) heap_size).
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

/// A fresh head block: every level points nowhere.
fn head_block(a: &mut Vec<u32>) {
    a.clear();
    a.extend_from_slice(&[NIL, 0, MAX_LEVEL as u32, 0, 0]);
    for _ in 0..MAX_LEVEL {
        a.extend_from_slice(&[NIL, 0]);
    }
    debug_assert_eq!(a.len(), HEAD_WORDS);
}

impl SkipList {
    pub fn new() -> Self {
        let mut a = Vec::new();
        head_block(&mut a);
        SkipList {
            a,
            free: vec![Vec::new(); MAX_LEVEL],
            members: Vec::new(),
            mfree: Vec::new(),
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
        // Callers pass counts that come from the wire (RDB lengths, async
        // migration hints): pre-size at most 1M members, grow past that.
        let n = n.min(1 << 20);
        let mut s = Self::new();
        // 3 of 4 nodes have one level, 1 of 4 more: ~8.7 words a node.
        s.a.reserve(n.saturating_mul(9));
        s.members.reserve(n);
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
        self.a.capacity() * 4
            + self.free.iter().map(|f| f.capacity() * 4).sum::<usize>()
            + self.members.capacity() * std::mem::size_of::<Box<[u8]>>()
            + self.mfree.capacity() * 4
            + self.index.capacity() * 5
            + self.extra_bytes
    }

    #[inline]
    fn lv(&self, x: u32, i: usize) -> Level {
        let o = x as usize + HDR + 2 * i;
        Level {
            next: self.a[o],
            span: self.a[o + 1],
        }
    }

    #[inline]
    fn set_lv(&mut self, x: u32, i: usize, l: Level) {
        let o = x as usize + HDR + 2 * i;
        self.a[o] = l.next;
        self.a[o + 1] = l.span;
    }

    #[inline]
    fn add_span(&mut self, x: u32, i: usize, d: i64) {
        let o = x as usize + HDR + 2 * i + 1;
        self.a[o] = (i64::from(self.a[o]) + d) as u32;
    }

    #[inline]
    fn sc(&self, x: u32) -> f64 {
        let o = x as usize + H_SCORE;
        f64::from_bits(u64::from(self.a[o]) | (u64::from(self.a[o + 1]) << 32))
    }

    #[inline]
    fn set_sc(&mut self, x: u32, s: f64) {
        let o = x as usize + H_SCORE;
        let b = s.to_bits();
        self.a[o] = b as u32;
        self.a[o + 1] = (b >> 32) as u32;
    }

    #[inline]
    fn mem(&self, x: u32) -> &[u8] {
        &self.members[self.a[x as usize + H_MEMBER] as usize]
    }

    #[inline]
    fn back(&self, x: u32) -> u32 {
        self.a[x as usize + H_BACK]
    }

    #[inline]
    fn set_back(&mut self, x: u32, b: u32) {
        self.a[x as usize + H_BACK] = b;
    }

    #[inline]
    fn height(&self, x: u32) -> usize {
        self.a[x as usize + H_HEIGHT] as usize
    }

    fn hash_of(&self, m: &[u8]) -> u64 {
        self.hasher.hash_one(m)
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        let h = self.hash_of(m);
        self.index.find(h, |&i| self.mem(i) == m).copied()
    }

    /// The score of `member`.
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.find(m).map(|i| self.sc(i))
    }

    fn random_level() -> usize {
        let r: u64 = rand::random();
        (1 + (r.trailing_zeros() as usize) / 2).min(MAX_LEVEL)
    }

    /// A block of `height` levels holding `member` (unlinked).
    fn alloc(&mut self, height: usize, score: f64, member: Box<[u8]>) -> u32 {
        self.extra_bytes += member.len();
        let slot = match self.mfree.pop() {
            Some(s) => {
                self.members[s as usize] = member;
                s
            }
            None => {
                self.members.push(member);
                (self.members.len() - 1) as u32
            }
        };
        let id = match self.free[height - 1].pop() {
            Some(f) => f,
            None => {
                let f = self.a.len() as u32;
                self.a.resize(self.a.len() + HDR + 2 * height, 0);
                f
            }
        };
        let o = id as usize;
        self.a[o + H_BACK] = NIL;
        self.a[o + H_MEMBER] = slot;
        self.a[o + H_HEIGHT] = height as u32;
        self.set_sc(id, score);
        for i in 0..height {
            self.set_lv(id, i, Level { next: NIL, span: 0 });
        }
        id
    }

    /// Links block `id` (its score set, unlinked) at its place in order.
    fn link(&mut self, id: u32) {
        let score = self.sc(id);
        let height = self.height(id);
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
                let ns = self.sc(l.next);
                if ns < score || (ns == score && self.mem(l.next) < self.mem(id)) {
                    rank[i] += l.span;
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        if height > self.level {
            for i in self.level..height {
                rank[i] = 0;
                update[i] = HEAD;
                let l = Level {
                    next: self.lv(HEAD, i).next,
                    span: self.len as u32,
                };
                self.set_lv(HEAD, i, l);
            }
            self.level = height;
        }
        for i in 0..height {
            let up = self.lv(update[i], i);
            self.set_lv(
                id,
                i,
                Level {
                    next: up.next,
                    span: up.span - (rank[0] - rank[i]),
                },
            );
            self.set_lv(
                update[i],
                i,
                Level {
                    next: id,
                    span: (rank[0] - rank[i]) + 1,
                },
            );
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(height) {
            self.add_span(u, i, 1);
        }
        let back = if update[0] == HEAD { NIL } else { update[0] };
        self.set_back(id, back);
        let next0 = self.lv(id, 0).next;
        if next0 != NIL {
            self.set_back(next0, id);
        } else {
            self.tail = id;
        }
        self.len += 1;
    }

    /// Inserts a member that is not present yet.
    pub fn insert(&mut self, score: f64, member: Box<[u8]>) {
        let id = self.alloc(Self::random_level(), score, member);
        self.link(id);
        let h = self.hash_of(self.mem(id));
        let (a, members, hasher) = (&self.a, &self.members, &self.hasher);
        if self.index.len() >= self.index.capacity() {
            // No growth left: this insert resizes or rehashes in place.
            self.generation = self.generation.wrapping_add(1);
        }
        self.index.insert_unique(h, id, |&i| {
            hasher.hash_one(&*members[a[i as usize + H_MEMBER] as usize])
        });
    }

    /// Unlinks node `x` given its predecessors at every level.
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &up) in update.iter().enumerate().take(self.level) {
            let u = self.lv(up, i);
            if u.next == x {
                let xl = self.lv(x, i);
                self.set_lv(
                    up,
                    i,
                    Level {
                        next: xl.next,
                        span: u.span + xl.span - 1,
                    },
                );
            } else {
                self.add_span(up, i, -1);
            }
        }
        let next0 = self.lv(x, 0).next;
        let back = self.back(x);
        if next0 != NIL {
            self.set_back(next0, back);
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.lv(HEAD, self.level - 1).next == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// Frees node `x` (already unlinked) and drops it from the index;
    /// returns its member and score.
    fn release(&mut self, x: u32) -> (Box<[u8]>, f64) {
        let h = self.hash_of(self.mem(x));
        if let Ok(e) = self.index.find_entry(h, |&i| i == x) {
            e.remove();
        }
        let slot = self.a[x as usize + H_MEMBER];
        let m = std::mem::take(&mut self.members[slot as usize]);
        self.extra_bytes -= m.len();
        self.mfree.push(slot);
        let s = self.sc(x);
        let height = self.height(x);
        self.free[height - 1].push(x);
        if self.len == 0 {
            head_block(&mut self.a);
            self.free.iter_mut().for_each(Vec::clear);
            self.members.clear();
            self.mfree.clear();
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
                if before(self.sc(l.next), self.mem(l.next), score, member) {
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
        let update = self.predecessors(self.sc(x), member);
        self.unlink(x, &update);
        Some(self.release(x).1)
    }

    /// A member's node and score, for [`SkipList::update_score_at`] (one
    /// index lookup for a read-then-update such as ZADD on a present member).
    pub fn locate(&self, member: &[u8]) -> Option<(NodeRef, f64)> {
        self.find(member).map(|x| (NodeRef(x), self.sc(x)))
    }

    /// Changes the score of an existing member.
    pub fn update_score(&mut self, member: &[u8], new: f64) {
        if let Some(x) = self.find(member) {
            self.update_score_at(NodeRef(x), member, new);
        }
    }

    /// Changes the score of the member at `r` (from [`SkipList::locate`],
    /// with no change to the list since).
    pub fn update_score_at(&mut self, r: NodeRef, member: &[u8], new: f64) {
        let x = r.0;
        debug_assert_eq!(self.mem(x), member);
        let old = self.sc(x);
        // Position unchanged: update in place (Redis' zslUpdateScore shortcut).
        let b = self.back(x);
        let back_ok = b == NIL || before(self.sc(b), self.mem(b), new, member);
        let f = self.lv(x, 0).next;
        let next_ok = f == NIL || before(new, member, self.sc(f), self.mem(f));
        if back_ok && next_ok {
            self.set_sc(x, new);
            return;
        }
        // Moves: the same block is relinked (the member index is untouched).
        let update = self.predecessors(old, member);
        self.unlink(x, &update);
        self.set_sc(x, new);
        self.link(x);
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
                if pred(self.sc(l.next), self.mem(l.next)) {
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
        let s = self.sc(x);
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
        (x != NIL && x != HEAD).then(|| (self.mem(x), self.sc(x)))
    }

    /// Calls `f` for ranks `a..b` (ascending, or descending when `rev`).
    pub fn for_ranks(&self, a: usize, b: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let b = b.min(self.len);
        if a >= b {
            return;
        }
        let mut x = self.at_rank(if rev { b - 1 } else { a });
        for _ in a..b {
            if x == NIL || x == HEAD {
                break;
            }
            f(self.mem(x), self.sc(x));
            x = if rev {
                self.back(x)
            } else {
                self.lv(x, 0).next
            };
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
            let next = self.lv(cur, 0).next;
            self.unlink(cur, &update);
            let (m, s) = self.release(cur);
            f(m, s);
            cur = next;
        }
    }

    /// All elements in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let mut x = self.lv(HEAD, 0).next;
        std::iter::from_fn(move || {
            if x == NIL {
                return None;
            }
            let cur = x;
            x = self.lv(cur, 0).next;
            Some((self.mem(cur), self.sc(cur)))
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
        Some((self.mem(i), self.sc(i)))
    }

    /// Checks every structural invariant (tests).
    #[cfg(test)]
    pub fn check(&self) {
        // Level 0 order, back links, tail, len.
        let mut prev = NIL;
        let mut x = self.lv(HEAD, 0).next;
        let mut order = Vec::new();
        while x != NIL {
            assert_eq!(self.back(x), prev);
            if prev != NIL {
                assert!(before(
                    self.sc(prev),
                    self.mem(prev),
                    self.sc(x),
                    self.mem(x)
                ));
            }
            order.push(x);
            prev = x;
            x = self.lv(x, 0).next;
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
                if x != HEAD && self.height(x) <= i {
                    panic!("link to a node below level {i}");
                }
                let l = self.lv(x, i);
                if i >= self.level {
                    assert_eq!(self.lv(HEAD, i).next, NIL);
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
            assert_eq!(self.find(self.mem(x)), Some(x));
            extra += self.mem(x).len();
        }
        assert_eq!(extra, self.extra_bytes);
        // Live blocks, free blocks and the head tile the arena.
        let free: usize = (0..MAX_LEVEL)
            .map(|h| self.free[h].len() * (HDR + 2 * (h + 1)))
            .sum();
        let live: usize = order.iter().map(|&x| HDR + 2 * self.height(x)).sum();
        assert_eq!(HEAD_WORDS + free + live, self.a.len());
        assert_eq!(self.members.len(), self.len + self.mfree.len());
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

    /// A skiplist and a sorted model of it, changed together; every change
    /// asserts that both agree.
    #[derive(Default)]
    struct Checked {
        sl: SkipList,
        model: BTreeSet<(Sc, Vec<u8>)>,
        scores: HashMap<Vec<u8>, f64>,
    }

    impl Checked {
        /// ZADD semantics: insert, or move a present member.
        fn add(&mut self, m: Vec<u8>, s: f64) {
            if let Some(old) = self.scores.insert(m.clone(), s) {
                self.model.remove(&(Sc(old), m.clone()));
                self.sl.update_score(&m, s);
            } else {
                self.sl.insert(s, m.clone().into_boxed_slice());
            }
            self.model.insert((Sc(s), m));
        }

        fn remove(&mut self, m: Vec<u8>) {
            let want = self.scores.remove(&m);
            assert_eq!(self.sl.remove(&m), want);
            if let Some(s) = want {
                self.model.remove(&(Sc(s), m));
            }
        }

        /// Removes ranks `a % (len + 1)` .. + n.
        fn remove_ranks(&mut self, a: usize, n: usize) {
            let a = a % (self.model.len() + 1);
            let want: Vec<(Sc, Vec<u8>)> = self.model.iter().skip(a).take(n).cloned().collect();
            let mut got = Vec::new();
            self.sl
                .remove_ranks(a, a + n, |m, s| got.push((Sc(s), m.to_vec())));
            assert_eq!(got, want);
            for (s, m) in want {
                self.model.remove(&(s, m.clone()));
                self.scores.remove(&m);
            }
        }

        /// The structure's invariants, its order, and rank/score lookups of
        /// every `step`-th element.
        fn verify(&self, step: usize) {
            self.sl.check();
            assert_eq!(self.sl.len(), self.model.len());
            let all: Vec<_> = self.sl.iter().map(|(m, s)| (Sc(s), m.to_vec())).collect();
            assert_eq!(all, self.model.iter().cloned().collect::<Vec<_>>());
            for (r, (s, m)) in self.model.iter().enumerate().step_by(step) {
                assert_eq!(self.sl.rank(m), Some((r, s.0)));
                assert_eq!(self.sl.get_rank(r), Some((&m[..], s.0)));
                assert_eq!(self.sl.score(m), Some(s.0));
            }
        }
    }

    /// Thousands of members (tall nodes, blocks of every height reused
    /// through the free lists), random inserts, score moves, removals and
    /// rank removals, checked against a sorted model.
    #[test]
    fn big_random_workload_matches_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut c = Checked::default();
        for step in 0..30_000 {
            let m = format!("member:{}", rng.random_range(0..3000)).into_bytes();
            match rng.random_range(0..10) {
                0..=6 => c.add(m, f64::from(rng.random_range(0..500)) / 2.0),
                7..=8 => c.remove(m),
                _ => c.remove_ranks(rng.random_range(0..usize::MAX), rng.random_range(0..5)),
            }
            if step % 2500 == 0 || step == 29_999 {
                c.verify(97);
            }
        }
        assert!(c.sl.len() > 1000, "the set stayed big: {}", c.sl.len());
    }

    proptest! {
        #[test]
        fn matches_btreeset_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut c = Checked::default();
            for o in ops {
                match o {
                    Op::Add(m, s) => c.add(member(m), f64::from(s) / 4.0),
                    Op::Rem(m) => c.remove(member(m)),
                    Op::RemRanks(a, n) => c.remove_ranks(a as usize, n as usize),
                    Op::Check(lo, hi) => {
                        let (sl, model) = (&c.sl, &c.model);
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
                        let n = sl.count_while(|s, m| s < lo || (s == lo && m < &lexmin[..]));
                        prop_assert_eq!(n, model.iter().filter(|(s, m)| s.0 < lo || (s.0 == lo && m < &lexmin)).count());
                    }
                }
                c.verify(1);
            }
        }
    }
}
