//! maxmemory: eviction before commands, the OOM refusal, LRU/LFU access
//! clocks. Mirrors Redis 7.0's evict.c (redis-internals.md §Eviction):
//!
//! * The check runs before every command that is not a replica's or a
//!   load's (exec.rs): one relaxed load while `maxmemory` is 0, one more
//!   (the allocator's count, alloc.rs) while under the limit.
//! * Over the limit, keys are evicted until the count is under it again,
//!   for at most `maxmemory-eviction-tenacity`'s time budget; the rest
//!   continues in a background task (Redis' eviction time proc) while
//!   commands go on. With nothing left to evict the command fails with
//!   -OOM if it may grow memory (`denyoom`, anything queued in MULTI).
//! * Approximated LRU/LFU/TTL: `maxmemory-samples` keys per DB go into a
//!   16-entry pool ordered by score (idle time, 255 - LFU counter,
//!   max - expiry); the best existing key goes. Samples come from one slot
//!   chosen with probability proportional to its keys (or keys with an
//!   expiry), from a random bucket on: no slot is favoured.
//! * Slots are only ever try-locked: a slot a migration or a transaction
//!   holds is skipped, never waited for.
//! * An evicted key goes as in Redis: DEL (UNLINK with
//!   `lazyfree-lazy-eviction`) in the propagation stream, the `evicted`
//!   notification, the modified-key signal (WATCH, tracking).
//! * Access clocks live in the entry's 24 bits (db/entry.rs): the LRU
//!   clock in seconds, or under an LFU policy 16 bits of minutes and an
//!   8-bit logarithmic counter (`lfu-log-factor`, `lfu-decay-time`).
//!   [`token`] tells the entry which to keep.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use protocol::slot::{SLOTS, slot_of};
use rand::Rng;

use crate::alloc;
use crate::config::{Config, MaxmemoryPolicy};
use crate::db::{Db, KeyAccess, Keyspace};
use crate::server::Server;

/// Marks an access token as LFU (`token`); the low 16 bits are
/// then the minute clock.
pub const LFU_TOKEN: u32 = 1 << 31;
/// A new key's LFU counter (Redis' LFU_INIT_VAL).
pub const LFU_INIT_VAL: u32 = 5;
/// Candidates kept between calls (Redis' EVPOOL_SIZE).
const POOL_SIZE: usize = 16;
/// A slot's key counts are re-read after this many picks or this long.
const WEIGHTS_USES: u32 = 256;
const WEIGHTS_AGE: Duration = Duration::from_millis(100);

static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
/// An LFU policy is selected (the access clocks of the whole process).
static LFU_ON: AtomicBool = AtomicBool::new(false);
static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// What the check before a command found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evict {
    /// Under the limit (or no limit).
    Ok,
    /// Over the limit, eviction continues in the background.
    Running,
    /// Over the limit and nothing (more) could be evicted.
    Fail,
}

/// Where a pooled candidate lives: its slot's bucket and the entry's
/// identity ([`Entry::ident`]). The pool keeps no copy of the key: copying
/// it read the key's blob, a cache miss for every sampled key that entered
/// the pool (10% of an evicting MSET's CPU); the key is read once, when
/// the candidate is evicted. A table that was rebuilt since, or a bucket
/// that now holds another entry, makes the candidate gone, as a deleted
/// key does in Redis' pool.
#[derive(Clone, Copy, Debug)]
struct Loc {
    slot: u32,
    bucket: u32,
    ident: usize,
}

/// A key waiting in the pool.
struct Candidate {
    score: u64,
    db: usize,
    loc: Loc,
}

/// What to evict: a key by name (the random policies), or a pooled
/// candidate.
enum Victim {
    Key(Vec<u8>),
    At(Loc),
}

/// Cumulative key counts of one DB's slots.
#[derive(Default)]
struct Weights {
    cum: Vec<u64>,
    volatile: bool,
    uses: u32,
    built: Option<Instant>,
}

