//! The propagation stream: one ordered stream of every change this server
//! makes, as RESP commands (Redis' `propagate()` / `alsoPropagate`, the feed
//! of the AOF and of replicas). Owns the stream's encoder and its consumers;
//! knows nothing of sockets or files.
//!
//! Ordering: an entry is appended while its keys' slots are still locked
//! (the gate holds a write command's lock set until its entries are in,
//! expiry appends under the slot lock), so two changes of one key always
//! appear in the order they happened. A `SELECT` precedes an entry whose DB
//! differs from the last one; a command (or transaction) that propagates more
//! than one entry is wrapped in `MULTI` … `EXEC`, so a consumer applies it
//! whole.
//!
//! Besides channel consumers (one message per change), the stream keeps
//! one byte log for the AOF ([`Log`]): entries are encoded straight into
//! it under the stream's lock (no allocation per command), its writer
//! thread takes the bytes in bulk, and `offset` counts every byte ever
//! appended, so a connection can wait until what it changed is on disk
//! (`appendfsync always`).
//!
//! The bytes sent to consumers are the replication stream: `repl_offset`
//! counts them (Redis' `master_repl_offset`), and once a replica has
//! subscribed they also go into a backlog (the last `repl-backlog-size`
//! bytes), kept with no consumer until `repl-backlog-ttl`, so a replica
//! coming back continues from its offset (repl/).
//!
//! On a replica the stream relays: the bytes its master sent, as received
//! ([`Stream::feed`]), go to its replicas and backlog, so a chained
//! replica and a promotion keep the master's offsets (PSYNC2); what the
//! replica's own executions append goes to its AOF only.
//!
//! Cost: with no consumer, no log and no backlog the gate reads one atomic
//! and skips all of it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

use tokio::sync::mpsc;

/// One entry: the command line to propagate.
pub type Argv = Vec<Vec<u8>>;

/// A consumer's end: RESP bytes, each message one whole command or one
/// whole `MULTI` … `EXEC` block (with its leading `SELECT` if any).
pub type Receiver = mpsc::UnboundedReceiver<Vec<u8>>;

#[derive(Default)]
struct Inner {
    /// The DB the consumers are in (`None` until the first entry).
    db: Option<usize>,
    consumers: Vec<Consumer>,
    log: Option<Log>,
    /// The replication backlog: the last bytes sent to the consumers
    /// (created with the first replica, kept after it; Redis').
    backlog: Option<Backlog>,
    /// A replica relays its master's stream ([`Stream::feed`]) to its own
    /// replicas and backlog: what it changes itself goes to the log only.
    relay: bool,
}

/// The last `cap` bytes of the replication stream.
pub struct Backlog {
    buf: std::collections::VecDeque<u8>,
    cap: usize,
}

impl Backlog {
    fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.cap {
            self.buf.clear();
            self.buf.extend(&bytes[bytes.len() - self.cap..]);
            return;
        }
        let over = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        self.buf.drain(..over);
        self.buf.extend(bytes);
    }
}

/// INFO replication's backlog fields.
pub struct BacklogInfo {
    pub size: u64,
    /// Offset of its first byte (1-based, as Redis counts).
    pub first_byte: u64,
    pub histlen: u64,
}

/// Told the bytes a consumer has queued and not taken, after each send
/// (a replica's output-buffer limit).
pub type QueueCheck = Box<dyn Fn(usize) + Send + Sync>;

struct Consumer {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes sent and not yet taken (the receiver lowers it), with the
    /// check to run on it; `None` for consumers nothing bounds.
    queued: Option<(std::sync::Arc<AtomicU64>, QueueCheck)>,
}

impl Consumer {
    fn send(&self, buf: Vec<u8>) -> bool {
        let Some((q, check)) = &self.queued else {
            return self.tx.send(buf).is_ok();
        };
        // Counted before the receiver can take it (it lowers the count).
        let n = q.fetch_add(buf.len() as u64, Relaxed) + buf.len() as u64;
        if self.tx.send(buf).is_err() {
            return false;
        }
        check(n as usize);
        true
    }
}

/// The AOF's byte log: what the writer has not taken yet.
pub struct Log {
    pub buf: Vec<u8>,
    /// A file switch (an AOF rewrite's new INCR) waiting for the writer:
    /// the bytes that belong before it. Taken together with `buf`, so the
    /// writer never puts bytes on the wrong side of it.
    pub switch: Option<Switch>,
    /// `aof-timestamp-enabled`: the second of the last `#TS:` annotation.
    pub timestamps: bool,
    last_ts: u64,
}

