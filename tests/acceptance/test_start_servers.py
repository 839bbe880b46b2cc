#!/usr/bin/env python3
"""./start_servers.sh in the foreground, as the README's Quick start runs it: it says
which GPU it uses, waits until all three answer, and Ctrl-C stops all three."""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from founding import REPO, FoundingSystem, Http, free_port, wait_until  # noqa: E402


class Foreground(FoundingSystem):
    def setUp(self):
        # Not the detached start of FoundingSystem: this test starts it itself.
        super(FoundingSystem, self).setUp()

    def tearDown(self):
        super(FoundingSystem, self).tearDown()

    def test_ctrl_c_stops_all_three(self):
        ports = [free_port(), free_port(), free_port()]
        env = dict(self.env, GPUCOORD_PORT=str(ports[0]), VALIDATION_PORT=str(ports[1]),
                   GENERATION_PORT=str(ports[2]), GPUCOORD_RUN_DIR=self.path("run"),
                   GPUCOORD_LOG_DIR=self.path("logs"), GPUCOORD_FORCE_SIM="1",
                   GPUCOORD_NO_BUILD="1", GPUCOORD_BUILD_DIR=os.environ["GPUCOORD_BUILD"])
        p = subprocess.Popen([os.path.join(REPO, "start_servers.sh")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            out.append(line)
            if "press Ctrl-C" in line or not line:
                break
        text = "".join(out)
        self.assertIn("gpusim", text)
        self.assertIn("all three are up", text)
        self.assertIn("http://127.0.0.1:%d" % ports[1], text)
        pids = {}
        for name in ("gpucoordd", "validation-server", "generation-server"):
            with open(os.path.join(self.path("run"), name + ".pid")) as f:
                pids[name] = int(f.read())
        for port in ports:
            self.assertEqual(Http("http://127.0.0.1:%d" % port).get(
                "/health" if port == ports[0] else "/health/")[0], 200)
        self.assertTrue(os.path.getsize(os.path.join(self.path("logs"), "gpucoordd.log")) > 0)
        # Loopback only, unless SERVERS_HOST says otherwise.
        for port in ports:
            out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True,
                                 text=True).stdout
            self.assertEqual([line.split()[3] for line in out.splitlines() if line.strip()],
                             ["127.0.0.1:%d" % port])
        p.send_signal(signal.SIGINT)  # Ctrl-C
        p.wait(timeout=30)
        p.stdout.close()
        for name, pid in pids.items():
            with self.subTest(name=name):
                wait_until(lambda: not alive(pid), 10, what=name + " stopped")
        status = subprocess.run([os.path.join(REPO, "start_servers.sh"), "status"], env=env,
                                capture_output=True, text=True)
        self.assertEqual(status.returncode, 1)
        self.assertIn("gpucoordd: stopped", status.stdout)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


if __name__ == "__main__":
    unittest.main(verbosity=2)
