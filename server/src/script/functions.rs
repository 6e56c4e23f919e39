//! Redis 7.0 functions (`functions.c` / `function_lua.c` semantics, our own
//! code): FUNCTION LOAD/DELETE/FLUSH/LIST/DUMP/RESTORE/STATS/KILL/HELP and
//! FCALL/FCALL_RO. The libraries (name, code, the functions each
//! registered with their flags and descriptions) are shared; every executor
//! thread has a functions interpreter of its own (separate from its EVAL
//! one, as Redis keeps them apart) that loads every library and is rebuilt
//! after any change. Libraries are part of the dataset: saved in RDB files
//! (FUNCTION2 records), propagated as the FUNCTION commands that changed
//! them (AOF, replicas), and written into an AOF rewrite's base.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, RwLock};

use protocol::resp::Reply;

use super::{Kind, lua, sflags};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::Ctx;
use crate::server::Server;

/// A function a library registered.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub desc: Option<Vec<u8>>,
    pub flags: u32,
}

/// A library: its name, its whole code (shebang line included, as FUNCTION
/// LIST WITHCODE and DUMP give it back) and its functions.
#[derive(Debug)]
pub struct Library {
    pub name: String,
    pub code: Arc<[u8]>,
    pub functions: Vec<Function>,
}

#[derive(Default)]
struct State {
    libs: BTreeMap<String, Arc<Library>>,
    /// Function name → its library.
    funcs: HashMap<String, Arc<Library>>,
}

/// The server's libraries.
#[derive(Default)]
pub struct Functions {
    state: RwLock<State>,
    /// Bumped by every change: threads rebuild their interpreter.
    generation: AtomicU64,
}

/// FUNCTION LOAD's time limit (Redis' LOAD_TIMEOUT_MS).
const LOAD_TIMEOUT_MS: u64 = 500;

impl Functions {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every library, by name.
    pub fn libraries(&self) -> Vec<Arc<Library>> {
        self.read().libs.values().cloned().collect()
    }

    /// (libraries, functions).
    pub fn counts(&self) -> (usize, usize) {
        let s = self.read();
        (s.libs.len(), s.funcs.len())
    }

    /// Removes every library.
    pub fn flush(&self) {
        let mut s = self.write();
        s.libs.clear();
        s.funcs.clear();
        self.generation.fetch_add(1, SeqCst);
    }

    /// Loads a library's code (`replace`: an existing library of that name
    /// is replaced); its name, or Redis' error text. `timeout_ms` 0: none
    /// (from the master, the AOF, an RDB file).
    pub fn load(&self, code: &[u8], replace: bool, timeout_ms: u64) -> Result<String, String> {
        let lib = compile_library(code, timeout_ms)?;
        let name = lib.name.clone();
        let mut s = self.write();
        link(&mut s, Arc::new(lib), replace)?;
        self.generation.fetch_add(1, SeqCst);
        Ok(name)
    }

    /// Adds libraries loaded elsewhere (FUNCTION RESTORE APPEND/REPLACE):
    /// all or none.
    fn join(&self, libs: Vec<Library>, replace: bool) -> Result<(), String> {
        let mut s = self.write();
        let mut next = State {
            libs: s.libs.clone(),
            funcs: s.funcs.clone(),
        };
        for lib in libs {
            link(&mut next, Arc::new(lib), replace)?;
        }
        *s = next;
        self.generation.fetch_add(1, SeqCst);
        Ok(())
    }

