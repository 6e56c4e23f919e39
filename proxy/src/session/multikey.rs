//! Multi-key commands split per key (MGET, MSET, DEL, EXISTS, TOUCH,
//! UNLINK; codis.md §3.4) and commands fanned out to every server (KEYS,
//! FLUSHDB/FLUSHALL), and the merge of their sub-replies with Codis'
//! aggregation and error texts.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SplitKind {
    Mget,
    Mset,
    Del,
    Exists,
    /// TOUCH and UNLINK (split as the issue asks; Codis sends them whole).
    Sum(&'static str),
    /// KEYS from every server: the union, each key once.
    Keys,
    /// FLUSHDB / FLUSHALL on every server: `+OK` when all say so.
    AllOk(&'static str),
    /// SCRIPT LOAD (and HELP) on every server: the common reply, or the
    /// first error as the server sent it.
    Same,
    /// SCRIPT EXISTS on every server: per SHA1, 1 only where every server
    /// has it.
    And,
    /// SCRIPT KILL on every server: `+OK` if one killed a script, else the
    /// first server's error (NOTBUSY, UNKILLABLE …).
    AnyOk,
}

/// Codis' name for a reply's type (`resp.Type` in its error texts).
pub(super) fn type_name(r: &[u8]) -> &'static str {
    match r.first() {
        Some(b'+') => "<string>",
        Some(b'-') => "<error>",
        Some(b':') => "<int>",
        Some(b'$') => "<bulkbytes>",
        Some(b'*') => "<array>",
        _ => "<unknown>",
    }
}

/// The first line's payload (after the type byte, before CRLF).
pub(super) fn head(r: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\r', r).unwrap_or(r.len());
    r.get(1..end).unwrap_or(b"")
}

pub(super) fn parse_int(r: &[u8]) -> Option<i64> {
    if r.first() != Some(&b':') {
        return None;
    }
    std::str::from_utf8(head(r)).ok()?.parse().ok()
}

