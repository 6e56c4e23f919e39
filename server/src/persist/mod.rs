//! Persistence state and policy: what Redis 7.0 keeps in `server.lastsave`,
//! `lastbgsave_status`, `dirty_before_bgsave`, `rdb_bgsave_scheduled` & co.,
//! the `save <secs> <changes>` points checked by the cron, SAVE / BGSAVE /
//! the final save of SHUTDOWN and SIGTERM, and INFO persistence's numbers.
//! The file format and the snapshot writer are in [`rdb`]; nothing here
//! knows about sockets.
//!
//! BGSAVE does not fork: it takes a point-in-time snapshot of the slot
//! tables (`db::Keyspace::snapshot_begin`, a serialize-before-write hook per
//! key) and writes it from a thread of its own while clients go on.
//!
//! The start-up load runs while the port is open: commands without the
//! `loading` flag get `-LOADING`, INFO reports the progress ([`Loading`]).

pub mod aof;
pub mod aof_writer;
pub mod rdb;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::server::Server;
use crate::{notice, warning};

/// Redis' `CONFIG_BGSAVE_RETRY_DELAY`: after a failed BGSAVE, save points
/// wait this long before trying again.
const BGSAVE_RETRY_DELAY_SECS: u64 = 5;

/// What INFO persistence and LASTSAVE report, and the save in progress.
#[derive(Default)]
pub struct Persist {
    state: Mutex<State>,
    /// A BGSAVE (or SAVE) is writing a snapshot.
    pub saving: AtomicBool,
    /// Set to stop the BGSAVE in progress (FLUSHALL, SHUTDOWN).
    abort: AtomicBool,
    /// A claim that goes first is waiting ([`Persist::claim_first`]).
    reserved: AtomicBool,
    /// The one load of the command gate: the last save failed (see
    /// [`Persist::writes_denied`]) or the dataset is loading.
    pub gate: AtomicBool,
    /// The start-up load in progress.
    pub loading: Loading,
    pub keys_processed: AtomicU64,
    pub keys_total: AtomicU64,
    /// The append-only file (aof.rs).
    pub aof: aof::Aof,
}

/// The start-up load (Redis' `server.loading*`): what INFO persistence
/// reports while it runs.
#[derive(Default)]
pub struct Loading {
    pub active: AtomicBool,
    /// Unix seconds.
    start: AtomicU64,
    /// Bytes of the files to load.
    total: AtomicU64,
    /// `used-mem` of the RDB (its AUX field).
    pub rdb_used_mem: AtomicU64,
    /// Bytes loaded, of earlier files (`base`) and in all.
    base: AtomicU64,
    loaded: AtomicU64,
    /// Keys loaded, for `key-load-delay`'s negative form.
    keys: AtomicU64,
}

/// INFO's `loading_*` fields.
pub struct LoadingInfo {
    pub start: u64,
    pub total: u64,
    pub rdb_used_mem: u64,
    pub loaded: u64,
    pub perc: f64,
    pub eta: i64,
}

impl Loading {
    /// Starts reporting a load (its size comes with `set_total`).
    pub fn begin(&self) {
        self.start.store(unix_secs(), Relaxed);
        for a in [&self.total, &self.rdb_used_mem, &self.base, &self.loaded] {
            a.store(0, Relaxed);
        }
        self.active.store(true, Relaxed);
    }

