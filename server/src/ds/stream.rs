//! The stream value, laid out as Redis 7.0's t_stream.c lays it out: entries
//! in listpack nodes keyed by their master ID, so a node is the very byte
//! string the RDB format (`STREAM_LISTPACKS_2`) stores.
//!
//! A node starts with its master entry, whose fields later entries may
//! share:
//!
//! ```text
//! count | deleted | num-fields | field_1 .. field_N | 0
//! ```
//!
//! then one run of elements per entry (IDs as deltas from the master ID):
//!
//! ```text
//! flags | ms-delta | seq-delta | [num-fields] | [field_i] value_i .. | lp-count
//! ```
//!
//! where flags has `SAMEFIELDS` when the entry's fields are the master's
//! (then only values are stored) and `DELETED` once XDEL or a trim removed
//! it; `lp-count` lets a reader walk backwards. A node is closed when it
//! reaches `stream-node-max-bytes` or `stream-node-max-entries`. Deleted
//! entries stay in their node (counted in its header) until the whole node
//! goes.
//!
//! Consumer groups live beside the nodes (a later part of this module).

use std::collections::BTreeMap;

use protocol::rdb::listpack::{Elem, FIRST, ListpackWriter, elem_at, elem_before, replace_int};

mod pieces;
pub use pieces::CheckedNode;
#[cfg(test)]
pub(crate) use pieces::sample;

/// An entry ID: milliseconds and a sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (None after the last one).
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous ID (None before the first one).
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// `ms-seq`.
    pub fn to_text(self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }

    /// The 128-bit big-endian key of a node (the RDB's node key).
    pub fn to_key(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.ms.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    pub fn from_key(k: &[u8]) -> Option<StreamId> {
        let k: &[u8; 16] = k.try_into().ok()?;
        Some(StreamId::new(
            u64::from_be_bytes(k[..8].try_into().ok()?),
            u64::from_be_bytes(k[8..].try_into().ok()?),
        ))
    }
}

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;
/// The largest node Redis builds (1 GiB): `stream-node-max-bytes` 0 or
/// beyond it means this.
const LISTPACK_MAX_SIZE: usize = 1 << 30;

/// `stream-node-max-bytes` and `stream-node-max-entries` (0: no limit).
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    pub max_bytes: usize,
    pub max_entries: usize,
}

/// An entry decoded from a node.
#[derive(Debug)]
pub struct RawEntry<'a> {
    pub id: StreamId,
    pub deleted: bool,
    /// Offset of the entry's flags element in the node.
    flags_at: usize,
    flags: i64,
    pub fields: Vec<(Elem<'a>, Elem<'a>)>,
}

/// The master entry of a node: counts and shared fields, and where its
/// entries start.
struct Master<'a> {
    count: i64,
    deleted: i64,
    fields: Vec<Elem<'a>>,
    first_entry: usize,
}

fn master(lp: &[u8]) -> Option<Master<'_>> {
    let (count, at) = elem_at(lp, FIRST)?;
    let (deleted, at) = elem_at(lp, at)?;
    let (n, mut at) = elem_at(lp, at)?;
    let n = n.int()?;
    let mut fields = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let (f, next) = elem_at(lp, at)?;
        fields.push(f);
        at = next;
    }
    // The master's zero terminator.
    let (_, first_entry) = elem_at(lp, at)?;
    Some(Master {
        count: count.int()?,
        deleted: deleted.int()?,
        fields,
        first_entry,
    })
}

/// Every entry of a node, deleted ones included, oldest first.
pub fn node_entries(master_id: StreamId, lp: &[u8]) -> Vec<RawEntry<'_>> {
    let Some(m) = master(lp) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity((m.count + m.deleted).max(0) as usize);
    let mut at = m.first_entry;
    while let Some((flags, next)) = elem_at(lp, at) {
        let flags_at = at;
        let flags = flags.int().unwrap_or(0);
        let Some((ms, next)) = elem_at(lp, next) else {
            break;
        };
        let Some((seq, mut next)) = elem_at(lp, next) else {
            break;
        };
        let id = StreamId::new(
            master_id.ms.wrapping_add(ms.int().unwrap_or(0) as u64),
            master_id.seq.wrapping_add(seq.int().unwrap_or(0) as u64),
        );
        let mut fields = Vec::new();
        if flags & FLAG_SAMEFIELDS != 0 {
            for f in &m.fields {
                let Some((v, n)) = elem_at(lp, next) else {
                    return out;
                };
                fields.push((*f, v));
                next = n;
            }
        } else {
            let Some((n, mut after)) = elem_at(lp, next) else {
                return out;
            };
            for _ in 0..n.int().unwrap_or(0) {
                let Some((f, a)) = elem_at(lp, after) else {
                    return out;
                };
                let Some((v, b)) = elem_at(lp, a) else {
                    return out;
                };
                fields.push((f, v));
                after = b;
            }
            next = after;
        }
        // lp-count (a node without one is malformed: the entry is left
        // out, and `check_node` refuses the node).
        let Some((_, after)) = elem_at(lp, next) else {
            break;
        };
        out.push(RawEntry {
            id,
            deleted: flags & FLAG_DELETED != 0,
            flags_at,
            flags,
            fields,
        });
        at = after;
    }
    out
}

