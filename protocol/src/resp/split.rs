//! Tokenizer for inline commands and redis.conf lines, with the quoting rules of
//! Redis' `sdssplitargs`: `"..."` with `\n \r \t \b \a \\ \" \xHH` escapes,
//! `'...'` with only `\'`, a closing quote must be followed by a space or the
//! end, and `""`/`''` are legal empty arguments.

/// Splits `line` into arguments; `None` means unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| line.get(i).copied();
    loop {
        while matches!(at(i), Some(c) if is_space(c)) {
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
                match c {
                    None => return None,
                    Some(b'\\') if at(i + 1) == Some(b'x') && hex(at(i + 2)).is_some() && hex(at(i + 3)).is_some() => {
                        let (h, l) = (hex(at(i + 2)).unwrap_or(0), hex(at(i + 3)).unwrap_or(0));
                        cur.push(h * 16 + l);
                        i += 3;
                    }
                    Some(b'\\') if at(i + 1).is_some() => {
                        i += 1;
                        cur.push(match at(i).unwrap_or(0) {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if matches!(at(i + 1), Some(n) if !is_space(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => cur.push(other),
                }
            } else if in_sq {
                match c {
                    None => return None,
                    Some(b'\\') if at(i + 1) == Some(b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if matches!(at(i + 1), Some(n) if !is_space(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => cur.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if is_space(c) => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(other) => cur.push(other),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[inline]
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex(c: Option<u8>) -> Option<u8> {
    match c? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::split_args;

    fn s(line: &str) -> Option<Vec<String>> {
        split_args(line.as_bytes()).map(|v| v.into_iter().map(|a| String::from_utf8_lossy(&a).into_owned()).collect())
    }

    #[test]
    fn plain_and_quoted() {
        assert_eq!(s("set a b"), Some(vec!["set".into(), "a".into(), "b".into()]));
        assert_eq!(s("  set   a\tb  "), Some(vec!["set".into(), "a".into(), "b".into()]));
        assert_eq!(s(r#"set "a b" 'c d'"#), Some(vec!["set".into(), "a b".into(), "c d".into()]));
        assert_eq!(s(r#"x "a\x41\n" 'it\'s'"#), Some(vec!["x".into(), "aA\n".into(), "it's".into()]));
        assert_eq!(s(r#"save '' """#), Some(vec!["save".into(), "".into(), "".into()]));
        assert_eq!(s(r#"a"b c""#), Some(vec!["ab c".into()]));
        assert_eq!(s(""), Some(vec![]));
        assert_eq!(s("   "), Some(vec![]));
    }

    #[test]
    fn unbalanced() {
        assert_eq!(s(r#"set "a"#), None);
        assert_eq!(s("set 'a"), None);
        assert_eq!(s(r#"set "a"b"#), None);
        assert_eq!(s("set 'a'b"), None);
        assert_eq!(s(r#"set "a\"#), None);
    }
}
