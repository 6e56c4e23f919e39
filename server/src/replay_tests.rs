//! Replay equivalence (tests only): random workloads over every type, with
//! TTLs, lazy and active expiry, transactions, blocking pops (served at
//! once, and blocked then woken through `exec::call_wakeup` as block.rs does),
//! randomness (SPOP, SRANDMEMBER-free rewrites), Codis slot commands
//! (SLOTSDEL, SLOTSRESTORE) and DB switches run on one server while its
//! propagation stream is captured; the stream replayed into an empty server
//! must give the same dataset: every key's DUMP and PTTL, in every DB, at the
//! same clock. This is the contract AOF and replication rely on.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::testkit::Harness;

const KEYS: usize = 12;

fn key(r: &mut StdRng) -> Vec<u8> {
    // One hash tag: multi-key commands stay in one slot for the Codis
    // commands; a few untagged keys spread over other slots.
    if r.random_bool(0.8) {
        format!("{{t}}k{}", r.random_range(0..KEYS)).into_bytes()
    } else {
        format!("u{}", r.random_range(0..4)).into_bytes()
    }
}

fn num(r: &mut StdRng, lo: i64, hi: i64) -> Vec<u8> {
    r.random_range(lo..hi).to_string().into_bytes()
}

fn member(r: &mut StdRng) -> Vec<u8> {
    format!("m{}", r.random_range(0..20)).into_bytes()
}

