//! The AOF's writer thread: takes the propagation stream's byte log in
//! bulk and appends it to the current INCR file, with Redis 7.0's
//! `appendfsync` policies (`flushAppendOnlyFile` / the bio fsync job):
//!
//! - `always`: write + fdatasync, then the synced offset is published;
//!   connections wait for it before sending their replies (group commit:
//!   every connection whose change is in one write shares its fdatasync);
//! - `everysec`: a connection writes the log (everything in it, its own
//!   changes and others') before sending its replies, as Redis writes in
//!   `beforeSleep`, so `kill -9` never loses an acknowledged write; the
//!   thread fdatasyncs once a second, on a handle of its own without the
//!   file's lock. While that fsync runs, connections postpone their write
//!   (a write can block behind it) for up to 2 s, then write anyway
//!   (Redis' 2-second rule, counted in `aof_delayed_fsync`);
//! - `no`: connections write, the kernel decides when it reaches the disk.
//!
//! A failed write keeps its bytes (a partial write is cut off the file
//! first), refuses writes with `-MISCONF` and is retried every second;
//! with `always` it ends the process, as Redis does. Nothing here knows
//! about sockets: connections only read the published offsets.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::AppendFsync;
use crate::server::Server;
use crate::{notice, warning};

/// The INCR file being appended to.
pub struct Out {
    pub file: File,
    pub name: String,
    /// Bytes in the file.
    pub size: u64,
    /// Written bytes not yet fdatasynced.
    unsynced: bool,
    last_fsync: Instant,
    /// Bytes a failed write left (written first next time).
    retry: Vec<u8>,
    /// The log's bytes are swapped through this buffer (no allocation per
    /// write once both have grown).
    scratch: Vec<u8>,
    /// A switch whose old-file part failed: the new file and the bytes
    /// that wait for it.
    next: Option<(File, String, Vec<u8>)>,
}

impl Out {
    pub fn new(file: File, name: String, size: u64) -> Out {
        Out {
            file,
            name,
            size,
            unsynced: false,
            last_fsync: Instant::now(),
            retry: Vec::new(),
            scratch: Vec::new(),
            next: None,
        }
    }

    /// Appends `data`; on failure the unwritten part is kept for the next
    /// try and the partial write (if any) cut off the file, so the file
    /// never ends in half a command that is then written again.
    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        if !self.retry.is_empty() {
            let mut pending = std::mem::take(&mut self.retry);
            pending.extend_from_slice(data);
            return self.write_all(&pending);
        }
        self.write_all(data)
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        let start = self.size;
        let mut done = 0;
        while done < data.len() {
            match self.file.write(&data[done..]) {
                Ok(0) => {
                    return self.failed(
                        data,
                        start,
                        done,
                        std::io::Error::from(std::io::ErrorKind::WriteZero),
                    );
                }
                Ok(n) => {
                    done += n;
                    self.size += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed(data, start, done, e),
            }
        }
        if !data.is_empty() {
            self.unsynced = true;
        }
        Ok(())
    }

    fn failed(
        &mut self,
        data: &[u8],
        start: u64,
        done: usize,
        e: std::io::Error,
    ) -> std::io::Result<()> {
        if done > 0 {
            if self.file.set_len(start).is_ok() {
                self.size = start;
                self.retry = data.to_vec();
            } else {
                // Cannot cut it off: the written part stays written (Redis
                // keeps it too and trims its buffer).
                self.retry = data[done..].to_vec();
            }
        } else {
            self.retry = data.to_vec();
        }
        Err(e)
    }

    fn fsync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        self.unsynced = false;
        self.last_fsync = Instant::now();
        Ok(())
    }
}

