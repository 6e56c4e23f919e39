//! The hash value type, with Redis 7.0's two encodings (`t_hash.c`):
//!
//! * `listpack` (compact): one contiguous buffer
//!   `[pairs u32 LE]([field len varint][field][value len varint][value])*`,
//!   searched linearly and kept in insertion order (new fields are appended,
//!   updated values stay in place), so HGETALL/HKEYS/HSCAN replies come out in
//!   the same order as Redis' listpack. The buffer is sized exactly (Redis
//!   reallocates its listpack on every change too): small hashes are the bulk
//!   of a keyspace and their bytes per field matter more than a realloc.
//! * `hashtable`: a `hashbrown::HashTable` of single-allocation entries
//!   `[field len varint][field][value]`, hashed with one process-wide random
//!   ahash seed (fields are client-controlled).
//!
//! Conversion follows Redis exactly: a hash starts compact; it converts when a
//! command is about to store a field or value longer than
//! `hash-max-listpack-value` (HSET/HMSET, and HSETNX for a new field, check
//! every argument first, as `hashTypeTryConversion` does), when
//! the number of pairs exceeds `hash-max-listpack-entries` after an insert, or
//! when the buffer would pass listpack's 1 GiB safety limit. It never converts
//! back.
//!
//! HSCAN on the table walks bucket indexes. The cursor carries a generation
//! that changes whenever entries may move (the table grows, rehashes in place
//! or shrinks); a cursor from another generation restarts the walk, so every
//! field present for the whole scan is returned at least once. A compact hash
//! is returned whole with cursor 0, as Redis does.
//!
//! Random picks (HRANDFIELD) probe random buckets of the table until they hit a
//! full one; the table shrinks when its load drops under 1/8, so a pick costs a
//! bounded expected number of probes.

use std::sync::OnceLock;

use hashbrown::HashTable;
use rand::Rng;

/// Listpack's `LISTPACK_MAX_SAFETY_SIZE`: a compact hash never grows past it.
const COMPACT_MAX_BYTES: usize = 1 << 30;
/// Bytes of the pair counter at the start of a non-empty compact buffer.
const COUNT_BYTES: usize = 4;
/// Bits of an HSCAN cursor holding the bucket index (the rest: generation).
const CURSOR_INDEX_BITS: u32 = 40;
const CURSOR_INDEX_MASK: u64 = (1 << CURSOR_INDEX_BITS) - 1;
const CURSOR_GEN_MASK: u32 = (1 << (64 - CURSOR_INDEX_BITS)) - 1;

/// Conversion thresholds (`hash-max-listpack-entries`, `hash-max-listpack-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

impl Limits {
    /// Redis' defaults (128 entries, 64 bytes).
    pub const DEFAULT: Limits = Limits {
        max_entries: 128,
        max_value: 64,
    };
}

/// Process-wide hasher seed for hash fields (independent of the keyspace's).
fn hasher() -> &'static ahash::RandomState {
    static H: OnceLock<ahash::RandomState> = OnceLock::new();
    H.get_or_init(ahash::RandomState::new)
}

#[inline]
fn hash_field(f: &[u8]) -> u64 {
    hasher().hash_one(f)
}

// --- varints ---------------------------------------------------------------

#[inline]
fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Encodes `v` (LEB128) into `out`, returning the used prefix length.
#[inline]
fn encode_varint(mut v: usize, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

#[inline]
fn push_varint(buf: &mut Vec<u8>, v: usize) {
    let mut tmp = [0u8; 10];
    let n = encode_varint(v, &mut tmp);
    buf.extend_from_slice(&tmp[..n]);
}

/// Decodes a varint at `pos`: `(value, position after it)`.
#[inline]
fn read_varint(buf: &[u8], mut pos: usize) -> Option<(usize, usize)> {
    let mut v: usize = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(pos)?;
        pos += 1;
        if shift >= usize::BITS {
            return None;
        }
        v |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return Some((v, pos));
        }
        shift += 7;
    }
}

/// A length-prefixed string at `pos`: `(bytes, position after it)`.
#[inline]
fn read_str(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let (len, p) = read_varint(buf, pos)?;
    let end = p.checked_add(len)?;
    Some((buf.get(p..end)?, end))
}

