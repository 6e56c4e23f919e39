//! Sorted-set commands, mirroring Redis 7.0.15 `t_zset.c`: ZADD (NX/XX/GT/LT/
//! CH/INCR), ZINCRBY, ZREM, ZCARD, ZCOUNT, ZLEXCOUNT, ZSCORE, ZMSCORE, ZRANK,
//! ZREVRANK, ZRANGE (BYSCORE/BYLEX/REV/LIMIT/WITHSCORES) and its old forms,
//! ZRANGESTORE, ZREMRANGEBY{RANK,SCORE,LEX}, ZPOPMIN/ZPOPMAX, ZMPOP,
//! ZRANDMEMBER, ZUNION/ZINTER/ZDIFF (+STORE), ZINTERCARD and ZSCAN.
//!
//! Behaviour kept from Redis, point by point:
//! * Parse order: options and ranges are validated before the key is looked
//!   up (so a syntax error wins over WRONGTYPE), except for the ZUNION family,
//!   which looks every input up (WRONGTYPE) before reading its options.
//! * Score ranges are read like `zslParseRange` (C `strtod`): leading spaces,
//!   an empty bound (= 0), hex and out-of-range values (±inf / 0) are
//!   accepted, NaN and trailing bytes are not; the argument is cut at its
//!   first NUL as C sees it. Lex ranges follow `zslParseLexRangeItem`.
//! * ZRANGE's option loop: LIMIT needs two following arguments, REV/BYSCORE/
//!   BYLEX may appear once and only where the command did not fix them; LIMIT
//!   with a rank range is refused only when its count is not -1.
//! * Reply shapes: RESP3 WITHSCORES replies are arrays of [member, double]
//!   pairs (ZRANGE family, ZRANDMEMBER, ZUNION/ZINTER/ZDIFF, ZPOPMIN/MAX with a
//!   count, ZMPOP always nested); ZSCAN scores are bulk strings.
//! * Store commands build the result and pick the encoding Redis ends up with
//!   (listpack when it fits `zset-max-listpack-*`); an empty result deletes
//!   the destination. Multi-key commands lock all their slots at once.
//! * Union/intersection: inputs sorted by size, weights multiply scores, NaN
//!   sums become 0; results are ordered by (score, member).
//! * Blocking BZPOPMIN/BZPOPMAX/BZMPOP serve at once when a listed key holds
//!   a zset (WRONGTYPE only for a wrong key met before that), otherwise they
//!   block through `crate::block` (timeout: null array).
//! * Changes are reported through `Ctx::changed` with Redis' events and
//!   order (`zadd`/`zincr` only when a score was added or changed, `zrem`,
//!   `zremrangeby*`, `zpopmin`/`zpopmax`, each followed by `del` when the
//!   zset went; the store commands' own event on the destination, or `del`
//!   when an empty result removed an existing one); that also wakes clients
//!   blocked on the key. No change, no report, no propagation.
//! * Propagation rewrites as Redis 7.0.15: ZMPOP/BZMPOP → `ZPOPMIN|ZPOPMAX
//!   key n` (n = what was popped), BZPOPMIN/BZPOPMAX → `ZPOPMIN|ZPOPMAX key`
//!   (the same handler serves a woken client).
//! * ZUNION & co. accept sets as inputs (every member scores 1).

use std::collections::HashMap;

use protocol::command::CmdId;
use protocol::glob::string_match;
use protocol::number::{parse_f64, write_f64};
use protocol::resp::Reply;
use rand::Rng;

use crate::cmd::util::parse_cursor;
use crate::cmd::util::{MAX_REPEAT_PICKS, ReplyBudget, int_arg};
use crate::cmd::util::{c_is as copt, c_str as cstr};
use crate::cmd::util::{scan_head, scan_options};
use crate::db::{Entry, KeyAccess, Object, ValueRef};
use crate::ds::zset::{Item, ZSet};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::{GENERIC, ZSET};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Zadd => zadd,
        CmdId::Zincrby => zincrby,
        CmdId::Zrem => zrem,
        CmdId::Zcard => zcard,
        CmdId::Zcount => zcount,
        CmdId::Zlexcount => zlexcount,
        CmdId::Zscore => zscore,
        CmdId::Zmscore => zmscore,
        CmdId::Zrank => zrank,
        CmdId::Zrevrank => zrevrank,
        CmdId::Zrange => zrange,
        CmdId::Zrangestore => zrangestore,
        CmdId::Zrangebyscore => zrangebyscore,
        CmdId::Zrevrangebyscore => zrevrangebyscore,
        CmdId::Zrangebylex => zrangebylex,
        CmdId::Zrevrangebylex => zrevrangebylex,
        CmdId::Zrevrange => zrevrange,
        CmdId::Zremrangebyrank => zremrangebyrank,
        CmdId::Zremrangebyscore => zremrangebyscore,
        CmdId::Zremrangebylex => zremrangebylex,
        CmdId::Zpopmin => zpopmin,
        CmdId::Zpopmax => zpopmax,
        CmdId::Zmpop => zmpop,
        CmdId::Zrandmember => zrandmember,
        CmdId::Zunion => zunion,
        CmdId::Zinter => zinter,
        CmdId::Zdiff => zdiff,
        CmdId::Zunionstore => zunionstore,
        CmdId::Zinterstore => zinterstore,
        CmdId::Zdiffstore => zdiffstore,
        CmdId::Zintercard => zintercard,
        CmdId::Zscan => zscan,
        CmdId::Bzpopmin => bzpopmin,
        CmdId::Bzpopmax => bzpopmax,
        CmdId::Bzmpop => bzmpop,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

pub(crate) fn zset_ref(e: &Entry) -> Result<&ZSet, CmdError> {
    match e.value() {
        ValueRef::Obj(Object::ZSet(z)) => Ok(z),
        _ => Err(CmdError::WrongType),
    }
}

fn zset_mut(e: &mut Entry) -> Result<&mut ZSet, CmdError> {
    match e.obj_mut() {
        Some(Object::ZSet(z)) => Ok(z),
        _ => Err(CmdError::WrongType),
    }
}

pub(crate) fn limits(ctx: &Ctx) -> (usize, usize) {
    let c = ctx.srv.config();
    (
        usize::try_from(c.zset_max_listpack_entries).unwrap_or(usize::MAX),
        usize::try_from(c.zset_max_listpack_value).unwrap_or(usize::MAX),
    )
}

