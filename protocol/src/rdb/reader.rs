//! The payload reader: footer checks, a structural pre-pass, then decoding
//! through the `rdb` crate fed a synthetic one-key RDB stream.
//!
//! Hostile-input guards. A payload with a correct CRC can still say anything,
//! so before the crate sees it the pre-pass ([`scan`]) walks the top-level
//! grammar of the value type and checks, without allocating:
//!
//! * every element count against the bytes left (each element needs at least
//!   one byte, a zset2 element nine), so no loop runs longer than the input;
//! * every string length against the bytes left;
//! * every LZF string's announced decompressed size against what LZF can
//!   expand its compressed bytes to (at most ~88×): the `lzf` crate allocates
//!   the announced size up front, so this is what keeps a 20-byte payload
//!   from asking for 2^60 bytes;
//! * that the value ends exactly at the footer (extra bytes = bad format).
//!
//! Inner encodings (ziplist, listpack, intset) live inside one string, whose
//! size is then bounded; the crate reads their entries through `take`-bounded
//! readers and caps capacity hints, so they cannot over-allocate either. The
//! crate call also runs under `catch_unwind` as a last line of defence.

use std::io::Read;

use rdb::{RdbDecoder, RdbValue, filter::Simple};

use super::{MAX_READ_VERSION, PayloadError, Value, crc64, types};

/// Bytes after the value: version (2) + CRC-64 (8).
const FOOTER: usize = 10;
/// LZF expands at most 264 bytes out of a 3-byte back reference; anything
/// announcing more than this ratio (plus slack) is refused before the crate
/// allocates the output buffer.
const LZF_MAX_RATIO: u64 = 96;

/// Checks the footer: at least a type byte and a footer, version at most
/// [`MAX_READ_VERSION`], matching CRC-64. Returns the version.
pub fn verify(payload: &[u8]) -> Result<u16, PayloadError> {
    if payload.len() < FOOTER {
        return Err(PayloadError::VersionOrChecksum);
    }
    let body_end = payload.len() - 8;
    let (before, crc) = payload.split_at(body_end);
    let ver = match before.get(body_end - 2..) {
        Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
        _ => return Err(PayloadError::VersionOrChecksum),
    };
    if ver > MAX_READ_VERSION {
        return Err(PayloadError::VersionOrChecksum);
    }
    let mut want = [0u8; 8];
    want.copy_from_slice(crc);
    if crc64(before) != u64::from_le_bytes(want) {
        return Err(PayloadError::VersionOrChecksum);
    }
    Ok(ver)
}

/// Verifies and decodes a payload into one value.
pub fn decode(payload: &[u8]) -> Result<Value, PayloadError> {
    verify(payload)?;
    let value = payload
        .get(..payload.len() - FOOTER)
        .ok_or(PayloadError::BadFormat)?;
    decode_value(value)
}

/// Decodes one value given as its type byte and body, exactly (an RDB
/// file's value after its key; a payload without its footer). The same
/// checks as [`decode`] apart from the footer's.
pub fn decode_value(value: &[u8]) -> Result<Value, PayloadError> {
    let (&ty, body) = value.split_first().ok_or(PayloadError::BadFormat)?;
    let declared = scan(ty, body)?;

    // Streams are read by the server's stream type (`ds::stream`), which
    // checks their nodes: handed over as the body.
    if matches!(ty, types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2) {
        return Ok(Value::Stream(ty, body.to_vec()));
    }

    // Synthetic stream: header, type byte, empty key, body, EOF opcode
    // (chained readers: the body is not copied).
    let head = [b'R', b'E', b'D', b'I', b'S', b'0', b'0', b'1', b'0', ty, 0];
    let decoded = std::panic::catch_unwind(move || {
        let stream = head.as_slice().chain(body).chain(&[0xffu8][..]);
        let mut dec = RdbDecoder::new(stream, Simple::new()).ok()?;
        let item = dec.next()?.ok()?;
        match dec.next() {
            Some(Ok(RdbValue::Checksum(rest))) if rest.is_empty() => Some(item),
            _ => None,
        }
    })
    .ok()
    .flatten()
    .ok_or(PayloadError::BadFormat)?;

    let v = match decoded {
        RdbValue::String { value, .. } => Value::Str(value),
        RdbValue::List { values, .. } => Value::List(values),
        RdbValue::Set { members, .. } => Value::Set(members),
        RdbValue::SortedSet { values, .. } => {
            Value::ZSet(values.into_iter().map(|(s, m)| (m, s)).collect())
        }
        RdbValue::Hash { values, .. } => {
            // The crate keeps hashes in a map: a plain hash announcing more
            // fields than came out repeated some (Redis refuses those).
            if ty == types::HASH && declared != Some(values.len() as u64) {
                return Err(PayloadError::BadFormat);
            }
            Value::Hash(values.into_iter().collect())
        }
        _ => return Err(PayloadError::BadFormat),
    };
    let empty = match &v {
        Value::Str(_) => false,
        Value::List(l) | Value::Set(l) => l.is_empty(),
        Value::ZSet(z) => z.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::Stream(..) => false,
    };
    if empty {
        return Err(PayloadError::BadFormat);
    }
    Ok(v)
}

/// A bounds-checked cursor over the value body.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, PayloadError>;
const BAD: PayloadError = PayloadError::BadFormat;

