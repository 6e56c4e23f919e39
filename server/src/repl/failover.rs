//! FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms] (Redis 7.0's
//! coordinated failover, `failoverCommand` / `updateFailoverStatus`): the
//! master pauses writes, waits (cron) until a replica (the named one, or
//! any) acknowledged its whole stream, then becomes that replica's replica
//! and asks it `PSYNC <replid> <offset> FAILOVER`: the replica promotes
//! itself and continues the old master with a partial resync. Owns the
//! failover's state; the handshake's part is in replica.rs, the PSYNC
//! side in cmd/repl.rs.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::errors::{self, CmdError};
use crate::notice;
use crate::server::Server;

pub const NONE: u8 = 0;
pub const WAIT_FOR_SYNC: u8 = 1;
pub const IN_PROGRESS: u8 = 2;

#[derive(Default)]
pub struct Failover {
    pub state: u8,
    /// The designated replica (or the first that caught up).
    pub target: Option<(String, u16)>,
    /// When waiting ends (unix ms; 0 = never).
    pub end_ms: u64,
    pub force: bool,
}

fn lock(srv: &Server) -> std::sync::MutexGuard<'_, Failover> {
    srv.repl.failover.lock().unwrap_or_else(|p| p.into_inner())
}

/// INFO's `master_failover_state`.
pub fn state_name(srv: &Server) -> &'static str {
    match lock(srv).state {
        WAIT_FOR_SYNC => "waiting-for-sync",
        IN_PROGRESS => "failover-in-progress",
        _ => "no-failover",
    }
}

pub fn state(srv: &Server) -> u8 {
    lock(srv).state
}

/// The failover ended (either way): writes resume.
pub fn clear(srv: &Server) {
    *lock(srv) = Failover::default();
    srv.pause.hold(crate::pause::Hold::Failover, false);
}

/// Abandons the failover in progress; a master that had already turned
/// replica becomes a master again.
pub fn abort(srv: &Arc<Server>, why: &str) {
    let (state, target) = {
        let f = lock(srv);
        (f.state, f.target.clone())
    };
    if state == NONE {
        return;
    }
    match target {
        Some((h, p)) => notice!("FAILOVER to {h}:{p} aborted: {why}"),
        None => notice!("FAILOVER to any replica aborted: {why}"),
    }
    if state == IN_PROGRESS {
        super::replica::set_master(srv, None);
    }
    clear(srv);
}

/// The command (parsed and checked as Redis does).
pub fn command(srv: &Arc<Server>, argv: &[&[u8]]) -> Result<(), CmdError> {
    use crate::cmd::util::is;
    if argv.len() == 2 && is(argv[1], "abort") {
        if state(srv) == NONE {
            return Err(CmdError::msg("ERR No failover in progress."));
        }
        abort(srv, "Failover manually aborted");
        return Ok(());
    }
    let (mut timeout, mut force, mut target) = (0i64, false, None);
    let mut j = 1;
    while j < argv.len() {
        if is(argv[j], "timeout") && j + 1 < argv.len() && timeout == 0 {
            timeout = protocol::number::parse_i64(argv[j + 1]).ok_or(CmdError::NotInteger)?;
            if timeout <= 0 {
                return Err(CmdError::msg("ERR FAILOVER timeout must be greater than 0"));
            }
            j += 2;
        } else if is(argv[j], "to") && j + 2 < argv.len() && target.is_none() {
            let port = protocol::number::parse_i64(argv[j + 2]).ok_or(CmdError::NotInteger)?;
            target = Some((String::from_utf8_lossy(argv[j + 1]).into_owned(), port));
            j += 3;
        } else if is(argv[j], "force") && !force {
            force = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if state(srv) != NONE {
        return Err(CmdError::msg("ERR FAILOVER already in progress."));
    }
    if srv.repl.link.is_replica() {
        return Err(CmdError::msg(
            "ERR FAILOVER is not valid when server is a replica.",
        ));
    }
    let replicas = srv.repl.replicas();
    if replicas.is_empty() {
        return Err(CmdError::msg("ERR FAILOVER requires connected replicas."));
    }
    if force && (timeout == 0 || target.is_none()) {
        return Err(CmdError::msg(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
        ));
    }
    let target = match target {
        Some((host, port)) => {
            let Some(r) = replicas.iter().find(|r| r.ip == host && r.port == port) else {
                return Err(CmdError::msg(
                    "ERR FAILOVER target HOST and PORT is not a replica.",
                ));
            };
            if r.state.load(Relaxed) != super::ONLINE {
                return Err(CmdError::msg("ERR FAILOVER target replica is not online."));
            }
            notice!("FAILOVER requested to {host}:{port}.");
            Some((host, port as u16))
        }
        None => {
            notice!("FAILOVER requested to any replica.");
            None
        }
    };
    *lock(srv) = Failover {
        state: WAIT_FOR_SYNC,
        target,
        end_ms: if timeout > 0 {
            crate::db::now_ms() + timeout as u64
        } else {
            0
        },
        force,
    };
    srv.pause.hold(crate::pause::Hold::Failover, true);
    Ok(())
}

/// The cron's part: once the target (or any replica) acknowledged the
/// whole stream, hand over; past the timeout, force or give up.
pub fn cron(srv: &Arc<Server>, now_ms: u64) {
    let (target, end_ms, force) = {
        let f = lock(srv);
        if f.state != WAIT_FOR_SYNC {
            return;
        }
        (f.target.clone(), f.end_ms, f.force)
    };
    if end_ms != 0 && end_ms <= now_ms {
        if force && let Some((h, p)) = target {
            notice!("FAILOVER to {h}:{p} time out exceeded, failing over.");
            hand_over(srv, (h, p));
        } else {
            abort(srv, "Replica never caught up before timeout");
        }
        return;
    }
    let end = srv.prop.repl_offset();
    let caught_up = srv.repl.replicas().into_iter().find(|r| {
        r.state.load(Relaxed) == super::ONLINE
            && r.ack.load(Relaxed) == end
            && target
                .as_ref()
                .is_none_or(|(h, p)| r.ip == *h && r.port == *p as i64)
    });
    if let Some(r) = caught_up {
        notice!(
            "Failover target {}:{} is synced, failing over.",
            r.ip,
            r.port
        );
        hand_over(srv, (r.ip.clone(), r.port as u16));
    }
}

/// Becomes the target's replica; the handshake sends PSYNC … FAILOVER.
fn hand_over(srv: &Arc<Server>, target: (String, u16)) {
    {
        let mut f = lock(srv);
        f.state = IN_PROGRESS;
        f.target = Some(target.clone());
    }
    super::replica::set_master(srv, Some(target));
}

/// REPLICAOF is refused while a failover runs.
pub fn refuses_replicaof(srv: &Server) -> Result<(), CmdError> {
    if state(srv) != NONE {
        return Err(CmdError::msg(errors::REPLICAOF_FAILING_OVER));
    }
    Ok(())
}
