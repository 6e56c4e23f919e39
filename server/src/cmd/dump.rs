//! DUMP and RESTORE (codis.md §2.5), and the off-loop decoding of big
//! payloads that RESTORE and SLOTSRESTORE share. The value ⇄ payload
//! conversions themselves are `crate::codec`'s.
//!
//! * `DUMP key` and `RESTORE key ttl payload [REPLACE] [ABSTTL]
//!   [IDLETIME s] [FREQ f]` with Redis 7.0.15's argument order and texts.
//!   RESTORE reports `restore` (a REPLACE'd key gets no `del` of its own), or
//!   `del` when a TTL already past dropped a REPLACE'd key; a relative TTL is
//!   propagated as the absolute time plus `ABSTTL`, a drop as `DEL key`. A
//!   big payload is decoded off the event loop and applied outside the gate,
//!   so that path signals and propagates its change itself.
//! * [`restore_payloads_offloaded`]: payloads of [`OFFLOAD_BYTES`] or more
//!   are verified and rebuilt on tokio's blocking pool.

use protocol::command::CmdId;
use protocol::number::parse_i64;

use crate::cmd::util::is;
use crate::codec::{self, PayloadError, Restored, Thresholds};
use crate::db::{KeyAccess, now_ms};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::GENERIC;
use crate::exec::{Ctx, Handler, err};
use crate::server::Server;

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Dump => dump,
        CmdId::Restore => restore,
        _ => return None,
    })
}

// --- big payloads ------------------------------------------------------------------

/// Payloads (summed per command) at least this big are decoded on tokio's
/// blocking pool instead of the event loop: rebuilding a value of millions
/// of elements takes hundreds of milliseconds, which would stall every other
/// client (Codis decodes inline and blocks the whole target).
pub const OFFLOAD_BYTES: usize = 256 * 1024;

/// [`codec::restore_payload`] for several payloads (thresholds read once),
/// run on the blocking pool.
pub async fn restore_payloads_offloaded(
    payloads: Vec<Vec<u8>>,
    srv: &Server,
) -> Result<Vec<Restored>, PayloadError> {
    decode_offloaded(payloads, srv).await.1
}

/// [`restore_payloads_offloaded`] that hands the payloads back (RESTORE
/// propagates its payload after decoding it); `None` if the job panicked.
async fn decode_offloaded(
    payloads: Vec<Vec<u8>>,
    srv: &Server,
) -> (Option<Vec<Vec<u8>>>, Result<Vec<Restored>, PayloadError>) {
    let t = Thresholds::from_config(&srv.config());
    let job = move || {
        let r = payloads
            .iter()
            .map(|p| codec::restore_payload(p, &t))
            .collect::<Result<Vec<_>, _>>();
        (payloads, r)
    };
    // A panic in the decoder (guarded against, see protocol::rdb) is bad data.
    match tokio::task::spawn_blocking(job).await {
        Ok((p, r)) => (Some(p), r),
        Err(_) => (None, Err(PayloadError::BadFormat)),
    }
}

// --- commands --------------------------------------------------------------------

/// DUMP key: the payload, or nil (a read lookup: counts hits/misses).
fn dump(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    ctx.read_key(argv[1], |out, e| match e {
        None => out.null(),
        Some(e) => out.bulk(&codec::dump_payload(e.value())),
    });
    Ok(())
}

/// Parsed RESTORE options.
#[derive(Debug, Default, PartialEq)]
struct RestoreOpts {
    replace: bool,
    absttl: bool,
    idle: Option<i64>,
    freq: Option<i64>,
}

