//! `codis-server [config-file] [--name value ...]`: redis-server's command line.
//! Builds the executor chosen by `io-threads` (1 = a single-threaded tokio
//! runtime, N > 1 = N worker threads sharing the slot-locked keyspace; see
//! docs/design.md), binds, serves, and exits cleanly on SIGTERM/SIGINT or
//! SHUTDOWN.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use server::config::{self, Config};
use server::server::Server;
use server::{log, net, notice, warning};

/// Every allocation is counted: `used_memory` and maxmemory (alloc.rs).
#[global_allocator]
static ALLOC: server::alloc::Counting = server::alloc::Counting;

fn main() {
    server::alloc::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v") | Some("--version") => {
            println!(
                "Redis server v={} sha=00000000:0 malloc=libc bits=64 build=codis-rs-{}",
                config::VERSION,
                env!("CARGO_PKG_VERSION")
            );
            return;
        }
        Some("-h") | Some("--help") => {
            println!("Usage: ./codis-server [/path/to/redis.conf] [options] [-]");
            println!("       ./codis-server - (read config from stdin)");
            println!("       ./codis-server -v or --version");
            println!("       ./codis-server -h or --help");
            println!();
            println!("Examples:");
            println!("       ./codis-server (run the server with default config)");
            println!("       ./codis-server /etc/redis/6379.conf");
            println!("       ./codis-server --port 7777");
            println!("       ./codis-server /etc/myredis.conf --loglevel verbose");
            return;
        }
        _ => {}
    }
    let cfg = match config::load(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(1);
        }
    };
    let config_file = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_default();
    std::process::exit(run(cfg, config_file));
}

fn run(cfg: Config, config_file: String) -> i32 {
    if let Err(e) = log::init(cfg.log_level(), &cfg.logfile) {
        eprintln!("Can't open the log file: {e}");
        return 1;
    }
    if !cfg.dir.is_empty()
        && let Err(e) = std::env::set_current_dir(&cfg.dir)
    {
        eprintln!("Can't chdir to '{}': {e}", cfg.dir);
        return 1;
    }
    if cfg.daemonize {
        warning!(
            "daemonize yes is accepted but codis-server always stays in the foreground (use a supervisor)"
        );
    }
    let threads = cfg.io_threads.max(1);
    // A multi-thread runtime even for one executor thread: a script that
    // turns busy hands the worker to a new thread (`block_in_place`), which
    // answers the other clients (-BUSY, SCRIPT KILL, SHUTDOWN NOSAVE) while
    // the script runs on; a current-thread runtime cannot re-enter itself.
    // Measured against the current-thread runtime: about 2-3% more server
    // CPU per request (docs/performance.md).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .on_thread_stop(server::alloc::flush_thread)
        .enable_all()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Can't start the executor: {e}");
            return 1;
        }
    };
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let srv = Server::new(cfg, exe, config_file);
    if let Err(e) = srv.load_acl_at_startup() {
        warning!("{e}");
        return 1;
    }
    srv.stats
        .used_memory_startup
        .store(server::alloc::used(), Relaxed);
    let code = rt.block_on(serve(srv.clone()));
    if srv.scripts.busy() {
        // SHUTDOWN NOSAVE during a busy script: its executor thread never
        // returns, so the runtime is not waited for (the process exits).
        rt.shutdown_background();
    }
    code
}

