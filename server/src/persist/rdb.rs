//! The RDB file of this server: the snapshot writer (a `db::SlotSaver`
//! that appends each slot's keys to one temp file as the snapshot reaches
//! it, then EOF + CRC-64, fsync, rename over `dbfilename`, fsync of the
//! directory) and the start-up loader (any version 1–10 file through
//! `protocol::rdb::file` and the value codec). Mirrors Redis 7.0.15's
//! `rdbSave` / `rdbLoad` file handling and log lines.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use protocol::rdb::file::{self, FileError, FileReader, Item};
use protocol::rdb::lzf::Compressor;

use crate::codec;
use crate::db::{KeyAccess, SlotSaver, now_ms};
use crate::server::Server;
use crate::{notice, warning};

/// A failure, already logged in Redis' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged;

/// Output is written to the file once this much is buffered.
const FLUSH_BYTES: usize = 1 << 20;
/// `rdb-save-incremental-fsync`: fdatasync every this many bytes written
/// (Redis' `REDIS_AUTOSYNC_BYTES`).
const AUTOSYNC_BYTES: u64 = 4 << 20;

type Digest = crc::Digest<'static, u64, crc::Table<16>>;

fn digest() -> Digest {
    static CRC: crc::Crc<u64, crc::Table<16>> =
        crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);
    CRC.digest()
}

/// The snapshot's serialized bytes not yet in the file, shared by the
/// walker and by the client threads whose first touch of a slot writes it
/// out. Only the walker writes the file, between slots and holding no lock:
/// a client never waits for the disk (a write() can stall behind an fsync or
/// dirty-page throttling for hundreds of ms).
struct Sink {
    out: Mutex<Out>,
    compress: bool,
    /// An AOF base without the RDB preamble: keys as commands.
    commands: bool,
    keys: AtomicU64,
    /// Cleared when the job ends: deferred values left behind by an
    /// abandoned snapshot are then dropped, not written.
    live: std::sync::atomic::AtomicBool,
    /// The LRU clock at the start, when `maxmemory-policy` is an LRU one:
    /// keys get their IDLE time, as Redis writes it for those policies.
    lru_now: Option<u32>,
    /// The LFU minute clock of the save, when keys get their FREQ (RDB
    /// form under an LFU policy).
    lfu_now: Option<u32>,
    /// The compact-encoding limits (`*-max-listpack-*`, intset) values are
    /// written under, as Redis 7.0 writes them.
    thresholds: codec::Thresholds,
}

/// Whether keys carry their idle time in the file (Redis writes IDLE under
/// the LRU policies, FREQ under the LFU ones).
fn lru_policy(srv: &Server) -> bool {
    use crate::config::MaxmemoryPolicy as P;
    matches!(
        srv.config().maxmemory_policy,
        P::AllkeysLru | P::VolatileLru
    )
}

/// Seconds since `lru` on the 24-bit clock `now` (Redis'
/// `estimateObjectIdleTime`, wrapping).
fn idle_secs(now: u32, lru: u32) -> u64 {
    if now >= lru {
        u64::from(now - lru)
    } else {
        u64::from(now) + u64::from(0xff_ffff - lru)
    }
}

/// The 24-bit clock value of a key idle for `secs` (Redis'
/// `objectSetLRUOrLFU`).
fn lru_of_idle(now: u32, secs: u64) -> u32 {
    let secs = (secs & 0xff_ffff) as u32;
    if secs <= now {
        now - secs
    } else {
        0xff_ffff - (secs - now)
    }
}

/// A big value the walker is writing in slices.
struct Big {
    db: usize,
    key: Box<[u8]>,
    slicer: codec::FileSlicer,
}

/// Values with more elements (or string bytes) than this are deferred:
/// written by the walker a slice per slot lock, not with their slot.
const BIG_ELEMENTS: usize = 16 * 1024;
const BIG_STRING: usize = 1 << 20;

fn is_big(v: crate::db::ValueRef<'_>) -> bool {
    match codec::str_bytes(v) {
        Some(s) => s.len() > BIG_STRING,
        None => codec::len(v) > BIG_ELEMENTS,
    }
}