#[derive(Default)]
struct State {
    pool: Vec<Candidate>,
    weights: Vec<Weights>,
    /// Redis' `next_db` of the random policies.
    next_db: usize,
}

/// The eviction state (one per server).
pub struct Evictor {
    maxmemory: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    tenacity: AtomicU32,
    lazy: AtomicBool,
    replica_ignores: AtomicBool,
    /// INFO `evicted_keys`.
    pub evicted_keys: AtomicU64,
    /// `maxmemory-clients` in bytes (0: no client eviction).
    clients_limit: AtomicU64,
    /// INFO `evicted_clients`.
    pub evicted_clients: AtomicU64,
    /// When the count last went over the limit (ms since start + 1), 0
    /// while under it (INFO `current_eviction_exceeded_time`).
    over_since: AtomicU64,
    /// INFO `total_eviction_exceeded_time`, in ms.
    pub over_total_ms: AtomicU64,
    /// The background continuation is scheduled.
    running: AtomicBool,
    state: Mutex<State>,
    epoch: Instant,
}

impl Default for Evictor {
    fn default() -> Self {
        Evictor {
            maxmemory: AtomicU64::new(0),
            policy: AtomicU8::new(policy_code(MaxmemoryPolicy::NoEviction)),
            samples: AtomicU32::new(5),
            tenacity: AtomicU32::new(10),
            lazy: AtomicBool::new(false),
            replica_ignores: AtomicBool::new(true),
            evicted_keys: AtomicU64::new(0),
            clients_limit: AtomicU64::new(0),
            evicted_clients: AtomicU64::new(0),
            over_since: AtomicU64::new(0),
            over_total_ms: AtomicU64::new(0),
            running: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            epoch: Instant::now(),
        }
    }
}

const POLICIES: [MaxmemoryPolicy; 8] = [
    MaxmemoryPolicy::VolatileLru,
    MaxmemoryPolicy::VolatileLfu,
    MaxmemoryPolicy::VolatileRandom,
    MaxmemoryPolicy::VolatileTtl,
    MaxmemoryPolicy::AllkeysLru,
    MaxmemoryPolicy::AllkeysLfu,
    MaxmemoryPolicy::AllkeysRandom,
    MaxmemoryPolicy::NoEviction,
];

fn policy_code(p: MaxmemoryPolicy) -> u8 {
    POLICIES.iter().position(|x| *x == p).unwrap_or(7) as u8
}

pub fn is_lfu(p: MaxmemoryPolicy) -> bool {
    matches!(
        p,
        MaxmemoryPolicy::VolatileLfu | MaxmemoryPolicy::AllkeysLfu
    )
}

fn is_volatile(p: MaxmemoryPolicy) -> bool {
    matches!(
        p,
        MaxmemoryPolicy::VolatileLru
            | MaxmemoryPolicy::VolatileLfu
            | MaxmemoryPolicy::VolatileRandom
            | MaxmemoryPolicy::VolatileTtl
    )
}

/// Redis' evictionTimeLimitUs: 50 µs per step up to 10, then 15% more per
/// step, unlimited at 100.
fn time_limit(tenacity: u32) -> Option<Duration> {
    match tenacity {
        0..=10 => Some(Duration::from_micros(50 * tenacity as u64)),
        11..=99 => Some(Duration::from_micros(
            (500.0 * 1.15f64.powi(tenacity as i32 - 10)) as u64,
        )),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Access clocks
// ---------------------------------------------------------------------------

/// The access token of a command running at `now_ms`: the LRU clock, or
/// [`LFU_TOKEN`] with the minute clock under an LFU policy.
#[inline]
pub fn token(now_ms: u64) -> u32 {
    if LFU_ON.load(Relaxed) {
        LFU_TOKEN | minutes(now_ms)
    } else {
        crate::db::lru_clock(now_ms)
    }
}

/// Whether an LFU policy is selected.
pub fn lfu_on() -> bool {
    LFU_ON.load(Relaxed)
}

/// The stored LFU value of a key restored or loaded with counter `freq`
/// (Redis' objectSetLRUOrLFU), when an LFU policy is selected.
pub fn restored_freq(now_ms: u64, freq: Option<u8>) -> Option<u32> {
    let f = freq?;
    lfu_on().then(|| (minutes(now_ms) << 8) | f as u32)
}

/// The LFU minute clock (16 bits).
pub fn minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xffff) as u32
}

