//! Replication, replica side (issue 13): codis-server as a replica of a
//! redis-server 7.0.15 master (diskless `$EOF:` and disk-based payloads),
//! of our own master, and of another replica (chained); PSYNC2 keeps every
//! link partial across a link drop, a replica restart from its RDB, and a
//! promotion (REPLICAOF NO ONE: the sibling and the old master continue
//! with the promoted replica's second ID). Datasets are compared key by key
//! (DUMP + PTTL) and by DB sizes; offsets are compared across the chain.

use std::time::{Duration, Instant};

use tests::data::{Dataset, fill_dbs};
use tests::repl::{
    info_field, int_field, wait_caught_up, wait_link_up, wait_replica_online, wait_until,
};
use tests::{Conn, RedisServer, Server};

fn replicaof(port: u16) -> [String; 3] {
    ["--replicaof".into(), "127.0.0.1".into(), port.to_string()]
}

fn args(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// Writes a little of everything in DB 0 and 9 (a transaction too).
fn write_more(m: &mut Conn, tag: &str) {
    m.send(&["SELECT", "0"]);
    for i in 0..100 {
        m.send(&["SET", &format!("{tag}:{i}"), &i.to_string()]);
    }
    m.send(&["MULTI"]);
    m.send(&["INCR", &format!("{tag}:counter")]);
    m.send(&["LPUSH", &format!("{tag}:list"), "a", "b"]);
    m.send(&["EXEC"]);
    m.send(&["SELECT", "9"]);
    m.send(&["HSET", &format!("{tag}:hash"), "f", "v"]);
    m.send(&["SELECT", "0"]);
}

fn more_keys(sets: &mut [(usize, Vec<Vec<u8>>)], tag: &str) {
    for (db, keys) in sets.iter_mut() {
        if *db == 0 {
            keys.extend((0..100).map(|i| format!("{tag}:{i}").into_bytes()));
            keys.push(format!("{tag}:counter").into_bytes());
            keys.push(format!("{tag}:list").into_bytes());
        } else {
            keys.push(format!("{tag}:hash").into_bytes());
        }
    }
}

/// Our replica of a redis-server 7.0.15 master, with the payload streamed
/// (`repl-diskless-sync yes`: `$EOF:<mark>` framing) and from disk.
#[test]
fn our_replica_of_a_redis_master() {
    // (master's repl-diskless-sync, our repl-diskless-load)
    for (diskless, load) in [
        ("yes", "disabled"),
        ("no", "on-empty-db"),
        ("yes", "on-empty-db"),
    ] {
        let Some(redis) = RedisServer::start_with(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
            "--enable-debug-command",
            "yes",
        ]) else {
            return;
        };
        let mut m = redis.conn();
        let mut sets = fill_dbs(&mut m);
        // A key that expires on the master while active expiry is off
        // there: the replica hides it but keeps it until the master's DEL.
        assert_eq!(m.cmd("DEBUG SET-ACTIVE-EXPIRE 0"), b"+OK\r\n");
        assert_eq!(m.cmd("SET soon x PX 300"), b"+OK\r\n");
        let mut a = replicaof(redis.port()).to_vec();
        a.extend(["--repl-diskless-load".to_string(), load.to_string()]);
        let ours = Server::start(&args(&a));
        let mut r = ours.conn();
        wait_link_up(&mut r);
        let to = if load == "on-empty-db" {
            "memory"
        } else {
            "disk"
        };
        assert!(
            ours.log().contains(&format!(" to {to}\n")),
            "{}",
            ours.log()
        );
        write_more(&mut m, "after");
        more_keys(&mut sets, "after");
        wait_caught_up(&mut m, &mut r);
        let on_master = Dataset::take(&mut m, &sets);
        on_master.check(&mut r, &format!("(diskless {diskless}, load {load})"));
        // The replica refuses writes, serves reads, reports its link.
        assert_eq!(
            r.cmd("SET x 1"),
            b"-READONLY You can't write against a read only replica.\r\n"
        );
        assert_eq!(r.cmd("GET after:1"), b"$1\r\n1\r\n");
        let role = r.cmd("ROLE");
        let port = redis.port().to_string();
        let head =
            format!("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$9\r\nconnected\r\n:");
        assert!(
            role.starts_with(head.as_bytes()),
            "{}",
            tests::escape(&role)
        );
        assert_eq!(
            info_field(&mut r, "replication", "master_replid"),
            info_field(&mut m, "replication", "master_replid")
        );
        // Logical expiry: hidden, still counted until the master's DEL.
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(r.cmd("GET soon"), b"$-1\r\n");
        assert_eq!(r.cmd("DBSIZE"), m.cmd("DBSIZE"));
        assert_eq!(m.cmd("GET soon"), b"$-1\r\n");
        wait_caught_up(&mut m, &mut r);
        assert_eq!(r.cmd("DBSIZE"), m.cmd("DBSIZE"), "the master's DEL");
        // A dropped link continues from the master's backlog.
        assert_eq!(r.cmd("CLIENT KILL TYPE master"), b":1\r\n");
        write_more(&mut m, "gap");
        more_keys(&mut sets, "gap");
        wait_until("the partial resync", Duration::from_secs(30), || {
            info_field(&mut m, "stats", "sync_partial_ok").as_deref() == Some("1")
        });
        wait_link_up(&mut r);
        wait_caught_up(&mut m, &mut r);
        assert_eq!(int_field(&mut m, "stats", "sync_full"), 1);
        Dataset::take(&mut m, &sets).check(&mut r, "after the link drop");
    }
    // swapdb (a second dataset while loading) is refused, not ignored.
    let ours = Server::start(&[]);
    assert_eq!(
        ours.conn().cmd("CONFIG SET repl-diskless-load swapdb"),
        b"-ERR CONFIG SET failed (possibly related to argument 'repl-diskless-load') - swapdb is not supported by codis-server: use disabled or on-empty-db\r\n"
    );
}

