#!/usr/bin/env python3
"""The INI configuration: budgets and reserves per GPU, residents declared in the file,
limits; and a broken file stops the daemon with the line and the reason."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import BUILD, CTX, GiB, VAL_BYTES, GpuEnv, wait_until  # noqa: E402


class Config(GpuEnv):
    def test_budget_reserve_and_declared_residents(self):
        res = self.start_resident("validation", "4.7Gi", register=False)
        port = res.field("port")
        self.start_coordinator(config="""
[coordinator]
reserve = 1Gi
max_unloaded_s = 2
[gpu.0]
budget = 20Gi
[resident.validation]
protocol = seed
url = http://127.0.0.1:%s
pid = %s
bytes = 4.7Gi
priority = 20
verify_timeout_s = 3.5
""" % (port, res.field("pid")))
        g = self.gpu()
        self.assertEqual((g["budget_bytes"], g["reserve_bytes"]), (20 * GiB, GiB))
        r = self.resident("validation")
        self.assertEqual((r["state"], r["priority"], r["verify_timeout_s"]), ("loaded", 20, 3.5))
        # 20Gi budget - 1Gi reserve - the resident's 300Mi context = 18.7Gi at most.
        st, body = self.http.post("/v1/leases", {"holder": "x", "bytes": 19 * GiB, "ttl_s": 5})
        self.assertEqual((st, body["error"]), (409, "never_fits"))
        st, lease = self.http.post("/v1/leases", {"holder": "x", "bytes": 18 * GiB, "ttl_s": 30,
                                                  "wait_s": 10})
        self.assertEqual((st, lease["evicted"]), (201, ["validation"]))

    def test_declared_resident_with_levels(self):
        res = self.start_resident("validation", "4608Mi", "--chunk", "256Mi", "--levels",
                                  "full:4608Mi,reduced:2304Mi,off:0", register=False)
        self.start_coordinator(config="""
[resident.validation]
protocol = seed
url = http://127.0.0.1:%s
pid = %s
levels = full:4608Mi, reduced : 2304Mi ,off:0
""" % (res.field("port"), res.field("pid")))
        r = self.resident("validation")
        self.assertEqual(r["levels"], [{"name": "full", "bytes": 4608 << 20},
                                       {"name": "reduced", "bytes": 2304 << 20},
                                       {"name": "off", "bytes": 0}])
        self.assertEqual((r["bytes"], r["level"]), (4608 << 20, "full"))

    def test_broken_config_stops_with_line_and_reason(self):
        cases = [("[coordinator]\nreserve = lots\n", ":2: 'reserve' is not a size"),
                 ("[coordinator]\nfrobnicate = 1\n", "unknown key 'frobnicate'"),
                 ("[gpu.99]\nbudget = 1Gi\n", "bad section [gpu.99]"),
                 ("[resident.bad name]\nprotocol = seed\n", "bad section"),
                 ("[coordinator]\nmax_unloaded_s = -1\n", "'max_unloaded_s' must be seconds"),
                 ("[coordinator\n", "syntax error"),
                 ("[resident.r]\nprotocol = seed\nurl = http://10.0.0.1:1\n", "loopback"),
                 ("[resident.r]\nname = other\n", "the name comes from the section"),
                 ("[resident.r]\nprotocol = s\xe9ed\n", "not valid UTF-8"),
                 ("[resident.r]\npid = 99999999999999999999999\n", "'pid' must be an integer"),
                 ("[resident.r]\nlevels = full 4Gi, off:0\n", "'levels' must look like"),
                 ("[resident.r]\nlevels = full:4Gi, :0\n", "'levels' must look like")]
        for text, fragment in cases:
            path = self.path("bad.ini")
            with open(path, "w", encoding="latin-1") as f:
                f.write(text)
            out = subprocess.run([os.path.join(BUILD, "gpucoordd"), "--config", path,
                                  "--state-dir", self.path("st"), "--listen", "127.0.0.1:0"],
                                 env=self.env, capture_output=True, text=True, timeout=20)
            with self.subTest(text=text):
                self.assertNotEqual(out.returncode, 0)
                self.assertIn(fragment, out.stderr)

    def test_unix_socket_only(self):
        self.start_coordinator("--listen", "none", wait=False)
        from test_api_input import UnixHTTPConnection
        wait_until(lambda: os.path.exists(self.socket), 10)
        conn = UnixHTTPConnection(self.socket)
        conn.request("GET", "/health")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
