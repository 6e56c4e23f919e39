//! SLOWLOG and LATENCY on codis-server. SLOWLOG: what an entry holds (arguments cut at 32 and
//! at 128 bytes, secrets redacted, the client's address and name), the
//! threshold (`slowlog-log-slower-than`, -1 off), `slowlog-max-len`, EXEC
//! left out while its commands are logged, and a slow command's duration.
//! LATENCY: events over `latency-monitor-threshold` (a slow command, a
//! slow fast command), their history, RESET, GRAPH and DOCTOR. Replies
//! are compared with redis-server 7.0.15 in tests/scripts/server.txt
//! (SLOWLOG by shape: ids, times and addresses differ).

use tests::{Server, Value};

/// The entries of `SLOWLOG GET -1`: (duration µs, arguments, address,
/// name), newest first.
fn entries(c: &mut tests::Conn) -> Vec<(i64, Vec<String>, String, String)> {
    let v = c.value("SLOWLOG GET -1");
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let e = e.as_array().expect("entry");
            assert_eq!(e.len(), 6);
            let args = e[3]
                .as_array()
                .expect("args")
                .iter()
                .map(|a| a.as_text().expect("arg"))
                .collect();
            (
                e[2].as_int().expect("duration"),
                args,
                e[4].as_text().expect("addr"),
                e[5].as_text().expect("name"),
            )
        })
        .collect()
}

