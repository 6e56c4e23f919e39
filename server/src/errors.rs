//! Every error reply text the server sends, in one place (Redis 7.0.15 and
//! Codis texts, quoted exactly: clients compare them). Handlers return a
//! [`CmdError`]; only the execution gate turns it into bytes and counts it in
//! `INFO errorstats` by its first word.

use std::borrow::Cow;

/// A command failure. Static texts cover the common cases without allocating;
/// `Msg` carries formatted ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    WrongType,
    Syntax,
    NotInteger,
    NotFloat,
    Overflow,
    NoSuchKey,
    OutOfRange,
    InvalidExpire(&'static str),
    NoAuth,
    Static(&'static str),
    Msg(String),
}

pub type CmdResult = Result<(), CmdError>;

impl CmdError {
    pub fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            CmdError::WrongType => WRONGTYPE,
            CmdError::Syntax => SYNTAX,
            CmdError::NotInteger => NOT_INTEGER,
            CmdError::NotFloat => NOT_FLOAT,
            CmdError::Overflow => OVERFLOW,
            CmdError::NoSuchKey => NO_SUCH_KEY,
            CmdError::OutOfRange => OUT_OF_RANGE,
            CmdError::NoAuth => NOAUTH,
            CmdError::InvalidExpire(cmd) => return Cow::Owned(format!("ERR invalid expire time in '{cmd}' command")),
            CmdError::Static(s) => s,
            CmdError::Msg(s) => s.as_str(),
        })
    }

    pub fn msg(s: impl Into<String>) -> Self {
        CmdError::Msg(s.into())
    }
}

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const OUT_OF_RANGE: &str = "ERR value is out of range";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NO_PASSWORD: &str =
    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const INVALID_DB: &str = "ERR DB index is out of range";
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const INCR_NAN: &str = "ERR increment would produce NaN or Infinity";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";

/// `ERR unknown command '<name>', with args beginning with: '<a>' '<b>' `
/// (Redis truncates the name to 128 bytes and the quoted args to 128 in total).
pub fn unknown_command(argv: &[&[u8]]) -> String {
    let name = argv.first().copied().unwrap_or(b"");
    let mut s = format!("ERR unknown command '{}', with args beginning with: ", lossy(&name[..name.len().min(128)]));
    let mut used = 0usize;
    for a in argv.iter().skip(1) {
        if used >= 128 {
            break;
        }
        let take = a.len().min(128 - used);
        s.push('\'');
        s.push_str(&lossy(&a[..take]));
        s.push_str("' ");
        used += take + 3;
    }
    s
}

/// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
pub fn unknown_subcommand(container: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        lossy(&sub[..sub.len().min(128)]),
        container.to_ascii_uppercase()
    )
}

/// `ERR wrong number of arguments for '<name>' command`
pub fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// Bytes shown in an error text (Redis prints raw bytes; we keep them lossless
/// where valid UTF-8 and replace the rest).
pub fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_text() {
        assert_eq!(
            unknown_command(&[b"foo", b"a", b"b"]),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(unknown_command(&[b"foo"]), "ERR unknown command 'foo', with args beginning with: ");
        let long = vec![b'x'; 200];
        let s = unknown_command(&[b"foo", &long, b"aaaaaa"]);
        assert_eq!(s, format!("ERR unknown command 'foo', with args beginning with: '{}' ", "x".repeat(128)));
    }
}
