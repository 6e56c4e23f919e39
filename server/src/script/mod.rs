//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (Redis
//! 7.0's `eval.c` and `script.c` semantics; our own code). The interpreter
//! and its conversions are in [`lua`]; this module owns the script cache,
//! a script's run (flags, locks, the commands it calls, what it
//! propagates) and the busy-script state behind `-BUSY` and SCRIPT KILL.
//!
//! * **One interpreter per executor thread.** The cache (SHA1 → body and
//!   shebang flags) is shared; each thread's `lua_State` compiles a script
//!   the first time it runs it there. SCRIPT FLUSH bumps a generation and
//!   every thread starts a fresh interpreter at its next script.
//! * **Atomicity by lock sets.** A script runs under a [`GrowSet`]: the
//!   slots of its declared keys (KEYS) are locked up front in the global
//!   order; a command reaching an undeclared key's slot takes it then,
//!   waiting for it when it lies above every held slot (the order holds),
//!   trying it otherwise. A contended try before the script wrote anything
//!   restarts the script from scratch under every slot lock (nothing it did
//!   was visible); after a write it waits (with `io-threads 1`, the
//!   default, nothing else ever holds two slots at once, so this cannot
//!   deadlock; with several threads a multi-key command holding that slot
//!   and waiting for one of the script's could: declare your keys).
//!   The script's commands run through the common call path with that set
//!   held, so no other client, `--io-threads` worker, the expiry cycle or a
//!   migration engine sees a script half done.
//! * **Migration.** A script whose declared keys are in flight is refused
//!   whole (`ERR the specified key is being migrated`); the script holds a
//!   migration write epoch for its run, so no key becomes in flight under
//!   it; an undeclared key in flight refuses the script whole before its
//!   first write, and fails that command after one.
//! * **Propagation.** Effects only (Redis 7.0): the writes a script makes
//!   reach the stream as one MULTI/EXEC block (one write: just that write),
//!   never the script itself, so AOF and replicas never run Lua.
//! * **Busy scripts.** The count hook checks the run's time every 100,000
//!   instructions; past `busy-reply-threshold` the run is marked busy and
//!   other clients get `-BUSY` (commands flagged `allow_busy` still run),
//!   SCRIPT KILL stops a script that has not written. With `io-threads 1`
//!   the only executor thread is the one running the script, so nobody is
//!   served until it ends (see docs/scripting.md).

mod bit;
#[allow(unsafe_code)]
mod cjson;
mod cmsgpack;
pub mod functions;
mod libs;
#[cfg(test)]
mod libtest;
pub mod lua;
mod structlib;

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};

use protocol::command::{self, CmdId, flags};
use protocol::resp::Reply;

use crate::client::Client;
use crate::db::{Grow, GrowSet, LockPlan};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{self, Ctx};
use crate::server::Server;

/// What `redis.REDIS_VERSION` and `REDIS_VERSION_NUM` say.
pub const VERSION: &CStr = c"7.0.15";
pub const VERSION_NUM: u32 = 0x0007_000f;

/// Shebang flags (`#!lua flags=…`).
pub mod sflags {
    pub const NO_WRITES: u32 = 1 << 0;
    pub const ALLOW_OOM: u32 = 1 << 1;
    pub const ALLOW_STALE: u32 = 1 << 2;
    pub const NO_CLUSTER: u32 = 1 << 3;
    pub const ALLOW_CROSS_SLOT: u32 = 1 << 4;
    /// No shebang: Redis 6 behaviour.
    pub const EVAL_COMPAT: u32 = 1 << 5;
    pub const NAMES: &[(&str, u32)] = &[
        ("no-writes", NO_WRITES),
        ("allow-oom", ALLOW_OOM),
        ("allow-stale", ALLOW_STALE),
        ("no-cluster", NO_CLUSTER),
        ("allow-cross-slot-keys", ALLOW_CROSS_SLOT),
    ];
}

/// A cached script.
pub struct Script {
    pub body: Arc<[u8]>,
    pub flags: u32,
    /// Bytes of the shebang line (skipped when compiling; its newline kept
    /// so line numbers stay the user's).
    pub shebang_len: usize,
}

