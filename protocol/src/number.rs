//! Redis-exact number parsing and formatting.
//!
//! Owns the textual number rules every command shares, mirroring Redis 7.0:
//!
//! * [`parse_i64`]: `string2ll` (strict canonical decimal: no sign other than
//!   `-`, no leading zeros, no spaces, no `-0`, at most 20 bytes, no overflow).
//! * [`parse_f64`]: `string2d` (`strtod` accepting everything it accepts:
//!   `inf`/`infinity`, hex floats, `.5`, `5.`, exponents; rejecting empty input,
//!   a leading space, trailing garbage, NaN, and overflow/underflow to 0 or ∞).
//! * [`write_f64`]: the `%.17g` rendering of doubles (`addReplyDouble`,
//!   `d2string`), with `inf`, `-inf`, `nan` spelled explicitly.
//! * [`incrbyfloat`]: INCRBYFLOAT / HINCRBYFLOAT arithmetic, which Redis does in
//!   the C `long double` (`string2ld`, add, `%.17Lf`, trailing zeros trimmed).
//! * [`write_i64`]: plain decimal integers.
//!
//! `strtod`, `strtold` and `long double` arithmetic come from the C library via
//! `csrc/ldouble.c` (see the private `ffi` module) because neither Rust's float
//! parser nor any Rust type reproduces them bit for bit.

use std::fmt::Write as _;

/// Longest byte string `string2ll` looks at (its `LONG_STR_SIZE` is 21, and a
/// string of 21 bytes or more is rejected outright).
const MAX_I64_LEN: usize = 20;

/// Redis' `MAX_LONG_DOUBLE_CHARS`: `string2ld` rejects inputs this long or longer.
const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

/// Parses a signed 64-bit integer exactly as Redis' `string2ll`.
///
/// Accepts only the canonical decimal form: `0`, or an optional `-` followed by
/// a non-zero digit and more digits, fitting in `i64`. Rejects the empty string,
/// `+`, `-0`, leading zeros, any whitespace and anything of 21 bytes or more.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > MAX_I64_LEN {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        // `i64::MIN` has a magnitude one larger than `i64::MAX`.
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Appends the decimal form of `v` (what `ll2string` produces).
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Whether `s` is a plain decimal (`-?digits[.digits]` or `-?.digits`) short
/// enough that it can neither overflow nor underflow a double. For such input
/// Rust's correctly rounded parser and glibc's correctly rounded `strtod` agree,
/// so the C call can be skipped.
fn is_short_plain_decimal(s: &[u8]) -> bool {
    if s.len() > 40 {
        return false;
    }
    let body = match s.split_first() {
        Some((b'-', rest)) => rest,
        _ => s,
    };
    let mut digits = 0usize;
    let mut dots = 0usize;
    for &b in body {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    digits > 0 && dots <= 1
}

/// Parses a double the way Redis' `string2d` does (ZADD scores, GEO
/// coordinates, every "is not a valid float" argument outside INCRBYFLOAT).
///
/// Everything `strtod` accepts is accepted (`1e5`, `.5`, `5.`, `+1`, `inf`,
/// `-Infinity`, `0x1p3`, subnormals) provided it consumes the whole input.
/// Rejected: empty input, a leading whitespace byte, trailing bytes (including
/// spaces and NULs), NaN, and out-of-range values that `strtod` turns into ±∞
/// or 0 with `ERANGE`.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let first = *s.first()?;
    if is_c_space(first) {
        return None;
    }
    if is_short_plain_decimal(s) {
        return std::str::from_utf8(s).ok()?.parse().ok();
    }
    let parsed = ffi::strtod(s)?;
    let out_of_range =
        parsed.flags & ffi::F_ERANGE != 0 && parsed.flags & (ffi::F_INF | ffi::F_ZERO) != 0;
    if parsed.consumed != s.len() || out_of_range || parsed.flags & ffi::F_NAN != 0 {
        return None;
    }
    Some(parsed.value)
}

/// A fixed-size stack buffer for `core::fmt` output.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends `v` formatted like C's `printf("%.17g", v)` (Redis 7.0's
/// `addReplyDouble` and `d2string`): 17 significant digits, trailing zeros
/// dropped, exponential form (`e+17`, `e-07`) when the decimal exponent is
/// below -4 or at least 17. Infinities are `inf` / `-inf`; every NaN is `nan`
/// (as `d2string` writes it). Negative zero is `-0`.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    // Rust's `{:.16e}` is exact and rounds ties to even, like glibc's printf:
    // it yields `[-]d.dddddddddddddddde<exp>` with 17 significant digits.
    let mut sci = StackBuf {
        buf: [0; 48],
        len: 0,
    };
    if write!(sci, "{v:.16e}").is_err() {
        // Cannot happen (the longest output is 24 bytes); degrade gracefully.
        out.extend_from_slice(format!("{v:.16e}").as_bytes());
        return;
    }
    let text = sci.buf.get(..sci.len).unwrap_or_default();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let Some(e_pos) = text.iter().position(|&b| b == b'e') else {
        return;
    };
    let (mantissa, exp_text) = text.split_at(e_pos);
    let exp: i32 = std::str::from_utf8(exp_text.get(1..).unwrap_or_default())
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    // The 17 significant digits, without the decimal point.
    let mut digits = [b'0'; 17];
    let mut n = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if let Some(slot) = digits.get_mut(n) {
            *slot = b;
            n += 1;
        }
    }
    // `%g` drops trailing zeros of the significand.
    let mut sig = digits.len();
    while sig > 1 && digits.get(sig - 1) == Some(&b'0') {
        sig -= 1;
    }
    let digits = digits.get(..sig).unwrap_or_default();

    if negative {
        out.push(b'-');
    }
    if !(-4..17).contains(&exp) {
        // Exponential style: d[.ddd]e±XX (at least two exponent digits).
        let (first, rest) = digits.split_first().unwrap_or((&b'0', &[]));
        out.push(*first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend_from_slice(rest);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push(b'0');
        }
        let mut buf = itoa::Buffer::new();
        out.extend_from_slice(buf.format(abs).as_bytes());
    } else if exp < 0 {
        // 0.000ddd
        out.extend_from_slice(b"0.");
        for _ in 0..(exp.unsigned_abs() - 1) {
            out.push(b'0');
        }
        out.extend_from_slice(digits);
    } else {
        // ddd[.ddd]; the integer part needs exp + 1 digits (zero padded).
        let int_len = usize::try_from(exp).unwrap_or(0) + 1;
        if digits.len() <= int_len {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
        } else {
            let (int_part, frac) = digits.split_at(int_len);
            out.extend_from_slice(int_part);
            out.push(b'.');
            out.extend_from_slice(frac);
        }
    }
}

