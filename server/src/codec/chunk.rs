//! The async migration's chunk form of a value (codis.md §2.7.1, §2.7.5),
//! both ends: how a value ships ([`plan`]: a `string` message, one `object`
//! message carrying a DUMP payload, `list|hash|dict|zset` chunks, or our
//! `stream` chunks), the chunk emitter ([`Chunker`]: element bulks of one
//! chunk, resuming through a [`Cursor`]; a stream's through
//! `stream_chunk::Emitter`), and the target's side (scores,
//! [`ChunkKind::empty`], [`append_chunk`]; a stream's pieces are
//! `stream_chunk`'s).
//!
//! Chunk boundaries are codis-server 3.2's (slots_async.c): at most
//! `maxbulks` bulks (whole pairs only, one pair at least) and the send
//! window's bytes per chunk; lists by index, zsets from the highest rank
//! down with raw little-endian double scores, hash and set tables one SCAN
//! step (COUNT 1) at a time, a chunk giving up after `max(10 × maxbulks,
//! 100)` steps once it holds an element. Codis may add one pair past
//! `maxbulks`; we do not.

use protocol::resp::request::bulk;

use super::cursor::{Cursor, Elem, Flow, Pace};
use crate::db::{Object, ValueRef};
use crate::ds::zset::SkipList;
use crate::ds::{Hash, List, Set, ZSet};

/// The chunk forms, named by their SLOTSRESTORE-ASYNC subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    List,
    Hash,
    /// A set.
    Dict,
    Zset,
    /// A stream (ours; see `stream_chunk`).
    Stream,
}

/// Largest hint used to pre-size a table (the hint is sender-controlled).
const HINT_CAP: usize = 1 << 24;

impl ChunkKind {
    /// The subcommand word.
    pub fn word(self) -> &'static [u8] {
        match self {
            ChunkKind::List => b"list",
            ChunkKind::Hash => b"hash",
            ChunkKind::Dict => b"dict",
            ChunkKind::Zset => b"zset",
            ChunkKind::Stream => b"stream",
        }
    }

    /// Whether a chunk element is two bulks (field + value, member + score).
    pub fn pairs(self) -> bool {
        matches!(self, ChunkKind::Hash | ChunkKind::Zset)
    }

    fn of(v: ValueRef<'_>) -> Option<ChunkKind> {
        match v {
            ValueRef::Obj(Object::List(_)) => Some(ChunkKind::List),
            ValueRef::Obj(Object::Hash(_)) => Some(ChunkKind::Hash),
            ValueRef::Obj(Object::Set(_)) => Some(ChunkKind::Dict),
            ValueRef::Obj(Object::ZSet(_)) => Some(ChunkKind::Zset),
            ValueRef::Obj(Object::Stream(_)) => Some(ChunkKind::Stream),
            _ => None,
        }
    }

    /// The empty value a first chunk creates on the target: tables sized
    /// for `hint` elements (capped), a skiplist zset, an empty list.
    pub fn empty(self, hint: usize) -> Object {
        let hint = hint.min(HINT_CAP);
        match self {
            ChunkKind::List => Object::List(List::new()),
            ChunkKind::Hash => Object::Hash(Hash::new_table(hint)),
            ChunkKind::Dict => Object::Set(Set::new_table(hint)),
            ChunkKind::Zset => Object::ZSet(ZSet::Full(Box::new(SkipList::with_capacity(hint)))),
            ChunkKind::Stream => Object::Stream(Box::default()),
        }
    }
}

/// How a value ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipping {
    /// One `string` message with the bytes.
    Str,
    /// One `object` message with the DUMP payload.
    Object,
    /// Chunks, then an `expire` message.
    Chunked(ChunkKind),
}

/// A value's shipping plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub how: Shipping,
    /// Elements (the chunks' `hint`); 0 for a string.
    pub hint: usize,
    /// Bulks the elements take.
    pub bulks: usize,
}

impl Plan {
    /// Chunk messages the value takes (0 when not chunked).
    pub fn chunks(&self, maxbulks: usize) -> usize {
        match self.how {
            Shipping::Chunked(_) => self.bulks.div_ceil(maxbulks.max(1)),
            _ => 0,
        }
    }