struct Out {
    /// Serialized bytes in order; a big slot's bytes are moved in as one
    /// chunk of their own (never copied).
    chunks: Vec<Vec<u8>>,
    pending: usize,
    db: Option<usize>,
    /// Per DB: (keys, keys with an expiry) at the snapshot point, and
    /// whether its RESIZEDB has been written.
    sizes: Vec<(u64, u64, bool)>,
    /// Bytes that go to the file before `chunks`: the queue as it was when
    /// a big value's record started, then that record's slices. While the
    /// record is incomplete (`big`), `chunks` waits behind it.
    ahead: Vec<Vec<u8>>,
    big: Option<Big>,
}

/// How long the walker runs between two offers of the core to clients.
const YIELD_EVERY: std::time::Duration = std::time::Duration::from_micros(500);

/// A slot's serialization past this size is handed over as its own chunk.
const MOVE_BYTES: usize = 64 * 1024;

impl Out {
    /// Whether the big record in progress is `key`'s of DB `db`.
    fn writing(&self, db: usize, key: &[u8]) -> bool {
        self.big
            .as_ref()
            .is_some_and(|b| b.db == db && *b.key == *key)
    }

    /// SELECTDB (and the DB's RESIZEDB, once) when the queue is not in `db`.
    fn select(&mut self, db: usize, commands: bool, head: &mut Vec<u8>) {
        if self.db == Some(db) {
            return;
        }
        if commands {
            let mut ib = itoa::Buffer::new();
            crate::propagate::encode(head, &[b"SELECT".as_slice(), ib.format(db).as_bytes()]);
        } else {
            file::write_select_db(head, db as u64);
            if let Some(sz) = self.sizes.get_mut(db)
                && !sz.2
            {
                sz.2 = true;
                file::write_resize_db(head, sz.0, sz.1);
            }
        }
        self.db = Some(db);
    }

    /// The chunk small appends go to.
    fn tail(&mut self) -> &mut Vec<u8> {
        if self.chunks.last().is_none_or(|c| c.len() >= FLUSH_BYTES) {
            self.chunks
                .push(Vec::with_capacity(FLUSH_BYTES + MOVE_BYTES));
        }
        let last = self.chunks.len() - 1;
        &mut self.chunks[last]
    }
}

impl Sink {
    /// Takes the buffered chunks when they hold at least `min` bytes.
    fn take(&self, min: usize) -> Option<Vec<Vec<u8>>> {
        let mut o = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::mem::take(&mut o.ahead);
        if o.big.is_none() && o.pending >= min.max(1) {
            o.pending = 0;
            out.append(&mut o.chunks);
        }
        (!out.is_empty()).then_some(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next slice (or, `last`, the rest) of the big record in progress,
    /// serialized without the queue's lock: clients' keys go on queueing
    /// behind the record, and the slot lock the caller holds keeps
    /// everyone else off it. True once the record is complete.
    fn big_step(&self, e: &crate::db::Entry, last: bool) -> bool {
        let mut slicer = self
            .lock()
            .big
            .as_mut()
            .map(|b| std::mem::take(&mut b.slicer))
            .unwrap_or_default();
        let mut buf = Vec::with_capacity(if last { 0 } else { 80 * 1024 });
        let done = SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let lzf = self.compress.then_some(&mut s.lzf);
            slicer.step(
                &mut buf,
                e.key(),
                e.value(),
                e.expire(),
                self.commands,
                lzf,
                last,
            )
        }) || last;
        let mut o = self.lock();
        o.ahead.push(buf);
        if done {
            o.big = None;
            self.keys.fetch_add(1, Relaxed);
        } else if let Some(b) = o.big.as_mut() {
            b.slicer = slicer;
        }
        done
    }
}

/// The file end: only the walker's thread touches it.
struct FileOut {
    target: Target,
    crc: Option<Digest>,
    written: u64,
    synced: u64,
    incremental_fsync: bool,
    error: Option<std::io::Error>,
}

/// Where a job's bytes go: its temp file, or a stream (a diskless
/// replication transfer: repl/).
enum Target {
    File(File),
    Stream(Box<dyn Write + Send>),
}

