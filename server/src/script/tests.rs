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
