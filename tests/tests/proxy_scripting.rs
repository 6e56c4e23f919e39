//! Lua scripts through codis-proxy (issue 15): EVAL/EVALSHA (and the _RO
//! forms) routed by their first key's slot, numkeys 0 to slot 0's owner as
//! Codis does, CROSSSLOT for declared keys of different slots; SCRIPT LOAD,
//! EXISTS, FLUSH and KILL sent to every server and merged, so EVALSHA works
//! whichever server owns the key.

use tests::proxy::{Proxy, split_slots};
use tests::{Server, assert_reply};

const INCR_BY: &str = "return redis.call('incrby', KEYS[1], ARGV[1])";

#[test]
fn evalsha_works_on_every_server() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut c = p.conn();
    let sha = c.send(&["SCRIPT", "LOAD", INCR_BY]);
    assert!(
        sha.starts_with(b"$40\r\n"),
        "{}",
        String::from_utf8_lossy(&sha)
    );
    let sha = String::from_utf8_lossy(&sha[5..45]).into_owned();
    // Keys on both servers (a, b, c: slots 579, 1017, 879; k1, k2, k3:
    // 169, 275, 389), checked on each server directly afterwards.
    let keys = ["a", "b", "c", "k1", "k2", "k3"];
    for k in keys {
        assert_reply(&c.send(&["EVALSHA", &sha, "1", k, "5"]), b":5\r\n");
        assert_reply(
            &c.send(&["EVALSHA", &sha.to_uppercase(), "1", k, "2"]),
            b":7\r\n",
        );
    }
    let on_a = a.conn().cmd("DBSIZE");
    let on_b = b.conn().cmd("DBSIZE");
    assert_ne!(
        on_a,
        b":0\r\n".to_vec(),
        "every key landed on one server: the test proves nothing"
    );
    assert_ne!(
        on_b,
        b":0\r\n".to_vec(),
        "every key landed on one server: the test proves nothing"
    );
    // EXISTS: AND over the servers.
    let only_a =
        String::from_utf8_lossy(&a.conn().send(&["SCRIPT", "LOAD", "return 'only on a'"])[5..45])
            .into_owned();
    assert_reply(
        &c.send(&["SCRIPT", "EXISTS", &sha, &only_a, "nosuch"]),
        b"*3\r\n:1\r\n:0\r\n:0\r\n",
    );
    // A compile error is answered once, as the servers give it.
    let e = c.send(&["SCRIPT", "LOAD", "return +"]);
    assert!(
        e.starts_with(b"-ERR Error compiling script"),
        "{}",
        String::from_utf8_lossy(&e)
    );
    // FLUSH everywhere.
    assert_reply(&c.send(&["SCRIPT", "FLUSH"]), b"+OK\r\n");
    assert_reply(&c.send(&["SCRIPT", "EXISTS", &sha]), b"*1\r\n:0\r\n");
    assert_reply(
        &c.send(&["EVALSHA", &sha, "1", "a", "1"]),
        b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
    );
    assert_reply(
        &c.send(&["SCRIPT", "KILL"]),
        b"-NOTBUSY No scripts in execution right now.\r\n",
    );
}

#[test]
fn eval_routes_by_the_first_key() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut c = p.conn();
    // Same slot (hash tag): one script sees both keys.
    assert_reply(
        &c.send(&[
            "EVAL",
            "redis.call('set', KEYS[1], ARGV[1]) redis.call('set', KEYS[2], ARGV[2]) return redis.call('mget', KEYS[1], KEYS[2])",
            "2",
            "{u}a",
            "{u}b",
            "1",
            "2",
        ]),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n",
    );
    assert_reply(
        &c.send(&["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "{u}a"]),
        b"$1\r\n1\r\n",
    );
    assert_reply(&c.send(&["GET", "{u}b"]), b"$1\r\n2\r\n");
    // Declared keys of different slots: refused before any server runs it.
    let r = c.send(&["EVAL", "return 1", "2", "a", "b"]);
    assert!(
        r.starts_with(b"-CROSSSLOT"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    // numkeys 0: runs on a server (slot 0's owner, as Codis routes it).
    assert_reply(
        &c.send(&["EVAL", "return redis.call('ping')", "0"]),
        b"+PONG\r\n",
    );
    assert_reply(
        &c.send(&["EVAL", "return ARGV[1]", "0", "x"]),
        b"$1\r\nx\r\n",
    );
    // Errors come back as the server sends them.
    let r = c.send(&["EVAL", "return redis.call('nosuch')", "0"]);
    assert!(
        r.starts_with(b"-ERR Unknown Redis command called from script"),
        "{}",
        String::from_utf8_lossy(&r)
    );
}

#[test]
fn functions_through_the_proxy() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut c = p.conn();
    let lib = "#!lua name=lib\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)";
    assert_reply(&c.send(&["FUNCTION", "LOAD", lib]), b"$3\r\nlib\r\n");
    // On both servers.
    for s in [&a, &b] {
        assert_reply(
            &s.conn().send(&["FUNCTION", "LIST"]),
            b"*1\r\n*6\r\n$12\r\nlibrary_name\r\n$3\r\nlib\r\n$6\r\nengine\r\n$3\r\nLUA\r\n$9\r\nfunctions\r\n*1\r\n*6\r\n$4\r\nname\r\n$4\r\nbump\r\n$11\r\ndescription\r\n$-1\r\n$5\r\nflags\r\n*0\r\n",
        );
    }
    for k in ["a", "b", "c", "k1", "k2", "k3"] {
        assert_reply(&c.send(&["FCALL", "bump", "1", k, "3"]), b":3\r\n");
    }
    assert_reply(
        &c.send(&["FUNCTION", "LOAD", lib]),
        b"-ERR Library 'lib' already exists\r\n",
    );
    let r = c.send(&["FCALL", "bump", "2", "a", "b", "1"]);
    assert!(
        r.starts_with(b"-CROSSSLOT"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_reply(&c.send(&["FUNCTION", "DELETE", "lib"]), b"+OK\r\n");
    assert_reply(
        &c.send(&["FCALL", "bump", "1", "a", "1"]),
        b"-ERR Function not found\r\n",
    );
    assert_reply(&c.send(&["FUNCTION", "FLUSH"]), b"+OK\r\n");
    assert_reply(&c.send(&["FUNCTION", "LIST"]), b"*0\r\n");
}