/// Redis' option loop: IDLETIME and FREQ exclude each other (the second one
/// is a syntax error), values are checked as they come.
fn restore_opts(opts: &[&[u8]]) -> Result<RestoreOpts, CmdError> {
    let mut o = RestoreOpts::default();
    let mut i = 0;
    while let Some(&a) = opts.get(i) {
        let next = opts.get(i + 1).copied();
        if is(a, "replace") {
            o.replace = true;
        } else if is(a, "absttl") {
            o.absttl = true;
        } else if let (true, Some(v), None) = (is(a, "idletime"), next, o.freq) {
            let v = parse_i64(v).ok_or(CmdError::NotInteger)?;
            if v < 0 {
                return err(errors::RESTORE_INVALID_IDLETIME);
            }
            o.idle = Some(v);
            i += 1;
        } else if let (true, Some(v), None) = (is(a, "freq"), next, o.idle) {
            let v = parse_i64(v).ok_or(CmdError::NotInteger)?;
            if !(0..=255).contains(&v) {
                return err(errors::RESTORE_INVALID_FREQ);
            }
            o.freq = Some(v);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(o)
}

/// The LRU clock of a key idle for `idle` seconds (Redis' `objectSetLRUOrLFU`:
/// a clock that would underflow is parked half a period ahead).
fn idle_lru(clock: u32, idle: i64) -> u32 {
    const LRU_CLOCK_MAX: i64 = (1 << 24) - 1;
    let abs = i64::from(clock) - idle;
    if abs < 0 {
        ((i64::from(clock) + LRU_CLOCK_MAX / 2) % LRU_CLOCK_MAX) as u32
    } else {
        abs as u32
    }
}

fn payload_error(e: PayloadError) -> CmdError {
    CmdError::Static(match e {
        PayloadError::VersionOrChecksum => errors::RESTORE_BAD_PAYLOAD,
        PayloadError::BadFormat => errors::RESTORE_BAD_DATA,
    })
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f].
///
/// Redis' order: options, BUSYKEY, TTL, payload. The payload is decoded
/// without any slot lock held; existence is checked again when inserting.
fn restore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let opts = restore_opts(argv.get(4..).unwrap_or_default())?;
    let db = ctx.db();
    let now = ctx.now;
    if !opts.replace && ctx.ks().lock_key(db, key).get(key, now).is_some() {
        return err(errors::BUSYKEY);
    }
    let ttl = parse_i64(argv[2]).ok_or(CmdError::NotInteger)?;
    if ttl < 0 {
        return err(errors::RESTORE_INVALID_TTL);
    }
    // Inside EXEC the reply and the propagated entry belong to the
    // transaction: decode inline there.
    if argv[3].len() >= OFFLOAD_BYTES && !ctx.client.in_exec {
        // Big value: verified and rebuilt on the blocking pool, then written
        // outside the gate, which therefore neither signals nor propagates
        // it: the change is reported here, under the key's slot lock.
        let (srv, dbi, resp3) = (ctx.srv_arc(), ctx.client.db, ctx.out.resp3);
        // The line without its payload, which comes back from the decoder.
        let mut line: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
        let payload = std::mem::take(&mut line[3]);
        ctx.defer(Box::pin(async move {
            let mut out = protocol::resp::Reply::new();
            out.resp3 = resp3;
            let (back, decoded) = decode_offloaded(vec![payload], &srv).await;
            if let Some(p) = back.and_then(|mut v| v.pop()) {
                line[3] = p;
            }
            let res = match decoded {
                Ok(mut v) => match v.pop() {
                    Some(r) => {
                        let (s, key) = (&*srv, line[1].clone());
                        let report = move |applied: Applied| {
                            s.changed(dbi, GENERIC, applied.event(), &line[1]);
                            if s.prop.active() {
                                let mut b = itoa::Buffer::new();
                                let rewritten = {
                                    let argv: Vec<&[u8]> = line.iter().map(Vec::as_slice).collect();
                                    applied
                                        .rewrite(&argv, &mut b)
                                        .map(|l| l.iter().map(|a| a.to_vec()).collect::<Vec<_>>())
                                };
                                let entry = rewritten.unwrap_or(line);
                                s.prop.emit(&[(dbi, entry)], false);
                            }
                        };
                        let (locker, now) = (s.ks.locker(), now_ms());
                        restore_apply(locker, dbi, &key, r, ttl as u64, &opts, now, report)
                    }
                    None => Err(CmdError::Static(errors::RESTORE_BAD_DATA)),
                },
                Err(e) => Err(payload_error(e)),
            };
            // Clients blocked on the key (BLPOP …) are served here, as the
            // gate serves them after a command, now that no slot is locked.
            crate::block::serve_ready(&srv);
            match res {
                Ok(()) => out.ok(),
                Err(e) => crate::exec::reply_error(&srv, &mut out, e.text().as_bytes()),
            }
            out.buf
        }));
        return Ok(());
    }
    let t = Thresholds::from_config(&ctx.srv.config());
    let restored = codec::restore_payload(argv[3], &t).map_err(payload_error)?;
    let (ks, dbi) = (ctx.ks(), ctx.client.db);
    restore_apply(ks, dbi, key, restored, ttl as u64, &opts, now, |applied| {
        ctx.changed(GENERIC, applied.event(), key);
        let mut b = itoa::Buffer::new();
        if ctx.propagating()
            && let Some(line) = applied.rewrite(argv, &mut b)
        {
            ctx.propagate(&line);
        }
    })?;
    ctx.out.ok();
    Ok(())
}

/// What a RESTORE changed (reported to [`restore_apply`]'s caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// The key was written; `Some(ms)`: with this absolute expiry, computed
    /// from a relative TTL.
    Restored(Option<u64>),
    /// The TTL was already past and REPLACE deleted the existing key.
    Deleted,
}

