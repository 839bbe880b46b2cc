#!/usr/bin/env python3
"""Connection slots: slow senders, long waits and one greedy peer cannot take the
slots that health checks, heartbeats and generations need; a wait whose client left
gives its slot back; the founding servers bind loopback unless told otherwise.

Every test stays within a few hundred loopback sockets and a few seconds of attack."""
import base64
import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import (BUILD, SANITIZED, GiB, GpuEnv, Http, free_port,  # noqa: E402
                    wait_until)

# Sockets one test may hold open (its attackers plus its own clients).
FD_BUDGET = 1024


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_BUDGET if hard == resource.RLIM_INFINITY else min(FD_BUDGET, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class SlowClients:
    """n connections that send their headers one byte at a time and reconnect when
    closed, as a slowloris does, from source address src, until stop()."""

    def __init__(self, port, n, src="127.0.0.1", tick_s=0.3):
        self.port, self.n, self.src, self.tick_s = port, n, src, tick_s
        self.socks = [None] * n
        self.opened = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        for i in range(self.n):
            self._open(i)
        self._thread.start()
        return self

    def _open(self, i):
        s = socket.socket()
        s.settimeout(1)
        try:
            s.bind((self.src, 0))
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            s.setblocking(False)
            self.socks[i] = s
            self.opened += 1
        except OSError:
            s.close()
            self.socks[i] = None

    def _alive(self, s):
        try:
            return s.recv(64) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _run(self):
        while not self._stop.wait(self.tick_s):
            for i, s in enumerate(self.socks):
                if s is not None and self._alive(s):
                    try:
                        s.send(b"x")
                        continue
                    except OSError:
                        pass
                if s is not None:
                    s.close()
                    self.closed_by_server += 1
                self._open(i)

    def open_now(self):
        return sum(1 for s in self.socks if s is not None and self._alive(s))

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for s in self.socks:
            if s is not None:
                s.close()


def timed_call(fn):
    t = time.monotonic()
    out = fn()
    return out, time.monotonic() - t


class CoordinatorSlots(GpuEnv):
    CONFIG = ("[coordinator]\nconn_limit = 64\nconn_reserve = 8\nconn_per_peer = 32\n"
              "header_timeout_s = 3\n")

    def setUp(self):
        super().setUp()
        raise_fd_limit()

    def test_slow_headers_leave_health_and_heartbeats_answering(self):
        self.start_coordinator(config=self.CONFIG)
        st, lease = self.http.post("/v1/leases", {"holder": "h", "bytes": GiB, "ttl_s": 3})
        self.assertEqual(st, 201, lease)
        attack = SlowClients(self.coord_port, 200).start()
        self.addCleanup(attack.stop)
        time.sleep(1)  # the burst has landed: every slot the attackers could get is theirs
        self.assertGreaterEqual(attack.open_now(), 16)  # of its 200: the attack holds slots
        slowest = 0.0
        end = time.monotonic() + 7  # longer than the lease's TTL and the header deadline
        while time.monotonic() < end:
            (st, _), dt = timed_call(lambda: self.http.get("/health", timeout=5))
            self.assertEqual(st, 200)
            slowest = max(slowest, dt)
            (st, body), dt = timed_call(
                lambda: self.http.post("/v1/leases/%s/heartbeat" % lease["id"], timeout=5))
            self.assertEqual(st, 200, body)
            slowest = max(slowest, dt)
            time.sleep(0.5)
        self.assertLess(slowest, 2.0)
        # Slow senders were cut at their deadline or made way, not kept; and it shows.
        self.assertGreater(attack.closed_by_server, 0)
        st, metrics = self.http.get("/metrics")
        closed = {}
        for line in metrics.decode().splitlines():
            if line.startswith("gpucoord_http_connections_closed_total{"):
                closed[line.split('"')[1]] = int(line.split()[-1])
        self.assertEqual(sorted(closed), ["deadline", "made_way", "refused"])
        self.assertGreater(closed["made_way"], 0)
        st, body = self.http.get("/v1/leases/" + lease["id"])
        self.assertEqual(body["state"], "granted", body)

    def test_a_slow_sender_is_closed_at_its_header_deadline(self):
        self.start_coordinator(config=self.CONFIG)
        s = socket.create_connection(("127.0.0.1", self.coord_port))
        self.addCleanup(s.close)
        s.sendall(b"GET /health HTTP/1.1\r\n")
        s.settimeout(0.5)
        t = time.monotonic()
        closed = False
        while time.monotonic() - t < 6:
            try:
                s.sendall(b"X-A: b\r\n")  # activity: an idle timeout alone never fires
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        self.assertTrue(closed, "a connection trickling its headers was kept past 6 s")
        self.assertGreater(time.monotonic() - t, 2.5)  # header_timeout_s = 3
        st, metrics = self.http.get("/metrics")
        self.assertIn('gpucoord_http_connections_closed_total{reason="deadline"} 1\n',
                      metrics.decode())

    def test_one_peer_cannot_take_every_general_slot(self):
        self.start_coordinator(config=self.CONFIG)
        # Long polls from 127.0.0.2: complete requests, so none of them makes way.
        polls = []
        self.addCleanup(lambda: [p.close() for p in polls])
        for _ in range(80):  # more than conn_limit
            p = socket.socket()
            p.bind(("127.0.0.2", 0))
            p.connect(("127.0.0.1", self.coord_port))
            p.sendall(b"GET /v1/events?since=999999&wait_s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
            polls.append(p)
        time.sleep(1)
        # Another peer still gets a general slot for a request that waits.
        st, body = self.http.get("/v1/events?since=0&wait_s=0.2", timeout=5)
        self.assertEqual(st, 200, body)
        st, lease = self.http.post("/v1/leases",
                                   {"holder": "h", "bytes": GiB, "ttl_s": 5, "wait_s": 1})
        self.assertEqual(st, 201, lease)

    def test_clients_leaving_waits_give_their_slots_back(self):
        config = ("[coordinator]\nconn_limit = 16\nconn_reserve = 2\nconn_per_peer = 16\n")
        self.start_coordinator(config=config)
        self.start_resident("validation", "4.7Gi")
        # A lease that takes the resident's memory, so that a demand for it waits.
        st, lease = self.http.post("/v1/leases", {"holder": "h", "bytes": 19 * GiB,
                                                  "ttl_s": 60, "wait_s": 20})
        self.assertEqual(st, 201, lease)
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        def open_wait(i):
            s = socket.create_connection(("127.0.0.1", self.coord_port))
            if i % 2:
                s.sendall(b"GET /v1/events?since=999999&wait_s=60 HTTP/1.1\r\nHost: x\r\n\r\n")
            else:
                body = b'{"wait_s": 60}'
                s.sendall(b"POST /v1/residents/validation/demand HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
            return s

        waits = [open_wait(i) for i in range(14)]  # every general slot
        # The connection of an earlier request may hold its slot a moment after its
        # client closed it: a wait refused then (503, answered at once) is sent again.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.3)
            answered = [i for i, w in enumerate(waits) if select.select([w], [], [], 0)[0]]
            if not answered:
                break
            for i in answered:
                self.assertIn(b" 503 ", waits[i].recv(4096).split(b"\r\n")[0] + b" ")
                waits[i].close()
                waits[i] = open_wait(i)
        # Once all are in, a request that may wait is refused on a reserved slot.
        refused = []

        def full():
            st, body = self.http.get("/v1/events?since=0&wait_s=0.1", timeout=5)
            refused[:] = [body]
            return st == 503
        # 14 connections accepted and waiting: quick, but not on a loaded 2-core machine
        # under sanitizers; the bound only says how long to keep looking.
        wait_until(full, 20, interval=0.2, what="the waits to take every general slot")
        body = refused[0]
        self.assertIn("connection slots", body["message"])
        self.assertEqual(self.http.get("/health", timeout=5)[0], 200)
        for s in waits:
            s.close()
        # Each wait notices its client left within a second or so, and frees its slot.
        wait_until(lambda: self.http.get("/v1/events?since=0&wait_s=0.1", timeout=5)[0] == 200,
                   timeout=8 if SANITIZED else 4, interval=0.2,
                   what="the slots of the waits whose clients left")
        self.assertEqual(self.http.delete("/v1/leases/" + lease["id"])[0], 200)

    def test_bad_slot_settings_are_refused(self):
        p = self.start_coordinator(config="[coordinator]\nconn_limit = 8\nconn_reserve = 8\n",
                                   wait=False)
        p.p.wait(timeout=10)
        self.assertEqual(p.p.returncode, 2)
        with open(self.path("gpucoordd.log")) as f:
            self.assertIn("conn_reserve < conn_limit", f.read())


def start_generation(env_case, *args):
    """A generation server without coordination (1Gi peak); returns (port, Http)."""
    port = free_port()
    env = dict(env_case.env, GPUCOORD_DISABLE="1", GENERATION_PEAK_BYTES="1Gi")
    env_case.start([os.path.join(BUILD, "generation-server"), "--port", str(port)] + list(args),
                   "generation-server", env=env)
    gen = Http("http://127.0.0.1:%d" % port)

    def up():
        try:
            return gen.get("/health/", timeout=1)[0] == 200
        except OSError:
            return False
    wait_until(up, 15, what="generation server")
    return port, gen


def generate(gen, seed):
    return gen.call("POST", "/generate/", raw=b"prompt=a+red+cube&seed=%d" % seed, timeout=30,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})


class ValidationWaits(GpuEnv):
    def test_a_validation_whose_client_left_stops_waiting_for_its_models(self):
        self.start_coordinator()
        _, gen = start_generation(self)
        st, ply = generate(gen, 1)
        self.assertEqual(st, 200)
        vport = free_port()
        # Without levels: at reduced precision it would answer instead of waiting.
        env = dict(self.env, GPUCOORD_URL=self.url, VALIDATION_DEMAND_WAIT_S="60",
                   VALIDATION_LEVELS="0")
        vs = self.start([os.path.join(BUILD, "validation-server"), "--port", str(vport)],
                        "validation-server", env=env)
        wait_until(lambda: self.http.get("/v1/residents/validation")[0] == 200, 15,
                   what="the validation server registered")
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15,
                   what="its models loaded")
        # A lease that takes its memory: a validation now waits for its models.
        st, lease = self.http.post("/v1/leases", {"holder": "h", "bytes": 19 * GiB,
                                                  "ttl_s": 60, "wait_s": 20})
        self.assertEqual(st, 201, lease)
        self.assertEqual(self.resident("validation")["state"], "unloaded")

        def threads():
            return len(os.listdir("/proc/%d/task" % vs.pid))
        before = threads()
        body = json.dumps({"prompt": "a red cube", "data": base64.b64encode(ply).decode(),
                           "compression": 0, "generate_preview": False}).encode()
        s = socket.create_connection(("127.0.0.1", vport))
        s.sendall(b"POST /validate_txt_to_3d_ply/ HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body)
        wait_until(lambda: "resident_demand" in self.event_kinds("validation"), 10,
                   what="the validation's demand")
        self.assertGreater(threads(), before)
        s.close()
        # Its request thread ends within a demand slice (2 s), not after 60 s.
        wait_until(lambda: threads() <= before, 6, interval=0.2,
                   what="the request thread of the client that left to end")
        self.assertEqual(self.http.delete("/v1/leases/" + lease["id"])[0], 200)


class GenerationSlots(GpuEnv):
    def setUp(self):
        super().setUp()
        raise_fd_limit()

    def start_generation(self, *args):
        return start_generation(self, *args)

    def test_generate_answers_under_slow_connections(self):
        port, gen = self.start_generation()
        attack = SlowClients(port, 300).start()  # more than its 256 slots
        self.addCleanup(attack.stop)
        time.sleep(1)
        self.assertGreaterEqual(attack.open_now(), 64)  # of its 300: the attack holds slots
        for seed in (1, 2):
            st, body = generate(gen, seed)
            self.assertEqual(st, 200, body[:200])
            self.assertGreater(len(body), 7000 * 62 * 4)
        self.assertEqual(gen.get("/health/", timeout=5)[0], 200)

    def listening(self, port):
        out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True,
                             text=True).stdout
        return [line.split()[3] for line in out.splitlines() if line.strip()]

    def test_founding_servers_bind_loopback_by_default(self):
        port, _ = self.start_generation()
        self.assertEqual(self.listening(port), ["127.0.0.1:%d" % port])
        vport = free_port()
        env = dict(self.env, GPUCOORD_DISABLE="1", VALIDATION_MODEL_BYTES="256Mi")
        self.start([os.path.join(BUILD, "validation-server"), "--port", str(vport)],
                   "validation-server", env=env)
        wait_until(lambda: self.listening(vport), 15, what="validation server listening")
        self.assertEqual(self.listening(vport), ["127.0.0.1:%d" % vport])

    def test_host_widens_it_when_asked(self):
        port, gen = self.start_generation("--host", "0.0.0.0")
        self.assertEqual(self.listening(port), ["0.0.0.0:%d" % port])


if __name__ == "__main__":
    unittest.main()