/// A chain master → R1 → R2 (ours) plus a redis-server replica of R1:
/// equal data and offsets along it. Then R1 is promoted: R2 and the old
/// master (now R1's replica) continue with PSYNC2, no full sync.
#[test]
fn chained_replicas_and_a_promotion_continue_with_psync2() {
    let master = Server::start(&[]);
    let mut m = master.conn();
    let mut sets = fill_dbs(&mut m);
    let r1 = Server::start(&args(&replicaof(master.port())));
    let mut c1 = r1.conn();
    wait_link_up(&mut c1);
    let r2 = Server::start(&args(&replicaof(r1.port())));
    let mut c2 = r2.conn();
    wait_link_up(&mut c2);
    let redis = RedisServer::start_with(&args(&replicaof(r1.port())));
    write_more(&mut m, "chain");
    more_keys(&mut sets, "chain");
    // R1 is the master's one replica (R2 and the redis one are R1's).
    assert_eq!(m.cmd("WAIT 1 10000"), b":1\r\n");
    wait_caught_up(&mut m, &mut c1);
    wait_caught_up(&mut m, &mut c2);
    let off = int_field(&mut m, "replication", "master_repl_offset");
    assert_eq!(int_field(&mut c1, "replication", "master_repl_offset"), off);
    assert_eq!(int_field(&mut c2, "replication", "master_repl_offset"), off);
    let data = Dataset::take(&mut m, &sets);
    data.check(&mut c1, "on R1");
    data.check(&mut c2, "on R2");
    if let Some(redis) = &redis {
        let mut rr = redis.conn();
        wait_link_up(&mut rr);
        wait_caught_up(&mut m, &mut rr);
        data.check(&mut rr, "on the redis replica of R1");
    }
    // Promote R1.
    let old_id = info_field(&mut c1, "replication", "master_replid").unwrap();
    assert_eq!(c1.cmd("REPLICAOF NO ONE"), b"+OK\r\n");
    assert_eq!(
        info_field(&mut c1, "replication", "role").as_deref(),
        Some("master")
    );
    assert_eq!(
        info_field(&mut c1, "replication", "master_replid2").as_deref(),
        Some(old_id.as_str())
    );
    assert_eq!(
        int_field(&mut c1, "replication", "second_repl_offset"),
        off + 1
    );
    assert_eq!(c1.cmd("SET promoted yes"), b"+OK\r\n");
    // The old master follows R1, offering its own history.
    assert_eq!(
        m.cmd(&format!("REPLICAOF 127.0.0.1 {}", r1.port())),
        b"+OK\r\n"
    );
    wait_link_up(&mut m);
    wait_link_up(&mut c2);
    wait_caught_up(&mut c1, &mut m);
    wait_caught_up(&mut c1, &mut c2);
    assert_eq!(m.cmd("GET promoted"), b"$3\r\nyes\r\n");
    assert_eq!(c2.cmd("GET promoted"), b"$3\r\nyes\r\n");
    // R1 served its only full sync to R2 (and one to the redis replica);
    // everything since was partial.
    let full = if redis.is_some() { 2 } else { 1 };
    wait_until("partial resyncs on R1", Duration::from_secs(10), || {
        info_field(&mut c1, "stats", "sync_partial_ok")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|n| n >= 2)
    });
    assert_eq!(int_field(&mut c1, "stats", "sync_full"), full);
    let data = Dataset::take(&mut c1, &sets);
    data.check(&mut m, "on the old master");
    data.check(&mut c2, "on R2");
    assert_eq!(
        m.cmd("SET x 1"),
        b"-READONLY You can't write against a read only replica.\r\n"
    );
    assert_eq!(
        m.cmd(&format!("REPLICAOF 127.0.0.1 {}", r1.port())),
        b"+OK Already connected to specified master\r\n"
    );
    assert_eq!(
        m.cmd("REPLICAOF 127.0.0.1 70000"),
        b"-ERR Invalid master port\r\n"
    );
}

/// A replica restarted from its RDB (which carries `repl-id` and
/// `repl-offset`) continues with a partial resync.
#[test]
fn a_restarted_replica_continues_from_its_rdb() {
    let master = Server::start(&[]);
    let mut m = master.conn();
    let mut sets = fill_dbs(&mut m);
    let dir = tempfile::tempdir().unwrap();
    let mut r = Server::start_in(dir.path(), &args(&replicaof(master.port())));
    let mut c = r.conn();
    wait_link_up(&mut c);
    write_more(&mut m, "before");
    more_keys(&mut sets, "before");
    wait_caught_up(&mut m, &mut c);
    r.shutdown_with(c, &["SHUTDOWN", "SAVE"]);
    write_more(&mut m, "while");
    more_keys(&mut sets, "while");
    let r = Server::start_in(dir.path(), &args(&replicaof(master.port())));
    let mut c = r.conn();
    wait_link_up(&mut c);
    wait_caught_up(&mut m, &mut c);
    assert_eq!(int_field(&mut m, "stats", "sync_full"), 1);
    assert_eq!(int_field(&mut m, "stats", "sync_partial_ok"), 1);
    Dataset::take(&mut m, &sets).check(&mut c, "after the restart");
}