/// The stored LFU value of a new key at minute clock `min`.
pub fn lfu_new(min: u32) -> u32 {
    (min << 8) | LFU_INIT_VAL
}

/// The counter of stored LFU value `v` after its decay up to minute clock
/// `now_min` (Redis' LFUDecrAndReturn).
pub fn lfu_decayed(v: u32, now_min: u32) -> u32 {
    let (ldt, counter) = (v >> 8 & 0xffff, v & 0xff);
    let decay = LFU_DECAY_TIME.load(Relaxed);
    let elapsed = if now_min >= ldt {
        now_min - ldt
    } else {
        65535 - ldt + now_min
    };
    let periods = elapsed.checked_div(decay).unwrap_or(0);
    counter.saturating_sub(periods)
}

/// Redis' LFULogIncr: the counter grows with probability
/// 1 / ((counter - 5) × lfu-log-factor + 1).
fn lfu_log_incr(counter: u32) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * LFU_LOG_FACTOR.load(Relaxed) as f64 + 1.0);
    if fast_random() < p {
        counter + 1
    } else {
        counter
    }
}

/// A uniform number in [0, 1) from a per-thread xorshift (the LFU counter
/// needs no better, and this runs on reads).
fn fast_random() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = rand::random::<u64>() | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// The stored 24-bit value after an access with `token` (see
/// [`token`]): the LRU clock, or the LFU value decayed and
/// incremented.
#[inline]
pub fn touched(stored: u32, token: u32) -> u32 {
    if token & LFU_TOKEN == 0 {
        return token;
    }
    let min = token & 0xffff;
    let c = lfu_log_incr(lfu_decayed(stored, min));
    (min << 8) | c
}

/// The stored 24-bit value of a key created with `token`.
#[inline]
pub fn created(token: u32) -> u32 {
    if token & LFU_TOKEN == 0 {
        token
    } else {
        lfu_new(token & 0xffff)
    }
}

/// Idle milliseconds of a key by its LRU clock value (24 bits, seconds).
pub fn idle_ms(lru: u32, now_ms: u64) -> u64 {
    let clock = crate::db::lru_clock(now_ms);
    let secs = if clock >= lru {
        clock - lru
    } else {
        clock + (0xff_ffff - lru)
    };
    secs as u64 * 1000
}

// ---------------------------------------------------------------------------
// The evictor
// ---------------------------------------------------------------------------

impl Evictor {
    /// Caches the settings (Server::apply_config).
    pub fn configure(&self, c: &Config) {
        self.maxmemory.store(c.maxmemory, Relaxed);
        self.policy.store(policy_code(c.maxmemory_policy), Relaxed);
        self.samples.store(c.maxmemory_samples.max(1), Relaxed);
        self.tenacity.store(c.maxmemory_eviction_tenacity, Relaxed);
        self.lazy.store(c.lazyfree_lazy_eviction, Relaxed);
        self.replica_ignores
            .store(c.replica_ignore_maxmemory, Relaxed);
        LFU_ON.store(is_lfu(c.maxmemory_policy), Relaxed);
        // `maxmemory-clients`: bytes, or a percentage of maxmemory (none
        // while maxmemory is 0), as Redis.
        let mc = c.get_one("maxmemory-clients").unwrap_or_default();
        let limit = match mc.strip_suffix(b"%") {
            Some(p) => {
                let pct: u64 = std::str::from_utf8(p)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                c.maxmemory / 100 * pct
            }
            None => std::str::from_utf8(&mc)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        };
        self.clients_limit.store(limit, Relaxed);
        LFU_LOG_FACTOR.store(c.lfu_log_factor, Relaxed);
        LFU_DECAY_TIME.store(c.lfu_decay_time, Relaxed);
    }

    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Relaxed)
    }

    pub fn policy(&self) -> MaxmemoryPolicy {
        POLICIES[self.policy.load(Relaxed) as usize & 7]
    }

    /// ms over the limit in the current stretch (0 when under it).
    pub fn current_over_ms(&self) -> u64 {
        match self.over_since.load(Relaxed) {
            0 => 0,
            t => (self.epoch.elapsed().as_millis() as u64 + 1).saturating_sub(t),
        }
    }

    fn note_over(&self, over: bool) {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        if over {
            let _ = self.over_since.compare_exchange(0, now, Relaxed, Relaxed);
        } else {
            let since = self.over_since.swap(0, Relaxed);
            if since != 0 {
                self.over_total_ms
                    .fetch_add(now.saturating_sub(since), Relaxed);
            }
        }
    }
}

