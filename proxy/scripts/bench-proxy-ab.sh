#!/usr/bin/env bash
# bench-proxy-ab.sh PORT DIR [PROXY_BIN] - a throughput.sh target for A/B
# runs of two codis-proxy builds: starts its own redis-server backend on a
# free port (in this process group, so the harness stops both), then runs
# the proxy (PROXY_BIN, default the release build) on PORT in the
# foreground through bench-proxy.sh. Example:
#   throughput.sh --a 'proxy/scripts/bench-proxy-ab.sh {port} {dir} /tmp/old-proxy' \
#                 --b 'proxy/scripts/bench-proxy-ab.sh {port} {dir}'
# The backend and the proxy share the server core(s) the harness pins.
set -euo pipefail
port="$1"; dir="$2"; bin="${3:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
backend="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$dir/backend"
"${REDIS_SERVER:-redis-server}" --port "$backend" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize no --protected-mode no --dir "$dir/backend" >/dev/null 2>&1 &
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$backend") 2>/dev/null && break
  sleep 0.05
done
if [ -n "$bin" ]; then export CODIS_PROXY="$bin"; fi
exec "$here/bench-proxy.sh" "$port" "$backend" "$dir/proxy"
