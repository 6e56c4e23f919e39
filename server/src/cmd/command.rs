//! COMMAND [COUNT | LIST | INFO | DOCS | GETKEYS | GETKEYSANDFLAGS | HELP]:
//! introspection of the command table (`protocol::command::COMMANDS`).
//!
//! Mirrors redis-server 7.0.15: `COMMAND INFO` has the same 10-element shape
//! (name, arity, flags, first/last/step, ACL categories, tips, key specs,
//! subcommands; sets and maps in RESP3), unknown names give a null, names may
//! be `container|subcommand`. Key extraction for GETKEYS follows Redis' key
//! specs algorithm (begin search by index or keyword, find keys by range or
//! keynum). Differences:
//! * listings (COMMAND, COMMAND INFO, COMMAND LIST) come in table order
//!   (Redis: its dict order, which changes from run to run);
//! * COMMAND COUNT counts only the commands this server implements;
//! * COMMAND DOCS reports `since`, `group` and `subcommands` only: we do not
//!   carry Redis' documentation texts (summary, complexity, arguments).

use protocol::command::{COMMANDS, CmdId, CommandSpec};

use crate::cmd::conn::help_reply;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Command => command,
        _ => return None,
    })
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Details about every command.",
    "COUNT",
    "    Number of commands this server implements.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Names of the commands (and subcommands), optionally filtered.",
    "INFO [<command-name> ...]",
    "    Details about the given commands (all commands without names).",
    "DOCS [<command-name> ...]",
    "    Documentation (since, group, subcommands) of the given commands",
    "    (all commands without names).",
    "GETKEYS <full-command>",
    "    The keys of a full command line.",
    "GETKEYSANDFLAGS <full-command>",
    "    The keys of a full command line with their access flags.",
    "HELP",
    "    Print this help.",
];

fn command(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() == 1 {
        ctx.out.array(COMMANDS.len());
        for c in COMMANDS {
            write_info(ctx.out, c);
        }
        return Ok(());
    }
    match ctx.spec.short_name() {
        "count" => ctx.out.int(COMMANDS.len() as i64),
        "list" => list(ctx, argv)?,
        "info" => {
            if argv.len() == 2 {
                ctx.out.array(COMMANDS.len());
                for c in COMMANDS {
                    write_info(ctx.out, c);
                }
            } else {
                ctx.out.array(argv.len() - 2);
                for name in &argv[2..] {
                    match find(name) {
                        Some(c) => write_info(ctx.out, c),
                        None => ctx.out.null(),
                    }
                }
            }
        }
        "docs" => {
            let specs: Vec<&CommandSpec> = if argv.len() == 2 {
                COMMANDS.iter().collect()
            } else {
                argv[2..].iter().filter_map(|n| find(n)).collect()
            };
            ctx.out.map(specs.len());
            for c in specs {
                ctx.out.bulk(c.name.as_bytes());
                write_docs(ctx.out, c);
            }
        }
        "getkeys" => getkeys(ctx, &argv[2..], false)?,
        "getkeysandflags" => getkeys(ctx, &argv[2..], true)?,
        "help" => help_reply(ctx, COMMAND_HELP),
        // The gate lets unknown COMMAND subcommands through (bare COMMAND is valid).
        _ => {
            return Err(CmdError::msg(errors::unknown_subcommand(
                "command", argv[1],
            )));
        }
    }
    Ok(())
}

