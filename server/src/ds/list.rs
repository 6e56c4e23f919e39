//! The list value type: a quicklist-like deque of packed nodes (Redis 7.0's
//! `quicklist` of listpacks, which is what OBJECT ENCODING reports for every
//! list in 7.0).
//!
//! * A [`List`] is a `VecDeque` of [`Node`]s plus the total element count.
//! * A node is one contiguous `Vec<u8>` holding its elements back to back,
//!   each as `[len as LEB128][bytes][len as reversed LEB128]`, so a node can
//!   be walked from either end (like a listpack's backlen) and an element of
//!   up to 127 bytes costs two bytes of framing.
//! * Nodes are bounded by `list-max-listpack-size` (positive: element count;
//!   negative -1..-5: 4/8/16/32/64 KiB), so pushes and pops at either end
//!   touch one bounded node: O(1) amortized. Index lookups skip whole nodes by
//!   their counts.
//! * Node buffers grow by at most 1/8 over what they need (bulk pushes reserve
//!   exactly), keeping the memory close to Redis' listpacks.

use std::collections::VecDeque;

/// Redis' default `list-max-listpack-size` (-2: 8 KiB nodes).
pub const DEFAULT_FILL: i32 = -2;
/// Per-node count cap for positive fills (Redis' SIZE_SAFETY_LIMIT analogue).
const SAFETY_BYTES: usize = 8192;

/// One packed node.
#[derive(Debug, Clone, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
}

/// A list value.
#[derive(Debug, Clone, Default)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
}

impl PartialEq for List {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

#[inline]
fn leb_len(mut n: usize) -> usize {
    let mut l = 1;
    while n >= 0x80 {
        n >>= 7;
        l += 1;
    }
    l
}

/// Bytes one element of `n` bytes occupies in a node.
#[inline]
fn entry_size(n: usize) -> usize {
    n + 2 * leb_len(n)
}

/// Appends the framed element to `out`.
fn write_entry(out: &mut Vec<u8>, v: &[u8]) {
    let mut tmp = [0u8; 10];
    let mut n = v.len();
    let mut k = 0;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            tmp[k] = b;
            k += 1;
            break;
        }
        tmp[k] = b | 0x80;
        k += 1;
    }
    out.extend_from_slice(&tmp[..k]);
    out.extend_from_slice(v);
    out.extend(tmp[..k].iter().rev());
}