/// WAIT counts the replicas that acknowledged the client's last write;
/// `min-replicas-to-write` refuses writes without enough good replicas;
/// a replica cut from its master serves stale data or refuses it.
#[test]
fn wait_min_replicas_and_stale_data() {
    let master = Server::start(&[]);
    let mut m = master.conn();
    let replica = Server::start(&args(&replicaof(master.port())));
    let mut r = replica.conn();
    wait_link_up(&mut r);
    assert_eq!(m.cmd("SET a 1"), b"+OK\r\n");
    assert_eq!(m.cmd("WAIT 1 5000"), b":1\r\n");
    let t = Instant::now();
    assert_eq!(m.cmd("WAIT 2 300"), b":1\r\n");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "WAIT returned early"
    );
    // In a transaction WAIT does not block.
    m.cmd("MULTI");
    m.cmd("SET b 2");
    m.cmd("WAIT 5 0");
    assert_eq!(m.cmd("EXEC"), b"*2\r\n+OK\r\n:1\r\n");
    assert_eq!(
        m.cmd("WAIT x 0"),
        b"-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(m.cmd("WAIT 1 -1"), b"-ERR timeout is negative\r\n");
    assert!(
        r.cmd("WAIT 1 0")
            .starts_with(b"-ERR WAIT cannot be used with replica instances.")
    );
    // min-replicas-to-write.
    assert_eq!(m.cmd("CONFIG SET min-replicas-to-write 2"), b"+OK\r\n");
    assert_eq!(
        m.cmd("SET a 2"),
        b"-NOREPLICAS Not enough good replicas to write.\r\n"
    );
    assert_eq!(m.cmd("GET a"), b"$1\r\n1\r\n");
    assert_eq!(
        info_field(&mut m, "replication", "min_slaves_good_slaves").as_deref(),
        Some("1")
    );
    assert_eq!(m.cmd("CONFIG SET min-replicas-to-write 1"), b"+OK\r\n");
    assert_eq!(m.cmd("SET a 3"), b"+OK\r\n");
    assert_eq!(m.cmd("WAIT 1 5000"), b":1\r\n");
    assert_eq!(r.cmd("GET a"), b"$1\r\n3\r\n");
    // The master goes away: stale data is served, or refused.
    drop(m);
    master.kill9();
    wait_until("the link to go down", Duration::from_secs(30), || {
        info_field(&mut r, "replication", "master_link_status").as_deref() == Some("down")
    });
    assert!(info_field(&mut r, "replication", "master_link_down_since_seconds").is_some());
    assert_eq!(r.cmd("GET a"), b"$1\r\n3\r\n");
    assert_eq!(r.cmd("CONFIG SET replica-serve-stale-data no"), b"+OK\r\n");
    assert_eq!(
        r.cmd("GET a"),
        b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n"
    );
    // (Commands with the `stale` flag still run.)
    assert!(r.cmd("INFO server").starts_with(b"$"));
    // Promoted, it writes again.
    assert_eq!(r.cmd("REPLICAOF NO ONE"), b"+OK\r\n");
    assert_eq!(r.cmd("SET a 4"), b"+OK\r\n");
}

/// Codis slot migrations between two groups that have replicas: the
/// migration's effects (the source's deletions, the target's restores)
/// reach each group's replica, whose SLOTSINFO and data equal its
/// master's; a replica refuses the migration commands as writes.
#[test]
fn slot_migrations_replicate_on_both_sides() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let a1 = Server::start(&args(&replicaof(a.port())));
    let b1 = Server::start(&args(&replicaof(b.port())));
    let (mut ca, mut cb, mut ca1, mut cb1) = (a.conn(), b.conn(), a1.conn(), b1.conn());
    wait_link_up(&mut ca1);
    wait_link_up(&mut cb1);
    let tags: Vec<String> = tests::data::fill_all_types(&mut ca, "{m}");
    for i in 0..200 {
        ca.send(&["SET", &format!("{{s}}{i}"), &i.to_string()]);
        ca.send(&["SET", &format!("other:{i}"), &i.to_string()]);
    }
    let slot_of = |c: &mut Conn, k: &str| -> String {
        String::from_utf8_lossy(&c.send(&["SLOTSHASHKEY", k]))
            .trim_start_matches("*1\r\n:")
            .trim_end()
            .to_string()
    };
    let (sm, ss) = (slot_of(&mut ca, "{m}"), slot_of(&mut ca, "{s}"));
    let bport = b.port().to_string();
    // Sync migration of one slot, async of another.
    loop {
        let r = ca.send(&["SLOTSMGRTTAGSLOT", "127.0.0.1", &bport, "3000", &sm]);
        assert!(r.starts_with(b"*2\r\n"), "{}", tests::escape(&r));
        if r.ends_with(b":0\r\n") {
            break;
        }
    }
    let r = ca.send(&[
        "SLOTSMGRTTAGSLOT-ASYNC",
        "127.0.0.1",
        &bport,
        "3000",
        "200",
        "1048576",
        &ss,
        "1000",
    ]);
    assert!(r.starts_with(b"*2\r\n"), "{}", tests::escape(&r));
    assert_eq!(
        ca.send(&["EXISTS", "{s}1"]),
        b":0\r\n",
        "the async migration"
    );
    wait_caught_up(&mut ca, &mut ca1);
    wait_caught_up(&mut cb, &mut cb1);
    for (m, r, what) in [(&mut ca, &mut ca1, "source"), (&mut cb, &mut cb1, "target")] {
        assert_eq!(r.cmd("SLOTSINFO"), m.cmd("SLOTSINFO"), "{what} SLOTSINFO");
        assert_eq!(r.cmd("DBSIZE"), m.cmd("DBSIZE"), "{what} DBSIZE");
    }
    let mut keys: Vec<Vec<u8>> = tags.iter().map(|k| k.as_bytes().to_vec()).collect();
    keys.extend((0..200).map(|i| format!("{{s}}{i}").into_bytes()));
    let sets = vec![(0usize, keys)];
    Dataset::take(&mut cb, &sets).check(&mut cb1, "on the target's replica");
    assert_eq!(cb1.send(&["EXISTS", "{m}str"]), b":1\r\n");
    assert_eq!(ca1.send(&["EXISTS", "{m}str"]), b":0\r\n");
    assert_eq!(
        ca1.send(&["SLOTSMGRTTAGSLOT", "127.0.0.1", &bport, "3000", "0"]),
        b"-READONLY You can't write against a read only replica.\r\n"
    );
    assert_eq!(
        cb1.send(&["SLOTSDEL", "0"]),
        b"-READONLY You can't write against a read only replica.\r\n"
    );
}

