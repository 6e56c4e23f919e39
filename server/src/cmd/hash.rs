//! Hash commands, mirroring Redis 7.0.15 `t_hash.c`: HSET, HMSET, HSETNX,
//! HGET, HMGET, HDEL, HLEN, HSTRLEN, HEXISTS, HKEYS, HVALS, HGETALL, HINCRBY,
//! HINCRBYFLOAT, HRANDFIELD and HSCAN. The value type is `ds::Hash`.
//!
//! Behaviour kept from Redis, point by point:
//! * Encodings convert at the same points as Redis (see `ds::hash`): HSET and
//!   HMSET look at every argument's length before writing
//!   (`hashTypeTryConversion`), HSETNX only when the field is new (an existing
//!   field replies 0 and leaves the encoding alone), HINCRBY/HINCRBYFLOAT only
//!   at the stored field and value; the thresholds are read from the live
//!   config.
//! * HSET/HMSET with an odd number of field/value arguments reply Redis' arity
//!   error; HDEL deletes the key with its last field; a key never holds an
//!   empty hash.
//! * HINCRBY: `ERR value is not an integer or out of range` for the increment
//!   (checked before the key), `ERR hash value is not an integer` for a stored
//!   value `string2ll` refuses, `ERR increment or decrement would overflow`.
//!   HINCRBYFLOAT: `ERR value is not a valid float` / `ERR value is NaN or
//!   Infinity` for the increment, `ERR hash value is not a float` for the
//!   stored value, `ERR increment would produce NaN or Infinity` for the sum;
//!   the arithmetic and formatting are `protocol::number::incrbyfloat`'s
//!   (long double, `%.17Lf` trimmed).
//! * HGETALL is a RESP3 map (`%0` for a missing key); HKEYS/HVALS arrays.
//! * HRANDFIELD: the count is parsed before the key is looked up
//!   (`i64::MIN` and, with WITHVALUES, counts beyond ±i64::MAX/2 are out of
//!   range; a fourth argument other than WITHVALUES or a fifth is a syntax
//!   error). Count 0 or a missing key: empty array. A positive count returns
//!   distinct fields: the whole hash, in its order, when the count reaches the
//!   size (so huge positive counts are cheap). A negative count returns that
//!   many picks with repeats. WITHVALUES pairs are flat in RESP2 and
//!   two-element arrays in RESP3. Redis 7.0 tries to build any negative-count
//!   reply, which for astronomically large counts exhausts its memory; we
//!   refuse counts above [`MAX_REPEAT_PICKS`] with `ERR value is out of range`
//!   and hold the reply to a [`ReplyBudget`].
//! * HSCAN: the cursor is parsed first (`ERR invalid cursor`), a missing key
//!   replies an empty scan without looking at the options, then WRONGTYPE,
//!   then the options (COUNT < 1 and TYPE are syntax errors). A compact hash
//!   is returned whole with cursor 0, as Redis' listpack; MATCH filters on
//!   fields (a filtered field drops its value).
//! * Changes are reported through `Ctx::changed` as Redis does: `hset` for
//!   HSET/HMSET (always, one dirty per pair) and for HSETNX (only when it set
//!   the field), `hdel` (then `del` when the hash went), `hincrby`,
//!   `hincrbyfloat`. HINCRBYFLOAT propagates as `HSET key field <new value>`.
//! * Keyspace hits/misses are counted where Redis uses `lookupKeyRead`
//!   (HGET, HMGET, HLEN, HSTRLEN, HEXISTS, HKEYS, HVALS, HGETALL, HRANDFIELD,
//!   HSCAN), not for the write commands.

use protocol::command::CmdId;
use protocol::glob::string_match;
use protocol::number::{IncrFloatError, incrbyfloat, parse_i64};
use protocol::resp::Reply;

