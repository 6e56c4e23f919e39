//! Stream commands (Redis 7.0.15's t_stream.c and the stream half of
//! blocked.c, replies and errors byte for byte): XADD, XRANGE, XREVRANGE,
//! XLEN, XDEL, XTRIM, XSETID, XREAD and XREADGROUP (with BLOCK), XGROUP,
//! XACK, XPENDING, XCLAIM, XAUTOCLAIM and XINFO.
//!
//! The data structure is `ds::stream` (listpack nodes keyed by master ID,
//! consumer groups with their PELs). This module owns argument parsing, ID
//! rules, reply shapes and what each command propagates: XADD's generated
//! ID and exact trim, XREADGROUP / XCLAIM / XAUTOCLAIM as `XCLAIM … JUSTID
//! FORCE LASTID` and `XGROUP SETID … ENTRIESREAD` lines (Redis'
//! `streamPropagateXCLAIM` / `streamPropagateGroupID`).
//!
//! Blocking (XREAD / XREADGROUP BLOCK) goes through `block.rs`: the command
//! runs again when a key it waits on changes. Before blocking, `$` is
//! replaced by the stream's last ID and a missing COUNT by 1000, so the
//! re-run asks what the first run would have waited for. A woken XREADGROUP
//! whose key or group went away answers Redis' `UNBLOCKED` / `NOGROUP`
//! texts.

use std::collections::btree_map::Entry as MapEntry;
use std::ops::Bound::{Excluded, Unbounded};

use protocol::command::CmdId;
use protocol::number::parse_i64;
use protocol::rdb::listpack::Elem;
use protocol::resp::Reply;

use crate::block::Nil;
use crate::cmd::util::{c_is as copt, c_str};
use crate::config::notify::STREAM;
use crate::db::{Entry, KeyAccess, Object};
use crate::ds::stream::{
    AppendError, Consumer, Group, INVALID_ENTRIES_READ, Nack, NodeLimits, Stream, StreamId, Trim,
};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Xadd => xadd,
        CmdId::Xrange => |c, a| xrange(c, a, false),
        CmdId::Xrevrange => |c, a| xrange(c, a, true),
        CmdId::Xlen => xlen,
        CmdId::Xdel => xdel,
        CmdId::Xtrim => xtrim,
        CmdId::Xsetid => xsetid,
        CmdId::Xread => |c, a| xread(c, a, false),
        CmdId::Xreadgroup => |c, a| xread(c, a, true),
        CmdId::Xgroup => xgroup,
        CmdId::Xack => xack,
        CmdId::Xpending => xpending,
        CmdId::Xclaim => xclaim,
        CmdId::Xautoclaim => xautoclaim,
        CmdId::Xinfo => xinfo,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Values, IDs and reply pieces
// ---------------------------------------------------------------------------

