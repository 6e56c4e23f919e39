//! Transactions are atomic with respect to every other client, the I/O
//! threads and slot migration: with `--io-threads 4` on two servers, writers
//! run `MULTI; INCR a{t}; INCR b{t}; EXEC` and readers `MULTI; GET a{t};
//! GET b{t}; EXEC` on both, while the `{t}` slot is migrated back and forth
//! between them with SLOTSMGRTTAGSLOT. No reader may ever see a ≠ b (both
//! missing is fine: the tag group is on the other server).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use tests::{Conn, Server, Value};

const RUN: Duration = Duration::from_secs(4);

fn as_num(v: &Value) -> Option<i64> {
    v.as_text().and_then(|t| t.parse().ok())
}

/// A thread moving the slot of `key` back and forth between the two
/// servers (SLOTSMGRTTAGSLOT until empty, then the other way) until `stop`.
fn mover(
    ports: [u16; 2],
    key: &'static str,
    stop: Arc<AtomicBool>,
    moves: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut conns = [
            Conn::connect(ports[0]).unwrap(),
            Conn::connect(ports[1]).unwrap(),
        ];
        let slot = {
            let v = conns[0].send_value(&["SLOTSHASHKEY", key]);
            v.as_array().unwrap()[0].as_int().unwrap().to_string()
        };
        let mut from = 0;
        while !stop.load(Relaxed) {
            let to = ports[1 - from].to_string();
            for _ in 0..100 {
                let v =
                    conns[from].send_value(&["SLOTSMGRTTAGSLOT", "127.0.0.1", &to, "5000", &slot]);
                let a = v
                    .as_array()
                    .unwrap_or_else(|| panic!("SLOTSMGRTTAGSLOT: {v:?}"));
                if a[1].as_int() == Some(0) {
                    break;
                }
            }
            moves.fetch_add(1, Relaxed);
            from = 1 - from;
        }
    })
}

/// Lets `threads` run for [`RUN`] (less if one fails), then stops and
/// joins them.
fn run_for(threads: Vec<thread::JoinHandle<()>>, stop: &AtomicBool) {
    let start = Instant::now();
    while start.elapsed() < RUN {
        thread::sleep(Duration::from_millis(50));
        if threads.iter().any(|t| t.is_finished()) {
            break;
        }
    }
    stop.store(true, Relaxed);
    for t in threads {
        t.join().expect("a client thread failed");
    }
}

/// Prints what a run did and fails it when too little happened to prove
/// anything (`writes_kind`: what a write was).
fn enough_happened(writes_kind: &str, reads: &AtomicU64, writes: &AtomicU64, moves: &AtomicU64) {
    let (r, w, m) = (
        reads.load(Relaxed),
        writes.load(Relaxed),
        moves.load(Relaxed),
    );
    eprintln!("reads {r}, {writes_kind} {w}, slot moves {m}");
    assert!(
        r > 100 && w > 100 && m > 4,
        "too little happened: reads {r}, writes {w}, moves {m}"
    );
}

#[test]
fn transactions_stay_atomic_while_the_slot_moves() {
    let args = ["--io-threads", "4"];
    let (s1, s2) = (Server::start(&args), Server::start(&args));
    let ports = [s1.port(), s2.port()];
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, writes, moves) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut threads = Vec::new();
    for w in 0..4 {
        let (stop, writes) = (stop.clone(), writes.clone());
        let port = ports[w % 2];
        threads.push(thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            while !stop.load(Relaxed) {
                c.send(&["MULTI"]);
                c.send(&["INCR", "a{t}"]);
                c.send(&["INCR", "b{t}"]);
                // EXEC answers both results, or refuses the whole
                // transaction while the keys are in flight.
                let exec = c.send(&["EXEC"]);
                if exec.starts_with(b"*2\r\n") {
                    writes.fetch_add(1, Relaxed);
                } else {
                    assert!(
                        exec.starts_with(b"-EXECABORT"),
                        "EXEC: {}",
                        String::from_utf8_lossy(&exec)
                    );
                }
            }
        }));
    }
    for rd in 0..4 {
        let (stop, reads) = (stop.clone(), reads.clone());
        let port = ports[rd % 2];
        threads.push(thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            while !stop.load(Relaxed) {
                c.send(&["MULTI"]);
                c.send(&["GET", "a{t}"]);
                c.send(&["GET", "b{t}"]);
                let v = c.send_value(&["EXEC"]);
                let items = v.as_array().unwrap_or_else(|| panic!("EXEC: {v:?}"));
                let (a, b) = (as_num(&items[0]), as_num(&items[1]));
                assert_eq!(
                    a, b,
                    "a reader on port {port} saw a{{t}}={a:?} b{{t}}={b:?}"
                );
                reads.fetch_add(1, Relaxed);
            }
        }));
    }
    threads.push(mover(ports, "a{t}", stop.clone(), moves.clone()));
    run_for(threads, &stop);
    enough_happened("committed transactions", &reads, &writes, &moves);
}

