// cjson: the JSON library Redis scripts see as the global table `cjson`.
//
// Owns: `cjson.encode`, `cjson.decode`, `cjson.null`, `cjson.new`, `_NAME`,
// `_VERSION` and the configuration functions, plus the number conversions
// they need (C `%.14g` formatting and C `strtod` parsing, done in Rust).
// Mirrors (project rule: same results, byte for byte, same error texts):
// lua-cjson 2.1.0 as built into redis-server 7.0.15 (deps/lua/src/
// lua_cjson.c, fpconv.c, compiled with ENABLE_CJSON_GLOBAL on x86-64 glibc).
// This is a fresh Rust implementation; no code was taken from those files.
//
// Shape of the code: every Lua-facing function is an `extern "C-unwind"`
// shim. Lua errors longjmp, so the shims run the real work in an inner
// function that returns `Result<_, Error>`; `Error` owns no heap memory,
// everything with a destructor is gone before `raise` longjmps, and panics
// are caught before they could reach C. Buffers live inside the per-module
// configuration userdata (so an allocation failure inside Lua cannot leak
// them) and are reused from call to call. Tables are walked with explicit
// frame stacks, not recursion, using the Lua stack exactly as the C
// library does, so the depth limits (including `lua_checkstack`'s 8000 slot
// ceiling) trip at the same place with the same message.

use std::ffi::{CStr, c_char, c_int};
use std::fmt::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::{mem, ptr, slice};

use mlua_sys as ffi;

const MODULE_NAME: &CStr = c"cjson";
const MODULE_VERSION: &CStr = c"2.1.0";

const DEFAULT_SPARSE_CONVERT: c_int = 0;
const DEFAULT_SPARSE_RATIO: c_int = 2;
const DEFAULT_SPARSE_SAFE: c_int = 10;
const DEFAULT_ENCODE_MAX_DEPTH: c_int = 1000;
const DEFAULT_DECODE_MAX_DEPTH: c_int = 1000;
const DEFAULT_ENCODE_INVALID_NUMBERS: c_int = 0;
const DEFAULT_DECODE_INVALID_NUMBERS: c_int = 1;
const DEFAULT_ENCODE_KEEP_BUFFER: c_int = 1;
const DEFAULT_ENCODE_NUMBER_PRECISION: c_int = 14;

/// Decode scratch larger than this is released after the call.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Marks a userdata as our `Config` (checked before every use).
const CONFIG_MAGIC: u64 = 0x636a_736f_6e5f_6366;

/// Option lists for `luaL_checkoption` (NULL terminated, as it expects).
const BOOL_OPTIONS: [*const c_char; 3] = [c"off".as_ptr(), c"on".as_ptr(), ptr::null()];
const INVALID_NUMBER_OPTIONS: [*const c_char; 4] = [
    c"off".as_ptr(),
    c"on".as_ptr(),
    c"null".as_ptr(),
    ptr::null(),
];

/// The settings one `cjson` table (and each `cjson.new()` table) carries.
#[derive(Clone, Copy)]
struct Settings {
    sparse_convert: c_int,
    sparse_ratio: c_int,
    sparse_safe: c_int,
    encode_max_depth: c_int,
    /// 0 = error, 1 = write inf/nan, 2 = write null.
    encode_invalid_numbers: c_int,
    encode_number_precision: c_int,
    encode_keep_buffer: c_int,
    decode_invalid_numbers: c_int,
    decode_max_depth: c_int,
}

/// Lives in a Lua full userdata, the first upvalue of every module function.
struct Config {
    magic: u64,
    set: Settings,
    /// Encode output; kept between calls while `encode_keep_buffer` is on.
    buf: Vec<u8>,
    /// Decode string scratch (strings with escapes are rebuilt here).
    scratch: Vec<u8>,
    enc_frames: Vec<EncFrame>,
    dec_frames: Vec<DecFrame>,
}

// Lua 5.1 aligns userdata payloads for double / pointer / long.
const _: () = assert!(mem::align_of::<Config>() <= 8);

/// Everything that ends an encode or decode with a Lua error. No heap
/// memory, so it may be held while longjmp-ing.
#[derive(Clone, Copy, Debug)]
enum Error {
    /// "Cannot serialise <lua type name>: <reason>"
    Serialise { ltype: c_int, reason: &'static str },
    /// "Cannot serialise, excessive nesting (<depth>)"
    Nesting { depth: c_int },
    /// "Expected <expected> but found <found> at character <index + 1>"
    Parse {
        expected: &'static str,
        found: &'static str,
        index: usize,
    },
    /// "Found too many nested data structures (<depth>) at character <at>"
    TooDeep { depth: c_int, at: usize },
    /// A Rust panic was caught.
    Internal,
}

// ===== Lua entry points =====

/// Creates the `cjson` table and stores it as the global `cjson`. The Lua
/// stack is left as it was found.
///
/// # Safety
/// `l` must be a valid Lua 5.1 state with at least 3 free stack slots. Lua
/// may raise (longjmp) on allocation failure, so call this where that is
/// handled (as with any `luaopen_*`).
pub unsafe fn open(l: *mut ffi::lua_State) {
    // SAFETY: the caller passes a valid state; new_module pushes one table
    // and lua_setglobal pops it.
    unsafe {
        new_module(l);
        ffi::lua_setglobal(l, MODULE_NAME.as_ptr());
    }
}

/// Pushes a new module table with its own configuration.
unsafe fn new_module(l: *mut ffi::lua_State) {
    const FUNCS: [(&CStr, ffi::lua_CFunction); 10] = [
        (c"encode", json_encode),
        (c"decode", json_decode),
        (c"encode_sparse_array", cfg_encode_sparse_array),
        (c"encode_max_depth", cfg_encode_max_depth),
        (c"decode_max_depth", cfg_decode_max_depth),
        (c"encode_number_precision", cfg_encode_number_precision),
        (c"encode_keep_buffer", cfg_encode_keep_buffer),
        (c"encode_invalid_numbers", cfg_encode_invalid_numbers),
        (c"decode_invalid_numbers", cfg_decode_invalid_numbers),
        (c"new", json_new),
    ];
    // SAFETY: plain stack manipulation on a valid state; the insertion order
    // matches the C library so `pairs(cjson)` walks the same order.
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        create_config(l);
        for (name, func) in FUNCS {
            ffi::lua_pushvalue(l, -1);
            ffi::lua_pushcclosure(l, func, 1);
            ffi::lua_setfield(l, -3, name.as_ptr());
        }
        ffi::lua_settop(l, -2);
        ffi::lua_pushlightuserdata(l, ptr::null_mut());
        ffi::lua_setfield(l, -2, c"null".as_ptr());
        ffi::lua_pushstring_(l, MODULE_NAME.as_ptr());
        ffi::lua_setfield(l, -2, c"_NAME".as_ptr());
        ffi::lua_pushstring_(l, MODULE_VERSION.as_ptr());
        ffi::lua_setfield(l, -2, c"_VERSION".as_ptr());
    }
}

/// Pushes a fresh configuration userdata (with a `__gc` that frees buffers).
unsafe fn create_config(l: *mut ffi::lua_State) {
    let config = Config {
        magic: CONFIG_MAGIC,
        set: Settings {
            sparse_convert: DEFAULT_SPARSE_CONVERT,
            sparse_ratio: DEFAULT_SPARSE_RATIO,
            sparse_safe: DEFAULT_SPARSE_SAFE,
            encode_max_depth: DEFAULT_ENCODE_MAX_DEPTH,
            encode_invalid_numbers: DEFAULT_ENCODE_INVALID_NUMBERS,
            encode_number_precision: DEFAULT_ENCODE_NUMBER_PRECISION,
            encode_keep_buffer: DEFAULT_ENCODE_KEEP_BUFFER,
            decode_invalid_numbers: DEFAULT_DECODE_INVALID_NUMBERS,
            decode_max_depth: DEFAULT_DECODE_MAX_DEPTH,
        },
        buf: Vec::new(),
        scratch: Vec::new(),
        enc_frames: Vec::new(),
        dec_frames: Vec::new(),
    };
    // SAFETY: lua_newuserdata returns a block of the requested size, aligned
    // for at least 8 bytes (checked above against Config's alignment), which
    // we initialise at once; `config` holds only empty Vecs, so nothing
    // leaks if lua_newuserdata raises before the write.
    unsafe {
        let ud = ffi::lua_newuserdata(l, mem::size_of::<Config>()).cast::<Config>();
        ptr::write(ud, config);
        ffi::lua_createtable(l, 0, 1);
        ffi::lua_pushcclosure(l, config_gc, 0);
        ffi::lua_setfield(l, -2, c"__gc".as_ptr());
        ffi::lua_setmetatable(l, -2);
    }
}

/// `__gc` of the configuration: release the buffers. Idempotent and leaves
/// a valid (empty) Config behind, so a stray second call is harmless.
unsafe extern "C-unwind" fn config_gc(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as_config validates the userdata's type, size and magic.
    unsafe {
        if let Some(cfg) = as_config(l, 1) {
            let cfg = &mut *cfg;
            drop(mem::take(&mut cfg.buf));
            drop(mem::take(&mut cfg.scratch));
            drop(mem::take(&mut cfg.enc_frames));
            drop(mem::take(&mut cfg.dec_frames));
        }
    }
    0
}

/// `cjson.new()`: a new module table with independent settings.
unsafe extern "C-unwind" fn json_new(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: valid state from Lua; LUA_MINSTACK slots are available.
    unsafe { new_module(l) };
    1
}

/// The Config behind stack index `idx`, if it is one.
unsafe fn as_config(l: *mut ffi::lua_State, idx: c_int) -> Option<*mut Config> {
    // SAFETY: only reads the userdata after checking it is a full userdata
    // of exactly Config's size; the magic tells ours from a foreign one.
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TUSERDATA
            || ffi::lua_objlen(l, idx) != mem::size_of::<Config>()
        {
            return None;
        }
        let cfg = ffi::lua_touserdata(l, idx).cast::<Config>();
        (!cfg.is_null() && (*cfg).magic == CONFIG_MAGIC).then_some(cfg)
    }
}

/// The Config of the running module function (its first upvalue).
unsafe fn fetch_config(l: *mut ffi::lua_State) -> *mut Config {
    // SAFETY: nothing with a destructor is alive here when luaL_error jumps.
    unsafe {
        match as_config(l, ffi::lua_upvalueindex(1)) {
            Some(cfg) => cfg,
            None => {
                ffi::luaL_error(l, c"BUG: Unable to fetch CJSON configuration".as_ptr());
                std::process::abort()
            }
        }
    }
}

// ===== Configuration functions =====
//
// They only call the Lua API on plain integers and pointers: nothing here
// can panic and nothing owns heap memory when luaL_* raises.

/// Rejects surplus arguments and pads missing ones with nil.
unsafe fn arg_init(l: *mut ffi::lua_State, args: c_int) -> *mut Config {
    // SAFETY: valid state; luaL_argerror longjmps with no Rust values alive.
    unsafe {
        if ffi::lua_gettop(l) > args {
            ffi::luaL_argerror(l, args + 1, c"found too many arguments".as_ptr());
        }
        while ffi::lua_gettop(l) < args {
            ffi::lua_pushnil(l);
        }
        fetch_config(l)
    }
}

/// Integer setting: a non-nil argument must be within [min, max] (the error
/// always names argument #1, as the C library does); pushes the value.
unsafe fn integer_option(
    l: *mut ffi::lua_State,
    idx: c_int,
    setting: *mut c_int,
    min: c_int,
    max: c_int,
) {
    // SAFETY: `setting` points into the live Config userdata; the message
    // pushed for luaL_argerror stays on the Lua stack while it is used.
    unsafe {
        if ffi::lua_isnil(l, idx) == 0 {
            // C assigns the lua_Integer to an int: keep the truncation.
            let value = ffi::luaL_checkinteger(l, idx) as c_int;
            if value < min || value > max {
                ffi::lua_pushfstring(l, c"expected integer between %d and %d".as_ptr(), min, max);
                ffi::luaL_argerror(l, 1, ffi::lua_tolstring(l, -1, ptr::null_mut()));
            }
            *setting = value;
        }
        ffi::lua_pushinteger(l, *setting as ffi::lua_Integer);
    }
}

/// Enumerated setting: a boolean or one of `options`; pushes the value as a
/// boolean when it is off/on, else as its option name.
unsafe fn enum_option(
    l: *mut ffi::lua_State,
    idx: c_int,
    setting: *mut c_int,
    options: &[*const c_char],
) {
    // SAFETY: `setting` points into the live Config userdata; `options` is
    // NULL terminated as luaL_checkoption requires.
    unsafe {
        if ffi::lua_isnil(l, idx) == 0 {
            *setting = if ffi::lua_isboolean(l, idx) != 0 {
                ffi::lua_toboolean(l, idx)
            } else {
                ffi::luaL_checkoption(l, idx, ptr::null(), options.as_ptr())
            };
        }
        let value = *setting;
        if value == 0 || value == 1 {
            ffi::lua_pushboolean(l, value);
        } else {
            match usize::try_from(value).ok().and_then(|i| options.get(i)) {
                Some(&name) if !name.is_null() => ffi::lua_pushstring_(l, name),
                _ => ffi::lua_pushnil(l),
            }
        }
    }
}

/// `cjson.encode_sparse_array([convert[, ratio[, safe]]])`
unsafe extern "C-unwind" fn cfg_encode_sparse_array(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see enum_option / integer_option.
    unsafe {
        let cfg = arg_init(l, 3);
        enum_option(l, 1, &raw mut (*cfg).set.sparse_convert, &BOOL_OPTIONS);
        integer_option(l, 2, &raw mut (*cfg).set.sparse_ratio, 0, c_int::MAX);
        integer_option(l, 3, &raw mut (*cfg).set.sparse_safe, 0, c_int::MAX);
    }
    3
}

/// `cjson.encode_max_depth([depth])`
unsafe extern "C-unwind" fn cfg_encode_max_depth(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see integer_option.
    unsafe {
        let cfg = arg_init(l, 1);
        integer_option(l, 1, &raw mut (*cfg).set.encode_max_depth, 1, c_int::MAX);
    }
    1
}

/// `cjson.decode_max_depth([depth])`
unsafe extern "C-unwind" fn cfg_decode_max_depth(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see integer_option.
    unsafe {
        let cfg = arg_init(l, 1);
        integer_option(l, 1, &raw mut (*cfg).set.decode_max_depth, 1, c_int::MAX);
    }
    1
}

/// `cjson.encode_number_precision([1..14])`
unsafe extern "C-unwind" fn cfg_encode_number_precision(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see integer_option.
    unsafe {
        let cfg = arg_init(l, 1);
        integer_option(l, 1, &raw mut (*cfg).set.encode_number_precision, 1, 14);
    }
    1
}

/// `cjson.encode_keep_buffer([on/off])`
unsafe extern "C-unwind" fn cfg_encode_keep_buffer(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see enum_option; the old buffer is dropped before returning,
    // with no Lua call after it.
    unsafe {
        let cfg = arg_init(l, 1);
        let old = (*cfg).set.encode_keep_buffer;
        enum_option(l, 1, &raw mut (*cfg).set.encode_keep_buffer, &BOOL_OPTIONS);
        if old != (*cfg).set.encode_keep_buffer {
            drop(mem::take(&mut (*cfg).buf));
        }
    }
    1
}

/// `cjson.encode_invalid_numbers([on/off/"null"])`
unsafe extern "C-unwind" fn cfg_encode_invalid_numbers(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see enum_option.
    unsafe {
        let cfg = arg_init(l, 1);
        enum_option(
            l,
            1,
            &raw mut (*cfg).set.encode_invalid_numbers,
            &INVALID_NUMBER_OPTIONS,
        );
    }
    1
}

/// `cjson.decode_invalid_numbers([on/off])`
unsafe extern "C-unwind" fn cfg_decode_invalid_numbers(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see enum_option.
    unsafe {
        let cfg = arg_init(l, 1);
        enum_option(
            l,
            1,
            &raw mut (*cfg).set.decode_invalid_numbers,
            &BOOL_OPTIONS,
        );
    }
    1
}

// ===== Errors =====

/// Fixed-size message buffer (truncates; never allocates or panics).
struct MsgBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> MsgBuf<N> {
    fn new() -> Self {
        MsgBuf {
            bytes: [0; N],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len.min(N)]
    }
}

impl<const N: usize> fmt::Write for MsgBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N.saturating_sub(self.len);
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// C's `%d` of a size_t / ptrdiff_t argument reads its low 32 bits.
fn c_int_of(n: usize) -> i32 {
    n as u32 as i32
}

