//! The Lua 5.1 interpreter behind EVAL and FCALL (the territory of Redis'
//! `script_lua.c` and the Lua parts of `eval.c`; our own code): one
//! `lua_State` per executor thread ([`Vm`]), its sandbox (allow-listed
//! globals; globals, library tables and their metatables read-only), the
//! `redis` API table, the error handler that adds the script's source and
//! line, and the RESP ⇄ Lua conversions of `redis.call` and of a script's
//! return value. All of the server's Lua FFI is in this module (and in the
//! bundled libraries next to it); the rest of `script/` calls safe methods.
//!
//! Why `mlua-sys` and not `mlua`: `redis.call` is the hot path of every
//! script and must not allocate per call (arguments are borrowed from the
//! Lua stack, replies parsed straight onto it), and a busy script is
//! interrupted from the count hook by raising an error that `pcall` cannot
//! swallow: both need the raw API, which `mlua` wraps with protected calls
//! and registry values on every crossing.
//!
//! Errors: Lua 5.1 raises errors with `longjmp`. Every C function here does
//! its work in Rust frames that hold nothing with a destructor when an
//! error is raised (owned values are dropped first), and catches panics so
//! none unwinds into C.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;

use mlua_sys as ffi;
use protocol::resp::Reply;

/// What a script run asks of the server (implemented by `script/mod.rs`).
pub trait Host {
    /// Runs one command for `redis.call` / `redis.pcall`, appending its
    /// reply (RESP2 or RESP3 as [`Host::resp3`] says) to `reply`.
    fn call(&mut self, argv: &[&[u8]], reply: &mut Vec<u8>) -> Result<(), Refusal>;
    /// The protocol `redis.call` replies are produced in (`redis.setresp`).
    fn resp3(&self) -> bool;
    fn set_resp3(&mut self, on: bool);
    /// `redis.set_repl` flags (REPL_AOF = 1, REPL_REPLICA = 2).
    fn set_repl(&mut self, flags: i32);
    /// From the count hook: whether to stop the script (SCRIPT KILL).
    fn interrupted(&mut self) -> bool;
    /// An error reply the script returned that no command counted yet
    /// (`return redis.error_reply(…)`): errorstats.
    fn count_error(&mut self, text: &[u8]);
    /// `redis.acl_check_cmd`: whether the caller's user may run `argv`
    /// (None: no such command).
    fn acl_allows(&mut self, argv: &[&[u8]]) -> Option<bool> {
        crate::acl::index_of(argv).map(|_| true)
    }
}

/// Why `redis.call` did not run a command.
pub enum Refusal {
    /// An error reply (`ERR` prepended when the text has no code).
    Error(std::borrow::Cow<'static, str>),
    /// Stop the whole run, uncatchably (the caller decides what follows:
    /// a restart under a wider lock set, or refusing the script whole).
    Abort,
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The reply (value or error) was written.
    Done,
    /// [`Refusal::Abort`] stopped it; nothing was written.
    Aborted,
}

thread_local! {
    /// The host of the run in progress on this thread (null between runs).
    static HOST: Cell<*mut (dyn Host + 'static)> = const { Cell::new(ptr::null_mut::<NoHost>() as *mut dyn Host) };
    /// Set when a run was aborted: the hook re-raises on every line so a
    /// `pcall` or `xpcall` in the script cannot resume it.
    static ABORTING: Cell<bool> = const { Cell::new(false) };
    /// Reused buffers of `redis.call`: the arguments' bytes (numbers
    /// formatted) and the reply.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

#[derive(Default)]
struct Scratch {
    /// Formatted numbers (argument bytes not borrowed from Lua).
    nums: Vec<u8>,
    /// (pointer, length) of each argument.
    args: Vec<(*const u8, usize)>,
    reply: Vec<u8>,
}

struct NoHost;
impl Host for NoHost {
    fn call(&mut self, _: &[&[u8]], _: &mut Vec<u8>) -> Result<(), Refusal> {
        Err(Refusal::Abort)
    }
    fn resp3(&self) -> bool {
        false
    }
    fn set_resp3(&mut self, _: bool) {}
    fn set_repl(&mut self, _: i32) {}
    fn interrupted(&mut self) -> bool {
        false
    }
    fn count_error(&mut self, _: &[u8]) {}
}

/// Instructions between two count-hook calls (Redis: 100,000).
const HOOK_EVERY: c_int = 100_000;

/// Registry key of the set of read-only tables.
const PROTECTED: &CStr = c"codis.protected";
/// Registry key of the message of an aborted run.
const ABORT_KEY: &CStr = c"codis.abort";

/// What to run: the registry reference of a compiled function, the name
/// errors give it, the keys and arguments, and whether the count hook
/// watches it.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub func: c_int,
    pub script_name: &'a str,
    pub keys: &'a [&'a [u8]],
    pub args: &'a [&'a [u8]],
    pub hook: bool,
}

/// One interpreter (one per executor thread, see `script/mod.rs`).
pub struct Vm {
    l: *mut ffi::lua_State,
    /// The allocator's pool (declared after `l`: dropped after the state is
    /// closed).
    _pool: Box<Pool>,
    /// Registry reference of the error handler.
    handler: c_int,
    /// Registry reference of the real globals table.
    real_globals: c_int,
    /// Registry reference of the globals a function library sees while it
    /// loads (`redis.register_function`, `redis.log` …; functions
    /// interpreters only).
    library_api: Option<c_int>,
    /// How far the last run filled KEYS and ARGV (tables that are still
    /// clean are refilled, see `run_eval`).
    filled: [usize; 2],
}

impl Drop for Vm {
    fn drop(&mut self) {
        // SAFETY: `l` was created by `lua_newstate` and is closed once,
        // before its pool (a field, dropped after this).
        unsafe { ffi::lua_close(self.l) }
    }
}

/// Size classes of [`Pool`]: 16 bytes apart, up to 256 bytes.
const POOL_STEP: usize = 16;
const POOL_MAX: usize = 256;
/// Free blocks kept per class (the rest go back to the C allocator).
const POOL_KEEP: usize = 4096;

/// The allocator of an interpreter (`lua_Alloc`): blocks of up to 256
/// bytes — tables, strings, closures: what a script allocates per call —
/// are kept on per-size free lists and reused; larger ones are plain
/// `malloc`/`realloc`/`free`. Redis gives its Lua jemalloc; glibc's malloc
/// and free cost a script run about a tenth of its time without this.
#[derive(Default)]
struct Pool {
    free: [Vec<*mut c_void>; POOL_MAX / POOL_STEP],
    /// Bytes Lua holds (its own accounting of block sizes).
    used: usize,
    /// [`MEMORY_LIMIT`] applies (while a script or a library's code runs,
    /// inside a protected call: set-up and reply conversion outside one
    /// must never fail).
    limited: bool,
}

/// The most memory one interpreter may hold: past it an allocation fails
/// and the script gets Lua's `not enough memory` error instead of the
/// process being killed (Redis sets no limit).
pub const MEMORY_LIMIT: usize = 1 << 30;

impl Pool {
    fn class(n: usize) -> usize {
        n.div_ceil(POOL_STEP)
    }

    /// A block of at least `n` (> 0) bytes.
    unsafe fn get(&mut self, n: usize) -> *mut c_void {
        if n <= POOL_MAX {
            let c = Self::class(n);
            if let Some(p) = self.free[c - 1].pop() {
                return p;
            }
            // SAFETY: plain malloc of the class size.
            return unsafe { libc::malloc(c * POOL_STEP) };
        }
        // SAFETY: plain malloc.
        unsafe { libc::malloc(n) }
    }

    /// Takes back a block obtained for `n` bytes.
    unsafe fn put(&mut self, p: *mut c_void, n: usize) {
        if n > 0 && n <= POOL_MAX {
            let list = &mut self.free[Self::class(n) - 1];
            if list.len() < POOL_KEEP {
                list.push(p);
                return;
            }
        }
        // SAFETY: every block came from malloc.
        unsafe { libc::free(p) }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for list in &mut self.free {
            for p in list.drain(..) {
                // SAFETY: pooled blocks came from malloc and are unused.
                unsafe { libc::free(p) }
            }
        }
    }
}

/// Lua's allocation function over a [`Pool`] (`ud`): `nsize` 0 frees,
/// a null `ptr` allocates, otherwise reallocates (`osize` is the block's
/// size; a failed reallocation leaves it untouched and returns null).
unsafe extern "C" fn pool_alloc(
    ud: *mut c_void,
    ptr: *mut c_void,
    osize: usize,
    nsize: usize,
) -> *mut c_void {
    // SAFETY: `ud` is the interpreter's pool, used by its thread only.
    let pool = unsafe { &mut *(ud as *mut Pool) };
    // SAFETY (below): blocks are the pool's or malloc's, sized as Lua says.
    unsafe {
        let old = if ptr.is_null() { 0 } else { osize };
        if nsize == 0 {
            if !ptr.is_null() {
                pool.put(ptr, osize);
                pool.used -= osize.min(pool.used);
            }
            return ptr::null_mut();
        }
        if pool.limited && nsize > old && pool.used + (nsize - old) > MEMORY_LIMIT {
            return ptr::null_mut();
        }
        let p = pool_realloc(pool, ptr, osize, nsize);
        if !p.is_null() {
            pool.used = pool.used - old.min(pool.used) + nsize;
        }
        p
    }
}

/// [`pool_alloc`]'s allocation and reallocation (`nsize` > 0).
unsafe fn pool_realloc(
    pool: &mut Pool,
    ptr: *mut c_void,
    osize: usize,
    nsize: usize,
) -> *mut c_void {
    // SAFETY: as in `pool_alloc`.
    unsafe {
        if ptr.is_null() {
            return pool.get(nsize);
        }
        let small = |n: usize| n <= POOL_MAX;
        if small(osize) && small(nsize) && Pool::class(osize) == Pool::class(nsize) {
            return ptr;
        }
        if !small(osize) && !small(nsize) {
            return libc::realloc(ptr, nsize);
        }
        let new = pool.get(nsize);
        if new.is_null() {
            // A shrink cannot fail (Lua's collector relies on it): the old
            // block is big enough.
            return if nsize < osize { ptr } else { ptr::null_mut() };
        }
        std::ptr::copy_nonoverlapping(ptr as *const u8, new as *mut u8, osize.min(nsize));
        pool.put(ptr, osize);
        new
    }
}

/// An error outside any protected call (a bug of ours): logged, then Lua
/// aborts the process as `luaL_newstate`'s handler would.
unsafe extern "C-unwind" fn at_panic(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state with the error message on top.
    let msg = unsafe { to_bytes(l, -1) }.map(|b| String::from_utf8_lossy(b).into_owned());
    crate::log::log(
        crate::log::Level::Warning,
        &format!(
            "PANIC: unprotected error in call to Lua API ({})",
            msg.unwrap_or_default()
        ),
    );
    0
}

