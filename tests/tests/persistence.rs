//! RDB persistence (issue 12): every type survives a restart through SAVE,
//! BGSAVE, SHUTDOWN SAVE, SIGTERM with save points and DEBUG RELOAD; files
//! travel both ways with a real redis-server 7.0.15 and pass
//! `redis-check-rdb`; a BGSAVE taken under concurrent transactions is a
//! point in time; save points, FLUSHALL and MISCONF behave as Redis'; a
//! truncated or corrupt file stops start-up with a message, never a panic;
//! slots migrated away stay away after both servers restart.
//! Servers are killed with SIGKILL after a save so only the file counts.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tests::data::{Dataset, compare_dbs, fill_dbs, persistence_field, pipeline, snapshot_dbs};
use tests::{Conn, RedisServer, Server, redis_tool};

const DEBUG: &[&str] = &["--enable-debug-command", "yes"];

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn wait_bgsave(c: &mut Conn) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while persistence_field(c, "rdb_bgsave_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_rdb(path: &Path) {
    let Some(tool) = redis_tool("redis-check-rdb") else {
        return;
    };
    let out = Command::new(tool)
        .arg(path)
        .output()
        .expect("redis-check-rdb");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("RDB looks OK"),
        "redis-check-rdb refused {}:\n{text}",
        path.display()
    );
}

/// How a test makes the server write its file before it goes away.
#[derive(Clone, Copy, Debug)]
enum Via {
    Save,
    Bgsave,
    ShutdownSave,
    Sigterm,
}

fn round_trip(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let extra: &[&str] = match via {
        Via::Sigterm => &["--save", "3600 1"],
        _ => &[],
    };
    let mut srv = Server::start_in(dir.path(), extra);
    let mut c = srv.conn();
    let sets = fill_dbs(&mut c);
    let before = Dataset::take(&mut c, &sets);
    match via {
        Via::Save => {
            assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
            srv.kill9();
        }
        Via::Bgsave => {
            assert_eq!(c.cmd("BGSAVE"), b"+Background saving started\r\n");
            wait_bgsave(&mut c);
            assert_eq!(persistence_field(&mut c, "rdb_last_bgsave_status"), "ok");
            assert_eq!(
                persistence_field(&mut c, "rdb_changes_since_last_save"),
                "0"
            );
            srv.kill9();
        }
        Via::ShutdownSave => srv.shutdown_with(c, &["SHUTDOWN", "SAVE"]),
        Via::Sigterm => {
            assert!(srv.sigterm(Duration::from_secs(30)), "SIGTERM did not exit");
            assert!(
                srv.log().contains("DB saved on disk"),
                "no final save:\n{}",
                srv.log_tail(20)
            );
        }
    }
    check_rdb(&dir.path().join("dump.rdb"));
    let srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.conn();
    before.check(&mut c, &format!("after restart ({via:?})"));
    let sizes = before.sizes();
    let loaded: i64 = persistence_field(&mut c, "rdb_last_load_keys_loaded")
        .parse()
        .unwrap();
    assert_eq!(loaded, sizes.iter().sum::<i64>());
    // SLOTSINFO agrees with the keys loaded (per-slot tables rebuilt).
    let slots = c.value("SLOTSINFO 0 1024");
    let total: i64 = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_array().unwrap()[1].as_int().unwrap())
        .sum();
    assert_eq!(total, sizes[0]);
}

#[test]
fn restart_after_save() {
    round_trip(Via::Save);
}

#[test]
fn restart_after_bgsave() {
    round_trip(Via::Bgsave);
}

#[test]
fn restart_after_shutdown_save() {
    round_trip(Via::ShutdownSave);
}

#[test]
fn restart_after_sigterm_with_save_points() {
    round_trip(Via::Sigterm);
}