/// Raises `err` as a Lua error, prefixed with the caller's position like
/// luaL_error. Never returns.
///
/// # Safety
/// No value with a destructor may be alive in the calling Rust frames.
unsafe fn raise(l: *mut ffi::lua_State, err: Error) -> ! {
    let mut msg = MsgBuf::<256>::new();
    // SAFETY: lua_typename returns a static NUL-terminated name. The Lua
    // stack is cleared first (the error discards it anyway), which also
    // guarantees room for the two pushes after a failed lua_checkstack.
    unsafe {
        let _ = match err {
            Error::Serialise { ltype, reason } => {
                let name = CStr::from_ptr(ffi::lua_typename(l, ltype));
                write!(
                    msg,
                    "Cannot serialise {}: {}",
                    name.to_str().unwrap_or("?"),
                    reason
                )
            }
            Error::Nesting { depth } => {
                write!(msg, "Cannot serialise, excessive nesting ({depth})")
            }
            Error::Parse {
                expected,
                found,
                index,
            } => write!(
                msg,
                "Expected {expected} but found {found} at character {}",
                c_int_of(index.wrapping_add(1))
            ),
            Error::TooDeep { depth, at } => write!(
                msg,
                "Found too many nested data structures ({depth}) at character {}",
                c_int_of(at)
            ),
            Error::Internal => write!(msg, "cjson: internal error"),
        };
        ffi::lua_settop(l, 0);
        ffi::luaL_where(l, 1);
        let text = msg.as_bytes();
        ffi::lua_pushlstring_(l, text.as_ptr().cast(), text.len());
        ffi::lua_concat(l, 2);
        ffi::lua_error(l)
    }
}

/// Runs `work`, turning a panic into `Error::Internal` (the payload is
/// dropped here, before any longjmp).
fn guarded(work: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => {
            drop(payload);
            Err(Error::Internal)
        }
    }
}

// ===== Encoding =====

#[derive(Clone, Copy, Debug)]
enum EncFrame {
    /// Table at the stack top written as an array of `len` slots.
    Array { len: c_int, next: i64 },
    /// Table below its current key on the stack, written as an object.
    Object { first: bool },
}

/// `cjson.encode(value)`
unsafe extern "C-unwind" fn json_encode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: cfg points into the configuration userdata, which the running
    // closure keeps alive. Lua errors are raised only after the inner work
    // returned and nothing with a destructor is alive.
    unsafe {
        let cfg = fetch_config(l);
        if ffi::lua_gettop(l) != 1 {
            ffi::luaL_argerror(l, 1, c"expected 1 argument".as_ptr());
        }
        let result = guarded(|| encode_value(l, &mut *cfg));
        let cfg = &mut *cfg;
        match result {
            Ok(()) => {
                push_bytes(l, &cfg.buf);
                if cfg.set.encode_keep_buffer == 0 {
                    drop(mem::take(&mut cfg.buf));
                }
                1
            }
            Err(err) => {
                if cfg.set.encode_keep_buffer == 0 {
                    drop(mem::take(&mut cfg.buf));
                }
                raise(l, err)
            }
        }
    }
}

unsafe fn push_bytes(l: *mut ffi::lua_State, bytes: &[u8]) {
    // SAFETY: lua_pushlstring copies `bytes`; an empty slice is passed as a
    // real (static) pointer.
    unsafe {
        if bytes.is_empty() {
            ffi::lua_pushlstring_(l, c"".as_ptr(), 0);
        } else {
            ffi::lua_pushlstring_(l, bytes.as_ptr().cast(), bytes.len());
        }
    }
}

/// Serialises the value at the stack top into `cfg.buf`. Keeps the Lua
/// stack layout of the C library: an array's table with its current
/// element above it, an object's table with its key and value above it.
unsafe fn encode_value(l: *mut ffi::lua_State, cfg: &mut Config) -> Result<(), Error> {
    let Config {
        set,
        buf,
        enc_frames: frames,
        ..
    } = cfg;
    buf.clear();
    frames.clear();
    // SAFETY: every index used refers to a slot this function pushed or to
    // the argument; lua_checkstack(3) precedes each table level.
    unsafe {
        if !append_value(l, set, buf, frames)? {
            return Ok(());
        }
        while let Some(top) = frames.last_mut() {
            match *top {
                EncFrame::Array { len, next } => {
                    if next > i64::from(len) {
                        buf.push(b']');
                        frames.pop();
                        ffi::lua_settop(l, -2);
                        continue;
                    }
                    *top = EncFrame::Array {
                        len,
                        next: next + 1,
                    };
                    if next > 1 {
                        buf.push(b',');
                    }
                    ffi::lua_rawgeti_(l, -1, next as c_int);
                }
                EncFrame::Object { first } => {
                    if ffi::lua_next(l, -2) == 0 {
                        buf.push(b'}');
                        frames.pop();
                        ffi::lua_settop(l, -2);
                        continue;
                    }
                    *top = EncFrame::Object { first: false };
                    if !first {
                        buf.push(b',');
                    }
                    match ffi::lua_type(l, -2) {
                        ffi::LUA_TNUMBER => {
                            buf.push(b'"');
                            append_number(l, -2, set, buf)?;
                            buf.extend_from_slice(b"\":");
                        }
                        ffi::LUA_TSTRING => {
                            append_string(l, -2, buf);
                            buf.push(b':');
                        }
                        ltype => {
                            return Err(Error::Serialise {
                                ltype,
                                reason: "table key must be a number or string",
                            });
                        }
                    }
                }
            }
            if !append_value(l, set, buf, frames)? {
                ffi::lua_settop(l, -2);
            }
        }
    }
    Ok(())
}

/// Writes the value at the stack top. A table is only opened: its bracket
/// is written, a frame pushed and `true` returned (the table stays on the
/// stack); anything else is written whole and `false` returned.
unsafe fn append_value(
    l: *mut ffi::lua_State,
    set: &Settings,
    buf: &mut Vec<u8>,
    frames: &mut Vec<EncFrame>,
) -> Result<bool, Error> {
    // SAFETY: reads the stack top of a valid state; see encode_value.
    unsafe {
        match ffi::lua_type(l, -1) {
            ffi::LUA_TSTRING => append_string(l, -1, buf),
            ffi::LUA_TNUMBER => append_number(l, -1, set, buf)?,
            ffi::LUA_TBOOLEAN => {
                if ffi::lua_toboolean(l, -1) != 0 {
                    buf.extend_from_slice(b"true");
                } else {
                    buf.extend_from_slice(b"false");
                }
            }
            ffi::LUA_TTABLE => {
                let depth = c_int::try_from(frames.len())
                    .unwrap_or(c_int::MAX)
                    .saturating_add(1);
                if depth > set.encode_max_depth || ffi::lua_checkstack(l, 3) == 0 {
                    return Err(Error::Nesting { depth });
                }
                let len = array_length(l, set)?;
                if len > 0 {
                    buf.push(b'[');
                    frames.push(EncFrame::Array { len, next: 1 });
                } else {
                    buf.push(b'{');
                    ffi::lua_pushnil(l);
                    frames.push(EncFrame::Object { first: true });
                }
                return Ok(true);
            }
            ffi::LUA_TNIL => buf.extend_from_slice(b"null"),
            ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => {
                buf.extend_from_slice(b"null");
            }
            ltype => {
                return Err(Error::Serialise {
                    ltype,
                    reason: "type not supported",
                });
            }
        }
    }
    Ok(false)
}

/// C's `(int)` of a double as x86-64 does it: out-of-range values (and NaN)
/// become INT_MIN.
fn x86_double_to_int(k: f64) -> c_int {
    if k.is_nan() || k >= 2_147_483_648.0 || k <= -2_147_483_649.0 {
        c_int::MIN
    } else {
        k as c_int
    }
}

/// For the table at the stack top: its array length when every key is a
/// positive integer (the largest key), else -1 (write it as an object).
/// Excessively sparse arrays are an error, or an object when
/// `encode_sparse_array(true)` was set.
unsafe fn array_length(l: *mut ffi::lua_State, set: &Settings) -> Result<c_int, Error> {
    let mut max: c_int = 0;
    let mut items: c_int = 0;
    // SAFETY: the table is at -1 and two slots were reserved by the caller's
    // lua_checkstack(3); the traversal leaves the stack balanced.
    unsafe {
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER {
                let k = ffi::lua_tonumber(l, -2);
                if k != 0.0 && k.floor() == k && k >= 1.0 {
                    if k > f64::from(max) {
                        max = x86_double_to_int(k);
                    }
                    items = items.wrapping_add(1);
                    ffi::lua_settop(l, -2);
                    continue;
                }
            }
            ffi::lua_settop(l, -3);
            return Ok(-1);
        }
    }
    if set.sparse_ratio > 0 && max > items.wrapping_mul(set.sparse_ratio) && max > set.sparse_safe {
        if set.sparse_convert == 0 {
            return Err(Error::Serialise {
                ltype: ffi::LUA_TTABLE,
                reason: "excessively sparse array",
            });
        }
        return Ok(-1);
    }
    Ok(max)
}

/// Writes the number at `idx` (a value or a key) per the settings.
unsafe fn append_number(
    l: *mut ffi::lua_State,
    idx: c_int,
    set: &Settings,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    // SAFETY: `idx` holds a number on a valid state.
    let num = unsafe { ffi::lua_tonumber(l, idx) };
    match set.encode_invalid_numbers {
        0 => {
            if !num.is_finite() {
                return Err(Error::Serialise {
                    ltype: ffi::LUA_TNUMBER,
                    reason: "must not be NaN or Inf",
                });
            }
        }
        1 => {
            if num.is_nan() {
                buf.extend_from_slice(b"nan");
                return Ok(());
            }
        }
        _ => {
            if !num.is_finite() {
                buf.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    format_number(buf, num, set.encode_number_precision);
    Ok(())
}

/// Bytes that JSON output must not carry raw (true = write an escape).
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'/' as usize] = true;
    t[0x7f] = true;
    t
};

/// Writes the string at `idx` quoted and escaped. Bytes >= 0x80 pass
/// through untouched (no UTF-8 validation, like the C library).
unsafe fn append_string(l: *mut ffi::lua_State, idx: c_int, buf: &mut Vec<u8>) {
    let mut len = 0usize;
    // SAFETY: `idx` holds a string (never a number here, so lua_tolstring
    // does not convert in place); the bytes stay alive while on the stack.
    let s = unsafe {
        let p = ffi::lua_tolstring(l, idx, &mut len);
        if p.is_null() || len == 0 {
            &[][..]
        } else {
            slice::from_raw_parts(p.cast::<u8>(), len)
        }
    };
    escape_string(buf, s);
}

fn escape_string(buf: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.reserve(s.len() + 2);
    buf.push(b'"');
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if !ESCAPED[b as usize] {
            continue;
        }
        buf.extend_from_slice(&s[run..i]);
        run = i + 1;
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'/' => buf.extend_from_slice(b"\\/"),
            0x08 => buf.extend_from_slice(b"\\b"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            0x0c => buf.extend_from_slice(b"\\f"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
    }
    buf.extend_from_slice(&s[run..]);
    buf.push(b'"');
}

/// 10^i for i in 0..=17.
const POW10: [f64; 18] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17,
];

/// Appends `v` as C's `printf("%.<precision>g", v)` does (glibc: exact
/// decimal expansion, ties to even; "inf", "-inf", "-0").
fn format_number(out: &mut Vec<u8>, v: f64, precision: c_int) {
    if v.is_nan() {
        out.extend_from_slice(if v.is_sign_negative() {
            b"-nan"
        } else {
            b"nan"
        });
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v < 0.0 { b"-inf" } else { b"inf" });
        return;
    }
    let prec = precision.clamp(1, 17) as usize;
    // Fast path: an integer with at most `prec` digits prints as itself.
    if v.fract() == 0.0 && v.abs() < POW10[prec] {
        if v.is_sign_negative() {
            out.push(b'-');
        }
        let mut n = v.abs() as u64;
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(&digits[i..]);
        return;
    }
    // Rust's exact `{:e}` gives the `%e` digits and the exponent X; `%g`
    // then picks the fixed or exponent form and drops trailing zeros.
    let mut tmp = MsgBuf::<64>::new();
    let _ = write!(tmp, "{:.*e}", prec - 1, v.abs());
    let text = tmp.as_bytes();
    let epos = text.iter().position(|&c| c == b'e').unwrap_or(text.len());
    let mut digits = [b'0'; 20];
    let mut nd = 0;
    for &c in &text[..epos] {
        if c.is_ascii_digit() && nd < digits.len() {
            digits[nd] = c;
            nd += 1;
        }
    }
    let mut exp: i32 = 0;
    let mut exp_negative = false;
    for &c in text.get(epos + 1..).unwrap_or(&[]) {
        if c == b'-' {
            exp_negative = true;
        } else if c.is_ascii_digit() {
            exp = exp * 10 + i32::from(c - b'0');
        }
    }
    if exp_negative {
        exp = -exp;
    }
    let nd = nd.max(1);
    let mut sig = nd;
    while sig > 1 && digits[sig - 1] == b'0' {
        sig -= 1;
    }
    if v.is_sign_negative() {
        out.push(b'-');
    }
    if exp < -4 || exp >= prec as i32 {
        out.push(digits[0]);
        if sig > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..sig]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push(b'0');
        }
        let mut num = MsgBuf::<12>::new();
        let _ = write!(num, "{a}");
        out.extend_from_slice(num.as_bytes());
    } else if exp >= 0 {
        let int_len = (exp as usize + 1).min(nd);
        out.extend_from_slice(&digits[..int_len]);
        if sig > int_len {
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..sig]);
        }
    } else {
        out.extend_from_slice(b"0.");
        for _ in 0..(-exp - 1) {
            out.push(b'0');
        }
        out.extend_from_slice(&digits[..sig]);
    }
}

// ===== Decoding =====

#[derive(Clone, Copy, Debug)]
enum DecFrame {
    /// Array table at the stack top (below the pending value).
    Array { next: c_int },
    /// Object table with the pending key above it.
    Object,
}

#[derive(Clone, Copy, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    /// Content is in `Parser::str_span` / `Parser::scratch`.
    Str,
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    /// The name an error message gives this token.
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(what) => what,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Token {
    tok: Tok,
    /// 0-based offset reported in errors.
    index: usize,
}

