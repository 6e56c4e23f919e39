//! List commands (Redis 7.0 `t_list.c` behaviour): LPUSH, RPUSH, LPUSHX,
//! RPUSHX, LINSERT, LLEN, LINDEX, LSET, LRANGE, LTRIM, LREM, LPOS, LPOP, RPOP,
//! LMPOP, LMOVE, RPOPLPUSH and the blocking BLPOP, BRPOP, BLMPOP, BLMOVE,
//! BRPOPLPUSH (waiting is done by block.rs).
//!
//! * Argument errors come in Redis' order (options before the key lookup,
//!   except LINDEX/LSET which look the key up first).
//! * Emptied lists are deleted. Every change is reported through
//!   `Ctx::changed` with Redis' class, event names and order (a pop that
//!   empties a list: `lpop`/`rpop`, then `del`; LMOVE: the push event on the
//!   destination, then the pop event on the source); that also wakes clients
//!   blocked on the key. A command that changes nothing reports nothing and is
//!   not propagated.
//! * Propagation rewrites as Redis 7.0.15: LMPOP/BLMPOP → `LPOP|RPOP key n`
//!   (n = what was popped), BLPOP/BRPOP → `LPOP|RPOP key`, BLMOVE → `LMOVE`,
//!   BRPOPLPUSH → `RPOPLPUSH` (the same handler serves a woken client, so both
//!   paths propagate the same way).
//! * Keyspace hits/misses are counted where Redis uses `lookupKeyRead`
//!   (LLEN, LINDEX, LRANGE, LPOS), not for write lookups.

use protocol::command::CmdId;
use protocol::number::parse_i64;

use crate::block::{self, Nil};
use crate::cmd::util::{int_arg, is};
use crate::db::{Entry, KeyAccess, Object, ValueRef};
use crate::ds::List;
use crate::ds::list::DEFAULT_FILL;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::{GENERIC, LIST};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Lpush => lpush,
        CmdId::Rpush => rpush,
        CmdId::Lpushx => lpushx,
        CmdId::Rpushx => rpushx,
        CmdId::Linsert => linsert,
        CmdId::Llen => llen,
        CmdId::Lindex => lindex,
        CmdId::Lset => lset,
        CmdId::Lrange => lrange,
        CmdId::Ltrim => ltrim,
        CmdId::Lrem => lrem,
        CmdId::Lpos => lpos,
        CmdId::Lpop => lpop,
        CmdId::Rpop => rpop,
        CmdId::Lmpop => lmpop,
        CmdId::Lmove => lmove,
        CmdId::Rpoplpush => rpoplpush,
        CmdId::Blpop => blpop,
        CmdId::Brpop => brpop,
        CmdId::Blmpop => blmpop,
        CmdId::Blmove => blmove,
        CmdId::Brpoplpush => brpoplpush,
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

fn parse_end(a: &[u8]) -> Result<End, CmdError> {
    if is(a, "left") {
        Ok(End::Left)
    } else if is(a, "right") {
        Ok(End::Right)
    } else {
        Err(CmdError::Syntax)
    }
}

fn fill(ctx: &Ctx) -> i32 {
    match ctx.srv.config().list_max_listpack_size {
        0 => DEFAULT_FILL,
        f => f,
    }
}

fn list_mut(e: &mut Entry) -> Result<&mut List, CmdError> {
    match e.obj_mut() {
        Some(Object::List(l)) => Ok(l),
        _ => Err(CmdError::WrongType),
    }
}

fn list_ref(e: &Entry) -> Result<&List, CmdError> {
    match e.value() {
        ValueRef::Obj(Object::List(l)) => Ok(l),
        _ => Err(CmdError::WrongType),
    }
}

fn push(l: &mut List, end: End, v: &[u8], fill: i32) {
    match end {
        End::Left => l.push_front(v, fill),
        End::Right => l.push_back(v, fill),
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// The non-blocking pop a pop from `end` propagates as.
fn pop_name(end: End) -> &'static [u8] {
    match end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    }
}

