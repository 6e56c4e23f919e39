//! Set commands, mirroring Redis 7.0.15 `t_set.c`: SADD, SREM, SCARD,
//! SISMEMBER, SMISMEMBER, SMEMBERS, SPOP, SRANDMEMBER, SMOVE, SINTER,
//! SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE and SSCAN.
//!
//! Behaviour kept from Redis, point by point:
//! * Empty sets never stay in the keyspace: SREM/SPOP/SMOVE delete the key
//!   when its last member goes, and the *STORE commands delete the
//!   destination (whatever its type) when the result is empty.
//! * Replies: SMEMBERS/SINTER/SUNION/SDIFF/SPOP-with-count are RESP3 sets
//!   (`~`), SRANDMEMBER with a count and SMISMEMBER are arrays, SISMEMBER an
//!   integer. Intset-encoded results come out in ascending order.
//! * SUNION/SDIFF/SINTERSTORE build their result through the ordinary add
//!   path from an empty intset, so OBJECT ENCODING of a stored result matches
//!   Redis; SDIFF picks Redis' "algorithm 1 or 2" by the same work estimate
//!   (the choice shows in the encoding of the result).
//! * SPOP with a count follows Redis' three cases: the whole set, count
//!   random pops, or (count close to the size) keeping `size - count` random
//!   members in a freshly built set (which may become an intset again).
//! * Argument errors come before type errors where Redis parses first (SPOP,
//!   SRANDMEMBER counts; the SSCAN cursor); SSCAN on a missing key replies an
//!   empty scan without looking at its options; SINTERCARD's numkeys/LIMIT
//!   texts are Redis'.
//! * Multi-key commands lock every slot at once (`lock_keys`). To read several
//!   sets together, their values are moved out of their entries for the
//!   duration of the command (under the locks, so nobody sees the gap) and put
//!   back before the destination is written.
//! * Changes are reported through `Ctx::changed` with Redis' events and
//!   order: `sadd`, `srem` (then `del`), SMOVE's `srem` (+`del`) on the
//!   source then `sadd` on the destination when the member was new there,
//!   `spop` (+`del`), and `sinterstore`/`sunionstore`/`sdiffstore` on the
//!   destination, or `del` when an empty result removed an existing one.
//!   Nothing is reported (or propagated) when nothing changed.
//! * SPOP propagates as Redis 7.0.15 does: `SREM key member` for a single
//!   pop, one `SREM key member` per popped member for a partial SPOP with a
//!   count, `DEL key` when the count takes the whole set.
//! * Keyspace hits/misses are counted for Redis' read lookups (SISMEMBER,
//!   SMISMEMBER, SCARD, SMEMBERS, SRANDMEMBER, SSCAN, SINTER, SINTERCARD,
//!   SUNION, SDIFF), not for write lookups.

use protocol::command::CmdId;
use protocol::glob::string_match;
use protocol::number::parse_i64;
use protocol::resp::Reply;

use crate::cmd::util::parse_cursor;
use crate::cmd::util::{MAX_REPEAT_PICKS, ReplyBudget, int_arg, is};
use crate::cmd::util::{scan_head, scan_options, scan_reply};
use crate::db::{Entry, KeyAccess, Object, ValueRef};
use crate::ds::Set;
use crate::ds::set::{Member, MemberRef};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::{GENERIC, SET};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Sadd => sadd,
        CmdId::Srem => srem,
        CmdId::Scard => scard,
        CmdId::Sismember => sismember,
        CmdId::Smismember => smismember,
        CmdId::Smembers => smembers,
        CmdId::Spop => spop,
        CmdId::Srandmember => srandmember,
        CmdId::Smove => smove,
        CmdId::Sinter => sinter,
        CmdId::Sintercard => sintercard,
        CmdId::Sinterstore => sinterstore,
        CmdId::Sunion => sunion,
        CmdId::Sunionstore => sunionstore,
        CmdId::Sdiff => sdiff,
        CmdId::Sdiffstore => sdiffstore,
        CmdId::Sscan => sscan,
        _ => return None,
    })
}