fn stream_ref(e: &Entry) -> Result<&Stream, CmdError> {
    match e.value() {
        crate::db::ValueRef::Obj(Object::Stream(s)) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

fn stream_mut(e: &mut Entry) -> Result<&mut Stream, CmdError> {
    match e.obj_mut() {
        Some(Object::Stream(s)) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

/// Looks `key` up for a write, touching its access clock: its stream,
/// None when missing, WRONGTYPE for another type.
fn write_stream<'s>(
    slot: &'s mut impl KeyAccess,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s mut Stream>, CmdError> {
    match slot.get(key, now) {
        None => Ok(None),
        Some(e) => {
            e.touch(lru);
            stream_mut(e).map(Some)
        }
    }
}

/// A key holding an empty stream (XADD and XGROUP CREATE MKSTREAM).
fn new_stream(key: &[u8], lru: u32) -> Entry {
    Entry::new_obj(key, Object::Stream(Box::default()), None, lru)
}

fn node_limits(ctx: &Ctx) -> NodeLimits {
    let c = ctx.srv.config();
    NodeLimits {
        max_bytes: usize::try_from(c.stream_node_max_bytes).unwrap_or(usize::MAX),
        max_entries: usize::try_from(c.stream_node_max_entries).unwrap_or(usize::MAX),
    }
}

/// Redis' `string2ull`: a strict decimal (negative refused), else what C's
/// `strtoull` takes whole: leading blanks, a sign (`-` wraps), digits, no
/// overflow.
fn parse_ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = parse_i64(s) {
        return (v >= 0).then_some(v as u64);
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Redis' `streamGenericParseIDOrReply`: `ms-seq`, `ms` (seq =
/// `missing_seq`), `-` / `+` unless `strict`, and with `seq_given` the
/// `ms-*` form (sequence to generate: `seq_given` set false).
fn parse_id(
    a: &[u8],
    missing_seq: u64,
    strict: bool,
    seq_given: Option<&mut bool>,
) -> Result<StreamId, CmdError> {
    const BAD: CmdError = CmdError::Static(errors::STREAM_BAD_ID);
    if a.len() > 127 {
        return Err(BAD);
    }
    // C string semantics: the argument ends at its first NUL.
    let a = c_str(a);
    if strict && (a == b"-" || a == b"+") {
        return Err(BAD);
    }
    let mut given = true;
    let id = if a == b"-" {
        StreamId::MIN
    } else if a == b"+" {
        StreamId::MAX
    } else {
        match a.iter().position(|&c| c == b'-') {
            Some(dash) => {
                let ms = parse_ull(&a[..dash]).ok_or(BAD)?;
                let rest = &a[dash + 1..];
                let seq = if seq_given.is_some() && rest == b"*" {
                    given = false;
                    0
                } else {
                    parse_ull(rest).ok_or(BAD)?
                };
                StreamId::new(ms, seq)
            }
            None => StreamId::new(parse_ull(a).ok_or(BAD)?, missing_seq),
        }
    };
    if let Some(g) = seq_given {
        *g = given;
    }
    Ok(id)
}

/// A range bound: `(id` is exclusive (and strict), anything else as
/// [`parse_id`].
fn parse_bound(a: &[u8], missing_seq: u64) -> Result<(StreamId, bool), CmdError> {
    if a.len() > 1 && a[0] == b'(' {
        Ok((parse_id(&a[1..], missing_seq, true, None)?, true))
    } else {
        Ok((parse_id(a, missing_seq, false, None)?, false))
    }
}

/// `start end` of a range (XRANGE, XPENDING), exclusive bounds moved inward.
fn parse_range(start: &[u8], end: &[u8]) -> Result<(StreamId, StreamId), CmdError> {
    let (mut s, sx) = parse_bound(start, 0)?;
    if sx {
        s = s.next().ok_or(CmdError::Static(errors::RANGE_BAD_START))?;
    }
    let (mut e, ex) = parse_bound(end, u64::MAX)?;
    if ex {
        e = e.prev().ok_or(CmdError::Static(errors::RANGE_BAD_END))?;
    }
    Ok((s, e))
}

/// An ID as `ms-seq` text (stack buffer).
struct IdText {
    buf: [u8; 41],
    len: usize,
}

impl IdText {
    fn new(id: StreamId) -> IdText {
        let mut buf = [0u8; 41];
        let mut a = itoa::Buffer::new();
        let ms = a.format(id.ms).as_bytes();
        buf[..ms.len()].copy_from_slice(ms);
        let mut len = ms.len();
        buf[len] = b'-';
        len += 1;
        let seq = a.format(id.seq).as_bytes();
        buf[len..len + seq.len()].copy_from_slice(seq);
        len += seq.len();
        IdText { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn id_reply(out: &mut Reply, id: StreamId) {
    out.bulk(IdText::new(id).as_bytes());
}

fn elem_reply(out: &mut Reply, e: &Elem<'_>) {
    match e {
        Elem::Str(s) => out.bulk(s),
        Elem::Int(i) => out.bulk(itoa::Buffer::new().format(*i).as_bytes()),
    }
}

/// One entry: `[id, [field, value, ...]]`.
fn entry_reply(out: &mut Reply, id: StreamId, fields: &[(Elem<'_>, Elem<'_>)]) {
    out.array(2);
    id_reply(out, id);
    out.array(fields.len() * 2);
    for (f, v) in fields {
        elem_reply(out, f);
        elem_reply(out, v);
    }
}

/// Puts an aggregate header of `n` elements (a map of `n` pairs with
/// `map`) at byte `at` of the reply, before what was written since.
fn header_at(out: &mut Reply, at: usize, n: usize, map: bool) {
    let mut h = Reply {
        buf: Vec::new(),
        resp3: out.resp3,
    };
    if map {
        h.map(n);
    } else {
        h.array(n);
    }
    out.buf.splice(at..at, h.buf);
}

/// Writes the entries in `[start, end]` (at most `count`, 0 = all) without
/// an array header; returns how many.
fn entries(
    out: &mut Reply,
    s: &Stream,
    start: StreamId,
    end: StreamId,
    count: usize,
    rev: bool,
) -> usize {
    let mut n = 0;
    s.range(start, end, rev, |id, fields| {
        entry_reply(out, id, fields);
        n += 1;
        count == 0 || n < count
    });
    n
}

/// The entries in `[start, end]` as an array.
fn range_reply(
    out: &mut Reply,
    s: &Stream,
    start: StreamId,
    end: StreamId,
    count: usize,
    rev: bool,
) {
    let at = out.buf.len();
    let n = entries(out, s, start, end, count, rev);
    header_at(out, at, n, false);
}

/// The one entry `id` as `[id, fields]`; false when there is none.
fn one_entry(out: &mut Reply, s: &Stream, id: StreamId) -> bool {
    entries(out, s, id, id, 1, false) == 1
}

fn int_text(v: i64) -> Vec<u8> {
    itoa::Buffer::new().format(v).as_bytes().to_vec()
}

/// Redis' `streamPropagateXCLAIM`: the NACK's state as an idempotent
/// `XCLAIM key group consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID LASTID
/// group-last-id`.
fn propagate_xclaim(
    ctx: &mut Ctx,
    key: &[u8],
    group: &[u8],
    group_last: StreamId,
    id: StreamId,
    nack: &Nack,
) {
    if !ctx.propagating() {
        return;
    }
    let id = IdText::new(id);
    let last = IdText::new(group_last);
    let argv: [&[u8]; 14] = [
        b"XCLAIM",
        key,
        group,
        &nack.consumer,
        b"0",
        id.as_bytes(),
        b"TIME",
        &int_text(nack.delivery_time as i64),
        b"RETRYCOUNT",
        &int_text(nack.delivery_count as i64),
        b"FORCE",
        b"JUSTID",
        b"LASTID",
        last.as_bytes(),
    ];
    ctx.propagate(&argv);
}

/// Redis' `streamPropagateGroupID`: `XGROUP SETID key group id ENTRIESREAD n`.
fn propagate_group_id(ctx: &mut Ctx, key: &[u8], group: &[u8], g: &Group) {
    if !ctx.propagating() {
        return;
    }
    let id = IdText::new(g.last_id);
    let argv: [&[u8]; 7] = [
        b"XGROUP",
        b"SETID",
        key,
        group,
        id.as_bytes(),
        b"ENTRIESREAD",
        &int_text(g.entries_read),
    ];
    ctx.propagate(&argv);
}

/// Creates consumer `name` in `g` if missing (seen now); true if created.
fn ensure_consumer(g: &mut Group, name: &[u8], now: u64) -> bool {
    match g.consumers.entry(name.to_vec()) {
        MapEntry::Occupied(mut o) => {
            o.get_mut().seen_time = now;
            false
        }
        MapEntry::Vacant(v) => {
            v.insert(Consumer {
                seen_time: now,
                pel: Default::default(),
            });
            true
        }
    }
}

// ---------------------------------------------------------------------------
// XADD / XTRIM
// ---------------------------------------------------------------------------

/// What XADD / XTRIM's options say (Redis' `streamAddTrimArgs`).
#[derive(Default)]
struct AddTrim {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    /// The argument holding the MAXLEN count / MINID id.
    trim_arg: usize,
    /// XADD: the explicit ID and whether its sequence was given.
    id: Option<(StreamId, bool)>,
    no_mkstream: bool,
    /// XADD: where the ID argument is.
    id_pos: usize,
}

fn parse_add_trim(ctx: &Ctx, argv: &[&[u8]], xadd: bool) -> Result<AddTrim, CmdError> {
    let mut a = AddTrim::default();
    let mut limit_given = false;
    let mut limit: i64 = 0;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = argv[i];
        if xadd && c_str(opt) == b"*" {
            break;
        } else if (copt(opt, "maxlen") || copt(opt, "minid")) && more > 0 {
            if a.trim.is_some() {
                return Err(CmdError::Static(errors::TRIM_BOTH));
            }
            a.approx = false;
            let next = c_str(argv[i + 1]);
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if copt(opt, "maxlen") {
                let n = parse_i64(argv[i + 1]).ok_or(CmdError::NotInteger)?;
                if n < 0 {
                    return Err(CmdError::Static(errors::TRIM_MAXLEN_NEG));
                }
                a.trim = Some(Trim::MaxLen(n as u64));
            } else {
                a.trim = Some(Trim::MinId(parse_id(argv[i + 1], 0, true, None)?));
            }
            i += 1;
            a.trim_arg = i;
        } else if copt(opt, "limit") && more > 0 {
            limit = parse_i64(argv[i + 1]).ok_or(CmdError::NotInteger)?;
            if limit < 0 {
                return Err(CmdError::Static(errors::TRIM_LIMIT_NEG));
            }
            limit_given = true;
            i += 1;
        } else if xadd && copt(opt, "nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            let mut seq_given = true;
            let id = parse_id(opt, 0, true, Some(&mut seq_given))?;
            a.id = Some((id, seq_given));
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    a.id_pos = i;
    if limit != 0 && a.trim.is_none() {
        return Err(CmdError::Static(errors::TRIM_LIMIT_NO_STRATEGY));
    }
    if !xadd && a.trim.is_none() {
        return Err(CmdError::Static(errors::XTRIM_NO_STRATEGY));
    }
    if ctx.client.from_master || ctx.client.replaying {
        // The master / AOF rewrote the trim exactly: no cap.
        a.limit = 0;
    } else if limit_given {
        if !a.approx {
            return Err(CmdError::Static(errors::TRIM_LIMIT_NO_APPROX));
        }
        a.limit = limit as u64;
    } else if a.approx {
        let per_node = ctx.srv.config().stream_node_max_entries;
        let l = per_node.saturating_mul(100);
        a.limit = if l == 0 { 10_000 } else { l.min(1_000_000) };
    }
    Ok(a)
}

/// Trims `s` as `a` says; returns the entries removed.
fn apply_trim(s: &mut Stream, a: &AddTrim) -> u64 {
    a.trim.map_or(0, |how| s.trim(how, a.approx, a.limit))
}

/// The line an approximate trim propagates: `=` and the resulting length
/// or first ID, so replicas trim exactly as this server did (Redis'
/// `streamRewriteTrimArgument`).
fn exact_trim_args(s: &Stream, a: &AddTrim, argv: &mut [Vec<u8>]) {
    let (Some(how), true) = (a.trim, a.approx) else {
        return;
    };
    argv[a.trim_arg - 1] = b"=".to_vec();
    argv[a.trim_arg] = match how {
        Trim::MaxLen(_) => int_text(s.length as i64),
        Trim::MinId(_) => IdText::new(s.first_id_with_tombstones())
            .as_bytes()
            .to_vec(),
    };
}

fn xadd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let a = parse_add_trim(ctx, argv, true)?;
    let field_pos = a.id_pos + 1;
    let nfields = argv.len() as i64 - field_pos as i64;
    if nfields < 2 || nfields % 2 == 1 {
        return Err(CmdError::msg(errors::wrong_arity("xadd")));
    }
    if let Some((id, true)) = a.id
        && id == StreamId::MIN
    {
        return Err(CmdError::Static(errors::XADD_ID_ZERO));
    }
    let key = argv[1];
    let (now, lru, lim) = (ctx.now, ctx.lru(), node_limits(ctx));
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    match slot.get(key, now) {
        Some(e) => {
            e.touch(lru);
            stream_ref(e)?;
        }
        None if a.no_mkstream => {
            drop(slot);
            ctx.out.null();
            return Ok(());
        }
        None => slot.insert(new_stream(key, lru)),
    }
    let Some(e) = slot.get(key, now) else {
        return Ok(());
    };
    let s = stream_mut(e)?;
    if s.last_id == StreamId::MAX {
        return Err(CmdError::Static(errors::XADD_EXHAUSTED));
    }
    let small = || CmdError::Static(errors::XADD_ID_SMALL);
    let id = match a.id {
        Some((id, true)) => id,
        Some((id, false)) if s.last_id.ms == id.ms => {
            if s.last_id.seq == u64::MAX {
                return Err(small());
            }
            StreamId::new(id.ms, s.last_id.seq + 1)
        }
        Some((id, false)) => id,
        None => {
            let ms = crate::db::now_ms();
            if ms > s.last_id.ms {
                StreamId::new(ms, 0)
            } else {
                s.last_id.next().ok_or_else(small)?
            }
        }
    };
    if id <= s.last_id {
        return Err(small());
    }
    let fields: Vec<(&[u8], &[u8])> = argv[field_pos..]
        .chunks_exact(2)
        .map(|p| (p[0], p[1]))
        .collect();
    if let Err(AppendError::TooLarge) = s.append(id, &fields, lim) {
        return Err(CmdError::Static(errors::STREAM_TOO_LARGE));
    }
    let text = IdText::new(id);
    let deleted = apply_trim(s, &a);
    // Propagated with the ID it got and an exact trim.
    let id_given = matches!(a.id, Some((_, true)));
    let prop = ((a.approx || !id_given) && ctx.propagating()).then(|| {
        let mut p: Vec<Vec<u8>> = argv.iter().map(|x| x.to_vec()).collect();
        exact_trim_args(s, &a, &mut p);
        if !id_given {
            p[a.id_pos] = text.as_bytes().to_vec();
        }
        p
    });
    ctx.out.bulk(text.as_bytes());
    ctx.changed(STREAM, "xadd", key);
    if deleted > 0 {
        ctx.notify(STREAM, "xtrim", key);
    }
    drop(slot);
    if let Some(p) = prop {
        ctx.propagate(&p);
    }
    Ok(())
}

fn xtrim(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let a = parse_add_trim(ctx, argv, false)?;
    let key = argv[1];
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let Some(s) = write_stream(&mut slot, key, now, lru)? else {
        drop(slot);
        ctx.out.int(0);
        return Ok(());
    };
    let deleted = apply_trim(s, &a);
    if deleted > 0 {
        ctx.changed(STREAM, "xtrim", key);
        ctx.dirty(deleted - 1);
        if a.approx && ctx.propagating() {
            let mut p: Vec<Vec<u8>> = argv.iter().map(|x| x.to_vec()).collect();
            exact_trim_args(s, &a, &mut p);
            ctx.propagate(&p);
        }
    }
    drop(slot);
    ctx.out.int(deleted as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// XRANGE / XREVRANGE / XLEN / XDEL / XSETID
// ---------------------------------------------------------------------------

fn xrange(ctx: &mut Ctx, argv: &[&[u8]], rev: bool) -> CmdResult {
    let (sa, ea) = if rev {
        (argv[3], argv[2])
    } else {
        (argv[2], argv[3])
    };
    let (start, end) = parse_range(sa, ea)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if copt(argv[j], "count") && j + 1 < argv.len() {
            count = parse_i64(argv[j + 1]).ok_or(CmdError::NotInteger)?.max(0);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    ctx.read_key(argv[1], |out, e| {
        let Some(e) = e else {
            out.array(0);
            return Ok(());
        };
        let s = stream_ref(e)?;
        if count == 0 {
            out.null_array();
        } else {
            range_reply(out, s, start, end, count.max(0) as usize, rev);
        }
        Ok(())
    })
}

fn xlen(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ctx.read_key(argv[1], |out, e| {
        match e {
            Some(e) => out.int(stream_ref(e)?.length as i64),
            None => out.int(0),
        }
        Ok(())
    })
}

fn xdel(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let Some(s) = write_stream(&mut slot, key, now, lru)? else {
        drop(slot);
        ctx.out.int(0);
        return Ok(());
    };
    let ids = argv[2..]
        .iter()
        .map(|a| parse_id(a, 0, true, None))
        .collect::<Result<Vec<_>, _>>()?;
    let mut deleted = 0u64;
    let mut first_gone = false;
    for id in ids {
        if s.delete(id) {
            first_gone |= id == s.first_id;
            if id > s.max_deleted {
                s.max_deleted = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.length == 0 {
            s.first_id = StreamId::MIN;
        } else if first_gone {
            s.first_id = s.edge_id(true).unwrap_or(StreamId::MAX);
        }
        ctx.changed(STREAM, "xdel", key);
        ctx.dirty(deleted - 1);
    }
    drop(slot);
    ctx.out.int(deleted as i64);
    Ok(())
}

fn xsetid(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let id = parse_id(argv[2], 0, true, None)?;
    let mut added: i64 = -1;
    let mut max_del = StreamId::MIN;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if copt(argv[i], "entriesadded") && more > 0 {
            added = parse_i64(argv[i + 1]).ok_or(CmdError::NotInteger)?;
            if added < 0 {
                return Err(CmdError::Static(errors::XSETID_ADDED_NEG));
            }
        } else if copt(argv[i], "maxdeletedid") && more > 0 {
            max_del = parse_id(argv[i + 1], 0, true, None)?;
            if id < max_del {
                return Err(CmdError::Static(errors::XSETID_BELOW_MAXDEL));
            }
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let key = argv[1];
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let Some(s) = write_stream(&mut slot, key, now, lru)? else {
        return Err(CmdError::NoSuchKey);
    };
    if s.length > 0 {
        let top = s.edge_id(false).unwrap_or(StreamId::MIN);
        if id < top {
            return Err(CmdError::Static(errors::XSETID_BELOW_TOP));
        }
        if added != -1 && s.length > added as u64 {
            return Err(CmdError::Static(errors::XSETID_ADDED_SMALL));
        }
    }
    s.last_id = id;
    if added != -1 {
        s.entries_added = added as u64;
    }
    if max_del != StreamId::MIN {
        s.max_deleted = max_del;
    }
    ctx.notify(STREAM, "xsetid", key);
    ctx.dirty(1);
    drop(slot);
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------
// XREAD / XREADGROUP
// ---------------------------------------------------------------------------

/// What one stream of an XREAD asks for.
#[derive(Clone, Copy)]
enum Want {
    /// Entries after this ID (`$` resolved).
    After(StreamId),
    /// XREADGROUP `>`: entries never delivered to the group.
    New,
}

fn xread(ctx: &mut Ctx, argv: &[&[u8]], group_form: bool) -> CmdResult {
    let mut timeout: Option<&[u8]> = None;
    let mut count: i64 = 0;
    let mut streams_at = 0;
    let mut group: Option<(&[u8], &[u8])> = None;
    let mut noack = false;
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let o = argv[i];
        if copt(o, "block") && more > 0 {
            if ctx.client.in_script {
                return Err(CmdError::msg(errors::xread_block_in_script(argv[0])));
            }
            i += 1;
            timeout = Some(argv[i]);
            let t = parse_i64(argv[i]).ok_or(CmdError::Static(errors::XREAD_TIMEOUT_NOT_INT))?;
            if t < 0 {
                return Err(CmdError::Static(errors::TIMEOUT_NEGATIVE));
            }
            if t > 0 && t > i64::MAX - ctx.now as i64 {
                return Err(CmdError::Static(errors::XREAD_TIMEOUT_RANGE));
            }
        } else if copt(o, "count") && more > 0 {
            i += 1;
            count = parse_i64(argv[i]).ok_or(CmdError::NotInteger)?.max(0);
        } else if copt(o, "streams") && more > 0 {
            streams_at = i + 1;
            if !(argv.len() - streams_at).is_multiple_of(2) {
                return Err(CmdError::Static(errors::XREAD_UNBALANCED));
            }
            break;
        } else if copt(o, "group") && more >= 2 {
            if !group_form {
                return Err(CmdError::Static(errors::XREAD_GROUP_ONLY));
            }
            group = Some((argv[i + 1], argv[i + 2]));
            i += 2;
        } else if copt(o, "noack") {
            if !group_form {
                return Err(CmdError::Static(errors::XREAD_NOACK_ONLY));
            }
            noack = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if streams_at == 0 {
        return Err(CmdError::Syntax);
    }
    if group_form && group.is_none() {
        return Err(CmdError::Static(errors::XREADGROUP_NO_GROUP));
    }
    let n = (argv.len() - streams_at) / 2;
    let keys = &argv[streams_at..streams_at + n];
    let id_args = &argv[streams_at + n..];
    let woken = ctx
        .client
        .info
        .blocked
        .load(std::sync::atomic::Ordering::Relaxed);
    // Woken, a waiter is served from the key that changed alone (Redis'
    // `serveClientsBlockedOnStreamKey`).
    let only = match (&ctx.client.woken_by, woken) {
        (Some(wk), true) => keys.iter().position(|k| k == wk),
        _ => None,
    };
    let (now, lru) = (ctx.now, ctx.lru());
    let mut g = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());

    // Resolve IDs and groups (every key checked before anything is served).
    let mut wants = Vec::with_capacity(n);
    for (k, &key) in keys.iter().enumerate() {
        if only.is_some_and(|o| o != k) {
            wants.push(Want::After(StreamId::MAX));
            continue;
        }
        let e = g.get(key, now);
        if woken && group.is_some() {
            // A blocked XREADGROUP whose stream went away (Redis unblocks
            // it when the key is deleted or overwritten).
            match &e {
                Some(e) if stream_ref(e).is_ok() => {}
                _ => return Err(CmdError::Static(errors::BLOCKED_STREAM_GONE)),
            }
        }
        let s = match e {
            // A woken XREAD waits on: the key is no stream any more.
            Some(e) if woken && stream_ref(e).is_err() => None,
            Some(e) => {
                e.touch(lru);
                Some(stream_ref(e)?)
            }
            None => None,
        };
        if let Some((gname, _)) = group {
            let exists = s.is_some_and(|s| s.groups.contains_key(gname));
            if !exists {
                if woken {
                    return Err(CmdError::Static(errors::BLOCKED_GROUP_GONE));
                }
                return Err(CmdError::msg(errors::nogroup_xreadgroup(key, gname)));
            }
        }
        let a = c_str(id_args[k]);
        let want = if a == b"$" {
            if group_form {
                return Err(CmdError::Static(errors::XREADGROUP_DOLLAR));
            }
            Want::After(s.map_or(StreamId::MIN, |s| s.last_id))
        } else if a == b">" {
            if !group_form {
                return Err(CmdError::Static(errors::XREAD_GT));
            }
            Want::New
        } else {
            Want::After(parse_id(id_args[k], 0, true, None)?)
        };
        wants.push(want);
    }
    for &key in keys {
        ctx.hit_key(g.get(key, now).is_some(), key);
    }

    // Serve what can be served now.
    let count = if woken && count == 0 {
        1000
    } else {
        count as usize
    };
    let top = ctx.out.buf.len();
    let mut served = 0usize;
    let mut propagated = false;
    for (k, &key) in keys.iter().enumerate() {
        if only.is_some_and(|o| o != k) {
            continue;
        }
        let Some(e) = g.get(key, now) else {
            continue;
        };
        if woken && stream_ref(e).is_err() {
            continue;
        }
        let s = stream_mut(e)?;
        match (group, wants[k]) {
            (None, Want::After(after)) => {
                // Woken: served when the stream's last ID passed the one
                // waited for, even if those entries are gone already.
                let more = if only.is_some() {
                    s.last_id > after
                } else {
                    s.length > 0 && s.edge_id(false).is_some_and(|last| last > after)
                };
                if !more {
                    continue;
                }
                let Some(start) = after.next() else {
                    continue;
                };
                if !ctx.out.resp3 {
                    ctx.out.array(2);
                }
                ctx.out.bulk(key);
                range_reply(ctx.out, s, start, StreamId::MAX, count, false);
                served += 1;
            }
            (Some((gname, cname)), want) => {
                let Some(grp) = s.groups.get(gname) else {
                    continue;
                };
                // History (an ID) is always served; `>` when the stream has
                // entries past the group's last delivered ID.
                if let Want::New = want {
                    let more = if only.is_some() {
                        s.last_id > grp.last_id
                    } else {
                        s.length > 0 && s.edge_id(false).is_some_and(|last| last > grp.last_id)
                    };
                    if !more {
                        continue;
                    }
                }
                if !ctx.out.resp3 {
                    ctx.out.array(2);
                }
                ctx.out.bulk(key);
                let spec = GroupRead {
                    key,
                    group: gname,
                    consumer: cname,
                    noack,
                    count,
                };
                propagated |= match want {
                    Want::After(after) => read_history(ctx, s, &spec, after),
                    Want::New => read_new(ctx, s, &spec),
                };
                served += 1;
            }
            (None, Want::New) => {}
        }
    }
    if served > 0 {
        let resp3 = ctx.out.resp3;
        header_at(ctx.out, top, served, resp3);
        if group.is_some() && (propagated || !ctx.propagating()) {
            ctx.dirty(1);
        }
        return Ok(());
    }
    drop(g);
    if let Some(t) = timeout {
        // Wait for what the first run asked: `$` as the IDs it stood for,
        // a missing COUNT as Redis' blocked default (1000).
        let mut again: Vec<Vec<u8>> = argv[..streams_at].iter().map(|a| a.to_vec()).collect();
        if count == 0 {
            let at = again.len() - 1;
            again.splice(at..at, [b"COUNT".to_vec(), b"1000".to_vec()]);
        }
        again.extend(keys.iter().map(|k| k.to_vec()));
        for (k, w) in wants.iter().enumerate() {
            again.push(match w {
                Want::After(id) => IdText::new(*id).as_bytes().to_vec(),
                Want::New => id_args[k].to_vec(),
            });
        }
        let ms = parse_i64(t).unwrap_or(0);
        let deadline = (ms > 0).then(|| now.saturating_add(ms as u64));
        let again_refs: Vec<&[u8]> = again.iter().map(|a| a.as_slice()).collect();
        ctx.block_on(&again_refs, keys, deadline, Nil::Array);
        if let Some(r) = ctx.client.block.as_mut() {
            r.each = true;
        }
        return Ok(());
    }
    ctx.out.null_array();
    Ok(())
}

/// The group side of one XREADGROUP stream.
struct GroupRead<'a> {
    key: &'a [u8],
    group: &'a [u8],
    consumer: &'a [u8],
    noack: bool,
    count: usize,
}

/// Looks up (refreshing) or creates the reading consumer; a consumer created
/// by a NOACK read is propagated (nothing else would create it on
/// replicas).
fn reading_consumer(ctx: &mut Ctx, g: &mut Group, spec: &GroupRead<'_>) -> bool {
    let created = ensure_consumer(g, spec.consumer, ctx.now);
    if created {
        ctx.notify(STREAM, "xgroup-createconsumer", spec.key);
        if spec.noack && ctx.propagating() {
            let argv: [&[u8]; 5] = [
                b"XGROUP",
                b"CREATECONSUMER",
                spec.key,
                spec.group,
                spec.consumer,
            ];
            ctx.propagate(&argv);
            return true;
        }
    }
    false
}

/// XREADGROUP with an ID: the consumer's own pending entries after it (an
/// entry deleted meanwhile shows as `[id, nil]`), their delivery counted.
fn read_history(ctx: &mut Ctx, s: &mut Stream, spec: &GroupRead<'_>, after: StreamId) -> bool {
    let Some(mut g) = s.groups.remove(spec.group) else {
        return false;
    };
    let propagated = reading_consumer(ctx, &mut g, spec);
    let now = ctx.now;
    let at = ctx.out.buf.len();
    let mut n = 0;
    let ids: Vec<StreamId> = g.consumers.get(spec.consumer).map_or(Vec::new(), |c| {
        c.pel
            .range((Excluded(after), Unbounded))
            .take(if spec.count == 0 {
                usize::MAX
            } else {
                spec.count
            })
            .copied()
            .collect()
    });
    for id in ids {
        if one_entry(ctx.out, s, id) {
            if let Some(nack) = g.pel.get_mut(&id) {
                nack.delivery_time = now;
                nack.delivery_count += 1;
            }
        } else {
            ctx.out.array(2);
            id_reply(ctx.out, id);
            ctx.out.null_array();
        }
        n += 1;
    }
    header_at(ctx.out, at, n, false);
    s.groups.insert(spec.group.to_vec(), g);
    propagated
}

/// XREADGROUP `>`: entries after the group's last delivered ID, moving it
/// and its read counter, each added to the PELs unless NOACK.
fn read_new(ctx: &mut Ctx, s: &mut Stream, spec: &GroupRead<'_>) -> bool {
    let Some(mut g) = s.groups.remove(spec.group) else {
        return false;
    };
    let mut propagated = reading_consumer(ctx, &mut g, spec);
    let now = ctx.now;
    let Some(start) = g.last_id.next() else {
        ctx.out.array(0);
        s.groups.insert(spec.group.to_vec(), g);
        return propagated;
    };
    let at = ctx.out.buf.len();
    let mut delivered: Vec<StreamId> = Vec::new();
    let mut n = 0;
    let (out, count) = (&mut *ctx.out, spec.count);
    let stream: &Stream = s;
    let mut last_moved = false;
    stream.range(start, StreamId::MAX, false, |id, fields| {
        if id > g.last_id {
            if g.entries_read != INVALID_ENTRIES_READ && !stream.has_tombstones(id, StreamId::MAX) {
                g.entries_read += 1;
            } else if stream.entries_added != 0 {
                g.entries_read = stream.estimate_distance(id);
            }
            g.last_id = id;
            last_moved = true;
        }
        entry_reply(out, id, fields);
        delivered.push(id);
        n += 1;
        count == 0 || n < count
    });
    header_at(ctx.out, at, n, false);
    if !spec.noack {
        for id in delivered {
            let nack = match g.pel.entry(id) {
                MapEntry::Vacant(v) => v.insert(Nack {
                    delivery_time: now,
                    delivery_count: 1,
                    consumer: spec.consumer.to_vec(),
                }),
                MapEntry::Occupied(o) => {
                    // Already pending (XGROUP SETID moved the group back):
                    // it changes hands.
                    let nack = o.into_mut();
                    if let Some(c) = g.consumers.get_mut(&nack.consumer) {
                        c.pel.remove(&id);
                    }
                    nack.consumer = spec.consumer.to_vec();
                    nack.delivery_time = now;
                    nack.delivery_count = 1;
                    nack
                }
            };
            let nack = nack.clone();
            if let Some(c) = g.consumers.get_mut(spec.consumer) {
                c.pel.insert(id);
            }
            propagate_xclaim(ctx, spec.key, spec.group, g.last_id, id, &nack);
            propagated = true;
        }
    } else if last_moved {
        propagate_group_id(ctx, spec.key, spec.group, &g);
        propagated = true;
    }
    s.groups.insert(spec.group.to_vec(), g);
    propagated
}

// ---------------------------------------------------------------------------
// XGROUP
// ---------------------------------------------------------------------------

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

fn help(out: &mut Reply, lines: &[&str]) {
    out.array(lines.len());
    for l in lines {
        out.simple(l.as_bytes());
    }
}

fn xgroup(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let sub = ctx.spec.short_name();
    let syntax = || CmdError::msg(errors::subcommand_syntax("xgroup", argv[1]));
    if sub == "help" {
        help(ctx.out, XGROUP_HELP);
        return Ok(());
    }
    let (create, setid) = (sub == "create", sub == "setid");
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let mut i = 5;
    while i < argv.len() {
        if create && copt(argv[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && copt(argv[i], "entriesread") && i + 1 < argv.len() {
            entries_read = parse_i64(argv[i + 1]).ok_or(CmdError::NotInteger)?;
            if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
                return Err(CmdError::Static(errors::ENTRIESREAD_BAD));
            }
            i += 2;
        } else {
            return Err(syntax());
        }
    }
    let (key, gname) = (argv[2], argv[3]);
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let exists = match slot.get(key, now) {
        Some(e) => {
            e.touch(lru);
            stream_ref(e)?;
            true
        }
        None => false,
    };
    if !exists && !mkstream {
        return Err(CmdError::Static(errors::XGROUP_NO_KEY));
    }
    let has_group = exists
        && slot
            .get(key, now)
            .and_then(|e| stream_ref(e).ok())
            .is_some_and(|s| s.groups.contains_key(gname));
    if exists && !has_group && matches!(sub, "setid" | "createconsumer" | "delconsumer") {
        return Err(CmdError::msg(errors::nogroup_for_key(gname, key)));
    }
    match sub {
        "create" if argv.len() <= 8 => {
            let id = if c_str(argv[4]) == b"$" {
                None
            } else {
                Some(parse_id(argv[4], 0, true, None)?)
            };
            if !exists {
                slot.insert(new_stream(key, lru));
            }
            let Some(e) = slot.get(key, now) else {
                return Ok(());
            };
            let s = stream_mut(e)?;
            let id = id.unwrap_or(s.last_id);
            if s.groups.contains_key(gname) {
                return Err(CmdError::Static(errors::BUSYGROUP));
            }
            s.groups.insert(
                gname.to_vec(),
                Group {
                    last_id: id,
                    entries_read,
                    ..Group::default()
                },
            );
            if exists {
                ctx.notify(STREAM, "xgroup-create", key);
                ctx.dirty(1);
            } else {
                // MKSTREAM: the new key is a change (WATCH, tracking).
                ctx.changed(STREAM, "xgroup-create", key);
            }
            drop(slot);
            ctx.out.ok();
        }
        "setid" if argv.len() == 5 || argv.len() == 7 => {
            let Some(e) = slot.get(key, now) else {
                return Ok(());
            };
            let s = stream_mut(e)?;
            let id = if c_str(argv[4]) == b"$" {
                s.last_id
            } else {
                parse_id(argv[4], 0, false, None)?
            };
            if let Some(g) = s.groups.get_mut(gname) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            ctx.notify(STREAM, "xgroup-setid", key);
            ctx.dirty(1);
            drop(slot);
            ctx.out.ok();
        }
        "destroy" if argv.len() == 4 => {
            let Some(e) = slot.get(key, now) else {
                return Ok(());
            };
            let s = stream_mut(e)?;
            if s.groups.remove(gname).is_some() {
                ctx.notify(STREAM, "xgroup-destroy", key);
                ctx.dirty(1);
                // Blocked XREADGROUPs of the group answer NOGROUP.
                ctx.srv.blocking.signal(ctx.client.db, key);
                drop(slot);
                ctx.out.int(1);
            } else {
                drop(slot);
                ctx.out.int(0);
            }
        }
        "createconsumer" if argv.len() == 5 => {
            let Some(e) = slot.get(key, now) else {
                return Ok(());
            };
            let s = stream_mut(e)?;
            let created = s.groups.get_mut(gname).is_some_and(|g| {
                if g.consumers.contains_key(argv[4]) {
                    return false;
                }
                ensure_consumer(g, argv[4], now)
            });
            if created {
                ctx.notify(STREAM, "xgroup-createconsumer", key);
                ctx.dirty(1);
            }
            drop(slot);
            ctx.out.int(i64::from(created));
        }
        "delconsumer" if argv.len() == 5 => {
            let Some(e) = slot.get(key, now) else {
                return Ok(());
            };
            let s = stream_mut(e)?;
            let mut pending = None;
            if let Some(g) = s.groups.get_mut(gname)
                && let Some(c) = g.consumers.remove(argv[4])
            {
                for id in &c.pel {
                    g.pel.remove(id);
                }
                pending = Some(c.pel.len());
            }
            if pending.is_some() {
                ctx.notify(STREAM, "xgroup-delconsumer", key);
                ctx.dirty(1);
            }
            drop(slot);
            ctx.out.int(pending.unwrap_or(0) as i64);
        }
        _ => return Err(syntax()),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// XACK / XPENDING
// ---------------------------------------------------------------------------

fn xack(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (key, gname) = (argv[1], argv[2]);
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let e = slot.get(key, now);
    ctx.hit_key(e.is_some(), key);
    let Some(e) = e else {
        drop(slot);
        ctx.out.int(0);
        return Ok(());
    };
    e.touch(lru);
    let s = stream_mut(e)?;
    let Some(g) = s.groups.get_mut(gname) else {
        drop(slot);
        ctx.out.int(0);
        return Ok(());
    };
    let ids = argv[3..]
        .iter()
        .map(|a| parse_id(a, 0, true, None))
        .collect::<Result<Vec<_>, _>>()?;
    let mut acked = 0u64;
    for id in ids {
        if let Some(nack) = g.pel.remove(&id) {
            if let Some(c) = g.consumers.get_mut(&nack.consumer) {
                c.pel.remove(&id);
            }
            acked += 1;
        }
    }
    ctx.dirty(acked);
    drop(slot);
    ctx.out.int(acked as i64);
    Ok(())
}

fn xpending(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let summary = argv.len() == 3;
    if argv.len() != 3 && !(6..=9).contains(&argv.len()) {
        return Err(CmdError::Syntax);
    }
    let mut range = (StreamId::MIN, StreamId::MAX);
    let (mut count, mut min_idle) = (0i64, 0i64);
    let mut consumer: Option<&[u8]> = None;
    if argv.len() >= 6 {
        let mut at = 3;
        if copt(argv[3], "idle") {
            min_idle = parse_i64(argv[4]).ok_or(CmdError::NotInteger)?;
            if argv.len() < 8 {
                return Err(CmdError::Syntax);
            }
            at += 2;
        }
        count = parse_i64(argv[at + 2]).ok_or(CmdError::NotInteger)?.max(0);
        range = parse_range(argv[at], argv[at + 1])?;
        consumer = argv.get(at + 3).copied();
    }
    let (key, gname) = (argv[1], argv[2]);
    let now = ctx.now;
    ctx.read_key(key, |out, e| {
        let s = e.map(stream_ref).transpose()?;
        let Some(g) = s.and_then(|s| s.groups.get(gname)) else {
            return Err(CmdError::msg(errors::nogroup(key, gname)));
        };
        if summary {
            out.array(4);
            out.int(g.pel.len() as i64);
            let (Some((first, _)), Some((last, _))) =
                (g.pel.first_key_value(), g.pel.last_key_value())
            else {
                out.null();
                out.null();
                out.null_array();
                return Ok(());
            };
            id_reply(out, *first);
            id_reply(out, *last);
            let busy: Vec<_> = g
                .consumers
                .iter()
                .filter(|(_, c)| !c.pel.is_empty())
                .collect();
            out.array(busy.len());
            for (name, c) in busy {
                out.array(2);
                out.bulk(name);
                out.bulk(itoa::Buffer::new().format(c.pel.len()).as_bytes());
            }
            return Ok(());
        }
        let ids: Box<dyn Iterator<Item = StreamId>> = match consumer {
            Some(name) => match g.consumers.get(name) {
                Some(c) => Box::new(c.pel.range(range.0..).copied()),
                None => {
                    out.array(0);
                    return Ok(());
                }
            },
            None => Box::new(g.pel.range(range.0..).map(|(id, _)| *id)),
        };
        let at = out.buf.len();
        let mut n = 0;
        for id in ids {
            if count == 0 || id > range.1 {
                break;
            }
            let Some(nack) = g.pel.get(&id) else {
                continue;
            };
            let idle = now as i64 - nack.delivery_time as i64;
            if min_idle != 0 && idle < min_idle {
                continue;
            }
            n += 1;
            count -= 1;
            out.array(4);
            id_reply(out, id);
            out.bulk(&nack.consumer);
            out.int(idle.max(0));
            out.int(nack.delivery_count as i64);
        }
        header_at(out, at, n, false);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// XCLAIM / XAUTOCLAIM
// ---------------------------------------------------------------------------

/// Moves pending entry `id` (its NACK in `g.pel`) to `consumer`.
fn give_to(g: &mut Group, id: StreamId, consumer: &[u8]) {
    let Some(nack) = g.pel.get_mut(&id) else {
        return;
    };
    if nack.consumer != consumer {
        if let Some(c) = g.consumers.get_mut(&nack.consumer) {
            c.pel.remove(&id);
        }
        nack.consumer = consumer.to_vec();
    }
    if let Some(c) = g.consumers.get_mut(consumer) {
        c.pel.insert(id);
    }
}

/// Drops pending entry `id` whose stream entry is gone (propagated as the
/// XCLAIM that drops it on replicas).
fn drop_gone(ctx: &mut Ctx, g: &mut Group, key: &[u8], gname: &[u8], id: StreamId) {
    if let Some(nack) = g.pel.remove(&id) {
        propagate_xclaim(ctx, key, gname, g.last_id, id, &nack);
        if let Some(c) = g.consumers.get_mut(&nack.consumer) {
            c.pel.remove(&id);
        }
    }
}

/// What XCLAIM / XAUTOCLAIM do to each entry they claim.
struct Claim<'a> {
    key: &'a [u8],
    group: &'a [u8],
    consumer: &'a [u8],
    /// The delivery time given to claimed entries.
    delivery: u64,
    /// RETRYCOUNT (-1: none).
    retry: i64,
    justid: bool,
    /// The claiming consumer was looked up (or created) already.
    consumer_ready: bool,
}

impl Claim<'_> {
    /// Hands pending entry `id` (whose stream entry exists) to the
    /// claiming consumer, created on first use: its delivery time set, its
    /// count set to RETRYCOUNT or bumped (not with JUSTID), the entry (its
    /// ID with JUSTID) replied into `out`, the new state propagated.
    /// Returns what it adds to the dirty counter.
    fn give(
        &mut self,
        ctx: &mut Ctx,
        g: &mut Group,
        s: &Stream,
        id: StreamId,
        out: &mut Reply,
    ) -> u64 {
        let mut dirty = 1;
        if !self.consumer_ready {
            if ensure_consumer(g, self.consumer, ctx.now) {
                ctx.notify(STREAM, "xgroup-createconsumer", self.key);
                dirty += 1;
            }
            self.consumer_ready = true;
        }
        give_to(g, id, self.consumer);
        let Some(nack) = g.pel.get_mut(&id) else {
            return dirty;
        };
        nack.delivery_time = self.delivery;
        if self.retry >= 0 {
            nack.delivery_count = self.retry as u64;
        } else if !self.justid {
            nack.delivery_count += 1;
        }
        let nack = nack.clone();
        if self.justid {
            id_reply(out, id);
        } else {
            one_entry(out, s, id);
        }
        propagate_xclaim(ctx, self.key, self.group, g.last_id, id, &nack);
        dirty
    }
}

fn xclaim(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (key, gname, cname) = (argv[1], argv[2], argv[3]);
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let e = slot.get(key, now);
    ctx.hit_key(e.is_some(), key);
    let Some(e) = e else {
        return Err(CmdError::msg(errors::nogroup(key, gname)));
    };
    e.touch(lru);
    let s = stream_mut(e)?;
    if !s.groups.contains_key(gname) {
        return Err(CmdError::msg(errors::nogroup(key, gname)));
    }
    let min_idle = parse_i64(argv[4])
        .ok_or(CmdError::Static(errors::XCLAIM_MINIDLE))?
        .max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match parse_id(argv[j], 0, true, None) {
            Ok(id) => ids.push((id, j)),
            Err(_) => break,
        }
        j += 1;
    }
    let now_i = now as i64;
    let (mut force, mut justid) = (false, false);
    let mut delivery: i64 = -1;
    let mut retry: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = argv[j];
        if copt(opt, "force") {
            force = true;
        } else if copt(opt, "justid") {
            justid = true;
        } else if copt(opt, "idle") && more > 0 {
            j += 1;
            let v = parse_i64(argv[j]).ok_or(CmdError::Static(errors::XCLAIM_IDLE))?;
            delivery = now_i.wrapping_sub(v);
        } else if copt(opt, "time") && more > 0 {
            j += 1;
            delivery = parse_i64(argv[j]).ok_or(CmdError::Static(errors::XCLAIM_TIME))?;
        } else if copt(opt, "retrycount") && more > 0 {
            j += 1;
            retry = parse_i64(argv[j]).ok_or(CmdError::Static(errors::XCLAIM_RETRY))?;
        } else if copt(opt, "lastid") && more > 0 {
            j += 1;
            last_id = parse_id(argv[j], 0, true, None)?;
        } else {
            return Err(CmdError::msg(errors::xclaim_bad_option(c_str(opt))));
        }
        j += 1;
    }
    let Some(mut g) = s.groups.remove(gname) else {
        return Ok(());
    };
    let mut propagate_last = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        propagate_last = true;
    }
    if delivery == -1 || delivery < 0 || delivery > now_i {
        delivery = now_i;
    }
    let mut claim = Claim {
        key,
        group: gname,
        consumer: cname,
        delivery: delivery as u64,
        retry,
        justid,
        consumer_ready: false,
    };
    let mut body = Reply {
        buf: Vec::new(),
        resp3: ctx.out.resp3,
    };
    let mut n = 0;
    let mut dirty = 0;
    for (id, _) in ids {
        let exists = s.contains(id);
        if !exists {
            if g.pel.contains_key(&id) {
                drop_gone(ctx, &mut g, key, gname, id);
                propagate_last = false;
                dirty += 1;
            }
            continue;
        }
        if force && !g.pel.contains_key(&id) {
            g.pel.insert(
                id,
                Nack {
                    delivery_time: now,
                    delivery_count: 1,
                    consumer: Vec::new(),
                },
            );
        }
        let Some(nack) = g.pel.get(&id) else {
            continue;
        };
        if !nack.consumer.is_empty()
            && min_idle != 0
            && now_i - (nack.delivery_time as i64) < min_idle
        {
            continue;
        }
        dirty += claim.give(ctx, &mut g, s, id, &mut body);
        n += 1;
        propagate_last = false;
    }
    if propagate_last {
        propagate_group_id(ctx, key, gname, &g);
        dirty += 1;
    }
    s.groups.insert(gname.to_vec(), g);
    ctx.dirty(dirty);
    drop(slot);
    ctx.out.array(n);
    ctx.out.buf.extend_from_slice(&body.buf);
    Ok(())
}

fn xautoclaim(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (key, gname, cname) = (argv[1], argv[2], argv[3]);
    let min_idle = parse_i64(argv[4])
        .ok_or(CmdError::Static(errors::XAUTOCLAIM_MINIDLE))?
        .max(0);
    let (mut start, sx) = parse_bound(argv[5], 0)?;
    if sx {
        start = start
            .next()
            .ok_or(CmdError::Static(errors::RANGE_BAD_START))?;
    }
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if copt(argv[j], "count") && more > 0 {
            const MAX: i64 = i64::MAX / 16;
            let c = parse_i64(argv[j + 1]).ok_or(CmdError::Static(errors::XAUTOCLAIM_COUNT))?;
            if !(1..=MAX).contains(&c) {
                return Err(CmdError::Static(errors::XAUTOCLAIM_COUNT));
            }
            count = c;
            j += 1;
        } else if copt(argv[j], "justid") {
            justid = true;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let e = slot.get(key, now);
    ctx.hit_key(e.is_some(), key);
    let Some(e) = e else {
        return Err(CmdError::msg(errors::nogroup(key, gname)));
    };
    e.touch(lru);
    let s = stream_mut(e)?;
    let Some(mut g) = s.groups.remove(gname) else {
        return Err(CmdError::msg(errors::nogroup(key, gname)));
    };
    let now_i = now as i64;
    let mut attempts = count.saturating_mul(10);
    let mut body = Reply {
        buf: Vec::new(),
        resp3: ctx.out.resp3,
    };
    let mut n = 0;
    let mut deleted: Vec<StreamId> = Vec::new();
    let mut claim = Claim {
        key,
        group: gname,
        consumer: cname,
        delivery: now,
        retry: -1,
        justid,
        consumer_ready: false,
    };
    let mut dirty = 0u64;
    let mut last: Option<StreamId> = None;
    // The pending entry after the last one visited (from `start` at first).
    let after = |g: &Group, last: Option<StreamId>| match last {
        None => g.pel.range(start..).next().map(|(id, _)| *id),
        Some(l) => g
            .pel
            .range((Excluded(l), Unbounded))
            .next()
            .map(|(id, _)| *id),
    };
    loop {
        if attempts == 0 || count == 0 {
            break;
        }
        attempts -= 1;
        let Some(id) = after(&g, last) else {
            break;
        };
        last = Some(id);
        if !s.contains(id) {
            drop_gone(ctx, &mut g, key, gname, id);
            dirty += 1;
            deleted.push(id);
            count -= 1;
            continue;
        }
        let Some(nack) = g.pel.get(&id) else {
            continue;
        };
        if min_idle != 0 && now_i - (nack.delivery_time as i64) < min_idle {
            continue;
        }
        dirty += claim.give(ctx, &mut g, s, id, &mut body);
        n += 1;
        count -= 1;
    }
    let cursor = after(&g, last).unwrap_or(StreamId::MIN);
    s.groups.insert(gname.to_vec(), g);
    ctx.dirty(dirty);
    drop(slot);
    let out = &mut *ctx.out;
    out.array(3);
    id_reply(out, cursor);
    out.array(n);
    out.buf.extend_from_slice(&body.buf);
    out.array(deleted.len());
    for id in deleted {
        id_reply(out, id);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// XINFO
// ---------------------------------------------------------------------------

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

/// A group's lag (Redis' `streamReplyWithCGLag`): None when unknown.
fn lag(s: &Stream, g: &Group) -> Option<i64> {
    let added = s.entries_added as i64;
    if added == 0 {
        return Some(0);
    }
    if g.entries_read != INVALID_ENTRIES_READ && !s.has_tombstones(g.last_id, StreamId::MAX) {
        return Some(added - g.entries_read);
    }
    let read = s.estimate_distance(g.last_id);
    (read != INVALID_ENTRIES_READ).then_some(added - read)
}

fn opt_int(out: &mut Reply, v: Option<i64>) {
    match v {
        Some(v) => out.int(v),
        None => out.null(),
    }
}

fn xinfo(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let sub = ctx.spec.short_name();
    if sub == "help" {
        help(ctx.out, XINFO_HELP);
        return Ok(());
    }
    let syntax = || CmdError::msg(errors::subcommand_syntax("xinfo", argv[1]));
    let key = argv[2];
    let now = ctx.now;
    // Options are checked once the key is found (as Redis).
    ctx.read_key(key, |out, e| {
        let Some(e) = e else {
            return Err(CmdError::NoSuchKey);
        };
        let s = stream_ref(e)?;
        match sub {
            "consumers" if argv.len() == 4 => {
                let Some(g) = s.groups.get(argv[3]) else {
                    return Err(CmdError::msg(errors::nogroup_for_key(argv[3], key)));
                };
                out.array(g.consumers.len());
                for (name, c) in &g.consumers {
                    out.map(3);
                    out.bulk(b"name");
                    out.bulk(name);
                    out.bulk(b"pending");
                    out.int(c.pel.len() as i64);
                    out.bulk(b"idle");
                    out.int((now as i64 - c.seen_time as i64).max(0));
                }
            }
            "groups" if argv.len() == 3 => {
                out.array(s.groups.len());
                for (name, g) in &s.groups {
                    out.map(6);
                    out.bulk(b"name");
                    out.bulk(name);
                    out.bulk(b"consumers");
                    out.int(g.consumers.len() as i64);
                    out.bulk(b"pending");
                    out.int(g.pel.len() as i64);
                    out.bulk(b"last-delivered-id");
                    id_reply(out, g.last_id);
                    out.bulk(b"entries-read");
                    opt_int(
                        out,
                        (g.entries_read != INVALID_ENTRIES_READ).then_some(g.entries_read),
                    );
                    out.bulk(b"lag");
                    opt_int(out, lag(s, g));
                }
            }
            "stream" => {
                let opts = &argv[3..];
                let full = !opts.is_empty();
                let mut count: i64 = 10;
                if full {
                    if opts.len() != 1 && opts.len() != 3 {
                        return Err(syntax());
                    }
                    if !copt(opts[0], "full") {
                        return Err(syntax());
                    }
                    if opts.len() == 3 {
                        if !copt(opts[1], "count") {
                            return Err(syntax());
                        }
                        count = parse_i64(opts[2]).ok_or(CmdError::NotInteger)?;
                        if count < 0 {
                            count = 10;
                        }
                    }
                }
                stream_info(out, s, full, count as usize);
            }
            _ => return Err(syntax()),
        }
        Ok(())
    })
}

fn stream_info(out: &mut Reply, s: &Stream, full: bool, count: usize) {
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.length as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(s.rax_nodes() as i64);
    out.bulk(b"last-generated-id");
    id_reply(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    id_reply(out, s.max_deleted);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    id_reply(out, s.first_id);
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for (name, rev) in [(&b"first-entry"[..], false), (b"last-entry", true)] {
            out.bulk(name);
            if entries(out, s, StreamId::MIN, StreamId::MAX, 1, rev) == 0 {
                out.null();
            }
        }
        return;
    }
    out.bulk(b"entries");
    range_reply(out, s, StreamId::MIN, StreamId::MAX, count, false);
    out.bulk(b"groups");
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        id_reply(out, g.last_id);
        out.bulk(b"entries-read");
        opt_int(
            out,
            (g.entries_read != INVALID_ENTRIES_READ).then_some(g.entries_read),
        );
        out.bulk(b"lag");
        opt_int(out, lag(s, g));
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        let take = if count == 0 { usize::MAX } else { count };
        let pel: Vec<_> = g.pel.iter().take(take).collect();
        out.array(pel.len());
        for (id, nack) in pel {
            out.array(4);
            id_reply(out, *id);
            out.bulk(&nack.consumer);
            out.int(nack.delivery_time as i64);
            out.int(nack.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, c) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(c.seen_time as i64);
            out.bulk(b"pel-count");
            out.int(c.pel.len() as i64);
            out.bulk(b"pending");
            let ids: Vec<_> = c.pel.iter().take(take).collect();
            out.array(ids.len());
            for id in ids {
                out.array(3);
                id_reply(out, *id);
                let nack = g.pel.get(id);
                out.int(nack.map_or(0, |n| n.delivery_time as i64));
                out.int(nack.map_or(0, |n| n.delivery_count as i64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::testkit::Harness;

    #[derive(Debug, Clone)]
    enum Op {
        Add,
        Read(u8, u8),
        ReadNoAck(u8),
        Ack(u16),
        Claim(u8, u16),
        AutoClaim(u8, u8),
        Del(u16),
        DelConsumer(u8),
        SetId(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Add),
            3 => (0u8..3, 1u8..5).prop_map(|(c, n)| Op::Read(c, n)),
            1 => (1u8..3).prop_map(Op::ReadNoAck),
            2 => any::<u16>().prop_map(Op::Ack),
            2 => (0u8..3, any::<u16>()).prop_map(|(c, i)| Op::Claim(c, i)),
            1 => (0u8..3, 1u8..4).prop_map(|(c, n)| Op::AutoClaim(c, n)),
            1 => any::<u16>().prop_map(Op::Del),
            1 => (0u8..3).prop_map(Op::DelConsumer),
            1 => any::<u16>().prop_map(Op::SetId),
        ]
    }

    /// What the group's PEL must hold: owner and delivery count by ID.
    type Pel = BTreeMap<u64, (String, u64)>;

    fn pending_reply(pel: &Pel) -> String {
        let mut s = format!("*{}\r\n", pel.len());
        for (ms, (c, n)) in pel {
            let id = format!("{ms}-0");
            s += &format!(
                "*4\r\n${}\r\n{id}\r\n${}\r\n{c}\r\n:0\r\n:{n}\r\n",
                id.len(),
                c.len()
            );
        }
        s
    }

    /// XADD propagates the ID it generated and an approximate trim as the
    /// exact one it made; XTRIM ~ likewise, and nothing when it removed
    /// nothing.
    #[test]
    fn xadd_and_xtrim_propagate_exactly() {
        let mut h = Harness::new();
        h.capture();
        for i in 1..=5 {
            h.run(&format!("XADD s {i}-0 f v"));
        }
        h.run("XADD s MAXLEN ~ 1 6-0 f v");
        let id = h.run("XADD s 7-* f v");
        assert_eq!(id, "$3\r\n7-0\r\n");
        // One node of 7 entries: `~ 5` removes nothing, `~ 0` the node.
        assert_eq!(h.run("XTRIM s MAXLEN ~ 5"), ":0\r\n");
        assert_eq!(h.run("XTRIM s MINID 3"), ":2\r\n");
        assert_eq!(h.run("XTRIM s MAXLEN ~ 0"), ":5\r\n");
        let lines = h.propagated();
        let want = [
            "XADD s MAXLEN = 6 6-0 f v",
            "XADD s 7-0 f v",
            "XTRIM s MINID 3",
            "XTRIM s MAXLEN = 0",
        ];
        for w in want {
            assert!(lines.iter().any(|l| l == w), "{w} not in {lines:?}");
        }
        // The XTRIM that removed nothing was not propagated.
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("MAXLEN ~") || l.contains("= 5")),
            "{lines:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Consumer-group commands against a model of the PEL (owner and
        /// delivery count of each pending ID), and a second server fed
        /// only what the first propagated ends in the same state.
        #[test]
        fn groups_match_a_model_and_their_propagation(ops in proptest::collection::vec(op(), 1..80)) {
            let mut h = Harness::new();
            h.capture();
            h.run("XGROUP CREATE s g 0 MKSTREAM");
            let mut live: Vec<u64> = Vec::new();
            let mut added: Vec<u64> = Vec::new();
            let mut pel = Pel::new();
            let mut last = 0u64;
            for o in ops {
                match o {
                    Op::Add => {
                        let ms = added.len() as u64 + 1;
                        h.run(&format!("XADD s {ms}-0 f v{ms}"));
                        added.push(ms);
                        live.push(ms);
                    }
                    Op::Read(c, n) => {
                        let got: Vec<u64> = live.iter().copied().filter(|&m| m > last).take(n as usize).collect();
                        let r = h.run(&format!("XREADGROUP GROUP g c{c} COUNT {n} STREAMS s >"));
                        if got.is_empty() {
                            prop_assert_eq!(r, "*-1\r\n");
                        } else {
                            prop_assert!(r.starts_with(&format!("*1\r\n*2\r\n$1\r\ns\r\n*{}\r\n", got.len())), "{}", r);
                        }
                        for m in got {
                            pel.insert(m, (format!("c{c}"), 1));
                            last = m;
                        }
                    }
                    Op::ReadNoAck(n) => {
                        let got: Vec<u64> = live.iter().copied().filter(|&m| m > last).take(n as usize).collect();
                        h.run(&format!("XREADGROUP GROUP g c9 COUNT {n} NOACK STREAMS s >"));
                        if let Some(&m) = got.last() {
                            last = m;
                        }
                    }
                    Op::Ack(i) => {
                        if added.is_empty() { continue; }
                        let m = added[i as usize % added.len()];
                        let r = h.run(&format!("XACK s g {m}-0"));
                        prop_assert_eq!(r, format!(":{}\r\n", u8::from(pel.remove(&m).is_some())));
                    }
                    Op::Claim(c, i) => {
                        if added.is_empty() { continue; }
                        let m = added[i as usize % added.len()];
                        h.run(&format!("XCLAIM s g c{c} 0 {m}-0 JUSTID"));
                        if live.contains(&m) {
                            if let Some(e) = pel.get_mut(&m) {
                                e.0 = format!("c{c}");
                            }
                        } else {
                            pel.remove(&m);
                        }
                    }
                    Op::AutoClaim(c, n) => {
                        h.run(&format!("XAUTOCLAIM s g c{c} 0 0 COUNT {n}"));
                        let ids: Vec<u64> = pel.keys().copied().take(n as usize).collect();
                        for m in ids {
                            if live.contains(&m) {
                                if let Some(e) = pel.get_mut(&m) {
                                    e.0 = format!("c{c}");
                                    e.1 += 1;
                                }
                            } else {
                                pel.remove(&m);
                            }
                        }
                    }
                    Op::Del(i) => {
                        if added.is_empty() { continue; }
                        let m = added[i as usize % added.len()];
                        h.run(&format!("XDEL s {m}-0"));
                        live.retain(|&x| x != m);
                    }
                    Op::DelConsumer(c) => {
                        h.run(&format!("XGROUP DELCONSUMER s g c{c}"));
                        pel.retain(|_, e| e.0 != format!("c{c}"));
                    }
                    Op::SetId(i) => {
                        let m = if added.is_empty() { 0 } else { added[i as usize % added.len()] };
                        h.run(&format!("XGROUP SETID s g {m}-0"));
                        last = m;
                    }
                }
                prop_assert_eq!(h.run("XPENDING s g - + 1000"), pending_reply(&pel));
            }
            // The propagated commands rebuild the same stream and group.
            let mut replica = Harness::new();
            replica.now = h.now;
            for argv in h.propagated_argv() {
                let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
                replica.run_args(&refs);
            }
            for line in ["XPENDING s g - + 1000", "XRANGE s - +", "XINFO STREAM s", "XPENDING s g"] {
                prop_assert_eq!(replica.run(line), h.run(line), "{}", line);
            }
        }
    }
}
