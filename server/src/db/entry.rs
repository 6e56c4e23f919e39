//! One key of the keyspace, laid out for memory.
//!
//! An [`Entry`] is 32 bytes inside the slot's hash table: a boxed blob, an
//! optional boxed object, and what eviction and snapshots read without
//! touching the blob (flags, the 24-bit access clock, the key's length), so
//! sampling keys for eviction reads only the slot's bucket array. The blob
//! holds, in one allocation:
//!
//! ```text
//! [expire_ms u64 if VOLATILE][key bytes][string payload]
//! ```
//!
//! Short strings (Redis' "embstr"/"int" cases) live in the blob itself, so a
//! typical string key costs one allocation plus its table slot (Redis needs a
//! dictEntry, an sds key and a robj). Strings that are appended to or modified
//! in place move into an [`Object::Str`] (Redis' "raw" encoding), which grows
//! geometrically so APPEND stays amortised O(1). Collection types (a later
//! issue) are further `Object` variants.

use crate::ds::stream::Stream;
use crate::ds::{Hash, List, Set, ZSet};

/// Value stored outside the blob.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A mutable string ("raw" encoding).
    Str(Vec<u8>),
    List(List),
    Hash(Hash),
    Set(Set),
    ZSet(ZSet),
    /// Boxed: a stream's header is bigger than the other variants.
    Stream(Box<Stream>),
}

const F_VOLATILE: u8 = 1;
/// The snapshot bit: whether the key is written into the snapshot in
/// progress, compared with its slot's mark (`db::SlotTable`).
const F_SNAP: u8 = 2;

/// A borrowed view of a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Str(&'a [u8]),
    Obj(&'a Object),
}

/// The Redis type name of a value (`TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    List,
    Hash,
    Set,
    ZSet,
    Stream,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    blob: Box<[u8]>,
    obj: Option<Box<Object>>,
    /// Flags in the top 8 bits, the access clock (LRU or LFU, see
    /// `crate::evict`) in the low 24.
    meta: u32,
    key_len: u32,
}

impl Entry {
    fn build(key: &[u8], expire: Option<u64>, payload: &[u8]) -> Box<[u8]> {
        let exp_len = if expire.is_some() { 8 } else { 0 };
        let mut v = Vec::with_capacity(exp_len + key.len() + payload.len());
        if let Some(e) = expire {
            v.extend_from_slice(&e.to_le_bytes());
        }
        v.extend_from_slice(key);
        v.extend_from_slice(payload);
        v.into_boxed_slice()
    }

    fn make(
        key: &[u8],
        expire: Option<u64>,
        payload: &[u8],
        obj: Option<Box<Object>>,
        lru: u32,
    ) -> Entry {
        let flags = if expire.is_some() { F_VOLATILE } else { 0 };
        Entry {
            blob: Self::build(key, expire, payload),
            obj,
            meta: (crate::evict::created(lru) & 0xff_ffff) | (flags as u32) << 24,
            key_len: key.len() as u32,
        }
    }

    /// A string entry with the value stored inline.
    pub fn new_str(key: &[u8], val: &[u8], expire: Option<u64>, lru: u32) -> Entry {
        Self::make(key, expire, val, None, lru)
    }

    /// An entry whose value is an object.
    pub fn new_obj(key: &[u8], obj: Object, expire: Option<u64>, lru: u32) -> Entry {
        Self::make(key, expire, &[], Some(Box::new(obj)), lru)
    }

    /// Identifies this entry while it lives (its blob's address), without
    /// reading the blob: eviction's pool remembers candidates by bucket and
    /// identity instead of copying their keys.
    #[inline]
    pub fn ident(&self) -> usize {
        self.blob.as_ptr() as usize ^ (self.key_len as usize).rotate_right(16)
    }

