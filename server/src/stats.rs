//! Server statistics for INFO: per-command calls/usec/rejected/failed
//! (`commandstats`, indexed by the command table), error counts by first word
//! (`errorstats`), and global counters. Rejected = refused by the gate before
//! running (arity, auth, unknown subcommand); failed = the handler replied with
//! an error, as Redis 7.0 counts them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use protocol::command::{COMMANDS, CommandSpec};

#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    /// Time spent in the command, in nanoseconds (INFO shows microseconds).
    pub nsec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
}

/// Monotonic nanoseconds for command timing. `Instant` arithmetic costs
/// about 60 instructions per command (checked `Timespec` subtraction and
/// `Duration` conversion); a plain `u64` from the same vDSO clock costs a
/// subtraction.
#[inline]
#[allow(unsafe_code)]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Index of a (sub)command into the stats array: top-level commands first, in
/// table order, then every subcommand.
pub struct StatIndex {
    sub_offset: Vec<usize>,
    pub specs: Vec<&'static CommandSpec>,
}

impl StatIndex {
    fn new() -> Self {
        let mut specs: Vec<&'static CommandSpec> = COMMANDS.iter().collect();
        let mut sub_offset = Vec::with_capacity(COMMANDS.len());
        for c in COMMANDS {
            sub_offset.push(specs.len());
            specs.extend(c.subcommands.iter());
        }
        StatIndex { sub_offset, specs }
    }

    pub fn top(&self, id: usize) -> usize {
        id
    }

    /// How many (sub)commands the table has (this index's length).
    pub fn len_of_table() -> usize {
        COMMANDS.len() + COMMANDS.iter().map(|c| c.subcommands.len()).sum::<usize>()
    }

    pub fn sub(&self, id: usize, sub: usize) -> usize {
        self.sub_offset.get(id).copied().unwrap_or(0) + sub
    }
}

pub struct Stats {
    pub index: StatIndex,
    pub cmds: Vec<CmdStat>,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub total_error_replies: AtomicU64,
    pub total_commands: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Bytes of the replication stream read from our master / written to
    /// our replicas (INFO `total_net_repl_*_bytes`).
    pub net_repl_input_bytes: AtomicU64,
    pub net_repl_output_bytes: AtomicU64,
    pub expired_keys: AtomicU64,
    pub unexpected_error_replies: AtomicU64,
    /// Instantaneous ops/sec, updated by the cron from samples.
    pub inst_ops: AtomicU64,
    pub inst_in_kbps: AtomicU64,
    pub inst_out_kbps: AtomicU64,
    /// Highest `used_memory` INFO has reported (reset by CONFIG RESETSTAT).
    pub used_memory_peak: AtomicU64,
    /// The allocator's count once the server was set up (INFO
    /// `used_memory_startup`).
    pub used_memory_startup: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        let index = StatIndex::new();
        let cmds = (0..index.specs.len()).map(|_| CmdStat::default()).collect();
        Stats {
            index,
            cmds,
            errors: Mutex::new(BTreeMap::new()),
            total_error_replies: AtomicU64::new(0),
            total_commands: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            net_repl_input_bytes: AtomicU64::new(0),
            net_repl_output_bytes: AtomicU64::new(0),
            expired_keys: AtomicU64::new(0),
            unexpected_error_replies: AtomicU64::new(0),
            inst_ops: AtomicU64::new(0),
            inst_in_kbps: AtomicU64::new(0),
            inst_out_kbps: AtomicU64::new(0),
            used_memory_peak: AtomicU64::new(0),
            used_memory_startup: AtomicU64::new(0),
        }
    }

    /// Counts an error reply by its first word (`ERR`, `WRONGTYPE`, ...).
    pub fn count_error(&self, text: &[u8]) {
        self.total_error_replies.fetch_add(1, Relaxed);
        let word = text.split(|&c| c == b' ').next().unwrap_or(b"ERR");
        let word = String::from_utf8_lossy(word).into_owned();
        let mut m = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        // Redis caps distinct error codes at 128 and then stops adding new ones.
        if m.len() >= 128 && !m.contains_key(&word) {
            return;
        }
        *m.entry(word).or_insert(0) += 1;
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for c in &self.cmds {
            c.calls.store(0, Relaxed);
            c.nsec.store(0, Relaxed);
            c.rejected.store(0, Relaxed);
            c.failed.store(0, Relaxed);
        }
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        for a in [
            &self.total_error_replies,
            &self.total_commands,
            &self.total_connections,
            &self.rejected_connections,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.net_repl_input_bytes,
            &self.net_repl_output_bytes,
            &self.expired_keys,
            &self.unexpected_error_replies,
        ] {
            a.store(0, Relaxed);
        }
    }
}
