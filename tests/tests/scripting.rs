//! Scripting against the running server: busy scripts (BUSY for other
//! clients, SCRIPT KILL, UNKILLABLE after a write, SHUTDOWN NOSAVE) with
//! `--io-threads` 1 and 2 (another thread serves the other clients),
//! real programs (redis-py's Lock, a token bucket, a BullMQ-style job move)
//! through codis-server, and atomicity under `--io-threads 4`. Byte-for-byte
//! comparisons with redis-server are in tests/scripts/scripting.txt.

use std::time::{Duration, Instant};

use tests::{Conn, Server};

/// A script that loops until killed (or forever).
const SPIN: &str = "local i = 0 while true do i = i + 1 end";

/// A server with a 200 ms busy threshold and `threads` executor threads
/// (1 is the default: the busy worker hands the others to a new thread).
fn busy_server(threads: &str) -> Server {
    Server::start(&["--io-threads", threads, "--busy-reply-threshold", "200"])
}

/// Sends `script` on a new connection without reading the reply.
fn start_script(port: u16, args: &[&str]) -> Conn {
    let mut c = Conn::connect(port).expect("connect");
    c.set_timeout(Duration::from_secs(30));
    c.write_raw(&tests::resp::encode_command(args))
        .expect("send");
    c
}

/// Polls `probe` with PING until it answers BUSY.
fn wait_busy(probe: &mut Conn) -> Vec<u8> {
    let t0 = Instant::now();
    loop {
        let r = probe.cmd("PING");
        if r.starts_with(b"-BUSY") {
            return r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never busy: {}",
            String::from_utf8_lossy(&r)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn busy_script_then_script_kill() {
    busy_script_then_script_kill_with("1");
    busy_script_then_script_kill_with("2");
}

fn busy_script_then_script_kill_with(threads: &str) {
    let s = busy_server(threads);
    let mut runner = start_script(s.port(), &["EVAL", SPIN, "0"]);
    let mut probe = s.conn();
    let busy = wait_busy(&mut probe);
    assert_eq!(
        busy,
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    // Commands flagged allow_busy still run; SHUTDOWN without NOSAVE does not.
    assert_eq!(probe.cmd("MULTI"), b"+OK\r\n");
    assert_eq!(probe.cmd("DISCARD"), b"+OK\r\n");
    assert!(probe.cmd("SHUTDOWN").starts_with(b"-BUSY"));
    assert!(probe.cmd("GET k").starts_with(b"-BUSY"));
    assert_eq!(probe.cmd("SCRIPT KILL"), b"+OK\r\n");
    let r = runner.read_reply().expect("the killed script's reply");
    assert!(
        r.starts_with(b"-ERR Script killed by user with SCRIPT KILL... script: "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(
        probe.cmd("SCRIPT KILL"),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
    assert_eq!(probe.cmd("PING"), b"+PONG\r\n");
    // A pcall in the script cannot swallow the kill.
    let mut runner = start_script(
        s.port(),
        &[
            "EVAL",
            "while true do pcall(function() local i = 0 while true do i = i + 1 end end) end",
            "0",
        ],
    );
    wait_busy(&mut probe);
    assert_eq!(probe.cmd("SCRIPT KILL"), b"+OK\r\n");
    let r = runner.read_reply().expect("reply");
    assert!(
        r.starts_with(b"-ERR Script killed by user"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(probe.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn a_script_that_wrote_is_unkillable_and_shutdown_nosave_stops_it() {
    a_script_that_wrote_is_unkillable_and_shutdown_nosave_stops_it_with("1");
    a_script_that_wrote_is_unkillable_and_shutdown_nosave_stops_it_with("2");
}

fn a_script_that_wrote_is_unkillable_and_shutdown_nosave_stops_it_with(threads: &str) {
    let mut s = busy_server(threads);
    let _runner = start_script(
        s.port(),
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 'x') local i = 0 while true do i = i + 1 end",
            "1",
            "k",
        ],
    );
    let mut probe = s.conn();
    wait_busy(&mut probe);
    let r = probe.cmd("SCRIPT KILL");
    assert_eq!(
        r,
        b"-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n".to_vec()
    );
    let _ = probe.try_send(&["SHUTDOWN", "NOSAVE"]);
    assert!(
        s.wait_exit(Duration::from_secs(10)),
        "SHUTDOWN NOSAVE did not stop the server"
    );
}

#[test]
fn busy_function_then_function_kill() {
    busy_function_then_function_kill_with("1");
    busy_function_then_function_kill_with("2");
}

fn busy_function_then_function_kill_with(threads: &str) {
    let s = busy_server(threads);
    let mut probe = s.conn();
    assert_eq!(
        probe.send(&["FUNCTION", "LOAD", "#!lua name=spin\nredis.register_function('spin', function() local i = 0 while true do i = i + 1 end end)"]),
        b"$4\r\nspin\r\n"
    );
    let mut runner = start_script(s.port(), &["FCALL", "spin", "0"]);
    let busy = wait_busy(&mut probe);
    assert_eq!(
        busy,
        b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
    );
    // SCRIPT KILL does not stop a function; FUNCTION STATS shows it.
    assert_eq!(
        probe.cmd("SCRIPT KILL"),
        b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
    );
    let stats = String::from_utf8_lossy(&probe.cmd("FUNCTION STATS")).into_owned();
    assert!(
        stats.starts_with("*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n$7\r\ncommand\r\n*3\r\n$5\r\nFCALL\r\n$4\r\nspin\r\n$1\r\n0\r\n$11\r\nduration_ms\r\n:"),
        "{stats}"
    );
    assert_eq!(probe.cmd("FUNCTION KILL"), b"+OK\r\n");
    let r = runner.read_reply().expect("reply");
    assert!(
        r.starts_with(
            b"-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2."
        ),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(
        probe.cmd("FUNCTION KILL"),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
    assert!(
        probe
            .cmd("FUNCTION STATS")
            .starts_with(b"*4\r\n$14\r\nrunning_script\r\n$-1\r\n")
    );
    // FUNCTION KILL does not stop an EVAL.
    let mut runner = start_script(s.port(), &["EVAL", SPIN, "0"]);
    wait_busy(&mut probe);
    assert_eq!(
        probe.cmd("FUNCTION KILL"),
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    assert_eq!(
        probe.cmd("FUNCTION STATS"),
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    assert_eq!(probe.cmd("SCRIPT KILL"), b"+OK\r\n");
    assert!(
        runner
            .read_reply()
            .expect("reply")
            .starts_with(b"-ERR Script killed")
    );
}

#[test]
fn the_busy_threshold_is_configurable() {
    let s = busy_server("1");
    let mut c = s.conn();
    assert_eq!(
        c.cmd("CONFIG GET lua-time-limit"),
        b"*2\r\n$14\r\nlua-time-limit\r\n$3\r\n200\r\n"
    );
    // A script shorter than the threshold never makes anybody busy.
    assert_eq!(
        c.cmd("EVAL \"local i = 0 for j = 1, 100000 do i = i + j end return i\" 0"),
        b":5000050000\r\n"
    );
    assert_eq!(
        c.cmd("SCRIPT KILL"),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
}

/// redis-py's Lock (its Lua scripts through register_script: EVALSHA, then
/// EVAL after NOSCRIPT), a token-bucket rate limiter and a BullMQ-style
/// "move to active" script, with several clients at once.
const PROGRAMS: &str = r#"
import sys, threading, time, redis
port = int(sys.argv[1])
r = redis.Redis(port=port)
r.execute_command("SCRIPT", "FLUSH")

# 1. redis.lock.Lock: mutual exclusion between threads, extend, release.
r.set("{lk}counter", 0)
errors = []
def worker(n):
    c = redis.Redis(port=port)
    for _ in range(n):
        with c.lock("{lk}lock", timeout=5, blocking_timeout=10):
            v = int(c.get("{lk}counter"))
            c.set("{lk}counter", v + 1)
threads = [threading.Thread(target=worker, args=(50,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
assert int(r.get("{lk}counter")) == 200, r.get("{lk}counter")
l = r.lock("{lk}other", timeout=1)
assert l.acquire(blocking=False)
assert not r.lock("{lk}other", timeout=1).acquire(blocking=False)
assert l.extend(10)
assert r.pttl("{lk}other") > 5000
assert l.reacquire()
l.release()
try:
    l.release()
    raise SystemExit("released twice")
except redis.exceptions.LockError:
    pass

# 2. A token bucket: capacity 10, refill 1 token per 100 ms.
bucket = r.register_script("""
local key = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local b = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + (now - ts) * rate / 1000)
local ok = 0
if tokens >= want then tokens = tokens - want ok = 1 end
redis.call('HSET', key, 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', key, math.ceil(capacity / rate * 1000))
return {ok, tostring(tokens)}
""")
now = 1_000_000
granted = sum(bucket(keys=["{rl}user"], args=[10, 10, now, 1])[0] for _ in range(15))
assert granted == 10, granted
granted = sum(bucket(keys=["{rl}user"], args=[10, 10, now + 500, 1])[0] for _ in range(15))
assert granted == 5, granted
assert 0 < r.pttl("{rl}user") <= 1000

# 3. Jobs moved from wait to active atomically by several workers.
move = r.register_script("""
local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
if not id then return false end
redis.call('ZADD', KEYS[3], ARGV[1], id)
redis.call('HSET', KEYS[4] .. id, 'state', 'active', 'worker', ARGV[2])
redis.call('HINCRBY', KEYS[4] .. id, 'attempts', 1)
return id
""")
N = 300
r.delete("{q}wait", "{q}active", "{q}started")
for i in range(N):
    r.lpush("{q}wait", "job%d" % i)
taken = {}
def consumer(w):
    c = redis.Redis(port=port)
    m = c.register_script(move.script)
    got = []
    while True:
        j = m(keys=["{q}wait", "{q}active", "{q}started", "{q}job:"], args=[time.time(), w])
        if j is None:
            break
        got.append(j)
    taken[w] = got
threads = [threading.Thread(target=consumer, args=("w%d" % i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
all_jobs = [j for g in taken.values() for j in g]
assert len(all_jobs) == N and len(set(all_jobs)) == N, (len(all_jobs), len(set(all_jobs)))
assert r.llen("{q}active") == N and r.zcard("{q}started") == N
for i in range(0, N, 37):
    h = r.hgetall("{q}job:job%d" % i)
    assert h[b"state"] == b"active" and h[b"attempts"] == b"1", h
print("OK")
"#;

fn run_programs(port: u16) {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if tests::require_redis() {
            panic!("python3 with the redis package is required (pip install redis)");
        }
        eprintln!("skipping: python3 redis package not installed");
        return;
    }
    let out = std::process::Command::new("python3")
        .args(["-c", PROGRAMS, &port.to_string()])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn real_programs_on_codis_server() {
    let s = Server::start(&["--io-threads", "2"]);
    run_programs(s.port());
}

#[test]
fn real_programs_through_codis_proxy() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = tests::proxy::Proxy::start(
        Some(&tests::proxy::split_slots(a.port(), b.port(), 512)),
        &[],
    );
    run_programs(p.port);
}

// ---------------------------------------------------------------------------
// Functions: persistence, replication, DUMP/RESTORE with redis-server.
// ---------------------------------------------------------------------------

const LIB: &str = "#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\nredis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads a counter'}";

fn assert_lib_works(c: &mut Conn, key: &str, expect_after: &str) {
    assert_eq!(
        c.send(&["FCALL", "bump", "1", key, "1"]),
        format!(":{expect_after}\r\n").into_bytes()
    );
    assert_eq!(
        c.send(&["FCALL_RO", "peek", "1", key]),
        format!("${}\r\n{expect_after}\r\n", expect_after.len()).into_bytes()
    );
}

#[test]
fn functions_survive_restarts_through_rdb_and_aof() {
    // RDB: SAVE, kill -9, restart.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), &[]);
    let mut c = s.conn();
    assert_eq!(c.send(&["FUNCTION", "LOAD", LIB]), b"$8\r\ncounters\r\n");
    assert_lib_works(&mut c, "k", "1");
    assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
    s.kill9();
    let s = Server::start_in(dir.path(), &[]);
    let mut c = s.conn();
    assert_lib_works(&mut c, "k", "2");
    s.kill9();
    // AOF: the FUNCTION LOAD is in the incremental file; after a rewrite
    // it is in the base (RDB preamble), and in a command base without one.
    for preamble in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--appendonly", "yes", "--aof-use-rdb-preamble", preamble];
        let s = Server::start_in(dir.path(), &args);
        let mut c = s.conn();
        assert_eq!(c.send(&["FUNCTION", "LOAD", LIB]), b"$8\r\ncounters\r\n");
        assert_lib_works(&mut c, "k", "1");
        s.kill9();
        let s = Server::start_in(dir.path(), &args);
        let mut c = s.conn();
        assert_lib_works(&mut c, "k", "2");
        assert!(c.cmd("BGREWRITEAOF").starts_with(b"+"));
        let t0 = Instant::now();
        while !String::from_utf8_lossy(&c.cmd("INFO persistence"))
            .contains("aof_rewrite_in_progress:0")
            || t0.elapsed() < Duration::from_millis(200)
        {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(50));
        }
        s.kill9();
        let s = Server::start_in(dir.path(), &args);
        let mut c = s.conn();
        assert_lib_works(&mut c, "k", "3");
        // FUNCTION DELETE is replayed too.
        assert_eq!(c.cmd("FUNCTION DELETE counters"), b"+OK\r\n");
        s.kill9();
        let s = Server::start_in(dir.path(), &args);
        let mut c = s.conn();
        assert_eq!(c.cmd("FCALL bump 1 k 1"), b"-ERR Function not found\r\n");
        assert_eq!(c.cmd("GET k"), b"$1\r\n3\r\n");
    }
}

/// A new server told to replicate the one on `port`, and a connection
/// to it.
fn replica_of(port: u16) -> (Server, Conn) {
    let r = Server::start(&[]);
    let mut rc = r.conn();
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {port}")), b"+OK\r\n");
    (r, rc)
}

#[test]
fn functions_reach_replicas() {
    let m = Server::start(&["--repl-diskless-sync-delay", "0"]);
    let mut mc = m.conn();
    assert_eq!(mc.send(&["FUNCTION", "LOAD", LIB]), b"$8\r\ncounters\r\n");
    let (_r, mut rc) = replica_of(m.port());
    // Full sync: the library comes in the RDB.
    let t0 = Instant::now();
    while rc.cmd("FUNCTION LIST LIBRARYNAME counters") == b"*0\r\n" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no library after the sync"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Afterwards through the stream: a new library, and the effects of
    // FCALL (never the FCALL itself: the replica refuses writes anyway).
    assert_eq!(
        mc.send(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=two\nredis.register_function('two', function() return 2 end)"
        ]),
        b"$3\r\ntwo\r\n"
    );
    assert_eq!(mc.cmd("FCALL bump 1 k 5"), b":5\r\n");
    let t0 = Instant::now();
    while rc.cmd("GET k") != b"$1\r\n5\r\n" || rc.cmd("FUNCTION LIST LIBRARYNAME two") == b"*0\r\n"
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replica did not follow"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rc.cmd("FCALL_RO peek 1 k"), b"$1\r\n5\r\n");
    // Functions without `no-writes` do not run on a read-only replica.
    assert_eq!(
        rc.cmd("FCALL two 0"),
        b"-READONLY Can not run script with write flag on readonly replica\r\n"
    );
    assert!(rc.cmd("FCALL bump 1 k 1").starts_with(b"-READONLY"));
}

/// `redis.set_repl`: REPL_AOF writes reach the AOF and not the replicas,
/// REPL_REPLICA the other way round, REPL_NONE neither; each target gets
/// its part of the script as one block (the master itself has them all).
#[test]
fn set_repl_sends_each_write_to_its_targets() {
    let m = Server::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--appendonly",
        "yes",
        "--enable-debug-command",
        "yes",
    ]);
    let mut mc = m.conn();
    let (_r, mut rc) = replica_of(m.port());
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&rc.cmd("INFO replication")).contains("master_link_status:up") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replica never synced"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let script = "redis.call('SET', 'both1', '1') \
        redis.set_repl(redis.REPL_AOF) redis.call('SET', 'aof', '1') redis.call('SELECT', 1) redis.call('SET', 'aof1', '1') \
        redis.set_repl(redis.REPL_REPLICA) redis.call('SET', 'repl', '1') redis.call('SELECT', 0) redis.call('SET', 'repl0', '1') \
        redis.set_repl(redis.REPL_NONE) redis.call('SET', 'none', '1') \
        redis.set_repl(redis.REPL_ALL) redis.call('SET', 'both2', '1') return 1";
    assert_eq!(mc.send(&["EVAL", script, "0"]), b":1\r\n");
    // A later write of every target, to know the replica has read past it.
    assert_eq!(mc.cmd("SET marker 1"), b"+OK\r\n");
    let t0 = Instant::now();
    while rc.cmd("GET marker") != b"$1\r\n1\r\n" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replica did not follow"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let exists = |c: &mut Conn, db: &str, key: &str| {
        assert_eq!(c.cmd(&format!("SELECT {db}")), b"+OK\r\n");
        c.cmd(&format!("EXISTS {key}")) == b":1\r\n"
    };
    let all = [
        ("0", "both1"),
        ("0", "aof"),
        ("1", "aof1"),
        ("1", "repl"),
        ("0", "repl0"),
        ("0", "none"),
        ("0", "both2"),
    ];
    let on = |c: &mut Conn| -> Vec<&str> {
        all.iter()
            .filter(|(db, k)| exists(c, db, k))
            .map(|&(_, k)| k)
            .collect()
    };
    assert_eq!(
        on(&mut mc),
        ["both1", "aof", "aof1", "repl", "repl0", "none", "both2"]
    );
    assert_eq!(on(&mut rc), ["both1", "repl", "repl0", "both2"]);
    // The master's AOF, loaded again: what REPL_AOF sent and not the rest.
    assert_eq!(mc.cmd("DEBUG LOADAOF"), b"+OK\r\n");
    assert_eq!(on(&mut mc), ["both1", "aof", "aof1", "both2"]);
}

#[test]
fn function_dump_and_rdb_travel_both_ways_with_redis() {
    let Some(redis) = tests::RedisServer::start() else {
        return;
    };
    let ours = Server::start(&[]);
    let (mut rc, mut oc) = (redis.conn(), ours.conn());
    // Redis' DUMP (its code LZF-compressed) into ours.
    assert_eq!(rc.send(&["FUNCTION", "LOAD", LIB]), b"$8\r\ncounters\r\n");
    let dump = match tests::resp::parse_one(&rc.cmd("FUNCTION DUMP")) {
        Some(tests::Value::Bulk(b)) => b,
        other => panic!("FUNCTION DUMP: {other:?}"),
    };
    assert_eq!(oc.send(&[&b"FUNCTION"[..], b"RESTORE", &dump]), b"+OK\r\n");
    assert_lib_works(&mut oc, "k", "1");
    assert_eq!(
        oc.send(&[&b"FUNCTION"[..], b"RESTORE", &dump]),
        b"-ERR Library 'counters' already exists\r\n"
    );
    assert_eq!(
        oc.send(&[&b"FUNCTION"[..], b"RESTORE", &dump, b"REPLACE"]),
        b"+OK\r\n"
    );
    assert_eq!(
        oc.send(&[&b"FUNCTION"[..], b"RESTORE", &dump, b"FLUSH"]),
        b"+OK\r\n"
    );
    // Ours into Redis.
    let ours_dump = match tests::resp::parse_one(&oc.cmd("FUNCTION DUMP")) {
        Some(tests::Value::Bulk(b)) => b,
        other => panic!("FUNCTION DUMP: {other:?}"),
    };
    assert_eq!(rc.cmd("FUNCTION FLUSH"), b"+OK\r\n");
    assert_eq!(
        rc.send(&[&b"FUNCTION"[..], b"RESTORE", &ours_dump]),
        b"+OK\r\n"
    );
    assert_lib_works(&mut rc, "r", "1");
    // RDB files: ours with the library into Redis, Redis' into ours.
    assert_eq!(oc.cmd("SAVE"), b"+OK\r\n");
    let ours_dir = ours.dir().to_path_buf();
    let redis2 = tests::RedisServer::start_in(&ours_dir, &[]).expect("redis-server");
    assert_lib_works(&mut redis2.conn(), "k", "2");
    let mut r2 = redis2.conn();
    assert_eq!(r2.cmd("SAVE"), b"+OK\r\n");
    let redis_dir = redis2.dir().to_path_buf();
    redis2.kill9();
    let ours2 = Server::start_in(&redis_dir, &[]);
    assert_lib_works(&mut ours2.conn(), "k", "3");
    // A corrupt payload.
    let mut bad = ours_dump.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(
        oc.send(&[&b"FUNCTION"[..], b"RESTORE", &bad]),
        b"-ERR DUMP payload version or checksum are wrong\r\n"
    );
}
