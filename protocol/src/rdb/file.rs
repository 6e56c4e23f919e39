//! RDB files (Redis 7.0 `rdb.c`'s file grammar, our own code): the opcode
//! writers used by the server's snapshot writer, and [`FileReader`], a
//! streaming reader of any version 1–10 file (Redis 1.x–7.0, codis-server
//! 3.2) that yields header-level items and each key's value as raw bytes
//! (type byte + body, for the value codec), checking the trailing CRC-64.
//!
//! The reader never trusts a length: every string and element count is read
//! incrementally from the stream (no allocation larger than what is
//! actually present plus one read-ahead block), so a truncated or hostile
//! file ends in a [`FileError`], never in a panic or a huge allocation.

use std::io::Read;

use super::lzf::{self, Compressor};
use super::types;

/// The version Redis 7.0 writes.
pub const FILE_VERSION: u16 = 10;

pub mod opcode {
    pub const FUNCTION2: u8 = 0xF5;
    pub const FUNCTION: u8 = 0xF6;
    pub const MODULE_AUX: u8 = 0xF7;
    pub const IDLE: u8 = 0xF8;
    pub const FREQ: u8 = 0xF9;
    pub const AUX: u8 = 0xFA;
    pub const RESIZEDB: u8 = 0xFB;
    pub const EXPIRETIME_MS: u8 = 0xFC;
    pub const EXPIRETIME: u8 = 0xFD;
    pub const SELECTDB: u8 = 0xFE;
    pub const EOF: u8 = 0xFF;
}

use super::writer::write_len;

/// `REDIS0010`.
pub fn write_header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"REDIS0010");
}

/// An RDB string as Redis writes one (`rdbSaveRawString`): a canonical
/// integer of at most 11 characters that fits 32 bits as int8/16/32; with a
/// compressor, a string over 20 bytes as LZF when that saves at least 4
/// bytes; otherwise length + bytes.
pub fn write_string(out: &mut Vec<u8>, s: &[u8], lzf: Option<&mut Compressor>) {
    if s.len() <= 11
        && let Some(v) = crate::number::parse_i64(s)
    {
        if let Ok(b) = i8::try_from(v) {
            out.extend_from_slice(&[0xC0, b as u8]);
            return;
        }
        if let Ok(h) = i16::try_from(v) {
            out.push(0xC1);
            out.extend_from_slice(&h.to_le_bytes());
            return;
        }
        if let Ok(w) = i32::try_from(v) {
            out.push(0xC2);
            out.extend_from_slice(&w.to_le_bytes());
            return;
        }
    }
    if let Some(c) = lzf
        && s.len() > 20
    {
        // Header first (its size depends on the compressed length, known
        // only afterwards): compress after a scratch gap, then move.
        let at = out.len();
        if let Some(clen) = c.compress(s, out, s.len() - 4) {
            let mut head = Vec::with_capacity(12);
            head.push(0xC3);
            write_len(&mut head, clen as u64);
            write_len(&mut head, s.len() as u64);
            out.splice(at..at, head);
            return;
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// An AUX field (strings as [`write_string`], no compression).
pub fn write_aux(out: &mut Vec<u8>, key: &str, val: &[u8]) {
    out.push(opcode::AUX);
    write_string(out, key.as_bytes(), None);
    write_string(out, val, None);
}

pub fn write_select_db(out: &mut Vec<u8>, db: u64) {
    out.push(opcode::SELECTDB);
    write_len(out, db);
}

pub fn write_resize_db(out: &mut Vec<u8>, keys: u64, expires: u64) {
    out.push(opcode::RESIZEDB);
    write_len(out, keys);
    write_len(out, expires);
}

pub fn write_expire_ms(out: &mut Vec<u8>, at_ms: u64) {
    out.push(opcode::EXPIRETIME_MS);
    out.extend_from_slice(&at_ms.to_le_bytes());
}

pub fn write_idle(out: &mut Vec<u8>, secs: u64) {
    out.push(opcode::IDLE);
    write_len(out, secs);
}

pub fn write_freq(out: &mut Vec<u8>, counter: u8) {
    out.push(opcode::FREQ);
    out.push(counter);
}

/// The EOF opcode; the caller appends the CRC-64 of everything before it
/// and this byte (little-endian), or 8 zero bytes without `rdbchecksum`.
pub fn write_eof(out: &mut Vec<u8>) {
    out.push(opcode::EOF);
}

/// Why a file could not be read (the server maps these to Redis' log texts).
#[derive(Debug)]
pub enum FileError {
    Io(std::io::Error),
    /// Not `REDIS` at the start.
    Signature,
    /// A version outside 1..=10.
    Version(u32),
    /// The file ends in the middle of an item.
    UnexpectedEof,
    /// Malformed content, with what was wrong.
    Corrupt(String),
    /// The trailing CRC-64 does not match.
    Checksum {
        expected: u64,
        got: u64,
    },
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Io(e) => write!(f, "{e}"),
            FileError::Signature => f.write_str("Wrong signature trying to load DB from file"),
            FileError::Version(v) => write!(f, "Can't handle RDB format version {v}"),
            FileError::UnexpectedEof => f.write_str("Unexpected EOF reading RDB file"),
            FileError::Corrupt(w) => f.write_str(w),
            FileError::Checksum { expected, got } => write!(
                f,
                "Wrong RDB checksum expected: ({expected:x}) but got ({got:x}). Aborting now."
            ),
        }
    }
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FileError::UnexpectedEof
        } else {
            FileError::Io(e)
        }
    }
}

