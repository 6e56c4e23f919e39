//! Diskless full sync, master side (Redis 7.0's `rdbSaveToSlavesSockets`
//! and the `repl-diskless-sync*` options): replicas that announced
//! `capa eof` wait up to `repl-diskless-sync-delay` seconds (or until
//! `repl-diskless-sync-max-replicas` of them wait), then one forkless
//! snapshot is streamed to all of them at once, framed as
//! `$EOF:<40 random bytes>\r\n` + the RDB + the same 40 bytes. Owns the
//! waiting room and the tee that copies the snapshot's bytes to every
//! replica of the transfer; the replica links (mod.rs) write them out.
//!
//! The snapshot is written by its walker thread into one bounded channel
//! per replica, so the slowest replica paces the walk (as Redis' child
//! writing to the replicas' sockets); a replica that went away is skipped,
//! and the walk ends when none is left.

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::persist::rdb;
use crate::propagate::{QueueCheck, Reader};
use crate::server::Server;
use crate::{notice, warning};

/// One piece of a transfer.
pub enum Chunk {
    Data(Arc<Vec<u8>>),
    /// The snapshot ended: complete (`true`) or not.
    End(bool),
}

/// What a waiting replica gets when its transfer starts.
pub struct Session {
    /// The replication offset of the snapshot point.
    pub offset: u64,
    /// The stream from that point.
    pub rx: Reader,
    pub chunks: mpsc::Receiver<Chunk>,
}

/// A replica in the waiting room.
struct Waiter {
    start: oneshot::Sender<Session>,
    check: Option<QueueCheck>,
}

/// The waiting room (Redis' replicas in `WAIT_BGSAVE_START`).
#[derive(Default)]
pub struct Room {
    waiting: Mutex<Vec<Waiter>>,
    /// Whether a coordinator task is scheduled.
    scheduled: Mutex<bool>,
}

/// Puts a replica in the waiting room; its transfer starts with the
/// next diskless snapshot.
pub fn join(srv: &Arc<Server>, check: QueueCheck) -> oneshot::Receiver<Session> {
    let (tx, rx) = oneshot::channel();
    let room = &srv.repl.diskless;
    room.waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Waiter {
            start: tx,
            check: Some(check),
        });
    let mut s = room.scheduled.lock().unwrap_or_else(|p| p.into_inner());
    if !*s {
        *s = true;
        let srv2 = srv.clone();
        tokio::spawn(async move { coordinate(srv2).await });
    }
    rx
}

/// Waits the delay (or for enough replicas), then runs one transfer for
/// every replica waiting by then.
async fn coordinate(srv: Arc<Server>) {
    let room = &srv.repl.diskless;
    let first = Instant::now();
    loop {
        let (delay, max) = {
            let c = srv.config();
            (
                c.repl_diskless_sync_delay.max(0) as u64,
                c.repl_diskless_sync_max_replicas,
            )
        };
        let n = {
            let mut w = room.waiting.lock().unwrap_or_else(|p| p.into_inner());
            // Replicas that went away meanwhile leave the room.
            w.retain(|x| !x.start.is_closed());
            w.len()
        };
        if n == 0 {
            *room.scheduled.lock().unwrap_or_else(|p| p.into_inner()) = false;
            // (A replica that joined after the check found `scheduled`
            // set: look once more.)
            if room
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            {
                return;
            }
            *room.scheduled.lock().unwrap_or_else(|p| p.into_inner()) = true;
            continue;
        }
        let enough = max > 0 && n as i64 >= max;
        if enough || first.elapsed() >= Duration::from_secs(delay) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One snapshot at a time: wait for a BGSAVE or AOF rewrite to end.
    while !srv.persist.try_claim() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut waiters = {
        // Later replicas wait for the next transfer.
        let mut s = room.scheduled.lock().unwrap_or_else(|p| p.into_inner());
        *s = false;
        std::mem::take(&mut *room.waiting.lock().unwrap_or_else(|p| p.into_inner()))
    };
    if waiters.is_empty() {
        srv.persist.saving.store(false, Relaxed);
        return;
    }
    let mut senders = Vec::with_capacity(waiters.len());
    let mut chunk_rxs = Vec::with_capacity(waiters.len());
    for _ in &waiters {
        let (tx, rx) = mpsc::channel(16);
        senders.push(tx);
        chunk_rxs.push(rx);
    }
    let tee = Tee {
        to: senders.iter().cloned().map(Some).collect(),
        srv: srv.clone(),
    };
    let mut subs = Vec::with_capacity(waiters.len());
    let job = rdb::Job::start_stream(&srv, Box::new(tee), |s| {
        for w in waiters.iter_mut() {
            let check = w.check.take().expect("one transfer per waiter");
            subs.push(s.prop.subscribe(Some(check)));
        }
    });
    let Ok(job) = job else {
        srv.persist.saving.store(false, Relaxed);
        warning!("Can't start the snapshot for the diskless transfer");
        return;
    };
    notice!(
        "Starting BGSAVE for SYNC with target: replicas sockets ({} replica{})",
        waiters.len(),
        if waiters.len() == 1 { "" } else { "s" }
    );
    for ((w, (rx, offset)), chunks) in waiters.into_iter().zip(subs).zip(chunk_rxs) {
        let _ = w.start.send(Session { offset, rx, chunks });
    }
    let srv2 = srv.clone();
    // (The slot is let go on the job's own thread: FLUSHALL's wait for it
    // must not depend on this task running.)
    let ok = tokio::task::spawn_blocking(move || {
        let r = job.run(&srv2);
        srv2.persist.saving.store(false, Relaxed);
        r
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false);
    if ok {
        notice!("Diskless transfer to replicas ended: success");
    } else {
        warning!("Diskless transfer to replicas ended: failed");
    }
    for tx in senders {
        let _ = tx.send(Chunk::End(ok)).await;
    }
}

/// Copies the snapshot's bytes to every replica of the transfer (the
/// walker's thread waits while the slowest one is 16 chunks behind, and
/// gives up when the snapshot is stopped: FLUSHALL, a replica's load).
struct Tee {
    to: Vec<Option<mpsc::Sender<Chunk>>>,
    srv: Arc<Server>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let data = Arc::new(buf.to_vec());
        let mut alive = false;
        for slot in self.to.iter_mut() {
            let Some(tx) = slot else { continue };
            let mut chunk = Chunk::Data(data.clone());
            loop {
                match tx.try_send(chunk) {
                    Ok(()) => {
                        alive = true;
                        break;
                    }
                    Err(mpsc::error::TrySendError::Full(c)) => {
                        if self.srv.persist.aborting() {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::Interrupted,
                                "snapshot stopped",
                            ));
                        }
                        chunk = c;
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        *slot = None;
                        break;
                    }
                }
            }
        }
        if alive {
            Ok(buf.len())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "no replica left",
            ))
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The 40 random bytes that end a diskless payload.
pub fn eof_mark() -> [u8; 40] {
    let mut m = [0u8; 40];
    const HEX: &[u8] = b"0123456789abcdef";
    for b in m.iter_mut() {
        *b = HEX[(rand::random::<u8>() & 0xf) as usize];
    }
    m
}
