//! Blocking commands (BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP) through the proxy: each runs on a dedicated backend
//! connection of its own for its whole duration, so it never stalls the
//! shared pipelined connections, and its reply goes to the session's inbox
//! under its sequence number like any other.
//!
//! The session issues one only after every earlier request of its own has
//! been answered, and reads no further request until it is answered (a
//! Redis client is blocked the same way), so pipelined order is kept.
//!
//! Slots move while a client waits: the task watches its slot and, when the
//! slot is blocked for a switch or changes owner, it
//! unblocks its own backend client (`CLIENT UNBLOCK <id> TIMEOUT` through
//! the pooled connection). A real reply that raced the unblock is
//! delivered; a timeout reply makes it run again on the slot's owner
//! (after moving the keys off a migration source with SLOTSMGRTTAGONE),
//! with what is left of the client's timeout. No element is popped and
//! then dropped. A blocked request holds no slot guard, so it never holds
//! up a slot switch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::{Inbox, encode, frame_len};
use crate::router::{Chan, RouteError, Router};

/// What the task needs to (re-)issue the command.
pub struct Call {
    pub argv: Vec<Vec<u8>>,
    /// The keys whose tag groups must leave a migration source first.
    pub keys: Vec<Vec<u8>>,
    /// Index of the timeout argument (seconds, may be fractional).
    pub timeout_at: usize,
    pub unit: Unit,
    pub slot: usize,
    pub ch: Chan,
    pub seed: u64,
}

/// Where the timeout argument of a blocking command is.
pub fn timeout_index(upper: &[u8], argv: &[&[u8]]) -> Option<(usize, Unit)> {
    match upper {
        b"BLMPOP" | b"BZMPOP" => Some((1, Unit::Secs)),
        b"BLPOP" | b"BRPOP" | b"BRPOPLPUSH" | b"BLMOVE" | b"BZPOPMIN" | b"BZPOPMAX" => {
            argv.len().checked_sub(1).map(|i| (i, Unit::Secs))
        }
        // XREAD / XREADGROUP block only with BLOCK <ms>, an option before
        // STREAMS (GROUP takes two arguments, COUNT and BLOCK one).
        b"XREAD" | b"XREADGROUP" => {
            let mut i = 1;
            while i + 1 < argv.len() {
                let a = argv[i];
                if a.eq_ignore_ascii_case(b"STREAMS") {
                    return None;
                }
                if a.eq_ignore_ascii_case(b"BLOCK") {
                    return Some((i + 1, Unit::Millis));
                }
                i += if a.eq_ignore_ascii_case(b"GROUP") {
                    3
                } else if a.eq_ignore_ascii_case(b"COUNT") {
                    2
                } else {
                    1
                };
            }
            None
        }
        _ => None,
    }
}

/// How a blocking command's timeout is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds, fractions allowed (BLPOP …).
    Secs,
    /// Whole milliseconds (XREAD … BLOCK).
    Millis,
}

/// A null reply (the command timed out): `*-1`, `$-1` or RESP3 `_`.
fn is_null(frame: &[u8]) -> bool {
    frame.starts_with(b"*-1\r") || frame.starts_with(b"$-1\r") || frame.starts_with(b"_\r")
}

/// Runs the call to its end and delivers the reply (`Err`: an error line's
/// text, wrapped as the proxy's `ERR handle request/response, ...`).
pub async fn run(router: Arc<Router>, call: Call, inbox: Arc<Inbox>, seq: u64) {
    let r = run_inner(&router, &call).await;
    inbox.deliver(|d| match r {
        Ok(frame) => d.reply(seq, &frame),
        Err(text) => d.reply(seq, &crate::errors::line(&text)),
    });
}

