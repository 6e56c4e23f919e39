#!/usr/bin/env python3
"""Cluster operations with codis-ctl, one run (issue 14's measurements).

Sets up etcd (Debian's etcd-server) on free ports, two of our codis-servers
(group 1 and group 2) and two codis-proxies following the table in etcd,
then measures:

1. per-slot orchestration overhead: 512 empty slots moved there and back;
2. `codis-ctl migrate` of the ~1M keys of slots 512-1023 (2M random
   16-byte keys filled by redis-benchmark) while two clients (one per
   proxy, separate processes) INCR counters: end-to-end time, and the
   clients' p50/p99 in the 3 s before the move and during it, errors
   (`--rate` INCRs per second per client, default 5000; 0: flat out;
   `--client native` uses target/release/bench-incr, whose latencies do
   not include a Python interpreter's scheduling);
3. how fast a table change reaches both proxies: 100 writes of the table
   key, each followed by polling both proxies' admin API until they serve
   that version (p50/p99/max);
4. proxy throughput with the table from etcd vs from a file (same servers,
   redis-benchmark SET/GET -P 16 through each, alternating rounds).

usage: bench/cluster.py [--bin target/release] [--keys 2000000] [--rounds 3]
"""
import argparse, base64, json, multiprocessing, os, re, shutil, signal, socket
import statistics, subprocess, tempfile, time, urllib.request, zlib

from benchutil import free_port, kill, spawn
from bgsave import Conn, cli






def wait_port(port, within=30):
    t0 = time.time()
    while time.time() - t0 < within:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing listens on {port}")


