#!/usr/bin/env python3
"""SCAN through codis-proxy against a direct SCAN of one backend.

Starts two codis-servers (release build) with the slots split between them
and a codis-proxy in front, fills N keys through the proxy (pipelined),
then times a full SCAN (COUNT 1000) of the whole cluster through the proxy
and a full SCAN of one backend directly, and prints keys/s for both.
Loopback only; every process is stopped at the end.

    python3 bench/scan_proxy.py [--keys 1000000] [--count 1000]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import redis

from benchutil import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def full_scan(r, count):
    n, cursor, calls = 0, 0, 0
    while True:
        cursor, keys = r.scan(cursor, count=count)
        n += len(keys)
        calls += 1
        if cursor == 0:
            return n, calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--count", type=int, default=1000)
    a = ap.parse_args()
    rel = os.path.join(ROOT, "target", "release")
    procs = []
    tmp = tempfile.mkdtemp(prefix="scanbench-")
    try:
        ports = [free_port(), free_port()]
        for p in ports:
            procs.append(subprocess.Popen(
                [os.path.join(rel, "codis-server"), "--port", str(p), "--save", "",
                 "--appendonly", "no", "--dir", tmp],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in ports:
            wait_port(p)
        slots = [{"id": i, "backend_addr": "127.0.0.1:%d" % ports[0 if i < 512 else 1]}
                 for i in range(1024)]
        with open(os.path.join(tmp, "slots.json"), "w") as f:
            json.dump(slots, f)
        pport = free_port()
        procs.append(subprocess.Popen(
            [os.path.join(rel, "codis-proxy"), "--fillslots=" + os.path.join(tmp, "slots.json"),
             "--host-proxy=127.0.0.1:%d" % pport, "--host-admin=127.0.0.1:0",
             "--log=" + os.path.join(tmp, "proxy.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(pport)
        px = redis.Redis(port=pport)
        t0 = time.time()
        pipe = px.pipeline(transaction=False)
        for i in range(a.keys):
            pipe.set("key:%d" % i, "v")
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        fill = time.time() - t0
        direct = redis.Redis(port=ports[0])
        on_first = direct.dbsize()
        t0 = time.time()
        n_px, calls_px = full_scan(px, a.count)
        t_px = time.time() - t0
        t0 = time.time()
        n_d, calls_d = full_scan(direct, a.count)
        t_d = time.time() - t0
        print(f"filled {a.keys} keys through the proxy in {fill:.1f} s")
        print(f"proxy SCAN COUNT {a.count}: {n_px} keys ({a.keys} expected), {calls_px} calls, "
              f"{t_px:.2f} s, {n_px / t_px:,.0f} keys/s")
        print(f"direct SCAN of one backend COUNT {a.count}: {n_d} keys ({on_first} there), "
              f"{calls_d} calls, {t_d:.2f} s, {n_d / t_d:,.0f} keys/s")
        print(f"ratio proxy/direct keys/s: {(n_px / t_px) / (n_d / t_d):.2f}")
        if n_px < a.keys:
            sys.exit("the proxy SCAN missed keys")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
