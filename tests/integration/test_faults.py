#!/usr/bin/env python3
"""Fault injection: residents that fail, crash, lie or dawdle, and the escalation
ladder. Each case ends in a known state with nothing lost and no OOM."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import BUILD, CTX, GEN_BYTES, MiB, VAL_BYTES, GpuEnv, Http, wait_until  # noqa: E402


class Faults(GpuEnv):
    def setUp(self):
        super().setUp()
        self.start_coordinator()

    def lease(self, wait_s=15, **kw):
        body = dict({"holder": "gen", "bytes": GEN_BYTES, "ttl_s": 30, "wait_s": wait_s}, **kw)
        return self.http.post("/v1/leases", body)

    def no_oom(self):
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    def metric(self, name):
        st, text = self.http.get("/metrics")
        for line in text.decode().splitlines():
            if line.startswith("gpucoord_" + name + " "):
                return float(line.split()[1])
        raise AssertionError("no metric " + name)

    def test_unload_answers_500(self):
        res = self.start_resident("validation", "4.7Gi", "--unload-mode", "error")
        st, body = self.lease()
        self.assertEqual((st, body["error"]), (503, "could_not_free"))
        self.assertIn("HTTP 500", body["message"])
        self.assertIn("simulated unload failure", body["message"])
        r = self.resident("validation")
        self.assertEqual(r["state"], "loaded")
        self.assertEqual(self.proc_usage(int(res.field("pid"))), CTX + VAL_BYTES)
        self.assertIn("unload_failed", self.event_kinds("validation"))
        self.assertEqual(self.metric("unload_failures_total"), 1)
        self.no_oom()

    def test_resident_crashes_mid_unload(self):
        res = self.start_resident("validation", "4.7Gi", "--unload-mode", "crash")
        st, lease = self.lease()
        # Its death freed the memory: the lease is granted, the resident is gone.
        self.assertEqual(st, 201, lease)
        r = self.resident("validation")
        self.assertEqual(r["state"], "gone")
        self.assertFalse(res.alive())
        self.start_holder("19.6Gi", name="generation").stop()
        self.no_oom()

    def test_resident_crashes_mid_reload(self):
        res = self.start_resident("validation", "4.7Gi", "--reload-mode", "crash")
        st, lease = self.lease()
        self.assertEqual(st, 201, lease)
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("validation")["state"] == "gone", 10)
        self.assertFalse(res.alive())
        self.assertIn("resident_gone", self.event_kinds("validation"))
        # A gone resident is not demanded back: it must restart and register again.
        st, body = self.http.post("/v1/residents/validation/demand", {"wait_s": 1})
        self.assertEqual(st, 503)
        self.no_oom()

    def test_resident_dies_right_after_answering_its_reload(self):
        res = self.start_resident("validation", "4.7Gi", "--reload-mode", "die",
                                  "--verify-timeout", "1")
        st, lease = self.lease()
        self.assertEqual(st, 201, lease)
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("validation")["state"] == "gone", 10)
        self.assertFalse(res.alive())
        self.assertIn("exited during its reload", self.resident("validation")["reason"])

    def test_reload_fails_twice_then_succeeds(self):
        res = self.start_resident("validation", "4.7Gi", "--reload-failures", "2")
        st, lease = self.lease()
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15)
        self.assertEqual(self.proc_usage(int(res.field("pid"))), CTX + VAL_BYTES)
        kinds = self.event_kinds("validation")
        self.assertEqual(kinds.count("reload_failed"), 2)
        self.assertEqual(self.metric("reload_failures_total"), 2)
        self.assertEqual(self.metric("reloads_total"), 1)

    def test_reload_keeps_failing_marks_failed_with_reason(self):
        self.start_resident("validation", "4.7Gi", "--reload-mode", "error")
        st, lease = self.lease()
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("validation")["state"] == "failed", 15)
        r = self.resident("validation")
        self.assertIn("failed to reload 3 times", r["reason"])
        self.assertIn("simulated reload failure", r["reason"])
        self.assertIn("resident_failed", self.event_kinds("validation"))
        self.assertEqual(self.metric("reload_failures_total"), 3)
        # A failed resident can be retried by hand.
        st, body = self.http.post("/v1/residents/validation/reload")
        self.assertEqual(st, 503)

    def test_on_stuck_kill_escalation(self):
        res = self.start_resident("validation", "4.7Gi", "--unload-mode", "lie",
                                  "--on-stuck", "kill", "--verify-timeout", "0.5")
        t0 = time.monotonic()
        st, lease = self.lease()
        self.assertEqual(st, 201, lease)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertFalse(res.alive())
        r = self.resident("validation")
        self.assertEqual(r["state"], "gone")
        self.assertIn("killed", r["reason"])
        kinds = self.event_kinds("validation")
        for k in ("cleanup_requested", "verify_timeout", "escalation_kill"):
            self.assertIn(k, kinds)
        self.start_holder("19.6Gi", name="generation").stop()
        self.no_oom()

    def test_on_stuck_fail_keeps_a_resident_that_kept_its_memory_loaded(self):
        # 12Gi that never leave: the lease fails, and the resident is loaded again at
        # once although the card has no 12Gi free - its memory never left.
        res = self.start_resident("validation", "12Gi", "--unload-mode", "lie",
                                  "--verify-timeout", "0.5")
        rpid = int(res.field("pid"))
        st, body = self.lease(bytes="14Gi")
        self.assertEqual((st, body["error"]), (503, "could_not_free"), body)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 5,
                   what="resident loaded again")
        self.assertEqual(self.proc_usage(rpid), CTX + 12 * (1 << 30))
        self.assertNotIn("reload_waiting", self.event_kinds("validation"))
        self.no_oom()

    def test_cleanup_request_rescues_a_lazy_resident(self):
        res = self.start_resident("validation", "4.7Gi", "--unload-mode", "lie",
                                  "--cleanup-frees", "--verify-timeout", "0.5")
        st, lease = self.lease()
        self.assertEqual(st, 201, lease)
        self.assertEqual(self.proc_usage(int(res.field("pid"))), CTX)
        self.assertIn("cleanup_requested", self.event_kinds("validation"))
        self.assertEqual(self.resident("validation")["state"], "unloaded")

    def test_sigkilled_holder_resident_restored(self):
        self.start_resident("validation", "4.7Gi")
        hold = self.start(["sleep", "60"], "holder")
        st, lease = self.lease(pid=hold.pid)
        self.assertEqual(st, 201)
        hold.signal(signal.SIGKILL)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 10)

    def test_http_protocol_resident(self):
        res = self.start_resident("svc", "2Gi", register=False)
        port = res.field("port")
        st, body = self.http.post("/v1/residents", {
            "name": "svc", "protocol": "http", "url": "http://127.0.0.1:" + port,
            "pid": int(res.field("pid")), "bytes": "2Gi",
            "unload": "POST /unload_models/", "reload": "POST /reload_models/",
            "health": "GET /health/"})
        self.assertEqual(st, 201, body)
        st, lease = self.http.post("/v1/leases", {"holder": "x", "bytes": 22 << 30,
                                                  "ttl_s": 30, "wait_s": 10})
        self.assertEqual(st, 201, lease)
        self.assertEqual(lease["evicted"], ["svc"])
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("svc")["state"] == "loaded", 10)

    def test_process_protocol_resident(self):
        """No API at all: unload stops the process, reload runs its command again."""
        hold = os.path.join(BUILD, "src", "tools", "gpu-hold")
        cmd = "exec %s --bytes 3Gi" % hold
        st, body = self.http.post("/v1/residents", {
            "name": "llm", "protocol": "process", "command": cmd, "bytes": "3Gi",
            "kill_grace_s": 2})
        self.assertEqual(st, 201, body)
        self.assertEqual(body["state"], "unloaded")  # not started yet
        self.assertIsNone(body["unloaded_for_s"])  # never unloaded: not seconds since boot
        st, r = self.http.post("/v1/residents/llm/reload")
        self.assertEqual(st, 200, r)
        pid1 = r["pid"]
        wait_until(lambda: self.proc_usage(pid1) >= 3 << 30, 5)
        st, lease = self.http.post("/v1/leases", {"holder": "x", "bytes": 22 << 30,
                                                  "ttl_s": 30, "wait_s": 10})
        self.assertEqual(st, 201, lease)
        self.assertEqual(lease["evicted"], ["llm"])
        self.assertEqual(self.proc_usage(pid1), 0)
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("llm")["state"] == "loaded", 10)
        pid2 = self.resident("llm")["pid"]
        self.assertNotEqual(pid1, pid2)
        wait_until(lambda: self.proc_usage(pid2) >= 3 << 30, 5)
        os.kill(pid2, signal.SIGKILL)  # clean up the detached process

    def test_process_resident_that_exits_is_unloaded_since_then(self):
        hold = self.start_holder("1Gi", "--seconds", "30")
        st, body = self.http.post("/v1/residents", {
            "name": "llm", "protocol": "process", "pid": hold.pid,
            "command": "exec %s --bytes 1Gi" % os.path.join(BUILD, "src", "tools", "gpu-hold"),
            "bytes": "1Gi", "restore": "never"})
        self.assertEqual((st, body["state"]), (201, "loaded"), body)
        hold.kill()
        wait_until(lambda: self.resident("llm")["state"] == "unloaded", 5)
        self.assertIsNotNone(self.resident("llm")["unloaded_for_s"])
        self.assertLess(self.resident("llm")["unloaded_for_s"], 5)

    def test_manual_unload_reload_and_demand(self):
        res = self.start_resident("validation", "4.7Gi", "--restore", "demand")
        rpid = int(res.field("pid"))
        st, r = self.http.post("/v1/residents/validation/unload")
        self.assertEqual((st, r["state"]), (200, "unloaded"))
        self.assertEqual(self.proc_usage(rpid), CTX)
        st, body = self.http.post("/v1/residents/validation/unload")
        self.assertEqual(st, 409)
        st, r = self.http.post("/v1/residents/validation/demand", {"wait_s": 10})
        self.assertEqual((st, r["state"]), (200, "loaded"), r)
        self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)
        st, r = self.http.post("/v1/residents/validation/unload")
        st, r = self.http.post("/v1/residents/validation/reload")
        self.assertEqual((st, r["state"]), (200, "loaded"))

    def test_demand_reloads_a_resident_that_unloaded_after_the_coordinator_gave_up(self):
        # The unload answers after its timeout: the lease fails and the resident stays
        # marked loaded, but it does unload. A demand asks it and reloads it.
        res = self.start_resident("validation", "4.7Gi", "--unload-delay-ms", "2000",
                                  "--unload-timeout", "0.5")
        rpid = int(res.field("pid"))
        st, body = self.lease(wait_s=10)
        self.assertEqual(st, 503, body)
        direct = Http("http://127.0.0.1:%s" % res.field("port"))
        wait_until(lambda: direct.get("/health/")[1]["models_loaded"] is False, 5)
        self.assertEqual(self.resident("validation")["state"], "loaded")
        st, r = self.http.post("/v1/residents/validation/demand", {"wait_s": 10})
        self.assertEqual((st, r["state"]), (200, "loaded"), r)
        self.assertIs(direct.get("/health/")[1]["models_loaded"], True)
        self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)
        self.assertIn("resident_probed", [e["kind"] for e in self.events()])

    def test_demand_of_a_loaded_resident_does_not_reload_it(self):
        self.start_resident("validation", "4.7Gi")
        st, r = self.http.post("/v1/residents/validation/demand", {"wait_s": 5})
        self.assertEqual((st, r["state"], r["reloads"]), (200, "loaded", 0), r)

    def test_demand_waits_for_a_granted_lease(self):
        self.start_resident("validation", "4.7Gi")
        st, lease = self.lease()
        self.assertEqual(st, 201)
        t0 = time.monotonic()
        st, r = self.http.post("/v1/residents/validation/demand", {"wait_s": 0.5})
        self.assertEqual(st, 202)  # the lease is never preempted
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.http.delete("/v1/leases/" + lease["id"])
        st, r = self.http.post("/v1/residents/validation/demand", {"wait_s": 10})
        self.assertEqual((st, r["state"]), (200, "loaded"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
