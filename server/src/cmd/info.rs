//! INFO [section ...]: the Redis 7.0.15 report, with the same section names,
//! order, field names and formats (`key:value\r\n` lines, `# Section`
//! headers, a blank line between sections; a verbatim string in RESP3), so
//! tools that parse Redis' INFO parse ours.
//!
//! Sections: server, clients, memory, persistence, stats, replication, cpu,
//! modules, commandstats, errorstats, latencystats, cluster, keyspace, plus
//! `default` (all but commandstats/latencystats), `all` and `everything`.
//! Unknown section names are ignored, as in Redis.
//!
//! Where codis-server has no equivalent the value is the one Redis reports in
//! the same situation (no replicas, no persistence, no pub/sub ...). Values
//! that are ours:
//! * `used_memory` is the counting allocator's total (alloc.rs: every
//!   block's usable size, as Redis' zmalloc); `used_memory_dataset` is what
//!   the start-up memory, client state and the replication and AOF buffers
//!   leave of it. Without the allocator (unit tests) the dataset is
//!   estimated from a sample of slots. `used_memory_rss` is VmRSS.
//! * `avg_ttl` in the keyspace lines is always 0 (not sampled).
//! * `total_reads_processed` / `total_writes_processed` are not reported.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use protocol::command::CmdId;
use protocol::slot::SLOTS;

use crate::config::VERSION;
use crate::errors::CmdResult;
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Info => info,
        _ => return None,
    })
}

/// Sections in output order: (name, header, in `default`).
const SECTIONS: &[(&str, &str, bool)] = &[
    ("server", "Server", true),
    ("clients", "Clients", true),
    ("memory", "Memory", true),
    ("persistence", "Persistence", true),
    ("stats", "Stats", true),
    ("replication", "Replication", true),
    ("cpu", "CPU", true),
    ("modules", "Modules", true),
    ("commandstats", "Commandstats", false),
    ("errorstats", "Errorstats", true),
    ("latencystats", "Latencystats", false),
    ("cluster", "Cluster", true),
    ("keyspace", "Keyspace", true),
];

/// Which sections the arguments select (bit i = `SECTIONS[i]`).
fn selected(args: &[&[u8]]) -> u32 {
    if args.is_empty() {
        return default_mask();
    }
    let mut mask = 0;
    for a in args {
        if a.eq_ignore_ascii_case(b"all") || a.eq_ignore_ascii_case(b"everything") {
            mask |= (1 << SECTIONS.len()) - 1;
        } else if a.eq_ignore_ascii_case(b"default") {
            mask |= default_mask();
        } else if let Some(i) = SECTIONS
            .iter()
            .position(|(n, _, _)| n.as_bytes().eq_ignore_ascii_case(a))
        {
            mask |= 1 << i;
        }
    }
    mask
}

fn default_mask() -> u32 {
    SECTIONS
        .iter()
        .enumerate()
        .filter(|(_, s)| s.2)
        .fold(0, |m, (i, _)| m | 1 << i)
}

fn info(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let text = render(ctx, selected(&argv[1..]));
    ctx.out.verbatim(b"txt", text.as_bytes());
    Ok(())
}

/// The INFO text for the sections in `mask`.
pub fn render(ctx: &Ctx, mask: u32) -> String {
    let mut out = String::with_capacity(4096);
    let mut first = true;
    for (i, (name, header, _)) in SECTIONS.iter().enumerate() {
        if mask & (1 << i) == 0 {
            continue;
        }
        if !first {
            out.push_str("\r\n");
        }
        first = false;
        let _ = write!(out, "# {header}\r\n");
        let mut w = Lines(&mut out);
        match *name {
            "server" => server(ctx, &mut w),
            "clients" => clients(ctx, &mut w),
            "memory" => memory(ctx, &mut w),
            "persistence" => persistence(ctx, &mut w),
            "stats" => stats(ctx, &mut w),
            "replication" => replication(ctx, &mut w),
            "cpu" => cpu(&mut w),
            "commandstats" => commandstats(ctx, &mut w),
            "errorstats" => errorstats(ctx, &mut w),
            "latencystats" => {
                let pcts = ctx.srv.config().latency_tracking_info_percentiles.clone();
                for line in ctx
                    .srv
                    .latency
                    .info_lines(&ctx.srv.stats.index.specs, &pcts)
                {
                    w.0.push_str(&line);
                    w.0.push_str("\r\n");
                }
            }
            "cluster" => w.kv("cluster_enabled", 0),
            "keyspace" => keyspace(ctx, &mut w),
            _ => {}
        }
    }
    out
}

/// Appends `key:value\r\n` lines.
struct Lines<'a>(&'a mut String);