/// The writer's shared state: what connections and INFO read.
#[derive(Default)]
pub struct Writer {
    /// The file; the writer thread holds it while writing. `None` while the
    /// AOF is off.
    pub out: Mutex<Option<Out>>,
    /// The policy: 0 everysec, 1 always, 2 no.
    policy: AtomicU8,
    /// `on` and `always` together: the reply gate's one load.
    pub always: AtomicBool,
    pub on: AtomicBool,
    /// Stream offsets written to the kernel and fdatasynced.
    pub written: AtomicU64,
    pub synced: AtomicU64,
    /// ms timestamp since which the thread is inside an fsync that has not
    /// returned (0: none).
    busy_since: AtomicU64,
    /// ms timestamp since which connections postpone their writes behind
    /// that fsync (0: none).
    postponed_since: AtomicU64,
    /// INFO `aof_delayed_fsync`.
    pub delayed_fsync: AtomicU64,
    /// The last write failed (writes get `-MISCONF`).
    pub write_failed: AtomicBool,
    /// Bytes a failed write left for the retry (INFO, without the lock).
    retry_len: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// `no-appendfsync-on-rewrite` while a rewrite runs.
    pub skip_fsync: AtomicBool,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    progress: Progress,
}

/// The published (written, synced) offsets, for connections to await.
struct Progress(tokio::sync::watch::Sender<(u64, u64)>);

impl Default for Progress {
    fn default() -> Self {
        Progress(tokio::sync::watch::Sender::new((0, 0)))
    }
}