/// Writes a score as Redis' `addReplyDouble` does.
fn score_reply(out: &mut Reply, s: f64) {
    let mut b = Vec::with_capacity(24);
    write_f64(&mut b, s);
    out.double_text(&b);
}

/// Writes a member (and its score) of a WITHSCORES reply: a [member, score]
/// pair in RESP3, two flat items in RESP2.
#[inline]
fn item_reply(out: &mut Reply, m: &[u8], s: f64, withscores: bool) {
    if withscores && out.resp3 {
        out.array(2);
    }
    out.bulk(m);
    if withscores {
        score_reply(out, s);
    }
}

/// Array header for `n` items of a WITHSCORES-capable reply.
fn items_header(out: &mut Reply, n: usize, withscores: bool) {
    if withscores && !out.resp3 {
        out.array(n * 2);
    } else {
        out.array(n);
    }
}

fn write_items(out: &mut Reply, items: &[Item], withscores: bool) {
    items_header(out, items.len(), withscores);
    for (m, s) in items {
        item_reply(out, m, *s, withscores);
    }
}

/// Parses a float the way `strtod` + "whole string consumed" does.
fn strtod_full(a: &[u8]) -> Option<f64> {
    let a = cstr(a);
    if a.is_empty() {
        return Some(0.0);
    }
    let start = a
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let t = &a[start..];
    let v = match parse_f64(t) {
        Some(v) => v,
        None => {
            // Out-of-range values saturate to ±inf / 0 like strtod.
            let s = std::str::from_utf8(t).ok()?;
            let first = s.as_bytes().first()?;
            if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
                return None;
            }
            s.parse::<f64>().ok()?
        }
    };
    if v.is_nan() { None } else { Some(v) }
}

#[derive(Debug, Clone, Copy)]
struct ScoreRange {
    min: f64,
    max: f64,
    minex: bool,
    maxex: bool,
}

fn parse_score_bound(a: &[u8]) -> Option<(f64, bool)> {
    match a.first() {
        Some(b'(') => strtod_full(&a[1..]).map(|v| (v, true)),
        _ => strtod_full(a).map(|v| (v, false)),
    }
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
    let bad = || CmdError::Static(errors::ZRANGE_NOT_FLOAT);
    let (min, minex) = parse_score_bound(min).ok_or_else(bad)?;
    let (max, maxex) = parse_score_bound(max).ok_or_else(bad)?;
    Ok(ScoreRange {
        min,
        max,
        minex,
        maxex,
    })
}

#[derive(Debug, Clone, Copy)]
enum Lex<'a> {
    Min,
    Max,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

fn parse_lex_item(a: &[u8]) -> Option<Lex<'_>> {
    match a.first() {
        Some(b'+') if a.get(1).is_none_or(|&c| c == 0) => Some(Lex::Max),
        Some(b'-') if a.get(1).is_none_or(|&c| c == 0) => Some(Lex::Min),
        Some(b'(') => Some(Lex::Excl(&a[1..])),
        Some(b'[') => Some(Lex::Incl(&a[1..])),
        _ => None,
    }
}

fn parse_lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<(Lex<'a>, Lex<'a>), CmdError> {
    let bad = || CmdError::Static(errors::ZRANGE_NOT_LEX);
    Ok((
        parse_lex_item(min).ok_or_else(bad)?,
        parse_lex_item(max).ok_or_else(bad)?,
    ))
}

fn lex_gte_min(v: &[u8], min: Lex) -> bool {
    match min {
        Lex::Min => true,
        Lex::Max => false,
        Lex::Incl(m) => v >= m,
        Lex::Excl(m) => v > m,
    }
}

fn lex_lte_max(v: &[u8], max: Lex) -> bool {
    match max {
        Lex::Min => false,
        Lex::Max => true,
        Lex::Incl(m) => v <= m,
        Lex::Excl(m) => v < m,
    }
}

/// Forward rank interval `[a, b)` of a score range.
fn score_interval(z: &ZSet, r: ScoreRange) -> (usize, usize) {
    if r.min > r.max || (r.min == r.max && (r.minex || r.maxex)) {
        return (0, 0);
    }
    let a = if r.minex {
        z.count_while(|s, _| s <= r.min)
    } else {
        z.count_while(|s, _| s < r.min)
    };
    let b = if r.maxex {
        z.count_while(|s, _| s < r.max)
    } else {
        z.count_while(|s, _| s <= r.max)
    };
    if a >= b { (0, 0) } else { (a, b) }
}

fn lex_empty(min: Lex, max: Lex) -> bool {
    fn ord<'a>(x: Lex<'a>) -> (u8, &'a [u8]) {
        match x {
            Lex::Min => (0, &[]),
            Lex::Max => (2, &[]),
            Lex::Incl(v) | Lex::Excl(v) => (1, v),
        }
    }
    let (a, b) = (ord(min), ord(max));
    let ex = matches!(min, Lex::Excl(_) | Lex::Min | Lex::Max)
        || matches!(max, Lex::Excl(_) | Lex::Min | Lex::Max);
    a > b || (a == b && ex)
}

/// Forward rank interval `[a, b)` of a lex range, found the way Redis walks
/// it: the range must pass `zzlIsInLexRange` (last element >= min, first <=
/// max); a forward walk starts at the first element >= min and runs while
/// <= max, a reverse walk starts at the last element <= max and runs while
/// >= min (the same thing unless members are not sorted across scores).
fn lex_interval(z: &ZSet, min: Lex, max: Lex, rev: bool) -> (usize, usize) {
    let len = z.len();
    if lex_empty(min, max) || len == 0 {
        return (0, 0);
    }
    let first_ok = z.get_rank(0).is_some_and(|(m, _)| lex_lte_max(m, max));
    let last_ok = z
        .get_rank(len - 1)
        .is_some_and(|(m, _)| lex_gte_min(m, min));
    if !first_ok || !last_ok {
        return (0, 0);
    }
    if rev && z.is_compact() {
        let items = z.to_vec();
        let Some(last) = items.iter().rposition(|(m, _)| lex_lte_max(m, max)) else {
            return (0, 0);
        };
        let mut a = last + 1;
        while a > 0 && lex_gte_min(&items[a - 1].0, min) {
            a -= 1;
        }
        return if a > last { (0, 0) } else { (a, last + 1) };
    }
    let a = z.count_while(|_, m| !lex_gte_min(m, min));
    let b = z.count_while_from(a, |_, m| lex_lte_max(m, max));
    if a >= b { (0, 0) } else { (a, b) }
}

