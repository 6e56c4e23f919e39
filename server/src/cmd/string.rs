//! String commands, mirroring Redis 7.0.15 `t_string.c`: GET, SET (with
//! EX/PX/EXAT/PXAT/NX/XX/KEEPTTL/GET), SETNX, SETEX, PSETEX, GETSET, GETDEL,
//! GETEX, MGET, MSET, MSETNX, INCR/DECR/INCRBY/DECRBY, INCRBYFLOAT, APPEND,
//! STRLEN, GETRANGE/SUBSTR, SETRANGE and LCS.
//!
//! Behaviour kept from Redis, point by point:
//! * Option parsing of SET/GETEX follows `parseExtendedStringArgumentsOrReply`:
//!   options compare as C strings (an argument is cut at its first NUL byte),
//!   a repeated option is accepted (the last expiry wins), conflicting ones are
//!   a syntax error, and the expiry is validated only after the whole line
//!   parsed (`invalid expire time in '<cmd>' command` for values <= 0, for
//!   seconds that overflow when multiplied by 1000 and for relative times that
//!   overflow when the current time is added).
//! * Error order: syntax, then expiry value, then WRONGTYPE (SET ... GET);
//!   GETEX looks the key up (nil, WRONGTYPE) before it validates the expiry.
//! * TTLs: SET/GETSET/MSET drop the TTL (SET KEEPTTL keeps it); APPEND,
//!   SETRANGE, INCR* and INCRBYFLOAT keep it. An absolute expiry in the past
//!   stores a key that is already expired (SET replies OK, later lookups miss);
//!   GETEX EXAT/PXAT in the past deletes the key after replying.
//! * Keyspace hits/misses are counted where Redis uses `lookupKeyRead`
//!   (GET, GETEX, GETDEL, GETSET, SET ... GET, MGET, STRLEN, GETRANGE, LCS),
//!   never for write lookups (INCR, APPEND, SETRANGE, ...).
//! * Multi-key commands (MGET, MSET, MSETNX, LCS) lock all their slots at once
//!   through `lock_keys`, so they are atomic across slots.
//! * LCS builds the same `(alen+1)*(blen+1)` table of u32 Redis does and
//!   refuses it when it would exceed `proto-max-bulk-len` bytes.
//! * Changes are reported (`Ctx::changed`) with Redis' events (`set`, then
//!   `expire` when SET carries an expiry; `incrby`, `incrbyfloat`, `append`,
//!   `setrange`; GETEX's `expire`/`persist`/`del`; GETDEL's `del`), never for
//!   a command that changed nothing. What is propagated is rewritten where
//!   Redis rewrites it: SET/SETEX/PSETEX with an expiry → `SET k v PXAT ms`,
//!   SET … GET → the line without GET, GETSET → `SET`, INCRBYFLOAT →
//!   `SET k v KEEPTTL`, GETDEL → `DEL`/`UNLINK`, GETEX → `PEXPIREAT`,
//!   `PERSIST` or `DEL`/`UNLINK`.

use std::sync::atomic::Ordering::Relaxed;

use protocol::command::CmdId;
use protocol::number::{IncrFloatError, incrbyfloat, parse_i64};

use crate::cmd::util::int_arg;
use crate::cmd::util::{c_is as copt, c_str as cstr};
use crate::db::{Db, Entry, KeyAccess, Object};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::{GENERIC, STRING};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Get => get,
        CmdId::Set => set,
        CmdId::Setnx => setnx,
        CmdId::Setex => setex,
        CmdId::Psetex => psetex,
        CmdId::Getset => getset,
        CmdId::Getdel => getdel,
        CmdId::Getex => getex,
        CmdId::Mget => mget,
        CmdId::Mset => mset,
        CmdId::Msetnx => msetnx,
        CmdId::Incr => incr,
        CmdId::Decr => decr,
        CmdId::Incrby => incrby,
        CmdId::Decrby => decrby,
        CmdId::Incrbyfloat => incrbyfloat_cmd,
        CmdId::Append => append,
        CmdId::Strlen => strlen,
        CmdId::Getrange | CmdId::Substr => getrange,
        CmdId::Setrange => setrange,
        CmdId::Lcs => lcs,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Upsert that also accounts for an expired key being overwritten (Redis
/// would have expired it in the lookup that precedes every write).
#[inline]
fn upsert(s: &mut impl KeyAccess, db: &Db, e: Entry, now: u64) -> Option<Entry> {
    let old = s.put(e);
    if let Some(o) = &old
        && o.is_expired(now)
    {
        db.expired.fetch_add(1, Relaxed);
    }
    old
}

/// `checkStringLength`: `size + append` must not exceed proto-max-bulk-len.
fn check_len(size: u64, append: u64, max: u64) -> CmdResult {
    match size.checked_add(append) {
        Some(t) if t <= max => Ok(()),
        _ => Err(CmdError::Static(errors::STRING_TOO_LONG)),
    }
}

fn proto_max_bulk_len(ctx: &Ctx) -> u64 {
    ctx.srv.config().proto_max_bulk_len
}

/// How a deletion is propagated: `UNLINK` when the lazy-free option Redis
/// consults is on, else `DEL`.
fn del_name(lazy: bool) -> &'static [u8] {
    if lazy { b"UNLINK" } else { b"DEL" }
}

// ---------------------------------------------------------------------------
// SET / GETEX option parsing
// ---------------------------------------------------------------------------

/// Which expiry option was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl ExpKind {
    fn seconds(self) -> bool {
        matches!(self, ExpKind::Ex | ExpKind::ExAt)
    }
    fn relative(self) -> bool {
        matches!(self, ExpKind::Ex | ExpKind::Px)
    }
}

/// Parsed SET / GETEX options.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ExtOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    exp: Option<(ExpKind, &'a [u8])>,
}

