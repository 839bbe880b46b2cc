#!/usr/bin/env python3
"""Growth: every way a resident can take GPU memory again, against a holder that
allocates its whole lease. Whatever the path - automatic restore, a reload by hand,
a demand, a call straight to the resident, a resident restart, a slow loader, a
reload retried - a resident grows only into room the ledger gave it: gpusim counts
no driver OOM and the holder lives to release its lease."""
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import BUILD, GiB, GpuEnv, Http, free_port, wait_until  # noqa: E402

HOLD = os.path.join(BUILD, "src", "tools", "gpu-hold")
CLI = os.path.join(BUILD, "gpucoord")
VALIDATION = os.path.join(BUILD, "validation-server")
PYTHON_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "python"))
DEMO = os.path.join(PYTHON_DIR, "examples", "resident_demo.py")


class GrowthCase(GpuEnv):
    """A coordinator, and helpers for holders that allocate their whole lease."""

    def setUp(self):
        super().setUp()
        self.start_coordinator()

    def tearDown(self):
        for p in getattr(self, "detached", []):
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        super().tearDown()

    def no_oom(self):
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    def holder(self, delay_s=2.0, hold_s=3.0, need="19.6Gi", allocate="19Gi", name="holder"):
        """`gpucoord run --need NEED` whose command sleeps delay_s after the grant, then
        allocates ALLOCATE and keeps it hold_s seconds (exit 2 on a driver OOM)."""
        cmd = "sleep %s; exec %s --bytes %s --seconds %s" % (delay_s, HOLD, allocate, hold_s)
        return self.start([CLI, "--url", self.url, "run", "--need", need, "--", "sh", "-c", cmd],
                          name)

    def survives(self, holder, timeout=60):
        holder.p.wait(timeout=timeout)
        self.assertEqual(holder.p.returncode, 0, "the holder did not survive its lease")

    def granted(self):
        st, body = self.http.get("/v1/leases")
        self.assertEqual(st, 200)
        return [l for l in body["leases"] if l["state"] == "granted" and
                not l["id"].startswith("demand-")]

    def in_thread(self, fn):
        out = {}

        def run():
            out["answer"] = fn()
            out["at"] = time.monotonic()
        t = threading.Thread(target=run)
        t.start()
        return t, out

    def fake(self, name="validation", *args, **fields):
        """A fake seed resident registered through the API with extra fields."""
        res = self.start_resident(name, "4.7Gi", *args, register=False)
        body = {"name": name, "protocol": "seed", "url": "http://127.0.0.1:%s" % res.field("port"),
                "pid": int(res.field("pid")), "bytes": "4.7Gi"}
        body.update(fields)
        st, r = self.http.post("/v1/residents", body)
        self.assertEqual(st, 201, r)
        return res