async fn run_inner(router: &Arc<Router>, call: &Call) -> Result<Vec<u8>, String> {
    let timeout: f64 = std::str::from_utf8(&call.argv[call.timeout_at])
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|t: &f64| t.is_finite() && *t >= 0.0)
        // A bad timeout: the backend answers with its own error.
        .unwrap_or(0.0);
    let timeout = match call.unit {
        Unit::Secs => timeout,
        Unit::Millis => timeout / 1000.0,
    };
    let deadline = (timeout > 0.0).then(|| Instant::now() + Duration::from_secs_f64(timeout));
    let mut argv = call.argv.clone();
    loop {
        let routed = router.route(call.slot).await.map_err(|e| match e {
            RouteError::NotReady => crate::errors::handle_request(crate::errors::NOT_READY),
            RouteError::LockedTimeout => crate::errors::handle_request(crate::errors::LOCKED),
        })?;
        let owner = routed.backend.clone();
        if let Some(from) = routed.migrate.as_ref() {
            let src = from
                .conn(call.ch, call.seed)
                .cloned()
                .ok_or(crate::errors::RESET_TEXT)?;
            let (host, port) = owner.addr.rsplit_once(':').unwrap_or((&owner.addr, "0"));
            for key in &call.keys {
                let req = crate::backend::mgrt_tag_one(host, port, key);
                match src.call(&req).await {
                    Ok(r) if r.starts_with(b":") => {}
                    Ok(r) => return Err(crate::errors::bad_slotsmgrt_resp(&r)),
                    Err(e) => return Err(crate::errors::handle_response(e.text())),
                }
            }
        }
        drop(routed);
        if owner.health.is_down() {
            return Err(crate::errors::RESET_TEXT.to_string());
        }
        let mut stream = open(&owner.addr, call.ch, router).await?;
        // Its client id first, for CLIENT UNBLOCK.
        let mut req = Vec::new();
        encode(&mut req, &[b"CLIENT", b"ID"]);
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        encode(&mut req, &args);
        stream.write_all(&req).await.map_err(reset)?;
        let mut buf = Vec::with_capacity(512);
        let id_frame = read_frame(&mut stream, &mut buf).await?;
        let id = std::str::from_utf8(
            id_frame
                .get(1..id_frame.len().saturating_sub(2))
                .unwrap_or(b""),
        )
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
        let watch = moved(router, call.slot, &owner.addr);
        tokio::pin!(watch);
        let frame = tokio::select! {
            f = read_frame(&mut stream, &mut buf) => f?,
            () = marked_down(&owner.health) => {
                // A probe found the server frozen: fail like a broken
                // connection rather than wait for a reply that may never come.
                return Err(crate::errors::RESET_TEXT.to_string());
            }
            () = &mut watch => {
                // The slot is moving: unblock our client, then take
                // whatever it answers (a real reply may have raced).
                if let (Some(id), Some(c)) = (id, owner.conn(call.ch, call.seed)) {
                    let mut u = Vec::new();
                    encode(&mut u, &[b"CLIENT", b"UNBLOCK", id.to_string().as_bytes(), b"TIMEOUT"]);
                    let _ = c.call(&u).await;
                }
                read_frame(&mut stream, &mut buf).await?
            }
        };
        if !watch_fired(router, call.slot, &owner.addr) || !is_null(&frame) {
            return Ok(frame);
        }
        // Timed out by our unblock: again on the new owner, with what is
        // left of the timeout.
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(frame);
            }
            argv[call.timeout_at] = match call.unit {
                Unit::Secs => format!("{:.3}", left.as_secs_f64().max(0.001)),
                Unit::Millis => left.as_millis().max(1).to_string(),
            }
            .into_bytes();
        }
    }
}

fn reset(_: std::io::Error) -> String {
    crate::errors::RESET_TEXT.to_string()
}

async fn open(addr: &str, ch: Chan, router: &Router) -> Result<TcpStream, String> {
    crate::backend::connect(addr, ch, &router.opts)
        .await
        .map_err(|e| {
            crate::log::warn(&format!("backend {addr}: blocking connection: {e}"));
            crate::errors::RESET_TEXT.to_string()
        })
}

pub async fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    loop {
        match frame_len(buf) {
            Ok(Some(n)) => {
                let f = buf[..n].to_vec();
                buf.drain(..n);
                return Ok(f);
            }
            Ok(None) => {}
            Err(()) => return Err(crate::errors::RESET_TEXT.into()),
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.map_err(reset)?;
        if n == 0 {
            return Err(crate::errors::RESET_TEXT.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether `slot` no longer belongs to `addr` (blocked for a switch or
/// locked, or another owner). A migration that starts meanwhile needs
/// nothing: pushes then reach the keys' new owner, `addr`.
fn watch_fired(router: &Router, slot: usize, addr: &str) -> bool {
    let t = router.table.load();
    let r = &t.slots[slot];
    r.blocked || r.backend.as_ref().is_none_or(|b| b.addr != addr)
}

/// Resolves when a probe marks the server down (checked every 50 ms).
async fn marked_down(h: &crate::backend::Health) {
    while !h.is_down() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resolves when [`watch_fired`] (checked every 50 ms).
async fn moved(router: &Router, slot: usize, addr: &str) {
    loop {
        if watch_fired(router, slot, addr) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_nulls() {
        assert_eq!(
            timeout_index(b"BLPOP", &[b"BLPOP", b"a", b"b", b"0"]),
            Some((3, Unit::Secs))
        );
        assert_eq!(
            timeout_index(b"BZMPOP", &[b"BZMPOP", b"1", b"1", b"k", b"MIN", b"COUNT"]),
            Some((1, Unit::Secs))
        );
        assert_eq!(timeout_index(b"GET", &[b"GET", b"k"]), None);
        let xr: &[&[u8]] = &[
            b"XREADGROUP",
            b"GROUP",
            b"block",
            b"c",
            b"COUNT",
            b"1",
            b"BLOCK",
            b"5",
            b"STREAMS",
            b"s",
            b">",
        ];
        assert_eq!(timeout_index(b"XREADGROUP", xr), Some((7, Unit::Millis)));
        let nb: &[&[u8]] = &[b"XREAD", b"COUNT", b"block", b"STREAMS", b"block", b"0"];
        assert_eq!(timeout_index(b"XREAD", nb), None);
        assert!(is_null(b"*-1\r\n") && is_null(b"$-1\r\n") && is_null(b"_\r\n"));
        assert!(!is_null(b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"));
    }
}
