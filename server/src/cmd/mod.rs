//! Command handlers, one module per family. Each family exposes
//! `handler(CmdId) -> Option<Handler>`; [`handler`] asks them in turn, and a
//! meta-test checks that every command of the table has exactly one handler.
//!
//! Adding a command: run `tools/gen_command_table.py` with the new name (table
//! entry) → write the handler in its family and return it from the family's
//! `handler` → put any new error text in `errors.rs` → unit/integration test →
//! a line in a differential script under `tests/scripts/`.

pub mod aclcmd;
pub mod admin;
pub mod bits;
pub mod codis;
pub mod command;
pub mod conn;
pub mod dump;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod info;
pub mod keys;
pub mod list;
pub mod memory;
pub mod repl;
pub mod set;
pub mod slotsasync;
pub mod sort;
pub mod stream;
pub mod string;
pub mod util;
pub mod zset;

use protocol::command::CmdId;

use crate::exec::Handler;

/// The handler table of every command family, indexed by `CmdId` (the
/// generated table and the enum are in the same order; meta-tested).
pub fn table() -> Vec<Option<Handler>> {
    protocol::command::COMMANDS
        .iter()
        .map(|c| protocol::command::lookup(c.name.as_bytes()).and_then(handler))
        .collect()
}

/// Every module's handler lookup: each command belongs to exactly one.
const MODULES: &[fn(CmdId) -> Option<Handler>] = &[
    conn::handler,
    admin::handler,
    repl::handler,
    info::handler,
    memory::handler,
    aclcmd::handler,
    command::handler,
    keys::handler,
    string::handler,
    codis::handler,
    list::handler,
    hash::handler,
    set::handler,
    zset::handler,
    geo::handler,
    stream::handler,
    bits::handler,
    hll::handler,
    sort::handler,
    dump::handler,
    slotsasync::handler,
    crate::multi::handler,
    crate::pubsub::handler,
    crate::monitor::handler,
    crate::slowlog::handler,
    crate::latency::handler,
    crate::script::handler,
];

/// The handler of a top-level command (containers dispatch subcommands inside).
pub fn handler(id: CmdId) -> Option<Handler> {
    MODULES.iter().find_map(|m| m(id))
}

#[cfg(test)]
mod tests {
    use protocol::command::{COMMANDS, lookup};

    #[test]
    fn every_command_has_exactly_one_handler() {
        for c in COMMANDS {
            let id = lookup(c.name.as_bytes()).unwrap();
            let n = super::MODULES.iter().filter(|m| m(id).is_some()).count();
            assert_eq!(n, 1, "{} has {n} handlers", c.name);
        }
    }
}