/// Pushes a byte string.
#[inline]
unsafe fn push_bytes(l: *mut ffi::lua_State, b: &[u8]) {
    // SAFETY: `b` is valid for its length; Lua copies it.
    unsafe {
        ffi::lua_pushlstring(l, b.as_ptr() as *const c_char, b.len());
    }
}

/// The bytes of the string at `idx` (numbers are converted in place, as
/// `lua_tolstring` does), or None. Valid while the value stays on the stack.
#[inline]
unsafe fn to_bytes<'a>(l: *mut ffi::lua_State, idx: c_int) -> Option<&'a [u8]> {
    let mut len = 0usize;
    // SAFETY: a valid index; the returned pointer lives as long as the value.
    unsafe {
        let p = ffi::lua_tolstring(l, idx, &mut len);
        (!p.is_null()).then(|| std::slice::from_raw_parts(p as *const u8, len))
    }
}

/// Sets `t[k] = v` (raw) for the table at the top, with `v` pushed by `f`.
unsafe fn set_field(l: *mut ffi::lua_State, k: &CStr, f: impl FnOnce()) {
    // SAFETY: the table is at -1; `f` pushes exactly one value.
    unsafe {
        ffi::lua_pushstring(l, k.as_ptr());
        f();
        ffi::lua_rawset(l, -3);
    }
}

/// Field names the conversions use on every call, interned once per
/// interpreter at fixed registry slots (`lua_rawgeti` pushes them without
/// hashing a C string each time).
#[derive(Clone, Copy)]
#[repr(i32)]
enum S {
    Err = 1,
    Ok,
    Double,
    BigNumber,
    Verbatim,
    Map,
    Set,
    Keys,
    Argv,
    Ignore,
    Str,
    Format,
}

const S_TEXT: [&CStr; 12] = [
    c"err",
    c"ok",
    c"double",
    c"big_number",
    c"verbatim_string",
    c"map",
    c"set",
    c"KEYS",
    c"ARGV",
    c"ignore_error_stats_update",
    c"string",
    c"format",
];

/// Pushes the interned name `n`.
#[inline]
unsafe fn push_s(l: *mut ffi::lua_State, n: S) {
    // SAFETY: the slot was filled by `Vm::new`.
    unsafe {
        ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, n as i32 as ffi::lua_Integer);
    }
}

/// Sets `t[n] = v` (raw) for the table at the top, `v` pushed by `f`.
unsafe fn set_field_s(l: *mut ffi::lua_State, n: S, f: impl FnOnce()) {
    // SAFETY: the table is at -1; `f` pushes exactly one value.
    unsafe {
        push_s(l, n);
        f();
        ffi::lua_rawset(l, -3);
    }
}

/// Pushes `t[n]` without metamethods, `t` at `idx`.
unsafe fn raw_get_s(l: *mut ffi::lua_State, idx: c_int, n: S) {
    // SAFETY: a table at `idx`.
    unsafe {
        let t = if idx < 0 {
            ffi::lua_gettop(l) + idx + 1
        } else {
            idx
        };
        push_s(l, n);
        ffi::lua_rawget(l, t);
    }
}

/// Raises the error value at the top of the stack. The caller's Rust frames
/// must hold nothing with a destructor.
unsafe fn raise(l: *mut ffi::lua_State) -> ! {
    // SAFETY: an error value is on the stack.
    unsafe { ffi::lua_error(l) }
}

/// Raises `msg` as a plain string error (no position), as the patched Lua
/// of Redis does for read-only violations from C functions.
unsafe fn raise_plain(l: *mut ffi::lua_State, msg: &CStr) -> ! {
    // SAFETY: see `raise`.
    unsafe {
        ffi::lua_pushstring(l, msg.as_ptr());
        raise(l)
    }
}

/// Raises `msg` prefixed with the position of the calling Lua code
/// (`luaL_error`).
unsafe fn raise_where(l: *mut ffi::lua_State, msg: &[u8]) -> ! {
    // SAFETY: see `raise`; `msg` is copied onto the stack before raising.
    unsafe {
        ffi::luaL_where(l, 1);
        push_bytes(l, msg);
        ffi::lua_concat(l, 2);
        raise(l)
    }
}

/// Pushes Redis' error table `{err = "<CODE> <msg>"}` for `text` in the
/// form `-CODE msg` (the code is the first word) or `msg` (code `ERR`);
/// trailing CR/LF trimmed (`luaPushErrorBuff`).
unsafe fn push_error_table(l: *mut ffi::lua_State, text: &[u8]) {
    let (code, msg): (&[u8], &[u8]) = match text.strip_prefix(b"-") {
        Some(rest) => match memchr::memchr(b' ', rest) {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", text),
    };
    let mut end = msg.len();
    while end > 0 && matches!(msg[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && matches!(msg[start], b'\r' | b'\n') {
        start += 1;
    }
    let msg = &msg[start..end];
    // SAFETY: pushes a table with one field; no error other than memory.
    unsafe {
        ffi::lua_createtable(l, 0, 2);
        push_s(l, S::Err);
        push_bytes(l, code);
        ffi::lua_pushstring(l, c" ".as_ptr());
        push_bytes(l, msg);
        ffi::lua_concat(l, 3);
        ffi::lua_rawset(l, -3);
    }
}

/// Marks the error table at the top: its error was counted already
/// (`ignore_error_stats_update`).
unsafe fn mark_counted(l: *mut ffi::lua_State) {
    // SAFETY: the table is at -1.
    unsafe {
        set_field(l, c"ignore_error_stats_update", || {
            ffi::lua_pushboolean(l, 1)
        })
    }
}

/// Runs `f` catching panics: a panic becomes a Lua error string.
#[inline]
fn guarded(l: *mut ffi::lua_State, f: impl FnOnce() -> c_int) -> c_int {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(n) => n,
        Err(payload) => {
            drop(payload);
            // SAFETY: the payload is dropped; nothing else is alive here.
            unsafe { raise_plain(l, c"internal error in a redis library function") }
        }
    }
}

/// The host of the current run, if any.
fn host() -> Option<&'static mut dyn Host> {
    let p = HOST.with(|h| h.get());
    // SAFETY: set by `Vm::run` for the duration of the run, on this thread,
    // to a host that outlives it; C functions run only inside that run.
    (!p.is_null()).then(|| unsafe { &mut *p })
}

// ---------------------------------------------------------------------------
// redis.* functions
// ---------------------------------------------------------------------------

/// What `redis.call`/`pcall` decided before touching Lua again.
enum CallEnd {
    /// The reply bytes are in the scratch buffer.
    Reply,
    Error(std::borrow::Cow<'static, str>),
    Abort,
}

unsafe extern "C-unwind" fn redis_call(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { generic_call(l, true) }
}

unsafe extern "C-unwind" fn redis_pcall(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { generic_call(l, false) }
}

/// `redis.call` / `redis.pcall` (`luaRedisGenericCommand`).
unsafe fn generic_call(l: *mut ffi::lua_State, raise_errors: bool) -> c_int {
    // SAFETY (whole function): `l` is the running state; the arguments are
    // on its stack while the command runs (their bytes are borrowed).
    unsafe {
        if ABORTING.with(|a| a.get()) {
            abort_run(l)
        }
        if KILLED.with(|k| k.get()) {
            push_error_table(l, b"Script killed by user with SCRIPT KILL...");
            raise(l)
        }
        let argc = ffi::lua_gettop(l);
        let end = guarded_end(|| {
            let Some(host) = host() else {
                return CallEnd::Error(
                    "ERR redis.call/pcall can only be called inside a script invocation".into(),
                );
            };
            if argc == 0 {
                return CallEnd::Error(
                    "ERR Please specify at least one argument for this redis lib call".into(),
                );
            }
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                let s = &mut *s;
                s.nums.clear();
                s.args.clear();
                s.reply.clear();
                // Numbers are formatted into `nums` first (its buffer may
                // move while it grows), then the pointers are taken.
                let mut spans: smallvec::SmallVec<[(bool, usize, usize); 16]> =
                    smallvec::SmallVec::new();
                for i in 1..=argc {
                    if ffi::lua_type(l, i) == ffi::LUA_TNUMBER {
                        let start = s.nums.len();
                        protocol::number::write_f64(&mut s.nums, ffi::lua_tonumber(l, i));
                        spans.push((true, start, s.nums.len() - start));
                    } else {
                        match to_bytes(l, i) {
                            Some(b) => {
                                s.args.push((b.as_ptr(), b.len()));
                                spans.push((false, s.args.len() - 1, 0));
                            }
                            None => {
                                return CallEnd::Error(
                                    "ERR Lua redis lib command arguments must be strings or integers"
                                        .into(),
                                );
                            }
                        }
                    }
                }
                let mut argv: smallvec::SmallVec<[&[u8]; 16]> = smallvec::SmallVec::new();
                for &(num, a, b) in &spans {
                    argv.push(if num {
                        &s.nums[a..a + b]
                    } else {
                        let (p, n) = s.args[a];
                        std::slice::from_raw_parts(p, n)
                    });
                }
                match host.call(&argv, &mut s.reply) {
                    Ok(()) => CallEnd::Reply,
                    Err(Refusal::Error(e)) => CallEnd::Error(e),
                    Err(Refusal::Abort) => CallEnd::Abort,
                }
            })
        });
        ffi::lua_settop(l, 0);
        match end {
            CallEnd::Abort => {
                drop(end);
                abort_run(l)
            }
            CallEnd::Error(text) => {
                // The text carries its code (`ERR …`, `READONLY …`).
                let mut t = Vec::with_capacity(text.len() + 1);
                t.push(b'-');
                t.extend_from_slice(text.as_bytes());
                drop(text);
                push_error_table(l, &t);
                drop(t);
                mark_counted(l);
                if raise_errors {
                    raise(l)
                }
                1
            }
            CallEnd::Reply => {
                // Through a raw pointer, not a borrow guard: pushing can
                // raise (out of memory), and a guard jumped over would stay
                // borrowed for good.
                let reply: *const Vec<u8> = SCRATCH.with(|s| {
                    let p = s.as_ptr();
                    &(*p).reply as *const Vec<u8>
                });
                push_reply(l, &*reply);
                let is_error = (*reply).first() == Some(&b'-');
                if raise_errors && is_error {
                    raise(l)
                }
                1
            }
        }
    }
}

fn guarded_end(f: impl FnOnce() -> CallEnd) -> CallEnd {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| CallEnd::Error("ERR internal error running the command".into()))
}

/// Stops the run uncatchably: the hook fires on every line from now on
/// and re-raises (`pcall`/`xpcall` in the script cannot resume it).
unsafe fn abort_run(l: *mut ffi::lua_State) -> ! {
    ABORTING.with(|a| a.set(true));
    // SAFETY: a valid state; the hook stays until the run ends.
    unsafe {
        ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKLINE | ffi::LUA_MASKCOUNT, 1);
        ffi::lua_pushlightuserdata(l, ABORT_KEY.as_ptr() as *mut c_void);
        raise(l)
    }
}