/// Forward rank interval of Redis' start/end index pair (negative from the
/// end), for a zset of `llen` elements.
fn rank_interval(llen: usize, start: i64, end: i64) -> (usize, usize) {
    let llen_i = llen as i64;
    let mut start = if start < 0 {
        llen_i.saturating_add(start)
    } else {
        start
    };
    let mut end = if end < 0 {
        llen_i.saturating_add(end)
    } else {
        end
    };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen_i {
        return (0, 0);
    }
    if end >= llen_i {
        end = llen_i - 1;
    }
    (start as usize, end as usize + 1)
}

/// Stores `items` (sorted, distinct) at `dst` and reports `event` on it, or
/// deletes `dst` when empty (reporting `del` if it existed); replies with
/// the count.
pub(crate) fn store_result(
    ctx: &mut Ctx,
    r: &mut dyn KeyAccess,
    dst: &[u8],
    items: &[Item],
    lim: (usize, usize),
    event: &'static str,
) {
    if items.is_empty() {
        // dbDelete, which removes even a logically expired destination.
        if r.remove(dst).is_some() {
            ctx.changed(GENERIC, "del", dst);
        }
    } else {
        // Redis' setKey: a write lookup (expiring a stale destination), then
        // the new value.
        let _ = r.get(dst, ctx.now);
        r.remove(dst);
        let z = ZSet::from_sorted(items, lim.0, lim.1);
        r.insert(Entry::new_obj(dst, Object::ZSet(z), None, ctx.lru()));
        ctx.changed(ZSET, event, dst);
    }
    ctx.out.int(items.len() as i64);
}

/// Reports `n` members popped from `key` (Redis' `genericZpopCommand`): the
/// pop event, then `del` when the zset went.
fn report_pop(ctx: &mut Ctx, key: &[u8], max: bool, n: usize, deleted: bool) {
    ctx.changed(ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
    if deleted {
        ctx.notify(GENERIC, "del", key);
    }
    ctx.dirty(n.saturating_sub(1) as u64);
}

/// The non-blocking pop a blocking or multi-key pop propagates as.
fn pop_name(max: bool) -> &'static [u8] {
    if max { b"ZPOPMAX" } else { b"ZPOPMIN" }
}

pub(crate) fn sort_items(items: &mut [Item]) {
    items.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
}

// ---------------------------------------------------------------------------
// ZADD / ZINCRBY / ZREM
// ---------------------------------------------------------------------------

fn zadd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zadd_generic(ctx, argv, false)
}

/// ZADD for another command that rewrites itself into one (GEOADD).
pub(crate) fn zadd_command(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zadd_generic(ctx, argv, false)
}

fn zincrby(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zadd_generic(ctx, argv, true)
}

fn zadd_generic(ctx: &mut Ctx, argv: &[&[u8]], zincr: bool) -> CmdResult {
    let key = argv[1];
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, zincr);
    let mut i = 2;
    if !zincr {
        while let Some(&a) = argv.get(i) {
            if copt(a, "nx") {
                nx = true;
            } else if copt(a, "xx") {
                xx = true;
            } else if copt(a, "gt") {
                gt = true;
            } else if copt(a, "lt") {
                lt = true;
            } else if copt(a, "ch") {
                ch = true;
            } else if copt(a, "incr") {
                incr = true;
            } else {
                break;
            }
            i += 1;
        }
    }
    let pairs = &argv[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::Static(errors::ZADD_XX_NX));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::Static(errors::ZADD_GT_LT_NX));
    }
    if incr && pairs.len() > 2 {
        return Err(CmdError::Static(errors::ZADD_INCR_PAIR));
    }
    for p in pairs.chunks_exact(2) {
        parse_f64(p[0]).ok_or(CmdError::NotFloat)?;
    }
    let lim = limits(ctx);
    let now = ctx.now;
    let lru = ctx.lru();
    let mut r = ctx.ks().lock_key(ctx.db(), key);
    let exists = match r.get(key, now) {
        Some(e) => {
            zset_ref(e)?;
            true
        }
        None => false,
    };
    if !exists {
        if xx {
            if incr {
                ctx.out.null();
            } else {
                ctx.out.int(0);
            }
            return Ok(());
        }
        let z = if lim.0 == 0 || lim.1 < pairs[1].len() {
            ZSet::new_full()
        } else {
            ZSet::new_compact()
        };
        r.insert(Entry::new_obj(key, Object::ZSet(z), None, lru));
    }
    let Some(e) = r.get(key, now) else {
        return Ok(());
    };
    let z = zset_mut(e)?;
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0f64;
    for p in pairs.chunks_exact(2) {
        let mut score = parse_f64(p[0]).unwrap_or(0.0);
        let m = p[1];
        match z.locate(m) {
            Some((pos, cur)) => {
                if nx {
                    continue;
                }
                if incr {
                    score += cur;
                    if score.is_nan() {
                        return Err(CmdError::Static(errors::ZSCORE_NAN));
                    }
                }
                if (lt && score >= cur) || (gt && score <= cur) {
                    continue;
                }
                if score != cur {
                    z.set_score_at(pos, m, score);
                    updated += 1;
                }
                processed += 1;
                last = score;
            }
            None => {
                if xx {
                    continue;
                }
                z.insert_new(m, score, lim.0, lim.1);
                added += 1;
                processed += 1;
                last = score;
            }
        }
    }
    if added + updated > 0 {
        ctx.changed(ZSET, if incr { "zincr" } else { "zadd" }, key);
        ctx.dirty((added + updated - 1) as u64);
    }
    drop(r);
    if incr {
        if processed > 0 {
            score_reply(ctx.out, last);
        } else {
            ctx.out.null();
        }
    } else {
        ctx.out.int(if ch { added + updated } else { added });
    }
    Ok(())
}

