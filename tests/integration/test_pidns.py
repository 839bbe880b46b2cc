#!/usr/bin/env python3
"""Coordination inside a container without the host's PID namespace, on gpusim: NVML
lists host pids that do not exist here (GPUSIM_PIDS=foreign), or our pids without
their usage (unavailable, zero). The coordinator must switch the GPU to device-level
attribution, still evict for a lease, grant only once the device shows the room, and
restore what it evicted."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import GEN_BYTES, GpuEnv, wait_until  # noqa: E402

# The driver lag the coordinator allows for (free_lag_s): short, so that a failed
# verification ends within the tests' waits.
CONFIG = "[coordinator]\nfree_lag_s = 1\n"


class DeviceAttribution:
    """The tests, for each way the process list can be unattributable (a mixin)."""

    pids = None

    def setUp(self):
        self.extra_env = dict(self.extra_env, GPUSIM_PIDS=self.pids)
        super().setUp()

    def wait_device_mode(self):
        wait_until(lambda: self.gpu()["attribution"] == "device", 10,
                   what="device attribution")

    def oom_count(self):
        return self.sim_status()["devices"][0]["oom_count"]

    def test_lease_evicts_verified_by_device_memory_then_restores(self):
        self.start_coordinator(config=CONFIG)
        # Nothing of ours on the list yet: the mode is decided once processes show.
        self.start_resident("validation", "4.7Gi")
        self.wait_device_mode()
        gpu = self.gpu()
        self.assertTrue(gpu["attribution_reason"], gpu)
        changes = [e for e in self.events() if e["kind"] == "attribution_changed"]
        self.assertEqual(changes[-1]["subject"], "gpu0")
        self.assertIn("device attribution", changes[-1]["detail"])
        st, status = self.http.get("/v1/status")
        self.assertEqual(status["gpus"][0]["attribution"], "device")

        st, lease = self.http.post("/v1/leases", {"holder": "generation", "bytes": GEN_BYTES,
                                                  "ttl_s": 30, "wait_s": 20})
        self.assertEqual(st, 201, lease)
        self.assertEqual(lease["evicted"], ["validation"])
        # Granted only once the device showed the room (and after the verified unload).
        gpu = self.gpu()
        self.assertGreaterEqual(gpu["free_bytes"], GEN_BYTES + gpu["reserve_bytes"])
        seq = {e["kind"]: e["seq"] for e in self.events()
               if e["kind"] in ("resident_unloaded", "lease_granted")}
        self.assertLess(seq["resident_unloaded"], seq["lease_granted"])
        self.assertEqual(self.resident("validation")["state"], "unloaded")

        hold = self.start_holder("19.6Gi", name="generation")
        self.assertTrue(hold.alive())
        self.assertEqual(self.oom_count(), 0)
        time.sleep(0.3)
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        hold.stop()
        st, rel = self.http.delete("/v1/leases/" + lease["id"])
        self.assertEqual(st, 200, rel)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15,
                   what="validation reloaded")
        reloaded = [e for e in self.events() if e["kind"] == "resident_reloaded"]
        self.assertTrue(reloaded[-1]["detail"].endswith(": verified by NVML")
                        or reloaded[-1]["detail"] == "verified by NVML", reloaded[-1])
        r = self.resident("validation")
        self.assertEqual((r["unloads"], r["reloads"]), (1, 1))
        self.assertEqual(self.oom_count(), 0)
        self.assertEqual(self.gpu()["attribution"], "device")

    def test_a_resident_that_frees_nothing_is_not_taken_at_its_word(self):
        # No per-process usage to see: "nothing seen" must not pass for "freed".
        self.start_coordinator(config=CONFIG)
        self.start_resident("validation", "4.7Gi", "--unload-mode", "lie",
                            "--verify-timeout", "0.5")
        self.wait_device_mode()
        st, body = self.http.post("/v1/leases", {"holder": "gen", "bytes": GEN_BYTES,
                                                 "ttl_s": 30, "wait_s": 20})
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"], "could_not_free")
        self.assertIn("said it unloaded", body["message"])
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15)
        self.assertEqual(self.oom_count(), 0)


class ForeignPids(DeviceAttribution, GpuEnv):
    pids = "foreign"


class UnavailableUsage(DeviceAttribution, GpuEnv):
    pids = "unavailable"


class ZeroUsage(DeviceAttribution, GpuEnv):
    pids = "zero"


class ForeignPidsWithDriverLag(GpuEnv):
    extra_env = {"GPUSIM_PIDS": "foreign", "GPUSIM_FREE_LAG_MS": "700"}

    def test_grant_waits_for_the_device_to_show_the_room(self):
        self.start_coordinator(config="[coordinator]\nfree_lag_s = 3\n")
        self.start_resident("validation", "4.7Gi")
        wait_until(lambda: self.gpu()["attribution"] == "device", 10)
        t0 = time.monotonic()
        st, lease = self.http.post("/v1/leases", {"holder": "gen", "bytes": GEN_BYTES,
                                                  "ttl_s": 30, "wait_s": 15})
        self.assertEqual(st, 201, lease)
        self.assertGreater(time.monotonic() - t0, 0.65)
        hold = self.start_holder("19.6Gi", name="generation")
        self.assertTrue(hold.alive())
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)
        hold.stop()
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15)
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
