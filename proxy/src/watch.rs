//! Follows the slot-table store named by `--fillslots` (`cluster::store`):
//!
//! * a file (a Codis-style JSON array of slots, or a `codis-ctl` table):
//!   its metadata (mtime, size, inode) is polled every 50 ms, so in-place
//!   writes and replace-by-rename are both seen; a changed file is parsed
//!   and validated as a whole, a bad one is refused with one log line and
//!   the running table is kept. The file is the whole table: slots it no
//!   longer lists become unassigned.
//! * an etcd key (`etcd://host:port/<product>`): read, then watched from
//!   the revision read; every change is applied in order. When etcd cannot
//!   be reached the proxy keeps serving its last table, says it is degraded
//!   (admin API, `/metrics`, its registration once etcd is back), retries
//!   every 500 ms, and on return reads the key again and watches anew.
//!
//! Every table is applied with the router's drain-before-switch. When the
//! source is a versioned table, the proxy registers in the store (token,
//! addresses, the version it serves) after every applied change, so
//! `codis-ctl` can wait until every proxy serves a version; it removes its
//! registration on a clean shutdown.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cluster::store::{ProxyEntry, Store};
use cluster::table::parse_slot_source;

use crate::router::Router;
use crate::slots::{Slot, full_table};

/// A proxy's registration in its store.
pub struct Registrar {
    pub store: Arc<Store>,
    pub entry: ProxyEntry,
}

impl Registrar {
    /// Writes the registration with the router's current state.
    pub async fn announce(&self, router: &Router) {
        let mut e = self.entry.clone();
        e.table_version = router.table_version.load(Ordering::SeqCst);
        e.degraded = router.degraded.load(Ordering::SeqCst);
        if let Err(err) = self.store.register(&e).await {
            crate::log::warn(&format!(
                "cannot register in {}: {err}",
                self.store.describe()
            ));
        }
    }

    /// Removes the registration (clean shutdown).
    pub async fn withdraw(&self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.store.unregister(&self.entry.token),
        )
        .await;
    }
}

/// Applies a parsed source: its slots, then its version.
async fn apply(router: &Arc<Router>, version: Option<u64>, slots: &[Slot]) {
    router.fill(&full_table(slots)).await;
    router
        .table_version
        .store(version.unwrap_or(0), Ordering::SeqCst);
}

fn stamp(path: &PathBuf) -> Option<(i64, i64, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.mtime(), m.mtime_nsec(), m.size(), m.ino()))
}

/// Follows a slot file; `applied`: the bytes the running table came from
/// (a file that differs from them is applied, even one written between
/// that read and this start).
pub async fn follow_file(
    router: Arc<Router>,
    path: PathBuf,
    applied: Option<Vec<u8>>,
    reg: Option<Arc<Registrar>>,
) {
    let mut last_stamp = None;
    let mut last_content = applied;
    if let Some(r) = &reg {
        r.announce(&router).await;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if router.closed.load(Ordering::Relaxed) {
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
        match parse_slot_source(&data) {
            Ok((version, slots)) => {
                crate::log::info(&format!(
                    "slot file {} changed: applying {} slots{}",
                    path.display(),
                    slots.len(),
                    version
                        .map(|v| format!(", version {v}"))
                        .unwrap_or_default()
                ));
                apply(&router, version, &slots).await;
                if let Some(r) = &reg {
                    r.announce(&router).await;
                }
            }
            Err(e) => crate::log::error(&format!(
                "slot file {} refused, keeping the running table: {e}",
                path.display()
            )),
        }
    }
}

fn set_degraded(router: &Router, on: bool, why: &str) {
    if router.degraded.swap(on, Ordering::SeqCst) != on {
        if on {
            crate::log::warn(&format!(
                "slot-table store unreachable, serving the last table (version {}): {why}",
                router.table_version.load(Ordering::SeqCst)
            ));
        } else {
            crate::log::info("slot-table store reachable again");
        }
    }
}

/// Follows the table in etcd.
pub async fn follow_etcd(router: Arc<Router>, reg: Arc<Registrar>) {
    let Store::Etcd { etcd, product } = &*reg.store else {
        return;
    };
    let key = cluster::store::table_key(product);
    let mut applied: Option<Vec<u8>> = None;
    loop {
        if router.closed.load(Ordering::Relaxed) {
            return;
        }
        // (Re)read the key, then watch from just after what was read.
        let (kv, rev) = match etcd.get_rev(key.as_bytes()).await {
            Ok(x) => x,
            Err(e) => {
                set_degraded(&router, true, &e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Some(kv) = kv {
            take(&router, &key, &kv.value, &mut applied).await;
        }
        let mut w = match etcd.watch(key.as_bytes(), false, rev + 1).await {
            Ok(w) => w,
            Err(e) => {
                set_degraded(&router, true, &e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        set_degraded(&router, false, "");
        reg.announce(&router).await;
        loop {
            let batch = tokio::select! {
                b = w.next() => b,
                // Notice an unreachable etcd (the watch stream may just
                // stay silent): a cheap read every 2 s while idle.
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    match etcd.get_rev(b"/codis3/-/ping").await {
                        Ok(_) => continue,
                        Err(e) => Err(e),
                    }
                }
            };
            match batch {
                Ok(b) if b.canceled => break,
                Ok(b) => {
                    // Only the latest value matters.
                    let last = b.events.iter().rev().find_map(|e| match e {
                        cluster::etcd::Event::Put(kv) => Some(kv.value.clone()),
                        cluster::etcd::Event::Delete(_) => None,
                    });
                    if b.events
                        .iter()
                        .any(|e| matches!(e, cluster::etcd::Event::Delete(_)))
                        && last.is_none()
                    {
                        crate::log::warn(&format!("{key} was deleted: keeping the running table"));
                    }
                    if let Some(v) = last
                        && take(&router, &key, &v, &mut applied).await
                    {
                        reg.announce(&router).await;
                    }
                }
                Err(e) => {
                    set_degraded(&router, true, &e);
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies a value of the table key if it differs from the last applied;
/// true when applied.
async fn take(
    router: &Arc<Router>,
    key: &str,
    value: &[u8],
    applied: &mut Option<Vec<u8>>,
) -> bool {
    if applied.as_deref() == Some(value) {
        return false;
    }
    match parse_slot_source(value) {
        Ok((version, slots)) => {
            crate::log::info(&format!(
                "{key} changed: applying {} slots{}",
                slots.len(),
                version
                    .map(|v| format!(", version {v}"))
                    .unwrap_or_default()
            ));
            apply(router, version, &slots).await;
            *applied = Some(value.to_vec());
            true
        }
        Err(e) => {
            crate::log::error(&format!("{key} refused, keeping the running table: {e}"));
            *applied = Some(value.to_vec());
            false
        }
    }
}
