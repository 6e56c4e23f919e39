//! The append-only file, Redis 7.0's multi-part layout: `appenddirname/`
//! holds one BASE (`<appendfilename>.<seq>.base.rdb`, an RDB with the
//! `aof-base` AUX field, or `.base.aof` in commands with
//! `aof-use-rdb-preamble no`), INCR files (`<appendfilename>.<seq>.incr.aof`)
//! fed by the propagation stream's log (aof_writer.rs), and the manifest
//! (`<appendfilename>.manifest`, lines `file <name> seq <n> type b|h|i`).
//! Mirrors Redis 7.0.15's aof.c: manifest syntax and errors, start-up
//! (upgrade of an old single file, base creation), loading with
//! `aof-load-truncated`, rewrites and their order of operations, the
//! automatic rewrite rule and its failure back-off, INFO's `aof_*` fields.
//!
//! A rewrite does not fork: the new BASE is a point-in-time snapshot
//! (rdb::Job, the same forkless snapshot as BGSAVE) whose point is also
//! where the log switches to the new INCR file, so BASE + new INCR hold
//! every change exactly once.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::aof_writer::{Out, Writer};
use super::rdb::{self, Dest, Logged};
use crate::server::Server;
use crate::{notice, warning};

/// Redis' `AOF_REWRITE_LIMITE_THRESHOLD` / `…_MAX_MINUTES`.
const LIMIT_THRESHOLD: u64 = 3;
const LIMIT_MAX_MINUTES: u64 = 60;

// ---------------------------------------------------------------------------
// Manifest

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Base,
    History,
    Incr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub seq: u64,
    pub kind: Kind,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<FileInfo>,
    /// Oldest first.
    pub incrs: Vec<FileInfo>,
    pub history: Vec<FileInfo>,
    pub base_seq: u64,
    pub incr_seq: u64,
}

/// A manifest that could not be read: the message, and the line it was
/// found at (with the line's text) when there is one.
#[derive(Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub line: Option<(usize, String)>,
    pub msg: &'static str,
}