struct Parser<'a> {
    /// The JSON text. Reading past its end yields NUL, as the C library
    /// reads Lua's terminator; an embedded NUL ends the text too.
    data: &'a [u8],
    pos: usize,
    invalid_numbers: bool,
    scratch: &'a mut Vec<u8>,
    /// The last string token: a span of `data`, or None for `scratch`.
    str_span: Option<(usize, usize)>,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn error_at(&self, what: &'static str) -> Token {
        Token {
            tok: Tok::Error(what),
            index: self.pos,
        }
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let c = self.at(self.pos);
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(tok) = single {
            self.pos += 1;
            return Token { tok, index };
        }
        match c {
            0 => Token {
                tok: Tok::End,
                index,
            },
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !self.invalid_numbers && self.is_invalid_number() {
                    return self.error_at("invalid number");
                }
                self.number_token()
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                let rest = &self.data[self.pos.min(self.data.len())..];
                if rest.starts_with(b"true") {
                    self.pos += 4;
                    Token {
                        tok: Tok::Bool(true),
                        index,
                    }
                } else if rest.starts_with(b"false") {
                    self.pos += 5;
                    Token {
                        tok: Tok::Bool(false),
                        index,
                    }
                } else if rest.starts_with(b"null") {
                    self.pos += 4;
                    Token {
                        tok: Tok::Null,
                        index,
                    }
                } else if self.invalid_numbers && self.is_invalid_number() {
                    self.number_token()
                } else {
                    self.error_at("invalid token")
                }
            }
            _ => self.error_at("invalid token"),
        }
    }

    /// Numbers strict JSON forbids but strtod takes: a leading '+', hex,
    /// leading zeros, inf and nan.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        match self.at(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        }
        if c <= b'9' {
            return false;
        }
        self.starts_with_nocase(p, b"inf") || self.starts_with_nocase(p, b"nan")
    }

    fn starts_with_nocase(&self, p: usize, word: &[u8]) -> bool {
        word.iter()
            .enumerate()
            .all(|(i, &w)| self.at(p + i).to_ascii_lowercase() == w)
    }

    fn number_token(&mut self) -> Token {
        let index = self.pos;
        let (value, end) = strtod(self.data, self.pos);
        if end == self.pos {
            return self.error_at("invalid number");
        }
        self.pos = end;
        Token {
            tok: Tok::Num(value),
            index,
        }
    }

    fn string_token(&mut self) -> Token {
        let index = self.pos;
        self.pos += 1;
        let start = self.pos;
        // Fast path: no escapes, the token is a span of the input.
        loop {
            match self.at(self.pos) {
                b'"' => {
                    self.str_span = Some((start, self.pos));
                    self.pos += 1;
                    return Token {
                        tok: Tok::Str,
                        index,
                    };
                }
                b'\\' | 0 => break,
                _ => self.pos += 1,
            }
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.data[start..self.pos]);
        loop {
            let c = self.at(self.pos);
            match c {
                b'"' => break,
                0 => return self.error_at("unexpected end of string"),
                b'\\' => {
                    let decoded = match self.at(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => 0x0c,
                        b'r' => b'\r',
                        b'u' => {
                            if !self.unicode_escape() {
                                return self.error_at("invalid unicode escape code");
                            }
                            continue;
                        }
                        _ => return self.error_at("invalid escape code"),
                    };
                    self.scratch.push(decoded);
                    self.pos += 2;
                }
                _ => {
                    self.scratch.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        self.str_span = None;
        Token {
            tok: Tok::Str,
            index,
        }
    }

    fn hex4(&self, p: usize) -> Option<u32> {
        let mut v = 0;
        for i in 0..4 {
            v = v << 4 | (self.at(p + i) as char).to_digit(16)?;
        }
        Some(v)
    }

    /// `\uXXXX` (or a surrogate pair of them) at `pos`, appended as UTF-8.
    fn unicode_escape(&mut self) -> bool {
        let Some(mut cp) = self.hex4(self.pos + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        // Always a valid scalar value here: surrogates were paired above.
        let mut utf8 = [0u8; 4];
        let n = match char::from_u32(cp) {
            Some(ch) => ch.encode_utf8(&mut utf8).len(),
            None => return false,
        };
        self.scratch.extend_from_slice(&utf8[..n]);
        self.pos += len;
        true
    }

    /// Pushes the last string token.
    unsafe fn push_str(&self, l: *mut ffi::lua_State) {
        let bytes = match self.str_span {
            Some((s, e)) => &self.data[s..e],
            None => &self.scratch[..],
        };
        // SAFETY: valid state; push_bytes copies.
        unsafe { push_bytes(l, bytes) }
    }

    fn unexpected(&self, expected: &'static str, token: Token) -> Error {
        Error::Parse {
            expected,
            found: token.tok.name(),
            index: token.index,
        }
    }

    /// At an object key: check and push it, eat the colon, and return the
    /// first token of the value.
    unsafe fn object_key(&mut self, l: *mut ffi::lua_State, token: Token) -> Result<Token, Error> {
        if !matches!(token.tok, Tok::Str) {
            return Err(self.unexpected("object key string", token));
        }
        // SAFETY: the caller reserved the slot with lua_checkstack(3).
        unsafe { self.push_str(l) };
        let colon = self.next_token();
        if !matches!(colon.tok, Tok::Colon) {
            return Err(self.unexpected("colon", colon));
        }
        Ok(self.next_token())
    }
}

/// `cjson.decode(text)`
unsafe extern "C-unwind" fn json_decode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: the text is the string in stack slot 1, which stays there for
    // the whole call; cfg is kept alive by the running closure. Lua errors
    // are raised only with nothing owning heap memory alive.
    unsafe {
        if ffi::lua_gettop(l) != 1 {
            ffi::luaL_argerror(l, 1, c"expected 1 argument".as_ptr());
        }
        let cfg = fetch_config(l);
        let mut len = 0usize;
        let text = ffi::luaL_checklstring(l, 1, &mut len).cast::<u8>();
        let data: &[u8] = if len == 0 {
            &[]
        } else {
            slice::from_raw_parts(text, len)
        };
        // RFC 4627: a NUL in the first two bytes means UTF-16/32 input.
        if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
            ffi::luaL_error(l, c"JSON parser does not support UTF-16 or UTF-32".as_ptr());
        }
        let result = guarded(|| decode_value(l, &mut *cfg, data));
        let cfg = &mut *cfg;
        if cfg.scratch.capacity() > SCRATCH_KEEP {
            drop(mem::take(&mut cfg.scratch));
        }
        match result {
            Ok(()) => 1,
            Err(err) => raise(l, err),
        }
    }
}

/// Parses `data` and leaves the value on the stack top.
unsafe fn decode_value(l: *mut ffi::lua_State, cfg: &mut Config, data: &[u8]) -> Result<(), Error> {
    let Config {
        set,
        scratch,
        dec_frames: frames,
        ..
    } = cfg;
    frames.clear();
    let max_depth = set.decode_max_depth;
    let mut p = Parser {
        data,
        pos: 0,
        invalid_numbers: set.decode_invalid_numbers != 0,
        scratch,
        str_span: None,
    };
    // Opening a container: depth and stack checks as the C library does.
    let descend = |l: *mut ffi::lua_State, open: usize, at: usize, slots: c_int| {
        let depth = c_int::try_from(open)
            .unwrap_or(c_int::MAX)
            .saturating_add(1);
        // SAFETY: valid state.
        if depth <= max_depth && unsafe { ffi::lua_checkstack(l, slots) } != 0 {
            Ok(())
        } else {
            Err(Error::TooDeep { depth, at })
        }
    };
    // SAFETY: each push is preceded by lua_checkstack for its level (the
    // argument slot leaves room for the top-level scalar); the indexes used
    // by rawset/rawseti are the frame layout described on DecFrame.
    unsafe {
        let mut token = p.next_token();
        'value: loop {
            match token.tok {
                Tok::Str => p.push_str(l),
                Tok::Num(n) => ffi::lua_pushnumber(l, n),
                Tok::Bool(b) => ffi::lua_pushboolean(l, c_int::from(b)),
                Tok::Null => ffi::lua_pushlightuserdata(l, ptr::null_mut()),
                Tok::ObjBegin => {
                    descend(l, frames.len(), p.pos, 3)?;
                    ffi::lua_createtable(l, 0, 0);
                    token = p.next_token();
                    if !matches!(token.tok, Tok::ObjEnd) {
                        frames.push(DecFrame::Object);
                        token = p.object_key(l, token)?;
                        continue 'value;
                    }
                }
                Tok::ArrBegin => {
                    descend(l, frames.len(), p.pos, 2)?;
                    ffi::lua_createtable(l, 0, 0);
                    token = p.next_token();
                    if !matches!(token.tok, Tok::ArrEnd) {
                        frames.push(DecFrame::Array { next: 1 });
                        continue 'value;
                    }
                }
                _ => return Err(p.unexpected("value", token)),
            }
            // A complete value is on the stack top: store it in its parent,
            // closing every container that ends here.
            loop {
                let Some(top) = frames.last_mut() else {
                    break 'value;
                };
                match *top {
                    DecFrame::Array { next } => {
                        ffi::lua_rawseti_(l, -2, next);
                        token = p.next_token();
                        match token.tok {
                            Tok::ArrEnd => {
                                frames.pop();
                            }
                            Tok::Comma => {
                                *top = DecFrame::Array {
                                    next: next.wrapping_add(1),
                                };
                                token = p.next_token();
                                continue 'value;
                            }
                            _ => return Err(p.unexpected("comma or array end", token)),
                        }
                    }
                    DecFrame::Object => {
                        ffi::lua_rawset(l, -3);
                        token = p.next_token();
                        match token.tok {
                            Tok::ObjEnd => {
                                frames.pop();
                            }
                            Tok::Comma => {
                                let key = p.next_token();
                                token = p.object_key(l, key)?;
                                continue 'value;
                            }
                            _ => return Err(p.unexpected("comma or object end", token)),
                        }
                    }
                }
            }
        }
    }
    let end = p.next_token();
    if !matches!(end.tok, Tok::End) {
        return Err(p.unexpected("the end", end));
    }
    Ok(())
}

// ===== strtod =====

/// C's `strtod` (glibc, "C" locale) on the NUL-terminated text starting at
/// `data[start]`: returns the value and the end offset (`start` when no
/// number was recognised). Handles decimal, hexadecimal (with `p`
/// exponents), inf/infinity and nan/nan(chars), all with an optional sign,
/// correctly rounded.
fn strtod(data: &[u8], start: usize) -> (f64, usize) {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let nocase = |p: usize, word: &[u8]| {
        word.iter()
            .enumerate()
            .all(|(i, &w)| at(p + i).to_ascii_lowercase() == w)
    };
    let mut p = start;
    let negative = match at(p) {
        b'-' => {
            p += 1;
            true
        }
        b'+' => {
            p += 1;
            false
        }
        _ => false,
    };
    let signed = |v: f64| if negative { -v } else { v };

    if nocase(p, b"inf") {
        p += 3;
        if nocase(p, b"inity") {
            p += 5;
        }
        return (signed(f64::INFINITY), p);
    }
    if nocase(p, b"nan") {
        p += 3;
        let mut payload = 0u64;
        if at(p) == b'(' {
            let mut q = p + 1;
            while at(q).is_ascii_alphanumeric() || at(q) == b'_' {
                q += 1;
            }
            if at(q) == b')' {
                payload = nan_payload(&data[p + 1..q]).unwrap_or(0);
                p = q + 1;
            }
        }
        let bits = 0x7ff8_0000_0000_0000 | (payload & ((1 << 51) - 1));
        return (signed(f64::from_bits(bits)), p);
    }
    if at(p) == b'0' && at(p + 1) | 0x20 == b'x' {
        return match parse_hex(data, p + 2) {
            Some((v, end)) => (signed(v), end),
            // "0x" without hex digits: only the "0" is a number.
            None => (signed(0.0), p + 1),
        };
    }

    // Decimal: digits [. digits] [e [sign] digits], at least one digit.
    let mut q = p;
    let mut any_digit = false;
    while at(q).is_ascii_digit() {
        q += 1;
        any_digit = true;
    }
    if at(q) == b'.' {
        q += 1;
        while at(q).is_ascii_digit() {
            q += 1;
            any_digit = true;
        }
    }
    if !any_digit {
        return (0.0, start);
    }
    if at(q) | 0x20 == b'e' {
        let mut r = q + 1;
        if matches!(at(r), b'+' | b'-') {
            r += 1;
        }
        if at(r).is_ascii_digit() {
            while at(r).is_ascii_digit() {
                r += 1;
            }
            q = r;
        }
    }
    // The span is ASCII and matches Rust's float grammar, which is exactly
    // rounded like glibc's.
    let value = std::str::from_utf8(&data[start..q])
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0);
    (value, q)
}