/// An RDB holding `before` = 1, written by redis-server 7.0.15 (`redis-cli
/// --rdb`), for the scripted masters below; `None` without redis.
fn redis_rdb() -> Option<Vec<u8>> {
    let redis = RedisServer::start()?;
    assert_eq!(redis.conn().cmd("SET before 1"), b"+OK\r\n");
    let dir = tempfile::tempdir().unwrap();
    let rdb_path = dir.path().join("x.rdb");
    let out = std::process::Command::new(tests::redis_tool("redis-cli").unwrap())
        .args(["-p", &redis.port().to_string(), "--rdb"])
        .arg(&rdb_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    Some(std::fs::read(&rdb_path).unwrap())
}

/// A scripted master: accepts one replica and answers its handshake (PONG,
/// OK), PSYNC with `-ERR unknown command` when `unknown_psync`; returns the
/// connection and the words of its PSYNC or SYNC.
fn accept_replica(
    listener: &std::net::TcpListener,
    unknown_psync: bool,
) -> (std::net::TcpStream, Vec<String>) {
    use std::io::{BufRead, BufReader, Write};
    let (mut s, _) = listener.accept().unwrap();
    let mut rd = BufReader::new(s.try_clone().unwrap());
    loop {
        let mut line = String::new();
        rd.read_line(&mut line).unwrap();
        if !line.starts_with('*') {
            continue;
        }
        let n: usize = line[1..].trim().parse().unwrap();
        let mut words = Vec::new();
        for _ in 0..n {
            let mut len = String::new();
            rd.read_line(&mut len).unwrap();
            let mut w = String::new();
            rd.read_line(&mut w).unwrap();
            words.push(w.trim().to_string());
        }
        match words[0].to_uppercase().as_str() {
            "PING" => s.write_all(b"+PONG\r\n").unwrap(),
            "PSYNC" if unknown_psync => s.write_all(b"-ERR unknown command 'PSYNC'\r\n").unwrap(),
            "PSYNC" | "SYNC" => return (s, words),
            _ => s.write_all(b"+OK\r\n").unwrap(),
        }
    }
}

/// A master that sends the stream right behind the diskless payload's end
/// mark, in the same write: the replica finds the mark inside what it
/// read and applies the bytes after it as the stream (with the disk and
/// the in-memory load).
#[test]
fn the_stream_right_behind_the_eof_mark() {
    use std::io::Write;
    let Some(rdb) = redis_rdb() else {
        return;
    };
    for load in ["disabled", "on-empty-db"] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ours = Server::start(&[
            "--replicaof",
            "127.0.0.1",
            &port.to_string(),
            "--repl-diskless-load",
            load,
        ]);
        let (mut s, words) = accept_replica(&listener, false);
        assert_eq!(words[0], "PSYNC");
        let mark = "0123456789abcdef0123456789abcdef01234567";
        let mut all = format!("+FULLRESYNC {} 0\r\n$EOF:{mark}\r\n", "a".repeat(40)).into_bytes();
        all.extend_from_slice(&rdb);
        all.extend_from_slice(mark.as_bytes());
        all.extend_from_slice(
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n2\r\n",
        );
        s.write_all(&all).unwrap();
        let mut r = ours.conn();
        wait_until("the stream's SET", Duration::from_secs(10), || {
            r.cmd("GET after") == b"$1\r\n2\r\n"
        });
        assert_eq!(r.cmd("GET before"), b"$1\r\n1\r\n", "{load}");
        assert_eq!(
            int_field(&mut r, "replication", "slave_repl_offset"),
            54,
            "the stream's bytes, from offset 0"
        );
    }
}

