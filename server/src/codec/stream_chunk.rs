//! The async migration's chunk form of a stream (ours: codis-server 3.2 has
//! no streams), both ends: the source's emitter ([`Emitter`], resumable,
//! each message bounded as the other chunk forms are), the target's parser
//! and applier ([`parse`], [`Piece::apply`]) and the commands a piece
//! propagates to replicas and the AOF ([`Piece::commands`]).
//!
//! A chunked stream travels as `SLOTSRESTORE-ASYNC stream key ttl hint
//! <part> ...` messages, in this order:
//!
//! ```text
//! nodes      mid lp [mid lp ...]                      every node, master ID order
//! groups     name last-id entries-read [...]          every group header
//! consumers  group  name seen-time [...]              per group: its consumers,
//! pel        group  id delivery-time count consumer [...]   then its PEL
//! meta       length last-id first-id max-deleted-id entries-added
//! deleted    id [id ...]                              deleted entries the nodes hold
//! ```
//!
//! IDs are the 16 big-endian bytes the RDB uses for node keys, numbers are
//! decimal. A message holds whole records only: at most `maxbulks` record
//! bulks (one record at least) and it stops once they reach the send
//! window's bytes, as a list chunk does; a node is never split (its size is
//! bounded by `stream-node-max-bytes`). `deleted` changes nothing on the
//! target (the nodes carry their deleted entries): it names them for the
//! target's replicas and AOF, which get every entry as an XADD, the PELs as
//! XCLAIM (which takes only entries in the stream), and only then the
//! deletions (XDEL, or XTRIM when the stream never had an XDEL: its
//! max-deleted ID 0-0 could not be set back after an XDEL). `probe` (no records) asks a target
//! whether it takes streams: ours answers `1` and changes nothing,
//! codis-server 3.2 answers `unknown command` and closes the connection.
//!
//! The target checks every record as `Stream::read_rdb` checks the RDB body
//! (`ds::stream::CheckedNode`, `Stream::push_nodes` and the other piece
//! builders), so the copy is a well-formed stream after every message and
//! equals the source's (DUMP for DUMP) after `meta`.

use std::ops::Bound::{Excluded, Unbounded};

use protocol::resp::request::bulk;

use crate::ds::stream::{CheckedNode, Stream, StreamId};

/// The part words.
pub const PROBE: &[u8] = b"probe";
pub const NODES: &[u8] = b"nodes";
pub const GROUPS: &[u8] = b"groups";
pub const CONSUMERS: &[u8] = b"consumers";
pub const PEL: &[u8] = b"pel";
pub const DELETED: &[u8] = b"deleted";
pub const META: &[u8] = b"meta";

/// A stream holding more than this many bytes (`Stream::heap_size`) is
/// chunked whatever its bulk count (few huge nodes would make one huge
/// `object` message).
pub const OBJECT_MAX_BYTES: usize = 256 * 1024;

/// The record bulks of a stream's chunks, `meta` included: what
/// `codec::plan` compares with `maxbulks`.
pub fn bulks(st: &Stream) -> usize {
    let groups: usize = st
        .groups
        .values()
        .map(|g| 3 + 2 * g.consumers.len() + 4 * g.pel.len())
        .sum();
    2 * st.node_count() + groups + 5
}

// ---------------------------------------------------------------------------
// Source side
// ---------------------------------------------------------------------------

/// Where the chunks stand: a part and the last record sent in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Pos {
    #[default]
    Nodes,
    Groups(Option<Vec<u8>>),
    Consumers(Vec<u8>, Option<Vec<u8>>),
    Pel(Vec<u8>, Option<StreamId>),
    /// A node and the last deleted entry sent from it.
    Deleted(Option<StreamId>, Option<StreamId>),
    Meta,
    Done,
}

/// Emits a stream's chunk messages one at a time (the stream must not
/// change in between: migrations keep it in flight; if it does, the walk
/// resumes after the last record sent, by key, and never fails).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Emitter {
    pos: Pos,
    /// The last node sent.
    node: Option<StreamId>,
    /// Nodes sent so far.
    nodes_done: usize,
}

/// One message's records being written.
struct Out<'a> {
    body: &'a mut Vec<u8>,
    /// Record bulks written.
    n: usize,
    bytes: usize,
    maxb: usize,
    budget: usize,
}

