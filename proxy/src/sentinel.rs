//! Master switches driven by redis-sentinel (codis.md §3.11), as Codis'
//! proxy does: the dashboard (or an operator) gives the sentinel list with
//! `PUT /api/proxy/sentinels/<xauth>`; the proxy subscribes to
//! `+switch-master` on every sentinel (retrying every 2 s, resubscribing
//! every 15 min), and on a switch of a master named `<product>-<gid>` (and
//! once a majority is subscribed) asks every sentinel for `SENTINEL
//! masters`. With answers from a majority it takes, per group, the master
//! with the highest config-epoch, and points every slot of that group
//! (backend, or migrate-from) at it; it repeats up to 10 times, 5 s apart,
//! until two rounds succeeded. `/proxy/stats` then shows the masters and
//! `switched: true`. Sentinels are contacted without a password.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::ctl::redis::{Client, Value};

use crate::router::Router;

/// The sentinel state of a proxy.
#[derive(Default)]
pub struct Ha {
    pub servers: Mutex<Vec<String>>,
    /// Group id → master address, from the last successful round.
    pub masters: Mutex<BTreeMap<i64, String>>,
    /// A slot was pointed at a new master.
    pub switched: AtomicBool,
    /// Bumped by every new sentinel list: older watchers stop.
    generation: AtomicU64,
}

