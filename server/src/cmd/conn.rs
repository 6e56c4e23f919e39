//! Connection commands: PING, ECHO, SELECT, QUIT, AUTH, HELLO, RESET and the
//! CLIENT container (ID, SETNAME, GETNAME, INFO, LIST, KILL, NO-EVICT, REPLY,
//! PAUSE, UNPAUSE, TRACKING, CACHING, GETREDIR, TRACKINGINFO, UNBLOCK, HELP).
//!
//! Mirrors redis-server 7.0.15 (`server.c`, `networking.c`, `acl.c`): same
//! argument checks in the same order, same error texts, same reply shapes in
//! RESP2 and RESP3, and the 7.0 `CLIENT LIST` line (fields `id` … `resp`; the
//! `lib-name`/`lib-ver` fields and `CLIENT SETINFO` only exist from 7.2).
//! Authentication knows one user, `default`, whose password is `requirepass`
//! (no password = the `nopass` default user, which accepts any password).
//!
//! CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO parse and check their
//! arguments here; the tracking state and invalidation live in tracking.rs.
//! CLIENT PAUSE holds commands back in the connection loop (pause.rs);
//! CLIENT REPLY drops replies in `exec::execute`. `CLIENT LIST` fields this
//! server does not track report fixed values:
//! `multi-mem=0`, `events=r`; `rbs/rbp` report the read
//! buffer's size; `argv-mem` is non-zero only for the calling connection.
//! `obl`/`oll`/`omem` split the output a client has not taken yet (replies
//! of a connection stalled on its socket, undelivered mail) as Redis' reply
//! buffer and 16 KB block list would hold it; `tot-mem` adds the
//! connection's state and buffer capacities.

use std::sync::atomic::Ordering::Relaxed;

use protocol::command::CmdId;
use protocol::number::parse_i64;

use crate::client::ClientInfo;
use crate::cmd::util::is;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Ping => ping,
        CmdId::Echo => echo,
        CmdId::Select => select,
        CmdId::Quit => quit,
        CmdId::Auth => auth,
        CmdId::Hello => hello,
        CmdId::Reset => reset,
        CmdId::Client => client,
        _ => return None,
    })
}

/// The only ACL user.
const DEFAULT_USER: &[u8] = b"default";

fn ping(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if ctx.client.info.in_pubsub() && !ctx.out.resp3 && argv.len() <= 2 {
        // RESP2 subscribed context: a two-element array (pubsub.c).
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(argv.get(1).copied().unwrap_or(b""));
        return Ok(());
    }
    match argv.len() {
        1 => ctx.out.simple(b"PONG"),
        2 => ctx.out.bulk(argv[1]),
        _ => return Err(CmdError::msg(errors::wrong_arity("ping"))),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(argv[1]);
    Ok(())
}

/// Redis' `getIntFromObjectOrReply` with the default messages: not a long
/// long → "not an integer", outside int32 → "value must between ...".
pub(crate) fn int32_arg(a: &[u8]) -> Result<i64, CmdError> {
    let v = parse_i64(a).ok_or(CmdError::NotInteger)?;
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        return Err(CmdError::Static(errors::INT_ARG_OUT_OF_RANGE));
    }
    Ok(v)
}

fn select(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let idx = int32_arg(argv[1])?;
    if idx < 0 || idx as usize >= ctx.srv.ks.db_count() {
        return Err(CmdError::Static(errors::INVALID_DB));
    }
    ctx.client.select(idx as usize);
    ctx.out.ok();
    Ok(())
}

fn quit(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    ctx.client.close_after_reply = true;
    ctx.out.ok();
    Ok(())
}

/// Checks `user`/`pass` against the default user; marks the client
/// authenticated on success. A failure leaves the current state unchanged,
/// as Redis does.
fn authenticate(ctx: &mut Ctx, user: &[u8], pass: &[u8], argv: &[&[u8]]) -> CmdResult {
    let Some(cell) = ctx.srv.acl.authenticate(user, pass) else {
        // Redis logs a failed AUTH (reason auth, object the command's name).
        // (AUTH cannot run in scripts: `in_exec` means EXEC here.)
        let context = if ctx.client.multi.is_some() || ctx.client.in_exec {
            crate::acl::Context::Multi
        } else {
            crate::acl::Context::Toplevel
        };
        crate::exec::acl_denied(
            ctx.srv,
            ctx.client,
            ctx.out,
            ctx.now,
            ctx.spec,
            argv,
            user,
            crate::acl::Denied::Auth,
            0,
            context,
        );
        return Err(CmdError::Static(errors::WRONGPASS));
    };
    ctx.client.log_in(cell);
    Ok(())
}

/// AUTH password | AUTH username password.
fn auth(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let (user, pass) = if argv.len() == 2 {
        if ctx.srv.acl.default_nopass() {
            return Err(CmdError::Static(errors::NO_PASSWORD));
        }
        (DEFAULT_USER, argv[1])
    } else {
        (argv[1], argv[2])
    };
    authenticate(ctx, user, pass, argv)?;
    ctx.out.ok();
    Ok(())
}

/// Redis accepts client names made of printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn set_name(ctx: &mut Ctx, name: &[u8]) {
    let mut n = ctx
        .client
        .info
        .name
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    n.clear();
    n.extend_from_slice(name);
}