fn policy_code(p: AppendFsync) -> u8 {
    match p {
        AppendFsync::Everysec => 0,
        AppendFsync::Always => 1,
        AppendFsync::No => 2,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writer {
    pub fn set_policy(&self, p: AppendFsync) {
        self.policy.store(policy_code(p), Relaxed);
        self.always
            .store(self.on.load(Relaxed) && p == AppendFsync::Always, Relaxed);
    }

    fn policy(&self) -> u8 {
        self.policy.load(Relaxed)
    }

    /// Whether a reply must wait for the AOF (cheap: one load when off).
    #[inline]
    pub fn gate(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Before a connection sends replies: with `always`, until everything
    /// appended so far is fdatasynced (by the thread); otherwise the log is
    /// written to the file now, by this connection (unless an fsync is
    /// running: then for at most 2 s it is left to the thread).
    pub async fn before_reply(&self, srv: &Server) {
        let target = srv.prop.offset();
        if self.always.load(Relaxed) {
            if self.synced.load(Relaxed) >= target {
                return;
            }
            srv.prop.waker.wake();
            let mut rx = self.progress.0.subscribe();
            let _ = rx.wait_for(|&(_, s)| s >= target).await;
            return;
        }
        if self.written.load(Relaxed) >= target {
            return;
        }
        if self.busy_since.load(Relaxed) != 0 {
            let now = crate::db::now_ms();
            let since = match self.postponed_since.load(Relaxed) {
                0 => {
                    self.postponed_since.store(now, Relaxed);
                    now
                }
                t => t,
            };
            if now.saturating_sub(since) < 2000 {
                return;
            }
            if self.delayed_fsync.fetch_add(1, Relaxed) == 0 {
                notice!(
                    "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis."
                );
            }
        }
        flush(srv, self, Sync::Never);
    }

    fn publish(&self) {
        let (w, s) = (self.written.load(Relaxed), self.synced.load(Relaxed));
        self.progress.0.send_replace((w, s));
    }

    /// Starts appending to `out` from stream offset `at` (the log must be
    /// on) and starts the thread if it is not running.
    pub fn start(&self, srv: &Server, out: Out, at: u64) {
        *lock(&self.out) = Some(out);
        self.written.store(at, Relaxed);
        self.synced.store(at, Relaxed);
        self.publish();
        self.stop.store(false, Relaxed);
        self.on.store(true, Relaxed);
        self.set_policy(srv.config().appendfsync);
        let mut t = lock(&self.thread);
        if t.is_none() {
            let me = srv.arc();
            match std::thread::Builder::new()
                .name("codis-aof".into())
                .spawn(move || run(&me))
            {
                Ok(h) => *t = Some(h),
                Err(e) => warning!("Can't start the AOF writer thread: {e}"),
            }
        }
    }

    /// Stops the thread after it wrote and fdatasynced everything it
    /// took, and closes the file. The log must already be off
    /// (or hold nothing new).
    pub fn stop(&self, srv: &Server) {
        self.stop_with(srv, None)
    }

    /// [`Writer::stop`], then `rest` (what the log held when it was
    /// stopped) appended and fdatasynced: nothing logged is dropped.
    pub fn stop_with(&self, srv: &Server, rest: Option<crate::propagate::Log>) {
        self.stop.store(true, Relaxed);
        srv.prop.waker.wake();
        if let Some(h) = lock(&self.thread).take() {
            let _ = h.join();
        }
        if let Some(log) = rest
            && let Some(out) = lock(&self.out).as_mut()
        {
            let mut r = Ok(());
            if let Some(sw) = log.switch {
                r = out.append(&sw.before);
                if r.is_ok() {
                    let _ = out.fsync();
                    *out = Out::new(sw.file, sw.name, 0);
                }
            }
            if r.is_ok() && out.append(&log.buf).is_ok() {
                let _ = out.fsync();
            }
        }
        self.on.store(false, Relaxed);
        self.always.store(false, Relaxed);
        // Nobody waits for a file that is gone.
        self.written.store(u64::MAX, Relaxed);
        self.synced.store(u64::MAX, Relaxed);
        self.publish();
        // The file closes here.
        lock(&self.out).take();
    }

    /// Writes and fdatasyncs what the log holds now, from the caller's
    /// thread (SHUTDOWN, DEBUG LOADAOF, CONFIG SET appendonly no).
    pub fn flush_now(&self, srv: &Server) -> bool {
        flush(srv, self, Sync::Always)
    }
}

/// Whether a flush fdatasyncs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// As the policy says (the thread).
    Policy,
    Always,
    /// A connection's write before its replies.
    Never,
}

/// The thread: with `always`, sleeps until the log has bytes and writes +
/// fdatasyncs them; otherwise wakes every 50 ms to write what connections
/// left (changes without a reply: expiry) and fdatasync once a second.
fn run(srv: &Arc<Server>) {
    let w = &srv.persist.aof.writer;
    loop {
        if w.stop.load(Relaxed) {
            flush(srv, w, Sync::Always);
            return;
        }
        if w.policy() == 1 {
            srv.prop.waker.sleep(Duration::from_millis(250), || {
                srv.prop.log_pending() || w.stop.load(Relaxed)
            });
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if w.stop.load(Relaxed) {
            continue;
        }
        if !flush(srv, w, Sync::Policy) {
            // Retry once a second (Redis' cron retries its failed writes).
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// One round: the pending switch and the log's bytes to the file, then
/// fdatasync as `sync` says. False after a failure.
fn flush(srv: &Server, w: &Writer, sync: Sync) -> bool {
    let mut guard = lock(&w.out);
    let Some(out) = guard.as_mut() else {
        return true;
    };
    let mut buf = std::mem::take(&mut out.scratch);
    let Some((switch, upto)) = srv.prop.log_take(&mut buf) else {
        out.scratch = buf;
        return true;
    };
    let policy = w.policy();
    let mut result = Ok(());
    if let Some(sw) = switch {
        // The bytes before the switch end the old file.
        result = out.append(&sw.before);
        out.next = Some((sw.file, sw.name, Vec::new()));
    } else if !out.retry.is_empty() {
        result = out.append(&[]);
    }
    if result.is_ok()
        && let Some((file, name, waiting)) = out.next.take()
    {
        // The old file is made durable before the new one gets anything.
        match out.fsync() {
            Ok(()) => {
                *out = Out::new(file, name, 0);
                out.retry = waiting;
            }
            Err(e) => {
                out.next = Some((file, name, waiting));
                result = Err(e);
            }
        }
    }
    if result.is_ok() {
        result = out.append(&buf);
    } else if let Some((_, _, waiting)) = out.next.as_mut() {
        waiting.extend_from_slice(&buf);
    } else {
        out.retry.extend_from_slice(&buf);
    }
    if buf.capacity() > 8 << 20 {
        // After a burst: do not keep its buffer for good.
        buf = Vec::with_capacity(64 * 1024);
    }
    out.scratch = buf;
    let mut ok = match result {
        Ok(()) => {
            w.written.store(upto, Relaxed);
            w.postponed_since.store(0, Relaxed);
            true
        }
        Err(e) => {
            write_error(srv, w, policy, &e);
            false
        }
    };
    if ok && w.write_failed.swap(false, Relaxed) {
        notice!("AOF write error looks solved, Redis can write again.");
        *lock(&w.last_error) = None;
        srv.persist.refresh_gate();
    }
    w.retry_len.store(
        (out.retry.len() + out.next.as_ref().map_or(0, |n| n.2.len())) as u64,
        Relaxed,
    );
    let due = ok
        && match sync {
            Sync::Never => false,
            Sync::Always => true,
            Sync::Policy => match policy {
                1 => true,
                0 => out.unsynced && out.last_fsync.elapsed() >= Duration::from_secs(1),
                _ => false,
            },
        };
    if !due {
        if ok && !out.unsynced {
            w.synced.store(upto, Relaxed);
        }
        drop(guard);
        w.publish();
        return ok;
    }
    let skip = w.skip_fsync.load(Relaxed) && sync == Sync::Policy;
    if skip {
        drop(guard);
        w.publish();
        return ok;
    }
    // fdatasync on a handle of its own, without the file's lock:
    // connections go on writing meanwhile (or postpone, see before_reply).
    let handle = out.file.try_clone();
    out.unsynced = false;
    out.last_fsync = Instant::now();
    drop(guard);
    w.busy_since.store(crate::db::now_ms().max(1), Relaxed);
    let r = handle.and_then(|f| f.sync_data());
    w.busy_since.store(0, Relaxed);
    match r {
        Ok(()) => {
            w.synced.fetch_max(upto, Relaxed);
        }
        Err(e) => {
            if policy == 1 {
                warning!(
                    "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {}. Exiting...",
                    crate::config::strerror(&e)
                );
                std::process::exit(1);
            }
            if let Some(o) = lock(&w.out).as_mut() {
                o.unsynced = true;
            }
            write_error(srv, w, policy, &e);
            ok = false;
        }
    }
    w.publish();
    ok
}

fn write_error(srv: &Server, w: &Writer, policy: u8, e: &std::io::Error) {
    let text = crate::config::strerror(e);
    if policy == 1 {
        warning!("Error writing to the AOF file: {text}");
        warning!(
            "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting..."
        );
        std::process::exit(1);
    }
    if !w.write_failed.swap(true, Relaxed) {
        warning!("Error writing to the AOF file: {text}");
    }
    *lock(&w.last_error) = Some(text);
    srv.persist.gate.store(true, Relaxed);
}

impl Writer {
    /// Whether the thread appends to `name` now (a rewrite's switch has
    /// been carried out: everything before it is durable in older files).
    pub fn on_file(&self, name: &str) -> bool {
        lock(&self.out)
            .as_ref()
            .is_some_and(|o| o.next.is_none() && o.name == name)
    }

    /// Bytes waiting in a failed write (`aof_buffer_length`).
    pub fn pending_bytes(&self) -> u64 {
        self.retry_len.load(Relaxed)
    }
}

impl Writer {
    /// The current file was renamed (a temp INCR taking its final name).
    pub fn rename_current(&self, name: &str) {
        if let Some(o) = lock(&self.out).as_mut() {
            o.name = name.to_string();
        }
    }
}
