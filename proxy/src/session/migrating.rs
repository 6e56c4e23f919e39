//! Forwarding one request by slot (codis.md §3.5): the fast path, and the
//! slow path for slots that are blocked or migrating — sync (SLOTSMGRTTAGONE
//! on the source first) or semi-async (SLOTSMGRT-EXEC-WRAPPER with Codis'
//! retry ladder).

use super::*;

/// `*2 :code <inner>` from SLOTSMGRT-EXEC-WRAPPER.
pub(super) fn parse_wrapper(r: &[u8]) -> Option<(i64, &[u8])> {
    let rest = r.strip_prefix(b"*2\r\n:")?;
    let nl = memchr::memchr(b'\n', rest)?;
    let code: i64 = std::str::from_utf8(rest.get(..nl.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    Some((code, rest.get(nl + 1..)?))
}

/// A short printable form of a reply for error messages.
pub(super) fn show(r: &[u8]) -> String {
    let s = String::from_utf8_lossy(&r[..r.len().min(64)]).into_owned();
    s.replace("\r\n", " ").trim_end().to_string()
}

impl Session {
    pub(super) async fn forward_single(
        &mut self,
        slot: usize,
        hkey: &[u8],
        argv: &[&[u8]],
        data: &[u8],
    ) -> bool {
        let f = self.forward(slot, hkey, &[], argv, data).await;
        self.answer(f)
    }

    /// Queues the answer owed for a forwarded request.
    pub(super) fn answer(&mut self, f: Fwd) -> bool {
        match f {
            Fwd::Sent => {
                self.push(What::One);
                true
            }
            Fwd::Reply(r) => {
                self.reply(r);
                true
            }
            Fwd::Fail(t) => self.fail(&t),
        }
    }

    /// Routes one (sub-)request by slot. The common case (slot not blocked,
    /// not migrating) stages it at once; the rest takes [`Self::forward_slow`].
    /// `more`: keys of other tag groups in the same slot (multi-key
    /// commands), moved to the new owner too while the slot migrates.
    pub(super) async fn forward(
        &mut self,
        slot: usize,
        hkey: &[u8],
        more: &[&[u8]],
        argv: &[&[u8]],
        data: &[u8],
    ) -> Fwd {
        match self.router.try_route(slot) {
            Some(Ok(crate::router::Fast { guard, table, slot })) => {
                let r = &table.slots[slot];
                if r.migrate.is_none() || hkey.is_empty() {
                    let replica = if self.pure_read
                        && r.migrate.is_none()
                        && !self.router.cfg.backend_primary_only
                    {
                        crate::router::replica_conn(&r.replicas, self.ch(), self.seed)
                    } else {
                        None
                    };
                    let conn = replica.or_else(|| {
                        r.backend
                            .as_ref()
                            .and_then(|b| b.conn(self.ch(), self.seed))
                    });
                    let Some(conn) = conn else {
                        return Fwd::Fail(crate::errors::CONN_RESET.into());
                    };
                    self.stage(conn, data, Some(guard));
                    return Fwd::Sent;
                }
            }
            Some(Err(e)) => return Fwd::Fail(route_err_text(&e).to_string()),
            None => {}
        }
        self.forward_slow(slot, hkey, more, argv, data).await
    }

    /// Blocked or migrating slots: waits for the slot, then Codis'
    /// migration-aware forwarding.
    pub(super) async fn forward_slow(
        &mut self,
        slot: usize,
        hkey: &[u8],
        more: &[&[u8]],
        argv: &[&[u8]],
        data: &[u8],
    ) -> Fwd {
        let router = self.router.clone();
        let mut tries: u64 = 0;
        loop {
            let routed = match self.pumped(router.route(slot)).await {
                Ok(r) => r,
                Err(e) => return Fwd::Fail(route_err_text(&e).to_string()),
            };
            if let Some(from) = routed.migrate.as_ref().filter(|_| !hkey.is_empty()) {
                let Some(src) = from.conn(self.ch(), self.seed).cloned() else {
                    return Fwd::Fail(crate::errors::CONN_RESET.into());
                };
                if routed.method == 0 || !more.is_empty() {
                    // Sync (and any command with keys of several tag
                    // groups, which the source cannot run for all of
                    // them): move each key with its tag group first.
                    let (host, port) = routed
                        .backend
                        .addr
                        .rsplit_once(':')
                        .unwrap_or((&routed.backend.addr, "0"));
                    for key in std::iter::once(hkey).chain(more.iter().copied()) {
                        let req = crate::backend::mgrt_tag_one(host, port, key);
                        match self.pumped(src.call(&req)).await {
                            Ok(r) if r.starts_with(b":") => {}
                            Ok(r) => {
                                return Fwd::Fail(format!("bad slotsmgrt resp: {}", show(&r)));
                            }
                            Err(e) => return Fwd::Fail(e.text().to_string()),
                        }
                    }
                } else {
                    // Semi-async: let the source run it if it still has the key.
                    let mut args: Vec<&[u8]> = vec![b"SLOTSMGRT-EXEC-WRAPPER", hkey];
                    args.extend_from_slice(argv);
                    match self.pumped(src.call(&reencode(&args))).await {
                        Ok(r) => match parse_wrapper(&r) {
                            Some((2, inner)) => return Fwd::Reply(inner.to_vec()),
                            Some((0, _)) => {}
                            Some((1, _)) => {
                                drop(routed);
                                let ms = match tries {
                                    0..5 => 0,
                                    5..20 => tries,
                                    _ => 20,
                                };
                                tries += 1;
                                if ms == 0 {
                                    self.pumped(tokio::task::yield_now()).await;
                                } else {
                                    self.pumped(tokio::time::sleep(Duration::from_millis(ms)))
                                        .await;
                                }
                                continue;
                            }
                            _ => {
                                return Fwd::Fail(format!(
                                    "bad slotsmgrt-exec-wrapper resp: {}",
                                    show(&r)
                                ));
                            }
                        },
                        Err(e) => return Fwd::Fail(e.text().to_string()),
                    }
                }
            }
            let replica = if self.pure_read && routed.migrate.is_none() {
                crate::router::replica_conn(&routed.replicas, self.ch(), self.seed)
            } else {
                None
            };
            let Some(conn) = replica.or_else(|| routed.backend.conn(self.ch(), self.seed)) else {
                return Fwd::Fail(crate::errors::CONN_RESET.into());
            };
            self.stage(conn, data, Some(routed.guard));
            return Fwd::Sent;
        }
    }
}
