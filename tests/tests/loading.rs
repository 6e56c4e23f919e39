//! The start-up load with the port open (issue 12), side by side with
//! redis-server 7.0.15: while the dataset loads (slowed down with the
//! hidden `key-load-delay`, as Redis' own tests do), commands that need it
//! get `-LOADING`, INFO persistence reports `loading:1` and the progress
//! fields, and neither SIGTERM nor SHUTDOWN SAVE can replace the file with
//! a partial dataset. Afterwards everything is there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::data::persistence_field;
use tests::{Conn, Server, codis_server_bin, escape, free_port, redis_tool};

const KEYS: usize = 3000;
const LOADING: &[u8] = b"-LOADING Redis is loading the dataset in memory\r\n";

/// A `dump.rdb` of `KEYS` keys in `dir`, written by our server; returns its
/// path.
fn make_rdb(dir: &Path) -> PathBuf {
    let srv = Server::start_in(dir, &["--enable-debug-command", "yes"]);
    let mut c = srv.conn();
    assert_eq!(
        c.send(&["DEBUG", "POPULATE", &KEYS.to_string()]),
        b"+OK\r\n"
    );
    assert_eq!(c.cmd("SAVE"), b"+OK\r\n");
    srv.kill9();
    dir.join("dump.rdb")
}

/// `bin` on a fresh port over `dir`, loading 1 ms per key.
fn spawn(bin: &Path, dir: &Path, extra: &[&str]) -> (Child, u16) {
    let port = free_port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--dir", &dir.display().to_string()])
        .args(["--key-load-delay", "1000"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    (child, port)
}

fn connect(port: u16) -> Conn {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(c) = Conn::connect(port) {
            return c;
        }
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn info_field(text: &str, field: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn redis_bin() -> Option<PathBuf> {
    redis_tool("redis-server")
}

/// -LOADING for what needs the dataset, INFO's loading fields meanwhile,
/// then the whole dataset: the same on both servers.
#[test]
fn clients_get_loading_while_the_dataset_loads() {
    let mut bins = vec![("codis-server", codis_server_bin())];
    bins.extend(redis_bin().map(|b| ("redis-server", b)));
    for (name, bin) in bins {
        let dir = tempfile::tempdir().unwrap();
        let rdb = make_rdb(dir.path());
        let size = std::fs::metadata(&rdb).unwrap().len();
        // Redis serves clients between loaded chunks of this size (ours
        // serves them throughout).
        let extra: &[&str] = if name == "redis-server" {
            &[
                "--save",
                "",
                "--loading-process-events-interval-bytes",
                "1024",
            ]
        } else {
            &["--save", ""]
        };
        let (child, port) = spawn(&bin, dir.path(), extra);
        let mut c = connect(port);
        assert_eq!(c.cmd("PING"), LOADING, "{name}: PING while loading");
        assert_eq!(c.cmd("GET key:1"), LOADING, "{name}: GET while loading");
        assert_eq!(c.cmd("DBSIZE"), LOADING, "{name}: DBSIZE while loading");
        // A transaction cannot queue what loading refuses.
        assert_eq!(c.cmd("MULTI"), b"+OK\r\n", "{name}");
        assert_eq!(c.cmd("SET a 1"), LOADING, "{name}");
        assert!(
            c.cmd("EXEC").starts_with(b"-EXECABORT"),
            "{name}: EXEC after a refused command"
        );
        let info = c.value("INFO persistence").as_text().unwrap_or_default();
        assert_eq!(
            info_field(&info, "loading").as_deref(),
            Some("1"),
            "{name}: {info}"
        );
        assert_eq!(
            info_field(&info, "loading_total_bytes"),
            Some(size.to_string()),
            "{name}: {info}"
        );
        let loaded: u64 = info_field(&info, "loading_loaded_bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {info}"));
        assert!(loaded < size, "{name}: loaded {loaded} of {size}");
        let used: u64 = info_field(&info, "loading_rdb_used_mem")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {info}"));
        assert!(used > 0, "{name}: {info}");
        for f in [
            "loading_start_time",
            "loading_loaded_perc",
            "loading_eta_seconds",
        ] {
            assert!(info_field(&info, f).is_some(), "{name}: no {f} in {info}");
        }
        // Hidden from patterns, readable by name, and live.
        assert_eq!(
            c.cmd("CONFIG GET key-load-delay"),
            b"*2\r\n$14\r\nkey-load-delay\r\n$4\r\n1000\r\n",
            "{name}"
        );
        let all = escape(&c.cmd("CONFIG GET *"));
        assert!(
            !all.contains("key-load-delay"),
            "{name}: listed by CONFIG GET *"
        );
        assert_eq!(c.cmd("CONFIG SET key-load-delay 0"), b"+OK\r\n", "{name}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = c.cmd("PING");
            if r == b"+PONG\r\n" {
                break;
            }
            assert_eq!(r, LOADING, "{name}");
            assert!(Instant::now() < deadline, "{name}: still loading");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c.cmd("DBSIZE"), format!(":{KEYS}\r\n").as_bytes(), "{name}");
        assert_eq!(persistence_field(&mut c, "loading"), "0", "{name}");
        let info = c.value("INFO persistence").as_text().unwrap_or_default();
        assert!(
            info_field(&info, "loading_start_time").is_none(),
            "{name}: {info}"
        );
        stop(child);
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// SIGTERM, or SHUTDOWN SAVE, while loading: the server exits without
/// saving (Redis' prepareForShutdown during loading), so the file it was
/// loading is intact and loads whole next time.
#[test]
fn shutdown_while_loading_never_saves_a_partial_dataset() {
    for how in ["SIGTERM", "SHUTDOWN SAVE"] {
        let dir = tempfile::tempdir().unwrap();
        let rdb = make_rdb(dir.path());
        let before = std::fs::read(&rdb).unwrap();
        // Save points: a normal SIGTERM would save.
        let (mut child, port) = spawn(&codis_server_bin(), dir.path(), &["--save", "3600 1"]);
        let mut c = connect(port);
        assert_eq!(c.cmd("PING"), LOADING, "{how}");
        std::thread::sleep(Duration::from_millis(300));
        if how == "SIGTERM" {
            let ok = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok);
        } else {
            // The connection closes without a reply.
            let _ = c.try_send(&["SHUTDOWN", "SAVE"]);
        }
        assert!(
            wait_exit(&mut child, Duration::from_secs(10)),
            "{how}: no clean exit while loading"
        );
        assert!(
            std::fs::read(&rdb).unwrap() == before,
            "{how}: the file changed"
        );
        let srv = Server::start_in(dir.path(), &[]);
        assert_eq!(
            srv.conn().cmd("DBSIZE"),
            format!(":{KEYS}\r\n").as_bytes(),
            "{how}"
        );
    }
}
