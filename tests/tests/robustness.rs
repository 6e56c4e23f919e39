//! Robustness: random, truncated and oversized RESP thrown at codis-server
//! from several connections at once, while a separate well-behaved client
//! keeps checking PING and SET/GET. Mirrors what Redis 7.0 guarantees: a
//! protocol error is answered with `-ERR Protocol error: ...` and the
//! connection closed, an incomplete request just waits, a client EOF frees
//! the connection, and nothing a client sends can crash the server.
//!
//! Every chaos connection ends with a half-close (client EOF), after which the
//! server must close its side: "got replies or was closed, never hangs" is
//! checked with read timeouts. Everything is bounded (a few thousand messages,
//! a time budget) and seeded: set `ROBUSTNESS_SEED` to replay a run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tests::resp::{encode_command, frame_len};
use tests::{Conn, Server, assert_reply, escape_max};

const WORKERS: usize = 6;
const ITERATIONS_PER_WORKER: usize = 400;
/// Stop starting new chaos after this long (slow debug builds on 2 cores).
const CHAOS_BUDGET: Duration = Duration::from_secs(10);
/// How long the server may take to close after our EOF (generous).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

const SAFE_COMMANDS: &[&str] = &[
    "SET",
    "GET",
    "PING",
    "ECHO",
    "INCR",
    "MGET",
    "MSET",
    "DEL",
    "EXISTS",
    "APPEND",
    "GETRANGE",
    "STRLEN",
    "SETRANGE",
    "INCRBY",
    "GETSET",
    "SLOTSHASHKEY",
    "SLOTSINFO",
    "DBSIZE",
    "TYPE",
    "TTL",
];

fn seed() -> u64 {
    std::env::var("ROBUSTNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(42)
        })
}

/// A syntactically valid command with chaos-only keys.
fn valid_command(rng: &mut StdRng) -> Vec<u8> {
    let name = SAFE_COMMANDS[rng.random_range(0..SAFE_COMMANDS.len())];
    let mut args: Vec<Vec<u8>> = vec![name.as_bytes().to_vec()];
    for _ in 0..rng.random_range(0..5) {
        let a: Vec<u8> = match rng.random_range(0..4) {
            0 => format!("chaos:{}", rng.random_range(0..50)).into_bytes(),
            1 => rng.random_range(-1000i64..1000).to_string().into_bytes(),
            2 => {
                let mut b = vec![0u8; rng.random_range(0..300)];
                rng.fill_bytes(&mut b);
                b
            }
            _ => b"x".repeat(rng.random_range(0..5000)),
        };
        args.push(a);
    }
    encode_command(&args)
}

/// Random bytes biased towards RESP tokens, so the parser's states get hit.
fn resp_noise(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.random_range(1..40) {
        match rng.random_range(0..10) {
            0 => out.push(b'*'),
            1 => out.push(b'$'),
            2 => out.extend_from_slice(b"\r\n"),
            3 => out.extend_from_slice(rng.random_range(-3i64..100_000).to_string().as_bytes()),
            4 => out.push(b'\n'),
            5 => out.extend_from_slice(
                SAFE_COMMANDS[rng.random_range(0..SAFE_COMMANDS.len())].as_bytes(),
            ),
            6 => out.push([b'"', b'\'', b'\\', b' ', b'{', b'}'][rng.random_range(0..6)]),
            7 => out.extend_from_slice(&valid_command(rng)),
            _ => {
                let mut b = vec![0u8; rng.random_range(1..64)];
                rng.fill_bytes(&mut b);
                out.extend_from_slice(&b);
            }
        }
    }
    out
}

