//! Bitmap commands over string values, mirroring Redis 7.0.15 `bitops.c`:
//! SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO.
//!
//! Behaviour kept from Redis:
//! * Bit `n` is bit `7 - n % 8` of byte `n / 8` (most significant first).
//! * Offsets: `ERR bit offset is not an integer or out of range` for anything
//!   that is not a canonical integer, negative, or whose byte index reaches
//!   `proto-max-bulk-len`; BITFIELD also takes `#N` (N times the field width).
//! * Writes (SETBIT, BITFIELD SET/INCRBY) create the key or zero-pad the
//!   string up to the highest byte touched, even when no bit changes, and keep
//!   the TTL; BITOP replaces the destination (dropping its TTL) or deletes it
//!   when the result is empty.
//! * BITCOUNT/BITPOS look the key up (and reply 0 / the "infinite zeros"
//!   answer for a missing key) before they parse the range, so a missing key
//!   hides range syntax errors exactly like Redis.
//! * BITPOS with an explicit end does not treat the bits right of the range
//!   as zeros: looking for a clear bit in an all-ones range replies -1.
//! * BITFIELD parses every operation first (errors before any effect), then
//!   runs them in order; OVERFLOW applies to the operations after it, FAIL
//!   replies nil and skips the write.
//! * Keyspace hits/misses are counted for the read lookups (GETBIT, BITCOUNT,
//!   BITPOS, BITOP sources, read-only BITFIELD).
//! * Changes are reported as Redis reports them: SETBIT and BITFIELD signal
//!   `setbit` only when the key was created or grew or a stored bit changed
//!   (BITFIELD counts one change per such write), BITOP signals `set` on the
//!   destination, or `del` when an empty result deleted it.
//!
//! Counting uses `u64::count_ones` over 8-byte words; bit searches skip whole
//! words that cannot contain the wanted bit.

use protocol::command::CmdId;
use protocol::number::parse_i64;

use crate::cmd::util::{int_arg, is};
use crate::db::{Entry, KeyAccess, Object};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::{GENERIC, STRING};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Setbit => setbit,
        CmdId::Getbit => getbit,
        CmdId::Bitcount => bitcount,
        CmdId::Bitpos => bitpos,
        CmdId::Bitop => bitop,
        CmdId::Bitfield => bitfield,
        CmdId::BitfieldRo => bitfield_ro,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Bit primitives
// ---------------------------------------------------------------------------

/// Number of set bits in `p`.
pub fn popcount(p: &[u8]) -> u64 {
    let mut chunks = p.chunks_exact(8);
    let mut n = 0u64;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from_ne_bytes(w).count_ones() as u64;
    }
    for &b in chunks.remainder() {
        n += b.count_ones() as u64;
    }
    n
}

/// Set bits in the bit range `[sb, eb]` (inclusive, within `p`).
fn count_bit_range(p: &[u8], sb: u64, eb: u64) -> u64 {
    let (s, e) = ((sb >> 3) as usize, (eb >> 3) as usize);
    let Some(bytes) = p.get(s..=e) else { return 0 };
    let mut n = popcount(bytes);
    let head = bytes.first().copied().unwrap_or(0) & !(0xffu8 >> (sb & 7));
    let tail = bytes.last().copied().unwrap_or(0) & (0x7fu8 >> (eb & 7));
    n -= head.count_ones() as u64 + tail.count_ones() as u64;
    n
}

