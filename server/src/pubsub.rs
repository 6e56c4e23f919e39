//! Pub/sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH,
//! SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, PUBSUB (Redis 7.0's `pubsub.c`
//! semantics, our own code), and the delivery of keyspace notifications.
//!
//! * The registry maps channel → subscribers in subscription order (as
//!   Redis' per-channel client lists) and pattern → subscribers; shard
//!   channels are a third map (no patterns, as Redis).
//! * A message is encoded once per protocol (RESP2 `*3`, RESP3 `>3` push)
//!   and appended to each subscriber's mailbox (`ClientInfo::deliver`), whose
//!   connection loop writes it; a subscriber that publishes to itself gets
//!   the message in its own reply stream, before PUBLISH's reply.
//! * The mailbox is accounted and bounded by `client-output-buffer-limit
//!   pubsub` (net/mod.rs and client.rs): a subscriber that does not read is
//!   closed, the publisher carries on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::command::CmdId;
use protocol::resp::Reply;

use crate::client::{Client, ClientInfo};
use crate::cmd::util::is;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{self, Ctx};

type Subscribers = Vec<Arc<ClientInfo>>;

/// The server's subscriptions.
#[derive(Default)]
pub struct PubSub {
    channels: Mutex<HashMap<Box<[u8]>, Subscribers>>,
    patterns: Mutex<HashMap<Box<[u8]>, Subscribers>>,
    shard: Mutex<HashMap<Box<[u8]>, Subscribers>>,
    /// Number of channels and patterns with subscribers (fast path for
    /// PUBLISH and keyspace notifications).
    n_channels: AtomicUsize,
    n_patterns: AtomicUsize,
    n_shard: AtomicUsize,
    /// `client-output-buffer-limit pubsub`: hard bytes, soft bytes, soft
    /// seconds (0 = no limit).
    hard: AtomicU64,
    soft: AtomicU64,
    soft_secs: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which of the three kinds a subscription is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    fn unsubscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}

/// A client's own subscriptions (in subscription order).
#[derive(Default)]
pub struct ClientSubs {
    pub channels: Vec<Vec<u8>>,
    pub patterns: Vec<Vec<u8>>,
    pub shard: Vec<Vec<u8>>,
}

impl ClientSubs {
    fn list(&mut self, kind: Kind) -> &mut Vec<Vec<u8>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Channels + patterns (the count SUBSCRIBE and PSUBSCRIBE replies show).
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    pub fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard.len()
    }
}

/// Appends a message array header: RESP3 push or RESP2 array.
fn push_header(out: &mut Vec<u8>, resp3: bool, n: usize) {
    out.push(if resp3 { b'>' } else { b'*' });
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    protocol::resp::request::bulk(out, b);
}

fn int(out: &mut Vec<u8>, v: usize) {
    out.push(b':');
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    out.extend_from_slice(b"\r\n");
}

impl PubSub {
    fn map(&self, kind: Kind) -> &Mutex<HashMap<Box<[u8]>, Subscribers>> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    fn counter(&self, kind: Kind) -> &AtomicUsize {
        match kind {
            Kind::Channel => &self.n_channels,
            Kind::Pattern => &self.n_patterns,
            Kind::Shard => &self.n_shard,
        }
    }

    fn add(&self, kind: Kind, name: &[u8], info: &Arc<ClientInfo>) {
        let mut m = lock(self.map(kind));
        let list = m.entry(name.into()).or_default();
        if list.is_empty() {
            self.counter(kind).fetch_add(1, SeqCst);
        }
        list.push(info.clone());
    }

    fn remove(&self, kind: Kind, name: &[u8], id: u64) {
        let mut m = lock(self.map(kind));
        if let Some(list) = m.get_mut(name) {
            list.retain(|c| c.id != id);
            if list.is_empty() {
                m.remove(name);
                self.counter(kind).fetch_sub(1, SeqCst);
            }
        }
    }

    /// Sets the output limits of subscribers (CONFIG SET, start-up).
    pub fn set_limit(&self, l: crate::config::ClientBufferLimit) {
        self.hard.store(l.hard_bytes, Relaxed);
        self.soft.store(l.soft_bytes, Relaxed);
        self.soft_secs.store(l.soft_seconds.max(0) as u64, Relaxed);
    }

    /// Enforces the limits after a delivery left `pending` bytes waiting
    /// for client `c`: over the hard limit, or over the soft limit for
    /// longer than its seconds, the client is closed (Redis'
    /// `checkClientOutputBufferLimits`), and the publisher carries on.
    fn check_limit(&self, c: &ClientInfo, pending: usize) {
        let limit = crate::config::ClientBufferLimit {
            hard_bytes: self.hard.load(Relaxed),
            soft_bytes: self.soft.load(Relaxed),
            soft_seconds: self.soft_secs.load(Relaxed) as i64,
        };
        c.check_output_limit(pending, &limit);
    }

    /// Whether anybody could receive anything (one or two atomic loads).
    #[inline]
    pub fn idle(&self) -> bool {
        self.n_channels.load(Relaxed) == 0 && self.n_patterns.load(Relaxed) == 0
    }

