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
