//! Connection commands the proxy answers itself for today's clients
//! (HELLO, CLIENT ..., COMMAND ..., ECHO, CONFIG GET): replies built with
//! the shared RESP writer in the session's protocol, shaped as
//! redis-server 7.0.15 sends them (HELLO says `server: codis-proxy`,
//! `mode: proxy`). COMMAND answers from the shared command table, filtered
//! by the proxy's policy: a command the proxy refuses is not listed.

use std::time::Instant;

use protocol::command::{COMMANDS, CommandSpec, intro};
use protocol::resp::Reply;

use crate::config::Config;
use crate::errors;

/// The Redis API level the proxy speaks (what HELLO reports as `version`;
/// clients pick features by it).
pub const REDIS_VERSION: &str = "7.0.15";

/// The CLIENT and CONFIG subcommands the proxy answers; the others are
/// refused (they act on the proxy's other clients, a shared backend
/// connection or the proxy's settings). COMMAND lists only these.
pub const SERVED_SUBCOMMANDS: &[&str] = &[
    "client|id",
    "client|getname",
    "client|setname",
    "client|info",
    "client|setinfo",
    "client|no-evict",
    "client|reply",
    "client|help",
    "config|get",
    "config|help",
];

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "NO-EVICT (ON|OFF)",
    "    Accepted; the proxy does not evict clients.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

/// Per-connection attributes that CLIENT and HELLO read and set.
pub struct Meta {
    pub id: u64,
    pub resp3: bool,
    pub name: Vec<u8>,
    pub lib_name: Vec<u8>,
    pub lib_ver: Vec<u8>,
    pub peer: String,
    pub local: String,
    pub since: Instant,
    /// The backend lane of the user this connection authenticated as
    /// (0: the proxy's own connections; see `backend::user_lane`).
    pub user: u16,
}

/// CLIENT REPLY modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    Skip,
}

/// What a CLIENT command asks of the session.
pub enum ClientOut {
    Reply(Vec<u8>),
    /// CLIENT REPLY: the new mode, and the reply when it has one (ON).
    Mode(ReplyMode, Option<Vec<u8>>),
    /// A subcommand the proxy does not serve (it would act on one shared
    /// backend connection or on the proxy's other clients).
    NotAllowed(String),
}

fn writer(resp3: bool) -> Reply {
    Reply {
        buf: Vec::with_capacity(64),
        resp3,
    }
}

/// Names may not contain spaces, newlines or special characters (Redis'
/// `validateClientAttr`: only `!`..`~`).
pub fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// A HELP reply: one status line each.
fn help(o: &mut Reply, lines: &[&str]) {
    o.array(lines.len());
    for l in lines {
        o.simple(l.as_bytes());
    }
}

/// The HELLO reply: a map in RESP3, a flat array in RESP2.
pub fn hello(resp3: bool, id: u64) -> Vec<u8> {
    let mut o = writer(resp3);
    o.map(7);
    o.bulk(b"server");
    o.bulk(b"codis-proxy");
    o.bulk(b"version");
    o.bulk(REDIS_VERSION.as_bytes());
    o.bulk(b"proto");
    o.int(if resp3 { 3 } else { 2 });
    o.bulk(b"id");
    o.int(id as i64);
    o.bulk(b"mode");
    o.bulk(b"proxy");
    o.bulk(b"role");
    o.bulk(b"master");
    o.bulk(b"modules");
    o.array(0);
    o.buf
}

/// ECHO message
pub fn echo(resp3: bool, argv: &[&[u8]]) -> Vec<u8> {
    if argv.len() != 2 {
        return errors::arity("echo");
    }
    let mut o = writer(resp3);
    o.bulk(argv[1]);
    o.buf
}

/// Checks a container's subcommand against the table: its spec, or the
/// error reply (unknown subcommand, wrong arity).
fn sub_spec(container: &str, argv: &[&[u8]]) -> Result<&'static CommandSpec, Vec<u8>> {
    let Some(top) = protocol::command::lookup(container.as_bytes()).map(|i| i.spec()) else {
        return Err(errors::unknown_subcommand(container, argv[0]));
    };
    let Some(&sub) = argv.get(1) else {
        return Err(errors::arity(top.name));
    };
    let Some(spec) = top.subcommand(sub) else {
        return Err(errors::unknown_subcommand(
            &container.to_ascii_uppercase(),
            sub,
        ));
    };
    if !spec.arity_ok(argv.len()) {
        return Err(errors::arity(spec.name));
    }
    Ok(spec)
}

