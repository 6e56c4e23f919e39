//! Server administration commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME,
//! LASTSAVE, CONFIG (GET/SET/RESETSTAT/REWRITE/HELP), SHUTDOWN and DEBUG
//! (MONITOR lives in `monitor.rs`). INFO lives in `info.rs`, COMMAND in `command.rs`.
//!
//! Mirrors redis-server 7.0.15 (`server.c`, `db.c`, `config.c`, `debug.c`):
//! argument checks, error texts and reply shapes are the same. SAVE,
//! BGSAVE, BGREWRITEAOF, LASTSAVE and SHUTDOWN's saves go through
//! `persist` (docs/persistence.md). DEBUG implements HELP, SLEEP, OBJECT,
//! SET-ACTIVE-EXPIRE, POPULATE, RELOAD, LOADAOF, LOG and ERROR; DEBUG SLEEP
//! blocks the calling connection's executor thread (with `io-threads 1`
//! that is the whole server, as in Redis).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use protocol::command::CmdId;
use protocol::number::parse_i64;

use crate::cmd::conn::help_reply;
use crate::cmd::util::is;
use crate::db::{Entry, KeyAccess};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};
use crate::persist;
use crate::{notice, warning};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Dbsize => dbsize,
        CmdId::Flushall => flushall,
        CmdId::Flushdb => flushdb,
        CmdId::Swapdb => swapdb,
        CmdId::Time => time,
        CmdId::Lastsave => lastsave,
        CmdId::Save => save,
        CmdId::Bgsave => bgsave,
        CmdId::Bgrewriteaof => bgrewriteaof,
        CmdId::Config => config,
        CmdId::Shutdown => shutdown,
        CmdId::Debug => debug,
        _ => return None,
    })
}

fn dbsize(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    let n = ctx.db().len();
    ctx.out.int(n as i64);
    Ok(())
}

