//! The libraries Redis bundles into its Lua besides the standard ones,
//! opened into every interpreter in Redis' order: `cjson`, `struct`,
//! `cmsgpack`, `bit` (each in its own module, written in Rust).
#![allow(unsafe_code)]

use mlua_sys as ffi;

/// Opens the bundled libraries as globals.
///
/// # Safety
/// `l` is a valid state being set up (see `lua::Vm::new`).
pub unsafe fn open_all(l: *mut ffi::lua_State) {
    // SAFETY: each `open` leaves the stack as it found it.
    unsafe {
        super::cjson::open(l);
        super::structlib::open(l);
        super::cmsgpack::open(l);
        super::bit::open(l);
    }
}

/// `luaL_register(l, name, fns)`: the global table `name` (and the
/// registry's loaded-module entry) with `fns` in the given order (Redis'
/// order, so `pairs` walks them alike), leaving the stack as it found it.
///
/// # Safety
/// `l` is a valid Lua 5.1 state, not inside a C function that holds Rust
/// values with destructors (a memory error raises).
pub unsafe fn register(
    l: *mut ffi::lua_State,
    name: &'static std::ffi::CStr,
    fns: &[(&'static std::ffi::CStr, ffi::lua_CFunction)],
) {
    let Some(&(_, any)) = fns.first() else {
        return;
    };
    let mut regs: Vec<ffi::luaL_Reg> = fns
        .iter()
        .map(|&(n, func)| ffi::luaL_Reg {
            name: n.as_ptr(),
            func,
        })
        .collect();
    // Terminator: luaL_register stops at the null name and never reads its
    // function.
    regs.push(ffi::luaL_Reg {
        name: std::ptr::null(),
        func: any,
    });
    // SAFETY: `regs` is null-terminated and outlives the call;
    // luaL_register pushes exactly one table, popped again.
    unsafe {
        ffi::luaL_register(l, name.as_ptr(), regs.as_ptr());
        ffi::lua_pop(l, 1);
    }
}

/// `(int64_t)d` as x86-64 computes it (Redis converts Lua numbers this way
/// in its replies and libraries): truncation; `i64::MIN` when out of range
/// or NaN.
pub fn c_to_i64(d: f64) -> i64 {
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        d as i64
    } else {
        i64::MIN
    }
}

/// Wraps an inner function `$inner(l) -> Result<c_int, Error>` of a bundled
/// library as a Lua C function: catches panics (as the calling module's
/// `Error::Panic`), and raises the module's error through its `raise` after
/// everything Rust-side has been dropped (Lua errors are longjmps).
macro_rules! lua_fn {
    ($name:ident, $inner:ident) => {
        unsafe extern "C-unwind" fn $name(l: *mut ffi::lua_State) -> c_int {
            // SAFETY: Lua calls this with a valid state; the inner function
            // only uses the stack slots Lua gives a C function.
            let res = catch_unwind(AssertUnwindSafe(|| unsafe { $inner(l) }));
            let err = match res {
                Ok(Ok(n)) => return n,
                Ok(Err(e)) => e,
                Err(payload) => {
                    drop(payload);
                    Error::Panic
                }
            };
            // SAFETY: nothing with a destructor is alive here any more.
            unsafe { raise(l, err) }
        }
    };
}
pub(crate) use lua_fn;
