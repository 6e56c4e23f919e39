//! `bench-incr PORT RATE SECONDS OUT`: a paced INCR client for
//! `bench/cluster.py --client native` (a Python client's own scheduling
//! shows in its latencies). Sends one INCR at a time at RATE per second
//! for SECONDS, on counters `ctr:<port>:<i % 1000>`, and writes one line
//! per request to OUT: unix time (s), latency (s), whether the key's slot
//! is in 512..1023, ok (1/0).

use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 4 {
        eprintln!("usage: bench-incr PORT RATE SECONDS OUT");
        std::process::exit(2);
    }
    let port: u16 = a[0].parse().expect("port");
    let rate: f64 = a[1].parse().expect("rate");
    let secs: f64 = a[2].parse().expect("seconds");
    let mut out = BufWriter::new(std::fs::File::create(&a[3]).expect("out"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).ok();
    let start = Instant::now();
    let step = Duration::from_secs_f64(1.0 / rate);
    let mut next = start;
    let mut buf = [0u8; 256];
    let mut i = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        next += step;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let key = format!("ctr:{port}:{}", i % 1000);
        i += 1;
        let req = format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len());
        let t0 = Instant::now();
        s.write_all(req.as_bytes()).expect("write");
        // One reply line (`:n\r\n` or an error line).
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n") {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
        }
        let dt = t0.elapsed().as_secs_f64();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let moving = protocol::slot::slot_of(key.as_bytes()) >= 512;
        writeln!(
            out,
            "{now:.6} {dt:.9} {} {}",
            moving as u8,
            got.starts_with(b":") as u8
        )
        .expect("write out");
    }
}
