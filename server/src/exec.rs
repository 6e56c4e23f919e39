//! The single gate every command passes through, in Redis 7.0's order
//! (`processCommand` + `call`): look the command up (unknown command /
//! unknown subcommand), check arity, check authentication, then run the
//! handler, time it, and count calls, rejected and failed calls, and error
//! replies. Handlers only do the work and return [`CmdResult`].

use std::sync::OnceLock;
use std::sync::atomic::Ordering::Relaxed;

use protocol::command::{self, CmdId, CommandSpec, flags};
use protocol::resp::Reply;

use crate::client::Client;
use crate::db::Db;
use crate::errors::{self, CmdError, CmdResult};
use crate::server::Server;

/// Everything a handler may touch.
pub struct Ctx<'a> {
    pub srv: &'a Server,
    pub client: &'a mut Client,
    pub out: &'a mut Reply,
    /// Unix ms, sampled once per batch of commands (Redis caches it per call).
    pub now: u64,
    /// The spec that matched (the subcommand's, for containers).
    pub spec: &'static CommandSpec,
    /// Slot locks the caller holds for this command (EXEC's lock set);
    /// `ks()` borrows from it instead of locking.
    pub held: Option<&'a (dyn crate::db::HeldSlots + 'a)>,
    /// The one slot the gate locked for a single-key command.
    pub one: Option<&'a crate::db::OneSlot<'a>>,
}

impl<'a> Ctx<'a> {
    /// The client's selected DB (borrows the server, not the context, so the
    /// reply buffer stays writable while a slot is locked).
    pub fn db(&self) -> &'a Db {
        let srv: &'a Server = self.srv;
        // `select` only stores valid indexes; fall back to DB 0 defensively.
        srv.ks
            .db(self.client.db)
            .or_else(|| srv.ks.db(0))
            .expect("at least one database")
    }

    /// Slot locking for handlers, with the server's lifetime: through the
    /// caller's lock set when it holds one.
    pub fn ks(&self) -> crate::db::Locker<'a> {
        let srv: &'a Server = self.srv;
        crate::db::Locker::new(&srv.ks, self.held, self.one)
    }

    /// Counts a keyspace hit or miss (INFO stats).
    #[inline]
    pub fn hit(&self, found: bool) {
        if found {
            self.srv.stats.keyspace_hits.fetch_add(1, Relaxed);
        } else {
            self.srv.stats.keyspace_misses.fetch_add(1, Relaxed);
        }
    }

    /// [`Ctx::hit`] for `key`, publishing Redis' `keymiss` notification on a
    /// miss (`lookupKeyRead` without LOOKUP_NONOTIFY).
    #[inline]
    pub fn hit_key(&self, found: bool, key: &[u8]) {
        self.hit(found);
        if !found {
            self.srv
                .notify(self.client.db, notify::KEY_MISS, "keymiss", key);
        }
    }

    /// Blocks the client on `keys` (see block.rs): the handler found nothing
    /// to serve and returns `Ok(())` without a reply; the connection waits
    /// until a key is ready (then `argv` runs again), `deadline` (absolute
    /// unix ms, None = forever) passes (a `nil` reply), or the client leaves.
    pub fn block_on(
        &mut self,
        argv: &[&[u8]],
        keys: &[&[u8]],
        deadline: Option<u64>,
        nil: crate::block::Nil,
    ) {
        if self.client.in_exec {
            // Inside EXEC a blocking command answers as if it timed out,
            // except BLMOVE/BRPOPLPUSH, which answer a null bulk there
            // (Redis' CLIENT_DENY_BLOCKING path) but a null array on timeout.
            if matches!(self.spec.name, "blmove" | "brpoplpush") {
                self.out.null();
                return;
            }
            match nil {
                crate::block::Nil::Array => self.out.null_array(),
                crate::block::Nil::Bulk => self.out.null(),
            }
            return;
        }
        self.client.block = Some(crate::block::BlockRequest {
            argv: argv.iter().map(|a| a.to_vec()).collect(),
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            deadline,
            nil,
            each: false,
        });
    }

    /// Answers this command later: the connection writes what `reply`
    /// resolves to (RESP bytes) before it runs the next pipelined command.
    pub fn defer(&mut self, reply: crate::migrate::Pending) {
        self.client.pending = Some(reply);
    }

    /// Reports a change to `key` of the client's DB, as Redis'
    /// `signalModifiedKey` + `notifyKeyspaceEvent` + `server.dirty++`: the
    /// one modified-key signal behind WATCH, blocked-client wake-ups,
    /// keyspace notifications and propagation (`class` is a [`notify`]
    /// constant, `event` Redis' event name). Call it after the change, once
    /// per key changed, while the key's slot is still locked; never for a
    /// command that changed nothing (a command that reports no change is
    /// not propagated).
    #[inline]
    pub fn changed(&mut self, class: u32, event: &'static str, key: &[u8]) {
        // The gate adds the command's count to the server's dirty counter
        // once (one atomic add per command, not per key).
        self.client.call_dirty += 1;
        self.srv.signal_modified(self.client.db, class, event, key);
    }

    /// [`Ctx::changed`] for a key of another DB (MOVE, COPY … DB).
    #[inline]
    pub fn changed_in(&mut self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        self.client.call_dirty += 1;
        self.srv.signal_modified(db, class, event, key);
    }

    /// A keyspace notification without a change (e.g. `new` is sent along
    /// with the command's own event; key-miss events).
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        self.srv.notify(self.client.db, class, event, key);
    }

    /// Adds `n` to the dirty counter beyond the one per changed key (Redis
    /// counts some commands by elements: SADD of 3 members adds 3).
    #[inline]
    pub fn dirty(&mut self, n: u64) {
        self.client.call_dirty += n;
    }

    /// Propagates `argv` (in the client's DB) instead of the command's own
    /// line: Redis' `rewriteClientCommandVector` / `alsoPropagate` for
    /// commands whose effect depends on time or chance (relative expiry →
    /// `PEXPIREAT`, `INCRBYFLOAT` → `SET … KEEPTTL`, `SPOP` → `SREM`,
    /// `BLPOP` → `LPOP` …). Each call adds one entry; entries of one command
    /// reach the stream as one MULTI/EXEC block. Cheap when nothing consumes
    /// the stream. Only meaningful together with a reported change.
    pub fn propagate<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        if self.srv.prop.active() {
            let v = argv.iter().map(|a| a.as_ref().to_vec()).collect();
            self.client.prop.push((self.client.db, v));
        }
    }

    /// Whether the propagation stream has a consumer (a handler may skip
    /// building a rewrite when it has none).
    #[inline]
    pub fn propagating(&self) -> bool {
        self.srv.prop.active()
    }

    /// The server's `Arc`, for work that outlives the command.
    pub fn srv_arc(&self) -> std::sync::Arc<Server> {
        self.srv.arc()
    }

    /// The LRU clock for the current time.
    pub fn lru(&self) -> u32 {
        crate::evict::token(self.now)
    }

    /// A read lookup, as Redis' `lookupKeyRead`: counts a keyspace hit or
    /// miss and touches the entry's LRU clock, then runs `f` with the reply
    /// and the entry (`None` when the key is missing or expired) while the
    /// key's slot stays locked.
    pub fn read_key<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&mut Reply, Option<&crate::db::Entry>) -> R,
    ) -> R {
        use crate::db::KeyAccess;
        let (now, lru) = (self.now, self.lru());
        let mut slot = self.ks().lock_key(self.db(), key);
        let mut e = slot.get(key, now);
        self.hit_key(e.is_some(), key);
        if let Some(e) = e.as_mut() {
            e.touch(lru);
        }
        f(self.out, e.map(|e| &*e))
    }
}