/// `parseExtendedStringArgumentsOrReply`: `is_set` selects the SET grammar
/// (options from argv[3]) or the GETEX one (options from argv[2]).
fn parse_ext<'a>(argv: &[&'a [u8]], is_set: bool) -> Result<ExtOpts<'a>, CmdError> {
    let mut o = ExtOpts::default();
    let mut j = if is_set { 3 } else { 2 };
    while j < argv.len() {
        let opt = cstr(argv[j]);
        let next = argv.get(j + 1).copied();
        let exp_kind = o.exp.map(|(k, _)| k);
        // An expiry option is allowed when no other expiry kind, KEEPTTL or
        // PERSIST was given (the same kind again is fine: the last one wins).
        let exp_ok = |k: ExpKind| !o.keepttl && !o.persist && exp_kind.is_none_or(|e| e == k);
        let kw = |s: &str| opt.eq_ignore_ascii_case(s.as_bytes());
        if is_set && kw("NX") && !o.xx {
            o.nx = true;
        } else if is_set && kw("XX") && !o.nx {
            o.xx = true;
        } else if is_set && kw("GET") {
            o.get = true;
        } else if is_set && kw("KEEPTTL") && !o.persist && exp_kind.is_none() {
            o.keepttl = true;
        } else if !is_set && kw("PERSIST") && exp_kind.is_none() && !o.keepttl {
            o.persist = true;
        } else if let Some(k) = [
            ("EX", ExpKind::Ex),
            ("PX", ExpKind::Px),
            ("EXAT", ExpKind::ExAt),
            ("PXAT", ExpKind::PxAt),
        ]
        .iter()
        .find(|(n, _)| kw(n))
        .map(|&(_, k)| k)
            && exp_ok(k)
            && let Some(v) = next
        {
            o.exp = Some((k, v));
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// `getExpireMillisecondsOrReply`: the absolute expiry in unix ms.
fn expire_at(kind: ExpKind, arg: &[u8], now: u64, cmd: &'static str) -> Result<u64, CmdError> {
    let v = parse_i64(arg).ok_or(CmdError::NotInteger)?;
    if v <= 0 || (kind.seconds() && v > i64::MAX / 1000) {
        return Err(CmdError::InvalidExpire(cmd));
    }
    let mut ms = if kind.seconds() { v * 1000 } else { v };
    if kind.relative() {
        // Redis adds the current time and rejects a result that wrapped.
        ms = ms
            .checked_add(now as i64)
            .ok_or(CmdError::InvalidExpire(cmd))?;
    }
    Ok(ms as u64)
}

// ---------------------------------------------------------------------------
// GET / SET family
// ---------------------------------------------------------------------------

fn get(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ctx.read_key(argv[1], |out, e| {
        match e {
            None => out.null(),
            Some(e) => out.bulk(e.as_str().ok_or(CmdError::WrongType)?),
        }
        Ok(())
    })
}

/// What SET-like commands reply on success / when NX or XX aborts.
#[derive(Clone, Copy)]
enum SetReply {
    /// `+OK` / nil.
    Ok,
    /// `:1` / `:0` (SETNX).
    Int,
}

/// `setGenericCommand`. `argv` is the command line (its GET options are
/// left out of what is propagated).
#[allow(clippy::too_many_arguments)]
fn set_generic(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    key: &[u8],
    val: &[u8],
    o: &ExtOpts,
    expire: Option<u64>,
    rep: SetReply,
) -> CmdResult {
    let now = ctx.now;
    let lru = ctx.lru();
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    let (found, old_exp) = match s.get(key, now) {
        None => {
            if o.get {
                ctx.hit(false);
                ctx.out.null();
            }
            (false, None)
        }
        Some(e) => {
            if o.get {
                ctx.hit(true);
                ctx.out.bulk(e.as_str().ok_or(CmdError::WrongType)?);
            }
            (true, e.expire())
        }
    };
    if (o.nx && found) || (o.xx && !found) {
        if !o.get {
            match rep {
                SetReply::Ok => ctx.out.null(),
                SetReply::Int => ctx.out.int(0),
            }
        }
        return Ok(());
    }
    let exp = if expire.is_some() {
        expire
    } else if o.keepttl {
        old_exp
    } else {
        None
    };
    let old = s.put(Entry::new_str(key, val, exp, lru));
    ctx.changed(STRING, "set", key);
    if let Some(ms) = expire {
        ctx.notify(GENERIC, "expire", key);
        if ctx.propagating() {
            // The expiry travels as an absolute time; NX/XX/GET/KEEPTTL go.
            let mut b = itoa::Buffer::new();
            ctx.propagate::<&[u8]>(&[b"SET", key, val, b"PXAT", b.format(ms).as_bytes()]);
        }
    } else if o.get && ctx.propagating() {
        // Replicas need no reply: the same line without its GET options.
        let mut line: Vec<&[u8]> = argv[..3].to_vec();
        line.extend(argv[3..].iter().filter(|a| !copt(a, "GET")));
        ctx.propagate(&line);
    }
    drop(s);
    drop(old);
    if !o.get {
        match rep {
            SetReply::Ok => ctx.out.ok(),
            SetReply::Int => ctx.out.int(1),
        }
    }
    Ok(())
}

fn set(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (key, val) = (argv[1], argv[2]);
    if argv.len() == 3 {
        // Plain SET: one allocation, built before the slot is locked.
        let now = ctx.now;
        let e = Entry::new_str(key, val, None, ctx.lru());
        let db = ctx.db();
        let mut s = ctx.ks().lock_key(db, key);
        let old = upsert(&mut s, db, e, now);
        ctx.changed(STRING, "set", key);
        drop(s);
        drop(old);
        ctx.out.ok();
        return Ok(());
    }
    let o = parse_ext(argv, true)?;
    let expire = match o.exp {
        Some((k, a)) => Some(expire_at(k, a, ctx.now, ctx.spec.name)?),
        None => None,
    };
    set_generic(ctx, argv, key, val, &o, expire, SetReply::Ok)
}

fn setnx(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let o = ExtOpts {
        nx: true,
        ..ExtOpts::default()
    };
    set_generic(ctx, argv, argv[1], argv[2], &o, None, SetReply::Int)
}

fn setex_generic(ctx: &mut Ctx, argv: &[&[u8]], kind: ExpKind) -> CmdResult {
    let expire = expire_at(kind, argv[2], ctx.now, ctx.spec.name)?;
    set_generic(
        ctx,
        argv,
        argv[1],
        argv[3],
        &ExtOpts::default(),
        Some(expire),
        SetReply::Ok,
    )
}

fn setex(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    setex_generic(ctx, argv, ExpKind::Ex)
}

fn psetex(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    setex_generic(ctx, argv, ExpKind::Px)
}

fn getset(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (key, val) = (argv[1], argv[2]);
    let now = ctx.now;
    let e = Entry::new_str(key, val, None, ctx.lru());
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    match s.get(key, now) {
        None => {
            ctx.hit(false);
            ctx.out.null();
        }
        Some(old) => {
            ctx.hit(true);
            ctx.out.bulk(old.as_str().ok_or(CmdError::WrongType)?);
        }
    }
    let old = s.put(e);
    ctx.changed(STRING, "set", key);
    ctx.propagate::<&[u8]>(&[b"SET", key, val]);
    drop(s);
    drop(old);
    Ok(())
}

fn getdel(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    match s.get(key, ctx.now) {
        None => {
            ctx.hit(false);
            ctx.out.null();
            Ok(())
        }
        Some(e) => {
            ctx.hit(true);
            ctx.out.bulk(e.as_str().ok_or(CmdError::WrongType)?);
            let old = s.remove(key);
            ctx.changed(GENERIC, "del", key);
            if ctx.propagating() {
                let lazy = ctx.srv.config().lazyfree_lazy_user_del;
                ctx.propagate::<&[u8]>(&[del_name(lazy), key]);
            }
            drop(s);
            drop(old);
            Ok(())
        }
    }
}

fn getex(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let o = parse_ext(argv, false)?;
    let now = ctx.now;
    let lru = ctx.lru();
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = s.get(key, now) else {
        ctx.hit(false);
        ctx.out.null();
        return Ok(());
    };
    ctx.hit(true);
    e.touch(lru);
    let had_ttl = e.expire().is_some();
    let v = e.as_str().ok_or(CmdError::WrongType)?;
    let expire = match o.exp {
        Some((k, a)) => Some(expire_at(k, a, now, ctx.spec.name)?),
        None => None,
    };
    ctx.out.bulk(v);
    // Never propagated as is: as the DEL, PEXPIREAT or PERSIST it amounts to.
    match (o.exp, expire) {
        (Some((k, _)), Some(ms)) if !k.relative() && ms <= now => {
            let old = s.remove(key);
            ctx.changed(GENERIC, "del", key);
            if ctx.propagating() {
                let lazy = ctx.srv.config().lazyfree_lazy_expire;
                ctx.propagate::<&[u8]>(&[del_name(lazy), key]);
            }
            drop(s);
            drop(old);
        }
        (_, Some(ms)) => {
            s.set_expire(key, Some(ms));
            ctx.changed(GENERIC, "expire", key);
            if ctx.propagating() {
                let mut b = itoa::Buffer::new();
                ctx.propagate::<&[u8]>(&[b"PEXPIREAT", key, b.format(ms).as_bytes()]);
            }
        }
        _ if o.persist && had_ttl => {
            s.set_expire(key, None);
            ctx.changed(GENERIC, "persist", key);
            ctx.propagate::<&[u8]>(&[b"PERSIST", key]);
        }
        _ => {}
    }
    Ok(())
}

fn mget(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let keys = &argv[1..];
    let now = ctx.now;
    let lru = ctx.lru();
    let db = ctx.db();
    let mut m = ctx.ks().lock_keys(db, keys.iter().copied());
    m.prefetch(keys.iter().copied());
    ctx.out.array(keys.len());
    let (mut hits, mut misses) = (0u64, 0u64);
    for &k in keys {
        match m.get(k, now) {
            None => {
                misses += 1;
                ctx.out.null();
                ctx.notify(crate::exec::notify::KEY_MISS, "keymiss", k);
            }
            Some(e) => {
                hits += 1;
                e.touch(lru);
                match e.as_str() {
                    Some(v) => ctx.out.bulk(v),
                    None => ctx.out.null(),
                }
            }
        }
    }
    drop(m);
    let st = &ctx.srv.stats;
    if hits > 0 {
        st.keyspace_hits.fetch_add(hits, Relaxed);
    }
    if misses > 0 {
        st.keyspace_misses.fetch_add(misses, Relaxed);
    }
    Ok(())
}

fn mset_generic(ctx: &mut Ctx, argv: &[&[u8]], nx: bool) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(CmdError::Msg(errors::wrong_arity(ctx.spec.name)));
    }
    let now = ctx.now;
    let lru = ctx.lru();
    let db = ctx.db();
    let pairs = || argv[1..].chunks_exact(2);
    let mut m = ctx.ks().lock_keys(db, pairs().map(|p| p[0]));
    m.prefetch(pairs().map(|p| p[0]));
    if nx && pairs().any(|p| m.get(p[0], now).is_some()) {
        drop(m);
        ctx.out.int(0);
        return Ok(());
    }
    for p in pairs() {
        upsert(&mut m, db, Entry::new_str(p[0], p[1], None, lru), now);
        ctx.changed(STRING, "set", p[0]);
    }
    drop(m);
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

fn mset(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    mset_generic(ctx, argv, false)
}

fn msetnx(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    mset_generic(ctx, argv, true)
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

/// `incrDecrCommand`: adds `incr` to the integer at `key`, keeping its TTL.
fn incr_decr(ctx: &mut Ctx, key: &[u8], incr: i64) -> CmdResult {
    let now = ctx.now;
    let lru = ctx.lru();
    let mut buf = itoa::Buffer::new();
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let value = match s.get(key, now) {
        None => {
            s.insert(Entry::new_str(key, buf.format(incr).as_bytes(), None, lru));
            incr
        }
        Some(e) => {
            let cur = e.as_str().ok_or(CmdError::WrongType)?;
            let old = parse_i64(cur).ok_or(CmdError::NotInteger)?;
            let value = old.checked_add(incr).ok_or(CmdError::Overflow)?;
            let text = buf.format(value).as_bytes();
            match e.inline_str_mut() {
                // Same width: rewrite the digits in place, no allocation.
                Some(p) if p.len() == text.len() => p.copy_from_slice(text),
                _ => {
                    let exp = e.expire();
                    e.set_str(text, exp);
                }
            }
            e.touch(lru);
            value
        }
    };
    ctx.changed(STRING, "incrby", key);
    drop(s);
    ctx.out.int(value);
    Ok(())
}

fn incr(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    incr_decr(ctx, argv[1], 1)
}

fn decr(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    incr_decr(ctx, argv[1], -1)
}

fn incrby(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let incr = int_arg(argv[2])?;
    incr_decr(ctx, argv[1], incr)
}

fn decrby(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let decr = int_arg(argv[2])?;
    // Negating i64::MIN would overflow.
    let incr = decr
        .checked_neg()
        .ok_or(CmdError::Static(errors::DECREMENT_OVERFLOW))?;
    incr_decr(ctx, argv[1], incr)
}

fn incrbyfloat_cmd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let now = ctx.now;
    let lru = ctx.lru();
    let fail = |e: IncrFloatError| match e {
        IncrFloatError::NotFloat => CmdError::NotFloat,
        IncrFloatError::NanOrInf => CmdError::Static(errors::INCR_NAN),
    };
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let v = match s.get(key, now) {
        None => {
            let v = incrbyfloat(None, argv[2]).map_err(fail)?;
            s.insert(Entry::new_str(key, &v, None, lru));
            v
        }
        Some(e) => {
            let cur = e.as_str().ok_or(CmdError::WrongType)?;
            let v = incrbyfloat(Some(cur), argv[2]).map_err(fail)?;
            let exp = e.expire();
            e.set_str(&v, exp);
            e.touch(lru);
            v
        }
    };
    ctx.changed(STRING, "incrbyfloat", key);
    // The result, not the increment, so float formatting cannot diverge.
    ctx.propagate::<&[u8]>(&[b"SET", key, &v[..], b"KEEPTTL"]);
    drop(s);
    ctx.out.bulk(&v);
    Ok(())
}

// ---------------------------------------------------------------------------
// APPEND, STRLEN, GETRANGE, SETRANGE
// ---------------------------------------------------------------------------

fn append(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (key, val) = (argv[1], argv[2]);
    let max = proto_max_bulk_len(ctx);
    let now = ctx.now;
    let lru = ctx.lru();
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let total = match s.get(key, now) {
        None => {
            s.insert(Entry::new_str(key, val, None, lru));
            val.len()
        }
        Some(e) => {
            let cur = e.as_str().ok_or(CmdError::WrongType)?;
            check_len(cur.len() as u64, val.len() as u64, max)?;
            e.touch(lru);
            let v = e.str_mut().ok_or(CmdError::WrongType)?;
            v.extend_from_slice(val);
            v.len()
        }
    };
    ctx.changed(STRING, "append", key);
    drop(s);
    ctx.out.int(total as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let n = ctx.read_key(argv[1], |_, e| {
        e.map_or(Ok(0), |e| {
            e.as_str().map(<[u8]>::len).ok_or(CmdError::WrongType)
        })
    })?;
    ctx.out.int(n as i64);
    Ok(())
}

/// GETRANGE's index arithmetic: the byte range of a `len`-byte string that
/// `start..=end` selects, or `None` for an empty reply.
fn range_of(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize + 1))
}

