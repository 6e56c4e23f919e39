//! The `sdssplitargs` tokenizer (redis.conf lines, `--name value` options and
//! RESP inline commands) and its inverse, `sdscatrepr` quoting.

/// Splits one line into arguments with redis' `sdssplitargs` rules:
///
/// * arguments are separated by runs of whitespace (`isspace`: space, `\t`,
///   `\n`, `\v`, `\f`, `\r`); an unquoted argument ends at a space, `\t`,
///   `\n` or `\r` only (so `\v`/`\f` inside an unquoted word are kept);
/// * `"..."` understands `\n \r \t \b \a`, `\xHH` (two hex digits), and any
///   other `\c` stands for `c` (so `\\` and `\"`);
/// * `'...'` understands only `\'`;
/// * a quote may start in the middle of a word (`a"b c"` is `ab c`), but a
///   closing quote must be followed by whitespace or the end of the line;
/// * `""` and `''` are empty arguments;
/// * like the C original, a NUL byte ends the input (inside quotes it is an
///   unterminated quote).
///
/// Returns `None` for unbalanced quotes (redis: "Unbalanced quotes"); an
/// empty or all-blank line gives `Some(vec![])`.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // Everything after a NUL is invisible to the C implementation.
    let line = match memchr::memchr(0, line) {
        Some(n) => &line[..n],
        None => line,
    };
    let at = |i: usize| -> u8 { line.get(i).copied().unwrap_or(0) };
    let mut out = Vec::new();
    let mut i = 0usize;
    loop {
        while i < line.len() && is_c_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            let c = at(i);
            if in_dq {
                if c == b'\\'
                    && at(i + 1) == b'x'
                    && hex(at(i + 2)).is_some()
                    && hex(at(i + 3)).is_some()
                {
                    let hi = hex(at(i + 2)).unwrap_or(0);
                    let lo = hex(at(i + 3)).unwrap_or(0);
                    cur.push(hi * 16 + lo);
                    i += 4;
                } else if c == b'\\' && at(i + 1) != 0 {
                    cur.push(match at(i + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    let next = at(i + 1);
                    if next != 0 && !is_c_space(next) {
                        return None;
                    }
                    i += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else if in_sq {
                if c == b'\\' && at(i + 1) == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    let next = at(i + 1);
                    if next != 0 && !is_c_space(next) {
                        return None;
                    }
                    i += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => {
                        in_dq = true;
                        i += 1;
                    }
                    b'\'' => {
                        in_sq = true;
                        i += 1;
                    }
                    other => {
                        cur.push(other);
                        i += 1;
                    }
                }
            }
        }
        out.push(cur);
    }
}

/// C `isspace` in the "C" locale.
#[inline]
pub fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[inline]
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// redis' `sdscatrepr`: `"`-quoted, with `\\ \" \n \r \t \a \b` escapes and
/// `\xhh` (lower-case) for every other byte outside `0x20..=0x7e`. The result
/// always reads back through [`split_args`] as the original bytes.
pub fn repr(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &c in s {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(c as char),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\x");
                out.push(HEX[(c >> 4) as usize] as char);
                out.push(HEX[(c & 15) as usize] as char);
            }
        }
    }
    out.push('"');
    out
}
