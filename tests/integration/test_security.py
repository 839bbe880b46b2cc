#!/usr/bin/env python3
"""Security: loopback by default, the Unix socket's mode, the bearer token on TCP,
loopback-only callbacks, and the named caps on client-controlled quantities."""
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import BUILD, GiB, GpuEnv, Http, free_port, wait_until  # noqa: E402
from test_api_input import UnixHTTPConnection  # noqa: E402

TOKEN = "s3cret-token-for-tests-0123456789"


class Security(GpuEnv):
    def test_binds_loopback_by_default(self):
        port = free_port()
        env = dict(self.env, GPUCOORD_PORT=str(port))
        p = self.start([os.path.join(BUILD, "gpucoordd"), "--state-dir", self.path("st")],
                       "gpucoordd", env=env)
        http = Http("http://127.0.0.1:%d" % port)
        import time
        for _ in range(100):
            try:
                if http.get("/health", timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True,
                             text=True).stdout
        local = [line.split()[3] for line in out.splitlines() if line.strip()]
        self.assertEqual(local, ["127.0.0.1:%d" % port])
        self.assertTrue(p.alive())

    def start_with_token(self, mode=0o600, token=TOKEN):
        path = self.path("token")
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, mode)
        return self.start_coordinator("--token-file", path, wait=False)

    def test_bearer_token_required_on_tcp(self):
        self.start_with_token()
        http = Http(self.url)
        import time
        for _ in range(100):
            try:
                st, body = http.get("/v1/status", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        self.assertEqual(st, 401)
        self.assertEqual(body["error"], "unauthorized")
        st, body = Http(self.url, token="wrong-token-wrong-token").get("/v1/status")
        self.assertEqual(st, 401)
        st, body = Http(self.url, token=TOKEN).get("/v1/status")
        self.assertEqual(st, 200)
        st, body = http.post("/v1/leases", {"holder": "a", "bytes": GiB, "ttl_s": 5})
        self.assertEqual(st, 401)
        # The Unix socket is guarded by its file mode instead.
        conn = UnixHTTPConnection(self.socket)
        conn.request("GET", "/v1/status")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()

    def test_long_tokens_are_used_whole_up_to_the_cap(self):
        # 300 characters: once cut to 255, so that the whole token was refused.
        token = "t" * 299 + "z"
        self.start_with_token(token=token)
        wait_until(lambda: self._answers(), 10, what="gpucoordd")
        self.assertEqual(Http(self.url, token=token).get("/v1/status")[0], 200)
        self.assertEqual(Http(self.url, token=token[:255]).get("/v1/status")[0], 401)
        # libgpucoord (here through the CLI) sends it whole too, and refuses a longer one.
        cli = [os.path.join(BUILD, "gpucoord"), "status"]
        env = dict(self.env, GPUCOORD_URL=self.url, GPUCOORD_TOKEN=token)
        out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        env["GPUCOORD_TOKEN"] = "t" * 4097
        out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("GPUCOORD_TOKEN is longer than 4096 characters", out.stderr)

    def test_token_longer_than_the_cap_is_refused_at_start(self):
        p = self.start_with_token(token="t" * 4097)
        p.p.wait(timeout=10)
        self.assertEqual(p.p.returncode, 2)
        with open(self.path("gpucoordd.log")) as f:
            self.assertIn("is longer than 4096 characters", f.read())

    def _answers(self):
        try:
            return Http(self.url).get("/health", timeout=1)[0] in (200, 401)
        except OSError:
            return False

    def test_token_file_readable_by_others_is_refused(self):
        p = self.start_with_token(mode=0o644)
        p.p.wait(timeout=10)
        self.assertEqual(p.p.returncode, 2)
        with open(self.path("gpucoordd.log")) as f:
            self.assertIn("must not be readable by group or others", f.read())

    def test_unix_socket_mode(self):
        self.start_coordinator()
        self.assertEqual(os.stat(self.socket).st_mode & 0o777, 0o660)

    def test_a_live_unix_socket_is_not_taken_over(self):
        self.start_coordinator()
        first_socket = self.socket
        argv = [os.path.join(BUILD, "gpucoordd"), "--listen", "127.0.0.1:%d" % free_port(),
                "--state-dir", self.path("state2"), "--socket", first_socket]
        second = self.start(argv, "gpucoordd-2")
        second.p.wait(timeout=10)
        self.assertEqual(second.p.returncode, 1)
        with open(self.path("gpucoordd-2.log")) as f:
            self.assertIn("is in use by a running server", f.read())
        conn = UnixHTTPConnection(first_socket)
        conn.request("GET", "/health")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        # A stale socket (its server gone) is still replaced.
        self.coord.kill()
        self.start_coordinator(state_dir=self.path("state3"))

    def test_remote_callbacks_need_the_config(self):
        self.start_coordinator()
        body = {"name": "r", "protocol": "seed", "url": "http://192.0.2.7:8000"}
        st, ans = self.http.post("/v1/residents", body)
        self.assertEqual(st, 400)
        self.assertIn("loopback", ans["message"])
        for url in ("http://127.0.0.2:9", "http://localhost:9", "http://[::1]:9"):
            st, ans = self.http.post("/v1/residents", dict(body, url=url))
            self.assertEqual(st, 201, (url, ans))

    def test_remote_callbacks_allowed_by_config(self):
        self.start_coordinator(config="[coordinator]\nallow_remote_callbacks = true\n")
        st, ans = self.http.post("/v1/residents", {"name": "r", "protocol": "seed",
                                                   "url": "http://192.0.2.7:8000"})
        self.assertEqual(st, 201, ans)

    def test_leases_per_holder_and_queue_caps(self):
        self.start_coordinator(config="[coordinator]\nleases_per_holder_max = 3\n"
                                      "queue_max = 2\n")
        for i in range(3):
            st, _ = self.http.post("/v1/leases", {"holder": "greedy", "bytes": GiB, "ttl_s": 30})
            self.assertEqual(st, 201)
        st, body = self.http.post("/v1/leases", {"holder": "greedy", "bytes": GiB, "ttl_s": 30})
        self.assertEqual((st, body["error"]), (429, "limit_reached"))
        big = {"bytes": 21 * GiB, "ttl_s": 30}
        for h in ("a", "b"):
            st, _ = self.http.post("/v1/leases", dict(big, holder=h))
            self.assertEqual(st, 202)
        st, body = self.http.post("/v1/leases", dict(big, holder="c"))
        self.assertEqual((st, body["error"]), (429, "limit_reached"))
        st, leases = self.http.get("/v1/leases")
        self.assertEqual(len(leases["leases"]), 5)

    def watched(self):
        st, text = self.http.get("/metrics")
        for line in text.decode().splitlines():
            if line.startswith("gpucoord_watched_processes "):
                return int(line.split()[1])
        raise AssertionError("no gpucoord_watched_processes")

    def test_refused_requests_leave_no_process_watched(self):
        # Each distinct pid a request names is watched; a request refused with 400 or
        # 429 must give its watch back, or live pids could fill the watch table.
        self.start_coordinator(config="[coordinator]\nleases_per_holder_max = 1\n")
        sleepers = [self.start(["sleep", "60"], "sleeper%d" % i) for i in range(3)]
        base = self.watched()
        st, _ = self.http.post("/v1/leases", {"holder": "h", "bytes": GiB, "ttl_s": 30})
        self.assertEqual(st, 201)
        st, body = self.http.post("/v1/leases", {"holder": "h", "bytes": GiB,
                                                 "pid": sleepers[0].pid})
        self.assertEqual(st, 429, body)
        st, body = self.http.post("/v1/leases", {"holder": "x", "bytes": GiB, "gpu": 7,
                                                 "pid": sleepers[1].pid})
        self.assertEqual(st, 400, body)
        self.assertEqual(self.watched(), base)
        # A granted one is watched; re-registering a resident with a new pid drops the old.
        st, _ = self.http.post("/v1/leases", {"holder": "y", "bytes": GiB,
                                              "pid": sleepers[2].pid})
        self.assertEqual(st, 201)
        self.assertEqual(self.watched(), base + 1)
        reg = {"name": "svc", "protocol": "seed", "url": "http://127.0.0.1:9", "bytes": "1Gi"}
        self.assertEqual(self.http.post("/v1/residents", dict(reg, pid=sleepers[0].pid))[0], 201)
        self.assertEqual(self.watched(), base + 2)
        self.assertEqual(self.http.post("/v1/residents", dict(reg, pid=sleepers[1].pid))[0], 201)
        self.assertEqual(self.watched(), base + 2)

    def test_garbage_on_the_wire_leaves_it_serving(self):
        self.start_coordinator()
        port = self.coord_port
        for junk in (b"\x00\x01\x02\xff" * 100, b"GET /" + b"A" * 100000 + b" HTTP/1.1\r\n\r\n",
                     b"POST /v1/leases HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nx",
                     b"GET /health HTTP/1.1\r\n" + b"X-Junk: y\r\n" * 5000 + b"\r\n"):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            try:
                s.sendall(junk)
                s.settimeout(2)
                try:
                    s.recv(4096)
                except OSError:
                    pass
            finally:
                s.close()
        self.assertEqual(self.http.get("/health")[0], 200)
        self.assertTrue(self.coord.alive())


if __name__ == "__main__":
    unittest.main(verbosity=2)