impl FileOut {
    fn write(&mut self, chunk: &[u8]) {
        if let Some(c) = self.crc.as_mut() {
            c.update(chunk);
        }
        if self.error.is_none() {
            let r = match &mut self.target {
                Target::File(f) => f.write_all(chunk),
                Target::Stream(w) => w.write_all(chunk),
            };
            if let Err(e) = r {
                self.error = Some(e);
            }
        }
        self.written += chunk.len() as u64;
        if self.incremental_fsync
            && self.written - self.synced >= AUTOSYNC_BYTES
            && let Target::File(f) = &self.target
        {
            let _ = f.sync_data();
            self.synced = self.written;
        }
    }
}

/// A thread's serialized keys not yet handed to the snapshot.
#[derive(Default)]
struct Scratch {
    buf: Vec<u8>,
    keys: u64,
    lzf: Compressor,
}

thread_local! {
    /// Per-thread serialization batch and LZF table.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Sink {
    /// A key's IDLE opcode, when the file carries idle times (RDB form
    /// under an LRU policy).
    fn idle(&self, out: &mut Vec<u8>, e: &crate::db::Entry) {
        if let Some(now) = self.lru_now
            && !self.commands
        {
            file::write_idle(out, idle_secs(now, e.lru()));
        }
        if let Some(min) = self.lfu_now
            && !self.commands
        {
            file::write_freq(out, crate::evict::lfu_decayed(e.lru(), min) as u8);
        }
    }
}

impl SlotSaver for Sink {
    fn is_big(&self, e: &crate::db::Entry) -> bool {
        is_big(e.value())
    }

    fn add(&self, e: &crate::db::Entry) -> usize {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let s = &mut *s;
            self.idle(&mut s.buf, e);
            if self.commands {
                codec::aof_commands(&mut s.buf, e.key(), e.value(), e.expire());
            } else {
                if let Some(at) = e.expire() {
                    file::write_expire_ms(&mut s.buf, at);
                }
                codec::file_value_compact(
                    &mut s.buf,
                    e.key(),
                    e.value(),
                    self.compress.then_some(&mut s.lzf),
                    &self.thresholds,
                );
            }
            s.keys += 1;
            s.buf.len()
        })
    }

    fn commit(&self, db: usize) {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let s = &mut *s;
            if s.buf.is_empty() {
                return;
            }
            let mut o = self.lock();
            let o = &mut *o;
            let mut head = Vec::with_capacity(24);
            o.select(db, self.commands, &mut head);
            if !head.is_empty() {
                o.pending += head.len();
                o.tail().extend_from_slice(&head);
            }
            o.pending += s.buf.len();
            if s.buf.len() >= MOVE_BYTES {
                o.chunks.push(std::mem::take(&mut s.buf));
            } else {
                o.tail().extend_from_slice(&s.buf);
                s.buf.clear();
            }
            self.keys.fetch_add(std::mem::take(&mut s.keys), Relaxed);
        });
    }

    fn slice_key(&self, db: usize, e: &crate::db::Entry) -> bool {
        let mut o = self.lock();
        if !o.writing(db, e.key()) {
            // The walker writes one big value at a time.
            debug_assert!(o.big.is_none());
            // Everything queued so far precedes this record; what is
            // queued after it selects its DB again.
            let o = &mut *o;
            let mut queued = std::mem::take(&mut o.chunks);
            o.pending = 0;
            o.ahead.append(&mut queued);
            o.db = None;
            let mut head = Vec::with_capacity(24);
            o.select(db, self.commands, &mut head);
            o.db = None;
            self.idle(&mut head, e);
            o.ahead.push(head);
            o.big = Some(Big {
                db,
                key: e.key().into(),
                slicer: codec::FileSlicer::default(),
            });
        }
        drop(o);
        self.big_step(e, false)
    }

    fn finish_key(&self, db: usize, e: &crate::db::Entry) {
        let o = self.lock();
        if !o.writing(db, e.key()) {
            drop(o);
            self.save_key(db, e);
            return;
        }
        // The walker's record in progress: its rest, right behind its
        // slices.
        drop(o);
        self.big_step(e, true);
    }

    fn live(&self) -> bool {
        self.live.load(Relaxed)
    }
}

