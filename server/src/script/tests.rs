//! Scripting through the gate (unit level; byte-for-byte comparisons with
//! redis-server are in tests/tests/scripting.rs).

use crate::testkit::Harness;

#[test]
fn eval_returns_converted_values() {
    let mut h = Harness::new();
    assert_eq!(h.run("EVAL \"return 1\" 0"), ":1\r\n");
    assert_eq!(
        h.run("EVAL \"return {1,2,3.7,'x',true,false,nil,5}\" 0"),
        "*6\r\n:1\r\n:2\r\n:3\r\n$1\r\nx\r\n:1\r\n$-1\r\n"
    );
    assert_eq!(
        h.run("EVAL \"return redis.call('set', KEYS[1], ARGV[1])\" 1 k v"),
        "+OK\r\n"
    );
    assert_eq!(h.run("GET k"), "$1\r\nv\r\n");
}

#[test]
fn effects_propagate_as_one_block() {
    let mut h = Harness::new();
    h.capture();
    h.run("FLUSHALL");
    // Two writes: one MULTI/EXEC block of the effects, never the EVAL.
    h.run("EVAL \"redis.call('set', KEYS[1], 'a'); redis.call('incr', KEYS[2]); return 1\" 2 k n");
    // One write: just that write.
    h.run("EVAL \"return redis.call('set', KEYS[1], 'b')\" 1 k");
    // Reads only: nothing.
    h.run("EVAL \"return redis.call('get', KEYS[1])\" 1 k");
    // Time-dependent commands are propagated as their effects.
    h.run("EVAL \"return redis.call('expire', KEYS[1], 100)\" 1 k");
    // set_repl(REPL_NONE): the write is not propagated.
    h.run("EVAL \"redis.set_repl(redis.REPL_NONE); redis.call('set', 'quiet', '1'); redis.set_repl(redis.REPL_ALL); return redis.call('set', 'loud', '1')\" 0");
    assert_eq!(
        h.propagated(),
        [
            "SELECT 0",
            "FLUSHALL",
            "MULTI",
            "set k a",
            "incr n",
            "EXEC",
            "set k b",
            "PEXPIREAT k 1700000100000",
            "set loud 1",
        ]
    );
    assert_eq!(h.run("GET quiet"), "$1\r\n1\r\n");
}

#[test]
fn script_select_stays_inside_the_script() {
    let mut h = Harness::new();
    h.capture();
    h.run("EVAL \"redis.call('select', 3); return redis.call('set', 'x', 'y')\" 0");
    assert_eq!(h.run("GET x"), "$-1\r\n");
    assert_eq!(h.propagated(), ["SELECT 3", "set x y"]);
}

#[test]
fn a_failing_script_keeps_what_it_wrote() {
    // Redis scripts are not rolled back: writes before an error stay (and
    // are propagated).
    let mut h = Harness::new();
    h.capture();
    let r = h.run("EVAL \"redis.call('set', 'a', '1'); redis.call('incr', 'a'); redis.call('lpush', 'a', 'x')\" 0");
    assert!(r.starts_with("-WRONGTYPE"), "{r}");
    assert_eq!(h.run("GET a"), "$1\r\n2\r\n");
    assert_eq!(
        h.propagated(),
        ["SELECT 0", "MULTI", "set a 1", "incr a", "EXEC"]
    );
}

/// A script whose keys are in flight is refused whole, and inside
/// SLOTSMGRT-EXEC-WRAPPER that is code 1 (the proxy retries on the new
/// owner), as for any write; an undeclared key in flight refuses the script
/// before its first write.
#[test]
fn keys_in_flight_refuse_the_script_whole() {
    use crate::migrate::KeySet;
    let mut t = Harness::new();
    t.capture();
    assert_eq!(t.run("SET k 1"), "+OK\r\n");
    assert_eq!(t.run("SET other 1"), "+OK\r\n");
    let guard = t.srv.begin_flight(0, KeySet::new([b"k".to_vec()]));
    let incr = "\"redis.call('incr', 'other'); return redis.call('incr', KEYS[1])\"";
    assert_eq!(
        t.run(&format!("EVAL {incr} 1 k")),
        "-ERR the specified key is being migrated\r\n"
    );
    assert_eq!(
        t.run(&format!("SLOTSMGRT-EXEC-WRAPPER k EVAL {incr} 1 k")),
        "*2\r\n:1\r\n-ERR the specified key is being migrated\r\n"
    );
    // Undeclared, before any write: refused whole.
    assert_eq!(
        t.run("EVAL \"redis.call('incr', 'k'); return 1\" 0"),
        "-ERR the specified key is being migrated\r\n"
    );
    // Undeclared, after a write: that command fails inside the script.
    let r = t.run("EVAL \"redis.call('incr', 'other'); return redis.call('incr', 'k')\" 0");
    assert!(
        r.starts_with("-ERR the specified key is being migrated script: "),
        "{r}"
    );
    // Read-only scripts may read keys in flight.
    assert_eq!(
        t.run("EVAL_RO \"return redis.call('get', KEYS[1])\" 1 k"),
        "$1\r\n1\r\n"
    );
    drop(guard);
    assert_eq!(t.run(&format!("EVAL {incr} 1 k")), ":2\r\n");
    assert_eq!(t.run("GET other"), "$1\r\n3\r\n");
}

