//! Replication, master side (issue 13, first part): a real redis-server
//! 7.0.15 started with `--replicaof` our server gets a full sync (PSYNC →
//! `+FULLRESYNC`, our forkless RDB) and then our propagation stream:
//! every type in two DBs, TTLs, writes made while the snapshot is taken
//! and after it, expiry's DELs, a transaction. Checked key by key (DUMP +
//! PTTL) on both; INFO replication and ROLE report the replica with its
//! acknowledged offset; REPLCONF answers as Redis'.

use std::time::{Duration, Instant};

use tests::data::{compare_dbs, db_sizes, fill_dbs, snapshot_dbs};
use tests::repl::{info_field, wait_caught_up, wait_link_up, wait_until};
use tests::{RedisServer, Server, escape};

#[test]
fn a_redis_replica_gets_our_dataset_and_stream() {
    let ours = Server::start(&["--enable-debug-command", "yes"]);
    let mut m = ours.conn();
    let sets = fill_dbs(&mut m);
    // A volatile key that expires on the master after the sync: the
    // replica learns it through the stream's DEL.
    assert_eq!(m.cmd("SELECT 0"), b"+OK\r\n");
    assert_eq!(m.cmd("SET soon x PX 1500"), b"+OK\r\n");
    let Some(redis) =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &ours.port().to_string()])
    else {
        return;
    };
    let mut r = redis.conn();
    wait_link_up(&mut r);
    // Writes after the snapshot point reach the replica through the stream.
    assert_eq!(m.cmd("SELECT 0"), b"+OK\r\n");
    for i in 0..200 {
        m.send(&["SET", &format!("after:{i}"), &i.to_string()]);
    }
    m.cmd("MULTI");
    m.cmd("INCR counter");
    m.cmd("LPUSH after:list a b c");
    assert!(m.cmd("EXEC").starts_with(b"*2"));
    assert_eq!(m.cmd("SELECT 9"), b"+OK\r\n");
    m.cmd("HSET after:hash f v");
    m.cmd("SELECT 0");
    wait_until(
        "the volatile key to expire",
        Duration::from_secs(10),
        || m.cmd("EXISTS soon") == b":0\r\n",
    );
    wait_caught_up(&mut m, &mut r);
    // Same keys, values and TTLs on both.
    let mut all = sets.clone();
    for (db, keys) in all.iter_mut() {
        if *db == 0 {
            keys.extend((0..200).map(|i| format!("after:{i}").into_bytes()));
            keys.push(b"counter".to_vec());
            keys.push(b"after:list".to_vec());
        } else {
            keys.push(b"after:hash".to_vec());
        }
    }
    let on_master = snapshot_dbs(&mut m, &all);
    compare_dbs(&mut r, &on_master, &all);
    assert_eq!(db_sizes(&mut r), db_sizes(&mut m), "DB sizes");
    assert_eq!(r.cmd("SELECT 0"), b"+OK\r\n");
    assert_eq!(r.cmd("EXISTS soon"), b":0\r\n", "the expiry's DEL");
    // What the master reports of its replica.
    let rport = redis.port().to_string();
    wait_until(
        "an ACK at the master's offset",
        Duration::from_secs(10),
        || {
            let line = info_field(&mut m, "replication", "slave0").unwrap_or_default();
            let off = info_field(&mut m, "replication", "master_repl_offset").unwrap_or_default();
            line.starts_with(&format!(
                "ip=127.0.0.1,port={rport},state=online,offset={off},lag="
            ))
        },
    );
    assert_eq!(
        info_field(&mut m, "replication", "connected_slaves").as_deref(),
        Some("1")
    );
    let off = info_field(&mut m, "replication", "master_repl_offset").unwrap();
    let role = m.cmd("ROLE");
    let want = format!(
        "*3\r\n$6\r\nmaster\r\n:{off}\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n${}\r\n{rport}\r\n${}\r\n{off}\r\n",
        rport.len(),
        off.len()
    );
    assert_eq!(escape(&role), escape(want.as_bytes()), "ROLE");
    // The replica's own view of the link.
    assert_eq!(
        info_field(&mut r, "replication", "master_replid"),
        info_field(&mut m, "replication", "master_replid"),
        "one replication ID"
    );
    // Losing the replica: it is gone from INFO.
    drop(r);
    redis.kill9();
    wait_until(
        "the replica to be forgotten",
        Duration::from_secs(10),
        || info_field(&mut m, "replication", "connected_slaves").as_deref() == Some("0"),
    );
    assert_eq!(
        m.cmd("ROLE"),
        format!("*3\r\n$6\r\nmaster\r\n:{off}\r\n*0\r\n").as_bytes()
    );
}

