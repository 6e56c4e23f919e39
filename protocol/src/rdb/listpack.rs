//! Writers of the compact blobs Redis 7.0 puts in RDB files: listpacks
//! (small hashes and zsets, quicklist 2 nodes) and intsets (small integer
//! sets). Byte layouts as Redis 7.0's listpack.c / intset.c define them;
//! the loaders that read them back live in the `rdb` crate and in Redis.
//! Written by hand: no crate writes these formats.

use crate::number::parse_i64;

/// A listpack being built: header (total bytes, element count), entries,
/// the 0xFF terminator.
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackWriter {
    pub fn new() -> ListpackWriter {
        ListpackWriter {
            buf: vec![0; 6],
            count: 0,
        }
    }

    /// Bytes so far (header included, terminator not).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends a string element (stored as an integer when it is one, as
    /// Redis does).
    pub fn push(&mut self, s: &[u8]) {
        // Redis' `lpStringToInt64` stores a string as an integer only in
        // its canonical decimal form: `string2ll`'s rule.
        match parse_i64(s) {
            Some(v) => self.push_int(v),
            None => self.push_str(s),
        }
    }

    fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let n = s.len();
        if n < 64 {
            self.buf.push(0x80 | n as u8);
        } else if n < 4096 {
            self.buf.push(0xE0 | (n >> 8) as u8);
            self.buf.push((n & 0xff) as u8);
        } else {
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        self.backlen(start);
    }

    /// Appends an integer element in the smallest encoding.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1fff;
            self.buf.push(0xC0 | (u >> 8) as u8);
            self.buf.push((u & 0xff) as u8);
        } else if (-32768..=32767).contains(&v) {
            self.buf.push(0xF1);
            self.buf.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8_388_608..=8_388_607).contains(&v) {
            self.buf.push(0xF2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            self.buf.push(0xF3);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.buf.push(0xF4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.backlen(start);
    }

    /// The entry's length (encoding + data), written backwards in 7-bit
    /// groups so the listpack can be walked from its end.
    fn backlen(&mut self, start: usize) {
        let l = (self.buf.len() - start) as u64;
        if l <= 127 {
            self.buf.push(l as u8);
        } else if l < 16383 {
            self.buf.push((l >> 7) as u8);
            self.buf.push((l & 127) as u8 | 128);
        } else if l < 2_097_151 {
            self.buf.push((l >> 14) as u8);
            self.buf.push(((l >> 7) & 127) as u8 | 128);
            self.buf.push((l & 127) as u8 | 128);
        } else if l < 268_435_455 {
            self.buf.push((l >> 21) as u8);
            self.buf.push(((l >> 14) & 127) as u8 | 128);
            self.buf.push(((l >> 7) & 127) as u8 | 128);
            self.buf.push((l & 127) as u8 | 128);
        } else {
            self.buf.push((l >> 28) as u8);
            self.buf.push(((l >> 21) & 127) as u8 | 128);
            self.buf.push(((l >> 14) & 127) as u8 | 128);
            self.buf.push(((l >> 7) & 127) as u8 | 128);
            self.buf.push((l & 127) as u8 | 128);
        }
        self.count += 1;
    }

    /// The finished listpack.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let n = if self.count < 65535 {
            self.count as u16
        } else {
            65535
        };
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

/// An intset of `members` (sorted and deduplicated here): encoding width
/// (2, 4 or 8 bytes), count, then the members little-endian.
pub fn intset(members: &mut Vec<i64>) -> Vec<u8> {
    members.sort_unstable();
    members.dedup();
    let width: u32 = if members
        .iter()
        .all(|&v| (i16::MIN as i64..=i16::MAX as i64).contains(&v))
    {
        2
    } else if members
        .iter()
        .all(|&v| (i32::MIN as i64..=i32::MAX as i64).contains(&v))
    {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + members.len() * width as usize);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for &v in members.iter() {
        out.extend_from_slice(&v.to_le_bytes()[..width as usize]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_ints_are_stored_as_ints() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for s in [
            &b""[..],
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1.0",
            b"-",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(s), None, "{:?}", s);
        }
    }

    /// Redis 7.0.15's `DUMP` of a small hash `HSET h a 1 bb hello` is type
    /// 16 with this listpack (checked against redis-server).
    #[test]
    fn listpack_bytes_as_redis() {
        let mut w = ListpackWriter::new();
        for e in [&b"a"[..], b"1", b"bb", b"hello"] {
            w.push(e);
        }
        let lp = w.finish();
        assert_eq!(
            lp,
            [
                0x17, 0, 0, 0, 4, 0, 0x81, b'a', 2, 1, 1, 0x82, b'b', b'b', 3, 0x85, b'h', b'e',
                b'l', b'l', b'o', 6, 0xff
            ]
        );
        // Every integer width, a 12-bit and a 32-bit string length.
        let mut w = ListpackWriter::new();
        for v in [5i64, -5, 4000, -30000, 8_000_000, -2_000_000_000, 1 << 40] {
            w.push_int(v);
        }
        w.push(&[b'x'; 100]);
        w.push(&[b'y'; 5000]);
        let lp = w.finish();
        assert_eq!(
            u32::from_le_bytes(lp[..4].try_into().unwrap()) as usize,
            lp.len()
        );
        assert_eq!(u16::from_le_bytes(lp[4..6].try_into().unwrap()), 9);
        assert_eq!(*lp.last().unwrap(), 0xff);
    }

    #[test]
    fn intset_widths() {
        assert_eq!(
            intset(&mut vec![3, 1, 2, 2]),
            [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]
        );
        assert_eq!(intset(&mut vec![70000])[..4], [4, 0, 0, 0]);
        assert_eq!(intset(&mut vec![1 << 40, 1])[..4], [8, 0, 0, 0]);
    }
}

/// One element of a listpack, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Elem<'_> {
    /// The integer value (strings that spell one canonically count too, as
    /// Redis' `lpGetInteger` reads them).
    pub fn int(self) -> Option<i64> {
        match self {
            Elem::Int(v) => Some(v),
            Elem::Str(s) => parse_i64(s),
        }
    }

    /// The element as bytes (integers in decimal).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Elem::Int(v) => itoa_bytes(v),
            Elem::Str(s) => s.to_vec(),
        }
    }
}