fn set_resp(ctx: &mut Ctx, ver: u8) {
    ctx.out.resp3 = ver == 3;
    ctx.client.info.resp.store(ver, Relaxed);
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
fn hello(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let mut ver = None;
    let mut i = 1;
    if let Some(a) = argv.get(1) {
        let v = parse_i64(a).ok_or(CmdError::Static(errors::HELLO_PROTO_NOT_INT))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::Static(errors::NOPROTO));
        }
        ver = Some(v as u8);
        i = 2;
    }
    let mut creds = None;
    let mut name = None;
    while let Some(&opt) = argv.get(i) {
        let more = argv.len() - 1 - i;
        if is(opt, "auth") && more >= 2 {
            creds = Some((argv[i + 1], argv[i + 2]));
            i += 3;
        } else if is(opt, "setname") && more >= 1 {
            if !valid_name(argv[i + 1]) {
                return Err(CmdError::Static(errors::CLIENT_NAME_INVALID));
            }
            name = Some(argv[i + 1]);
            i += 2;
        } else {
            return Err(CmdError::msg(errors::hello_syntax(opt)));
        }
    }
    if let Some((user, pass)) = creds {
        authenticate(ctx, user, pass, argv)?;
    }
    if !ctx.client.authenticated {
        return Err(CmdError::Static(errors::HELLO_NOAUTH));
    }
    if let Some(n) = name {
        set_name(ctx, n);
    }
    if let Some(v) = ver {
        set_resp(ctx, v);
    }
    let proto = if ctx.out.resp3 { 3 } else { 2 };
    ctx.out.map(7);
    ctx.out.bulk(b"server");
    ctx.out.bulk(b"redis");
    ctx.out.bulk(b"version");
    ctx.out.bulk(crate::config::VERSION.as_bytes());
    ctx.out.bulk(b"proto");
    ctx.out.int(proto);
    ctx.out.bulk(b"id");
    ctx.out.int(ctx.client.id as i64);
    ctx.out.bulk(b"mode");
    ctx.out.bulk(b"standalone");
    ctx.out.bulk(b"role");
    ctx.out.bulk(b"master");
    ctx.out.bulk(b"modules");
    ctx.out.array(0);
    Ok(())
}

/// RESET: back to a fresh connection's state (DB 0, RESP2, no name, no MULTI,
/// no tracking, unauthenticated when a password is required). NO-EVICT is kept, as in 7.0.
fn reset(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    // Redis' clearClientConnectionState: out of MONITOR, no tracking, DB 0,
    // RESP2, no transaction or watched keys, no subscriptions, no name,
    // replies on.
    if ctx.client.info.monitor.swap(false, Relaxed) {
        ctx.srv.monitors.forget(ctx.client.id);
    }
    crate::tracking::disable(ctx.srv, ctx.client);
    ctx.client.select(0);
    set_resp(ctx, 2);
    set_name(ctx, b"");
    crate::multi::discard(ctx.srv, ctx.client);
    ctx.srv.pubsub.forget(ctx.client);
    ctx.client.reply = crate::client::ReplyMode::On;
    // Back to the default user (Redis' clearClientConnectionState).
    let auth = ctx.srv.acl.default_open();
    ctx.client.user = None;
    *ctx.client
        .info
        .user
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = DEFAULT_USER.to_vec();
    ctx.client.authenticated = auth;
    ctx.client.info.authenticated.store(auth, Relaxed);
    ctx.out.simple(b"RESET");
    Ok(())
}

// ---------------------------------------------------------------------------
// CLIENT

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    The name of this connection.",
    "ID",
    "    The ID of this connection.",
    "INFO",
    "    The CLIENT LIST line of this connection.",
    "KILL <ip:port>",
    "    Close the connection from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Close the connections matching every filter:",
    "    * ID <client-id>",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Remote address of the connection.",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Local address the connection was accepted on.",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "    * USER <username>",
    "    * SKIPME (YES|NO)",
    "      Whether to spare this connection (default: yes).",
    "LIST [options ...]",
    "    One line per connection. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "    * ID <client-id> [<client-id> ...]",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Name this connection (empty name = no name).",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock a client blocked in a blocking command.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Exempt this connection from client eviction.",
    "HELP",
    "    Print this help.",
];

/// Writes a HELP reply (status lines).
pub(crate) fn help_reply(ctx: &mut Ctx, lines: &[&str]) {
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.simple(l.as_bytes());
    }
}