impl Log {
    fn new(timestamps: bool) -> Log {
        Log {
            buf: Vec::with_capacity(64 * 1024),
            switch: None,
            timestamps,
            last_ts: 0,
        }
    }

    /// Redis' `#TS:<unix seconds>` annotation, once per second of writes.
    fn annotate(&mut self) {
        if self.timestamps {
            let now = crate::db::now_ms() / 1000;
            if now > self.last_ts {
                self.last_ts = now;
                self.buf.extend_from_slice(b"#TS:");
                self.buf
                    .extend_from_slice(itoa::Buffer::new().format(now).as_bytes());
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// What a file switch hands the writer.
pub struct Switch {
    /// Bytes appended before the switch point (they go to the old file).
    pub before: Vec<u8>,
    /// The file that takes every later byte, opened by the switcher.
    pub file: std::fs::File,
    pub name: String,
}

/// Wakes the log's writer thread when it sleeps (one atomic load per
/// append otherwise).
#[derive(Default)]
pub struct Waker {
    sleeping: AtomicBool,
    m: Mutex<bool>,
    cv: Condvar,
}

impl Waker {
    /// Sleeps until woken or `timeout`, unless `ready()` (checked after
    /// announcing the sleep, so no append is missed).
    pub fn sleep(&self, timeout: std::time::Duration, ready: impl FnOnce() -> bool) {
        let mut g = self.m.lock().unwrap_or_else(|p| p.into_inner());
        *g = false;
        self.sleeping.store(true, SeqCst);
        if !ready() {
            let (g2, _) = self
                .cv
                .wait_timeout_while(g, timeout, |woken| !*woken)
                .unwrap_or_else(|p| p.into_inner());
            g = g2;
        }
        self.sleeping.store(false, SeqCst);
        drop(g);
    }

    /// Wakes the sleeper (if it sleeps).
    pub fn wake(&self) {
        if self.sleeping.load(SeqCst) {
            let mut g = self.m.lock().unwrap_or_else(|p| p.into_inner());
            *g = true;
            self.cv.notify_one();
        }
    }
}

#[derive(Default)]
pub struct Stream {
    active: AtomicBool,
    inner: Mutex<Inner>,
    /// Bytes ever appended to the log.
    offset: AtomicU64,
    /// Bytes ever sent to the channel consumers: the replication stream's
    /// offset (Redis' `master_repl_offset`).
    repl_offset: AtomicU64,
    /// `repl-backlog-size`, for a backlog created later.
    backlog_size: AtomicU64,
    /// Wakes the log's writer (persist/aof.rs).
    pub waker: Waker,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends `argv` as a RESP array of bulk strings.
pub fn encode<A: AsRef<[u8]>>(out: &mut Vec<u8>, argv: &[A]) {
    let mut b = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(b.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(b.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl Stream {
    /// Whether anyone consumes the stream (the gate's only cost otherwise).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Adds a consumer; it receives every change from now on. The first
    /// message it gets starts with a `SELECT`.
    pub fn subscribe(&self) -> Receiver {
        self.subscribe_at().0
    }

    /// [`Stream::subscribe`], with the replication offset the consumer's
    /// first byte will have.
    pub fn subscribe_at(&self) -> (Receiver, u64) {
        self.subscribe_with(None)
    }

    /// [`Stream::subscribe_at`] for a consumer whose queue is checked
    /// after each send: the receiver takes a message, then lowers the
    /// counter by its length.
    pub fn subscribe_checked(
        &self,
        queued: std::sync::Arc<AtomicU64>,
        check: QueueCheck,
    ) -> (Receiver, u64) {
        self.subscribe_with(Some((queued, check)))
    }

    fn subscribe_with(
        &self,
        queued: Option<(std::sync::Arc<AtomicU64>, QueueCheck)>,
    ) -> (Receiver, u64) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut g = lock(&self.inner);
        if let Some((_, _)) = &queued
            && g.backlog.is_none()
        {
            // The first replica: the backlog starts here.
            g.backlog = Some(Backlog {
                buf: Default::default(),
                cap: self.backlog_size.load(Relaxed).max(1) as usize,
            });
        }
        g.consumers.push(Consumer { tx, queued });
        // A new consumer does not know the current DB. (A relayed stream
        // is the master's: the snapshot's `repl-stream-db` says it.)
        if !g.relay {
            g.db = None;
        }
        self.active.store(true, Relaxed);
        (rx, self.repl_offset.load(Relaxed))
    }

    /// The replication offset: bytes ever sent to the consumers.
    pub fn repl_offset(&self) -> u64 {
        self.repl_offset.load(Relaxed)
    }

    /// A continuing replica (PSYNC2's partial resynchronization): if the
    /// backlog still holds every byte from offset `from` (1-based: the
    /// first byte the replica lacks), subscribes it and returns those
    /// bytes, which precede whatever it receives next.
    pub fn subscribe_continue(
        &self,
        from: u64,
        queued: std::sync::Arc<AtomicU64>,
        check: QueueCheck,
    ) -> Option<(Receiver, Vec<u8>)> {
        let mut g = lock(&self.inner);
        let b = g.backlog.as_ref()?;
        let end = self.repl_offset.load(Relaxed);
        let first = end + 1 - b.buf.len() as u64;
        if from < first || from > end + 1 {
            return None;
        }
        let skip = (from - first) as usize;
        let missing: Vec<u8> = b.buf.iter().skip(skip).copied().collect();
        let (tx, rx) = mpsc::unbounded_channel();
        queued.fetch_add(missing.len() as u64, Relaxed);
        // No SELECT is forced: the replica's DB is the stream's at `end`.
        g.consumers.push(Consumer {
            tx,
            queued: Some((queued, check)),
        });
        self.active.store(true, Relaxed);
        Some((rx, missing))
    }

    /// `repl-backlog-size`: applies now to the backlog (which keeps its
    /// newest bytes) and to one created later.
    pub fn set_backlog_size(&self, size: u64) {
        self.backlog_size.store(size.max(1), Relaxed);
        if let Some(b) = lock(&self.inner).backlog.as_mut() {
            b.cap = size.max(1) as usize;
            let over = b.buf.len().saturating_sub(b.cap);
            b.buf.drain(..over);
        }
    }

    /// Frees the backlog (`repl-backlog-ttl` after the last replica left).
    pub fn drop_backlog(&self) {
        let mut g = lock(&self.inner);
        g.backlog = None;
        if g.consumers.is_empty() && g.log.is_none() {
            self.active.store(false, Relaxed);
        }
    }

    /// The backlog's numbers, if there is one.
    pub fn backlog_info(&self) -> Option<BacklogInfo> {
        let g = lock(&self.inner);
        let b = g.backlog.as_ref()?;
        let end = self.repl_offset.load(Relaxed);
        Some(BacklogInfo {
            size: b.cap as u64,
            first_byte: end + 1 - b.buf.len() as u64,
            histlen: b.buf.len() as u64,
        })
    }

    /// Turns relaying on (this server became a replica) or off (it became
    /// a master: its own changes feed its replicas again, after a SELECT).
    pub fn set_relay(&self, on: bool) {
        let mut g = lock(&self.inner);
        g.relay = on;
        g.db = None;
    }

    /// A replica's new history (a full sync from its master): the
    /// replication offset becomes `offset`, the backlog starts empty, and
    /// the replicas attached so far are dropped (their data is another
    /// history; they come back and sync again).
    pub fn new_history(&self, offset: u64) {
        let mut g = lock(&self.inner);
        self.repl_offset.store(offset, Relaxed);
        g.backlog = Some(Backlog {
            buf: Default::default(),
            cap: self.backlog_size.load(Relaxed).max(1) as usize,
        });
        g.consumers.clear();
        g.db = None;
        self.active.store(true, Relaxed);
    }

    /// Drops every consumer (their links end: a promoted replica's
    /// replicas reconnect to learn its new replication ID).
    pub fn drop_consumers(&self) {
        let mut g = lock(&self.inner);
        g.consumers.clear();
        if g.log.is_none() && g.backlog.is_none() {
            self.active.store(false, Relaxed);
        }
    }

    /// Relays `bytes` of the master's stream, as received (whole commands
    /// or whole transactions), to the replicas and the backlog (a replica
    /// keeps one, so that it can continue its replicas after a
    /// promotion).
    pub fn feed(&self, bytes: &[u8]) {
        let mut g = lock(&self.inner);
        self.repl_offset.fetch_add(bytes.len() as u64, Relaxed);
        let cap = self.backlog_size.load(Relaxed).max(1) as usize;
        g.backlog
            .get_or_insert_with(|| Backlog {
                buf: Default::default(),
                cap,
            })
            .push(bytes);
        self.active.store(true, Relaxed);
        if !g.consumers.is_empty() {
            Self::send(&mut g, bytes.to_vec());
        }
    }

    /// Sends `bytes` (a whole command not tied to a DB, the replication
    /// PING) to the consumers only: not to the AOF.
    pub fn emit_to_consumers(&self, bytes: &[u8]) {
        let mut g = lock(&self.inner);
        if g.consumers.is_empty() {
            return;
        }
        self.repl_offset.fetch_add(bytes.len() as u64, Relaxed);
        if let Some(b) = g.backlog.as_mut() {
            b.push(bytes);
        }
        Self::send(&mut g, bytes.to_vec());
    }

    /// Appends one change: the entries (each with its DB) of one command (or
    /// of a whole transaction when `multi`), wrapped in MULTI/EXEC when
    /// there are several of them or `multi` is set.
    pub fn emit(&self, entries: &[(usize, Argv)], multi: bool) {
        if entries.is_empty() {
            return;
        }
        let wrap = multi || entries.len() > 1;
        self.append(|buf, cur| {
            if wrap {
                // MULTI is not DB-specific, but Redis selects first; keep the
                // SELECT outside the block so a replayed block stays whole.
                let first = entries[0].0;
                if *cur != Some(first) {
                    select(buf, first);
                    *cur = Some(first);
                }
                encode(buf, &[b"MULTI".as_slice()]);
            }
            for (edb, argv) in entries {
                if *cur != Some(*edb) {
                    select(buf, *edb);
                    *cur = Some(*edb);
                }
                encode(buf, argv);
            }
            if wrap {
                encode(buf, &[b"EXEC".as_slice()]);
            }
        });
    }

    /// Appends one command line in DB `db` (the common case: a command
    /// propagated as itself; nothing is copied but into the log).
    pub fn emit_one<A: AsRef<[u8]>>(&self, db: usize, argv: &[A]) {
        self.append(|buf, cur| {
            if *cur != Some(db) {
                select(buf, db);
                *cur = Some(db);
            }
            encode(buf, argv);
        });
    }

    /// Appends `DEL key` in DB `db` (expiry, migration, eviction).
    pub fn emit_del(&self, db: usize, key: &[u8]) {
        self.emit_one(db, &[b"DEL".as_slice(), key]);
    }

    /// Encodes one message (`write` gets the buffer and the consumers'
    /// current DB) into the log and to every consumer.
    fn append(&self, write: impl FnOnce(&mut Vec<u8>, &mut Option<usize>)) {
        let mut guard = lock(&self.inner);
        let g = &mut *guard;
        if g.relay || (g.consumers.is_empty() && g.backlog.is_none()) {
            let Some(log) = g.log.as_mut() else {
                return;
            };
            let before = log.buf.len();
            log.annotate();
            write(&mut log.buf, &mut g.db);
            self.offset
                .fetch_add((log.buf.len() - before) as u64, Relaxed);
            drop(guard);
            self.waker.wake();
            return;
        }
        let mut buf = Vec::with_capacity(64);
        write(&mut buf, &mut g.db);
        self.repl_offset.fetch_add(buf.len() as u64, Relaxed);
        if let Some(b) = g.backlog.as_mut() {
            b.push(&buf);
        }
        let logged = if let Some(log) = g.log.as_mut() {
            let before = log.buf.len();
            log.annotate();
            log.buf.extend_from_slice(&buf);
            self.offset
                .fetch_add((log.buf.len() - before) as u64, Relaxed);
            true
        } else {
            false
        };
        if !g.consumers.is_empty() {
            Self::send(g, buf);
        }
        // (The backlog keeps the stream on with no replica attached, as
        // Redis' does: a replica coming back resumes from it.)
        if g.consumers.is_empty() && g.log.is_none() && g.backlog.is_none() {
            self.active.store(false, Relaxed);
        }
        drop(guard);
        if logged {
            self.waker.wake();
        }
    }

    fn send(g: &mut Inner, buf: Vec<u8>) {
        if g.consumers.len() == 1 {
            if !g.consumers[0].send(buf) {
                g.consumers.clear();
            }
            return;
        }
        g.consumers.retain(|c| c.send(buf.clone()));
    }

    /// Bytes ever appended to the log (the position a connection waits
    /// for under `appendfsync always`).
    #[inline]
    pub fn offset(&self) -> u64 {
        self.offset.load(Relaxed)
    }

    /// Starts the log (the first entry selects its DB). Call while no
    /// change can happen (every slot locked) for a point-in-time start.
    pub fn log_start(&self, timestamps: bool) {
        let mut g = lock(&self.inner);
        g.log = Some(Log::new(timestamps));
        g.db = None;
        self.active.store(true, Relaxed);
    }

    /// Stops the log; returns what the writer had not taken (and a switch
    /// it had not seen).
    pub fn log_stop(&self) -> Option<Log> {
        let mut g = lock(&self.inner);
        let log = g.log.take();
        if g.consumers.is_empty() && g.backlog.is_none() {
            self.active.store(false, Relaxed);
        }
        log
    }

    /// The writer's take: the pending switch (if any) and the bytes after
    /// it, and the offset they reach. `None` when the log is off.
    pub fn log_take(&self, keep: &mut Vec<u8>) -> Option<(Option<Switch>, u64)> {
        let mut g = lock(&self.inner);
        let log = g.log.as_mut()?;
        let switch = log.switch.take();
        // Hand the writer's emptied buffer back to the log (no allocation
        // per take once both have grown).
        keep.clear();
        std::mem::swap(keep, &mut log.buf);
        Some((switch, self.offset.load(Relaxed)))
    }

    /// Whether the log holds bytes the writer has not taken.
    pub fn log_pending(&self) -> bool {
        lock(&self.inner)
            .log
            .as_ref()
            .is_some_and(|l| !l.buf.is_empty() || l.switch.is_some())
    }

    /// Moves every later byte to `file` (an AOF rewrite's new INCR): what
    /// was appended so far stays for the old file. Call while every slot
    /// is locked, so the switch is one point in the stream. Nothing happens
    /// when the log is off.
    pub fn log_switch(&self, file: std::fs::File, name: String) {
        let mut guard = lock(&self.inner);
        let g = &mut *guard;
        let Some(log) = g.log.as_mut() else {
            return;
        };
        let mut before = std::mem::take(&mut log.buf);
        if let Some(old) = log.switch.take() {
            // The writer has not seen the previous switch: its file gets
            // nothing of its own.
            let mut all = old.before;
            all.append(&mut before);
            before = all;
        }
        log.switch = Some(Switch { before, file, name });
        // A new file starts with a SELECT, and its own annotation.
        g.db = None;
        log.last_ts = 0;
        drop(guard);
        self.waker.wake();
    }

    /// `aof-timestamp-enabled` at run time.
    pub fn set_timestamps(&self, on: bool) {
        if let Some(log) = lock(&self.inner).log.as_mut() {
            log.timestamps = on;
        }
    }
}

fn select(buf: &mut Vec<u8>, db: usize) {
    let mut b = itoa::Buffer::new();
    encode(buf, &[b"SELECT".as_slice(), b.format(db).as_bytes()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Argv {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn selects_and_wraps() {
        let s = Stream::default();
        assert!(!s.active());
        let mut rx = s.subscribe();
        assert!(s.active());
        s.emit(&[(0, argv(&["SET", "a", "1"]))], false);
        s.emit(&[(0, argv(&["INCR", "a"]))], false);
        s.emit(
            &[(1, argv(&["LPOP", "l"])), (1, argv(&["DEL", "x"]))],
            false,
        );
        s.emit_del(1, b"k");
        let got: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n",
                "*2\r\n$4\r\nINCR\r\n$1\r\na\r\n",
                "*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nLPOP\r\n$1\r\nl\r\n*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n*1\r\n$4\r\nEXEC\r\n",
                "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n",
            ]
        );
        drop(rx);
        s.emit(&[(0, argv(&["SET", "a", "1"]))], false);
        assert!(!s.active());
    }

    #[test]
    fn lazy_and_active_expiry_propagate_del() {
        let mut h = crate::testkit::Harness::new();
        h.run("SET a 1");
        h.run("PEXPIRE a 100");
        h.run("SET b 1");
        h.run("PEXPIRE b 100");
        h.capture();
        h.now += 200;
        assert_eq!(h.run("GET a"), "$-1\r\n");
        // A read that expired a key propagates its DEL, nothing else.
        assert_eq!(h.propagated(), ["SELECT 0", "DEL a"]);
        h.srv
            .ks
            .active_expire(h.now, std::time::Duration::from_millis(50));
        assert_eq!(h.propagated(), ["DEL b"]);
    }
}
