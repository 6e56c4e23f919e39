//! Keyspace commands, mirroring Redis 7.0.15's `db.c`, `expire.c` and
//! `object.c`: DEL, UNLINK, EXISTS, TYPE, TOUCH, the EXPIRE family (NX/XX/GT/LT),
//! TTL/PTTL/EXPIRETIME/PEXPIRETIME, PERSIST, RENAME(NX), COPY, MOVE, KEYS,
//! SCAN, RANDOMKEY and OBJECT.
//!
//! Redis details kept on purpose:
//! * Multi-key commands lock all their slots at once (`lock_keys`); MOVE and
//!   cross-DB COPY lock one slot in each DB in the global (DB, slot) order.
//! * Keyspace hits/misses are counted exactly where Redis uses a *read*
//!   lookup (EXISTS, TYPE, TOUCH, TTL family, COPY's source, OBJECT, SCAN's
//!   TYPE filter); write lookups (DEL, EXPIRE, PERSIST, RENAME, MOVE) count
//!   nothing. Lookups that Redis does with `LOOKUP_NOTOUCH` leave the LRU
//!   clock alone; the others refresh it.
//! * Every lookup expires lazily; KEYS skips expired keys without deleting
//!   them, SCAN and RANDOMKEY delete the expired keys they meet.
//! * Argument errors come in Redis' order (options before numbers, the
//!   same-object check before the key lookup) with Redis' exact texts.
//! * Changes are reported (`Ctx::changed`) with Redis' events: `del` per key
//!   deleted, `expire` (or `del` for a deadline already past), `persist`,
//!   `rename_from` then `rename_to`, `move_from` then `move_to` (each in its
//!   DB), `copy_to` in the target DB; nothing for a command that changed
//!   nothing (TOUCH never changes anything). The EXPIRE family propagates as
//!   `PEXPIREAT key <ms> [flags]`, or as `DEL`/`UNLINK` when the deadline is
//!   already past, as Redis does.

use protocol::command::CmdId;
use protocol::glob::{is_match_all, string_match};
use protocol::resp::Reply;

use crate::cmd::util::c_str;
use crate::cmd::util::parse_cursor;
use crate::config::MaxmemoryPolicy;
use crate::db::{Entry, KeyAccess, MultiRef, SlotRef};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::GENERIC;
use crate::exec::{Ctx, Handler};

use super::util::{int_arg, is};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Del | CmdId::Unlink => del,
        CmdId::Exists => exists,
        CmdId::Type => type_cmd,
        CmdId::Touch => touch,
        CmdId::Expire => expire,
        CmdId::Pexpire => pexpire,
        CmdId::Expireat => expireat,
        CmdId::Pexpireat => pexpireat,
        CmdId::Ttl => ttl,
        CmdId::Pttl => pttl,
        CmdId::Expiretime => expiretime,
        CmdId::Pexpiretime => pexpiretime,
        CmdId::Persist => persist,
        CmdId::Rename => rename,
        CmdId::Renamenx => renamenx,
        CmdId::Copy => copy,
        CmdId::Move => move_cmd,
        CmdId::Keys => keys,
        CmdId::Scan => scan,
        CmdId::Randomkey => randomkey,
        CmdId::Object => object,
        _ => return None,
    })
}

/// Runs `f` with the given keys' slots locked: one slot guard for a single
/// key (the common case, no allocation), all slots at once otherwise.
fn with_keys<R>(
    ctx: &mut Ctx,
    keys: &[&[u8]],
    f: impl FnOnce(&mut Ctx, &mut dyn KeyAccess) -> R,
) -> R {
    let (db, ks) = (ctx.db(), ctx.ks());
    match keys {
        [k] => f(ctx, &mut ks.lock_key(db, k)),
        _ => {
            let mut m = ks.lock_keys(db, keys.iter().copied());
            m.prefetch(keys.iter().copied());
            f(ctx, &mut m)
        }
    }
}

/// Redis' `getIntFromObjectOrReply` with no custom message.
fn int32_arg(a: &[u8]) -> Result<i64, CmdError> {
    let v = int_arg(a)?;
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        return Err(CmdError::Static(errors::INT_ARG_OUT_OF_RANGE));
    }
    Ok(v)
}

