#!/usr/bin/env python3
"""POST /v1/leases/ID/resize on gpusim: a real gpucoordd and a resident that really
holds 4.7Gi; growths are served like leases (evict, verify, restore), shrinks are
immediate, a wait that runs out leaves the lease as it was."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import CTX, GEN_BYTES, GiB, MiB, VAL_BYTES, GpuEnv, wait_until  # noqa: E402


class Resize(GpuEnv):
    def lease(self, nbytes, **kw):
        body = {"holder": "prog", "bytes": nbytes, "ttl_s": 60}
        body.update(kw)
        st, lease = self.http.post("/v1/leases", body)
        self.assertEqual(st, 201, lease)
        return lease["id"]

    def resize(self, lid, nbytes, wait_s=None):
        body = {"bytes": nbytes}
        if wait_s is not None:
            body["wait_s"] = wait_s
        return self.http.post("/v1/leases/%s/resize" % lid, body)

    def test_growth_that_fits_is_immediate_and_shrink_too(self):
        self.start_coordinator()
        lid = self.lease(1 * GiB)
        t0 = time.monotonic()
        st, body = self.resize(lid, 3 * GiB)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["bytes"], 3 * GiB)
        self.assertLess(time.monotonic() - t0, 1.0)
        st, body = self.resize(lid, 512 * MiB)
        self.assertEqual((st, body["bytes"]), (200, 512 * MiB), body)
        self.assertEqual(self.http.get("/v1/leases/" + lid)[1]["bytes"], 512 * MiB)
        kinds = self.event_kinds(lid)
        self.assertEqual(kinds.count("lease_resized"), 2, kinds)
        st, status = self.http.get("/v1/status")
        self.assertEqual(status["counters"]["lease_resizes"], 2)
        st, metrics = self.http.get("/metrics")
        self.assertIn(b"gpucoord_lease_resizes_total 2", metrics)

    def test_growth_evicts_verifies_and_restores(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        rpid = int(res.field("pid"))
        lid = self.lease(CTX)
        st, body = self.resize(lid, GEN_BYTES, wait_s=20)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["bytes"], GEN_BYTES)
        self.assertEqual(body["evicted"], ["validation"])
        # Verified through NVML before the growth was granted.
        self.assertEqual(self.proc_usage(rpid), CTX)
        seq = {e["kind"]: e["seq"] for e in self.events()
               if e["kind"] in ("resident_unloaded", "lease_resized")}
        self.assertLess(seq["resident_unloaded"], seq["lease_resized"])
        # Growths never show as leases of their own once served.
        st, leases = self.http.get("/v1/leases")
        self.assertEqual([l["id"] for l in leases["leases"]], [lid])
        # Shrunk to 1Gi, the lease leaves room for the resident: it is restored.
        st, body = self.resize(lid, 1 * GiB)
        self.assertEqual(st, 200, body)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 10,
                   what="validation restored after the shrink")
        self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)

    def test_wait_running_out_answers_202_and_withdraws_the_growth(self):
        self.start_coordinator()
        # The resident outranks the lease: nothing can be evicted for it, and another
        # lease holds the rest, so the growth can only wait.
        self.start_resident("validation", "4.7Gi", "--priority", "500")
        other = self.lease(14 * GiB)
        lid = self.lease(2 * GiB)
        t0 = time.monotonic()
        st, body = self.resize(lid, 6 * GiB, wait_s=0.5)
        took = time.monotonic() - t0
        self.assertEqual(st, 202, body)
        self.assertGreaterEqual(took, 0.4)
        self.assertLess(took, 3.0)
        self.assertEqual(body["bytes"], 2 * GiB)
        self.assertEqual(body["requested_bytes"], 6 * GiB)
        self.assertIn("withdrawn", body["message"])
        st, leases = self.http.get("/v1/leases")
        self.assertEqual(sorted(l["id"] for l in leases["leases"]), sorted([other, lid]))
        # Once the room is there, the same request is granted.
        self.assertEqual(self.http.delete("/v1/leases/" + other)[0], 200)
        st, body = self.resize(lid, 6 * GiB, wait_s=5)
        self.assertEqual((st, body["bytes"]), (200, 6 * GiB), body)

    def test_growth_that_can_never_fit_is_409(self):
        self.start_coordinator()
        lid = self.lease(2 * GiB)
        st, body = self.resize(lid, 40 * GiB, wait_s=5)
        self.assertEqual(st, 409, body)
        self.assertEqual(body["error"], "never_fits")
        self.assertEqual(self.http.get("/v1/leases/" + lid)[1]["bytes"], 2 * GiB)

    def test_bad_input_is_4xx_and_changes_nothing(self):
        self.start_coordinator()
        lid = self.lease(2 * GiB)
        for body in ({"bytes": 0}, {"bytes": -5}, {"bytes": "lots"}, {}, {"bytes": 1, "x": 1},
                     {"bytes": GiB, "wait_s": -1}, {"bytes": GiB, "wait_s": 1e9}):
            st, ans = self.http.post("/v1/leases/%s/resize" % lid, body)
            self.assertEqual(st, 400, (body, ans))
            self.assertEqual(ans["error"], "bad_request")
        st, ans = self.http.post("/v1/leases/lease-999/resize", {"bytes": GiB})
        self.assertEqual(st, 404, ans)
        st, ans = self.http.get("/v1/leases/%s/resize" % lid)
        self.assertEqual(st, 405, ans)
        self.assertEqual(self.http.get("/v1/leases/" + lid)[1]["bytes"], 2 * GiB)
        self.assertEqual(self.event_kinds(lid).count("lease_resized"), 0)

    def test_new_size_is_journaled(self):
        self.start_coordinator()
        holder = self.start_holder("1Mi", name="prog")
        st, lease = self.http.post("/v1/leases", {"holder": "prog", "bytes": GiB,
                                                  "pid": holder.pid})
        self.assertEqual(st, 201, lease)
        st, body = self.resize(lease["id"], 5 * GiB)
        self.assertEqual(st, 200, body)
        self.coord.signal(signal.SIGKILL)
        self.coord.p.wait(5)
        self.start_coordinator(state_dir=self.state_dir, port=self.coord_port)
        st, again = self.http.get("/v1/leases/" + lease["id"])
        self.assertEqual(st, 200, again)
        self.assertEqual((again["state"], again["bytes"]), ("granted", 5 * GiB))


if __name__ == "__main__":
    unittest.main(verbosity=2)
