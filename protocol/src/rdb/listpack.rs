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
