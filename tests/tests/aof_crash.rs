//! AOF durability under `kill -9` (Redis 7.0 multi-part AOF): servers are
//! killed while clients write, then restarted on the same directory with
//! the same arguments, and what they load is checked against what the
//! clients sent and what the server acknowledged.
//!
//! * `appendfsync always`: every acknowledged write is there, nothing that
//!   was never sent is.
//! * `appendfsync everysec`: only a tail may be missing (everything
//!   acknowledged more than 2 s before the kill is there), never a hole.
//! * Killed during BGREWRITEAOF / BGSAVE (three kill moments each, chained
//!   on one directory): every acknowledged write and every preloaded key
//!   is there, earlier rounds are unchanged, the directory always loads.
//! * Killed during a slot migration (AOF on both servers): no key of the
//!   slot is lost, values are intact, and only the tag groups that were in
//!   flight have keys on both servers (a sync migration step is two
//!   commits — the target's SLOTSRESTORE, fsynced before its +OK, then
//!   the source's DEL — so "exactly one server" cannot hold across a kill
//!   between them; Codis 3.2 has the same window).
//! * Every restart comes up and its log has no "panicked".
//!
//! The writers: 8 threads, one connection each, each sending the pipeline
//! `INCR <p>counter:<t>`, `RPUSH <p>log:<t> <seq>`, `SET <p>k:<t>:<seq>
//! <seq>` for seq = 1, 2, … and recording the last seq sent and the last
//! one fully acknowledged (with its time). A server's log is one ordered
//! stream per connection, so what a restart finds must be a prefix of that
//! command sequence: `n` SET keys `1..=n`, a list `1..=L`, a counter `C`
//! with (C, L, n) ∈ {(n, n, n), (n+1, n, n), (n+1, n+1, n)}.
//!
//! Kill moments come from a seeded xorshift: the seed is printed and can
//! be replayed with `AOF_CRASH_SEED=<n>`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tests::data::{Rng, keys_in_slot, persistence_field, pipeline, slot_size};
use tests::{Conn, Server, Value, escape};

/// Writer threads per round.
const WRITERS: usize = 8;
/// Keys DEBUG POPULATE preloads in the background-operation tests.
const POPULATE: u64 = 200_000;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The test's xorshift, seeded from `AOF_CRASH_SEED` or the clock (and
/// printed, so a failure can be replayed).
fn rng(test: &str) -> Rng {
    let seed = std::env::var("AOF_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: AOF_CRASH_SEED={seed}");
    // A zero state would stay zero; mix the seed, skip the first outputs.
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for _ in 0..8 {
        r.next_u64();
    }
    r
}

/// A number in `lo..hi`.
fn between(r: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + r.below(hi - lo)
}

fn args(extra: &[&[&str]]) -> Vec<String> {
    extra
        .iter()
        .flat_map(|a| a.iter().map(|s| s.to_string()))
        .collect()
}

fn start(dir: &Path, args: &[String]) -> Server {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let srv = Server::start_in(dir, &a);
    assert_no_panic(&srv);
    srv
}

#[track_caller]
fn assert_no_panic(srv: &Server) {
    let log = srv.log();
    assert!(
        !log.contains("panicked"),
        "the server panicked:\n{}",
        srv.log_tail(60)
    );
}

/// Polls INFO until `field` is `want` (panics after `within`).
fn wait_info(c: &mut Conn, field: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let v = persistence_field(c, field);
        if v == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{field} is still {v} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn int_of(v: &Value, what: &str) -> u64 {
    match v {
        Value::Nil => 0,
        _ => std::str::from_utf8(v.as_bytes().unwrap_or_else(|| panic!("{what}: {v:?}")))
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: not a number: {v:?}")),
    }
}

// ---------------------------------------------------------------------------
// Writers

fn counter_key(p: &str, t: usize) -> String {
    format!("{p}counter:{t}")
}

fn list_key(p: &str, t: usize) -> String {
    format!("{p}log:{t}")
}

fn set_key(p: &str, t: usize, seq: u64) -> String {
    format!("{p}k:{t}:{seq}")
}

/// What one writer did.
#[derive(Debug, Default)]
struct Record {
    /// Last seq whose commands were (at least partly) written to the socket.
    sent: u64,
    /// Last seq whose three replies all came back.
    acked: u64,
    /// (time of the ack, seq), in order.
    acks: Vec<(Instant, u64)>,
    /// A reply that is not what the command must answer.
    bad: Option<String>,
    /// Why it stopped.
    end: String,
}

impl Record {
    /// The last seq acknowledged at or before `t`.
    fn acked_by(&self, t: Instant) -> u64 {
        self.acks
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0, |(_, s)| *s)
    }
}

