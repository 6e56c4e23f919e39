//! codis-proxy for today's clients: RESP3 and HELLO, the connection
//! commands clients send on connect (CLIENT SETINFO/SETNAME/..., COMMAND,
//! RESET, ECHO), CLIENT REPLY, CONFIG GET, RESP3 reply shapes through the
//! proxy byte for byte against a direct codis-server, same-slot multi-key
//! commands and CROSSSLOT, blocking commands on dedicated backend
//! connections, SCAN over the whole cluster, DBSIZE/KEYS/RANDOMKEY/FLUSH*,
//! and real clients with their default settings: redis-py (RESP3 too,
//! default pipeline with and without transaction, scan_iter over 100k keys
//! on two groups) and the `redis` crate over RESP3.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::proxy::{Proxy, split_slots, write_conf};
use tests::{Conn, Server, assert_reply, require_redis};

fn pair() -> (Server, Server, Proxy) {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    (a, b, p)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn hello_and_connection_commands() {
    let (a, _b, p) = pair();
    let mut c = p.conn();
    // HELLO 3: a map shaped like a direct server's, with the proxy's names.
    let via = text(&c.send(&["HELLO", "3"]));
    let mut d = a.conn();
    let direct = text(&d.send(&["HELLO", "3"]));
    assert!(
        via.starts_with("%7\r\n$6\r\nserver\r\n$11\r\ncodis-proxy\r\n"),
        "{via}"
    );
    assert!(direct.starts_with("%7\r\n"), "{direct}");
    for field in ["version", "proto", "id", "mode", "role", "modules"] {
        assert!(via.contains(&format!("\r\n{field}\r\n")), "{field}: {via}");
        assert!(
            direct.contains(&format!("\r\n{field}\r\n")),
            "{field}: {direct}"
        );
    }
    assert!(via.contains("$5\r\nproto\r\n:3\r\n") && via.contains("$4\r\nmode\r\n$5\r\nproxy\r\n"));
    // Now RESP3 from the backends as well.
    assert_reply(&c.send(&["GET", "nokey"]), b"_\r\n");
    c.send(&["HSET", "h", "f", "v"]);
    assert_reply(&c.send(&["HGETALL", "h"]), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_reply(&c.send(&["MGET", "nokey", "nokey2"]), b"*2\r\n_\r\n_\r\n");
    assert_reply(
        &c.send(&["HELLO", "4"]),
        b"-NOPROTO unsupported protocol version\r\n",
    );
    assert_reply(
        &c.send(&["HELLO", "x"]),
        b"-ERR Protocol version is not an integer or out of range\r\n",
    );
    assert_reply(
        &c.send(&["HELLO", "3", "FOO"]),
        b"-ERR Syntax error in HELLO option 'FOO'\r\n",
    );
    let v2 = text(&c.send(&["HELLO", "2", "SETNAME", "app"]));
    assert!(v2.starts_with("*14\r\n"), "{v2}");
    assert_reply(&c.send(&["GET", "nokey"]), b"$-1\r\n");
    assert_reply(&c.send(&["CLIENT", "GETNAME"]), b"$3\r\napp\r\n");
    assert_reply(
        &c.send(&["CLIENT", "SETNAME", "b c"]),
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    assert_reply(
        &c.send(&["CLIENT", "SETINFO", "LIB-NAME", "mylib"]),
        b"+OK\r\n",
    );
    assert_reply(&c.send(&["CLIENT", "NO-EVICT", "on"]), b"+OK\r\n");
    let id = text(&c.send(&["CLIENT", "ID"]));
    assert!(id.starts_with(':'), "{id}");
    let info = text(&c.send(&["CLIENT", "INFO"]));
    assert!(
        info.contains("name=app") && info.contains("lib-name=mylib") && info.contains(" db=0 "),
        "{info}"
    );
    assert_reply(
        &c.send(&["CLIENT", "KILL", "1.2.3.4:5"]),
        b"-ERR handle request, command 'CLIENT KILL' is not allowed\r\n",
    );
    assert_reply(&c.send(&["ECHO", "hi"]), b"$2\r\nhi\r\n");
    // COMMAND from the shared table, without what the proxy refuses.
    let count = text(&c.send(&["COMMAND", "COUNT"]));
    let n: i64 = count.trim_start_matches(':').trim().parse().unwrap();
    assert!(n > 150, "{count}");
    assert_reply(&c.send(&["COMMAND", "INFO", "monitor"]), b"*1\r\n$-1\r\n");
    assert!(text(&c.send(&["COMMAND", "INFO", "get"])).starts_with("*1\r\n*10\r\n$3\r\nget\r\n"));
    assert_reply(
        &c.send(&["COMMAND", "GETKEYS", "RENAME", "a", "b"]),
        b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    );
    // CONFIG GET of the proxy's settings; passwords never shown.
    assert_reply(
        &c.send(&["CONFIG", "GET", "proxy_max_clients"]),
        b"*2\r\n$17\r\nproxy_max_clients\r\n$4\r\n1000\r\n",
    );
    assert_reply(&c.send(&["CONFIG", "GET", "*auth*"]), b"*0\r\n");
    assert_reply(
        &c.send(&["CONFIG", "SET", "a", "b"]),
        b"-ERR handle request, command 'CONFIG SET' is not allowed\r\n",
    );
    // CLIENT REPLY OFF / SKIP / ON.
    let mut raw = Vec::new();
    for cmd in [
        &["CLIENT", "REPLY", "OFF"][..],
        &["SET", "r1", "1"],
        &["CLIENT", "REPLY", "ON"],
        &["CLIENT", "REPLY", "SKIP"],
        &["GET", "r1"],
        &["ECHO", "after"],
    ] {
        raw.extend_from_slice(&tests::resp::encode_command(cmd));
    }
    c.write_raw(&raw).unwrap();
    assert_reply(&c.read_reply().unwrap(), b"+OK\r\n");
    assert_reply(&c.read_reply().unwrap(), b"$5\r\nafter\r\n");
    assert_reply(&c.send(&["GET", "r1"]), b"$1\r\n1\r\n");
    // RESET: DB 0, RESP2, no name.
    c.send(&["HELLO", "3"]);
    c.send(&["SELECT", "2"]);
    assert_reply(&c.send(&["RESET"]), b"+RESET\r\n");
    assert_reply(&c.send(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    assert_reply(&c.send(&["GET", "r1"]), b"$1\r\n1\r\n");
}

#[test]
fn hello_auth_with_session_auth() {
    let a = Server::start(&[]);
    let (_d, conf) = write_conf("session_auth = \"s3cret\"\n");
    let p = Proxy::start(
        Some(&split_slots(a.port(), a.port(), 512)),
        &["--config", &conf],
    );
    let mut c = p.conn();
    assert!(text(&c.send(&["HELLO", "3"])).starts_with("-NOAUTH HELLO must be called"));
    assert_reply(
        &c.send(&["HELLO", "3", "AUTH", "default", "bad"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    assert_reply(
        &c.send(&["GET", "k"]),
        b"-NOAUTH Authentication required\r\n",
    );
    assert!(text(&c.send(&["HELLO", "3", "AUTH", "default", "s3cret"])).starts_with("%7\r\n"));
    assert_reply(&c.send(&["GET", "k"]), b"_\r\n");
    let mut c2 = p.conn();
    assert_reply(&c2.send(&["AUTH", "default", "s3cret"]), b"+OK\r\n");
    assert_reply(&c2.send(&["GET", "k"]), b"$-1\r\n");
    // RESET logs out again.
    assert_reply(&c2.send(&["RESET"]), b"+RESET\r\n");
    assert_reply(
        &c2.send(&["GET", "k"]),
        b"-NOAUTH Authentication required\r\n",
    );
}

/// The same script on a direct codis-server and through the proxy (two
/// groups), both in RESP3: the replies must be equal byte for byte.
#[test]
fn resp3_replies_match_a_direct_server() {
    let (_a, _b, p) = pair();
    let direct = Server::start(&[]);
    let script: &[&[&str]] = &[
        &["HELLO", "3"],
        &["SET", "s", "v"],
        &["GET", "s"],
        &["GET", "missing"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["HSET", "h", "a", "1", "b", "2"],
        &["HGETALL", "h"],
        &["HMGET", "h", "a", "zz"],
        &["HRANDFIELD", "nohash", "2"],
        &["SADD", "set", "x"],
        &["SMEMBERS", "set"],
        &["SISMEMBER", "set", "x"],
        &["ZADD", "z", "1.5", "m", "2", "n"],
        &["ZSCORE", "z", "m"],
        &["ZSCORE", "z", "none"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["ZPOPMIN", "z"],
        &["ZRANDMEMBER", "nozset"],
        &["RPUSH", "l", "a", "b"],
        &["LPOS", "l", "c"],
        &["LRANGE", "l", "0", "-1"],
        &["MGET", "s", "missing", "h", "f"],
        &["MSET", "m1", "1", "m2", "2"],
        &["EXISTS", "m1", "m2", "missing"],
        &["DEL", "m1", "missing"],
        &["TTL", "s"],
        &["EXPIRE", "s", "100"],
        &["OBJECT", "ENCODING", "s"],
        &["TYPE", "z"],
        &["SET", "{t}a", "1"],
        &["RENAME", "{t}a", "{t}b"],
        &["GET", "{t}b"],
        &["ECHO", "e"],
        &["GET", "h"],
        &["XADD"],
        &["SADD", "{set}", "x"],
        &["SINTER", "{set}", "{set}none"],
        &["SINTER", "set", "nosuchset"],
        &["SMISMEMBER", "set", "x", "y"],
        &["HELLO", "2"],
        &["HGETALL", "h"],
        &["ZSCORE", "z", "n"],
        &["GET", "missing"],
    ];
    let mut pc = p.conn();
    let mut dc = direct.conn();
    for cmd in script {
        let via = pc.send(cmd);
        let want = dc.send(cmd);
        if cmd[0] == "HELLO" {
            assert_eq!(via[..3], want[..3], "{cmd:?}");
            continue;
        }
        if cmd[0] == "SINTER" && cmd[1] == "set" {
            assert_eq!(
                text(&via),
                "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
            );
            continue;
        }
        if cmd[0] == "OBJECT" {
            // Refused by the proxy, as in Codis.
            assert!(
                text(&via).starts_with("-ERR handle request"),
                "{}",
                text(&via)
            );
            continue;
        }
        assert_eq!(text(&via), text(&want), "{cmd:?}");
    }
}

#[test]
fn same_slot_multi_key_commands_and_crossslot() {
    let (a, b, p) = pair();
    let mut c = p.conn();
    let owner_of = |k: &str| {
        if protocol::slot::slot_of(k.as_bytes()) < 512 {
            a.conn()
        } else {
            b.conn()
        }
    };
    c.send(&["SADD", "{g}s1", "a", "b"]);
    c.send(&["SADD", "{g}s2", "b"]);
    assert_reply(
        &c.send(&["SINTERSTORE", "{g}d", "{g}s1", "{g}s2"]),
        b":1\r\n",
    );
    assert_reply(&owner_of("{g}d").send(&["SCARD", "{g}d"]), b":1\r\n");
    assert_reply(&c.send(&["SMOVE", "{g}s1", "{g}s2", "a"]), b":1\r\n");
    c.send(&["RPUSH", "{g}l", "1", "2"]);
    assert_reply(
        &c.send(&["LMOVE", "{g}l", "{g}l2", "LEFT", "RIGHT"]),
        b"$1\r\n1\r\n",
    );
    assert_reply(&c.send(&["RPOPLPUSH", "{g}l", "{g}l2"]), b"$1\r\n2\r\n");
    assert_reply(
        &c.send(&["LMPOP", "2", "{g}nol", "{g}l2", "LEFT"]),
        b"*2\r\n$5\r\n{g}l2\r\n*1\r\n$1\r\n2\r\n",
    );
    c.send(&["SET", "{g}b1", "a"]);
    assert_reply(&c.send(&["BITOP", "NOT", "{g}b2", "{g}b1"]), b":1\r\n");
    assert_reply(&c.send(&["COPY", "{g}b1", "{g}b3"]), b":1\r\n");
    assert_reply(&c.send(&["MSETNX", "{g}n1", "1", "{g}n2", "2"]), b":1\r\n");
    assert_reply(&c.send(&["RENAME", "{g}n1", "{g}n9"]), b"+OK\r\n");
    assert_reply(&c.send(&["RENAMENX", "{g}n9", "{g}n2"]), b":0\r\n");
    c.send(&["PFADD", "{g}h1", "x"]);
    assert_reply(&c.send(&["PFMERGE", "{g}h2", "{g}h1"]), b"+OK\r\n");
    c.send(&["ZADD", "{g}z", "1", "m"]);
    assert_reply(
        &c.send(&["ZRANGESTORE", "{g}z2", "{g}z", "0", "-1"]),
        b":1\r\n",
    );
    assert_reply(
        &c.send(&["ZUNIONSTORE", "{g}z3", "2", "{g}z", "{g}z2"]),
        b":1\r\n",
    );
    c.send(&["RPUSH", "{g}sort", "3", "1"]);
    assert_reply(
        &c.send(&["SORT", "{g}sort", "STORE", "{g}sorted"]),
        b":2\r\n",
    );
    // Different tags in one slot are fine; different slots are not.
    let (k1, k2) = same_slot_pair();
    c.send(&["SET", &k1, "v"]);
    assert_reply(&c.send(&["RENAME", &k1, &k2]), b"+OK\r\n");
    for cmd in [
        &["RENAME", "a", "b"][..],
        &["SINTERSTORE", "x", "y", "z"],
        &["SMOVE", "a", "b", "m"],
        &["BITOP", "AND", "a", "b"],
        &["ZUNIONSTORE", "{g}d", "1", "other"],
        &["SORT", "{g}sort", "STORE", "elsewhere"],
        &["BLMOVE", "a", "b", "LEFT", "LEFT", "0"],
    ] {
        assert_reply(
            &c.send(cmd),
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
        );
    }
    // Nothing ran.
    assert_reply(&c.send(&["EXISTS", "b"]), b":0\r\n");
}

/// Two keys with different hash tags (none) in the same slot.
fn same_slot_pair() -> (String, String) {
    let first = "k0".to_string();
    let s = protocol::slot::slot_of(first.as_bytes());
    for i in 1.. {
        let k = format!("k{i}");
        if protocol::slot::slot_of(k.as_bytes()) == s {
            return (first, k);
        }
    }
    unreachable!()
}

#[test]
fn blocking_commands() {
    let (a, b, p) = pair();
    let mut c = p.conn();
    // Times out.
    let t0 = Instant::now();
    assert_reply(&c.send(&["BLPOP", "q", "0.3"]), b"*-1\r\n");
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    // Woken by another client's push.
    let port = p.port;
    let pusher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut o = Conn::connect(port).unwrap();
        o.send(&["RPUSH", "q", "v"]);
    });
    assert_reply(
        &c.send(&["BLPOP", "q", "5"]),
        b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n",
    );
    pusher.join().unwrap();
    // Pipelined around a blocking command: order kept, the blocking one
    // sees the push before it, the GET after it waits for it.
    let mut raw = Vec::new();
    for cmd in [
        &["RPUSH", "q2", "a"][..],
        &["BLPOP", "q2", "1"],
        &["BRPOPLPUSH", "{x}1", "{x}2", "0.2"],
        &["BZPOPMIN", "zq", "0.1"],
        &["EXISTS", "q2"],
    ] {
        raw.extend_from_slice(&tests::resp::encode_command(cmd));
    }
    c.write_raw(&raw).unwrap();
    assert_reply(&c.read_reply().unwrap(), b":1\r\n");
    assert_reply(&c.read_reply().unwrap(), b"*2\r\n$2\r\nq2\r\n$1\r\na\r\n");
    assert_reply(&c.read_reply().unwrap(), b"*-1\r\n");
    assert_reply(&c.read_reply().unwrap(), b"*-1\r\n");
    assert_reply(&c.read_reply().unwrap(), b":0\r\n");
    // A client that leaves while blocked takes its backend client along.
    let owner = if protocol::slot::slot_of(b"gone") < 512 {
        &a
    } else {
        &b
    };
    // (Watched by the blocked flag, not by the count of connections: a
    // backend connection of an earlier step may still be closing.)
    let mut g = p.conn();
    g.write_raw(&tests::resp::encode_command(&["BLPOP", "gone", "0"]))
        .unwrap();
    wait_until(|| blocked(owner) == 1);
    drop(g);
    wait_until(|| blocked(owner) == 0);
    // Nothing popped by the abandoned BLPOP.
    c.send(&["RPUSH", "gone", "x"]);
    assert_reply(&c.send(&["LLEN", "gone"]), b":1\r\n");
}

/// Connections of `s` blocked in a command (CLIENT LIST flag `b`).
fn blocked(s: &Server) -> usize {
    let list = text(&s.conn().send(&["CLIENT", "LIST"]));
    list.lines()
        .filter(|l| {
            l.split(' ')
                .any(|f| f.starts_with("flags=") && f.contains('b'))
        })
        .count()
}

fn wait_until(ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "condition not reached");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every key a full SCAN with `opts` returns.
fn scan_all(c: &mut Conn, opts: &[&str]) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(opts);
        let v = c.send_value(&args);
        let parts = v.as_array().unwrap();
        for k in parts[1].as_array().unwrap() {
            seen.push(k.as_text().unwrap());
        }
        cursor = parts[0].as_text().unwrap();
        if cursor == "0" {
            return seen;
        }
    }
}

#[test]
fn scan_dbsize_keys_randomkey_and_flush() {
    let (_a, _b, p) = pair();
    let mut c = p.conn();
    let mut raw = Vec::new();
    let n = 5000;
    for i in 0..n {
        raw.extend_from_slice(&tests::resp::encode_command(&[
            "SET",
            &format!("key:{i}"),
            "v",
        ]));
    }
    c.write_raw(&raw).unwrap();
    for _ in 0..n {
        c.read_reply().unwrap();
    }
    c.send(&["SADD", "aset", "m"]);
    assert_reply(&c.send(&["DBSIZE"]), format!(":{}\r\n", n + 1).as_bytes());
    for count in ["10", "1000"] {
        let mut seen = Vec::new();
        let mut cursor = "0".to_string();
        loop {
            let v = c.send_value(&["SCAN", &cursor, "COUNT", count]);
            let parts = v.as_array().unwrap();
            cursor = parts[0].as_text().unwrap();
            for k in parts[1].as_array().unwrap() {
                seen.push(k.as_text().unwrap());
            }
            if cursor == "0" {
                break;
            }
        }
        let set: HashSet<&String> = seen.iter().collect();
        assert_eq!(seen.len(), n + 1, "COUNT {count}: every key once");
        assert_eq!(set.len(), n + 1);
    }
    assert_eq!(scan_all(&mut c, &["MATCH", "key:12*"]).len(), 111);
    assert_eq!(
        scan_all(&mut c, &["TYPE", "set", "COUNT", "100"]),
        vec!["aset".to_string()]
    );
    assert_reply(&c.send(&["SCAN", "x"]), b"-ERR invalid cursor\r\n");
    assert_reply(
        &c.send(&["SCAN", "0", "COUNT", "0"]),
        b"-ERR syntax error\r\n",
    );
    assert!(text(&c.send(&["RANDOMKEY"])).starts_with('$'));
    // KEYS and FLUSH* are refused unless enabled.
    assert_reply(
        &c.send(&["KEYS", "*"]),
        b"-ERR handle request, command 'KEYS' is not allowed\r\n",
    );
    assert_reply(
        &c.send(&["FLUSHALL"]),
        b"-ERR handle request, command 'FLUSHALL' is not allowed\r\n",
    );
    let slots = std::fs::read_to_string(p.slot_file()).unwrap();
    let (_d, conf) = write_conf("proxy_allow_keys = true\nproxy_allow_flush = true\n");
    let p2 = Proxy::start(Some(&slots), &["--config", &conf]);
    let mut c2 = p2.conn();
    let keys = c2.send_value(&["KEYS", "key:1*"]);
    assert_eq!(keys.as_array().unwrap().len(), 1111);
    let info = text(&c2.send(&["INFO", "keyspace"]));
    assert!(info.contains(&format!("db0:keys={},", n + 1)), "{info}");
    assert_reply(&c2.send(&["FLUSHDB"]), b"+OK\r\n");
    assert_reply(&c2.send(&["DBSIZE"]), b":0\r\n");
    assert_reply(&c2.send(&["RANDOMKEY"]), b"$-1\r\n");
}

/// redis-py with its default settings and with RESP3, through the proxy.
#[test]
fn redis_py_through_the_proxy() {
    let ok = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if require_redis() {
            panic!("python3 with the redis package is required (pip install redis)");
        }
        eprintln!("skipping: python3 redis package not installed");
        return;
    }
    let (a, b, p) = pair();
    let script = r#"
import sys, threading, time, redis
port = int(sys.argv[1])
for proto in (None, 3):
    kw = {} if proto is None else {"protocol": proto}
    r = redis.Redis(port=port, **kw)
    assert r.ping()
    assert r.set("s", "v") and r.get("s") == b"v"
    r.hset("h", mapping={"a": "1", "b": "2"})
    assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}, r.hgetall("h")
    assert r.mget("s", "nokey") == [b"v", None]
    p = r.pipeline(transaction=False)
    p.set("p1", 1).incr("p1").get("p1")
    assert p.execute() == [True, 2, b"2"]
    # The default pipeline is a transaction: refused whole, nothing applied.
    p = r.pipeline()
    p.set("tx1", 1).incr("tx2")
    try:
        p.execute()
        raise SystemExit("transaction ran")
    except redis.exceptions.ResponseError:
        pass
    assert r.exists("tx1", "tx2") == 0
    r.set("{t}a", 1)
    assert r.rename("{t}a", "{t}b")
    try:
        r.rename("a1", "b1")
        raise SystemExit("no CROSSSLOT")
    except redis.exceptions.ResponseError as e:
        assert "hash to the same slot" in str(e), e
    t0 = time.time()
    assert r.blpop(["bq"], timeout=0.3) is None and time.time() - t0 >= 0.25
    def push():
        time.sleep(0.2)
        redis.Redis(port=port).rpush("bq", "x")
    threading.Thread(target=push).start()
    assert r.blpop(["bq"], timeout=5) in ((b"bq", b"x"), [b"bq", b"x"])
    r.delete("s", "h", "p1", "{t}b")
r = redis.Redis(port=port, protocol=3)
# In batches: codis-proxy closes a session with more than
# session_max_pipeline (10000) requests outstanding, as Codis does.
p = r.pipeline(transaction=False)
for i in range(100000):
    p.set("k%d" % i, i)
    if i % 2000 == 1999:
        p.execute()
p.execute()
assert r.dbsize() == 100000, r.dbsize()
keys = list(r.scan_iter(count=1000))
assert len(keys) == 100000 and len(set(keys)) == 100000, (len(keys), len(set(keys)))
keys = list(r.scan_iter(match="k99*"))
assert len(keys) == 1111, len(keys)
h = r.execute_command("HELLO", "3")
assert h[b"server"] == b"codis-proxy" and h[b"proto"] == 3 and h[b"mode"] == b"proxy", h
print("OK")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &p.port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains("OK"),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The keys landed on both groups.
    for s in [&a, &b] {
        let n: i64 = text(&s.conn().send(&["DBSIZE"]))[1..]
            .trim()
            .parse()
            .unwrap();
        assert!(n > 40000, "{n}");
    }
}

/// The `redis` crate over RESP3 through the proxy.
#[tokio::test]
async fn redis_crate_resp3_through_the_proxy() {
    let (_a, _b, p) = pair();
    let url = format!("redis://127.0.0.1:{}/?protocol=resp3", p.port);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    let none: Option<String> = redis::cmd("GET")
        .arg("nope")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(none, None);
    let () = redis::cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("1")
        .query_async(&mut con)
        .await
        .unwrap();
    let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(h.get("f").map(String::as_str), Some("1"));
    let score: Option<f64> = {
        let () = redis::cmd("ZADD")
            .arg("z")
            .arg("2.5")
            .arg("m")
            .query_async(&mut con)
            .await
            .map(|_: i64| ())
            .unwrap();
        redis::cmd("ZSCORE")
            .arg("z")
            .arg("m")
            .query_async(&mut con)
            .await
            .unwrap()
    };
    assert_eq!(score, Some(2.5));
    let (a, b): (i64, Vec<Option<String>>) = redis::pipe()
        .cmd("INCR")
        .arg("n")
        .cmd("MGET")
        .arg("k")
        .arg("nope")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((a, b), (1, vec![Some("v".to_string()), None]));
    let mut it = redis::AsyncCommands::scan::<String>(&mut con)
        .await
        .unwrap();
    let mut n = 0;
    while let Some(k) = it.next_item().await {
        k.unwrap();
        n += 1;
    }
    assert_eq!(n, 4);
}

/// A client blocked longer than `session_recv_timeout` is not idle: it gets
/// its reply, and its idle time starts then.
#[test]
fn blocked_client_outlives_the_idle_timeout() {
    let a = Server::start(&[]);
    let (_d, conf) = write_conf("session_recv_timeout = \"1s\"\n");
    let p = Proxy::start(
        Some(&split_slots(a.port(), a.port(), 512)),
        &["--config", &conf],
    );
    let mut c = p.conn();
    let t0 = Instant::now();
    assert_reply(&c.send(&["BLPOP", "q", "2"]), b"*-1\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(1900));
    assert_reply(&c.send(&["PING"]), b"+PONG\r\n");
}