    /// Starts loading the blob's first line (where the key is compared), so
    /// that a multi-key command's lookups overlap their cache misses.
    #[inline]
    pub fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint: it never faults, whatever the
        // address, and the blob's address is a live allocation anyway.
        #[allow(unsafe_code, unused_unsafe)]
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(self.blob.as_ptr() as *const i8);
        }
    }

    #[inline]
    fn flags(&self) -> u8 {
        (self.meta >> 24) as u8
    }

    #[inline]
    fn set_flags(&mut self, f: u8) {
        self.meta = (self.meta & 0xff_ffff) | (f as u32) << 24;
    }

    /// Whether the key has an expiry (without reading the blob).
    #[inline]
    pub fn has_expire(&self) -> bool {
        self.flags() & F_VOLATILE != 0
    }

    /// The snapshot bit (see `db::SlotTable`'s mark); kept by every change
    /// of value or expiry.
    #[inline]
    pub fn snap_bit(&self) -> bool {
        self.flags() & F_SNAP != 0
    }

    #[inline]
    pub fn set_snap_bit(&mut self, on: bool) {
        let f = self.flags();
        self.set_flags((f & !F_SNAP) | if on { F_SNAP } else { 0 });
    }

    #[inline]
    fn key_len(&self) -> usize {
        self.key_len as usize
    }

    #[inline]
    fn key_start(&self) -> usize {
        if self.flags() & F_VOLATILE != 0 { 8 } else { 0 }
    }

    #[inline]
    pub fn key(&self) -> &[u8] {
        let s = self.key_start();
        self.blob.get(s..s + self.key_len()).unwrap_or(&[])
    }

    /// Absolute expiry in unix ms, if any.
    #[inline]
    pub fn expire(&self) -> Option<u64> {
        if self.flags() & F_VOLATILE == 0 {
            return None;
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(self.blob.get(..8)?);
        Some(u64::from_le_bytes(b))
    }

    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expire(), Some(e) if e < now_ms)
    }

    /// The 24-bit access clock (LRU seconds, or LFU minutes and counter).
    #[inline]
    pub fn lru(&self) -> u32 {
        self.meta & 0xff_ffff
    }

    /// Records an access with `token` (`evict::token`): the LRU
    /// clock, or the LFU counter's decay and increment.
    #[inline]
    pub fn touch(&mut self, token: u32) {
        let v = crate::evict::touched(self.lru(), token);
        self.set_lru(v);
    }

    /// Sets the 24-bit access value as stored (RESTORE IDLETIME/FREQ,
    /// loading).
    #[inline]
    pub fn set_lru(&mut self, v: u32) {
        self.meta = (self.meta & 0xff00_0000) | (v & 0xff_ffff);
    }

    #[inline]
    pub fn value(&self) -> ValueRef<'_> {
        match &self.obj {
            Some(o) => ValueRef::Obj(o),
            None => ValueRef::Str(
                self.blob
                    .get(self.key_start() + self.key_len()..)
                    .unwrap_or(&[]),
            ),
        }
    }

    pub fn kind(&self) -> Kind {
        match self.value() {
            ValueRef::Str(_) | ValueRef::Obj(Object::Str(_)) => Kind::String,
            ValueRef::Obj(Object::List(_)) => Kind::List,
            ValueRef::Obj(Object::Hash(_)) => Kind::Hash,
            ValueRef::Obj(Object::Set(_)) => Kind::Set,
            ValueRef::Obj(Object::ZSet(_)) => Kind::ZSet,
            ValueRef::Obj(Object::Stream(_)) => Kind::Stream,
        }
    }

    /// The string value, if this is a string.
    #[inline]
    pub fn as_str(&self) -> Option<&[u8]> {
        match self.value() {
            ValueRef::Str(s) => Some(s),
            ValueRef::Obj(Object::Str(s)) => Some(s),
            ValueRef::Obj(_) => None,
        }
    }

    pub fn obj_mut(&mut self) -> Option<&mut Object> {
        self.obj.as_deref_mut()
    }

    /// Replaces the value with an inline string, keeping key, expiry and LRU
    /// unless `expire` says otherwise.
    pub fn set_str(&mut self, val: &[u8], expire: Option<u64>) {
        self.blob = Self::build(self.key(), expire, val);
        self.obj = None;
        self.set_volatile(expire.is_some());
    }

    #[inline]
    fn set_volatile(&mut self, on: bool) {
        let f = self.flags();
        self.set_flags((f & !F_VOLATILE) | if on { F_VOLATILE } else { 0 });
    }

    /// Replaces the value with an object.
    pub fn set_obj(&mut self, obj: Object, expire: Option<u64>) {
        self.blob = Self::build(self.key(), expire, &[]);
        self.obj = Some(Box::new(obj));
        self.set_volatile(expire.is_some());
    }

    /// Sets or clears the expiry (rebuilds the blob when the layout changes).
    pub fn set_expire(&mut self, expire: Option<u64>) {
        match (self.expire(), expire) {
            (Some(_), Some(e)) => {
                if let Some(s) = self.blob.get_mut(..8) {
                    s.copy_from_slice(&e.to_le_bytes());
                }
            }
            (None, None) => {}
            _ => {
                let payload = match self.obj {
                    Some(_) => &[][..],
                    None => self
                        .blob
                        .get(self.key_start() + self.key_len()..)
                        .unwrap_or(&[]),
                };
                self.blob = Self::build(self.key(), expire, payload);
                self.set_volatile(expire.is_some());
            }
        }
    }

    /// Turns an inline string into a mutable `Object::Str` and returns it.
    /// `None` if the value is not a string.
    pub fn str_mut(&mut self) -> Option<&mut Vec<u8>> {
        if self.obj.is_none() {
            let s = self.as_str().unwrap_or(&[]).to_vec();
            let exp = self.expire();
            self.set_obj(Object::Str(s), exp);
        }
        match self.obj.as_deref_mut() {
            Some(Object::Str(v)) => Some(v),
            _ => None,
        }
    }

    /// A copy of this entry under another key (RENAME/COPY/MOVE).
    pub fn with_key(&self, key: &[u8], expire: Option<u64>) -> Entry {
        let payload = match self.obj {
            Some(_) => &[][..],
            None => self
                .blob
                .get(self.key_start() + self.key_len()..)
                .unwrap_or(&[]),
        };
        let mut e = Self::make(key, expire, payload, self.obj.clone(), 0);
        e.set_lru(self.lru());
        e
    }

    /// Redis' `OBJECT ENCODING` name.
    pub fn encoding(&self) -> &'static str {
        match self.value() {
            ValueRef::Str(s) => {
                if s.len() <= 20 && protocol::number::parse_i64(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            ValueRef::Obj(Object::Str(_)) => "raw",
            ValueRef::Obj(Object::List(v)) => v.encoding_name(),
            ValueRef::Obj(Object::Hash(v)) => v.encoding_name(),
            ValueRef::Obj(Object::Set(v)) => v.encoding_name(),
            ValueRef::Obj(Object::ZSet(v)) => v.encoding_name(),
            ValueRef::Obj(Object::Stream(_)) => "stream",
        }
    }

    /// Approximate heap bytes used by this entry (for INFO memory estimates).
    pub fn heap_size(&self) -> usize {
        self.blob.len()
            + match self.obj.as_deref() {
                Some(Object::Str(v)) => 24 + v.capacity(),
                Some(Object::List(v)) => v.heap_size(),
                Some(Object::Hash(v)) => v.heap_size(),
                Some(Object::Set(v)) => v.heap_size(),
                Some(Object::ZSet(v)) => v.heap_size(),
                Some(Object::Stream(v)) => v.heap_size(),
                None => 0,
            }
    }
}

