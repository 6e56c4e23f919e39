//! The C number parsers redis' config code relies on, reproduced byte for byte
//! in behaviour: `string2ll` (strict), `strtoll` (lenient, saturating, reports
//! where it stopped), `memtoull` (memory units) and `string2d`.

use protocol::resp::is_c_space;

/// redis `string2ll` (strict): the one implementation lives in the protocol
/// crate and is shared with every integer argument.
pub(crate) fn string2ll(s: &[u8]) -> Option<i64> {
    protocol::number::parse_i64(s)
}

/// C `strtoll(s, &end, base)` for base 8 or 10: skips leading `isspace`,
/// takes an optional sign, then digits; saturates on overflow. Returns the
/// value, the index where parsing stopped (0 when no digits were found, like
/// `end == s`), and whether it overflowed (`errno == ERANGE`).
pub(crate) fn strtoll(s: &[u8], base: u32) -> (i64, usize, bool) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if let Some(&c) = s.get(i)
        && (c == b'+' || c == b'-')
    {
        neg = c == b'-';
        i += 1;
    }
    let start = i;
    let mut acc: u64 = 0;
    let mut overflow = false;
    while let Some(&c) = s.get(i) {
        let d = match c {
            b'0'..=b'9' if u32::from(c - b'0') < base => u64::from(c - b'0'),
            _ => break,
        };
        match acc
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(d))
        {
            Some(v) => acc = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, 0, false);
    }
    let limit = if neg {
        (i64::MAX as u64) + 1
    } else {
        i64::MAX as u64
    };
    if overflow || acc > limit {
        return (if neg { i64::MIN } else { i64::MAX }, i, true);
    }
    let v = if neg {
        (acc as i64).wrapping_neg()
    } else {
        acc as i64
    };
    (v, i, false)
}

/// `strtoll(s, &end, 10)` followed by redis' usual `*end != '\0'` check:
/// the whole string must be consumed. Note that `""` parses as 0 (C's
/// `end` stays at the terminating NUL) and leading spaces and `+` are fine.
pub(crate) fn strtoll_full(s: &[u8]) -> Option<i64> {
    let (v, end, _) = strtoll(s, 10);
    if end == s.len() { Some(v) } else { None }
}

/// redis `memtoull`: digits followed by an optional case-insensitive unit
/// `b`, `k` (1000), `kb` (1024), `m`, `mb`, `g`, `gb`. A leading `-` is
/// refused; an empty number is 0 (`""`, `"kb"`); too many digits saturate to
/// `u64::MAX` before the (wrapping) unit multiplication, like redis 7.0.
pub(crate) fn memtoull(s: &[u8]) -> Option<u64> {
    if s.first() == Some(&b'-') {
        return None;
    }
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let unit = &s[digits..];
    let mul: u64 = if unit.is_empty() || unit.eq_ignore_ascii_case(b"b") {
        1
    } else if unit.eq_ignore_ascii_case(b"k") {
        1000
    } else if unit.eq_ignore_ascii_case(b"kb") {
        1024
    } else if unit.eq_ignore_ascii_case(b"m") {
        1000 * 1000
    } else if unit.eq_ignore_ascii_case(b"mb") {
        1024 * 1024
    } else if unit.eq_ignore_ascii_case(b"g") {
        1000 * 1000 * 1000
    } else if unit.eq_ignore_ascii_case(b"gb") {
        1024 * 1024 * 1024
    } else {
        return None;
    };
    if digits >= 128 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[..digits] {
        v = v.saturating_mul(10).saturating_add(u64::from(c - b'0'));
    }
    Some(v.wrapping_mul(mul))
}

/// redis `string2d`: a full-string `strtod` with no leading space, no NaN.
pub(crate) fn string2d(s: &[u8]) -> Option<f64> {
    let first = *s.first()?;
    if is_c_space(first) {
        return None;
    }
    let v = match hex_float(s) {
        Some(v) => v,
        None => std::str::from_utf8(s).ok()?.parse().ok()?,
    };
    if v.is_nan() {
        return None;
    }
    Some(v)
}

/// Shortest round-trip rendering of a double, as redis' `d2string` (integral
/// values print without a fraction).
pub(crate) fn d2string(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    format!("{v}")
}

/// C99 hexadecimal floating point (`0x1.8p3`), which `strtod` accepts and
/// Rust's parser does not. `None` when `s` is not entirely one.
fn hex_float(s: &[u8]) -> Option<f64> {
    let (neg, rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = rest
        .strip_prefix(b"0x")
        .or_else(|| rest.strip_prefix(b"0X"))?;
    let mut mant = 0f64;
    let mut exp: i64 = 0;
    let mut digits = 0;
    let mut i = 0;
    let mut seen_dot = false;
    while let Some(&c) = rest.get(i) {
        if c == b'.' && !seen_dot {
            seen_dot = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            mant = mant * 16.0 + f64::from(d);
            if seen_dot {
                exp -= 4;
            }
            digits += 1;
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if let Some(&c) = rest.get(i)
        && (c == b'p' || c == b'P')
    {
        let e = std::str::from_utf8(&rest[i + 1..])
            .ok()?
            .parse::<i64>()
            .ok()?;
        exp = exp.saturating_add(e);
        i = rest.len();
    }
    if i != rest.len() {
        return None;
    }
    let v = mant * 2f64.powi(exp.clamp(-2000, 2000) as i32);
    Some(if neg { -v } else { v })
}
