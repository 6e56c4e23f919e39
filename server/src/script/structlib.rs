//! The `struct` library that EVAL scripts see: struct.pack, struct.unpack
//! and struct.size, converting between Lua values and binary records.
//! Written for this project in Rust; it mirrors the observable behaviour
//! (bytes, results, error messages) of the struct library (Roberto
//! Ierusalimschy's struct.c 1.7) as bundled in redis-server 7.0.15 on x86-64
//! Linux. No code or text is taken from it.
//!
//! Format letters: `>` big endian, `<` little endian (the default is the
//! machine's, little), `!n` maximum alignment (n a power of 2, default 8),
//! a space is ignored, `x` one pad byte, `b`/`B` 1-byte, `h`/`H` 2-byte, `l`/`L`
//! and `T` 8-byte, `in`/`In` n-byte (default 4, at most 32) signed/unsigned
//! integers, `f` float, `d` double, `cn` n chars (pack: `c0` is the whole
//! string; unpack: `c0` takes its length from the previous result), `s`
//! zero-terminated string. Anything else is "invalid format
//! option". The format ends at its first NUL byte, like a C string.
//!
//! Integers follow the C code on x86-64: a double becomes 64 bits the way
//! the compiler's conversion instructions do it (out of range gives
//! 0x8000000000000000, or 0 for huge positive values), sizes above 8 bytes
//! pad with zero bytes, and the sign mask of an n-byte signed integer is
//! `!0 << ((8n - 1) mod 64)`.
//!
//! Lua errors are longjmps: every C function below does its work in an inner
//! function returning `Result` and raises only after that returned, with no
//! Rust value that owns a destructor alive in any frame. The one owned
//! buffer (pack's output) is held in `ManuallyDrop` and freed explicitly, so
//! even an allocation error raised by a Lua API call could only leak it.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mlua_sys as ffi;

use super::libs::{c_to_i64, lua_fn};

/// Largest size of an 'i'/'I' integer.
const MAXINTSIZE: i32 = 32;
/// Default (and '!' without a number) maximum alignment: that of a double.
const MAXALIGN: i32 = 8;

/// Reasons a struct function fails; raised as a Lua error by `raise`.
#[derive(Clone, Copy, Debug)]
enum Error {
    /// `luaL_typerror(narg, tname)`.
    Type(c_int, &'static CStr),
    /// `luaL_argerror(narg, msg)`.
    Arg(c_int, &'static CStr),
    /// `luaL_error` with a fixed message.
    Msg(&'static CStr),
    /// "integral size N is larger than limit of 32".
    IntSize(i32),
    /// "alignment N is not a power of 2".
    Align(i32),
    /// Argument 1 error "invalid format option 'C'".
    BadOption(u8),
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
            Error::IntSize(sz) => ffi::luaL_error(
                l,
                c"integral size %d is larger than limit of %d".as_ptr(),
                sz as c_int,
                MAXINTSIZE as c_int,
            ),
            Error::Align(a) => {
                ffi::luaL_error(l, c"alignment %d is not a power of 2".as_ptr(), a as c_int)
            }
            Error::BadOption(opt) => {
                let msg =
                    ffi::lua_pushfstring(l, c"invalid format option '%c'".as_ptr(), opt as c_int);
                ffi::luaL_argerror(l, 1, msg)
            }
            Error::Panic => ffi::luaL_error(
                l,
                c"%s".as_ptr(),
                c"internal error in struct library".as_ptr(),
            ),
        }
    }
}

/// `(uint64_t)d` as gcc compiles it for x86-64: values from 2^63 up go
/// through the signed conversion of `d - 2^63`, then get bit 63 flipped.
fn c_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO63 {
        (c_to_i64(d - TWO63) as u64) ^ (1 << 63)
    } else {
        c_to_i64(d) as u64
    }
}

/// Argument `narg` as a number, like `luaL_checknumber`.
unsafe fn check_number(l: *mut ffi::lua_State, narg: c_int) -> Result<f64, Error> {
    // SAFETY: `l` is valid; any index is acceptable to these calls.
    unsafe {
        let d = ffi::lua_tonumber(l, narg);
        if d == 0.0 && ffi::lua_isnumber(l, narg) == 0 {
            return Err(Error::Type(narg, c"number"));
        }
        Ok(d)
    }
}

/// Argument `narg` as bytes, like `luaL_checklstring` (numbers are
/// converted in place). The slice stays valid while the value is on the
/// stack, which is until the C function returns.
unsafe fn check_bytes<'a>(l: *mut ffi::lua_State, narg: c_int) -> Result<&'a [u8], Error> {
    let mut len = 0usize;
    // SAFETY: `l` is valid; `len` is a valid out-pointer.
    let p = unsafe { ffi::lua_tolstring(l, narg, &mut len) };
    if p.is_null() {
        return Err(Error::Type(narg, c"string"));
    }
    // SAFETY: Lua strings are `len` readable bytes, alive while on the stack.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// The format (argument 1), up to its first NUL.
unsafe fn check_format<'a>(l: *mut ffi::lua_State) -> Result<&'a [u8], Error> {
    // SAFETY: as `check_bytes`.
    let f = unsafe { check_bytes(l, 1)? };
    Ok(match f.iter().position(|&b| b == 0) {
        Some(end) => &f[..end],
        None => f,
    })
}

/// Endianness and alignment state while walking a format.
struct Header {
    little: bool,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header {
            little: cfg!(target_endian = "little"),
            align: 1,
        }
    }
}

