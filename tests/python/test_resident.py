#!/usr/bin/env python3
"""gpucoord.Resident against a real gpucoordd on gpusim: registering a fake resident
(started without --register) from Python, demand() after an unload, and
keep_registered() across a coordinator restart with an empty state dir."""
import json
import os
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from gctest import CTX, GEN_BYTES, VAL_BYTES, GpuEnv, wait_until  # noqa: E402

import gpucoord.client  # noqa: E402
from gpucoord import Client, DemandTimeout, NotFound, Resident, SeedServer  # noqa: E402

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(gpucoord.__file__)))
DEMO = os.path.join(PYTHON_DIR, "examples", "resident_demo.py")


class ResidentEnv(GpuEnv):
    def setUp(self):
        super().setUp()
        self._slice = gpucoord.client.WAIT_SLICE_S
        gpucoord.client.WAIT_SLICE_S = 0.3  # chain demand waits in short slices

    def tearDown(self):
        gpucoord.client.WAIT_SLICE_S = self._slice
        super().tearDown()

    def fake(self, name="validation"):
        """A fake resident holding 4.7Gi, not registered: Python registers it."""
        proc = self.start_resident(name, "4.7Gi", register=False)
        port, pid = int(proc.field("port")), int(proc.field("pid"))
        return proc, "http://127.0.0.1:%d" % port, pid

    def stats(self, url):
        with urllib.request.urlopen(url + "/stats", timeout=5) as r:
            return json.load(r)


