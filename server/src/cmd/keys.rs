//! Keyspace commands (Redis 7.0 `db.c`/`expire.c` behaviour).

use protocol::command::CmdId;

use crate::exec::Handler;

pub fn handler(id: CmdId) -> Option<Handler> {
    let _ = id;
    None
}