/// A cursor over the format.
struct Fmt<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = self.s.get(self.pos).copied();
        self.pos += c.is_some() as usize;
        c
    }

    /// A decimal number at the cursor, or `df` when there is none.
    fn num(&mut self, df: i32) -> Result<i32, Error> {
        let mut a: i32 = 0;
        let mut any = false;
        while let Some(&c) = self.s.get(self.pos).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(Error::Msg(c"integral size overflow"));
            }
            a = a * 10 + d;
            any = true;
            self.pos += 1;
        }
        Ok(if any { a } else { df })
    }

    /// Size of option `opt`, reading its count where it has one; 0 for
    /// options that take no room or need no alignment.
    fn size(&mut self, opt: u8) -> Result<usize, Error> {
        Ok(match opt {
            b'B' | b'b' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.num(1)? as usize,
            b'i' | b'I' => {
                let sz = self.num(4)?;
                if sz > MAXINTSIZE {
                    return Err(Error::IntSize(sz));
                }
                sz as usize
            }
            _ => 0,
        })
    }

    /// Endianness, alignment and spaces; any other option is invalid.
    fn control(&mut self, opt: u8, h: &mut Header) -> Result<(), Error> {
        match opt {
            b' ' => {}
            b'>' => h.little = false,
            b'<' => h.little = true,
            b'!' => {
                let a = self.num(MAXALIGN)?;
                if !(a > 0 && (a & (a - 1)) == 0) {
                    return Err(Error::Align(a));
                }
                h.align = a as usize;
            }
            _ => return Err(Error::BadOption(opt)),
        }
        Ok(())
    }
}

/// Padding needed before an item of `size` bytes at offset `len`.
fn padding(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & (size - 1))) & (size - 1)
}

fn is_int_option(opt: u8) -> bool {
    matches!(
        opt,
        b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I'
    )
}

/// Appends `size` bytes of integer `n` (beyond 8 bytes: zero bytes).
fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let mut value = if n < 0.0 {
        c_to_i64(n) as u64
    } else {
        c_to_u64(n)
    };
    let start = out.len();
    out.resize(start + size, 0);
    let dst = &mut out[start..];
    for i in 0..size {
        let at = if little { i } else { size - 1 - i };
        dst[at] = (value & 0xff) as u8;
        value >>= 8;
    }
}

/// Reads an integer of `bytes.len()` bytes (only the last 8 significant).
fn get_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let size = bytes.len();
    let mut v: u64 = 0;
    for i in 0..size {
        let at = if little { size - 1 - i } else { i };
        v = (v << 8) | bytes[at] as u64;
    }
    if !signed {
        return v as f64;
    }
    let mask = (!0u64).wrapping_shl((size as u32).wrapping_mul(8).wrapping_sub(1));
    if v & mask != 0 {
        v |= mask;
    }
    v as i64 as f64
}

/// struct.pack(fmt, ...).
unsafe fn pack(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `check_format`.
    let fmt = unsafe { check_format(l)? };
    // Like the C code, a nil sits just above the arguments while packing: a
    // missing argument reads as nil ("got nil"), not as "no value".
    // SAFETY: a C function has LUA_MINSTACK free slots.
    unsafe { ffi::lua_pushnil(l) };
    let mut out = ManuallyDrop::new(Vec::new());
    // SAFETY: called from a Lua C function with state `l`.
    let res = unsafe { pack_into(l, fmt, &mut out) };
    if res.is_ok() {
        // SAFETY: `out` is a live buffer of `out.len()` bytes; the call
        // copies it. A memory error here would only leak `out`.
        unsafe { ffi::lua_pushlstring(l, out.as_ptr().cast::<c_char>(), out.len()) };
    }
    // SAFETY: dropped exactly once; not used afterwards.
    unsafe { ManuallyDrop::drop(&mut out) };
    res.map(|()| 1)
}

