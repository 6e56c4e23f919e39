//! `codis-ctl migrate`, `rebalance` and `promote`: the dashboard's slot
//! action protocol (codis.md §4.3–4.6) driven from the tool, batched.
//!
//! A move is recorded in the table first (`pending` actions), so a run
//! that dies at any point is continued by the next (`migrate --resume`,
//! or any later `migrate`). Slots go in waves of `--parallel`: the whole
//! wave is marked `prepared` in one table write (every proxy holds the
//! wave's requests) and the tool waits until every registered proxy serves
//! that version; then `migrating` in one write (proxies forward through the
//! source's `SLOTSMGRT-EXEC-WRAPPER`) and the same wait. Only then are keys
//! moved, with `SLOTSMGRTTAGSLOT-ASYNC` calls until a slot is empty in
//! every DB. A server runs one async batch per DB at a time (a second
//! caller gets `ERR the specified DB is being migrated`), so each source
//! server gets one mover task that takes its slots in turn; different
//! sources move in parallel. A slot is finished (owner = target, no
//! action) as soon as it is empty; finished slots are written in batches.
//! The server's migration is atomic per key, so a key is never lost or
//! duplicated whenever the tool stops.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::ctl::Ctx;
use crate::ctl::redis::{self, Client, Value};
use crate::table::{Action, State, Table, format_ranges, parse_slot_ranges};

/// How long finished slots are gathered before one table write.
const FINISH_BATCH: Duration = Duration::from_millis(100);

/// Tuning of the data movement (the dashboard's `migration_*` settings).
#[derive(clap::Args, Debug, Clone)]
pub struct Opts {
    /// Slots prepared and moved per wave (migration_parallel_slots).
    #[arg(long, default_value_t = 100)]
    pub parallel: usize,
    /// Bulks per SLOTSRESTORE-ASYNC message (migration_async_maxbulks).
    #[arg(long, default_value_t = 200)]
    pub maxbulks: u64,
    /// Unacknowledged bytes in flight (migration_async_maxbytes).
    #[arg(long, default_value = "32mb")]
    pub maxbytes: String,
    /// Keys per SLOTSMGRTTAGSLOT-ASYNC call (migration_async_numkeys).
    #[arg(long, default_value_t = 500)]
    pub numkeys: u64,
    /// Timeout of each batch on the servers, in ms.
    #[arg(long = "timeout-ms", default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Pause between two calls of a mover, in µs (the dashboard's
    /// action interval).
    #[arg(long = "interval-us", default_value_t = 0)]
    pub interval_us: u64,
}

/// `32mb`, `512kb`, `1gb`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let l = s.trim().to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| l.strip_suffix(suf).map(|n| (n.to_string(), *m)))
    .unwrap_or((l.clone(), 1));
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("invalid size {s:?}"))
}

/// Progress shared by the movers and the display.
struct Progress {
    keys_moved: AtomicU64,
    slots_done: AtomicUsize,
    total_slots: usize,
    total_keys: u64,
    start: Instant,
    tty: bool,
}

impl Progress {
    fn line(&self) -> String {
        let moved = self.keys_moved.load(Ordering::Relaxed);
        let done = self.slots_done.load(Ordering::Relaxed);
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = moved as f64 / secs;
        let eta = if done >= self.total_slots {
            "0s".to_string()
        } else if rate > 0.0 && self.total_keys > moved {
            format!("{:.1}s", (self.total_keys - moved) as f64 / rate)
        } else if done > 0 {
            format!(
                "{:.1}s",
                secs / done as f64 * (self.total_slots - done) as f64
            )
        } else {
            "?".to_string()
        };
        format!(
            "slots {done}/{} done, {moved} keys moved, {:.0} keys/s, ETA {eta}",
            self.total_slots, rate
        )
    }

    fn say(&self, msg: &str) {
        if self.tty {
            eprintln!("\r\x1b[K{msg}");
        } else {
            eprintln!("[{:8.3}s] {msg}", self.start.elapsed().as_secs_f64());
        }
    }
}

