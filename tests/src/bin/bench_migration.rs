//! Migration benchmark (issue 5): fills slots on a source codis-server, moves
//! them to a target with the async commands (SLOTSMGRTTAGSLOT-ASYNC, the
//! dashboard's default, codis.md §2.7.1; one big key with
//! SLOTSMGRTTAGONE-ASYNC), and reports keys/s, MB/s and the latency of a
//! concurrent client on each server before and during the move.
//! `--mode sync` uses the sync commands instead: SLOTSMGRTTAGSLOT in a loop
//! per slot (one key or tag group per call) and SLOTSMGRTTAGONE for the big
//! key.
//!
//! ```text
//! cargo run --release -p tests --bin bench-migration -- [--keys 1000000]
//!     [--slots 64] [--value 32] [--numkeys 500] [--maxbulks 200] [--maxbytes 33554432]
//!     [--hash-fields 5000000] [--only small|big] [--mode async|sync]
//!     [--interval-us 0] [--source-cpu N --target-cpu M]
//! ```
//!
//! Both servers are our codis-server (`CODIS_RS_SERVER_BIN`, else built by the
//! harness in this binary's profile). The probe clients send one GET at a
//! time to a key outside the moving slots and record every round trip.
//! Loopback only; every loop is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use protocol::slot::slot_of;
use tests::{Conn, Server, Value};

const USAGE: &str = "\
usage: bench-migration [options]

Fills slots on a source codis-server, moves them to a target and reports
keys/s, MB/s and probe-client latency before and during the move.

  --keys N          small keys to fill (default 1000000)
  --slots N         slots they spread over, 1..1024 (default 64)
  --value N         value size in bytes (default 32)
  --numkeys N       keys per async batch (SLOTSMGRTTAGSLOT-ASYNC numkeys, default 500)
  --maxbulks N      async batch bulks limit (default 200)
  --maxbytes N      async batch bytes limit (default 33554432)
  --hash-fields N   fields of the one big hash (default 5000000)
  --only small|big  run only the small-keys or the big-key phase
  --mode async|sync migration commands to use (default async)
  --interval-us N   pause between migration calls, microseconds (default 0)
  --source-cpu C    taskset CPU list for the source server
  --target-cpu C    taskset CPU list for the target server
  -h, --help        this text
";

/// Bad command line: the reason and the usage, exit status 2.
fn usage_error(msg: &str) -> ! {
    eprintln!("bench-migration: {msg}\n\n{USAGE}");
    std::process::exit(2);
}

struct Opts {
    keys: usize,
    slots: usize,
    value: usize,
    numkeys: usize,
    maxbulks: usize,
    /// The batch calls' maxbytes: the dashboard's `migration_async_maxbytes`
    /// (32 MB) by default; 0 = the server's default, 512 KB.
    maxbytes: usize,
    hash_fields: usize,
    only: Option<String>,
    /// Sync commands (SLOTSMGRTTAGSLOT / SLOTSMGRTTAGONE) instead of async.
    sync: bool,
    source_cpu: Option<String>,
    target_cpu: Option<String>,
    /// Pause between two batch calls, as the dashboard's `interval` (µs).
    interval_us: u64,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        keys: 1_000_000,
        slots: 64,
        value: 32,
        numkeys: 500,
        maxbulks: 200,
        maxbytes: 32 << 20,
        hash_fields: 5_000_000,
        only: None,
        sync: false,
        source_cpu: None,
        target_cpu: None,
        interval_us: 0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        if matches!(args[i].as_str(), "-h" | "--help") {
            print!("{USAGE}");
            std::process::exit(0);
        }
        const KNOWN: &[&str] = &[
            "--keys",
            "--slots",
            "--value",
            "--numkeys",
            "--maxbulks",
            "--maxbytes",
            "--hash-fields",
            "--only",
            "--mode",
            "--interval-us",
            "--source-cpu",
            "--target-cpu",
        ];
        if !KNOWN.contains(&args[i].as_str()) {
            usage_error(&format!("unknown option {}", args[i]));
        }
        let Some(v) = args.get(i + 1).cloned() else {
            usage_error(&format!("{}: missing value", args[i]));
        };
        let num = || {
            v.parse::<usize>()
                .unwrap_or_else(|_| usage_error(&format!("{} {v}: not a number", args[i])))
        };
        match args[i].as_str() {
            "--keys" => o.keys = num(),
            "--slots" => o.slots = num().clamp(1, 1024),
            "--value" => o.value = num(),
            "--numkeys" => o.numkeys = num(),
            "--maxbulks" => o.maxbulks = num(),
            "--maxbytes" => o.maxbytes = num(),
            "--hash-fields" => o.hash_fields = num(),
            "--only" if matches!(v.as_str(), "small" | "big") => o.only = Some(v),
            "--only" => usage_error(&format!("--only {v}: expected small or big")),
            "--mode" => {
                o.sync = match v.as_str() {
                    "sync" => true,
                    "async" => false,
                    other => usage_error(&format!("--mode {other}: expected async or sync")),
                }
            }
            "--interval-us" => o.interval_us = num() as u64,
            "--source-cpu" => o.source_cpu = Some(v),
            "--target-cpu" => o.target_cpu = Some(v),
            _ => unreachable!("checked against KNOWN"),
        }
        i += 2;
    }
    o
}

