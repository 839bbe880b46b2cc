#!/usr/bin/env python3
"""Bad input to the coordinator API: each gets a 4xx with a reason and changes nothing."""
import http.client
import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import GiB, GpuEnv  # noqa: E402


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


class BadInput(GpuEnv):
    def setUp(self):
        super().setUp()
        self.start_coordinator()

    def assert_4xx(self, status, body, code=None, fragment=None, expect=400):
        self.assertEqual(status, expect, body)
        self.assertIsInstance(body, dict, body)
        self.assertIn("message", body)
        self.assertTrue(body["message"])
        if code:
            self.assertEqual(body["error"], code)
        if fragment:
            self.assertIn(fragment, body["message"])

    def assert_unchanged(self):
        st, leases = self.http.get("/v1/leases")
        self.assertEqual(leases["leases"], [])
        st, res = self.http.get("/v1/residents")
        self.assertEqual(res["residents"], [])
        self.assertEqual(self.http.get("/health")[0], 200)

    def test_malformed_json(self):
        for raw in [b"{", b"not json", b"[1,2]", b"", b'{"holder": "a", "bytes": 1,}',
                    b'{"a":1,"a":2}', b"\xff\xfe"]:
            st, body = self.http.call("POST", "/v1/leases", raw=raw,
                                      headers={"Content-Type": "application/json"})
            self.assert_4xx(st, body, "bad_request")
        self.assert_unchanged()

    def test_wrong_types_and_ranges(self):
        cases = [
            ({"bytes": GiB}, "missing field 'holder'"),
            ({"holder": "a"}, "missing field 'bytes'"),
            ({"holder": 5, "bytes": GiB}, "must be a string"),
            ({"holder": "a", "bytes": -1}, "negative"),
            ({"holder": "a", "bytes": 0}, "greater than 0"),
            ({"holder": "a", "bytes": 1.5}, "integer"),
            ({"holder": "a", "bytes": True}, "integer"),
            ({"holder": "a", "bytes": "20Qi"}, "not a size"),
            ({"holder": "a", "bytes": "-5Gi"}, "not a size"),
            ({"holder": "a", "bytes": 2 ** 62}, "larger than"),
            ({"holder": "a b", "bytes": GiB}, "holder must match"),
            ({"holder": "x" * 65, "bytes": GiB}, "longer than"),
            ({"holder": "a", "bytes": GiB, "gpu": 7}, "no GPU 7"),
            ({"holder": "a", "bytes": GiB, "gpu": "first"}, "GPU index"),
            ({"holder": "a", "bytes": GiB, "pid": 0}, "between"),
            ({"holder": "a", "bytes": GiB, "pid": 2 ** 40}, "between"),
            ({"holder": "a", "bytes": GiB, "pid": 999999999}, "does not exist"),
            ({"holder": "a", "bytes": GiB, "pid": 4194000}, "does not exist"),
            ({"holder": "a", "bytes": GiB, "ttl_s": -1}, "ttl_s"),
            ({"holder": "a", "bytes": GiB, "ttl_s": 0}, "needs a ttl_s"),
            ({"holder": "a", "bytes": GiB, "wait_s": 1e9}, "wait_s"),
            ({"holder": "a", "bytes": GiB, "priority": "high"}, "integer"),
            ({"holder": "a", "bytes": GiB, "colour": "red"}, "unknown field 'colour'"),
        ]
        for body, fragment in cases:
            st, ans = self.http.post("/v1/leases", body)
            with self.subTest(body=body):
                self.assert_4xx(st, ans, "bad_request", fragment)
        self.assert_unchanged()

    def test_error_messages_stay_valid_utf8(self):
        """Found by fuzzing: a reason quoting client bytes, or cut inside a character,
        must still be sent (as valid JSON), not become a 500 or an empty 400."""
        key = "k" * 63 + "\u00e9"
        st, body = self.http.call("POST", "/v1/leases",
                                  raw=('{"holder":"a","bytes":1,"%s":1}' % key).encode(),
                                  headers={"Content-Type": "application/json"})
        self.assert_4xx(st, body, "bad_request", "unknown field")
        raw = b'{"a": "\\u0' + b"\xd4\x9a" + b'"}'
        st, body = self.http.call("POST", "/v1/leases", raw=raw,
                                  headers={"Content-Type": "application/json"})
        self.assert_4xx(st, body, "bad_request", "malformed JSON")
        self.assert_unchanged()

    def test_overflowing_sizes(self):
        raw = b'{"holder":"a","bytes":99999999999999999999999999}'
        st, body = self.http.call("POST", "/v1/leases", raw=raw,
                                  headers={"Content-Type": "application/json"})
        self.assert_4xx(st, body, "bad_request")
        st, body = self.http.post("/v1/leases", {"holder": "a", "bytes": "99999999999Ti"})
        self.assert_4xx(st, body, "bad_request", "not a size")
        self.assert_unchanged()

    def test_deep_and_oversized_bodies(self):
        deep = b'{"holder":' + b"[" * 100 + b"]" * 100 + b"}"
        st, body = self.http.call("POST", "/v1/leases", raw=deep,
                                  headers={"Content-Type": "application/json"})
        self.assert_4xx(st, body, "too_large", expect=413)
        big = json.dumps({"holder": "a", "bytes": 1, "pad": "x" * (200 * 1024)}).encode()
        st, body = self.http.call("POST", "/v1/leases", raw=big,
                                  headers={"Content-Type": "application/json"})
        self.assert_4xx(st, body, "too_large", expect=413)
        self.assert_unchanged()

    def test_unknown_names_and_paths(self):
        self.assert_4xx(*self.http.get("/v1/leases/lease-424242"), "not_found", expect=404)
        self.assert_4xx(*self.http.delete("/v1/residents/nobody"), "not_found", expect=404)
        self.assert_4xx(*self.http.post("/v1/residents/nobody/unload"), "not_found", expect=404)
        self.assert_4xx(*self.http.post("/v1/residents/nobody/demand"), "not_found", expect=404)
        self.assert_4xx(*self.http.get("/v1/residents/../../etc/passwd"), expect=404)
        self.assert_4xx(*self.http.get("/v1/nothing"), "not_found", expect=404)
        self.assert_4xx(*self.http.call("PUT", "/v1/leases"), "method_not_allowed", expect=405)
        self.assert_4xx(*self.http.get("/v1/events?since=-3"), "bad_request")
        self.assert_4xx(*self.http.get("/v1/leases/lease-1?wait_s=abc"), "bad_request")
        self.assert_unchanged()

    def test_events_since_the_largest_sequence_number(self):
        self.http.post("/v1/leases", {"holder": "a", "bytes": 1 << 30})  # an event or two
        st, body = self.http.get("/v1/events?since=1")
        self.assertEqual(st, 200, body)
        last = body["last_seq"]
        self.assertGreater(last, 0)
        for since in (last, 2**63 - 1, 2**63, 2**64 - 1):
            st, body = self.http.get("/v1/events?since=%d" % since)
            self.assertEqual((st, body["events"]), (200, []), since)
        self.assert_4xx(*self.http.get("/v1/events?since=%d" % 2**64), "bad_request")
        self.assert_4xx(*self.http.get("/v1/events?since=99999999999999999999999"),
                        "bad_request")

    def test_bad_resident_registrations(self):
        base = {"name": "r", "protocol": "seed", "url": "http://127.0.0.1:1"}
        cases = [
            (dict(base, protocol="smoke-signals"), "unknown protocol"),
            (dict(base, url="http://10.1.2.3:80"), "loopback"),
            (dict(base, url="ftp://127.0.0.1/"), "http://"),
            ({"name": "r", "protocol": "seed"}, "needs a 'url'"),
            (dict(base, name="bad name"), "name must match"),
            (dict(base, restore="sometimes"), "restore must be"),
            (dict(base, on_stuck="kill"), "needs the resident's pid"),
            (dict(base, bytes=-5), "negative"),
            (dict(base, gpu=3), "no GPU 3"),
            (dict(base, unload_timeout_s=0), "unload_timeout_s"),
            ({"name": "r", "protocol": "http", "url": "http://127.0.0.1:1"}, "needs 'unload'"),
            ({"name": "r", "protocol": "process"}, "needs a start 'command'"),
        ]
        for body, fragment in cases:
            st, ans = self.http.post("/v1/residents", body)
            with self.subTest(body=body):
                self.assert_4xx(st, ans, "bad_request", fragment)
        self.assert_unchanged()

    def test_unix_socket_serves_the_same_api(self):
        self.assertEqual(os.stat(self.socket).st_mode & 0o777, 0o660)
        conn = UnixHTTPConnection(self.socket)
        conn.request("POST", "/v1/leases", body=json.dumps({"holder": "u", "bytes": GiB,
                                                             "ttl_s": 5}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        body = json.loads(r.read())
        self.assertEqual(r.status, 201, body)
        conn.request("DELETE", "/v1/leases/" + body["id"])
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        conn.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
