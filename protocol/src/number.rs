//! Redis-exact number parsing/formatting. Placeholder; implementation pending.

/// Parses a signed 64-bit integer exactly as Redis' `string2ll`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}