fn client(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    // The gate has resolved the subcommand and checked its arity.
    let sub = ctx.spec.short_name();
    match sub {
        "id" => {
            ctx.out.int(ctx.client.id as i64);
            Ok(())
        }
        "setname" => {
            if !valid_name(argv[2]) {
                return Err(CmdError::Static(errors::CLIENT_NAME_INVALID));
            }
            set_name(ctx, argv[2]);
            ctx.out.ok();
            Ok(())
        }
        "getname" => {
            let name = ctx.client.info.name();
            if name.is_empty() {
                ctx.out.null();
            } else {
                ctx.out.bulk(&name);
            }
            Ok(())
        }
        "info" => {
            let info = ctx.client.info.clone();
            let argv_mem = argv.iter().map(|a| a.len()).sum();
            let mut line = client_line(ctx, &info, Some(argv_mem));
            line.push(b'\n');
            ctx.out.verbatim(b"txt", &line);
            Ok(())
        }
        "setinfo" => {
            // Redis 7.2's CLIENT SETINFO LIB-NAME|LIB-VER value (not in 7.0.15,
            // but every modern client sends it on connect).
            let value = argv[3];
            let lib_name = is(argv[2], "lib-name");
            if !lib_name && !is(argv[2], "lib-ver") {
                return Err(CmdError::msg(format!(
                    "ERR Unrecognized option '{}'",
                    errors::lossy(argv[2])
                )));
            }
            if value.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                let what = if lib_name { "lib-name" } else { "lib-ver" };
                return Err(CmdError::msg(format!(
                    "ERR {what} cannot contain spaces, newlines or special characters."
                )));
            }
            let slot = if lib_name {
                &ctx.client.info.lib_name
            } else {
                &ctx.client.info.lib_ver
            };
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = value.to_vec();
            ctx.out.ok();
            Ok(())
        }
        "list" => client_list(ctx, argv),
        "kill" => client_kill(ctx, argv),
        "no-evict" => {
            let on = on_off(argv[2]).ok_or(CmdError::Syntax)?;
            ctx.client.info.no_evict.store(on, Relaxed);
            ctx.out.ok();
            Ok(())
        }
        "reply" => {
            use crate::client::ReplyMode;
            if is(argv[2], "on") {
                ctx.client.reply = ReplyMode::On;
                ctx.out.ok();
                Ok(())
            } else if is(argv[2], "off") {
                // No reply to this one either.
                ctx.client.reply = ReplyMode::Off;
                Ok(())
            } else if is(argv[2], "skip") {
                if ctx.client.reply != ReplyMode::Off {
                    ctx.client.reply = ReplyMode::SkipNext;
                }
                Ok(())
            } else {
                Err(CmdError::Syntax)
            }
        }
        "pause" => {
            if argv.len() > 4 {
                return Err(CmdError::msg(errors::subcommand_syntax("client", argv[1])));
            }
            if let Some(mode) = argv.get(3)
                && !(is(mode, "write") || is(mode, "all"))
            {
                return Err(CmdError::Static(errors::PAUSE_MODE));
            }
            let t = parse_i64(argv[2]).ok_or(CmdError::Static(errors::PAUSE_TIMEOUT_NOT_INT))?;
            if t < 0 {
                return Err(CmdError::Static(errors::TIMEOUT_NEGATIVE));
            }
            let mode = match argv.get(3) {
                Some(m) if is(m, "write") => crate::pause::Mode::Write,
                _ => crate::pause::Mode::All,
            };
            ctx.srv.pause.pause(ctx.now.saturating_add(t as u64), mode);
            ctx.out.ok();
            Ok(())
        }
        "unpause" => {
            ctx.srv.pause.unpause();
            ctx.out.ok();
            Ok(())
        }
        "tracking" => client_tracking(ctx, argv),
        "caching" => client_caching(ctx, argv),
        "getredir" => {
            ctx.out.int(ctx.client.info.tracking.redirect_shown());
            Ok(())
        }
        "trackinginfo" => client_trackinginfo(ctx),
        "unblock" => {
            let id = parse_i64(argv[2]).ok_or(CmdError::NotInteger)?;
            let mut error = false;
            match argv.len() {
                3 => {}
                4 => {
                    error = is(argv[3], "error");
                    if !(error || is(argv[3], "timeout")) {
                        return Err(CmdError::Static(errors::UNBLOCK_REASON));
                    }
                }
                _ => return Err(CmdError::msg(errors::subcommand_syntax("client", argv[1]))),
            }
            let done = id >= 0 && crate::block::unblock(ctx.srv, id as u64, error);
            ctx.out.int(done as i64);
            Ok(())
        }
        "help" => {
            help_reply(ctx, CLIENT_HELP);
            Ok(())
        }
        _ => Err(CmdError::msg(errors::unknown_subcommand("client", argv[1]))),
    }
}

fn on_off(a: &[u8]) -> Option<bool> {
    if is(a, "on") {
        Some(true)
    } else if is(a, "off") {
        Some(false)
    } else {
        None
    }
}