/// Splits a line into words as Redis' `sdssplitargs` (quotes, escapes).
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let h = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                    cur.push(h(line[i + 2]) * 16 + h(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        x => x,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// A name as the manifest writes it: as is, or quoted when it needs it
/// (Redis' `sdscatrepr` for names `sdsneedsrepr` flags).
fn repr_name(name: &str) -> String {
    let needs = name
        .bytes()
        .any(|c| !c.is_ascii_graphic() || c == b'"' || c == b'\'' || c == b'\\');
    if !needs {
        return name.to_string();
    }
    let mut s = String::from("\"");
    for c in name.bytes() {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

impl Manifest {
    /// Parses a manifest as Redis 7.0 does (1024-byte lines, `#` comments
    /// in column 0, unknown keys ignored, keys case-insensitive).
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        const MAX_LINE: usize = 1024;
        let mut m = Manifest::default();
        if text.is_empty() {
            return Err(ManifestError {
                line: None,
                msg: "Found an empty AOF manifest",
            });
        }
        let mut rest = text;
        let mut linenum = 0usize;
        while !rest.is_empty() {
            // One fgets() chunk: up to a newline, at most MAX_LINE bytes.
            let end = rest
                .iter()
                .take(MAX_LINE)
                .position(|&c| c == b'\n')
                .map(|p| p + 1)
                .unwrap_or(rest.len().min(MAX_LINE));
            let chunk = &rest[..end];
            rest = &rest[end..];
            linenum += 1;
            if chunk[0] == b'#' {
                continue;
            }
            let shown = String::from_utf8_lossy(chunk)
                .trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n')
                .to_string();
            let err = |msg| ManifestError {
                line: Some((linenum, shown.clone())),
                msg,
            };
            if chunk.last() != Some(&b'\n') {
                return Err(err("The AOF manifest file contains too long line"));
            }
            let line = shown.as_bytes();
            if line.is_empty() {
                return Err(err("Invalid AOF manifest file format"));
            }
            let Some(words) = split_args(line) else {
                return Err(err("Invalid AOF manifest file format"));
            };
            if words.len() < 6 || words.len() % 2 != 0 {
                return Err(err("Invalid AOF manifest file format"));
            }
            let (mut name, mut seq, mut kind) = (None, 0u64, None);
            for kv in words.chunks_exact(2) {
                let k = &kv[0];
                if k.eq_ignore_ascii_case(b"file") {
                    let n = String::from_utf8_lossy(&kv[1]).into_owned();
                    if n.contains('/') {
                        return Err(err("File can't be a path, just a filename"));
                    }
                    name = Some(n);
                } else if k.eq_ignore_ascii_case(b"seq") {
                    seq = atoll(&kv[1]);
                } else if k.eq_ignore_ascii_case(b"type") {
                    kind = kv[1].first().copied();
                }
            }
            let (Some(name), Some(kind)) = (name, kind) else {
                return Err(err("Invalid AOF manifest file format"));
            };
            if seq == 0 || name.is_empty() {
                return Err(err("Invalid AOF manifest file format"));
            }
            match kind {
                b'b' => {
                    if m.base.is_some() {
                        return Err(err("Found duplicate base file information"));
                    }
                    m.base_seq = seq;
                    m.base = Some(FileInfo {
                        name,
                        seq,
                        kind: Kind::Base,
                    });
                }
                b'h' => m.history.push(FileInfo {
                    name,
                    seq,
                    kind: Kind::History,
                }),
                b'i' => {
                    if seq <= m.incr_seq {
                        return Err(err("Found a non-monotonic sequence number"));
                    }
                    m.incr_seq = seq;
                    m.incrs.push(FileInfo {
                        name,
                        seq,
                        kind: Kind::Incr,
                    });
                }
                _ => return Err(err("Unknown AOF file type")),
            }
        }
        Ok(m)
    }

    /// The manifest's text: the base, history, then INCR lines.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let line = |s: &mut String, f: &FileInfo, t: char| {
            s.push_str(&format!(
                "file {} seq {} type {t}\n",
                repr_name(&f.name),
                f.seq
            ));
        };
        if let Some(b) = &self.base {
            line(&mut s, b, 'b');
        }
        for h in &self.history {
            line(&mut s, h, 'h');
        }
        for i in &self.incrs {
            line(&mut s, i, 'i');
        }
        s
    }

    fn is_empty(&self) -> bool {
        self.base.is_none() && self.incrs.is_empty()
    }

    /// The next INCR (its seq taken).
    fn new_incr(&mut self, prefix: &str) -> FileInfo {
        self.incr_seq += 1;
        FileInfo {
            name: format!("{prefix}.{}.incr.aof", self.incr_seq),
            seq: self.incr_seq,
            kind: Kind::Incr,
        }
    }

    /// The next BASE; the current one becomes history.
    fn new_base(&mut self, prefix: &str, rdb: bool) -> FileInfo {
        if let Some(mut old) = self.base.take() {
            old.kind = Kind::History;
            self.history.insert(0, old);
        }
        self.base_seq += 1;
        let b = FileInfo {
            name: format!(
                "{prefix}.{}.base.{}",
                self.base_seq,
                if rdb { "rdb" } else { "aof" }
            ),
            seq: self.base_seq,
            kind: Kind::Base,
        };
        self.base = Some(b.clone());
        b
    }

    /// Every INCR but the last `keep` becomes history (newest first in
    /// front, as Redis lists them).
    fn incrs_to_history(&mut self, keep: usize) {
        let n = self.incrs.len().saturating_sub(keep);
        for mut f in self.incrs.drain(..n) {
            f.kind = Kind::History;
            self.history.insert(0, f);
        }
    }
}

fn atoll(b: &[u8]) -> u64 {
    let s = std::str::from_utf8(b).unwrap_or("");
    let digits: String = s
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// State

/// Redis' `aof_state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Off,
    On,
    /// Turned on at run time: on once its first rewrite is done.
    WaitRewrite,
}

#[derive(Default)]
struct State {
    mode: Mode,
    manifest: Manifest,
    /// `aof_rewrite_base_size`: the size after the last rewrite or load.
    base_size: u64,
    rewrite_started: Option<Instant>,
    last_rewrite_secs: i64,
    last_rewrite_ok: bool,
    rewrites: u64,
    consecutive_failures: u64,
    scheduled: bool,
    /// The failure back-off: next try not before, and its length.
    limit_until: Option<Instant>,
    limit_minutes: u64,
}

/// The AOF: its writer, its files and INFO's numbers.
pub struct Aof {
    pub writer: Writer,
    st: Mutex<State>,
    /// A rewrite is running (its snapshot holds `persist.saving` too).
    pub rewriting: AtomicBool,
    abort: AtomicBool,
}

impl Default for Aof {
    fn default() -> Self {
        Aof {
            writer: Writer::default(),
            st: Mutex::new(State {
                last_rewrite_secs: -1,
                last_rewrite_ok: true,
                ..State::default()
            }),
            rewriting: AtomicBool::new(false),
            abort: AtomicBool::new(false),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// INFO persistence's AOF numbers.
pub struct Info {
    pub enabled: bool,
    pub rewriting: bool,
    pub scheduled: bool,
    pub last_rewrite_secs: i64,
    pub current_rewrite_secs: i64,
    pub last_rewrite_ok: bool,
    pub rewrites: u64,
    pub consecutive_failures: u64,
    pub last_write_ok: bool,
    pub current_size: u64,
    pub base_size: u64,
    pub buffer_length: u64,
    pub delayed_fsync: u64,
}

/// Paths: the directory (relative to `dir`, the working directory) and
/// the file prefix.
fn names(srv: &Server) -> (PathBuf, String) {
    let c = srv.config();
    (PathBuf::from(&c.appenddirname), c.appendfilename.clone())
}

fn manifest_path(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}.manifest"))
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Bytes of the BASE and INCR files `m` lists (`aof_current_size`).
fn listed_size(dir: &Path, m: &Manifest) -> u64 {
    m.base
        .iter()
        .chain(m.incrs.iter())
        .map(|f| file_size(&dir.join(&f.name)))
        .sum()
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn strerror(e: &std::io::Error) -> String {
    crate::config::strerror(e)
}

/// Writes the manifest: temp file, fsync, rename, fsync of the directory.
fn persist_manifest(dir: &Path, prefix: &str, m: &Manifest) -> Result<(), Logged> {
    use std::io::Write;
    let tmp = dir.join(format!("temp-{prefix}.manifest"));
    let target = manifest_path(dir, prefix);
    let mut f = match File::create(&tmp) {
        Ok(f) => f,
        Err(e) => {
            warning!(
                "Can't open the AOF manifest file {}: {}",
                tmp.display(),
                strerror(&e)
            );
            return Err(Logged);
        }
    };
    if let Err(e) = f.write_all(m.render().as_bytes()) {
        warning!(
            "Error trying to write the temporary AOF manifest file {}: {}",
            tmp.display(),
            strerror(&e)
        );
        return Err(Logged);
    }
    if let Err(e) = f.sync_all() {
        warning!(
            "Fail to fsync the temp AOF file {}: {}.",
            tmp.display(),
            strerror(&e)
        );
        return Err(Logged);
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        warning!(
            "Error trying to rename the temporary AOF manifest file {} into {}: {}",
            tmp.display(),
            target.display(),
            strerror(&e)
        );
        return Err(Logged);
    }
    if let Err(e) = fsync_dir(dir) {
        warning!(
            "Fail to fsync AOF directory {}: {}.",
            dir.display(),
            strerror(&e)
        );
        return Err(Logged);
    }
    Ok(())
}

/// Reads the manifest; `Ok(None)` when there is none. A bad one is fatal
/// (logged as Redis does; the caller exits).
fn read_manifest(dir: &Path, prefix: &str) -> Result<Option<Manifest>, Logged> {
    let path = manifest_path(dir, prefix);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            warning!(
                "Fatal error: can't open the AOF manifest file {} for reading: {}",
                path.display(),
                strerror(&e)
            );
            return Err(Logged);
        }
    };
    match Manifest::parse(&text) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            let mut msg = String::from("\n*** FATAL AOF MANIFEST FILE ERROR ***\n");
            if let Some((n, line)) = &e.line {
                msg.push_str(&format!(
                    "Reading the manifest file, at line {n}\n>>> '{line}'\n"
                ));
            }
            msg.push_str(e.msg);
            msg.push('\n');
            warning!("{msg}");
            Err(Logged)
        }
    }
}

/// Deletes history files (unless `aof-disable-auto-gc`) and drops them
/// from the manifest.
fn delete_history(srv: &Server, dir: &Path, prefix: &str, m: &mut Manifest) {
    if m.history.is_empty() || srv.config().aof_disable_auto_gc {
        return;
    }
    for h in &m.history {
        notice!("Removing the history file {} in the background", h.name);
        let _ = std::fs::remove_file(dir.join(&h.name));
    }
    m.history.clear();
    let _ = persist_manifest(dir, prefix, m);
}

impl Aof {
    pub fn mode(&self) -> Mode {
        lock(&self.st).mode
    }

    pub fn info(&self, srv: &Server) -> Info {
        let st = lock(&self.st);
        let (dir, _) = names(srv);
        let current = listed_size(&dir, &st.manifest);
        Info {
            enabled: st.mode != Mode::Off,
            rewriting: self.rewriting.load(Relaxed),
            scheduled: st.scheduled,
            last_rewrite_secs: st.last_rewrite_secs,
            current_rewrite_secs: st
                .rewrite_started
                .map_or(-1, |t| t.elapsed().as_secs() as i64),
            last_rewrite_ok: st.last_rewrite_ok,
            rewrites: st.rewrites,
            consecutive_failures: st.consecutive_failures,
            last_write_ok: !self.writer.write_failed.load(Relaxed),
            current_size: if st.mode == Mode::On { current } else { 0 },
            base_size: st.base_size,
            buffer_length: self.writer.pending_bytes(),
            delayed_fsync: self.writer.delayed_fsync.load(Relaxed),
        }
    }

    /// The error writes get while the AOF cannot be written (`-MISCONF`).
    pub fn write_error(&self) -> Option<String> {
        if !self.writer.write_failed.load(Relaxed) {
            return None;
        }
        let e = lock(&self.writer.last_error).clone().unwrap_or_default();
        Some(format!("MISCONF Errors writing to the AOF file: {e}"))
    }
}

// ---------------------------------------------------------------------------
// Loading

/// How loading one file ended.
#[derive(Debug, PartialEq, Eq)]
enum Loaded {
    Ok,
    Empty,
    Truncated,
}

/// Loads every file the manifest lists (base first), then reports.
/// `Err` after logging: the caller exits (Redis treats a failed AOF load
/// as fatal, at start-up and in DEBUG LOADAOF).
fn load_files(srv: &Server, dir: &Path, m: &Manifest) -> Result<bool, Logged> {
    let files: Vec<&FileInfo> = m.base.iter().chain(m.incrs.iter()).collect();
    if files.is_empty() {
        return Ok(false);
    }
    let mut total = 0u64;
    for f in &files {
        let p = dir.join(&f.name);
        match std::fs::metadata(&p) {
            Ok(md) => total += md.len(),
            Err(e) => {
                warning!(
                    "Unable to obtain the AOF file {} length. stat: {}",
                    f.name,
                    strerror(&e)
                );
                return Err(Logged);
            }
        }
    }
    if total == 0 {
        return Ok(true);
    }
    srv.persist.loading.set_total(total);
    let last = files.len() - 1;
    let mut done = 0u64;
    for (i, f) in files.iter().enumerate() {
        let start = Instant::now();
        srv.persist.loading.next_file(done);
        let r = load_one(srv, &dir.join(&f.name), &f.name)?;
        done += std::fs::metadata(dir.join(&f.name)).map_or(0, |m| m.len());
        if r == Loaded::Truncated && i != last {
            warning!("Fatal error: the truncated file is not the last file");
            return Err(Logged);
        }
        if r != Loaded::Empty {
            let what = if f.kind == Kind::Base { "base" } else { "incr" };
            notice!(
                "DB loaded from {what} file {}: {:.3} seconds",
                f.name,
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(true)
}

/// Replays one file: an RDB preamble if it starts with `REDIS`, then RESP
/// commands through a client of its own (no replies, not propagated).
fn load_one(srv: &Server, path: &Path, name: &str) -> Result<Loaded, Logged> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            warning!(
                "Fatal error: can't open the append log file {name} for reading: {}",
                strerror(&e)
            );
            return Err(Logged);
        }
    };
    let len = f.metadata().map_or(0, |m| m.len());
    if len == 0 {
        return Ok(Loaded::Empty);
    }
    let mut sig = [0u8; 5];
    let mut start = 0u64;
    if f.read_exact(&mut sig).is_ok() && &sig == b"REDIS" {
        let _ = f.seek(SeekFrom::Start(0));
        let old_style = name == srv.config().appendfilename;
        if old_style {
            notice!("Reading RDB preamble from AOF file...");
        } else {
            notice!("Reading RDB base file on AOF loading...");
        }
        match rdb::load_from(srv, &f, false) {
            Ok((keys, expired, used)) => {
                srv.persist.set_loaded(keys, expired);
                start = used;
            }
            Err(Logged) => {
                if old_style {
                    warning!(
                        "Error reading the RDB preamble of the AOF file {name}, AOF loading aborted"
                    );
                } else {
                    warning!("Error reading the RDB base file {name}, AOF loading aborted");
                }
                return Err(Logged);
            }
        }
        if old_style {
            notice!("Reading the remaining AOF tail...");
        }
    }
    if f.seek(SeekFrom::Start(start)).is_err() {
        warning!("Unrecoverable error reading the append only file {name}: seek failed");
        return Err(Logged);
    }
    replay(srv, f, start, path, name)
}

/// Why the command loop stopped early.
enum Stop {
    /// End of file inside a command or a transaction.
    Eof,
    Format,
    Io(std::io::Error),
}

fn replay(srv: &Server, f: File, start: u64, path: &Path, name: &str) -> Result<Loaded, Logged> {
    let truncate_ok = srv.config().aof_load_truncated;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let info = Arc::new(crate::client::ClientInfo::new(
        u64::MAX,
        String::new(),
        String::new(),
        -1,
        crate::db::now_ms(),
    ));
    let mut client = crate::client::Client::new(info, true);
    client.replaying = true;
    let mut out = protocol::resp::Reply::new();
    let mut pos = start;
    let mut valid_up_to = start;
    let mut valid_before_multi = start;
    let mut line = Vec::with_capacity(64);
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut delay = srv.config().key_load_delay;
    let stop = 'outer: loop {
        srv.persist.loading.progress(srv, pos, &mut delay);
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => {
                if client.multi.is_some() {
                    notice!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
                    valid_up_to = valid_before_multi;
                    break Stop::Eof;
                }
                return Ok(Loaded::Ok);
            }
            Ok(n) => pos += n as u64,
            Err(e) => break Stop::Io(e),
        }
        if line[0] == b'#' {
            // An annotation (`#TS:…`).
            if line.last() != Some(&b'\n') {
                break Stop::Eof;
            }
            continue;
        }
        if line[0] != b'*' {
            break Stop::Format;
        }
        if line.last() != Some(&b'\n') {
            break Stop::Eof;
        }
        let argc = atoi(&line[1..]);
        if argc < 1 {
            break Stop::Format;
        }
        args.clear();
        for _ in 0..argc {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) => break 'outer Stop::Eof,
                Ok(n) => pos += n as u64,
                Err(e) => break 'outer Stop::Io(e),
            }
            if line.last() != Some(&b'\n') {
                break 'outer Stop::Eof;
            }
            if line[0] != b'$' {
                break 'outer Stop::Format;
            }
            let len = atoi(&line[1..]);
            if len < 0 {
                break 'outer Stop::Format;
            }
            let mut a = vec![0u8; len as usize + 2];
            match r.read_exact(&mut a) {
                Ok(()) => pos += a.len() as u64,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break 'outer Stop::Eof,
                Err(e) => break 'outer Stop::Io(e),
            }
            a.truncate(len as usize);
            args.push(a);
        }
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        if protocol::command::lookup(argv[0]).is_none() {
            warning!(
                "Unknown command '{}' reading the append only file {name}",
                String::from_utf8_lossy(argv[0])
            );
            return Err(Logged);
        }
        if argv[0].eq_ignore_ascii_case(b"multi") {
            valid_before_multi = valid_up_to;
        }
        crate::exec::execute(srv, &mut client, &mut out, crate::db::now_ms(), &argv);
        out.buf.clear();
        if truncate_ok {
            valid_up_to = pos;
        }
    };
    match stop {
        Stop::Format => {
            warning!(
                "Bad file format reading the append only file {name}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
            );
            Err(Logged)
        }
        Stop::Io(e) => {
            warning!(
                "Unrecoverable error reading the append only file {name}: {}",
                strerror(&e)
            );
            Err(Logged)
        }
        Stop::Eof => {
            if truncate_ok {
                warning!("!!! Warning: short read while loading the AOF file {name}!!!");
                warning!("!!! Truncating the AOF {name} at offset {valid_up_to} !!!");
                match OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(valid_up_to))
                {
                    Ok(()) => {
                        warning!("AOF {name} loaded anyway because aof-load-truncated is enabled");
                        return Ok(Loaded::Truncated);
                    }
                    Err(e) => {
                        warning!("Error truncating the AOF file {name}: {}", strerror(&e));
                    }
                }
            }
            warning!(
                "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
            );
            Err(Logged)
        }
    }
}

