//! `redis-benchmark` (the 7.0 tool, unmodified) as a client of codis-server:
//! every test it runs must report a positive request rate, it must exit
//! cleanly, and it must print no errors (including its start-up
//! `CONFIG GET save/appendonly` probe). No timing thresholds: this checks
//! compatibility under load, not speed.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Server, redis_tool};

/// redis-benchmark waits forever when it cannot connect, so it gets a deadline.
const DEADLINE: Duration = Duration::from_secs(240);

struct Run {
    stdout: String,
    stderr: String,
}

fn run_benchmark(port: u16, args: &[&str]) -> Option<Run> {
    let bin = redis_tool("redis-benchmark")?;
    let mut child = Command::new(&bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-benchmark {args:?} did not finish within {DEADLINE:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("waiting for redis-benchmark: {e}"),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    assert!(
        status.success(),
        "redis-benchmark {args:?} failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    Some(Run { stdout, stderr })
}

/// Parses `--csv` output: (test name, rps) per row, after checking the header.
fn parse_csv(out: &str) -> Vec<(String, f64)> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("\"test\",\"rps\""),
        "unexpected CSV header {header:?} in:\n{out}"
    );
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split("\",\"").map(|c| c.trim_matches('"')).collect();
            let rps = cols
                .get(1)
                .and_then(|r| r.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("bad CSV row {l:?}"));
            (cols.first().copied().unwrap_or_default().to_string(), rps)
        })
        .collect()
}

fn check(run: &Run, expected_tests: &[&str]) {
    let rows = parse_csv(&run.stdout);
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expected_tests, "tests reported:\n{}", run.stdout);
    for (name, rps) in &rows {
        assert!(*rps > 0.0, "{name}: rps {rps}\n{}", run.stdout);
    }
    let bad = ["error", "err ", "warning", "could not"];
    let lower = run.stderr.to_ascii_lowercase();
    assert!(
        !bad.iter().any(|b| lower.contains(b)),
        "redis-benchmark reported problems:\n{}",
        run.stderr
    );
}

#[test]
fn pipelined_default_tests() {
    let srv = Server::start(&[]);
    let Some(run) = run_benchmark(
        srv.port(),
        &[
            "-t",
            "ping,set,get,incr,mset",
            "-n",
            "20000",
            "-P",
            "16",
            "-q",
            "--csv",
        ],
    ) else {
        return;
    };
    check(
        &run,
        &[
            "PING_INLINE",
            "PING_MBULK",
            "SET",
            "GET",
            "INCR",
            "MSET (10 keys)",
        ],
    );
    let mut srv = srv;
    assert!(srv.is_alive(), "codis-server died:\n{}", srv.log_tail(30));
    // the data really arrived: INCR ran 20000 times on one key
    let mut c = srv.conn();
    tests::assert_reply(&c.cmd("GET counter:__rand_int__"), b"$5\r\n20000\r\n");
}

#[test]
fn many_clients_random_keys_threaded_server() {
    let srv = Server::start(&["--io-threads", "2"]);
    let Some(run) = run_benchmark(
        srv.port(),
        &[
            "-t",
            "set,get,incr",
            "-n",
            "10000",
            "-c",
            "40",
            "-r",
            "5000",
            "-q",
            "--csv",
        ],
    ) else {
        return;
    };
    check(&run, &["SET", "GET", "INCR"]);
    let mut srv = srv;
    assert!(srv.is_alive(), "codis-server died:\n{}", srv.log_tail(30));
    tests::assert_reply(&srv.conn().cmd("PING"), b"+PONG\r\n");
}