/// Latency samples of one probe client, split by phase.
#[derive(Default, Clone)]
struct Samples {
    before: Vec<u32>,
    during: Vec<u32>,
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)] as f64 / 1000.0
}

/// Runs a probe: GET `key` on `port` one at a time until `stop`; samples
/// are microseconds, in `before` until `moving` turns true.
fn probe(port: u16, key: Vec<u8>, moving: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> Samples {
    let mut c = Conn::connect(port).expect("probe connect");
    let mut s = Samples::default();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        c.send(&[b"GET".as_slice(), &key]);
        let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if moving.load(Ordering::Relaxed) {
            s.during.push(us);
        } else {
            s.before.push(us);
        }
        // ~5k probes/s: enough samples for a p99 without loading the core.
        std::thread::sleep(Duration::from_micros(200));
    }
    s
}

fn pin(srv: &Server, cpu: &Option<String>) {
    if let Some(c) = cpu {
        let _ = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", c, &srv.pid().to_string()])
            .output();
    }
}

fn int_of(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// Fills `n` keys of `klen` bytes in slots `0..slots` with `value`-byte values.
fn fill_small(c: &mut Conn, n: usize, slots: usize, value: usize) -> usize {
    let val = vec![b'v'; value];
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(201);
    let mut made = 0usize;
    let mut i = 0u64;
    let mut bytes = 0usize;
    batch.push(b"MSET".to_vec());
    while made < n {
        let k = format!("k{i:015}").into_bytes();
        i += 1;
        if slot_of(&k) >= slots {
            continue;
        }
        bytes += k.len() + val.len();
        batch.push(k);
        batch.push(val.clone());
        made += 1;
        if batch.len() >= 201 || made == n {
            c.send(&batch);
            batch.truncate(1);
        }
    }
    bytes
}

fn run_probes(
    src: &Server,
    dst: &Server,
    moving: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Samples>> {
    // A key in a slot that does not move, present on both servers.
    let key = b"probe{zz}".to_vec();
    for s in [src, dst] {
        s.conn().send(&[b"SET".as_slice(), &key, b"x"]);
    }
    [src.port(), dst.port()]
        .into_iter()
        .map(|p| {
            let (k, m, s) = (key.clone(), moving.clone(), stop.clone());
            std::thread::spawn(move || probe(p, k, m, s))
        })
        .collect()
}

fn report(name: &str, samples: Vec<Samples>) -> String {
    let mut out = String::new();
    for (who, mut s) in ["source", "target"].into_iter().zip(samples) {
        let line = format!(
            "{name}: {who} probe p50/p99 before {:.3}/{:.3} ms, during {:.3}/{:.3} ms, max during {:.3} ms ({} / {} samples)\n",
            pct(&mut s.before, 0.5),
            pct(&mut s.before, 0.99),
            pct(&mut s.during, 0.5),
            pct(&mut s.during, 0.99),
            pct(&mut s.during, 1.0),
            s.before.len(),
            s.during.len()
        );
        out.push_str(&line);
    }
    out
}

/// Source and target, pinned as asked.
fn servers(o: &Opts) -> (Server, Server) {
    let src = Server::start(&[]);
    let dst = Server::start(&[]);
    pin(&src, &o.source_cpu);
    pin(&dst, &o.target_cpu);
    (src, dst)
}

/// Starts the probes, lets them measure 2 s of the idle servers, then flips
/// them to the "during" phase. Returns (moving, stop, probe threads).
#[allow(clippy::type_complexity)]
fn baseline_then_move(
    src: &Server,
    dst: &Server,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicBool>,
    Vec<std::thread::JoinHandle<Samples>>,
) {
    let moving = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let probes = run_probes(src, dst, &moving, &stop);
    std::thread::sleep(Duration::from_secs(2));
    moving.store(true, Ordering::Relaxed);
    (moving, stop, probes)
}

fn small(o: &Opts) {
    let (src, dst) = servers(o);
    let mut c = src.conn();
    let t = Instant::now();
    let bytes = fill_small(&mut c, o.keys, o.slots, o.value);
    eprintln!(
        "filled {} keys in {:.1}s",
        o.keys,
        t.elapsed().as_secs_f64()
    );
    let (moving, stop, probes) = baseline_then_move(&src, &dst);
    let t = Instant::now();
    let port = dst.port().to_string();
    let (nk, mb) = (o.numkeys.to_string(), o.maxbulks.to_string());
    let mbytes = o.maxbytes.to_string();
    let mut moved = 0i64;
    let mut calls = 0usize;
    for slot in 0..o.slots {
        let slot_s = slot.to_string();
        loop {
            let v = if o.sync {
                c.send_value(&["SLOTSMGRTTAGSLOT", "127.0.0.1", &port, "30000", &slot_s])
            } else {
                // The dashboard's call: timeout min(5 s, migration_timeout).
                c.send_value(&[
                    "SLOTSMGRTTAGSLOT-ASYNC",
                    "127.0.0.1",
                    &port,
                    "5000",
                    &mb,
                    &mbytes,
                    &slot_s,
                    &nk,
                ])
            };
            calls += 1;
            if o.interval_us > 0 {
                std::thread::sleep(Duration::from_micros(o.interval_us));
            }
            let Value::Array(a) = v else {
                panic!("slot {slot}: unexpected reply {v:?}")
            };
            moved += int_of(&a[0]);
            if int_of(&a[1]) == 0 || calls > 10 * o.keys {
                break;
            }
        }
    }
    let el = t.elapsed().as_secs_f64();
    moving.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let samples: Vec<Samples> = probes.into_iter().map(|h| h.join().unwrap()).collect();
    let left = int_of(&c.value("DBSIZE")) - 1;
    let arrived = int_of(&dst.conn().value("DBSIZE")) - 1;
    println!(
        "small ({}): {moved} keys ({:.1} MB of keys+values) over {} slots in {el:.2}s = {:.0} keys/s, {:.1} MB/s; {calls} batch calls; source left {left}, target has {arrived}",
        if o.sync { "sync" } else { "async" },
        bytes as f64 / 1e6,
        o.slots,
        moved as f64 / el,
        bytes as f64 / 1e6 / el
    );
    print!("{}", report("small", samples));
    assert_eq!(left, 0, "keys left on the source");
    assert_eq!(arrived as usize, o.keys, "keys missing on the target");
}

fn big(o: &Opts) {
    let (src, dst) = servers(o);
    let mut c = src.conn();
    let key = b"{big}hash".to_vec();
    let t = Instant::now();
    let mut cmd: Vec<Vec<u8>> = vec![b"HSET".to_vec(), key.clone()];
    let mut bytes = 0usize;
    for i in 0..o.hash_fields {
        let f = format!("field:{i:010}").into_bytes();
        let v = format!("value:{i:010}").into_bytes();
        bytes += f.len() + v.len();
        cmd.push(f);
        cmd.push(v);
        if cmd.len() >= 2002 || i + 1 == o.hash_fields {
            c.send(&cmd);
            cmd.truncate(2);
        }
    }
    eprintln!(
        "filled a {}-field hash in {:.1}s",
        o.hash_fields,
        t.elapsed().as_secs_f64()
    );
    let (moving, stop, probes) = baseline_then_move(&src, &dst);
    let t = Instant::now();
    let port = dst.port().to_string();
    let mb = o.maxbulks.to_string();
    let mbytes = o.maxbytes.to_string();
    c.set_timeout(Duration::from_secs(600));
    let v = if o.sync {
        c.send_value(&[
            b"SLOTSMGRTTAGONE".as_slice(),
            b"127.0.0.1",
            port.as_bytes(),
            b"60000",
            &key,
        ])
    } else {
        c.send_value(&[
            b"SLOTSMGRTTAGONE-ASYNC".as_slice(),
            b"127.0.0.1",
            port.as_bytes(),
            b"60000",
            mb.as_bytes(),
            mbytes.as_bytes(),
            &key,
        ])
    };
    let el = t.elapsed().as_secs_f64();
    // Keep probing a little after the reply: the source frees the value and
    // the target settles.
    std::thread::sleep(Duration::from_millis(500));
    moving.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let samples: Vec<Samples> = probes.into_iter().map(|h| h.join().unwrap()).collect();
    let n = int_of(&dst.conn().send_value(&[b"HLEN".as_slice(), &key]));
    println!(
        "big ({}): one hash of {} fields ({:.1} MB) moved in {el:.2}s = {:.0} fields/s, {:.1} MB/s (reply {v:?}); target HLEN {n}",
        if o.sync { "sync" } else { "async" },
        o.hash_fields,
        bytes as f64 / 1e6,
        o.hash_fields as f64 / el,
        bytes as f64 / 1e6 / el
    );
    print!("{}", report("big", samples));
    assert_eq!(n as usize, o.hash_fields);
}

fn main() {
    let o = parse_opts();
    if o.only.as_deref() != Some("big") {
        small(&o);
    }
    if o.only.as_deref() != Some("small") {
        big(&o);
    }
}
