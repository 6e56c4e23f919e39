#!/bin/bash
# Stream A/B against redis-server 7.0.15, same run: preloads a 100k-entry
# stream (IDs 1-1 .. 100000-1, 3 small fields) with a consumer group on
# both, then interleaves redis-benchmark XADD (P=16), XRANGE of 10 and 100
# entries (P=1, P=16), XREADGROUP COUNT 1 and XACK (P=16), 3 rounds;
# servers pinned to cpu 0, the client to cpu 1. Prints rps and the server
# CPU ticks of each run, and the bytes per entry of a 1M-entry stream.
# Loopback only.
# usage: bench/stream_ab.sh OURS_BIN [ROUNDS]
OURS=$1
ROUNDS=${2:-3}
PR=7811; PO=7812
taskset -c 0 redis-server --port $PR --save '' --appendonly no --daemonize no > /dev/null 2>&1 &
taskset -c 0 $OURS --port $PO --save '' --appendonly no > /dev/null 2>&1 &
sleep 1
RPID=$(pgrep -f "redis-server \*:$PR" | head -1); [ -z "$RPID" ] && RPID=$(pgrep -x redis-server | head -1)
OPID=$(pgrep -f "$OURS --port $PO" | head -1)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
preload() {
python3 - $PR $PO <<'PY'
import sys, redis
for port in sys.argv[1:]:
    c = redis.Redis(port=int(port))
    c.delete("s")
    p = c.pipeline(transaction=False)
    for i in range(1, 100001):
        p.execute_command("XADD", "s", f"{i}-1", "name", f"user{i % 1000}", "count", i % 97, "flag", "y")
        if i % 5000 == 0:
            p.execute()
    p.execute()
    c.execute_command("XGROUP", "CREATE", "s", "g", "0")
PY
}
preload
run() { # port pid args...
  local port=$1 pid=$2; shift 2
  local c0=$(cpu $pid)
  local out=$(taskset -c 1 redis-benchmark -p $port -q "$@" 2>/dev/null | tr '\r' '\n' | grep "requests per second" | tail -1)
  local c1=$(cpu $pid)
  echo "$out cpu_ticks=$((c1-c0))"
}
for round in $(seq 1 $ROUNDS); do
  for t in xadd range10 range100 group; do
    for who in R O; do
      if [ $who = R ]; then port=$PR; pid=$RPID; else port=$PO; pid=$OPID; fi
      case $t in
        xadd) echo "$round xadd P16 $who: $(run $port $pid -n 400000 -P 16 XADD s2 '*' name user1 count 7 flag y)";;
        range10)
          echo "$round xrange10 P1 $who: $(run $port $pid -n 50000 -r 99000 XRANGE s __rand_int__ + COUNT 10)"
          echo "$round xrange10 P16 $who: $(run $port $pid -n 200000 -P 16 -r 99000 XRANGE s __rand_int__ + COUNT 10)";;
        range100)
          echo "$round xrange100 P1 $who: $(run $port $pid -n 30000 -r 99000 XRANGE s __rand_int__ + COUNT 100)"
          echo "$round xrange100 P16 $who: $(run $port $pid -n 60000 -P 16 -r 99000 XRANGE s __rand_int__ + COUNT 100)";;
        group)
          echo "$round xreadgroup P16 $who: $(run $port $pid -n 90000 -P 16 XREADGROUP GROUP g c COUNT 1 STREAMS s '>')"
          echo "$round xack P16 $who: $(run $port $pid -n 90000 -P 16 -r 90000 XACK s g __rand_int__-1)";;
      esac
    done
  done
  # the group consumed the stream: start it over
  for p in $PR $PO; do redis-cli -p $p XGROUP DESTROY s g > /dev/null; redis-cli -p $p XGROUP CREATE s g 0 > /dev/null; redis-cli -p $p DEL s2 > /dev/null; done
done
python3 - $PR $PO <<'PY'
import sys, redis
for port in sys.argv[1:]:
    c = redis.Redis(port=int(port)); c.flushall()
    b = c.info("memory")["used_memory"]
    p = c.pipeline(transaction=False)
    for i in range(1_000_000):
        p.execute_command("XADD", "m", "*", "name", f"user{i % 1000}", "count", i % 97, "flag", "y")
        if i % 10000 == 9999:
            p.execute()
    p.execute()
    a = c.info("memory")["used_memory"]
    print(port, "bytes/entry", round((a - b) / 1_000_000, 2))
PY
redis-cli -p $PR shutdown nosave > /dev/null; redis-cli -p $PO shutdown nosave > /dev/null
