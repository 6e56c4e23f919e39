//! Integration-test harness: starts `codis-server` (and, for differential
//! tests, a real `redis-server` 7.0) on free loopback ports, each in its own
//! temporary directory, and talks to them with a tiny blocking RESP client
//! that returns the exact raw bytes of every reply.
//!
//! * [`codis_server_bin`] finds our binary: `$CODIS_RS_SERVER_BIN`, or else it
//!   runs `cargo build -p server --bin codis-server` once per test process,
//!   into the same target directory and profile as the running test binary.
//! * [`codis32_bin`] finds a real Codis 3.2 `codis-server` for interop tests:
//!   `$CODIS_SERVER_BIN` (tests skip with a printed notice when it is unset);
//!   [`Server::start_codis32`] starts it.
//! * [`Server::start`] / [`RedisServer::start`] spawn a server, wait until it
//!   answers PING, and kill it by pid (SIGTERM, then SIGKILL) on drop.
//!   `RedisServer::start` returns `None` (after printing why) when
//!   `redis-server` is not installed, unless `REQUIRE_REDIS=1`, which makes it
//!   panic instead.
//! * [`Conn`] sends commands and reads back one complete reply at a time
//!   (RESP2 and RESP3, see [`resp::frame_len`]).

pub mod cluster;
pub mod data;
pub mod proxy;
pub mod repl;
pub mod resp;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use resp::{Value, escape, escape_max, parse_one, parse_value};

/// How long a server may take to answer its first PING.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default read timeout of a [`Conn`]: generous, for debug builds on a busy
/// 2-core machine.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether tests must fail (instead of skip) when redis tools are missing.
pub fn require_redis() -> bool {
    std::env::var("REQUIRE_REDIS")
        .map(|v| v == "1")
        .unwrap_or(false)
}

/// Looks `name` up on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Finds a redis tool (`redis-server`, `redis-benchmark`, `redis-cli`) on
/// `PATH`. When it is missing: panics if `REQUIRE_REDIS=1`, else prints a
/// skip notice and returns `None`.
pub fn redis_tool(name: &str) -> Option<PathBuf> {
    match which(name) {
        Some(p) => Some(p),
        None if require_redis() => panic!("{name} not found on PATH and REQUIRE_REDIS=1"),
        None => {
            eprintln!(
                "SKIPPED: {name} not found on PATH (set REQUIRE_REDIS=1 to make this a failure)"
            );
            None
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Path of our `codis-server` binary (`$CODIS_RS_SERVER_BIN`, else built on
/// first use, once per test process). Panics with cargo's output if the
/// build fails.
pub fn codis_server_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_or_build) {
        Ok(p) => p.clone(),
        Err(e) => panic!("cannot get codis-server: {e}"),
    }
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CODIS_RS_SERVER_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("CODIS_RS_SERVER_BIN={} is not a file", p.display()))
        };
    }
    // The test binary lives in <target>/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "-p", "server", "--bin", "codis-server"])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    eprintln!(
        "[harness] building codis-server ({profile}) into {}",
        target_dir.display()
    );
    let out = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", cargo.display()))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p server failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = profile_dir.join("codis-server");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} missing after build", bin.display()))
    }
}

/// A path named by the environment variable `var` that `ok` accepts (a
/// set variable naming something else is a panic, `what` saying what it
/// must name); unset: a `SKIPPED: ...` notice tagged with the calling
/// test's thread name, `why` saying what is missing, and `None`.
fn env_path(var: &str, ok: impl Fn(&Path) -> bool, what: &str, why: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|p| !p.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(ok(&p), "{var}={} is not {what}", p.display());
            Some(p)
        }
        None => {
            let test = std::thread::current()
                .name()
                .unwrap_or("<unnamed>")
                .to_string();
            eprintln!("SKIPPED: {test}: {why}");
            None
        }
    }
}

/// Path of a real Codis 3.2 `codis-server` (Redis 3.2.11 + Codis patches)
/// for interop tests: `$CODIS_SERVER_BIN` when it is set and names a file.
/// Otherwise prints a `SKIPPED: ...` notice (tagged with the calling test's
/// thread name) and returns `None`; a set variable naming no file is a
/// panic, not a skip.
pub fn codis32_bin() -> Option<PathBuf> {
    env_path(
        "CODIS_SERVER_BIN",
        |p| p.is_file(),
        "a file",
        "no Codis 3.2 codis-server (set CODIS_SERVER_BIN to its path to run the interop tests)",
    )
}

