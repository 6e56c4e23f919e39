//! Async ("semi-async") migration commands, source and target side, and
//! SLOTSMGRT-EXEC-WRAPPER (codis.md §2.7). The engine (connections, batches,
//! message production, ACK flow control) is migrate/asyncm.rs; this file
//! parses arguments, answers, and implements the target side
//! (SLOTSRESTORE-ASYNC, -AUTH, -SELECT, §2.7.5) and the wrapper (§2.7.4).
//! Values are rebuilt by `crate::codec` (the `object` payload, and the
//! chunks, whose emitter is there too); this file checks, locks, reports.

use std::sync::atomic::Ordering::Relaxed;

use protocol::command::{self, CmdId, flags};
use protocol::number::parse_i64;
use protocol::resp::Reply;

use crate::codec::stream_chunk::{self, Piece, PieceError};
use crate::codec::{self, ChunkKind, PayloadError, Thresholds};
use crate::db::{Entry, KeyAccess, Object, ValueRef};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};
use crate::migrate::asyncm::{self, ACK_CMD, Params, Select};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::SlotsmgrtoneAsync => mgrt_one,
        CmdId::SlotsmgrttagoneAsync => mgrt_tagone,
        CmdId::SlotsmgrtslotAsync => mgrt_slot,
        CmdId::SlotsmgrttagslotAsync => mgrt_tagslot,
        CmdId::SlotsmgrtoneAsyncDump => dump_one,
        CmdId::SlotsmgrttagoneAsyncDump => dump_tagone,
        CmdId::SlotsmgrtAsyncFence => fence,
        CmdId::SlotsmgrtAsyncCancel => cancel,
        CmdId::SlotsmgrtAsyncStatus => status,
        CmdId::SlotsmgrtExecWrapper => exec_wrapper,
        CmdId::SlotsrestoreAsync => restore_async,
        CmdId::SlotsrestoreAsyncAuth => restore_auth,
        CmdId::SlotsrestoreAsyncSelect => restore_select,
        CmdId::SlotsrestoreAsyncAck => restore_ack,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Source side: starting batches, DUMP, FENCE, CANCEL, STATUS
// ---------------------------------------------------------------------------

/// A 64-bit integer argument in `lo..=hi`, else
/// `ERR invalid value of <name> (<text>)`.
fn num_arg(name: &str, a: &[u8], lo: i64, hi: i64) -> Result<i64, CmdError> {
    match parse_i64(a) {
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(CmdError::Msg(errors::async_invalid_value(name, a))),
    }
}

const INT_MAX: i64 = i32::MAX as i64;
const MAX_BULKS: usize = 512 * 1024;

/// The batch timeout in ms: 0..INT_MAX, 0 meaning 30 s (codis.md §2.7.1).
fn timeout_arg(a: &[u8]) -> Result<u64, CmdError> {
    Ok(match num_arg("timeout", a, 0, INT_MAX)? {
        0 => 30_000,
        t => t as u64,
    })
}

/// `host port timeout maxbulks maxbytes` (codis.md §2.7.1 table).
fn batch_params(ctx: &Ctx, argv: &[&[u8]]) -> Result<(String, u16, Params), CmdError> {
    let arg = |i: usize| argv.get(i).copied().unwrap_or(b"");
    let host = String::from_utf8_lossy(arg(1)).into_owned();
    let port = num_arg("port", arg(2), 1, 65535)? as u16;
    let timeout = timeout_arg(arg(3))?;
    let maxbulks = match num_arg("maxbulks", arg(4), 0, INT_MAX)? {
        0 => 200,
        b => (b as usize).min(MAX_BULKS),
    };
    let mut maxbytes = match num_arg("maxbytes", arg(5), 0, INT_MAX)? {
        0 => 512 * 1024,
        b => b as usize,
    }
    .min((INT_MAX / 2) as usize);
    {
        let c = ctx.srv.config();
        let l = c.client_output_buffer_limit[crate::config::CLIENT_CLASS_NORMAL];
        for lim in [l.soft_bytes, l.hard_bytes] {
            if lim > 0 {
                maxbytes = maxbytes.min(usize::try_from(lim).unwrap_or(usize::MAX));
            }
        }
    }
    Ok((
        host,
        port,
        Params {
            timeout,
            maxbulks,
            maxbytes,
        },
    ))
}

fn error_bytes(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 3);
    v.push(b'-');
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// Answers the caller when `rx` yields (the batch ended).
fn defer_on(ctx: &mut Ctx, rx: tokio::sync::oneshot::Receiver<Vec<u8>>) {
    ctx.defer(Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| error_bytes(errors::ASYNC_CONN_CLOSED))
    }));
}