impl Lines<'_> {
    fn kv(&mut self, k: &str, v: impl std::fmt::Display) {
        let _ = write!(self.0, "{k}:{v}\r\n");
    }
}

/// `%.2f`
fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// Redis' `bytesToHuman`.
pub fn human(n: u64) -> String {
    const K: f64 = 1024.0;
    let d = n as f64;
    if n < 1024 {
        format!("{n}B")
    } else if d < K * K {
        format!("{:.2}K", d / K)
    } else if d < K * K * K {
        format!("{:.2}M", d / (K * K))
    } else if d < K * K * K * K {
        format!("{:.2}G", d / (K * K * K))
    } else if d < K * K * K * K * K {
        format!("{:.2}T", d / (K * K * K * K))
    } else if d < K * K * K * K * K * K {
        format!("{:.2}P", d / (K * K * K * K * K))
    } else {
        format!("{n}B")
    }
}

fn read_proc(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn now_usec() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn server(ctx: &Ctx, w: &mut Lines) {
    let srv = ctx.srv;
    let (hz, supervised) = {
        let c = srv.config();
        (c.hz, c.supervised)
    };
    let up = srv.started.elapsed().as_secs();
    let os = format!(
        "{} {} {}",
        read_proc("/proc/sys/kernel/ostype").trim(),
        read_proc("/proc/sys/kernel/osrelease").trim(),
        std::env::consts::ARCH
    );
    w.kv("redis_version", VERSION);
    w.kv("redis_git_sha1", "00000000");
    w.kv("redis_git_dirty", 0);
    w.kv("redis_build_id", "0000000000000000");
    w.kv("redis_mode", "standalone");
    w.kv("os", os.trim());
    w.kv("arch_bits", usize::BITS);
    w.kv("monotonic_clock", "POSIX clock_gettime");
    w.kv(
        "multiplexing_api",
        if cfg!(target_os = "linux") {
            "epoll"
        } else {
            "kqueue"
        },
    );
    w.kv("atomicvar_api", "c11-builtin");
    w.kv("gcc_version", "0.0.0");
    w.kv("process_id", std::process::id());
    w.kv(
        "process_supervised",
        match supervised {
            crate::config::Supervised::Upstart => "upstart",
            crate::config::Supervised::Systemd => "systemd",
            _ => "no",
        },
    );
    w.kv("run_id", &srv.run_id);
    w.kv("tcp_port", srv.port.load(Relaxed));
    w.kv("server_time_usec", now_usec());
    w.kv("uptime_in_seconds", up);
    w.kv("uptime_in_days", up / 86400);
    w.kv("hz", hz);
    w.kv("configured_hz", hz);
    w.kv("lru_clock", crate::db::lru_clock(ctx.now));
    w.kv("executable", &srv.executable);
    w.kv("config_file", &srv.config_file);
    w.kv("io_threads_active", (srv.threads > 1) as u8);
}

fn clients(ctx: &Ctx, w: &mut Lines) {
    let all = ctx.srv.clients.all();
    let max_in = all.iter().map(|c| c.qbuf.load(Relaxed)).max().unwrap_or(0);
    let max_out = all.iter().map(|c| c.omem.load(Relaxed)).max().unwrap_or(0);
    w.kv("connected_clients", all.len());
    w.kv("cluster_connections", 0);
    w.kv("maxclients", ctx.srv.config().maxclients);
    w.kv("client_recent_max_input_buffer", max_in);
    w.kv("client_recent_max_output_buffer", max_out);
    let blocked = ctx.srv.blocking.blocked_clients();
    w.kv("blocked_clients", blocked);
    w.kv("tracking_clients", ctx.srv.tracking.stats().0);
    w.kv("clients_in_timeout_table", blocked);
}

/// Memory figures for INFO memory.
pub struct MemoryEstimate {
    /// Fixed structures: every DB's slot tables and counters.
    pub startup: u64,
    /// Connection state and buffers.
    pub clients: u64,
    /// Keys and values (sampled estimate).
    pub dataset: u64,
}

impl MemoryEstimate {
    pub fn used(&self) -> u64 {
        self.startup + self.clients + self.dataset
    }
}

/// Bytes a key costs besides its blob: the table slot (32-byte `Entry`) plus
/// hashbrown's control byte and load-factor slack.
const PER_KEY_OVERHEAD: u64 = 40;
/// Up to this many keys a DB is measured exactly; above, slots are sampled.
const EXACT_LIMIT: usize = 4096;
const SAMPLE_SLOTS: usize = 64;
const SAMPLE_KEYS_PER_SLOT: usize = 128;

/// Estimates the server's memory use (see the module docs).
pub fn estimate_memory(ctx: &Ctx) -> MemoryEstimate {
    estimate(ctx, true)
}

/// The estimate, with the dataset sampled only when `dataset`.
fn estimate(ctx: &Ctx, dataset: bool) -> MemoryEstimate {
    let ks = ctx.ks();
    let per_db = SLOTS * (std::mem::size_of::<std::sync::Mutex<crate::db::SlotTable>>() + 2 * 4);
    let startup = (ks.db_count() * (per_db + std::mem::size_of::<crate::db::Db>())) as u64;
    let clients: u64 = ctx
        .srv
        .clients
        .all()
        .iter()
        .map(|c| (c.fixed_mem() + c.pending_output()) as u64)
        .sum();
    let mut bytes_total = 0u64;
    for i in (0..ks.db_count()).filter(|_| dataset) {
        let Some(db) = ks.db(i) else { continue };
        let keys = db.len();
        if keys == 0 {
            continue;
        }
        let (mut bytes, mut seen) = (0u64, 0u64);
        let exact = keys <= EXACT_LIMIT;
        let mut sampled_slots = 0;
        // Sample slots spread over the range, starting at a moving offset.
        let start = (ctx.now as usize / 1000) % SLOTS;
        for k in 0..SLOTS {
            let s = (start + k * 37) % SLOTS; // 37 is coprime with 1024: visits every slot
            if db.slot_len(s) == 0 {
                continue;
            }
            let slot = ks.lock_slot(db, s);
            let limit = if exact {
                usize::MAX
            } else {
                SAMPLE_KEYS_PER_SLOT
            };
            for e in slot.iter().take(limit) {
                bytes += e.heap_size() as u64 + PER_KEY_OVERHEAD;
                seen += 1;
            }
            drop(slot);
            sampled_slots += 1;
            if !exact && sampled_slots >= SAMPLE_SLOTS {
                break;
            }
        }
        if seen > 0 {
            bytes_total += if exact {
                bytes
            } else {
                (bytes as f64 / seen as f64 * keys as f64) as u64
            };
        }
    }
    MemoryEstimate {
        startup,
        clients,
        dataset: bytes_total,
    }
}

/// `VmRSS` of this process in bytes (0 where /proc is unavailable).
pub fn rss_bytes() -> u64 {
    proc_kb("/proc/self/status", "VmRSS:")
}

fn proc_kb(path: &str, field: &str) -> u64 {
    read_proc(path)
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn memory(ctx: &Ctx, w: &mut Lines) {
    let counted = crate::alloc::installed();
    let mut est = estimate(ctx, !counted);
    let (repl_held, repl_backlog) = ctx.srv.prop.repl_buffer_bytes();
    let aof_buf = ctx.srv.persist.aof.writer.pending_bytes();
    let used = if counted {
        // The allocator's count (alloc.rs); the dataset is what the
        // fixed parts leave of it.
        let used = crate::alloc::used();
        est.startup = ctx.srv.stats.used_memory_startup.load(Relaxed);
        est.dataset = used.saturating_sub(est.startup + est.clients + repl_held + aof_buf);
        used
    } else {
        est.used()
    };
    let peak = ctx
        .srv
        .stats
        .used_memory_peak
        .fetch_max(used, Relaxed)
        .max(used);
    let rss = rss_bytes();
    let total = proc_kb("/proc/meminfo", "MemTotal:");
    let overhead = est.startup + est.clients + repl_held + aof_buf;
    let (maxmemory, policy) = {
        let c = ctx.srv.config();
        (
            c.maxmemory,
            c.get_one("maxmemory-policy").unwrap_or_default(),
        )
    };
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    let net = used.saturating_sub(est.startup);
    w.kv("used_memory", used);
    w.kv("used_memory_human", human(used));
    w.kv("used_memory_rss", rss);
    w.kv("used_memory_rss_human", human(rss));
    w.kv("used_memory_peak", peak);
    w.kv("used_memory_peak_human", human(peak));
    w.kv("used_memory_peak_perc", format!("{}%", f2(pct(used, peak))));
    w.kv("used_memory_overhead", overhead);
    w.kv("used_memory_startup", est.startup);
    w.kv("used_memory_dataset", est.dataset);
    w.kv(
        "used_memory_dataset_perc",
        format!("{}%", f2(pct(est.dataset, net))),
    );
    w.kv("total_system_memory", total);
    w.kv("total_system_memory_human", human(total));
    // Lua: the EVAL interpreter of the thread that ran the last script
    // (there is one per executor thread), the cached bodies, the function
    // libraries' code.
    let srv = ctx.srv;
    let lua = srv
        .scripts
        .lua_memory
        .load(std::sync::atomic::Ordering::Relaxed) as u64;
    let scripts_eval = srv
        .scripts
        .body_bytes
        .load(std::sync::atomic::Ordering::Relaxed) as u64;
    let (n_libs, n_funcs) = srv.functions.counts();
    let functions_code: u64 = srv
        .functions
        .libraries()
        .iter()
        .map(|l| l.code.len() as u64)
        .sum();
    w.kv("used_memory_lua", lua);
    w.kv("used_memory_vm_eval", lua);
    w.kv("used_memory_lua_human", human(lua));
    w.kv("used_memory_scripts_eval", scripts_eval);
    w.kv("number_of_cached_scripts", srv.scripts.len());
    w.kv("number_of_functions", n_funcs);
    w.kv("number_of_libraries", n_libs);
    w.kv("used_memory_vm_functions", 0);
    w.kv("used_memory_vm_total", lua);
    w.kv("used_memory_vm_total_human", human(lua));
    w.kv("used_memory_functions", functions_code);
    w.kv("used_memory_scripts", scripts_eval + functions_code);
    w.kv(
        "used_memory_scripts_human",
        human(scripts_eval + functions_code),
    );
    w.kv("maxmemory", maxmemory);
    w.kv("maxmemory_human", human(maxmemory));
    w.kv("maxmemory_policy", String::from_utf8_lossy(&policy));
    let frag = if used == 0 {
        0.0
    } else {
        rss as f64 / used as f64
    };
    w.kv("mem_fragmentation_ratio", f2(frag));
    w.kv("mem_fragmentation_bytes", rss as i64 - used as i64);
    w.kv(
        "mem_not_counted_for_evict",
        crate::evict::not_counted(ctx.srv),
    );
    w.kv("mem_replication_backlog", repl_backlog);
    w.kv("mem_total_replication_buffers", repl_held);
    w.kv("mem_clients_slaves", 0);
    w.kv("mem_clients_normal", est.clients);
    w.kv("mem_cluster_links", 0);
    w.kv("mem_aof_buffer", aof_buf);
    w.kv("mem_allocator", "libc");
    w.kv("active_defrag_running", 0);
    w.kv("lazyfree_pending_objects", 0);
    w.kv("lazyfreed_objects", 0);
}

fn persistence(ctx: &Ctx, w: &mut Lines) {
    let p = &ctx.srv.persist;
    let i = p.info();
    let loading = p.loading.active.load(Relaxed);
    w.kv("loading", loading as u8);
    w.kv("async_loading", 0);
    // No fork, so no copy-on-write: these stay 0 (the snapshot's extra
    // memory is the serialization buffer, see docs/persistence.md).
    w.kv("current_cow_peak", 0);
    w.kv("current_cow_size", 0);
    w.kv("current_cow_size_age", 0);
    w.kv("current_fork_perc", "0.00");
    let (done, total) = if i.in_progress {
        (p.keys_processed.load(Relaxed), p.keys_total.load(Relaxed))
    } else {
        (0, 0)
    };
    w.kv("current_save_keys_processed", done);
    w.kv("current_save_keys_total", total);
    w.kv("rdb_changes_since_last_save", ctx.srv.dirty.load(Relaxed));
    w.kv("rdb_bgsave_in_progress", i.in_progress as u8);
    w.kv("rdb_last_save_time", i.lastsave);
    w.kv(
        "rdb_last_bgsave_status",
        if i.last_bgsave_ok { "ok" } else { "err" },
    );
    w.kv("rdb_last_bgsave_time_sec", i.last_bgsave_secs);
    w.kv("rdb_current_bgsave_time_sec", i.current_bgsave_secs);
    w.kv("rdb_saves", i.rdb_saves);
    w.kv("rdb_last_cow_size", 0);
    w.kv("rdb_last_load_keys_expired", i.loaded_expired);
    w.kv("rdb_last_load_keys_loaded", i.loaded_keys);
    let a = p.aof.info(ctx.srv);
    w.kv("aof_enabled", a.enabled as u8);
    w.kv("aof_rewrite_in_progress", a.rewriting as u8);
    w.kv("aof_rewrite_scheduled", a.scheduled as u8);
    w.kv("aof_last_rewrite_time_sec", a.last_rewrite_secs);
    w.kv("aof_current_rewrite_time_sec", a.current_rewrite_secs);
    w.kv(
        "aof_last_bgrewrite_status",
        if a.last_rewrite_ok { "ok" } else { "err" },
    );
    w.kv("aof_rewrites", a.rewrites);
    w.kv("aof_rewrites_consecutive_failures", a.consecutive_failures);
    w.kv(
        "aof_last_write_status",
        if a.last_write_ok { "ok" } else { "err" },
    );
    w.kv("aof_last_cow_size", 0);
    w.kv("module_fork_in_progress", 0);
    w.kv("module_fork_last_cow_size", 0);
    if ctx.srv.config().appendonly {
        w.kv("aof_current_size", a.current_size);
        w.kv("aof_base_size", a.base_size);
        w.kv("aof_pending_rewrite", a.scheduled as u8);
        w.kv("aof_buffer_length", a.buffer_length);
        // The writer thread fsyncs itself: no separate job is ever queued.
        w.kv("aof_pending_bio_fsync", 0);
        w.kv("aof_delayed_fsync", a.delayed_fsync);
    }
    if loading {
        let l = p.loading.info();
        w.kv("loading_start_time", l.start);
        w.kv("loading_total_bytes", l.total);
        w.kv("loading_rdb_used_mem", l.rdb_used_mem);
        w.kv("loading_loaded_bytes", l.loaded);
        w.kv("loading_loaded_perc", format!("{:.2}", l.perc));
        w.kv("loading_eta_seconds", l.eta);
    }
}

/// Keys expired so far (lazily or by the cron), over every DB.
pub fn expired_keys(ctx: &Ctx) -> u64 {
    let ks = &ctx.srv.ks;
    let per_db: u64 = (0..ks.db_count())
        .filter_map(|i| ks.db(i))
        .map(|d| d.expired.load(Relaxed))
        .sum();
    per_db + ctx.srv.stats.expired_keys.load(Relaxed)
}

fn stats(ctx: &Ctx, w: &mut Lines) {
    let st = &ctx.srv.stats;
    let kbps = |a: &std::sync::atomic::AtomicU64| f2(a.load(Relaxed) as f64 / 1024.0);
    w.kv(
        "total_connections_received",
        st.total_connections.load(Relaxed),
    );
    w.kv("total_commands_processed", st.total_commands.load(Relaxed));
    w.kv("instantaneous_ops_per_sec", st.inst_ops.load(Relaxed));
    w.kv("total_net_input_bytes", st.net_input_bytes.load(Relaxed));
    w.kv("total_net_output_bytes", st.net_output_bytes.load(Relaxed));
    w.kv(
        "total_net_repl_input_bytes",
        st.net_repl_input_bytes.load(Relaxed),
    );
    w.kv(
        "total_net_repl_output_bytes",
        st.net_repl_output_bytes.load(Relaxed),
    );
    w.kv("instantaneous_input_kbps", kbps(&st.inst_in_kbps));
    w.kv("instantaneous_output_kbps", kbps(&st.inst_out_kbps));
    w.kv("instantaneous_input_repl_kbps", "0.00");
    w.kv("instantaneous_output_repl_kbps", "0.00");
    w.kv(
        "rejected_connections",
        st.rejected_connections.load(Relaxed),
    );
    let r = &ctx.srv.repl;
    w.kv("sync_full", r.sync_full.load(Relaxed));
    w.kv("sync_partial_ok", r.sync_partial_ok.load(Relaxed));
    w.kv("sync_partial_err", r.sync_partial_err.load(Relaxed));
    w.kv("expired_keys", expired_keys(ctx));
    w.kv("expired_stale_perc", "0.00");
    w.kv("expired_time_cap_reached_count", 0);
    w.kv("expire_cycle_cpu_milliseconds", 0);
    let ev = &ctx.srv.evict;
    w.kv("evicted_keys", ev.evicted_keys.load(Relaxed));
    w.kv("evicted_clients", ev.evicted_clients.load(Relaxed));
    let current = ev.current_over_ms();
    w.kv(
        "total_eviction_exceeded_time",
        ev.over_total_ms.load(Relaxed) + current,
    );
    w.kv("current_eviction_exceeded_time", current);
    w.kv("keyspace_hits", st.keyspace_hits.load(Relaxed));
    w.kv("keyspace_misses", st.keyspace_misses.load(Relaxed));
    w.kv("pubsub_channels", ctx.srv.pubsub.channel_count());
    w.kv("pubsub_patterns", ctx.srv.pubsub.pattern_count());
    w.kv("pubsubshard_channels", ctx.srv.pubsub.shard_channel_count());
    w.kv("latest_fork_usec", 0);
    w.kv("total_forks", 0);
    w.kv("migrate_cached_sockets", 0);
    w.kv("slave_expires_tracked_keys", 0);
    w.kv("active_defrag_hits", 0);
    w.kv("active_defrag_misses", 0);
    w.kv("active_defrag_key_hits", 0);
    w.kv("active_defrag_key_misses", 0);
    w.kv("total_active_defrag_time", 0);
    w.kv("current_active_defrag_time", 0);
    let (_, keys, items, prefixes) = ctx.srv.tracking.stats();
    w.kv("tracking_total_keys", keys);
    w.kv("tracking_total_items", items);
    w.kv("tracking_total_prefixes", prefixes);
    w.kv(
        "unexpected_error_replies",
        st.unexpected_error_replies.load(Relaxed),
    );
    w.kv("total_error_replies", st.total_error_replies.load(Relaxed));
    w.kv("dump_payload_sanitizations", 0);
    w.kv("io_threaded_reads_processed", 0);
    w.kv("io_threaded_writes_processed", 0);
    w.kv("reply_buffer_shrinks", 0);
    w.kv("reply_buffer_expands", 0);
    // Redis 7.2's ACL counters (7.0 has none): NOPERM refusals by reason,
    // failed AUTH/HELLO AUTH.
    let acl = &ctx.srv.acl;
    w.kv("acl_access_denied_auth", acl.denied_auth.load(Relaxed));
    w.kv("acl_access_denied_cmd", acl.denied_cmd.load(Relaxed));
    w.kv("acl_access_denied_key", acl.denied_key.load(Relaxed));
    w.kv(
        "acl_access_denied_channel",
        acl.denied_channel.load(Relaxed),
    );
}

/// A replication id for INFO: 40 hex digits derived from the run id (there
/// is no replication, but tools expect the field).
fn replication(ctx: &Ctx, w: &mut Lines) {
    use crate::repl::{ONLINE, SEND_BULK};
    let replicas = ctx.srv.repl.replicas();
    let link = &ctx.srv.repl.link;
    let master = link.master();
    w.kv("role", if master.is_some() { "slave" } else { "master" });
    if let Some((host, port)) = master {
        use crate::repl::replica::{CONNECTED, TRANSFER};
        let state = link.state.load(Relaxed);
        let now_s = ctx.now / 1000;
        w.kv("master_host", host);
        w.kv("master_port", port);
        w.kv(
            "master_link_status",
            if state == CONNECTED { "up" } else { "down" },
        );
        let since = |ms: u64| now_s.saturating_sub(ms / 1000) as i64;
        w.kv(
            "master_last_io_seconds_ago",
            if state == CONNECTED {
                since(link.last_io_ms.load(Relaxed))
            } else {
                -1
            },
        );
        w.kv("master_sync_in_progress", (state == TRANSFER) as u8);
        let applied = ctx.srv.prop.repl_offset();
        w.kv(
            "slave_read_repl_offset",
            link.read_offset.load(Relaxed).max(applied),
        );
        w.kv("slave_repl_offset", applied);
        if state == TRANSFER {
            let size = link.transfer_size.load(Relaxed);
            let read = link.transfer_read.load(Relaxed) as i64;
            w.kv("master_sync_total_bytes", size);
            w.kv("master_sync_read_bytes", read);
            w.kv("master_sync_left_bytes", size - read);
            let perc = if size > 0 {
                read as f64 / size as f64 * 100.0
            } else {
                0.0
            };
            w.kv("master_sync_perc", format!("{perc:.2}"));
            w.kv(
                "master_sync_last_io_seconds_ago",
                since(link.last_io_ms.load(Relaxed)),
            );
        }
        if state != CONNECTED {
            let down = link.down_since_ms.load(Relaxed);
            w.kv(
                "master_link_down_since_seconds",
                if down == 0 { -1 } else { since(down) },
            );
        }
        let c = ctx.srv.config();
        w.kv("slave_priority", c.replica_priority);
        w.kv("slave_read_only", c.replica_read_only as u8);
        w.kv("replica_announced", c.replica_announced as u8);
    }
    w.kv("connected_slaves", replicas.len());
    {
        let c = ctx.srv.config();
        if c.min_replicas_to_write > 0 && c.min_replicas_max_lag > 0 {
            w.kv("min_slaves_good_slaves", ctx.srv.repl.good.load(Relaxed));
        }
    }
    let now_s = ctx.now / 1000;
    for (i, r) in replicas.iter().enumerate() {
        let state = r.state.load(Relaxed);
        let name = match state {
            ONLINE => "online",
            SEND_BULK => "send_bulk",
            _ => "wait_bgsave",
        };
        let lag = if state == ONLINE {
            now_s.saturating_sub(r.ack_ms.load(Relaxed) / 1000)
        } else {
            0
        };
        w.kv(
            &format!("slave{i}"),
            format!(
                "ip={},port={},state={name},offset={},lag={lag}",
                r.ip,
                r.port,
                r.ack.load(Relaxed)
            ),
        );
    }
    w.kv(
        "master_failover_state",
        crate::repl::failover::state_name(ctx.srv),
    );
    let ids = ctx.srv.repl.ids();
    w.kv("master_replid", &ids.replid);
    w.kv("master_replid2", &ids.replid2);
    w.kv("master_repl_offset", ctx.srv.prop.repl_offset());
    w.kv("second_repl_offset", ids.second_offset);
    match ctx.srv.prop.backlog_info() {
        Some(b) => {
            w.kv("repl_backlog_active", 1);
            w.kv("repl_backlog_size", b.size);
            w.kv("repl_backlog_first_byte_offset", b.first_byte);
            w.kv("repl_backlog_histlen", b.histlen);
        }
        None => {
            w.kv("repl_backlog_active", 0);
            w.kv("repl_backlog_size", ctx.srv.config().repl_backlog_size);
            w.kv("repl_backlog_first_byte_offset", 0);
            w.kv("repl_backlog_histlen", 0);
        }
    }
}

/// Kernel clock ticks per second (USER_HZ is 100 on every Linux ABI).
const CLK_TCK: u64 = 100;

/// (user, system, children user, children system) ticks from a `stat` file.
fn cpu_ticks(path: &str) -> (u64, u64, u64, u64) {
    let text = read_proc(path);
    // Fields after the parenthesised command name, which may contain spaces.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // rest[0] is the state (field 3); utime is field 14 → index 11.
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    (at(11), at(12), at(13), at(14))
}

fn secs(ticks: u64) -> String {
    format!(
        "{}.{:06}",
        ticks / CLK_TCK,
        (ticks % CLK_TCK) * (1_000_000 / CLK_TCK)
    )
}

fn cpu(w: &mut Lines) {
    let (u, s, cu, cs) = cpu_ticks("/proc/self/stat");
    let (mu, ms, _, _) = cpu_ticks(&format!("/proc/self/task/{}/stat", std::process::id()));
    w.kv("used_cpu_sys", secs(s));
    w.kv("used_cpu_user", secs(u));
    w.kv("used_cpu_sys_children", secs(cs));
    w.kv("used_cpu_user_children", secs(cu));
    w.kv("used_cpu_sys_main_thread", secs(ms));
    w.kv("used_cpu_user_main_thread", secs(mu));
}

fn commandstats(ctx: &Ctx, w: &mut Lines) {
    let st = &ctx.srv.stats;
    for (i, spec) in st.index.specs.iter().enumerate() {
        let Some(c) = st.cmds.get(i) else { continue };
        let (calls, usec, rejected, failed) = (
            c.calls.load(Relaxed),
            c.nsec.load(Relaxed) / 1000,
            c.rejected.load(Relaxed),
            c.failed.load(Relaxed),
        );
        if calls == 0 && rejected == 0 && failed == 0 {
            continue;
        }
        let per = if calls == 0 {
            0.0
        } else {
            usec as f64 / calls as f64
        };
        let _ = write!(
            w.0,
            "cmdstat_{}:calls={calls},usec={usec},usec_per_call={},rejected_calls={rejected},failed_calls={failed}\r\n",
            spec.name,
            f2(per)
        );
    }
}

fn errorstats(ctx: &Ctx, w: &mut Lines) {
    let m = ctx
        .srv
        .stats
        .errors
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for (code, n) in m.iter() {
        let _ = write!(w.0, "errorstat_{code}:count={n}\r\n");
    }
}

fn keyspace(ctx: &Ctx, w: &mut Lines) {
    let ks = &ctx.srv.ks;
    for i in 0..ks.db_count() {
        let Some(db) = ks.db(i) else { continue };
        let (keys, expires) = (db.len(), db.expires());
        if keys > 0 || expires > 0 {
            let _ = write!(w.0, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cmd::conn::harness::H;

    /// The `# Section` headers of an INFO reply.
    fn headers(text: &str) -> Vec<String> {
        text.split("\r\n")
            .filter_map(|l| l.strip_prefix("# "))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn info_sections() {
        let mut h = H::new();
        let mut c = h.connect();
        let all = h.text(&mut c, "INFO everything");
        assert_eq!(
            headers(&all),
            [
                "Server",
                "Clients",
                "Memory",
                "Persistence",
                "Stats",
                "Replication",
                "CPU",
                "Modules",
                "Commandstats",
                "Errorstats",
                "Latencystats",
                "Cluster",
                "Keyspace"
            ]
        );
        let def = h.text(&mut c, "INFO");
        assert!(
            !def.contains("# Commandstats")
                && def.contains("# Keyspace")
                && def.contains("# Errorstats")
        );
        assert_eq!(h.text(&mut c, "INFO nosuch"), "$0\r\n\r\n");
        assert_eq!(h.text(&mut c, "INFO modules"), "$11\r\n# Modules\r\n\r\n");
        let two = h.text(&mut c, "INFO modules CPU");
        assert!(
            two.contains("\r\n# CPU\r\nused_cpu_sys:")
                && two.ends_with("\r\n\r\n# Modules\r\n\r\n"),
            "{two}"
        );
        h.text(&mut c, "HELLO 3");
        assert_eq!(
            h.text(&mut c, "INFO modules"),
            "=15\r\ntxt:# Modules\r\n\r\n"
        );
    }

    #[test]
    fn info_values() {
        let mut h = H::new();
        let mut c = h.connect();
        let _other = h.connect();
        h.text(&mut c, "SET a 1");
        h.text(&mut c, "SET b 2");
        h.text(&mut c, "GET a");
        h.text(&mut c, "GET nosuch");
        h.text(&mut c, "SELECT 5");
        h.text(&mut c, "SET c 3");
        h.text(&mut c, "GET a b");
        h.text(&mut c, "CONFIG GET maxmemory");
        h.text(&mut c, "NOSUCHCOMMAND");
        let field = |text: &str, k: &str| -> String {
            text.split("\r\n")
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .unwrap_or("<missing>")
                .to_string()
        };
        let info = h.text(&mut c, "INFO all");
        assert_eq!(field(&info, "redis_version"), "7.0.15");
        assert_eq!(field(&info, "connected_clients"), "2");
        assert_eq!(field(&info, "role"), "master");
        assert_eq!(field(&info, "keyspace_hits"), "1");
        assert_eq!(field(&info, "keyspace_misses"), "1");
        assert_eq!(field(&info, "maxmemory_policy"), "noeviction");
        assert_eq!(field(&info, "total_error_replies"), "2");
        assert_eq!(field(&info, "db0"), "keys=2,expires=0,avg_ttl=0");
        assert_eq!(field(&info, "db5"), "keys=1,expires=0,avg_ttl=0");
        assert_eq!(field(&info, "db1"), "<missing>");
        assert_eq!(field(&info, "errorstat_ERR"), "count=2");
        let set = field(&info, "cmdstat_set");
        assert!(
            set.starts_with("calls=3,usec=") && set.ends_with(",rejected_calls=0,failed_calls=0"),
            "{set}"
        );
        let get = field(&info, "cmdstat_get");
        assert!(
            get.starts_with("calls=2,") && get.ends_with(",rejected_calls=1,failed_calls=0"),
            "{get}"
        );
        assert!(field(&info, "cmdstat_config|get").starts_with("calls=1,"));
        let used: u64 = field(&info, "used_memory").parse().unwrap();
        assert!(used > 0);
        assert!(field(&info, "used_memory_peak").parse::<u64>().unwrap() >= used);
        assert!(field(&info, "uptime_in_seconds").parse::<u64>().is_ok());
        assert!(field(&info, "used_cpu_user").contains('.'));
    }

    #[test]
    fn memory_estimate_grows_with_data() {
        let mut h = H::with(|c| c.enable_debug_command = crate::config::EnableLevel::Yes);
        let mut c = h.connect();
        let before = estimate_memory(&ctx_for(&h, &mut c)).dataset;
        h.text(&mut c, "DEBUG POPULATE 20000 k 100");
        let after = estimate_memory(&ctx_for(&h, &mut c)).dataset;
        // 20000 keys with ~100-byte values: at least 2 MB, and not wildly more.
        assert!(
            after > before + 2_000_000 && after < 20_000_000,
            "{before} -> {after}"
        );
    }

    fn ctx_for<'a>(h: &'a H, c: &'a mut crate::cmd::conn::harness::Conn) -> Ctx<'a> {
        Ctx {
            srv: &h.srv,
            client: &mut c.client,
            out: &mut c.out,
            now: crate::db::now_ms(),
            spec: protocol::command::CmdId::Info.spec(),
            held: None,
            one: None,
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(990496), "967.28K");
        assert_eq!(human(6979584), "6.66M");
        assert_eq!(human(25276502016), "23.54G");
        assert_eq!(human(1 << 40), "1.00T");
    }

    #[test]
    fn section_selection() {
        let all = (1u32 << SECTIONS.len()) - 1;
        assert_eq!(selected(&[b"all"]), all);
        assert_eq!(selected(&[b"EVERYTHING"]), all);
        assert_eq!(selected(&[]), default_mask());
        assert_eq!(selected(&[b"default"]), default_mask());
        assert_eq!(
            default_mask() & (1 << 8),
            0,
            "commandstats is not a default section"
        );
        assert_eq!(selected(&[b"nosuch"]), 0);
        assert_eq!(selected(&[b"CPU", b"server"]), 1 | 1 << 6);
        assert_eq!(
            selected(&[b"default", b"commandstats"]),
            default_mask() | 1 << 8
        );
    }

    #[test]
    fn cpu_time_format() {
        assert_eq!(secs(0), "0.000000");
        assert_eq!(secs(123), "1.230000");
    }
}
