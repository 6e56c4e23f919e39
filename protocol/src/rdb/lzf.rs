//! LZF (liblzf's format), as RDB files carry compressed strings
//! (`RDB_ENC_LZF`). Written by hand rather than through the `lzf` crate: its
//! compressor allocates and zeroes a 512 KiB hash table on every call, which
//! costs more than compressing a typical 30-byte value; here the table is a
//! reusable [`Compressor`] whose stale slots are harmless (every candidate
//! match is verified against the input before use).
//!
//! Format: a control byte below 32 starts a run of `ctrl + 1` literal bytes;
//! otherwise `ctrl >> 5` is a length (7 = extended by the next byte), the low
//! five bits and the following byte an offset, and the output copies
//! `length + 2` bytes from `offset + 1` bytes back.

const HASH_BITS: u32 = 14;
/// Back references reach at most this far.
const MAX_OFF: usize = 1 << 13;
/// Longest back reference (2 + 7 + 255).
const MAX_REF: usize = 264;
/// Longest literal run.
const MAX_LIT: usize = 32;

/// A compressor with its own hash table (reuse one per thread or save).
pub struct Compressor {
    table: Vec<u32>,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor {
            table: vec![0; 1 << HASH_BITS],
        }
    }
}

fn hash3(a: u8, b: u8, c: u8) -> usize {
    let v = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
    (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

fn literals(out: &mut Vec<u8>, mut lit: &[u8]) {
    while !lit.is_empty() {
        let n = lit.len().min(MAX_LIT);
        out.push((n - 1) as u8);
        out.extend_from_slice(&lit[..n]);
        lit = &lit[n..];
    }
}

impl Compressor {
    /// Appends the compressed form of `input` to `out` and returns its
    /// length, or `None` (with `out` as it was) when it would take more than
    /// `max` bytes.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>, max: usize) -> Option<usize> {
        let start = out.len();
        let n = input.len();
        let mut i = 0;
        let mut lit_from = 0;
        while i + 2 < n {
            let h = hash3(input[i], input[i + 1], input[i + 2]);
            let cand = self.table[h] as usize;
            self.table[h] = i as u32;
            if cand < i
                && i - cand - 1 < MAX_OFF
                && input[cand] == input[i]
                && input[cand + 1] == input[i + 1]
                && input[cand + 2] == input[i + 2]
            {
                let most = (n - i).min(MAX_REF);
                let mut len = 3;
                while len < most && input[cand + len] == input[i + len] {
                    len += 1;
                }
                literals(out, &input[lit_from..i]);
                let off = i - cand - 1;
                let l = len - 2;
                if l < 7 {
                    out.push(((l << 5) | (off >> 8)) as u8);
                } else {
                    out.push(((7 << 5) | (off >> 8)) as u8);
                    out.push((l - 7) as u8);
                }
                out.push(off as u8);
                i += len;
                lit_from = i;
                if out.len() - start > max {
                    out.truncate(start);
                    return None;
                }
            } else {
                i += 1;
            }
        }
        literals(out, &input[lit_from..]);
        let len = out.len() - start;
        if len > max {
            out.truncate(start);
            return None;
        }
        Some(len)
    }
}

/// Decompresses `input` into exactly `out_len` bytes; `None` when the data
/// is malformed or does not produce exactly that many bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input.get(i..i + n)?;
            if out.len() + n > out_len {
                return None;
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i)? as usize;
                i += 1;
            }
            let off = ((ctrl & 0x1f) << 8) + *input.get(i)? as usize + 1;
            i += 1;
            len += 2;
            if off > out.len() || out.len() + len > out_len {
                return None;
            }
            let from = out.len() - off;
            if off >= len {
                out.extend_from_within(from..from + len);
            } else {
                for k in 0..len {
                    let b = out[from + k];
                    out.push(b);
                }
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(input: &[u8]) {
        let mut c = Compressor::default();
        let mut out = vec![7u8];
        match c.compress(input, &mut out, input.len()) {
            Some(n) => {
                assert_eq!(out.len(), n + 1);
                assert_eq!(decompress(&out[1..], input.len()).unwrap(), input);
                // liblzf's own decoder (through the crate) agrees.
                if !input.is_empty() {
                    assert_eq!(lzf::decompress(&out[1..], input.len()).unwrap(), input);
                }
            }
            None => assert_eq!(out, [7u8]),
        }
    }

    #[test]
    fn round_trips() {
        round(b"");
        round(b"ab");
        round(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        round(&b"hello world ".repeat(100));
        round(
            &(0..5000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        );
        round(&vec![0u8; 100_000]);
        let mut x = 1u64;
        let noise: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        round(&noise);
        let mut mixed = noise.clone();
        mixed.extend_from_slice(&noise[..500]);
        mixed.extend(b"xyz".repeat(400));
        round(&mixed);
    }

    #[test]
    fn reads_liblzf_output() {
        let input = b"redis redis redis redis redis redis redis redis".repeat(20);
        let c = lzf::compress(&input).unwrap();
        assert_eq!(decompress(&c, input.len()).unwrap(), input);
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(decompress(&[0x20, 0x00], 3), None); // reference before start
        assert_eq!(decompress(&[0x05, b'a'], 6), None); // short literal
        assert_eq!(decompress(&[0x00, b'a'], 2), None); // wrong length
        assert_eq!(decompress(&[0x00, b'a', 0xe0], 300), None); // cut reference
    }
}
