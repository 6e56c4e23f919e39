//! The payload writer: plain RDB encodings, streamed element by element so
//! the server serializes straight from its own structures.

use super::{WRITE_VERSION, crc64, types};

/// The running checksum of a streamed payload (same CRC as [`crc64`]).
type Digest = crc::Digest<'static, u64, crc::Table<16>>;

fn digest() -> Digest {
    static CRC: crc::Crc<u64, crc::Table<16>> =
        crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);
    CRC.digest()
}

/// Appends an RDB length (`rdbSaveLen`): 6-bit, 14-bit, 32-bit or 64-bit form.
pub fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a string as a raw RDB string (length, then the bytes).
pub fn write_blob(out: &mut Vec<u8>, b: &[u8]) {
    write_len(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Builds one DUMP payload. Start with the constructor of the value's type
/// (collections take their element count), add exactly that many elements
/// with the matching method, then [`finish`](PayloadWriter::finish).
///
/// ```
/// use protocol::rdb::PayloadWriter;
/// let mut w = PayloadWriter::list(2);
/// w.elem(b"a");
/// w.elem(b"b");
/// let payload = w.finish();
/// assert_eq!(payload[0], 1);
/// ```
///
/// A big value can also be streamed: [`take_piece`](Self::take_piece) hands
/// out the bytes written so far (folding them into a running checksum) and
/// `finish` then returns only the last piece; the pieces concatenated are
/// exactly the payload `finish` would have returned in one go. A huge
/// string can be written in parts with [`string_header`](Self::string_header)
/// and [`raw`](Self::raw).
pub struct PayloadWriter {
    buf: Vec<u8>,
    /// Elements (string bytes after `string_header`) still expected
    /// (checked in debug builds).
    left: u64,
    /// Checksum of the pieces already handed out (streaming only).
    crc: Option<Digest>,
}

impl std::fmt::Debug for PayloadWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadWriter")
            .field("buffered", &self.buf.len())
            .field("left", &self.left)
            .field("streamed", &self.crc.is_some())
            .finish()
    }
}

impl PayloadWriter {
    fn start(ty: u8, len: u64) -> PayloadWriter {
        let mut buf = Vec::with_capacity(64);
        buf.push(ty);
        write_len(&mut buf, len);
        PayloadWriter {
            buf,
            left: len,
            crc: None,
        }
    }

    /// A string value (complete: call `finish` next).
    pub fn string(v: &[u8]) -> PayloadWriter {
        let mut buf = Vec::with_capacity(v.len() + 20);
        buf.push(types::STRING);
        write_blob(&mut buf, v);
        PayloadWriter {
            buf,
            left: 0,
            crc: None,
        }
    }

    /// A string value of `len` bytes whose bytes are added in parts with
    /// [`raw`](Self::raw) (same payload as [`string`](Self::string)).
    pub fn string_header(len: usize) -> PayloadWriter {
        Self::start(types::STRING, len as u64)
    }

    /// The next bytes of a string started with
    /// [`string_header`](Self::string_header).
    pub fn raw(&mut self, bytes: &[u8]) {
        debug_assert!(self.left >= bytes.len() as u64, "more bytes than announced");
        self.left = self.left.saturating_sub(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    /// Streaming: returns the bytes written since the last call (the next
    /// piece of the payload) and folds them into the running checksum. The
    /// writer keeps a buffer of the same capacity for the next piece.
    pub fn take_piece(&mut self) -> Vec<u8> {
        let cap = self.buf.capacity();
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(cap));
        self.crc.get_or_insert_with(digest).update(&piece);
        piece
    }

    /// A list of `len` elements, added with [`elem`](Self::elem).
    pub fn list(len: usize) -> PayloadWriter {
        Self::start(types::LIST, len as u64)
    }

    /// A set of `len` members, added with [`elem`](Self::elem).
    pub fn set(len: usize) -> PayloadWriter {
        Self::start(types::SET, len as u64)
    }

    /// A zset of `len` members, added with [`zelem`](Self::zelem).
    pub fn zset(len: usize) -> PayloadWriter {
        Self::start(types::ZSET, len as u64)
    }

    /// A hash of `len` fields, added with [`pair`](Self::pair).
    pub fn hash(len: usize) -> PayloadWriter {
        Self::start(types::HASH, len as u64)
    }

    /// A stream of `nodes` listpack nodes, added with
    /// [`node`](Self::node), then its counters and groups with
    /// [`stream_tail`](Self::stream_tail).
    pub fn stream(nodes: usize) -> PayloadWriter {
        Self::start(types::STREAM_LISTPACKS_2, nodes as u64)
    }

    /// One stream node: its master ID (16 big-endian bytes) and listpack.
    pub fn node(&mut self, key: &[u8], listpack: &[u8]) {
        self.took();
        write_blob(&mut self.buf, key);
        write_blob(&mut self.buf, listpack);
    }

    /// The rest of a stream's body after its nodes, already encoded.
    pub fn stream_tail(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.left, 0, "stream tail before every node");
        self.buf.extend_from_slice(bytes);
    }

