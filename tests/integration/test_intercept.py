#!/usr/bin/env python3
"""libgpucoord-intercept.so end to end on gpusim: unmodified programs (a C program
that allocates like PyTorch's caching allocator, through dlsym, cuGetProcAddress
or the virtual-memory API, and a stdlib Python program through ctypes) allocate
19.6Gi beside a resident holding 4.7Gi on a simulated RTX 4090. Without the
library: CUDA_ERROR_OUT_OF_MEMORY. With it: the resident is evicted, verified
free, the program runs, and the resident comes back when the program exits."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import (BUILD, CTX, GEN_BYTES, REAL_GPU, GiB, VAL_BYTES, GpuEnv,  # noqa: E402
                    wait_until)

PROG = os.path.join(BUILD, "tests", "intercept", "alloc-prog")
PYPROG = os.path.join(os.path.dirname(__file__), "..", "intercept", "ctypes_prog.py")
LIB = os.path.join(BUILD, "libgpucoord-intercept.so")
OOM = 2
# Sanitizer builds: an uninstrumented program (python, sh) with the sanitizer runtime
# and the instrumented interposer preloaded deadlocks in glibc's locale lock.
SKIP_UNINSTRUMENTED = unittest.skipIf(
    os.environ.get("GPUCOORD_PY_PRELOAD"),
    "sanitizer build: uninstrumented programs cannot run the instrumented interposer")


# Threads that allocate hand every pointer to threads that free it (stdlib only).
CROSS_THREAD_FREES = r"""
import ctypes, queue, sys, threading
cuda = ctypes.CDLL("libcuda.so.1")
u64 = ctypes.c_ulonglong
cuda.cuMemAlloc_v2.argtypes = [ctypes.POINTER(u64), ctypes.c_size_t]
cuda.cuMemFree_v2.argtypes = [u64]
dev, ctx = ctypes.c_int(), ctypes.c_void_p()
assert cuda.cuInit(0) == 0 and cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0
THREADS, EACH, CHUNK = 4, 40, 64 << 20
handed, failed = queue.Queue(), []
def allocator():
    cuda.cuCtxSetCurrent(ctx)
    for _ in range(EACH):
        p = u64()
        rc = cuda.cuMemAlloc_v2(ctypes.byref(p), CHUNK)
        if rc != 0:
            failed.append(("alloc", rc))
            return
        handed.put(p.value)
def freer():
    cuda.cuCtxSetCurrent(ctx)
    for _ in range(EACH):
        rc = cuda.cuMemFree_v2(handed.get(timeout=60))
        if rc != 0:
            failed.append(("free", rc))
