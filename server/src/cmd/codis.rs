//! Codis' per-slot commands on the source side of a slot (codis.md §2.2–§2.6):
//! the inspection commands SLOTSHASHKEY, SLOTSINFO, SLOTSSCAN, SLOTSCHECK and
//! SLOTSDEL (§2.4), SLOTSRESTORE, the target side of sync migration (§2.5),
//! and argument parsing for the sync migration family SLOTSMGRT{ONE,TAGONE,
//! SLOT,TAGSLOT} (§2.3, §2.6), whose network work lives in `migrate/sync.rs`.
//!
//! Our slot table *is* the keyspace (db/mod.rs), so SLOTSCHECK verifies that
//! every key is stored in the table of the slot it hashes to and can be found
//! through its hash there (steps 1–2), and that the tag index names exactly the
//! tagged keys of each slot (step 3).

use protocol::command::CmdId;
use protocol::slot::{SLOTS, hash_tag, slot_of};

use crate::cmd::util::{c_is, int_arg, parse_cursor, scan_head};
use crate::db::KeyAccess;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};
use crate::migrate::sync::{self as msync, What};
use crate::server::Server;

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Slotshashkey => slotshashkey,
        CmdId::Slotsinfo => slotsinfo,
        CmdId::Slotsscan => slotsscan,
        CmdId::Slotsdel => slotsdel,
        CmdId::Slotscheck => slotscheck,
        CmdId::Slotsrestore => slotsrestore,
        CmdId::Slotsmgrtone => slotsmgrtone,
        CmdId::Slotsmgrttagone => slotsmgrttagone,
        CmdId::Slotsmgrtslot => slotsmgrtslot,
        CmdId::Slotsmgrttagslot => slotsmgrttagslot,
        _ => return None,
    })
}

/// Codis parses slot arguments as a long that must fit an int32
/// (codis.md §2.3).
pub fn int32_arg(a: &[u8]) -> Result<i64, CmdError> {
    let v = protocol::number::parse_i64(a).ok_or(CmdError::NotInteger)?;
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        return Err(CmdError::OutOfRange);
    }
    Ok(v)
}

/// A slot argument: an int32 in 0..1024 (`ERR invalid slot number = <n>`).
pub fn slot_arg(a: &[u8]) -> Result<usize, CmdError> {
    let v = int32_arg(a)?;
    if !(0..SLOTS as i64).contains(&v) {
        return Err(CmdError::msg(errors::invalid_slot(v)));
    }
    Ok(v as usize)
}

/// SLOTSHASHKEY [key ...]: the slot of each key.
fn slotshashkey(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let keys = argv.get(1..).unwrap_or(&[]);
    ctx.out.array(keys.len());
    for k in keys {
        ctx.out.int(slot_of(k) as i64);
    }
    Ok(())
}

/// SLOTSINFO [start [count]]: `[slot, keys]` for the non-empty slots.
fn slotsinfo(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::msg(errors::wrong_arity("slotsinfo")));
    }
    let mut start = 0i64;
    let mut count = SLOTS as i64;
    if let Some(a) = argv.get(1) {
        start = int32_arg(a)?;
        if !(0..SLOTS as i64).contains(&start) {
            return Err(CmdError::msg(errors::invalid_slot(start)));
        }
    }
    if let Some(a) = argv.get(2) {
        count = int32_arg(a)?;
        if count < 0 {
            return Err(CmdError::msg(errors::invalid_slot_count(count)));
        }
    }
    let end = (start + count).min(SLOTS as i64) as usize;
    let db = ctx.db();
    let found: Vec<(usize, usize)> = (start as usize..end)
        .filter_map(|s| Some((s, db.slot_len(s))).filter(|&(_, n)| n > 0))
        .collect();
    ctx.out.array(found.len());
    for (s, n) in found {
        ctx.out.array(2);
        ctx.out.int(s as i64);
        ctx.out.int(n as i64);
    }
    Ok(())
}

/// SLOTSSCAN cursor layout: `bucket | (table generation & 0x7fff) << 32`.
/// A cursor from an older generation of the slot's table (it grew or was
/// rehashed, so entries moved) restarts the slot, as SCAN does
/// (db/mod.rs); keys present for the whole scan are never missed. The
/// cursor stays below 2^47, so codis-proxy can carry it with a slot number
/// in one 64-bit SCAN cursor (no slot table has 2^32 buckets).
const SSCAN_BUCKET_MASK: u64 = (1 << 32) - 1;
const SSCAN_GEN_SHIFT: u32 = 32;
const SSCAN_GEN_MASK: u64 = 0x7fff;