struct Writers {
    stop: Arc<AtomicBool>,
    /// Each writer's last acked seq, live.
    progress: Arc<Vec<AtomicU64>>,
    handles: Vec<JoinHandle<Record>>,
}

fn start_writers(port: u16, prefix: &str) -> Writers {
    let stop = Arc::new(AtomicBool::new(false));
    let progress: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let handles = (0..WRITERS)
        .map(|t| {
            let (stop, progress, p) = (stop.clone(), progress.clone(), prefix.to_string());
            std::thread::spawn(move || write_loop(port, &p, t, &stop, &progress[t]))
        })
        .collect();
    Writers {
        stop,
        progress,
        handles,
    }
}

fn write_loop(port: u16, p: &str, t: usize, stop: &AtomicBool, progress: &AtomicU64) -> Record {
    let mut rec = Record::default();
    let mut c = match Conn::connect(port) {
        Ok(c) => c,
        Err(e) => {
            rec.end = format!("connect: {e}");
            return rec;
        }
    };
    c.set_timeout(Duration::from_secs(10));
    let (counter, list) = (counter_key(p, t), list_key(p, t));
    let mut seq = 0u64;
    'run: loop {
        if stop.load(Relaxed) {
            rec.end = "stopped".into();
            break;
        }
        seq += 1;
        let s = seq.to_string();
        let key = set_key(p, t, seq);
        let cmds: [&[&str]; 3] = [
            &["INCR", &counter],
            &["RPUSH", &list, &s],
            &["SET", &key, &s],
        ];
        let mut bytes = Vec::new();
        for cmd in cmds {
            bytes.extend_from_slice(&tests::resp::encode_command(cmd));
        }
        rec.sent = seq;
        if let Err(e) = c.write_raw(&bytes) {
            rec.end = format!("write: {e}");
            break;
        }
        let want = [
            format!(":{seq}\r\n"),
            format!(":{seq}\r\n"),
            "+OK\r\n".into(),
        ];
        for (cmd, want) in cmds.iter().zip(&want) {
            match c.read_reply() {
                Ok(r) if r == want.as_bytes() => {}
                Ok(r) => {
                    rec.bad = Some(format!(
                        "writer {t}: {} answered {} (expected {})",
                        tests::describe(cmd),
                        escape(&r),
                        escape(want.as_bytes())
                    ));
                    rec.end = "bad reply".into();
                    break 'run;
                }
                Err(e) => {
                    rec.end = format!("read: {e}");
                    break 'run;
                }
            }
        }
        rec.acked = seq;
        rec.acks.push((Instant::now(), seq));
        progress.store(seq, Relaxed);
    }
    rec
}

