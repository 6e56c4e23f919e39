//! Failover by redis-sentinel 7.0.15 (issue 13): three sentinels monitor a
//! group of our servers (a master and two replicas). A client writes with
//! `WAIT 1` while the master is killed with SIGKILL; the sentinels promote
//! a replica (REPLICAOF NO ONE in their MULTI with CONFIG REWRITE and
//! CLIENT KILL), re-point the other one, and every write a replica
//! acknowledged is on the new master and on the re-pointed replica.

use std::time::{Duration, Instant};

use tests::repl::{info_field, wait_until};
use tests::{Conn, Sentinel, Server};

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The port `SENTINEL get-master-addr-by-name g` names.
fn master_port(s: &mut Conn) -> Option<u16> {
    let r = s.cmd("SENTINEL get-master-addr-by-name g");
    let text = String::from_utf8_lossy(&r).to_string();
    text.split("\r\n").nth(4).and_then(|p| p.parse().ok())
}

#[test]
fn sentinel_fails_over_a_group_of_ours() {
    let master = Server::start(&[]);
    let mport = master.port();
    let ms = mport.to_string();
    let replicas: Vec<Server> = (0..2)
        .map(|_| Server::start(&["--replicaof", "127.0.0.1", &ms]))
        .collect();
    for r in &replicas {
        let mut c = r.conn();
        wait_until("the replica's link", Duration::from_secs(30), || {
            info_field(&mut c, "replication", "master_link_status").as_deref() == Some("up")
        });
    }
    let conf = format!(
        "sentinel monitor g 127.0.0.1 {mport} 2\n\
         sentinel down-after-milliseconds g 1000\n\
         sentinel failover-timeout g 20000\n\
         sentinel parallel-syncs g 2\n"
    );
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut sentinels = Vec::new();
    for d in &dirs {
        let Some(s) = Sentinel::start_in(d.path(), &conf) else {
            return;
        };
        sentinels.push(s);
    }
    // Every sentinel knows both replicas and the two other sentinels.
    for s in &sentinels {
        let mut c = s.conn();
        wait_until(
            "the sentinels to discover the group",
            Duration::from_secs(60),
            || {
                let r = c.cmd("SENTINEL master g");
                contains(&r, "num-slaves\r\n$1\r\n2\r\n")
                    && contains(&r, "num-other-sentinels\r\n$1\r\n2\r\n")
            },
        );
    }
    // A client writes with WAIT 1 until the master dies under it.
    let writer = std::thread::spawn(move || {
        let mut c = Conn::connect(mport).unwrap();
        c.set_timeout(Duration::from_secs(5));
        let mut acked = Vec::new();
        for i in 0.. {
            let k = format!("k:{i}");
            match c.try_send(&["SET", &k, &i.to_string()]) {
                Ok(r) if r == b"+OK\r\n" => {}
                _ => break,
            }
            match c.try_send(&["WAIT", "1", "1000"]) {
                Ok(r) if r.starts_with(b":") && r != b":0\r\n" => acked.push(i),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(500));
    master.kill9();
    let killed = Instant::now();
    let acked = writer.join().unwrap();
    assert!(
        acked.len() > 10,
        "too few acknowledged writes: {}",
        acked.len()
    );
    // A sentinel names a new master; it takes writes.
    let mut s0 = sentinels[0].conn();
    let mut new_port = None;
    wait_until("the failover", Duration::from_secs(60), || {
        new_port = master_port(&mut s0).filter(|p| *p != mport);
        new_port.is_some()
    });
    let new_port = new_port.unwrap();
    // (Fresh connections: the sentinels' CLIENT KILL TYPE normal may close
    // ours while they reconfigure a server.)
    wait_until("writes on the new master", Duration::from_secs(30), || {
        query(new_port, &["SET", "after", "failover"]).as_deref() == Some(b"+OK\r\n")
    });
    eprintln!(
        "failover: {:.2} s from kill -9 to the first write on the new master",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(field(new_port, "role").as_deref(), Some("master"));
    let mut nm = Conn::connect(new_port).unwrap();
    for &i in &acked {
        assert_eq!(
            nm.cmd(&format!("GET k:{i}")),
            format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
            "acknowledged write k:{i} lost"
        );
    }
    // The other replica follows the new master and has the same writes.
    let other = replicas.iter().find(|r| r.port() != new_port).unwrap();
    let np = new_port.to_string();
    wait_until(
        "the other replica to follow",
        Duration::from_secs(60),
        || {
            field(other.port(), "master_port").as_deref() == Some(np.as_str())
                && field(other.port(), "master_link_status").as_deref() == Some("up")
        },
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(other.port(), &["GET", "after"]).as_deref() != Some(b"$8\r\nfailover\r\n") {
        assert!(
            Instant::now() < deadline,
            "the other replica did not catch up\n--- its log ---\n{}\n--- the new master's ---\n{}",
            other.log_tail(40),
            replicas
                .iter()
                .find(|r| r.port() == new_port)
                .unwrap()
                .log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut oc = other.conn();
    for &i in &acked {
        assert_eq!(
            oc.cmd(&format!("GET k:{i}")),
            format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
            "k:{i} on the other replica"
        );
    }
}

/// One command on a fresh connection: `None` if it failed.
fn query(port: u16, args: &[&str]) -> Option<Vec<u8>> {
    Conn::connect(port).ok()?.try_send(args).ok()
}

/// One INFO replication field, on a fresh connection.
fn field(port: u16, name: &str) -> Option<String> {
    let mut c = Conn::connect(port).ok()?;
    let text = c.try_send(&["INFO", "replication"]).ok()?;
    let text = String::from_utf8_lossy(&text).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}