#[test]
fn debug_reload_keeps_everything() {
    let srv = Server::start(DEBUG);
    let mut c = srv.conn();
    let sets = fill_dbs(&mut c);
    let before = snapshot_dbs(&mut c, &sets);
    assert_eq!(c.cmd("DEBUG RELOAD"), b"+OK\r\n");
    compare_dbs(&mut c, &before, &sets);
    assert_eq!(
        c.cmd("DEBUG RELOAD BOGUS"),
        b"-ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.\r\n"
    );
    // NOFLUSH without MERGE finds every key twice: refused, data kept.
    assert_eq!(
        c.cmd("DEBUG RELOAD NOFLUSH NOSAVE"),
        b"-ERR Error trying to load the RDB dump\r\n"
    );
    assert_eq!(c.cmd("DEBUG RELOAD NOFLUSH MERGE NOSAVE"), b"+OK\r\n");
    compare_dbs(&mut c, &before, &sets);
}

/// Our file loads into redis-server 7.0.15 and redis-server's into ours,
/// with the same contents and TTLs.
#[test]
fn files_travel_both_ways_with_redis() {
    // Build (or find) our binary before redis' dataset is taken: the first
    // start of a test process may build it, and TTLs run down meanwhile.
    let _ = tests::codis_server_bin();
    let Some(_probe) = RedisServer::start() else {
        return;
    };
    drop(_probe);
    // Ours → Redis.
    let ours_dir = tempfile::tempdir().unwrap();
    let ours = Server::start_in(ours_dir.path(), &[]);
    let mut c = ours.conn();
    let sets = fill_dbs(&mut c);
    let before = snapshot_dbs(&mut c, &sets);
    assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
    ours.kill9();
    check_rdb(&ours_dir.path().join("dump.rdb"));
    let redis = RedisServer::start_in(ours_dir.path(), DEBUG).unwrap();
    let mut r = redis.conn();
    compare_dbs(&mut r, &before, &sets);

    // Redis → ours: the same data re-encoded by Redis (listpacks,
    // quicklists, intsets, LZF) plus DEBUG POPULATE keys.
    r.cmd("SELECT 3");
    assert_eq!(r.cmd("DEBUG POPULATE 5000 pop 40"), b"+OK\r\n");
    r.cmd("SELECT 0");
    let mut sets2 = sets.clone();
    sets2.push((3, (0..5000).map(|i| b(&format!("pop:{i}"))).collect()));
    let before2 = snapshot_dbs(&mut r, &sets2);
    assert_eq!(r.cmd("SAVE"), b"+OK\r\n");
    let redis_dir = redis.dir().to_path_buf();
    drop(r);
    redis.kill9();
    let ours = Server::start_in(&redis_dir, &[]);
    let mut c = ours.conn();
    compare_dbs(&mut c, &before2, &sets2);
}

