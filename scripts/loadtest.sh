#!/usr/bin/env bash
# The load test (tests/load/loadtest.py) for as long as asked; the suite runs 8 s.
# Usage: scripts/loadtest.sh [SECONDS] [CLIENTS] [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exec python3 "$here/tests/load/loadtest.py" --seconds "${1:-60}" --clients "${2:-64}" \
    --build "${3:-$here/build}"