/// One chaos message: bytes to send, plus an optional exact reply we must see
/// (for the deterministic protocol errors).
fn chaos_message(rng: &mut StdRng) -> (&'static str, Vec<u8>, Option<&'static [u8]>) {
    match rng.random_range(0..12) {
        0 | 1 => {
            let mut b = vec![0u8; rng.random_range(1..2000)];
            rng.fill_bytes(&mut b);
            ("random bytes", b, None)
        }
        2 | 3 => ("resp noise", resp_noise(rng), None),
        4 | 5 => {
            let mut b = Vec::new();
            for _ in 0..rng.random_range(1..8) {
                b.extend_from_slice(&valid_command(rng));
            }
            let cut = rng.random_range(0..=b.len());
            b.truncate(cut);
            ("valid commands cut", b, None)
        }
        6 => {
            let declared = rng.random_range(100_000u64..500_000_000);
            let mut b = format!("*2\r\n$3\r\nGET\r\n${declared}\r\n").into_bytes();
            b.extend(std::iter::repeat_n(b'z', rng.random_range(0..10_000)));
            ("huge bulk declared, not sent", b, None)
        }
        7 => (
            "600 MB bulk",
            b"*1\r\n$629145600\r\n".to_vec(),
            Some(&b"-ERR Protocol error: invalid bulk length\r\n"[..]),
        ),
        8 => {
            let n = [1_048_576u64, 1_048_577, 2_000_000, i32::MAX as u64][rng.random_range(0..4)];
            let mut b = format!("*{n}\r\n").into_bytes();
            for _ in 0..rng.random_range(0..100) {
                b.extend_from_slice(b"$1\r\na\r\n");
            }
            ("huge multibulk count", b, None)
        }
        9 => {
            let depth = rng.random_range(2..1000);
            (
                "nested multibulk",
                b"*1\r\n".repeat(depth),
                Some(&b"-ERR Protocol error: expected '$', got '*'\r\n"[..]),
            )
        }
        10 => (
            "inline > 64KB",
            vec![b'i'; 65 * 1024 + 1],
            Some(&b"-ERR Protocol error: too big inline request\r\n"[..]),
        ),
        _ => {
            // Pipelined valid commands, fully sent: every reply must arrive.
            let mut b = Vec::new();
            for _ in 0..rng.random_range(1..30) {
                b.extend_from_slice(&valid_command(rng));
            }
            ("valid pipeline", b, None)
        }
    }
}

/// Sends `bytes`, half-closes, and reads until the server closes. Returns a
/// problem description, or None if all is well.
fn chaos_connection(port: u16, what: &str, bytes: &[u8], expect: Option<&[u8]>) -> Option<String> {
    let mut c = match Conn::connect(port) {
        Ok(c) => c,
        Err(e) => return Some(format!("{what}: cannot connect: {e}")),
    };
    c.set_timeout(CLOSE_WAIT);
    // The server may close early (protocol error): write errors are fine.
    let _ = c.write_raw(bytes);
    c.shutdown_write();
    let (got, closed) = c.read_until_close(CLOSE_WAIT, CLOSE_WAIT + Duration::from_secs(5));
    if !closed {
        return Some(format!(
            "{what}: server did not close the connection after client EOF (hang); sent {}; got {}",
            escape_max(bytes, 200),
            escape_max(&got, 200)
        ));
    }
    // Whatever came back must be a sequence of complete RESP replies.
    let mut rest = &got[..];
    while !rest.is_empty() {
        match frame_len(rest) {
            Ok(Some(n)) => rest = &rest[n..],
            Ok(None) => {
                return Some(format!(
                    "{what}: server closed mid-reply: {}",
                    escape_max(&got, 300)
                ));
            }
            Err(e) => {
                return Some(format!(
                    "{what}: reply is not RESP ({e}): {}",
                    escape_max(&got, 300)
                ));
            }
        }
    }
    if let Some(exp) = expect {
        // A reset can swallow the reply when the server closes with unread
        // input, so an empty answer is accepted; anything else must match.
        if !got.is_empty() && got != exp {
            return Some(format!(
                "{what}: expected {} got {}",
                escape_max(exp, 100),
                escape_max(&got, 300)
            ));
        }
    }
    None
}

