//! The `bit` library that EVAL scripts see: tobit, tohex, bnot, band, bor,
//! bxor, lshift, rshift, arshift, rol, ror, bswap on 32-bit integers.
//! Written for this project in Rust; it mirrors the observable behaviour
//! (results, number normalisation, error messages) of LuaBitOp 1.0.2 as
//! bundled in redis-server 7.0.15, with the later upstream fix for
//! `bit.tohex(x, -2^31)` (treated as -(2^31-1), what 7.0.15's build printed
//! too). No code or text is taken from that project.
//!
//! Numbers are Lua doubles. An argument becomes 32 bits the LuaBitOp way:
//! add 2^52+2^51 and keep the low 32 bits of the sum's IEEE-754 pattern,
//! which rounds to nearest (ties to even) and wraps modulo 2^32 for
//! magnitudes below 2^51. Results are pushed back as signed 32-bit values.
//!
//! Lua errors are longjmps: every C function below does its work in an inner
//! function returning `Result` and raises only after that returned, with no
//! Rust value that owns a destructor alive in any frame.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mlua_sys as ffi;

use super::libs::lua_fn;

/// Reasons a bit function fails; raised as a Lua error by `raise`.
#[derive(Clone, Copy, Debug)]
enum Error {
    /// `luaL_typerror(narg, "number")`.
    NotANumber(c_int),
    /// A Rust panic was caught (a bug); never unwinds into C.
    Panic,
}

/// Raises `e` as a Lua error. Never returns.
///
/// # Safety
/// `l` is the running state of a C function called by Lua, and no Rust value
/// with a destructor may be alive in the calling frames.
unsafe fn raise(l: *mut ffi::lua_State, e: Error) -> c_int {
    // SAFETY: caller contract; the messages are NUL-terminated literals.
    unsafe {
        match e {
            Error::NotANumber(narg) => ffi::luaL_typerror(l, narg, c"number".as_ptr()),
            Error::Panic => {
                ffi::luaL_error(l, c"%s".as_ptr(), c"internal error in bit library".as_ptr())
            }
        }
    }
}

/// The LuaBitOp normalisation of a double to 32 bits.
fn norm(n: f64) -> u32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32
}

/// Argument `idx` as 32 bits. Numeric strings convert like `lua_tonumber`;
/// anything else is a "number expected" error.
unsafe fn barg(l: *mut ffi::lua_State, idx: c_int) -> Result<u32, Error> {
    // SAFETY: `l` is valid; any index is acceptable to these calls.
    let (n, isnum) = unsafe { (ffi::lua_tonumber(l, idx), ffi::lua_isnumber(l, idx) != 0) };
    let b = norm(n);
    if b == 0 && !isnum {
        return Err(Error::NotANumber(idx));
    }
    Ok(b)
}

unsafe fn ret(l: *mut ffi::lua_State, b: u32) -> Result<c_int, Error> {
    // SAFETY: a C function always has room for one result.
    unsafe { ffi::lua_pushnumber(l, b as i32 as f64) };
    Ok(1)
}

unsafe fn tobit(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: called from a Lua C function with state `l`.
    unsafe { ret(l, barg(l, 1)?) }
}

unsafe fn bnot(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { ret(l, !barg(l, 1)?) }
}

/// band/bor/bxor: argument 1 first, then the others from the last down
/// (so the highest bad argument is the one reported).
unsafe fn fold(l: *mut ffi::lua_State, op: fn(u32, u32) -> u32) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe {
        let mut b = barg(l, 1)?;
        let mut i = ffi::lua_gettop(l);
        while i > 1 {
            b = op(b, barg(l, i)?);
            i -= 1;
        }
        ret(l, b)
    }
}

unsafe fn band(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { fold(l, |a, b| a & b) }
}

unsafe fn bor(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { fold(l, |a, b| a | b) }
}

unsafe fn bxor(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { fold(l, |a, b| a ^ b) }
}

/// Shifts and rotates: the count is taken modulo 32.
unsafe fn shift(l: *mut ffi::lua_State, op: fn(u32, u32) -> u32) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe {
        let b = barg(l, 1)?;
        let n = barg(l, 2)? & 31;
        ret(l, op(b, n))
    }
}

unsafe fn lshift(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { shift(l, |b, n| b << n) }
}

unsafe fn rshift(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { shift(l, |b, n| b >> n) }
}