unsafe fn pack_into(l: *mut ffi::lua_State, fmt: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut f = Fmt { s: fmt, pos: 0 };
    let mut h = Header::new();
    let mut arg: c_int = 2;
    let mut total: usize = 0;
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        let pad = padding(total, &h, opt, size);
        total = total.wrapping_add(pad);
        out.resize(out.len() + pad, 0);
        match opt {
            _ if is_int_option(opt) => {
                // SAFETY: `l` is valid.
                let n = unsafe { check_number(l, arg)? };
                arg += 1;
                put_integer(out, n, h.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                // SAFETY: `l` is valid.
                let v = unsafe { check_number(l, arg)? } as f32;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'd' => {
                // SAFETY: `l` is valid.
                let v = unsafe { check_number(l, arg)? };
                arg += 1;
                out.extend_from_slice(&if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'c' | b's' => {
                // SAFETY: `l` is valid; the string stays on the stack.
                let s = unsafe { check_bytes(l, arg)? };
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // Redis reports the argument after the short string.
                    return Err(Error::Arg(arg, c"string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => f.control(opt, &mut h)?,
        }
        total = total.wrapping_add(size);
    }
    Ok(())
}

/// struct.unpack(fmt, data [, init]).
unsafe fn unpack(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: called from a Lua C function with state `l`; `fmt` and `data`
    // are strings that stay on the stack (arguments 1 and 2) until return.
    unsafe {
        let fmt = check_format(l)?;
        let data = check_bytes(l, 2)?;
        let ld = data.len();
        let mut pos = if ffi::lua_isnoneornil(l, 3) != 0 {
            1
        } else {
            let v = ffi::lua_tointeger_(l, 3);
            if v == 0 && ffi::lua_isnumber(l, 3) == 0 {
                return Err(Error::Type(3, c"number"));
            }
            v
        } as usize;
        if pos == 0 {
            return Err(Error::Arg(3, c"offset must be 1 or greater"));
        }
        pos -= 1;
        let mut f = Fmt { s: fmt, pos: 0 };
        let mut h = Header::new();
        let mut n: c_int = 0;
        let too_short = Error::Arg(2, c"data string too short");
        while let Some(opt) = f.next() {
            let mut size = f.size(opt)?;
            pos = pos.wrapping_add(padding(pos, &h, opt, size));
            if !(size <= ld && pos <= ld - size) {
                return Err(too_short);
            }
            if ffi::lua_checkstack(l, 2) == 0 {
                return Err(Error::Msg(c"stack overflow (too many results)"));
            }
            match opt {
                _ if is_int_option(opt) => {
                    let v = get_integer(&data[pos..pos + size], h.little, opt.is_ascii_lowercase());
                    ffi::lua_pushnumber(l, v);
                    n += 1;
                }
                b'x' => {}
                b'f' => {
                    let b: [u8; 4] = data[pos..pos + 4].try_into().unwrap_or_default();
                    let v = if h.little {
                        f32::from_le_bytes(b)
                    } else {
                        f32::from_be_bytes(b)
                    };
                    ffi::lua_pushnumber(l, v as f64);
                    n += 1;
                }
                b'd' => {
                    let b: [u8; 8] = data[pos..pos + 8].try_into().unwrap_or_default();
                    let v = if h.little {
                        f64::from_le_bytes(b)
                    } else {
                        f64::from_be_bytes(b)
                    };
                    ffi::lua_pushnumber(l, v);
                    n += 1;
                }
                b'c' => {
                    if size == 0 {
                        if n == 0 || ffi::lua_isnumber(l, -1) == 0 {
                            return Err(Error::Msg(c"format 'c0' needs a previous size"));
                        }
                        size = c_to_u64(ffi::lua_tonumber(l, -1)) as usize;
                        ffi::lua_pop(l, 1);
                        n -= 1;
                        if !(size <= ld && pos <= ld - size) {
                            return Err(too_short);
                        }
                    }
                    ffi::lua_pushlstring(l, data[pos..].as_ptr().cast::<c_char>(), size);
                    n += 1;
                }
                b's' => {
                    let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                        return Err(Error::Msg(c"unfinished string in data"));
                    };
                    size = len + 1;
                    ffi::lua_pushlstring(l, data[pos..].as_ptr().cast::<c_char>(), len);
                    n += 1;
                }
                _ => f.control(opt, &mut h)?,
            }
            pos = pos.wrapping_add(size);
        }
        ffi::lua_pushinteger(l, pos.wrapping_add(1) as ffi::lua_Integer);
        Ok(n + 1)
    }
}

/// struct.size(fmt).
unsafe fn size(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: called from a Lua C function with state `l`.
    let fmt = unsafe { check_format(l)? };
    let mut f = Fmt { s: fmt, pos: 0 };
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        pos = pos.wrapping_add(padding(pos, &h, opt, size));
        if opt == b's' {
            return Err(Error::Arg(1, c"option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(Error::Arg(1, c"option 'c0' has no fixed size"));
        }
        // Letters and digits other than the sized options count 0 bytes.
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    // SAFETY: a C function always has room for one result.
    unsafe { ffi::lua_pushinteger(l, pos as ffi::lua_Integer) };
    Ok(1)
}

lua_fn!(l_pack, pack);
lua_fn!(l_unpack, unpack);
lua_fn!(l_size, size);

/// Creates the `struct` table (like `luaL_register`: global `struct` plus
/// the registry's loaded-module entry, same size hint and field order as
/// Redis) and leaves the stack as it found it.
///
/// # Safety
/// `l` is a valid Lua 5.1 state, not inside a C function that holds Rust
/// values with destructors (a memory error raises).
pub unsafe fn open(l: *mut ffi::lua_State) {
    // SAFETY: as this function's contract.
    unsafe {
        super::libs::register(
            l,
            c"struct",
            &[(c"pack", l_pack), (c"unpack", l_unpack), (c"size", l_size)],
        );
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
            "return hex(struct.pack('b', 0)) .. ' ' .. hex(struct.pack('b', 127)) .. ' ' .. hex(struct.pack('b', -128)) .. ' ' .. hex(struct.pack('b', 128)) .. ' ' .. hex(struct.pack('b', 255)) .. ' ' .. hex(struct.pack('b', 256)) .. ' ' .. hex(struct.pack('b', -1)) .. ' ' .. hex(struct.pack('b', -129))",
            "00 7f 80 80 ff 00 ff 7f",
        ),
        (
            "return hex(struct.pack('B', 0)) .. ' ' .. hex(struct.pack('B', 255)) .. ' ' .. hex(struct.pack('B', 256)) .. ' ' .. hex(struct.pack('B', -1)) .. ' ' .. hex(struct.pack('B', 1.9)) .. ' ' .. hex(struct.pack('B', -1.9)) .. ' ' .. hex(struct.pack('B', '7'))",
            "00 ff 00 ff 01 ff 07",
        ),
        (
            "return hex(struct.pack('h', 1)) .. ' ' .. hex(struct.pack('>h', 1)) .. ' ' .. hex(struct.pack('<h', -2)) .. ' ' .. hex(struct.pack('>H', 65535)) .. ' ' .. hex(struct.pack('>H', 65536)) .. ' ' .. hex(struct.pack('>h', -32768)) .. ' ' .. hex(struct.pack('>h', 32768))",
            "0100 0001 feff ffff 0000 8000 8000",
        ),
        (
            "return hex(struct.pack('l', 1)) .. ' ' .. hex(struct.pack('>l', 1)) .. ' ' .. hex(struct.pack('>l', -1)) .. ' ' .. hex(struct.pack('>L', 2^53)) .. ' ' .. hex(struct.pack('>L', 2^53+1)) .. ' ' .. hex(struct.pack('>L', 2^63)) .. ' ' .. hex(struct.pack('>L', 2^64)) .. ' ' .. hex(struct.pack('>l', -2^63))",
            "0100000000000000 0000000000000001 ffffffffffffffff 0020000000000000 0020000000000000 8000000000000000 0000000000000000 8000000000000000",
        ),
        (
            "return hex(struct.pack('>L', 1/0)) .. ' ' .. hex(struct.pack('>L', -1/0)) .. ' ' .. hex(struct.pack('>L', 0/0)) .. ' ' .. hex(struct.pack('>l', 1e300)) .. ' ' .. hex(struct.pack('>l', -1e300)) .. ' ' .. hex(struct.pack('>L', 2^63+2^12)) .. ' ' .. hex(struct.pack('>L', 1.5e19)) .. ' ' .. hex(struct.pack('>l', -2^63-4096))",
            "0000000000000000 8000000000000000 8000000000000000 0000000000000000 8000000000000000 8000000000001000 d02ab486cedc0000 8000000000000000",
        ),
        (
            "return hex(struct.pack('T', 1)) .. ' ' .. hex(struct.pack('>T', 258)) .. ' ' .. hex(struct.pack('i', 1)) .. ' ' .. hex(struct.pack('>i', -2)) .. ' ' .. hex(struct.pack('>I', 2^32)) .. ' ' .. hex(struct.pack('>I', 2^32-1)) .. ' ' .. hex(struct.pack('>i', 2^31))",
            "0100000000000000 0000000000000102 01000000 fffffffe 00000000 ffffffff 80000000",
        ),
        (
            "return hex(struct.pack('>i1', -1)) .. ' ' .. hex(struct.pack('>i2', 258)) .. ' ' .. hex(struct.pack('>i3', 0x010203)) .. ' ' .. hex(struct.pack('<i3', 0x010203)) .. ' ' .. hex(struct.pack('>I5', 2^32+5)) .. ' ' .. hex(struct.pack('>i7', -2)) .. ' ' .. hex(struct.pack('<i8', -3)) .. ' ' .. hex(struct.pack('>i9', -1))",
            "ff 0102 010203 030201 0100000005 fffffffffffffe fdffffffffffffff 00ffffffffffffffff",
        ),
        (
            "return hex(struct.pack('<i16', -1)) .. ' ' .. hex(struct.pack('>i16', -1)) .. ' ' .. hex(struct.pack('>I32', 1)) .. ' ' .. hex(struct.pack('<i0', -1)) .. ' ' .. hex(struct.pack('>i12', 2^40))",
            "ffffffffffffffff0000000000000000 0000000000000000ffffffffffffffff 0000000000000000000000000000000000000000000000000000000000000001  000000000000010000000000",
        ),
        (
            "return hex(struct.pack('f', 1.5)) .. ' ' .. hex(struct.pack('>f', 1.5)) .. ' ' .. hex(struct.pack('>f', 0.1)) .. ' ' .. hex(struct.pack('>f', 1e40)) .. ' ' .. hex(struct.pack('>f', -1/0)) .. ' ' .. hex(struct.pack('>f', 0/0)) .. ' ' .. hex(struct.pack('>f', -0.0)) .. ' ' .. hex(struct.pack('>f', 1e-46))",
            "0000c03f 3fc00000 3dcccccd 7f800000 ff800000 ffc00000 00000000 00000000",
        ),
        (
            "return hex(struct.pack('d', 1.5)) .. ' ' .. hex(struct.pack('>d', 0.1)) .. ' ' .. hex(struct.pack('<d', -2)) .. ' ' .. hex(struct.pack('>d', 1/0)) .. ' ' .. hex(struct.pack('>d', 0/0)) .. ' ' .. hex(struct.pack('>d', 2^-1074)) .. ' ' .. hex(struct.pack('>d', '3'))",
            "000000000000f83f 3fb999999999999a 00000000000000c0 7ff0000000000000 fff8000000000000 0000000000000001 4008000000000000",
        ),
        (
            "return hex(struct.pack('c', 'abc')) .. ' ' .. hex(struct.pack('c3', 'abc')) .. ' ' .. hex(struct.pack('c2', 'abc')) .. ' ' .. hex(struct.pack('c0', 'abcdef')) .. ' ' .. hex(struct.pack('c0', '')) .. ' ' .. hex(struct.pack('c0', 12.5)) .. ' ' .. hex(struct.pack('c10', string.rep('z', 12)))",
            "61 616263 6162 616263646566  31322e35 7a7a7a7a7a7a7a7a7a7a",
        ),
        (
            "return hex(struct.pack('s', 'abc')) .. ' ' .. hex(struct.pack('s', '')) .. ' ' .. hex(struct.pack('s', 'a\\0b')) .. ' ' .. hex(struct.pack('ss', 'x', 'yz')) .. ' ' .. hex(struct.pack('s', 42))",
            "61626300 00 61006200 7800797a00 343200",
        ),
        (
            "return hex(struct.pack('bxb', 1, 2)) .. ' ' .. hex(struct.pack('xxx')) .. ' ' .. hex(struct.pack('')) .. ' ' .. hex(struct.pack('  b  ', 3)) .. ' ' .. hex(struct.pack('b\\0b', 1, 2)) .. ' ' .. hex(struct.pack('>h<h', 1, 1))",
            "010002 000000  03 01 00010100",
        ),
        (
            "return hex(struct.pack('!bi', 1, 2)) .. ' ' .. hex(struct.pack('!4bd', 1, 2)) .. ' ' .. hex(struct.pack('!bd', 1, 2)) .. ' ' .. hex(struct.pack('!2bl', 1, 2)) .. ' ' .. hex(struct.pack('!8bhbibl', 1, 2, 3, 4, 5, 6)) .. ' ' .. hex(struct.pack('!1bi', 1, 2))",
            "0100000002000000 010000000000000000000040 01000000000000000000000000000040 01000200000000000000 010002000300000004000000050000000600000000000000 0102000000",
        ),
        (
            "return hex(struct.pack('!4bi3', 1, 2)) .. ' ' .. hex(struct.pack('!4bbi3', 1, 2, 3)) .. ' ' .. hex(struct.pack('!8bi6', 1, 2)) .. ' ' .. hex(struct.pack('!bc3i', 1, 'abc', 2)) .. ' ' .. hex(struct.pack('!bsi', 1, 'ab', 2)) .. ' ' .. hex(struct.pack('!bxi', 1, 2)) .. ' ' .. hex(struct.pack('!16bi16', 1, 2))",
            "010000020000 0102030000 010000000000020000000000 0161626302000000 0161620002000000 0100000002000000 0100000000000000000000000000000002000000000000000000000000000000",
        ),
        (
            "return hex(struct.pack('!bf', 1, 2)) .. ' ' .. hex(struct.pack('b!h', 1, 2)) .. ' ' .. hex(struct.pack('!b!2h', 1, 2)) .. ' ' .. hex(struct.pack('!32bi32', 1, 2))",
            "0100000000000040 01000200 01000200 01000000000000000000000000000000000000000000000000000000000000000200000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "return P(struct.pack)",
            "ERR:bad argument #1 to '?' (string expected, got no value)",
        ),
        (
            "return P(struct.pack, {})",
            "ERR:bad argument #1 to '?' (string expected, got table)",
        ),
        (
            "return P(function() return struct.pack('i') end)",
            "ERR:user_script:1: bad argument #2 to 'pack' (number expected, got nil)",
        ),
        (
            "return P(function() return struct.pack('ii', 1) end)",
            "ERR:user_script:1: bad argument #3 to 'pack' (number expected, got nil)",
        ),
        (
            "return P(function() return struct.pack('i', 'x') end)",
            "ERR:user_script:1: bad argument #2 to 'pack' (number expected, got string)",
        ),
        (
            "return P(function() return struct.pack('d', {}) end)",
            "ERR:user_script:1: bad argument #2 to 'pack' (number expected, got table)",
        ),
        (
            "return P(function() return struct.pack('f', nil) end)",
            "ERR:user_script:1: bad argument #2 to 'pack' (number expected, got nil)",
        ),
        (
            "return P(function() return struct.pack('c', {}) end)",
            "ERR:user_script:1: bad argument #2 to 'pack' (string expected, got table)",
        ),
        (
            "return P(function() return struct.pack('c') end)",
            "ERR:user_script:1: bad argument #2 to 'pack' (string expected, got nil)",
        ),
        (
            "return P(function() return struct.pack('c5', 'abc') end)",
            "ERR:user_script:1: bad argument #3 to 'pack' (string too short)",
        ),
        (
            "return P(function() return struct.pack('bc5', 1, 'abc') end)",
            "ERR:user_script:1: bad argument #4 to 'pack' (string too short)",
        ),
        (
            "return P(function() return struct.pack('s') end)",
            "ERR:user_script:1: bad argument #2 to 'pack' (string expected, got nil)",
        ),
        (
            "return P(function() return struct.pack('i33', 1) end)",
            "ERR:user_script:1: integral size 33 is larger than limit of 32",
        ),
        (
            "return P(function() return struct.pack('i40') end)",
            "ERR:user_script:1: integral size 40 is larger than limit of 32",
        ),
        (
            "return P(function() return struct.pack('I99999999999') end)",
            "ERR:user_script:1: integral size overflow",
        ),
        (
            "return P(function() return struct.pack('c2147483648', 'a') end)",
            "ERR:user_script:1: integral size overflow",
        ),
        (
            "return P(function() return struct.pack('c2147483647', 'a') end)",
            "ERR:user_script:1: bad argument #3 to 'pack' (string too short)",
        ),
        (
            "return P(function() return struct.pack('!3') end)",
            "ERR:user_script:1: alignment 3 is not a power of 2",
        ),
        (
            "return P(function() return struct.pack('!0') end)",
            "ERR:user_script:1: alignment 0 is not a power of 2",
        ),
        ("return P(function() return struct.pack('!') end)", "\"\""),
        (
            "return P(function() return struct.pack('=') end)",
            "ERR:user_script:1: bad argument #1 to 'pack' (invalid format option '=')",
        ),
        (
            "return P(function() return struct.pack('z', 1) end)",
            "ERR:user_script:1: bad argument #1 to 'pack' (invalid format option 'z')",
        ),
        (
            "return P(function() return struct.pack('s5', 'a') end)",
            "ERR:user_script:1: bad argument #1 to 'pack' (invalid format option '5')",
        ),
        (
            "return hex(select(2, pcall(function() return struct.pack('b\\255', 1) end)))",
            "757365725f7363726970743a313a2062616420617267756d656e7420233120746f20277061636b272028696e76616c696420666f726d6174206f7074696f6e2027ff2729",
        ),
        (
            "return P(function() return struct.pack('i4!3', 1) end)",
            "ERR:user_script:1: alignment 3 is not a power of 2",
        ),
        (
            "return R(struct.unpack('b', '\\255')) .. ' ' .. R(struct.unpack('B', '\\255')) .. ' ' .. R(struct.unpack('>h', '\\255\\254')) .. ' ' .. R(struct.unpack('<H', '\\255\\254')) .. ' ' .. R(struct.unpack('bb', '\\1\\2'))",
            "-1,2 255,2 -2,3 65279,3 1,2,3",
        ),
        (
            "return R(struct.unpack('>l', '\\255\\255\\255\\255\\255\\255\\255\\255')) .. ' ' .. R(struct.unpack('>L', '\\255\\255\\255\\255\\255\\255\\255\\255')) .. ' ' .. R(struct.unpack('>L', '\\0\\0\\0\\0\\0\\0\\1\\0')) .. ' ' .. R(struct.unpack('<T', '\\1\\0\\0\\0\\0\\0\\0\\128')) .. ' ' .. R(struct.unpack('>l', '\\128\\0\\0\\0\\0\\0\\0\\0'))",
            "-1,9 1.8446744073709552e+19,9 256,9 9.2233720368547758e+18,9 -9.2233720368547758e+18,9",
        ),
        (
            "return R(struct.unpack('>i', '\\255\\255\\255\\254')) .. ' ' .. R(struct.unpack('>I', '\\255\\255\\255\\254')) .. ' ' .. R(struct.unpack('<i3', '\\255\\255\\127')) .. ' ' .. R(struct.unpack('<i3', '\\255\\255\\128')) .. ' ' .. R(struct.unpack('>I3', '\\1\\2\\3')) .. ' ' .. R(struct.unpack('>i1', '\\128'))",
            "-2,5 4294967294,5 8388607,4 -8323073,4 66051,4 -128,2",
        ),
        (
            "return R(struct.unpack('<i0', 'abc')) .. ' ' .. R(struct.unpack('<i16', string.rep('\\255', 16))) .. ' ' .. R(struct.unpack('<i12', string.rep('\\255', 12))) .. ' ' .. R(struct.unpack('<I12', string.rep('\\255', 12))) .. ' ' .. R(struct.unpack('<i9', string.rep('\\255', 9)))",
            "0,1 -1,17 -1,13 1.8446744073709552e+19,13 -1,10",
        ),
        (
            "return R(struct.unpack('<i12', string.rep('\\255', 4) .. string.rep('\\0', 8))) .. ' ' .. R(struct.unpack('<i12', string.rep('\\0', 3) .. '\\128' .. string.rep('\\0', 8))) .. ' ' .. R(struct.unpack('>i12', string.rep('\\0', 8) .. '\\128' .. string.rep('\\0', 3))) .. ' ' .. R(struct.unpack('<i16', string.rep('\\0', 7) .. '\\128' .. string.rep('\\0', 8))) .. ' ' .. R(struct.unpack('>I9', '\\1\\0\\0\\0\\0\\0\\0\\0\\2'))",
            "-1,13 -2147483648,13 -2147483648,13 -9.2233720368547758e+18,17 2,10",
        ),
        (
            "return R(struct.unpack('>f', struct.pack('>f', 0.1))) .. ' ' .. R(struct.unpack('<f', '\\0\\0\\192\\127')) .. ' ' .. R(struct.unpack('>d', struct.pack('>d', 0.1))) .. ' ' .. R(struct.unpack('d', struct.pack('d', -1/0))) .. ' ' .. R(struct.unpack('>f', '\\127\\128\\0\\0'))",
            "0.10000000149011612,5 nan,5 0.10000000000000001,9 -inf,9 inf,5",
        ),
        (
            "return R(struct.unpack('c3', 'abcdef')) .. ' ' .. R(struct.unpack('c', 'abc')) .. ' ' .. R(struct.unpack('bc0', '\\3abcdef')) .. ' ' .. R(struct.unpack('c1c0', '2xyz')) .. ' ' .. R(struct.unpack('bc0b', '\\0\\9'))",
            "\"abc\",4 \"a\",2 \"abc\",5 \"xy\",4 \"\",9,3",
        ),
        (
            "return R(struct.unpack('s', 'ab\\0cd\\0')) .. ' ' .. R(struct.unpack('ss', 'ab\\0cd\\0')) .. ' ' .. R(struct.unpack('s', '\\0')) .. ' ' .. R(struct.unpack('bsb', '\\1xy\\0\\2'))",
            "\"ab\",4 \"ab\",\"cd\",7 \"\",2 1,\"xy\",2,6",
        ),
        (
            "return R(struct.unpack('b', 'abc', 2)) .. ' ' .. R(struct.unpack('b', 'abc', 3)) .. ' ' .. R(struct.unpack('', 'abc', 10)) .. ' ' .. R(struct.unpack('', 'abc', -5)) .. ' ' .. R(struct.unpack('b', 'abc', 2.9)) .. ' ' .. R(struct.unpack('b', 'abc', '2')) .. ' ' .. R(struct.unpack('x', 'abc')) .. ' ' .. R(struct.unpack('b', 'abc', nil))",
            "98,3 99,4 10 -5 98,3 98,3 2 97,2",
        ),
        (
            "return R(struct.unpack('!bi', '\\1\\0\\0\\0\\2\\0\\0\\0')) .. ' ' .. R(struct.unpack('!bd', '\\1' .. string.rep('\\0', 7) .. struct.pack('d', 2))) .. ' ' .. R(struct.unpack('!4bi', 'x\\0\\0\\0\\3\\0\\0\\0', 1)) .. ' ' .. R(struct.unpack('!4i', '\\0\\0\\0\\0\\5\\0\\0\\0', 2)) .. ' ' .. R(struct.unpack('!4bi3', '\\1\\0\\0\\0\\2\\0\\0'))",
            "1,2,9 1,2,17 120,3,9 5,9 1,512,7",
        ),
        (
            "return R(struct.unpack('>i<i', '\\0\\0\\0\\1\\1\\0\\0\\0')) .. ' ' .. R(struct.unpack('  b  b', '\\1\\2')) .. ' ' .. R(struct.unpack('b\\0b', '\\1\\2')) .. ' ' .. R(struct.unpack('!', ''))",
            "1,1,9 1,2,3 1,2 1",
        ),
        (
            "return P(struct.unpack)",
            "ERR:bad argument #1 to '?' (string expected, got no value)",
        ),
        (
            "return P(function() return struct.unpack('zb', '\\1') end)",
            "ERR:user_script:1: bad argument #1 to 'unpack' (invalid format option 'z')",
        ),
        (
            "return P(function() return struct.unpack('b') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (string expected, got no value)",
        ),
        (
            "return P(function() return struct.unpack('b', {}) end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (string expected, got table)",
        ),
        (
            "return P(function() return struct.unpack('b', 'a', 'x') end)",
            "ERR:user_script:1: bad argument #3 to 'unpack' (number expected, got string)",
        ),
        (
            "return P(function() return struct.unpack('b', 'a', 0) end)",
            "ERR:user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)",
        ),
        (
            "return P(function() return struct.unpack('b', 'a', -1) end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('b', 'a', 0.5) end)",
            "ERR:user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)",
        ),
        (
            "return P(function() return struct.unpack('b', '') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('i', 'abc') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('b', 'a', 2) end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('!i', 'abcde', 2) end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('c4', 'abc') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('c0', 'abc') end)",
            "ERR:user_script:1: format 'c0' needs a previous size",
        ),
        (
            "return P(function() return struct.unpack('xc0', 'abc') end)",
            "ERR:user_script:1: format 'c0' needs a previous size",
        ),
        (
            "return P(function() return struct.unpack('c1c0', 'xabc') end)",
            "ERR:user_script:1: format 'c0' needs a previous size",
        ),
        (
            "return P(function() return struct.unpack('c1c0', '9abc') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('bc0', '\\255abc') end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('s', 'abc') end)",
            "ERR:user_script:1: unfinished string in data",
        ),
        (
            "return P(function() return struct.unpack('=', 'abc') end)",
            "ERR:user_script:1: bad argument #1 to 'unpack' (invalid format option '=')",
        ),
        (
            "return P(function() return struct.unpack('=', 'abc', 10) end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return P(function() return struct.unpack('!5', 'abc') end)",
            "ERR:user_script:1: alignment 5 is not a power of 2",
        ),
        (
            "return P(function() return struct.unpack('i33', 'abc') end)",
            "ERR:user_script:1: integral size 33 is larger than limit of 32",
        ),
        (
            "return P(function() return struct.unpack('i4', 'abcd', 4294967297) end)",
            "ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)",
        ),
        (
            "return R(struct.size('')) .. ' ' .. R(struct.size('b')) .. ' ' .. R(struct.size('bhlLTifdx')) .. ' ' .. R(struct.size('!bhlLTifdx')) .. ' ' .. R(struct.size('c')) .. ' ' .. R(struct.size('c10')) .. ' ' .. R(struct.size('i7')) .. ' ' .. R(struct.size('!4bic3')) .. ' ' .. R(struct.size('!4bi'))",
            "0 1 44 49 1 10 7 11 8",
        ),
        (
            "return R(struct.size('!')) .. ' ' .. R(struct.size('z')) .. ' ' .. R(struct.size('q9')) .. ' ' .. R(struct.size('  ')) .. ' ' .. R(struct.size('<>')) .. ' ' .. R(struct.size('!2bd')) .. ' ' .. R(struct.size('b\\0d')) .. ' ' .. R(struct.size('!8bi32'))",
            "0 0 0 0 0 10 1 40",
        ),
        (
            "return P(function() return struct.size() end)",
            "ERR:user_script:1: bad argument #1 to 'size' (string expected, got no value)",
        ),
        (
            "return P(function() return struct.size('s') end)",
            "ERR:user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)",
        ),
        (
            "return P(function() return struct.size('bs') end)",
            "ERR:user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)",
        ),
        (
            "return P(function() return struct.size('c0') end)",
            "ERR:user_script:1: bad argument #1 to 'size' (option 'c0' has no fixed size)",
        ),
        (
            "return P(function() return struct.size('=') end)",
            "ERR:user_script:1: bad argument #1 to 'size' (invalid format option '=')",
        ),
        (
            "return P(function() return struct.size('!6') end)",
            "ERR:user_script:1: alignment 6 is not a power of 2",
        ),
        (
            "return P(function() return struct.size('i64') end)",
            "ERR:user_script:1: integral size 64 is larger than limit of 32",
        ),
        (
            "return P(function() return struct.size('c99999999999') end)",
            "ERR:user_script:1: integral size overflow",
        ),
        (
            "return R(struct.unpack('>bhiIlfdc3s', struct.pack('>bhiIlfdc3s', -1, -300, -70000, 70000, -2^40, 0.25, 1/3, 'xyz', 'end')))",
            "-1,-300,-70000,70000,-1099511627776,0.25,0.33333333333333331,\"xyz\",\"end\",39",
        ),
        (
            "return R(struct.unpack('<!8bhbibld', struct.pack('<!8bhbibld', 1, 2, 3, 4, 5, 6, 7.5)))",
            "1,2,3,4,5,6,7.5,33",
        ),
        (
            "return P(function() local fmt = string.rep('b', 9000) return select('#', struct.unpack(fmt, string.rep('a', 9000))) end)",
            "ERR:user_script:1: stack overflow (too many results)",
        ),
        (
            "return P(function() local fmt = string.rep('b', 7000) return select('#', struct.unpack(fmt, string.rep('a', 7000))) end)",
            "7001",
        ),
        (
            "return P(function() return #struct.pack('c0c0', string.rep('x', 9000), string.rep('y', 9000)) end)",
            "18000",
        ),
        (
            "return (function() local t = {} for k in pairs(struct) do t[#t+1] = k end return table.concat(t, ' ') end)()",
            "pack size unpack",
        ),
    ];

    #[test]
    fn matches_redis() {
        check(REDIS_CASES);
    }

    #[test]
    fn c_conversions() {
        assert_eq!(c_to_u64(18446744073709551616.0), 0);
        assert_eq!(c_to_u64(9223372036854775808.0), 1 << 63);
        assert_eq!(c_to_u64(f64::NAN), 1 << 63);
        assert_eq!(c_to_u64(f64::INFINITY), 0);
        assert_eq!(c_to_i64(-1e300), i64::MIN);
        assert_eq!(c_to_u64(-1.0), u64::MAX);
    }
}