pub type Handler = fn(&mut Ctx, &[&[u8]]) -> CmdResult;

/// The handler table, indexed by `CmdId`. The gate does not know the
/// command families: the server installs their table at start-up
/// ([`install_handlers`]), so the families depend on the gate and not the
/// other way round.
static HANDLERS: OnceLock<Vec<Option<Handler>>> = OnceLock::new();

/// Installs the handler table (the first call wins; one per process).
pub fn install_handlers(table: impl FnOnce() -> Vec<Option<Handler>>) {
    HANDLERS.get_or_init(table);
}

#[inline]
fn handlers() -> &'static [Option<Handler>] {
    HANDLERS.get().map_or(&[], |v| v.as_slice())
}

/// Runs one command and appends its reply to `ctx.out`.
#[inline(always)]
pub fn execute(srv: &Server, client: &mut Client, out: &mut Reply, now: u64, argv: &[&[u8]]) {
    use crate::client::ReplyMode;
    let mark = out.buf.len();
    if execute_checked(srv, client, out, now, argv) == Outcome::KeyMigrating {
        reply_error(srv, out, errors::KEY_BEING_MIGRATED.as_bytes());
    }
    // CLIENT REPLY: drop what this command answered when replies are off or
    // skipped (Redis' prepareClientToWrite refusing the reply).
    // Messages placed before the reply (tracking.rs) survive.
    match client.reply {
        ReplyMode::On => {}
        ReplyMode::Off => {
            let keep = std::mem::take(&mut client.tracking.front);
            out.buf.truncate(mark + keep);
        }
        ReplyMode::SkipNext => {
            client.tracking.front = 0;
            client.reply = ReplyMode::Skip;
        }
        ReplyMode::Skip => {
            let keep = std::mem::take(&mut client.tracking.front);
            out.buf.truncate(mark + keep);
            client.reply = ReplyMode::On;
        }
    }
    // Invalidations the command owes its own client come after its reply
    // (and survive CLIENT REPLY OFF, as Redis' pushes do).
    if client.tracking.busy() {
        crate::tracking::after_command(srv, client, out, argv);
    }
}

