//! `codis-proxy`: command line (codis-proxy 3.2's flags, codis.md §3.1),
//! start-up (config, pidfile, logging, runtime with `--ncpu` workers), the
//! client listener with the online / max-clients gates, the `--fillslots`
//! slot-table store (a file, or `etcd://host:port/<product>`; followed by
//! `watch`), and graceful shutdown on SIGTERM/SIGINT.

mod admin;
mod backend;
mod blocking;
mod config;
mod coordinator;
mod errors;
mod info;
mod local;
mod log;
mod pubsub;
mod router;
mod scan;
mod sentinel;
mod session;
mod slots;
mod transaction;
mod watch;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Parser;
use tokio::io::AsyncWriteExt;

use config::Config;
use router::Router;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// codis-proxy flags (both `--k=v` and `--k v`).
#[derive(Parser, Debug)]
#[command(name = "codis-proxy", disable_version_flag = true)]
struct Args {
    /// proxy.toml
    #[arg(long)]
    config: Option<String>,
    /// Slot table (followed): a file, or etcd://host:port/<product>.
    #[arg(long)]
    fillslots: Option<String>,
    /// Log file (default: stderr).
    #[arg(long)]
    log: Option<String>,
    /// Log level: debug, info, warn or error.
    #[arg(long = "log-level", default_value = "info")]
    log_level: String,
    /// Worker threads (Codis' GOMAXPROCS, default 4).
    #[arg(long, default_value_t = 4)]
    ncpu: usize,
    /// Up to this many worker threads under load (Codis raises GOMAXPROCS
    /// from ncpu to max-ncpu when busy): the runtime starts max(ncpu,
    /// max-ncpu) workers, and idle ones sleep.
    #[arg(long = "max-ncpu")]
    max_ncpu: Option<usize>,
    /// Admin HTTP API address (overrides admin_addr in proxy.toml).
    #[arg(long = "host-admin")]
    host_admin: Option<String>,
    /// Client address (overrides proxy_addr in proxy.toml).
    #[arg(long = "host-proxy")]
    host_proxy: Option<String>,
    /// Write the process id here at start; removed at exit.
    #[arg(long)]
    pidfile: Option<String>,
    /// Product (cluster) name (overrides product_name in proxy.toml).
    #[arg(long = "product_name")]
    product_name: Option<String>,
    /// Password for the backends (overrides product_auth in proxy.toml).
    #[arg(long = "product_auth")]
    product_auth: Option<String>,
    /// Password clients must AUTH with (overrides session_auth in proxy.toml).
    #[arg(long = "session_auth")]
    session_auth: Option<String>,
    /// Open-files limit to run with: the soft RLIMIT_NOFILE is raised to N
    /// (up to the hard limit); start-up fails when it stays below N, as in
    /// Codis.
    #[arg(long)]
    ulimit: Option<u64>,
    /// Print the default proxy.toml and exit.
    #[arg(long = "default-config")]
    default_config: bool,
    /// Print the version and exit.
    #[arg(long)]
    version: bool,
    /// Go online through this Codis dashboard.
    #[arg(long, value_name = "ADDR")]
    dashboard: Option<String>,
    /// Codis' ZooKeeper coordinator naming the dashboard.
    #[arg(long, value_name = "ADDR")]
    zookeeper: Option<String>,
    /// user:password for --zookeeper.
    #[arg(long = "zookeeper-auth", value_name = "U:P")]
    zookeeper_auth: Option<String>,
    /// Codis' etcd coordinator (v2 API) naming the dashboard.
    #[arg(long, value_name = "ADDR")]
    etcd: Option<String>,
    /// user:password for --etcd.
    #[arg(long = "etcd-auth", value_name = "U:P")]
    etcd_auth: Option<String>,
    /// Codis' filesystem coordinator root naming the dashboard.
    #[arg(long, value_name = "DIR")]
    filesystem: Option<String>,
}

fn main() {
    let args = Args::parse();
    if args.default_config {
        print!("{}", config::DEFAULT_TOML);
        return;
    }
    if args.version {
        println!("codis-proxy (rust) version {VERSION}");
        return;
    }
    fixed_mmap_threshold();
    if let Err(e) = run(args) {
        log::error(&e);
        eprintln!("codis-proxy: {e}");
        std::process::exit(1);
    }
}

fn load_config(args: &Args) -> Result<Config, String> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {path}: {e}"))?;
            Config::from_toml(&text).map_err(|e| format!("bad config {path}: {e}"))?
        }
        None => Config::default(),
    };
    if let Some(v) = &args.product_name {
        cfg.product_name = v.clone();
    }
    if let Some(v) = &args.product_auth {
        cfg.product_auth = v.clone();
    }
    if let Some(v) = &args.session_auth {
        cfg.session_auth = v.clone();
    }
    if let Some(v) = &args.host_proxy {
        cfg.proxy_addr = v.clone();
    }
    if let Some(v) = &args.host_admin {
        cfg.admin_addr = v.clone();
    }
    cfg.validate().map_err(|e| format!("bad config: {e}"))?;
    Ok(cfg)
}

