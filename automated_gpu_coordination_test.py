#!/usr/bin/env python3
"""Automated GPU coordination test: the founding system's three checks, run against a
running system (./start_servers.sh):

  1. validation unload/reload: the GPU memory in use drops by the validation models'
     size when they are unloaded and comes back when they are reloaded (/gpu_status/);
  2. a single generation with coordination: the coordinator's events show the
     validation models evicted, verified free by NVML, and restored after the
     generation; the answer is a valid Gaussian-splat PLY;
  3. several generations in a row, each a valid PLY, the validation models back at
     the end.

Usage: python3 automated_gpu_coordination_test.py [--generations N] [--timeout S]
Environment: VALIDATION_PORT (10006), GENERATION_PORT (8095), GPUCOORD_URL
(http://127.0.0.1:10010), GPUCOORD_HOST (127.0.0.1, where the two servers listen).
Standard library only. Exit 0 when all three pass, 1 when one fails, 2 on bad usage.
Works on gpusim and on a real GPU: sizes are checked against the validation models'
declared size, with a tolerance relative to it (other processes on a real card move
the numbers a little); on a card with room for both servers no eviction is needed,
and the report says so instead of failing.
"""
import argparse
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

GiB = 1 << 30
# What /gpu_status/ may differ from the declared size by: a fraction of it, and at
# least this much (CUDA contexts, allocator rounding, other processes on a real GPU).
SIZE_TOLERANCE = 0.10
SIZE_TOLERANCE_MIN_GB = 0.25
PLY_MIN_POINTS = 7000
PLY_PROPERTIES = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] +
                  ["f_rest_%d" % i for i in range(45)] +
                  ["opacity", "scale_0", "scale_1", "scale_2",
                   "rot_0", "rot_1", "rot_2", "rot_3"])


class CheckFailed(Exception):
    pass


def parse_size(text):
    """"4.7Gi", "512Mi", "20G", "1000" -> bytes (Ki Mi Gi Ti powers of 1024, K M G T of 1000)."""
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "KB": 10**3, "MB": 10**6,
             "GB": 10**9, "TB": 10**12, "KI": 1 << 10, "MI": 1 << 20, "GI": 1 << 30,
             "TI": 1 << 40}
    t = text.strip()
    num = t.rstrip("KMGTBikmgtb ")
    try:
        return int(float(num) * units[t[len(num):].strip().upper()])
    except (ValueError, KeyError):
        raise CheckFailed("bad size %r" % text) from None


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


class Http:
    def __init__(self, base, timeout):
        self.base = base.rstrip("/")
        self.timeout = timeout

    def call(self, method, path, data=None, headers=None, timeout=None):
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise CheckFailed("cannot reach %s%s: %s" % (self.base, path, e)) from None

    def json(self, method, path, timeout=None):
        status, _, body = self.call(method, path, data=b"" if method == "POST" else None,
                                    timeout=timeout)
        try:
            answer = json.loads(body)
        except ValueError:
            raise CheckFailed("%s %s answered %d, not JSON: %r" % (
                method, path, status, body[:200])) from None
        check(status == 200, "%s %s answered %d: %s" % (method, path, status, answer))
        return answer


def ply_points(ply):
    """Checks the contract's binary PLY layout; returns the number of points."""
    marker = b"end_header\n"
    end = ply.find(marker)
    check(ply.startswith(b"ply\n") and end > 0, "the answer is not a PLY file")
    end += len(marker)
    header = ply[:end].decode("ascii", "replace").split("\n")
    check(header[1] == "format binary_little_endian 1.0", "PLY format is %r" % header[1])
    counts = [l.split()[2] for l in header if l.startswith("element vertex ")]
    check(len(counts) == 1, "PLY has no vertex count")
    count = int(counts[0])
    props = [l.split()[2] for l in header if l.startswith("property float ")]
    check(props == PLY_PROPERTIES, "PLY properties are not the Gaussian-splat layout")
    check(len(ply) - end == count * len(props) * 4,
          "PLY body is %d bytes, %d points need %d" % (len(ply) - end, count,
                                                       count * len(props) * 4))
    check(count >= PLY_MIN_POINTS, "PLY has %d points, fewer than %d" % (count, PLY_MIN_POINTS))
    first = struct.unpack_from("<%df" % len(props), ply, end)
    check(all(v == v for v in first), "PLY holds NaN")
    return count