/// `maxmemory-clients` in bytes (0: off).
#[inline]
pub fn clients_limit(srv: &Server) -> u64 {
    srv.evict.clients_limit.load(Relaxed)
}

/// Client eviction (Redis 7.0's `maxmemory-clients`): while the normal
/// and pub/sub connections together use more than the limit, the largest
/// is closed (not those with CLIENT NO-EVICT, replicas or the master).
/// Run by the cron and by a connection whose own memory passes an eighth
/// of the limit.
pub fn evict_clients(srv: &Server) {
    let limit = clients_limit(srv);
    if limit == 0 {
        return;
    }
    let mut all: Vec<(u64, std::sync::Arc<crate::client::ClientInfo>)> = srv
        .clients
        .all()
        .into_iter()
        .filter(|c| !c.killed.load(Relaxed))
        .map(|c| {
            (
                (c.fixed_mem() + c.pending_output() + c.qbuf.load(Relaxed)) as u64,
                c,
            )
        })
        .collect();
    let mut total: u64 = all
        .iter()
        .filter(|(_, c)| !c.replica.load(Relaxed) && !c.master.load(Relaxed))
        .map(|(m, _)| *m)
        .sum();
    if total <= limit {
        return;
    }
    all.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    for (mem, c) in all {
        if total <= limit {
            break;
        }
        if c.no_evict.load(Relaxed) || c.replica.load(Relaxed) || c.master.load(Relaxed) {
            continue;
        }
        crate::log::log(
            crate::log::Level::Verbose,
            &format!("Evicting client: id={} addr={} tot-mem={mem}", c.id, c.addr),
        );
        c.kill();
        srv.evict.evicted_clients.fetch_add(1, Relaxed);
        total = total.saturating_sub(mem);
    }
}

/// Memory Redis leaves out of the comparison with maxmemory: replica
/// buffers beyond the backlog and the AOF buffer.
pub fn not_counted(srv: &Server) -> u64 {
    if !srv.prop.active() {
        // No replica, no AOF: nothing buffered for them.
        return 0;
    }
    srv.prop.replica_excess_bytes() + srv.persist.aof.writer.pending_bytes()
}

/// How many bytes must go (0 when under the limit or there is no limit).
fn to_free(srv: &Server, max: u64) -> u64 {
    let used = alloc::used_here();
    if used <= max {
        return 0;
    }
    let used = used.saturating_sub(not_counted(srv));
    used.saturating_sub(max)
}

/// The check before a command (Redis' performEvictions).
#[inline]
pub fn before_command(srv: &Server) -> Evict {
    let ev = &srv.evict;
    let max = ev.maxmemory.load(Relaxed);
    if max == 0 || alloc::used() <= max {
        if max != 0 && ev.over_since.load(Relaxed) != 0 && alloc::used_here() <= max {
            ev.note_over(false);
        }
        return Evict::Ok;
    }
    perform(srv)
}

