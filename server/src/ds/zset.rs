//! The zset value type, with Redis 7.0's two encodings:
//!
//! * **compact** (OBJECT ENCODING `listpack`): one contiguous buffer of
//!   entries `[score][member length: varint][member bytes]` (integral scores
//!   as a tagged zigzag varint, others as a tagged f64), sorted by
//!   score then member, like Redis' listpack of (member, score) pairs. Every
//!   operation is a linear walk, which is what Redis does too and is cheap at
//!   the default thresholds (128 entries, 64-byte members).
//! * **full** (`skiplist`): [`SkipList`], a span-carrying skiplist plus a
//!   member index.
//!
//! Conversion is one-way, as in Redis: a compact zset becomes full when an
//! insertion would exceed `zset-max-listpack-entries` or a member is longer
//! than `zset-max-listpack-value`; it never shrinks back, except that the
//! store commands (ZUNIONSTORE & co.) build a fresh result and pick the
//! encoding for its final size ([`ZSet::shrink_if_small`]).
//!
//! Positions are 0-based ranks throughout; score and lex ranges become rank
//! intervals through `count_while`.

use super::skiplist::NodeRef;
pub use super::skiplist::SkipList;

/// Where a member sits, from [`ZSet::locate`].
#[derive(Debug, Clone, Copy)]
pub enum ZPos {
    /// Byte offset of the entry in the packed buffer.
    Compact(usize),
    Full(NodeRef),
}
use super::skiplist::before;

/// Compact encoding: the sorted entry buffer and its entry count.
#[derive(Debug, Clone, Default)]
pub struct Compact {
    buf: Vec<u8>,
    n: u32,
}

#[derive(Debug, Clone)]
pub enum ZSet {
    Compact(Compact),
    Full(Box<SkipList>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Compact(Compact::default())
    }
}