    /// Replaces every library (FUNCTION RESTORE FLUSH).
    fn swap(&self, libs: Vec<Library>) -> Result<(), String> {
        let mut next = State::default();
        for lib in libs {
            link(&mut next, Arc::new(lib), false)?;
        }
        *self.write() = next;
        self.generation.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// Adds `lib` to `s`, checking names (Redis' libraryJoin rules).
fn link(s: &mut State, lib: Arc<Library>, replace: bool) -> Result<(), String> {
    let old = s.libs.get(&lib.name).cloned();
    if old.is_some() && !replace {
        return Err(format!("Library '{}' already exists", lib.name));
    }
    // Function names are case-insensitive (Redis' function dictionary).
    let key = |n: &str| n.to_ascii_lowercase();
    if let Some(old) = &old {
        for f in &old.functions {
            s.funcs.remove(&key(&f.name));
        }
    }
    if let Some(f) = lib
        .functions
        .iter()
        .find(|f| s.funcs.contains_key(&key(&f.name)))
    {
        // Put the old library back as it was.
        if let Some(old) = &old {
            for f in &old.functions {
                s.funcs.insert(key(&f.name), old.clone());
            }
        }
        return Err(format!("Function {} already exists", f.name));
    }
    for f in &lib.functions {
        s.funcs.insert(key(&f.name), lib.clone());
    }
    s.libs.insert(lib.name.clone(), lib);
    Ok(())
}

/// The library name and engine of a code's shebang
/// (`functionExtractLibMetaData`): (name, body offset).
fn metadata(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = memchr::memchr(b'\n', code) else {
        return Err("Invalid library metadata".into());
    };
    let parts = protocol::resp::split_args(&code[..end]).unwrap_or_default();
    let Some(first) = parts.first() else {
        return Err("Invalid library metadata".into());
    };
    let engine = &first[2..];
    let mut name: Option<Vec<u8>> = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(p[5..].to_vec());
            continue;
        }
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(p)
        ));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    if name.is_empty() || !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
        return Err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!(
            "Engine '{}' not found",
            String::from_utf8_lossy(engine)
        ));
    }
    Ok((String::from_utf8_lossy(&name).into_owned(), end))
}

/// FUNCTION2 records of `libs` (RDB files, FUNCTION DUMP): the opcode and
/// the library's code as an RDB string.
pub fn write_records(out: &mut Vec<u8>, libs: &[Arc<Library>]) {
    for lib in libs {
        out.push(protocol::rdb::file::opcode::FUNCTION2);
        protocol::rdb::file::write_string(out, &lib.code, None);
    }
}

/// Loads `code` in a scratch interpreter to learn its functions.
fn compile_library(code: &[u8], timeout_ms: u64) -> Result<Library, String> {
    let (name, body) = metadata(code)?;
    let mut vm = lua::Vm::new_functions();
    let fns = vm.load_library(&code[body..], timeout_ms)?;
    if fns.is_empty() {
        return Err("No functions registered".into());
    }
    Ok(Library {
        name,
        code: Arc::from(code),
        functions: fns
            .into_iter()
            .map(|f| Function {
                name: f.name,
                desc: f.desc,
                flags: f.flags,
            })
            .collect(),
    })
}

/// This thread's functions interpreter: every library loaded, function
/// name → registry reference and flags.
struct ThreadFns {
    generation: u64,
    vm: lua::Vm,
    refs: HashMap<Vec<u8>, (std::ffi::c_int, u32), ahash::RandomState>,
}

thread_local! {
    static FVM: std::cell::RefCell<Option<ThreadFns>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's functions interpreter and its function
/// table (rebuilt first if the libraries changed).
fn with_fns<R>(srv: &Server, f: impl FnOnce(&mut ThreadFns) -> R) -> R {
    FVM.with(|cell| {
        let generation = srv.functions.generation.load(SeqCst);
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|t| t.generation != generation) {
            let mut vm = lua::Vm::new_functions();
            let mut refs = HashMap::default();
            for lib in srv.functions.libraries() {
                let body = memchr::memchr(b'\n', &lib.code).unwrap_or(lib.code.len());
                // Loaded once already: no time limit here.
                if let Ok(fns) = vm.load_library(&lib.code[body..], 0) {
                    for f in fns {
                        refs.insert(f.name.to_ascii_lowercase().into_bytes(), (f.func, f.flags));
                    }
                }
            }
            *slot = Some(ThreadFns {
                generation,
                vm,
                refs,
            });
        }
        f(slot.as_mut().expect("built above"))
    })
}

/// Runs `f` with this thread's functions interpreter and function
/// `name`'s reference there; None when it has no such function.
pub(super) fn with_fns_run<R>(
    srv: &Server,
    name: &str,
    f: impl FnOnce(&mut lua::Vm, std::ffi::c_int) -> R,
) -> Option<R> {
    with_fns(srv, |t| {
        let key = name.to_ascii_lowercase();
        let func = t.refs.get(key.as_bytes()).map(|x| x.0)?;
        Some(f(&mut t.vm, func))
    })
}

pub(super) fn fcall(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    fcall_generic(ctx, argv, false)
}

pub(super) fn fcall_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    fcall_generic(ctx, argv, true)
}