impl Out<'_> {
    /// Whether a record of `width` bulks still fits (the first always does).
    fn room(&self, width: usize) -> bool {
        self.n == 0 || (self.n + width <= self.maxb && self.bytes < self.budget)
    }

    fn put(&mut self, b: &[u8]) {
        bulk(self.body, b);
        self.n += 1;
        self.bytes += b.len();
    }

    fn num(&mut self, v: u64) {
        self.put(itoa::Buffer::new().format(v).as_bytes());
    }
}

/// The group after `name` (the first one with None).
fn group_after(st: &Stream, name: Option<&[u8]>) -> Option<Vec<u8>> {
    let from = name.map_or(Unbounded, Excluded);
    st.groups
        .range::<[u8], _>((from, Unbounded))
        .next()
        .map(|(k, _)| k.clone())
}

impl Emitter {
    pub fn new() -> Emitter {
        Emitter::default()
    }

    /// Nodes sent so far (STATUS' position).
    pub fn nodes_done(&self) -> usize {
        self.nodes_done
    }

    /// Appends the bulks of the next message after its `hint` (the part
    /// word, a group name for `consumers` / `pel`, then the records) to
    /// `body`: at most `maxbulks` record bulks (one record at least),
    /// stopping once they reach `budget` bytes. Returns (bulks written,
    /// every message emitted); (0, true) once done. A message may come out
    /// empty (a stretch of nodes without deleted entries; call again).
    pub fn next(
        &mut self,
        st: &Stream,
        maxbulks: usize,
        budget: usize,
        body: &mut Vec<u8>,
    ) -> (usize, bool) {
        loop {
            let start = body.len();
            let mut out = Out {
                body,
                n: 0,
                bytes: 0,
                maxb: maxbulks.max(1),
                budget: budget.max(1),
            };
            let (prefix, next) = match &self.pos {
                Pos::Done => return (0, true),
                Pos::Nodes => {
                    bulk(out.body, NODES);
                    let mut ended = true;
                    for (mid, lp) in st.nodes_after(self.node) {
                        if !out.room(2) {
                            ended = false;
                            break;
                        }
                        out.put(&mid.to_key());
                        out.put(lp);
                        self.node = Some(mid);
                        self.nodes_done += 1;
                    }
                    (1, ended.then_some(Pos::Groups(None)))
                }
                Pos::Groups(after) => {
                    bulk(out.body, GROUPS);
                    let from = after.as_deref().map_or(Unbounded, Excluded);
                    let mut last = None;
                    let mut ended = true;
                    for (name, g) in st.groups.range::<[u8], _>((from, Unbounded)) {
                        if !out.room(3) {
                            ended = false;
                            break;
                        }
                        out.put(name);
                        out.put(&g.last_id.to_key());
                        out.put(itoa::Buffer::new().format(g.entries_read).as_bytes());
                        last = Some(name.clone());
                    }
                    let next = if ended {
                        Some(match group_after(st, None) {
                            Some(g) => Pos::Consumers(g, None),
                            None => Pos::Meta,
                        })
                    } else {
                        last.map(|l| Pos::Groups(Some(l)))
                    };
                    (1, next)
                }
                Pos::Consumers(gname, after) => {
                    bulk(out.body, CONSUMERS);
                    bulk(out.body, gname);
                    let mut last = None;
                    let mut ended = true;
                    if let Some(g) = st.groups.get(gname) {
                        let from = after.as_deref().map_or(Unbounded, Excluded);
                        for (name, c) in g.consumers.range::<[u8], _>((from, Unbounded)) {
                            if !out.room(2) {
                                ended = false;
                                break;
                            }
                            out.put(name);
                            out.num(c.seen_time);
                            last = Some(name.clone());
                        }
                    }
                    let next = if ended {
                        Some(Pos::Pel(gname.clone(), None))
                    } else {
                        last.map(|l| Pos::Consumers(gname.clone(), Some(l)))
                    };
                    (2, next)
                }
                Pos::Pel(gname, after) => {
                    bulk(out.body, PEL);
                    bulk(out.body, gname);
                    let mut last = None;
                    let mut ended = true;
                    if let Some(g) = st.groups.get(gname) {
                        let from = after.map_or(Unbounded, Excluded);
                        for (id, nack) in g.pel.range((from, Unbounded)) {
                            if !out.room(4) {
                                ended = false;
                                break;
                            }
                            out.put(&id.to_key());
                            out.num(nack.delivery_time);
                            out.num(nack.delivery_count);
                            out.put(&nack.consumer);
                            last = Some(*id);
                        }
                    }
                    let next = if ended {
                        Some(match group_after(st, Some(gname)) {
                            Some(g) => Pos::Consumers(g, None),
                            None => Pos::Meta,
                        })
                    } else {
                        last.map(|l| Pos::Pel(gname.clone(), Some(l)))
                    };
                    (2, next)
                }
                Pos::Deleted(node, after) => {
                    bulk(out.body, DELETED);
                    // Nodes looked at per message, as a hash chunk's SCAN
                    // steps.
                    let max_nodes = (10 * out.maxb).max(100);
                    let resume = st.walk_deleted((*node, *after), max_nodes, |id| {
                        if !out.room(1) {
                            return false;
                        }
                        out.put(&id.to_key());
                        true
                    });
                    match resume {
                        Some((n, a)) => (1, Some(Pos::Deleted(n, a))),
                        None => (1, Some(Pos::Done)),
                    }
                }
                Pos::Meta => {
                    bulk(out.body, META);
                    out.num(st.length);
                    out.put(&st.last_id.to_key());
                    out.put(&st.first_id.to_key());
                    out.put(&st.max_deleted.to_key());
                    out.num(st.entries_added);
                    (1, Some(Pos::Deleted(None, None)))
                }
            };
            let n = out.n;
            let stayed = matches!(
                (&self.pos, &next),
                (Pos::Deleted(..), Some(Pos::Deleted(..)))
            );
            if let Some(p) = next {
                self.pos = p;
            }
            if n > 0 {
                return (prefix + n, self.pos == Pos::Done);
            }
            body.truncate(start);
            if stayed {
                // Nodes walked without a deleted entry: an empty message.
                return (0, false);
            }
            // Nothing in this part: on to the next one.
        }
    }
}