/// A run past the busy threshold (what SCRIPT KILL and `-BUSY` see).
pub struct Busy {
    pub eval: bool,
    pub wrote: AtomicBool,
    pub kill: AtomicBool,
    pub from_master: bool,
    /// The script's SHA1 or the function's name.
    pub name: String,
    /// The caller's command line (FUNCTION STATS).
    pub command: Vec<Vec<u8>>,
    /// Unix ms when the run started.
    pub start_ms: u64,
}

/// The server's scripting state.
#[derive(Default)]
pub struct Scripts {
    cache: RwLock<HashMap<[u8; 40], Arc<Script>, ahash::RandomState>>,
    /// Bumped by SCRIPT FLUSH: interpreters of older generations are
    /// replaced before their next run.
    generation: AtomicU64,
    /// Bytes of cached bodies (INFO `used_memory_scripts_eval`).
    pub body_bytes: AtomicUsize,
    /// Runs past the busy threshold (usually none: one atomic load per
    /// command when empty).
    busy_count: AtomicUsize,
    busy: Mutex<Vec<Arc<Busy>>>,
    /// Lua memory of the last interpreter that reported (INFO).
    pub lua_memory: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scripts {
    /// Number of cached scripts.
    pub fn len(&self) -> usize {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, sha: &[u8; 40]) -> Option<Arc<Script>> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha)
            .cloned()
    }

    /// Whether a script is past the busy threshold (the gate's check).
    #[inline]
    pub fn busy(&self) -> bool {
        self.busy_count.load(Relaxed) != 0
    }

    /// The first busy run: (EVAL?, name, command, unix ms it started).
    pub fn busy_run(&self) -> Option<(bool, String, Vec<Vec<u8>>, u64)> {
        lock(&self.busy)
            .first()
            .map(|b| (b.eval, b.name.clone(), b.command.clone(), b.start_ms))
    }

    /// The busy reply for a command that may not run now, if any.
    pub fn busy_error(&self) -> Option<&'static str> {
        let b = lock(&self.busy);
        b.first().map(|r| {
            if r.eval {
                errors::BUSY_SCRIPT
            } else {
                errors::BUSY_FUNCTION
            }
        })
    }

    fn flush(&self) {
        let mut c = self.cache.write().unwrap_or_else(|p| p.into_inner());
        c.clear();
        self.body_bytes.store(0, Relaxed);
        self.generation.fetch_add(1, SeqCst);
    }
}

/// This thread's interpreter, the generation it was built for, and the
/// scripts compiled in it (SHA1 → registry reference and the script:
/// EVALSHA finds both without the shared cache's lock or a Lua string).
struct ThreadVm {
    generation: u64,
    vm: lua::Vm,
    fns: HashMap<[u8; 40], (std::ffi::c_int, Arc<Script>), ahash::RandomState>,
    /// Runs so far (INFO's Lua memory is refreshed every 64).
    runs: u32,
}

thread_local! {
    static VM: std::cell::RefCell<Option<ThreadVm>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's interpreter (a fresh one after a flush).
fn with_vm<R>(srv: &Server, f: impl FnOnce(&mut ThreadVm) -> R) -> R {
    VM.with(|cell| {
        let generation = srv.scripts.generation.load(SeqCst);
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|t| t.generation != generation) {
            *slot = Some(ThreadVm {
                generation,
                vm: lua::Vm::new(),
                fns: HashMap::default(),
                runs: 0,
            });
        }
        let t = slot.as_mut().expect("interpreter set above");
        let r = f(t);
        t.runs = t.runs.wrapping_add(1);
        if t.runs % 64 == 0 {
            srv.scripts.lua_memory.store(t.vm.memory(), Relaxed);
        }
        r
    })
}

/// Parses a `#!lua flags=…` shebang: (flags, shebang length).
pub fn shebang(body: &[u8]) -> Result<(u32, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((sflags::EVAL_COMPAT, 0));
    }
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Err("Invalid script shebang".into());
    };
    let parts = protocol::resp::split_args(&body[..end]).unwrap_or_default();
    let Some(engine) = parts.first() else {
        return Err("Invalid engine in script shebang".into());
    };
    if engine.as_slice() != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(engine)
        ));
    }
    let mut f = 0;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix(b"flags=") else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(p)
            ));
        };
        if list.is_empty() {
            continue;
        }
        for name in list.split(|&c| c == b',') {
            match sflags::NAMES.iter().find(|(n, _)| n.as_bytes() == name) {
                Some((_, bit)) => f |= bit,
                None => {
                    return Err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(name)
                    ));
                }
            }
        }
    }
    Ok((f, end))
}