fn zrem(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let now = ctx.now;
    let mut r = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = r.get(key, now) else {
        ctx.out.int(0);
        return Ok(());
    };
    let z = zset_mut(e)?;
    let mut n = 0;
    for m in &argv[2..] {
        if z.remove(m) {
            n += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    let emptied = z.is_empty();
    if emptied {
        r.remove(key);
    }
    if n > 0 {
        ctx.changed(ZSET, "zrem", key);
        if emptied {
            ctx.notify(GENERIC, "del", key);
        }
        ctx.dirty(n as u64 - 1);
    }
    ctx.out.int(n);
    Ok(())
}

// ---------------------------------------------------------------------------
// Point reads
// ---------------------------------------------------------------------------

/// Runs `f` on the zset at `key` (read lookup, counts hits); `None` when the
/// key is missing.
fn read<R>(
    ctx: &mut Ctx,
    key: &[u8],
    f: impl FnOnce(&ZSet, &mut Reply) -> R,
) -> Result<Option<R>, CmdError> {
    ctx.read_key(key, |out, e| match e {
        Some(e) => Ok(Some(f(zset_ref(e)?, out))),
        None => Ok(None),
    })
}

fn zcard(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let n = read(ctx, argv[1], |z, _| z.len())?.unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

fn zscore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    match read(ctx, argv[1], |z, _| z.score(argv[2]))?.flatten() {
        Some(s) => score_reply(ctx.out, s),
        None => ctx.out.null(),
    }
    Ok(())
}

fn zmscore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let ms = &argv[2..];
    let done = read(ctx, argv[1], |z, out| {
        out.array(ms.len());
        for m in ms {
            match z.score(m) {
                Some(s) => score_reply(out, s),
                None => out.null(),
            }
        }
    })?;
    if done.is_none() {
        ctx.out.array(ms.len());
        for _ in ms {
            ctx.out.null();
        }
    }
    Ok(())
}

fn zrank(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    rank_generic(ctx, argv, false)
}

fn zrevrank(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    rank_generic(ctx, argv, true)
}

fn rank_generic(ctx: &mut Ctx, argv: &[&[u8]], rev: bool) -> CmdResult {
    let got = read(ctx, argv[1], |z, _| {
        z.rank(argv[2])
            .map(|(r, _)| if rev { z.len() - 1 - r } else { r })
    })?;
    match got.flatten() {
        Some(r) => ctx.out.int(r as i64),
        None => ctx.out.null(),
    }
    Ok(())
}

fn zcount(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let range = parse_score_range(argv[2], argv[3])?;
    let n = read(ctx, argv[1], |z, _| {
        let (a, b) = score_interval(z, range);
        b - a
    })?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

fn zlexcount(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (min, max) = parse_lex_range(argv[2], argv[3])?;
    let n = read(ctx, argv[1], |z, _| {
        let (a, b) = lex_interval(z, min, max, false);
        b - a
    })?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZRANGE family
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dir {
    Auto,
    Fwd,
    Rev,
}

enum Spec<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(Lex<'a>, Lex<'a>),
}

/// Rank interval `[a, b)` for a parsed range, offset and limit; elements are
/// emitted from `a` upwards, or from `b - 1` downwards when `rev`.
fn range_interval(z: &ZSet, spec: &Spec, rev: bool, offset: i64, limit: i64) -> (usize, usize) {
    let len = z.len();
    let (a, b) = match *spec {
        Spec::Rank(s, e) => {
            let (a, b) = rank_interval(len, s, e);
            if a >= b {
                return (0, 0);
            }
            return if rev { (len - b, len - a) } else { (a, b) };
        }
        Spec::Score(r) => score_interval(z, r),
        Spec::Lex(min, max) => lex_interval(z, min, max, rev),
    };
    if a >= b || offset < 0 {
        return (0, 0);
    }
    let off = usize::try_from(offset).unwrap_or(usize::MAX);
    if let Spec::Lex(min, max) = *spec
        && off > 0
        && z.is_compact()
    {
        return lex_offset_walk(z, (a, b), min, max, rev, off, limit);
    }
    if !rev {
        let a2 = a.saturating_add(off);
        if a2 >= b {
            return (0, 0);
        }
        let b2 = if limit < 0 {
            b
        } else {
            b.min(a2.saturating_add(limit as usize))
        };
        (a2, b2)
    } else {
        if off >= b - a {
            return (0, 0);
        }
        let b2 = b - off;
        let a2 = if limit < 0 {
            a
        } else {
            a.max(b2.saturating_sub(limit as usize))
        };
        (a2, b2)
    }
}

/// Redis' listpack walk for a lex range with an offset: skip `off` elements
/// from the first (last, when `rev`) element in range without checking them,
/// then emit while the far bound holds. Differs from plain rank arithmetic
/// only when members are not sorted across scores.
fn lex_offset_walk(
    z: &ZSet,
    (a, b): (usize, usize),
    min: Lex,
    max: Lex,
    rev: bool,
    off: usize,
    limit: i64,
) -> (usize, usize) {
    let len = z.len();
    let cap = if limit < 0 {
        usize::MAX
    } else {
        limit as usize
    };
    if !rev {
        let a2 = a.saturating_add(off);
        if a2 >= len {
            return (0, 0);
        }
        let b2 = z
            .count_while_from(a2, |_, m| lex_lte_max(m, max))
            .min(a2.saturating_add(cap));
        if b2 <= a2 { (0, 0) } else { (a2, b2) }
    } else {
        let Some(start) = (b - 1).checked_sub(off) else {
            return (0, 0);
        };
        let items = z.to_vec();
        let mut a2 = start + 1;
        while a2 > 0
            && start + 1 - a2 < cap
            && items.get(a2 - 1).is_some_and(|(m, _)| lex_gte_min(m, min))
        {
            a2 -= 1;
        }
        if a2 > start { (0, 0) } else { (a2, start + 1) }
    }
}

fn zrange_generic(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    store: bool,
    mut rtype: RangeType,
    mut dir: Dir,
) -> CmdResult {
    let base = if store { 2 } else { 1 };
    let key = argv[base];
    let (mut minidx, mut maxidx) = (base + 1, base + 2);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = base + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j];
        if !store && copt(a, "withscores") {
            withscores = true;
        } else if copt(a, "limit") && left >= 2 {
            offset = int_arg(argv[j + 1])?;
            limit = int_arg(argv[j + 2])?;
            j += 2;
        } else if dir == Dir::Auto && copt(a, "rev") {
            dir = Dir::Rev;
        } else if rtype == RangeType::Auto && copt(a, "bylex") {
            rtype = RangeType::Lex;
        } else if rtype == RangeType::Auto && copt(a, "byscore") {
            rtype = RangeType::Score;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if dir == Dir::Auto {
        dir = Dir::Fwd;
    }
    if rtype == RangeType::Auto {
        rtype = RangeType::Rank;
    }
    if limit != -1 && rtype == RangeType::Rank {
        return Err(CmdError::Static(errors::ZRANGE_LIMIT_RANK));
    }
    if withscores && rtype == RangeType::Lex {
        return Err(CmdError::Static(errors::ZRANGE_WITHSCORES_LEX));
    }
    let rev = dir == Dir::Rev;
    if rev && rtype != RangeType::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let spec = match rtype {
        RangeType::Score => Spec::Score(parse_score_range(argv[minidx], argv[maxidx])?),
        RangeType::Lex => {
            let (a, b) = parse_lex_range(argv[minidx], argv[maxidx])?;
            Spec::Lex(a, b)
        }
        _ => Spec::Rank(int_arg(argv[minidx])?, int_arg(argv[maxidx])?),
    };
    let now = ctx.now;
    if store {
        let dst = argv[1];
        let lim = limits(ctx);
        let lru = ctx.lru();
        let mut r = ctx.ks().lock_keys(ctx.db(), [dst, key]);
        let items = match r.get(key, now) {
            Some(e) => {
                // Redis' lookupKeyRead: a hit (whatever the type), a touch.
                ctx.hit(true);
                e.touch(lru);
                let z = zset_ref(e)?;
                let (a, b) = range_interval(z, &spec, rev, offset, limit);
                let mut v = Vec::with_capacity(b.saturating_sub(a));
                z.for_ranks(a, b, false, |m, s| v.push((m.to_vec(), s)));
                v
            }
            None => {
                ctx.hit(false);
                Vec::new()
            }
        };
        store_result(ctx, &mut r, dst, &items, lim, "zrangestore");
        return Ok(());
    }
    ctx.read_key(key, |out, e| {
        let Some(e) = e else {
            out.array(0);
            return Ok(());
        };
        let z = zset_ref(e)?;
        let (a, b) = range_interval(z, &spec, rev, offset, limit);
        items_header(out, b.saturating_sub(a), withscores);
        z.for_ranks(a, b, rev, |m, s| item_reply(out, m, s, withscores));
        Ok(())
    })
}

fn zrange(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, argv, false, RangeType::Auto, Dir::Auto)
}

fn zrangestore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, argv, true, RangeType::Auto, Dir::Auto)
}