/// SET/GET/PING round trips that must always work.
fn health_check(c: &mut Conn, i: usize) -> Result<(), String> {
    let key = format!("mon:{i}");
    let val = format!("value-{i}");
    let r = c
        .try_send(&["SET", &key, &val])
        .map_err(|e| format!("SET: {e}"))?;
    if r != b"+OK\r\n" {
        return Err(format!("SET replied {}", escape_max(&r, 200)));
    }
    let r = c
        .try_send(&["GET", &key])
        .map_err(|e| format!("GET: {e}"))?;
    let exp = format!("${}\r\n{val}\r\n", val.len());
    if r != exp.as_bytes() {
        return Err(format!("GET replied {}", escape_max(&r, 200)));
    }
    let r = c.try_send(&["PING"]).map_err(|e| format!("PING: {e}"))?;
    if r != b"+PONG\r\n" {
        return Err(format!("PING replied {}", escape_max(&r, 200)));
    }
    Ok(())
}

fn chaos(extra_args: &[&str]) {
    let seed = seed();
    let mut srv = Server::start(extra_args);
    let port = srv.port();
    let problems = Mutex::new(Vec::<String>::new());
    let done = AtomicBool::new(false);
    let messages = AtomicUsize::new(0);
    let checks = AtomicUsize::new(0);
    let start = Instant::now();

    std::thread::scope(|s| {
        // The well-behaved client, checking during the chaos.
        s.spawn(|| {
            let mut c = match Conn::connect(port) {
                Ok(c) => c,
                Err(e) => {
                    problems
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("monitor cannot connect: {e}"));
                    return;
                }
            };
            let mut i = 0;
            while !done.load(Ordering::Relaxed) && i < 100_000 {
                if let Err(e) = health_check(&mut c, i) {
                    problems
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("during chaos, check {i}: {e}"));
                    return;
                }
                checks.fetch_add(1, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (problems, messages) = (&problems, &messages);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64));
                    for _ in 0..ITERATIONS_PER_WORKER {
                        if start.elapsed() > CHAOS_BUDGET {
                            break;
                        }
                        let (what, bytes, expect) = chaos_message(&mut rng);
                        if let Some(p) = chaos_connection(port, what, &bytes, expect) {
                            let mut all = problems.lock().unwrap_or_else(|p| p.into_inner());
                            all.push(p);
                            if all.len() > 20 {
                                return;
                            }
                        }
                        messages.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        done.store(true, Ordering::Relaxed);
    });

    let mut problems = problems.into_inner().unwrap_or_else(|p| p.into_inner());
    if !srv.is_alive() {
        problems.push(format!(
            "codis-server DIED; log tail:\n{}",
            srv.log_tail(40)
        ));
    } else {
        // After the chaos: a fresh client gets correct answers.
        match Conn::connect(port) {
            Ok(mut c) => {
                for i in 0..50 {
                    if let Err(e) = health_check(&mut c, 1_000_000 + i) {
                        problems.push(format!("after chaos: {e}"));
                        break;
                    }
                }
            }
            Err(e) => problems.push(format!("after chaos: cannot connect: {e}")),
        }
    }
    let n = messages.load(Ordering::Relaxed);
    eprintln!(
        "[robustness] seed {seed}: {n} chaos messages, {} health checks, {:?}",
        checks.load(Ordering::Relaxed),
        start.elapsed()
    );
    assert!(
        problems.is_empty(),
        "seed {seed} (set ROBUSTNESS_SEED={seed} to replay), {n} messages:\n{}",
        problems.join("\n")
    );
    assert!(n >= WORKERS * 10, "only {n} chaos messages were sent");
}

#[test]
fn chaos_single_threaded_server() {
    chaos(&[]);
}

#[test]
fn chaos_multi_threaded_server() {
    chaos(&["--io-threads", "2"]);
}

#[test]
fn exact_errors_for_oversized_requests() {
    let srv = Server::start(&[]);
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*1\r\n$629145600\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$536870913\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n*1\r\n*1\r\n",
            b"-ERR Protocol error: expected '$', got '*'\r\n",
        ),
    ];
    for (send, exp) in cases {
        let mut c = srv.conn();
        c.write_raw(send).unwrap_or_else(|e| panic!("write: {e}"));
        let (got, closed) = c.read_until_close(CLOSE_WAIT, CLOSE_WAIT);
        assert!(
            closed,
            "connection left open after {}",
            escape_max(send, 100)
        );
        tests::assert_reply(&got, exp);
    }
    // exactly 64 KB + 1 of inline data without a newline
    let mut c = srv.conn();
    c.write_raw(&vec![b'a'; 64 * 1024 + 1])
        .unwrap_or_else(|e| panic!("write: {e}"));
    let (got, closed) = c.read_until_close(CLOSE_WAIT, CLOSE_WAIT);
    assert!(closed);
    tests::assert_reply(&got, b"-ERR Protocol error: too big inline request\r\n");
    // a bulk of 16 MB that *is* sent completely works
    let mut c = srv.conn();
    let big = vec![b'v'; 16 << 20];
    tests::assert_reply(&c.send(&[&b"SET"[..], b"big", &big]), b"+OK\r\n");
    tests::assert_reply(&c.cmd("STRLEN big"), b":16777216\r\n");
    let got = c.cmd("GET big");
    assert_eq!(got.len(), big.len() + 13, "GET of 16 MB value");
}

