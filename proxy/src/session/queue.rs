//! MULTI/EXEC/DISCARD/WATCH/UNWATCH in the session: queuing with Redis'
//! queuing errors and the one-slot rule; EXEC and WATCH are handed to
//! `transaction.rs` like blocking commands.

use super::*;

/// A request's slot and keys.
pub(super) type SlotKeys<'a> = (usize, Vec<&'a [u8]>);

/// A queued transaction (MULTI until EXEC or DISCARD).
pub(super) struct TxQueue {
    cmds: Vec<Vec<Vec<u8>>>,
    /// The keys whose tag groups must leave a migration source first.
    keys: Vec<Vec<u8>>,
    /// The slot every key hashes to (from WATCH or the first keyed command).
    slot: Option<usize>,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    dirty: bool,
}

impl Session {
    /// WATCH or EXEC: queued like a blocking command (see `transaction.rs`).
    pub(super) fn tx_job(
        &mut self,
        kind: crate::transaction::Kind,
        argv: &[&[u8]],
        keys: Vec<Vec<u8>>,
        slot: Option<usize>,
    ) -> bool {
        let seq = self.res_base + self.res.len() as u64;
        self.res.push_back(Res::Wait);
        self.push(What::One);
        self.blocked = Some(Blocked {
            seq,
            call: Some(Job::Tx(crate::transaction::Job {
                kind,
                argv: argv.iter().map(|a| a.to_vec()).collect(),
                keys,
                slot,
                ch: self.ch(),
                seed: self.seed,
                pin: self.pin.clone(),
            })),
            task: None,
        });
        true
    }

    /// Ends WATCH: the pinned connection goes (closing it unwatches).
    pub(super) fn unpin(&mut self) {
        self.watch_slot = None;
        if let Ok(mut g) = self.pin.try_lock() {
            *g = Default::default();
        } else {
            self.pin = Default::default();
        }
    }

