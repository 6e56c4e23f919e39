//! The latency monitor (Redis' latency.c): events that took at least
//! `latency-monitor-threshold` milliseconds (0: off), one time series per
//! event of the last 160 samples (one per second at most: a second's worst
//! sample), the all-time maximum, and the LATENCY command.
//!
//! Events: `command` and `fast-command` (a command's run, by its `fast`
//! flag, as Redis), `expire-cycle` (one active-expiry pass of the cron),
//! `eviction-cycle` and `eviction-del` (evict.rs: one eviction run, one
//! key's deletion).
//! LATENCY GRAPH and DOCTOR are our own renderings of the same data;
//! LATENCY HISTOGRAM needs per-command histograms, which we do not keep
//! yet, and says so.
//!
//! Cost on the call path: one atomic load and a compare per command.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use protocol::command::CmdId;

use crate::cmd::conn::help_reply;
use crate::errors::{self, CmdError, CmdResult};
use crate::exec::{Ctx, Handler};

/// Samples kept per event (Redis' LATENCY_TS_LEN).
const HISTORY: usize = 160;

#[derive(Clone, Copy, Default)]
struct Sample {
    /// Unix seconds (0: an empty slot).
    time: u64,
    ms: u64,
}

struct Series {
    samples: [Sample; HISTORY],
    /// Where the next sample goes.
    next: usize,
    max: u64,
}

impl Series {
    fn new() -> Self {
        Series {
            samples: [Sample::default(); HISTORY],
            next: 0,
            max: 0,
        }
    }

    fn last(&self) -> Sample {
        self.samples[(self.next + HISTORY - 1) % HISTORY]
    }

    /// The samples, oldest first.
    fn ordered(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..HISTORY)
            .map(move |j| self.samples[(self.next + j) % HISTORY])
            .filter(|s| s.time != 0)
    }
}

/// The server's latency monitor.
#[derive(Default)]
pub struct Latency {
    /// `latency-monitor-threshold` in ms (0: off).
    threshold: AtomicU64,
    events: Mutex<BTreeMap<&'static str, Series>>,
    /// `latency-tracking`: per-command histograms are kept.
    tracking: std::sync::atomic::AtomicBool,
    /// One histogram per (sub)command, in the stats index's layout,
    /// created at the command's first call (as Redis): the counts of an
    /// HdrHistogram (1 ns to 1 s, 2 significant figures), kept as atomics
    /// so a call costs one uncontended add, and turned into a
    /// `hdrhistogram::Histogram` when read.
    hists: std::sync::OnceLock<Vec<std::sync::OnceLock<Box<[AtomicU64]>>>>,
}

type Hist = hdrhistogram::Histogram<u64>;

/// Redis' histogram bounds: 1 ns to 1 s, 2 significant figures.
const HIST_MIN: u64 = 1;
const HIST_MAX: u64 = 1_000_000_000;
const HIST_SIGFIG: u8 = 2;
/// That histogram's layout: 256 sub-buckets (half: 2^7), 23 buckets.
const SUB_HALF_MAG: u32 = 7;
const SUB_MASK: u64 = 255;
const COUNTS: usize = 24 << SUB_HALF_MAG;

/// HdrHistogram's counts index of `v` (unit magnitude 0).
#[inline]
fn hist_index(v: u64) -> usize {
    let pow2ceiling = 64 - (v | SUB_MASK).leading_zeros();
    let bucket = pow2ceiling - (SUB_HALF_MAG + 1);
    let sub = v >> bucket;
    (((bucket + 1) << SUB_HALF_MAG) as u64 + sub - (1 << SUB_HALF_MAG)) as usize
}

/// The lowest value of counts index `i` (the inverse of [`hist_index`]).
fn hist_value(i: usize) -> u64 {
    let mut bucket = (i >> SUB_HALF_MAG) as i64 - 1;
    let mut sub = (i & ((1 << SUB_HALF_MAG) - 1)) as u64 + (1 << SUB_HALF_MAG);
    if bucket < 0 {
        sub -= 1 << SUB_HALF_MAG;
        bucket = 0;
    }
    sub << bucket
}

impl Latency {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Series>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes up `latency-monitor-threshold` (start-up, CONFIG SET).
    pub fn configure(&self, threshold_ms: u64) {
        self.threshold.store(threshold_ms, Relaxed);
    }

    /// Takes up `latency-tracking`.
    pub fn set_tracking(&self, on: bool) {
        self.tracking.store(on, Relaxed);
    }

    fn hists(&self) -> &Vec<std::sync::OnceLock<Box<[AtomicU64]>>> {
        self.hists.get_or_init(|| {
            let n = crate::stats::StatIndex::len_of_table();
            (0..n).map(|_| std::sync::OnceLock::new()).collect()
        })
    }