/// SLOTSSCAN slot cursor [COUNT n] (codis.md §2.4): `[next_cursor, [key...]]`.
/// Expired keys still present are returned, as in Codis.
fn slotsscan(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    if argv.len() != 3 && argv.len() != 5 {
        return Err(CmdError::msg(errors::wrong_arity("slotsscan")));
    }
    let slot = slot_arg(argv[1])?;
    let cursor = parse_cursor(argv[2])?;
    let mut count = 10usize;
    if argv.len() == 5 {
        if !c_is(argv[3], "count") {
            return Err(CmdError::Syntax);
        }
        let c = int_arg(argv[4])?;
        if c < 1 {
            return Err(CmdError::Syntax);
        }
        count = usize::try_from(c).unwrap_or(usize::MAX);
    }
    let db = ctx.db();
    let r = ctx.ks().lock_slot(db, slot);
    let generation = r.generation() & SSCAN_GEN_MASK;
    let mut bucket = usize::try_from(cursor & SSCAN_BUCKET_MASK).unwrap_or(usize::MAX);
    if bucket != 0 && (cursor >> SSCAN_GEN_SHIFT) & SSCAN_GEN_MASK != generation {
        bucket = 0;
    }
    let n = r.num_buckets();
    let budget = count.saturating_mul(10);
    let mut keys: Vec<&[u8]> = Vec::with_capacity(count.min(1024));
    let mut steps = 0usize;
    while bucket < n && keys.len() < count && steps < budget {
        if let Some(e) = r.bucket(bucket) {
            keys.push(e.key());
        }
        bucket += 1;
        steps += 1;
    }
    let next = if bucket >= n {
        0
    } else {
        bucket as u64 | (generation << SSCAN_GEN_SHIFT)
    };
    scan_head(ctx.out, next, keys.len());
    for k in keys {
        ctx.out.bulk(k);
    }
    Ok(())
}

/// SLOTSDEL slot [slot ...]: empties the slots, replies `[slot, remaining]`
/// per argument. Every slot is validated before anything is deleted.
fn slotsdel(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let slots = argv
        .get(1..)
        .unwrap_or(&[])
        .iter()
        .map(|a| slot_arg(a))
        .collect::<Result<Vec<usize>, CmdError>>()?;
    let db = ctx.db();
    ctx.out.array(slots.len());
    for s in slots {
        let remaining = {
            let mut r = ctx.ks().lock_slot(db, s);
            if ctx.srv.watches.any() || ctx.srv.prop.active() || ctx.srv.tracking.armed() {
                // Codis' slotsremove: each key deleted is a modified key and
                // a DEL in the stream.
                let keys: Vec<Vec<u8>> = r.iter().map(|e| e.key().to_vec()).collect();
                for k in keys {
                    ctx.srv.migrated_away(db.index(), &k);
                }
            }
            r.clear();
            r.len()
        };
        ctx.out.array(2);
        ctx.out.int(s as i64);
        ctx.out.int(remaining as i64);
    }
    Ok(())
}