impl Ha {
    fn current(&self, era: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == era
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the sentinel list and (re)starts watching it (an empty list stops).
pub fn set(router: &Arc<Router>, servers: Vec<String>) {
    let ha = &router.ha;
    *lock(&ha.servers) = servers.clone();
    rewatch(router);
}

/// Restarts watching the current list.
pub fn rewatch(router: &Arc<Router>) {
    let ha = &router.ha;
    let era = ha.generation.fetch_add(1, Ordering::SeqCst) + 1;
    lock(&ha.masters).clear();
    let servers = lock(&ha.servers).clone();
    crate::log::warn(&format!("set sentinels = {servers:?}"));
    if servers.is_empty() {
        return;
    }
    let trigger = Arc::new(tokio::sync::Notify::new());
    let subscribed = Arc::new(AtomicU64::new(0));
    let majority = 1 + servers.len() as u64 / 2;
    for s in &servers {
        let (r, t, sub, addr) = (
            router.clone(),
            trigger.clone(),
            subscribed.clone(),
            s.clone(),
        );
        tokio::spawn(async move {
            while r.ha.current(era) && !r.closed.load(Ordering::Relaxed) {
                let res = subscribe(&r, era, &addr, &t, &sub, majority).await;
                if let Err(e) = res {
                    crate::log::warn(&format!("sentinel-[{addr}] subscribe failed: {e}"));
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
    let r = router.clone();
    tokio::spawn(async move {
        while r.ha.current(era) && !r.closed.load(Ordering::Relaxed) {
            // Woken by a subscription, or every second to notice a newer
            // sentinel list (then this watcher ends).
            if tokio::time::timeout(Duration::from_secs(1), trigger.notified())
                .await
                .is_err()
            {
                continue;
            }
            let mut success = 0;
            for _ in 0..10 {
                if !r.ha.current(era) || success == 2 {
                    break;
                }
                match masters(&r, &servers).await {
                    Ok(m) => {
                        if r.ha.current(era) {
                            switch_masters(&r, &m).await;
                            *lock(&r.ha.masters) = m;
                        }
                        success += 1;
                    }
                    Err(e) => crate::log::warn(&format!("fetch group masters failed: {e}")),
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    });
}

/// One subscription to a sentinel, until it fails or 15 minutes pass.
async fn subscribe(
    r: &Arc<Router>,
    era: u64,
    addr: &str,
    trigger: &tokio::sync::Notify,
    subscribed: &AtomicU64,
    majority: u64,
) -> Result<(), String> {
    let mut c = Client::connect(addr, "", Duration::from_secs(5)).await?;
    c.send(&["SUBSCRIBE", "+switch-master"]).await?;
    match c.next().await? {
        Value::Array(Some(v)) if v.len() == 3 && v[0].text() == "subscribe" => {}
        other => return Err(format!("invalid response {}", other.text())),
    }
    if subscribed.fetch_add(1, Ordering::SeqCst) + 1 == majority {
        trigger.notify_one();
    }
    let prefix = format!("{}-", r.cfg.product_name);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
    let res = async {
        loop {
            if !r.ha.current(era) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            // At most a second per read, to notice a newer sentinel list.
            let v = match tokio::time::timeout(Duration::from_secs(1), c.next()).await {
                Ok(v) => v?,
                Err(_) => continue,
            };
            let Value::Array(Some(parts)) = v else {
                return Err("invalid message".to_string());
            };
            if parts.len() == 3
                && parts[0].text() == "message"
                && parts[1].text() == "+switch-master"
            {
                let payload = parts[2].text();
                crate::log::warn(&format!(
                    "sentinel-[{addr}] subscribe event +switch-master {payload}"
                ));
                if payload.starts_with(&prefix) {
                    trigger.notify_one();
                }
            }
        }
    }
    .await;
    subscribed.fetch_sub(1, Ordering::SeqCst);
    res
}

/// `SENTINEL masters` from every sentinel (a majority must answer); per
/// group of this product, the master with the highest config-epoch.
async fn masters(r: &Router, servers: &[String]) -> Result<BTreeMap<i64, String>, String> {
    let prefix = format!("{}-", r.cfg.product_name);
    let calls = servers.iter().map(|s| {
        let s = s.clone();
        async move {
            let mut c = Client::connect(&s, "", Duration::from_secs(5)).await?;
            c.ok(&["SENTINEL", "masters"]).await
        }
    });
    let mut best: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    let mut answered = 0;
    for res in futures_join(calls).await {
        let Ok(Value::Array(Some(list))) = res else {
            continue;
        };
        answered += 1;
        for m in list {
            let Value::Array(Some(kv)) = m else { continue };
            let map: BTreeMap<String, String> = kv
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (p[0].text(), p[1].text()))
                .collect();
            let Some(gid) = map
                .get("name")
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|g| g.parse::<i64>().ok())
            else {
                continue;
            };
            let (Some(ip), Some(port)) = (map.get("ip"), map.get("port")) else {
                continue;
            };
            let Some(epoch) = map.get("config-epoch").and_then(|e| e.parse::<i64>().ok()) else {
                continue;
            };
            let addr = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            if best.get(&gid).is_none_or(|(e, _)| epoch > *e) {
                best.insert(gid, (epoch, addr));
            }
        }
    }
    if answered < 1 + servers.len() / 2 {
        return Err(format!(
            "only {answered} of {} sentinels answered",
            servers.len()
        ));
    }
    Ok(best.into_iter().map(|(g, (_, a))| (g, a)).collect())
}

/// Runs the futures concurrently and collects their results in order.
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// Points every slot of a group whose master changed at the new master
/// (read and switched with no other fill in between).
pub async fn switch_masters(r: &Arc<Router>, masters: &BTreeMap<i64, String>) {
    let n = r
        .update(|models| {
            let mut changed = Vec::new();
            for mut s in models {
                let mut sw = false;
                if let Some(a) = masters.get(&s.backend_addr_group_id)
                    && !s.backend_addr.is_empty()
                    && *a != s.backend_addr
                {
                    crate::log::warn(&format!(
                        "slot-[{}] backend {} switch to {a} (group-{})",
                        s.id, s.backend_addr, s.backend_addr_group_id
                    ));
                    s.backend_addr = a.clone();
                    sw = true;
                }
                if let Some(a) = masters.get(&s.migrate_from_group_id)
                    && !s.migrate_from.is_empty()
                    && *a != s.migrate_from
                {
                    s.migrate_from = a.clone();
                    sw = true;
                }
                if sw {
                    changed.push(s);
                }
            }
            changed
        })
        .await;
    if n > 0 {
        r.ha.switched.store(true, Ordering::SeqCst);
    }
}
