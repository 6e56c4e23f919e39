//! Argument parsing helpers shared by handlers, with Redis' error texts.

use protocol::number::parse_i64;

use crate::errors::CmdError;

/// Parses an integer argument (`ERR value is not an integer or out of range`).
#[inline]
pub fn int_arg(a: &[u8]) -> Result<i64, CmdError> {
    parse_i64(a).ok_or(CmdError::NotInteger)
}

/// Parses a non-negative integer argument that must fit `usize`.
pub fn uint_arg(a: &[u8]) -> Result<u64, CmdError> {
    match parse_i64(a) {
        Some(v) if v >= 0 => Ok(v as u64),
        Some(_) => Err(CmdError::OutOfRange),
        None => Err(CmdError::NotInteger),
    }
}

/// ASCII case-insensitive comparison of an argument with a keyword.
#[inline]
pub fn is(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// Redis' `parseScanCursorOrReply` (SCAN, HSCAN, SSCAN, ZSCAN): `strtoul` base
/// 10 on the C string, so it stops at a NUL, accepts a sign and the empty
/// string and wraps negatives, but rejects leading whitespace, trailing
/// garbage and overflow with `ERR invalid cursor`.
pub fn parse_cursor(a: &[u8]) -> Result<u64, CmdError> {
    let bad = || CmdError::Static(crate::errors::INVALID_CURSOR);
    let a = a.iter().position(|&b| b == 0).map_or(a, |i| &a[..i]);
    let Some(&first) = a.first() else {
        return Ok(0);
    };
    if matches!(first, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return Err(bad());
    }
    let digits = match first {
        b'-' | b'+' => &a[1..],
        _ => a,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(if first == b'-' { v.wrapping_neg() } else { v })
}

/// An argument as Redis' C code sees it through `char *`: cut at the first
/// NUL (option keywords compared with `strcasecmp` stop there).
#[inline]
pub fn c_str(a: &[u8]) -> &[u8] {
    match memchr::memchr(0, a) {
        Some(i) => &a[..i],
        None => a,
    }
}

/// `strcasecmp(arg, kw) == 0`: a C-string, ASCII case-insensitive keyword test.
#[inline]
pub fn c_is(a: &[u8], kw: &str) -> bool {
    c_str(a).eq_ignore_ascii_case(kw.as_bytes())
}

/// The head of a SCAN-family reply, `[cursor, [n elements]]`: the caller
/// writes the `n` elements next.
pub fn scan_head(out: &mut protocol::resp::Reply, next: u64, n: usize) {
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(n);
}

/// A SCAN-family reply whose element count is known only after the scan:
/// `scan` writes the elements into a scratch reply and returns the next
/// cursor and how many it wrote.
pub fn scan_reply(
    out: &mut protocol::resp::Reply,
    scan: impl FnOnce(&mut protocol::resp::Reply) -> (u64, usize),
) {
    let mut items = protocol::resp::Reply {
        buf: Vec::new(),
        resp3: out.resp3,
    };
    let (next, n) = scan(&mut items);
    scan_head(out, next, n);
    out.buf.extend_from_slice(&items.buf);
}

/// The `[MATCH pattern] [COUNT count]` options of HSCAN/SSCAN/ZSCAN (Redis'
/// `scanGenericCommand`): COUNT below 1 or any other word is a syntax error;
/// the pattern `*` is returned as `None` (match everything, even empty bytes).
pub fn scan_options<'a>(opts: &[&'a [u8]]) -> Result<(usize, Option<&'a [u8]>), CmdError> {
    let mut count = 10usize;
    let mut pat = None;
    let mut i = 0;
    while i < opts.len() {
        let more = i + 1 < opts.len();
        if c_is(opts[i], "count") && more {
            let c = int_arg(opts[i + 1])?;
            if c < 1 {
                return Err(CmdError::Syntax);
            }
            count = usize::try_from(c).unwrap_or(usize::MAX);
        } else if c_is(opts[i], "match") && more {
            pat = Some(opts[i + 1]).filter(|p| !protocol::glob::is_match_all(p));
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    Ok((count, pat))
}

/// Largest number of picks with repeats (a negative SRANDMEMBER, HRANDFIELD
/// or ZRANDMEMBER count) we serve: more is `ERR value is out of range` at
/// once. Redis 7.0 tries to build any such reply and, for astronomically
/// large counts, hangs until it runs out of memory.
pub const MAX_REPEAT_PICKS: u64 = 1 << 24;

/// How far a reply whose size the client chooses (picks with repeats) may
/// grow, in reply bytes: up to the `client-output-buffer-limit normal` hard
/// limit (the connection loop closes a client over it without sending the
/// reply, as Redis would once the reply is buffered) or, without one, up to
/// `proto-max-bulk-len` (the reply is withdrawn and the command fails).
/// So a member of a megabyte times a large count never builds gigabytes.
pub struct ReplyBudget {
    start: usize,
    end: usize,
    hard: bool,
}

impl ReplyBudget {
    pub fn new(ctx: &crate::exec::Ctx) -> Self {
        let c = ctx.srv.config();
        let hard = match ctx.client.info.in_pubsub() {
            false => c.client_output_buffer_limit[crate::config::CLIENT_CLASS_NORMAL].hard_bytes,
            true => 0,
        };
        let (bytes, hard) = match hard {
            0 => (c.proto_max_bulk_len, false),
            h => (h, true),
        };
        let start = ctx.out.buf.len();
        ReplyBudget {
            start,
            end: start.saturating_add(usize::try_from(bytes).unwrap_or(usize::MAX)),
            hard,
        }
    }

    /// Whether the reply in `out` went past the budget.
    #[inline]
    pub fn spent(&self, out: &protocol::resp::Reply) -> bool {
        out.buf.len() > self.end
    }

    /// The command's outcome once [`ReplyBudget::spent`]: over the hard
    /// limit the partial reply stays for the connection loop to refuse;
    /// otherwise it is withdrawn and the command answers an error.
    pub fn exceeded(&self, out: &mut protocol::resp::Reply) -> Result<(), CmdError> {
        if self.hard {
            return Ok(());
        }
        out.buf.truncate(self.start);
        Err(CmdError::Static(crate::errors::REPLY_TOO_LARGE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_parsing_matches_strtoul() {
        let ok = |s: &[u8]| parse_cursor(s).unwrap();
        let bad = |s: &[u8]| parse_cursor(s).is_err();
        assert_eq!(ok(b""), 0);
        assert_eq!(ok(b"0"), 0);
        assert_eq!(ok(b"-0"), 0);
        assert_eq!(ok(b"+17"), 17);
        assert_eq!(ok(b"007"), 7);
        assert_eq!(ok(b"-1"), u64::MAX);
        assert_eq!(ok(b"18446744073709551615"), u64::MAX);
        assert_eq!(ok(b"-18446744073709551615"), 1);
        assert_eq!(ok(b"5\0junk"), 5);
        assert_eq!(ok(b"12\0zz"), 12);
        assert_eq!(ok(b"\0junk"), 0);
        for s in [
            &b" 0"[..],
            b"0 ",
            b"\t1",
            b"0x1",
            b"-",
            b"+",
            b"+-1",
            b"18446744073709551616",
            b"99999999999999999999",
            b"1e3",
            b"abc",
        ] {
            assert!(bad(s), "{:?}", String::from_utf8_lossy(s));
        }
    }
}
