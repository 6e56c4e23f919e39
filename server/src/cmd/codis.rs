//! Codis inspection commands that read the per-slot structure (codis.md §2.4):
//! SLOTSHASHKEY and SLOTSINFO. The migration family comes with its own issue.

use protocol::command::CmdId;
use protocol::slot::{SLOTS, slot_of};

use crate::errors::{CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Slotshashkey => slotshashkey,
        CmdId::Slotsinfo => slotsinfo,
        _ => return None,
    })
}

/// Codis parses slot arguments as a long that must fit an int32
/// (codis.md §2.3).
fn int32_arg(a: &[u8]) -> Result<i64, CmdError> {
    let v = protocol::number::parse_i64(a).ok_or(CmdError::NotInteger)?;
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        return Err(CmdError::OutOfRange);
    }
    Ok(v)
}

/// SLOTSHASHKEY [key ...]: the slot of each key.
fn slotshashkey(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let keys = argv.get(1..).unwrap_or(&[]);
    ctx.out.array(keys.len());
    for k in keys {
        ctx.out.int(slot_of(k) as i64);
    }
    Ok(())
}

/// SLOTSINFO [start [count]]: `[slot, keys]` for the non-empty slots.
fn slotsinfo(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::msg(crate::errors::wrong_arity("slotsinfo")));
    }
    let mut start = 0i64;
    let mut count = SLOTS as i64;
    if let Some(a) = argv.get(1) {
        start = int32_arg(a)?;
        if !(0..SLOTS as i64).contains(&start) {
            return Err(CmdError::msg(format!("ERR invalid slot number = {start}")));
        }
    }
    if let Some(a) = argv.get(2) {
        count = int32_arg(a)?;
        if count < 0 {
            return Err(CmdError::msg(format!("ERR invalid slot count = {count}")));
        }
    }
    let end = (start + count).min(SLOTS as i64) as usize;
    let db = ctx.db();
    let found: Vec<(usize, usize)> = (start as usize..end)
        .filter_map(|s| Some((s, db.slot_len(s))).filter(|&(_, n)| n > 0))
        .collect();
    ctx.out.array(found.len());
    for (s, n) in found {
        ctx.out.array(2);
        ctx.out.int(s as i64);
        ctx.out.int(n as i64);
    }
    Ok(())
}