/// SLOTSCHECK [anything...] (codis.md §2.4), per slot of the current DB:
/// step 1: every key of the slot's table is found through its hash;
/// step 2: every key hashes to the slot whose table holds it;
/// step 3: every tag-index entry is an existing key of that slot filed under
/// its tag's CRC, and every tagged key is in the index.
/// Keys whose TTL has passed are reclaimed on the way (Codis looks keys up).
fn slotscheck(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    let db = ctx.db();
    let now = ctx.now;
    let mut miss: Option<(u8, Vec<u8>)> = None;
    for s in 0..SLOTS {
        let mut r = ctx.ks().lock_slot(db, s);
        if r.is_empty() && r.tag_index().next().is_none() {
            continue;
        }
        let keys: Vec<Vec<u8>> = r.iter().map(|e| e.key().to_vec()).collect();
        for k in &keys {
            if r.peek(k).is_none() {
                miss = Some((1, k.clone()));
                break;
            }
        }
        if miss.is_none()
            && let Some(k) = keys.iter().find(|k| slot_of(k) != s)
        {
            miss = Some((2, k.clone()));
        }
        if miss.is_none() {
            let mut indexed = 0usize;
            for (crc, k) in r.tag_index() {
                indexed += 1;
                let (tag, tagged) = hash_tag(k);
                let ok = tagged && crc32fast::hash(tag) == crc && keys.iter().any(|x| x == k);
                if !ok {
                    miss = Some((3, k.to_vec()));
                    break;
                }
            }
            if miss.is_none() {
                let tagged: Vec<&Vec<u8>> = keys.iter().filter(|k| hash_tag(k).1).collect();
                if tagged.len() != indexed {
                    let lost = tagged.into_iter().find(|k| {
                        let crc = crc32fast::hash(hash_tag(k).0);
                        !r.tag_keys(crc).iter().any(|x| x == *k)
                    });
                    miss = Some((3, lost.cloned().unwrap_or_default()));
                }
            }
        }
        if miss.is_some() {
            break;
        }
        for k in &keys {
            // The lookup side effect: lazily expire what we touched.
            r.get(k, now);
        }
    }
    match miss {
        Some((step, key)) => Err(CmdError::msg(errors::slotscheck_miss(step, &key))),
        None => {
            ctx.out.ok();
            Ok(())
        }
    }
}

/// SLOTSRESTORE key ttl payload [key ttl payload ...] (codis.md §2.5):
/// all-or-nothing (every triple is decoded before anything is written),
/// overwrites silently (a warning in the log), ttl 0 = no expiry.
fn slotsrestore(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    use crate::codec::{self, PayloadError, Thresholds};
    let args = argv.get(1..).unwrap_or(&[]);
    if args.is_empty() || args.len() % 3 != 0 {
        return Err(CmdError::msg(errors::wrong_arity("slotsrestore")));
    }
    let payload_err = |e| match e {
        PayloadError::VersionOrChecksum => CmdError::Static(errors::CODIS_BAD_PAYLOAD),
        PayloadError::BadFormat => CmdError::Static(errors::CODIS_BAD_DATA_FORMAT),
    };
    // A key that this server is itself shipping out right now: only a
    // migration to ourselves gets here, and overwriting (then deleting) the
    // key would lose it. Codis blocks forever on itself; we refuse.
    let dbi = ctx.client.db;
    if ctx.srv.inflight.any(dbi)
        && args
            .chunks_exact(3)
            .any(|t| ctx.srv.inflight.is_migrating(dbi, t[0]))
    {
        return Err(CmdError::Static(errors::KEY_BEING_MIGRATED));
    }
    let total: usize = args.chunks_exact(3).map(|t| t[2].len()).sum();
    if total >= crate::cmd::dump::OFFLOAD_BYTES {
        return slotsrestore_offloaded(ctx, args, payload_err);
    }
    let mut decoded = Vec::with_capacity(args.len() / 3);
    let thresholds = Thresholds::from_config(&ctx.srv.config());
    for t in args.chunks_exact(3) {
        let (key, ttl, payload) = (t[0], t[1], t[2]);
        let ttl = int_arg(ttl)?;
        if ttl < 0 {
            return Err(CmdError::Static(errors::CODIS_INVALID_TTL));
        }
        let value = codec::restore_payload(payload, &thresholds).map_err(payload_err)?;
        decoded.push((key, ttl as u64, value));
    }
    let (now, lru, dbi) = (ctx.now, ctx.lru(), ctx.client.db);
    slotsrestore_apply(ctx.srv, dbi, now, lru, decoded);
    ctx.out.ok();
    Ok(())
}

