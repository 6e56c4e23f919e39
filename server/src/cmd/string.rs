//! String commands (Redis 7.0 `t_string.c` behaviour): GET, SET and friends.

use protocol::command::CmdId;

use crate::db::{Entry, KeyAccess};
use crate::errors::{CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Get => get,
        CmdId::Set => set,
        _ => return None,
    })
}

fn get(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    match s.get(key, ctx.now) {
        None => {
            ctx.hit(false);
            ctx.out.null();
        }
        Some(e) => {
            let v = e.as_str().ok_or(CmdError::WrongType)?;
            ctx.srv.stats.keyspace_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ctx.out.bulk(v);
        }
    }
    Ok(())
}

fn set(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (key, val) = (argv[1], argv[2]);
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let lru = ctx.lru();
    let db = ctx.db();
    let mut s = ctx.ks().lock_key(db, key);
    s.put(Entry::new_str(key, val, None, lru));
    ctx.out.ok();
    Ok(())
}