impl PartialEq for ZSet {
    fn eq(&self, o: &Self) -> bool {
        if self.len() != o.len() || self.encoding_name() != o.encoding_name() {
            return false;
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        self.for_ranks(0, self.len(), false, |m, s| {
            a.push((m.to_vec(), s.to_bits()))
        });
        o.for_ranks(0, o.len(), false, |m, s| b.push((m.to_vec(), s.to_bits())));
        a == b
    }
}

#[inline]
fn put_varint(buf: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends a score: `0x01` + zigzag varint for integral values (most real
/// scores; 2-4 bytes instead of 8), `0x00` + f64 LE otherwise. -0 is stored
/// as 0, as Redis' listpack (which keeps scores as text) does.
#[inline]
fn put_score(buf: &mut Vec<u8>, score: f64) {
    const LIM: f64 = 9_007_199_254_740_992.0; // 2^53
    if score.fract() == 0.0 && score.abs() < LIM {
        let i = score as i64;
        buf.push(1);
        put_varint64(buf, ((i << 1) ^ (i >> 63)) as u64);
    } else {
        buf.push(0);
        buf.extend_from_slice(&score.to_le_bytes());
    }
}

#[inline]
fn put_varint64(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a varint at `p`: (value, next position).
#[inline]
fn get_varint(buf: &[u8], mut p: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(p)?;
        p += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((v, p));
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Appends one compact entry.
#[inline]
fn put_entry(buf: &mut Vec<u8>, score: f64, m: &[u8]) {
    put_score(buf, score);
    put_varint(buf, m.len());
    buf.extend_from_slice(m);
}

/// Decodes the entry at `off`: (score, member start, member end).
#[inline]
fn decode(buf: &[u8], off: usize) -> Option<(f64, usize, usize)> {
    let (score, p) = match *buf.get(off)? {
        0 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(buf.get(off + 1..off + 9)?);
            (f64::from_le_bytes(a), off + 9)
        }
        _ => {
            let (z, p) = get_varint(buf, off + 1)?;
            let i = ((z >> 1) as i64) ^ -((z & 1) as i64);
            (i as f64, p)
        }
    };
    let (len, p) = get_varint(buf, p)?;
    let end = p.checked_add(usize::try_from(len).ok()?)?;
    if end > buf.len() {
        return None;
    }
    Some((score, p, end))
}

impl Compact {
    /// Iterates (offset, score, member).
    fn iter(&self) -> impl Iterator<Item = (usize, f64, &[u8])> + '_ {
        let mut off = 0usize;
        std::iter::from_fn(move || {
            let (s, a, b) = decode(&self.buf, off)?;
            let cur = off;
            off = b;
            Some((cur, s, &self.buf[a..b]))
        })
    }

    fn find(&self, m: &[u8]) -> Option<(usize, usize, f64)> {
        let mut off = 0usize;
        let mut rank = 0usize;
        while let Some((s, a, b)) = decode(&self.buf, off) {
            if &self.buf[a..b] == m {
                return Some((off, rank, s));
            }
            off = b;
            rank += 1;
        }
        None
    }

    fn entry_end(&self, off: usize) -> usize {
        decode(&self.buf, off).map_or(self.buf.len(), |(_, _, b)| b)
    }

    fn insert(&mut self, score: f64, m: &[u8]) {
        // Listpack stores scores as text: -0 reads back as 0.
        let score = if score == 0.0 { 0.0 } else { score };
        let mut pos = self.buf.len();
        for (off, s, mm) in self.iter() {
            if before(score, m, s, mm) {
                pos = off;
                break;
            }
        }
        let mut e = Vec::with_capacity(10 + varint_len(m.len()) + m.len());
        put_entry(&mut e, score, m);
        if self.buf.capacity() < self.buf.len() + e.len() {
            // Grow exactly (listpack-like): small zsets stay tight.
            self.buf.reserve_exact(e.len());
        }
        self.buf.splice(pos..pos, e);
        self.n += 1;
    }

    fn remove_at(&mut self, off: usize) {
        let end = self.entry_end(off);
        self.buf.drain(off..end);
        self.n -= 1;
    }

    fn offset_of_rank(&self, r: usize) -> usize {
        self.iter().nth(r).map_or(self.buf.len(), |(o, _, _)| o)
    }
}

/// A member chosen by a range walk: (member, score).
pub type Item = (Vec<u8>, f64);

impl ZSet {
    pub fn new_compact() -> ZSet {
        ZSet::Compact(Compact::default())
    }

    pub fn new_full() -> ZSet {
        ZSet::Full(Box::default())
    }

    /// Redis' OBJECT ENCODING name for the current representation.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            ZSet::Compact(_) => "listpack",
            ZSet::Full(_) => "skiplist",
        }
    }

    /// Approximate heap bytes (INFO memory estimates).
    pub fn heap_size(&self) -> usize {
        match self {
            ZSet::Compact(c) => c.buf.capacity(),
            ZSet::Full(s) => s.heap_size() + std::mem::size_of::<SkipList>(),
        }
    }

    /// Number of elements (0 means the key must be deleted).
    pub fn len(&self) -> usize {
        match self {
            ZSet::Compact(c) => c.n as usize,
            ZSet::Full(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_compact(&self) -> bool {
        matches!(self, ZSet::Compact(_))
    }

    /// The score of `m`.
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            ZSet::Compact(c) => c.find(m).map(|x| x.2),
            ZSet::Full(s) => s.score(m),
        }
    }

    /// Converts to the full encoding.
    pub fn convert_to_full(&mut self) {
        if let ZSet::Compact(c) = self {
            let mut s = SkipList::with_capacity(c.n as usize);
            for (_, sc, m) in c.iter() {
                s.insert(sc, m.into());
            }
            *self = ZSet::Full(Box::new(s));
        }
    }

    /// Converts a full zset back to compact when it fits the thresholds
    /// (used for freshly built store results, as Redis'
    /// `zsetConvertToListpackIfNeeded`).
    pub fn shrink_if_small(&mut self, max_entries: usize, max_value: usize) {
        if let ZSet::Full(s) = self {
            if s.len() > max_entries || s.iter().any(|(m, _)| m.len() > max_value) {
                return;
            }
            let mut c = Compact::default();
            for (m, sc) in s.iter() {
                put_entry(&mut c.buf, sc, m);
                c.n += 1;
            }
            c.buf.shrink_to_fit();
            *self = ZSet::Compact(c);
        }
    }

    /// Builds a zset from elements sorted by (score, member) with distinct
    /// members, in the encoding Redis would end up with after inserting them
    /// one by one (full when there are more than `max_entries` elements or a
    /// member is longer than `max_value`).
    pub fn from_sorted(items: &[Item], max_entries: usize, max_value: usize) -> ZSet {
        if items.len() > max_entries || items.iter().any(|(m, _)| m.len() > max_value) {
            let mut s = SkipList::with_capacity(items.len());
            for (m, sc) in items {
                s.insert(*sc, m.as_slice().into());
            }
            return ZSet::Full(Box::new(s));
        }
        let mut c = Compact::default();
        let total: usize = items
            .iter()
            .map(|(m, _)| 10 + varint_len(m.len()) + m.len())
            .sum();
        c.buf.reserve_exact(total);
        for (m, sc) in items {
            put_entry(&mut c.buf, *sc, m);
            c.n += 1;
        }
        c.buf.shrink_to_fit();
        ZSet::Compact(c)
    }

    /// Inserts a member known to be absent, converting first when the
    /// compact encoding would exceed its limits.
    pub fn insert_new(&mut self, m: &[u8], score: f64, max_entries: usize, max_value: usize) {
        if let ZSet::Compact(c) = self
            && (c.n as usize + 1 > max_entries || m.len() > max_value)
        {
            self.convert_to_full();
        }
        match self {
            ZSet::Compact(c) => c.insert(score, m),
            ZSet::Full(s) => s.insert(score, m.into()),
        }
    }

    /// A member's position and score, for [`ZSet::set_score_at`] (one
    /// lookup for a read-then-update).
    pub fn locate(&self, m: &[u8]) -> Option<(ZPos, f64)> {
        match self {
            ZSet::Compact(c) => c.find(m).map(|(off, _, s)| (ZPos::Compact(off), s)),
            ZSet::Full(s) => s.locate(m).map(|(r, sc)| (ZPos::Full(r), sc)),
        }
    }

    /// Changes the score of the member at `pos` (from [`ZSet::locate`], with
    /// no change to the set since).
    pub fn set_score_at(&mut self, pos: ZPos, m: &[u8], score: f64) {
        match (self, pos) {
            (ZSet::Compact(c), ZPos::Compact(off)) => {
                if decode(&c.buf, off).is_some_and(|(old, _, _)| old.to_bits() != score.to_bits()) {
                    c.remove_at(off);
                    c.insert(score, m);
                }
            }
            (ZSet::Full(s), ZPos::Full(r)) => s.update_score_at(r, m, score),
            // A position from the other encoding: look the member up again.
            (z, _) => z.set_score(m, score),
        }
    }

    /// Changes the score of a present member.
    pub fn set_score(&mut self, m: &[u8], score: f64) {
        match self {
            ZSet::Compact(c) => {
                if let Some((off, _, old)) = c.find(m) {
                    if old.to_bits() == score.to_bits() {
                        return;
                    }
                    c.remove_at(off);
                    c.insert(score, m);
                }
            }
            ZSet::Full(s) => s.update_score(m, score),
        }
    }

    /// Removes `m`; true when it was present.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            ZSet::Compact(c) => match c.find(m) {
                Some((off, _, _)) => {
                    c.remove_at(off);
                    true
                }
                None => false,
            },
            ZSet::Full(s) => s.remove(m).is_some(),
        }
    }

    /// 0-based rank and score of `m` (ascending order).
    pub fn rank(&self, m: &[u8]) -> Option<(usize, f64)> {
        match self {
            ZSet::Compact(c) => c.find(m).map(|(_, r, s)| (r, s)),
            ZSet::Full(s) => s.rank(m),
        }
    }

    /// Number of leading elements for which `pred` holds.
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Compact(c) => c.iter().take_while(|(_, s, m)| pred(*s, m)).count(),
            ZSet::Full(s) => s.count_while(pred),
        }
    }

    /// Index of the first element at or after `start` for which `pred` fails
    /// (Redis' listpack lex walk).
    pub fn count_while_from(&self, start: usize, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Compact(c) => {
                start
                    + c.iter()
                        .skip(start)
                        .take_while(|(_, s, m)| pred(*s, m))
                        .count()
            }
            ZSet::Full(s) => s.count_while(pred).max(start),
        }
    }

    /// Element at 0-based rank `r`.
    pub fn get_rank(&self, r: usize) -> Option<(&[u8], f64)> {
        match self {
            ZSet::Compact(c) => c.iter().nth(r).map(|(_, s, m)| (m, s)),
            ZSet::Full(s) => s.get_rank(r),
        }
    }

    /// Calls `f` for ranks `a..b` ascending (descending when `rev`).
    pub fn for_ranks(&self, a: usize, b: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let b = b.min(self.len());
        if a >= b {
            return;
        }
        match self {
            ZSet::Compact(c) => {
                if rev {
                    let items: Vec<(f64, &[u8])> = c
                        .iter()
                        .skip(a)
                        .take(b - a)
                        .map(|(_, s, m)| (s, m))
                        .collect();
                    for (s, m) in items.into_iter().rev() {
                        f(m, s);
                    }
                } else {
                    for (_, s, m) in c.iter().skip(a).take(b - a) {
                        f(m, s);
                    }
                }
            }
            ZSet::Full(s) => s.for_ranks(a, b, rev, f),
        }
    }

    /// Removes ranks `a..b`; returns how many were removed.
    pub fn remove_ranks(&mut self, a: usize, b: usize) -> usize {
        let b = b.min(self.len());
        if a >= b {
            return 0;
        }
        match self {
            ZSet::Compact(c) => {
                let start = c.offset_of_rank(a);
                let end = c.offset_of_rank(b);
                c.buf.drain(start..end);
                c.n -= (b - a) as u32;
                b - a
            }
            ZSet::Full(s) => {
                let mut n = 0;
                s.remove_ranks(a, b, |_, _| n += 1);
                n
            }
        }
    }

    /// Removes and returns up to `count` elements from the low end (or high
    /// end when `max`), in pop order.
    pub fn pop(&mut self, max: bool, count: usize) -> Vec<Item> {
        let n = count.min(self.len());
        let (a, b) = if max {
            (self.len() - n, self.len())
        } else {
            (0, n)
        };
        let mut out = Vec::with_capacity(n);
        match self {
            ZSet::Compact(_) => {
                self.for_ranks(a, b, max, |m, s| out.push((m.to_vec(), s)));
                self.remove_ranks(a, b);
            }
            ZSet::Full(s) => {
                s.remove_ranks(a, b, |m, sc| out.push((m.into_vec(), sc)));
                if max {
                    out.reverse();
                }
            }
        }
        out
    }

    /// All elements in order.
    pub fn to_vec(&self) -> Vec<Item> {
        let mut v = Vec::with_capacity(self.len());
        self.for_ranks(0, self.len(), false, |m, s| v.push((m.to_vec(), s)));
        v
    }

    /// A SCAN step over the full encoding's member index: visits buckets from
    /// `cursor` and returns the next cursor (0 when done). The cursor packs
    /// the bucket (high bits) with the index's relocation generation (low 16
    /// bits); a cursor from another generation restarts at bucket 0, so an
    /// element present for the whole scan is returned at least once. Compact
    /// zsets are returned whole by the caller.
    pub fn scan_full(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        let ZSet::Full(s) = self else { return 0 };
        let generation = u64::from(s.generation() & 0xffff);
        let n = s.num_buckets();
        let mut b = if cursor & 0xffff == generation {
            usize::try_from(cursor >> 16).unwrap_or(usize::MAX)
        } else {
            0
        };
        let mut seen = 0usize;
        let budget = count.saturating_mul(10).max(1);
        let mut visited = 0usize;
        while b < n && seen < count && visited < budget {
            if let Some((m, sc)) = s.bucket(b) {
                f(m, sc);
                seen += 1;
            }
            b += 1;
            visited += 1;
        }
        if b >= n {
            0
        } else {
            ((b as u64) << 16) | generation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(items: &[(u8, i8)], full: bool) -> ZSet {
        let mut z = ZSet::new_compact();
        if full {
            z.convert_to_full();
        }
        for &(m, s) in items {
            let m = format!("m{m}").into_bytes();
            let s = f64::from(s);
            match z.locate(&m) {
                Some((pos, _)) => z.set_score_at(pos, &m, s),
                None => z.insert_new(&m, s, usize::MAX, usize::MAX),
            }
        }
        z
    }

    #[test]
    fn thresholds_convert() {
        let mut z = ZSet::new_compact();
        z.insert_new(b"a", 1.0, 2, 10);
        z.insert_new(b"b", 2.0, 2, 10);
        assert_eq!(z.encoding_name(), "listpack");
        z.insert_new(b"c", 0.5, 2, 10);
        assert_eq!(z.encoding_name(), "skiplist");
        assert_eq!(
            z.to_vec(),
            vec![
                (b"c".to_vec(), 0.5),
                (b"a".to_vec(), 1.0),
                (b"b".to_vec(), 2.0)
            ]
        );
        let mut y = ZSet::new_compact();
        y.insert_new(b"0123456789ab", 1.0, 128, 10);
        assert_eq!(y.encoding_name(), "skiplist");
    }

    #[test]
    fn compact_scores_roundtrip() {
        let vals = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e6,
            -1e6,
            5e-324,
            1e308,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9_007_199_254_740_991.0,
            -9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            -9.2e18,
            1.5e17,
            12345.5,
        ];
        let mut z = ZSet::new_compact();
        for (i, v) in vals.iter().enumerate() {
            z.insert_new(format!("m{i}").as_bytes(), *v, 1000, 1000);
        }
        for (i, v) in vals.iter().enumerate() {
            let got = z.score(format!("m{i}").as_bytes());
            let want = if *v == 0.0 { 0.0 } else { *v };
            assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{v}");
        }
    }

    #[test]
    fn scan_full_survives_growth() {
        let mut z = ZSet::new_full();
        for i in 0..500 {
            z.insert_new(format!("a{i}").as_bytes(), f64::from(i), 0, 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0u64;
        let mut extra = 0;
        loop {
            cursor = z.scan_full(cursor, 7, |m, _| {
                seen.insert(m.to_vec());
            });
            // Grow the index (past at least one resize) while scanning.
            if extra < 1000 {
                for _ in 0..20 {
                    z.insert_new(format!("b{extra}").as_bytes(), 1.0, 0, 0);
                    extra += 1;
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(format!("a{i}").as_bytes()), "a{i} missed");
        }
    }

    proptest! {
        #[test]
        fn any_score_roundtrips(v in any::<f64>().prop_filter("no NaN", |v| !v.is_nan())) {
            let mut z = ZSet::new_compact();
            z.insert_new(b"m", v, 10, 10);
            let want = if v == 0.0 { 0.0 } else { v };
            prop_assert_eq!(z.score(b"m").map(f64::to_bits), Some(want.to_bits()));
        }

        #[test]
        fn encodings_agree(items in proptest::collection::vec((0u8..40, any::<i8>()), 0..120),
                           rem in proptest::collection::vec(0u8..40, 0..20),
                           a in 0usize..50, n in 0usize..10) {
            let mut c = build(&items, false);
            let mut f = build(&items, true);
            prop_assert_eq!(c.to_vec(), f.to_vec());
            // Conversion keeps contents both ways.
            let mut conv = c.clone();
            conv.convert_to_full();
            prop_assert_eq!(conv.to_vec(), c.to_vec());
            conv.shrink_if_small(usize::MAX, usize::MAX);
            prop_assert!(conv.is_compact());
            prop_assert_eq!(conv.to_vec(), c.to_vec());
            for m in rem {
                let m = format!("m{m}").into_bytes();
                prop_assert_eq!(c.remove(&m), f.remove(&m));
            }
            prop_assert_eq!(c.to_vec(), f.to_vec());
            for (r, (m, s)) in c.to_vec().iter().enumerate() {
                prop_assert_eq!(c.rank(m), Some((r, *s)));
                prop_assert_eq!(f.rank(m), Some((r, *s)));
            }
            let mut rv1 = Vec::new();
            let mut rv2 = Vec::new();
            c.for_ranks(a, a + n, true, |m, s| rv1.push((m.to_vec(), s)));
            f.for_ranks(a, a + n, true, |m, s| rv2.push((m.to_vec(), s)));
            prop_assert_eq!(rv1, rv2);
            prop_assert_eq!(c.count_while(|s, _| s < 0.0), f.count_while(|s, _| s < 0.0));
            prop_assert_eq!(c.pop(true, 3), f.pop(true, 3));
            prop_assert_eq!(c.pop(false, 2), f.pop(false, 2));
            prop_assert_eq!(c.remove_ranks(a, a + n), f.remove_ranks(a, a + n));
            prop_assert_eq!(c.to_vec(), f.to_vec());
        }
    }
}