/// `temp-<pid>.rdb` beside the target (the working directory, which is
/// `dir`, for a bare `dbfilename`).
fn temp_name(target: &str) -> String {
    let name = format!("temp-{}.rdb", std::process::id());
    match std::path::Path::new(target).parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join(name).display().to_string(),
        _ => name,
    }
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Where a snapshot goes and in which form.
pub struct Dest {
    /// Written first, renamed over `target` when complete.
    pub tmp: String,
    pub target: String,
    /// An AOF base: the `aof-base` AUX field is 1 (RDB form), or the keys
    /// are written as commands (`commands`, `aof-use-rdb-preamble no`).
    pub aof_base: bool,
    pub commands: bool,
    /// `fsync` the file every 4 MiB as it is written.
    pub incremental_fsync: bool,
}

impl Dest {
    /// `dbfilename` (BGSAVE, SAVE).
    pub fn rdb(srv: &Server) -> Dest {
        let c = srv.config();
        Dest {
            tmp: temp_name(&c.dbfilename),
            target: c.dbfilename.clone(),
            aof_base: false,
            commands: false,
            incremental_fsync: c.rdb_save_incremental_fsync,
        }
    }
}

/// A snapshot being written: its point in time is taken by [`Job::start`].
pub struct Job {
    sink: Arc<Sink>,
    out: FileOut,
    epoch: u64,
    tmp: String,
    target: String,
    commands: bool,
    /// Ends the epoch and removes the temp file if the job is dropped
    /// before it ran to the end.
    srv: Arc<Server>,
    done: bool,
}

impl Job {
    /// Opens the temp file, writes the header, and takes the snapshot
    /// point (every slot locked for an instant).
    pub fn start(srv: &Server) -> Result<Job, Logged> {
        Job::start_to(srv, Dest::rdb(srv), |_| {})
    }

    /// [`Job::start`] to `dest`; `at_point` runs at the snapshot point,
    /// while every slot is locked (an AOF rewrite switches its INCR file
    /// there).
    pub fn start_to(
        srv: &Server,
        dest: Dest,
        at_point: impl FnOnce(&Server),
    ) -> Result<Job, Logged> {
        Job::start_with(srv, dest, None, at_point)
    }

    /// A snapshot written to `w` rather than a file (a diskless transfer):
    /// no temp file, no fsync, no rename; a write error ends the walk.
    pub fn start_stream(
        srv: &Server,
        w: Box<dyn Write + Send>,
        at_point: impl FnOnce(&Server),
    ) -> Result<Job, Logged> {
        let dest = Dest {
            tmp: String::new(),
            target: String::new(),
            aof_base: false,
            commands: false,
            incremental_fsync: false,
        };
        Job::start_with(srv, dest, Some(w), at_point)
    }

