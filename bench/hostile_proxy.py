#!/usr/bin/env python3
"""A never-reading client against codis-proxy (issue 19's measurement).

Starts a backend (redis-server by default, or --backend-bin for a
codis-server) and a codis-proxy (--proxy-bin, release build by default)
with its default proxy.toml, stores a 1 MiB value, then opens N clients
that pipeline `GET bigkey` as fast as their sockets take it and never read,
for --seconds. Meanwhile one more client sends PING and `GET small` every
20 ms and records its round trips. Prints the proxy's RSS over time, its
peak (VmHWM), the probe's worst and median round trip and how many of the
hostile clients the proxy closed. Loopback only; every process it started
is stopped at the end (by its own pid).

    python3 bench/hostile_proxy.py [--proxy-bin PATH] [--clients 1] [--seconds 5]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchutil import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split()[:2]
                out[k[:-1]] = int(v) * 1024
    return out


def cmd(*args):
    b = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        b += b"$%d\r\n%s\r\n" % (len(a), a)
    return b


def read_reply(f):
    line = f.readline()
    if line[:1] == b"$":
        n = int(line[1:])
        if n >= 0:
            f.read(n + 2)
    return line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy-bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "codis-proxy"))
    ap.add_argument("--backend-bin", default="redis-server")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rss-cap-mb", type=int, default=3000,
                    help="stop early when the proxy's RSS passes this")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hostile-")
    bport, pport, aport = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [a.backend_bin, "--port", str(bport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(bport)
        slots = [{"id": i, "backend_addr": f"127.0.0.1:{bport}", "backend_addr_group_id": 1}
                 for i in range(1024)]
        with open(os.path.join(tmp, "slots.json"), "w") as f:
            json.dump(slots, f)
        proxy = subprocess.Popen(
            [a.proxy_bin, f"--fillslots={tmp}/slots.json", f"--host-proxy=127.0.0.1:{pport}",
             f"--host-admin=127.0.0.1:{aport}", f"--log={tmp}/proxy.log", "--log-level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proxy)
        wait_port(pport)
        s = socket.create_connection(("127.0.0.1", bport))
        f = s.makefile("rb")
        s.sendall(cmd("SET", "bigkey", b"x" * (1 << 20)) + cmd("SET", "small", "v"))
        read_reply(f), read_reply(f)
        s.close()
        base = rss(proxy.pid)

        stop = threading.Event()
        closed = [0]

        def hostile():
            c = socket.create_connection(("127.0.0.1", pport))
            c.settimeout(0.2)
            chunk = cmd("GET", "bigkey") * 1000
            while not stop.is_set():
                try:
                    c.send(chunk)
                except socket.timeout:
                    continue
                except OSError:
                    closed[0] += 1
                    return
            c.close()

        rtts = []

        def probe():
            c = socket.create_connection(("127.0.0.1", pport))
            c.settimeout(10)
            f = c.makefile("rb")
            while not stop.is_set():
                t = time.time()
                try:
                    c.sendall(cmd("PING") + cmd("GET", "small"))
                    read_reply(f), read_reply(f)
                except OSError:
                    rtts.append(10.0)
                    return
                rtts.append(time.time() - t)
                time.sleep(0.02)

        threads = [threading.Thread(target=hostile) for _ in range(a.clients)]
        threads.append(threading.Thread(target=probe))
        for t in threads:
            t.start()
        t0 = time.time()
        samples = []
        while time.time() - t0 < a.seconds:
            time.sleep(0.25)
            r = rss(proxy.pid)
            samples.append((round(time.time() - t0, 2), r["VmRSS"] >> 20))
            if r["VmRSS"] >> 20 > a.rss_cap_mb:
                print(f"stopping early: RSS over {a.rss_cap_mb} MiB", file=sys.stderr)
                break
        # Where the replies are: the backend's buffers for its clients.
        try:
            b = socket.create_connection(("127.0.0.1", bport))
            b.settimeout(5)
            bf = b.makefile("rb")
            b.sendall(cmd("INFO", "memory"))
            n = int(bf.readline()[1:])
            info = bf.read(n + 2).decode()
            b.close()
            backend_clients = [l for l in info.split("\r\n")
                               if l.startswith("mem_clients_normal:")]
        except OSError:
            backend_clients = ["INFO not answered within 5 s"]
        backend_rss = rss(procs[0].pid)
        stop.set()
        for t in threads:
            t.join(15)
        end = rss(proxy.pid)
        rtts.sort()
        print(f"proxy: {a.proxy_bin}")
        print(f"clients: {a.clients} never reading, {time.time() - t0:.1f} s")
        print(f"RSS MiB before {base['VmRSS'] >> 20}, samples (s, MiB): {samples}")
        print(f"peak RSS (VmHWM) MiB {end['VmHWM'] >> 20}")
        if rtts:
            print(f"probe round trip (PING + GET small): median {rtts[len(rtts) // 2] * 1000:.1f} ms, "
                  f"worst {rtts[-1] * 1000:.1f} ms over {len(rtts)} tries")
        print(f"hostile clients closed by the proxy: {closed[0]} of {a.clients}")
        print(f"backend at the end of the load: {backend_clients}, "
              f"RSS MiB {backend_rss['VmRSS'] >> 20}, peak {backend_rss['VmHWM'] >> 20}")
        with open(os.path.join(tmp, "proxy.log")) as f:
            print("proxy log (last lines):", "".join(f.readlines()[-3:]).strip())
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
