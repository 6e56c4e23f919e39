//! Pub/sub through the proxy (beyond Codis, which refuses it).
//!
//! Where messages meet: PUBLISH, SUBSCRIBE, PSUBSCRIBE and PUBSUB
//! CHANNELS/NUMSUB/NUMPAT go to the **pub/sub server**, the owner of slot 0
//! (every proxy of a cluster picks the same one); SPUBLISH, SSUBSCRIBE and
//! PUBSUB SHARDNUMSUB go to the owner of the shard channel's slot, as keys
//! do. So a publisher and its subscribers always meet on one server.
//!
//! A session that subscribes hands its client socket to [`relay`] once
//! every earlier request is answered: a connection of its own to that
//! server carries the subscription, its frames (confirmations, messages,
//! PING replies, errors) go to the client as they come, and the client's
//! further requests go to it in order. In RESP2 the server itself refuses
//! other commands while subscribed (Redis' error text); RESP3 clients,
//! who may send anything in that state, get a proxy error for commands
//! other than (P|S)(UN)SUBSCRIBE and PING. A shard channel of another
//! server than the subscription's is refused (one subscription connection
//! per client). The relay follows the subscriptions (from the server's
//! confirmations) and ends when the last one is gone: the connection is
//! closed and the session goes on routing by slot. QUIT ends the client;
//! RESET leaves subscribed mode and is then answered by the session.
//!
//! A refusal is written only once the server has answered every earlier
//! request (the frames each one brings are known: one per channel named,
//! one per current subscription for an argument-less unsubscribe, one for
//! anything else), so replies stay in request order.
//!
//! When the subscription's slot changes owner (a migration finished, a
//! promotion), the relay subscribes again on the new owner and drops the
//! old connection, so publishers routed to the new owner still reach the
//! client; messages published during the switch may be lost or, rarely,
//! delivered twice (pub/sub promises at most once delivery anyway).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use protocol::resp::{Limits, RequestParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::{encode, frame_len};
use crate::router::{Chan, Router};

/// The slot whose owner is the pub/sub server.
pub const PUBSUB_SLOT: usize = 0;

/// How the relay ended.
pub enum Outcome {
    /// No subscription left (or RESET next): the session goes on.
    Back,
    /// The client left, QUIT, or the connection broke.
    Closed,
}

#[derive(Default)]
struct Subs {
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    shard: BTreeSet<Vec<u8>>,
}

impl Subs {
    fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty()
    }

    /// Applies a (un)subscribe request to the projection; the frames the
    /// server will answer with.
    fn apply(&mut self, up: &[u8], args: &[Vec<u8>]) -> usize {
        let set = match up {
            b"SUBSCRIBE" | b"UNSUBSCRIBE" => &mut self.channels,
            b"PSUBSCRIBE" | b"PUNSUBSCRIBE" => &mut self.patterns,
            _ => &mut self.shard,
        };
        if up.ends_with(b"UNSUBSCRIBE") {
            if args.is_empty() {
                let n = set.len().max(1);
                set.clear();
                n
            } else {
                for a in args {
                    set.remove(a);
                }
                args.len()
            }
        } else {
            for a in args {
                set.insert(a.clone());
            }
            // A subscribe without channels is answered with one error.
            args.len().max(1)
        }
    }
}

fn is_pubsub(up: &[u8]) -> bool {
    matches!(
        up,
        b"SUBSCRIBE"
            | b"PSUBSCRIBE"
            | b"SSUBSCRIBE"
            | b"UNSUBSCRIBE"
            | b"PUNSUBSCRIBE"
            | b"SUNSUBSCRIBE"
    )
}