    /// Estimated messages (codis.md §2.7.1): the chunk count, or 1.
    pub fn messages(&self, maxbulks: usize) -> usize {
        self.chunks(maxbulks).max(1)
    }
}

/// Codis' rule: a list, or a hash / set / zset in a table encoding, whose
/// elements take more than `maxbulks` bulks is chunked; strings go as
/// `string`, the rest as one `object`. Ours for streams: chunked when its
/// chunks' record bulks (`stream_chunk::bulks`) exceed `maxbulks` or it
/// holds more than `stream_chunk::OBJECT_MAX_BYTES` of memory (`hint`: its
/// nodes).
pub fn plan(v: ValueRef<'_>, maxbulks: usize) -> Plan {
    let maxbulks = maxbulks.max(1);
    let chunked = |big: bool, c: ChunkKind, len: usize, bulks: usize| Plan {
        how: if big && bulks > maxbulks {
            Shipping::Chunked(c)
        } else {
            Shipping::Object
        },
        hint: len,
        bulks,
    };
    match v {
        ValueRef::Str(_) | ValueRef::Obj(Object::Str(_)) => Plan {
            how: Shipping::Str,
            hint: 0,
            bulks: 1,
        },
        ValueRef::Obj(Object::List(l)) => chunked(true, ChunkKind::List, l.len(), l.len()),
        ValueRef::Obj(Object::Hash(h)) => {
            chunked(!h.is_compact(), ChunkKind::Hash, h.len(), h.len() * 2)
        }
        ValueRef::Obj(Object::Set(s)) => chunked(!s.is_intset(), ChunkKind::Dict, s.len(), s.len()),
        ValueRef::Obj(Object::ZSet(z)) => {
            chunked(!z.is_compact(), ChunkKind::Zset, z.len(), z.len() * 2)
        }
        ValueRef::Obj(Object::Stream(s)) => {
            let bulks = super::stream_chunk::bulks(s);
            let big = bulks > maxbulks || s.heap_size() > super::stream_chunk::OBJECT_MAX_BYTES;
            Plan {
                how: if big {
                    Shipping::Chunked(ChunkKind::Stream)
                } else {
                    Shipping::Object
                },
                hint: s.node_count(),
                bulks,
            }
        }
    }
}

/// Emits a chunked value's element bulks one chunk at a time.
#[derive(Debug, Clone)]
pub struct Chunker {
    kind: ChunkKind,
    cursor: Cursor,
    /// A stream's position.
    stream: super::stream_chunk::Emitter,
}

impl Chunker {
    pub fn new(kind: ChunkKind) -> Chunker {
        Chunker {
            kind,
            cursor: if kind == ChunkKind::Zset {
                Cursor::descending()
            } else {
                Cursor::new()
            },
            stream: super::stream_chunk::Emitter::new(),
        }
    }

    pub fn kind(&self) -> ChunkKind {
        self.kind
    }

    /// Codis' STATUS positions: (SCAN cursor, list index, zset index).
    pub fn positions(&self) -> (u64, usize, usize) {
        let done = self.cursor.done();
        match self.kind {
            ChunkKind::List => (0, done, 0),
            ChunkKind::Zset => (0, 0, done),
            ChunkKind::Hash | ChunkKind::Dict => (self.cursor.scan_cursor(), 0, 0),
            ChunkKind::Stream => (0, self.stream.nodes_done(), 0),
        }
    }