/// FAILOVER (Redis 7.0's coordinated failover) both ways between us and
/// redis-server 7.0.15: the master pauses writes until the target caught
/// up, becomes its replica, and the target takes over with PSYNC … FAILOVER
/// (a partial resync: nothing is lost, nothing is sent twice).
#[test]
fn coordinated_failover() {
    // Errors first (Redis' texts).
    let lone = Server::start(&[]);
    let mut l = lone.conn();
    assert_eq!(
        l.cmd("FAILOVER ABORT"),
        b"-ERR No failover in progress.\r\n"
    );
    assert_eq!(
        l.cmd("FAILOVER"),
        b"-ERR FAILOVER requires connected replicas.\r\n"
    );
    assert_eq!(
        l.cmd("FAILOVER FORCE"),
        b"-ERR FAILOVER requires connected replicas.\r\n"
    );
    assert_eq!(
        l.cmd("FAILOVER TIMEOUT 0"),
        b"-ERR FAILOVER timeout must be greater than 0\r\n"
    );
    assert_eq!(l.cmd("FAILOVER BOGUS"), b"-ERR syntax error\r\n");
    drop(l);
    drop(lone);
    // Our master hands over to our replica, then (as a replica) gets the
    // role back by a FAILOVER from the other side... to a redis replica.
    let master = Server::start(&[]);
    let mut m = master.conn();
    let mut sets = fill_dbs(&mut m);
    let r1 = Server::start(&args(&replicaof(master.port())));
    let mut c1 = r1.conn();
    wait_link_up(&mut c1);
    assert_eq!(
        c1.cmd("FAILOVER"),
        b"-ERR FAILOVER is not valid when server is a replica.\r\n"
    );
    write_more(&mut m, "pre");
    more_keys(&mut sets, "pre");
    assert_eq!(
        m.cmd("FAILOVER TO 127.0.0.1 1 TIMEOUT 100"),
        b"-ERR FAILOVER target HOST and PORT is not a replica.\r\n"
    );
    wait_replica_online(&mut m, r1.port());
    assert_eq!(
        m.cmd(&format!("FAILOVER TO 127.0.0.1 {} TIMEOUT 5000", r1.port())),
        b"+OK\r\n"
    );
    wait_until("the failover", Duration::from_secs(30), || {
        info_field(&mut c1, "replication", "role").as_deref() == Some("master")
            && info_field(&mut m, "replication", "master_link_status").as_deref() == Some("up")
    });
    wait_until(
        "the failover state to clear",
        Duration::from_secs(10),
        || {
            info_field(&mut m, "replication", "master_failover_state").as_deref()
                == Some("no-failover")
        },
    );
    assert_eq!(
        m.cmd("SET x 1"),
        b"-READONLY You can't write against a read only replica.\r\n"
    );
    assert_eq!(
        int_field(&mut c1, "stats", "sync_partial_ok"),
        1,
        "a partial resync"
    );
    write_more(&mut c1, "post");
    more_keys(&mut sets, "post");
    wait_caught_up(&mut c1, &mut m);
    Dataset::take(&mut c1, &sets).check(&mut m, "on the old master");
    // Now R1 (ours, master) fails over to a redis-server replica.
    let Some(redis) = RedisServer::start_with(&args(&replicaof(r1.port()))) else {
        return;
    };
    let mut rr = redis.conn();
    wait_link_up(&mut rr);
    wait_replica_online(&mut c1, redis.port());
    assert_eq!(
        c1.cmd(&format!("FAILOVER TO 127.0.0.1 {}", redis.port())),
        b"+OK\r\n"
    );
    wait_until("the failover to redis", Duration::from_secs(30), || {
        info_field(&mut rr, "replication", "role").as_deref() == Some("master")
            && info_field(&mut c1, "replication", "master_link_status").as_deref() == Some("up")
    });
    assert_eq!(rr.cmd("SET after redis"), b"+OK\r\n");
    wait_caught_up(&mut rr, &mut c1);
    assert_eq!(c1.cmd("GET after"), b"$5\r\nredis\r\n");
    // And redis (master) fails over back to our server.
    wait_replica_online(&mut rr, r1.port());
    assert_eq!(
        rr.cmd(&format!("FAILOVER TO 127.0.0.1 {}", r1.port())),
        b"+OK\r\n"
    );
    wait_until("the failover to ours", Duration::from_secs(30), || {
        info_field(&mut c1, "replication", "role").as_deref() == Some("master")
            && info_field(&mut rr, "replication", "master_link_status").as_deref() == Some("up")
    });
    assert_eq!(c1.cmd("SET back ours"), b"+OK\r\n");
    wait_caught_up(&mut c1, &mut rr);
    assert_eq!(rr.cmd("GET back"), b"$4\r\nours\r\n");
    sets[0].1.extend([b"after".to_vec(), b"back".to_vec()]);
    Dataset::take(&mut c1, &sets).check(&mut rr, "on redis");
}