fn on_off(v: &[u8]) -> Option<bool> {
    if v.eq_ignore_ascii_case(b"on") {
        Some(true)
    } else if v.eq_ignore_ascii_case(b"off") {
        Some(false)
    } else {
        None
    }
}

/// The CLIENT INFO line of this connection (the fields the proxy knows,
/// in Redis' order).
pub fn info_line(m: &Meta, db: usize, now: Instant) -> String {
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle=0 flags=N db={db} sub=0 psub=0 \
         ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
         omem=0 tot-mem=0 events=r cmd=client|info user={} redir=-1 resp={} \
         lib-name={} lib-ver={}\n",
        m.id,
        m.peer,
        m.local,
        String::from_utf8_lossy(&m.name),
        now.saturating_duration_since(m.since).as_secs(),
        String::from_utf8_lossy(&crate::backend::user_name(m.user)),
        if m.resp3 { 3 } else { 2 },
        String::from_utf8_lossy(&m.lib_name),
        String::from_utf8_lossy(&m.lib_ver),
    )
}

/// CLIENT ID | GETNAME | SETNAME | INFO | SETINFO | NO-EVICT | REPLY | HELP.
pub fn client(m: &mut Meta, db: usize, argv: &[&[u8]]) -> ClientOut {
    let spec = match sub_spec("client", argv) {
        Ok(s) => s,
        Err(e) => return ClientOut::Reply(e),
    };
    if !SERVED_SUBCOMMANDS.contains(&spec.name) {
        return ClientOut::NotAllowed(spec.name.to_ascii_uppercase().replace('|', " "));
    }
    let mut o = writer(m.resp3);
    match spec.name {
        "client|id" => o.int(m.id as i64),
        "client|getname" => {
            if m.name.is_empty() {
                o.null();
            } else {
                o.bulk(&m.name);
            }
        }
        "client|setname" => {
            if !valid_name(argv[2]) {
                return ClientOut::Reply(errors::line(errors::CLIENT_NAME_INVALID));
            }
            m.name = argv[2].to_vec();
            o.ok();
        }
        "client|info" => {
            o.verbatim(b"txt", info_line(m, db, Instant::now()).as_bytes());
        }
        "client|setinfo" => {
            let (attr, val) = (argv[2], argv[3]);
            let lib = if attr.eq_ignore_ascii_case(b"lib-name") {
                &mut m.lib_name
            } else if attr.eq_ignore_ascii_case(b"lib-ver") {
                &mut m.lib_ver
            } else {
                return ClientOut::Reply(errors::unrecognized_option(attr));
            };
            if !valid_name(val) {
                return ClientOut::Reply(errors::setinfo_invalid(attr));
            }
            *lib = val.to_vec();
            o.ok();
        }
        "client|no-evict" => match on_off(argv[2]) {
            Some(_) => o.ok(),
            None => return ClientOut::Reply(errors::line(errors::SYNTAX)),
        },
        "client|reply" => {
            let v = argv[2];
            return if v.eq_ignore_ascii_case(b"on") {
                ClientOut::Mode(ReplyMode::On, Some(errors::OK.to_vec()))
            } else if v.eq_ignore_ascii_case(b"off") {
                ClientOut::Mode(ReplyMode::Off, None)
            } else if v.eq_ignore_ascii_case(b"skip") {
                ClientOut::Mode(ReplyMode::Skip, None)
            } else {
                ClientOut::Reply(errors::line(errors::SYNTAX))
            };
        }
        // client|help, the one served subcommand left.
        _ => help(&mut o, CLIENT_HELP),
    }
    ClientOut::Reply(o.buf)
}

