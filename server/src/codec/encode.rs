//! Stored value → RDB: the plain encodings (type 0 string, 1 list, 2 set,
//! 3 zset with text scores, 4 hash) that both Redis 7.0 and codis-server 3.2
//! load, written through `protocol::rdb::PayloadWriter` by one walk
//! ([`Cursor`]) over the value.
//!
//! * [`value_bytes`]: type byte + body (an RDB file's value);
//! * [`dump_payload`]: the same plus version and CRC-64 (DUMP, SLOTSRESTORE,
//!   the async `object` message, the stream's `RESTORE … ABSTTL`);
//! * [`SlicedPayload`]: that payload produced a slice at a time, resuming
//!   from a cursor, for values too big to serialize under one slot lock
//!   (sync migration): byte for byte what [`dump_payload`] gives.

use std::time::Instant;

use protocol::rdb::file::write_string;
use protocol::rdb::lzf::Compressor;
use protocol::rdb::{PayloadWriter, types, write_len};

use super::cursor::{Cursor, Elem, Flow, Pace};
use crate::db::{Object, ValueRef};

/// The RDB type byte a value is written with.
pub fn rdb_type(v: ValueRef<'_>) -> u8 {
    match v {
        ValueRef::Str(_) | ValueRef::Obj(Object::Str(_)) => types::STRING,
        ValueRef::Obj(Object::List(_)) => types::LIST,
        ValueRef::Obj(Object::Set(_)) => types::SET,
        ValueRef::Obj(Object::ZSet(_)) => types::ZSET,
        ValueRef::Obj(Object::Hash(_)) => types::HASH,
        ValueRef::Obj(Object::Stream(_)) => types::STREAM_LISTPACKS_2,
    }
}

/// Elements of a collection as the codec walks them (a stream: its
/// nodes); bytes of a string.
pub fn len(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Str(s) => s.len(),
        ValueRef::Obj(Object::Str(s)) => s.len(),
        ValueRef::Obj(Object::List(l)) => l.len(),
        ValueRef::Obj(Object::Hash(h)) => h.len(),
        ValueRef::Obj(Object::Set(x)) => x.len(),
        ValueRef::Obj(Object::ZSet(z)) => z.len(),
        ValueRef::Obj(Object::Stream(s)) => s.node_count(),
    }
}

/// Heap bytes of a collection; bytes of a string.
pub fn heap_size(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Str(s) => s.len(),
        ValueRef::Obj(Object::Str(s)) => s.len(),
        ValueRef::Obj(Object::List(l)) => l.heap_size(),
        ValueRef::Obj(Object::Hash(h)) => h.heap_size(),
        ValueRef::Obj(Object::Set(x)) => x.heap_size(),
        ValueRef::Obj(Object::ZSet(z)) => z.heap_size(),
        ValueRef::Obj(Object::Stream(s)) => s.heap_size(),
    }
}

/// A writer with the value's header (type byte and count) written.
fn start(v: ValueRef<'_>) -> PayloadWriter {
    let n = len(v);
    match v {
        ValueRef::Str(_) | ValueRef::Obj(Object::Str(_)) => PayloadWriter::string_header(n),
        ValueRef::Obj(Object::List(_)) => PayloadWriter::list(n),
        ValueRef::Obj(Object::Set(_)) => PayloadWriter::set(n),
        ValueRef::Obj(Object::ZSet(_)) => PayloadWriter::zset(n),
        ValueRef::Obj(Object::Hash(_)) => PayloadWriter::hash(n),
        ValueRef::Obj(Object::Stream(_)) => PayloadWriter::stream(n),
    }
}

/// Writes one element in its type's plain encoding.
fn put(w: &mut PayloadWriter, e: Elem<'_>) {
    match e {
        Elem::Item(b) => w.elem(b),
        Elem::Pair(f, v) => w.pair(f, v),
        Elem::Scored(m, s) => w.zelem(m, s),
        Elem::Bytes(b) => w.raw(b),
        Elem::Node(id, lp) => w.node(&id.to_key(), lp),
    }
}

/// After the last node of a stream: its counters and groups.
fn put_tail(w: &mut PayloadWriter, v: ValueRef<'_>) {
    if let ValueRef::Obj(Object::Stream(s)) = v {
        let mut tail = Vec::new();
        s.write_rdb_tail(&mut tail, None);
        w.stream_tail(&tail);
    }
}

/// The whole value in a writer, ready for `finish` / `finish_value`.
fn write_whole(v: ValueRef<'_>) -> PayloadWriter {
    /// Size hint cap: big values grow the buffer geometrically past it.
    const HINT_CAP: usize = 64 << 20;
    if let Some(s) = super::str_bytes(v) {
        return PayloadWriter::string(s);
    }
    let mut w = start(v);
    w.reserve(heap_size(v).min(HINT_CAP));
    Cursor::new().walk(v, &Pace::WHOLE, |e| {
        put(&mut w, e);
        Flow::Go
    });
    put_tail(&mut w, v);
    w
}