class Growth(GrowthCase):
    """The coordinator's own paths."""

    def test_automatic_restore_waits_for_the_next_holder(self):
        self.fake("validation")
        h1 = self.holder(delay_s=0.5, hold_s=1.5, name="holder1")
        wait_until(lambda: self.resident("validation")["state"] == "unloaded", 10)
        h2 = self.holder(delay_s=0.5, hold_s=1.5, name="holder2")
        self.survives(h1)
        self.survives(h2)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15)
        self.no_oom()

    def test_manual_reload_waits_its_turn(self):
        """A reload by hand while a lease holds the room waits for the lease to end."""
        self.fake("validation")
        h = self.holder(delay_s=2.0, hold_s=3.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        time.sleep(1.2)
        t, out = self.in_thread(lambda: subprocess.run(
            [CLI, "--url", self.url, "reload", "validation"], env=self.env,
            capture_output=True, text=True, timeout=60))
        self.survives(h)
        ended = time.monotonic()
        t.join(30)
        run = out["answer"]
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("validation: loaded", run.stdout)
        self.assertGreaterEqual(out["at"], ended - 0.5, "loaded while the lease held the room")
        self.no_oom()

    def test_manual_reload_that_cannot_come_back_answers_409(self):
        self.fake("validation", reload_timeout_s=1.5)
        h = self.holder(delay_s=0.5, hold_s=4.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        st, body = self.http.post("/v1/residents/validation/reload", timeout=30)
        self.assertEqual((st, body["error"]), (409, "conflict"), body)
        self.assertIn("granted lease", body["message"])
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        # The demand it made is withdrawn: nothing reloads it behind the holder's back.
        st, leases = self.http.get("/v1/leases")
        self.assertFalse([l for l in leases["leases"] if l["id"].startswith("demand-")])
        self.survives(h)
        self.no_oom()

    def test_demand_waits_for_the_holder(self):
        self.fake("validation")
        h = self.holder(delay_s=1.0, hold_s=2.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        st, r = self.http.post("/v1/residents/validation/demand", {"wait_s": 30}, timeout=40)
        self.assertEqual((st, r["state"]), (200, "loaded"), r)
        self.survives(h)
        self.no_oom()

    def test_reload_retry_keeps_the_room_claimed(self):
        """A reload that fails and is retried with backoff still counts its bytes: a
        lease arriving between attempts must not be granted into its room."""
        self.fake("validation", "--reload-failures", "2", restore="auto")
        st, r = self.http.post("/v1/residents/validation/unload")
        self.assertEqual(st, 200, r)
        t, out = self.in_thread(lambda: self.http.post("/v1/residents/validation/reload",
                                                      timeout=60))
        wait_until(lambda: "reload_failed" in self.event_kinds("validation"), 10)
        h = self.holder(delay_s=0.0, hold_s=1.0)
        self.survives(h)
        t.join(30)
        self.assertEqual(out["answer"][0], 200, out["answer"])
        self.no_oom()

    def test_slow_loader_counts_its_bytes(self):
        """A process resident whose start takes longer than its verification: marked
        loaded with nothing in NVML yet, it still counts its 6Gi, so a 19Gi lease is not
        granted beside it (it evicts it instead)."""
        cmd = "sleep 3; exec %s --bytes 6Gi" % HOLD
        st, body = self.http.post("/v1/residents", {
            "name": "slow", "protocol": "process", "command": cmd, "bytes": "6Gi",
            "verify_timeout_s": 1, "kill_grace_s": 1})
        self.assertEqual(st, 201, body)
        st, r = self.http.post("/v1/residents/slow/reload", timeout=30)
        self.assertEqual((st, r["state"]), (200, "loaded"), r)
        self.detached = [r["pid"]]
        self.assertEqual(self.proc_usage(r["pid"]), 0)  # still starting
        h = self.holder(delay_s=0.0, hold_s=4.0)
        time.sleep(4.5)  # past the slow start: both would be on the card now
        self.survives(h)
        self.no_oom()


class ValidationGrowth(GrowthCase):
    """The founding validation server: its growth goes through the coordinator too."""

    def start_validation(self, name="validation"):
        if not hasattr(self, "vport"):
            self.vport = free_port()
        env = dict(self.env, GPUCOORD_URL=self.url, VALIDATION_PORT=str(self.vport),
                   VALIDATION_DEMAND_WAIT_S="30")
        p = self.start([VALIDATION, "--host", "127.0.0.1"], name, env=env)
        self.val = Http("http://127.0.0.1:%d" % self.vport)

        def up():
            if not p.alive():
                raise AssertionError("validation-server exited with %s" % p.p.returncode)
            try:
                return self.val.get("/health/", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(up, 15, what="validation-server /health/")

        def registered():  # it answers /health/ before it has registered
            try:
                return Http(self.url).get("/v1/residents/validation", timeout=2)[0] == 200
            except OSError:
                return True  # no coordinator there: it runs standalone
        wait_until(registered, 15, what="the validation server's registration")
        return p

    def models_loaded(self):
        return self.val.get("/health/", timeout=5)[1]["models_loaded"]

    def test_direct_reload_becomes_a_demand(self):
        self.start_validation()
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15)
        h = self.holder(delay_s=2.0, hold_s=3.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        time.sleep(1.2)
        t, out = self.in_thread(lambda: self.val.post("/reload_models/", timeout=90))
        self.survives(h)
        ended = time.monotonic()
        t.join(60)
        st, r = out["answer"]
        self.assertEqual(st, 200, r)
        self.assertTrue(r["models_reloaded"], r)
        self.assertTrue(r["restored_from_backup"], r)
        for key in ("memory_total_gb", "memory_free_gb", "reload_time", "reinitialized",
                    "fallback_reinitialized"):
            self.assertIn(key, r)
        self.assertGreaterEqual(out["at"], ended - 0.5, "reloaded while the lease held the room")
        self.assertEqual(self.resident("validation")["state"], "loaded")
        self.no_oom()

    def test_restart_during_a_lease_registers_before_it_allocates(self):
        v = self.start_validation()
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15)
        h = self.holder(delay_s=0.5, hold_s=4.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        v.kill()
        self.start_validation("validation2")
        self.assertFalse(self.models_loaded())  # waits for the room
        self.survives(h)
        wait_until(lambda: self.models_loaded(), 15, what="the models after the lease")
        self.assertEqual(self.resident("validation")["state"], "loaded")
        self.no_oom()

    def test_first_load_waits_across_a_coordinator_restart(self):
        """Started during a lease, the server's queued demand dies with a coordinator
        killed meanwhile: it asks again, and its models come once the lease ended."""
        h = self.holder(delay_s=0.5, hold_s=5.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        self.start_validation()
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        port = self.coord_port
        self.coord.signal(9)
        self.coord.p.wait(timeout=5)
        self.start_coordinator(port=port, state_dir=self.state_dir)
        self.survives(h)
        wait_until(lambda: self.models_loaded(), 15, what="the models after the lease")
        self.assertEqual(self.resident("validation")["state"], "loaded")
        self.no_oom()

    def test_reduced_when_the_coordinator_forgets_it_comes_back_to_full(self):
        """At reduced precision when a coordinator with an empty state takes over: it
        registers at that level (unloaded part-way, counted at what it holds) and asks
        for the room, and the new coordinator brings it back to full, verified."""
        self.start_validation()
        wait_until(lambda: self.models_loaded(), 15, what="the first load")
        # The server has its models a moment before the coordinator has verified them
        # (until then an unload is refused as busy, 409).
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 5,
                   what="the load verified")
        st, r = self.http.post("/v1/residents/validation/unload", {"level": "reduced"})
        self.assertEqual((st, r.get("level")), (200, "reduced"), r)
        port = self.coord_port
        self.coord.signal(9)
        self.coord.p.wait(timeout=5)
        self.start_coordinator(port=port, state_dir=self.path("state-empty"))
        wait_until(lambda: self.http.get("/v1/residents/validation")[0] == 200, 10,
                   what="registered again")
        wait_until(lambda: self.val.get("/health/")[1]["level"] == "full", 15,
                   what="back at full precision")
        # Verified by NVML at once: the reload was counted from the level it was at.
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 5)
        self.assertEqual(self.resident("validation")["level"], "full")
        ev = [e for e in self.events() if e["kind"] == "resident_reloaded"]
        self.assertIn("from 'reduced': verified by NVML", ev[-1]["detail"])
        self.no_oom()

    def test_start_without_a_coordinator_loads_standalone(self):
        self.url = "http://127.0.0.1:%d" % free_port()  # nobody there
        self.start_validation()
        wait_until(lambda: self.models_loaded(), 10)
        st, r = self.val.post("/unload_models/")
        self.assertEqual(st, 200, r)
        st, r = self.val.post("/reload_models/")
        self.assertEqual((st, r["models_reloaded"]), (200, True), r)


class PythonGrowth(GrowthCase):
    """The Python resident helper (python/examples/resident_demo.py: SeedServer +
    Resident, 4.7Gi through ctypes): the same rule as the validation server."""

    def start_demo(self, wait_s, name="pyres"):
        env = dict(self.env, PYTHONPATH=PYTHON_DIR)
        preload = os.environ.get("GPUCOORD_PY_PRELOAD")
        if preload:  # sanitizer build: Python is not instrumented, gpusim is
            env["LD_PRELOAD"] = preload
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        p = self.start([sys.executable, DEMO, "--coordinator", self.url, "--bytes", "4.7Gi",
                        "--name", "pyres", "--wait", str(wait_s)], name, ready="ready", env=env)
        self.seed = Http("http://127.0.0.1:%s" % p.field("seed_port"))
        return p

    def seed_loaded(self):
        return self.seed.get("/health/", timeout=5)[1]["models_loaded"]

    def test_direct_reload_becomes_a_demand(self):
        self.start_demo(30)
        self.assertTrue(self.seed_loaded())
        h = self.holder(delay_s=2.0, hold_s=3.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        time.sleep(1.2)
        t, out = self.in_thread(lambda: self.seed.post("/reload_models/", timeout=90))
        self.survives(h)
        ended = time.monotonic()
        t.join(60)
        st, r = out["answer"]
        self.assertEqual((st, r["models_reloaded"]), (200, True), r)
        self.assertGreaterEqual(out["at"], ended - 0.5, "reloaded while the lease held the room")
        self.no_oom()

    def test_restart_during_a_lease_registers_before_it_allocates(self):
        first = self.start_demo(30)
        self.assertTrue(self.seed_loaded())
        h = self.holder(delay_s=0.5, hold_s=4.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        first.kill()
        self.start_demo(0, name="pyres2")
        self.assertFalse(self.seed_loaded())
        self.assertEqual(self.resident("pyres")["state"], "unloaded")
        self.survives(h)
        wait_until(lambda: self.seed_loaded(), 15, what="the weights after the lease")
        self.assertEqual(self.resident("pyres")["state"], "loaded")
        self.no_oom()

    def test_first_load_waits_across_a_coordinator_restart(self):
        h = self.holder(delay_s=0.5, hold_s=5.0)
        wait_until(lambda: self.granted(), 10, what="the lease")
        self.start_demo(0)
        port = self.coord_port
        self.coord.signal(9)
        self.coord.p.wait(timeout=5)
        self.start_coordinator(port=port, state_dir=self.state_dir)
        self.survives(h)
        wait_until(lambda: self.seed_loaded(), 15, what="the weights after the lease")
        self.assertEqual(self.resident("pyres")["state"], "loaded")
        self.no_oom()


if __name__ == "__main__":
    unittest.main(verbosity=2)
