//! Scripting against the running server: busy scripts (BUSY for other
//! clients, SCRIPT KILL, UNKILLABLE after a write, SHUTDOWN NOSAVE) with
//! `--io-threads 2` (another executor thread serves the other clients),
//! real programs (redis-py's Lock, a token bucket, a BullMQ-style job move)
//! through codis-server, and atomicity under `--io-threads 4`. Byte-for-byte
//! comparisons with redis-server are in tests/scripts/scripting.txt.

use std::time::{Duration, Instant};

use tests::{Conn, Server};

/// A script that loops until killed (or forever).
const SPIN: &str = "local i = 0 while true do i = i + 1 end";

fn busy_server() -> Server {
    Server::start(&["--io-threads", "2", "--busy-reply-threshold", "200"])
}

/// Sends `script` on a new connection without reading the reply.
fn start_script(port: u16, args: &[&str]) -> Conn {
    let mut c = Conn::connect(port).expect("connect");
    c.set_timeout(Duration::from_secs(30));
    c.write_raw(&tests::resp::encode_command(args))
        .expect("send");
    c
}

/// Polls `probe` with PING until it answers BUSY.
fn wait_busy(probe: &mut Conn) -> Vec<u8> {
    let t0 = Instant::now();
    loop {
        let r = probe.cmd("PING");
        if r.starts_with(b"-BUSY") {
            return r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never busy: {}",
            String::from_utf8_lossy(&r)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn busy_script_then_script_kill() {
    let s = busy_server();
    let mut runner = start_script(s.port(), &["EVAL", SPIN, "0"]);
    let mut probe = s.conn();
    let busy = wait_busy(&mut probe);
    assert_eq!(
        busy,
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    // Commands flagged allow_busy still run; SHUTDOWN without NOSAVE does not.
    assert_eq!(probe.cmd("MULTI"), b"+OK\r\n");
    assert_eq!(probe.cmd("DISCARD"), b"+OK\r\n");
    assert!(probe.cmd("SHUTDOWN").starts_with(b"-BUSY"));
    assert!(probe.cmd("GET k").starts_with(b"-BUSY"));
    assert_eq!(probe.cmd("SCRIPT KILL"), b"+OK\r\n");
    let r = runner.read_reply().expect("the killed script's reply");
    assert!(
        r.starts_with(b"-ERR Script killed by user with SCRIPT KILL... script: "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(
        probe.cmd("SCRIPT KILL"),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
    assert_eq!(probe.cmd("PING"), b"+PONG\r\n");
    // A pcall in the script cannot swallow the kill.
    let mut runner = start_script(
        s.port(),
        &[
            "EVAL",
            "while true do pcall(function() local i = 0 while true do i = i + 1 end end) end",
            "0",
        ],
    );
    wait_busy(&mut probe);
    assert_eq!(probe.cmd("SCRIPT KILL"), b"+OK\r\n");
    let r = runner.read_reply().expect("reply");
    assert!(
        r.starts_with(b"-ERR Script killed by user"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(probe.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn a_script_that_wrote_is_unkillable_and_shutdown_nosave_stops_it() {
    let mut s = busy_server();
    let _runner = start_script(
        s.port(),
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 'x') local i = 0 while true do i = i + 1 end",
            "1",
            "k",
        ],
    );
    let mut probe = s.conn();
    wait_busy(&mut probe);
    let r = probe.cmd("SCRIPT KILL");
    assert_eq!(
        r,
        b"-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n".to_vec()
    );
    let _ = probe.try_send(&["SHUTDOWN", "NOSAVE"]);
    assert!(
        s.wait_exit(Duration::from_secs(10)),
        "SHUTDOWN NOSAVE did not stop the server"
    );
}

#[test]
fn the_busy_threshold_is_configurable() {
    let s = busy_server();
    let mut c = s.conn();
    assert_eq!(
        c.cmd("CONFIG GET lua-time-limit"),
        b"*2\r\n$14\r\nlua-time-limit\r\n$3\r\n200\r\n"
    );
    // A script shorter than the threshold never makes anybody busy.
    assert_eq!(
        c.cmd("EVAL \"local i = 0 for j = 1, 100000 do i = i + j end return i\" 0"),
        b":5000050000\r\n"
    );
    assert_eq!(
        c.cmd("SCRIPT KILL"),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
}
