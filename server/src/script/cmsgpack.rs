//! The `cmsgpack` library that EVAL scripts see: cmsgpack.pack,
//! cmsgpack.unpack, cmsgpack.unpack_one and cmsgpack.unpack_limit (MessagePack
//! to and from Lua values), plus the table's four metadata strings.
//! Written for this project in Rust; it mirrors the observable behaviour
//! (bytes, results, error messages) of lua-cmsgpack 0.4.0 as bundled in
//! redis-server 7.0.15 (with its integer-overflow fixes) on x86-64 Linux.
//! No code is taken from it; the metadata strings are reproduced because
//! scripts can read them.
//!
//! Encoding: strings are always MessagePack "str" (fixstr/str8/16/32, never
//! bin); a number that is an exact int64 becomes the smallest int/uint form,
//! otherwise a float32 when that is exact, else a float64; a table whose keys
//! are exactly 1..n becomes an array, any other table a map (in `next`
//! order); tables nested 16 deep, functions, userdata, threads and nil become
//! nil. Decoding accepts nil, booleans, all int/uint/float forms and
//! fixstr/str8/16/32, arrays and maps; bin, ext and 0xc1 are "Bad data
//! format"; uint64 is pushed as a wrapped int64 (like Redis on 64-bit).
//!
//! Lua errors are longjmps: every C function below does its work in an inner
//! function returning `Result` and raises only after that returned, with no
//! Rust value that owns a destructor alive in any frame. The owned buffers
//! (pack's output, unpack's container stack) are held in `ManuallyDrop` and
//! freed explicitly, so even an allocation error raised by a Lua API call
//! could only leak them.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mlua_sys as ffi;

use super::libs::{c_to_i64, lua_fn};

/// Tables nested this deep are encoded as nil (survives cycles).
const MAX_NESTING: u32 = 16;

