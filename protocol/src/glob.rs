//! Redis' byte-based glob matching, used by KEYS, SCAN MATCH, CONFIG GET,
//! PSUBSCRIBE, COMMAND LIST FILTERBY PATTERN and friends.
//!
//! Mirrors Redis 7.0's `stringmatchlen` exactly, quirks included:
//!
//! * `*` matches any run of bytes, `?` exactly one byte, `\x` the byte `x`
//!   (a trailing lone `\` is a literal backslash).
//! * `[...]` is a byte class: `^` right after `[` negates it; `a-z` is an
//!   inclusive range whose bounds are swapped when reversed and compared as
//!   C's *signed* `char` (so bytes `0x80..=0xff` sort before `0x00`); `\x`
//!   inside a class matches `x` case-sensitively even under `nocase`; an
//!   unterminated `[` takes the rest of the pattern as its class; `[]` never
//!   matches and `[^]` matches any byte.
//! * A non-empty pattern never matches the empty string, not even `*`
//!   (Redis' KEYS and SCAN special-case the exact pattern `*` before calling
//!   the matcher; see [`is_match_all`]).
//! * `nocase` folds ASCII letters only.
//!
//! Redis recurses once per `*` and gives up as soon as a `*` has tried every
//! remaining suffix ("skip longer matches"). That makes the only live
//! backtracking point the most recent `*`, so the matcher here is a loop with a
//! single saved position: O(pattern × string) time, O(1) space, no recursion.

/// Whether `string` matches the glob `pattern` (bytes, optionally
/// case-insensitive), exactly as Redis' `stringmatchlen`.
pub fn string_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    // Position in the pattern just after the most recent `*`, and the string
    // position the current attempt for that star started from.
    let mut star: Option<(usize, usize)> = None;
    let mut p = 0usize;
    let mut s = 0usize;
    loop {
        if let Some(matched) = run(pattern, string, nocase, &mut p, &mut s, &mut star) {
            return matched;
        }
        // The attempt failed before reaching another `*`: retry the latest
        // star one byte further along; once the star has tried every
        // non-empty suffix the whole match fails (Redis never lets a `*`
        // retry with an empty remainder, and skips earlier stars entirely).
        let Some((star_p, star_s)) = star else {
            return false;
        };
        let next = star_s + 1;
        if next >= string.len() {
            return false;
        }
        star = Some((star_p, next));
        p = star_p;
        s = next;
    }
}

/// Redis' KEYS and SCAN treat the exact pattern `*` as "everything" without
/// calling the matcher, which is the only way the empty key is listed.
/// Callers implementing those commands should test this first.
pub fn is_match_all(pattern: &[u8]) -> bool {
    pattern == b"*"
}

/// Matches from `(p, s)` until a result is known (`Some`) or the current
/// attempt fails (`None`, the caller backtracks to the latest star).
fn run(
    pattern: &[u8],
    string: &[u8],
    nocase: bool,
    p: &mut usize,
    s: &mut usize,
    star: &mut Option<(usize, usize)>,
) -> Option<bool> {
    while let (Some(&pc), Some(&sc)) = (pattern.get(*p), string.get(*s)) {
        match pc {
            b'*' => {
                while pattern.get(*p + 1) == Some(&b'*') {
                    *p += 1;
                }
                if *p + 1 == pattern.len() {
                    return Some(true);
                }
                *p += 1;
                *star = Some((*p, *s));
                continue;
            }
            b'?' => {}
            b'[' => {
                let (matched, next) = match_class(pattern, *p + 1, sc, nocase);
                if !matched {
                    return None;
                }
                // `next` is the index of the closing `]`, or the last index
                // of the pattern when the class is unterminated.
                *p = next;
            }
            b'\\' if *p + 1 < pattern.len() => {
                *p += 1;
                if !same_byte(pattern.get(*p).copied().unwrap_or(0), sc, nocase) {
                    return None;
                }
            }
            _ => {
                if !same_byte(pc, sc, nocase) {
                    return None;
                }
            }
        }
        *p += 1;
        *s += 1;
        if *s == string.len() {
            while pattern.get(*p) == Some(&b'*') {
                *p += 1;
            }
            break;
        }
    }
    if *p >= pattern.len() && *s == string.len() {
        Some(true)
    } else {
        None
    }
}