    /// The bytes of the files to load.
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Relaxed);
    }

    /// Whether the load's size is known yet (the port starts accepting
    /// then, so INFO never shows a load of 0 bytes; a load of nothing
    /// ends at once).
    pub fn sized(&self) -> bool {
        self.total.load(Relaxed) != 0
    }

    /// The next file starts after `done` bytes of the earlier ones.
    pub fn next_file(&self, done: u64) {
        self.base.store(done, Relaxed);
        self.loaded.store(done, Relaxed);
    }

    /// `offset` bytes of the current file are loaded; then the pause of
    /// `key-load-delay` for one key, where the load started with one (it
    /// is then read again each time: CONFIG SET applies at once).
    pub fn progress(&self, srv: &Server, offset: u64, delay: &mut i64) {
        self.loaded.store(self.base.load(Relaxed) + offset, Relaxed);
        if *delay == 0 {
            return;
        }
        *delay = srv.config().key_load_delay;
        if *delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay.unsigned_abs()));
        } else if *delay < 0 {
            let n = self.keys.fetch_add(1, Relaxed) + 1;
            if n.is_multiple_of(delay.unsigned_abs()) {
                std::thread::sleep(std::time::Duration::from_micros(1));
            }
        }
    }

    /// What INFO shows, with Redis' percentage and ETA rules.
    pub fn info(&self) -> LoadingInfo {
        let (total, used, loaded) = (
            self.total.load(Relaxed),
            self.rdb_used_mem.load(Relaxed),
            self.loaded.load(Relaxed),
        );
        let (mut perc, mut remaining) = (0.0, 1u64);
        if total > 0 {
            perc = loaded as f64 / total as f64 * 100.0;
            remaining = total.saturating_sub(loaded);
        } else if used > 0 {
            // used-mem only estimates the file size: never past 99.99%.
            perc = (loaded as f64 / used as f64 * 100.0).min(99.99);
            remaining = used.saturating_sub(loaded).max(1);
        }
        let start = self.start.load(Relaxed);
        let elapsed = unix_secs().saturating_sub(start);
        let eta = if elapsed == 0 {
            1
        } else {
            (elapsed.saturating_mul(remaining) / (loaded + 1)) as i64
        };
        LoadingInfo {
            start,
            total,
            rdb_used_mem: used,
            loaded,
            perc,
            eta,
        }
    }
}

#[derive(Default)]
struct State {
    /// Unix seconds of the last successful save (start-up time at first).
    lastsave: u64,
    last_bgsave_ok: bool,
    /// Unix seconds of the last BGSAVE attempt.
    last_bgsave_try: u64,
    /// When the BGSAVE in progress started.
    bgsave_started: Option<Instant>,
    last_bgsave_secs: i64,
    rdb_saves: u64,
    dirty_before_bgsave: u64,
    /// BGSAVE SCHEDULE (or BGSAVE inside a transaction) waiting its turn.
    scheduled: bool,
    loaded_keys: u64,
    loaded_expired: u64,
}

/// INFO persistence's RDB numbers.
pub struct Info {
    pub lastsave: u64,
    pub last_bgsave_ok: bool,
    pub in_progress: bool,
    pub last_bgsave_secs: i64,
    pub current_bgsave_secs: i64,
    pub rdb_saves: u64,
    pub loaded_keys: u64,
    pub loaded_expired: u64,
}

pub fn unix_secs() -> u64 {
    crate::db::now_ms() / 1000
}

impl Persist {
    pub fn new() -> Persist {
        let p = Persist::default();
        {
            let mut s = p.lock();
            s.lastsave = unix_secs();
            s.last_bgsave_ok = true;
            s.last_bgsave_secs = -1;
        }
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn info(&self) -> Info {
        let s = self.lock();
        Info {
            lastsave: s.lastsave,
            last_bgsave_ok: s.last_bgsave_ok,
            in_progress: s.bgsave_started.is_some(),
            last_bgsave_secs: s.last_bgsave_secs,
            current_bgsave_secs: s
                .bgsave_started
                .map_or(-1, |t| t.elapsed().as_secs() as i64),
            rdb_saves: s.rdb_saves,
            loaded_keys: s.loaded_keys,
            loaded_expired: s.loaded_expired,
        }
    }

    pub fn lastsave(&self) -> u64 {
        self.lock().lastsave
    }

    /// The `-MISCONF` error writes get, if any (Redis'
    /// `writeCommandsDeniedByDiskError`: the RDB's, then the AOF's).
    pub fn writes_denied(&self, srv: &Server) -> Option<std::borrow::Cow<'static, str>> {
        let rdb = {
            let c = srv.config();
            c.stop_writes_on_bgsave_error
                && !c.save_params.is_empty()
                && !self.lock().last_bgsave_ok
        };
        if rdb {
            return Some(crate::errors::MISCONF.into());
        }
        self.aof.write_error().map(Into::into)
    }

