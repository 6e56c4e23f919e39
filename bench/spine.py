#!/usr/bin/env python3
"""Spine benchmarks (issue 11): codis-server against redis-server in the same
run, interleaved, one core each for the servers (taskset -c 0) and the
clients on the other core.

  * PUBLISH fan-out: redis-benchmark sends `PUBLISH ch <16 bytes>` (50
    clients, pipeline 16) while 1, 10 or 100 subscribers (raw sockets drained
    by one reader process) receive every message.
  * Transactions: pipelined `MULTI; 10 x INCR; EXEC` blocks from 4
    connections (a Python client; its own CPU is the limit, so read the
    server CPU per transaction).

Prints requests/s and server CPU microseconds per request (utime+stime of the
listening process, all threads) with the ratio ours/redis per round; the
median of the round ratios is the result. Standard library only.

usage: bench/spine.py [--ours ./target/release/codis-server] [--redis redis-server]
                      [--rounds 3] [--seconds 3]
"""

import argparse
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK = os.sysconf("SC_CLK_TCK")


def start(binary, port, workdir):
    args = ["taskset", "-c", "0", binary, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", workdir]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16):
                    return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit(f"{binary} did not start")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK


def subscribers(port, n):
    """Starts a reader process holding n subscriptions to `ch`; returns it."""
    code = f"""
import selectors, socket, sys

from benchutil import free_port
sel = selectors.DefaultSelector()
socks = []
for _ in range({n}):
    s = socket.create_connection(("127.0.0.1", {port}))
    s.sendall(b"SUBSCRIBE ch\\r\\n")
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        try:
            if not key.fileobj.recv(1 << 20):
                sys.exit(0)
        except BlockingIOError:
            pass
"""
    p = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", code],
                         stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    return p


def bench_publish(port, pid, subs, seconds):
    reader = subscribers(port, subs)
    time.sleep(0.2)
    n = 200000
    c0, t0 = cpu_seconds(pid), time.time()
    subprocess.run(["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-c", "50",
                    "-P", "16", "-n", str(n), "-q", "PUBLISH", "ch", "0123456789abcdef"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    c1, t1 = cpu_seconds(pid), time.time()
    reader.kill()
    reader.wait()
    return n / (t1 - t0), (c1 - c0) / n * 1e6


def bench_multi(port, pid, seconds):
    block = b"MULTI\r\n" + b"INCR k{t}\r\n" * 10 + b"EXEC\r\n"
    per_write = 10
    payload = block * per_write
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    sel = selectors.DefaultSelector()
    state = {}
    for s in conns:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        s.sendall(payload)
        state[s] = [b"", 0]
    done = 0
    c0, t0 = cpu_seconds(pid), time.time()
    end = t0 + seconds
    while time.time() < end:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            st = state[s]
            data = st[0] + s.recv(1 << 20)
            got = data.count(b"*10\r\n")
            st[1] += got
            # keep only the tail that may hold a split marker
            st[0] = data[-4:]
            while st[1] >= per_write:
                st[1] -= per_write
                done += per_write
                s.sendall(payload)
    c1, t1 = cpu_seconds(pid), time.time()
    for s in conns:
        s.close()
    return done / (t1 - t0), (c1 - c0) / max(done, 1) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="./target/release/codis-server")
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    a = ap.parse_args()
    tests = [("PUBLISH 1 sub", lambda p, pid: bench_publish(p, pid, 1, a.seconds)),
             ("PUBLISH 10 subs", lambda p, pid: bench_publish(p, pid, 10, a.seconds)),
             ("PUBLISH 100 subs", lambda p, pid: bench_publish(p, pid, 100, a.seconds)),
             ("MULTI+10xINCR+EXEC", lambda p, pid: bench_multi(p, pid, a.seconds))]
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        ports = {"ours": free_port(), "redis": free_port()}
        procs = {"ours": start(a.ours, ports["ours"], d1), "redis": start(a.redis, ports["redis"], d2)}
        try:
            print(f"{'test':22} {'rps ours':>12} {'rps redis':>12} {'ratio':>6}"
                  f" {'cpu us ours':>12} {'cpu us redis':>12} {'ratio':>6}")
            for name, fn in tests:
                rr, cr, res = [], [], {"ours": [], "redis": []}
                for r in range(a.rounds):
                    order = ["ours", "redis"] if r % 2 == 0 else ["redis", "ours"]
                    got = {}
                    for who in order:
                        got[who] = fn(ports[who], procs[who].pid)
                        res[who].append(got[who])
                    rr.append(got["ours"][0] / got["redis"][0])
                    cr.append(got["ours"][1] / got["redis"][1])
                med = lambda xs: statistics.median(xs)
                print(f"{name:22} {med([x[0] for x in res['ours']]):12,.0f}"
                      f" {med([x[0] for x in res['redis']]):12,.0f} {med(rr):6.3f}"
                      f" {med([x[1] for x in res['ours']]):12.2f}"
                      f" {med([x[1] for x in res['redis']]):12.2f} {med(cr):6.3f}", flush=True)
        finally:
            for p in procs.values():
                os.killpg(p.pid, 15)
                p.wait()


if __name__ == "__main__":
    main()
