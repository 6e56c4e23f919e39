//! floor-proxy PORT BACKEND_PORT: the least work a single-threaded epoll
//! proxy can do per request, to measure what any proxy pays on this machine
//! (docs/performance.md, "codis-proxy at P=1, session 6"). One backend
//! connection; every client read is appended to one backend write per
//! epoll round; replies are matched FIFO and each client gets one send per
//! backend read. No routing, no checks, no stats: it only understands
//! redis-benchmark's GET/SET traffic (it counts requests by `*`), so it is
//! a yardstick, not a proxy. Run it as proxy.sh's candidate:
//!   proxy.sh --proxy 'bench/floor-proxy/target/release/floor-proxy {port} {backend_port}'
#![allow(unsafe_code)]
use std::collections::VecDeque;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd};

unsafe fn recv(fd: i32, buf: &mut Vec<u8>) -> isize {
    let len = buf.len();
    if buf.capacity() - len < 65536 { buf.reserve(65536); }
    let n = libc::recv(fd, buf.as_mut_ptr().add(len) as *mut _, buf.capacity() - len, libc::MSG_DONTWAIT);
    if n > 0 { buf.set_len(len + n as usize); }
    n
}
unsafe fn send_all(fd: i32, b: &[u8]) {
    let mut off = 0;
    while off < b.len() {
        let n = libc::send(fd, b.as_ptr().add(off) as *const _, b.len() - off, libc::MSG_NOSIGNAL);
        if n <= 0 { return; }
        off += n as usize;
    }
}
// length of one complete RESP reply at the start of b
fn reply_len(b: &[u8]) -> Option<usize> {
    if b.is_empty() { return None; }
    let nl = b.windows(2).position(|w| w == b"\r\n")? + 2;
    match b[0] {
        b'$' => {
            let n: i64 = std::str::from_utf8(&b[1..nl - 2]).ok()?.parse().ok()?;
            if n < 0 { return Some(nl); }
            let t = nl + n as usize + 2;
            if b.len() >= t { Some(t) } else { None }
        }
        b'*' => {
            let n: i64 = std::str::from_utf8(&b[1..nl - 2]).ok()?.parse().ok()?;
            let mut off = nl;
            for _ in 0..n.max(0) { off += reply_len(&b[off..])?; }
            Some(off)
        }
        _ => Some(nl),
    }
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let port: u16 = a[1].parse().unwrap();
    let bport: u16 = a[2].parse().unwrap();
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    l.set_nonblocking(true).unwrap();
    let b = TcpStream::connect(("127.0.0.1", bport)).unwrap();
    b.set_nodelay(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let bfd = b.into_raw_fd();
    let lfd = l.as_raw_fd();
    unsafe {
        let ep = libc::epoll_create1(0);
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: lfd as u64 };
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, lfd, &mut ev);
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: bfd as u64 };
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, bfd, &mut ev);
        let mut bufs: Vec<Vec<u8>> = (0..4096).map(|_| Vec::new()).collect();
        let mut outs: Vec<Vec<u8>> = (0..4096).map(|_| Vec::new()).collect();
        let mut touched: Vec<i32> = Vec::new();
        let mut fifo: VecDeque<i32> = VecDeque::new();
        let mut wbuf: Vec<u8> = Vec::new();
        let mut rbuf: Vec<u8> = Vec::new();
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        loop {
            let n = libc::epoll_wait(ep, evs.as_mut_ptr(), 1024, -1);
            for i in 0..n.max(0) as usize {
                let fd = evs[i].u64 as i32;
                if fd == lfd {
                    loop {
                        let c = libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK);
                        if c < 0 { break; }
                        let one: i32 = 1;
                        libc::setsockopt(c, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one as *const _ as *const _, 4);
                        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: c as u64 };
                        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, c, &mut ev);
                    }
                } else if fd == bfd {
                    if recv(bfd, &mut rbuf) <= 0 { continue; }
                    let mut off = 0;
                    while off < rbuf.len() {
                        let Some(k) = reply_len(&rbuf[off..]) else { break };
                        let Some(c) = fifo.pop_front() else { break };
                        if outs[c as usize].is_empty() { touched.push(c); }
                        outs[c as usize].extend_from_slice(&rbuf[off..off + k]);
                        off += k;
                    }
                    rbuf.drain(..off);
                    for c in touched.drain(..) {
                        send_all(c, &outs[c as usize]);
                        outs[c as usize].clear();
                    }
                } else {
                    let buf = &mut bufs[fd as usize];
                    let r = recv(fd, buf);
                    if r == 0 { libc::close(fd); continue; }
                    if r < 0 { continue; }
                    // requests = count of '*' (GET/SET payloads have none)
                    let cnt = buf.iter().filter(|&&x| x == b'*').count();
                    wbuf.extend_from_slice(buf);
                    buf.clear();
                    for _ in 0..cnt { fifo.push_back(fd); }
                }
            }
            if !wbuf.is_empty() { send_all(bfd, &wbuf); wbuf.clear(); }
        }
    }
}
