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
}
