//! Geohash arithmetic for the GEO commands (mirrors Redis 7.0's geohash.c and
//! geohash_helper.c behaviour, written from their documented semantics):
//!
//! * a position is two 26-bit cell indexes, latitude over
//!   [-85.05112878, 85.05112878] (Web Mercator's limits) and longitude over
//!   [-180, 180], interleaved into a 52-bit integer (latitude bits at even
//!   positions, longitude bits at odd ones): the sorted set's score;
//! * a search covers the cell of the centre at a precision chosen from the
//!   radius, and its eight neighbours (some dropped when the search area
//!   does not reach them), each a contiguous score range;
//! * distances are haversine distances on a sphere of Redis' radius.
//!
//! Every floating-point step is done in the same order as Redis does it, so
//! scores, decoded coordinates and distances come out bit for bit the same.

use std::f64::consts::PI;

pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LON_MIN: f64 = -180.0;
pub const LON_MAX: f64 = 180.0;
/// Bits per coordinate in a stored score.
pub const STEP_MAX: u8 = 26;
/// Redis' earth radius (WGS-84 quadratic mean), metres.
pub const EARTH_RADIUS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

/// A cell: `step` bits per coordinate, interleaved in `bits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cell {
    pub bits: u64,
    pub step: u8,
}

impl Cell {
    /// Redis' "zero" hash (a neighbour dropped from the search).
    pub fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The score range `[min, max)` of every stored position inside the cell.
    pub fn score_range(self) -> (u64, u64) {
        let shift = 52 - 2 * u32::from(self.step);
        (self.bits << shift, (self.bits + 1) << shift)
    }
}

/// The bounds of a cell, degrees.
#[derive(Clone, Copy, Debug, Default)]
pub struct Area {
    pub lon_min: f64,
    pub lon_max: f64,
    pub lat_min: f64,
    pub lat_max: f64,
}

/// A coordinate range of an encoding (GEOHASH uses ±90 for latitude).
#[derive(Clone, Copy, Debug)]
pub struct Ranges {
    pub lon: (f64, f64),
    pub lat: (f64, f64),
}

/// The ranges of stored scores.
pub const WGS84: Ranges = Ranges {
    lon: (LON_MIN, LON_MAX),
    lat: (LAT_MIN, LAT_MAX),
};

/// Spreads the low 32 bits of `v` to the even bit positions.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bit positions of `v` into a 32-bit value.
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Whether a longitude/latitude pair may be stored.
pub fn valid(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// The cell of `step` bits per coordinate holding the position; None outside
/// the storable limits or the ranges.
pub fn encode(r: Ranges, lon: f64, lat: f64, step: u8) -> Option<Cell> {
    if step == 0 || step > 32 || !valid(lon, lat) {
        return None;
    }
    if lat < r.lat.0 || lat > r.lat.1 || lon < r.lon.0 || lon > r.lon.1 {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - r.lat.0) / (r.lat.1 - r.lat.0) * scale;
    let lon_off = (lon - r.lon.0) / (r.lon.1 - r.lon.0) * scale;
    // (C's double to uint32_t conversion: truncation.)
    Some(Cell {
        bits: spread(lat_off as u32) | (spread(lon_off as u32) << 1),
        step,
    })
}

/// The bounds of a cell.
pub fn decode(r: Ranges, c: Cell) -> Area {
    let lat_i = squash(c.bits);
    let lon_i = squash(c.bits >> 1);
    let div = (1u64 << c.step) as f64;
    let (lat_scale, lon_scale) = (r.lat.1 - r.lat.0, r.lon.1 - r.lon.0);
    Area {
        lat_min: r.lat.0 + (f64::from(lat_i) * 1.0 / div) * lat_scale,
        lat_max: r.lat.0 + ((f64::from(lat_i) + 1.0) * 1.0 / div) * lat_scale,
        lon_min: r.lon.0 + (f64::from(lon_i) * 1.0 / div) * lon_scale,
        lon_max: r.lon.0 + ((f64::from(lon_i) + 1.0) * 1.0 / div) * lon_scale,
    }
}

/// The stored score of a position (its 26-bit cell, as an integer).
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(WGS84, lon, lat, STEP_MAX).map(|c| c.bits)
}