#[cold]
#[inline(never)]
pub fn perform(srv: &Server) -> Evict {
    let ev = &srv.evict;
    let max = ev.maxmemory.load(Relaxed);
    if max == 0 || !alloc::installed() {
        return Evict::Ok;
    }
    if ev.replica_ignores.load(Relaxed) && srv.repl.link.is_replica() {
        return Evict::Ok;
    }
    // Clients paused for writes: nothing may change the dataset.
    if srv.pause.maybe_on() && srv.pause.mode(crate::db::now_ms()).is_some() {
        return Evict::Ok;
    }
    let mut need = to_free(srv, max);
    if need == 0 {
        ev.note_over(false);
        return Evict::Ok;
    }
    ev.note_over(true);
    let policy = ev.policy();
    if policy == MaxmemoryPolicy::NoEviction {
        return Evict::Fail;
    }
    // One evictor at a time; a thread that waited here finds what the
    // other freed.
    let mut st = ev.state.lock().unwrap_or_else(|p| p.into_inner());
    need = to_free(srv, max);
    if need == 0 {
        ev.note_over(false);
        return Evict::Ok;
    }
    let t0 = crate::stats::mono_ns();
    let limit = time_limit(ev.tenacity.load(Relaxed));
    let lazy = ev.lazy.load(Relaxed);
    let (mut freed, mut keys, mut misses) = (0u64, 0u64, 0u32);
    let mut result = Evict::Fail;
    let now = crate::db::now_ms();
    while freed < need {
        let Some((db, victim)) = select(srv, &mut st, policy, now) else {
            break;
        };
        let before = alloc::used_here();
        let t_del = srv.latency.on().then(Instant::now);
        if !evict_key(srv, db, victim, lazy) {
            // Gone, held by a migration or a transaction: the next one.
            misses += 1;
            if misses > 64 {
                break;
            }
            continue;
        }
        if let Some(t) = t_del {
            srv.latency
                .consider("eviction-del", t.elapsed().as_millis() as u64);
        }
        freed += before.saturating_sub(alloc::used_here());
        keys += 1;
        if keys % 16 == 0 {
            if lazy && to_free(srv, max) == 0 {
                break;
            }
            if limit
                .is_some_and(|l| crate::stats::mono_ns().saturating_sub(t0) > l.as_nanos() as u64)
            {
                start_background(srv);
                result = Evict::Running;
                break;
            }
        }
    }
    if result != Evict::Running {
        if freed >= need || to_free(srv, max) == 0 {
            result = Evict::Ok;
        } else if ev.running.load(Relaxed) {
            result = Evict::Running;
        }
    }
    drop(st);
    if srv.latency.on() {
        srv.latency.consider(
            "eviction-cycle",
            crate::stats::mono_ns().saturating_sub(t0) / 1_000_000,
        );
    }
    if result == Evict::Ok && to_free(srv, max) == 0 {
        ev.note_over(false);
    }
    result
}

/// Keeps evicting from a task of the executor until under the limit
/// (Redis' eviction time proc).
fn start_background(srv: &Server) {
    let ev = &srv.evict;
    if ev.running.swap(true, Relaxed) {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        ev.running.store(false, Relaxed);
        return;
    };
    let srv = srv.arc();
    rt.spawn(async move {
        loop {
            tokio::task::yield_now().await;
            if srv.shutting_down.load(Relaxed) {
                break;
            }
            srv.evict.running.store(false, Relaxed);
            if perform(&srv) != Evict::Running {
                break;
            }
            if srv.evict.running.swap(true, Relaxed) {
                // perform() scheduled another continuation: that one goes on.
                break;
            }
        }
    });
}

/// Kicks eviction after the limit shrank (CONFIG SET maxmemory).
pub fn limit_changed(srv: &Server) {
    let max = srv.evict.maxmemory();
    if max != 0 && alloc::installed() && alloc::used() > max {
        crate::warning!(
            "WARNING: the new maxmemory value set via CONFIG SET ({max}) is smaller than the current memory usage ({}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy.",
            alloc::used()
        );
        start_background(srv);
    }
}