    fn start_with(
        srv: &Server,
        dest: Dest,
        stream: Option<Box<dyn Write + Send>>,
        at_point: impl FnOnce(&Server),
    ) -> Result<Job, Logged> {
        let mut job = Job::open(srv, dest, stream)?;
        let s2 = job.sink.clone();
        // On a replica, the snapshot point is never between a change of
        // the master's stream and its offset (repl/replica.rs): the file's
        // `repl-offset` is exactly what it holds. (Waited for with an eye
        // on a stop: the command holding it may be a FLUSHALL waiting for
        // this very snapshot to end.)
        let _applying = loop {
            if let Some(g) = srv.repl.link.try_hold_apply() {
                break g;
            }
            if srv.persist.aborting() {
                return Err(Logged);
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        };
        // The latency monitor's `snapshot` event: the snapshot point, when
        // every slot is held at once (our counterpart of Redis' `fork`).
        let t0 = std::time::Instant::now();
        job.epoch = srv.ks.snapshot_begin(job.sink.clone(), |ks| {
            at_point(srv);
            let mut o = s2.out.lock().unwrap_or_else(|p| p.into_inner());
            let libs = srv.functions.libraries();
            if !s2.commands {
                let mut aux = repl_aux(srv);
                // Function libraries (FUNCTION2), as they are at the point.
                crate::script::functions::write_records(&mut aux, &libs);
                o.pending += aux.len();
                o.chunks.push(aux);
            } else if !libs.is_empty() {
                // A command-form AOF base: FUNCTION LOAD of each library.
                let mut cmds = Vec::new();
                for lib in &libs {
                    protocol::resp::request::command(&mut cmds, &[b"FUNCTION", b"LOAD", &lib.code]);
                }
                o.pending += cmds.len();
                o.chunks.push(cmds);
            }
            let mut total = 0;
            o.sizes = (0..ks.db_count())
                .filter_map(|i| ks.db(i))
                .map(|d| {
                    total += d.len() as u64;
                    (d.len() as u64, d.expires() as u64, false)
                })
                .collect();
            srv.persist.keys_total.store(total, Relaxed);
            srv.persist.keys_processed.store(0, Relaxed);
        });
        srv.latency
            .consider("snapshot", t0.elapsed().as_millis() as u64);
        Ok(job)
    }

    /// The temp file with its header and AUX fields, no snapshot yet.
    fn open(
        srv: &Server,
        dest: Dest,
        stream: Option<Box<dyn Write + Send>>,
    ) -> Result<Job, Logged> {
        let (compress, checksum) = {
            let c = srv.config();
            (c.rdbcompression, c.rdbchecksum)
        };
        let Dest {
            tmp,
            target,
            aof_base,
            commands,
            incremental_fsync,
        } = dest;
        let file = match stream {
            Some(w) => Target::Stream(w),
            None => match File::create(&tmp) {
                Ok(f) => Target::File(f),
                Err(e) => {
                    if aof_base {
                        warning!(
                            "Opening the temp file for AOF rewrite in rewriteAppendOnlyFile(): {e}"
                        );
                    } else {
                        warning!(
                            "Failed opening the temp RDB file {tmp} (in server root dir {}) for saving: {e}",
                            cwd()
                        );
                    }
                    return Err(Logged);
                }
            },
        };
        let mut buf = Vec::with_capacity(FLUSH_BYTES + 64 * 1024);
        if commands {
            if srv.config().aof_timestamp_enabled {
                // One annotation at the start of a command-form base (Redis).
                buf.extend_from_slice(format!("#TS:{}\r\n", super::unix_secs()).as_bytes());
            }
        } else {
            file::write_header(&mut buf);
            let mut ib = itoa::Buffer::new();
            file::write_aux(&mut buf, "redis-ver", crate::config::VERSION.as_bytes());
            file::write_aux(&mut buf, "redis-bits", b"64");
            file::write_aux(&mut buf, "ctime", ib.format(super::unix_secs()).as_bytes());
            file::write_aux(
                &mut buf,
                "used-mem",
                ib.format(crate::cmd::info::rss_bytes()).as_bytes(),
            );
            // (The replication AUX fields are written at the snapshot
            // point: `repl_aux`.)
            file::write_aux(&mut buf, "aof-base", if aof_base { b"1" } else { b"0" });
        }
        let sink = Arc::new(Sink {
            out: Mutex::new(Out {
                pending: buf.len(),
                chunks: vec![buf],
                db: None,
                sizes: Vec::new(),
                ahead: Vec::new(),
                big: None,
            }),
            compress,
            commands,
            keys: AtomicU64::new(0),
            live: std::sync::atomic::AtomicBool::new(true),
            lru_now: lru_policy(srv).then(|| crate::db::lru_clock(now_ms())),
            lfu_now: crate::evict::lfu_on().then(|| crate::evict::minutes(now_ms())),
            thresholds: codec::Thresholds::from_config(&srv.config()),
        });
        Ok(Job {
            sink,
            out: FileOut {
                target: file,
                crc: (checksum && !commands).then(digest),
                written: 0,
                synced: 0,
                incremental_fsync,
                error: None,
            },
            epoch: 0,
            tmp,
            target,
            commands,
            srv: srv.arc(),
            done: false,
        })
    }

    /// Writes the rest of the snapshot and puts the file in place.
    /// `Some(true)`: saved; `Some(false)`: failed (logged); `None`: aborted.
    pub fn run(self, srv: &Server) -> Option<bool> {
        self.run_until(srv, &srv.persist.abort)
    }

    /// [`Job::run`], stopped when `abort` is set.
    pub fn run_until(
        mut self,
        srv: &Server,
        abort: &std::sync::atomic::AtomicBool,
    ) -> Option<bool> {
        let sink = self.sink.clone();
        let out = &mut self.out;
        let mut last_yield = std::time::Instant::now();
        let complete = srv.ks.snapshot_walk(self.epoch, || {
            srv.persist
                .keys_processed
                .store(sink.keys.load(Relaxed), Relaxed);
            // Between two lock holds, holding none: the only place the
            // file is written while the snapshot runs.
            for chunk in sink.take(FLUSH_BYTES).unwrap_or_default() {
                out.write(&chunk);
            }
            // Every YIELD_EVERY of walking, clients get a chance to run:
            // the walker gives the core back here rather than being
            // preempted for a whole time slice (milliseconds) while
            // clients wait.
            if last_yield.elapsed() >= YIELD_EVERY {
                std::thread::yield_now();
                last_yield = std::time::Instant::now();
            }
            // (A stream nobody reads any more ends the walk.)
            let unread = matches!(out.target, Target::Stream(_)) && out.error.is_some();
            !abort.load(Relaxed) && !unread
        });
        if !complete {
            return None;
        }
        let ok = self.finish().is_ok();
        self.done = true;
        Some(ok)
    }

    fn finish(&mut self) -> Result<(), Logged> {
        for chunk in self.sink.take(0).unwrap_or_default() {
            self.out.write(&chunk);
        }
        if !self.commands {
            let mut tail = Vec::with_capacity(9);
            file::write_eof(&mut tail);
            self.out.write(&tail);
            let crc = self.out.crc.take().map_or(0, |c| c.finalize());
            self.out.write(&crc.to_le_bytes());
        }
        let fail = |op: &str, e: &dyn std::fmt::Display, tmp: &str| {
            warning!("Write error saving DB on disk({op}): {e}");
            let _ = std::fs::remove_file(tmp);
        };
        if let Some(e) = self.out.error.take() {
            fail("write", &e, &self.tmp);
            return Err(Logged);
        }
        let file = match &mut self.out.target {
            Target::File(f) => f,
            Target::Stream(w) => {
                return w.flush().map_err(|e| {
                    warning!("Write error sending the DB to replicas: {e}");
                    Logged
                });
            }
        };
        if let Err(e) = file.sync_all() {
            fail("fsync", &e, &self.tmp);
            return Err(Logged);
        }
        if let Err(e) = std::fs::rename(&self.tmp, &self.target) {
            warning!(
                "Error moving temp DB file {} on the final destination {} (in server root dir {}): {e}",
                self.tmp,
                self.target,
                cwd()
            );
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Logged);
        }
        if let Err(e) = fsync_dir(&self.target) {
            warning!("Write error saving DB on disk(fsyncFileDir): {e}");
            return Err(Logged);
        }
        Ok(())
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.sink.live.store(false, Relaxed);
        if !self.done {
            if self.epoch != 0 {
                self.srv.ks.snapshot_end(self.epoch);
            }
            if !self.tmp.is_empty() {
                let _ = std::fs::remove_file(&self.tmp);
            }
        }
    }
}

