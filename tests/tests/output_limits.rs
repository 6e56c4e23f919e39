//! Output-buffer limits (Redis' `client-output-buffer-limit`): a pub/sub
//! subscriber that never reads is disconnected once its pending output passes
//! the hard limit, while publishers and other clients carry on and the
//! server's memory stays bounded; a normal client whose reply passes the
//! normal-class hard limit is closed without it (as Redis does). Clients
//! that pipeline and never read are held by backpressure (the server stops
//! producing their replies; memory stays flat, CLIENT LIST shows what they
//! have not taken), closed by `timeout` and by the soft limit.

use std::io::Write;
use std::time::{Duration, Instant};

use tests::Server;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

#[test]
fn non_reading_subscriber_is_disconnected_at_the_hard_limit() {
    let srv = Server::start(&["--client-output-buffer-limit", "pubsub 256kb 0 0"]);
    // The subscriber: subscribes, then never reads again.
    let mut sub = std::net::TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    sub.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
        .unwrap();
    let mut publ = srv.conn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while publ.send(&["PUBSUB", "NUMSUB", "ch"]) != b"*2\r\n$2\r\nch\r\n:1\r\n" {
        assert!(
            Instant::now() < deadline,
            "the subscription never registered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let rss_before = rss_kb(srv.pid());
    let payload = vec![b'x'; 16 * 1024];
    let mut receivers_seen = 0;
    let mut sent = 0;
    // 16 KiB × up to 4000 = 64 MiB: far beyond socket buffers and the
    // 256 KiB limit; the subscriber must be gone long before the end.
    for i in 0..4000 {
        let r = publ.send(&[b"PUBLISH".as_slice(), b"ch", &payload]);
        sent = i + 1;
        if r == b":1\r\n" {
            receivers_seen += 1;
        } else {
            assert_eq!(
                r,
                b":0\r\n",
                "PUBLISH answered {:?}",
                String::from_utf8_lossy(&r)
            );
            break;
        }
    }
    assert!(receivers_seen > 0, "the subscriber received nothing");
    assert!(
        sent < 4000,
        "the subscriber was never disconnected ({sent} messages)"
    );
    assert_eq!(
        publ.send(&["PUBSUB", "NUMSUB", "ch"]),
        b"*2\r\n$2\r\nch\r\n:0\r\n"
    );
    // Other clients are served as usual.
    assert_eq!(publ.send(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(publ.send(&["GET", "k"]), b"$1\r\nv\r\n");
    let mut other = srv.conn();
    assert_eq!(other.send(&["PING"]), b"+PONG\r\n");
    let grown_mb = rss_kb(srv.pid()).saturating_sub(rss_before) / 1024;
    assert!(
        grown_mb < 48,
        "RSS grew by {grown_mb} MiB for a 256 KiB limit"
    );
    drop(sub);
}

/// The normal class: a reply that would leave more than the hard limit
/// pending closes the client (Redis closes it without the reply); other
/// clients carry on.
#[test]
fn normal_client_over_the_hard_limit_is_closed() {
    let srv = Server::start(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut c = srv.conn();
    let chunk = vec![b'v'; 64 * 1024];
    for _ in 0..32 {
        assert_eq!(
            c.send(&[b"RPUSH".as_slice(), b"big", &chunk][..]).first(),
            Some(&b':')
        );
    }
    // A 2 MiB reply against a 1 MiB hard limit.
    let r = c.try_send(&["LRANGE", "big", "0", "-1"]);
    assert!(
        r.is_err(),
        "the reply was sent: {} bytes",
        r.map(|v| v.len()).unwrap_or(0)
    );
    let mut other = srv.conn();
    assert_eq!(other.send(&["LLEN", "big"]), b":32\r\n");
    // A reply under the limit is fine.
    assert!(other.send(&["LRANGE", "big", "0", "3"]).len() > 4 * 64 * 1024);
}

/// Connects `n` clients that pipeline `GET bigkey` for `secs` seconds and
/// never read a reply (their sockets stay open, unread).
fn stalled_clients(port: u16, n: usize, secs: f64) -> Vec<std::net::TcpStream> {
    let req = b"*2\r\n$3\r\nGET\r\n$6\r\nbigkey\r\n".repeat(2000);
    let socks: Vec<std::net::TcpStream> = (0..n)
        .map(|_| {
            let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        for mut s in &socks {
            let _ = s.write(&req);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    socks
}

/// Parses `field=value` of every line of a CLIENT LIST reply.
fn client_fields(list: &[u8], field: &str) -> Vec<u64> {
    let key = format!(" {field}=");
    String::from_utf8_lossy(list)
        .lines()
        .filter_map(|l| {
            let at = l.find(&key)? + key.len();
            l[at..].split(' ').next()?.parse().ok()
        })
        .collect()
}

/// The issue-19 case: clients that pipeline `GET` of a 1 MiB value and never
/// read. Each connection stops running its pipeline once about
/// `client-output-backpressure` of replies is unsent, so the server's memory
/// stays small (redis grows by the whole pipeline's replies), other clients
/// are served as usual, CLIENT LIST shows the pending output, and a stalled
/// client that starts reading gets every reply in order.
#[test]
fn never_reading_pipelines_are_held_by_backpressure() {
    let srv = Server::start(&[]);
    let mut c = srv.conn();
    let big = vec![b'v'; 1 << 20];
    assert_eq!(c.send(&[b"SET".as_slice(), b"bigkey", &big]), b"+OK\r\n");
    let rss_before = rss_kb(srv.pid());
    // Without backpressure one 16 KB read of these requests makes ~600 MB.
    let socks = stalled_clients(srv.port(), 20, 1.5);
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(c.send(&["PING"]), b"+PONG\r\n");
        worst = worst.max(t.elapsed());
    }
    let grown_mb = rss_kb(srv.pid()).saturating_sub(rss_before) / 1024;
    // Their replies wait in the socket buffers, not in the server.
    assert!(
        grown_mb < 24,
        "RSS grew by {grown_mb} MiB for 20 stalled clients"
    );
    assert!(worst < Duration::from_millis(500), "PING took {worst:?}");
    let list = c.send(&["CLIENT", "LIST"]);
    let pending: Vec<u64> = client_fields(&list, "obl")
        .iter()
        .zip(client_fields(&list, "omem"))
        .map(|(a, b)| a + b)
        .collect();
    assert_eq!(pending.len(), 21, "{}", String::from_utf8_lossy(&list));
    assert!(
        pending.iter().filter(|&&p| p > 0).count() >= 15,
        "stalled clients show no pending output: {pending:?}"
    );
    // One of them starts reading: the pipeline resumes, in order.
    let mut r = socks.into_iter().next().unwrap();
    r.set_nonblocking(false).unwrap();
    r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let expect_one = big.len() + 11; // "$1048576\r\n" + value + "\r\n"
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    while got < 40 * expect_one {
        let n = std::io::Read::read(&mut r, &mut buf).expect("the pipeline never resumed");
        assert!(n > 0, "closed after {got} bytes");
        if got == 0 {
            assert!(buf[..n].starts_with(b"$1048576\r\nvvvv"));
        }
        got += n;
    }
    assert_eq!(c.send(&["PING"]), b"+PONG\r\n");
}

/// `timeout` closes a client that stopped reading, whatever its pending
/// output (Redis counts only reads and writes as interaction).
#[test]
fn idle_timeout_closes_a_stalled_client() {
    let srv = Server::start(&["--timeout", "1"]);
    let mut c = srv.conn();
    let big = vec![b'v'; 1 << 20];
    assert_eq!(c.send(&[b"SET".as_slice(), b"bigkey", &big]), b"+OK\r\n");
    let socks = stalled_clients(srv.port(), 3, 0.3);
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        // PING keeps this client from being idle.
        assert_eq!(c.send(&["PING"]), b"+PONG\r\n");
        let list = c.send(&["CLIENT", "LIST"]);
        if client_fields(&list, "age").len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stalled clients not closed: {}",
            String::from_utf8_lossy(&list)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(socks);
}

/// The soft limit with seconds: a client that leaves more than the soft
/// limit unread for longer than its seconds is closed and the event logged.
#[test]
fn soft_limit_closes_a_stalled_client() {
    // A stalled client's pending output is what the kernel holds for it
    // (megabytes here): the server stops producing before it holds any.
    let srv = Server::start(&["--client-output-buffer-limit", "normal 0 16kb 1"]);
    let mut c = srv.conn();
    let big = vec![b'v'; 1 << 20];
    assert_eq!(c.send(&[b"SET".as_slice(), b"bigkey", &big]), b"+OK\r\n");
    let socks = stalled_clients(srv.port(), 2, 0.3);
    let start = Instant::now();
    loop {
        let list = c.send(&["CLIENT", "LIST"]);
        if client_fields(&list, "age").len() == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "not closed: {}",
            String::from_utf8_lossy(&list)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "closed before soft-seconds"
    );
    assert!(
        srv.log()
            .contains("scheduled to be closed ASAP for overcoming of output buffer limits"),
        "{}",
        srv.log_tail(10)
    );
    drop(socks);
}