/// The value as an RDB file holds it after its key: type byte and body.
pub fn value_bytes(v: ValueRef<'_>) -> Vec<u8> {
    write_whole(v).finish_value()
}

/// A key and its value as an RDB file written by this server holds them
/// (type byte, key, body, appended to `out`): strings as Redis writes them (small integers
/// int-encoded; LZF past 20 bytes with a compressor, `rdbcompression
/// yes`), lists, sets and hashes in the plain encodings, zsets as ZSET_2
/// (binary scores, as Redis 7.0 writes its skiplist zsets). Every Redis
/// from 2.x loads these and re-encodes them to its compact forms.
pub fn file_value(
    out: &mut Vec<u8>,
    key: &[u8],
    v: ValueRef<'_>,
    mut lzf: Option<&mut Compressor>,
) {
    if let Some(s) = super::str_bytes(v) {
        out.push(types::STRING);
        write_string(out, key, lzf.as_deref_mut());
        write_string(out, s, lzf);
        return;
    }
    let ty = match v {
        ValueRef::Obj(Object::ZSet(_)) => types::ZSET_2,
        _ => rdb_type(v),
    };
    out.push(ty);
    write_string(out, key, lzf.as_deref_mut());
    write_len(out, len(v) as u64);
    Cursor::new().walk(v, &Pace::WHOLE, |e| {
        match e {
            Elem::Item(b) | Elem::Bytes(b) => write_string(out, b, lzf.as_deref_mut()),
            Elem::Pair(f, x) => {
                write_string(out, f, lzf.as_deref_mut());
                write_string(out, x, lzf.as_deref_mut());
            }
            Elem::Scored(m, sc) => {
                write_string(out, m, lzf.as_deref_mut());
                out.extend_from_slice(&sc.to_le_bytes());
            }
            Elem::Node(id, lp) => {
                write_string(out, &id.to_key(), lzf.as_deref_mut());
                write_string(out, lp, lzf.as_deref_mut());
            }
        }
        Flow::Go
    });
    if let ValueRef::Obj(Object::Stream(s)) = v {
        s.write_rdb_tail(out, lzf);
    }
}

/// A full DUMP payload of `v`: the value, RDB version 7 (little-endian), and
/// the CRC-64 of both.
pub fn dump_payload(v: ValueRef<'_>) -> Vec<u8> {
    write_whole(v).finish()
}

/// A payload piece is handed out once this many bytes are buffered.
const PIECE_BYTES: usize = 128 * 1024;
/// Elements (string bytes) written between two checks of the budgets.
const STEP_ELEMS: usize = 128;
const STEP_BYTES: usize = 64 * 1024;
/// How a slice reads the value: ranks and SCAN steps of [`STEP_ELEMS`]
/// elements (HSCAN counts fields and values), strings in [`STEP_BYTES`].
const SLICE_PACE: Pace = Pace {
    ranks: STEP_ELEMS,
    scan_count: STEP_ELEMS,
    scans: 1,
    string_part: STEP_BYTES,
};

/// What one [`SlicedPayload::advance`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Out of time: call again (with the value looked up again).
    More,
    /// Every element written: [`SlicedPayload::finish`].
    Done,
    /// The value's size is not the one announced in the header, or a SCAN
    /// walk met more or fewer elements: the value changed, drop the payload.
    Gone,
}

/// The DUMP payload of a big value, written a slice at a time: the element
/// count goes in the header up front, each [`advance`](Self::advance) writes
/// from where the last one stopped until its deadline, and the payload is
/// handed out in pieces of about 128 KiB with a running CRC-64, so no big
/// buffer is ever copied, grown or checksummed in one go. The pieces
/// concatenated are what [`dump_payload`] gives for the same value.
#[derive(Debug)]
pub struct SlicedPayload {
    w: PayloadWriter,
    cursor: Cursor,
    /// Elements announced in the header (a string: its bytes).
    total: usize,
    /// Elements (string parts: bytes) written so far.
    written: usize,
    pieces: Vec<Vec<u8>>,
}

impl SlicedPayload {
    /// Starts the payload of `v` (header only).
    pub fn new(v: ValueRef<'_>) -> SlicedPayload {
        let mut w = start(v);
        // A piece plus one step of ordinary elements: no regrowth.
        w.reserve(PIECE_BYTES + STEP_BYTES);
        SlicedPayload {
            w,
            cursor: Cursor::new(),
            total: len(v),
            written: 0,
            pieces: Vec::new(),
        }
    }

