#!/usr/bin/env python3
"""Coordination end to end on gpusim: a real gpucoordd, a resident that really holds
4.7Gi through the driver API, holders that really allocate."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import (BUILD, CARD, CTX, GEN_BYTES, GiB, MiB, VAL_BYTES, GpuEnv,  # noqa: E402
                    wait_until)


class FoundingSwap(GpuEnv):
    def test_resident_unloaded_verified_then_restored(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        rpid = int(res.field("pid"))
        self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)
        self.assertEqual(self.resident("validation")["state"], "loaded")

        st, lease = self.http.post("/v1/leases", {"holder": "generation", "bytes": GEN_BYTES,
                                                  "ttl_s": 30, "wait_s": 20})
        self.assertEqual(st, 201, lease)
        self.assertEqual(lease["state"], "granted")
        self.assertEqual(lease["evicted"], ["validation"])
        # NVML shows the resident's memory gone at the grant (only its context is left) ...
        self.assertEqual(self.proc_usage(rpid), CTX)
        # ... and the unload was verified before the grant.
        events = self.events()
        seq = {e["kind"]: e["seq"] for e in events if e["kind"] in
               ("resident_unloaded", "lease_granted")}
        self.assertLess(seq["resident_unloaded"], seq["lease_granted"])
        self.assertEqual(self.resident("validation")["state"], "unloaded")

        # The holder allocates its 19.6Gi without OOM.
        hold = self.start_holder("19.6Gi", name="generation")
        self.assertTrue(hold.alive())
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)
        # While the lease is held the resident stays unloaded.
        time.sleep(0.3)
        self.assertEqual(self.resident("validation")["state"], "unloaded")

        hold.stop()
        st, rel = self.http.delete("/v1/leases/" + lease["id"])
        self.assertEqual(st, 200, rel)
        self.assertEqual(rel["state"], "released")
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 10,
                   what="validation reloaded")
        self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)
        r = self.resident("validation")
        self.assertEqual((r["unloads"], r["reloads"]), (1, 1))
        st, status = self.http.get("/v1/status")
        self.assertEqual(status["counters"]["swaps"], 1)
        self.assertEqual(status["counters"]["oom_avoided"], 1)
        # One table gives /v1/status's counters and /metrics: every counter is in both,
        # with the same value (those that once were missing from the status included).
        counters = status["counters"]
        for name in ("cleanups", "journal_errors", "nvml_errors", "journal_compactions"):
            self.assertIn(name, counters)
        st, text = self.http.call("GET", "/metrics", raw=None)
        metrics = {}
        for line in (text if isinstance(text, str) else text.decode()).splitlines():
            if line.startswith("gpucoord_") and line.split(" ")[0].endswith("_total"):
                metrics[line.split(" ")[0][len("gpucoord_"):-len("_total")]] = int(
                    float(line.split(" ")[1]))
        for name, value in counters.items():
            if name != "nvml_readings":  # it moves between the two reads
                self.assertEqual(metrics.get(name), value, name)


class FailFast(GpuEnv):
    def test_never_fits_is_409_at_once(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi", "--priority", "500")
        t0 = time.monotonic()
        st, body = self.http.post("/v1/leases", {"holder": "big", "bytes": 20 * GiB, "ttl_s": 5,
                                                 "wait_s": 30})
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(st, 409, body)
        self.assertEqual(body["error"], "never_fits")
        self.assertIn("20Gi needed", body["message"])
        # Nothing was evicted.
        self.assertEqual(self.resident("validation")["state"], "loaded")

    def test_larger_than_card(self):
        self.start_coordinator()
        st, body = self.http.post("/v1/leases", {"holder": "x", "bytes": 30 * GiB, "ttl_s": 5})
        self.assertEqual((st, body["error"]), (409, "never_fits"))


class Queueing(GpuEnv):
    def test_fifo_with_backfill(self):
        self.start_coordinator()
        lease = lambda b, **kw: self.http.post("/v1/leases", dict(
            {"holder": "h", "bytes": b, "ttl_s": 30}, **kw))
        st, a = lease(10 * GiB)
        self.assertEqual(st, 201)
        st, b = lease(20 * GiB)
        self.assertEqual((st, b["state"], b["position"]), (202, "queued", 0))
        st, c = lease(1 * GiB)
        self.assertEqual((st, c["state"]), (201, "granted"))  # backfilled
        st, d = lease(18 * GiB)
        self.assertEqual((st, d["position"]), (202, 1))

        self.http.delete("/v1/leases/" + a["id"])
        st, b2 = self.http.get("/v1/leases/%s?wait_s=5" % b["id"])
        self.assertEqual(b2["state"], "granted")
        st, d2 = self.http.get("/v1/leases/" + d["id"])
        self.assertEqual(d2["state"], "queued")
        self.assertEqual(d2["position"], 0)

    def test_queued_wait_ends_with_202_and_lease_stays_queued(self):
        self.start_coordinator()
        st, a = self.http.post("/v1/leases", {"holder": "a", "bytes": 20 * GiB, "ttl_s": 30})
        t0 = time.monotonic()
        st, b = self.http.post("/v1/leases", {"holder": "b", "bytes": 20 * GiB, "ttl_s": 30,
                                              "wait_s": 0.5})
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertEqual((st, b["state"]), (202, "queued"))
        st, leases = self.http.get("/v1/leases")
        self.assertEqual(len(leases["leases"]), 2)


class Liveness(GpuEnv):
    def test_sigkilled_holder_loses_lease_within_1s(self):
        self.start_coordinator()
        holder = self.start(["sleep", "60"], "sleeper")
        st, lease = self.http.post("/v1/leases", {"holder": "sleeper", "bytes": 8 * GiB,
                                                  "pid": holder.pid, "ttl_s": 60})
        self.assertEqual(st, 201, lease)
        holder.signal(signal.SIGKILL)
        t0 = time.monotonic()
        # The zombie is not reaped on purpose: the kernel reports the exit anyway.
        wait_until(lambda: self.http.get("/v1/leases/" + lease["id"])[1]["state"] == "expired",
                   1.0, what="lease expired after SIGKILL")
        self.assertLess(time.monotonic() - t0, 1.0)
        _, l2 = self.http.get("/v1/leases/" + lease["id"])
        self.assertIn("exited", l2["reason"])

    def test_ttl_without_heartbeat(self):
        self.start_coordinator()
        st, a = self.http.post("/v1/leases", {"holder": "a", "bytes": GiB, "ttl_s": 0.6})
        st, b = self.http.post("/v1/leases", {"holder": "b", "bytes": GiB, "ttl_s": 0.6})
        for _ in range(6):  # b heartbeats, a does not
            time.sleep(0.2)
            self.assertEqual(self.http.post("/v1/leases/%s/heartbeat" % b["id"])[0], 200)
        self.assertEqual(self.http.get("/v1/leases/" + a["id"])[1]["state"], "expired")
        self.assertEqual(self.http.get("/v1/leases/" + b["id"])[1]["state"], "granted")
        st, hb = self.http.post("/v1/leases/%s/heartbeat" % a["id"])
        self.assertEqual(st, 404)
        self.assertIn("ended", hb["message"])

    def test_a_waiter_that_disconnects_stops_keeping_its_lease_alive(self):
        # b waits (wait_s 30, ttl_s 1) behind a; its client vanishes. The wait must not
        # go on heartbeating for nobody: b expires about a second later.
        self.start_coordinator()
        st, a = self.http.post("/v1/leases", {"holder": "a", "bytes": 20 * GiB, "ttl_s": 60})
        self.assertEqual(st, 201)
        body = json.dumps({"holder": "b", "bytes": 10 * GiB, "ttl_s": 1, "wait_s": 30}).encode()
        s = socket.create_connection(("127.0.0.1", self.coord_port))
        s.sendall(b"POST /v1/leases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        wait_until(lambda: any(l["holder"] == "b" for l in self.http.get("/v1/leases")[1]["leases"]),
                   5)
        s.close()
        wait_until(lambda: [l["holder"] for l in self.http.get("/v1/leases")[1]["leases"]] == ["a"],
                   6, what="b expired after its client left")
        self.assertEqual(self.http.get("/v1/leases/" + a["id"])[1]["state"], "granted")

    def test_release_is_idempotent_and_reports_state(self):
        self.start_coordinator()
        st, a = self.http.post("/v1/leases", {"holder": "a", "bytes": GiB, "ttl_s": 5})
        st, r1 = self.http.delete("/v1/leases/" + a["id"])
        st2, r2 = self.http.delete("/v1/leases/" + a["id"])
        self.assertEqual((st, st2), (200, 200))
        self.assertEqual(r2["state"], "released")
        self.assertEqual(self.http.delete("/v1/leases/lease-999999")[0], 404)


class MisbehavingResidents(GpuEnv):
    def test_hanging_unload_fails_lease_503_and_resident_stays_loaded(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi", "--unload-mode", "hang",
                                  "--unload-timeout", "1")
        t0 = time.monotonic()
        st, body = self.http.post("/v1/leases", {"holder": "gen", "bytes": GEN_BYTES,
                                                 "ttl_s": 30, "wait_s": 15})
        took = time.monotonic() - t0
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"], "could_not_free")
        self.assertIn("no answer within 1.0 s", body["message"])
        self.assertGreater(took, 0.9)
        self.assertLess(took, 5)
        self.assertEqual(self.resident("validation")["state"], "loaded")
        self.assertEqual(self.proc_usage(int(res.field("pid"))), CTX + VAL_BYTES)

    def test_success_without_freeing_is_caught_by_verification(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi", "--unload-mode", "lie",
                                  "--verify-timeout", "0.6")
        st, body = self.http.post("/v1/leases", {"holder": "gen", "bytes": GEN_BYTES,
                                                 "ttl_s": 30, "wait_s": 15})
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"], "could_not_free")
        self.assertIn("said it unloaded", body["message"])
        kinds = self.event_kinds("validation")
        self.assertIn("cleanup_requested", kinds)
        self.assertIn("verify_timeout", kinds)
        # The lease never got the memory; the resident is restored (asked to reload).
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 10)
        self.assertEqual(self.proc_usage(int(res.field("pid"))), CTX + VAL_BYTES)
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    def test_slow_free_is_waited_for(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi", "--unload-mode", "slow",
                                  "--free-delay-ms", "800", "--verify-timeout", "5")
        t0 = time.monotonic()
        st, lease = self.http.post("/v1/leases", {"holder": "gen", "bytes": GEN_BYTES,
                                                  "ttl_s": 30, "wait_s": 15})
        self.assertEqual(st, 201, lease)
        self.assertGreater(time.monotonic() - t0, 0.75)
        self.assertEqual(self.proc_usage(int(res.field("pid"))), CTX)
        self.start_holder("19.6Gi", name="generation")  # no OOM


class LateDriverRelease(GpuEnv):
    extra_env = {"GPUSIM_FREE_LAG_MS": "700"}

    def test_grant_waits_for_driver_to_give_memory_back(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        t0 = time.monotonic()
        st, lease = self.http.post("/v1/leases", {"holder": "gen", "bytes": GEN_BYTES,
                                                  "ttl_s": 30, "wait_s": 15})
        self.assertEqual(st, 201, lease)
        self.assertGreater(time.monotonic() - t0, 0.65)
        # The holder's first allocation after the grant must not fail.
        hold = self.start_holder("19.6Gi", name="generation")
        self.assertTrue(hold.alive())
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)
        hold.stop()
        self.http.delete("/v1/leases/" + lease["id"])
        # The reload also waits for the holder's memory to come back: never an OOM.
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 10)
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    def test_room_freed_for_a_lease_is_not_taken_by_a_later_one(self):
        # While the driver still shows the evicted memory as used, a small lease
        # arriving must not take the room the big one evicted for.
        self.env["GPUSIM_FREE_LAG_MS"] = "2000"
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        out = {}
        t = threading.Thread(target=lambda: out.update(big=self.http.post(
            "/v1/leases", {"holder": "gen", "bytes": GEN_BYTES, "ttl_s": 30, "wait_s": 15},
            timeout=30)))
        t.start()
        wait_until(lambda: self.resident("validation")["state"] == "unloaded", 10)
        st, small = self.http.post("/v1/leases", {"holder": "small", "bytes": 4 << 30,
                                                  "ttl_s": 30})
        self.assertEqual((st, small["state"]), (202, "queued"), small)
        t.join()
        st, big = out["big"]
        self.assertEqual((st, big["state"]), (201, "granted"), big)


class PollingRate(GpuEnv):
    """NVML is read at the verify rate while a lease waits for the driver to give back
    what was evicted for it, and not while nothing waits."""
    extra_env = {"GPUSIM_FREE_LAG_MS": "3000"}

    def readings(self):
        st, text = self.http.get("/metrics")
        self.assertEqual(st, 200)
        for line in text.decode().splitlines():
            if line.startswith("gpucoord_nvml_readings_total "):
                return int(line.split()[1])
        self.fail("no gpucoord_nvml_readings_total in /metrics")

    def test_a_lease_waiting_for_lagging_memory_is_looked_at_often(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        before = self.readings()
        time.sleep(1.0)
        idle = self.readings() - before
        st, lease = self.http.post("/v1/leases", {"holder": "gen", "bytes": GEN_BYTES,
                                                  "ttl_s": 30, "wait_s": 0})
        self.assertEqual((st, lease["state"]), (202, "preparing"), lease)
        wait_until(lambda: self.resident("validation")["state"] == "unloaded", 10)
        before = self.readings()
        time.sleep(1.0)
        waiting = self.readings() - before
        st, now = self.http.get("/v1/leases/" + lease["id"])
        self.assertEqual(now["state"], "preparing", now)  # the driver still lags
        # Idle: only the /metrics requests themselves read. Waiting: every verify_poll_s
        # (50 ms: about 20 a second; idle_poll_s would give 2).
        self.assertLessEqual(idle, 2)
        self.assertGreaterEqual(waiting, 8)
        st, now = self.http.get("/v1/leases/%s?wait_s=10" % lease["id"])
        self.assertEqual(now["state"], "granted", now)


class Attribution(GpuEnv):
    def test_a_command_run_under_a_lease_counts_once(self):
        """The lease is held by `gpucoord run`; the memory is its child's. NVML shows the
        child: it must count for the lease, not as a foreign process on top of it."""
        self.start_coordinator()
        cli = os.path.join(BUILD, "gpucoord")
        hold = os.path.join(BUILD, "src", "tools", "gpu-hold")
        p = self.start([cli, "--url", self.url, "run", "--need", "3Gi", "--", hold,
                        "--bytes", "3Gi", "--seconds", "20"], "run", ready="ready")
        g = self.gpu()
        self.assertEqual(g["used_bytes"], 3 * GiB + CTX)
        self.assertEqual(g["committed_bytes"], 3 * GiB + CTX)  # not 6Gi + context
        owners = [q["owner"] for q in g["processes"]]
        self.assertEqual(owners, ["gpu-hold"])
        p.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
