//! Access control lists (Redis 7.0's acl.c): users, their passwords
//! (SHA-256 hex), and selectors of commands, key patterns and channel
//! patterns; the check before every command; the ACL log; the ACL
//! command's replies.
//!
//! * A selector's commands are a bitmap over the shared command table's
//!   (sub)command index (the layout of `stats::StatIndex`), with one more
//!   bit for commands added later (set only by `+@all`). Categories come
//!   from the table (`CommandSpec::acl`), plus our own `@codis` for the
//!   SLOTS* commands.
//! * `ACL LIST` / `GETUSER` describe the bitmap as Redis does: `+@all` or
//!   `-@all`, the categories that fit best, then single commands in table
//!   order (Redis walks a hash table, so its single-command order varies
//!   from run to run).
//! * Clients hold an `Arc<UserCell>`: a change is seen at once by every
//!   client of the user (as in Redis, where clients point at the user). The
//!   call path reads one atomic (`unrestricted`) for users allowed every
//!   command, key and channel.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use protocol::command::{self, COMMANDS, CommandSpec, flags};

use crate::errors;

/// Categories in Redis' order (ACL CAT), then ours.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
    "codis",
];

const F_ENABLED: u8 = 1;
const F_DISABLED: u8 = 2;
const F_NOPASS: u8 = 4;
const F_SKIP_SANITIZE: u8 = 8;
const F_SANITIZE: u8 = 16;
/// Redis' ACLUserFlags order.
const FLAG_NAMES: &[(u8, &str)] = &[
    (F_ENABLED, "on"),
    (F_DISABLED, "off"),
    (F_NOPASS, "nopass"),
    (F_SKIP_SANITIZE, "skip-sanitize-payload"),
    (F_SANITIZE, "sanitize-payload"),
];

const READ: u8 = 1;
const WRITE: u8 = 2;

/// Why a command was refused (Redis' ACL_DENIED_*, in its order of
/// precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denied {
    Cmd = 1,
    Key = 2,
    Auth = 3,
    Channel = 4,
}

/// Where a denial happened (the log's `context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Toplevel,
    Multi,
    Lua,
}

// ---------------------------------------------------------------------------
// The command index
// ---------------------------------------------------------------------------

struct Index {
    specs: Vec<&'static CommandSpec>,
    /// For a subcommand, its container's index.
    parent: Vec<Option<usize>>,
    /// For a container, the index range of its subcommands.
    subs: Vec<std::ops::Range<usize>>,
    cats: Vec<u32>,
}

fn index() -> &'static Index {
    static I: OnceLock<Index> = OnceLock::new();
    I.get_or_init(|| {
        let mut specs: Vec<&'static CommandSpec> = COMMANDS.iter().collect();
        let mut parent = vec![None; specs.len()];
        let mut subs = vec![0..0; specs.len()];
        for (i, c) in COMMANDS.iter().enumerate() {
            let start = specs.len();
            specs.extend(c.subcommands.iter());
            parent.extend(c.subcommands.iter().map(|_| Some(i)));
            subs[i] = start..specs.len();
        }
        subs.resize(specs.len(), 0..0);
        let cats = specs
            .iter()
            .map(|s| {
                let mut m = 0u32;
                for a in s.acl {
                    if let Some(p) = CATEGORIES
                        .iter()
                        .position(|c| Some(*c) == a.strip_prefix('@'))
                    {
                        m |= 1 << p;
                    }
                }
                m
            })
            .collect();
        Index {
            specs,
            parent,
            subs,
            cats,
        }
    })
}

/// The index of a command by its full name (`get`, `client|id`).
fn lookup(name: &[u8]) -> Option<usize> {
    let (top, sub) = match name.iter().position(|&c| c == b'|') {
        Some(p) => (&name[..p], Some(&name[p + 1..])),
        None => (name, None),
    };
    let id = command::lookup(top)? as usize;
    match sub {
        None => Some(id),
        Some(s) => {
            let ix = index();
            ix.subs[id]
                .clone()
                .find(|&i| ix.specs[i].short_name().as_bytes().eq_ignore_ascii_case(s))
        }
    }
}

fn category(name: &[u8]) -> Option<usize> {
    CATEGORIES
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------
// Selectors and users
// ---------------------------------------------------------------------------

#[derive(Clone, PartialEq)]
struct KeyPattern {
    pat: Vec<u8>,
    perm: u8,
}

impl KeyPattern {
    fn describe(&self, out: &mut Vec<u8>) {
        match self.perm {
            READ => out.extend_from_slice(b"%R~"),
            WRITE => out.extend_from_slice(b"%W~"),
            _ => out.push(b'~'),
        }
        out.extend_from_slice(&self.pat);
    }
}

#[derive(Clone)]
struct Selector {
    root: bool,
    /// One bit per (sub)command, plus the "future commands" bit last.
    bits: Vec<u64>,
    all_commands: bool,
    first_args: BTreeMap<usize, Vec<Vec<u8>>>,
    all_keys: bool,
    patterns: Vec<KeyPattern>,
    all_channels: bool,
    channels: Vec<Vec<u8>>,
}

#[derive(Debug)]
enum RuleError {
    NoEnt,
    Inval,
    Exist,
    IsDir,
    NoDev,
    BadMsg,
    Child,
}

impl RuleError {
    fn text(&self) -> &'static str {
        match self {
            RuleError::NoEnt => "Unknown command or category name in ACL",
            RuleError::Inval => "Syntax error",
            RuleError::Exist => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
            }
            RuleError::IsDir => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
            }
            RuleError::NoDev => {
                "The password you are trying to remove from the user does not exist"
            }
            RuleError::BadMsg => {
                "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
            }
            RuleError::Child => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

fn trim<'a>(s: &'a [u8], set: &[u8]) -> &'a [u8] {
    let start = s.iter().position(|c| !set.contains(c)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|c| !set.contains(c))
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|&c| c.is_ascii_whitespace() || c == 0)
}