/// FLUSHDB/FLUSHALL take an optional ASYNC or SYNC; both flush synchronously
/// here (freeing is cheap compared to Redis' lazyfree thread hand-off).
fn flush_mode(argv: &[&[u8]]) -> CmdResult {
    match argv {
        [_] => Ok(()),
        [_, m] if is(m, "sync") || is(m, "async") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}

/// Dirties the WATCHers of keys that exist in DB `db` (or in `other`, for
/// SWAPDB), before the DB is emptied or swapped.
fn touch_watchers(ctx: &Ctx, db: usize, other: Option<usize>) {
    let ks = ctx.ks();
    let now = ctx.now;
    ctx.srv.watches.touch_db(db, other, |d, key| {
        let db = ks.db(d)?;
        ks.lock_key(db, key).peek(key).map(|e| e.is_expired(now))
    });
}

/// FLUSHALL: as Redis 7.0, a BGSAVE in progress is stopped (the gate does
/// it before taking the locks, see `exec::lock_set`) and, with save points
/// configured, the now empty dataset is saved at once.
fn flushall(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    flush_mode(argv)?;
    crate::tracking::flushed(ctx.srv);
    let mut removed = 0;
    for i in 0..ctx.srv.ks.db_count() {
        touch_watchers(ctx, i, None);
        removed += ctx.ks().flush_db(i);
    }
    if !ctx.srv.config().save_params.is_empty() && persist::save_empty(ctx.srv).is_ok() {
        // The snapshot point needs every slot, which this command holds:
        // the (empty) dataset is written directly; Redis counts one change
        // after that save.
        ctx.dirty(1);
    } else {
        ctx.dirty(removed as u64 + 1);
    }
    ctx.out.ok();
    Ok(())
}

fn flushdb(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    flush_mode(argv)?;
    crate::tracking::flushed(ctx.srv);
    touch_watchers(ctx, ctx.client.db, None);
    let removed = ctx.ks().flush_db(ctx.client.db);
    ctx.dirty(removed as u64 + 1);
    ctx.out.ok();
    Ok(())
}

/// A DB index argument of SWAPDB: any int32, with SWAPDB's own message.
fn db_index(a: &[u8], msg: &'static str) -> Result<i64, CmdError> {
    match parse_i64(a) {
        Some(v) if v >= i32::MIN as i64 && v <= i32::MAX as i64 => Ok(v),
        _ => Err(CmdError::Static(msg)),
    }
}

fn swapdb(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let a = db_index(argv[1], errors::INVALID_FIRST_DB)?;
    let b = db_index(argv[2], errors::INVALID_SECOND_DB)?;
    let n = ctx.srv.ks.db_count() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Err(CmdError::Static(errors::INVALID_DB));
    }
    touch_watchers(ctx, a as usize, Some(b as usize));
    touch_watchers(ctx, b as usize, Some(a as usize));
    ctx.ks().swap_db(a as usize, b as usize);
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

fn time(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk_int(d.as_secs() as i64);
    ctx.out.bulk_int(d.subsec_micros() as i64);
    Ok(())
}

/// Unix time of the last successful save (start-up time before any).
fn lastsave(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    ctx.out.int(ctx.srv.persist.lastsave() as i64);
    Ok(())
}

/// SAVE: the snapshot written before the reply.
fn save(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    persist::save(ctx.srv).map_err(save_error)?;
    ctx.out.ok();
    Ok(())
}

/// SAVE / BGSAVE refusals in Redis' words.
fn save_error(e: persist::StartError) -> CmdError {
    CmdError::Static(match e {
        persist::StartError::InProgress => errors::BGSAVE_IN_PROGRESS,
        persist::StartError::Failed => errors::SAVE_FAILED,
        persist::StartError::OtherChild => errors::BGSAVE_OTHER_CHILD,
    })
}

/// BGREWRITEAOF: a new base from a point-in-time snapshot, the INCR files
/// before it become history. Inside a transaction (or beside a BGSAVE)
/// it is scheduled, as Redis does.
fn bgrewriteaof(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    use persist::aof;
    if ctx.srv.persist.aof.rewriting.load(Relaxed) {
        return Err(CmdError::Static(errors::AOFRW_IN_PROGRESS));
    }
    if ctx.held.is_some() || ctx.one.is_some() {
        aof::schedule(ctx.srv);
        ctx.out
            .simple(b"Background append only file rewriting scheduled");
        return Ok(());
    }
    match aof::bgrewriteaof(ctx.srv) {
        Ok(aof::Started::Now) => ctx
            .out
            .simple(b"Background append only file rewriting started"),
        Ok(aof::Started::Scheduled) => ctx
            .out
            .simple(b"Background append only file rewriting scheduled"),
        Err(aof::RewriteError::InProgress) => {
            return Err(CmdError::Static(errors::AOFRW_IN_PROGRESS));
        }
        Err(aof::RewriteError::Failed) => return Err(CmdError::Static(errors::AOFRW_FAILED)),
    }
    Ok(())
}

/// BGSAVE [SCHEDULE]: the snapshot point is now; it is written while
/// clients go on. Inside a transaction it is scheduled (as Redis does),
/// since the transaction holds slots the snapshot point needs.
fn bgsave(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    match argv {
        [_] => {}
        [_, a] if is(a, "schedule") => {}
        _ => return Err(CmdError::Syntax),
    }
    let schedule = argv.len() == 2;
    if ctx.srv.persist.saving.load(Relaxed) {
        if ctx.srv.persist.aof.rewriting.load(Relaxed) {
            if schedule {
                persist::schedule_bgsave(ctx.srv);
                ctx.out.simple(b"Background saving scheduled");
                return Ok(());
            }
            return Err(save_error(persist::StartError::OtherChild));
        }
        return Err(save_error(persist::StartError::InProgress));
    }
    if ctx.held.is_some() || ctx.one.is_some() {
        persist::schedule_bgsave(ctx.srv);
        ctx.out.simple(b"Background saving scheduled");
        return Ok(());
    }
    persist::bgsave(ctx.srv).map_err(save_error)?;
    ctx.out.simple(b"Background saving started");
    Ok(())
}

/// Whether the calling connection is what Redis calls a local client (for
/// `enable-debug-command local` and `enable-protected-configs local`; the
/// same test as protected mode's).
fn client_is_local(ctx: &Ctx) -> bool {
    ctx.client
        .info
        .addr
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| crate::net::is_local(a.ip()))
}

// ---------------------------------------------------------------------------
// CONFIG

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Parameters whose name matches the glob-style <pattern>, with their values.",
    "SET <directive> <value>",
    "    Change <directive> to <value> (several pairs are applied all or nothing).",
    "RESETSTAT",
    "    Zero the statistics INFO reports.",
    "REWRITE",
    "    Write the running configuration back to the configuration file.",
    "HELP",
    "    Print this help.",
];

