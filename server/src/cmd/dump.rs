//! DUMP / RESTORE and the value ⇄ payload conversions every migration path
//! shares (codis.md §2.5; payload format in `protocol::rdb`).

use protocol::command::CmdId;

use crate::exec::Handler;

pub fn handler(id: CmdId) -> Option<Handler> {
    let _ = id;
    None
}
