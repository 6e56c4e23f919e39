//! AOF persistence, Redis 7.0 multi-part layout: every type survives a
//! kill -9 through the AOF alone (commands base and RDB preamble base), a
//! BGREWRITEAOF keeps every change exactly once (writes during the rewrite
//! included), the directory layout and INCR bytes are Redis 7.0.15's, files
//! travel both ways with a real redis-server 7.0.15 and pass
//! `redis-check-aof`, `appendonly` switches at run time, an old single-file
//! AOF is upgraded, damaged files are truncated or refused as Redis does
//! (never a panic), `appendfsync always` writes before it replies, DEBUG
//! LOADAOF reloads, transactions are logged in MULTI/EXEC, and slots
//! migrated away stay away after both servers restart from their AOF.
//! Servers are killed with SIGKILL so only the AOF files count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tests::data::{Dataset, assert_same, fill_dbs, pipeline, snapshot};
use tests::{Conn, RedisServer, Server, escape, escape_max, redis_tool};

const AOF: &[&str] = &["--appendonly", "yes"];
const INCR1: &str = "appendonly.aof.1.incr.aof";
const INCR2: &str = "appendonly.aof.2.incr.aof";
const MANIFEST: &str = "appendonly.aof.manifest";

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn args<'a>(a: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    a.iter().chain(more).copied().collect()
}