fn config(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    match ctx.spec.short_name() {
        "get" => {
            let found = ctx.srv.config().get(&argv[2..]);
            ctx.out.map(found.len());
            for (name, value) in found {
                ctx.out.bulk(name.as_bytes());
                ctx.out.bulk(&value);
            }
            Ok(())
        }
        "set" => config_set(ctx, argv),
        "resetstat" => {
            reset_stats(ctx);
            ctx.srv.latency.reset_histograms();
            ctx.out.ok();
            Ok(())
        }
        "rewrite" => {
            let res = ctx.srv.config().rewrite();
            match res {
                Ok(()) => {
                    notice!("CONFIG REWRITE executed with success.");
                    ctx.out.ok();
                    Ok(())
                }
                Err(e) => {
                    warning!("CONFIG REWRITE failed: {e}");
                    Err(CmdError::Msg(e))
                }
            }
        }
        "help" => {
            help_reply(ctx, CONFIG_HELP);
            Ok(())
        }
        _ => Err(CmdError::msg(errors::unknown_subcommand("config", argv[1]))),
    }
}

/// CONFIG RESETSTAT: every counter INFO reports, like Redis'
/// `resetServerStats` plus the per-command and error statistics.
pub(crate) fn reset_stats(ctx: &Ctx) {
    ctx.srv.stats.reset();
    ctx.srv.stats.used_memory_peak.store(0, Relaxed);
    for i in 0..ctx.srv.ks.db_count() {
        if let Some(db) = ctx.srv.ks.db(i) {
            db.expired.store(0, Relaxed);
        }
    }
}