/// Parses one RESP reply of ours and pushes it as Redis converts replies
/// for scripts (`redisProtocolToLuaType`).
unsafe fn push_reply(l: *mut ffi::lua_State, buf: &[u8]) {
    let mut pos = 0;
    // SAFETY: see `push_value`.
    unsafe { push_value(l, buf, &mut pos) };
}

/// The line at `*pos` (without CRLF), advancing past it.
fn line<'a>(buf: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let start = *pos;
    let end = memchr::memchr(b'\r', &buf[start..]).map_or(buf.len(), |i| start + i);
    *pos = (end + 2).min(buf.len());
    &buf[start..end]
}

fn num(b: &[u8]) -> i64 {
    protocol::number::parse_i64(b).unwrap_or(0)
}

/// Pushes the value at `*pos` (one stack slot; `lua_checkstack` first).
unsafe fn push_value(l: *mut ffi::lua_State, buf: &[u8], pos: &mut usize) {
    // SAFETY (whole function): pushes onto a valid state; the reply was
    // produced by the server, so it is well formed.
    unsafe {
        if ffi::lua_checkstack(l, 4) == 0 {
            // Redis panics here; a script nesting replies this deep is
            // answered with an error value instead.
            push_error_table(l, b"reached lua stack limit");
            *pos = buf.len();
            return;
        }
        let Some(&kind) = buf.get(*pos) else {
            ffi::lua_pushnil(l);
            return;
        };
        *pos += 1;
        let head = line(buf, pos);
        match kind {
            b'+' => {
                ffi::lua_createtable(l, 0, 1);
                set_field_s(l, S::Ok, || push_bytes(l, head));
            }
            b'-' => {
                let mut text = Vec::with_capacity(head.len() + 1);
                text.push(b'-');
                text.extend_from_slice(head);
                push_error_table(l, &text);
                drop(text);
                mark_counted(l);
            }
            b':' => ffi::lua_pushnumber(l, num(head) as f64),
            b'$' | b'=' | b'!' => {
                let n = num(head);
                if n < 0 {
                    ffi::lua_pushboolean(l, 0);
                    return;
                }
                let n = n as usize;
                let body = &buf[*pos..(*pos + n).min(buf.len())];
                *pos = (*pos + n + 2).min(buf.len());
                match kind {
                    b'$' => push_bytes(l, body),
                    b'=' => {
                        let (fmt, text) = if body.len() >= 4 {
                            (&body[..3], &body[4..])
                        } else {
                            (&b"txt"[..], body)
                        };
                        ffi::lua_createtable(l, 0, 1);
                        push_s(l, S::Verbatim);
                        ffi::lua_createtable(l, 0, 2);
                        set_field_s(l, S::Str, || push_bytes(l, text));
                        set_field_s(l, S::Format, || push_bytes(l, fmt));
                        ffi::lua_rawset(l, -3);
                    }
                    _ => {
                        let mut text = Vec::with_capacity(body.len() + 1);
                        text.push(b'-');
                        text.extend_from_slice(body);
                        push_error_table(l, &text);
                        drop(text);
                        mark_counted(l);
                    }
                }
            }
            b'*' => {
                let n = num(head);
                if n < 0 {
                    ffi::lua_pushboolean(l, 0);
                    return;
                }
                ffi::lua_createtable(l, n.min(1 << 16) as c_int, 0);
                for i in 0..n {
                    push_value(l, buf, pos);
                    ffi::lua_rawseti(l, -2, (i + 1) as ffi::lua_Integer);
                }
            }
            b'%' => {
                let n = num(head).max(0);
                ffi::lua_createtable(l, 0, 1);
                push_s(l, S::Map);
                ffi::lua_createtable(l, 0, n.min(1 << 16) as c_int);
                for _ in 0..n {
                    push_value(l, buf, pos);
                    push_value(l, buf, pos);
                    ffi::lua_settable(l, -3);
                }
                ffi::lua_rawset(l, -3);
            }
            b'~' => {
                let n = num(head).max(0);
                ffi::lua_createtable(l, 0, 1);
                push_s(l, S::Set);
                ffi::lua_createtable(l, 0, n.min(1 << 16) as c_int);
                for _ in 0..n {
                    push_value(l, buf, pos);
                    ffi::lua_pushboolean(l, 1);
                    ffi::lua_settable(l, -3);
                }
                ffi::lua_rawset(l, -3);
            }
            b'_' => ffi::lua_pushnil(l),
            b'#' => ffi::lua_pushboolean(l, c_int::from(head == b"t")),
            b',' => {
                let d = std::str::from_utf8(head)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0);
                ffi::lua_createtable(l, 0, 1);
                set_field_s(l, S::Double, || ffi::lua_pushnumber(l, d));
            }
            b'(' => {
                ffi::lua_createtable(l, 0, 1);
                set_field_s(l, S::BigNumber, || push_bytes(l, head));
            }
            b'|' => {
                // Attributes are not shown to scripts: skip them, then the
                // value they annotate.
                let n = num(head).max(0);
                for _ in 0..2 * n {
                    push_value(l, buf, pos);
                    ffi::lua_settop(l, -2);
                }
                push_value(l, buf, pos);
            }
            _ => ffi::lua_pushnil(l),
        }
    }
}

unsafe extern "C-unwind" fn redis_sha1hex(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; errors raised with nothing owned alive.
    unsafe {
        if ffi::lua_gettop(l) != 1 {
            push_error_table(l, b"wrong number of arguments");
            raise(l)
        }
        let hex = sha1_hex(to_bytes(l, 1).unwrap_or(b""));
        push_bytes(l, &hex);
        1
    }
}

/// The lowercase hex SHA1 of `b` (script names).
pub fn sha1_hex(b: &[u8]) -> [u8; 40] {
    let digest = sha1_smol::Sha1::from(b).digest().bytes();
    let mut out = [0u8; 40];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in digest.iter().enumerate() {
        out[2 * i] = HEX[(byte >> 4) as usize];
        out[2 * i + 1] = HEX[(byte & 15) as usize];
    }
    out
}

unsafe extern "C-unwind" fn redis_error_reply(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe {
        if ffi::lua_gettop(l) != 1 || ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
            push_error_table(l, b"wrong number or type of arguments");
            return 1;
        }
        let s = to_bytes(l, -1).unwrap_or(b"");
        if s.first() == Some(&b'-') {
            push_error_table(l, s);
        } else {
            let mut t = Vec::with_capacity(s.len() + 1);
            t.push(b'-');
            t.extend_from_slice(s);
            push_error_table(l, &t);
        }
        1
    }
}

unsafe extern "C-unwind" fn redis_status_reply(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe {
        if ffi::lua_gettop(l) != 1 || ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
            push_error_table(l, b"wrong number or type of arguments");
            return 1;
        }
        ffi::lua_createtable(l, 0, 1);
        push_s(l, S::Ok);
        ffi::lua_pushvalue(l, -3);
        ffi::lua_rawset(l, -3);
        1
    }
}

unsafe extern "C-unwind" fn redis_log(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; the message is built and logged before any
    // error could be raised.
    unsafe {
        let argc = ffi::lua_gettop(l);
        if argc < 2 {
            push_error_table(l, b"redis.log() requires two arguments or more.");
            raise(l)
        }
        if ffi::lua_isnumber(l, 1) == 0 {
            push_error_table(l, b"First argument must be a number (log level).");
            raise(l)
        }
        let level = ffi::lua_tonumber(l, 1) as i32;
        if !(0..=3).contains(&level) {
            push_error_table(l, b"Invalid debug level.");
            raise(l)
        }
        guarded(l, || {
            let mut msg = Vec::new();
            for i in 2..=argc {
                if let Some(s) = to_bytes(l, i) {
                    if i != 2 {
                        msg.push(b' ');
                    }
                    msg.extend_from_slice(s);
                }
            }
            let text = String::from_utf8_lossy(&msg);
            match level {
                0 => crate::log::log(crate::log::Level::Debug, &text),
                1 => crate::log::log(crate::log::Level::Verbose, &text),
                2 => crate::log::log(crate::log::Level::Notice, &text),
                _ => crate::log::log(crate::log::Level::Warning, &text),
            }
            0
        })
    }
}

unsafe extern "C-unwind" fn redis_setresp(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe {
        let Some(h) = host() else {
            push_error_table(
                l,
                b"redis.setresp can only be called inside a script invocation",
            );
            raise(l)
        };
        if ffi::lua_gettop(l) != 1 {
            push_error_table(l, b"redis.setresp() requires one argument.");
            raise(l)
        }
        let v = ffi::lua_tonumber(l, 1) as i32;
        if v != 2 && v != 3 {
            push_error_table(l, b"RESP version must be 2 or 3.");
            raise(l)
        }
        h.set_resp3(v == 3);
        0
    }
}

unsafe extern "C-unwind" fn redis_set_repl(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe {
        let Some(h) = host() else {
            push_error_table(
                l,
                b"redis.set_repl can only be called inside a script invocation",
            );
            raise(l)
        };
        if ffi::lua_gettop(l) != 1 {
            push_error_table(l, b"redis.set_repl() requires two arguments.");
            raise(l)
        }
        let flags = ffi::lua_tonumber(l, -1) as i32;
        if flags & !3 != 0 {
            push_error_table(
                l,
                b"Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
            );
            raise(l)
        }
        h.set_repl(flags);
        0
    }
}

unsafe extern "C-unwind" fn redis_replicate_commands(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state. Effects replication is the only mode (7.0).
    unsafe {
        ffi::lua_pushboolean(l, 1);
        1
    }
}

unsafe extern "C-unwind" fn redis_noop(_l: *mut ffi::lua_State) -> c_int {
    0
}

unsafe extern "C-unwind" fn redis_breakpoint(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state. No debugger session: a breakpoint is ignored.
    unsafe {
        ffi::lua_pushboolean(l, 0);
        1
    }
}

/// `pcall` as Redis replaces it: an error table caught is returned as its
/// `err` string (scripts written for Redis 6 compare strings); an aborted
/// run is not caught.
unsafe extern "C-unwind" fn lua_pcall_compat(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; `lua_pcall` protects the call.
    unsafe {
        let argc = ffi::lua_gettop(l);
        if argc < 1 {
            ffi::luaL_checkany(l, 1);
        }
        ffi::lua_pushboolean(l, 1);
        ffi::lua_insert(l, 1);
        if ffi::lua_pcall(l, argc - 1, ffi::LUA_MULTRET, 0) != 0 {
            if ABORTING.with(|a| a.get()) {
                raise(l)
            }
            ffi::lua_remove(l, 1);
            if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
                ffi::lua_getfield(l, -1, c"err".as_ptr());
                if ffi::lua_isstring(l, -1) != 0 {
                    ffi::lua_replace(l, -2);
                } else {
                    ffi::lua_settop(l, -2);
                }
            }
            ffi::lua_pushboolean(l, 0);
            ffi::lua_insert(l, 1);
        }
        ffi::lua_gettop(l)
    }
}

