//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH (Redis 7.0's
//! `multi.c` semantics, our own code).
//!
//! * Queuing happens in the gate (`exec::execute_checked`): a client in
//!   MULTI gets `+QUEUED` for every command but EXEC, DISCARD, MULTI, WATCH,
//!   QUIT and RESET; a command rejected while queuing (unknown, wrong arity,
//!   NOAUTH, not allowed in a transaction) flags the transaction, and EXEC
//!   then answers `EXECABORT`. Queued commands live in one flat buffer.
//! * EXEC takes the union of its commands' slots as one lock set
//!   (`db::LockSet`, ascending DB then slot; "all slots" for commands whose
//!   keys are found at run time) and runs each command through the ordinary
//!   call path with that set held, so no other client, `--io-threads`
//!   worker, the expiry cycle or a migration engine sees it half done. It
//!   also holds one migration write epoch: a transaction that would write a
//!   key in flight is refused whole.
//! * WATCH: a registry (db, key) → watching clients; every change reported
//!   through `Server::touch` marks the watchers dirty (`ClientInfo::dirty_cas`).
//!   A key already logically expired at WATCH time only counts if it comes
//!   back; a watched key that expires before EXEC fails it (Redis 7.0).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::command::{self, CmdId, flags};
use protocol::slot::SLOTS;

use crate::client::{Client, ClientInfo};
use crate::db::{KeyAccess, LockPlan, LockSet};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{self, Ctx};

/// A client's transaction: the queued commands (arguments in one buffer)
/// and whether queuing failed.
#[derive(Default)]
pub struct MultiState {
    args: Vec<u8>,
    /// End offset of every argument in `args`.
    ends: Vec<usize>,
    /// Index into `ends` where each command's arguments end.
    cmds: Vec<usize>,
    /// A command was rejected while queuing: EXEC answers EXECABORT.
    pub aborted: bool,
    /// A queued command is a write (EXEC then holds a migration epoch).
    pub writes: bool,
    /// A queued command may grow memory (EXEC is then refused with -OOM
    /// when over maxmemory, as Redis).
    pub denyoom: bool,
}

impl MultiState {
    /// Queues `argv`; `write`: its spec is a write.
    pub fn queue(&mut self, argv: &[&[u8]], write: bool) {
        self.writes |= write;
        for a in argv {
            self.args.extend_from_slice(a);
            self.ends.push(self.args.len());
        }
        self.cmds.push(self.ends.len());
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Bytes held by the queue (CLIENT LIST `multi-mem`-like accounting).
    pub fn mem(&self) -> usize {
        self.args.capacity() + (self.ends.capacity() + self.cmds.capacity()) * 8
    }

    /// Whether `f` holds for some queued command (id and arguments).
    pub fn any_command(&self, mut f: impl FnMut(CmdId, &[&[u8]]) -> bool) -> bool {
        let mut argv = Vec::new();
        (0..self.len()).any(|i| {
            self.command(i, &mut argv);
            argv.first()
                .and_then(|n| command::lookup(n))
                .is_some_and(|id| f(id, &argv))
        })
    }

    /// The arguments of queued command `i`.
    fn command<'s>(&'s self, i: usize, out: &mut Vec<&'s [u8]>) {
        out.clear();
        let first = if i == 0 { 0 } else { self.cmds[i - 1] };
        let last = self.cmds[i];
        let mut start = if first == 0 { 0 } else { self.ends[first - 1] };
        for &e in &self.ends[first..last] {
            out.push(&self.args[start..e]);
            start = e;
        }
    }
}

/// One client watching one key.
struct Watcher {
    info: Arc<ClientInfo>,
    /// The key was logically expired (but not yet deleted) at WATCH time.
    expired: bool,
}

/// Watchers per (db, key).
type WatchMap = HashMap<(usize, Box<[u8]>), Vec<Watcher>>;

