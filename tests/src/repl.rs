//! Helpers of the replication tests (replication.rs, replica.rs,
//! sentinel.rs): INFO fields, waiting for a condition, for a replica's
//! link and for it to catch up with its master.

use std::time::{Duration, Instant};

use crate::Conn;

/// One field of `INFO <section>`.
pub fn info_field(c: &mut Conn, section: &str, field: &str) -> Option<String> {
    let text = c
        .value(&format!("INFO {section}"))
        .as_text()
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// [`info_field`] as a number (panics when missing).
#[track_caller]
pub fn int_field(c: &mut Conn, section: &str, field: &str) -> i64 {
    info_field(c, section, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} {field}"))
}

/// Polls `ok` every 50 ms; panics after `within`.
#[track_caller]
pub fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the replica's link to its master is up.
#[track_caller]
pub fn wait_link_up(r: &mut Conn) {
    wait_until("master_link_status:up", Duration::from_secs(30), || {
        info_field(r, "replication", "master_link_status").as_deref() == Some("up")
    });
}

/// Waits until the master lists its replica on `port` as online (the
/// replica's own `master_link_status:up` can come first: the master puts
/// it online on its first REPLCONF ACK). FAILOVER TO needs this.
#[track_caller]
pub fn wait_replica_online(master: &mut Conn, port: u16) {
    let needle = format!(",port={port},state=online");
    wait_until(
        "the master to list its replica online",
        Duration::from_secs(30),
        || String::from_utf8_lossy(&master.cmd("INFO replication")).contains(&needle),
    );
}

/// Waits until the replica applied everything the master sent so far.
#[track_caller]
pub fn wait_caught_up(master: &mut Conn, replica: &mut Conn) {
    let target = int_field(master, "replication", "master_repl_offset");
    wait_until("the replica's offset", Duration::from_secs(30), || {
        info_field(replica, "replication", "slave_repl_offset")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|o| o >= target)
    });
}
