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
//! The stream keeps one byte log for the AOF ([`Log`]): entries are
//! encoded straight into it under the stream's lock (no allocation per
//! command), its writer thread takes the bytes in bulk, and `offset`
//! counts every byte ever appended, so a connection can wait until what it
//! changed is on disk (`appendfsync always`).
//!
//! The replication stream is one shared buffer (Redis 7.0's): each entry is
//! encoded into it once; every replica link is a [`Reader`] that copies out
//! what it has not taken, from its own offset; the backlog is the buffer's
//! last `repl-backlog-size` bytes, kept with no replica until
//! `repl-backlog-ttl`, so a replica coming back continues from its offset
//! (repl/). `repl_offset` counts the stream's bytes (Redis'
//! `master_repl_offset`).
//!
//! On a replica the stream relays: the bytes its master sent, as received
//! ([`Stream::feed`]), go to its replicas and backlog, so a chained
//! replica and a promotion keep the master's offsets (PSYNC2); what the
//! replica's own executions append goes to its AOF only.
//!
//! Cost: with no consumer, no log and no backlog the gate reads one atomic
//! and skips all of it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};

use crate::config::ClientBufferLimit;

thread_local! {
    /// Set while a replica runs a command of its master's stream: what it
    /// propagates goes to the AOF only, the stream's own bytes are relayed
    /// ([`Stream::feed`]).
    static RELAYED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread's command as one of our master's stream (see
/// [`RELAYED`]) for as long as the guard lives.
pub struct Relayed(bool);

impl Relayed {
    pub fn enter() -> Relayed {
        Relayed(RELAYED.with(|c| c.replace(true)))
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        RELAYED.with(|c| c.set(self.0));
    }
}

/// One entry: the command line to propagate.
pub type Argv = Vec<Vec<u8>>;

/// Targets of an entry ([`Stream::emit_to`]): the AOF, the replicas
/// (bit values as Redis' `PROPAGATE_AOF` / `PROPAGATE_REPL` and the
/// script flags `REPL_AOF` / `REPL_REPLICA`).
pub const TO_LOG: u8 = 1;
pub const TO_REPL: u8 = 2;
pub const TO_ALL: u8 = TO_LOG | TO_REPL;

#[derive(Default)]
struct Inner {
    /// The DB the log's consumer is in (`None` until the first entry).
    log_db: Option<usize>,
    /// The DB the replication buffer's consumers are in. The two differ
    /// only after an entry for one target alone (a script's
    /// `redis.set_repl`); while equal, an entry is encoded once for both.
    repl_db: Option<usize>,
    log: Option<Log>,
    /// The replication buffer: the backlog and what readers have not taken.
    repl: ReplBuf,
    /// A replica relays its master's stream ([`Stream::feed`]) to its own
    /// replicas and backlog: what it changes itself goes to the log only.
    relay: bool,
}

impl Inner {
    /// The next entry of either target starts with a SELECT.
    fn reselect(&mut self) {
        self.log_db = None;
        self.repl_db = None;
    }
}

/// The replication stream's bytes, shared by the backlog and every reader
/// (Redis 7.0's shared replication buffer): appended once, read by each
/// replica link from its own offset. Keeps the last `cap` bytes while the
/// backlog exists, and whatever the slowest reader has not taken. Held in
/// blocks of about [`BLOCK`] bytes, so trimming drops whole blocks (no
/// copy, whatever `repl-backlog-size` is) and a reader finds its offset by
/// binary search.
#[derive(Default)]
struct ReplBuf {
    /// (stream offset of the block's first byte, bytes).
    blocks: std::collections::VecDeque<(u64, Vec<u8>)>,
    /// Stream offset of the first byte kept (in `blocks[0]`).
    start: u64,
    /// Stream offset after the last byte.
    end: u64,
    readers: Vec<Arc<ReaderState>>,
    /// Whether the backlog exists (created with the first replica).
    backlog: bool,
    cap: usize,
}

/// A replication buffer block's size (a block only takes appends while it
/// is smaller; one command may make it larger).
const BLOCK: usize = 64 * 1024;

impl ReplBuf {
    fn end(&self) -> u64 {
        self.end
    }

    /// Bytes of backlog (Redis' `repl_backlog_histlen`).
    fn histlen(&self) -> u64 {
        if !self.backlog {
            return 0;
        }
        (self.end - self.start).min(self.cap as u64)
    }

    /// The block appends go to (a new one once the last is full).
    fn tail(&mut self) -> &mut Vec<u8> {
        if self.blocks.back().is_none_or(|(_, b)| b.len() >= BLOCK) {
            self.blocks
                .push_back((self.end, Vec::with_capacity(BLOCK + 512)));
        }
        &mut self.blocks.back_mut().expect("a block").1
    }

    /// Appends `bytes` (already encoded elsewhere).
    fn push(&mut self, bytes: &[u8]) {
        self.tail().extend_from_slice(bytes);
        self.end += bytes.len() as u64;
    }

    /// Copies up to `max` bytes from stream offset `from` into `out`.
    fn copy(&self, from: u64, out: &mut Vec<u8>, max: usize) -> usize {
        let mut i = self
            .blocks
            .partition_point(|(off, _)| *off <= from)
            .saturating_sub(1);
        let mut at = from;
        let mut n = 0;
        while n < max && i < self.blocks.len() {
            let (off, b) = &self.blocks[i];
            let skip = (at - off) as usize;
            let take = (b.len() - skip.min(b.len())).min(max - n);
            out.extend_from_slice(&b[skip..skip + take]);
            n += take;
            at += take as u64;
            i += 1;
        }
        n
    }

    /// After an append: wakes the readers, holds each to its limit, and
    /// drops what neither the backlog nor any reader needs.
    fn appended(&mut self, l: &ClientBufferLimit) {
        let limit = match (l.hard_bytes, l.soft_bytes) {
            (0, 0) => u64::MAX,
            (0, s) => s,
            (h, 0) => h,
            (h, s) => h.min(s),
        };
        let end = self.end;
        let mut keep_from = if self.backlog {
            end.saturating_sub(self.cap as u64)
        } else {
            end
        };
        // A reader whose link ended (its handle dropped) goes.
        self.readers.retain(|r| Arc::strong_count(r) > 1);
        for r in &self.readers {
            let next = r.next.load(Relaxed);
            keep_from = keep_from.min(next);
            let pending = end - next;
            // Checked past the smaller limit, and once more when back
            // under it (the soft limit's clock stops).
            let over = pending > limit;
            if (over || r.flagged.load(Relaxed))
                && let Some(check) = &r.check
            {
                check(pending as usize, l);
                r.flagged.store(over, Relaxed);
            }
            r.wake.notify_one();
        }
        if keep_from > self.start {
            self.start = keep_from;
            // Whole blocks before it go; the last block stays (appends).
            while self.blocks.len() > 1 && self.blocks[1].0 <= keep_from {
                self.blocks.pop_front();
            }
            if self.blocks.len() == 1 && keep_from == end {
                // Nothing kept: the tail block starts over.
                self.blocks[0].0 = end;
                self.blocks[0].1.clear();
            }
        }
    }

    /// A new history at `offset`: nothing kept, no reader.
    fn reset(&mut self, offset: u64) {
        self.clear_readers();
        self.blocks.clear();
        self.start = offset;
        self.end = offset;
    }

    fn clear_readers(&mut self) {
        for r in self.readers.drain(..) {
            r.closed.store(true, Relaxed);
            r.wake.notify_one();
        }
    }
}

/// Told the bytes a reader has not taken and the replica class' limits,
/// when they pass the smaller one (its output-buffer limit). Runs under
/// the stream's lock: it must take no other lock.
pub type QueueCheck = Box<dyn Fn(usize, &ClientBufferLimit) + Send + Sync>;

/// A reader's state, shared by the stream and its link.
pub struct ReaderState {
    /// Bytes of the stream it has taken (the offset of its next byte).
    next: AtomicU64,
    wake: tokio::sync::Notify,
    /// Set when the stream drops it (a new history, a promotion).
    closed: AtomicBool,
    /// Its check ran past the limit (it runs again once back under).
    flagged: AtomicBool,
    check: Option<QueueCheck>,
}

/// A replica link's end of the stream: [`Stream::read`] copies out what
/// it has not taken; [`Reader::changed`] waits for more.
pub struct Reader(Arc<ReaderState>);

impl Reader {
    /// Completes when bytes were appended since the last read (or the
    /// reader was dropped by the stream).
    pub async fn changed(&self) {
        self.0.wake.notified().await
    }

    /// The stream offset of its next byte.
    pub fn offset(&self) -> u64 {
        self.0.next.load(Relaxed)
    }
}

/// INFO replication's backlog fields.
pub struct BacklogInfo {
    pub size: u64,
    /// Offset of its first byte (1-based, as Redis counts).
    pub first_byte: u64,
    pub histlen: u64,
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
    /// The replica class of `client-output-buffer-limit` (hard bytes, soft
    /// bytes, soft seconds), for the readers' checks (atomics: the checks
    /// run under the stream's lock and read no configuration).
    limit_hard: AtomicU64,
    limit_soft: AtomicU64,
    limit_secs: AtomicU64,
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

    /// Adds a reader at the current end of the stream: it receives every
    /// change from now on, the first after a `SELECT` (for a relayed
    /// stream, the snapshot's `repl-stream-db` says the DB). Returns it
    /// with its offset. `check` is told when it falls behind (its
    /// output-buffer limit).
    pub fn subscribe(&self, check: Option<QueueCheck>) -> (Reader, u64) {
        let mut g = lock(&self.inner);
        if check.is_some() && !g.repl.backlog {
            // The first replica: the backlog starts here.
            g.repl.backlog = true;
            g.repl.cap = self.backlog_size.load(Relaxed).max(1) as usize;
        }
        let end = g.repl.end();
        let r = Arc::new(ReaderState {
            next: AtomicU64::new(end),
            wake: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            flagged: AtomicBool::new(false),
            check,
        });
        g.repl.readers.push(r.clone());
        if !g.relay {
            g.reselect();
        }
        self.active.store(true, Relaxed);
        (Reader(r), end)
    }

    /// The replication offset: bytes ever sent to the consumers.
    pub fn repl_offset(&self) -> u64 {
        self.repl_offset.load(Relaxed)
    }

    /// A continuing replica (PSYNC2's partial resynchronization): if the
    /// backlog still holds every byte from offset `from` (1-based: the
    /// first byte the replica lacks), a reader that starts there.
    pub fn subscribe_continue(&self, from: u64, check: QueueCheck) -> Option<Reader> {
        let mut g = lock(&self.inner);
        if !g.repl.backlog {
            return None;
        }
        let end = g.repl.end();
        let first = end + 1 - g.repl.histlen();
        if from < first || from > end + 1 {
            return None;
        }
        let r = Arc::new(ReaderState {
            next: AtomicU64::new(from - 1),
            wake: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            flagged: AtomicBool::new(false),
            check: Some(check),
        });
        // No SELECT is forced: the replica's DB is the stream's at `end`.
        g.repl.readers.push(r.clone());
        r.wake.notify_one();
        self.active.store(true, Relaxed);
        Some(Reader(r))
    }

    /// Copies up to `max` bytes the reader has not taken into `out`:
    /// `None` once the stream dropped it.
    pub fn read(&self, r: &Reader, out: &mut Vec<u8>, max: usize) -> Option<usize> {
        let g = lock(&self.inner);
        if r.0.closed.load(Relaxed) {
            return None;
        }
        let next = r.0.next.load(Relaxed);
        if next < g.repl.start {
            // (Cannot happen: a reader pins what it has not taken.)
            return None;
        }
        let n = g.repl.copy(next, out, max);
        r.0.next.store(next + n as u64, Relaxed);
        Some(n)
    }

    /// The replica class' output limits, for the readers' checks.
    pub fn set_reader_limit(&self, l: &ClientBufferLimit) {
        self.limit_hard.store(l.hard_bytes, Relaxed);
        self.limit_soft.store(l.soft_bytes, Relaxed);
        self.limit_secs.store(l.soft_seconds.max(0) as u64, Relaxed);
    }

    /// `repl-backlog-size`: applies now to the backlog (which keeps its
    /// newest bytes) and to one created later.
    pub fn set_backlog_size(&self, size: u64) {
        self.backlog_size.store(size.max(1), Relaxed);
        let mut g = lock(&self.inner);
        g.repl.cap = size.max(1) as usize;
        let limit = self.limit();
        g.repl.appended(&limit);
    }

    fn limit(&self) -> ClientBufferLimit {
        ClientBufferLimit {
            hard_bytes: self.limit_hard.load(Relaxed),
            soft_bytes: self.limit_soft.load(Relaxed),
            soft_seconds: self.limit_secs.load(Relaxed) as i64,
        }
    }

    /// Frees the backlog (`repl-backlog-ttl` after the last replica left).
    pub fn drop_backlog(&self) {
        let mut g = lock(&self.inner);
        g.repl.backlog = false;
        let limit = self.limit();
        g.repl.appended(&limit);
        if g.repl.readers.is_empty() && g.log.is_none() {
            self.active.store(false, Relaxed);
        }
    }

    /// The backlog's numbers, if there is one.
    pub fn backlog_info(&self) -> Option<BacklogInfo> {
        let g = lock(&self.inner);
        if !g.repl.backlog {
            return None;
        }
        let end = g.repl.end();
        let histlen = g.repl.histlen();
        Some(BacklogInfo {
            size: g.repl.cap as u64,
            first_byte: end + 1 - histlen,
            histlen,
        })
    }

    /// Bytes the replication buffer holds beyond `repl-backlog-size`
    /// (what slow replicas have not taken yet): Redis leaves them out of
    /// the comparison with maxmemory.
    pub fn replica_excess_bytes(&self) -> u64 {
        let (held, backlog) = self.repl_buffer_bytes();
        held.saturating_sub(backlog)
    }

    /// Bytes the replication buffer holds, and the backlog's share of
    /// them (INFO `mem_total_replication_buffers`, `mem_replication_backlog`).
    pub fn repl_buffer_bytes(&self) -> (u64, u64) {
        let g = lock(&self.inner);
        let held = g.repl.end() - g.repl.start;
        let backlog = if g.repl.backlog { g.repl.cap as u64 } else { 0 };
        (held, held.min(backlog))
    }

    /// Turns relaying on (this server became a replica) or off (it became
    /// a master: its own changes feed its replicas again, after a SELECT).
    pub fn set_relay(&self, on: bool) {
        let mut g = lock(&self.inner);
        g.relay = on;
        g.reselect();
    }

    /// A replica's new history (a full sync from its master): the
    /// replication offset becomes `offset`, the backlog starts empty, and
    /// the replicas attached so far are dropped (their data is another
    /// history; they come back and sync again).
    pub fn new_history(&self, offset: u64) {
        let mut g = lock(&self.inner);
        self.repl_offset.store(offset, Relaxed);
        g.repl.reset(offset);
        g.repl.backlog = true;
        g.repl.cap = self.backlog_size.load(Relaxed).max(1) as usize;
        g.reselect();
        self.active.store(true, Relaxed);
    }

    /// Drops every reader (their links end: a promoted replica's replicas
    /// reconnect to learn its new replication ID).
    pub fn drop_consumers(&self) {
        let mut g = lock(&self.inner);
        g.repl.clear_readers();
        if g.log.is_none() && !g.repl.backlog {
            self.active.store(false, Relaxed);
        }
    }

    /// Relays `bytes` of the master's stream, as received (whole commands
    /// or whole transactions), to the replicas and the backlog (a replica
    /// keeps one, so that it can continue its replicas after a
    /// promotion).
    pub fn feed(&self, bytes: &[u8]) {
        let mut g = lock(&self.inner);
        if !g.repl.backlog {
            g.repl.backlog = true;
            g.repl.cap = self.backlog_size.load(Relaxed).max(1) as usize;
        }
        g.repl.push(bytes);
        self.repl_offset.fetch_add(bytes.len() as u64, Relaxed);
        let limit = self.limit();
        g.repl.appended(&limit);
        self.active.store(true, Relaxed);
    }

    /// Sends `bytes` (a whole command not tied to a DB: the replication
    /// PING, REPLCONF GETACK) to the replicas only: not to the AOF.
    pub fn emit_to_consumers(&self, bytes: &[u8]) {
        let mut g = lock(&self.inner);
        // (A replica relays its master's stream and adds nothing to it.)
        if g.repl.readers.is_empty() || g.relay {
            return;
        }
        g.repl.push(bytes);
        self.repl_offset.fetch_add(bytes.len() as u64, Relaxed);
        let limit = self.limit();
        g.repl.appended(&limit);
    }

    /// Appends one change: the entries (each with its DB) of one command (or
    /// of a whole transaction when `multi`), wrapped in MULTI/EXEC when
    /// there are several of them or `multi` is set.
    pub fn emit(&self, entries: &[(usize, Argv)], multi: bool) {
        self.emit_to(entries, multi, TO_ALL);
    }

    /// [`Stream::emit`] for some entries going to one target only:
    /// `targets` lists (index in `entries`, [`TO_LOG`] or [`TO_REPL`] bits)
    /// for those (the others go to both). Each target gets its entries as
    /// one change.
    pub fn emit_split(&self, entries: &[(usize, Argv)], targets: &[(usize, u8)], multi: bool) {
        if targets.is_empty() {
            return self.emit(entries, multi);
        }
        for to in [TO_LOG, TO_REPL] {
            let part: Vec<(usize, Argv)> = entries
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    targets
                        .iter()
                        .find(|(j, _)| j == i)
                        .is_none_or(|&(_, t)| t & to != 0)
                })
                .map(|(_, e)| e.clone())
                .collect();
            self.emit_to(&part, multi, to);
        }
    }

    /// [`Stream::emit`] to the targets `to` ([`TO_LOG`], [`TO_REPL`]).
    pub fn emit_to(&self, entries: &[(usize, Argv)], multi: bool, to: u8) {
        if entries.is_empty() {
            return;
        }
        let wrap = multi || entries.len() > 1;
        self.append(to, |buf, cur| {
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
        self.append(TO_ALL, |buf, cur| {
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

    /// Encodes one message (`write` gets the buffer and its consumers'
    /// current DB) into the log and the replication buffer, or those of
    /// them in `to`.
    fn append(&self, to: u8, write: impl Fn(&mut Vec<u8>, &mut Option<usize>)) {
        let mut guard = lock(&self.inner);
        let g = &mut *guard;
        if to & TO_REPL == 0
            || g.relay
            || (g.repl.readers.is_empty() && !g.repl.backlog)
            || RELAYED.with(|c| c.get())
        {
            let Some(log) = g.log.as_mut().filter(|_| to & TO_LOG != 0) else {
                return;
            };
            let before = log.buf.len();
            log.annotate();
            write(&mut log.buf, &mut g.log_db);
            self.offset
                .fetch_add((log.buf.len() - before) as u64, Relaxed);
            drop(guard);
            self.waker.wake();
            return;
        }
        let Inner {
            log_db,
            repl_db,
            log,
            repl,
            ..
        } = g;
        let buf = repl.tail();
        let before = buf.len();
        let same_db = *log_db == *repl_db;
        write(buf, repl_db);
        let n = buf.len() - before;
        let logged = if let Some(log) = log.as_mut().filter(|_| to & TO_LOG != 0) {
            let lb = log.buf.len();
            log.annotate();
            if same_db {
                // Encoded once, straight into the shared buffer.
                log.buf.extend_from_slice(&buf[before..]);
                *log_db = *repl_db;
            } else {
                write(&mut log.buf, log_db);
            }
            self.offset.fetch_add((log.buf.len() - lb) as u64, Relaxed);
            true
        } else {
            false
        };
        repl.end += n as u64;
        self.repl_offset.fetch_add(n as u64, Relaxed);
        let limit = self.limit();
        g.repl.appended(&limit);
        // (The backlog keeps the stream on with no replica attached, as
        // Redis' does: a replica coming back resumes from it.)
        if g.repl.readers.is_empty() && !g.repl.backlog && g.log.is_none() {
            self.active.store(false, Relaxed);
        }
        drop(guard);
        if logged {
            self.waker.wake();
        }
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
        g.reselect();
        self.active.store(true, Relaxed);
    }

    /// Stops the log; returns what the writer had not taken (and a switch
    /// it had not seen).
    pub fn log_stop(&self) -> Option<Log> {
        let mut g = lock(&self.inner);
        let log = g.log.take();
        if g.repl.readers.is_empty() && !g.repl.backlog {
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
        g.log_db = None;
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
        let (rx, _) = s.subscribe(None);
        assert!(s.active());
        s.emit(&[(0, argv(&["SET", "a", "1"]))], false);
        s.emit(&[(0, argv(&["INCR", "a"]))], false);
        s.emit(
            &[(1, argv(&["LPOP", "l"])), (1, argv(&["DEL", "x"]))],
            false,
        );
        s.emit_del(1, b"k");
        let mut got = Vec::new();
        assert_eq!(s.read(&rx, &mut got, 1 << 20), Some(got.len()));
        assert_eq!(s.repl_offset(), got.len() as u64);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            [
                "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n",
                "*2\r\n$4\r\nINCR\r\n$1\r\na\r\n",
                "*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nLPOP\r\n$1\r\nl\r\n*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n*1\r\n$4\r\nEXEC\r\n",
                "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n",
            ]
            .concat()
        );
        // Nothing more to take; what was taken is not kept (no backlog).
        assert_eq!(s.read(&rx, &mut Vec::new(), 1 << 20), Some(0));
        drop(rx);
        s.emit(&[(0, argv(&["SET", "a", "1"]))], false);
        assert!(!s.active());
    }

    /// The shared buffer across many blocks: a reader taking small pieces
    /// gets every byte in order; the backlog keeps its last `cap` bytes
    /// (continuing inside it works, before it does not); what nobody
    /// needs is dropped.
    #[test]
    fn shared_buffer_blocks_backlog_and_readers() {
        let s = Stream::default();
        s.set_backlog_size(100_000);
        let (rx, start) = s.subscribe(Some(Box::new(|_, _| {})));
        assert_eq!(start, 0);
        let mut want = Vec::new();
        let mut got = Vec::new();
        for i in 0..20_000u32 {
            let v = format!("value-{i}-{}", "x".repeat((i % 50) as usize));
            s.emit_one(0, &[b"SET".as_slice(), b"k", v.as_bytes()]);
            if i == 0 {
                select(&mut want, 0);
            }
            encode(&mut want, &[b"SET".as_slice(), b"k", v.as_bytes()]);
            if i % 7 == 0 {
                s.read(&rx, &mut got, 1000);
            }
        }
        while s.read(&rx, &mut got, 777) != Some(0) {}
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes differ");
        assert_eq!(s.repl_offset(), want.len() as u64);
        let info = s.backlog_info().unwrap();
        assert_eq!(info.histlen, 100_000);
        assert_eq!(info.first_byte, want.len() as u64 - 100_000 + 1);
        // Nothing beyond the backlog is kept (the reader took it all).
        {
            let g = lock(&s.inner);
            let kept: usize = g.repl.blocks.iter().map(|(_, b)| b.len()).sum();
            assert!(kept < 100_000 + 2 * BLOCK, "kept {kept}");
        }
        // Continuing inside the backlog gets exactly what follows.
        let from = want.len() as u64 - 5000 + 1;
        let r2 = s.subscribe_continue(from, Box::new(|_, _| {})).unwrap();
        let mut tail = Vec::new();
        s.read(&r2, &mut tail, 1 << 20);
        assert!(tail == want[want.len() - 5000..], "the continued bytes");
        assert!(
            s.subscribe_continue(info.first_byte - 1, Box::new(|_, _| {}))
                .is_none()
        );
        assert!(
            s.subscribe_continue(info.first_byte, Box::new(|_, _| {}))
                .is_some()
        );
        // A new history drops every reader.
        s.new_history(7);
        assert_eq!(s.read(&rx, &mut Vec::new(), 10), None);
        assert_eq!(s.repl_offset(), 7);
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
