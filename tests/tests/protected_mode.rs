//! Protected mode as Redis 7.0: with `protected-mode yes` and no password,
//! a client that is not local gets Redis' `-DENIED` text and is closed,
//! whatever `bind` is. "Local" is Redis' `islocalClient`: 127.0.0.1 and ::1
//! (and, ours, the IPv4-mapped ::ffff:127.0.0.1); a client connecting from
//! 127.0.0.2 is remote to Redis, which lets the test be a remote peer
//! without a second host or network namespace.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tests::Server;

const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.";

/// Connects to `port` on `dest` from the source address `src`.
fn connect_from(src: &str, dest: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dest: std::net::SocketAddr = format!("{dest}:{port}").parse().unwrap();
        let sock = if dest.is_ipv4() {
            tokio::net::TcpSocket::new_v4().unwrap()
        } else {
            tokio::net::TcpSocket::new_v6().unwrap()
        };
        sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
        let s = sock.connect(dest).await.unwrap();
        let s = s.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    })
}

/// Sends PING from `src` and returns everything read until the server
/// closes or 1 s of silence.
fn ping_from(src: &str, port: u16) -> String {
    let mut s = connect_from(src, "127.0.0.1", port);
    let _ = s.write_all(b"PING\r\n");
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got == b"+PONG\r\n" {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn remote_clients_are_denied_whatever_the_bind() {
    for bind in [
        None,
        Some("0.0.0.0"),
        Some("* -::*"),
        Some("127.0.0.1 127.0.0.2"),
    ] {
        let srv = match bind {
            None => Server::start(&[]),
            Some(b) => Server::start(&["--bind", b]),
        };
        let got = ping_from("127.0.0.2", srv.port());
        assert!(
            got.starts_with(DENIED) && got.ends_with("from the outside.\r\n"),
            "bind {bind:?}: {got:?}"
        );
        // Local clients are served.
        assert_eq!(ping_from("127.0.0.1", srv.port()), "+PONG\r\n");
        let mut c = srv.conn();
        let info = String::from_utf8_lossy(&c.send(&["INFO", "stats"])).into_owned();
        assert!(
            info.contains("rejected_connections:1\r\n"),
            "bind {bind:?}: {info}"
        );
    }
}

#[test]
fn a_password_or_protected_mode_off_serves_remote_clients() {
    let srv = Server::start(&["--requirepass", "secret", "--bind", "0.0.0.0"]);
    let mut s = connect_from("127.0.0.2", "127.0.0.1", srv.port());
    s.write_all(b"PING\r\nAUTH secret\r\nPING\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"+PONG\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n"
    );

    let srv = Server::start(&["--protected-mode", "no"]);
    assert_eq!(ping_from("127.0.0.2", srv.port()), "+PONG\r\n");

    // CONFIG SET protected-mode applies to the next connections.
    let srv = Server::start(&[]);
    assert!(ping_from("127.0.0.2", srv.port()).starts_with(DENIED));
    let mut c = srv.conn();
    assert_eq!(
        c.send(&["CONFIG", "SET", "protected-mode", "no"]),
        b"+OK\r\n"
    );
    assert_eq!(ping_from("127.0.0.2", srv.port()), "+PONG\r\n");
}

/// A dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1: still local.
#[test]
fn ipv4_mapped_loopback_is_local() {
    let Ok(srv) = Server::try_start(&["--bind", "::"]) else {
        eprintln!("skipped: no IPv6 listener on this host");
        return;
    };
    assert_eq!(ping_from("127.0.0.1", srv.port()), "+PONG\r\n");
    let got = ping_from("127.0.0.2", srv.port());
    assert!(got.starts_with(DENIED), "{got:?}");
    let mut c = srv.conn();
    let list = String::from_utf8_lossy(&c.send(&["CLIENT", "INFO"])).into_owned();
    assert!(list.contains(" addr=[::ffff:127.0.0.1]:"), "{list}");
}

#[test]
fn listening_beyond_loopback_without_a_password_is_logged() {
    let srv = Server::start(&["--bind", "0.0.0.0"]);
    assert!(
        srv.log()
            .contains("no password is set and the server listens beyond loopback"),
        "{}",
        srv.log_tail(20)
    );
    let srv = Server::start(&["--bind", "127.0.0.1"]);
    assert!(
        !srv.log().contains("beyond loopback"),
        "{}",
        srv.log_tail(20)
    );
}
