//! Client-side RESP2/RESP3 reply handling for the integration tests: a frame
//! scanner that finds where one complete reply ends (so the raw bytes of each
//! reply can be compared byte for byte with redis-server 7.0), a small decoder
//! into [`Value`] for tests that need to look inside a reply, and [`escape`]
//! for readable failure reports.
//!
//! Mirrors the reply grammar Redis 7.0 emits: `+ - : $ *` (RESP2) and
//! `_ , # ( ! = % ~ > |` (RESP3), including null bulk/array (`$-1`, `*-1`),
//! nested aggregates, maps, sets, pushes and attributes (which prefix a reply
//! and are not counted as an element of their own).

use std::fmt::Write as _;

/// Why a byte stream is not a valid reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// An unknown type byte at the given offset.
    BadType { at: usize, byte: u8 },
    /// A length/count header that is not an integer, or a negative one where
    /// only `-1` (null) is allowed.
    BadLength { at: usize },
    /// A bulk payload not followed by CRLF.
    MissingCrlf { at: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadType { at, byte } => {
                write!(f, "unknown reply type byte {byte:#04x} at offset {at}")
            }
            FrameError::BadLength { at } => write!(f, "bad length header at offset {at}"),
            FrameError::MissingCrlf { at } => {
                write!(f, "bulk payload not terminated by CRLF at offset {at}")
            }
        }
    }
}

/// Position of the `\r` of the first CRLF at or after `from`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2).position(|w| w == b"\r\n").map(|p| p + from)
}

fn parse_len(line: &[u8], at: usize) -> Result<i64, FrameError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(FrameError::BadLength { at })
}

/// Length in bytes of the one complete reply at the start of `buf`;
/// `Ok(None)` when more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let mut pos = 0usize;
    // Number of values still to read (an attribute adds its pairs plus the
    // value it decorates, because it is not a value by itself).
    let mut need: u64 = 1;
    while need > 0 {
        let Some(&t) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(cr) = find_crlf(buf, pos + 1) else {
            return Ok(None);
        };
        let line = &buf[pos + 1..cr];
        let at = pos;
        pos = cr + 2;
        need -= 1;
        match t {
            b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {}
            b'$' | b'!' | b'=' => {
                let n = parse_len(line, at)?;
                if n == -1 && t == b'$' {
                    continue;
                }
                if n < 0 {
                    return Err(FrameError::BadLength { at });
                }
                let end = pos.saturating_add(n as usize);
                if buf.len() < end.saturating_add(2) {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err(FrameError::MissingCrlf { at: end });
                }
                pos = end + 2;
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = parse_len(line, at)?;
                if n == -1 && t == b'*' {
                    continue;
                }
                if n < 0 {
                    return Err(FrameError::BadLength { at });
                }
                let n = n as u64;
                need += match t {
                    b'%' => 2 * n,
                    b'|' => 2 * n + 1,
                    _ => n,
                };
            }
            byte => return Err(FrameError::BadType { at, byte }),
        }
    }
    Ok(Some(pos))
}

