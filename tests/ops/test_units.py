#!/usr/bin/env python3
"""`systemd-analyze verify` runs clean on every installed unit: the units are staged
with `meson install --destdir`, their paths pointed at the staged tree (verify checks
that ExecStart's program exists and that Documentation's man pages resolve)."""
import os
import shutil
import subprocess
import tempfile
import unittest

BUILD = os.path.abspath(os.environ.get("GPUCOORD_BUILD", os.path.join(
    os.path.dirname(__file__), "..", "..", "build")))
UNITS = ["gpucoordd.service", "validation-server.service", "generation-server.service"]


class Units(unittest.TestCase):
    def setUp(self):
        self.analyze = shutil.which("systemd-analyze")
        if self.analyze is None:
            self.skipTest("systemd-analyze is not installed (Debian package systemd)")
        self.tmp = tempfile.mkdtemp(prefix="gcunits-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        stage = os.path.join(self.tmp, "stage")
        out = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet",
                              "--destdir", stage], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.units = {}
        self.mandir = None
        for d, _, files in os.walk(stage):
            for f in files:
                if f in UNITS and d.endswith(os.path.join("systemd", "system")):
                    self.units[f] = os.path.join(d, f)
                if f == "gpucoordd.8":
                    self.mandir = os.path.dirname(d)
        self.assertEqual(sorted(self.units), sorted(UNITS))
        self.stage = stage

    def test_verify_clean(self):
        udir = os.path.join(self.tmp, "units")
        os.mkdir(udir)
        paths = []
        for name, src in self.units.items():
            with open(src) as f:
                text = f.read()
            text = "\n".join(self._restage(line) for line in text.split("\n"))
            dst = os.path.join(udir, name)
            with open(dst, "w") as f:
                f.write(text)
            paths.append(dst)
        env = dict(os.environ, MANPATH=self.mandir, SYSTEMD_LOG_LEVEL="notice")
        argv = [self.analyze, "verify"]
        if shutil.which("man") is None:
            argv.append("--man=no")  # nothing to resolve man: links with
        out = subprocess.run(argv + sorted(paths), capture_output=True, text=True, env=env,
                             cwd=udir, timeout=60)
        # Other units of the host may be mentioned (dependencies it cannot load);
        # every line about ours is a finding.
        ours = [line for line in (out.stdout + out.stderr).splitlines()
                if any(u in line for u in UNITS)]
        self.assertEqual(ours, [], out.stdout + out.stderr)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def _restage(self, line):
        # ExecStart=/usr/local/bin/gpucoordd --config /usr/local/etc/... -> staged
        if line.startswith("ExecStart="):
            words = line[len("ExecStart="):].split(" ")
            words = [self.stage + w if w.startswith("/") and os.path.exists(self.stage + w)
                     else w for w in words]
            return "ExecStart=" + " ".join(words)
        return line

    def test_service_contract(self):
        with open(self.units["gpucoordd.service"]) as f:
            unit = f.read()
        for want in ["Type=notify", "WatchdogSec=", "StateDirectory=gpucoord",
                     "RuntimeDirectory=gpucoord", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=",
                     "CapabilityBoundingSet=CAP_KILL"]:
            self.assertIn(want, unit)
        # NVML needs the device nodes.
        self.assertNotIn("PrivateDevices=yes", unit)
        for name in ["validation-server.service", "generation-server.service"]:
            with open(self.units[name]) as f:
                self.assertIn("After=network.target gpucoordd.service", f.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
