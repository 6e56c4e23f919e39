//! The master side's commands (Redis 7.0's `replication.c`): REPLCONF from
//! a replica's handshake, PSYNC and SYNC (the connection then belongs to
//! repl/), ROLE, and the replica side's REPLICAOF / SLAVEOF. Replies and error texts as redis-server 7.0.15's.

use std::sync::atomic::Ordering::Relaxed;

use protocol::command::CmdId;
use protocol::number::parse_i64;

use crate::cmd::util::is;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};
use crate::repl::{ONLINE, SyncRequest};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Replconf => replconf,
        CmdId::Psync => psync,
        CmdId::Sync => sync,
        CmdId::Role => role,
        CmdId::Replicaof | CmdId::Slaveof => replicaof,
        CmdId::Wait => wait,
        CmdId::Failover => failover,
        _ => return None,
    })
}

/// REPLCONF <option> <value> [<option> <value> …]. `ACK` and `GETACK`
/// get no reply (Redis: an ACK matters only on a replica's link, which
/// repl/ reads itself).
fn replconf(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    for pair in argv[1..].chunks(2) {
        let (opt, val) = (pair[0], pair[1]);
        if is(opt, "listening-port") {
            ctx.client.repl_listening_port = parse_i64(val).ok_or(CmdError::NotInteger)?;
        } else if is(opt, "capa") {
            if is(val, "psync2") {
                ctx.client.repl_capa_psync2 = true;
            } else if is(val, "eof") {
                ctx.client.repl_capa_eof = true;
            }
        } else if is(opt, "ip-address") {
            // The address a replica announces (`replica-announce-ip`) is
            // the one INFO, ROLE and FAILOVER TO name it by.
            ctx.client.repl_ip_address = Some(String::from_utf8_lossy(val).into_owned());
        } else if is(opt, "rdb-only") {
            // (A replica that only wants the snapshot: redis-cli --rdb.
            // It closes the link itself once it has the file.)
        } else if is(opt, "getack") {
            // Our master asks where we are: the link ACKs after this.
            if ctx.client.from_master {
                ctx.client.ack_requested = true;
            }
            return Ok(());
        } else if is(opt, "ack") {
            return Ok(());
        } else {
            return Err(CmdError::Msg(format!(
                "ERR Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    ctx.out.ok();
    Ok(())
}

/// PSYNC <replid> <offset>: a partial resynchronization when our backlog
/// holds the offset, else a full one; answered by repl/ once the
/// connection is handed over.
fn psync(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    use crate::repl::failover;
    if argv.len() > 3 && is(argv[3], "failover") {
        // The old master of a coordinated failover: if it continues our
        // history, we are its new master.
        crate::warning!(
            "Failover request received for replid {}.",
            String::from_utf8_lossy(argv[1])
        );
        if !ctx.srv.repl.link.is_replica() {
            return Err(CmdError::msg(
                "ERR PSYNC FAILOVER can't be sent to a master.",
            ));
        }
        if argv[1] != ctx.srv.repl.replid().as_bytes() {
            return Err(CmdError::msg(
                "ERR PSYNC FAILOVER replid must match my replid.",
            ));
        }
        crate::repl::replica::set_master(&ctx.srv.arc(), None);
        crate::notice!(
            "MASTER MODE enabled (failover request from 'id={}')",
            ctx.client.id
        );
    }
    if failover::state(ctx.srv) != failover::NONE {
        return Err(CmdError::msg(errors::NOMASTERLINK_FAILING_OVER));
    }
    if ctx.srv.repl.link.is_replica() && !ctx.srv.repl.link.up() {
        return Err(CmdError::msg(errors::NOMASTERLINK));
    }
    let offset = parse_i64(argv[2]).ok_or(CmdError::NotInteger)?;
    ctx.client.sync = Some(SyncRequest {
        psync: true,
        replid: argv[1].to_vec(),
        offset,
        psync2: ctx.client.repl_capa_psync2,
        eof: ctx.client.repl_capa_eof,
    });
    Ok(())
}

/// SYNC: the old protocol (the RDB payload with no `+FULLRESYNC` first).
fn sync(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    if ctx.srv.repl.link.is_replica() && !ctx.srv.repl.link.up() {
        return Err(CmdError::msg(errors::NOMASTERLINK));
    }
    ctx.client.sync = Some(SyncRequest {
        psync: false,
        replid: b"?".to_vec(),
        offset: -1,
        psync2: false,
        eof: false,
    });
    Ok(())
}

/// ROLE on a master: `master`, the replication offset, and each online
/// replica's ip, port and acknowledged offset (as bulk strings).
fn role(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    let link = &ctx.srv.repl.link;
    if let Some((host, port)) = link.master() {
        use crate::repl::replica::{CONNECT, CONNECTED, CONNECTING, HANDSHAKE, TRANSFER};
        let state = link.state.load(Relaxed);
        ctx.out.array(5);
        ctx.out.bulk(b"slave");
        ctx.out.bulk(host.as_bytes());
        ctx.out.int(port as i64);
        ctx.out.bulk(match state {
            CONNECT => b"connect".as_slice(),
            CONNECTING => b"connecting",
            HANDSHAKE => b"handshake",
            TRANSFER => b"sync",
            CONNECTED => b"connected",
            _ => b"unknown",
        });
        ctx.out.int(if state == CONNECTED {
            ctx.srv.prop.repl_offset() as i64
        } else {
            -1
        });
        return Ok(());
    }
    let online: Vec<_> = ctx
        .srv
        .repl
        .replicas()
        .into_iter()
        .filter(|r| r.state.load(Relaxed) == ONLINE)
        .collect();
    ctx.out.array(3);
    ctx.out.bulk(b"master");
    ctx.out.int(ctx.srv.prop.repl_offset() as i64);
    ctx.out.array(online.len());
    for r in online {
        ctx.out.array(3);
        ctx.out.bulk(r.ip.as_bytes());
        ctx.out.bulk_int(r.port);
        ctx.out.bulk_int(r.ack.load(Relaxed) as i64);
    }
    Ok(())
}

/// REPLICAOF host port | NO ONE (SLAVEOF: the same).
fn replicaof(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    use crate::repl::replica::{Changed, set_master};
    let srv = ctx.srv.arc();
    if is(argv[1], "no") && is(argv[2], "one") {
        crate::repl::failover::refuses_replicaof(&srv)?;
        if srv.repl.link.is_replica() {
            set_master(&srv, None);
        }
        ctx.out.ok();
        return Ok(());
    }
    if ctx.client.info.replica.load(Relaxed) {
        return Err(CmdError::msg(
            "ERR Command is not valid when client is a replica.",
        ));
    }
    crate::repl::failover::refuses_replicaof(ctx.srv)?;
    let port = parse_i64(argv[2])
        .filter(|p| (0..=65535).contains(p))
        .ok_or(CmdError::msg(errors::INVALID_MASTER_PORT))?;
    let host = String::from_utf8_lossy(argv[1]).into_owned();
    match set_master(&srv, Some((host.clone(), port as u16))) {
        Changed::AlreadyConnected => {
            crate::notice!(
                "REPLICAOF would result into synchronization with the master we are already connected with. No operation performed."
            );
            ctx.out.simple(errors::REPLICAOF_ALREADY.as_bytes());
        }
        Changed::Ok => {
            crate::notice!(
                "REPLICAOF {host}:{port} enabled (user request from 'id={}')",
                ctx.client.id
            );
            ctx.out.ok();
        }
    }
    Ok(())
}

/// WAIT numreplicas timeout: until that many replicas acknowledged this
/// client's last change, or timeout ms (0: forever); the reply is how many
/// did. In a transaction it does not wait.
fn wait(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if ctx.srv.repl.link.is_replica() {
        return Err(CmdError::msg(errors::WAIT_ON_REPLICA));
    }
    let want = parse_i64(argv[1]).ok_or(CmdError::NotInteger)?;
    let timeout = parse_i64(argv[2]).ok_or(CmdError::msg(errors::PAUSE_TIMEOUT_NOT_INT))?;
    if timeout < 0 {
        return Err(CmdError::msg(errors::TIMEOUT_NEGATIVE));
    }
    let offset = ctx.client.woff;
    let acked = ctx.srv.repl.acked_by(offset);
    if ctx.client.in_exec || acked as i64 >= want {
        ctx.out.int(acked as i64);
        return Ok(());
    }
    ctx.client.pending = Some(crate::repl::wait_for_acks(
        ctx.srv.arc(),
        offset,
        want.max(0) as usize,
        timeout as u64,
    ));
    Ok(())
}

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms] (repl/failover.rs).
fn failover(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    crate::repl::failover::command(&ctx.srv.arc(), argv)?;
    ctx.out.ok();
    Ok(())
}