/// The slot a subscription lives on: shard channels' slot (all of them
/// must share it), else [`PUBSUB_SLOT`]. Err: shard channels of several
/// slots.
pub fn home_slot(up: &[u8], args: &[&[u8]]) -> Result<usize, ()> {
    if up != b"SSUBSCRIBE" {
        return Ok(PUBSUB_SLOT);
    }
    let slot = protocol::slot::slot_of(args.first().copied().unwrap_or(b""));
    if args.iter().any(|c| protocol::slot::slot_of(c) != slot) {
        return Err(());
    }
    Ok(slot)
}

struct Link {
    stream: TcpStream,
    buf: Vec<u8>,
    addr: String,
}

async fn open(router: &Arc<Router>, slot: usize, ch: Chan) -> Result<Link, String> {
    let routed = router
        .route(slot)
        .await
        .map_err(|_| crate::errors::handle_request(crate::errors::NOT_READY))?;
    let addr = routed.backend.addr.clone();
    drop(routed);
    let stream = crate::backend::connect(&addr, ch, &router.opts)
        .await
        .map_err(|e| {
            crate::log::warn(&format!("backend {addr}: pub/sub connection: {e}"));
            crate::errors::RESET_TEXT.to_string()
        })?;
    Ok(Link {
        stream,
        buf: Vec::new(),
        addr,
    })
}

/// The owner of `slot` now (None: unassigned or switching).
fn owner(router: &Router, slot: usize) -> Option<String> {
    let t = router.table.load();
    let r = &t.slots[slot];
    (!r.blocked).then(|| r.backend.as_ref().map(|b| b.addr.clone()))?
}

