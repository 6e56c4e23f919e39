//! SORT and SORT_RO, mirroring Redis 7.0.15 `sort.c`.
//!
//! Behaviour kept from Redis:
//! * Options (any order, case-insensitive): `ASC|DESC`, `ALPHA`,
//!   `LIMIT offset count`, `BY pattern`, `GET pattern` (repeatable),
//!   `STORE dest` (SORT only; SORT_RO treats it as a syntax error). Options are
//!   parsed before the key is looked up, so option errors win over WRONGTYPE.
//! * Sources: lists, sets and sorted sets; a missing key sorts as empty, any
//!   other type is WRONGTYPE.
//! * Patterns: the first `*` is replaced by the element; `->field` after the
//!   `*` reads a hash field; `#` (GET) is the element itself. A pattern without
//!   `*` names no key (BY such a pattern means "don't sort"). Missing keys or
//!   keys of the wrong type read as nothing: score 0 / sorted first (ALPHA) for
//!   BY, nil for GET (an empty string when storing).
//! * Numeric sorting parses with `strtod` rules (leading blanks accepted, the
//!   rest must be consumed; NaN and overflow are errors) and breaks ties by
//!   comparing the elements as binary strings: `ERR One or more scores can't
//!   be converted into double`. ALPHA compares C strings (`strcoll` in the C
//!   locale) unless the result is stored, where it compares binary strings.
//! * BY without `*` keeps the native order of lists and sorted sets (DESC
//!   reverses it; LIMIT picks the range directly); a set is then still
//!   sorted ALPHA when the result is STOREd, so replicas agree.
//! * STORE writes a list (dropping any TTL of the destination) and replies
//!   its length, or deletes the destination when the result is empty. It
//!   reports `sortstore` on the destination (one dirty per element), or
//!   `del` when an empty result removed an existing destination; an empty
//!   result with no destination changes nothing and is not propagated.
//! * Pattern keys may live in any slot: the command locks the slots of the
//!   source, the destination and every pattern key together (retrying when
//!   the source changed between reading it and locking the pattern keys), so
//!   it is atomic across slots.

use protocol::command::CmdId;
use protocol::number::parse_f64;
use protocol::slot::slot_of;

use crate::cmd::util::c_str as cstr;
use crate::cmd::util::{int_arg, is};
use crate::db::{Entry, KeyAccess, Object, ValueRef};
use crate::ds::List;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::notify::{GENERIC, LIST};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Sort => sort,
        CmdId::SortRo => sort_ro,
        _ => return None,
    })
}

/// Parsed SORT options.
#[derive(Debug, Default, Clone)]
struct Opts<'a> {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    by: Option<&'a [u8]>,
    dontsort: bool,
    gets: Vec<&'a [u8]>,
    store: Option<&'a [u8]>,
}

