//! CLIENT PAUSE / UNPAUSE (Redis' `pauseClients`): while a pause is in
//! effect, the connection loop holds back commands that write or may
//! replicate (WRITE mode) or every command (ALL mode) until the pause ends,
//! without consuming them; active expiry stops too, so the dataset does not
//! change under a failover. Replicas (later) are never paused.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use protocol::command::{self, CmdId, flags};

use crate::client::Client;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Write,
    All,
}

#[derive(Default)]
pub struct Pause {
    on: AtomicBool,
    /// (end as unix ms, mode) of the pause in effect.
    state: Mutex<Option<(u64, Mode)>>,
    /// Wakes held-back connections when the pause is lifted.
    lifted: tokio::sync::Notify,
}

impl Pause {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Mode)>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pauses until `end` (unix ms); a pause in effect keeps the later end
    /// and the stricter mode.
    pub fn pause(&self, end: u64, mode: Mode) {
        let mut s = self.lock();
        *s = Some(match *s {
            Some((e, m)) => (e.max(end), m.max(mode)),
            None => (end, mode),
        });
        self.on.store(true, Relaxed);
    }

    /// Ends the pause and lets every held-back connection go on.
    pub fn unpause(&self) {
        *self.lock() = None;
        self.on.store(false, Relaxed);
        self.lifted.notify_waiters();
    }

    /// The mode in effect at `now`, ending an expired pause.
    pub fn mode(&self, now: u64) -> Option<Mode> {
        if !self.on.load(Relaxed) {
            return None;
        }
        let s = *self.lock();
        match s {
            Some((end, m)) if now < end => Some(m),
            _ => {
                self.unpause();
                None
            }
        }
    }

    /// Whether `argv` from `client` must wait (Redis: ALL, or WRITE and the
    /// command — or the EXEC's queue — writes or may replicate).
    #[inline]
    pub fn holds(&self, client: &Client, argv: &[&[u8]], now: u64) -> bool {
        if !self.on.load(Relaxed) {
            return false;
        }
        self.holds_slow(client, argv, now)
    }

    fn holds_slow(&self, client: &Client, argv: &[&[u8]], now: u64) -> bool {
        let Some(mode) = self.mode(now) else {
            return false;
        };
        if mode == Mode::All {
            return true;
        }
        let Some(id) = argv.first().and_then(|n| command::lookup(n)) else {
            return false;
        };
        let writes = |spec: &command::CommandSpec| spec.has(flags::WRITE | flags::MAY_REPLICATE);
        if id == CmdId::Exec {
            return client
                .multi
                .as_ref()
                .is_some_and(|m| m.any_command(|id, argv| writes(crate::exec::spec_of(id, argv))));
        }
        writes(crate::exec::spec_of(id, argv))
    }

    /// Waits until the pause is lifted or ends.
    pub async fn wait(&self) {
        loop {
            let lifted = self.lifted.notified();
            let end = match *self.lock() {
                None => return,
                Some((end, _)) => end,
            };
            let now = crate::db::now_ms();
            if now >= end {
                self.mode(now);
                return;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(end - now), lifted).await;
        }
    }
}