fn fcall_generic(ctx: &mut Ctx, argv: &[&[u8]], ro: bool) -> CmdResult {
    let srv = ctx.srv;
    let lower = argv[1].to_ascii_lowercase();
    let Some((func, flags)) = with_fns(srv, |t| t.refs.get(&lower).copied()) else {
        return Err(CmdError::Static(errors::FUNCTION_NOT_FOUND));
    };
    if protocol::number::parse_i64(argv[2]).is_none() {
        return Err(CmdError::Static(errors::FUNCTION_BAD_NUMKEYS));
    }
    let (keys, args) = super::split_keys(argv)?;
    let name = String::from_utf8_lossy(argv[1]);
    // Functions have no compatibility mode: their flags always apply.
    super::run(
        ctx,
        argv,
        Kind::Function,
        func,
        &name,
        flags & !sflags::EVAL_COMPAT,
        ro,
        keys,
        args,
    )
}

const HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

pub(super) fn function_cmd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let srv = ctx.srv;
    let sub = argv[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"load" => {
            let mut replace = false;
            let mut i = 2;
            while i < argv.len() - 1 {
                if argv[i].eq_ignore_ascii_case(b"replace") {
                    replace = true;
                    i += 1;
                    continue;
                }
                return Err(CmdError::Msg(format!(
                    "ERR Unknown option given: {}",
                    String::from_utf8_lossy(argv[i])
                )));
            }
            if i >= argv.len() {
                return Err(CmdError::Static(errors::FUNCTION_CODE_MISSING));
            }
            let timeout = if ctx.client.from_master || ctx.client.replaying {
                0
            } else {
                LOAD_TIMEOUT_MS
            };
            match srv.functions.load(argv[i], replace, timeout) {
                Ok(name) => {
                    ctx.dirty(1);
                    ctx.out.bulk(name.as_bytes());
                    Ok(())
                }
                Err(e) => Err(CmdError::Msg(format!("ERR {e}"))),
            }
        }
        b"delete" => {
            let name = String::from_utf8_lossy(argv[2]).into_owned();
            let mut s = srv.functions.write();
            let Some(lib) = s.libs.remove(&name) else {
                return Err(CmdError::Static(errors::FUNCTION_LIBRARY_NOT_FOUND));
            };
            for f in &lib.functions {
                s.funcs.remove(&f.name.to_ascii_lowercase());
            }
            drop(s);
            srv.functions.generation.fetch_add(1, SeqCst);
            ctx.dirty(1);
            ctx.out.ok();
            Ok(())
        }
        b"flush" => {
            if argv.len() > 3 {
                return Err(CmdError::Msg(errors::subcommand_syntax(
                    "function", argv[1],
                )));
            }
            if let Some(m) = argv.get(2)
                && !m.eq_ignore_ascii_case(b"sync")
                && !m.eq_ignore_ascii_case(b"async")
            {
                return Err(CmdError::Static(errors::FUNCTION_FLUSH_SYNTAX));
            }
            srv.functions.flush();
            ctx.dirty(1);
            ctx.out.ok();
            Ok(())
        }
        b"list" => list(ctx, argv),
        b"dump" => {
            let mut payload = Vec::new();
            write_records(&mut payload, &srv.functions.libraries());
            payload.extend_from_slice(&protocol::rdb::file::FILE_VERSION.to_le_bytes());
            let crc = protocol::rdb::crc64(&payload);
            payload.extend_from_slice(&crc.to_le_bytes());
            ctx.out.bulk(&payload);
            Ok(())
        }
        b"restore" => restore(ctx, argv),
        b"stats" => stats(ctx),
        b"kill" => super::kill(ctx, false),
        b"help" if argv.len() == 2 => {
            ctx.out.array(HELP.len());
            for l in HELP {
                ctx.out.simple(l.as_bytes());
            }
            Ok(())
        }
        _ => Err(CmdError::Msg(errors::unknown_subcommand(
            "function", argv[1],
        ))),
    }
}

