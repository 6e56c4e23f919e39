//! A minimal RESP2 client for `codis-ctl`: one connection, one command at
//! a time, with a deadline per call. Written here because the tool needs
//! only a handful of admin calls (SLOTSMGRT*, SLOTSINFO, INFO, SLAVEOF)
//! and the workspace's `redis` crate is a test-only dependency.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            Value::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Value::Status(s) | Value::Error(s) => s.clone(),
            Value::Int(v) => v.to_string(),
            Value::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Value::Bulk(None) | Value::Array(None) => "(nil)".into(),
            Value::Array(Some(a)) => format!(
                "[{}]",
                a.iter().map(Value::text).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

pub struct Client {
    pub addr: String,
    sock: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Client {
    /// Connects, then `AUTH` when `auth` is not empty.
    pub async fn connect(addr: &str, auth: &str, timeout: Duration) -> Result<Client, String> {
        let sock = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: connect timed out"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        let _ = sock.set_nodelay(true);
        let mut c = Client {
            addr: addr.to_string(),
            sock,
            buf: Vec::new(),
            timeout,
        };
        if !auth.is_empty() {
            c.ok(&["AUTH", auth]).await?;
        }
        Ok(c)
    }

    /// Sends one command and reads its reply (an error reply is a value).
    pub async fn call(&mut self, args: &[&str]) -> Result<Value, String> {
        let name = args.first().copied().unwrap_or("").to_string();
        let addr = self.addr.clone();
        tokio::time::timeout(self.timeout, async {
            self.send(args).await?;
            self.next().await
        })
        .await
        .map_err(|_| format!("{addr}: {name} timed out"))?
        .map_err(|e| format!("{name}: {e}"))
    }

    /// Sends a command without waiting for its reply.
    pub async fn send(&mut self, args: &[&str]) -> Result<(), String> {
        let mut out = Vec::new();
        let parts: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        protocol::resp::request::command(&mut out, &parts);
        self.sock
            .write_all(&out)
            .await
            .map_err(|e| format!("{}: {e}", self.addr))
    }

    /// The next frame the server sends (a reply or a pushed message);
    /// waits as long as it takes.
    pub async fn next(&mut self) -> Result<Value, String> {
        loop {
            if let Some((v, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(v);
            }
            let mut chunk = [0u8; 16384];
            let n = self
                .sock
                .read(&mut chunk)
                .await
                .map_err(|e| format!("{}: {e}", self.addr))?;
            if n == 0 {
                return Err(format!("{}: connection closed", self.addr));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A call whose error reply is an error.
    pub async fn ok(&mut self, args: &[&str]) -> Result<Value, String> {
        match self.call(args).await? {
            Value::Error(e) => Err(format!(
                "{}: {}: {e}",
                self.addr,
                args.first().copied().unwrap_or("")
            )),
            v => Ok(v),
        }
    }
}

fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let i = memchr(buf.get(from..)?)?;
    Some((&buf[from..from + i], from + i + 2))
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Parses one reply at the start of `buf`: the value and the bytes used,
/// None when incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, String> {
    if depth > 64 {
        return Err("reply nested too deeply".into());
    }
    let Some((l, next)) = line(buf, at) else {
        return Ok(None);
    };
    let Some((&kind, rest)) = l.split_first() else {
        return Err("empty reply line".into());
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    let int = || -> Result<i64, String> { text.parse().map_err(|_| format!("bad reply {text:?}")) };
    Ok(Some(match kind {
        b'+' => (Value::Status(text.clone()), next),
        b'-' => (Value::Error(text.clone()), next),
        b':' => (Value::Int(int()?), next),
        b'$' => {
            let n = int()?;
            if n < 0 {
                (Value::Bulk(None), next)
            } else {
                let end = next + n as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                (Value::Bulk(Some(buf[next..end].to_vec())), end + 2)
            }
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                (Value::Array(None), next)
            } else {
                let mut items = Vec::with_capacity((n as usize).min(1024));
                let mut pos = next;
                for _ in 0..n {
                    match parse_at(buf, pos, depth + 1)? {
                        Some((v, p)) => {
                            items.push(v);
                            pos = p;
                        }
                        None => return Ok(None),
                    }
                }
                (Value::Array(Some(items)), pos)
            }
        }
        _ => return Err(format!("unexpected reply type {:?}", kind as char)),
    }))
}

/// The `field:value` lines of an INFO reply.
pub fn info_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The DBs that hold keys, from INFO keyspace (`dbN:keys=..`).
pub fn dbs_with_keys(info: &str) -> Vec<(u32, u64)> {
    info_fields(info)
        .into_iter()
        .filter_map(|(k, v)| {
            let db = k.strip_prefix("db")?.parse().ok()?;
            let keys = v
                .split(',')
                .find_map(|p| p.strip_prefix("keys="))?
                .parse()
                .ok()?;
            Some((db, keys))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        assert_eq!(
            parse(b"+OK\r\n").unwrap(),
            Some((Value::Status("OK".into()), 5))
        );
        assert_eq!(parse(b":12\r\n").unwrap().unwrap().0, Value::Int(12));
        assert_eq!(parse(b"$3\r\nab").unwrap(), None);
        assert_eq!(
            parse(b"*2\r\n:1\r\n$1\r\nx\r\n").unwrap().unwrap().0,
            Value::Array(Some(vec![Value::Int(1), Value::Bulk(Some(b"x".to_vec()))]))
        );
        assert_eq!(parse(b"*2\r\n:1\r\n").unwrap(), None);
        assert!(parse(b"?x\r\n").is_err());
        assert_eq!(
            dbs_with_keys(
                "# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0\r\ndb3:keys=1,expires=0\r\n"
            ),
            vec![(0, 5), (3, 1)]
        );
    }
}