// ---------------------------------------------------------------------------
// Target side
// ---------------------------------------------------------------------------

/// Why a stream message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceError {
    /// Not a part word we know.
    Unknown,
    /// A record count or argument count that does not fit the part.
    Arity,
    /// Record `i` (0 for `meta`) is malformed or does not fit the stream.
    Record(usize),
}

/// One message, parsed (nodes already checked on their own).
#[derive(Debug)]
pub enum Piece<'a> {
    Probe,
    Nodes(Vec<CheckedNode>),
    Groups(Vec<(&'a [u8], StreamId, i64)>),
    Consumers(&'a [u8], Vec<(&'a [u8], u64)>),
    Pel(&'a [u8], Vec<(StreamId, u64, u64, &'a [u8])>),
    Deleted(Vec<StreamId>),
    Meta {
        length: u64,
        last_id: StreamId,
        first_id: StreamId,
        max_deleted: StreamId,
        entries_added: u64,
    },
}

/// A decimal u64 (digits only).
fn dec(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn id(b: &[u8]) -> Option<StreamId> {
    StreamId::from_key(b)
}

/// Splits `args` into records of `width` bulks (at least one), each turned
/// into a `T` by `f` (None: that record is malformed).
fn records<'a, T>(
    args: &[&'a [u8]],
    width: usize,
    mut f: impl FnMut(&[&'a [u8]]) -> Option<T>,
) -> Result<Vec<T>, PieceError> {
    if args.is_empty() || !args.len().is_multiple_of(width) {
        return Err(PieceError::Arity);
    }
    args.chunks_exact(width)
        .enumerate()
        .map(|(i, r)| f(r).ok_or(PieceError::Record(i)))
        .collect()
}

/// Parses a message's arguments after its `hint` (the part word first).
/// Nodes get `read_rdb`'s node check here, before the key is locked.
pub fn parse<'a>(args: &[&'a [u8]]) -> Result<Piece<'a>, PieceError> {
    let Some((&part, rest)) = args.split_first() else {
        return Err(PieceError::Arity);
    };
    let part = part.to_ascii_lowercase();
    let grouped = |rest: &[&'a [u8]]| match rest.split_first() {
        Some((&g, recs)) => Ok((g, recs.to_vec())),
        None => Err(PieceError::Arity),
    };
    Ok(match part.as_slice() {
        PROBE if rest.is_empty() => Piece::Probe,
        PROBE => return Err(PieceError::Arity),
        NODES => Piece::Nodes(records(rest, 2, |r| {
            CheckedNode::new(id(r[0])?, r[1].to_vec())
        })?),
        GROUPS => Piece::Groups(records(rest, 3, |r| {
            let read = protocol::number::parse_i64(r[2])?;
            Some((r[0], id(r[1])?, read))
        })?),
        CONSUMERS => {
            let (g, recs) = grouped(rest)?;
            Piece::Consumers(g, records(&recs, 2, |r| Some((r[0], dec(r[1])?)))?)
        }
        PEL => {
            let (g, recs) = grouped(rest)?;
            Piece::Pel(
                g,
                records(&recs, 4, |r| {
                    Some((id(r[0])?, dec(r[1])?, dec(r[2])?, r[3]))
                })?,
            )
        }
        DELETED => Piece::Deleted(records(rest, 1, |r| id(r[0]))?),
        META => {
            let [length, last, first, maxdel, added] = rest else {
                return Err(PieceError::Arity);
            };
            let bad = PieceError::Record(0);
            Piece::Meta {
                length: dec(length).ok_or(bad)?,
                last_id: id(last).ok_or(bad)?,
                first_id: id(first).ok_or(bad)?,
                max_deleted: id(maxdel).ok_or(bad)?,
                entries_added: dec(added).ok_or(bad)?,
            }
        }
        _ => return Err(PieceError::Unknown),
    })
}

