//! `codis-ctl STORE <command>`: operates a Codis cluster through its
//! slot-table store (a file, or `etcd://host:port/<product>`), the way
//! codis-dashboard does through its coordinator (codis.md §4), but as a
//! command-line tool with no daemon: `status`, `group add/del`, `assign`,
//! `migrate` (resumable), `rebalance`, `promote`, `proxy del`; `--dry-run`
//! for every change. Every change takes the store's change lock and is a
//! conditional write on the version read, so two operators can never
//! interleave conflicting changes, and a crashed run leaves no lock behind
//! (a file lock dies with its process, an etcd lock with its lease).

pub mod migrate;
pub mod redis;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::store::{CONFLICT, Loaded, Lock, ProxyEntry, Store};
use crate::table::{Group, State, Table, format_ranges, parse_slot_ranges};

#[derive(Parser, Debug)]
#[command(
    name = "codis-ctl",
    version,
    about = "Operate a Codis cluster through its slot-table store",
    after_help = "STORE is a slot-table file (the one proxies get with --fillslots) or etcd://host:port[,host:port]/<product>.\n\nExamples:\n  codis-ctl slots.json group add 1 127.0.0.1:6379\n  codis-ctl slots.json assign --slots 0-1023 --group 1\n  codis-ctl slots.json migrate --slots 512-1023 --to 127.0.0.1:6380\n  codis-ctl etcd://127.0.0.1:2379/codis-demo status"
)]
struct Cli {
    /// Slot-table store: a file path, or etcd://host:port/<product>.
    store: String,
    /// Password of the codis-servers (Codis' product_auth).
    #[arg(long = "product-auth", default_value = "", global = true)]
    product_auth: String,
    /// Show what would change, change nothing.
    #[arg(long = "dry-run", global = true)]
    dry_run: bool,
    /// Seconds to wait for another run's change lock.
    #[arg(long = "lock-wait", default_value_t = 15, global = true)]
    lock_wait: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Slot owners, groups with keys and memory, migrations, proxies.
    Status {
        /// The table and proxy registrations as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add or remove servers of a group (the first server is the master).
    #[command(subcommand)]
    Group(GroupCmd),
    /// Give slots to a group without moving data (unassigned slots, or
    /// slots that hold no keys; --force for the rest).
    Assign {
        #[arg(long)]
        slots: String,
        #[arg(long)]
        group: u32,
        /// Assign even slots whose current owner holds keys in them.
        #[arg(long)]
        force: bool,
    },
    /// Move slots (and their keys) to a group, or continue unfinished
    /// moves.
    Migrate {
        /// Slots: A-B[,C...].
        #[arg(long)]
        slots: Option<String>,
        /// Target: a group id, or the address of a group's master.
        #[arg(long)]
        to: Option<String>,
        /// Only continue the moves recorded in the store.
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        opts: migrate::Opts,
    },
    /// Even out slots (or keys) across groups, moving the fewest slots.
    Rebalance {
        /// What to even out: slots, or keys (from SLOTSINFO).
        #[arg(long, default_value = "slots")]
        by: String,
        #[command(flatten)]
        opts: migrate::Opts,
    },
    /// Make a replica its group's master: hold the group's slots, SLAVEOF
    /// NO ONE on it, re-point the other servers, switch the table.
    Promote { group: u32, addr: String },
    /// Proxy registrations.
    #[command(subcommand)]
    Proxy(ProxyCmd),
}

#[derive(Subcommand, Debug)]
enum GroupCmd {
    /// Add servers to a group (created if new): master first, replicas after.
    Add { group: u32, addrs: Vec<String> },
    /// Remove a server (a master only when it is the last server and the
    /// group owns no slots), or with no address an empty group.
    Del { group: u32, addr: Option<String> },
    /// Let proxies read the group's idle slots from its replicas (on|off).
    ReplicaReads { group: u32, value: String },
}

#[derive(Subcommand, Debug)]
enum ProxyCmd {
    /// Remove a proxy's registration (a proxy that is gone for good).
    Del { token: String },
}

/// Entry point: the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(std::iter::once("codis-ctl".to_string()).chain(args)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codis-ctl: cannot start runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("codis-ctl: {e}");
            1
        }
    }
}

