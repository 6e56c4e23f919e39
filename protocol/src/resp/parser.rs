//! Incremental RESP2 request parser.
//!
//! Two-phase like mini-redis ("is a full command buffered?" then "slice it"),
//! but resumable: the parser remembers how far it got inside a partially
//! received multibulk command, so a command with a million arguments that
//! arrives in thousands of reads is scanned once, not once per read. Arguments
//! are returned as byte ranges into the caller's buffer (zero copy); only inline
//! commands with quotes are unescaped into an owned scratch buffer.
//!
//! Limits and error texts are Redis 7.0's: inline (and header lines) 64 KB,
//! multibulk count up to `i32::MAX` (10 before AUTH), bulk length up to
//! `proto-max-bulk-len` (16384 before AUTH). The trailing CRLF of a bulk is
//! skipped, not checked, as Redis does.

use super::split::split_args;

/// Longest inline command / header line Redis buffers without a newline.
pub const INLINE_MAX: usize = 64 * 1024;

/// Per-connection limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `proto-max-bulk-len` (512 MB by default).
    pub max_bulk: u64,
    /// Whether the client still has to AUTH (Redis then caps counts and sizes).
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: 512 * 1024 * 1024,
            unauthenticated: false,
        }
    }
}

/// A protocol error: the server replies with the text and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    InvalidMultibulkLength,
    UnauthenticatedMultibulkLength,
    InvalidBulkLength,
    UnauthenticatedBulkLength,
    ExpectedDollar(u8),
    TooBigInline,
    TooBigMbulkCount,
    TooBigBulkCount,
    UnbalancedQuotes,
}

impl ParseError {
    /// The reply text (without the leading `-`), exactly as Redis 7.0.
    pub fn write_message(&self, out: &mut Vec<u8>) {
        let s: &str = match self {
            ParseError::InvalidMultibulkLength => "ERR Protocol error: invalid multibulk length",
            ParseError::UnauthenticatedMultibulkLength => {
                "ERR Protocol error: unauthenticated multibulk length"
            }
            ParseError::InvalidBulkLength => "ERR Protocol error: invalid bulk length",
            ParseError::UnauthenticatedBulkLength => {
                "ERR Protocol error: unauthenticated bulk length"
            }
            ParseError::TooBigInline => "ERR Protocol error: too big inline request",
            ParseError::TooBigMbulkCount => "ERR Protocol error: too big mbulk count string",
            ParseError::TooBigBulkCount => "ERR Protocol error: too big bulk count string",
            ParseError::UnbalancedQuotes => "ERR Protocol error: unbalanced quotes in request",
            ParseError::ExpectedDollar(c) => {
                out.extend_from_slice(b"ERR Protocol error: expected '$', got '");
                out.push(*c);
                out.push(b'\'');
                return;
            }
        };
        out.extend_from_slice(s.as_bytes());
    }
}

/// A complete request found at the start of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Bytes of the buffer this request used.
    pub consumed: usize,
    /// Whether the argument ranges point into the parser's scratch buffer
    /// (quoted inline command) instead of the input buffer.
    pub in_scratch: bool,
}

/// Resumable parser state for one connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Argument ranges (start, end) of the last complete or partial request.
    ranges: Vec<(usize, usize)>,
    /// Arguments still expected in the multibulk being parsed (0 = none started).
    pending: u64,
    /// Offset where parsing of the partial multibulk resumes.
    resume: usize,
    /// Unescaped arguments of a quoted inline command.
    scratch: Vec<u8>,
    /// Minimum buffer length before another attempt can make progress.
    need: usize,
}

fn find_crlf_line(buf: &[u8], from: usize) -> Option<usize> {
    // Redis searches for '\r' and requires the line to end with "\r\n".
    // Header lines are a few bytes long: a plain loop over the first 16
    // bytes beats memchr's dispatch; longer lines fall back to memchr.
    let rest = buf.get(from..)?;
    let head = rest.get(..16).unwrap_or(rest);
    if let Some(i) = head.iter().position(|&c| c == b'\r') {
        return Some(from + i);
    }
    let r = memchr::memchr(b'\r', rest.get(head.len()..)?)?;
    Some(from + head.len() + r)
}