/// Reports `n` elements popped from `key` (Redis' `listElementsRemoved`):
/// the pop event, then `del` when the pop emptied (and deleted) the list.
fn report_pop(ctx: &mut Ctx, key: &[u8], end: End, n: usize, deleted: bool) {
    ctx.changed(LIST, pop_event(end), key);
    if deleted {
        ctx.notify(GENERIC, "del", key);
    }
    ctx.dirty(n.saturating_sub(1) as u64);
}

fn pop_with<R>(l: &mut List, end: End, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    match end {
        End::Left => l.pop_front_with(f),
        End::Right => l.pop_back_with(f),
    }
}

// --- push -------------------------------------------------------------------

fn push_generic(ctx: &mut Ctx, argv: &[&[u8]], end: End, only_existing: bool) -> CmdResult {
    let key = argv[1];
    let fill = fill(ctx);
    let lru = ctx.lru();
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let len = match s.get(key, ctx.now) {
        Some(e) => {
            let l = list_mut(e)?;
            if end == End::Right {
                l.extend_back(argv[2..].iter().copied(), fill);
            } else {
                for v in &argv[2..] {
                    l.push_front(v, fill);
                }
            }
            l.len()
        }
        None if only_existing => {
            drop(s);
            ctx.out.int(0);
            return Ok(());
        }
        None => {
            let mut l = List::new();
            if end == End::Right {
                l.extend_back(argv[2..].iter().copied(), fill);
            } else {
                for v in &argv[2..] {
                    l.push_front(v, fill);
                }
            }
            let n = l.len();
            s.insert(Entry::new_obj(key, Object::List(l), None, lru));
            n
        }
    };
    ctx.changed(LIST, push_event(end), key);
    ctx.dirty((argv.len() - 3) as u64);
    drop(s);
    ctx.out.int(len as i64);
    Ok(())
}

fn lpush(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    push_generic(ctx, argv, End::Left, false)
}

fn rpush(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    push_generic(ctx, argv, End::Right, false)
}

fn lpushx(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    push_generic(ctx, argv, End::Left, true)
}

fn rpushx(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    push_generic(ctx, argv, End::Right, true)
}

fn linsert(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let after = if is(argv[2], "after") {
        true
    } else if is(argv[2], "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let (pivot, val) = (argv[3], argv[4]);
    let fill = fill(ctx);
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = s.get(key, ctx.now) else {
        drop(s);
        ctx.out.int(0);
        return Ok(());
    };
    let l = list_mut(e)?;
    let Some(pos) = l.iter().position(|v| v == pivot) else {
        drop(s);
        ctx.out.int(-1);
        return Ok(());
    };
    l.insert(if after { pos + 1 } else { pos }, val, fill);
    let n = l.len();
    ctx.changed(LIST, "linsert", key);
    drop(s);
    ctx.out.int(n as i64);
    Ok(())
}

// --- read -------------------------------------------------------------------

fn llen(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let n = ctx.read_key(argv[1], |_, e| e.map_or(Ok(0), |e| Ok(list_ref(e)?.len())))?;
    ctx.out.int(n as i64);
    Ok(())
}

/// Normalizes a possibly negative index; None when out of range.
fn norm_index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { i.checked_add(len as i64)? } else { i };
    if i < 0 || i as u64 >= len as u64 {
        None
    } else {
        Some(i as usize)
    }
}