fn aof_dir(dir: &Path) -> PathBuf {
    dir.join("appendonlydir")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn manifest_text(dir: &Path) -> String {
    String::from_utf8(read(&aof_dir(dir).join(MANIFEST))).unwrap()
}

/// The files in `appendonlydir`, sorted.
fn aof_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(aof_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// RESP encoding of one command, as the AOF holds it.
fn resp(cmd: &[&str]) -> Vec<u8> {
    tests::resp::encode_command(cmd)
}

/// Changes after a rewrite, DB 9 first: new keys of every kind, TTLs set,
/// changed and removed, an existing key deleted, counters and lists
/// changed in place. The names go into `sets`.
fn more_writes(c: &mut Conn, sets: &mut [(usize, Vec<Vec<u8>>)], tag: &str) {
    for (db, keys) in sets.iter_mut().rev() {
        c.send(&["SELECT", &db.to_string()]);
        let k = |n: &str| b(&format!("after{tag}:{db}:{n}"));
        let cmds = vec![
            vec![b("SET"), k("s"), b("v")],
            vec![b("SET"), k("ttl"), b("v"), b("EX"), b("1000")],
            vec![b("SETEX"), k("setex"), b("2000"), b("w")],
            vec![b("INCRBY"), b(&format!("k{db}:1")), b("5")],
            vec![b("DEL"), b(&format!("k{db}:2"))],
            vec![b("PERSIST"), b(&format!("k{db}:3"))],
            vec![b("PEXPIRE"), b(&format!("k{db}:4")), b("700000")],
            vec![
                b("LPUSH"),
                b(&format!("biglist{db}")),
                b(&format!("front{tag}")),
            ],
            vec![b("RPOP"), b(&format!("biglist{db}"))],
            vec![b("HSET"), k("h"), b("f"), b("1"), b("g"), b("2")],
            vec![b("ZADD"), k("z"), b("1.5"), b("m"), b("-2"), b("n")],
            vec![b("SADD"), k("set"), b("a"), b("b"), b("7")],
            vec![b("RPUSH"), k("l"), b("x"), b("y")],
            vec![b("APPEND"), b("{tag}a"), b(tag)],
        ];
        pipeline(c, &cmds);
        for n in ["s", "ttl", "setex", "h", "z", "set", "l"] {
            keys.push(k(n));
        }
    }
    c.send(&["SELECT", "0"]);
}

/// INFO persistence as `field → value`.
fn persistence(c: &mut Conn) -> HashMap<String, String> {
    let text = c.value("INFO persistence").as_text().unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn info_field(c: &mut Conn, field: &str) -> String {
    persistence(c)
        .remove(field)
        .unwrap_or_else(|| panic!("no {field} in INFO persistence"))
}

fn info_num(c: &mut Conn, field: &str) -> i64 {
    let v = info_field(c, field);
    v.parse()
        .unwrap_or_else(|_| panic!("{field}:{v} is not a number"))
}

/// Polls INFO until no rewrite runs or waits and at least `rewrites` have
/// been started; then the last one must have succeeded.
#[track_caller]
fn wait_rewrite(c: &mut Conn, rewrites: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let i = persistence(c);
        let n: i64 = i["aof_rewrites"].parse().unwrap();
        if i["aof_rewrite_in_progress"] == "0" && i["aof_rewrite_scheduled"] == "0" && n >= rewrites
        {
            assert_eq!(i["aof_last_bgrewrite_status"], "ok", "rewrite failed");
            return;
        }
        assert!(Instant::now() < deadline, "rewrite did not finish: {i:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// BGREWRITEAOF, started at once, and waits for it to succeed.
#[track_caller]
fn rewrite(c: &mut Conn) {
    let n = info_num(c, "aof_rewrites");
    assert_eq!(
        c.cmd("BGREWRITEAOF"),
        b"+Background append only file rewriting started\r\n"
    );
    wait_rewrite(c, n + 1);
}

/// Polls until `path` is `len` bytes long (the writer thread caught up).
#[track_caller]
fn wait_len(path: &Path, len: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
        if got == len {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} is {got} bytes, expected {len}: {}",
            path.display(),
            escape_max(&std::fs::read(path).unwrap_or_default(), 400)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The INCR the server appends to: the manifest's last `type i` line.
fn last_incr(dir: &Path) -> PathBuf {
    let m = manifest_text(dir);
    let line = m
        .lines()
        .rfind(|l| l.ends_with(" type i"))
        .unwrap_or_else(|| panic!("no INCR in the manifest:\n{m}"));
    aof_dir(dir).join(line.split(' ').nth(1).unwrap())
}

/// Waits until everything logged so far is in the INCR file, before a
/// kill -9. Under `appendfsync everysec` a connection writes the log before
/// replying, except while the once-a-second fsync runs (Redis' rule: the
/// write is then postponed, up to 2 s), so a SET + DEL of a scratch key
/// goes last and the file is polled until it ends with that DEL: the log
/// is written in order.
#[track_caller]
fn settle(c: &mut Conn, dir: &Path) {
    assert_eq!(c.cmd("SET aof:settle 1"), b"+OK\r\n");
    assert_eq!(c.cmd("DEL aof:settle"), b":1\r\n");
    let del = resp(&["DEL", "aof:settle"]);
    let incr = last_incr(dir);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read(&incr).ends_with(&del) {
        assert!(
            Instant::now() < deadline,
            "{} never got the last write",
            incr.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `redis-check-aof <manifest>` must accept the directory (skipped when
/// the tool is not installed).
fn check_aof(dir: &Path) {
    let Some(tool) = redis_tool("redis-check-aof") else {
        return;
    };
    let manifest = aof_dir(dir).join(MANIFEST);
    let out = Command::new(tool)
        .arg(&manifest)
        .output()
        .expect("redis-check-aof");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("All AOF files and manifest are valid"),
        "redis-check-aof refused {}:\n{text}",
        manifest.display()
    );
}

#[track_caller]
fn no_panic(what: &str, log: &str) {
    assert!(!log.contains("panicked"), "{what}: panic:\n{log}");
}

/// Starts a server in `dir` with a fresh log (so error messages of earlier
/// starts in the same directory do not count).
fn try_start_fresh_log(dir: &Path, extra: &[&str]) -> Result<Server, String> {
    let _ = std::fs::remove_file(dir.join("server.log"));
    Server::try_start_in(dir, extra)
}

/// Counts with INCR on its own connection, in DB 9, until `stop`; returns
/// the last acknowledged value (each reply must be the previous one plus
/// one).
fn incr_until(port: u16, stop: Arc<AtomicBool>, started: std::sync::mpsc::Sender<()>) -> i64 {
    let mut c = Conn::connect(port).unwrap();
    c.cmd("SELECT 9");
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) || n == 0 {
        let v = c.value("INCR ctr").as_int().expect("INCR reply");
        assert_eq!(v, n + 1, "INCR replies out of order");
        n = v;
        if n == 1 {
            let _ = started.send(());
        }
    }
    n
}

/// A rewrite while another connection keeps counting in DB 9: every INCR
/// is in exactly one of BASE and new INCR (`ctr` ends at the last reply),
/// and the new INCR starts with SELECT 9. Adds `ctr` to DB 9's keys
/// (`sets[1]`) and returns the final count.
fn rewrite_under_writes(srv: &Server, c: &mut Conn, sets: &mut [(usize, Vec<Vec<u8>>)]) -> i64 {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let port = srv.port();
    let s2 = stop.clone();
    let counter = std::thread::spawn(move || incr_until(port, s2, tx));
    rx.recv_timeout(Duration::from_secs(10))
        .expect("counter did not start");
    rewrite(c);
    stop.store(true, Ordering::Relaxed);
    let n = counter.join().expect("counter thread");
    assert!(n > 1);
    c.cmd("SELECT 9");
    assert_eq!(
        c.value("GET ctr").as_bytes(),
        Some(n.to_string().as_bytes())
    );
    c.cmd("SELECT 0");
    assert_eq!(sets[1].0, 9);
    sets[1].1.push(b("ctr"));
    n
}

/// The last INCR's first command selects DB 9 (a new INCR file starts
/// with a SELECT even when the stream's DB did not change).
#[track_caller]
fn starts_with_select9(incr: &Path) {
    let bytes = read(incr);
    assert!(
        bytes.starts_with(&resp(&["SELECT", "9"])),
        "{} must start with SELECT 9: {}",
        incr.display(),
        escape_max(&bytes, 200)
    );
}

/// `ctr` (DB 9) after a restart.
fn ctr(c: &mut Conn) -> Option<Vec<u8>> {
    c.cmd("SELECT 9");
    let v = c.value("GET ctr").as_bytes().map(<[u8]>::to_vec);
    c.cmd("SELECT 0");
    v
}

/// (1) Commands only (`aof-use-rdb-preamble no`): every type over DBs 0
/// and 9 comes back after kill -9, then again after a BGREWRITEAOF
/// (during which another connection writes), more writes and kill -9.
#[test]
fn aof_only_round_trip_and_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let a = args(AOF, &["--aof-use-rdb-preamble", "no"]);
    let srv = Server::start_in(dir.path(), &a);
    let mut c = srv.conn();
    let mut sets = fill_dbs(&mut c);
    let before = Dataset::take(&mut c, &sets);
    settle(&mut c, dir.path());
    drop(c);
    srv.kill9();
    assert_eq!(
        manifest_text(dir.path()),
        "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    assert_eq!(
        read(&aof_dir(dir.path()).join("appendonly.aof.1.base.aof")),
        b"",
        "the base of an empty dataset, commands format"
    );
    check_aof(dir.path());

    let srv = Server::start_in(dir.path(), &a);
    let mut c = srv.conn();
    before.check(&mut c, "after restart");

    let n = rewrite_under_writes(&srv, &mut c, &mut sets);
    assert_eq!(
        manifest_text(dir.path()),
        "file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    let base = read(&aof_dir(dir.path()).join("appendonly.aof.2.base.aof"));
    assert!(
        base.starts_with(b"*"),
        "a commands base: {}",
        escape_max(&base, 100)
    );
    more_writes(&mut c, &mut sets, "x");
    let before = Dataset::take(&mut c, &sets);
    settle(&mut c, dir.path());
    drop(c);
    srv.kill9();
    starts_with_select9(&aof_dir(dir.path()).join(INCR2));
    assert_eq!(
        aof_files(dir.path()).len(),
        3,
        "{:?}",
        aof_files(dir.path())
    );
    check_aof(dir.path());

    let srv = Server::start_in(dir.path(), &a);
    let mut c = srv.conn();
    before.check(&mut c, "after rewrite + restart");
    assert_eq!(ctr(&mut c), Some(b(&n.to_string())));
    no_panic("round trip", &srv.log());
}

/// (2) RDB preamble (the default): BGREWRITEAOF under concurrent writes,
/// writes after it, kill -9: the manifest lists the seq-2 files only, the
/// seq-1 files are gone, everything comes back.
#[test]
fn rdb_preamble_rewrite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AOF);
    let mut c = srv.conn();
    let mut sets = fill_dbs(&mut c);
    let n = rewrite_under_writes(&srv, &mut c, &mut sets);
    more_writes(&mut c, &mut sets, "y");
    let before = Dataset::take(&mut c, &sets);
    settle(&mut c, dir.path());
    drop(c);
    srv.kill9();
    assert_eq!(
        manifest_text(dir.path()),
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert_eq!(
        aof_files(dir.path()),
        ["appendonly.aof.2.base.rdb", INCR2, MANIFEST],
        "the seq-1 files must be gone"
    );
    let base = read(&aof_dir(dir.path()).join("appendonly.aof.2.base.rdb"));
    assert!(base.starts_with(b"REDIS"), "{}", escape_max(&base, 40));
    starts_with_select9(&aof_dir(dir.path()).join(INCR2));
    // No temp files left in the working directory.
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("temp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    check_aof(dir.path());

    let srv = Server::start_in(dir.path(), AOF);
    let mut c = srv.conn();
    before.check(&mut c, "after restart");
    assert_eq!(ctr(&mut c), Some(b(&n.to_string())));
    let log = srv.log();
    assert!(
        log.contains("DB loaded from base file appendonly.aof.2.base.rdb"),
        "{log}"
    );
    assert!(
        log.contains("DB loaded from incr file appendonly.aof.2.incr.aof"),
        "{log}"
    );
    no_panic("preamble round trip", &log);
}

/// (3) A fresh directory: base, empty INCR and manifest as Redis 7.0.15
/// writes them; `SET a 1` is logged byte for byte.
#[test]
fn fresh_directory_layout_and_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AOF);
    assert_eq!(
        aof_files(dir.path()),
        ["appendonly.aof.1.base.rdb", INCR1, MANIFEST]
    );
    assert_eq!(
        manifest_text(dir.path()),
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    let base_path = aof_dir(dir.path()).join("appendonly.aof.1.base.rdb");
    let base = read(&base_path);
    assert!(base.starts_with(b"REDIS"), "{}", escape_max(&base, 40));
    let incr = aof_dir(dir.path()).join(INCR1);
    assert_eq!(read(&incr), b"", "the first INCR is empty");
    let log = srv.log();
    assert!(
        log.contains("Creating AOF base file appendonly.aof.1.base.rdb on server start"),
        "{log}"
    );
    assert!(
        log.contains("Creating AOF incr file appendonly.aof.1.incr.aof on server start"),
        "{log}"
    );
    let mut c = srv.conn();
    assert_eq!(c.cmd("SET a 1"), b"+OK\r\n");
    let expected: &[u8] =
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
    wait_len(&incr, expected.len());
    assert_eq!(escape(&read(&incr)), escape(expected));
    let i = persistence(&mut c);
    assert_eq!(i["aof_enabled"], "1");
    assert_eq!(i["aof_last_write_status"], "ok");
    if let Some(tool) = redis_tool("redis-check-rdb") {
        let out = Command::new(tool).arg(&base_path).output().unwrap();
        assert!(
            out.status.success(),
            "redis-check-rdb refused the base:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    drop(c);
    srv.kill9();
    check_aof(dir.path());
}

/// (4) Interop: redis-server 7.0.15's AOF directory loads into ours with
/// every key, and ours loads into redis-server and passes redis-check-aof.
#[test]
fn aof_travels_both_ways_with_redis() {
    // Build (or find) our binary before redis' dataset is taken: the first
    // start of a test process may build it, and TTLs run down meanwhile.
    let _ = tests::codis_server_bin();
    if redis_tool("redis-server").is_none() {
        return;
    }
    // Redis → ours.
    let rdir = tempfile::tempdir().unwrap();
    let mut redis =
        RedisServer::start_in(rdir.path(), &args(AOF, &["--enable-debug-command", "yes"])).unwrap();
    let mut r = redis.conn();
    assert_eq!(r.cmd("DEBUG POPULATE 1000"), b"+OK\r\n");
    let mut sets = fill_dbs(&mut r);
    sets[0].1.extend((0..1000).map(|i| b(&format!("key:{i}"))));
    rewrite(&mut r);
    more_writes(&mut r, &mut sets, "r");
    let before = Dataset::take(&mut r, &sets);
    redis.shutdown_with(r, &["SHUTDOWN"]);
    drop(redis);
    assert_eq!(
        manifest_text(rdir.path()),
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    let ours = Server::start_in(rdir.path(), AOF);
    let mut c = ours.conn();
    before.check(&mut c, "of redis' AOF in ours");
    // Ours appends to redis' INCR and keeps its manifest.
    let manifest = manifest_text(rdir.path());
    assert_eq!(c.cmd("SET fromours 1"), b"+OK\r\n");
    assert_eq!(c.value("GET fromours").as_bytes(), Some(&b"1"[..]));
    drop(c);
    drop(ours);
    assert_eq!(manifest_text(rdir.path()), manifest);
    let incr = read(&aof_dir(rdir.path()).join(INCR2));
    assert!(
        incr.ends_with(&[resp(&["SELECT", "0"]), resp(&["SET", "fromours", "1"])].concat()),
        "{}",
        escape_max(&incr[incr.len().saturating_sub(100)..], 200)
    );
    check_aof(rdir.path());

    // Ours → Redis.
    let odir = tempfile::tempdir().unwrap();
    let mut ours = Server::start_in(odir.path(), AOF);
    let mut c = ours.conn();
    let mut sets = fill_dbs(&mut c);
    rewrite(&mut c);
    more_writes(&mut c, &mut sets, "o");
    let before = Dataset::take(&mut c, &sets);
    ours.shutdown_with(c, &["SHUTDOWN"]);
    drop(ours);
    check_aof(odir.path());
    let redis = RedisServer::start_in(odir.path(), AOF).unwrap();
    let mut r = redis.conn();
    before.check(&mut r, "of our AOF in redis");
}

/// (5) `CONFIG SET appendonly yes` at run time writes a base of what is
/// there; later writes go to the INCR; a restart with the AOF has it all.
/// `appendonly no` stops it (INFO's size lines go away).
#[test]
fn appendonly_switched_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.conn();
    let mut sets = fill_dbs(&mut c);
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    assert!(!persistence(&mut c).contains_key("aof_current_size"));
    assert_eq!(c.cmd("CONFIG SET appendonly yes"), b"+OK\r\n");
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    wait_rewrite(&mut c, 1);
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    assert_eq!(
        manifest_text(dir.path()),
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    more_writes(&mut c, &mut sets, "rt");
    let before = Dataset::take(&mut c, &sets);
    settle(&mut c, dir.path());
    drop(c);
    srv.kill9();
    check_aof(dir.path());

    let srv = Server::start_in(dir.path(), AOF);
    let mut c = srv.conn();
    before.check(&mut c, "after restart");
    let i = persistence(&mut c);
    assert_eq!(i["aof_enabled"], "1");
    assert!(i.contains_key("aof_current_size"));

    assert_eq!(c.cmd("CONFIG SET appendonly no"), b"+OK\r\n");
    let i = persistence(&mut c);
    assert_eq!(i["aof_enabled"], "0");
    assert!(!i.contains_key("aof_current_size"), "{i:?}");
    assert!(!i.contains_key("aof_base_size"), "{i:?}");
    assert_eq!(
        c.value("CONFIG GET appendonly").as_array().unwrap()[1].as_bytes(),
        Some(&b"no"[..])
    );
    // Writes no longer reach the files.
    let incr = aof_dir(dir.path()).join(INCR1);
    let len = read(&incr).len();
    assert_eq!(c.cmd("SET notlogged 1"), b"+OK\r\n");
    drop(c);
    srv.kill9();
    assert_eq!(read(&incr).len(), len, "written after appendonly no");
    let srv = Server::start_in(dir.path(), AOF);
    let mut c = srv.conn();
    assert_eq!(c.cmd("EXISTS notlogged"), b":0\r\n");
    before.check_keys(&mut c);
}

/// (6) An old single-file `appendonly.aof` (plain commands, or an RDB
/// preamble and a command tail) moves into the directory as its base.
#[test]
fn old_single_file_aof_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Vec::new();
    old.extend(resp(&["SELECT", "0"]));
    old.extend(resp(&["SET", "k", "v"]));
    old.extend(resp(&["RPUSH", "l", "a", "b", "c"]));
    old.extend(resp(&["SELECT", "5"]));
    old.extend(resp(&["SET", "k5", "five"]));
    std::fs::write(dir.path().join("appendonly.aof"), &old).unwrap();
    let srv = Server::start_in(dir.path(), AOF);
    let mut c = srv.conn();
    assert_eq!(c.cmd("GET k"), b"$1\r\nv\r\n");
    assert_eq!(
        c.cmd("LRANGE l 0 -1"),
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    );
    c.cmd("SELECT 5");
    assert_eq!(c.cmd("GET k5"), b"$4\r\nfive\r\n");
    c.cmd("SELECT 0");
    assert!(!dir.path().join("appendonly.aof").exists(), "old file left");
    assert_eq!(read(&aof_dir(dir.path()).join("appendonly.aof")), old);
    assert_eq!(
        manifest_text(dir.path()),
        "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    assert!(
        srv.log()
            .contains("Successfully migrated an old-style AOF file (appendonly.aof) into the AOF directory (appendonlydir)."),
        "{}",
        srv.log()
    );
    // It keeps working: a write, kill -9, restart.
    assert_eq!(c.cmd("SET after 1"), b"+OK\r\n");
    assert_eq!(c.cmd("GET after"), b"$1\r\n1\r\n");
    settle(&mut c, dir.path());
    drop(c);
    srv.kill9();
    check_aof(dir.path());
    let srv = Server::start_in(dir.path(), AOF);
    let mut c = srv.conn();
    assert_eq!(c.cmd("GET k"), b"$1\r\nv\r\n");
    assert_eq!(c.cmd("GET after"), b"$1\r\n1\r\n");
    drop(c);
    drop(srv);

    // An old file with an RDB preamble (an RDB followed by commands).
    let rdb_dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(rdb_dir.path(), &[]);
    let mut c = srv.conn();
    let sets = fill_dbs(&mut c);
    let before = Dataset::take(&mut c, &sets);
    assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
    drop(c);
    srv.kill9();
    let mut old = read(&rdb_dir.path().join("dump.rdb"));
    old.extend(resp(&["SELECT", "3"]));
    old.extend(resp(&["SET", "tail", "t"]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("appendonly.aof"), &old).unwrap();
    let srv = Server::start_in(dir.path(), AOF);
    let mut c = srv.conn();
    before.check_keys(&mut c);
    c.cmd("SELECT 3");
    assert_eq!(c.cmd("GET tail"), b"$1\r\nt\r\n");
    let log = srv.log();
    assert!(
        log.contains("Reading RDB preamble from AOF file..."),
        "{log}"
    );
    assert!(log.contains("Reading the remaining AOF tail..."), "{log}");
    no_panic("upgrade", &log);
}

/// (7) Damaged files: a truncated last command is cut off (or refused with
/// `aof-load-truncated no`), an incomplete MULTI at the end is reverted,
/// garbage, unknown commands, a missing file and a blank manifest line
/// stop start-up with Redis' messages; never a panic.
#[test]
fn damaged_files_are_truncated_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let srv = Server::start_in(d, AOF);
    let mut c = srv.conn();
    let mut cmds = Vec::new();
    for i in 0..50 {
        cmds.push(vec![b("SET"), b(&format!("key{i}")), b(&format!("v{i}"))]);
    }
    cmds.push(vec![b("RPUSH"), b("list"), b("a"), b("b")]);
    pipeline(&mut c, &cmds);
    let keys: Vec<Vec<u8>> = (0..50)
        .map(|i| b(&format!("key{i}")))
        .chain([b("list")])
        .collect();
    let before = snapshot(&mut c, &keys);
    assert_eq!(before.len(), 51);
    settle(&mut c, d);
    drop(c);
    srv.kill9();
    let incr = aof_dir(d).join(INCR1);
    let manifest = aof_dir(d).join(MANIFEST);
    let good = read(&incr);
    let good_manifest = read(&manifest);
    let half: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nx";
    let with = |tail: &[u8]| [good.as_slice(), tail].concat();

    // Half a command at the end: cut off, loaded anyway.
    std::fs::write(&incr, with(half)).unwrap();
    let srv = try_start_fresh_log(d, AOF).unwrap_or_else(|e| panic!("truncated tail: {e}"));
    let log = srv.log();
    assert!(
        log.contains(
            "!!! Warning: short read while loading the AOF file appendonly.aof.1.incr.aof!!!"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "AOF appendonly.aof.1.incr.aof loaded anyway because aof-load-truncated is enabled"
        ),
        "{log}"
    );
    no_panic("truncated tail", &log);
    assert_eq!(
        read(&incr),
        good,
        "the file is cut back to its last command"
    );
    let mut c = srv.conn();
    assert_same(&before, &snapshot(&mut c, &keys), Duration::ZERO);
    assert_eq!(c.cmd("EXISTS x"), b":0\r\n");
    // Appending goes on right after the last whole command.
    assert_eq!(c.cmd("SET fresh 1"), b"+OK\r\n");
    let appended = [resp(&["SELECT", "0"]), resp(&["SET", "fresh", "1"])].concat();
    wait_len(&incr, good.len() + appended.len());
    drop(c);
    srv.kill9();
    let good = read(&incr);
    assert_eq!(
        escape(&good[good.len() - appended.len()..]),
        escape(&appended)
    );
    let with = |tail: &[u8]| [good.as_slice(), tail].concat();

    // The same with aof-load-truncated no: refused, the file left alone.
    std::fs::write(&incr, with(half)).unwrap();
    let e = match try_start_fresh_log(d, &args(AOF, &["--aof-load-truncated", "no"])) {
        Ok(_) => panic!("started on a truncated AOF with aof-load-truncated no"),
        Err(e) => e,
    };
    assert!(
        e.contains("Unexpected end of file reading the append only file appendonly.aof.1.incr.aof"),
        "{e}"
    );
    no_panic("aof-load-truncated no", &e);
    assert_eq!(read(&incr), with(half), "the file must not be touched");

    // An incomplete MULTI at the end: reverted.
    let mut multi = resp(&["MULTI"]);
    multi.extend(resp(&["SET", "m", "1"]));
    multi.extend(resp(&["SET", "key0", "changed"]));
    std::fs::write(&incr, with(&multi)).unwrap();
    let srv = try_start_fresh_log(d, AOF).unwrap_or_else(|e| panic!("open MULTI: {e}"));
    let log = srv.log();
    assert!(
        log.contains(
            "Revert incomplete MULTI/EXEC transaction in AOF file appendonly.aof.1.incr.aof"
        ),
        "{log}"
    );
    no_panic("open MULTI", &log);
    let mut c = srv.conn();
    assert_eq!(c.cmd("EXISTS m"), b":0\r\n");
    assert_eq!(c.cmd("GET key0"), b"$2\r\nv0\r\n");
    assert_eq!(c.cmd("GET fresh"), b"$1\r\n1\r\n");
    drop(c);
    srv.kill9();
    assert_eq!(read(&incr), good, "the open MULTI is cut off");

    // Refusals: (what, INCR, manifest, expected message).
    let boundary = good[1..]
        .windows(3)
        .position(|w| w == b"\n*3")
        .map(|p| p + 2)
        .expect("a second command");
    let garbage = [&good[..boundary], b"hello\r\n", &good[boundary..]].concat();
    let mut blank = good_manifest.clone();
    let nl = blank.iter().position(|&x| x == b'\n').unwrap();
    blank.insert(nl + 1, b'\n');
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
        (
            "garbage line",
            garbage,
            good_manifest.clone(),
            "Bad file format reading the append only file appendonly.aof.1.incr.aof",
        ),
        (
            "unknown command",
            with(&resp(&["NOSUCHCOMMAND", "a"])),
            good_manifest.clone(),
            "Unknown command 'NOSUCHCOMMAND' reading the append only file appendonly.aof.1.incr.aof",
        ),
        (
            "blank manifest line",
            good.clone(),
            blank,
            "Invalid AOF manifest file format",
        ),
        (
            "missing incr",
            good.clone(),
            [
                good_manifest.as_slice(),
                b"file appendonly.aof.7.incr.aof seq 7 type i\n",
            ]
            .concat(),
            "Unable to obtain the AOF file appendonly.aof.7.incr.aof length",
        ),
    ];
    for (what, incr_bytes, manifest_bytes, msg) in cases {
        std::fs::write(&incr, &incr_bytes).unwrap();
        std::fs::write(&manifest, &manifest_bytes).unwrap();
        match try_start_fresh_log(d, AOF) {
            Ok(_) => panic!("{what}: started"),
            Err(e) => {
                assert!(e.contains(msg), "{what}: expected {msg:?} in:\n{e}");
                no_panic(what, &e);
            }
        }
    }

    // Repaired: everything is back.
    std::fs::write(&incr, &good).unwrap();
    std::fs::write(&manifest, &good_manifest).unwrap();
    let srv = try_start_fresh_log(d, AOF).unwrap_or_else(|e| panic!("repaired: {e}"));
    let mut c = srv.conn();
    assert_same(&before, &snapshot(&mut c, &keys), Duration::ZERO);
    assert_eq!(c.cmd("DBSIZE"), b":52\r\n");
}

/// (8) `appendfsync always`: by the time a write's reply arrives, the
/// command is in the INCR file.
#[test]
fn appendfsync_always_writes_before_replying() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), &args(AOF, &["--appendfsync", "always"]));
    let incr = aof_dir(dir.path()).join(INCR1);
    let mut c = srv.conn();
    for i in 0..200 {
        let k = format!("k{i}");
        assert_eq!(c.send(&["SET", &k, "v"]), b"+OK\r\n");
        let file = read(&incr);
        assert!(
            file.ends_with(&resp(&["SET", &k, "v"])),
            "SET {k} acknowledged but not in the file yet: ...{}",
            escape_max(&file[file.len().saturating_sub(80)..], 100)
        );
    }
}

/// Redis writes the AOF buffer before it replies under every policy
/// (flushAppendOnlyFile runs in beforeSleep, before replies go out), so a
/// process crash (kill -9) never loses an acknowledged write.
#[test]
fn appendfsync_everysec_writes_before_replying() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AOF);
    let incr = aof_dir(dir.path()).join(INCR1);
    let mut c = srv.conn();
    for i in 0..200 {
        let k = format!("k{i}");
        assert_eq!(c.send(&["SET", &k, "v"]), b"+OK\r\n");
        let file = read(&incr);
        assert!(
            file.ends_with(&resp(&["SET", &k, "v"])),
            "SET {k} acknowledged but not in the file yet"
        );
    }
    assert_eq!(c.cmd("INCR n"), b":1\r\n");
    drop(c);
    srv.kill9();
    let srv = Server::start_in(dir.path(), AOF);
    assert_eq!(
        srv.conn().cmd("GET n"),
        b"$1\r\n1\r\n",
        "acknowledged INCR lost"
    );
}

/// (9) DEBUG LOADAOF reloads the same data; INFO's aof fields are sane;
/// two BGREWRITEAOF in a row: the second is refused while the first runs.
#[test]
fn debug_loadaof_info_and_double_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), &args(AOF, &["--enable-debug-command", "yes"]));
    let mut c = srv.conn();
    let sets = fill_dbs(&mut c);
    let before = Dataset::take(&mut c, &sets);
    assert_eq!(c.cmd("DEBUG LOADAOF"), b"+OK\r\n");
    before.check(&mut c, "after DEBUG LOADAOF");
    assert!(
        srv.log()
            .contains("Append Only File loaded by DEBUG LOADAOF")
    );

    let on_disk = |d: &Path| -> i64 {
        let m = manifest_text(d);
        m.lines()
            .filter(|l| l.ends_with(" type b") || l.ends_with(" type i"))
            .map(|l| {
                let name = l.split(' ').nth(1).unwrap();
                std::fs::metadata(aof_dir(d).join(name)).unwrap().len() as i64
            })
            .sum()
    };
    let i = persistence(&mut c);
    assert_eq!(i["aof_enabled"], "1");
    assert_eq!(i["aof_rewrites"], "0");
    assert_eq!(i["aof_last_bgrewrite_status"], "ok");
    assert_eq!(i["aof_last_write_status"], "ok");
    assert_eq!(i["aof_rewrite_in_progress"], "0");
    let current: i64 = i["aof_current_size"].parse().unwrap();
    let base: i64 = i["aof_base_size"].parse().unwrap();
    assert!(current > 100_000, "aof_current_size:{current} after fill");
    assert_eq!(current, on_disk(dir.path()), "aof_current_size vs files");
    assert!((0..=current).contains(&base), "aof_base_size:{base}");

    // Two in a row, pipelined.
    let mut bytes = resp(&["BGREWRITEAOF"]);
    bytes.extend(resp(&["BGREWRITEAOF"]));
    c.write_raw(&bytes).unwrap();
    let first = c.read_reply().unwrap();
    let second = c.read_reply().unwrap();
    assert_eq!(
        escape(&first),
        escape(b"+Background append only file rewriting started\r\n")
    );
    let expect = if second == b"-ERR Background append only file rewriting already in progress\r\n"
    {
        1
    } else {
        assert_eq!(
            escape(&second),
            escape(b"+Background append only file rewriting started\r\n")
        );
        2
    };
    wait_rewrite(&mut c, expect);
    let i = persistence(&mut c);
    assert_eq!(i["aof_rewrites"], expect.to_string());
    assert_eq!(i["aof_rewrites_consecutive_failures"], "0");
    let current: i64 = i["aof_current_size"].parse().unwrap();
    let base: i64 = i["aof_base_size"].parse().unwrap();
    assert_eq!(current, on_disk(dir.path()), "aof_current_size vs files");
    assert_eq!(base, current, "right after a rewrite the base is all");
    assert!(
        i["aof_last_rewrite_time_sec"].parse::<i64>().unwrap() >= 0,
        "{i:?}"
    );
    assert_eq!(i["aof_current_rewrite_time_sec"], "-1");
    assert_eq!(c.cmd("DEBUG LOADAOF"), b"+OK\r\n");
    before.check_keys(&mut c);
}

