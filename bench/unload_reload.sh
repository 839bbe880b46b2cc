#!/usr/bin/env bash
# Unload/reload of the validation models against the pinned-copy floor, on gpusim at a
# simulated PCIe bandwidth (default 25 GB/s each way, an RTX 4090's), measured two ways
# in one run: the model store directly (model-bench, with the floor), and through the
# validation server's /unload_models/ and /reload_models/ endpoints.
# Usage: bench/unload_reload.sh [BUILD_DIR] [GBPS] [CYCLES]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
gbps=${2:-25}
cycles=${3:-5}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
export LD_LIBRARY_PATH="$build/sim" GPUSIM_STATE="$tmp/gpusim" GPUSIM_DEVICES=24564Mi
export GPUSIM_H2D_GBPS=$gbps GPUSIM_D2H_GBPS=$gbps

echo "### model store (4.7Gi in 3 models), gpusim at $gbps GB/s"
echo
"$build/bench/model-bench" --bytes 4.7Gi --cycles "$cycles"
echo

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
GPUCOORD_DISABLE=1 "$build/validation-server" --host 127.0.0.1 --port "$port" 2>"$tmp/val.log" &
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/health/" >/dev/null && break; sleep 0.05; done
python3 - "$port" "$cycles" "$gbps" <<'PY'
import json, statistics, sys, time, urllib.request
port, cycles, gbps = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def post(path):
    t = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d%s" % (port, path), data=b"", method="POST"), timeout=60) as r:
        body = json.load(r)
    return body, time.perf_counter() - t
un, re, un_http, re_http = [], [], [], []
for _ in range(cycles):
    b, t = post("/unload_models/"); un.append(b["unload_time"]); un_http.append(t)
    b, t = post("/reload_models/"); re.append(b["reload_time"]); re_http.append(t)
floor = 5046586572 / (gbps * 1e9)
m = statistics.median
print("### validation-server endpoints, %d cycles (medians); floor = 4.7Gi / %.0f GB/s = %.4f s"
      % (cycles, gbps, floor))
print()
print("| what | server-measured s | end-to-end HTTP s | vs floor (end to end) |")
print("|---|---|---|---|")
print("| POST /unload_models/ | %.4f | %.4f | %.3f |" % (m(un), m(un_http), m(un_http) / floor))
print("| POST /reload_models/ | %.4f | %.4f | %.3f |" % (m(re), m(re_http), m(re_http) / floor))
PY