/// BGSAVE is a point in time: transactions moving amounts between keys of
/// different slots keep their sum at 0, before, during and after the save;
/// the file must hold a state where it is 0 too.
#[test]
fn bgsave_is_a_point_in_time_under_writes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(
        dir.path(),
        &["--io-threads", "2", "--enable-debug-command", "yes"],
    );
    let mut c = srv.conn();
    // Bulk so the walk takes a while.
    assert_eq!(c.cmd("DEBUG POPULATE 200000 filler 32"), b"+OK\r\n");
    const N: usize = 64;
    let names: Vec<String> = (0..N).map(|i| format!("acct:{i}")).collect();
    for n in &names {
        c.send(&["SET", n, "0"]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let stop = stop.clone();
        let names = names.clone();
        let port = srv.port();
        writers.push(std::thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            let mut x = w.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let a = &names[(x % N as u64) as usize];
                let b2 = &names[((x >> 20) % N as u64) as usize];
                let mut bytes = Vec::new();
                for cmd in [
                    vec!["MULTI"],
                    vec!["INCRBY", a, "7"],
                    vec!["DECRBY", b2, "7"],
                    vec!["SET", &format!("new:{w}:{done}"), "x"],
                    vec!["EXEC"],
                ] {
                    bytes.extend_from_slice(&tests::resp::encode_command(&cmd));
                }
                c.write_raw(&bytes).unwrap();
                for _ in 0..5 {
                    c.read_reply().unwrap();
                }
                done += 1;
            }
            done
        }));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.cmd("BGSAVE"), b"+Background saving started\r\n");
    assert_eq!(
        c.cmd("BGSAVE"),
        b"-ERR Background save already in progress\r\n"
    );
    wait_bgsave(&mut c);
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let ops: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(ops > 0);
    assert_eq!(persistence_field(&mut c, "rdb_last_bgsave_status"), "ok");
    drop(c);
    srv.kill9();
    check_rdb(&dir.path().join("dump.rdb"));
    let srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.conn();
    let mut sum = 0i64;
    for n in &names {
        let v = c.send_value(&["GET", n]);
        sum += std::str::from_utf8(v.as_bytes().expect("account kept"))
            .unwrap()
            .parse::<i64>()
            .unwrap();
    }
    assert_eq!(sum, 0, "the snapshot mixes transactions");
    // Each writer's `new:` keys form a prefix 0..k (its transactions are
    // ordered): a hole would mean a later transaction is in the file and
    // an earlier one is not.
    let keys = c.value("KEYS new:*");
    let n_new = keys.as_array().unwrap().len();
    let mut per: [Vec<u64>; 3] = Default::default();
    for k in keys.as_array().unwrap() {
        let k = String::from_utf8(k.as_bytes().unwrap().to_vec()).unwrap();
        let mut it = k.split(':').skip(1);
        let w: usize = it.next().unwrap().parse().unwrap();
        per[w].push(it.next().unwrap().parse().unwrap());
    }
    for (w, mut v) in per.into_iter().enumerate() {
        v.sort_unstable();
        for (i, n) in v.iter().enumerate() {
            assert_eq!(*n, i as u64, "writer {w}: transaction {i} missing");
        }
    }
    assert_eq!(
        c.value("DBSIZE").as_int().unwrap() as usize,
        200_000 + N + n_new
    );
}

/// `save 1 1`: a change makes the cron save within a couple of seconds.
#[test]
fn save_points_trigger_bgsave() {
    let srv = Server::start(&["--save", "1 1"]);
    let mut c = srv.conn();
    let before = c.value("LASTSAVE").as_int().unwrap();
    c.cmd("SET a 1");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if c.value("LASTSAVE").as_int().unwrap() > before
            && persistence_field(&mut c, "rdb_changes_since_last_save") == "0"
        {
            break;
        }
        assert!(Instant::now() < deadline, "no save:\n{}", srv.log_tail(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(srv.log().contains("changes in 1 seconds. Saving..."));
    assert!(srv.dir().join("dump.rdb").exists());
}

/// FLUSHALL with save points writes the empty dataset; BGSAVE inside MULTI
/// is scheduled.
#[test]
fn flushall_saves_and_multi_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), &["--save", "3600 1"]);
    let mut c = srv.conn();
    c.cmd("SET a 1");
    assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
    assert_eq!(c.cmd("FLUSHALL"), b"+OK\r\n");
    assert_eq!(
        persistence_field(&mut c, "rdb_changes_since_last_save"),
        "1"
    );
    c.cmd("MULTI");
    c.cmd("BGSAVE");
    assert_eq!(
        c.cmd("EXEC"),
        b"*1\r\n+Background saving scheduled\r\n".to_vec()
    );
    wait_bgsave(&mut c);
    let deadline = Instant::now() + Duration::from_secs(10);
    while persistence_field(&mut c, "rdb_saves") != "2" {
        assert!(Instant::now() < deadline, "scheduled BGSAVE never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c);
    srv.kill9();
    let srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.conn();
    assert_eq!(c.value("DBSIZE").as_int(), Some(0));
}

/// A save that fails (its directory is gone) turns writes away with Redis'
/// MISCONF text while save points are configured, until a save succeeds.
#[test]
fn failed_save_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let srv = Server::start(&["--save", "3600 1", "--enable-protected-configs", "yes"]);
    let mut c = srv.conn();
    assert_eq!(
        c.send(&["CONFIG", "SET", "dir", work.to_str().unwrap()]),
        b"+OK\r\n"
    );
    std::fs::remove_dir(&work).unwrap();
    assert_eq!(c.cmd("BGSAVE"), b"-ERR\r\n");
    assert_eq!(persistence_field(&mut c, "rdb_last_bgsave_status"), "err");
    let misconf = c.cmd("SET a 1");
    assert!(misconf.starts_with(b"-MISCONF Redis is configured to save RDB snapshots"));
    assert_eq!(c.cmd("GET a"), b"$-1\r\n");
    std::fs::create_dir(&work).unwrap();
    // The old working directory is gone for good: point at the new one.
    assert_eq!(
        c.send(&["CONFIG", "SET", "dir", work.to_str().unwrap()]),
        b"+OK\r\n"
    );
    assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
    assert_eq!(c.cmd("SET a 1"), b"+OK\r\n");
}