/// A DB index argument (MOVE, COPY ... DB n).
fn db_index_arg(ctx: &Ctx, a: &[u8]) -> Result<usize, CmdError> {
    let v = int32_arg(a)?;
    if v < 0 || v as usize >= ctx.ks().db_count() {
        return Err(CmdError::Static(errors::INVALID_DB));
    }
    Ok(v as usize)
}

// --- DEL / UNLINK / EXISTS / TYPE / TOUCH -----------------------------------

/// DEL and UNLINK: big values are freed on a background thread either way
/// (`db::drop_later`, Redis' lazy free), small ones inline.
fn del(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let now = ctx.now;
    let n = with_keys(ctx, &argv[1..], |ctx, a| {
        let mut n = 0;
        for &k in &argv[1..] {
            // An expired key is reclaimed by the lookup and not counted.
            if a.get(k, now).is_some() {
                if let Some(e) = a.remove(k) {
                    crate::db::drop_later(e);
                }
                ctx.changed(GENERIC, "del", k);
                n += 1;
            }
        }
        n
    });
    ctx.out.int(n);
    Ok(())
}

/// EXISTS counts repeated keys once per mention.
fn exists(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let now = ctx.now;
    let found = with_keys(ctx, &argv[1..], |_, a| {
        argv[1..]
            .iter()
            .map(|&k| a.get(k, now).is_some())
            .collect::<Vec<bool>>()
    });
    let mut hits = 0;
    for (&k, &f) in argv[1..].iter().zip(&found) {
        ctx.hit_key(f, k);
        hits += i64::from(f);
    }
    ctx.out.int(hits);
    Ok(())
}

fn count_hits(ctx: &Ctx, hits: i64, misses: i64) {
    for _ in 0..hits {
        ctx.hit(true);
    }
    for _ in 0..misses {
        ctx.hit(false);
    }
}

fn type_cmd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    let name = s.get(key, ctx.now).map(|e| e.kind().name());
    ctx.hit_key(name.is_some(), key);
    ctx.out.simple(name.unwrap_or("none").as_bytes());
    Ok(())
}

fn touch(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (now, lru) = (ctx.now, ctx.lru());
    let (hits, misses) = with_keys(ctx, &argv[1..], |_, a| {
        let mut hits = 0;
        for &k in &argv[1..] {
            if let Some(e) = a.get(k, now) {
                e.touch(lru);
                hits += 1;
            }
        }
        (hits, argv.len() as i64 - 1 - hits)
    });
    count_hits(ctx, hits, misses);
    ctx.out.int(hits);
    Ok(())
}

// --- EXPIRE family ------------------------------------------------------------

const EXPIRE_NX: u8 = 1;
const EXPIRE_XX: u8 = 2;
const EXPIRE_GT: u8 = 4;
const EXPIRE_LT: u8 = 8;

/// Parses `[NX | XX | GT | LT]...` (Redis accepts repeats and checks the
/// combination afterwards).
fn expire_flags(opts: &[&[u8]]) -> Result<u8, CmdError> {
    let mut f = 0;
    for &o in opts {
        let o = c_str(o);
        f |= if is(o, "nx") {
            EXPIRE_NX
        } else if is(o, "xx") {
            EXPIRE_XX
        } else if is(o, "gt") {
            EXPIRE_GT
        } else if is(o, "lt") {
            EXPIRE_LT
        } else {
            return Err(CmdError::msg(format!(
                "{}{}",
                errors::UNSUPPORTED_OPTION_PREFIX,
                errors::lossy(o)
            )));
        };
    }
    if f & EXPIRE_NX != 0 && f & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT) != 0 {
        return Err(CmdError::Static(errors::EXPIRE_NX_AND_OTHERS));
    }
    if f & EXPIRE_GT != 0 && f & EXPIRE_LT != 0 {
        return Err(CmdError::Static(errors::EXPIRE_GT_AND_LT));
    }
    Ok(f)
}

fn expire(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, argv, true, true)
}

fn pexpire(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, argv, true, false)
}

fn expireat(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, argv, false, true)
}

fn pexpireat(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, argv, false, false)
}