/// Every Codis slot/migration command and DUMP/RESTORE with random
/// arguments (numbers, garbage, payloads cut or flipped, hosts that are
/// this very server, a closed port or garbage): every reply is a complete
/// frame, the server stays up, keys nobody touched are intact, and a
/// migration to ourselves never loses the key it ships.
#[test]
fn codis_commands_with_random_arguments() {
    const CMDS: &[&str] = &[
        "SLOTSINFO",
        "SLOTSSCAN",
        "SLOTSDEL",
        "SLOTSCHECK",
        "SLOTSRESTORE",
        "SLOTSMGRTONE",
        "SLOTSMGRTTAGONE",
        "SLOTSMGRTSLOT",
        "SLOTSMGRTTAGSLOT",
        "SLOTSMGRTONE-ASYNC",
        "SLOTSMGRTTAGONE-ASYNC",
        "SLOTSMGRTSLOT-ASYNC",
        "SLOTSMGRTTAGSLOT-ASYNC",
        "SLOTSMGRTONE-ASYNC-DUMP",
        "SLOTSMGRTTAGONE-ASYNC-DUMP",
        "SLOTSMGRT-ASYNC-FENCE",
        "SLOTSMGRT-ASYNC-CANCEL",
        "SLOTSMGRT-ASYNC-STATUS",
        "SLOTSMGRT-EXEC-WRAPPER",
        "SLOTSRESTORE-ASYNC",
        "SLOTSRESTORE-ASYNC-AUTH",
        "SLOTSRESTORE-ASYNC-SELECT",
        "DUMP",
        "RESTORE",
    ];
    let seed = seed();
    eprintln!("seed {seed} (ROBUSTNESS_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let s = Server::start(&[]);
    let mut c = s.conn();
    c.set_timeout(Duration::from_secs(30));
    let mut guard = s.conn();
    guard.send(&["SET", "{keep}untouched", "yes"]);
    let own = s.port().to_string();
    let closed = tests::free_port().to_string();
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let started = Instant::now();
    let mut sent = 0;
    while sent < 1500 && started.elapsed() < CHAOS_BUDGET {
        // Some data to move around, with tags.
        let k = format!(
            "{{t{}}}k{}",
            rng.random_range(0..8),
            rng.random_range(0..40)
        );
        match rng.random_range(0..4) {
            0 => c.send(&["SET", &k, "v"]),
            1 => c.send(&["HSET", &k, "f", "v", "g", "w"]),
            2 => c.send(&["RPUSH", &k, "a", "b", "c"]),
            _ => c.send(&["ZADD", &k, "1", "m", "2", "n"]),
        };
        if let tests::Value::Bulk(p) = c.send_value(&["DUMP", &k]) {
            payloads.push(p);
        }
        let name = CMDS[rng.random_range(0..CMDS.len())];
        let mut args: Vec<Vec<u8>> = vec![name.as_bytes().to_vec()];
        for i in 0..rng.random_range(0..9) {
            let a: Vec<u8> = match rng.random_range(0..10) {
                0 => b"127.0.0.1".to_vec(),
                1 => own.clone().into_bytes(),
                2 => closed.clone().into_bytes(),
                3 => rng.random_range(-5i64..1100).to_string().into_bytes(),
                4 => format!(
                    "{{t{}}}k{}",
                    rng.random_range(0..8),
                    rng.random_range(0..40)
                )
                .into_bytes(),
                5 if !payloads.is_empty() => {
                    let mut p = payloads[rng.random_range(0..payloads.len())].clone();
                    match rng.random_range(0..3) {
                        0 => {}
                        1 => p.truncate(rng.random_range(0..p.len())),
                        _ => {
                            let j = rng.random_range(0..p.len());
                            p[j] ^= 1 << rng.random_range(0..8);
                        }
                    }
                    p
                }
                6 => [
                    "delete", "string", "object", "list", "hash", "dict", "zset", "expire",
                ][rng.random_range(0..8)]
                .as_bytes()
                .to_vec(),
                7 => ["GET", "SET", "HGETALL", "LPUSH", "DEL"][rng.random_range(0..5)]
                    .as_bytes()
                    .to_vec(),
                8 => {
                    let mut b = vec![0u8; rng.random_range(0..40)];
                    rng.fill_bytes(&mut b);
                    b
                }
                _ => (i * 100).to_string().into_bytes(),
            };
            args.push(a);
        }
        let r = c
            .try_send(&args)
            .unwrap_or_else(|e| panic!("{}: {e}", tests::describe(&args)));
        assert!(
            frame_len(&r).is_ok(),
            "{}: bad frame",
            tests::describe(&args)
        );
        if r.starts_with(b"-ERR interrupted") || name.starts_with("SLOTSRESTORE-ASYNC") {
            // A target-side message may close the connection (code -1).
            c = s.conn();
            c.set_timeout(Duration::from_secs(30));
        }
        sent += 1;
    }
    assert_reply(&guard.send(&["PING"]), b"+PONG\r\n");
    assert_reply(&guard.send(&["GET", "{keep}untouched"]), b"$3\r\nyes\r\n");
    assert_reply(&guard.send(&["SLOTSCHECK"]), b"+OK\r\n");

    // Migrating to ourselves must not lose the key (sync and async).
    guard.send(&["SET", "self", "here"]);
    let r = guard.send(&["SLOTSMGRTONE", "127.0.0.1", &own, "1000", "self"]);
    assert!(
        r.starts_with(b"-"),
        "self-migration answered {}",
        escape_max(&r, 80)
    );
    assert_reply(&guard.send(&["GET", "self"]), b"$4\r\nhere\r\n");
    let r = guard.send(&[
        "SLOTSMGRTONE-ASYNC",
        "127.0.0.1",
        &own,
        "1000",
        "0",
        "0",
        "self",
    ]);
    assert!(
        r.starts_with(b"-"),
        "self-migration answered {}",
        escape_max(&r, 80)
    );
    assert_reply(&guard.send(&["GET", "self"]), b"$4\r\nhere\r\n");
}

/// Random picks whose count the client chooses (issue 19): SRANDMEMBER,
/// SPOP, HRANDFIELD and ZRANDMEMBER with extreme counts answer at once
/// (Redis 7.0 hangs building SRANDMEMBER's reply until it runs out of
/// memory), and PING on another connection keeps answering within 100 ms,
/// on the single-threaded and the multi-threaded executor.
#[test]
fn extreme_random_counts_answer_at_once() {
    for threads in ["1", "4"] {
        let srv = Server::start(&["--io-threads", threads]);
        let mut c = srv.conn();
        for i in 0..200 {
            let m = format!("m{i}");
            c.send(&["SADD", "s", &m]);
            c.send(&["HSET", "h", &m, "v"]);
            c.send(&["ZADD", "z", "1", &m]);
        }
        let done = AtomicBool::new(false);
        let worst = std::thread::scope(|sc| {
            let hostile = sc.spawn(|| {
                let mut h = srv.conn();
                let range = b"-ERR value is out of range\r\n".as_slice();
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(800) {
                    for n in ["-9223372036854775807", "-1099511627776", "-16777217"] {
                        assert_eq!(h.send(&["SRANDMEMBER", "s", n]), range, "SRANDMEMBER {n}");
                        assert_eq!(h.send(&["HRANDFIELD", "h", n]), range, "HRANDFIELD {n}");
                        assert_eq!(h.send(&["ZRANDMEMBER", "z", n]), range, "ZRANDMEMBER {n}");
                        assert_eq!(
                            h.send(&["HRANDFIELD", "h", n, "WITHVALUES"]),
                            range,
                            "HRANDFIELD {n} WITHVALUES"
                        );
                    }
                    // Positive counts are bounded by the data.
                    let all = h.send_value(&["SRANDMEMBER", "s", "9223372036854775807"]);
                    assert_eq!(all.as_array().map(|a| a.len()), Some(200));
                    let all = h.send_value(&["ZRANDMEMBER", "z", "9223372036854775807"]);
                    assert_eq!(all.as_array().map(|a| a.len()), Some(200));
                    let all = h.send_value(&["HRANDFIELD", "h", "9223372036854775807"]);
                    assert_eq!(all.as_array().map(|a| a.len()), Some(200));
                    assert_eq!(h.send(&["SPOP", "nokey", "9223372036854775807"]), b"*0\r\n");
                }
                done.store(true, Ordering::Relaxed);
            });
            let mut p = srv.conn();
            let mut worst = Duration::ZERO;
            while !done.load(Ordering::Relaxed) && !hostile.is_finished() {
                let t = Instant::now();
                assert_eq!(p.send(&["PING"]), b"+PONG\r\n");
                worst = worst.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(5));
            }
            hostile.join().expect("hostile client");
            worst
        });
        assert!(
            worst < Duration::from_millis(100),
            "io-threads {threads}: PING took {worst:?}"
        );
        // SPOP with a huge count takes what there is.
        let all = c.send_value(&["SPOP", "s", "9223372036854775807"]);
        assert_eq!(all.as_array().map(|a| a.len()), Some(200));
    }
}