impl Writers {
    /// Waits until every writer has had a round trip acknowledged.
    fn wait_running(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.progress.iter().any(|p| p.load(Relaxed) == 0) {
            assert!(
                Instant::now() < deadline,
                "writers made no progress: {:?}",
                self.progress
            );
            assert!(
                !self.handles.iter().any(JoinHandle::is_finished),
                "a writer stopped early"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether every writer is still writing (none stopped by itself).
    fn all_running(&self) -> bool {
        !self.handles.iter().any(JoinHandle::is_finished)
    }

    /// Joins the writers (after their server died, they stop on the
    /// connection error; after 20 s they are told to stop).
    fn join(self) -> Vec<Record> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.handles.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.stop.store(true, Relaxed);
        let recs: Vec<Record> = self
            .handles
            .into_iter()
            .map(|h| h.join().expect("a writer thread panicked"))
            .collect();
        for r in &recs {
            assert!(r.bad.is_none(), "{}", r.bad.as_deref().unwrap_or_default());
        }
        recs
    }
}

/// What one writer's keys hold after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Found {
    counter: u64,
    list: u64,
    keys: u64,
}

impl Found {
    /// Keys it occupies in the keyspace.
    fn dbsize(&self) -> u64 {
        u64::from(self.counter > 0) + u64::from(self.list > 0) + self.keys
    }
}

/// Reads writer `t`'s keys and checks they are a prefix of what it sent
/// (a list `1..=L`, SET keys `1..=n` with their values, nothing later).
fn found(c: &mut Conn, p: &str, t: usize, sent: u64) -> Found {
    let who = format!("writer {p}{t}");
    let counter = int_of(&c.send_value(&["GET", &counter_key(p, t)]), &who);
    let list = c.send_value(&["LRANGE", &list_key(p, t), "0", "-1"]);
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("{who}: LRANGE {list:?}"));
    for (i, v) in items.iter().enumerate() {
        assert_eq!(
            int_of(v, &who),
            i as u64 + 1,
            "{who}: the list is not 1..=L (hole, reorder or duplicate at index {i})"
        );
    }
    let list = items.len() as u64;
    // SET keys 1..=sent+2: present ones must be 1..=n.
    let mut keys = 0u64;
    let mut first_missing = None;
    let top = sent + 2;
    let mut seq = 1u64;
    while seq <= top {
        let end = (seq + 999).min(top);
        let mut cmd = vec![b("MGET")];
        cmd.extend((seq..=end).map(|s| b(&set_key(p, t, s))));
        let v = c.send_value(&cmd);
        let vals = v.as_array().unwrap_or_else(|| panic!("{who}: MGET {v:?}"));
        for (i, v) in vals.iter().enumerate() {
            let s = seq + i as u64;
            match v {
                Value::Nil => {
                    first_missing.get_or_insert(s);
                }
                _ => {
                    assert_eq!(int_of(v, &who), s, "{who}: wrong value for seq {s}");
                    if let Some(m) = first_missing {
                        panic!("{who}: SET seq {s} is there but seq {m} is not (a hole)");
                    }
                    keys = s;
                }
            }
        }
        seq = end + 1;
    }
    let f = Found {
        counter,
        list,
        keys,
    };
    // The executed commands are a prefix of INCR 1, RPUSH 1, SET 1, INCR 2, …
    let ok = (keys..=keys + 1).contains(&counter) && (keys..=counter).contains(&list);
    assert!(ok, "{who}: {f:?} is not a prefix of the command sequence");
    assert!(
        counter <= sent,
        "{who}: {f:?} holds writes never sent (last sent {sent})"
    );
    f
}

/// Checks every writer of a round after the restart; returns what was
/// found. `required(rec)` is the seq that must have survived.
fn check_round(
    c: &mut Conn,
    prefix: &str,
    recs: &[Record],
    required: impl Fn(&Record) -> u64,
) -> Vec<Found> {
    recs.iter()
        .enumerate()
        .map(|(t, r)| {
            let f = found(c, prefix, t, r.sent);
            let need = required(r);
            assert!(
                f.keys >= need,
                "writer {prefix}{t}: seq {need} was acknowledged but the restart has only {f:?} \
                 (sent {}, acked {}, ended by {:?})",
                r.sent,
                r.acked,
                r.end
            );
            f
        })
        .collect()
}

fn summary(recs: &[Record], found: &[Found]) -> String {
    recs.iter()
        .zip(found)
        .map(|(r, f)| format!("{}/{}/{}", r.acked, f.keys, r.sent))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// 1, 2: plain kill -9 under writers

const ALWAYS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];
const EVERYSEC: &[&str] = &["--appendonly", "yes", "--appendfsync", "everysec"];
const DEBUG: &[&str] = &["--enable-debug-command", "yes"];

/// `always`: every acknowledged write survives, nothing unsent appears.
#[test]
fn always_keeps_every_acknowledged_write() {
    let t0 = Instant::now();
    let mut r = rng("always_keeps_every_acknowledged_write");
    let dir = tempfile::tempdir().unwrap();
    let a = args(&[ALWAYS]);
    let srv = start(dir.path(), &a);
    let w = start_writers(srv.port(), "");
    w.wait_running();
    let after = Duration::from_millis(between(&mut r, 200, 800));
    std::thread::sleep(after);
    assert!(w.all_running(), "a writer stopped before the kill");
    srv.kill9();
    let recs = w.join();
    let srv = start(dir.path(), &a);
    let mut c = srv.conn();
    let f = check_round(&mut c, "", &recs, |r| r.acked);
    let total: u64 = f.iter().map(Found::dbsize).sum();
    assert_eq!(c.value("DBSIZE").as_int(), Some(total as i64));
    assert_no_panic(&srv);
    eprintln!(
        "always_keeps_every_acknowledged_write: killed after {after:?}; \
         acked/found/sent per writer: {}; {:?}",
        summary(&recs, &f),
        t0.elapsed()
    );
}

