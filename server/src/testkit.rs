//! Unit-test harness (tests only): a server built from defaults plus one
//! authenticated client, driven through the execution gate (`exec.rs`) with
//! a controlled clock and no sockets. Shared by the command modules' tests.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use protocol::resp::Reply;

use crate::client::{Client, ClientInfo};
use crate::server::Server;

pub struct Harness {
    pub srv: Arc<Server>,
    pub client: Client,
    /// Unix time in ms passed to every command.
    pub now: u64,
    /// The propagation stream, once [`Harness::capture`] subscribed to it.
    stream: Option<crate::propagate::Reader>,
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        let info = Arc::new(ClientInfo::new(1, String::new(), String::new(), -1, 0));
        Harness {
            srv: Server::for_tests(),
            client: Client::new(info, true),
            now: 1_700_000_000_000,
            stream: None,
        }
    }

    /// Runs one command; returns its raw reply.
    pub fn run_args(&mut self, argv: &[&[u8]]) -> Vec<u8> {
        let mut out = Reply::new();
        crate::exec::execute(&self.srv, &mut self.client, &mut out, self.now, argv);
        out.buf
    }

    /// Runs one command line (redis-cli quoting); returns the reply as text.
    pub fn run(&mut self, line: &str) -> String {
        let args = protocol::resp::split_args(line.as_bytes()).expect("test line quoting");
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        String::from_utf8_lossy(&self.run_args(&argv)).into_owned()
    }

    /// [`Harness::run`] at time `now` (which stays the clock).
    pub fn run_at(&mut self, now: u64, line: &str) -> String {
        self.now = now;
        self.run(line)
    }

    /// INFO's `keyspace_hits` and `keyspace_misses`.
    pub fn hits_misses(&self) -> (u64, u64) {
        let s = &self.srv.stats;
        (
            s.keyspace_hits.load(Relaxed),
            s.keyspace_misses.load(Relaxed),
        )
    }

    /// Starts capturing the propagation stream (see [`Harness::propagated`]).
    pub fn capture(&mut self) {
        self.stream = Some(self.srv.prop.subscribe(None).0);
    }

    /// The commands propagated since the last call, one line each, their
    /// arguments joined by spaces (`"SELECT 0"`, `"SET k v PXAT 1700000010000"`,
    /// `"MULTI"` …). Requires [`Harness::capture`].
    pub fn propagated(&mut self) -> Vec<String> {
        self.propagated_argv()
            .into_iter()
            .map(|argv| {
                let parts: Vec<String> = argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                parts.join(" ")
            })
            .collect()
    }

    /// [`Harness::propagated`] as raw argument vectors.
    pub fn propagated_argv(&mut self) -> Vec<Vec<Vec<u8>>> {
        let rx = self.stream.as_ref().expect("Harness::capture first");
        let mut cmds = Vec::new();
        let mut buf = Vec::new();
        self.srv.prop.read(rx, &mut buf, usize::MAX);
        let mut rest: &[u8] = &buf;
        while !rest.is_empty() {
            let (argv, used) = parse_multibulk(rest);
            rest = &rest[used..];
            cmds.push(argv);
        }
        cmds
    }
}

/// Decodes one RESP array of bulk strings (the stream's only shape).
fn parse_multibulk(b: &[u8]) -> (Vec<Vec<u8>>, usize) {
    fn line(b: &[u8], at: usize) -> (usize, usize) {
        let end = at + b[at..].windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let n = std::str::from_utf8(&b[at + 1..end])
            .unwrap()
            .parse()
            .unwrap();
        (n, end + 2)
    }
    assert_eq!(b[0], b'*');
    let (n, mut at) = line(b, 0);
    let mut argv = Vec::with_capacity(n);
    for _ in 0..n {
        assert_eq!(b[at], b'$');
        let (len, start) = line(b, at);
        argv.push(b[start..start + len].to_vec());
        at = start + len + 2;
    }
    (argv, at)
}