/// (10) A transaction of three writes is logged as MULTI … EXEC (command
/// names as sent) and comes back after kill -9.
#[test]
fn transactions_are_logged_in_multi_exec() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AOF);
    let incr = aof_dir(dir.path()).join(INCR1);
    let mut c = srv.conn();
    assert_eq!(c.cmd("MULTI"), b"+OK\r\n");
    assert_eq!(c.cmd("SET a 1"), b"+QUEUED\r\n");
    assert_eq!(c.cmd("INCR n"), b"+QUEUED\r\n");
    assert_eq!(c.cmd("GET a"), b"+QUEUED\r\n");
    assert_eq!(c.cmd("RPUSH l x"), b"+QUEUED\r\n");
    assert_eq!(
        c.cmd("EXEC"),
        b"*4\r\n+OK\r\n:1\r\n$1\r\n1\r\n:1\r\n".to_vec()
    );
    // A read-only transaction is not logged.
    c.cmd("MULTI");
    c.cmd("GET a");
    c.cmd("EXEC");
    let expected = [
        resp(&["SELECT", "0"]),
        resp(&["MULTI"]),
        resp(&["SET", "a", "1"]),
        resp(&["INCR", "n"]),
        resp(&["RPUSH", "l", "x"]),
        resp(&["EXEC"]),
    ]
    .concat();
    wait_len(&incr, expected.len());
    assert_eq!(escape(&read(&incr)), escape(&expected));
    drop(c);
    srv.kill9();
    let srv = Server::start_in(dir.path(), AOF);
    let mut c = srv.conn();
    assert_eq!(c.cmd("GET a"), b"$1\r\n1\r\n");
    assert_eq!(c.cmd("GET n"), b"$1\r\n1\r\n");
    assert_eq!(c.cmd("LRANGE l 0 -1"), b"*1\r\n$1\r\nx\r\n");
    assert_eq!(c.cmd("DBSIZE"), b":3\r\n");
}

