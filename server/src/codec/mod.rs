//! The value codec: the one place where a stored value (`db::ValueRef`,
//! `db::Object`) meets an encoding, in both directions. It depends on the
//! data structures (`db`, `ds`), `protocol::rdb` (RDB primitives, payload
//! footer, hostile-input checks) and `config` (thresholds) only: no
//! sockets, no command layer, no server state. DUMP / RESTORE, SLOTSRESTORE,
//! both migration families and the stream's `RESTORE … ABSTTL` go through
//! it, and so will the RDB file writer and loader.
//!
//! * [`cursor`]: [`Cursor`], the one walk over a value's elements, resumable
//!   while the value does not change (lists by index, zsets by rank either
//!   way, hashes and sets by SCAN cursor, strings by byte offset).
//! * [`encode`]: value → RDB in the plain encodings (Redis 7.0 and
//!   codis-server 3.2 both load them): [`value_bytes`] (type byte + body, an
//!   RDB file's value), [`dump_payload`] (plus version 7 and CRC-64), and
//!   [`SlicedPayload`], the same payload produced a slice at a time.
//! * [`decode`]: RDB → value (every encoding `protocol::rdb` reads, old ones
//!   included), rebuilt in the encoding Redis 7.0 would give it:
//!   [`restore_payload`], [`restore_value`], [`rebuild`], [`Thresholds`].
//! * [`chunk`]: the async migration's chunk form, source and target side:
//!   [`plan`], the emitter [`Chunker`] (codis-server 3.2's message
//!   boundaries), [`zset_scores`], [`append_chunk`].
//! * [`stream_chunk`]: our chunk form of a stream (nodes, groups,
//!   consumers, PEL, counters), both ends, and the `probe` that tells our
//!   targets from codis-server 3.2.
//!
//! Mirrors, in behaviour, Redis 7.0.15's `rdbSaveObject` / `rdbLoadObject`
//! value paths and `createDumpPayload` / `verifyDumpPayload`, and Codis
//! 3.2's slots_async.c value producer and consumer.

pub mod chunk;
pub mod cursor;
pub mod decode;
pub mod encode;
pub mod stream_chunk;

pub use chunk::{ChunkKind, Chunker, Plan, Shipping, append_chunk, plan, zset_scores};
pub use cursor::{Cursor, Elem, Flow, Pace};
pub use decode::{Restored, Thresholds, list_fill, rebuild, restore_payload, restore_value};
pub use encode::{
    FileSlicer, Progress, SlicedPayload, aof_commands, dump_payload, file_value,
    file_value_compact, heap_size, len, rdb_type, value_bytes,
};
pub use protocol::rdb::PayloadError;

use crate::db::{Object, ValueRef};

/// The bytes of a string value (either form), None for a collection.
pub fn str_bytes(v: ValueRef<'_>) -> Option<&[u8]> {
    match v {
        ValueRef::Str(s) => Some(s),
        ValueRef::Obj(Object::Str(s)) => Some(s),
        ValueRef::Obj(_) => None,
    }
}

/// Test values shared by the codec's tests: a list, a hash, a set and a
/// zset of `n` elements each (`m0`… with values `v0`…), the zset scored by
/// `score(i)`.
#[cfg(test)]
pub(crate) fn test_values(n: usize, score: impl Fn(usize) -> f64) -> Vec<crate::db::Object> {
    use crate::db::Object;
    use crate::ds::{Hash, List, Set, ZSet, hash::Limits, list::DEFAULT_FILL};
    let (mut l, mut h, mut s, mut z) = (List::new(), Hash::new(), Set::new(), ZSet::new_full());
    for i in 0..n {
        let m = format!("m{i}");
        l.push_back(m.as_bytes(), DEFAULT_FILL);
        h.set(m.as_bytes(), format!("v{i}").as_bytes(), &Limits::DEFAULT);
        s.insert(m.as_bytes(), 512);
        z.insert_new(m.as_bytes(), score(i), 128, 64);
    }
    vec![
        Object::List(l),
        Object::Hash(h),
        Object::Set(s),
        Object::ZSet(z),
    ]
}