/// The first bit equal to `bit` in the bit range `[sb, eb]` of `p`
/// (inclusive; bits past the end of `p` are not searched).
pub fn find_bit(p: &[u8], sb: u64, eb: u64, bit: bool) -> Option<u64> {
    if sb > eb {
        return None;
    }
    let flip = if bit { 0u8 } else { 0xff };
    let (s, e) = ((sb >> 3) as usize, (eb >> 3) as usize);
    let mut i = s;
    while i <= e {
        let &b = p.get(i)?;
        // Whole 8-byte words strictly inside the range are skipped fast.
        if i != s
            && i + 8 <= e
            && let Some(c) = p.get(i..i + 8)
        {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            let w = u64::from_be_bytes(w) ^ if bit { 0 } else { u64::MAX };
            if w == 0 {
                i += 8;
                continue;
            }
            return Some(i as u64 * 8 + w.leading_zeros() as u64);
        }
        let mut m = 0xffu8;
        if i == s {
            m &= 0xffu8 >> (sb & 7);
        }
        if i == e {
            m &= !(0x7fu8 >> (eb & 7));
        }
        let t = (b ^ flip) & m;
        if t != 0 {
            return Some(i as u64 * 8 + t.leading_zeros() as u64);
        }
        i += 1;
    }
    None
}

#[inline]
fn get_bit(p: &[u8], off: u64) -> u64 {
    match p.get((off >> 3) as usize) {
        Some(&b) => ((b >> (7 - (off & 7))) & 1) as u64,
        None => 0,
    }
}

#[inline]
fn put_bit(p: &mut [u8], off: u64, v: u64) {
    if let Some(b) = p.get_mut((off >> 3) as usize) {
        let m = 0x80u8 >> (off & 7);
        if v & 1 != 0 {
            *b |= m;
        } else {
            *b &= !m;
        }
    }
}

/// Unsigned field of `bits` (1..=64) bits at bit `off`; bytes past the end
/// of `p` read as zero.
pub fn get_unsigned(p: &[u8], off: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for j in 0..bits as u64 {
        v = (v << 1) | get_bit(p, off + j);
    }
    v
}

/// Signed (two's complement) field of `bits` (1..=64) bits at bit `off`.
pub fn get_signed(p: &[u8], off: u64, bits: u32) -> i64 {
    let u = get_unsigned(p, off, bits);
    if bits >= 64 {
        return u as i64;
    }
    let shift = 64 - bits;
    ((u << shift) as i64) >> shift
}

/// Writes the low `bits` bits of `v` at bit `off`.
pub fn set_field(p: &mut [u8], off: u64, bits: u32, v: u64) {
    for j in 0..bits as u64 {
        put_bit(p, off + j, v >> (bits as u64 - 1 - j));
    }
}

/// BITFIELD overflow policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// `old + incr` for a field of `bits` bits. Returns the value to store and
/// whether it overflowed (with FAIL the caller must not store it).
pub fn field_add(old: i128, incr: i128, signed: bool, bits: u32, ow: Overflow) -> (i128, bool) {
    let (min, max) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    let r = old + incr;
    if r >= min && r <= max {
        return (r, false);
    }
    let v = match ow {
        Overflow::Sat => {
            if r > max {
                max
            } else {
                min
            }
        }
        Overflow::Wrap | Overflow::Fail => {
            let low = (r as u128 as u64)
                & if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
            if signed && bits < 64 && low >> (bits - 1) & 1 == 1 {
                low as i128 - (1i128 << bits)
            } else if signed {
                low as i64 as i128
            } else {
                low as i128
            }
        }
    };
    (v, true)
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Redis' bit offset argument: `#N` (when `bits > 0`) means `N * bits`.
fn bit_offset(ctx: &Ctx, a: &[u8], bits: u32) -> Result<u64, CmdError> {
    let err = CmdError::Static(errors::BIT_OFFSET_INVALID);
    let (hash, digits) = match a.split_first() {
        Some((b'#', rest)) if bits > 0 => (true, rest),
        _ => (false, a),
    };
    let mut v = parse_i64(digits).ok_or(err.clone())?;
    if hash {
        v = v.wrapping_mul(bits as i64);
    }
    if v < 0 || (v as u64 >> 3) >= ctx.srv.config().proto_max_bulk_len {
        return Err(err);
    }
    Ok(v as u64)
}

/// Looks a string up for writing, creating it or zero-padding it so byte
/// `byte` exists (Redis' `lookupStringForBitCommand`). The flag says whether
/// the key was created or grew (a change even if no bit is then written).
fn string_for_write<'s>(
    s: &'s mut impl KeyAccess,
    key: &[u8],
    byte: u64,
    now: u64,
    lru: u32,
) -> Result<(&'s mut Vec<u8>, bool), CmdError> {
    let need = byte as usize + 1;
    let mut dirty = false;
    if s.get(key, now).is_none() {
        s.insert(Entry::new_obj(key, Object::Str(vec![0u8; need]), None, lru));
        dirty = true;
    }
    let e = s.get(key, now).ok_or(CmdError::WrongType)?;
    e.as_str().ok_or(CmdError::WrongType)?;
    e.touch(lru);
    let v = e.str_mut().ok_or(CmdError::WrongType)?;
    if v.len() < need {
        v.resize(need, 0);
        dirty = true;
    }
    Ok((v, dirty))
}

