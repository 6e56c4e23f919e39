//! SCAN over the whole cluster through the proxy, slot by slot with the
//! backends' `SLOTSSCAN slot cursor COUNT n`.
//!
//! The proxy's cursor is one 64-bit number (what every client parses):
//! bits 0..5 a tag of the slot's servers when the cursor was made, bit 6
//! the phase (0: the slot's migration source, 1: its owner), bits 7..16
//! the slot, bits 17..63 the backend's SLOTSSCAN cursor (below 2^47: ours
//! are, and Redis-based Codis servers give cursors below their table size).
//!
//! Guarantee (as Redis' SCAN): every key present in the database for the
//! whole scan is returned at least once; some may come twice. While a slot
//! migrates, its source is scanned before its owner: keys only move from
//! source to owner, so a key not seen on the source is on the owner when
//! the owner is scanned. If a slot's servers change in the middle of that
//! slot (a migration starts or ends), the tag no longer matches and the
//! slot is scanned again from its start (at worst a 1-in-64 tag collision
//! lets such a change go unnoticed). MATCH and TYPE are applied by the
//! proxy to each batch; COUNT is passed to SLOTSSCAN.

use crate::errors;

/// A decoded proxy SCAN cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub slot: usize,
    /// 0: the migration source; 1: the owner.
    pub phase: u8,
    pub backend: u64,
    pub tag: u8,
}

pub const BACKEND_LIMIT: u64 = 1 << 47;

impl Cursor {
    pub fn decode(v: u64) -> Cursor {
        Cursor {
            tag: (v & 63) as u8,
            phase: ((v >> 6) & 1) as u8,
            slot: ((v >> 7) & 1023) as usize,
            backend: v >> 17,
        }
    }

    /// `None` when the backend cursor does not fit.
    pub fn encode(&self) -> Option<u64> {
        (self.backend < BACKEND_LIMIT).then_some(
            (self.backend << 17)
                | ((self.slot as u64 & 1023) << 7)
                | ((self.phase as u64 & 1) << 6)
                | (self.tag as u64 & 63),
        )
    }
}

/// A 6-bit tag of a slot's owner and migration source addresses.
pub fn servers_tag(owner: &str, source: Option<&str>) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in owner
        .bytes()
        .chain(std::iter::once(b'|'))
        .chain(source.unwrap_or("").bytes())
    {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 6) ^ (h >> 12) ^ (h >> 18) ^ (h >> 24)) as u8 & 63
}

/// SCAN's options.
pub struct Options<'a> {
    pub cursor: u64,
    pub pattern: Option<&'a [u8]>,
    pub count: u64,
    pub kind: Option<&'a [u8]>,
}

/// Parses `SCAN cursor [MATCH p] [COUNT n] [TYPE t]` (Redis' texts).
pub fn parse<'a>(argv: &[&'a [u8]]) -> Result<Options<'a>, Vec<u8>> {
    if argv.len() < 2 {
        return Err(errors::arity("scan"));
    }
    let cursor = std::str::from_utf8(argv[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| errors::line(errors::INVALID_CURSOR))?;
    let mut o = Options {
        cursor,
        pattern: None,
        count: 10,
        kind: None,
    };
    let mut i = 2;
    while i < argv.len() {
        let (opt, val) = (argv[i], argv.get(i + 1));
        let Some(&val) = val else {
            return Err(errors::line(errors::SYNTAX));
        };
        if opt.eq_ignore_ascii_case(b"count") {
            let n = std::str::from_utf8(val)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| errors::line(errors::NOT_INTEGER))?;
            if n < 1 {
                return Err(errors::line(errors::SYNTAX));
            }
            o.count = n as u64;
        } else if opt.eq_ignore_ascii_case(b"match") {
            o.pattern = Some(val);
        } else if opt.eq_ignore_ascii_case(b"type") {
            o.kind = Some(val);
        } else {
            return Err(errors::line(errors::SYNTAX));
        }
        i += 2;
    }
    Ok(o)
}