/// Removes one key as an eviction; false when it is gone or its slot is
/// held.
fn evict_key(srv: &Server, dbi: usize, victim: Victim, lazy: bool) -> bool {
    let Some(db) = srv.ks.db(dbi) else {
        return false;
    };
    let slot = match &victim {
        Victim::Key(k) => slot_of(k),
        Victim::At(l) => l.slot as usize,
    };
    let Some(mut r) = srv.ks.try_lock_slot(db, slot) else {
        return false;
    };
    let key = match victim {
        Victim::Key(k) => k,
        Victim::At(l) => match r.bucket(l.bucket as usize) {
            Some(e) if e.ident() == l.ident => e.key().to_vec(),
            _ => return false,
        },
    };
    let key = &key[..];
    if srv.inflight.any(dbi) {
        // A key a migration is shipping stays (it leaves with the batch).
        // Asked without the slot held (the migration takes its own lock
        // before the slots').
        drop(r);
        if srv.inflight.is_migrating(dbi, key) {
            return false;
        }
        let Some(again) = srv.ks.try_lock_slot(db, slot) else {
            return false;
        };
        r = again;
    }
    let Some(old) = r.remove(key) else {
        return false;
    };
    srv.evict.evicted_keys.fetch_add(1, Relaxed);
    // Propagated first, then the notification (Redis' order), while the
    // slot is still locked so the stream keeps the slot's order.
    if srv.prop.active() {
        let cmd: &[u8] = if lazy { b"UNLINK" } else { b"DEL" };
        srv.prop
            .emit(&[(dbi, vec![cmd.to_vec(), key.to_vec()])], false);
    }
    srv.signal_modified(dbi, crate::config::notify::EVICTED, "evicted", key);
    drop(r);
    if lazy {
        crate::db::drop_later(old);
    } else {
        drop(old);
    }
    true
}

/// The next key to evict under `policy`.
fn select(
    srv: &Server,
    st: &mut State,
    policy: MaxmemoryPolicy,
    now: u64,
) -> Option<(usize, Victim)> {
    let ks = &srv.ks;
    let dbs = ks.db_count();
    if st.weights.len() != dbs {
        st.weights = (0..dbs).map(|_| Weights::default()).collect();
    }
    let volatile = is_volatile(policy);
    let count = |db: &Db| if volatile { db.expires() } else { db.len() };
    let mut rng = rand::rng();
    if matches!(
        policy,
        MaxmemoryPolicy::AllkeysRandom | MaxmemoryPolicy::VolatileRandom
    ) {
        for _ in 0..dbs {
            let i = st.next_db % dbs;
            st.next_db = st.next_db.wrapping_add(1);
            let Some(db) = ks.db(i) else { continue };
            if count(db) == 0 {
                continue;
            }
            for _ in 0..8 {
                if let Some(k) = random_key(ks, db, &mut st.weights[i], volatile, &mut rng) {
                    return Some((i, Victim::Key(k)));
                }
            }
        }
        return None;
    }
    let samples = srv.evict.samples.load(Relaxed) as usize;
    for _round in 0..8 {
        let mut total = 0;
        for i in 0..dbs {
            let Some(db) = ks.db(i) else { continue };
            let n = count(db);
            if n == 0 {
                continue;
            }
            total += n;
            populate(
                ks,
                db,
                &mut st.weights[i],
                volatile,
                policy,
                samples,
                now,
                &mut st.pool,
                &mut rng,
            );
        }
        if total == 0 {
            return None;
        }
        // The best candidate is last; Redis drops it from the pool whether
        // or not it still exists.
        if let Some(c) = st.pool.pop() {
            return Some((c.db, Victim::At(c.loc)));
        }
    }
    None
}