/// Merges split sub-replies in order (Codis' coalesce rules).
pub(super) fn merge(kind: SplitKind, subs: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    match kind {
        SplitKind::Mget => {
            let mut out = format!("*{}\r\n", subs.len()).into_bytes();
            for r in subs {
                let ok = r.starts_with(b"*1\r\n");
                if !ok {
                    let n = if r.first() == Some(&b'*') {
                        std::str::from_utf8(head(r))
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                            .unwrap_or(0)
                            .max(0)
                    } else {
                        0
                    };
                    return Err(format!("bad mget resp: {} array.len = {n}", type_name(r)));
                }
                out.extend_from_slice(&r[4..]);
            }
            Ok(out)
        }
        SplitKind::Mset => {
            let mut last = b"+OK\r\n".to_vec();
            for r in subs {
                if r.first() != Some(&b'+') {
                    return Err(format!(
                        "bad mset resp: {} value.len = {}",
                        type_name(r),
                        head(r).len()
                    ));
                }
                last = r.clone();
            }
            Ok(last)
        }
        SplitKind::Keys => {
            let mut seen = std::collections::HashSet::new();
            let mut keys = Vec::new();
            for r in subs {
                let Some(ks) = crate::scan::parse_keys(r) else {
                    return Err(format!(
                        "bad keys resp: {} value.len = {}",
                        type_name(r),
                        head(r).len()
                    ));
                };
                for k in ks {
                    if seen.insert(k.clone()) {
                        keys.push(k);
                    }
                }
            }
            let mut o = protocol::resp::Reply::new();
            o.array(keys.len());
            for k in &keys {
                o.bulk(k);
            }
            Ok(o.buf)
        }
        SplitKind::Same => {
            if let Some(e) = subs.iter().find(|r| r.first() == Some(&b'-')) {
                return Ok(e.clone());
            }
            Ok(subs.first().cloned().unwrap_or_else(|| OK.to_vec()))
        }
        SplitKind::AnyOk => {
            if subs.iter().any(|r| r.first() == Some(&b'+')) {
                return Ok(OK.to_vec());
            }
            Ok(subs.first().cloned().unwrap_or_else(|| OK.to_vec()))
        }
        SplitKind::And => {
            if let Some(e) = subs.iter().find(|r| r.first() == Some(&b'-')) {
                return Ok(e.clone());
            }
            let mut all: Option<Vec<bool>> = None;
            for r in subs {
                let Some(v) = crate::scan::parse_ints(r) else {
                    return Err(format!("bad script resp: {}", show(r)));
                };
                let v: Vec<bool> = v.iter().map(|&x| x != 0).collect();
                all = Some(match all {
                    None => v,
                    Some(a) if a.len() == v.len() => {
                        a.iter().zip(&v).map(|(x, y)| *x && *y).collect()
                    }
                    Some(_) => return Err(format!("bad script resp: {}", show(r))),
                });
            }
            let all = all.unwrap_or_default();
            let mut o = format!("*{}\r\n", all.len()).into_bytes();
            for b in all {
                o.extend_from_slice(if b { b":1\r\n" } else { b":0\r\n" });
            }
            Ok(o)
        }
        SplitKind::AllOk(name) => {
            for r in subs {
                if r.first() != Some(&b'+') {
                    return Err(format!("bad {name} resp: {}", show(r)));
                }
            }
            Ok(OK.to_vec())
        }
        SplitKind::Del | SplitKind::Exists | SplitKind::Sum(_) => {
            let name = match kind {
                SplitKind::Del => "del",
                SplitKind::Sum(n) => n,
                _ => "exists",
            };
            let mut n: i64 = 0;
            for r in subs {
                match parse_int(r) {
                    Some(v) if kind != SplitKind::Exists => n += v,
                    Some(v) => n += (v != 0) as i64,
                    None => {
                        return Err(format!(
                            "bad {name} resp: {} value.len = {}",
                            type_name(r),
                            head(r).len()
                        ));
                    }
                }
            }
            Ok(format!(":{n}\r\n").into_bytes())
        }
    }
}

impl Session {
    /// MGET/MSET/DEL/EXISTS split per key (codis.md §3.4).
    pub(super) async fn split(&mut self, upper: &str, argv: &[&[u8]], raw: Option<&[u8]>) -> bool {
        let (kind, step) = match upper {
            "MGET" => (SplitKind::Mget, 1),
            "MSET" => (SplitKind::Mset, 2),
            "DEL" => (SplitKind::Del, 1),
            "TOUCH" => (SplitKind::Sum("touch"), 1),
            "UNLINK" => (SplitKind::Sum("unlink"), 1),
            _ => (SplitKind::Exists, 1),
        };
        let nargs = argv.len() - 1;
        if nargs == 0 || !nargs.is_multiple_of(step) {
            self.reply(arity_err(upper));
            return true;
        }
        if nargs == step {
            let slot = protocol::slot::slot_of(argv[1]);
            return match raw {
                Some(r) => self.forward_single(slot, argv[1], argv, r).await,
                None => {
                    self.forward_single(slot, argv[1], argv, &reencode(argv))
                        .await
                }
            };
        }
        let mut n = 0usize;
        let mut sub: Vec<&[u8]> = Vec::with_capacity(1 + step);
        let mut data = Vec::new();
        for chunk in argv[1..].chunks(step) {
            sub.clear();
            sub.push(argv[0]);
            sub.extend_from_slice(chunk);
            data.clear();
            encode(&mut data, &sub);
            let key = chunk[0];
            match self
                .forward(protocol::slot::slot_of(key), key, &[], &sub, &data)
                .await
            {
                Fwd::Sent => {}
                Fwd::Reply(r) => {
                    self.got(r);
                }
                Fwd::Fail(t) => {
                    if n > 0 {
                        self.push(What::Drop(n));
                    }
                    return self.fail(&t);
                }
            }
            n += 1;
        }
        self.push(What::Split(kind, n));
        true
    }
}