/// REPLCONF's replies, byte for byte with redis-server 7.0.15.
#[test]
fn replconf_replies_as_redis() {
    let ours = Server::start(&[]);
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let cases: &[&[&str]] = &[
        &["REPLCONF"],
        &["REPLCONF", "listening-port", "6380"],
        &["REPLCONF", "listening-port", "abc"],
        &["REPLCONF", "capa", "eof", "capa", "psync2"],
        &["REPLCONF", "ip-address", "10.0.0.1"],
        &["REPLCONF", "foo", "bar"],
        &["REPLCONF", "odd"],
        &["ROLE"],
    ];
    let (mut a, mut b) = (ours.conn(), redis.conn());
    for args in cases {
        let (x, y) = (a.send(args), b.send(args));
        if args == &["ROLE"] {
            // (the offsets differ: both are masters without replicas)
            assert!(x.starts_with(b"*3\r\n$6\r\nmaster\r\n:"), "{}", escape(&x));
            assert!(x.ends_with(b"\r\n*0\r\n"), "{}", escape(&x));
            continue;
        }
        assert_eq!(escape(&x), escape(&y), "{args:?}");
    }
    // An ACK from a client that is not a replica gets no reply: the next
    // command's is the next thing read.
    for c in [&mut a, &mut b] {
        c.write_raw(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n5\r\n")
            .unwrap();
        assert_eq!(c.send(&["PING"]), b"+PONG\r\n");
    }
}

/// A "replica" that sends PSYNC and never reads is dropped once what is
/// queued for it passes the replica class of client-output-buffer-limit
/// (the master's memory stays bounded), as Redis does.
#[test]
fn a_replica_that_does_not_read_is_dropped_at_its_output_limit() {
    let ours = Server::start(&["--client-output-buffer-limit", "replica 4mb 0 0"]);
    let mut m = ours.conn();
    let mut fake = std::net::TcpStream::connect(("127.0.0.1", ours.port())).unwrap();
    std::io::Write::write_all(&mut fake, b"PSYNC ? -1\r\n").unwrap();
    wait_until("the replica to be listed", Duration::from_secs(10), || {
        info_field(&mut m, "replication", "connected_slaves").as_deref() == Some("1")
    });
    // 64 MB of writes, far more than socket buffers and the limit hold.
    let value = "x".repeat(1 << 20);
    for i in 0..64 {
        assert_eq!(m.send(&["SET", &format!("big:{i}"), &value]), b"+OK\r\n");
        if info_field(&mut m, "replication", "connected_slaves").as_deref() == Some("0") {
            break;
        }
    }
    wait_until("the replica to be dropped", Duration::from_secs(10), || {
        info_field(&mut m, "replication", "connected_slaves").as_deref() == Some("0")
    });
    assert!(
        ours.log()
            .contains("scheduled to be closed ASAP for overcoming of output buffer limits"),
        "no log line"
    );
    drop(fake);
    // With no replica left, the backlog goes after repl-backlog-ttl.
    assert_eq!(
        info_field(&mut m, "replication", "repl_backlog_active").as_deref(),
        Some("1")
    );
    assert_eq!(m.cmd("CONFIG SET repl-backlog-ttl 1"), b"+OK\r\n");
    wait_until("the backlog to be freed", Duration::from_secs(10), || {
        info_field(&mut m, "replication", "repl_backlog_active").as_deref() == Some("0")
    });
}

/// A replica whose link drops reconnects with PSYNC and gets only what it
/// missed from the backlog (`+CONTINUE`): no second full sync.
#[test]
fn a_dropped_link_resumes_from_the_backlog() {
    let ours = Server::start(&[]);
    let mut m = ours.conn();
    for i in 0..100 {
        m.send(&["SET", &format!("k:{i}"), &i.to_string()]);
    }
    let Some(redis) =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &ours.port().to_string()])
    else {
        return;
    };
    let mut r = redis.conn();
    wait_link_up(&mut r);
    wait_caught_up(&mut m, &mut r);
    assert_eq!(
        info_field(&mut m, "replication", "repl_backlog_active").as_deref(),
        Some("1")
    );
    // Drop the link from our side; write while the replica is away.
    assert_eq!(m.cmd("CLIENT KILL TYPE replica"), b":1\r\n");
    for i in 100..300 {
        m.send(&["SET", &format!("k:{i}"), &i.to_string()]);
    }
    m.cmd("DEL k:0");
    wait_until("the partial resync", Duration::from_secs(30), || {
        info_field(&mut m, "stats", "sync_partial_ok").as_deref() == Some("1")
    });
    wait_link_up(&mut r);
    wait_caught_up(&mut m, &mut r);
    assert_eq!(
        info_field(&mut m, "stats", "sync_full").as_deref(),
        Some("1")
    );
    assert_eq!(r.cmd("DBSIZE"), b":299\r\n");
    assert_eq!(r.cmd("GET k:299"), b"$3\r\n299\r\n");
    assert_eq!(r.cmd("EXISTS k:0"), b":0\r\n");
}