/// Redis' `string2ll` on a header line: strict decimal, no '+', no leading zeros.
fn header_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    if neg && digits == b"0" {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The argument ranges of the request last returned by [`RequestParser::parse`].
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// Unescaped inline arguments (when [`Parsed::in_scratch`] is set).
    pub fn scratch(&self) -> &[u8] {
        &self.scratch
    }

    /// Buffer length below which calling `parse` again cannot make progress.
    pub fn needed(&self) -> usize {
        self.need
    }

    /// Parses one request at the start of `buf`.
    ///
    /// `Ok(None)`: incomplete; call again (with the same start) once more bytes
    /// arrived. Empty requests (`*0`, blank inline lines) are skipped inside.
    pub fn parse(&mut self, buf: &[u8], limits: Limits) -> Result<Option<Parsed>, ParseError> {
        {
            if self.pending == 0 && self.resume == 0 {
                match buf.first() {
                    None => {
                        self.need = 1;
                        return Ok(None);
                    }
                    Some(b'*') => {}
                    Some(_) => return self.parse_inline(buf),
                }
                let Some(cr) = find_crlf_line(buf, 1) else {
                    if buf.len() > INLINE_MAX {
                        return Err(ParseError::TooBigMbulkCount);
                    }
                    self.need = buf.len() + 1;
                    return Ok(None);
                };
                if cr + 1 >= buf.len() {
                    self.need = cr + 2;
                    return Ok(None);
                }
                let n = header_int(&buf[1..cr]).ok_or(ParseError::InvalidMultibulkLength)?;
                if n > i32::MAX as i64 {
                    return Err(ParseError::InvalidMultibulkLength);
                }
                if limits.unauthenticated && n > 10 {
                    return Err(ParseError::UnauthenticatedMultibulkLength);
                }
                self.ranges.clear();
                if n <= 0 {
                    // Empty multibulk: Redis consumes it and carries on; zero
                    // ranges tell the caller there is nothing to run.
                    return Ok(Some(Parsed {
                        consumed: cr + 2,
                        in_scratch: false,
                    }));
                }
                self.pending = n as u64;
                self.resume = cr + 2;
                self.ranges.reserve((n as usize).min(1024));
            }
            // Inside a multibulk: parse bulk arguments from `resume`.
            while self.pending > 0 {
                let pos = self.resume;
                let Some(cr) = find_crlf_line(buf, pos) else {
                    if buf.len().saturating_sub(pos) > INLINE_MAX {
                        return Err(ParseError::TooBigBulkCount);
                    }
                    self.need = buf.len() + 1;
                    return Ok(None);
                };
                if cr + 1 >= buf.len() {
                    self.need = cr + 2;
                    return Ok(None);
                }
                let first = buf.get(pos).copied().unwrap_or(b'\r');
                if first != b'$' {
                    self.reset();
                    return Err(ParseError::ExpectedDollar(first));
                }
                let len = match header_int(buf.get(pos + 1..cr).unwrap_or(&[])) {
                    Some(l) if l >= 0 && (l as u64) <= limits.max_bulk => l as usize,
                    _ => {
                        self.reset();
                        return Err(ParseError::InvalidBulkLength);
                    }
                };
                if limits.unauthenticated && len > 16384 {
                    self.reset();
                    return Err(ParseError::UnauthenticatedBulkLength);
                }
                let start = cr + 2;
                let end = start + len;
                if buf.len() < end + 2 {
                    self.need = end + 2;
                    return Ok(None);
                }
                self.ranges.push((start, end));
                self.resume = end + 2;
                self.pending -= 1;
            }
            let consumed = self.resume;
            self.resume = 0;
            self.need = 0;
            Ok(Some(Parsed {
                consumed,
                in_scratch: false,
            }))
        }
    }

    fn reset(&mut self) {
        self.pending = 0;
        self.resume = 0;
        self.ranges.clear();
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<Parsed>, ParseError> {
        let Some(nl) = memchr::memchr(b'\n', buf) else {
            if buf.len() > INLINE_MAX {
                return Err(ParseError::TooBigInline);
            }
            self.need = buf.len() + 1;
            return Ok(None);
        };
        let mut line = &buf[..nl];
        if let Some((b'\r', rest)) = line.split_last() {
            line = rest;
        }
        self.ranges.clear();
        self.need = 0;
        let consumed = nl + 1;
        if !line
            .iter()
            .any(|&c| matches!(c, b'"' | b'\'' | 0 | 0x0b | 0x0c))
        {
            // Fast path: split on whitespace, arguments are ranges into `buf`.
            let mut i = 0;
            while i < line.len() {
                while i < line.len() && is_space(line[i]) {
                    i += 1;
                }
                let s = i;
                while i < line.len() && !is_space(line[i]) {
                    i += 1;
                }
                if s < i {
                    self.ranges.push((s, i));
                }
            }
            return Ok(Some(Parsed {
                consumed,
                in_scratch: false,
            }));
        }
        let args = split_args(line).ok_or(ParseError::UnbalancedQuotes)?;
        self.scratch.clear();
        for a in args {
            let s = self.scratch.len();
            self.scratch.extend_from_slice(&a);
            self.ranges.push((s, self.scratch.len()));
        }
        Ok(Some(Parsed {
            consumed,
            in_scratch: true,
        }))
    }
}

#[inline]
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses every request in `input`, returning argvs (or the error).
    fn all(input: &[u8], limits: Limits) -> Result<Vec<Vec<Vec<u8>>>, ParseError> {
        let mut p = RequestParser::new();
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(r) = p.parse(&input[pos..], limits)? {
            let base: &[u8] = if r.in_scratch {
                p.scratch()
            } else {
                &input[pos..]
            };
            let argv: Vec<Vec<u8>> = p
                .ranges()
                .iter()
                .map(|&(s, e)| base[s..e].to_vec())
                .collect();
            if !argv.is_empty() {
                out.push(argv);
            }
            pos += r.consumed;
        }
        Ok(out)
    }

    fn v(items: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
        items
            .iter()
            .map(|a| a.iter().map(|s| s.as_bytes().to_vec()).collect())
            .collect()
    }

    #[test]
    fn multibulk_and_inline() {
        let l = Limits::default();
        assert_eq!(all(b"*1\r\n$4\r\nPING\r\n", l).unwrap(), v(&[&["PING"]]));
        assert_eq!(
            all(
                b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\nPING\r\nECHO  x\n",
                l
            )
            .unwrap(),
            v(&[&["SET", "a", ""], &["PING"], &["ECHO", "x"]])
        );
        assert_eq!(
            all(b"*0\r\n*-1\r\n\r\n  \r\nPING\r\n", l).unwrap(),
            v(&[&["PING"]])
        );
        assert_eq!(
            all(b"set a \"b c\\x41\"\r\n", l).unwrap(),
            v(&[&["set", "a", "b cA"]])
        );
        // Redis skips the two bytes after a bulk without checking them.
        assert_eq!(all(b"*1\r\n$4\r\nPINGxx", l).unwrap(), v(&[&["PING"]]));
    }

    #[test]
    fn errors() {
        let l = Limits::default();
        let e = |b: &[u8]| all(b, l).unwrap_err();
        assert_eq!(e(b"*abc\r\n"), ParseError::InvalidMultibulkLength);
        assert_eq!(e(b"*+1\r\n"), ParseError::InvalidMultibulkLength);
        assert_eq!(e(b"*01\r\n"), ParseError::InvalidMultibulkLength);
        assert_eq!(e(b"*2147483648\r\n"), ParseError::InvalidMultibulkLength);
        assert_eq!(e(b"*1\r\nx\r\n"), ParseError::ExpectedDollar(b'x'));
        assert_eq!(e(b"*1\r\n$-1\r\n"), ParseError::InvalidBulkLength);
        assert_eq!(e(b"*1\r\n$536870913\r\n"), ParseError::InvalidBulkLength);
        assert_eq!(e(b"PING \"a\r\n"), ParseError::UnbalancedQuotes);
        assert_eq!(e(&vec![b'a'; INLINE_MAX + 1]), ParseError::TooBigInline);
        let mut big = b"*1\r\n$".to_vec();
        big.extend(vec![b'1'; INLINE_MAX + 1]);
        assert_eq!(e(&big), ParseError::TooBigBulkCount);
        let un = Limits {
            unauthenticated: true,
            ..l
        };
        assert_eq!(
            all(b"*11\r\n", un).unwrap_err(),
            ParseError::UnauthenticatedMultibulkLength
        );
        assert_eq!(
            all(b"*1\r\n$16385\r\n", un).unwrap_err(),
            ParseError::UnauthenticatedBulkLength
        );
        let mut m = Vec::new();
        ParseError::ExpectedDollar(b'x').write_message(&mut m);
        assert_eq!(m, b"ERR Protocol error: expected '$', got 'x'");
    }

    /// Every split point of a pipelined stream yields the same requests.
    #[test]
    fn split_reads_at_every_byte() {
        let input: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nPING\r\nGET \"a b\"\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n";
        let expect = all(input, Limits::default()).unwrap();
        assert_eq!(expect.len(), 4);
        for cut in 0..=input.len() {
            let mut p = RequestParser::new();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for chunk in [&input[..cut], &input[cut..]] {
                buf.extend_from_slice(chunk);
                let mut pos = 0;
                while buf.len() - pos >= p.needed() {
                    let Some(r) = p.parse(&buf[pos..], Limits::default()).unwrap() else {
                        break;
                    };
                    let base: &[u8] = if r.in_scratch {
                        p.scratch()
                    } else {
                        &buf[pos..]
                    };
                    let argv: Vec<Vec<u8>> = p
                        .ranges()
                        .iter()
                        .map(|&(s, e)| base[s..e].to_vec())
                        .collect();
                    if !argv.is_empty() {
                        got.push(argv);
                    }
                    pos += r.consumed;
                }
                buf.drain(..pos);
            }
            assert_eq!(got, expect, "cut at {cut}");
        }
    }

    /// Byte-at-a-time delivery of a big multibulk terminates and parses once.
    #[test]
    fn byte_at_a_time() {
        let mut input = b"*1000\r\n".to_vec();
        for i in 0..1000 {
            let a = i.to_string();
            input.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
        }
        let mut p = RequestParser::new();
        let mut done = None;
        for end in 1..=input.len() {
            if let Some(r) = p.parse(&input[..end], Limits::default()).unwrap() {
                done = Some((end, r.consumed, p.ranges().len()));
                break;
            }
        }
        assert_eq!(done, Some((input.len(), input.len(), 1000)));
    }
}