ts = [threading.Thread(target=f) for f in [allocator, freer] * THREADS]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("failed %r" % failed if failed else "ready", flush=True)
sys.stdin.read()
"""


class Intercept(GpuEnv):
    def setUp(self):
        super().setUp()
        self.held = []
        self.logs = []

    def tearDown(self):
        for p in self.held:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            p.stdout.close()
            if p.stdin and not p.stdin.closed:
                p.stdin.close()
        for f in self.logs:
            f.close()
        super().tearDown()

    def base_env(self):
        """The test's environment; in sanitizer builds with their runtime preloaded
        (as for tests/python), so that python can load the instrumented gpusim."""
        env = dict(self.env)
        if os.environ.get("GPUCOORD_PY_PRELOAD"):
            env["LD_PRELOAD"] = os.environ["GPUCOORD_PY_PRELOAD"]
            # Python itself is not leak-clean (as in tests/python).
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        return env

    def preload_env(self, **extra):
        env = self.base_env()
        # After a sanitizer runtime, which must come first.
        env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), LIB]))
        env["GPUCOORD_URL"] = self.url
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run_prog(self, argv, env, timeout=60):
        return subprocess.run(argv, env=env, capture_output=True, timeout=timeout, text=True)

    def hold(self, argv, env):
        """Starts a program with --hold; returns it once it says ready."""
        log = open(self.path("prog.log"), "ab")
        self.logs.append(log)
        p = subprocess.Popen(argv + ["--hold"], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=log, text=True)
        self.held.append(p)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                self.fail("%s exited %s before it was ready" % (argv, p.wait(10)))
            if line.startswith("ready"):
                return p
        self.fail("%s not ready" % argv)

    def metric(self, name):
        st, text = self.http.get("/metrics")
        for line in text.decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
        return 0

    def leases(self):
        return self.http.get("/v1/leases")[1]["leases"]

    def headline(self, argv, kill=False):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        rpid = int(res.field("pid"))
        # Without the library: the driver says out of memory.
        out = self.run_prog(argv, self.base_env())
        self.assertEqual(out.returncode, OOM, out.stdout + out.stderr)
        self.assertIn("error", out.stdout)
        self.assertEqual(self.resident("validation")["state"], "loaded")
        # With it: the resident makes room, verified, and the program runs.
        p = self.hold(argv, self.preload_env())
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        if not REAL_GPU:  # a real context's size is the card's
            self.assertEqual(self.proc_usage(rpid), CTX)
        self.assertGreaterEqual(self.proc_usage(p.pid), GEN_BYTES)
        kinds = [e["kind"] for e in self.events()]
        self.assertIn("resident_unloaded", kinds)
        self.assertLess(kinds.index("resident_unloaded"),
                        len(kinds) - 1 - kinds[::-1].index("lease_resized"))
        (lease,) = self.leases()
        self.assertEqual(lease["pid"], p.pid)
        self.assertEqual(lease["evicted"], ["validation"])
        if not REAL_GPU:
            self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 1)  # the run without
        # However it exits, the lease ends and the resident comes back.
        if kill:
            p.send_signal(signal.SIGKILL)
        else:
            p.stdin.close()
        self.assertEqual(p.wait(10), -9 if kill else 0)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15,
                   what="validation restored")
        if not REAL_GPU:
            self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)
        self.assertEqual(self.leases(), [])

    def test_caching_allocator_segments_through_dlsym(self):
        self.headline([PROG, "segments", "19.6Gi", "2Gi"])

    def test_expandable_segments_through_the_vmm_api(self):
        self.headline([PROG, "vmm", "19.6Gi", "20Mi"])

    def test_runtime_style_cuGetProcAddress(self):
        self.headline([PROG, "procaddr", "19.6Gi", "512Mi"])

    @SKIP_UNINSTRUMENTED
    def test_python_ctypes_killed_with_sigkill(self):
        self.headline([sys.executable, PYPROG, str(GEN_BYTES)], kill=True)

    def test_other_allocation_paths(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        for argv in ([PROG, "async", "19.6Gi"], [PROG, "managed", "19.6Gi"],
                     [PROG, "pitch", "19.6Gi", "1Mi"]):
            out = self.run_prog(argv, self.base_env())
            self.assertEqual(out.returncode, OOM, (argv, out.stdout))
            out = self.run_prog(argv, self.preload_env())
            self.assertEqual(out.returncode, 0, (argv, out.stdout, out.stderr))
            wait_until(lambda: self.resident("validation")["state"] == "loaded", 15,
                       what="validation restored after %s" % argv[1])

    def test_growth_in_small_steps_costs_few_resizes(self):
        self.start_coordinator()
        # 410 allocations of 20Mi: a logarithmic number of round trips, not 410.
        out = self.run_prog([PROG, "segments", "8Gi", "20Mi"], self.preload_env())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        resizes = self.metric("gpucoord_lease_resizes_total")
        self.assertGreater(resizes, 0)
        self.assertLessEqual(resizes, 25)

    def test_free_and_allocate_again_does_not_churn_the_lease(self):
        self.start_coordinator()
        out = self.run_prog([PROG, "loop", "2Gi", "--repeat", "500"], self.preload_env())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        if not REAL_GPU:
            self.assertEqual(self.metric("gpucoord_lease_resizes_total"), 1)

    def test_freed_memory_is_given_back_lazily(self):
        self.start_coordinator()
        p = self.hold([PROG, "loop", "6Gi"], self.preload_env(GPUCOORD_SHRINK_WINDOW_S=0.3))
        (lease,) = self.leases()
        self.assertEqual(lease["pid"], p.pid)
        # Freed right after allocating: within a few windows the lease shrinks back.
        wait_until(lambda: self.leases()[0]["bytes"] < 1 * GiB, 10, what="lease shrunk")
        self.assertEqual(self.metric("gpucoord_lease_resizes_total"), 2)

    def test_fork_child_does_not_use_the_parents_lease(self):
        self.start_coordinator()
        out = self.run_prog([PROG, "fork", "1Gi", "1Gi"], self.preload_env())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("child 3", out.stdout)  # CUDA_ERROR_NOT_INITIALIZED, as the driver says
        granted = [e for e in self.events() if e["kind"] == "lease_granted"]
        self.assertEqual(len(granted), 1, granted)
        # Two growths, both the parent's (before and after the fork): the child's
        # allocation went to the driver (which refused it) without touching the lease.
        growths = [e["detail"] for e in self.events() if e["kind"] == "lease_growth"]
        self.assertEqual(len(growths), 2, growths)
        # The child asked for 4Gi: had it reached the lease, a growth past 4Gi would show.
        for detail in growths:
            asked = float(detail.split(": ")[1].split("Gi asked")[0])
            self.assertLess(asked, 4.0, growths)

    def test_threads_allocating_at_once(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        out = self.run_prog([PROG, "segments", "16Gi", "64Mi", "--threads", "8", "--repeat", "3"],
                            self.preload_env())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15,
                   what="validation restored")
        self.assertTrue(res.alive())
        if not REAL_GPU:
            self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    @SKIP_UNINSTRUMENTED
    def test_frees_on_other_threads_give_the_lease_back(self):
        self.start_coordinator()
        # Every allocation freed by another thread than the one that made it: once all
        # are freed the count is back at the context, and the lease shrinks to it.
        p = self.hold([sys.executable, "-c", CROSS_THREAD_FREES],
                      self.preload_env(GPUCOORD_SHRINK_WINDOW_S=0.3))
        (lease,) = self.leases()
        self.assertEqual(lease["pid"], p.pid)
        self.assertGreater(self.metric("gpucoord_lease_resizes_total"), 0)  # it grew
        wait_until(lambda: self.leases()[0]["bytes"] < 1 * GiB, 10, what="lease shrunk")

    def test_context_cost_is_measured_not_estimated(self):
        self.start_coordinator()
        # The lease at the first context: 512Mi (the estimate) + 1Gi (GPUCOORD_NEED).
        # gpusim's context takes 300Mi, measured through NVML once it is made, so
        # 1200Mi more fit without a resize (with the estimate they would not).
        out = self.run_prog([PROG, "segments", "1200Mi", "1200Mi"],
                            self.preload_env(GPUCOORD_NEED="1Gi"))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        if not REAL_GPU:  # a real context's size is the card's
            self.assertEqual(self.metric("gpucoord_lease_resizes_total"), 0)
        # GPUCOORD_CONTEXT_BYTES, when given, is what counts: 512Mi + 1200Mi > 1.5Gi.
        out = self.run_prog([PROG, "segments", "1200Mi", "1200Mi"],
                            self.preload_env(GPUCOORD_NEED="1Gi", GPUCOORD_CONTEXT_BYTES="512Mi"))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        if not REAL_GPU:
            self.assertEqual(self.metric("gpucoord_lease_resizes_total"), 1)

    def test_every_cuCtxCreate_takes_the_lease_at_the_context(self):
        # cuCtxCreate_v3 (execution affinity) and _v4 (creation parameters, what
        # cuCtxCreate means from CUDA 13) are hooked like _v2: the lease is there
        # before the first allocation.
        self.start_coordinator()
        for mode in ("ctx-v2", "ctx-v3", "ctx-v4"):
            p = self.hold([PROG, mode, "1Gi"], self.preload_env(GPUCOORD_NEED="1Gi"))
            (lease,) = self.leases()
            self.assertEqual(lease["pid"], p.pid, mode)
            self.assertGreaterEqual(lease["bytes"], 1 * GiB, mode)
            p.stdin.close()
            self.assertEqual(p.wait(10), 0, mode)
            wait_until(lambda: self.leases() == [], 10, what="%s's lease ended" % mode)

    def test_unreachable_coordinator_passes_through_with_one_warning(self):
        self.start_coordinator()
        env = self.preload_env()
        env["GPUCOORD_URL"] = "http://127.0.0.1:1"
        out = self.run_prog([PROG, "segments", "4Gi", "64Mi"], env)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual(out.stderr.count("gpucoord-intercept:"), 1, out.stderr)
        self.assertIn("uncoordinated", out.stderr)
        env["GPUCOORD_INTERCEPT_FAIL_CLOSED"] = "1"
        out = self.run_prog([PROG, "segments", "4Gi", "64Mi"], env)
        self.assertEqual(out.returncode, OOM, out.stdout + out.stderr)
        self.assertIn("FAIL_CLOSED", out.stderr)

    def test_gpucoord_run_auto(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        cli = os.path.join(BUILD, "gpucoord")
        env = self.base_env()
        out = self.run_prog([cli, "--url", self.url, "run", "--auto", "--holder", "auto-test",
                             "--", PROG, "segments", "19.6Gi", "2Gi"], env)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("ok 21045339750", out.stdout)
        granted = [e for e in self.events() if e["kind"] == "lease_granted"]
        self.assertEqual(len(granted), 1)
        self.assertIn("auto-test", granted[0]["detail"])
        self.assertEqual(self.resident("validation")["unloads"], 1)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15,
                   what="validation restored")
        # --need with --auto: room taken at the first context, before any allocation.
        out = self.run_prog([cli, "--url", self.url, "run", "--auto", "--need", "2Gi", "--",
                             PROG, "segments", "1Gi"], env)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("2.5Gi", [e["detail"] for e in self.events()
                                if e["kind"] == "lease_granted"][-1])
        # The lease is the command's: --gpu and --ttl make no sense.
        out = self.run_prog([cli, "--url", self.url, "run", "--auto", "--gpu", "0", "--", "true"],
                            env)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("--auto", out.stderr)

    @SKIP_UNINSTRUMENTED
    def test_program_without_gpu_never_talks_to_the_coordinator(self):
        self.start_coordinator()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(0.2)
        accepted = []

        def watch():
            end = time.monotonic() + 3
            while time.monotonic() < end:
                try:
                    accepted.append(listener.accept())
                except OSError:
                    pass

        t = threading.Thread(target=watch)
        t.start()
        env = self.preload_env()
        env["GPUCOORD_URL"] = "http://127.0.0.1:%d" % listener.getsockname()[1]
        out = self.run_prog([sys.executable, "-c", "import ctypes; print('no gpu')"], env)
        t.join()
        listener.close()
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        self.assertEqual(accepted, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
