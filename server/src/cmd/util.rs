//! Argument parsing helpers shared by handlers, with Redis' error texts.

use protocol::number::parse_i64;

use crate::errors::CmdError;

/// Parses an integer argument (`ERR value is not an integer or out of range`).
#[inline]
pub fn int_arg(a: &[u8]) -> Result<i64, CmdError> {
    parse_i64(a).ok_or(CmdError::NotInteger)
}

/// Parses a non-negative integer argument that must fit `usize`.
pub fn uint_arg(a: &[u8]) -> Result<u64, CmdError> {
    match parse_i64(a) {
        Some(v) if v >= 0 => Ok(v as u64),
        Some(_) => Err(CmdError::OutOfRange),
        None => Err(CmdError::NotInteger),
    }
}

/// ASCII case-insensitive comparison of an argument with a keyword.
#[inline]
pub fn is(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}
