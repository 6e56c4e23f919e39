//! Commands (requests) encoded as RESP multibulks: what codis-server sends
//! to a migration target (codis.md §2.6, §2.7) and what codis-proxy sends to
//! its backends (§3.6). Replies are written with [`super::Reply`].

/// `<kind><n>\r\n`, e.g. `*3\r\n` or `$5\r\n`.
#[inline]
pub fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The header of a command of `n` arguments.
#[inline]
pub fn array(out: &mut Vec<u8>, n: usize) {
    header(out, b'*', n);
}

/// One argument.
#[inline]
pub fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// One argument written as a decimal number.
#[inline]
pub fn bulk_u64(out: &mut Vec<u8>, v: u64) {
    bulk(out, itoa::Buffer::new().format(v).as_bytes());
}

/// A whole command.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    array(out, args.len());
    for a in args {
        bulk(out, a);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_commands() {
        let mut v = Vec::new();
        super::command(&mut v, &[b"SET", b"k", b""]);
        super::bulk_u64(&mut v, 42);
        assert_eq!(v, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$2\r\n42\r\n");
    }
}