    /// Records a call of (sub)command `stat` that took `nanos` (Redis
    /// records whole microseconds, in ns, clamped to the bounds).
    #[inline]
    pub fn record(&self, stat: usize, nanos: u64) {
        if !self.tracking.load(Relaxed) {
            return;
        }
        let v = (nanos / 1000 * 1000).clamp(HIST_MIN, HIST_MAX);
        if let Some(cell) = self.hists().get(stat) {
            let counts = cell.get_or_init(|| (0..COUNTS).map(|_| AtomicU64::new(0)).collect());
            counts[hist_index(v)].fetch_add(1, Relaxed);
        }
    }

    /// Forgets every histogram (CONFIG RESETSTAT).
    pub fn reset_histograms(&self) {
        for h in self.hists() {
            if let Some(c) = h.get() {
                c.iter().for_each(|n| n.store(0, Relaxed));
            }
        }
    }

    /// (Sub)command `stat`'s histogram, if it was called.
    fn histogram(&self, stat: usize) -> Option<Hist> {
        let counts = self.hists().get(stat)?.get()?;
        let mut h = Hist::new_with_bounds(HIST_MIN, HIST_MAX, HIST_SIGFIG).ok()?;
        for (i, n) in counts.iter().enumerate() {
            let n = n.load(Relaxed);
            if n != 0 {
                let _ = h.record_n(hist_value(i), n);
            }
        }
        Some(h)
    }

    /// INFO latencystats lines: `latency_percentiles_usec_<cmd>:p50=…`.
    pub fn info_lines(
        &self,
        specs: &[&protocol::command::CommandSpec],
        percentiles: &[f64],
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let Some(h) = self.histogram(i) else { continue };
            if h.is_empty() {
                continue;
            }
            let parts: Vec<String> = percentiles
                .iter()
                .map(|p| {
                    let v = h.value_at_quantile(p / 100.0);
                    format!("p{}={:.3}", fmt_percentile(*p), v as f64 / 1000.0)
                })
                .collect();
            out.push(format!(
                "latency_percentiles_usec_{}:{}",
                spec.name,
                parts.join(",")
            ));
        }
        out
    }

    /// Whether the monitor is on (callers skip their clock reads if not).
    #[inline]
    pub fn on(&self) -> bool {
        self.threshold.load(Relaxed) != 0
    }

    /// Records `ms` for `event` if the monitor is on and `ms` reaches the
    /// threshold.
    #[inline]
    pub fn consider(&self, event: &'static str, ms: u64) {
        let t = self.threshold.load(Relaxed);
        if t != 0 && ms >= t {
            self.add(event, ms);
        }
    }

    #[cold]
    fn add(&self, event: &'static str, ms: u64) {
        let now = crate::db::now_ms() / 1000;
        let mut events = self.lock();
        let s = events.entry(event).or_insert_with(Series::new);
        s.max = s.max.max(ms);
        let prev = (s.next + HISTORY - 1) % HISTORY;
        if s.samples[prev].time == now {
            // One sample per second: the second's worst.
            s.samples[prev].ms = s.samples[prev].ms.max(ms);
            return;
        }
        s.samples[s.next] = Sample { time: now, ms };
        s.next = (s.next + 1) % HISTORY;
    }
}

pub fn handler(id: CmdId) -> Option<Handler> {
    Some(match id {
        CmdId::Latency => latency,
        _ => return None,
    })
}

/// Our own wording (the first and last lines are the common frame of
/// every HELP reply).
const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LATEST",
    "    For every event: its name, the time and latency of its newest sample",
    "    and its highest latency.",
    "HISTORY <event>",
    "    The samples of <event> (unix time, milliseconds), oldest first.",
    "GRAPH <event>",
    "    The samples of <event> as a text chart.",
    "DOCTOR",
    "    A readable summary of every event.",
    "RESET [<event> ...]",
    "    Forget the given events (every event when none is given).",
    "HISTOGRAM [<command> ...]",
    "    The latency distribution of the given commands (every command called",
    "    when none is given), in microseconds.",
    "HELP",
    "    Print this help.",
];

