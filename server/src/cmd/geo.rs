//! GEO commands (Redis 7.0's geo.c, its replies and errors byte for byte):
//! GEOADD, GEODIST, GEOHASH, GEOPOS, GEORADIUS[_RO],
//! GEORADIUSBYMEMBER[_RO], GEOSEARCH and GEOSEARCHSTORE.
//!
//! A GEO set is a sorted set whose scores are 52-bit geohashes
//! (`ds::geohash`): GEOADD is ZADD with encoded scores, and every ZSET
//! command works on it. A search scans the score ranges of the centre's
//! cell and its neighbours, keeps the members inside the shape, and sorts
//! by distance when asked (or when COUNT is given without ANY).

use protocol::command::CmdId;
use protocol::number::{parse_f64, parse_i64};
use protocol::resp::Reply;

use crate::cmd::util::c_is as copt;
use crate::cmd::zset::{limits, sort_items, store_result, zset_ref};
use crate::db::KeyAccess;
use crate::ds::geohash::{self, Search, Shape};
use crate::ds::zset::{Item, ZSet};
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Geoadd => geoadd,
        CmdId::Geodist => geodist,
        CmdId::Geohash => geohash_cmd,
        CmdId::Geopos => geopos,
        CmdId::Georadius => |c, a| search(c, a, Kind::Radius { store: true }),
        CmdId::GeoradiusRo => |c, a| search(c, a, Kind::Radius { store: false }),
        CmdId::Georadiusbymember => |c, a| search(c, a, Kind::Member { store: true }),
        CmdId::GeoradiusbymemberRo => |c, a| search(c, a, Kind::Member { store: false }),
        CmdId::Geosearch => |c, a| search(c, a, Kind::Search { store: false }),
        CmdId::Geosearchstore => |c, a| search(c, a, Kind::Search { store: true }),
        _ => return None,
    })
}

/// A longitude/latitude pair from two arguments (Redis'
/// `extractLongLatOrReply`).
fn lon_lat(a: &[u8], b: &[u8]) -> Result<(f64, f64), CmdError> {
    let lon = parse_f64(a).ok_or(CmdError::NotFloat)?;
    let lat = parse_f64(b).ok_or(CmdError::NotFloat)?;
    if !geohash::valid(lon, lat) {
        return Err(CmdError::Msg(errors::geo_invalid_pair(lon, lat)));
    }
    Ok((lon, lat))
}

/// Metres per unit (`m`, `km`, `ft`, `mi`, any case).
fn unit(a: &[u8]) -> Result<f64, CmdError> {
    Ok(if copt(a, "m") {
        1.0
    } else if copt(a, "km") {
        1000.0
    } else if copt(a, "ft") {
        0.3048
    } else if copt(a, "mi") {
        1609.34
    } else {
        return Err(CmdError::Static(errors::GEO_BAD_UNIT));
    })
}

/// A number argument with its own "need numeric …" error.
fn number(a: &[u8], err: &'static str) -> Result<f64, CmdError> {
    parse_f64(a).ok_or(CmdError::Static(err))
}

// ---------------------------------------------------------------------------
// GEOADD
// ---------------------------------------------------------------------------

/// GEOADD key [NX|XX] [CH] lon lat member ...: ZADD with encoded scores.
fn geoadd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut first = 2;
    while let Some(&a) = argv.get(first) {
        if copt(a, "nx") {
            nx = true;
        } else if copt(a, "xx") {
            xx = true;
        } else if !copt(a, "ch") {
            break;
        }
        first += 1;
    }
    let triples = &argv[first..];
    if !triples.len().is_multiple_of(3) || (xx && nx) || triples.is_empty() {
        return Err(CmdError::Syntax);
    }
    let mut scores = Vec::with_capacity(triples.len() / 3);
    for t in triples.chunks_exact(3) {
        let (lon, lat) = lon_lat(t[0], t[1])?;
        let bits = geohash::score_of(lon, lat).unwrap_or(0);
        scores.push(itoa::Buffer::new().format(bits).to_string());
    }
    let mut zargv: Vec<&[u8]> = Vec::with_capacity(first + scores.len() * 2);
    zargv.push(b"zadd");
    zargv.extend_from_slice(&argv[1..first]);
    for (s, t) in scores.iter().zip(triples.chunks_exact(3)) {
        zargv.push(s.as_bytes());
        zargv.push(t[2]);
    }
    crate::cmd::zset::zadd_command(ctx, &zargv)
}

// ---------------------------------------------------------------------------
// GEODIST / GEOHASH / GEOPOS
// ---------------------------------------------------------------------------