/// A slot of `db` chosen with probability proportional to its keys (or
/// its keys with an expiry).
fn pick_slot(db: &Db, w: &mut Weights, volatile: bool, rng: &mut impl Rng) -> Option<usize> {
    let stale = w.cum.len() != SLOTS
        || w.volatile != volatile
        || w.uses >= WEIGHTS_USES
        || w.built.is_none_or(|t| t.elapsed() > WEIGHTS_AGE);
    if stale {
        w.cum.clear();
        let mut acc = 0u64;
        for s in 0..SLOTS {
            acc += if volatile {
                db.slot_expires(s)
            } else {
                db.slot_len(s)
            } as u64;
            w.cum.push(acc);
        }
        w.volatile = volatile;
        w.uses = 0;
        w.built = Some(Instant::now());
    }
    w.uses += 1;
    let total = *w.cum.last()?;
    if total == 0 {
        return None;
    }
    let r = rng.random_range(0..total);
    Some(w.cum.partition_point(|&c| c <= r).min(SLOTS - 1))
}

/// Adds `samples` keys of `db` to the pool: from slots chosen by their
/// key counts, each from a random bucket on (a slot may hold fewer keys
/// than wanted: then from several).
#[allow(clippy::too_many_arguments)]
fn populate(
    ks: &Keyspace,
    db: &Db,
    w: &mut Weights,
    volatile: bool,
    policy: MaxmemoryPolicy,
    samples: usize,
    now: u64,
    pool: &mut Vec<Candidate>,
    rng: &mut impl Rng,
) {
    let mut got = 0;
    for _ in 0..samples * 2 {
        if got >= samples {
            break;
        }
        let Some(slot) = pick_slot(db, w, volatile, rng) else {
            return;
        };
        got += sample_slot(
            ks,
            db,
            slot,
            volatile,
            policy,
            samples - got,
            now,
            pool,
            rng,
        );
    }
}

/// Up to `want` keys of one slot into the pool; how many were taken.
#[allow(clippy::too_many_arguments)]
fn sample_slot(
    ks: &Keyspace,
    db: &Db,
    slot: usize,
    volatile: bool,
    policy: MaxmemoryPolicy,
    want: usize,
    now: u64,
    pool: &mut Vec<Candidate>,
    rng: &mut impl Rng,
) -> usize {
    let Some(r) = ks.try_lock_slot(db, slot) else {
        return 0;
    };
    let nb = r.num_buckets();
    if nb == 0 {
        return 0;
    }
    let (len, vol) = (r.len().max(1), db.slot_expires(slot).max(1));
    // Redis' dictGetSomeKeys looks at most 10 buckets per key wanted;
    // volatile keys are sparser by the share of keys that have none.
    let mut budget = want * 10;
    if volatile {
        budget = budget.saturating_mul(len.div_ceil(vol));
    }
    let budget = budget.min(nb);
    let start = rng.random_range(0..nb);
    let min = minutes(now);
    let mut got = 0;
    for i in 0..budget {
        if got >= want {
            break;
        }
        // Only the bucket array is read here (the entry's flags and clock):
        // a key's blob is touched only for volatile-ttl's expiry and when
        // the key enters the pool.
        let b = (start + i) % nb;
        let Some(e) = r.bucket(b) else {
            continue;
        };
        if volatile && !e.has_expire() {
            continue;
        }
        got += 1;
        let score = match policy {
            MaxmemoryPolicy::AllkeysLru | MaxmemoryPolicy::VolatileLru => idle_ms(e.lru(), now),
            MaxmemoryPolicy::AllkeysLfu | MaxmemoryPolicy::VolatileLfu => {
                255 - lfu_decayed(e.lru(), min) as u64
            }
            _ => u64::MAX - e.expire().unwrap_or(u64::MAX),
        };
        let loc = Loc {
            slot: slot as u32,
            bucket: b as u32,
            ident: e.ident(),
        };
        insert(pool, score, db.index(), loc);
    }
    got
}