fn getrange(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let start = int_arg(argv[2])?;
    let end = int_arg(argv[3])?;
    ctx.read_key(argv[1], |out, e| {
        let Some(e) = e else {
            out.bulk(b"");
            return Ok(());
        };
        let v = e.as_str().ok_or(CmdError::WrongType)?;
        match range_of(start, end, v.len()).and_then(|(a, b)| v.get(a..b)) {
            Some(part) => out.bulk(part),
            None => out.bulk(b""),
        }
        Ok(())
    })
}

fn setrange(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (key, val) = (argv[1], argv[3]);
    let offset = int_arg(argv[2])?;
    if offset < 0 {
        return Err(CmdError::Static(errors::OFFSET_OUT_OF_RANGE));
    }
    let offset = offset as u64;
    let max = proto_max_bulk_len(ctx);
    let now = ctx.now;
    let lru = ctx.lru();
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let total = match s.get(key, now) {
        None => {
            if val.is_empty() {
                0
            } else {
                check_len(offset, val.len() as u64, max)?;
                let off = offset as usize;
                let mut v = vec![0u8; off + val.len()];
                v[off..].copy_from_slice(val);
                let n = v.len();
                s.insert(Entry::new_obj(key, Object::Str(v), None, lru));
                n
            }
        }
        Some(e) => {
            let olen = e.as_str().ok_or(CmdError::WrongType)?.len();
            if val.is_empty() {
                olen
            } else {
                check_len(offset, val.len() as u64, max)?;
                e.touch(lru);
                let off = offset as usize;
                let end = off + val.len();
                let v = e.str_mut().ok_or(CmdError::WrongType)?;
                if v.len() < end {
                    v.resize(end, 0);
                }
                if let Some(dst) = v.get_mut(off..end) {
                    dst.copy_from_slice(val);
                }
                v.len()
            }
        }
    };
    if !val.is_empty() {
        ctx.changed(STRING, "setrange", key);
    }
    drop(s);
    ctx.out.int(total as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// LCS
// ---------------------------------------------------------------------------

/// One match range of `LCS ... IDX`: `(a_start, a_end, b_start, b_end, len)`.
type LcsMatch = (u32, u32, u32, u32, u32);

/// The result of [`lcs_compute`].
#[derive(Debug, Default, PartialEq, Eq)]
struct LcsResult {
    /// Length of the longest common subsequence.
    len: u32,
    /// The subsequence itself (only when asked for).
    text: Vec<u8>,
    /// Match ranges, last ones first (only when asked for).
    matches: Vec<LcsMatch>,
}

/// Why LCS refused to run.
#[derive(Debug, PartialEq, Eq)]
enum LcsError {
    TooLong,
    ExceedsLimit,
    Alloc,
}

/// Redis' LCS: the DP table, then a walk back from the end collecting the
/// subsequence and the contiguous ranges (ranges shorter than `minmatchlen`
/// are skipped when `minmatchlen > 0`).
fn lcs_compute(
    a: &[u8],
    b: &[u8],
    want_text: bool,
    want_idx: bool,
    minmatchlen: u64,
    max_alloc: u64,
) -> Result<LcsResult, LcsError> {
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return Err(LcsError::TooLong);
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    let bytes = cells.checked_mul(4).ok_or(LcsError::Alloc)?;
    if bytes > max_alloc {
        return Err(LcsError::ExceedsLimit);
    }
    let w = blen + 1;
    if !want_text && !want_idx {
        // Only the length: two rows give the same answer as the full table.
        let mut prev: Vec<u32> = Vec::new();
        let mut cur: Vec<u32> = Vec::new();
        prev.try_reserve_exact(w).map_err(|_| LcsError::Alloc)?;
        cur.try_reserve_exact(w).map_err(|_| LcsError::Alloc)?;
        prev.resize(w, 0);
        cur.resize(w, 0);
        for &ca in a {
            for (j, &cb) in b.iter().enumerate() {
                cur[j + 1] = if ca == cb {
                    prev[j] + 1
                } else {
                    prev[j + 1].max(cur[j])
                };
            }
            std::mem::swap(&mut prev, &mut cur);
        }
        return Ok(LcsResult {
            len: prev[blen],
            ..LcsResult::default()
        });
    }
    let mut t: Vec<u32> = Vec::new();
    t.try_reserve_exact(cells as usize)
        .map_err(|_| LcsError::Alloc)?;
    t.resize(cells as usize, 0);
    for i in 1..=alen {
        let ca = a[i - 1];
        let (before, row) = t.split_at_mut(i * w);
        let up = &before[(i - 1) * w..];
        let row = &mut row[..w];
        for j in 1..=blen {
            row[j] = if ca == b[j - 1] {
                up[j - 1] + 1
            } else {
                up[j].max(row[j - 1])
            };
        }
    }
    let at = |i: usize, j: usize| t[i * w + j];
    let total = at(alen, blen);
    let mut text = vec![0u8; if want_text { total as usize } else { 0 }];
    let mut matches = Vec::new();
    let mut idx = total as usize;
    let (mut i, mut j) = (alen, blen);
    // `a_start == alen` means "no range open".
    let unset = alen;
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (unset, 0usize, 0usize, 0usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            if want_text {
                text[idx - 1] = a[i - 1];
            }
            if a_start == unset {
                a_start = i - 1;
                a_end = i - 1;
                b_start = j - 1;
                b_end = j - 1;
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != unset {
                emit = true;
            }
        }
        if emit {
            let mlen = (a_end as u64).wrapping_sub(a_start as u64).wrapping_add(1) as u32;
            if want_idx && (minmatchlen == 0 || mlen as u64 >= minmatchlen) {
                matches.push((
                    a_start as u32,
                    a_end as u32,
                    b_start as u32,
                    b_end as u32,
                    mlen,
                ));
            }
            a_start = unset;
        }
    }
    Ok(LcsResult {
        len: total,
        text,
        matches,
    })
}

fn lcs(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (ka, kb) = (argv[1], argv[2]);
    let now = ctx.now;
    let lru = ctx.lru();
    let max = proto_max_bulk_len(ctx);
    // Copy both values out so the (possibly long) computation runs unlocked.
    let (a, b) = {
        let mut m = ctx.ks().lock_keys(ctx.db(), [ka, kb]);
        let mut fetch = |k: &[u8]| -> Result<Vec<u8>, ()> {
            match m.get(k, now) {
                None => {
                    ctx.hit(false);
                    Ok(Vec::new())
                }
                Some(e) => {
                    ctx.hit(true);
                    e.touch(lru);
                    e.as_str().map(|v| v.to_vec()).ok_or(())
                }
            }
        };
        let a = fetch(ka);
        let b = fetch(kb);
        match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(CmdError::Static(errors::LCS_NOT_STRINGS)),
        }
    };
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < argv.len() {
        let opt = argv[j];
        let more = argv.len() - 1 - j;
        if copt(opt, "IDX") {
            getidx = true;
        } else if copt(opt, "LEN") {
            getlen = true;
        } else if copt(opt, "WITHMATCHLEN") {
            withmatchlen = true;
        } else if copt(opt, "MINMATCHLEN") && more > 0 {
            minmatchlen = int_arg(argv[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if getidx && getlen {
        return Err(CmdError::Static(errors::LCS_IDX_AND_LEN));
    }
    let want_text = !getidx && !getlen;
    let r = lcs_compute(&a, &b, want_text, getidx, minmatchlen as u64, max).map_err(|e| {
        CmdError::Static(match e {
            LcsError::TooLong => errors::LCS_TOO_LONG,
            LcsError::ExceedsLimit => errors::LCS_EXCEEDS_LIMIT,
            LcsError::Alloc => errors::LCS_ALLOC_FAILED,
        })
    })?;
    let out = &mut *ctx.out;
    if getidx {
        out.map(2);
        out.bulk(b"matches");
        out.array(r.matches.len());
        for &(a0, a1, b0, b1, mlen) in &r.matches {
            out.array(if withmatchlen { 3 } else { 2 });
            out.array(2);
            out.int(a0 as i64);
            out.int(a1 as i64);
            out.array(2);
            out.int(b0 as i64);
            out.int(b1 as i64);
            if withmatchlen {
                out.int(mlen as i64);
            }
        }
        out.bulk(b"len");
        out.int(r.len as i64);
    } else if getlen {
        out.int(r.len as i64);
    } else {
        out.bulk(&r.text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|x| x.as_bytes().to_vec()).collect()
    }

    fn parse(s: &str, is_set: bool) -> Result<ExtOpts<'static>, CmdError> {
        let v: &'static Vec<Vec<u8>> = Box::leak(Box::new(args(s)));
        let a: &'static Vec<&'static [u8]> =
            Box::leak(Box::new(v.iter().map(|x| x.as_slice()).collect()));
        parse_ext(a, is_set)
    }

    #[test]
    fn set_options() {
        let o = parse("SET k v nx get EX 10 ex 20", true).unwrap();
        assert!(o.nx && o.get && !o.xx);
        assert_eq!(o.exp, Some((ExpKind::Ex, &b"20"[..])));
        assert_eq!(parse("SET k v NX XX", true), Err(CmdError::Syntax));
        assert_eq!(parse("SET k v XX NX", true), Err(CmdError::Syntax));
        assert_eq!(parse("SET k v EX 1 PX 2", true), Err(CmdError::Syntax));
        assert_eq!(parse("SET k v KEEPTTL EX 1", true), Err(CmdError::Syntax));
        assert_eq!(parse("SET k v PXAT 1 KEEPTTL", true), Err(CmdError::Syntax));
        assert_eq!(parse("SET k v EX", true), Err(CmdError::Syntax));
        assert_eq!(parse("SET k v PERSIST", true), Err(CmdError::Syntax));
        assert!(
            parse("SET k v KEEPTTL keepttl xx xx", true)
                .unwrap()
                .keepttl
        );
        assert_eq!(
            parse("SET k v pxat 5", true).unwrap().exp,
            Some((ExpKind::PxAt, &b"5"[..]))
        );
        // C-string comparison: "nx\0junk" is NX.
        let a: Vec<&[u8]> = vec![b"SET", b"k", b"v", b"nx\0junk"];
        assert!(parse_ext(&a, true).unwrap().nx);
        let a: Vec<&[u8]> = vec![b"SET", b"k", b"v", b""];
        assert_eq!(parse_ext(&a, true), Err(CmdError::Syntax));
    }

    #[test]
    fn getex_options() {
        assert!(parse("GETEX k PERSIST persist", false).unwrap().persist);
        assert_eq!(parse("GETEX k PERSIST EX 1", false), Err(CmdError::Syntax));
        assert_eq!(parse("GETEX k EX 1 PERSIST", false), Err(CmdError::Syntax));
        assert_eq!(parse("GETEX k NX", false), Err(CmdError::Syntax));
        assert_eq!(parse("GETEX k KEEPTTL", false), Err(CmdError::Syntax));
        assert_eq!(parse("GETEX k GET", false), Err(CmdError::Syntax));
        assert_eq!(
            parse("GETEX k EXAT 7", false).unwrap().exp,
            Some((ExpKind::ExAt, &b"7"[..]))
        );
    }

    #[test]
    fn expire_values() {
        let inv = Err(CmdError::InvalidExpire("set"));
        assert_eq!(expire_at(ExpKind::Ex, b"10", 1000, "set"), Ok(11_000));
        assert_eq!(expire_at(ExpKind::Px, b"10", 1000, "set"), Ok(1010));
        assert_eq!(expire_at(ExpKind::ExAt, b"10", 1000, "set"), Ok(10_000));
        assert_eq!(expire_at(ExpKind::PxAt, b"10", 1000, "set"), Ok(10));
        assert_eq!(expire_at(ExpKind::Ex, b"0", 1000, "set"), inv);
        assert_eq!(expire_at(ExpKind::PxAt, b"-1", 1000, "set"), inv);
        assert_eq!(
            expire_at(ExpKind::Ex, b"x", 1000, "set"),
            Err(CmdError::NotInteger)
        );
        assert_eq!(
            expire_at(ExpKind::Ex, b"9223372036854776", 1000, "set"),
            inv
        );
        assert_eq!(
            expire_at(ExpKind::ExAt, b"9223372036854775", 1000, "set"),
            Ok(9_223_372_036_854_775_000)
        );
        assert_eq!(
            expire_at(ExpKind::Px, b"9223372036854775807", 1, "set"),
            inv
        );
        assert_eq!(
            expire_at(ExpKind::PxAt, b"9223372036854775807", 1, "set"),
            Ok(i64::MAX as u64)
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(range_of(0, -1, 5), Some((0, 5)));
        assert_eq!(range_of(-3, -1, 5), Some((2, 5)));
        assert_eq!(range_of(-1, -3, 5), None);
        assert_eq!(range_of(3, 1, 5), None);
        assert_eq!(range_of(0, 100, 5), Some((0, 5)));
        assert_eq!(range_of(-100, 1, 5), Some((0, 2)));
        assert_eq!(range_of(5, 10, 5), None);
        assert_eq!(range_of(0, -1, 0), None);
        assert_eq!(range_of(i64::MIN, i64::MAX, 3), Some((0, 3)));
        assert_eq!(range_of(i64::MAX, i64::MIN, 3), None);
    }

    #[test]
    fn lcs_basic() {
        let r = lcs_compute(b"ohmytext", b"mynewtext", true, true, 0, u64::MAX).unwrap();
        assert_eq!(r.len, 6);
        assert_eq!(r.text, b"mytext");
        assert_eq!(r.matches, vec![(4, 7, 5, 8, 4), (2, 3, 0, 1, 2)]);
        let r = lcs_compute(b"ohmytext", b"mynewtext", false, true, 4, u64::MAX).unwrap();
        assert_eq!(r.matches, vec![(4, 7, 5, 8, 4)]);
        let r = lcs_compute(b"ohmytext", b"mynewtext", false, false, 0, u64::MAX).unwrap();
        assert_eq!(r.len, 6);
        assert_eq!(
            lcs_compute(b"", b"abc", true, false, 0, u64::MAX)
                .unwrap()
                .len,
            0
        );
        assert_eq!(
            lcs_compute(b"abc", b"abc", false, false, 0, 63),
            Err(LcsError::ExceedsLimit)
        );
        assert!(lcs_compute(b"abc", b"abc", false, false, 0, 64).is_ok());
    }

    #[test]
    fn lcs_len_matches_full_table() {
        let words: [&[u8]; 6] = [b"", b"a", b"abcbdab", b"bdcaba", b"xxxxyyyy", b"yxyxyxyx"];
        for a in words {
            for b in words {
                let full = lcs_compute(a, b, true, false, 0, u64::MAX).unwrap();
                let short = lcs_compute(a, b, false, false, 0, u64::MAX).unwrap();
                assert_eq!(full.len, short.len);
                assert_eq!(full.text.len() as u32, full.len);
            }
        }
    }

    #[test]
    fn string_length_limit() {
        assert!(check_len(10, 5, 15).is_ok());
        assert!(check_len(10, 6, 15).is_err());
        assert!(check_len(u64::MAX, 1, u64::MAX).is_err());
    }

    /// End-to-end through the execution gate with a controlled clock.
    mod e2e {
        use crate::db::KeyAccess;
        use crate::testkit::Harness as T;

        fn expire(t: &T, key: &str) -> Option<Option<u64>> {
            let db = t.srv.ks.db(0).unwrap();
            t.srv
                .ks
                .lock_key(db, key.as_bytes())
                .peek(key.as_bytes())
                .map(|e| e.expire())
        }

        #[test]
        fn ttl_rules() {
            let mut t = T::new();
            assert_eq!(t.run_at(1000, "SET k v EX 10"), "+OK\r\n");
            assert_eq!(expire(&t, "k"), Some(Some(11_000)));
            assert_eq!(t.run_at(1000, "SET k w KEEPTTL"), "+OK\r\n");
            assert_eq!(expire(&t, "k"), Some(Some(11_000)));
            assert_eq!(t.run_at(1000, "APPEND k x"), ":2\r\n");
            assert_eq!(t.run_at(1000, "SETRANGE k 3 y"), ":4\r\n");
            assert_eq!(expire(&t, "k"), Some(Some(11_000)));
            assert_eq!(t.run_at(1000, "GET k"), "$4\r\nwx\0y\r\n");
            // Alive up to and including its expiry ms (Redis: expired when now > when).
            assert_eq!(t.run_at(11_000, "STRLEN k"), ":4\r\n");
            assert_eq!(t.run_at(11_001, "GET k"), "$-1\r\n");
            assert_eq!(expire(&t, "k"), None);
            t.run_at(1000, "SET n 9 PX 500");
            assert_eq!(t.run_at(1000, "INCR n"), ":10\r\n");
            assert_eq!(t.run_at(1000, "INCRBYFLOAT n 0.5"), "$4\r\n10.5\r\n");
            assert_eq!(expire(&t, "n"), Some(Some(1500)));
            assert_eq!(t.run_at(1000, "GETSET n 1"), "$4\r\n10.5\r\n");
            assert_eq!(expire(&t, "n"), Some(None));
            t.run_at(1000, "SET n 1 PXAT 5000");
            t.run_at(1000, "MSET n 2");
            assert_eq!(expire(&t, "n"), Some(None));
            t.run_at(1000, "SET n 1 PXAT 5000");
            t.run_at(1000, "SET n 2");
            assert_eq!(expire(&t, "n"), Some(None));
            // Relative expiry overflowing with the current time.
            assert_eq!(
                t.run_at(2, "SET n 1 PX 9223372036854775806"),
                "-ERR invalid expire time in 'set' command\r\n"
            );
            assert_eq!(
                t.run_at(2, "SETEX n 0 v"),
                "-ERR invalid expire time in 'setex' command\r\n"
            );
            assert_eq!(
                t.run_at(2, "PSETEX n -1 v"),
                "-ERR invalid expire time in 'psetex' command\r\n"
            );
            assert_eq!(
                t.run_at(2, "GETEX n EX 0"),
                "-ERR invalid expire time in 'getex' command\r\n"
            );
        }

        #[test]
        fn getex_and_past_expiry() {
            let mut t = T::new();
            t.run_at(1000, "SET k v");
            assert_eq!(t.run_at(1000, "GETEX k PX 100"), "$1\r\nv\r\n");
            assert_eq!(expire(&t, "k"), Some(Some(1100)));
            assert_eq!(t.run_at(1000, "GETEX k PERSIST"), "$1\r\nv\r\n");
            assert_eq!(expire(&t, "k"), Some(None));
            assert_eq!(t.run_at(1000, "GETEX k PXAT 1000"), "$1\r\nv\r\n");
            assert_eq!(expire(&t, "k"), None);
            // SET with an absolute expiry in the past stores an expired key.
            assert_eq!(t.run_at(1000, "SET p v PXAT 999"), "+OK\r\n");
            assert_eq!(t.run_at(1000, "GET p"), "$-1\r\n");
        }

        #[test]
        fn hits_and_misses() {
            let mut t = T::new();
            t.run_at(0, "SET a 1");
            t.run_at(0, "GET a");
            t.run_at(0, "GET b");
            assert_eq!(t.hits_misses(), (1, 1));
            t.run_at(0, "MGET a b c");
            assert_eq!(t.hits_misses(), (2, 3));
            // Write lookups are not counted.
            t.run_at(0, "INCR a");
            t.run_at(0, "APPEND z x");
            t.run_at(0, "SET a 2 NX");
            assert_eq!(t.hits_misses(), (2, 3));
            t.run_at(0, "SET a 3 GET");
            t.run_at(0, "STRLEN q");
            t.run_at(0, "GETRANGE a 0 1");
            t.run_at(0, "LCS a q");
            assert_eq!(t.hits_misses(), (5, 5));
        }

        /// What each write propagates: Redis' rewrites, and nothing at all
        /// for a write that changed nothing.
        #[test]
        fn propagation_rewrites() {
            let mut t = T::new();
            t.capture();
            let at = |ms: u64| t.now + ms;
            let (in10s, in5s, in5ms) = (at(10_000), at(5000), at(5));
            t.run("SET k v EX 10");
            assert_eq!(
                t.propagated(),
                ["SELECT 0".to_string(), format!("SET k v PXAT {in10s}")]
            );
            t.run("SET k v2 NX");
            t.run("SET nokey v XX");
            t.run("SET k v3 NX GET");
            t.run("SET k v3 PX 100 NX");
            t.run("SET h v GET");
            assert_eq!(t.propagated(), ["SET h v"]);
            t.run("HSET hh f v");
            t.propagated();
            assert!(t.run("SET hh v GET").starts_with("-WRONGTYPE"));
            assert!(t.propagated().is_empty(), "errors change nothing");
            t.run("SET k w get XX KEEPTTL GET");
            assert_eq!(t.propagated(), ["SET k w XX KEEPTTL"]);
            t.run("SET k w GET EXAT 4102444800");
            t.run("SET k w XX PXAT 4102444800000");
            t.run("SET k w KEEPTTL");
            assert_eq!(
                t.propagated(),
                [
                    "SET k w PXAT 4102444800000",
                    "SET k w PXAT 4102444800000",
                    "SET k w KEEPTTL"
                ]
            );
            t.run("SETEX k 5 v");
            t.run("PSETEX k 5 v");
            t.run("SETNX k v");
            t.run("SETNX n v");
            assert_eq!(
                t.propagated(),
                [
                    format!("SET k v PXAT {in5s}"),
                    format!("SET k v PXAT {in5ms}"),
                    "SETNX n v".into()
                ]
            );
            t.run("GETSET k x");
            t.run("INCRBYFLOAT f 1.5");
            t.run("INCRBYFLOAT f 1e2");
            t.run("INCR k");
            t.run("INCRBYFLOAT k 1");
            t.run("INCRBY c 3");
            t.run("DECR c");
            assert_eq!(
                t.propagated(),
                [
                    "SET k x",
                    "SET f 1.5 KEEPTTL",
                    "SET f 101.5 KEEPTTL",
                    "INCRBY c 3",
                    "DECR c"
                ]
            );
            t.run("GETDEL k");
            t.run("GETDEL k");
            assert_eq!(t.propagated(), ["DEL k"]);
            t.run("GETEX f");
            t.run("GETEX f PERSIST");
            t.run("GETEX nokey EX 5");
            assert!(t.propagated().is_empty());
            t.run("GETEX f EX 10");
            t.run("GETEX f PERSIST");
            t.run("GETEX f PXAT 4102444800000");
            t.run("GETEX f EXAT 1");
            t.run("GETEX f EXAT 1");
            assert_eq!(
                t.propagated(),
                [
                    format!("PEXPIREAT f {in10s}"),
                    "PERSIST f".into(),
                    "PEXPIREAT f 4102444800000".into(),
                    "DEL f".into()
                ]
            );
            t.run("MSETNX a 1 n 2");
            t.run("MSETNX a 1 b 2");
            t.run("MSET a 3 b 4");
            t.run("SETRANGE a 0 \"\"");
            t.run("SETRANGE nokey 5 \"\"");
            t.run("SETRANGE a 1 x");
            t.run("APPEND a \"\"");
            assert_eq!(
                t.propagated(),
                [
                    "MSETNX a 1 b 2",
                    "MSET a 3 b 4",
                    "SETRANGE a 1 x",
                    "APPEND a "
                ]
            );
        }

        #[test]
        fn lazy_free_options_pick_unlink() {
            let mut t = T::new();
            t.run("CONFIG SET lazyfree-lazy-user-del yes");
            t.run("CONFIG SET lazyfree-lazy-expire yes");
            t.run("MSET a 1 b 2");
            t.capture();
            t.run("GETDEL a");
            t.run("GETEX b PXAT 1");
            assert_eq!(t.propagated(), ["SELECT 0", "UNLINK a", "UNLINK b"]);
        }

        #[test]
        fn dirty_counts_like_redis() {
            use std::sync::atomic::Ordering::Relaxed;
            let mut t = T::new();
            let dirty = |t: &mut T, line: &str| {
                let before = t.srv.dirty.load(Relaxed);
                t.run(line);
                t.srv.dirty.load(Relaxed) - before
            };
            assert_eq!(dirty(&mut t, "MSET a 1 b 2 c 3"), 3);
            assert_eq!(dirty(&mut t, "SET a 1 EX 10"), 1);
            assert_eq!(dirty(&mut t, "SET a 1 NX"), 0);
            assert_eq!(dirty(&mut t, "MSETNX a 1 z 2"), 0);
            assert_eq!(dirty(&mut t, "INCR b"), 1);
            assert_eq!(dirty(&mut t, "GETEX a"), 0);
        }

        #[test]
        fn counters_in_place_and_resized() {
            let mut t = T::new();
            assert_eq!(t.run_at(0, "INCRBY c 8"), ":8\r\n");
            assert_eq!(t.run_at(0, "INCR c"), ":9\r\n");
            assert_eq!(t.run_at(0, "INCR c"), ":10\r\n");
            assert_eq!(t.run_at(0, "DECRBY c 20"), ":-10\r\n");
            assert_eq!(t.run_at(0, "GET c"), "$3\r\n-10\r\n");
            assert_eq!(
                t.run_at(0, "DECRBY c -9223372036854775808"),
                "-ERR decrement would overflow\r\n"
            );
            t.run_at(0, "SET c 9223372036854775807");
            assert_eq!(
                t.run_at(0, "INCR c"),
                "-ERR increment or decrement would overflow\r\n"
            );
            t.run_at(0, "SET c 1");
            t.run_at(0, "APPEND c 2");
            assert_eq!(t.run_at(0, "INCR c"), ":13\r\n");
            assert_eq!(t.run_at(0, "MSETNX c 1 other 2"), ":0\r\n");
            assert_eq!(t.run_at(0, "GET other"), "$-1\r\n");
            assert_eq!(
                t.run_at(0, "MSET c 1 other"),
                "-ERR wrong number of arguments for 'mset' command\r\n"
            );
        }
    }
}