fn config_set(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let args = &argv[2..];
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let pairs: Vec<(&[u8], &[u8])> = args.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let local = client_is_local(ctx);
    let changed = {
        let mut cfg = ctx.srv.config_mut();
        let changed = cfg.set_from(&pairs, local).map_err(CmdError::Msg)?;
        if changed.contains(&"loglevel") {
            crate::log::set_level(cfg.loglevel);
        }
        if pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(b"dir"))
            && let Err(e) = std::env::set_current_dir(&cfg.dir)
        {
            // Files (dump.rdb, temp files) are relative to the working
            // directory, as in Redis, whose CONFIG SET dir chdir()s too.
            return Err(CmdError::Msg(format!(
                "ERR CONFIG SET failed (possibly related to argument 'dir') - {e}"
            )));
        }
        ctx.srv.apply_config(&cfg);
        changed
    };
    let (appendonly, fsync, ts) = {
        let c = ctx.srv.config();
        (c.appendonly, c.appendfsync, c.aof_timestamp_enabled)
    };
    if changed.contains(&"appendfsync") {
        ctx.srv.persist.aof.writer.set_policy(fsync);
    }
    if changed.contains(&"requirepass") {
        // Redis' ACLUpdateDefaultUserPassword.
        let pass = ctx
            .srv
            .config()
            .requirepass
            .clone()
            .filter(|p| !p.is_empty());
        ctx.srv.acl.set_default_password(pass.as_deref());
    }
    if changed.contains(&"maxmemory") {
        crate::evict::limit_changed(ctx.srv);
    }
    if changed.contains(&"aof-timestamp-enabled") {
        ctx.srv.prop.set_timestamps(ts);
    }
    if changed.contains(&"appendonly") {
        if appendonly {
            if let Err(e) = persist::aof::turn_on(ctx.srv, ctx.client.in_exec) {
                ctx.srv.config_mut().appendonly = false;
                return Err(CmdError::Msg(format!(
                    "ERR CONFIG SET failed (possibly related to argument 'appendonly') - {e}"
                )));
            }
        } else {
            persist::aof::turn_off(ctx.srv);
        }
    }
    // Every other parameter is read where it is used (connection setup, each
    // read, the cron), so it takes effect without further action here.
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------
// SHUTDOWN

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]
fn shutdown(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (mut nosave, mut save, mut other, mut abort) = (false, false, false, false);
    let (mut force, mut now) = (false, false);
    for a in &argv[1..] {
        if is(a, "nosave") {
            nosave = true;
        } else if is(a, "save") {
            save = true;
        } else if is(a, "now") {
            other = true;
            now = true;
        } else if is(a, "force") {
            other = true;
            force = true;
        } else if is(a, "abort") {
            abort = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if (abort && (nosave || save || other)) || (nosave && save) {
        return Err(CmdError::Syntax);
    }
    if abort {
        // Only a shutdown waiting for its replicas can be aborted.
        if ctx.srv.repl.abort_shutdown() {
            ctx.out.ok();
            return Ok(());
        }
        return Err(CmdError::Static(errors::NO_SHUTDOWN_IN_PROGRESS));
    }
    if !nosave
        && ctx.srv.scripts.busy()
        && let Some(e) = ctx.srv.scripts.busy_error()
    {
        // A script past busy-reply-threshold: only SHUTDOWN NOSAVE (Redis).
        return Err(CmdError::Static(e));
    }
    notice!("User requested shutdown...");
    if !now
        && ctx.srv.config().shutdown_timeout > 0
        && ctx.srv.repl.has_replicas()
        && !ctx.srv.repl.in_sync(ctx.srv.prop.repl_offset())
    {
        // Replicas behind: the reply comes once they caught up (or the
        // timeout passed), then the save and the exit (Redis 7.0).
        let srv = ctx.srv.arc();
        ctx.client.pending = Some(Box::pin(async move {
            let failed = || format!("-{}\r\n", errors::SHUTDOWN_FAILED).into_bytes();
            if !crate::repl::wait_before_shutdown(&srv).await {
                return failed();
            }
            if !persist::final_save_forced(&srv, save, nosave, force) && !force {
                warning!(
                    "Errors trying to shut down the server. Check the logs for more information."
                );
                return failed();
            }
            srv.request_shutdown();
            Vec::new()
        }));
        return Ok(());
    }
    if !persist::final_save_forced(ctx.srv, save, nosave, force) && !force {
        warning!("Errors trying to shut down the server. Check the logs for more information.");
        return Err(CmdError::Static(errors::SHUTDOWN_FAILED));
    }
    // Like Redis, the connection is closed without a reply.
    ctx.client.close_after_reply = true;
    ctx.srv.request_shutdown();
    Ok(())
}

// ---------------------------------------------------------------------------
// DEBUG

const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ERROR <string>",
    "    Reply with an error whose text is <string>.",
    "LOADAOF",
    "    Write out the AOF, empty the dataset and load it back from the AOF files.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "OBJECT <key>",
    "    Low level details of the value stored at <key>.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Options:",
    "    * MERGE: conflicting keys are loaded from the RDB (the default refuses them).",
    "    * NOFLUSH: the dataset in memory is not emptied before loading.",
    "    * NOSAVE: the RDB on disk is loaded as it is, without saving first.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create string keys <prefix>:0 .. <prefix>:<count-1> (prefix defaults to",
    "    'key') holding value:<n>, padded with zero bytes or cut to <size>.",
    "    Existing keys are left alone.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    0 stops the background expiry of keys (they still expire on access),",
    "    1 turns it back on.",
    "SLEEP <seconds>",
    "    Block this connection's executor thread for <seconds> (decimals allowed).",
    "HELP",
    "    Print this help.",
];

fn debug(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let allowed = ctx.srv.config().enable_debug_command;
    if !allowed.allows(client_is_local(ctx)) {
        return Err(CmdError::Static(errors::DEBUG_NOT_ALLOWED));
    }
    let sub = argv[1];
    let n = argv.len();
    if is(sub, "help") && n == 2 {
        help_reply(ctx, DEBUG_HELP);
    } else if is(sub, "sleep") && n == 3 {
        let secs = strtod_prefix(argv[2]);
        if let Ok(d) = Duration::try_from_secs_f64(secs) {
            std::thread::sleep(d);
        }
        ctx.out.ok();
    } else if is(sub, "object") && n == 3 {
        debug_object(ctx, argv[2])?;
    } else if is(sub, "set-active-expire") && n == 3 {
        ctx.srv.active_expire.store(atoi(argv[2]) != 0, Relaxed);
        ctx.out.ok();
    } else if is(sub, "populate") && (3..=5).contains(&n) {
        debug_populate(ctx, argv)?;
    } else if is(sub, "reload") {
        if ctx.held.is_some() {
            // Inside EXEC: the transaction holds slots the save needs.
            return Err(CmdError::Static(errors::SAVE_FAILED));
        }
        let (mut merge, mut flush, mut save) = (false, true, true);
        for o in &argv[2..] {
            if is(o, "merge") {
                merge = true;
            } else if is(o, "noflush") {
                flush = false;
            } else if is(o, "nosave") {
                save = false;
            } else {
                return Err(CmdError::Static(errors::RELOAD_OPTIONS));
            }
        }
        persist::debug_reload(ctx.srv, merge, flush, save).map_err(CmdError::Static)?;
        ctx.out.ok();
    } else if is(sub, "loadaof") && n == 2 {
        if ctx.held.is_some() {
            return Err(CmdError::Static(errors::SAVE_FAILED));
        }
        persist::aof::debug_loadaof(ctx.srv);
        ctx.out.ok();
    } else if is(sub, "log") && n == 3 {
        warning!("DEBUG LOG: {}", String::from_utf8_lossy(argv[2]));
        ctx.out.ok();
    } else if is(sub, "error") && n == 3 {
        // Written as raw protocol by Redis: not counted in errorstats.
        ctx.out.error(argv[2]);
    } else {
        return Err(CmdError::msg(errors::subcommand_syntax("debug", sub)));
    }
    Ok(())
}

/// C's `strtod` on a whole argument: leading whitespace, then the longest
/// prefix that is a decimal number (or inf/nan); 0 when there is none.
fn strtod_prefix(a: &[u8]) -> f64 {
    let s = std::str::from_utf8(a).unwrap_or("");
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let rest = s.get(i..).unwrap_or("").to_ascii_lowercase();
    for word in ["infinity", "inf", "nan"] {
        if rest.starts_with(word) {
            return s
                .get(..i + word.len())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0.0);
        }
    }
    let digits = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let int_end = digits(i);
    let mut end = int_end;
    let mut any = int_end > i;
    if b.get(end) == Some(&b'.') {
        let frac_end = digits(end + 1);
        any |= frac_end > end + 1;
        end = frac_end;
    }
    if !any {
        return 0.0;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            end = exp_end;
        }
    }
    s.get(..end).and_then(|p| p.parse().ok()).unwrap_or(0.0)
}