/// COMMAND [COUNT | LIST | INFO | DOCS | GETKEYS | GETKEYSANDFLAGS | HELP],
/// listing only what `allowed` accepts.
pub fn command(resp3: bool, argv: &[&[u8]], allowed: &dyn Fn(&CommandSpec) -> bool) -> Vec<u8> {
    let mut o = writer(resp3);
    let all: Vec<&CommandSpec> = COMMANDS.iter().filter(|c| allowed(c)).collect();
    if argv.len() == 1 {
        o.array(all.len());
        for c in &all {
            intro::write_info(&mut o, c);
        }
        return o.buf;
    }
    let spec = match sub_spec("command", argv) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let find = |n: &[u8]| intro::find(n).filter(|c| allowed(c));
    match spec.name {
        "command|count" => o.int(all.len() as i64),
        "command|list" => {
            let Some(filter) = intro::ListFilter::parse(&argv[2..]) else {
                return errors::line(errors::SYNTAX);
            };
            let names = intro::list_names(|c| allowed(c) && filter.keeps(c));
            o.array(names.len());
            for n in names {
                o.bulk(n.as_bytes());
            }
        }
        "command|info" => {
            if argv.len() == 2 {
                o.array(all.len());
                for c in &all {
                    intro::write_info(&mut o, c);
                }
            } else {
                o.array(argv.len() - 2);
                for n in &argv[2..] {
                    match find(n) {
                        Some(c) => intro::write_info(&mut o, c),
                        None => o.null(),
                    }
                }
            }
        }
        "command|docs" => {
            let specs: Vec<&CommandSpec> = if argv.len() == 2 {
                all
            } else {
                argv[2..].iter().filter_map(|n| find(n)).collect()
            };
            o.map(specs.len());
            for c in specs {
                o.bulk(c.name.as_bytes());
                intro::write_docs(&mut o, c);
            }
        }
        "command|getkeys" | "command|getkeysandflags" => {
            let cmd = &argv[2..];
            match intro::getkeys(cmd) {
                Ok((_, keys)) => {
                    intro::write_keys(&mut o, cmd, keys, spec.name == "command|getkeysandflags")
                }
                Err(e) => {
                    return errors::line(match e {
                        intro::GetKeysError::InvalidCommand => errors::GETKEYS_INVALID_COMMAND,
                        intro::GetKeysError::NoKeys => errors::GETKEYS_NO_KEYS,
                        intro::GetKeysError::BadArity => errors::GETKEYS_BAD_ARITY,
                        intro::GetKeysError::BadArgs => errors::GETKEYS_BAD_ARGS,
                    });
                }
            }
        }
        _ => {
            let lines = [
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Details about the commands the proxy serves.",
                "COUNT",
                "    Number of commands the proxy serves.",
                "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
                "    Names of the commands the proxy serves, optionally filtered.",
                "INFO [<command-name> ...]",
                "    Details about the given commands.",
                "DOCS [<command-name> ...]",
                "    Documentation (since, group, subcommands) of the given commands.",
                "GETKEYS <full-command>",
                "    The keys of a full command line.",
                "GETKEYSANDFLAGS <full-command>",
                "    The keys of a full command line with their access flags.",
                "HELP",
                "    Print this help.",
            ];
            help(&mut o, &lines);
        }
    }
    o.buf
}