/// What every command works with.
pub struct Ctx {
    pub store: Store,
    pub auth: String,
    pub dry_run: bool,
    pub cur: Option<Loaded>,
    pub lock: Option<Lock>,
    /// Progress output goes to a terminal (redrawn line) or a log.
    pub tty: bool,
    started: Instant,
}

impl Ctx {
    /// A message line (time-stamped when not on a terminal).
    pub fn say(&self, msg: &str) {
        if self.tty {
            eprintln!("\r\x1b[K{msg}");
        } else {
            eprintln!("[{:8.3}s] {msg}", self.started.elapsed().as_secs_f64());
        }
    }

    /// The current table (read if not yet).
    pub async fn table(&mut self) -> Result<&Table, String> {
        if self.cur.is_none() {
            self.cur = self.store.load().await?;
        }
        self.cur.as_ref().map(|l| &l.table).ok_or_else(|| {
            format!(
                "{}: no table yet (start with `group add`)",
                self.store.describe()
            )
        })
    }

    /// Takes the change lock.
    pub async fn lock(&mut self, what: &str, wait: Duration) -> Result<(), String> {
        if self.lock.is_some() {
            return Ok(());
        }
        if self.dry_run {
            // Nothing will change: the table as it is, without the lock.
            self.cur = self.store.load().await?;
            return Ok(());
        }
        self.lock = Some(self.store.lock(what, wait).await?);
        // Read under the lock.
        self.cur = self.store.load().await?;
        Ok(())
    }

