//! Differential suite: every `tests/scripts/*.txt` is replayed line by line
//! against a fresh codis-server and a fresh redis-server 7.0, and the raw
//! reply bytes must be identical (Redis 7.0.15 is the reference for every
//! reply and error text).
//!
//! A script drives one or more named connections per server; each name is
//! one connection to redis-server and one to codis-server, opened on both
//! the first time the name is used. `main` is open from the start and is
//! current until a `!conn` line switches. A connection keeps its own state
//! (RESP version after `HELLO 3`, selected DB, MULTI, subscriptions), so
//! transactions with a second client, pub/sub and keyspace notifications
//! are compared byte for byte too.
//!
//! Script format (one command per line, quoted like redis-cli / `split_args`):
//! * blank lines and lines starting with `#` are skipped;
//! * `CMD ...` sends CMD on the current connection of both servers and
//!   compares the next reply (or push) each one sends;
//! * `HELLO ...` is compared with the client `id` masked (ids differ);
//! * `!sorted CMD` compares with every aggregate sorted (unordered replies);
//! * `!shape CMD` compares only the reply's types and sizes (and error codes);
//! * `!ignore CMD` sends the command to both and ignores the replies;
//! * `!inline LINE` sends LINE + CRLF verbatim as an inline command;
//! * `!conn NAME` makes NAME the current connection (opened on first use);
//! * `!send CMD` sends CMD on the current connection without reading
//!   anything (read what it causes later with `!read`);
//! * `!read` / `!read N` reads the next 1 / N replies or pushes pending on
//!   the current connection of both servers and compares each pair; redis
//!   sending nothing within the read timeout is reported as a script error;
//! * `!noreply` asserts that nothing arrives on the current connection of
//!   either server within [`NOREPLY_WAIT`] (e.g. on a subscriber, after a
//!   command on another connection that must not notify it); `!noreply CMD`
//!   sends CMD first and asserts the same (a command that answers nothing).
//!   Whatever did arrive is read and reported, so the connection is in step
//!   again afterwards (redis sending something is a script error);
//! * `!sleep MS` sleeps (use sparingly, e.g. for expiry);
//! * `!reconnect` replaces the current connection with a fresh one on both
//!   servers (RESP2, db 0, no subscriptions).
//!
//! Scripts must be deterministic against redis alone: read a confirmation
//! (`!read`) before another connection relies on it (SUBSCRIBE before a
//! PUBLISH), send a command that answers several frames (`SUBSCRIBE a b`,
//! `UNSUBSCRIBE a b`) with `!send` and read them with `!read N`, and keep
//! client ids, addresses and hash-table orders out of compared replies.
//!
//! All mismatches of a file are collected and reported together. When a
//! connection is closed (QUIT, protocol error), or a command's reply times
//! out, the current connection is reopened on both sides before the next
//! line. A push that redis sent and codis did not (`!read`) does not reopen
//! it; while codis keeps missing pushes on a connection, its later `!read`s
//! wait only [`LAGGING_WAIT`] so a script full of missing events still ends
//! quickly.
//!
//! `DIFF_TRACE=1` prints every compared line with redis' answer (handy
//! when writing a script: run it with `CODIS_RS_SERVER_BIN` pointing at
//! `redis-server` to check that it is deterministic).
//!
//! Every script listed in `scripts!(...)` must pass.

use std::path::PathBuf;
use std::time::Duration;

use tests::resp::{Value, parse_one};
use tests::{Conn, ReadError, RedisServer, Server, escape, workspace_root};

/// How long `!noreply` waits for anything to arrive (both servers at once).
const NOREPLY_WAIT: Duration = Duration::from_millis(300);
/// After that wait, how long a connection must stay silent to count as
/// drained.
const QUIET: Duration = Duration::from_millis(20);
/// How long codis gets for a `!read` whose push redis already delivered: the
/// command that caused the push has been answered on both sides by then.
const PUSH_WAIT: Duration = Duration::from_secs(2);
/// `!read` timeout for a codis connection that missed its previous push.
const LAGGING_WAIT: Duration = Duration::from_millis(250);

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
    acl,
    bitmaps,
    connection,
    hashes,
    hll,
    keys,
    lists,
    multi,
    notify,
    protocol,
    pubsub,
    scripting,
    server,
    sets,
    sort,
    strings,
    tracking,
    zsets,
    geo,
    stream,
    stream_groups,
    stream_resp3,
    stream_notify
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