/// The commands that delete entries `ids` of stream `key` (`st`, its
/// counters final) on a replica that holds them live, as the AOF rewrite
/// does: XDEL (XDEL raises the max-deleted ID; when it is 0-0, only trims
/// deleted entries and XSETID cannot set 0-0 back: one XTRIM below the
/// first live entry instead, which marks exactly them, all of them from
/// the first piece on), then XSETID with the counters.
pub fn deletions(key: &[u8], st: &Stream, ids: &[StreamId]) -> Vec<crate::propagate::Argv> {
    let text = |id: StreamId| id.to_text().into_bytes();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if st.max_deleted == StreamId::MIN {
        let trim = if st.length == 0 {
            [b"MAXLEN".to_vec(), b"0".to_vec()]
        } else {
            [b"MINID".to_vec(), text(st.first_id)]
        };
        let mut v = vec![b"XTRIM".to_vec(), key.to_vec()];
        v.extend(trim);
        out.push(v);
    } else {
        for chunk in ids.chunks(1000) {
            let mut v = vec![b"XDEL".to_vec(), key.to_vec()];
            v.extend(chunk.iter().map(|&id| text(id)));
            out.push(v);
        }
    }
    out.push(vec![
        b"XSETID".to_vec(),
        key.to_vec(),
        text(st.last_id),
        b"ENTRIESADDED".to_vec(),
        st.entries_added.to_string().into_bytes(),
        b"MAXDELETEDID".to_vec(),
        text(st.max_deleted),
    ]);
    out
}

