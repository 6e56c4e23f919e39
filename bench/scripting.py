#!/usr/bin/env python3
"""Scripting benchmarks (issue 15): codis-server against redis-server in the
same run, interleaved, the servers on core 0 (taskset -c 0) and
redis-benchmark on core 1.

Tests (each `redis-benchmark -c 50 -n N -P 16 <command>`, as issue 15
states them: without `-r`, so `key:__rand_int__` is one key):
  * evalsha_set: EVALSHA of `return redis.call('SET', KEYS[1], ARGV[1])`
    with 1 key `key:__rand_int__` and value `v`;
  * evalsha_set_r: the same with `-r 100000` (100,000 keys);
  * ratelimit: EVALSHA of an INCR + EXPIRE rate limiter (1 key);
  * eval_uncached: EVAL of a script whose body changes with every request
    (`return __rand_int__`: 100,000 different bodies, so mostly compiles;
    `-P 1`);
  * fcall (when the server has FUNCTION): FCALL of a registered function
    doing the same SET.

Prints requests/s and server CPU microseconds per request (utime+stime of
the server process, all threads) with the ratio ours/redis per round; the
median of the round ratios is the result. Standard library only.

usage: bench/scripting.py [--ours ./target/release/codis-server]
                          [--redis redis-server] [--rounds 3] [--requests 200000]
"""

import argparse
import hashlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchutil import free_port
from spine import cpu_seconds, start

SET_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])"
RATE_SCRIPT = ("local n = redis.call('INCR', KEYS[1]) "
               "if n == 1 then redis.call('EXPIRE', KEYS[1], 60) end "
               "if n > 1000000 then return 0 end return 1")
FUNCTION_LIB = ("#!lua name=benchlib\n"
                "redis.register_function('fset', function(keys, args) "
                "return redis.call('SET', keys[1], args[1]) end)")


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True)
    return out.stdout.strip()


def bench(port, args, n, pipeline, rand):
    cmd = ["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n),
           "-P", str(pipeline), *(["-r", "100000"] if rand else []), "--csv", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    rows = [l for l in res.stdout.splitlines() if l and not l.startswith('"test"')]
    if not rows:
        sys.exit(f"redis-benchmark {' '.join(args)} on port {port} failed: {res.stdout}{res.stderr}")
    return float(rows[-1].split(",")[1].strip('"'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="./target/release/codis-server")
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    servers = {}
    for name, binary in (("ours", a.ours), ("redis", a.redis)):
        port = free_port()
        d = os.path.join(tmp, name)
        os.mkdir(d)
        servers[name] = (start(binary, port, d), port)
    try:
        fcall = True
        for name, (_, port) in servers.items():
            if cli(port, "FUNCTION", "LOAD", "REPLACE", FUNCTION_LIB) != "benchlib":
                fcall = False
        set_sha = hashlib.sha1(SET_SCRIPT.encode()).hexdigest()
        rate_sha = hashlib.sha1(RATE_SCRIPT.encode()).hexdigest()
        tests = [
            ("evalsha_set", ["EVALSHA", set_sha, "1", "key:__rand_int__", "v"], 16, a.requests, False),
            ("evalsha_set_r", ["EVALSHA", set_sha, "1", "key:__rand_int__", "v"], 16, a.requests, True),
            ("ratelimit", ["EVALSHA", rate_sha, "1", "rl:__rand_int__"], 16, a.requests, False),
            ("eval_uncached", ["EVAL", "return __rand_int__", "0"], 1, a.requests // 4, True),
        ]
        if fcall:
            tests.append(("fcall", ["FCALL", "fset", "1", "key:__rand_int__", "v"], 16, a.requests, False))
        results = {t[0]: [] for t in tests}
        for r in range(a.rounds):
            for test, args, pipeline, n, rand in tests:
                row = {}
                for name in (("ours", "redis") if r % 2 == 0 else ("redis", "ours")):
                    proc, port = servers[name]
                    # Every test starts from an empty script cache (after the
                    # uncached test it would hold ~50,000 scripts, which
                    # slows both servers' Lua collector).
                    cli(port, "SCRIPT", "FLUSH")
                    if test != "eval_uncached":
                        cli(port, "SCRIPT", "LOAD", SET_SCRIPT)
                        cli(port, "SCRIPT", "LOAD", RATE_SCRIPT)
                    c0 = cpu_seconds(proc.pid)
                    rps = bench(port, args, n, pipeline, rand)
                    c1 = cpu_seconds(proc.pid)
                    row[name] = (rps, (c1 - c0) * 1e6 / n)
                ratio = (row["ours"][0] / row["redis"][0], row["ours"][1] / row["redis"][1])
                results[test].append(ratio)
                print(f"round {r + 1} {test:14} ours {row['ours'][0]:>10.0f} rps "
                      f"{row['ours'][1]:6.2f} us/req | redis {row['redis'][0]:>10.0f} rps "
                      f"{row['redis'][1]:6.2f} us/req | rps x{ratio[0]:.3f} cpu x{ratio[1]:.3f}",
                      flush=True)
        print("median of the round ratios (ours/redis):")
        for test, rs in results.items():
            print(f"  {test:14} rps x{statistics.median(x[0] for x in rs):.3f}  "
                  f"cpu/request x{statistics.median(x[1] for x in rs):.3f}")
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