/// fsync of the directory holding `path` (the rename is durable).
fn fsync_dir(path: &str) -> std::io::Result<()> {
    let p = std::path::Path::new(path);
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    File::open(dir)?.sync_all()
}

/// A file with no keys (FLUSHALL with save points, which holds every slot).
pub fn save_empty(srv: &Server) -> Result<(), Logged> {
    save_empty_to(srv, Dest::rdb(srv))
}

/// An empty snapshot to `dest` (also the AOF base created at start-up).
pub fn save_empty_to(srv: &Server, dest: Dest) -> Result<(), Logged> {
    // (No replication fields: FLUSHALL's save is taken before FLUSHALL is
    // in the stream, so its offset would not match its data.)
    let mut job = Job::open(srv, dest, None)?;
    let r = job.finish();
    job.done = true;
    r
}

/// SAVE's body: the whole snapshot from this thread.
pub fn save_file(srv: &Server) -> Result<(), Logged> {
    let job = Job::start(srv)?;
    match job.run(srv) {
        Some(true) => Ok(()),
        _ => Err(Logged),
    }
}

/// The replication AUX fields, taken at the snapshot point: the stream's
/// DB, our replication ID and offset there (a replica restarted from this
/// file continues from that offset; a relaying replica's replicas start
/// in that DB).
fn repl_aux(srv: &Server) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    if !srv.repl.link.has_history() {
        // A replica whose load failed has no history to continue (Redis'
        // rdbPopulateSaveInfo leaves the fields out then).
        return buf;
    }
    let mut ib = itoa::Buffer::new();
    let db = srv.repl.link.stream_db();
    file::write_aux(&mut buf, "repl-stream-db", ib.format(db).as_bytes());
    file::write_aux(&mut buf, "repl-id", srv.repl.replid().as_bytes());
    file::write_aux(
        &mut buf,
        "repl-offset",
        ib.format(srv.prop.repl_offset()).as_bytes(),
    );
    buf
}