/// One meaningful script line.
#[derive(Debug, PartialEq)]
enum Step {
    /// Send a command and compare the next reply under the mode.
    Command { mode: Mode, bytes: Vec<u8> },
    /// `!send CMD`
    Send(Vec<u8>),
    /// `!read [N]`
    Read(usize),
    /// `!noreply [CMD]`
    NoReply(Option<Vec<u8>>),
    /// `!conn NAME`
    Conn(String),
    /// `!sleep MS`
    Sleep(u64),
    /// `!reconnect`
    Reconnect,
}

/// Parses one script line: `Ok(None)` for blank lines, comments and empty
/// commands, `Err` (a message) for malformed lines.
fn parse_line(line: &[u8]) -> Result<Option<Step>, String> {
    let line = line.trim_ascii();
    if line.is_empty() || line.starts_with(b"#") {
        return Ok(None);
    }
    let Some(d) = line.strip_prefix(b"!") else {
        return Ok(command(line, Mode::Exact)?.map(|(mode, bytes)| Step::Command { mode, bytes }));
    };
    let end = d
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(d.len());
    let name = String::from_utf8_lossy(&d[..end]).to_ascii_lowercase();
    let rest = d[end..].trim_ascii();
    let text = std::str::from_utf8(rest).unwrap_or("");
    let with_cmd = |mode: Mode| -> Result<Option<Step>, String> {
        Ok(command(rest, mode)?.map(|(mode, bytes)| Step::Command { mode, bytes }))
    };
    match name.as_str() {
        "sorted" => with_cmd(Mode::Sorted),
        "shape" => with_cmd(Mode::Shape),
        "ignore" => with_cmd(Mode::Ignore),
        "inline" => {
            let mut bytes = rest.to_vec();
            bytes.extend_from_slice(b"\r\n");
            Ok(Some(Step::Command {
                mode: Mode::Exact,
                bytes,
            }))
        }
        "send" => match command(rest, Mode::Exact)? {
            Some((_, bytes)) => Ok(Some(Step::Send(bytes))),
            None => Err("`!send` needs a command".into()),
        },
        "noreply" => Ok(Some(Step::NoReply(
            command(rest, Mode::Exact)?.map(|(_, bytes)| bytes),
        ))),
        "read" if rest.is_empty() => Ok(Some(Step::Read(1))),
        "read" => match text.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(Step::Read(n))),
            _ => Err("want `!read` or `!read N` with N > 0".into()),
        },
        "conn" => {
            if !text.is_empty() && !text.contains(|c: char| c.is_ascii_whitespace()) {
                Ok(Some(Step::Conn(text.to_owned())))
            } else {
                Err("want `!conn NAME` (one word)".into())
            }
        }
        "sleep" => text
            .parse()
            .map(|ms| Some(Step::Sleep(ms)))
            .map_err(|_| "want `!sleep MS`".into()),
        "reconnect" if rest.is_empty() => Ok(Some(Step::Reconnect)),
        "reconnect" => Err("`!reconnect` takes no argument".into()),
        other => Err(format!("unknown directive `!{other}`")),
    }
}

/// Splits and encodes a command line (`None` when it has no word). HELLO
/// compared exactly is compared with its client id masked.
fn command(line: &[u8], mode: Mode) -> Result<Option<(Mode, Vec<u8>)>, String> {
    let args = protocol::resp::split_args(line).ok_or_else(|| "unbalanced quotes".to_string())?;
    if args.is_empty() {
        return Ok(None);
    }
    let mode = if mode == Mode::Exact && args[0].eq_ignore_ascii_case(b"hello") {
        Mode::MaskId
    } else {
        mode
    };
    Ok(Some((mode, tests::resp::encode_command(&args))))
}

/// One named connection to one server.
struct Link {
    name: String,
    conn: Conn,
    /// The previous `!read` on this connection got nothing (codis side).
    lagging: bool,
}

/// One server and its named connections.
struct Side {
    srv: Server,
    links: Vec<Link>,
}

impl Side {
    fn new(srv: Server) -> Side {
        let conn = srv.conn();
        Side {
            srv,
            links: vec![Link {
                name: "main".into(),
                conn,
                lagging: false,
            }],
        }
    }

