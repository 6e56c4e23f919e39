//! Value data structures for the collection types, below the network layer and
//! unit-tested on their own (the Valkey habit): each type keeps a compact
//! encoding for small values (Redis' listpack/intset thresholds, configurable
//! with the same config names) and converts to a full structure past them.

pub mod geohash;
pub mod hash;
pub mod list;
pub mod set;
pub mod skiplist;
pub mod stream;
pub mod zset;

pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use zset::ZSet;