/// Reads one bulk string (`$n`) at `pos`.
fn bulk(r: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let rest = r.get(*pos..)?;
    let rest = rest.strip_prefix(b"$")?;
    let nl = memchr::memchr(b'\n', rest)?;
    let n: usize = std::str::from_utf8(rest.get(..nl.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    let start = *pos + 1 + nl + 1;
    let v = r.get(start..start + n)?.to_vec();
    *pos = start + n + 2;
    Some(v)
}

/// Reads an aggregate header (`*n`, RESP3 `~n` too) at `pos`.
fn header(r: &[u8], pos: &mut usize) -> Option<usize> {
    let rest = r.get(*pos..)?;
    if !matches!(rest.first(), Some(b'*' | b'~')) {
        return None;
    }
    let nl = memchr::memchr(b'\n', rest)?;
    let n: usize = std::str::from_utf8(rest.get(1..nl.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    *pos += nl + 1;
    Some(n)
}

/// Parses `[cursor, [key, ...]]` (SCAN / SLOTSSCAN / KEYS-style replies).
pub fn parse_reply(r: &[u8]) -> Option<(u64, Vec<Vec<u8>>)> {
    let mut pos = 0;
    if header(r, &mut pos)? != 2 {
        return None;
    }
    let cursor = std::str::from_utf8(&bulk(r, &mut pos)?)
        .ok()?
        .parse()
        .ok()?;
    Some((cursor, parse_keys_at(r, &mut pos)?))
}

/// Parses an array of bulk strings (a KEYS reply).
pub fn parse_keys(r: &[u8]) -> Option<Vec<Vec<u8>>> {
    parse_keys_at(r, &mut 0)
}

fn parse_keys_at(r: &[u8], pos: &mut usize) -> Option<Vec<Vec<u8>>> {
    let n = header(r, pos)?;
    let mut keys = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        keys.push(bulk(r, pos)?);
    }
    Some(keys)
}

/// Parses an array of integers (SCRIPT EXISTS).
pub fn parse_ints(r: &[u8]) -> Option<Vec<i64>> {
    let mut pos = 0;
    let n = header(r, &mut pos)?;
    let mut v = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let rest = r.get(pos..)?;
        if rest.first() != Some(&b':') {
            return None;
        }
        let nl = memchr::memchr(b'\n', rest)?;
        v.push(
            std::str::from_utf8(rest.get(1..nl.checked_sub(1)?)?)
                .ok()?
                .parse()
                .ok()?,
        );
        pos += nl + 1;
    }
    Some(v)
}

/// The reply `[cursor, [key, ...]]`.
pub fn reply(cursor: u64, keys: &[Vec<u8>]) -> Vec<u8> {
    let mut o = protocol::resp::Reply::new();
    o.array(2);
    o.bulk(cursor.to_string().as_bytes());
    o.array(keys.len());
    for k in keys {
        o.bulk(k);
    }
    o.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            slot: 1023,
            phase: 1,
            backend: BACKEND_LIMIT - 1,
            tag: 63,
        };
        assert_eq!(Cursor::decode(c.encode().unwrap()), c);
        assert_eq!(Cursor::decode(0).slot, 0);
        assert!(
            Cursor {
                backend: BACKEND_LIMIT,
                ..c
            }
            .encode()
            .is_none()
        );
        assert_ne!(servers_tag("a:1", None), servers_tag("a:1", Some("b:2")));
    }

    #[test]
    fn replies() {
        let r = b"*2\r\n$3\r\n123\r\n*2\r\n$1\r\na\r\n$2\r\nbc\r\n";
        assert_eq!(
            parse_reply(r),
            Some((123, vec![b"a".to_vec(), b"bc".to_vec()]))
        );
        assert_eq!(parse_reply(b"-ERR x\r\n"), None);
        assert_eq!(
            reply(5, &[b"k".to_vec()]),
            b"*2\r\n$1\r\n5\r\n*1\r\n$1\r\nk\r\n"
        );
        let o = parse(&[b"SCAN", b"0", b"MATCH", b"a*", b"COUNT", b"100"])
            .ok()
            .unwrap();
        assert_eq!((o.count, o.pattern), (100, Some(&b"a*"[..])));
        assert_eq!(
            parse(&[b"SCAN", b"x"]).err().unwrap(),
            b"-ERR invalid cursor\r\n"
        );
        assert_eq!(
            parse(&[b"SCAN", b"0", b"COUNT", b"0"]).err().unwrap(),
            b"-ERR syntax error\r\n"
        );
    }
}