/// `rawset`, `setmetatable`, `table.insert` … guarded: the original
/// function (upvalue 1) runs unless its first argument is a read-only table.
unsafe extern "C-unwind" fn readonly_guard(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; the upvalue is the wrapped function.
    unsafe {
        if ffi::lua_type(l, 1) == ffi::LUA_TTABLE && is_protected(l, 1) {
            raise_plain(l, c"Attempt to modify a readonly table")
        }
        let n = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, n, ffi::LUA_MULTRET);
        ffi::lua_gettop(l)
    }
}

/// `coroutine.resume`: an abort or a SCRIPT KILL raised inside the
/// coroutine (where `resume` would return it as a value) goes on up.
unsafe extern "C-unwind" fn resume_guard(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; the upvalue is the original function.
    unsafe {
        let n = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, n, ffi::LUA_MULTRET);
        if ABORTING.with(|a| a.get()) {
            abort_run(l)
        }
        if KILLED.with(|k| k.get()) {
            push_error_table(l, b"Script killed by user with SCRIPT KILL...");
            raise(l)
        }
        ffi::lua_gettop(l)
    }
}

/// The first byte of a precompiled chunk: Redis only ever parses source
/// (a crafted binary chunk is a way out of the sandbox).
const BINARY_CHUNK: u8 = 0x1b;

/// `loadstring(s [, name])` for source text only.
unsafe extern "C-unwind" fn loadstring_guard(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; the upvalue is the original function.
    unsafe {
        if ffi::lua_type(l, 1) == ffi::LUA_TSTRING
            && to_bytes(l, 1).and_then(|b| b.first().copied()) == Some(BINARY_CHUNK)
        {
            ffi::lua_pushnil(l);
            ffi::lua_pushstring(l, c"binary chunks are not allowed".as_ptr());
            return 2;
        }
        readonly_passthrough(l)
    }
}

/// `load(f [, name])`: the pieces are gathered first, then loaded as
/// source only.
unsafe extern "C-unwind" fn load_guard(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; calls the reader through the API.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TFUNCTION);
        let name_given = ffi::lua_gettop(l) >= 2;
        let mut parts = 0;
        loop {
            ffi::lua_pushvalue(l, 1);
            ffi::lua_call(l, 0, 1);
            if ffi::lua_type(l, -1) == ffi::LUA_TNIL {
                ffi::lua_settop(l, -2);
                break;
            }
            if ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
                ffi::lua_settop(l, -(parts + 2));
                ffi::lua_pushnil(l);
                ffi::lua_pushstring(l, c"reader function must return a string".as_ptr());
                return 2;
            }
            parts += 1;
            if parts > 1 {
                ffi::lua_concat(l, 2);
                parts = 1;
            }
        }
        if parts == 0 {
            ffi::lua_pushstring(l, c"".as_ptr());
        }
        let code = to_bytes(l, -1).unwrap_or(b"");
        if code.first() == Some(&BINARY_CHUNK) {
            ffi::lua_pushnil(l);
            ffi::lua_pushstring(l, c"binary chunks are not allowed".as_ptr());
            return 2;
        }
        let (ptr, len) = (code.as_ptr(), code.len());
        let name = if name_given {
            ffi::luaL_optlstring(l, 2, c"=(load)".as_ptr(), ptr::null_mut())
        } else {
            c"=(load)".as_ptr()
        };
        if ffi::luaL_loadbuffer(l, ptr as *const c_char, len, name) == 0 {
            1
        } else {
            ffi::lua_pushnil(l);
            ffi::lua_insert(l, -2);
            2
        }
    }
}

/// Calls the original function (upvalue 1) with every argument.
unsafe fn readonly_passthrough(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; the upvalue is a function.
    unsafe {
        let n = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, n, ffi::LUA_MULTRET);
        ffi::lua_gettop(l)
    }
}

/// Whether the table at `idx` is read-only.
unsafe fn is_protected(l: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: a valid state and index.
    unsafe {
        let idx = if idx < 0 {
            ffi::lua_gettop(l) + idx + 1
        } else {
            idx
        };
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, PROTECTED.as_ptr());
        ffi::lua_pushvalue(l, idx);
        ffi::lua_rawget(l, -2);
        let p = ffi::lua_toboolean(l, -1) != 0;
        ffi::lua_settop(l, -3);
        p
    }
}

/// `__newindex` of read-only tables.
unsafe extern "C-unwind" fn readonly_newindex(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe { raise_where(l, b"Attempt to modify a readonly table") }
}

/// `__index` of the globals: reading an unknown global is an error.
unsafe extern "C-unwind" fn missing_global(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; the message is built on the Lua stack.
    unsafe {
        ffi::luaL_where(l, 1);
        ffi::lua_pushstring(
            l,
            c"Script attempted to access nonexistent global variable '".as_ptr(),
        );
        ffi::lua_pushvalue(l, 2);
        ffi::lua_pushstring(l, c"'".as_ptr());
        if ffi::lua_isstring(l, -2) == 0 {
            ffi::lua_settop(l, -3);
            ffi::lua_pushstring(l, c"?".as_ptr());
            ffi::lua_pushstring(l, c"'".as_ptr());
        }
        ffi::lua_concat(l, 4);
        raise(l)
    }
}

// ---------------------------------------------------------------------------
// math.random as Redis has it: the 48-bit linear congruential generator of
// POSIX `lrand48`, one sequence for the whole server.
// ---------------------------------------------------------------------------

static RAND48: std::sync::Mutex<u64> = std::sync::Mutex::new(0x1234_ABCD_330E);

fn lrand48() -> i32 {
    let mut x = RAND48.lock().unwrap_or_else(|p| p.into_inner());
    *x = (x.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    (*x >> 17) as i32
}

fn srand48(seed: i32) {
    let s = seed as u32 as u64;
    *RAND48.lock().unwrap_or_else(|p| p.into_inner()) = (s << 16) | 0x330E;
}

unsafe extern "C-unwind" fn math_random(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; argument errors raised by luaL_* with nothing
    // owned alive.
    unsafe {
        if host().is_none() {
            raise_where(
                l,
                b"math.random can only be called inside a script invocation",
            )
        }
        const MAX: i32 = i32::MAX;
        let r = (lrand48() % MAX) as f64 / MAX as f64;
        match ffi::lua_gettop(l) {
            0 => ffi::lua_pushnumber(l, r),
            1 => {
                let u = ffi::luaL_checkinteger(l, 1) as i32;
                if u < 1 {
                    ffi::luaL_argerror(l, 1, c"interval is empty".as_ptr());
                }
                ffi::lua_pushnumber(l, (r * u as f64).floor() + 1.0);
            }
            2 => {
                let lo = ffi::luaL_checkinteger(l, 1) as i32;
                let up = ffi::luaL_checkinteger(l, 2) as i32;
                if lo > up {
                    ffi::luaL_argerror(l, 2, c"interval is empty".as_ptr());
                }
                ffi::lua_pushnumber(l, (r * (up as f64 - lo as f64 + 1.0)).floor() + lo as f64);
            }
            _ => raise_where(l, b"wrong number of arguments"),
        }
        1
    }
}

unsafe extern "C-unwind" fn math_randomseed(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe {
        if host().is_none() {
            raise_where(
                l,
                b"math.randomseed can only be called inside a script invocation",
            )
        }
        srand48(ffi::luaL_checkinteger(l, 1) as i32);
        0
    }
}

// ---------------------------------------------------------------------------
// The hook and the error handler
// ---------------------------------------------------------------------------

unsafe extern "C-unwind" fn hook(l: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    // SAFETY: called by Lua inside a run; raises with nothing owned alive.
    unsafe {
        if ABORTING.with(|a| a.get()) {
            ffi::lua_pushlightuserdata(l, ABORT_KEY.as_ptr() as *mut c_void);
            raise(l)
        }
        let kill = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            host().is_some_and(|h| h.interrupted())
        }))
        .unwrap_or(false);
        if kill {
            // Fire on every line from now on, so a pcall in the script
            // cannot catch the error and go on (Redis does the same).
            ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKLINE, 0);
            KILLED.with(|k| k.set(true));
        }
        if KILLED.with(|k| k.get()) {
            push_error_table(l, b"Script killed by user with SCRIPT KILL...");
            raise(l)
        }
    }
}

thread_local! {
    static KILLED: Cell<bool> = const { Cell::new(false) };
}

/// The error handler of every run (Redis' `__redis__err__handler`, kept in
/// the registry rather than in the globals): turns the error into a table
/// `{err=…, source=…, line=…}` naming the script line that raised it (the
/// caller's line when the error came from a C function).
unsafe extern "C-unwind" fn error_handler(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state with the error value at 1.
    unsafe {
        if ffi::lua_type(l, 1) == ffi::LUA_TLIGHTUSERDATA {
            return 1;
        }
        let mut ar: ffi::lua_Debug = std::mem::zeroed();
        let mut have = ffi::lua_getstack(l, 1, &mut ar) != 0
            && ffi::lua_getinfo(l, c"nSl".as_ptr(), &mut ar) != 0;
        if have && !ar.what.is_null() && CStr::from_ptr(ar.what) == c"C" {
            have = ffi::lua_getstack(l, 2, &mut ar) != 0
                && ffi::lua_getinfo(l, c"nSl".as_ptr(), &mut ar) != 0;
        }
        if ffi::lua_type(l, 1) != ffi::LUA_TTABLE {
            ffi::lua_createtable(l, 0, 3);
            ffi::lua_pushstring(l, c"err".as_ptr());
            ffi::lua_pushstring(l, c"ERR ".as_ptr());
            ffi::lua_getglobal(l, c"tostring".as_ptr());
            ffi::lua_pushvalue(l, 1);
            ffi::lua_call(l, 1, 1);
            ffi::lua_concat(l, 2);
            ffi::lua_rawset(l, -3);
            ffi::lua_replace(l, 1);
        }
        if have {
            ffi::lua_settop(l, 1);
            ffi::lua_pushstring(l, c"source".as_ptr());
            ffi::lua_pushstring(l, ar.source);
            ffi::lua_settable(l, 1);
            ffi::lua_pushstring(l, c"line".as_ptr());
            ffi::lua_pushinteger(l, ar.currentline as ffi::lua_Integer);
            ffi::lua_settable(l, 1);
        }
        ffi::lua_settop(l, 1);
        1
    }
}

// ---------------------------------------------------------------------------
// Building the interpreter
// ---------------------------------------------------------------------------

/// Globals scripts may see (Redis 7.0.15's: its allow lists less
/// `getfenv`, `setfenv` and `newproxy`, which it removes; `debug` is not
/// opened: the error handler reads the stack from Rust).
const ALLOWED: &[&str] = &[
    "string",
    "cjson",
    "bit",
    "cmsgpack",
    "math",
    "table",
    "struct",
    "redis",
    "xpcall",
    "tostring",
    "setmetatable",
    "next",
    "assert",
    "tonumber",
    "rawequal",
    "collectgarbage",
    "getmetatable",
    "rawset",
    "pcall",
    "coroutine",
    "type",
    "_G",
    "select",
    "unpack",
    "gcinfo",
    "pairs",
    "rawget",
    "loadstring",
    "ipairs",
    "_VERSION",
    "load",
    "error",
];