    /// The connection called `name`, opened now if it is new.
    fn link(&mut self, name: &str) -> &mut Link {
        let at = match self.links.iter().position(|l| l.name == name) {
            Some(at) => at,
            None => {
                let conn = self.srv.conn();
                self.links.push(Link {
                    name: name.to_owned(),
                    conn,
                    lagging: false,
                });
                self.links.len() - 1
            }
        };
        &mut self.links[at]
    }

    fn reconnect(&mut self, name: &str) {
        let conn = self.srv.conn();
        let link = self.link(name);
        link.conn = conn;
        link.lagging = false;
    }
}

fn write(conn: &mut Conn, bytes: &[u8]) -> Result<(), Outcome> {
    conn.write_raw(bytes)
        .map_err(|e| Outcome::Failed(format!("<write failed: {e}>")))
}

/// Reads one reply, waiting at most `wait`.
fn read_within(conn: &mut Conn, wait: Duration) -> Outcome {
    conn.set_timeout(wait);
    let out = Outcome::from(conn.read_reply());
    conn.set_timeout(tests::READ_TIMEOUT);
    out
}

/// Whether a connection must be reopened after this outcome: it is closed,
/// broken, or a reply was cut off half way.
fn broken(o: &Outcome) -> bool {
    match o {
        Outcome::Reply(_) => false,
        Outcome::Timeout(partial) => !partial.is_empty(),
        Outcome::Closed(_) | Outcome::Failed(_) => true,
    }
}

/// What has arrived on `conn` (every complete reply, until nothing more
/// comes for [`QUIET`]), or `None` when nothing has. Called after waiting
/// [`NOREPLY_WAIT`] once for both servers.
fn unexpected(conn: &mut Conn) -> Option<Vec<Outcome>> {
    let mut got = Vec::new();
    loop {
        match read_within(conn, QUIET) {
            Outcome::Timeout(p) if p.is_empty() => break,
            o @ Outcome::Reply(_) => got.push(o),
            o => {
                got.push(o);
                break;
            }
        }
    }
    (!got.is_empty()).then_some(got)
}