    /// Sets the command gate's flag from the RDB, AOF and loading states.
    pub fn refresh_gate(&self) {
        let ok = self.lock().last_bgsave_ok;
        self.gate_from(ok);
    }

    /// [`Persist::refresh_gate`] with the RDB state known (the state lock
    /// held).
    fn gate_from(&self, last_bgsave_ok: bool) {
        let on = !last_bgsave_ok
            || self.aof.writer.write_failed.load(Relaxed)
            || self.loading.active.load(Relaxed);
        self.gate.store(on, Relaxed);
    }

    pub fn set_loaded(&self, keys: u64, expired: u64) {
        let mut s = self.lock();
        s.loaded_keys = keys;
        s.loaded_expired = expired;
    }

    /// Whether the snapshot in progress was asked to stop.
    pub fn aborting(&self) -> bool {
        self.abort.load(Relaxed)
    }

    /// Takes the one snapshot slot (a replication transfer, a replica's
    /// load): false while a BGSAVE, AOF rewrite or transfer holds it. A
    /// stop asked of an earlier one is forgotten.
    pub fn try_claim(&self) -> bool {
        if self.reserved.load(Relaxed) || self.saving.swap(true, Relaxed) {
            return false;
        }
        self.abort.store(false, Relaxed);
        true
    }

