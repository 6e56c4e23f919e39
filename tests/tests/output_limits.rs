//! Output-buffer limits (Redis' `client-output-buffer-limit`): a pub/sub
//! subscriber that never reads is disconnected once its pending output passes
//! the hard limit, while publishers and other clients carry on and the
//! server's memory stays bounded; a normal client whose reply passes the
//! normal-class hard limit is closed without it (as Redis does).

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