/// The WATCH registry (one per server).
#[derive(Default)]
pub struct Watches {
    keys: Mutex<WatchMap>,
    /// Number of watched (db, key) pairs: writers skip the lock when 0.
    count: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Watches {
    /// Whether anybody watches anything (one atomic load).
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(SeqCst) != 0
    }

    fn add(&self, db: usize, key: &[u8], info: &Arc<ClientInfo>, expired: bool) {
        let mut m = lock(&self.keys);
        let list = m.entry((db, key.into())).or_default();
        if list.is_empty() {
            self.count.fetch_add(1, SeqCst);
        }
        list.push(Watcher {
            info: info.clone(),
            expired,
        });
    }

    fn remove_client(&self, client_id: u64, keys: &[(usize, Vec<u8>)]) {
        if keys.is_empty() {
            return;
        }
        let mut m = lock(&self.keys);
        for (db, k) in keys {
            let id = (*db, k.clone().into_boxed_slice());
            if let Some(list) = m.get_mut(&id) {
                list.retain(|w| w.info.id != client_id);
                if list.is_empty() {
                    m.remove(&id);
                    self.count.fetch_sub(1, SeqCst);
                }
            }
        }
    }

    /// A change to `key` of DB `db`: its watchers' next EXEC fails.
    /// `exists` says whether the key exists after the change (a watcher of
    /// a key that was already expired at WATCH time is not dirtied by that
    /// key's deletion).
    pub fn touch(&self, db: usize, key: &[u8], exists: impl FnOnce() -> bool) {
        if !self.any() {
            return;
        }
        let mut m = lock(&self.keys);
        let Some(list) = m.get_mut(&(db, Box::<[u8]>::from(key))) else {
            return;
        };
        let mut exists = Some(exists);
        let mut present = None;
        for w in list.iter_mut() {
            if w.expired {
                let p = *present.get_or_insert_with(|| exists.take().is_some_and(|f| f()));
                if !p {
                    w.expired = false;
                    continue;
                }
            }
            w.info.dirty_cas.store(true, Relaxed);
        }
    }

    /// FLUSHDB / FLUSHALL / SWAPDB: every watcher of a key that exists in
    /// `db` (or in `other`, for SWAPDB) is dirtied. `exists(db, key)` looks
    /// a key up (without expiring it: true for a logically expired key).
    pub fn touch_db(
        &self,
        db: usize,
        other: Option<usize>,
        exists: impl Fn(usize, &[u8]) -> Option<bool>,
    ) {
        if !self.any() {
            return;
        }
        let mut m = lock(&self.keys);
        for ((d, key), list) in m.iter_mut() {
            if *d != db {
                continue;
            }
            // Some(expired?) when present.
            let here = exists(db, key);
            let there = other.and_then(|o| exists(o, key));
            if here.is_none() && there.is_none() {
                continue;
            }
            for w in list.iter_mut() {
                if w.expired {
                    match there {
                        None => {
                            w.expired = false;
                            continue;
                        }
                        Some(true) => continue,
                        Some(false) => {}
                    }
                } else if here.is_none() && there == Some(true) {
                    w.expired = true;
                    continue;
                }
                w.info.dirty_cas.store(true, Relaxed);
            }
        }
    }
}

/// Forgets every key the client watches (UNWATCH, EXEC, DISCARD, RESET,
/// disconnect).
pub fn unwatch_all(srv: &crate::server::Server, client: &mut Client) {
    if client.watched.is_empty() {
        return;
    }
    let keys = std::mem::take(&mut client.watched);
    srv.watches.remove_client(client.id, &keys);
}

/// Leaves MULTI state (DISCARD, EXEC, RESET).
pub fn discard(srv: &crate::server::Server, client: &mut Client) {
    client.multi = None;
    client.info.multi.store(false, Relaxed);
    client.info.queued.store(0, Relaxed);
    client.info.dirty_cas.store(false, Relaxed);
    unwatch_all(srv, client);
}

/// Marks the transaction as failed (a command was rejected while queuing).
#[inline]
pub fn flag(client: &mut Client) {
    if let Some(m) = client.multi.as_mut() {
        m.aborted = true;
    }
}