fn latency(ctx: &mut Ctx, argv: &[&[u8]]) -> CmdResult {
    // The gate has resolved the subcommand and checked its arity.
    let mon = &ctx.srv.latency;
    let sub = ctx.spec.short_name();
    let event = |i: usize| std::str::from_utf8(argv[i]).unwrap_or("");
    match sub {
        "help" => help_reply(ctx, LATENCY_HELP),
        "latest" => {
            let events = mon.lock();
            let out = &mut *ctx.out;
            out.array(events.len());
            for (name, s) in events.iter() {
                let last = s.last();
                out.array(4);
                out.bulk(name.as_bytes());
                out.int(last.time as i64);
                out.int(last.ms as i64);
                out.int(s.max as i64);
            }
        }
        "history" if argv.len() == 3 => {
            let events = mon.lock();
            let out = &mut *ctx.out;
            match events.get(event(2)) {
                None => out.array(0),
                Some(s) => {
                    out.array(s.ordered().count());
                    for x in s.ordered() {
                        out.array(2);
                        out.int(x.time as i64);
                        out.int(x.ms as i64);
                    }
                }
            }
        }
        "graph" if argv.len() == 3 => {
            let text = {
                let events = mon.lock();
                let Some((name, s)) = events.get_key_value(event(2)) else {
                    return Err(CmdError::Msg(errors::latency_no_samples(argv[2])));
                };
                graph(name, s, crate::db::now_ms() / 1000)
            };
            ctx.out.verbatim(b"txt", text.as_bytes());
        }
        "doctor" if argv.len() == 2 => {
            let text = doctor(&mon.lock(), mon.threshold.load(Relaxed));
            ctx.out.verbatim(b"txt", text.as_bytes());
        }
        "reset" => {
            let mut events = mon.lock();
            let n = if argv.len() == 2 {
                let n = events.len();
                events.clear();
                n
            } else {
                let before = events.len();
                events.retain(|name, _| {
                    !argv[2..]
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(name.as_bytes()))
                });
                before - events.len()
            };
            ctx.out.int(n as i64);
        }
        "histogram" => histogram_reply(ctx, argv),
        _ => {
            return Err(CmdError::Msg(errors::subcommand_syntax("LATENCY", argv[1])));
        }
    }
    Ok(())
}

/// LATENCY GRAPH: one bar per sample, newest last, scaled to the event's
/// highest sample in view, with its age.
fn graph(name: &str, s: &Series, now: u64) -> String {
    let samples: Vec<Sample> = s.ordered().collect();
    let high = samples.iter().map(|x| x.ms).max().unwrap_or(0);
    let low = samples.iter().map(|x| x.ms).min().unwrap_or(0);
    let mut t = format!(
        "{name} - high {high} ms, low {low} ms (all time high {} ms)\n",
        s.max
    );
    const WIDTH: u64 = 60;
    for x in &samples {
        let bar = if high == 0 {
            0
        } else {
            (x.ms * WIDTH).div_ceil(high)
        };
        t.push_str(&format!(
            "{:>7} ago {:>7} ms |{}\n",
            age(now.saturating_sub(x.time)),
            x.ms,
            "#".repeat(bar as usize)
        ));
    }
    t
}

