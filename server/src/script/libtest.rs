//! Test harness of the bundled Lua libraries (tests only): a state with
//! the standard libraries and one library, snippets run after a prelude of
//! helpers (the same text was prepended when their expected results were
//! recorded from redis-server 7.0.15).
#![allow(unsafe_code)]

use mlua_sys as ffi;

/// Helpers shared by the test snippets; the same text was prepended to
/// each snippet when the expected values were taken from redis-server.
pub const PRELUDE: &str = concat!(
    "local function hex(s) return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end)) end ",
    "local ser ",
    "ser = function(v) local t = type(v) if t == 'number' then return string.format('%.17g', v) elseif t == 'string' then return string.format('%q', v) elseif t == 'table' then local ks = {} for k in pairs(v) do ks[#ks+1] = k end table.sort(ks, function(a, b) return ser(a) < ser(b) end) local o = {} for i = 1, #ks do o[i] = ser(ks[i]) .. '=' .. ser(v[ks[i]]) end return '{' .. table.concat(o, ',') .. '}' else return tostring(v) end end ",
    "local function R(...) local o = {} for i = 1, select('#', ...) do o[i] = ser((select(i, ...))) end return table.concat(o, ',') end ",
    "local function P2(ok, ...) if ok then return R(...) end return 'ERR:' .. tostring((...)) end ",
    "local function P(f, ...) return P2(pcall(f, ...)) end",
);

/// A Lua state with the standard libraries and one bundled library
/// (closed on drop).
pub struct State(*mut ffi::lua_State);

impl State {
    /// A state with the standard libraries and `open`'s library, checking
    /// that `open` keeps the stack as it found it.
    pub fn new(open: unsafe fn(*mut ffi::lua_State)) -> State {
        // SAFETY: a fresh state, used by this thread only.
        unsafe {
            let l = ffi::luaL_newstate();
            assert!(!l.is_null());
            ffi::luaL_openlibs(l);
            ffi::lua_pushinteger(l, 7);
            open(l);
            assert_eq!(ffi::lua_gettop(l), 1);
            ffi::lua_settop(l, 0);
            State(l)
        }
    }

    /// Runs `body` after the prelude, as chunk "@user_script", and
    /// returns its (string) result or "LUAERR:" and the error.
    pub fn eval(&self, body: &str) -> String {
        let chunk = format!("{PRELUDE} {body}");
        let l = self.0;
        // SAFETY: `l` is valid; errors are caught by lua_pcall.
        unsafe {
            let mut rc = ffi::luaL_loadbuffer(
                l,
                chunk.as_ptr().cast(),
                chunk.len(),
                c"@user_script".as_ptr(),
            );
            if rc == 0 {
                rc = ffi::lua_pcall(l, 0, 1, 0);
            }
            let mut len = 0usize;
            let p = ffi::lua_tolstring(l, -1, &mut len);
            let s = if p.is_null() {
                "<non-string>".to_string()
            } else {
                String::from_utf8_lossy(std::slice::from_raw_parts(p.cast::<u8>(), len))
                    .into_owned()
            };
            ffi::lua_settop(l, 0);
            if rc != 0 { format!("LUAERR:{s}") } else { s }
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: created by luaL_newstate, closed once.
        unsafe { ffi::lua_close(self.0) }
    }
}

/// Runs every case on one state; all mismatches reported together.
pub fn check(open: unsafe fn(*mut ffi::lua_State), cases: &[(&str, &str)]) {
    let st = State::new(open);
    let mut bad = Vec::new();
    for (body, want) in cases {
        let got = st.eval(body);
        if got != *want {
            bad.push(format!("{body}\n   got:  {got}\n   want: {want}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} cases differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}
