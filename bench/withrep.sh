#!/bin/bash
# Starts N redis-server replicas of the master under test, then execs it.
# For bench/throughput.sh: --a "bench/withrep.sh {port} {dir} N MASTER-CMD...".
# usage: withrep.sh PORT DIR NREPLICAS MASTER_CMD...
P=$1; D=$2; N=$3; shift 3
for i in $(seq 1 $N); do
  mkdir -p $D/r$i
  redis-server --port $((P+100+i)) --bind 127.0.0.1 --save "" --appendonly no --replicaof 127.0.0.1 $P --daemonize no --protected-mode no --dir $D/r$i >/dev/null 2>&1 &
done
exec "$@" --port $P --bind 127.0.0.1 --save "" --dir $D
