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
"$here/bench/unload_reload.sh" "$build" 25 5
echo
"$here/bench/burst.sh" "$build" 25 300 3
