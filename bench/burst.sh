#!/usr/bin/env bash
# The founding burst: 3 concurrent generations (19.6Gi each) beside the validation server
# (4.7Gi) on gpusim (an RTX 4090, copies at a simulated PCIe bandwidth), with a
# validation request every 100 ms, run twice in one go: levels on (the validation
# server drops to reduced precision) and off (VALIDATION_LEVELS=0: it unloads). Prints
# unload cycles, bytes taken from the GPU and copied, generation makespan and the
# validation latency during the burst.
# Models of GENERATION_POINTS (default 7000, the fewest allowed) keep the CPU-bound scoring
# of ten validations a second from saturating a small machine.
# Usage: bench/burst.sh [BUILD_DIR] [GBPS] [STEP_MS] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
export BURST_GBPS=${2:-25} GENERATION_STEP_MS=${3:-300} BURST_ROUNDS=${4:-3}
export GENERATION_POINTS=${GENERATION_POINTS:-7000}
export BURST_HERE=$here BURST_BUILD=$build
exec python3 - <<'PY'
import base64, json, os, socket, statistics, subprocess, tempfile, threading, time
import urllib.request, urllib.error

here, build = os.environ["BURST_HERE"], os.environ["BURST_BUILD"]
gbps, rounds = float(os.environ["BURST_GBPS"]), int(os.environ["BURST_ROUNDS"])
GiB = 1 << 30


def port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def call(url, method="GET", body=None, headers=None, timeout=120):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if isinstance(body, dict):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def generate(gen, prompt, seed):
    b = "benchboundary"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n%s\r\n--%s\r\n"
            "Content-Disposition: form-data; name=\"seed\"\r\n\r\n%d\r\n--%s--\r\n"
            % (b, prompt, b, seed, b)).encode()
    return call(gen + "/generate/", "POST", body,
                {"Content-Type": "multipart/form-data; boundary=" + b})


def resident(coord):
    return json.loads(call(coord + "/v1/residents/validation")[1])


def wait_full(coord, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = resident(coord)
        if r["state"] == "loaded" and r.get("level", "loaded") in ("full", "loaded"):
            return
        time.sleep(0.05)
    raise SystemExit("validation did not come back")


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def one_config(levels):
    tmp = tempfile.mkdtemp(prefix="burst-")
    ports = {"GPUCOORD_PORT": port(), "VALIDATION_PORT": port(), "GENERATION_PORT": port()}
    env = dict(os.environ, **{k: str(v) for k, v in ports.items()})
    env.update({"GPUCOORD_RUN_DIR": tmp + "/run", "GPUCOORD_LOG_DIR": tmp,
                "GPUCOORD_BUILD_DIR": build, "GPUCOORD_FORCE_SIM": "1", "GPUCOORD_NO_BUILD": "1",
                "GPUSIM_STATE": tmp + "/gpusim", "GPUSIM_DEVICES": "24564Mi",
                "GPUSIM_H2D_GBPS": str(gbps), "GPUSIM_D2H_GBPS": str(gbps),
                "VALIDATION_LEVELS": "1" if levels else "0"})
    env.pop("GPUCOORD_URL", None)
    subprocess.run([here + "/start_servers.sh", "--detach"], env=env, check=True,
                   capture_output=True, timeout=180)
    coord = "http://127.0.0.1:%d" % ports["GPUCOORD_PORT"]
    val = "http://127.0.0.1:%d" % ports["VALIDATION_PORT"]
    gen = "http://127.0.0.1:%d" % ports["GENERATION_PORT"]
    out = {"lat": [], "fail": 0, "makespan": [], "unloads": 0, "reloads": 0, "freed": 0,
           "copied": 0, "off": 0}
    try:
        st, ply = generate(gen, "a red cube", 1)
        assert st == 200
        wait_full(coord)
        body = {"prompt": "a red cube", "data": base64.b64encode(ply).decode(),
                "compression": 0, "generate_preview": False}
        r0 = resident(coord)
        full = r0["bytes"]
        at = {lv["name"]: lv["bytes"] for lv in r0["levels"]}
        for rnd in range(rounds):
            seq0 = json.loads(call(coord + "/v1/events?since=0")[1])["events"][-1]["seq"]
            stop = threading.Event()
            lat, fails, levels_seen = [], [0], []

            def one():
                t = time.monotonic()
                st, _ = call(val + "/validate_txt_to_3d_ply/", "POST", body, timeout=120)
                if st == 200:
                    lat.append(time.monotonic() - t)
                else:
                    fails[0] += 1

            def sender():
                ts, nxt = [], time.monotonic()
                while not stop.is_set():
                    t = threading.Thread(target=one)
                    t.start()
                    ts.append(t)
                    nxt += 0.1
                    time.sleep(max(0, nxt - time.monotonic()))
                for t in ts:
                    t.join()

            def watcher():
                while not stop.is_set():
                    levels_seen.append(resident(coord).get("level"))
                    time.sleep(0.05)

            th = [threading.Thread(target=sender), threading.Thread(target=watcher)]
            for t in th:
                t.start()
            t0 = time.monotonic()
            gens = [threading.Thread(target=generate, args=(gen, "a shape %d" % i, 10 * rnd + i))
                    for i in range(3)]
            for g in gens:
                g.start()
            for g in gens:
                g.join()
            out["makespan"].append(time.monotonic() - t0)
            stop.set()
            for t in th:
                t.join()
            wait_full(coord)
            out["lat"] += lat
            out["fail"] += fails[0]
            out["off"] += levels_seen.count("off")
            evs = json.loads(call(coord + "/v1/events?since=%d" % seq0)[1])["events"]
            for e in evs:
                if e["subject"] != "validation":
                    continue
                if e["kind"] == "resident_unloaded":
                    out["unloads"] += 1
                    to = e["detail"].split("'")[1] if "to level '" in e["detail"] else "off"
                    kept = at.get(to, 0)
                    out["freed"] += full - kept
                    out["copied"] += full + kept  # the host copy out, the reduced form in
                elif e["kind"] == "resident_reloaded":
                    out["reloads"] += 1
                    out["copied"] += full  # full precision back from the host copy
    finally:
        subprocess.run([here + "/start_servers.sh", "stop"], env=env, capture_output=True,
                       timeout=60)
    return out


print("### founding burst: 3 concurrent generations x %d rounds, validation every 100 ms; "
      "gpusim 24564Mi at %.0f GB/s, GENERATION_STEP_MS=%s, GENERATION_POINTS=%s"
      % (rounds, gbps, os.environ["GENERATION_STEP_MS"], os.environ["GENERATION_POINTS"]))
print()
print("| levels | unload cycles | GPU bytes taken | bytes copied | generation makespan s "
      "(median) | validations | failed | samples at off | validation p50 s | p99 s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for levels in (False, True):
    o = one_config(levels)
    print("| %s | %d | %.2f GiB | %.2f GiB | %.2f | %d | %d | %d | %.3f | %.3f |" % (
        "on (reduced)" if levels else "off (baseline)", o["unloads"], o["freed"] / GiB,
        o["copied"] / GiB, statistics.median(o["makespan"]), len(o["lat"]) + o["fail"],
        o["fail"], o["off"], pct(o["lat"], 50), pct(o["lat"], 99)))
PY