/// Reasons a cmsgpack function fails; raised as a Lua error by `raise`.
#[derive(Clone, Copy, Debug)]
enum Error {
    /// `luaL_typerror(narg, tname)`.
    Type(c_int, &'static CStr),
    /// `luaL_argerror(narg, msg)`.
    Arg(c_int, &'static CStr),
    /// `luaL_error` with a fixed message (gets the caller's position).
    Msg(&'static CStr),
    /// An error without position, as the Lua core raises it.
    Plain(&'static CStr),
    /// Negative offset or limit: offset and input length (as C ints).
    BadRequest(i32, i32),
    /// Offset past the input: offset and input length (as C ints).
    BadOffset(i32, i32),
    /// A Rust panic was caught (a bug); never unwinds into C.
    Panic,
}

/// Raises `e` as a Lua error. Never returns.
///
/// # Safety
/// `l` is the running state of a C function called by Lua, and no Rust value
/// with a destructor may be alive in the calling frames.
unsafe fn raise(l: *mut ffi::lua_State, e: Error) -> c_int {
    // SAFETY: caller contract; formats and messages are NUL-terminated and
    // the variadic arguments match their conversions.
    unsafe {
        match e {
            Error::Type(narg, tname) => ffi::luaL_typerror(l, narg, tname.as_ptr()),
            Error::Arg(narg, msg) => ffi::luaL_argerror(l, narg, msg.as_ptr()),
            Error::Msg(msg) => ffi::luaL_error(l, c"%s".as_ptr(), msg.as_ptr()),
            Error::Plain(msg) => {
                ffi::lua_pushstring(l, msg.as_ptr());
                ffi::lua_error(l)
            }
            Error::BadRequest(offset, len) => ffi::luaL_error(
                l,
                c"Invalid request to unpack with offset of %d and limit of %d.".as_ptr(),
                offset as c_int,
                len as c_int,
            ),
            Error::BadOffset(offset, len) => ffi::luaL_error(
                l,
                c"Start offset %d greater than input length %d.".as_ptr(),
                offset as c_int,
                len as c_int,
            ),
            Error::Panic => ffi::luaL_error(
                l,
                c"%s".as_ptr(),
                c"internal error in cmsgpack library".as_ptr(),
            ),
        }
    }
}

/// `luaL_checkstack` without the raise: `msg` is the whole error text.
unsafe fn check_stack(l: *mut ffi::lua_State, n: c_int, msg: &'static CStr) -> Result<(), Error> {
    // SAFETY: `l` is valid; lua_checkstack reports failure, never raises
    // (the vendored Lua grows the stack under protection).
    if unsafe { ffi::lua_checkstack(l, n) } == 0 {
        return Err(Error::Msg(msg));
    }
    Ok(())
}

/// `(int)d` as x86-64 computes it: truncation, i32::MIN when out of range
/// or NaN.
fn c_to_i32(d: f64) -> i32 {
    if d > -2_147_483_649.0 && d < 2_147_483_648.0 {
        d as i32
    } else {
        i32::MIN
    }
}

// ------------------------------------------------------------------ encoding

fn encode_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        buf.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buf.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

fn encode_double(buf: &mut Vec<u8>, d: f64) {
    let f = d as f32;
    if d == f as f64 {
        buf.push(0xca);
        buf.extend_from_slice(&f.to_be_bytes());
    } else {
        buf.push(0xcb);
        buf.extend_from_slice(&d.to_be_bytes());
    }
}

fn encode_int(buf: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            buf.push(n as u8);
        } else if n <= 0xff {
            buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            buf.push(0xcd);
            buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            buf.push(0xce);
            buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        buf.push(n as i8 as u8);
    } else if n >= -128 {
        buf.extend_from_slice(&[0xd0, n as u8]);
    } else if n >= -32768 {
        buf.push(0xd1);
        buf.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        buf.push(0xd2);
        buf.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(buf: &mut Vec<u8>, n: f64) {
    let i = c_to_i64(n);
    if !n.is_infinite() && i as f64 == n {
        encode_int(buf, i);
    } else {
        encode_double(buf, n);
    }
}

/// Array or map header: fix form up to 15, then 16-bit, then 32-bit.
fn encode_header(buf: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        buf.push(fix | n as u8);
    } else if n <= 0xffff {
        buf.push(b16);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(b32);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Encodes the value on top of the stack and pops it.
unsafe fn encode_value(l: *mut ffi::lua_State, buf: &mut Vec<u8>, level: u32) -> Result<(), Error> {
    // SAFETY: `l` is valid and holds the value at -1; the string slice is
    // read before the value is popped.
    unsafe {
        let mut t = ffi::lua_type(l, -1);
        if t == ffi::LUA_TTABLE && level == MAX_NESTING {
            t = ffi::LUA_TNIL;
        }
        match t {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(l, -1, &mut len);
                encode_bytes(buf, std::slice::from_raw_parts(p.cast::<u8>(), len));
            }
            ffi::LUA_TBOOLEAN => buf.push(if ffi::lua_toboolean(l, -1) != 0 {
                0xc3
            } else {
                0xc2
            }),
            ffi::LUA_TNUMBER => encode_number(buf, ffi::lua_tonumber(l, -1)),
            ffi::LUA_TTABLE => {
                if table_is_array(l)? {
                    encode_array(l, buf, level)?;
                } else {
                    encode_map(l, buf, level)?;
                }
            }
            _ => buf.push(0xc0),
        }
        ffi::lua_pop(l, 1);
    }
    Ok(())
}

/// True when the keys of the table on top are exactly 1..n (positive
/// integral numbers below 2^31, no holes).
unsafe fn table_is_array(l: *mut ffi::lua_State) -> Result<bool, Error> {
    // SAFETY: `l` is valid with a table at -1; two slots are checked for.
    unsafe {
        let top = ffi::lua_gettop(l);
        check_stack(l, 2, c"stack overflow (in function table_is_an_array)")?;
        let (mut count, mut max) = (0i32, 0i32);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_pop(l, 1);
            let n = ffi::lua_tonumber(l, -1);
            if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER || n <= 0.0 || c_to_i32(n) as f64 != n {
                ffi::lua_settop(l, top);
                return Ok(false);
            }
            if n > max as f64 {
                max = n as i32;
            }
            count = count.wrapping_add(1);
        }
        ffi::lua_settop(l, top);
        Ok(max == count)
    }
}

unsafe fn encode_array(l: *mut ffi::lua_State, buf: &mut Vec<u8>, level: u32) -> Result<(), Error> {
    // SAFETY: `l` is valid with a table at -1; one slot is checked for.
    unsafe {
        let len = ffi::lua_objlen(l, -1);
        encode_header(buf, len, 0x90, 0xdc, 0xdd);
        check_stack(
            l,
            1,
            c"stack overflow (in function mp_encode_lua_table_as_array)",
        )?;
        for j in 1..=len {
            // Keys 1..len all hold values, so a raw read sees what
            // lua_gettable would, without any metamethod.
            ffi::lua_pushnumber(l, j as f64);
            ffi::lua_rawget(l, -2);
            encode_value(l, buf, level + 1)?;
        }
    }
    Ok(())
}

unsafe fn encode_map(l: *mut ffi::lua_State, buf: &mut Vec<u8>, level: u32) -> Result<(), Error> {
    // SAFETY: `l` is valid with a table at -1; three slots are checked for.
    unsafe {
        check_stack(
            l,
            3,
            c"stack overflow (in function mp_encode_lua_table_as_map)",
        )?;
        let mut len = 0usize;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_pop(l, 1);
            len += 1;
        }
        encode_header(buf, len, 0x80, 0xde, 0xdf);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            // Stack: table key value; encode a copy of the key, then the
            // value, leaving the key for lua_next.
            ffi::lua_pushvalue(l, -2);
            encode_value(l, buf, level + 1)?;
            encode_value(l, buf, level + 1)?;
        }
    }
    Ok(())
}

/// cmsgpack.pack(...): each argument encoded, concatenated.
unsafe fn pack(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: called from a Lua C function with state `l`.
    let nargs = unsafe { ffi::lua_gettop(l) };
    if nargs == 0 {
        return Err(Error::Arg(0, c"MessagePack pack needs input."));
    }
    // SAFETY: as above.
    if unsafe { ffi::lua_checkstack(l, nargs) } == 0 {
        return Err(Error::Arg(0, c"Too many arguments for MessagePack pack."));
    }
    let mut buf = ManuallyDrop::new(Vec::new());
    // SAFETY: as above.
    let res = unsafe { pack_args(l, nargs, &mut buf) };
    // SAFETY: dropped exactly once; not used afterwards.
    unsafe { ManuallyDrop::drop(&mut buf) };
    res?;
    // SAFETY: the top `nargs` values are the encoded strings.
    unsafe { ffi::lua_concat(l, nargs) };
    Ok(1)
}

/// Encodes arguments 1..=nargs, pushing one string per argument (the same
/// stack use as Redis, so the same stack limits apply).
unsafe fn pack_args(l: *mut ffi::lua_State, nargs: c_int, buf: &mut Vec<u8>) -> Result<(), Error> {
    for i in 1..=nargs {
        // SAFETY: `l` is valid; a slot is checked for before each push; a
        // memory error in lua_pushlstring would only leak `buf`.
        unsafe {
            check_stack(l, 1, c"stack overflow (in function mp_check)")?;
            ffi::lua_pushvalue(l, i);
            encode_value(l, buf, 0)?;
            ffi::lua_pushlstring(l, buf.as_ptr().cast::<c_char>(), buf.len());
        }
        buf.clear();
    }
    Ok(())
}

// ------------------------------------------------------------------ decoding

/// Why decoding stopped.
#[derive(Clone, Copy, Debug)]
enum DecodeError {
    /// Input ended inside a value: "Missing bytes in input."
    Eof,
    /// A byte that starts no supported type: "Bad data format in input."
    BadFormat,
    /// Any other error, raised as is.
    Raise(Error),
}

impl From<Error> for DecodeError {
    fn from(e: Error) -> Self {
        DecodeError::Raise(e)
    }
}

/// Read position in the input.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.left() < n {
            Err(DecodeError::Eof)
        } else {
            Ok(())
        }
    }

    /// Byte `i` from the position (checked by `need` first).
    fn at(&self, i: usize) -> u8 {
        self.data[self.pos + i]
    }

    fn be(&self, from: usize, n: usize) -> u64 {
        (from..from + n).fold(0u64, |v, i| (v << 8) | self.at(i) as u64)
    }
}

/// An array or map being filled; its table is on the Lua stack.
#[derive(Clone, Copy, Debug)]
struct Frame {
    is_map: bool,
    /// A map's key is on the stack, waiting for its value.
    have_key: bool,
    /// Elements (or pairs) still to read.
    left: u32,
    /// Next array index.
    index: i32,
}

/// What reading the start of a value produced.
enum Head {
    /// A complete value was pushed.
    Value,
    /// A table was pushed; this many elements or pairs follow.
    Array(u32),
    Map(u32),
}

/// Pushes a string of `len` bytes starting `skip` bytes into the value.
unsafe fn push_str(
    l: *mut ffi::lua_State,
    c: &mut Cursor,
    skip: usize,
    len: usize,
) -> Result<(), DecodeError> {
    c.need(skip + len)?;
    // SAFETY: `skip + len` bytes are available from the position.
    unsafe { ffi::lua_pushlstring(l, c.data[c.pos + skip..].as_ptr().cast::<c_char>(), len) };
    c.pos += skip + len;
    Ok(())
}