/// Evaluates the class starting at `i` (just after `[`) against byte `c`.
/// Returns whether it matched and the index of the byte that ends it (the `]`,
/// or the last pattern byte for an unterminated class).
fn match_class(pattern: &[u8], mut i: usize, c: u8, nocase: bool) -> (bool, usize) {
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        let Some(&pc) = pattern.get(i) else {
            // Unterminated: the class ends with the pattern.
            return (matched != negate, pattern.len().saturating_sub(1));
        };
        let remaining = pattern.len() - i;
        if pc == b'\\' && remaining >= 2 {
            i += 1;
            // Escaped bytes compare exactly, even when `nocase` is set.
            if pattern.get(i) == Some(&c) {
                matched = true;
            }
        } else if pc == b']' {
            return (matched != negate, i);
        } else if remaining >= 3 && pattern.get(i + 1) == Some(&b'-') {
            let end = pattern.get(i + 2).copied().unwrap_or(0);
            if in_range(pc, end, c, nocase) {
                matched = true;
            }
            i += 2;
        } else if same_byte(pc, c, nocase) {
            matched = true;
        }
        i += 1;
    }
}

/// Range test with C `char` semantics: bounds and byte are signed, reversed
/// bounds are swapped first and lowercased afterwards (when `nocase`).
fn in_range(start: u8, end: u8, c: u8, nocase: bool) -> bool {
    let signed = |b: u8| i32::from(b as i8);
    let (mut lo, mut hi) = (signed(start), signed(end));
    if lo > hi {
        std::mem::swap(&mut lo, &mut hi);
    }
    let mut c = signed(c);
    if nocase {
        lo = c_tolower(lo);
        hi = c_tolower(hi);
        c = c_tolower(c);
    }
    lo <= c && c <= hi
}

/// C's `tolower` in the "C" locale, on a (possibly negative) `char` value.
fn c_tolower(v: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&v) {
        v + 32
    } else {
        v
    }
}