/// Serves the client in subscribed mode. `first`: the subscribe request
/// that starts it; `pending`: client bytes read after it (requests not
/// yet handled), given back with what is left when the relay ends.
pub async fn relay(
    router: &Arc<Router>,
    sock: &mut TcpStream,
    pending: &mut Vec<u8>,
    first: Vec<Vec<u8>>,
    ch: Chan,
) -> Outcome {
    let mut up0 = first[0].clone();
    up0.make_ascii_uppercase();
    let args0: Vec<&[u8]> = first[1..].iter().map(Vec::as_slice).collect();
    let Ok(slot) = home_slot(&up0, &args0) else {
        let _ = sock.write_all(crate::errors::CROSSSLOT).await;
        return Outcome::Back;
    };
    let mut link = match open(router, slot, ch).await {
        Ok(l) => l,
        Err(e) => {
            let _ = sock.write_all(&crate::errors::line(&e)).await;
            return Outcome::Back;
        }
    };
    let mut subs = Subs::default();
    // Frames still owed for the requests sent, per request in order, and
    // whether they are the relay's own (not for the client).
    let mut owed: VecDeque<(usize, bool)> = VecDeque::new();
    // A local reply waiting for `owed` to drain, then the requests after it.
    let mut deferred: Option<Vec<u8>> = None;
    let mut leaving: Option<Outcome> = None;
    let send = |req: &[Vec<u8>]| {
        let mut out = Vec::new();
        let args: Vec<&[u8]> = req.iter().map(Vec::as_slice).collect();
        encode(&mut out, &args);
        out
    };
    let mut to_server = send(&first);
    owed.push_back((subs.apply(&up0, &first[1..]), false));
    let mut parser = RequestParser::new();
    let mut to_client: Vec<u8> = Vec::new();
    let mut cbuf = [0u8; 16 * 1024];
    let mut sbuf = [0u8; 16 * 1024];
    let mut check = tokio::time::interval(Duration::from_millis(50));
    loop {
        // Handle buffered client requests (unless a local reply waits).
        while deferred.is_none() && leaving.is_none() {
            let p = match parser.parse(pending, Limits::default()) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(_) => return Outcome::Closed,
            };
            let base: &[u8] = if p.in_scratch {
                parser.scratch()
            } else {
                pending
            };
            let argv: Vec<Vec<u8>> = parser
                .ranges()
                .iter()
                .map(|&(a, b)| base[a..b].to_vec())
                .collect();
            let consumed = p.consumed;
            if argv.is_empty() {
                pending.drain(..consumed);
                continue;
            }
            let mut up = argv[0].clone();
            up.make_ascii_uppercase();
            if up == b"RESET" {
                // The server leaves subscribed mode first (so no message
                // is published to this client afterwards); the RESET
                // itself is left for the session, which answers +RESET.
                to_server.extend_from_slice(&send(&[b"RESET".to_vec()]));
                owed.push_back((1, true));
                leaving = Some(Outcome::Back);
                break;
            }
            pending.drain(..consumed);
            if up == b"QUIT" {
                deferred = Some(crate::errors::OK.to_vec());
                leaving = Some(Outcome::Closed);
                break;
            }
            let refusal = if up == b"SSUBSCRIBE" {
                let a: Vec<&[u8]> = argv[1..].iter().map(Vec::as_slice).collect();
                match home_slot(&up, &a) {
                    Err(()) => Some(crate::errors::CROSSSLOT.to_vec()),
                    Ok(s) if owner(router, s).as_deref() != Some(link.addr.as_str()) => {
                        Some(crate::errors::line(&crate::errors::handle_request(
                            crate::errors::SUB_OTHER_SERVER,
                        )))
                    }
                    Ok(_) => None,
                }
            } else if matches!(up.as_slice(), b"SUBSCRIBE" | b"PSUBSCRIBE")
                && owner(router, PUBSUB_SLOT).as_deref() != Some(link.addr.as_str())
            {
                Some(crate::errors::line(&crate::errors::handle_request(
                    crate::errors::SUB_OTHER_SERVER,
                )))
            } else if ch.resp3 && !is_pubsub(&up) && up != b"PING" {
                Some(crate::errors::line(&crate::errors::handle_request(
                    &crate::errors::not_while_subscribed(&String::from_utf8_lossy(&up)),
                )))
            } else {
                None
            };
            match refusal {
                Some(r) => deferred = Some(r),
                None => {
                    let frames = if is_pubsub(&up) {
                        subs.apply(&up, &argv[1..])
                    } else {
                        1
                    };
                    owed.push_back((frames, false));
                    to_server.extend_from_slice(&send(&argv));
                    if subs.is_empty() {
                        // The last subscription goes with this request:
                        // what follows is routed by slot again, by the
                        // session, never sent to this connection.
                        leaving = Some(Outcome::Back);
                        break;
                    }
                }
            }
        }
        if owed.is_empty()
            && let Some(r) = deferred.take()
        {
            to_client.extend_from_slice(&r);
        }
        if !to_server.is_empty() {
            if link.stream.write_all(&to_server).await.is_err() {
                let _ = sock.write_all(crate::errors::RESET).await;
                return Outcome::Closed;
            }
            to_server.clear();
        }
        if !to_client.is_empty() {
            if sock.write_all(&to_client).await.is_err() {
                return Outcome::Closed;
            }
            to_client.clear();
        }
        if owed.is_empty() && deferred.is_none() {
            if let Some(o) = leaving.take() {
                return o;
            }
            if subs.is_empty() {
                return Outcome::Back;
            }
        }
        tokio::select! {
            r = sock.read(&mut cbuf), if deferred.is_none() && leaving.is_none() => match r {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(n) => pending.extend_from_slice(&cbuf[..n]),
            },
            r = link.stream.read(&mut sbuf) => match r {
                Ok(0) | Err(_) => {
                    let _ = sock.write_all(crate::errors::RESET).await;
                    return Outcome::Closed;
                }
                Ok(n) => {
                    link.buf.extend_from_slice(&sbuf[..n]);
                    loop {
                        match frame_len(&link.buf) {
                            Ok(Some(len)) => {
                                let mut ours = false;
                                if !is_message(&link.buf[..len])
                                    && let Some((f, own)) = owed.front_mut()
                                {
                                    ours = *own;
                                    *f = f.saturating_sub(1);
                                    if *f == 0 {
                                        owed.pop_front();
                                    }
                                }
                                if !ours {
                                    to_client.extend_from_slice(&link.buf[..len]);
                                }
                                link.buf.drain(..len);
                            }
                            Ok(None) => break,
                            Err(()) => {
                                let _ = sock.write_all(crate::errors::RESET).await;
                                return Outcome::Closed;
                            }
                        }
                    }
                }
            },
            _ = check.tick() => {
                // The subscription's slot changed owner: subscribe again
                // there (between requests only, so nothing is owed).
                if owed.is_empty()
                    && let Some(now) = owner(router, slot)
                    && now != link.addr
                    && let Ok(l) = resubscribe(router, slot, ch, &subs).await
                {
                    crate::log::info(&format!(
                        "pub/sub: slot {slot} moved from {} to {}: subscriptions moved",
                        link.addr, l.addr
                    ));
                    link = l;
                }
            }
        }
    }
}

