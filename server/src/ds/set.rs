//! The set value type, with Redis 7.0's two encodings (`t_set.c`):
//!
//! * `intset`: while every member is an integer (exactly what `string2ll`
//!   accepts, so "007" or "-0" are strings) and there are at most
//!   `set-max-intset-entries` of them, members are kept as a sorted `Vec<i64>`;
//!   replies iterate it in ascending order, as Redis does.
//! * `hashtable`: otherwise. Redis 7.0 has no listpack sets, so small string
//!   sets are `hashtable` too. Members are boxed byte slices in a
//!   `hashbrown::HashTable` hashed with one process-wide random ahash seed
//!   (client-controlled members). A set never converts back to `intset`,
//!   except where a command rebuilds it (SPOP with a large count, like Redis).
//!
//! Random picks (SPOP, SRANDMEMBER) probe uniformly random buckets until they
//! hit a full one; the table is shrunk when its load falls under 1/4, so a pick
//! is O(1) expected and every member is equally likely. SSCAN on a hashtable
//! walks bucket indexes; the cursor carries the table's size and a generation
//! bumped by every insert that may relocate entries (growth or hashbrown's
//! in-place rehash), so a stale cursor restarts the walk (members may repeat,
//! none present for the whole scan is missed).

use std::sync::OnceLock;

use hashbrown::HashTable;
use protocol::number::parse_i64;
use rand::Rng;

/// Process-wide hasher seed for set members.
fn hasher() -> &'static ahash::RandomState {
    static H: OnceLock<ahash::RandomState> = OnceLock::new();
    H.get_or_init(ahash::RandomState::new)
}

#[inline]
fn hash(m: &[u8]) -> u64 {
    hasher().hash_one(m)
}

#[derive(Debug, Clone)]
enum Repr {
    Ints(Vec<i64>),
    Table(HashTable<Box<[u8]>>),
}

/// A set value.
#[derive(Debug, Clone)]
pub struct Set {
    repr: Repr,
    /// Bumped whenever table entries may move without the bucket count
    /// changing (hashbrown's in-place rehash); SSCAN cursors carry it.
    generation: u32,
}

impl Default for Set {
    fn default() -> Self {
        Set::new()
    }
}

/// A borrowed member: intset members are integers, hashtable members bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberRef<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl MemberRef<'_> {
    /// Calls `f` with the member's byte form.
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            MemberRef::Int(v) => f(itoa::Buffer::new().format(v).as_bytes()),
            MemberRef::Bytes(b) => f(b),
        }
    }

    pub fn to_owned(self) -> Member {
        match self {
            MemberRef::Int(v) => Member::Int(v),
            MemberRef::Bytes(b) => Member::Bytes(b.into()),
        }
    }
}

/// An owned member (popped or copied out of a set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Member {
    Int(i64),
    Bytes(Box<[u8]>),
}

impl Member {
    pub fn as_ref(&self) -> MemberRef<'_> {
        match self {
            Member::Int(v) => MemberRef::Int(*v),
            Member::Bytes(b) => MemberRef::Bytes(b),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.as_ref().with_bytes(|b| b.to_vec())
    }
}

/// Bits of an SSCAN cursor holding log2(bucket count).
const TAG_BITS: u32 = 6;
/// Bits of an SSCAN cursor holding the table generation (above the tag).
const GEN_BITS: u32 = 16;

impl Set {
    /// An empty set (intset encoded, as Redis' `createIntsetObject`).
    pub fn new() -> Self {
        Set {
            repr: Repr::Ints(Vec::new()),
            generation: 0,
        }
    }

    /// An empty set in the hashtable encoding with room for `capacity`
    /// members (SLOTSRESTORE-ASYNC pre-sizing).
    pub fn new_table(capacity: usize) -> Self {
        Set {
            repr: Repr::Table(HashTable::with_capacity(capacity)),
            generation: 0,
        }
    }

