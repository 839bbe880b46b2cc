#!/usr/bin/env python3
"""gpucoordd speaks the service manager's notification protocol (sd_notify):
READY=1 once it answers, WATCHDOG=1 from the engine loop, STOPPING=1 on SIGTERM.
The test plays systemd: it binds the datagram socket named by NOTIFY_SOCKET."""
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from gctest import GpuEnv, Http, wait_until  # noqa: E402


class Notify(GpuEnv):
    def listen(self, abstract=False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        if abstract:
            name = "gpucoord-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
            s.bind("\0" + name)
            self.env["NOTIFY_SOCKET"] = "@" + name
        else:
            path = self.path("notify.sock")
            s.bind(path)
            self.env["NOTIFY_SOCKET"] = path
        s.settimeout(0.2)
        return s

    def messages_until(self, sock, want, timeout):
        """Datagrams received until one holds the line want (all of them, in order)."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(sock.recv(4096).decode())
            except socket.timeout:
                continue
            if want in got[-1].split("\n"):
                return got
        self.fail("no %s within %.1fs; got %r" % (want, timeout, got))

    def test_ready_watchdog_stopping(self):
        sock = self.listen()
        self.env["WATCHDOG_USEC"] = "600000"  # 0.6 s: pings every 0.3 s
        coord = self.start_coordinator(wait=False)
        self.messages_until(sock, "READY=1", 15)
        # READY comes only once the API answers.
        self.assertEqual(Http(self.url).get("/health")[0], 200)
        t0 = time.monotonic()
        pings = 0
        while pings < 4:
            m = self.messages_until(sock, "WATCHDOG=1", 2.0)
            pings += sum(1 for x in m if "WATCHDOG=1" in x.split("\n"))
        # Four pings at half the interval take at least ~0.9 s, and come steadily
        # while the engine is idle (nothing else wakes it).
        self.assertGreater(time.monotonic() - t0, 0.6)
        self.assertLess(time.monotonic() - t0, 4.0)
        coord.signal(signal.SIGTERM)
        self.messages_until(sock, "STOPPING=1", 10)
        coord.p.wait(timeout=15)
        self.assertEqual(coord.p.returncode, 0)

    def test_abstract_socket(self):
        sock = self.listen(abstract=True)
        self.start_coordinator(wait=False)
        self.messages_until(sock, "READY=1", 15)

    def test_watchdog_for_another_pid_is_ignored(self):
        sock = self.listen()
        self.env["WATCHDOG_USEC"] = "200000"
        self.env["WATCHDOG_PID"] = "1"
        self.start_coordinator(wait=False)
        self.messages_until(sock, "READY=1", 15)
        time.sleep(0.8)
        rest = []
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        self.assertFalse([m for m in rest if "WATCHDOG=1" in m], rest)

    def test_no_socket_no_harm(self):
        # A NOTIFY_SOCKET nobody listens on: the daemon still starts and serves.
        self.env["NOTIFY_SOCKET"] = self.path("nobody.sock")
        self.env["WATCHDOG_USEC"] = "200000"
        self.start_coordinator()
        wait_until(lambda: self.http.get("/health")[0] == 200, what="/health")
        time.sleep(0.5)
        self.assertTrue(self.coord.alive())

    def test_unusable_variables_are_reported(self):
        self.env["NOTIFY_SOCKET"] = "relative.sock"
        self.env["WATCHDOG_USEC"] = "soon"
        self.start_coordinator()
        with open(self.path("gpucoordd.log")) as f:
            log = f.read()
        self.assertIn("ignoring NOTIFY_SOCKET 'relative.sock'", log)
        self.assertIn("ignoring WATCHDOG_USEC 'soon'", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
