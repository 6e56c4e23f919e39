//! codis-proxy harness shared by the proxy integration tests: builds and
//! starts `codis-proxy` on free loopback ports with a slot file, and small
//! helpers to rewrite that file and query the admin API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Conn, codis_server_bin, free_port};

/// Path of `codis-proxy`, built once (same target dir and profile as us).
pub fn proxy_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bin("proxy", "codis-proxy"))
        .clone()
}

/// Path of `codis-ctl`, built once (same target dir and profile as us).
pub fn ctl_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bin("cluster", "codis-ctl"))
        .clone()
}

/// Builds one binary of the workspace into the harness's target dir.
fn build_bin(package: &str, bin: &str) -> PathBuf {
    {
        // Build codis-server first: the harness knows where the target dir is.
        let server = codis_server_bin();
        let profile_dir = server.parent().expect("profile dir").to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let profile = profile_dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("debug")
            .to_string();
        let cargo = std::env::var_os("CARGO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("cargo"));
        let mut cmd = Command::new(cargo);
        cmd.current_dir(crate::workspace_root())
            .args(["build", "--quiet", "-p", package, "--bin", bin])
            .env("CARGO_TARGET_DIR", &target_dir);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd.output().expect("run cargo");
        assert!(
            out.status.success(),
            "cargo build -p {package} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir.join(bin)
    }
}

/// A running codis-proxy (killed on drop).
pub struct Proxy {
    pub child: Child,
    pub port: u16,
    pub admin: u16,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts a proxy; `slots` is the slot file's JSON (None: no --fillslots).
    ///
    /// The two ports come from [`free_port`], so another process may take one
    /// before the proxy binds it: a start that fails because an address is in
    /// use is retried with fresh ports.
    pub fn start(slots: Option<&str>, extra: &[&str]) -> Proxy {
        let mut last = String::new();
        for _ in 0..4 {
            match Self::try_start(slots, extra) {
                Ok(p) => return p,
                Err(e) if e.to_ascii_lowercase().contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}")
    }

    pub fn try_start(slots: Option<&str>, extra: &[&str]) -> Result<Proxy, String> {
        Self::try_start_with(slots, extra, "127.0.0.1", &[])
    }

    /// Starts a proxy whose admin API listens on `admin_host` (the client
    /// port stays on loopback), with extra environment variables.
    pub fn start_with(
        slots: Option<&str>,
        extra: &[&str],
        admin_host: &str,
        env: &[(&str, &str)],
    ) -> Proxy {
        let mut last = String::new();
        for _ in 0..4 {
            match Self::try_start_with(slots, extra, admin_host, env) {
                Ok(p) => return p,
                Err(e) if e.to_ascii_lowercase().contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}")
    }

    pub fn try_start_with(
        slots: Option<&str>,
        extra: &[&str],
        admin_host: &str,
        env: &[(&str, &str)],
    ) -> Result<Proxy, String> {
        let dir = tempfile::Builder::new()
            .prefix("proxy-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let port = free_port();
        let admin = free_port();
        let mut args: Vec<String> = vec![
            format!("--host-proxy=127.0.0.1:{port}"),
            "--host-admin".into(),
            format!("{admin_host}:{admin}"),
            "--log".into(),
            dir.path().join("proxy.log").display().to_string(),
        ];
        if let Some(s) = slots {
            let f = dir.path().join("slots.json");
            std::fs::write(&f, s).map_err(|e| e.to_string())?;
            args.push(format!("--fillslots={}", f.display()));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(proxy_bin())
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut p = Proxy {
            child,
            port,
            admin,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = p.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = p.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("codis-proxy exited ({st}): {err}{}", p.log()));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(p);
            }
            if Instant::now() > deadline {
                return Err(format!("codis-proxy did not listen on {port}: {}", p.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.port).expect("connect to proxy")
    }

    pub fn slot_file(&self) -> PathBuf {
        self.dir.path().join("slots.json")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Slot JSON: slots `[0, split)` on `a`, the rest on `b`.
pub fn split_slots(a: u16, b: u16, split: usize) -> String {
    let items: Vec<String> = (0..1024)
        .map(|i| {
            let (port, gid) = if i < split { (a, 1) } else { (b, 2) };
            format!(
                r#"{{"id":{i},"backend_addr":"127.0.0.1:{port}","backend_addr_group_id":{gid}}}"#
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Replaces a file by writing a temp file and renaming it over (as Codis'
/// tools do), then waits long enough for the proxy's watcher to notice.
pub fn replace_file(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Polls `/proxy/slots` until `ok(body)` (at most 10 s).
pub fn wait_slots(admin: u16, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if ok(&http_get(admin, "/proxy/slots")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "slot table change not applied in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn write_conf(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("proxy.toml");
    std::fs::write(&f, text).unwrap();
    let path = f.display().to_string();
    (dir, path)
}

pub fn http(port: u16, req: &str) -> String {
    http_to("127.0.0.1", port, req)
}

/// An HTTP/1.1 request to `host:port`; the whole response as text.
pub fn http_to(host: &str, port: u16, req: &str) -> String {
    let mut s = TcpStream::connect((host, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

pub fn http_get(port: u16, path: &str) -> String {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

pub fn http_put(port: u16, path: &str, body: &str) -> String {
    http(
        port,
        &format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}
