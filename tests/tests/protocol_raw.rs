//! Raw protocol differential tests: the same bytes go to codis-server and to
//! redis-server 7.0 on fresh connections, and the whole byte stream that comes
//! back (until the server closes the connection, or stays quiet for a while)
//! must be identical, including *whether* the connection was closed. Covers
//! Redis' request-parser errors (invalid multibulk/bulk length, expected '$',
//! unbalanced quotes, too big inline/mbulk/bulk count strings), the inline
//! parser's quirks, and the stricter limits for unauthenticated clients
//! under `requirepass`.

use std::time::Duration;

use tests::{RedisServer, Server, escape};

/// How long a connection must stay silent before we stop reading. Only cases
/// that leave the connection open and waiting pay this.
const IDLE: Duration = Duration::from_millis(1500);
const MAX: Duration = Duration::from_secs(20);

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
}

fn case(name: &'static str, bytes: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        bytes: bytes.into(),
    }
}

/// (bytes received, whether the server closed the connection)
fn exchange(port: u16, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut c = tests::Conn::connect(port).unwrap_or_else(|e| panic!("connect {port}: {e}"));
    // A server that closes early may make the write fail; what it sent back
    // still counts.
    let _ = c.write_raw(bytes);
    c.read_until_close(IDLE, MAX)
}

fn render((bytes, closed): &(Vec<u8>, bool)) -> String {
    format!(
        "{}{}",
        escape(bytes),
        if *closed {
            " <closed>"
        } else {
            " <still open>"
        }
    )
}

/// Runs every case against both servers (cases in parallel) and fails with a
/// list of all differences.
fn compare_all(codis: &Server, redis: &Server, cases: &[Case]) {
    type Outcome = (Vec<u8>, bool);
    let results: Vec<(&Case, Outcome, Outcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| {
                let (cp, rp) = (codis.port(), redis.port());
                s.spawn(move || (c, exchange(rp, &c.bytes), exchange(cp, &c.bytes)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("case thread panicked")))
            .collect()
    });
    let mut report = Vec::new();
    for (c, r, k) in &results {
        if r != k {
            report.push(format!(
                "case `{}` (sent {}):\n    redis: {}\n    codis: {}",
                c.name,
                escape(&c.bytes),
                render(r),
                render(k)
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{} of {} raw protocol cases differ:\n{}",
        report.len(),
        results.len(),
        report.join("\n")
    );
}

#[test]
fn protocol_errors_and_quirks() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let codis = Server::start(&[]);

    let mut too_big_mbulk = b"*".to_vec();
    too_big_mbulk.extend(std::iter::repeat_n(b'1', 65536));
    let mut too_big_bulk = b"*1\r\n$".to_vec();
    too_big_bulk.extend(std::iter::repeat_n(b'1', 65536));

    let cases = vec![
        case("invalid multibulk length", "*abc\r\n"),
        case("multibulk length with space", "*1 \r\n"),
        case("multibulk length with plus", "*+1\r\n$4\r\nPING\r\n"),
        case(
            "multibulk length with leading zero",
            "*01\r\n$4\r\nPING\r\n",
        ),
        case("multibulk length too large", "*3000000000\r\n"),
        case("invalid bulk length", "*1\r\n$abc\r\n"),
        case("negative bulk length", "*1\r\n$-5\r\n"),
        case("null bulk in request", "*2\r\n$4\r\nPING\r\n$-1\r\n"),
        case(
            "bulk length over proto-max-bulk-len",
            "*1\r\n$536870913\r\n",
        ),
        case("bulk length with leading zero", "*1\r\n$04\r\nPING\r\n"),
        case("expected $", "*1\r\nfoo\r\n"),
        case("expected $ after valid arg", "*2\r\n$4\r\nECHO\r\n:1\r\n"),
        case("error then more data is ignored", "*1\r\nfoo\r\nPING\r\n"),
        case("unbalanced double quote", "SET \"a b\r\n"),
        case("unbalanced single quote", "SET a 'b\r\n"),
        case("closing quote followed by char", "PING \"x\"y\r\n"),
        case("too big inline request", vec![b'a'; 65537]),
        case("too big mbulk count string", too_big_mbulk),
        case("too big bulk count string", too_big_bulk),
        case("inline line starting with $", "$3\r\nfoo\r\n"),
        case(
            "empty lines and empty multibulks",
            "\r\nPING\r\n\nPING\n*0\r\n*-1\r\n*-5\r\nPING\r\n",
        ),
        case("bulk terminator not checked", "*1\r\n$4\r\nPINGxx"),
        case("inline with CR before CRLF", "PING\r\r\n"),
        case(
            "pipelined inline and multibulk",
            "PING\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\nECHO \"a\\x41b\"\r\nECHO 'x\\'y'\r\n",
        ),
        case("empty bulk argument", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"),
        case("empty command name", "*1\r\n$0\r\n\r\n"),
        case(
            "unknown command, multibulk",
            "*3\r\n$3\r\nFOO\r\n$1\r\na\r\n$1\r\nb\r\n",
        ),
        case("unknown command, inline", "FOO a b\r\n"),
        case("incomplete bulk waits", "*1\r\n$1048577\r\n"),
        case("incomplete multibulk waits", "*2\r\n$4\r\nECHO\r\n"),
        case("partial inline waits", "PING"),
        case("quit closes after +OK", "PING\r\nQUIT\r\nPING\r\n"),
        case("quit inline", "QUIT\r\n"),
        case("arity error", "*1\r\n$3\r\nGET\r\n"),
    ];
    compare_all(&codis, &redis, &cases);
    let mut codis = codis;
    assert!(
        codis.is_alive(),
        "codis-server died; log:\n{}",
        codis.log_tail(30)
    );
}

#[test]
fn unauthenticated_limits() {
    let Some(redis) = RedisServer::start_with(&["--requirepass", "secret"]) else {
        return;
    };
    let codis = Server::start(&["--requirepass", "secret"]);
    let cases = vec![
        case("multibulk of 11 before auth", "*11\r\n"),
        case("multibulk of 10 before auth waits", "*10\r\n"),
        case("bulk of 16385 before auth", "*1\r\n$16385\r\n"),
        case("bulk of 16384 before auth waits", "*1\r\n$16384\r\n"),
        case(
            "commands before and after auth",
            "PING\r\nGET a\r\nAUTH x\r\nAUTH secret\r\nPING\r\n*11\r\n",
        ),
        case("big bulk after auth", "AUTH secret\r\n*1\r\n$16385\r\n"),
        case(
            "auth with username",
            "AUTH default secret\r\nPING\r\nAUTH default wrong\r\n",
        ),
        case("auth syntax error", "AUTH a b c\r\n"),
        case("quit before auth", "QUIT\r\n"),
        case("hello before auth", "HELLO 3\r\n"),
        case(
            "hello with wrong password",
            "HELLO 3 AUTH default wrong\r\n",
        ),
        case("unknown command before auth", "FOO bar\r\n"),
        case("inline error before auth", "SET \"a\r\n"),
    ];
    compare_all(&codis, &redis, &cases);
}
