//! Cluster-operation harness: an etcd server (Debian's `etcd-server`) on
//! free loopback ports with its own data dir, killed and restarted by the
//! tests, and `codis-ctl` runs.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::proxy::ctl_bin;
use crate::{free_port, require_redis, which};

/// A running etcd (killed on drop).
pub struct Etcd {
    child: Option<Child>,
    pub port: u16,
    peer: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    extra: Vec<String>,
}

impl Etcd {
    /// Starts etcd, or returns None (with a SKIPPED notice) when it is not
    /// installed and `REQUIRE_REDIS` is not `1` (CI installs it).
    pub fn start() -> Option<Etcd> {
        Self::start_with(&[])
    }

    /// Like [`Etcd::start`], with extra flags (e.g. `--enable-v2=true`).
    pub fn start_with(extra: &[&str]) -> Option<Etcd> {
        let Some(bin) = which("etcd") else {
            if require_redis() {
                panic!("etcd not found on PATH and REQUIRE_REDIS=1 (apt-get install etcd-server)");
            }
            eprintln!("SKIPPED: etcd not found on PATH (apt-get install etcd-server)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("etcd-")
            .tempdir()
            .expect("temp dir");
        let mut e = Etcd {
            child: None,
            port: free_port(),
            peer: free_port(),
            dir,
            bin,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        e.spawn();
        Some(e)
    }

    fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log");
        let child = Command::new(&self.bin)
            .args([
                "--name",
                "test",
                "--data-dir",
                &self.dir.path().join("data").display().to_string(),
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("test={peer}"),
            ])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if probe(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not come up on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The store URL of a product.
    pub fn url(&self, product: &str) -> String {
        format!("etcd://127.0.0.1:{}/{product}", self.port)
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether etcd answers a v3 read on `port`.
pub fn probe(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let body = r#"{"key":"AA=="}"#;
    let req = format!(
        "POST /v3/kv/range HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}

/// Runs `codis-ctl STORE args...` to completion.
pub fn ctl(store: &str, args: &[&str]) -> Output {
    Command::new(ctl_bin())
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run codis-ctl")
}

/// Runs codis-ctl and panics with its output unless it succeeds; returns
/// stdout + stderr.
pub fn ctl_ok(store: &str, args: &[&str]) -> String {
    let out = ctl(store, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "codis-ctl {store} {args:?} failed: {text}"
    );
    text
}

/// Starts codis-ctl in the background (stderr to a file in `dir`).
pub fn ctl_spawn(store: &str, args: &[&str], log: &std::path::Path) -> Child {
    let f = std::fs::File::create(log).expect("ctl log");
    Command::new(ctl_bin())
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .expect("spawn codis-ctl")
}

/// `codis-ctl status --json`, parsed: (table version, slot → group,
/// slots with actions, proxies' served versions).
pub fn table_state(store: &str) -> (u64, Vec<u64>, usize, Vec<u64>) {
    let out = ctl(store, &["status", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = json_num(&text, "\"version\": ").unwrap_or(0);
    let mut groups = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\"group_id\": ") {
        rest = &rest[i + 12..];
        groups.push(json_num(rest, "").unwrap_or(0));
    }
    let actions = text.matches("\"target_id\"").count();
    let mut served = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\"table_version\": ") {
        rest = &rest[i + 17..];
        served.push(json_num(rest, "").unwrap_or(0));
    }
    (version, groups, actions, served)
}

fn json_num(text: &str, after: &str) -> Option<u64> {
    let i = text.find(after)? + after.len();
    let digits: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// A running ZooKeeper (Debian's `zookeeper` package, started in the
/// foreground on a free port with its own data dir; killed on drop).
pub struct ZooKeeper {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl ZooKeeper {
    /// Starts ZooKeeper, or returns None (with a SKIPPED notice) when it is
    /// not installed and `REQUIRE_REDIS` is not `1` (CI installs it).
    pub fn start() -> Option<ZooKeeper> {
        let script = PathBuf::from("/usr/share/zookeeper/bin/zkServer.sh");
        if !script.is_file() {
            if require_redis() {
                panic!("ZooKeeper not installed and REQUIRE_REDIS=1 (apt-get install zookeeper)");
            }
            eprintln!("SKIPPED: ZooKeeper not installed (apt-get install zookeeper)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("zk-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("zoo.cfg");
        std::fs::write(
            &conf,
            format!(
                "tickTime=500\nminSessionTimeout=1000\ndataDir={}\nclientPort={port}\nadmin.enableServer=false\n",
                dir.path().join("data").display()
            ),
        )
        .expect("zoo.cfg");
        let log = std::fs::File::create(dir.path().join("zk.log")).expect("zk log");
        let child = Command::new(&script)
            .args(["start-foreground", &conf.display().to_string()])
            .env("ZOO_LOG_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn zookeeper");
        let zk = ZooKeeper {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ZooKeeper did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(zk)
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        // The script execs java in the same process group.
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our child's process group.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