/// `everysec`: everything acknowledged 2 s before the kill survives, and
/// what survives has no holes. (The writer thread's fdatasync holds the
/// file: while one is slow, acknowledged writes stay in memory, replies
/// wait only once it has taken 2 s; so a failure whose oldest lost write
/// was acknowledged over 2 s before the kill points at an fdatasync that
/// took longer than that.)
#[test]
fn everysec_loses_at_most_a_tail() {
    let t0 = Instant::now();
    let mut r = rng("everysec_loses_at_most_a_tail");
    let dir = tempfile::tempdir().unwrap();
    let a = args(&[EVERYSEC]);
    let srv = start(dir.path(), &a);
    let w = start_writers(srv.port(), "");
    w.wait_running();
    let after = Duration::from_millis(2500 + between(&mut r, 200, 800));
    std::thread::sleep(after);
    assert!(w.all_running(), "a writer stopped before the kill");
    let killed = Instant::now();
    srv.kill9();
    let recs = w.join();
    let bound = killed - Duration::from_secs(2);
    for (t, rec) in recs.iter().enumerate() {
        assert!(
            rec.acked_by(bound) > 0,
            "writer {t}: nothing acked 2 s before the kill"
        );
    }
    let srv = start(dir.path(), &a);
    let mut c = srv.conn();
    let f = check_round(&mut c, "", &recs, |r| r.acked_by(bound));
    let total: u64 = f.iter().map(Found::dbsize).sum();
    assert_eq!(c.value("DBSIZE").as_int(), Some(total as i64));
    assert_no_panic(&srv);
    let lost: Vec<u64> = recs
        .iter()
        .zip(&f)
        .map(|(r, f)| r.acked.saturating_sub(f.keys))
        .collect();
    // How long before the kill the oldest lost write had been acknowledged.
    let oldest = recs
        .iter()
        .zip(&f)
        .filter_map(|(r, f)| r.acks.iter().find(|(_, s)| *s > f.keys))
        .map(|(at, _)| killed.saturating_duration_since(*at))
        .max()
        .unwrap_or_default();
    eprintln!(
        "everysec_loses_at_most_a_tail: killed after {after:?}; \
         acked/found/sent per writer: {}; acked but lost: {lost:?}, \
         the oldest acknowledged {oldest:?} before the kill; {:?}",
        summary(&recs, &f),
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 3, 4: kill -9 during BGREWRITEAOF / BGSAVE

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bg {
    Rewrite,
    Save,
}

impl Bg {
    fn command(self) -> (&'static str, &'static [u8]) {
        match self {
            Bg::Rewrite => (
                "BGREWRITEAOF",
                b"+Background append only file rewriting started\r\n",
            ),
            Bg::Save => ("BGSAVE", b"+Background saving started\r\n"),
        }
    }

    fn in_progress(self) -> &'static str {
        match self {
            Bg::Rewrite => "aof_rewrite_in_progress",
            Bg::Save => "rdb_bgsave_in_progress",
        }
    }
}

/// A sample of the populated keys has its values (`value:<j>` padded
/// with zero bytes to 32).
fn check_populated(c: &mut Conn, r: &mut Rng) {
    let idx: Vec<u64> = (0..500)
        .map(|_| r.below(POPULATE))
        .chain([0, POPULATE - 1])
        .collect();
    let mut cmd = vec![b("MGET")];
    cmd.extend(idx.iter().map(|j| b(&format!("pop:{j}"))));
    let v = c.send_value(&cmd);
    for (j, v) in idx.iter().zip(v.as_array().unwrap()) {
        let mut want = b(&format!("value:{j}"));
        want.resize(32, 0);
        assert_eq!(v.as_bytes(), Some(&want[..]), "pop:{j}");
    }
}

/// Preloads 200k keys (in a first rewrite's base: DEBUG POPULATE is not
/// logged), then three rounds, chained on one directory: writers, the
/// background operation, kill -9 at a different moment each time
/// (shortly after it started, while it runs, just after it ended),
/// restart, check every round so far.
fn kill_during(bg: Bg, test: &str) {
    let t0 = Instant::now();
    let mut r = rng(test);
    let dir = tempfile::tempdir().unwrap();
    let a = args(&[ALWAYS, DEBUG]);
    let srv = start(dir.path(), &a);
    let mut c = srv.conn();
    assert_eq!(
        c.cmd(&format!("DEBUG POPULATE {POPULATE} pop 32")),
        b"+OK\r\n"
    );
    let mut length = Duration::ZERO;
    for op in [Bg::Rewrite, bg] {
        // The populated keys go into a base; the length of the operation
        // (without writers) sets the kill moments.
        let started = Instant::now();
        let (cmd, reply) = op.command();
        assert_eq!(c.cmd(cmd), reply, "{cmd}");
        wait_info(&mut c, op.in_progress(), "0", Duration::from_secs(15));
        length = started.elapsed().max(Duration::from_millis(3));
        if op == bg {
            break;
        }
    }
    assert_eq!(persistence_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    drop(c);
    let mut srv = Some(srv);
    // (prefix, what each writer sent, what was found after its restart)
    let mut rounds: Vec<(String, Vec<u64>, Vec<Found>)> = Vec::new();
    let mut report = Vec::new();
    for round in 0..3 {
        let s = srv.take().unwrap();
        let mut c = s.conn();
        let prefix = format!("r{round}:");
        let w = start_writers(s.port(), &prefix);
        w.wait_running();
        std::thread::sleep(Duration::from_millis(between(&mut r, 20, 100)));
        let (cmd, reply) = bg.command();
        let sent_at = Instant::now();
        assert_eq!(c.cmd(cmd), reply, "{cmd}");
        let field = bg.in_progress();
        let ms = length.as_millis() as u64;
        match round {
            // In its first quarter.
            0 => std::thread::sleep(Duration::from_millis(between(&mut r, 0, ms / 4 + 1))),
            // Later, while it runs (if it still does).
            1 => {
                let until =
                    sent_at + Duration::from_millis(between(&mut r, ms / 4, ms * 2 / 3 + 2));
                while Instant::now() < until && persistence_field(&mut c, field) == "1" {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            // Just after it ended.
            _ => {
                wait_info(&mut c, field, "0", Duration::from_secs(15));
                std::thread::sleep(Duration::from_millis(between(&mut r, 0, 20)));
            }
        }
        let state = persistence_field(&mut c, field);
        let at = sent_at.elapsed();
        assert!(
            w.all_running(),
            "round {round}: a writer stopped before the kill"
        );
        drop(c);
        s.kill9();
        let recs = w.join();
        report.push(format!(
            "round {round}: killed {at:?} after {cmd} with {field}:{state}"
        ));
        let s = start(dir.path(), &a);
        let mut c = s.conn();
        let f = check_round(&mut c, &prefix, &recs, |r| r.acked);
        report.push(format!("  acked/found/sent: {}", summary(&recs, &f)));
        rounds.push((prefix, recs.iter().map(|r| r.sent).collect(), f));
        check_all(&mut c, &rounds, &mut r, round);
        srv = Some(s);
    }
    // The directory the crashes left takes one more rewrite and a restart.
    let s = srv.take().unwrap();
    let mut c = s.conn();
    assert_eq!(c.cmd("BGREWRITEAOF"), Bg::Rewrite.command().1);
    wait_info(
        &mut c,
        "aof_rewrite_in_progress",
        "0",
        Duration::from_secs(15),
    );
    assert_eq!(persistence_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    drop(c);
    s.kill9();
    let s = start(dir.path(), &a);
    let mut c = s.conn();
    check_all(&mut c, &rounds, &mut r, 3);
    assert_no_panic(&s);
    eprintln!(
        "{test}: {bg:?} takes {length:?} without writers\n{test}: {}\n{test}: files {}\n{test}: {:?}",
        report.join(&format!("\n{test}: ")),
        listing(dir.path()),
        t0.elapsed()
    );
}

/// The files in `dir` and its AOF directory.
fn listing(dir: &Path) -> String {
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|it| {
                it.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    format!(
        "{:?}, appendonlydir/{:?}",
        names(dir),
        names(&dir.join("appendonlydir"))
    )
}

/// Every round's writers still hold exactly what their own restart found,
/// and the keyspace is the populated keys plus theirs.
fn check_all(c: &mut Conn, rounds: &[(String, Vec<u64>, Vec<Found>)], r: &mut Rng, after: usize) {
    let mut total = POPULATE;
    for (prefix, sent, f) in rounds {
        for (t, (&s, want)) in sent.iter().zip(f).enumerate() {
            let got = found(c, prefix, t, s);
            assert_eq!(
                got, *want,
                "writer {prefix}{t} changed after restart {after}"
            );
            total += got.dbsize();
        }
    }
    assert_eq!(
        c.value("DBSIZE").as_int(),
        Some(total as i64),
        "DBSIZE after restart {after} (populated keys lost or extra keys)"
    );
    check_populated(c, r);
}

/// `always`: kill -9 during BGREWRITEAOF loses nothing acknowledged.
#[test]
fn kill_during_bgrewriteaof() {
    kill_during(Bg::Rewrite, "kill_during_bgrewriteaof");
}

/// `always`: kill -9 during BGSAVE (AOF on) loses nothing acknowledged.
#[test]
fn kill_during_bgsave() {
    kill_during(Bg::Save, "kill_during_bgsave");
}

// ---------------------------------------------------------------------------
// 5: kill -9 during a slot migration

/// Tag groups in the migrated slot, and strings per group (each group
/// also has a 10-element list).
const GROUPS: usize = 400;
const PER_GROUP: usize = 25;
/// Concurrent SLOTSMGRTTAGSLOT loops (each has at most one tag group in
/// flight).
const LOOPS: usize = 2;

fn mig_value(key: &str) -> String {
    format!("value-of-{key}-{}", "#".repeat(10 + key.len() % 40))
}

fn group_strings(tag: &str) -> Vec<String> {
    (0..PER_GROUP).map(|i| format!("{{{tag}}}k{i}")).collect()
}

fn group_list(tag: &str) -> String {
    format!("{{{tag}}}list")
}

fn list_items() -> Vec<Vec<u8>> {
    (0..10).map(|i| b(&format!("e{i}"))).collect()
}

/// Which of a group's keys (its strings, then its list) a server holds,
/// values checked.
fn group_presence(c: &mut Conn, who: &str, tag: &str) -> Vec<bool> {
    let keys = group_strings(tag);
    let mut cmd = vec![b("MGET")];
    cmd.extend(keys.iter().map(|k| b(k)));
    let v = c.send_value(&cmd);
    let mut out = Vec::new();
    for (k, v) in keys.iter().zip(v.as_array().unwrap()) {
        let here = !matches!(v, Value::Nil);
        if here {
            assert_eq!(v.as_bytes(), Some(mig_value(k).as_bytes()), "{k} on {who}");
        }
        out.push(here);
    }
    let l = group_list(tag);
    let v = c.send_value(&["LRANGE", &l, "0", "-1"]);
    let items: Vec<&[u8]> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_bytes)
        .collect();
    if !items.is_empty() {
        let want = list_items();
        assert!(
            items.iter().copied().eq(want.iter().map(Vec::as_slice)),
            "{l} on {who}: {v:?}"
        );
    }
    out.push(!items.is_empty());
    out
}

/// AOF (`always`) on both sides of SLOTSMGRTTAGSLOT loops; the source,
/// then the target, is killed when a random share (25–75%) of the slot
/// has moved. After both restart: no key lost, values intact, keys on
/// both sides only in the groups that were in flight (whole groups are
/// not required: migrations log one RESTORE / DEL per key).
fn migration_crash(test: &str) {
    let t0 = Instant::now();
    let mut r = rng(test);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = args(&[ALWAYS]);
    let srv_a = start(da.path(), &a);
    let srv_b = start(db.path(), &a);
    let slot = r.below(1024) as usize;
    let tags = keys_in_slot(slot, GROUPS, "t");
    let mut cmds = Vec::new();
    for tag in &tags {
        for k in group_strings(tag) {
            cmds.push(vec![b("SET"), b(&k), b(&mig_value(&k))]);
        }
        let mut push = vec![b("RPUSH"), b(&group_list(tag))];
        push.extend(list_items());
        cmds.push(push);
    }
    let per_group = PER_GROUP + 1;
    let total = GROUPS * per_group;
    let mut ca = srv_a.conn();
    pipeline(&mut ca, &cmds);
    assert_eq!(slot_size(&mut ca, slot), total as i64);
    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let loops: Vec<JoinHandle<String>> = (0..LOOPS)
        .map(|_| {
            let (stop, moved) = (stop.clone(), moved.clone());
            let (pa, pb) = (srv_a.port(), srv_b.port());
            std::thread::spawn(move || {
                let Ok(mut c) = Conn::connect(pa) else {
                    return "connect failed".to_string();
                };
                let cmd = [
                    "SLOTSMGRTTAGSLOT".to_string(),
                    "127.0.0.1".to_string(),
                    pb.to_string(),
                    "5000".to_string(),
                    slot.to_string(),
                ];
                while !stop.load(Relaxed) {
                    let v = match c.try_send(&cmd) {
                        Ok(raw) => tests::parse_one(&raw),
                        Err(e) => return format!("ended by {e}"),
                    };
                    match v.as_ref().and_then(Value::as_array) {
                        Some([m, left]) => {
                            moved.fetch_add(m.as_int().unwrap_or(0) as u64, Relaxed);
                            if left.as_int() == Some(0) {
                                return "slot drained".into();
                            }
                        }
                        _ => return format!("ended by reply {v:?}"),
                    }
                }
                "stopped".into()
            })
        })
        .collect();
    let share = between(&mut r, 25, 76);
    let target = total as i64 * (100 - share as i64) / 100;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = total as i64;
    while Instant::now() < deadline {
        left = slot_size(&mut ca, slot);
        if left <= target || loops.iter().all(JoinHandle::is_finished) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(ca);
    srv_a.kill9();
    srv_b.kill9();
    stop.store(true, Relaxed);
    let ends: Vec<String> = loops.into_iter().map(|h| h.join().unwrap()).collect();
    let srv_a = start(da.path(), &a);
    let srv_b = start(db.path(), &a);
    let (mut ca, mut cb) = (srv_a.conn(), srv_b.conn());
    let (mut on_a, mut on_b, mut lost) = (0, 0, Vec::new());
    // Groups with keys on both servers, and groups not whole on a server.
    let (mut both, mut split) = (Vec::new(), Vec::new());
    for tag in &tags {
        let pa = group_presence(&mut ca, "A", tag);
        let pb = group_presence(&mut cb, "B", tag);
        let (na, nb) = (
            pa.iter().filter(|&&x| x).count(),
            pb.iter().filter(|&&x| x).count(),
        );
        for (i, (&x, &y)) in pa.iter().zip(&pb).enumerate() {
            if !x && !y {
                lost.push(format!("{{{tag}}} member {i}"));
            }
        }
        if pa.iter().zip(&pb).any(|(&x, &y)| x && y) {
            both.push(format!("{{{tag}}}"));
        }
        if (na != 0 && na != per_group) || (nb != 0 && nb != per_group) {
            split.push(format!("{{{tag}}}: {na} keys on A, {nb} on B"));
        }
        on_a += na;
        on_b += nb;
    }
    let report = format!(
        "slot {slot}, {GROUPS} tag groups of {per_group} keys, killed at {} of {total} moved \
         (aimed at {share}%, {} acknowledged); after restart: {on_a} keys on A, {on_b} on B, \
         groups with keys on both {both:?}, groups not whole on a side {split:?}, \
         keys lost {}; loops: {ends:?}",
        total as i64 - left,
        moved.load(Relaxed),
        lost.len(),
    );
    eprintln!("{test}: {report}; {:?}", t0.elapsed());
    assert!(lost.is_empty(), "keys lost: {lost:?} ({report})");
    assert_eq!(slot_size(&mut ca, slot), on_a as i64);
    assert_eq!(slot_size(&mut cb, slot), on_b as i64);
    assert_eq!(ca.value("DBSIZE").as_int(), Some(on_a as i64));
    assert_eq!(cb.value("DBSIZE").as_int(), Some(on_b as i64));
    assert_no_panic(&srv_a);
    assert_no_panic(&srv_b);
    // Only the groups in flight (one per loop) can have keys on both
    // sides: the target made the restore durable, the source's deletes
    // were not yet (one DEL per key, so a group can also be part-deleted).
    assert!(
        both.len() <= LOOPS,
        "more tag groups on both servers than were in flight ({report})"
    );
}

/// Kill -9 mid-migration: nothing lost, values intact, and keys on both
/// servers only in the tag groups that were in flight.
#[test]
fn kill_during_slot_migration() {
    migration_crash("kill_during_slot_migration");
}