pub fn handler(id: CmdId) -> Option<exec::Handler> {
    Some(match id {
        CmdId::Multi => multi,
        CmdId::Exec => exec_cmd,
        CmdId::Discard => discard_cmd,
        CmdId::Watch => watch,
        CmdId::Unwatch => unwatch,
        _ => return None,
    })
}

fn multi(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::Static(errors::MULTI_NESTED));
    }
    ctx.client.multi = Some(MultiState::default());
    ctx.client.info.multi.store(true, Relaxed);
    ctx.out.ok();
    Ok(())
}

fn discard_cmd(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::Static(errors::DISCARD_WITHOUT_MULTI));
    }
    discard(ctx.srv, ctx.client);
    ctx.out.ok();
    Ok(())
}

fn watch(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::Static(errors::WATCH_IN_MULTI));
    }
    if ctx.client.info.dirty_cas.load(Relaxed) {
        // Already doomed: watching more changes nothing.
        ctx.out.ok();
        return Ok(());
    }
    let dbi = ctx.client.db;
    let db = ctx.db();
    let now = ctx.now;
    for &key in &argv[1..] {
        if ctx
            .client
            .watched
            .iter()
            .any(|(d, k)| *d == dbi && k == key)
        {
            continue;
        }
        let expired = ctx
            .ks()
            .lock_key(db, key)
            .peek(key)
            .is_some_and(|e| e.is_expired(now));
        ctx.srv.watches.add(dbi, key, &ctx.client.info, expired);
        ctx.client.watched.push((dbi, key.to_vec()));
    }
    ctx.out.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    unwatch_all(ctx.srv, ctx.client);
    ctx.client.info.dirty_cas.store(false, Relaxed);
    ctx.out.ok();
    Ok(())
}

/// Whether a watched key that was live at WATCH time has logically expired
/// since (EXEC then fails, as Redis 7.0's `isWatchedKeyExpired`).
fn watched_key_expired(ctx: &mut Ctx) -> bool {
    if ctx.client.watched.is_empty() {
        return false;
    }
    let now = ctx.now;
    let ks = ctx.ks();
    let id = ctx.client.id;
    let watched = &ctx.client.watched;
    let registry = lock(&ctx.srv.watches.keys);
    for (dbi, key) in watched {
        let was_expired = registry
            .get(&(*dbi, Box::<[u8]>::from(&key[..])))
            .and_then(|l| l.iter().find(|w| w.info.id == id))
            .is_some_and(|w| w.expired);
        if was_expired {
            continue;
        }
        let Some(db) = ks.db(*dbi) else { continue };
        if ks
            .lock_key(db, key)
            .peek(key)
            .is_some_and(|e| e.is_expired(now))
        {
            return true;
        }
    }
    false
}

/// The lock plan of a queue: each command's key slots in the DB it will
/// run in (following queued SELECTs), or everything; `write_key` sees
/// every key of every write, with its DB (the migration check).
fn plan(
    state: &MultiState,
    mut db: usize,
    dbs: usize,
    mut write_key: impl FnMut(usize, &[u8]),
) -> LockPlan {
    let mut plan = LockPlan::default();
    let mut argv: Vec<&[u8]> = Vec::new();
    for i in 0..state.len() {
        state.command(i, &mut argv);
        let Some(id) = argv.first().and_then(|n| command::lookup(n)) else {
            continue;
        };
        let spec = exec::spec_of(id, &argv);
        if id == CmdId::Select {
            if let Some(n) = argv
                .get(1)
                .and_then(|a| protocol::number::parse_i64(a))
                .filter(|&n| n >= 0 && (n as usize) < dbs)
            {
                db = n as usize;
            }
            continue;
        }
        if spec.has(flags::WRITE) {
            spec.for_each_key_pos(&argv, |i| write_key(db, argv[i]));
        }
        if exec::runs_script(id) {
            // Its declared keys are checked like a write's (a script that
            // may write and whose keys are in flight aborts the EXEC).
            if !spec.has(flags::READONLY) {
                spec.for_each_key_pos(&argv, |i| write_key(db, argv[i]));
            }
            // A script's keys are known only as it runs, and it cannot grow
            // a lock set inside the transaction's: EXEC holds every slot.
            plan.all = true;
            plan.slots.clear();
            continue;
        }
        exec::plan_command(&mut plan, id, spec, &argv, db);
    }
    debug_assert!(plan.pairs().all(|(_, s)| s < SLOTS));
    plan
}