unsafe fn arshift(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { shift(l, |b, n| ((b as i32) >> n) as u32) }
}

unsafe fn rol(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { shift(l, u32::rotate_left) }
}

unsafe fn ror(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { shift(l, u32::rotate_right) }
}

unsafe fn bswap(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    unsafe { ret(l, barg(l, 1)?.swap_bytes()) }
}

/// tohex(x [, n]): n digits (default 8, at most 8), upper case when n < 0.
unsafe fn tohex(l: *mut ffi::lua_State) -> Result<c_int, Error> {
    // SAFETY: as `tobit`.
    let b = unsafe { barg(l, 1)? };
    // SAFETY: as `tobit`.
    let n = if unsafe { ffi::lua_isnone(l, 2) } != 0 {
        8
    } else {
        // SAFETY: as `tobit`.
        unsafe { barg(l, 2)? as i32 }
    };
    let (count, digits): (usize, &[u8; 16]) = if n < 0 {
        (n.unsigned_abs().min(8) as usize, b"0123456789ABCDEF")
    } else {
        (n.min(8) as usize, b"0123456789abcdef")
    };
    let mut buf = [0u8; 8];
    let mut v = b;
    for slot in buf[..count].iter_mut().rev() {
        *slot = digits[(v & 15) as usize];
        v >>= 4;
    }
    // SAFETY: `buf` outlives the call, which copies `count` bytes.
    unsafe { ffi::lua_pushlstring(l, buf.as_ptr().cast(), count) };
    Ok(1)
}

lua_fn!(l_tobit, tobit);
lua_fn!(l_bnot, bnot);
lua_fn!(l_band, band);
lua_fn!(l_bor, bor);
lua_fn!(l_bxor, bxor);
lua_fn!(l_lshift, lshift);
lua_fn!(l_rshift, rshift);
lua_fn!(l_arshift, arshift);
lua_fn!(l_rol, rol);
lua_fn!(l_ror, ror);
lua_fn!(l_bswap, bswap);
lua_fn!(l_tohex, tohex);

