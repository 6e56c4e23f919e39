#!/usr/bin/env bash
# bench-proxy.sh PORT BACKEND_PORT [DIR] - the `--proxy` command for
# ../shared/bench/proxy.sh: writes a slot file pointing all 1024 slots at
# 127.0.0.1:BACKEND_PORT and runs codis-proxy (release build) on PORT in the
# foreground. Usage:
#   proxy.sh --proxy 'proxy/scripts/bench-proxy.sh {port} {backend_port} {dir}'
# CODIS_PROXY overrides the binary; PROXY_NCPU the worker threads (default 1).
set -euo pipefail
port="$1"; backend="$2"; dir="${3:-$(mktemp -d)}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${CODIS_PROXY:-${CARGO_TARGET_DIR:-$here/target}/release/codis-proxy}"
mkdir -p "$dir"
python3 - "$backend" > "$dir/slots.json" <<'EOF'
import json, sys
print(json.dumps([{"id": i, "backend_addr": "127.0.0.1:%s" % sys.argv[1], "backend_addr_group_id": 1} for i in range(1024)]))
EOF
exec "$bin" --fillslots="$dir/slots.json" --host-proxy="127.0.0.1:$port" \
  --host-admin=127.0.0.1:0 --ncpu="${PROXY_NCPU:-1}" --log="$dir/proxy.log" --log-level=warn