/// Adds `body` to the cache (compiling it on this thread first, so a
/// script that does not compile is not cached); its SHA1.
fn create(srv: &Server, body: &[u8]) -> Result<([u8; 40], Arc<Script>), CmdError> {
    let sha = lua::sha1_hex(body);
    if let Some(s) = srv.scripts.get(&sha) {
        return Ok((sha, s));
    }
    let (flags, shebang_len) = shebang(body).map_err(|e| CmdError::Msg(format!("ERR {e}")))?;
    let script = Arc::new(Script {
        body: Arc::from(body),
        flags,
        shebang_len,
    });
    compiled(srv, &sha, Some(&script))?;
    let mut c = srv.scripts.cache.write().unwrap_or_else(|p| p.into_inner());
    let entry = c.entry(sha).or_insert_with(|| {
        srv.scripts.body_bytes.fetch_add(body.len() + 40, Relaxed);
        script
    });
    Ok((sha, entry.clone()))
}

/// The script `sha` compiled in this thread's interpreter: its registry
/// reference and flags (compiled from `script`, or from the shared cache,
/// on first use here); None when the cache does not have it.
fn compiled(
    srv: &Server,
    sha: &[u8; 40],
    script: Option<&Arc<Script>>,
) -> Result<Option<(std::ffi::c_int, u32)>, CmdError> {
    with_vm(srv, |t| compiled_in(srv, t, sha, script))
}

/// [`compiled`] with this thread's interpreter borrowed already.
fn compiled_in(
    srv: &Server,
    t: &mut ThreadVm,
    sha: &[u8; 40],
    script: Option<&Arc<Script>>,
) -> Result<Option<(std::ffi::c_int, u32)>, CmdError> {
    if let Some((r, s)) = t.fns.get(sha) {
        return Ok(Some((*r, s.flags)));
    }
    let s = match script {
        Some(s) => s.clone(),
        None => match srv.scripts.get(sha) {
            Some(s) => s,
            None => return Ok(None),
        },
    };
    let r = t
        .vm
        .compile(c"@user_script", &s.body[s.shebang_len..])
        .map_err(|e| CmdError::Msg(format!("ERR Error compiling script (new function): {e}")))?;
    let flags = s.flags;
    t.fns.insert(*sha, (r, s));
    Ok(Some((r, flags)))
}

pub fn handler(id: CmdId) -> Option<exec::Handler> {
    Some(match id {
        CmdId::Eval => eval,
        CmdId::EvalRo => eval_ro,
        CmdId::Evalsha => evalsha,
        CmdId::EvalshaRo => evalsha_ro,
        CmdId::Script => script_cmd,
        CmdId::Fcall => functions::fcall,
        CmdId::FcallRo => functions::fcall_ro,
        CmdId::Function => functions::function_cmd,
        _ => return None,
    })
}

fn eval(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, argv, false, false)
}

fn eval_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, argv, false, true)
}

fn evalsha(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, argv, true, false)
}

fn evalsha_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, argv, true, true)
}