/// Decodes the header at `p`: (data length, header length).
#[inline]
fn read_fwd(buf: &[u8], p: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    let mut i = p;
    while let Some(&b) = buf.get(i) {
        n |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (n, i - p)
}

/// Decodes the trailer ending at `e` (exclusive): (data length, trailer length).
#[inline]
fn read_back(buf: &[u8], e: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    let mut i = e;
    while i > 0 {
        i -= 1;
        let b = buf[i];
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (n, e - i)
}

impl Node {
    fn with_capacity(c: usize) -> Node {
        Node {
            buf: Vec::with_capacity(c),
            count: 0,
        }
    }

    /// Whether one more element of `n` bytes fits under the fill limit.
    fn fits(&self, n: usize, fill: i32) -> bool {
        if self.count == 0 {
            return true;
        }
        let new_size = self.buf.len() + entry_size(n);
        if fill > 0 {
            (self.count as usize) < fill as usize && new_size <= SAFETY_BYTES
        } else {
            new_size <= size_limit(fill)
        }
    }

    /// Makes room for `extra` more bytes, growing by at most 1/8 beyond need.
    #[inline]
    fn grow(&mut self, extra: usize) {
        let need = self.buf.len() + extra;
        if need > self.buf.capacity() {
            let target = need + need / 8;
            self.buf.reserve_exact(target - self.buf.len());
        }
    }

    fn push_back(&mut self, v: &[u8]) {
        self.grow(entry_size(v.len()));
        write_entry(&mut self.buf, v);
        self.count += 1;
    }

    /// Inserts the element at byte offset `p`.
    fn insert_at(&mut self, p: usize, v: &[u8]) {
        let sz = entry_size(v.len());
        self.grow(sz);
        let old = self.buf.len();
        self.buf.resize(old + sz, 0);
        self.buf.copy_within(p..old, p + sz);
        let mut tmp = Vec::with_capacity(sz);
        write_entry(&mut tmp, v);
        self.buf[p..p + sz].copy_from_slice(&tmp);
        self.count += 1;
    }

    /// Byte range of the element starting at `p`: (data start, data end, next).
    #[inline]
    fn at(&self, p: usize) -> (usize, usize, usize) {
        let (n, hl) = read_fwd(&self.buf, p);
        (p + hl, p + hl + n, p + 2 * hl + n)
    }

    /// Byte offset of the element with in-node index `i`.
    fn offset_of(&self, i: usize) -> usize {
        let count = self.count as usize;
        if i <= count / 2 {
            let mut p = 0;
            for _ in 0..i {
                p = self.at(p).2;
            }
            p
        } else {
            let mut e = self.buf.len();
            for _ in i..count {
                let (n, tl) = read_back(&self.buf, e);
                e -= n + 2 * tl;
            }
            e
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        let p = self.offset_of(i);
        let (s, e, _) = self.at(p);
        self.buf.get(s..e).unwrap_or(&[])
    }

    /// Splits off the upper half into a new node (keeps at least one element
    /// on each side when count >= 2).
    fn split(&mut self) -> Node {
        let half = (self.count as usize) / 2;
        let off = self.offset_of(half);
        let tail = self.buf.split_off(off);
        let moved = self.count - half as u32;
        self.count = half as u32;
        self.buf.shrink_to_fit();
        Node {
            buf: tail,
            count: moved,
        }
    }

    fn over_limit(&self, fill: i32) -> bool {
        if self.count <= 1 {
            return false;
        }
        if fill > 0 {
            self.count as usize > fill as usize || self.buf.len() > SAFETY_BYTES
        } else {
            self.buf.len() > size_limit(fill)
        }
    }
}

fn size_limit(fill: i32) -> usize {
    match fill {
        -1 => 4096,
        -3 => 16384,
        -4 => 32768,
        f if f <= -5 => 65536,
        _ => 8192,
    }
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    /// Redis' OBJECT ENCODING name (7.0 reports quicklist for every list).
    pub fn encoding_name(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes (INFO memory estimates).
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>()
    }

    /// Number of elements (0 means the key must be deleted).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Builds a list from elements in order.
    pub fn from_iter<'a, I: IntoIterator<Item = &'a [u8]>>(items: I, fill: i32) -> List {
        let mut l = List::new();
        l.extend_back(items, fill);
        l
    }

    /// Appends many elements, reserving node space once (RPUSH a b c ...).
    pub fn extend_back<'a, I: IntoIterator<Item = &'a [u8]>>(&mut self, items: I, fill: i32) {
        let items = items.into_iter();
        let mut pending: Vec<&[u8]> = Vec::new();
        for v in items {
            pending.push(v);
        }
        let mut i = 0;
        while i < pending.len() {
            let need_new = match self.nodes.back() {
                Some(n) => !n.fits(pending[i].len(), fill),
                None => true,
            };
            if need_new {
                self.nodes.push_back(Node::default());
            }
            // How many of the pending elements go into this node?
            let Some(node) = self.nodes.back_mut() else {
                return;
            };
            let mut size = node.buf.len();
            let mut count = node.count as usize;
            let mut j = i;
            let cap_count = if fill > 0 { fill as usize } else { usize::MAX };
            let cap_bytes = if fill > 0 {
                SAFETY_BYTES
            } else {
                size_limit(fill)
            };
            while j < pending.len() {
                let s = entry_size(pending[j].len());
                if count > 0 && (count + 1 > cap_count || size + s > cap_bytes) {
                    break;
                }
                size += s;
                count += 1;
                j += 1;
            }
            if size > node.buf.capacity() {
                node.buf.reserve_exact(size - node.buf.len());
            }
            for v in &pending[i..j] {
                write_entry(&mut node.buf, v);
            }
            node.count = count as u32;
            self.len += j - i;
            i = j;
        }
    }

    pub fn push_back(&mut self, v: &[u8], fill: i32) {
        match self.nodes.back_mut() {
            Some(n) if n.fits(v.len(), fill) => n.push_back(v),
            _ => {
                let mut n = Node::with_capacity(entry_size(v.len()));
                n.push_back(v);
                self.nodes.push_back(n);
            }
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, v: &[u8], fill: i32) {
        match self.nodes.front_mut() {
            Some(n) if n.fits(v.len(), fill) => n.insert_at(0, v),
            _ => {
                let mut n = Node::with_capacity(entry_size(v.len()));
                n.push_back(v);
                self.nodes.push_front(n);
            }
        }
        self.len += 1;
    }

    /// Removes the first element and hands it to `f`.
    pub fn pop_front_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let node = self.nodes.front_mut()?;
        let (s, e, next) = node.at(0);
        let r = f(node.buf.get(s..e).unwrap_or(&[]));
        node.count -= 1;
        if node.count == 0 {
            self.nodes.pop_front();
        } else {
            node.buf.drain(..next);
        }
        self.len -= 1;
        Some(r)
    }

    /// Removes the last element and hands it to `f`.
    pub fn pop_back_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let node = self.nodes.back_mut()?;
        let end = node.buf.len();
        let (n, tl) = read_back(&node.buf, end);
        let start = end - n - 2 * tl;
        let r = f(node.buf.get(start + tl..end - tl).unwrap_or(&[]));
        node.count -= 1;
        if node.count == 0 {
            self.nodes.pop_back();
        } else {
            node.buf.truncate(start);
        }
        self.len -= 1;
        Some(r)
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        self.pop_front_with(|s| s.to_vec())
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        self.pop_back_with(|s| s.to_vec())
    }

    /// (node index, index inside the node) of element `i` (< len).
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.len {
            return None;
        }
        if i < self.len / 2 {
            let mut rest = i;
            for (k, n) in self.nodes.iter().enumerate() {
                if rest < n.count as usize {
                    return Some((k, rest));
                }
                rest -= n.count as usize;
            }
            None
        } else {
            let mut rest = self.len - 1 - i; // distance from the tail
            for (k, n) in self.nodes.iter().enumerate().rev() {
                let c = n.count as usize;
                if rest < c {
                    return Some((k, c - 1 - rest));
                }
                rest -= c;
            }
            None
        }
    }

    /// Element `i` (0-based from the head).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let (k, j) = self.locate(i)?;
        Some(self.nodes.get(k)?.get(j))
    }

    /// Replaces element `i`; false when out of range.
    pub fn set(&mut self, i: usize, v: &[u8], fill: i32) -> bool {
        let Some((k, j)) = self.locate(i) else {
            return false;
        };
        let Some(node) = self.nodes.get_mut(k) else {
            return false;
        };
        let p = node.offset_of(j);
        let (_, _, next) = node.at(p);
        let mut framed = Vec::with_capacity(entry_size(v.len()));
        write_entry(&mut framed, v);
        node.buf.splice(p..next, framed);
        if node.over_limit(fill) {
            let tail = node.split();
            self.nodes.insert(k + 1, tail);
        }
        true
    }

    /// Inserts `v` so that it becomes element `i` (`i == len` appends).
    pub fn insert(&mut self, i: usize, v: &[u8], fill: i32) {
        if i >= self.len {
            self.push_back(v, fill);
            return;
        }
        if i == 0 {
            self.push_front(v, fill);
            return;
        }
        let Some((k, j)) = self.locate(i) else { return };
        let Some(node) = self.nodes.get_mut(k) else {
            return;
        };
        let p = node.offset_of(j);
        node.insert_at(p, v);
        self.len += 1;
        if node.over_limit(fill) {
            let tail = node.split();
            self.nodes.insert(k + 1, tail);
        }
    }

    /// Iterates from element `start` towards the tail.
    pub fn iter_from(&self, start: usize) -> Iter<'_> {
        match self.locate(start) {
            Some((k, j)) => {
                let off = self.nodes.get(k).map_or(0, |n| n.offset_of(j));
                Iter {
                    list: self,
                    node: k,
                    off,
                    left: self.len - start,
                }
            }
            None => Iter {
                list: self,
                node: self.nodes.len(),
                off: 0,
                left: 0,
            },
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Iterates from element `start` towards the head.
    pub fn rev_iter_from(&self, start: usize) -> RevIter<'_> {
        match self.locate(start) {
            Some((k, j)) => {
                let end = self.nodes.get(k).map_or(0, |n| {
                    let p = n.offset_of(j);
                    n.at(p).2
                });
                RevIter {
                    list: self,
                    node: k,
                    end,
                    left: start + 1,
                }
            }
            None => RevIter {
                list: self,
                node: 0,
                end: 0,
                left: 0,
            },
        }
    }

    pub fn rev_iter(&self) -> RevIter<'_> {
        if self.len == 0 {
            RevIter {
                list: self,
                node: 0,
                end: 0,
                left: 0,
            }
        } else {
            self.rev_iter_from(self.len - 1)
        }
    }

    /// Keeps elements `start..=end` (already clamped, start <= end < len);
    /// LTRIM.
    pub fn keep_range(&mut self, start: usize, end: usize, fill: i32) {
        if start == 0 && end + 1 == self.len {
            return;
        }
        let keep = end + 1 - start;
        if keep * 2 >= self.len {
            for _ in 0..start {
                self.pop_front_with(|_| ());
            }
            while self.len > keep {
                self.pop_back_with(|_| ());
            }
        } else {
            let l = List::from_iter(self.iter_from(start).take(keep), fill);
            *self = l;
        }
    }

    /// Removes the elements whose positions `pred` selects, rebuilding the
    /// nodes (LREM). Returns how many were removed.
    pub fn remove_where(&mut self, fill: i32, mut pred: impl FnMut(usize, &[u8]) -> bool) -> usize {
        let mut out = List::new();
        let mut removed = 0;
        for (i, v) in self.iter().enumerate() {
            if pred(i, v) {
                removed += 1;
            } else {
                out.push_back(v, fill);
            }
        }
        if removed > 0 {
            *self = out;
        }
        removed
    }
}

