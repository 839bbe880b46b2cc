#!/usr/bin/env python3
"""Load test, bounded and on loopback: many holders take and release leases of random
sizes (really allocating the memory on gpusim) while residents are unloaded and
reloaded and random holders are SIGKILLed. Checked throughout:

  * gpusim never reports an OOM (holders allocate what they were granted),
  * granted leases + loaded residents never exceed the GPU's budget,
  * no lease outlives its holder by more than its TTL,
  * every resident ends loaded.

  python3 tests/load/loadtest.py [--seconds 60] [--clients 64] [--build build]

Prints a report table; exits 1 if an invariant broke.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import gctest  # noqa: E402

BUDGET = 23 << 30
TTL_S = 2.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--build", default=gctest.BUILD)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    gctest.BUILD = os.path.abspath(args.build)
    gctest.SIM = os.path.join(gctest.BUILD, "sim")
    random.seed(args.seed)

    class Env(gctest.GpuEnv):
        extra_env = {"GPUSIM_CONTEXT_BYTES": "16Mi"}

        def runTest(self):
            pass

    env = Env()
    env.setUp()
    failures = []
    try:
        report = run(env, args, failures)
    finally:
        env.tearDown()
    print()
    print("| load test (%d clients, %.0f s, gpusim 24564Mi, budget 23Gi) | value |" %
          (args.clients, args.seconds))
    print("|---|---|")
    for k, v in report:
        print("| %s | %s |" % (k, v))
    if failures:
        print("\nINVARIANTS BROKEN:")
        for f in failures[:20]:
            print("  " + f)
        return 1
    print("\nall invariants held")
    return 0


def run(env, args, failures):
    env.start_coordinator(config="[coordinator]\nmax_unloaded_s = 5\nstarvation_s = 5\n"
                                 "log_level = warn\n[gpu.0]\nbudget = 23Gi\n")
    env.env["GPUCOORD_URL"] = env.url
    residents = {"validation": ("4.7Gi", "10"), "embedder": ("2Gi", "60"), "asr": ("1Gi", "200")}
    for name, (size, prio) in residents.items():
        env.start_resident(name, size, "--priority", prio)
    client_bin = os.path.join(gctest.BUILD, "tests", "tools", "load-client")
    stats_dir = env.path("stats")
    os.makedirs(stats_dir)
    clients = {}
    seq = [0]

    def spawn():
        seq[0] += 1
        n = seq[0]
        p = env.start([client_bin, "--seconds", str(args.seconds), "--max", "9Gi",
                       "--seed", str(n), "--stats", os.path.join(stats_dir, "%d.json" % n),
                       "--hold-ms", "150"], "client-%d" % n, ready="ready")
        clients[n] = p

    for _ in range(args.clients):
        spawn()
    killed = {}  # pid -> time of SIGKILL
    stop = threading.Event()
    counts = {"holders_killed": 0, "resident_cycles": 0, "checks": 0}

    def chaos_holders():
        while not stop.wait(random.uniform(0.5, 1.5)):
            live = [n for n, p in clients.items() if p.alive()]
            if not live:
                continue
            n = random.choice(live)
            killed[clients[n].pid] = time.monotonic()
            clients[n].signal(signal.SIGKILL)
            counts["holders_killed"] += 1
            spawn()

    def chaos_residents():
        while not stop.wait(random.uniform(1.5, 3.0)):
            _, rs = env.http.get("/v1/residents")
            loaded = [r["name"] for r in rs["residents"] if r["state"] == "loaded"]
            if not loaded:
                continue
            name = random.choice(loaded)
            st, body = env.http.post("/v1/residents/%s/unload" % name, timeout=60)
            if st == 200:
                time.sleep(random.uniform(0.2, 1.0))
                # Queued behind the leases like any request for memory.
                st, body = env.http.post("/v1/residents/%s/demand" % name, {"wait_s": 30},
                                         timeout=60)
                counts["resident_cycles"] += st == 200

    def monitor():
        while not stop.wait(0.1):
            st, s = env.http.get("/v1/status", timeout=30)
            if st != 200:
                failures.append("status answered %s" % st)
                continue
            counts["checks"] += 1
            granted = sum(l["bytes"] for l in s["leases"]
                          if l["state"] == "granted" and l["kind"] == "holder")
            loaded = sum(r["bytes"] for r in s["residents"]
                         if r["state"] in ("loaded", "unloading", "reloading"))
            if granted + loaded > BUDGET:
                failures.append("granted %d + loaded %d > budget %d" % (granted, loaded, BUDGET))
            now = time.monotonic()
            for l in s["leases"]:
                t = killed.get(l["pid"])
                if t is not None and now - t > TTL_S + 0.5:
                    failures.append("lease %s outlived its killed holder %d by %.1f s" %
                                    (l["id"], l["pid"], now - t))

    threads = [threading.Thread(target=f, daemon=True)
               for f in (chaos_holders, chaos_residents, monitor)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    for p in clients.values():
        if p.alive():
            p.signal(signal.SIGTERM)
    for n, p in clients.items():
        try:
            p.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            failures.append("client %d did not stop" % n)
        if p.p.returncode == 3:
            failures.append("client %d hit an OOM on granted memory" % n)
    elapsed = time.monotonic() - t0

    # Afterwards: no lease left, every resident loaded, no OOM ever.
    try:
        gctest.wait_until(lambda: not env.http.get("/v1/leases")[1]["leases"], 30,
                          what="all leases gone")
    except AssertionError as e:
        failures.append(str(e))
    try:
        gctest.wait_until(lambda: all(env.resident(n)["state"] == "loaded" for n in residents),
                          60, what="all residents loaded")
    except AssertionError as e:
        failures.append(str(e))
    oom = env.sim_status()["devices"][0]["oom_count"]
    if oom:
        failures.append("gpusim reported %d OOMs" % oom)

    granted = failed = timeouts = 0
    lat = []
    for name in os.listdir(stats_dir):
        with open(os.path.join(stats_dir, name)) as f:
            st = json.load(f)
        granted += st["granted"]
        failed += st["failed"]
        timeouts += st["timeouts"]
        lat += st["grant_ms"]
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] if lat else 0
    _, status = env.http.get("/v1/status")
    c = status["counters"]
    return [
        ("leases granted (coordinator)", c["leases_granted"]),
        ("leases granted per second", "%.0f" % (c["leases_granted"] / elapsed)),
        ("grant latency p50 / p99 (ms, incl. waiting for memory)",
         "%.1f / %.1f" % (pct(0.5), pct(0.99))),
        ("lease waits that timed out (withdrawn)", timeouts),
        ("lease requests failed", failed),
        ("resident unloads / reloads", "%d / %d" % (c["unloads"], c["reloads"])),
        ("swaps (evicted for a lease, then restored)", c["swaps"]),
        ("OOMs avoided (grants that needed an eviction)", c["oom_avoided"]),
        ("holders SIGKILLed (leases ended by pidfd)", counts["holders_killed"]),
        ("resident unload-by-hand + demand cycles", counts["resident_cycles"]),
        ("invariant checks", counts["checks"]),
        ("gpusim OOMs", oom),
        ("invariant violations", len(failures)),
    ]


if __name__ == "__main__":
    sys.exit(main())