/// C's `atoi` on a `*<n>\r\n` / `$<n>\r\n` line.
fn atoi(b: &[u8]) -> i64 {
    let mut v: i64 = 0;
    let mut neg = false;
    let mut i = 0;
    if b.first() == Some(&b'-') {
        neg = true;
        i = 1;
    }
    while i < b.len() && b[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add((b[i] - b'0') as i64);
        i += 1;
    }
    if neg { -v } else { v }
}

// ---------------------------------------------------------------------------
// Start-up

/// An old single-file AOF in `dir` moves into the directory as its base
/// (Redis' `aofUpgradePrepare`).
fn upgrade_if_needed(dir: &Path, prefix: &str, m: &mut Option<Manifest>) -> Result<(), Logged> {
    let old = Path::new(prefix);
    if !old.is_file() {
        return Ok(());
    }
    let needed = match m {
        None => true,
        Some(m) if m.is_empty() => true,
        Some(m) => {
            m.incrs.is_empty()
                && m.base.as_ref().is_some_and(|b| b.name == prefix)
                && !dir.join(prefix).exists()
        }
    };
    if !needed {
        return Ok(());
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        warning!(
            "Can't open or create append-only dir {}: {}",
            dir.display(),
            strerror(&e)
        );
        return Err(Logged);
    }
    let nm = Manifest {
        base: Some(FileInfo {
            name: prefix.to_string(),
            seq: 1,
            kind: Kind::Base,
        }),
        base_seq: 1,
        ..Manifest::default()
    };
    persist_manifest(dir, prefix, &nm)?;
    if let Err(e) = std::fs::rename(old, dir.join(prefix)) {
        warning!(
            "Error trying to rename the existing AOF to old tempfile: {}",
            strerror(&e)
        );
        return Err(Logged);
    }
    let _ = fsync_dir(dir);
    notice!(
        "Successfully migrated an old-style AOF file ({prefix}) into the AOF directory ({}).",
        dir.display()
    );
    *m = Some(nm);
    Ok(())
}