    /// Number of channels with subscribers (INFO `pubsub_channels`).
    pub fn channel_count(&self) -> usize {
        self.n_channels.load(Relaxed)
    }

    pub fn pattern_count(&self) -> usize {
        self.n_patterns.load(Relaxed)
    }

    pub fn shard_channel_count(&self) -> usize {
        self.n_shard.load(Relaxed)
    }

    /// Publishes `msg` on `channel`; returns the number of receivers.
    /// `me` is the publisher: a message for itself goes to `out` directly.
    pub fn publish(
        &self,
        channel: &[u8],
        msg: &[u8],
        shard: bool,
        me: Option<(u64, &mut Reply)>,
    ) -> usize {
        let kind = if shard { Kind::Shard } else { Kind::Channel };
        let mut me = me;
        let mut receivers = 0;
        // Encoded once per protocol, on first use.
        let mut enc: [Option<Vec<u8>>; 2] = [None, None];
        let word: &[u8] = if shard { b"smessage" } else { b"message" };
        if self.counter(kind).load(SeqCst) != 0 {
            let m = lock(self.map(kind));
            if let Some(list) = m.get(channel) {
                for c in list {
                    let resp3 = c.resp.load(Relaxed) == 3;
                    let bytes = enc[resp3 as usize].get_or_insert_with(|| {
                        let mut b = Vec::with_capacity(32 + channel.len() + msg.len());
                        push_header(&mut b, resp3, 3);
                        bulk(&mut b, word);
                        bulk(&mut b, channel);
                        bulk(&mut b, msg);
                        b
                    });
                    self.deliver(c, bytes, &mut me);
                    receivers += 1;
                }
            }
        }
        if shard || self.n_patterns.load(SeqCst) == 0 {
            return receivers;
        }
        let m = lock(&self.patterns);
        for (pat, list) in m.iter() {
            if !protocol::glob::string_match(pat, channel, false) {
                continue;
            }
            let mut penc: [Option<Vec<u8>>; 2] = [None, None];
            for c in list {
                let resp3 = c.resp.load(Relaxed) == 3;
                let bytes = penc[resp3 as usize].get_or_insert_with(|| {
                    let mut b = Vec::with_capacity(48 + pat.len() + channel.len() + msg.len());
                    push_header(&mut b, resp3, 4);
                    bulk(&mut b, b"pmessage");
                    bulk(&mut b, pat);
                    bulk(&mut b, channel);
                    bulk(&mut b, msg);
                    b
                });
                self.deliver(c, bytes, &mut me);
                receivers += 1;
            }
        }
        receivers
    }

    /// Drops every subscription of a client that is going away.
    pub fn forget(&self, client: &mut Client) {
        let id = client.id;
        let subs = std::mem::take(&mut client.subs);
        for c in &subs.channels {
            self.remove(Kind::Channel, c, id);
        }
        for p in &subs.patterns {
            self.remove(Kind::Pattern, p, id);
        }
        for s in &subs.shard {
            self.remove(Kind::Shard, s, id);
        }
        client.info.subs.store(0, Relaxed);
    }
}

impl PubSub {
    fn deliver(&self, c: &Arc<ClientInfo>, bytes: &[u8], me: &mut Option<(u64, &mut Reply)>) {
        match me {
            Some((id, out)) if *id == c.id => out.buf.extend_from_slice(bytes),
            _ => {
                let pending = c.deliver(bytes);
                self.check_limit(c, pending);
            }
        }
    }
}

pub fn handler(id: CmdId) -> Option<exec::Handler> {
    Some(match id {
        CmdId::Subscribe => subscribe,
        CmdId::Unsubscribe => unsubscribe,
        CmdId::Psubscribe => psubscribe,
        CmdId::Punsubscribe => punsubscribe,
        CmdId::Ssubscribe => ssubscribe,
        CmdId::Sunsubscribe => sunsubscribe,
        CmdId::Publish => publish,
        CmdId::Spublish => spublish,
        CmdId::Pubsub => pubsub,
        _ => return None,
    })
}

/// Keeps the shared subscription count (CLIENT LIST, the RESP2
/// subscribed-context check) in step with the client's lists.
fn sync_count(client: &Client) {
    let s = &client.subs;
    client.info.subs.store(
        s.channels.len() | s.patterns.len() << 20 | s.shard.len() << 40,
        Relaxed,
    );
}

fn confirm(out: &mut Reply, word: &[u8], name: Option<&[u8]>, count: usize) {
    push_header(&mut out.buf, out.resp3, 3);
    bulk(&mut out.buf, word);
    match name {
        Some(n) => bulk(&mut out.buf, n),
        None => out.null(),
    }
    int(&mut out.buf, count);
}

fn sub(ctx: &mut Ctx, argv: &[&[u8]], kind: Kind) -> CmdResult {
    if ctx.client.in_exec && kind == Kind::Shard {
        return Err(CmdError::Static(errors::SSUBSCRIBE_DENY_BLOCKING));
    }
    for &name in &argv[1..] {
        let list = ctx.client.subs.list(kind);
        if !list.iter().any(|c| c == name) {
            list.push(name.to_vec());
            ctx.srv.pubsub.add(kind, name, &ctx.client.info);
        }
        let n = ctx.client.subs.count(kind);
        confirm(ctx.out, kind.subscribe_word(), Some(name), n);
    }
    sync_count(ctx.client);
    Ok(())
}