/// Writes decoded SLOTSRESTORE triples (all-or-nothing: everything was
/// decoded before the first write) under one lock set of all their slots,
/// so a tag group moved in one command appears at once to other clients and
/// transactions (as in Codis, where the command runs alone). Overwritten
/// values are freed lazily.
fn slotsrestore_apply<K: AsRef<[u8]>>(
    srv: &Server,
    dbi: usize,
    now: u64,
    lru: u32,
    decoded: Vec<(K, u64, crate::codec::Restored)>,
) {
    let Some(db) = srv.ks.db(dbi) else { return };
    let mut m = srv
        .ks
        .lock_keys(db, decoded.iter().map(|(k, _, _)| k.as_ref()));
    let mut freed = Vec::new();
    for (key, ttl, value) in decoded {
        let key = key.as_ref();
        let expire = (ttl > 0).then(|| now.saturating_add(ttl));
        let old = m.put(value.into_entry(key, expire, lru));
        srv.restored(dbi, key, &mut m);
        if let Some(old) = old {
            if !old.is_expired(now) {
                crate::warning!(
                    "slotsrestore: key '{}' already exists, overwritten",
                    errors::lossy(key)
                );
            }
            freed.push(old);
        }
    }
    drop(m);
    freed.into_iter().for_each(crate::db::drop_later);
}

/// SLOTSRESTORE with big payloads: arguments are checked here, the payloads
/// are verified and rebuilt on the blocking pool (other clients keep being
/// served meanwhile), then written at once and answered.
fn slotsrestore_offloaded(
    ctx: &mut Ctx,
    args: &[&[u8]],
    payload_err: impl Fn(crate::codec::PayloadError) -> CmdError + Send + Sync + 'static,
) -> CmdResult {
    let mut keys = Vec::with_capacity(args.len() / 3);
    let mut payloads = Vec::with_capacity(args.len() / 3);
    for t in args.chunks_exact(3) {
        let ttl = int_arg(t[1])?;
        if ttl < 0 {
            return Err(CmdError::Static(errors::CODIS_INVALID_TTL));
        }
        keys.push((t[0].to_vec(), ttl as u64));
        payloads.push(t[2].to_vec());
    }
    let srv = ctx.srv_arc();
    let dbi = ctx.client.db;
    let resp3 = ctx.out.resp3;
    ctx.defer(Box::pin(async move {
        let mut out = protocol::resp::Reply::new();
        out.resp3 = resp3;
        match crate::cmd::dump::restore_payloads_offloaded(payloads, &srv).await {
            Ok(values) => {
                let now = crate::db::now_ms();
                let decoded = keys
                    .into_iter()
                    .zip(values)
                    .map(|((k, ttl), v)| (k, ttl, v))
                    .collect();
                slotsrestore_apply(&srv, dbi, now, crate::db::lru_clock(now), decoded);
                // Outside the gate: serve clients blocked on the new keys.
                crate::block::serve_ready(&srv);
                out.ok();
            }
            Err(e) => {
                let err = payload_err(e);
                crate::exec::reply_error(&srv, &mut out, err.text().as_bytes());
            }
        }
        out.buf
    }));
    Ok(())
}

/// `host port timeout` of the sync family (codis.md §2.3): the timeout is an
/// int32 >= 0 in ms, 0 meaning 100 ms.
fn mgrt_common(argv: &[&[u8]]) -> Result<(String, Vec<u8>, u64), CmdError> {
    let t = int32_arg(argv[3])?;
    if t < 0 {
        return Err(CmdError::msg(errors::invalid_timeout(t)));
    }
    let host = errors::lossy(argv[1]).into_owned();
    Ok((host, argv[2].to_vec(), if t == 0 { 100 } else { t as u64 }))
}

fn mgrt(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    what: impl FnOnce(&[u8]) -> Result<What, CmdError>,
) -> CmdResult {
    let (host, port, timeout) = mgrt_common(argv)?;
    let what = what(argv[4])?;
    let pending = msync::start(ctx.srv_arc(), ctx.client.db, host, port, timeout, what)?;
    ctx.defer(pending);
    Ok(())
}

/// SLOTSMGRTONE host port timeout key
fn slotsmgrtone(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    mgrt(ctx, argv, |k| Ok(What::One(k.to_vec())))
}

/// SLOTSMGRTTAGONE host port timeout key
fn slotsmgrttagone(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    mgrt(ctx, argv, |k| Ok(What::TagOne(k.to_vec())))
}

/// SLOTSMGRTSLOT host port timeout slot
fn slotsmgrtslot(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    mgrt(ctx, argv, |s| Ok(What::Slot(slot_arg(s)?)))
}

/// SLOTSMGRTTAGSLOT host port timeout slot
fn slotsmgrttagslot(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    mgrt(ctx, argv, |s| Ok(What::TagSlot(slot_arg(s)?)))
}
