//! bits commands (placeholder: its owner replaces this file).

use protocol::command::CmdId;

use crate::exec::Handler;

pub fn handler(id: CmdId) -> Option<Handler> {
    let _ = id;
    None
}