fn max_intset(ctx: &Ctx) -> usize {
    usize::try_from(ctx.srv.config().set_max_intset_entries).unwrap_or(usize::MAX)
}

fn set_mut(e: &mut Entry) -> Result<&mut Set, CmdError> {
    match e.obj_mut() {
        Some(Object::Set(s)) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

fn set_ref(e: &Entry) -> Result<&Set, CmdError> {
    match e.value() {
        ValueRef::Obj(Object::Set(s)) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

#[inline]
fn write_member(out: &mut Reply, m: MemberRef<'_>) {
    match m {
        MemberRef::Int(v) => out.bulk_int(v),
        MemberRef::Bytes(b) => out.bulk(b),
    }
}

/// Writes every member as a RESP3 set / RESP2 array.
fn write_set<'a>(out: &mut Reply, n: usize, it: impl Iterator<Item = MemberRef<'a>>) {
    out.set(n);
    for m in it {
        write_member(out, m);
    }
}

fn sadd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let max = max_intset(ctx);
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let added = match slot.get(key, now) {
        Some(e) => {
            e.touch(lru);
            let s = set_mut(e)?;
            argv[2..].iter().filter(|m| s.insert(m, max)).count()
        }
        None => {
            let mut s = Set::new();
            let n = argv[2..].iter().filter(|m| s.insert(m, max)).count();
            slot.insert(Entry::new_obj(key, Object::Set(s), None, lru));
            n
        }
    };
    if added > 0 {
        ctx.changed(SET, "sadd", key);
        ctx.dirty(added as u64 - 1);
    }
    drop(slot);
    ctx.out.int(added as i64);
    Ok(())
}

fn srem(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let (removed, empty) = match slot.get(key, now) {
        None => (0, false),
        Some(e) => {
            e.touch(lru);
            let s = set_mut(e)?;
            let mut n = 0;
            for m in &argv[2..] {
                if s.remove(m) {
                    n += 1;
                    if s.is_empty() {
                        break;
                    }
                }
            }
            (n, s.is_empty())
        }
    };
    if empty {
        slot.remove(key);
    }
    if removed > 0 {
        ctx.changed(SET, "srem", key);
        if empty {
            ctx.notify(GENERIC, "del", key);
        }
        ctx.dirty(removed as u64 - 1);
    }
    drop(slot);
    ctx.out.int(removed);
    Ok(())
}

/// Runs `f` on the set at `key` (None when missing) for a read command,
/// counting the keyspace hit or miss.
/// `f` writes the reply (it runs only once the type is known to be right).
fn read_set<R>(
    ctx: &mut Ctx,
    key: &[u8],
    f: impl FnOnce(&mut Reply, Option<&Set>) -> R,
) -> Result<R, CmdError> {
    ctx.read_key(key, |out, e| match e {
        None => Ok(f(out, None)),
        Some(e) => Ok(f(out, Some(set_ref(e)?))),
    })
}

fn scard(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let n = read_set(ctx, argv[1], |_, s| s.map_or(0, Set::len))?;
    ctx.out.int(n as i64);
    Ok(())
}

fn sismember(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let found = read_set(ctx, argv[1], |_, s| s.is_some_and(|s| s.contains(argv[2])))?;
    ctx.out.int(found as i64);
    Ok(())
}

fn smismember(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    read_set(ctx, argv[1], |out, s| {
        out.array(argv.len() - 2);
        for m in &argv[2..] {
            out.int(s.is_some_and(|s| s.contains(m)) as i64);
        }
    })
}

fn smembers(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    read_set(ctx, argv[1], |out, s| match s {
        None => out.set(0),
        Some(s) => write_set(out, s.len(), s.iter()),
    })
}

/// SPOP_MOVE_STRATEGY_MUL in Redis: above `remaining * 5 > count` pops one by
/// one, otherwise rebuilds the set from the members that stay.
const SPOP_MOVE_STRATEGY_MUL: u64 = 5;

fn spop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match argv.get(2) {
        None => None,
        Some(a) => match parse_i64(a) {
            Some(v) if v >= 0 => Some(v as u64),
            _ => return Err(CmdError::Static(errors::NOT_POSITIVE)),
        },
    };
    let key = argv[1];
    let max = max_intset(ctx);
    let (now, lru) = (ctx.now, ctx.lru());
    let mut slot = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = slot.get(key, now) else {
        drop(slot);
        match count {
            None => ctx.out.null(),
            Some(_) => ctx.out.set(0),
        }
        return Ok(());
    };
    e.touch(lru);
    let s = set_mut(e)?;
    // What to propagate instead of SPOP: the popped members (one SREM each),
    // or DEL when the whole set went.
    let record = ctx.propagating();
    let buf = &mut *ctx.out;
    let mut rng = rand::rng();
    let len = s.len() as u64;
    let mut popped: Vec<Vec<u8>> = Vec::new();
    let mut whole = false;
    let n = match count {
        None => match s.pop_random(&mut rng) {
            Some(m) => {
                write_member(buf, m.as_ref());
                popped.push(m.to_vec());
                1
            }
            None => {
                buf.null();
                0
            }
        },
        Some(0) => {
            buf.set(0);
            0
        }
        Some(c) if c >= len => {
            write_set(buf, s.len(), s.iter());
            *s = Set::new();
            whole = true;
            len
        }
        Some(c) => {
            let remaining = len - c;
            buf.set(c as usize);
            if remaining * SPOP_MOVE_STRATEGY_MUL > c {
                for _ in 0..c {
                    if let Some(m) = s.pop_random(&mut rng) {
                        write_member(buf, m.as_ref());
                        if record {
                            popped.push(m.to_vec());
                        }
                    }
                }
            } else {
                let keep: Vec<Member> = s
                    .random_distinct(remaining as usize, &mut rng)
                    .into_iter()
                    .map(MemberRef::to_owned)
                    .collect();
                let kept = Set::from_members(keep.iter().map(Member::as_ref), max);
                for m in s.iter().filter(|m| !kept.contains_ref(*m)) {
                    write_member(buf, m);
                    if record {
                        popped.push(m.to_owned().to_vec());
                    }
                }
                *s = kept;
            }
            c
        }
    };
    let emptied = s.is_empty();
    if emptied {
        slot.remove(key);
    }
    if n > 0 {
        ctx.changed(SET, "spop", key);
        if emptied {
            ctx.notify(GENERIC, "del", key);
        }
        ctx.dirty(n - 1);
        if whole {
            ctx.propagate(&[&b"DEL"[..], key]);
        } else {
            for m in &popped {
                ctx.propagate(&[&b"SREM"[..], key, m.as_slice()]);
            }
        }
    }
    drop(slot);
    Ok(())
}

fn srandmember(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match argv.get(2) {
        None => None,
        Some(a) => {
            let v = int_arg(a)?;
            if v == i64::MIN {
                return Err(CmdError::Static(errors::COUNT_RANGE_NOT_LONG_MIN));
            }
            Some(v)
        }
    };
    let budget = ReplyBudget::new(ctx);
    read_set(ctx, argv[1], |buf, s| -> CmdResult {
        let mut rng = rand::rng();
        match (s, count) {
            (None, None) => buf.null(),
            (None, Some(_)) => buf.array(0),
            (Some(s), None) => match s.random(&mut rng) {
                Some(m) => write_member(buf, m),
                None => buf.null(),
            },
            (Some(_), Some(c)) if c.unsigned_abs() > MAX_REPEAT_PICKS && c < 0 => {
                return Err(CmdError::OutOfRange);
            }
            (Some(s), Some(c)) if c < 0 => {
                let n = c.unsigned_abs();
                buf.array(n as usize);
                for _ in 0..n {
                    if let Some(m) = s.random(&mut rng) {
                        write_member(buf, m);
                        if budget.spent(buf) {
                            return budget.exceeded(buf);
                        }
                    }
                }
            }
            (Some(s), Some(c)) => {
                let picked = s.random_distinct(c as usize, &mut rng);
                buf.array(picked.len());
                for m in picked {
                    write_member(buf, m);
                }
            }
        }
        Ok(())
    })?
}

fn smove(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (src, dst, member) = (argv[1], argv[2], argv[3]);
    let max = max_intset(ctx);
    let (now, lru) = (ctx.now, ctx.lru());
    let mut keys = ctx.ks().lock_keys(ctx.db(), [src, dst]);
    let Some(e) = keys.get(src, now) else {
        drop(keys);
        ctx.out.int(0);
        return Ok(());
    };
    set_ref(e)?;
    let dst_exists = match keys.get(dst, now) {
        Some(d) => {
            set_ref(d)?;
            true
        }
        None => false,
    };
    let Some(e) = keys.get(src, now) else {
        return Err(CmdError::NoSuchKey);
    };
    e.touch(lru);
    let s = set_mut(e)?;
    if src == dst {
        let found = s.contains(member);
        drop(keys);
        ctx.out.int(found as i64);
        return Ok(());
    }
    if !s.remove(member) {
        drop(keys);
        ctx.out.int(0);
        return Ok(());
    }
    let emptied = s.is_empty();
    if emptied {
        keys.remove(src);
    }
    ctx.changed(SET, "srem", src);
    if emptied {
        ctx.notify(GENERIC, "del", src);
    }
    let added = if dst_exists {
        match keys.get(dst, now) {
            Some(d) => {
                d.touch(lru);
                set_mut(d)?.insert(member, max)
            }
            None => false,
        }
    } else {
        let mut d = Set::new();
        d.insert(member, max);
        keys.insert(Entry::new_obj(dst, Object::Set(d), None, lru));
        true
    };
    if added {
        ctx.changed(SET, "sadd", dst);
    }
    drop(keys);
    ctx.out.int(1);
    Ok(())
}

// --- multi-key set algebra --------------------------------------------------

/// The sets of several keys, moved out of their entries while a command
/// reads them together. `sets[i]` is the value of the i-th distinct key;
/// `index[j]` maps the j-th argument key to it.
struct Taken<'k> {
    keys: Vec<&'k [u8]>,
    sets: Vec<Option<Set>>,
    index: Vec<usize>,
}

