#!/usr/bin/env python3
"""Failover time by redis-sentinel 7.0.15, a group of codis-servers vs a
group of redis-servers, same run.

For each kind: a master and two replicas, three redis-sentinels
(`down-after-milliseconds 1000`, quorum 2). A writer SETs keys (each
followed by `WAIT 1 1000`); the master gets SIGKILL; the time from the
kill to the first successful write on the master the sentinels name is
the failover time. Also checked: every write a replica acknowledged is on
the new master. Repeated --rounds times per kind (median reported).

usage: bench/failover.py [--ours target/release/codis-server] [--rounds 3]
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, tempfile, time

from benchutil import free_port, kill, spawn
from bgsave import Conn, cli




def wait_ping(port, within=30):
    t0 = time.time()
    while time.time() - t0 < within:
        if cli(port, "PING") == "PONG":
            return
        time.sleep(0.01)
    raise SystemExit(f"port {port} did not answer")




def info_field(port, section, name):
    for line in cli(port, "INFO", section).splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def one(binary, sentinel):
    dirs = [tempfile.mkdtemp(prefix="failover-") for _ in range(6)]
    procs = []
    try:
        ports = [free_port() for _ in range(3)]
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--repl-diskless-sync-delay", "0"]
        procs.append(spawn([binary, "--port", str(ports[0])] + common, dirs[0]))
        wait_ping(ports[0])
        for i in (1, 2):
            procs.append(spawn([binary, "--port", str(ports[i]), "--replicaof", "127.0.0.1",
                                str(ports[0])] + common, dirs[i]))
            wait_ping(ports[i])
        for i in (1, 2):
            while info_field(ports[i], "replication", "master_link_status") != "up":
                time.sleep(0.05)
        sports = [free_port() for _ in range(3)]
        for j, sp in enumerate(sports):
            d = dirs[3 + j]
            with open(os.path.join(d, "sentinel.conf"), "w") as f:
                f.write(f"port {sp}\nbind 127.0.0.1\n"
                        f"sentinel monitor g 127.0.0.1 {ports[0]} 2\n"
                        "sentinel down-after-milliseconds g 1000\n"
                        "sentinel failover-timeout g 20000\n"
                        "sentinel parallel-syncs g 2\n")
            procs.append(spawn([sentinel, os.path.join(d, "sentinel.conf")], d))
            wait_ping(sp)
        # Every sentinel knows the replicas and the other sentinels.
        t0 = time.time()
        while True:
            ok = True
            for sp in sports:
                r = subprocess.run(["redis-cli", "-p", str(sp), "SENTINEL", "master", "g"],
                                   capture_output=True, text=True).stdout.split("\n")
                kv = dict(zip(r[0::2], r[1::2]))
                ok &= kv.get("num-slaves") == "2" and kv.get("num-other-sentinels") == "2"
            if ok:
                break
            if time.time() - t0 > 60:
                raise SystemExit("sentinels did not discover the group")
            time.sleep(0.1)
        c = Conn(ports[0])
        acked = []
        for i in range(200):
            c.call("SET", f"k:{i}", i)
            if c.call("WAIT", 1, 1000) not in ("0",):
                acked.append(i)
        c.close()
        kill(procs[0])
        killed = time.time()
        new = None
        while new is None:
            r = subprocess.run(["redis-cli", "-p", str(sports[0]), "SENTINEL",
                                "get-master-addr-by-name", "g"],
                               capture_output=True, text=True).stdout.split()
            if len(r) == 2 and int(r[1]) != ports[0]:
                new = int(r[1])
            elif time.time() - killed > 60:
                raise SystemExit("no failover")
            else:
                time.sleep(0.01)
        while cli(new, "SET", "after", "failover") != "OK":
            time.sleep(0.01)
        took = time.time() - killed
        lost = [i for i in acked if cli(new, "GET", f"k:{i}") != str(i)]
        return took, len(acked), len(lost)
    finally:
        for p in procs:
            kill(p)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="target/release/codis-server")
    ap.add_argument("--redis", default=shutil.which("redis-server") or "redis-server")
    ap.add_argument("--sentinel", default=shutil.which("redis-sentinel") or "redis-sentinel")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    res = {"ours": [], "redis": []}
    for _ in range(a.rounds):
        for name, b in (("ours", a.ours), ("redis", a.redis)):
            res[name].append(one(b, a.sentinel))
    for name, rows in res.items():
        times = [t for t, _, _ in rows]
        print(f"{name:6} failover s: median {statistics.median(times):.2f} "
              f"(rounds: {', '.join(f'{t:.2f}' for t in times)}); "
              f"acknowledged writes lost: {sum(l for _, _, l in rows)} of {sum(n for _, n, _ in rows)}")
    mo = statistics.median(t for t, _, _ in res["ours"])
    mr = statistics.median(t for t, _, _ in res["redis"])
    print(f"ours/redis failover time: {mo / mr:.3f}")


if __name__ == "__main__":
    main()