fn zrevrange(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, argv, false, RangeType::Rank, Dir::Rev)
}

fn zrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, argv, false, RangeType::Score, Dir::Fwd)
}

fn zrevrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, argv, false, RangeType::Score, Dir::Rev)
}

fn zrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, argv, false, RangeType::Lex, Dir::Fwd)
}

fn zrevrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, argv, false, RangeType::Lex, Dir::Rev)
}

// ---------------------------------------------------------------------------
// ZREMRANGEBY*
// ---------------------------------------------------------------------------

fn zremrange_generic(ctx: &mut Ctx, key: &[u8], spec: Spec) -> CmdResult {
    let event = match spec {
        Spec::Rank(..) => "zremrangebyrank",
        Spec::Score(_) => "zremrangebyscore",
        Spec::Lex(..) => "zremrangebylex",
    };
    let now = ctx.now;
    let mut r = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = r.get(key, now) else {
        ctx.out.int(0);
        return Ok(());
    };
    let z = zset_mut(e)?;
    let (a, b) = range_interval(z, &spec, false, 0, -1);
    let n = z.remove_ranks(a, b);
    let emptied = z.is_empty();
    if emptied {
        r.remove(key);
    }
    if n > 0 {
        ctx.changed(ZSET, event, key);
        if emptied {
            ctx.notify(GENERIC, "del", key);
        }
        ctx.dirty(n as u64 - 1);
    }
    ctx.out.int(n as i64);
    Ok(())
}

fn zremrangebyrank(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let spec = Spec::Rank(int_arg(argv[2])?, int_arg(argv[3])?);
    zremrange_generic(ctx, argv[1], spec)
}

fn zremrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let spec = Spec::Score(parse_score_range(argv[2], argv[3])?);
    zremrange_generic(ctx, argv[1], spec)
}

fn zremrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (a, b) = parse_lex_range(argv[2], argv[3])?;
    zremrange_generic(ctx, argv[1], Spec::Lex(a, b))
}

// ---------------------------------------------------------------------------
// Pops
// ---------------------------------------------------------------------------

fn zpopmin(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zpop_generic(ctx, argv, false)
}

fn zpopmax(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zpop_generic(ctx, argv, true)
}

fn zpop_generic(ctx: &mut Ctx, argv: &[&[u8]], max: bool) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let key = argv[1];
    let count = match argv.get(2) {
        Some(c) => match int_arg(c) {
            Ok(v) if v >= 0 => Some(v as u64),
            _ => return Err(CmdError::Static(errors::NOT_POSITIVE)),
        },
        None => None,
    };
    let now = ctx.now;
    let mut r = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = r.get(key, now) else {
        ctx.out.array(0);
        return Ok(());
    };
    let z = zset_mut(e)?;
    // Count 0 answers after the lookup and type check, as in Redis.
    if count == Some(0) {
        ctx.out.array(0);
        return Ok(());
    }
    let n = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    let out = &mut *ctx.out;
    let nested = count.is_some() && out.resp3;
    let k = n.min(z.len());
    if nested {
        out.array(k);
    } else {
        out.array(k * 2);
    }
    pop_into(z, max, k, out, nested);
    let emptied = z.is_empty();
    if emptied {
        r.remove(key);
    }
    report_pop(ctx, key, max, k, emptied);
    Ok(())
}

/// Pops `k` elements writing them as pairs (nested) or flat.
fn pop_into(z: &mut ZSet, max: bool, k: usize, out: &mut Reply, nested: bool) {
    if k == 1 {
        // Hot path (ZPOPMIN without count): no intermediate vector.
        let r = if max { z.len() - 1 } else { 0 };
        if let Some((m, s)) = z.get_rank(r) {
            if nested {
                out.array(2);
            }
            out.bulk(m);
            score_reply(out, s);
        }
        z.remove_ranks(r, r + 1);
        return;
    }
    for (m, s) in z.pop(max, k) {
        if nested {
            out.array(2);
        }
        out.bulk(&m);
        score_reply(out, s);
    }
}

fn zmpop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zmpop_generic(ctx, argv, false)
}

fn bzmpop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    zmpop_generic(ctx, argv, true)
}