impl<'k> Taken<'k> {
    /// Looks every key up (expiring lazily; `read` counts hits/misses),
    /// failing with WRONGTYPE before anything is moved; then moves the sets out.
    fn take(
        ctx: &Ctx,
        acc: &mut dyn KeyAccess,
        args: &[&'k [u8]],
        read: bool,
    ) -> Result<Self, CmdError> {
        let (now, lru) = (ctx.now, ctx.lru());
        let mut keys: Vec<&'k [u8]> = Vec::with_capacity(args.len());
        let mut index = Vec::with_capacity(args.len());
        for &k in args {
            let found = acc.get(k, now);
            if read {
                ctx.hit(found.is_some());
            }
            if let Some(e) = found {
                e.touch(lru);
                set_ref(e)?;
            }
            let i = match keys.iter().position(|x| *x == k) {
                Some(i) => i,
                None => {
                    keys.push(k);
                    keys.len() - 1
                }
            };
            index.push(i);
        }
        let sets = keys
            .iter()
            .map(|k| match acc.peek(k).map(set_mut) {
                Some(Ok(s)) => Some(std::mem::take(s)),
                _ => None,
            })
            .collect();
        Ok(Taken { keys, sets, index })
    }

    /// The sets in argument order (None for missing keys).
    fn args(&self) -> Vec<Option<&Set>> {
        self.index
            .iter()
            .map(|&i| self.sets.get(i).and_then(Option::as_ref))
            .collect()
    }

    /// Moves the sets back into their entries.
    fn restore(self, acc: &mut dyn KeyAccess) {
        for (k, s) in self.keys.iter().zip(self.sets) {
            if let (Some(s), Some(e)) = (s, acc.peek(k))
                && let Ok(slot) = set_mut(e)
            {
                *slot = s;
            }
        }
    }
}

/// Intersection: iterates the smallest set, calling `f` for every member in
/// all of them until `f` returns false.
fn inter_each<'a>(sets: &[Option<&'a Set>], mut f: impl FnMut(MemberRef<'a>) -> bool) {
    let mut present: Vec<&Set> = Vec::with_capacity(sets.len());
    for s in sets {
        match s {
            Some(s) => present.push(s),
            None => return,
        }
    }
    present.sort_by_key(|s| s.len());
    let Some((first, rest)) = present.split_first() else {
        return;
    };
    for m in first.iter() {
        if rest
            .iter()
            .all(|o| std::ptr::eq(*o, *first) || o.contains_ref(m))
            && !f(m)
        {
            return;
        }
    }
}

