//! Server-assisted client-side caching (CLIENT TRACKING), with Redis
//! 7.0.15's semantics (`tracking.c` and the tracking parts of `server.c`,
//! `networking.c`, `db.c`; our own code). This module owns:
//!
//! * the per-client tracking state ([`ClientState`] in `ClientInfo`, read
//!   by other connections for CLIENT LIST and invalidation; [`Local`] in
//!   `Client` for CLIENT CACHING and the invalidations a command owes its
//!   own client);
//! * the tracking table: key → ids of the clients that read it (default
//!   mode). One table for every DB, as in Redis. A key is invalidated once
//!   and then forgotten; entries of clients that left or turned tracking
//!   off are dropped lazily, when their key is invalidated;
//! * the prefix table of BCAST clients: prefix → subscribed clients and the
//!   keys with that prefix modified since the last broadcast (each with the
//!   client that last modified it, for NOLOOP);
//! * building and delivering the messages: a RESP3 push
//!   `>2 invalidate <keys>` to the client itself, or, through REDIRECT, the
//!   push to a RESP3 client or a `message __redis__:invalidate <keys>`
//!   pub/sub message to a subscribed RESP2 client; `<keys>` is an array, or
//!   a null (in the tracking client's protocol) after FLUSHALL/FLUSHDB; a
//!   vanished redirect client marks the tracker broken and, in RESP3, gets
//!   it a `tracking-redir-broken <id>` push.
//!
//! Timing mirrors Redis:
//! * keys read by a READONLY command are remembered after its handler
//!   ([`Scope::leave`]). The gate runs such a command under the lock set of
//!   its key slots, so reading and remembering are atomic with respect to
//!   writers, which invalidate under their own slot locks: a write cannot
//!   slip between a read and its registration (Redis has one thread);
//! * an invalidation for the client running the command is sent after the
//!   command's reply (after the whole EXEC for a transaction; Redis'
//!   `tracking_pending_keys`), other clients get it through their mailbox
//!   at once; a message another tracker redirects to the running client is
//!   placed before the reply of the command that caused it, as Redis
//!   appends it to the output buffer at that moment;
//! * BCAST messages collect every key modified in a batch and go out at the
//!   end of the batch of the connection that modified them (Redis: before
//!   the event loop sleeps), and from the cron;
//! * `tracking-table-max-keys` is enforced before each command of a
//!   connection (after authentication, as Redis' `processCommand`) and in
//!   the cron: random keys are invalidated until the table fits.
//!
//! Differences that follow from connections running on several threads:
//! messages reach other clients through their mailbox (`ClientInfo::deliver`,
//! watched by the read loop of subscribers and RESP3 connections), written
//! after the receiver's current batch of replies and not while it waits in
//! a blocking command; a BCAST batch is one connection's read batch, where
//! Redis gathers the keys of every client served in one event-loop turn.
//! Messages to other clients are held to their `client-output-buffer-limit`
//! class when delivered (the running client's own go with its replies).
//!
//! Cost when no client tracks: relaxed atomic loads only, two per command
//! in the gate (the max-keys check, and whether to enter a [`Scope`]), one
//! per modified key (`Server::changed`) and one per connection batch (a
//! BCAST broadcast due); about 0.5% more instructions per request (icount).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::command::{CommandSpec, flags as cmdflags};
use protocol::resp::Reply;

use crate::client::{Client, ClientInfo};
use crate::server::Server;

/// Tracking flags of a client (Redis' `CLIENT_TRACKING_*`).
pub mod flags {
    /// Tracking is on.
    pub const ON: u32 = 1;
    /// Broadcasting mode (prefixes).
    pub const BCAST: u32 = 1 << 1;
    pub const OPTIN: u32 = 1 << 2;
    pub const OPTOUT: u32 = 1 << 3;
    /// No invalidation for keys the client modified itself.
    pub const NOLOOP: u32 = 1 << 4;
    /// The redirect client is gone.
    pub const BROKEN_REDIR: u32 = 1 << 5;
}

/// The channel RESP2 redirect clients receive invalidations on.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// The tracking state other connections see (in `ClientInfo`).
#[derive(Default)]
pub struct ClientState {
    flags: AtomicU32,
    /// The REDIRECT client id (0 = none).
    redirect: AtomicU64,
}

impl ClientState {
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }

    /// Whether tracking is on.
    #[inline]
    pub fn on(&self) -> bool {
        self.flags() & flags::ON != 0
    }

    /// The redirect client id as CLIENT GETREDIR / LIST report it: -1 when
    /// tracking is off, 0 without REDIRECT.
    pub fn redirect_shown(&self) -> i64 {
        if self.on() {
            self.redirect.load(Relaxed) as i64
        } else {
            -1
        }
    }

    /// The CLIENT LIST flag letters (`t`, `R`, `B`).
    pub fn list_flags(&self, into: &mut String) {
        let f = self.flags();
        if f & flags::ON != 0 {
            into.push('t');
        }
        if f & flags::BROKEN_REDIR != 0 {
            into.push('R');
        }
        if f & flags::BCAST != 0 {
            into.push('B');
        }
    }
}

/// An invalidation waiting for the end of the running command: one key, or
/// every key (a flush).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Key(Box<[u8]>),
    All,
}

/// The connection's own tracking state (in `Client`).
#[derive(Default)]
pub struct Local {
    /// CLIENT CACHING YES (OPTIN) / NO (OPTOUT) given for the next command.
    pub caching: bool,
    /// Invalidations for this client raised by its running command, sent
    /// after its reply.
    deferred: Vec<Pending>,
    /// Bytes of messages placed before the running command's reply while
    /// CLIENT REPLY is OFF or SKIP: the gate drops the reply, not these
    /// (Redis' CLIENT_PUSHING). Taken by `exec::execute`.
    pub front: usize,
}

impl Local {
    /// Whether the gate has anything to do after the command.
    #[inline]
    pub fn busy(&self) -> bool {
        self.caching || !self.deferred.is_empty()
    }
}