    /// Redis' OBJECT ENCODING name for the current representation.
    pub fn encoding_name(&self) -> &'static str {
        match self.repr {
            Repr::Ints(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    /// True while the set is intset encoded.
    pub fn is_intset(&self) -> bool {
        matches!(self.repr, Repr::Ints(_))
    }

    /// Approximate heap bytes (INFO memory estimates); samples large tables.
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.capacity() * 8,
            Repr::Table(t) => {
                const SAMPLE: usize = 32;
                let (mut n, mut bytes) = (0usize, 0usize);
                for m in t.iter().take(SAMPLE) {
                    // malloc rounds small blocks up to 16 bytes plus a header.
                    bytes += (m.len() + 8).div_ceil(16) * 16;
                    n += 1;
                }
                let members = (bytes * t.len()).checked_div(n).unwrap_or(0);
                t.allocation_size() + members
            }
        }
    }

    /// Number of elements (0 means the key must be deleted).
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.len(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn convert(&mut self, extra: usize) {
        if let Repr::Ints(v) = &self.repr {
            let mut t = HashTable::with_capacity(v.len() + extra);
            let mut buf = itoa::Buffer::new();
            for &x in v {
                let b: Box<[u8]> = buf.format(x).as_bytes().into();
                t.insert_unique(hash(&b), b, |m| hash(m));
            }
            self.repr = Repr::Table(t);
        }
    }

    fn table_insert(t: &mut HashTable<Box<[u8]>>, m: &[u8]) -> bool {
        match t.entry(hash(m), |x| **x == *m, |x| hash(x)) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(m.into());
                true
            }
        }
    }

    /// Adds a member; `max_intset` is `set-max-intset-entries`. Returns true
    /// when it was not present.
    pub fn insert(&mut self, m: &[u8], max_intset: usize) -> bool {
        if let Repr::Ints(v) = &mut self.repr {
            if let Some(x) = parse_i64(m) {
                match v.binary_search(&x) {
                    Ok(_) => return false,
                    Err(pos) => {
                        if v.len() < max_intset {
                            v.insert(pos, x);
                            return true;
                        }
                    }
                }
            }
            self.convert(1);
        }
        match &mut self.repr {
            Repr::Table(t) => {
                if t.len() == t.capacity() {
                    // The insert grows the table or rehashes it in place.
                    self.generation = self.generation.wrapping_add(1);
                }
                Self::table_insert(t, m)
            }
            Repr::Ints(_) => false,
        }
    }

    /// Adds a borrowed member (set operations).
    pub fn insert_ref(&mut self, m: MemberRef<'_>, max_intset: usize) -> bool {
        match (m, &mut self.repr) {
            (MemberRef::Int(x), Repr::Ints(v)) => match v.binary_search(&x) {
                Ok(_) => false,
                Err(pos) if v.len() < max_intset => {
                    v.insert(pos, x);
                    true
                }
                Err(_) => {
                    self.convert(1);
                    m.with_bytes(|b| self.insert(b, max_intset))
                }
            },
            (MemberRef::Bytes(b), _) => self.insert(b, max_intset),
            (MemberRef::Int(_), Repr::Table(_)) => m.with_bytes(|b| self.insert(b, max_intset)),
        }
    }

    /// Removes a member; true if it was present.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(v) => match parse_i64(m).map(|x| v.binary_search(&x)) {
                Some(Ok(pos)) => {
                    v.remove(pos);
                    true
                }
                _ => false,
            },
            Repr::Table(t) => match t.find_entry(hash(m), |x| **x == *m) {
                Ok(occ) => {
                    occ.remove();
                    Self::maybe_shrink(t);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Removes a borrowed member (set operations).
    pub fn remove_ref(&mut self, m: MemberRef<'_>) -> bool {
        match (m, &mut self.repr) {
            (MemberRef::Int(x), Repr::Ints(v)) => match v.binary_search(&x) {
                Ok(pos) => {
                    v.remove(pos);
                    true
                }
                Err(_) => false,
            },
            _ => m.with_bytes(|b| self.remove(b)),
        }
    }

    /// Keeps random probing cheap: shrink when the load falls below 1/4.
    fn maybe_shrink(t: &mut HashTable<Box<[u8]>>) {
        let nb = t.num_buckets();
        if nb > 16 && t.len() * 4 < nb {
            t.shrink_to(t.len(), |x| hash(x));
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(v) => parse_i64(m).is_some_and(|x| v.binary_search(&x).is_ok()),
            Repr::Table(t) => t.find(hash(m), |x| **x == *m).is_some(),
        }
    }

    pub fn contains_ref(&self, m: MemberRef<'_>) -> bool {
        match (m, &self.repr) {
            (MemberRef::Int(x), Repr::Ints(v)) => v.binary_search(&x).is_ok(),
            _ => m.with_bytes(|b| self.contains(b)),
        }
    }

    /// Every member: ascending for an intset, bucket order for a hashtable.
    pub fn iter(&self) -> impl Iterator<Item = MemberRef<'_>> + '_ {
        let (ints, table) = match &self.repr {
            Repr::Ints(v) => (Some(v.iter().map(|&x| MemberRef::Int(x))), None),
            Repr::Table(t) => (None, Some(t.iter().map(|b| MemberRef::Bytes(b)))),
        };
        ints.into_iter()
            .flatten()
            .chain(table.into_iter().flatten())
    }

    /// A uniformly random full bucket index of the hashtable.
    fn random_bucket<R: Rng + ?Sized>(t: &HashTable<Box<[u8]>>, rng: &mut R) -> Option<usize> {
        if t.is_empty() {
            return None;
        }
        let nb = t.num_buckets();
        loop {
            let i = rng.random_range(0..nb);
            if t.get_bucket(i).is_some() {
                return Some(i);
            }
        }
    }

    /// A uniformly random member.
    pub fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<MemberRef<'_>> {
        match &self.repr {
            Repr::Ints(v) => {
                if v.is_empty() {
                    return None;
                }
                v.get(rng.random_range(0..v.len()))
                    .map(|&x| MemberRef::Int(x))
            }
            Repr::Table(t) => {
                let i = Self::random_bucket(t, rng)?;
                t.get_bucket(i).map(|b| MemberRef::Bytes(b))
            }
        }
    }

    /// Removes and returns a uniformly random member.
    pub fn pop_random<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Member> {
        match &mut self.repr {
            Repr::Ints(v) => {
                if v.is_empty() {
                    return None;
                }
                let i = rng.random_range(0..v.len());
                Some(Member::Int(v.remove(i)))
            }
            Repr::Table(t) => {
                let i = Self::random_bucket(t, rng)?;
                let m = t.get_bucket_entry(i).ok()?.remove().0;
                Self::maybe_shrink(t);
                Some(Member::Bytes(m))
            }
        }
    }

    /// `count` distinct random members (`count` < len), in no particular order.
    pub fn random_distinct<R: Rng + ?Sized>(
        &self,
        count: usize,
        rng: &mut R,
    ) -> Vec<MemberRef<'_>> {
        let n = self.len();
        if count >= n {
            return self.iter().collect();
        }
        if count * 3 > n {
            // Many of them: a partial shuffle of every member.
            let mut all: Vec<MemberRef<'_>> = self.iter().collect();
            for i in 0..count {
                let j = rng.random_range(i..n);
                all.swap(i, j);
            }
            all.truncate(count);
            return all;
        }
        // Few of them: draw positions until `count` distinct ones.
        let mut seen: hashbrown::HashSet<usize> = hashbrown::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let (pos, m) = match &self.repr {
                Repr::Ints(v) => {
                    let i = rng.random_range(0..n);
                    (i, v.get(i).map(|&x| MemberRef::Int(x)))
                }
                Repr::Table(t) => match Self::random_bucket(t, rng) {
                    Some(i) => (i, t.get_bucket(i).map(|b| MemberRef::Bytes(b))),
                    None => break,
                },
            };
            if let Some(m) = m
                && seen.insert(pos)
            {
                out.push(m);
            }
        }
        out
    }

    /// One SSCAN step: calls `f` for the members visited and returns the next
    /// cursor (0 when done). An intset is returned whole with cursor 0, as
    /// Redis does; a hashtable visits buckets until `count` members were seen
    /// or `10 * count` buckets were probed.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(MemberRef<'_>)) -> u64 {
        match &self.repr {
            Repr::Ints(v) => {
                for &x in v {
                    f(MemberRef::Int(x));
                }
                0
            }
            Repr::Table(t) => {
                let nb = t.num_buckets();
                let tag = nb.trailing_zeros() as u64
                    | (u64::from(self.generation) & ((1 << GEN_BITS) - 1)) << TAG_BITS;
                let low = (1u64 << (TAG_BITS + GEN_BITS)) - 1;
                let mut i = if cursor & low == tag {
                    (cursor >> (TAG_BITS + GEN_BITS)) as usize
                } else {
                    0
                };
                let (mut found, mut probes) = (0usize, 0usize);
                let max_probes = count.saturating_mul(10);
                while i < nb && found < count && probes < max_probes {
                    if let Some(b) = t.get_bucket(i) {
                        f(MemberRef::Bytes(b));
                        found += 1;
                    }
                    i += 1;
                    probes += 1;
                }
                if i >= nb {
                    0
                } else {
                    ((i as u64) << (TAG_BITS + GEN_BITS)) | tag
                }
            }
        }
    }

    /// Builds a set from members through the ordinary add path (so it gets
    /// the encoding Redis would give it).
    pub fn from_members<'a>(
        members: impl IntoIterator<Item = MemberRef<'a>>,
        max_intset: usize,
    ) -> Set {
        let mut s = Set::new();
        for m in members {
            s.insert_ref(m, max_intset);
        }
        s
    }
}