fn args(e: &[(i64, Vec<String>, String, String)]) -> Vec<Vec<String>> {
    e.iter().map(|x| x.1.clone()).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn what_the_slow_log_keeps() {
    let s = Server::start(&[
        "--slowlog-log-slower-than",
        "0",
        "--enable-debug-command",
        "yes",
    ]);
    let mut c = s.conn();
    assert_eq!(c.cmd("CLIENT SETNAME tester"), b"+OK\r\n");
    assert_eq!(c.cmd("SLOWLOG RESET"), b"+OK\r\n");
    let long = "x".repeat(200);
    c.send(&["SET", "k", &long]);
    let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let mut rpush = vec!["RPUSH", "l"];
    rpush.extend(many.iter().map(|s| s.as_str()));
    c.send(&rpush);
    c.cmd("AUTH nopass");
    c.cmd("HELLO 2 AUTH default pw");
    assert_eq!(
        c.cmd("CONFIG SET requirepass secret maxmemory 0"),
        b"+OK\r\n"
    );
    assert_eq!(c.cmd("AUTH secret"), b"+OK\r\n");
    assert_eq!(c.cmd("CONFIG SET requirepass \"\""), b"+OK\r\n");
    assert_eq!(c.cmd("MULTI"), b"+OK\r\n");
    c.cmd("INCR c");
    assert_eq!(c.cmd("EXEC"), b"*1\r\n:1\r\n");
    let e = entries(&mut c);
    let addr = c.value("CLIENT INFO").as_text().unwrap();
    let addr = addr
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .unwrap()
        .to_string();
    assert!(e.iter().all(|x| x.2 == addr && x.3 == "tester"), "{e:?}");
    let mut rpush_kept = strs(&["RPUSH", "l"]);
    rpush_kept.extend(many[..29].iter().cloned());
    rpush_kept.push("... (11 more arguments)".into());
    assert_eq!(
        args(&e),
        vec![
            strs(&["INCR", "c"]),
            strs(&["MULTI"]),
            strs(&["CONFIG", "SET", "requirepass", "(redacted)"]),
            strs(&["AUTH", "(redacted)"]),
            strs(&[
                "CONFIG",
                "SET",
                "requirepass",
                "(redacted)",
                "maxmemory",
                "0"
            ]),
            strs(&["HELLO", "2", "AUTH", "(redacted)", "(redacted)"]),
            strs(&["AUTH", "(redacted)"]),
            rpush_kept,
            vec![
                "SET".into(),
                "k".into(),
                format!("{}... (72 more bytes)", "x".repeat(128))
            ],
            strs(&["SLOWLOG", "RESET"]),
        ]
    );
    // Ids go on counting after a RESET.
    let id = |c: &mut tests::Conn| match c.value("SLOWLOG GET 1") {
        Value::Array(a) => a[0].as_array().unwrap()[0].as_int().unwrap(),
        v => panic!("{v:?}"),
    };
    let before = id(&mut c);
    assert_eq!(c.cmd("SLOWLOG RESET"), b"+OK\r\n");
    assert!(id(&mut c) > before);
    // A slow command is logged with its duration.
    assert_eq!(
        c.cmd("CONFIG SET slowlog-log-slower-than 50000"),
        b"+OK\r\n"
    );
    assert_eq!(c.cmd("SLOWLOG RESET"), b"+OK\r\n");
    assert_eq!(c.cmd("DEBUG SLEEP 0.1"), b"+OK\r\n");
    c.cmd("PING");
    let e = entries(&mut c);
    assert_eq!(args(&e), vec![strs(&["DEBUG", "SLEEP", "0.1"])]);
    assert!(e[0].0 >= 100_000, "{e:?}");
    // slowlog-max-len keeps the newest; -1 logs nothing.
    assert_eq!(c.cmd("CONFIG SET slowlog-log-slower-than 0"), b"+OK\r\n");
    for i in 0..5 {
        c.cmd(&format!("SET n{i} v"));
    }
    assert_eq!(c.cmd("CONFIG SET slowlog-max-len 3"), b"+OK\r\n");
    let e = entries(&mut c);
    assert_eq!(
        args(&e),
        vec![
            strs(&["CONFIG", "SET", "slowlog-max-len", "3"]),
            strs(&["SET", "n4", "v"]),
            strs(&["SET", "n3", "v"]),
        ]
    );
    assert_eq!(c.cmd("CONFIG SET slowlog-log-slower-than -1"), b"+OK\r\n");
    assert_eq!(c.cmd("SLOWLOG RESET"), b"+OK\r\n");
    c.cmd("DEBUG SLEEP 0.01");
    assert_eq!(c.cmd("SLOWLOG LEN"), b":0\r\n");
}

#[test]
fn the_latency_monitor_records_slow_events() {
    let s = Server::start(&["--enable-debug-command", "yes"]);
    let mut c = s.conn();
    // Off by default: nothing is recorded.
    assert_eq!(c.cmd("DEBUG SLEEP 0.03"), b"+OK\r\n");
    assert_eq!(c.cmd("LATENCY LATEST"), b"*0\r\n");
    assert!(
        c.value("LATENCY DOCTOR")
            .as_text()
            .unwrap()
            .contains("latency monitor is off")
    );
    assert_eq!(c.cmd("CONFIG SET latency-monitor-threshold 20"), b"+OK\r\n");
    assert_eq!(c.cmd("DEBUG SLEEP 0.01"), b"+OK\r\n");
    assert_eq!(c.cmd("LATENCY LATEST"), b"*0\r\n", "under the threshold");
    assert_eq!(c.cmd("DEBUG SLEEP 0.05"), b"+OK\r\n");
    let latest = c.value("LATENCY LATEST");
    let e = latest.as_array().unwrap();
    assert_eq!(e.len(), 1);
    let e = e[0].as_array().unwrap();
    assert_eq!(e[0].as_text().unwrap(), "command");
    let ms = e[2].as_int().unwrap();
    assert!((50..1000).contains(&ms), "{ms}");
    assert_eq!(e[3].as_int().unwrap(), ms);
    let h = c.value("LATENCY HISTORY command");
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].as_array().unwrap()[1].as_int().unwrap(), ms);
    let graph = c.value("LATENCY GRAPH command").as_text().unwrap();
    assert!(
        graph.starts_with(&format!("command - high {ms} ms")),
        "{graph}"
    );
    let doctor = c.value("LATENCY DOCTOR").as_text().unwrap();
    assert!(
        doctor.contains(&format!("command: 1 samples, mean {ms} ms")),
        "{doctor}"
    );
    // Per-command histograms: the slow DEBUG SLEEP call sits in a bucket
    // of at least its duration; INFO latencystats has its percentiles.
    let h = c.value("LATENCY HISTOGRAM debug nosuch");
    let h = h.as_array().unwrap();
    assert_eq!(h[0].as_text().as_deref(), Some("debug"));
    let body = h[1].as_array().unwrap();
    assert_eq!(body[0].as_text().as_deref(), Some("calls"));
    let calls = body[1].as_int().unwrap();
    let buckets = body[3].as_array().unwrap();
    let last = buckets[buckets.len() - 2].as_int().unwrap();
    assert_eq!(buckets[buckets.len() - 1].as_int(), Some(calls));
    assert!(last >= ms * 1000, "{last} µs bucket for {ms} ms");
    let stats = c.value("INFO latencystats").as_text().unwrap();
    assert!(
        stats.contains("latency_percentiles_usec_debug:p50="),
        "{stats}"
    );
    assert_eq!(c.cmd("LATENCY HISTOGRAM nosuch"), b"*0\r\n");
    assert_eq!(c.cmd("CONFIG SET latency-tracking no"), b"+OK\r\n");
    c.cmd("CONFIG RESETSTAT");
    c.cmd("PING");
    assert_eq!(c.cmd("LATENCY HISTOGRAM"), b"*0\r\n");
    assert_eq!(c.cmd("LATENCY RESET"), b":1\r\n");
    assert_eq!(c.cmd("LATENCY LATEST"), b"*0\r\n");
    assert_eq!(c.cmd("LATENCY RESET"), b":0\r\n");
}