/// One entry read in place by [`entry_at`].
struct At {
    id: StreamId,
    flags: i64,
    /// Offset after the entry's lp-count.
    next: usize,
}

/// Decodes the entry whose flags are at `at` in node `lp` (master `m`,
/// master ID `mid`): its ID and flags, its fields into `buf` (cleared
/// first). None at the node's end or on a malformed entry.
fn entry_at<'a>(
    lp: &'a [u8],
    m: &Master<'a>,
    mid: StreamId,
    at: usize,
    buf: &mut Vec<(Elem<'a>, Elem<'a>)>,
) -> Option<At> {
    let (flags, next) = elem_at(lp, at)?;
    let flags = flags.int()?;
    let (ms, next) = elem_at(lp, next)?;
    let (seq, mut next) = elem_at(lp, next)?;
    let id = StreamId::new(
        mid.ms.wrapping_add(ms.int()? as u64),
        mid.seq.wrapping_add(seq.int()? as u64),
    );
    buf.clear();
    if flags & FLAG_SAMEFIELDS != 0 {
        for f in &m.fields {
            let (v, n) = elem_at(lp, next)?;
            buf.push((*f, v));
            next = n;
        }
    } else {
        let (n, mut after) = elem_at(lp, next)?;
        for _ in 0..n.int()? {
            let (f, a) = elem_at(lp, after)?;
            let (v, b) = elem_at(lp, a)?;
            buf.push((f, v));
            after = b;
        }
        next = after;
    }
    // lp-count.
    let (_, next) = elem_at(lp, next)?;
    Some(At { id, flags, next })
}

/// A delivered, not yet acknowledged entry of a group (Redis' NACK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// Unix time of the last delivery, ms.
    pub delivery_time: u64,
    pub delivery_count: u64,
    /// The consumer that has it (every loaded or created NACK has one).
    pub consumer: Vec<u8>,
}

/// A consumer of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Unix time of its last interaction, ms.
    pub seen_time: u64,
    /// The IDs it has pending (each also in the group's PEL).
    pub pel: std::collections::BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub last_id: StreamId,
    /// Entries the group has read in the stream's history, when known
    /// (Redis' `entries_read`, -1 = unknown).
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Vec<u8>, Consumer>,
}

/// Why an entry could not be added.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendError {
    /// Field and value bytes beyond what a node can hold.
    TooLarge,
}

