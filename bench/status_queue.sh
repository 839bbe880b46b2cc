#!/usr/bin/env bash
# GET /v1/status and GET /v1/leases with a long queue: one lease holds the GPU, N more
# wait behind it (wait_s 0), and each view is timed over one kept-alive connection.
# Baseline in the same run: GET /health on the same connection, and the base build when
# one is given (printed first).
# Usage: bench/status_queue.sh BUILD_DIR [BASE_BUILD_DIR] [REQUESTS] [QUEUE_LENGTHS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
base=${2:-}
[ -n "$base" ] && base=$(cd "$base" && pwd)
requests=${3:-5}
queues=${4:-"64 256 1024"}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

python3 - "$tmp" "$requests" "$queues" "$build" ${base:+"$base"} <<'PY'
import http.client, json, os, socket, statistics, subprocess, sys, time

tmp, requests, queues, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(build, nqueued):
    port = free_port()
    run = os.path.join(tmp, "%s-%d" % (os.path.basename(os.path.dirname(build)), nqueued))
    os.makedirs(run)
    conf = os.path.join(run, "gpucoord.ini")
    with open(conf, "w") as f:
        f.write("[coordinator]\nqueue_max = %d\n" % max(nqueued, 1))
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(build, "sim"),
               GPUSIM_STATE=os.path.join(run, "gpusim"), GPUSIM_DEVICES="24564Mi")
    p = subprocess.Popen([os.path.join(build, "gpucoordd"), "--listen", "127.0.0.1:%d" % port,
                          "--state-dir", os.path.join(run, "state"), "--config", conf,
                          "--log-level", "warn"], env=env,
                         stderr=open(os.path.join(run, "log"), "w"))
    try:
        for _ in range(500):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                c.request("GET", "/health")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.02)

        def call(method, path, body=None):
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()

        st, _ = call("POST", "/v1/leases", {"holder": "big", "bytes": 20 << 30, "ttl_s": 600})
        assert st == 201, st
        for i in range(nqueued):
            # Distinct holders: the per-holder cap stays at its default.
            st, body = call("POST", "/v1/leases", {"holder": "h%d" % i, "bytes": 8 << 30,
                                                   "priority": 100 + i % 3, "ttl_s": 600,
                                                   "wait_s": 0})
            assert st == 202, (st, body)

        def timed(path):
            t = []
            for _ in range(requests):
                t0 = time.perf_counter()
                st, body = call("GET", path)
                t.append((time.perf_counter() - t0) * 1000)
                assert st == 200, st
            return statistics.median(t), body

        health, _ = timed("/health")
        status, body = timed("/v1/status")
        queue = json.loads(body)["queue"]
        assert [q["position"] for q in queue] == list(range(nqueued)), "queue out of order"
        leases, _ = timed("/v1/leases")
        return health, status, leases
    finally:
        p.terminate()
        p.wait(timeout=30)


labels = ["before (base build)", "after"] if len(builds) == 2 else ["this build"]
order = list(zip(labels, [builds[1], builds[0]] if len(builds) == 2 else builds))
print("| build | leases queued | GET /health p50 ms (baseline) | GET /v1/status p50 ms "
      "| GET /v1/leases p50 ms |")
print("|---|---|---|---|---|")
for n in queues:
    for label, b in order:
        h, s, l = measure(b, int(n))
        print("| %s | %s | %.2f | %.2f | %.2f |" % (label, n, h, s, l), flush=True)
PY
