#!/usr/bin/env python3
"""gpucoord run on gpusim: exit codes passed through, the lease lives exactly as
long as the command, signals forwarded, a SIGKILLed CLI takes its command and
lease with it, the founding swap without OOM, never-fits refused before running."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import (CLI, EXIT_NOTFOUND, EXIT_REFUSED, HOLD, CliEnv, pid_gone,  # noqa: E402
                     wait_until)
from gctest import CTX, GiB, VAL_BYTES  # noqa: E402

# The command checks its lease from inside: it records what it was given and asks
# the coordinator (through the CLI, which finds it by the exported GPUCOORD_URL).
INSIDE = r'''
printf '%s %s\n' "$GPUCOORD_LEASE_ID" "$GPUCOORD_GPU" > "$OUT.env"
"$GPUCOORD" lease show "$GPUCOORD_LEASE_ID" --json > "$OUT.json" || exit 99
case "$1" in
  exit) exit "$2" ;;
  kill) kill -9 $$ ;;
esac
'''


class RunExitCodes(CliEnv):
    def run_inside(self, *how):
        out = self.path("inside-" + "-".join(how))
        env = dict(self.env, GPUCOORD=CLI, OUT=out)
        p = subprocess.Popen([CLI, "--url", self.url, "run", "--need", "2Gi", "--holder",
                              "inside", "--", "sh", "-c", INSIDE, "sh"] + list(how),
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout, stderr = p.communicate(timeout=30)
        with open(out + ".env") as f:
            lease_id, gpu = f.read().split()
        with open(out + ".json") as f:
            seen = json.load(f)
        return p, lease_id, gpu, seen, stderr

    def test_exit_codes_and_lease_lifetime(self):
        self.start_coordinator()
        for how, want in ((("exit", "0"), 0), (("exit", "17"), 17), (("kill",), 128 + 9)):
            with self.subTest(how=how):
                p, lease_id, gpu, seen, stderr = self.run_inside(*how)
                self.assertEqual(p.returncode, want, stderr)
                # While the command ran: its lease was granted, for the CLI's pid.
                self.assertEqual(seen["id"], lease_id)
                self.assertEqual(seen["state"], "granted")
                self.assertEqual(seen["holder"], "inside")
                self.assertEqual(seen["bytes"], 2 * GiB)
                self.assertEqual(seen["pid"], p.pid)
                self.assertEqual(gpu, "0")
                # After it ended, however it ended: the lease is gone.
                self.assertEqual(self.lease(lease_id)["state"], "released")
                self.assertNotIn(lease_id, self.active_lease_ids())
        self.assertEqual(self.status()["counters"]["leases_released"], 3)

    def test_command_not_found_takes_no_lease(self):
        self.start_coordinator()
        r = self.cli("run", "--need", "1Gi", "--", "no-such-command-xyz")
        self.assertEqual(r.returncode, EXIT_NOTFOUND, r.stderr)
        self.assertIn("no-such-command-xyz: command not found", r.stderr)
        self.assertEqual(self.status()["counters"]["leases_granted"], 0)

    def test_sigterm_is_forwarded_and_status_passed_through(self):
        self.start_coordinator()
        ready = self.path("ready")
        script = ('trap "exit 42" TERM; touch %s; while :; do sleep 0.05; done' % ready)
        p = subprocess.Popen([CLI, "--url", self.url, "run", "--need", "1Gi", "--", "sh", "-c",
                              script], env=self.env, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: os.path.exists(ready), 10, what="command started")
            (lease_id,) = self.active_lease_ids()
            p.send_signal(signal.SIGTERM)  # to the CLI only: it must pass it on
            self.assertEqual(p.wait(timeout=10), 42)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        self.assertEqual(self.lease(lease_id)["state"], "released")


class RunKilled(CliEnv):
    def test_sigkilled_cli_kills_command_and_lease_ends_within_1s(self):
        self.start_coordinator()
        run = self.start([CLI, "--url", self.url, "run", "--need", "3Gi", "--", HOLD,
                          "--bytes", "3Gi"], "run", ready="ready")
        child = int(run.field("pid"))
        (lease_id,) = self.active_lease_ids()
        self.assertEqual(self.lease(lease_id)["pid"], run.pid)
        self.assertEqual(self.proc_usage(child), CTX + 3 * GiB)

        run.signal(signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda: pid_gone(child), 1.0, what="the command killed with the CLI")
        wait_until(lambda: self.lease(lease_id)["state"] == "expired", 1.0,
                   what="lease expired after the CLI was SIGKILLed")
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertIn("exited", self.lease(lease_id)["reason"])
        wait_until(lambda: self.proc_usage(child) == 0, 2.0, what="the command's memory freed")


class RunFoundingSwap(CliEnv):
    def test_generation_fits_after_swap_and_resident_comes_back(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        rpid = int(res.field("pid"))
        r = self.cli("run", "--need", "19.6Gi", "-v", "--", HOLD, "--bytes", "19.6Gi",
                     "--seconds", "0.3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ready pid=", r.stdout)  # gpu-hold got its 19.6Gi
        self.assertIn("evicted validation", r.stderr)
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 10,
                   what="validation reloaded")
        self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)
        v = self.resident("validation")
        self.assertEqual((v["unloads"], v["reloads"]), (1, 1))
        self.assertEqual(self.status()["counters"]["swaps"], 1)

        # gpucoord events shows the swap in order.
        out = self.cli_ok("events").stdout.splitlines()
        kinds = [line.split()[2] for line in out]
        order = ["resident_unloading", "resident_unloaded", "lease_granted", "lease_released",
                 "resident_reloaded"]
        self.assertEqual([k for k in kinds if k in order], order, out)
        unloaded = [line for line in out if " resident_unloaded " in line][0]
        self.assertIn("validation", unloaded)
        self.assertRegex(unloaded, r"\[unload \d+ms, verify \d+ms\]")
        self.assertRegex(out[0], r"^\d\d:\d\d:\d\d\.\d{3}  #1 ")


class RunNeverFits(CliEnv):
    def test_never_fits_exit_3_with_arithmetic_and_command_not_run(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi", "--priority", "500")
        marker = self.path("ran")
        t0 = time.monotonic()
        r = self.cli("run", "--need", "20Gi", "--", "touch", marker)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertFalse(os.path.exists(marker))
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("not granted", lines[0])
        self.assertIn("20Gi needed but GPU 0 can give at most", lines[0])
        self.assertIn("capacity 23.99Gi - reserve 512Mi", lines[0])
        self.assertEqual(self.resident("validation")["state"], "loaded")

    def test_wait_runs_out_exit_3_and_request_withdrawn(self):
        self.start_coordinator()
        st, big = self.http.post("/v1/leases", {"holder": "big", "bytes": 20 * GiB, "ttl_s": 30})
        self.assertEqual(st, 201, big)
        marker = self.path("ran")
        r = self.cli("run", "--need", "10Gi", "--wait", "0.5", "--", "touch", marker)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn("still queued", r.stderr)
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(self.active_lease_ids(), [big["id"]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