async fn serve(srv: Arc<Server>) -> i32 {
    let (binds, port, pidfile) = {
        let c = srv.config();
        (c.bind.clone(), c.port, c.pidfile.clone())
    };
    notice!("oO0OoO0OoO0Oo codis-server is starting oO0OoO0OoO0Oo");
    let listeners = match net::bind_all(&binds, port).await {
        Ok(l) => l,
        Err(e) => {
            warning!("Warning: Could not create server TCP listening socket {e}");
            warning!("Failed listening on port {port} (TCP), aborting.");
            return 1;
        }
    };
    if let Some(actual) = listeners.first().and_then(|l| l.local_addr().ok()) {
        srv.port.store(actual.port() as u64, Relaxed);
    }
    {
        let c = srv.config();
        let outside = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .any(|a| net::reachable_from_outside(&a));
        if outside && c.requirepass.is_none() {
            if c.protected_mode {
                warning!(
                    "WARNING: no password is set and the server listens beyond loopback: protected mode refuses every client that is not local (set requirepass to serve them)."
                );
            } else {
                warning!(
                    "WARNING: no password is set, protected mode is off and the server listens beyond loopback: anyone who can reach the port can read and change every key."
                );
            }
        }
    }
    if !pidfile.is_empty()
        && let Err(e) = std::fs::write(&pidfile, format!("{}\n", std::process::id()))
    {
        warning!("Failed to write PID file: {e}");
    }
    let mode = if srv.threads == 1 {
        "single-threaded executor"
    } else {
        "multi-threaded executor"
    };
    notice!(
        "codis-server {} (Redis {} compatible), pid={}, port={}, mode=standalone, {} ({} thread{}), 1024 slots x {} dbs",
        env!("CARGO_PKG_VERSION"),
        config::VERSION,
        std::process::id(),
        srv.port.load(Relaxed),
        mode,
        srv.threads,
        if srv.threads == 1 { "" } else { "s" },
        srv.ks.db_count()
    );
    // The data files load while the port is open, as Redis: clients
    // connected meanwhile get -LOADING for what needs the dataset. The
    // cron (save points, expiry, AOF fsync) starts once it is loaded.
    // A replica (`replicaof`) loads keys already expired (its master's DEL
    // removes them) and then connects to its master.
    let replicaof = srv.config().replicaof.clone();
    if replicaof.is_some() {
        srv.repl.link.is_replica.store(true, Relaxed);
        srv.repl.refresh_gate();
    } else if !srv.config().appendonly {
        // A master takes up its RDB's replication history (Redis 7.0).
        srv.repl.link.restoring.store(true, Relaxed);
    }
    srv.persist.begin_loading();
    let loader = srv.clone();
    let mut load = tokio::task::spawn_blocking(move || server::persist::load_at_startup(&loader));
    // Clients are accepted once the load knows its size (until then they
    // wait in the listen backlog), or once it is over.
    while !srv.persist.loading.sized() && !load.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    for l in listeners {
        tokio::spawn(net::accept_loop(srv.clone(), l));
    }
    tokio::select! {
        r = &mut load => {
            if r.is_err() {
                warning!("Loading the data files failed unexpectedly, exiting.");
                return 1;
            }
        }
        why = wait_for_shutdown(&srv) => {
            // Nothing to save while loading (Redis' prepareForShutdown).
            notice!("{why} while loading the dataset, exiting without saving.");
            if !pidfile.is_empty() {
                let _ = std::fs::remove_file(&pidfile);
            }
            std::process::exit(0);
        }
    }
    srv.repl.link.restoring.store(false, Relaxed);
    notice!("Ready to accept connections tcp");
    if let Some(m) = replicaof {
        let from_rdb = !srv.config().appendonly;
        server::repl::replica::start(&srv, m, from_rdb);
    }
    tokio::spawn(srv.clone().cron());
    loop {
        let why = wait_for_shutdown(&srv).await;
        if srv.shutting_down.load(Relaxed) {
            // SHUTDOWN: the command has saved (or was told not to).
            break;
        }
        notice!("{why} scheduling shutdown...");
        notice!("User requested shutdown...");
        if !server::repl::wait_before_shutdown(&srv).await {
            continue;
        }
        if server::persist::final_save(&srv, false, false) {
            break;
        }
        warning!(
            "{why} but errors trying to shut down the server, check the logs for more information"
        );
    }
    srv.request_shutdown();
    for c in srv.clients.all() {
        c.kill();
    }
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    notice!("codis-server is now ready to exit, bye bye...");
    0
}

async fn wait_for_shutdown(srv: &Server) -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            srv.shutdown.notified().await;
            return "Shutdown requested";
        };
        tokio::select! {
            _ = term.recv() => "Received SIGTERM",
            _ = int.recv() => "Received SIGINT",
            _ = srv.shutdown.notified() => "User requested shutdown",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Received SIGINT"
    }
}