type R<T> = Result<T, FileError>;

fn corrupt<T>(what: &str) -> R<T> {
    Err(FileError::Corrupt(what.to_string()))
}

/// One key as the file holds it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileKey {
    /// Absolute expiry in ms (EXPIRETIME seconds converted).
    pub expire_ms: Option<i64>,
    pub idle_secs: Option<u64>,
    pub freq: Option<u8>,
    pub key: Vec<u8>,
    /// Type byte followed by the body, exactly as in the file, for the
    /// compact encodings (ziplist, listpack, intset, quicklist: the value
    /// codec decodes them); empty when [`FileKey::decoded`] is set.
    pub value: Vec<u8>,
    /// Strings and the plain collections (list, set, hash, zset with text or
    /// binary scores), decoded here in one pass. A hash or set may repeat
    /// members: the caller refuses those.
    pub decoded: Option<super::Value>,
}

/// What the file says next.
#[derive(Debug, PartialEq)]
pub enum Item {
    Aux(Vec<u8>, Vec<u8>),
    SelectDb(u64),
    ResizeDb(u64, u64),
    Key(FileKey),
    /// A function library (Redis 7.0 FUNCTION2 / 7.0 RC FUNCTION): the code.
    Function(Vec<u8>),
    /// The end, checksum verified (or absent: versions below 5, or zero).
    Eof,
}

type Digest = crc::Digest<'static, u64, crc::Table<16>>;

/// Streaming reader. `next_item` until [`Item::Eof`].
pub struct FileReader<Rd: Read> {
    src: Rd,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Bytes before `crc_from` in `buf` are already in the digest.
    crc_from: usize,
    crc: Digest,
    version: u16,
    /// Bytes consumed so far (for error offsets and progress).
    consumed: u64,
    done: bool,
}

const BLOCK: usize = 1 << 20;

/// One RDB string at the start of `b` (raw, integer-encoded or LZF, as
/// [`FileReader`] reads them; e.g. a FUNCTION DUMP payload's library
/// code): the decoded bytes and how many bytes of `b` it took.
pub fn read_string(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    // A small buffer whatever follows the string in `b`: a stream body
    // reads thousands of strings from one big slice, and a buffer the size
    // of the rest made that quadratic.
    const STRING_BLOCK: usize = 4096;
    let mut r = FileReader::headless(b, b.len().clamp(1, STRING_BLOCK));
    let s = r.string().ok()?;
    Some((s, usize::try_from(r.consumed).ok()?))
}