/// One key of the tracking table.
struct KeyEntry {
    /// Index in `Table::order`.
    pos: usize,
    /// Client ids, byte-swapped so that ascending order is the order of
    /// their little-endian bytes: Redis' per-key radix tree of ids, whose
    /// order decides the order of messages several trackers redirect to one
    /// client.
    ids: Vec<u64>,
}

/// One prefix of BCAST clients.
#[derive(Default)]
struct Bcast {
    /// Keys modified since the last broadcast → id of the client that
    /// modified it last (0: none, e.g. expiry).
    keys: BTreeMap<Vec<u8>, u64>,
    /// Subscribed clients.
    clients: BTreeSet<u64>,
}

#[derive(Default)]
struct Table {
    /// Clients with tracking on (INFO `tracking_clients`).
    clients: usize,
    keys: HashMap<Arc<[u8]>, KeyEntry>,
    /// Every key of `keys`, for picking random ones (max-keys eviction).
    order: Vec<Arc<[u8]>>,
    /// (key, client) pairs (INFO `tracking_total_items`).
    items: u64,
    prefixes: BTreeMap<Vec<u8>, Bcast>,
    /// Each BCAST client's prefixes.
    client_prefixes: HashMap<u64, BTreeSet<Vec<u8>>>,
    /// Consecutive limit passes that could not get under the limit (more
    /// effort each time, as Redis' `timeout_counter`).
    limit_rounds: u32,
}

impl Table {
    fn add_key(&mut self, key: &[u8], id: u64) {
        let sid = id.swap_bytes();
        if let Some(e) = self.keys.get_mut(key) {
            if let Err(at) = e.ids.binary_search(&sid) {
                e.ids.insert(at, sid);
                self.items += 1;
            }
            return;
        }
        let k: Arc<[u8]> = key.into();
        self.order.push(k.clone());
        self.keys.insert(
            k,
            KeyEntry {
                pos: self.order.len() - 1,
                ids: vec![sid],
            },
        );
        self.items += 1;
    }

    /// Removes `key`, returning its client ids in Redis' order.
    fn take_key(&mut self, key: &[u8]) -> Option<Vec<u64>> {
        let e = self.keys.remove(key)?;
        self.order.swap_remove(e.pos);
        if let Some(moved) = self.order.get(e.pos)
            && let Some(m) = self.keys.get_mut(&moved[..])
        {
            m.pos = e.pos;
        }
        self.items -= e.ids.len() as u64;
        Some(e.ids.into_iter().map(u64::swap_bytes).collect())
    }

    fn add_prefix(&mut self, id: u64, prefix: &[u8]) {
        let bs = self.prefixes.entry(prefix.to_vec()).or_default();
        if bs.clients.insert(id) {
            self.client_prefixes
                .entry(id)
                .or_default()
                .insert(prefix.to_vec());
        }
    }

    /// Queues a modified key for every prefix it matches.
    fn remember_bcast(&mut self, key: &[u8], by: u64) -> bool {
        let mut any = false;
        for (p, bs) in self.prefixes.iter_mut() {
            if key.starts_with(p) {
                bs.keys.insert(key.to_vec(), by);
                any = true;
            }
        }
        any
    }
}

/// The server's tracking tables.
#[derive(Default)]
pub struct Tracking {
    /// Whether anything tracks (clients, or keys left in the table): the
    /// one load the hot paths pay otherwise.
    armed: AtomicBool,
    /// BCAST keys wait for the next broadcast.
    bcast_pending: AtomicBool,
    /// The table holds more keys than `tracking-table-max-keys`.
    over_limit: AtomicBool,
    max_keys: AtomicU64,
    table: Mutex<Table>,
}

impl Tracking {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any client tracks or the table holds keys.
    #[inline]
    pub fn armed(&self) -> bool {
        self.armed.load(Relaxed)
    }

    /// Whether a broadcast is due.
    #[inline]
    pub fn bcast_pending(&self) -> bool {
        self.bcast_pending.load(Relaxed)
    }

    /// Whether the table is over `tracking-table-max-keys`.
    #[inline]
    pub fn over_limit(&self) -> bool {
        self.over_limit.load(Relaxed)
    }

    /// Sets `tracking-table-max-keys` (0 = no limit).
    pub fn set_max_keys(&self, max: u64) {
        let t = self.lock();
        self.max_keys.store(max, Relaxed);
        self.sync(&t);
    }

    /// Publishes the fast-path flags after a change of `t`.
    fn sync(&self, t: &Table) {
        self.armed
            .store(t.clients > 0 || !t.keys.is_empty(), SeqCst);
        let max = self.max_keys.load(Relaxed);
        self.over_limit.store(
            t.clients > 0 && max > 0 && t.keys.len() as u64 > max,
            Relaxed,
        );
    }

    /// INFO: `(tracking_clients, tracking_total_keys, tracking_total_items,
    /// tracking_total_prefixes)`.
    pub fn stats(&self) -> (usize, usize, u64, usize) {
        let t = self.lock();
        (t.clients, t.keys.len(), t.items, t.prefixes.len())
    }