/// WATCH sees a key moved away by a migration as modified (the key is gone
/// from this server): EXEC fails.
#[test]
fn watched_key_migrated_away_aborts_exec() {
    let (s1, s2) = (Server::start(&[]), Server::start(&[]));
    let mut c = s1.conn();
    let mut m = s1.conn();
    assert_eq!(c.send(&["SET", "w{x}", "1"]), b"+OK\r\n");
    assert_eq!(c.send(&["WATCH", "w{x}"]), b"+OK\r\n");
    let to = s2.port().to_string();
    assert_eq!(
        m.send(&["SLOTSMGRTTAGONE", "127.0.0.1", &to, "5000", "w{x}"]),
        b":1\r\n"
    );
    assert_eq!(c.send(&["MULTI"]), b"+OK\r\n");
    assert_eq!(c.send(&["SET", "w{x}", "2"]), b"+QUEUED\r\n");
    assert_eq!(c.send(&["EXEC"]), b"*-1\r\n");
    assert_eq!(s2.conn().send(&["GET", "w{x}"]), b"$1\r\n1\r\n");
}

/// Scripts are atomic like transactions: with `--io-threads 4` on two
/// servers, writers run a script incrementing `a{s}` and `b{s}` (declared
/// keys, or the same keys undeclared, which the script locks as it reaches
/// them) and readers a script reading both, while the slot moves back and
/// forth. No reader sees a ≠ b; writers are refused whole (never half
/// applied) while the keys are in flight. Then each server's AOF, replayed
/// (DEBUG LOADAOF), gives back the same values: the propagated effects are
/// the script's.
fn scripts_stay_atomic(declared: bool) {
    let args = [
        "--io-threads",
        "4",
        "--appendonly",
        "yes",
        "--enable-debug-command",
        "yes",
    ];
    let (s1, s2) = (Server::start(&args), Server::start(&args));
    let ports = [s1.port(), s2.port()];
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, writes, moves) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let write: Vec<String> = if declared {
        [
            "EVAL",
            "redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[2])",
            "2",
            "a{s}",
            "b{s}",
        ]
        .map(String::from)
        .to_vec()
    } else {
        [
            "EVAL",
            "redis.call('incr', 'a{s}') return redis.call('incr', 'b{s}')",
            "0",
        ]
        .map(String::from)
        .to_vec()
    };
    let read: Vec<String> = if declared {
        [
            "EVAL_RO",
            "return {redis.call('get', KEYS[1]), redis.call('get', KEYS[2])}",
            "2",
            "a{s}",
            "b{s}",
        ]
        .map(String::from)
        .to_vec()
    } else {
        [
            "EVAL",
            "return {redis.call('get', 'a{s}'), redis.call('get', 'b{s}')}",
            "0",
        ]
        .map(String::from)
        .to_vec()
    };
    let mut threads = Vec::new();
    for w in 0..4 {
        let (stop, writes, write) = (stop.clone(), writes.clone(), write.clone());
        let port = ports[w % 2];
        threads.push(thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            while !stop.load(Relaxed) {
                let r = c.send(&write);
                if r.starts_with(b":") {
                    writes.fetch_add(1, Relaxed);
                } else {
                    assert_eq!(
                        r,
                        b"-ERR the specified key is being migrated\r\n",
                        "EVAL: {}",
                        String::from_utf8_lossy(&r)
                    );
                }
            }
        }));
    }
    for rd in 0..4 {
        let (stop, reads, read) = (stop.clone(), reads.clone(), read.clone());
        let port = ports[rd % 2];
        threads.push(thread::spawn(move || {
            let mut c = Conn::connect(port).unwrap();
            while !stop.load(Relaxed) {
                let v = c.send_value(&read);
                let items = v.as_array().unwrap_or_else(|| panic!("EVAL: {v:?}"));
                let a = items.first().and_then(as_num);
                let b = items.get(1).and_then(as_num);
                // A missing key ends the Lua array early (nil).
                assert_eq!(
                    a, b,
                    "a reader on port {port} saw a{{s}}={a:?} b{{s}}={b:?}"
                );
                reads.fetch_add(1, Relaxed);
            }
        }));
    }
    threads.push(mover(ports, "a{s}", stop.clone(), moves.clone()));
    run_for(threads, &stop);
    enough_happened("committed scripts", &reads, &writes, &moves);
    for s in [&s1, &s2] {
        let mut c = s.conn();
        let before = (c.cmd("GET a{s}"), c.cmd("GET b{s}"), c.cmd("DBSIZE"));
        assert_eq!(before.0, before.1);
        assert_eq!(c.cmd("DEBUG LOADAOF"), b"+OK\r\n");
        let after = (c.cmd("GET a{s}"), c.cmd("GET b{s}"), c.cmd("DBSIZE"));
        assert_eq!(before, after, "the AOF replayed differently");
    }
}