fn unsub(ctx: &mut Ctx, argv: &[&[u8]], kind: Kind) -> CmdResult {
    let names: Vec<Vec<u8>> = if argv.len() == 1 {
        ctx.client.subs.list(kind).clone()
    } else {
        argv[1..].iter().map(|a| a.to_vec()).collect()
    };
    if names.is_empty() {
        let n = ctx.client.subs.count(kind);
        confirm(ctx.out, kind.unsubscribe_word(), None, n);
    }
    for name in &names {
        let list = ctx.client.subs.list(kind);
        if let Some(i) = list.iter().position(|c| c == name) {
            list.remove(i);
            ctx.srv.pubsub.remove(kind, name, ctx.client.id);
        }
        let n = ctx.client.subs.count(kind);
        confirm(ctx.out, kind.unsubscribe_word(), Some(name), n);
    }
    sync_count(ctx.client);
    Ok(())
}

fn subscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    sub(ctx, argv, Kind::Channel)
}

fn psubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    sub(ctx, argv, Kind::Pattern)
}

fn ssubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    sub(ctx, argv, Kind::Shard)
}

fn unsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    unsub(ctx, argv, Kind::Channel)
}

fn punsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    unsub(ctx, argv, Kind::Pattern)
}

fn sunsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    unsub(ctx, argv, Kind::Shard)
}

fn do_publish(ctx: &mut Ctx, argv: &[&[u8]], shard: bool) -> CmdResult {
    let id = ctx.client.id;
    let n = ctx
        .srv
        .pubsub
        .publish(argv[1], argv[2], shard, Some((id, &mut *ctx.out)));
    ctx.out.int(n as i64);
    Ok(())
}

fn publish(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    do_publish(ctx, argv, false)
}

fn spublish(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    do_publish(ctx, argv, true)
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Print this help.",
];

fn pubsub(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let sub = argv[1];
    let ps = &ctx.srv.pubsub;
    if is(sub, "help") && argv.len() == 2 {
        crate::cmd::conn::help_reply(ctx, PUBSUB_HELP);
    } else if (is(sub, "channels") || is(sub, "shardchannels")) && argv.len() <= 3 {
        let kind = if is(sub, "channels") {
            Kind::Channel
        } else {
            Kind::Shard
        };
        let m = lock(ps.map(kind));
        let names: Vec<&Box<[u8]>> = m
            .keys()
            .filter(|c| {
                argv.get(2)
                    .is_none_or(|p| protocol::glob::string_match(p, c, false))
            })
            .collect();
        ctx.out.array(names.len());
        for n in names {
            ctx.out.bulk(n);
        }
    } else if is(sub, "numsub") || is(sub, "shardnumsub") {
        let kind = if is(sub, "numsub") {
            Kind::Channel
        } else {
            Kind::Shard
        };
        let m = lock(ps.map(kind));
        ctx.out.array((argv.len() - 2) * 2);
        for &c in &argv[2..] {
            ctx.out.bulk(c);
            ctx.out.int(m.get(c).map_or(0, |l| l.len()) as i64);
        }
    } else if is(sub, "numpat") && argv.len() == 2 {
        ctx.out.int(ps.pattern_count() as i64);
    } else {
        return Err(CmdError::msg(errors::subcommand_syntax("PUBSUB", sub)));
    }
    Ok(())
}

/// Keyspace notifications: publishes `event` for `key` of DB `db` on
/// `__keyspace@<db>__:<key>` and/or `__keyevent@<db>__:<event>` when
/// `flags` (the `notify-keyspace-events` bits) enable `class`.
pub fn notify_keyspace(ps: &PubSub, flags: u32, db: usize, class: u32, event: &str, key: &[u8]) {
    use crate::exec::notify::{KEYEVENT, KEYSPACE};
    if flags & class == 0 || ps.idle() {
        return;
    }
    let mut chan = Vec::with_capacity(24 + key.len().max(event.len()));
    let dbs = itoa::Buffer::new().format(db).to_owned();
    if flags & KEYSPACE != 0 {
        chan.extend_from_slice(b"__keyspace@");
        chan.extend_from_slice(dbs.as_bytes());
        chan.extend_from_slice(b"__:");
        chan.extend_from_slice(key);
        ps.publish(&chan, event.as_bytes(), false, None);
    }
    if flags & KEYEVENT != 0 {
        chan.clear();
        chan.extend_from_slice(b"__keyevent@");
        chan.extend_from_slice(dbs.as_bytes());
        chan.extend_from_slice(b"__:");
        chan.extend_from_slice(event.as_bytes());
        ps.publish(&chan, key, false, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_header_per_protocol() {
        let mut b = Vec::new();
        push_header(&mut b, false, 3);
        push_header(&mut b, true, 4);
        assert_eq!(b, b"*3\r\n>4\r\n");
    }
}