fn lindex(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ctx.read_key(argv[1], |out, e| {
        let Some(e) = e else {
            out.null();
            return Ok(());
        };
        let l = list_ref(e)?;
        let idx = int_arg(argv[2])?;
        match norm_index(idx, l.len()).and_then(|i| l.get(i)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
        Ok(())
    })
}

fn lset(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let fill = fill(ctx);
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = s.get(key, ctx.now) else {
        return Err(CmdError::NoSuchKey);
    };
    let l = list_mut(e)?;
    let idx = int_arg(argv[2])?;
    let Some(i) = norm_index(idx, l.len()) else {
        return Err(CmdError::Static(errors::INDEX_OUT_OF_RANGE));
    };
    l.set(i, argv[3], fill);
    ctx.changed(LIST, "lset", key);
    drop(s);
    ctx.out.ok();
    Ok(())
}

/// Redis' range normalization (LRANGE/LTRIM): Some((start, end)) inclusive,
/// or None for an empty range.
fn norm_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 {
        start.saturating_add(len)
    } else {
        start
    };
    let mut e = if end < 0 {
        end.saturating_add(len)
    } else {
        end
    };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

fn lrange(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let start = int_arg(argv[2])?;
    let end = int_arg(argv[3])?;
    ctx.read_key(argv[1], |out, e| {
        let Some(e) = e else {
            out.array(0);
            return Ok(());
        };
        let l = list_ref(e)?;
        match norm_range(start, end, l.len()) {
            None => out.array(0),
            Some((a, b)) => {
                let n = b - a + 1;
                out.array(n);
                for v in l.iter_from(a).take(n) {
                    out.bulk(v);
                }
            }
        }
        Ok(())
    })
}

fn ltrim(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let start = int_arg(argv[2])?;
    let end = int_arg(argv[3])?;
    let fill = fill(ctx);
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    if let Some(e) = s.get(key, ctx.now) {
        let l = list_mut(e)?;
        let len = l.len();
        let kept = match norm_range(start, end, len) {
            None => {
                s.remove(key);
                0
            }
            Some((a, b)) => {
                l.keep_range(a, b, fill);
                b - a + 1
            }
        };
        let trimmed = len - kept;
        if trimmed > 0 {
            ctx.changed(LIST, "ltrim", key);
            if kept == 0 {
                ctx.notify(GENERIC, "del", key);
            }
            ctx.dirty(trimmed as u64 - 1);
        } else {
            // Redis signals the key (WATCH) and notifies `ltrim` even when
            // nothing was trimmed, but adds nothing to the command's dirty
            // count, so it is not propagated (the server-wide counter still
            // counts one here).
            ctx.srv.changed(ctx.client.db, LIST, "ltrim", key);
        }
    }
    drop(s);
    ctx.out.ok();
    Ok(())
}

fn lrem(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let count = int_arg(argv[2])?;
    let elem = argv[3];
    let fill = fill(ctx);
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = s.get(key, ctx.now) else {
        drop(s);
        ctx.out.int(0);
        return Ok(());
    };
    let l = list_mut(e)?;
    let limit = count.unsigned_abs() as usize;
    let removed = if count >= 0 {
        let mut seen = 0usize;
        l.remove_where(fill, |_, v| {
            if v == elem && (count == 0 || seen < limit) {
                seen += 1;
                true
            } else {
                false
            }
        })
    } else {
        // From the tail: skip the first (total - limit) matches.
        let total = l.iter().filter(|v| *v == elem).count();
        let skip = total.saturating_sub(limit);
        let mut seen = 0usize;
        l.remove_where(fill, |_, v| {
            if v == elem {
                seen += 1;
                seen > skip
            } else {
                false
            }
        })
    };
    let emptied = l.is_empty();
    if emptied {
        s.remove(key);
    }
    if removed > 0 {
        ctx.changed(LIST, "lrem", key);
        if emptied {
            ctx.notify(GENERIC, "del", key);
        }
        ctx.dirty(removed as u64 - 1);
    }
    drop(s);
    ctx.out.int(removed as i64);
    Ok(())
}

/// Parses a non-negative option value; any failure replies `msg`.
fn positive_or(a: &[u8], msg: &'static str) -> Result<i64, CmdError> {
    match parse_i64(a) {
        Some(v) if v >= 0 => Ok(v),
        _ => Err(CmdError::Static(msg)),
    }
}

fn lpos(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let elem = argv[2];
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut i = 3;
    while i < argv.len() {
        let opt = argv[i];
        let Some(&val) = argv.get(i + 1) else {
            return Err(CmdError::Syntax);
        };
        if is(opt, "rank") {
            rank = int_arg(val)?;
            if rank == 0 {
                return Err(CmdError::Static(errors::LPOS_RANK_ZERO));
            }
        } else if is(opt, "count") {
            count = Some(positive_or(val, errors::LPOS_COUNT_NEGATIVE)?);
        } else if is(opt, "maxlen") {
            maxlen = positive_or(val, errors::LPOS_MAXLEN_NEGATIVE)?;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    ctx.read_key(key, |out, e| {
        let Some(e) = e else {
            match count {
                Some(_) => out.array(0),
                None => out.null(),
            }
            return Ok(());
        };
        let l = list_ref(e)?;
        let len = l.len();
        let from_tail = rank < 0;
        let want_rank = rank.unsigned_abs();
        let limit = if maxlen == 0 {
            usize::MAX
        } else {
            maxlen as usize
        };
        let mut found: Vec<usize> = Vec::new();
        let mut matches = 0u64;
        let mut scan = |it: &mut dyn Iterator<Item = &[u8]>| {
            for (k, v) in it.take(limit).enumerate() {
                if v == elem {
                    matches += 1;
                    if matches >= want_rank {
                        found.push(if from_tail { len - 1 - k } else { k });
                        match count {
                            None => break,
                            Some(c) if c > 0 && found.len() as i64 >= c => break,
                            _ => {}
                        }
                    }
                }
            }
        };
        if from_tail {
            scan(&mut l.rev_iter());
        } else {
            scan(&mut l.iter());
        }
        match count {
            Some(_) => {
                out.array(found.len());
                for f in found {
                    out.int(f as i64);
                }
            }
            None => match found.first() {
                Some(&f) => out.int(f as i64),
                None => out.null(),
            },
        }
        Ok(())
    })
}

// --- pop ----------------------------------------------------------------------

fn pop_generic(ctx: &mut Ctx, argv: &[&[u8]], end: End) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::msg(errors::wrong_arity(ctx.spec.name)));
    }
    let key = argv[1];
    let count = match argv.get(2) {
        Some(a) => Some(positive_or(a, errors::NOT_POSITIVE)? as usize),
        None => None,
    };
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = s.get(key, ctx.now) else {
        drop(s);
        match count {
            Some(_) => ctx.out.null_array(),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let l = list_mut(e)?;
    let n = match count {
        None => {
            pop_with(l, end, |v| ctx.out.bulk(v));
            1
        }
        Some(c) => {
            let n = c.min(l.len());
            ctx.out.array(n);
            for _ in 0..n {
                pop_with(l, end, |v| ctx.out.bulk(v));
            }
            n
        }
    };
    let emptied = l.is_empty();
    if emptied {
        s.remove(key);
    }
    if n > 0 {
        report_pop(ctx, key, end, n, emptied);
    }
    Ok(())
}

fn lpop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    pop_generic(ctx, argv, End::Left)
}

fn rpop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    pop_generic(ctx, argv, End::Right)
}

