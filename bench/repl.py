#!/usr/bin/env python3
"""Replication, codis-server vs redis-server 7.0.15 as the master, same run.

The master and redis-benchmark are pinned to core 0, the replica to core
1 (so the replica keeps up on its own core and the lag shows how the
master feeds it); this script floats. Two measures per master:

  fullsync  DEBUG POPULATE N keys, then a replica starts with --replicaof
            (diskless: repl-diskless-sync yes, delay 0): the time until
            the replica reports master_link_status:up with N keys, and the
            master's peak PSS during it against its PSS before (PSS of the
            server and, for redis, its fork child: shared pages counted
            once, sampled every 20 ms).
  lag       with the replica online, redis-benchmark -t set -P 16 -c 50 on
            the master; every 10 ms this script reads the master's
            master_repl_offset and the replica's slave_repl_offset: lag in
            bytes (their difference) and in ms (how long until the replica
            reached an offset the master had at a sample), p50 / p99.

The replica is redis-server 7.0.15 for both masters by default
(--replica ours: our codis-server instead).

usage: bench/repl.py [--ours target/release/codis-server] [--n 1000000]
                     [--replica redis|ours] [--bench-seconds 5]
"""
import argparse, os, shutil, signal, subprocess, tempfile, threading, time

from benchutil import free_port
import bgsave
from bgsave import Conn, cli, pss_kb


def start(binary, port, d, core, extra=()):
    """A server pinned to `core`, diskless full syncs starting at once."""
    return bgsave.start(binary, port, d, ["--repl-diskless-sync", "yes",
                                          "--repl-diskless-sync-delay", "0"] + list(extra),
                        core=core)[0]


def stop(p):
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def field(info, name):
    for line in info.split("\r\n"):
        if line.startswith(name + ":"):
            return line.split(":", 1)[1]
    return None


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def measure(name, master_bin, replica_bin, n, secs):
    dm = tempfile.mkdtemp(prefix=f"repl-{name}-m-")
    dr = tempfile.mkdtemp(prefix=f"repl-{name}-r-")
    pm_port, pr_port = free_port(), free_port()
    pm = start(master_bin, pm_port, dm, 0)
    pr = None
    try:
        cli(pm_port, "DEBUG", "POPULATE", n, "key", 16)
        time.sleep(0.5)
        before = pss_kb(pm.pid)
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], pss_kb(pm.pid))
                time.sleep(0.02)

        t = threading.Thread(target=sample)
        t.start()
        t0 = time.time()
        pr = start(replica_bin, pr_port, dr, 1, ["--replicaof", "127.0.0.1", str(pm_port)])
        rc = Conn(pr_port)
        while True:
            info = rc.call("INFO", "replication")
            if field(info, "master_link_status") == "up" and rc.call("DBSIZE") == str(n):
                break
            if time.time() - t0 > 600:
                raise SystemExit("the full sync did not end")
            time.sleep(0.005)
        sync_s = time.time() - t0
        done.set()
        t.join()
        # Lag under a write load.
        mc = Conn(pm_port)
        samples, replica_offs = [], []
        result = {}

        def run_bench():
            out = subprocess.run(["taskset", "-c", "0", "redis-benchmark", "-p", str(pm_port),
                                  "-t", "set", "-r", "1000000", "-n", str(int(secs * 300_000)),
                                  "-c", "50", "-P", "16", "--csv"],
                                 capture_output=True, text=True)
            rows = [l for l in out.stdout.splitlines() if l.startswith('"SET"')]
            result["rps"] = float(rows[-1].split(",")[1].strip('"')) if rows else float("nan")

        b = threading.Thread(target=run_bench)
        b.start()
        while b.is_alive():
            now = time.time()
            m = int(field(mc.call("INFO", "replication"), "master_repl_offset"))
            r = int(field(rc.call("INFO", "replication"), "slave_repl_offset") or 0)
            samples.append((now, m))
            replica_offs.append((time.time(), r))
            time.sleep(0.01)
        b.join()
        # Let the replica catch up, then derive the lags.
        time.sleep(1)
        lag_bytes = []
        j = 0
        lag_ms = []
        for (ts, m), (_, r) in zip(samples, replica_offs):
            lag_bytes.append(max(0, m - r))
        for ts, m in samples:
            while j < len(replica_offs) and (replica_offs[j][1] < m or replica_offs[j][0] < ts):
                j += 1
            if j < len(replica_offs):
                lag_ms.append((replica_offs[j][0] - ts) * 1000)
        mc.close()
        rc.close()
        return dict(name=name, sync_s=sync_s, before_mb=before / 1024, peak_mb=peak[0] / 1024,
                    ratio=peak[0] / max(1, before), rps=result.get("rps", float("nan")),
                    lb50=pct(lag_bytes, 0.5), lb99=pct(lag_bytes, 0.99),
                    lm50=pct(lag_ms, 0.5), lm99=pct(lag_ms, 0.99), nsamples=len(samples))
    finally:
        if pr:
            stop(pr)
        stop(pm)
        shutil.rmtree(dm, ignore_errors=True)
        shutil.rmtree(dr, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="target/release/codis-server")
    ap.add_argument("--redis", default=shutil.which("redis-server") or "redis-server")
    ap.add_argument("--replica", default="redis", choices=["redis", "ours"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bench-seconds", type=float, default=5)
    a = ap.parse_args()
    replica = a.redis if a.replica == "redis" else a.ours
    rows = [measure("ours", a.ours, replica, a.n, a.bench_seconds),
            measure("redis", a.redis, replica, a.n, a.bench_seconds)]
    print(f"# {a.n} keys, replica: {a.replica}")
    print("master  sync_s  pss_before_MB  pss_peak_MB  peak/before  set_rps  "
          "lag_bytes_p50  lag_bytes_p99  lag_ms_p50  lag_ms_p99  samples")
    for r in rows:
        print(f"{r['name']:6} {r['sync_s']:7.2f} {r['before_mb']:14.1f} {r['peak_mb']:12.1f} "
              f"{r['ratio']:12.3f} {r['rps']:8.0f} {r['lb50']:14} {r['lb99']:14} "
              f"{r['lm50']:11.1f} {r['lm99']:11.1f} {r['nsamples']:8}")
    o, rd = rows
    print(f"ours/redis: sync time {o['sync_s'] / rd['sync_s']:.3f}, "
          f"peak/before {o['ratio']:.3f} vs {rd['ratio']:.3f}")


if __name__ == "__main__":
    main()
