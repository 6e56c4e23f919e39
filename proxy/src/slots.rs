//! The Codis `Slot` model now lives in the shared `cluster` crate.
pub use cluster::slot::*;
