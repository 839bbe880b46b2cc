"""founding - start and drive the founding system (./start_servers.sh) in tests."""
import base64
import json
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from gctest import BUILD, REAL_GPU, GpuEnv, Http, free_port, wait_until  # noqa: E402,F401

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLY_POINT_FLOATS = 62


class FoundingSystem(GpuEnv):
    """One founding system per test, on its own ports, run dir and gpusim state."""

    coordinated = True
    step_ms = 0
    system_env = {}

    def setUp(self):
        # GPUCOORD_TEST_PIDS=foreign|unavailable|zero: NVML's process list as a container
        # without the host's PID namespace sees it (gpusim's GPUSIM_PIDS).
        self.test_pids = os.environ.get("GPUCOORD_TEST_PIDS", "") if not REAL_GPU else ""
        if self.test_pids:
            self.extra_env = dict(self.extra_env, GPUSIM_PIDS=self.test_pids)
        super().setUp()
        self.ports = {"coord": free_port(), "val": free_port(), "gen": free_port()}
        for key, var in (("coord", "GPUCOORD_PORT"), ("val", "VALIDATION_PORT"),
                         ("gen", "GENERATION_PORT")):
            if var in self.system_env:
                self.ports[key] = int(self.system_env[var])
        self.sys_env = dict(self.env)
        self.sys_env.update({
            "GPUCOORD_PORT": str(self.ports["coord"]),
            "VALIDATION_PORT": str(self.ports["val"]),
            "GENERATION_PORT": str(self.ports["gen"]),
            "GPUCOORD_RUN_DIR": self.path("run"),
            "GPUCOORD_LOG_DIR": self.tmp,
            "GPUCOORD_BUILD_DIR": BUILD,
            "GPUCOORD_FORCE_SIM": "0" if REAL_GPU else "1",
            "GPUCOORD_NO_BUILD": "1",
            "GENERATION_STEP_MS": str(self.step_ms),
        })
        if not self.coordinated:
            self.sys_env["GPUCOORD_DISABLE"] = "1"
        self.sys_env.update(self.system_env)
        out = subprocess.run([os.path.join(REPO, "start_servers.sh"), "--detach"],
                             env=self.sys_env, capture_output=True, text=True, timeout=180)
        self.start_output = out.stdout + out.stderr
        self.assertEqual(out.returncode, 0, self.start_output)
        self.http = Http("http://127.0.0.1:%d" % self.ports["coord"])
        self.val = Http("http://127.0.0.1:%d" % self.ports["val"])
        self.gen = Http("http://127.0.0.1:%d" % self.ports["gen"])
        if self.coordinated:
            # Up means loaded (start_servers.sh waits for the models); the coordinator
            # records it once NVML has verified the reload.
            wait_until(lambda: self.resident_state() == "loaded", 10,
                       what="the validation models' first load, verified")
            if self.test_pids not in ("", "host"):
                wait_until(lambda: self.gpu()["attribution"] == "device", 10,
                           what="device attribution under GPUSIM_PIDS=" + self.test_pids)

    def tearDown(self):
        subprocess.run([os.path.join(REPO, "start_servers.sh"), "stop"], env=self.sys_env,
                       capture_output=True, timeout=60)
        super().tearDown()

    def pid(self, name):
        with open(os.path.join(self.path("run"), name + ".pid")) as f:
            return int(f.read())

    def oom_count(self):
        """gpusim counts every OOM it answered; a real driver tells nobody but the
        caller, so there the servers' own answers (checked by each test) are the proof."""
        if REAL_GPU:
            return 0
        return self.sim_status()["devices"][0]["oom_count"]

    def generate(self, prompt="a red cube", seed=42, timeout=120, accept_json=False):
        boundary = "gpucoordtestboundary"
        body = ("--%s\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n%s\r\n"
                "--%s\r\nContent-Disposition: form-data; name=\"seed\"\r\n\r\n%d\r\n--%s--\r\n"
                % (boundary, prompt, boundary, seed, boundary)).encode()
        headers = {"Content-Type": "multipart/form-data; boundary=" + boundary}
        if accept_json:
            headers["Accept"] = "application/json"
        return self.gen.call("POST", "/generate/", raw=body, headers=headers, timeout=timeout)

    def validate(self, ply, prompt="a red cube", preview=False, timeout=120):
        return self.val.post("/validate_txt_to_3d_ply/", {
            "prompt": prompt, "data": base64.b64encode(ply).decode(), "compression": 0,
            "generate_preview": preview}, timeout=timeout)

    def resident_state(self):
        return self.resident("validation")["state"]


def ply_points(ply):
    """Checks the binary PLY layout of the contract; returns the point count."""
    end = ply.index(b"end_header\n") + len(b"end_header\n")
    header = ply[:end].decode().split("\n")
    assert header[0] == "ply" and header[1] == "format binary_little_endian 1.0", header[:2]
    count = int([l for l in header if l.startswith("element vertex")][0].split()[2])
    props = [l.split()[2] for l in header if l.startswith("property float")]
    want = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] +
            ["f_rest_%d" % i for i in range(45)] +
            ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    assert props == want, props
    assert len(ply) - end == count * PLY_POINT_FLOATS * 4, (len(ply) - end, count)
    xs = struct.unpack_from("<%df" % PLY_POINT_FLOATS, ply, end)
    assert all(v == v for v in xs)  # no NaN
    return count


def json_body(text):
    return json.loads(text) if isinstance(text, (bytes, str)) else text