fn parse_opts<'a>(
    argv: &[&'a [u8]],
    readonly: bool,
    full_keys: bool,
) -> Result<Opts<'a>, CmdError> {
    let mut o = Opts::default();
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j];
        if is(a, "asc") {
            o.desc = false;
        } else if is(a, "desc") {
            o.desc = true;
        } else if is(a, "alpha") {
            o.alpha = true;
        } else if is(a, "limit") && left >= 2 {
            o.limit = Some((int_arg(argv[j + 1])?, int_arg(argv[j + 2])?));
            j += 2;
        } else if !readonly && is(a, "store") && left >= 1 {
            o.store = Some(argv[j + 1]);
            j += 1;
        } else if is(a, "by") && left >= 1 {
            o.by = Some(argv[j + 1]);
            o.dontsort = !cstr(argv[j + 1]).contains(&b'*');
            // A BY pattern reads keys the ACL check never saw.
            if !o.dontsort && !full_keys {
                return Err(CmdError::Static(errors::SORT_BY_ACL));
            }
            j += 1;
        } else if is(a, "get") && left >= 1 {
            if !full_keys {
                return Err(CmdError::Static(errors::SORT_GET_ACL));
            }
            o.gets.push(argv[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// A pattern split around its `*`: `(key prefix, key suffix, hash field)`.
type Split<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>);

/// Splits a pattern; `None` when it names no key.
fn split_pattern(pat: &[u8]) -> Option<Split<'_>> {
    let c = cstr(pat);
    let star = c.iter().position(|&b| b == b'*')?;
    let after = &c[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| after.get(i + 2).is_some());
    match arrow {
        Some(i) => {
            let fpos = star + 1 + i + 2;
            Some((
                &pat[..star],
                &pat[star + 1..star + 1 + i],
                Some(&pat[fpos..]),
            ))
        }
        None => Some((&pat[..star], &pat[star + 1..], None)),
    }
}

/// The key a pattern names for `elem` (None for `#` or without `*`).
fn pattern_key(pat: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    if cstr(pat) == b"#" {
        return None;
    }
    let (pre, post, _) = split_pattern(pat)?;
    let mut k = Vec::with_capacity(pre.len() + elem.len() + post.len());
    k.extend_from_slice(pre);
    k.extend_from_slice(elem);
    k.extend_from_slice(post);
    Some(k)
}

/// Redis' `lookupKeyByPattern`: the string (or hash field) a pattern points
/// to for `elem`.
fn lookup_pattern(
    ctx: &Ctx,
    s: &mut impl KeyAccess,
    pat: &[u8],
    elem: &[u8],
    now: u64,
) -> Option<Vec<u8>> {
    if cstr(pat) == b"#" {
        return Some(elem.to_vec());
    }
    let (_, _, field) = split_pattern(pat)?;
    let key = pattern_key(pat, elem)?;
    let e = s.get(&key, now);
    ctx.hit(e.is_some());
    let e = e?;
    match (field, e.value()) {
        (Some(f), ValueRef::Obj(Object::Hash(h))) => h.get(f).map(|v| v.to_vec()),
        (Some(_), _) => None,
        (None, _) => e.as_str().map(|v| v.to_vec()),
    }
}

/// `strtod` over a C string, the whole rest consumed (SORT's score parse).
fn sort_score(v: &[u8]) -> Option<f64> {
    let c = cstr(v);
    if c.is_empty() {
        return Some(0.0);
    }
    let t = match c
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
    {
        Some(i) => &c[i..],
        None => return None,
    };
    parse_f64(t)
}

/// One element to sort with its sort key.
struct Item {
    elem: Vec<u8>,
    score: f64,
    cmp: Option<Vec<u8>>,
}

/// The source's elements: `(elements, already ranged)` where the range was
/// applied directly (BY without `*` on lists and sorted sets).
fn read_source(
    e: Option<&mut Entry>,
    o: &Opts,
    range: &mut (i64, i64),
) -> Result<(Vec<Vec<u8>>, bool), CmdError> {
    let Some(e) = e else {
        return Ok((Vec::new(), false));
    };
    let obj = match e.value() {
        ValueRef::Obj(obj @ (Object::List(_) | Object::Set(_) | Object::ZSet(_))) => obj,
        _ => return Err(CmdError::WrongType),
    };
    let len = match obj {
        Object::List(l) => l.len(),
        Object::Set(s) => s.len(),
        Object::ZSet(z) => z.len(),
        _ => 0,
    } as i64;
    *range = limits(o.limit, len);
    let (start, end) = *range;
    let out = match obj {
        Object::List(l) if o.dontsort => {
            if end < start {
                Vec::new()
            } else {
                let n = (end - start + 1) as usize;
                if o.desc {
                    l.rev_iter_from((len - start - 1) as usize)
                        .take(n)
                        .map(|v| v.to_vec())
                        .collect()
                } else {
                    l.iter_from(start as usize)
                        .take(n)
                        .map(|v| v.to_vec())
                        .collect()
                }
            }
        }
        Object::List(l) => l.iter().map(|v| v.to_vec()).collect(),
        Object::Set(s) => s.iter().map(|m| m.with_bytes(|b| b.to_vec())).collect(),
        Object::ZSet(z) if o.dontsort => {
            let n = (end - start + 1).max(0) as usize;
            let mut v = Vec::with_capacity(n);
            if o.desc {
                let hi = (len - start) as usize;
                z.for_ranks(hi.saturating_sub(n), hi, true, |m, _| v.push(m.to_vec()));
            } else {
                z.for_ranks(start as usize, start as usize + n, false, |m, _| {
                    v.push(m.to_vec())
                });
            }
            v
        }
        Object::ZSet(z) => {
            let mut v = Vec::with_capacity(len as usize);
            z.for_ranks(0, len as usize, false, |m, _| v.push(m.to_vec()));
            v
        }
        _ => Vec::new(),
    };
    // Directly ranged (or dontsort list) output starts at 0.
    let ranged = o.dontsort && matches!(obj, Object::List(_) | Object::ZSet(_)) && end >= start;
    Ok((out, ranged))
}

/// LIMIT → inclusive `(start, end)` over `len` elements (Redis' clamping).
fn limits(limit: Option<(i64, i64)>, len: i64) -> (i64, i64) {
    let (ls, lc) = limit.unwrap_or((0, -1));
    let start = ls.max(0);
    let mut end = if lc < 0 {
        len - 1
    } else {
        start.saturating_add(lc).saturating_sub(1)
    };
    let (mut start, len) = (start, len);
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

fn cmp_items(a: &Item, b: &Item, alpha: bool, by: bool, store: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if !alpha {
        return match a.score.partial_cmp(&b.score) {
            Some(Ordering::Equal) | None => a.elem.cmp(&b.elem),
            Some(o) => o,
        };
    }
    let (x, y) = if by {
        match (&a.cmp, &b.cmp) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => (x.as_slice(), y.as_slice()),
        }
    } else {
        (a.elem.as_slice(), b.elem.as_slice())
    };
    if store {
        x.cmp(y)
    } else {
        cstr(x).cmp(cstr(y))
    }
}

fn sort_generic(ctx: &mut Ctx, argv: &[&[u8]], readonly: bool) -> CmdResult {
    let key = argv[1];
    let full_keys = match &ctx.client.user {
        None => ctx.srv.acl.default_ref().unrestricted(),
        Some(u) => u.unrestricted(),
    } || {
        let user = ctx
            .client
            .user
            .clone()
            .unwrap_or_else(|| ctx.srv.acl.default_user());
        crate::acl::index_of(argv).is_some_and(|(i, spec)| user.reads_every_key(i, spec, argv))
    };
    let o = parse_opts(argv, readonly, full_keys)?;
    let (now, lru) = (ctx.now, ctx.lru());
    let mut extra: Vec<Vec<u8>> = Vec::new();
    for attempt in 0..8 {
        let mut keys: Vec<&[u8]> = vec![key];
        if let Some(st) = o.store {
            keys.push(st);
        }
        keys.extend(extra.iter().map(|k| k.as_slice()));
        let mut locked: Vec<usize> = keys.iter().map(|k| slot_of(k)).collect();
        locked.sort_unstable();
        locked.dedup();
        let mut s = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
        let mut range = (0i64, -1i64);
        let e = s.get(key, now);
        let src = e.is_some();
        // A set sorted for STORE without a real BY pattern is sorted ALPHA.
        let is_set = matches!(
            e.as_ref().map(|e| e.value()),
            Some(ValueRef::Obj(Object::Set(_)))
        );
        let mut eo = o.clone();
        if eo.dontsort && is_set && eo.store.is_some() {
            eo.dontsort = false;
            eo.alpha = true;
            eo.by = None;
        }
        let (elems, ranged) = read_source(e, &eo, &mut range)?;
        // Every key the patterns can touch must be locked.
        let mut needed: Vec<Vec<u8>> = Vec::new();
        let mut pats: Vec<&[u8]> = eo.gets.clone();
        if !eo.dontsort
            && let Some(b) = eo.by
        {
            pats.push(b);
        }
        for p in &pats {
            for el in &elems {
                if let Some(k) = pattern_key(p, el)
                    && locked.binary_search(&slot_of(&k)).is_err()
                {
                    needed.push(k);
                }
            }
        }
        if !needed.is_empty() && attempt < 7 {
            drop(s);
            extra.extend(needed);
            continue;
        }
        ctx.hit(src);
        return finish(ctx, &mut s, &eo, elems, ranged, range, now, lru);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn finish(
    ctx: &mut Ctx,
    s: &mut impl KeyAccess,
    o: &Opts,
    elems: Vec<Vec<u8>>,
    ranged: bool,
    range: (i64, i64),
    now: u64,
    lru: u32,
) -> CmdResult {
    let (mut start, mut end) = range;
    if ranged {
        end -= start;
        start = 0;
    }
    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            cmp: None,
        })
        .collect();
    let mut bad_score = false;
    if !o.dontsort {
        for it in items.iter_mut() {
            let byval = match o.by {
                Some(p) => match lookup_pattern(ctx, s, p, &it.elem, now) {
                    Some(v) => v,
                    None => continue,
                },
                None => {
                    if !o.alpha {
                        match sort_score(&it.elem) {
                            Some(x) => it.score = x,
                            None => bad_score = true,
                        }
                    }
                    continue;
                }
            };
            if o.alpha {
                it.cmp = Some(byval);
            } else {
                match sort_score(&byval) {
                    Some(x) => it.score = x,
                    None => bad_score = true,
                }
            }
        }
        let (alpha, by, store) = (o.alpha, o.by.is_some(), o.store.is_some());
        items.sort_by(|a, b| {
            let c = cmp_items(a, b, alpha, by, store);
            if o.desc { c.reverse() } else { c }
        });
    }
    if bad_score {
        return Err(CmdError::Static(errors::SORT_NOT_DOUBLE));
    }
    let count = if end >= start {
        (end - start + 1) as usize
    } else {
        0
    };
    let sel: &[Item] = items
        .get(start.max(0) as usize..)
        .map_or(&[], |r| &r[..count.min(r.len())]);
    let outputlen = if o.gets.is_empty() {
        sel.len()
    } else {
        o.gets.len() * sel.len()
    };
    match o.store {
        None => {
            let mut vals: Vec<Option<Vec<u8>>> = Vec::with_capacity(outputlen);
            for it in sel {
                if o.gets.is_empty() {
                    vals.push(Some(it.elem.clone()));
                }
                for g in &o.gets {
                    vals.push(lookup_pattern(ctx, s, g, &it.elem, now));
                }
            }
            ctx.out.array(vals.len());
            for v in vals {
                match v {
                    Some(b) => ctx.out.bulk(&b),
                    None => ctx.out.null(),
                }
            }
        }
        Some(dest) => {
            let mut vals: Vec<Vec<u8>> = Vec::with_capacity(outputlen);
            for it in sel {
                if o.gets.is_empty() {
                    vals.push(it.elem.clone());
                }
                for g in &o.gets {
                    vals.push(lookup_pattern(ctx, s, g, &it.elem, now).unwrap_or_default());
                }
            }
            if vals.is_empty() {
                // dbDelete, which removes even a logically expired key.
                if s.remove(dest).is_some() {
                    ctx.changed(GENERIC, "del", dest);
                }
            } else {
                // Redis' setKey: a write lookup (expiring a stale
                // destination), then the new value.
                let _ = s.get(dest, now);
                let fill = ctx.srv.config().list_max_listpack_size;
                let l = List::from_iter(vals.iter().map(|v| v.as_slice()), fill);
                s.put(Entry::new_obj(dest, Object::List(l), None, lru));
                ctx.changed(LIST, "sortstore", dest);
                ctx.dirty(vals.len() as u64 - 1);
            }
            ctx.out.int(vals.len() as i64);
        }
    }
    Ok(())
}

fn sort(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    sort_generic(ctx, argv, false)
}

fn sort_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    sort_generic(ctx, argv, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(pattern_key(b"w_*", b"3"), Some(b"w_3".to_vec()));
        assert_eq!(pattern_key(b"h_*->f", b"3"), Some(b"h_3".to_vec()));
        assert_eq!(
            split_pattern(b"h_*x->f"),
            Some((&b"h_"[..], &b"x"[..], Some(&b"f"[..])))
        );
        assert_eq!(
            split_pattern(b"h_*->"),
            Some((&b"h_"[..], &b"->"[..], None))
        );
        assert_eq!(split_pattern(b"nostar"), None);
        assert_eq!(pattern_key(b"#", b"3"), None);
    }

    #[test]
    fn scores_and_limits() {
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b"  1.5"), Some(1.5));
        assert_eq!(sort_score(b"1.5 "), None);
        assert_eq!(sort_score(b"   "), None);
        assert_eq!(sort_score(b"12\x00junk"), Some(12.0));
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(limits(None, 5), (0, 4));
        assert_eq!(limits(Some((1, 2)), 5), (1, 2));
        assert_eq!(limits(Some((10, 2)), 5), (4, 3));
        assert_eq!(limits(Some((-3, 100)), 5), (0, 4));
        assert_eq!(limits(Some((0, 0)), 5), (0, -1));
        assert_eq!(limits(None, 0), (-1, -2));
    }

    #[test]
    fn store_propagates_only_what_changed() {
        let mut h = crate::testkit::Harness::new();
        h.capture();
        h.run("RPUSH l 3 1 2");
        h.run("SORT nokey STORE dst");
        h.run("SORT l STORE dst");
        h.run("SORT nokey STORE dst");
        h.run("SORT nokey STORE dst");
        assert_eq!(
            h.propagated(),
            [
                "SELECT 0",
                "RPUSH l 3 1 2",
                "SORT l STORE dst",
                "SORT nokey STORE dst"
            ]
        );
    }
}