/// Loads the AOF at start-up (`appendonly yes`): the directory's files in
/// manifest order, then opens (or creates) the files to append to and
/// starts the log. Exits the process when the AOF cannot be loaded.
pub fn load_at_startup(srv: &Server) {
    if startup(srv).is_err() {
        std::process::exit(1);
    }
}

fn startup(srv: &Server) -> Result<(), Logged> {
    let (dir, prefix) = names(srv);
    let mut m = read_manifest(&dir, &prefix)?;
    upgrade_if_needed(&dir, &prefix, &mut m)?;
    let mut m = m.unwrap_or_default();
    let start = Instant::now();
    if load_files(srv, &dir, &m)? {
        notice!(
            "DB loaded from append only file: {:.3} seconds",
            start.elapsed().as_secs_f64()
        );
    }
    // `aof_base_size` after a load: the BASE as loaded (0 for a base
    // created below, as Redis reports it).
    let base_size = m.base.as_ref().map_or(0, |b| file_size(&dir.join(&b.name)));
    open_on_start(srv, &dir, &prefix, &mut m)?;
    delete_history(srv, &dir, &prefix, &mut m);
    let aof = &srv.persist.aof;
    let mut st = lock(&aof.st);
    st.base_size = base_size;
    st.manifest = m;
    st.mode = Mode::On;
    Ok(())
}

