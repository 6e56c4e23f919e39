//! MEMORY USAGE / STATS / DOCTOR / PURGE / MALLOC-STATS / HELP (Redis'
//! object.c memory commands) on the counting allocator's numbers
//! (alloc.rs) and glibc's `mallinfo2`.
//!
//! * USAGE: the key's bytes as its value reports them (kept per value, so
//!   exact: `SAMPLES` is checked as Redis checks it and changes nothing)
//!   plus the key's share of its slot table.
//! * STATS: Redis' fields in Redis' order; the allocator fields come from
//!   glibc (allocated: our count, active: bytes in use in malloc's chunks,
//!   resident: what malloc holds from the system). No DB has a separate
//!   expires table (an expiry lives in its key's entry), so
//!   `overhead.hashtable.expires` is 0.
//! * DOCTOR and MALLOC-STATS are our own reports; PURGE is `malloc_trim`.

use protocol::command::CmdId;
use protocol::number::parse_i64;

use crate::cmd::conn::help_reply;
use crate::cmd::info::{human, rss_bytes};
use crate::db::KeyAccess;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Memory => memory,
        _ => return None,
    })
}

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    A short report on how this server uses memory, with advice.",
    "MALLOC-STATS",
    "    What the memory allocator holds, in its own terms.",
    "PURGE",
    "    Give memory the allocator no longer uses back to the system.",
    "STATS",
    "    The server's memory use, part by part.",
    "USAGE <key> [SAMPLES <count>]",
    "    Bytes used by <key> and its value (exact: SAMPLES is accepted for",
    "    compatibility and changes nothing).",
    "HELP",
    "    Print this help.",
];

/// What a key costs besides its value's allocations: its 32-byte entry in
/// the slot table, the table's control byte and its share of free buckets.
const PER_KEY: usize = 40;

fn memory(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    match ctx.spec.short_name() {
        "help" => {
            help_reply(ctx, MEMORY_HELP);
            Ok(())
        }
        "usage" => usage(ctx, argv),
        "stats" => {
            stats(ctx);
            Ok(())
        }
        "doctor" => {
            let text = doctor(ctx);
            ctx.out.verbatim(b"txt", text.as_bytes());
            Ok(())
        }
        "purge" => {
            purge();
            ctx.out.ok();
            Ok(())
        }
        "malloc-stats" => {
            let text = malloc_stats();
            ctx.out.verbatim(b"txt", text.as_bytes());
            Ok(())
        }
        _ => Err(CmdError::msg(errors::subcommand_syntax("memory", argv[1]))),
    }
}

fn usage(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let mut j = 3;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"samples") && j + 1 < argv.len() {
            match parse_i64(argv[j + 1]) {
                None => return Err(CmdError::NotInteger),
                Some(n) if n < 0 => return Err(CmdError::Syntax),
                Some(_) => {}
            }
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let key = argv[2];
    let now = ctx.now;
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    // Not an access: the LRU/LFU clock stays (Redis' LOOKUP_NOTOUCH).
    match s.get(key, now) {
        None => ctx.out.null(),
        Some(e) => ctx
            .out
            .int(crate::alloc::usable(e.heap_size()) + PER_KEY as i64),
    }
    Ok(())
}

/// glibc's view: (bytes in use in chunks, bytes held from the system).
fn mallinfo() -> (u64, u64) {
    #[allow(unsafe_code)]
    // SAFETY: mallinfo2 only reads malloc's own statistics.
    let m = unsafe { libc::mallinfo2() };
    ((m.uordblks + m.hblkhd) as u64, (m.arena + m.hblkhd) as u64)
}

