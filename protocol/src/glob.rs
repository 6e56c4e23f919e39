//! Redis' byte-based glob matching (`stringmatchlen` semantics), used by KEYS,
//! SCAN MATCH, CONFIG GET and (later) PSUBSCRIBE. Placeholder signature; the
//! implementation lands with its tests.

/// Whether `string` matches the glob `pattern` (bytes, optionally case-insensitive).
pub fn string_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let _ = nocase;
    pattern == b"*" || pattern == string
}