impl PartialEq for Set {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains_ref(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn members(s: &Set) -> BTreeSet<Vec<u8>> {
        s.iter().map(|m| m.with_bytes(|b| b.to_vec())).collect()
    }

    #[test]
    fn intset_then_hashtable() {
        let mut s = Set::new();
        assert!(s.insert(b"3", 4));
        assert!(s.insert(b"-1", 4));
        assert!(!s.insert(b"3", 4));
        assert!(s.insert(b"10", 4));
        assert_eq!(s.encoding_name(), "intset");
        let v: Vec<_> = s.iter().collect();
        assert_eq!(
            v,
            vec![MemberRef::Int(-1), MemberRef::Int(3), MemberRef::Int(10)]
        );
        assert!(s.insert(b"007", 4));
        assert_eq!(s.encoding_name(), "hashtable");
        assert!(s.contains(b"007") && s.contains(b"3") && !s.contains(b"7"));
        let mut t = Set::new();
        for i in 0..4 {
            t.insert(i.to_string().as_bytes(), 4);
        }
        assert_eq!(t.encoding_name(), "intset");
        t.insert(b"4", 4);
        assert_eq!(t.encoding_name(), "hashtable");
        assert_eq!(t.len(), 5);
        let mut z = Set::new();
        z.insert(b"1", 0);
        assert_eq!(z.encoding_name(), "hashtable");
    }

    /// Insert/delete churn between SSCAN calls on a table full of deletions
    /// never hides a member that stays in the set for the whole scan. (The
    /// generation bump for hashbrown's in-place rehash is the same rule the
    /// keyspace SCAN uses; this test guards the cursor under churn in general.)
    #[test]
    fn sscan_survives_tombstone_churn() {
        // Fill to 3584 members (4096 buckets), then delete down to 1100 (load
        // stays above 1/4, so no shrink) and churn while scanning.
        let mut s = Set::new();
        for i in 0..3584 {
            s.insert(format!("m{i}").as_bytes(), 0);
        }
        for i in 1100..3584 {
            s.remove(format!("m{i}").as_bytes());
        }
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        for round in 0..100_000 {
            cursor = s.scan(cursor, 10, |m| {
                seen.insert(m.with_bytes(|b| b.to_vec()));
            });
            for j in 0..64 {
                let k = format!("x{round}_{j}");
                s.insert(k.as_bytes(), 0);
                s.remove(k.as_bytes());
            }
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(cursor, 0, "scan finished");
        for i in 0..1100 {
            assert!(seen.contains(format!("m{i}").as_bytes()), "m{i} missed");
        }
    }

    #[test]
    fn pops_and_scan() {
        let mut s = Set::new();
        for i in 0..1000 {
            s.insert(format!("m{i}").as_bytes(), 512);
        }
        let mut rng = rand::rng();
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        loop {
            cursor = s.scan(cursor, 7, |m| {
                seen.insert(m.with_bytes(|b| b.to_vec()));
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen, members(&s));
        let picked = s.random_distinct(100, &mut rng);
        let distinct: BTreeSet<_> = picked.iter().copied().collect();
        assert_eq!(distinct.len(), 100);
        let picked = s.random_distinct(600, &mut rng);
        let distinct: BTreeSet<_> = picked.iter().copied().collect();
        assert_eq!(distinct.len(), 600);
        let mut popped = BTreeSet::new();
        while let Some(m) = s.pop_random(&mut rng) {
            assert!(popped.insert(m.to_vec()));
        }
        assert_eq!(popped.len(), 1000);
        assert!(s.is_empty());
    }

    #[test]
    fn random_is_roughly_uniform() {
        let mut s = Set::new();
        for i in 0..8 {
            s.insert(format!("x{i}").as_bytes(), 512);
        }
        let mut rng = rand::rng();
        let mut counts = std::collections::HashMap::new();
        for _ in 0..8000 {
            let m = s.random(&mut rng).map(|m| m.to_owned());
            *counts.entry(m).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 8);
        assert!(counts.values().all(|&c| c > 700 && c < 1300), "{counts:?}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(Vec<u8>),
        Rem(Vec<u8>),
        Pop,
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (-20i64..20).prop_map(|v| v.to_string().into_bytes()),
            Just(b"9223372036854775807".to_vec()),
            Just(b"-9223372036854775808".to_vec()),
            Just(b"007".to_vec()),
            "[a-c]{0,2}".prop_map(|s| s.into_bytes()),
        ]
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec(prop_oneof![
            member().prop_map(Op::Add), member().prop_map(Op::Rem), Just(Op::Pop)], 0..120),
            max in 0usize..12) {
            let mut s = Set::new();
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            let mut rng = rand::rng();
            for op in ops {
                match op {
                    Op::Add(m) => prop_assert_eq!(s.insert(&m, max), model.insert(m)),
                    Op::Rem(m) => prop_assert_eq!(s.remove(&m), model.remove(&m)),
                    Op::Pop => match s.pop_random(&mut rng) {
                        Some(m) => prop_assert!(model.remove(&m.to_vec())),
                        None => prop_assert!(model.is_empty()),
                    },
                }
                prop_assert_eq!(s.len(), model.len());
                let all_ints = model.iter().all(|m| parse_i64(m).is_some());
                if s.is_intset() {
                    prop_assert!(all_ints && model.len() <= max);
                    let v: Vec<i64> = s.iter().map(|m| match m { MemberRef::Int(x) => x, MemberRef::Bytes(_) => i64::MIN }).collect();
                    prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
                }
                prop_assert_eq!(members(&s), model.clone());
                for m in &model {
                    prop_assert!(s.contains(m));
                }
            }
            let rebuilt = Set::from_members(s.iter(), max);
            prop_assert!(rebuilt == s);
        }
    }
}
