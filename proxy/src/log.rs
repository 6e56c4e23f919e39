//! Minimal leveled logger for the proxy (Codis' `--log` / `--log-level`):
//! lines go to stderr or to the `--log` file, with Codis' timestamp layout
//! (`2006/01/02 15:04:05.000000`, in UTC here) and a level.
//! The level can be changed at run time (admin `loglevel`).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(2);
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Parses a Codis level name (`debug`, `info`, `warn`, `error`), any case.
pub fn parse_level(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "debug" => Some(1),
        "info" => Some(2),
        "warn" | "warning" => Some(3),
        "error" => Some(4),
        _ => None,
    }
}

pub fn set_level(l: u8) {
    LEVEL.store(l, Ordering::Relaxed);
}

pub fn set_file(f: std::fs::File) {
    if let Ok(mut g) = FILE.lock() {
        *g = Some(f);
    }
}

fn emit(level: u8, tag: &str, msg: &str) {
    if level < LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let line = format!("{} [{tag}] {msg}\n", stamp(now));
    if let Ok(mut g) = FILE.lock()
        && let Some(f) = g.as_mut()
    {
        let _ = f.write_all(line.as_bytes());
        return;
    }
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// `2006/01/02 15:04:05.000000` (UTC) for a time since the unix epoch.
fn stamp(t: std::time::Duration) -> String {
    let c = protocol::civil::from_unix(t.as_secs());
    format!(
        "{}/{:02}/{:02} {:02}:{:02}:{:02}.{:06}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        t.subsec_micros()
    )
}

pub fn debug(msg: &str) {
    emit(1, "DEBUG", msg);
}
pub fn info(msg: &str) {
    emit(2, "INFO", msg);
}
pub fn warn(msg: &str) {
    emit(3, "WARN", msg);
}
pub fn error(msg: &str) {
    emit(4, "ERROR", msg);
}

#[cfg(test)]
mod tests {
    #[test]
    fn codis_timestamp_layout() {
        let t = std::time::Duration::new(1_796_573_890, 123_456_789);
        assert_eq!(super::stamp(t), "2026/12/06 16:18:10.123456");
    }

    #[test]
    fn levels() {
        assert_eq!(super::parse_level("INFO"), Some(2));
        assert_eq!(super::parse_level("nope"), None);
    }
}