/// The replay contract over the wire: random workloads (every type, short
/// and long TTLs, GETEX, transactions, two DBs, wrong-type errors, Codis
/// migrations to a second group) on a master with our replica and a
/// redis-server 7.0.15 replica, and on the target group with ours. Once
/// the short TTLs ran out and the master touched every key (its lazy
/// expiry propagates the DELs), each replica's dataset equals its
/// master's: the same keys, DUMP and PTTL, DB sizes.
#[test]
fn random_workloads_leave_replicas_equal_to_their_masters() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let a1 = Server::start(&args(&replicaof(a.port())));
    let b1 = Server::start(&args(&replicaof(b.port())));
    let redis = RedisServer::start_with(&args(&replicaof(a.port())));
    let (mut ca, mut cb, mut ca1, mut cb1) = (a.conn(), b.conn(), a1.conn(), b1.conn());
    wait_link_up(&mut ca1);
    wait_link_up(&mut cb1);
    let mut cr = redis.as_ref().map(|r| r.conn());
    if let Some(c) = cr.as_mut() {
        wait_link_up(c);
    }
    let bport = b.port().to_string();
    for seed in [1u64, 2, 3] {
        let mut rng = tests::data::Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut cmds: Vec<Vec<String>> = Vec::new();
        for _ in 0..1500 {
            let tag = rng.below(8);
            let k = if rng.below(4) == 0 {
                format!("plain{}", rng.below(10))
            } else {
                format!("{{t{tag}}}k{}", rng.below(4))
            };
            let n = rng.below(100).to_string();
            let short = (50 + rng.below(400)).to_string();
            let long = (100 + rng.below(1000)).to_string();
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            let c = match rng.below(24) {
                0 => s(&["SET", &k, &n]),
                1 => s(&["SET", &k, &n, "PX", &short]),
                2 => s(&["SET", &k, &n, "EX", &long]),
                3 => s(&["INCR", &k]),
                4 => s(&["APPEND", &k, &n]),
                5 => s(&["DEL", &k]),
                6 => s(&["PEXPIRE", &k, &short]),
                7 => s(&["EXPIRE", &k, &long]),
                8 => s(&["PERSIST", &k]),
                9 => s(&["LPUSH", &k, &n, "x"]),
                10 => s(&["RPOP", &k]),
                11 => s(&["HSET", &k, &format!("f{}", rng.below(5)), &n]),
                12 => s(&["HINCRBY", &k, "f0", &n]),
                13 => s(&["SADD", &k, &n]),
                14 => s(&["SPOP", &k]),
                15 => s(&["ZADD", &k, &n, &format!("m{}", rng.below(5))]),
                16 => s(&["ZPOPMIN", &k]),
                17 => s(&["GETEX", &k, "PX", &short]),
                18 => s(&["SELECT", &rng.below(2).to_string()]),
                19 => s(&["MULTI"]),
                20 => s(&["EXEC"]),
                21 => s(&["SETRANGE", &k, "2", &n]),
                22 => s(&["SLOTSMGRTTAGONE", "127.0.0.1", &bport, "3000", &k]),
                _ => s(&["LTRIM", &k, "0", "2"]),
            };
            cmds.push(c);
        }
        // Pipelined in windows; errors (wrong types, EXEC without MULTI)
        // are part of the workload.
        for window in cmds.chunks(50) {
            let mut bytes = Vec::new();
            for c in window {
                let parts: Vec<&[u8]> = c.iter().map(|x| x.as_bytes()).collect();
                bytes.extend_from_slice(&tests::resp::encode_command(&parts));
            }
            ca.write_raw(&bytes).unwrap();
            for _ in window {
                ca.read_reply().unwrap();
            }
        }
        ca.send(&["EXEC"]);
        ca.send(&["DISCARD"]);
        ca.send(&["SELECT", "0"]);
    }
    // The short TTLs run out; touching every key on the masters expires
    // them there, and the DELs reach the replicas.
    std::thread::sleep(Duration::from_millis(600));
    let keys_of = |c: &mut Conn| -> Vec<(usize, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        for db in 0..2usize {
            c.send(&["SELECT", &db.to_string()]);
            let v = c.value("KEYS *");
            let mut keys: Vec<Vec<u8>> = v
                .as_array()
                .unwrap_or_default()
                .iter()
                .filter_map(|x| x.as_bytes().map(|b| b.to_vec()))
                .collect();
            keys.sort();
            for k in &keys {
                c.send(&[b"EXISTS".as_slice(), k]);
            }
            out.push((db, keys));
        }
        c.send(&["SELECT", "0"]);
        out
    };
    let sets_a = keys_of(&mut ca);
    let sets_b = keys_of(&mut cb);
    assert!(
        sets_a.iter().map(|(_, k)| k.len()).sum::<usize>() > 10,
        "too few keys"
    );
    assert!(!sets_b[0].1.is_empty(), "nothing migrated");
    wait_caught_up(&mut ca, &mut ca1);
    wait_caught_up(&mut cb, &mut cb1);
    let da = Dataset::take(&mut ca, &sets_a);
    da.check(&mut ca1, "on A's replica");
    Dataset::take(&mut cb, &sets_b).check(&mut cb1, "on B's replica");
    if let Some(c) = cr.as_mut() {
        wait_caught_up(&mut ca, c);
        da.check(c, "on A's redis replica");
    }
    assert_eq!(ca1.cmd("SLOTSINFO"), ca.cmd("SLOTSINFO"));
    assert_eq!(cb1.cmd("SLOTSINFO"), cb.cmd("SLOTSINFO"));
}

