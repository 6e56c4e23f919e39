//! Command handlers, one module per family. Each family exposes
//! `handler(CmdId) -> Option<Handler>`; [`handler`] asks them in turn, and a
//! meta-test checks that every command of the table has exactly one handler.
//!
//! Adding a command: run `tools/gen_command_table.py` with the new name (table
//! entry) → write the handler in its family and return it from the family's
//! `handler` → put any new error text in `errors.rs` → unit/integration test →
//! a line in a differential script under `tests/scripts/`.

pub mod admin;
pub mod bits;
pub mod codis;
pub mod command;
pub mod conn;
pub mod dump;
pub mod hash;
pub mod hll;
pub mod info;
pub mod keys;
pub mod list;
pub mod repl;
pub mod set;
pub mod slotsasync;
pub mod sort;
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

/// The handler of a top-level command (containers dispatch subcommands inside).
pub fn handler(id: CmdId) -> Option<Handler> {
    conn::handler(id)
        .or_else(|| admin::handler(id))
        .or_else(|| repl::handler(id))
        .or_else(|| info::handler(id))
        .or_else(|| command::handler(id))
        .or_else(|| keys::handler(id))
        .or_else(|| string::handler(id))
        .or_else(|| codis::handler(id))
        .or_else(|| list::handler(id))
        .or_else(|| hash::handler(id))
        .or_else(|| set::handler(id))
        .or_else(|| zset::handler(id))
        .or_else(|| bits::handler(id))
        .or_else(|| hll::handler(id))
        .or_else(|| sort::handler(id))
        .or_else(|| dump::handler(id))
        .or_else(|| slotsasync::handler(id))
        .or_else(|| crate::multi::handler(id))
        .or_else(|| crate::pubsub::handler(id))
        .or_else(|| crate::monitor::handler(id))
}

#[cfg(test)]
mod tests {
    use protocol::command::{COMMANDS, lookup};

    #[test]
    fn every_command_has_exactly_one_handler() {
        for c in COMMANDS {
            let id = lookup(c.name.as_bytes()).unwrap();
            let n = [
                super::conn::handler(id).is_some(),
                super::admin::handler(id).is_some(),
                super::info::handler(id).is_some(),
                super::command::handler(id).is_some(),
                super::keys::handler(id).is_some(),
                super::string::handler(id).is_some(),
                super::codis::handler(id).is_some(),
                super::list::handler(id).is_some(),
                super::hash::handler(id).is_some(),
                super::set::handler(id).is_some(),
                super::zset::handler(id).is_some(),
                super::bits::handler(id).is_some(),
                super::hll::handler(id).is_some(),
                super::sort::handler(id).is_some(),
                super::dump::handler(id).is_some(),
                super::slotsasync::handler(id).is_some(),
                crate::multi::handler(id).is_some(),
                crate::pubsub::handler(id).is_some(),
                crate::monitor::handler(id).is_some(),
            ]
            .iter()
            .filter(|&&b| b)
            .count();
            assert_eq!(n, 1, "{} has {n} handlers", c.name);
        }
    }
}
