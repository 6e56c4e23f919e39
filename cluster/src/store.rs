//! Slot-table stores: where the cluster [`Table`] lives, named by one
//! string that proxies (`--fillslots`) and `codis-ctl` (its first argument)
//! share: a file path, or `etcd://host:port[,host:port]/<product>`.
//!
//! * File: the table is the file (written to a temp file in the same
//!   directory, synced, renamed over it, so readers never see half a
//!   table); changes are serialized by an exclusive `flock` on
//!   `<file>.lock`, which the kernel drops when its holder dies, so a
//!   crashed run never blocks the next. Proxies register as
//!   `<file>.proxies/proxy-<token>.json`.
//! * etcd (v3): the table is the key `/codis3/<product>/table`; every
//!   write is a transaction on the key's `mod_revision`, so two writers can
//!   never overwrite each other. The change lock is the key
//!   `/codis3/<product>/ctl-lock`, created only if absent and tied to a
//!   lease that its holder renews: a crashed holder's lock expires after
//!   [`LOCK_TTL_S`]. Proxies register as `/codis3/<product>/proxy/proxy-<token>`.
//!
//! A proxy's registration says which table version it serves; `codis-ctl`
//! waits on these before each step of a migration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::etcd::Etcd;
use crate::table::Table;

/// Lease of the etcd change lock, in seconds.
pub const LOCK_TTL_S: i64 = 10;

/// A proxy's registration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyEntry {
    pub token: String,
    pub proxy_addr: String,
    pub admin_addr: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub start_time: String,
    /// The table version it serves (0: none yet).
    #[serde(default)]
    pub table_version: u64,
    /// It cannot reach the store and serves the last table it had.
    #[serde(default)]
    pub degraded: bool,
}

/// Where a table lives.
pub enum Store {
    File(PathBuf),
    Etcd { etcd: Arc<Etcd>, product: String },
}

/// A table as read, with what a conditional write must compare against.
pub struct Loaded {
    pub table: Table,
    /// etcd: the key's mod_revision; file: the table's version.
    pub rev: i64,
}

impl Store {
    /// Parses a store name.
    pub fn open(spec: &str) -> Result<Store, String> {
        if let Some(rest) = spec.strip_prefix("etcd://") {
            let (addrs, product) = rest.split_once('/').ok_or_else(|| {
                format!("bad store {spec:?}: expected etcd://host:port/<product>")
            })?;
            let product = product.trim_end_matches('/');
            if addrs.is_empty() || !valid_product(product) {
                return Err(format!(
                    "bad store {spec:?}: expected etcd://host:port/<product> (product matching ^\\w[\\w.-]*$)"
                ));
            }
            Ok(Store::Etcd {
                etcd: Arc::new(Etcd::new(addrs)),
                product: product.to_string(),
            })
        } else if spec.contains("://") {
            Err(format!(
                "bad store {spec:?}: only file paths and etcd:// URLs are supported"
            ))
        } else {
            Ok(Store::File(PathBuf::from(spec)))
        }
    }

    /// Human-readable name.
    pub fn describe(&self) -> String {
        match self {
            Store::File(p) => p.display().to_string(),
            Store::Etcd { product, .. } => format!("etcd key {}", table_key(product)),
        }
    }