/// A stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Vec<u8>>,
    /// Live entries.
    pub length: u64,
    pub last_id: StreamId,
    /// The first live entry's ID (0-0 when empty).
    pub first_id: StreamId,
    /// The greatest ID ever deleted (XDEL).
    pub max_deleted: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// Consumer groups by name (Redis keeps them in name order, as here).
    pub groups: BTreeMap<Vec<u8>, Group>,
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Nodes (master ID, listpack), oldest first.
    pub fn nodes(&self) -> impl Iterator<Item = (StreamId, &[u8])> {
        self.nodes.iter().map(|(k, v)| (*k, v.as_slice()))
    }

    /// How many entries were added up to `id` (its entries-read counter),
    /// where that can be known; [`INVALID_ENTRIES_READ`] otherwise (Redis'
    /// `streamEstimateDistanceFromFirstEverEntry`).
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        let added = self.entries_added as i64;
        if added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        }
        if id > self.last_id {
            return INVALID_ENTRIES_READ;
        }
        if self.max_deleted == StreamId::MIN || self.max_deleted < self.first_id {
            if id < self.first_id {
                return added - self.length as i64;
            }
            if id == self.first_id {
                return added - self.length as i64 + 1;
            }
        }
        INVALID_ENTRIES_READ
    }

    /// Whether a live entry has ID `id`.
    pub fn contains(&self, id: StreamId) -> bool {
        let mut found = false;
        self.range(id, id, false, |_, _| {
            found = true;
            false
        });
        found
    }

    /// The first entry's ID counting deleted ones still in their node
    /// (Redis' `streamGetEdgeID(s, 1, 0, …)`); the greatest ID when there
    /// is none.
    pub fn first_id_with_tombstones(&self) -> StreamId {
        self.nodes
            .iter()
            .next()
            .and_then(|(mid, lp)| node_entries(*mid, lp).first().map(|e| e.id))
            .unwrap_or(StreamId::MAX)
    }

    /// Whether a deleted entry may lie in `[start, end]` (Redis'
    /// `streamRangeHasTombstones`, which only knows the greatest deleted ID).
    pub fn has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.length == 0 || self.max_deleted == StreamId::MIN {
            return false;
        }
        if self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted && self.max_deleted <= end
    }

    /// Nodes of Redis' radix tree over the node keys (XINFO STREAM's
    /// `radix-tree-nodes`): the compressed trie of the 16-byte master IDs,
    /// one node per branching point, chain and key end.
    pub fn rax_nodes(&self) -> usize {
        fn count(keys: &[[u8; 16]], depth: usize) -> usize {
            if keys.is_empty() || depth == 16 {
                return 1;
            }
            let first = keys[0][depth];
            if keys.iter().all(|k| k[depth] == first) {
                // A chain: as long as every key agrees.
                let (a, b) = (&keys[0], &keys[keys.len() - 1]);
                let mut end = depth;
                while end < 16 && a[end] == b[end] {
                    end += 1;
                }
                return 1 + count(keys, end);
            }
            let mut n = 1;
            let mut i = 0;
            while i < keys.len() {
                let c = keys[i][depth];
                let mut j = i;
                while j < keys.len() && keys[j][depth] == c {
                    j += 1;
                }
                n += count(&keys[i..j], depth + 1);
                i = j;
            }
            n
        }
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|k| k.to_key()).collect();
        count(&keys, 0)
    }

    /// Nodes after the one with master ID `after` (all with None).
    pub fn nodes_after(&self, after: Option<StreamId>) -> impl Iterator<Item = (StreamId, &[u8])> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.nodes
            .range((from, Unbounded))
            .map(|(k, v)| (*k, v.as_slice()))
    }

    /// How many nodes hold the entries.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Heap bytes (for MEMORY USAGE): listpacks and their tree entries,
    /// then each group with its PEL entries and consumers (tree entries
    /// estimated at 48 bytes, a consumer's PEL entry at 24).
    pub fn heap_size(&self) -> usize {
        let nodes: usize = self.nodes.values().map(|v| v.capacity() + 48).sum();
        let groups: usize = self
            .groups
            .iter()
            .map(|(name, g)| {
                let pel: usize = g.pel.values().map(|n| 48 + n.consumer.capacity()).sum();
                let consumers: usize = g
                    .consumers
                    .iter()
                    .map(|(n, c)| 48 + n.capacity() + 24 * c.pel.len())
                    .sum();
                48 + name.capacity() + pel + consumers
            })
            .sum();
        std::mem::size_of::<Stream>() + nodes + groups
    }

    /// Adds an entry with ID `id` (the caller made sure it is above
    /// `last_id`).
    pub fn append(
        &mut self,
        id: StreamId,
        fields: &[(&[u8], &[u8])],
        lim: NodeLimits,
    ) -> Result<(), AppendError> {
        let totelelen: usize = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
        if totelelen > LISTPACK_MAX_SIZE {
            return Err(AppendError::TooLarge);
        }
        let max_bytes = if lim.max_bytes == 0 || lim.max_bytes > LISTPACK_MAX_SIZE {
            LISTPACK_MAX_SIZE
        } else {
            lim.max_bytes
        };
        let mut node = None;
        if let Some(mut last) = self.nodes.last_entry() {
            let lp = last.get();
            let full = lp.len() + totelelen >= max_bytes
                || (lim.max_entries != 0
                    && master(lp)
                        .is_some_and(|m| (m.count + m.deleted) as usize >= lim.max_entries));
            if full {
                last.get_mut().shrink_to_fit();
            } else {
                node = Some(*last.key());
            }
        }
        let (master_id, lp, same) = match node {
            None => {
                let mut w = ListpackWriter::new();
                w.push_int(1);
                w.push_int(0);
                w.push_int(fields.len() as i64);
                for (f, _) in fields {
                    w.push(f);
                }
                w.push_int(0);
                (id, w.finish(), true)
            }
            Some(mid) => {
                let Some(mut lp) = self.nodes.remove(&mid) else {
                    return Ok(());
                };
                let same = master(&lp).is_some_and(|m| {
                    m.fields.len() == fields.len()
                        && m.fields
                            .iter()
                            .zip(fields)
                            .all(|(mf, (f, _))| mf.to_vec() == *f)
                });
                if let Some(m) = master(&lp) {
                    let count = m.count;
                    replace_int(&mut lp, FIRST, count + 1);
                }
                (mid, lp, same)
            }
        };
        let mut w = ListpackWriter::resume(lp);
        let flags = if same { FLAG_SAMEFIELDS } else { 0 };
        w.push_int(flags);
        w.push_int(id.ms.wrapping_sub(master_id.ms) as i64);
        w.push_int(id.seq.wrapping_sub(master_id.seq) as i64);
        if !same {
            w.push_int(fields.len() as i64);
        }
        for (f, v) in fields {
            if !same {
                w.push(f);
            }
            w.push(v);
        }
        let mut lp_count = fields.len() as i64 + 3;
        if !same {
            lp_count += fields.len() as i64 + 1;
        }
        w.push_int(lp_count);
        self.nodes.insert(master_id, w.finish());
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(())
    }

    /// Visits the live entries with IDs in `[start, end]`, oldest first (or
    /// newest first with `rev`), until `f` returns false. Entries are read
    /// in place (fields into one reused buffer); backwards through each
    /// entry's `lp-count`, as Redis' reverse iterator.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        mut f: impl FnMut(StreamId, &[(Elem<'_>, Elem<'_>)]) -> bool,
    ) {
        if start > end {
            return;
        }
        let mut buf: Vec<(Elem<'_>, Elem<'_>)> = Vec::new();
        if !rev {
            // Entries of a node are at or after its master ID: begin with
            // the node that may hold `start`.
            let from = self
                .nodes
                .range(..=start)
                .next_back()
                .map_or(start, |(k, _)| *k);
            for (mid, lp) in self.nodes.range(from..=end) {
                let Some(m) = master(lp) else {
                    continue;
                };
                let mut at = m.first_entry;
                while let Some(e) = entry_at(lp, &m, *mid, at, &mut buf) {
                    at = e.next;
                    if e.flags & FLAG_DELETED != 0 || e.id < start {
                        continue;
                    }
                    if e.id > end || !f(e.id, &buf) {
                        return;
                    }
                }
            }
        } else {
            for (mid, lp) in self.nodes.range(..=end).rev() {
                let Some(m) = master(lp) else {
                    continue;
                };
                // The last element is the last entry's lp-count.
                let mut cur = elem_before(lp, lp.len() - 1);
                while let Some(count_at) = cur {
                    if count_at < m.first_entry {
                        break;
                    }
                    let Some(n) = elem_at(lp, count_at).and_then(|(c, _)| c.int()) else {
                        break;
                    };
                    let mut at = count_at;
                    for _ in 0..n.max(0) {
                        match elem_before(lp, at) {
                            Some(p) => at = p,
                            None => return,
                        }
                    }
                    let Some(e) = entry_at(lp, &m, *mid, at, &mut buf) else {
                        break;
                    };
                    cur = elem_before(lp, at);
                    if e.flags & FLAG_DELETED != 0 || e.id > end {
                        continue;
                    }
                    if e.id < start || !f(e.id, &buf) {
                        return;
                    }
                }
                if *mid < start {
                    return;
                }
            }
        }
    }

    /// The first (or last) live entry's ID.
    pub fn edge_id(&self, first: bool) -> Option<StreamId> {
        let mut found = None;
        self.range(StreamId::MIN, StreamId::MAX, !first, |id, _| {
            found = Some(id);
            false
        });
        found
    }

    /// Marks entry `id` deleted; false when there is no such live entry.
    /// (XDEL's bookkeeping of `max_deleted` and `first_id` is the
    /// caller's.)
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&mid, _)) = self.nodes.range(..=id).next_back() else {
            return false;
        };
        let Some(lp) = self.nodes.get_mut(&mid) else {
            return false;
        };
        let found = node_entries(mid, lp)
            .into_iter()
            .find(|e| e.id == id && !e.deleted)
            .map(|e| (e.flags_at, e.flags));
        let Some((flags_at, flags)) = found else {
            return false;
        };
        let Some(m) = master(lp) else {
            return false;
        };
        let (count, deleted) = (m.count, m.deleted);
        if count == 1 {
            self.nodes.remove(&mid);
        } else {
            // Flags 0..3 are one byte: the offsets before them do not move.
            replace_int(lp, flags_at, flags | FLAG_DELETED);
            if let Some(at) = replace_int(lp, FIRST, count - 1) {
                replace_int(lp, at, deleted + 1);
            }
        }
        self.length -= 1;
        true
    }

    /// XTRIM / XADD's trimming: removes the oldest entries until at most
    /// `maxlen` are left (`Trim::MaxLen`) or every entry below an ID is
    /// gone (`Trim::MinId`). `approx` removes whole nodes only; `limit`
    /// (0: none) caps the entries removed. Returns how many went.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        loop {
            if let Trim::MaxLen(max) = how
                && self.length <= max
            {
                break;
            }
            let Some((&mid, lp)) = self.nodes.iter().next() else {
                break;
            };
            let Some(m) = master(lp) else {
                break;
            };
            let entries = m.count.max(0) as u64;
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(max) => self.length - entries >= max,
                Trim::MinId(min) => {
                    // The node's last entry, deleted or not.
                    let last = node_entries(mid, lp).last().map_or(mid, |e| e.id);
                    last < min
                }
            };
            if remove_node {
                self.nodes.remove(&mid);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            // Mark entries of this node deleted, oldest first.
            let Some(lp) = self.nodes.get_mut(&mid) else {
                break;
            };
            let marks: Vec<(usize, i64, StreamId)> = node_entries(mid, lp)
                .into_iter()
                .map(|e| (e.flags_at, e.flags, e.id))
                .collect();
            let mut from_node = 0u64;
            for (flags_at, flags, id) in marks {
                let stop = match how {
                    Trim::MaxLen(max) => self.length <= max,
                    Trim::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                if flags & FLAG_DELETED == 0 {
                    replace_int(lp, flags_at, flags | FLAG_DELETED);
                    from_node += 1;
                    self.length -= 1;
                }
            }
            deleted += from_node;
            if let Some(m) = master(lp) {
                let (count, del) = (m.count, m.deleted);
                if let Some(at) = replace_int(lp, FIRST, count - from_node as i64) {
                    replace_int(lp, at, del + from_node as i64);
                }
            }
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge_id(true).unwrap_or_default();
        }
        deleted
    }
}