/// The longitude and latitude a score stands for: its cell's centre,
/// clamped to the storable limits.
pub fn position(score: f64) -> (f64, f64) {
    let a = decode(
        WGS84,
        Cell {
            bits: c_double_to_u64(score),
            step: STEP_MAX,
        },
    );
    let lon = ((a.lon_min + a.lon_max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat_min + a.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// C's `(uint64_t)` of a double as x86-64 compilers emit it, for the
/// scores of sorted-set members that GEOADD did not write: below 2^63 a
/// signed truncation (so -5 becomes 2^64 - 5), above it the truncation of
/// `x - 2^63` with the top bit flipped; values out of range convert to the
/// "integer indefinite" 2^63 first (so 1e20 becomes 0).
fn c_double_to_u64(x: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    let trunc = |v: f64| -> i64 {
        if !(-TWO63..TWO63).contains(&v) {
            i64::MIN
        } else {
            v as i64
        }
    };
    if x < TWO63 {
        trunc(x) as u64
    } else {
        (trunc(x - TWO63) as u64) ^ (1 << 63)
    }
}

/// The 11-character standard geohash (latitude over ±90) of a score.
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = position(score);
    let std = Ranges {
        lon: (-180.0, 180.0),
        lat: (-90.0, 90.0),
    };
    let bits = encode(std, lon, lat, STEP_MAX).map_or(0, |c| c.bits);
    let mut out = [b'0'; 11];
    for (i, o) in out.iter_mut().enumerate().take(10) {
        let idx = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *o = ALPHABET[idx as usize];
    }
    // 52 bits make 10.4 characters; the 11th is written as if the rest were 0.
    out[10] = ALPHABET[0];
    out
}

/// The cell `dlon` columns east and `dlat` rows north of `c` (wrapping).
fn shifted(c: Cell, dlon: i64, dlat: i64) -> Cell {
    let mask = (1u64 << c.step) - 1;
    let lat = (u64::from(squash(c.bits)).wrapping_add(dlat as u64)) & mask;
    let lon = (u64::from(squash(c.bits >> 1)).wrapping_add(dlon as u64)) & mask;
    Cell {
        bits: spread(lat as u32) | (spread(lon as u32) << 1),
        step: c.step,
    }
}

#[inline]
fn deg_rad(d: f64) -> f64 {
    d * (PI / 180.0)
}

#[inline]
fn rad_deg(r: f64) -> f64 {
    r / (PI / 180.0)
}

/// The distance along a meridian between two latitudes, metres.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The haversine distance between two positions, metres.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (deg_rad(lon1), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS * a.sqrt().asin()
}

/// What a search covers, in metres (already converted from its unit).
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search: its centre and shape.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub lon: f64,
    pub lat: f64,
    pub shape: Shape,
}

impl Search {
    /// The distance from the centre to a position inside the shape, or None.
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r).then_some(d)
            }
            Shape::Box { width, height } => {
                // The latitude test is the cheaper one, so it goes first.
                if lat_distance(lat, self.lat) > height / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > width / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    /// `[min_lon, min_lat, max_lon, max_lat]` of the shape.
    fn bounds(&self) -> [f64; 4] {
        let (h, w) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let lat_delta = rad_deg(h / EARTH_RADIUS);
        let lon_top = rad_deg(w / EARTH_RADIUS / deg_rad(self.lat + lat_delta).cos());
        let lon_bottom = rad_deg(w / EARTH_RADIUS / deg_rad(self.lat - lat_delta).cos());
        // The wider edge of the box is the one nearer the equator.
        let d = if self.lat < 0.0 { lon_bottom } else { lon_top };
        [
            self.lon - d,
            self.lat - lat_delta,
            self.lon + d,
            self.lat + lat_delta,
        ]
    }

    /// The cells to scan, in Redis' order (centre, N, S, E, W, NE, NW, SE,
    /// SW); dropped neighbours are zero cells.
    pub fn cells(&self) -> [Cell; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        };
        let mut step = steps_for(radius, self.lat);
        let around = |step: u8| {
            let c = encode(WGS84, self.lon, self.lat, step).unwrap_or_default();
            let n = [
                c,
                shifted(c, 0, 1),
                shifted(c, 0, -1),
                shifted(c, 1, 0),
                shifted(c, -1, 0),
                shifted(c, 1, 1),
                shifted(c, -1, 1),
                shifted(c, 1, -1),
                shifted(c, -1, -1),
            ];
            (n, decode(WGS84, c))
        };
        let (mut n, mut area) = around(step);
        // A neighbour too near the search area to cover it: one step coarser.
        let (north, south) = (decode(WGS84, n[1]), decode(WGS84, n[2]));
        let (east, west) = (decode(WGS84, n[3]), decode(WGS84, n[4]));
        let decrease = north.lat_max < max_lat
            || south.lat_min > min_lat
            || east.lon_max < max_lon
            || west.lon_min > min_lon;
        if step > 1 && decrease {
            step -= 1;
            (n, area) = around(step);
        }
        if step >= 2 {
            // A side of the centre cell already past the search area: the
            // neighbours on that side (S, SW, SE / N, NE, NW / W, SW, NW /
            // E, SE, NE) hold nothing to find.
            let sides = [
                (area.lat_min < min_lat, [2, 8, 7]),
                (area.lat_max > max_lat, [1, 5, 6]),
                (area.lon_min < min_lon, [4, 8, 6]),
                (area.lon_max > max_lon, [3, 7, 5]),
            ];
            for (past, cells) in sides {
                if past {
                    for i in cells {
                        n[i] = Cell::default();
                    }
                }
            }
        }
        n
    }
}

