//! Codis slot hashing (codis.md §1): `slot = crc32(tag) & 1023`, where the tag is
//! the bytes between the first `{` and the first `}` after it (possibly empty),
//! or the whole key when there is no such pair. IEEE CRC-32 via `crc32fast`.

/// Number of Codis slots.
pub const SLOTS: usize = 1024;
/// Mask applied to the CRC-32 (`& 0x3ff`).
pub const SLOT_MASK: u32 = (SLOTS as u32) - 1;

/// The bytes that are hashed for `key` and whether the key has a tag
/// (an empty tag `{}` still counts as a tag, codis.md §1.2).
#[inline]
pub fn hash_tag(key: &[u8]) -> (&[u8], bool) {
    if let Some(open) = memchr::memchr(b'{', key) {
        let rest = key.get(open + 1..).unwrap_or(&[]);
        if let Some(close) = memchr::memchr(b'}', rest) {
            return (rest.get(..close).unwrap_or(&[]), true);
        }
    }
    (key, false)
}

/// Full CRC-32 of the key's hash tag (Codis keeps this for the tag index).
#[inline]
pub fn tag_crc(key: &[u8]) -> u32 {
    crc32fast::hash(hash_tag(key).0)
}

/// The Codis slot (0..1023) of `key`.
#[inline]
pub fn slot_of(key: &[u8]) -> usize {
    (tag_crc(key) & SLOT_MASK) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// codis.md §1.3, every row (verified there against codis-server 3.2.11).
    const VECTORS: &[(&[u8], &[u8], u32, usize)] = &[
        (b"a", b"a", 0xe8b7be43, 579),
        (b"b", b"b", 0x71beeff9, 1017),
        (b"c", b"c", 0x06b9df6f, 879),
        (b"foo", b"foo", 0x8c736521, 289),
        (b"hello", b"hello", 0x3610a686, 646),
        (b"12345", b"12345", 0xcbf53a1c, 540),
        (b"k1", b"k1", 0x960ea0a9, 169),
        (b"counter:42", b"counter:42", 0x3fef2cf0, 240),
        (b"user:1000", b"user:1000", 0x9f7417e3, 995),
        (b"{user:1000}:name", b"user:1000", 0x9f7417e3, 995),
        (b"{user:1000}:email", b"user:1000", 0x9f7417e3, 995),
        (b"a{b}c", b"b", 0x71beeff9, 1017),
        (b"{a}{b}", b"a", 0xe8b7be43, 579),
        (b"foo{bar}{zap}", b"bar", 0x76ff8caa, 170),
        (b"a}b{c}", b"c", 0x06b9df6f, 879),
        (b"{{a}}", b"{a", 0xb7a7e30c, 780),
        (b"{}", b"", 0, 0),
        (b"abc{}def", b"", 0, 0),
        (b"foo{}{bar}", b"", 0, 0),
        (b"", b"", 0, 0),
        (b"{", b"{", 0x15d54739, 825),
        (b"}{", b"}{", 0x1c9fbdf0, 496),
        (b"{abc", b"{abc", 0x571f6051, 81),
        (b"{bar", b"{bar", 0x14c4ad39, 313),
        (b"x{y", b"x{y", 0x40b1895f, 351),
        (b"abc}", b"abc}", 0x89e965d1, 465),
        ("中文".as_bytes(), "中文".as_bytes(), 0x5a09ed37, 311),
        (b"\x00\xff", b"\x00\xff", 0x6cdbfd72, 370),
    ];

    #[test]
    fn codis_vectors() {
        for &(key, tag, crc, slot) in VECTORS {
            assert_eq!(hash_tag(key).0, tag, "tag of {key:?}");
            assert_eq!(tag_crc(key), crc, "crc of {key:?}");
            assert_eq!(slot_of(key), slot, "slot of {key:?}");
        }
    }

    #[test]
    fn tag_flag() {
        assert!(hash_tag(b"{}").1);
        assert!(hash_tag(b"a{b}").1);
        assert!(!hash_tag(b"{abc").1);
        assert!(!hash_tag(b"abc").1);
    }
}