/// Redis' `aofOpenIfNeededOnServerStart`: a base for an empty directory,
/// the last INCR opened for append (or a new one), the manifest written,
/// then the log started.
fn open_on_start(srv: &Server, dir: &Path, prefix: &str, m: &mut Manifest) -> Result<(), Logged> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        warning!(
            "Can't open or create append-only dir {}: {}",
            dir.display(),
            strerror(&e)
        );
        return Err(Logged);
    }
    let mut dirty = false;
    if m.is_empty() {
        let preamble = srv.config().aof_use_rdb_preamble;
        let base = m.new_base(prefix, preamble);
        let dest = base_dest(
            srv,
            dir,
            &base.name,
            preamble,
            format!("temp-rewriteaof-{}.aof", std::process::id()),
        );
        rdb::save_empty_to(srv, dest)?;
        notice!("Creating AOF base file {} on server start", base.name);
        dirty = true;
    }
    let (incr, created) = match m.incrs.last() {
        Some(i) => (i.clone(), false),
        None => {
            let i = m.new_incr(prefix);
            m.incrs.push(i.clone());
            dirty = true;
            (i, true)
        }
    };
    let path = dir.join(&incr.name);
    let file = match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(f) => f,
        Err(e) => {
            warning!(
                "Can't open the append-only file {}: {}",
                incr.name,
                strerror(&e)
            );
            return Err(Logged);
        }
    };
    if dirty {
        persist_manifest(dir, prefix, m)?;
    }
    if created {
        notice!("Creating AOF incr file {} on server start", incr.name);
    } else {
        notice!("Opening AOF incr file {} on server start", incr.name);
    }
    let size = file.metadata().map_or(0, |md| md.len());
    let ts = srv.config().aof_timestamp_enabled;
    srv.prop.log_start(ts);
    srv.persist
        .aof
        .writer
        .start(srv, Out::new(file, incr.name, size), srv.prop.offset());
    Ok(())
}

/// The destination of a base: written as `tmp` in `dir`'s parent (the
/// working directory), renamed into the AOF directory as `name`.
fn base_dest(srv: &Server, dir: &Path, name: &str, preamble: bool, tmp: String) -> Dest {
    Dest {
        tmp,
        target: dir.join(name).display().to_string(),
        aof_base: true,
        commands: !preamble,
        incremental_fsync: srv.config().aof_rewrite_incremental_fsync,
    }
}

// ---------------------------------------------------------------------------
// Rewrites

/// Why a rewrite did not start.
#[derive(Debug, PartialEq, Eq)]
pub enum RewriteError {
    InProgress,
    Failed,
}

/// How BGREWRITEAOF was answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    Now,
    Scheduled,
}

/// BGREWRITEAOF (and the cron's automatic and scheduled rewrites, and
/// `appendonly yes` at run time): a rewrite now, or scheduled while a
/// BGSAVE holds the snapshot.
pub fn bgrewriteaof(srv: &Server) -> Result<Started, RewriteError> {
    let aof = &srv.persist.aof;
    if aof.rewriting.load(Relaxed) {
        return Err(RewriteError::InProgress);
    }
    if srv.persist.saving.swap(true, Relaxed) {
        let mut st = lock(&aof.st);
        st.scheduled = true;
        st.consecutive_failures = 0;
        return Ok(Started::Scheduled);
    }
    match start_rewrite(srv) {
        Ok(()) => Ok(Started::Now),
        Err(Logged) => {
            srv.persist.saving.store(false, Relaxed);
            Err(RewriteError::Failed)
        }
    }
}

/// BGREWRITEAOF inside a transaction: from the cron.
pub fn schedule(srv: &Server) {
    let mut st = lock(&srv.persist.aof.st);
    st.scheduled = true;
    st.consecutive_failures = 0;
}

