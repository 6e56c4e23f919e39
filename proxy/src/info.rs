//! INFO as the proxy answers it: its own `server`, `clients`, `stats` and
//! `commandstats` sections in redis-server 7.0's `field:value` layout, and
//! `keyspace` summed over the servers that hold slots (each one's
//! `INFO keyspace`). `INFO <backend addr>` keeps Codis' meaning (that
//! backend's INFO) and is handled by the session.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::router::{Router, Stats};

/// Which sections to render (Redis' rules: none given = the default set,
/// `all` adds commandstats, `everything` the same here).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sections {
    pub server: bool,
    pub clients: bool,
    pub stats: bool,
    pub commandstats: bool,
    pub keyspace: bool,
}

impl Sections {
    pub fn parse(args: &[&[u8]]) -> Sections {
        let mut s = Sections::default();
        if args.is_empty() {
            return Sections {
                server: true,
                clients: true,
                stats: true,
                commandstats: false,
                keyspace: true,
            };
        }
        for a in args {
            let a = a.to_ascii_lowercase();
            match a.as_slice() {
                b"default" => {
                    s.server = true;
                    s.clients = true;
                    s.stats = true;
                    s.keyspace = true;
                }
                b"all" | b"everything" => {
                    s = Sections {
                        server: true,
                        clients: true,
                        stats: true,
                        commandstats: true,
                        keyspace: true,
                    };
                }
                b"server" => s.server = true,
                b"clients" => s.clients = true,
                b"stats" => s.stats = true,
                b"commandstats" => s.commandstats = true,
                b"keyspace" => s.keyspace = true,
                _ => {}
            }
        }
        s
    }
}

/// The sections other than keyspace (which follows once the servers
/// answered), separated by an empty line as in Redis.
pub fn render(router: &Router, want: &Sections) -> String {
    let mut t = String::new();
    let st = &router.stats;
    if want.server {
        let up = router.started.elapsed().as_secs();
        let port = router
            .cfg
            .proxy_addr
            .rsplit_once(':')
            .map(|(_, p)| p)
            .unwrap_or("");
        let _ = write!(
            t,
            "# Server\r\nredis_version:{}\r\ncodis_proxy_version:{}\r\nredis_mode:proxy\r\n\
             os:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{port}\r\n\
             uptime_in_seconds:{up}\r\nuptime_in_days:{}\r\nproduct_name:{}\r\n",
            crate::local::REDIS_VERSION,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            up / 86400,
            router.cfg.product_name,
        );
    }
    if want.clients {
        sep(&mut t);
        let _ = write!(
            t,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
            st.sessions_alive.load(Ordering::Relaxed),
            router.cfg.proxy_max_clients,
        );
    }
    if want.stats {
        sep(&mut t);
        let _ = write!(
            t,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             instantaneous_ops_per_sec:{}\r\ntotal_error_replies:{}\r\n\
             total_backend_error_replies:{}\r\ntotal_backend_oom_replies:{}\r\n",
            st.sessions_total.load(Ordering::Relaxed),
            st.ops_total.load(Ordering::Relaxed),
            st.qps.load(Ordering::Relaxed),
            st.ops_fails.load(Ordering::Relaxed),
            st.redis_errors.load(Ordering::Relaxed),
            st.redis_oom.load(Ordering::Relaxed),
        );
    }
    if want.commandstats {
        sep(&mut t);
        t.push_str("# Commandstats\r\n");
        for (i, c) in st.cmds.iter().enumerate() {
            let calls = c.calls.load(Ordering::Relaxed);
            if calls == 0 {
                continue;
            }
            let us = c.usecs.load(Ordering::Relaxed);
            let _ = write!(
                t,
                "cmdstat_{}:calls={calls},usec={us},usec_per_call={:.2},rejected_calls=0,\
                 failed_calls={}\r\n",
                Stats::cmd_name(i).to_ascii_lowercase(),
                us as f64 / calls as f64,
                c.fails.load(Ordering::Relaxed) + c.redis_errtype.load(Ordering::Relaxed),
            );
        }
    }
    t
}

/// Sections are separated by an empty line (none after the last).
fn sep(t: &mut String) {
    if !t.is_empty() {
        t.push_str("\r\n");
    }
}

/// Appends `# Keyspace` summed from the servers' `INFO keyspace` replies
/// (`dbN:keys=K,expires=E,avg_ttl=T`; avg_ttl weighted by keys).
pub fn keyspace(text: &mut Vec<u8>, subs: &[Vec<u8>]) {
    let mut dbs: BTreeMap<u64, (u64, u64, u128)> = BTreeMap::new();
    for r in subs {
        let body = String::from_utf8_lossy(r);
        for line in body.lines() {
            let line = line.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
            let Some(rest) = line.strip_prefix("db") else {
                continue;
            };
            let Some((n, fields)) = rest.split_once(':') else {
                continue;
            };
            let Ok(db) = n.parse::<u64>() else {
                continue;
            };
            let (mut keys, mut expires, mut ttl) = (0u64, 0u64, 0u64);
            for f in fields.trim_end().split(',') {
                match f.split_once('=') {
                    Some(("keys", v)) => keys = v.parse().unwrap_or(0),
                    Some(("expires", v)) => expires = v.parse().unwrap_or(0),
                    Some(("avg_ttl", v)) => ttl = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            let e = dbs.entry(db).or_default();
            e.0 += keys;
            e.1 += expires;
            e.2 += ttl as u128 * keys as u128;
        }
    }
    if !text.is_empty() {
        text.extend_from_slice(b"\r\n");
    }
    text.extend_from_slice(b"# Keyspace\r\n");
    for (db, (keys, expires, ttl_sum)) in dbs {
        let avg = if keys > 0 { ttl_sum / keys as u128 } else { 0 };
        text.extend_from_slice(
            format!("db{db}:keys={keys},expires={expires},avg_ttl={avg}\r\n").as_bytes(),
        );
    }
}

/// The INFO reply: a bulk string, or RESP3's verbatim `txt` string.
pub fn reply(resp3: bool, text: &[u8]) -> Vec<u8> {
    let mut o = protocol::resp::Reply {
        buf: Vec::with_capacity(text.len() + 16),
        resp3,
    };
    o.verbatim(b"txt", text);
    o.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_keyspace() {
        assert!(Sections::parse(&[]).keyspace);
        assert!(!Sections::parse(&[]).commandstats);
        let s = Sections::parse(&[b"Stats"]);
        assert!(s.stats && !s.server && !s.keyspace);
        let mut t = Vec::new();
        keyspace(
            &mut t,
            &[
                b"$60\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=100\r\n\r\n".to_vec(),
                b"=40\r\ntxt:# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\ndb2:keys=5,expires=0,avg_ttl=0\r\n"
                    .to_vec(),
            ],
        );
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "# Keyspace\r\ndb0:keys=4,expires=1,avg_ttl=75\r\ndb2:keys=5,expires=0,avg_ttl=0\r\n"
        );
        assert!(reply(true, b"x").starts_with(b"=5\r\ntxt:x"));
        assert_eq!(reply(false, b"x"), b"$1\r\nx\r\n");
    }
}