def etcd_call(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def b64(s):
    return base64.b64encode(s.encode()).decode()


def proxy_version(admin):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/proxy/stats", timeout=5) as r:
        return json.loads(r.read())["table"]["version"]


def ctl(bins, store, *args):
    out = subprocess.run([os.path.join(bins, "codis-ctl"), store] + list(args),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"codis-ctl {args} failed: {out.stdout}{out.stderr}")
    return out.stdout + out.stderr


def load_client(port, stop_at, rate, q):
    """INCR loop (`rate` ops/s, 0: flat out); (time, latency s) samples and
    the error count."""
    c = Conn(port)
    samples, errors, i = [], 0, 0
    t_next = time.time()
    while time.time() < stop_at:
        if rate:
            t_next += 1.0 / rate
            pause = t_next - time.time()
            if pause > 0:
                time.sleep(pause)
        k = f"ctr:{port}:{i % 1000}"
        i += 1
        t0 = time.perf_counter()
        r = c.call("INCR", k)
        dt = time.perf_counter() - t0
        if not r.lstrip("-").isdigit():
            errors += 1
        samples.append((time.time(), dt, zlib.crc32(k.encode()) % 1024 >= 512))
    q.put((samples, errors))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def run():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--keys", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=5000,
                    help="INCRs per second per load client (0: flat out)")
    ap.add_argument("--ctl-args", default="", help="extra codis-ctl migrate options")
    ap.add_argument("--proxy-args", default="", help="extra codis-proxy options")
    ap.add_argument("--client", choices=["python", "native"], default="python",
                    help="load clients: Python processes, or target/release/bench-incr")
    a = ap.parse_args()
    bins = os.path.abspath(a.bin)
    root = tempfile.mkdtemp(prefix="cluster-bench-")
    procs = []
    try:
        ep, pp = free_port(), free_port()
        procs.append(spawn(["etcd", "--data-dir", os.path.join(root, "etcd"),
                            "--listen-client-urls", f"http://127.0.0.1:{ep}",
                            "--advertise-client-urls", f"http://127.0.0.1:{ep}",
                            "--listen-peer-urls", f"http://127.0.0.1:{pp}",
                            "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
                            "--initial-cluster", f"default=http://127.0.0.1:{pp}"], root, "etcd.log"))
        wait_port(ep)
        time.sleep(1)
        store = f"etcd://127.0.0.1:{ep}/bench"
        s = [free_port(), free_port()]
        for p in s:
            d = os.path.join(root, f"s{p}")
            os.mkdir(d)
            procs.append(spawn([os.path.join(bins, "codis-server"), "--port", str(p), "--bind",
                                "127.0.0.1", "--save", "", "--dir", d], d, "server.log"))
            wait_port(p)
        ctl(bins, store, "group", "add", "1", f"127.0.0.1:{s[0]}")
        ctl(bins, store, "group", "add", "2", f"127.0.0.1:{s[1]}")
        ctl(bins, store, "assign", "--slots", "0-1023", "--group", "1")
        px, adm = [free_port(), free_port()], [free_port(), free_port()]
        for p, ad in zip(px, adm):
            procs.append(spawn([os.path.join(bins, "codis-proxy"), f"--fillslots={store}",
                                "--product_name=bench", f"--host-proxy=127.0.0.1:{p}",
                                f"--host-admin=127.0.0.1:{ad}", *a.proxy_args.split()],
                               root, f"proxy{p}.log"))
            wait_port(p)
        time.sleep(0.5)

        # 1. Orchestration overhead on empty slots.
        over = []
        for to in ("2", "1"):
            out = ctl(bins, store, "migrate", "--slots", "512-1023", "--to", to)
            secs = float(re.search(r"done in ([0-9.]+)s", out).group(1))
            over.append(secs / 512 * 1000)
        print(f"1. orchestration, 512 empty slots, 2 proxies: "
              f"{over[0]:.3f} / {over[1]:.3f} ms per slot")

        # 2. The big move under load.
        subprocess.run(["redis-benchmark", "-p", str(s[0]), "-t", "set", "-n", str(a.keys),
                        "-r", "100000000", "-d", "16", "-P", "64", "-q"],
                       capture_output=True, check=True)
        keys_total = int(cli(s[0], "DBSIZE"))
        q = multiprocessing.Queue()
        stop_at = time.time() + 3.0 + 30.0
        if a.client == "python":
            clients = [multiprocessing.Process(target=load_client, args=(p, stop_at, a.rate, q))
                       for p in px]
            for c in clients:
                c.start()
        else:
            outs = [os.path.join(root, f"load{p}.txt") for p in px]
            clients = [subprocess.Popen([os.path.join(bins, "bench-incr"), str(p), str(a.rate),
                                         "33", o]) for p, o in zip(px, outs)]
        time.sleep(3.0)
        t_start = time.time()
        out = ctl(bins, store, "migrate", "--slots", "512-1023", "--to", "2", *a.ctl_args.split())
        t_end = time.time()
        moved = int(re.findall(r"([0-9]+) keys moved", out)[-1])
        secs = float(re.search(r"done in ([0-9.]+)s", out).group(1))
        if a.client == "python":
            results = [q.get() for _ in clients]
            for c in clients:
                c.join()
            samples = [x for r in results for x in r[0]]
            errors = sum(r[1] for r in results)
        else:
            for c in clients:
                c.terminate()
                c.wait()
            samples, errors = [], 0
            for o in outs:
                for line in open(o):
                    f = line.split()
                    if len(f) == 4:
                        samples.append((float(f[0]), float(f[1]), f[2] == "1"))
                        errors += f[3] != "1"
        before = [dt for t, dt, _ in samples if t_start - 3.0 <= t < t_start]
        during = [dt for t, dt, _ in samples if t_start <= t < t_end]
        during_moving = [dt for t, dt, m in samples if t_start <= t < t_end and m]
        during_still = [dt for t, dt, m in samples if t_start <= t < t_end and not m]
        print(f"2. migrate 512 slots, {moved} of {keys_total} keys moved: {secs:.3f} s "
              f"(codis-ctl wall {t_end - t_start:.3f} s); INCR load through 2 proxies "
              f"({a.rate or 'flat-out'} per {a.client} client): "
              f"{len(samples)} ops, {errors} errors; p50 before {pct(before, .5)*1e3:.3f} ms, "
              f"during {pct(during, .5)*1e3:.3f} ms; p99 before {pct(before, .99)*1e3:.3f} ms, "
              f"during {pct(during, .99)*1e3:.3f} ms "
              f"({pct(during, .99) / pct(before, .99):.2f}x)")
        print(f"   during the move, p99 of keys in moving slots {pct(during_moving, .99)*1e3:.3f} ms, "
              f"in other slots {pct(during_still, .99)*1e3:.3f} ms; p99.9 "
              f"{pct(during_moving, .999)*1e3:.3f} / {pct(during_still, .999)*1e3:.3f} ms")
        left = int(cli(s[0], "DBSIZE")) + int(cli(s[1], "DBSIZE"))
        print(f"   keys after: {left} (before {keys_total} + counters)")

        # 3. Propagation of table changes.
        key = b64("/codis3/bench/table")
        lat = []
        for i in range(100):
            kv = etcd_call(ep, "/v3/kv/range", {"key": key})["kvs"][0]
            t = json.loads(base64.b64decode(kv["value"]))
            t["version"] += 1
            t["slots"][0]["group_id"] = 2 if t["slots"][0].get("group_id") == 1 else 1
            v = t["version"]
            etcd_call(ep, "/v3/kv/put", {"key": key, "value": b64(json.dumps(t))})
            t0 = time.perf_counter()
            pending = set(adm)
            while pending:
                pending = {ad for ad in pending if proxy_version(ad) < v}
            lat.append(time.perf_counter() - t0)
        print(f"3. table change to both proxies, 100 changes: p50 {pct(lat, .5)*1e3:.2f} ms, "
              f"p99 {pct(lat, .99)*1e3:.2f} ms, max {max(lat)*1e3:.2f} ms")

        # 4. Proxy throughput: table from etcd vs from a file.
        kv = etcd_call(ep, "/v3/kv/range", {"key": key})["kvs"][0]
        f = os.path.join(root, "table.json")
        open(f, "wb").write(base64.b64decode(kv["value"]))
        # Two fresh proxies, one per store, same settings.
        fp, fa, ep2, ea2 = free_port(), free_port(), free_port(), free_port()
        procs.append(spawn([os.path.join(bins, "codis-proxy"), f"--fillslots={f}",
                            "--product_name=bench",
                            f"--host-proxy=127.0.0.1:{fp}", f"--host-admin=127.0.0.1:{fa}"],
                           root, "proxy-file.log"))
        procs.append(spawn([os.path.join(bins, "codis-proxy"), f"--fillslots={store}",
                            "--product_name=bench",
                            f"--host-proxy=127.0.0.1:{ep2}", f"--host-admin=127.0.0.1:{ea2}"],
                           root, "proxy-etcd.log"))
        wait_port(fp)
        wait_port(ep2)
        time.sleep(0.5)
        rps = {"etcd": [], "file": []}
        for r in range(a.rounds):
            order = (("etcd", ep2), ("file", fp)) if r % 2 == 0 else (("file", fp), ("etcd", ep2))
            for name, port in order:
                r = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set,get",
                                    "-n", "300000", "-r", "100000", "-P", "16", "-q"],
                                   capture_output=True, text=True).stdout
                vals = [float(x) for x in re.findall(r"([0-9.]+) requests per second", r)]
                rps[name].append(sum(vals) / len(vals))
        e, fl = statistics.median(rps["etcd"]), statistics.median(rps["file"])
        print(f"4. proxy SET/GET -P 16, median of {a.rounds}: etcd {e:.0f} rps, file {fl:.0f} rps, "
              f"etcd/file {e / fl:.3f}")
    finally:
        for p in procs:
            kill(p)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run()