/// Diskless transfers (`repl-diskless-sync yes`, the default): replicas
/// arriving within `repl-diskless-sync-delay` share one snapshot, started
/// early once `repl-diskless-sync-max-replicas` wait; with
/// `repl-diskless-sync no` the snapshot goes through a file. Our replica and
/// a redis-server one, each way.
#[test]
fn diskless_and_disk_transfers() {
    for diskless in ["yes", "no"] {
        let ours = Server::start(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "30",
            "--repl-diskless-sync-max-replicas",
            "2",
        ]);
        let mut m = ours.conn();
        let sets = fill_dbs(&mut m);
        let port = ours.port().to_string();
        let started = Instant::now();
        let mine = Server::start(&["--replicaof", "127.0.0.1", &port]);
        let Some(redis) = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]) else {
            return;
        };
        let (mut a, mut b) = (mine.conn(), redis.conn());
        wait_link_up(&mut a);
        wait_link_up(&mut b);
        // Two replicas: the transfer did not wait out the 30 s delay.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited the delay"
        );
        wait_caught_up(&mut m, &mut a);
        wait_caught_up(&mut m, &mut b);
        let on_master = snapshot_dbs(&mut m, &sets);
        compare_dbs(&mut a, &on_master, &sets);
        compare_dbs(&mut b, &on_master, &sets);
        assert_eq!(db_sizes(&mut a), db_sizes(&mut m));
        assert_eq!(db_sizes(&mut b), db_sizes(&mut m));
        let log = ours.log();
        if diskless == "yes" {
            assert!(
                log.contains("target: replicas sockets (2 replicas)"),
                "one shared transfer:\n{log}"
            );
        } else {
            assert_eq!(log.matches("with target: disk").count(), 2, "{log}");
        }
    }
}

/// A replica that stops acknowledging is dropped after `repl-timeout`
/// seconds (the master side of the timeout).
#[test]
fn a_silent_replica_times_out() {
    let ours = Server::start(&["--repl-timeout", "1"]);
    let mut m = ours.conn();
    m.cmd("SET a 1");
    let mut fake = std::net::TcpStream::connect(("127.0.0.1", ours.port())).unwrap();
    std::io::Write::write_all(&mut fake, b"REPLCONF capa psync2\r\nPSYNC ? -1\r\n").unwrap();
    wait_until("the replica to be online", Duration::from_secs(10), || {
        info_field(&mut m, "replication", "slave0").is_some_and(|l| l.contains("state=online"))
    });
    wait_until(
        "the silent replica to be dropped",
        Duration::from_secs(10),
        || info_field(&mut m, "replication", "connected_slaves").as_deref() == Some("0"),
    );
    assert!(
        ours.log()
            .contains("Disconnecting timedout replica (streaming sync)"),
        "no log line"
    );
    drop(fake);
}