/// Starts a rewrite; the caller holds `persist.saving`.
fn start_rewrite(srv: &Server) -> Result<(), Logged> {
    let aof = &srv.persist.aof;
    let (dir, prefix) = names(srv);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        warning!(
            "Can't open or create append-only dir {}: {}",
            dir.display(),
            strerror(&e)
        );
        rewrite_failed_to_start(srv);
        return Err(Logged);
    }
    let mode = aof.mode();
    // The file the log moves to at the snapshot point.
    let mut next: Option<(File, String)> = None;
    match mode {
        Mode::On => {
            let mut m = lock(&aof.st).manifest.clone();
            let incr = m.new_incr(&prefix);
            m.incrs.push(incr.clone());
            let file = match OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(dir.join(&incr.name))
            {
                Ok(f) => f,
                Err(e) => {
                    warning!(
                        "Can't open the append-only file {}: {}",
                        incr.name,
                        strerror(&e)
                    );
                    rewrite_failed_to_start(srv);
                    return Err(Logged);
                }
            };
            // The new INCR is listed before it gets a byte: a crash from
            // here on loads the old base and every INCR.
            if persist_manifest(&dir, &prefix, &m).is_err() {
                let _ = std::fs::remove_file(dir.join(&incr.name));
                rewrite_failed_to_start(srv);
                return Err(Logged);
            }
            lock(&aof.st).manifest = m;
            notice!("Creating AOF incr file {} on background rewrite", incr.name);
            next = Some((file, incr.name));
        }
        Mode::WaitRewrite => {
            let name = format!("temp-{prefix}.incr");
            match OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(dir.join(&name))
            {
                Ok(f) => next = Some((f, name)),
                Err(e) => {
                    warning!("Can't open the append-only file {name}: {}", strerror(&e));
                    rewrite_failed_to_start(srv);
                    return Err(Logged);
                }
            }
        }
        Mode::Off => {}
    }
    let preamble = srv.config().aof_use_rdb_preamble;
    let pid = std::process::id();
    let mut dest = base_dest(
        srv,
        &dir,
        "",
        preamble,
        format!("temp-rewriteaof-{pid}.aof"),
    );
    let bg = format!("temp-rewriteaof-bg-{pid}.aof");
    dest.target = bg.clone();
    aof.abort.store(false, Relaxed);
    {
        let mut st = lock(&aof.st);
        st.rewrites += 1;
        st.scheduled = false;
        st.rewrite_started = Some(Instant::now());
    }
    aof.rewriting.store(true, Relaxed);
    if srv.config().no_appendfsync_on_rewrite {
        aof.writer.skip_fsync.store(true, Relaxed);
    }
    let incr_name = next.as_ref().map(|(_, n)| n.clone());
    let job = rdb::Job::start_to(srv, dest, move |srv| {
        let Some((file, name)) = next else {
            return;
        };
        if mode == Mode::WaitRewrite {
            srv.prop.log_start(srv.config().aof_timestamp_enabled);
            srv.persist
                .aof
                .writer
                .start(srv, Out::new(file, name, 0), srv.prop.offset());
        } else {
            srv.prop.log_switch(file, name);
        }
    });
    let job = match job {
        Ok(j) => j,
        Err(Logged) => {
            rewrite_done(srv, Some(false), mode, incr_name, &bg);
            return Err(Logged);
        }
    };
    notice!("Background append only file rewriting started");
    let me = srv.arc();
    let bg2 = bg.clone();
    let incr2 = incr_name.clone();
    let spawned = std::thread::Builder::new()
        .name("codis-aofrw".into())
        .spawn(move || {
            let r = job.run_until(&me, &me.persist.aof.abort);
            rewrite_done(&me, r, mode, incr2, &bg2);
        });
    if spawned.is_err() {
        warning!("Can't rewrite append only file in background: cannot start a thread");
        rewrite_done(srv, Some(false), mode, incr_name, &bg);
        return Err(Logged);
    }
    Ok(())
}

fn rewrite_failed_to_start(srv: &Server) {
    let mut st = lock(&srv.persist.aof.st);
    st.last_rewrite_ok = false;
    st.consecutive_failures += 1;
}

/// The end of a rewrite (Redis' `backgroundRewriteDoneHandler`): on
/// success the new base goes in place and the manifest that lists it is
/// the commit point; the INCR files before the switch become history.
fn rewrite_done(srv: &Server, r: Option<bool>, mode: Mode, incr: Option<String>, bg: &str) {
    let aof = &srv.persist.aof;
    let (dir, prefix) = names(srv);
    let ok = match r {
        Some(true) => finish_rewrite(srv, &dir, &prefix, mode, incr.as_deref(), bg).is_ok(),
        _ => false,
    };
    let _ = std::fs::remove_file(bg);
    aof.writer.skip_fsync.store(false, Relaxed);
    let mut st = lock(&aof.st);
    st.last_rewrite_secs = st
        .rewrite_started
        .take()
        .map_or(0, |t| t.elapsed().as_secs() as i64);
    if ok {
        st.last_rewrite_ok = true;
        st.consecutive_failures = 0;
        st.limit_until = None;
        st.limit_minutes = 0;
        if st.mode == Mode::WaitRewrite {
            st.mode = Mode::On;
        }
        notice!("Background AOF rewrite finished successfully");
    } else {
        if r.is_none() {
            warning!("Background AOF rewrite terminated by request");
            // Stopped on purpose (FLUSHALL, appendonly no): try again later
            // if the AOF still wants one.
            st.scheduled = st.mode != Mode::Off;
        } else {
            warning!("Background AOF rewrite terminated with error");
            st.last_rewrite_ok = false;
            st.consecutive_failures += 1;
        }
        if mode == Mode::WaitRewrite && st.mode == Mode::WaitRewrite {
            // The temp INCR goes; the rewrite is retried from the cron.
            drop(st);
            srv.prop.log_stop();
            aof.writer.stop(srv);
            if let Some(n) = &incr {
                let _ = std::fs::remove_file(dir.join(n));
            }
            lock(&aof.st).scheduled = true;
        }
    }
    aof.rewriting.store(false, Relaxed);
    srv.persist.saving.store(false, Relaxed);
}