use protocol::command::intro::{GetKeysError, ListFilter, list_names, write_docs, write_keys};
pub use protocol::command::intro::{KeyRef, find, keys_from_specs, write_info};

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]
fn list(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let filter = ListFilter::parse(&argv[2..]).ok_or(CmdError::Syntax)?;
    let names = list_names(|c| filter.keeps(c));
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
    Ok(())
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS <full command>
fn getkeys(ctx: &mut Ctx, cmd: &[&[u8]], with_flags: bool) -> CmdResult {
    match protocol::command::intro::getkeys(cmd) {
        Ok((_, keys)) => {
            write_keys(ctx.out, cmd, keys, with_flags);
            Ok(())
        }
        Err(e) => Err(CmdError::Static(match e {
            GetKeysError::InvalidCommand => errors::GETKEYS_INVALID_COMMAND,
            GetKeysError::NoKeys => errors::GETKEYS_NO_KEYS,
            GetKeysError::BadArity => errors::GETKEYS_BAD_ARITY,
            GetKeysError::BadArgs => errors::GETKEYS_BAD_ARGS,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cmd::conn::harness::H;
    use protocol::command::{BeginSearch, FindKeys, KeySpec};
    use protocol::resp::Reply;

    /// `COMMAND INFO get` as redis-server 7.0.15 sends it.
    const GET_INFO_RESP2: &str = "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n\
        +@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\n\
        begin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\n\
        find_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\n\
        keystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
    const GET_INFO_RESP3: &str = "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n\
        +@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n$12\r\n\
        begin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\n\
        find_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\n\
        keystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n";

    #[test]
    fn command_info_matches_redis() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(h.text(&mut c, "COMMAND INFO get"), GET_INFO_RESP2);
        assert_eq!(
            h.text(&mut c, "COMMAND INFO GET nosuch"),
            format!("*2\r\n{}$-1\r\n", &GET_INFO_RESP2[4..])
        );
        assert_eq!(
            h.text(&mut c, "COMMAND INFO config|get"),
            "*1\r\n*10\r\n$10\r\nconfig|get\r\n:-3\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n\
             :0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"
        );
        h.text(&mut c, "HELLO 3");
        assert_eq!(h.text(&mut c, "COMMAND INFO get"), GET_INFO_RESP3);
        assert_eq!(h.text(&mut c, "COMMAND INFO nosuch"), "*1\r\n_\r\n");
    }

    #[test]
    fn command_count_list_docs() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(
            h.text(&mut c, "COMMAND COUNT"),
            format!(":{}\r\n", COMMANDS.len())
        );
        assert!(
            h.text(&mut c, "COMMAND")
                .starts_with(&format!("*{}\r\n*10\r\n", COMMANDS.len()))
        );
        let subs: usize = COMMANDS.iter().map(|c| c.subcommands.len()).sum();
        assert!(
            h.text(&mut c, "COMMAND LIST")
                .starts_with(&format!("*{}\r\n", COMMANDS.len() + subs))
        );
        let cfg = h.text(&mut c, "COMMAND LIST FILTERBY PATTERN CONFIG*");
        assert!(
            cfg.starts_with("*6\r\n$6\r\nconfig\r\n") && cfg.contains("$10\r\nconfig|get\r\n"),
            "{cfg}"
        );
        let conn = h.text(&mut c, "COMMAND LIST FILTERBY aclcat CONNECTION");
        assert!(
            conn.contains("$4\r\nping\r\n")
                && conn.contains("$12\r\ncommand|info\r\n")
                && !conn.contains("$3\r\nget\r\n")
        );
        assert!(
            !conn.contains("$6\r\nclient\r\n"),
            "the CLIENT container is only @slow"
        );
        assert_eq!(
            h.text(&mut c, "COMMAND LIST FILTERBY aclcat @connection"),
            "*0\r\n"
        );
        assert_eq!(h.text(&mut c, "COMMAND LIST FILTERBY module x"), "*0\r\n");
        assert_eq!(
            h.text(&mut c, "COMMAND LIST FILTERBY x y"),
            "-ERR syntax error\r\n"
        );
        assert_eq!(h.text(&mut c, "COMMAND LIST x"), "-ERR syntax error\r\n");
        assert_eq!(
            h.text(&mut c, "COMMAND DOCS get nosuch"),
            "*2\r\n$3\r\nget\r\n*4\r\n$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n"
        );
        h.text(&mut c, "HELLO 3");
        let docs = h.text(&mut c, "COMMAND DOCS config");
        assert!(
            docs.starts_with("%1\r\n$6\r\nconfig\r\n%3\r\n$5\r\nsince\r\n"),
            "{docs}"
        );
        assert!(docs.contains("$11\r\nsubcommands\r\n%5\r\n"), "{docs}");
        assert_eq!(h.text(&mut c, "COMMAND DOCS nosuch"), "%0\r\n");
        assert_eq!(
            h.text(&mut c, "COMMAND nosuch"),
            "-ERR unknown subcommand 'nosuch'. Try COMMAND HELP.\r\n"
        );
        assert!(
            h.text(&mut c, "COMMAND HELP")
                .starts_with("*18\r\n+COMMAND <subcommand>")
        );
    }

    #[test]
    fn command_getkeys() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(h.text(&mut c, "COMMAND GETKEYS get a"), "*1\r\n$1\r\na\r\n");
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYS MSET a 1 b 2"),
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYS get a b"),
            format!("-{}\r\n", errors::GETKEYS_BAD_ARITY)
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYS ping x"),
            format!("-{}\r\n", errors::GETKEYS_NO_KEYS)
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYS config get x"),
            format!("-{}\r\n", errors::GETKEYS_NO_KEYS)
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYS config nosuch x"),
            format!("-{}\r\n", errors::GETKEYS_INVALID_COMMAND)
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYS nosuch a"),
            format!("-{}\r\n", errors::GETKEYS_INVALID_COMMAND)
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYS object encoding k"),
            "*1\r\n$1\r\nk\r\n"
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYSANDFLAGS copy a b"),
            "*2\r\n*2\r\n$1\r\na\r\n*2\r\n+RO\r\n+access\r\n*2\r\n$1\r\nb\r\n*2\r\n+OW\r\n+update\r\n"
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYSANDFLAGS set a b"),
            "*1\r\n*2\r\n$1\r\na\r\n*2\r\n+OW\r\n+update\r\n"
        );
        // SORT's STORE destination, as redis-server 7.0.15 finds it.
        assert_eq!(
            h.text(
                &mut c,
                "COMMAND GETKEYS sort k limit 0 1 store d get x store e"
            ),
            "*2\r\n$1\r\nk\r\n$1\r\ne\r\n"
        );
        assert_eq!(
            h.text(&mut c, "COMMAND GETKEYSANDFLAGS sort k by w store d"),
            "*2\r\n*2\r\n$1\r\nk\r\n*2\r\n+RO\r\n+access\r\n*2\r\n$1\r\nd\r\n*2\r\n+OW\r\n+update\r\n"
        );
    }

    fn positions(name: &str, argv: &[&[u8]]) -> Vec<usize> {
        let c = find(name.as_bytes()).unwrap();
        keys_from_specs(c, argv)
            .unwrap()
            .into_iter()
            .map(|k| k.pos)
            .collect()
    }

    #[test]
    fn find_names() {
        assert_eq!(find(b"GET").unwrap().name, "get");
        assert_eq!(find(b"config|GET").unwrap().name, "config|get");
        assert!(find(b"config|nosuch").is_none());
        assert!(find(b"config|get|x").is_none());
        assert!(find(b"get|x").is_none());
        assert!(find(b"nosuch").is_none());
        assert!(find(b"").is_none());
    }

    #[test]
    fn key_positions() {
        assert_eq!(positions("get", &[b"get", b"a"]), vec![1]);
        assert_eq!(
            positions("mset", &[b"mset", b"a", b"1", b"b", b"2"]),
            vec![1, 3]
        );
        assert_eq!(positions("mset", &[b"mset", b"a", b"1", b"b"]), vec![1, 3]);
        assert_eq!(positions("del", &[b"del", b"a", b"b", b"c"]), vec![1, 2, 3]);
        assert_eq!(positions("rename", &[b"rename", b"a", b"b"]), vec![1, 2]);
        assert_eq!(
            positions("object|encoding", &[b"object", b"encoding", b"k"]),
            vec![2]
        );
    }

    #[test]
    fn synthetic_specs() {
        // keyword + keynum, like ZUNIONSTORE / GEORADIUS ... STORE
        static SPECS: &[KeySpec] = &[
            KeySpec {
                notes: "",
                flags: &["OW"],
                begin: BeginSearch::Index(1),
                find: FindKeys::Range {
                    last: 0,
                    step: 1,
                    limit: 0,
                },
            },
            KeySpec {
                notes: "",
                flags: &["RO"],
                begin: BeginSearch::Index(2),
                find: FindKeys::Keynum {
                    idx: 0,
                    first: 1,
                    step: 1,
                },
            },
            KeySpec {
                notes: "",
                flags: &["OW"],
                begin: BeginSearch::Keyword("STORE", 3),
                find: FindKeys::Range {
                    last: 0,
                    step: 1,
                    limit: 0,
                },
            },
        ];
        let c = CommandSpec {
            key_specs: SPECS,
            ..*find(b"get").unwrap()
        };
        let argv: &[&[u8]] = &[b"x", b"d", b"2", b"a", b"b", b"store", b"s"];
        let got: Vec<usize> = keys_from_specs(&c, argv)
            .unwrap()
            .into_iter()
            .map(|k| k.pos)
            .collect();
        assert_eq!(got, vec![1, 3, 4, 6]);
        let bad: &[&[u8]] = &[b"x", b"d", b"x", b"a"];
        assert!(keys_from_specs(&c, bad).is_none());
        let neg: &[&[u8]] = &[b"x", b"d", b"-1", b"a"];
        assert!(keys_from_specs(&c, neg).is_none());
        // More keys than arguments, none, or a count that wraps as a C int
        // (Redis: "Invalid arguments specified for command").
        for n in [&b"3"[..], b"0", b"2147483648", b"2147483647"] {
            let argv: &[&[u8]] = &[b"x", b"d", n, b"a", b"b"];
            assert!(keys_from_specs(&c, argv).is_none(), "{n:?}");
        }
        // 2^32 + 1 wraps to one key.
        let wrap: &[&[u8]] = &[b"x", b"d", b"4294967297", b"a", b"b"];
        let got: Vec<usize> = keys_from_specs(&c, wrap)
            .unwrap()
            .into_iter()
            .map(|k| k.pos)
            .collect();
        assert_eq!(got, vec![1, 3]);
    }

    #[test]
    fn set_flags() {
        let set = find(b"set").unwrap();
        let k = keys_from_specs(set, &[b"set", b"a", b"b"]).unwrap();
        assert_eq!(k[0].flags, vec!["OW", "update"]);
        let k = keys_from_specs(set, &[b"set", b"a", b"b", b"get"]).unwrap();
        assert_eq!(k[0].flags, vec!["RW", "access", "update"]);
    }

    #[test]
    fn info_shape() {
        let mut r = Reply::new();
        write_info(&mut r, find(b"get").unwrap());
        let s = String::from_utf8(r.buf).unwrap();
        assert!(
            s.starts_with("*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n"),
            "{s}"
        );
    }
}