/// SHUTDOWN waits (writes held) for replicas behind the master, up to
/// `shutdown-timeout` (Redis 7.0); SHUTDOWN ABORT cancels the wait; NOW
/// does not wait; a replica that catches up lets the shutdown finish.
#[test]
fn shutdown_waits_for_lagging_replicas() {
    use std::io::{Read, Write};
    let mut ours = Server::start(&["--shutdown-timeout", "30"]);
    let mut m = ours.conn();
    m.cmd("SET a 1");
    let mut fake = std::net::TcpStream::connect(("127.0.0.1", ours.port())).unwrap();
    fake.write_all(b"REPLCONF capa psync2\r\nPSYNC ? -1\r\n")
        .unwrap();
    wait_until("the replica to be online", Duration::from_secs(10), || {
        info_field(&mut m, "replication", "slave0").is_some_and(|l| l.contains("state=online"))
    });
    // Keep the link drained; acknowledge nothing yet.
    let mut drain = fake.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(drain.read(&mut buf), Ok(n) if n > 0) {}
    });
    // A write the replica will not acknowledge.
    m.cmd("SET c 1");
    fake.write_all(b"REPLCONF ACK 0\r\n").unwrap();
    let mut s = ours.conn();
    s.write_raw(b"SHUTDOWN\r\n").unwrap();
    let mut w = ours.conn();
    wait_until("the shutdown to wait", Duration::from_secs(10), || {
        ours.log()
            .contains("Waiting for replicas before shutting down.")
    });
    // Writes are held meanwhile; reads are served.
    w.set_timeout(Duration::from_millis(300));
    assert!(
        w.try_send(&["SET", "b", "1"]).is_err(),
        "a write went through"
    );
    assert_eq!(m.cmd("GET a"), b"$1\r\n1\r\n");
    assert_eq!(m.cmd("SHUTDOWN ABORT"), b"+OK\r\n");
    assert_eq!(
        s.read_reply().unwrap(),
        b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n"
    );
    w.set_timeout(Duration::from_secs(5));
    assert_eq!(w.read_reply().unwrap(), b"+OK\r\n", "the held write");
    assert_eq!(
        m.cmd("SHUTDOWN ABORT"),
        b"-ERR No shutdown in progress.\r\n"
    );
    // Once the replica acknowledges everything, the shutdown goes through.
    s.write_raw(b"SHUTDOWN\r\n").unwrap();
    wait_until("the second wait", Duration::from_secs(10), || {
        ours.log()
            .matches("Waiting for replicas before shutting down.")
            .count()
            == 2
    });
    let end = info_field(&mut m, "replication", "master_repl_offset").unwrap();
    fake.write_all(format!("REPLCONF ACK {end}\r\n").as_bytes())
        .unwrap();
    assert!(ours.wait_exit(Duration::from_secs(10)), "did not exit");
    assert!(
        ours.log()
            .contains("1 of 1 replicas are in sync when shutting down.")
    );
}

/// FLUSHALL while a full sync's snapshot runs stops that snapshot (as
/// Redis kills its child) instead of waiting on it: the server answers,
/// and the replica syncs again to the emptied dataset.
#[test]
fn flushall_during_a_full_sync() {
    let ours = Server::start(&["--enable-debug-command", "yes"]);
    let mut m = ours.conn();
    assert_eq!(m.cmd("DEBUG POPULATE 300000 key 64"), b"+OK\r\n");
    let Some(redis) =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &ours.port().to_string()])
    else {
        return;
    };
    wait_until("the transfer to start", Duration::from_secs(10), || {
        ours.log().contains("Starting BGSAVE for SYNC")
    });
    m.set_timeout(Duration::from_secs(10));
    assert_eq!(m.cmd("FLUSHALL"), b"+OK\r\n");
    assert_eq!(m.cmd("PING"), b"+PONG\r\n");
    assert_eq!(m.cmd("SET after flush"), b"+OK\r\n");
    let mut r = redis.conn();
    wait_link_up(&mut r);
    wait_caught_up(&mut m, &mut r);
    assert_eq!(r.cmd("DBSIZE"), b":1\r\n");
    assert_eq!(r.cmd("GET after"), b"$5\r\nflush\r\n");
}

