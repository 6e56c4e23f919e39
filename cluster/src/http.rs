//! One-shot HTTP/1.1 requests (hyper's client over a fresh connection),
//! for the calls that are not etcd v3's: a Codis dashboard's API, etcd's
//! v2 keys API (Codis' coordinator and Jodis), proxies' admin API.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// A response: status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `method` `http://addr{path}` with `body` (sent as `content_type`) and
/// extra headers; fails on transport errors or after `timeout`.
pub async fn request(
    method: &str,
    addr: &str,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Result<Response, String> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let work = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let data = match body {
            Some((ct, b)) => {
                req = req.header(hyper::header::CONTENT_TYPE, ct);
                b
            }
            None => Vec::new(),
        };
        let req = req
            .body(Full::new(Bytes::from(data)))
            .map_err(|e| format!("{addr}: bad request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{addr}: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Response { status, body })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{addr}: {method} {path}: timed out"))?
}

/// `application/x-www-form-urlencoded` escaping of one value.
pub fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `Authorization: Basic ...` for `user:pass`.
pub fn basic_auth(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(form_escape("a b/{\"x\"}"), "a%20b%2F%7B%22x%22%7D");
        assert_eq!(basic_auth("u:p"), "Basic dTpw");
    }
}