// --- table entries -----------------------------------------------------------

fn make_entry(f: &[u8], v: &[u8]) -> Box<[u8]> {
    let mut e = Vec::with_capacity(varint_len(f.len()) + f.len() + v.len());
    push_varint(&mut e, f.len());
    e.extend_from_slice(f);
    e.extend_from_slice(v);
    e.into_boxed_slice()
}

/// Splits a table entry into (field, value).
#[inline]
fn entry_parts(e: &[u8]) -> (&[u8], &[u8]) {
    match read_str(e, 0) {
        Some((f, end)) => (f, e.get(end..).unwrap_or(&[])),
        None => (&[], &[]),
    }
}

#[inline]
fn entry_field(e: &[u8]) -> &[u8] {
    entry_parts(e).0
}

#[derive(Clone)]
struct Table {
    t: HashTable<Box<[u8]>>,
    /// Changes whenever entries may have moved between buckets (HSCAN).
    generation: u32,
    /// Sum of the entries' lengths (O(1) `heap_size` for INFO).
    entry_bytes: usize,
}

impl Table {
    fn with_capacity(n: usize) -> Table {
        Table {
            t: HashTable::with_capacity(n),
            generation: 0,
            entry_bytes: 0,
        }
    }

    fn find(&self, f: &[u8]) -> Option<&[u8]> {
        self.t
            .find(hash_field(f), |e| entry_field(e) == f)
            .map(|e| entry_parts(e).1)
    }

    /// Inserts or updates; true when the field is new.
    fn set(&mut self, f: &[u8], v: &[u8]) -> bool {
        let h = hash_field(f);
        if let Some(e) = self.t.find_mut(h, |e| entry_field(e) == f) {
            let vstart = e.len() - entry_parts(e).1.len();
            if e.len() - vstart == v.len() {
                if let Some(dst) = e.get_mut(vstart..) {
                    dst.copy_from_slice(v);
                }
            } else {
                let old = e.len();
                *e = make_entry(f, v);
                self.entry_bytes = (self.entry_bytes + e.len()).saturating_sub(old);
            }
            return false;
        }
        if self.t.len() == self.t.capacity() {
            // This insert grows or rehashes in place: buckets move.
            self.generation = self.generation.wrapping_add(1);
        }
        let e = make_entry(f, v);
        self.entry_bytes += e.len();
        self.t.insert_unique(h, e, |e| hash_field(entry_field(e)));
        true
    }

    fn remove(&mut self, f: &[u8]) -> bool {
        match self.t.find_entry(hash_field(f), |e| entry_field(e) == f) {
            Ok(occ) => {
                let (e, _) = occ.remove();
                self.entry_bytes = self.entry_bytes.saturating_sub(e.len());
                true
            }
            Err(_) => false,
        }
    }

    /// Gives memory back after deletions (keeps random probing cheap).
    fn maybe_shrink(&mut self) {
        let nb = self.t.num_buckets();
        if nb > 64 && self.t.len() * 8 < nb {
            self.t
                .shrink_to(self.t.len(), |e| hash_field(entry_field(e)));
            self.generation = self.generation.wrapping_add(1);
        }
    }

    /// A uniformly random entry (the table must not be empty).
    fn random_bucket(&self, rng: &mut impl Rng) -> Option<usize> {
        let nb = self.t.num_buckets();
        if self.t.is_empty() || nb == 0 {
            return None;
        }
        loop {
            let i = rng.random_range(0..nb);
            if self.t.get_bucket(i).is_some() {
                return Some(i);
            }
        }
    }
}

// --- compact buffer ------------------------------------------------------------

/// Where a pair lies in a compact buffer.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Start of the field's length prefix.
    start: usize,
    /// Start of the value's length prefix.
    vpos: usize,
    /// End of the value.
    end: usize,
}

fn compact_count(buf: &[u8]) -> usize {
    match buf.get(..COUNT_BYTES) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
        None => 0,
    }
}

fn set_compact_count(buf: &mut [u8], n: usize) {
    if let Some(b) = buf.get_mut(..COUNT_BYTES) {
        b.copy_from_slice(&(n as u32).to_le_bytes());
    }
}