fn same_byte(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward recursive backtracking over the same grammar (no
    /// "skip longer matches" shortcut), used as an oracle for small inputs.
    fn reference(p: &[u8], s: &[u8], nocase: bool) -> bool {
        let Some((&pc, _)) = p.split_first() else {
            return s.is_empty();
        };
        let Some((&sc, s_rest)) = s.split_first() else {
            return false;
        };
        match pc {
            b'*' => {
                let mut rest = &p[1..];
                while rest.first() == Some(&b'*') {
                    rest = &rest[1..];
                }
                if rest.is_empty() {
                    return true;
                }
                (0..s.len()).any(|k| reference(rest, &s[k..], nocase))
            }
            b'?' => reference_after_step(&p[1..], s_rest, nocase),
            b'[' => {
                let (matched, end) = match_class(p, 1, sc, nocase);
                matched && reference_after_step(&p[end + 1..], s_rest, nocase)
            }
            b'\\' if p.len() >= 2 => {
                same_byte(p[1], sc, nocase) && reference_after_step(&p[2..], s_rest, nocase)
            }
            _ => same_byte(pc, sc, nocase) && reference_after_step(&p[1..], s_rest, nocase),
        }
    }

    /// After consuming a byte: if the string is exhausted only `*`s may remain.
    fn reference_after_step(p: &[u8], s: &[u8], nocase: bool) -> bool {
        if s.is_empty() {
            return p.iter().all(|&b| b == b'*');
        }
        reference(p, s, nocase)
    }

    /// Candidate strings; every pattern below was run through `KEYS` on
    /// redis-server 7.0.15 with exactly these keys loaded.
    const KEYS: &[&[u8]] = &[
        b"",
        b"a",
        b"b",
        b"ab",
        b"ba",
        b"aa",
        b"abc",
        b"abd",
        b"aXc",
        b"a*c",
        b"a?c",
        b"a[c",
        b"a]c",
        b"a\\c",
        b"a-c",
        b"a^c",
        b"A",
        b"AB",
        b"hello",
        b"hallo",
        b"hxllo",
        b"heeeello",
        b"hllo",
        b"\\",
        b"[",
        b"]",
        b"-",
        b"^",
        b"*",
        b"?",
        b"\xe9",
        b"a\xe9",
        b"\xff",
        b"\x00",
        b"a\x00b",
        b"foo:bar",
        b"foo:baz:1",
        b"user:1000",
        b"user:",
        b"aaaaaaaaaaaaaaaaaaab",
        b"aaaaaaaaaaaaaaaaaaaa",
        b"Zz",
        b"z",
        b"_",
        b"`",
    ];

    /// (pattern, indices into `KEYS` it matches), from redis-server 7.0.15.
    /// The exact pattern `*` is left out: KEYS short-circuits it.
    const KEYS_RESULTS: &[(&[u8], &[usize])] = &[
        (b"", &[0]),
        (
            b"**",
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
            ],
        ),
        (
            b"***",
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
            ],
        ),
        (
            b"?",
            &[1, 2, 16, 23, 24, 25, 26, 27, 28, 29, 30, 32, 33, 42, 43, 44],
        ),
        (b"??", &[3, 4, 5, 17, 31, 41]),
        (b"???", &[6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 34]),
        (
            b"*?",
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
            ],
        ),
        (
            b"?*",
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
            ],
        ),
        (
            b"*?*",
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
            ],
        ),
        (b"a", &[1]),
        (
            b"a*",
            &[1, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 31, 34, 39, 40],
        ),
        (b"*a", &[1, 4, 5, 40]),
        (
            b"*a*",
            &[
                1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 19, 31, 34, 35, 36, 39, 40,
            ],
        ),
        (b"a*c", &[6, 8, 9, 10, 11, 12, 13, 14, 15]),
        (b"a?c", &[6, 8, 9, 10, 11, 12, 13, 14, 15]),
        (b"a??", &[6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 34]),
        (b"h?llo", &[18, 19, 20]),
        (b"h*llo", &[18, 19, 20, 21, 22]),
        (b"h[ae]llo", &[18, 19]),
        (b"h[^e]llo", &[19, 20]),
        (b"h[a-b]llo", &[19]),
        (b"h[b-a]llo", &[19]),
        (b"h[a-e]*llo", &[18, 19, 21]),
        (b"h*l*o", &[18, 19, 20, 21, 22]),
        (b"h*l*l*o*", &[18, 19, 20, 21, 22]),
        (b"a\\*c", &[9]),
        (b"a\\?c", &[10]),
        (b"a\\[c", &[11]),
        (b"a\\]c", &[12]),
        (b"a\\\\c", &[13]),
        (b"a\\c", &[]),
        (b"\\", &[23]),
        (b"\\\\", &[23]),
        (b"a\\", &[]),
        (b"\\a", &[1]),
        (b"\\*", &[28]),
        (b"*\\", &[23]),
        (b"a*\\", &[]),
        (b"a[*]c", &[9]),
        (b"a[?]c", &[10]),
        (b"a[[]c", &[11]),
        (b"a[]]c", &[]),
        (b"a[]c", &[]),
        (b"a[]", &[]),
        (b"a[^]c", &[6, 8, 9, 10, 11, 12, 13, 14, 15]),
        (b"a[^]", &[3, 5, 31]),
        (b"a[\\]]c", &[12]),
        (b"a[\\\\]c", &[13]),
        (b"a[\\]c", &[]),
        (b"a[\\", &[]),
        (b"[", &[]),
        (
            b"[^",
            &[1, 2, 16, 23, 24, 25, 26, 27, 28, 29, 30, 32, 33, 42, 43, 44],
        ),
        (b"[]", &[]),
        (
            b"[^]",
            &[1, 2, 16, 23, 24, 25, 26, 27, 28, 29, 30, 32, 33, 42, 43, 44],
        ),
        (b"[[]", &[24]),
        (b"[]]", &[]),
        (b"[\\]", &[25]),
        (b"[\\", &[23]),
        (b"[a", &[1]),
        (b"[ab", &[1, 2]),
        (b"[a-", &[1, 26]),
        (b"[a-]", &[1, 25, 27, 43, 44]),
        (b"[-a]", &[1, 26]),
        (b"[a-c", &[1, 2]),
        (
            b"[^a",
            &[2, 16, 23, 24, 25, 26, 27, 28, 29, 30, 32, 33, 42, 43, 44],
        ),
        (
            b"[^a-",
            &[2, 16, 23, 24, 25, 27, 28, 29, 30, 32, 33, 42, 43, 44],
        ),
        (b"a[-]c", &[14]),
        (b"a[--]c", &[]),
        (b"a[---]c", &[14]),
        (b"a[^-]c", &[6, 8, 9, 10, 11, 12, 13, 15]),
        (b"a[X-]c", &[]),
        (b"a[-X]c", &[8, 14]),
        (b"a[a-c-]*", &[3, 5, 6, 7, 14, 39, 40]),
        (b"[a-\\]]", &[]),
        (b"[\\a-c]", &[1, 26]),
        (b"[a\\-c]", &[1, 26]),
        (b"[A-Z]", &[16]),
        (b"[Z-A]", &[16]),
        (b"[a-z]", &[1, 2, 42]),
        (b"[z-a]", &[1, 2, 42]),
        (b"[A-z]", &[1, 2, 16, 23, 24, 25, 27, 42, 43, 44]),
        (b"[Z-a]", &[1, 23, 24, 25, 27, 43, 44]),
        (b"[a-Z]", &[1, 23, 24, 25, 27, 43, 44]),
        (
            b"[^A-Z]",
            &[1, 2, 23, 24, 25, 26, 27, 28, 29, 30, 32, 33, 42, 43, 44],
        ),
        (b"[0-9]*", &[]),
        (b"*[0-9]", &[36, 37]),
        (b"user:*", &[37, 38]),
        (b"user:?*", &[37]),
        (b"user:[0-9]*", &[37]),
        (b"foo:*", &[35, 36]),
        (b"foo:*:*", &[36]),
        (b"foo:ba?", &[35]),
        (b"foo:ba[rz]", &[35]),
        (b"foo:ba[^r]*", &[36]),
        (b"*:*", &[35, 36, 37, 38]),
        (b"*:*:*", &[36]),
        (b"*:", &[38]),
        (b"[\xe9]", &[30]),
        (b"[\x80-\xff]", &[30, 32]),
        (b"[\xff-\x80]", &[30, 32]),
        (
            b"[a-\xff]",
            &[1, 16, 23, 24, 25, 26, 27, 28, 29, 32, 33, 43, 44],
        ),
        (
            b"[\xff-a]",
            &[1, 16, 23, 24, 25, 26, 27, 28, 29, 32, 33, 43, 44],
        ),
        (
            b"[\x00-a]",
            &[1, 16, 23, 24, 25, 26, 27, 28, 29, 33, 43, 44],
        ),
        (b"[^\x00-a]", &[2, 30, 32, 42]),
        (b"a[\xe9]", &[31]),
        (b"*\xe9", &[30, 31]),
        (b"\xe9*", &[30]),
        (b"\xe9", &[30]),
        (b"?\x00?", &[34]),
        (b"a\x00*", &[34]),
        (b"*\x00*", &[33, 34]),
        (b"[\x00]", &[33]),
        (b"\x00", &[33]),
        (b"a*a*a*a*a*a*a*a*a*a*b", &[39]),
        (b"a*a*a*a*a*a*a*a*a*a*c", &[]),
        (b"*a*a*a*a*a*a*a*a*a*a*", &[39, 40]),
        (b"a*b", &[3, 34, 39]),
        (b"*b", &[2, 3, 34, 39]),
        (b"*ab", &[3, 39]),
        (b"a*?b", &[34, 39]),
        (b"a*??b", &[39]),
        (b"*a?", &[3, 5, 31, 35, 39, 40]),
        (b"a*a", &[5, 40]),
        (b"aa*aa", &[40]),
        (b"A", &[16]),
        (b"a[A-B]", &[]),
        (b"[aA][bB]", &[3, 17]),
        (b"Z*", &[41]),
        (b"[Y-[]*", &[24, 41]),
        (b"[_-a]", &[1, 43, 44]),
        (b"[`]", &[44]),
        (
            b"[^^]",
            &[1, 2, 16, 23, 24, 25, 26, 28, 29, 30, 32, 33, 42, 43, 44],
        ),
        (b"[\\^]", &[27]),
        (b"[a^]", &[1, 27]),
        (b"^", &[27]),
        (b"\\^", &[27]),
        (b"-", &[26]),
        (b"[-]", &[26]),
        (b"]", &[25]),
        (b"[]-]", &[]),
        (b"[]-a]", &[]),
        (b"*[", &[]),
        (b"*[]", &[]),
        (b"*]", &[25]),
        (b"[*]", &[28]),
        (b"[?]", &[29]),
        (
            b"**a**",
            &[
                1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 19, 31, 34, 35, 36, 39, 40,
            ],
        ),
        (b"?a*", &[4, 5, 19, 39, 40]),
        (b"*?c", &[6, 8, 9, 10, 11, 12, 13, 14, 15]),
        (b"a?*c", &[6, 8, 9, 10, 11, 12, 13, 14, 15]),
        (b"ab*", &[3, 6, 7]),
        (b"ab**", &[3, 6, 7]),
        (b"ab*?", &[6, 7]),
    ];

    #[test]
    fn keys_vectors_match_redis() {
        for &(pattern, expected) in KEYS_RESULTS {
            let got: Vec<usize> = KEYS
                .iter()
                .enumerate()
                .filter(|(_, k)| string_match(pattern, k, false))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(
                got,
                expected,
                "pattern {:?}",
                String::from_utf8_lossy(pattern)
            );
        }
    }

    /// Command names for the case-insensitive vectors.
    const NAMES: &[&[u8]] = &[
        b"get",
        b"getset",
        b"getex",
        b"set",
        b"setex",
        b"config|get",
        b"config|set",
        b"config",
        b"incrbyfloat",
        b"zadd",
        b"lpush",
        b"object|encoding",
        b"xadd",
        b"pfadd",
        b"hget",
    ];

    /// (pattern, indices into `NAMES` it matches with `nocase`), from
    /// `COMMAND LIST FILTERBY PATTERN` on redis-server 7.0.15.
    const NOCASE_RESULTS: &[(&[u8], &[usize])] = &[
        (b"GET", &[0]),
        (b"G?T", &[0]),
        (b"[F-H]et", &[0]),
        (b"[f-h]ET", &[0]),
        (b"[Z-a]*", &[]),
        (b"[a-Z]*", &[]),
        (b"[\\G]et", &[]),
        (b"[\\g]et", &[0]),
        (b"\\Get", &[0]),
        (b"*|GET", &[5]),
        (b"CONFIG|*", &[5, 6]),
        (b"[^G]et", &[3]),
        (b"[A-z]et", &[0, 3]),
        (b"Z*", &[9]),
        (b"*ADD", &[9, 12, 13]),
        (b"[X-Z]add", &[9, 12]),
        (b"[x-z]ADD", &[9, 12]),
        (b"[^A-F]*add", &[9, 12, 13]),
        (b"*[|]*", &[5, 6, 11]),
        (b"?ET*", &[0, 1, 2, 3, 4]),
        (b"INCRBY*", &[8]),
        (b"[G]ET", &[0]),
        (b"[g-g]ET", &[0]),
        (b"[^g]ET", &[3]),
        (b"*E[T-X]", &[0, 1, 2, 3, 4, 5, 6, 14]),
        (b"[`-h]et", &[0]),
    ];

    #[test]
    fn nocase_vectors_match_redis() {
        for &(pattern, expected) in NOCASE_RESULTS {
            let got: Vec<usize> = NAMES
                .iter()
                .enumerate()
                .filter(|(_, k)| string_match(pattern, k, true))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(
                got,
                expected,
                "pattern {:?}",
                String::from_utf8_lossy(pattern)
            );
        }
    }

    #[test]
    fn basics() {
        assert!(string_match(b"", b"", false));
        assert!(!string_match(b"", b"a", false));
        assert!(!string_match(b"*", b"", false));
        assert!(is_match_all(b"*"));
        assert!(!is_match_all(b"**"));
        assert!(string_match(b"*", b"anything", false));
        assert!(string_match(b"h?llo", b"hello", false));
        assert!(string_match(b"h*llo", b"heeeello", false));
        assert!(string_match(b"h[ae]llo", b"hallo", false));
        assert!(!string_match(b"h[^e]llo", b"hello", false));
        assert!(string_match(b"h[a-b]llo", b"hallo", false));
        assert!(string_match(b"HELLO", b"hello", true));
        assert!(!string_match(b"HELLO", b"hello", false));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let mut pattern = b"a*".repeat(30);
        pattern.push(b'b');
        let string = vec![b'a'; 1000];
        assert!(!string_match(&pattern, &string, false));

        // A megabyte of stars (and star/byte pairs) must not overflow the stack.
        let stars = vec![b'*'; 1 << 20];
        assert!(string_match(&stars, b"x", false));
        let pairs = b"*a".repeat(1 << 19);
        assert!(!string_match(&pairs, b"aaaa", false));
        let long_string = vec![b'a'; 1 << 16];
        let mut pattern = b"*a".repeat(1 << 10);
        pattern.extend_from_slice(b"*b");
        assert!(!string_match(&pattern, &long_string, false));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn agrees_with_reference(
            pattern in proptest::collection::vec(proptest::sample::select(b"ab*?[]^-\\".to_vec()), 0..10),
            string in proptest::collection::vec(proptest::sample::select(b"abAB*?[]^-\\".to_vec()), 0..8),
            nocase in any::<bool>(),
        ) {
            prop_assert_eq!(string_match(&pattern, &string, nocase), reference(&pattern, &string, nocase));
        }
    }
}