// ---------------------------------------------------------------------------
// RDB (Redis 7.0's `RDB_TYPE_STREAM_LISTPACKS_2` body)
// ---------------------------------------------------------------------------

/// A group's entries-read counter when it is not known (Redis'
/// `SCG_INVALID_ENTRIES_READ`).
pub const INVALID_ENTRIES_READ: i64 = -1;

/// The RDB type byte of a stream written by Redis 7.0.
pub const RDB_TYPE_STREAM_LISTPACKS_2: u8 = 19;

impl Stream {
    /// The body of the stream's RDB value (after the type byte), as Redis
    /// 7.0 writes it: nodes (key, listpack), counters, then each group with
    /// its PEL and consumers. Strings LZF-compressed with `lzf`.
    pub fn write_rdb(
        &self,
        out: &mut Vec<u8>,
        mut lzf: Option<&mut protocol::rdb::lzf::Compressor>,
    ) {
        use protocol::rdb::file::write_string;
        use protocol::rdb::write_len;
        write_len(out, self.nodes.len() as u64);
        for (k, lp) in &self.nodes {
            write_string(out, &k.to_key(), lzf.as_deref_mut());
            write_string(out, lp, lzf.as_deref_mut());
        }
        self.write_rdb_tail(out, lzf);
    }

    /// The part of [`write_rdb`](Self::write_rdb)'s body after the nodes:
    /// counters, then each group with its PEL and consumers.
    pub fn write_rdb_tail(
        &self,
        out: &mut Vec<u8>,
        mut lzf: Option<&mut protocol::rdb::lzf::Compressor>,
    ) {
        use protocol::rdb::file::write_string;
        use protocol::rdb::write_len;
        write_len(out, self.length);
        for id in [self.last_id, self.first_id, self.max_deleted] {
            write_len(out, id.ms);
            write_len(out, id.seq);
        }
        write_len(out, self.entries_added);
        write_len(out, self.groups.len() as u64);
        for (name, g) in &self.groups {
            write_string(out, name, lzf.as_deref_mut());
            write_len(out, g.last_id.ms);
            write_len(out, g.last_id.seq);
            write_len(out, g.entries_read as u64);
            write_len(out, g.pel.len() as u64);
            for (id, n) in &g.pel {
                out.extend_from_slice(&id.to_key());
                out.extend_from_slice(&n.delivery_time.to_le_bytes());
                write_len(out, n.delivery_count);
            }
            write_len(out, g.consumers.len() as u64);
            for (cname, c) in &g.consumers {
                write_string(out, cname, lzf.as_deref_mut());
                out.extend_from_slice(&c.seen_time.to_le_bytes());
                write_len(out, c.pel.len() as u64);
                for id in &c.pel {
                    out.extend_from_slice(&id.to_key());
                }
            }
        }
    }