    /// Reserves room for `additional` more bytes (a size hint).
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// Bytes written so far (since the last [`take_piece`](Self::take_piece)).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn took(&mut self) {
        debug_assert!(self.left > 0, "more elements than announced");
        self.left = self.left.saturating_sub(1);
    }

    /// One list element or set member.
    pub fn elem(&mut self, v: &[u8]) {
        self.took();
        write_blob(&mut self.buf, v);
    }

    /// One zset member and its score (`rdbSaveDoubleValue`: `%.17g` text,
    /// NaN / +inf / -inf as the length bytes 253 / 254 / 255).
    pub fn zelem(&mut self, member: &[u8], score: f64) {
        self.took();
        write_blob(&mut self.buf, member);
        if score.is_nan() {
            self.buf.push(253);
        } else if score.is_infinite() {
            self.buf.push(if score > 0.0 { 254 } else { 255 });
        } else {
            let at = self.buf.len();
            self.buf.push(0);
            crate::number::write_f64(&mut self.buf, score);
            let n = self.buf.len() - at - 1;
            if let Some(b) = self.buf.get_mut(at) {
                // `%.17g` of a finite double is at most 24 bytes.
                *b = n as u8;
            }
        }
    }

    /// One hash field and its value.
    pub fn pair(&mut self, field: &[u8], value: &[u8]) {
        self.took();
        write_blob(&mut self.buf, field);
        write_blob(&mut self.buf, value);
    }

    /// The value alone, without the payload footer: its type byte and body
    /// as an RDB file holds them after the key (after
    /// [`take_piece`](Self::take_piece): its last piece; the pieces are then
    /// not checksummed here).
    pub fn finish_value(self) -> Vec<u8> {
        debug_assert_eq!(self.left, 0, "fewer elements than announced");
        self.buf
    }

    /// Appends the version and the checksum and returns the payload (after
    /// [`take_piece`](Self::take_piece): its last piece).
    pub fn finish(self) -> Vec<u8> {
        debug_assert_eq!(self.left, 0, "fewer elements than announced");
        let mut buf = self.buf;
        buf.extend_from_slice(&WRITE_VERSION.to_le_bytes());
        let crc = match self.crc {
            Some(mut d) => {
                d.update(&buf);
                d.finalize()
            }
            None => crc64(&buf),
        };
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_hello_matches_redis() {
        let p = PayloadWriter::string(b"hello").finish();
        let want: Vec<u8> = [
            0x00, 0x05, b'h', b'e', b'l', b'l', b'o', 0x07, 0x00, 0x9c, 0x40, 0x0a, 0x85, 0x6d,
            0xfe, 0xf5, 0x10,
        ]
        .to_vec();
        assert_eq!(p, want);
    }

    #[test]
    fn length_forms() {
        let enc = |n: u64| {
            let mut v = Vec::new();
            write_len(&mut v, n);
            v
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(63), [63]);
        assert_eq!(enc(64), [0x40, 64]);
        assert_eq!(enc(16383), [0x7f, 0xff]);
        assert_eq!(enc(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc(u64::from(u32::MAX)), [0x80, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(enc(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn streamed_pieces_match_one_go() {
        let mut w = PayloadWriter::list(300);
        let mut one = PayloadWriter::list(300);
        let mut pieces = Vec::new();
        for i in 0..300u32 {
            let e = i.to_string().repeat(i as usize % 7);
            w.elem(e.as_bytes());
            one.elem(e.as_bytes());
            if i % 50 == 0 {
                pieces.extend(w.take_piece());
            }
        }
        pieces.extend(w.finish());
        assert_eq!(pieces, one.finish());

        let s = vec![b'x'; 100_000];
        let mut w = PayloadWriter::string_header(s.len());
        let mut pieces = w.take_piece();
        for part in s.chunks(30_000) {
            w.raw(part);
            pieces.extend(w.take_piece());
        }
        pieces.extend(w.finish());
        assert_eq!(pieces, PayloadWriter::string(&s).finish());
        assert_eq!(
            super::super::decode(&pieces),
            Ok(super::super::Value::Str(s))
        );
    }

    #[test]
    fn value_without_footer() {
        let mut w = PayloadWriter::hash(1);
        w.pair(b"f", b"v");
        assert_eq!(w.finish_value(), [4u8, 1, 1, b'f', 1, b'v']);
        let mut w = PayloadWriter::set(1);
        w.elem(b"m");
        let p = {
            let mut one = PayloadWriter::set(1);
            one.elem(b"m");
            one.finish()
        };
        assert_eq!(w.finish_value(), p[..p.len() - 10]);
    }

    #[test]
    fn zset_scores_as_text() {
        let mut w = PayloadWriter::zset(5);
        w.zelem(b"a", 1.5);
        w.zelem(b"b", f64::NAN);
        w.zelem(b"c", f64::INFINITY);
        w.zelem(b"d", f64::NEG_INFINITY);
        w.zelem(b"e", 0.1);
        let p = w.finish();
        let body = &p[..p.len() - 10];
        let mut want = vec![3u8, 5, 1, b'a', 3];
        want.extend_from_slice(b"1.5");
        want.extend_from_slice(&[1, b'b', 253, 1, b'c', 254, 1, b'd', 255, 1, b'e', 19]);
        want.extend_from_slice(b"0.10000000000000001");
        assert_eq!(body, &want[..]);
    }
}