    /// A client's BCAST prefixes, in byte order (CLIENT TRACKINGINFO).
    pub fn prefixes_of(&self, id: u64) -> Vec<Vec<u8>> {
        self.lock()
            .client_prefixes
            .get(&id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// The running command (Redis' `server.current_client`).

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The client whose command runs on this thread.
struct Current {
    id: u64,
    /// Inside the command (invalidations for this client wait for its
    /// reply); false before it runs (max-keys eviction) and when the
    /// waiting ones are sent.
    defer: bool,
    /// Bytes for this client's own connection, produced meanwhile.
    own: Vec<u8>,
    deferred: Vec<Pending>,
}

fn current_id() -> Option<u64> {
    CURRENT.with(|c| c.borrow().as_ref().map(|c| c.id))
}

/// Runs `f` as client `id`'s context without deferral; returns what it
/// produced for that client's connection.
fn as_current(id: u64, f: impl FnOnce()) -> Vec<u8> {
    let prev = CURRENT.with(|c| {
        c.replace(Some(Current {
            id,
            defer: false,
            own: Vec::new(),
            deferred: Vec::new(),
        }))
    });
    f();
    let cur = CURRENT.with(|c| c.replace(prev));
    cur.map(|c| c.own).unwrap_or_default()
}

/// The tracking side of one call through the gate (see `exec::call`):
/// makes the client the current one while its handler runs, and afterwards
/// remembers the keys it read and places what it owes its own connection.
pub struct Scope {
    prev: Option<Current>,
    mark: usize,
    remember: bool,
}

impl Scope {
    /// Enters a call of `spec` for `client`; `mark` is where the call's
    /// reply starts in the output buffer.
    pub fn enter(client: &Client, spec: &CommandSpec, mark: usize) -> Scope {
        let prev = CURRENT.with(|c| {
            c.replace(Some(Current {
                id: client.id,
                defer: true,
                own: Vec::new(),
                deferred: Vec::new(),
            }))
        });
        Scope {
            prev,
            mark,
            remember: remembers(client, spec),
        }
    }

    /// Whether the call's keys get remembered: the gate then runs it under
    /// the lock set of its key slots.
    #[inline]
    pub fn remembers(&self) -> bool {
        self.remember
    }

    /// Leaves the call (before the lock set is released): remembers the
    /// keys read, puts messages for this connection before the call's
    /// reply, and keeps the client's own invalidations for after the
    /// command.
    pub fn leave(
        self,
        srv: &Server,
        client: &mut Client,
        out: &mut Reply,
        spec: &CommandSpec,
        argv: &[&[u8]],
    ) {
        if self.remember {
            remember(srv, client.id, spec, argv);
        }
        let cur = CURRENT.with(|c| c.replace(self.prev));
        if let Some(cur) = cur {
            if !cur.own.is_empty() {
                let at = self.mark.min(out.buf.len());
                if client.reply != crate::client::ReplyMode::On {
                    client.tracking.front += cur.own.len();
                }
                out.buf.splice(at..at, cur.own);
            }
            client.tracking.deferred.extend(cur.deferred);
        }
    }
}

/// Redis' `trackingRememberKeys` conditions: a READONLY command with keys,
/// a tracking client in default mode, and OPTIN/OPTOUT allowing it.
fn remembers(client: &Client, spec: &CommandSpec) -> bool {
    if !spec.has(cmdflags::READONLY)
        || spec.has(cmdflags::PUBSUB)
        || (spec.first_key <= 0 && !spec.has(cmdflags::MOVABLEKEYS))
    {
        return false;
    }
    let f = client.info.tracking.flags();
    if f & flags::ON == 0 || f & flags::BCAST != 0 {
        return false;
    }
    let caching = client.tracking.caching;
    !((f & flags::OPTIN != 0 && !caching) || (f & flags::OPTOUT != 0 && caching))
}

/// Records that client `id` read the keys of `argv`.
fn remember(srv: &Server, id: u64, spec: &CommandSpec, argv: &[&[u8]]) {
    let tr = &srv.tracking;
    let mut t = tr.lock();
    let before = t.keys.len();
    spec.for_each_key_pos(argv, |i| t.add_key(argv[i], id));
    if t.keys.len() != before {
        tr.sync(&t);
    }
}

/// After a command on the client's connection (`exec::execute`, and the
/// served wake-up of a blocked client): sends the invalidations its command
/// owes the client after the reply, and ends CLIENT CACHING's one-command
/// window (kept inside MULTI and across CLIENT commands, as Redis'
/// `resetClient`).
pub fn after_command(srv: &Server, client: &mut Client, out: &mut Reply, argv: &[&[u8]]) {
    if !client.tracking.deferred.is_empty() {
        let pending = std::mem::take(&mut client.tracking.deferred);
        let info = client.info.clone();
        let own = as_current(client.id, || {
            for p in &pending {
                match p {
                    Pending::Key(k) => send(srv, &info, Payload::Key(k)),
                    Pending::All => send(srv, &info, Payload::All),
                }
            }
        });
        out.buf.extend_from_slice(&own);
    }
    if client.tracking.caching && client.multi.is_none() && !is_client_command(argv) {
        client.tracking.caching = false;
    }
}

/// Whether `argv` is a known CLIENT subcommand.
fn is_client_command(argv: &[&[u8]]) -> bool {
    argv.len() >= 2
        && argv[0].eq_ignore_ascii_case(b"client")
        && protocol::command::CmdId::Client
            .spec()
            .subcommand(argv[1])
            .is_some()
}

// ---------------------------------------------------------------------------
// Messages.

enum Payload<'a> {
    Key(&'a [u8]),
    /// A RESP array of keys, ready to send.
    Proto(&'a [u8]),
    /// Every key (a null in the tracking client's protocol).
    All,
}

/// Sends an invalidation on behalf of `tracker` (Redis'
/// `sendTrackingMessage`): to the redirect client or to itself, in the
/// receiver's protocol; nothing for a RESP2 receiver that is neither a
/// redirect target nor subscribed.
fn send(srv: &Server, tracker: &Arc<ClientInfo>, p: Payload<'_>) {
    let redir = tracker.tracking.redirect.load(Relaxed);
    let mut via = false;
    let dest = if redir != 0 {
        match live_client(srv, redir) {
            Some(d) => {
                via = true;
                d
            }
            None => {
                tracker
                    .tracking
                    .flags
                    .fetch_or(flags::BROKEN_REDIR, Relaxed);
                if tracker.resp.load(Relaxed) == 3 {
                    let mut b = Vec::with_capacity(48);
                    b.extend_from_slice(b">2\r\n$21\r\ntracking-redir-broken\r\n:");
                    b.extend_from_slice(itoa::Buffer::new().format(redir).as_bytes());
                    b.extend_from_slice(b"\r\n");
                    emit(srv, tracker, &b);
                }
                return;
            }
        }
    } else {
        tracker.clone()
    };
    let mut b = Vec::with_capacity(64);
    if dest.resp.load(Relaxed) == 3 {
        b.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else if via && dest.in_pubsub() {
        b.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n");
        protocol::resp::request::bulk(&mut b, CHANNEL);
    } else {
        return;
    }
    match p {
        Payload::Key(k) => {
            b.extend_from_slice(b"*1\r\n");
            protocol::resp::request::bulk(&mut b, k);
        }
        Payload::Proto(x) => b.extend_from_slice(x),
        Payload::All => b.extend_from_slice(if tracker.resp.load(Relaxed) == 3 {
            b"_\r\n"
        } else {
            b"$-1\r\n"
        }),
    }
    emit(srv, &dest, &b);
}

/// Client `id` if it is connected and not being closed (Redis frees a killed
/// client at once; ours leaves the registry when its task ends).
pub fn live_client(srv: &Server, id: u64) -> Option<Arc<ClientInfo>> {
    srv.clients.get(id).filter(|c| !c.killed.load(Relaxed))
}

/// Hands bytes to a connection: the running client's go to its own output
/// (see [`Scope::leave`]), the others' to their mailbox, held to their
/// class of `client-output-buffer-limit` like any other output.
fn emit(srv: &Server, dest: &Arc<ClientInfo>, bytes: &[u8]) {
    let mine = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(cur) if cur.id == dest.id => {
            cur.own.extend_from_slice(bytes);
            true
        }
        _ => false,
    });
    if !mine {
        let limits = srv.config().client_output_buffer_limit;
        dest.deliver_limited(bytes, &limits);
    }
}

// ---------------------------------------------------------------------------
// Invalidation.

/// A key was modified by the running command (`Server::changed`): Redis'
/// `trackingInvalidateKey(c, key, 1)`.
pub fn modified(srv: &Server, key: &[u8]) {
    invalidate(srv, key, true, current_id().unwrap_or(0));
}

/// A key expired (lazily or actively): invalidated without a modifying
/// client, as Redis' `signalModifiedKey(NULL, ...)`.
pub fn expired(srv: &Server, key: &[u8]) {
    invalidate(srv, key, true, 0);
}

fn invalidate(srv: &Server, key: &[u8], bcast: bool, by: u64) {
    let tr = &srv.tracking;
    let ids = {
        let mut t = tr.lock();
        if bcast && !t.prefixes.is_empty() && t.remember_bcast(key, by) {
            tr.bcast_pending.store(true, Relaxed);
        }
        let Some(ids) = t.take_key(key) else { return };
        tr.sync(&t);
        ids
    };
    notify_trackers(srv, key, &ids);
}

/// Sends the invalidation of `key` to the clients of its table entry.
fn notify_trackers(srv: &Server, key: &[u8], ids: &[u64]) {
    let current = current_id();
    for &id in ids {
        let Some(target) = srv.clients.get(id) else {
            continue;
        };
        let f = target.tracking.flags();
        // Off, or switched to BCAST since it read the key.
        if f & flags::ON == 0 || f & flags::BCAST != 0 {
            continue;
        }
        if Some(id) == current {
            if f & flags::NOLOOP != 0 {
                continue;
            }
            let deferred = CURRENT.with(|c| match c.borrow_mut().as_mut() {
                Some(cur) if cur.defer => {
                    cur.deferred.push(Pending::Key(key.into()));
                    true
                }
                _ => false,
            });
            if deferred {
                continue;
            }
        }
        send(srv, &target, Payload::Key(key));
    }
}

/// FLUSHALL / FLUSHDB (Redis' `trackingInvalidateKeysOnFlush`): every
/// tracking client is told that all its keys are invalid (the running
/// client after its reply), and the table is emptied.
pub fn flushed(srv: &Server) {
    let tr = &srv.tracking;
    if !tr.armed() {
        return;
    }
    let clients = {
        let mut t = tr.lock();
        t.keys.clear();
        t.order.clear();
        t.items = 0;
        tr.sync(&t);
        t.clients
    };
    if clients == 0 {
        return;
    }
    let current = current_id();
    for c in srv.clients.all() {
        if !c.tracking.on() {
            continue;
        }
        if Some(c.id) == current {
            let deferred = CURRENT.with(|cur| match cur.borrow_mut().as_mut() {
                Some(cur) if cur.defer => {
                    cur.deferred.push(Pending::All);
                    true
                }
                _ => false,
            });
            if deferred {
                continue;
            }
        }
        send(srv, &c, Payload::All);
    }
}

/// Sends the keys modified since the last broadcast to the BCAST clients of
/// their prefixes (Redis' `trackingBroadcastInvalidationMessages`): one
/// message per prefix and client, keys in byte order; a NOLOOP client does
/// not get the keys it modified last itself.
pub fn broadcast(srv: &Server) {
    let tr = &srv.tracking;
    if !tr.bcast_pending.swap(false, SeqCst) {
        return;
    }
    let mut msgs: Vec<(Arc<ClientInfo>, Vec<u8>)> = Vec::new();
    {
        let mut t = tr.lock();
        for bs in t.prefixes.values_mut() {
            if bs.keys.is_empty() {
                continue;
            }
            let all = keys_proto(&bs.keys, 0);
            for &id in &bs.clients {
                let Some(c) = srv.clients.get(id) else {
                    continue;
                };
                if c.tracking.flags() & flags::NOLOOP != 0 {
                    let mine = keys_proto(&bs.keys, id);
                    if !mine.is_empty() {
                        msgs.push((c, mine));
                    }
                } else {
                    msgs.push((c, all.clone()));
                }
            }
            bs.keys.clear();
        }
    }
    for (c, proto) in msgs {
        send(srv, &c, Payload::Proto(&proto));
    }
}

/// A RESP array of the keys, without those last modified by `skip` (when
/// not 0); empty when no key is left.
fn keys_proto(keys: &BTreeMap<Vec<u8>, u64>, skip: u64) -> Vec<u8> {
    let n = keys.values().filter(|&&by| skip == 0 || by != skip).count();
    if n == 0 {
        return Vec::new();
    }
    let mut b = Vec::with_capacity(8 + n * 16);
    b.push(b'*');
    b.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    b.extend_from_slice(b"\r\n");
    for (k, &by) in keys {
        if skip != 0 && by == skip {
            continue;
        }
        protocol::resp::request::bulk(&mut b, k);
    }
    b
}

/// `tracking-table-max-keys` (Redis' `trackingLimitUsedSlots`): while the
/// table holds too many keys, invalidates random ones (as if modified, but
/// not broadcast), with an effort that grows while it stays over.
fn limit(srv: &Server) {
    let tr = &srv.tracking;
    let max = tr.max_keys.load(Relaxed) as usize;
    if max == 0 {
        return;
    }
    let mut effort = {
        let mut t = tr.lock();
        if t.keys.len() <= max {
            t.limit_rounds = 0;
            return;
        }
        100 * (t.limit_rounds as usize + 1)
    };
    while effort > 0 {
        effort -= 1;
        let taken = {
            let mut t = tr.lock();
            if t.order.is_empty() {
                break;
            }
            let key = t.order[rand::random_range(0..t.order.len())].clone();
            let ids = t.take_key(&key).unwrap_or_default();
            tr.sync(&t);
            (key, ids)
        };
        notify_trackers(srv, &taken.0, &taken.1);
        let mut t = tr.lock();
        if t.keys.len() <= max {
            t.limit_rounds = 0;
            return;
        }
    }
    let mut t = tr.lock();
    t.limit_rounds = t.limit_rounds.saturating_add(1);
}

/// The max-keys check before a command of `client` runs: what the evicted
/// keys owe this client goes to its output now, before the reply.
pub fn limit_before(srv: &Server, client: &Client, out: &mut Reply) {
    let own = as_current(client.id, || limit(srv));
    out.buf.extend_from_slice(&own);
}

/// The cron's share: pending broadcasts and the max-keys limit, even when
/// every client is idle.
pub fn cron(srv: &Server) {
    if srv.tracking.bcast_pending() {
        broadcast(srv);
    }
    if srv.tracking.over_limit() {
        limit(srv);
    }
}

// ---------------------------------------------------------------------------
// CLIENT TRACKING on / off.

/// Checks BCAST prefixes against each other and against the client's
/// current ones (Redis' `checkPrefixCollisionsOrReply`). `Some((text,
/// fatal))` is an error to reply; as in Redis, an overlap among the given
/// prefixes found for any but the first of them is replied and then
/// tracking is enabled anyway (`fatal == false`).
pub fn prefix_collision(srv: &Server, id: u64, prefixes: &[&[u8]]) -> Option<(String, bool)> {
    let overlap = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    // Redis formats them with %s: a NUL ends them.
    let shown = |p: &[u8]| {
        let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
        crate::errors::lossy(&p[..end]).into_owned()
    };
    let t = srv.tracking.lock();
    let existing = t.client_prefixes.get(&id);
    for (i, p) in prefixes.iter().enumerate() {
        if let Some(e) = existing.and_then(|ex| ex.iter().find(|e| overlap(e, p))) {
            return Some((
                format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    shown(p),
                    shown(e)
                ),
                true,
            ));
        }
        if let Some(q) = prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
            return Some((
                format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    shown(p),
                    shown(q)
                ),
                i == 0,
            ));
        }
    }
    None
}