/// Resolves `--to`: a group id, or a group master's address.
fn resolve_target(t: &Table, to: &str) -> Result<u32, String> {
    if let Ok(gid) = to.parse::<u32>() {
        return t
            .master(gid)
            .map(|_| gid)
            .ok_or_else(|| format!("group-{gid} does not exist or is empty"));
    }
    match t.group_of(to) {
        Some(gid) if t.master(gid) == Some(to) => Ok(gid),
        Some(gid) => Err(format!(
            "{to} is a replica in group-{gid}; give the group id or its master"
        )),
        None => Err(format!(
            "{to} is in no group: add it first (`group add <id> {to}`)"
        )),
    }
}

pub async fn migrate(
    ctx: &mut Ctx,
    slots: Option<String>,
    to: Option<String>,
    resume: bool,
    opts: &Opts,
) -> Result<(), String> {
    let t = ctx.table().await?.clone();
    match (slots, to, resume) {
        (Some(slots), Some(to), false) => {
            let tgid = resolve_target(&t, &to)?;
            let ids = parse_slot_ranges(&slots)?;
            let (mut moves, mut direct, mut already, mut kept) = (vec![], vec![], vec![], vec![]);
            for &id in &ids {
                let s = t.slots[id as usize];
                match s.action {
                    Some(a) if a.target_id == tgid => kept.push(id),
                    Some(a) => {
                        return Err(format!(
                            "slot-[{id}] is moving to group-{} already: finish it first (`migrate --resume`)",
                            a.target_id
                        ));
                    }
                    None if s.group_id == tgid => already.push(id),
                    None if s.group_id == 0 => direct.push(id),
                    None => moves.push(id),
                }
            }
            if !already.is_empty() {
                ctx.say(&format!(
                    "{} slots are in group-{tgid} already: {}",
                    already.len(),
                    format_ranges(&already)
                ));
            }
            if ctx.dry_run {
                println!(
                    "would move {} slots to group-{tgid}: {}",
                    moves.len() + kept.len(),
                    format_ranges(&[moves.clone(), kept.clone()].concat())
                );
                if !direct.is_empty() {
                    println!(
                        "would assign {} unassigned slots to group-{tgid}: {}",
                        direct.len(),
                        format_ranges(&direct)
                    );
                }
                return Ok(());
            }
            if !moves.is_empty() || !direct.is_empty() {
                let v = ctx
                    .change(|t| {
                        for &id in &direct {
                            t.slots[id as usize].group_id = tgid;
                        }
                        for &id in &moves {
                            t.slots[id as usize].action = Some(Action {
                                state: State::Pending,
                                target_id: tgid,
                            });
                        }
                        Ok(())
                    })
                    .await?;
                ctx.say(&format!(
                    "recorded {} moves to group-{tgid} (table version {v})",
                    moves.len()
                ));
            }
        }
        (None, None, true) => {
            if ctx.dry_run {
                let n = t.slots.iter().filter(|s| s.action.is_some()).count();
                println!("would continue {n} recorded moves");
                return Ok(());
            }
        }
        (_, _, true) => return Err("--resume takes no --slots or --to".into()),
        _ => return Err("give --slots and --to, or --resume".into()),
    }
    run(ctx, opts).await
}

