//! The propagation stream: one ordered stream of every change this server
//! makes, as RESP commands (Redis' `propagate()` / `alsoPropagate`, the feed
//! of the AOF and of replicas). Owns the stream's encoder and its consumers;
//! knows nothing of sockets or files.
//!
//! Ordering: an entry is appended while its keys' slots are still locked
//! (the gate holds a write command's lock set until its entries are in,
//! expiry appends under the slot lock), so two changes of one key always
//! appear in the order they happened. A `SELECT` precedes an entry whose DB
//! differs from the last one; a command (or transaction) that propagates more
//! than one entry is wrapped in `MULTI` … `EXEC`, so a consumer applies it
//! whole.
//!
//! Cost: with no consumer the gate reads one atomic and skips all of it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use tokio::sync::mpsc;

/// One entry: the command line to propagate.
pub type Argv = Vec<Vec<u8>>;

/// A consumer's end: RESP bytes, each message one whole command or one
/// whole `MULTI` … `EXEC` block (with its leading `SELECT` if any).
pub type Receiver = mpsc::UnboundedReceiver<Vec<u8>>;

#[derive(Default)]
struct Inner {
    /// The DB the consumers are in (`None` until the first entry).
    db: Option<usize>,
    consumers: Vec<mpsc::UnboundedSender<Vec<u8>>>,
}

#[derive(Default)]
pub struct Stream {
    active: AtomicBool,
    inner: Mutex<Inner>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends `argv` as a RESP array of bulk strings.
pub fn encode<A: AsRef<[u8]>>(out: &mut Vec<u8>, argv: &[A]) {
    let mut b = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(b.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(b.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl Stream {
    /// Whether anyone consumes the stream (the gate's only cost otherwise).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Adds a consumer; it receives every change from now on. The first
    /// message it gets starts with a `SELECT`.
    pub fn subscribe(&self) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut g = lock(&self.inner);
        g.consumers.push(tx);
        // A new consumer does not know the current DB.
        g.db = None;
        self.active.store(true, Relaxed);
        rx
    }

    /// Appends one change: the entries (each with its DB) of one command (or
    /// of a whole transaction when `multi`), wrapped in MULTI/EXEC when
    /// there are several of them or `multi` is set.
    pub fn emit(&self, entries: &[(usize, Argv)], multi: bool) {
        if entries.is_empty() {
            return;
        }
        let mut g = lock(&self.inner);
        if g.consumers.is_empty() {
            return;
        }
        let mut buf = Vec::with_capacity(64);
        let wrap = multi || entries.len() > 1;
        if wrap {
            // MULTI is not DB-specific, but Redis selects first; keep the
            // SELECT outside the block so a replayed block stays whole.
            let first = entries[0].0;
            if g.db != Some(first) {
                select(&mut buf, first);
                g.db = Some(first);
            }
            encode(&mut buf, &[b"MULTI".as_slice()]);
        }
        for (edb, argv) in entries {
            if g.db != Some(*edb) {
                select(&mut buf, *edb);
                g.db = Some(*edb);
            }
            encode(&mut buf, argv);
        }
        if wrap {
            encode(&mut buf, &[b"EXEC".as_slice()]);
        }
        Self::send(&mut g, buf);
        if g.consumers.is_empty() {
            self.active.store(false, Relaxed);
        }
    }

    /// Appends `DEL key` in DB `db` (expiry, migration, eviction).
    pub fn emit_del(&self, db: usize, key: &[u8]) {
        let mut g = lock(&self.inner);
        if g.consumers.is_empty() {
            return;
        }
        let mut buf = Vec::with_capacity(32 + key.len());
        if g.db != Some(db) {
            select(&mut buf, db);
            g.db = Some(db);
        }
        encode(&mut buf, &[b"DEL".as_slice(), key]);
        Self::send(&mut g, buf);
        if g.consumers.is_empty() {
            self.active.store(false, Relaxed);
        }
    }

    fn send(g: &mut Inner, buf: Vec<u8>) {
        if g.consumers.len() == 1 {
            if g.consumers[0].send(buf).is_err() {
                g.consumers.clear();
            }
            return;
        }
        g.consumers.retain(|c| c.send(buf.clone()).is_ok());
    }
}

fn select(buf: &mut Vec<u8>, db: usize) {
    let mut b = itoa::Buffer::new();
    encode(buf, &[b"SELECT".as_slice(), b.format(db).as_bytes()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Argv {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn selects_and_wraps() {
        let s = Stream::default();
        assert!(!s.active());
        let mut rx = s.subscribe();
        assert!(s.active());
        s.emit(&[(0, argv(&["SET", "a", "1"]))], false);
        s.emit(&[(0, argv(&["INCR", "a"]))], false);
        s.emit(
            &[(1, argv(&["LPOP", "l"])), (1, argv(&["DEL", "x"]))],
            false,
        );
        s.emit_del(1, b"k");
        let got: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n",
                "*2\r\n$4\r\nINCR\r\n$1\r\na\r\n",
                "*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nLPOP\r\n$1\r\nl\r\n*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n*1\r\n$4\r\nEXEC\r\n",
                "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n",
            ]
        );
        drop(rx);
        s.emit(&[(0, argv(&["SET", "a", "1"]))], false);
        assert!(!s.active());
    }

    #[test]
    fn lazy_and_active_expiry_propagate_del() {
        let mut h = crate::testkit::Harness::new();
        h.run("SET a 1");
        h.run("PEXPIRE a 100");
        h.run("SET b 1");
        h.run("PEXPIRE b 100");
        h.capture();
        h.now += 200;
        assert_eq!(h.run("GET a"), "$-1\r\n");
        // A read that expired a key propagates its DEL, nothing else.
        assert_eq!(h.propagated(), ["SELECT 0", "DEL a"]);
        h.srv
            .ks
            .active_expire(h.now, std::time::Duration::from_millis(50));
        assert_eq!(h.propagated(), ["DEL b"]);
    }
}
