//! The one declarative command table, shared by server and proxy.
//!
//! Every entry (`CommandSpec`) carries what Redis 7.0's `COMMAND INFO` reports
//! (arity, flags, first/last/step key positions, ACL categories, tips, key specs,
//! subcommands) plus Codis' proxy policy (codis.md §3.3). The table itself is
//! generated from a live redis-server 7.0.15 (`tools/gen_command_table.py`) so it
//! cannot drift; a meta-test re-checks it against the live server.
//!
//! From the table derive: command lookup ([`lookup`]), arity errors
//! ([`CommandSpec::arity_ok`]), key extraction ([`CommandSpec::keys`]),
//! `COMMAND` replies and per-command stats labels (`CmdId` indexes counters).

#[rustfmt::skip]
mod generated;
pub use generated::{COMMANDS, CmdId, PROXY_NOT_ALLOWED};
pub mod intro;

/// Command flags, in the order Redis 7.0 prints them in `COMMAND INFO`.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const MODULE: u32 = 1 << 3;
    pub const ADMIN: u32 = 1 << 4;
    pub const PUBSUB: u32 = 1 << 5;
    pub const NOSCRIPT: u32 = 1 << 6;
    pub const BLOCKING: u32 = 1 << 7;
    pub const LOADING: u32 = 1 << 8;
    pub const STALE: u32 = 1 << 9;
    pub const SKIP_MONITOR: u32 = 1 << 10;
    pub const SKIP_SLOWLOG: u32 = 1 << 11;
    pub const ASKING: u32 = 1 << 12;
    pub const FAST: u32 = 1 << 13;
    pub const NO_AUTH: u32 = 1 << 14;
    pub const MAY_REPLICATE: u32 = 1 << 15;
    pub const SENTINEL: u32 = 1 << 16;
    pub const ONLY_SENTINEL: u32 = 1 << 17;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 18;
    pub const PROTECTED: u32 = 1 << 19;
    pub const NO_ASYNC_LOADING: u32 = 1 << 20;
    pub const NO_MULTI: u32 = 1 << 21;
    pub const MOVABLEKEYS: u32 = 1 << 22;
    pub const ALLOW_BUSY: u32 = 1 << 23;

    /// (bit, name as `COMMAND INFO` prints it), in output order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (MODULE, "module"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (ASKING, "asking"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (SENTINEL, "sentinel"),
        (ONLY_SENTINEL, "only_sentinel"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (PROTECTED, "protected"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// What codis-proxy does with a command (codis.md §3.3, §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyPolicy {
    /// A read that may be served by a replica.
    Read,
    /// A read that must go to the master.
    MasterOnly,
    /// A write: master only.
    Write,
    /// Answered inside the proxy (PING, AUTH, SELECT, INFO, QUIT, ...).
    Local,
    /// Split per key and aggregated (MGET, MSET, DEL, EXISTS).
    Split,
    /// Refused: `ERR handle request, command '<NAME>' is not allowed`.
    NotAllow,
}

/// Where a key-spec's key search begins (Redis 7 key specs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    Index(i32),
    Keyword(&'static str, i32),
    Unknown,
}

/// How keys are found once the search has begun (Redis 7 key specs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    Range { last: i32, step: i32, limit: i32 },
    Keynum { idx: i32, first: i32, step: i32 },
    Unknown,
}

/// One key specification, as `COMMAND INFO` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// Free-text note Redis attaches to some key specs (printed first when set).
    pub notes: &'static str,
    pub flags: &'static [&'static str],
    pub begin: BeginSearch,
    pub find: FindKeys,
}

