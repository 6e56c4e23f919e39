//! Watches the `--fillslots` file: polls its metadata (mtime, size, inode)
//! every 500 ms, so in-place writes and replace-by-rename are both seen. A
//! changed file is parsed and validated as a whole; a bad one is refused with
//! one log line and the running table is kept. The file is the whole table:
//! slots it no longer lists become unassigned.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::router::Router;
use crate::slots::{MAX_SLOTS, Slot, parse_slots};

/// Expands a file's slots to all 1024 (absent ids become unassigned).
pub fn full_table(slots: &[Slot]) -> Vec<Slot> {
    let mut all: Vec<Slot> = (0..MAX_SLOTS)
        .map(|i| Slot {
            id: i as i64,
            ..Slot::default()
        })
        .collect();
    for s in slots {
        if let Some(d) = usize::try_from(s.id).ok().and_then(|i| all.get_mut(i)) {
            *d = s.clone();
        }
    }
    all
}

fn stamp(path: &PathBuf) -> Option<(i64, i64, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.mtime(), m.mtime_nsec(), m.size(), m.ino()))
}

pub async fn watch_slot_file(router: Arc<Router>, path: PathBuf) {
    let mut last_stamp = stamp(&path);
    let mut last_content = std::fs::read(&path).ok();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if router.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let now = stamp(&path);
        if now.is_none() || now == last_stamp {
            continue;
        }
        last_stamp = now;
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        if last_content.as_deref() == Some(&data[..]) {
            continue;
        }
        last_content = Some(data.clone());
        match parse_slots(&data) {
            Ok(slots) => {
                crate::log::info(&format!(
                    "slot file {} changed: applying {} slots",
                    path.display(),
                    slots.len()
                ));
                router.fill(&full_table(&slots)).await;
            }
            Err(e) => crate::log::error(&format!(
                "slot file {} refused, keeping the running table: {e}",
                path.display()
            )),
        }
    }
}