/// CLIENT TRACKING (ON|OFF) [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN]
/// [OPTOUT] [NOLOOP]: options are parsed first (a REDIRECT client must
/// exist now), then ON checks them against each other and the client's
/// current mode in Redis' order.
fn client_tracking(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    use crate::tracking::flags::{BCAST, NOLOOP, ON, OPTIN, OPTOUT};
    let mut redirect = 0u64;
    let mut opts = 0u32;
    let mut prefixes: Vec<&[u8]> = Vec::new();
    let mut i = 3;
    while let Some(&opt) = argv.get(i) {
        let more = argv.len() - 1 - i;
        if is(opt, "redirect") && more >= 1 {
            i += 1;
            if redirect != 0 {
                return Err(CmdError::Static(errors::TRACKING_SINGLE_REDIRECT));
            }
            let id = parse_i64(argv[i]).ok_or(CmdError::NotInteger)?;
            if id <= 0 || crate::tracking::live_client(ctx.srv, id as u64).is_none() {
                return Err(CmdError::Static(errors::TRACKING_REDIRECT_MISSING));
            }
            redirect = id as u64;
        } else if is(opt, "bcast") {
            opts |= BCAST;
        } else if is(opt, "optin") {
            opts |= OPTIN;
        } else if is(opt, "optout") {
            opts |= OPTOUT;
        } else if is(opt, "noloop") {
            opts |= NOLOOP;
        } else if is(opt, "prefix") && more >= 1 {
            i += 1;
            prefixes.push(argv[i]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    match on_off(argv[2]) {
        Some(true) => {
            let cur = ctx.client.info.tracking.flags();
            if opts & BCAST == 0 && !prefixes.is_empty() {
                return Err(CmdError::Static(errors::TRACKING_PREFIX_WITHOUT_BCAST));
            }
            if cur & ON != 0 && (cur & BCAST != 0) != (opts & BCAST != 0) {
                return Err(CmdError::Static(errors::TRACKING_BCAST_SWITCH));
            }
            if opts & BCAST != 0 && opts & (OPTIN | OPTOUT) != 0 {
                return Err(CmdError::Static(errors::TRACKING_OPTIONS_WITH_BCAST));
            }
            if opts & OPTIN != 0 && opts & OPTOUT != 0 {
                return Err(CmdError::Static(errors::TRACKING_OPTIN_AND_OPTOUT));
            }
            if (opts & OPTIN != 0 && cur & OPTOUT != 0) || (opts & OPTOUT != 0 && cur & OPTIN != 0)
            {
                return Err(CmdError::Static(errors::TRACKING_OPTIN_OPTOUT_SWITCH));
            }
            if opts & BCAST != 0
                && let Some((text, fatal)) =
                    crate::tracking::prefix_collision(ctx.srv, ctx.client.id, &prefixes)
            {
                if fatal {
                    return Err(CmdError::msg(text));
                }
                // Redis replies this error and goes on enabling tracking,
                // which answers +OK too (two replies to one command).
                crate::exec::reply_error(ctx.srv, ctx.out, text.as_bytes());
            }
            let info = ctx.client.info.clone();
            crate::tracking::enable(ctx.srv, &info, redirect, opts, &prefixes);
        }
        Some(false) => crate::tracking::disable(ctx.srv, ctx.client),
        None => return Err(CmdError::Syntax),
    }
    ctx.out.ok();
    Ok(())
}

/// CLIENT CACHING YES|NO: the next command's keys are remembered (OPTIN) or
/// not (OPTOUT).
fn client_caching(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    use crate::tracking::flags::{ON, OPTIN, OPTOUT};
    let f = ctx.client.info.tracking.flags();
    if f & ON == 0 {
        return Err(CmdError::Static(errors::CACHING_WITHOUT_TRACKING));
    }
    if is(argv[2], "yes") {
        if f & OPTIN == 0 {
            return Err(CmdError::Static(errors::CACHING_YES_WITHOUT_OPTIN));
        }
    } else if is(argv[2], "no") {
        if f & OPTOUT == 0 {
            return Err(CmdError::Static(errors::CACHING_NO_WITHOUT_OPTOUT));
        }
    } else {
        return Err(CmdError::Syntax);
    }
    ctx.client.tracking.caching = true;
    ctx.out.ok();
    Ok(())
}

/// CLIENT TRACKINGINFO: a map of `flags` (a set), `redirect` and
/// `prefixes`.
fn client_trackinginfo(ctx: &mut Ctx) -> CmdResult {
    use crate::tracking::flags::{BCAST, BROKEN_REDIR, NOLOOP, ON, OPTIN, OPTOUT};
    let st = &ctx.client.info.tracking;
    let f = st.flags();
    let caching = ctx.client.tracking.caching;
    let mut names: Vec<&[u8]> = vec![if f & ON != 0 { b"on" } else { b"off" }];
    if f & BCAST != 0 {
        names.push(b"bcast");
    }
    if f & OPTIN != 0 {
        names.push(b"optin");
        if caching {
            names.push(b"caching-yes");
        }
    }
    if f & OPTOUT != 0 {
        names.push(b"optout");
        if caching {
            names.push(b"caching-no");
        }
    }
    if f & NOLOOP != 0 {
        names.push(b"noloop");
    }
    if f & BROKEN_REDIR != 0 {
        names.push(b"broken_redirect");
    }
    let redirect = st.redirect_shown();
    let prefixes = ctx.srv.tracking.prefixes_of(ctx.client.id);
    ctx.out.map(3);
    ctx.out.bulk(b"flags");
    ctx.out.set(names.len());
    for n in names {
        ctx.out.bulk(n);
    }
    ctx.out.bulk(b"redirect");
    ctx.out.int(redirect);
    ctx.out.bulk(b"prefixes");
    ctx.out.array(prefixes.len());
    for p in &prefixes {
        ctx.out.bulk(p);
    }
    Ok(())
}

/// Client types accepted by LIST/KILL TYPE (Redis' `getClientTypeByName`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    Pubsub,
    Master,
}

fn client_type(name: &[u8]) -> Option<ClientType> {
    if is(name, "normal") {
        Some(ClientType::Normal)
    } else if is(name, "slave") || is(name, "replica") {
        Some(ClientType::Replica)
    } else if is(name, "pubsub") {
        Some(ClientType::Pubsub)
    } else if is(name, "master") {
        Some(ClientType::Master)
    } else {
        None
    }
}

/// Our master's link, a replica's link, a subscriber, or a normal client.
fn type_of(c: &ClientInfo) -> ClientType {
    if c.master.load(Relaxed) {
        ClientType::Master
    } else if c.replica.load(Relaxed) {
        ClientType::Replica
    } else if c.in_pubsub() {
        ClientType::Pubsub
    } else {
        ClientType::Normal
    }
}

/// CLIENT LIST [TYPE type] | [ID id [id ...]]
fn client_list(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let mut want_type = None;
    let mut ids: Option<Vec<i64>> = None;
    if argv.len() == 4 && is(argv[2], "type") {
        want_type = Some(
            client_type(argv[3])
                .ok_or_else(|| CmdError::msg(errors::unknown_client_type(argv[3])))?,
        );
    } else if argv.len() > 3 && is(argv[2], "id") {
        let mut v = Vec::with_capacity(argv.len() - 3);
        for a in &argv[3..] {
            v.push(parse_i64(a).ok_or(CmdError::Static(errors::INVALID_CLIENT_ID))?);
        }
        ids = Some(v);
    } else if argv.len() != 2 {
        return Err(CmdError::Syntax);
    }
    let me = ctx.client.id;
    let argv_mem: usize = argv.iter().map(|a| a.len()).sum();
    let mut text = Vec::new();
    let emit = |ctx: &Ctx, c: &ClientInfo, text: &mut Vec<u8>| {
        let mine = (c.id == me).then_some(argv_mem);
        text.extend_from_slice(&client_line(ctx, c, mine));
        text.push(b'\n');
    };
    match ids {
        Some(ids) => {
            // Redis lists each requested id once per occurrence, in argument order.
            for id in ids {
                if id <= 0 {
                    continue;
                }
                if let Some(c) = ctx.srv.clients.get(id as u64) {
                    emit(ctx, &c, &mut text);
                }
            }
        }
        None => {
            for c in ctx.srv.clients.all() {
                if want_type.is_some_and(|t| t != type_of(&c)) {
                    continue;
                }
                emit(ctx, &c, &mut text);
            }
        }
    }
    ctx.out.verbatim(b"txt", &text);
    Ok(())
}

/// The name of a client's last command (`NULL` before the first one).
fn last_cmd_name(ctx: &Ctx, c: &ClientInfo) -> &'static str {
    match c.last_cmd.load(Relaxed) {
        0 => "NULL",
        i => ctx
            .srv
            .stats
            .index
            .specs
            .get(i - 1)
            .map_or("NULL", |s| s.name),
    }
}

/// Size of the read buffer the connection loop starts with.
const READ_BUF: usize = 16 * 1024;
/// Redis' reply block size (PROTO_REPLY_CHUNK_BYTES), for obl/oll/omem.
const REPLY_CHUNK: usize = 16 * 1024;

/// One `CLIENT LIST` / `CLIENT INFO` line in Redis 7.0's field order, without
/// the trailing newline. `me` carries the calling connection's argv size:
/// only the caller has a command in flight (argv-mem) and pending output
/// (obl); every other connection is between commands.
pub fn client_line(ctx: &Ctx, c: &ClientInfo, me: Option<usize>) -> Vec<u8> {
    use std::fmt::Write;
    let now = ctx.now;
    let mut flags = String::new();
    let multi = c.multi.load(Relaxed);
    let subs = c.subs.load(Relaxed);
    if subs != 0 {
        flags.push('P');
    }
    if multi {
        flags.push('x');
    }
    if c.blocked.load(Relaxed) {
        flags.push('b');
    }
    c.tracking.list_flags(&mut flags);
    if c.dirty_cas.load(Relaxed) {
        flags.push('d');
    }
    if me.is_some() && ctx.client.close_after_reply {
        flags.push('c');
    }
    if c.killed.load(Relaxed) {
        flags.push('A');
    }
    if c.replica.load(Relaxed) {
        flags.push('S');
    }
    if c.master.load(Relaxed) {
        flags.push('M');
    }
    if c.no_evict.load(Relaxed) {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let qbuf = c.qbuf.load(Relaxed);
    // The connection loop does not publish its free space: derive it from the
    // initial read buffer size when it is not set.
    let qbuf_free = match c.qbuf_free.load(Relaxed) {
        0 => READ_BUF.saturating_sub(qbuf),
        n => n,
    };
    let argv_mem = me.unwrap_or(0);
    // Output not taken by the client yet: the caller's own batch so far, or
    // a stalled connection's unsent replies, plus mail. Shown as Redis
    // splits it: the first 16 KB in its reply buffer (obl), the rest in a
    // list of 16 KB blocks (oll blocks, omem bytes).
    let pending = if me.is_some() { ctx.out.buf.len() } else { 0 } + c.pending_output();
    let obl = pending.min(REPLY_CHUNK);
    let omem = pending - obl;
    let oll = omem.div_ceil(REPLY_CHUNK);
    let rbs = READ_BUF.max(qbuf + qbuf_free);
    let tot_mem = c.fixed_mem() + argv_mem + pending;
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "id={} addr={} laddr={} fd={} name=",
        c.id, c.addr, c.laddr, c.fd
    );
    let mut out = s.into_bytes();
    out.extend_from_slice(&c.name());
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        " age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem=0 \
         rbs={} rbp={} obl={} oll={} omem={} tot-mem={} events=r cmd={} user={} redir={} resp={}",
        now.saturating_sub(c.created_ms) / 1000,
        now.saturating_sub(c.last_interaction_ms.load(Relaxed)) / 1000,
        flags,
        c.db.load(Relaxed),
        subs & 0xfffff,
        (subs >> 20) & 0xfffff,
        subs >> 40,
        if multi {
            c.queued.load(Relaxed) as i64
        } else {
            -1
        },
        qbuf,
        qbuf_free,
        argv_mem,
        rbs,
        rbs,
        obl,
        oll,
        omem,
        tot_mem,
        last_cmd_name(ctx, c),
        String::from_utf8_lossy(&c.user.lock().unwrap_or_else(|p| p.into_inner())),
        c.tracking.redirect_shown(),
        c.resp.load(Relaxed),
    );
    out.extend_from_slice(s.as_bytes());
    out
}

