#!/usr/bin/env python3
"""A program started for a lease is bound to the granted GPU, by both command-line
front ends (build/gpucoord run and python3 -m gpucoord lease), tested the same way:
CUDA_VISIBLE_DEVICES names the granted GPU's UUID (whatever the user's own value),
two 20Gi jobs on two 24Gi GPUs each allocate on their own card, the simulated driver
and its state reach a command typed in a plain shell (the README tour), and both front
ends export the same variables and exit with the same codes."""
import os
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import CLI, EXIT_COORD, EXIT_REFUSED, HOLD, CliEnv, free_port  # noqa: E402
from gctest import REAL_GPU  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PYTHON = os.path.join(REPO, "python")
SHOW = 'printf "%s|%s|%s|%s|%s\\n" "$CUDA_VISIBLE_DEVICES" "$GPUCOORD_GPU" ' \
       '"$GPUCOORD_GPU_UUID" "$GPUCOORD_LEASE_ID" "$GPUCOORD_URL"'


class Binding:
    """The tests, for one front end (a subclass says which, in argv())."""

    devices = "24Gi,24Gi"

    def argv(self, need, *options):
        raise NotImplementedError

    def run_for(self, need, cmd, *options, env=None, timeout=60):
        return subprocess.run(self.argv(need, *options) + ["--"] + cmd, env=env or self.env,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def uuids(self):
        return [g["uuid"] for g in self.http.get("/v1/gpus")[1]["gpus"]]

    def test_cuda_visible_devices_names_the_granted_gpu(self):
        self.start_coordinator()
        uuids = self.uuids()
        for gpu, user_value in ((1, None), (1, "1,0"), (0, "1,0"), (0, "GPU-67707573")):
            with self.subTest(gpu=gpu, user=user_value):
                env = dict(self.env)
                if user_value is not None:
                    env["CUDA_VISIBLE_DEVICES"] = user_value
                r = self.run_for("1Gi", ["sh", "-c", SHOW], "--gpu", str(gpu), env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
                cvd, index, uuid, lease_id, url = r.stdout.strip().split("|")
                self.assertEqual((cvd, index, uuid), (uuids[gpu], str(gpu), uuids[gpu]))
                self.assertTrue(lease_id.startswith("lease-"), lease_id)
                self.assertEqual(url, self.url)

    @unittest.skipIf(REAL_GPU, "two simulated GPUs")
    def test_two_jobs_on_two_gpus_each_allocate_on_their_own(self):
        self.start_coordinator()
        results = [None, None]

        def job(i):
            results[i] = self.run_for("20Gi", [HOLD, "--bytes", "20Gi", "--seconds", "1.5"])

        threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        for r in results:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        sim = self.sim_status()["devices"]
        self.assertEqual([d["oom_count"] for d in sim], [0, 0])
        self.assertEqual(self.status()["counters"]["leases_granted"], 2)

    @unittest.skipIf(REAL_GPU, "gpusim's library path")
    def test_readme_tour_from_a_plain_shell(self):
        # The tour's command typed in a second shell: no LD_LIBRARY_PATH, no GPUSIM_STATE.
        self.devices = "24564Mi"
        self.env["GPUSIM_DEVICES"] = self.devices
        self.start_coordinator()
        plain = {k: v for k, v in self.env.items()
                 if k not in ("LD_LIBRARY_PATH", "GPUSIM_STATE", "GPUSIM_DEVICES")}
        plain["GPUCOORD_URL"] = self.url
        r = self.run_for("19.6Gi", [HOLD, "--bytes", "19.6Gi", "--seconds", "0.2"], env=plain)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ready pid=", r.stdout)
        # The coordinator saw the allocation on its own simulated GPU.
        ev = [e for e in self.events() if e["kind"] == "lease_granted"]
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    def test_refused_and_unreachable_exit_codes(self):
        self.start_coordinator()
        r = self.run_for("100Gi", ["true"])
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn("lease not granted, command not run", r.stderr)
        dead = "http://127.0.0.1:%d" % free_port()
        env = dict(self.env, GPUCOORD_URL=dead)
        self.url, saved = dead, self.url
        try:
            r = self.run_for("1Gi", ["true"], env=env)
        finally:
            self.url = saved
        self.assertEqual(r.returncode, EXIT_COORD, r.stderr)


class CliRun(Binding, CliEnv):
    def argv(self, need, *options):
        return [CLI, "--url", self.url, "run", "--need", need] + list(options)


class PythonLease(Binding, CliEnv):
    def setUp(self):
        super().setUp()
        self.env["PYTHONPATH"] = PYTHON

    def argv(self, need, *options):
        return [sys.executable, "-m", "gpucoord", "--url", self.url, "lease", need] + \
            list(options)

    def test_context_manager_binds_while_held(self):
        # The library itself: the variables are in os.environ inside the block only.
        self.start_coordinator()
        uuids = self.uuids()
        code = (
            "import os, sys, gpucoord\n"
            "os.environ['CUDA_VISIBLE_DEVICES'] = '1,0'\n"
            "os.environ.pop('GPUSIM_STATE', None)\n"
            "c = gpucoord.Client(sys.argv[1])\n"
            "with c.lease('1Gi', gpu=0) as l:\n"
            "    state = (l.gpusim or {}).get('state')\n"
            "    print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['GPUCOORD_GPU'],\n"
            "          l.gpu_uuid, os.environ.get('GPUSIM_STATE') == state)\n"
            "print(os.environ['CUDA_VISIBLE_DEVICES'], 'GPUCOORD_GPU' in os.environ,\n"
            "      'GPUSIM_STATE' in os.environ)\n"
            "with c.lease('1Gi', gpu=1, bind=False) as l:\n"
            "    print(os.environ['CUDA_VISIBLE_DEVICES'], l.env()['CUDA_VISIBLE_DEVICES'])\n")
        r = subprocess.run([sys.executable, "-c", code, self.url], env=self.env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split("\n")[:3], [
            "%s 0 %s True" % (uuids[0], uuids[0]), "1,0 False False", "1,0 %s" % uuids[1]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