fn zmpop_generic(ctx: &mut Ctx, argv: &[&[u8]], block: bool) -> CmdResult {
    let nk_idx = if block { 2 } else { 1 };
    let numkeys = match int_arg(argv[nk_idx]) {
        Ok(n) if n >= 1 => n as usize,
        _ => return Err(CmdError::Static(errors::NUMKEYS_NOT_POSITIVE)),
    };
    let where_idx = numkeys.saturating_add(nk_idx + 1);
    if where_idx >= argv.len() {
        return Err(CmdError::Syntax);
    }
    let max = if copt(argv[where_idx], "min") {
        false
    } else if copt(argv[where_idx], "max") {
        true
    } else {
        return Err(CmdError::Syntax);
    };
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < argv.len() {
        if copt(argv[j], "count") && j + 1 < argv.len() && count == -1 {
            count = match int_arg(argv[j + 1]) {
                Ok(c) if c >= 1 => c,
                _ => return Err(CmdError::Static(errors::COUNT_NOT_POSITIVE)),
            };
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let deadline = if block {
        crate::block::parse_timeout(argv[1], ctx.now)?
    } else {
        None
    };
    let count = if count == -1 { 1 } else { count as usize };
    let keys = &argv[nk_idx + 1..where_idx];
    let now = ctx.now;
    let mut r = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
    for &k in keys {
        let Some(e) = r.get(k, now) else { continue };
        let z = zset_mut(e)?;
        let out = &mut *ctx.out;
        out.array(2);
        out.bulk(k);
        let n = count.min(z.len());
        out.array(n);
        pop_into(z, max, n, out, true);
        let emptied = z.is_empty();
        if emptied {
            r.remove(k);
        }
        report_pop(ctx, k, max, n, emptied);
        if ctx.propagating() {
            let mut buf = itoa::Buffer::new();
            ctx.propagate(&[pop_name(max), k, buf.format(n).as_bytes()]);
        }
        return Ok(());
    }
    drop(r);
    if block {
        ctx.block_on(argv, keys, deadline, crate::block::Nil::Array);
    } else {
        ctx.out.null_array();
    }
    Ok(())
}

fn bzpopmin(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    bzpop_generic(ctx, argv, false)
}

fn bzpopmax(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    bzpop_generic(ctx, argv, true)
}

/// BZPOPMIN/BZPOPMAX key [key ...] timeout: replies [key, member, score].
fn bzpop_generic(ctx: &mut Ctx, argv: &[&[u8]], max: bool) -> CmdResult {
    let last = argv.len() - 1;
    let deadline = crate::block::parse_timeout(argv[last], ctx.now)?;
    let keys = &argv[1..last];
    let now = ctx.now;
    let mut r = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
    for &k in keys {
        let Some(e) = r.get(k, now) else { continue };
        let z = zset_mut(e)?;
        let out = &mut *ctx.out;
        out.array(3);
        out.bulk(k);
        pop_into(z, max, 1, out, false);
        let emptied = z.is_empty();
        if emptied {
            r.remove(k);
        }
        report_pop(ctx, k, max, 1, emptied);
        ctx.propagate(&[pop_name(max), k]);
        return Ok(());
    }
    drop(r);
    ctx.block_on(argv, keys, deadline, crate::block::Nil::Array);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER
// ---------------------------------------------------------------------------

fn zrandmember(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let Some(&ca) = argv.get(2) else {
        let got = read(ctx, key, |z, _| {
            let r = rand::rng().random_range(0..z.len().max(1));
            z.get_rank(r).map(|(m, _)| m.to_vec())
        })?;
        match got.flatten() {
            Some(m) => ctx.out.bulk(&m),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let l = int_arg(ca)?;
    if l == i64::MIN {
        return Err(CmdError::Static(errors::COUNT_RANGE_NOT_LONG_MIN));
    }
    if argv.len() > 4 || (argv.len() == 4 && !copt(argv[3], "withscores")) {
        return Err(CmdError::Syntax);
    }
    let withscores = argv.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::Static(errors::JUST_OUT_OF_RANGE));
    }
    let budget = ReplyBudget::new(ctx);
    let got = read(ctx, key, |z, out| -> CmdResult {
        let len = z.len();
        let mut rng = rand::rng();
        if l == 0 || len == 0 {
            out.array(0);
        } else if l < 0 {
            if l.unsigned_abs() > MAX_REPEAT_PICKS {
                return Err(CmdError::Static(errors::JUST_OUT_OF_RANGE));
            }
            let n = l.unsigned_abs() as usize;
            items_header(out, n, withscores);
            for _ in 0..n {
                if let Some((m, s)) = z.get_rank(rng.random_range(0..len)) {
                    item_reply(out, m, s, withscores);
                    if budget.spent(out) {
                        return budget.exceeded(out);
                    }
                }
            }
        } else {
            let n = l as usize;
            if n >= len {
                items_header(out, len, withscores);
                z.for_ranks(0, len, false, |m, s| item_reply(out, m, s, withscores));
            } else {
                // Distinct ranks: shuffle-select n of len.
                let mut ranks: Vec<usize> = if n * 3 > len {
                    let mut all: Vec<usize> = (0..len).collect();
                    for i in 0..n {
                        let j = rng.random_range(i..len);
                        all.swap(i, j);
                    }
                    all.truncate(n);
                    all
                } else {
                    let mut seen = std::collections::HashSet::with_capacity(n);
                    while seen.len() < n {
                        seen.insert(rng.random_range(0..len));
                    }
                    seen.into_iter().collect()
                };
                if z.is_compact() {
                    ranks.sort_unstable();
                }
                items_header(out, n, withscores);
                for r in ranks {
                    if let Some((m, s)) = z.get_rank(r) {
                        item_reply(out, m, s, withscores);
                    }
                }
            }
        }
        Ok(())
    })?;
    match got {
        Some(r) => r,
        None => {
            ctx.out.array(0);
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF (+STORE), ZINTERCARD
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Sum,
    Min,
    Max,
}

#[inline]
fn aggregate(agg: Agg, target: &mut f64, v: f64) {
    match agg {
        Agg::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Agg::Min => {
            if v < *target {
                *target = v;
            }
        }
        Agg::Max => {
            if v > *target {
                *target = v;
            }
        }
    }
}

/// One input of a set operation: its elements (None = missing key).
type Input = Option<Vec<Item>>;

/// Reads every input key (read lookups: counted as hits/misses): zsets, or sets with every score 1 (WRONGTYPE for
/// other values).
fn read_inputs(
    ctx: &Ctx,
    r: &mut dyn KeyAccess,
    keys: &[&[u8]],
    now: u64,
) -> Result<Vec<Input>, CmdError> {
    let mut v = Vec::with_capacity(keys.len());
    for k in keys {
        let e = r.get(k, now);
        ctx.hit(e.is_some());
        match e {
            Some(e) => match e.value() {
                ValueRef::Obj(Object::ZSet(z)) => v.push(Some(z.to_vec())),
                ValueRef::Obj(Object::Set(st)) => v.push(Some(
                    st.iter()
                        .map(|m| (m.with_bytes(|b| b.to_vec()), 1.0))
                        .collect(),
                )),
                _ => return Err(CmdError::WrongType),
            },
            None => v.push(None),
        }
    }
    Ok(v)
}

fn compute(op: SetOp, inputs: Vec<Input>, weights: &[f64], agg: Agg) -> Vec<Item> {
    let mut srcs: Vec<(Vec<Item>, f64)> = inputs
        .into_iter()
        .zip(weights.iter().copied())
        .map(|(i, w)| (i.unwrap_or_default(), w))
        .collect();
    let mut out: Vec<Item> = Vec::new();
    let wscore = |w: f64, s: f64| {
        let v = w * s;
        if v.is_nan() { 0.0 } else { v }
    };
    match op {
        SetOp::Union => {
            srcs.sort_by_key(|s| s.0.len());
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            for (items, w) in srcs {
                for (m, s) in items {
                    let v = wscore(w, s);
                    match acc.get_mut(&m) {
                        Some(t) => aggregate(agg, t, v),
                        None => {
                            acc.insert(m, v);
                        }
                    }
                }
            }
            out = acc.into_iter().collect();
        }
        SetOp::Inter => {
            srcs.sort_by_key(|s| s.0.len());
            let Some(((first, w0), rest)) = srcs.split_first() else {
                return out;
            };
            let maps: Vec<(HashMap<&[u8], f64>, f64)> = rest
                .iter()
                .map(|(items, w)| (items.iter().map(|(m, s)| (m.as_slice(), *s)).collect(), *w))
                .collect();
            'outer: for (m, s) in first {
                let mut score = wscore(*w0, *s);
                for (map, w) in &maps {
                    match map.get(m.as_slice()) {
                        Some(&v) => aggregate(agg, &mut score, wscore(*w, v)),
                        None => continue 'outer,
                    }
                }
                out.push((m.clone(), score));
            }
        }
        SetOp::Diff => {
            let Some(((first, _), rest)) = srcs.split_first() else {
                return out;
            };
            let others: Vec<std::collections::HashSet<&[u8]>> = rest
                .iter()
                .map(|(items, _)| items.iter().map(|(m, _)| m.as_slice()).collect())
                .collect();
            for (m, s) in first {
                if !others.iter().any(|o| o.contains(m.as_slice())) {
                    out.push((m.clone(), *s));
                }
            }
        }
    }
    sort_items(&mut out);
    out
}

fn numkeys_error(name: &str) -> CmdError {
    CmdError::msg(format!(
        "{}{}{}",
        errors::AT_LEAST_ONE_KEY_PREFIX,
        name,
        errors::AT_LEAST_ONE_KEY_SUFFIX
    ))
}

fn setop_generic(ctx: &mut Ctx, argv: &[&[u8]], op: SetOp, store: bool) -> CmdResult {
    let nk_idx = if store { 2 } else { 1 };
    let numkeys = int_arg(argv[nk_idx])?;
    if numkeys < 1 {
        return Err(numkeys_error(ctx.spec.name));
    }
    let numkeys = numkeys as usize;
    if numkeys > argv.len() - nk_idx - 1 {
        return Err(CmdError::Syntax);
    }
    let keys = &argv[nk_idx + 1..nk_idx + 1 + numkeys];
    let now = ctx.now;
    let lim = limits(ctx);
    let dst = if store { Some(argv[1]) } else { None };
    let mut r = ctx
        .ks()
        .lock_keys(ctx.db(), keys.iter().copied().chain(dst));
    let inputs = read_inputs(ctx, &mut r, keys, now)?;
    let mut weights = vec![1.0f64; numkeys];
    let mut agg = Agg::Sum;
    let mut withscores = false;
    let mut j = nk_idx + 1 + numkeys;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let a = argv[j];
        if op != SetOp::Diff && remaining > numkeys && copt(a, "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                *w =
                    parse_f64(argv[j + 1 + i]).ok_or(CmdError::Static(errors::WEIGHT_NOT_FLOAT))?;
            }
            j += numkeys + 1;
        } else if op != SetOp::Diff && remaining > 1 && copt(a, "aggregate") {
            let v = argv[j + 1];
            agg = if copt(v, "sum") {
                Agg::Sum
            } else if copt(v, "min") {
                Agg::Min
            } else if copt(v, "max") {
                Agg::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if !store && copt(a, "withscores") {
            withscores = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let items = compute(op, inputs, &weights, agg);
    let event = match op {
        SetOp::Union => "zunionstore",
        SetOp::Inter => "zinterstore",
        SetOp::Diff => "zdiffstore",
    };
    match dst {
        Some(d) => store_result(ctx, &mut r, d, &items, lim, event),
        None => write_items(ctx.out, &items, withscores),
    }
    Ok(())
}

fn zunion(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, argv, SetOp::Union, false)
}

fn zinter(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, argv, SetOp::Inter, false)
}

fn zdiff(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, argv, SetOp::Diff, false)
}

fn zunionstore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, argv, SetOp::Union, true)
}

fn zinterstore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, argv, SetOp::Inter, true)
}