use crate::cmd::util::c_is as kw;
use crate::cmd::util::parse_cursor;
use crate::cmd::util::{MAX_REPEAT_PICKS, ReplyBudget, int_arg};
use crate::cmd::util::{scan_head, scan_options, scan_reply};
use crate::db::{Entry, KeyAccess, Object, ValueRef};
use crate::ds::Hash;
use crate::ds::hash::Limits;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::{GENERIC, HASH};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Hset => hset,
        CmdId::Hmset => hmset,
        CmdId::Hsetnx => hsetnx,
        CmdId::Hget => hget,
        CmdId::Hmget => hmget,
        CmdId::Hdel => hdel,
        CmdId::Hlen => hlen,
        CmdId::Hstrlen => hstrlen,
        CmdId::Hexists => hexists,
        CmdId::Hkeys => hkeys,
        CmdId::Hvals => hvals,
        CmdId::Hgetall => hgetall,
        CmdId::Hincrby => hincrby,
        CmdId::Hincrbyfloat => hincrbyfloat,
        CmdId::Hrandfield => hrandfield,
        CmdId::Hscan => hscan,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

fn limits(ctx: &Ctx) -> Limits {
    let c = ctx.srv.config();
    Limits {
        max_entries: usize::try_from(c.hash_max_listpack_entries).unwrap_or(usize::MAX),
        max_value: usize::try_from(c.hash_max_listpack_value).unwrap_or(usize::MAX),
    }
}

fn hash_mut(e: &mut Entry) -> Result<&mut Hash, CmdError> {
    match e.obj_mut() {
        Some(Object::Hash(h)) => Ok(h),
        _ => Err(CmdError::WrongType),
    }
}

fn hash_ref(e: &Entry) -> Result<&Hash, CmdError> {
    match e.value() {
        ValueRef::Obj(Object::Hash(h)) => Ok(h),
        _ => Err(CmdError::WrongType),
    }
}

/// A read lookup (`lookupKeyRead`: counts a hit or miss, touches the LRU),
/// then `f` with the reply and the hash (`None` when the key is missing).
/// WRONGTYPE is returned before `f` runs.
fn read_hash<R>(
    ctx: &mut Ctx,
    key: &[u8],
    f: impl FnOnce(&mut Reply, Option<&Hash>) -> R,
) -> Result<R, CmdError> {
    ctx.read_key(key, |out, e| match e {
        None => Ok(f(out, None)),
        Some(e) => Ok(f(out, Some(hash_ref(e)?))),
    })
}