/// The directory of the real Codis 3.2 Go binaries (`codis-dashboard`,
/// `codis-admin`, `codis-fe`) for the control-plane interop tests:
/// `$CODIS_BIN` when set. Otherwise prints a `SKIPPED: ...` notice and
/// returns `None`; a set variable naming no such directory is a panic.
pub fn codis_bin_dir() -> Option<PathBuf> {
    env_path(
        "CODIS_BIN",
        |p| p.join("codis-dashboard").is_file() && p.join("codis-admin").is_file(),
        "a directory holding codis-dashboard and codis-admin",
        "no Codis 3.2 binaries (set CODIS_BIN to the directory holding codis-dashboard and codis-admin)",
    )
}

/// A port that was free a moment ago (the OS picks it; it is released right
/// away, so a start may still race with another process: [`Server`] retries).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// Which program a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Our codis-server.
    Codis,
    /// A real redis-server 7.0.
    Redis,
    /// A real Codis 3.2 codis-server (see [`codis32_bin`]).
    Codis32,
    /// A redis-sentinel 7.0 (its config file is `sentinel.conf` in its dir).
    Sentinel,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Codis => "codis-server",
            Kind::Redis => "redis-server",
            Kind::Codis32 => "codis32-server",
            Kind::Sentinel => "redis-sentinel",
        }
    }
}

/// A running server process on 127.0.0.1, killed on drop.
pub struct Server {
    child: Child,
    port: u16,
    kind: Kind,
    dir: Dir,
    args: Vec<String>,
}

/// A server's working directory: its own temporary one, or one the test
/// keeps across restarts ([`Server::start_in`]).
enum Dir {
    Own(tempfile::TempDir),
    Given(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Own(d) => d.path(),
            Dir::Given(p) => p,
        }
    }
}

/// Starts real redis-server 7.0 instances (see [`Server`]).
pub struct RedisServer;

/// Starts redis-sentinel 7.0 processes (see [`Server`]).
pub struct Sentinel;

impl Sentinel {
    /// A redis-sentinel with `conf` as its config file, working in `dir`
    /// (kept afterwards; Sentinel rewrites the file there), or `None` when
    /// it is not installed (and `REQUIRE_REDIS` is not `1`).
    pub fn start_in(dir: &Path, conf: &str) -> Option<Server> {
        let bin = redis_tool("redis-sentinel")?;
        std::fs::write(dir.join("sentinel.conf"), conf).expect("write sentinel.conf");
        Some(Server::spawn(Kind::Sentinel, &bin, Some(dir), &[]).unwrap_or_else(|e| panic!("{e}")))
    }
}

impl RedisServer {
    /// A fresh redis-server, or `None` when it is not installed (and
    /// `REQUIRE_REDIS` is not `1`).
    pub fn start() -> Option<Server> {
        Self::start_with(&[])
    }