fn compact_find(buf: &[u8], f: &[u8]) -> Option<Slot> {
    let mut pos = COUNT_BYTES;
    while pos < buf.len() {
        let (field, vpos) = read_str(buf, pos)?;
        let (_, end) = read_str(buf, vpos)?;
        if field == f {
            return Some(Slot {
                start: pos,
                vpos,
                end,
            });
        }
        pos = end;
    }
    None
}

/// Iterates the pairs of a compact buffer in order.
struct CompactIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for CompactIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (f, p) = read_str(self.buf, self.pos)?;
        let (v, end) = read_str(self.buf, p)?;
        self.pos = end;
        Some((f, v))
    }
}

// --- the value type ---------------------------------------------------------------

#[derive(Clone)]
enum Repr {
    Compact(Vec<u8>),
    Table(Box<Table>),
}

/// A hash value.
#[derive(Clone)]
pub struct Hash {
    repr: Repr,
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in self.iter() {
            m.entry(&String::from_utf8_lossy(k), &String::from_utf8_lossy(v));
        }
        m.finish()
    }
}

/// Equal when both hold the same field/value pairs (whatever the encoding).
impl PartialEq for Hash {
    fn eq(&self, other: &Hash) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

/// Iterator over a hash's (field, value) pairs.
pub enum Iter<'a> {
    Compact(CompactIterPub<'a>),
    Table(hashbrown::hash_table::Iter<'a, Box<[u8]>>),
}

/// Public wrapper of the compact iterator (keeps the layout private).
pub struct CompactIterPub<'a>(CompactIter<'a>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Compact(c) => c.0.next(),
            Iter::Table(t) => t.next().map(|e| entry_parts(e)),
        }
    }
}

impl Hash {
    /// An empty (compact) hash.
    pub fn new() -> Hash {
        Hash {
            repr: Repr::Compact(Vec::new()),
        }
    }

    /// An empty hash in the table encoding with room for `capacity` fields
    /// (SLOTSRESTORE-ASYNC pre-sizes from the sender's hint, so a big hash
    /// arriving in chunks never rehashes in one go).
    pub fn new_table(capacity: usize) -> Hash {
        Hash {
            repr: Repr::Table(Box::new(Table::with_capacity(capacity))),
        }
    }

    /// Redis' OBJECT ENCODING name for the current representation.
    pub fn encoding_name(&self) -> &'static str {
        match self.repr {
            Repr::Compact(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    pub fn is_compact(&self) -> bool {
        matches!(self.repr, Repr::Compact(_))
    }

    /// Approximate heap bytes (INFO memory estimates).
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Compact(b) => b.capacity(),
            Repr::Table(t) => {
                std::mem::size_of::<Table>()
                    + t.t.num_buckets() * (std::mem::size_of::<Box<[u8]>>() + 1)
                    + t.entry_bytes
            }
        }
    }