/// Head-to-tail iterator.
pub struct Iter<'a> {
    list: &'a List,
    node: usize,
    off: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let list: &'a List = self.list;
        let mut n = list.nodes.get(self.node)?;
        if self.off >= n.buf.len() {
            self.node += 1;
            self.off = 0;
            n = list.nodes.get(self.node)?;
        }
        let (s, e, next) = n.at(self.off);
        self.off = next;
        self.left -= 1;
        n.buf.get(s..e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Tail-to-head iterator.
pub struct RevIter<'a> {
    list: &'a List,
    node: usize,
    end: usize,
    left: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let list: &'a List = self.list;
        if self.end == 0 {
            self.node = self.node.checked_sub(1)?;
            self.end = list.nodes.get(self.node)?.buf.len();
        }
        let n = list.nodes.get(self.node)?;
        let (len, tl) = read_back(&n.buf, self.end);
        let e = self.end - tl;
        let s = e - len;
        self.end = s - tl;
        self.left -= 1;
        n.buf.get(s..e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(l: &List, m: &VecDeque<Vec<u8>>) {
        assert_eq!(l.len(), m.len());
        let fwd: Vec<&[u8]> = l.iter().collect();
        let want: Vec<&[u8]> = m.iter().map(|v| v.as_slice()).collect();
        assert_eq!(fwd, want);
        let mut back: Vec<&[u8]> = l.rev_iter().collect();
        back.reverse();
        assert_eq!(back, want);
        assert_eq!(
            l.nodes.iter().map(|n| n.count as usize).sum::<usize>(),
            l.len()
        );
        assert!(l.nodes.iter().all(|n| n.count > 0));
        for (i, v) in m.iter().enumerate() {
            assert_eq!(l.get(i), Some(v.as_slice()));
        }
        assert_eq!(l.get(m.len()), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        PushFront(Vec<u8>),
        PushBack(Vec<u8>),
        PopFront,
        PopBack,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Trim(usize, usize),
        Rem(u8),
        Extend(Vec<Vec<u8>>),
    }

    fn val() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..8),
            prop::collection::vec(any::<u8>(), 100..300),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            val().prop_map(Op::PushFront),
            val().prop_map(Op::PushBack),
            Just(Op::PopFront),
            Just(Op::PopBack),
            (any::<usize>(), val()).prop_map(|(i, v)| Op::Set(i, v)),
            (any::<usize>(), val()).prop_map(|(i, v)| Op::Insert(i, v)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Trim(a, b)),
            any::<u8>().prop_map(Op::Rem),
            prop::collection::vec(val(), 0..20).prop_map(Op::Extend),
        ]
    }

    proptest! {
        #[test]
        fn matches_vecdeque(ops in prop::collection::vec(op(), 1..200), fill in prop_oneof![Just(-1i32), Just(-2), Just(1), Just(3), Just(5)]) {
            let mut l = List::new();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for o in ops {
                match o {
                    Op::PushFront(v) => { l.push_front(&v, fill); m.push_front(v); }
                    Op::PushBack(v) => { l.push_back(&v, fill); m.push_back(v); }
                    Op::PopFront => prop_assert_eq!(l.pop_front(), m.pop_front()),
                    Op::PopBack => prop_assert_eq!(l.pop_back(), m.pop_back()),
                    Op::Set(i, v) => {
                        if m.is_empty() { prop_assert!(!l.set(i, &v, fill)); continue; }
                        let i = i % m.len();
                        prop_assert!(l.set(i, &v, fill));
                        m[i] = v;
                    }
                    Op::Insert(i, v) => {
                        let i = i % (m.len() + 1);
                        l.insert(i, &v, fill);
                        m.insert(i, v);
                    }
                    Op::Trim(a, b) => {
                        if m.is_empty() { continue; }
                        let (a, b) = (a % m.len(), b % m.len());
                        let (a, b) = (a.min(b), a.max(b));
                        l.keep_range(a, b, fill);
                        let kept: VecDeque<Vec<u8>> = m.iter().skip(a).take(b + 1 - a).cloned().collect();
                        m = kept;
                    }
                    Op::Rem(x) => {
                        let n = l.remove_where(fill, |_, v| v.first() == Some(&x));
                        let before = m.len();
                        m.retain(|v| v.first() != Some(&x));
                        prop_assert_eq!(n, before - m.len());
                    }
                    Op::Extend(vs) => {
                        l.extend_back(vs.iter().map(|v| v.as_slice()), fill);
                        m.extend(vs);
                    }
                }
                check(&l, &m);
            }
            // Iterators from every start position.
            for s in 0..m.len() {
                let f: Vec<&[u8]> = l.iter_from(s).collect();
                let w: Vec<&[u8]> = m.iter().skip(s).map(|v| v.as_slice()).collect();
                prop_assert_eq!(f, w);
                let r: Vec<&[u8]> = l.rev_iter_from(s).collect();
                let w: Vec<&[u8]> = m.iter().take(s + 1).rev().map(|v| v.as_slice()).collect();
                prop_assert_eq!(r, w);
            }
        }
    }

    #[test]
    fn framing_and_nodes() {
        let mut l = List::new();
        let big = vec![7u8; 20000];
        l.push_back(&big, -2);
        l.push_back(b"x", -2);
        l.push_front(b"", -2);
        assert_eq!(l.len(), 3);
        assert_eq!(l.get(1), Some(&big[..]));
        assert_eq!(l.nodes.len(), 3);
        assert_eq!(l.pop_back().as_deref(), Some(&b"x"[..]));
        assert_eq!(l.pop_front().as_deref(), Some(&b""[..]));
        assert_eq!(l.pop_front().as_deref(), Some(&big[..]));
        assert!(l.is_empty() && l.nodes.is_empty());
        let l2 = List::from_iter([&b"a"[..], b"b"], 2);
        let mut l3 = List::new();
        l3.push_back(b"a", 1);
        l3.push_back(b"b", 1);
        assert_eq!(l2, l3);
        assert_eq!(l2.encoding_name(), "quicklist");
    }
}
