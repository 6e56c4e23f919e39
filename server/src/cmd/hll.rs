//! HyperLogLog commands, mirroring Redis 7.0.15 `hyperloglog.c`: PFADD,
//! PFCOUNT (one key, or the union of several) and PFMERGE.
//!
//! The value is an ordinary string in Redis' own byte layout, so `GET`,
//! `DUMP`/`RESTORE` and replication see exactly the bytes redis would store
//! after the same commands:
//!
//! ```text
//! "HYLL" | encoding u8 (0 dense, 1 sparse) | 3 unused bytes |
//! cached cardinality u64 little endian (bit 63 set = cache invalid) | registers
//! ```
//!
//! * 2^14 registers, element hash = MurmurHash64A(seed 0xadc83b19): the low 14
//!   bits choose the register, the register value is the position of the first
//!   set bit of the remaining 50 bits (1-based, at most 51).
//! * Dense: 6-bit registers packed least significant bit first (12288 bytes).
//! * Sparse: run-length opcodes — `00xxxxxx` ZERO (1..64 zero registers),
//!   `01xxxxxx yyyyyyyy` XZERO (1..16384 zero registers), `1vvvvvxx` VAL
//!   (value 1..32 repeated 1..4 times). A new key is one XZERO. Updating a
//!   register splits the opcode covering it into at most three, then merges
//!   equal adjacent VALs in the five opcodes from the one before — the same
//!   steps Redis takes, so the byte sequences are identical. A value above 32,
//!   or growth past `hll-sparse-max-bytes`, converts the key to dense.
//! * The cardinality estimate is Ertl's improved estimator ("New cardinality
//!   estimation algorithms for HyperLogLog sketches", 2017) over the register
//!   histogram. PFCOUNT of a single key caches it in the header; PFADD (when a
//!   register changes) and PFMERGE invalidate the cache.
//! * A non-string key is `WRONGTYPE`; a string that is not a HyperLogLog is
//!   `WRONGTYPE Key is not a valid HyperLogLog string value.`; a sparse
//!   encoding that does not cover exactly 2^14 registers is `INVALIDOBJ`.
//! * Changes as Redis reports them: PFADD signals `pfadd` when it created the
//!   key or changed a register (one change per such element, plus one for
//!   the creation), PFMERGE always signals `pfadd` on the destination, and a
//!   PFCOUNT that stores a recomputed cached cardinality counts as a change
//!   without any event (so the cache update is propagated, as `PFCOUNT key`).

use protocol::command::CmdId;

use crate::db::{Entry, KeyAccess, Object};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::STRING;
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Pfadd => pfadd,
        CmdId::Pfcount => pfcount,
        CmdId::Pfmerge => pfmerge,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Format constants and primitives
// ---------------------------------------------------------------------------