#[test]
fn scripts_with_declared_keys_stay_atomic_while_the_slot_moves() {
    scripts_stay_atomic(true);
}

#[test]
fn scripts_with_undeclared_keys_stay_atomic_while_the_slot_moves() {
    scripts_stay_atomic(false);
}

/// Two scripts that each wrote their declared key and then reach the
/// other's (undeclared) key, at the same time on two executor threads:
/// one waits in the global slot order, the other out of order — which is
/// bounded (db::GROW_WAIT), so instead of a deadlock that one fails its
/// command and the other completes. Which of them runs first depends on
/// the executor, so several rounds; a deadlock fails the read timeout.
#[test]
fn crossing_scripts_with_undeclared_keys_never_deadlock() {
    let s = Server::start(&["--io-threads", "2"]);
    // Slot of "a" (579) is below that of "b" (1017).
    let spin = "local s = redis.call('TIME') repeat local n = redis.call('TIME') \
                until (n[1]-s[1])*1000000 + (n[2]-s[2]) > 200000 ";
    let script = |other: &str| {
        format!(
            "redis.call('SET', KEYS[1], '1') {spin}redis.call('SET', '{other}', '1') return 'done'"
        )
    };
    let (low_first, high_first) = (script("b"), script("a"));
    let mut crossed = 0;
    for _ in 0..6 {
        let runs: Vec<_> = [(low_first.clone(), "a"), (high_first.clone(), "b")]
            .into_iter()
            .map(|(body, key)| {
                let port = s.port();
                thread::spawn(move || {
                    let mut c = Conn::connect(port).expect("connect");
                    c.set_timeout(Duration::from_secs(20));
                    c.send(&["EVAL", &body, "1", key])
                })
            })
            .collect();
        let replies: Vec<Vec<u8>> = runs.into_iter().map(|t| t.join().expect("run")).collect();
        // The script waiting in order ("a" then "b") always completes.
        assert_eq!(
            replies[0],
            b"$4\r\ndone\r\n",
            "{:?}",
            String::from_utf8_lossy(&replies[0])
        );
        if replies[1] != b"$4\r\ndone\r\n" {
            assert!(
                replies[1].starts_with(b"-ERR Script attempted to access an undeclared key whose slot another client kept locked"),
                "{}",
                String::from_utf8_lossy(&replies[1])
            );
            crossed += 1;
        }
    }
    eprintln!("crossed {crossed} of 6 rounds");
    assert_eq!(s.conn().cmd("PING"), b"+PONG\r\n");
}