/// Turns tracking on for `info` (Redis' `enableTracking`; the options were
/// checked by CLIENT TRACKING): `opts` are [`flags`] bits, `redirect` 0 for
/// none. Turning it on again resets the options and adds prefixes.
pub fn enable(srv: &Server, info: &ClientInfo, redirect: u64, opts: u32, prefixes: &[&[u8]]) {
    let tr = &srv.tracking;
    let mut t = tr.lock();
    let old = info.tracking.flags();
    if old & flags::ON == 0 {
        t.clients += 1;
    }
    let mut f = flags::ON | (opts & (flags::OPTIN | flags::OPTOUT | flags::NOLOOP));
    if opts & flags::BCAST != 0 {
        f |= flags::BCAST;
        if prefixes.is_empty() {
            t.add_prefix(info.id, b"");
        }
        for p in prefixes {
            t.add_prefix(info.id, p);
        }
    }
    info.tracking.redirect.store(redirect, Relaxed);
    info.tracking.flags.store(f, SeqCst);
    tr.sync(&t);
}

/// Turns tracking off (CLIENT TRACKING off, RESET, disconnect; Redis'
/// `disableTracking`). The client's table entries go lazily.
pub fn disable(srv: &Server, client: &mut Client) {
    client.tracking.caching = false;
    let info = &client.info;
    let f = info.tracking.flags();
    if f & flags::ON == 0 {
        return;
    }
    let tr = &srv.tracking;
    let mut t = tr.lock();
    if f & flags::BCAST != 0
        && let Some(mine) = t.client_prefixes.remove(&info.id)
    {
        for p in mine {
            if let Some(bs) = t.prefixes.get_mut(&p) {
                bs.clients.remove(&info.id);
                if bs.clients.is_empty() {
                    t.prefixes.remove(&p);
                }
            }
        }
    }
    t.clients -= 1;
    info.tracking.flags.store(0, SeqCst);
    tr.sync(&t);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::conn::harness::{Conn, H};

    /// A RESP3 invalidation push of `keys`.
    fn push(keys: &[&str]) -> String {
        let mut s = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len());
        for k in keys {
            s.push_str(&format!("${}\r\n{k}\r\n", k.len()));
        }
        s
    }

    fn mail(c: &Conn) -> String {
        String::from_utf8_lossy(&c.client.info.take_mail()).into_owned()
    }

    /// A RESP3 client with tracking on (`opts` appended to CLIENT TRACKING on).
    fn tracker(h: &mut H, opts: &str) -> Conn {
        let mut c = h.connect();
        h.text(&mut c, "HELLO 3");
        assert_eq!(
            h.text(&mut c, &format!("CLIENT TRACKING on {opts}")),
            "+OK\r\n"
        );
        c
    }

    #[test]
    fn default_mode_invalidates_once_then_forgets() {
        let mut h = H::new();
        let mut w = h.connect();
        assert!(!h.srv.tracking.armed());
        let mut t = tracker(&mut h, "");
        assert!(h.srv.tracking.armed());
        assert_eq!(h.text(&mut t, "MGET a b a"), "*3\r\n_\r\n_\r\n_\r\n");
        assert_eq!(h.srv.tracking.stats(), (1, 2, 2, 0));
        h.text(&mut w, "SET a 1");
        assert_eq!(mail(&t), push(&["a"]));
        h.text(&mut w, "SET a 2");
        assert_eq!(mail(&t), "", "a key is invalidated once");
        assert_eq!(h.srv.tracking.stats(), (1, 1, 1, 0));
        // Keys are one table for every DB; writes that change nothing
        // invalidate nothing.
        h.text(&mut w, "SELECT 3");
        h.text(&mut w, "DEL b");
        assert_eq!(mail(&t), "");
        h.text(&mut w, "SET b x");
        assert_eq!(mail(&t), push(&["b"]));
        // Non-READONLY commands and rejected calls remember nothing.
        h.text(&mut t, "SET c 1");
        h.text(&mut t, "GET");
        assert_eq!(h.srv.tracking.stats().1, 0);
    }

    #[test]
    fn own_changes_come_after_the_reply() {
        let mut h = H::new();
        let mut t = tracker(&mut h, "");
        h.text(&mut t, "GET k");
        assert_eq!(
            h.text(&mut t, "SET k 1"),
            format!("+OK\r\n{}", push(&["k"]))
        );
        assert_eq!(h.text(&mut t, "SET k 2"), "+OK\r\n");
        h.text(&mut t, "GET k");
        h.text(&mut t, "MULTI");
        h.text(&mut t, "SET k 3");
        h.text(&mut t, "GET k");
        assert_eq!(
            h.text(&mut t, "EXEC"),
            format!("*2\r\n+OK\r\n$1\r\n3\r\n{}", push(&["k"]))
        );
        // GET inside EXEC remembered it again.
        assert_eq!(h.text(&mut t, "DEL k"), format!(":1\r\n{}", push(&["k"])));
        // CLIENT REPLY OFF silences the reply, not the push.
        h.text(&mut t, "GET k");
        h.text(&mut t, "CLIENT REPLY off");
        assert_eq!(h.text(&mut t, "SET k 1"), push(&["k"]));
        assert_eq!(mail(&t), "");
    }

    #[test]
    fn lazy_expiry_by_own_read_comes_after_the_reply() {
        let mut h = H::new();
        let mut t = tracker(&mut h, "");
        h.text(&mut t, "SET e v PX 30");
        h.text(&mut t, "GET e");
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(h.text(&mut t, "GET e"), format!("_\r\n{}", push(&["e"])));
        // ... and the read remembered it again.
        assert_eq!(h.srv.tracking.stats().1, 1);
    }

    #[test]
    fn noloop_skips_own_changes() {
        let mut h = H::new();
        let mut w = h.connect();
        let mut t = tracker(&mut h, "noloop");
        h.text(&mut t, "GET k");
        assert_eq!(h.text(&mut t, "SET k 1"), "+OK\r\n");
        h.text(&mut w, "SET k 2");
        assert_eq!(mail(&t), "", "dropped from the table by the own write");
        h.text(&mut t, "GET k");
        h.text(&mut w, "SET k 3");
        assert_eq!(mail(&t), push(&["k"]));
    }

    #[test]
    fn optin_optout_and_caching() {
        let mut h = H::new();
        let mut w = h.connect();
        let mut t = tracker(&mut h, "optin");
        h.text(&mut t, "GET a");
        assert_eq!(h.srv.tracking.stats().1, 0);
        assert_eq!(h.text(&mut t, "CLIENT CACHING yes"), "+OK\r\n");
        h.text(&mut t, "CLIENT ID");
        assert!(
            h.text(&mut t, "CLIENT TRACKINGINFO")
                .contains("caching-yes")
        );
        h.text(&mut t, "GET a");
        h.text(&mut t, "GET b");
        assert_eq!(h.srv.tracking.stats().1, 1, "only the next command");
        assert!(!t.client.tracking.caching);
        h.text(&mut t, "CLIENT CACHING yes");
        h.text(&mut t, "MULTI");
        h.text(&mut t, "GET c");
        h.text(&mut t, "GET d");
        h.text(&mut t, "EXEC");
        assert_eq!(h.srv.tracking.stats().1, 3, "a whole transaction");
        h.text(&mut w, "MSET a 1 b 1 c 1 d 1");
        assert_eq!(
            mail(&t),
            format!("{}{}{}", push(&["a"]), push(&["c"]), push(&["d"]))
        );
        assert_eq!(
            h.text(&mut t, "CLIENT CACHING no"),
            format!("-{}\r\n", crate::errors::CACHING_NO_WITHOUT_OPTOUT)
        );
        assert_eq!(
            h.text(&mut t, "CLIENT TRACKING on optout"),
            format!("-{}\r\n", crate::errors::TRACKING_OPTIN_OPTOUT_SWITCH)
        );
        h.text(&mut t, "CLIENT TRACKING off");
        h.text(&mut t, "CLIENT TRACKING on optout");
        h.text(&mut t, "CLIENT CACHING no");
        h.text(&mut t, "GET x");
        h.text(&mut t, "GET y");
        h.text(&mut w, "MSET x 1 y 1");
        assert_eq!(mail(&t), push(&["y"]));
        // Turning tracking off ends a pending CACHING.
        h.text(&mut t, "CLIENT CACHING no");
        h.text(&mut t, "CLIENT TRACKING off");
        assert!(!t.client.tracking.caching);
    }

    #[test]
    fn bcast_prefixes_batches_and_noloop() {
        let mut h = H::new();
        let mut w = h.connect();
        let mut b = tracker(&mut h, "bcast prefix user: prefix obj:");
        let mut n = tracker(&mut h, "bcast noloop prefix user:");
        assert_eq!(h.srv.tracking.stats(), (2, 0, 0, 2));
        assert!(!h.srv.tracking.bcast_pending());
        h.text(&mut w, "MSET user:2 a obj:1 b other c");
        h.text(&mut n, "SET user:1 x");
        h.text(&mut w, "DEL nosuch");
        assert!(h.srv.tracking.bcast_pending());
        broadcast(&h.srv);
        assert!(!h.srv.tracking.bcast_pending());
        assert_eq!(
            mail(&b),
            format!("{}{}", push(&["obj:1"]), push(&["user:1", "user:2"]))
        );
        assert_eq!(mail(&n), push(&["user:2"]), "NOLOOP: not its own key");
        h.text(&mut n, "SET user:1 y");
        broadcast(&h.srv);
        assert_eq!(mail(&n), "", "nothing left: no message");
        assert_eq!(mail(&b), push(&["user:1"]));
        // A BCAST client's own change comes through its mailbox (after the
        // batch's replies), not its reply.
        assert_eq!(h.text(&mut b, "SET obj:2 z"), "+OK\r\n");
        broadcast(&h.srv);
        assert_eq!(mail(&b), push(&["obj:2"]));
        // BCAST clients remember no keys.
        h.text(&mut b, "GET user:5");
        assert_eq!(h.srv.tracking.stats().1, 0);
        h.text(&mut n, "CLIENT TRACKING off");
        assert_eq!(h.srv.tracking.stats(), (1, 0, 0, 2));
        h.text(&mut b, "RESET");
        assert_eq!(h.srv.tracking.stats(), (0, 0, 0, 0));
        assert!(!h.srv.tracking.armed());
    }

    #[test]
    fn prefix_checks() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(
            h.text(&mut c, "CLIENT TRACKING on bcast prefix a prefix ab"),
            "-ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must not overlap.\r\n"
        );
        assert!(!c.client.info.tracking.on());
        // Redis' quirk: found for a later prefix, the error is replied and
        // tracking is enabled anyway.
        assert_eq!(
            h.text(
                &mut c,
                "CLIENT TRACKING on bcast prefix x prefix b prefix bc"
            ),
            "-ERR Prefix 'b' overlaps with another provided prefix 'bc'. Prefixes for a single client must not overlap.\r\n+OK\r\n"
        );
        assert_eq!(
            h.srv.tracking.prefixes_of(c.client.id),
            [b"b".to_vec(), b"bc".to_vec(), b"x".to_vec()]
        );
        assert_eq!(
            h.text(
                &mut c,
                "CLIENT TRACKING on bcast prefix \"y\\x00z\" prefix xy"
            ),
            "-ERR Prefix 'xy' overlaps with an existing prefix 'x'. Prefixes for a single client must not overlap.\r\n"
        );
        // A NUL ends a prefix in the message (Redis formats with %s).
        assert_eq!(
            h.text(
                &mut c,
                "CLIENT TRACKING on bcast prefix \"q\\x00z\" prefix q"
            ),
            "-ERR Prefix 'q' overlaps with another provided prefix 'q'. Prefixes for a single client must not overlap.\r\n"
        );
    }

    #[test]
    fn a_redirect_target_that_never_reads_is_closed_at_its_class_limit() {
        let mut h = H::new();
        let mut w = h.connect();
        let mut r3 = h.connect();
        h.text(&mut r3, "HELLO 3");
        let mut t = h.connect();
        // The normal class for a RESP3 target; a pubsub limit that would
        // never trip, to show which class counts.
        assert_eq!(
            h.text(
                &mut w,
                "CONFIG SET client-output-buffer-limit \"normal 300 0 0 pubsub 0 0 0\""
            ),
            "+OK\r\n"
        );
        h.text(
            &mut t,
            &format!("CLIENT TRACKING on redirect {}", r3.client.id),
        );
        let mut n = 0;
        while !r3.client.info.killed.load(Relaxed) && n < 100 {
            h.text(&mut t, &format!("GET key:{n}"));
            h.text(&mut w, &format!("SET key:{n} v"));
            n += 1;
        }
        // Each invalidation is about 40 bytes: closed after about eight.
        assert!(r3.client.info.killed.load(Relaxed), "never closed");
        assert!(n < 20, "closed late: {n}");
        // The writer and the tracker carry on.
        assert_eq!(h.text(&mut w, "PING"), "+PONG\r\n");
        assert_eq!(h.text(&mut t, "GET key:0"), "$1\r\nv\r\n");
    }

    #[test]
    fn redirect_resp2_subscriber_resp3_and_broken() {
        let mut h = H::new();
        let mut w = h.connect();
        let mut sub = h.connect();
        h.text(&mut sub, "SUBSCRIBE __redis__:invalidate");
        let mut r3 = h.connect();
        h.text(&mut r3, "HELLO 3");
        let mut t = h.connect();
        let sid = sub.client.id;
        assert_eq!(
            h.text(&mut t, &format!("CLIENT TRACKING on redirect {sid}")),
            "+OK\r\n"
        );
        assert_eq!(h.text(&mut t, "CLIENT GETREDIR"), format!(":{sid}\r\n"));
        h.text(&mut t, "GET k");
        h.text(&mut w, "SET k 1");
        assert_eq!(
            mail(&sub),
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n"
        );
        // A flush: a null in the tracking client's protocol (RESP2 here).
        h.text(&mut w, "FLUSHALL");
        assert_eq!(
            mail(&sub),
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
        );
        // A RESP3 target gets the push, before the reply of its own write.
        let rid = r3.client.id;
        h.text(&mut t, &format!("CLIENT TRACKING on redirect {rid}"));
        h.text(&mut t, "GET k");
        assert_eq!(
            h.text(&mut r3, "SET k 2"),
            format!("{}+OK\r\n", push(&["k"]))
        );
        // CLIENT REPLY OFF drops the target's reply, not the push.
        h.text(&mut t, "GET k");
        assert_eq!(h.text(&mut r3, "CLIENT REPLY OFF"), "");
        assert_eq!(h.text(&mut r3, "SET k 2"), push(&["k"]));
        assert_eq!(h.text(&mut r3, "SET k 2"), "");
        h.text(&mut r3, "CLIENT REPLY ON");
        // The target leaves: the tracker is marked broken (RESP2: silently).
        h.text(&mut t, "GET k");
        r3.client.info.kill();
        h.text(&mut w, "SET k 3");
        assert_eq!(mail(&t), "");
        let info = h.text(&mut t, "CLIENT TRACKINGINFO");
        assert!(info.contains("broken_redirect"), "{info}");
        let line = h.text(&mut w, &format!("CLIENT LIST ID {}", t.client.id));
        assert!(
            line.contains(" flags=tR ") && line.contains(&format!(" redir={rid} ")),
            "{line}"
        );
        // In RESP3 the tracker is told, after its reply when it is running.
        h.text(&mut t, "HELLO 3");
        h.text(&mut t, "GET k");
        assert_eq!(
            h.text(&mut t, "SET k 4"),
            format!("+OK\r\n>2\r\n$21\r\ntracking-redir-broken\r\n:{rid}\r\n")
        );
        // Turning it on again clears the flag and the redirect.
        h.text(&mut t, "CLIENT TRACKING on");
        let line = h.text(&mut w, &format!("CLIENT LIST ID {}", t.client.id));
        assert!(
            line.contains(" flags=t ") && line.contains(" redir=0 "),
            "{line}"
        );
        h.text(&mut t, "CLIENT TRACKING off");
        h.text(&mut t, "CLIENT TRACKING on bcast");
        let line = h.text(&mut w, &format!("CLIENT LIST ID {}", t.client.id));
        assert!(line.contains(" flags=tB "), "{line}");
        h.text(&mut t, "CLIENT TRACKING off");
        let line = h.text(&mut w, &format!("CLIENT LIST ID {}", t.client.id));
        assert!(
            line.contains(" flags=N ") && line.contains(" redir=-1 "),
            "{line}"
        );
    }

    #[test]
    fn flush_tells_every_tracking_client() {
        let mut h = H::new();
        let mut w = h.connect();
        let mut a = tracker(&mut h, "");
        let b = tracker(&mut h, "bcast");
        h.text(&mut a, "GET k");
        h.text(&mut w, "FLUSHDB");
        assert_eq!(mail(&a), ">2\r\n$10\r\ninvalidate\r\n_\r\n");
        assert_eq!(mail(&b), ">2\r\n$10\r\ninvalidate\r\n_\r\n");
        assert_eq!(h.srv.tracking.stats().1, 0, "the table is emptied");
        assert_eq!(
            h.text(&mut a, "FLUSHALL"),
            "+OK\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n"
        );
        assert_eq!(mail(&b), ">2\r\n$10\r\ninvalidate\r\n_\r\n");
    }

    #[test]
    fn max_keys_evicts_before_the_next_command() {
        let mut h = H::new();
        let mut t = tracker(&mut h, "");
        let mut w = h.connect();
        h.text(&mut w, "CONFIG SET tracking-table-max-keys 2");
        h.text(&mut t, "MGET a b c");
        assert_eq!(h.srv.tracking.stats().1, 3);
        assert!(h.srv.tracking.over_limit());
        let r = h.text(&mut t, "PING");
        assert!(
            r.starts_with(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\n")
                && r.ends_with("\r\n+PONG\r\n"),
            "{r}"
        );
        assert_eq!(h.srv.tracking.stats(), (1, 2, 2, 0));
        assert!(!h.srv.tracking.over_limit());
        // Another client's command evicts too; the tracker gets mail.
        h.text(&mut t, "MGET a b c");
        h.text(&mut w, "PING");
        assert_eq!(h.srv.tracking.stats().1, 2);
        assert!(mail(&t).starts_with(">2\r\n$10\r\ninvalidate\r\n"));
        h.text(&mut w, "CONFIG SET tracking-table-max-keys 0");
        h.text(&mut t, "MGET x y z");
        assert!(!h.srv.tracking.over_limit());
    }

    #[test]
    fn stale_entries_go_when_their_key_changes() {
        let mut h = H::new();
        let mut w = h.connect();
        let mut t = tracker(&mut h, "");
        let mut u = tracker(&mut h, "");
        h.text(&mut t, "GET k");
        h.text(&mut u, "GET k");
        assert_eq!(h.srv.tracking.stats(), (2, 1, 2, 0));
        crate::tracking::disable(&h.srv, &mut t.client);
        h.text(&mut u, "CLIENT TRACKING off");
        assert_eq!(h.srv.tracking.stats(), (0, 1, 2, 0));
        assert!(h.srv.tracking.armed(), "the table still holds k");
        h.text(&mut w, "SET k 1");
        assert_eq!(mail(&t), "");
        assert_eq!(h.srv.tracking.stats(), (0, 0, 0, 0));
        assert!(!h.srv.tracking.armed());
    }

    #[test]
    fn table_order_and_removal() {
        let mut t = Table::default();
        for (k, id) in [
            (&b"a"[..], 1),
            (b"b", 2),
            (b"c", 3),
            (b"a", 256),
            (b"a", 2),
            (b"a", 1),
        ] {
            t.add_key(k, id);
        }
        assert_eq!(t.items, 5);
        // Ids in the order of their little-endian bytes (256 = 00 01 ...).
        assert_eq!(t.take_key(b"a"), Some(vec![256, 1, 2]));
        assert_eq!(t.take_key(b"a"), None);
        assert_eq!(t.items, 2);
        assert_eq!(t.order.len(), 2);
        for k in &t.order {
            assert_eq!(&t.order[t.keys[&k[..]].pos], k);
        }
        assert_eq!(
            keys_proto(&BTreeMap::from([(b"x".to_vec(), 0), (b"y".to_vec(), 7)]), 7),
            b"*1\r\n$1\r\nx\r\n"
        );
        assert!(keys_proto(&BTreeMap::from([(b"y".to_vec(), 7)]), 7).is_empty());
    }
}