    /// Appends the element bulks of the next chunk of `v` to `body`: at most
    /// `maxbulks` bulks, stopping once they reach `budget` bytes (one
    /// element at least). Returns (bulks written, every element emitted);
    /// a chunk may come out empty (a SCAN stretch without elements; call
    /// again). A value of another type than the chunker's is finished. A
    /// stream's bulks are those of `stream_chunk::Emitter::next` (its part
    /// word and group name first).
    pub fn next(
        &mut self,
        v: ValueRef<'_>,
        maxbulks: usize,
        budget: usize,
        body: &mut Vec<u8>,
    ) -> (usize, bool) {
        let maxb = maxbulks.max(1);
        let budget = budget.max(1);
        if ChunkKind::of(v) != Some(self.kind) {
            return (0, true);
        }
        if let ValueRef::Obj(Object::Stream(st)) = v {
            return self.stream.next(st, maxb, budget, body);
        }
        let pairs = self.kind.pairs();
        let mut acc = Acc {
            body,
            n: 0,
            bytes: 0,
        };
        // Full: whole pairs only, at most `maxbulks` bulks (one pair at
        // least), or the window's bytes reached.
        let full =
            |a: &Acc<'_>| (if pairs { a.n + 2 > maxb } else { a.n >= maxb }) || a.bytes >= budget;
        let finished = match self.kind {
            ChunkKind::List | ChunkKind::Zset => {
                let pace = Pace {
                    // A chunk holds at most this many zset members.
                    ranks: (maxb / 2).max(1),
                    ..Pace::WHOLE
                };
                self.cursor.walk(v, &pace, |e| {
                    acc.put(e);
                    if full(&acc) { Flow::Stop } else { Flow::Go }
                })
            }
            // Streams are emitted above.
            ChunkKind::Stream => true,
            ChunkKind::Hash | ChunkKind::Dict => {
                // One SCAN step of COUNT 1 (one element at most) per walk.
                let pace = Pace {
                    scan_count: 1,
                    scans: 1,
                    ..Pace::WHOLE
                };
                let max_steps = (10 * maxb).max(100);
                let mut steps = 0usize;
                loop {
                    let fin = self.cursor.walk(v, &pace, |e| {
                        acc.put(e);
                        Flow::Go
                    });
                    steps += 1;
                    if fin {
                        break true;
                    }
                    if full(&acc) || (steps >= max_steps && acc.n > 0) {
                        break false;
                    }
                }
            }
        };
        (acc.n, finished)
    }
}

/// One chunk's element bulks being written.
struct Acc<'a> {
    body: &'a mut Vec<u8>,
    /// Bulks written.
    n: usize,
    /// Element bytes (scores count 8).
    bytes: usize,
}

impl Acc<'_> {
    fn put(&mut self, e: Elem<'_>) {
        match e {
            Elem::Item(b) => {
                bulk(self.body, b);
                self.n += 1;
                self.bytes += b.len();
            }
            Elem::Pair(f, v) => {
                bulk(self.body, f);
                bulk(self.body, v);
                self.n += 2;
                self.bytes += f.len() + v.len();
            }
            Elem::Scored(m, s) => {
                bulk(self.body, m);
                bulk(self.body, &s.to_le_bytes());
                self.n += 2;
                self.bytes += m.len() + 8;
            }
            // Strings and streams are never chunked.
            Elem::Bytes(_) | Elem::Node(..) => {}
        }
    }
}

/// The scores of a zset chunk (`member score` pairs, scores as 8 raw
/// little-endian bytes); `Err(i)`: pair `i`'s score is not 8 bytes or NaN.
pub fn zset_scores(elems: &[&[u8]]) -> Result<Vec<f64>, usize> {
    elems
        .chunks_exact(2)
        .enumerate()
        .map(|(i, p)| {
            let raw: [u8; 8] = p[1].try_into().map_err(|_| i)?;
            let s = f64::from_le_bytes(raw);
            if s.is_nan() { Err(i) } else { Ok(s) }
        })
        .collect()
}

/// Appends one chunk's elements to a value of the chunk's type (the caller
/// checked it): list elements at the tail (`fill`: the quicklist fill),
/// hash pairs set, set members added (the table encoding is kept), zset
/// members added or rescored with `scores` (see [`zset_scores`]). Returns
/// the value's new size.
pub fn append_chunk(obj: &mut Object, elems: &[&[u8]], scores: &[f64], fill: i32) -> usize {
    match obj {
        Object::List(l) => {
            l.extend_back(elems.iter().copied(), fill);
            l.len()
        }
        Object::Hash(h) => {
            let lim = crate::ds::hash::Limits::DEFAULT;
            for p in elems.chunks_exact(2) {
                h.set(p[0], p[1], &lim);
            }
            h.len()
        }
        Object::Set(s) => {
            for m in elems {
                s.insert(m, 0);
            }
            s.len()
        }
        Object::ZSet(z) => {
            for (p, &s) in elems.chunks_exact(2).zip(scores) {
                match z.locate(p[0]) {
                    Some((_, old)) if old.to_bits() == s.to_bits() => {}
                    Some((pos, _)) => z.set_score_at(pos, p[0], s),
                    None => z.insert_new(p[0], s, usize::MAX, usize::MAX),
                }
            }
            z.len()
        }
        Object::Str(_) | Object::Stream(_) => 0,
    }
}