/// How [`execute_checked`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reply (result or error) was written.
    Replied,
    /// A write was refused because one of its keys is in flight; nothing was
    /// written to `out`. SLOTSMGRT-EXEC-WRAPPER answers this with code 1: its
    /// own check can pass just before the migration thread registers the key.
    KeyMigrating,
}

/// The spec a command line runs under: the subcommand's for containers
/// (the top-level one when the subcommand is unknown).
pub fn spec_of(id: CmdId, argv: &[&[u8]]) -> &'static CommandSpec {
    let top = id.spec();
    if top.subcommands.is_empty() || argv.len() < 2 {
        return top;
    }
    top.subcommand(argv[1]).unwrap_or(top)
}

/// A command resolved against the table.
struct Resolved {
    id: CmdId,
    spec: &'static CommandSpec,
    /// Index into `stats.cmds`.
    stat: usize,
}

/// Looks the command up (unknown command / subcommand answered here).
#[inline(always)]
fn resolve(srv: &Server, client: &mut Client, out: &mut Reply, argv: &[&[u8]]) -> Option<Resolved> {
    let name = argv.first()?;
    let stats = &srv.stats;
    let Some(id) = command::lookup(name) else {
        crate::multi::flag(client);
        let e = errors::unknown_command(argv);
        reply_error(srv, out, e.as_bytes());
        return None;
    };
    let top = id.spec();
    let mut spec = top;
    let mut stat = stats.index.top(id as usize);
    if !top.subcommands.is_empty() && argv.len() >= 2 {
        let sub = argv[1];
        match top
            .subcommands
            .iter()
            .position(|s| s.short_name().as_bytes().eq_ignore_ascii_case(sub))
        {
            Some(pos) => {
                spec = &top.subcommands[pos];
                stat = stats.index.sub(id as usize, pos);
            }
            None if id != CmdId::Command => {
                crate::multi::flag(client);
                let e = errors::unknown_subcommand(top.name, sub);
                reply_error(srv, out, e.as_bytes());
                return None;
            }
            None => {}
        }
    }
    Some(Resolved { id, spec, stat })
}

/// Refuses a command before it runs: counted as rejected, flags a
/// transaction being queued.
fn reject(srv: &Server, client: &mut Client, out: &mut Reply, stat: usize, text: &[u8]) {
    crate::multi::flag(client);
    srv.stats.cmds[stat].rejected.fetch_add(1, Relaxed);
    if srv.stats.index.top(CmdId::Exec as usize) == stat {
        // EXEC itself refused: the transaction is discarded and the reason
        // reported as EXECABORT (Redis' execCommandAbort).
        crate::multi::discard(srv, client);
        let reason = text.strip_prefix(b"ERR ").unwrap_or(text);
        let mut msg = b"EXECABORT Transaction discarded because of: ".to_vec();
        msg.extend_from_slice(reason);
        reply_error(srv, out, &msg);
        return;
    }
    reply_error(srv, out, text);
}

/// maxmemory before a command (Redis' processCommand): evicts what it
/// must (evict.rs) and tells whether the command is refused with -OOM:
/// memory stays over the limit and the command may grow it (`denyoom`,
/// EXEC of such a command, anything queued in MULTI).
#[inline]
fn oom_refusal(srv: &Server, client: &mut Client, spec: &CommandSpec, id: CmdId) -> bool {
    let oom = crate::evict::before_command(srv) == crate::evict::Evict::Fail;
    client.oom_at_start = oom;
    if !oom {
        return false;
    }
    spec.has(flags::DENYOOM)
        || match &client.multi {
            Some(m) if id == CmdId::Exec => m.denyoom,
            Some(_) => !matches!(id, CmdId::Discard | CmdId::Quit | CmdId::Reset),
            None => false,
        }
}

/// Why the persistence state refuses a command (Redis' processCommand
/// order): stop-writes-on-bgsave-error and AOF write errors refuse writes
/// and PING (`writeCommandsDeniedByDiskError`); the start-up load refuses
/// what lacks the `loading` flag. (The AOF's own replay, which is the
/// load, is never refused.)
#[cold]
fn persistence_refusal(
    srv: &Server,
    spec: &CommandSpec,
    id: CmdId,
) -> Option<std::borrow::Cow<'static, str>> {
    if (spec.has(flags::WRITE) || id == CmdId::Ping)
        && let Some(e) = srv.persist.writes_denied(srv)
    {
        return Some(e);
    }
    (srv.persist.loading.active.load(Relaxed) && !spec.has(flags::LOADING))
        .then_some(errors::LOADING.into())
}