impl Piece<'_> {
    /// Adds the piece to `st`; `Err(i)`: record `i` does not fit (a node
    /// out of order, a group, consumer or pending entry that exists or
    /// whose group or consumer does not, an ID that is no deleted entry of
    /// the nodes, a length that is not the live entries'), after the
    /// records before it were added.
    pub fn apply(self, st: &mut Stream) -> Result<(), usize> {
        match self {
            Piece::Probe => Ok(()),
            Piece::Nodes(nodes) => {
                if st.push_nodes(nodes) {
                    Ok(())
                } else {
                    Err(0)
                }
            }
            Piece::Groups(gs) => {
                for (i, (name, last, read)) in gs.into_iter().enumerate() {
                    if !st.add_group(name, last, read) {
                        return Err(i);
                    }
                }
                Ok(())
            }
            Piece::Consumers(g, cs) => {
                for (i, (name, seen)) in cs.into_iter().enumerate() {
                    if !st.add_consumer(g, name, seen) {
                        return Err(i);
                    }
                }
                Ok(())
            }
            Piece::Pel(g, ps) => {
                for (i, (id, time, count, consumer)) in ps.into_iter().enumerate() {
                    if !st.add_pending(g, id, time, count, consumer) {
                        return Err(i);
                    }
                }
                Ok(())
            }
            Piece::Deleted(ids) => match ids.iter().position(|&id| !st.holds_deleted(id)) {
                Some(i) => Err(i),
                None => Ok(()),
            },
            Piece::Meta {
                length,
                last_id,
                first_id,
                max_deleted,
                entries_added,
            } => {
                if st.set_counters(length, last_id, first_id, max_deleted, entries_added) {
                    Ok(())
                } else {
                    Err(0)
                }
            }
        }
    }

    /// The commands that give a replica (or the AOF) the piece's effect on
    /// stream `key` (`st` as it is before the piece), as the AOF rewrite
    /// writes a stream (`codec::aof_commands`): an
    /// XADD per entry, deleted ones included, XGROUP CREATE … ENTRIESREAD …
    /// MKSTREAM, XGROUP CREATECONSUMER, XCLAIM … TIME … RETRYCOUNT … FORCE
    /// JUSTID, XSETID (after Redis' `XADD … MAXLEN 0 0-1 x y` when nothing
    /// created the stream), then the deletions ([`deletions`]). Replicas
    /// differ from the target only in what no command sets: consumers'
    /// seen times.
    pub fn commands(&self, key: &[u8], st: &Stream) -> Vec<crate::propagate::Argv> {
        let bare = st.node_count() == 0 && st.groups.is_empty();
        let text = |id: StreamId| id.to_text().into_bytes();
        let num = |v: i64| v.to_string().into_bytes();
        let unum = |v: u64| v.to_string().into_bytes();
        let mut out = Vec::new();
        match self {
            Piece::Probe => {}
            Piece::Nodes(nodes) => {
                for n in nodes {
                    for e in crate::ds::stream::node_entries(n.mid(), n.listpack()) {
                        let mut v = vec![b"XADD".to_vec(), key.to_vec(), text(e.id)];
                        for (f, x) in &e.fields {
                            v.push(f.to_vec());
                            v.push(x.to_vec());
                        }
                        out.push(v);
                    }
                }
            }
            Piece::Deleted(ids) => out.extend(deletions(key, st, ids)),
            Piece::Groups(gs) => {
                for (name, last, read) in gs {
                    out.push(vec![
                        b"XGROUP".to_vec(),
                        b"CREATE".to_vec(),
                        key.to_vec(),
                        name.to_vec(),
                        text(*last),
                        b"ENTRIESREAD".to_vec(),
                        num(*read),
                        b"MKSTREAM".to_vec(),
                    ]);
                }
            }
            Piece::Consumers(g, cs) => {
                for (name, _) in cs {
                    out.push(vec![
                        b"XGROUP".to_vec(),
                        b"CREATECONSUMER".to_vec(),
                        key.to_vec(),
                        g.to_vec(),
                        name.to_vec(),
                    ]);
                }
            }
            Piece::Pel(g, ps) => {
                for (id, time, count, consumer) in ps {
                    out.push(vec![
                        b"XCLAIM".to_vec(),
                        key.to_vec(),
                        g.to_vec(),
                        consumer.to_vec(),
                        b"0".to_vec(),
                        text(*id),
                        b"TIME".to_vec(),
                        unum(*time),
                        b"RETRYCOUNT".to_vec(),
                        unum(*count),
                        b"FORCE".to_vec(),
                        b"JUSTID".to_vec(),
                    ]);
                }
            }
            Piece::Meta {
                last_id,
                max_deleted,
                entries_added,
                ..
            } => {
                // Until the deletions the replica holds the deleted
                // entries too (a stream from a Redis 6 file counts only its
                // live ones as added); the deletions' XSETID sets it.
                let added = (*entries_added).max(st.entries_added);
                if bare {
                    out.push(vec![
                        b"XADD".to_vec(),
                        key.to_vec(),
                        b"MAXLEN".to_vec(),
                        b"0".to_vec(),
                        b"0-1".to_vec(),
                        b"x".to_vec(),
                        b"y".to_vec(),
                    ]);
                }
                out.push(vec![
                    b"XSETID".to_vec(),
                    key.to_vec(),
                    text(*last_id),
                    b"ENTRIESADDED".to_vec(),
                    unum(added),
                    b"MAXDELETEDID".to_vec(),
                    text(*max_deleted),
                ]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ds::stream::sample;

    use crate::codec::chunk::split_bulks as bulks_of;

    /// Every message of `st`, as argument lists after the hint.
    fn messages(st: &Stream, maxb: usize, budget: usize) -> Vec<Vec<Vec<u8>>> {
        let mut e = Emitter::new();
        let mut out = Vec::new();
        loop {
            let mut body = Vec::new();
            let (n, fin) = e.next(st, maxb, budget, &mut body);
            let args = bulks_of(&body);
            assert_eq!(args.len(), n);
            if n > 0 {
                out.push(args);
            }
            if fin {
                assert_eq!(e.next(st, maxb, budget, &mut Vec::new()), (0, true));
                return out;
            }
            assert!(out.len() < 100_000);
        }
    }

    /// The messages cover the stream once, in the documented order, each
    /// within its bounds, and the target rebuilds an identical stream.
    #[test]
    fn messages_rebuild_the_stream_within_bounds() {
        let mut empty_with_groups = Stream::new();
        empty_with_groups.last_id = StreamId::new(5, 5);
        assert!(empty_with_groups.add_group(b"g", StreamId::new(5, 5), 3));
        assert!(empty_with_groups.add_consumer(b"g", b"c", 9));
        for src in [sample(300), sample(7), Stream::new(), empty_with_groups] {
            let mut body = Vec::new();
            src.write_rdb(&mut body, None);
            for (maxb, budget) in [
                (7, usize::MAX),
                (1, usize::MAX),
                (200, 1),
                (12, 200),
                (1000, 1 << 20),
            ] {
                let msgs = messages(&src, maxb, budget);
                let mut t = Stream::new();
                let mut order = Vec::new();
                for m in &msgs {
                    let part = m[0].as_slice();
                    let prefix = if part == CONSUMERS || part == PEL {
                        2
                    } else {
                        1
                    };
                    let width = match part {
                        DELETED => 1,
                        NODES | CONSUMERS => 2,
                        GROUPS => 3,
                        PEL => 4,
                        META => 5,
                        _ => panic!("part {part:?}"),
                    };
                    let recs = &m[prefix..];
                    assert_eq!(recs.len() % width, 0);
                    if recs.len() > width {
                        assert!(recs.len() <= maxb, "{} bulks > {maxb}", recs.len());
                        let bytes: usize = recs[..recs.len() - width].iter().map(Vec::len).sum();
                        assert!(bytes < budget, "a record after the budget was reached");
                    }
                    order.push(part.to_vec());
                    let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
                    let piece = parse(&refs).expect("parses");
                    piece.apply(&mut t).expect("applies");
                }
                let meta = order.iter().position(|p| p == META).expect("meta");
                assert!(order[meta + 1..].iter().all(|p| p == DELETED), "{order:?}");
                order.dedup();
                let rank = |p: &[u8]| {
                    [NODES, GROUPS, CONSUMERS, PEL, META, DELETED]
                        .iter()
                        .position(|&w| w == p)
                };
                let first_groups = order.iter().position(|p| p == GROUPS);
                let first_cons = order.iter().position(|p| p == CONSUMERS);
                if let (Some(g), Some(c)) = (first_groups, first_cons) {
                    assert!(g < c, "group headers before consumers");
                }
                assert!(order.iter().all(|p| rank(p).is_some()));
                let deleted: usize = msgs
                    .iter()
                    .filter(|m| m[0] == DELETED)
                    .map(|m| m.len() - 1)
                    .sum();
                let held: usize = src
                    .nodes()
                    .map(|(m, lp)| {
                        crate::ds::stream::node_entries(m, lp)
                            .iter()
                            .filter(|e| e.deleted)
                            .count()
                    })
                    .sum();
                assert_eq!(deleted, held, "every deleted entry named once");
                assert_eq!(t, src, "maxbulks {maxb}, budget {budget}");
                let mut again = Vec::new();
                t.write_rdb(&mut again, None);
                assert_eq!(again, body, "same RDB body");
            }
        }
    }

    /// Hostile messages are refused, never panic, and a refused piece
    /// leaves a well-formed stream.
    #[test]
    fn hostile_pieces_are_refused() {
        let src = sample(40);
        let msgs = messages(&src, 8, usize::MAX);
        let node_msg = msgs.iter().find(|m| m[0] == NODES).unwrap();
        let refs: Vec<&[u8]> = node_msg.iter().map(Vec::as_slice).collect();
        assert!(matches!(parse(&refs[..2]), Err(PieceError::Arity)));
        assert!(matches!(parse(&[]), Err(PieceError::Arity)));
        assert!(matches!(parse(&[b"nodez"]), Err(PieceError::Unknown)));
        assert!(matches!(parse(&[b"probe", b"x"]), Err(PieceError::Arity)));
        assert!(matches!(parse(&[b"PROBE"]), Ok(Piece::Probe)));
        assert!(matches!(parse(&[b"meta", b"1"]), Err(PieceError::Arity)));
        assert!(matches!(parse(&[b"pel", b"g"]), Err(PieceError::Arity)));
        let short_id: [&[u8]; 3] = [b"nodes", b"123", refs[2]];
        assert!(matches!(parse(&short_id), Err(PieceError::Record(0))));
        // Every byte of a node flipped in turn: parsed and applied or
        // refused, never a panic, and what is kept reads back from RDB.
        let (mid, lp) = (refs[1], refs[2]);
        for i in 0..lp.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut bad = lp.to_vec();
                bad[i] ^= x;
                let args: [&[u8]; 3] = [b"nodes", mid, &bad];
                let mut t = Stream::new();
                if let Ok(p) = parse(&args) {
                    let _ = p.apply(&mut t);
                }
                let mut body = Vec::new();
                t.write_rdb(&mut body, None);
                assert_eq!(Stream::read_rdb(&body, true).map(|r| r.0), Some(t));
            }
        }
        // Pieces that do not fit: a PEL entry of an unknown consumer, a
        // duplicate group, a length that is not the nodes'.
        let mut t = Stream::new();
        let g: [&[u8]; 4] = [b"groups", b"g", &StreamId::MIN.to_key(), b"-1"];
        parse(&g).unwrap().apply(&mut t).unwrap();
        assert_eq!(parse(&g).unwrap().apply(&mut t), Err(0));
        let k = StreamId::new(1, 1).to_key();
        let pel: [&[u8]; 6] = [b"pel", b"g", &k, b"1", b"1", b"nobody"];
        assert_eq!(parse(&pel).unwrap().apply(&mut t), Err(0));
        let z = StreamId::MIN.to_key();
        let meta: [&[u8]; 6] = [b"meta", b"3", &z, &z, &z, b"3"];
        assert_eq!(parse(&meta).unwrap().apply(&mut t), Err(0));
        let neg: [&[u8]; 6] = [b"pel", b"g", &k, b"-1", b"1", b"c"];
        assert!(matches!(parse(&neg), Err(PieceError::Record(0))));
    }

    /// What a piece propagates: XADD per live entry, groups with
    /// MKSTREAM, consumers, XCLAIM per pending entry, XSETID.
    #[test]
    fn piece_commands() {
        let src = sample(10);
        let msgs = messages(&src, 1000, usize::MAX);
        let mut cmds = Vec::new();
        let mut t = Stream::new();
        for m in &msgs {
            let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
            let piece = parse(&refs).unwrap();
            cmds.extend(piece.commands(b"k", &t));
            piece.apply(&mut t).unwrap();
        }
        let names: Vec<String> = cmds
            .iter()
            .map(|c| String::from_utf8_lossy(&c[0]).into_owned())
            .collect();
        let count = |n: &str| names.iter().filter(|x| *x == n).count();
        let all: usize = src
            .nodes()
            .map(|(m, lp)| crate::ds::stream::node_entries(m, lp).len())
            .sum();
        assert_eq!(count("XADD"), all);
        assert!(count("XDEL") > 0);
        assert_eq!(count("XGROUP"), 2 + 3);
        assert_eq!(count("XCLAIM"), 5);
        assert_eq!(names.last().map(String::as_str), Some("XSETID"));
        assert_eq!(cmds[0][2], b"1-1", "deleted entries too");
        let xdel = cmds.iter().find(|c| c[0] == b"XDEL").unwrap();
        assert_eq!(xdel[2], b"1-1");
        let meta: [&[u8]; 6] = [
            b"meta",
            b"0",
            &StreamId::new(4, 0).to_key(),
            &StreamId::MIN.to_key(),
            &StreamId::MIN.to_key(),
            b"4",
        ];
        let c = parse(&meta).unwrap().commands(b"k", &Stream::new());
        assert_eq!(
            c[0][..5],
            [
                b"XADD".to_vec(),
                b"k".to_vec(),
                b"MAXLEN".to_vec(),
                b"0".to_vec(),
                b"0-1".to_vec()
            ]
        );
    }
}