impl Selector {
    fn new(root: bool, all_channels: bool) -> Selector {
        Selector {
            root,
            bits: vec![0; (index().specs.len() + 1).div_ceil(64)],
            all_commands: false,
            first_args: BTreeMap::new(),
            all_keys: false,
            patterns: Vec::new(),
            all_channels,
            channels: Vec::new(),
        }
    }

    fn future_bit() -> usize {
        index().specs.len()
    }

    #[inline]
    fn bit(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, i: usize, on: bool) {
        if on {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
            self.all_commands = false;
        }
    }

    /// Redis' ACLChangeSelectorPerm: a container takes its subcommands along.
    fn change(&mut self, i: usize, on: bool) {
        self.set_bit(i, on);
        self.first_args.remove(&i);
        for s in index().subs[i].clone() {
            self.set_bit(s, on);
        }
    }

    fn category(&mut self, cat: usize, on: bool) {
        let ix = index();
        for i in 0..ix.specs.len() {
            if ix.cats[i] & (1 << cat) != 0 {
                self.change(i, on);
            }
        }
    }

    fn all(&mut self, on: bool) {
        let v = if on { u64::MAX } else { 0 };
        self.bits.iter_mut().for_each(|w| *w = v);
        self.all_commands = on;
        self.first_args.clear();
    }

    fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |s: &str| op.eq_ignore_ascii_case(s.as_bytes());
        if is("allkeys") || op == b"~*" {
            self.all_keys = true;
            self.patterns.clear();
        } else if is("resetkeys") {
            self.all_keys = false;
            self.patterns.clear();
        } else if is("allchannels") || op == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.all(true);
        } else if is("nocommands") || is("-@all") {
            self.all(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            if self.all_keys {
                return Err(RuleError::Exist);
            }
            let (perm, rest) = if op[0] == b'%' {
                // As the reference server (Debian's 7.0.15): a `%` rule
                // needs R or W; the `~` may be missing (an empty pattern).
                let mut perm = 0;
                let mut off = 1;
                loop {
                    match op.get(off).map(u8::to_ascii_uppercase) {
                        Some(b'R') if perm & READ == 0 => perm |= READ,
                        Some(b'W') if perm & WRITE == 0 => perm |= WRITE,
                        Some(b'~') => {
                            off += 1;
                            break;
                        }
                        None => break,
                        _ => return Err(RuleError::Inval),
                    }
                    off += 1;
                }
                if perm == 0 {
                    return Err(RuleError::Inval);
                }
                (perm, &op[off.min(op.len())..])
            } else {
                (READ | WRITE, &op[1..])
            };
            if has_spaces(rest) {
                return Err(RuleError::Inval);
            }
            match self.patterns.iter_mut().find(|p| p.pat == rest) {
                Some(p) => p.perm |= perm,
                None => self.patterns.push(KeyPattern {
                    pat: rest.to_vec(),
                    perm,
                }),
            }
            self.all_keys = false;
        } else if op[0] == b'&' {
            if self.all_channels {
                return Err(RuleError::IsDir);
            }
            let rest = &op[1..];
            if has_spaces(rest) {
                return Err(RuleError::Inval);
            }
            if !self.channels.iter().any(|c| c == rest) {
                self.channels.push(rest.to_vec());
            }
        } else if op == b"+" || op == b"-" {
            return Err(RuleError::NoEnt);
        } else if op.len() > 1 && op[0] == b'+' && op[1] != b'@' {
            let name = &op[1..];
            match name.iter().rposition(|&c| c == b'|') {
                None => {
                    let i = lookup(name).ok_or(RuleError::NoEnt)?;
                    self.change(i, true);
                }
                Some(p) => {
                    let (top, sub) = (&name[..p], &name[p + 1..]);
                    let i = lookup(top).ok_or(RuleError::NoEnt)?;
                    if index().parent[i].is_some() {
                        return Err(RuleError::Child);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Inval);
                    }
                    if !index().subs[i].is_empty() {
                        let s = lookup(name).ok_or(RuleError::NoEnt)?;
                        self.change(s, true);
                    } else {
                        let list = self.first_args.entry(i).or_default();
                        if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                            list.push(sub.to_vec());
                        }
                    }
                }
            }
        } else if op.len() > 1 && op[0] == b'-' && op[1] != b'@' {
            let i = lookup(&op[1..]).ok_or(RuleError::NoEnt)?;
            self.change(i, false);
        } else if op.len() > 1 && (op[0] == b'+' || op[0] == b'-') && op[1] == b'@' {
            let c = category(&op[2..]).ok_or(RuleError::NoEnt)?;
            self.category(c, op[0] == b'+');
        } else {
            return Err(RuleError::Inval);
        }
        Ok(())
    }

    /// (allowed, denied) commands of category `cat`.
    fn count(&self, cat: usize) -> (usize, usize) {
        let ix = index();
        let (mut on, mut off) = (0, 0);
        for i in 0..ix.specs.len() {
            if ix.cats[i] & (1 << cat) != 0 {
                if self.bit(i) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }

    /// Redis' ACLDescribeSelectorCommandRules: `+@all`/`-@all`, the best
    /// fitting categories, then single commands and first-args.
    fn describe_commands(&self) -> String {
        let ix = index();
        let additive = !self.bit(Self::future_bit());
        let mut fake = Selector::new(false, false);
        let mut rules = String::new();
        if additive {
            rules.push_str("-@all ");
            fake.all(false);
        } else {
            rules.push_str("+@all ");
            fake.all(true);
        }
        let mut temp = self.clone();
        let mut applied = vec![false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, done) in applied.iter().enumerate() {
                if *done {
                    continue;
                }
                let (on, off) = temp.count(j);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(b) = best else { break };
            fake.category(b, additive);
            temp.category(b, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(CATEGORIES[b]);
            rules.push(' ');
            applied[b] = true;
        }
        for top in 0..COMMANDS.len() {
            for i in std::iter::once(top).chain(ix.subs[top].clone()) {
                let (user, f) = (self.bit(i), fake.bit(i));
                if user != f {
                    rules.push(if user { '+' } else { '-' });
                    rules.push_str(ix.specs[i].name);
                    rules.push(' ');
                    fake.change(i, user);
                }
            }
            if !self.bit(top)
                && let Some(args) = self.first_args.get(&top)
            {
                for a in args {
                    rules.push('+');
                    rules.push_str(ix.specs[top].name);
                    rules.push('|');
                    rules.push_str(&String::from_utf8_lossy(a));
                    rules.push(' ');
                }
            }
        }
        rules.pop();
        rules
    }

    fn describe_keys(&self, sep_first: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if self.all_keys {
            out.extend_from_slice(b"~*");
            return out;
        }
        for (n, p) in self.patterns.iter().enumerate() {
            if n > 0 || sep_first {
                out.push(b' ');
            }
            p.describe(&mut out);
        }
        out
    }

    fn describe_channels(&self) -> Vec<u8> {
        if self.all_channels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (n, c) in self.channels.iter().enumerate() {
            if n > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// The selector as ACL LIST prints it.
    fn describe(&self, out: &mut Vec<u8>) {
        if self.all_keys {
            out.extend_from_slice(b"~* ");
        } else {
            for p in &self.patterns {
                p.describe(out);
                out.push(b' ');
            }
        }
        if self.all_channels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.describe_commands().as_bytes());
    }

    fn unrestricted(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }

    /// Redis' ACLSelectorCheckCmd.
    fn check(&self, i: usize, spec: &CommandSpec, argv: &[&[u8]]) -> Result<(), (Denied, usize)> {
        if !self.all_commands && !spec.has(flags::NO_AUTH) && !self.bit(i) {
            let ix = index();
            let Some(args) = self.first_args.get(&i) else {
                return Err((Denied::Cmd, 0));
            };
            let at = if ix.parent[i].is_some() { 2 } else { 1 };
            let Some(arg) = argv.get(at) else {
                return Err((Denied::Cmd, 0));
            };
            if !args.iter().any(|a| a.eq_ignore_ascii_case(arg)) {
                return Err((Denied::Cmd, 0));
            }
        }
        if !self.all_keys && !spec.key_specs.is_empty() {
            let mut bad = None;
            let variable = variable_flags(spec, argv);
            spec.for_each_spec_key(argv, |k, ks| {
                if bad.is_some() || ks.flags.contains(&"not_key") {
                    return;
                }
                let mut need = 0;
                for f in ks.flags {
                    match *f {
                        "access" => need |= READ,
                        "insert" | "delete" | "update" => need |= WRITE,
                        _ => {}
                    }
                }
                if ks.flags.contains(&"variable_flags")
                    && let Some(v) = variable
                {
                    need = v;
                }
                let ok = self.patterns.iter().any(|p| {
                    p.perm & need == need && protocol::glob::string_match(&p.pat, argv[k], false)
                });
                if !ok {
                    bad = Some(k);
                }
            });
            if let Some(k) = bad {
                return Err((Denied::Key, k));
            }
        }
        if !self.all_channels {
            let (from, pattern) = match channel_args(spec) {
                Some(x) => x,
                None => return Ok(()),
            };
            let until = if from.1 {
                argv.len()
            } else {
                (from.0 + 1).min(argv.len())
            };
            for (k, ch) in argv.iter().enumerate().take(until).skip(from.0) {
                let ok = self.channels.iter().any(|c| {
                    if pattern {
                        c == ch
                    } else {
                        protocol::glob::string_match(c, ch, false)
                    }
                });
                if !ok {
                    return Err((Denied::Channel, k));
                }
            }
        }
        Ok(())
    }
}

/// The permissions a key needs where the key spec says they depend on the
/// arguments (Redis' setGetKeys, bitfieldGetKeys): SET needs read only with
/// GET; BITFIELD needs write only with SET or INCRBY.
fn variable_flags(spec: &CommandSpec, argv: &[&[u8]]) -> Option<u8> {
    let has = |w: &[u8]| argv.iter().skip(2).any(|a| a.eq_ignore_ascii_case(w));
    match spec.name {
        "set" => Some(if has(b"get") { READ | WRITE } else { WRITE }),
        "bitfield" => Some(if has(b"set") || has(b"incrby") {
            READ | WRITE
        } else {
            READ
        }),
        _ => None,
    }
}

/// Where a command's checked channels are: ((first index, to the end?),
/// whether they are patterns). Unsubscribing is never checked.
fn channel_args(spec: &CommandSpec) -> Option<((usize, bool), bool)> {
    Some(match spec.name {
        "publish" | "spublish" => ((1, false), false),
        "subscribe" | "ssubscribe" => ((1, true), false),
        "psubscribe" => ((1, true), true),
        _ => return None,
    })
}

#[derive(Clone)]
pub struct User {
    flags: u8,
    passwords: Vec<String>,
    /// The root selector first.
    selectors: Vec<Selector>,
}

impl User {
    fn new(all_channels: bool) -> User {
        User {
            flags: F_DISABLED,
            passwords: Vec::new(),
            selectors: vec![Selector::new(true, all_channels)],
        }
    }

    fn apply(&mut self, op: &[u8], pubsub_default_all: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |s: &str| op.eq_ignore_ascii_case(s.as_bytes());
        if is("on") {
            self.flags = (self.flags | F_ENABLED) & !F_DISABLED;
        } else if is("off") {
            self.flags = (self.flags | F_DISABLED) & !F_ENABLED;
        } else if is("skip-sanitize-payload") {
            self.flags = (self.flags | F_SKIP_SANITIZE) & !F_SANITIZE;
        } else if is("sanitize-payload") {
            self.flags = (self.flags | F_SANITIZE) & !F_SKIP_SANITIZE;
        } else if is("nopass") {
            self.flags |= F_NOPASS;
            self.passwords.clear();
        } else if is("resetpass") {
            self.flags &= !F_NOPASS;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = if op[0] == b'>' {
                hash_password(&op[1..])
            } else {
                check_hash(&op[1..])?
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.flags &= !F_NOPASS;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = if op[0] == b'<' {
                hash_password(&op[1..])
            } else {
                check_hash(&op[1..])?
            };
            let at = self
                .passwords
                .iter()
                .position(|p| *p == hash)
                .ok_or(RuleError::NoDev)?;
            self.passwords.remove(at);
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let inner = &op[1..op.len() - 1];
            let args = protocol::resp::split_args(inner).ok_or(RuleError::Inval)?;
            let mut s = Selector::new(false, pubsub_default_all);
            for a in &args {
                s.apply(a)?;
            }
            self.selectors.push(s);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            self.passwords.clear();
            self.flags &= !F_NOPASS;
            let root = &mut self.selectors[0];
            root.all_keys = false;
            root.patterns.clear();
            root.all_channels = pubsub_default_all;
            root.channels.clear();
            self.flags = (self.flags | F_DISABLED) & !F_ENABLED;
            self.flags = (self.flags | F_SANITIZE) & !F_SKIP_SANITIZE;
            self.selectors.truncate(1);
            self.selectors[0].all(false);
        } else {
            self.selectors[0].apply(op)?;
        }
        Ok(())
    }

    fn unrestricted(&self) -> bool {
        self.selectors.iter().any(Selector::unrestricted)
    }

    /// Redis' ACLCheckAllUserCommandPerm: Ok if any selector allows it,
    /// else the most relevant denial and the argument it concerns.
    fn check(&self, i: usize, spec: &CommandSpec, argv: &[&[u8]]) -> Result<(), (Denied, usize)> {
        let mut worst = (Denied::Cmd, 0);
        for s in &self.selectors {
            match s.check(i, spec, argv) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if e.0 > worst.0 || (e.0 == worst.0 && e.1 > worst.1) {
                        worst = e;
                    }
                }
            }
        }
        Err(worst)
    }

    /// The user as ACL LIST prints it, after `user <name> `.
    fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (f, name) in FLAG_NAMES {
            if self.flags & f != 0 {
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
            }
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        for s in &self.selectors {
            if s.root {
                s.describe(&mut out);
            } else {
                out.extend_from_slice(b" (");
                s.describe(&mut out);
                out.push(b')');
            }
        }
        out
    }
}

fn hash_password(p: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(p);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_hash(h: &[u8]) -> Result<String, RuleError> {
    if h.len() != 64 || !h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(RuleError::BadMsg);
    }
    Ok(String::from_utf8_lossy(h).into_owned())
}

/// Compares without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

/// A user as clients hold it: changes are seen by every client at once.
pub struct UserCell {
    pub name: Vec<u8>,
    /// Every command, key and channel allowed: the call path's only read.
    unrestricted: AtomicBool,
    /// Deleted (ACL DELUSER): its clients are closed.
    pub deleted: AtomicBool,
    data: RwLock<User>,
}

impl UserCell {
    fn new(name: &[u8], u: User) -> Arc<UserCell> {
        Arc::new(UserCell {
            name: name.to_vec(),
            unrestricted: AtomicBool::new(u.unrestricted()),
            deleted: AtomicBool::new(false),
            data: RwLock::new(u),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, User> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, u: User) {
        self.unrestricted.store(u.unrestricted(), Relaxed);
        *self.data.write().unwrap_or_else(|p| p.into_inner()) = u;
    }

    /// Whether this user may run anything (checked first on every command).
    #[inline]
    pub fn unrestricted(&self) -> bool {
        self.unrestricted.load(Relaxed)
    }

    /// The check before a command: `stat` is the (sub)command's index in
    /// the shared layout.
    pub fn check(
        &self,
        stat: usize,
        spec: &CommandSpec,
        argv: &[&[u8]],
    ) -> Result<(), (Denied, usize)> {
        self.read().check(stat, spec, argv)
    }

    /// Redis' ACLUserCheckCmdWithUnrestrictedKeyAccess for reads: a
    /// selector allows the command and may read every key (SORT BY/GET).
    pub fn reads_every_key(&self, stat: usize, spec: &CommandSpec, argv: &[&[u8]]) -> bool {
        if self.unrestricted() {
            return true;
        }
        self.read().selectors.iter().any(|s| {
            s.check(stat, spec, argv).is_ok()
                && (s.all_keys
                    || s.patterns
                        .iter()
                        .any(|p| p.perm & READ != 0 && p.pat == b"*"))
        })
    }
}

/// One ACL LOG entry.
struct LogEntry {
    count: u64,
    reason: Denied,
    context: Context,
    object: Vec<u8>,
    username: Vec<u8>,
    ctime_ms: u64,
    client_info: Vec<u8>,
}

/// Entries within this many ms with the same reason, context, object and
/// user are counted in one (Redis' ACL_LOG_GROUPING_MAX_TIME_DELTA).
const LOG_GROUPING_MS: u64 = 60_000;

/// The server's users and ACL log.
pub struct Acl {
    users: RwLock<BTreeMap<Vec<u8>, Arc<UserCell>>>,
    default: Arc<UserCell>,
    /// The default user is enabled and needs no password: connections
    /// start authenticated.
    default_open: AtomicBool,
    log: Mutex<VecDeque<LogEntry>>,
    pub log_max: AtomicU64,
    /// `acl-pubsub-default`: new users get every channel.
    pub pubsub_default_all: AtomicBool,
    pub denied_auth: AtomicU64,
    pub denied_cmd: AtomicU64,
    pub denied_key: AtomicU64,
    pub denied_channel: AtomicU64,
}

impl Default for Acl {
    fn default() -> Self {
        let mut u = User::new(true);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(op.as_bytes(), true);
        }
        let default = UserCell::new(b"default", u);
        let mut users = BTreeMap::new();
        users.insert(b"default".to_vec(), default.clone());
        Acl {
            users: RwLock::new(users),
            default,
            default_open: AtomicBool::new(true),
            log: Mutex::new(VecDeque::new()),
            log_max: AtomicU64::new(128),
            pubsub_default_all: AtomicBool::new(false),
            denied_auth: AtomicU64::new(0),
            denied_cmd: AtomicU64::new(0),
            denied_key: AtomicU64::new(0),
            denied_channel: AtomicU64::new(0),
        }
    }
}

impl Acl {
    pub fn default_user(&self) -> Arc<UserCell> {
        self.default.clone()
    }

    pub fn default_ref(&self) -> &UserCell {
        &self.default
    }

    /// The default user needs no password (AUTH <password> is then an error).
    pub fn default_nopass(&self) -> bool {
        self.default.read().flags & F_NOPASS != 0
    }

    /// Whether new connections start authenticated (Redis' authRequired).
    #[inline]
    pub fn default_open(&self) -> bool {
        self.default_open.load(Relaxed)
    }

    fn refresh_default(&self) {
        let u = self.default.read();
        self.default_open.store(
            u.flags & F_NOPASS != 0 && u.flags & F_DISABLED == 0,
            Relaxed,
        );
    }

    fn get(&self, name: &[u8]) -> Option<Arc<UserCell>> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// `requirepass`: the default user's only password, or nopass.
    pub fn set_default_password(&self, pass: Option<&[u8]>) {
        let mut u = self.default.read().clone();
        let _ = u.apply(b"resetpass", true);
        match pass {
            Some(p) => {
                let mut op = b">".to_vec();
                op.extend_from_slice(p);
                let _ = u.apply(&op, true);
            }
            None => {
                let _ = u.apply(b"nopass", true);
            }
        }
        self.default.set(u);
        self.refresh_default();
    }

    /// AUTH / HELLO AUTH: the user, if the credentials are good.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<UserCell>> {
        let cell = self.get(name)?;
        let ok = {
            let u = cell.read();
            if u.flags & F_DISABLED != 0 {
                false
            } else if u.flags & F_NOPASS != 0 {
                true
            } else {
                let h = hash_password(pass);
                u.passwords.iter().fold(false, |acc, p| {
                    acc | same_secret(p.as_bytes(), h.as_bytes())
                })
            }
        };
        ok.then_some(cell)
    }

    /// ACL SETUSER: every rule applies, or none does.
    pub fn set_user(&self, name: &[u8], rules: &[&[u8]]) -> Result<(), String> {
        if has_spaces(name) {
            return Err(errors::ACL_USERNAME_SPACES.to_string());
        }
        let merged = merge_selectors(rules)?;
        let all = self.pubsub_default_all.load(Relaxed);
        let existing = self.get(name);
        let mut u = match &existing {
            Some(c) => c.read().clone(),
            None => User::new(all),
        };
        for op in &merged {
            u.apply(op, all).map_err(|e| {
                // Redis prints the rule as a C string (up to a NUL).
                let shown = op.split(|&c| c == 0).next().unwrap_or(&[]);
                format!(
                    "ERR Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(shown),
                    e.text()
                )
            })?;
        }
        match existing {
            Some(c) => c.set(u),
            None => {
                self.users
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_vec(), UserCell::new(name, u));
            }
        }
        if name == b"default" {
            self.refresh_default();
        }
        Ok(())
    }

    /// ACL LOAD and the start-up load of `aclfile` (Redis'
    /// ACLLoadFromFile): every line must be good, or nothing changes. On
    /// success every user is replaced (the default user in place, or reset
    /// to its defaults when the file has none); the names of the users
    /// that were replaced are returned (their connections are closed).
    pub fn load_file(&self, path: &str) -> Result<Vec<Vec<u8>>, String> {
        let data = std::fs::read(path).map_err(|e| {
            format!(
                "Error loading ACLs, opening file '{path}': {}",
                crate::config::strerror(&e)
            )
        })?;
        let mut errors = String::new();
        let mut users: BTreeMap<Vec<u8>, User> = BTreeMap::new();
        let all = self.pubsub_default_all.load(Relaxed);
        for (i, raw) in data.split(|&c| c == b'\n').enumerate() {
            let n = i + 1;
            let line = trim(raw, b" \t\r\n");
            if line.is_empty() {
                continue;
            }
            let argv: Vec<&[u8]> = line.split(|&c| c == b' ').collect();
            if argv[0] != b"user" || argv.len() < 2 {
                errors.push_str(&format!(
                    "{path}:{n} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = argv[1];
            if has_spaces(name) {
                errors.push_str(&format!(
                    "'{path}:{n}: username '{}' contains invalid characters. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            if users.contains_key(name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{}' found on line {n}. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            let mut u = User::new(all);
            let rules = match merge_selectors(&argv[2..]) {
                Ok(r) => r,
                Err(_) => {
                    errors.push_str(&format!(
                        "{path}:{n}: Unmatched parenthesis in selector definition."
                    ));
                    Vec::new()
                }
            };
            let mut syntax = false;
            for op in &rules {
                let op = trim(op, b"\t\r\n");
                if let Err(e) = u.apply(op, all) {
                    if matches!(e, RuleError::NoEnt) {
                        errors.push_str(&format!(
                            "{path}:{n}: Error in applying operation '{}': {}. ",
                            String::from_utf8_lossy(op),
                            e.text()
                        ));
                    } else if !syntax {
                        errors.push_str(&format!("{path}:{n}: {}. ", e.text()));
                        syntax = true;
                    }
                }
            }
            users.insert(name.to_vec(), u);
        }
        if !errors.is_empty() {
            errors.push_str(
                "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
            );
            return Err(errors);
        }
        let new_default = users.remove(b"default".as_slice()).unwrap_or_else(|| {
            let mut u = User::new(true);
            for op in ["+@all", "~*", "&*", "on", "nopass"] {
                let _ = u.apply(op.as_bytes(), true);
            }
            u
        });
        self.default.set(new_default);
        self.refresh_default();
        let mut map = self.users.write().unwrap_or_else(|p| p.into_inner());
        let mut replaced = Vec::new();
        for (name, cell) in map.iter() {
            if name != b"default" {
                cell.deleted.store(true, Relaxed);
                replaced.push(name.clone());
            }
        }
        map.retain(|n, _| n == b"default");
        for (name, u) in users {
            let cell = UserCell::new(&name, u);
            map.insert(name, cell);
        }
        Ok(replaced)
    }

    /// ACL SAVE: every user as ACL LIST prints it, one per line, written
    /// to a temporary file renamed over `path`.
    pub fn save_file(&self, path: &str) -> std::io::Result<()> {
        let mut out = Vec::new();
        for l in self.list() {
            out.extend_from_slice(&l);
            out.push(b'\n');
        }
        let tmp = format!("{path}.tmp-{}-{}", std::process::id(), crate::db::now_ms());
        let r = std::fs::write(&tmp, &out).and_then(|()| std::fs::rename(&tmp, path));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    /// ACL DELUSER: how many were deleted (the default user cannot be).
    pub fn del_users(&self, names: &[&[u8]]) -> Result<usize, &'static str> {
        if names.iter().any(|n| *n == b"default") {
            return Err(errors::ACL_DEFAULT_UNDELETABLE);
        }
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for name in names {
            if let Some(c) = users.remove(*name) {
                c.deleted.store(true, Relaxed);
                n += 1;
            }
        }
        Ok(n)
    }

    /// A user's channel rules over all its selectors: (every channel, the
    /// patterns).
    pub fn channels_of(&self, name: &[u8]) -> Option<(bool, Vec<Vec<u8>>)> {
        let c = self.get(name)?;
        let u = c.read();
        let all = u.selectors.iter().any(|s| s.all_channels);
        let list = u
            .selectors
            .iter()
            .flat_map(|s| s.channels.clone())
            .collect();
        Some((all, list))
    }

    pub fn names(&self) -> Vec<Vec<u8>> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// ACL LIST lines.
    pub fn list(&self) -> Vec<Vec<u8>> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        users
            .iter()
            .map(|(name, c)| {
                let mut line = b"user ".to_vec();
                line.extend_from_slice(name);
                line.push(b' ');
                line.extend_from_slice(&c.read().describe());
                line
            })
            .collect()
    }

    /// ACL GETUSER into `out` (nil when there is no such user).
    pub fn get_user(&self, name: &[u8], out: &mut protocol::resp::Reply) {
        let Some(c) = self.get(name) else {
            out.null();
            return;
        };
        let u = c.read();
        out.map(6);
        out.bulk(b"flags");
        let flags: Vec<&str> = FLAG_NAMES
            .iter()
            .filter(|(f, _)| u.flags & f != 0)
            .map(|(_, n)| *n)
            .collect();
        out.set(flags.len());
        for f in flags {
            out.bulk(f.as_bytes());
        }
        out.bulk(b"passwords");
        out.array(u.passwords.len());
        for p in &u.passwords {
            out.bulk(p.as_bytes());
        }
        describe_selector_reply(&u.selectors[0], out);
        out.bulk(b"selectors");
        out.array(u.selectors.len() - 1);
        for s in &u.selectors[1..] {
            out.map(3);
            describe_selector_reply(s, out);
        }
    }

    /// ACL DRYRUN: None when allowed, else the reason's text.
    pub fn dry_run(
        &self,
        name: &[u8],
        stat: usize,
        spec: &CommandSpec,
        argv: &[&[u8]],
    ) -> Result<Option<String>, String> {
        let Some(c) = self.get(name) else {
            return Err(format!(
                "ERR User '{}' not found",
                String::from_utf8_lossy(name)
            ));
        };
        Ok(match c.check(stat, spec, argv) {
            Ok(()) => None,
            Err((Denied::Cmd, _)) => Some(format!(
                "This user has no permissions to run the '{}' command",
                spec.name
            )),
            Err((Denied::Key, k)) => Some(format!(
                "This user has no permissions to access the '{}' key",
                String::from_utf8_lossy(argv[k])
            )),
            Err((_, k)) => Some(format!(
                "This user has no permissions to access the '{}' channel",
                String::from_utf8_lossy(argv[k])
            )),
        })
    }

    /// Counts a denial and adds it to the ACL log.
    #[allow(clippy::too_many_arguments)]
    pub fn note_denial(
        &self,
        reason: Denied,
        context: Context,
        object: &[u8],
        username: &[u8],
        client_info: Vec<u8>,
        now_ms: u64,
    ) {
        match reason {
            Denied::Cmd => &self.denied_cmd,
            Denied::Key => &self.denied_key,
            Denied::Channel => &self.denied_channel,
            Denied::Auth => &self.denied_auth,
        }
        .fetch_add(1, Relaxed);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let hit = log.iter().take(10).position(|e| {
            e.reason == reason
                && e.context == context
                && e.ctime_ms.abs_diff(now_ms) <= LOG_GROUPING_MS
                && e.object == object
                && e.username == username
        });
        if let Some(i) = hit {
            let mut e = log.remove(i).expect("found above");
            e.count += 1;
            e.ctime_ms = now_ms;
            e.client_info = client_info;
            log.push_front(e);
            return;
        }
        log.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object: object.to_vec(),
            username: username.to_vec(),
            ctime_ms: now_ms,
            client_info,
        });
        let max = self.log_max.load(Relaxed) as usize;
        log.truncate(max);
    }

    pub fn log_reset(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// ACL LOG [count].
    pub fn log_reply(&self, count: usize, now_ms: u64, out: &mut protocol::resp::Reply) {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let n = count.min(log.len());
        out.array(n);
        for e in log.iter().take(n) {
            out.map(7);
            out.bulk(b"count");
            out.int(e.count as i64);
            out.bulk(b"reason");
            out.bulk(match e.reason {
                Denied::Cmd => b"command".as_slice(),
                Denied::Key => b"key",
                Denied::Channel => b"channel",
                Denied::Auth => b"auth",
            });
            out.bulk(b"context");
            out.bulk(match e.context {
                Context::Toplevel => b"toplevel".as_slice(),
                Context::Multi => b"multi",
                Context::Lua => b"lua",
            });
            out.bulk(b"object");
            out.bulk(&e.object);
            out.bulk(b"username");
            out.bulk(&e.username);
            out.bulk(b"age-seconds");
            let mut b = Vec::new();
            protocol::number::write_f64(&mut b, now_ms.saturating_sub(e.ctime_ms) as f64 / 1000.0);
            out.double_text(&b);
            out.bulk(b"client-info");
            out.bulk(&e.client_info);
        }
    }
}

fn describe_selector_reply(s: &Selector, out: &mut protocol::resp::Reply) {
    out.bulk(b"commands");
    out.bulk(s.describe_commands().as_bytes());
    out.bulk(b"keys");
    out.bulk(&s.describe_keys(false));
    out.bulk(b"channels");
    out.bulk(&s.describe_channels());
}

/// Joins `(` … `)` selector arguments split over several rules (Redis'
/// ACLMergeSelectorArguments).
fn merge_selectors(rules: &[&[u8]]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, op) in rules.iter().enumerate() {
        if let Some((start, mut acc)) = open.take() {
            acc.push(b' ');
            acc.extend_from_slice(op);
            if op.last() == Some(&b')') {
                out.push(acc);
            } else {
                open = Some((start, acc));
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((j, op.to_vec()));
            continue;
        }
        out.push(op.to_vec());
    }
    if let Some((start, _)) = open {
        return Err(format!(
            "ERR Unmatched parenthesis in acl selector starting at '{}'.",
            String::from_utf8_lossy(rules[start])
        ));
    }
    Ok(out)
}

/// The NOPERM reply of a denied command.
pub fn noperm_text(d: Denied, spec: &CommandSpec) -> String {
    match d {
        Denied::Cmd => format!(
            "NOPERM this user has no permissions to run the '{}' command",
            spec.name
        ),
        Denied::Key => {
            "NOPERM this user has no permissions to access one of the keys used as arguments".into()
        }
        _ => "NOPERM this user has no permissions to access one of the channels used as arguments"
            .into(),
    }
}

/// The reason EXEC gives for a queued command the rules now deny.
pub fn exec_denied_text(d: Denied) -> String {
    let why = match d {
        Denied::Cmd => "no permission to execute the command or subcommand",
        Denied::Key => "no permission to touch the specified keys",
        _ => "no permission to access one of the channels used as arguments",
    };
    format!(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {why}"
    )
}

/// The error a script's denied `redis.call` raises.
pub fn script_denied_text(d: Denied) -> String {
    let why = match d {
        Denied::Cmd => "can't run this command or subcommand",
        Denied::Key => "can't access at least one of the keys mentioned in the command arguments",
        _ => "can't publish to the channel mentioned in the command",
    };
    format!("ERR The user executing the script {why}")
}

/// ACL GENPASS: `bits` random bits as hex.
pub fn genpass(bits: usize) -> String {
    let chars = bits.div_ceil(4);
    (0..chars)
        .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
        .collect()
}

/// ACL CAT <category>: the (sub)command names in it.
pub fn category_commands(name: &[u8]) -> Option<Vec<&'static str>> {
    let c = category(name)?;
    let ix = index();
    let mut out = Vec::new();
    for top in 0..COMMANDS.len() {
        for i in std::iter::once(top).chain(ix.subs[top].clone()) {
            if ix.cats[i] & (1 << c) != 0 {
                out.push(ix.specs[i].name);
            }
        }
    }
    Some(out)
}

/// The (sub)command index of a command line, as the gate computes it.
pub fn index_of(argv: &[&[u8]]) -> Option<(usize, &'static CommandSpec)> {
    let id = command::lookup(argv.first()?)? as usize;
    let ix = index();
    if !ix.subs[id].is_empty() && argv.len() >= 2 {
        if let Some(i) = ix.subs[id].clone().find(|&i| {
            ix.specs[i]
                .short_name()
                .as_bytes()
                .eq_ignore_ascii_case(argv[1])
        }) {
            return Some((i, ix.specs[i]));
        }
        return None;
    }
    Some((id, ix.specs[id]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&str]) -> User {
        let mut u = User::new(false);
        for r in rules {
            u.apply(r.as_bytes(), false).unwrap();
        }
        u
    }

    fn line(rules: &[&str]) -> String {
        String::from_utf8(user(rules).describe()).unwrap()
    }

    #[test]
    fn index_matches_the_stats_layout() {
        let s = crate::stats::Stats::new();
        assert_eq!(s.index.specs.len(), index().specs.len());
        for (a, b) in s.index.specs.iter().zip(&index().specs) {
            assert_eq!(a.name, b.name);
        }
    }

    #[test]
    fn descriptions_as_redis() {
        // Checked against redis-server 7.0.15.
        assert_eq!(line(&[]), "off resetchannels -@all");
        assert_eq!(
            line(&[
                "on",
                ">p1",
                "~k*",
                "%R~r*",
                "&ch",
                "+get",
                "+set",
                "-get",
                "+@string",
                "-@hash",
                "+client|id"
            ]),
            "on #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a ~k* %R~r* resetchannels &ch -@all +@string +client|id"
        );
        assert_eq!(
            line(&["on", "nopass", "allkeys", "allchannels", "allcommands"]),
            "on nopass ~* &* +@all"
        );
        assert_eq!(line(&["+@all", "-get"]), "off resetchannels +@all -get");
        assert_eq!(
            line(&["-@all", "+select|0", "+select|1"]),
            "off resetchannels -@all +select|0 +select|1"
        );
    }

    #[test]
    fn secrets() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn rule_errors() {
        let mut u = User::new(false);
        assert!(matches!(u.apply(b"+nosuch", false), Err(RuleError::NoEnt)));
        assert!(matches!(u.apply(b"+@nosuch", false), Err(RuleError::NoEnt)));
        assert!(matches!(
            u.apply(b"+client|id|x", false),
            Err(RuleError::Child)
        ));
        assert!(matches!(
            u.apply(b"+client|nosuch", false),
            Err(RuleError::NoEnt)
        ));
        assert!(matches!(u.apply(b"+select|", false), Err(RuleError::Inval)));
        assert!(matches!(u.apply(b"bogus", false), Err(RuleError::Inval)));
        assert!(matches!(u.apply(b"%X~a", false), Err(RuleError::Inval)));
        assert!(matches!(u.apply(b"#abc", false), Err(RuleError::BadMsg)));
        assert!(matches!(u.apply(b"<nothere", false), Err(RuleError::NoDev)));
        u.apply(b"allkeys", false).unwrap();
        assert!(matches!(u.apply(b"~a", false), Err(RuleError::Exist)));
        u.apply(b"allchannels", false).unwrap();
        assert!(matches!(u.apply(b"&a", false), Err(RuleError::IsDir)));
    }

    #[test]
    fn checks_commands_keys_channels_and_selectors() {
        let u = user(&[
            "on",
            "nopass",
            "+get",
            "+set",
            "+publish",
            "%R~r*",
            "~k*",
            "&news",
            "(+del ~d*)",
        ]);
        let (get, gs) = index_of(&[b"get", b"x"]).unwrap();
        assert_eq!(u.check(get, gs, &[b"get", b"k1"]), Ok(()));
        assert_eq!(u.check(get, gs, &[b"get", b"r1"]), Ok(()));
        assert_eq!(u.check(get, gs, &[b"get", b"x"]), Err((Denied::Key, 1)));
        let (set, ss) = index_of(&[b"set", b"x", b"v"]).unwrap();
        assert_eq!(
            u.check(set, ss, &[b"set", b"r1", b"v"]),
            Err((Denied::Key, 1))
        );
        assert_eq!(u.check(set, ss, &[b"set", b"k1", b"v"]), Ok(()));
        let (del, ds) = index_of(&[b"del", b"d"]).unwrap();
        assert_eq!(u.check(del, ds, &[b"del", b"d1"]), Ok(()));
        assert_eq!(u.check(del, ds, &[b"del", b"k1"]), Err((Denied::Key, 1)));
        let (hget, hs) = index_of(&[b"hget", b"k", b"f"]).unwrap();
        assert_eq!(
            u.check(hget, hs, &[b"hget", b"k", b"f"]),
            Err((Denied::Cmd, 0))
        );
        let (p, ps) = index_of(&[b"publish", b"c", b"m"]).unwrap();
        assert_eq!(u.check(p, ps, &[b"publish", b"news", b"m"]), Ok(()));
        assert_eq!(
            u.check(p, ps, &[b"publish", b"other", b"m"]),
            Err((Denied::Channel, 1))
        );
    }
}
