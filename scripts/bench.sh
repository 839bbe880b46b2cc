#!/usr/bin/env bash
# Runs the benchmarks and prints their tables (paste them into BENCHMARKS.md with the
# machine and date printed first). Each compares against a baseline in the same run.
# Usage: scripts/bench.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
echo "## $(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
echo
echo "### Lease acquire+release (libgpucoord against gpucoordd on gpusim)"
echo
"$here/bench/lease.sh" "$build" 5
echo
echo "### gpucoordd's memory: idle, with 1000 leases, after releasing them (this build only; bench/daemon_rss.sh BUILD BASE compares)"
echo
"$here/bench/daemon_rss.sh" "$build"
echo
"$here/bench/unload_reload.sh" "$build" 25 5
echo
echo "### Grant delay behind a slow driver (this build only; pass a base build to compare)"
echo
"$here/bench/grant_lag.sh" "$build" "" 5
echo
echo "### Status and lease views with a long queue (this build only; pass a base build to compare)"
echo
"$here/bench/status_queue.sh" "$build" "" 5
echo
echo "### Validation server memory under the largest requests (this build only; pass a base build to compare)"
echo
"$here/bench/validation_rss.sh" "$build"
echo "### Reads past compact_bytes (journal)"
echo
"$here/bench/journal_reads.py" "$build"
echo
"$here/bench/burst.sh" "$build" 25 300 3