/// Reads the start of one value: scalars are pushed whole, containers get
/// their (empty) table pushed.
unsafe fn decode_head(l: *mut ffi::lua_State, c: &mut Cursor) -> Result<Head, DecodeError> {
    c.need(1)?;
    // SAFETY: `l` is valid; each push below has the slot checked here.
    unsafe {
        check_stack(
            l,
            1,
            c"stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
        )?;
        let b = c.at(0);
        let (size, head) = match b {
            0xcc | 0xd0 => {
                c.need(2)?;
                let v = if b == 0xcc {
                    c.at(1) as i64
                } else {
                    c.at(1) as i8 as i64
                };
                ffi::lua_pushinteger(l, v);
                (2, Head::Value)
            }
            0xcd | 0xd1 => {
                c.need(3)?;
                let v = c.be(1, 2);
                let v = if b == 0xcd {
                    v as i64
                } else {
                    v as u16 as i16 as i64
                };
                ffi::lua_pushinteger(l, v);
                (3, Head::Value)
            }
            0xce | 0xd2 => {
                c.need(5)?;
                let v = c.be(1, 4);
                let v = if b == 0xce {
                    v as i64
                } else {
                    v as u32 as i32 as i64
                };
                ffi::lua_pushinteger(l, v);
                (5, Head::Value)
            }
            0xcf => {
                c.need(9)?;
                ffi::lua_pushinteger(l, c.be(1, 8) as i64);
                (9, Head::Value)
            }
            0xd3 => {
                c.need(9)?;
                ffi::lua_pushnumber(l, c.be(1, 8) as i64 as f64);
                (9, Head::Value)
            }
            0xc0 => {
                ffi::lua_pushnil(l);
                (1, Head::Value)
            }
            0xc2 | 0xc3 => {
                ffi::lua_pushboolean(l, (b == 0xc3) as c_int);
                (1, Head::Value)
            }
            0xca => {
                c.need(5)?;
                ffi::lua_pushnumber(l, f32::from_bits(c.be(1, 4) as u32) as f64);
                (5, Head::Value)
            }
            0xcb => {
                c.need(9)?;
                ffi::lua_pushnumber(l, f64::from_bits(c.be(1, 8)));
                (9, Head::Value)
            }
            0xd9 => {
                c.need(2)?;
                push_str(l, c, 2, c.at(1) as usize)?;
                (0, Head::Value)
            }
            0xda => {
                c.need(3)?;
                push_str(l, c, 3, c.be(1, 2) as usize)?;
                (0, Head::Value)
            }
            0xdb => {
                c.need(5)?;
                push_str(l, c, 5, c.be(1, 4) as usize)?;
                (0, Head::Value)
            }
            0xdc | 0xde => {
                c.need(3)?;
                let n = c.be(1, 2) as u32;
                (
                    3,
                    if b == 0xdc {
                        Head::Array(n)
                    } else {
                        Head::Map(n)
                    },
                )
            }
            0xdd | 0xdf => {
                c.need(5)?;
                let n = c.be(1, 4) as u32;
                (
                    5,
                    if b == 0xdd {
                        Head::Array(n)
                    } else {
                        Head::Map(n)
                    },
                )
            }
            _ if b & 0x80 == 0 => {
                ffi::lua_pushinteger(l, b as i64);
                (1, Head::Value)
            }
            _ if b & 0xe0 == 0xe0 => {
                ffi::lua_pushinteger(l, b as i8 as i64);
                (1, Head::Value)
            }
            _ if b & 0xe0 == 0xa0 => {
                push_str(l, c, 1, (b & 0x1f) as usize)?;
                (0, Head::Value)
            }
            _ if b & 0xf0 == 0x90 => (1, Head::Array((b & 0x0f) as u32)),
            _ if b & 0xf0 == 0x80 => (1, Head::Map((b & 0x0f) as u32)),
            _ => return Err(DecodeError::BadFormat),
        };
        c.pos += size;
        match head {
            Head::Value => {}
            Head::Array(_) => {
                ffi::lua_createtable(l, 0, 0);
                check_stack(l, 1, c"stack overflow (in function mp_decode_to_lua_array)")?;
            }
            Head::Map(_) => ffi::lua_createtable(l, 0, 0),
        }
        Ok(head)
    }
}

/// Decodes one complete value onto the stack. Containers are filled with an
/// explicit stack of frames (no recursion), in the same order of Lua calls
/// as the recursive C decoder.
unsafe fn decode_value(
    l: *mut ffi::lua_State,
    c: &mut Cursor,
    frames: &mut Vec<Frame>,
) -> Result<(), DecodeError> {
    frames.clear();
    loop {
        // SAFETY: `l` is valid; decode_head checked the slots it used.
        let head = unsafe { decode_head(l, c)? };
        let mut complete = match head {
            Head::Value | Head::Array(0) | Head::Map(0) => true,
            Head::Array(n) => {
                // SAFETY: decode_head checked a slot for the index.
                unsafe { ffi::lua_pushnumber(l, 1.0) };
                frames.push(Frame {
                    is_map: false,
                    have_key: false,
                    left: n,
                    index: 2,
                });
                false
            }
            Head::Map(n) => {
                frames.push(Frame {
                    is_map: true,
                    have_key: false,
                    left: n,
                    index: 0,
                });
                false
            }
        };
        // Hand each completed value to the container it belongs to.
        while complete {
            let Some(top) = frames.last_mut() else {
                return Ok(());
            };
            if top.is_map && !top.have_key {
                top.have_key = true;
                complete = false;
                continue;
            }
            // SAFETY: the stack holds table, key, value.
            unsafe {
                if top.is_map {
                    if ffi::lua_type(l, -2) == ffi::LUA_TNIL {
                        return Err(Error::Plain(c"table index is nil").into());
                    }
                    if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER && ffi::lua_tonumber(l, -2).is_nan()
                    {
                        return Err(Error::Plain(c"table index is NaN").into());
                    }
                }
                ffi::lua_settable(l, -3);
            }
            top.have_key = false;
            top.left -= 1;
            if top.left == 0 {
                // The table itself is now a complete value.
                frames.pop();
            } else {
                if !top.is_map {
                    // SAFETY: the slot the index used was just freed.
                    unsafe { ffi::lua_pushnumber(l, top.index as f64) };
                    top.index = top.index.wrapping_add(1);
                }
                complete = false;
            }
        }
    }
}

/// Argument `narg` as an integer, like `luaL_checkinteger`.
unsafe fn check_integer(l: *mut ffi::lua_State, narg: c_int) -> Result<i64, Error> {
    // SAFETY: `l` is valid; any index is acceptable to these calls.
    unsafe {
        let v = ffi::lua_tointeger_(l, narg);
        if v == 0 && ffi::lua_isnumber(l, narg) == 0 {
            return Err(Error::Type(narg, c"number"));
        }
        Ok(v)
    }
}

/// Argument `narg` as an integer or `def` when absent/nil, like
/// `luaL_optinteger`.
unsafe fn opt_integer(l: *mut ffi::lua_State, narg: c_int, def: i64) -> Result<i64, Error> {
    // SAFETY: as `check_integer`.
    unsafe {
        if ffi::lua_isnoneornil(l, narg) != 0 {
            Ok(def)
        } else {
            check_integer(l, narg)
        }
    }
}