/// The precision (bits per coordinate) whose cells cover a radius.
fn steps_for(range: f64, lat: f64) -> u8 {
    if range == 0.0 {
        return 26;
    }
    let mut range = range;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    // Keep the range inside most cells, and widen towards the poles.
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// `%.4f`-like fixed point of a distance, as Redis' `fixedpoint_d2string`:
/// the value times 10^4 rounded to the nearest integer (ties to even).
pub fn fmt_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".to_string();
    }
    let v = (d * 10_000.0).round_ties_even();
    let neg = v < 0.0;
    let a = v.abs() as u64;
    format!(
        "{}{}.{:04}",
        if neg { "-" } else { "" },
        a / 10_000,
        a % 10_000
    )
}

/// `%.17Lf` with trailing zeros (and a bare point) dropped, as Redis'
/// "human" long double (GEOPOS, WITHCOORD). Rust's fixed formatting is
/// exact and rounds ties to even, as glibc's printf.
pub fn fmt_coord(v: f64) -> String {
    let mut s = format!("{v:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for v in [0u32, 1, 0x3ff_ffff, 0x155_5555, 12345] {
            assert_eq!(squash(spread(v)), v);
            assert_eq!(squash(spread(v) << 1 >> 1), v);
        }
    }

    #[test]
    fn scores_and_positions_match_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" 15.087269 37.502669
        // "Catania" on redis-server 7.0.15: ZSCORE, GEOPOS, GEOHASH, GEODIST.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909));
        let (lon, lat) = position(3479099956230698.0);
        assert_eq!(fmt_coord(lon), "13.36138933897018433");
        assert_eq!(fmt_coord(lat), "38.11555639549629859");
        assert_eq!(&geohash_string(3479099956230698.0), b"sqc8b49rny0");
        assert_eq!(&geohash_string(3479447370796909.0), b"sqdtr74hyu0");
        let (lo2, la2) = position(3479447370796909.0);
        assert_eq!(fmt_distance(distance(lon, lat, lo2, la2)), "166274.1516");
        assert_eq!(
            fmt_distance(distance(lon, lat, lo2, la2) / 1000.0),
            "166.2742"
        );
    }

    #[test]
    fn c_conversions_of_foreign_scores() {
        assert_eq!(c_double_to_u64(-5.0), u64::MAX - 4);
        assert_eq!(c_double_to_u64(1e20), 0);
        assert_eq!(c_double_to_u64(1e19), 10_000_000_000_000_000_000);
        assert_eq!(c_double_to_u64(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(c_double_to_u64(3.9), 3);
    }

    #[test]
    fn out_of_range_positions_are_refused() {
        assert_eq!(score_of(180.1, 0.0), None);
        assert_eq!(score_of(0.0, 85.06), None);
        assert!(score_of(-180.0, -85.05112878).is_some());
    }

    #[test]
    fn fixed_point_distances() {
        assert_eq!(fmt_distance(0.0), "0.0000");
        assert_eq!(fmt_distance(0.00012), "0.0001");
        assert_eq!(fmt_distance(12.34565), "12.3456");
        assert_eq!(fmt_distance(-1.5), "-1.5000");
        assert_eq!(fmt_coord(-0.0), "0");
        assert_eq!(fmt_coord(2.5), "2.5");
        assert_eq!(fmt_coord(3.0), "3");
    }
}