fn zdiffstore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, argv, SetOp::Diff, true)
}

fn zintercard(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let numkeys = int_arg(argv[1])?;
    if numkeys < 1 {
        return Err(numkeys_error("zintercard"));
    }
    let numkeys = numkeys as usize;
    if numkeys > argv.len() - 2 {
        return Err(CmdError::Syntax);
    }
    let keys = &argv[2..2 + numkeys];
    let mut limit: usize = 0;
    let mut j = 2 + numkeys;
    while j < argv.len() {
        if copt(argv[j], "limit") && j + 1 < argv.len() {
            limit = match int_arg(argv[j + 1]) {
                Ok(v) if v >= 0 => v as usize,
                _ => return Err(CmdError::Static(errors::LIMIT_NEGATIVE)),
            };
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now;
    let mut r = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
    let inputs = read_inputs(ctx, &mut r, keys, now)?;
    drop(r);
    let weights = vec![1.0; numkeys];
    let mut n = compute(SetOp::Inter, inputs, &weights, Agg::Sum).len();
    if limit > 0 {
        n = n.min(limit);
    }
    ctx.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZSCAN
// ---------------------------------------------------------------------------

fn zscan(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(argv[2])?;
    ctx.read_key(argv[1], |out, e| {
        let Some(e) = e else {
            scan_head(out, 0, 0);
            return Ok(());
        };
        let z = zset_ref(e)?;
        let (count, pat) = scan_options(&argv[3..])?;
        let mut found: Vec<Item> = Vec::new();
        let mut take = |m: &[u8], s: f64| {
            if pat.is_none_or(|p| string_match(p, m, false)) {
                found.push((m.to_vec(), s));
            }
        };
        let next = if z.is_compact() {
            z.for_ranks(0, z.len(), false, &mut take);
            0
        } else {
            z.scan_full(cursor, count, &mut take)
        };
        scan_head(out, next, found.len() * 2);
        let mut b = Vec::with_capacity(24);
        for (m, s) in &found {
            out.bulk(m);
            b.clear();
            write_f64(&mut b, *s);
            out.bulk(&b);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_like_bounds() {
        assert_eq!(strtod_full(b""), Some(0.0));
        assert_eq!(strtod_full(b"  1.5"), Some(1.5));
        assert_eq!(strtod_full(b"1.5 "), None);
        assert_eq!(strtod_full(b"   "), None);
        assert_eq!(strtod_full(b"nan"), None);
        assert_eq!(strtod_full(b"1e400"), Some(f64::INFINITY));
        assert_eq!(strtod_full(b"-1e400"), Some(f64::NEG_INFINITY));
        assert_eq!(strtod_full(b"0x10"), Some(16.0));
        assert_eq!(strtod_full(b"+inf"), Some(f64::INFINITY));
        assert_eq!(strtod_full(b"1\0zz"), Some(1.0));
    }

    #[test]
    fn rank_intervals() {
        assert_eq!(rank_interval(5, 0, -1), (0, 5));
        assert_eq!(rank_interval(5, -100, 1), (0, 2));
        assert_eq!(rank_interval(5, 3, 1), (0, 0));
        assert_eq!(rank_interval(5, 5, 10), (0, 0));
        assert_eq!(rank_interval(5, i64::MIN, i64::MAX), (0, 5));
    }

    #[test]
    fn lex_items() {
        assert!(matches!(parse_lex_item(b"-"), Some(Lex::Min)));
        assert!(matches!(parse_lex_item(b"+"), Some(Lex::Max)));
        assert!(parse_lex_item(b"+a").is_none());
        assert!(parse_lex_item(b"").is_none());
        assert!(parse_lex_item(b"a").is_none());
        assert!(matches!(parse_lex_item(b"(a"), Some(Lex::Excl(b"a"))));
        assert!(lex_empty(Lex::Min, Lex::Min));
        assert!(!lex_empty(Lex::Incl(b"a"), Lex::Incl(b"a")));
        assert!(lex_empty(Lex::Incl(b"b"), Lex::Incl(b"a")));
    }

    use crate::testkit::Harness;

    #[test]
    fn multi_key_and_blocking_pops_propagate_zpop() {
        let mut h = Harness::new();
        h.capture();
        h.run("ZADD z 1 a 2 b 3 c 4 d");
        h.run("ZMPOP 2 nokey z MIN COUNT 2");
        h.run("BZPOPMAX nokey z 0");
        h.run("BZMPOP 0 1 z MAX COUNT 10");
        h.run("ZADD y 1 a");
        h.run("ZPOPMIN y 10");
        assert_eq!(
            h.propagated(),
            [
                "SELECT 0",
                "ZADD z 1 a 2 b 3 c 4 d",
                "ZPOPMIN z 2",
                "ZPOPMAX z",
                "ZPOPMAX z 1",
                "ZADD y 1 a",
                "ZPOPMIN y 10",
            ]
        );
        assert_eq!(h.run("EXISTS z y"), ":0\r\n");
    }

    #[test]
    fn zset_commands_that_change_nothing_are_not_propagated() {
        let mut h = Harness::new();
        h.capture();
        h.run("ZADD z 1 a 2 b");
        h.run("SADD s m");
        for line in [
            "ZADD z 1 a",
            "ZADD z XX 5 nomember",
            "ZADD nokey XX 1 a",
            "ZADD z NX 5 a",
            "ZADD z GT 0 b",
            "ZADD z LT INCR 1 a",
            "ZADD s 1 a",
            "ZINCRBY z 0 a",
            "ZADD z INCR +inf a",
            "ZADD z INCR -inf a",
            "ZREM z nomember",
            "ZREM nokey a",
            "ZREMRANGEBYSCORE z 10 20",
            "ZREMRANGEBYRANK z 5 10",
            "ZREMRANGEBYLEX z [x [y",
            "ZPOPMIN nokey",
            "ZPOPMIN z 0",
            "ZMPOP 1 nokey MIN",
            "ZUNIONSTORE dst 1 nokey",
            "ZINTERSTORE dst 2 z nokey",
            "ZDIFFSTORE dst 2 z z",
            "ZRANGESTORE dst z 5 10",
        ] {
            h.run(line);
        }
        // The INCR to +inf changed a's score; the -inf one failed (NaN).
        assert_eq!(
            h.propagated(),
            [
                "SELECT 0",
                "ZADD z 1 a 2 b",
                "SADD s m",
                "ZADD z INCR +inf a"
            ]
        );
        assert_eq!(h.run("ZPOPMIN s 0"), format!("-{}\r\n", errors::WRONGTYPE));
        assert_eq!(h.run("ZPOPMIN z 1 2"), "-ERR syntax error\r\n");
        // An empty result removing an existing destination is a change.
        h.run("ZRANGESTORE s z 5 10");
        assert_eq!(h.propagated(), ["ZRANGESTORE s z 5 10"]);
        assert_eq!(h.run("EXISTS s"), ":0\r\n");
    }
}
