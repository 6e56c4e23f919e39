//! DUMP / RESTORE payloads (codis.md §2.5, crates.md §2): one serialized value
//! in an RDB value encoding, then the RDB version as 2 bytes little-endian,
//! then a CRC-64 (Jones / `CRC_64_REDIS`) of everything before it, 8 bytes LE.
//!
//! * [`PayloadWriter`] writes the **plain** encodings (type 0 string, 1 list,
//!   2 set, 3 zset with `%.17g` text scores, 4 hash) stamped version 7: both
//!   codis-server 3.2 (which refuses versions above 7) and Redis 7.0 (which
//!   converts plain encodings to its compact ones on load) accept them.
//! * [`verify`] / [`decode`] read what Redis 7.0 and codis-server 3.2 DUMP
//!   (versions up to 10: int/LZF strings, ziplist, listpack, intset,
//!   quicklist v1/v2, skiplist zsets with binary scores), decoding values
//!   through the `rdb` crate behind a structural pre-pass that bounds every
//!   length by the bytes actually present (payloads are client-controlled).
//! * The value alone (type byte and body, no footer: what an RDB file holds
//!   after a key) is written by [`PayloadWriter::finish_value`] and read by
//!   [`decode_value`].
//!
//! * [`file`]: whole RDB files (opcodes, AUX, SELECTDB, expiry; a streaming
//!   reader of versions 1–10 with the trailing CRC-64); [`lzf`]: LZF.
//!
//! Nothing here knows about the server's data structures (the server's
//! `codec` module maps its values onto these).

pub mod file;
pub mod listpack;
pub mod lzf;
mod reader;
#[cfg(test)]
mod tests;
mod writer;

pub use reader::{decode, decode_value, verify};
pub use writer::{PayloadWriter, write_blob, write_len};

/// The RDB version our payloads carry (Redis 3.2's, which codis-server needs).
pub const WRITE_VERSION: u16 = 7;
/// The newest payload version accepted (Redis 7.0's `RDB_VERSION`).
pub const MAX_READ_VERSION: u16 = 10;

/// RDB value type bytes (`RDB_TYPE_*`).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// Redis 5.0–6.2's stream.
    pub const STREAM_LISTPACKS: u8 = 15;
    /// Redis 7.0's stream (listpack nodes, then counters and groups).
    pub const STREAM_LISTPACKS_2: u8 = 19;
}

/// Why a payload was refused. Callers map these to their own reply texts
/// (`ERR DUMP payload version or checksum are wrong` / `ERR Bad data format`
/// for RESTORE, the lower-case Codis texts for SLOTSRESTORE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// Shorter than a footer, a version above [`MAX_READ_VERSION`], or a
    /// CRC-64 mismatch.
    VersionOrChecksum,
    /// The checksum is right but the body is not one well-formed value of a
    /// supported type (streams and modules included), or it is followed by
    /// extra bytes, or it is an empty collection or a plain hash with
    /// repeated fields.
    BadFormat,
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PayloadError::VersionOrChecksum => "DUMP payload version or checksum are wrong",
            PayloadError::BadFormat => "Bad data format",
        })
    }
}

impl std::error::Error for PayloadError {}

/// A decoded value. Members come in payload order; a hash has distinct
/// fields (sets and zsets may repeat members: the caller decides).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    ZSet(Vec<(Vec<u8>, f64)>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// A stream: its RDB type (15 or 19) and body, checked only for its
    /// top-level grammar.
    Stream(u8, Vec<u8>),
}

/// CRC-64 as Redis computes it for RDB files and DUMP payloads.
pub fn crc64(bytes: &[u8]) -> u64 {
    static CRC: crc::Crc<u64, crc::Table<16>> =
        crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);
    CRC.checksum(bytes)
}
