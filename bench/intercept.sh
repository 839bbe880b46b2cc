#!/usr/bin/env bash
# Allocate+free pairs with and without libgpucoord-intercept.so, alternating, on
# gpusim with a gpucoordd running (the interposer leases from it). Baseline: the
# same program without the library, in the same run.
# Usage: bench/intercept.sh [BUILD_DIR] [PAIRS] [ROUNDS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
pairs=${2:-200000}
rounds=${3:-5}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
export LD_LIBRARY_PATH="$build/sim" GPUSIM_STATE="$tmp/gpusim" GPUSIM_DEVICES=24564Mi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/gpucoordd" --listen "127.0.0.1:$port" --state-dir "$tmp/state" \
    --log-level warn 2>"$tmp/gpucoordd.log" &
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.05
done
bare=() with=()
for _ in $(seq "$rounds"); do
    bare+=("$("$build/bench/intercept-bench" "$pairs" | awk '{print $4}')")
    with+=("$(GPUCOORD_URL="http://127.0.0.1:$port" LD_PRELOAD="$build/libgpucoord-intercept.so" \
        "$build/bench/intercept-bench" "$pairs" | awk '{print $4}')")
done
resizes=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^gpucoord_lease_resizes_total /{print $2}')
python3 - "$pairs" "$resizes" "${bare[*]}" "${with[*]}" <<'PY'
import statistics, sys
pairs, resizes = int(sys.argv[1]), sys.argv[2]
bare = [float(x) for x in sys.argv[3].split()]
with_ = [float(x) for x in sys.argv[4].split()]
mb, mw = statistics.median(bare), statistics.median(with_)
print("| what | rounds x pairs | ns per pair (median) | min | max |")
print("|---|---|---|---|---|")
print("| bare gpusim (baseline) | %d x %d | %.0f | %.0f | %.0f |" % (len(bare), pairs, mb, min(bare), max(bare)))
print("| under libgpucoord-intercept.so | %d x %d | %.0f | %.0f | %.0f |" % (len(with_), pairs, mw, min(with_), max(with_)))
print()
print("ratio (median with / median bare): %.3f; resize calls to the coordinator in all: %s" % (mw / mb, resizes))
PY