/// One command (or subcommand) of the table.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name; subcommands are `container|sub`.
    pub name: &'static str,
    /// Redis convention: positive = exact argc, negative = at least -arity.
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub acl: &'static [&'static str],
    pub tips: &'static [&'static str],
    pub key_specs: &'static [KeySpec],
    pub group: &'static str,
    pub since: &'static str,
    pub proxy: ProxyPolicy,
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// Whether `argc` (including the command name) satisfies the arity.
    #[inline]
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        if a == 0 {
            // Codis 3.2 commands registered with arity 0 take any arguments.
            true
        } else if a > 0 {
            argc == a as usize
        } else {
            argc >= a.unsigned_abs() as usize
        }
    }

    #[inline]
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// The part after `|` for subcommands, the whole name otherwise.
    pub fn short_name(&self) -> &'static str {
        match self.name.split_once('|') {
            Some((_, sub)) => sub,
            None => self.name,
        }
    }

    /// Finds a subcommand by (any-case) name.
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        self.subcommands
            .iter()
            .find(|s| s.short_name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Argument indexes of the keys of `argv` according to first/last/step
    /// (the legacy range that `COMMAND INFO` reports). Out-of-range positions are
    /// skipped, so a malformed argv never panics.
    pub fn key_indexes(&self, argc: usize) -> impl Iterator<Item = usize> + use<> {
        let first = self.first_key;
        let step = self.step.max(1) as usize;
        let last = if self.last_key < 0 {
            argc as i64 + self.last_key as i64
        } else {
            self.last_key as i64
        };
        let (start, end) = if first <= 0 {
            (1usize, 0usize)
        } else {
            (first as usize, last.max(0) as usize)
        };
        let end = end.min(argc.saturating_sub(1));
        (start..=end)
            .step_by(step)
            .filter(move |&i| i >= 1 && i < argc && start <= end)
    }

    /// Calls `f` with the argument index of every key of `argv`: the legacy
    /// range for commands with fixed key positions, the key specs (Redis'
    /// `getKeysUsingKeySpecs`) for `movablekeys` commands (LMPOP, ZUNIONSTORE
    /// …). A malformed keynum yields the keys found before it; never panics,
    /// never allocates. Lock plans and the migration gate use this.
    pub fn for_each_key_pos<A: AsRef<[u8]>>(&self, argv: &[A], mut f: impl FnMut(usize)) {
        if !self.has(flags::MOVABLEKEYS) {
            self.key_indexes(argv.len()).for_each(f);
            return;
        }
        self.for_each_spec_key(argv, |i, _| f(i));
    }

    /// Calls `f` with the argument index of every key the key specs find in
    /// `argv` and the spec that found it (Redis' `getKeysUsingKeySpecs`;
    /// COMMAND GETKEYS). Returns false when a keynum argument is missing or
    /// not a count, or a spec's keys fall outside `argv` (the keys found
    /// before it were passed to `f`).
    pub fn for_each_spec_key<A: AsRef<[u8]>>(
        &self,
        argv: &[A],
        mut f: impl FnMut(usize, &'static KeySpec),
    ) -> bool {
        let argc = argv.len() as i64;
        for ks in self.key_specs {
            let first: i64 = match ks.begin {
                BeginSearch::Index(i) => i as i64,
                BeginSearch::Keyword(kw, from) => {
                    let from = from as i64;
                    let is_kw = |i: &i64| {
                        argv[*i as usize]
                            .as_ref()
                            .eq_ignore_ascii_case(kw.as_bytes())
                    };
                    let hit = if from > 0 {
                        (from..argc).find(is_kw)
                    } else {
                        (1..argc + from + 1).rev().find(is_kw)
                    };
                    match hit {
                        Some(i) => i + 1,
                        None => continue,
                    }
                }
                BeginSearch::Unknown => continue,
            };
            let (first, last, step) = match ks.find {
                FindKeys::Range { last, step, limit } => {
                    let (lastkey, limit) = (last as i64, limit as i64);
                    let l = if lastkey >= 0 {
                        first + lastkey
                    } else if limit == 0 {
                        argc + lastkey
                    } else {
                        first + ((argc - first) / limit + lastkey)
                    };
                    (first, l, step as i64)
                }
                FindKeys::Keynum {
                    idx,
                    first: fk,
                    step,
                } => {
                    let at = first + idx as i64;
                    if at < 1 || at >= argc {
                        return false;
                    }
                    let Some(n) =
                        crate::number::parse_i64(argv[at as usize].as_ref()).filter(|&n| n >= 0)
                    else {
                        return false;
                    };
                    let f0 = first + fk as i64;
                    // Redis adds the count as a C int: 2^31 and more wrap.
                    (f0, f0 + i64::from(n as i32) - 1, step as i64)
                }
                FindKeys::Unknown => continue,
            };
            if last >= argc || last < first || first >= argc {
                // Out of bounds: a syntax error (a keynum past the arguments,
                // a zero count) that the command reports itself.
                return false;
            }
            let step = step.max(1);
            let mut i = first.max(1);
            while i <= last && i < argc {
                f(i as usize, ks);
                i += step;
            }
        }
        true
    }

    /// The keys of `argv` (see [`CommandSpec::key_indexes`]).
    pub fn keys<'a, A: AsRef<[u8]>>(&self, argv: &'a [A]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.key_indexes(argv.len())
            .filter_map(move |i| argv.get(i).map(|a| a.as_ref()))
    }
}

