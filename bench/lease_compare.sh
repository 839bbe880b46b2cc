#!/usr/bin/env bash
# The lease round trip of two builds, measured in the same run: bench/lease.sh for
# each, alternating, ROUNDS times, then the median of each row (round trips/s, p50,
# p99) per build. For "before/after" tables: the older build in another folder.
# Usage: bench/lease_compare.sh OLD_BUILD NEW_BUILD [SECONDS] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
old=$(cd "$1" && pwd)
new=$(cd "$2" && pwd)
seconds=${3:-2}
rounds=${4:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
    # Alternate which goes first, so that neither always runs on a warmer machine.
    if [ $((r % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
    for which in $order; do
        build=$old
        [ "$which" = new ] && build=$new
        "$here/lease.sh" "$build" "$seconds" >"$out/$which.$r" 2>/dev/null
    done
done
python3 - "$out" "$rounds" <<'PY'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for which in ("old", "new"):
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{which}.{r}"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 6 or not cells[2].replace(".", "").isdigit():
                continue
            key = (cells[0], cells[1])
            rows.setdefault(key, {}).setdefault(which, []).append(
                (float(cells[2]), float(cells[3]), float(cells[4])))
print("| what | clients | build | round trips/s | p50 µs | p99 µs |")
print("|---|---|---|---|---|---|")
for (what, clients), by in rows.items():
    for which in ("old", "new"):
        runs = by.get(which, [])
        if not runs:
            continue
        med = [statistics.median(v[i] for v in runs) for i in range(3)]
        print(f"| {what} | {clients} | {'before' if which == 'old' else 'after'} "
              f"| {med[0]:.0f} | {med[1]:.0f} | {med[2]:.0f} |")
PY