/// Why an INCRBYFLOAT-style increment failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrFloatError {
    /// The stored value or the increment is not a valid float
    /// (`ERR value is not a valid float`).
    NotFloat,
    /// The sum is NaN or infinite
    /// (`ERR increment would produce NaN or Infinity`).
    NanOrInf,
}

impl IncrFloatError {
    /// The error reply text, without the leading `-`.
    pub fn message(self) -> &'static str {
        match self {
            IncrFloatError::NotFloat => "ERR value is not a valid float",
            IncrFloatError::NanOrInf => "ERR increment would produce NaN or Infinity",
        }
    }
}

impl std::fmt::Display for IncrFloatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for IncrFloatError {}

/// Redis' `string2ld`: the `long double` parse behind INCRBYFLOAT. Same rules
/// as [`parse_f64`] (strtold instead of strtod) plus a length limit of
/// `MAX_LONG_DOUBLE_CHARS - 1` bytes.
fn parse_long_double(s: &[u8]) -> Option<ffi::LongDouble> {
    let first = *s.first()?;
    if s.len() >= MAX_LONG_DOUBLE_CHARS || is_c_space(first) {
        return None;
    }
    let parsed = ffi::strtold(s)?;
    let out_of_range =
        parsed.flags & ffi::F_ERANGE != 0 && parsed.flags & (ffi::F_INF | ffi::F_ZERO) != 0;
    if parsed.consumed != s.len() || out_of_range || parsed.flags & ffi::F_NAN != 0 {
        return None;
    }
    Some(parsed.value)
}