fn geodist(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    let to_meter = match argv.len() {
        5 => unit(argv[4])?,
        n if n > 5 => return Err(CmdError::Syntax),
        _ => 1.0,
    };
    ctx.read_key(argv[1], |out, e| {
        let Some(e) = e else {
            out.null();
            return Ok(());
        };
        let z = zset_ref(e)?;
        match (z.score(argv[2]), z.score(argv[3])) {
            (Some(a), Some(b)) => {
                let (lon1, lat1) = geohash::position(a);
                let (lon2, lat2) = geohash::position(b);
                let d = geohash::distance(lon1, lat1, lon2, lat2) / to_meter;
                out.bulk(geohash::fmt_distance(d).as_bytes());
            }
            _ => out.null(),
        }
        Ok(())
    })
}

/// GEOHASH and GEOPOS: one reply per member, from its score (None when the
/// key or the member is missing).
fn per_member(ctx: &mut Ctx, argv: &[&[u8]], each: impl Fn(&mut Reply, Option<f64>)) -> CmdResult {
    let members = &argv[2..];
    ctx.read_key(argv[1], |out, e| {
        let z = e.map(zset_ref).transpose()?;
        out.array(members.len());
        for m in members {
            each(out, z.and_then(|z| z.score(m)));
        }
        Ok(())
    })
}

fn geohash_cmd(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    per_member(ctx, argv, |out, score| match score {
        Some(s) => out.bulk(&geohash::geohash_string(s)),
        None => out.null(),
    })
}

fn coords_reply(out: &mut Reply, lon: f64, lat: f64) {
    out.array(2);
    out.double_text(geohash::fmt_coord(lon).as_bytes());
    out.double_text(geohash::fmt_coord(lat).as_bytes());
}

fn geopos(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    per_member(ctx, argv, |out, score| match score {
        Some(s) => {
            let (lon, lat) = geohash::position(s);
            coords_reply(out, lon, lat);
        }
        None => out.null_array(),
    })
}

// ---------------------------------------------------------------------------
// GEORADIUS* / GEOSEARCH*
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// GEORADIUS[_RO] key lon lat radius unit ...
    Radius { store: bool },
    /// GEORADIUSBYMEMBER[_RO] key member radius unit ...
    Member { store: bool },
    /// GEOSEARCH key ... / GEOSEARCHSTORE dst key ...
    Search { store: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A parsed search.
struct Query<'a> {
    /// None when the source key is missing (only the options were checked).
    search: Option<Search>,
    /// Metres per unit of the shape (distances are replied in it).
    conversion: f64,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    any: bool,
    count: usize,
    sort: Sort,
    store: Option<&'a [u8]>,
    storedist: bool,
}

/// A member found inside the shape.
struct Point {
    member: Vec<u8>,
    dist: f64,
    score: f64,
    lon: f64,
    lat: f64,
}