/// Truncated, corrupted and foreign files stop start-up with a message.
#[test]
fn bad_files_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.conn();
    fill_dbs(&mut c);
    assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
    srv.kill9();
    let good = std::fs::read(dir.path().join("dump.rdb")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), "Short read"),
        ("no trailer", good[..good.len() - 8].to_vec(), "Short read"),
        (
            "bit flip",
            {
                let mut v = good.clone();
                let i = v.len() - 100;
                v[i] ^= 0x40;
                v
            },
            "Internal error in RDB",
        ),
        ("signature", b"NOTREDIS0010".to_vec(), "Wrong signature"),
        (
            "version",
            b"REDIS0042\xff".to_vec(),
            "Can't handle RDB format version 42",
        ),
    ];
    for (what, bytes, msg) in cases {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("dump.rdb"), &bytes).unwrap();
        match Server::try_start_in(d.path(), &[]) {
            Ok(_) => panic!("{what}: started on a bad file"),
            Err(e) => {
                assert!(e.contains(msg), "{what}: expected {msg:?} in:\n{e}");
                assert!(!e.contains("panicked"), "{what}: panic:\n{e}");
            }
        }
    }
    // An empty file is refused too, as Redis does.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("dump.rdb"), b"").unwrap();
    assert!(Server::try_start_in(d.path(), &[]).is_err());
}

/// Codis interplay: after slots move (one sync, one async) and both
/// servers save and are killed, each restarts holding exactly its slots,
/// with SLOTSINFO right after loading.
#[test]
fn migrated_slots_stay_where_they_went_after_restart() {
    use tests::data::{migrate_three_slots, slot_size};
    let (sd, td) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = Server::start_in(sd.path(), &[]);
    let dst = Server::start_in(td.path(), &[]);
    let mut s = src.conn();
    migrate_three_slots(&mut s, dst.port());
    assert_eq!(slot_size(&mut s, 300), 0);
    let mut t = dst.conn();
    assert_eq!(s.cmd("SAVE"), b"+OK\r\n");
    assert_eq!(t.cmd("SAVE"), b"+OK\r\n");
    drop((s, t));
    src.kill9();
    dst.kill9();
    let src = Server::start_in(sd.path(), &[]);
    let dst = Server::start_in(td.path(), &[]);
    let (mut s, mut t) = (src.conn(), dst.conn());
    assert_eq!(
        [17, 300, 901].map(|sl| slot_size(&mut s, sl)),
        [0, 0, 201],
        "source slots after restart"
    );
    assert_eq!(
        [17, 300, 901].map(|sl| slot_size(&mut t, sl)),
        [201, 201, 0],
        "target slots after restart"
    );
    assert_eq!(s.value("DBSIZE").as_int(), Some(201));
    assert_eq!(t.value("DBSIZE").as_int(), Some(402));
    // SLOTSCHECK agrees (every key in the slot its name hashes to).
    assert!(!s.value("SLOTSCHECK").is_error());
    assert!(!t.value("SLOTSCHECK").is_error());
}