/// Redis 7.0 logs a transaction with a single write without MULTI/EXEC
/// (propagatePendingCommands wraps only when more than one command is
/// propagated).
#[test]
fn single_write_transaction_is_logged_bare() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AOF);
    let incr = aof_dir(dir.path()).join(INCR1);
    let mut c = srv.conn();
    c.cmd("MULTI");
    c.cmd("SET a 1");
    c.cmd("GET a");
    c.cmd("EXEC");
    c.cmd("SET b 2");
    let expected = [
        resp(&["SELECT", "0"]),
        resp(&["SET", "a", "1"]),
        resp(&["SET", "b", "2"]),
    ]
    .concat();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read(&incr).ends_with(&resp(&["SET", "b", "2"])) {
        assert!(Instant::now() < deadline, "SET b never logged");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(escape(&read(&incr)), escape(&expected));
}

/// (11) Codis: slots migrated (sync and async) between two AOF servers stay
/// where they went after both are killed and restart from their AOF.
#[test]
fn migrated_slots_stay_where_they_went_after_aof_restart() {
    use tests::data::{keys_in_slot, migrate_three_slots, slot_size};
    let (sd, td) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = Server::start_in(sd.path(), AOF);
    let dst = Server::start_in(td.path(), AOF);
    let mut s = src.conn();
    let slots = migrate_three_slots(&mut s, dst.port());
    let mut t = dst.conn();
    assert_eq!(slots.map(|sl| slot_size(&mut s, sl)), [0, 0, 201]);
    assert_eq!(slots.map(|sl| slot_size(&mut t, sl)), [201, 201, 0]);
    settle(&mut s, sd.path());
    settle(&mut t, td.path());
    drop((s, t));
    src.kill9();
    dst.kill9();
    let src = Server::start_in(sd.path(), AOF);
    let dst = Server::start_in(td.path(), AOF);
    let (mut s, mut t) = (src.conn(), dst.conn());
    assert_eq!(
        slots.map(|sl| slot_size(&mut s, sl)),
        [0, 0, 201],
        "source slots after restart"
    );
    assert_eq!(
        slots.map(|sl| slot_size(&mut t, sl)),
        [201, 201, 0],
        "target slots after restart"
    );
    assert_eq!(s.value("DBSIZE").as_int(), Some(201));
    assert_eq!(t.value("DBSIZE").as_int(), Some(402));
    assert!(!s.value("SLOTSCHECK").is_error());
    assert!(!t.value("SLOTSCHECK").is_error());
    let moved = keys_in_slot(17, 200, "m17:");
    assert_eq!(
        t.send_value(&["GET", &moved[0]]).as_bytes(),
        Some(&b"v"[..])
    );
    assert_eq!(s.send(&["EXISTS", &moved[0]]), b":0\r\n");
}