fn v(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// One random command line (some are ill-typed on purpose: errors must not
/// propagate).
fn command(r: &mut StdRng, now: u64) -> Vec<Vec<u8>> {
    let k = key(r);
    let k2 = key(r);
    let m = member(r);
    let n = num(r, -5, 50);
    let ttl_s = num(r, 1, 4);
    let ttl_ms = num(r, 1, 3000);
    let at_ms = (now + r.random_range(0..3000)).to_string().into_bytes();
    match r.random_range(0..62) {
        0 => v(&[b"SET", &k, &n]),
        1 => v(&[b"SET", &k, &n, b"EX", &ttl_s]),
        2 => v(&[b"SET", &k, &n, b"PX", &ttl_ms, b"NX"]),
        3 => v(&[b"SET", &k, &n, b"PXAT", &at_ms, b"GET"]),
        4 => v(&[b"SETEX", &k, &ttl_s, &n]),
        5 => v(&[b"PSETEX", &k, &ttl_ms, &n]),
        6 => v(&[b"INCRBY", &k, &n]),
        7 => v(&[b"INCRBYFLOAT", &k, b"1.5"]),
        8 => v(&[b"APPEND", &k, &m]),
        9 => v(&[b"GETEX", &k, b"PX", &ttl_ms]),
        10 => v(&[b"GETEX", &k, b"PERSIST"]),
        11 => v(&[b"GETDEL", &k]),
        12 => v(&[b"GET", &k]),
        13 => v(&[b"EXPIRE", &k, &ttl_s]),
        14 => v(&[b"PEXPIRE", &k, &ttl_ms, b"GT"]),
        15 => v(&[b"PEXPIREAT", &k, &at_ms]),
        16 => v(&[b"EXPIRE", &k, b"-1"]),
        17 => v(&[b"PERSIST", &k]),
        18 => v(&[b"DEL", &k, &k2]),
        19 => v(&[b"RENAME", &k, &k2]),
        20 => v(&[b"COPY", &k, &k2, b"REPLACE"]),
        21 => v(&[b"LPUSH", &k, &m, &n]),
        22 => v(&[b"RPUSH", &k, &m]),
        23 => v(&[b"LPOP", &k]),
        24 => v(&[b"RPOP", &k, b"2"]),
        25 => v(&[b"LMOVE", &k, &k2, b"LEFT", b"RIGHT"]),
        26 => v(&[b"BLPOP", &k, &k2, b"0.01"]),
        27 => v(&[b"BLMOVE", &k, &k2, b"RIGHT", b"LEFT", b"0.01"]),
        28 => v(&[b"LMPOP", b"2", &k, &k2, b"LEFT", b"COUNT", b"2"]),
        29 => v(&[b"LTRIM", &k, b"0", b"2"]),
        30 => v(&[b"LSET", &k, b"0", &m]),
        31 => v(&[b"HSET", &k, &m, &n]),
        32 => v(&[b"HINCRBYFLOAT", &k, &m, b"0.25"]),
        33 => v(&[b"HDEL", &k, &m]),
        34 => v(&[b"HSETNX", &k, &m, &n]),
        35 => v(&[b"SADD", &k, &m, &n]),
        36 => v(&[b"SREM", &k, &m]),
        37 => v(&[b"SPOP", &k]),
        38 => v(&[b"SPOP", &k, b"3"]),
        39 => v(&[b"SMOVE", &k, &k2, &m]),
        40 => v(&[b"SINTERSTORE", &k, &k2, &k]),
        41 => v(&[b"SUNIONSTORE", &k2, &k, &k2]),
        42 => v(&[b"ZADD", &k, &n, &m]),
        43 => v(&[b"ZINCRBY", &k, b"2.5", &m]),
        44 => v(&[b"ZPOPMIN", &k]),
        45 => v(&[b"BZPOPMAX", &k, &k2, b"0.01"]),
        46 => v(&[b"ZUNIONSTORE", &k2, b"2", &k, &k2]),
        47 => v(&[b"ZREMRANGEBYSCORE", &k, b"-inf", b"5"]),
        48 => v(&[b"ZMPOP", b"1", &k, b"MAX", b"COUNT", b"2"]),
        49 => v(&[b"SETBIT", &k, &num(r, 0, 64), b"1"]),
        50 => v(&[b"BITOP", b"OR", &k2, &k, &k2]),
        51 => v(&[b"PFADD", &k, &m, &n]),
        52 => v(&[b"PFMERGE", &k2, &k]),
        53 => v(&[b"SORT", &k, b"ALPHA", b"STORE", &k2]),
        54 => v(&[b"MOVE", &k, b"1"]),
        55 => v(&[b"SWAPDB", b"0", b"1"]),
        56 => v(&[b"SELECT", &num(r, 0, 2)]),
        57 => v(&[b"MSET", &k, &n, &k2, &m]),
        58 => v(&[b"ZADD", &k, b"XX", b"CH", &n, &m]),
        59 => v(&[b"UNLINK", &k]),
        60 => v(&[b"GETSET", &k, &m]),
        _ => v(&[b"SETRANGE", &k, b"2", &m]),
    }
}

/// A key's value in a form independent of hash-table iteration order:
/// DUMP for ordered values; type, encoding and the sorted RESP elements for
/// hashes and sets (whose DUMP of a hash-table encoding lists members in
/// table order, which differs between two servers).
fn canonical(h: &mut Harness, k: &[u8]) -> Vec<u8> {
    let ty = h.run_args(&[b"TYPE", k]);
    let mut out = ty.clone();
    out.extend(h.run_args(&[b"OBJECT", b"ENCODING", k]));
    let items = match ty.as_slice() {
        b"+hash\r\n" => h.run_args(&[b"HGETALL", k]),
        b"+set\r\n" => h.run_args(&[b"SMEMBERS", k]),
        _ => return h.run_args(&[b"DUMP", k]),
    };
    let text = String::from_utf8_lossy(&items).into_owned();
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    if ty.as_slice() == b"+hash\r\n" {
        // Field/value pairs: `$n`, field, `$n`, value after the header.
        let mut pairs: Vec<String> = lines[1..].chunks(4).map(|c| c.join("\n")).collect();
        pairs.sort();
        out.extend(pairs.join("|").into_bytes());
    } else {
        lines.sort();
        out.extend(lines.join("|").into_bytes());
    }
    out
}

/// Every key of every DB with its DUMP payload and PTTL, sorted.
/// (db, key, canonical value, PTTL reply) of every live key.
type Dataset = Vec<(usize, Vec<u8>, Vec<u8>, Vec<u8>)>;

fn dataset(h: &mut Harness) -> Dataset {
    let saved = h.client.db;
    let mut all = Vec::new();
    // The workload only reaches DBs 0 and 1 (SELECT, MOVE, SWAPDB).
    for db in 0..2 {
        h.client.select(db);
        let mut keys = Vec::new();
        if let Some(d) = h.srv.ks.db(db) {
            h.srv
                .ks
                .locker()
                .for_each_entry(d, |e| keys.push(e.key().to_vec()));
        }
        for k in keys {
            let dump = canonical(h, &k);
            let pttl = h.run_args(&[b"PTTL", &k]);
            if pttl != b":-2\r\n" {
                all.push((db, k, dump, pttl));
            }
        }
    }
    h.client.select(saved);
    all.sort();
    all
}

/// Runs one workload; returns how many blocked pops were woken and served.
fn run_workload(seed: u64, steps: usize, check_every: usize) -> usize {
    let mut r = StdRng::seed_from_u64(seed);
    let mut a = Harness::new();
    a.capture();
    let mut b = Harness::new();
    let mut replayed = 0usize;
    // A second client whose blocking pops wait and are woken later through
    // the same path block.rs uses (exec::call_wakeup).
    let mut waiter = crate::client::Client::new(
        std::sync::Arc::new(crate::client::ClientInfo::new(
            2,
            String::new(),
            String::new(),
            -1,
            0,
        )),
        true,
    );
    let mut waiting: Option<Vec<Vec<u8>>> = None;
    let mut woken = 0;
    for step in 0..steps {
        let last: String;
        a.now += r.random_range(0..150);
        let roll = r.random_range(0..100);
        if roll < 8 {
            // A transaction of a few commands (some may fail inside).
            a.run("MULTI");
            let mut queued = String::from("MULTI");
            for _ in 0..r.random_range(1..5) {
                let c = command(&mut r, a.now);
                let argv: Vec<&[u8]> = c.iter().map(|x| x.as_slice()).collect();
                a.run_args(&argv);
                queued.push_str(&format!(" / {}", show(&argv)));
            }
            a.run("EXEC");
            last = queued;
        } else if roll < 10 {
            a.srv
                .ks
                .active_expire(a.now, std::time::Duration::from_millis(5));
            last = "active expire".into();
        } else if roll < 15 {
            // The second client blocks on a list (or is woken when it has data).
            let mut out = protocol::resp::Reply::new();
            match waiting.take() {
                None => {
                    let (k, k2) = (key(&mut r), key(&mut r));
                    let argv: Vec<Vec<u8>> = match r.random_range(0..3) {
                        0 => v(&[b"BLPOP", &k, b"0"]),
                        1 => v(&[b"BLMOVE", &k, &k2, b"LEFT", b"RIGHT", b"0"]),
                        _ => v(&[b"BZPOPMIN", &k, b"0"]),
                    };
                    let parts: Vec<&[u8]> = argv.iter().map(|x| x.as_slice()).collect();
                    crate::exec::execute(&a.srv, &mut waiter, &mut out, a.now, &parts);
                    last = format!("waiter: {}", show(&parts));
                    if waiter.block.take().is_some() {
                        waiting = Some(argv);
                    }
                }
                Some(argv) => {
                    // Wake-up: the command runs again as a served waiter.
                    let parts: Vec<&[u8]> = argv.iter().map(|x| x.as_slice()).collect();
                    crate::exec::call_wakeup(&a.srv, &mut waiter, &mut out, a.now, &parts);
                    last = format!("waiter woken: {}", show(&parts));
                    if waiter.block.take().is_some() {
                        waiting = Some(argv);
                    } else {
                        woken += 1;
                    }
                }
            }
        } else if roll < 17 {
            // DUMP one key, RESTORE it elsewhere with a relative TTL.
            let (k, k2) = (key(&mut r), key(&mut r));
            let dump = a.run_args(&[b"DUMP", &k]);
            last = format!("DUMP/RESTORE {} -> {}", show(&[&k]), show(&[&k2]));
            if let Some(payload) = bulk(&dump) {
                let ttl = num(&mut r, 0, 3000);
                a.run_args(&[b"RESTORE", &k2, &ttl, &payload, b"REPLACE"]);
            }
        } else if roll < 18 {
            // Codis: move the {t} slot's keys out (SLOTSDEL) after dumping
            // one of them, then restore it (as a migration target would).
            let k = key(&mut r);
            let dump = a.run_args(&[b"DUMP", &k]);
            a.run_args(&[
                b"SLOTSDEL",
                protocol::slot::slot_of(&k).to_string().as_bytes(),
            ]);
            last = format!("SLOTSDEL/SLOTSRESTORE {}", show(&[&k]));
            if let Some(payload) = bulk(&dump) {
                a.run_args(&[b"SLOTSRESTORE", &k, b"1500", &payload]);
            }
        } else {
            let c = command(&mut r, a.now);
            let argv: Vec<&[u8]> = c.iter().map(|x| x.as_slice()).collect();
            a.run_args(&argv);
            last = show(&argv);
        }
        // Replay what this step propagated into the empty server, at the
        // same clock, and compare whole datasets.
        b.now = a.now;
        let entries = a.propagated_argv();
        if a.client.block.take().is_some() {
            // Nothing to pop: the client would wait. It changed nothing, so
            // only lazy expiry (its lookups) may have propagated. Give up
            // the wait.
            assert!(
                entries.iter().all(|e| e[0] == b"DEL" || e[0] == b"SELECT"),
                "step {step} ({last}): a blocked command propagated {entries:?}"
            );
        }
        for e in &entries {
            deterministic(e, &last);
        }
        for argv in entries {
            let parts: Vec<&[u8]> = argv.iter().map(|x| x.as_slice()).collect();
            let reply = b.run_args(&parts);
            replayed += 1;
            assert!(
                !reply.starts_with(b"-"),
                "seed {seed} step {step} ({last}): replaying {} failed: {}",
                show(&parts),
                String::from_utf8_lossy(&reply)
            );
        }
        if step % check_every == 0 || step + 1 == steps {
            let (da, db) = (dataset(&mut a), dataset(&mut b));
            let diff: Vec<_> = da
                .iter()
                .filter(|x| !db.contains(x))
                .map(|x| ("source", x))
                .chain(
                    db.iter()
                        .filter(|x| !da.contains(x))
                        .map(|x| ("replica", x)),
                )
                .map(|(side, (d, k, dump, pttl))| {
                    format!(
                        "{side}: db{d} {} pttl {} dump {}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(pttl).trim(),
                        String::from_utf8_lossy(dump).escape_debug()
                    )
                })
                .collect();
            assert!(
                diff.is_empty(),
                "seed {seed} step {step} ({last}), {replayed} entries replayed: {diff:#?}"
            );
            // Reading both datasets may have expired keys lazily: replay
            // those DELs too (the replica has the same keys expired).
            for argv in a.propagated_argv() {
                let parts: Vec<&[u8]> = argv.iter().map(|x| x.as_slice()).collect();
                b.run_args(&parts);
            }
        }
    }
    let keys = dataset(&mut a).len();
    assert!(keys > 0, "seed {seed}: the workload left no keys");
    woken
}

/// A propagated entry must mean the same thing whenever it is applied:
/// no relative expiry, no randomness, no blocking, no float arithmetic
/// (Redis' rewrites).
fn deterministic(e: &[Vec<u8>], origin: &str) {
    let name = String::from_utf8_lossy(&e[0]).to_ascii_uppercase();
    let has = |w: &str| {
        e.iter()
            .skip(2)
            .any(|a| a.eq_ignore_ascii_case(w.as_bytes()))
    };
    let bad = match name.as_str() {
        "EXPIRE" | "PEXPIRE" | "SETEX" | "PSETEX" | "INCRBYFLOAT" | "HINCRBYFLOAT" | "SPOP"
        | "SRANDMEMBER" | "BLPOP" | "BRPOP" | "BLMOVE" | "BRPOPLPUSH" | "BLMPOP" | "BZPOPMIN"
        | "BZPOPMAX" | "BZMPOP" => true,
        "SET" | "GETEX" => has("EX") || has("PX") || has("EXAT"),
        "RESTORE" => e.get(2).is_some_and(|t| t.as_slice() != b"0") && !has("ABSTTL"),
        _ => false,
    };
    assert!(
        !bad,
        "({origin}) propagated a non-deterministic entry: {}",
        {
            let parts: Vec<&[u8]> = e.iter().map(|x| x.as_slice()).collect();
            show(&parts)
        }
    );
}

fn show(argv: &[&[u8]]) -> String {
    argv.iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The payload of a bulk reply.
fn bulk(reply: &[u8]) -> Option<Vec<u8>> {
    let rest = reply.strip_prefix(b"$")?;
    let nl = rest.windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    Some(rest.get(nl + 2..nl + 2 + len)?.to_vec())
}

#[test]
fn replay_gives_the_same_dataset() {
    let mut woken = 0;
    for seed in 0..24 {
        woken += run_workload(seed, 600, 1);
    }
    assert!(
        woken > 20,
        "only {woken} blocked pops were woken and served"
    );
}