impl Cur<'_> {
    fn left(&self) -> u64 {
        self.b.len().saturating_sub(self.pos) as u64
    }

    fn u8(&mut self) -> R<u8> {
        let v = *self.b.get(self.pos).ok_or(BAD)?;
        self.pos += 1;
        Ok(v)
    }

    fn skip(&mut self, n: u64) -> R<()> {
        if n > self.left() {
            return Err(BAD);
        }
        self.pos += n as usize;
        Ok(())
    }

    fn be(&mut self, n: usize) -> R<u64> {
        let s = self.b.get(self.pos..self.pos + n).ok_or(BAD)?;
        self.pos += n;
        Ok(s.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    /// `rdbLoadLen`: (value, is a special string encoding).
    fn len_enc(&mut self) -> R<(u64, bool)> {
        let b = self.u8()?;
        match b >> 6 {
            0 => Ok((u64::from(b & 0x3f), false)),
            1 => Ok(((u64::from(b & 0x3f) << 8) | u64::from(self.u8()?), false)),
            3 => Ok((u64::from(b & 0x3f), true)),
            _ => match b {
                0x80 => Ok((self.be(4)?, false)),
                0x81 => Ok((self.be(8)?, false)),
                _ => Err(BAD),
            },
        }
    }

    fn len(&mut self) -> R<u64> {
        match self.len_enc()? {
            (n, false) => Ok(n),
            _ => Err(BAD),
        }
    }

    /// An element count, each element taking at least `min` bytes.
    fn count(&mut self, min: u64) -> R<u64> {
        let n = self.len()?;
        if n > self.left() / min {
            return Err(BAD);
        }
        Ok(n)
    }

    /// One RDB string: raw, integer-encoded or LZF.
    fn blob(&mut self) -> R<()> {
        match self.len_enc()? {
            (n, false) => self.skip(n),
            (0, true) => self.skip(1),
            (1, true) => self.skip(2),
            (2, true) => self.skip(4),
            (3, true) => {
                let clen = self.len()?;
                let rlen = self.len()?;
                if clen == 0
                    || rlen == 0
                    || rlen > clen.saturating_mul(LZF_MAX_RATIO).saturating_add(64)
                {
                    return Err(BAD);
                }
                self.skip(clen)
            }
            _ => Err(BAD),
        }
    }

    /// A type-3 zset score: a length byte (253..255 = nan/inf/-inf) and text.
    fn text_score(&mut self) -> R<()> {
        match self.u8()? {
            253..=255 => Ok(()),
            n => self.skip(u64::from(n)),
        }
    }
}

/// Walks the top level of a value of type `ty` and checks it fills `body`
/// exactly. Returns the announced element count for the plain collections.
pub(super) fn scan(ty: u8, body: &[u8]) -> R<Option<u64>> {
    let mut c = Cur { b: body, pos: 0 };
    let mut declared = None;
    match ty {
        types::STRING
        | types::HASH_ZIPMAP
        | types::LIST_ZIPLIST
        | types::SET_INTSET
        | types::ZSET_ZIPLIST
        | types::HASH_ZIPLIST
        | types::HASH_LISTPACK
        | types::ZSET_LISTPACK => c.blob()?,
        types::LIST | types::SET | types::LIST_QUICKLIST => {
            let n = c.count(1)?;
            for _ in 0..n {
                c.blob()?;
            }
            declared = Some(n);
        }
        types::ZSET => {
            let n = c.count(2)?;
            for _ in 0..n {
                c.blob()?;
                c.text_score()?;
            }
            declared = Some(n);
        }
        types::ZSET_2 => {
            let n = c.count(9)?;
            for _ in 0..n {
                c.blob()?;
                c.skip(8)?;
            }
            declared = Some(n);
        }
        types::HASH => {
            let n = c.count(2)?;
            for _ in 0..n {
                c.blob()?;
                c.blob()?;
            }
            declared = Some(n);
        }
        types::LIST_QUICKLIST_2 => {
            let n = c.count(2)?;
            for _ in 0..n {
                if !matches!(c.len()?, 1 | 2) {
                    return Err(BAD);
                }
                c.blob()?;
            }
            declared = Some(n);
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 => {
            let v2 = ty == types::STREAM_LISTPACKS_2;
            let nodes = c.count(2)?;
            for _ in 0..nodes {
                c.blob()?;
                c.blob()?;
            }
            // Length, last ID; then first ID, max deleted ID, entries added.
            for _ in 0..if v2 { 8 } else { 3 } {
                c.len()?;
            }
            let groups = c.count(4)?;
            for _ in 0..groups {
                c.blob()?;
                for _ in 0..if v2 { 3 } else { 2 } {
                    c.len()?;
                }
                let pel = c.count(25)?;
                for _ in 0..pel {
                    c.skip(24)?;
                    c.len()?;
                }
                let consumers = c.count(10)?;
                for _ in 0..consumers {
                    c.blob()?;
                    c.skip(8)?;
                    let n = c.count(16)?;
                    c.skip(n * 16)?;
                }
            }
        }
        // Modules, Redis 7.2+ listpack sets, streams with consumers'
        // active times and 7.4+ hashes with field TTLs: not values this
        // server holds (Redis 7.0 refuses them as well).
        _ => return Err(BAD),
    }
    if c.pos != body.len() {
        return Err(BAD);
    }
    Ok(declared)
}