fn render_all(got: &[Outcome]) -> String {
    got.iter()
        .map(Outcome::render)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replays one script and collects its mismatches.
struct Run {
    redis: Side,
    codis: Side,
    current: String,
    report: Vec<String>,
    commands: usize,
    /// `DIFF_TRACE=1`: print every compared line with redis' answer.
    trace: bool,
}

impl Run {
    fn reconnect(&mut self) {
        self.redis.reconnect(&self.current);
        self.codis.reconnect(&self.current);
    }

    fn mismatch(&mut self, what: String, mode: Mode, r: &Outcome, c: &Outcome) {
        let mut entry = format!(
            "{what}\n    redis: {}\n    codis: {}",
            r.render(),
            c.render()
        );
        if let (Outcome::Reply(a), Outcome::Reply(b)) = (r, c) {
            entry.push_str(&first_difference(mode, a, b));
        }
        self.report.push(entry);
    }

    fn trace(&self, at: &str, redis: &str) {
        if self.trace {
            eprintln!("{at}\n    -> {redis}");
        }
    }

    fn step(&mut self, at: &str, step: Step) {
        let cur = self.current.clone();
        match step {
            Step::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Step::Reconnect => self.reconnect(),
            Step::Conn(name) => {
                self.redis.link(&name);
                self.codis.link(&name);
                self.current = name;
            }
            Step::Command { mode, bytes } => {
                self.commands += 1;
                let rl = &mut self.redis.link(&cur).conn;
                let wr = write(rl, &bytes);
                let cl = &mut self.codis.link(&cur).conn;
                let wc = write(cl, &bytes);
                // Written to both first so both servers work at the same time.
                let r = wr.map_or_else(
                    |e| e,
                    |()| read_within(&mut self.redis.link(&cur).conn, tests::READ_TIMEOUT),
                );
                // Redis itself did not answer (blocking command?): do not wait long for codis.
                let wait = if matches!(r, Outcome::Timeout(_)) {
                    Duration::from_secs(1)
                } else {
                    tests::READ_TIMEOUT
                };
                let c = wc.map_or_else(
                    |e| e,
                    |()| read_within(&mut self.codis.link(&cur).conn, wait),
                );
                self.trace(at, &r.render());
                if !same(mode, &r, &c) {
                    self.mismatch(at.to_owned(), mode, &r, &c);
                }
                if !matches!(r, Outcome::Reply(_)) || !matches!(c, Outcome::Reply(_)) {
                    self.reconnect();
                }
            }
            Step::Send(bytes) => {
                self.commands += 1;
                let wr = write(&mut self.redis.link(&cur).conn, &bytes);
                let wc = write(&mut self.codis.link(&cur).conn, &bytes);
                if wr.is_err() || wc.is_err() {
                    let (r, c) = (wr.err(), wc.err());
                    let ok = || Outcome::Reply(b"<sent>".to_vec());
                    self.mismatch(
                        at.to_owned(),
                        Mode::Exact,
                        &r.unwrap_or_else(ok),
                        &c.unwrap_or_else(ok),
                    );
                    self.reconnect();
                }
            }
            Step::Read(n) => {
                for k in 1..=n {
                    let what = if n == 1 {
                        at.to_owned()
                    } else {
                        format!("{at} (reply {k} of {n})")
                    };
                    let r = read_within(&mut self.redis.link(&cur).conn, tests::READ_TIMEOUT);
                    let cl = self.codis.link(&cur);
                    let wait = match (&r, cl.lagging) {
                        (Outcome::Timeout(_), _) | (_, true) => LAGGING_WAIT,
                        _ => PUSH_WAIT,
                    };
                    let c = read_within(&mut cl.conn, wait);
                    cl.lagging = matches!(c, Outcome::Timeout(_));
                    self.trace(&what, &r.render());
                    if matches!(r, Outcome::Timeout(_)) {
                        self.report.push(format!(
                            "{what}\n    SCRIPT ERROR: redis sent nothing to read ({})\n    codis: {}",
                            r.render(),
                            c.render()
                        ));
                    } else if !same(Mode::Exact, &r, &c) {
                        self.mismatch(what, Mode::Exact, &r, &c);
                    }
                    if broken(&r) || broken(&c) {
                        self.reconnect();
                        break;
                    }
                }
            }
            Step::NoReply(bytes) => {
                if let Some(bytes) = bytes {
                    self.commands += 1;
                    let wr = write(&mut self.redis.link(&cur).conn, &bytes);
                    let wc = write(&mut self.codis.link(&cur).conn, &bytes);
                    if let (Err(r), _) | (_, Err(r)) = (&wr, &wc) {
                        self.report.push(format!("{at}\n    {}", r.render()));
                        self.reconnect();
                        return;
                    }
                }
                std::thread::sleep(NOREPLY_WAIT);
                let r = unexpected(&mut self.redis.link(&cur).conn);
                let c = unexpected(&mut self.codis.link(&cur).conn);
                self.trace(
                    at,
                    &r.as_deref().map_or_else(|| "<nothing>".into(), render_all),
                );
                if r.is_some() || c.is_some() {
                    let show = |g: &Option<Vec<Outcome>>| {
                        g.as_deref()
                            .map_or_else(|| "<nothing>".to_string(), render_all)
                    };
                    self.report.push(format!(
                        "{at}\n    {}expected nothing to arrive\n    redis: {}\n    codis: {}",
                        if r.is_some() { "SCRIPT ERROR: " } else { "" },
                        show(&r),
                        show(&c)
                    ));
                }
                let gone = |g: &Option<Vec<Outcome>>| g.iter().flatten().any(broken);
                if gone(&r) || gone(&c) {
                    self.reconnect();
                }
            }
        }
    }
}

fn run_script(name: &str) {
    let path = scripts_dir().join(format!("{name}.txt"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut run = Run {
        redis: Side::new(redis),
        codis: Side::new(Server::start(&[])),
        current: "main".into(),
        report: Vec::new(),
        commands: 0,
        trace: std::env::var("DIFF_TRACE").is_ok_and(|v| v == "1"),
    };

    for (i, raw_line) in text.split(|&b| b == b'\n').enumerate() {
        let shown = String::from_utf8_lossy(raw_line.trim_ascii()).into_owned();
        let at = if run.current == "main" {
            format!("line {}: {shown}", i + 1)
        } else {
            format!("line {} [{}]: {shown}", i + 1, run.current)
        };
        match parse_line(raw_line) {
            Ok(None) => {}
            Ok(Some(step)) => run.step(&at, step),
            Err(e) => run.report.push(format!("{at}\n    SCRIPT ERROR: {e}")),
        }
    }

    let Run {
        redis: redis_side,
        codis: mut codis_side,
        mut report,
        commands,
        ..
    } = run;
    if !codis_side.srv.is_alive() {
        report.push(format!(
            "codis-server DIED during the script; log tail:\n{}",
            codis_side.srv.log_tail(30)
        ));
    }
    if report.is_empty() {
        eprintln!("[differential] {name}.txt: {commands} commands, all replies identical");
    } else {
        panic!(
            "{name}.txt: {} mismatch(es) in {commands} commands (codis port {}, redis port {}):\n{}",
            report.len(),
            codis_side.srv.port(),
            redis_side.srv.port(),
            report.join("\n")
        );
    }
}

#[test]
fn parse_line_reads_every_directive() {
    let cmd =
        |s: &str| tests::resp::encode_command(&protocol::resp::split_args(s.as_bytes()).unwrap());
    let exact = |s: &str| {
        Ok(Some(Step::Command {
            mode: Mode::Exact,
            bytes: cmd(s),
        }))
    };
    assert_eq!(parse_line(b"  # comment"), Ok(None));
    assert_eq!(parse_line(b"   \r"), Ok(None));
    assert_eq!(parse_line(b"SET k \"a b\"\r"), exact("SET k \"a b\""));
    assert_eq!(
        parse_line(b"hello 3"),
        Ok(Some(Step::Command {
            mode: Mode::MaskId,
            bytes: cmd("hello 3")
        }))
    );
    assert_eq!(
        parse_line(b"!sorted SMEMBERS s"),
        Ok(Some(Step::Command {
            mode: Mode::Sorted,
            bytes: cmd("SMEMBERS s")
        }))
    );
    assert_eq!(
        parse_line(b"!shape HELLO 3"),
        Ok(Some(Step::Command {
            mode: Mode::Shape,
            bytes: cmd("HELLO 3")
        }))
    );
    assert_eq!(
        parse_line(b"!ignore FLUSHALL"),
        Ok(Some(Step::Command {
            mode: Mode::Ignore,
            bytes: cmd("FLUSHALL")
        }))
    );
    assert_eq!(
        parse_line(b"!inline PING  x"),
        Ok(Some(Step::Command {
            mode: Mode::Exact,
            bytes: b"PING  x\r\n".to_vec()
        }))
    );
    assert_eq!(
        parse_line(b"!send SUBSCRIBE a b"),
        Ok(Some(Step::Send(cmd("SUBSCRIBE a b"))))
    );
    assert!(parse_line(b"!send").is_err());
    assert_eq!(parse_line(b"!read"), Ok(Some(Step::Read(1))));
    assert_eq!(parse_line(b"!READ 3"), Ok(Some(Step::Read(3))));
    assert!(parse_line(b"!read 0").is_err());
    assert!(parse_line(b"!read x").is_err());
    assert_eq!(parse_line(b"!noreply"), Ok(Some(Step::NoReply(None))));
    assert_eq!(
        parse_line(b"!noreply PUBLISH c m"),
        Ok(Some(Step::NoReply(Some(cmd("PUBLISH c m")))))
    );
    assert_eq!(parse_line(b"!conn sub"), Ok(Some(Step::Conn("sub".into()))));
    assert!(parse_line(b"!conn").is_err());
    assert!(parse_line(b"!conn a b").is_err());
    assert_eq!(parse_line(b"!sleep 20"), Ok(Some(Step::Sleep(20))));
    assert!(parse_line(b"!sleep").is_err());
    assert_eq!(parse_line(b"!reconnect"), Ok(Some(Step::Reconnect)));
    assert!(parse_line(b"!reconnect now").is_err());
    assert!(parse_line(b"!bogus PING").is_err());
    assert!(parse_line(b"GET \"open").is_err());
}

#[test]
fn broken_only_when_the_stream_is_out_of_step() {
    assert!(!broken(&Outcome::Reply(b"+OK\r\n".to_vec())));
    assert!(!broken(&Outcome::Timeout(Vec::new())));
    assert!(broken(&Outcome::Timeout(b"*2\r\n".to_vec())));
    assert!(broken(&Outcome::Closed(Vec::new())));
    assert!(broken(&Outcome::Failed("x".into())));
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