fn run(args: Args) -> Result<(), String> {
    if let Some(path) = &args.log {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open log {path}: {e}"))?;
        log::set_file(f);
    }
    let level = log::parse_level(&args.log_level)
        .ok_or_else(|| format!("invalid --log-level {:?}", args.log_level))?;
    log::set_level(level);
    if args.ncpu == 0 {
        return Err("invalid --ncpu 0".into());
    }
    if let Some(n) = args.ulimit {
        ensure_nofile(n)?;
    }
    let workers = args.ncpu.max(args.max_ncpu.unwrap_or(0));
    let coordinator = match (
        &args.dashboard,
        &args.etcd,
        &args.filesystem,
        &args.zookeeper,
    ) {
        (None, None, None, None) => None,
        (Some(d), None, None, None) => Some(coordinator::Coordinator::Dashboard(d.clone())),
        (None, Some(e), None, None) => Some(coordinator::Coordinator::Etcd {
            addr: e.clone(),
            auth: args.etcd_auth.clone().unwrap_or_default(),
        }),
        (None, None, Some(f), None) => Some(coordinator::Coordinator::Filesystem(f.into())),
        (None, None, None, Some(z)) => Some(coordinator::Coordinator::ZooKeeper {
            addr: z.clone(),
            auth: args.zookeeper_auth.clone().unwrap_or_default(),
        }),
        _ => {
            return Err("give only one of --dashboard, --zookeeper, --etcd, --filesystem".into());
        }
    };
    if coordinator.is_some() && args.fillslots.is_some() {
        return Err(
            "--fillslots and a dashboard/coordinator are exclusive (the dashboard pushes the slots)"
                .into(),
        );
    }
    let cfg = Arc::new(load_config(&args)?);
    // Read and validate a slot file before anything listens (an etcd table
    // is read once running: etcd may be down, and the proxy waits for it).
    let source = match &args.fillslots {
        Some(spec) => {
            let store = cluster::store::Store::open(spec)?;
            let initial = match &store {
                cluster::store::Store::File(path) => {
                    let data = std::fs::read(path)
                        .map_err(|e| format!("cannot read slot file {}: {e}", path.display()))?;
                    Some(
                        cluster::table::parse_slot_source(&data)
                            .map_err(|e| format!("bad slot file {}: {e}", path.display()))?,
                    )
                }
                cluster::store::Store::Etcd { product, .. } => {
                    if *product != cfg.product_name {
                        return Err(format!(
                            "--fillslots names product {product:?} but product_name is {:?}",
                            cfg.product_name
                        ));
                    }
                    None
                }
            };
            Some(Source {
                spec: spec.clone(),
                store: Arc::new(store),
                initial,
            })
        }
        None => None,
    };
    if let Some(p) = &args.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pidfile {p}: {e}"))?;
    }
    // One CPU: a current-thread runtime (no work-stealing, no cross-thread
    // wake-ups); more: a multi-thread runtime with that many workers.
    let rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("cannot start runtime: {e}"))?;
    let res = rt.block_on(serve(cfg, source, coordinator));
    if let Some(p) = &args.pidfile {
        let _ = std::fs::remove_file(p);
    }
    res
}

/// glibc's malloc serves blocks from 256 KiB up with their own mappings,
/// returned to the system when freed. Its default threshold rises to the
/// largest block freed so far (up to 32 MiB), after which the reply
/// buffers of clients that stall (about one 1 MiB reply each) and of those
/// that come and go are carved from the heap arenas, whose freed holes stay
/// resident: 100 never-reading clients then peak near twice the bytes they
/// hold. Small buffers (the hot path) are unaffected.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fixed_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter; it is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}

