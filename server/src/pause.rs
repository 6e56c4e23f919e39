//! CLIENT PAUSE / UNPAUSE (Redis' `pauseClients`): while a pause is in
//! effect, the connection loop holds back commands that write or may
//! replicate (WRITE mode) or every command (ALL mode) until the pause ends,
//! without consuming them; active expiry stops too, so the dataset does not
//! change under a failover. FAILOVER pauses writes the same way until it
//! ends. Replica links and our master's stream are never paused.

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
    state: Mutex<State>,
    /// Wakes held-back connections when the pause is lifted.
    lifted: tokio::sync::Notify,
}

/// The pauses in effect: CLIENT PAUSE's, and the writes held by FAILOVER
/// and by a SHUTDOWN waiting for its replicas (until they end; CLIENT
/// UNPAUSE leaves them, as in Redis).
#[derive(Default, Clone, Copy)]
struct State {
    /// (end as unix ms, mode).
    client: Option<(u64, Mode)>,
    /// [`Hold`] bits.
    holds: u8,
}

/// Who holds writes besides CLIENT PAUSE.
#[derive(Clone, Copy)]
pub enum Hold {
    Failover = 1,
    Shutdown = 2,
}

impl Pause {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pauses until `end` (unix ms); a pause in effect keeps the later end
    /// and the stricter mode.
    pub fn pause(&self, end: u64, mode: Mode) {
        let mut s = self.lock();
        s.client = Some(match s.client {
            Some((e, m)) => (e.max(end), m.max(mode)),
            None => (end, mode),
        });
        self.on.store(true, Relaxed);
    }

    /// Ends CLIENT PAUSE's pause and lets every held-back connection go on
    /// (unless a failover holds writes).
    pub fn unpause(&self) {
        let mut s = self.lock();
        s.client = None;
        self.settle(&s);
    }

    /// Holds writes for `who` (FAILOVER while it waits for a replica and
    /// hands over; SHUTDOWN while its replicas catch up), or lets them go.
    pub fn hold(&self, who: Hold, on: bool) {
        let mut s = self.lock();
        if on {
            s.holds |= who as u8;
            self.on.store(true, Relaxed);
        } else {
            s.holds &= !(who as u8);
            self.settle(&s);
        }
    }

    fn settle(&self, s: &State) {
        if s.client.is_none() && s.holds == 0 {
            self.on.store(false, Relaxed);
        }
        self.lifted.notify_waiters();
    }

    /// Whether a pause may be in effect (no clock read).
    #[inline]
    pub fn maybe_on(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// The mode in effect at `now`, ending an expired pause.
    pub fn mode(&self, now: u64) -> Option<Mode> {
        if !self.on.load(Relaxed) {
            return None;
        }
        let mut s = self.lock();
        if let Some((end, _)) = s.client
            && now >= end
        {
            s.client = None;
            self.settle(&s);
        }
        let client = s.client.map(|(_, m)| m);
        let held = (s.holds != 0).then_some(Mode::Write);
        client.max(held)
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
            let s = *self.lock();
            let now = crate::db::now_ms();
            let client_end = s.client.map(|(end, _)| end).filter(|&end| now < end);
            if client_end.is_none() {
                self.mode(now);
                if s.holds == 0 {
                    return;
                }
            }
            match client_end {
                Some(end) => {
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_millis(end - now), lifted)
                            .await;
                }
                None => lifted.await,
            }
        }
    }
}