/// In-place access used by the string commands (INCR rewrites the digits of an
/// inline value without reallocating when the width does not change).
impl Entry {
    /// The inline string payload, writable in place (its length is fixed);
    /// `None` when the value lives in an object.
    #[inline]
    pub fn inline_str_mut(&mut self) -> Option<&mut [u8]> {
        if self.obj.is_some() {
            return None;
        }
        let s = self.key_start() + self.key_len();
        self.blob.get_mut(s..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        let mut e = Entry::new_str(b"key", b"value", None, 7);
        assert_eq!(e.key(), b"key");
        assert_eq!(e.as_str(), Some(&b"value"[..]));
        assert_eq!(e.expire(), None);
        assert_eq!(e.lru(), 7);
        assert!(!e.snap_bit());
        e.set_snap_bit(true);
        e.set_expire(Some(12345));
        assert_eq!(e.expire(), Some(12345));
        assert_eq!(e.key(), b"key");
        assert_eq!(e.as_str(), Some(&b"value"[..]));
        assert!(e.is_expired(12346) && !e.is_expired(12345));
        e.set_expire(Some(99));
        assert_eq!(e.expire(), Some(99));
        e.str_mut().unwrap().extend_from_slice(b"!!");
        assert_eq!(e.as_str(), Some(&b"value!!"[..]));
        assert_eq!(e.expire(), Some(99));
        assert_eq!(e.encoding(), "raw");
        e.set_expire(None);
        assert_eq!(e.expire(), None);
        assert_eq!(e.key(), b"key");
        e.set_str(b"12", None);
        assert_eq!(e.encoding(), "int");
        e.touch(0xabcdef);
        assert_eq!(e.lru(), 0xabcdef);
        // Every change of value or expiry above kept the snapshot bit.
        assert!(e.snap_bit());
        e.set_obj(Object::Str(b"x".to_vec()), None);
        assert!(e.snap_bit());
        e.set_str(b"12", None);
        e.set_snap_bit(false);
        assert!(!e.snap_bit() && e.expire().is_none() && e.lru() == 0xabcdef);
        let c = e.with_key(b"other", Some(5));
        assert_eq!(
            (c.key(), c.as_str(), c.expire()),
            (&b"other"[..], Some(&b"12"[..]), Some(5))
        );
    }
}