/// Parsed `numkeys key... LEFT|RIGHT [COUNT n]` starting at argv[at].
struct MpopArgs<'a> {
    keys: Vec<&'a [u8]>,
    end: End,
    count: usize,
}

fn parse_mpop<'a>(argv: &[&'a [u8]], at: usize) -> Result<MpopArgs<'a>, CmdError> {
    let numkeys = match parse_i64(argv[at]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(CmdError::Static(errors::NUMKEYS_NOT_POSITIVE)),
    };
    let first = at + 1;
    // Keys, then the direction.
    if numkeys > argv.len().saturating_sub(first + 1) {
        return Err(CmdError::Syntax);
    }
    let keys = argv[first..first + numkeys].to_vec();
    let mut i = first + numkeys;
    let end = parse_end(argv.get(i).copied().ok_or(CmdError::Syntax)?)?;
    i += 1;
    let mut count: Option<usize> = None;
    while i < argv.len() {
        if is(argv[i], "count") && count.is_none() && i + 1 < argv.len() {
            match parse_i64(argv[i + 1]) {
                Some(n) if n > 0 => count = Some(n as usize),
                _ => return Err(CmdError::Static(errors::COUNT_NOT_POSITIVE)),
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(MpopArgs {
        keys,
        end,
        count: count.unwrap_or(1),
    })
}

/// Pops up to `count` from the first non-empty key; writes `[key, [elems]]`
/// and propagates `LPOP|RPOP key n` (Redis' rewrite of LMPOP and BLMPOP).
/// Returns false (nothing written) when every key is missing.
/// Keys are checked in order: the first existing non-list key is a WRONGTYPE
/// error, as in Redis.
fn mpop_serve(ctx: &mut Ctx, keys: &[&[u8]], end: End, count: usize) -> Result<bool, CmdError> {
    let mut g = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
    for &key in keys {
        let Some(e) = g.get(key, ctx.now) else {
            continue;
        };
        let l = list_mut(e)?;
        let n = count.min(l.len());
        ctx.out.array(2);
        ctx.out.bulk(key);
        ctx.out.array(n);
        for _ in 0..n {
            pop_with(l, end, |v| ctx.out.bulk(v));
        }
        let emptied = l.is_empty();
        if emptied {
            g.remove(key);
        }
        report_pop(ctx, key, end, n, emptied);
        if ctx.propagating() {
            let mut buf = itoa::Buffer::new();
            ctx.propagate(&[pop_name(end), key, buf.format(n).as_bytes()]);
        }
        return Ok(true);
    }
    Ok(false)
}

fn lmpop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let a = parse_mpop(argv, 1)?;
    if !mpop_serve(ctx, &a.keys, a.end, a.count)? {
        ctx.out.null_array();
    }
    Ok(())
}

// --- move ---------------------------------------------------------------------

/// LMOVE core: false when the source is missing. Reports the push on `dst`,
/// then the pop on `src` (and its `del` when emptied), as Redis does; with
/// `src == dst` the element rotates within the one list.
fn move_serve(ctx: &mut Ctx, src: &[u8], dst: &[u8], from: End, to: End) -> Result<bool, CmdError> {
    let fill = fill(ctx);
    let lru = ctx.lru();
    let now = ctx.now;
    let mut g = ctx.ks().lock_keys(ctx.db(), [src, dst]);
    let Some(e) = g.get(src, now) else {
        return Ok(false);
    };
    list_ref(e)?;
    if let Some(d) = g.get(dst, now) {
        list_ref(d)?;
    }
    let Some(e) = g.get(src, now) else {
        return Ok(false);
    };
    let l = list_mut(e)?;
    let Some(v) = pop_with(l, from, |v| v.to_vec()) else {
        return Ok(false);
    };
    let mut emptied = false;
    if src == dst {
        push(l, to, &v, fill);
    } else {
        emptied = l.is_empty();
        if emptied {
            g.remove(src);
        }
        match g.get(dst, now) {
            Some(d) => push(list_mut(d)?, to, &v, fill),
            None => {
                let mut l = List::new();
                l.push_back(&v, fill);
                g.insert(Entry::new_obj(dst, Object::List(l), None, lru));
            }
        }
    }
    ctx.changed(LIST, push_event(to), dst);
    ctx.changed(LIST, pop_event(from), src);
    if emptied {
        ctx.notify(GENERIC, "del", src);
    }
    drop(g);
    ctx.out.bulk(&v);
    Ok(true)
}

fn lmove(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let from = parse_end(argv[3])?;
    let to = parse_end(argv[4])?;
    if !move_serve(ctx, argv[1], argv[2], from, to)? {
        ctx.out.null();
    }
    Ok(())
}

fn rpoplpush(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if !move_serve(ctx, argv[1], argv[2], End::Right, End::Left)? {
        ctx.out.null();
    }
    Ok(())
}

// --- blocking -----------------------------------------------------------------

fn bpop_generic(ctx: &mut Ctx, argv: &[&[u8]], end: End) -> CmdResult {
    let last = argv.len() - 1;
    let deadline = block::parse_timeout(argv[last], ctx.now)?;
    let keys = &argv[1..last];
    {
        let mut g = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
        for &key in keys {
            let Some(e) = g.get(key, ctx.now) else {
                continue;
            };
            let l = list_mut(e)?;
            ctx.out.array(2);
            ctx.out.bulk(key);
            pop_with(l, end, |v| ctx.out.bulk(v));
            let emptied = l.is_empty();
            if emptied {
                g.remove(key);
            }
            report_pop(ctx, key, end, 1, emptied);
            ctx.propagate(&[pop_name(end), key]);
            return Ok(());
        }
    }
    ctx.block_on(argv, keys, deadline, Nil::Array);
    Ok(())
}

fn blpop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    bpop_generic(ctx, argv, End::Left)
}

