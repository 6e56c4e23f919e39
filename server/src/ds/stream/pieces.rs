//! Building a stream a piece at a time, as the async migration's `stream`
//! chunks deliver it (`codec::chunk`, `cmd/slotsasync.rs`): nodes in master
//! ID order, group headers, consumers, pending entries, then the counters.
//! Every piece is checked as [`Stream::read_rdb`] checks the RDB body (the
//! same node check, the same order rule between nodes, one group / consumer
//! / PEL entry per name or ID, every pending entry owned by a consumer of
//! its group, the length equal to the live entries), and the stream is
//! well-formed after each piece, so a half-built copy is a valid stream.

use super::{Consumer, Group, Nack, Stream, StreamId, check_node, master, node_entries};

/// A node that passed `read_rdb`'s node check on its own; [`Stream::push_nodes`]
/// then checks where it goes.
#[derive(Debug)]
pub struct CheckedNode {
    mid: StreamId,
    lp: Vec<u8>,
    live: u64,
    deleted: u64,
    /// Its last entry's ID (deleted or not).
    last: StreamId,
}

impl CheckedNode {
    /// Its master ID.
    pub fn mid(&self) -> StreamId {
        self.mid
    }

    /// Its listpack.
    pub fn listpack(&self) -> &[u8] {
        &self.lp
    }

    /// Checks node `lp` with master ID `mid` as `read_rdb` does; None when
    /// it is not a well-formed stream listpack.
    pub fn new(mid: StreamId, lp: Vec<u8>) -> Option<CheckedNode> {
        let ((live, deleted), last) = check_node(mid, &lp)?;
        if live == 0 && deleted == 0 {
            return None;
        }
        Some(CheckedNode {
            mid,
            lp,
            live,
            deleted,
            last,
        })
    }
}

impl Stream {
    /// The ID of the last entry (deleted or not) of the last node.
    fn last_node_entry(&self) -> Option<StreamId> {
        let (mid, lp) = self.nodes.last_key_value()?;
        node_entries(*mid, lp).last().map(|e| e.id)
    }

    /// Appends checked nodes after the stream's own, all or none: each must
    /// start above the last entry of the node before it (`read_rdb`'s order
    /// rule). The counters follow: the length counts the live entries, the
    /// last ID and entries-added cover every entry, the first ID is the
    /// first live entry. False (nothing added) when the order is wrong.
    pub fn push_nodes(&mut self, nodes: Vec<CheckedNode>) -> bool {
        let mut prev = self.last_node_entry();
        for n in &nodes {
            if prev.is_some_and(|p| p >= n.mid) {
                return false;
            }
            prev = Some(n.last);
        }
        for n in nodes {
            if self.length == 0 && n.live > 0 {
                self.first_id = node_entries(n.mid, &n.lp)
                    .iter()
                    .find(|e| !e.deleted)
                    .map_or(n.mid, |e| e.id);
            }
            self.length += n.live;
            self.entries_added = self.entries_added.saturating_add(n.live + n.deleted);
            self.last_id = self.last_id.max(n.last);
            self.nodes.insert(n.mid, n.lp);
        }
        true
    }