impl<Rd: Read> FileReader<Rd> {
    /// A reader of `src` with a `block`-byte buffer that has read no
    /// header (yet).
    fn headless(src: Rd, block: usize) -> FileReader<Rd> {
        static CRC: crc::Crc<u64, crc::Table<16>> =
            crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);
        FileReader {
            src,
            buf: vec![0; block],
            pos: 0,
            end: 0,
            crc_from: 0,
            crc: CRC.digest(),
            version: 0,
            consumed: 0,
            done: false,
        }
    }

    /// Reads and checks the header.
    pub fn new(src: Rd) -> R<FileReader<Rd>> {
        let mut r = FileReader::headless(src, BLOCK);
        let mut head = [0u8; 9];
        r.read_exact(&mut head)?;
        if &head[..5] != b"REDIS" {
            return Err(FileError::Signature);
        }
        let ver = std::str::from_utf8(&head[5..])
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        if !(1..=u32::from(super::MAX_READ_VERSION)).contains(&ver) {
            return Err(FileError::Version(ver));
        }
        r.version = ver as u16;
        Ok(r)
    }

    pub fn version(&self) -> u16 {
        self.version
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.consumed
    }

    fn fill(&mut self) -> R<bool> {
        self.crc.update(&self.buf[self.crc_from..self.pos]);
        let keep = self.end - self.pos;
        self.buf.copy_within(self.pos..self.end, 0);
        self.pos = 0;
        self.end = keep;
        self.crc_from = 0;
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn u8(&mut self) -> R<u8> {
        if self.pos == self.end && !self.fill()? {
            return Err(FileError::UnexpectedEof);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        self.consumed += 1;
        Ok(b)
    }

    fn read_exact(&mut self, out: &mut [u8]) -> R<()> {
        let mut got = 0;
        while got < out.len() {
            if self.pos == self.end && !self.fill()? {
                return Err(FileError::UnexpectedEof);
            }
            let n = (self.end - self.pos).min(out.len() - got);
            out[got..got + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            got += n;
        }
        self.consumed += out.len() as u64;
        Ok(())
    }

    /// Appends `n` bytes to `out`, growing it only as bytes arrive.
    fn take(&mut self, n: u64, out: &mut Vec<u8>) -> R<()> {
        let mut left = n;
        while left > 0 {
            if self.pos == self.end && !self.fill()? {
                return Err(FileError::UnexpectedEof);
            }
            let k = ((self.end - self.pos) as u64).min(left) as usize;
            out.extend_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            left -= k as u64;
        }
        self.consumed += n;
        Ok(())
    }

    fn u64_le(&mut self) -> R<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// `rdbLoadLen`, also copying the raw bytes to `copy`.
    fn len_enc(&mut self, copy: Option<&mut Vec<u8>>) -> R<(u64, bool)> {
        let b = self.u8()?;
        let mut raw = [b, 0, 0, 0, 0, 0, 0, 0, 0];
        let (v, enc, used) = match b >> 6 {
            0 => (u64::from(b & 0x3f), false, 1),
            1 => {
                let c = self.u8()?;
                raw[1] = c;
                ((u64::from(b & 0x3f) << 8) | u64::from(c), false, 2)
            }
            3 => (u64::from(b & 0x3f), true, 1),
            _ => match b {
                0x80 => {
                    self.read_exact(&mut raw[1..5])?;
                    (
                        u64::from(u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]])),
                        false,
                        5,
                    )
                }
                0x81 => {
                    self.read_exact(&mut raw[1..9])?;
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&raw[1..9]);
                    (u64::from_be_bytes(w), false, 9)
                }
                _ => return corrupt("Unknown length encoding in rdbLoadLen()"),
            },
        };
        if let Some(c) = copy {
            c.extend_from_slice(&raw[..used]);
        }
        Ok((v, enc))
    }

    fn len(&mut self, copy: Option<&mut Vec<u8>>) -> R<u64> {
        match self.len_enc(copy)? {
            (n, false) => Ok(n),
            _ => corrupt("Unexpected string encoding where a length was expected"),
        }
    }

    /// One RDB string, decoded.
    fn string(&mut self) -> R<Vec<u8>> {
        let mut out = Vec::new();
        match self.len_enc(None)? {
            (n, false) => self.take(n, &mut out)?,
            (0, true) => {
                let v = self.u8()? as i8;
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            }
            (1, true) => {
                let mut b = [0u8; 2];
                self.read_exact(&mut b)?;
                out.extend_from_slice(itoa::Buffer::new().format(i16::from_le_bytes(b)).as_bytes());
            }
            (2, true) => {
                let mut b = [0u8; 4];
                self.read_exact(&mut b)?;
                out.extend_from_slice(itoa::Buffer::new().format(i32::from_le_bytes(b)).as_bytes());
            }
            (3, true) => {
                let clen = self.len(None)?;
                let rlen = self.len(None)?;
                if clen == 0 || rlen == 0 || rlen > clen.saturating_mul(96).saturating_add(64) {
                    return corrupt("Invalid LZF compressed string");
                }
                let mut c = Vec::new();
                self.take(clen, &mut c)?;
                out = match lzf::decompress(&c, rlen as usize) {
                    Some(v) => v,
                    None => return corrupt("Invalid LZF compressed string"),
                };
            }
            _ => return corrupt("Unknown RDB string encoding type"),
        }
        Ok(out)
    }

    /// One RDB string copied raw (encoding kept) onto `out`.
    fn copy_string(&mut self, out: &mut Vec<u8>) -> R<()> {
        match self.len_enc(Some(out))? {
            (n, false) => self.take(n, out),
            (0, true) => self.take(1, out),
            (1, true) => self.take(2, out),
            (2, true) => self.take(4, out),
            (3, true) => {
                let clen = self.len(Some(out))?;
                self.len(Some(out))?;
                self.take(clen, out)
            }
            _ => corrupt("Unknown RDB string encoding type"),
        }
    }

    /// A value's body copied raw onto `out` (the value codec decodes it).
    fn copy_value(&mut self, ty: u8, out: &mut Vec<u8>) -> R<()> {
        match ty {
            types::HASH_ZIPMAP
            | types::LIST_ZIPLIST
            | types::SET_INTSET
            | types::ZSET_ZIPLIST
            | types::HASH_ZIPLIST
            | types::HASH_LISTPACK
            | types::ZSET_LISTPACK => self.copy_string(out),
            types::LIST | types::SET | types::LIST_QUICKLIST => {
                let n = self.len(Some(out))?;
                for _ in 0..n {
                    self.copy_string(out)?;
                }
                Ok(())
            }
            types::ZSET => {
                let n = self.len(Some(out))?;
                for _ in 0..n {
                    self.copy_string(out)?;
                    let l = self.u8()?;
                    out.push(l);
                    if l < 253 {
                        self.take(u64::from(l), out)?;
                    }
                }
                Ok(())
            }
            types::ZSET_2 => {
                let n = self.len(Some(out))?;
                for _ in 0..n {
                    self.copy_string(out)?;
                    self.take(8, out)?;
                }
                Ok(())
            }
            types::HASH => {
                let n = self.len(Some(out))?;
                for _ in 0..n {
                    self.copy_string(out)?;
                    self.copy_string(out)?;
                }
                Ok(())
            }
            types::LIST_QUICKLIST_2 => {
                let n = self.len(Some(out))?;
                for _ in 0..n {
                    let container = self.len(Some(out))?;
                    if !matches!(container, 1 | 2) {
                        return corrupt("Quicklist integrity check failed.");
                    }
                    self.copy_string(out)?;
                }
                Ok(())
            }
            types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 => {
                let v2 = ty == types::STREAM_LISTPACKS_2;
                let nodes = self.len(Some(out))?;
                for _ in 0..nodes {
                    self.copy_string(out)?;
                    self.copy_string(out)?;
                }
                for _ in 0..if v2 { 8 } else { 3 } {
                    self.len(Some(out))?;
                }
                let groups = self.len(Some(out))?;
                for _ in 0..groups {
                    self.copy_string(out)?;
                    for _ in 0..if v2 { 3 } else { 2 } {
                        self.len(Some(out))?;
                    }
                    let pel = self.len(Some(out))?;
                    for _ in 0..pel {
                        self.take(24, out)?;
                        self.len(Some(out))?;
                    }
                    let consumers = self.len(Some(out))?;
                    for _ in 0..consumers {
                        self.copy_string(out)?;
                        self.take(8, out)?;
                        let n = self.len(Some(out))?;
                        self.take(n.saturating_mul(16), out)?;
                    }
                }
                Ok(())
            }
            21 => corrupt("Streams with consumers' active times (Redis 7.2+) are not supported"),
            6 | 7 => corrupt("Module values are not supported by this server"),
            _ => Err(FileError::Corrupt(format!(
                "Unknown RDB encoding type {ty}"
            ))),
        }
    }

    /// An element count: each element takes at least one byte, so a count
    /// is only a capacity hint up to what a read-ahead block can hold.
    fn count(&mut self) -> R<(u64, usize)> {
        let n = self.len(None)?;
        Ok((n, n.min(BLOCK as u64) as usize))
    }

    /// A text score (type 3): length byte, 253/254/255 = nan/+inf/-inf.
    fn text_score(&mut self) -> R<f64> {
        let l = self.u8()?;
        let v = match l {
            253 => f64::NAN,
            254 => f64::INFINITY,
            255 => f64::NEG_INFINITY,
            n => {
                let mut t = Vec::new();
                self.take(u64::from(n), &mut t)?;
                match std::str::from_utf8(&t)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    Some(v) => v,
                    None => return corrupt("Invalid zset score"),
                }
            }
        };
        Ok(v)
    }

    /// Strings and plain collections, decoded; `None` for other types.
    fn plain_value(&mut self, ty: u8) -> R<Option<super::Value>> {
        use super::Value;
        Ok(Some(match ty {
            types::STRING => Value::Str(self.string()?),
            types::LIST | types::SET => {
                let (n, hint) = self.count()?;
                let mut v = Vec::with_capacity(hint);
                for _ in 0..n {
                    v.push(self.string()?);
                }
                if ty == types::LIST {
                    Value::List(v)
                } else {
                    Value::Set(v)
                }
            }
            types::HASH => {
                let (n, hint) = self.count()?;
                let mut v = Vec::with_capacity(hint);
                for _ in 0..n {
                    let f = self.string()?;
                    v.push((f, self.string()?));
                }
                Value::Hash(v)
            }
            types::ZSET | types::ZSET_2 => {
                let (n, hint) = self.count()?;
                let mut v = Vec::with_capacity(hint);
                for _ in 0..n {
                    let m = self.string()?;
                    let sc = if ty == types::ZSET_2 {
                        f64::from_le_bytes(self.u64_le()?.to_le_bytes())
                    } else {
                        self.text_score()?
                    };
                    v.push((m, sc));
                }
                Value::ZSet(v)
            }
            _ => return Ok(None),
        }))
    }

    /// The next item.
    pub fn next_item(&mut self) -> R<Item> {
        if self.done {
            return Ok(Item::Eof);
        }
        let mut key = FileKey::default();
        loop {
            let op = self.u8()?;
            match op {
                opcode::EXPIRETIME => {
                    let mut b = [0u8; 4];
                    self.read_exact(&mut b)?;
                    key.expire_ms = Some(i64::from(i32::from_le_bytes(b)) * 1000);
                }
                opcode::EXPIRETIME_MS => {
                    let v = self.u64_le()?;
                    // Versions before 9 (Redis < 5.0) wrote it in host order
                    // (little-endian on every platform that ran them).
                    key.expire_ms = Some(v as i64);
                }
                opcode::FREQ => key.freq = Some(self.u8()?),
                opcode::IDLE => key.idle_secs = Some(self.len(None)?),
                opcode::EOF => {
                    self.done = true;
                    if self.version >= 5 {
                        self.crc.update(&self.buf[self.crc_from..self.pos]);
                        self.crc_from = self.pos;
                        let expected = self.crc.clone().finalize();
                        let got = self.u64_le()?;
                        if got != 0 && got != expected {
                            return Err(FileError::Checksum { expected, got });
                        }
                    }
                    return Ok(Item::Eof);
                }
                opcode::SELECTDB => return Ok(Item::SelectDb(self.len(None)?)),
                opcode::RESIZEDB => {
                    let a = self.len(None)?;
                    let b = self.len(None)?;
                    return Ok(Item::ResizeDb(a, b));
                }
                opcode::AUX => {
                    let k = self.string()?;
                    let v = self.string()?;
                    return Ok(Item::Aux(k, v));
                }
                opcode::MODULE_AUX => {
                    return corrupt(
                        "The RDB file contains module AUX data, but no module is loaded",
                    );
                }
                opcode::FUNCTION2 => return Ok(Item::Function(self.string()?)),
                opcode::FUNCTION => {
                    // Redis 7.0 release candidates: name, engine, an
                    // optional description, then the code.
                    self.string()?;
                    self.string()?;
                    if self.len(None)? != 0 {
                        self.string()?;
                    }
                    return Ok(Item::Function(self.string()?));
                }
                ty => {
                    key.key = self.string()?;
                    match self.plain_value(ty)? {
                        Some(v) => key.decoded = Some(v),
                        None => {
                            key.value.push(ty);
                            self.copy_value(ty, &mut key.value)?;
                        }
                    }
                    return Ok(Item::Key(key));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_as_redis_writes_them() {
        let enc = |s: &[u8], z: bool| {
            let mut out = Vec::new();
            let mut c = Compressor::default();
            write_string(&mut out, s, if z { Some(&mut c) } else { None });
            out
        };
        assert_eq!(enc(b"12", false), [0xC0, 12]);
        assert_eq!(enc(b"-128", false), [0xC0, 0x80]);
        assert_eq!(enc(b"300", false), [0xC1, 0x2c, 0x01]);
        assert_eq!(enc(b"-2147483648", false), [0xC2, 0, 0, 0, 0x80]);
        assert_eq!(enc(b"2147483648", false)[0], 10);
        assert_eq!(enc(b"012", false), [3, b'0', b'1', b'2']);
        assert_eq!(enc(b"-0", false), [2, b'-', b'0']);
        assert_eq!(enc(b"", false), [0]);
        let long = b"abcabcabcabcabcabcabcabcabcabc";
        assert_eq!(enc(long, true)[0], 0xC3);
        assert_eq!(enc(long, false)[0], 30);
        // Each form reads back.
        for s in [
            &b"12"[..],
            b"-128",
            b"300",
            b"-2147483648",
            b"012",
            long,
            b"",
        ] {
            for z in [false, true] {
                let mut f = Vec::new();
                write_header(&mut f);
                f.push(types::STRING);
                write_string(&mut f, b"k", None);
                f.extend_from_slice(&enc(s, z));
                write_eof(&mut f);
                f.extend_from_slice(&super::super::crc64(&f).to_le_bytes());
                let mut r = FileReader::new(f.as_slice()).unwrap();
                match r.next_item().unwrap() {
                    Item::Key(k) => {
                        assert_eq!(k.decoded, Some(super::super::Value::Str(s.to_vec())))
                    }
                    other => panic!("{other:?}"),
                }
                assert_eq!(r.next_item().unwrap(), Item::Eof);
                // And alone, followed by more bytes (read_string).
                let mut alone = enc(s, z);
                let n = alone.len();
                alone.extend_from_slice(b"rest");
                assert_eq!(read_string(&alone), Some((s.to_vec(), n)));
                assert_eq!(read_string(&alone[..n - 1]), None, "truncated");
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut f = Vec::new();
        write_header(&mut f);
        write_aux(&mut f, "redis-ver", b"7.0.15");
        write_select_db(&mut f, 0);
        write_resize_db(&mut f, 2, 1);
        write_expire_ms(&mut f, 1234);
        f.push(types::LIST);
        write_string(&mut f, b"l", None);
        write_len(&mut f, 2);
        write_string(&mut f, b"a", None);
        write_string(&mut f, b"bb", None);
        f.push(types::STRING);
        write_string(&mut f, b"s", None);
        write_string(&mut f, &b"x".repeat(100), Some(&mut Compressor::default()));
        write_eof(&mut f);
        f.extend_from_slice(&super::super::crc64(&f).to_le_bytes());
        let all = |b: &[u8]| -> R<Vec<Item>> {
            let mut r = FileReader::new(b)?;
            let mut v = Vec::new();
            loop {
                let i = r.next_item()?;
                if i == Item::Eof {
                    return Ok(v);
                }
                v.push(i);
            }
        };
        let items = all(&f).unwrap();
        assert_eq!(items.len(), 5);
        match &items[3] {
            Item::Key(k) => {
                assert_eq!(k.expire_ms, Some(1234));
                assert_eq!(
                    k.decoded,
                    Some(super::super::Value::List(vec![
                        b"a".to_vec(),
                        b"bb".to_vec()
                    ]))
                );
            }
            o => panic!("{o:?}"),
        }
        for cut in 0..f.len() {
            assert!(all(&f[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 12] ^= 1;
        assert!(all(&bad).is_err());
        let mut zero = f.clone();
        zero[n - 8..].fill(0);
        assert!(all(&zero).is_ok(), "a zero checksum is not checked");
        assert!(matches!(
            FileReader::new(&b"REDIS0011"[..]),
            Err(FileError::Version(11))
        ));
        assert!(matches!(
            FileReader::new(&b"RADIS0010"[..]),
            Err(FileError::Signature)
        ));
    }
}
