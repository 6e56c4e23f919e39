//! The slow log: commands whose execution took at least
//! `slowlog-log-slower-than` microseconds (Redis' slowlog.c), newest first,
//! at most `slowlog-max-len` of them, and the SLOWLOG command.
//!
//! What an entry keeps mirrors Redis 7.0: an id that RESET does not
//! restart, the unix time, the duration in µs, at most 32 arguments (the
//! last saying how many more there were), each cut at 128 bytes (`... (N
//! more bytes)`), secrets redacted as MONITOR shows them, the client's
//! address and name. EXEC is not logged (its commands are, one by one).
//!
//! Cost on the call path: one atomic load and a compare per command; the
//! lock is taken only for a command over the threshold.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use protocol::command::{CmdId, CommandSpec, flags};

use crate::client::Client;
use crate::cmd::conn::help_reply;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

/// Arguments an entry keeps (Redis' SLOWLOG_ENTRY_MAX_ARGC).
const MAX_ARGC: usize = 32;
/// Bytes an argument keeps (Redis' SLOWLOG_ENTRY_MAX_STRING).
const MAX_STRING: usize = 128;

struct Entry {
    id: u64,
    unix_secs: u64,
    micros: u64,
    argv: Vec<Vec<u8>>,
    peer: String,
    name: Vec<u8>,
}

/// The server's slow log.
pub struct SlowLog {
    entries: Mutex<VecDeque<Entry>>,
    next_id: AtomicU64,
    /// `slowlog-log-slower-than` (µs; negative: off).
    threshold: AtomicI64,
    /// `slowlog-max-len`.
    max_len: AtomicUsize,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            entries: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
            threshold: AtomicI64::new(-1),
            max_len: AtomicUsize::new(0),
        }
    }
}

impl SlowLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes up `slowlog-log-slower-than` and `slowlog-max-len` (start-up,
    /// CONFIG SET). A shorter max-len applies at the next entry, as in
    /// Redis (so not while the log is off).
    pub fn configure(&self, threshold_us: i64, max_len: u64) {
        self.threshold.store(threshold_us, Relaxed);
        let max = usize::try_from(max_len).unwrap_or(usize::MAX);
        self.max_len.store(max, Relaxed);
    }

    /// Logs `argv` (run by `client`) if it took `nanos` or more than the
    /// threshold.
    #[inline]
    pub fn consider(
        &self,
        client: &Client,
        id: CmdId,
        spec: &CommandSpec,
        argv: &[&[u8]],
        nanos: u64,
    ) {
        let t = self.threshold.load(Relaxed);
        let micros = nanos / 1000;
        if t < 0 || (micros as i64) < t || spec.has(flags::SKIP_SLOWLOG) {
            return;
        }
        self.push(client, id, argv, micros);
    }

    #[cold]
    fn push(&self, client: &Client, id: CmdId, argv: &[&[u8]], micros: u64) {
        let kept = argv.len().min(MAX_ARGC);
        let mut args = Vec::with_capacity(kept);
        for (i, a) in argv.iter().take(kept).enumerate() {
            if kept != argv.len() && i == kept - 1 {
                args.push(format!("... ({} more arguments)", argv.len() - kept + 1).into_bytes());
            } else if crate::monitor::redacted(id, argv, i) {
                args.push(b"(redacted)".to_vec());
            } else if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                args.push(s);
            } else {
                args.push(a.to_vec());
            }
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Relaxed),
            unix_secs: crate::db::now_ms() / 1000,
            micros,
            argv: args,
            peer: client.info.addr.clone(),
            name: client
                .info
                .name
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        let max = self.max_len.load(Relaxed);
        let mut l = self.lock();
        l.push_front(entry);
        l.truncate(max);
    }
}

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Slowlog => slowlog,
        _ => return None,
    })
}

/// Our own wording (the first and last lines are the common frame of
/// every HELP reply).
const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    The <count> newest entries (10 when omitted, every entry with -1), each",
    "    as: id, unix time, duration in microseconds, the arguments, the client's",
    "    address and its name.",
    "LEN",
    "    How many entries the slow log holds.",
    "RESET",
    "    Empty the slow log (ids go on counting).",
    "HELP",
    "    Print this help.",
];

fn slowlog(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    // The gate has resolved the subcommand and checked its arity.
    let log = &ctx.srv.slowlog;
    match ctx.spec.short_name() {
        "help" => help_reply(ctx, SLOWLOG_HELP),
        "len" => {
            let n = log.lock().len();
            ctx.out.int(n as i64);
        }
        "reset" => {
            log.lock().clear();
            ctx.out.ok();
        }
        "get" if argv.len() <= 3 => {
            let count = match argv.get(2) {
                None => 10,
                Some(a) => match crate::cmd::util::int_arg(a) {
                    Ok(-1) => usize::MAX,
                    Ok(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                    _ => return Err(CmdError::Static(errors::SLOWLOG_COUNT)),
                },
            };
            let l = log.lock();
            let out = &mut *ctx.out;
            out.array(l.len().min(count));
            for e in l.iter().take(count) {
                out.array(6);
                out.int(e.id as i64);
                out.int(e.unix_secs as i64);
                out.int(e.micros as i64);
                out.array(e.argv.len());
                for a in &e.argv {
                    out.bulk(a);
                }
                out.bulk(e.peer.as_bytes());
                out.bulk(&e.name);
            }
        }
        _ => {
            return Err(CmdError::Msg(errors::subcommand_syntax("SLOWLOG", argv[1])));
        }
    }
    Ok(())
}