/// Kill filters of the new CLIENT KILL form.
#[derive(Default)]
struct KillFilter<'a> {
    id: Option<u64>,
    addr: Option<&'a [u8]>,
    laddr: Option<&'a [u8]>,
    ctype: Option<ClientType>,
    user: Option<&'a [u8]>,
}

impl KillFilter<'_> {
    fn matches(&self, c: &ClientInfo) -> bool {
        self.user
            .is_none_or(|u| *c.user.lock().unwrap_or_else(|p| p.into_inner()) == u)
            && self.id.is_none_or(|id| id == c.id)
            && self.addr.is_none_or(|a| a == c.addr.as_bytes())
            && self.laddr.is_none_or(|a| a == c.laddr.as_bytes())
            && self.ctype.is_none_or(|t| t == type_of(c))
    }
}

/// CLIENT KILL ip:port | CLIENT KILL <filter> <value> ...
fn client_kill(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let old_form = argv.len() == 3;
    let mut f = KillFilter::default();
    let mut skipme = true;
    if old_form {
        f.addr = Some(argv[2]);
        skipme = false;
    } else {
        let mut i = 2;
        while i < argv.len() {
            let Some(&val) = argv.get(i + 1) else {
                return Err(CmdError::Syntax);
            };
            let opt = argv[i];
            if is(opt, "id") {
                match parse_i64(val) {
                    Some(v) if v >= 1 => f.id = Some(v as u64),
                    _ => return Err(CmdError::Static(errors::CLIENT_ID_NOT_POSITIVE)),
                }
            } else if is(opt, "type") {
                f.ctype = Some(
                    client_type(val)
                        .ok_or_else(|| CmdError::msg(errors::unknown_client_type(val)))?,
                );
            } else if is(opt, "addr") {
                f.addr = Some(val);
            } else if is(opt, "laddr") {
                f.laddr = Some(val);
            } else if is(opt, "user") {
                if !ctx.srv.acl.names().iter().any(|n| n == val) {
                    return Err(CmdError::msg(errors::no_such_user(val)));
                }
                f.user = Some(val);
            } else if is(opt, "skipme") {
                if is(val, "yes") {
                    skipme = true;
                } else if is(val, "no") {
                    skipme = false;
                } else {
                    return Err(CmdError::Syntax);
                }
            } else {
                return Err(CmdError::Syntax);
            }
            i += 2;
        }
    }
    let me = ctx.client.id;
    let mut killed = 0i64;
    for c in ctx.srv.clients.all() {
        if !f.matches(&c) || (skipme && c.id == me) {
            continue;
        }
        if c.id == me {
            // Reply first, then close (Redis: CLIENT_CLOSE_AFTER_REPLY).
            ctx.client.close_after_reply = true;
        } else {
            c.kill();
        }
        killed += 1;
    }
    if old_form {
        if killed == 0 {
            return Err(CmdError::Static(errors::NO_SUCH_CLIENT));
        }
        ctx.out.ok();
    } else {
        ctx.out.int(killed);
    }
    Ok(())
}