    /// Hands out a piece when enough is buffered; true once past `deadline`.
    fn checkpoint(w: &mut PayloadWriter, pieces: &mut Vec<Vec<u8>>, deadline: Instant) -> bool {
        if w.len() >= PIECE_BYTES {
            pieces.push(w.take_piece());
        }
        Instant::now() >= deadline
    }

    /// Writes elements of `v` (the same value as before, looked up again)
    /// until they are all written or `deadline` passed (one step at least).
    pub fn advance(&mut self, v: ValueRef<'_>, deadline: Instant) -> Progress {
        if len(v) != self.total {
            return Progress::Gone;
        }
        let total = self.total;
        let is_str = rdb_type(v) == types::STRING;
        loop {
            let (w, pieces, written) = (&mut self.w, &mut self.pieces, &mut self.written);
            let mut steps = 0usize;
            let mut late = false;
            let finished = self.cursor.walk(v, &SLICE_PACE, |e| {
                match e {
                    Elem::Bytes(b) => {
                        *written += b.len();
                        w.raw(b);
                    }
                    // More than announced: only written up to the count
                    // (the payload is dropped as Gone anyway).
                    e if *written < total => {
                        *written += 1;
                        put(w, e);
                    }
                    _ => *written += 1,
                }
                steps += 1;
                if is_str || steps.is_multiple_of(STEP_ELEMS) {
                    late = Self::checkpoint(w, pieces, deadline);
                }
                if late { Flow::Stop } else { Flow::Go }
            });
            if finished || self.written > total {
                return if self.written == total {
                    put_tail(&mut self.w, v);
                    Progress::Done
                } else {
                    Progress::Gone
                };
            }
            if late || Self::checkpoint(&mut self.w, &mut self.pieces, deadline) {
                return Progress::More;
            }
        }
    }

    /// The pieces handed out so far (for a payload given up: to be freed).
    pub fn into_pieces(self) -> Vec<Vec<u8>> {
        self.pieces
    }

