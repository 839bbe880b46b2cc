#!/usr/bin/env python3
"""libgpucoord through ctypes: the C client library is usable from Python without a
binding. struct gpucoord_lease_request is declared exactly as in include/gpucoord.h.

Exits 77 (meson's skip) when build/libgpucoord.so is built with AddressSanitizer or
ThreadSanitizer: such a library cannot be loaded into an uninstrumented python."""
import ctypes
import os
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from gctest import BUILD, GEN_BYTES, GiB, GpuEnv  # noqa: E402

import gpucoord  # noqa: E402

sys.path.insert(0, HERE)
from test_sizes import FORMAT, PARSE_BAD, PARSE_OK  # noqa: E402

LIB = os.path.join(BUILD, "libgpucoord.so")


def sanitized(path):
    """True when the library needs a sanitizer runtime loaded first."""
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return False
    return "libasan" in out or "libtsan" in out


class LeaseRequest(ctypes.Structure):
    """struct gpucoord_lease_request (include/gpucoord.h)."""
    _fields_ = [
        ("holder", ctypes.c_char_p),   # const char *holder
        ("bytes", ctypes.c_uint64),    # uint64_t bytes
        ("gpu", ctypes.c_int),         # int gpu
        ("pid", ctypes.c_int),         # int pid
        ("priority", ctypes.c_int),    # int priority
        ("ttl_s", ctypes.c_double),    # double ttl_s
        ("wait_s", ctypes.c_double),   # double wait_s
        ("heartbeat", ctypes.c_int),   # int heartbeat
    ]


def load():
    lib = ctypes.CDLL(LIB)
    P = ctypes.c_void_p
    sig = {
        "gpucoord_client_new": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(P)]),
        "gpucoord_client_free": (None, [P]),
        "gpucoord_client_message": (ctypes.c_char_p, [P]),
        "gpucoord_client_set_timeout_ms": (None, [P, ctypes.c_long]),
        "gpucoord_lease_request_init": (None, [ctypes.POINTER(LeaseRequest)]),
        "gpucoord_lease_acquire": (ctypes.c_int, [P, ctypes.POINTER(LeaseRequest),
                                                  ctypes.POINTER(P)]),
        "gpucoord_lease_release": (ctypes.c_int, [P]),
        "gpucoord_lease_heartbeat": (ctypes.c_int, [P]),
        "gpucoord_lease_resize": (ctypes.c_int, [P, ctypes.c_uint64, ctypes.c_double]),
        "gpucoord_lease_id": (ctypes.c_char_p, [P]),
        "gpucoord_lease_bytes": (ctypes.c_uint64, [P]),
        "gpucoord_lease_gpu": (ctypes.c_int, [P]),
        "gpucoord_lease_waited_s": (ctypes.c_double, [P]),
        "gpucoord_lease_evicted": (ctypes.c_char_p, [P]),
        "gpucoord_lease_lost": (ctypes.c_int, [P]),
        "gpucoord_size_parse": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)]),
        "gpucoord_size_format": (ctypes.c_char_p, [ctypes.c_uint64, ctypes.c_char_p,
                                                   ctypes.c_size_t]),
        "gpucoord_err_name": (ctypes.c_char_p, [ctypes.c_int]),
        "gpucoord_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


class Sizes(unittest.TestCase):
    """gpucoord_size_parse/format agree with gpucoord.parse_size/format_size."""

    @classmethod
    def setUpClass(cls):
        cls.lib = load()

    def c_parse(self, text):
        v = ctypes.c_uint64(777)
        rc = self.lib.gpucoord_size_parse(text.encode(), ctypes.byref(v))
        return rc, v.value

    def test_parse_tables(self):
        for text, want in PARSE_OK:
            with self.subTest(text=text):
                self.assertEqual(self.c_parse(text), (0, want))
        for text in PARSE_BAD:
            with self.subTest(text=text):
                rc, v = self.c_parse(text)
                self.assertEqual(self.lib.gpucoord_err_name(rc), b"bad_request")
                self.assertEqual(v, 777)  # unchanged on error

    def test_python_and_c_agree(self):
        corpus = [t for t, _ in PARSE_OK] + PARSE_BAD + [
            "1 ", "1 B", "1 kib", "2.5 Ti", "0.000000000001Ti", "99999999999999999999",
            "18446744073709551615B", "17179869183.99999999Gi", "1.00", "12.3456789012Mi"]
        for text in corpus:
            with self.subTest(text=text):
                rc, v = self.c_parse(text)
                try:
                    py = (0, gpucoord.parse_size(text))
                except ValueError:
                    py = None
                self.assertEqual(py, (rc, v) if rc == 0 else None)

    def test_format(self):
        buf = ctypes.create_string_buffer(32)
        for nbytes, want in FORMAT + [(GEN_BYTES, "19.6Gi"), (123456789, "117.74Mi")]:
            with self.subTest(nbytes=nbytes):
                got = self.lib.gpucoord_size_format(nbytes, buf, len(buf)).decode()
                self.assertEqual(got, want)
                self.assertEqual(gpucoord.format_size(nbytes), got)