/// Drives commands through the real execution gate without sockets, for the
/// tests of this family and of admin/info/command.
#[cfg(test)]
pub(crate) mod harness {
    use std::sync::Arc;

    use protocol::resp::Reply;

    use crate::client::{Client, ClientInfo};
    use crate::config::Config;
    use crate::db::now_ms;
    use crate::server::Server;

    pub struct Conn {
        pub client: Client,
        pub out: Reply,
    }

    pub struct H {
        pub srv: Arc<Server>,
        next_port: u16,
    }

    impl H {
        pub fn new() -> H {
            H::with(|_| {})
        }

        pub fn with(f: impl FnOnce(&mut Config)) -> H {
            let mut cfg = Config::new();
            // No save points (the tests' `--save ''`): a unit test writes
            // no dump.rdb into the crate directory unless it asks to.
            cfg.save_params.clear();
            f(&mut cfg);
            H {
                srv: Server::new(cfg, "/bin/codis-server".into(), String::new()),
                next_port: 50000,
            }
        }

        /// A registered connection from 127.0.0.1, authenticated unless a
        /// password is configured.
        pub fn connect(&mut self) -> Conn {
            self.next_port += 1;
            let id = self
                .srv
                .next_client_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let addr = format!("127.0.0.1:{}", self.next_port);
            let info = Arc::new(ClientInfo::new(
                id,
                addr,
                "127.0.0.1:6379".into(),
                7,
                now_ms(),
            ));
            let auth = self.srv.config().requirepass.is_none();
            info.authenticated
                .store(auth, std::sync::atomic::Ordering::Relaxed);
            self.srv.clients.add(info.clone());
            Conn {
                client: Client::new(info, auth),
                out: Reply::new(),
            }
        }

        /// Runs one command (redis-cli style quoting) and returns its reply.
        pub fn run(&self, c: &mut Conn, line: &str) -> Vec<u8> {
            let args = protocol::resp::split_args(line.as_bytes()).unwrap_or_default();
            self.run_args(c, &args.iter().map(|a| a.as_slice()).collect::<Vec<_>>())
        }

        pub fn run_args(&self, c: &mut Conn, argv: &[&[u8]]) -> Vec<u8> {
            crate::exec::execute(&self.srv, &mut c.client, &mut c.out, now_ms(), argv);
            std::mem::take(&mut c.out.buf)
        }

