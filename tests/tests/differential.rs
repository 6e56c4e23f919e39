//! Differential suite: every `tests/scripts/*.txt` is replayed line by line
//! against a fresh codis-server and a fresh redis-server 7.0, and the raw
//! reply bytes must be identical (Redis 7.0.15 is the reference for every
//! reply and error text).
//!
//! Script format (one command per line, quoted like redis-cli / `split_args`):
//! * blank lines and lines starting with `#` are skipped;
//! * `HELLO ...` is compared with the client `id` masked (ids differ);
//! * `!sleep MS` sleeps (use sparingly, e.g. for expiry);
//! * `!reconnect` opens fresh connections to both servers (RESP2, db 0);
//! * `!inline LINE` sends LINE + CRLF verbatim as an inline command;
//! * `!sorted CMD` compares with every aggregate sorted (unordered replies);
//! * `!shape CMD` compares only the reply's types and sizes (and error codes);
//! * `!ignore CMD` sends the command to both and ignores the replies.
//!
//! All mismatches of a file are collected and reported together. When a
//! connection is closed (QUIT, protocol error) or a reply times out, both
//! sides reconnect before the next line.

use std::path::PathBuf;
use std::time::Duration;

use tests::resp::{Value, parse_one};
use tests::{Conn, ReadError, RedisServer, Server, escape, workspace_root};

/// One `#[test]` per script; `listed_scripts_match_files` checks the list.
macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        const LISTED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run_script(stringify!($name));
            }
        )*
    };
}

scripts!(
    bitmaps, connection, hashes, hll, keys, lists, protocol, server, sets, sort, strings, zsets
);

fn scripts_dir() -> PathBuf {
    workspace_root().join("tests").join("scripts")
}