fn finish_rewrite(
    srv: &Server,
    dir: &Path,
    prefix: &str,
    mode: Mode,
    incr: Option<&str>,
    bg: &str,
) -> Result<(), Logged> {
    let aof = &srv.persist.aof;
    if let Some(n) = incr {
        // Everything before the snapshot point must be durable in the older
        // files before they become history (the writer does it within
        // milliseconds of the switch).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !aof.writer.on_file(n) {
            if Instant::now() > deadline || aof.abort.load(Relaxed) {
                warning!("Background AOF rewrite: the switch to {n} did not complete");
                return Err(Logged);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let preamble = srv.config().aof_use_rdb_preamble;
    let mut m = lock(&aof.st).manifest.clone();
    let base = m.new_base(prefix, preamble);
    let base_path = dir.join(&base.name);
    if let Err(e) = std::fs::rename(bg, &base_path) {
        warning!(
            "Error trying to rename the temporary AOF base file {bg} into {}: {}",
            base.name,
            strerror(&e)
        );
        return Err(Logged);
    }
    notice!(
        "Successfully renamed the temporary AOF base file {bg} into {}",
        base.name
    );
    let mut renamed_incr = None;
    match mode {
        Mode::On => m.incrs_to_history(1),
        Mode::WaitRewrite => {
            m.incrs_to_history(0);
            let new = m.new_incr(prefix);
            let tmp = incr.unwrap_or_default();
            if let Err(e) = std::fs::rename(dir.join(tmp), dir.join(&new.name)) {
                warning!(
                    "Error trying to rename the temporary AOF incr file {tmp} into {}: {}",
                    new.name,
                    strerror(&e)
                );
                let _ = std::fs::remove_file(&base_path);
                return Err(Logged);
            }
            notice!(
                "Successfully renamed the temporary AOF incr file {tmp} into {}",
                new.name
            );
            renamed_incr = Some(new.name.clone());
            m.incrs.push(new);
        }
        Mode::Off => m.incrs_to_history(0),
    }
    if persist_manifest(dir, prefix, &m).is_err() {
        let _ = std::fs::remove_file(&base_path);
        return Err(Logged);
    }
    if let Some(n) = renamed_incr {
        aof.writer.rename_current(&n);
    }
    let mut st = lock(&aof.st);
    if st.mode != Mode::Off || mode == Mode::WaitRewrite {
        st.base_size = listed_size(dir, &m);
    }
    st.manifest = m;
    let mut m = st.manifest.clone();
    drop(st);
    delete_history(srv, dir, prefix, &mut m);
    lock(&aof.st).manifest.history = m.history;
    Ok(())
}

/// Stops a rewrite in progress and waits until its thread let go.
pub fn abort_rewrite(srv: &Server) {
    let aof = &srv.persist.aof;
    if !aof.rewriting.load(Relaxed) {
        return;
    }
    aof.abort.store(true, Relaxed);
    let epoch = srv.ks.snapshot_active();
    if epoch != 0 {
        srv.ks.snapshot_end(epoch);
    }
    while aof.rewriting.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Redis' `aofRewriteLimited`: after 3 failures in a row, automatic
/// rewrites back off 1, 2, 4 … 60 minutes.
fn limited(st: &mut State) -> bool {
    if st.consecutive_failures < LIMIT_THRESHOLD {
        st.limit_until = None;
        st.limit_minutes = 0;
        return false;
    }
    if let Some(t) = st.limit_until
        && Instant::now() < t
    {
        return true;
    }
    st.limit_minutes = if st.limit_minutes == 0 {
        1
    } else {
        (st.limit_minutes * 2).min(LIMIT_MAX_MINUTES)
    };
    if st.limit_until.is_some() {
        // The previous back-off ran out: this try goes ahead.
        st.limit_until = None;
        return false;
    }
    st.limit_until = Some(Instant::now() + Duration::from_secs(st.limit_minutes * 60));
    warning!(
        "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {} minutes",
        st.limit_minutes
    );
    true
}

/// The cron's part: scheduled rewrites and the growth rule.
pub fn cron(srv: &Server) {
    let aof = &srv.persist.aof;
    if aof.rewriting.load(Relaxed) || srv.persist.saving.load(Relaxed) {
        return;
    }
    let (perc, min) = {
        let c = srv.config();
        (c.auto_aof_rewrite_percentage, c.auto_aof_rewrite_min_size)
    };
    let info = aof.info(srv);
    let mut st = lock(&aof.st);
    if st.scheduled {
        if limited(&mut st) {
            return;
        }
        drop(st);
        let _ = bgrewriteaof(srv);
        return;
    }
    if st.mode == Mode::On && perc > 0 && info.current_size as i64 > min {
        let base = st.base_size.max(1);
        let growth = (info.current_size * 100 / base) as i64 - 100;
        if growth >= perc && !limited(&mut st) {
            notice!("Starting automatic rewriting of AOF on {growth}% growth");
            drop(st);
            let _ = bgrewriteaof(srv);
        }
    }
}

// ---------------------------------------------------------------------------
// Run-time switches

/// `CONFIG SET appendonly yes` (Redis' `startAppendOnly`): the AOF is on
/// once a first rewrite has written its base.
pub fn turn_on(srv: &Server, in_exec: bool) -> Result<(), &'static str> {
    let aof = &srv.persist.aof;
    {
        let mut st = lock(&aof.st);
        if st.mode != Mode::Off {
            return Ok(());
        }
        st.mode = Mode::WaitRewrite;
        // A reopened AOF forgets the old write error.
        aof.writer.write_failed.store(false, Relaxed);
        srv.persist.refresh_gate();
        if in_exec {
            st.scheduled = true;
            notice!(
                "AOF was enabled during a transaction. An AOF background was scheduled to start when possible."
            );
            return Ok(());
        }
    }
    if aof.rewriting.load(Relaxed) {
        notice!(
            "AOF was enabled but there is already an AOF rewriting in background. Stopping background AOF and starting a rewrite now."
        );
        abort_rewrite(srv);
    }
    match bgrewriteaof(srv) {
        Ok(Started::Scheduled) => {
            notice!(
                "AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible."
            );
            Ok(())
        }
        Ok(Started::Now) => Ok(()),
        Err(_) => {
            lock(&aof.st).mode = Mode::Off;
            warning!(
                "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error."
            );
            Err("Unable to turn on AOF. Check server logs.")
        }
    }
}

/// `CONFIG SET appendonly no` (Redis' `stopAppendOnly`): what was logged
/// is written and fsynced, the file closed; the files stay.
pub fn turn_off(srv: &Server) {
    let aof = &srv.persist.aof;
    if aof.mode() == Mode::Off {
        return;
    }
    {
        let mut st = lock(&aof.st);
        st.mode = Mode::Off;
        st.scheduled = false;
    }
    abort_rewrite(srv);
    let rest = srv.prop.log_stop();
    aof.writer.stop_with(srv, rest);
}

/// SHUTDOWN / SIGTERM: stop a rewrite, write and fsync what is logged.
/// False when the first rewrite after `appendonly yes` is still running
/// (Redis refuses to exit unless forced).
pub fn before_exit(srv: &Server, force: bool) -> bool {
    let aof = &srv.persist.aof;
    if aof.rewriting.load(Relaxed) {
        if aof.mode() == Mode::WaitRewrite {
            if !force {
                warning!("Writing initial AOF, can't exit.");
                return false;
            }
            warning!("Writing initial AOF. Exit anyway.");
        } else {
            warning!("There is a child rewriting the AOF. Killing it!");
        }
        abort_rewrite(srv);
    }
    if aof.mode() == Mode::On {
        notice!("Calling fsync() on the AOF file.");
        aof.writer.flush_now(srv);
    }
    true
}

/// DEBUG LOADAOF: write out what is logged, empty the keyspace, load the
/// directory again. A failure ends the process (as in Redis).
pub fn debug_loadaof(srv: &Server) {
    let aof = &srv.persist.aof;
    if aof.mode() != Mode::Off {
        aof.writer.flush_now(srv);
    }
    for i in 0..srv.ks.db_count() {
        srv.ks.flush_db(i);
    }
    srv.functions.flush();
    let (dir, prefix) = names(srv);
    let m = match read_manifest(&dir, &prefix) {
        Ok(m) => m.unwrap_or_default(),
        Err(Logged) => std::process::exit(1),
    };
    let mut m2 = m.clone();
    delete_history(srv, &dir, &prefix, &mut m2);
    match load_files(srv, &dir, &m2) {
        Ok(true) => {}
        // No file at all is AOF_NOT_EXIST, which DEBUG LOADAOF treats as
        // fatal too.
        Ok(false) | Err(Logged) => std::process::exit(1),
    }
    lock(&aof.st).manifest.history = m2.history;
    srv.dirty.store(0, Relaxed);
    notice!("Append Only File loaded by DEBUG LOADAOF");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_and_order() {
        let text = b"file appendonly.aof.3.base.rdb seq 3 type b\nfile appendonly.aof.2.incr.aof seq 2 type h\nfile appendonly.aof.2.base.rdb seq 2 type h\nfile appendonly.aof.3.incr.aof seq 3 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.base_seq, 3);
        assert_eq!(m.incr_seq, 3);
        assert_eq!(m.history.len(), 2);
        assert_eq!(m.render().as_bytes(), text);
    }

    #[test]
    fn manifest_errors_as_redis() {
        let e = |t: &[u8]| Manifest::parse(t).unwrap_err().msg;
        assert_eq!(e(b""), "Found an empty AOF manifest");
        assert_eq!(
            e(b"file a seq 1 type b"),
            "The AOF manifest file contains too long line"
        );
        assert_eq!(e(b"\n"), "Invalid AOF manifest file format");
        assert_eq!(e(b"file a seq 1\n"), "Invalid AOF manifest file format");
        assert_eq!(
            e(b"file a seq 0 type b\n"),
            "Invalid AOF manifest file format"
        );
        assert_eq!(
            e(b"file a/b seq 1 type b\n"),
            "File can't be a path, just a filename"
        );
        assert_eq!(
            e(b"file a seq 1 type b\nfile b seq 2 type b\n"),
            "Found duplicate base file information"
        );
        assert_eq!(
            e(b"file a seq 2 type i\nfile b seq 2 type i\n"),
            "Found a non-monotonic sequence number"
        );
        assert_eq!(e(b"file a seq 1 type x\n"), "Unknown AOF file type");
        assert_eq!(
            e(b"file \"a seq 1 type b\n"),
            "Invalid AOF manifest file format"
        );
        // Comments, unknown keys, case-insensitive keys, the first letter
        // of the type, quoted names.
        let m = Manifest::parse(
            b"# hello\nFILE \"my aof.1.base.rdb\" SEQ 1 TYPE base extra 1\nfile x seq 4 type i\n",
        )
        .unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, "my aof.1.base.rdb");
        assert_eq!(m.incr_seq, 4);
        assert_eq!(
            m.render(),
            "file \"my aof.1.base.rdb\" seq 1 type b\nfile x seq 4 type i\n"
        );
        // Only comments: accepted, nothing listed.
        assert!(Manifest::parse(b"# only\n").unwrap().is_empty());
    }

    #[test]
    fn new_files_take_the_next_seqs() {
        let mut m = Manifest::parse(b"file appendonly.aof.6.base.aof seq 6 type b\n").unwrap();
        assert_eq!(
            m.new_incr("appendonly.aof").name,
            "appendonly.aof.1.incr.aof"
        );
        let b = m.new_base("appendonly.aof", true);
        assert_eq!(b.name, "appendonly.aof.7.base.rdb");
        assert_eq!(m.history[0].name, "appendonly.aof.6.base.aof");
    }
}
