#!/usr/bin/env bash
# Memory of the validation server under the largest requests: a base64 PLY of about
# 200k splats filling the 64 MiB body cap, sent 1 and 8 at once to a fresh server (on
# gpusim, without a coordinator). Prints the server's peak RSS (VmHWM) and what it
# added over its idle RSS, with the answers' statuses; the base build first when given,
# and this build once more with its request budget (VALIDATION_BODIES_MAX) off.
# Usage: bench/validation_rss.sh BUILD_DIR [BASE_BUILD_DIR] [CONCURRENCY...]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
base=${2:-}
[ -n "$base" ] && base=$(cd "$base" && pwd)
shift $(($# < 2 ? $# : 2))
conc=${*:-"1 8"}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

python3 - "$tmp" "$conc" "$build" ${base:+"$base"} <<'PY'
import array, base64, collections, json, math, os, random, socket, subprocess, sys
import threading, time, urllib.error, urllib.request

tmp, conc, builds = sys.argv[1], [int(c) for c in sys.argv[2].split()], sys.argv[3:]
BODY_MAX = 64 << 20
PROPS = (["x", "y", "z", "nx", "ny", "nz"] + ["f_dc_%d" % i for i in range(3)] +
         ["f_rest_%d" % i for i in range(45)] + ["opacity"] + ["scale_%d" % i for i in range(3)] +
         ["rot_%d" % i for i in range(4)])


def big_request():
    """The largest body under the cap: JSON with a base64 PLY of as many splats as fit."""
    header = lambda n: ("ply\nformat binary_little_endian 1.0\nelement vertex %d\n" % n +
                        "".join("property float %s\n" % p for p in PROPS) +
                        "end_header\n").encode()
    n = (BODY_MAX - 200) * 3 // 4 // (62 * 4)
    while len(json.dumps({"prompt": "a red cube", "data": ""})) + \
            4 * math.ceil((len(header(n)) + n * 248) / 3) > BODY_MAX:
        n -= 1
    rnd = random.Random(7)
    point = array.array("f")
    for i in range(64):  # 64 distinct points, repeated with a drift
        a, r = rnd.uniform(0, 6.283), rnd.uniform(0.2, 1.0)
        point.extend([r * math.cos(a), rnd.uniform(-1, 1), r * math.sin(a), 0, 1, 0,
                      rnd.uniform(-1, 1), rnd.uniform(-1, 1), rnd.uniform(-1, 1)] + [0.0] * 45 +
                     [rnd.uniform(-2, 4), -4.5, -4.5, -4.5, 1, 0, 0, 0])
    raw = point.tobytes() * (n // 64) + point.tobytes()[: (n % 64) * 248]
    data = base64.b64encode(header(n) + raw).decode()
    body = json.dumps({"prompt": "a red cube", "data": data}).encode()
    assert len(body) <= BODY_MAX, len(body)
    return n, body


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def measure(build, body, n, extra):
    port = free_port()
    env = dict(os.environ, **extra)
    env.update(LD_LIBRARY_PATH=os.path.join(build, "sim"), GPUCOORD_DISABLE="1",
               GPUSIM_STATE=os.path.join(tmp, "gpusim-%d" % port), GPUSIM_DEVICES="24564Mi")
    p = subprocess.Popen([os.path.join(build, "validation-server"), "--host", "127.0.0.1",
                          "--port", str(port)], env=env, stderr=open(os.path.join(tmp, "log"), "a"))
    url = "http://127.0.0.1:%d" % port
    try:
        for _ in range(500):
            try:
                urllib.request.urlopen(url + "/health/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.02)
        idle = status_kib(p.pid, "VmRSS")
        statuses = collections.Counter()
        lock = threading.Lock()

        def one():
            req = urllib.request.Request(url + "/validate_txt_to_3d_ply/", data=body,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=600) as r:
                    r.read()
                    st = r.status
            except urllib.error.HTTPError as e:
                st = e.code
            with lock:
                statuses[st] += 1

        t0 = time.monotonic()
        ts = [threading.Thread(target=one) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.monotonic() - t0
        peak = status_kib(p.pid, "VmHWM")
        return idle, peak, wall, statuses
    finally:
        p.terminate()
        p.wait(timeout=30)


points, body = big_request()
print("request: %.1f MiB of JSON, %d splats" % (len(body) / 2**20, points))
print()
# The last row runs this build with the request budget off: the memory of each request.
off = {"VALIDATION_BODIES_MAX": "1Ti"}
if len(builds) == 2:
    order = [("before (base build)", builds[1], {}), ("after", builds[0], {}),
             ("after, budget off", builds[0], off)]
else:
    order = [("this build", builds[0], {}), ("this build, budget off", builds[0], off)]
print("| build | requests at once | idle RSS MiB | peak RSS MiB | added MiB | answers | wall s |")
print("|---|---|---|---|---|---|---|")
for c in conc:
    for label, b, extra in order:
        idle, peak, wall, st = measure(b, body, c, extra)
        print("| %s | %d | %.0f | %.0f | %.0f | %s | %.1f |" % (
            label, c, idle / 1024, peak / 1024, (peak - idle) / 1024,
            ", ".join("%d x%d" % (k, v) for k, v in sorted(st.items())), wall), flush=True)
PY