/// An undeclared key whose slot is below the script's held slots and
/// locked elsewhere: before any write the script restarts under every slot
/// lock (its effects happen once); after a write it waits for the slot.
#[test]
fn contended_undeclared_slot_restarts_or_waits() {
    use std::time::{Duration, Instant};
    let mut h = Harness::new();
    h.capture();
    h.run("FLUSHALL");
    // "z" is in slot 943 (declared), "k1" in slot 169 (undeclared).
    for (script, expect) in [
        // Reads k1 first: restarted whole, one INCR of z.
        (
            "local v = redis.call('get', 'k1') return redis.call('incr', KEYS[1])",
            ":1\r\n",
        ),
        // Writes z first, then needs k1: waits for it.
        (
            "redis.call('incr', KEYS[1]) return redis.call('incr', 'k1')",
            ":1\r\n",
        ),
    ] {
        let srv = h.srv.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let g = srv.ks.lock_slot_table(0, 169);
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            drop(g);
        });
        rx.recv().unwrap();
        let t0 = Instant::now();
        let r = h.run(&format!("EVAL \"{script}\" 1 z"));
        assert!(t0.elapsed() >= Duration::from_millis(150), "did not wait");
        holder.join().unwrap();
        assert!(r == expect || r == ":2\r\n", "{r}");
    }
    assert_eq!(h.run("GET z"), "$1\r\n2\r\n");
    assert_eq!(h.run("GET k1"), "$1\r\n1\r\n");
    assert_eq!(
        h.propagated(),
        [
            "SELECT 0", "FLUSHALL", "incr z", "MULTI", "incr z", "incr k1", "EXEC"
        ]
    );
}

/// A script inside MULTI reaching every slot (KEYS, INFO …) runs under
/// EXEC's lock set instead of restarting (which would lock what the thread
/// holds already).
#[test]
fn all_slot_commands_inside_exec_do_not_hang() {
    let mut h = Harness::new();
    h.run("SET k 1");
    h.run("MULTI");
    h.run("EVAL \"return redis.call('keys', '*')\" 0");
    h.run("EVAL \"redis.call('incr', 'k') return redis.call('dbsize')\" 0");
    assert_eq!(h.run("EXEC"), "*2\r\n*1\r\n$1\r\nk\r\n:1\r\n");
    assert_eq!(h.run("GET k"), "$1\r\n2\r\n");
}

/// An abort raised inside a coroutine is not swallowed by
/// `coroutine.resume`: the run restarts once, its write happens once.
#[test]
fn coroutines_cannot_swallow_an_abort() {
    let mut h = Harness::new();
    h.capture();
    h.run("FLUSHALL");
    let r = h.run("EVAL \"coroutine.resume(coroutine.create(function() redis.call('keys', '*') end)); return redis.call('incr', KEYS[1])\" 1 c");
    assert_eq!(r, ":1\r\n");
    assert_eq!(h.run("GET c"), "$1\r\n1\r\n");
    assert_eq!(h.propagated(), ["SELECT 0", "FLUSHALL", "incr c"]);
}

/// Precompiled chunks never load (Redis parses source only).
#[test]
fn binary_chunks_are_refused() {
    let mut h = Harness::new();
    let r = h.run_args(&[b"EVAL", b"\x1bLua\x51\x00", b"0"]);
    assert_eq!(
        r,
        b"-ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'\r\n"
    );
    assert_eq!(
        h.run("EVAL \"return {loadstring(string.dump(function() return 1 end))}\" 0"),
        "*0\r\n"
    );
    assert_eq!(
        h.run("EVAL \"local s = string.dump(function() return 1 end) local f = load(function() local x = s s = nil return x end) return f == nil\" 0"),
        ":1\r\n"
    );
    assert_eq!(
        h.run("EVAL \"return load(function() return nil end) ~= nil\" 0"),
        ":1\r\n"
    );
    assert_eq!(
        h.run("EVAL \"return loadstring('return 7')()\" 0"),
        ":7\r\n"
    );
}

/// Nothing a script does to KEYS or ARGV reaches the next run.
#[test]
fn keys_and_argv_do_not_leak_between_runs() {
    let mut h = Harness::new();
    assert_eq!(h.run("EVAL \"return #KEYS\" 3 a b c"), ":3\r\n");
    assert_eq!(
        h.run("EVAL \"return {#KEYS, KEYS[2]}\" 1 a"),
        "*1\r\n:1\r\n"
    );
    h.run("EVAL \"setmetatable(ARGV, {__index = function() return 'x' end}) return 1\" 0 v");
    assert_eq!(h.run("EVAL \"return ARGV[5]\" 0 v"), "$-1\r\n");
    h.run("EVAL \"KEYS.h = 1 KEYS[7] = 'z' return 1\" 1 k");
    assert_eq!(
        h.run("EVAL \"return {KEYS.h, KEYS[7], #KEYS}\" 1 k"),
        "*0\r\n"
    );
    assert_eq!(h.run("EVAL \"return #KEYS\" 2 k l"), ":2\r\n");
    h.run("EVAL \"KEYS[1] = nil return 1\" 2 k l");
    assert_eq!(
        h.run("EVAL \"return KEYS\" 2 m n"),
        "*2\r\n$1\r\nm\r\n$1\r\nn\r\n"
    );
    h.run("EVAL \"table.insert(ARGV, 'extra') return 1\" 0 a");
    assert_eq!(h.run("EVAL \"return ARGV\" 0 b"), "*1\r\n$1\r\nb\r\n");
}
