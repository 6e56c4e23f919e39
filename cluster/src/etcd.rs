//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/kv/range`,
//! `/v3/kv/put`, `/v3/kv/txn`, `/v3/kv/deleterange`, `/v3/lease/*`,
//! `/v3/watch`; keys and values in base64, 64-bit numbers as strings),
//! present from etcd 3.4 on (Debian's `etcd-server`). Why not the
//! `etcd-client` crate: it speaks gRPC and needs `protoc` and ~100 crates at
//! build time, while the gateway needs only the HTTP/1.1 client we have
//! (`hyper`); see crates.md §4.
//!
//! One kept-alive connection serves the unary calls (reconnected after any
//! error, rotating through the comma-separated endpoints); every call has a
//! deadline. A watch gets a connection of its own and reads the streamed
//! JSON messages as they arrive.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// One key-value pair as etcd returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub create_revision: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete(Vec<u8>),
}

/// The client.
pub struct Etcd {
    endpoints: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    conn: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
    timeout: Duration,
}

fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn b64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default()
}

fn kv_of(v: &Value) -> Kv {
    Kv {
        key: b64(&v["key"]),
        value: b64(&v["value"]),
        mod_revision: num(&v["mod_revision"]),
        create_revision: num(&v["create_revision"]),
        lease: num(&v["lease"]),
    }
}

/// The end of the range that holds every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("etcd {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("etcd {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(addr: &str, path: &str, body: &Value) -> hyper::Request<Full<Bytes>> {
    hyper::Request::post(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static request parts")
}

impl Etcd {
    /// `addrs`: `host:port[,host:port...]`, each optionally `http://`.
    pub fn new(addrs: &str) -> Etcd {
        let endpoints = addrs
            .split(',')
            .map(|a| a.trim().trim_start_matches("http://").trim_end_matches('/'))
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        Etcd {
            endpoints,
            next: Default::default(),
            conn: tokio::sync::Mutex::new(None),
            timeout: Duration::from_secs(3),
        }
    }

    /// The same endpoints with another per-call deadline.
    pub fn with_timeout(mut self, t: Duration) -> Etcd {
        self.timeout = t;
        self
    }

    fn endpoint(&self) -> &str {
        let i = self.next.load(std::sync::atomic::Ordering::Relaxed);
        self.endpoints
            .get(i % self.endpoints.len().max(1))
            .map(String::as_str)
            .unwrap_or("127.0.0.1:2379")
    }

    fn rotate(&self) {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// One gateway call: the JSON reply, or an error text.
    pub async fn call(&self, path: &str, body: Value) -> Result<Value, String> {
        let work = async {
            let mut guard = self.conn.lock().await;
            let addr = self.endpoint().to_string();
            if guard.as_ref().is_none_or(|s| s.is_closed()) {
                *guard = Some(connect(&addr).await?);
            }
            let sender = guard.as_mut().expect("just set");
            let res = async {
                sender.ready().await.map_err(|e| e.to_string())?;
                let resp = sender
                    .send_request(request(&addr, path, &body))
                    .await
                    .map_err(|e| e.to_string())?;
                let status = resp.status();
                let data = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok::<_, String>((status, data))
            }
            .await;
            let (status, data) = match res {
                Ok(x) => x,
                Err(e) => {
                    *guard = None;
                    return Err(format!("etcd {addr}: {e}"));
                }
            };
            let v: Value = serde_json::from_slice(&data)
                .map_err(|e| format!("etcd {addr}: bad reply to {path}: {e}"))?;
            if !status.is_success() {
                let msg = v["error"]
                    .as_str()
                    .or(v["message"].as_str())
                    .unwrap_or("error");
                return Err(format!("etcd {addr}: {path}: {msg}"));
            }
            Ok(v)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // Whatever failed (transport, or a member answering
                // errors): the next call goes to the next endpoint.
                *self.conn.lock().await = None;
                self.rotate();
                Err(e)
            }
            Err(_) => {
                *self.conn.lock().await = None;
                let e = format!("etcd {}: {path}: timed out", self.endpoint());
                self.rotate();
                Err(e)
            }
        }
    }