unsafe extern "C-unwind" fn open_libs(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: runs under lua_cpcall on a fresh state.
    unsafe {
        for (name, f) in [
            (c"", ffi::luaopen_base as ffi::lua_CFunction),
            (c"table", ffi::luaopen_table),
            (c"string", ffi::luaopen_string),
            (c"math", ffi::luaopen_math),
        ] {
            ffi::lua_pushcfunction(l, f);
            ffi::lua_pushstring(l, name.as_ptr());
            ffi::lua_call(l, 1, 0);
        }
        super::libs::open_all(l);
        0
    }
}

impl Vm {
    /// A new interpreter with the sandbox and the `redis` API.
    pub fn new() -> Vm {
        // SAFETY: a fresh state, set up before any script runs; every call
        // below runs on it with the stack balanced.
        unsafe {
            let mut pool = Box::<Pool>::default();
            let l = ffi::lua_newstate(pool_alloc, &mut *pool as *mut Pool as *mut c_void);
            assert!(!l.is_null(), "out of memory creating the Lua interpreter");
            ffi::lua_atpanic(l, at_panic);
            // The interned names, first, so they take registry slots 1..
            for (i, t) in S_TEXT.iter().enumerate() {
                ffi::lua_pushstring(l, t.as_ptr());
                let r = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                assert_eq!(r as usize, i + 1, "registry slot of an interned name");
            }
            if ffi::lua_cpcall(l, open_libs, ptr::null_mut()) != 0 {
                panic!("cannot open the Lua libraries");
            }
            ffi::lua_pushvalue(l, ffi::LUA_GLOBALSINDEX);
            let g = ffi::lua_gettop(l);
            // Drop what the base library defines beyond the allow list
            // (dofile, loadfile, print …).
            let mut remove: Vec<Vec<u8>> = Vec::new();
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, g) != 0 {
                ffi::lua_settop(l, -2);
                if ffi::lua_type(l, -1) == ffi::LUA_TSTRING {
                    let k = to_bytes(l, -1).unwrap_or(b"").to_vec();
                    if !ALLOWED.iter().any(|a| a.as_bytes() == k.as_slice()) {
                        remove.push(k);
                    }
                }
            }
            for k in &remove {
                push_bytes(l, k);
                ffi::lua_pushnil(l);
                ffi::lua_rawset(l, g);
            }
            // The redis table.
            ffi::lua_createtable(l, 0, 32);
            let fns: &[(&CStr, ffi::lua_CFunction)] = &[
                (c"call", redis_call),
                (c"pcall", redis_pcall),
                (c"log", redis_log),
                (c"setresp", redis_setresp),
                (c"sha1hex", redis_sha1hex),
                (c"error_reply", redis_error_reply),
                (c"status_reply", redis_status_reply),
                (c"set_repl", redis_set_repl),
                (c"replicate_commands", redis_replicate_commands),
                (c"breakpoint", redis_breakpoint),
                (c"debug", redis_noop),
                (c"acl_check_cmd", redis_acl_check_cmd),
            ];
            for &(name, f) in fns {
                set_field(l, name, || ffi::lua_pushcfunction(l, f));
            }
            let nums: &[(&CStr, f64)] = &[
                (c"LOG_DEBUG", 0.0),
                (c"LOG_VERBOSE", 1.0),
                (c"LOG_NOTICE", 2.0),
                (c"LOG_WARNING", 3.0),
                (c"REPL_NONE", 0.0),
                (c"REPL_AOF", 1.0),
                (c"REPL_SLAVE", 2.0),
                (c"REPL_REPLICA", 2.0),
                (c"REPL_ALL", 3.0),
                (c"REDIS_VERSION_NUM", super::VERSION_NUM as f64),
            ];
            for &(name, v) in nums {
                set_field(l, name, || ffi::lua_pushnumber(l, v));
            }
            set_field(l, c"REDIS_VERSION", || {
                ffi::lua_pushstring(l, super::VERSION.as_ptr());
            });
            ffi::lua_setfield(l, g, c"redis".as_ptr());
            // math.random / randomseed.
            ffi::lua_getfield(l, g, c"math".as_ptr());
            set_field(l, c"random", || ffi::lua_pushcfunction(l, math_random));
            set_field(l, c"randomseed", || {
                ffi::lua_pushcfunction(l, math_randomseed)
            });
            ffi::lua_settop(l, -2);
            // pcall, and the guards of functions that modify their first
            // argument.
            ffi::lua_pushcfunction(l, lua_pcall_compat);
            ffi::lua_setfield(l, g, c"pcall".as_ptr());
            for name in [c"rawset", c"setmetatable"] {
                ffi::lua_getfield(l, g, name.as_ptr());
                ffi::lua_pushcclosure(l, readonly_guard, 1);
                ffi::lua_setfield(l, g, name.as_ptr());
            }
            ffi::lua_pushcfunction(l, lua_next_compat);
            ffi::lua_pushvalue(l, -1);
            ffi::lua_setfield(l, g, c"next".as_ptr());
            ffi::lua_pushcclosure(l, lua_pairs_compat, 1);
            ffi::lua_setfield(l, g, c"pairs".as_ptr());
            ffi::lua_pushcfunction(l, lua_rawget_compat);
            ffi::lua_setfield(l, g, c"rawget".as_ptr());
            ffi::lua_getfield(l, g, c"loadstring".as_ptr());
            ffi::lua_pushcclosure(l, loadstring_guard, 1);
            ffi::lua_setfield(l, g, c"loadstring".as_ptr());
            ffi::lua_pushcfunction(l, load_guard);
            ffi::lua_setfield(l, g, c"load".as_ptr());
            ffi::lua_getfield(l, g, c"coroutine".as_ptr());
            ffi::lua_getfield(l, -1, c"resume".as_ptr());
            ffi::lua_pushcclosure(l, resume_guard, 1);
            ffi::lua_setfield(l, -2, c"resume".as_ptr());
            ffi::lua_settop(l, -2);
            // Redis' error handler is a global (scripts see its name in
            // `_G`); ours lives in the registry, this is the same function.
            ffi::lua_pushcfunction(l, error_handler);
            ffi::lua_setfield(l, g, c"__redis__err__handler".as_ptr());
            ffi::lua_getfield(l, g, c"table".as_ptr());
            for name in [c"insert", c"remove", c"sort", c"setn"] {
                ffi::lua_getfield(l, -1, name.as_ptr());
                if ffi::lua_type(l, -1) == ffi::LUA_TFUNCTION {
                    ffi::lua_pushcclosure(l, readonly_guard, 1);
                    ffi::lua_setfield(l, -2, name.as_ptr());
                } else {
                    ffi::lua_settop(l, -2);
                }
            }
            ffi::lua_settop(l, -2);
            // The error handler.
            ffi::lua_pushcfunction(l, error_handler);
            let handler = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
            // Read-only: the registry set of protected tables, a proxy in
            // front of every library table (scripts see proxies; their
            // metatables are hidden behind `__metatable`), and the globals.
            ffi::lua_createtable(l, 0, 32);
            ffi::lua_createtable(l, 0, 1);
            set_field(l, c"__mode", || {
                ffi::lua_pushstring(l, c"k".as_ptr());
            });
            ffi::lua_setmetatable(l, -2);
            ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, PROTECTED.as_ptr());
            let libs = [
                c"string",
                c"table",
                c"math",
                c"coroutine",
                c"redis",
                c"cjson",
                c"struct",
                c"cmsgpack",
                c"bit",
            ];
            for name in libs {
                ffi::lua_getfield(l, g, name.as_ptr());
                if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
                    ffi::lua_settop(l, -2);
                    continue;
                }
                protect(l);
                make_proxy(l);
                if name == c"string" {
                    // Strings' methods: `("x"):upper()` looks in the proxy.
                    push_bytes(l, b"");
                    if ffi::lua_getmetatable(l, -1) != 0 {
                        ffi::lua_pushvalue(l, -3);
                        ffi::lua_setfield(l, -2, c"__index".as_ptr());
                        protect(l);
                        make_proxy(l);
                        let hidden = ffi::lua_gettop(l);
                        // getmetatable("") answers the proxy.
                        ffi::lua_getmetatable(l, -2);
                        ffi::lua_pushvalue(l, hidden);
                        ffi::lua_setfield(l, -2, c"__metatable".as_ptr());
                        ffi::lua_settop(l, -4);
                    } else {
                        ffi::lua_settop(l, -2);
                    }
                }
                ffi::lua_setfield(l, g, name.as_ptr());
            }
            // The real globals: unknown names raise, writes raise.
            ffi::lua_createtable(l, 0, 3);
            set_field(l, c"__index", || ffi::lua_pushcfunction(l, missing_global));
            set_field(l, c"__newindex", || {
                ffi::lua_pushcfunction(l, readonly_newindex)
            });
            ffi::lua_createtable(l, 0, 0);
            protect(l);
            ffi::lua_setfield(l, -2, c"__metatable".as_ptr());
            protect(l);
            ffi::lua_setmetatable(l, g);
            protect_at(l, g);
            // Scripts' globals: a proxy of the real ones.
            ffi::lua_pushvalue(l, g);
            make_proxy(l);
            ffi::lua_pushvalue(l, -1);
            ffi::lua_setfield(l, g, c"_G".as_ptr());
            ffi::lua_replace(l, ffi::LUA_GLOBALSINDEX);
            let real_globals = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
            ffi::lua_settop(l, 0);
            Vm {
                l,
                _pool: pool,
                handler,
                real_globals,
                library_api: None,
                filled: [0, 0],
            }
        }
    }

    /// Compiles `body` as chunk `chunk` ("@user_script") and keeps the
    /// function in the registry: its reference, or the compiler's message.
    pub fn compile(&mut self, chunk: &CStr, body: &[u8]) -> Result<c_int, String> {
        if body.first() == Some(&BINARY_CHUNK) {
            // What Redis' patched Lua (source only) answers.
            let name = chunk.to_string_lossy();
            return Err(format!(
                "{}:1: unexpected symbol near 'char(27)'",
                name.trim_start_matches('@')
            ));
        }
        // SAFETY: luaL_loadbuffer is protected; the stack is balanced.
        unsafe {
            let l = self.l;
            if ffi::luaL_loadbuffer(
                l,
                body.as_ptr() as *const c_char,
                body.len(),
                chunk.as_ptr(),
            ) != 0
            {
                let msg = String::from_utf8_lossy(to_bytes(l, -1).unwrap_or(b"")).into_owned();
                ffi::lua_settop(l, 0);
                return Err(msg);
            }
            let r = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
            ffi::lua_settop(l, 0);
            Ok(r)
        }
    }

    /// Runs the compiled function `name` with `KEYS` and `ARGV` set as
    /// globals (EVAL), and writes its reply, or its error naming
    /// `script_name`, to `out`.
    pub fn run_eval(
        &mut self,
        host: &mut dyn Host,
        r: &Run,
        out: &mut Reply,
    ) -> (End, Option<bool>) {
        let Run {
            func,
            script_name,
            keys,
            args,
            hook: hook_armed,
        } = *r;
        // SAFETY: the host pointer is valid for the run and cleared after
        // it; the stack is balanced on every path.
        unsafe {
            let l = self.l;
            ffi::lua_settop(l, 0);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.handler as _);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, func as _);
            // KEYS and ARGV: nothing of one run may reach the next, as
            // with Redis' new tables per run. A table the last run left as
            // it was filled (no metatable, no key beyond what we put
            // there: checked after the run) is refilled instead, which
            // saves two tables per run; any other is replaced by a new one.
            // Raw accesses: the globals' metatable raises.
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.real_globals as _);
            for (n, (key, list)) in [(S::Keys, keys), (S::Argv, args)].into_iter().enumerate() {
                push_s(l, key);
                ffi::lua_rawget(l, -2);
                let reuse = ffi::lua_type(l, -1) == ffi::LUA_TTABLE;
                if !reuse {
                    ffi::lua_settop(l, -2);
                    ffi::lua_createtable(l, list.len().min(1 << 20) as c_int, 0);
                    push_s(l, key);
                    ffi::lua_pushvalue(l, -2);
                    ffi::lua_rawset(l, -4);
                    self.filled[n] = 0;
                }
                for (i, a) in list.iter().enumerate() {
                    push_bytes(l, a);
                    ffi::lua_rawseti(l, -2, (i + 1) as ffi::lua_Integer);
                }
                for i in list.len()..self.filled[n] {
                    ffi::lua_pushnil(l);
                    ffi::lua_rawseti(l, -2, (i + 1) as ffi::lua_Integer);
                }
                self.filled[n] = list.len();
                ffi::lua_settop(l, -2);
            }
            ffi::lua_settop(l, -2);
            let r = self.call(host, 0, hook_armed, script_name, out);
            self.check_args_tables();
            r
        }
    }

    /// Calls the function below `nargs` arguments (the handler below it).
    unsafe fn call(
        &mut self,
        host: &mut dyn Host,
        nargs: c_int,
        hook_armed: bool,
        script_name: &str,
        out: &mut Reply,
    ) -> (End, Option<bool>) {
        // SAFETY: see run_eval.
        unsafe {
            let l = self.l;
            // Lifetime erased: the pointer is cleared before `host` ends.
            let hp: *mut (dyn Host + '_) = host;
            let hp: *mut (dyn Host + 'static) = std::mem::transmute(hp);
            HOST.with(|h| h.set(hp));
            ABORTING.with(|a| a.set(false));
            KILLED.with(|k| k.set(false));
            if hook_armed {
                ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
            }
            // The handler is at index 1, below the function and arguments.
            self.limit(true);
            let err = ffi::lua_pcall(l, nargs, 1, 1);
            self.limit(false);
            ffi::lua_sethook(l, None, 0, 0);
            let aborted = ABORTING.with(|a| a.replace(false));
            KILLED.with(|k| k.set(false));
            let mut counted = None;
            let end = if aborted {
                End::Aborted
            } else if err != 0 {
                counted = Some(write_error(l, script_name, out));
                End::Done
            } else {
                write_value(l, out, host.resp3());
                End::Done
            };
            HOST.with(|h| h.set(ptr::null_mut::<NoHost>() as *mut dyn Host));
            ffi::lua_settop(l, 0);
            GC_COUNT.with(|c| {
                let n = c.get() + 1;
                if n >= 50 {
                    ffi::lua_gc(l, ffi::LUA_GCSTEP, 50);
                    c.set(0);
                } else {
                    c.set(n);
                }
            });
            (end, counted)
        }
    }

    /// After an EVAL run: drops KEYS or ARGV from the globals unless the
    /// script left it exactly as filled (no metatable; no key past the
    /// filled length — `next` after the last filled index finds none; a
    /// value removed inside is refilled or cleared next time anyway).
    fn check_args_tables(&mut self) {
        // SAFETY: raw accesses on a balanced stack, no metamethods; `next`
        // from an existing integer key cannot raise.
        unsafe {
            let l = self.l;
            ffi::lua_settop(l, 0);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.real_globals as _);
            for (n, key) in [S::Keys, S::Argv].into_iter().enumerate() {
                push_s(l, key);
                ffi::lua_rawget(l, 1);
                let mut clean = ffi::lua_type(l, -1) == ffi::LUA_TTABLE;
                if clean && ffi::lua_getmetatable(l, -1) != 0 {
                    ffi::lua_settop(l, -2);
                    clean = false;
                }
                if clean {
                    let filled = self.filled[n];
                    // A hole at the last filled index would make `next`
                    // raise on a missing key: only look from a present one.
                    if filled > 0 {
                        ffi::lua_rawgeti(l, -1, filled as ffi::lua_Integer);
                        let present = ffi::lua_type(l, -1) != ffi::LUA_TNIL;
                        ffi::lua_settop(l, -2);
                        if present {
                            ffi::lua_pushinteger(l, filled as ffi::lua_Integer);
                        } else {
                            clean = false;
                        }
                    } else {
                        ffi::lua_pushnil(l);
                    }
                    if clean && ffi::lua_next(l, -2) != 0 {
                        ffi::lua_settop(l, -3);
                        clean = false;
                    }
                }
                ffi::lua_settop(l, 1);
                if !clean {
                    push_s(l, key);
                    ffi::lua_pushnil(l);
                    ffi::lua_rawset(l, 1);
                    self.filled[n] = 0;
                }
            }
            ffi::lua_settop(l, 0);
        }
    }

    /// Turns [`MEMORY_LIMIT`] on or off (no Lua code runs meanwhile).
    fn limit(&mut self, on: bool) {
        self._pool.limited = on;
    }

    /// Memory the interpreter uses, in bytes (`used_memory_lua`).
    pub fn memory(&self) -> usize {
        // SAFETY: a query.
        unsafe { ffi::lua_gc(self.l, ffi::LUA_GCCOUNT, 0) as usize * 1024 }
    }
}