/// A decoded reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1` (RESP2 null bulk).
    Nil,
    /// `_` (RESP3 null).
    Null,
    /// `*-1` (RESP2 null array).
    NilArray,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Push(Vec<Value>),
    /// The double's text as sent (`,1.5`, `,inf`).
    Double(String),
    Bool(bool),
    BigNumber(String),
    Verbatim(String, Vec<u8>),
    /// Attribute pairs and the value they decorate.
    Attribute(Vec<(Value, Value)>, Box<Value>),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Bytes of a bulk, simple string, verbatim text or error text.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) | Value::Verbatim(_, b) => Some(b),
            Value::Simple(s) | Value::Error(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// [`Value::as_bytes`] as (lossy) text.
    pub fn as_text(&self) -> Option<String> {
        self.as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// Elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// Re-encodes the value in RESP (the inverse of [`parse_value`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn agg(out: &mut Vec<u8>, t: u8, items: &[Value]) {
            out.push(t);
            out.extend_from_slice(format!("{}\r\n", items.len()).as_bytes());
            for v in items {
                v.encode(out);
            }
        }
        fn pairs(out: &mut Vec<u8>, t: u8, items: &[(Value, Value)]) {
            out.push(t);
            out.extend_from_slice(format!("{}\r\n", items.len()).as_bytes());
            for (k, v) in items {
                k.encode(out);
                v.encode(out);
            }
        }
        match self {
            Value::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Value::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
            Value::Int(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
            Value::Bulk(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Nil => out.extend_from_slice(b"$-1\r\n"),
            Value::Null => out.extend_from_slice(b"_\r\n"),
            Value::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Value::Array(v) => agg(out, b'*', v),
            Value::Set(v) => agg(out, b'~', v),
            Value::Push(v) => agg(out, b'>', v),
            Value::Map(p) => pairs(out, b'%', p),
            Value::Attribute(p, v) => {
                pairs(out, b'|', p);
                v.encode(out);
            }
            Value::Double(s) => out.extend_from_slice(format!(",{s}\r\n").as_bytes()),
            Value::Bool(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Value::BigNumber(s) => out.extend_from_slice(format!("({s}\r\n").as_bytes()),
            Value::Verbatim(f, b) => {
                out.extend_from_slice(format!("={}\r\n{f}:", b.len() + 4).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Canonical form for unordered comparisons: the elements of every
    /// array/set/push (recursively) and the pairs of every map are sorted by
    /// their encoding.
    pub fn sorted(&self) -> Value {
        fn key(v: &Value) -> Vec<u8> {
            let mut b = Vec::new();
            v.encode(&mut b);
            b
        }
        let sort_vec = |v: &[Value]| {
            let mut items: Vec<Value> = v.iter().map(Value::sorted).collect();
            items.sort_by_cached_key(key);
            items
        };
        match self {
            Value::Array(v) => Value::Array(sort_vec(v)),
            Value::Set(v) => Value::Set(sort_vec(v)),
            Value::Push(v) => Value::Push(sort_vec(v)),
            Value::Map(p) => {
                let mut items: Vec<(Value, Value)> =
                    p.iter().map(|(k, v)| (k.sorted(), v.sorted())).collect();
                items.sort_by_cached_key(|(k, v)| (key(k), key(v)));
                Value::Map(items)
            }
            Value::Attribute(p, v) => Value::Attribute(p.clone(), Box::new(v.sorted())),
            other => other.clone(),
        }
    }

    /// The reply's shape: types and aggregate sizes, contents blanked.
    pub fn shape(&self) -> String {
        let mut s = String::new();
        self.shape_into(&mut s);
        s
    }

    fn shape_into(&self, s: &mut String) {
        let agg = |s: &mut String, t: &str, v: &[Value]| {
            let _ = write!(s, "{t}{}[", v.len());
            for x in v {
                x.shape_into(s);
                s.push(' ');
            }
            s.push(']');
        };
        match self {
            Value::Simple(_) => s.push_str("simple"),
            Value::Error(e) => {
                // The error code (first word) is part of the shape.
                let code = e.split(' ').next().unwrap_or("");
                let _ = write!(s, "error({code})");
            }
            Value::Int(_) => s.push_str("int"),
            Value::Bulk(_) => s.push_str("bulk"),
            Value::Nil | Value::Null => s.push_str("nil"),
            Value::NilArray => s.push_str("nilarray"),
            Value::Array(v) => agg(s, "array", v),
            Value::Set(v) => agg(s, "set", v),
            Value::Push(v) => agg(s, "push", v),
            Value::Map(p) => {
                let _ = write!(s, "map{}[", p.len());
                for (k, v) in p {
                    k.shape_into(s);
                    s.push(':');
                    v.shape_into(s);
                    s.push(' ');
                }
                s.push(']');
            }
            Value::Attribute(_, v) => {
                s.push_str("attr:");
                v.shape_into(s);
            }
            Value::Double(_) => s.push_str("double"),
            Value::Bool(_) => s.push_str("bool"),
            Value::BigNumber(_) => s.push_str("bignum"),
            Value::Verbatim(..) => s.push_str("verbatim"),
        }
    }
}

/// Decodes one complete reply at the start of `buf`: the value and the number
/// of bytes it took. `None` when `buf` does not start with a complete, valid reply.
pub fn parse_value(buf: &[u8]) -> Option<(Value, usize)> {
    let end = frame_len(buf).ok()??;
    let mut pos = 0;
    let v = decode(buf, &mut pos)?;
    (pos == end).then_some((v, end))
}

/// Decodes a buffer that must hold exactly one reply.
pub fn parse_one(buf: &[u8]) -> Option<Value> {
    match parse_value(buf) {
        Some((v, n)) if n == buf.len() => Some(v),
        _ => None,
    }
}

fn decode(buf: &[u8], pos: &mut usize) -> Option<Value> {
    let t = *buf.get(*pos)?;
    let cr = find_crlf(buf, *pos + 1)?;
    let line = buf.get(*pos + 1..cr)?;
    let text = || String::from_utf8_lossy(line).into_owned();
    let num = || std::str::from_utf8(line).ok()?.parse::<i64>().ok();
    *pos = cr + 2;
    let items = |n: i64, pos: &mut usize| -> Option<Vec<Value>> {
        (0..n).map(|_| decode(buf, pos)).collect()
    };
    Some(match t {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Int(num()?),
        b'_' => Value::Null,
        b'#' => Value::Bool(line == b"t"),
        b',' => Value::Double(text()),
        b'(' => Value::BigNumber(text()),
        b'$' | b'!' | b'=' => {
            let n = num()?;
            if n == -1 && t == b'$' {
                return Some(Value::Nil);
            }
            let data = buf.get(*pos..*pos + usize::try_from(n).ok()?)?.to_vec();
            *pos += data.len() + 2;
            match t {
                b'$' => Value::Bulk(data),
                b'!' => Value::Error(String::from_utf8_lossy(&data).into_owned()),
                _ => {
                    let fmt = String::from_utf8_lossy(data.get(..3)?).into_owned();
                    Value::Verbatim(fmt, data.get(4..)?.to_vec())
                }
            }
        }
        b'*' => {
            let n = num()?;
            if n == -1 {
                return Some(Value::NilArray);
            }
            Value::Array(items(n, pos)?)
        }
        b'~' => Value::Set(items(num()?, pos)?),
        b'>' => Value::Push(items(num()?, pos)?),
        b'%' | b'|' => {
            let flat = items(num()? * 2, pos)?;
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            if t == b'%' {
                Value::Map(pairs)
            } else {
                Value::Attribute(pairs, Box::new(decode(buf, pos)?))
            }
        }
        _ => return None,
    })
}

/// Printable rendering of raw bytes: ASCII as is, `\r \n \t \\ \"` escaped,
/// everything else as `\xHH`; cut after `max` bytes with a length note.
pub fn escape_max(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(bytes.len().min(max) + 16);
    s.push('"');
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    if bytes.len() > max {
        let _ = write!(s, "... ({} bytes in all)", bytes.len());
    }
    s
}

/// [`escape_max`] with a limit of 600 bytes.
pub fn escape(bytes: &[u8]) -> String {
    escape_max(bytes, 600)
}

/// RESP multibulk encoding of a command.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(b: &[u8]) -> Option<usize> {
        frame_len(b).unwrap()
    }

    #[test]
    fn simple_types() {
        for r in [
            &b"+OK\r\n"[..],
            b"-ERR x y\r\n",
            b":-12\r\n",
            b"_\r\n",
            b"#t\r\n",
            b",1.5\r\n",
            b",inf\r\n",
            b"(12345678901234567890\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"$0\r\n\r\n",
            b"$4\r\na\r\nb\r\n",
            b"!3\r\nERR\r\n",
            b"=7\r\ntxt:abc\r\n",
            b"*0\r\n",
            b"%0\r\n",
            b"~0\r\n",
        ] {
            assert_eq!(whole(r), Some(r.len()), "{}", escape(r));
            let mut two = r.to_vec();
            two.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(whole(&two), Some(r.len()));
            for cut in 0..r.len() {
                assert_eq!(whole(&r[..cut]), None, "{} cut at {cut}", escape(r));
            }
            let (v, n) = parse_value(r).unwrap();
            assert_eq!(n, r.len());
            if r[0] != b'!' {
                let mut enc = Vec::new();
                v.encode(&mut enc);
                assert_eq!(enc, r);
            }
        }
    }

    #[test]
    fn aggregates() {
        let r = b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n%1\r\n+k\r\n~2\r\n_\r\n#f\r\n>2\r\n+x\r\n*-1\r\n";
        assert_eq!(whole(r), Some(r.len()));
        for cut in 0..r.len() {
            assert_eq!(whole(&r[..cut]), None);
        }
        // attribute decorating a value: |1 k v then the value itself
        let a = b"|1\r\n+key\r\n:1\r\n*2\r\n:1\r\n:2\r\n+after\r\n";
        assert_eq!(whole(a), Some(a.len() - 8));
        let (v, _) = parse_value(a).unwrap();
        assert!(
            matches!(v, Value::Attribute(ref p, ref inner) if p.len() == 1 && inner.as_array().map(|x| x.len()) == Some(2))
        );
    }

    #[test]
    fn errors() {
        assert!(frame_len(b"?x\r\n").is_err());
        assert!(frame_len(b"$abc\r\n").is_err());
        assert!(frame_len(b"$-2\r\n").is_err());
        assert!(frame_len(b"$1\r\nab\r\n").is_err());
        assert!(frame_len(b"%-1\r\n").is_err());
    }

    #[test]
    fn sorted_and_shape() {
        let a = parse_one(b"*2\r\n$1\r\nb\r\n$1\r\na\r\n").unwrap();
        let b = parse_one(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.sorted(), b.sorted());
        assert_eq!(a.shape(), "array2[bulk bulk ]");
        assert_eq!(escape(b"a\r\n\x00\""), "\"a\\r\\n\\x00\\\"\"");
        assert_eq!(
            encode_command(&["GET", "a"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
        );
    }
}