/// Creates the `bit` table (same field order and size hint as Redis, so
/// `pairs(bit)` walks it in the same order), sets the global `bit` and
/// `package.loaded`-style registry entry like `luaL_register`, and leaves
/// the stack as it found it.
///
/// # Safety
/// `l` is a valid Lua 5.1 state, not inside a C function that holds Rust
/// values with destructors (a memory error raises).
pub unsafe fn open(l: *mut ffi::lua_State) {
    // SAFETY: as this function's contract.
    unsafe {
        super::libs::register(
            l,
            c"bit",
            &[
                (c"tobit", l_tobit),
                (c"bnot", l_bnot),
                (c"band", l_band),
                (c"bor", l_bor),
                (c"bxor", l_bxor),
                (c"lshift", l_lshift),
                (c"rshift", l_rshift),
                (c"arshift", l_arshift),
                (c"rol", l_rol),
                (c"ror", l_ror),
                (c"bswap", l_bswap),
                (c"tohex", l_tohex),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::script::libtest::State;

    fn check(cases: &[(&str, &str)]) {
        crate::script::libtest::check(open, cases)
    }

    /// Snippets and the results redis-server 7.0.15 gave for them (EVAL,
    /// with PRELUDE prepended).
    const REDIS_CASES: &[(&str, &str)] = &[
        (
            "return R(bit.tobit(0), bit.tobit(1), bit.tobit(-1), bit.tobit(2^31), bit.tobit(2^31-1), bit.tobit(-2^31), bit.tobit(-2^31-1))",
            "0,1,-1,-2147483648,2147483647,-2147483648,2147483647",
        ),
        (
            "return R(bit.tobit(2^32), bit.tobit(2^32+1), bit.tobit(2^32-1), bit.tobit(-2^32), bit.tobit(2^40+3), bit.tobit(-(2^40)-3))",
            "0,1,-1,0,3,-3",
        ),
        (
            "return R(bit.tobit(0.5), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-0.5), bit.tobit(-1.5), bit.tobit(-2.5), bit.tobit(0.49999999999999994), bit.tobit(3.7), bit.tobit(-3.7))",
            "0,2,2,0,-2,-2,0,4,-4",
        ),
        (
            "return R(bit.tobit(2^51), bit.tobit(2^51+1), bit.tobit(2^52), bit.tobit(2^52+1), bit.tobit(2^53), bit.tobit(2^53+2), bit.tobit(-2^51), bit.tobit(-2^52), bit.tobit(2^60), bit.tobit(-2^60))",
            "0,0,0,0,0,1,0,0,0,0",
        ),
        (
            "return R(bit.tobit(1e15), bit.tobit(1e16), bit.tobit(1e17), bit.tobit(1e300), bit.tobit(-1e300), bit.tobit(1/0), bit.tobit(-1/0), bit.tobit(0/0), bit.tobit(-0.0), bit.tobit(5e-324))",
            "-1530494976,937459712,-2049400832,-2013235812,-2013235812,0,0,0,0,0",
        ),
        (
            "return R(bit.tobit('12'), bit.tobit(' 0x10 '), bit.tobit('1e3'), bit.tobit('-7'), bit.tobit('4294967297'))",
            "12,16,1000,-7,1",
        ),
        (
            "return P(bit.tobit)",
            "ERR:bad argument #1 to '?' (number expected, got no value)",
        ),
        (
            "return P(bit.tobit, nil)",
            "ERR:bad argument #1 to '?' (number expected, got nil)",
        ),
        (
            "return P(bit.tobit, 'abc')",
            "ERR:bad argument #1 to '?' (number expected, got string)",
        ),
        (
            "return P(bit.tobit, {})",
            "ERR:bad argument #1 to '?' (number expected, got table)",
        ),
        (
            "return P(bit.tobit, true)",
            "ERR:bad argument #1 to '?' (number expected, got boolean)",
        ),
        (
            "return P(function() return bit.tobit('x') end)",
            "ERR:user_script:1: bad argument #1 to 'tobit' (number expected, got string)",
        ),
        (
            "return P(function() return bit.bnot() end)",
            "ERR:user_script:1: bad argument #1 to 'bnot' (number expected, got no value)",
        ),
        (
            "return P(function() return bit.band(1, 2, 'z') end)",
            "ERR:user_script:1: bad argument #3 to 'band' (number expected, got string)",
        ),
        (
            "return P(function() return bit.band(1, 'y', 'z') end)",
            "ERR:user_script:1: bad argument #3 to 'band' (number expected, got string)",
        ),
        (
            "return P(function() return bit.bor('w', 'y', 'z') end)",
            "ERR:user_script:1: bad argument #1 to 'bor' (number expected, got string)",
        ),
        (
            "return P(function() return bit.lshift(1) end)",
            "ERR:user_script:1: bad argument #2 to 'lshift' (number expected, got no value)",
        ),
        (
            "return P(function() return bit.rol(1, {}) end)",
            "ERR:user_script:1: bad argument #2 to 'rol' (number expected, got table)",
        ),
        (
            "return P(function() return bit.tohex(1, 'q') end)",
            "ERR:user_script:1: bad argument #2 to 'tohex' (number expected, got string)",
        ),
        (
            "return P(function() return bit.tohex(1, nil) end)",
            "ERR:user_script:1: bad argument #2 to 'tohex' (number expected, got nil)",
        ),
        (
            "return P(function() return bit.bswap(function() end) end)",
            "ERR:user_script:1: bad argument #1 to 'bswap' (number expected, got function)",
        ),
        (
            "return P(function() return bit.arshift(nil, 1) end)",
            "ERR:user_script:1: bad argument #1 to 'arshift' (number expected, got nil)",
        ),
        (
            "return R(bit.bnot(0), bit.bnot(-1), bit.bnot(1), bit.bnot(2^31), bit.bnot(2^32), bit.bnot(0x12345678), bit.bnot(1.5))",
            "-1,0,-2,2147483647,-1,-305419897,-3",
        ),
        (
            "return R(bit.band(0xff, 0x0f0f), bit.band(-1, 2^31), bit.band(7), bit.band(0xffffffff, 0xf0f0f0f0, 0xff00ff00), bit.band(1.5, 3))",
            "15,-2147483648,7,-268374016,2",
        ),
        (
            "return R(bit.bor(1, 2, 4, 8), bit.bor(0x80000000), bit.bor(2^31, 1), bit.bor(-1, 0), bit.bor(0, 0, 0, 0, 0))",
            "15,-2147483648,-2147483647,-1,0",
        ),
        (
            "return R(bit.bxor(5, 3), bit.bxor(-1, 0x0f), bit.bxor(1, 1, 1), bit.bxor(0x12345678, 0xffffffff), bit.bxor(2^32+1, 1))",
            "6,-16,1,-305419897,0",
        ),
        (
            "return R(bit.lshift(1, 0), bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, 33), bit.lshift(1, -1), bit.lshift(0xff, 28), bit.lshift(-1, 4), bit.lshift(3, 30.6))",
            "1,-2147483648,1,2,-2147483648,-268435456,-16,-2147483648",
        ),
        (
            "return R(bit.rshift(-1, 0), bit.rshift(-1, 1), bit.rshift(-1, 31), bit.rshift(-1, 32), bit.rshift(2^31, 31), bit.rshift(0x12345678, 8), bit.rshift(256, -1))",
            "-1,2147483647,1,-1,1,1193046,0",
        ),
        (
            "return R(bit.arshift(-1, 1), bit.arshift(-256, 4), bit.arshift(2^31, 31), bit.arshift(0x7fffffff, 30), bit.arshift(-8, 2), bit.arshift(-8, 33), bit.arshift(1, 0))",
            "-1,-16,-1,1,-2,-4,1",
        ),
        (
            "return R(bit.rol(1, 0), bit.rol(1, 31), bit.rol(1, 32), bit.rol(0x12345678, 4), bit.rol(0x12345678, 28), bit.rol(-1, 7), bit.rol(2^31, 1), bit.rol(0x12345678, -4))",
            "1,-2147483648,1,591751041,-2128394905,-1,1,-2128394905",
        ),
        (
            "return R(bit.ror(1, 0), bit.ror(1, 1), bit.ror(1, 32), bit.ror(0x12345678, 4), bit.ror(0x12345678, 28), bit.ror(-2, 1), bit.ror(0x12345678, -4))",
            "1,-2147483648,1,-2128394905,591751041,2147483647,591751041",
        ),
        (
            "return R(bit.bswap(0x12345678), bit.bswap(0x78563412), bit.bswap(1), bit.bswap(-1), bit.bswap(0xff), bit.bswap(2^32+0x0102))",
            "2018915346,305419896,16777216,-1,-16777216,33619968",
        ),
        (
            "return R(bit.tohex(0), bit.tohex(1), bit.tohex(-1), bit.tohex(65535, -4), bit.tohex(65535, 4), bit.tohex(0x12345678), bit.tohex(0x12345678, 2), bit.tohex(0xabcdef, -8), bit.tohex(0xabcdef, 10), bit.tohex(0xabcdef, -10))",
            "\"00000000\",\"00000001\",\"ffffffff\",\"FFFF\",\"ffff\",\"12345678\",\"78\",\"00ABCDEF\",\"00abcdef\",\"00ABCDEF\"",
        ),
        (
            "return R(bit.tohex(255, 0), bit.tohex(255, 1), bit.tohex(255, -1), bit.tohex(2^32-1, 3), bit.tohex(1.5), bit.tohex(2^31), bit.tohex(0xabcdef, 2^32+2), bit.tohex(0xabcdef, -2^31), bit.tohex(0xabcdef, 2^31), bit.tohex(0xabcdef, -2^31+1), bit.tohex(0xabcdef, '3'))",
            "\"\",\"f\",\"F\",\"fff\",\"00000002\",\"80000000\",\"ef\",\"00ABCDEF\",\"00ABCDEF\",\"00ABCDEF\",\"def\"",
        ),
        (
            "return R(bit.tohex(-1, 7.5), bit.tohex(0xfedcba98, -7.5), bit.tohex(12, 2^32-1), bit.tohex(12, -2^32+3))",
            "\"ffffffff\",\"FEDCBA98\",\"C\",\"00c\"",
        ),
        (
            "return R(type(bit.tobit(1)), math.type == nil, bit.tobit(1) == 1)",
            "\"number\",true,true",
        ),
    ];

    #[test]
    fn matches_redis() {
        check(REDIS_CASES);
    }

    #[test]
    fn norm_rounds_and_wraps() {
        assert_eq!(norm(1.5), 2);
        assert_eq!(norm(2.5), 2);
        assert_eq!(norm(-1.0), u32::MAX);
        assert_eq!(norm(4294967296.0 + 7.0), 7);
    }

    #[test]
    fn table_and_stack() {
        let st = State::new(open);
        assert_eq!(
            st.eval(
                "local t = {} for k in pairs(bit) do t[#t+1] = k end return table.concat(t, ' ')"
            ),
            "band rshift bor bnot bswap bxor tobit ror lshift tohex rol arshift"
        );
    }
}