impl Vm {
    /// An interpreter for FUNCTION libraries: the same sandbox and API,
    /// plus the restricted globals a library sees while it loads.
    pub fn new_functions() -> Vm {
        let mut vm = Vm::new();
        // SAFETY: set-up on a fresh state, stack balanced.
        unsafe {
            let l = vm.l;
            ffi::lua_createtable(l, 0, 1);
            ffi::lua_createtable(l, 0, 8);
            set_field(l, c"register_function", || {
                ffi::lua_pushcfunction(l, register_function)
            });
            set_field(l, c"log", || ffi::lua_pushcfunction(l, redis_log));
            for (name, v) in [
                (c"LOG_DEBUG", 0.0),
                (c"LOG_VERBOSE", 1.0),
                (c"LOG_NOTICE", 2.0),
                (c"LOG_WARNING", 3.0),
                (c"REDIS_VERSION_NUM", super::VERSION_NUM as f64),
            ] {
                set_field(l, name, || ffi::lua_pushnumber(l, v));
            }
            set_field(l, c"REDIS_VERSION", || {
                ffi::lua_pushstring(l, super::VERSION.as_ptr());
            });
            locked_table(l);
            ffi::lua_setfield(l, -2, c"redis".as_ptr());
            locked_table(l);
            vm.library_api = Some(ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX));
            ffi::lua_settop(l, 0);
        }
        vm
    }

    /// Loads a function library's code (FUNCTION LOAD): runs it with the
    /// library globals, under a `timeout_ms` limit (0: none); the functions
    /// it registered, or Redis' error text.
    pub fn load_library(
        &mut self,
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<Vec<Registered>, String> {
        let Some(api) = self.library_api else {
            return Err("not a functions interpreter".into());
        };
        if body.first() == Some(&BINARY_CHUNK) {
            return Err(
                "Error compiling function: user_function:1: unexpected symbol near 'char(27)'"
                    .into(),
            );
        }
        // SAFETY: the globals' metatable is ours (set in `new`); the stack
        // is balanced on every path; the collector is cleared after.
        unsafe {
            let l = self.l;
            ffi::lua_settop(l, 0);
            let swap = |to: c_int| {
                ffi::lua_getmetatable(l, ffi::LUA_GLOBALSINDEX);
                ffi::lua_pushstring(l, c"__index".as_ptr());
                ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, to as _);
                ffi::lua_rawset(l, -3);
                ffi::lua_settop(l, -2);
            };
            if ffi::luaL_loadbuffer(
                l,
                body.as_ptr() as *const c_char,
                body.len(),
                c"@user_function".as_ptr(),
            ) != 0
            {
                let msg = String::from_utf8_lossy(to_bytes(l, -1).unwrap_or(b"")).into_owned();
                ffi::lua_settop(l, 0);
                return Err(format!("Error compiling function: {msg}"));
            }
            swap(api);
            LOADING.with(|c| {
                *c.borrow_mut() = Some(Loading {
                    fns: Vec::new(),
                    start: std::time::Instant::now(),
                    timeout_ms,
                })
            });
            ffi::lua_sethook(l, Some(load_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
            self.limit(true);
            let failed = ffi::lua_pcall(l, 0, 0, 0) != 0;
            self.limit(false);
            ffi::lua_sethook(l, None, 0, 0);
            swap(self.real_globals);
            let loading = LOADING.with(|c| c.borrow_mut().take());
            let fns = loading.map(|x| x.fns).unwrap_or_default();
            if failed {
                let msg = error_message(l);
                ffi::lua_settop(l, 0);
                for f in &fns {
                    ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, f.func);
                }
                return Err(format!("Error registering functions: {msg}"));
            }
            ffi::lua_settop(l, 0);
            Ok(fns)
        }
    }

    /// Runs the registered function `r.func` with the keys and arguments
    /// as its two table arguments (FCALL).
    pub fn run_function(
        &mut self,
        host: &mut dyn Host,
        r: &Run,
        out: &mut Reply,
    ) -> (End, Option<bool>) {
        // SAFETY: see run_eval.
        unsafe {
            let l = self.l;
            ffi::lua_settop(l, 0);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.handler as _);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, r.func as _);
            for list in [r.keys, r.args] {
                ffi::lua_createtable(l, list.len().min(1 << 20) as c_int, 0);
                for (i, a) in list.iter().enumerate() {
                    push_bytes(l, a);
                    ffi::lua_rawseti(l, -2, (i + 1) as ffi::lua_Integer);
                }
            }
            self.call(host, 2, r.hook, r.script_name, out)
        }
    }
}

