#!/usr/bin/env bash
# Allocate+free pairs with and without libgpucoord-intercept.so, alternating, on
# gpusim with a gpucoordd running (the interposer leases from it). Baseline: the
# same program without the library, in the same run. With OTHER_LIB, a second
# build of the library (an older commit's) runs in the same rounds too, so that
# before and after are measured under the same load.
# Usage: bench/intercept.sh [BUILD_DIR] [PAIRS] [ROUNDS] [OTHER_LIB]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
pairs=${2:-200000}
rounds=${3:-5}
other=${4:-}
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
under() { # LIB: one round under LIB
    GPUCOORD_URL="http://127.0.0.1:$port" LD_PRELOAD="$1" "$build/bench/intercept-bench" "$pairs" |
        awk '{print $4}'
}
bare=() with=() others=()
for _ in $(seq "$rounds"); do
    bare+=("$("$build/bench/intercept-bench" "$pairs" | awk '{print $4}')")
    with+=("$(under "$build/libgpucoord-intercept.so")")
    [ -z "$other" ] || others+=("$(under "$other")")
done
resizes=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^gpucoord_lease_resizes_total /{print $2}')
python3 - "$pairs" "$resizes" "${bare[*]}" "${with[*]}" "${others[*]:-}" "$other" <<'PY'
import statistics, sys
pairs, resizes, other = int(sys.argv[1]), sys.argv[2], sys.argv[6]
runs = [("bare gpusim (baseline)", sys.argv[3]), ("under libgpucoord-intercept.so", sys.argv[4])]
if other:
    runs.append(("under %s" % other, sys.argv[5]))
mb = statistics.median(float(x) for x in sys.argv[3].split())
print("| what | rounds x pairs | ns per pair (median) | min | max | median / bare median |")
print("|---|---|---|---|---|---|")
for name, text in runs:
    v = [float(x) for x in text.split()]
    m = statistics.median(v)
    print("| %s | %d x %d | %.0f | %.0f | %.0f | %.3f |" % (name, len(v), pairs, m, min(v), max(v), m / mb))
print()
print("resize calls to the coordinator in all: %s" % resizes)
PY
