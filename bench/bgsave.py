#!/usr/bin/env python3
"""BGSAVE and start-up load, codis-server vs redis-server 7.0.15, same run.

For each server (pinned to core 0; redis-benchmark and this script on
core 1):
  1. fill a dataset: `strings` = DEBUG POPULATE N keys, or `hash` = one hash
     of N fields (pipelined HSET);
  2. p99 of `redis-benchmark -t set -r 1000000 -P 16 -c 50` while this
     script polls the server as in step 3 (INFO over one connection every
     5 ms, the PSS every 50 ms), without a save;
  3. the same benchmark again, with a BGSAVE started 0.5 s in: peak memory
     during the save (PSS of the server and, for redis, its fork child:
     shared pages counted once), save time, p99;
  4. restart on the file: "DB loaded from disk" time (the file holds the
     keys the benchmark had added by the snapshot point too: `loaded`).

usage: bench/bgsave.py [--ours target/release/codis-server] [--kind strings|hash]
                       [--n 1000000] [--bench-seconds 6]
"""
import argparse, os, re, shutil, signal, socket, subprocess, tempfile, threading, time

from benchutil import free_port


class Conn:
    """One RESP connection (polling INFO without a redis-cli process each
    time, which would itself cost the server's clients latency)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        line = self.f.readline()
        if line[:1] == b"$":
            n = int(line[1:])
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        return line[1:].strip().decode()

    def close(self):
        self.s.close()


def cli(port, *args, timeout=600):
    out = subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args],
                         capture_output=True, text=True, timeout=timeout)
    return out.stdout.strip()


def pss_kb(pid):
    total = 0
    pids = [pid]
    try:
        for line in open(f"/proc/{pid}/task/{pid}/children").read().split():
            pids.append(int(line))
    except OSError:
        pass
    for p in pids:
        try:
            for line in open(f"/proc/{p}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def start(binary, port, d, extra=(), core=0):
    log = open(os.path.join(d, "server.log"), "a")
    cmd = ["taskset", "-c", str(core), binary, "--port", str(port), "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--dir", d,
           "--enable-debug-command", "yes"] + list(extra)
    p = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 300:
        if cli(port, "PING") == "PONG":
            return p, time.time() - t0
        if p.poll() is not None:
            raise SystemExit(f"{binary} exited: " + open(os.path.join(d, "server.log")).read()[-2000:])
        time.sleep(0.005)
    raise SystemExit("server did not start")


def stop(p):
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def bench(port, seconds):
    n = int(seconds * 600_000)
    out = subprocess.run(["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-t", "set",
                          "-r", "1000000", "-n", str(n), "-c", "50", "-P", "16", "--csv"],
                         capture_output=True, text=True)
    rows = [l for l in out.stdout.splitlines() if l.startswith('"SET"')]
    cols = [c.strip('"') for c in rows[-1].split(",")]
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    return float(cols[1]), float(cols[6]), float(cols[7])


def fill(port, kind, n):
    if kind == "strings":
        cli(port, "DEBUG", "POPULATE", n, "key", 16)
        return
    # one hash of n fields, pipelined through redis-cli --pipe
    proto = bytearray()
    batch = 1000
    for start_i in range(0, n, batch):
        args = [b"HSET", b"bighash"]
        for i in range(start_i, min(n, start_i + batch)):
            args += [b"field:%d" % i, b"value:%d" % i]
        proto += b"*%d\r\n" % len(args)
        for a in args:
            proto += b"$%d\r\n%s\r\n" % (len(a), a)
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=bytes(proto),
                   capture_output=True)


def measure(name, binary, kind, n, secs):
    d = tempfile.mkdtemp(prefix=f"bgsave-{name}-")
    port = free_port()
    p, _ = start(binary, port, d)
    try:
        fill(port, kind, n)
        keys = cli(port, "DBSIZE")
        conn = Conn(port)

        def poll(result, until):
            """Samples INFO every 5 ms and the PSS every 50 ms (reading
            smaps_rollup takes the server's mmap lock) while the benchmark
            runs; returns the peak PSS and when `until(info)` first held."""
            peak, at, n = 0, None, 0
            while "bench" not in result:
                if n % 10 == 0:
                    peak = max(peak, pss_kb(p.pid))
                n += 1
                info = conn.call("INFO", "persistence")
                if at is None and until(info):
                    at = time.time()
                time.sleep(0.005)
            return peak, at

        def run_bench(result):
            result["bench"] = bench(port, secs)

        base = {}
        t = threading.Thread(target=run_bench, args=(base,))
        t.start()
        poll(base, lambda info: False)
        t.join()
        _, p99_base, max_base = base["bench"]
        time.sleep(0.5)
        before = pss_kb(p.pid)
        result = {}
        t = threading.Thread(target=run_bench, args=(result,))
        t.start()
        time.sleep(0.5)
        t0 = time.time()
        reply = conn.call("BGSAVE")
        assert "started" in reply, reply
        peak, done_at = poll(result, lambda info: "rdb_bgsave_in_progress:0" in info)
        peak = [max(before, peak)]
        while done_at is None:
            peak[0] = max(peak[0], pss_kb(p.pid))  # (unloaded by now)
            if "rdb_bgsave_in_progress:0" in conn.call("INFO", "persistence"):
                done_at = time.time()
            time.sleep(0.005)
        save_s = done_at - t0
        ok = "rdb_last_bgsave_status:ok" in conn.call("INFO", "persistence")
        conn.close()
        t.join()
        _, p99_save, max_save = result["bench"]
        size = os.path.getsize(os.path.join(d, "dump.rdb"))
    finally:
        stop(p)
    # start-up load of the file just written
    port2 = free_port()
    p2, _ = start(binary, port2, d)
    loaded = cli(port2, "DBSIZE")
    stop(p2)
    log = open(os.path.join(d, "server.log")).read()
    m = re.findall(r"DB loaded from disk: ([0-9.]+) seconds", log)
    load_s = float(m[-1]) if m else float("nan")
    shutil.rmtree(d, ignore_errors=True)
    return dict(name=name, keys=keys, loaded=loaded, ok=ok, before_mb=before / 1024,
                peak_mb=peak[0] / 1024, ratio=peak[0] / max(before, 1), save_s=save_s,
                p99_base=p99_base, p99_save=p99_save, max_base=max_base, max_save=max_save,
                file_mb=size / 1e6, load_s=load_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="target/release/codis-server")
    ap.add_argument("--redis", default=shutil.which("redis-server") or "redis-server")
    ap.add_argument("--kind", default="strings", choices=["strings", "hash"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bench-seconds", type=float, default=6)
    a = ap.parse_args()
    # This script (and what it spawns) shares core 1 with redis-benchmark,
    # off the server's core.
    os.sched_setaffinity(0, {1})
    rows = [measure("codis-server", a.ours, a.kind, a.n, a.bench_seconds),
            measure("redis-server", a.redis, a.kind, a.n, a.bench_seconds)]
    print(f"\n## BGSAVE of {a.n} {a.kind} under redis-benchmark SET -P 16 -c 50 (server on core 0)")
    print(f"{'server':14} {'keys':>8} {'loaded':>8} {'ok':>3} {'mem before':>10} {'peak':>8} {'peak/before':>11} "
          f"{'save s':>7} {'p99 base':>8} {'p99 save':>8} {'max base':>8} {'max save':>8} {'file MB':>8} {'load s':>7}")
    for r in rows:
        print(f"{r['name']:14} {r['keys']:>8} {r['loaded']:>8} {str(r['ok'])[0]:>3} {r['before_mb']:>9.1f}M {r['peak_mb']:>7.1f}M "
              f"{r['ratio']:>11.3f} {r['save_s']:>7.3f} {r['p99_base']:>8.3f} {r['p99_save']:>8.3f} "
              f"{r['max_base']:>8.3f} {r['max_save']:>8.3f} {r['file_mb']:>8.2f} {r['load_s']:>7.3f}")
    o, rd = rows
    print(f"ratios ours/redis: peak/before {o['ratio'] / rd['ratio']:.3f}, save time {o['save_s'] / rd['save_s']:.3f}, "
          f"load time {o['load_s'] / max(rd['load_s'], 1e-9):.3f}; ours p99 save/base {o['p99_save'] / max(o['p99_base'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