/// [`execute`], except that a write refused by the migration gate is
/// reported to the caller instead of answered.
pub fn execute_checked(
    srv: &Server,
    client: &mut Client,
    out: &mut Reply,
    now: u64,
    argv: &[&[u8]],
) -> Outcome {
    let Some(r) = resolve(srv, client, out, argv) else {
        return Outcome::Replied;
    };
    let (id, spec, stat) = (r.id, r.spec, r.stat);
    let top = id.spec();
    if !spec.arity_ok(argv.len()) {
        reject(
            srv,
            client,
            out,
            stat,
            errors::wrong_arity(spec.name).as_bytes(),
        );
        return Outcome::Replied;
    }
    if !client.authenticated && srv.acl.default_open() {
        // `CONFIG SET requirepass ""` lets waiting clients in, as in Redis.
        client.authenticated = true;
        client.info.authenticated.store(true, Relaxed);
    }
    if !client.authenticated && !top.has(flags::NO_AUTH) {
        reject(srv, client, out, stat, errors::NOAUTH.as_bytes());
        return Outcome::Replied;
    }
    if !client.from_master && !client.replaying {
        let ctx_kind = if client.multi.is_some() {
            crate::acl::Context::Multi
        } else {
            crate::acl::Context::Toplevel
        };
        if let Err(d) = acl_check(srv, client, out, now, spec, stat, argv, ctx_kind) {
            let text = crate::acl::noperm_text(d, spec);
            reject(srv, client, out, stat, text.as_bytes());
            return Outcome::Replied;
        }
    }
    if srv.scripts.busy()
        && !client.from_master
        && !client.replaying
        && !spec.has(flags::ALLOW_BUSY)
        && !top.has(flags::ALLOW_BUSY)
        && let Some(e) = srv.scripts.busy_error()
    {
        // A script past busy-reply-threshold runs on another thread.
        reject(srv, client, out, stat, e.as_bytes());
        return Outcome::Replied;
    }
    if srv.evict.maxmemory() != 0
        && !client.from_master
        && !client.replaying
        && oom_refusal(srv, client, spec, id)
    {
        reject(srv, client, out, stat, errors::OOM.as_bytes());
        return Outcome::Replied;
    }
    if srv.repl.gate.load(Relaxed)
        && !client.from_master
        && !client.replaying
        && let Some(e) = crate::repl::refusal(srv, spec)
    {
        reject(srv, client, out, stat, e.as_bytes());
        return Outcome::Replied;
    }
    if srv.tracking.over_limit() {
        // tracking-table-max-keys, checked before every command (Redis'
        // processCommand).
        crate::tracking::limit_before(srv, client, out);
    }
    if client.info.in_pubsub()
        && !client.info_resp3()
        && !matches!(
            id,
            CmdId::Ping
                | CmdId::Subscribe
                | CmdId::Ssubscribe
                | CmdId::Unsubscribe
                | CmdId::Sunsubscribe
                | CmdId::Psubscribe
                | CmdId::Punsubscribe
                | CmdId::Quit
                | CmdId::Reset
        )
    {
        reject(
            srv,
            client,
            out,
            stat,
            errors::pubsub_context(spec.name).as_bytes(),
        );
        return Outcome::Replied;
    }
    if srv.persist.gate.load(Relaxed)
        && !client.replaying
        && !client.from_master
        && let Some(e) = persistence_refusal(srv, spec, id)
    {
        reject(srv, client, out, stat, e.as_bytes());
        return Outcome::Replied;
    }
    if let Some(m) = client.multi.as_mut() {
        if spec.has(flags::NO_MULTI) || top.has(flags::NO_MULTI) {
            reject(
                srv,
                client,
                out,
                stat,
                errors::NOT_IN_TRANSACTION.as_bytes(),
            );
            return Outcome::Replied;
        }
        if !matches!(
            id,
            CmdId::Exec | CmdId::Discard | CmdId::Multi | CmdId::Watch | CmdId::Quit | CmdId::Reset
        ) {
            // A script that may write counts as a write (EXEC's migration
            // check covers its declared keys).
            m.queue(
                argv,
                spec.has(flags::WRITE) || (runs_script(id) && !spec.has(flags::READONLY)),
            );
            m.denyoom |= spec.has(flags::DENYOOM);
            client.info.queued.store(m.len(), Relaxed);
            out.simple(b"QUEUED");
            return Outcome::Replied;
        }
    }
    call(srv, client, out, now, argv, &r, None, false)
}

/// The ACL check of a command line (Redis' ACLCheckAllPerm): Ok for an
/// unrestricted user (one atomic load), else the user's rules decide; a
/// denial is counted and logged.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn acl_check(
    srv: &Server,
    client: &mut Client,
    out: &mut Reply,
    now: u64,
    spec: &'static CommandSpec,
    stat: usize,
    argv: &[&[u8]],
    context: crate::acl::Context,
) -> Result<(), crate::acl::Denied> {
    let open = match &client.user {
        Some(u) => u.unrestricted(),
        None => srv.acl.default_ref().unrestricted(),
    };
    if open {
        return Ok(());
    }
    acl_slow(srv, client, out, now, spec, stat, argv, context)
}