/// Shared by the unpack functions: decodes up to `limit` values from byte
/// `offset` of argument 1 (everything when both are 0); unless decoding
/// everything, the first result is the offset to continue from (-1 at the
/// end).
unsafe fn unpack_full(l: *mut ffi::lua_State, limit: i64, offset: i64) -> Result<c_int, Error> {
    let mut len = 0usize;
    // SAFETY: `l` is valid; `len` is a valid out-pointer.
    let p = unsafe { ffi::lua_tolstring(l, 1, &mut len) };
    if p.is_null() {
        return Err(Error::Type(1, c"string"));
    }
    // SAFETY: Lua strings are `len` readable bytes; argument 1 stays on the
    // stack until the function returns.
    let s = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    if offset < 0 || limit < 0 {
        return Err(Error::BadRequest(offset as i32, len as i32));
    } else if offset as u64 > len as u64 {
        return Err(Error::BadOffset(offset as i32, len as i32));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut c = Cursor {
        data: s,
        pos: offset as usize,
    };
    let mut frames = ManuallyDrop::new(Vec::new());
    let mut cnt: c_int = 0;
    let mut res = Ok(());
    while c.left() > 0 && (cnt as i64) < limit {
        // SAFETY: `l` is valid; a memory error would only leak `frames`.
        res = unsafe { decode_value(l, &mut c, &mut frames) };
        if res.is_err() {
            break;
        }
        cnt += 1;
    }
    // SAFETY: dropped exactly once; not used afterwards.
    unsafe { ManuallyDrop::drop(&mut frames) };
    match res {
        Ok(()) => {}
        Err(DecodeError::Eof) => return Err(Error::Msg(c"Missing bytes in input.")),
        Err(DecodeError::BadFormat) => return Err(Error::Msg(c"Bad data format in input.")),
        Err(DecodeError::Raise(e)) => return Err(e),
    }
    if !decode_all {
        // SAFETY: `l` is valid; a slot is checked for; unpack_one and
        // unpack_limit left only argument 1 below the results.
        unsafe {
            check_stack(l, 1, c"stack overflow (in function mp_unpack_full)")?;
            let next = if c.left() == 0 { -1 } else { c.pos as i64 };
            ffi::lua_pushinteger(l, next);
            ffi::lua_insert(l, 2);
        }
        cnt += 1;
    }
    Ok(cnt)
}

/// Drops every argument but the first (none stays none).
unsafe fn keep_first_arg(l: *mut ffi::lua_State) {
    // SAFETY: `l` is valid.
    unsafe {
        if ffi::lua_gettop(l) > 1 {
            ffi::lua_settop(l, 1);
        }
    }
}

/// cmsgpack.unpack(data): every value in `data`.
unsafe fn unpack(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: called from a Lua C function with state `l`.
    unsafe { unpack_full(l, 0, 0) }
}

/// cmsgpack.unpack_one(data [, offset]): next offset and one value.
unsafe fn unpack_one(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: called from a Lua C function with state `l`.
    unsafe {
        let offset = opt_integer(l, 2, 0)?;
        keep_first_arg(l);
        unpack_full(l, 1, offset)
    }
}

/// cmsgpack.unpack_limit(data, limit [, offset]): next offset and up to
/// `limit` values.
unsafe fn unpack_limit(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: called from a Lua C function with state `l`.
    unsafe {
        let limit = check_integer(l, 2)?;
        let offset = opt_integer(l, 3, 0)?;
        keep_first_arg(l);
        unpack_full(l, limit, offset)
    }
}

lua_fn!(l_pack, pack);
lua_fn!(l_unpack, unpack);
lua_fn!(l_unpack_one, unpack_one);
lua_fn!(l_unpack_limit, unpack_limit);

/// Creates the `cmsgpack` table (functions and metadata in Redis's order,
/// so `pairs` walks it the same way) and sets it as the global `cmsgpack`;
/// leaves the stack as it found it.
///
/// # Safety
/// `l` is a valid Lua 5.1 state, not inside a C function that holds Rust
/// values with destructors (a memory error raises).
pub unsafe fn open(l: *mut ffi::lua_State) {
    let funcs: [(&CStr, ffi::lua_CFunction); 4] = [
        (c"pack", l_pack),
        (c"unpack", l_unpack),
        (c"unpack_one", l_unpack_one),
        (c"unpack_limit", l_unpack_limit),
    ];
    let meta: [(&CStr, &CStr); 2] = [
        (c"_NAME", c"cmsgpack"),
        (c"_VERSION", c"lua-cmsgpack 0.4.0"),
    ];
    // SAFETY: `l` is valid; each push is consumed by the next setfield and
    // the table by setglobal, so the stack ends as it started.
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        for (name, f) in funcs {
            ffi::lua_pushcfunction(l, f);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
        for (name, value) in meta {
            ffi::lua_pushstring(l, value.as_ptr());
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
        ffi::lua_setglobal(l, c"cmsgpack".as_ptr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cases: &[(&str, &str)]) {
        crate::script::libtest::check(open, cases)
    }

    /// Snippets and the results redis-server 7.0.15 gave for them (EVAL,
    /// with PRELUDE prepended).
    const REDIS_CASES: &[(&str, &str)] = &[
        (
            "return hex(cmsgpack.pack(0)) .. ' ' .. hex(cmsgpack.pack(1)) .. ' ' .. hex(cmsgpack.pack(127)) .. ' ' .. hex(cmsgpack.pack(128)) .. ' ' .. hex(cmsgpack.pack(255)) .. ' ' .. hex(cmsgpack.pack(256)) .. ' ' .. hex(cmsgpack.pack(65535)) .. ' ' .. hex(cmsgpack.pack(65536))",
            "00 01 7f cc80 ccff cd0100 cdffff ce00010000",
        ),
        (
            "return hex(cmsgpack.pack(2^32-1)) .. ' ' .. hex(cmsgpack.pack(2^32)) .. ' ' .. hex(cmsgpack.pack(2^53)) .. ' ' .. hex(cmsgpack.pack(2^63-1024)) .. ' ' .. hex(cmsgpack.pack(2^63)) .. ' ' .. hex(cmsgpack.pack(2^64))",
            "ceffffffff cf0000000100000000 cf0020000000000000 cf7ffffffffffffc00 ca5f000000 ca5f800000",
        ),
        (
            "return hex(cmsgpack.pack(-1)) .. ' ' .. hex(cmsgpack.pack(-32)) .. ' ' .. hex(cmsgpack.pack(-33)) .. ' ' .. hex(cmsgpack.pack(-128)) .. ' ' .. hex(cmsgpack.pack(-129)) .. ' ' .. hex(cmsgpack.pack(-32768)) .. ' ' .. hex(cmsgpack.pack(-32769)) .. ' ' .. hex(cmsgpack.pack(-2^31)) .. ' ' .. hex(cmsgpack.pack(-2^31-1))",
            "ff e0 d0df d080 d1ff7f d18000 d2ffff7fff d280000000 d3ffffffff7fffffff",
        ),
        (
            "return hex(cmsgpack.pack(-2^53)) .. ' ' .. hex(cmsgpack.pack(-2^63)) .. ' ' .. hex(cmsgpack.pack(-2^63-2048)) .. ' ' .. hex(cmsgpack.pack(-2^64)) .. ' ' .. hex(cmsgpack.pack(-0.0)) .. ' ' .. hex(cmsgpack.pack(1e300))",
            "d3ffe0000000000000 d38000000000000000 cbc3e0000000000001 cadf800000 00 cb7e37e43c8800759c",
        ),
        (
            "return hex(cmsgpack.pack(0.5)) .. ' ' .. hex(cmsgpack.pack(1.5)) .. ' ' .. hex(cmsgpack.pack(-2.25)) .. ' ' .. hex(cmsgpack.pack(0.1)) .. ' ' .. hex(cmsgpack.pack(1/3)) .. ' ' .. hex(cmsgpack.pack(1e-300)) .. ' ' .. hex(cmsgpack.pack(3.4028234663852886e38)) .. ' ' .. hex(cmsgpack.pack(2^-149))",
            "ca3f000000 ca3fc00000 cac0100000 cb3fb999999999999a cb3fd5555555555555 cb01a56e1fc2f8f359 ca7f7fffff ca00000001",
        ),
        (
            "return hex(cmsgpack.pack(1/0)) .. ' ' .. hex(cmsgpack.pack(-1/0)) .. ' ' .. hex(cmsgpack.pack(0/0)) .. ' ' .. hex(cmsgpack.pack(-(0/0))) .. ' ' .. hex(cmsgpack.pack(2^63+2^12)) .. ' ' .. hex(cmsgpack.pack(123456789.5))",
            "ca7f800000 caff800000 cbfff8000000000000 cb7ff8000000000000 cb43e0000000000002 cb419d6f3456000000",
        ),
        (
            "return hex(cmsgpack.pack(true)) .. ' ' .. hex(cmsgpack.pack(false)) .. ' ' .. hex(cmsgpack.pack(nil)) .. ' ' .. hex(cmsgpack.pack(tostring)) .. ' ' .. hex(cmsgpack.pack(coroutine.create(function() end))) .. ' ' .. hex(cmsgpack.pack(function() end))",
            "c3 c2 c0 c0 c0 c0",
        ),
        (
            "return hex(cmsgpack.pack('')) .. ' ' .. hex(cmsgpack.pack('a')) .. ' ' .. hex(cmsgpack.pack('a\\0b')) .. ' ' .. hex(cmsgpack.pack('12'))",
            "a0 a161 a3610062 a23132",
        ),
        (
            "return hex(string.sub(cmsgpack.pack(string.rep('x', 31)), 1, 4)) .. ' ' .. #cmsgpack.pack(string.rep('x', 31)) .. ' ' .. hex(string.sub(cmsgpack.pack(string.rep('x', 32)), 1, 4)) .. ' ' .. #cmsgpack.pack(string.rep('x', 32))",
            "bf787878 32 d9207878 34",
        ),
        (
            "return hex(string.sub(cmsgpack.pack(string.rep('x', 255)), 1, 4)) .. ' ' .. #cmsgpack.pack(string.rep('x', 255)) .. ' ' .. hex(string.sub(cmsgpack.pack(string.rep('x', 256)), 1, 4)) .. ' ' .. #cmsgpack.pack(string.rep('x', 256))",
            "d9ff7878 257 da010078 259",
        ),
        (
            "return hex(string.sub(cmsgpack.pack(string.rep('x', 65535)), 1, 4)) .. ' ' .. #cmsgpack.pack(string.rep('x', 65535)) .. ' ' .. hex(string.sub(cmsgpack.pack(string.rep('x', 65536)), 1, 6)) .. ' ' .. #cmsgpack.pack(string.rep('x', 65536))",
            "daffff78 65538 db0001000078 65541",
        ),
        (
            "return hex(cmsgpack.pack({})) .. ' ' .. hex(cmsgpack.pack({1, 2, 3})) .. ' ' .. hex(cmsgpack.pack({'a', {true, false}})) .. ' ' .. hex(cmsgpack.pack({[1] = 'x', [2] = 'y'})) .. ' ' .. hex(cmsgpack.pack({[2] = 'y', [1] = 'x'}))",
            "90 93010203 92a16192c3c2 92a178a179 92a178a179",
        ),
        (
            "return hex(cmsgpack.pack({[1] = 'x', [3] = 'z'})) .. ' ' .. hex(cmsgpack.pack({[2] = 'y'})) .. ' ' .. hex(cmsgpack.pack({[0] = 'z'})) .. ' ' .. hex(cmsgpack.pack({[1.5] = 'a'})) .. ' ' .. hex(cmsgpack.pack({[-1] = 'a'})) .. ' ' .. hex(cmsgpack.pack({['1'] = 'a'}))",
            "8201a17803a17a 8102a179 8100a17a 81ca3fc00000a161 81ffa161 81a131a161",
        ),
        (
            "return hex(cmsgpack.pack({1, 2, nil, 4})) .. ' ' .. hex(cmsgpack.pack({1, 2, x = 3})) .. ' ' .. hex(cmsgpack.pack({a = 1})) .. ' ' .. hex(cmsgpack.pack({[true] = false})) .. ' ' .. hex(cmsgpack.pack({[2^31] = 1})) .. ' ' .. hex(cmsgpack.pack({[1] = 1, [2^31] = 1}))",
            "83010102020404 8301010202a17803 81a16101 81c3c2 81ce8000000001 820101ce8000000001",
        ),
        (
            "return hex(cmsgpack.pack({a = 1, b = 2, c = 3})) .. ' ' .. hex(cmsgpack.pack({x = {y = {z = 'w'}}})) .. ' ' .. hex(cmsgpack.pack({[{}] = 1})) .. ' ' .. hex(cmsgpack.pack({[{1}] = {2}}))",
            "83a16101a16303a16202 81a17881a17981a17aa177 819001 8191019102",
        ),
        (
            "return hex(cmsgpack.pack({foo = 'bar', baz = 42, [1] = 'one', [10] = 'ten', nested = {1, 2, {k = 'v'}}, f = 1.5, t = true}))",
            "87a166ca3fc00000a66e657374656493010281a16ba176a362617a2a01a36f6e65a174c30aa374656ea3666f6fa3626172",
        ),
        (
            // Redis' table also holds `_COPYRIGHT` and `_DESCRIPTION`, texts
            // of its authors that we do not copy: the one known difference.
            "return hex(cmsgpack.pack(cmsgpack))",
            "86a47061636bc0a55f4e414d45a8636d73677061636ba6756e7061636bc0a85f56455253494f4eb26c75612d636d73677061636b20302e342e30aa756e7061636b5f6f6e65c0ac756e7061636b5f6c696d6974c0",
        ),
        (
            "return hex(cmsgpack.pack(table)) .. ' ' .. hex(cmsgpack.pack(string))",
            "89a47365746ec0a6696e73657274c0a46765746ec0a8666f726561636869c0a46d61786ec0a7666f7265616368c0a6636f6e636174c0a4736f7274c0a672656d6f7665c0 8fa3737562c0a57570706572c0a36c656ec0a56766696e64c0a3726570c0a466696e64c0a56d61746368c0a463686172c0a464756d70c0a6676d61746368c0a772657665727365c0a462797465c0a6666f726d6174c0a467737562c0a56c6f776572c0",
        ),
        (
            "return (function() local t = {} for i = 1, 15 do t[i] = i end local a = hex(cmsgpack.pack(t)) t[16] = 16 local b = hex(string.sub(cmsgpack.pack(t), 1, 4)) local u = {} for i = 1, 65535 do u[i] = 0 end local c = hex(string.sub(cmsgpack.pack(u), 1, 4)) .. #cmsgpack.pack(u) u[65536] = 0 local d = hex(string.sub(cmsgpack.pack(u), 1, 6)) .. #cmsgpack.pack(u) return a .. ' ' .. b .. ' ' .. c .. ' ' .. d end)()",
            "9f0102030405060708090a0b0c0d0e0f dc001001 dcffff0065538 dd000100000065541",
        ),
        (
            "return (function() local t = {} for i = 1, 15 do t['k' .. i] = i end local a = #cmsgpack.pack(t) .. hex(string.sub(cmsgpack.pack(t), 1, 1)) t.k16 = 16 local b = hex(string.sub(cmsgpack.pack(t), 1, 3)) local u = {} for i = 1, 65536 do u['k' .. i] = 0 end local d = hex(string.sub(cmsgpack.pack(u), 1, 5)) u.k1 = nil local e = hex(string.sub(cmsgpack.pack(u), 1, 3)) return a .. ' ' .. b .. ' ' .. d .. ' ' .. e end)()",
            "678f de0010 df00010000 deffff",
        ),
        (
            "return (function() local t = {} t[1] = t return hex(cmsgpack.pack(t)) end)()",
            "91919191919191919191919191919191c0",
        ),
        (
            "return (function() local t = {} t.self = t return hex(cmsgpack.pack(t)) end)()",
            "81a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c6681a473656c66c0",
        ),
        (
            "return (function() local t = 'leaf' for i = 1, 15 do t = {t} end local a = hex(cmsgpack.pack(t)) t = {t} local b = hex(cmsgpack.pack(t)) t = {t} local c = hex(cmsgpack.pack(t)) return a .. ' ' .. b .. ' ' .. c end)()",
            "919191919191919191919191919191a46c656166 91919191919191919191919191919191a46c656166 91919191919191919191919191919191c0",
        ),
        (
            "return (function() local t = {} for i = 1, 20 do t = {k = t} end return hex(cmsgpack.pack(t)) end)()",
            "81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16b81a16bc0",
        ),
        (
            "return hex(cmsgpack.pack(1, 'a', {2}, nil, true)) .. ' ' .. hex(cmsgpack.pack(nil, nil))",
            "01a1619102c0c3 c0c0",
        ),
        (
            "return hex(cmsgpack.pack(setmetatable({}, {__index = function() return 1 end}))) .. ' ' .. hex(cmsgpack.pack(setmetatable({1, 2}, {__index = function() return 9 end, __len = function() return 5 end})))",
            "90 920102",
        ),
        (
            "return P(cmsgpack.pack)",
            "ERR:bad argument #0 to '?' (MessagePack pack needs input.)",
        ),
        (
            "return P(function() return cmsgpack.pack() end)",
            "ERR:user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)",
        ),
        (
            "return P(function() return cmsgpack:pack() ~= nil end)",
            "true",
        ),
        (
            "return P(function() local t = {} for i = 1, 5000 do t[i] = i end return #cmsgpack.pack(unpack(t)) end)",
            "ERR:user_script:1: bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)",
        ),
        (
            "return P(function() local t = {} for i = 1, 3990 do t[i] = i end return #cmsgpack.pack(unpack(t)) end)",
            "11588",
        ),
        (
            "return P(function() local t = {} for i = 1, 3999 do t[i] = {i} end return #cmsgpack.pack(unpack(t)) end)",
            "15614",
        ),
        (
            "return P(function() local t = {} for i = 1, 4000 do t[i] = {i} end return #cmsgpack.pack(unpack(t)) end)",
            "ERR:user_script:1: stack overflow (in function table_is_an_array)",
        ),
        (
            "return P(function() local t = {} for i = 1, 4000 do t[i] = i end return #cmsgpack.pack(unpack(t)) end)",
            "11618",
        ),
        (
            "return R(cmsgpack.unpack(cmsgpack.pack(0, 1, 127, 128, 255, 256, 65535, 65536, 2^32-1, 2^32, 2^53, -1, -32, -33, -128, -129, -32768, -32769, -2^31, -2^31-1, -2^53)))",
            "0,1,127,128,255,256,65535,65536,4294967295,4294967296,9007199254740992,-1,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649,-9007199254740992",
        ),
        (
            "return R(cmsgpack.unpack(cmsgpack.pack(0.5, -2.25, 0.1, 1/3, 1e300, 1/0, -1/0, 2^63, -2^63, 2^64, 'str', '', true, false, nil)))",
            "0.5,-2.25,0.10000000000000001,0.33333333333333331,1.0000000000000001e+300,inf,-inf,9.2233720368547758e+18,-9.2233720368547758e+18,1.8446744073709552e+19,\"str\",\"\",true,false,nil",
        ),
        (
            "return R(cmsgpack.unpack(cmsgpack.pack({1, 2, {3, {4}}, {a = 'b', [5] = {c = {}}}, {[1.5] = 2}})))",
            "{1=1,2=2,3={1=3,2={1=4}},4={\"a\"=\"b\",5={\"c\"={}}},5={1.5=2}}",
        ),
        (
            "return R(cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255')) .. ' ' .. R(cmsgpack.unpack('\\207\\128\\0\\0\\0\\0\\0\\0\\0')) .. ' ' .. R(cmsgpack.unpack('\\207\\0\\32\\0\\0\\0\\0\\0\\1')) .. ' ' .. R(cmsgpack.unpack('\\211\\255\\255\\255\\255\\255\\255\\255\\255')) .. ' ' .. R(cmsgpack.unpack('\\211\\128\\0\\0\\0\\0\\0\\0\\0')) .. ' ' .. R(cmsgpack.unpack('\\211\\0\\32\\0\\0\\0\\0\\0\\1'))",
            "-1 -9.2233720368547758e+18 9007199254740992 -1 -9.2233720368547758e+18 9007199254740992",
        ),
        (
            "return R(cmsgpack.unpack('\\204\\255')) .. ' ' .. R(cmsgpack.unpack('\\208\\255')) .. ' ' .. R(cmsgpack.unpack('\\205\\255\\254')) .. ' ' .. R(cmsgpack.unpack('\\209\\255\\254')) .. ' ' .. R(cmsgpack.unpack('\\209\\128\\1')) .. ' ' .. R(cmsgpack.unpack('\\206\\255\\255\\255\\254')) .. ' ' .. R(cmsgpack.unpack('\\210\\255\\255\\255\\254')) .. ' ' .. R(cmsgpack.unpack('\\210\\128\\0\\0\\0'))",
            "255 -1 65534 -2 -32767 4294967294 -2 -2147483648",
        ),
        (
            "return R(cmsgpack.unpack('\\127\\128\\144\\160\\192\\194\\195\\224\\255\\161x\\0'))",
            "127,{},{},\"\",nil,false,true,-32,-1,\"x\",0",
        ),
        (
            "return R(cmsgpack.unpack('\\202\\63\\192\\0\\0')) .. ' ' .. R(cmsgpack.unpack('\\202\\127\\192\\0\\0')) .. ' ' .. R(cmsgpack.unpack('\\202\\0\\0\\0\\1')) .. ' ' .. R(cmsgpack.unpack('\\203\\63\\185\\153\\153\\153\\153\\153\\154')) .. ' ' .. R(cmsgpack.unpack('\\203\\255\\240\\0\\0\\0\\0\\0\\0'))",
            "1.5 nan 1.4012984643248171e-45 0.10000000000000001 -inf",
        ),
        (
            "return R(cmsgpack.unpack('\\217\\3abc')) .. ' ' .. R(cmsgpack.unpack('\\218\\0\\3abc')) .. ' ' .. R(cmsgpack.unpack('\\219\\0\\0\\0\\3abc')) .. ' ' .. R(cmsgpack.unpack('\\217\\0')) .. ' ' .. R(cmsgpack.unpack('\\163a\\0b'))",
            "\"abc\" \"abc\" \"abc\" \"\" \"a\\000b\"",
        ),
        (
            "return R(cmsgpack.unpack('\\220\\0\\2\\1\\2')) .. ' ' .. R(cmsgpack.unpack('\\221\\0\\0\\0\\2\\1\\2')) .. ' ' .. R(cmsgpack.unpack('\\222\\0\\1\\161a\\1')) .. ' ' .. R(cmsgpack.unpack('\\223\\0\\0\\0\\1\\1\\2')) .. ' ' .. R(cmsgpack.unpack('\\220\\0\\0')) .. ' ' .. R(cmsgpack.unpack('\\146\\192\\1')) .. ' ' .. R(cmsgpack.unpack('\\130\\1\\192\\2\\3'))",
            "{1=1,2=2} {1=1,2=2} {\"a\"=1} {1=2} {} {2=1} {2=3}",
        ),
        (
            "return R(cmsgpack.unpack('\\129\\146\\1\\2\\3')) .. ' ' .. R(cmsgpack.unpack('\\130\\1\\2\\1\\3')) .. ' ' .. R(cmsgpack.unpack('\\130\\161\\49\\1\\1\\2')) .. ' ' .. R(cmsgpack.unpack('\\145\\145\\145\\145\\1'))",
            "{{1=1,2=2}=3} {1=3} {\"1\"=1,1=2} {1={1={1={1=1}}}}",
        ),
        (
            "return (function() local t = cmsgpack.unpack('\\131\\161a\\1\\161b\\2\\161c\\3') local o = {} for k, v in pairs(t) do o[#o+1] = k .. '=' .. v end return table.concat(o, ',') end)()",
            "a=1,c=3,b=2",
        ),
        (
            "return (function() local t = cmsgpack.unpack('\\148\\1\\2\\3\\4') return #t .. ' ' .. R(unpack(t)) end)()",
            "4 1,2,3,4",
        ),
        (
            "return R(cmsgpack.unpack('')) .. '|' .. select('#', cmsgpack.unpack('')) .. '|' .. select('#', cmsgpack.unpack('\\192\\192\\192'))",
            "|0|3",
        ),
        ("return R(cmsgpack.unpack('\\1\\2', 'ignored', 3))", "1,2"),
        (
            "return R(cmsgpack.unpack(12)) .. ' ' .. R(cmsgpack.unpack(-1))",
            "49,50 45,49",
        ),
        (
            "return P(cmsgpack.unpack)",
            "ERR:bad argument #1 to '?' (string expected, got no value)",
        ),
        (
            "return P(function() return cmsgpack.unpack() end)",
            "ERR:user_script:1: bad argument #1 to 'unpack' (string expected, got no value)",
        ),
        (
            "return P(function() return cmsgpack.unpack({}) end)",
            "ERR:user_script:1: bad argument #1 to 'unpack' (string expected, got table)",
        ),
        (
            "return P(function() return cmsgpack.unpack(nil) end)",
            "ERR:user_script:1: bad argument #1 to 'unpack' (string expected, got nil)",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\204') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\1\\205\\1') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\206\\1\\2\\3') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\207\\1\\2\\3\\4\\5\\6\\7') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\211\\1') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\202\\1\\2') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\203\\1\\2') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\217') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\217\\5abc') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\218\\0') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\219\\0\\0\\0\\9abc') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\165abc') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\146\\1') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\220\\0') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\221\\255\\255\\255\\255') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\129\\1') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\223\\0\\0\\0\\1\\1') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\193') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\196\\1a') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\197\\0\\1a') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\198\\0\\0\\0\\1a') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\199\\1\\1a') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\212\\1\\1') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\216\\1') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\1\\2\\193') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\145\\193') end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\146\\1\\204') end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\129\\192\\1') end)",
            "ERR:table index is nil",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\129\\203\\255\\248\\0\\0\\0\\0\\0\\0\\1') end)",
            "ERR:table index is NaN",
        ),
        (
            "return P(function() return cmsgpack.unpack('\\129\\1\\192') end)",
            "{}",
        ),
        (
            "return P(function() return select('#', cmsgpack.unpack(string.rep('\\1', 7990))) end)",
            "7990",
        ),
        (
            "return P(function() return select('#', cmsgpack.unpack(string.rep('\\1', 8000))) end)",
            "ERR:user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
        ),
        (
            "return P(function() return #cmsgpack.unpack(string.rep('\\145', 3990) .. '\\1') end)",
            "1",
        ),
        (
            "return P(function() return #cmsgpack.unpack(string.rep('\\145', 4100) .. '\\1') end)",
            "ERR:user_script:1: stack overflow (in function mp_decode_to_lua_array)",
        ),
        (
            "return P(function() return type(cmsgpack.unpack(string.rep('\\129\\1', 3990) .. '\\1')) end)",
            "\"table\"",
        ),
        (
            "return P(function() return type(cmsgpack.unpack(string.rep('\\129\\1', 4100) .. '\\1')) end)",
            "ERR:user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
        ),
        (
            "return P(function() return type(cmsgpack.unpack(string.rep('\\129', 7990) .. '\\1' .. string.rep('\\1', 7990))) end)",
            "\"table\"",
        ),
        (
            "return P(function() return type(cmsgpack.unpack(string.rep('\\129', 8100) .. '\\1')) end)",
            "ERR:user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
        ),
        (
            "return P(function() return cmsgpack.unpack(string.rep('\\145', 100000)) end)",
            "ERR:user_script:1: stack overflow (in function mp_decode_to_lua_array)",
        ),
        (
            "return R(cmsgpack.unpack_one(cmsgpack.pack(1, 'two', {3}))) .. ' ' .. R(cmsgpack.unpack_one(cmsgpack.pack(1, 'two', {3}), 1)) .. ' ' .. R(cmsgpack.unpack_one(cmsgpack.pack(1, 'two', {3}), 5)) .. ' ' .. R(cmsgpack.unpack_one(cmsgpack.pack(1, 'two', {3}), 6))",
            "1,1 5,\"two\" -1,{1=3} -1,3",
        ),
        (
            "return R(cmsgpack.unpack_one('\\1', 0)) .. ' ' .. R(cmsgpack.unpack_one('')) .. ' ' .. R(cmsgpack.unpack_one('\\1\\2', 2)) .. ' ' .. R(cmsgpack.unpack_one('\\1\\2', nil)) .. ' ' .. R(cmsgpack.unpack_one('\\1\\2', '1')) .. ' ' .. R(cmsgpack.unpack_one('\\1\\2', 1.9)) .. ' ' .. R(cmsgpack.unpack_one('\\1\\2', 0, 'x', 'y'))",
            "-1,1 -1 -1 1,1 -1,2 -1,2 1,1",
        ),
        (
            "return R(cmsgpack.unpack_limit('\\1\\2\\3\\4', 2)) .. ' ' .. R(cmsgpack.unpack_limit('\\1\\2\\3\\4', 2, 2)) .. ' ' .. R(cmsgpack.unpack_limit('\\1\\2\\3\\4', 10)) .. ' ' .. R(cmsgpack.unpack_limit('\\1\\2\\3\\4', 0)) .. ' ' .. R(cmsgpack.unpack_limit('\\1\\2\\3\\4', 0, 1)) .. ' ' .. R(cmsgpack.unpack_limit('\\1\\2\\3\\4', 1, 4)) .. ' ' .. R(cmsgpack.unpack_limit('\\1\\2\\3\\4', 4, 0))",
            "2,1,2 -1,3,4 -1,1,2,3,4 1,2,3,4 1 -1 -1,1,2,3,4",
        ),
        (
            "return P(function() return cmsgpack.unpack_one() end)",
            "ERR:user_script:1: bad argument #1 to 'unpack_one' (string expected, got no value)",
        ),
        (
            "return P(function() return cmsgpack.unpack_one({}) end)",
            "ERR:user_script:1: bad argument #1 to 'unpack_one' (string expected, got table)",
        ),
        (
            "return P(function() return cmsgpack.unpack_one('\\1', 'x') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack_one' (number expected, got string)",
        ),
        (
            "return P(function() return cmsgpack.unpack_one('\\1', -1) end)",
            "ERR:user_script:1: Invalid request to unpack with offset of -1 and limit of 1.",
        ),
        (
            "return P(function() return cmsgpack.unpack_one('\\1\\2\\3', -5000000000) end)",
            "ERR:user_script:1: Invalid request to unpack with offset of -705032704 and limit of 3.",
        ),
        (
            "return P(function() return cmsgpack.unpack_one('\\1', 2) end)",
            "ERR:user_script:1: Start offset 2 greater than input length 1.",
        ),
        (
            "return P(function() return cmsgpack.unpack_one('\\1\\2', 5000000000) end)",
            "ERR:user_script:1: Start offset 705032704 greater than input length 2.",
        ),
        (
            "return P(function() return cmsgpack.unpack_one('\\1\\204', 1) end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack_one('\\1\\193', 1) end)",
            "ERR:user_script:1: Bad data format in input.",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit('\\1') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack_limit' (number expected, got no value)",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit('\\1', 'x') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack_limit' (number expected, got string)",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit('\\1', nil) end)",
            "ERR:user_script:1: bad argument #2 to 'unpack_limit' (number expected, got nil)",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit('\\1', 1, {}) end)",
            "ERR:user_script:1: bad argument #3 to 'unpack_limit' (number expected, got table)",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit('\\1', -1) end)",
            "ERR:user_script:1: Invalid request to unpack with offset of 0 and limit of 1.",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit('\\1\\2\\3', -1, 2) end)",
            "ERR:user_script:1: Invalid request to unpack with offset of 2 and limit of 3.",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit('\\1', 1, 3) end)",
            "ERR:user_script:1: Start offset 3 greater than input length 1.",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit(nil, 1) end)",
            "ERR:user_script:1: bad argument #1 to 'unpack_limit' (string expected, got nil)",
        ),
        (
            "return P(function() return cmsgpack.unpack_limit('\\1\\2\\3\\4\\204', 10) end)",
            "ERR:user_script:1: Missing bytes in input.",
        ),
        (
            "return P(function() return select('#', cmsgpack.unpack_limit(string.rep('\\1', 9000), 7990)) end)",
            "7991",
        ),
        (
            "return P(function() return select('#', cmsgpack.unpack_limit(string.rep('\\1', 9000), 8100)) end)",
            "ERR:user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
        ),
        (
            "return (function() local s = cmsgpack.pack({1, 'a', {b = 2.5}}, -7, 'end') local o, off, v = {}, 0, nil while off >= 0 do off, v = cmsgpack.unpack_one(s, off) o[#o+1] = off .. ':' .. ser(v) end return table.concat(o, ' ') end)()",
            "12:{1=1,2=\"a\",3={\"b\"=2.5}} 13:-7 -1:\"end\"",
        ),
        (
            "return hex(cmsgpack.pack(cmsgpack.unpack(cmsgpack.pack({a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9,j=10,k=11,l=12,m=13,n=14,o=15,p=16,q=17}))))",
            "de0011a16101a16303a16202a16505a16404a16707a16606a16909a16808a16b0ba16a0aa16d0da16c0ca16f0fa16e0ea17111a17010",
        ),
        (
            "return hex(cmsgpack.pack({[1] = false, [2] = true, [3.0] = 0})) .. ' ' .. hex(cmsgpack.pack({[1] = 'a', [2] = 'b', [4] = 'd', [3] = 'c'})) .. ' ' .. hex(cmsgpack.pack({n = {}, [1] = {}}))",
            "93c2c300 94a161a162a163a164 820190a16e90",
        ),
        (
            "return (function() local t = {1, 2, 3} t[2] = nil local a = hex(cmsgpack.pack(t)) t[2] = 2 t[3] = nil local b = hex(cmsgpack.pack(t)) return a .. ' ' .. b end)()",
            "8201010303 920102",
        ),
        (
            "return (function() local t = {} for i = 1, 40 do t[i * 3] = i end return hex(cmsgpack.pack(t)) end)()",
            "de00281b094b190301361206026c24270d0c043f154e1a180830106f256020210b511b39134216150772262a0e6321541c451733110f05120666221e0a240c571d3c14481878282d0f692375275d1f5a1e0903",
        ),
    ];

    #[test]
    fn matches_redis() {
        check(REDIS_CASES);
    }

    #[test]
    fn c_conversions() {
        assert_eq!(c_to_i64(9223372036854775808.0), i64::MIN);
        assert_eq!(c_to_i64(-9223372036854775808.0), i64::MIN);
        assert_eq!(c_to_i32(2147483648.0), i32::MIN);
        assert_eq!(c_to_i32(2147483647.5), i32::MAX);
        assert_eq!(c_to_i32(-2147483648.5), i32::MIN);
    }
}