/// Our replica of a Codis 3.2 codis-server master (Redis 3.2's PSYNC v1:
/// `+FULLRESYNC <runid> <offset>`, `+CONTINUE` without an ID, no diskless
/// transfer), authenticated with `masterauth`: the full sync, the stream,
/// and a partial resync after the link drops. Skipped (with a notice)
/// unless CODIS_SERVER_BIN names a Codis 3.2 codis-server.
#[test]
fn our_replica_of_a_codis32_master() {
    let Some(master) = Server::start_codis32(&["--requirepass", "pw"]) else {
        return;
    };
    let mut m = master.conn();
    assert_eq!(m.cmd("AUTH pw"), b"+OK\r\n");
    let fill = |m: &mut Conn, tag: &str| -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        for i in 0..50 {
            let k = format!("{tag}:s{i}");
            m.send(&["SET", &k, &i.to_string()]);
            keys.push(k);
        }
        let (h, l, s, z, e) = (
            format!("{tag}:h"),
            format!("{tag}:l"),
            format!("{tag}:set"),
            format!("{tag}:z"),
            format!("{tag}:ttl"),
        );
        m.send(&["HMSET", &h, "a", "1", "b", "2"]);
        m.send(&["RPUSH", &l, "x", "y", "z"]);
        m.send(&["SADD", &s, "p", "q"]);
        m.send(&["ZADD", &z, "1.5", "m"]);
        m.send(&["SETEX", &e, "1000", "v"]);
        keys.extend([h, l, s, z, e]);
        keys.into_iter().map(String::into_bytes).collect()
    };
    let mut keys = fill(&mut m, "before");
    let mut a = replicaof(master.port()).to_vec();
    a.extend(["--masterauth".to_string(), "pw".to_string()]);
    let ours = Server::start(&args(&a));
    let mut r = ours.conn();
    wait_link_up(&mut r);
    keys.extend(fill(&mut m, "after"));
    wait_caught_up(&mut m, &mut r);
    let sets = vec![(0usize, keys.clone())];
    Dataset::take(&mut m, &sets).check_keys(&mut r);
    assert_eq!(r.cmd("DBSIZE"), m.cmd("DBSIZE"));
    // The link drops: PSYNC v1 continues it.
    assert_eq!(r.cmd("CLIENT KILL TYPE master"), b":1\r\n");
    keys.extend(fill(&mut m, "gap"));
    wait_until("the partial resync", Duration::from_secs(30), || {
        info_field(&mut m, "stats", "sync_partial_ok").as_deref() == Some("1")
    });
    wait_link_up(&mut r);
    wait_caught_up(&mut m, &mut r);
    let sets = vec![(0usize, keys)];
    Dataset::take(&mut m, &sets).check_keys(&mut r);
    assert_eq!(r.cmd("DBSIZE"), m.cmd("DBSIZE"));
}

/// A scripted old master (what Codis 3.2 / Redis 3.2 send): PSYNC v1's
/// `+FULLRESYNC <runid> <offset>` and a `$<len>` payload; after the link
/// drops, our PSYNC names that runid and the next offset, answered by a
/// bare `+CONTINUE`; a master that does not know PSYNC gets SYNC.
#[test]
fn old_masters_psync_v1_and_sync() {
    use std::io::Write;
    let Some(rdb) = redis_rdb() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = |unknown_psync: bool| accept_replica(&listener, unknown_psync);
    let set = |k: &str, v: &str| {
        format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
            k.len(),
            v.len()
        )
    };
    let ours = Server::start(&["--replicaof", "127.0.0.1", &port.to_string()]);
    let runid = "r".repeat(40);
    let (mut s, words) = accept(false);
    assert_eq!(words, ["PSYNC", "?", "-1"]);
    let mut all = format!("+FULLRESYNC {runid} 100\r\n${}\r\n", rdb.len()).into_bytes();
    all.extend_from_slice(&rdb);
    let stream1 = format!("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n{}", set("a", "1"));
    all.extend_from_slice(stream1.as_bytes());
    s.write_all(&all).unwrap();
    let mut r = ours.conn();
    wait_until("the first stream", Duration::from_secs(10), || {
        r.cmd("GET a") == b"$1\r\n1\r\n"
    });
    assert_eq!(r.cmd("GET before"), b"$1\r\n1\r\n");
    let off = 100 + stream1.len();
    assert_eq!(
        int_field(&mut r, "replication", "slave_repl_offset"),
        off as i64
    );
    // The link drops; the replica continues from the next offset.
    drop(s);
    let (mut s, words) = accept(false);
    assert_eq!(words, ["PSYNC", runid.as_str(), &(off + 1).to_string()]);
    s.write_all(format!("+CONTINUE\r\n{}", set("b", "2")).as_bytes())
        .unwrap();
    wait_until("the continued stream", Duration::from_secs(10), || {
        r.cmd("GET b") == b"$1\r\n2\r\n"
    });
    assert_eq!(r.cmd("GET a"), b"$1\r\n1\r\n", "no full sync");
    assert_eq!(
        info_field(&mut r, "replication", "master_replid").as_deref(),
        Some(runid.as_str())
    );
    // A master without PSYNC: SYNC, then the payload alone.
    drop(s);
    let (mut s, words) = accept(true);
    assert_eq!(words, ["SYNC"]);
    let mut all = format!("${}\r\n", rdb.len()).into_bytes();
    all.extend_from_slice(&rdb);
    all.extend_from_slice(format!("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n{}", set("c", "3")).as_bytes());
    s.write_all(&all).unwrap();
    wait_until("the SYNC's stream", Duration::from_secs(10), || {
        r.cmd("GET c") == b"$1\r\n3\r\n"
    });
    assert_eq!(
        r.cmd("EXISTS a"),
        b":0\r\n",
        "a full sync replaced the data"
    );
    assert_eq!(r.cmd("GET before"), b"$1\r\n1\r\n");
}

/// `replica-announce-ip` / `-port` reach the master (REPLCONF ip-address,
/// listening-port), which names the replica by them in INFO and ROLE.
#[test]
fn announced_address() {
    let master = Server::start(&[]);
    let mut m = master.conn();
    let mut a = replicaof(master.port()).to_vec();
    a.extend(
        [
            "--replica-announce-ip",
            "10.1.2.3",
            "--replica-announce-port",
            "1234",
        ]
        .map(String::from),
    );
    let r = Server::start(&args(&a));
    wait_link_up(&mut r.conn());
    wait_until("the announced address", Duration::from_secs(10), || {
        info_field(&mut m, "replication", "slave0")
            .is_some_and(|l| l.starts_with("ip=10.1.2.3,port=1234,state=online"))
    });
    let role = m.cmd("ROLE");
    assert!(
        role.windows(8).any(|w| w == b"10.1.2.3"),
        "{}",
        tests::escape(&role)
    );
}