/// glibc's NaN payload: the n-char sequence must be a whole `strtoull(s,
/// 0)` number (decimal, 0 octal or 0x hex; saturating); empty means 0.
fn nan_payload(s: &[u8]) -> Option<u64> {
    let (digits, radix) = if s.len() > 2 && s[0] == b'0' && s[1] | 0x20 == b'x' {
        (&s[2..], 16)
    } else if s.len() > 1 && s[0] == b'0' {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let mut v = 0u64;
    for &c in digits {
        let d = (c as char).to_digit(radix)?;
        v = v
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .unwrap_or(u64::MAX);
    }
    Some(v)
}

/// Hex digits (optionally with a point) and an optional binary exponent,
/// starting after "0x". None when there is no hex digit.
fn parse_hex(data: &[u8], start: usize) -> Option<(f64, usize)> {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let hex = |c: u8| (c as char).to_digit(16).map(u64::from);
    let mut p = start;
    let mut mant = 0u64;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut any = false;
    let mut add = |d: u64, fraction: bool| {
        if mant == 0 && d == 0 {
            if fraction {
                exp -= 4;
            }
        } else if mant >> 60 == 0 {
            mant = mant << 4 | d;
            if fraction {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !fraction {
                exp += 4;
            }
        }
    };
    while let Some(d) = hex(at(p)) {
        add(d, false);
        any = true;
        p += 1;
    }
    if at(p) == b'.' {
        let mut q = p + 1;
        while let Some(d) = hex(at(q)) {
            add(d, true);
            any = true;
            q += 1;
        }
        if any {
            p = q;
        }
    }
    if !any {
        return None;
    }
    if at(p) | 0x20 == b'p' {
        let mut r = p + 1;
        let exp_negative = match at(r) {
            b'-' => {
                r += 1;
                true
            }
            b'+' => {
                r += 1;
                false
            }
            _ => false,
        };
        if at(r).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(r).is_ascii_digit() {
                e = (e * 10 + i64::from(at(r) - b'0')).min(1 << 40);
                r += 1;
            }
            exp += if exp_negative { -e } else { e };
            p = r;
        }
    }
    Some((compose_f64(mant, exp, sticky), p))
}

/// `mant * 2^exp` (plus a sliver below it when `sticky`), rounded to the
/// nearest double, ties to even; overflows to infinity, underflows through
/// subnormals to zero.
fn compose_f64(mant: u64, exp: i64, sticky: bool) -> f64 {
    if mant == 0 {
        return 0.0;
    }
    let lz = mant.leading_zeros();
    let m = mant << lz;
    // The value is 1.f * 2^e with m's top bit as the leading 1.
    let e = exp - i64::from(lz) + 63;
    if e > 1023 {
        return f64::INFINITY;
    }
    let round = |keep: u128, rem: u128, half: u128| -> u128 {
        if rem > half || (rem == half && (sticky || keep & 1 == 1)) {
            keep + 1
        } else {
            keep
        }
    };
    if e >= -1022 {
        let mut keep = round(u128::from(m >> 11), u128::from(m & 0x7ff), 0x400) as u64;
        let mut e = e;
        if keep == 1 << 53 {
            keep >>= 1;
            e += 1;
            if e > 1023 {
                return f64::INFINITY;
            }
        }
        return f64::from_bits(((e + 1023) as u64) << 52 | (keep & ((1 << 52) - 1)));
    }
    // Subnormal: count in units of 2^-1074.
    let shift = -(e + 1011);
    if shift >= 65 {
        return 0.0;
    }
    let m = u128::from(m);
    let keep = round(m >> shift, m & ((1u128 << shift) - 1), 1u128 << (shift - 1));
    f64::from_bits(keep as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Lua state with the standard libraries and `cjson` (closed on drop).
    struct State(*mut ffi::lua_State);

    impl State {
        fn new() -> State {
            // SAFETY: fresh state; open must leave the stack as it was.
            unsafe {
                let l = ffi::luaL_newstate();
                assert!(!l.is_null());
                ffi::luaL_openlibs(l);
                let top = ffi::lua_gettop(l);
                open(l);
                assert_eq!(ffi::lua_gettop(l), top, "open() must keep the stack");
                let chunk = format!("{RUNNER}\nreturn run");
                assert_eq!(
                    ffi::luaL_loadbuffer(
                        l,
                        chunk.as_ptr().cast(),
                        chunk.len(),
                        c"=runner".as_ptr()
                    ),
                    0
                );
                assert_eq!(ffi::lua_pcall(l, 0, 1, 0), 0);
                ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"__run".as_ptr());
                State(l)
            }
        }

        /// Runs `src` through the same runner the expectations came from.
        fn run(&self, src: &str) -> String {
            // SAFETY: valid state; the result string is copied before pop.
            unsafe {
                let l = self.0;
                ffi::lua_getfield_(l, ffi::LUA_GLOBALSINDEX, c"__run".as_ptr());
                ffi::lua_pushlstring_(l, src.as_ptr().cast(), src.len());
                if ffi::lua_pcall(l, 1, 1, 0) != 0 {
                    let out = to_string(l, -1);
                    ffi::lua_settop(l, 0);
                    panic!("runner failed: {out}");
                }
                let out = to_string(l, -1);
                ffi::lua_settop(l, 0);
                out
            }
        }

        /// Evaluates a Lua expression returning a string.
        fn eval(&self, expr: &str) -> String {
            // SAFETY: valid state.
            unsafe {
                let l = self.0;
                let chunk = format!("return {expr}");
                assert_eq!(
                    ffi::luaL_loadbuffer(l, chunk.as_ptr().cast(), chunk.len(), c"=eval".as_ptr()),
                    0
                );
                let rc = ffi::lua_pcall(l, 0, 1, 0);
                let out = to_string(l, -1);
                ffi::lua_settop(l, 0);
                assert_eq!(rc, 0, "{expr}: {out}");
                out
            }
        }
    }

    impl Drop for State {
        fn drop(&mut self) {
            // SAFETY: the state was created by luaL_newstate and is unused now.
            unsafe { ffi::lua_close(self.0) }
        }
    }

    unsafe fn to_string(l: *mut ffi::lua_State, idx: c_int) -> String {
        let mut len = 0;
        // SAFETY: valid state; the bytes are copied at once.
        unsafe {
            let p = ffi::lua_tolstring(l, idx, &mut len);
            if p.is_null() {
                return String::from("<non-string>");
            }
            String::from_utf8_lossy(slice::from_raw_parts(p.cast::<u8>(), len)).into_owned()
        }
    }

    /// Lua helper shared with the probe run on redis-server 7.0.15: runs a
    /// snippet under pcall and prints every result in a canonical form.
    const RUNNER: &str = r#"
local function esc(s)
  return (s:gsub('[^%w%p ]', function(c) return string.format('\\x%02x', c:byte()) end))
end
local dump
dump = function(v, d)
  local t = type(v)
  if t == 'string' then return '"' .. esc(v) .. '"'
  elseif t == 'number' then return string.format('%.17g', v)
  elseif t == 'table' then
    if d > 40 then return '{...}' end
    local ks = {}
    for k in pairs(v) do ks[#ks+1] = k end
    table.sort(ks, function(a, b)
      local ta, tb = type(a), type(b)
      if ta ~= tb then return ta < tb end
      if ta == 'number' or ta == 'string' then return a < b end
      return tostring(a) < tostring(b)
    end)
    local out = {}
    for i = 1, #ks do out[i] = dump(ks[i], d + 1) .. '=' .. dump(v[ks[i]], d + 1) end
    return '{' .. table.concat(out, ',') .. '}'
  elseif v == cjson.null then return 'null'
  elseif t == 'userdata' or t == 'function' or t == 'thread' then return t
  else return tostring(v) end
end
local function pack(...) return {n = select('#', ...), ...} end
local function run(src)
  local f = loadstring('return ' .. src)
  if not f then f = loadstring(src) end
  if not f then return 'COMPILE' end
  local r = pack(pcall(f))
  local n = r.n
  local out = {}
  for i = 1, n do out[i] = dump(r[i], 0) end
  return table.concat(out, ' | ')
end
"#;

    #[test]
    fn matches_redis_7_0_15() {
        let state = State::new();
        let mut failures = Vec::new();
        for &(src, want) in REDIS_CASES {
            let got = state.run(src);
            if got != want {
                failures.push(format!("{src}\n  want: {want}\n  got:  {got}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn module_keys_iterate_in_redis_order() {
        let state = State::new();
        let got = state.eval("(function() local t = {} for k in pairs(cjson) do t[#t+1] = k end return table.concat(t, ',') end)()");
        assert_eq!(
            got,
            "_NAME,encode,decode_max_depth,_VERSION,decode_invalid_numbers,encode_keep_buffer,null,\
             encode_number_precision,new,encode_max_depth,encode_invalid_numbers,decode,encode_sparse_array"
        );
    }

    #[test]
    fn full_userdata_is_not_serialisable() {
        let state = State::new();
        assert_eq!(
            state.run("cjson.encode(newproxy())"),
            r#"false | "[string "return cjson.encode(newproxy())"]:1: Cannot serialise userdata: type not supported""#
        );
        assert_eq!(
            state.run("cjson.encode({a = newproxy(true)})"),
            r#"false | "[string "return cjson.encode({a = newproxy(true)})"]:1: Cannot serialise userdata: type not supported""#
        );
    }

    #[test]
    fn stack_is_balanced_and_state_survives_errors() {
        let state = State::new();
        for _ in 0..3 {
            assert_eq!(
                state.run("pcall(cjson.decode, '[1,2')"),
                r#"true | false | "Expected comma or array end but found T_END at character 5""#
            );
            assert_eq!(
                state.run("cjson.encode({1, {a = 'b'}})"),
                r#"true | "[1,{"a":"b"}]""#
            );
            assert_eq!(
                state.run("pcall(cjson.encode, {{{function() end}}})"),
                r#"true | false | "Cannot serialise function: type not supported""#
            );
        }
        // Lots of calls keep working after the module tables are collected.
        state.eval("(function() for i = 1, 200 do local c = cjson.new() c.encode({i}) end collectgarbage() return '' end)()");
        assert_eq!(
            state.eval("cjson.encode(cjson.decode('[\"x\\\\u00e9\"]'))"),
            "[\"x\u{e9}\"]"
        );
    }

    unsafe extern "C" {
        fn snprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ...) -> c_int;
        #[link_name = "strtod"]
        fn libc_strtod(s: *const c_char, end: *mut *mut c_char) -> f64;
    }

    /// xorshift64*, deterministic.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    fn libc_g(v: f64, precision: c_int) -> String {
        let mut buf = [0u8; 64];
        // SAFETY: the buffer is large enough and NUL terminated by snprintf.
        let n = unsafe {
            snprintf(
                buf.as_mut_ptr().cast(),
                buf.len(),
                c"%.*g".as_ptr(),
                precision,
                v,
            )
        };
        String::from_utf8_lossy(&buf[..n as usize]).into_owned()
    }

    fn ours_g(v: f64, precision: c_int) -> String {
        let mut out = Vec::new();
        format_number(&mut out, v, precision);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn number_format_matches_libc() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            0.5,
            0.25,
            0.125,
            2.5,
            0.35,
            1e-5,
            1e-4,
            9.5,
            99.5,
            999.5,
            0.05,
            1e15,
            1e16,
            1e21,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            123456789012345.0,
            99999999999999.5,
            0.999999999999995,
            9.9999999999999e-5,
            1.0 / 3.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for _ in 0..20000 {
            values.push(f64::from_bits(rng.next()));
            // Short binary fractions: exact ties in decimal.
            let k = (rng.next() % 100_000) as f64;
            values.push(k / f64::from(1u32 << (rng.next() % 20)));
            let d = (rng.next() % 1_000_000_000) as f64;
            values.push(d * 10f64.powi((rng.next() % 40) as i32 - 20));
        }
        for i in -20000..20000 {
            values.push(f64::from(i));
        }
        for e in 0..18 {
            let p = 10f64.powi(e);
            values.extend([p - 1.0, p, p + 1.0, -p, 5.0 * p, 0.5 * p - 0.5, p * 1.5]);
        }
        for v in values {
            if v.is_nan() {
                continue;
            }
            for precision in 1..=14 {
                assert_eq!(
                    ours_g(v, precision),
                    libc_g(v, precision),
                    "{v:e} at %.{precision}g"
                );
            }
        }
    }

    fn check_strtod(text: &[u8]) {
        let mut c_text = text.to_vec();
        c_text.push(0);
        let mut end: *mut c_char = ptr::null_mut();
        // SAFETY: NUL-terminated buffer that outlives the call.
        let want = unsafe { libc_strtod(c_text.as_ptr().cast(), &mut end) };
        let want_end = end as usize - c_text.as_ptr() as usize;
        let (got, got_end) = strtod(text, 0);
        assert_eq!(
            (got.to_bits(), got_end),
            (want.to_bits(), want_end),
            "strtod({:?}): got {got:e}, want {want:e}",
            String::from_utf8_lossy(text)
        );
    }

    #[test]
    fn strtod_matches_libc() {
        for text in [
            "0",
            "-0",
            "+0",
            "1",
            "1.",
            ".5",
            "-.5",
            "+.5",
            ".",
            "-",
            "+",
            "e5",
            "1e",
            "1e+",
            "1e-5x",
            "1.5E+300",
            "1e400",
            "-1e400",
            "1e-400",
            "2e-324",
            "3e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "4.9e-324",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "9007199254740993",
            "123456789012345678901234567890e-10",
            "0.000000000000000000000000000000000000000000001e45",
            "1e99999999999999999999",
            "1e-99999999999999999999",
            "0e99999999999999999999",
            "0x",
            "0X",
            "0x.",
            "0x.p1",
            "0xg",
            "0x1",
            "0x1p",
            "0x1p+",
            "0x1p-2",
            "0X1P4",
            "0x.8",
            "0x1.8",
            "0x1.",
            "0x1.p3",
            "0xffffffffffffffffff",
            "0x1.fffffffffffff8p1023",
            "0x1.fffffffffffff7p1023",
            "0x1.fffffffffffff7ffffffffffp1023",
            "0x1p1024",
            "0x1p1023",
            "0x1p-1074",
            "0x1p-1075",
            "0x1.0000000000001p-1075",
            "0x3p-1076",
            "0x1p-1076",
            "0x1.8p-1075",
            "0x1.00000000000008p0",
            "0x1.00000000000018p0",
            "0x1.000000000000080000001p0",
            "0x0.0000000000000000000000000001p112",
            "0x1p99999999999",
            "0x1p-99999999999",
            "0x000000000000000000000001",
            "0x1.fffffffffffffp-1023",
            "0x1.ffffffffffffffp-1023",
            "0x0.fffffffffffff8p-1022",
            "0x123456789abcdef0123p-70",
            "inf",
            "-inf",
            "+inf",
            "Inf",
            "INFINITY",
            "infinity",
            "infin",
            "infinityx",
            "in",
            "i",
            "nan",
            "-nan",
            "+nan",
            "NaN",
            "nan(",
            "nan()",
            "nan(0)",
            "nan(123)",
            "nan(0x10)",
            "nan(010)",
            "nan(08)",
            "nan(0x)",
            "nan(abc)",
            "nan(a_B9)",
            "nan(-5)",
            "nan(0xfffffffffffff)",
            "nan(99999999999999999999999)",
            "-nan(5)",
            "nan(0x8000000000000)",
            "na",
            "n",
            "--1",
            "- 1",
            "+-1",
            "00012.5",
            "-01",
            "1.e3",
            "1.5e3x",
            "12\u{0}34",
        ] {
            check_strtod(text.as_bytes());
        }
        let alphabet = b"0123456789012345678901234567890.eE+-xXpPaAfFiInNtTyY()_";
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..50000 {
            let len = 1 + (rng.next() % 14) as usize;
            let mut text: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect();
            if rng.next().is_multiple_of(3) {
                text.splice(0..0, *b"0x");
            }
            check_strtod(&text);
        }
        for _ in 0..20000 {
            // Round trips of random doubles at several lengths.
            let v = f64::from_bits(rng.next());
            if !v.is_finite() {
                continue;
            }
            for text in [
                format!("{v:e}"),
                format!("{v:.5e}"),
                format!("{v:.20e}"),
                format!("{v:.40e}"),
            ] {
                check_strtod(text.as_bytes());
            }
        }
    }

    #[test]
    fn escape_table() {
        let mut out = Vec::new();
        escape_string(&mut out, b"a\x00\x1f\x7f\x80\"\\/z");
        assert_eq!(out, b"\"a\\u0000\\u001f\\u007f\x80\\\"\\\\\\/z\"");
    }

    /// (snippet, result) pairs recorded from redis-server 7.0.15 with RUNNER.
    #[rustfmt::skip]
    const REDIS_CASES: &[(&str, &str)] = &[
        (r##"cjson._NAME"##, r##"true | "cjson""##),
        (r##"cjson._VERSION"##, r##"true | "2.1.0""##),
        (r##"type(cjson.null)"##, r##"true | "userdata""##),
        (r##"cjson.null == nil"##, r##"true | false"##),
        (r##"tostring(cjson.null)"##, r##"true | "userdata: (nil)""##),
        (r##"type(cjson.new)"##, r##"true | "function""##),
        (r##"cjson.new() ~= cjson"##, r##"true | true"##),
        (r##"local c = cjson.new() local t = {} for k in pairs(c) do t[#t+1] = k end table.sort(t) return table.concat(t, ',')"##, r##"true | "_NAME,_VERSION,decode,decode_invalid_numbers,decode_max_depth,encode,encode_invalid_numbers,encode_keep_buffer,encode_max_depth,encode_number_precision,encode_sparse_array,new,null""##),
        (r##"cjson.encode(1)"##, r##"true | "1""##),
        (r##"cjson.encode(-1)"##, r##"true | "-1""##),
        (r##"cjson.encode(0)"##, r##"true | "0""##),
        (r##"cjson.encode(-0)"##, r##"true | "-0""##),
        (r##"cjson.encode(0.1)"##, r##"true | "0.1""##),
        (r##"cjson.encode(3.0)"##, r##"true | "3""##),
        (r##"cjson.encode(1e300)"##, r##"true | "1e+300""##),
        (r##"cjson.encode(1e-300)"##, r##"true | "1e-300""##),
        (r##"cjson.encode(-1e300)"##, r##"true | "-1e+300""##),
        (r##"cjson.encode(123456789012345)"##, r##"true | "1.2345678901234e+14""##),
        (r##"cjson.encode(12345678901234)"##, r##"true | "12345678901234""##),
        (r##"cjson.encode(1234567890123456)"##, r##"true | "1.2345678901235e+15""##),
        (r##"cjson.encode(2^53)"##, r##"true | "9.007199254741e+15""##),
        (r##"cjson.encode(2^63)"##, r##"true | "9.2233720368548e+18""##),
        (r##"cjson.encode(-2^63)"##, r##"true | "-9.2233720368548e+18""##),
        (r##"cjson.encode(1/3)"##, r##"true | "0.33333333333333""##),
        (r##"cjson.encode(2/3)"##, r##"true | "0.66666666666667""##),
        (r##"cjson.encode(100)"##, r##"true | "100""##),
        (r##"cjson.encode(1e14)"##, r##"true | "1e+14""##),
        (r##"cjson.encode(1e15)"##, r##"true | "1e+15""##),
        (r##"cjson.encode(1e16)"##, r##"true | "1e+16""##),
        (r##"cjson.encode(0.0001)"##, r##"true | "0.0001""##),
        (r##"cjson.encode(0.00001)"##, r##"true | "1e-05""##),
        (r##"cjson.encode(0.000123456789)"##, r##"true | "0.000123456789""##),
        (r##"cjson.encode(123.456)"##, r##"true | "123.456""##),
        (r##"cjson.encode(5e-324)"##, r##"true | "4.9406564584125e-324""##),
        (r##"cjson.encode(1.7976931348623157e308)"##, r##"true | "1.7976931348623e+308""##),
        (r##"cjson.encode(12345678901234567890)"##, r##"true | "1.2345678901235e+19""##),
        (r##"cjson.encode(0.1 + 0.2)"##, r##"true | "0.3""##),
        (r##"cjson.encode(1e21)"##, r##"true | "1e+21""##),
        (r##"cjson.encode(255/256)"##, r##"true | "0.99609375""##),
        (r##"cjson.encode(2.5)"##, r##"true | "2.5""##),
        (r##"cjson.encode(0.5)"##, r##"true | "0.5""##),
        (r##"cjson.encode(99999999999999.5)"##, r##"true | "1e+14""##),
        (r##"cjson.encode(999999999999995)"##, r##"true | "1e+15""##),
        (r##"cjson.encode(0.999999999999995)"##, r##"true | "1""##),
        (r##"cjson.encode(9.9999999999999e-5)"##, r##"true | "9.9999999999999e-05""##),
        (r##"cjson.encode(99999999999999)"##, r##"true | "99999999999999""##),
        (r##"cjson.encode(999999999999999)"##, r##"true | "1e+15""##),
        (r##"cjson.encode(math.pi)"##, r##"true | "3.1415926535898""##),
        (r##"cjson.encode(-math.pi)"##, r##"true | "-3.1415926535898""##),
        (r##"cjson.encode(1e100)"##, r##"true | "1e+100""##),
        (r##"cjson.encode(1.5e-7)"##, r##"true | "1.5e-07""##),
        (r##"cjson.encode(math.huge)"##, r##"false | "[string "return cjson.encode(math.huge)"]:1: Cannot serialise number: must not be NaN or Inf""##),
        (r##"cjson.encode(-math.huge)"##, r##"false | "[string "return cjson.encode(-math.huge)"]:1: Cannot serialise number: must not be NaN or Inf""##),
        (r##"cjson.encode(0/0)"##, r##"false | "[string "return cjson.encode(0/0)"]:1: Cannot serialise number: must not be NaN or Inf""##),
        (r##"cjson.encode({math.huge})"##, r##"false | "[string "return cjson.encode({math.huge})"]:1: Cannot serialise number: must not be NaN or Inf""##),
        (r##"cjson.encode({[math.huge] = 1})"##, r##"false | "[string "return cjson.encode({[math.huge] = 1})"]:1: Cannot serialise number: must not be NaN or Inf""##),
        (r##"cjson.encode({a = 0/0})"##, r##"false | "[string "return cjson.encode({a = 0/0})"]:1: Cannot serialise number: must not be NaN or Inf""##),
        (r##"cjson.encode("")"##, r##"true | """""##),
        (r##"cjson.encode("abc")"##, r##"true | ""abc"""##),
        (r##"cjson.encode("a\"b")"##, r##"true | ""a\"b"""##),
        (r##"cjson.encode("a/b")"##, r##"true | ""a\/b"""##),
        (r##"cjson.encode("a\\b")"##, r##"true | ""a\\b"""##),
        (r##"cjson.encode("\b\f\n\r\t")"##, r##"true | ""\b\f\n\r\t"""##),
        (r##"local t = {} for i = 0, 31 do t[#t+1] = string.char(i) end t[#t+1] = string.char(127) return cjson.encode(table.concat(t))"##, r##"true | ""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\u007f"""##),
        (r##"local t = {} for i = 32, 255 do t[#t+1] = string.char(i) end return cjson.encode(table.concat(t))"##, r##"true | "" !\"#$%&'()*+,-.\/0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\u007f\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"""##),
        (r##"cjson.encode("h\195\169llo \226\130\172 \240\159\152\128")"##, r##"true | ""h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"""##),
        (r##"cjson.encode("a\0b")"##, r##"true | ""a\u0000b"""##),
        (r##"cjson.encode("\255\254")"##, r##"true | ""\xff\xfe"""##),
        (r##"cjson.encode(true)"##, r##"true | "true""##),
        (r##"cjson.encode(false)"##, r##"true | "false""##),
        (r##"cjson.encode(nil)"##, r##"true | "null""##),
        (r##"cjson.encode(cjson.null)"##, r##"true | "null""##),
        (r##"cjson.encode({})"##, r##"true | "{}""##),
        (r##"cjson.encode({{}})"##, r##"true | "[{}]""##),
        (r##"cjson.encode({{}, {}})"##, r##"true | "[{},{}]""##),
        (r##"cjson.encode({1, 2, 3})"##, r##"true | "[1,2,3]""##),
        (r##"cjson.encode({1, 2, {a = 1}})"##, r##"true | "[1,2,{"a":1}]""##),
        (r##"cjson.encode({a = 1})"##, r##"true | "{"a":1}""##),
        (r##"cjson.encode({a = {b = {c = {1, "x", true, false}}}})"##, r##"true | "{"a":{"b":{"c":[1,"x",true,false]}}}""##),
        (r##"cjson.encode({true, false, cjson.null})"##, r##"true | "[true,false,null]""##),
        (r##"cjson.encode({cjson.null})"##, r##"true | "[null]""##),
        (r##"cjson.encode({1, nil, 3})"##, r##"true | "[1,null,3]""##),
        (r##"cjson.encode({nil, nil, 3})"##, r##"true | "[null,null,3]""##),
        (r##"cjson.encode({[1] = 1, [3] = 3})"##, r##"true | "[1,null,3]""##),
        (r##"cjson.encode({[10] = 1})"##, r##"true | "[null,null,null,null,null,null,null,null,null,1]""##),
        (r##"cjson.encode({[11] = 1})"##, r##"false | "[string "return cjson.encode({[11] = 1})"]:1: Cannot serialise table: excessively sparse array""##),
        (r##"cjson.encode({[20] = 1, [1] = 1})"##, r##"false | "[string "return cjson.encode({[20] = 1, [1] = 1})"]:1: Cannot serialise table: excessively sparse array""##),
        (r##"cjson.encode({[1] = 1, [2] = 2, [3] = 3, [4] = 4, [5] = 5, [6] = 6, [12] = 12})"##, r##"true | "[1,2,3,4,5,6,null,null,null,null,null,12]""##),
        (r##"cjson.encode({[1] = 1, [2] = 2, [3] = 3, [4] = 4, [5] = 5, [6] = 6, [13] = 13})"##, r##"true | "[1,2,3,4,5,6,null,null,null,null,null,null,13]""##),
        (r##"cjson.encode({[1] = 1, [2] = 2, [3] = 3, [4] = 4, [5] = 5, [6] = 6, [14] = 14})"##, r##"true | "[1,2,3,4,5,6,null,null,null,null,null,null,null,14]""##),
        (r##"cjson.encode({[0] = "z"})"##, r##"true | "{"0":"z"}""##),
        (r##"cjson.encode({[0] = "z", "a"})"##, r##"true | "{"1":"a","0":"z"}""##),
        (r##"cjson.encode({[-1] = "m"})"##, r##"true | "{"-1":"m"}""##),
        (r##"cjson.encode({[1.5] = "f"})"##, r##"true | "{"1.5":"f"}""##),
        (r##"cjson.encode({[1] = 1, a = 2})"##, r##"true | "{"1":1,"a":2}""##),
        (r##"cjson.encode({"x", y = "y"})"##, r##"true | "{"1":"x","y":"y"}""##),
        (r##"cjson.encode({[2^31] = 1})"##, r##"true | "{"2147483648":1}""##),
        (r##"cjson.encode({[2^31 - 1] = 1})"##, r##"false | "[string "return cjson.encode({[2^31 - 1] = 1})"]:1: Cannot serialise table: excessively sparse array""##),
        (r##"cjson.encode({[2^53] = 1})"##, r##"true | "{"9.007199254741e+15":1}""##),
        (r##"cjson.encode({[1e300] = 1})"##, r##"true | "{"1e+300":1}""##),
        (r##"cjson.encode({[1] = 1, [2^40] = 2})"##, r##"true | "{"1":1,"1099511627776":2}""##),
        (r##"cjson.encode({[2^40] = 2, [2] = 1})"##, r##"true | "[null,1]""##),
        (r##"cjson.encode({[1/3] = 1})"##, r##"true | "{"0.33333333333333":1}""##),
        (r##"cjson.encode({[true] = 1})"##, r##"false | "[string "return cjson.encode({[true] = 1})"]:1: Cannot serialise boolean: table key must be a number or string""##),
        (r##"cjson.encode({[{}] = 1})"##, r##"false | "[string "return cjson.encode({[{}] = 1})"]:1: Cannot serialise table: table key must be a number or string""##),
        (r##"cjson.encode({function() end})"##, r##"false | "[string "return cjson.encode({function() end})"]:1: Cannot serialise function: type not supported""##),
        (r##"cjson.encode(function() end)"##, r##"false | "[string "return cjson.encode(function() end)"]:1: Cannot serialise function: type not supported""##),
        (r##"cjson.encode(coroutine.create(function() end))"##, r##"false | "[string "return cjson.encode(coroutine.create(functi..."]:1: Cannot serialise thread: type not supported""##),
        (r##"cjson.encode()"##, r##"false | "[string "return cjson.encode()"]:1: bad argument #1 to 'encode' (expected 1 argument)""##),
        (r##"cjson.encode(1, 2)"##, r##"false | "[string "return cjson.encode(1, 2)"]:1: bad argument #1 to 'encode' (expected 1 argument)""##),
        (r##"cjson.encode({1, 2}, nil)"##, r##"false | "[string "return cjson.encode({1, 2}, nil)"]:1: bad argument #1 to 'encode' (expected 1 argument)""##),
        (r##"local x = cjson.encode({1, 2}) return x"##, r##"true | "[1,2]""##),
        (r##"cjson.encode({["a\"b"] = "c\\d"})"##, r##"true | "{"a\"b":"c\\d"}""##),
        (r##"cjson.encode({["/"] = "/"})"##, r##"true | "{"\/":"\/"}""##),
        (r##"cjson.encode({a = 1, b = 2, c = 3, d = 4, e = 5})"##, r##"true | "{"a":1,"c":3,"b":2,"e":5,"d":4}""##),
        (r##"cjson.encode({one = 1, two = 2, three = 3, four = {5, 6}, five = {six = 6}})"##, r##"true | "{"two":2,"one":1,"four":[5,6],"five":{"six":6},"three":3}""##),
        (r##"cjson.encode({[1] = "a", [2] = "b", ["3"] = "c"})"##, r##"true | "{"1":"a","2":"b","3":"c"}""##),
        (r##"cjson.encode({[3] = 3, [2] = 2, [1] = 1})"##, r##"true | "[1,2,3]""##),
        (r##"cjson.encode({["1"] = 1})"##, r##"true | "{"1":1}""##),
        (r##"cjson.encode({[-0.0] = 1})"##, r##"true | "{"-0":1}""##),
        (r##"cjson.encode({1.5, -2.25, 1e-10})"##, r##"true | "[1.5,-2.25,1e-10]""##),
        (r##"local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end return #cjson.encode(t)"##, r##"true | 2000"##),
        (r##"local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end return cjson.encode(t)"##, r##"false | "[string "local t = {} local c = t for i = 1, 1000 do..."]:1: Cannot serialise, excessive nesting (1001)""##),
        (r##"local t = {} local c = t for i = 1, 1000 do c.a = {} c = c.a end return cjson.encode(t)"##, r##"false | "[string "local t = {} local c = t for i = 1, 1000 do..."]:1: Cannot serialise, excessive nesting (1001)""##),
        (r##"local t = {} t[1] = t return cjson.encode(t)"##, r##"false | "[string "local t = {} t[1] = t return cjson.encode(t..."]:1: Cannot serialise, excessive nesting (1001)""##),
        (r##"local c = cjson.new() c.encode_max_depth(3) return c.encode({{{}}})"##, r##"true | "[[{}]]""##),
        (r##"local c = cjson.new() c.encode_max_depth(3) return c.encode({{{{}}}})"##, r##"false | "[string "local c = cjson.new() c.encode_max_depth(3)..."]:1: Cannot serialise, excessive nesting (4)""##),
        (r##"local c = cjson.new() c.encode_max_depth(3) return c.encode({{{1}}, 1, "x"})"##, r##"true | "[[[1]],1,"x"]""##),
        (r##"local c = cjson.new() c.encode_max_depth(100000) local t = {} local x = t for i = 1, 10000 do x[1] = {} x = x[1] end return c.encode(t)"##, r##"false | "[string "local c = cjson.new() c.encode_max_depth(10..."]:1: Cannot serialise, excessive nesting (7998)""##),
        (r##"local c = cjson.new() c.encode_max_depth(100000) local t = {} local x = t for i = 1, 10000 do x.k = {} x = x.k end return c.encode(t)"##, r##"false | "[string "local c = cjson.new() c.encode_max_depth(10..."]:1: Cannot serialise, excessive nesting (4000)""##),
        (r##"local c = cjson.new() c.encode_max_depth(100000) local t = {} local x = t for i = 1, 10000 do if i % 2 == 0 then x.k = {} x = x.k else x[1] = {} x = x[1] end end return c.encode(t)"##, r##"false | "[string "local c = cjson.new() c.encode_max_depth(10..."]:1: Cannot serialise, excessive nesting (5333)""##),
        (r##"cjson.encode_max_depth()"##, r##"true | 1000"##),
        (r##"cjson.decode_max_depth()"##, r##"true | 1000"##),
        (r##"cjson.encode_number_precision()"##, r##"true | 14"##),
        (r##"cjson.encode_sparse_array()"##, r##"true | false | 2 | 10"##),
        (r##"cjson.encode_keep_buffer()"##, r##"true | true"##),
        (r##"cjson.encode_invalid_numbers()"##, r##"true | false"##),
        (r##"cjson.decode_invalid_numbers()"##, r##"true | true"##),
        (r##"local c = cjson.new() return c.encode_max_depth(0)"##, r##"false | "[string "local c = cjson.new() return c.encode_max_d..."]:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)""##),
        (r##"local c = cjson.new() return c.encode_max_depth(-5)"##, r##"false | "[string "local c = cjson.new() return c.encode_max_d..."]:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)""##),
        (r##"local c = cjson.new() return c.encode_max_depth("x")"##, r##"false | "[string "local c = cjson.new() return c.encode_max_d..."]:1: bad argument #1 to 'encode_max_depth' (number expected, got string)""##),
        (r##"local c = cjson.new() return c.encode_max_depth("7")"##, r##"true | 7"##),
        (r##"local c = cjson.new() return c.encode_max_depth(7.9)"##, r##"true | 7"##),
        (r##"local c = cjson.new() return c.encode_max_depth(2^32 + 5)"##, r##"true | 5"##),
        (r##"local c = cjson.new() return c.encode_max_depth(2^31)"##, r##"false | "[string "local c = cjson.new() return c.encode_max_d..."]:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)""##),
        (r##"local c = cjson.new() return c.encode_max_depth(1, 2)"##, r##"false | "[string "local c = cjson.new() return c.encode_max_d..."]:1: bad argument #2 to 'encode_max_depth' (found too many arguments)""##),
        (r##"local c = cjson.new() return c.encode_max_depth(nil)"##, r##"true | 1000"##),
        (r##"local c = cjson.new() return c.encode_max_depth(true)"##, r##"false | "[string "local c = cjson.new() return c.encode_max_d..."]:1: bad argument #1 to 'encode_max_depth' (number expected, got boolean)""##),
        (r##"local c = cjson.new() return c.decode_max_depth(0)"##, r##"false | "[string "local c = cjson.new() return c.decode_max_d..."]:1: bad argument #1 to 'decode_max_depth' (expected integer between 1 and 2147483647)""##),
        (r##"local c = cjson.new() return c.decode_max_depth(3), c.decode_max_depth()"##, r##"true | 3 | 3"##),
        (r##"local c = cjson.new() return c.encode_number_precision(3), c.encode(math.pi), c.encode(1234.5), c.encode(0.1), c.encode(100)"##, r##"true | 3 | "3.14" | "1.23e+03" | "0.1" | "100""##),
        (r##"local c = cjson.new() return c.encode_number_precision(1), c.encode(math.pi), c.encode(15), c.encode(25), c.encode(0.05)"##, r##"true | 1 | "3" | "2e+01" | "2e+01" | "0.05""##),
        (r##"local c = cjson.new() return c.encode_number_precision(10), c.encode(math.pi), c.encode(2^40)"##, r##"true | 10 | "3.141592654" | "1.099511628e+12""##),
        (r##"local c = cjson.new() return c.encode_number_precision(15)"##, r##"false | "[string "local c = cjson.new() return c.encode_numbe..."]:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)""##),
        (r##"local c = cjson.new() return c.encode_number_precision(0)"##, r##"false | "[string "local c = cjson.new() return c.encode_numbe..."]:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(true), c.encode({[20] = 1, [1] = 2})"##, r##"true | true | "{"20":1,"1":2}""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(true, 0), c.encode({[20] = 1})"##, r##"true | true | "[null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,1]""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(false, 1), c.encode({[1] = 1, [2] = 2})"##, r##"true | false | "[1,2]""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(false, 1, 0), c.encode({[1] = 1, [2] = 2})"##, r##"true | false | "[1,2]""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(true, 1, 0), c.encode({[1] = 1, [3] = 2})"##, r##"true | true | "{"1":1,"3":2}""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(nil, nil, 3), c.encode({[4] = 1})"##, r##"false | "[string "local c = cjson.new() return c.encode_spars..."]:1: Cannot serialise table: excessively sparse array""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(nil, -1)"##, r##"false | "[string "local c = cjson.new() return c.encode_spars..."]:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(nil, nil, -1)"##, r##"false | "[string "local c = cjson.new() return c.encode_spars..."]:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)""##),
        (r##"local c = cjson.new() return c.encode_sparse_array("on", 3, 4)"##, r##"true | true | 3 | 4"##),
        (r##"local c = cjson.new() return c.encode_sparse_array("off")"##, r##"true | false | 2 | 10"##),
        (r##"local c = cjson.new() return c.encode_sparse_array("yes")"##, r##"false | "[string "local c = cjson.new() return c.encode_spars..."]:1: bad argument #1 to 'encode_sparse_array' (invalid option 'yes')""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(1)"##, r##"false | "[string "local c = cjson.new() return c.encode_spars..."]:1: bad argument #1 to 'encode_sparse_array' (invalid option '1')""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(1, 2, 3, 4)"##, r##"false | "[string "local c = cjson.new() return c.encode_spars..."]:1: bad argument #4 to 'encode_sparse_array' (found too many arguments)""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(nil, 2^31 - 1), c.encode({[1000] = 1})"##, r##"true | false | "[null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,1]""##),
        (r##"local c = cjson.new() return c.encode_sparse_array(nil, 1000000000, 0), c.encode({[3] = 1})"##, r##"true | false | "[null,null,1]""##),
        (r##"local c = cjson.new() return c.encode_keep_buffer(false), c.encode({1, "a"}), c.encode_keep_buffer(), c.encode_keep_buffer("on"), c.encode({2})"##, r##"true | false | "[1,"a"]" | false | true | "[2]""##),
        (r##"local c = cjson.new() return c.encode_keep_buffer(false), pcall(c.encode, {function() end}), c.encode(1)"##, r##"true | false | false | "1""##),
        (r##"local c = cjson.new() return c.encode_keep_buffer("maybe")"##, r##"false | "[string "local c = cjson.new() return c.encode_keep_..."]:1: bad argument #1 to 'encode_keep_buffer' (invalid option 'maybe')""##),
        (r##"local c = cjson.new() return c.encode_invalid_numbers("null"), c.encode(1/0), c.encode(-1/0), c.encode(0/0), c.encode({[1/0] = 1}), c.encode({1/0, 0/0})"##, r##"true | "null" | "null" | "null" | "null" | "{"null":1}" | "[null,null]""##),
        (r##"local c = cjson.new() return c.encode_invalid_numbers(true), c.encode(1/0), c.encode(-1/0), c.encode(0/0), c.encode(-(0/0)), c.encode({[1/0] = 1})"##, r##"true | true | "inf" | "-inf" | "nan" | "nan" | "{"inf":1}""##),
        (r##"local c = cjson.new() return c.encode_invalid_numbers("on"), c.encode_invalid_numbers("off"), c.encode_invalid_numbers()"##, r##"true | true | false | false"##),
        (r##"local c = cjson.new() return c.encode_invalid_numbers("bad")"##, r##"false | "[string "local c = cjson.new() return c.encode_inval..."]:1: bad argument #1 to 'encode_invalid_numbers' (invalid option 'bad')""##),
        (r##"local c = cjson.new() return c.encode_invalid_numbers(1)"##, r##"false | "[string "local c = cjson.new() return c.encode_inval..."]:1: bad argument #1 to 'encode_invalid_numbers' (invalid option '1')""##),
        (r##"local c = cjson.new() return c.encode_invalid_numbers(false), c.encode(1/0)"##, r##"false | "[string "local c = cjson.new() return c.encode_inval..."]:1: Cannot serialise number: must not be NaN or Inf""##),
        (r##"local c = cjson.new() return c.decode_invalid_numbers(false), c.decode_invalid_numbers()"##, r##"true | false | false"##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("nan")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid token at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("inf")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid token at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("-inf")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid number at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("0x10")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid number at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("-0x10")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid number at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("0X10")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid number at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("01")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid number at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("-01")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid number at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("+1")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid token at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("[0, -0, 0.5, -1.5e3, 10]")"##, r##"true | {1=0,2=-0,3=0.5,4=-1500,5=10}"##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("-")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid number at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("-Infinity")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid number at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("Infinity")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid token at character 1""##),
        (r##"local c = cjson.new() c.decode_invalid_numbers(false) return c.decode("[1,nan]")"##, r##"false | "[string "local c = cjson.new() c.decode_invalid_numb..."]:1: Expected value but found invalid token at character 4""##),
        (r##"local c = cjson.new() return c.decode_invalid_numbers("x")"##, r##"false | "[string "local c = cjson.new() return c.decode_inval..."]:1: bad argument #1 to 'decode_invalid_numbers' (invalid option 'x')""##),
        (r##"local c = cjson.new() return c.decode_invalid_numbers("off"), c.decode_invalid_numbers("on")"##, r##"true | false | true"##),
        (r##"local c = cjson.new() c.encode_max_depth(5) return cjson.encode_max_depth(), c.encode_max_depth()"##, r##"true | 1000 | 5"##),
        (r##"local c = cjson.new() return c.new ~= nil, c.null == cjson.null, c._NAME, c._VERSION"##, r##"true | true | true | "cjson" | "2.1.0""##),
        (r##"local c = cjson.new() local d = c.new() d.encode_max_depth(2) return c.encode_max_depth(), d.encode_max_depth()"##, r##"true | 1000 | 2"##),
        (r##"cjson.decode("null")"##, r##"true | null"##),
        (r##"cjson.decode("null") == cjson.null"##, r##"true | true"##),
        (r##"cjson.decode("true")"##, r##"true | true"##),
        (r##"cjson.decode("false")"##, r##"true | false"##),
        (r##"cjson.decode("1")"##, r##"true | 1"##),
        (r##"cjson.decode("-1")"##, r##"true | -1"##),
        (r##"cjson.decode("1e2")"##, r##"true | 100"##),
        (r##"cjson.decode("1E+2")"##, r##"true | 100"##),
        (r##"cjson.decode("1e-2")"##, r##"true | 0.01"##),
        (r##"cjson.decode("-0")"##, r##"true | -0"##),
        (r##"1 / cjson.decode("-0")"##, r##"true | -inf"##),
        (r##"cjson.decode("0.5")"##, r##"true | 0.5"##),
        (r##"cjson.decode("-0.5")"##, r##"true | -0.5"##),
        (r##"cjson.decode("0")"##, r##"true | 0"##),
        (r##"cjson.decode("123456789012345678901234567890")"##, r##"true | 1.2345678901234568e+29"##),
        (r##"cjson.decode("9007199254740993")"##, r##"true | 9007199254740992"##),
        (r##"cjson.decode("0.1")"##, r##"true | 0.10000000000000001"##),
        (r##"cjson.decode("2.2250738585072011e-308")"##, r##"true | 2.2250738585072009e-308"##),
        (r##"cjson.decode("4.9e-324")"##, r##"true | 4.9406564584124654e-324"##),
        (r##"cjson.decode("2e-324")"##, r##"true | 0"##),
        (r##"cjson.decode("3e-324")"##, r##"true | 4.9406564584124654e-324"##),
        (r##"cjson.decode("1.7976931348623157e308")"##, r##"true | 1.7976931348623157e+308"##),
        (r##"cjson.decode("1.7976931348623159e308")"##, r##"true | inf"##),
        (r##"cjson.decode("1e400")"##, r##"true | inf"##),
        (r##"cjson.decode("-1e400")"##, r##"true | -inf"##),
        (r##"cjson.decode("1e-400")"##, r##"true | 0"##),
        (r##"cjson.decode("0.000000000000000000000000000000000000000000001e45")"##, r##"true | 1"##),
        (r##"cjson.decode("123.456e-2")"##, r##"true | 1.2345600000000001"##),
        (r##"cjson.decode("1.")"##, r##"true | 1"##),
        (r##"cjson.decode("1.e3")"##, r##"true | 1000"##),
        (r##"cjson.decode(".5")"##, r##"false | "[string "return cjson.decode(".5")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("-.5")"##, r##"true | -0.5"##),
        (r##"cjson.decode("+.5")"##, r##"true | 0.5"##),
        (r##"cjson.decode("1e")"##, r##"false | "[string "return cjson.decode("1e")"]:1: Expected the end but found invalid token at character 2""##),
        (r##"cjson.decode("1e+")"##, r##"false | "[string "return cjson.decode("1e+")"]:1: Expected the end but found invalid token at character 2""##),
        (r##"cjson.decode("1e+x")"##, r##"false | "[string "return cjson.decode("1e+x")"]:1: Expected the end but found invalid token at character 2""##),
        (r##"cjson.decode("1.5e3x")"##, r##"false | "[string "return cjson.decode("1.5e3x")"]:1: Expected the end but found invalid token at character 6""##),
        (r##"cjson.decode("-")"##, r##"false | "[string "return cjson.decode("-")"]:1: Expected value but found invalid number at character 1""##),
        (r##"cjson.decode("--1")"##, r##"false | "[string "return cjson.decode("--1")"]:1: Expected value but found invalid number at character 1""##),
        (r##"cjson.decode("- 1")"##, r##"false | "[string "return cjson.decode("- 1")"]:1: Expected value but found invalid number at character 1""##),
        (r##"cjson.decode("+")"##, r##"false | "[string "return cjson.decode("+")"]:1: Expected value but found invalid number at character 1""##),
        (r##"cjson.decode("+1")"##, r##"true | 1"##),
        (r##"cjson.decode("+-1")"##, r##"false | "[string "return cjson.decode("+-1")"]:1: Expected value but found invalid number at character 1""##),
        (r##"cjson.decode("01")"##, r##"true | 1"##),
        (r##"cjson.decode("-01")"##, r##"true | -1"##),
        (r##"cjson.decode("00012.5")"##, r##"true | 12.5"##),
        (r##"cjson.decode("0x10")"##, r##"true | 16"##),
        (r##"cjson.decode("0X1p4")"##, r##"true | 16"##),
        (r##"cjson.decode("0x1P-2")"##, r##"true | 0.25"##),
        (r##"cjson.decode("-0x10")"##, r##"true | -16"##),
        (r##"cjson.decode("+0x10")"##, r##"true | 16"##),
        (r##"cjson.decode("0x")"##, r##"false | "[string "return cjson.decode("0x")"]:1: Expected the end but found invalid token at character 2""##),
        (r##"cjson.decode("0xg")"##, r##"false | "[string "return cjson.decode("0xg")"]:1: Expected the end but found invalid token at character 2""##),
        (r##"cjson.decode("0x.8")"##, r##"true | 0.5"##),
        (r##"cjson.decode("0x1.8")"##, r##"true | 1.5"##),
        (r##"cjson.decode("0x1p")"##, r##"false | "[string "return cjson.decode("0x1p")"]:1: Expected the end but found invalid token at character 4""##),
        (r##"cjson.decode("0x1p+")"##, r##"false | "[string "return cjson.decode("0x1p+")"]:1: Expected the end but found invalid token at character 4""##),
        (r##"cjson.decode("0x.p1")"##, r##"false | "[string "return cjson.decode("0x.p1")"]:1: Expected the end but found invalid token at character 2""##),
        (r##"cjson.decode("0xffffffffffffffffff")"##, r##"true | 4.7223664828696452e+21"##),
        (r##"cjson.decode("0x1.fffffffffffff8p1023")"##, r##"true | inf"##),
        (r##"cjson.decode("0x1.fffffffffffff7p1023")"##, r##"true | 1.7976931348623157e+308"##),
        (r##"cjson.decode("0x1p1024")"##, r##"true | inf"##),
        (r##"cjson.decode("0x1p-1074")"##, r##"true | 4.9406564584124654e-324"##),
        (r##"cjson.decode("0x1p-1075")"##, r##"true | 0"##),
        (r##"cjson.decode("0x1.0000000000001p-1075")"##, r##"true | 4.9406564584124654e-324"##),
        (r##"cjson.decode("0x3p-1076")"##, r##"true | 4.9406564584124654e-324"##),
        (r##"cjson.decode("0x1.00000000000008p0")"##, r##"true | 1"##),
        (r##"cjson.decode("0x1.00000000000018p0")"##, r##"true | 1.0000000000000004"##),
        (r##"cjson.decode("0x1.000000000000080000001p0")"##, r##"true | 1.0000000000000002"##),
        (r##"cjson.decode("0x0.0000000000000000000000000001p112")"##, r##"true | 1"##),
        (r##"cjson.decode("0x1p99999999999")"##, r##"true | inf"##),
        (r##"cjson.decode("0x1p-99999999999")"##, r##"true | 0"##),
        (r##"cjson.decode("1e99999999999999999999")"##, r##"true | inf"##),
        (r##"cjson.decode("1e-99999999999999999999")"##, r##"true | 0"##),
        (r##"cjson.decode("0e99999999999999999999")"##, r##"true | 0"##),
        (r##"cjson.decode("nan")"##, r##"true | nan"##),
        (r##"cjson.decode("NaN")"##, r##"true | nan"##),
        (r##"cjson.decode("-nan")"##, r##"true | -nan"##),
        (r##"cjson.decode("+nan")"##, r##"true | nan"##),
        (r##"cjson.decode("nan(123)")"##, r##"true | nan"##),
        (r##"cjson.decode("nan(a_B9)")"##, r##"true | nan"##),
        (r##"cjson.decode("nan(")"##, r##"false | "[string "return cjson.decode("nan(")"]:1: Expected the end but found invalid token at character 4""##),
        (r##"cjson.decode("nan()")"##, r##"true | nan"##),
        (r##"cjson.decode("nan(-)")"##, r##"false | "[string "return cjson.decode("nan(-)")"]:1: Expected the end but found invalid token at character 4""##),
        (r##"cjson.decode("NAN(x)y")"##, r##"false | "[string "return cjson.decode("NAN(x)y")"]:1: Expected the end but found invalid token at character 7""##),
        (r##"cjson.decode("na")"##, r##"false | "[string "return cjson.decode("na")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("inf")"##, r##"true | inf"##),
        (r##"cjson.decode("-inf")"##, r##"true | -inf"##),
        (r##"cjson.decode("+inf")"##, r##"true | inf"##),
        (r##"cjson.decode("Inf")"##, r##"true | inf"##),
        (r##"cjson.decode("inFINity")"##, r##"true | inf"##),
        (r##"cjson.decode("Infinity")"##, r##"true | inf"##),
        (r##"cjson.decode("-Infinity")"##, r##"true | -inf"##),
        (r##"cjson.decode("infin")"##, r##"false | "[string "return cjson.decode("infin")"]:1: Expected the end but found invalid token at character 4""##),
        (r##"cjson.decode("infinityx")"##, r##"false | "[string "return cjson.decode("infinityx")"]:1: Expected the end but found invalid token at character 9""##),
        (r##"cjson.decode("i")"##, r##"false | "[string "return cjson.decode("i")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("in")"##, r##"false | "[string "return cjson.decode("in")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("[inf, -inf, nan]")"##, r##"true | {1=inf,2=-inf,3=nan}"##),
        (r##"cjson.decode("n")"##, r##"false | "[string "return cjson.decode("n")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("nul")"##, r##"false | "[string "return cjson.decode("nul")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("nulll")"##, r##"false | "[string "return cjson.decode("nulll")"]:1: Expected the end but found invalid token at character 5""##),
        (r##"cjson.decode("t")"##, r##"false | "[string "return cjson.decode("t")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("tru")"##, r##"false | "[string "return cjson.decode("tru")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("truex")"##, r##"false | "[string "return cjson.decode("truex")"]:1: Expected the end but found invalid token at character 5""##),
        (r##"cjson.decode("TRUE")"##, r##"false | "[string "return cjson.decode("TRUE")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("f")"##, r##"false | "[string "return cjson.decode("f")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("fals")"##, r##"false | "[string "return cjson.decode("fals")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("true false")"##, r##"false | "[string "return cjson.decode("true false")"]:1: Expected the end but found T_BOOLEAN at character 6""##),
        (r##"cjson.decode("[]")"##, r##"true | {}"##),
        (r##"cjson.decode("{}")"##, r##"true | {}"##),
        (r##"cjson.decode("[[]]")"##, r##"true | {1={}}"##),
        (r##"cjson.decode("[{}]")"##, r##"true | {1={}}"##),
        (r##"cjson.decode("[1,2,3]")"##, r##"true | {1=1,2=2,3=3}"##),
        (r##"cjson.decode("[1,null,3]")"##, r##"true | {1=1,2=null,3=3}"##),
        (r##"#cjson.decode("[1,null,3]")"##, r##"true | 3"##),
        (r##"cjson.decode("[null]")"##, r##"true | {1=null}"##),
        (r##"cjson.decode('{"a":1,"b":[true,false,null]}')"##, r##"true | {"a"=1,"b"={1=true,2=false,3=null}}"##),
        (r##"cjson.decode('{"a":1,"a":2}')"##, r##"true | {"a"=2}"##),
        (r##"cjson.decode('{"1":1,"2":2}')"##, r##"true | {"1"=1,"2"=2}"##),
        (r##"cjson.decode('{"":""}')"##, r##"true | {""=""}"##),
        (r##"cjson.decode('{"a":{"b":{"c":[1,[2,[3]]]}}}')"##, r##"true | {"a"={"b"={"c"={1=1,2={1=2,2={1=3}}}}}}"##),
        (r##"cjson.decode('"abc"')"##, r##"true | "abc""##),
        (r##"cjson.decode('""')"##, r##"true | """##),
        (r##"cjson.decode('"\\u0041"')"##, r##"true | "A""##),
        (r##"cjson.decode('"\\u00e9"')"##, r##"true | "\xc3\xa9""##),
        (r##"cjson.decode('"\\u00E9"')"##, r##"true | "\xc3\xa9""##),
        (r##"cjson.decode('"\\u20ac"')"##, r##"true | "\xe2\x82\xac""##),
        (r##"cjson.decode('"\\u07ff\\u0800\\uffff\\u0080\\u007f"')"##, r##"true | "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xc2\x80\x7f""##),
        (r##"cjson.decode('"\\ud83d\\ude00"')"##, r##"true | "\xf0\x9f\x98\x80""##),
        (r##"cjson.decode('"\\uD83D\\uDE00"')"##, r##"true | "\xf0\x9f\x98\x80""##),
        (r##"cjson.decode('"\\udbff\\udfff"')"##, r##"true | "\xf4\x8f\xbf\xbf""##),
        (r##"cjson.decode('"\\ud800\\udc00"')"##, r##"true | "\xf0\x90\x80\x80""##),
        (r##"cjson.decode('"\\ud83d"')"##, r##"false | "[string "return cjson.decode('"\\ud83d"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\ude00"')"##, r##"false | "[string "return cjson.decode('"\\ude00"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\ud83dx"')"##, r##"false | "[string "return cjson.decode('"\\ud83dx"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\ud83d\\"')"##, r##"false | "[string "return cjson.decode('"\\ud83d\\"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\ud83d\\u0041"')"##, r##"false | "[string "return cjson.decode('"\\ud83d\\u0041"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\ud83d\\ud83d"')"##, r##"false | "[string "return cjson.decode('"\\ud83d\\ud83d"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\ud83d\\ude0"')"##, r##"false | "[string "return cjson.decode('"\\ud83d\\ude0"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\u12"')"##, r##"false | "[string "return cjson.decode('"\\u12"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\u12')"##, r##"false | "[string "return cjson.decode('"\\u12')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\uZZZZ"')"##, r##"false | "[string "return cjson.decode('"\\uZZZZ"')"]:1: Expected value but found invalid unicode escape code at character 2""##),
        (r##"cjson.decode('"\\u0000"')"##, r##"true | "\x00""##),
        (r##"cjson.decode('"a\\u0000b"')"##, r##"true | "a\x00b""##),
        (r##"cjson.decode('"\\x"')"##, r##"false | "[string "return cjson.decode('"\\x"')"]:1: Expected value but found invalid escape code at character 2""##),
        (r##"cjson.decode('"\\a"')"##, r##"false | "[string "return cjson.decode('"\\a"')"]:1: Expected value but found invalid escape code at character 2""##),
        (r##"cjson.decode('"\\U0041"')"##, r##"false | "[string "return cjson.decode('"\\U0041"')"]:1: Expected value but found invalid escape code at character 2""##),
        (r##"cjson.decode('"\\')"##, r##"false | "[string "return cjson.decode('"\\')"]:1: Expected value but found invalid escape code at character 2""##),
        (r##"cjson.decode('"abc')"##, r##"false | "[string "return cjson.decode('"abc')"]:1: Expected value but found unexpected end of string at character 5""##),
        (r##"cjson.decode('"')"##, r##"false | "[string "return cjson.decode('"')"]:1: Expected value but found unexpected end of string at character 2""##),
        (r##"cjson.decode('"\\b\\f\\n\\r\\t\\/\\\\\\""')"##, r##"true | "\x08\x0c\x0a\x0d\x09/\"""##),
        (r##"cjson.decode('"tab\there\nnewline\1ctl"')"##, r##"true | "tab\x09here\x0anewline\x01ctl""##),
        (r##"cjson.decode('"h\195\169llo \255"')"##, r##"true | "h\xc3\xa9llo \xff""##),
        (r##"cjson.decode("\"a\0b\"")"##, r##"false | "[string "return cjson.decode("\"a\0b\"")"]:1: Expected value but found unexpected end of string at character 3""##),
        (r##"cjson.decode("12\0")"##, r##"true | 12"##),
        (r##"cjson.decode("12\0garbage")"##, r##"true | 12"##),
        (r##"cjson.decode(" \0x")"##, r##"false | "[string "return cjson.decode(" \0x")"]:1: JSON parser does not support UTF-16 or UTF-32""##),
        (r##"cjson.decode("\0")"##, r##"false | "[string "return cjson.decode("\0")"]:1: Expected value but found T_END at character 1""##),
        (r##"cjson.decode("\0a")"##, r##"false | "[string "return cjson.decode("\0a")"]:1: JSON parser does not support UTF-16 or UTF-32""##),
        (r##"cjson.decode("a\0")"##, r##"false | "[string "return cjson.decode("a\0")"]:1: JSON parser does not support UTF-16 or UTF-32""##),
        (r##"cjson.decode("1\0")"##, r##"false | "[string "return cjson.decode("1\0")"]:1: JSON parser does not support UTF-16 or UTF-32""##),
        (r##"cjson.decode("\"\0\"")"##, r##"false | "[string "return cjson.decode("\"\0\"")"]:1: JSON parser does not support UTF-16 or UTF-32""##),
        (r##"cjson.decode(" [ 1 , 2 ] ")"##, r##"true | {1=1,2=2}"##),
        (r##"cjson.decode("\t\n\r 1 \r\n\t")"##, r##"true | 1"##),
        (r##"cjson.decode(" { \"a\" : [ ] , \"b\" : { } } ")"##, r##"true | {"a"={},"b"={}}"##),
        (r##"cjson.decode("\f1")"##, r##"false | "[string "return cjson.decode("\f1")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("1\v")"##, r##"false | "[string "return cjson.decode("1\v")"]:1: Expected the end but found invalid token at character 2""##),
        (r##"cjson.decode("")"##, r##"false | "[string "return cjson.decode("")"]:1: Expected value but found T_END at character 1""##),
        (r##"cjson.decode(" ")"##, r##"false | "[string "return cjson.decode(" ")"]:1: Expected value but found T_END at character 2""##),
        (r##"cjson.decode("x")"##, r##"false | "[string "return cjson.decode("x")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("[1,]")"##, r##"false | "[string "return cjson.decode("[1,]")"]:1: Expected value but found T_ARR_END at character 4""##),
        (r##"cjson.decode("[,1]")"##, r##"false | "[string "return cjson.decode("[,1]")"]:1: Expected value but found T_COMMA at character 2""##),
        (r##"cjson.decode("[1 2]")"##, r##"false | "[string "return cjson.decode("[1 2]")"]:1: Expected comma or array end but found T_NUMBER at character 4""##),
        (r##"cjson.decode("[1:2]")"##, r##"false | "[string "return cjson.decode("[1:2]")"]:1: Expected comma or array end but found T_COLON at character 3""##),
        (r##"cjson.decode('{"a" 1}')"##, r##"false | "[string "return cjson.decode('{"a" 1}')"]:1: Expected colon but found T_NUMBER at character 6""##),
        (r##"cjson.decode('{"a":}')"##, r##"false | "[string "return cjson.decode('{"a":}')"]:1: Expected value but found T_OBJ_END at character 6""##),
        (r##"cjson.decode('{1:2}')"##, r##"false | "[string "return cjson.decode('{1:2}')"]:1: Expected object key string but found T_NUMBER at character 2""##),
        (r##"cjson.decode('{"a":1,}')"##, r##"false | "[string "return cjson.decode('{"a":1,}')"]:1: Expected object key string but found T_OBJ_END at character 8""##),
        (r##"cjson.decode('{"a":1 "b":2}')"##, r##"false | "[string "return cjson.decode('{"a":1 "b":2}')"]:1: Expected comma or object end but found T_STRING at character 8""##),
        (r##"cjson.decode('{"a":1]')"##, r##"false | "[string "return cjson.decode('{"a":1]')"]:1: Expected comma or object end but found T_ARR_END at character 7""##),
        (r##"cjson.decode('[1}')"##, r##"false | "[string "return cjson.decode('[1}')"]:1: Expected comma or array end but found T_OBJ_END at character 3""##),
        (r##"cjson.decode('{,}')"##, r##"false | "[string "return cjson.decode('{,}')"]:1: Expected object key string but found T_COMMA at character 2""##),
        (r##"cjson.decode('{"a"')"##, r##"false | "[string "return cjson.decode('{"a"')"]:1: Expected colon but found T_END at character 5""##),
        (r##"cjson.decode('{"a":')"##, r##"false | "[string "return cjson.decode('{"a":')"]:1: Expected value but found T_END at character 6""##),
        (r##"cjson.decode('{"a":1')"##, r##"false | "[string "return cjson.decode('{"a":1')"]:1: Expected comma or object end but found T_END at character 7""##),
        (r##"cjson.decode('{"a":1,')"##, r##"false | "[string "return cjson.decode('{"a":1,')"]:1: Expected object key string but found T_END at character 8""##),
        (r##"cjson.decode("]")"##, r##"false | "[string "return cjson.decode("]")"]:1: Expected value but found T_ARR_END at character 1""##),
        (r##"cjson.decode("}")"##, r##"false | "[string "return cjson.decode("}")"]:1: Expected value but found T_OBJ_END at character 1""##),
        (r##"cjson.decode(":")"##, r##"false | "[string "return cjson.decode(":")"]:1: Expected value but found T_COLON at character 1""##),
        (r##"cjson.decode(",")"##, r##"false | "[string "return cjson.decode(",")"]:1: Expected value but found T_COMMA at character 1""##),
        (r##"cjson.decode("[")"##, r##"false | "[string "return cjson.decode("[")"]:1: Expected value but found T_END at character 2""##),
        (r##"cjson.decode("[1")"##, r##"false | "[string "return cjson.decode("[1")"]:1: Expected comma or array end but found T_END at character 3""##),
        (r##"cjson.decode("[1,")"##, r##"false | "[string "return cjson.decode("[1,")"]:1: Expected value but found T_END at character 4""##),
        (r##"cjson.decode("{")"##, r##"false | "[string "return cjson.decode("{")"]:1: Expected object key string but found T_END at character 2""##),
        (r##"cjson.decode("1 2")"##, r##"false | "[string "return cjson.decode("1 2")"]:1: Expected the end but found T_NUMBER at character 3""##),
        (r##"cjson.decode('"a"x')"##, r##"false | "[string "return cjson.decode('"a"x')"]:1: Expected the end but found invalid token at character 4""##),
        (r##"cjson.decode("[1,2]]")"##, r##"false | "[string "return cjson.decode("[1,2]]")"]:1: Expected the end but found T_ARR_END at character 6""##),
        (r##"cjson.decode("{}}")"##, r##"false | "[string "return cjson.decode("{}}")"]:1: Expected the end but found T_OBJ_END at character 3""##),
        (r##"cjson.decode("/* c */ 1")"##, r##"false | "[string "return cjson.decode("/* c */ 1")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("'a'")"##, r##"false | "[string "return cjson.decode("'a'")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode("\239\187\1911")"##, r##"false | "[string "return cjson.decode("\239\187\1911")"]:1: Expected value but found invalid token at character 1""##),
        (r##"cjson.decode(123)"##, r##"true | 123"##),
        (r##"cjson.decode(1.5)"##, r##"true | 1.5"##),
        (r##"cjson.decode(nil)"##, r##"false | "[string "return cjson.decode(nil)"]:1: bad argument #1 to 'decode' (string expected, got nil)""##),
        (r##"cjson.decode({})"##, r##"false | "[string "return cjson.decode({})"]:1: bad argument #1 to 'decode' (string expected, got table)""##),
        (r##"cjson.decode()"##, r##"false | "[string "return cjson.decode()"]:1: bad argument #1 to 'decode' (expected 1 argument)""##),
        (r##"cjson.decode("1", "2")"##, r##"false | "[string "return cjson.decode("1", "2")"]:1: bad argument #1 to 'decode' (expected 1 argument)""##),
        (r##"pcall(cjson.decode, "[")"##, r##"true | false | "Expected value but found T_END at character 2""##),
        (r##"pcall(cjson.decode)"##, r##"true | false | "bad argument #1 to '?' (expected 1 argument)""##),
        (r##"#cjson.decode(string.rep("[", 1000) .. string.rep("]", 1000))"##, r##"true | 1"##),
        (r##"cjson.decode(string.rep("[", 1001) .. string.rep("]", 1001))"##, r##"false | "[string "return cjson.decode(string.rep("[", 1001) ...."]:1: Found too many nested data structures (1001) at character 1001""##),
        (r##"cjson.decode(string.rep("[", 1001))"##, r##"false | "[string "return cjson.decode(string.rep("[", 1001))"]:1: Found too many nested data structures (1001) at character 1001""##),
        (r##"cjson.decode(string.rep("[", 1000))"##, r##"false | "[string "return cjson.decode(string.rep("[", 1000))"]:1: Expected value but found T_END at character 1001""##),
        (r##"cjson.decode(string.rep('{"a":', 1000) .. "1" .. string.rep("}", 1000)) ~= nil"##, r##"true | true"##),
        (r##"cjson.decode(string.rep('{"a":', 1001) .. "1" .. string.rep("}", 1001))"##, r##"false | "[string "return cjson.decode(string.rep('{"a":', 100..."]:1: Found too many nested data structures (1001) at character 5001""##),
        (r##"cjson.decode(' ' .. string.rep(' [ ', 1001))"##, r##"false | "[string "return cjson.decode(' ' .. string.rep(' [ '..."]:1: Found too many nested data structures (1001) at character 3003""##),
        (r##"local c = cjson.new() c.decode_max_depth(2) return c.decode("[[1]]")"##, r##"true | {1={1=1}}"##),
        (r##"local c = cjson.new() c.decode_max_depth(2) return c.decode("[[[1]]]")"##, r##"false | "[string "local c = cjson.new() c.decode_max_depth(2)..."]:1: Found too many nested data structures (3) at character 3""##),
        (r##"local c = cjson.new() c.decode_max_depth(2) return c.decode('{"a":{"b":{}}}')"##, r##"false | "[string "local c = cjson.new() c.decode_max_depth(2)..."]:1: Found too many nested data structures (3) at character 11""##),
        (r##"local c = cjson.new() c.decode_max_depth(2) return c.decode('[{"b":[]}]')"##, r##"false | "[string "local c = cjson.new() c.decode_max_depth(2)..."]:1: Found too many nested data structures (3) at character 7""##),
        (r##"local c = cjson.new() c.decode_max_depth(1) return c.decode('[1, {}]')"##, r##"false | "[string "local c = cjson.new() c.decode_max_depth(1)..."]:1: Found too many nested data structures (2) at character 5""##),
        (r##"local c = cjson.new() c.decode_max_depth(100000) return c.decode(string.rep("[", 10000))"##, r##"false | "[string "local c = cjson.new() c.decode_max_depth(10..."]:1: Found too many nested data structures (7999) at character 7999""##),
        (r##"local c = cjson.new() c.decode_max_depth(100000) return c.decode(string.rep('{"a":', 10000))"##, r##"false | "[string "local c = cjson.new() c.decode_max_depth(10..."]:1: Found too many nested data structures (4000) at character 19996""##),
        (r##"local c = cjson.new() c.decode_max_depth(100000) return c.decode(string.rep('{"a":[', 10000))"##, r##"false | "[string "local c = cjson.new() c.decode_max_depth(10..."]:1: Found too many nested data structures (5333) at character 15997""##),
        (r##"local c = cjson.new() c.decode_max_depth(100000) local s = string.rep("[", 7998) .. string.rep("]", 7998) return c.decode(s) ~= nil"##, r##"true | true"##),
        (r##"local c = cjson.new() c.decode_max_depth(100000) local s = string.rep("[", 7999) .. string.rep("]", 7999) return c.decode(s) ~= nil"##, r##"false | "[string "local c = cjson.new() c.decode_max_depth(10..."]:1: Found too many nested data structures (7999) at character 7999""##),
        (r##"cjson.encode(cjson.decode('{"a":[1,2,{"b":null}],"c":"\\u00e9\\n"}'))"##, r##"true | "{"a":[1,2,{"b":null}],"c":"\xc3\xa9\n"}""##),
        (r##"cjson.encode(cjson.decode('[1.5,-0,1e300,"x\\/y",true,false,null,[],{}]'))"##, r##"true | "[1.5,-0,1e+300,"x\/y",true,false,null,{},{}]""##),
        (r##"cjson.encode(cjson.decode('"\\ud83d\\ude00\\u0001\\u007f"'))"##, r##"true | ""\xf0\x9f\x98\x80\u0001\u007f"""##),
        (r##"cjson.decode(cjson.encode({1, 2, {a = {b = "c"}}, "d\n"}))"##, r##"true | {1=1,2=2,3={"a"={"b"="c"}},4="d\x0a"}"##),
        (r##"cjson.decode(cjson.encode("\0\1\127\255"))"##, r##"true | "\x00\x01\x7f\xff""##),
        (r##"cjson.decode(cjson.encode(0.1))"##, r##"true | 0.10000000000000001"##),
        (r##"cjson.decode(cjson.encode(1/3))"##, r##"true | 0.33333333333332998"##),
        (r##"cjson.encode({cjson.decode("[]"), cjson.decode("{}")})"##, r##"true | "[{},{}]""##),
        (r##"cjson.encode(cjson.decode('{"b":1,"a":2,"c":{"z":1,"y":[1,2]}}'))"##, r##"true | "{"a":2,"c":{"y":[1,2],"z":1},"b":1}""##),
        (r##"local t = {} for i = 1, 50 do t['k' .. i] = i end return cjson.encode(t)"##, r##"true | "{"k12":12,"k32":32,"k19":19,"k39":39,"k31":31,"k11":11,"k30":30,"k38":38,"k14":14,"k47":47,"k1":1,"k43":43,"k3":3,"k27":27,"k34":34,"k18":18,"k7":7,"k5":5,"k50":50,"k26":26,"k15":15,"k22":22,"k48":48,"k46":46,"k45":45,"k41":41,"k21":21,"k29":29,"k25":25,"k49":49,"k42":42,"k40":40,"k35":35,"k36":36,"k28":28,"k20":20,"k37":37,"k8":8,"k23":23,"k16":16,"k9":9,"k2":2,"k44":44,"k13":13,"k24":24,"k33":33,"k6":6,"k17":17,"k4":4,"k10":10}""##),
        (r##"local t = {} for i = 1, 100 do t[i] = i * 1.1 end return cjson.encode(t)"##, r##"true | "[1.1,2.2,3.3,4.4,5.5,6.6,7.7,8.8,9.9,11,12.1,13.2,14.3,15.4,16.5,17.6,18.7,19.8,20.9,22,23.1,24.2,25.3,26.4,27.5,28.6,29.7,30.8,31.9,33,34.1,35.2,36.3,37.4,38.5,39.6,40.7,41.8,42.9,44,45.1,46.2,47.3,48.4,49.5,50.6,51.7,52.8,53.9,55,56.1,57.2,58.3,59.4,60.5,61.6,62.7,63.8,64.9,66,67.1,68.2,69.3,70.4,71.5,72.6,73.7,74.8,75.9,77,78.1,79.2,80.3,81.4,82.5,83.6,84.7,85.8,86.9,88,89.1,90.2,91.3,92.4,93.5,94.6,95.7,96.8,97.9,99,100.1,101.2,102.3,103.4,104.5,105.6,106.7,107.8,108.9,110]""##),
        (r##"local t = {} for i = 1, 60 do t[i] = (i * 7919) % 61 / 7 + i * 1e-3 end return cjson.encode(t)"##, r##"true | "[7.1438571428571,5.5734285714286,4.003,2.4325714285714,0.86214285714286,8.006,6.4355714285714,4.8651428571429,3.2947142857143,1.7242857142857,0.15385714285714,7.2977142857143,5.7272857142857,4.1568571428571,2.5864285714286,1.016,8.1598571428571,6.5894285714286,5.019,3.4485714285714,1.8781428571429,0.30771428571429,7.4515714285714,5.8811428571429,4.3107142857143,2.7402857142857,1.1698571428571,8.3137142857143,6.7432857142857,5.1728571428571,3.6024285714286,2.032,0.46157142857143,7.6054285714286,6.035,4.4645714285714,2.8941428571429,1.3237142857143,8.4675714285714,6.8971428571429,5.3267142857143,3.7562857142857,2.1858571428571,0.61542857142857,7.7592857142857,6.1888571428571,4.6184285714286,3.048,1.4775714285714,8.6214285714286,7.051,5.4805714285714,3.9101428571429,2.3397142857143,0.76928571428571,7.9131428571429,6.3427142857143,4.7722857142857,3.2018571428571,1.6314285714286]""##),
        (r##"local out = {} for p = 1, 14 do local c = cjson.new() c.encode_number_precision(p) out[#out+1] = c.encode({math.pi, 1/3, 2/3, 123456.789, 1e-5, 0.5, 1e15, -2.5e-7, 1e21, 5e-324, 0.15, 0.25, 0.35, 2.5, 1e-4, 9.5, 99.5, 0.0001234, 1.5e300, -0.0}) end return table.concat(out, ' ')"##, r##"true | "[3,0.3,0.7,1e+05,1e-05,0.5,1e+15,-2e-07,1e+21,5e-324,0.1,0.2,0.3,2,0.0001,1e+01,1e+02,0.0001,2e+300,-0] [3.1,0.33,0.67,1.2e+05,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.9e-324,0.15,0.25,0.35,2.5,0.0001,9.5,1e+02,0.00012,1.5e+300,-0] [3.14,0.333,0.667,1.23e+05,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.94e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.000123,1.5e+300,-0] [3.142,0.3333,0.6667,1.235e+05,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.941e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.1416,0.33333,0.66667,1.2346e+05,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.9407e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.14159,0.333333,0.666667,123457,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.94066e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.141593,0.3333333,0.6666667,123456.8,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.940656e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.1415927,0.33333333,0.66666667,123456.79,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.9406565e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.14159265,0.333333333,0.666666667,123456.789,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.94065646e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.141592654,0.3333333333,0.6666666667,123456.789,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.940656458e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.1415926536,0.33333333333,0.66666666667,123456.789,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.9406564584e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.14159265359,0.333333333333,0.666666666667,123456.789,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.94065645841e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.14159265359,0.3333333333333,0.6666666666667,123456.789,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.940656458412e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0] [3.1415926535898,0.33333333333333,0.66666666666667,123456.789,1e-05,0.5,1e+15,-2.5e-07,1e+21,4.9406564584125e-324,0.15,0.25,0.35,2.5,0.0001,9.5,99.5,0.0001234,1.5e+300,-0]""##),
        (r##"local out = {} for e = -20, 20 do out[#out+1] = cjson.encode(1.5 * 10^e) out[#out+1] = cjson.encode(10^e) out[#out+1] = cjson.encode(-7 * 10^e) end return table.concat(out, ',')"##, r##"true | "1.5e-20,1e-20,-7e-20,1.5e-19,1e-19,-7e-19,1.5e-18,1e-18,-7e-18,1.5e-17,1e-17,-7e-17,1.5e-16,1e-16,-7e-16,1.5e-15,1e-15,-7e-15,1.5e-14,1e-14,-7e-14,1.5e-13,1e-13,-7e-13,1.5e-12,1e-12,-7e-12,1.5e-11,1e-11,-7e-11,1.5e-10,1e-10,-7e-10,1.5e-09,1e-09,-7e-09,1.5e-08,1e-08,-7e-08,1.5e-07,1e-07,-7e-07,1.5e-06,1e-06,-7e-06,1.5e-05,1e-05,-7e-05,0.00015,0.0001,-0.0007,0.0015,0.001,-0.007,0.015,0.01,-0.07,0.15,0.1,-0.7,1.5,1,-7,15,10,-70,150,100,-700,1500,1000,-7000,15000,10000,-70000,150000,100000,-700000,1500000,1000000,-7000000,15000000,10000000,-70000000,150000000,100000000,-700000000,1500000000,1000000000,-7000000000,15000000000,10000000000,-70000000000,150000000000,100000000000,-700000000000,1500000000000,1000000000000,-7000000000000,15000000000000,10000000000000,-70000000000000,1.5e+14,1e+14,-7e+14,1.5e+15,1e+15,-7e+15,1.5e+16,1e+16,-7e+16,1.5e+17,1e+17,-7e+17,1.5e+18,1e+18,-7e+18,1.5e+19,1e+19,-7e+19,1.5e+20,1e+20,-7e+20""##),
        (r##"local out = {} local x = 1 for i = 1, 80 do x = x * 3.7 out[#out+1] = cjson.encode(x) out[#out+1] = cjson.encode(1 / x) end return table.concat(out, ',')"##, r##"true | "3.7,0.27027027027027,13.69,0.073046018991965,50.653,0.019742167295126,187.4161,0.0053357208905745,693.43957,0.0014420867271823,2565.726409,0.00038975316950873,9493.1877133,0.00010533869446182,35124.79453921,2.8469917422113e-05,129961.73979508,7.6945722762468e-06,480858.43724179,2.0796141287154e-06,1779176.2177946,5.6205787262577e-07,6582952.00584,1.519075331421e-07,24356922.421608,4.1056090038405e-08,90120612.95995,1.109624055092e-08,333446267.95182,2.9989839326812e-09,1233751191.4217,8.1053619802194e-10,4564879408.2604,2.1906383730323e-10,16890053810.563,5.9206442514386e-11,62493199099.084,1.6001741220104e-11,231224836666.61,4.3247949243525e-12,855531895666.46,1.1688634930682e-12,3165468013965.9,3.1590905218061e-13,11712231651674,8.5380824913677e-14,43335257111193,2.3075898625318e-14,1.6034045131142e+14,6.2367293581941e-15,5.9325966985224e+14,1.6856025292417e-15,2.1950607784533e+15,4.5556825114639e-16,8.1217248802771e+15,1.2312655436389e-16,3.0050382057025e+16,3.3277447125376e-17,1.1118641361099e+17,8.9939046284799e-18,4.1138973036068e+17,2.4307850347243e-18,1.5221420023345e+18,6.5696892830386e-19,5.6319254086377e+18,1.7755916981186e-19,2.0838124011959e+19,4.7988964814015e-20,7.710105884425e+19,1.2969990490274e-20,2.8527391772372e+20,3.5054028352093e-21,1.0555134955778e+21,9.4740617167818e-22,3.9053999336378e+21,2.5605572207518e-22,1.444997975446e+22,6.9204249209509e-23,5.3464925091501e+22,1.8703851137705e-23,1.9782022283855e+23,5.0550949020825e-24,7.3193482450265e+23,1.3662418654277e-24,2.7081588506598e+24,3.692545582237e-25,1.0020187747441e+25,9.9798529249649e-26,3.7074694665533e+25,2.6972575472878e-26,1.3717637026247e+26,7.28988526294e-27,5.0755256997115e+26,1.9702392602541e-27,1.8779445088932e+27,5.3249709736596e-28,6.948394682905e+27,1.4391813442323e-28,2.5709060326748e+28,3.889679308736e-29,9.5123523208969e+28,1.0512646780368e-29,3.5195703587319e+29,2.8412558865859e-30,1.3022410327308e+30,7.6790699637456e-31,4.8182918211039e+30,2.0754243145258e-31,1.7827679738084e+31,5.6092549041239e-32,6.5962415030913e+31,1.5160148389524e-32,2.4406093561438e+32,4.097337402574e-33,9.0302546177319e+32,1.1073884871822e-33,3.3411942085608e+33,2.9929418572491e-34,1.2362418571675e+34,8.0890320466192e-35,4.5740948715198e+34,2.1862248774647e-35,1.6924151024623e+35,5.9087158850396e-36,6.2619358791106e+35,1.5969502391999e-36,2.3169162752709e+36,4.3160817275673e-37,8.5725902185023e+36,1.1665085750182e-37,3.1718583808459e+37,3.1527258784275e-38,1.173587600913e+38,8.5208807525068e-39,4.342274123378e+38,2.3029407439208e-39,1.6066414256499e+39,6.2241641727588e-40,5.9445732749045e+39,1.6822065331781e-40,2.1994921117147e+40,4.5465041437245e-41,8.1381208133442e+40,1.2287849037093e-41,3.0111047009374e+41,3.3210402802955e-42,1.1141087393468e+42,8.9757845413391e-43,4.1222023355832e+42,2.4258877138754e-43,1.5252148641658e+43,6.5564532807444e-44,5.6432949974135e+43,1.7720144002012e-44,2.088019149043e+44,4.7892281086519e-45,7.725670851459e+44,1.2943859753113e-45,2.8584982150398e+45,3.4983404738144e-46""##),
        (r##"cjson.encode({[1.0] = 1})"##, r##"true | "[1]""##),
        (r##"cjson.encode({1, 2, 3, nil, 5})"##, r##"true | "[1,2,3,null,5]""##),
        (r##"cjson.encode({[1] = 1, [2] = 2, [4] = 4})"##, r##"true | "[1,2,null,4]""##),
        (r##"cjson.encode({n = {}, a = {{}, {{}}}, [1] = false})"##, r##"true | "{"a":[{},[{}]],"1":false,"n":{}}""##),
        (r##"cjson.encode(string.rep('a"\\/\n', 200))"##, r##"true | ""a\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\na\"\\\/\n"""##),
        (r##"#cjson.encode(string.rep("x", 100000))"##, r##"true | 100002"##),
        (r##"#cjson.decode("[" .. string.rep("1,", 9999) .. "1]")"##, r##"true | 10000"##),
        (r##"local ok = pcall(cjson.encode, {1, {2, function() end}}) return ok, cjson.encode({3})"##, r##"true | false | "[3]""##),
        (r##"local c = cjson.new() c.encode_keep_buffer(false) local ok = pcall(c.encode, {1, {2, function() end}}) return ok, c.encode({3})"##, r##"true | false | "[3]""##),
        (r##"cjson.decode('[1,2,3]')[2]"##, r##"true | 2"##),
        (r##"cjson.decode("1E400")"##, r##"true | inf"##),
        (r##"cjson.decode("-0.0")"##, r##"true | -0"##),
        (r##"cjson.decode("1e-7")"##, r##"true | 9.9999999999999995e-08"##),
        (r##"cjson.encode(1e-7)"##, r##"true | "1e-07""##),
        (r##"cjson.decode('{"a":[],"b":{},"c":[{}]}').c[1]"##, r##"true | {}"##),
        (r##"cjson.encode(cjson.decode('{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9}'))"##, r##"true | "{"k9":9,"k8":8,"k1":1,"k3":3,"k2":2,"k6":6,"k7":7,"k4":4,"k5":5}""##),
        (r##"cjson.decode('"\\/\\/"')"##, r##"true | "//""##),
        (r##"cjson.decode('"\\u0024\\u00A2\\u0939\\u20AC\\uD55C\\uD800\\uDF48"')"##, r##"true | "$\xc2\xa2\xe0\xa4\xb9\xe2\x82\xac\xed\x95\x9c\xf0\x90\x8d\x88""##),
        (r##"cjson.decode('[1, "a", {"b": [true, null, {}]}, -3.5e-2]')"##, r##"true | {1=1,2="a",3={"b"={1=true,2=null,3={}}},4=-0.035000000000000003}"##),
        (r##"cjson.decode('  \n\t {"a"\n:\n1\t,\r\n"b":2}  ')"##, r##"true | {"a"=1,"b"=2}"##),
        (r##"cjson.decode('{"a":1,"b":2,"a":3}')"##, r##"true | {"a"=3,"b"=2}"##),
        (r##"cjson.decode('[1,2')"##, r##"false | "[string "return cjson.decode('[1,2')"]:1: Expected comma or array end but found T_END at character 5""##),
        (r##"cjson.decode('{"a":[1,2}')"##, r##"false | "[string "return cjson.decode('{"a":[1,2}')"]:1: Expected comma or array end but found T_OBJ_END at character 10""##),
        (r##"cjson.decode('{"\\u00e9":"\\u00e9"}')"##, r##"true | {"\xc3\xa9"="\xc3\xa9"}"##),
        (r##"cjson.decode('{"a\\"b":1}')"##, r##"true | {"a"b"=1}"##),
        (r##"cjson.decode('"\\"')"##, r##"false | "[string "return cjson.decode('"\\"')"]:1: Expected value but found unexpected end of string at character 4""##),
        (r##"cjson.decode('"x\\u')"##, r##"false | "[string "return cjson.decode('"x\\u')"]:1: Expected value but found invalid unicode escape code at character 3""##),
        (r##"cjson.decode('"x\\u00')"##, r##"false | "[string "return cjson.decode('"x\\u00')"]:1: Expected value but found invalid unicode escape code at character 3""##),
        (r##"cjson.decode('"x\\ud800\\u')"##, r##"false | "[string "return cjson.decode('"x\\ud800\\u')"]:1: Expected value but found invalid unicode escape code at character 3""##),
        (r##"cjson.decode('["abc\\q"]')"##, r##"false | "[string "return cjson.decode('["abc\\q"]')"]:1: Expected value but found invalid escape code at character 6""##),
        (r##"cjson.decode('[1e5, 1E-5, 1.25e+3, -0.0e0, 0e0]')"##, r##"true | {1=100000,2=1.0000000000000001e-05,3=1250,4=-0,5=0}"##),
        (r##"cjson.decode('[-1.5E-10, 3.4028235e38, 1.0000000000000002, 0.30000000000000004]')"##, r##"true | {1=-1.5e-10,2=3.4028234999999999e+38,3=1.0000000000000002,4=0.30000000000000004}"##),
        (r##"cjson.decode('123abc')"##, r##"false | "[string "return cjson.decode('123abc')"]:1: Expected the end but found invalid token at character 4""##),
        (r##"cjson.decode('-a')"##, r##"false | "[string "return cjson.decode('-a')"]:1: Expected value but found invalid number at character 1""##),
        (r##"cjson.decode('[-]')"##, r##"false | "[string "return cjson.decode('[-]')"]:1: Expected value but found invalid number at character 2""##),
        (r##"cjson.decode('[--]')"##, r##"false | "[string "return cjson.decode('[--]')"]:1: Expected value but found invalid number at character 2""##),
        (r##"cjson.decode('{"a":-}')"##, r##"false | "[string "return cjson.decode('{"a":-}')"]:1: Expected value but found invalid number at character 6""##),
        (r##"cjson.decode('[nan, -nan]')"##, r##"true | {1=nan,2=-nan}"##),
        (r##"cjson.decode('[1,null,null]')"##, r##"true | {1=1,2=null,3=null}"##),
        (r##"#cjson.decode('[null,null,null]')"##, r##"true | 3"##),
        (r##"cjson.encode(cjson.decode('[null,null,null]'))"##, r##"true | "[null,null,null]""##),
        (r##"cjson.encode(cjson.decode('[1,[2,[3,[4,[5]]]]]'))"##, r##"true | "[1,[2,[3,[4,[5]]]]]""##),
        (r##"cjson.encode({cjson.decode('{"x":null}')})"##, r##"true | "[{"x":null}]""##),
    ];
}