/// C's `atoi`: optional whitespace and sign, then leading digits.
fn atoi(a: &[u8]) -> i64 {
    let mut it = a.iter().skip_while(|c| c.is_ascii_whitespace()).peekable();
    let neg = match it.peek() {
        Some(b'-') => {
            it.next();
            true
        }
        Some(b'+') => {
            it.next();
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    for c in it.take_while(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add((c - b'0') as i64);
    }
    if neg { -v } else { v }
}

/// Bytes of an RDB length prefix.
fn rdb_len_size(len: usize) -> usize {
    match len {
        0..64 => 1,
        64..16384 => 2,
        _ if len as u64 <= u32::MAX as u64 => 5,
        _ => 9,
    }
}

/// Length of a string value in an RDB file, without LZF compression (Redis
/// compresses strings over 20 bytes when that saves space, so long
/// compressible strings report less there).
fn rdb_string_size(s: &[u8]) -> usize {
    if let Some(v) = parse_i64(s).filter(|_| s.len() <= 11) {
        if (-128..=127).contains(&v) {
            return 2;
        } else if (-32768..=32767).contains(&v) {
            return 3;
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            return 5;
        }
    }
    rdb_len_size(s.len()) + s.len()
}

/// Redis shares the integer objects 0..9999 (refcount INT_MAX).
const SHARED_INTEGERS: i64 = 10000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// DEBUG OBJECT <key>
fn debug_object(ctx: &mut Ctx, key: &[u8]) -> CmdResult {
    let db = ctx.db();
    let now = ctx.now;
    let lru_now = ctx.lru();
    let line = {
        let mut slot = ctx.ks().lock_key(db, key);
        let Some(e) = slot.get(key, now) else {
            drop(slot);
            ctx.hit(false);
            return Err(CmdError::NoSuchKey);
        };
        let encoding = e.encoding();
        let (serialized, refcount) = match e.as_str() {
            Some(s) => {
                let shared = encoding == "int"
                    && parse_i64(s).is_some_and(|v| (0..SHARED_INTEGERS).contains(&v));
                (rdb_string_size(s), if shared { SHARED_REFCOUNT } else { 1 })
            }
            None => (e.heap_size(), 1),
        };
        let lru = e.lru();
        // The LRU clock is 24 bits of seconds; it wraps every ~194 days.
        let idle = if lru_now >= lru {
            lru_now - lru
        } else {
            lru_now + (0xff_ffff - lru)
        };
        format!(
            "Value at:{:p} refcount:{refcount} encoding:{encoding} serializedlength:{serialized} lru:{lru} lru_seconds_idle:{idle}",
            e as *const Entry
        )
    };
    ctx.hit(true);
    ctx.out.simple(line.as_bytes());
    Ok(())
}

/// DEBUG POPULATE <count> [prefix] [size]
fn debug_populate(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let positive = |a: &[u8]| match parse_i64(a) {
        Some(v) if v >= 0 => Ok(v as u64),
        _ => Err(CmdError::Static(errors::NOT_POSITIVE)),
    };
    let count = positive(argv[2])?;
    let prefix: &[u8] = argv.get(3).copied().unwrap_or(b"key");
    let size = match argv.get(4) {
        Some(a) => positive(a)? as usize,
        None => 0,
    };
    let db = ctx.db();
    let lru = ctx.lru();
    let now = ctx.now;
    let mut key = Vec::with_capacity(prefix.len() + 21);
    let mut val = Vec::with_capacity(size.max(26));
    for j in 0..count {
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        key.extend_from_slice(itoa::Buffer::new().format(j).as_bytes());
        let mut slot = ctx.ks().lock_key(db, &key);
        if slot.get(&key, now).is_some() {
            continue;
        }
        val.clear();
        val.extend_from_slice(b"value:");
        val.extend_from_slice(itoa::Buffer::new().format(j).as_bytes());
        if size > 0 {
            val.resize(size, 0);
        }
        slot.insert(Entry::new_str(&key, &val, None, lru));
    }
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cmd::conn::harness::H;

    #[test]
    fn flush_swap_dbsize() {
        let mut h = H::new();
        let mut c = h.connect();
        h.text(&mut c, "SET a 1");
        h.text(&mut c, "SET b 2");
        assert_eq!(h.text(&mut c, "DBSIZE"), ":2\r\n");
        assert_eq!(
            h.text(&mut c, "SWAPDB 0 x"),
            "-ERR invalid second DB index\r\n"
        );
        assert_eq!(
            h.text(&mut c, "SWAPDB 2147483648 0"),
            "-ERR invalid first DB index\r\n"
        );
        assert_eq!(
            h.text(&mut c, "SWAPDB 0 16"),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(h.text(&mut c, "SWAPDB 0 1"), "+OK\r\n");
        assert_eq!(h.text(&mut c, "DBSIZE"), ":0\r\n");
        h.text(&mut c, "SELECT 1");
        assert_eq!(h.text(&mut c, "DBSIZE"), ":2\r\n");
        assert_eq!(h.text(&mut c, "FLUSHDB x"), "-ERR syntax error\r\n");
        assert_eq!(h.text(&mut c, "FLUSHDB ASYNC x"), "-ERR syntax error\r\n");
        assert_eq!(h.text(&mut c, "FLUSHDB async"), "+OK\r\n");
        assert_eq!(h.text(&mut c, "DBSIZE"), ":0\r\n");
        h.text(&mut c, "SET x 1");
        h.text(&mut c, "SELECT 0");
        h.text(&mut c, "SET y 1");
        assert_eq!(h.text(&mut c, "FLUSHALL SYNC"), "+OK\r\n");
        assert_eq!(h.srv.ks.db(0).map(|d| d.len()), Some(0));
        assert_eq!(h.srv.ks.db(1).map(|d| d.len()), Some(0));
    }

    #[test]
    fn time_and_lastsave() {
        let mut h = H::new();
        let mut c = h.connect();
        let t = h.text(&mut c, "TIME");
        let parts: Vec<&str> = t.split("\r\n").collect();
        assert_eq!(parts[0], "*2");
        let secs: u64 = parts[2].parse().unwrap();
        let usec: u64 = parts[4].parse().unwrap();
        assert!(
            secs.abs_diff(h.srv.started_ms / 1000) <= 5 && usec < 1_000_000,
            "{t}"
        );
        assert_eq!(
            h.text(&mut c, "LASTSAVE"),
            format!(":{}\r\n", h.srv.started_ms / 1000)
        );
    }

    #[test]
    fn config_get_set_resetstat() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(
            h.text(&mut c, "CONFIG GET maxmemory"),
            "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
        );
        assert_eq!(h.text(&mut c, "CONFIG GET nosuch"), "*0\r\n");
        assert_eq!(
            h.text(&mut c, "CONFIG SET maxmemory 10 hz"),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            h.text(&mut c, "CONFIG SET nosuch 1"),
            "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n"
        );
        assert_eq!(h.text(&mut c, "CONFIG SET maxmemory 1mb"), "+OK\r\n");
        assert_eq!(h.srv.config().maxmemory, 1 << 20);
        h.text(&mut c, "HELLO 3");
        assert_eq!(
            h.text(&mut c, "CONFIG GET maxmemory"),
            "%1\r\n$9\r\nmaxmemory\r\n$7\r\n1048576\r\n"
        );
        assert_eq!(h.text(&mut c, "CONFIG SET requirepass pw"), "+OK\r\n");
        let mut d = h.connect();
        assert_eq!(
            h.text(&mut d, "PING"),
            "-NOAUTH Authentication required.\r\n"
        );
        assert_eq!(
            h.text(&mut c, "PING"),
            "+PONG\r\n",
            "existing connections stay authenticated"
        );
        assert_eq!(
            h.text(&mut c, "CONFIG REWRITE"),
            "-ERR The server is running without a config file\r\n"
        );
        assert!(h.srv.stats.total_commands.load(Relaxed) > 0);
        if let Some(d) = h.srv.ks.db(0) {
            d.expired.store(5, Relaxed);
        }
        assert_eq!(h.text(&mut c, "CONFIG RESETSTAT"), "+OK\r\n");
        assert_eq!(h.srv.stats.total_error_replies.load(Relaxed), 0);
        assert_eq!(h.srv.ks.db(0).map(|d| d.expired.load(Relaxed)), Some(0));
        assert!(
            h.text(&mut c, "CONFIG HELP")
                .starts_with("*11\r\n+CONFIG <subcommand>")
        );
    }

    #[test]
    fn config_set_loglevel_takes_effect() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(h.text(&mut c, "CONFIG SET loglevel warning"), "+OK\r\n");
        assert!(!crate::log::enabled(crate::log::Level::Notice));
        assert_eq!(h.text(&mut c, "CONFIG SET loglevel notice"), "+OK\r\n");
        assert!(crate::log::enabled(crate::log::Level::Notice));
    }

    #[test]
    fn shutdown() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(h.text(&mut c, "SHUTDOWN x"), "-ERR syntax error\r\n");
        assert_eq!(
            h.text(&mut c, "SHUTDOWN NOSAVE SAVE"),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            h.text(&mut c, "SHUTDOWN ABORT NOW"),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            h.text(&mut c, "SHUTDOWN ABORT"),
            "-ERR No shutdown in progress.\r\n"
        );
        // A save that cannot be written keeps the server up.
        h.srv.config_mut().dbfilename = "/nonexistent-codis-dir/dump.rdb".into();
        assert_eq!(
            h.text(&mut c, "SHUTDOWN SAVE"),
            "-ERR Errors trying to SHUTDOWN. Check logs.\r\n"
        );
        assert!(!h.srv.shutting_down.load(Relaxed));
        assert_eq!(h.text(&mut c, "SHUTDOWN NOSAVE NOW"), "");
        assert!(h.srv.shutting_down.load(Relaxed));
        assert!(c.client.close_after_reply);
    }

    #[test]
    fn monitor_sees_later_commands() {
        let mut h = H::new();
        let mut m = h.connect();
        let mut c = h.connect();
        assert_eq!(h.text(&mut m, "MONITOR"), "+OK\r\n");
        // Again: nothing happens, no reply.
        assert_eq!(h.text(&mut m, "MONITOR"), "");
        h.text(&mut c, "SET k \"a b\"");
        h.text(&mut c, "CONFIG GET port");
        h.text(&mut c, "AUTH secret");
        let mail = String::from_utf8(m.client.info.take_mail()).unwrap();
        let lines: Vec<&str> = mail.lines().collect();
        assert_eq!(lines.len(), 2, "{mail}");
        assert!(
            lines[0].starts_with('+') && lines[0].ends_with("] \"SET\" \"k\" \"a b\""),
            "{mail}"
        );
        assert!(lines[0].contains(" [0 127.0.0.1:"), "{mail}");
        assert!(lines[1].ends_with("] \"AUTH\" \"(redacted)\""), "{mail}");
    }

    #[test]
    fn debug() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(
            h.text(&mut c, "DEBUG SLEEP 0"),
            format!("-{}\r\n", errors::DEBUG_NOT_ALLOWED)
        );
        let mut h = H::with(|c| c.enable_debug_command = crate::config::EnableLevel::Local);
        let mut c = h.connect();
        assert_eq!(h.text(&mut c, "DEBUG SLEEP 0"), "+OK\r\n");
        let t = std::time::Instant::now();
        assert_eq!(h.text(&mut c, "DEBUG SLEEP 0.05"), "+OK\r\n");
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(
            h.text(&mut c, "DEBUG SLEEP"),
            "-ERR unknown subcommand or wrong number of arguments for 'SLEEP'. Try DEBUG HELP.\r\n"
        );
        assert_eq!(h.text(&mut c, "DEBUG OBJECT nokey"), "-ERR no such key\r\n");
        h.text(&mut c, "SET n 123");
        h.text(&mut c, "SET s hello");
        let n = h.text(&mut c, "DEBUG OBJECT n");
        assert!(n.starts_with("+Value at:0x"), "{n}");
        assert!(
            n.contains(" refcount:2147483647 encoding:int serializedlength:2 lru:"),
            "{n}"
        );
        assert!(n.ends_with(" lru_seconds_idle:0\r\n"), "{n}");
        let s = h.text(&mut c, "DEBUG OBJECT s");
        assert!(
            s.contains(" refcount:1 encoding:embstr serializedlength:6 "),
            "{s}"
        );
        assert_eq!(
            h.text(&mut c, "DEBUG POPULATE -1"),
            "-ERR value is out of range, must be positive\r\n"
        );
        assert_eq!(h.text(&mut c, "DEBUG POPULATE 3"), "+OK\r\n");
        assert_eq!(h.text(&mut c, "GET key:2"), "$7\r\nvalue:2\r\n");
        assert_eq!(h.text(&mut c, "DEBUG POPULATE 2 p 10"), "+OK\r\n");
        assert_eq!(h.run(&mut c, "GET p:1"), b"$10\r\nvalue:1\0\0\0\r\n");
        h.text(&mut c, "SET key:0 keep");
        assert_eq!(h.text(&mut c, "DEBUG POPULATE 1 key 3"), "+OK\r\n");
        assert_eq!(h.text(&mut c, "GET key:0"), "$4\r\nkeep\r\n");
        assert_eq!(h.text(&mut c, "DBSIZE"), ":7\r\n");
        assert_eq!(h.text(&mut c, "DEBUG SET-ACTIVE-EXPIRE 0"), "+OK\r\n");
        assert!(!h.srv.active_expire.load(Relaxed));
        assert_eq!(h.text(&mut c, "DEBUG SET-ACTIVE-EXPIRE 1"), "+OK\r\n");
        assert!(h.srv.active_expire.load(Relaxed));
        let errors_before = h.srv.stats.total_error_replies.load(Relaxed);
        assert_eq!(h.text(&mut c, "DEBUG ERROR \"foo bar\""), "-foo bar\r\n");
        assert_eq!(h.srv.stats.total_error_replies.load(Relaxed), errors_before);
        assert_eq!(h.text(&mut c, "DEBUG LOG hi"), "+OK\r\n");
        assert!(
            h.text(&mut c, "DEBUG HELP")
                .starts_with("*25\r\n+DEBUG <subcommand>")
        );
    }

    #[test]
    fn strtod() {
        assert_eq!(strtod_prefix(b"1.5"), 1.5);
        assert_eq!(strtod_prefix(b" 1"), 1.0);
        assert_eq!(strtod_prefix(b"x"), 0.0);
        assert_eq!(strtod_prefix(b"1e-3"), 0.001);
        assert_eq!(strtod_prefix(b"2abc"), 2.0);
        assert_eq!(strtod_prefix(b".5"), 0.5);
        assert_eq!(strtod_prefix(b"-1"), -1.0);
        assert_eq!(strtod_prefix(b"1e"), 1.0);
        assert!(strtod_prefix(b"inf").is_infinite());
        assert!(strtod_prefix(b"nan").is_nan());
        assert_eq!(strtod_prefix(b"."), 0.0);
        assert_eq!(strtod_prefix(b"\xff"), 0.0);
        assert!(Duration::try_from_secs_f64(strtod_prefix(b"inf")).is_err());
        assert!(Duration::try_from_secs_f64(-1.0).is_err());
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b" -12z"), -12);
        assert_eq!(atoi(b"99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn rdb_sizes() {
        // Values checked against redis-server 7.0.15 DEBUG OBJECT.
        assert_eq!(rdb_string_size(b"123"), 2);
        assert_eq!(rdb_string_size(b"-5"), 2);
        assert_eq!(rdb_string_size(b""), 1);
        assert_eq!(rdb_string_size(b"x"), 2);
        assert_eq!(rdb_string_size(b"hellox"), 7);
        assert_eq!(rdb_string_size(b"value:0"), 8);
        assert_eq!(rdb_string_size(b"1000"), 3);
        assert_eq!(rdb_string_size(b"100000"), 5);
        assert_eq!(rdb_string_size(b"10000000000"), 12);
        assert_eq!(rdb_string_size(&[b'a'; 64]), 66);
        assert_eq!(rdb_len_size(20000), 5);
    }
}
