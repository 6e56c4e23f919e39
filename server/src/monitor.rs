//! MONITOR: clients that receive every command the server runs, one line
//! each (Redis' `replicationFeedMonitors`): `+<sec>.<usec> [<db> <addr>]
//! "arg" ...`, escaped like `sdscatrepr`, fed by the gate after each call
//! through the clients' mailboxes (bounded by the normal class of
//! `client-output-buffer-limit`: Redis 7.0's `getClientType` counts a
//! monitor as a normal client). Admin commands
//! and those flagged `skip_monitor` are not shown; AUTH/HELLO passwords are
//! redacted.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use protocol::command::{CmdId, CommandSpec, flags};

use crate::client::{Client, ClientInfo};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};
use crate::server::Server;

/// The monitoring clients of a server.
#[derive(Default)]
pub struct Monitors {
    active: AtomicBool,
    list: Mutex<Vec<Arc<ClientInfo>>>,
}

impl Monitors {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<ClientInfo>>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether anyone monitors (the gate's only cost otherwise).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Number of monitoring clients.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&self, c: Arc<ClientInfo>) {
        let mut l = self.lock();
        l.push(c);
        self.active.store(true, Relaxed);
    }

    /// Drops a leaving client (called on every disconnect).
    pub fn forget(&self, id: u64) {
        if !self.active() {
            return;
        }
        let mut l = self.lock();
        l.retain(|c| c.id != id);
        self.active.store(!l.is_empty(), Relaxed);
    }
}

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Monitor => monitor,
        _ => return None,
    })
}

/// MONITOR: from now on the connection receives every command's line.
fn monitor(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    if ctx.client.in_exec {
        return Err(CmdError::Static(errors::MONITOR_DENY_BLOCKING));
    }
    if ctx.client.info.monitor.load(Relaxed) {
        // Already monitoring: nothing happens, no reply (as Redis).
        return Ok(());
    }
    ctx.client.info.monitor.store(true, Relaxed);
    ctx.srv.monitors.add(ctx.client.info.clone());
    ctx.out.ok();
    Ok(())
}

/// Whether a command's line is shown to monitors.
#[inline]
pub fn shown(spec: &CommandSpec) -> bool {
    !spec.has(flags::ADMIN) && !spec.has(flags::SKIP_MONITOR)
}

/// Sends the line of `argv`, run by `client` in DB `db`, to every monitor.
pub fn feed(srv: &Server, client: &Client, db: usize, id: CmdId, argv: &[&[u8]]) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = Vec::with_capacity(64);
    line.extend_from_slice(
        format!(
            "+{}.{:06} [{} {}] ",
            t.as_secs(),
            t.subsec_micros(),
            db,
            client.info.addr
        )
        .as_bytes(),
    );
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        if redacted(id, argv, i) {
            line.extend_from_slice(b"\"(redacted)\"");
        } else {
            repr(&mut line, a);
        }
    }
    line.extend_from_slice(b"\r\n");
    let limits = srv.config().client_output_buffer_limit;
    for m in srv.monitors.lock().iter() {
        m.deliver_limited(&line, &limits);
    }
}

/// Whether argument `i` of `argv` is a secret that MONITOR and SLOWLOG
/// show as `(redacted)` (Redis' `redactClientCommandArgument` callers):
/// AUTH's arguments, HELLO's `AUTH user pass`, the values of sensitive
/// parameters in CONFIG SET (MIGRATE is not a command of ours).
pub fn redacted(id: CmdId, argv: &[&[u8]], i: usize) -> bool {
    let after = |word: &[u8], n: usize| {
        argv.iter()
            .position(|a| a.eq_ignore_ascii_case(word))
            .is_some_and(|p| i > p && i <= p + n)
    };
    match id {
        CmdId::Auth => i >= 1,
        CmdId::Hello => after(b"auth", 2),
        CmdId::Config => {
            argv.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"set"))
                && i >= 3
                && i % 2 == 1
                && crate::config::Config::is_sensitive(argv[i - 1])
        }
        _ => false,
    }
}

/// `sdscatrepr`: a quoted string with `\\ \" \n \r \t \a \b` escaped and
/// other non-printable bytes as `\xHH`.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' | b'"' => {
                out.push(b'\\');
                out.push(c);
            }
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_that_never_reads_is_held_to_the_normal_class() {
        use crate::cmd::conn::harness::H;
        let mut h = H::new();
        let mut w = h.connect();
        let mut m = h.connect();
        h.text(&mut m, "MONITOR");
        // Redis 7.0 counts a monitor as a normal client; a replica limit
        // that would never trip shows the class.
        h.text(
            &mut w,
            "CONFIG SET client-output-buffer-limit \"normal 1000 0 0 replica 0 0 0\"",
        );
        let mut n = 0;
        while !m.client.info.killed.load(Relaxed) && n < 200 {
            h.text(&mut w, "SET some-key some-value");
            n += 1;
        }
        assert!(m.client.info.killed.load(Relaxed), "never closed");
        assert!(n < 40, "closed late: {n}");
        assert_eq!(h.text(&mut w, "PING"), "+PONG\r\n");
    }

    #[test]
    fn repr_escapes_like_redis() {
        let mut v = Vec::new();
        repr(&mut v, b"a\"b\\c\n\r\t\x07\x08\x00\xff z");
        assert_eq!(v, b"\"a\\\"b\\\\c\\n\\r\\t\\a\\b\\x00\\xff z\"");
    }
}