    /// Reads a stream RDB body (after the type byte; type 19's layout, or
    /// Redis 5–6's type 15 without `v2`: no first / max deleted ID, entries
    /// added or groups' entries read, which are derived as Redis 7.0 does)
    /// from the start of `b`: the stream and the bytes it took. None when the
    /// body is malformed: a node that is not a well-formed stream listpack,
    /// counts that disagree with the nodes, a consumer's pending entry
    /// missing from its group's PEL, or a PEL entry without a consumer.
    pub fn read_rdb(b: &[u8], v2: bool) -> Option<(Stream, usize)> {
        let mut r = Rd { b, at: 0 };
        let mut s = Stream::new();
        let nodes = r.len()?;
        let mut live = 0u64;
        let mut prev: Option<StreamId> = None;
        for _ in 0..nodes {
            let key = r.string()?;
            let mid = StreamId::from_key(&key)?;
            let lp = r.string()?;
            let (n, last) = check_node(mid, &lp)?;
            if prev.is_some_and(|p| p >= mid) || n.1 == 0 && n.0 == 0 {
                return None;
            }
            prev = Some(last);
            live += n.0;
            s.nodes.insert(mid, lp);
        }
        s.length = r.len()?;
        if s.length != live {
            return None;
        }
        s.last_id = StreamId::new(r.len()?, r.len()?);
        if v2 {
            s.first_id = StreamId::new(r.len()?, r.len()?);
            s.max_deleted = StreamId::new(r.len()?, r.len()?);
            s.entries_added = r.len()?;
        } else {
            s.first_id = s.edge_id(true).unwrap_or_default();
            s.entries_added = s.length;
        }
        let groups = r.len()?;
        for _ in 0..groups {
            let name = r.string()?;
            let mut g = Group {
                last_id: StreamId::new(r.len()?, r.len()?),
                entries_read: if v2 { r.len()? as i64 } else { 0 },
                ..Group::default()
            };
            if !v2 {
                g.entries_read = s.estimate_distance(g.last_id);
            }
            let pel = r.len()?;
            for _ in 0..pel {
                let id = StreamId::from_key(r.raw(16)?)?;
                let delivery_time = u64::from_le_bytes(r.raw(8)?.try_into().ok()?);
                let delivery_count = r.len()?;
                let nack = Nack {
                    delivery_time,
                    delivery_count,
                    consumer: Vec::new(),
                };
                if g.pel.insert(id, nack).is_some() {
                    return None;
                }
            }
            let consumers = r.len()?;
            for _ in 0..consumers {
                let cname = r.string()?;
                let seen_time = u64::from_le_bytes(r.raw(8)?.try_into().ok()?);
                let mut c = Consumer {
                    seen_time,
                    ..Consumer::default()
                };
                let n = r.len()?;
                for _ in 0..n {
                    let id = StreamId::from_key(r.raw(16)?)?;
                    let nack = g.pel.get_mut(&id)?;
                    if !nack.consumer.is_empty() {
                        return None;
                    }
                    nack.consumer = cname.clone();
                    c.pel.insert(id);
                }
                if g.consumers.insert(cname, c).is_some() {
                    return None;
                }
            }
            if g.pel.values().any(|n| n.consumer.is_empty()) {
                return None;
            }
            if s.groups.insert(name, g).is_some() {
                return None;
            }
        }
        Some((s, r.at))
    }
}