// ---------------------------------------------------------------------------
// SETBIT / GETBIT
// ---------------------------------------------------------------------------

fn setbit(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let off = bit_offset(ctx, argv[2], 0)?;
    let on = match parse_i64(argv[3]) {
        Some(v @ (0 | 1)) => v as u64,
        _ => return Err(CmdError::Static(errors::BIT_VALUE_INVALID)),
    };
    let (now, lru) = (ctx.now, ctx.lru());
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let (v, dirty) = string_for_write(&mut s, key, off >> 3, now, lru)?;
    let old = get_bit(v, off);
    put_bit(v, off, on);
    if dirty || old != on {
        ctx.changed(STRING, "setbit", key);
    }
    drop(s);
    ctx.out.int(old as i64);
    Ok(())
}

fn getbit(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let off = bit_offset(ctx, argv[2], 0)?;
    let bit = ctx.read_key(key, |_, e| match e {
        None => Ok(0),
        Some(e) => Ok(get_bit(e.as_str().ok_or(CmdError::WrongType)?, off)),
    })?;
    ctx.out.int(bit as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// BITCOUNT / BITPOS
// ---------------------------------------------------------------------------

/// Parses `BYTE|BIT`: true for BIT.
fn unit_arg(a: &[u8]) -> Result<bool, CmdError> {
    if is(a, "bit") {
        Ok(true)
    } else if is(a, "byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Normalizes a `start..end` range over `total` units (Redis' negative index
/// rules); `None` when empty.
fn norm_range(mut start: i64, mut end: i64, total: i64) -> Option<(u64, u64)> {
    if start < 0 {
        start = start.saturating_add(total);
    }
    if end < 0 {
        end = end.saturating_add(total);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        None
    } else {
        Some((start as u64, end as u64))
    }
}

fn bitcount(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let n = ctx.read_key(argv[1], |_, e| count_bits(e, argv))?;
    ctx.out.int(n as i64);
    Ok(())
}

/// BITCOUNT's count for the string `e` (0 when missing).
fn count_bits(e: Option<&crate::db::Entry>, argv: &[&[u8]]) -> Result<u64, CmdError> {
    let Some(e) = e else { return Ok(0) };
    let p = e.as_str().ok_or(CmdError::WrongType)?;
    let len = p.len() as i64;
    let n = match argv.len() {
        2 => popcount(p),
        4 | 5 => {
            let start = int_arg(argv[2])?;
            let end = int_arg(argv[3])?;
            if start < 0 && end < 0 && start > end {
                0
            } else {
                let isbit = match argv.get(4) {
                    Some(a) => unit_arg(a)?,
                    None => false,
                };
                let total = if isbit { len * 8 } else { len };
                match norm_range(start, end, total) {
                    None => 0,
                    Some((s0, e0)) if isbit => count_bit_range(p, s0, e0),
                    Some((s0, e0)) => p.get(s0 as usize..=e0 as usize).map_or(0, popcount),
                }
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    Ok(n)
}

fn bitpos(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let bit = match int_arg(argv[2])? {
        0 => false,
        1 => true,
        _ => return Err(CmdError::Static(errors::BITPOS_BIT_ARG)),
    };
    let pos = ctx.read_key(key, |_, e| match e {
        None => Ok(if bit { -1 } else { 0 }),
        Some(e) => find_first_bit(e, argv, bit),
    })?;
    ctx.out.int(pos);
    Ok(())
}

/// BITPOS's answer for the existing string `e`.
fn find_first_bit(e: &crate::db::Entry, argv: &[&[u8]], bit: bool) -> Result<i64, CmdError> {
    let p = e.as_str().ok_or(CmdError::WrongType)?;
    let len = p.len() as i64;
    let (range, end_given) = match argv.len() {
        3 => (
            norm_range(0, len - 1, len).map(|(a, b)| (a * 8, b * 8 + 7)),
            false,
        ),
        4..=6 => {
            let start = int_arg(argv[3])?;
            let isbit = match argv.get(5) {
                Some(a) => unit_arg(a)?,
                None => false,
            };
            let total = if isbit { len * 8 } else { len };
            let (end, given) = match argv.get(4) {
                Some(a) => (int_arg(a)?, true),
                None => (total - 1, false),
            };
            let r = norm_range(start, end, total);
            (
                if isbit {
                    r
                } else {
                    r.map(|(a, b)| (a * 8, b * 8 + 7))
                },
                given,
            )
        }
        _ => return Err(CmdError::Syntax),
    };
    let pos = match range {
        None => -1,
        Some((sb, eb)) => match find_bit(p, sb, eb, bit) {
            Some(x) => x as i64,
            None if bit || end_given => -1,
            None => eb as i64 + 1,
        },
    };
    Ok(pos)
}

// ---------------------------------------------------------------------------
// BITOP
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// Combines the sources (missing ones are empty strings) like Redis: the
/// result is as long as the longest source, shorter ones are zero-padded.
fn bitop_compute(op: BitOp, srcs: &[&[u8]]) -> Vec<u8> {
    let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
    let first = srcs.first().copied().unwrap_or(&[]);
    let mut out = vec![0u8; maxlen];
    out[..first.len()].copy_from_slice(first);
    if op == BitOp::Not {
        out.iter_mut().for_each(|b| *b = !*b);
        return out;
    }
    for src in srcs.iter().skip(1) {
        let (head, rest) = out.split_at_mut(src.len());
        match op {
            BitOp::And => {
                head.iter_mut().zip(src.iter()).for_each(|(o, s)| *o &= s);
                rest.iter_mut().for_each(|o| *o = 0);
            }
            BitOp::Or => head.iter_mut().zip(src.iter()).for_each(|(o, s)| *o |= s),
            BitOp::Xor => head.iter_mut().zip(src.iter()).for_each(|(o, s)| *o ^= s),
            BitOp::Not => {}
        }
    }
    out
}

fn bitop(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let op = match argv[1] {
        a if is(a, "and") => BitOp::And,
        a if is(a, "or") => BitOp::Or,
        a if is(a, "xor") => BitOp::Xor,
        a if is(a, "not") => BitOp::Not,
        _ => return Err(CmdError::Syntax),
    };
    if op == BitOp::Not && argv.len() != 4 {
        return Err(CmdError::Static(errors::BITOP_NOT_SINGLE));
    }
    let dest = argv[2];
    let (now, lru) = (ctx.now, ctx.lru());
    let mut s = ctx.ks().lock_keys(ctx.db(), argv[2..].iter().copied());
    let mut vals: Vec<Vec<u8>> = Vec::with_capacity(argv.len() - 3);
    for &k in &argv[3..] {
        match s.get(k, now) {
            None => {
                ctx.hit(false);
                vals.push(Vec::new());
            }
            Some(e) => {
                ctx.hit(true);
                e.touch(lru);
                vals.push(e.as_str().ok_or(CmdError::WrongType)?.to_vec());
            }
        }
    }
    let refs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
    let res = bitop_compute(op, &refs);
    let n = res.len();
    // Expire a stale destination first (counts as expired, like Redis).
    let _ = s.get(dest, now);
    if n > 0 {
        let old = s.put(Entry::new_obj(dest, Object::Str(res), None, lru));
        ctx.changed(STRING, "set", dest);
        drop(s);
        drop(old);
    } else if let Some(old) = s.remove(dest) {
        ctx.changed(GENERIC, "del", dest);
        drop(s);
        drop(old);
    }
    ctx.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// BITFIELD / BITFIELD_RO
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set(i64),
    Incr(i64),
}

#[derive(Debug, Clone, Copy)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    off: u64,
    ow: Overflow,
}

/// `i1..i64` / `u1..u63`.
fn field_type(a: &[u8]) -> Result<(bool, u32), CmdError> {
    let err = CmdError::Static(errors::BITFIELD_TYPE);
    let (signed, rest) = match a.split_first() {
        Some((b'i', r)) => (true, r),
        Some((b'u', r)) => (false, r),
        _ => return Err(err),
    };
    // Redis reads the width as a C string (cut at a NUL byte).
    let rest = rest.split(|&b| b == 0).next().unwrap_or(&[]);
    match parse_i64(rest) {
        Some(b) if b >= 1 && ((signed && b <= 64) || (!signed && b <= 63)) => {
            Ok((signed, b as u32))
        }
        _ => Err(err),
    }
}

fn parse_fields(ctx: &Ctx, argv: &[&[u8]]) -> Result<Vec<Field>, CmdError> {
    let mut ops = Vec::new();
    let mut ow = Overflow::Wrap;
    let mut j = 2;
    while j < argv.len() {
        let rem = argv.len() - j - 1;
        let sub = argv[j];
        let op = if is(sub, "get") && rem >= 2 {
            FieldOp::Get
        } else if is(sub, "set") && rem >= 3 {
            FieldOp::Set(0)
        } else if is(sub, "incrby") && rem >= 3 {
            FieldOp::Incr(0)
        } else if is(sub, "overflow") && rem >= 1 {
            let t = argv[j + 1];
            ow = if is(t, "wrap") {
                Overflow::Wrap
            } else if is(t, "sat") {
                Overflow::Sat
            } else if is(t, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::Static(errors::BITFIELD_OVERFLOW_TYPE));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = field_type(argv[j + 1])?;
        let off = bit_offset(ctx, argv[j + 2], bits)?;
        let op = match op {
            FieldOp::Get => FieldOp::Get,
            FieldOp::Set(_) => FieldOp::Set(int_arg(argv[j + 3])?),
            FieldOp::Incr(_) => FieldOp::Incr(int_arg(argv[j + 3])?),
        };
        ops.push(Field {
            op,
            signed,
            bits,
            off,
            ow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(ops)
}

/// Runs one write operation: its reply and whether the stored field changed;
/// `None` = FAIL overflow (nil reply, no write).
fn run_write(v: &mut [u8], f: &Field) -> Option<(i64, bool)> {
    let old: i128 = if f.signed {
        get_signed(v, f.off, f.bits) as i128
    } else {
        get_unsigned(v, f.off, f.bits) as i128
    };
    let (newv, overflow, ret_new) = match f.op {
        FieldOp::Incr(i) => {
            let (n, o) = field_add(old, i as i128, f.signed, f.bits, f.ow);
            (n, o, true)
        }
        FieldOp::Set(x) => {
            // Unsigned fields see the argument as its 64-bit two's complement.
            let x = if f.signed {
                x as i128
            } else {
                x as u64 as i128
            };
            let (n, o) = field_add(x, 0, f.signed, f.bits, f.ow);
            (n, o, false)
        }
        FieldOp::Get => return Some((old as i64, false)),
    };
    if overflow && f.ow == Overflow::Fail {
        return None;
    }
    set_field(v, f.off, f.bits, newv as u64);
    let reply = if ret_new { newv as i64 } else { old as i64 };
    Some((reply, newv != old))
}

fn field_get(p: &[u8], f: &Field) -> i64 {
    if f.signed {
        get_signed(p, f.off, f.bits)
    } else {
        get_unsigned(p, f.off, f.bits) as i64
    }
}

fn bitfield_generic(ctx: &mut Ctx, argv: &[&[u8]], ro: bool) -> CmdResult {
    let key = argv[1];
    let ops = parse_fields(ctx, argv)?;
    let highest = ops
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.off + f.bits as u64 - 1)
        .max();
    let (now, lru) = (ctx.now, ctx.lru());
    let mut replies: Vec<Option<i64>> = Vec::with_capacity(ops.len());
    match highest {
        None => ctx.read_key(key, |_, e| {
            let p: &[u8] = match e {
                None => &[],
                Some(e) => e.as_str().ok_or(CmdError::WrongType)?,
            };
            replies.extend(ops.iter().map(|f| Some(field_get(p, f))));
            Ok::<(), CmdError>(())
        })?,
        Some(_) if ro => return Err(CmdError::Static(errors::BITFIELD_RO_GET_ONLY)),
        Some(h) => {
            let mut s = ctx.ks().lock_key(ctx.db(), key);
            let (v, dirty) = string_for_write(&mut s, key, h >> 3, now, lru)?;
            // Redis counts a write that was carried out as a change when the
            // key was created or grew, else when the field's value changed.
            let mut changes = 0u64;
            for f in &ops {
                replies.push(if f.op == FieldOp::Get {
                    Some(field_get(v, f))
                } else {
                    run_write(v, f).map(|(r, changed)| {
                        changes += (dirty || changed) as u64;
                        r
                    })
                });
            }
            if changes > 0 {
                ctx.changed(STRING, "setbit", key);
                ctx.dirty(changes - 1);
            }
        }
    }
    ctx.out.array(replies.len());
    for r in replies {
        match r {
            Some(x) => ctx.out.int(x),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn bitfield(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, argv, false)
}

fn bitfield_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, argv, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popcount_matches_naive() {
        let data: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 1000] {
            let naive: u64 = data[..len].iter().map(|b| b.count_ones() as u64).sum();
            assert_eq!(popcount(&data[..len]), naive);
        }
    }

    #[test]
    fn bit_ranges() {
        let p = [0xffu8, 0xf0, 0x00];
        assert_eq!(count_bit_range(&p, 0, 23), 12);
        assert_eq!(count_bit_range(&p, 5, 10), 6);
        assert_eq!(count_bit_range(&p, 12, 23), 0);
        assert_eq!(find_bit(&p, 0, 23, false), Some(12));
        assert_eq!(find_bit(&p, 0, 23, true), Some(0));
        assert_eq!(find_bit(&p, 13, 23, true), None);
        assert_eq!(find_bit(&p, 3, 5, false), None);
        let mut big = vec![0u8; 100];
        big[77] = 0x04;
        assert_eq!(find_bit(&big, 3, 799, true), Some(77 * 8 + 5));
        let mut ones = vec![0xffu8; 100];
        ones[50] = 0xfe;
        assert_eq!(find_bit(&ones, 1, 799, false), Some(50 * 8 + 7));
        assert_eq!(find_bit(&ones, 1, 50 * 8 + 6, false), None);
    }

    #[test]
    fn fields() {
        let mut v = vec![0u8; 4];
        set_field(&mut v, 3, 5, 0b10110);
        assert_eq!(v[0], 0b0001_0110);
        assert_eq!(get_unsigned(&v, 3, 5), 22);
        assert_eq!(get_signed(&v, 3, 5), -10);
        set_field(&mut v, 0, 32, 0xdead_beef);
        assert_eq!(get_unsigned(&v, 0, 32), 0xdead_beef);
        assert_eq!(get_unsigned(&v, 28, 8), 0xf0);
        let mut w = vec![0u8; 9];
        set_field(&mut w, 4, 64, u64::MAX - 1);
        assert_eq!(get_signed(&w, 4, 64), -2);
    }

    #[test]
    fn overflow_policies() {
        use Overflow::*;
        assert_eq!(field_add(127, 1, true, 8, Wrap), (-128, true));
        assert_eq!(field_add(127, 1, true, 8, Sat), (127, true));
        assert_eq!(field_add(-128, -1, true, 8, Sat), (-128, true));
        assert_eq!(field_add(-128, -1, true, 8, Wrap), (127, true));
        assert_eq!(field_add(100, 1, true, 8, Fail), (101, false));
        assert_eq!(field_add(255, 1, false, 8, Wrap), (0, true));
        assert_eq!(field_add(0, -1, false, 8, Sat), (0, true));
        assert_eq!(field_add(0, -1, false, 8, Wrap), (255, true));
        assert_eq!(
            field_add(i64::MAX as i128, 1, true, 64, Wrap),
            (i64::MIN as i128, true)
        );
        assert_eq!(
            field_add(i64::MAX as i128, 1, true, 64, Sat),
            (i64::MAX as i128, true)
        );
        // Unsigned SET of -1 is 2^64-1: saturates to the maximum.
        assert_eq!(field_add(u64::MAX as i128, 0, false, 8, Sat), (255, true));
        assert_eq!(
            field_add(u64::MAX as i128, 0, false, 63, Wrap),
            ((1i128 << 63) - 1, true)
        );
        assert_eq!(field_add(0, 0, true, 1, Wrap), (0, false));
        assert_eq!(field_add(0, 1, true, 1, Wrap), (-1, true));
    }

    /// Writes that leave the value as it was (same bit, same field, FAIL
    /// overflow, GET only, empty result on a missing key) propagate nothing.
    #[test]
    fn no_op_writes_are_not_propagated() {
        use crate::testkit::Harness;
        let mut t = Harness::new();
        t.capture();
        t.run("SETBIT k 9 1");
        t.run("SETBIT k 9 1");
        t.run("SETBIT k 0 0");
        t.run("SETBIT k 23 0");
        assert_eq!(
            t.propagated(),
            ["SELECT 0", "SETBIT k 9 1", "SETBIT k 23 0"]
        );
        t.run("BITFIELD k GET u8 0");
        t.run("BITFIELD k SET u8 0 0");
        t.run("BITFIELD k OVERFLOW FAIL INCRBY u8 0 300");
        t.run("BITFIELD k INCRBY u8 0 0 SET u4 0 0");
        assert!(t.propagated().is_empty());
        t.run("BITFIELD k SET u8 0 1 GET u8 0");
        t.run("BITFIELD k SET u8 24 0");
        assert_eq!(
            t.propagated(),
            ["BITFIELD k SET u8 0 1 GET u8 0", "BITFIELD k SET u8 24 0"]
        );
        t.run("BITOP AND d nokey1 nokey2");
        assert!(t.propagated().is_empty());
        t.run("BITOP OR d k");
        t.run("BITOP AND d nokey1");
        t.run("BITOP AND d nokey1");
        assert_eq!(t.propagated(), ["BITOP OR d k", "BITOP AND d nokey1"]);
    }

    #[test]
    fn bitop_lengths() {
        assert_eq!(
            bitop_compute(BitOp::And, &[b"\xff\xff", b"\x0f"]),
            vec![0x0f, 0]
        );
        assert_eq!(
            bitop_compute(BitOp::Or, &[b"\x01", b"\x10\x20"]),
            vec![0x11, 0x20]
        );
        assert_eq!(
            bitop_compute(BitOp::Xor, &[b"\xff", b"\x0f", b""]),
            vec![0xf0]
        );
        assert_eq!(bitop_compute(BitOp::Not, &[b"\x0f"]), vec![0xf0]);
        assert!(bitop_compute(BitOp::And, &[b"", b""]).is_empty());
    }
}