/// Loads `path` into the keyspace. `Ok(None)` when there is no such file;
/// `Ok(Some((loaded, expired)))` when it loaded; `Err` after logging why it
/// could not (Redis' texts). A key already present is an error, or is
/// replaced with `merge` (DEBUG RELOAD MERGE).
pub fn load_file(srv: &Server, path: &str, merge: bool) -> Result<Option<(u64, u64)>, Logged> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            warning!("Fatal error loading the DB: {e}. Exiting.");
            return Err(Logged);
        }
    };
    load_from(srv, f, merge).map(|(l, e, _)| Some((l, e)))
}

/// Loads an RDB stream (a file, or an AOF's RDB base) into the keyspace:
/// (keys loaded, keys expired, bytes read up to and with the checksum).
pub fn load_from(
    srv: &Server,
    src: impl std::io::Read,
    merge: bool,
) -> Result<(u64, u64, u64), Logged> {
    let mut r = match FileReader::new(src) {
        Ok(r) => r,
        Err(e @ (FileError::Signature | FileError::Version(_))) => {
            warning!("{e}");
            warning!("Fatal error loading the DB: Invalid argument. Exiting.");
            return Err(Logged);
        }
        Err(e) => return Err(report(0, &e)),
    };
    let thresholds = codec::Thresholds::from_config(&srv.config());
    let now = now_ms();
    let lru = crate::evict::token(now);
    let lru_idle = lru_policy(srv);
    let mut delay = srv.config().key_load_delay;
    let progress = &srv.persist.loading;
    let mut db = 0usize;
    let (mut loaded, mut expired) = (0u64, 0u64);
    let mut repl = crate::repl::replica::FileRepl::default();
    // A replica keeps keys already expired: its master's DEL removes them
    // (Redis loads them on replicas only).
    let keep_expired = srv.repl.link.is_replica();
    // A master's start-up load takes up the file's replication history
    // (once its AUX fields are read), so its replicas can continue; the
    // keys found expired are then DELs in that history (Redis 7.0).
    let mut restoring = !keep_expired && srv.repl.link.restoring.load(Relaxed);
    let mut dels = false;
    loop {
        let item = match r.next_item() {
            Ok(i) => i,
            Err(e) => return Err(report(r.offset(), &e)),
        };
        if restoring && matches!(item, Item::SelectDb(_) | Item::Key(_) | Item::Eof) {
            restoring = false;
            // (Offset 0: no replica ever took anything; nothing to go on.)
            if let (Some(id), Some(off)) = (&repl.replid, repl.offset)
                && off > 0
            {
                srv.prop.new_history(off);
                srv.repl.restore_history(id, off);
                dels = true;
            }
        }
        match item {
            Item::Eof => break,
            Item::Aux(k, v) => {
                if &k[..] == b"used-mem"
                    && let Some(n) = protocol::number::parse_i64(&v)
                {
                    progress.rdb_used_mem.store(n.max(0) as u64, Relaxed);
                }
                repl.aux(&k, &v);
                aux(&k, &v)
            }
            Item::SelectDb(n) => {
                if n >= srv.ks.db_count() as u64 {
                    warning!(
                        "FATAL: Data file was created with a Redis server configured to handle more than {} databases. Exiting\n",
                        srv.ks.db_count()
                    );
                    return Err(Logged);
                }
                db = n as usize;
            }
            Item::ResizeDb(..) => {}
            Item::Function(code) => {
                // Replacing a library of the same name (DEBUG RELOAD
                // NOFLUSH, MERGE): what the file holds wins, as for keys.
                if let Err(e) = srv.functions.load(&code, true, 0) {
                    warning!("Failed loading library, {e}");
                    return Err(Logged);
                }
            }
            Item::Key(k) => {
                progress.progress(srv, r.offset(), &mut delay);
                if let Some(at) = k.expire_ms
                    && at < now as i64
                    && !keep_expired
                {
                    expired += 1;
                    if dels {
                        srv.prop.emit_del(db, &k.key);
                    }
                    continue;
                }
                let expire = k.expire_ms.map(|v| v.max(0) as u64);
                if let Some(v) = &k.decoded
                    && is_empty_collection(v)
                {
                    // An old Redis bug wrote empty keys; Redis skips them.
                    warning!(
                        "rdbLoadObject skipping empty key: {}",
                        String::from_utf8_lossy(&k.key)
                    );
                    continue;
                }
                let restored = match k.decoded {
                    Some(v) => codec::rebuild(v, &thresholds),
                    None => codec::restore_value(&k.value, &thresholds),
                };
                let entry = match restored {
                    Ok(v) => {
                        let lru = match k.idle_secs {
                            Some(secs) if lru_idle => lru_of_idle(lru, secs),
                            _ => lru,
                        };
                        let mut e = v.into_entry(&k.key, expire, lru);
                        if let Some(f) = crate::evict::restored_freq(now, k.freq) {
                            e.set_lru(f);
                        }
                        e
                    }
                    Err(_) => {
                        return Err(report(
                            r.offset(),
                            &FileError::Corrupt(format!(
                                "Bad data format loading key '{}'",
                                String::from_utf8_lossy(&k.key)
                            )),
                        ));
                    }
                };
                let Some(d) = srv.ks.db(db) else {
                    return Err(Logged);
                };
                let mut slot = srv.ks.lock_key(d, &k.key);
                if merge {
                    slot.remove(&k.key);
                } else if slot.peek(&k.key).is_some() {
                    warning!(
                        "RDB has duplicated key '{}' in DB {db}",
                        String::from_utf8_lossy(&k.key)
                    );
                    warning!("Duplicated key found in RDB file");
                    return Err(Logged);
                }
                slot.insert(entry);
                loaded += 1;
            }
        }
    }
    srv.repl.link.set_file_repl(repl);
    Ok((loaded, expired, r.offset()))
}