fn itoa_bytes(v: i64) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// The number of bytes of the back-length of an element `l` bytes long.
fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Decodes the element at `at` of listpack `lp`: the element and the
/// offset of the next one; None at the terminator or on a malformed
/// element.
pub fn elem_at(lp: &[u8], at: usize) -> Option<(Elem<'_>, usize)> {
    let b = *lp.get(at)?;
    let (elem, len) = if b & 0x80 == 0 {
        (Elem::Int(i64::from(b & 0x7f)), 1)
    } else if b & 0xC0 == 0x80 {
        let n = usize::from(b & 0x3f);
        (Elem::Str(lp.get(at + 1..at + 1 + n)?), 1 + n)
    } else if b & 0xE0 == 0xC0 {
        let u = (u16::from(b & 0x1f) << 8) | u16::from(*lp.get(at + 1)?);
        // 13-bit two's complement.
        let v = if u & 0x1000 != 0 {
            i64::from(u) - 0x2000
        } else {
            i64::from(u)
        };
        (Elem::Int(v), 2)
    } else if b & 0xF0 == 0xE0 {
        let n = (usize::from(b & 0x0f) << 8) | usize::from(*lp.get(at + 1)?);
        (Elem::Str(lp.get(at + 2..at + 2 + n)?), 2 + n)
    } else {
        match b {
            0xF0 => {
                let n = u32::from_le_bytes(lp.get(at + 1..at + 5)?.try_into().ok()?) as usize;
                (Elem::Str(lp.get(at + 5..at + 5 + n)?), 5 + n)
            }
            0xF1 => {
                let v = i16::from_le_bytes(lp.get(at + 1..at + 3)?.try_into().ok()?);
                (Elem::Int(i64::from(v)), 3)
            }
            0xF2 => {
                let s = lp.get(at + 1..at + 4)?;
                let v = i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8;
                (Elem::Int(i64::from(v)), 4)
            }
            0xF3 => {
                let v = i32::from_le_bytes(lp.get(at + 1..at + 5)?.try_into().ok()?);
                (Elem::Int(i64::from(v)), 5)
            }
            0xF4 => {
                let v = i64::from_le_bytes(lp.get(at + 1..at + 9)?.try_into().ok()?);
                (Elem::Int(v), 9)
            }
            _ => return None,
        }
    };
    let next = at + len + backlen_size(len);
    (next < lp.len()).then_some((elem, next))
}

/// The offset of a listpack's first element.
pub const FIRST: usize = 6;