        /// `run` as text (lossy).
        pub fn text(&self, c: &mut Conn, line: &str) -> String {
            String::from_utf8_lossy(&self.run(c, line)).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::harness::H;

    #[test]
    fn ping_echo_select() {
        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(h.text(&mut c, "PING"), "+PONG\r\n");
        assert_eq!(h.text(&mut c, "PING hi"), "$2\r\nhi\r\n");
        assert_eq!(
            h.text(&mut c, "PING a b"),
            "-ERR wrong number of arguments for 'ping' command\r\n"
        );
        assert_eq!(h.text(&mut c, "ECHO x"), "$1\r\nx\r\n");
        assert_eq!(
            h.text(&mut c, "SELECT 2147483648"),
            format!("-{}\r\n", errors::INT_ARG_OUT_OF_RANGE)
        );
        assert_eq!(
            h.text(&mut c, "SELECT 16"),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(h.text(&mut c, "SELECT 15"), "+OK\r\n");
        assert_eq!(c.client.db, 15);
        assert_eq!(c.client.info.db.load(Relaxed), 15);
        assert_eq!(h.text(&mut c, "QUIT"), "+OK\r\n");
        assert!(c.client.close_after_reply);
    }

    #[test]
    fn hello_switches_protocol() {
        let mut h = H::new();
        let mut c = h.connect();
        let id = c.client.id;
        let r = h.text(&mut c, "HELLO 3 SETNAME app");
        assert_eq!(
            r,
            format!(
                "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n\
                 $2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
                 $7\r\nmodules\r\n*0\r\n"
            )
        );
        assert!(c.out.resp3);
        assert_eq!(c.client.info.resp.load(Relaxed), 3);
        assert_eq!(h.text(&mut c, "CLIENT GETNAME"), "$3\r\napp\r\n");
        assert_eq!(h.text(&mut c, "CLIENT ID"), format!(":{id}\r\n"));
        assert!(h.text(&mut c, "HELLO 2").starts_with("*14\r\n"));
        assert!(!c.out.resp3);
        assert_eq!(
            h.text(&mut c, "HELLO 4"),
            "-NOPROTO unsupported protocol version\r\n"
        );
        assert_eq!(
            h.text(&mut c, "HELLO 3 AUTH x"),
            "-ERR Syntax error in HELLO option 'AUTH'\r\n"
        );
        assert_eq!(
            h.text(&mut c, "HELLO 3 SETNAME \"a b\""),
            format!("-{}\r\n", errors::CLIENT_NAME_INVALID)
        );
        assert!(!c.out.resp3, "a failed HELLO changes nothing");
        // The nopass default user accepts any password.
        assert!(
            h.text(&mut c, "HELLO 2 AUTH default whatever")
                .starts_with("*14\r\n")
        );
        assert_eq!(
            h.text(&mut c, "HELLO 2 AUTH bob x"),
            format!("-{}\r\n", errors::WRONGPASS)
        );
    }

    #[test]
    fn auth_and_reset() {
        let mut h = H::with(|c| c.requirepass = Some(b"secret".to_vec()));
        let mut c = h.connect();
        assert!(!c.client.authenticated);
        assert_eq!(
            h.text(&mut c, "PING"),
            "-NOAUTH Authentication required.\r\n"
        );
        assert_eq!(
            h.text(&mut c, "HELLO 3"),
            format!("-{}\r\n", errors::HELLO_NOAUTH)
        );
        assert_eq!(
            h.text(&mut c, "AUTH wrong"),
            format!("-{}\r\n", errors::WRONGPASS)
        );
        assert_eq!(h.text(&mut c, "AUTH a b c"), "-ERR syntax error\r\n");
        assert_eq!(h.text(&mut c, "AUTH default secret"), "+OK\r\n");
        assert!(c.client.authenticated && c.client.info.authenticated.load(Relaxed));
        assert_eq!(
            h.text(&mut c, "AUTH wrong"),
            format!("-{}\r\n", errors::WRONGPASS)
        );
        assert!(
            c.client.authenticated,
            "a failed AUTH keeps the current user"
        );
        h.text(&mut c, "HELLO 3 SETNAME n");
        h.text(&mut c, "SELECT 4");
        h.text(&mut c, "CLIENT NO-EVICT on");
        assert_eq!(h.text(&mut c, "RESET"), "+RESET\r\n");
        assert!(!c.out.resp3);
        assert_eq!(c.client.db, 0);
        assert!(c.client.info.name().is_empty());
        assert!(!c.client.authenticated);
        assert!(c.client.info.no_evict.load(Relaxed));
        assert!(
            h.text(&mut c, "HELLO 3 AUTH default secret")
                .starts_with("%7\r\n")
        );
        assert!(c.client.authenticated);

        let mut h = H::new();
        let mut c = h.connect();
        assert_eq!(
            h.text(&mut c, "AUTH x"),
            format!("-{}\r\n", errors::NO_PASSWORD)
        );
        assert_eq!(h.text(&mut c, "AUTH default x"), "+OK\r\n");
        assert_eq!(h.text(&mut c, "RESET"), "+RESET\r\n");
        assert!(c.client.authenticated);
    }

    /// The field names of a CLIENT LIST line, in order.
    fn fields(line: &str) -> Vec<&str> {
        line.split(' ')
            .map(|f| f.split('=').next().unwrap_or(""))
            .collect()
    }

    #[test]
    fn client_list_and_info() {
        let mut h = H::new();
        let mut a = h.connect();
        let mut b = h.connect();
        h.text(&mut b, "CLIENT SETNAME bee");
        h.text(&mut b, "SELECT 3");
        let list = h.text(&mut a, "CLIENT LIST");
        let body = list
            .split_once("\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .trim_end_matches("\r\n");
        let lines: Vec<&str> = body.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2, "{list}");
        let expect = [
            "id",
            "addr",
            "laddr",
            "fd",
            "name",
            "age",
            "idle",
            "flags",
            "db",
            "sub",
            "psub",
            "ssub",
            "multi",
            "qbuf",
            "qbuf-free",
            "argv-mem",
            "multi-mem",
            "rbs",
            "rbp",
            "obl",
            "oll",
            "omem",
            "tot-mem",
            "events",
            "cmd",
            "user",
            "redir",
            "resp",
        ];
        for l in &lines {
            assert_eq!(fields(l), expect, "{l}");
        }
        assert!(lines[0].starts_with(&format!("id={} addr=127.0.0.1:", a.client.id)));
        assert!(
            lines[0].contains(" name= ")
                && lines[0].contains(" argv-mem=10 ")
                && lines[0].contains(" cmd=client|list ")
        );
        assert!(
            lines[1].contains(" name=bee ")
                && lines[1].contains(" db=3 ")
                && lines[1].contains(" cmd=select ")
        );
        assert!(
            lines[1].contains(" flags=N ")
                && lines[1].contains(" argv-mem=0 ")
                && lines[1].ends_with(" resp=2")
        );
        let info = h.text(&mut b, "CLIENT INFO");
        assert!(
            info.contains(&format!("id={} ", b.client.id)) && info.ends_with("resp=2\n\r\n"),
            "{info}"
        );
        let only_b = h.text(&mut a, &format!("CLIENT LIST ID {} 99999", b.client.id));
        assert_eq!(only_b.matches("id=").count(), 1, "{only_b}");
        assert!(only_b.contains("name=bee"));
        assert_eq!(h.text(&mut a, "CLIENT LIST TYPE master"), "$0\r\n\r\n");
        assert_eq!(
            h.text(&mut a, "CLIENT LIST TYPE x"),
            "-ERR Unknown client type 'x'\r\n"
        );
        assert_eq!(
            h.text(&mut a, "CLIENT LIST ID x"),
            "-ERR Invalid client ID\r\n"
        );
        assert_eq!(h.text(&mut a, "CLIENT LIST x"), "-ERR syntax error\r\n");
        h.text(&mut a, "HELLO 3");
        assert!(h.text(&mut a, "CLIENT INFO").starts_with("="));
        assert!(
            h.text(&mut a, "CLIENT LIST ID 0")
                .starts_with("=4\r\ntxt:\r\n")
        );
    }

    #[test]
    fn client_kill() {
        let mut h = H::new();
        let mut a = h.connect();
        let b = h.connect();
        let c = h.connect();
        assert_eq!(
            h.text(&mut a, &format!("CLIENT KILL ID {}", b.client.id)),
            ":1\r\n"
        );
        assert!(b.client.info.killed.load(Relaxed));
        assert!(!c.client.info.killed.load(Relaxed));
        assert_eq!(
            h.text(&mut a, "CLIENT KILL 1.2.3.4:5"),
            "-ERR No such client\r\n"
        );
        assert_eq!(
            h.text(&mut a, &format!("CLIENT KILL {}", c.client.info.addr)),
            "+OK\r\n"
        );
        assert!(c.client.info.killed.load(Relaxed));
        assert_eq!(
            h.text(&mut a, "CLIENT KILL ID 0"),
            format!("-{}\r\n", errors::CLIENT_ID_NOT_POSITIVE)
        );
        assert_eq!(
            h.text(&mut a, "CLIENT KILL USER bob"),
            "-ERR No such user 'bob'\r\n"
        );
        assert_eq!(
            h.text(&mut a, "CLIENT KILL ID 1 ID"),
            "-ERR syntax error\r\n"
        );
        // SKIPME defaults to yes; with no, the caller gets its reply and is closed.
        let me = a.client.info.addr.clone();
        assert_eq!(h.text(&mut a, &format!("CLIENT KILL ADDR {me}")), ":0\r\n");
        assert!(!a.client.close_after_reply);
        assert_eq!(
            h.text(&mut a, &format!("CLIENT KILL ADDR {me} SKIPME no")),
            ":1\r\n"
        );
        assert!(a.client.close_after_reply);
        assert!(!a.client.info.killed.load(Relaxed));
    }

    #[test]
    fn client_misc() {
        let mut h = H::new();
        let mut a = h.connect();
        assert_eq!(h.text(&mut a, "CLIENT GETNAME"), "$-1\r\n");
        assert_eq!(h.text(&mut a, "CLIENT SETNAME a\\x01"), "+OK\r\n");
        assert_eq!(
            h.text(&mut a, "CLIENT SETNAME \"a\\x01\""),
            format!("-{}\r\n", errors::CLIENT_NAME_INVALID)
        );
        assert_eq!(h.text(&mut a, "CLIENT SETNAME \"\""), "+OK\r\n");
        assert_eq!(h.text(&mut a, "CLIENT GETNAME"), "$-1\r\n");
        assert_eq!(
            h.text(&mut a, "CLIENT NO-EVICT maybe"),
            "-ERR syntax error\r\n"
        );
        assert_eq!(h.text(&mut a, "CLIENT REPLY ON"), "+OK\r\n");
        assert_eq!(h.text(&mut a, "CLIENT REPLY x"), "-ERR syntax error\r\n");
        assert_eq!(
            h.text(&mut a, "CLIENT PAUSE x"),
            format!("-{}\r\n", errors::PAUSE_TIMEOUT_NOT_INT)
        );
        assert_eq!(
            h.text(&mut a, "CLIENT PAUSE x y"),
            format!("-{}\r\n", errors::PAUSE_MODE)
        );
        assert_eq!(
            h.text(&mut a, "CLIENT PAUSE -1"),
            "-ERR timeout is negative\r\n"
        );
        assert_eq!(
            h.text(&mut a, "CLIENT PAUSE 1 write x"),
            "-ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP.\r\n"
        );
        assert_eq!(h.text(&mut a, "CLIENT UNPAUSE"), "+OK\r\n");
        assert_eq!(h.text(&mut a, "CLIENT TRACKING off"), "+OK\r\n");
        assert_eq!(
            h.text(&mut a, "CLIENT TRACKING off redirect 99999"),
            format!("-{}\r\n", errors::TRACKING_REDIRECT_MISSING)
        );
        let me = a.client.id;
        assert_eq!(
            h.text(
                &mut a,
                &format!("CLIENT TRACKING off redirect {me} redirect {me}")
            ),
            format!("-{}\r\n", errors::TRACKING_SINGLE_REDIRECT)
        );
        assert_eq!(h.text(&mut a, "CLIENT GETREDIR"), ":-1\r\n");
        assert_eq!(h.text(&mut a, "CLIENT UNBLOCK 5 error"), ":0\r\n");
        assert_eq!(
            h.text(&mut a, "CLIENT UNBLOCK 5 x"),
            format!("-{}\r\n", errors::UNBLOCK_REASON)
        );
        assert!(
            h.text(&mut a, "CLIENT HELP")
                .starts_with("*47\r\n+CLIENT <subcommand>")
        );
        assert_eq!(
            h.text(&mut a, "CLIENT SETINFO lib-name redis-rs"),
            "+OK\r\n"
        );
        assert_eq!(h.text(&mut a, "CLIENT SETINFO LIB-VER 1.8.1"), "+OK\r\n");
        assert_eq!(
            h.text(&mut a, "CLIENT SETINFO lib-name \"a b\""),
            "-ERR lib-name cannot contain spaces, newlines or special characters.\r\n"
        );
        assert_eq!(
            h.text(&mut a, "CLIENT SETINFO foo x"),
            "-ERR Unrecognized option 'foo'\r\n"
        );
        assert_eq!(
            h.text(&mut a, "CLIENT SETINFO lib-name"),
            "-ERR wrong number of arguments for 'client|setinfo' command\r\n"
        );
    }

    #[test]
    fn names() {
        assert!(valid_name(b"abc-1_!~"));
        assert!(valid_name(b""));
        assert!(!valid_name(b"a b"));
        assert!(!valid_name(b"a\n"));
        assert!(!valid_name(b"\x7f"));
    }

    #[test]
    fn int32_args() {
        assert_eq!(int32_arg(b"15"), Ok(15));
        assert_eq!(int32_arg(b"-2147483648"), Ok(i32::MIN as i64));
        assert_eq!(
            int32_arg(b"2147483648"),
            Err(CmdError::Static(errors::INT_ARG_OUT_OF_RANGE))
        );
        assert_eq!(int32_arg(b"1.0"), Err(CmdError::NotInteger));
        assert_eq!(int32_arg(b" 1"), Err(CmdError::NotInteger));
    }

    #[test]
    fn client_types() {
        assert!(client_type(b"NORMAL") == Some(ClientType::Normal));
        assert!(client_type(b"slave") == Some(ClientType::Replica));
        assert!(client_type(b"replica") == Some(ClientType::Replica));
        assert!(client_type(b"pubsub") == Some(ClientType::Pubsub));
        assert!(client_type(b"master") == Some(ClientType::Master));
        assert!(client_type(b"normal2").is_none());
    }
}