/// Redis' pool insertion: ascending by score, at most [`POOL_SIZE`]; a key
/// worse than every candidate of a full pool is not kept. A key sampled
/// twice may sit in the pool twice, as in Redis: the second is found gone
/// when its turn comes.
fn insert(pool: &mut Vec<Candidate>, score: u64, db: usize, loc: Loc) {
    let k = pool.partition_point(|c| c.score < score);
    if pool.len() >= POOL_SIZE {
        if k == 0 {
            return;
        }
        pool.remove(0);
        pool.insert(k - 1, Candidate { score, db, loc });
    } else {
        pool.insert(k, Candidate { score, db, loc });
    }
}

/// A random key of `db` (or a random key with an expiry).
fn random_key(
    ks: &Keyspace,
    db: &Db,
    w: &mut Weights,
    volatile: bool,
    rng: &mut impl Rng,
) -> Option<Vec<u8>> {
    let slot = pick_slot(db, w, volatile, rng)?;
    let r = ks.try_lock_slot(db, slot)?;
    let nb = r.num_buckets();
    if nb == 0 {
        return None;
    }
    let start = rng.random_range(0..nb);
    (0..nb)
        .map(|i| (start + i) % nb)
        .filter_map(|b| r.bucket(b))
        .find(|e| !volatile || e.expire().is_some())
        .map(|e| e.key().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenacity_budget() {
        assert_eq!(time_limit(0), Some(Duration::ZERO));
        assert_eq!(time_limit(10), Some(Duration::from_micros(500)));
        assert_eq!(time_limit(11), Some(Duration::from_micros(575)));
        assert_eq!(time_limit(100), None);
    }

    #[test]
    fn lfu_counter_grows_logarithmically_and_decays() {
        LFU_LOG_FACTOR.store(10, Relaxed);
        LFU_DECAY_TIME.store(1, Relaxed);
        let min = 1000;
        let v0 = created(LFU_TOKEN | min);
        assert_eq!(lfu_decayed(v0, min), LFU_INIT_VAL);
        // With factor 10, 1000 hits give a counter near 18 (Redis' table:
        // 100 hits → 10, 1000 → 18). Increments are random (one run ends
        // anywhere from about 13 to 25): the mean of 50 runs is checked,
        // whose spread is a seventh of one run's.
        let mut v = v0;
        let mut sum = 0u32;
        for _ in 0..50 {
            v = v0;
            for _ in 0..1000 {
                v = touched(v, LFU_TOKEN | min);
            }
            sum += lfu_decayed(v, min);
        }
        let mean = f64::from(sum) / 50.0;
        assert!((15.0..=22.0).contains(&mean), "{mean}");
        let c = lfu_decayed(v, min);
        // One period per minute.
        assert_eq!(lfu_decayed(v, min + 3), c - 3);
        assert_eq!(lfu_decayed(v, min + 1000), 0);
        // The minute clock wraps.
        let old = (65530 << 8) | 9;
        assert_eq!(lfu_decayed(old, 2), 9 - 7);
    }

    #[test]
    fn lru_tokens_are_the_clock() {
        assert_eq!(touched(123, 456), 456);
        assert_eq!(created(456), 456);
        assert_eq!(idle_ms(10, 15_000), 5_000);
    }

    #[test]
    fn pool_keeps_the_best_sixteen() {
        let mut pool = Vec::new();
        let at = |ident: usize| Loc {
            slot: 0,
            bucket: 0,
            ident,
        };
        for i in 0..40u64 {
            insert(&mut pool, (i * 7919) % 40, 0, at(i as usize));
        }
        assert_eq!(pool.len(), POOL_SIZE);
        let scores: Vec<u64> = pool.iter().map(|c| c.score).collect();
        assert_eq!(scores, (24..40).collect::<Vec<_>>());
        // A worse key does not enter a full pool; a better one pushes the
        // worst out.
        insert(&mut pool, 3, 0, at(1000));
        assert!(pool.iter().all(|c| c.loc.ident != 1000));
        insert(&mut pool, 100, 0, at(1000));
        assert_eq!(pool.len(), POOL_SIZE);
        assert_eq!(pool[0].score, 25);
        assert_eq!(pool.last().map(|c| c.score), Some(100));
    }
}