fn union_of(sets: &[Option<&Set>], max: usize) -> Set {
    let mut out = Set::new();
    for s in sets.iter().flatten() {
        for m in s.iter() {
            out.insert_ref(m, max);
        }
    }
    out
}

/// SDIFF with Redis' choice of algorithm (it decides the result's encoding).
fn diff_of(sets: &[Option<&Set>], max: usize) -> Set {
    let Some(Some(first)) = sets.first() else {
        return Set::new();
    };
    let others: Vec<&Set> = sets.iter().skip(1).flatten().copied().collect();
    let present = 1 + others.len() as u64;
    let algo_one = present * first.len() as u64 / 2;
    let algo_two = first.len() as u64 + others.iter().map(|s| s.len() as u64).sum::<u64>();
    if algo_one <= algo_two {
        let mut out = Set::new();
        for m in first.iter() {
            if !others
                .iter()
                .any(|o| std::ptr::eq(*o, *first) || o.contains_ref(m))
            {
                out.insert_ref(m, max);
            }
        }
        out
    } else {
        let mut out = Set::new();
        for m in first.iter() {
            out.insert_ref(m, max);
        }
        for o in others {
            for m in o.iter() {
                out.remove_ref(m);
            }
            if out.is_empty() {
                break;
            }
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// SINTER / SUNION / SDIFF (and SMEMBERS-like replies).
fn algebra(ctx: &mut Ctx, keys: &[&[u8]], op: Op) -> CmdResult {
    let max = max_intset(ctx);
    let mut buf = Reply {
        buf: Vec::new(),
        resp3: ctx.out.resp3,
    };
    let mut acc = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
    let taken = Taken::take(ctx, &mut acc, keys, true)?;
    {
        let sets = taken.args();
        match op {
            Op::Inter => {
                let mut found = Vec::new();
                inter_each(&sets, |m| {
                    found.push(m);
                    true
                });
                write_set(&mut buf, found.len(), found.into_iter());
            }
            Op::Union | Op::Diff => {
                let r = if op == Op::Union {
                    union_of(&sets, max)
                } else {
                    diff_of(&sets, max)
                };
                write_set(&mut buf, r.len(), r.iter());
            }
        }
    }
    taken.restore(&mut acc);
    drop(acc);
    ctx.out.buf.extend_from_slice(&buf.buf);
    Ok(())
}

/// SINTERSTORE / SUNIONSTORE / SDIFFSTORE: the destination is replaced (any
/// type, TTL dropped) or deleted when the result is empty.
fn algebra_store(ctx: &mut Ctx, argv: &[&[u8]], op: Op) -> CmdResult {
    let dst = argv[1];
    let keys = &argv[2..];
    let max = max_intset(ctx);
    let (now, lru) = (ctx.now, ctx.lru());
    let mut acc = ctx.ks().lock_keys(ctx.db(), argv[1..].iter().copied());
    let taken = Taken::take(ctx, &mut acc, keys, false)?;
    let result = {
        let sets = taken.args();
        match op {
            Op::Inter => {
                let mut out = Set::new();
                inter_each(&sets, |m| {
                    out.insert_ref(m, max);
                    true
                });
                out
            }
            Op::Union => union_of(&sets, max),
            Op::Diff => diff_of(&sets, max),
        }
    };
    taken.restore(&mut acc);
    let n = result.len();
    if n > 0 {
        // Redis' setKey: a write lookup (expiring a stale destination), then
        // the new value.
        let _ = acc.get(dst, now);
        acc.remove(dst);
        acc.insert(Entry::new_obj(dst, Object::Set(result), None, lru));
        let event = match op {
            Op::Inter => "sinterstore",
            Op::Union => "sunionstore",
            Op::Diff => "sdiffstore",
        };
        ctx.changed(SET, event, dst);
    } else if acc.remove(dst).is_some() {
        // dbDelete, which removes even a logically expired destination.
        ctx.changed(GENERIC, "del", dst);
    }
    drop(acc);
    ctx.out.int(n as i64);
    Ok(())
}

fn sinter(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    algebra(ctx, &argv[1..], Op::Inter)
}

fn sunion(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    algebra(ctx, &argv[1..], Op::Union)
}

fn sdiff(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    algebra(ctx, &argv[1..], Op::Diff)
}

fn sinterstore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    algebra_store(ctx, argv, Op::Inter)
}

fn sunionstore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    algebra_store(ctx, argv, Op::Union)
}

fn sdiffstore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    algebra_store(ctx, argv, Op::Diff)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let numkeys = match parse_i64(argv[1]) {
        Some(v) if v > 0 => v as u64,
        _ => return Err(CmdError::Static(errors::NUMKEYS_NOT_POSITIVE)),
    };
    let avail = (argv.len() - 2) as u64;
    if numkeys > avail {
        return Err(CmdError::Static(errors::NUMKEYS_TOO_MANY));
    }
    let end = 2 + numkeys as usize;
    let keys = &argv[2..end];
    let mut limit = 0u64;
    let mut i = end;
    while i < argv.len() {
        if is(argv[i], "limit") && i + 1 < argv.len() {
            limit = match parse_i64(argv[i + 1]) {
                Some(v) if v >= 0 => v as u64,
                _ => return Err(CmdError::Static(errors::LIMIT_NEGATIVE)),
            };
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut acc = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
    let taken = Taken::take(ctx, &mut acc, keys, true)?;
    let mut n = 0u64;
    inter_each(&taken.args(), |_| {
        n += 1;
        limit == 0 || n < limit
    });
    taken.restore(&mut acc);
    drop(acc);
    ctx.out.int(n as i64);
    Ok(())
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
fn sscan(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(argv[2])?;
    let key = argv[1];
    read_set(ctx, key, |buf, s| -> CmdResult {
        let Some(s) = s else {
            scan_head(buf, 0, 0);
            return Ok(());
        };
        let (count, pat) = scan_options(&argv[3..])?;
        scan_reply(buf, |found| {
            let mut n = 0usize;
            let next = s.scan(cursor, count, |m| {
                if pat.is_none_or(|p| m.with_bytes(|b| string_match(p, b, false))) {
                    write_member(found, m);
                    n += 1;
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

    fn set_of(items: &[&str], max: usize) -> Set {
        let mut s = Set::new();
        for i in items {
            s.insert(i.as_bytes(), max);
        }
        s
    }

    #[test]
    fn algebra_helpers() {
        let a = set_of(&["1", "2", "3", "x"], 512);
        let b = set_of(&["2", "3", "4"], 512);
        let mut got = Vec::new();
        inter_each(&[Some(&a), Some(&b)], |m| {
            got.push(m.to_owned());
            true
        });
        got.sort_by_key(|m| m.to_vec());
        assert_eq!(got, vec![Member::Int(2), Member::Int(3)]);
        let mut none = 0;
        inter_each(&[Some(&a), None], |_| {
            none += 1;
            true
        });
        assert_eq!(none, 0);
        let u = union_of(&[Some(&b), None, Some(&set_of(&["9"], 512))], 512);
        assert_eq!(u, set_of(&["2", "3", "4", "9"], 512));
        assert_eq!(u.encoding_name(), "intset");
        let d = diff_of(&[Some(&a), Some(&b)], 512);
        assert_eq!(d, set_of(&["1", "x"], 512));
        let d = diff_of(&[Some(&b), Some(&b)], 512);
        assert!(d.is_empty());
    }

    use crate::testkit::Harness;

    /// The members of a RESP2 array/set reply of bulk strings.
    fn members(reply: &str) -> Vec<String> {
        let mut v: Vec<String> = reply
            .split("\r\n")
            .skip(2)
            .step_by(2)
            .map(String::from)
            .collect();
        v.retain(|m| !m.is_empty());
        v
    }

    #[test]
    fn spop_propagates_srem_per_member_or_del() {
        let mut h = Harness::new();
        h.capture();
        h.run("SADD one x");
        h.run("SPOP one");
        h.run("SADD all a b c");
        h.run("SPOP all 5");
        assert_eq!(
            h.propagated(),
            [
                "SELECT 0",
                "SADD one x",
                "SREM one x",
                "SADD all a b c",
                "DEL all"
            ]
        );
        // Both partial strategies (few pops; most of the set) propagate one
        // SREM per popped member, in one MULTI/EXEC block.
        for (n, k) in [(10, 2), (10, 9)] {
            let add: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            h.run(&format!("SADD s {}", add.join(" ")));
            let popped = members(&h.run(&format!("SPOP s {k}")));
            assert_eq!(popped.len(), k);
            let mut want = vec![format!("SADD s {}", add.join(" ")), "MULTI".to_string()];
            want.extend(popped.iter().map(|m| format!("SREM s {m}")));
            want.push("EXEC".to_string());
            assert_eq!(h.propagated(), want);
            let left = members(&h.run("SMEMBERS s"));
            assert_eq!(left.len(), n - k);
            assert!(left.iter().all(|m| !popped.contains(m)));
            h.run("DEL s");
            h.propagated();
        }
        // One pop that leaves members: a single SREM, no MULTI.
        h.run("SADD p 1 2");
        let m = members(&h.run("SPOP p 1"));
        assert_eq!(
            h.propagated(),
            ["SADD p 1 2".to_string(), format!("SREM p {}", m[0])]
        );
    }

    #[test]
    fn set_commands_that_change_nothing_are_not_propagated() {
        let mut h = Harness::new();
        h.capture();
        h.run("SADD s a b");
        h.run("RPUSH l x");
        for line in [
            "SADD s a",
            "SADD l a",
            "SREM s zz",
            "SREM nokey a",
            "SMOVE nokey s a",
            "SMOVE s s a",
            "SMOVE s d zz",
            "SMOVE s l a",
            "SPOP nokey",
            "SPOP nokey 3",
            "SPOP s 0",
            "SINTERSTORE dst s nokey",
            "SUNIONSTORE dst nokey",
            "SDIFFSTORE dst s s",
            "SINTERSTORE dst s l",
        ] {
            h.run(line);
        }
        assert_eq!(h.propagated(), ["SELECT 0", "SADD s a b", "RPUSH l x"]);
        // An empty result removing an existing destination is a change.
        h.run("SDIFFSTORE l s s");
        h.run("SMOVE s d a");
        h.run("SMOVE s d b");
        assert_eq!(
            h.propagated(),
            ["SDIFFSTORE l s s", "SMOVE s d a", "SMOVE s d b"]
        );
        assert_eq!(h.run("EXISTS l s"), ":0\r\n");
    }
}