/// Parses a search's arguments against the source zset (`z`; None when the
/// key is missing), in Redis' order, so that the first problem in the
/// arguments is the one reported.
fn parse<'a>(argv: &[&'a [u8]], kind: Kind, z: Option<&ZSet>) -> Result<Query<'a>, CmdError> {
    let decode_member = |m: &[u8]| -> Result<(f64, f64), CmdError> {
        match z.and_then(|z| z.score(m)) {
            Some(s) => Ok(geohash::position(s)),
            None => Err(CmdError::Static(errors::GEO_BAD_MEMBER)),
        }
    };
    let mut center = None;
    let mut shape = None;
    let mut conversion = 1.0;
    let base = match kind {
        Kind::Radius { .. } => {
            center = Some(lon_lat(argv[2], argv[3])?);
            let (r, c) = radius(argv[4], argv[5])?;
            shape = Some(Shape::Radius(r));
            conversion = c;
            6
        }
        Kind::Member { .. } if z.is_none() => 5,
        Kind::Member { .. } => {
            center = Some(decode_member(argv[2])?);
            let (r, c) = radius(argv[3], argv[4])?;
            shape = Some(Shape::Radius(r));
            conversion = c;
            5
        }
        Kind::Search { store } => 2 + store as usize,
    };
    let (store_ok, geosearch) = match kind {
        Kind::Radius { store } | Kind::Member { store } => (store, false),
        Kind::Search { .. } => (false, true),
    };
    let mut q = Query {
        search: None,
        conversion,
        withdist: false,
        withhash: false,
        withcoord: false,
        any: false,
        count: 0,
        sort: Sort::None,
        store: match kind {
            Kind::Search { store: true } => Some(argv[1]),
            _ => None,
        },
        storedist: false,
    };
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let rest = &argv[base..];
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i];
        let left = rest.len() - i - 1;
        if copt(a, "withdist") {
            q.withdist = true;
        } else if copt(a, "withhash") {
            q.withhash = true;
        } else if copt(a, "withcoord") {
            q.withcoord = true;
        } else if copt(a, "any") {
            q.any = true;
        } else if copt(a, "asc") {
            q.sort = Sort::Asc;
        } else if copt(a, "desc") {
            q.sort = Sort::Desc;
        } else if copt(a, "count") && left >= 1 {
            let n = parse_i64(rest[i + 1]).ok_or(CmdError::NotInteger)?;
            if n <= 0 {
                return Err(CmdError::Static(errors::GEO_COUNT_NOT_POSITIVE));
            }
            q.count = n as usize;
            i += 1;
        } else if (copt(a, "store") || copt(a, "storedist")) && left >= 1 && store_ok {
            q.store = Some(rest[i + 1]);
            q.storedist = copt(a, "storedist");
            i += 1;
        } else if copt(a, "storedist") && matches!(kind, Kind::Search { store: true }) {
            q.storedist = true;
        } else if copt(a, "frommember") && left >= 1 && geosearch && !fromloc {
            if z.is_some() {
                center = Some(decode_member(rest[i + 1])?);
            }
            frommember = true;
            i += 1;
        } else if copt(a, "fromlonlat") && left >= 2 && geosearch && !frommember {
            center = Some(lon_lat(rest[i + 1], rest[i + 2])?);
            fromloc = true;
            i += 2;
        } else if copt(a, "byradius") && left >= 2 && geosearch && !bybox {
            let (r, c) = radius(rest[i + 1], rest[i + 2])?;
            shape = Some(Shape::Radius(r));
            q.conversion = c;
            byradius = true;
            i += 2;
        } else if copt(a, "bybox") && left >= 3 && geosearch && !byradius {
            let w = number(rest[i + 1], errors::GEO_NEED_WIDTH)?;
            let h = number(rest[i + 2], errors::GEO_NEED_HEIGHT)?;
            if h < 0.0 || w < 0.0 {
                return Err(CmdError::Static(errors::GEO_NEGATIVE_BOX));
            }
            q.conversion = unit(rest[i + 3])?;
            shape = Some(Shape::Box {
                width: w,
                height: h,
            });
            bybox = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if q.store.is_some() && (q.withdist || q.withhash || q.withcoord) {
        return Err(CmdError::Msg(errors::geo_store_with_options(matches!(
            kind,
            Kind::Search { store: true }
        ))));
    }
    let name = String::from_utf8_lossy(argv[0]);
    if geosearch && !(frommember || fromloc) {
        return Err(CmdError::Msg(errors::geo_need_from(&name)));
    }
    if geosearch && !(byradius || bybox) {
        return Err(CmdError::Msg(errors::geo_need_by(&name)));
    }
    if q.any && q.count == 0 {
        return Err(CmdError::Static(errors::GEO_ANY_NEEDS_COUNT));
    }
    if let (Some((lon, lat)), Some(shape), Some(_)) = (center, shape, z) {
        // Shapes in metres from here on.
        let c = q.conversion;
        q.search = Some(Search {
            lon,
            lat,
            shape: match shape {
                Shape::Radius(r) => Shape::Radius(r * c),
                Shape::Box { width, height } => Shape::Box {
                    width: width * c,
                    height: height * c,
                },
            },
        });
    }
    Ok(q)
}

/// A radius and its unit (Redis' `extractDistanceOrReply`).
fn radius(r: &[u8], u: &[u8]) -> Result<(f64, f64), CmdError> {
    let r = number(r, errors::GEO_NEED_RADIUS)?;
    if r < 0.0 {
        return Err(CmdError::Static(errors::GEO_NEGATIVE_RADIUS));
    }
    Ok((r, unit(u)?))
}