    /// The complete payload in pieces; the last one carries the version and
    /// the CRC-64.
    pub fn finish(self) -> Vec<Vec<u8>> {
        let mut pieces = self.pieces;
        pieces.push(self.w.finish());
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ds::set::MemberRef;
    use crate::ds::{Hash, List, Set, ZSet, hash::Limits, list::DEFAULT_FILL};
    use std::time::Duration;

    #[test]
    fn string_payload_matches_redis() {
        let p = dump_payload(ValueRef::Str(b"hello"));
        assert_eq!(
            p,
            [
                0x00, 0x05, b'h', b'e', b'l', b'l', b'o', 0x07, 0x00, 0x9c, 0x40, 0x0a, 0x85, 0x6d,
                0xfe, 0xf5, 0x10
            ]
        );
        assert_eq!(value_bytes(ValueRef::Str(b"hello")), p[..7]);
        assert_eq!(
            dump_payload(ValueRef::Obj(&Object::Str(b"hello".to_vec()))),
            p
        );
    }

    /// Small values get Redis 7.0's compact encodings, big ones the plain
    /// ones; a list is always a quicklist 2 of listpack nodes.
    #[test]
    fn compact_file_encodings() {
        let th = crate::codec::Thresholds::from_config(&crate::config::Config::default());
        let ty = |v: &Object| {
            let mut out = Vec::new();
            file_value_compact(&mut out, b"k", ValueRef::Obj(v), None, &th);
            out[0]
        };
        let small = super::super::test_values(10, |i| i as f64 / 2.0);
        let tys: Vec<u8> = small.iter().map(ty).collect();
        assert_eq!(
            tys,
            [
                types::LIST_QUICKLIST_2,
                types::HASH_LISTPACK,
                types::SET,
                types::ZSET_LISTPACK
            ]
        );
        let big = super::super::test_values(1000, |i| i as f64);
        let tys: Vec<u8> = big.iter().map(ty).collect();
        assert_eq!(
            tys,
            [
                types::LIST_QUICKLIST_2,
                types::HASH,
                types::SET,
                types::ZSET_2
            ]
        );
        let mut ints = Set::new();
        for i in [5i64, -3, 70000] {
            ints.insert(i.to_string().as_bytes(), 512);
        }
        let mut out = Vec::new();
        file_value_compact(&mut out, b"k", ValueRef::Obj(&Object::Set(ints)), None, &th);
        let mut want = vec![types::SET_INTSET];
        write_string(&mut want, b"k", None);
        write_string(
            &mut want,
            &protocol::rdb::listpack::intset(&mut vec![5, -3, 70000]),
            None,
        );
        assert_eq!(out, want);
    }

    /// A record written in slices is byte for byte the whole one, in both
    /// forms (RDB, commands), for every type.
    #[test]
    fn sliced_file_records_equal_whole_ones() {
        for v in super::super::test_values(40_000, |i| i as f64 / 7.0) {
            let v = ValueRef::Obj(&v);
            for commands in [false, true] {
                let mut whole = Vec::new();
                if commands {
                    aof_commands(&mut whole, b"key", v, Some(1234));
                } else {
                    protocol::rdb::file::write_expire_ms(&mut whole, 1234);
                    file_value(&mut whole, b"key", v, None);
                }
                let mut sliced = Vec::new();
                let mut s = FileSlicer::default();
                let mut steps = 0;
                while !s.step(&mut sliced, b"key", v, Some(1234), commands, None, false) {
                    steps += 1;
                }
                assert!(steps > 3, "not sliced");
                assert_eq!(sliced, whole, "commands={commands}");
            }
        }
        // A string: commands byte for byte; RDB as a plain string.
        let big = vec![b'x'; 600_000];
        let mut whole = Vec::new();
        aof_commands(&mut whole, b"k", ValueRef::Str(&big), None);
        let mut sliced = Vec::new();
        let mut s = FileSlicer::default();
        while !s.step(
            &mut sliced,
            b"k",
            ValueRef::Str(&big),
            None,
            true,
            None,
            false,
        ) {}
        assert_eq!(sliced, whole);
        let mut rdb = Vec::new();
        let mut s = FileSlicer::default();
        while !s.step(
            &mut rdb,
            b"k",
            ValueRef::Str(&big),
            None,
            false,
            None,
            false,
        ) {}
        let mut want = vec![types::STRING];
        write_string(&mut want, b"k", None);
        write_len(&mut want, big.len() as u64);
        want.extend_from_slice(&big);
        assert_eq!(rdb, want);
    }

    /// Each type's exact plain encoding.
    #[test]
    fn plain_encodings() {
        let l = List::from_iter([&b"a"[..], b""], DEFAULT_FILL);
        assert_eq!(
            value_bytes(ValueRef::Obj(&Object::List(l))),
            [1, 2, 1, b'a', 0]
        );
        let mut h = Hash::new();
        h.set(b"f", b"v", &Limits::DEFAULT);
        assert_eq!(
            value_bytes(ValueRef::Obj(&Object::Hash(h))),
            [4, 1, 1, b'f', 1, b'v']
        );
        let s = Set::from_members([MemberRef::Int(12), MemberRef::Int(-1)], 512);
        assert_eq!(
            value_bytes(ValueRef::Obj(&Object::Set(s))),
            [2, 2, 2, b'-', b'1', 2, b'1', b'2']
        );
        let z = ZSet::from_sorted(
            &[(b"m".to_vec(), 1.5), (b"n".to_vec(), f64::INFINITY)],
            128,
            64,
        );
        assert_eq!(
            value_bytes(ValueRef::Obj(&Object::ZSet(z))),
            [3, 2, 1, b'm', 3, b'1', b'.', b'5', 1, b'n', 254]
        );
        for o in [Object::Str(vec![]), Object::List(List::new())] {
            let v = ValueRef::Obj(&o);
            assert_eq!(rdb_type(v), value_bytes(v)[0]);
        }
    }

    fn sliced(v: ValueRef<'_>, tight: bool) -> (Vec<u8>, usize, usize) {
        let mut s = SlicedPayload::new(v);
        let mut slices = 0;
        loop {
            slices += 1;
            let deadline = if tight {
                Instant::now()
            } else {
                Instant::now() + Duration::from_secs(3600)
            };
            match s.advance(v, deadline) {
                Progress::More => assert!(slices < 1_000_000),
                Progress::Done => break,
                Progress::Gone => panic!("value reported gone"),
            }
        }
        let pieces = s.finish();
        (pieces.concat(), slices, pieces.len())
    }

    /// Sliced however tightly, the pieces add up to the DUMP payload, for
    /// every type (hashes and sets too: SCAN order is iteration order).
    #[test]
    fn sliced_payload_is_the_dump_payload() {
        let n = 50_000;
        let (mut l, mut z, mut h, mut st) =
            (List::new(), ZSet::new_full(), Hash::new(), Set::new());
        for i in 0..n {
            let m = format!("member:{i}:{}", "x".repeat(i % 13));
            l.push_back(m.as_bytes(), DEFAULT_FILL);
            z.insert_new(m.as_bytes(), (i % 977) as f64 / 7.0, 128, 64);
            h.set(
                m.as_bytes(),
                format!("value-{i}").as_bytes(),
                &Limits::DEFAULT,
            );
            st.insert(m.as_bytes(), 512);
        }
        let s: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let objs = [
            Object::List(l),
            Object::ZSet(z),
            Object::Hash(h),
            Object::Set(st),
            Object::Str(s.clone()),
        ];
        for o in &objs {
            let v = ValueRef::Obj(o);
            let want = dump_payload(v);
            let (got, slices, pieces) = sliced(v, true);
            assert!(got == want, "tight slicing differs from DUMP");
            assert!(
                slices > 10 && pieces > 1,
                "{slices} slices, {pieces} pieces"
            );
            let (got, slices, pieces) = sliced(v, false);
            assert!(got == want, "one-slice serialization differs from DUMP");
            assert_eq!(slices, 1);
            assert!(pieces > 1);
        }
        let (got, _, _) = sliced(ValueRef::Str(&s), true);
        assert!(got == dump_payload(ValueRef::Str(&s)));
        let small = Object::List(List::from_iter([&b"x"[..]], DEFAULT_FILL));
        assert_eq!(
            sliced(ValueRef::Obj(&small), true).0,
            dump_payload(ValueRef::Obj(&small))
        );
    }

    /// A value whose size changed since the header was written is Gone.
    #[test]
    fn changed_value_is_gone() {
        let mut st = Set::new();
        for i in 0..5000 {
            st.insert(format!("m{i}").as_bytes(), 512);
        }
        let o = Object::Set(st.clone());
        let mut s = SlicedPayload::new(ValueRef::Obj(&o));
        assert_eq!(s.advance(ValueRef::Obj(&o), Instant::now()), Progress::More);
        st.insert(b"extra", 512);
        let other = Object::Set(st);
        assert_eq!(
            s.advance(ValueRef::Obj(&other), Instant::now()),
            Progress::Gone
        );
        let l = Object::List(List::from_iter([&b"x"[..]], DEFAULT_FILL));
        assert_eq!(
            SlicedPayload::new(ValueRef::Obj(&l)).advance(ValueRef::Obj(&o), Instant::now()),
            Progress::Gone
        );
    }
}

/// [`file_value`] in the compact encodings Redis 7.0 writes where the
/// value qualifies under `th` (the `*-max-listpack-*` / intset limits):
/// a list as QUICKLIST_2 of listpack nodes (`list-max-listpack-size`), a
/// small hash or zset as one listpack (HASH_LISTPACK, ZSET_LISTPACK in
/// score order), a small all-integer set as an intset. Others as
/// [`file_value`].
pub fn file_value_compact(
    out: &mut Vec<u8>,
    key: &[u8],
    v: ValueRef<'_>,
    mut lzf: Option<&mut Compressor>,
    th: &super::Thresholds,
) {
    use protocol::number::parse_i64;
    use protocol::rdb::listpack::{ListpackWriter, intset};
    let n = len(v);
    let blob: Option<(u8, Vec<u8>)> = match v {
        ValueRef::Obj(Object::List(_)) => {
            // Node limits as Redis' quicklist: a byte size for a negative
            // fill, an entry count (within 8 KiB) for a positive one.
            let (max_bytes, max_count) = if th.fill < 0 {
                (4096usize << ((-th.fill).clamp(1, 5) - 1), usize::MAX)
            } else {
                (8192, th.fill.max(1) as usize)
            };
            let mut nodes: Vec<Vec<u8>> = Vec::new();
            let mut cur = ListpackWriter::new();
            Cursor::new().walk(v, &Pace::WHOLE, |e| {
                if let Elem::Item(b) = e {
                    if !cur.is_empty()
                        && (cur.count() >= max_count || cur.len() + b.len() + 11 > max_bytes)
                    {
                        nodes.push(std::mem::take(&mut cur).finish());
                    }
                    cur.push(b);
                }
                Flow::Go
            });
            if !cur.is_empty() {
                nodes.push(cur.finish());
            }
            out.push(types::LIST_QUICKLIST_2);
            write_string(out, key, lzf.as_deref_mut());
            write_len(out, nodes.len() as u64);
            for node in &nodes {
                // Container 2: a packed (listpack) node.
                write_len(out, 2);
                write_string(out, node, lzf.as_deref_mut());
            }
            return;
        }
        ValueRef::Obj(Object::Set(_)) if n <= th.intset => {
            let mut ints = Vec::with_capacity(n);
            let mut all = true;
            Cursor::new().walk(v, &Pace::WHOLE, |e| {
                match e {
                    Elem::Item(b) => match parse_i64(b) {
                        Some(i) => ints.push(i),
                        None => all = false,
                    },
                    _ => all = false,
                }
                if all { Flow::Go } else { Flow::Stop }
            });
            all.then(|| (types::SET_INTSET, intset(&mut ints)))
        }
        ValueRef::Obj(Object::Hash(_)) if n <= th.hash.max_entries => {
            let mut lp = ListpackWriter::new();
            let mut fits = true;
            Cursor::new().walk(v, &Pace::WHOLE, |e| {
                if let Elem::Pair(f, x) = e {
                    if f.len() > th.hash.max_value || x.len() > th.hash.max_value {
                        fits = false;
                        return Flow::Stop;
                    }
                    lp.push(f);
                    lp.push(x);
                }
                Flow::Go
            });
            fits.then(|| (types::HASH_LISTPACK, lp.finish()))
        }
        ValueRef::Obj(Object::ZSet(_)) if n <= th.zset_entries => {
            let mut lp = ListpackWriter::new();
            let mut fits = true;
            Cursor::new().walk(v, &Pace::WHOLE, |e| {
                if let Elem::Scored(m, sc) = e {
                    if m.len() > th.zset_value {
                        fits = false;
                        return Flow::Stop;
                    }
                    lp.push(m);
                    // Integral scores as integers (Redis' d2string prints
                    // them so, and the listpack stores them as such); "-0"
                    // keeps its sign.
                    if sc.fract() == 0.0
                        && sc.abs() < 9.0e15
                        && !(sc == 0.0 && sc.is_sign_negative())
                    {
                        lp.push_int(sc as i64);
                    } else {
                        lp.push(score_text(sc).as_bytes());
                    }
                }
                Flow::Go
            });
            fits.then(|| (types::ZSET_LISTPACK, lp.finish()))
        }
        _ => None,
    };
    match blob {
        Some((ty, b)) => {
            out.push(ty);
            write_string(out, key, lzf.as_deref_mut());
            write_string(out, &b, lzf);
        }
        None => file_value(out, key, v, lzf),
    }
}

/// Elements per command when a value is written as commands (Redis'
/// `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_CMD: usize = 64;

/// A key and its value as the commands that rebuild it (an AOF base
/// without the RDB preamble, Redis' `rewriteAppendOnlyFileRio`): SET,
/// RPUSH / SADD / ZADD / HMSET of at most 64 elements each, then
/// PEXPIREAT for a key with an expiry.
pub fn aof_commands(out: &mut Vec<u8>, key: &[u8], v: ValueRef<'_>, expire_ms: Option<u64>) {
    FileSlicer::default().step(out, key, v, expire_ms, true, None, true);
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// A score ZADD reads back exactly (Rust's shortest round-trip form).
fn score_text(sc: f64) -> String {
    if sc.is_infinite() {
        return if sc > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    format!("{sc}")
}

/// A key's record in a snapshot file written a slice at a time (a big
/// value deferred by the snapshot: the walker writes a slice per slot
/// lock): the RDB record [`file_value`] writes (strings as one plain
/// string, never LZF) or the commands [`aof_commands`] writes. The value
/// must not change between slices (the snapshot finishes a deferred key
/// before anything changes it).
#[derive(Debug, Default)]
pub struct FileSlicer {
    cursor: Cursor,
    /// Elements written so far.
    done: usize,
    started: bool,
}

/// Bytes after which a slice ends.
const SLICE_BYTES: usize = 16 * 1024;

/// How a slice reads a value: about 64 KiB of elements per slice.
const FILE_SLICE_PACE: Pace = Pace {
    ranks: 512,
    scan_count: 256,
    scans: 4,
    string_part: 256 * 1024,
};

impl FileSlicer {
    /// Appends the next slice (everything with `whole`) of the record to
    /// `out`; true once the record is complete.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        out: &mut Vec<u8>,
        key: &[u8],
        v: ValueRef<'_>,
        expire_ms: Option<u64>,
        commands: bool,
        mut lzf: Option<&mut Compressor>,
        whole: bool,
    ) -> bool {
        let total = len(v);
        let string = super::str_bytes(v).is_some();
        if !self.started {
            self.started = true;
            if commands {
                if string {
                    let mut ib = itoa::Buffer::new();
                    out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
                    bulk(out, key);
                    out.push(b'$');
                    out.extend_from_slice(ib.format(total).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            } else {
                if let Some(at) = expire_ms {
                    protocol::rdb::file::write_expire_ms(out, at);
                }
                out.push(match v {
                    ValueRef::Obj(Object::ZSet(_)) => types::ZSET_2,
                    _ => rdb_type(v),
                });
                write_string(out, key, lzf.as_deref_mut());
                write_len(out, total as u64);
            }
        }
        if commands && let ValueRef::Obj(Object::Stream(st)) = v {
            stream_commands(out, key, st);
            if let Some(at) = expire_ms {
                let mut ib = itoa::Buffer::new();
                crate::propagate::encode(
                    out,
                    &[b"PEXPIREAT".as_slice(), key, ib.format(at).as_bytes()],
                );
            }
            return true;
        }
        let pace = if whole { Pace::WHOLE } else { FILE_SLICE_PACE };
        let (cmd, per): (&[u8], usize) = match v {
            ValueRef::Obj(Object::List(_)) => (b"RPUSH", 1),
            ValueRef::Obj(Object::Set(_)) => (b"SADD", 1),
            ValueRef::Obj(Object::ZSet(_)) => (b"ZADD", 2),
            _ => (b"HMSET", 2),
        };
        let mut ib = itoa::Buffer::new();
        let done = &mut self.done;
        let budget = out.len() + SLICE_BYTES;
        let finished = self.cursor.walk(v, &pace, |e| {
            if commands && !string && (*done).is_multiple_of(ITEMS_PER_CMD) {
                let n = (total - *done).min(ITEMS_PER_CMD);
                out.push(b'*');
                out.extend_from_slice(ib.format(2 + n * per).as_bytes());
                out.extend_from_slice(b"\r\n");
                bulk(out, cmd);
                bulk(out, key);
            }
            match e {
                Elem::Bytes(b) => out.extend_from_slice(b),
                Elem::Item(b) if commands => bulk(out, b),
                Elem::Item(b) => write_string(out, b, lzf.as_deref_mut()),
                Elem::Pair(f, x) if commands => {
                    bulk(out, f);
                    bulk(out, x);
                }
                Elem::Pair(f, x) => {
                    write_string(out, f, lzf.as_deref_mut());
                    write_string(out, x, lzf.as_deref_mut());
                }
                Elem::Scored(m, sc) if commands => {
                    bulk(out, score_text(sc).as_bytes());
                    bulk(out, m);
                }
                Elem::Scored(m, sc) => {
                    write_string(out, m, lzf.as_deref_mut());
                    out.extend_from_slice(&sc.to_le_bytes());
                }
                Elem::Node(id, lp) => {
                    write_string(out, &id.to_key(), lzf.as_deref_mut());
                    write_string(out, lp, lzf.as_deref_mut());
                }
            }
            *done += 1;
            if !whole && out.len() >= budget {
                Flow::Stop
            } else {
                Flow::Go
            }
        });
        if finished && let ValueRef::Obj(Object::Stream(st)) = v {
            st.write_rdb_tail(out, lzf);
        }
        if finished && commands {
            if string {
                out.extend_from_slice(b"\r\n");
            }
            if let Some(at) = expire_ms {
                crate::propagate::encode(
                    out,
                    &[b"PEXPIREAT".as_slice(), key, ib.format(at).as_bytes()],
                );
            }
        }
        finished
    }
}

/// A stream as the commands that rebuild it (after Redis'
/// `rewriteStreamObject`): one XADD per entry, deleted ones included (an
/// empty stream: Redis' `XADD … MAXLEN 0 0-1 x y`), XSETID with the
/// counters, then per group XGROUP CREATE with ENTRIESREAD, an XCLAIM …
/// JUSTID FORCE per pending entry and XGROUP CREATECONSUMER for consumers
/// without any, then the deletions (`stream_chunk::deletions`: XDEL, or
/// XTRIM for a stream that never had one) and XSETID again. Unlike
/// Redis' rewrite, entries deleted while pending keep their PEL entries
/// (XCLAIM FORCE takes only entries in the stream, so they are deleted
/// after it) and the nodes get their deleted entries back; the consumers'
/// seen times are the replay's (no command sets them).
fn stream_commands(out: &mut Vec<u8>, key: &[u8], st: &crate::ds::stream::Stream) {
    use crate::ds::stream::{StreamId, node_entries};
    use crate::propagate::encode;
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut emit = |args: &mut Vec<Vec<u8>>| {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        encode(out, &refs);
        args.clear();
    };
    let text = |id: StreamId| id.to_text().into_bytes();
    let mut deleted = Vec::new();
    for (mid, lp) in st.nodes() {
        for e in node_entries(mid, lp) {
            args.extend([b"XADD".to_vec(), key.to_vec(), text(e.id)]);
            for (f, v) in &e.fields {
                args.push(f.to_vec());
                args.push(v.to_vec());
            }
            emit(&mut args);
            if e.deleted {
                deleted.push(e.id);
            }
        }
    }
    if st.node_count() == 0 {
        args.extend([
            b"XADD".to_vec(),
            key.to_vec(),
            b"MAXLEN".to_vec(),
            b"0".to_vec(),
        ]);
        args.extend([text(StreamId::new(0, 1)), b"x".to_vec(), b"y".to_vec()]);
        emit(&mut args);
    }
    // (Until the XDELs the stream holds its deleted entries too: a stream
    // read from a Redis 6 file counts only its live ones as added.)
    let all = st.length + deleted.len() as u64;
    let xsetid = |args: &mut Vec<Vec<u8>>, added: u64| {
        args.extend([b"XSETID".to_vec(), key.to_vec(), text(st.last_id)]);
        args.extend([b"ENTRIESADDED".to_vec(), added.to_string().into_bytes()]);
        args.extend([b"MAXDELETEDID".to_vec(), text(st.max_deleted)]);
    };
    xsetid(&mut args, st.entries_added.max(all));
    emit(&mut args);
    for (name, g) in &st.groups {
        args.extend([
            b"XGROUP".to_vec(),
            b"CREATE".to_vec(),
            key.to_vec(),
            name.clone(),
        ]);
        args.extend([text(g.last_id), b"ENTRIESREAD".to_vec()]);
        args.push(g.entries_read.to_string().into_bytes());
        emit(&mut args);
        for (id, n) in &g.pel {
            args.extend([b"XCLAIM".to_vec(), key.to_vec(), name.clone()]);
            args.extend([n.consumer.clone(), b"0".to_vec(), text(*id)]);
            args.extend([b"TIME".to_vec(), n.delivery_time.to_string().into_bytes()]);
            args.extend([
                b"RETRYCOUNT".to_vec(),
                n.delivery_count.to_string().into_bytes(),
            ]);
            args.extend([b"JUSTID".to_vec(), b"FORCE".to_vec()]);
            emit(&mut args);
        }
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                args.extend([b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec()]);
                args.extend([name.clone(), cname.clone()]);
                emit(&mut args);
            }
        }
    }
    for mut cmd in super::stream_chunk::deletions(key, st, &deleted) {
        emit(&mut cmd);
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    /// A stream's commands form (AOF rewrite without the preamble) replayed
    /// rebuilds it DUMP for DUMP (seen times are the replay's clock, the
    /// same here): deleted entries, pending entries of deleted entries, a
    /// trimmed node (with and without an XDEL before), an empty stream with
    /// a group and one never written.
    #[test]
    fn stream_commands_rebuild_the_stream() {
        let mut src = crate::testkit::Harness::new();
        for line in [
            "XADD s 1-1 a 1 b 2",
            "XADD s 1-2 a 3 b 4",
            "XADD s 2-0 c 5",
            "XADD s 3-0 a 6 b 7",
            "XADD s 4-0 a 8 b 9",
            "XGROUP CREATE s g1 0",
            "XGROUP CREATE s 123 $ ENTRIESREAD 2",
            "XREADGROUP GROUP g1 alice COUNT 3 STREAMS s >",
            "XREADGROUP GROUP g1 bob COUNT 1 STREAMS s >",
            "XGROUP CREATECONSUMER s g1 carol",
            "XDEL s 1-2 3-0",
            "XTRIM s MAXLEN 2",
            "XGROUP CREATE e g $ MKSTREAM",
            "XADD gone 5-5 f v",
            "XDEL gone 5-5",
            "XADD t 1-0 f 1",
            "XADD t 2-0 f 2",
            "XADD t 3-0 f 3",
            "XGROUP CREATE t g 0",
            "XREADGROUP GROUP g c COUNT 1 STREAMS t >",
            "XTRIM t MAXLEN 1",
        ] {
            let out = src.run(line);
            assert!(!out.starts_with('-'), "{line}: {out}");
        }
        let mut rep = crate::testkit::Harness::new();
        for key in ["s", "e", "gone", "t"] {
            let db = src.srv.ks.db(0).unwrap();
            let mut cmds = Vec::new();
            {
                use crate::db::KeyAccess;
                let mut r = src.srv.ks.lock_key(db, key.as_bytes());
                let e = r.get(key.as_bytes(), 0).unwrap();
                aof_commands(&mut cmds, key.as_bytes(), e.value(), None);
            }
            // The commands, split (multibulks of bulks only).
            let mut at = 0;
            let num = |at: &mut usize| -> usize {
                let end = *at + cmds[*at..].windows(2).position(|w| w == b"\r\n").unwrap();
                let n = std::str::from_utf8(&cmds[*at + 1..end])
                    .unwrap()
                    .parse()
                    .unwrap();
                *at = end + 2;
                n
            };
            while at < cmds.len() {
                let argc = num(&mut at);
                let mut argv = Vec::with_capacity(argc);
                for _ in 0..argc {
                    let len = num(&mut at);
                    argv.push(cmds[at..at + len].to_vec());
                    at += len + 2;
                }
                let refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
                let out = rep.run_args(&refs);
                assert!(!out.starts_with(b"-"), "{}", String::from_utf8_lossy(&out));
            }
            for cmd in ["DUMP", "XINFO STREAM"] {
                let line = format!("{cmd} {key}");
                assert_eq!(rep.run(&line), src.run(&line), "{line}");
            }
            let full = format!("XINFO STREAM {key} FULL");
            assert_eq!(rep.run(&full), src.run(&full), "{full}");
        }
    }
}