/// A script's KEYS and ARGV.
pub(crate) type KeysArgs<'a> = (&'a [&'a [u8]], &'a [&'a [u8]]);

/// `numkeys` of EVAL / FCALL: the keys and the arguments.
pub(crate) fn split_keys<'a>(argv: &'a [&'a [u8]]) -> Result<KeysArgs<'a>, CmdError> {
    let n = protocol::number::parse_i64(argv[2]).ok_or(CmdError::NotInteger)?;
    if n > (argv.len() - 3) as i64 {
        return Err(CmdError::Static(errors::SCRIPT_TOO_MANY_KEYS));
    }
    if n < 0 {
        return Err(CmdError::Static(errors::SCRIPT_NEGATIVE_KEYS));
    }
    let n = n as usize;
    Ok((&argv[3..3 + n], &argv[3 + n..]))
}

fn eval_generic(ctx: &mut Ctx, argv: &[&[u8]], by_sha: bool, ro: bool) -> CmdResult {
    let srv = ctx.srv;
    let (keys, args) = split_keys(argv)?;
    let mut sha = [0u8; 40];
    if by_sha {
        if argv[1].len() != 40 {
            return Err(CmdError::Static(errors::NOSCRIPT));
        }
        for (d, s) in sha.iter_mut().zip(argv[1]) {
            *d = s.to_ascii_lowercase();
        }
    } else {
        sha = lua::sha1_hex(argv[1]);
    }
    let generation = srv.scripts.generation.load(SeqCst);
    let (func, flags) = match compiled(srv, &sha, None)? {
        Some(f) => f,
        None if by_sha => return Err(CmdError::Static(errors::NOSCRIPT)),
        None => {
            create(srv, argv[1])?;
            compiled(srv, &sha, None)?.ok_or(CmdError::Static(errors::NOSCRIPT))?
        }
    };
    let name = std::str::from_utf8(&sha).unwrap_or("?");
    run(
        ctx,
        argv,
        Kind::Eval(generation),
        func,
        name,
        flags,
        ro,
        keys,
        args,
    )
}

/// Refusals before a script with `flags` runs (`scriptPrepareForRun`).
pub(crate) fn prepare(srv: &Server, client: &Client, flags: u32, ro: bool) -> Result<(), CmdError> {
    if flags & sflags::EVAL_COMPAT != 0 {
        return Ok(());
    }
    if flags & sflags::NO_WRITES == 0 {
        if srv.repl.link.is_replica() && srv.config().replica_read_only && !client.from_master {
            return Err(CmdError::Static(errors::SCRIPT_READONLY_REPLICA));
        }
        if !client.from_master
            && srv.persist.gate.load(Relaxed)
            && let Some(e) = srv.persist.writes_denied(srv)
        {
            let _ = e;
            return Err(CmdError::Static(errors::SCRIPT_MISCONF));
        }
        if ro {
            return Err(CmdError::Static(errors::SCRIPT_WRITE_FLAG_RO));
        }
        // The no-writes flag implies allow-oom.
        if flags & sflags::ALLOW_OOM == 0
            && client.oom_at_start
            && srv.evict.maxmemory() != 0
            && !client.from_master
        {
            return Err(CmdError::Static(errors::OOM));
        }
    }
    Ok(())
}

/// Why a run was aborted (`lua::Refusal::Abort`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum AbortWhy {
    /// A contended slot before any write: run again under every slot.
    Restart,
    /// An undeclared key in flight before any write: refuse the script.
    Migrating,
}

/// The server side of a run: what `redis.call` executes against.
struct Host<'r, 'a> {
    srv: &'a Server,
    client: &'r mut Client,
    now: u64,
    locks: &'r mut GrowSet<'a>,
    resp3: bool,
    read_only: bool,
    wrote: bool,
    repl: i32,
    abort: Option<AbortWhy>,
    /// Unix ms when the run started (the batch's clock: no clock read per
    /// run; the hook reads the clock every 100,000 instructions).
    start_ms: u64,
    threshold_ms: u64,
    busy: Option<Arc<Busy>>,
    eval: bool,
    name: &'r str,
    /// The caller's command line.
    argv: &'r [&'r [u8]],
    /// A migration was in flight (any DB) when the run started.
    flight_at_start: bool,
    /// Memory was over maxmemory with nothing left to evict when the
    /// script started (and it may not ignore that): its first write that
    /// may grow memory fails with -OOM (Redis' scriptVerifyOOM).
    oom: bool,
}

impl Host<'_, '_> {
    /// Takes the slots `argv` needs in the current DB.
    fn lock_for(
        &mut self,
        id: CmdId,
        spec: &command::CommandSpec,
        argv: &[&[u8]],
    ) -> Result<(), lua::Refusal> {
        if self.locks.holds_everything() {
            return Ok(());
        }
        let mut plan = LockPlan::default();
        exec::plan_command(&mut plan, id, spec, argv, self.client.db);
        // Inside EXEC (a caller's set underneath) a restart would lock
        // what this thread holds already: wait instead (EXEC holds every
        // slot for a script, so nothing is missing there anyway).
        let may_restart = !self.wrote && !self.locks.has_parent();
        if plan.all {
            if may_restart {
                self.abort = Some(AbortWhy::Restart);
                return Err(lua::Refusal::Abort);
            }
            // After a write the whole keyspace is taken slot by slot.
            for db in 0..self.srv.ks.db_count() {
                for slot in 0..protocol::slot::SLOTS {
                    if self.locks.grow(db, slot, true) == Grow::Contended {
                        return Err(lua::Refusal::Error(errors::SCRIPT_SLOT_BUSY.into()));
                    }
                }
            }
            return Ok(());
        }
        let mut pairs: smallvec::SmallVec<[(usize, usize); 8]> = plan.pairs().collect();
        pairs.sort_unstable();
        for (db, slot) in pairs {
            if self.locks.grow(db, slot, false) == Grow::Contended {
                if may_restart {
                    self.abort = Some(AbortWhy::Restart);
                    return Err(lua::Refusal::Abort);
                }
                // After a write: wait, boundedly (a slot below the held
                // ones); one held by somebody waiting for ours fails this
                // command (the script's earlier writes stay, as after any
                // error in a Redis script) instead of deadlocking.
                if self.locks.grow(db, slot, true) == Grow::Contended {
                    return Err(lua::Refusal::Error(errors::SCRIPT_SLOT_BUSY.into()));
                }
            }
        }
        Ok(())
    }
}

impl Host<'_, '_> {
    /// `redis.call`'s checks, locks and the command (see
    /// [`lua::Host::call`]).
    fn call_checked(&mut self, argv: &[&[u8]], reply: &mut Vec<u8>) -> Result<(), lua::Refusal> {
        use lua::Refusal;
        if self.abort.is_some() {
            // An abort a coroutine swallowed: nothing more runs.
            return Err(Refusal::Abort);
        }
        let err = |s: &'static str| Err(Refusal::Error(s.into()));
        let Some(id) = command::lookup(argv[0]) else {
            return err(errors::SCRIPT_UNKNOWN_COMMAND);
        };
        let top = id.spec();
        let spec = if top.subcommands.is_empty() || argv.len() < 2 {
            top
        } else {
            match top.subcommand(argv[1]) {
                Some(s) => s,
                None if id == CmdId::Command => top,
                None => return err(errors::SCRIPT_UNKNOWN_COMMAND),
            }
        };
        if !spec.arity_ok(argv.len()) {
            return err(errors::SCRIPT_WRONG_ARITY);
        }
        // Redis' noscript commands, and ours that cannot run inside another
        // command (Codis' migration commands, SLOTSMGRT-EXEC-WRAPPER: not
        // allowed in MULTI either).
        if spec.has(flags::NOSCRIPT)
            || top.has(flags::NOSCRIPT)
            || spec.has(flags::NO_MULTI)
            || top.has(flags::NO_MULTI)
            || top.group == "codis"
        {
            return err(errors::SCRIPT_NOT_ALLOWED);
        }
        let write = spec.has(flags::WRITE);
        if self.read_only && (write || may_replicate(id)) {
            return err(errors::SCRIPT_WRITE_IN_RO);
        }
        if self.oom && !self.wrote && spec.has(flags::DENYOOM) {
            return err(errors::OOM);
        }
        if write && !self.wrote {
            if !self.client.from_master
                && let Some(e) = crate::repl::refusal(self.srv, spec)
            {
                return Err(Refusal::Error(e.into()));
            }
            if !self.client.from_master
                && self.srv.persist.gate.load(Relaxed)
                && let Some(e) = self.srv.persist.writes_denied(self.srv)
            {
                return Err(Refusal::Error(e));
            }
        }
        self.lock_for(id, spec, argv)?;
        // A key set registered while this script runs waits for the
        // script's epoch: writing into it is safe. Only migrations already
        // in flight when the script started can ship a key under it.
        if write && self.flight_at_start && self.srv.inflight.any(self.client.db) {
            let mut moving = false;
            spec.for_each_key_pos(argv, |i| {
                moving |= self.srv.inflight.is_migrating(self.client.db, argv[i])
            });
            if moving {
                if !self.wrote {
                    self.abort = Some(AbortWhy::Migrating);
                    return Err(Refusal::Abort);
                }
                return err(errors::KEY_BEING_MIGRATED);
            }
        }
        if write {
            self.wrote = true;
            if let Some(b) = &self.busy {
                b.wrote.store(true, Relaxed);
            }
        }
        let mut out = Reply {
            buf: std::mem::take(reply),
            resp3: self.resp3,
        };
        let before = self.client.exec_prop.len();
        exec::call_from_script(
            self.srv,
            self.client,
            &mut out,
            self.now,
            argv,
            &*self.locks,
        );
        match self.repl as u8 {
            0 => self.client.exec_prop.truncate(before),
            crate::propagate::TO_ALL => {}
            to => {
                // REPL_AOF or REPL_REPLICA alone.
                let end = self.client.exec_prop.len();
                self.client
                    .exec_prop_to
                    .extend((before..end).map(|i| (i, to)));
            }
        }
        *reply = out.buf;
        Ok(())
    }
}

impl lua::Host for Host<'_, '_> {
    fn acl_allows(&mut self, argv: &[&[u8]]) -> Option<bool> {
        let (i, spec) = crate::acl::index_of(argv)?;
        let user = self
            .client
            .user
            .clone()
            .unwrap_or_else(|| self.srv.acl.default_user());
        Some(user.unrestricted() || user.check(i, spec, argv).is_ok())
    }

    fn call(&mut self, argv: &[&[u8]], reply: &mut Vec<u8>) -> Result<(), lua::Refusal> {
        let r = self.call_checked(argv, reply);
        if let Err(lua::Refusal::Error(text)) = &r {
            // Counted as Redis' scriptCall counts its refusals: an error
            // reply, and a rejected call of the command when it is known.
            self.srv.stats.count_error(text.as_bytes());
            if let Some(id) = command::lookup(argv[0]) {
                let i = self.srv.stats.index.top(id as usize);
                self.srv.stats.cmds[i].rejected.fetch_add(1, Relaxed);
            }
        }
        r
    }

    fn count_error(&mut self, text: &[u8]) {
        self.srv.stats.count_error(text);
    }

    fn resp3(&self) -> bool {
        self.resp3
    }

    fn set_resp3(&mut self, on: bool) {
        self.resp3 = on;
    }

    fn set_repl(&mut self, flags: i32) {
        self.repl = flags;
    }

    fn interrupted(&mut self) -> bool {
        if self.busy.is_none() {
            if self.threshold_ms == 0 {
                return false;
            }
            let ms = crate::db::now_ms().saturating_sub(self.start_ms);
            if ms < self.threshold_ms {
                return false;
            }
            crate::log::log(
                crate::log::Level::Warning,
                &format!(
                    "Slow script detected: still in execution after {ms} milliseconds. You can try killing the script using the {} command. Script name is: {}.",
                    if self.eval {
                        "SCRIPT KILL"
                    } else {
                        "FUNCTION KILL"
                    },
                    self.name
                ),
            );
            let b = Arc::new(Busy {
                eval: self.eval,
                wrote: AtomicBool::new(self.wrote),
                kill: AtomicBool::new(false),
                from_master: self.client.from_master,
                name: self.name.to_string(),
                command: self.argv.iter().map(|a| a.to_vec()).collect(),
                start_ms: self.start_ms,
            });
            let scripts = &self.srv.scripts;
            lock(&scripts.busy).push(b.clone());
            scripts.busy_count.fetch_add(1, SeqCst);
            self.busy = Some(b);
            hand_off_executor();
        }
        self.busy.as_ref().is_some_and(|b| b.kill.load(SeqCst))
    }
}

/// Once a script is busy: hands this executor worker's queued connections
/// to a new thread (`block_in_place`), so none waits behind the script
/// (with `io-threads 1` nobody else would serve them; with more, tokio
/// does not let other workers steal a worker's most recently woken task).
fn hand_off_executor() {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        // The pause lets the new thread take the worker's core (the rest
        // of the script then runs on this thread outside the executor); it
        // happens once per busy script, which has run for the busy
        // threshold already. If the core came back anyway, the worker's
        // queued tasks are stealable now: two empty tasks make tokio wake a
        // parked worker to steal them (the second displaces the first from
        // the local slot, which notifies).
        tokio::task::block_in_place(|| std::thread::sleep(std::time::Duration::from_millis(20)));
        tokio::spawn(async {});
        tokio::spawn(async {});
    }
}