/// A master restarted from its RDB (SHUTDOWN waits for the replica, then
/// saves) takes up the file's replication history: its replica continues
/// with a partial resync, and a key that expired while the master was down
/// reaches the replica as a DEL (Redis 7.0).
#[test]
fn a_restarted_master_continues_its_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = Server::start_in(dir.path(), &[]);
    let port = master.port();
    let mut m = master.conn();
    let mut sets = fill_dbs(&mut m);
    let r = Server::start(&args(&replicaof(master.port())));
    let mut c = r.conn();
    wait_link_up(&mut c);
    write_more(&mut m, "before");
    more_keys(&mut sets, "before");
    assert_eq!(m.cmd("SET soon x PX 500"), b"+OK\r\n");
    wait_caught_up(&mut m, &mut c);
    master.shutdown_with(m, &["SHUTDOWN", "SAVE"]);
    std::thread::sleep(Duration::from_millis(600));
    let master = Server::start_in_on(dir.path(), port, &[]);
    let mut m = master.conn();
    wait_link_up(&mut c);
    write_more(&mut m, "after");
    more_keys(&mut sets, "after");
    wait_caught_up(&mut m, &mut c);
    assert_eq!(int_field(&mut m, "stats", "sync_partial_ok"), 1);
    assert_eq!(int_field(&mut m, "stats", "sync_full"), 0);
    assert_eq!(c.cmd("DBSIZE"), m.cmd("DBSIZE"), "the expired key's DEL");
    Dataset::take(&mut m, &sets).check(&mut c, "after the master's restart");
}

/// A replica that comes back after more than the backlog holds was written
/// gets a full sync (and the data of both is the same).
#[test]
fn backlog_overflow_means_a_full_sync() {
    let master = Server::start(&["--repl-backlog-size", "16384"]);
    let mut m = master.conn();
    let r = Server::start(&args(&replicaof(master.port())));
    let mut c = r.conn();
    wait_link_up(&mut c);
    m.cmd("SET a 1");
    wait_caught_up(&mut m, &mut c);
    assert_eq!(c.cmd("CLIENT KILL TYPE master"), b":1\r\n");
    // Far more than 16 KiB before the replica is back (it retries after 1 s).
    let big = "v".repeat(1000);
    for i in 0..100 {
        m.send(&["SET", &format!("k{i}"), &big]);
    }
    wait_until("the resync", Duration::from_secs(30), || {
        int_field(&mut m, "stats", "sync_full") == 2
    });
    assert_eq!(int_field(&mut m, "stats", "sync_partial_ok"), 0);
    assert_eq!(int_field(&mut m, "stats", "sync_partial_err"), 1);
    wait_link_up(&mut c);
    wait_caught_up(&mut m, &mut c);
    assert_eq!(c.cmd("DBSIZE"), b":101\r\n");
    assert_eq!(c.cmd("STRLEN k99"), b":1000\r\n");
}

/// Links dropped from either side while a client writes without pause:
/// every resync is partial or full as the backlog allows, and once the
/// writes stop the replica (ours) and a redis-server replica of it
/// (chained) hold exactly the master's counters and keys.
#[test]
fn links_dropped_under_load() {
    let master = Server::start(&["--repl-backlog-size", "64mb"]);
    let mut m = master.conn();
    let r = Server::start(&args(&replicaof(master.port())));
    let mut c = r.conn();
    wait_link_up(&mut c);
    let chained = RedisServer::start_with(&args(&replicaof(r.port())));
    let port = master.port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut w = Conn::connect(port).unwrap();
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let mut bytes = Vec::new();
            for i in 0..50u64 {
                let k = format!("c{}", (n + i) % 100);
                bytes.extend_from_slice(&tests::resp::encode_command(&["INCR", k.as_str()]));
                let s = format!("s{}", (n + i) % 300);
                bytes.extend_from_slice(&tests::resp::encode_command(&["SET", s.as_str(), "x"]));
            }
            bytes.extend_from_slice(&tests::resp::encode_command(&["MULTI"]));
            bytes.extend_from_slice(&tests::resp::encode_command(&["INCR", "tx"]));
            bytes.extend_from_slice(&tests::resp::encode_command(&["DEL", "s0"]));
            bytes.extend_from_slice(&tests::resp::encode_command(&["EXEC"]));
            w.write_raw(&bytes).unwrap();
            for _ in 0..104 {
                w.read_reply().unwrap();
            }
            n += 50;
        }
        n
    });
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(250));
        if round % 2 == 0 {
            c.cmd("CLIENT KILL TYPE master");
        } else {
            m.cmd("CLIENT KILL TYPE replica");
        }
    }
    std::thread::sleep(Duration::from_millis(250));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = writer.join().unwrap();
    assert!(n > 1000, "too few writes: {n}");
    wait_link_up(&mut c);
    wait_caught_up(&mut m, &mut c);
    let mut keys: Vec<Vec<u8>> = (0..100).map(|i| format!("c{i}").into_bytes()).collect();
    keys.extend((0..300).map(|i| format!("s{i}").into_bytes()));
    keys.push(b"tx".to_vec());
    let sets = vec![(0usize, keys)];
    let data = Dataset::take(&mut m, &sets);
    data.check(&mut c, "on our replica");
    if let Some(redis) = &chained {
        let mut rr = redis.conn();
        wait_link_up(&mut rr);
        wait_caught_up(&mut c, &mut rr);
        data.check(&mut rr, "on the chained redis replica");
    }
    let partial = int_field(&mut m, "stats", "sync_partial_ok");
    assert!(partial >= 1, "no partial resync at all");
}