    /// A new consumer group without consumers; false if `name` exists.
    pub fn add_group(&mut self, name: &[u8], last_id: StreamId, entries_read: i64) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        let g = Group {
            last_id,
            entries_read,
            ..Group::default()
        };
        self.groups.insert(name.to_vec(), g);
        true
    }

    /// A new consumer without pending entries in group `group`; false if
    /// the group is missing or already has it.
    pub fn add_consumer(&mut self, group: &[u8], name: &[u8], seen_time: u64) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        if g.consumers.contains_key(name) {
            return false;
        }
        let c = Consumer {
            seen_time,
            ..Consumer::default()
        };
        g.consumers.insert(name.to_vec(), c);
        true
    }

    /// A pending entry of group `group` owned by its consumer `consumer`
    /// (in both PELs); false if the group or the consumer is missing or
    /// the group already has `id` pending.
    pub fn add_pending(
        &mut self,
        group: &[u8],
        id: StreamId,
        delivery_time: u64,
        delivery_count: u64,
        consumer: &[u8],
    ) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let Some(c) = g.consumers.get_mut(consumer) else {
            return false;
        };
        if g.pel.contains_key(&id) {
            return false;
        }
        c.pel.insert(id);
        let nack = Nack {
            delivery_time,
            delivery_count,
            consumer: consumer.to_vec(),
        };
        g.pel.insert(id, nack);
        true
    }

    /// Whether `id` is a deleted entry its node still holds.
    pub fn holds_deleted(&self, id: StreamId) -> bool {
        let Some((mid, lp)) = self.nodes.range(..=id).next_back() else {
            return false;
        };
        node_entries(*mid, lp)
            .iter()
            .any(|e| e.id == id && e.deleted)
    }

    /// Hands the deleted entries the nodes still hold to `f`, in ID order,
    /// starting in node `at.0` (the first with None) after entry `at.1`; a
    /// node without any costs a header read. Stops when `f` refuses one
    /// (it is not taken) or after `max_nodes` nodes. Returns where to go on
    /// (a node and the last entry taken in it), None at the end.
    pub fn walk_deleted(
        &self,
        at: (Option<StreamId>, Option<StreamId>),
        max_nodes: usize,
        mut f: impl FnMut(StreamId) -> bool,
    ) -> Option<(Option<StreamId>, Option<StreamId>)> {
        use std::ops::Bound::{Included, Unbounded};
        let (node, after) = at;
        let from = node.map_or(Unbounded, Included);
        for (i, (mid, lp)) in self.nodes.range((from, Unbounded)).enumerate() {
            if i >= max_nodes.max(1) {
                return Some((Some(*mid), None));
            }
            let after = if Some(*mid) == node { after } else { None };
            if master(lp).is_none_or(|m| m.deleted == 0) {
                continue;
            }
            let mut last = after;
            for e in node_entries(*mid, lp) {
                if !e.deleted || after.is_some_and(|a| e.id <= a) {
                    continue;
                }
                if !f(e.id) {
                    return Some((Some(*mid), last));
                }
                last = Some(e.id);
            }
        }
        None
    }

    /// The counters as the source had them (the RDB body's after the
    /// nodes); false (nothing set) when `length` is not the number of live
    /// entries in the nodes, which `read_rdb` refuses too.
    pub fn set_counters(
        &mut self,
        length: u64,
        last_id: StreamId,
        first_id: StreamId,
        max_deleted: StreamId,
        entries_added: u64,
    ) -> bool {
        if length != self.length {
            return false;
        }
        self.last_id = last_id;
        self.first_id = first_id;
        self.max_deleted = max_deleted;
        self.entries_added = entries_added;
        true
    }
}