impl Applied {
    /// Redis' keyspace event for it.
    fn event(self) -> &'static str {
        match self {
            Applied::Restored(_) => "restore",
            Applied::Deleted => "del",
        }
    }

    /// The line Redis propagates instead of `argv`, if it rewrites it: the
    /// absolute expiry (formatted in `buf`) in place of a relative TTL plus
    /// `ABSTTL`, or `DEL key`.
    fn rewrite<'a>(self, argv: &[&'a [u8]], buf: &'a mut itoa::Buffer) -> Option<Vec<&'a [u8]>> {
        match self {
            Applied::Restored(None) => None,
            Applied::Restored(Some(ms)) => {
                let mut line = argv.to_vec();
                line[2] = buf.format(ms).as_bytes();
                line.push(b"ABSTTL");
                Some(line)
            }
            Applied::Deleted => Some(vec![b"DEL", argv[1]]),
        }
    }
}

/// Writes a decoded RESTORE value (BUSYKEY is checked again under the lock:
/// the key may have appeared while a big payload was being decoded) and
/// calls `report` with what changed, if anything, while the key's slot is
/// still locked.
#[allow(clippy::too_many_arguments)]
fn restore_apply(
    locker: crate::db::Locker<'_>,
    dbi: usize,
    key: &[u8],
    restored: Restored,
    ttl: u64,
    opts: &RestoreOpts,
    now: u64,
    report: impl FnOnce(Applied),
) -> Result<(), CmdError> {
    let Some(db) = locker.db(dbi) else {
        return err(errors::RESTORE_BAD_DATA);
    };
    let expire = match ttl {
        0 => None,
        t if opts.absttl => Some(t),
        t => Some(now.saturating_add(t)),
    };
    // Redis' objectSetLRUOrLFU: IDLETIME counts under an LRU policy, FREQ
    // under an LFU one; otherwise the key is new.
    let lru = match opts.idle {
        Some(idle) if !crate::evict::lfu_on() => idle_lru(crate::db::lru_clock(now), idle),
        _ => crate::evict::token(now),
    };
    let freq = crate::evict::restored_freq(now, opts.freq.map(|f| f as u8));
    let mut s = locker.lock_key(db, key);
    if !opts.replace && s.get(key, now).is_some() {
        return err(errors::BUSYKEY);
    }
    if matches!(expire, Some(e) if e <= now) {
        // Already expired: nothing is created; REPLACE still deletes.
        let old = if opts.replace { s.remove(key) } else { None };
        if old.is_some() {
            report(Applied::Deleted);
        }
        drop(s);
        if let Some(old) = old {
            crate::db::drop_later(old);
        }
        return Ok(());
    }
    let mut e = restored.into_entry(key, expire, lru);
    if let Some(v) = freq {
        e.set_lru(v);
    }
    let old = s.put(e);
    report(Applied::Restored(expire.filter(|_| !opts.absttl)));
    drop(s);
    if let Some(old) = old {
        crate::db::drop_later(old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of `DUMP key`.
    fn dumped(t: &mut crate::testkit::Harness, key: &str) -> Vec<u8> {
        let out = t.run_args(&[b"DUMP", key.as_bytes()]);
        let start = out.iter().position(|&c| c == b'\n').unwrap() + 1;
        out[start..out.len() - 2].to_vec()
    }

    /// A relative TTL goes out absolute with ABSTTL; a past TTL that dropped
    /// a REPLACE'd key goes out as DEL; a RESTORE that created nothing and
    /// failed ones go out not at all.
    #[test]
    fn restore_propagation() {
        use crate::testkit::Harness;
        let mut t = Harness::new();
        t.run("SET s hello");
        let p = dumped(&mut t, "s");
        let lossy = String::from_utf8_lossy(&p).into_owned();
        t.capture();
        let restore = |t: &mut Harness, args: &[&str]| {
            let mut argv: Vec<&[u8]> = vec![b"RESTORE", args[0].as_bytes(), args[1].as_bytes(), &p];
            argv.extend(args[2..].iter().map(|a| a.as_bytes()));
            String::from_utf8_lossy(&t.run_args(&argv)).into_owned()
        };
        assert_eq!(restore(&mut t, &["k", "100"]), "+OK\r\n");
        assert_eq!(restore(&mut t, &["k", "0", "REPLACE"]), "+OK\r\n");
        assert_eq!(
            restore(&mut t, &["k", "4102444800000", "ABSTTL", "REPLACE"]),
            "+OK\r\n"
        );
        assert!(restore(&mut t, &["k", "0"]).starts_with("-BUSYKEY"));
        assert_eq!(restore(&mut t, &["n", "1", "ABSTTL"]), "+OK\r\n");
        assert_eq!(restore(&mut t, &["k", "1", "ABSTTL", "REPLACE"]), "+OK\r\n");
        assert_eq!(
            t.propagated(),
            [
                "SELECT 0".to_string(),
                format!("RESTORE k {} {lossy} ABSTTL", t.now + 100),
                format!("RESTORE k 0 {lossy} REPLACE"),
                format!("RESTORE k 4102444800000 {lossy} ABSTTL REPLACE"),
                "DEL k".into(),
            ]
        );
    }

    /// The big-payload path runs outside the gate and propagates itself.
    #[tokio::test]
    async fn deferred_restore_propagates_itself() {
        use crate::testkit::Harness;
        let mut t = Harness::new();
        let big = vec![b'x'; OFFLOAD_BYTES + 1];
        t.run_args(&[b"SET", b"big", &big]);
        let p = dumped(&mut t, "big");
        t.capture();
        let before = now_ms();
        let out = t.run_args(&[b"RESTORE", b"copy", b"5000", &p, b"IDLETIME", b"1"]);
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        assert!(t.propagated().is_empty(), "not through the gate");
        let pending = t.client.pending.take().expect("deferred");
        assert_eq!(pending.await, b"+OK\r\n");
        let after = now_ms();
        let lines = t.propagated();
        assert_eq!(lines.len(), 2, "{}", lines.len());
        assert_eq!(lines[0], "SELECT 0");
        let parts: Vec<&str> = lines[1].splitn(4, ' ').collect();
        assert_eq!(parts[..2], ["RESTORE", "copy"]);
        let at: u64 = parts[2].parse().unwrap();
        assert!((before + 5000..=after + 5000).contains(&at));
        let lossy = String::from_utf8_lossy(&p);
        assert_eq!(parts[3], format!("{lossy} IDLETIME 1 ABSTTL"));
        assert_eq!(t.run("STRLEN copy"), format!(":{}\r\n", big.len()));
        // BUSYKEY: nothing changes, nothing is propagated.
        t.run_args(&[b"RESTORE", b"copy", b"0", &p]);
        assert!(t.client.pending.is_none());
        assert!(t.propagated().is_empty());
    }

    #[test]
    fn options() {
        let o = |a: &[&str]| {
            let v: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
            restore_opts(&v)
        };
        assert_eq!(
            o(&["REPLACE", "absttl", "idletime", "5"]),
            Ok(RestoreOpts {
                replace: true,
                absttl: true,
                idle: Some(5),
                freq: None
            })
        );
        assert_eq!(o(&["idletime"]), Err(CmdError::Syntax));
        assert_eq!(o(&["freq", "1", "idletime", "1"]), Err(CmdError::Syntax));
        assert_eq!(o(&["idletime", "x"]), Err(CmdError::NotInteger));
        assert_eq!(
            o(&["idletime", "-1"]),
            Err(CmdError::Static(errors::RESTORE_INVALID_IDLETIME))
        );
        assert_eq!(
            o(&["freq", "256"]),
            Err(CmdError::Static(errors::RESTORE_INVALID_FREQ))
        );
        assert_eq!(idle_lru(100, 10), 90);
        assert_eq!(idle_lru(5, 10), 5 + ((1 << 24) - 1) / 2);
    }
}