    /// The value and revisions of `key`, if present.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Kv>, String> {
        let v = self
            .call("/v3/kv/range", json!({"key": B64.encode(key)}))
            .await?;
        Ok(v["kvs"].as_array().and_then(|a| a.first()).map(kv_of))
    }

    /// Like [`Etcd::get`], with the store's revision at the read.
    pub async fn get_rev(&self, key: &[u8]) -> Result<(Option<Kv>, i64), String> {
        let v = self
            .call("/v3/kv/range", json!({"key": B64.encode(key)}))
            .await?;
        Ok((
            v["kvs"].as_array().and_then(|a| a.first()).map(kv_of),
            num(&v["header"]["revision"]),
        ))
    }

    /// Every key starting with `prefix`, in key order.
    pub async fn get_prefix(&self, prefix: &[u8]) -> Result<Vec<Kv>, String> {
        let v = self
            .call(
                "/v3/kv/range",
                json!({"key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix))}),
            )
            .await?;
        Ok(v["kvs"]
            .as_array()
            .map(|a| a.iter().map(kv_of).collect())
            .unwrap_or_default())
    }

    /// Like [`Etcd::get_prefix`], with the store's revision at the read.
    pub async fn get_prefix_rev(&self, prefix: &[u8]) -> Result<(Vec<Kv>, i64), String> {
        let v = self
            .call(
                "/v3/kv/range",
                json!({"key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix))}),
            )
            .await?;
        Ok((
            v["kvs"]
                .as_array()
                .map(|a| a.iter().map(kv_of).collect())
                .unwrap_or_default(),
            num(&v["header"]["revision"]),
        ))
    }

    /// Sets `key` (attached to `lease` when non-zero).
    pub async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<(), String> {
        let mut body = json!({"key": B64.encode(key), "value": B64.encode(value)});
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        self.call("/v3/kv/put", body).await.map(|_| ())
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &[u8]) -> Result<(), String> {
        self.call("/v3/kv/deleterange", json!({"key": B64.encode(key)}))
            .await
            .map(|_| ())
    }

    /// Sets `key` only if its `mod_revision` is still `expect` (0: only if
    /// absent); true when it was set.
    pub async fn cas(
        &self,
        key: &[u8],
        expect: i64,
        value: &[u8],
        lease: i64,
    ) -> Result<bool, String> {
        let k = B64.encode(key);
        let cmp = if expect == 0 {
            json!({"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
        } else {
            json!({"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": expect.to_string()})
        };
        let mut put = json!({"key": k, "value": B64.encode(value)});
        if lease != 0 {
            put["lease"] = json!(lease.to_string());
        }
        let v = self
            .call(
                "/v3/kv/txn",
                json!({"compare": [cmp], "success": [{"request_put": put}]}),
            )
            .await?;
        Ok(v["succeeded"].as_bool().unwrap_or(false))
    }

    /// Like [`Etcd::cas`]; on success the store's revision after the write
    /// (the key's new `mod_revision`: a transaction with one put makes one
    /// revision).
    pub async fn cas_rev(
        &self,
        key: &[u8],
        expect: i64,
        value: &[u8],
    ) -> Result<Option<i64>, String> {
        let k = B64.encode(key);
        let cmp = if expect == 0 {
            json!({"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
        } else {
            json!({"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": expect.to_string()})
        };
        let put = json!({"key": k, "value": B64.encode(value)});
        let v = self
            .call(
                "/v3/kv/txn",
                json!({"compare": [cmp], "success": [{"request_put": put}]}),
            )
            .await?;
        if !v["succeeded"].as_bool().unwrap_or(false) {
            return Ok(None);
        }
        match num(&v["header"]["revision"]) {
            0 => Err("etcd: txn reply without a revision".into()),
            r => Ok(Some(r)),
        }
    }

    /// Deletes `key` only if it still has `mod_revision` `expect`.
    pub async fn delete_if(&self, key: &[u8], expect: i64) -> Result<bool, String> {
        let k = B64.encode(key);
        let v = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [{"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": expect.to_string()}],
                    "success": [{"request_delete_range": {"key": k}}]
                }),
            )
            .await?;
        Ok(v["succeeded"].as_bool().unwrap_or(false))
    }

    /// A new lease of `ttl` seconds.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, String> {
        let v = self
            .call("/v3/lease/grant", json!({"TTL": ttl.to_string()}))
            .await?;
        match num(&v["ID"]) {
            0 => Err(format!("etcd: lease grant refused: {v}")),
            id => Ok(id),
        }
    }

    /// Renews a lease; false when it has expired.
    pub async fn lease_keepalive(&self, id: i64) -> Result<bool, String> {
        let v = self
            .call("/v3/lease/keepalive", json!({"ID": id.to_string()}))
            .await?;
        Ok(num(&v["result"]["TTL"]) > 0)
    }

    /// Ends a lease (its keys are deleted).
    pub async fn lease_revoke(&self, id: i64) -> Result<(), String> {
        self.call("/v3/lease/revoke", json!({"ID": id.to_string()}))
            .await
            .map(|_| ())
    }

    /// Watches `key` (or every key under it with `prefix`) from revision
    /// `from` (0: from now).
    pub async fn watch(&self, key: &[u8], prefix: bool, from: i64) -> Result<Watch, String> {
        let addr = self.endpoint().to_string();
        let mut create = json!({"key": B64.encode(key)});
        if prefix {
            create["range_end"] = json!(B64.encode(prefix_end(key)));
        }
        if from > 0 {
            create["start_revision"] = json!(from.to_string());
        }
        let body = json!({"create_request": create});
        let res = tokio::time::timeout(self.timeout, async {
            let mut sender = connect(&addr).await?;
            sender.ready().await.map_err(|e| e.to_string())?;
            let resp = sender
                .send_request(request(&addr, "/v3/watch", &body))
                .await
                .map_err(|e| format!("etcd {addr}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("etcd {addr}: watch: HTTP {}", resp.status()));
            }
            Ok(Watch {
                body: resp.into_body(),
                buf: Vec::new(),
                _sender: sender,
            })
        })
        .await;
        match res {
            Ok(Ok(w)) => Ok(w),
            Ok(Err(e)) => {
                self.rotate();
                Err(e)
            }
            Err(_) => {
                self.rotate();
                Err(format!("etcd {addr}: watch: timed out"))
            }
        }
    }
}

/// A running watch.
pub struct Watch {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    _sender: SendRequest<Full<Bytes>>,
}

/// What one watch message said.
#[derive(Debug, Default)]
pub struct WatchBatch {
    pub events: Vec<Event>,
    /// The store's revision when the message was sent.
    pub revision: i64,
    /// The watch was cancelled by etcd (e.g. its start revision was
    /// compacted): read the key again and watch anew.
    pub canceled: bool,
}

impl Watch {
    /// The next message (events may be empty: the creation notice, or a
    /// progress notice). An error means the stream is gone.
    pub async fn next(&mut self) -> Result<WatchBatch, String> {
        loop {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    self.buf.drain(..used);
                    if let Some(e) = v.get("error") {
                        return Err(format!("etcd watch: {e}"));
                    }
                    let r = &v["result"];
                    let events = r["events"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|e| {
                                    let kv = kv_of(&e["kv"]);
                                    if e["type"].as_str() == Some("DELETE") {
                                        Event::Delete(kv.key)
                                    } else {
                                        Event::Put(kv)
                                    }
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    return Ok(WatchBatch {
                        events,
                        revision: num(&r["header"]["revision"]),
                        canceled: r["canceled"].as_bool().unwrap_or(false)
                            || num(&r["compact_revision"]) > 0,
                    });
                }
                Some(Err(e)) if !e.is_eof() => {
                    return Err(format!("etcd watch: bad message: {e}"));
                }
                _ => {}
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => return Err(format!("etcd watch: {e}")),
                None => return Err("etcd watch: stream ended".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn endpoints() {
        let e = Etcd::new("http://127.0.0.1:2379/, 127.0.0.1:2380");
        assert_eq!(e.endpoints, vec!["127.0.0.1:2379", "127.0.0.1:2380"]);
        assert_eq!(e.endpoint(), "127.0.0.1:2379");
        e.rotate();
        assert_eq!(e.endpoint(), "127.0.0.1:2380");
    }
}
