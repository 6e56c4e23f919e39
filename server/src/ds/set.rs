//! The set value type (placeholder shape; its owner replaces this file with the
//! real compact/full encodings). Keep the type name `Set` and the methods
//! `encoding_name`, `heap_size` and `len` that db/entry.rs calls.

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Set {}

impl Set {
    /// Redis' OBJECT ENCODING name for the current representation.
    pub fn encoding_name(&self) -> &'static str {
        "unknown"
    }

    /// Approximate heap bytes (INFO memory estimates).
    pub fn heap_size(&self) -> usize {
        0
    }

    /// Number of elements (0 means the key must be deleted).
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