/// A pick count under the cap can still ask for a huge reply (a large
/// member times the count): it stops at `proto-max-bulk-len` with an error,
/// or at the normal class's hard output limit, which closes the client as
/// Redis would.
#[test]
fn random_pick_replies_are_held_to_a_budget() {
    let srv = Server::start(&["--proto-max-bulk-len", "4mb"]);
    let mut c = srv.conn();
    let big = vec![b'x'; 1 << 20];
    c.send(&[b"SADD".as_slice(), b"s", &big]);
    c.send(&[b"HSET".as_slice(), b"h", &big, b"v"]);
    c.send(&[b"ZADD".as_slice(), b"z", b"1", &big]);
    for cmd in ["SRANDMEMBER", "HRANDFIELD", "ZRANDMEMBER"] {
        let key = &cmd[..1].to_lowercase();
        let r = c.send(&[cmd, key, "-100"]);
        assert!(
            r.starts_with(b"-ERR reply too large"),
            "{cmd}: {}",
            escape_max(&r, 80)
        );
        // Under the budget it is served.
        let r = c.send_value(&[cmd, key, "-3"]);
        assert_eq!(r.as_array().map(|a| a.len()), Some(3), "{cmd}");
    }
    assert_eq!(
        c.send(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 2mb 0 0"
        ]),
        b"+OK\r\n"
    );
    let r = c.try_send(&["SRANDMEMBER", "s", "-100"]);
    assert!(
        r.is_err(),
        "not closed: {:?}",
        r.map(|v| escape_max(&v, 80))
    );
    assert!(
        srv.log()
            .contains("closed ASAP for overcoming of output buffer limits")
    );
    let mut other = srv.conn();
    assert_eq!(other.send(&["SCARD", "s"]), b":1\r\n");
}