fn list(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (mut with_code, mut pattern): (bool, Option<&[u8]>) = (false, None);
    let mut i = 2;
    while i < argv.len() {
        let a = argv[i];
        if !with_code && a.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
            i += 1;
            continue;
        }
        if pattern.is_none() && a.eq_ignore_ascii_case(b"libraryname") {
            if i >= argv.len() - 1 {
                return Err(CmdError::Static(errors::FUNCTION_LIBRARY_NAME_MISSING));
            }
            pattern = Some(argv[i + 1]);
            i += 2;
            continue;
        }
        return Err(CmdError::Msg(format!(
            "ERR Unknown argument {}",
            String::from_utf8_lossy(a)
        )));
    }
    let libs: Vec<Arc<Library>> = ctx
        .srv
        .functions
        .libraries()
        .into_iter()
        .filter(|l| {
            pattern.is_none_or(|p| protocol::glob::string_match(p, l.name.as_bytes(), true))
        })
        .collect();
    let out: &mut Reply = ctx.out;
    out.array(libs.len());
    for lib in &libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(lib.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for f in &lib.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.desc {
                Some(d) => out.bulk(d),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names: Vec<&str> = sflags::NAMES
                .iter()
                .filter(|(_, b)| f.flags & b != 0)
                .map(|(n, _)| *n)
                .collect();
            out.set(names.len());
            for n in names {
                out.simple(n.as_bytes());
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

fn restore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 4 {
        return Err(CmdError::Msg(errors::subcommand_syntax(
            "function", argv[1],
        )));
    }
    #[derive(PartialEq)]
    enum Policy {
        Append,
        Replace,
        Flush,
    }
    let policy = match argv.get(3).map(|p| p.to_ascii_lowercase()) {
        None => Policy::Append,
        Some(p) if p == b"append" => Policy::Append,
        Some(p) if p == b"replace" => Policy::Replace,
        Some(p) if p == b"flush" => Policy::Flush,
        Some(_) => return Err(CmdError::Static(errors::FUNCTION_RESTORE_POLICY)),
    };
    if protocol::rdb::verify(argv[2]).is_err() {
        return Err(CmdError::Static(errors::RESTORE_BAD_PAYLOAD));
    }
    let body = &argv[2][..argv[2].len() - 10];
    let mut libs = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let op = body[pos];
        pos += 1;
        if op != protocol::rdb::file::opcode::FUNCTION2 {
            return Err(CmdError::Static(errors::FUNCTION_NOT_A_FUNCTION));
        }
        let Some((code, used)) = protocol::rdb::file::read_string(&body[pos..]) else {
            return Err(CmdError::Static(errors::FUNCTION_RESTORE_FAILED));
        };
        pos += used;
        match compile_library(&code, 0) {
            Ok(l) => libs.push(l),
            Err(e) => return Err(CmdError::Msg(format!("ERR {e}"))),
        }
    }
    let f = &ctx.srv.functions;
    let r = match policy {
        Policy::Flush => f.swap(libs),
        p => f.join(libs, p == Policy::Replace),
    };
    if let Err(e) = r {
        return Err(CmdError::Msg(format!("ERR {e}")));
    }
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

fn stats(ctx: &mut Ctx) -> CmdResult {
    let busy = ctx.srv.scripts.busy_run();
    if busy.as_ref().is_some_and(|b| b.0) {
        return Err(CmdError::Static(errors::BUSY_SCRIPT));
    }
    let (libs, funcs) = ctx.srv.functions.counts();
    let now = ctx.now;
    let out: &mut Reply = ctx.out;
    out.map(2);
    out.bulk(b"running_script");
    match busy {
        None => out.null(),
        Some((_, name, command, start)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(command.len());
            for a in &command {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(crate::db::now_ms().max(now).saturating_sub(start) as i64);
        }
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libs as i64);
    out.bulk(b"functions_count");
    out.int(funcs as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_rules() {
        assert_eq!(metadata(b"#!lua name=x\nbody").unwrap(), ("x".into(), 12));
        assert_eq!(metadata(b"#!LUA NAME=y\n").unwrap().0, "y");
        assert_eq!(
            metadata(b"return 1").unwrap_err(),
            "Missing library metadata"
        );
        assert_eq!(metadata(b"#!lua").unwrap_err(), "Invalid library metadata");
        assert_eq!(
            metadata(b"#!lua\n").unwrap_err(),
            "Library name was not given"
        );
        assert_eq!(
            metadata(b"#!lua name=a name=b\n").unwrap_err(),
            "Invalid metadata value, name argument was given multiple times"
        );
        assert_eq!(
            metadata(b"#!lua foo=bar\n").unwrap_err(),
            "Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            metadata(b"#!js name=a\n").unwrap_err(),
            "Engine 'js' not found"
        );
        assert!(
            metadata(b"#!lua name=a-b\n")
                .unwrap_err()
                .starts_with("Library names")
        );
    }
}
