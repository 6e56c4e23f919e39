//! `COMMAND` introspection replies built from the shared table, for the
//! server's COMMAND and the proxy's (which filters by its policy): the
//! `COMMAND INFO` / `COMMAND DOCS` entry shapes of redis-server 7.0.15
//! (sets and maps in RESP3), `COMMAND LIST` filters and key extraction by
//! key specs (Redis' `getKeysUsingKeySpecs`).

use super::{BeginSearch, COMMANDS, CommandSpec, FindKeys, KeySpec, flags, lookup};
use crate::resp::Reply;

/// Looks a command up by name (`get`) or full subcommand name (`config|get`).
pub fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut parts = name.split(|&c| c == b'|');
    let top = lookup(parts.next()?)?.spec();
    match (parts.next(), parts.next()) {
        (None, _) => Some(top),
        (Some(sub), None) => top.subcommand(sub),
        _ => None,
    }
}

/// One `COMMAND INFO` entry.
pub fn write_info(out: &mut Reply, c: &CommandSpec) {
    out.array(10);
    out.bulk(c.name.as_bytes());
    out.int(c.arity as i64);
    let names: Vec<&str> = flags::NAMES
        .iter()
        .filter(|(bit, _)| c.flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    out.set(names.len());
    for n in names {
        out.simple(n.as_bytes());
    }
    out.int(c.first_key as i64);
    out.int(c.last_key as i64);
    out.int(c.step as i64);
    out.set(c.acl.len());
    for a in c.acl {
        out.simple(a.as_bytes());
    }
    out.set(c.tips.len());
    for t in c.tips {
        out.bulk(t.as_bytes());
    }
    out.set(c.key_specs.len());
    for ks in c.key_specs {
        write_key_spec(out, ks);
    }
    // Redis: an empty set without subcommands, an array otherwise.
    if c.subcommands.is_empty() {
        out.set(0);
    } else {
        out.array(c.subcommands.len());
    }
    for s in c.subcommands {
        write_info(out, s);
    }
}

fn write_key_spec(out: &mut Reply, ks: &KeySpec) {
    let notes = !ks.notes.is_empty();
    out.map(3 + notes as usize);
    if notes {
        out.bulk(b"notes");
        out.bulk(ks.notes.as_bytes());
    }
    out.bulk(b"flags");
    out.set(ks.flags.len());
    for f in ks.flags {
        out.simple(f.as_bytes());
    }
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    match ks.begin {
        BeginSearch::Index(i) => {
            out.bulk(b"index");
            out.bulk(b"spec");
            out.map(1);
            out.bulk(b"index");
            out.int(i as i64);
        }
        BeginSearch::Keyword(kw, from) => {
            out.bulk(b"keyword");
            out.bulk(b"spec");
            out.map(2);
            out.bulk(b"keyword");
            out.bulk(kw.as_bytes());
            out.bulk(b"startfrom");
            out.int(from as i64);
        }
        BeginSearch::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    match ks.find {
        FindKeys::Range { last, step, limit } => {
            out.bulk(b"range");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"lastkey");
            out.int(last as i64);
            out.bulk(b"keystep");
            out.int(step as i64);
            out.bulk(b"limit");
            out.int(limit as i64);
        }
        FindKeys::Keynum { idx, first, step } => {
            out.bulk(b"keynum");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"keynumidx");
            out.int(idx as i64);
            out.bulk(b"firstkey");
            out.int(first as i64);
            out.bulk(b"keystep");
            out.int(step as i64);
        }
        FindKeys::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
}

/// One `COMMAND DOCS` value: since, group and, for containers, the
/// subcommands' docs.
pub fn write_docs(out: &mut Reply, c: &CommandSpec) {
    let subs = !c.subcommands.is_empty();
    out.map(2 + subs as usize);
    out.bulk(b"since");
    out.bulk(c.since.as_bytes());
    out.bulk(b"group");
    out.bulk(c.group.as_bytes());
    if subs {
        out.bulk(b"subcommands");
        out.map(c.subcommands.len());
        for s in c.subcommands {
            out.bulk(s.name.as_bytes());
            write_docs(out, s);
        }
    }
}

/// A `COMMAND LIST` filter, parsed from `FILTERBY <kind> <value>`.
pub enum ListFilter<'a> {
    All,
    /// No modules: nothing matches.
    Module,
    AclCat(&'a [u8]),
    Pattern(&'a [u8]),
}

impl<'a> ListFilter<'a> {
    /// Parses the arguments after `LIST`; `None` is a syntax error.
    pub fn parse(args: &[&'a [u8]]) -> Option<ListFilter<'a>> {
        match args {
            [] => Some(ListFilter::All),
            [by, kind, val] if by.eq_ignore_ascii_case(b"filterby") => {
                if kind.eq_ignore_ascii_case(b"module") {
                    Some(ListFilter::Module)
                } else if kind.eq_ignore_ascii_case(b"aclcat") {
                    Some(ListFilter::AclCat(val))
                } else if kind.eq_ignore_ascii_case(b"pattern") {
                    Some(ListFilter::Pattern(val))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    pub fn keeps(&self, c: &CommandSpec) -> bool {
        match self {
            ListFilter::All => true,
            ListFilter::Module => false,
            ListFilter::AclCat(cat) => c.acl.iter().any(|a| {
                a.strip_prefix('@')
                    .is_some_and(|a| a.as_bytes().eq_ignore_ascii_case(cat))
            }),
            ListFilter::Pattern(p) => crate::glob::string_match(p, c.name.as_bytes(), true),
        }
    }
}

/// Every command and subcommand name `keep` accepts, in table order.
pub fn list_names(keep: impl Fn(&CommandSpec) -> bool) -> Vec<&'static str> {
    COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
        .filter(|c| keep(c))
        .map(|c| c.name)
        .collect()
}

/// Why `COMMAND GETKEYS` cannot answer (each binary words it).
#[derive(Debug, PartialEq, Eq)]
pub enum GetKeysError {
    InvalidCommand,
    NoKeys,
    BadArity,
    BadArgs,
}

/// The spec and key references of a full command line, as `COMMAND
/// GETKEYS` resolves them (subcommands included).
pub fn getkeys(cmd: &[&[u8]]) -> Result<(&'static CommandSpec, Vec<KeyRef>), GetKeysError> {
    let spec = cmd.first().and_then(|n| lookup(n)).map(|id| id.spec());
    let spec = match spec {
        Some(top) if !top.subcommands.is_empty() => cmd.get(1).and_then(|s| top.subcommand(s)),
        other => other,
    };
    let Some(spec) = spec else {
        return Err(GetKeysError::InvalidCommand);
    };
    if spec.key_specs.is_empty() {
        return Err(GetKeysError::NoKeys);
    }
    if !spec.arity_ok(cmd.len()) {
        return Err(GetKeysError::BadArity);
    }
    let keys = keys_from_specs(spec, cmd).unwrap_or_default();
    if keys.is_empty() && !spec.has(flags::NO_MANDATORY_KEYS) {
        return Err(GetKeysError::BadArgs);
    }
    Ok((spec, keys))
}

/// Writes a GETKEYS / GETKEYSANDFLAGS reply for `keys` of `cmd`.
pub fn write_keys(out: &mut Reply, cmd: &[&[u8]], keys: Vec<KeyRef>, with_flags: bool) {
    out.array(keys.len());
    for k in keys {
        let key = cmd.get(k.pos).copied().unwrap_or_default();
        if with_flags {
            out.array(2);
            out.bulk(key);
            out.set(k.flags.len());
            for f in k.flags {
                out.simple(f.as_bytes());
            }
        } else {
            out.bulk(key);
        }
    }
}

/// A key found in a command line: its argument index and access flags.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub pos: usize,
    pub flags: Vec<&'static str>,
}

/// Key positions of `argv` (command name at index 0) according to the
/// command's key specs, Redis' `getKeysUsingKeySpecs`: `None` when a spec
/// cannot be applied to these arguments (bad keynum). SORT's STORE
/// destination, which its key specs mark unknown, is added as Redis'
/// `sortGetKeys` finds it (with the STORE spec's flags).
pub fn keys_from_specs(c: &CommandSpec, argv: &[&[u8]]) -> Option<Vec<KeyRef>> {
    let mut keys = Vec::new();
    let ok = c.for_each_spec_key(argv, |pos, ks| {
        keys.push(KeyRef {
            pos,
            flags: key_flags(c, ks, argv),
        })
    });
    if ok
        && c.name == "sort"
        && let Some(pos) = sort_args(argv).store
    {
        let flags = c
            .key_specs
            .last()
            .map(|ks| ks.flags.to_vec())
            .unwrap_or_default();
        keys.push(KeyRef { pos, flags });
    }
    ok.then_some(keys)
}

/// What SORT's options say about keys (Redis' `sortGetKeys` walk: LIMIT
/// skips two values, BY and GET one pattern each).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SortArgs {
    /// Position of the destination after the last STORE.
    pub store: Option<usize>,
    /// BY or GET patterns: keys found only at run time.
    pub patterns: bool,
}

pub fn sort_args(argv: &[&[u8]]) -> SortArgs {
    let mut r = SortArgs::default();
    let mut i = 2;
    while i < argv.len() {
        let a = argv[i];
        if a.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"by") || a.eq_ignore_ascii_case(b"get") {
            r.patterns = true;
            i += 1;
        } else if a.eq_ignore_ascii_case(b"store") && i + 1 < argv.len() {
            r.store = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    r
}

/// The flags of a key: the spec's, except for specs marked `variable_flags`
/// whose real flags depend on the arguments (SET with or without GET, as
/// Redis' `setGetKeys` reports them).
fn key_flags(c: &CommandSpec, ks: &KeySpec, argv: &[&[u8]]) -> Vec<&'static str> {
    if ks.flags.contains(&"variable_flags") && c.name == "set" {
        if argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get")) {
            return vec!["RW", "access", "update"];
        }
        return vec!["OW", "update"];
    }
    ks.flags
        .iter()
        .copied()
        .filter(|f| *f != "variable_flags")
        .collect()
}