fn exec_cmd(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    let Some(state) = ctx.client.multi.take() else {
        return Err(CmdError::Static(errors::EXEC_WITHOUT_MULTI));
    };
    if watched_key_expired(ctx) {
        ctx.client.info.dirty_cas.store(true, Relaxed);
    }
    let srv = ctx.srv;
    if state.aborted {
        discard(srv, ctx.client);
        return Err(CmdError::Static(errors::EXECABORT));
    }
    if ctx.client.info.dirty_cas.load(Relaxed) {
        discard(srv, ctx.client);
        ctx.out.null_array();
        return Ok(());
    }
    discard(srv, ctx.client);
    // Hold one migration epoch for the whole transaction (a registration
    // waits for it), then refuse it whole if a write touches a key in
    // flight: checked in the same walk over the queue as the lock plan.
    let _epoch = state.writes.then(|| srv.inflight.enter());
    let mut moving = false;
    let plan = plan(&state, ctx.client.db, srv.ks.db_count(), |db, key| {
        moving |= srv.inflight.any(db) && srv.inflight.is_migrating(db, key);
    });
    if moving {
        return Err(CmdError::Static(errors::EXECABORT_MIGRATING));
    }
    let mut argv: Vec<&[u8]> = Vec::with_capacity(8);
    let set = LockSet::lock(&srv.ks, plan);
    ctx.out.array(state.len());
    ctx.client.in_exec = true;
    for i in 0..state.len() {
        state.command(i, &mut argv);
        exec::call_held(srv, ctx.client, ctx.out, ctx.now, &argv, &set);
    }
    ctx.client.in_exec = false;
    // The transaction's changes reach the stream while its lock set is
    // still held, as one MULTI/EXEC block when there is more than one
    // (Redis 7.0 propagates a transaction with one write as that write).
    let entries = std::mem::take(&mut ctx.client.exec_prop);
    let targets = std::mem::take(&mut ctx.client.exec_prop_to);
    if !entries.is_empty() {
        srv.prop.emit_split(&entries, &targets, false);
        ctx.client.woff = srv.prop.repl_offset();
    }
    drop(set);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_round_trips_arguments() {
        let mut m = MultiState::default();
        m.queue(&[b"SET", b"k", b""], true);
        m.queue(&[b"PING"], false);
        m.queue(&[b"MSET", b"a", b"1", b"b", b"2"], true);
        let mut v = Vec::new();
        m.command(0, &mut v);
        assert_eq!(v, vec![&b"SET"[..], b"k", b""]);
        m.command(1, &mut v);
        assert_eq!(v, vec![&b"PING"[..]]);
        m.command(2, &mut v);
        assert_eq!(v, vec![&b"MSET"[..], b"a", b"1", b"b", b"2"]);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn exec_propagates_one_block() {
        let mut h = crate::testkit::Harness::new();
        h.capture();
        h.run("FLUSHALL");
        for l in ["MULTI", "PING", "FLUSHDB", "SELECT 1", "FLUSHDB", "EXEC"] {
            h.run(l);
        }
        // Nothing changed: nothing propagated (not even MULTI/EXEC).
        for l in ["MULTI", "PING", "EXEC"] {
            h.run(l);
        }
        assert_eq!(
            h.propagated(),
            [
                "SELECT 0", "FLUSHALL", "MULTI", "FLUSHDB", "SELECT 1", "FLUSHDB", "EXEC"
            ]
        );
    }
}
