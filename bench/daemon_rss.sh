#!/usr/bin/env bash
# gpucoordd's resident memory: idle, with N leases held, and after they are released,
# for one build or two (the older one first, in the same run).
# Usage: bench/daemon_rss.sh BUILD [OLD_BUILD] [N]
set -euo pipefail
builds=("$(cd "$1" && pwd)")
[ $# -ge 2 ] && builds=("$(cd "$2" && pwd)" "${builds[0]}")
n=${3:-1000}
echo "| build | idle RSS MiB | idle anon MiB | $n leases held: RSS MiB | anon MiB | after release: RSS MiB | anon MiB |"
echo "|---|---|---|---|---|---|---|"
for build in "${builds[@]}"; do
    tmp=$(mktemp -d)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    LD_LIBRARY_PATH="$build/sim" GPUSIM_STATE="$tmp/gpusim" GPUSIM_DEVICES=24564Mi \
        "$build/gpucoordd" --listen "127.0.0.1:$port" --state-dir "$tmp/state" \
        --log-level warn 2>"$tmp/log" &
    pid=$!
    python3 - "$build" "$port" "$pid" "$n" <<'PY'
import http.client, json, sys, time
build, port, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def rss():
    f = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/%d/status" % pid)
         if l.startswith(("VmRSS", "RssAnon"))}
    return "%.1f | %.1f" % (f["VmRSS"] / 1024, f["RssAnon"] / 1024)
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(100):
    try:
        c.request("GET", "/health"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.05); c = http.client.HTTPConnection("127.0.0.1", port)
time.sleep(0.5)
idle = rss()
ids = []
for i in range(n):
    c.request("POST", "/v1/leases", json.dumps({"holder": "h%d" % i, "bytes": 1 << 20, "ttl_s": 300}))
    r = c.getresponse(); body = json.loads(r.read())
    if r.status == 201:
        ids.append(body["id"])
held = rss()
for i in ids:
    c.request("DELETE", "/v1/leases/" + i); c.getresponse().read()
if len(ids) != n:
    sys.exit("only %d of %d leases granted" % (len(ids), n))
print("| %s | %s | %s | %s |" % (build, idle, held, rss()))
PY
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
done
