#!/bin/bash
# GEO A/B against redis-server 7.0.15, same run: preloads 100k points on
# both, then interleaves redis-benchmark GEOADD (P=16) and GEOSEARCH BYRADIUS
# (P=1, P=16), 3 rounds; servers pinned to cpu 0, the client to cpu 1.
# Prints rps and the server CPU ticks of each run, and MEMORY USAGE of the
# preloaded set. Loopback only.
# usage: bench/geo_ab.sh OURS_BIN
OURS=$1
PR=7801; PO=7802
taskset -c 0 redis-server --port $PR --save '' --appendonly no --daemonize no > /dev/null 2>&1 &
taskset -c 0 $OURS --port $PO --save '' --appendonly no > /dev/null 2>&1 &
sleep 1
RPID=$(pgrep -f "redis-server \*:$PR" | head -1); [ -z "$RPID" ] && RPID=$(pgrep -x redis-server | head -1)
OPID=$(pgrep -f "$OURS --port $PO" | head -1)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
# preload 100k points around (13,38) spread 2 degrees, same for both
python3 - $PR $PO <<'PY'
import random, sys, redis
r = random.Random(3)
pts = []
for i in range(100000):
    pts += [round(13 + r.uniform(-2, 2), 6), round(38 + r.uniform(-2, 2), 6), f"m{i}"]
for port in sys.argv[1:]:
    c = redis.Redis(port=int(port))
    p = c.pipeline(transaction=False)
    for i in range(0, len(pts), 3000):
        p.execute_command("GEOADD", "g", *pts[i:i+3000])
    p.execute()
    print(port, c.zcard("g"), c.memory_usage("g"))
PY
run() { # port pid name args...
  local port=$1 pid=$2; shift 2
  local c0=$(cpu $pid)
  local out=$(taskset -c 1 redis-benchmark -p $port -q "$@" 2>/dev/null | tr '\r' '\n' | grep "requests per second" | tail -1)
  local c1=$(cpu $pid)
  echo "$out cpu_ticks=$((c1-c0))"
}
for round in 1 2 3; do
  for t in "geoadd" "search"; do
    for who in R O; do
      if [ $who = R ]; then port=$PR; pid=$RPID; else port=$PO; pid=$OPID; fi
      if [ $t = geoadd ]; then
        echo "$round $t P16 $who: $(run $port $pid -n 400000 -P 16 -r 100000 GEOADD g2 13.361389 38.115556 __rand_int__)"
      else
        echo "$round $t P1 $who: $(run $port $pid -n 50000 GEOSEARCH g FROMLONLAT 13.3 38.1 BYRADIUS 5 km ASC COUNT 10)"
        echo "$round $t P16 $who: $(run $port $pid -n 100000 -P 16 GEOSEARCH g FROMLONLAT 13.3 38.1 BYRADIUS 5 km ASC COUNT 10)"
      fi
    done
  done
done
redis-cli -p $PR shutdown nosave > /dev/null; redis-cli -p $PO shutdown nosave > /dev/null