#[test]
fn listed_scripts_match_files() {
    let mut on_disk: Vec<String> = std::fs::read_dir(scripts_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter_map(|n| n.strip_suffix(".txt").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    on_disk.sort();
    let mut listed: Vec<String> = LISTED.iter().map(|s| s.to_string()).collect();
    listed.sort();
    let unlisted: Vec<&String> = on_disk.iter().filter(|n| !listed.contains(n)).collect();
    let missing: Vec<&String> = listed.iter().filter(|n| !on_disk.contains(n)).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "tests/tests/differential.rs `scripts!(...)` is out of date:\n  scripts without a test: {unlisted:?}\n  tests without a script: {missing:?}\n(script names must be valid Rust identifiers)"
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Exact,
    Sorted,
    Shape,
    Ignore,
    /// HELLO: compare with the `id` field masked.
    MaskId,
}

/// What one side answered.
#[derive(Debug, PartialEq)]
enum Outcome {
    Reply(Vec<u8>),
    Closed(Vec<u8>),
    Timeout(Vec<u8>),
    Failed(String),
}

impl Outcome {
    fn from(r: Result<Vec<u8>, ReadError>) -> Outcome {
        match r {
            Ok(b) => Outcome::Reply(b),
            Err(ReadError::Closed { partial }) => Outcome::Closed(partial),
            Err(ReadError::Timeout { partial }) => Outcome::Timeout(partial),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    fn render(&self) -> String {
        match self {
            Outcome::Reply(b) => escape(b),
            Outcome::Closed(b) => format!(
                "<connection closed>{}",
                if b.is_empty() {
                    String::new()
                } else {
                    format!(" after {}", escape(b))
                }
            ),
            Outcome::Timeout(b) => format!(
                "<no reply (timeout)>{}",
                if b.is_empty() {
                    String::new()
                } else {
                    format!(" after {}", escape(b))
                }
            ),
            Outcome::Failed(e) => e.clone(),
        }
    }
}

fn mask_id(v: Value) -> Value {
    match v {
        Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(k, val)| {
                    if k.as_bytes() == Some(b"id") {
                        (k, Value::Int(0))
                    } else {
                        (k, val)
                    }
                })
                .collect(),
        ),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut mask_next = false;
            for (i, it) in items.into_iter().enumerate() {
                if mask_next {
                    out.push(Value::Int(0));
                    mask_next = false;
                    continue;
                }
                mask_next = i % 2 == 0 && it.as_bytes() == Some(b"id");
                out.push(it);
            }
            Value::Array(out)
        }
        other => other,
    }
}

/// Whether the two outcomes agree under `mode`.
fn same(mode: Mode, redis: &Outcome, codis: &Outcome) -> bool {
    let (Outcome::Reply(r), Outcome::Reply(c)) = (redis, codis) else {
        return match mode {
            Mode::Ignore => std::mem::discriminant(redis) == std::mem::discriminant(codis),
            _ => redis == codis,
        };
    };
    let parsed = || Some((parse_one(r)?, parse_one(c)?));
    match mode {
        Mode::Exact => r == c,
        Mode::Ignore => true,
        Mode::Sorted => parsed().is_some_and(|(a, b)| a.sorted() == b.sorted()),
        Mode::Shape => parsed().is_some_and(|(a, b)| a.shape() == b.shape()),
        Mode::MaskId => parsed().is_some_and(|(a, b)| mask_id(a) == mask_id(b)),
    }
}

/// For long replies: where the (canonical, for `!sorted`) encodings first
/// differ, with some context, so a report shows the difference even when it
/// lies beyond the shortened reply dump.
fn first_difference(mode: Mode, redis: &[u8], codis: &[u8]) -> String {
    let canon = |raw: &[u8]| -> Vec<u8> {
        match (mode, parse_one(raw)) {
            (Mode::Sorted, Some(v)) => {
                let mut out = Vec::new();
                v.sorted().encode(&mut out);
                out
            }
            _ => raw.to_vec(),
        }
    };
    let (a, b) = (canon(redis), canon(codis));
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    if at < 200 && mode != Mode::Sorted {
        return String::new();
    }
    let from = at.saturating_sub(60);
    let window = |v: &[u8]| tests::escape_max(v.get(from..).unwrap_or(&[]), 160);
    format!(
        "\n    first difference at byte {at}{}:\n      redis: ...{}\n      codis: ...{}",
        if mode == Mode::Sorted {
            " of the sorted forms"
        } else {
            ""
        },
        window(&a),
        window(&b)
    )
}

struct Side {
    srv: Server,
    conn: Conn,
}

impl Side {
    fn new(srv: Server) -> Side {
        let conn = srv.conn();
        Side { srv, conn }
    }

    fn reconnect(&mut self) {
        self.conn = self.srv.conn();
    }
}

fn run_script(name: &str) {
    let path = scripts_dir().join(format!("{name}.txt"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut redis = Side::new(redis);
    let mut codis = Side::new(Server::start(&[]));
    let mut report = Vec::new();
    let mut commands = 0usize;

    for (i, raw_line) in text.split(|&b| b == b'\n').enumerate() {
        let lineno = i + 1;
        let line = raw_line.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let shown = String::from_utf8_lossy(line).into_owned();
        let (directive, rest) = if let Some(d) = line.strip_prefix(b"!") {
            let end = d
                .iter()
                .position(|b| b.is_ascii_whitespace())
                .unwrap_or(d.len());
            (
                Some(String::from_utf8_lossy(&d[..end]).to_ascii_lowercase()),
                d[end..].trim_ascii(),
            )
        } else {
            (None, line)
        };
        let mut mode = Mode::Exact;
        let mut inline = false;
        match directive.as_deref() {
            None => {}
            Some("sleep") => {
                let ms: u64 = std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| {
                        report.push(format!(
                            "line {lineno}: bad directive `{shown}` (want `!sleep MS`)"
                        ));
                        0
                    });
                std::thread::sleep(Duration::from_millis(ms));
                continue;
            }
            Some("reconnect") => {
                redis.reconnect();
                codis.reconnect();
                continue;
            }
            Some("inline") => inline = true,
            Some("sorted") => mode = Mode::Sorted,
            Some("shape") => mode = Mode::Shape,
            Some("ignore") => mode = Mode::Ignore,
            Some(other) => {
                report.push(format!(
                    "line {lineno}: unknown directive `!{other}` in `{shown}`"
                ));
                continue;
            }
        }
        let bytes = if inline {
            let mut b = rest.to_vec();
            b.extend_from_slice(b"\r\n");
            b
        } else {
            let Some(args) = protocol::resp::split_args(rest) else {
                report.push(format!(
                    "line {lineno}: script error, unbalanced quotes: {shown}"
                ));
                continue;
            };
            if args.is_empty() {
                continue;
            }
            if args[0].eq_ignore_ascii_case(b"hello") && mode == Mode::Exact {
                mode = Mode::MaskId;
            }
            tests::resp::encode_command(&args)
        };
        commands += 1;
        // Write to both first so both servers work at the same time.
        let wr = redis.conn.write_raw(&bytes);
        let wc = codis.conn.write_raw(&bytes);
        let r = match wr {
            Ok(()) => Outcome::from(redis.conn.read_reply()),
            Err(e) => Outcome::Failed(format!("<write failed: {e}>")),
        };
        if matches!(r, Outcome::Timeout(_)) {
            // Redis itself did not answer (blocking command?): do not wait long for codis.
            codis.conn.set_timeout(Duration::from_secs(1));
        }
        let c = match wc {
            Ok(()) => Outcome::from(codis.conn.read_reply()),
            Err(e) => Outcome::Failed(format!("<write failed: {e}>")),
        };
        codis.conn.set_timeout(tests::READ_TIMEOUT);
        if !same(mode, &r, &c) {
            let mut entry = format!(
                "line {lineno}: {shown}\n    redis: {}\n    codis: {}",
                r.render(),
                c.render()
            );
            if let (Outcome::Reply(a), Outcome::Reply(b)) = (&r, &c) {
                entry.push_str(&first_difference(mode, a, b));
            }
            report.push(entry);
        }
        if !matches!(r, Outcome::Reply(_)) || !matches!(c, Outcome::Reply(_)) {
            redis.reconnect();
            codis.reconnect();
        }
    }

    if !codis.srv.is_alive() {
        report.push(format!(
            "codis-server DIED during the script; log tail:\n{}",
            codis.srv.log_tail(30)
        ));
    }
    if report.is_empty() {
        eprintln!("[differential] {name}.txt: {commands} commands, all replies identical");
    } else {
        panic!(
            "{name}.txt: {} mismatch(es) in {commands} commands (codis port {}, redis port {}):\n{}",
            report.len(),
            codis.srv.port(),
            redis.srv.port(),
            report.join("\n")
        );
    }
}

#[test]
fn mask_id_masks_only_id() {
    let a = parse_one(b"%2\r\n$2\r\nid\r\n:5\r\n$5\r\nproto\r\n:3\r\n").unwrap();
    let b = parse_one(b"%2\r\n$2\r\nid\r\n:9\r\n$5\r\nproto\r\n:3\r\n").unwrap();
    assert_eq!(mask_id(a.clone()), mask_id(b));
    let c = parse_one(b"%2\r\n$2\r\nid\r\n:9\r\n$5\r\nproto\r\n:2\r\n").unwrap();
    assert_ne!(mask_id(a), mask_id(c));
    let d = parse_one(b"*4\r\n$2\r\nid\r\n:5\r\n$5\r\nproto\r\n:2\r\n").unwrap();
    let e = parse_one(b"*4\r\n$2\r\nid\r\n:7\r\n$5\r\nproto\r\n:2\r\n").unwrap();
    assert_eq!(mask_id(d), mask_id(e));
}

#[test]
fn first_difference_points_past_long_prefixes() {
    let mut a = b"$400\r\n".to_vec();
    a.extend(std::iter::repeat_n(b'x', 400));
    a.extend_from_slice(b"\r\n");
    let mut b = a.clone();
    b[300] = b'y';
    let d = first_difference(Mode::Exact, &a, &b);
    assert!(d.contains("first difference at byte 300"), "{d}");
    assert!(d.contains('y'), "{d}");
    assert_eq!(first_difference(Mode::Exact, b"+OK\r\n", b"+NO\r\n"), "");
}