class RegisterAndDemand(ResidentEnv):
    def test_register_then_demand_brings_it_back_after_an_unload(self):
        self.start_coordinator()
        _, url, pid = self.fake()
        client = Client(self.url)
        res = Resident("validation", url, bytes="4.7Gi", pid=pid, client=client,
                       verify_timeout_s=5)
        self.assertIsNone(res.state())
        view = res.register()
        self.assertEqual((view["state"], view["pid"], view["bytes"], view["protocol"]),
                         ("loaded", pid, VAL_BYTES, "seed"))
        self.assertEqual(self.resident("validation")["url"], url)

        view = client.unload("validation")
        self.assertEqual(view["state"], "unloaded")
        self.assertEqual(self.proc_usage(pid), CTX)  # really freed
        time.sleep(0.3)
        self.assertEqual(res.state(), "unloaded")  # a manual unload is not restored by itself

        t0 = time.monotonic()
        view = res.demand(wait_s=10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(view["state"], "loaded")
        self.assertEqual(self.proc_usage(pid), CTX + VAL_BYTES)
        self.assertEqual(self.stats(url)["reloads"], 1)
        self.assertIn("resident_demand", self.event_kinds("validation"))
        # demand() on a loaded resident returns at once.
        self.assertEqual(res.demand(wait_s=1)["state"], "loaded")

        res.unregister()
        self.assertIsNone(res.state())
        with self.assertRaises(NotFound):
            res.demand(wait_s=1)

    def test_demand_waits_for_a_lease_then_times_out_or_returns(self):
        self.start_coordinator()
        _, url, pid = self.fake()
        client = Client(self.url)
        res = Resident("validation", url, bytes="4.7Gi", pid=pid, client=client)
        res.register()
        client.unload("validation")
        lease = client.lease(GEN_BYTES, holder="generation", wait_s=10)
        self.assertEqual(lease.evicted, [])  # it fit in the room the unload left
        t0 = time.monotonic()
        with self.assertRaises(DemandTimeout) as cm:
            res.demand(wait_s=0.8)
        self.assertGreaterEqual(time.monotonic() - t0, 0.75)
        self.assertEqual(cm.exception.code, "timeout")
        self.assertIn("still", str(cm.exception))
        self.assertEqual(res.state(), "unloaded")
        timer = threading.Timer(0.7, lease.release)
        timer.start()
        try:
            self.assertEqual(res.demand(wait_s=10)["state"], "loaded")
        finally:
            timer.join()
        self.assertTrue(lease.released)
        self.assertEqual(self.proc_usage(pid), CTX + VAL_BYTES)

    def test_context_manager_registers_and_unregisters(self):
        self.start_coordinator()
        _, url, pid = self.fake("scorer")
        client = Client(self.url)
        with Resident("scorer", url, bytes=VAL_BYTES, pid=pid, client=client,
                      priority=50) as res:
            self.assertEqual(client.resident("scorer")["priority"], 50)
            self.assertEqual(res.registrations, 1)
        with self.assertRaises(NotFound):
            client.resident("scorer")


class KeepRegistered(ResidentEnv):
    def test_reregisters_after_restart_with_empty_state(self):
        self.start_coordinator(state_dir=self.path("state-1"))
        port = self.coord_port
        _, url, pid = self.fake()
        client = Client(self.url)
        res = Resident("validation", url, bytes="4.7Gi", pid=pid, client=client)
        again = []
        res.on_reregistered = again.append
        res.keep_registered(interval_s=0.2)
        try:
            self.assertEqual(res.registrations, 1)  # registered at once
            self.assertEqual(self.resident("validation")["pid"], pid)
            time.sleep(0.5)
            self.assertEqual(res.registrations, 1)  # known: nothing to do

            self.assertEqual(self.coord.stop(), 0)
            time.sleep(0.5)  # down for a few checks: they must not kill the thread
            self.start_coordinator(state_dir=self.path("state-2"), port=port)
            wait_until(lambda: self.http.get("/v1/residents/validation")[0] == 200, 3,
                       what="validation registered again")
            view = self.resident("validation")
            self.assertEqual((view["pid"], view["url"], view["bytes"], view["state"]),
                             (pid, url, VAL_BYTES, "loaded"))
            self.assertEqual(res.registrations, 2)
            wait_until(lambda: again == [res], 2, what="on_reregistered called")
            # The new coordinator can use it: it is evicted for a lease.
            with client.lease(GEN_BYTES, holder="generation", wait_s=20) as lease:
                self.assertEqual(lease.evicted, ["validation"])
        finally:
            res.stop()
        self.assertIsNone(res._thread)


class PythonResident(ResidentEnv):
    """python/examples/resident_demo.py: SeedServer + Resident in a Python process that
    really holds 4.7Gi on gpusim through ctypes."""

    def get(self, url):
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)

    def test_evicted_restored_and_demanded(self):
        self.start_coordinator()
        env = dict(self.env, PYTHONPATH=PYTHON_DIR)
        preload = os.environ.get("GPUCOORD_PY_PRELOAD")
        if preload:  # sanitizer build: Python is not instrumented, gpusim is
            env["LD_PRELOAD"] = preload
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        demo = self.start([sys.executable, DEMO, "--coordinator", self.url, "--bytes", "4.7Gi",
                           "--name", "pyres"], "pyres", ready="ready", env=env)
        pid, app = int(demo.field("pid")), "http://127.0.0.1:%s" % demo.field("port")
        # Registered before it loads: loaded once the coordinator has verified it.
        wait_until(lambda: self.resident("pyres")["state"] == "loaded", 10, what="first load")
        view = self.resident("pyres")
        self.assertEqual((view["pid"], view["bytes"], view["state"]), (pid, VAL_BYTES, "loaded"))
        self.assertEqual(self.proc_usage(pid), CTX + VAL_BYTES)

        client = Client(self.url)
        with client.lease(GEN_BYTES, holder="generation", wait_s=20) as lease:
            self.assertEqual(lease.evicted, ["pyres"])
            self.assertEqual(self.proc_usage(pid), CTX)  # the Python process really freed it
        wait_until(lambda: self.resident("pyres")["state"] == "loaded", 10, what="restored")
        self.assertEqual(self.proc_usage(pid), CTX + VAL_BYTES)
        self.assertEqual(self.get(app + "/infer"), {"ok": True, "demanded": False})

        client.unload("pyres")
        self.assertEqual(self.proc_usage(pid), CTX)
        self.assertEqual(self.get(app + "/infer"), {"ok": True, "demanded": True})
        wait_until(lambda: self.resident("pyres")["state"] == "loaded", 10, what="demanded back")
        self.assertEqual(self.proc_usage(pid), CTX + VAL_BYTES)
        self.assertEqual(demo.stop(), 0)
        self.assertEqual(self.http.get("/v1/residents/pyres")[0], 404)  # unregistered

    def test_seed_server_reports_a_failing_callback(self):
        def broken():
            raise RuntimeError("CUDA out of memory")

        with SeedServer(unload=lambda: None, reload=broken) as seed:
            req = urllib.request.Request(seed.url + "/unload_models/", data=b"", method="POST")
            with urllib.request.urlopen(req, timeout=5) as r:
                self.assertEqual(json.load(r)["status"], "success")
            self.assertFalse(seed.loaded)
            req = urllib.request.Request(seed.url + "/reload_models/", data=b"", method="POST")
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=5)
            body = json.load(cm.exception)
            self.assertEqual(cm.exception.code, 500)
            self.assertEqual((body["status"], body["models_reloaded"]), ("error", False))
            self.assertIn("CUDA out of memory", body["error"])
            self.assertFalse(seed.loaded)
            self.assertEqual(self.get(seed.url + "/health/"),
                             {"status": "healthy", "models_loaded": False})


if __name__ == "__main__":
    unittest.main(verbosity=2)