/// Per-slot key counts of a server (every DB).
async fn slot_counts(addr: &str, auth: &str) -> Result<HashMap<u32, u64>, String> {
    let mut c = Client::connect(addr, auth, Duration::from_secs(5)).await?;
    let ks = c.ok(&["INFO", "keyspace"]).await?;
    let mut out: HashMap<u32, u64> = HashMap::new();
    for (db, _) in redis::dbs_with_keys(&ks.text()) {
        c.ok(&["SELECT", &db.to_string()]).await?;
        if let Value::Array(Some(rows)) = c.ok(&["SLOTSINFO", "0", "1024"]).await? {
            for r in rows {
                if let Value::Array(Some(p)) = r
                    && p.len() == 2
                {
                    let slot = p[0].as_int().unwrap_or(-1);
                    if (0..1024).contains(&slot) {
                        *out.entry(slot as u32).or_default() +=
                            p[1].as_int().unwrap_or(0).max(0) as u64;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Drives every recorded action to its end.
async fn run(ctx: &mut Ctx, opts: &Opts) -> Result<(), String> {
    let maxbytes = parse_size(&opts.maxbytes)?;
    let parallel = opts.parallel.max(1);
    let t = ctx.table().await?.clone();
    let active: Vec<u32> = t
        .slots
        .iter()
        .filter(|s| s.action.is_some())
        .map(|s| s.id)
        .collect();
    if active.is_empty() {
        ctx.say("no moves to run");
        return Ok(());
    }
    // Estimate the keys to move (for the ETA).
    let mut total_keys = 0u64;
    let mut sources: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &id in &active {
        sources
            .entry(t.slots[id as usize].group_id)
            .or_default()
            .push(id);
    }
    for (gid, ids) in &sources {
        if let Some(m) = t.master(*gid)
            && let Ok(counts) = slot_counts(m, &ctx.auth).await
        {
            total_keys += ids
                .iter()
                .map(|i| counts.get(i).copied().unwrap_or(0))
                .sum::<u64>();
        }
    }
    let prog = Arc::new(Progress {
        keys_moved: AtomicU64::new(0),
        slots_done: AtomicUsize::new(0),
        total_slots: active.len(),
        total_keys,
        start: Instant::now(),
        tty: ctx.tty,
    });
    prog.say(&format!(
        "moving {} slots (~{total_keys} keys), {} per wave",
        active.len(),
        parallel
    ));
    let reporter = {
        let p = prog.clone();
        tokio::spawn(async move {
            let period = if p.tty {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            };
            loop {
                tokio::time::sleep(period).await;
                if p.tty {
                    eprint!("\r\x1b[K{}", p.line());
                } else {
                    p.say(&p.line());
                }
            }
        })
    };
    // States past `pending` may have been written by a run that died
    // before every proxy served them: wait for that first.
    let current = ctx.table().await?.version;
    ctx.wait_proxies(current, None).await?;
    let res = waves(ctx, opts, maxbytes, parallel, &prog).await;
    reporter.abort();
    if ctx.tty {
        eprintln!();
    }
    prog.say(&prog.line());
    res?;
    prog.say(&format!(
        "done in {:.3}s (table version {})",
        prog.start.elapsed().as_secs_f64(),
        ctx.table().await?.version
    ));
    Ok(())
}

fn rank(s: State) -> u8 {
    match s {
        State::Migrating => 0,
        State::Prepared => 1,
        State::Pending => 2,
    }
}

async fn waves(
    ctx: &mut Ctx,
    opts: &Opts,
    maxbytes: u64,
    parallel: usize,
    prog: &Arc<Progress>,
) -> Result<(), String> {
    loop {
        let t = ctx.table().await?.clone();
        let mut active: Vec<(u8, u32)> = t
            .slots
            .iter()
            .filter_map(|s| s.action.map(|a| (rank(a.state), s.id)))
            .collect();
        if active.is_empty() {
            return Ok(());
        }
        active.sort_unstable();
        let wave: Vec<u32> = active.iter().take(parallel).map(|(_, id)| *id).collect();
        // pending -> prepared: every proxy holds the wave's slots; then
        // prepared -> migrating: every proxy forwards through the source.
        advance(ctx, &wave, State::Pending, State::Prepared).await?;
        advance(ctx, &wave, State::Prepared, State::Migrating).await?;
        // Move the keys: one mover per source server.
        let t = ctx.table().await?.clone();
        let mut per_source: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
        for &id in &wave {
            let s = t.slots[id as usize];
            let Some(a) = s.action else { continue };
            let src = t.master(s.group_id).unwrap_or_default().to_string();
            let dst = t.master(a.target_id).unwrap_or_default().to_string();
            per_source.entry(src).or_default().push((id, dst));
        }
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let mut movers = Vec::new();
        for (src, mut list) in per_source {
            list.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
            let (tx, p, o, auth) = (
                done_tx.clone(),
                prog.clone(),
                opts.clone(),
                ctx.auth.clone(),
            );
            movers.push(tokio::spawn(async move {
                let mut m = Mover::new(&src, &auth);
                for (slot, dst) in list {
                    m.move_slot(&dst, slot, &o, maxbytes, &p).await;
                    if tx.send(slot).is_err() {
                        return;
                    }
                }
            }));
        }
        drop(done_tx);
        // Finish slots as they empty, a batch per table write.
        let mut open = true;
        while open {
            let mut done = Vec::new();
            match done_rx.recv().await {
                Some(id) => done.push(id),
                None => open = false,
            }
            // Gather what else empties within a short window: one table
            // write (and one re-fill on every proxy) per batch, not per slot.
            let window = tokio::time::sleep(FINISH_BATCH);
            tokio::pin!(window);
            while open {
                tokio::select! {
                    r = done_rx.recv() => match r {
                        Some(id) => done.push(id),
                        None => open = false,
                    },
                    _ = &mut window => break,
                }
            }
            if done.is_empty() {
                continue;
            }
            ctx.change(|t| {
                for &id in &done {
                    let s = &mut t.slots[id as usize];
                    if let Some(a) = s.action.take() {
                        s.group_id = a.target_id;
                    }
                }
                Ok(())
            })
            .await?;
            prog.slots_done.fetch_add(done.len(), Ordering::Relaxed);
        }
        for m in movers {
            let _ = m.await;
        }
    }
}

/// Moves the wave's slots in state `from` to `to` in one table write, then
/// waits until every proxy serves it (nothing to do when none is in `from`).
async fn advance(ctx: &mut Ctx, wave: &[u32], from: State, to: State) -> Result<(), String> {
    let t = ctx.table().await?;
    if !wave
        .iter()
        .any(|&id| t.slots[id as usize].action.is_some_and(|a| a.state == from))
    {
        return Ok(());
    }
    let v = ctx
        .change(|t| {
            for &id in wave {
                if let Some(a) = &mut t.slots[id as usize].action
                    && a.state == from
                {
                    a.state = to;
                }
            }
            Ok(())
        })
        .await?;
    ctx.wait_proxies(v, None).await
}

/// One source server's mover: a connection kept for all its slots, the
/// DB it has selected, and the DBs that hold keys (read once: while a slot
/// migrates, new keys of it are created on the target, never on the
/// source).
struct Mover {
    src: String,
    auth: String,
    conn: Option<Client>,
    db: u32,
    dbs: Option<Vec<u32>>,
}

impl Mover {
    fn new(src: &str, auth: &str) -> Mover {
        Mover {
            src: src.to_string(),
            auth: auth.to_string(),
            conn: None,
            db: 0,
            dbs: None,
        }
    }

    /// Moves every key of `slot` to `dst` (all DBs), retrying errors (on a
    /// new connection) until done.
    async fn move_slot(&mut self, dst: &str, slot: u32, o: &Opts, maxbytes: u64, p: &Progress) {
        let mut errors = 0u32;
        loop {
            match self.try_move_slot(dst, slot, o, maxbytes, p).await {
                Ok(()) => return,
                Err(e) => {
                    self.conn = None;
                    self.dbs = None;
                    errors += 1;
                    p.say(&format!(
                        "[ERROR] slot-[{slot}] {} -> {dst}: {e} (retrying)",
                        self.src
                    ));
                    tokio::time::sleep(Duration::from_millis((100 * errors as u64).min(2000)))
                        .await;
                }
            }
        }
    }

    async fn try_move_slot(
        &mut self,
        dst: &str,
        slot: u32,
        o: &Opts,
        maxbytes: u64,
        p: &Progress,
    ) -> Result<(), String> {
        let (host, port) = dst
            .rsplit_once(':')
            .ok_or_else(|| format!("bad target address {dst}"))?;
        if self.conn.is_none() {
            let call_timeout = Duration::from_millis(o.timeout_ms.max(1000) * 3);
            self.conn = Some(Client::connect(&self.src, &self.auth, call_timeout).await?);
            self.db = 0;
        }
        let c = self.conn.as_mut().expect("connected above");
        if self.dbs.is_none() {
            let ks = c.ok(&["INFO", "keyspace"]).await?;
            let mut dbs: Vec<u32> = redis::dbs_with_keys(&ks.text())
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            if dbs.is_empty() {
                dbs.push(0);
            }
            self.dbs = Some(dbs);
        }
        let args_tail = [
            host.to_string(),
            port.to_string(),
            o.timeout_ms.to_string(),
            o.maxbulks.to_string(),
            maxbytes.to_string(),
            slot.to_string(),
            o.numkeys.to_string(),
        ];
        for db in self.dbs.clone().unwrap_or_default() {
            if db != self.db {
                c.ok(&["SELECT", &db.to_string()]).await?;
                self.db = db;
            }
            // Until the reply's count of keys left in the slot is 0 (the
            // dashboard's rule, codis.md §4.4).
            loop {
                let mut args = vec!["SLOTSMGRTTAGSLOT-ASYNC"];
                args.extend(args_tail.iter().map(String::as_str));
                match c.call(&args).await? {
                    Value::Array(Some(v)) if v.len() == 2 => {
                        let moved = v[0].as_int().unwrap_or(0).max(0) as u64;
                        let left = v[1].as_int().unwrap_or(0);
                        p.keys_moved.fetch_add(moved, Ordering::Relaxed);
                        if left == 0 {
                            break;
                        }
                    }
                    Value::Error(e) if e.contains("being migrated") => {
                        // Another caller's batch (an earlier run's) is in
                        // flight on this DB: wait for it.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    other => return Err(format!("SLOTSMGRTTAGSLOT-ASYNC: {}", other.text())),
                }
                if o.interval_us > 0 {
                    tokio::time::sleep(Duration::from_micros(o.interval_us)).await;
                }
            }
        }
        Ok(())
    }
}

/// A rebalance plan: the unassigned slots, where each goes (slot → group),
/// and the moves (slot, from, to).
type Plan = (Vec<u32>, BTreeMap<u32, u32>, Vec<(u32, u32, u32)>);

/// Plans a rebalance by slot counts (the dashboard's algorithm, codis.md §4.5).
pub fn plan_by_slots(t: &Table) -> Result<Plan, String> {
    let groups: Vec<u32> = t
        .groups
        .iter()
        .filter(|(_, g)| !g.servers.is_empty() && !g.promoting)
        .map(|(id, _)| *id)
        .collect();
    if groups.is_empty() {
        return Err("no valid group could be found".into());
    }
    let n = groups.len();
    let lower = 1024 / n;
    let upper = 1024_usize.div_ceil(n);
    let mut size: BTreeMap<u32, usize> = groups.iter().map(|g| (*g, 0)).collect();
    let mut movable: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut offline = Vec::new();
    for s in &t.slots {
        match s.action {
            Some(a) => *size.entry(a.target_id).or_default() += 1,
            None if s.group_id == 0 => offline.push(s.id),
            None => {
                if let Some(sz) = size.get_mut(&s.group_id) {
                    *sz += 1;
                    if *sz > lower {
                        movable.entry(s.group_id).or_default().push(s.id);
                    }
                }
            }
        }
    }
    let smallest = |size: &BTreeMap<u32, usize>| {
        size.iter()
            .min_by_key(|(id, sz)| (**sz, **id))
            .map(|(id, sz)| (*id, *sz))
    };
    let mut assign = BTreeMap::new();
    for &id in &offline {
        if let Some((g, _)) = smallest(&size) {
            assign.insert(id, g);
            *size.entry(g).or_default() += 1;
        }
    }
    let mut moves = Vec::new();
    let mut cand = size.clone();
    while let Some((big, bsz)) = cand
        .iter()
        .max_by_key(|(id, sz)| (**sz, **id))
        .map(|(id, sz)| (*id, *sz))
    {
        let Some((small, ssz)) = smallest(&size) else {
            break;
        };
        if movable.get(&big).is_none_or(Vec::is_empty) {
            cand.remove(&big);
            continue;
        }
        if bsz <= lower || ssz >= upper || bsz - ssz <= 1 {
            break;
        }
        let slot = movable.get_mut(&big).and_then(Vec::pop).unwrap_or_default();
        moves.push((slot, big, small));
        for m in [&mut size, &mut cand] {
            if let Some(s) = m.get_mut(&big) {
                *s -= 1;
            }
        }
        *size.entry(small).or_default() += 1;
        if let Some(s) = cand.get_mut(&small) {
            *s += 1;
        }
    }
    moves.sort_unstable();
    Ok((offline, assign, moves))
}

/// Moves by keys: repeatedly the slot of the largest group (by keys) that
/// best halves the gap to the smallest, while that shrinks the gap.
fn plan_by_keys(t: &Table, counts: &HashMap<u32, u64>) -> Vec<(u32, u32, u32)> {
    let mut keys: BTreeMap<u32, u64> = t
        .groups
        .iter()
        .filter(|(_, g)| !g.servers.is_empty() && !g.promoting)
        .map(|(id, _)| (*id, 0))
        .collect();
    let mut owned: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for s in &t.slots {
        let owner = s.action.map_or(s.group_id, |a| a.target_id);
        if let Some(k) = keys.get_mut(&owner) {
            *k += counts.get(&s.id).copied().unwrap_or(0);
            if s.action.is_none() {
                owned.entry(owner).or_default().push(s.id);
            }
        }
    }
    let mut moves = Vec::new();
    for _ in 0..1024 {
        let (Some((&big, &bk)), Some((&small, &sk))) = (
            keys.iter().max_by_key(|(id, k)| (**k, **id)),
            keys.iter().min_by_key(|(id, k)| (**k, **id)),
        ) else {
            break;
        };
        let gap = bk.saturating_sub(sk);
        let best = owned.get(&big).and_then(|ids| {
            ids.iter()
                .map(|id| (*id, counts.get(id).copied().unwrap_or(0)))
                .filter(|(_, c)| *c > 0 && *c < gap)
                .min_by_key(|(id, c)| ((*c as i128 * 2 - gap as i128).abs(), *id))
        });
        let Some((slot, c)) = best else { break };
        moves.push((slot, big, small));
        if let Some(ids) = owned.get_mut(&big) {
            ids.retain(|i| *i != slot);
        }
        owned.entry(small).or_default().push(slot);
        *keys.entry(big).or_default() -= c;
        *keys.entry(small).or_default() += c;
    }
    moves.sort_unstable();
    moves
}

pub async fn rebalance(ctx: &mut Ctx, by: &str, opts: &Opts) -> Result<(), String> {
    let t = ctx.table().await?.clone();
    if t.slots.iter().any(|s| s.action.is_some()) {
        return Err("moves are recorded already: finish them first (`migrate --resume`)".into());
    }
    let (assign, moves) = match by {
        "slots" => {
            let (_, assign, moves) = plan_by_slots(&t)?;
            (assign, moves)
        }
        "keys" => {
            let mut counts = HashMap::new();
            for gid in t.groups.keys() {
                if let Some(m) = t.master(*gid) {
                    for (slot, n) in slot_counts(m, &ctx.auth).await? {
                        if t.slots[slot as usize].group_id == *gid {
                            counts.insert(slot, n);
                        }
                    }
                }
            }
            let (_, assign, _) = plan_by_slots(&t)?;
            (assign, plan_by_keys(&t, &counts))
        }
        other => return Err(format!("--by {other:?}: expected slots or keys")),
    };
    let mut by_pair: BTreeMap<(u32, u32), Vec<u32>> = BTreeMap::new();
    for (slot, from, to) in &moves {
        by_pair.entry((*from, *to)).or_default().push(*slot);
    }
    let mut by_target: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (slot, g) in &assign {
        by_target.entry(*g).or_default().push(*slot);
    }
    let verb = if ctx.dry_run { "would " } else { "" };
    if moves.is_empty() && assign.is_empty() {
        println!("balanced: nothing to move");
        return Ok(());
    }
    for (g, ids) in &by_target {
        println!(
            "{verb}assign {} unassigned slots to group-{g}: {}",
            ids.len(),
            format_ranges(ids)
        );
    }
    for ((from, to), ids) in &by_pair {
        println!(
            "{verb}move {} slots group-{from} -> group-{to}: {}",
            ids.len(),
            format_ranges(ids)
        );
    }
    if ctx.dry_run {
        return Ok(());
    }
    let v = ctx
        .change(|t| {
            for (slot, g) in &assign {
                t.slots[*slot as usize].group_id = *g;
            }
            for (slot, _, to) in &moves {
                t.slots[*slot as usize].action = Some(Action {
                    state: State::Pending,
                    target_id: *to,
                });
            }
            Ok(())
        })
        .await?;
    ctx.say(&format!("recorded the plan (table version {v})"));
    run(ctx, opts).await
}

/// Replication offsets: the master's `master_repl_offset` and a replica's
/// `slave_repl_offset`.
async fn repl_offset(addr: &str, auth: &str, field: &str) -> Result<i64, String> {
    let mut c = Client::connect(addr, auth, Duration::from_secs(2)).await?;
    let v = c.ok(&["INFO", "replication"]).await?;
    redis::info_fields(&v.text())
        .into_iter()
        .find(|(k, _)| k == field)
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| format!("{addr}: no {field} in INFO replication"))
}

pub async fn promote(ctx: &mut Ctx, gid: u32, addr: &str) -> Result<(), String> {
    let t = ctx.table().await?.clone();
    let g = t
        .groups
        .get(&gid)
        .ok_or_else(|| format!("group-{gid} does not exist"))?;
    let Some(idx) = g.servers.iter().position(|s| s == addr) else {
        return Err(format!("{addr} is not in group-{gid}"));
    };
    if idx == 0 && !g.promoting {
        return Err(format!("{addr} is group-{gid}'s master already"));
    }
    let busy = t
        .slots
        .iter()
        .filter(|s| {
            s.action
                .is_some_and(|a| s.group_id == gid || a.target_id == gid)
        })
        .count();
    if busy > 0 {
        return Err(format!(
            "slots-migration is running = {busy} (group-{gid}'s slots are moving; finish with `migrate --resume`)"
        ));
    }
    let old = g.servers[0].clone();
    let mut order = vec![addr.to_string()];
    order.extend(
        g.servers
            .iter()
            .filter(|s| *s != addr && **s != old)
            .cloned(),
    );
    if old != addr {
        order.push(old.clone());
    }
    if ctx.dry_run {
        println!(
            "would hold group-{gid}'s slots, SLAVEOF NO ONE on {addr}, set the servers to [{}] and re-point the others to {addr}",
            order.join(", ")
        );
        return Ok(());
    }
    // 1. Every proxy holds the group's slots.
    let v = ctx
        .change(|t| {
            if let Some(g) = t.groups.get_mut(&gid) {
                g.promoting = true;
            }
            Ok(())
        })
        .await?;
    ctx.wait_proxies(v, None).await?;
    ctx.say(&format!("group-{gid}'s slots are held by every proxy"));
    // 2. Let the replica catch up with a reachable old master.
    if old != addr {
        let deadline = Instant::now() + Duration::from_secs(5);
        match repl_offset(&old, &ctx.auth, "master_repl_offset").await {
            Ok(target) => loop {
                let got = repl_offset(addr, &ctx.auth, "slave_repl_offset")
                    .await
                    .unwrap_or(-1);
                if got >= target {
                    break;
                }
                if Instant::now() >= deadline {
                    ctx.say(&format!(
                        "warning: {addr} is at offset {got}, the master at {target}: promoting anyway"
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            },
            Err(e) => ctx.say(&format!("old master {old} unreachable ({e}): promoting")),
        }
    }
    // 3. The new master.
    let r = async {
        let mut c = Client::connect(addr, &ctx.auth, Duration::from_secs(5)).await?;
        c.ok(&["SLAVEOF", "NO", "ONE"]).await.map(|_| ())
    }
    .await;
    if let Err(e) = r {
        let v = ctx
            .change(|t| {
                if let Some(g) = t.groups.get_mut(&gid) {
                    g.promoting = false;
                }
                Ok(())
            })
            .await?;
        ctx.wait_proxies(v, Some(Duration::from_secs(10)))
            .await
            .ok();
        return Err(format!(
            "SLAVEOF NO ONE on {addr} failed, nothing changed: {e}"
        ));
    }
    // 4. Switch the table and release the slots.
    let v = ctx
        .change(|t| {
            if let Some(g) = t.groups.get_mut(&gid) {
                g.servers = order.clone();
                g.promoting = false;
                // The old master is not a replica yet: reads stay on the
                // master until an operator turns replica reads on again.
                g.replica_reads = false;
            }
            Ok(())
        })
        .await?;
    ctx.wait_proxies(v, None).await?;
    ctx.say(&format!(
        "group-{gid}: {addr} is the master (table version {v})"
    ));
    // 5. Re-point the others.
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
    for s in order.iter().skip(1) {
        let r = async {
            let mut c = Client::connect(s, &ctx.auth, Duration::from_secs(2)).await?;
            if !ctx.auth.is_empty() {
                c.ok(&["CONFIG", "SET", "masterauth", &ctx.auth]).await?;
            }
            c.ok(&["SLAVEOF", host, port]).await.map(|_| ())
        }
        .await;
        match r {
            Ok(()) => ctx.say(&format!("{s} now replicates {addr}")),
            Err(e) => ctx.say(&format!("warning: could not re-point {s}: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Group;

    fn table(groups: &[u32], owner: impl Fn(u32) -> u32) -> Table {
        let mut t = Table::default();
        for g in groups {
            t.groups.insert(
                *g,
                Group {
                    servers: vec![format!("127.0.0.1:{}", 6000 + g)],
                    ..Default::default()
                },
            );
        }
        for s in &mut t.slots {
            s.group_id = owner(s.id);
        }
        t
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32mb").unwrap(), 32 << 20);
        assert_eq!(parse_size("512KB").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn rebalance_by_slots_moves_the_fewest() {
        // All in group 1, a new group 2: half move.
        let t = table(&[1, 2], |_| 1);
        let (_, assign, moves) = plan_by_slots(&t).unwrap();
        assert!(assign.is_empty());
        assert_eq!(moves.len(), 512);
        assert!(
            moves
                .iter()
                .all(|(s, f, to)| *s >= 512 && *f == 1 && *to == 2)
        );
        // Balanced already.
        let t = table(&[1, 2], |s| if s < 512 { 1 } else { 2 });
        assert!(plan_by_slots(&t).unwrap().2.is_empty());
        // Three groups from two: a third each, the highest slots move.
        let t = table(&[1, 2, 3], |s| if s < 512 { 1 } else { 2 });
        let (_, _, moves) = plan_by_slots(&t).unwrap();
        assert!((340..=342).contains(&moves.len()), "{}", moves.len());
        assert!(moves.iter().all(|(_, _, to)| *to == 3));
        // Unassigned slots go to the smallest groups, without moves.
        let t = table(&[1, 2], |s| if s < 100 { 1 } else { 0 });
        let (offline, assign, _) = plan_by_slots(&t).unwrap();
        assert_eq!(offline.len(), 924);
        assert_eq!(assign.len(), 924);
    }

    #[test]
    fn rebalance_by_keys() {
        let t = table(&[1, 2], |s| if s < 512 { 1 } else { 2 });
        let mut counts = HashMap::new();
        for s in 0..512 {
            counts.insert(s, 10);
        }
        counts.insert(600, 100);
        // group 1: 5120 keys, group 2: 100; ~250 slots of 10 should move.
        let moves = plan_by_keys(&t, &counts);
        assert!(
            moves
                .iter()
                .all(|(s, f, to)| *s < 512 && *f == 1 && *to == 2)
        );
        let moved: u64 = moves.len() as u64 * 10;
        let (a, b) = (5120 - moved, 100 + moved);
        assert!(a.abs_diff(b) <= 10, "{a} {b}");
    }
}