/// `--ulimit N`: raises the soft open-files limit to `n` when it is lower
/// (up to the hard limit) and fails when it still is.
#[allow(unsafe_code)]
fn ensure_nofile(n: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, writable rlimit struct.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if got != 0 {
        return Err(format!(
            "cannot read the open-files limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    if lim.rlim_cur < n {
        let want = libc::rlimit {
            rlim_cur: n.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above; failure leaves the limit unchanged.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim.rlim_cur = want.rlim_cur;
        }
    }
    if lim.rlim_cur < n {
        return Err(format!(
            "ulimit too small: {}, should be at least {n}",
            lim.rlim_cur
        ));
    }
    Ok(())
}

/// The slot-table store given with `--fillslots`, and what a file held at
/// start (version, slots).
struct Source {
    spec: String,
    store: Arc<cluster::store::Store>,
    initial: Option<(Option<u64>, Vec<slots::Slot>)>,
}

async fn serve(
    cfg: Arc<Config>,
    source: Option<Source>,
    coordinator: Option<coordinator::Coordinator>,
) -> Result<(), String> {
    let router = Router::new(cfg.clone());
    let listener = tokio::net::TcpListener::bind(&cfg.proxy_addr)
        .await
        .map_err(|e| format!("cannot listen on proxy_addr {}: {e}", cfg.proxy_addr))?;
    let admin_listener = tokio::net::TcpListener::bind(&cfg.admin_addr)
        .await
        .map_err(|e| format!("cannot listen on admin_addr {}: {e}", cfg.admin_addr))?;
    log::info(&format!(
        "codis-proxy {VERSION}: proxy on {}, admin on {}",
        cfg.proxy_addr, cfg.admin_addr
    ));
    let id = admin::Identity::new(&cfg);
    let mut registrar = None;
    if let Some(src) = &source {
        *router
            .table_source
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = src.spec.clone();
        // Versioned tables (codis-ctl's) get a registration, written
        // before the table is read: a codis-ctl that does not see this
        // proxy registered wrote its change before the proxy read it.
        let versioned = match &src.initial {
            Some((v, _)) => v.is_some(),
            None => true,
        };
        if versioned {
            let r = Arc::new(watch::Registrar {
                store: src.store.clone(),
                entry: cluster::store::ProxyEntry {
                    token: id.token.clone(),
                    proxy_addr: coordinator::announce(&cfg.proxy_addr, "192.0.2.1:9"),
                    admin_addr: coordinator::announce(&cfg.admin_addr, "192.0.2.1:9"),
                    hostname: cluster::store::hostname(),
                    pid: std::process::id(),
                    start_time: id.start_time.clone(),
                    table_version: 0,
                    degraded: false,
                },
            });
            r.announce(&router).await;
            registrar = Some(r);
        }
        let mut baseline = None;
        match (&*src.store, &src.initial) {
            (cluster::store::Store::File(path), Some(first)) => {
                // The file again (it may have changed since it was checked).
                let data = std::fs::read(path).ok();
                let latest = data
                    .as_deref()
                    .and_then(|d| cluster::table::parse_slot_source(d).ok());
                let (version, s) = latest.as_ref().unwrap_or(first);
                router.fill(&slots::full_table(s)).await;
                router
                    .table_version
                    .store(version.unwrap_or(0), Ordering::SeqCst);
                log::info(&format!("loaded {} slots, online", s.len()));
                baseline = data;
            }
            _ => log::warn(&format!(
                "offline until the table is read from {}",
                src.store.describe()
            )),
        }
        match &*src.store {
            cluster::store::Store::File(path) => {
                tokio::spawn(watch::follow_file(
                    router.clone(),
                    path.clone(),
                    baseline,
                    registrar.clone(),
                ));
            }
            cluster::store::Store::Etcd { .. } => {
                if let Some(r) = &registrar {
                    tokio::spawn(watch::follow_etcd(router.clone(), r.clone()));
                }
            }
        }
    } else if coordinator.is_none() {
        log::warn(&format!("offline: {}", errors::OFFLINE_REASON));
    }
    let jodis = (!cfg.jodis_name.is_empty()).then(|| {
        tokio::spawn(coordinator::jodis(
            router.clone(),
            id.token.clone(),
            id.start_time.clone(),
        ))
    });
    {
        // qps, recomputed every second from ops.total.
        let r = router.clone();
        tokio::spawn(async move {
            let mut last = r.stats.ops_total.load(Ordering::Relaxed);
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let now = r.stats.ops_total.load(Ordering::Relaxed);
                r.stats
                    .qps
                    .store(now.saturating_sub(last), Ordering::Relaxed);
                last = now;
            }
        });
    }
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(admin::serve(
        router.clone(),
        admin_listener,
        stop_tx.clone(),
        id,
    ));
    if let Some(c) = coordinator {
        tokio::spawn(coordinator::go_online(router.clone(), c));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot install SIGTERM handler: {e}"))?;
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            a = listener.accept() => {
                let (mut sock, _) = match a {
                    Ok(x) => x,
                    Err(e) => {
                        log::warn(&format!("accept: {e}"));
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                next_id += 1;
                let r = router.clone();
                if !r.is_online() {
                    tokio::spawn(async move {
                        let _ = sock.write_all(errors::NOT_ONLINE).await;
                        let _ = sock.shutdown().await;
                    });
                    continue;
                }
                let alive = r.stats.sessions_alive.fetch_add(1, Ordering::SeqCst);
                r.stats.sessions_total.fetch_add(1, Ordering::Relaxed);
                if alive >= cfg.proxy_max_clients.max(0) as u64 {
                    r.stats.sessions_alive.fetch_sub(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let _ = sock.write_all(errors::MAX_CLIENTS).await;
                        let _ = sock.shutdown().await;
                    });
                    continue;
                }
                let id = next_id;
                tokio::spawn(async move {
                    session::serve(r.clone(), sock, id).await;
                    r.stats.sessions_alive.fetch_sub(1, Ordering::SeqCst);
                });
            }
            _ = term.recv() => { log::info("SIGTERM: shutting down"); break; }
            _ = tokio::signal::ctrl_c() => { log::info("SIGINT: shutting down"); break; }
            _ = stop_rx.changed() => { log::info("admin shutdown: shutting down"); break; }
        }
    }
    // Stop accepting; sessions stop reading, answer what they already read,
    // and close (bounded wait).
    drop(listener);
    router.closed.store(true, Ordering::SeqCst);
    router.stop_sessions();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while router.stats.sessions_alive.load(Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if let Some(r) = registrar {
        r.withdraw().await;
    }
    if let Some(j) = jodis {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), j).await;
    }
    Ok(())
}