/// Streams reach a redis-server 7.0.15 replica exactly: a stream with
/// groups, PEL and consumers in the full sync's RDB (type 19), then what
/// XADD `*` / `~` trims, XREADGROUP (NACKs and NOACK), XCLAIM, XAUTOCLAIM,
/// XACK, XDEL, XTRIM, XSETID and XGROUP propagate (Redis' XCLAIM … LASTID
/// and XGROUP SETID … ENTRIESREAD forms). Compared through XINFO STREAM
/// FULL with the consumers' seen times and the groups' read counters left
/// out (a replica counts those itself, as Redis' do).
#[test]
fn a_redis_replica_follows_our_streams() {
    let ours = Server::start(&[]);
    let mut m = ours.conn();
    for i in 1..=300 {
        m.send(&[
            "XADD",
            "s",
            &format!("{i}-1"),
            "f",
            &i.to_string(),
            "g",
            "x",
        ]);
    }
    assert_eq!(m.cmd("XGROUP CREATE s g 0"), b"+OK\r\n");
    assert_eq!(m.cmd("XGROUP CREATE s g2 0"), b"+OK\r\n");
    assert!(
        m.cmd("XREADGROUP GROUP g c1 COUNT 3 STREAMS s >")
            .starts_with(b"*1")
    );
    assert_eq!(m.cmd("XDEL s 2-1"), b":1\r\n");
    let Some(redis) =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &ours.port().to_string()])
    else {
        return;
    };
    let mut r = redis.conn();
    wait_link_up(&mut r);
    for line in [
        "XADD s * f new",
        "XADD s MAXLEN ~ 250 * f trimmed",
        "XREADGROUP GROUP g c2 COUNT 5 STREAMS s >",
        "XREADGROUP GROUP g2 c1 COUNT 4 NOACK STREAMS s >",
        "XREADGROUP GROUP g c1 STREAMS s 0",
        "XCLAIM s g c3 0 1-1 3-1",
        "XAUTOCLAIM s g c4 0 0 COUNT 2",
        "XACK s g 5-1",
        "XDEL s 7-1 150-1",
        "XREADGROUP GROUP g c2 COUNT 2 STREAMS s >",
        "XTRIM s MINID 6",
        "XTRIM s MAXLEN 290",
        "XGROUP CREATECONSUMER s g2 idle",
        "XGROUP DELCONSUMER s g c4",
        "XGROUP SETID s g2 100-1 ENTRIESREAD 90",
        "XGROUP CREATE s g3 $ MKSTREAM",
        "XSETID s 99999999999999-0 ENTRIESADDED 400 MAXDELETEDID 150-1",
        "XGROUP CREATE fresh g 0 MKSTREAM",
    ] {
        let got = m.cmd(line);
        assert!(!got.starts_with(b"-"), "{line}: {}", escape(&got));
    }
    wait_caught_up(&mut m, &mut r);
    // XINFO STREAM FULL without the seen times and read counters.
    let strip = "local r = redis.call('XINFO', 'STREAM', KEYS[1], 'FULL', 'COUNT', 0) \
        for i = 1, #r, 2 do if r[i] == 'groups' then for _, g in ipairs(r[i+1]) do \
        for j = 1, #g, 2 do if g[j] == 'entries-read' or g[j] == 'lag' then g[j+1] = 0 \
        elseif g[j] == 'consumers' then for _, c in ipairs(g[j+1]) do \
        for k = 1, #c, 2 do if c[k] == 'seen-time' then c[k+1] = 0 end end end end end \
        end end end return r";
    for key in ["s", "fresh"] {
        let a = m.send(&["EVAL", strip, "1", key]);
        let b = r.send(&["EVAL", strip, "1", key]);
        assert!(a.starts_with(b"*18"), "{}", escape(&a));
        assert_eq!(
            escape(&a),
            escape(&b),
            "{key} on the master and the replica"
        );
        let a = m.send(&["XRANGE", key, "-", "+"]);
        assert_eq!(escape(&a), escape(&r.send(&["XRANGE", key, "-", "+"])));
    }
}
