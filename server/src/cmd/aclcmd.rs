//! The ACL command (Redis 7.0's aclCommand): SETUSER, GETUSER, DELUSER,
//! USERS, LIST, WHOAMI, CAT, GENPASS, DRYRUN, LOG, SAVE/LOAD, HELP. The
//! users and their rules are acl.rs's; this file parses and answers.

use protocol::command::CmdId;
use protocol::number::parse_i64;

use crate::cmd::conn::help_reply;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Acl => acl,
        _ => return None,
    })
}

const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    The categories, or the commands of <category>.",
    "DELUSER <username> [<username> ...]",
    "    Delete users (their connections are closed).",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Whether <username> may run the command, without running it.",
    "GETUSER <username>",
    "    A user's flags, passwords and rules.",
    "GENPASS [<bits>]",
    "    A random password of <bits> bits (256 by default), in hex.",
    "LIST",
    "    Every user, as a configuration line.",
    "LOAD",
    "    Load the users of the ACL file (aclfile).",
    "LOG [<count> | RESET]",
    "    The latest denied commands and failed logins.",
    "SAVE",
    "    Write the users to the ACL file (aclfile).",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or change a user.",
    "USERS",
    "    The names of every user.",
    "WHOAMI",
    "    The user of this connection.",
    "HELP",
    "    Print this help.",
];

fn acl(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let acl = &ctx.srv.acl;
    match ctx.spec.short_name() {
        "help" => help_reply(ctx, ACL_HELP),
        "setuser" => {
            let before = acl.channels_of(argv[2]);
            acl.set_user(argv[2], &argv[3..]).map_err(CmdError::Msg)?;
            if let (Some((was_all, was)), Some((all, now))) = (before, acl.channels_of(argv[2]))
                && !all
                && (was_all || was.iter().any(|c| !now.contains(c)))
            {
                // Channel rules shrank: the user's subscribers may hold
                // channels they may no longer have (Redis closes those that
                // do; we close every subscriber of the user).
                for c in ctx.srv.clients.all() {
                    if c.subs.load(std::sync::atomic::Ordering::Relaxed) != 0
                        && *c.user.lock().unwrap_or_else(|p| p.into_inner()) == argv[2]
                        && c.id != ctx.client.id
                    {
                        c.kill();
                    }
                }
            }
            ctx.out.ok();
        }
        "deluser" => {
            let n = acl.del_users(&argv[2..]).map_err(CmdError::Static)?;
            if n > 0 {
                close_clients_of_deleted(ctx, &argv[2..]);
            }
            ctx.out.int(n as i64);
        }
        "getuser" => acl.get_user(argv[2], ctx.out),
        "users" | "list" if argv.len() == 2 => {
            let lines = if ctx.spec.short_name() == "users" {
                acl.names()
            } else {
                acl.list()
            };
            ctx.out.array(lines.len());
            for l in lines {
                ctx.out.bulk(&l);
            }
        }
        "whoami" => {
            let name = ctx
                .client
                .user
                .as_ref()
                .map_or_else(|| b"default".to_vec(), |u| u.name.clone());
            ctx.out.bulk(&name);
        }
        "load" | "save" if aclfile(ctx).is_empty() => {
            return Err(CmdError::Static(errors::ACL_NO_FILE));
        }
        "load" if argv.len() == 2 => {
            let path = aclfile(ctx);
            let replaced = acl
                .load_file(&path)
                .map_err(|e| CmdError::Msg(format!("ERR {e}")))?;
            // Redis frees every replaced user, closing its connections.
            let names: Vec<&[u8]> = replaced.iter().map(Vec::as_slice).collect();
            close_clients_of_deleted(ctx, &names);
            ctx.out.ok();
        }
        "save" if argv.len() == 2 => {
            if let Err(e) = acl.save_file(&aclfile(ctx)) {
                crate::warning!("Writing ACL file for ACL SAVE: {e}");
                return Err(CmdError::Static(errors::ACL_SAVE_FAILED));
            }
            ctx.out.ok();
        }
        "cat" if argv.len() == 2 => {
            ctx.out.array(crate::acl::CATEGORIES.len());
            for c in crate::acl::CATEGORIES {
                ctx.out.bulk(c.as_bytes());
            }
        }
        "cat" if argv.len() == 3 => {
            let Some(names) = crate::acl::category_commands(argv[2]) else {
                let mut shown = argv[2];
                shown = &shown[..shown.len().min(128)];
                return Err(CmdError::Msg(format!(
                    "ERR Unknown category '{}'",
                    String::from_utf8_lossy(shown)
                )));
            };
            ctx.out.array(names.len());
            for n in names {
                ctx.out.bulk(n.as_bytes());
            }
        }
        "genpass" if argv.len() <= 3 => {
            let bits = match argv.get(2) {
                None => 256,
                Some(a) => parse_i64(a).ok_or(CmdError::NotInteger)?,
            };
            if bits <= 0 || bits > 4096 {
                return Err(CmdError::Static(errors::ACL_GENPASS_BITS));
            }
            ctx.out.bulk(crate::acl::genpass(bits as usize).as_bytes());
        }
        "log" if argv.len() <= 3 => {
            let mut count = 10i64;
            if let Some(a) = argv.get(2) {
                if a.eq_ignore_ascii_case(b"reset") {
                    acl.log_reset();
                    ctx.out.ok();
                    return Ok(());
                }
                count = parse_i64(a).ok_or(CmdError::NotInteger)?.max(0);
            }
            acl.log_reply(count as usize, ctx.now, ctx.out);
        }
        "dryrun" => {
            let line = &argv[3..];
            let names = acl.names();
            if !names.iter().any(|n| n == argv[2]) {
                return Err(CmdError::Msg(format!(
                    "ERR User '{}' not found",
                    String::from_utf8_lossy(argv[2])
                )));
            }
            let Some((i, spec)) = crate::acl::index_of(line) else {
                return Err(CmdError::Msg(format!(
                    "ERR Command '{}' not found",
                    String::from_utf8_lossy(argv[3])
                )));
            };
            if !spec.arity_ok(line.len()) {
                return Err(CmdError::Msg(format!(
                    "ERR wrong number of arguments for '{}' command",
                    spec.name
                )));
            }
            match acl.dry_run(argv[2], i, spec, line).map_err(CmdError::Msg)? {
                None => ctx.out.ok(),
                Some(why) => ctx.out.bulk(why.as_bytes()),
            }
        }
        _ => return Err(CmdError::msg(errors::subcommand_syntax("acl", argv[1]))),
    }
    Ok(())
}

fn aclfile(ctx: &Ctx) -> String {
    String::from_utf8_lossy(&ctx.srv.config().get_one("aclfile").unwrap_or_default()).into_owned()
}

/// Closes the connections authenticated as a deleted user (the caller's
/// own after this reply), as Redis' ACLFreeUserAndKillClients.
fn close_clients_of_deleted(ctx: &mut Ctx, names: &[&[u8]]) {
    let mine = ctx.client.user.as_ref().map(|u| u.name.clone());
    for c in ctx.srv.clients.all() {
        let user = c.user.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !names.contains(&user.as_slice()) {
            continue;
        }
        if c.id == ctx.client.id {
            ctx.client.close_after_reply = true;
        } else {
            c.kill();
        }
    }
    if mine.is_some_and(|m| names.contains(&m.as_slice())) {
        ctx.client.close_after_reply = true;
    }
}
