#!/usr/bin/env python3
"""Security: loopback by default, the Unix socket's mode, the bearer token on TCP,
loopback-only callbacks, and the named caps on client-controlled quantities; who may
run commands, name processes and end others' leases and residents (docs/security.md)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import BUILD, GiB, GpuEnv, Http, free_port, wait_until  # noqa: E402
from test_api_input import UnixHTTPConnection  # noqa: E402

TOKEN = "s3cret-token-for-tests-0123456789"
NOBODY = 65534

# Run by another user: performs the requests in argv[1] (JSON list of [method, path,
# body]) against argv[2] ("http://HOST:PORT" or a Unix socket path) and prints
# [[status, answer], ...] and its own pid.
OTHER_USER_CLIENT = r"""
import http.client, json, os, socket, sys
class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.unix_path)
out = []
for method, path, body in json.loads(sys.argv[1]):
    if sys.argv[2].startswith("http://"):
        host, port = sys.argv[2][7:].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
    else:
        conn = UnixConn(sys.argv[2])
    body = json.dumps(body).replace('"$PID"', str(os.getpid())) if body is not None else None
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    try:
        data = json.loads(data)
    except ValueError:
        data = data.decode(errors="replace")
    out.append([r.status, data])
    conn.close()
print(json.dumps({"pid": os.getpid(), "answers": out}))
"""


def as_user(uid, target, requests):
    """Sends requests to target as user uid (a child that drops root); the answers."""
    def drop():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    out = subprocess.run([SYSTEM_PYTHON, "-c", OTHER_USER_CLIENT, json.dumps(requests), target],
                         preexec_fn=drop, capture_output=True, text=True, timeout=60, cwd="/",
                         env={"PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise AssertionError("client as uid %d failed: %s" % (uid, out.stderr))
    return json.loads(out.stdout)


# The other user cannot run a Python installed under root's home: the system's.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


def needs_root(test):
    """Tests that act as another user: they drop root in a child."""
    if os.geteuid() != 0:
        return unittest.skip("needs root to run a client as another user (nobody)")(test)
    return unittest.skipUnless(SYSTEM_PYTHON, "no /usr/bin/python3 for the other user")(test)


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


    def test_callback_urls_hiding_a_host_in_userinfo_are_refused(self):
        # libcurl connects to the host after the '@': each of these calls 192.0.2.7.
        self.start_coordinator()
        body = {"name": "r", "protocol": "seed"}
        for url in ("http://127.0.0.1:1@192.0.2.7:8000", "http://[::1]@192.0.2.7:8000",
                    "http://localhost:x@192.0.2.7:8000", "http://127.0.0.1@192.0.2.7",
                    "http://user@127.0.0.1:9", "http://127.0.0.1:9/x?y=1",
                    "http://127.0.0.1:9#@192.0.2.7", "http:/127.0.0.1:9", "http://127.0.0.1:9 x",
                    "HTTP://192.0.2.7:8000", "http://0x7f000001.example:9"):
            st, ans = self.http.post("/v1/residents", dict(body, url=url))
            self.assertEqual(st, 400, (url, ans))
        st, ans = self.http.get("/v1/residents")
        self.assertEqual(ans["residents"], [])
        # Shorthand loopback forms are judged as libcurl reads them.
        for url in ("http://127.1:9", "http://LOCALHOST:9/base", "http://[::1]:9/"):
            st, ans = self.http.post("/v1/residents", dict(body, url=url))
            self.assertEqual(st, 201, (url, ans))

    def other_user(self, requests, unix=False):
        if unix:
            # Let the other user reach the socket: the test's folder is root's alone.
            os.chmod(self.tmp, 0o755)
            os.chmod(self.socket, 0o666)
            return as_user(NOBODY, self.socket, requests)["answers"]
        return as_user(NOBODY, self.url, requests)["answers"]

    @needs_root
    def test_only_trusted_callers_register_commands(self):
        self.start_coordinator()
        marker = self.path("ran")
        reg = {"name": "evil", "protocol": "process", "command": "id > %s" % marker,
               "url": "http://127.0.0.1:9", "health": "GET /health"}
        for unix in (False, True):
            (st, ans), = self.other_user([["POST", "/v1/residents", reg]], unix=unix)
            self.assertEqual((st, ans["error"]), (403, "forbidden"), ans)
            self.assertIn("config", ans["message"])
        self.assertEqual(self.http.get("/v1/residents")[1]["residents"], [])
        self.assertFalse(os.path.exists(marker))
        # Root (the daemon's user here) may, over TCP and over the Unix socket.
        st, ans = self.http.post("/v1/residents", dict(reg, command="true"))
        self.assertEqual(st, 201, ans)
        conn = UnixHTTPConnection(self.socket)
        conn.request("POST", "/v1/residents", body=json.dumps(dict(reg, name="mine",
                                                                   command="true")))
        self.assertEqual(conn.getresponse().status, 201)
        conn.close()
        # The other user may not unload, reload, replace or delete them either.
        answers = self.other_user([["POST", "/v1/residents/evil/unload", None],
                                   ["POST", "/v1/residents/evil/reload", None],
                                   ["DELETE", "/v1/residents/evil", None],
                                   ["POST", "/v1/residents", dict(reg, protocol="seed")]])
        self.assertEqual([a[0] for a in answers], [403, 403, 403, 403], answers)
        self.assertEqual(self.resident("evil")["protocol"], "process")
        self.assertFalse(os.path.exists(marker))

    @needs_root
    def test_a_pid_must_be_the_callers_own(self):
        self.start_coordinator()
        root_proc = self.start(["sleep", "60"], "sleeper")
        seed = {"name": "svc", "protocol": "seed", "url": "http://127.0.0.1:9",
                "bytes": "1Gi", "on_stuck": "kill"}
        answers = self.other_user([
            ["POST", "/v1/residents", dict(seed, pid=root_proc.pid)],
            ["POST", "/v1/leases", {"holder": "h", "bytes": GiB, "pid": root_proc.pid}],
            ["POST", "/v1/leases", {"holder": "h", "bytes": GiB, "pid": 1, "ttl_s": 0}],
            # Its own process: allowed (the coordinator may then watch and signal it).
            ["POST", "/v1/residents", dict(seed, name="own", pid="$PID")],
            ["POST", "/v1/leases", {"holder": "own", "bytes": GiB, "pid": "$PID"}]])
        self.assertEqual([a[0] for a in answers], [403, 403, 403, 201, 201], answers)
        self.assertIn("belongs to another user", answers[0][1]["message"])
        self.assertEqual([r["name"] for r in self.http.get("/v1/residents")[1]["residents"]],
                         ["own"])
        self.assertTrue(root_proc.alive())
        # Root may name any process.
        st, ans = self.http.post("/v1/residents", dict(seed, pid=root_proc.pid))
        self.assertEqual(st, 201, ans)

    @needs_root
    def test_lease_quota_follows_the_caller_not_the_holder_name(self):
        self.start_coordinator(config="[coordinator]\nleases_per_caller_max = 3\n")
        lease = {"bytes": 1, "ttl_s": 60}
        answers = self.other_user([["POST", "/v1/leases", dict(lease, holder="h%d" % i)]
                                   for i in range(5)])
        self.assertEqual([a[0] for a in answers], [201, 201, 201, 429, 429], answers)
        self.assertIn("uid:65534", answers[3][1]["message"])
        # Another caller is not locked out, and its lease is not the other user's to end.
        st, mine = self.http.post("/v1/leases", dict(lease, holder="h0"))
        self.assertEqual(st, 201, mine)
        answers = self.other_user([["DELETE", "/v1/leases/" + mine["id"], None],
                                   ["POST", "/v1/leases/%s/heartbeat" % mine["id"], None],
                                   ["DELETE", "/v1/leases/" + answers[0][1]["id"], None]])
        self.assertEqual([a[0] for a in answers], [403, 403, 200], answers)
        self.assertEqual(self.http.get("/v1/leases/" + mine["id"])[1]["state"], "granted")

    @needs_root
    def test_owners_survive_a_restart(self):
        self.start_coordinator()
        answers = self.other_user([
            ["POST", "/v1/residents", {"name": "theirs", "protocol": "seed",
                                       "url": "http://127.0.0.1:9"}],
            ["POST", "/v1/leases", {"holder": "h", "bytes": GiB, "ttl_s": 120}]])
        self.assertEqual([a[0] for a in answers], [201, 201], answers)
        lease_id = answers[1][1]["id"]
        st, mine = self.http.post("/v1/residents", {"name": "mine", "protocol": "seed",
                                                    "url": "http://127.0.0.1:9"})
        self.assertEqual(st, 201, mine)
        port = self.coord_port
        self.coord.kill()
        self.start_coordinator(port=port, state_dir=self.state_dir)
        # The journal kept who owns what: still the other user's, still not root's.
        answers = self.other_user([["POST", "/v1/residents/mine/unload", None],
                                   ["DELETE", "/v1/leases/" + lease_id, None],
                                   ["DELETE", "/v1/residents/theirs", None]])
        self.assertEqual([a[0] for a in answers], [403, 200, 204], answers)

    @needs_root
    def test_a_stranger_waiting_on_a_lease_does_not_keep_it_alive(self):
        self.start_coordinator()
        st, big = self.http.post("/v1/leases", {"holder": "big", "bytes": 21 * GiB, "ttl_s": 60})
        self.assertEqual(st, 201, big)
        # Queued behind it, with a 1 s TTL and no one sending heartbeats.
        st, queued = self.http.post("/v1/leases", {"holder": "q", "bytes": 21 * GiB,
                                                   "ttl_s": 1})
        self.assertEqual((st, queued["state"]), (202, "queued"), queued)
        (st, ans), = self.other_user([["GET", "/v1/leases/%s?wait_s=3" % queued["id"], None]])
        self.assertEqual(st, 200, ans)
        self.assertEqual(self.http.get("/v1/leases/" + queued["id"])[1]["state"], "expired")
        # Its owner waiting on it does keep it.
        st, queued = self.http.post("/v1/leases", {"holder": "q", "bytes": 21 * GiB,
                                                   "ttl_s": 1})
        st, ans = self.http.get("/v1/leases/%s?wait_s=2.5" % queued["id"])
        self.assertEqual((st, ans["state"]), (200, "queued"), ans)

    def test_lease_without_pid_has_a_bounded_ttl(self):
        self.start_coordinator(config="[coordinator]\nmax_ttl_pidless_s = 60\n")
        st, ans = self.http.post("/v1/leases", {"holder": "h", "bytes": GiB, "ttl_s": 86400})
        self.assertEqual((st, ans["error"]), (400, "bad_request"), ans)
        self.assertIn("max_ttl_pidless_s", ans["message"])
        self.assertEqual(self.http.get("/v1/leases")[1]["leases"], [])
        st, ans = self.http.post("/v1/leases", {"holder": "h", "bytes": GiB, "ttl_s": 60})
        self.assertEqual(st, 201, ans)
        # A pid ends the lease when its process does: that one may ask for longer.
        holder = self.start(["sleep", "60"], "holder")
        st, ans = self.http.post("/v1/leases", {"holder": "p", "bytes": GiB, "ttl_s": 86400,
                                                "pid": holder.pid})
        self.assertEqual(st, 201, ans)

    def test_pidless_ttl_cap_by_default(self):
        self.start_coordinator()
        st, ans = self.http.post("/v1/leases", {"holder": "h", "bytes": 1, "ttl_s": 86400})
        self.assertEqual(st, 400, ans)
        st, ans = self.http.post("/v1/leases", {"holder": "h", "bytes": 1, "ttl_s": 300})
        self.assertEqual(st, 201, ans)


if __name__ == "__main__":
    unittest.main(verbosity=2)
