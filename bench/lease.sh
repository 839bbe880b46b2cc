#!/usr/bin/env bash
# Lease acquire+release throughput and latency over TCP and the Unix socket, with 1
# and 16 concurrent clients, against a gpucoordd on gpusim; baseline: GET /health
# over the same transport in the same run.
# Usage: bench/lease.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
seconds=${2:-3}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
export LD_LIBRARY_PATH="$build/sim" GPUSIM_STATE="$tmp/gpusim" GPUSIM_DEVICES=24564Mi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/gpucoordd" --listen "127.0.0.1:$port" --state-dir "$tmp/state" --socket "$tmp/sock" \
    --log-level warn 2>"$tmp/gpucoordd.log" &
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.05
done
echo "| what                         | clients | round trips/s | p50 µs | p99 µs | errors |"
echo "|------------------------------|---------|------------|----------|----------|--------|"
"$build/bench/lease-bench" --pingpong --seconds "$seconds"
for transport in tcp unix; do
    url="http://127.0.0.1:$port"
    [ "$transport" = unix ] && url="unix:$tmp/sock"
    for clients in 1 16; do
        "$build/bench/lease-bench" --url "$url" --clients "$clients" --seconds "$seconds" \
            --baseline --label "$transport: GET /health (baseline)"
        "$build/bench/lease-bench" --url "$url" --clients "$clients" --seconds "$seconds" \
            --bytes 1Gi --label "$transport: lease acquire+release"
    done
done