fn start(ctx: &mut Ctx, argv: &[&[u8]], slot_form: bool, tag: bool) -> CmdResult {
    let (host, port, p) = batch_params(ctx, argv)?;
    let sel = if slot_form {
        let arg = |i: usize| argv.get(i).copied().unwrap_or(b"");
        let slot = num_arg("slot", arg(6), 0, 1023)? as usize;
        let numkeys = match num_arg("numkeys", arg(7), 0, INT_MAX)? {
            0 => 100,
            n => n as usize,
        };
        Select::Slot(slot, numkeys, tag)
    } else {
        Select::Keys(argv.get(6..).unwrap_or(&[]).to_vec(), tag)
    };
    let srv = ctx.srv_arc();
    match asyncm::start(&srv, ctx.client.db, &host, port, p, sel) {
        Ok(rx) => {
            defer_on(ctx, rx);
            Ok(())
        }
        Err(text) => Err(CmdError::Msg(text)),
    }
}

fn mgrt_one(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    start(ctx, argv, false, false)
}

fn mgrt_tagone(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    start(ctx, argv, false, true)
}

fn mgrt_slot(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    start(ctx, argv, true, false)
}

fn mgrt_tagslot(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    start(ctx, argv, true, true)
}

/// `SLOTSMGRT{ONE,TAGONE}-ASYNC-DUMP timeout maxbulks key [key ...]`
fn dump(ctx: &mut Ctx, argv: &[&[u8]], tag: bool) -> CmdResult {
    let arg = |i: usize| argv.get(i).copied().unwrap_or(b"");
    let timeout = timeout_arg(arg(1))?;
    let maxbulks = match num_arg("maxbulks", arg(2), 0, INT_MAX)? {
        0 => 1000,
        b => (b as usize).min(MAX_BULKS),
    };
    let p = Params {
        timeout,
        maxbulks,
        maxbytes: usize::MAX,
    };
    let db = ctx.db();
    let keys = asyncm::select_keys(ctx.srv, db, argv.get(3..).unwrap_or(&[]), tag);
    asyncm::dump_messages(ctx.srv, db, &keys, &p, ctx.now, ctx.out);
    Ok(())
}

fn dump_one(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    dump(ctx, argv, false)
}

fn dump_tagone(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    dump(ctx, argv, true)
}

fn fence(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    match asyncm::fence(ctx.srv, ctx.client.db) {
        Some(rx) => defer_on(ctx, rx),
        None => ctx.out.ok(),
    }
    Ok(())
}

fn cancel(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    let had = asyncm::cancel(ctx.srv, ctx.client.db);
    ctx.out.int(i64::from(had));
    Ok(())
}

fn status(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    asyncm::status(ctx.srv, ctx.client.db, ctx.out);
    Ok(())
}

// ---------------------------------------------------------------------------
// SLOTSMGRT-EXEC-WRAPPER hashkey command [arg ...]
// ---------------------------------------------------------------------------

fn wrapper_error(out: &mut Reply, code: i64, text: &str) {
    out.array(2);
    out.int(code);
    out.error(text.as_bytes());
}

