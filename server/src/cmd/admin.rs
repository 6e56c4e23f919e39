//! Server commands: INFO, DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, COMMAND,
//! CONFIG, SHUTDOWN, DEBUG, MONITOR, LASTSAVE.

use protocol::command::CmdId;

use crate::errors::CmdResult;
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Dbsize => dbsize,
        CmdId::Flushall => flushall,
        CmdId::Flushdb => flushdb,
        _ => return None,
    })
}

fn dbsize(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    let n = ctx.db().len();
    ctx.out.int(n as i64);
    Ok(())
}

fn flushall(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    for i in 0..ctx.srv.ks.db_count() {
        ctx.srv.ks.flush_db(i);
    }
    ctx.out.ok();
    Ok(())
}

fn flushdb(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    ctx.srv.ks.flush_db(ctx.client.db);
    ctx.out.ok();
    Ok(())
}