/// The offset of the element before the one at `at` (`at` may be the
/// terminator's offset), read from that element's back-length; None before
/// the first element or on a malformed back-length.
pub fn elem_before(lp: &[u8], at: usize) -> Option<usize> {
    if at <= FIRST {
        return None;
    }
    let mut p = at - 1;
    let (mut len, mut shift) = (0usize, 0u32);
    loop {
        let b = *lp.get(p)?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
        p = p.checked_sub(1)?;
    }
    let start = at.checked_sub(backlen_size(len) + len)?;
    (start >= FIRST).then_some(start)
}

/// The element count in a listpack's header (65535: count by walking).
pub fn header_count(lp: &[u8]) -> usize {
    lp.get(4..6)
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])))
}

impl ListpackWriter {
    /// Continues an existing listpack (its elements kept, more appended
    /// with `push`, `finish` rewrites the header).
    pub fn resume(mut lp: Vec<u8>) -> ListpackWriter {
        let mut count = header_count(&lp);
        if count == 65535 {
            count = 0;
            let mut at = FIRST;
            while let Some((_, next)) = elem_at(&lp, at) {
                count += 1;
                at = next;
            }
        }
        if lp.last() == Some(&0xFF) {
            lp.pop();
        }
        if lp.len() < 6 {
            lp.resize(6, 0);
        }
        ListpackWriter { buf: lp, count }
    }
}

/// Replaces the integer element at `at` with `v` (re-encoded in place;
/// the rest moves when the encoding's size changes). Returns the offset of
/// the element after it.
pub fn replace_int(lp: &mut Vec<u8>, at: usize, v: i64) -> Option<usize> {
    let (_, next) = elem_at(lp, at)?;
    let mut w = ListpackWriter::new();
    w.push_int(v);
    let enc = &w.buf[6..];
    let new_next = at + enc.len();
    lp.splice(at..next, enc.iter().copied());
    let total = lp.len() as u32;
    lp.get_mut(..4)?.copy_from_slice(&total.to_le_bytes());
    Some(new_next)
}

#[cfg(test)]
mod reader_tests {
    use super::*;

    #[test]
    fn elements_read_back_as_written() {
        let ints = [
            0i64,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -32768,
            32767,
            40000,
            -8_388_608,
            8_388_607,
            i32::MIN as i64,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ];
        let strs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"x".to_vec(),
            vec![b'a'; 63],
            vec![b'b'; 64],
            vec![b'c'; 4095],
            vec![b'd'; 4096],
            vec![b'e'; 70000],
        ];
        let mut w = ListpackWriter::new();
        for &v in &ints {
            w.push_int(v);
        }
        for s in &strs {
            w.push(s);
        }
        let lp = w.finish();
        let mut at = FIRST;
        let mut got = Vec::new();
        while let Some((e, next)) = elem_at(&lp, at) {
            got.push(e.to_vec());
            at = next;
        }
        let want: Vec<Vec<u8>> = ints
            .iter()
            .map(|v| v.to_string().into_bytes())
            .chain(strs.iter().cloned())
            .collect();
        assert_eq!(got, want);
        assert_eq!(header_count(&lp), want.len());
        // Resuming keeps what is there.
        let mut w = ListpackWriter::resume(lp.clone());
        w.push(b"more");
        let lp2 = w.finish();
        assert_eq!(header_count(&lp2), want.len() + 1);
        assert_eq!(
            &lp2[..lp.len() - 1],
            &{
                let mut x = lp.clone();
                x.pop();
                x[..4].copy_from_slice(&(lp2.len() as u32).to_le_bytes());
                x[4..6].copy_from_slice(&((want.len() + 1) as u16).to_le_bytes());
                x
            }[..]
        );
    }

    #[test]
    fn integers_are_replaced_in_place_or_moved() {
        let mut w = ListpackWriter::new();
        w.push_int(127);
        w.push(b"tail");
        let mut lp = w.finish();
        let next = replace_int(&mut lp, FIRST, 128).unwrap();
        assert_eq!(elem_at(&lp, FIRST).unwrap().0, Elem::Int(128));
        assert_eq!(elem_at(&lp, next).unwrap().0, Elem::Str(b"tail"));
        assert_eq!(
            u32::from_le_bytes(lp[..4].try_into().unwrap()) as usize,
            lp.len()
        );
        replace_int(&mut lp, FIRST, 5).unwrap();
        assert_eq!(elem_at(&lp, FIRST).unwrap().0, Elem::Int(5));
        assert_eq!(
            u32::from_le_bytes(lp[..4].try_into().unwrap()) as usize,
            lp.len()
        );
    }
}