class Runner:
    def __init__(self, args):
        host = os.environ.get("GPUCOORD_HOST", "127.0.0.1")
        self.val = Http("http://%s:%s" % (host, os.environ.get("VALIDATION_PORT", "10006")),
                        args.timeout)
        self.gen = Http("http://%s:%s" % (host, os.environ.get("GENERATION_PORT", "8095")),
                        args.timeout)
        self.coord = Http(os.environ.get("GPUCOORD_URL") or "http://127.0.0.1:10010",
                          args.timeout)
        self.args = args
        self.resident = None
        self.model_gb = None

    def say(self, text):
        print("   " + text, flush=True)

    # ---- what the system says about itself ----

    def find_resident(self):
        """The validation server's resident (by its port), and its declared size."""
        port = urllib.parse.urlsplit(self.val.base).port
        residents = self.coord.json("GET", "/v1/residents")["residents"]
        mine = [r for r in residents if urllib.parse.urlsplit(r.get("url") or "").port == port]
        if not mine:
            mine = [r for r in residents if r.get("name") == "validation"]
        check(mine, "the coordinator has no resident for the validation server on port %s "
              "(registered: %s)" % (port, [r.get("name") for r in residents]))
        self.resident = mine[0]
        self.model_gb = self.resident["bytes"] / GiB
        check(self.model_gb > 0, "the validation resident declares no size")

    def resident_state(self):
        return self.coord.json("GET", "/v1/residents/" + self.resident["name"])["state"]

    def last_seq(self):
        events = self.coord.json("GET", "/v1/events?since=0")["events"]
        return max([e["seq"] for e in events] or [0])

    def events_since(self, seq):
        return self.coord.json("GET", "/v1/events?since=%d" % seq)["events"]

    def tolerance_gb(self):
        return max(self.model_gb * SIZE_TOLERANCE, SIZE_TOLERANCE_MIN_GB)

    def wait_loaded(self, what):
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            if (self.resident_state() == "loaded" and
                    self.val.json("GET", "/health/")["models_loaded"] is True):
                return
            time.sleep(0.1)
        raise CheckFailed("the validation models were not loaded again %s within %.0f s "
                          "(resident state %s)" % (what, self.args.timeout,
                                                   self.resident_state()))

    def generate(self, prompt, seed):
        data = urllib.parse.urlencode({"prompt": prompt, "seed": str(seed)}).encode()
        t0 = time.monotonic()
        status, headers, body = self.gen.call(
            "POST", "/generate/", data=data,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        took = time.monotonic() - t0
        check(status == 200, "POST /generate/ (%r, seed %d) answered %d: %s" % (
            prompt, seed, status, body[:300].decode("utf-8", "replace")))
        check(headers.get("X-Model-Format") == "gaussian_splatting_ply",
              "X-Model-Format is %r" % headers.get("X-Model-Format"))
        return ply_points(body), len(body), took

    # ---- the three tests ----

    def test_unload_reload(self):
        # This test needs no coordinator: without one, the size the server was
        # started with (VALIDATION_MODEL_BYTES, as ./start_servers.sh passes it).
        try:
            self.find_resident()
            self.say("validation resident '%s': %.2f GiB of models declared" % (
                self.resident["name"], self.model_gb))
            self.wait_loaded("before the test")
        except CheckFailed as e:
            self.model_gb = parse_size(os.environ.get("VALIDATION_MODEL_BYTES", "4.7Gi")) / GiB
            self.say("%s; taking VALIDATION_MODEL_BYTES: %.2f GiB" % (e, self.model_gb))
        before = self.val.json("GET", "/gpu_status/")
        check(before.get("gpu_available") is True, "/gpu_status/ says no GPU: %s" % before)
        self.say("before:   %.2f GB used of %.2f GB" % (before["memory_used_gb"],
                                                         before["memory_total_gb"]))
        un = self.val.json("POST", "/unload_models/")
        check(un.get("status") == "success" and un.get("models_unloaded") is True,
              "unload failed: %s" % un)
        mid = self.val.json("GET", "/gpu_status/")
        dropped = before["memory_used_gb"] - mid["memory_used_gb"]
        self.say("unloaded: %.2f GB used (%.2f GB freed, in %.2f s)" % (
            mid["memory_used_gb"], dropped, un.get("unload_time", 0)))
        check(abs(dropped - self.model_gb) <= self.tolerance_gb(),
              "unloading freed %.2f GB, the models are %.2f GB" % (dropped, self.model_gb))
        re = self.val.json("POST", "/reload_models/")
        check(re.get("models_reloaded") is True, "reload failed: %s" % re)
        after = self.val.json("GET", "/gpu_status/")
        self.say("reloaded: %.2f GB used (in %.2f s)" % (after["memory_used_gb"],
                                                         re.get("reload_time", 0)))
        check(abs(after["memory_used_gb"] - before["memory_used_gb"]) <= self.tolerance_gb(),
              "after the reload %.2f GB are used, before the unload %.2f GB" % (
                  after["memory_used_gb"], before["memory_used_gb"]))
        check(self.val.json("GET", "/health/")["models_loaded"] is True,
              "/health/ says the models are not loaded after the reload")

    def test_single_generation(self):
        if self.resident is None:
            self.find_resident()
        self.wait_loaded("before the generation")
        name = self.resident["name"]
        seq = self.last_seq()
        points, size, took = self.generate("a red cube", 42)
        self.say("generated a valid PLY: %d points, %d bytes, in %.2f s" % (points, size, took))
        # The restore follows the release: wait for it, bounded.
        deadline = time.monotonic() + self.args.timeout
        while True:
            events = self.events_since(seq)
            kinds = [(e["kind"], e["subject"]) for e in events]
            granted = [e for e in events if e["kind"] == "lease_granted"]
            evicted = any("after evicting " + name in e["detail"] for e in granted)
            if not evicted or ("resident_reloaded", name) in kinds:
                break
            check(time.monotonic() < deadline, "no resident_reloaded event for '%s' within "
                  "%.0f s after the generation" % (name, self.args.timeout))
            time.sleep(0.1)
        check(granted, "the coordinator granted no lease for the generation (events: %s)"
              % [k for k, _ in kinds])
        if not evicted:
            self.say("the GPU had room for both servers: the lease was granted without "
                     "evicting '%s' (%s)" % (name, granted[-1]["detail"]))
            check(("resident_unloaded", name) not in kinds,
                  "'%s' was unloaded although no lease needed its memory" % name)
        else:
            unloaded = [e for e in events if e["kind"] == "resident_unloaded"
                        and e["subject"] == name]
            reloaded = [e for e in events if e["kind"] == "resident_reloaded"
                        and e["subject"] == name]
            check(unloaded, "no resident_unloaded event for '%s'" % name)
            check("verified" in unloaded[0]["detail"],
                  "the unload was not verified: %s" % unloaded[0]["detail"])
            order = [e["seq"] for e in (unloaded[0], granted[0], reloaded[0])]
            check(order == sorted(order), "events out of order: unloaded, granted, reloaded "
                  "have seq %s" % order)
            check("verified by NVML" in reloaded[0]["detail"],
                  "the reload was not verified: %s" % reloaded[0]["detail"])
            for e in (unloaded[0], granted[0], reloaded[0]):
                self.say("event %-18s %s: %s" % (e["kind"], e["subject"], e["detail"]))
        self.wait_loaded("after the generation")

    def test_several_generations(self):
        n = self.args.generations
        for i in range(n):
            prompt = ("a blue sphere", "a green cone", "a yellow torus")[i % 3]
            points, size, took = self.generate(prompt, 100 + i)
            self.say("generation %d/%d (%s): %d points in %.2f s" % (i + 1, n, prompt, points,
                                                                     took))
        if self.resident is None:
            self.find_resident()
        self.wait_loaded("after %d generations" % n)
        self.say("validation models loaded again")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=3,
                    help="generations in a row for the third test (default 3)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="longest wait for one step, in seconds (default 300)")
    args = ap.parse_args()
    if args.generations < 1 or args.timeout <= 0:
        ap.error("--generations must be at least 1 and --timeout positive")
    r = Runner(args)
    tests = [("Validation unload/reload", r.test_unload_reload),
             ("Single generation with coordination", r.test_single_generation),
             ("Several generations in a row", r.test_several_generations)]
    print("Automated GPU coordination test")
    print("  validation %s, generation %s, coordinator %s" % (r.val.base, r.gen.base,
                                                               r.coord.base))
    results = []
    for i, (title, fn) in enumerate(tests, 1):
        print("\n[%d/%d] %s" % (i, len(tests), title), flush=True)
        t0 = time.monotonic()
        try:
            fn()
            ok, why = True, ""
        except CheckFailed as e:
            ok, why = False, str(e)
            print("   FAILED: " + why, flush=True)
        results.append((title, ok, time.monotonic() - t0))
    print("\nSummary")
    for title, ok, took in results:
        print("  %-4s %-40s %6.2f s" % ("PASS" if ok else "FAIL", title, took))
    passed = sum(ok for _, ok, _ in results)
    print("%d of %d tests passed" % (passed, len(results)))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
