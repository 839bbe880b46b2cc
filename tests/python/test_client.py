#!/usr/bin/env python3
"""gpucoord.Client and Lease against a real gpucoordd on gpusim, with a fake resident
that really holds 4.7Gi. Run by meson with PYTHONPATH at the source python/ dir."""
import os
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from gctest import CARD, CTX, GEN_BYTES, GiB, VAL_BYTES, GpuEnv, free_port, wait_until  # noqa: E402

import gpucoord  # noqa: E402
import gpucoord.client  # noqa: E402
from gpucoord import (BadRequest, Client, CoordinatorUnavailable, CouldNotFree,  # noqa: E402
                      GpucoordError, LeaseLost, LeaseTimeout, NeverFits, NotFound, Unauthorized)

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(gpucoord.__file__)))


class ShortSlices:
    """Makes the client chain its server-side waits in 0.3 s slices, so that tests go
    through the GET ?wait_s= loop, not only through the first POST."""

    def setUp(self):
        super().setUp()
        self._slice = gpucoord.client.WAIT_SLICE_S
        gpucoord.client.WAIT_SLICE_S = 0.3

    def tearDown(self):
        gpucoord.client.WAIT_SLICE_S = self._slice
        super().tearDown()


class LeaseContext(GpuEnv):
    def lease_view(self, lease_id):
        st, body = self.http.get("/v1/leases/" + lease_id)
        self.assertEqual(st, 200, body)
        return body

    def active_ids(self):
        return [l["id"] for l in self.http.get("/v1/leases")[1]["leases"]]

    def test_grant_evicts_resident_and_releases_on_exit(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        rpid = int(res.field("pid"))
        client = Client(self.url)
        self.assertEqual(client.health(), {"status": "ok"})
        with client.lease("19.6Gi", holder="generation", wait_s=20) as lease:
            self.assertEqual(lease.evicted, ["validation"])
            self.assertEqual(lease.bytes, GEN_BYTES)
            self.assertEqual(lease.gpu, 0)
            self.assertGreaterEqual(lease.waited_s, 0)
            self.assertEqual(lease.state, "granted")
            self.assertFalse(lease.lost)
            view = self.lease_view(lease.id)
            self.assertEqual((view["state"], view["holder"], view["pid"]),
                             ("granted", "generation", os.getpid()))
            self.assertIn(lease.id, [l["id"] for l in client.leases()])
            # The resident's memory is really gone (verified by NVML before the grant).
            self.assertEqual(self.proc_usage(rpid), CTX)
            self.assertEqual(client.resident("validation")["state"], "unloaded")
            held_id = lease.id
        self.assertTrue(lease.released)
        view = self.lease_view(held_id)
        self.assertEqual(view["state"], "released")
        self.assertNotIn(held_id, self.active_ids())
        self.assertIsNone(lease.release())  # idempotent
        wait_until(lambda: client.resident("validation")["state"] == "loaded", 10,
                   what="validation restored")
        kinds = [e["kind"] for e in client.events()]
        self.assertIn("lease_granted", kinds)
        self.assertIn("lease_released", kinds)
        self.assertEqual(client.status()["counters"]["swaps"], 1)

    def test_released_when_the_block_raises(self):
        self.start_coordinator()
        client = Client(self.url)
        with self.assertRaises(RuntimeError):
            with client.lease(8 * GiB, holder="flux") as lease:
                self.assertEqual(self.lease_view(lease.id)["state"], "granted")
                raise RuntimeError("CUDA out of memory, pretend")
        self.assertEqual(self.lease_view(lease.id)["state"], "released")
        self.assertEqual(self.active_ids(), [])
        self.assertEqual(self.gpu()["committed_bytes"], 0)

    def test_never_fits_raises_with_the_arithmetic(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi", "--priority", "500")
        client = Client(self.url)
        t0 = time.monotonic()
        with self.assertRaises(NeverFits) as cm:
            client.lease("20Gi", holder="big", wait_s=30)
        self.assertLess(time.monotonic() - t0, 2.0)
        e = cm.exception
        self.assertEqual((e.code, e.status), ("never_fits", 409))
        self.assertIn("20Gi needed", str(e))
        self.assertIn("can give at most", str(e))
        self.assertEqual(self.active_ids(), [])
        self.assertEqual(client.resident("validation")["state"], "loaded")

    def test_could_not_free(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi", "--unload-mode", "hang",
                            "--unload-timeout", "0.5")
        with self.assertRaises(CouldNotFree) as cm:
            Client(self.url).lease("19.6Gi", holder="gen", wait_s=15)
        self.assertEqual((cm.exception.code, cm.exception.status), ("could_not_free", 503))
        self.assertIn("no answer within", str(cm.exception))
        self.assertEqual(self.active_ids(), [])

    def test_bad_request_and_not_found(self):
        self.start_coordinator()
        client = Client(self.url)
        with self.assertRaises(BadRequest) as cm:
            client.lease("1Gi", holder="has space")
        self.assertEqual((cm.exception.code, cm.exception.status), ("bad_request", 400))
        self.assertIn("holder", str(cm.exception))
        with self.assertRaises(NotFound) as cm:
            client.resident("nobody")
        self.assertEqual((cm.exception.code, cm.exception.status), ("not_found", 404))
        with self.assertRaises(ValueError):
            client.lease("lots")
        self.assertIsInstance(cm.exception, GpucoordError)


class Resize(GpuEnv):
    def test_lease_grows_by_eviction_shrinks_and_times_out(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        client = Client(self.url)
        with client.lease("1Gi", holder="prog", wait_s=5) as lease:
            self.assertEqual(lease.resize("19.6Gi", wait_s=20), GEN_BYTES)
            self.assertEqual(lease.bytes, GEN_BYTES)
            self.assertEqual(client.resident("validation")["state"], "unloaded")
            self.assertEqual(lease.resize("2Gi"), 2 * GiB)
            with client.lease("19Gi", holder="other", priority=500, wait_s=5):
                with self.assertRaises(gpucoord.WaitTimeout):
                    lease.resize("6Gi", wait_s=0.3)
                self.assertEqual(lease.bytes, 2 * GiB)
                with self.assertRaises(NeverFits):
                    lease.resize("40Gi", wait_s=1)
            with self.assertRaises(BadRequest):
                client.resize(lease.id, 0)


class LeaseWaiting(ShortSlices, GpuEnv):
    def test_queued_lease_times_out_and_is_withdrawn(self):
        self.start_coordinator()
        st, first = self.http.post("/v1/leases", {"holder": "a", "bytes": 20 * GiB,
                                                  "ttl_s": 30})
        self.assertEqual(st, 201, first)
        client = Client(self.url)
        t0 = time.monotonic()
        with self.assertRaises(LeaseTimeout) as cm:
            client.lease("20Gi", holder="b", wait_s=1.0)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.95)
        self.assertLess(took, 3.0)
        self.assertEqual(cm.exception.code, "timeout")
        self.assertIn("withdrawn", str(cm.exception))
        st, leases = self.http.get("/v1/leases")
        self.assertEqual([l["id"] for l in leases["leases"]], [first["id"]])
        st, status = self.http.get("/v1/status")
        self.assertEqual(status["queue"], [])

    def test_queued_lease_granted_after_a_few_wait_slices(self):
        self.start_coordinator()
        st, first = self.http.post("/v1/leases", {"holder": "a", "bytes": 20 * GiB,
                                                  "ttl_s": 30})
        self.assertEqual(st, 201, first)
        t = threading.Timer(1.0, lambda: self.http.delete("/v1/leases/" + first["id"]))
        t.start()
        try:
            client = Client(self.url)
            with client.lease("20Gi", holder="b", wait_s=10) as lease:
                self.assertEqual(lease.state, "granted")
                self.assertGreater(lease.waited_s, 0.8)
                self.assertEqual(self.http.get("/v1/leases/" + lease.id)[1]["state"], "granted")
        finally:
            t.join()


    def test_queued_lease_refused_later_raises_never_fits(self):
        self.start_coordinator()
        st, first = self.http.post("/v1/leases", {"holder": "a", "bytes": 20 * GiB,
                                                  "ttl_s": 30})
        self.assertEqual(st, 201, first)
        # While it waits, a resident it may not evict takes 4.7Gi for good.
        blocker = {"name": "pinned", "protocol": "seed", "url": "http://127.0.0.1:9",
                   "bytes": VAL_BYTES, "priority": 500}
        t = threading.Timer(0.5, lambda: self.http.post("/v1/residents", blocker))
        t.start()
        try:
            with self.assertRaises(NeverFits) as cm:
                Client(self.url).lease("20Gi", holder="b", wait_s=10)
        finally:
            t.join()
        self.assertIn("20Gi needed", str(cm.exception))
        self.assertEqual(cm.exception.code, "never_fits")


class Heartbeats(GpuEnv):
    def test_heartbeats_keep_a_short_ttl_lease_alive(self):
        self.start_coordinator()
        client = Client(self.url)
        st, raw = self.http.post("/v1/leases", {"holder": "raw", "bytes": GiB, "ttl_s": 0.6})
        self.assertEqual(st, 201, raw)
        with client.lease("1Gi", holder="beating", ttl_s=0.6) as lease, \
                client.lease("1Gi", holder="silent", ttl_s=0.6, pid=None,
                             heartbeat=False) as silent:
            self.assertEqual(lease.ttl_s, 0.6)
            time.sleep(2.0)
            self.assertEqual(self.http.get("/v1/leases/" + lease.id)[1]["state"], "granted")
            self.assertFalse(lease.lost)
            lease.check()  # does not raise
            # Without heartbeats the same TTL ends both the raw and the silent lease.
            self.assertEqual(self.http.get("/v1/leases/" + raw["id"])[1]["state"], "expired")
            self.assertEqual(self.http.get("/v1/leases/" + silent.id)[1]["state"], "expired")
        self.assertEqual(self.http.get("/v1/leases/" + lease.id)[1]["state"], "released")

    def test_lost_is_set_within_a_heartbeat_interval(self):
        self.start_coordinator()
        client = Client(self.url)
        calls = []
        lease = client.lease("2Gi", holder="victim", ttl_s=0.6, on_lost=calls.append)
        try:
            time.sleep(0.3)
            self.assertFalse(lease.lost)
            st, _ = self.http.delete("/v1/leases/" + lease.id)  # ended behind its back
            self.assertEqual(st, 200)
            t0 = time.monotonic()
            self.assertTrue(lease.wait_lost(0.2 + 0.3), "lost not set within an interval")
            self.assertLess(time.monotonic() - t0, 0.5)
            self.assertTrue(lease.lost)
            self.assertIn("ended", lease.lost_reason)
            self.assertEqual(calls, [lease])
            with self.assertRaises(LeaseLost):
                lease.check()
        finally:
            lease.release()


class Transports(GpuEnv):
    def test_unix_socket_url(self):
        self.start_coordinator()
        client = Client("unix:" + self.socket)
        self.assertEqual(client.health(), {"status": "ok"})
        self.assertEqual(client.gpus()[0]["total_bytes"], CARD)
        with client.lease("4Gi", holder="over-unix") as lease:
            self.assertEqual(self.http.get("/v1/leases/" + lease.id)[1]["state"], "granted")
        self.assertEqual(self.http.get("/v1/leases/" + lease.id)[1]["state"], "released")
        self.assertEqual(Client("unix://" + self.socket).health()["status"], "ok")

    def test_env_url_and_bearer_token(self):
        token = "s3cret-token-0123456789"
        tpath = self.path("token")
        with open(os.open(tpath, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(token + "\n")
        self.start_coordinator("--token-file", tpath, wait=False)
        self.http.token = token
        wait_until(self._healthy, 10, what="gpucoordd /health")
        with self.assertRaises(Unauthorized) as cm:
            Client(self.url, token="").status()
        self.assertEqual(cm.exception.status, 401)
        saved = {k: os.environ.get(k) for k in ("GPUCOORD_URL", "GPUCOORD_TOKEN")}
        os.environ["GPUCOORD_URL"] = self.url
        os.environ["GPUCOORD_TOKEN"] = token
        try:
            client = Client()
            self.assertEqual(client.url, self.url)
            self.assertEqual(client.status()["gpus"][0]["total_bytes"], CARD)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class NothingListens(unittest.TestCase):
    def test_coordinator_unavailable(self):
        client = Client("http://127.0.0.1:%d" % free_port(), timeout=2)
        for call in (client.health, client.status, lambda: client.lease("1Gi")):
            with self.assertRaises(CoordinatorUnavailable) as cm:
                call()
            self.assertEqual(cm.exception.code, "connect_failed")
            self.assertIsNone(cm.exception.status)
            self.assertIn("cannot reach the coordinator", str(cm.exception))
        with self.assertRaises(CoordinatorUnavailable):
            Client("unix:/nonexistent/gpucoord.sock").health()

    def test_bad_urls(self):
        for url in ("ftp://x", "127.0.0.1:10010", "unix:", "http://127.0.0.1:1@192.0.2.7:80",
                    "http://[::1]@192.0.2.7", "http://localhost:x@192.0.2.7"):
            with self.assertRaises(ValueError):
                Client(url)

    def test_default_url(self):
        saved = os.environ.pop("GPUCOORD_URL", None)
        try:
            self.assertEqual(Client().url, "http://127.0.0.1:10010")
        finally:
            if saved is not None:
                os.environ["GPUCOORD_URL"] = saved


class Cli(GpuEnv):
    def run_cli(self, *args):
        env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
        return subprocess.run([sys.executable, "-m", "gpucoord", "--url", self.url] + list(args),
                              env=env, capture_output=True, text=True, timeout=60)

    def test_status_and_lease_around_a_command(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        out = self.run_cli("status")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("GPU 0", out.stdout)
        self.assertIn("validation", out.stdout)
        check = ("import json, os, sys, urllib.request; "
                 "b = json.load(urllib.request.urlopen(%r + '/v1/leases/' + "
                 "os.environ['GPUCOORD_LEASE_ID'])); print(b['state'], b['holder'], b['evicted']);"
                 " sys.exit(3)" % self.url)
        out = self.run_cli("lease", "19.6Gi", "--holder", "gen", "--", sys.executable, "-c", check)
        self.assertEqual(out.returncode, 3, out.stderr)
        self.assertEqual(out.stdout.strip(), "granted gen ['validation']")
        self.assertIn("evicted validation", out.stderr)
        self.assertEqual(self.http.get("/v1/leases")[1]["leases"], [])
        out = self.run_cli("lease", "30Gi", "--", "true")
        self.assertEqual(out.returncode, 3)  # refused: as gpucoord run
        self.assertIn("needed", out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