/// codis.md §2.7.4. Deviations: a write is refused with code 1 when *any* of
/// its keys is in flight, not only `hashkey` (Codis would let the write
/// through and lose it when the batch deletes the shipped key); a key whose
/// batch the target has acknowledged answers code 0 while it waits for its
/// deletion here (reads included), so the caller goes to the new owner.
fn exec_wrapper(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (Some(&hashkey), Some(inner)) = (argv.get(1), argv.get(2..)) else {
        return Err(CmdError::msg(errors::wrong_arity("slotsmgrt-exec-wrapper")));
    };
    let Some(&name) = inner.first() else {
        return Err(CmdError::msg(errors::wrong_arity("slotsmgrt-exec-wrapper")));
    };
    let Some(id) = command::lookup(name) else {
        wrapper_error(ctx.out, -1, &errors::wrapper_invalid_command(name));
        return Ok(());
    };
    let spec = id.spec();
    if !spec.arity_ok(inner.len()) {
        wrapper_error(ctx.out, -1, &errors::wrapper_wrong_arity(name));
        return Ok(());
    }
    let db = ctx.client.db;
    // Held from the existence check through the command: a migration that
    // registers or hands over this key meanwhile waits for us (migrate/mod.rs,
    // `Server::hand_over`). Not around Codis' own commands, which may take
    // the migration's locks (a registration waits for epochs under them).
    let _epoch = (spec.group != "codis").then(|| ctx.srv.inflight.enter());
    // The migration state first, then existence. A key handed over before
    // our epoch began is deleted here without waiting for us: checked the
    // other way round, the key could still exist at the first check and its
    // deletion (and its in-flight set) be gone by the second, and the
    // command would then run on a source that no longer has the key (an
    // INCR recreating it here: the key on both servers). Not handed over
    // at the first check, it cannot be until our epoch ends, so the
    // existence seen next holds through the command.
    if let Some(set) = ctx.srv.inflight.covering(db, hashkey) {
        if set.handed_over() {
            // The target has it and it is being deleted here.
            wrapper_error(ctx.out, 0, errors::WRAPPER_NO_KEY);
            return Ok(());
        }
        if !spec.has(flags::READONLY) {
            wrapper_error(ctx.out, 1, errors::KEY_BEING_MIGRATED);
            return Ok(());
        }
    }
    let exists = {
        let d = ctx.db();
        ctx.ks()
            .lock_key(d, hashkey)
            .get(hashkey, ctx.now)
            .is_some()
    };
    if !exists {
        wrapper_error(ctx.out, 0, errors::WRAPPER_NO_KEY);
        return Ok(());
    }
    // The command's other keys are checked by the execution gate, which
    // also catches a key registered after the check above: the proxy gets
    // the same code 1 (retry) either way. The reply goes straight after the
    // `[2, ` head, which is taken back if the gate refuses.
    let mark = ctx.out.buf.len();
    ctx.out.array(2);
    ctx.out.int(2);
    let head_end = ctx.out.buf.len();
    let outcome = crate::exec::execute_checked(ctx.srv, ctx.client, ctx.out, ctx.now, inner);
    if outcome == crate::exec::Outcome::KeyMigrating {
        ctx.out.buf.truncate(mark);
        wrapper_error(ctx.out, 1, errors::KEY_BEING_MIGRATED);
        return Ok(());
    }
    if let Some(b) = ctx.client.block.take() {
        // A blocking command cannot park inside the wrapper: it answers
        // what it would on timeout.
        ctx.out.buf.truncate(head_end);
        match b.nil {
            crate::block::Nil::Array => ctx.out.null_array(),
            crate::block::Nil::Bulk => ctx.out.null(),
        }
    }
    if let Some(pending) = ctx.client.pending.take() {
        // The deferred reply is the whole `[2, ...]`, written after it.
        let head = ctx.out.buf.split_off(mark);
        ctx.defer(Box::pin(async move {
            let mut v = head;
            v.extend_from_slice(&pending.await);
            v
        }));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Target side: SLOTSRESTORE-ASYNC, -AUTH, -SELECT, and -ACK from a client
// ---------------------------------------------------------------------------

/// `[SLOTSRESTORE-ASYNC-ACK, code, message]`; closes the connection after a
/// non-zero code (codis.md §2.7.5).
fn ack(ctx: &mut Ctx, res: Result<Vec<u8>, String>) -> CmdResult {
    ctx.out.array(3);
    ctx.out.bulk(ACK_CMD);
    match res {
        Ok(msg) => {
            ctx.out.bulk(b"0");
            ctx.out.bulk(&msg);
        }
        Err(msg) => {
            ctx.out.bulk(b"-1");
            ctx.out.bulk(msg.as_bytes());
            ctx.client.close_after_reply = true;
        }
    }
    Ok(())
}

fn num_msg(n: usize) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

/// Redis 3.2's (type, encoding) numbers of a value (wrong-type messages).
fn type_enc(e: &Entry) -> (u8, u8) {
    match e.value() {
        ValueRef::Str(_) | ValueRef::Obj(Object::Str(_)) => match e.encoding() {
            "int" => (0, 1),
            "embstr" => (0, 8),
            _ => (0, 0),
        },
        ValueRef::Obj(Object::List(_)) => (1, 9),
        ValueRef::Obj(Object::Set(s)) => (2, if s.is_intset() { 6 } else { 2 }),
        ValueRef::Obj(Object::ZSet(z)) => (3, if z.is_compact() { 5 } else { 7 }),
        ValueRef::Obj(Object::Hash(h)) => (4, if h.is_compact() { 5 } else { 2 }),
        // Redis 5's stream type and encoding (Redis 3.2 has none).
        ValueRef::Obj(Object::Stream(_)) => STREAM_TYPE_ENC,
    }
}

fn restore_async(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let res = restore_inner(ctx, argv);
    ack(ctx, res)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Expire,
    Str,
    Obj,
    Chunk(ChunkKind),
    /// Ours: a stream piece or the probe (`codec::stream_chunk`).
    Stream,
}

/// Checks run in Codis' order: DB being migrated; `delete` (3 args); at
/// least 4 args and a valid TTL; `expire` / `string` / `object`; at least 5
/// args and a valid hint; the chunk forms (and ours, `stream`); anything
/// else is unknown.
fn restore_inner(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<Vec<u8>, String> {
    let argc = argv.len();
    let sub = argv.get(1).copied().unwrap_or(b"");
    if ctx.srv.asyncm.migrating(ctx.client.db) {
        return Err(errors::RA_DB_MIGRATED.into());
    }
    let bad_argc = || errors::ra_wrong_arity(argc, sub);
    if argc < 3 {
        return Err(bad_argc());
    }
    let is = |w: &str| sub.eq_ignore_ascii_case(w.as_bytes());
    let arg = |i: usize| argv.get(i).copied().unwrap_or(b"");
    let key = arg(2);
    let now = ctx.now;
    let dbi = ctx.client.db;
    let db = ctx.db();
    if is("delete") {
        if argc != 3 {
            return Err(bad_argc());
        }
        let mut r = ctx.ks().lock_key(db, key);
        let deleted = r.remove(key).is_some();
        if deleted {
            ctx.srv.migrated_away(dbi, key);
        }
        drop(r);
        return Ok(num_msg(usize::from(deleted)));
    }
    if argc < 4 {
        return Err(bad_argc());
    }
    let ttl = match parse_i64(arg(3)) {
        Some(t) if t >= 0 => t as u64,
        _ => return Err(errors::ra_invalid_ttl(arg(3))),
    };
    let (form, want) = if is("expire") {
        (Form::Expire, Some(4))
    } else if is("string") {
        (Form::Str, Some(5))
    } else if is("object") {
        (Form::Obj, Some(5))
    } else {
        if argc < 5 {
            return Err(bad_argc());
        }
        if !matches!(parse_i64(arg(4)), Some(h) if h >= 0) {
            return Err(errors::ra_invalid_hint(arg(4)));
        }
        let pairs = argc % 2 == 1;
        if is("list") {
            (Form::Chunk(ChunkKind::List), None)
        } else if is("dict") {
            (Form::Chunk(ChunkKind::Dict), None)
        } else if is("hash") {
            if !pairs {
                return Err(bad_argc());
            }
            (Form::Chunk(ChunkKind::Hash), None)
        } else if is("zset") {
            if !pairs {
                return Err(bad_argc());
            }
            (Form::Chunk(ChunkKind::Zset), None)
        } else if is("stream") {
            (Form::Stream, None)
        } else {
            return Err(errors::ra_unknown(argc, sub));
        }
    };
    if want.is_some_and(|w| w != argc) {
        return Err(bad_argc());
    }
    let expire = (ttl > 0).then(|| now.saturating_add(ttl));
    let lru = ctx.lru();
    match form {
        Form::Expire => {
            let mut r = ctx.ks().lock_key(db, key);
            if r.get(key, now).is_none() {
                return Err(errors::ra_no_key(key));
            }
            r.set_expire(key, expire);
            ctx.srv
                .migration_change(dbi, key, true, || vec![(dbi, expire_entry(key, expire))]);
            Ok(num_msg(1))
        }
        Form::Str => {
            let mut r = ctx.ks().lock_key(db, key);
            if r.get(key, now).is_some() {
                return Err(errors::ra_key_exists(key));
            }
            r.insert(Entry::new_str(key, arg(4), expire, lru));
            ctx.srv.restored(dbi, key, &mut r);
            Ok(num_msg(1))
        }
        Form::Obj => {
            let payload = arg(4);
            if ctx.ks().lock_key(db, key).get(key, now).is_some() {
                return Err(errors::ra_key_exists(key));
            }
            let t = Thresholds::from_config(&ctx.srv.config());
            let restored = codec::restore_payload(payload, &t).map_err(|e| {
                match e {
                    PayloadError::VersionOrChecksum => errors::RA_BAD_CHECKSUM,
                    PayloadError::BadFormat => {
                        if payload.first().is_some_and(|&t| known_type(t)) {
                            errors::RA_BAD_BODY
                        } else {
                            errors::RA_BAD_TYPE
                        }
                    }
                }
                .to_string()
            })?;
            let mut r = ctx.ks().lock_key(db, key);
            if r.get(key, now).is_some() {
                return Err(errors::ra_key_exists(key));
            }
            r.insert(restored.into_entry(key, expire, lru));
            ctx.srv.restored(dbi, key, &mut r);
            Ok(num_msg(1))
        }
        Form::Chunk(kind) => {
            let hint = match parse_i64(arg(4)) {
                Some(h) if h >= 0 => usize::try_from(h).unwrap_or(usize::MAX),
                _ => return Err(errors::ra_invalid_hint(arg(4))),
            };
            let elems = argv.get(5..).unwrap_or(&[]);
            let n = restore_chunk(ctx, kind, key, elems, hint, expire, lru)?;
            Ok(num_msg(n))
        }
        Form::Stream => restore_stream(ctx, key, argv.get(5..).unwrap_or(&[]), argc, expire, lru),
    }
}

/// RDB type bytes a DUMP payload may start with.
fn known_type(t: u8) -> bool {
    matches!(t, 0..=5 | 9..=19)
}

/// Appends one chunk to a list / hash / set / zset (created if missing);
/// returns the new size.
fn restore_chunk(
    ctx: &mut Ctx,
    kind: ChunkKind,
    key: &[u8],
    elems: &[&[u8]],
    hint: usize,
    expire: Option<u64>,
    lru: u32,
) -> Result<usize, String> {
    let scores = if kind == ChunkKind::Zset {
        codec::zset_scores(elems).map_err(errors::ra_bad_score)?
    } else {
        Vec::new()
    };
    let fill = codec::list_fill(&ctx.srv.config());
    let now = ctx.now;
    let db = ctx.db();
    let mut r = ctx.ks().lock_key(db, key);
    let expect = match kind {
        ChunkKind::List => (1, 9),
        ChunkKind::Hash => (4, 2),
        ChunkKind::Dict => (2, 2),
        ChunkKind::Zset => (3, 7),
        ChunkKind::Stream => STREAM_TYPE_ENC,
    };
    let exists = match r.get(key, now) {
        Some(e) => {
            let got = type_enc(e);
            if got != expect {
                return Err(errors::ra_wrong_type(expect, got));
            }
            true
        }
        None => false,
    };
    if !exists {
        if elems.is_empty() {
            return Err(errors::ra_no_key(key));
        }
        let obj = kind.empty(hint);
        r.insert(Entry::new_obj(key, obj, None, lru));
    }
    let Some(obj) = r.peek(key).and_then(|e| e.obj_mut()) else {
        return Err(errors::ra_no_key(key));
    };
    let n = codec::append_chunk(obj, elems, &scores, fill);
    r.set_expire(key, expire);
    // The chunk's effect reaches WATCH and the stream while the slot is
    // still locked: the elements appended, then the TTL the chunk set.
    let dbi = db.index();
    ctx.srv.migration_change(dbi, key, true, || {
        let mut entries = Vec::with_capacity(2);
        if !elems.is_empty() {
            let mut v: crate::propagate::Argv = Vec::with_capacity(elems.len() + 2);
            v.push(
                match kind {
                    ChunkKind::List => "RPUSH",
                    ChunkKind::Hash => "HSET",
                    ChunkKind::Dict => "SADD",
                    ChunkKind::Zset => "ZADD",
                    // Streams go through restore_stream.
                    ChunkKind::Stream => "XADD",
                }
                .into(),
            );
            v.push(key.to_vec());
            if kind == ChunkKind::Zset {
                for (p, sc) in elems.chunks_exact(2).zip(&scores) {
                    v.push(sc.to_string().into_bytes());
                    v.push(p[0].to_vec());
                }
            } else {
                v.extend(elems.iter().map(|e| e.to_vec()));
            }
            entries.push((dbi, v));
        }
        entries.push((dbi, expire_entry(key, expire)));
        entries
    });
    Ok(n)
}

/// The (type, encoding) numbers of a stream (Redis 5's).
const STREAM_TYPE_ENC: (u8, u8) = (6, 10);

/// A `stream` message (ours, `codec::stream_chunk`; `args` from the part
/// word on): the probe answers `1` and touches nothing; a piece is added to
/// the stream, created when missing. Every record
/// is checked as `Stream::read_rdb` checks the RDB body (nodes before the
/// key is locked); a piece that does not fit the stream drops the partial
/// copy (the source starts the key over after its `delete`). Returns the
/// stream's length.
fn restore_stream(
    ctx: &mut Ctx,
    key: &[u8],
    args: &[&[u8]],
    argc: usize,
    expire: Option<u64>,
    lru: u32,
) -> Result<Vec<u8>, String> {
    let part = args.first().copied().unwrap_or(b"").to_ascii_lowercase();
    let piece = stream_chunk::parse(args).map_err(|e| match e {
        PieceError::Unknown => errors::ra_stream_part(&part),
        PieceError::Arity => errors::ra_wrong_arity(argc, b"stream"),
        PieceError::Record(i) => errors::ra_bad_stream(&part, i),
    })?;
    if let Piece::Probe = piece {
        return Ok(num_msg(1));
    }
    let now = ctx.now;
    let db = ctx.db();
    let dbi = db.index();
    let mut r = ctx.ks().lock_key(db, key);
    match r.get(key, now) {
        Some(e) => {
            let got = type_enc(e);
            if got != STREAM_TYPE_ENC {
                return Err(errors::ra_wrong_type(STREAM_TYPE_ENC, got));
            }
        }
        None => {
            let st = Object::Stream(Box::default());
            r.insert(Entry::new_obj(key, st, None, lru));
        }
    }
    let Some(Object::Stream(st)) = r.peek(key).and_then(|e| e.obj_mut()) else {
        return Err(errors::ra_no_key(key));
    };
    let cmds = ctx.srv.prop.active().then(|| piece.commands(key, st));
    if let Err(i) = piece.apply(st) {
        r.remove(key);
        ctx.srv.migrated_away(dbi, key);
        return Err(errors::ra_bad_stream(&part, i));
    }
    let len = usize::try_from(st.length).unwrap_or(usize::MAX);
    r.set_expire(key, expire);
    ctx.srv.migration_change(dbi, key, true, || {
        let mut entries: Vec<(usize, crate::propagate::Argv)> = cmds
            .unwrap_or_default()
            .into_iter()
            .map(|c| (dbi, c))
            .collect();
        entries.push((dbi, expire_entry(key, expire)));
        entries
    });
    Ok(num_msg(len))
}

/// The stream entry that gives `key` the absolute expiry `expire`.
fn expire_entry(key: &[u8], expire: Option<u64>) -> crate::propagate::Argv {
    match expire {
        Some(at) => vec![
            b"PEXPIREAT".to_vec(),
            key.to_vec(),
            at.to_string().into_bytes(),
        ],
        None => vec![b"PERSIST".to_vec(), key.to_vec()],
    }
}

/// `SLOTSRESTORE-ASYNC-AUTH password` (Codis: the default user's), or ours
/// `SLOTSRESTORE-ASYNC-AUTH user password` (an ACL user, `migration-user`
/// on the source); allowed before AUTH.
fn restore_auth(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (user, given): (&[u8], &[u8]) = match argv {
        [_, p] => (b"default", p),
        [_, u, p] => (u, p),
        _ => return Err(CmdError::Syntax),
    };
    let res = if argv.len() == 2 && ctx.srv.acl.default_nopass() {
        Err(errors::RA_NO_PASSWORD.to_string())
    } else {
        match ctx.srv.acl.authenticate(user, given) {
            Some(cell) => {
                ctx.client.log_in(cell);
                Ok(b"OK".to_vec())
            }
            None => {
                ctx.client.authenticated = false;
                ctx.client.info.authenticated.store(false, Relaxed);
                Err(errors::RA_INVALID_PASSWORD.to_string())
            }
        }
    };
    ack(ctx, res)
}

/// `SLOTSRESTORE-ASYNC-SELECT db`
fn restore_select(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let a = argv.get(1).copied().unwrap_or(b"");
    let res = match parse_i64(a) {
        Some(i) if i >= 0 && (i as u64) < ctx.ks().db_count() as u64 => {
            ctx.client.select(i as usize);
            Ok(b"OK".to_vec())
        }
        _ => Err(errors::ra_invalid_db(a)),
    };
    ack(ctx, res)
}

/// ACKs are only valid on this server's own migration connections, which
/// never reach the command table (the engine reads them itself): from any
/// client this is an error, and the client is closed (codis.md §2.7.6).
fn restore_ack(ctx: &mut Ctx, _argv: &[&[u8]]) -> CmdResult {
    ctx.client.close_after_reply = true;
    Err(CmdError::Static(errors::ASYNC_INVALID_CLIENT))
}

#[cfg(test)]
mod tests {
    use crate::db::KeyAccess;
    use crate::exec::{Outcome, execute_checked};
    use crate::migrate::KeySet;
    use crate::testkit::Harness;
    use protocol::resp::Reply;

    /// Splits a reply of nested arrays of bulk strings into its messages.
    fn dump_reply(b: &[u8]) -> Vec<Vec<Vec<u8>>> {
        fn num(b: &[u8], at: &mut usize) -> usize {
            let end = *at + b[*at..].windows(2).position(|w| w == b"\r\n").unwrap();
            let n = std::str::from_utf8(&b[*at + 1..end])
                .unwrap()
                .parse()
                .unwrap();
            *at = end + 2;
            n
        }
        let mut at = 0;
        let n = num(b, &mut at);
        (0..n)
            .map(|_| {
                let k = num(b, &mut at);
                (0..k)
                    .map(|_| {
                        let len = num(b, &mut at);
                        let v = b[at..at + len].to_vec();
                        at += len + 2;
                        v
                    })
                    .collect()
            })
            .collect()
    }

    fn put_stream(t: &Harness, key: &[u8], st: crate::ds::stream::Stream) {
        let db = t.srv.ks.db(0).unwrap();
        t.srv.ks.lock_key(db, key).insert(crate::db::Entry::new_obj(
            key,
            crate::db::Object::Stream(Box::new(st)),
            None,
            0,
        ));
    }

    /// A stream's chunk messages (SLOTSMGRTONE-ASYNC-DUMP) replayed on a
    /// target rebuild it DUMP for DUMP, with the replies and propagation
    /// of a chunked value; a big one is chunked, a small one is `object`.
    #[test]
    fn stream_chunks_restore_on_a_target() {
        let mut src = Harness::new();
        put_stream(&src, b"s", crate::ds::stream::sample(200));
        put_stream(&src, b"small", crate::ds::stream::sample(3));
        assert_eq!(src.run("TYPE s"), "+stream\r\n");
        assert_eq!(src.run("PEXPIRE s 100000"), ":1\r\n");
        let msgs = dump_reply(&src.run_args(&[
            b"SLOTSMGRTONE-ASYNC-DUMP",
            b"1000",
            b"30",
            b"s",
            b"small",
        ]));
        let words: Vec<&[u8]> = msgs.iter().map(|m| m[1].as_slice()).collect();
        assert_eq!(words[0], b"delete");
        assert!(words[1..words.len() - 3].iter().all(|w| *w == b"stream"));
        assert_eq!(
            words[words.len() - 3..],
            [&b"expire"[..], b"delete", b"object"]
        );
        let mut dst = Harness::new();
        dst.capture();
        for m in &msgs {
            let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
            let out = String::from_utf8(dst.run_args(&refs)).unwrap();
            assert!(out.contains("$1\r\n0\r\n"), "{out}");
            if m[1] == b"stream" {
                assert_eq!(m[3], b"3000", "3 x timeout");
                assert!(m.len() - 5 <= 30 + 2, "maxbulks: {} bulks", m.len() - 5);
            }
        }
        for k in ["s", "small"] {
            assert_eq!(src.run(&format!("DUMP {k}")), dst.run(&format!("DUMP {k}")));
        }
        let ttl: i64 = dst.run("PTTL s")[1..].trim().parse().unwrap();
        assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
        let argv = dst.propagated_argv();
        let prop: Vec<String> = argv
            .iter()
            .map(|a| {
                a.iter()
                    .map(|x| String::from_utf8_lossy(x))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let count = |p: &str| prop.iter().filter(|l| l.starts_with(p)).count();
        assert_eq!(count("XADD s "), 200, "one XADD per entry");
        assert!(count("XDEL s ") > 0, "then the deleted ones");
        assert_eq!(count("XCLAIM s g1 "), 100);
        assert_eq!(count("XGROUP CREATE s "), 2);
        assert!(count("XSETID s ") >= 2, "meta, and after the deletions");
        assert_eq!(count("RESTORE small "), 1);
        // Replayed on a replica: the same entries and counters.
        let mut rep = Harness::new();
        for argv in argv {
            let refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
            let out = rep.run_args(&refs);
            assert!(!out.starts_with(b"-"), "{}", String::from_utf8_lossy(&out));
        }
        for cmd in [
            "XRANGE s - +",
            "XLEN s",
            "XINFO GROUPS s",
            "XPENDING s g1 - + 1000",
        ] {
            assert_eq!(rep.run(cmd), dst.run(cmd), "{cmd}");
        }
    }

    /// Hostile stream messages cost one error ACK (and the partial copy),
    /// never the process; the probe changes nothing.
    #[test]
    fn hostile_stream_messages() {
        let mut t = Harness::new();
        let ack = |code: &str, msg: &str| {
            format!(
                "*3\r\n$22\r\nSLOTSRESTORE-ASYNC-ACK\r\n${}\r\n{code}\r\n${}\r\n{msg}\r\n",
                code.len(),
                msg.len()
            )
        };
        assert_eq!(
            t.run("SLOTSRESTORE-ASYNC stream k 0 0 probe"),
            ack("0", "1")
        );
        assert_eq!(t.run("EXISTS k"), ":0\r\n");
        assert_eq!(
            t.run("SLOTSRESTORE-ASYNC stream k 0 0 nodez a b"),
            ack("-1", "unknown stream part (nodez)")
        );
        assert_eq!(
            t.run("SLOTSRESTORE-ASYNC stream k 0 0 nodes a"),
            ack("-1", "wrong number of arguments (argc=7,cmd=stream)")
        );
        assert_eq!(
            t.run("SLOTSRESTORE-ASYNC stream k 0 0 nodes 0123456789abcdef notalistpack"),
            ack("-1", "invalid stream nodes ([0])")
        );
        assert_eq!(
            t.run("SLOTSRESTORE-ASYNC stream k 0 0 meta 1 0123456789abcdef 0123456789abcdef 0123456789abcdef 0"),
            ack("-1", "invalid stream meta ([0])")
        );
        assert_eq!(t.run("EXISTS k"), ":0\r\n", "the copy is dropped");
        assert_eq!(
            t.run("SLOTSRESTORE-ASYNC stream k 0 0 consumers g c 1"),
            ack("-1", "invalid stream consumers ([0])")
        );
        let zero = "\\x00".repeat(16);
        assert_eq!(
            t.run(&format!(
                "SLOTSRESTORE-ASYNC stream k 0 0 groups g \"{zero}\" -1"
            )),
            ack("0", "0")
        );
        assert_eq!(t.run("TYPE k"), "+stream\r\n");
        // A PEL entry of a consumer the group does not have: the copy goes.
        assert_eq!(
            t.run(&format!(
                "SLOTSRESTORE-ASYNC stream k 0 0 pel g \"{zero}\" 1 1 nobody"
            )),
            ack("-1", "invalid stream pel ([0])")
        );
        assert_eq!(t.run("EXISTS k"), ":0\r\n");
        assert_eq!(t.run("SET str v"), "+OK\r\n");
        assert_eq!(
            t.run(&format!(
                "SLOTSRESTORE-ASYNC stream str 0 0 groups g \"{zero}\" -1"
            )),
            ack("-1", "wrong type (expect=6/10,got=0/8)")
        );
    }

    /// The execution gate, not only the wrapper's own check, decides: a key
    /// registered after the wrapper looked (here: before, for the gate) is
    /// refused with nothing written, and the wrapper turns that into code 1.
    #[test]
    fn gate_refusal_is_reported_not_answered() {
        let mut t = Harness::new();
        assert_eq!(t.run("SET k 1"), "+OK\r\n");
        let guard = t.srv.begin_flight(0, KeySet::new([b"k".to_vec()]));
        let mut out = Reply::new();
        let args: [&[u8]; 2] = [b"INCR", b"k"];
        assert_eq!(
            execute_checked(&t.srv, &mut t.client, &mut out, t.now, &args),
            Outcome::KeyMigrating
        );
        assert!(out.buf.is_empty());
        assert_eq!(
            t.run("INCR k"),
            "-ERR the specified key is being migrated\r\n"
        );
        assert_eq!(
            t.run("SLOTSMGRT-EXEC-WRAPPER k INCR k"),
            "*2\r\n:1\r\n-ERR the specified key is being migrated\r\n"
        );
        assert_eq!(
            t.run("SLOTSMGRT-EXEC-WRAPPER k GET k"),
            "*2\r\n:2\r\n$1\r\n1\r\n"
        );
        drop(guard);
        assert_eq!(
            t.run("SLOTSMGRT-EXEC-WRAPPER k INCR k"),
            "*2\r\n:2\r\n:2\r\n"
        );
    }

    /// A blocking command answers what it would on timeout; a deferred one
    /// (RESTORE of a big payload, decoded on the blocking pool) gets the
    /// whole `[2, reply]` deferred.
    #[tokio::test]
    async fn blocking_and_deferred_inner_commands() {
        let mut t = Harness::new();
        assert_eq!(t.run("SET h v"), "+OK\r\n");
        assert_eq!(
            t.run("SLOTSMGRT-EXEC-WRAPPER h BLPOP nolist 0"),
            "*2\r\n:2\r\n*-1\r\n"
        );
        assert!(t.client.block.is_none());
        let big = vec![b'x'; crate::cmd::dump::OFFLOAD_BYTES + 1];
        assert_eq!(t.run_args(&[b"SET", b"big", &big]), b"+OK\r\n");
        let dumped = t.run_args(&[b"DUMP", b"big"]);
        let start = dumped.iter().position(|&c| c == b'\n').unwrap() + 1;
        let payload = &dumped[start..dumped.len() - 2];
        let out = t.run_args(&[
            b"SLOTSMGRT-EXEC-WRAPPER",
            b"big",
            b"RESTORE",
            b"copy",
            b"0",
            payload,
        ]);
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        let pending = t.client.pending.take().expect("deferred");
        assert_eq!(pending.await, b"*2\r\n:2\r\n+OK\r\n");
        assert_eq!(t.run("STRLEN copy"), format!(":{}\r\n", big.len()));
    }

    /// Once the target has acknowledged a key, wrapped commands go there
    /// (code 0) even though the key is still here until its deletion step:
    /// a read that checked existence just before the deletion could
    /// otherwise run just after it and find nothing.
    #[test]
    fn handed_over_keys_are_sent_to_the_target() {
        let mut t = Harness::new();
        assert_eq!(t.run("SET {a}k 1"), "+OK\r\n");
        let guard = t.srv.begin_flight(0, KeySet::new([b"{a}k".to_vec()]));
        assert_eq!(
            t.run("SLOTSMGRT-EXEC-WRAPPER {a}k GET {a}k"),
            "*2\r\n:2\r\n$1\r\n1\r\n"
        );
        t.srv.hand_over([&guard]);
        let no_key = "*2\r\n:0\r\n-ERR the specified key doesn't exist\r\n";
        assert_eq!(t.run("SLOTSMGRT-EXEC-WRAPPER {a}k GET {a}k"), no_key);
        assert_eq!(t.run("SLOTSMGRT-EXEC-WRAPPER {a}k INCR {a}k"), no_key);
        // Direct reads still see it until it is deleted.
        assert_eq!(t.run("GET {a}k"), "$1\r\n1\r\n");
        drop(guard);
        assert_eq!(
            t.run("SLOTSMGRT-EXEC-WRAPPER {a}k GET {a}k"),
            "*2\r\n:2\r\n$1\r\n1\r\n"
        );
    }
}