impl CmdId {
    #[inline]
    pub fn spec(self) -> &'static CommandSpec {
        &COMMANDS[self as usize]
    }
}

/// Number of top-level commands in the table.
pub fn count() -> usize {
    COMMANDS.len()
}

/// Longest command name we can look up; longer names are unknown.
const MAX_NAME: usize = 32;

/// Case-insensitive, allocation-free lookup of a top-level command.
#[inline]
pub fn lookup(name: &[u8]) -> Option<CmdId> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    generated::lookup_lower(lower)
}

/// Redis' reply to an unknown command, without the `-`: `ERR unknown
/// command '<name>', with args beginning with: '<a>' '<b>' ` (the name cut
/// at 128 bytes, the quoted arguments at 128 in all). Shared by the
/// server's and the proxy's errors modules.
pub fn unknown_command_text(argv: &[&[u8]]) -> String {
    let name = argv.first().copied().unwrap_or(b"");
    let mut s = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&name[..name.len().min(128)])
    );
    let mut used = 0usize;
    for a in argv.iter().skip(1) {
        if used >= 128 {
            break;
        }
        let take = a.len().min(128 - used);
        s.push('\'');
        s.push_str(&String::from_utf8_lossy(&a[..take]));
        s.push_str("' ");
        used += take + 3;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_table() {
        for (i, spec) in COMMANDS.iter().enumerate() {
            let id = lookup(spec.name.as_bytes()).expect(spec.name);
            assert_eq!(id as usize, i, "{}", spec.name);
            assert_eq!(id.spec().name, spec.name);
            assert_eq!(lookup(spec.name.to_ascii_uppercase().as_bytes()), Some(id));
        }
        assert_eq!(lookup(b"nosuchcommand"), None);
        assert_eq!(lookup(&[b'a'; 100]), None);
    }

    #[test]
    fn names_unique() {
        let mut names: Vec<_> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn arity() {
        let get = lookup(b"get").unwrap().spec();
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(1));
        assert!(!get.arity_ok(3));
        let set = lookup(b"SET").unwrap().spec();
        assert!(set.arity_ok(3) && set.arity_ok(9) && !set.arity_ok(2));
    }

    #[test]
    fn key_extraction() {
        let mset = lookup(b"mset").unwrap().spec();
        let argv: Vec<&[u8]> = vec![b"mset", b"a", b"1", b"b", b"2"];
        assert_eq!(mset.keys(&argv).collect::<Vec<_>>(), vec![&b"a"[..], b"b"]);
        let del = lookup(b"del").unwrap().spec();
        let argv: Vec<&[u8]> = vec![b"del", b"a", b"b", b"c"];
        assert_eq!(del.keys(&argv).count(), 3);
        let ping = lookup(b"ping").unwrap().spec();
        assert_eq!(ping.keys(&argv).count(), 0);
        // malformed (too short) argv never panics
        assert_eq!(mset.keys(&argv[..1]).count(), 0);
        let rename = lookup(b"rename").unwrap().spec();
        assert_eq!(rename.keys(&argv[..2]).count(), 1);
    }

    #[test]
    fn subcommands() {
        let cfg = lookup(b"config").unwrap().spec();
        let get = cfg.subcommand(b"GET").unwrap();
        assert_eq!(get.name, "config|get");
        assert_eq!(get.short_name(), "get");
        assert!(cfg.subcommand(b"nope").is_none());
    }
}