/// INCRBYFLOAT / HINCRBYFLOAT: adds `incr` to `current` (a missing value counts
/// as 0) in C `long double` precision and returns the new stored text.
///
/// Mirrors Redis 7.0: both operands go through `string2ld` (so `0x10`, `1e4000`
/// and `inf` are accepted, `1e5000`, ` 1` and `nan` are not); a NaN or infinite
/// sum is refused; the result is printed with `%.17Lf`, trailing zeros and a
/// trailing `.` removed, and `-0` turned into `0`.
pub fn incrbyfloat(current: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, IncrFloatError> {
    let base = match current {
        Some(text) => parse_long_double(text).ok_or(IncrFloatError::NotFloat)?,
        None => ffi::LongDouble::zero(),
    };
    let delta = parse_long_double(incr).ok_or(IncrFloatError::NotFloat)?;
    let (sum, flags) = ffi::add(&base, &delta);
    if flags & (ffi::F_NAN | ffi::F_INF) != 0 {
        return Err(IncrFloatError::NanOrInf);
    }
    let mut text = ffi::format_fixed17(&sum);
    if text.contains(&b'.') {
        while text.last() == Some(&b'0') {
            text.pop();
        }
        if text.last() == Some(&b'.') {
            text.pop();
        }
    }
    if text == b"-0" {
        text = b"0".to_vec();
    }
    Ok(text)
}

/// The only unsafe code in the crate: calls into `csrc/ldouble.c`.
///
/// Redis' float parsing is glibc's `strtod`/`strtold` and INCRBYFLOAT computes
/// in x87 80-bit `long double`; exact reply parity needs the same C routines.
/// Every call passes a NUL-terminated copy of the input and buffers sized as
/// the C side expects (`CODIS_LD_BYTES`).
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{c_char, c_int};

    /// Must equal `CODIS_LD_BYTES` in `csrc/ldouble.c`.
    const LD_BYTES: usize = 32;

    pub(super) const F_ERANGE: c_int = 1;
    pub(super) const F_NAN: c_int = 2;
    pub(super) const F_INF: c_int = 4;
    pub(super) const F_ZERO: c_int = 8;

    unsafe extern "C" {
        fn codis_strtold(buf: *const c_char, slot: *mut u8, flags: *mut c_int) -> usize;
        fn codis_strtod(buf: *const c_char, out: *mut f64, flags: *mut c_int) -> usize;
        fn codis_ld_add(a: *const u8, b: *const u8, sum: *mut u8) -> c_int;
        fn codis_ld_format_fixed17(value: *const u8, out: *mut c_char, cap: usize) -> c_int;
    }

    /// An opaque C `long double`, stored as its raw bytes.
    #[derive(Clone, Copy)]
    pub(super) struct LongDouble([u8; LD_BYTES]);

    impl LongDouble {
        pub(super) fn zero() -> Self {
            // All-zero bytes are +0.0 in every `long double` format.
            LongDouble([0; LD_BYTES])
        }
    }

    pub(super) struct Parsed<T> {
        pub(super) value: T,
        pub(super) consumed: usize,
        pub(super) flags: c_int,
    }

    /// Copies `s` into a NUL-terminated buffer for the C parsers. Returns
    /// `None` only if that would need more memory than can be allocated.
    fn with_cstr<R>(s: &[u8], f: impl FnOnce(*const c_char) -> R) -> Option<R> {
        let mut stack = [0u8; 128];
        if let Some(dst) = stack.get_mut(..s.len()) {
            dst.copy_from_slice(s);
            return Some(f(stack.as_ptr().cast()));
        }
        let mut heap = Vec::new();
        heap.try_reserve_exact(s.len().checked_add(1)?).ok()?;
        heap.extend_from_slice(s);
        heap.push(0);
        Some(f(heap.as_ptr().cast()))
    }

    pub(super) fn strtold(s: &[u8]) -> Option<Parsed<LongDouble>> {
        let mut slot = [0u8; LD_BYTES];
        let mut flags: c_int = 0;
        // SAFETY: `p` is NUL-terminated and outlives the call; `slot` has the
        // `CODIS_LD_BYTES` bytes the C side writes; `flags` is a valid int.
        let consumed = with_cstr(s, |p| unsafe {
            codis_strtold(p, slot.as_mut_ptr(), &mut flags)
        })?;
        Some(Parsed {
            value: LongDouble(slot),
            consumed,
            flags,
        })
    }

    pub(super) fn strtod(s: &[u8]) -> Option<Parsed<f64>> {
        let mut value = 0.0f64;
        let mut flags: c_int = 0;
        // SAFETY: `p` is NUL-terminated and outlives the call; `value` and
        // `flags` are valid for writes.
        let consumed = with_cstr(s, |p| unsafe { codis_strtod(p, &mut value, &mut flags) })?;
        Some(Parsed {
            value,
            consumed,
            flags,
        })
    }

    pub(super) fn add(a: &LongDouble, b: &LongDouble) -> (LongDouble, c_int) {
        let mut sum = [0u8; LD_BYTES];
        // SAFETY: all three buffers are `CODIS_LD_BYTES` long; `a` and `b`
        // hold values written by the C side (or +0.0).
        let flags = unsafe { codis_ld_add(a.0.as_ptr(), b.0.as_ptr(), sum.as_mut_ptr()) };
        (LongDouble(sum), flags)
    }

    /// `%.17Lf` of `v`.
    pub(super) fn format_fixed17(v: &LongDouble) -> Vec<u8> {
        // Enough for any value below 1e40; the largest long double needs ~4950.
        let mut cap = 64usize;
        loop {
            let mut buf = vec![0u8; cap];
            // SAFETY: `buf` is valid for `cap` bytes of writes; snprintf never
            // writes more than `cap` bytes including the NUL.
            let n = unsafe { codis_ld_format_fixed17(v.0.as_ptr(), buf.as_mut_ptr().cast(), cap) };
            let Ok(n) = usize::try_from(n) else {
                return Vec::new();
            };
            if n < cap {
                buf.truncate(n);
                return buf;
            }
            cap = n + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_i64_vectors() {
        // (input, string2ll result); each checked against redis-server 7.0.15
        // with `SET k <x>; INCR k` and `INCRBY k <x>`.
        let cases: &[(&[u8], Option<i64>)] = &[
            (b"0", Some(0)),
            (b"1", Some(1)),
            (b"-1", Some(-1)),
            (b"10", Some(10)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"9223372036854775808", None),
            (b"-9223372036854775809", None),
            (b"18446744073709551615", None),
            (b"18446744073709551616", None),
            (b"99999999999999999999", None),
            (b"123456789012345678901", None),
            (b"000000000000000000001", None),
            (b"-0", None),
            (b"+1", None),
            (b"01", None),
            (b"00", None),
            (b"-00001", None),
            (b"1 ", None),
            (b" 1", None),
            (b"", None),
            (b"-", None),
            (b"+", None),
            (b"1\0", None),
            (b"12a", None),
            (b"1.0", None),
            (b"1e3", None),
            (b"0x10", None),
            (b"--1", None),
            (b"\xd9\xa1", None),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                parse_i64(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn write_i64_vectors() {
        for (v, s) in [
            (0i64, "0"),
            (-1, "-1"),
            (i64::MAX, "9223372036854775807"),
            (i64::MIN, "-9223372036854775808"),
        ] {
            let mut out = b"x".to_vec();
            write_i64(&mut out, v);
            assert_eq!(out, format!("x{s}").as_bytes());
        }
    }

    #[test]
    fn parse_f64_vectors() {
        // (input, `ZADD z <x> m` result / ZSCORE reply); checked against
        // redis-server 7.0.15 (skiplist encoding for the -0 case).
        let ok: &[(&[u8], f64)] = &[
            (b"inf", f64::INFINITY),
            (b"+inf", f64::INFINITY),
            (b"-inf", f64::NEG_INFINITY),
            (b"Inf", f64::INFINITY),
            (b"INFINITY", f64::INFINITY),
            (b"-infinity", f64::NEG_INFINITY),
            (b"1e5", 100000.0),
            (b"1E5", 100000.0),
            (b"1e+5", 100000.0),
            (b".5", 0.5),
            (b"5.", 5.0),
            (b"-.5e-3", -0.0005),
            (b"+1.5", 1.5),
            (b"00.5", 0.5),
            (b"0x10", 16.0),
            (b"0x1p3", 8.0),
            (b"0X1.8P1", 3.0),
            (b"0x.8", 0.5),
            (b"1e-310", 1e-310),
            (b"4.9e-324", 5e-324),
            (b"0.1", 0.1),
            (b"-0", -0.0),
            (b"-0.0", -0.0),
            (b"123456789012345678", 123456789012345678.0),
            (b"1.7976931348623157e308", f64::MAX),
            (b"0.30000000000000000001", 0.3),
        ];
        for &(input, expected) in ok {
            let got = parse_f64(input);
            assert_eq!(
                got.map(f64::to_bits),
                Some(expected.to_bits()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let bad: &[&[u8]] = &[
            b"infinit",
            b"nan",
            b"NaN",
            b"-nan",
            b"nan(123)",
            b".",
            b"0x",
            b"1e",
            b"1e+",
            b" 1",
            b"1 ",
            b"\t1",
            b"1\t",
            b"1\n",
            b"",
            b"1e400",
            b"-1e400",
            b"1e-400",
            b"2e-324",
            b"1\0",
            b"\0",
            b"1_000",
            b"\xd9\xa1",
            b"-+1",
            b".e1",
            b"0x1p",
            b"abc",
            b"1,5",
        ];
        for &input in bad {
            assert_eq!(
                parse_f64(input),
                None,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Long inputs (heap copy path).
        let long = format!("{}1", "0".repeat(300));
        assert_eq!(parse_f64(long.as_bytes()), Some(1.0));
        let tiny = format!("0.{}1", "0".repeat(400));
        assert_eq!(parse_f64(tiny.as_bytes()), None);
    }

    fn f64_text(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn write_f64_specials() {
        assert_eq!(f64_text(f64::INFINITY), "inf");
        assert_eq!(f64_text(f64::NEG_INFINITY), "-inf");
        assert_eq!(f64_text(f64::NAN), "nan");
        assert_eq!(f64_text(-f64::NAN), "nan");
        assert_eq!(f64_text(0.1), "0.10000000000000001");
        assert_eq!(f64_text(2.5e-7), "2.4999999999999999e-07");
        assert_eq!(f64_text(1.0), "1");
        assert_eq!(f64_text(1e17), "1e+17");
        assert_eq!(f64_text(-0.0), "-0");
        let mut out = b"$".to_vec();
        write_f64(&mut out, 1.5);
        assert_eq!(out, b"$1.5");
    }

    /// (bits, glibc `printf("%.17g")`): generated with a small C program.
    const PRINTF_17G: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "-0"),
        (0x3ff0000000000000, "1"),
        (0xbff0000000000000, "-1"),
        (0x3fb999999999999a, "0.10000000000000001"),
        (0x3fc999999999999a, "0.20000000000000001"),
        (0x3fd3333333333333, "0.29999999999999999"),
        (0x3e90c6f7a0b5ed8d, "2.4999999999999999e-07"),
        (0x4376345785d8a000, "1e+17"),
        (0x4341c37937e08000, "10000000000000000"),
        (0x4376345785d89fff, "99999999999999984"),
        (0x3f1a36e2eb1c432d, "0.0001"),
        (0x3ee4f8b588e368f1, "1.0000000000000001e-05"),
        (0x3f1a36e2eb1c432c, "9.9999999999999991e-05"),
        (0x437b69b4ba630f35, "1.2345678901234568e+17"),
        (0x3ff0000800000000, "1.0000076293945312"),
        (0x3ff8000000000000, "1.5"),
        (0x4004000000000000, "2.5"),
        (0x400921f9f01b866e, "3.1415899999999999"),
        (0x7fe1ccf385ebc8a0, "1e+308"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0x0000000000000001, "4.9406564584124654e-324"),
        (0x0010000000000000, "2.2250738585072014e-308"),
        (0x000012688b70e62b, "9.9999999999999694e-311"),
        (0x4330000000000000, "4503599627370496"),
        (0x4340000000000000, "9007199254740992"),
        (0x430c6bf526340000, "1000000000000000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x4480f0cf064dd592, "1e+22"),
        (0x44b52d02c7e14af6, "9.9999999999999992e+22"),
        (0x3fe0000000000000, "0.5"),
        (0x3fd0000000000000, "0.25"),
        (0x3fc0000000000000, "0.125"),
        (0x4059000000000000, "100"),
        (0x40934a456d5cfaad, "1234.5678"),
        (0xbf201f31f46ed246, "-0.00012300000000000001"),
        (0x4345ee2a2eb5a5c4, "12345678901234568"),
        (0x3e7ad7f29abcaf48, "9.9999999999999995e-08"),
        (0x4008000000000000, "3"),
        (0x3fd5555555555555, "0.33333333333333331"),
        (0x3fe5555555555555, "0.66666666666666663"),
        (0xbfe5555555555555, "-0.66666666666666663"),
        (0x44dfe185ca57c517, "6.0221407599999999e+23"),
        (0x3c079ca10c924223, "1.5999999999999999e-19"),
        (0x40f0000000000000, "65536"),
        (0x41f0000000000000, "4294967296"),
        (0x43e0000000000000, "9.2233720368547758e+18"),
        (0x3fd3333333333334, "0.30000000000000004"),
        (0x54b249ad2594c37d, "1e+100"),
        (0x2b2bff2ee48e0530, "1e-100"),
        (0x404535c28f5c28f6, "42.420000000000002"),
        (0x39b4484bfeebc2a0, "1.0000000000000001e-30"),
        (0x39be6c71fe61a3f0, "1.5000000000000001e-30"),
        (0x39e95a5efea6b347, "9.9999999999999994e-30"),
        (0x39f303c73efd0675, "1.4999999999999998e-29"),
        (0x3a1fb0f6be506019, "9.9999999999999997e-29"),
        (0x3a27c4b90ebc4813, "1.5e-28"),
        (0x3a53ce9a36f23c10, "1e-27"),
        (0x3a5db5e7526b5a18, "1.5000000000000001e-27"),
        (0x3a88c240c4aecb14, "1e-26"),
        (0x3a9291b09383184f, "1.5000000000000001e-26"),
        (0x3abef2d0f5da7dd9, "1e-25"),
        (0x3ac7361cb863de63, "1.5000000000000001e-25"),
        (0x3af357c299a88ea7, "9.9999999999999992e-25"),
        (0x3afd03a3e67cd5fa, "1.4999999999999998e-24"),
        (0x3b282db34012b251, "9.9999999999999996e-24"),
        (0x3b322246700e05bd, "1.5e-23"),
        (0x3b5e392010175ee6, "1e-22"),
        (0x3b66aad80c11872c, "1.5e-22"),
        (0x3b92e3b40a0e9b4f, "9.9999999999999991e-22"),
        (0x3b9c558e0f15e8f6, "1.4999999999999998e-21"),
        (0x3bc79ca10c924223, "9.9999999999999995e-21"),
        (0x3bd1b578c96db19a, "1.4999999999999998e-20"),
        (0x3bfd83c94fb6d2ac, "9.9999999999999998e-20"),
        (0x3c0622d6fbc91e01, "1.5e-19"),
        (0x3c32725dd1d243ac, "1.0000000000000001e-18"),
        (0x3c3bab8cbabb6582, "1.5000000000000001e-18"),
        (0x3c670ef54646d497, "1.0000000000000001e-17"),
        (0x3c714b37f4b51f71, "1.5e-17"),
        (0x3c9cd2b297d889bc, "9.9999999999999998e-17"),
        (0x3ca59e05f1e2674d, "1.5e-16"),
        (0x3cd203af9ee75616, "1.0000000000000001e-15"),
        (0x3cdb05876e5b0121, "1.5000000000000001e-15"),
        (0x3d06849b86a12b9b, "1e-14"),
        (0x3d10e374a4f8e0b4, "1.4999999999999999e-14"),
        (0x3d3c25c268497682, "1e-13"),
        (0x3d451c51ce3718e2, "1.5000000000000002e-13"),
        (0x3d719799812dea11, "9.9999999999999998e-13"),
        (0x3d7a636641c4df1a, "1.5000000000000001e-12"),
        (0x3da5fd7fe1796495, "9.9999999999999994e-12"),
        (0x3db07e1fe91b0b70, "1.5e-11"),
        (0x3ddb7cdfd9d7bdbb, "1e-10"),
        (0x3de49da7e361ce4c, "1.5e-10"),
        (0x3e112e0be826d695, "1.0000000000000001e-09"),
        (0x3e19c511dc3a41e0, "1.5000000000000002e-09"),
        (0x3e45798ee2308c3a, "1e-08"),
        (0x3e501b2b29a4692c, "1.5000000000000002e-08"),
        (0x3e8421f5f40d8376, "1.4999999999999999e-07"),
        (0x3eb0c6f7a0b5ed8d, "9.9999999999999995e-07"),
        (0x3eb92a737110e454, "1.5e-06"),
        (0x3eef75104d551d6a, "1.5000000000000002e-05"),
        (0x3f23a92a30553262, "0.00015000000000000001"),
        (0x3f50624dd2f1a9fc, "0.001"),
        (0x3f589374bc6a7efa, "0.0015"),
        (0x3f847ae147ae147b, "0.01"),
        (0x3f8eb851eb851eb8, "0.014999999999999999"),
        (0x3fc3333333333334, "0.15000000000000002"),
        (0x4024000000000000, "10"),
        (0x402e000000000000, "15"),
        (0x4062c00000000000, "150"),
        (0x408f400000000000, "1000"),
        (0x4097700000000000, "1500"),
        (0x40c3880000000000, "10000"),
        (0x40cd4c0000000000, "15000"),
        (0x40f86a0000000000, "100000"),
        (0x41024f8000000000, "150000"),
        (0x412e848000000000, "1000000"),
        (0x4136e36000000000, "1500000"),
        (0x416312d000000000, "10000000"),
        (0x416c9c3800000000, "15000000"),
        (0x4197d78400000000, "100000000"),
        (0x41a1e1a300000000, "150000000"),
        (0x41cdcd6500000000, "1000000000"),
        (0x41d65a0bc0000000, "1500000000"),
        (0x4202a05f20000000, "10000000000"),
        (0x420bf08eb0000000, "15000000000"),
        (0x42374876e8000000, "100000000000"),
        (0x424176592e000000, "150000000000"),
        (0x426d1a94a2000000, "1000000000000"),
        (0x4275d3ef79800000, "1500000000000"),
        (0x42a2309ce5400000, "10000000000000"),
        (0x42ab48eb57e00000, "15000000000000"),
        (0x42d6bcc41e900000, "100000000000000"),
        (0x42e10d9316ec0000, "150000000000000"),
        (0x431550f7dca70000, "1500000000000000"),
        (0x434aa535d3d0c000, "15000000000000000"),
        (0x4380a741a4627800, "1.5e+17"),
        (0x43abc16d674ec800, "1e+18"),
        (0x43b4d1120d7b1600, "1.5e+18"),
        (0x43e158e460913d00, "1e+19"),
        (0x43ea055690d9db80, "1.5e+19"),
        (0x4415af1d78b58c40, "1e+20"),
        (0x442043561a882930, "1.5e+20"),
        (0x4454542ba12a337c, "1.5e+21"),
        (0x448969368974c05b, "1.5e+22"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x44bfc3842bd1f072, "1.5e+23"),
        (0x44ea784379d99db4, "9.9999999999999998e+23"),
        (0x44f3da329b633647, "1.5e+24"),
        (0x45208b2a2c280291, "1.0000000000000001e+25"),
        (0x4528d0bf423c03da, "1.5000000000000002e+25"),
        (0x4554adf4b7320335, "1e+26"),
        (0x455f04ef12cb04d0, "1.5000000000000002e+26"),
        (0x4589d971e4fe8402, "1e+27"),
        (0x459363156bbee302, "1.5000000000000002e+27"),
        (0x45c027e72f1f1281, "9.9999999999999996e+27"),
        (0x45c83bdac6ae9bc2, "1.5e+28"),
        (0x45f431e0fae6d721, "9.9999999999999991e+28"),
        (0x45fe4ad1785a42b2, "1.5e+29"),
        (0x46293e5939a08cea, "1e+30"),
        (0x4632eec2eb3869b0, "1.5000000000000002e+30"),
        (0x3ff0001800000000, "1.0000228881835938"),
        (0x3ff0002800000000, "1.0000381469726562"),
        (0x3ff0003800000000, "1.0000534057617188"),
        (0x3ff0004800000000, "1.0000686645507812"),
        (0x3ff0005800000000, "1.0000839233398438"),
        (0x3ff0006800000000, "1.0000991821289062"),
        (0x3ff0007800000000, "1.0001144409179688"),
        (0x3ff0008800000000, "1.0001296997070312"),
        (0x3ff0009800000000, "1.0001449584960938"),
        (0x4000000800000000, "2.0000152587890625"),
        (0x4000001800000000, "2.0000457763671875"),
        (0x4000002800000000, "2.0000762939453125"),
        (0x4000003800000000, "2.0001068115234375"),
        (0x4000004800000000, "2.0001373291015625"),
        (0x4000005800000000, "2.0001678466796875"),
        (0x4000006800000000, "2.0001983642578125"),
        (0x4000007800000000, "2.0002288818359375"),
        (0x4000008800000000, "2.0002593994140625"),
        (0x4000009800000000, "2.0002899169921875"),
        (0xa847a1951bedcf3b, "-1.1994912825747159e-114"),
        (0x40915e0f466f73b2, "1111.5149171270718"),
        (0xbf5236080df4f8ea, "-0.0011115149171270718"),
        (0x40f5461000000000, "87137"),
        (0xe8ce9d98eff8001b, "-7.1517145550805973e+196"),
        (0x40a08b2bf77d849c, "2117.5858725761773"),
        (0xbf6158e64236c632, "-0.0021175858725761771"),
        (0x40db654000000000, "28053"),
        (0x958e92d551d2a3c0, "-7.6183176903492395e-205"),
        (0x40a2bf09b1ba5853, "2399.5189340813463"),
        (0xbf63a827eb22ea67, "-0.0023995189340813463"),
        (0x4087c80000000000, "761"),
        (0xd5a3eb2c643e2acb, "-3.5690146319908464e+104"),
        (0x40a1ca89e4cad23e, "2277.2693236714977"),
        (0xbf62a7c7a89e8a70, "-0.0022772693236714978"),
        (0x40e13ac000000000, "35286"),
        (0xbf818f435e8d67c8, "-0.0085740340452281766"),
        (0x408cff4f4ac2d4f5, "927.91371681415933"),
        (0xbf4e67e7889ae1c2, "-0.00092791371681415929"),
        (0x40e4586000000000, "41667"),
        (0xb33adc4b38c49c09, "-6.5294313949622887e-62"),
        (0x40780a7a6008c7c0, "384.65487674169344"),
        (0xbf3935701da88227, "-0.00038465487674169341"),
        (0x40f67a4000000000, "92068"),
        (0xfd24e0d5253992b2, "-6.6671452183199895e+294"),
        (0x409ae156fd83ba68, "1720.3349514563106"),
        (0xbf5c2f9b96b2ec52, "-0.0017203349514563105"),
        (0x40caa90000000000, "13650"),
        (0x9a33f1c3f84b6fd6, "-1.8775155216832282e-182"),
        (0x40ce61bb2b78c135, "15555.462264150943"),
        (0xbf8fdb8acd96eb00, "-0.015555462264150943"),
        (0x40e15c2000000000, "35553"),
        (0x5dfb136c3af71d7c, "5.2827536617843399e+144"),
        (0x409b755555555555, "1757.3333333333333"),
        (0xbf5ccaca4c783701, "-0.0017573333333333332"),
        (0x40ed708000000000, "60292"),
        (0xd3891400bc4786c3, "-2.6155553640599874e+94"),
        (0x409f01101571ed3c, "1984.2657068062827"),
        (0xbf60414e8a2761a8, "-0.0019842657068062826"),
        (0x40f5b2c000000000, "88876"),
        (0x6a2e1dc7bef06752, "2.9507276430525822e+203"),
        (0x4092872094f2094f, "1185.7818181818182"),
        (0xbf536d8788462962, "-0.0011857818181818182"),
        (0x40e2348000000000, "37284"),
        (0x72465b3430760c79, "2.9814379664469179e+242"),
        (0x40a13c0a4130b5a7, "2206.0200286123031"),
        (0xbf62125bfc121c70, "-0.002206020028612303"),
        (0x40f4850000000000, "84048"),
        (0x29e7854b16f187e2, "8.0120078551652831e-107"),
        (0x40bd8ca8542a150b, "7564.6575342465758"),
        (0xbf7efc1e4b70c24b, "-0.0075646575342465756"),
        (0x40d4c78000000000, "21278"),
        (0x3b68eb6e2aa20ef1, "1.6490440921093258e-22"),
        (0x40a19d463d886ad0, "2254.6371882086169"),
        (0xbf6278511f9b3ffb, "-0.002254637188208617"),
        (0x40f0814000000000, "67604"),
        (0xefb9dbf4b88159e7, "-1.5682375133653876e+230"),
        (0x404f87b384c7b385, "63.060165975103736"),
        (0xbf1087e566f4d986, "-6.3060165975103733e-05"),
        (0x40bd390000000000, "7481"),
        (0xf8575b9bbb3d6a9d, "-4.9359287138370035e+271"),
        (0x40b17c989d89d89e, "4476.5961538461543"),
        (0xbf72560d21402dbc, "-0.0044765961538461539"),
        (0x40d68dc000000000, "23095"),
        (0x03c71475f3672daf, "1.8502422003213357e-290"),
        (0x409e61b0d3224f2d, "1944.4226804123712"),
        (0xbf5fdb7ff49b2f95, "-0.0019444226804123711"),
        (0x40f5c31000000000, "89137"),
        (0x32795c415af06de1, "1.5050695792413708e-65"),
        (0x40b3c8a25c213a26, "5064.6342182890858"),
        (0xbf74bea765570e97, "-0.0050646342182890857"),
        (0x40e9e64000000000, "53042"),
        (0x471d6c7c128636d6, "3.8194234789960336e+34"),
        (0x409fb30000000000, "2028.75"),
        (0xbf609e98dcdb37c9, "-0.0020287499999999997"),
        (0x40e2d3a000000000, "38557"),
        (0x422c427951f63a83, "60687165691.114281"),
        (0x40789bc7f5cf9a1c, "393.7363184079602"),
        (0xbf39cdcc9c5e0520, "-0.00039373631840796015"),
        (0x40e5302000000000, "43393"),
        (0x54e3f8e71c3858ab, "8.7368752335563812e+100"),
        (0x409a21acbf7acbf8, "1672.4186991869919"),
        (0xbf5b66a1e79107f2, "-0.0016724186991869919"),
        (0x40f577a000000000, "87930"),
        (0xa71d19f73bebd996, "-2.8174489414678299e-120"),
        (0x40710c767ab5f34e, "272.77892561983469"),
        (0xbf31e07890880030, "-0.00027277892561983468"),
        (0x40e8f2e000000000, "51095"),
        (0xbde81c6ec4490506, "-1.7543108818287479e-10"),
        (0x40b852fe21a291c0, "6226.9927007299266"),
        (0xbf798179a0087618, "-0.0062269927007299261"),
        (0x40f7bbc000000000, "97212"),
        (0xd15aa1d7cc9a1386, "-8.0839913583966864e+83"),
        (0x40aa8e8262957741, "3399.2546583850931"),
        (0xbf6bd8c0f2d5510e, "-0.003399254658385093"),
        (0x40d49a8000000000, "21098"),
        (0x82642bc4f32bd748, "-3.855326444130907e-297"),
        (0x40b1efefcea68de1, "4591.9367469879517"),
        (0xbf72cefea27533d3, "-0.0045919367469879511"),
        (0x40d2a4c000000000, "19091"),
    ];

    #[test]
    fn write_f64_matches_printf_table() {
        for &(bits, expected) in PRINTF_17G {
            assert_eq!(
                f64_text(f64::from_bits(bits)),
                expected,
                "bits {bits:#018x}"
            );
        }
    }

    #[test]
    fn incrbyfloat_vectors() {
        // (stored value, increment, reply); every row checked against
        // redis-server 7.0.15 with `SET f <stored>; INCRBYFLOAT f <incr>`.
        use IncrFloatError::*;
        type Row<'a> = (Option<&'a [u8]>, &'a [u8], Result<&'a [u8], IncrFloatError>);
        let rows: &[Row] = &[
            (None, b"1", Ok(b"1")),
            (Some(b"0.1"), b"0.2", Ok(b"0.3")),
            (None, b"5.0e3", Ok(b"5000")),
            (None, b"-0", Ok(b"0")),
            (None, b"-0.0", Ok(b"0")),
            (Some(b"-0"), b"0", Ok(b"0")),
            (Some(b"-0"), b"-0", Ok(b"0")),
            (None, b" 1", Err(NotFloat)),
            (None, b"1 ", Err(NotFloat)),
            (None, b"", Err(NotFloat)),
            (None, b"nan", Err(NotFloat)),
            (None, b"-nan", Err(NotFloat)),
            (None, b"inf", Err(NanOrInf)),
            (None, b"-inf", Err(NanOrInf)),
            (None, b"INFINITY", Err(NanOrInf)),
            (None, b"infinity", Err(NanOrInf)),
            (Some(b"inf"), b"1", Err(NanOrInf)),
            (Some(b"1"), b"inf", Err(NanOrInf)),
            (Some(b"inf"), b"-inf", Err(NanOrInf)),
            (None, b"0x10", Ok(b"16")),
            (None, b"0x1p-3", Ok(b"0.125")),
            (Some(b"0x10"), b"1", Ok(b"17")),
            (None, b"0x1.8p1", Ok(b"3")),
            (None, b"0x.8", Ok(b"0.5")),
            (None, b"0x1p", Err(NotFloat)),
            (None, b"1e5000", Err(NotFloat)),
            (None, b"1e-5000", Err(NotFloat)),
            (None, b"1.2e4932", Err(NotFloat)),
            (None, b"1e-4951", Err(NotFloat)),
            (None, b"0x1p-16446", Err(NotFloat)),
            (None, b"0x1p-16445", Ok(b"0")),
            (None, b"2e-4951", Ok(b"0")),
            (None, b"1e-4940", Ok(b"0")),
            (None, b"1e-400", Ok(b"0")),
            (Some(b"1\0abc"), b"1", Err(NotFloat)),
            (Some(b"\0"), b"1", Err(NotFloat)),
            (None, b"1\0abc", Err(NotFloat)),
            (None, b"\0", Err(NotFloat)),
            (Some(b""), b"1", Err(NotFloat)),
            (Some(b"abc"), b"1", Err(NotFloat)),
            (Some(b"abc"), b"x", Err(NotFloat)),
            (None, b"1e", Err(NotFloat)),
            (None, b".5", Ok(b"0.5")),
            (None, b"5.", Ok(b"5")),
            (None, b"1.", Ok(b"1")),
            (None, b"+5", Ok(b"5")),
            (None, b"-.e1", Err(NotFloat)),
            (None, b".e1", Err(NotFloat)),
            (None, b"-+1", Err(NotFloat)),
            (None, b"nan(abc)", Err(NotFloat)),
            (None, b"1e+5", Ok(b"100000")),
            (None, b"1E5", Ok(b"100000")),
            (None, b"00.5", Ok(b"0.5")),
            (None, b"10.5", Ok(b"10.5")),
            (Some(b"10.5"), b"0.1", Ok(b"10.6")),
            (
                None,
                b"1.23456789012345678901234",
                Ok(b"1.23456789012345679"),
            ),
            (None, b"3.0", Ok(b"3")),
            (Some(b"5"), b"-5", Ok(b"0")),
            (None, b"0.1", Ok(b"0.1")),
            (Some(b"0.1"), b"-0.1", Ok(b"0")),
            (None, b"-0.1", Ok(b"-0.1")),
            (None, b"1e-17", Ok(b"0.00000000000000001")),
            (None, b"1e-18", Ok(b"0")),
            (None, b"-1e-18", Ok(b"0")),
            (None, b"5e-18", Ok(b"0")),
            (None, b"4.9e-18", Ok(b"0")),
            (None, b"-5e-18", Ok(b"0")),
            (None, b"1.5e-17", Ok(b"0.00000000000000002")),
            (None, b"2.5e-17", Ok(b"0.00000000000000002")),
            (None, b"0.000000000000000005", Ok(b"0")),
            (None, b"0.000000000000000015", Ok(b"0.00000000000000002")),
            (None, b"0.000000000000000025", Ok(b"0.00000000000000002")),
            (Some(b"3"), b"0.0000000000000000001", Ok(b"3")),
            (None, b"9223372036854775807", Ok(b"9223372036854775807")),
            (
                Some(b"9223372036854775807"),
                b"1",
                Ok(b"9223372036854775808"),
            ),
            (
                None,
                b"123456789012345678901234567890",
                Ok(b"123456789012345678899921813504"),
            ),
            (None, b"1.1e20", Ok(b"110000000000000000000")),
            (None, b"\t1", Err(NotFloat)),
            (None, b"1\n", Err(NotFloat)),
            (None, b"0.30000000000000000001", Ok(b"0.3")),
            (None, b"1.0000000000000000000000001", Ok(b"1")),
        ];
        for &(cur, incr, expected) in rows {
            let got = incrbyfloat(cur, incr);
            assert_eq!(
                got,
                expected.map(<[u8]>::to_vec),
                "{:?} + {:?}",
                cur.map(String::from_utf8_lossy),
                String::from_utf8_lossy(incr)
            );
        }
    }

    #[test]
    fn incrbyfloat_huge_values() {
        // Prefix, suffix and length of the replies from redis-server 7.0.15.
        type HugeRow<'a> = (Option<&'a [u8]>, &'a [u8], usize, &'a str, &'a str);
        let rows: &[HugeRow] = &[
            (
                None,
                b"1e400",
                401,
                "1000000000000000000028188068394758651458",
                "309734806343732497430221946880",
            ),
            (
                None,
                b"1e300",
                301,
                "1000000000000000000008997324079559193870",
                "187386105690089424915104006144",
            ),
            (
                None,
                b"-1e300",
                302,
                "-100000000000000000000899732407955919387",
                "187386105690089424915104006144",
            ),
            (
                Some(b"1e300"),
                b"1",
                301,
                "1000000000000000000008997324079559193870",
                "187386105690089424915104006144",
            ),
            (
                None,
                b"1e4000",
                4000,
                "9999999999999999999965463873099623784932",
                "272729951206648276349901340672",
            ),
            (
                Some(b"1e4000"),
                b"1",
                4000,
                "9999999999999999999965463873099623784932",
                "272729951206648276349901340672",
            ),
            (
                None,
                b"1.7976931348623157e308",
                309,
                "1797693134862315699959210467741044340483",
                "159985926376802466863339536384",
            ),
            (
                Some(b"1.7976931348623157e308"),
                b"1.7976931348623157e308",
                309,
                "3595386269724631399918420935482088680967",
                "319971852753604933726679072768",
            ),
            (None, b"1e4932", 4933, "100000000000000000000601894938", ""),
            (
                None,
                b"1.18e4932",
                4933,
                "118000000000000000000065281291",
                "",
            ),
            (
                None,
                b"-1.18e4932",
                4934,
                "-11800000000000000000006528129",
                "",
            ),
        ];
        for &(cur, incr, len, prefix, suffix) in rows {
            let got = incrbyfloat(cur, incr).unwrap_or_default();
            assert_eq!(got.len(), len, "{:?}", String::from_utf8_lossy(incr));
            assert!(
                got.starts_with(prefix.as_bytes()),
                "{:?}",
                String::from_utf8_lossy(incr)
            );
            assert!(
                got.ends_with(suffix.as_bytes()),
                "{:?}",
                String::from_utf8_lossy(incr)
            );
        }
        assert_eq!(
            incrbyfloat(Some(b"1.18e4932"), b"1.18e4932"),
            Err(IncrFloatError::NanOrInf)
        );
    }

    #[test]
    fn incrbyfloat_length_limit() {
        // string2ld rejects inputs of MAX_LONG_DOUBLE_CHARS (5120) bytes or more.
        for (n, ok) in [
            (5117, true),
            (5118, true),
            (5119, true),
            (5120, false),
            (5121, false),
        ] {
            let text = format!("{}1", "0".repeat(n - 1));
            let expected: Result<&[u8], _> = if ok {
                Ok(b"2")
            } else {
                Err(IncrFloatError::NotFloat)
            };
            assert_eq!(
                incrbyfloat(Some(text.as_bytes()), b"1"),
                expected.map(<[u8]>::to_vec),
                "stored len {n}"
            );
            let expected: Result<&[u8], _> = if ok {
                Ok(b"1")
            } else {
                Err(IncrFloatError::NotFloat)
            };
            assert_eq!(
                incrbyfloat(None, text.as_bytes()),
                expected.map(<[u8]>::to_vec),
                "incr len {n}"
            );
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            IncrFloatError::NotFloat.to_string(),
            "ERR value is not a valid float"
        );
        assert_eq!(
            IncrFloatError::NanOrInf.message(),
            "ERR increment would produce NaN or Infinity"
        );
    }

    proptest! {
        #[test]
        fn parse_i64_agrees_with_std(v in any::<i64>()) {
            let mut out = Vec::new();
            write_i64(&mut out, v);
            prop_assert_eq!(parse_i64(&out), Some(v));
            prop_assert_eq!(out, v.to_string().into_bytes());
        }

        #[test]
        fn parse_i64_never_accepts_noncanonical(s in "[-+ 0-9a]{0,22}") {
            let got = parse_i64(s.as_bytes());
            let canonical = s.parse::<i64>().ok().filter(|v| v.to_string() == s);
            prop_assert_eq!(got, canonical);
        }

        #[test]
        fn write_f64_round_trips(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            let mut out = Vec::new();
            write_f64(&mut out, v);
            let back = parse_f64(&out);
            if v.is_nan() {
                prop_assert_eq!(back, None);
            } else {
                prop_assert_eq!(back.map(f64::to_bits), Some(v.to_bits()));
            }
        }

        #[test]
        fn parse_f64_agrees_with_std_on_decimals(s in "-?[0-9]{1,25}(\\.[0-9]{0,25})?(e-?[0-9]{1,2})?") {
            let std_value: f64 = s.parse().unwrap_or(f64::NAN);
            prop_assert_eq!(parse_f64(s.as_bytes()).map(f64::to_bits), Some(std_value.to_bits()));
        }
    }
}