    /// Takes the snapshot slot before anyone else (a replica's load): the
    /// snapshot holding it is stopped, and no other claim gets in
    /// meanwhile. Blocks: call it off the executor.
    pub fn claim_first(&self, srv: &Server) {
        self.reserved.store(true, Relaxed);
        while self.saving.swap(true, Relaxed) {
            self.abort_bgsave(srv);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.abort.store(false, Relaxed);
        self.reserved.store(false, Relaxed);
    }

    /// Stops the BGSAVE (or AOF rewrite, which is rescheduled) in
    /// progress (its temp file is removed) and waits until its thread has
    /// let go of the keyspace.
    pub fn abort_bgsave(&self, srv: &Server) {
        if !self.saving.load(Relaxed) {
            return;
        }
        if self.aof.rewriting.load(Relaxed) {
            aof::abort_rewrite(srv);
            return;
        }
        self.abort.store(true, Relaxed);
        let epoch = srv.ks.snapshot_active();
        if epoch != 0 {
            srv.ks.snapshot_end(epoch);
        }
        while self.saving.load(Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Why SAVE / BGSAVE did not start.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    InProgress,
    Failed,
    /// An AOF rewrite holds the snapshot.
    OtherChild,
}

/// SAVE: writes the snapshot from the calling thread (clients of other
/// threads go on; Redis blocks them all), then updates LASTSAVE & co.
pub fn save(srv: &Server) -> Result<(), StartError> {
    let p = &srv.persist;
    // An AOF rewrite holds the snapshot: SAVE runs after it (Redis saves
    // beside its rewriting child).
    while p.aof.rewriting.load(Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if p.saving.swap(true, Relaxed) {
        return Err(StartError::InProgress);
    }
    p.lock().rdb_saves += 1;
    let dirty = srv.dirty.load(Relaxed);
    let r = rdb::save_file(srv);
    p.saving.store(false, Relaxed);
    match r {
        Ok(()) => {
            notice!("DB saved on disk");
            srv.dirty
                .fetch_sub(dirty.min(srv.dirty.load(Relaxed)), Relaxed);
            let mut s = p.lock();
            s.lastsave = unix_secs();
            s.last_bgsave_ok = true;
            p.gate_from(true);
            Ok(())
        }
        Err(rdb::Logged) => {
            p.lock().last_bgsave_ok = false;
            p.gate.store(true, Relaxed);
            Err(StartError::Failed)
        }
    }
}

/// FLUSHALL's save of the emptied dataset (every slot is held by the
/// caller, so no snapshot point can be taken; there is nothing to walk).
pub fn save_empty(srv: &Server) -> Result<(), StartError> {
    let p = &srv.persist;
    if p.saving.swap(true, Relaxed) {
        return Err(StartError::InProgress);
    }
    let r = rdb::save_empty(srv);
    p.saving.store(false, Relaxed);
    r.map_err(|rdb::Logged| StartError::Failed)?;
    notice!("DB saved on disk");
    srv.dirty.store(0, Relaxed);
    let mut s = p.lock();
    s.lastsave = unix_secs();
    s.last_bgsave_ok = true;
    p.gate_from(true);
    Ok(())
}

/// BGSAVE: takes the snapshot point now and writes it from a thread.
pub fn bgsave(srv: &Server) -> Result<(), StartError> {
    let p = &srv.persist;
    if p.saving.swap(true, Relaxed) {
        if p.aof.rewriting.load(Relaxed) {
            return Err(StartError::OtherChild);
        }
        return Err(StartError::InProgress);
    }
    p.abort.store(false, Relaxed);
    {
        let mut s = p.lock();
        s.rdb_saves += 1;
        s.dirty_before_bgsave = srv.dirty.load(Relaxed);
        s.last_bgsave_try = unix_secs();
        s.bgsave_started = Some(Instant::now());
        s.scheduled = false;
    }
    let job = match rdb::Job::start(srv) {
        Ok(j) => j,
        Err(rdb::Logged) => {
            let mut s = p.lock();
            s.bgsave_started = None;
            s.last_bgsave_ok = false;
            p.gate.store(true, Relaxed);
            p.saving.store(false, Relaxed);
            return Err(StartError::Failed);
        }
    };
    notice!("Background saving started");
    let me = srv.arc();
    let spawned = std::thread::Builder::new()
        .name("codis-bgsave".into())
        .spawn(move || {
            let ok = job.run(&me);
            bgsave_done(&me, ok);
        });
    if spawned.is_err() {
        warning!("Can't save in background: cannot start a thread");
        let mut s = p.lock();
        s.bgsave_started = None;
        s.last_bgsave_ok = false;
        p.saving.store(false, Relaxed);
        return Err(StartError::Failed);
    }
    Ok(())
}

fn bgsave_done(srv: &Server, ok: Option<bool>) {
    let p = &srv.persist;
    let mut s = p.lock();
    let took = s.bgsave_started.take().map_or(0, |t| t.elapsed().as_secs());
    s.last_bgsave_secs = took as i64;
    match ok {
        Some(true) => {
            notice!("Background saving terminated with success");
            let before = s.dirty_before_bgsave;
            srv.dirty
                .fetch_sub(before.min(srv.dirty.load(Relaxed)), Relaxed);
            s.lastsave = unix_secs();
            s.last_bgsave_ok = true;
            p.gate_from(true);
        }
        Some(false) => {
            warning!("Background saving error");
            s.last_bgsave_ok = false;
            p.gate.store(true, Relaxed);
        }
        // Aborted on purpose (FLUSHALL, SHUTDOWN): like Redis' SIGUSR1
        // kill, not an error.
        None => warning!("Background saving terminated by request"),
    }
    drop(s);
    p.saving.store(false, Relaxed);
}

/// BGSAVE inside a transaction (or SCHEDULE while one cannot start): run it
/// from the cron.
pub fn schedule_bgsave(srv: &Server) {
    srv.persist.lock().scheduled = true;
}

/// The cron's part (Redis' `serverCron` save-point check): a scheduled
/// BGSAVE, or one due to a `save` point.
pub fn cron(srv: &Server) {
    let p = &srv.persist;
    aof::cron(srv);
    if p.saving.load(Relaxed) {
        return;
    }
    let now = unix_secs();
    let (scheduled, due) = {
        let s = p.lock();
        let dirty = srv.dirty.load(Relaxed);
        let may_retry =
            s.last_bgsave_ok || now.saturating_sub(s.last_bgsave_try) > BGSAVE_RETRY_DELAY_SECS;
        let due = if may_retry {
            srv.config().save_params.iter().find_map(|sp| {
                (dirty >= sp.changes.max(0) as u64
                    && now.saturating_sub(s.lastsave) as i64 > sp.seconds)
                    .then_some((sp.changes, sp.seconds))
            })
        } else {
            None
        };
        (s.scheduled, due)
    };
    if let Some((changes, secs)) = due {
        notice!("{changes} changes in {secs} seconds. Saving...");
        let _ = bgsave(srv);
    } else if scheduled {
        let _ = bgsave(srv);
    }
}

/// The save before exiting (SHUTDOWN without NOSAVE, SIGTERM), when save
/// points are configured or `force_save`: stops a BGSAVE in progress, then
/// saves synchronously. False when it failed (the caller stays up).
pub fn final_save(srv: &Server, force_save: bool, nosave: bool) -> bool {
    final_save_forced(srv, force_save, nosave, false)
}

/// [`final_save`]; `force` (SHUTDOWN FORCE) exits even while the first
/// AOF rewrite runs.
pub fn final_save_forced(srv: &Server, force_save: bool, nosave: bool, force: bool) -> bool {
    if srv.persist.loading.active.load(Relaxed) {
        // A partial dataset must not replace the files (Redis: no save
        // while loading); the AOF has taken nothing yet.
        return true;
    }
    if !aof::before_exit(srv, force) {
        return false;
    }
    let wanted = force_save || (!nosave && !srv.config().save_params.is_empty());
    if srv.persist.saving.load(Relaxed) {
        warning!("There is a child saving an .rdb. Killing it!");
        srv.persist.abort_bgsave(srv);
    }
    if !wanted {
        return true;
    }
    notice!("Saving the final RDB snapshot before exiting.");
    match save(srv) {
        Ok(()) => true,
        Err(_) => {
            warning!("Error trying to save the DB, can't exit.");
            false
        }
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save, empty, load back.
pub fn debug_reload(
    srv: &Server,
    merge: bool,
    flush: bool,
    save_first: bool,
) -> Result<(), &'static str> {
    if save_first && save(srv).is_err() {
        return Err(crate::errors::SAVE_FAILED);
    }
    if flush {
        for i in 0..srv.ks.db_count() {
            srv.ks.flush_db(i);
        }
        srv.functions.flush();
    }
    let path = srv.config().dbfilename.clone();
    match rdb::load_file(srv, &path, merge) {
        Ok(Some((keys, expired))) => {
            srv.persist.set_loaded(keys, expired);
            warning!("DB reloaded by DEBUG RELOAD");
            Ok(())
        }
        _ => Err(crate::errors::RELOAD_FAILED),
    }
}

impl Persist {
    /// From now until [`Persist::end_loading`], commands without the
    /// `loading` flag get `-LOADING` and INFO reports the load.
    pub fn begin_loading(&self) {
        self.loading.begin();
        self.refresh_gate();
    }

    pub fn end_loading(&self) {
        self.loading.active.store(false, Relaxed);
        self.refresh_gate();
    }
}

/// Loads the data files at start-up (clients connected meanwhile get
/// `-LOADING`, see [`Persist::begin_loading`]), then ends the loading
/// state. Exits the process, as Redis does, when a file exists but cannot
/// be loaded.
pub fn load_at_startup(srv: &Server) {
    load_files_at_startup(srv);
    srv.persist.end_loading();
}

fn load_files_at_startup(srv: &Server) {
    if srv.config().appendonly {
        // With the AOF on, only the AOF is loaded (Redis).
        aof::load_at_startup(srv);
        return;
    }
    let path = srv.config().dbfilename.clone();
    let start = Instant::now();
    if let Ok(md) = std::fs::metadata(&path) {
        srv.persist.loading.set_total(md.len());
    }
    match rdb::load_file(srv, &path, false) {
        Ok(None) => {}
        Ok(Some((loaded, expired))) => {
            srv.persist.set_loaded(loaded, expired);
            notice!("Done loading RDB, keys loaded: {loaded}, keys expired: {expired}.");
            notice!(
                "DB loaded from disk: {:.3} seconds",
                start.elapsed().as_secs_f64()
            );
        }
        Err(rdb::Logged) => {
            warning!("Terminating server after rdb file reading failure.");
            std::process::exit(1);
        }
    }
}
