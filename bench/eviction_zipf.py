#!/usr/bin/env python3
"""Cache hit ratio under maxmemory: codis-server vs redis-server, same run.

A read-through cache workload: GET a key drawn from a Zipf(s) distribution
over N keys; on a miss, SET it (the "load from the database" step). N is
`--factor` times the number of keys that fit in `--maxmemory` (measured by
filling one server first), so the cache holds about 1/factor of the keys
and the policy decides the hit ratio. Both servers get the same request
sequence, interleaved in chunks, and the hit ratio is counted over the
second half (after warm-up).

usage: bench/eviction_zipf.py --ours target/release/codis-server
         [--redis redis-server] [--maxmemory 16mb] [--policy allkeys-lru]
         [--value 100] [--factor 10] [--requests 1500000] [--zipf 0.99]
Needs the `redis` Python package.
"""
import argparse
import bisect
import itertools
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

import redis


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(binary, args, workdir):
    port = free_port()
    d = tempfile.mkdtemp(dir=workdir)
    p = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", d] + args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    r = redis.Redis(port=port)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return p, r


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--maxmemory", default="16mb")
    ap.add_argument("--policy", default="allkeys-lru")
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--requests", type=int, default=1_500_000)
    ap.add_argument("--zipf", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="zipf-")
    args = ["--maxmemory", a.maxmemory, "--maxmemory-policy", a.policy]
    servers = {}
    try:
        servers["redis"] = start(a.redis, args, work)
        servers["ours"] = start(a.ours, args, work)
        value = b"v" * a.value
        # How many keys fit: fill redis until it evicts.
        r = servers["redis"][1]
        n = 0
        while int(r.info("stats")["evicted_keys"]) == 0:
            pl = r.pipeline(transaction=False)
            for i in range(n, n + 5000):
                pl.set(f"fit:{i}", value)
            pl.execute()
            n += 5000
        fit = r.dbsize()
        for _, c in servers.values():
            c.flushall()
        universe = fit * a.factor
        rng = random.Random(a.seed)
        weights = [1.0 / (k ** a.zipf) for k in range(1, universe + 1)]
        cdf = list(itertools.accumulate(weights))
        total = cdf[-1]
        # Ranks to key names in a random order (hot keys spread over slots).
        names = list(range(universe))
        rng.shuffle(names)
        hits = {k: 0 for k in servers}
        counted = {k: 0 for k in servers}
        chunk = 20_000
        done = 0
        start_t = time.time()
        while done < a.requests:
            keys = [
                f"key:{names[bisect.bisect_left(cdf, rng.random() * total)]}"
                for _ in range(min(chunk, a.requests - done))
            ]
            second_half = done >= a.requests // 2
            for name, (_, c) in servers.items():
                for i in range(0, len(keys), 500):
                    batch = keys[i : i + 500]
                    got = c.mget(batch)
                    miss = [k for k, v in zip(batch, got) if v is None]
                    if second_half:
                        hits[name] += len(batch) - len(miss)
                        counted[name] += len(batch)
                    if miss:
                        pl = c.pipeline(transaction=False)
                        for k in miss:
                            pl.set(k, value)
                        pl.execute()
            done += len(keys)
        print(
            f"# zipf s={a.zipf} universe={universe} keys (cache holds ~{fit} in redis) "
            f"value={a.value}B maxmemory={a.maxmemory} policy={a.policy} "
            f"requests={a.requests} ({time.time() - start_t:.0f}s)"
        )
        print(f"{'server':8} {'hit ratio':>9} {'keys':>8} {'used_memory':>12} {'rss':>12} {'evicted':>9}")
        ratio = {}
        for name, (p, c) in servers.items():
            ratio[name] = hits[name] / max(1, counted[name])
            info = c.info()
            print(
                f"{name:8} {ratio[name]:9.4f} {c.dbsize():8} {info['used_memory']:12} "
                f"{rss(p.pid):12} {info['evicted_keys']:9}"
            )
        print(f"hit ratio ours/redis: {ratio['ours'] / max(ratio['redis'], 1e-9):.4f}")
    finally:
        for p, _ in servers.values():
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