/// A write lookup (`lookupKeyWrite` + create): runs `f` on the existing hash,
/// or on a new empty one that is stored afterwards when `f` succeeded and
/// left it non-empty. Deletes the key when `f` empties an existing hash.
fn write_hash<R>(
    ctx: &mut Ctx,
    key: &[u8],
    f: impl FnOnce(&mut Hash) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    match slot.get(key, now) {
        Some(e) => {
            e.touch(lru);
            let h = hash_mut(e)?;
            let r = f(h);
            if h.is_empty() {
                slot.remove(key);
            }
            r
        }
        None => {
            let mut h = Hash::new();
            let r = f(&mut h)?;
            if !h.is_empty() {
                slot.insert(Entry::new_obj(key, Object::Hash(h), None, lru));
            }
            Ok(r)
        }
    }
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

fn hset_generic(ctx: &mut Ctx, argv: &[&[u8]], name: &str) -> Result<usize, CmdError> {
    if argv.len() % 2 == 1 {
        return Err(CmdError::Msg(errors::wrong_arity(name)));
    }
    let lim = limits(ctx);
    let created = write_hash(ctx, argv[1], |h| Ok(h.set_pairs(&argv[2..], &lim)))?;
    ctx.changed(HASH, "hset", argv[1]);
    ctx.dirty(((argv.len() - 2) / 2 - 1) as u64);
    Ok(created)
}

fn hset(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let n = hset_generic(ctx, argv, "hset")?;
    ctx.out.int(n as i64);
    Ok(())
}

fn hmset(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    hset_generic(ctx, argv, "hmset")?;
    ctx.out.ok();
    Ok(())
}

fn hsetnx(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let lim = limits(ctx);
    let (field, value) = (argv[2], argv[3]);
    let created = write_hash(ctx, argv[1], |h| {
        if h.contains(field) {
            return Ok(false);
        }
        h.prepare(&argv[2..4], &lim);
        Ok(h.set(field, value, &lim))
    })?;
    if created {
        ctx.changed(HASH, "hset", argv[1]);
    }
    ctx.out.int(created as i64);
    Ok(())
}

fn hdel(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let mut deleted = 0i64;
    if let Some(e) = slot.get(key, now) {
        e.touch(lru);
        let h = hash_mut(e)?;
        for f in &argv[2..] {
            if h.remove(f) {
                deleted += 1;
                if h.is_empty() {
                    break;
                }
            }
        }
        let emptied = h.is_empty();
        if emptied {
            slot.remove(key);
        } else {
            h.trim();
        }
        if deleted > 0 {
            ctx.changed(HASH, "hdel", key);
            if emptied {
                ctx.notify(GENERIC, "del", key);
            }
            ctx.dirty(deleted as u64 - 1);
        }
    }
    drop(slot);
    ctx.out.int(deleted);
    Ok(())
}

fn hincrby(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let incr = int_arg(argv[3])?;
    let lim = limits(ctx);
    let field = argv[2];
    let v = write_hash(ctx, argv[1], |h| {
        let cur = match h.get(field) {
            Some(v) => parse_i64(v).ok_or(CmdError::Static(errors::HASH_VALUE_NOT_INTEGER))?,
            None => 0,
        };
        let new = cur.checked_add(incr).ok_or(CmdError::Overflow)?;
        h.set(field, itoa::Buffer::new().format(new).as_bytes(), &lim);
        Ok(new)
    })?;
    ctx.changed(HASH, "hincrby", argv[1]);
    ctx.out.int(v);
    Ok(())
}

fn hincrbyfloat(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    // The increment alone: not a float, or NaN/infinite.
    match incrbyfloat(None, argv[3]) {
        Ok(_) => {}
        Err(IncrFloatError::NotFloat) => return Err(CmdError::NotFloat),
        Err(IncrFloatError::NanOrInf) => return Err(CmdError::Static(errors::VALUE_NAN_OR_INF)),
    }
    let lim = limits(ctx);
    let field = argv[2];
    let text = write_hash(ctx, argv[1], |h| {
        let text = incrbyfloat(h.get(field), argv[3]).map_err(|e| match e {
            IncrFloatError::NotFloat => CmdError::Static(errors::HASH_VALUE_NOT_FLOAT),
            IncrFloatError::NanOrInf => CmdError::Static(errors::INCR_NAN),
        })?;
        h.set(field, &text, &lim);
        Ok(text)
    })?;
    ctx.changed(HASH, "hincrbyfloat", argv[1]);
    // The result, not the increment, so replicas and the AOF agree whatever
    // their float formatting.
    ctx.propagate(&[&b"HSET"[..], argv[1], field, text.as_slice()]);
    ctx.out.bulk(&text);
    Ok(())
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

fn hget(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let field = argv[2];
    read_hash(ctx, argv[1], |out, h| match h.and_then(|h| h.get(field)) {
        Some(v) => out.bulk(v),
        None => out.null(),
    })
}

fn hmget(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let fields = &argv[2..];
    read_hash(ctx, argv[1], |out, h| {
        out.array(fields.len());
        for f in fields {
            match h.and_then(|h| h.get(f)) {
                Some(v) => out.bulk(v),
                None => out.null(),
            }
        }
    })
}

fn hlen(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    read_hash(ctx, argv[1], |out, h| {
        out.int(h.map_or(0, |h| h.len()) as i64)
    })
}

fn hstrlen(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let field = argv[2];
    read_hash(ctx, argv[1], |out, h| {
        out.int(h.and_then(|h| h.get(field)).map_or(0, |v| v.len()) as i64)
    })
}

fn hexists(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let field = argv[2];
    read_hash(ctx, argv[1], |out, h| {
        out.int(h.is_some_and(|h| h.contains(field)) as i64)
    })
}

fn hkeys(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    read_hash(ctx, argv[1], |out, h| {
        out.array(h.map_or(0, |h| h.len()));
        for (f, _) in h.into_iter().flat_map(|h| h.iter()) {
            out.bulk(f);
        }
    })
}

fn hvals(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    read_hash(ctx, argv[1], |out, h| {
        out.array(h.map_or(0, |h| h.len()));
        for (_, v) in h.into_iter().flat_map(|h| h.iter()) {
            out.bulk(v);
        }
    })
}

fn hgetall(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    read_hash(ctx, argv[1], |out, h| {
        out.map(h.map_or(0, |h| h.len()));
        for (f, v) in h.into_iter().flat_map(|h| h.iter()) {
            out.bulk(f);
            out.bulk(v);
        }
    })
}

/// Writes one HRANDFIELD element (a pair in RESP3 WITHVALUES).
#[inline]
fn write_pick(out: &mut Reply, withvalues: bool, f: &[u8], v: &[u8]) {
    if withvalues && out.resp3 {
        out.array(2);
    }
    out.bulk(f);
    if withvalues {
        out.bulk(v);
    }
}

/// The array header of an HRANDFIELD reply of `n` picks.
fn pick_header(out: &mut Reply, withvalues: bool, n: usize) {
    if withvalues && !out.resp3 {
        out.array(n.saturating_mul(2));
    } else {
        out.array(n);
    }
}

/// HRANDFIELD key [count [WITHVALUES]]
fn hrandfield(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() == 2 {
        let mut rng = rand::rng();
        return read_hash(ctx, argv[1], |out, h| {
            match h.and_then(|h| h.random_pair(&mut rng)) {
                Some((f, _)) => out.bulk(f),
                None => out.null(),
            }
        });
    }
    let l = int_arg(argv[2])?;
    if l == i64::MIN {
        return Err(CmdError::Static(errors::COUNT_RANGE_NOT_LONG_MIN));
    }
    if argv.len() > 4 || (argv.len() == 4 && !kw(argv[3], "withvalues")) {
        return Err(CmdError::Syntax);
    }
    let withvalues = argv.len() == 4;
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::OutOfRange);
    }
    let count = l.unsigned_abs();
    let mut rng = rand::rng();
    let budget = ReplyBudget::new(ctx);
    read_hash(ctx, argv[1], |out, h| -> CmdResult {
        let Some(h) = h.filter(|_| count > 0) else {
            out.array(0);
            return Ok(());
        };
        if l < 0 && count > MAX_REPEAT_PICKS {
            return Err(CmdError::OutOfRange);
        }
        // A positive count never yields more than the hash holds.
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if l < 0 {
            pick_header(out, withvalues, count);
            let mut spent = false;
            h.random_pairs(count, &mut rng, |f, v| {
                write_pick(out, withvalues, f, v);
                spent = budget.spent(out);
                !spent
            });
            if spent {
                return budget.exceeded(out);
            }
        } else {
            pick_header(out, withvalues, count.min(h.len()));
            h.random_distinct(count, &mut rng, |f, v| write_pick(out, withvalues, f, v));
        }
        Ok(())
    })?
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
fn hscan(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(argv[2])?;
    let opts = &argv[3..];
    read_hash(ctx, argv[1], |out, h| -> CmdResult {
        let Some(h) = h else {
            scan_head(out, 0, 0);
            return Ok(());
        };
        let (count, pat) = scan_options(opts)?;
        scan_reply(out, |items| {
            let mut n = 0usize;
            let next = h.scan(cursor, count, |f, v| {
                if pat.is_none_or(|p| string_match(p, f, false)) {
                    items.bulk(f);
                    items.bulk(v);
                    n += 2;
                }
            });
            (next, n)
        });
        Ok(())
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness as T;

    /// Parses `*2 $cursor *n $a $b ...` (test replies only).
    fn parse_scan(r: &[u8]) -> (u64, Vec<Vec<u8>>) {
        let s = String::from_utf8_lossy(r).into_owned();
        let mut lines = s.split("\r\n");
        assert_eq!(lines.next(), Some("*2"));
        lines.next();
        let cursor: u64 = lines.next().unwrap().parse().unwrap();
        let n: usize = lines.next().unwrap()[1..].parse().unwrap();
        let mut items = Vec::new();
        for _ in 0..n {
            lines.next();
            items.push(lines.next().unwrap().as_bytes().to_vec());
        }
        (cursor, items)
    }

    #[test]
    fn hscan_walks_a_table_with_cursors_while_it_changes() {
        let mut t = T::new();
        t.run("CONFIG SET hash-max-listpack-entries 16");
        for i in 0..500 {
            t.run(&format!("HSET big f{i} v{i}"));
        }
        assert_eq!(t.run("OBJECT ENCODING big"), "$9\r\nhashtable\r\n");
        let mut seen = std::collections::HashSet::new();
        let (mut cursor, mut calls, mut extra) = (0u64, 0, 500);
        loop {
            let r = t.run_args(&[
                b"HSCAN",
                b"big",
                cursor.to_string().as_bytes(),
                b"COUNT",
                b"20",
            ]);
            let (next, items) = parse_scan(&r);
            assert!(items.len() % 2 == 0);
            for p in items.chunks(2) {
                seen.insert(p[0].clone());
            }
            // Grow and shrink the hash meanwhile (fields f0..f499 stay).
            t.run(&format!("HSET big g{extra} x"));
            t.run(&format!("HDEL big g{}", extra - 1));
            extra += 1;
            calls += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
            assert!(calls < 10_000);
        }
        for i in 0..500 {
            assert!(seen.contains(format!("f{i}").as_bytes()), "missed f{i}");
        }
    }

    #[test]
    fn hrandfield_huge_negative_count_is_refused_after_the_lookup() {
        let mut t = T::new();
        assert_eq!(t.run("HRANDFIELD nokey -9223372036854775807"), "*0\r\n");
        t.run("HSET h a 1");
        assert_eq!(
            t.run("HRANDFIELD h -9223372036854775807"),
            "-ERR value is out of range\r\n"
        );
        assert_eq!(
            t.run("HRANDFIELD h -3"),
            "*3\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n"
        );
        assert_eq!(
            t.run("HRANDFIELD h 9223372036854775807"),
            "*1\r\n$1\r\na\r\n"
        );
    }

    #[test]
    fn keyspace_hits_only_for_reads() {
        let mut t = T::new();
        t.run("HSET h a 1");
        t.run("HDEL nokey a");
        t.run("HINCRBY h a 1");
        assert_eq!(t.hits_misses(), (0, 0));
        t.run("HGET h a");
        t.run("HGET nokey a");
        t.run("HSCAN nokey 0");
        assert_eq!(t.hits_misses(), (1, 2));
    }

    #[test]
    fn every_hash_command_has_a_handler() {
        for id in [
            CmdId::Hset,
            CmdId::Hscan,
            CmdId::Hrandfield,
            CmdId::Hincrbyfloat,
            CmdId::Hmset,
        ] {
            assert!(handler(id).is_some());
        }
        assert!(handler(CmdId::Get).is_none());
    }

    #[test]
    fn hincrbyfloat_propagates_as_hset_and_no_ops_not_at_all() {
        let mut t = T::new();
        t.capture();
        t.run("HSET h a 1 b x");
        t.run("HINCRBYFLOAT h a 0.5");
        t.run("HINCRBYFLOAT h new 3.0e1");
        for line in [
            "HSETNX h a 2",
            "HDEL h nofield",
            "HDEL nokey a",
            "HINCRBY h b 1",
            "HINCRBYFLOAT h b 1",
            "HINCRBY h a 1",
            "HSET h a",
        ] {
            t.run(line);
        }
        t.run("HSETNX h c 3");
        t.run("HMSET h a 1 a 2");
        t.run("HDEL h a b c new");
        assert_eq!(
            t.propagated(),
            [
                "SELECT 0",
                "HSET h a 1 b x",
                "HSET h a 1.5",
                "HSET h new 30",
                "HSETNX h c 3",
                "HMSET h a 1 a 2",
                "HDEL h a b c new",
            ]
        );
        assert_eq!(t.run("EXISTS h"), ":0\r\n");
    }
}