/// Commands Redis 7.0 flags `may_replicate` (not shown by COMMAND INFO,
/// so not in the table): read-only scripts may not run them.
fn may_replicate(id: CmdId) -> bool {
    matches!(
        id,
        CmdId::Publish | CmdId::Spublish | CmdId::Pfcount | CmdId::Eval | CmdId::Evalsha
    )
}

/// Runs a compiled script (`func` in this thread's registry) for the
/// caller.
/// Which interpreter and calling convention a run uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// EVAL: KEYS and ARGV globals, this thread's EVAL interpreter (the
    /// script generation the reference was looked up in).
    Eval(u64),
    /// FCALL: keys and args as arguments, this thread's functions
    /// interpreter.
    Function,
}

#[allow(clippy::too_many_arguments)]
fn run(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    kind: Kind,
    func: std::ffi::c_int,
    script_name: &str,
    sflags_: u32,
    ro: bool,
    keys: &[&[u8]],
    args: &[&[u8]],
) -> CmdResult {
    let srv = ctx.srv;
    prepare(srv, ctx.client, sflags_, ro)?;
    let read_only = ro || (sflags_ & sflags::EVAL_COMPAT == 0 && sflags_ & sflags::NO_WRITES != 0);
    let db = ctx.client.db;
    // Declared keys in flight: the script is refused whole.
    let _epoch = (!read_only).then(|| srv.inflight.enter());
    if !read_only && srv.inflight.any(db) && keys.iter().any(|k| srv.inflight.is_migrating(db, k)) {
        return Err(CmdError::Migrating);
    }
    let outer_exec = ctx.client.in_exec;
    let outer_script = ctx.client.in_script;
    let flight_at_start = (0..srv.ks.db_count()).any(|d| srv.inflight.any(d));
    let threshold_ms = srv.config().busy_reply_threshold_ms;
    let mut everything = false;
    loop {
        let mut locks = GrowSet::new(&srv.ks, ctx.held);
        if everything {
            locks.lock_everything();
        } else {
            let mut plan = LockPlan::default();
            for k in keys {
                plan.add(db, protocol::slot::slot_of(k));
            }
            locks.lock_plan(plan);
        }
        ctx.client.in_exec = true;
        ctx.client.in_script = true;
        let prop_before = ctx.client.exec_prop.len();
        let mark = ctx.out.buf.len();
        let oom = ctx.client.oom_at_start
            && srv.evict.maxmemory() != 0
            && !ctx.client.from_master
            && sflags_ & sflags::ALLOW_OOM == 0;
        let (end, counted, abort, busy) = {
            let mut host = Host {
                srv,
                client: &mut *ctx.client,
                now: ctx.now,
                locks: &mut locks,
                resp3: false,
                read_only,
                wrote: false,
                repl: 3,
                abort: None,
                start_ms: ctx.now,
                threshold_ms,
                busy: None,
                eval: matches!(kind, Kind::Eval(_)),
                name: script_name,
                argv,
                flight_at_start,
                oom,
            };
            let hook = threshold_ms > 0;
            let out = &mut *ctx.out;
            let mut r = lua::Run {
                func,
                script_name,
                keys,
                args,
                hook,
            };
            // The reference is looked up again with the interpreter
            // borrowed: a SCRIPT FLUSH or a library change on another
            // thread since the first lookup rebuilt it (references are
            // per interpreter).
            let (end, counted) = match kind {
                Kind::Eval(generation) => with_vm(srv, |t| {
                    if t.generation == generation {
                        // The interpreter the reference came from.
                        return t.vm.run_eval(&mut host, &r, out);
                    }
                    let mut sha = [0u8; 40];
                    sha.copy_from_slice(&script_name.as_bytes()[..40.min(script_name.len())]);
                    match compiled_in(srv, t, &sha, None) {
                        Ok(Some((f, _))) => {
                            r.func = f;
                            t.vm.run_eval(&mut host, &r, out)
                        }
                        _ => {
                            out.error(errors::NOSCRIPT.as_bytes());
                            (lua::End::Done, Some(false))
                        }
                    }
                }),
                Kind::Function => functions::with_fns_run(srv, script_name, |vm, f| {
                    r.func = f;
                    vm.run_function(&mut host, &r, out)
                })
                .unwrap_or_else(|| {
                    out.error(errors::FUNCTION_NOT_FOUND.as_bytes());
                    (lua::End::Done, Some(false))
                }),
            };
            (end, counted, host.abort, host.busy.take())
        };
        ctx.client.db = db;
        ctx.client.in_exec = outer_exec;
        ctx.client.in_script = outer_script;
        if let Some(b) = busy {
            let mut list = lock(&srv.scripts.busy);
            list.retain(|x| !Arc::ptr_eq(x, &b));
            srv.scripts.busy_count.fetch_sub(1, SeqCst);
        }
        if end == lua::End::Aborted {
            ctx.client.exec_prop.truncate(prop_before);
            ctx.client.exec_prop_to.retain(|&(i, _)| i < prop_before);
            ctx.out.buf.truncate(mark);
            match abort {
                Some(AbortWhy::Restart) if !everything => {
                    drop(locks);
                    everything = true;
                    continue;
                }
                _ => return Err(CmdError::Migrating),
            }
        }
        if !outer_exec {
            let entries = std::mem::take(&mut ctx.client.exec_prop);
            let targets = std::mem::take(&mut ctx.client.exec_prop_to);
            if !entries.is_empty() {
                srv.prop.emit_split(&entries, &targets, false);
                ctx.client.woff = srv.prop.repl_offset();
            }
        }
        drop(locks);
        if counted == Some(false) {
            // A script error (not a command's, which was counted when the
            // command failed): count it as the gate counts errors.
            if let Some(text) = ctx.out.buf.get(mark + 1..).map(|b| {
                let end = b.len().saturating_sub(2);
                b[..end].to_vec()
            }) {
                srv.stats.count_error(&text);
            }
        }
        return Ok(());
    }
}