    /// Number of fields (0 means the key must be deleted).
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Compact(b) => compact_count(b),
            Repr::Table(t) => t.t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Compact(b) => {
                let s = compact_find(b, field)?;
                read_str(b, s.vpos).map(|(v, _)| v)
            }
            Repr::Table(t) => t.find(field),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// The pairs, in listpack order for a compact hash.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Compact(b) => Iter::Compact(CompactIterPub(CompactIter {
                buf: b,
                pos: COUNT_BYTES,
            })),
            Repr::Table(t) => Iter::Table(t.t.iter()),
        }
    }

    /// Converts a compact hash to the table encoding.
    fn convert(&mut self) {
        let Repr::Compact(b) = &self.repr else { return };
        let mut t = Table::with_capacity(compact_count(b));
        for (f, v) in (CompactIter {
            buf: b,
            pos: COUNT_BYTES,
        }) {
            let e = make_entry(f, v);
            t.entry_bytes += e.len();
            t.t.insert_unique(hash_field(f), e, |e| hash_field(entry_field(e)));
        }
        self.repr = Repr::Table(Box::new(t));
    }

    /// `hashTypeTryConversion`: before a write, converts a compact hash when
    /// any of the arguments is longer than `max_value` or their total would
    /// push the buffer past the listpack safety size.
    pub fn prepare(&mut self, args: &[&[u8]], lim: &Limits) {
        let Repr::Compact(b) = &self.repr else { return };
        let mut sum = 0usize;
        for a in args {
            if a.len() > lim.max_value {
                self.convert();
                return;
            }
            sum = sum.saturating_add(a.len());
        }
        if b.len().saturating_add(sum) > COMPACT_MAX_BYTES {
            self.convert();
        }
    }

    /// `hashTypeSet`: inserts or updates a field; true when it is new.
    /// Converts before the write when the field or value is too long for the
    /// compact encoding, and after it when there are too many pairs.
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: &Limits) -> bool {
        if let Repr::Compact(b) = &self.repr
            && (field.len() > lim.max_value
                || value.len() > lim.max_value
                || b.len().saturating_add(field.len() + value.len()) > COMPACT_MAX_BYTES)
        {
            self.convert();
        }
        let created = match &mut self.repr {
            Repr::Table(t) => return t.set(field, value),
            Repr::Compact(b) => compact_set(b, field, value),
        };
        if created && self.len() > lim.max_entries {
            self.convert();
        }
        created
    }

    /// HSET/HMSET: `prepare`, then `set` for every (field, value) pair of
    /// `args` (a trailing odd argument is ignored). Returns how many fields
    /// were created.
    pub fn set_pairs(&mut self, args: &[&[u8]], lim: &Limits) -> usize {
        self.prepare(args, lim);
        if let Repr::Compact(b) = &mut self.repr
            && b.is_empty()
        {
            // A new hash: one exact allocation for all pairs (trimmed below
            // if some fields repeat).
            let need: usize = COUNT_BYTES
                + args
                    .iter()
                    .take(args.len() & !1)
                    .map(|a| varint_len(a.len()) + a.len())
                    .sum::<usize>();
            if need <= COMPACT_MAX_BYTES {
                b.reserve_exact(need);
            }
        }
        let mut created = 0;
        for p in args.chunks_exact(2) {
            if self.set(p[0], p[1], lim) {
                created += 1;
            }
        }
        self.trim();
        created
    }

    /// Removes a field; true when it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Compact(b) => {
                let Some(s) = compact_find(b, field) else {
                    return false;
                };
                b.drain(s.start..s.end);
                let n = compact_count(b).saturating_sub(1);
                set_compact_count(b, n);
                true
            }
            Repr::Table(t) => t.remove(field),
        }
    }

    /// Releases spare capacity after a batch of changes.
    pub fn trim(&mut self) {
        match &mut self.repr {
            Repr::Compact(b) => {
                if b.capacity() > b.len() + 16 {
                    b.shrink_to_fit();
                }
            }
            Repr::Table(t) => t.maybe_shrink(),
        }
    }

    /// HSCAN: calls `f` for the pairs of one step and returns the next cursor
    /// (0 when done). A compact hash is returned whole. For the table, the
    /// walk stops once `count` reply elements (fields plus values, as Redis
    /// counts) were collected or `10 * count` buckets were visited.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        let t = match &self.repr {
            Repr::Compact(_) => {
                for (k, v) in self.iter() {
                    f(k, v);
                }
                return 0;
            }
            Repr::Table(t) => t,
        };
        let gen_bits = t.generation & CURSOR_GEN_MASK;
        let mut i = (cursor & CURSOR_INDEX_MASK) as usize;
        if cursor != 0 && (cursor >> CURSOR_INDEX_BITS) as u32 != gen_bits {
            // The table changed shape since this cursor was handed out.
            i = 0;
        }
        let nb = t.t.num_buckets();
        let max_visits = count.saturating_mul(10).max(1);
        let (mut emitted, mut visits) = (0usize, 0usize);
        while i < nb {
            if let Some(e) = t.t.get_bucket(i) {
                let (k, v) = entry_parts(e);
                f(k, v);
                emitted += 2;
            }
            i += 1;
            visits += 1;
            if emitted >= count || visits >= max_visits {
                break;
            }
        }
        if i >= nb {
            0
        } else {
            ((gen_bits as u64) << CURSOR_INDEX_BITS) | i as u64
        }
    }

    /// One uniformly random pair.
    pub fn random_pair(&self, rng: &mut impl Rng) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Compact(_) => {
                let n = self.len();
                if n == 0 {
                    return None;
                }
                self.iter().nth(rng.random_range(0..n))
            }
            Repr::Table(t) => t
                .random_bucket(rng)
                .and_then(|i| t.t.get_bucket(i))
                .map(|e| entry_parts(e)),
        }
    }

    /// `count` random pairs, repeats allowed (HRANDFIELD with a negative
    /// count); stops early when `f` returns false.
    pub fn random_pairs(
        &self,
        count: usize,
        rng: &mut impl Rng,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        match &self.repr {
            Repr::Compact(_) => {
                let all: Vec<(&[u8], &[u8])> = self.iter().collect();
                if all.is_empty() {
                    return;
                }
                for _ in 0..count {
                    if let Some(&(k, v)) = all.get(rng.random_range(0..all.len()))
                        && !f(k, v)
                    {
                        return;
                    }
                }
            }
            Repr::Table(t) => {
                for _ in 0..count {
                    if let Some(e) = t.random_bucket(rng).and_then(|i| t.t.get_bucket(i)) {
                        let (k, v) = entry_parts(e);
                        if !f(k, v) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// `min(count, len)` distinct random pairs (HRANDFIELD with a positive
    /// count). When `count >= len` every pair is returned in iteration order
    /// (listpack order for a compact hash, as Redis does); a compact hash also
    /// returns a sample in listpack order.
    pub fn random_distinct(
        &self,
        count: usize,
        rng: &mut impl Rng,
        mut f: impl FnMut(&[u8], &[u8]),
    ) {
        let n = self.len();
        if count >= n {
            for (k, v) in self.iter() {
                f(k, v);
            }
            return;
        }
        match &self.repr {
            Repr::Table(t) if count.saturating_mul(3) <= n => {
                // Few picks from a big table: probe random buckets.
                let mut seen: hashbrown::HashSet<usize> = hashbrown::HashSet::with_capacity(count);
                while seen.len() < count {
                    let Some(i) = t.random_bucket(rng) else {
                        return;
                    };
                    if seen.insert(i)
                        && let Some(e) = t.t.get_bucket(i)
                    {
                        let (k, v) = entry_parts(e);
                        f(k, v);
                    }
                }
            }
            _ => {
                let all: Vec<(&[u8], &[u8])> = self.iter().collect();
                let mut idx = rand::seq::index::sample(rng, all.len(), count).into_vec();
                if self.is_compact() {
                    idx.sort_unstable();
                }
                for i in idx {
                    if let Some(&(k, v)) = all.get(i) {
                        f(k, v);
                    }
                }
            }
        }
    }
}

/// Inserts or updates a pair in a compact buffer; true when new.
fn compact_set(b: &mut Vec<u8>, f: &[u8], v: &[u8]) -> bool {
    let mut pre = [0u8; 10];
    if let Some(s) = compact_find(b, f) {
        let plen = encode_varint(v.len(), &mut pre);
        let old = s.end - s.vpos;
        let new = plen + v.len();
        if old == new {
            // Same size: overwrite in place (the prefix is unchanged too).
            if let Some(dst) = b.get_mut(s.end - v.len()..s.end) {
                dst.copy_from_slice(v);
            }
        } else {
            if new > old {
                b.reserve_exact(new - old);
            }
            b.splice(
                s.vpos..s.end,
                pre[..plen].iter().copied().chain(v.iter().copied()),
            );
        }
        return false;
    }
    let add = varint_len(f.len()) + f.len() + varint_len(v.len()) + v.len();
    if b.is_empty() {
        b.reserve_exact(COUNT_BYTES + add);
        b.extend_from_slice(&[0u8; COUNT_BYTES]);
    } else {
        b.reserve_exact(add);
    }
    push_varint(b, f.len());
    b.extend_from_slice(f);
    push_varint(b, v.len());
    b.extend_from_slice(v);
    let n = compact_count(b) + 1;
    set_compact_count(b, n);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    fn lim(e: usize, v: usize) -> Limits {
        Limits {
            max_entries: e,
            max_value: v,
        }
    }

    fn pairs(h: &Hash) -> BTreeMap<Vec<u8>, Vec<u8>> {
        h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn size_of_hash() {
        assert_eq!(std::mem::size_of::<Hash>(), 24);
    }

    #[test]
    fn compact_order_and_updates() {
        let l = lim(4, 8);
        let mut h = Hash::new();
        assert!(h.is_empty() && h.encoding_name() == "listpack");
        assert!(h.set(b"a", b"1", &l));
        assert!(h.set(b"b", b"2", &l));
        assert!(!h.set(b"a", b"longer", &l));
        assert!(!h.set(b"b", b"3", &l));
        let v: Vec<_> = h.iter().collect();
        assert_eq!(v, vec![(&b"a"[..], &b"longer"[..]), (&b"b"[..], &b"3"[..])]);
        assert_eq!(h.get(b"a"), Some(&b"longer"[..]));
        assert_eq!(h.get(b"c"), None);
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.len(), 1);
        assert!(h.set(b"", b"", &l));
        assert_eq!(h.get(b""), Some(&b""[..]));
        assert_eq!(h.encoding_name(), "listpack");
    }

    #[test]
    fn conversions_at_thresholds() {
        let l = lim(2, 4);
        let mut h = Hash::new();
        h.set(b"a", b"1234", &l);
        h.set(b"b", b"1", &l);
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b"c", b"1", &l);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.len(), 3);
        assert!(h.remove(b"a") && h.remove(b"b"));
        assert_eq!(h.encoding_name(), "hashtable");

        let mut h = Hash::new();
        h.set(b"a", b"12345", &l);
        assert_eq!(h.encoding_name(), "hashtable");
        let mut h = Hash::new();
        h.set(b"abcde", b"1", &l);
        assert_eq!(h.encoding_name(), "hashtable");

        // prepare converts on any long argument, even an existing field's.
        let mut h = Hash::new();
        h.set(b"a", b"1", &l);
        h.prepare(&[b"a", b"123456"], &l);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(b"a"), Some(&b"1"[..]));

        // Repeated fields do not count twice.
        let mut h = Hash::new();
        assert_eq!(h.set_pairs(&[b"a", b"1", b"a", b"2", b"a", b"3"], &l), 1);
        assert_eq!(h.encoding_name(), "listpack");
        assert_eq!(h.get(b"a"), Some(&b"3"[..]));

        let mut h = Hash::new();
        h.set(b"a", b"1", &lim(0, 64));
        assert_eq!(h.encoding_name(), "hashtable");
    }

    #[test]
    fn long_lengths_use_multibyte_prefixes() {
        let l = lim(128, 100_000);
        let mut h = Hash::new();
        let big = vec![b'x'; 70_000];
        h.set(&big, &big, &l);
        h.set(b"s", &big[..200], &l);
        h.set(b"s", &big[..100], &l);
        h.set(b"s", &big[..300], &l);
        assert_eq!(h.get(&big), Some(&big[..]));
        assert_eq!(h.get(b"s"), Some(&big[..300]));
        assert_eq!(h.encoding_name(), "listpack");
    }

    #[test]
    fn table_scan_finds_everything_despite_growth() {
        let l = lim(1, 64);
        let mut h = Hash::new();
        for i in 0..200 {
            h.set(format!("f{i}").as_bytes(), b"v", &l);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut i = 200;
        loop {
            cursor = h.scan(cursor, 10, |f, _| {
                seen.insert(f.to_vec());
            });
            // Keep growing the table during the scan (slower than the scan
            // walks it: a scan racing a faster grower may restart forever).
            for _ in 0..2 {
                h.set(format!("f{i}").as_bytes(), b"v", &l);
                i += 1;
            }
            if cursor == 0 {
                break;
            }
        }
        for j in 0..200 {
            assert!(seen.contains(format!("f{j}").as_bytes()), "missed f{j}");
        }
    }

    #[test]
    fn random_helpers() {
        let mut rng = rand::rng();
        for l in [lim(128, 64), lim(1, 64)] {
            let mut h = Hash::new();
            for i in 0..50 {
                h.set(format!("f{i}").as_bytes(), format!("v{i}").as_bytes(), &l);
            }
            let mut got = Vec::new();
            h.random_distinct(20, &mut rng, |f, _| got.push(f.to_vec()));
            assert_eq!(got.len(), 20);
            got.sort();
            got.dedup();
            assert_eq!(got.len(), 20);
            let mut all = 0;
            h.random_distinct(100, &mut rng, |_, _| all += 1);
            assert_eq!(all, 50);
            let mut n = 0;
            h.random_pairs(500, &mut rng, |f, v| {
                assert_eq!(h.get(f), Some(v));
                n += 1;
                true
            });
            assert_eq!(n, 500);
            let (f, v) = h.random_pair(&mut rng).unwrap();
            assert_eq!(h.get(f), Some(v));
            h.random_distinct(40, &mut rng, |_, _| {});
        }
    }

    #[test]
    fn table_shrinks_after_deletes() {
        let l = lim(0, 64);
        let mut h = Hash::new();
        for i in 0..5000 {
            h.set(format!("f{i}").as_bytes(), b"v", &l);
        }
        for i in 0..4990 {
            assert!(h.remove(format!("f{i}").as_bytes()));
            h.trim();
        }
        assert_eq!(h.len(), 10);
        assert!(h.heap_size() < 5000);
        let mut rng = rand::rng();
        assert!(h.random_pair(&mut rng).is_some());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(Vec<u8>, Vec<u8>),
        Del(Vec<u8>),
        Pairs(Vec<(Vec<u8>, Vec<u8>)>),
    }

    fn field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u8..20).prop_map(|i| format!("f{i}").into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ]
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec(prop_oneof![
                (field(), field()).prop_map(|(f, v)| Op::Set(f, v)),
                field().prop_map(Op::Del),
                proptest::collection::vec((field(), field()), 0..6).prop_map(Op::Pairs),
            ], 0..150),
            max_entries in 0usize..16, max_value in 0usize..14) {
            let l = lim(max_entries, max_value);
            let mut h = Hash::new();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut order: Vec<Vec<u8>> = Vec::new();
            let mut ever_big = false;
            for op in ops {
                match op {
                    Op::Set(f, v) => {
                        ever_big |= f.len() > max_value || v.len() > max_value;
                        let new = model.insert(f.clone(), v.clone()).is_none();
                        if new { order.push(f.clone()); }
                        prop_assert_eq!(h.set(&f, &v, &l), new);
                    }
                    Op::Del(f) => {
                        let had = model.remove(&f).is_some();
                        order.retain(|x| x != &f);
                        prop_assert_eq!(h.remove(&f), had);
                        h.trim();
                    }
                    Op::Pairs(ps) => {
                        let args: Vec<&[u8]> = ps.iter().flat_map(|(f, v)| [&f[..], &v[..]]).collect();
                        ever_big |= args.iter().any(|a| a.len() > max_value);
                        let mut created = 0;
                        for (f, v) in &ps {
                            if model.insert(f.clone(), v.clone()).is_none() {
                                created += 1;
                                order.push(f.clone());
                            }
                        }
                        prop_assert_eq!(h.set_pairs(&args, &l), created);
                    }
                }
                ever_big |= model.len() > max_entries;
                prop_assert_eq!(h.len(), model.len());
                prop_assert_eq!(h.is_compact(), !ever_big);
                let want: BTreeMap<_, _> = model.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
                prop_assert_eq!(pairs(&h), want);
                for (f, v) in &model {
                    prop_assert_eq!(h.get(f), Some(&v[..]));
                }
                if h.is_compact() {
                    let got: Vec<Vec<u8>> = h.iter().map(|(f, _)| f.to_vec()).collect();
                    prop_assert_eq!(&got, &order);
                }
                // A full scan returns every pair exactly once when nothing changes.
                let mut seen = BTreeMap::new();
                let mut c = 0;
                loop {
                    c = h.scan(c, 3, |f, v| { assert!(seen.insert(f.to_vec(), v.to_vec()).is_none()); });
                    if c == 0 { break; }
                }
                prop_assert_eq!(seen, pairs(&h));
                let copy = h.clone();
                prop_assert_eq!(&copy, &h);
                if let Repr::Table(t) = &h.repr {
                    prop_assert_eq!(t.entry_bytes, t.t.iter().map(|e| e.len()).sum::<usize>());
                }
            }
        }
    }
}
