//! Redis-style log lines (`pid:M 22 Nov 2026 21:30:00.123 * message`) to stdout
//! or the configured `logfile`, filtered by `loglevel`.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Verbose = 1,
    Notice = 2,
    Warning = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Sets the minimum level and the destination (empty path = stdout).
pub fn init(level: Level, logfile: &str) -> std::io::Result<()> {
    LEVEL.store(level as u8, Ordering::Relaxed);
    let f = if logfile.is_empty() {
        None
    } else {
        Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(logfile)?,
        )
    };
    *FILE.lock().unwrap_or_else(|p| p.into_inner()) = f;
    Ok(())
}

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Formats a unix time in ms as `22 Nov 2026 21:30:00.123` (UTC; the day
/// zero-padded, as Redis' strftime `%d`).
pub fn timestamp(ms: u64) -> String {
    let c = protocol::civil::from_unix(ms / 1000);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mon = MON.get((c.month - 1) as usize).copied().unwrap_or("Jan");
    format!(
        "{:02} {mon} {} {:02}:{:02}:{:02}.{:03}",
        c.day,
        c.year,
        c.hour,
        c.minute,
        c.second,
        ms % 1000
    )
}

pub fn log(level: Level, msg: &str) {
    if !enabled(level) {
        return;
    }
    let mark = match level {
        Level::Debug => '.',
        Level::Verbose => '-',
        Level::Notice => '*',
        Level::Warning => '#',
    };
    let line = format!(
        "{}:M {} {} {}\n",
        std::process::id(),
        timestamp(crate::db::now_ms()),
        mark,
        msg
    );
    let mut f = FILE.lock().unwrap_or_else(|p| p.into_inner());
    match f.as_mut() {
        Some(file) => {
            let _ = file.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stdout().write_all(line.as_bytes());
        }
    }
}

#[macro_export]
macro_rules! notice { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Notice, &format!($($t)*)) } }
#[macro_export]
macro_rules! warning { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warning, &format!($($t)*)) } }
#[macro_export]
macro_rules! verbose { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Verbose) { $crate::log::log($crate::log::Level::Verbose, &format!($($t)*)) } } }

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_format() {
        assert_eq!(super::timestamp(0), "01 Jan 1970 00:00:00.000");
        assert_eq!(
            super::timestamp(1_795_383_000_123),
            "22 Nov 2026 21:30:00.123"
        );
    }
}