#[cold]
#[allow(clippy::too_many_arguments)]
fn acl_slow(
    srv: &Server,
    client: &mut Client,
    out: &mut Reply,
    now: u64,
    spec: &'static CommandSpec,
    stat: usize,
    argv: &[&[u8]],
    context: crate::acl::Context,
) -> Result<(), crate::acl::Denied> {
    let user = client
        .user
        .clone()
        .unwrap_or_else(|| srv.acl.default_user());
    let Err((d, pos)) = user.check(stat, spec, argv) else {
        return Ok(());
    };
    acl_denied(
        srv, client, out, now, spec, argv, &user.name, d, pos, context,
    );
    Err(d)
}

/// Counts and logs a denial (ACL LOG's entry with this client's line).
#[cold]
#[allow(clippy::too_many_arguments)]
pub fn acl_denied(
    srv: &Server,
    client: &mut Client,
    out: &mut Reply,
    now: u64,
    spec: &'static CommandSpec,
    argv: &[&[u8]],
    user: &[u8],
    d: crate::acl::Denied,
    pos: usize,
    context: crate::acl::Context,
) {
    let object: Vec<u8> = match d {
        crate::acl::Denied::Cmd => spec.name.as_bytes().to_vec(),
        crate::acl::Denied::Auth => argv.first().map(|a| a.to_vec()).unwrap_or_default(),
        _ => argv.get(pos).map(|a| a.to_vec()).unwrap_or_default(),
    };
    let info = client.info.clone();
    let argv_mem = argv.iter().map(|a| a.len()).sum();
    let line = {
        let ctx = Ctx {
            srv,
            client: &mut *client,
            out: &mut *out,
            now,
            spec,
            held: None,
            one: None,
        };
        crate::cmd::conn::client_line(&ctx, &info, Some(argv_mem))
    };
    srv.acl.note_denial(d, context, &object, user, line, now);
}

/// Runs one command of EXEC with the transaction's lock set held.
pub fn call_held(
    srv: &Server,
    client: &mut Client,
    out: &mut Reply,
    now: u64,
    argv: &[&[u8]],
    held: &crate::db::LockSet<'_>,
) {
    let Some(r) = resolve(srv, client, out, argv) else {
        return;
    };
    // ACL rules may have changed since the command was queued.
    if let Err(d) = acl_check(
        srv,
        client,
        out,
        now,
        r.spec,
        r.stat,
        argv,
        crate::acl::Context::Multi,
    ) {
        reply_error(srv, out, crate::acl::exec_denied_text(d).as_bytes());
        return;
    }
    if call(srv, client, out, now, argv, &r, Some(held), false) == Outcome::KeyMigrating {
        reply_error(srv, out, errors::KEY_BEING_MIGRATED.as_bytes());
    }
}

/// Runs one command of a script (`redis.call`, script/) with the script's
/// growing lock set held: the script checked the command (known, arity,
/// allowed in scripts) and took its slots; stats, errors and propagation
/// (into the script's block: the client is `in_exec`) are the common
/// path's.
pub fn call_from_script(
    srv: &Server,
    client: &mut Client,
    out: &mut Reply,
    now: u64,
    argv: &[&[u8]],
    held: &dyn crate::db::HeldSlots,
) {
    let Some(r) = resolve(srv, client, out, argv) else {
        return;
    };
    if let Err(d) = acl_check(
        srv,
        client,
        out,
        now,
        r.spec,
        r.stat,
        argv,
        crate::acl::Context::Lua,
    ) {
        reply_error(srv, out, crate::acl::script_denied_text(d).as_bytes());
        return;
    }
    if call(srv, client, out, now, argv, &r, Some(held), false) == Outcome::KeyMigrating {
        reply_error(srv, out, errors::KEY_BEING_MIGRATED.as_bytes());
    }
}

/// Commands that run scripts: they lock their slots themselves, as the
/// script reaches them (script/mod.rs).
#[inline]
pub fn runs_script(id: CmdId) -> bool {
    matches!(
        id,
        CmdId::Eval
            | CmdId::Evalsha
            | CmdId::EvalRo
            | CmdId::EvalshaRo
            | CmdId::Fcall
            | CmdId::FcallRo
    )
}