fn brpop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    bpop_generic(ctx, argv, End::Right)
}

fn blmpop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let a = parse_mpop(argv, 2)?;
    let deadline = block::parse_timeout(argv[1], ctx.now)?;
    if !mpop_serve(ctx, &a.keys, a.end, a.count)? {
        ctx.block_on(argv, &a.keys, deadline, Nil::Array);
    }
    Ok(())
}

fn blmove(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let from = parse_end(argv[3])?;
    let to = parse_end(argv[4])?;
    let deadline = block::parse_timeout(argv[5], ctx.now)?;
    if move_serve(ctx, argv[1], argv[2], from, to)? {
        ctx.propagate(&[&b"LMOVE"[..], argv[1], argv[2], argv[3], argv[4]]);
    } else {
        ctx.block_on(argv, &[argv[1]], deadline, Nil::Array);
    }
    Ok(())
}

fn brpoplpush(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let deadline = block::parse_timeout(argv[3], ctx.now)?;
    if move_serve(ctx, argv[1], argv[2], End::Right, End::Left)? {
        ctx.propagate(&[&b"RPOPLPUSH"[..], argv[1], argv[2]]);
    } else {
        ctx.block_on(argv, &[argv[1]], deadline, Nil::Array);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    #[test]
    fn ranges() {
        assert_eq!(norm_range(0, -1, 3), Some((0, 2)));
        assert_eq!(norm_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(norm_range(2, 1, 3), None);
        assert_eq!(norm_range(3, 5, 3), None);
        assert_eq!(norm_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(norm_index(-1, 3), Some(2));
        assert_eq!(norm_index(-4, 3), None);
        assert_eq!(norm_index(3, 3), None);
        assert_eq!(norm_index(i64::MIN, 3), None);
    }

    #[test]
    fn mpop_args() {
        let argv: Vec<&[u8]> = vec![b"LMPOP", b"2", b"a", b"b", b"LEFT", b"COUNT", b"3"];
        let a = parse_mpop(&argv, 1).unwrap();
        assert_eq!(a.keys, vec![&b"a"[..], b"b"]);
        assert_eq!(a.count, 3);
        let argv: Vec<&[u8]> = vec![b"LMPOP", b"3", b"a", b"left"];
        assert_eq!(parse_mpop(&argv, 1).err(), Some(CmdError::Syntax));
        let argv: Vec<&[u8]> = vec![b"LMPOP", b"0", b"a", b"left"];
        assert_eq!(
            parse_mpop(&argv, 1).err(),
            Some(CmdError::Static(errors::NUMKEYS_NOT_POSITIVE))
        );
    }

    #[test]
    fn pops_propagate_their_non_blocking_form() {
        let mut h = Harness::new();
        h.capture();
        h.run("RPUSH l a b c");
        assert_eq!(
            h.run("LMPOP 2 nokey l LEFT COUNT 5"),
            "*2\r\n$1\r\nl\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        h.run("RPUSH l a b");
        h.run("BLPOP nokey l 0");
        h.run("BRPOP l 0");
        h.run("RPUSH s x y");
        h.run("BLMOVE s d left RIGHT 0");
        h.run("BRPOPLPUSH d s 0");
        h.run("BLMPOP 0 1 s RIGHT COUNT 1");
        h.run("LMOVE s s LEFT LEFT");
        h.run("RPOP s 3");
        assert_eq!(
            h.propagated(),
            [
                "SELECT 0",
                "RPUSH l a b c",
                "LPOP l 3",
                "RPUSH l a b",
                "LPOP l",
                "RPOP l",
                "RPUSH s x y",
                "LMOVE s d left RIGHT",
                "RPOPLPUSH d s",
                "RPOP s 1",
                "LMOVE s s LEFT LEFT",
                "RPOP s 3",
            ]
        );
        assert_eq!(h.run("EXISTS l s d"), ":0\r\n");
    }

    #[test]
    fn a_woken_pop_propagates_like_an_immediate_one() {
        let mut h = Harness::new();
        h.capture();
        h.run("RPUSH src x");
        // block.rs serves a woken client by running its command again.
        let info = std::sync::Arc::new(crate::client::ClientInfo::new(
            2,
            String::new(),
            String::new(),
            -1,
            0,
        ));
        let mut other = crate::client::Client::new(info, true);
        let mut out = protocol::resp::Reply::new();
        let argv: [&[u8]; 6] = [b"BLMOVE", b"src", b"dst", b"RIGHT", b"LEFT", b"0"];
        crate::exec::call_wakeup(&h.srv, &mut other, &mut out, h.now, &argv);
        assert_eq!(out.buf, b"$1\r\nx\r\n");
        let argv: [&[u8]; 3] = [b"BRPOP", b"dst", b"0"];
        crate::exec::call_wakeup(&h.srv, &mut other, &mut out, h.now, &argv);
        assert_eq!(
            h.propagated(),
            [
                "SELECT 0",
                "RPUSH src x",
                "LMOVE src dst RIGHT LEFT",
                "RPOP dst"
            ]
        );
    }

    #[test]
    fn commands_that_change_nothing_are_not_propagated() {
        let mut h = Harness::new();
        h.capture();
        h.run("RPUSH l a b");
        h.run("SADD str v");
        for line in [
            "LPUSHX nokey a",
            "RPUSHX nokey a",
            "LPUSH str a",
            "LINSERT l BEFORE nopivot x",
            "LINSERT nokey AFTER a x",
            "LSET l 5 x",
            "LSET nokey 0 x",
            "LREM l 0 zz",
            "LREM nokey 0 a",
            "LPOP nokey",
            "LPOP l 0",
            "RPOP nokey 2",
            "LTRIM nokey 0 1",
            "LTRIM l 0 -1",
            "LMOVE nokey l LEFT LEFT",
            "LMOVE l str LEFT LEFT",
            "LMPOP 2 nokey other LEFT",
            "MULTI",
            "BLPOP nokey 0",
            "BLMOVE nokey l LEFT LEFT 0",
            "EXEC",
        ] {
            h.run(line);
        }
        assert_eq!(h.run("LRANGE l 0 -1"), "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        assert_eq!(h.propagated(), ["SELECT 0", "RPUSH l a b", "SADD str v"]);
        // A trim that removes something is propagated as is.
        h.run("LTRIM l 1 1");
        h.run("LTRIM l 5 10");
        assert_eq!(h.propagated(), ["LTRIM l 1 1", "LTRIM l 5 10"]);
        assert_eq!(h.run("EXISTS l"), ":0\r\n");
    }
}