/// A function a library registered while loading.
pub struct Registered {
    pub name: String,
    pub desc: Option<Vec<u8>>,
    /// Shebang-style flags (`super::sflags`).
    pub flags: u32,
    /// Registry reference of the callback.
    pub func: c_int,
}

/// A library being loaded on this thread.
struct Loading {
    fns: Vec<Registered>,
    start: std::time::Instant,
    timeout_ms: u64,
}

thread_local! {
    static LOADING: std::cell::RefCell<Option<Loading>> = const { std::cell::RefCell::new(None) };
}

/// Gives the table at the top a metatable raising on unknown names and on
/// writes, and marks it read-only.
unsafe fn locked_table(l: *mut ffi::lua_State) {
    // SAFETY: a table at -1.
    unsafe {
        ffi::lua_createtable(l, 0, 2);
        set_field(l, c"__index", || ffi::lua_pushcfunction(l, missing_global));
        set_field(l, c"__newindex", || {
            ffi::lua_pushcfunction(l, readonly_newindex)
        });
        protect(l);
        ffi::lua_setmetatable(l, -2);
        protect(l);
    }
}

/// The message Redis gives an error value (`luaExtractErrorInformation`):
/// a string becomes `ERR <string>`, a table its `err` field.
unsafe fn error_message(l: *mut ffi::lua_State) -> String {
    // SAFETY: the error value is at -1; only reads.
    unsafe {
        if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            raw_get(l, -1, c"err");
            let m = String::from_utf8_lossy(to_bytes(l, -1).unwrap_or(b"")).into_owned();
            ffi::lua_settop(l, -2);
            return m;
        }
        match to_bytes(l, -1) {
            Some(b) => format!("ERR {}", String::from_utf8_lossy(b)),
            None => String::new(),
        }
    }
}

unsafe extern "C-unwind" fn load_hook(l: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    // SAFETY: called by Lua during a load; raises with nothing owned alive.
    unsafe {
        let over = LOADING.with(|c| {
            c.borrow().as_ref().is_some_and(|x| {
                x.timeout_ms > 0 && x.start.elapsed().as_millis() as u64 > x.timeout_ms
            })
        });
        if over {
            ffi::lua_sethook(l, Some(load_hook), ffi::LUA_MASKLINE, 0);
            push_error_table(l, b"FUNCTION LOAD timeout");
            raise(l)
        }
    }
}

/// What `redis.register_function` read, or its error.
enum RegArgs {
    Ok(Registered),
    Err(&'static str),
}

/// `redis.register_function(name, callback)` or
/// `redis.register_function{function_name=…, callback=…, flags={…},
/// description=…}` (only while a library loads).
unsafe extern "C-unwind" fn register_function(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; errors raised with nothing owned alive.
    unsafe {
        let loading = LOADING.with(|c| c.borrow().is_some());
        if !loading {
            push_error_table(
                l,
                b"redis.register_function can only be called on FUNCTION LOAD command",
            );
            raise(l)
        }
        let r = match ffi::lua_gettop(l) {
            1 => read_named(l),
            2 => read_positional(l),
            _ => RegArgs::Err("wrong number of arguments to redis.register_function"),
        };
        let err: Option<&'static str> = match r {
            RegArgs::Err(e) => Some(e),
            RegArgs::Ok(f) => {
                let valid = !f.name.is_empty()
                    && f.name
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_');
                let dup = LOADING.with(|c| {
                    c.borrow()
                        .as_ref()
                        .is_some_and(|x| x.fns.iter().any(|g| g.name == f.name))
                });
                if !valid || dup {
                    ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, f.func);
                    Some(if !valid {
                        "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"
                    } else {
                        "Function already exists in the library"
                    })
                } else {
                    LOADING.with(|c| {
                        if let Some(x) = c.borrow_mut().as_mut() {
                            x.fns.push(f);
                        }
                    });
                    None
                }
            }
        };
        if let Some(e) = err {
            push_error_table(l, e.as_bytes());
            raise(l)
        }
        0
    }
}

/// A string (or number) argument as Redis' `luaGetStringSds` reads it.
unsafe fn string_arg(l: *mut ffi::lua_State, idx: c_int) -> Option<Vec<u8>> {
    // SAFETY: a valid index.
    unsafe { (ffi::lua_isstring(l, idx) != 0).then(|| to_bytes(l, idx).unwrap_or(b"").to_vec()) }
}

unsafe fn read_positional(l: *mut ffi::lua_State) -> RegArgs {
    // SAFETY: two arguments on the stack.
    unsafe {
        let Some(name) = string_arg(l, 1) else {
            return RegArgs::Err("first argument to redis.register_function must be a string");
        };
        if ffi::lua_type(l, 2) != ffi::LUA_TFUNCTION {
            return RegArgs::Err("second argument to redis.register_function must be a function");
        }
        let func = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
        RegArgs::Ok(Registered {
            name: String::from_utf8_lossy(&name).into_owned(),
            desc: None,
            flags: 0,
            func,
        })
    }
}

unsafe fn read_named(l: *mut ffi::lua_State) -> RegArgs {
    // SAFETY: one argument on the stack; balanced iteration.
    unsafe {
        if ffi::lua_type(l, 1) != ffi::LUA_TTABLE {
            return RegArgs::Err(
                "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
            );
        }
        let (mut name, mut desc, mut func, mut flags) = (None, None, None::<c_int>, 0u32);
        let fail = |func: Option<c_int>, e: &'static str| {
            if let Some(f) = func {
                ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, f);
            }
            RegArgs::Err(e)
        };
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, 1) != 0 {
            if ffi::lua_isstring(l, -2) == 0 {
                return fail(
                    func,
                    "named argument key given to redis.register_function is not a string",
                );
            }
            let key = to_bytes(l, -2).unwrap_or(b"").to_ascii_lowercase();
            match key.as_slice() {
                b"function_name" => match string_arg(l, -1) {
                    Some(n) => name = Some(n),
                    None => {
                        return fail(
                            func,
                            "function_name argument given to redis.register_function must be a string",
                        );
                    }
                },
                b"description" => match string_arg(l, -1) {
                    Some(d) => desc = Some(d),
                    None => {
                        return fail(
                            func,
                            "description argument given to redis.register_function must be a string",
                        );
                    }
                },
                b"callback" => {
                    if ffi::lua_type(l, -1) != ffi::LUA_TFUNCTION {
                        return fail(
                            func,
                            "callback argument given to redis.register_function must be a function",
                        );
                    }
                    if let Some(f) = func {
                        ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, f);
                    }
                    func = Some(ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX));
                    continue;
                }
                b"flags" => {
                    if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
                        return fail(
                            func,
                            "flags argument to redis.register_function must be a table representing function flags",
                        );
                    }
                    let mut j = 1;
                    loop {
                        ffi::lua_rawgeti(l, -1, j);
                        j += 1;
                        if ffi::lua_type(l, -1) == ffi::LUA_TNIL {
                            ffi::lua_settop(l, -2);
                            break;
                        }
                        let found = (ffi::lua_isstring(l, -1) != 0)
                            .then(|| to_bytes(l, -1).unwrap_or(b"").to_ascii_lowercase())
                            .and_then(|f| {
                                super::sflags::NAMES
                                    .iter()
                                    .find(|(n, _)| n.as_bytes() == f.as_slice())
                                    .map(|(_, b)| *b)
                            });
                        ffi::lua_settop(l, -2);
                        match found {
                            Some(b) => flags |= b,
                            None => return fail(func, "unknown flag given"),
                        }
                    }
                }
                _ => return fail(func, "unknown argument given to redis.register_function"),
            }
            ffi::lua_settop(l, -2);
        }
        let Some(name) = name else {
            return fail(
                func,
                "redis.register_function must get a function name argument",
            );
        };
        let Some(func) = func else {
            return RegArgs::Err("redis.register_function must get a callback argument");
        };
        RegArgs::Ok(Registered {
            name: String::from_utf8_lossy(&name).into_owned(),
            desc,
            flags,
            func,
        })
    }
}

impl Default for Vm {
    fn default() -> Vm {
        Vm::new()
    }
}

thread_local! {
    static GC_COUNT: Cell<u32> = const { Cell::new(0) };
}

/// Pushes `t[k]` without metamethods (conversions run outside protected
/// calls: a script's metatable must not raise there), `t` at `idx`.
unsafe fn raw_get(l: *mut ffi::lua_State, idx: c_int, k: &CStr) {
    // SAFETY: a table at `idx`.
    unsafe {
        let t = if idx < 0 {
            ffi::lua_gettop(l) + idx + 1
        } else {
            idx
        };
        ffi::lua_pushstring(l, k.as_ptr());
        ffi::lua_rawget(l, t);
    }
}

/// Adds the table at the top to the read-only set.
unsafe fn protect(l: *mut ffi::lua_State) {
    // SAFETY: a table is at -1.
    unsafe { protect_at(l, ffi::lua_gettop(l)) }
}

unsafe fn protect_at(l: *mut ffi::lua_State, idx: c_int) {
    // SAFETY: a table at `idx`.
    unsafe {
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, PROTECTED.as_ptr());
        ffi::lua_pushvalue(l, idx);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_rawset(l, -3);
        ffi::lua_settop(l, -2);
    }
}

/// Marks the metatables of proxies (a light userdata key scripts cannot
/// name).
const PROXY_MARK: &CStr = c"codis.proxy";

/// If the value at `idx` (absolute) is a proxy, replaces it with the
/// table it stands for: `pairs`, `next` and `rawget` see through proxies,
/// as they see Redis' read-only tables.
unsafe fn unproxy(l: *mut ffi::lua_State, idx: c_int) {
    // SAFETY: a valid index; balanced pushes and pops.
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TTABLE || ffi::lua_getmetatable(l, idx) == 0 {
            return;
        }
        ffi::lua_pushlightuserdata(l, PROXY_MARK.as_ptr() as *mut c_void);
        ffi::lua_rawget(l, -2);
        let proxy = ffi::lua_toboolean(l, -1) != 0;
        ffi::lua_settop(l, -2);
        if proxy {
            ffi::lua_pushstring(l, c"__index".as_ptr());
            ffi::lua_rawget(l, -2);
            ffi::lua_replace(l, idx);
        }
        ffi::lua_settop(l, -2);
    }
}

/// `next`, seeing through proxies.
unsafe extern "C-unwind" fn lua_next_compat(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; lua_next raises on a bad key as `next` does.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        ffi::lua_settop(l, 2);
        unproxy(l, 1);
        if ffi::lua_next(l, 1) != 0 {
            2
        } else {
            ffi::lua_pushnil(l);
            1
        }
    }
}

/// `pairs`: our `next`, the table, nil.
unsafe extern "C-unwind" fn lua_pairs_compat(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; the upvalue is our `next`.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_pushvalue(l, 1);
        ffi::lua_pushnil(l);
        3
    }
}

/// `rawget`, seeing through proxies.
unsafe extern "C-unwind" fn lua_rawget_compat(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        ffi::luaL_checkany(l, 2);
        ffi::lua_settop(l, 2);
        unproxy(l, 1);
        ffi::lua_rawget(l, 1);
        1
    }
}