/// Splits concatenated bulks (tests of the chunk forms).
#[cfg(test)]
pub(crate) fn split_bulks(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        assert_eq!(b[0], b'$');
        let end = b.iter().position(|&c| c == b'\r').unwrap();
        let n: usize = std::str::from_utf8(&b[1..end]).unwrap().parse().unwrap();
        out.push(b[end + 2..end + 2 + n].to_vec());
        b = &b[end + 4 + n..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_bulks as bulks;
    use super::*;
    use crate::ds::list::DEFAULT_FILL;
    use crate::ds::set::MemberRef;

    fn big(n: usize) -> Vec<Object> {
        super::super::test_values(n, |i| i as f64 / 3.0)
    }

    /// Every chunk respects maxbulks (whole pairs) and stops at the byte
    /// budget; together they carry every element once (lists in order,
    /// zsets from the highest rank down), and feeding them to
    /// `append_chunk` rebuilds the value.
    #[test]
    fn chunks_cover_every_element_within_bounds() {
        let n = 1000;
        for o in big(n) {
            let v = ValueRef::Obj(&o);
            let p = plan(v, 7);
            let Shipping::Chunked(kind) = p.how else {
                panic!("not chunked")
            };
            assert_eq!(p.hint, n);
            for (maxb, budget) in [(7, 40), (7, usize::MAX), (1, usize::MAX), (200, 1)] {
                let mut c = Chunker::new(kind);
                let mut rebuilt = kind.empty(p.hint);
                let mut seen = std::collections::BTreeSet::new();
                let mut order = Vec::new();
                let mut chunks = 0;
                loop {
                    let mut body = Vec::new();
                    let (nb, fin) = c.next(v, maxb, budget, &mut body);
                    let elems = bulks(&body);
                    assert_eq!(elems.len(), nb);
                    chunks += 1;
                    assert!(chunks < 100_000);
                    if nb > 0 {
                        let per = if kind.pairs() { 2 } else { 1 };
                        assert!(nb <= maxb.max(per), "{kind:?}: {nb} bulks > {maxb}");
                        assert_eq!(nb % per, 0, "whole pairs");
                        let bytes: usize = elems.iter().map(Vec::len).sum();
                        // One element past the budget at most.
                        assert!(bytes < budget.saturating_add(16), "{bytes} bytes");
                        for e in elems.chunks(per) {
                            assert!(seen.insert(e[0].clone()), "{kind:?}: duplicate");
                            order.push(e.to_vec());
                        }
                        let refs: Vec<&[u8]> = elems.iter().map(Vec::as_slice).collect();
                        let scores = if kind == ChunkKind::Zset {
                            zset_scores(&refs).unwrap()
                        } else {
                            Vec::new()
                        };
                        append_chunk(&mut rebuilt, &refs, &scores, DEFAULT_FILL);
                    }
                    if fin {
                        break;
                    }
                }
                assert_eq!(seen.len(), n, "{kind:?}");
                assert_eq!(rebuilt, o, "{kind:?} rebuilt");
                if kind == ChunkKind::List {
                    let want: Vec<Vec<Vec<u8>>> =
                        (0..n).map(|i| vec![format!("m{i}").into_bytes()]).collect();
                    assert_eq!(order, want, "list order");
                }
                if kind == ChunkKind::Zset {
                    let scores: Vec<f64> = order
                        .iter()
                        .map(|e| f64::from_le_bytes(e[1].as_slice().try_into().unwrap()))
                        .collect();
                    assert!(scores.windows(2).all(|w| w[0] > w[1]), "highest rank first");
                }
            }
        }
    }

    /// Exact boundaries: with room enough, every chunk but the last is full.
    #[test]
    fn chunk_boundaries() {
        for o in big(300) {
            let v = ValueRef::Obj(&o);
            let Shipping::Chunked(kind) = plan(v, 7).how else {
                panic!()
            };
            let mut c = Chunker::new(kind);
            let mut sizes = Vec::new();
            loop {
                let mut body = Vec::new();
                let (nb, fin) = c.next(v, 7, usize::MAX, &mut body);
                if nb > 0 {
                    sizes.push(nb);
                }
                if fin {
                    break;
                }
            }
            let (full, total) = if kind.pairs() { (6, 600) } else { (7, 300) };
            let last = sizes.pop().unwrap();
            assert!(sizes.iter().all(|&s| s == full), "{kind:?}: {sizes:?}");
            assert_eq!(sizes.len() * full + last, total);
            assert_eq!(sizes.len() + 1, plan(v, 7).chunks(7).max(sizes.len() + 1));
            // The byte budget: one element per chunk when each fills it.
            let mut c = Chunker::new(kind);
            let mut body = Vec::new();
            let (nb, _) = c.next(v, 7, 1, &mut body);
            assert_eq!(nb, if kind.pairs() { 2 } else { 1 });
            assert_ne!(c.positions(), (0, 0, 0), "{kind:?}: position moved");
        }
        // A value of another type ends the chunker.
        let mut c = Chunker::new(ChunkKind::List);
        let s = Object::Str(b"x".to_vec());
        assert_eq!(c.next(ValueRef::Obj(&s), 7, 9, &mut Vec::new()), (0, true));
    }

    #[test]
    fn plans() {
        let objs = big(10);
        let p = |o: &Object, maxb| plan(ValueRef::Obj(o), maxb);
        // 10 elements: chunked past maxbulks only.
        assert_eq!(p(&objs[0], 10).how, Shipping::Object);
        assert_eq!(p(&objs[0], 9).how, Shipping::Chunked(ChunkKind::List));
        assert_eq!(p(&objs[0], 3).chunks(3), 4);
        assert_eq!(p(&objs[0], 3).messages(3), 4);
        assert_eq!(p(&objs[0], 30).messages(30), 1);
        // A listpack hash or an intset goes whole whatever its size.
        assert_eq!(p(&objs[1], 1).how, Shipping::Object, "listpack hash");
        assert_eq!(p(&objs[2], 1).how, Shipping::Chunked(ChunkKind::Dict));
        assert_eq!(p(&objs[3], 1).how, Shipping::Chunked(ChunkKind::Zset));
        assert_eq!(p(&objs[3], 1).bulks, 20);
        let ints = Object::Set(Set::from_members((0..50).map(MemberRef::Int), 512));
        assert_eq!(p(&ints, 1).how, Shipping::Object, "intset");
        let s = Object::Str(vec![b'x'; 10]);
        assert_eq!(
            p(&s, 1),
            Plan {
                how: Shipping::Str,
                hint: 0,
                bulks: 1
            }
        );
        assert_eq!(plan(ValueRef::Str(b"x"), 1).messages(1), 1);
    }

    #[test]
    fn scores_and_empty_values() {
        let one = 1.5f64.to_le_bytes();
        let nan = f64::NAN.to_le_bytes();
        assert_eq!(zset_scores(&[b"a", &one]), Ok(vec![1.5]));
        assert_eq!(zset_scores(&[b"a", &one, b"b", b"short"]), Err(1));
        assert_eq!(zset_scores(&[b"a", &nan]), Err(0));
        let Object::Hash(h) = ChunkKind::Hash.empty(10) else {
            panic!()
        };
        assert_eq!((h.encoding_name(), h.len()), ("hashtable", 0));
        let Object::Set(s) = ChunkKind::Dict.empty(usize::MAX) else {
            panic!()
        };
        assert_eq!((s.encoding_name(), s.len()), ("hashtable", 0));
        let Object::ZSet(z) = ChunkKind::Zset.empty(3) else {
            panic!()
        };
        assert_eq!((z.encoding_name(), z.len()), ("skiplist", 0));
    }
}
