//! Reply writer: appends RESP2 or RESP3 (after `HELLO 3`) replies to one
//! output buffer, so a batch of pipelined commands is answered with one write.
//! Shapes follow Redis 7.0: RESP3 nulls are `_`, maps `%`, sets `~`, doubles `,`,
//! verbatim strings `=`; in RESP2 they degrade to `$-1`/`*-1`, flat arrays and
//! bulk strings.

/// The output buffer of one connection plus its protocol version.
#[derive(Debug, Default)]
pub struct Reply {
    pub buf: Vec<u8>,
    pub resp3: bool,
}

impl Reply {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn header(&mut self, kind: u8, n: i64) {
        self.buf.push(kind);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `+text` (the text must not contain CR/LF).
    #[inline]
    pub fn simple(&mut self, s: &[u8]) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `-text`; `text` includes the error code (`ERR ...`, `WRONGTYPE ...`).
    /// CR/LF inside the text become spaces, as Redis does.
    pub fn error(&mut self, text: &[u8]) {
        self.buf.push(b'-');
        self.buf.extend(
            text.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn int(&mut self, v: i64) {
        self.header(b':', v);
    }

    #[inline]
    pub fn bulk(&mut self, s: &[u8]) {
        self.header(b'$', s.len() as i64);
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal text of `v`.
    pub fn bulk_int(&mut self, v: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(v).as_bytes());
    }

    /// Null bulk string: `$-1` (RESP2) or `_` (RESP3).
    #[inline]
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// Null array: `*-1` (RESP2) or `_` (RESP3).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    #[inline]
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map of `n` pairs (`%n` in RESP3, a flat array of 2n in RESP2).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    /// A set (`~n` in RESP3, an array in RESP2).
    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'~', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A boolean (`#t`/`#f` in RESP3, `:1`/`:0` in RESP2).
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// A double already formatted as Redis does (`%.17g`): `,text` in RESP3,
    /// a bulk string in RESP2.
    pub fn double_text(&mut self, text: &[u8]) {
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// A verbatim string (`=len\r\nfmt:text` in RESP3, bulk in RESP2); `fmt` is
    /// three bytes such as `txt`.
    pub fn verbatim(&mut self, fmt: &[u8; 3], text: &[u8]) {
        if self.resp3 {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(fmt);
            self.buf.push(b':');
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// An array of bulk strings.
    pub fn bulks<'a, I: IntoIterator<Item = &'a [u8]>>(&mut self, items: I)
    where
        I::IntoIter: ExactSizeIterator,
    {
        let it = items.into_iter();
        self.array(it.len());
        for s in it {
            self.bulk(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reply;

    #[test]
    fn resp2_and_resp3() {
        let mut r = Reply::new();
        r.ok();
        r.int(-5);
        r.bulk(b"ab");
        r.null();
        r.null_array();
        r.map(2);
        r.set(1);
        r.boolean(true);
        r.double_text(b"1.5");
        r.error(b"ERR a\r\nb");
        assert_eq!(
            r.buf,
            b"+OK\r\n:-5\r\n$2\r\nab\r\n$-1\r\n*-1\r\n*4\r\n*1\r\n:1\r\n$3\r\n1.5\r\n-ERR a  b\r\n"
        );
        let mut r = Reply {
            resp3: true,
            ..Reply::default()
        };
        r.null();
        r.null_array();
        r.map(2);
        r.set(1);
        r.boolean(false);
        r.double_text(b"inf");
        r.verbatim(b"txt", b"hi");
        assert_eq!(
            r.buf,
            b"_\r\n_\r\n%2\r\n~1\r\n#f\r\n,inf\r\n=6\r\ntxt:hi\r\n"
        );
    }
}