/// Replaces the table at the top with a read-only proxy of it.
unsafe fn make_proxy(l: *mut ffi::lua_State) {
    // SAFETY: a table at -1; leaves the proxy there instead.
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        ffi::lua_createtable(l, 0, 4);
        ffi::lua_pushvalue(l, -3);
        ffi::lua_setfield(l, -2, c"__index".as_ptr());
        ffi::lua_pushcfunction(l, readonly_newindex);
        ffi::lua_setfield(l, -2, c"__newindex".as_ptr());
        ffi::lua_pushlightuserdata(l, PROXY_MARK.as_ptr() as *mut c_void);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_rawset(l, -3);
        ffi::lua_createtable(l, 0, 0);
        protect(l);
        ffi::lua_setfield(l, -2, c"__metatable".as_ptr());
        protect(l);
        ffi::lua_setmetatable(l, -2);
        protect(l);
        ffi::lua_replace(l, -2);
    }
}

/// Writes the failed run's error (at the top) to `out` as Redis does:
/// `<err> script: <name>, on <source>:<line>.`; returns whether the error
/// was counted already (it came from a command's reply).
unsafe fn write_error(l: *mut ffi::lua_State, script_name: &str, out: &mut Reply) -> bool {
    // SAFETY: the error value is at -1; only reads and pops.
    unsafe {
        if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
            let msg = to_bytes(l, -1)
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(100)]).into_owned())
                .unwrap_or_else(|| "execution failure".into());
            out.error(format!("ERR Error running script {script_name}, {msg}").as_bytes());
            return false;
        }
        let field = |k: S| -> Option<Vec<u8>> {
            raw_get_s(l, -1, k);
            let v =
                (ffi::lua_isstring(l, -1) != 0).then(|| to_bytes(l, -1).unwrap_or(b"").to_vec());
            ffi::lua_settop(l, -2);
            v
        };
        let msg = field(S::Err).unwrap_or_default();
        let source = {
            raw_get(l, -1, c"source");
            let v =
                (ffi::lua_isstring(l, -1) != 0).then(|| to_bytes(l, -1).unwrap_or(b"").to_vec());
            ffi::lua_settop(l, -2);
            v
        };
        let line = {
            raw_get(l, -1, c"line");
            let v =
                (ffi::lua_isstring(l, -1) != 0).then(|| to_bytes(l, -1).unwrap_or(b"").to_vec());
            ffi::lua_settop(l, -2);
            v
        };
        raw_get_s(l, -1, S::Ignore);
        let counted = ffi::lua_toboolean(l, -1) != 0;
        ffi::lua_settop(l, -2);
        let mut text = msg;
        if let (Some(s), Some(n)) = (source, line) {
            text.extend_from_slice(b" script: ");
            text.extend_from_slice(script_name.as_bytes());
            text.extend_from_slice(b", on ");
            text.extend_from_slice(&s);
            text.push(b':');
            text.extend_from_slice(&n);
            text.push(b'.');
        }
        out.error(&text);
        counted
    }
}

/// Converts the value at the top to a reply (`luaReplyToRedisReply`) and
/// pops it. `script_resp3`: the script's protocol (booleans).
unsafe fn write_value(l: *mut ffi::lua_State, out: &mut Reply, script_resp3: bool) {
    DEPTH.with(|d| d.set(d.get() + 1));
    // SAFETY: see `write_value_at`.
    unsafe { write_value_at(l, out, script_resp3) };
    DEPTH.with(|d| d.set(d.get() - 1));
}

thread_local! {
    /// Nesting of the reply being converted.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Deepest reply nesting converted (Redis stops at Lua's 8,000 stack
/// slots, about 4,000 levels; this bounds the recursion on executor
/// threads with small stacks).
const MAX_DEPTH: u32 = 1000;

unsafe fn write_value_at(l: *mut ffi::lua_State, out: &mut Reply, script_resp3: bool) {
    // SAFETY: a value at -1; balanced pushes and pops.
    unsafe {
        if DEPTH.with(|d| d.get()) > MAX_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
            out.error(b"ERR reached lua stack limit");
            ffi::lua_settop(l, -2);
            return;
        }
        match ffi::lua_type(l, -1) {
            ffi::LUA_TSTRING => out.bulk(to_bytes(l, -1).unwrap_or(b"")),
            ffi::LUA_TBOOLEAN => {
                let b = ffi::lua_toboolean(l, -1) != 0;
                if !script_resp3 {
                    if b { out.int(1) } else { out.null() }
                } else {
                    out.boolean(b)
                }
            }
            ffi::LUA_TNUMBER => out.int(super::libs::c_to_i64(ffi::lua_tonumber(l, -1))),
            ffi::LUA_TTABLE => {
                write_table(l, out, script_resp3);
                return;
            }
            _ => out.null(),
        }
        ffi::lua_settop(l, -2);
    }
}

/// The table case of [`write_value`] (pops the table).
unsafe fn write_table(l: *mut ffi::lua_State, out: &mut Reply, script_resp3: bool) {
    // SAFETY: a table at -1.
    unsafe {
        let get = |k: S| {
            push_s(l, k);
            ffi::lua_rawget(l, -2);
            ffi::lua_type(l, -1)
        };
        if get(S::Err) == ffi::LUA_TSTRING {
            ffi::lua_settop(l, -2);
            raw_get_s(l, -1, S::Err);
            let msg = to_bytes(l, -1).unwrap_or(b"").to_vec();
            ffi::lua_settop(l, -2);
            raw_get_s(l, -1, S::Ignore);
            let counted = ffi::lua_toboolean(l, -1) != 0;
            ffi::lua_settop(l, -3);
            if !counted && let Some(h) = host() {
                h.count_error(&msg);
            }
            out.error(&msg);
            return;
        }
        ffi::lua_settop(l, -2);
        if get(S::Ok) == ffi::LUA_TSTRING {
            let s: Vec<u8> = to_bytes(l, -1)
                .unwrap_or(b"")
                .iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
                .collect();
            out.simple(&s);
            ffi::lua_settop(l, -3);
            return;
        }
        ffi::lua_settop(l, -2);
        if get(S::Double) == ffi::LUA_TNUMBER {
            let mut t = Vec::with_capacity(24);
            protocol::number::write_f64(&mut t, ffi::lua_tonumber(l, -1));
            out.double_text(&t);
            ffi::lua_settop(l, -3);
            return;
        }
        ffi::lua_settop(l, -2);
        if get(S::BigNumber) == ffi::LUA_TSTRING {
            let s: Vec<u8> = to_bytes(l, -1)
                .unwrap_or(b"")
                .iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
                .collect();
            if out.resp3 {
                out.buf.push(b'(');
                out.buf.extend_from_slice(&s);
                out.buf.extend_from_slice(b"\r\n");
            } else {
                out.bulk(&s);
            }
            ffi::lua_settop(l, -3);
            return;
        }
        ffi::lua_settop(l, -2);
        if get(S::Verbatim) == ffi::LUA_TTABLE {
            raw_get_s(l, -1, S::Format);
            raw_get_s(l, -2, S::Str);
            if ffi::lua_type(l, -2) == ffi::LUA_TSTRING && ffi::lua_type(l, -1) == ffi::LUA_TSTRING
            {
                let f = to_bytes(l, -2).unwrap_or(b"txt");
                let mut fmt = [b' '; 3];
                for (d, s) in fmt.iter_mut().zip(f) {
                    *d = *s;
                }
                out.verbatim(&fmt, to_bytes(l, -1).unwrap_or(b""));
                ffi::lua_settop(l, -5);
                return;
            }
            ffi::lua_settop(l, -3);
        }
        ffi::lua_settop(l, -2);
        if get(S::Map) == ffi::LUA_TTABLE {
            let at = out.buf.len();
            let mut n = 0;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                ffi::lua_pushvalue(l, -2);
                write_value(l, out, script_resp3);
                write_value(l, out, script_resp3);
                n += 1;
            }
            fill_header(out, at, Agg::Map, n);
            ffi::lua_settop(l, -3);
            return;
        }
        ffi::lua_settop(l, -2);
        if get(S::Set) == ffi::LUA_TTABLE {
            let at = out.buf.len();
            let mut n = 0;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                ffi::lua_settop(l, -2);
                ffi::lua_pushvalue(l, -1);
                write_value(l, out, script_resp3);
                n += 1;
            }
            fill_header(out, at, Agg::Set, n);
            ffi::lua_settop(l, -3);
            return;
        }
        ffi::lua_settop(l, -2);
        let at = out.buf.len();
        let mut n = 0;
        loop {
            ffi::lua_rawgeti(l, -1, n + 1);
            if ffi::lua_type(l, -1) == ffi::LUA_TNIL {
                ffi::lua_settop(l, -2);
                break;
            }
            write_value(l, out, script_resp3);
            n += 1;
        }
        fill_header(out, at, Agg::Array, n as usize);
        ffi::lua_settop(l, -2);
    }
}

/// Aggregate kinds whose length is known after their elements.
enum Agg {
    Array,
    Map,
    Set,
}

/// Inserts the header of an aggregate of `n` elements (pairs for maps)
/// whose elements were written from `at` on.
fn fill_header(out: &mut Reply, at: usize, kind: Agg, n: usize) {
    let (c, n) = match (kind, out.resp3) {
        (Agg::Array, _) => (b'*', n),
        (Agg::Map, true) => (b'%', n),
        (Agg::Map, false) => (b'*', 2 * n),
        (Agg::Set, true) => (b'~', n),
        (Agg::Set, false) => (b'*', n),
    };
    let mut head = [0u8; 24];
    head[0] = c;
    let mut b = itoa::Buffer::new();
    let digits = b.format(n).as_bytes();
    head[1..1 + digits.len()].copy_from_slice(digits);
    head[1 + digits.len()..3 + digits.len()].copy_from_slice(b"\r\n");
    let head = &head[..3 + digits.len()];
    out.buf.splice(at..at, head.iter().copied());
}

unsafe extern "C-unwind" fn redis_acl_check_cmd(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state; the arguments are copied before the host runs.
    unsafe {
        if host().is_none() {
            push_error_table(
                l,
                b"redis.acl_check_cmd can only be called inside a script invocation",
            );
            raise(l)
        }
        if ffi::lua_gettop(l) == 0 {
            push_error_table(
                l,
                b"Please specify at least one argument for this redis lib call",
            );
            raise(l)
        }
        let n = ffi::lua_gettop(l);
        let args: Vec<Vec<u8>> = (1..=n)
            .map(|i| to_bytes(l, i).map(<[u8]>::to_vec).unwrap_or_default())
            .collect();
        let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let Some(ok) = host().and_then(|h| h.acl_allows(&argv)) else {
            push_error_table(l, b"Invalid command passed to redis.acl_check_cmd()");
            raise(l)
        };
        ffi::lua_pushboolean(l, ok as c_int);
        1
    }
}