/// The members of `z` inside the search, cell by cell in Redis' order
/// (stopping at `limit` found, 0 = no limit).
fn find(z: &ZSet, s: &Search, limit: usize) -> Vec<Point> {
    let cells = s.cells();
    let mut found = Vec::new();
    // The last neighbour scanned (Redis compares with it only once a
    // neighbour, not the centre, was scanned).
    let mut last: Option<geohash::Cell> = None;
    for (i, c) in cells.into_iter().enumerate() {
        if c.is_zero() {
            continue;
        }
        // Huge radii make neighbours coincide: a cell equal to the last
        // neighbour scanned is skipped.
        if last == Some(c) {
            continue;
        }
        if limit != 0 && found.len() >= limit {
            break;
        }
        let (min, max) = c.score_range();
        let (min, max) = (min as f64, max as f64);
        let a = z.count_while(|sc, _| sc < min);
        let b = z.count_while(|sc, _| sc < max);
        let mut done = false;
        z.for_ranks(a, b, false, |m, score| {
            if done {
                return;
            }
            let (lon, lat) = geohash::position(score);
            if let Some(dist) = s.contains(lon, lat) {
                found.push(Point {
                    member: m.to_vec(),
                    dist,
                    score,
                    lon,
                    lat,
                });
            }
            if limit != 0 && found.len() >= limit {
                done = true;
            }
        });
        if i > 0 {
            last = Some(c);
        }
    }
    found
}

fn search(ctx: &mut Ctx, argv: &[&[u8]], kind: Kind) -> CmdResult {
    let src = match kind {
        Kind::Search { store: true } => argv[2],
        _ => argv[1],
    };
    let writes = matches!(
        kind,
        Kind::Radius { store: true } | Kind::Member { store: true } | Kind::Search { store: true }
    );
    if !writes {
        return ctx.read_key(src, |out, e| {
            let z = e.map(zset_ref).transpose()?;
            let q = parse(argv, kind, z)?;
            let Some(z) = z else {
                out.array(0);
                return Ok(());
            };
            let points = collect(z, &q);
            reply_points(out, &q, points);
            Ok(())
        });
    }
    // The keys the command table finds (the source and any STORE key),
    // locked together.
    let mut keys: Vec<&[u8]> = Vec::with_capacity(2);
    ctx.spec.for_each_key_pos(argv, |i| keys.push(argv[i]));
    let (now, lru) = (ctx.now, ctx.lru());
    let lim = limits(ctx);
    let mut r = ctx.ks().lock_keys(ctx.db(), keys.iter().copied());
    let (q, points) = {
        let e = r.get(src, now);
        ctx.hit_key(e.is_some(), src);
        let z = match e {
            Some(e) => {
                e.touch(lru);
                Some(zset_ref(e)?)
            }
            None => None,
        };
        let q = parse(argv, kind, z)?;
        let points = z.map(|z| collect(z, &q));
        (q, points)
    };
    let Some(dst) = q.store else {
        match points {
            Some(p) => reply_points(ctx.out, &q, p),
            None => ctx.out.array(0),
        }
        return Ok(());
    };
    let points = points.unwrap_or_default();
    let mut items: Vec<Item> = points
        .into_iter()
        .map(|p| {
            let score = if q.storedist {
                p.dist / q.conversion
            } else {
                p.score
            };
            (p.member, score)
        })
        .collect();
    sort_items(&mut items);
    let event = if matches!(kind, Kind::Search { .. }) {
        "geosearchstore"
    } else {
        "georadiusstore"
    };
    store_result(ctx, &mut r, dst, &items, lim, event);
    // Redis counts one change per stored member.
    ctx.dirty((items.len() as u64).saturating_sub(1));
    Ok(())
}

/// The points a parsed search returns, sorted and cut to COUNT.
fn collect(z: &ZSet, q: &Query) -> Vec<Point> {
    let Some(s) = q.search else {
        return Vec::new();
    };
    let mut sort = q.sort;
    if q.count != 0 && sort == Sort::None && !q.any {
        // COUNT means "the nearest N" unless ANY says any N will do.
        sort = Sort::Asc;
    }
    let mut points = find(z, &s, if q.any { q.count } else { 0 });
    let by_dist = |a: &Point, b: &Point| {
        a.dist
            .partial_cmp(&b.dist)
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    match sort {
        Sort::Asc => points.sort_by(by_dist),
        Sort::Desc => points.sort_by(|a, b| by_dist(b, a)),
        Sort::None => {}
    }
    if q.count != 0 {
        points.truncate(q.count);
    }
    points
}

fn reply_points(out: &mut Reply, q: &Query, points: Vec<Point>) {
    let extras = q.withdist as usize + q.withhash as usize + q.withcoord as usize;
    out.array(points.len());
    for p in points {
        if extras > 0 {
            out.array(extras + 1);
        }
        out.bulk(&p.member);
        if q.withdist {
            out.bulk(geohash::fmt_distance(p.dist / q.conversion).as_bytes());
        }
        if q.withhash {
            out.int(p.score as i64);
        }
        if q.withcoord {
            coords_reply(out, p.lon, p.lat);
        }
    }
}