/// Commands whose lock set [`needs_all_slots`] may widen to every slot,
/// as a bitset over `CmdId` so the common case costs one load.
const ALL_SLOTS_CANDIDATES: [u64; 8] = {
    let ids = [
        CmdId::Keys,
        CmdId::Scan,
        CmdId::Randomkey,
        CmdId::Flushdb,
        CmdId::Flushall,
        CmdId::Swapdb,
        CmdId::Move,
        CmdId::Info,
        CmdId::Debug,
        CmdId::Slotsdel,
        CmdId::Slotsscan,
        CmdId::Slotscheck,
        CmdId::Slotsmgrtone,
        CmdId::Slotsmgrttagone,
        CmdId::Slotsmgrtslot,
        CmdId::Slotsmgrttagslot,
        CmdId::SlotsmgrtoneAsyncDump,
        CmdId::SlotsmgrttagoneAsyncDump,
        CmdId::Sort,
        CmdId::SortRo,
        CmdId::Copy,
        CmdId::Function,
    ];
    let mut bits = [0u64; 8];
    let mut i = 0;
    while i < ids.len() {
        let id = ids[i] as usize;
        bits[id >> 6] |= 1 << (id & 63);
        i += 1;
    }
    bits
};

/// Commands whose keys are not (all) in the table's key specs, or which
/// reach other DBs: a lock set for them holds every slot of every DB.
#[inline]
pub fn needs_all_slots(id: CmdId, argv: &[&[u8]]) -> bool {
    let i = id as usize;
    if ALL_SLOTS_CANDIDATES
        .get(i >> 6)
        .is_none_or(|w| w >> (i & 63) & 1 == 0)
    {
        return false;
    }
    match id {
        // SORT … BY / GET patterns read other keys.
        CmdId::Sort | CmdId::SortRo => sort_store(argv).is_err(),
        // COPY … DB n.
        CmdId::Copy => argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"db")),
        // FUNCTION LOAD/DELETE/FLUSH/RESTORE change the libraries, which
        // snapshots and the AOF base take with the keys: under every slot,
        // like FLUSHALL, so a snapshot point falls before or after.
        CmdId::Function => argv.get(1).is_some_and(|s| {
            [&b"load"[..], b"delete", b"flush", b"restore"]
                .iter()
                .any(|w| s.eq_ignore_ascii_case(w))
        }),
        _ => true,
    }
}

/// Adds the slots `argv` touches, run in DB `db`, to `plan`.
pub fn plan_command(
    plan: &mut crate::db::LockPlan,
    id: CmdId,
    spec: &CommandSpec,
    argv: &[&[u8]],
    db: usize,
) {
    if needs_all_slots(id, argv) {
        plan.all = true;
        plan.slots.clear();
        return;
    }
    if plan.all {
        return;
    }
    spec.for_each_key_pos(argv, |i| {
        let slot = protocol::slot::slot_of(argv[i]);
        plan.add(db, slot);
        plan.known
            .push((argv[i].as_ptr() as usize, argv[i].len(), slot));
    });
    if id == CmdId::Sort
        && let Ok(Some(dst)) = sort_store(argv)
    {
        plan.add(db, protocol::slot::slot_of(dst));
        plan.extra = true;
    }
}

/// SORT's STORE destination (Redis' `sortGetKeys`, which the key specs
/// mark unknown); `Err` when BY or GET patterns read keys found at run time.
fn sort_store<'a>(argv: &[&'a [u8]]) -> Result<Option<&'a [u8]>, ()> {
    let a = protocol::command::intro::sort_args(argv);
    if a.patterns {
        return Err(());
    }
    Ok(a.store.and_then(|i| argv.get(i).copied()))
}

/// What one command run in DB `db` locks: nothing, the one slot of its
/// single key at a fixed position (SET, LPUSH, INCR …; most writes), or a
/// lock set.
enum Locks<'s> {
    None,
    One {
        db: usize,
        slot: usize,
        guard: std::sync::MutexGuard<'s, crate::db::SlotTable>,
    },
    Set(crate::db::LockSet<'s>),
}

/// Takes the locks of one command run in DB `db` (see [`Locks`]): the
/// one-key case inline, the rest out of line.
#[inline(always)]
fn lock_command<'s>(
    srv: &'s Server,
    id: CmdId,
    spec: &CommandSpec,
    argv: &[&[u8]],
    db: usize,
) -> Locks<'s> {
    if !spec.has(flags::MOVABLEKEYS)
        && spec.first_key > 0
        && spec.first_key == spec.last_key
        && !needs_all_slots(id, argv)
    {
        let Some(key) = argv.get(spec.first_key as usize) else {
            return Locks::None;
        };
        let slot = protocol::slot::slot_of(key);
        return match srv.ks.lock_slot_table(db, slot) {
            Some(guard) => Locks::One { db, slot, guard },
            None => Locks::None,
        };
    }
    lock_set(srv, id, spec, argv, db)
}

#[inline(never)]
fn lock_set<'s>(
    srv: &'s Server,
    id: CmdId,
    spec: &CommandSpec,
    argv: &[&[u8]],
    db: usize,
) -> Locks<'s> {
    if id == CmdId::Flushall {
        // A BGSAVE in progress would write out every slot as FLUSHALL locks
        // it: stop it first, as Redis kills its child (persist/).
        srv.persist.abort_bgsave(srv);
    }
    Locks::Set(crate::db::LockSet::plan_and_lock(&srv.ks, |plan| {
        plan_command(plan, id, spec, argv, db)
    }))
}