/// CONFIG GET pattern [pattern ...] over the proxy's own settings
/// (`proxy.toml` keys; passwords are never shown). Other CONFIG
/// subcommands are refused (`Err`: the subcommand's name).
pub fn config(cfg: &Config, resp3: bool, argv: &[&[u8]]) -> Result<Vec<u8>, String> {
    let spec = match sub_spec("config", argv) {
        Ok(s) => s,
        Err(e) => return Ok(e),
    };
    if spec.name != "config|get" {
        if spec.name == "config|help" {
            let mut o = writer(resp3);
            let lines = [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "HELP",
                "    Print this help.",
            ];
            help(&mut o, &lines);
            return Ok(o.buf);
        }
        return Err(spec.name.to_ascii_uppercase().replace('|', " "));
    }
    let pairs = cfg.pairs();
    let hits: Vec<&(&str, String)> = pairs
        .iter()
        .filter(|(k, _)| {
            argv[2..]
                .iter()
                .any(|p| protocol::glob::string_match(p, k.as_bytes(), true))
        })
        .collect();
    let mut o = writer(resp3);
    o.map(hits.len());
    for (k, v) in hits {
        o.bulk(k.as_bytes());
        o.bulk(v.as_bytes());
    }
    Ok(o.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            id: 7,
            resp3: false,
            name: Vec::new(),
            lib_name: Vec::new(),
            lib_ver: Vec::new(),
            peer: "127.0.0.1:1".into(),
            local: "127.0.0.1:2".into(),
            since: Instant::now(),
            user: 0,
        }
    }

    fn reply(o: ClientOut) -> Vec<u8> {
        match o {
            ClientOut::Reply(b) => b,
            _ => panic!("not a reply"),
        }
    }

    #[test]
    fn hello_shapes() {
        let r3 = hello(true, 5);
        assert!(r3.starts_with(b"%7\r\n$6\r\nserver\r\n$11\r\ncodis-proxy\r\n"));
        assert!(r3.ends_with(b"$7\r\nmodules\r\n*0\r\n"));
        assert!(hello(false, 5).starts_with(b"*14\r\n"));
    }

    #[test]
    fn client_subcommands() {
        let mut m = meta();
        assert_eq!(reply(client(&mut m, 0, &[b"CLIENT", b"ID"])), b":7\r\n");
        assert_eq!(
            reply(client(&mut m, 0, &[b"client", b"getname"])),
            b"$-1\r\n"
        );
        assert_eq!(
            reply(client(&mut m, 0, &[b"client", b"setname", b"a b"])),
            b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        );
        assert_eq!(
            reply(client(&mut m, 0, &[b"client", b"setname", b"app"])),
            b"+OK\r\n"
        );
        m.resp3 = true;
        assert_eq!(
            reply(client(&mut m, 0, &[b"client", b"getname"])),
            b"$3\r\napp\r\n"
        );
        assert_eq!(
            reply(client(&mut m, 0, &[b"client", b"setname"])),
            b"-ERR wrong number of arguments for 'client|setname' command\r\n"
        );
        assert_eq!(
            reply(client(&mut m, 0, &[b"client", b"nosuch"])),
            b"-ERR unknown subcommand 'nosuch'. Try CLIENT HELP.\r\n"
        );
        assert_eq!(
            reply(client(
                &mut m,
                0,
                &[b"client", b"setinfo", b"lib-name", b"redis-py"]
            )),
            b"+OK\r\n"
        );
        let info = reply(client(&mut m, 3, &[b"client", b"info"]));
        let text = String::from_utf8(info).unwrap();
        assert!(text.starts_with("="), "{text}");
        assert!(
            text.contains(" db=3 ") && text.contains("lib-name=redis-py"),
            "{text}"
        );
        assert!(matches!(
            client(&mut m, 0, &[b"client", b"kill", b"1.2.3.4:5"]),
            ClientOut::NotAllowed(n) if n == "CLIENT KILL"
        ));
        assert!(matches!(
            client(&mut m, 0, &[b"client", b"reply", b"skip"]),
            ClientOut::Mode(ReplyMode::Skip, None)
        ));
    }

    #[test]
    fn command_is_filtered() {
        let none_multi = |c: &CommandSpec| c.name != "multi";
        let n = String::from_utf8(command(false, &[b"COMMAND", b"COUNT"], &none_multi)).unwrap();
        assert_eq!(n, format!(":{}\r\n", COMMANDS.len() - 1));
        assert_eq!(
            command(false, &[b"COMMAND", b"INFO", b"multi"], &none_multi),
            b"*1\r\n$-1\r\n"
        );
        assert_eq!(
            command(
                true,
                &[b"COMMAND", b"GETKEYS", b"RENAME", b"a", b"b"],
                &none_multi
            ),
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
    }

    #[test]
    fn config_get() {
        let cfg = Config::default();
        let r = config(&cfg, false, &[b"CONFIG", b"GET", b"proxy_max_clients"]).unwrap();
        assert_eq!(r, b"*2\r\n$17\r\nproxy_max_clients\r\n$4\r\n1000\r\n");
        let r = config(&cfg, true, &[b"CONFIG", b"GET", b"*auth*"]).unwrap();
        assert!(!String::from_utf8(r).unwrap().contains("product_auth"));
        assert_eq!(
            config(&cfg, false, &[b"CONFIG", b"SET", b"a", b"b"]).unwrap_err(),
            "CONFIG SET"
        );
    }
}