fn is_empty_collection(v: &protocol::rdb::Value) -> bool {
    use protocol::rdb::Value;
    match v {
        Value::Str(_) => false,
        Value::List(l) | Value::Set(l) => l.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::ZSet(z) => z.is_empty(),
        // An empty stream is a value (its IDs and groups live on).
        Value::Stream(..) => false,
    }
}

fn aux(k: &[u8], v: &[u8]) {
    let v = String::from_utf8_lossy(v);
    match k {
        b"redis-ver" => notice!("Loading RDB produced by version {v}"),
        b"ctime" => {
            let t: i64 = v.parse().unwrap_or(0);
            let age = (super::unix_secs() as i64 - t).max(0);
            notice!("RDB age {age} seconds");
        }
        b"used-mem" => {
            let m: f64 = v.parse().unwrap_or(0.0);
            notice!(
                "RDB memory usage when created {:.2} Mb",
                m / (1024.0 * 1024.0)
            );
        }
        b"aof-base" if v != "0" => notice!("RDB is base AOF"),
        b"aof-preamble" if v != "0" => notice!("RDB has an AOF tail"),
        _ if k.first() == Some(&b'%') => {
            notice!("RDB '{}': {v}", String::from_utf8_lossy(k))
        }
        _ => {}
    }
}

fn report(offset: u64, e: &FileError) -> Logged {
    match e {
        FileError::UnexpectedEof => {
            warning!(
                "Internal error in RDB reading offset {offset}, function at rdb.c:0 -> Unexpected EOF reading RDB file"
            );
            warning!("Short read or OOM loading DB. Unrecoverable error, aborting now.");
        }
        FileError::Checksum { .. } => {
            warning!("{e}");
            warning!(
                "Internal error in RDB reading offset {offset}, function at rdb.c:0 -> RDB CRC error"
            );
        }
        _ => warning!("Internal error in RDB reading offset {offset}, function at rdb.c:0 -> {e}"),
    }
    Logged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_wraps_on_the_24_bit_clock() {
        assert_eq!(idle_secs(100, 40), 60);
        assert_eq!(idle_secs(5, 0xff_fff0), 5 + 0xf);
        assert_eq!(lru_of_idle(100, 60), 40);
        assert_eq!(lru_of_idle(5, 20), 0xff_ffff - 15);
        for (now, lru) in [(100u32, 40u32), (5, 0xff_fff0), (0, 0)] {
            assert_eq!(lru_of_idle(now, idle_secs(now, lru)), lru);
        }
    }
}