fn purge() {
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The parts MEMORY STATS and DOCTOR report.
struct Parts {
    peak: u64,
    total: u64,
    startup: u64,
    backlog: u64,
    clients: u64,
    aof: u64,
    lua: u64,
    functions: u64,
    /// (db, slot table bytes) of every DB with keys.
    dbs: Vec<(usize, u64)>,
    keys: u64,
}

impl Parts {
    fn overhead(&self) -> u64 {
        self.startup
            + self.backlog
            + self.clients
            + self.aof
            + self.lua
            + self.functions
            + self.dbs.iter().map(|d| d.1).sum::<u64>()
    }
}

fn parts(ctx: &Ctx) -> Parts {
    let srv = ctx.srv;
    let total = if crate::alloc::installed() {
        crate::alloc::used()
    } else {
        crate::cmd::info::estimate_memory(ctx).used()
    };
    let peak = srv
        .stats
        .used_memory_peak
        .fetch_max(total, std::sync::atomic::Ordering::Relaxed)
        .max(total);
    let clients = srv
        .clients
        .all()
        .iter()
        .map(|c| (c.fixed_mem() + c.pending_output()) as u64)
        .sum();
    let ks = ctx.ks();
    let mut dbs = Vec::new();
    let mut keys = 0;
    for i in 0..ks.db_count() {
        let Some(db) = ks.db(i) else { continue };
        if db.is_empty() {
            continue;
        }
        keys += db.len() as u64;
        let mut bytes = 0u64;
        for s in 0..protocol::slot::SLOTS {
            if db.slot_len(s) != 0 {
                bytes += ks.lock_slot(db, s).num_buckets() as u64 * 33;
            }
        }
        dbs.push((i, bytes));
    }
    Parts {
        peak,
        total,
        startup: srv
            .stats
            .used_memory_startup
            .load(std::sync::atomic::Ordering::Relaxed),
        backlog: srv.prop.repl_buffer_bytes().1,
        clients,
        aof: srv.persist.aof.writer.pending_bytes(),
        lua: srv
            .scripts
            .lua_memory
            .load(std::sync::atomic::Ordering::Relaxed) as u64,
        functions: srv
            .functions
            .libraries()
            .iter()
            .map(|l| l.code.len() as u64)
            .sum(),
        dbs,
        keys,
    }
}

/// Redis reports these ratios as C floats printed with `%.17g`.
fn float(out: &mut protocol::resp::Reply, v: f64) {
    let mut b = Vec::new();
    protocol::number::write_f64(&mut b, v as f32 as f64);
    out.double_text(&b);
}

fn stats(ctx: &mut Ctx) {
    let p = parts(ctx);
    let (active, resident) = mallinfo();
    let rss = rss_bytes();
    let overhead = p.overhead();
    let net = p.total.saturating_sub(p.startup);
    let dataset = p.total.saturating_sub(overhead);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let out = &mut *ctx.out;
    out.map(27 + p.dbs.len());
    let kv = |out: &mut protocol::resp::Reply, k: &str, v: u64| {
        out.bulk(k.as_bytes());
        out.int(v as i64);
    };
    kv(out, "peak.allocated", p.peak);
    kv(out, "total.allocated", p.total);
    kv(out, "startup.allocated", p.startup);
    kv(out, "replication.backlog", p.backlog);
    kv(out, "clients.slaves", 0);
    kv(out, "clients.normal", p.clients);
    kv(out, "cluster.links", 0);
    kv(out, "aof.buffer", p.aof);
    kv(out, "lua.caches", p.lua);
    kv(out, "functions.caches", p.functions);
    for (db, bytes) in &p.dbs {
        out.bulk(format!("db.{db}").as_bytes());
        out.map(2);
        kv(out, "overhead.hashtable.main", *bytes);
        kv(out, "overhead.hashtable.expires", 0);
    }
    kv(out, "overhead.total", overhead);
    kv(out, "keys.count", p.keys);
    kv(
        out,
        "keys.bytes-per-key",
        net.checked_div(p.keys).unwrap_or(0),
    );
    kv(out, "dataset.bytes", dataset);
    out.bulk(b"dataset.percentage");
    float(out, ratio(dataset, net) * 100.0);
    out.bulk(b"peak.percentage");
    float(out, ratio(p.total, p.peak) * 100.0);
    kv(out, "allocator.allocated", p.total);
    kv(out, "allocator.active", active);
    kv(out, "allocator.resident", resident);
    out.bulk(b"allocator-fragmentation.ratio");
    float(out, ratio(active, p.total));
    kv(
        out,
        "allocator-fragmentation.bytes",
        active.saturating_sub(p.total),
    );
    out.bulk(b"allocator-rss.ratio");
    float(out, ratio(resident, active));
    kv(out, "allocator-rss.bytes", resident.saturating_sub(active));
    out.bulk(b"rss-overhead.ratio");
    float(out, ratio(rss, resident));
    kv(out, "rss-overhead.bytes", rss.saturating_sub(resident));
    out.bulk(b"fragmentation");
    float(out, ratio(rss, p.total));
    kv(out, "fragmentation.bytes", rss.saturating_sub(p.total));
}

/// Below this much allocated memory the doctor has nothing to say.
const DOCTOR_MIN: u64 = 5 << 20;

fn doctor(ctx: &Ctx) -> String {
    let p = parts(ctx);
    if p.total < DOCTOR_MIN {
        return format!(
            "This server uses {} in all, too little to judge how it uses memory. \
             Ask again once it holds some data.\n",
            human(p.total)
        );
    }
    let rss = rss_bytes();
    let mut issues = Vec::new();
    if p.peak as f64 > p.total as f64 * 1.5 {
        issues.push(format!(
            "* Peak: memory reached {} once, {:.1} times what is used now ({}). \
             The allocator may keep much of the difference: MEMORY PURGE returns \
             what it can to the system.",
            human(p.peak),
            p.peak as f64 / p.total as f64,
            human(p.total)
        ));
    }
    if rss > 10 << 20 && rss as f64 > p.total as f64 * 1.4 {
        issues.push(format!(
            "* Fragmentation: the process holds {} of RAM for {} of data and \
             structures ({:.2} times as much). Many small deletions among \
             long-lived keys leave holes; MEMORY PURGE may help.",
            human(rss),
            human(p.total),
            rss as f64 / p.total as f64
        ));
    }
    let big_clients = ctx
        .srv
        .clients
        .all()
        .iter()
        .filter(|c| c.pending_output() > 1 << 20)
        .count();
    if big_clients > 0 {
        issues.push(format!(
            "* Client buffers: {big_clients} connection(s) hold more than 1 MB of \
             replies they have not read (clients total {}). Check \
             client-output-buffer-limit and the clients' reading.",
            human(p.clients)
        ));
    }
    let max = ctx.srv.evict.maxmemory();
    if max != 0 && p.total > max {
        issues.push(format!(
            "* Limit: {} in use is over maxmemory ({}); policy {:?}.",
            human(p.total),
            human(max),
            ctx.srv.evict.policy()
        ));
    }
    if issues.is_empty() {
        return format!(
            "Nothing to report: {} in use, {} resident, peak {}.\n",
            human(p.total),
            human(rss),
            human(p.peak)
        );
    }
    format!("Memory report:\n\n{}\n", issues.join("\n\n"))
}

fn malloc_stats() -> String {
    #[allow(unsafe_code)]
    // SAFETY: mallinfo2 only reads malloc's own statistics.
    let m = unsafe { libc::mallinfo2() };
    format!(
        "allocator: glibc malloc, counted by codis-server (alloc.rs)\n\
         counted.allocated: {}\n\
         arena.bytes: {}\n\
         mmapped.bytes: {}\n\
         mmapped.chunks: {}\n\
         in-use.bytes: {}\n\
         free.bytes: {}\n\
         free.chunks: {}\n\
         fastbin.free.bytes: {}\n\
         top.releasable.bytes: {}\n",
        crate::alloc::used(),
        m.arena,
        m.hblkhd,
        m.hblks,
        m.uordblks,
        m.fordblks,
        m.ordblks,
        m.fsmblks,
        m.keepcost
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness as T;

    #[test]
    fn usage_arguments() {
        let mut t = T::new();
        t.run("SET k hello");
        assert_eq!(t.run("MEMORY USAGE nokey"), "$-1\r\n");
        let n = t.run("MEMORY USAGE k");
        assert!(n.starts_with(':'), "{n}");
        assert_eq!(t.run("MEMORY USAGE k SAMPLES 0"), n);
        assert_eq!(t.run("MEMORY USAGE k samples -1"), "-ERR syntax error\r\n");
        assert_eq!(
            t.run("MEMORY USAGE k SAMPLES x"),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(t.run("MEMORY USAGE k foo"), "-ERR syntax error\r\n");
        assert_eq!(t.run("MEMORY USAGE k SAMPLES"), "-ERR syntax error\r\n");
        t.run("RPUSH big a b c d e f g h i j");
        let small: i64 = t.run("MEMORY USAGE k")[1..].trim().parse().unwrap();
        t.run("SET k2 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        let longer: i64 = t.run("MEMORY USAGE k2")[1..].trim().parse().unwrap();
        assert!(longer >= small + 100, "{small} {longer}");
    }

    #[test]
    fn stats_doctor_purge() {
        let mut t = T::new();
        t.run("SET k v");
        let s = t.run("MEMORY STATS");
        let text = &s;
        for f in [
            "peak.allocated",
            "db.0",
            "overhead.hashtable.main",
            "keys.count",
            "dataset.percentage",
            "fragmentation.bytes",
        ] {
            assert!(text.contains(f), "{f} in {text}");
        }
        assert!(s.starts_with("*56\r\n"), "{text}");
        assert_eq!(t.run("MEMORY PURGE"), "+OK\r\n");
        assert!(t.run("MEMORY DOCTOR").starts_with('$'));
        assert!(t.run("MEMORY MALLOC-STATS").starts_with('$'));
    }
}