/// `expireGenericCommand`: the deadline is computed in signed milliseconds
/// with Redis' overflow checks; a deadline not in the future deletes the key
/// (propagated as `DEL`, or `UNLINK` under `lazyfree-lazy-expire`); any other
/// deadline is propagated as `PEXPIREAT key <ms>` with the flags given.
fn expire_generic(ctx: &mut Ctx, argv: &[&[u8]], relative: bool, seconds: bool) -> CmdResult {
    let key = argv[1];
    let flags = expire_flags(&argv[3..])?;
    let mut when = int_arg(argv[2])?;
    let invalid = CmdError::InvalidExpire(ctx.spec.name);
    if seconds {
        when = when.checked_mul(1000).ok_or(invalid.clone())?;
    }
    let base = if relative { ctx.now as i64 } else { 0 };
    if when > i64::MAX - base {
        return Err(invalid);
    }
    when += base;
    let (now, lru) = (ctx.now, ctx.lru());
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    let Some(e) = s.get(key, now) else {
        ctx.out.int(0);
        return Ok(());
    };
    e.touch(lru);
    let current = e.expire().map(|x| x.min(i64::MAX as u64) as i64);
    let refused = (flags & EXPIRE_NX != 0 && current.is_some())
        || (flags & EXPIRE_XX != 0 && current.is_none())
        || (flags & EXPIRE_GT != 0 && current.is_none_or(|c| when <= c))
        || (flags & EXPIRE_LT != 0 && current.is_some_and(|c| when >= c));
    if refused {
        ctx.out.int(0);
        return Ok(());
    }
    if when <= now as i64 {
        let old = s.remove(key);
        ctx.changed(GENERIC, "del", key);
        if ctx.propagating() {
            let del: &[u8] = if ctx.srv.config().lazyfree_lazy_expire {
                b"UNLINK"
            } else {
                b"DEL"
            };
            ctx.propagate(&[del, key]);
        }
        drop(s);
        drop(old);
    } else {
        s.set_expire(key, Some(when as u64));
        ctx.changed(GENERIC, "expire", key);
        // PEXPIREAT goes as it came; the others as PEXPIREAT with the
        // absolute deadline in ms.
        if (relative || seconds) && ctx.propagating() {
            let mut b = itoa::Buffer::new();
            let mut line: Vec<&[u8]> = vec![b"PEXPIREAT", key, b.format(when).as_bytes()];
            line.extend_from_slice(&argv[3..]);
            ctx.propagate(&line);
        }
    }
    ctx.out.int(1);
    Ok(())
}

fn ttl(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, argv, false, false)
}

fn pttl(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, argv, true, false)
}

fn expiretime(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, argv, false, true)
}

fn pexpiretime(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, argv, true, true)
}

/// `ttlGenericCommand`: -2 missing, -1 no expiry, else the remaining time or
/// the absolute deadline; seconds are rounded to the nearest second.
fn ttl_generic(ctx: &mut Ctx, argv: &[&[u8]], ms: bool, absolute: bool) -> CmdResult {
    let key = argv[1];
    let now = ctx.now;
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    let found = s.get(key, now).map(|e| e.expire());
    ctx.hit_key(found.is_some(), key);
    let v = match found {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => {
            let at = at.min(i64::MAX as u64) as i64;
            let t = if absolute { at } else { at - now as i64 }.max(0);
            if ms {
                t
            } else {
                ((t as i128 + 500) / 1000) as i64
            }
        }
    };
    ctx.out.int(v);
    Ok(())
}

fn persist(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let (now, lru) = (ctx.now, ctx.lru());
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    let had = match s.get(key, now) {
        Some(e) => {
            e.touch(lru);
            e.expire().is_some()
        }
        None => false,
    };
    if had {
        s.set_expire(key, None);
        ctx.changed(GENERIC, "persist", key);
    }
    ctx.out.int(had as i64);
    Ok(())
}

// --- RENAME / RENAMENX / COPY / MOVE -----------------------------------------

fn rename(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    rename_generic(ctx, argv, false)
}

fn renamenx(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    rename_generic(ctx, argv, true)
}