    /// Like [`RedisServer::start`], with extra `--name value` arguments.
    pub fn start_with(extra: &[&str]) -> Option<Server> {
        let bin = redis_tool("redis-server")?;
        Some(Server::spawn(Kind::Redis, &bin, None, extra).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Like [`RedisServer::start_with`], working in `dir` (kept afterwards).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Option<Server> {
        let bin = redis_tool("redis-server")?;
        Some(Server::spawn(Kind::Redis, &bin, Some(dir), extra).unwrap_or_else(|e| panic!("{e}")))
    }
}

impl Server {
    /// A fresh codis-server with `extra` arguments (`["--requirepass", "x"]`).
    /// Panics (with the server's log) if it does not come up.
    ///
    /// On Linux the process also gets SIGKILL if the *thread* that started
    /// it exits without dropping the `Server` (so a killed test run leaves no
    /// servers behind): start servers on the thread that owns them.
    pub fn start(extra: &[&str]) -> Server {
        Self::try_start(extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Server::start`], returning the failure instead of panicking.
    pub fn try_start(extra: &[&str]) -> Result<Server, String> {
        Self::spawn(Kind::Codis, &codis_server_bin(), None, extra)
    }

    /// A codis-server working in `dir`, which outlives it (restart tests:
    /// the next server started in the same `dir` finds its files). The log
    /// (`server.log` there) is appended to.
    pub fn try_start_in(dir: &Path, extra: &[&str]) -> Result<Server, String> {
        Self::spawn(Kind::Codis, &codis_server_bin(), Some(dir), extra)
    }

    /// [`Server::try_start_in`], panicking on failure.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        Self::try_start_in(dir, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fresh Codis 3.2 codis-server ([`codis32_bin`]) with `extra`
    /// redis-server-style arguments, or `None` (after a printed skip notice)
    /// when `$CODIS_SERVER_BIN` is not set. It gets the same argv as the
    /// others (`--port P --bind 127.0.0.1 --save '' --appendonly no --dir D`),
    /// all of which Redis 3.2 understands. Panics (with its log) if it does
    /// not come up.
    pub fn start_codis32(extra: &[&str]) -> Option<Server> {
        let bin = codis32_bin()?;
        Some(Self::spawn(Kind::Codis32, &bin, None, extra).unwrap_or_else(|e| panic!("{e}")))
    }

    /// [`Server::start_codis32`] working in `dir` (kept afterwards).
    pub fn start_codis32_in(dir: &Path, extra: &[&str]) -> Option<Server> {
        let bin = codis32_bin()?;
        Some(Self::spawn(Kind::Codis32, &bin, Some(dir), extra).unwrap_or_else(|e| panic!("{e}")))
    }

    /// [`Server::start_in`] on `port` (a restarted master its replicas
    /// reconnect to): no retry on another port.
    pub fn start_in_on(dir: &Path, port: u16, extra: &[&str]) -> Server {
        Self::spawn_on(
            Kind::Codis,
            &codis_server_bin(),
            Some(dir),
            Some(port),
            extra,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn spawn(
        kind: Kind,
        bin: &Path,
        given: Option<&Path>,
        extra: &[&str],
    ) -> Result<Server, String> {
        Self::spawn_on(kind, bin, given, None, extra)
    }

    fn spawn_on(
        kind: Kind,
        bin: &Path,
        given: Option<&Path>,
        fixed_port: Option<u16>,
        extra: &[&str],
    ) -> Result<Server, String> {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let dir = match given {
                Some(d) => Dir::Given(d.to_path_buf()),
                None => Dir::Own(
                    tempfile::Builder::new()
                        .prefix(&format!("{}-", kind.name()))
                        .tempdir()
                        .map_err(|e| format!("tempdir: {e}"))?,
                ),
            };
            let port = fixed_port.unwrap_or_else(free_port);
            let dir_s = dir.path().display().to_string();
            let port_s = port.to_string();
            let mut args: Vec<String> = if kind == Kind::Sentinel {
                vec![dir.path().join("sentinel.conf").display().to_string()]
            } else {
                Vec::new()
            };
            args.extend(
                [
                    "--port",
                    &port_s,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    &dir_s,
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            if matches!(kind, Kind::Codis | Kind::Redis) {
                // A diskless full sync starts at once (Redis' default waits
                // 5 s for more replicas); a test may ask otherwise.
                args.extend(["--repl-diskless-sync-delay".to_string(), "0".to_string()]);
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("server.log"))
                .map_err(|e| format!("log file: {e}"))?;
            let log2 = log.try_clone().map_err(|e| format!("log file: {e}"))?;
            let mut cmd = Command::new(bin);
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log2));
            #[cfg(target_os = "linux")]
            {
                use std::os::unix::process::CommandExt;
                // SAFETY: prctl is async-signal-safe; it only makes the
                // child die if the spawning thread goes away without
                // dropping the Server (e.g. the test process is killed).
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
            }
            let child = cmd
                .spawn()
                .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
            let mut srv = Server {
                child,
                port,
                kind,
                dir,
                args,
            };
            match srv.wait_ready() {
                Ok(()) => return Ok(srv),
                Err(e) => {
                    let exited = srv.child.try_wait().ok().flatten().is_some();
                    last_err = format!(
                        "{} did not start on port {port}: {e}\n--- log ---\n{}",
                        kind.name(),
                        srv.log()
                    );
                    // Port taken by someone else between free_port() and bind: retry.
                    if fixed_port.is_some()
                        || !(exited && srv.log().to_ascii_lowercase().contains("in use"))
                    {
                        return Err(last_err);
                    }
                }
            }
        }
        Err(last_err)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("process exited early ({status})"));
            }
            if let Ok(mut c) = Conn::connect_timeout(self.port, Duration::from_secs(2)) {
                // Any status reply means the command loop runs (with
                // requirepass it is -NOAUTH), except -LOADING: the dataset
                // is still loading.
                if let Ok(r) = c.try_send(&["PING"])
                    && (r.first() == Some(&b'+') || r.first() == Some(&b'-'))
                    && !r.starts_with(b"-LOADING")
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no reply to PING within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The arguments the process was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The server's own temporary working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read(self.dir.path().join("server.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of [`Server::log`].
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A new connection (panics if it cannot connect).
    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
            .unwrap_or_else(|e| panic!("connect to {} on {}: {e}", self.kind.name(), self.port))
    }

    /// Stops the server now (same as dropping it).
    pub fn stop(self) {}

    /// `kill -9`: the process dies at once, saving nothing.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (up to `within`) for the process to exit;
    /// returns whether it did (a server that cannot save stays up).
    pub fn sigterm(&mut self, within: Duration) -> bool {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain syscall on our own unreaped child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        self.wait_exit(within)
    }

    /// Sends `cmd` (SHUTDOWN, with its options) on `c`, which it closes, and
    /// asserts the process exits within 30 s.
    #[track_caller]
    pub fn shutdown_with(&mut self, mut c: Conn, cmd: &[&str]) {
        let _ = c.try_send(cmd);
        drop(c);
        assert!(
            self.wait_exit(Duration::from_secs(30)),
            "{} did not exit after {cmd:?}",
            self.kind.name()
        );
    }

    /// Waits (up to `within`) for the process to exit by itself (SHUTDOWN).
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn terminate(&mut self) {
        if !self.is_alive() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain syscall on the pid of our own child, which has not
            // been reaped yet (try_wait said it is running), so the pid cannot
            // have been reused.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if self.wait_exit(Duration::from_secs(5)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Why [`Conn::read_reply`] returned no reply.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection; `partial` holds unparsed bytes.
    Closed {
        partial: Vec<u8>,
    },
    /// No complete reply within the read timeout.
    Timeout {
        partial: Vec<u8>,
    },
    /// The bytes are not RESP.
    Protocol {
        err: resp::FrameError,
        data: Vec<u8>,
    },
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed { partial } => write!(
                f,
                "<connection closed> {}",
                if partial.is_empty() {
                    String::new()
                } else {
                    escape(partial)
                }
            ),
            ReadError::Timeout { partial } => write!(
                f,
                "<timeout> {}",
                if partial.is_empty() {
                    String::new()
                } else {
                    escape(partial)
                }
            ),
            ReadError::Protocol { err, data } => write!(f, "<not RESP: {err}> {}", escape(data)),
            ReadError::Io(e) => write!(f, "<io error: {e}>"),
        }
    }
}

impl std::error::Error for ReadError {}

/// A blocking RESP connection that returns raw reply bytes.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    pub fn connect(port: u16) -> io::Result<Conn> {
        Self::connect_timeout(port, Duration::from_secs(5))
    }

    pub fn connect_timeout(port: u16, timeout: Duration) -> io::Result<Conn> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            timeout: READ_TIMEOUT,
        })
    }

    /// Sets the timeout of every following read (and write).
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
        let _ = self.stream.set_write_timeout(Some(t));
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends one command (multibulk) and returns its raw reply; panics on
    /// timeout, close or I/O error.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.try_send(args)
            .unwrap_or_else(|e| panic!("{}: {e}", describe(args)))
    }

    /// [`Conn::send`] that returns failures.
    pub fn try_send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Vec<u8>, ReadError> {
        self.write_raw(&resp::encode_command(args))
            .map_err(ReadError::Io)?;
        self.read_reply()
    }

    /// Sends a command written like a redis-cli line (`SET "a b" 1`, split
    /// with Redis' quoting rules) and returns its raw reply.
    pub fn cmd(&mut self, line: &str) -> Vec<u8> {
        let args = protocol::resp::split_args(line.as_bytes())
            .unwrap_or_else(|| panic!("unbalanced quotes in {line:?}"));
        self.send(&args)
    }

    /// [`Conn::cmd`], decoded.
    pub fn value(&mut self, line: &str) -> Value {
        let raw = self.cmd(line);
        parse_one(&raw).unwrap_or_else(|| panic!("{line}: undecodable reply {}", escape(&raw)))
    }

    /// [`Conn::send`], decoded.
    pub fn send_value<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        let raw = self.send(args);
        parse_one(&raw)
            .unwrap_or_else(|| panic!("{}: undecodable reply {}", describe(args), escape(&raw)))
    }

    /// Writes raw bytes, then reads one reply.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<Vec<u8>, ReadError> {
        self.write_raw(bytes).map_err(ReadError::Io)?;
        self.read_reply()
    }

    /// Writes raw bytes (all of them).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads exactly one complete reply (bytes after it stay buffered for the
    /// next call).
    pub fn read_reply(&mut self) -> Result<Vec<u8>, ReadError> {
        let deadline = Instant::now() + self.timeout;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match resp::frame_len(&self.buf) {
                Ok(Some(n)) => {
                    let rest = self.buf.split_off(n);
                    return Ok(std::mem::replace(&mut self.buf, rest));
                }
                Ok(None) => {}
                Err(err) => {
                    return Err(ReadError::Protocol {
                        err,
                        data: std::mem::take(&mut self.buf),
                    });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadError::Timeout {
                    partial: std::mem::take(&mut self.buf),
                });
            }
            let _ = self
                .stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(ReadError::Closed {
                        partial: std::mem::take(&mut self.buf),
                    });
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ReadError::Timeout {
                        partial: std::mem::take(&mut self.buf),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ReadError::Closed {
                        partial: std::mem::take(&mut self.buf),
                    });
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Everything the peer sends until it closes the connection (`true`), or
    /// until nothing arrived for `idle`, or `max` passed (`false`). Buffered,
    /// not yet returned bytes come first. A connection reset counts as closed.
    pub fn read_until_close(&mut self, idle: Duration, max: Duration) -> (Vec<u8>, bool) {
        let mut out = std::mem::take(&mut self.buf);
        let deadline = Instant::now() + max;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (out, false);
            }
            let _ = self
                .stream
                .set_read_timeout(Some(idle.min(left).max(Duration::from_millis(1))));
            match self.stream.read(&mut chunk) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return (out, false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return (out, true),
            }
        }
    }

    /// Half-closes the writing side (the server sees EOF).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// `SET a b`-style rendering of argv for messages.
pub fn describe<A: AsRef<[u8]>>(args: &[A]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|a| {
            let a = a.as_ref();
            if !a.is_empty()
                && a.iter()
                    .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
            {
                String::from_utf8_lossy(a).into_owned()
            } else {
                escape_max(a, 80)
            }
        })
        .collect();
    parts.join(" ")
}

/// Asserts that a raw reply equals `expected` (as bytes), with escaped output.
#[track_caller]
pub fn assert_reply(got: &[u8], expected: &[u8]) {
    assert!(
        got == expected,
        "reply mismatch\n  expected {}\n  got      {}",
        escape(expected),
        escape(got)
    );
}

/// Sends `cmds` pipelined, `window` at a time, and panics on an error
/// reply (fills for migration and stream tests).
pub fn pipeline(c: &mut Conn, cmds: &[Vec<Vec<u8>>], window: usize) {
    for w in cmds.chunks(window.max(1)) {
        let mut bytes = Vec::new();
        for cmd in w {
            bytes.extend_from_slice(&resp::encode_command(cmd));
        }
        c.write_raw(&bytes).unwrap();
        for cmd in w {
            let r = c.read_reply().unwrap();
            assert!(
                !r.starts_with(b"-"),
                "{}: {}",
                String::from_utf8_lossy(&cmd[0]),
                escape(&r)
            );
        }
    }
}