class Leases(GpuEnv):
    @classmethod
    def setUpClass(cls):
        cls.lib = load()

    def setUp(self):
        super().setUp()
        self.start_coordinator()
        self.client = ctypes.c_void_p()
        rc = self.lib.gpucoord_client_new(self.url.encode(), ctypes.byref(self.client))
        self.assertEqual(rc, 0)
        self.assertTrue(self.client.value)

    def tearDown(self):
        self.lib.gpucoord_client_free(self.client)
        super().tearDown()

    def request(self, holder, nbytes, **fields):
        req = LeaseRequest()
        ctypes.memset(ctypes.byref(req), 0xAB, ctypes.sizeof(req))
        self.lib.gpucoord_lease_request_init(ctypes.byref(req))
        req.holder = holder.encode()
        req.bytes = nbytes
        for k, v in fields.items():
            setattr(req, k, v)
        return req

    def message(self):
        return self.lib.gpucoord_client_message(self.client).decode()

    def test_request_init_matches_the_header_layout(self):
        # The header says: gpu any, pid 0, priority 0, ttl 0, wait 0, heartbeat on. With
        # the memory pre-filled with 0xAB, any field our layout got wrong would show it;
        # and the C side must not write past sizeof(struct) as ctypes computes it.
        self.assertEqual(ctypes.sizeof(LeaseRequest), 56)
        buf = (ctypes.c_ubyte * (ctypes.sizeof(LeaseRequest) + 16))()
        ctypes.memset(buf, 0xAB, len(buf))
        req = LeaseRequest.from_buffer(buf)
        self.lib.gpucoord_lease_request_init(ctypes.byref(req))
        self.assertEqual((req.holder, req.bytes, req.gpu, req.pid, req.priority, req.ttl_s,
                          req.wait_s, req.heartbeat), (None, 0, -1, 0, 0, 0.0, 0.0, 1))
        self.assertEqual(bytes(buf[ctypes.sizeof(LeaseRequest):]), b"\xab" * 16)

    def test_acquire_evicts_then_release(self):
        res = self.start_resident("validation", "4.7Gi")
        req = self.request("generation", GEN_BYTES, wait_s=20.0, ttl_s=30.0)
        lease = ctypes.c_void_p()
        rc = self.lib.gpucoord_lease_acquire(self.client, ctypes.byref(req), ctypes.byref(lease))
        self.assertEqual(rc, 0, self.message())
        lid = self.lib.gpucoord_lease_id(lease).decode()
        self.assertTrue(lid.startswith("lease-"), lid)
        self.assertEqual(self.lib.gpucoord_lease_bytes(lease), GEN_BYTES)
        self.assertEqual(self.lib.gpucoord_lease_evicted(lease), b"validation")
        self.assertEqual(self.lib.gpucoord_lease_gpu(lease), 0)
        self.assertGreaterEqual(self.lib.gpucoord_lease_waited_s(lease), 0.0)
        self.assertEqual(self.lib.gpucoord_lease_lost(lease), 0)
        st, view = self.http.get("/v1/leases/" + lid)
        self.assertEqual((view["state"], view["holder"], view["bytes"], view["pid"]),
                         ("granted", "generation", GEN_BYTES, os.getpid()))
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        self.assertTrue(res.alive())
        self.assertEqual(self.lib.gpucoord_lease_release(lease), 0)
        st, view = self.http.get("/v1/leases/" + lid)
        self.assertEqual(view["state"], "released")
        self.assertEqual(self.http.get("/v1/leases")[1]["leases"], [])

    def test_resize_grows_through_eviction_shrinks_and_times_out(self):
        self.start_resident("validation", "4.7Gi")
        req = self.request("prog", 1 * GiB, wait_s=5.0, ttl_s=30.0)
        lease = ctypes.c_void_p()
        rc = self.lib.gpucoord_lease_acquire(self.client, ctypes.byref(req), ctypes.byref(lease))
        self.assertEqual(rc, 0, self.message())
        lid = self.lib.gpucoord_lease_id(lease).decode()
        # Growing past what is free evicts the resident, verified, then answers.
        self.assertEqual(self.lib.gpucoord_lease_resize(lease, GEN_BYTES, 20.0), 0)
        self.assertEqual(self.lib.gpucoord_lease_bytes(lease), GEN_BYTES)
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        self.assertEqual(self.http.get("/v1/leases/" + lid)[1]["bytes"], GEN_BYTES)
        # Shrinking is immediate.
        self.assertEqual(self.lib.gpucoord_lease_resize(lease, 2 * GiB, 0.0), 0)
        self.assertEqual(self.lib.gpucoord_lease_bytes(lease), 2 * GiB)
        # Another lease takes the rest; growing again cannot be had within the wait:
        # EQUEUED, and the lease keeps its size.
        other = self.request("other", 19 * GiB, wait_s=5.0, ttl_s=30.0, priority=500)
        olease = ctypes.c_void_p()
        self.assertEqual(self.lib.gpucoord_lease_acquire(self.client, ctypes.byref(other),
                                                         ctypes.byref(olease)), 0, self.message())
        rc = self.lib.gpucoord_lease_resize(lease, 6 * GiB, 0.3)
        self.assertEqual(self.lib.gpucoord_err_name(rc), b"queued")
        self.assertEqual(self.lib.gpucoord_lease_bytes(lease), 2 * GiB)
        rc = self.lib.gpucoord_lease_resize(lease, 40 * GiB, 1.0)
        self.assertEqual(self.lib.gpucoord_err_name(rc), b"never_fits")
        self.assertEqual(self.lib.gpucoord_err_name(self.lib.gpucoord_lease_resize(lease, 0, 0)),
                         b"bad_request")
        self.assertEqual(self.lib.gpucoord_lease_release(olease), 0)
        self.assertEqual(self.lib.gpucoord_lease_release(lease), 0)

    def test_never_fits_message(self):
        req = self.request("big", 30 * GiB, wait_s=5.0)
        lease = ctypes.c_void_p()
        rc = self.lib.gpucoord_lease_acquire(self.client, ctypes.byref(req), ctypes.byref(lease))
        self.assertEqual(self.lib.gpucoord_err_name(rc), b"never_fits")
        self.assertIsNone(lease.value)
        msg = self.message()
        self.assertIn("30Gi needed", msg)
        self.assertIn("can give at most", msg)
        self.assertEqual(self.http.get("/v1/leases")[1]["leases"], [])

    def test_heartbeat_thread_and_queued_timeout(self):
        req = self.request("beating", 20 * GiB, ttl_s=0.6, wait_s=5.0)
        lease = ctypes.c_void_p()
        rc = self.lib.gpucoord_lease_acquire(self.client, ctypes.byref(req), ctypes.byref(lease))
        self.assertEqual(rc, 0, self.message())
        lid = self.lib.gpucoord_lease_id(lease).decode()
        # A second one queues behind it; its wait ends; the request is withdrawn.
        req2 = self.request("second", 20 * GiB, ttl_s=5.0, wait_s=0.5)
        lease2 = ctypes.c_void_p()
        t0 = time.monotonic()
        rc = self.lib.gpucoord_lease_acquire(self.client, ctypes.byref(req2),
                                             ctypes.byref(lease2))
        self.assertEqual(self.lib.gpucoord_err_name(rc), b"queued", self.message())
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertEqual([l["id"] for l in self.http.get("/v1/leases")[1]["leases"]], [lid])
        # The background heartbeats keep the 0.6 s lease granted past its TTL.
        time.sleep(1.5)
        self.assertEqual(self.http.get("/v1/leases/" + lid)[1]["state"], "granted")
        self.assertEqual(self.lib.gpucoord_lease_lost(lease), 0)
        # Ended behind its back: the heartbeat thread notices.
        self.http.delete("/v1/leases/" + lid)
        deadline = time.monotonic() + 1.5
        while not self.lib.gpucoord_lease_lost(lease) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.lib.gpucoord_lease_lost(lease), 1)
        # Releasing a lost lease still frees it (the coordinator answers 200 again).
        done = []
        t = threading.Thread(target=lambda: done.append(self.lib.gpucoord_lease_release(lease)))
        t.start()
        t.join(5)
        self.assertEqual(len(done), 1, "gpucoord_lease_release hung")


if __name__ == "__main__":
    if not os.path.exists(LIB):
        print("no %s: build first" % LIB)
        sys.exit(1)
    if sanitized(LIB):
        print("skip: %s is sanitizer-built and cannot be loaded into python" % LIB)
        sys.exit(77)
    unittest.main(verbosity=2)
