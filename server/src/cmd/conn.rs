//! Connection commands: PING, ECHO, SELECT, QUIT, AUTH, HELLO, RESET, CLIENT.

use protocol::command::CmdId;

use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Ping => ping,
        CmdId::Echo => echo,
        CmdId::Select => select,
        CmdId::Quit => quit,
        _ => return None,
    })
}

fn ping(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    match argv.len() {
        1 => ctx.out.simple(b"PONG"),
        2 => ctx.out.bulk(argv[1]),
        _ => return Err(CmdError::msg(errors::wrong_arity("ping"))),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(argv[1]);
    Ok(())
}

fn select(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let idx = protocol::number::parse_i64(argv[1]).ok_or(CmdError::NotInteger)?;
    if idx < 0 || idx as usize >= ctx.srv.ks.db_count() {
        return Err(CmdError::Static(errors::INVALID_DB));
    }
    ctx.client.select(idx as usize);
    ctx.out.ok();
    Ok(())
}

fn quit(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    ctx.client.close_after_reply = true;
    ctx.out.ok();
    Ok(())
}