    /// The keys of a request and the one slot they hash to: `Ok(None)` for
    /// a command without keys, `Err(())` when they span slots.
    pub(super) fn keys_of<'a>(
        id: Option<command::CmdId>,
        argv: &[&'a [u8]],
    ) -> Result<Option<SlotKeys<'a>>, ()> {
        let Some(spec) = id.map(|i| i.spec()) else {
            return Ok(None);
        };
        let keys = command_keys(spec, argv).unwrap_or_default();
        let Some(first) = keys.first() else {
            return Ok(None);
        };
        let slot = protocol::slot::slot_of(first);
        if keys.iter().any(|k| protocol::slot::slot_of(k) != slot) {
            return Err(());
        }
        Ok(Some((slot, keys)))
    }

    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH, and every command while a
    /// transaction is queued; None: not a transaction matter.
    pub(super) fn transaction(
        &mut self,
        up: &[u8],
        id: Option<command::CmdId>,
        argv: &[&[u8]],
    ) -> Option<bool> {
        if !self.authed {
            // Before AUTH: the session-auth gate answers (and no
            // transaction can start).
            return None;
        }
        let in_multi = self.tx.is_some();
        match up {
            b"MULTI" if in_multi => {
                self.reply(err_line(crate::errors::MULTI_NESTED));
                Some(true)
            }
            b"MULTI" => {
                if argv.len() != 1 {
                    self.reply(arity_err("multi"));
                    return Some(true);
                }
                self.tx = Some(TxQueue {
                    cmds: Vec::new(),
                    keys: Vec::new(),
                    slot: self.watch_slot,
                    dirty: false,
                });
                self.reply_static(OK);
                Some(true)
            }
            b"EXEC" | b"DISCARD" if !in_multi => {
                self.reply(err_line(if up == b"EXEC" {
                    crate::errors::EXEC_WITHOUT_MULTI
                } else {
                    crate::errors::DISCARD_WITHOUT_MULTI
                }));
                Some(true)
            }
            b"DISCARD" => {
                self.tx = None;
                self.unpin();
                self.reply_static(OK);
                Some(true)
            }
            b"EXEC" => {
                let tx = self.tx.take().unwrap_or_else(|| unreachable!());
                if tx.dirty {
                    self.unpin();
                    self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
                    self.reply_static(ERR_EXECABORT);
                    return Some(true);
                }
                self.watch_slot = None;
                Some(self.tx_job(
                    crate::transaction::Kind::Exec { cmds: tx.cmds },
                    argv,
                    tx.keys,
                    tx.slot,
                ))
            }
            b"WATCH" if in_multi => {
                self.reply(err_line(crate::errors::WATCH_IN_MULTI));
                Some(true)
            }
            b"WATCH" => {
                if argv.len() < 2 {
                    self.reply(arity_err("watch"));
                    return Some(true);
                }
                let slot = protocol::slot::slot_of(argv[1]);
                if argv[2..].iter().any(|k| protocol::slot::slot_of(k) != slot)
                    || self.watch_slot.is_some_and(|w| w != slot)
                {
                    self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
                    self.reply_static(crate::errors::CROSSSLOT);
                    return Some(true);
                }
                self.watch_slot = Some(slot);
                let keys = argv[1..].iter().map(|k| k.to_vec()).collect();
                Some(self.tx_job(crate::transaction::Kind::Watch, argv, keys, Some(slot)))
            }
            b"UNWATCH" if !in_multi => {
                self.unpin();
                self.reply_static(OK);
                Some(true)
            }
            _ if !in_multi => None,
            b"QUIT" | b"RESET" => None,
            _ => {
                // Queue it, or refuse it (and make EXEC fail) as Redis
                // does at queuing time.
                let Some(spec) = id.map(|i| i.spec()) else {
                    let e = crate::errors::unknown_command(argv);
                    return Some(self.tx_refuse(e));
                };
                let argc = argv.len() as i32;
                if (spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity)
                {
                    let e = crate::errors::wrong_arity(
                        &String::from_utf8_lossy(argv[0]).to_ascii_lowercase(),
                    );
                    return Some(self.tx_refuse(e));
                }
                let queued_here = matches!(spec.proxy, ProxyPolicy::NotAllow | ProxyPolicy::Local)
                    && !matches!(up, b"PING" | b"ECHO" | b"TIME");
                if queued_here {
                    let e = crate::errors::handle_request(&crate::errors::not_in_multi(
                        &String::from_utf8_lossy(up),
                    ));
                    return Some(self.tx_refuse(e));
                }
                let keyed = match Self::keys_of(id, argv) {
                    Ok(k) => k,
                    Err(()) => return Some(self.tx_refuse_static(crate::errors::CROSSSLOT)),
                };
                let tx = self.tx.as_mut().expect("in multi");
                if let Some((slot, keys)) = keyed {
                    if tx.slot.is_some_and(|s| s != slot) {
                        return Some(self.tx_refuse_static(crate::errors::CROSSSLOT));
                    }
                    tx.slot = Some(slot);
                    for k in keys {
                        let t = protocol::slot::hash_tag(k);
                        if !tx.keys.iter().any(|m| protocol::slot::hash_tag(m) == t) {
                            tx.keys.push(k.to_vec());
                        }
                    }
                }
                tx.cmds.push(argv.iter().map(|a| a.to_vec()).collect());
                self.reply_static(b"+QUEUED\r\n");
                Some(true)
            }
        }
    }

    /// A command refused while queuing: its error, and EXEC will abort.
    pub(super) fn tx_refuse(&mut self, line: String) -> bool {
        if let Some(tx) = &mut self.tx {
            tx.dirty = true;
        }
        self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
        self.reply(err_line(&line));
        true
    }

    pub(super) fn tx_refuse_static(&mut self, line: &'static [u8]) -> bool {
        if let Some(tx) = &mut self.tx {
            tx.dirty = true;
        }
        self.router.stats.ops_fails.fetch_add(1, Ordering::Relaxed);
        self.reply_static(line);
        true
    }
}