const P: u32 = 14;
pub const REGISTERS: usize = 1 << P;
/// Bits of the hash left after the register index.
const Q: usize = 64 - P as usize;
pub const HDR: usize = 16;
pub const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
const ENC_DENSE: u8 = 0;
const ENC_SPARSE: u8 = 1;
const SPARSE_VAL_MAX: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
const SEED: u64 = 0xadc8_3b19;
/// 1 / (2 ln 2): the estimator's limit constant.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The encoded HLL is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// MurmurHash64A (Austin Appleby), 8-byte words read little endian.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let mut k = u64::from_le_bytes(w);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Register index and value for an element.
pub fn pat_len(ele: &[u8]) -> (usize, u8) {
    let h = murmur64a(ele, SEED);
    let index = (h as usize) & (REGISTERS - 1);
    let rest = (h >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Dense register `i` (6 bits, packed LSB first).
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let b = i * 6 / 8;
    let fb = (i * 6 % 8) as u32;
    let b0 = regs.get(b).copied().unwrap_or(0) as u32;
    let b1 = regs.get(b + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

pub fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let b = i * 6 / 8;
    let fb = (i * 6 % 8) as u32;
    let v = val as u32 & 63;
    if let Some(x) = regs.get_mut(b) {
        *x = ((*x as u32 & !(63u32 << fb)) | (v << fb)) as u8;
    }
    if let Some(x) = regs.get_mut(b + 1) {
        *x = ((*x as u32 & !(63u32 >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

/// Sets register `i` to `val` if that is larger; true when it changed.
fn dense_set(regs: &mut [u8], i: usize, val: u8) -> bool {
    if val > dense_get(regs, i) {
        dense_put(regs, i, val);
        true
    } else {
        false
    }
}

/// A sparse opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Zero(usize),
    XZero(usize),
    Val(u8, usize),
}

impl Op {
    /// Decodes the opcode at `p` (a missing second XZERO byte reads as 0).
    fn at(s: &[u8], p: usize) -> Op {
        let b = s.get(p).copied().unwrap_or(0);
        if b & 0x80 != 0 {
            Op::Val(((b >> 2) & 0x1f) + 1, (b & 3) as usize + 1)
        } else if b & 0x40 != 0 {
            let lo = s.get(p + 1).copied().unwrap_or(0) as usize;
            Op::XZero((((b & 0x3f) as usize) << 8 | lo) + 1)
        } else {
            Op::Zero((b & 0x3f) as usize + 1)
        }
    }

    fn width(self) -> usize {
        if let Op::XZero(_) = self { 2 } else { 1 }
    }

    fn span(self) -> usize {
        match self {
            Op::Zero(n) | Op::XZero(n) | Op::Val(_, n) => n,
        }
    }

    fn push(self, out: &mut Vec<u8>) {
        match self {
            Op::Zero(n) => out.push((n - 1) as u8),
            Op::XZero(n) => {
                let l = n - 1;
                out.push((l >> 8) as u8 | 0x40);
                out.push((l & 0xff) as u8);
            }
            Op::Val(v, n) => out.push(val_byte(v, n)),
        }
    }

    /// A zero run of `n` registers, the short form when it fits.
    fn zeros(n: usize) -> Op {
        if n > SPARSE_ZERO_MAX_LEN {
            Op::XZero(n)
        } else {
            Op::Zero(n)
        }
    }
}

/// The VAL opcode byte for `n` (1..=4) registers of value `v` (1..=32).
fn val_byte(v: u8, n: usize) -> u8 {
    0x80 | ((v - 1) << 2) | (n - 1) as u8
}

/// A fresh, empty HLL: sparse, one XZERO run, cached cardinality 0.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.push(ENC_SPARSE);
    v.extend_from_slice(&[0u8; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(SPARSE_XZERO_MAX_LEN);
        Op::XZero(n).push(&mut v);
        left -= n;
    }
    v
}

/// Whether a string is a HyperLogLog (Redis' `isHLLObjectOrReply`).
pub fn is_hll(v: &[u8]) -> bool {
    v.len() >= HDR
        && &v[..4] == b"HYLL"
        && v[4] <= ENC_SPARSE
        && (v[4] != ENC_DENSE || v.len() == DENSE_SIZE)
}

fn invalidate(v: &mut [u8]) {
    if let Some(b) = v.get_mut(15) {
        *b |= 0x80;
    }
}

fn cached(v: &[u8]) -> Option<u64> {
    let c = v.get(8..16)?;
    if c[7] & 0x80 != 0 {
        return None;
    }
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    Some(u64::from_le_bytes(w))
}

fn set_cached(v: &mut [u8], card: u64) {
    if let Some(c) = v.get_mut(8..16) {
        c.copy_from_slice(&card.to_le_bytes());
    }
}

/// Converts a sparse HLL to dense in place (no-op when already dense).
pub fn sparse_to_dense(v: &mut Vec<u8>) -> Result<(), Corrupt> {
    if v.get(4) == Some(&ENC_DENSE) {
        return Ok(());
    }
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(v.get(..HDR).ok_or(Corrupt)?);
    d[4] = ENC_DENSE;
    let (mut p, mut idx) = (HDR, 0usize);
    while p < v.len() {
        let op = Op::at(v, p);
        match op {
            Op::Zero(n) | Op::XZero(n) => idx += n,
            Op::Val(val, n) => {
                if idx + n > REGISTERS {
                    break;
                }
                for i in idx..idx + n {
                    dense_put(&mut d[HDR..], i, val);
                }
                idx += n;
            }
        }
        p += op.width();
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    *v = d;
    Ok(())
}

/// Sets register `index` of a sparse HLL to `count` if larger. Returns
/// whether a register changed; may convert the HLL to dense.
fn sparse_set(v: &mut Vec<u8>, index: usize, count: u8, max_bytes: u64) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX {
        return promote(v, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let (mut p, mut first, mut prev) = (HDR, 0usize, None);
    let mut found = None;
    while p < v.len() {
        let op = Op::at(v, p);
        if index < first + op.span() {
            found = Some(op);
            break;
        }
        prev = Some(p);
        p += op.width();
        first += op.span();
    }
    let op = found.ok_or(Corrupt)?;
    let last = first + op.span() - 1;
    // Step 2: the trivial in-place cases.
    match op {
        Op::Val(old, _) if old >= count => return Ok(false),
        Op::Val(_, 1) | Op::Zero(1) => {
            v[p] = val_byte(count, 1);
        }
        _ => {
            // Step 3: split the opcode into up to three.
            let mut seq = Vec::with_capacity(5);
            match op {
                Op::Val(cur, _) => {
                    if index != first {
                        Op::Val(cur, index - first).push(&mut seq);
                    }
                    Op::Val(count, 1).push(&mut seq);
                    if index != last {
                        Op::Val(cur, last - index).push(&mut seq);
                    }
                }
                Op::Zero(_) | Op::XZero(_) => {
                    if index != first {
                        Op::zeros(index - first).push(&mut seq);
                    }
                    Op::Val(count, 1).push(&mut seq);
                    if index != last {
                        Op::zeros(last - index).push(&mut seq);
                    }
                }
            }
            let old = op.width();
            if seq.len() > old && (v.len() + seq.len() - old) as u64 > max_bytes {
                return promote(v, index, count);
            }
            v.splice(p..p + old, seq);
        }
    }
    // Step 4: merge adjacent equal VALs near the change.
    let mut q = prev.unwrap_or(HDR);
    let mut budget = 5;
    while q < v.len() && budget > 0 {
        budget -= 1;
        let op = Op::at(v, q);
        let Op::Val(v1, l1) = op else {
            q += op.width();
            continue;
        };
        if q + 1 < v.len()
            && let Op::Val(v2, l2) = Op::at(v, q + 1)
            && v1 == v2
            && l1 + l2 <= SPARSE_VAL_MAX_LEN
        {
            v[q + 1] = val_byte(v1, l1 + l2);
            v.remove(q);
            continue;
        }
        q += 1;
    }
    invalidate(v);
    Ok(true)
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    sparse_to_dense(v)?;
    Ok(dense_set(&mut v[HDR..], index, count))
}

/// Adds one element; true when a register changed.
pub fn add(v: &mut Vec<u8>, ele: &[u8], max_bytes: u64) -> Result<bool, Corrupt> {
    let (index, count) = pat_len(ele);
    set_register(v, index, count, max_bytes)
}

fn set_register(v: &mut Vec<u8>, index: usize, count: u8, max_bytes: u64) -> Result<bool, Corrupt> {
    match v.get(4) {
        Some(&ENC_DENSE) => Ok(dense_set(v.get_mut(HDR..).ok_or(Corrupt)?, index, count)),
        Some(&ENC_SPARSE) => sparse_set(v, index, count, max_bytes),
        _ => Err(Corrupt),
    }
}

/// Register-value histogram of an encoded HLL.
fn histogram(v: &[u8]) -> Result<[u32; 64], Corrupt> {
    let mut h = [0u32; 64];
    let regs = v.get(HDR..).ok_or(Corrupt)?;
    if v[4] == ENC_DENSE {
        for i in 0..REGISTERS {
            h[dense_get(regs, i) as usize] += 1;
        }
        return Ok(h);
    }
    let (mut p, mut idx) = (HDR, 0usize);
    while p < v.len() {
        let op = Op::at(v, p);
        match op {
            Op::Zero(n) | Op::XZero(n) => h[0] += n as u32,
            Op::Val(val, n) => h[val as usize] += n as u32,
        }
        idx += op.span();
        p += op.width();
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    Ok(h)
}

fn histogram_raw(regs: &[u8; REGISTERS]) -> [u32; 64] {
    let mut h = [0u32; 64];
    for &r in regs.iter() {
        h[(r & 63) as usize] += 1;
    }
    h
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0f64, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0f64, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// Ertl's cardinality estimate from a register histogram.
pub fn estimate(h: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - h[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += h[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// Folds an encoded HLL into raw 8-bit registers (max per register).
pub fn merge_into(max: &mut [u8; REGISTERS], v: &[u8]) -> Result<(), Corrupt> {
    let regs = v.get(HDR..).ok_or(Corrupt)?;
    if v[4] == ENC_DENSE {
        for (i, m) in max.iter_mut().enumerate() {
            let r = dense_get(regs, i);
            if r > *m {
                *m = r;
            }
        }
        return Ok(());
    }
    let (mut p, mut idx) = (HDR, 0usize);
    while p < v.len() {
        let op = Op::at(v, p);
        match op {
            Op::Zero(n) | Op::XZero(n) => idx += n,
            Op::Val(val, n) => {
                if idx + n > REGISTERS {
                    break;
                }
                for m in &mut max[idx..idx + n] {
                    if val > *m {
                        *m = val;
                    }
                }
                idx += n;
            }
        }
        p += op.width();
    }
    if idx != REGISTERS {
        Err(Corrupt)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// No notification class: [`Ctx::changed`] with it signals the key and
/// counts the change without publishing a keyspace event.
const NO_EVENT: u32 = 0;

fn corrupt(_: Corrupt) -> CmdError {
    CmdError::Static(errors::HLL_INVALID)
}

/// The string of an entry if it is a valid HLL (the two WRONGTYPE flavours).
fn hll_of(e: &Entry) -> Result<&[u8], CmdError> {
    let s = e.as_str().ok_or(CmdError::WrongType)?;
    if is_hll(s) {
        Ok(s)
    } else {
        Err(CmdError::Static(errors::HLL_WRONGTYPE))
    }
}

fn pfadd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let (now, lru) = (ctx.now, ctx.lru());
    let max_bytes = ctx.srv.config().hll_sparse_max_bytes;
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let mut updated = 0u64;
    match s.get(key, now) {
        None => {
            s.insert(Entry::new_obj(key, Object::Str(new_sparse()), None, lru));
            updated = 1;
        }
        Some(e) => {
            hll_of(e)?;
        }
    }
    let e = s.get(key, now).ok_or(CmdError::WrongType)?;
    e.touch(lru);
    let v = e.str_mut().ok_or(CmdError::WrongType)?;
    let mut result = Ok(());
    for ele in &argv[2..] {
        match add(v, ele, max_bytes) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(c) => {
                result = Err(corrupt(c));
                break;
            }
        }
    }
    // Like Redis, a corrupt value ends the command before any signal.
    if updated > 0 && result.is_ok() {
        invalidate(v);
        ctx.changed(STRING, "pfadd", key);
        ctx.dirty(updated - 1);
    }
    drop(s);
    result?;
    ctx.out.int((updated > 0) as i64);
    Ok(())
}

fn pfcount(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (now, lru) = (ctx.now, ctx.lru());
    if argv.len() > 2 {
        let mut s = ctx.ks().lock_keys(ctx.db(), argv[1..].iter().copied());
        let mut max = Box::new([0u8; REGISTERS]);
        for &k in &argv[1..] {
            let Some(e) = s.get(k, now) else {
                ctx.hit(false);
                continue;
            };
            ctx.hit(true);
            e.touch(lru);
            merge_into(&mut max, hll_of(e)?).map_err(corrupt)?;
        }
        drop(s);
        ctx.out.int(estimate(&histogram_raw(&max)) as i64);
        return Ok(());
    }
    let key = argv[1];
    let mut s = ctx.ks().lock_key(ctx.db(), key);
    let Some(e) = s.get(key, now) else {
        drop(s);
        ctx.hit(false);
        ctx.out.int(0);
        return Ok(());
    };
    ctx.hit(true);
    e.touch(lru);
    hll_of(e)?;
    // Like Redis, the value becomes a raw (modifiable) string either way.
    let v = e.str_mut().ok_or(CmdError::WrongType)?;
    let card = match cached(v) {
        Some(c) => c,
        None => {
            let c = estimate(&histogram(v).map_err(corrupt)?);
            set_cached(v, c);
            // The stored value changed: a change with no keyspace event
            // (no notification class), so replicas get the same cache.
            ctx.changed(NO_EVENT, "", key);
            c
        }
    };
    drop(s);
    ctx.out.int(card as i64);
    Ok(())
}

fn pfmerge(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let dest = argv[1];
    let (now, lru) = (ctx.now, ctx.lru());
    let max_bytes = ctx.srv.config().hll_sparse_max_bytes;
    let mut s = ctx.ks().lock_keys(ctx.db(), argv[1..].iter().copied());
    let mut max = Box::new([0u8; REGISTERS]);
    let mut use_dense = false;
    for &k in &argv[1..] {
        let Some(e) = s.get(k, now) else {
            ctx.hit(false);
            continue;
        };
        ctx.hit(true);
        e.touch(lru);
        let v = hll_of(e)?;
        use_dense |= v[4] == ENC_DENSE;
        merge_into(&mut max, v).map_err(corrupt)?;
    }
    if s.get(dest, now).is_none() {
        s.insert(Entry::new_obj(dest, Object::Str(new_sparse()), None, lru));
    }
    let e = s.get(dest, now).ok_or(CmdError::WrongType)?;
    let v = e.str_mut().ok_or(CmdError::WrongType)?;
    if use_dense {
        sparse_to_dense(v).map_err(corrupt)?;
    }
    for (i, &m) in max.iter().enumerate() {
        if m != 0 {
            // Like Redis, a malformed sparse destination is left as it is.
            let _ = set_register(v, i, m, max_bytes);
        }
    }
    invalidate(v);
    // Redis reports a merge as an add, whether or not a register changed.
    ctx.changed(STRING, "pfadd", dest);
    drop(s);
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PFADD propagates only when a register (or the key) changed, PFCOUNT
    /// when it stored a recomputed cache, PFMERGE always.
    #[test]
    fn propagation() {
        use crate::testkit::Harness;
        let mut t = Harness::new();
        t.capture();
        t.run("PFADD h a b");
        t.run("PFADD h a b");
        t.run("PFCOUNT h");
        t.run("PFCOUNT h");
        t.run("PFCOUNT h nokey");
        t.run("PFCOUNT nokey");
        t.run("PFADD h2");
        t.run("PFADD h2");
        t.run("PFMERGE h2 h");
        t.run("PFMERGE h2 h");
        assert_eq!(
            t.propagated(),
            [
                "SELECT 0",
                "PFADD h a b",
                "PFCOUNT h",
                "PFADD h2",
                "PFMERGE h2 h",
                "PFMERGE h2 h"
            ]
        );
    }

    #[test]
    fn murmur_and_pattern() {
        // Values cross-checked against redis 7.0.15 (PFADD h a; GET h).
        let (i, c) = pat_len(b"a");
        assert_eq!((i, c), (12711, 2));
        assert_eq!(murmur64a(b"", 0), 0);
    }

    #[test]
    fn sparse_bytes_match_redis() {
        let mut v = new_sparse();
        assert_eq!(
            v,
            b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff"
        );
        assert_eq!(add(&mut v, b"a", 3000), Ok(true));
        invalidate(&mut v);
        assert_eq!(
            v,
            b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x71\xa6\x84\x4e\x57"
        );
        assert_eq!(add(&mut v, b"a", 3000), Ok(false));
        let mut w = new_sparse();
        for e in [&b"a"[..], b"b", b"c", b"d", b"e", b"f", b"g"] {
            add(&mut w, e, 3000).unwrap();
        }
        assert_eq!(
            &w[HDR..],
            b"Fm\x80V\x0c\x80D<\x848\x80P\xb1\x84I\x8c\x80Bm\x80BZ"
        );
        assert_eq!(estimate(&histogram(&w).unwrap()), 7);
    }

    #[test]
    fn dense_registers_roundtrip() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR];
        for i in 0..REGISTERS {
            dense_put(&mut regs, i, (i % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&regs, i), (i % 64) as u8);
        }
    }

    #[test]
    fn promotion_and_estimate() {
        let mut v = new_sparse();
        let mut raw = Box::new([0u8; REGISTERS]);
        for i in 0..5000u32 {
            add(&mut v, format!("ele:{i}").as_bytes(), 3000).unwrap();
            assert!(v.len() <= 3000 || v[4] == ENC_DENSE);
        }
        assert_eq!(v[4], ENC_DENSE);
        assert_eq!(v.len(), DENSE_SIZE);
        merge_into(&mut raw, &v).unwrap();
        let e = estimate(&histogram(&v).unwrap());
        assert_eq!(e, estimate(&histogram_raw(&raw)));
        assert!((4800..5200).contains(&e), "{e}");
        // The sparse and dense encodings of the same registers agree.
        let mut s = new_sparse();
        for i in 0..300u32 {
            add(&mut s, format!("x{i}").as_bytes(), 100_000).unwrap();
        }
        let mut d = s.clone();
        sparse_to_dense(&mut d).unwrap();
        assert_eq!(histogram(&s), histogram(&d));
    }

    #[test]
    fn corrupt_sparse_detected() {
        let mut v = new_sparse();
        v.truncate(HDR + 1);
        v.push(0x00);
        assert!(is_hll(&v));
        assert_eq!(histogram(&v), Err(Corrupt));
        assert_eq!(sparse_to_dense(&mut v.clone()), Err(Corrupt));
        assert!(!is_hll(b"HYLL\x00short"));
    }
}