fn script_cmd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let srv = ctx.srv;
    let sub = argv[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"help" if argv.len() == 2 => {
            let lines = [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ];
            ctx.out.array(lines.len());
            for l in lines {
                ctx.out.simple(l.as_bytes());
            }
            Ok(())
        }
        b"flush" => {
            match argv.get(2).map(|a| a.to_ascii_lowercase()) {
                None if argv.len() == 2 => {}
                Some(m) if argv.len() == 3 && (m == b"sync" || m == b"async") => {}
                _ => return Err(CmdError::Static(errors::SCRIPT_FLUSH_SYNTAX)),
            }
            srv.scripts.flush();
            ctx.out.ok();
            Ok(())
        }
        b"exists" => {
            ctx.out.array(argv.len() - 2);
            for a in &argv[2..] {
                let mut sha = [0u8; 40];
                let found = a.len() == 40 && {
                    for (d, s) in sha.iter_mut().zip(a.iter()) {
                        *d = s.to_ascii_lowercase();
                    }
                    srv.scripts.get(&sha).is_some()
                };
                ctx.out.int(i64::from(found));
            }
            Ok(())
        }
        b"load" if argv.len() == 3 => {
            let (sha, _) = create(srv, argv[2])?;
            ctx.out.bulk(&sha);
            Ok(())
        }
        b"kill" if argv.len() == 2 => kill(ctx, true),
        b"debug" if argv.len() == 3 => Err(CmdError::Static(errors::SCRIPT_DEBUG_UNSUPPORTED)),
        _ => Err(CmdError::Msg(errors::unknown_subcommand("script", argv[1]))),
    }
}

/// SCRIPT KILL (`eval`) / FUNCTION KILL.
pub fn kill(ctx: &mut Ctx, eval: bool) -> CmdResult {
    let list = lock(&ctx.srv.scripts.busy);
    let Some(b) = list.first() else {
        return Err(CmdError::Static(errors::NOTBUSY));
    };
    if b.from_master {
        return Err(CmdError::Static(errors::UNKILLABLE_MASTER));
    }
    if b.wrote.load(SeqCst) {
        return Err(CmdError::Static(errors::UNKILLABLE_WROTE));
    }
    if eval && !b.eval {
        return Err(CmdError::Static(errors::BUSY_FUNCTION_NOT_EVAL));
    }
    if !eval && b.eval {
        return Err(CmdError::Static(errors::BUSY_EVAL_NOT_FUNCTION));
    }
    b.kill.store(true, SeqCst);
    drop(list);
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests;
