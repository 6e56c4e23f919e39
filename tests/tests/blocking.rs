//! Blocking list commands across real connections (Redis 7.0 `blocked.c`
//! semantics): timeouts, FIFO wake order, multi-key waits, pipelined commands
//! held back while blocked, disconnect / CLIENT KILL while blocked, and
//! LMOVE into a key someone waits on.

use std::thread::sleep;
use std::time::{Duration, Instant};

use tests::{Conn, Server};

/// Lets the server register a just-sent blocking command.
fn settle() {
    sleep(Duration::from_millis(100));
}

fn conn(s: &Server) -> Conn {
    let mut c = s.conn();
    c.set_timeout(Duration::from_secs(10));
    c
}

#[test]
fn timeouts_return_nil() {
    let s = Server::start(&[]);
    let mut c = conn(&s);
    let t = Instant::now();
    assert_eq!(c.cmd("BLPOP nokey 0.2"), b"*-1\r\n");
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(190) && el < Duration::from_secs(3),
        "{el:?}"
    );
    assert_eq!(c.cmd("BRPOPLPUSH nokey d 0.05"), b"*-1\r\n");
    assert_eq!(c.cmd("BLMOVE nokey d left right 0.05"), b"*-1\r\n");
    assert_eq!(c.cmd("BLMPOP 0.05 2 a b LEFT"), b"*-1\r\n");
    assert_eq!(c.cmd("HELLO 3").first(), Some(&b'%'));
    assert_eq!(c.cmd("BRPOP nokey 0.05"), b"_\r\n");
    assert_eq!(c.cmd("BLMOVE nokey d left right 0.05"), b"_\r\n");
    // The connection works normally afterwards.
    assert_eq!(c.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn three_waiters_served_in_order() {
    let s = Server::start(&[]);
    let mut w: Vec<Conn> = (0..3).map(|_| conn(&s)).collect();
    for c in w.iter_mut() {
        c.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
            .unwrap();
        settle();
    }
    let mut p = conn(&s);
    assert_eq!(p.cmd("RPUSH q a b c d"), b":4\r\n");
    assert_eq!(w[0].read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    assert_eq!(w[1].read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$1\r\nb\r\n");
    assert_eq!(w[2].read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$1\r\nc\r\n");
    assert_eq!(p.cmd("LRANGE q 0 -1"), b"*1\r\n$1\r\nd\r\n");

    // One element at a time: still first blocked, first served.
    for c in w.iter_mut() {
        c.write_raw(b"*3\r\n$5\r\nBRPOP\r\n$1\r\nr\r\n$1\r\n0\r\n")
            .unwrap();
        settle();
    }
    for (i, v) in ["x", "y", "z"].iter().enumerate() {
        assert_eq!(
            p.cmd(&format!("LPUSH r {v}")),
            b":1\r\n".to_vec(),
            "push {i}"
        );
        let want = format!("*2\r\n$1\r\nr\r\n$1\r\n{v}\r\n");
        assert_eq!(w[i].read_reply().unwrap(), want.as_bytes());
    }
    assert_eq!(p.cmd("EXISTS r"), b":0\r\n");
}

#[test]
fn push_to_one_of_many_keys() {
    let s = Server::start(&[]);
    let mut w = conn(&s);
    let mut p = conn(&s);
    w.write_raw(b"*5\r\n$5\r\nBLPOP\r\n$2\r\nk1\r\n$2\r\nk2\r\n$2\r\nk3\r\n$1\r\n0\r\n")
        .unwrap();
    settle();
    assert_eq!(p.cmd("RPUSH k2 v"), b":1\r\n");
    assert_eq!(w.read_reply().unwrap(), b"*2\r\n$2\r\nk2\r\n$1\r\nv\r\n");
    // BLMPOP on several keys with COUNT.
    w.write_raw(
        b"*6\r\n$6\r\nBLMPOP\r\n$1\r\n0\r\n$1\r\n2\r\n$2\r\nm1\r\n$2\r\nm2\r\n$4\r\nLEFT\r\n",
    )
    .unwrap();
    settle();
    assert_eq!(p.cmd("RPUSH m2 a b"), b":2\r\n");
    assert_eq!(
        w.read_reply().unwrap(),
        b"*2\r\n$2\r\nm2\r\n*1\r\n$1\r\na\r\n"
    );
    assert_eq!(p.cmd("LLEN m2"), b":1\r\n");
}

#[test]
fn pipelined_commands_wait_until_served() {
    let s = Server::start(&[]);
    let mut w = conn(&s);
    let mut p = conn(&s);
    // BLPOP then PING in one write: the PING must not be answered first.
    w.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n")
        .unwrap();
    settle();
    w.set_timeout(Duration::from_millis(200));
    assert!(
        w.read_reply().is_err(),
        "nothing may be answered while blocked"
    );
    w.set_timeout(Duration::from_secs(10));
    // Other connections keep working.
    assert_eq!(p.cmd("SET x 1"), b"+OK\r\n");
    assert_eq!(p.cmd("LPUSH q v"), b":1\r\n");
    assert_eq!(w.read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
    assert_eq!(w.read_reply().unwrap(), b"+PONG\r\n");
}

#[test]
fn disconnect_while_blocked_loses_nothing() {
    let s = Server::start(&[]);
    let mut gone = conn(&s);
    gone.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
        .unwrap();
    settle();
    drop(gone);
    settle();
    let mut w = conn(&s);
    w.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
        .unwrap();
    settle();
    let mut p = conn(&s);
    assert_eq!(p.cmd("RPUSH q a b"), b":2\r\n");
    assert_eq!(w.read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    assert_eq!(p.cmd("LRANGE q 0 -1"), b"*1\r\n$1\r\nb\r\n");
    // Nobody waits any more: a push stays in the list.
    drop(w);
    settle();
    assert_eq!(p.cmd("RPUSH z 1"), b":1\r\n");
    assert_eq!(p.cmd("LLEN z"), b":1\r\n");
}

#[test]
fn client_kill_while_blocked() {
    let s = Server::start(&[]);
    let mut w = conn(&s);
    let id = String::from_utf8(w.cmd("CLIENT ID")).unwrap();
    let id = id.trim_start_matches(':').trim().to_string();
    w.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
        .unwrap();
    settle();
    let mut p = conn(&s);
    assert_eq!(p.cmd(&format!("CLIENT KILL ID {id}")), b":1\r\n");
    let (_, closed) = w.read_until_close(Duration::from_secs(5), Duration::from_secs(5));
    assert!(closed, "killed client must be disconnected");
    assert_eq!(p.cmd("RPUSH q a"), b":1\r\n");
    assert_eq!(p.cmd("LLEN q"), b":1\r\n");
}

#[test]
fn lmove_wakes_waiter_and_chains() {
    let s = Server::start(&[]);
    let mut w1 = conn(&s);
    let mut w2 = conn(&s);
    // w1 moves from src to mid; w2 waits on mid.
    w1.write_raw(
        b"*6\r\n$6\r\nBLMOVE\r\n$3\r\nsrc\r\n$3\r\nmid\r\n$4\r\nLEFT\r\n$5\r\nRIGHT\r\n$1\r\n0\r\n",
    )
    .unwrap();
    settle();
    w2.write_raw(b"*3\r\n$5\r\nBRPOP\r\n$3\r\nmid\r\n$1\r\n0\r\n")
        .unwrap();
    settle();
    let mut p = conn(&s);
    assert_eq!(p.cmd("RPUSH src v"), b":1\r\n");
    assert_eq!(w1.read_reply().unwrap(), b"$1\r\nv\r\n");
    assert_eq!(w2.read_reply().unwrap(), b"*2\r\n$3\r\nmid\r\n$1\r\nv\r\n");
    assert_eq!(p.cmd("EXISTS src mid"), b":0\r\n");
    // Plain LMOVE / RPOPLPUSH into a waited-on key.
    w2.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$3\r\ndst\r\n$1\r\n0\r\n")
        .unwrap();
    settle();
    assert_eq!(p.cmd("RPUSH a 1 2"), b":2\r\n");
    assert_eq!(p.cmd("RPOPLPUSH a dst"), b"$1\r\n2\r\n");
    assert_eq!(w2.read_reply().unwrap(), b"*2\r\n$3\r\ndst\r\n$1\r\n2\r\n");
    assert_eq!(p.cmd("EXISTS dst"), b":0\r\n");
}

#[test]
fn timeout_then_push_and_forever() {
    let s = Server::start(&[]);
    let mut w = conn(&s);
    let mut p = conn(&s);
    // A waiter that timed out no longer takes data.
    assert_eq!(w.cmd("BLPOP q 0.05"), b"*-1\r\n");
    assert_eq!(p.cmd("RPUSH q a"), b":1\r\n");
    assert_eq!(p.cmd("LLEN q"), b":1\r\n");
    // Timeout 0 waits past a short interval.
    w.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nn\r\n$1\r\n0\r\n")
        .unwrap();
    sleep(Duration::from_millis(300));
    assert_eq!(p.cmd("RPUSH n late"), b":1\r\n");
    assert_eq!(w.read_reply().unwrap(), b"*2\r\n$1\r\nn\r\n$4\r\nlate\r\n");
}

#[test]
fn waiter_served_before_pushers_next_command() {
    let s = Server::start(&[]);
    let mut w = conn(&s);
    assert_eq!(w.cmd("HELLO 3").first(), Some(&b'%'));
    w.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
        .unwrap();
    settle();
    let mut p = conn(&s);
    // LPUSH and LPOP in one pipeline: the blocked client gets the element
    // (Redis serves waiters right after the pushing command).
    p.write_raw(b"*3\r\n$5\r\nLPUSH\r\n$1\r\nq\r\n$1\r\nv\r\n*2\r\n$4\r\nLPOP\r\n$1\r\nq\r\n")
        .unwrap();
    assert_eq!(p.read_reply().unwrap(), b":1\r\n");
    assert_eq!(p.read_reply().unwrap(), b"$-1\r\n");
    assert_eq!(w.read_reply().unwrap(), b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
}

/// INFO commandstats time a command alone: not the wait of a blocked
/// command before it in the same pipeline, nor the idle time before a new
/// request (the server reads the clock once per pipelined command and
/// starts afresh after a wait).
#[test]
fn commandstats_exclude_waits() {
    let s = Server::start(&[]);
    let mut c = conn(&s);
    c.write_raw(
        b"*3\r\n$5\r\nBLPOP\r\n$5\r\nnokey\r\n$3\r\n0.3\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n",
    )
    .unwrap();
    assert_eq!(c.read_reply().unwrap(), b"*-1\r\n");
    assert_eq!(c.read_reply().unwrap(), b"$1\r\nx\r\n");
    assert_eq!(c.cmd("PING"), b"+PONG\r\n");
    sleep(Duration::from_millis(300));
    assert_eq!(c.cmd("TIME").first(), Some(&b'*'));
    let info = String::from_utf8(c.cmd("INFO commandstats")).unwrap();
    for name in ["blpop", "echo", "ping", "time"] {
        let line = info
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
            .unwrap_or_else(|| panic!("no cmdstat_{name} in {info}"));
        let usec: u64 = line
            .split(',')
            .find_map(|f| f.strip_prefix("usec="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no usec in {line}"));
        assert!(usec < 100_000, "{line}");
    }
}

/// A RESP3 client blocked in BLPOP still gets its pushes (a pub/sub
/// message here) at once, before the BLPOP reply, as Redis writes them.
#[test]
fn blocked_resp3_client_gets_pushes_while_waiting() {
    use std::io::{Read, Write};
    let srv = tests::Server::start(&[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut expect = |s: &mut std::net::TcpStream, want: &[u8]| {
        let mut got = Vec::new();
        while got.len() < want.len() {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    };
    s.write_all(b"HELLO 3\r\n").unwrap();
    let mut hello = vec![0u8; 4096];
    let n = s.read(&mut hello).unwrap();
    assert!(
        hello[..n].starts_with(b"%"),
        "HELLO 3: {:?}",
        String::from_utf8_lossy(&hello[..n])
    );
    s.write_all(b"SUBSCRIBE ch\r\n").unwrap();
    expect(&mut s, b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
    s.write_all(b"BLPOP l 10\r\n").unwrap();
    let mut other = srv.conn();
    // Wait until the BLPOP is registered (the server counts blocked clients).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(&other.send(&["INFO", "clients"])).contains("blocked_clients:1")
    {
        assert!(std::time::Instant::now() < deadline, "BLPOP never blocked");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(other.send(&["PUBLISH", "ch", "hi"]), b":1\r\n");
    expect(&mut s, b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    assert_eq!(other.send(&["RPUSH", "l", "x"]), b":1\r\n");
    expect(&mut s, b"*2\r\n$1\r\nl\r\n$1\r\nx\r\n");
}

/// Sends `XREADGROUP GROUP g <consumer> BLOCK 0 STREAMS s >` (no reply
/// read).
fn block_in_group(c: &mut Conn, consumer: &str) {
    c.write_raw(&tests::resp::encode_command(&[
        "XREADGROUP",
        "GROUP",
        "g",
        consumer,
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]))
    .unwrap();
}

/// Blocked stream readers: every XREAD waiter sees a new entry (reading
/// consumes nothing), XREADGROUP waiters of one group share it (the first
/// blocked takes it), CLIENT UNBLOCK ends a wait as a timeout or an error,
/// and a consumer deleted while it waits is created again when served.
#[test]
fn stream_waiters() {
    let s = Server::start(&[]);
    let mut p = conn(&s);
    assert_eq!(p.cmd("XADD s 1-1 f v"), b"$3\r\n1-1\r\n");
    assert_eq!(p.cmd("XGROUP CREATE s g $"), b"+OK\r\n");
    let mut r: Vec<Conn> = (0..2).map(|_| conn(&s)).collect();
    for c in r.iter_mut() {
        c.write_raw(&tests::resp::encode_command(&[
            "XREAD", "BLOCK", "0", "STREAMS", "s", "$",
        ]))
        .unwrap();
        settle();
    }
    let mut g: Vec<Conn> = (0..2).map(|_| conn(&s)).collect();
    for (i, c) in g.iter_mut().enumerate() {
        block_in_group(c, &format!("c{i}"));
        settle();
    }
    assert_eq!(p.cmd("XADD s 2-1 f w"), b"$3\r\n2-1\r\n");
    let entry = b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n";
    for c in r.iter_mut() {
        assert_eq!(c.read_reply().unwrap(), entry);
    }
    assert_eq!(g[0].read_reply().unwrap(), entry);
    // The second consumer still waits; its consumer is deleted meanwhile.
    assert_eq!(p.cmd("XGROUP DELCONSUMER s g c1"), b":0\r\n");
    assert_eq!(p.cmd("XADD s 3-1 f x"), b"$3\r\n3-1\r\n");
    assert!(
        g[1].read_reply()
            .unwrap()
            .starts_with(b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n3-1")
    );
    assert_eq!(
        p.cmd("XPENDING s g"),
        b"*4\r\n:2\r\n$3\r\n2-1\r\n$3\r\n3-1\r\n*2\r\n*2\r\n$2\r\nc0\r\n$1\r\n1\r\n*2\r\n$2\r\nc1\r\n$1\r\n1\r\n"
    );
    // CLIENT UNBLOCK: as a timeout, then as an error.
    let id = String::from_utf8(r[0].cmd("CLIENT ID")).unwrap();
    let id = id.trim_start_matches(':').trim_end().to_string();
    for (how, want) in [
        ("TIMEOUT", &b"*-1\r\n"[..]),
        (
            "ERROR",
            &b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"[..],
        ),
    ] {
        block_in_group(&mut r[0], "c0");
        settle();
        assert_eq!(p.cmd(&format!("CLIENT UNBLOCK {id} {how}")), b":1\r\n");
        assert_eq!(r[0].read_reply().unwrap(), want);
    }
}