/// The one call path after lookup and checks: the migration write gate,
/// the lock set, the handler, command stats, errors, propagation, then
/// serving clients whose keys became ready (deferred while a lock set is
/// held by the caller).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn call(
    srv: &Server,
    client: &mut Client,
    out: &mut Reply,
    now: u64,
    argv: &[&[u8]],
    r: &Resolved,
    held: Option<&(dyn crate::db::HeldSlots + '_)>,
    wake: bool,
) -> Outcome {
    let (id, spec, stat) = (r.id, r.spec, r.stat);
    let top = id.spec();
    let stats = &srv.stats;
    let cstat = &stats.cmds[stat];
    let Some(Some(handler)) = handlers().get(id as usize) else {
        reply_error(srv, out, errors::unknown_command(argv).as_bytes());
        return Outcome::Replied;
    };
    let migratable_write = spec.has(flags::WRITE) && top.group != "codis";
    // Announce the write until its handler returns, so a migration
    // registering keys on another thread waits for it (migrate/mod.rs).
    // A command of an EXEC (`held`) runs under the transaction's epoch and
    // its check of every queued write: checking again here could refuse a
    // later command after an earlier one ran (a half-applied transaction).
    // A script that may write is gated on its declared keys too (it locks
    // its slots itself, script/).
    let script_write = runs_script(id) && !spec.has(flags::READONLY);
    let gated = (migratable_write || script_write) && held.is_none();
    let epoch = gated.then(|| srv.inflight.enter());
    if gated && srv.inflight.any(client.db) {
        let mut moving = false;
        spec.for_each_key_pos(argv, |i| {
            moving |= srv.inflight.is_migrating(client.db, argv[i])
        });
        if moving {
            // codis.md §2.7.4: keys in flight stay readable but not writable
            // (see migrate/mod.rs for why direct writes are refused too).
            drop(epoch);
            cstat.rejected.fetch_add(1, Relaxed);
            return Outcome::KeyMigrating;
        }
    }
    client.info.last_cmd.store(stat + 1, Relaxed);
    let start = match std::mem::take(&mut client.cmd_clock) {
        0 => crate::stats::mono_ns(),
        t => t,
    };
    // A write runs under the lock set of every slot it touches, taken here
    // in the global order, and its changes reach the propagation stream
    // before the set is released (propagate.rs: ordering).
    // (Codis' migration commands lock slot by slot themselves; EXEC holds
    // its queue's set and is not a write.) A read whose keys a tracking
    // client remembers runs under its lock set too (tracking.rs).
    let trk = srv
        .tracking
        .armed()
        .then(|| crate::tracking::Scope::enter(client, spec, out.buf.len()));
    let track_read = trk.as_ref().is_some_and(|t| t.remembers());
    let mut own = if held.is_none() && (migratable_write || (track_read && !runs_script(id))) {
        lock_command(srv, id, spec, argv, client.db)
    } else {
        Locks::None
    };
    let one_slot;
    let (held_now, one): (Option<&(dyn crate::db::HeldSlots + '_)>, _) = match &mut own {
        Locks::Set(set) => (Some(&*set), None),
        Locks::One { db, slot, guard } => {
            let key = argv[spec.first_key as usize];
            one_slot = crate::db::OneSlot::new(*db, *slot, key, guard);
            (None, Some(&one_slot))
        }
        Locks::None => (held, None),
    };
    let saved_dirty = std::mem::take(&mut client.call_dirty);
    let db = client.db;
    // On a replica, keys expire by the master's DELs (db::Expiry).
    let _expiry = srv.repl.link.is_replica().then(|| {
        crate::db::ExpiryScope::enter(if client.from_master {
            crate::db::Expiry::Keep
        } else if spec.has(flags::WRITE) {
            crate::db::Expiry::Delete
        } else {
            crate::db::Expiry::Hide
        })
    });
    // During a snapshot, a command that changes nothing reads pending keys
    // without writing them into the snapshot first (db::ReadOnly).
    let read_only =
        (srv.ks.snapshot_active() != 0).then(|| crate::db::ReadOnly::enter(changes_nothing(spec)));
    let res = {
        let mut ctx = Ctx {
            srv,
            client: &mut *client,
            out: &mut *out,
            now,
            spec,
            held: held_now,
            one,
        };
        handler(&mut ctx, argv)
    };
    drop(read_only);
    if let Some(t) = trk {
        t.leave(srv, client, out, spec, argv);
    }
    let changed = std::mem::replace(&mut client.call_dirty, saved_dirty);
    if changed > 0 {
        srv.dirty.fetch_add(changed, Relaxed);
    }
    if (changed > 0 || !client.prop.is_empty()) && srv.prop.active() && !client.replaying {
        propagate(srv, client, db, argv);
    } else {
        client.prop.clear();
    }
    drop(own);
    drop(epoch);
    let end = crate::stats::mono_ns();
    cstat.nsec.fetch_add(end.saturating_sub(start), Relaxed);
    if client.block.is_none() && !client.replaying {
        // (A command that blocked is logged when it is served; the AOF's
        // replay is not logged, as Redis runs it outside call().)
        let nanos = end.saturating_sub(start);
        srv.slowlog.consider(client, id, spec, argv, nanos);
        srv.latency.record(stat, nanos);
        // (Redis' event names: by the command's `fast` flag.)
        srv.latency.consider(
            if spec.has(flags::FAST) {
                "fast-command"
            } else {
                "command"
            },
            nanos / 1_000_000,
        );
    }
    if !wake {
        // A served wake-up is the blocked call finishing, not a new call
        // (Redis' updateStatsOnUnblock).
        cstat.calls.fetch_add(1, Relaxed);
        stats.total_commands.fetch_add(1, Relaxed);
    }
    if let Err(CmdError::Migrating) = res {
        cstat.rejected.fetch_add(1, Relaxed);
        return Outcome::KeyMigrating;
    }
    if let Err(e) = res {
        cstat.failed.fetch_add(1, Relaxed);
        let text = e.text();
        reply_error(srv, out, text.as_bytes());
    }
    if srv.monitors.active() && !wake && crate::monitor::shown(spec) {
        crate::monitor::feed(srv, client, client.db, id, argv);
    }
    if srv.blocking.has_ready() && held.is_none() && !wake {
        crate::block::serve_ready(srv);
    } else {
        // The next command of this batch starts now (the connection loop
        // clears this at every batch, so waits and idle time never count).
        client.cmd_clock = end;
    }
    Outcome::Replied
}

/// A read-only command whose keys are all read-only too (PFCOUNT is
/// read-only but its key is RW: it may rewrite its cache).
#[cold]
fn changes_nothing(spec: &CommandSpec) -> bool {
    spec.has(flags::READONLY) && spec.key_specs.iter().all(|k| k.flags.contains(&"RO"))
}

/// Hands a changed command's entries to the stream (or to the running
/// EXEC's block): its explicit entries, else its own line in `db`.
fn propagate(srv: &Server, client: &mut Client, db: usize, argv: &[&[u8]]) {
    if client.prop.is_empty() && !client.in_exec {
        // The common case: the command as itself, encoded straight into
        // the stream (no copy of its arguments).
        srv.prop.emit_one(db, argv);
        client.woff = srv.prop.repl_offset();
        return;
    }
    let mut entries = std::mem::take(&mut client.prop);
    if entries.is_empty() {
        entries.push((db, argv.iter().map(|a| a.to_vec()).collect()));
    }
    if client.in_exec {
        client.exec_prop.append(&mut entries);
    } else {
        srv.prop.emit(&entries, false);
        client.woff = srv.prop.repl_offset();
    }
}

/// Runs a blocked client's command again when one of its keys got ready
/// (block.rs), through the same lock set, stats and propagation as any
/// call. The command may block again (`client.block` set).
pub fn call_wakeup(srv: &Server, client: &mut Client, out: &mut Reply, now: u64, argv: &[&[u8]]) {
    let Some(r) = resolve(srv, client, out, argv) else {
        return;
    };
    if call(srv, client, out, now, argv, &r, None, true) == Outcome::KeyMigrating {
        reply_error(srv, out, errors::KEY_BEING_MIGRATED.as_bytes());
    }
    if client.tracking.busy() {
        crate::tracking::after_command(srv, client, out, argv);
    }
}

/// Writes an error reply and counts it in errorstats.
pub fn reply_error(srv: &Server, out: &mut Reply, text: &[u8]) {
    srv.stats.count_error(text);
    out.error(text);
}

/// Convenience for handlers: a failed result from a static text.
pub fn err<T>(s: &'static str) -> Result<T, CmdError> {
    Err(CmdError::Static(s))
}

/// Keyspace notification classes (the letters of `notify-keyspace-events`).
pub use crate::config::notify;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_slots_bitset_covers_the_table() {
        assert!(protocol::command::COMMANDS.len() <= 64 * ALL_SLOTS_CANDIDATES.len());
        assert!(needs_all_slots(CmdId::Flushall, &[b"flushall"]));
        assert!(!needs_all_slots(CmdId::Set, &[b"set", b"k", b"v"]));
        assert!(!needs_all_slots(CmdId::Copy, &[b"copy", b"a", b"b"]));
        assert!(needs_all_slots(
            CmdId::Copy,
            &[b"copy", b"a", b"b", b"DB", b"1"]
        ));
        assert!(needs_all_slots(
            CmdId::Sort,
            &[b"sort", b"l", b"BY", b"w_*"]
        ));
        assert!(!needs_all_slots(
            CmdId::Sort,
            &[b"sort", b"l", b"STORE", b"d"]
        ));
    }
}