    /// Reads the table (None: there is none yet).
    pub async fn load(&self) -> Result<Option<Loaded>, String> {
        match self {
            Store::File(p) => match std::fs::read(p) {
                Ok(data) => {
                    let table = Table::parse(&data).map_err(|e| format!("{}: {e}", p.display()))?;
                    Ok(Some(Loaded {
                        rev: table.version as i64,
                        table,
                    }))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", p.display())),
            },
            Store::Etcd { etcd, product } => match etcd.get(table_key(product).as_bytes()).await? {
                None => Ok(None),
                Some(kv) => Ok(Some(Loaded {
                    table: Table::parse(&kv.value)
                        .map_err(|e| format!("{}: {e}", table_key(product)))?,
                    rev: kv.mod_revision,
                })),
            },
        }
    }

    /// Writes `t` if the stored table is still the one read as `prev`
    /// (None: there was none); returns the new `rev`.
    pub async fn save(&self, t: &Table, prev: Option<i64>) -> Result<i64, String> {
        t.validate()?;
        match self {
            Store::File(p) => {
                let data = t.to_json();
                let now = match std::fs::read(p) {
                    Ok(d) => Some(
                        Table::parse(&d)
                            .map_err(|e| format!("{}: {e}", p.display()))?
                            .version as i64,
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
                };
                if now != prev {
                    return Err(conflict());
                }
                write_atomic(p, &data)?;
                Ok(t.version as i64)
            }
            Store::Etcd { etcd, product } => {
                let data = t.to_json_compact();
                let key = table_key(product);
                match etcd
                    .cas_rev(key.as_bytes(), prev.unwrap_or(0), &data)
                    .await?
                {
                    Some(rev) => Ok(rev),
                    None => Err(conflict()),
                }
            }
        }
    }

    /// Takes the change lock (waits up to `wait` for a holder to let go or
    /// its lease to expire).
    pub async fn lock(&self, what: &str, wait: Duration) -> Result<Lock, String> {
        let owner = serde_json::json!({
            "what": what,
            "pid": std::process::id(),
            "hostname": hostname(),
            "machine": machine_id(),
            "since": unix_now(),
        })
        .to_string();
        let deadline = tokio::time::Instant::now() + wait;
        match self {
            Store::File(p) => {
                let lp = sibling(p, ".lock");
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(&lp)
                    .map_err(|e| format!("cannot open lock {}: {e}", lp.display()))?;
                loop {
                    if flock(&f) {
                        let _ = f.set_len(0);
                        let _ = std::io::Write::write_all(&mut &f, owner.as_bytes());
                        return Ok(Lock {
                            lost: Arc::new(AtomicBool::new(false)),
                            inner: LockInner::File(f),
                        });
                    }
                    if tokio::time::Instant::now() >= deadline {
                        let holder = std::fs::read_to_string(&lp).unwrap_or_default();
                        return Err(format!(
                            "another codis-ctl holds the lock {}: {}",
                            lp.display(),
                            holder.trim()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Store::Etcd { etcd, product } => {
                let key = lock_key(product);
                let mut lease = etcd.lease_grant(LOCK_TTL_S).await?;
                loop {
                    // Our lease lives while we wait (a new one if it lapsed).
                    if !matches!(etcd.lease_keepalive(lease).await, Ok(true)) {
                        lease = etcd.lease_grant(LOCK_TTL_S).await?;
                    }
                    if etcd.cas(key.as_bytes(), 0, owner.as_bytes(), lease).await? {
                        break;
                    }
                    // A holder that was a codis-ctl on this host and is
                    // gone: its lease would expire, but nothing needs to
                    // wait for that.
                    if let Some(kv) = etcd.get(key.as_bytes()).await?
                        && dead_local_holder(&kv.value)
                    {
                        eprintln!(
                            "codis-ctl: taking over the lock of a run that died: {}",
                            String::from_utf8_lossy(&kv.value)
                        );
                        etcd.delete_if(key.as_bytes(), kv.mod_revision).await?;
                        continue;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        let _ = etcd.lease_revoke(lease).await;
                        let holder = etcd
                            .get(key.as_bytes())
                            .await
                            .ok()
                            .flatten()
                            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                            .unwrap_or_default();
                        return Err(format!(
                            "another codis-ctl holds the lock {key}: {holder} (a crashed holder's lock expires within {LOCK_TTL_S} s)"
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let lost = Arc::new(AtomicBool::new(false));
                let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
                let (e, l, k) = (etcd.clone(), lost.clone(), key.clone());
                let _ = etcd.lease_keepalive(lease).await;
                tokio::spawn(async move {
                    let period = Duration::from_millis((LOCK_TTL_S as u64 * 1000) / 4);
                    let mut last_ok = tokio::time::Instant::now();
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => return,
                            _ = tokio::time::sleep(period) => {}
                        }
                        // Renewed, and the lock key is still ours.
                        let ok = match e.lease_keepalive(lease).await {
                            Ok(true) => match e.get(k.as_bytes()).await {
                                Ok(Some(kv)) => kv.lease == lease,
                                Ok(None) => false,
                                Err(_) => true,
                            },
                            Ok(false) => false,
                            Err(_) => last_ok.elapsed() < Duration::from_secs(LOCK_TTL_S as u64),
                        };
                        if !ok {
                            l.store(true, Ordering::SeqCst);
                            return;
                        }
                        last_ok = tokio::time::Instant::now();
                    }
                });
                Ok(Lock {
                    lost,
                    inner: LockInner::Etcd {
                        etcd: etcd.clone(),
                        lease,
                        _stop: stop_tx,
                    },
                })
            }
        }
    }

    /// Every registered proxy.
    pub async fn proxies(&self) -> Result<Vec<ProxyEntry>, String> {
        match self {
            Store::File(p) => {
                let dir = sibling(p, ".proxies");
                let mut out = Vec::new();
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
                };
                for ent in rd.flatten() {
                    let name = ent.file_name();
                    let name = name.to_string_lossy();
                    if !(name.starts_with("proxy-") && name.ends_with(".json")) {
                        continue;
                    }
                    if let Ok(d) = std::fs::read(ent.path())
                        && let Ok(e) = serde_json::from_slice::<ProxyEntry>(&d)
                    {
                        out.push(e);
                    }
                }
                out.sort_by(|a, b| a.token.cmp(&b.token));
                Ok(out)
            }
            Store::Etcd { etcd, product } => {
                let kvs = etcd.get_prefix(proxy_prefix(product).as_bytes()).await?;
                Ok(kvs
                    .iter()
                    .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
                    .collect())
            }
        }
    }

    /// Adds or updates a proxy's registration.
    pub async fn register(&self, p: &ProxyEntry) -> Result<(), String> {
        let data = serde_json::to_vec_pretty(p).unwrap_or_default();
        match self {
            Store::File(f) => {
                let dir = sibling(f, ".proxies");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                write_atomic(&dir.join(format!("proxy-{}.json", p.token)), &data)
            }
            Store::Etcd { etcd, product } => {
                etcd.put(
                    format!("{}proxy-{}", proxy_prefix(product), p.token).as_bytes(),
                    &data,
                    0,
                )
                .await
            }
        }
    }

    /// Removes a proxy's registration.
    pub async fn unregister(&self, token: &str) -> Result<(), String> {
        match self {
            Store::File(f) => {
                let p = sibling(f, ".proxies").join(format!("proxy-{token}.json"));
                match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(format!("cannot remove {}: {e}", p.display()))
                    }
                    _ => Ok(()),
                }
            }
            Store::Etcd { etcd, product } => {
                etcd.delete(format!("{}proxy-{token}", proxy_prefix(product)).as_bytes())
                    .await
            }
        }
    }
}

/// Whether a lock record names a process of this host that is no longer a
/// running codis-ctl.
fn dead_local_holder(record: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(record) else {
        return false;
    };
    let (Some(host), Some(pid)) = (v["hostname"].as_str(), v["pid"].as_u64()) else {
        return false;
    };
    // The same machine: host name and machine id (cloned machines share a
    // host name).
    let machine = machine_id();
    if host != hostname()
        || machine.is_empty()
        || v["machine"].as_str() != Some(machine.as_str())
        || pid == u64::from(std::process::id())
    {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => !comm.trim().starts_with("codis-ctl"),
        Err(_) => true,
    }
}

/// `^\w[\w.-]*$`, Codis' rule for product names.
pub fn valid_product(s: &str) -> bool {
    let mut b = s.bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    b.next().is_some_and(word) && b.all(|c| word(c) || c == b'.' || c == b'-')
}

/// The etcd key of a product's table.
pub fn table_key(product: &str) -> String {
    format!("/codis3/{product}/table")
}

/// The etcd key prefix of a product's proxy registrations.
pub fn proxy_prefix(product: &str) -> String {
    format!("/codis3/{product}/proxy/")
}

fn lock_key(product: &str) -> String {
    format!("/codis3/{product}/ctl-lock")
}

/// The error of a conditional write that found another table.
pub const CONFLICT: &str = "the table was changed by someone else meanwhile; run again";

fn conflict() -> String {
    CONFLICT.into()
}

/// `<path><suffix>` beside `path`.
fn sibling(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `data` to a temp file beside `p`, syncs it and renames it over `p`.
pub fn write_atomic(p: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    let tmp = sibling(
        p,
        &format!(".tmp-{}-{}", std::process::id(), unix_now_nanos()),
    );
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, p)?;
        if let Some(d) = dir
            && let Ok(df) = std::fs::File::open(d)
        {
            let _ = df.sync_all();
        }
        Ok::<_, std::io::Error>(())
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", p.display())
    })
}

/// A held change lock.
pub struct Lock {
    lost: Arc<AtomicBool>,
    #[allow(dead_code)]
    inner: LockInner,
}

enum LockInner {
    /// The open file holds the flock until it is closed.
    File(#[allow(dead_code)] std::fs::File),
    Etcd {
        etcd: Arc<Etcd>,
        lease: i64,
        _stop: tokio::sync::oneshot::Sender<()>,
    },
}

impl Lock {
    /// Fails once the lock can no longer be trusted (its lease expired).
    pub fn check(&self) -> Result<(), String> {
        if self.lost.load(Ordering::SeqCst) {
            Err("lost the change lock (its etcd lease expired); stopping".into())
        } else {
            Ok(())
        }
    }

    /// Lets go of the lock now.
    pub async fn release(self) {
        if let LockInner::Etcd { etcd, lease, .. } = &self.inner {
            let _ = etcd.lease_revoke(*lease).await;
        }
    }
}

#[allow(unsafe_code)]
fn flock(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// This machine's id (`/etc/machine-id`; empty when there is none).
pub fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(matches!(Store::open("slots.json"), Ok(Store::File(_))));
        match Store::open("etcd://127.0.0.1:2379/codis-demo").unwrap() {
            Store::Etcd { product, .. } => assert_eq!(product, "codis-demo"),
            _ => panic!(),
        }
        assert!(Store::open("etcd://127.0.0.1:2379").is_err());
        assert!(Store::open("etcd://127.0.0.1:2379/bad name").is_err());
        assert!(Store::open("zk://x/y").is_err());
        assert!(valid_product("codis-demo.1"));
        assert!(!valid_product("-x"));
    }

    #[tokio::test]
    async fn file_store_cas_lock_and_registry() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path().join("t.json").to_str().unwrap()).unwrap();
        assert!(s.load().await.unwrap().is_none());
        let mut t = Table {
            version: 1,
            ..Default::default()
        };
        assert_eq!(s.save(&t, None).await.unwrap(), 1);
        assert!(s.save(&t, None).await.is_err());
        t.version = 2;
        assert_eq!(s.save(&t, Some(1)).await.unwrap(), 2);
        assert!(s.save(&t, Some(1)).await.is_err());
        assert_eq!(s.load().await.unwrap().unwrap().table.version, 2);
        let l = s.lock("test", Duration::ZERO).await.unwrap();
        // A second open file description cannot take it.
        assert!(s.lock("test", Duration::ZERO).await.is_err());
        l.release().await;
        s.lock("test", Duration::ZERO).await.unwrap();
        let p = ProxyEntry {
            token: "abc".into(),
            table_version: 2,
            ..Default::default()
        };
        s.register(&p).await.unwrap();
        assert_eq!(s.proxies().await.unwrap(), vec![p]);
        s.unregister("abc").await.unwrap();
        assert!(s.proxies().await.unwrap().is_empty());
    }
}