/// A well-formed stream node: its (live, deleted) counts, as walked, and
/// its last entry's ID.
fn check_node(mid: StreamId, lp: &[u8]) -> Option<((u64, u64), StreamId)> {
    if lp.len() < 7
        || u32::from_le_bytes(lp[..4].try_into().ok()?) as usize != lp.len()
        || lp.last() != Some(&0xFF)
    {
        return None;
    }
    let m = master(lp)?;
    let entries = node_entries(mid, lp);
    let deleted = entries.iter().filter(|e| e.deleted).count() as i64;
    let live = entries.len() as i64 - deleted;
    if live != m.count || deleted != m.deleted || entries.is_empty() {
        return None;
    }
    // Entries in ascending order, none before the master ID.
    if entries.windows(2).any(|w| w[0].id >= w[1].id) || entries[0].id < mid {
        return None;
    }
    // The walk must end exactly at the terminator.
    let mut at = FIRST;
    let mut elems = 0usize;
    while let Some((_, next)) = elem_at(lp, at) {
        at = next;
        elems += 1;
    }
    let expected: usize = 4
        + m.fields.len()
        + entries
            .iter()
            .map(|e| {
                if e.flags & FLAG_SAMEFIELDS != 0 {
                    4 + e.fields.len()
                } else {
                    5 + 2 * e.fields.len()
                }
            })
            .sum::<usize>();
    if at != lp.len() - 1 || elems != expected {
        return None;
    }
    Some(((live as u64, deleted as u64), entries.last()?.id))
}

/// A cursor over an RDB body.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl Rd<'_> {
    fn raw(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    /// An RDB length (6-bit, 14-bit, 32-bit or 64-bit big-endian).
    fn len(&mut self) -> Option<u64> {
        let first = *self.raw(1)?.first()?;
        Some(match first >> 6 {
            0 => u64::from(first & 0x3f),
            1 => (u64::from(first & 0x3f) << 8) | u64::from(*self.raw(1)?.first()?),
            2 if first == 0x80 => u64::from(u32::from_be_bytes(self.raw(4)?.try_into().ok()?)),
            2 if first == 0x81 => u64::from_be_bytes(self.raw(8)?.try_into().ok()?),
            _ => return None,
        })
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let (s, n) = protocol::rdb::file::read_string(self.b.get(self.at..)?)?;
        self.at += n;
        Some(s)
    }
}