/// The value moves with its expiry; a same-name rename only checks that the
/// key exists.
fn rename_generic(ctx: &mut Ctx, argv: &[&[u8]], nx: bool) -> CmdResult {
    let (src, dst) = (argv[1], argv[2]);
    let (now, lru) = (ctx.now, ctx.lru());
    let done = with_keys(ctx, &[src, dst], |ctx, a| {
        let Some(e) = a.get(src, now) else {
            return Err(CmdError::NoSuchKey);
        };
        e.touch(lru);
        if src == dst {
            return Ok(false);
        }
        if a.get(dst, now).is_some() {
            if nx {
                return Ok(false);
            }
            a.remove(dst);
        }
        if let Some(e) = a.remove(src) {
            let exp = e.expire();
            a.insert(e.with_key(dst, exp));
        }
        // Both keys are modified (WATCH, blocked clients on `dst`); Redis
        // counts one change where this counts two.
        ctx.changed(GENERIC, "rename_from", src);
        ctx.changed(GENERIC, "rename_to", dst);
        Ok(true)
    })?;
    if nx {
        ctx.out.int(done as i64);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

/// Source and destination slots locked together: one DB (a [`MultiRef`]) or
/// two DBs (a guard in each). A short-lived stack value, so the inline
/// slot lists of `MultiRef` cost nothing to box away.
#[allow(clippy::large_enum_variant)]
enum Pair<'a> {
    Same(MultiRef<'a>),
    Cross(SlotRef<'a>, SlotRef<'a>),
}

impl Pair<'_> {
    fn src(&mut self) -> &mut dyn KeyAccess {
        match self {
            Pair::Same(m) => m,
            Pair::Cross(s, _) => s,
        }
    }

    fn dst(&mut self) -> &mut dyn KeyAccess {
        match self {
            Pair::Same(m) => m,
            Pair::Cross(_, d) => d,
        }
    }
}

/// COPY source destination [DB n] [REPLACE]
fn copy(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (src, dst) = (argv[1], argv[2]);
    let cur = ctx.client.db;
    let mut target = cur;
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        if is(argv[j], "replace") {
            replace = true;
        } else if is(argv[j], "db") && j + 1 < argv.len() {
            target = db_index_arg(ctx, argv[j + 1])?;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if target == cur && src == dst {
        return Err(CmdError::Static(errors::SAME_OBJECT));
    }
    let (now, lru) = (ctx.now, ctx.lru());
    let ks = ctx.ks();
    let mut pair = if target == cur {
        Pair::Same(ks.lock_keys(ctx.db(), [src, dst]))
    } else {
        let (s, d) = ks
            .lock_cross_db(cur, src, target, dst)
            .ok_or(CmdError::Static(errors::INVALID_DB))?;
        Pair::Cross(s, d)
    };
    let copied = match pair.src().get(src, now) {
        None => None,
        Some(e) => {
            e.touch(lru);
            let exp = e.expire();
            Some(e.with_key(dst, exp))
        }
    };
    ctx.hit(copied.is_some());
    let Some(copied) = copied else {
        ctx.out.int(0);
        return Ok(());
    };
    let d = pair.dst();
    if d.get(dst, now).is_some() {
        if !replace {
            ctx.out.int(0);
            return Ok(());
        }
        d.remove(dst);
    }
    d.insert(copied);
    ctx.changed_in(target, GENERIC, "copy_to", dst);
    drop(pair);
    ctx.out.int(1);
    Ok(())
}

/// MOVE key db: the entry moves whole (expiry and LRU included).
fn move_cmd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let target = db_index_arg(ctx, argv[2])?;
    let cur = ctx.client.db;
    if target == cur {
        return Err(CmdError::Static(errors::SAME_OBJECT));
    }
    let (now, lru) = (ctx.now, ctx.lru());
    let (mut s, mut d) = ctx
        .ks()
        .lock_cross_db(cur, key, target, key)
        .ok_or(CmdError::Static(errors::INVALID_DB))?;
    match s.get(key, now) {
        None => {
            ctx.out.int(0);
            return Ok(());
        }
        Some(e) => e.touch(lru),
    }
    if d.get(key, now).is_some() {
        ctx.out.int(0);
        return Ok(());
    }
    let moved = s.remove(key).is_some_and(|e| {
        d.insert(e);
        true
    });
    if moved {
        // Redis counts one change where this counts two.
        ctx.changed(GENERIC, "move_from", key);
        ctx.changed_in(target, GENERIC, "move_to", key);
    }
    drop((s, d));
    ctx.out.int(moved as i64);
    Ok(())
}

// --- KEYS / SCAN / RANDOMKEY -------------------------------------------------

/// Collects bulk replies in a scratch buffer so the array length can be
/// written first.
struct Bulks {
    out: Reply,
    n: usize,
}

impl Bulks {
    fn new(resp3: bool) -> Self {
        Bulks {
            out: Reply {
                buf: Vec::new(),
                resp3,
            },
            n: 0,
        }
    }

    fn push(&mut self, s: &[u8]) {
        self.out.bulk(s);
        self.n += 1;
    }

    fn write_array(self, out: &mut Reply) {
        out.array(self.n);
        out.buf.extend_from_slice(&self.out.buf);
    }
}

fn keys(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let pat = argv[1];
    let all = is_match_all(pat);
    let now = ctx.now;
    let mut found = Bulks::new(ctx.out.resp3);
    ctx.ks().for_each_entry(ctx.db(), |e| {
        if (all || string_match(pat, e.key(), false)) && !e.is_expired(now) {
            found.push(e.key());
        }
    });
    found.write_array(ctx.out);
    Ok(())
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
fn scan(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(argv[1])?;
    let mut count: i64 = 10;
    let mut pat: Option<&[u8]> = None;
    let mut type_name: Option<&[u8]> = None;
    let mut i = 2;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        if is(argv[i], "count") && more {
            count = int_arg(argv[i + 1])?;
            if count < 1 {
                return Err(CmdError::Syntax);
            }
        } else if is(argv[i], "match") && more {
            pat = Some(argv[i + 1]).filter(|p| !is_match_all(p));
        } else if is(argv[i], "type") && more {
            type_name = Some(c_str(argv[i + 1]));
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let now = ctx.now;
    let mut found = Bulks::new(ctx.out.resp3);
    let (mut hits, mut misses) = (0, 0);
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let next = ctx.ks().scan(ctx.db(), cursor, count, now, |e, expired| {
        if pat.is_some_and(|p| !string_match(p, e.key(), false)) {
            return;
        }
        if let Some(t) = type_name {
            // Redis looks the key up (a read) to learn its type.
            if expired {
                misses += 1;
                return;
            }
            hits += 1;
            if !t.eq_ignore_ascii_case(e.kind().name().as_bytes()) {
                return;
            }
        }
        if !expired {
            found.push(e.key());
        }
    });
    count_hits(ctx, hits, misses);
    ctx.out.array(2);
    let mut b = itoa::Buffer::new();
    ctx.out.bulk(b.format(next).as_bytes());
    found.write_array(ctx.out);
    Ok(())
}

fn randomkey(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    match ctx.ks().random_key(ctx.db(), ctx.now) {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
    Ok(())
}

// --- OBJECT --------------------------------------------------------------------

/// `OBJECT HELP`, line for line as Redis 7.0 prints it (clients display it).
const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// Redis' `OBJ_SHARED_REFCOUNT` (shared small integers report INT_MAX).
const SHARED_REFCOUNT: i64 = i32::MAX as i64;
/// Redis shares the integers 0..10000 (`OBJ_SHARED_INTEGERS`).
const SHARED_INTEGERS: i64 = 10000;
/// Largest value of the 24-bit LRU clock.
const LRU_CLOCK_MAX: u64 = (1 << 24) - 1;

fn is_lfu(p: MaxmemoryPolicy) -> bool {
    matches!(
        p,
        MaxmemoryPolicy::AllkeysLfu | MaxmemoryPolicy::VolatileLfu
    )
}

/// Whether SET-like commands would store small integers as Redis' shared
/// objects (not when an LRU/LFU policy with a memory limit needs per-key
/// access data).
fn shared_integers(ctx: &Ctx) -> bool {
    let cfg = ctx.srv.config();
    cfg.maxmemory == 0
        || !matches!(
            cfg.maxmemory_policy,
            MaxmemoryPolicy::AllkeysLru
                | MaxmemoryPolicy::VolatileLru
                | MaxmemoryPolicy::AllkeysLfu
                | MaxmemoryPolicy::VolatileLfu
        )
}

fn refcount(ctx: &Ctx, e: &Entry) -> i64 {
    let small = e.encoding() == "int"
        && e.as_str()
            .and_then(protocol::number::parse_i64)
            .is_some_and(|v| (0..SHARED_INTEGERS).contains(&v));
    if small && shared_integers(ctx) {
        SHARED_REFCOUNT
    } else {
        1
    }
}

/// Seconds since the entry's last access, from the 24-bit LRU clocks
/// (`estimateObjectIdleTime`, wrap-around included).
fn idle_secs(clock: u32, lru: u32) -> i64 {
    let (clock, lru) = (clock as u64, lru as u64);
    (if clock >= lru {
        clock - lru
    } else {
        clock + (LRU_CLOCK_MAX - lru)
    }) as i64
}

fn object(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let sub = ctx.spec.short_name();
    if sub == "help" {
        ctx.out.array(OBJECT_HELP.len());
        for line in OBJECT_HELP {
            ctx.out.simple(line.as_bytes());
        }
        return Ok(());
    }
    // The gate resolved the subcommand and checked its arity (3).
    let Some(&key) = argv.get(2) else {
        return Err(CmdError::msg(errors::subcommand_syntax(
            "object",
            argv.get(1).copied().unwrap_or(b""),
        )));
    };
    let (now, clock) = (ctx.now, ctx.lru());
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    let Some(e) = s.get(key, now) else {
        ctx.hit(false);
        ctx.out.null();
        return Ok(());
    };
    ctx.hit(true);
    match sub {
        "encoding" => ctx.out.bulk(e.encoding().as_bytes()),
        "refcount" => ctx.out.int(refcount(ctx, e)),
        "idletime" => {
            if is_lfu(ctx.srv.config().maxmemory_policy) {
                return Err(CmdError::Static(errors::LFU_POLICY_SELECTED));
            }
            ctx.out.int(idle_secs(clock, e.lru()));
        }
        "freq" => {
            if !is_lfu(ctx.srv.config().maxmemory_policy) {
                return Err(CmdError::Static(errors::LFU_POLICY_NOT_SELECTED));
            }
            let min = crate::evict::minutes(now);
            ctx.out.int(crate::evict::lfu_decayed(e.lru(), min) as i64);
        }
        _ => return Err(CmdError::msg(errors::subcommand_syntax("object", argv[1]))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness as T;

    #[test]
    fn expire_flag_combinations() {
        let f = |o: &[&[u8]]| expire_flags(o);
        assert_eq!(f(&[]), Ok(0));
        assert_eq!(f(&[b"nx", b"NX"]), Ok(EXPIRE_NX));
        assert_eq!(f(&[b"gt", b"xx"]), Ok(EXPIRE_GT | EXPIRE_XX));
        assert_eq!(
            f(&[b"nx", b"xx"]),
            Err(CmdError::Static(errors::EXPIRE_NX_AND_OTHERS))
        );
        assert_eq!(
            f(&[b"gt", b"lt", b"nx"]),
            Err(CmdError::Static(errors::EXPIRE_NX_AND_OTHERS))
        );
        assert_eq!(
            f(&[b"xx", b"gt", b"lt"]),
            Err(CmdError::Static(errors::EXPIRE_GT_AND_LT))
        );
        assert_eq!(f(&[b"nx\0yy"]), Ok(EXPIRE_NX));
        assert_eq!(
            f(&[b"gt", b"zz\0yy"]),
            Err(CmdError::msg("ERR Unsupported option zz"))
        );
    }

    #[test]
    fn idle_time_wraps_like_redis() {
        assert_eq!(idle_secs(100, 40), 60);
        assert_eq!(idle_secs(5, 5), 0);
        assert_eq!(idle_secs(3, LRU_CLOCK_MAX as u32 - 2), 5);
    }

    #[test]
    fn ttl_rounding_and_lazy_expiry() {
        let mut t = T::new();
        assert_eq!(t.run("SET k v"), "+OK\r\n");
        assert_eq!(t.run("PEXPIRE k 1499"), ":1\r\n");
        assert_eq!(t.run("TTL k"), ":1\r\n");
        assert_eq!(t.run("PTTL k"), ":1499\r\n");
        assert_eq!(t.run("PEXPIRE k 1500"), ":1\r\n");
        assert_eq!(t.run("TTL k"), ":2\r\n");
        assert_eq!(
            t.run("EXPIRETIME k"),
            format!(":{}\r\n", (t.now + 1500 + 500) / 1000)
        );
        t.now += 1499;
        assert_eq!(t.run("PTTL k"), ":1\r\n");
        assert_eq!(t.run("TTL k"), ":0\r\n");
        // At the deadline itself the key still exists (Redis: expired when now > when).
        t.now += 1;
        assert_eq!(t.run("PTTL k"), ":0\r\n");
        t.now += 1;
        assert_eq!(t.run("TTL k"), ":-2\r\n");
        assert_eq!(t.run("DBSIZE"), ":0\r\n");
        // EXPIRE with a relative time in the past deletes at once.
        t.run("SET k v");
        assert_eq!(t.run("EXPIRE k 0"), ":1\r\n");
        assert_eq!(t.run("EXISTS k"), ":0\r\n");
        // EXPIREAT exactly now counts as already expired.
        t.run("SET k v");
        assert_eq!(t.run(&format!("PEXPIREAT k {}", t.now)), ":1\r\n");
        assert_eq!(t.run("DBSIZE"), ":0\r\n");
    }

    #[test]
    fn expired_keys_are_invisible_everywhere() {
        let mut t = T::new();
        t.run("MSET a 1 b 2 c 3");
        t.run("PEXPIRE a 10");
        t.run("PEXPIRE b 10");
        t.now += 11;
        assert_eq!(t.run("KEYS *"), "*1\r\n$1\r\nc\r\n");
        assert_eq!(t.run("DBSIZE"), ":3\r\n", "KEYS does not reclaim");
        assert_eq!(
            t.run("SCAN 0 COUNT 100"),
            "*2\r\n$1\r\n0\r\n*1\r\n$1\r\nc\r\n"
        );
        assert_eq!(t.run("DBSIZE"), ":1\r\n", "SCAN reclaims what it meets");
        t.run("MSET a 1 b 2");
        t.run("PEXPIRE a 10");
        t.run("PEXPIRE b 10");
        t.now += 11;
        for cmd in [
            "TYPE a",
            "OBJECT ENCODING a",
            "TTL a",
            "EXISTS a b",
            "DEL a",
            "RENAME b z",
            "MOVE a 1",
            "COPY a z",
        ] {
            let r = t.run(cmd);
            assert!(
                matches!(
                    r.as_str(),
                    "+none\r\n" | "$-1\r\n" | ":-2\r\n" | ":0\r\n" | "-ERR no such key\r\n"
                ),
                "{cmd}: {r}"
            );
        }
        for _ in 0..20 {
            assert_eq!(t.run("RANDOMKEY"), "$1\r\nc\r\n");
        }
        t.run("PEXPIRE c 1");
        t.now += 2;
        assert_eq!(t.run("RANDOMKEY"), "$-1\r\n");
        assert_eq!(t.run("DBSIZE"), ":0\r\n");
    }

    #[test]
    fn keyspace_hits_like_redis() {
        let mut t = T::new();
        t.run("MSET a 1 aa 2");
        let base = t.hits_misses();
        let cases: &[(&str, (u64, u64))] = &[
            ("EXISTS a b", (1, 1)),
            ("TYPE a", (1, 0)),
            ("TOUCH a b", (1, 1)),
            ("TTL a", (1, 0)),
            ("COPY a c", (1, 0)),
            ("OBJECT ENCODING a", (1, 0)),
            ("OBJECT FREQ a", (1, 0)),
            ("SCAN 0 TYPE string", (3, 0)),
            ("KEYS *", (0, 0)),
            ("RANDOMKEY", (0, 0)),
            ("DEL zz", (0, 0)),
            ("EXPIRE a 100", (0, 0)),
            ("PERSIST a", (0, 0)),
            ("RENAME c d", (0, 0)),
            ("MOVE d 1", (0, 0)),
            ("EXPIRETIME nokey", (0, 1)),
        ];
        let mut prev = base;
        for (cmd, (h, m)) in cases {
            t.run(cmd);
            let now = t.hits_misses();
            assert_eq!((now.0 - prev.0, now.1 - prev.1), (*h, *m), "{cmd}");
            prev = now;
        }
    }

    #[test]
    fn idle_time_follows_the_lru_clock() {
        let mut t = T::new();
        t.run("SET k v");
        assert_eq!(t.run("OBJECT IDLETIME k"), ":0\r\n");
        t.now += 65_000;
        assert_eq!(t.run("OBJECT IDLETIME k"), ":65\r\n");
        // NOTOUCH lookups leave the clock alone; TOUCH and writes refresh it.
        t.run("TYPE k");
        t.run("EXISTS k");
        t.run("TTL k");
        assert_eq!(t.run("OBJECT IDLETIME k"), ":65\r\n");
        t.run("TOUCH k");
        assert_eq!(t.run("OBJECT IDLETIME k"), ":0\r\n");
        t.now += 3000;
        t.run("RENAME k k2");
        assert_eq!(t.run("OBJECT IDLETIME k2"), ":0\r\n");
    }

    #[test]
    fn rename_copy_move_keep_values_and_ttls() {
        let mut t = T::new();
        t.run("SET src hello");
        t.run("PEXPIREAT src 4102444800123");
        assert_eq!(t.run("COPY src dst"), ":1\r\n");
        assert_eq!(t.run("PEXPIRETIME dst"), ":4102444800123\r\n");
        assert_eq!(t.run("COPY src dst DB 3"), ":1\r\n");
        assert_eq!(t.run("MOVE dst 3"), ":0\r\n");
        assert_eq!(t.run("RENAME dst moved"), "+OK\r\n");
        assert_eq!(t.run("MOVE moved 5"), ":1\r\n");
        t.run("SELECT 5");
        assert_eq!(t.run("GET moved"), "$5\r\nhello\r\n");
        assert_eq!(t.run("PEXPIRETIME moved"), ":4102444800123\r\n");
        t.run("SELECT 3");
        assert_eq!(t.run("GET dst"), "$5\r\nhello\r\n");
        assert_eq!(t.run("PEXPIRETIME dst"), ":4102444800123\r\n");
        t.run("SELECT 0");
        assert_eq!(t.run("DBSIZE"), ":1\r\n");
        let counts: Vec<usize> = (0..6).map(|i| t.srv.ks.db(i).unwrap().len()).collect();
        assert_eq!(counts, vec![1, 0, 0, 1, 0, 1]);
    }

    /// The EXPIRE family propagates absolute deadlines (flags kept), a past
    /// deadline as DEL; writes that change nothing propagate nothing.
    #[test]
    fn propagation_rewrites() {
        let mut t = T::new();
        t.run("MSET a 1 b 2 c 3");
        t.capture();
        let in10s = t.now + 10_000;
        t.run("EXPIRE a 10 NX");
        t.run("EXPIRE a 20 NX");
        t.run("PEXPIRE a 10000 xx gt");
        t.run("EXPIREAT b 4102444800");
        t.run("pexpireat b 4102444800001 GT");
        t.run("EXPIRE nokey 10");
        t.run("EXPIRE c 10 XX");
        t.run("EXPIRE c 10 LT");
        assert_eq!(
            t.propagated(),
            [
                "SELECT 0".to_string(),
                format!("PEXPIREAT a {in10s} NX"),
                "PEXPIREAT b 4102444800000".into(),
                "pexpireat b 4102444800001 GT".into(),
                format!("PEXPIREAT c {in10s} LT"),
            ]
        );
        t.run("EXPIRE a 0");
        t.run("PEXPIREAT b 1");
        t.run("PEXPIRE nokey -5");
        assert_eq!(t.propagated(), ["DEL a", "DEL b"]);
        t.run("CONFIG SET lazyfree-lazy-expire yes");
        t.run("EXPIREAT c 1");
        assert_eq!(t.propagated(), ["UNLINK c"]);
        t.run("MSET a 1 b 2");
        t.propagated();
        t.run("DEL x y");
        t.run("UNLINK x");
        t.run("PERSIST a");
        t.run("TOUCH a b");
        t.run("RENAME a a");
        t.run("RENAMENX a b");
        t.run("COPY a b");
        t.run("MOVE nokey 1");
        assert!(t.propagated().is_empty());
        t.run("DEL x a y");
        t.run("PEXPIRE b 100");
        t.run("PERSIST b");
        t.run("RENAME b c");
        t.run("COPY c d DB 1");
        t.run("COPY c d DB 1");
        t.run("MOVE d 1");
        t.run("MOVE c 1");
        assert_eq!(
            t.propagated(),
            [
                "DEL x a y".to_string(),
                format!("PEXPIREAT b {}", t.now + 100),
                "PERSIST b".into(),
                "RENAME b c".into(),
                "COPY c d DB 1".into(),
                "MOVE c 1".into(),
            ]
        );
    }

    #[test]
    fn help_has_redis_shape() {
        assert_eq!(OBJECT_HELP.len(), 15);
        assert!(
            OBJECT_HELP
                .iter()
                .all(|l| !l.contains('\r') && !l.contains('\n'))
        );
    }
}