/// A codis-server 3.2 RDB (version 7) loads with every key (runs when
/// `CODIS_SERVER_BIN` names a Codis 3.2 binary; prints SKIPPED otherwise).
#[test]
fn codis32_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let Some(old) = Server::start_codis32_in(dir.path(), &[]) else {
        return;
    };
    let mut c = old.conn();
    let sets = fill_dbs(&mut c);
    let before = snapshot_dbs(&mut c, &sets);
    assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
    drop(c);
    old.kill9();
    let ours = Server::start_in(dir.path(), &[]);
    let mut c = ours.conn();
    compare_dbs(&mut c, &before, &sets);
}

/// Every one of the 16 DBs, and values big enough to be written in slices
/// (a hash, list, set and zset of 40k elements, a 3 MB string): a BGSAVE
/// saves them as they were when it started, although another client
/// changes, deletes and replaces them while it runs; the file passes
/// `redis-check-rdb` and restores every DB.
#[test]
fn sixteen_dbs_and_big_values_as_of_the_snapshot_point() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.conn();
    let b = |s: &str| s.as_bytes().to_vec();
    let mut sets = Vec::new();
    for db in 0..16usize {
        c.send(&["SELECT", &db.to_string()]);
        let mut cmds = vec![
            vec![b("SET"), b(&format!("k{db}")), b(&format!("v{db}"))],
            vec![b("SET"), b("empty"), b("")],
        ];
        let mut keys = vec![b(&format!("k{db}")), b("empty")];
        if db % 5 == 0 {
            for i in (0..40_000).step_by(1000) {
                let r = i..i + 1000;
                let mut h = vec![b("HSET"), b("bh")];
                let mut l = vec![b("RPUSH"), b("bl")];
                let mut s = vec![b("SADD"), b("bs")];
                let mut z = vec![b("ZADD"), b("bz")];
                for j in r {
                    h.extend([b(&format!("f{j}")), b(&format!("v{j}"))]);
                    l.push(b(&format!("e{j}")));
                    s.push(b(&format!("m{j}")));
                    z.extend([b(&format!("{}", j as f64 / 3.0)), b(&format!("m{j}"))]);
                }
                cmds.extend([h, l, s, z]);
            }
            cmds.push(vec![b("SET"), b("bstr"), vec![b'x'; 3_000_000]]);
            cmds.push(vec![b("PEXPIRE"), b("bh"), b("900000")]);
            keys.extend(["bh", "bl", "bs", "bz", "bstr"].map(b));
        }
        pipeline(&mut c, &cmds);
        sets.push((db, keys));
    }
    c.send(&["SELECT", "0"]);
    let before = Dataset::take(&mut c, &sets);
    let mut m = srv.conn();
    assert_eq!(c.cmd("BGSAVE"), b"+Background saving started\r\n");
    // Change every big value at once: each is finished into the file first.
    for db in [0, 5, 10, 15] {
        m.send(&["SELECT", &db.to_string()]);
        m.send(&["HSET", "bh", "f1", "changed"]);
        m.send(&["RPUSH", "bl", "new"]);
        m.send(&["DEL", "bs"]);
        m.send(&["ZADD", "bz", "1", "only"]);
        m.send(&["SET", "bstr", "short"]);
        m.send(&["SET", &format!("k{db}"), "later"]);
    }
    wait_bgsave(&mut c);
    assert_eq!(persistence_field(&mut c, "rdb_last_bgsave_status"), "ok");
    srv.kill9();
    check_rdb(&dir.path().join("dump.rdb"));
    let srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.conn();
    before.check(&mut c, "after restart");
}