/// What a trim keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Model = Vec<(StreamId, Vec<(Vec<u8>, Vec<u8>)>)>;

    fn collect(s: &Stream, start: StreamId, end: StreamId, rev: bool) -> Model {
        let mut v = Vec::new();
        s.range(start, end, rev, |id, f| {
            v.push((
                id,
                f.iter().map(|(a, b)| (a.to_vec(), b.to_vec())).collect(),
            ));
            true
        });
        v
    }

    const LIM: NodeLimits = NodeLimits {
        max_bytes: 4096,
        max_entries: 100,
    };

    #[test]
    fn append_range_delete() {
        let mut s = Stream::new();
        s.append(StreamId::new(1, 0), &[(b"a", b"1"), (b"b", b"2")], LIM)
            .unwrap();
        s.append(StreamId::new(1, 1), &[(b"a", b"3"), (b"b", b"4")], LIM)
            .unwrap();
        s.append(StreamId::new(2, 0), &[(b"c", b"5")], LIM).unwrap();
        assert_eq!(s.length, 3);
        let all = collect(&s, StreamId::MIN, StreamId::MAX, false);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].1, vec![(b"c".to_vec(), b"5".to_vec())]);
        assert_eq!(all[1].1[0], (b"a".to_vec(), b"3".to_vec()));
        assert!(s.delete(StreamId::new(1, 1)));
        assert!(!s.delete(StreamId::new(1, 1)));
        let ids: Vec<StreamId> = collect(&s, StreamId::MIN, StreamId::MAX, true)
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(ids, vec![StreamId::new(2, 0), StreamId::new(1, 0)]);
        assert_eq!(s.length, 2);
    }

    #[test]
    fn nodes_are_redis_listpacks() {
        // redis-server 7.0.15: XADD s 1-1 a 1 b 2; XADD s 1-2 a 3 b 4;
        // XADD s 2-0 c hello; XADD s 3-5 a x b -200; XDEL s 1-2; then the
        // node's listpack as DUMP s writes it (rdbcompression no).
        let want = "500000001f00030101010201816102816202000102010001000101010201050103\
                    010001010103010401050100010101dfff0201018163028568656c6c6f0606010201\
                    02010401817802df38020501ff";
        let mut s = Stream::new();
        s.append(StreamId::new(1, 1), &[(b"a", b"1"), (b"b", b"2")], LIM)
            .unwrap();
        s.append(StreamId::new(1, 2), &[(b"a", b"3"), (b"b", b"4")], LIM)
            .unwrap();
        s.append(StreamId::new(2, 0), &[(b"c", b"hello")], LIM)
            .unwrap();
        s.append(StreamId::new(3, 5), &[(b"a", b"x"), (b"b", b"-200")], LIM)
            .unwrap();
        assert!(s.delete(StreamId::new(1, 2)));
        let nodes: Vec<(StreamId, &[u8])> = s.nodes().collect();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].0, StreamId::new(1, 1));
        let hex: String = nodes[0].1.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want.split_whitespace().collect::<String>());
    }

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rdb_body_matches_redis_and_reads_back() {
        // redis-server 7.0.15 (rdbcompression no): XADD s2 1-1 a 1; 1-2 a 2;
        // 1-3 b 3; XGROUP CREATE s2 g1 0; XGROUP CREATE s2 123 $;
        // XREADGROUP GROUP g1 alice COUNT 2 ...; ... bob COUNT 1 ...;
        // XGROUP CREATECONSUMER s2 g1 carol; XDEL s2 1-2; DUMP s2 (the
        // type byte, then this body, then version and CRC).
        let body = unhex(
            "0110000000000000000100000000000000013535000000160002010101010181610200010201000\
             100010101040103010001010102010401000100010201010181620203010601ff02010301010102\
             0302c07b010381ffffffffffffffff0000026731010303030000000000000001000000000000000\
             176424c51a2010000010000000000000001000000000000000276424c51a20100000100000000000\
             00001000000000000000376424c51a2010000010305616c69636576424c51a20100000200000000\
             0000000100000000000000010000000000000001000000000000000203626f6276424c51a201000\
             00100000000000000010000000000000003056361726f6c76424c51a201000000"
                .split_whitespace()
                .collect::<String>()
                .as_str(),
        );
        let (s, n) = Stream::read_rdb(&body, true).expect("redis' body reads");
        assert_eq!(n, body.len());
        assert_eq!(s.length, 2);
        assert_eq!(s.last_id, StreamId::new(1, 3));
        assert_eq!(s.first_id, StreamId::new(1, 1));
        assert_eq!(s.max_deleted, StreamId::new(1, 2));
        assert_eq!(s.entries_added, 3);
        let names: Vec<&[u8]> = s.groups.keys().map(|k| k.as_slice()).collect();
        assert_eq!(names, vec![&b"123"[..], b"g1"]);
        assert_eq!(s.groups[&b"123"[..]].entries_read, -1);
        let g1 = &s.groups[&b"g1"[..]];
        assert_eq!(g1.entries_read, 3);
        assert_eq!(g1.pel.len(), 3);
        assert_eq!(g1.pel[&StreamId::new(1, 3)].consumer, b"bob");
        assert_eq!(g1.pel[&StreamId::new(1, 1)].delivery_time, 1796660281974);
        assert_eq!(g1.consumers.len(), 3);
        assert!(g1.consumers[&b"carol"[..]].pel.is_empty());
        // Written back byte for byte.
        let mut out = Vec::new();
        s.write_rdb(&mut out, None);
        assert_eq!(out, body);
        // A consumer pending entry missing from the group's PEL is refused,
        // and so is a truncated body.
        assert!(Stream::read_rdb(&body[..body.len() - 1], true).is_none());
        let bob = body.windows(3).position(|w| w == b"bob").unwrap();
        // name, seen time (8), PEL count (1), then the ID's last byte.
        let mut bad = body.clone();
        bad[bob + 3 + 8 + 1 + 15] = 9;
        assert!(Stream::read_rdb(&bad, true).is_none());
        bad[bob + 3 + 8 + 1 + 15] = 3;
        assert!(Stream::read_rdb(&bad, true).is_some());
        // A node whose header count disagrees with its entries.
        let mut bad = body.clone();
        let lp = 1 + 1 + 16 + 1;
        assert_eq!(bad[lp + 6], 0x02);
        bad[lp + 6] = 0x03;
        assert!(Stream::read_rdb(&bad, true).is_none());
    }

    #[test]
    fn nodes_close_at_their_limits() {
        let mut s = Stream::new();
        let lim = NodeLimits {
            max_bytes: 0,
            max_entries: 3,
        };
        for i in 0..10 {
            s.append(StreamId::new(i, 0), &[(b"f", b"v")], lim).unwrap();
        }
        assert_eq!(s.nodes().count(), 4);
        let lim = NodeLimits {
            max_bytes: 100,
            max_entries: 0,
        };
        let mut t = Stream::new();
        for i in 0..10 {
            t.append(StreamId::new(i, 0), &[(b"field", &[b'x'; 30])], lim)
                .unwrap();
        }
        assert!(t.nodes().all(|(_, lp)| lp.len() < 200));
        assert_eq!(t.length, 10);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, u8, bool),
        Del(usize),
        MaxLen(u64, bool, u64),
        MinId(usize, bool, u64),
        Range(usize, usize, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..3, 0u8..4, any::<bool>()).prop_map(|(a, b, c)| Op::Add(a, b, c)),
            2 => (0usize..200).prop_map(Op::Del),
            1 => (0u64..60, any::<bool>(), 0u64..30).prop_map(|(a, b, c)| Op::MaxLen(a, b, c)),
            1 => (0usize..200, any::<bool>(), 0u64..30).prop_map(|(a, b, c)| Op::MinId(a, b, c)),
            2 => (0usize..200, 0usize..200, any::<bool>()).prop_map(|(a, b, c)| Op::Range(a, b, c)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_a_simple_model(ops in proptest::collection::vec(op(), 1..200),
                                  max_entries in 1usize..8, max_bytes in prop_oneof![Just(0usize), 60usize..400]) {
            let lim = NodeLimits { max_bytes, max_entries };
            let mut s = Stream::new();
            let mut model: Model = Vec::new();
            let mut next = StreamId::new(1, 0);
            let mut all_ids: Vec<StreamId> = Vec::new();
            for o in ops {
                match o {
                    Op::Add(shape, nf, bump) => {
                        let id = if bump { StreamId::new(next.ms + 1, 0) } else { next };
                        next = id.next().unwrap();
                        let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..=nf)
                            .map(|i| (format!("f{}", i + shape).into_bytes(), format!("{}", id.ms * 7 + i as u64).into_bytes()))
                            .collect();
                        let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
                        s.append(id, &refs, lim).unwrap();
                        model.push((id, fields));
                        all_ids.push(id);
                    }
                    Op::Del(i) => {
                        if all_ids.is_empty() { continue; }
                        let id = all_ids[i % all_ids.len()];
                        let live = model.iter().position(|e| e.0 == id);
                        prop_assert_eq!(s.delete(id), live.is_some());
                        if let Some(p) = live { model.remove(p); }
                    }
                    Op::MaxLen(..) | Op::MinId(..) => {
                        let (how, approx, limit) = match o {
                            Op::MaxLen(max, a, l) => (Trim::MaxLen(max), a, l),
                            Op::MinId(i, a, l) => {
                                if all_ids.is_empty() { continue; }
                                (Trim::MinId(all_ids[i % all_ids.len()]), a, l)
                            }
                            _ => unreachable!(),
                        };
                        // What an exact, unlimited trim removes.
                        let exact = match how {
                            Trim::MaxLen(max) => (model.len() as u64).saturating_sub(max),
                            Trim::MinId(min) => model.iter().filter(|e| e.0 < min).count() as u64,
                        };
                        let n = s.trim(how, approx, limit);
                        prop_assert!(n <= exact);
                        if !approx && limit == 0 { prop_assert_eq!(n, exact); }
                        model.drain(..n as usize);
                        if n > 0 {
                            prop_assert_eq!(s.first_id, model.first().map_or(StreamId::MIN, |e| e.0));
                        }
                    }
                    Op::Range(a, b, rev) => {
                        if all_ids.is_empty() { continue; }
                        let (a, b) = (all_ids[a % all_ids.len()], all_ids[b % all_ids.len()]);
                        let mut want: Model = model.iter().filter(|e| e.0 >= a && e.0 <= b).cloned().collect();
                        if rev { want.reverse(); }
                        prop_assert_eq!(collect(&s, a, b, rev), want);
                    }
                }
                prop_assert_eq!(s.length, model.len() as u64);
                prop_assert_eq!(collect(&s, StreamId::MIN, StreamId::MAX, false), model.clone());
                prop_assert_eq!(s.edge_id(true), model.first().map(|e| e.0));
                prop_assert_eq!(s.edge_id(false), model.last().map(|e| e.0));
            }
            // The RDB body reads back as the same stream.
            let mut out = Vec::new();
            s.write_rdb(&mut out, None);
            let (t, n) = Stream::read_rdb(&out, true).expect("own body reads back");
            prop_assert_eq!(n, out.len());
            prop_assert_eq!(t, s);
        }
    }
}