    /// Applies `f` to the current table and stores the result as the next
    /// version (a conditional write). Store errors other than a conflict
    /// are retried until the store answers (it may be restarting); a
    /// conflict whose stored table is the one we wrote (our reply was
    /// lost) counts as success. Returns the new version.
    pub async fn change<F>(&mut self, f: F) -> Result<u64, String>
    where
        F: FnOnce(&mut Table) -> Result<(), String>,
    {
        let (mut next, prev) = match &self.cur {
            Some(l) => (l.table.clone(), Some(l.rev)),
            None => (Table::default(), None),
        };
        f(&mut next)?;
        next.version = next
            .version
            .max(self.cur.as_ref().map_or(0, |l| l.table.version))
            + 1;
        next.validate()?;
        let mut last_msg = Instant::now();
        loop {
            if let Some(l) = &self.lock {
                l.check()?;
            }
            match self.store.save(&next, prev).await {
                Ok(rev) => {
                    self.cur = Some(Loaded {
                        table: next.clone(),
                        rev,
                    });
                    return Ok(next.version);
                }
                Err(e) if e == CONFLICT => {
                    if let Ok(Some(now)) = self.store.load().await
                        && now.table == next
                    {
                        self.cur = Some(now);
                        return Ok(next.version);
                    }
                    return Err(e);
                }
                Err(e) => {
                    if last_msg.elapsed() >= Duration::from_secs(2) {
                        self.say(&format!("cannot write the table, retrying: {e}"));
                        last_msg = Instant::now();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Waits until every registered proxy serves `version` or later. The
    /// registrations say which proxies there are (read again every 200 ms);
    /// the version each serves is asked from its admin API (`GET
    /// /proxy/table`, answered once a table is applied), which is quicker
    /// than waiting for its registration to be written back; a proxy whose
    /// admin API this host cannot reach is judged by its registration. A
    /// proxy whose admin port refuses connections is gone: its registration
    /// is removed. `limit`: give up after that long (None: wait on, with a
    /// message every 5 s naming who lags).
    pub async fn wait_proxies(&self, version: u64, limit: Option<Duration>) -> Result<(), String> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut last_msg = Instant::now();
        let mut listed: Option<(Instant, Vec<ProxyEntry>)> = None;
        // Proxies seen at `version` through their admin API.
        let mut done: std::collections::HashSet<String> = Default::default();
        loop {
            if listed
                .as_ref()
                .is_none_or(|(t, _)| t.elapsed() >= Duration::from_millis(200))
            {
                match self.store.proxies().await {
                    Ok(ps) => listed = Some((Instant::now(), ps)),
                    Err(e) => {
                        if last_msg.elapsed() >= Duration::from_secs(5) {
                            self.say(&format!("cannot list proxies, retrying: {e}"));
                            last_msg = Instant::now();
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            let all = listed.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
            let mut lagging = Vec::new();
            for p in all {
                if p.table_version >= version || done.contains(&p.token) {
                    continue;
                }
                // Its admin API, when this host can reach that proxy (and
                // no other one) at the registered address.
                match admin_version(&p).await {
                    Some(v) if v >= version => {
                        done.insert(p.token.clone());
                    }
                    _ => lagging.push(p),
                }
            }
            if lagging.is_empty() {
                if std::env::var_os("CODIS_CTL_TRACE").is_some() {
                    self.say(&format!(
                        "proxies at version {version} after {:?}",
                        start.elapsed()
                    ));
                }
                return Ok(());
            }
            if start.elapsed() >= Duration::from_millis(500) {
                for p in &lagging {
                    if gone(p).await {
                        self.say(&format!(
                            "proxy {} (admin {}) is gone: removing its registration",
                            p.token, p.admin_addr
                        ));
                        let _ = self.store.unregister(&p.token).await;
                        listed = None;
                    }
                }
            }
            if let Some(l) = limit
                && start.elapsed() >= l
            {
                return Err(format!(
                    "proxies not at table version {version} after {:?}: {}",
                    l,
                    describe_lagging(&lagging)
                ));
            }
            if last_msg.elapsed() >= Duration::from_secs(5) {
                self.say(&format!(
                    "waiting for proxies to serve table version {version}: {}",
                    describe_lagging(&lagging)
                ));
                last_msg = Instant::now();
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

/// The table version a proxy's admin API says it serves (None: not
/// reachable from here, no answer in time, or another proxy answered: the
/// token must match when the proxy shows it).
async fn admin_version(p: &ProxyEntry) -> Option<u64> {
    let addr = admin_target(p)?;
    let r = crate::http::request(
        "GET",
        &addr,
        "/proxy/table",
        None,
        &[],
        Duration::from_millis(300),
    )
    .await
    .ok()?;
    if r.status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    match v.get("token").and_then(|t| t.as_str()) {
        Some(t) if t != p.token => return None,
        None if p.hostname == crate::store::hostname() => return None,
        _ => {}
    }
    v.get("version")?.as_u64()
}

fn describe_lagging(ps: &[ProxyEntry]) -> String {
    ps.iter()
        .map(|p| {
            format!(
                "{} at {} serves {}{}",
                p.token,
                p.proxy_addr,
                p.table_version,
                if p.degraded { " (degraded)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The address to reach a proxy's admin API from this host: its
/// registered address, when it names this host only if the proxy runs
/// here (a loopback or unspecified address of a proxy on another host
/// would reach another proxy, or none).
fn admin_target(p: &ProxyEntry) -> Option<String> {
    let (host, port) = p.admin_addr.rsplit_once(':')?;
    let local = matches!(host, "" | "0.0.0.0" | "[::]" | "::" | "localhost" | "[::1]")
        || host.starts_with("127.");
    if local {
        (p.hostname == crate::store::hostname()).then(|| format!("127.0.0.1:{port}"))
    } else {
        Some(p.admin_addr.clone())
    }
}

/// Whether nothing listens on a proxy's admin address any more (only
/// judged where the address can be reached from here, see
/// [`admin_target`]).
async fn gone(p: &ProxyEntry) -> bool {
    let Some(addr) = admin_target(p) else {
        return false;
    };
    match tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut ctx = Ctx {
        store: Store::open(&cli.store)?,
        auth: cli.product_auth.clone(),
        dry_run: cli.dry_run,
        cur: None,
        lock: None,
        tty: std::io::stderr().is_terminal(),
        started: Instant::now(),
    };
    let wait = Duration::from_secs(cli.lock_wait);
    let res = match cli.cmd {
        Cmd::Status { json } => status(&mut ctx, json).await,
        Cmd::Group(g) => {
            ctx.lock("group", wait).await?;
            group(&mut ctx, g).await
        }
        Cmd::Assign {
            slots,
            group,
            force,
        } => {
            ctx.lock("assign", wait).await?;
            assign(&mut ctx, &slots, group, force).await
        }
        Cmd::Migrate {
            slots,
            to,
            resume,
            opts,
        } => {
            ctx.lock("migrate", wait).await?;
            migrate::migrate(&mut ctx, slots, to, resume, &opts).await
        }
        Cmd::Rebalance { by, opts } => {
            ctx.lock("rebalance", wait).await?;
            migrate::rebalance(&mut ctx, &by, &opts).await
        }
        Cmd::Promote { group, addr } => {
            ctx.lock("promote", wait).await?;
            migrate::promote(&mut ctx, group, &addr).await
        }
        Cmd::Proxy(ProxyCmd::Del { token }) => {
            if ctx.dry_run {
                println!("would remove the registration of proxy {token}");
                Ok(())
            } else {
                ctx.store.unregister(&token).await
            }
        }
    };
    if let Some(l) = ctx.lock.take() {
        l.release().await;
    }
    res
}

/// `INFO` of a server as fields (empty on failure, with the error).
async fn info(addr: &str, auth: &str) -> Result<BTreeMap<String, String>, String> {
    let mut c = redis::Client::connect(addr, auth, Duration::from_secs(2)).await?;
    let v = c.ok(&["INFO"]).await?;
    Ok(redis::info_fields(&v.text()).into_iter().collect())
}

async fn status(ctx: &mut Ctx, as_json: bool) -> Result<(), String> {
    let t = ctx.table().await?.clone();
    let proxies = ctx.store.proxies().await.unwrap_or_default();
    if as_json {
        let v = serde_json::json!({"table": t, "proxies": proxies});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "store {}  table version {}",
        ctx.store.describe(),
        t.version
    );
    println!("groups:");
    for (gid, g) in &t.groups {
        let owned: Vec<u32> = t
            .slots
            .iter()
            .filter(|s| s.group_id == *gid)
            .map(|s| s.id)
            .collect();
        let master = g.servers.first().cloned().unwrap_or_default();
        let stats = match info(&master, &ctx.auth).await {
            Ok(f) => {
                let keys: u64 = redis::dbs_with_keys(
                    &f.iter()
                        .map(|(k, v)| format!("{k}:{v}\n"))
                        .collect::<String>(),
                )
                .iter()
                .map(|(_, k)| k)
                .sum();
                format!(
                    "keys {keys}  used_memory {}",
                    f.get("used_memory_human").cloned().unwrap_or_default()
                )
            }
            Err(e) => format!("unreachable: {e}"),
        };
        println!(
            "  group-{gid}{}{}  master {master}  replicas [{}]  slots {} ({})  {stats}",
            if g.promoting { " (promoting)" } else { "" },
            if g.replica_reads {
                " (replica reads)"
            } else {
                ""
            },
            g.servers.get(1..).unwrap_or_default().join(", "),
            owned.len(),
            format_ranges(&owned),
        );
    }
    println!("slots:");
    let mut by_owner: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for s in &t.slots {
        by_owner.entry(s.group_id).or_default().push(s.id);
    }
    for (gid, ids) in &by_owner {
        if *gid == 0 {
            println!("  {:<24} unassigned", format_ranges(ids));
        } else {
            println!(
                "  {:<24} group-{gid} {}",
                format_ranges(ids),
                t.master(*gid).unwrap_or_default()
            );
        }
    }
    let mut moving: BTreeMap<(u32, u32, &str), Vec<u32>> = BTreeMap::new();
    for s in &t.slots {
        if let Some(a) = s.action {
            let st = match a.state {
                State::Pending => "pending",
                State::Prepared => "prepared",
                State::Migrating => "migrating",
            };
            moving
                .entry((s.group_id, a.target_id, st))
                .or_default()
                .push(s.id);
        }
    }
    if moving.is_empty() {
        println!("migrations: none");
    } else {
        println!("migrations (continue with `migrate --resume`):");
        for ((from, to, st), ids) in moving {
            println!(
                "  {} group-{from} -> group-{to}: {} slots {st}",
                format_ranges(&ids),
                ids.len()
            );
        }
    }
    if proxies.is_empty() {
        println!("proxies: none registered");
    } else {
        println!("proxies:");
        for p in &proxies {
            println!(
                "  {}  proxy {}  admin {}  host {} pid {}  table version {}{}{}",
                p.token,
                p.proxy_addr,
                p.admin_addr,
                p.hostname,
                p.pid,
                p.table_version,
                if p.table_version == t.version {
                    " (current)"
                } else {
                    " (behind)"
                },
                if p.degraded { " DEGRADED" } else { "" }
            );
        }
    }
    Ok(())
}

/// Checks that `addr` is a codis-server (answers SLOTSINFO), as the
/// dashboard does before adding it.
async fn check_codis_server(addr: &str, auth: &str) -> Result<(), String> {
    let mut c = redis::Client::connect(addr, auth, Duration::from_secs(2)).await?;
    match c.call(&["SLOTSINFO", "0", "1"]).await? {
        // A codis-server loading its data (a replica in its first sync).
        redis::Value::Error(e) if e.starts_with("LOADING") => Ok(()),
        redis::Value::Error(e) => Err(format!("{addr} is not a usable codis-server: {e}")),
        _ => Ok(()),
    }
}

async fn group(ctx: &mut Ctx, g: GroupCmd) -> Result<(), String> {
    let t = match ctx.cur.as_ref() {
        Some(l) => l.table.clone(),
        None => Table::default(),
    };
    match g {
        GroupCmd::Add { group, addrs } => {
            if addrs.is_empty() {
                return Err("group add: give at least one server address".into());
            }
            if group == 0 || group > crate::table::MAX_GROUP_ID {
                return Err(format!("invalid group id {group}, expected 1..9999"));
            }
            if t.groups.get(&group).is_some_and(|g| g.promoting) {
                return Err(format!("group-{group} is being promoted"));
            }
            if t.groups.get(&group).is_some_and(|g| g.replica_reads) {
                return Err(format!(
                    "group-{group} has replica reads on: turn them off first (a new server is not a replica yet)"
                ));
            }
            for a in &addrs {
                if !crate::slot::valid_addr(a) {
                    return Err(format!("invalid server address {a:?}"));
                }
                if let Some(other) = t.group_of(a) {
                    return Err(format!("server {a} is already in group-{other}"));
                }
                check_codis_server(a, &ctx.auth).await?;
            }
            if ctx.dry_run {
                println!("would add {} to group-{group}", addrs.join(", "));
                return Ok(());
            }
            let v = ctx
                .change(|t| {
                    t.groups
                        .entry(group)
                        .or_insert_with(Group::default)
                        .servers
                        .extend(addrs.iter().cloned());
                    Ok(())
                })
                .await?;
            println!(
                "group-{group}: added {} (table version {v})",
                addrs.join(", ")
            );
            Ok(())
        }
        GroupCmd::ReplicaReads { group, value } => {
            let on = match value.as_str() {
                "on" | "1" | "true" => true,
                "off" | "0" | "false" => false,
                other => return Err(format!("expected on or off, got {other:?}")),
            };
            let Some(g) = t.groups.get(&group) else {
                return Err(format!("group-{group} does not exist"));
            };
            if on {
                // Only servers that replicate the master, with the link up.
                let master = g.servers.first().cloned().unwrap_or_default();
                for r in g.servers.iter().skip(1) {
                    let f = info(r, &ctx.auth).await?;
                    let of = format!(
                        "{}:{}",
                        f.get("master_host").cloned().unwrap_or_default(),
                        f.get("master_port").cloned().unwrap_or_default()
                    );
                    let up = f.get("master_link_status").map(String::as_str) == Some("up");
                    if of != master || !up {
                        return Err(format!(
                            "{r} does not replicate group-{group}'s master {master} (master {of}, link {}): replica reads would answer from it",
                            f.get("master_link_status")
                                .cloned()
                                .unwrap_or_else(|| "none".into())
                        ));
                    }
                }
            }
            if ctx.dry_run {
                println!("would turn replica reads {value} for group-{group}");
                return Ok(());
            }
            let v = ctx
                .change(|t| {
                    if let Some(g) = t.groups.get_mut(&group) {
                        g.replica_reads = on;
                    }
                    Ok(())
                })
                .await?;
            println!("group-{group}: replica reads {value} (table version {v})");
            if let Err(e) = ctx.wait_proxies(v, Some(Duration::from_secs(5))).await {
                ctx.say(&format!("warning: {e}"));
            }
            Ok(())
        }
        GroupCmd::Del { group, addr } => {
            let Some(g) = t.groups.get(&group) else {
                return Err(format!("group-{group} does not exist"));
            };
            if g.promoting {
                return Err(format!("group-{group} is being promoted"));
            }
            let owns = t
                .slots
                .iter()
                .any(|s| s.group_id == group || s.action.is_some_and(|a| a.target_id == group));
            match &addr {
                None if !g.servers.is_empty() => {
                    return Err(format!("group-{group} is not empty"));
                }
                None => {}
                Some(a) => {
                    let Some(i) = g.servers.iter().position(|s| s == a) else {
                        return Err(format!("server {a} is not in group-{group}"));
                    };
                    if i == 0 && (g.servers.len() > 1 || owns) {
                        return Err(format!(
                            "{a} is group-{group}'s master: it can go only as the last server of a group that owns no slots"
                        ));
                    }
                }
            }
            if ctx.dry_run {
                println!(
                    "would remove {} from group-{group}",
                    addr.as_deref().unwrap_or("(the empty group)")
                );
                return Ok(());
            }
            let v = ctx
                .change(|t| {
                    if let Some(a) = &addr
                        && let Some(g) = t.groups.get_mut(&group)
                    {
                        g.servers.retain(|s| s != a);
                    }
                    if t.groups.get(&group).is_some_and(|g| g.servers.is_empty()) {
                        t.groups.remove(&group);
                    }
                    Ok(())
                })
                .await?;
            println!("group-{group}: removed (table version {v})");
            Ok(())
        }
    }
}

async fn assign(ctx: &mut Ctx, slots: &str, gid: u32, force: bool) -> Result<(), String> {
    let ids = parse_slot_ranges(slots)?;
    let t = ctx.table().await?.clone();
    if t.master(gid).is_none() {
        return Err(format!("group-{gid} does not exist or is empty"));
    }
    let mut todo = Vec::new();
    for &id in &ids {
        let s = t.slots[id as usize];
        if s.action.is_some() {
            return Err(format!("slot-[{id}] is being migrated"));
        }
        if s.group_id == gid {
            continue;
        }
        if s.group_id != 0 && !force {
            let owner = t.master(s.group_id).unwrap_or_default().to_string();
            let n = slot_keys(&owner, &ctx.auth, id).await?;
            if n > 0 {
                return Err(format!(
                    "slot-[{id}] holds {n} keys on {owner}: use `migrate` (or --force to abandon them)"
                ));
            }
        }
        todo.push(id);
    }
    if todo.is_empty() {
        println!("nothing to do: the slots are in group-{gid}");
        return Ok(());
    }
    if ctx.dry_run {
        println!(
            "would assign {} slots ({}) to group-{gid}",
            todo.len(),
            format_ranges(&todo)
        );
        return Ok(());
    }
    let v = ctx
        .change(|t| {
            for &id in &todo {
                t.slots[id as usize].group_id = gid;
            }
            Ok(())
        })
        .await?;
    println!(
        "assigned {} slots ({}) to group-{gid} (table version {v})",
        todo.len(),
        format_ranges(&todo)
    );
    match ctx.wait_proxies(v, Some(Duration::from_secs(5))).await {
        Ok(()) => {}
        Err(e) => ctx.say(&format!("warning: {e}")),
    }
    Ok(())
}

/// Keys of one slot on a server, over every DB.
pub async fn slot_keys(addr: &str, auth: &str, slot: u32) -> Result<u64, String> {
    let mut c = redis::Client::connect(addr, auth, Duration::from_secs(5)).await?;
    let ks = c.ok(&["INFO", "keyspace"]).await?;
    let mut total = 0u64;
    for (db, _) in redis::dbs_with_keys(&ks.text()) {
        c.ok(&["SELECT", &db.to_string()]).await?;
        let v = c.ok(&["SLOTSINFO", &slot.to_string(), "1"]).await?;
        if let redis::Value::Array(Some(rows)) = v {
            for r in rows {
                if let redis::Value::Array(Some(p)) = r
                    && p.len() == 2
                {
                    total += p[1].as_int().unwrap_or(0).max(0) as u64;
                }
            }
        }
    }
    Ok(total)
}