#[cfg(test)]
/// A stream of `n` entries in nodes of 4, every third one deleted, with
/// two groups (pending entries owned by two consumers, one consumer
/// without any).
pub(crate) fn sample(n: u64) -> Stream {
    let mut s = Stream::new();
    for i in 1..=n {
        let v = i.to_string();
        s.append(
            StreamId::new(i, i % 3),
            &[(b"f", v.as_bytes())],
            super::NodeLimits {
                max_bytes: 0,
                max_entries: 4,
            },
        )
        .unwrap();
    }
    for i in (1..=n).step_by(3) {
        s.delete(StreamId::new(i, i % 3));
    }
    s.max_deleted = StreamId::new(n, 0);
    assert!(s.add_group(b"g1", StreamId::new(n / 2, 0), 7));
    assert!(s.add_group(b"g2", StreamId::MIN, -1));
    for c in [&b"alice"[..], b"bob", b"carol"] {
        assert!(s.add_consumer(b"g1", c, 1000));
    }
    for i in 1..=n / 2 {
        let who: &[u8] = if i % 2 == 0 { b"alice" } else { b"bob" };
        assert!(s.add_pending(b"g1", StreamId::new(i, i % 3), 5000 + i, i, who));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces rebuild the stream exactly, node by node; wrong pieces are
    /// refused and change nothing.
    #[test]
    fn pieces_rebuild_the_stream() {
        let src = sample(50);
        let mut out = Vec::new();
        src.write_rdb(&mut out, None);
        let (read, _) = Stream::read_rdb(&out, true).unwrap();
        assert_eq!(read, src);
        let mut t = Stream::new();
        for (mid, lp) in src.nodes() {
            let node = CheckedNode::new(mid, lp.to_vec()).unwrap();
            assert!(t.push_nodes(vec![node]));
            // Well-formed at every step: the counters follow the nodes.
            let mut body = Vec::new();
            t.write_rdb(&mut body, None);
            assert_eq!(Stream::read_rdb(&body, true).unwrap().0, t);
            assert_eq!(t.first_id, t.edge_id(true).unwrap_or_default());
        }
        // A node again, or one that starts inside the last one, is refused.
        let (mid, lp) = src.nodes().last().unwrap();
        let again = CheckedNode::new(mid, lp.to_vec()).unwrap();
        let before = t.clone();
        assert!(!t.push_nodes(vec![again]));
        assert_eq!(t, before);
        for (name, g) in &src.groups {
            assert!(t.add_group(name, g.last_id, g.entries_read));
            assert!(!t.add_group(name, g.last_id, g.entries_read));
            for (c, cons) in &g.consumers {
                assert!(t.add_consumer(name, c, cons.seen_time));
                assert!(!t.add_consumer(name, c, 0));
            }
            for (id, nack) in &g.pel {
                assert!(t.add_pending(
                    name,
                    *id,
                    nack.delivery_time,
                    nack.delivery_count,
                    &nack.consumer
                ));
                assert!(!t.add_pending(name, *id, 0, 0, &nack.consumer));
            }
        }
        assert!(!t.add_pending(b"g1", StreamId::new(999, 0), 0, 0, b"nobody"));
        assert!(!t.add_pending(b"nogroup", StreamId::new(999, 0), 0, 0, b"bob"));
        assert!(!t.add_consumer(b"nogroup", b"x", 0));
        assert!(!t.set_counters(
            src.length + 1,
            src.last_id,
            src.first_id,
            src.max_deleted,
            0
        ));
        assert!(t.set_counters(
            src.length,
            src.last_id,
            src.first_id,
            src.max_deleted,
            src.entries_added
        ));
        assert_eq!(t, src);
        // Malformed nodes fail the node check.
        assert!(CheckedNode::new(mid, lp[..lp.len() - 1].to_vec()).is_none());
        assert!(CheckedNode::new(mid, Vec::new()).is_none());
    }

    /// MEMORY USAGE's estimate counts groups, PELs and consumers.
    #[test]
    fn heap_size_counts_groups() {
        let s = sample(200);
        let mut bare = s.clone();
        bare.groups.clear();
        let lp: usize = s.nodes().map(|(_, lp)| lp.len()).sum();
        assert!(bare.heap_size() >= lp);
        let pel = s.groups[&b"g1"[..]].pel.len();
        assert_eq!(pel, 100);
        assert!(s.heap_size() >= bare.heap_size() + pel * 2 * 16);
    }

    /// The deleted entries come out once each, in order, however the walk
    /// is cut; `holds_deleted` knows them.
    #[test]
    fn deleted_entries_walk() {
        let s = sample(100);
        let want: Vec<StreamId> = s
            .nodes()
            .flat_map(|(m, lp)| {
                node_entries(m, lp)
                    .into_iter()
                    .filter(|e| e.deleted)
                    .map(|e| e.id)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(want.len(), 34);
        assert!(want.iter().all(|&id| s.holds_deleted(id)));
        assert!(!s.holds_deleted(StreamId::new(2, 2)), "live");
        assert!(!s.holds_deleted(StreamId::new(2, 0)), "absent");
        for (per_call, max_nodes) in [(1, 100), (3, 2), (1000, 1), (1000, 1000)] {
            let mut got = Vec::new();
            let mut at = (None, None);
            let mut calls = 0;
            loop {
                let mut n = 0;
                let next = s.walk_deleted(at, max_nodes, |id| {
                    if n == per_call {
                        return false;
                    }
                    n += 1;
                    got.push(id);
                    true
                });
                calls += 1;
                assert!(calls < 10_000);
                match next {
                    Some(p) => at = p,
                    None => break,
                }
            }
            assert_eq!(got, want, "{per_call} per call, {max_nodes} nodes");
        }
    }
}
