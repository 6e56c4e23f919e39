//! Async ("semi-async") migration commands, source and target side, and
//! SLOTSMGRT-EXEC-WRAPPER (codis.md §2.7). The engine is migrate/asyncm.rs.

use protocol::command::CmdId;

use crate::exec::Handler;

pub fn handler(id: CmdId) -> Option<Handler> {
    let _ = id;
    None
}