/// A push message (not a reply to a request): `message`, `pmessage`,
/// `smessage`.
fn is_message(frame: &[u8]) -> bool {
    let body = match frame.iter().position(|&c| c == b'\n') {
        Some(i) => &frame[i + 1..],
        None => return false,
    };
    let name = match body.iter().position(|&c| c == b'\n') {
        Some(i) => &body[i + 1..],
        None => return false,
    };
    name.starts_with(b"message\r")
        || name.starts_with(b"pmessage\r")
        || name.starts_with(b"smessage\r")
}

/// A new connection to the slot's owner with every subscription made
/// again (its confirmations swallowed).
async fn resubscribe(
    router: &Arc<Router>,
    slot: usize,
    ch: Chan,
    subs: &Subs,
) -> Result<Link, String> {
    let mut l = open(router, slot, ch).await?;
    let mut out = Vec::new();
    let mut expect = 0;
    for (cmd, set) in [
        (&b"SUBSCRIBE"[..], &subs.channels),
        (b"PSUBSCRIBE", &subs.patterns),
        (b"SSUBSCRIBE", &subs.shard),
    ] {
        if set.is_empty() {
            continue;
        }
        let mut args: Vec<&[u8]> = vec![cmd];
        args.extend(set.iter().map(Vec::as_slice));
        encode(&mut out, &args);
        expect += set.len();
    }
    l.stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut got = 0;
    let mut chunk = [0u8; 4096];
    while got < expect {
        match frame_len(&l.buf) {
            Ok(Some(len)) => {
                l.buf.drain(..len);
                got += 1;
                continue;
            }
            Ok(None) => {}
            Err(()) => return Err("bad frame".into()),
        }
        let n = tokio::time::timeout(Duration::from_secs(5), l.stream.read(&mut chunk))
            .await
            .map_err(|_| "timeout".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        l.buf.extend_from_slice(&chunk[..n]);
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_owed() {
        let mut s = Subs::default();
        assert_eq!(s.apply(b"SUBSCRIBE", &[b"a".to_vec(), b"b".to_vec()]), 2);
        assert_eq!(s.apply(b"PSUBSCRIBE", &[b"p*".to_vec()]), 1);
        assert_eq!(s.apply(b"UNSUBSCRIBE", &[]), 2);
        assert!(!s.is_empty());
        assert_eq!(s.apply(b"PUNSUBSCRIBE", &[]), 1);
        assert!(s.is_empty());
        assert_eq!(s.apply(b"SUNSUBSCRIBE", &[]), 1);
        assert_eq!(s.apply(b"SUBSCRIBE", &[]), 1, "one error frame");
        assert!(is_message(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n"));
        assert!(is_message(b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n"));
        assert!(!is_message(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"));
        assert_eq!(home_slot(b"SUBSCRIBE", &[b"x"]), Ok(PUBSUB_SLOT));
        assert!(home_slot(b"SSUBSCRIBE", &[b"{a}1", b"{b}1"]).is_err());
    }
}
