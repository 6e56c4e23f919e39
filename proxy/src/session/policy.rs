//! How the proxy treats each command, derived from the shared command
//! table (`protocol::command`, its `proxy` policy, flags and key specs):
//! refused, pure read, blocking, keys found by the key specs.

use super::*;

/// [`classes`] bits.
pub(super) const C_NOT_ALLOWED: u8 = 1;

pub(super) const C_READ: u8 = 2;

pub(super) const C_BLOCKING: u8 = 4;

/// The keys are not just argument 1: found by the key specs, and checked
/// to hash to one slot.
pub(super) const C_KEYS: u8 = 8;

/// Per command id: [`C_NOT_ALLOWED`], [`C_READ`] (pure read),
/// [`C_BLOCKING`], [`C_KEYS`].
pub(super) fn classes() -> &'static [u8] {
    static C: OnceLock<Vec<u8>> = OnceLock::new();
    C.get_or_init(|| {
        command::COMMANDS
            .iter()
            .map(|s| {
                let upper = s.name.to_ascii_uppercase();
                let na = s.proxy == ProxyPolicy::NotAllow;
                let read = s.has(flags::READONLY)
                    && (s.proxy == ProxyPolicy::Read
                        || matches!(upper.as_str(), "MGET" | "EXISTS"))
                    && upper != "TOUCH";
                // Blocking only where a timeout can make it wait (XREAD and
                // friends only block with BLOCK; they are not in 7.0's
                // blocking flag set anyway).
                let blocking = s.has(flags::BLOCKING) && s.proxy != ProxyPolicy::Local;
                let keys = s.proxy != ProxyPolicy::Local
                    && s.proxy != ProxyPolicy::Split
                    && (s.key_specs.len() > 1
                        || !s.subcommands.is_empty()
                        || s.key_specs.iter().any(|k| {
                            !matches!(k.find, command::FindKeys::Range { last: 0, .. })
                                || !matches!(k.begin, command::BeginSearch::Index(1))
                        }));
                let mut c = 0;
                if na {
                    c |= C_NOT_ALLOWED;
                }
                if read {
                    c |= C_READ;
                }
                if blocking {
                    c |= C_BLOCKING;
                }
                if keys && (!s.key_specs.is_empty() || !s.subcommands.is_empty()) {
                    c |= C_KEYS;
                }
                c
            })
            .collect()
    })
}

/// Whether the proxy serves a command (COMMAND lists only these).
pub(super) fn served(c: &command::CommandSpec) -> bool {
    let top = c.name.split('|').next().unwrap_or(c.name);
    match command::lookup(top.as_bytes()) {
        Some(id)
            if classes()
                .get(id as usize)
                .is_some_and(|k| k & C_NOT_ALLOWED != 0) =>
        {
            false
        }
        Some(_) if top == "client" || top == "config" => {
            c.name == top || crate::local::SERVED_SUBCOMMANDS.contains(&c.name)
        }
        Some(_) => true,
        None => false,
    }
}

/// The keys of a command line by its key specs (a container's by its
/// subcommand's): `None` when the specs cannot be applied (bad keynum),
/// which leaves the command to the backend's own error.
pub(super) fn command_keys<'a>(
    spec: &'static command::CommandSpec,
    argv: &[&'a [u8]],
) -> Option<Vec<&'a [u8]>> {
    let spec = if spec.subcommands.is_empty() {
        spec
    } else {
        spec.subcommand(argv.get(1)?)?
    };
    let refs = command::intro::keys_from_specs(spec, argv)?;
    Some(
        refs.iter()
            .filter_map(|k| argv.get(k.pos).copied())
            .collect(),
    )
}
