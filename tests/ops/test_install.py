#!/usr/bin/env python3
"""make install: `meson install --destdir` stages everything a system install needs,
and a C program built with `pkg-config --cflags --libs gpucoord` against the staged
tree takes and releases a lease from the staged gpucoordd on gpusim."""
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from gctest import BUILD, SIM, GpuEnv, Http, free_port, wait_until  # noqa: E402

PROGRAM = r"""
#include <gpucoord.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    struct gpucoord_lease_request req;
    gpucoord_client *client;
    gpucoord_lease *lease;
    int rc;

    if (argc != 2 || gpucoord_client_new(argv[1], &client) != 0)
        return 2;
    gpucoord_lease_request_init(&req);
    req.holder = "installed-client";
    req.bytes = 1ull << 30;
    req.wait_s = 10;
    rc = gpucoord_lease_acquire(client, &req, &lease);
    if (rc != 0) {
        fprintf(stderr, "acquire: %s: %s\n", gpucoord_strerror(rc),
                gpucoord_client_message(client));
        return 1;
    }
    printf("granted %s on gpu %d\n", gpucoord_lease_id(lease), gpucoord_lease_gpu(lease));
    fflush(stdout);
    rc = gpucoord_lease_release(lease);
    printf("released %d\n", rc);
    gpucoord_client_free(client);
    return rc == 0 ? 0 : 1;
}
"""


def find(root, name):
    for d, _, files in os.walk(root):
        if name in files:
            return os.path.join(d, name)
    return None


class Install(GpuEnv):
    @classmethod
    def setUpClass(cls):
        if shutil.which("pkg-config") is None or shutil.which("cc") is None:
            raise unittest.SkipTest("pkg-config or cc missing (scripts/install-deps.sh)")
        out = subprocess.run(["meson", "introspect", "--buildoptions", BUILD],
                             capture_output=True, text=True, timeout=60)
        opts = {o["name"]: o["value"] for o in json.loads(out.stdout or "[]")}
        if opts.get("b_sanitize", "none") != "none":
            raise unittest.SkipTest("a sanitizer build: the installed programs need the "
                                    "sanitizer runtime; the plain build checks the install")

    def setUp(self):
        super().setUp()
        self.stage = self.path("stage")
        out = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet",
                              "--destdir", self.stage],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.pc = find(self.stage, "gpucoord.pc")
        self.assertIsNotNone(self.pc, "gpucoord.pc not installed")
        # .../PREFIX/LIBDIR/pkgconfig/gpucoord.pc
        self.libdir = os.path.dirname(os.path.dirname(self.pc))
        self.bindir = os.path.dirname(find(self.stage, "gpucoordd"))

    def test_layout(self):
        for name in ["gpucoordd", "gpucoord", "validation-server", "generation-server"]:
            p = os.path.join(self.bindir, name)
            self.assertTrue(os.access(p, os.X_OK), p)
        for name in ["gpucoord.h", "gpucoord.1", "gpucoordd.8", "gpucoord.conf.5",
                     "gpucoordd.service", "validation-server.service",
                     "generation-server.service", "gpucoord.conf"]:
            self.assertIsNotNone(find(self.stage, name), name + " not installed")
        # The library under its versioned soname, with the link for -lgpucoord.
        self.assertTrue(os.path.exists(os.path.join(self.libdir, "libgpucoord.so.0")))
        self.assertTrue(os.path.islink(os.path.join(self.libdir, "libgpucoord.so")))
        # The interposer is preloaded, never linked: a private folder, where run --auto
        # looks for it.
        self.assertTrue(os.path.exists(os.path.join(self.libdir, "gpucoord",
                                                    "libgpucoord-intercept.so")))
        # The Python client.
        init = find(self.stage, "__init__.py")
        self.assertIsNotNone(init)
        self.assertTrue(init.endswith(os.path.join("gpucoord", "__init__.py")), init)
        # gpusim is for tests and demos, never installed by default.
        for name in ["libnvidia-ml.so.1", "libcuda.so.1", "gpusim-ctl"]:
            self.assertIsNone(find(self.stage, name), name + " must not be installed")
        with open(find(self.stage, "gpucoordd.service")) as f:
            unit = f.read()
        self.assertIn("Type=notify", unit)
        self.assertIn("WatchdogSec=", unit)
        self.assertNotIn("@bindir@", unit)

    def test_man_pages_render(self):
        groff = shutil.which("groff")
        if groff is None:
            self.skipTest("groff is not installed")
        for name in ["gpucoord.1", "gpucoordd.8", "gpucoord.conf.5"]:
            out = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", find(self.stage, name)],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual((out.returncode, out.stderr), (0, ""), name)

    def test_pkg_config_client_takes_a_lease(self):
        env = dict(self.env)
        env["PKG_CONFIG_PATH"] = os.path.dirname(self.pc)
        env["PKG_CONFIG_SYSROOT_DIR"] = self.stage
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gpucoord"], env=env,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(flags.returncode, 0, flags.stderr)
        self.assertIn("-lgpucoord", flags.stdout)
        self.assertIn(self.stage, flags.stdout)  # the staged tree, not the build folder
        src = self.path("client.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = self.path("client")
        cc = subprocess.run(["cc", "-Wall", "-Werror", "-o", exe, src] + flags.stdout.split(),
                            capture_output=True, text=True, timeout=120)
        self.assertEqual(cc.returncode, 0, cc.stderr)

        # The staged daemon on gpusim, the staged library for the client.
        port = free_port()
        self.start([os.path.join(self.bindir, "gpucoordd"), "--listen", "127.0.0.1:%d" % port,
                    "--state-dir", self.path("state")], "gpucoordd")
        self.http = Http("http://127.0.0.1:%d" % port)
        wait_until(lambda: self._up(), timeout=15, what="staged gpucoordd /health")
        run_env = dict(self.env)
        run_env["LD_LIBRARY_PATH"] = self.libdir + ":" + SIM
        out = subprocess.run([exe, "http://127.0.0.1:%d" % port], env=run_env,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("granted lease-", out.stdout)
        self.assertIn("released 0", out.stdout)
        ldd = subprocess.run(["ldd", exe], env=run_env, capture_output=True, text=True)
        self.assertIn(os.path.join(self.libdir, "libgpucoord.so.0"), ldd.stdout)
        st, body = self.http.get("/v1/status")
        self.assertEqual(st, 200)
        self.assertEqual(body["counters"]["leases_granted"], 1)
        self.assertEqual(body["leases"], [])

    def _up(self):
        try:
            return self.http.get("/health", timeout=2)[0] == 200
        except OSError:
            return False


if __name__ == "__main__":
    unittest.main(verbosity=2)