/// An age as its largest unit: `12s`, `5m`, `3h`, `2d`.
fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// LATENCY DOCTOR: per event, how many samples, their mean and the worst,
/// and what usually causes that event.
fn doctor(events: &BTreeMap<&'static str, Series>, threshold: u64) -> String {
    if threshold == 0 {
        return "The latency monitor is off: set latency-monitor-threshold to a number of \
                milliseconds (CONFIG SET latency-monitor-threshold 100) to record events \
                that take at least that long.\n"
            .into();
    }
    if events.is_empty() {
        return format!(
            "No event has taken {threshold} ms or more (latency-monitor-threshold) since \
             the monitor started or was last reset.\n"
        );
    }
    let mut t = format!(
        "Events that took {threshold} ms or more (latency-monitor-threshold), at most \
         one sample per second:\n\n"
    );
    for (name, s) in events {
        let samples: Vec<Sample> = s.ordered().collect();
        let n = samples.len() as u64;
        let mean = samples.iter().map(|x| x.ms).sum::<u64>() / n.max(1);
        t.push_str(&format!(
            "{name}: {n} samples, mean {mean} ms, highest {} ms.\n",
            s.max
        ));
        let why = match *name {
            "command" => {
                "  Slow commands: look at SLOWLOG GET; O(N) commands on large values \
                 (KEYS, SMEMBERS, LRANGE 0 -1, SORT, big DEL) block their slots."
            }
            "fast-command" => {
                "  Commands flagged fast took long: the machine may be overloaded or \
                 swapping, or a slot lock was held by a migration or a script."
            }
            "expire-cycle" => {
                "  Many keys expire at once: spread expiry times (add jitter to TTLs)."
            }
            _ => "",
        };
        if !why.is_empty() {
            t.push_str(why);
            t.push('\n');
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_the_worst_and_the_all_time_max() {
        let l = Latency::default();
        l.consider("command", 50);
        assert!(l.lock().is_empty(), "off by default");
        l.configure(10);
        l.consider("command", 5);
        assert!(l.lock().is_empty(), "under the threshold");
        l.consider("command", 20);
        l.consider("command", 40);
        l.consider("command", 30);
        let e = l.lock();
        let s = &e["command"];
        let v: Vec<u64> = s.ordered().map(|x| x.ms).collect();
        // The three may straddle a second boundary; the worst is kept.
        assert!(v == [40] || v.len() == 2, "{v:?}");
        assert_eq!(s.max, 40);
    }

    #[test]
    fn the_history_keeps_the_newest_160() {
        let mut s = Series::new();
        for i in 0..200u64 {
            s.samples[s.next] = Sample { time: i + 1, ms: i };
            s.next = (s.next + 1) % HISTORY;
        }
        let v: Vec<u64> = s.ordered().map(|x| x.ms).collect();
        assert_eq!(v.len(), HISTORY);
        assert_eq!(v[0], 40);
        assert_eq!(s.last().ms, 199);
        let g = graph("command", &s, 300);
        assert!(g.starts_with("command - high 199 ms, low 40 ms"), "{g}");
        assert_eq!(g.lines().count(), HISTORY + 1);
    }
}

/// A percentile as Redis names it in INFO (`50`, `99.9`).
fn fmt_percentile(p: f64) -> String {
    let s = format!("{p}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// LATENCY HISTOGRAM [command ...]: every called command's (or the given
/// ones'; a container names its subcommands) call count and cumulative
/// distribution, in microsecond buckets doubling from 1 (Redis' log
/// iteration from 1024 ns by 2, each bucket named by its highest
/// equivalent value).
fn histogram_reply(ctx: &mut Ctx, argv: &[&[u8]]) {
    let specs = &ctx.srv.stats.index.specs;
    let mon = &ctx.srv.latency;
    let mut picked: Vec<usize> = Vec::new();
    if argv.len() == 2 {
        picked.extend(0..specs.len());
    } else {
        for name in &argv[2..] {
            let Some(id) = protocol::command::lookup(name) else {
                continue;
            };
            let top = id as usize;
            let subs = specs[top].subcommands.len();
            if subs == 0 {
                picked.push(top);
            } else {
                let first = ctx.srv.stats.index.sub(top, 0);
                picked.extend(first..first + subs);
            }
        }
    }
    let hists: Vec<(usize, Hist)> = picked
        .into_iter()
        .filter_map(|i| mon.histogram(i).filter(|h| !h.is_empty()).map(|h| (i, h)))
        .collect();
    let out = &mut *ctx.out;
    out.map(hists.len());
    for (i, h) in hists {
        out.bulk(specs[i].name.as_bytes());
        out.map(2);
        out.bulk(b"calls");
        out.int(h.len() as i64);
        out.bulk(b"histogram_usec");
        let buckets = cdf(&h);
        out.map(buckets.len());
        for (us, n) in buckets {
            out.int(us as i64);
            out.int(n as i64);
        }
    }
}

/// (bucket µs, calls at or under it), for buckets that add calls.
fn cdf(h: &Hist) -> Vec<(u64, u64)> {
    let total = h.len();
    let mut out = Vec::new();
    let mut prev = 0;
    let mut level = 1024u64;
    while prev < total && level <= HIST_MAX * 2 {
        let upper = h.highest_equivalent(level);
        let cum = h.count_between(0, upper);
        if cum > prev {
            out.push((upper / 1000, cum));
            prev = cum;
        }
        level *= 2;
    }
    out
}

#[cfg(test)]
mod hist_tests {
    use super::*;

    #[test]
    fn buckets_and_percentiles_as_redis() {
        let mut h = Hist::new_with_bounds(HIST_MIN, HIST_MAX, HIST_SIGFIG).unwrap();
        // What redis-server 7.0.15 reported for calls of 0, 1, 2 and
        // 130 µs: buckets 1, 2 and 132; p50 0.001, p99 1.003 / 2.007.
        for v in [1u64, 1, 1000, 2000, 130_000] {
            h.record(v).unwrap();
        }
        assert_eq!(cdf(&h), vec![(1, 3), (2, 4), (132, 5)]);
        assert_eq!(h.value_at_quantile(0.5), 1000 + 3);
        assert_eq!(h.highest_equivalent(32768) / 1000, 33);
        assert_eq!(h.highest_equivalent(262_144) / 1000, 264);
        assert_eq!(fmt_percentile(50.0), "50");
        // Our atomic counts use the crate's layout exactly.
        for v in [
            1u64,
            2,
            200,
            255,
            256,
            1000,
            1024,
            2000,
            65_535,
            130_000,
            999_999_999,
            HIST_MAX,
        ] {
            let i = hist_index(v);
            assert!(i < COUNTS, "{v}");
            assert_eq!(hist_value(i), h.lowest_equivalent(v), "{v}");
        }
        assert_eq!(fmt_percentile(99.9), "99.9");
    }
}
