#!/usr/bin/env bash
# Grant delay behind a slow driver: a 19.6Gi lease evicts the validation server (4.7Gi
# on a 24564Mi gpusim card) while the driver gives freed memory back GPUSIM_FREE_LAG_MS
# late. Measures, per cycle, the time from the moment gpusim shows the memory free
# (polled every millisecond through gpusimGetLaggedBytes) to the grant's answer, and
# prints the medians for each build given: the baseline build first, in the same run.
# Usage: bench/grant_lag.sh BUILD_DIR [BASE_BUILD_DIR] [CYCLES] [LAGS_MS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
base=${2:-}
[ -n "$base" ] && base=$(cd "$base" && pwd)
cycles=${3:-5}
lags=${4:-"400 425 800 830"}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

python3 - "$tmp" "$cycles" "$lags" "$build" ${base:+"$base"} <<'PY'
import ctypes, json, os, socket, statistics, subprocess, sys, threading, time
import urllib.request

tmp, cycles, lags, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
GEN_BYTES = 21045339750  # 19.6Gi


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method, path, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.load(r)


def wait_until(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit("timed out")


class FreeWatch:
    """Records when gpusim's lagged bytes fall back to zero (the memory is free)."""

    def __init__(self, build):
        self.nvml = ctypes.CDLL(os.path.join(build, "sim", "libnvidia-ml.so.1"))
        self.nvml.nvmlInit_v2()
        self.freed_at = None
        self.seen_lag = False
        self.stop = False
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        v = ctypes.c_ulonglong()
        while not self.stop:
            self.nvml.gpusimGetLaggedBytes(0, ctypes.byref(v))
            if v.value > 0:
                self.seen_lag = True
            elif self.seen_lag:
                # The last return to zero counts: the server may free a buffer at start.
                self.freed_at = time.monotonic()
                self.seen_lag = False
            time.sleep(0.001)

    def close(self):
        self.stop = True
        self.t.join()
        self.nvml.nvmlShutdown()


def measure(build, lag):
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(build, "sim"),
               GPUSIM_STATE=os.path.join(tmp, "gpusim-%d" % lag), GPUSIM_DEVICES="24564Mi",
               GPUSIM_FREE_LAG_MS=str(lag))
    os.environ.update({k: env[k] for k in ("GPUSIM_STATE", "GPUSIM_DEVICES",
                                           "GPUSIM_FREE_LAG_MS")})
    port, vport = free_port(), free_port()
    url = "http://127.0.0.1:%d" % port
    state = os.path.join(tmp, "state-%s-%d" % (os.path.basename(build), lag))
    log = open(os.path.join(tmp, "logs"), "a")
    procs = [subprocess.Popen([os.path.join(build, "gpucoordd"), "--listen",
                               "127.0.0.1:%d" % port, "--state-dir", state,
                               "--log-level", "warn"], env=env, stderr=log)]
    wait_until(lambda: call(url, "GET", "/health")[0] == 200)
    procs.append(subprocess.Popen([os.path.join(build, "validation-server"), "--host",
                                   "127.0.0.1", "--port", str(vport)],
                                  env=dict(env, GPUCOORD_URL=url), stderr=log))

    def loaded():
        rs = call(url, "GET", "/v1/residents")[1]["residents"]
        return rs and rs[0]["state"] == "loaded"

    delays, waited = [], []
    try:
        for _ in range(cycles):
            wait_until(loaded)
            watch = FreeWatch(build)
            try:
                st, lease = call(url, "POST", "/v1/leases", {"holder": "bench", "bytes": GEN_BYTES,
                                                             "ttl_s": 60, "wait_s": 30})
                granted_at = time.monotonic()
            finally:
                watch.close()
            if st != 201 or watch.freed_at is None:
                raise SystemExit("lease not granted after a lagged free: %s" % lease)
            delays.append((granted_at - watch.freed_at) * 1000)
            waited.append(lease["waited_s"])
            call(url, "DELETE", "/v1/leases/" + lease["id"])
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=10)
    return statistics.median(delays), max(delays), statistics.median(waited)


labels = ["before (base build)", "after"] if len(builds) == 2 else ["this build"]
order = list(zip(labels, [builds[1], builds[0]] if len(builds) == 2 else builds))
print("| build | driver lag ms | grant after free p50 ms | max ms | lease waited p50 s |")
print("|---|---|---|---|---|")
for lag in lags:
    for label, b in order:
        p50, worst, w = measure(b, int(lag))
        print("| %s | %s | %.1f | %.1f | %.3f |" % (label, lag, p50, worst, w), flush=True)
PY
