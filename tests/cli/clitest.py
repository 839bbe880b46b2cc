"""clitest - helpers for the gpucoord CLI tests: run build/gpucoord against a real
gpucoordd on gpusim (tests/integration/gctest.py does the processes)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from gctest import BUILD, GpuEnv, free_port, wait_until  # noqa: E402,F401

CLI = os.path.join(BUILD, "gpucoord")
HOLD = os.path.join(BUILD, "src", "tools", "gpu-hold")

# The CLI's documented exit codes (docs/cli.md).
EXIT_USAGE, EXIT_REFUSED, EXIT_COORD, EXIT_NOTFOUND = 2, 3, 4, 127


class CliEnv(GpuEnv):
    """A GpuEnv with a helper to run the CLI against this test's coordinator."""

    def cli(self, *args, url=None, timeout=60, env=None):
        """Runs gpucoord [--url URL] ARGS; returns CompletedProcess (text)."""
        argv = [CLI]
        if url is not False:
            argv += ["--url", url or self.url]
        argv += list(args)
        return subprocess.run(argv, env=env or self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def cli_ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, "gpucoord %s: rc %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def cli_json(self, *args, **kw):
        return json.loads(self.cli_ok(*args, **kw).stdout)

    def lease(self, lease_id):
        st, body = self.http.get("/v1/leases/" + lease_id)
        self.assertEqual(st, 200, body)
        return body

    def active_lease_ids(self):
        st, body = self.http.get("/v1/leases")
        self.assertEqual(st, 200)
        return [l["id"] for l in body["leases"]]

    def status(self):
        st, body = self.http.get("/v1/status")
        self.assertEqual(st, 200)
        return body


def pid_gone(pid):
    """True when pid has exited (gone, or a zombie nobody reaped yet)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return "Z" in line.split()[1]
    except FileNotFoundError:
        return True
    return False
