#!/usr/bin/env python3
"""Bad input to every endpoint of the founding servers: each gets a 4xx with a
reason, and both servers keep serving. Also the external pipeline stage."""
import base64
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from founding import BUILD, REAL_GPU, FoundingSystem, wait_until  # noqa: E402
from gctest import GpuEnv, Http  # noqa: E402

MULTIPART = "multipart/form-data; boundary=XyZ"


def multipart(**fields):
    parts = []
    for k, v in fields.items():
        parts.append('--XyZ\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k, v))
    return ("".join(parts) + "--XyZ--\r\n").encode()


class ServersBadInput(FoundingSystem):
    def still_serving(self):
        self.assertEqual(self.val.get("/health/")[1]["status"], "healthy")
        self.assertEqual(self.gen.get("/health/")[1]["status"], "healthy")
        st, ply = self.generate("a red cube", seed=1)
        self.assertEqual(st, 200)
        return ply

    def assert_4xx(self, answer, fragment=None, status=400):
        st, body = answer
        self.assertEqual(st, status, body)
        self.assertIn("detail", body)
        if fragment:
            self.assertIn(fragment, body["detail"])

    def test_generation_bad_input(self):
        post = lambda raw, ctype=MULTIPART: self.gen.call(
            "POST", "/generate/", raw=raw, headers={"Content-Type": ctype}, timeout=30)
        self.assert_4xx(post(multipart(seed="3")), "prompt")                 # missing prompt
        self.assert_4xx(post(multipart(prompt="")), "prompt")                # empty prompt
        self.assert_4xx(post(multipart(prompt="x" * 1025)), "1024")          # too long
        self.assert_4xx(post(multipart(prompt="\u00e9" * 1025)), "1024")     # in characters
        self.assert_4xx(post(multipart(prompt="a cube", seed="")), "seed")   # not random
        self.assert_4xx(post(b"prompt=a%20cube&seed=%20", "application/x-www-form-urlencoded"),
                        "seed")
        self.assert_4xx(post(multipart(prompt="a cube", seed="forty-two")), "seed")
        self.assert_4xx(post(multipart(prompt="a cube", seed="-1")), "seed")
        self.assert_4xx(post(multipart(prompt="a cube", seed="1" * 40)), "seed")
        self.assert_4xx(post(b"prompt=a%20cube&seed=1e3",
                             "application/x-www-form-urlencoded"), "seed")
        self.assert_4xx(post(b"--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nno end"))
        self.assert_4xx(post(b"{}", "application/json"))
        ten_mb = b"prompt=" + b"a" * (10 << 20)
        st, body = post(ten_mb, "application/x-www-form-urlencoded")
        self.assertEqual(st, 413, body)
        self.assert_4xx(self.gen.get("/generate/"), status=405)
        self.assert_4xx(self.gen.get("/nope"), status=404)
        st, status = self.gen.get("/status/")
        self.assertEqual(status["metrics"]["total_generations"], 0)  # none reached the GPU
        self.still_serving()

    def test_validation_bad_input(self):
        ply = self.still_serving()
        good = base64.b64encode(ply).decode()
        v = lambda body: self.val.post("/validate_txt_to_3d_ply/", body, timeout=30)
        self.assert_4xx(v({"data": good}), "prompt")
        self.assert_4xx(v({"prompt": "a cube"}), "data")
        self.assert_4xx(v({"prompt": 5, "data": good}), "prompt")
        # The limit is 1024 characters, not bytes: 1025 one-byte characters are too many,
        # 1024 of two bytes each are not.
        self.assert_4xx(v({"prompt": "x" * 1025, "data": good}), "1024 characters")
        self.assert_4xx(v({"prompt": "\u00e9" * 1025, "data": good}), "1024 characters")
        self.assertEqual(v({"prompt": "\u00e9" * 1024, "data": good})[0], 200)
        self.assert_4xx(v({"prompt": "a cube", "data": "!!!not base64!!!"}), "base64")
        self.assert_4xx(v({"prompt": "a cube", "data": good[:-7]}), "base64")
        truncated = base64.b64encode(ply[: len(ply) // 2]).decode()
        self.assert_4xx(v({"prompt": "a cube", "data": truncated}), "PLY")
        self.assert_4xx(v({"prompt": "a cube", "data": base64.b64encode(b"ply\nformat ascii 1.0\n"
                                                                       b"end_header\n").decode()}),
                        "PLY")
        self.assert_4xx(v({"prompt": "a cube", "data": base64.b64encode(b"garbage" * 99).decode()}),
                        "PLY")
        self.assert_4xx(v({"prompt": "a cube", "data": good, "compression": 2}), "compression")
        self.assert_4xx(v({"prompt": "a cube", "data": good, "compression": "zip"}),
                        "compression")
        self.assert_4xx(v({"prompt": "a cube", "data": good, "extra": 1}), "unknown field")
        self.assert_4xx(self.val.call("POST", "/validate_txt_to_3d_ply/", raw=b"{not json",
                                      headers={"Content-Type": "application/json"}), "JSON")
        self.assert_4xx(self.val.get("/unload_models/"), status=405)
        self.assert_4xx(self.val.get("/nothing/"), status=404)
        # A hostile connection does not take it down.
        with socket.create_connection(("127.0.0.1", self.ports["val"]), timeout=5) as s:
            s.sendall(b"POST /validate_txt_to_3d_ply/ HTTP/1.1\r\nContent-Length: 999999999\r\n"
                      b"\r\n{")
        # The structural rules give 0, not an error.
        st, score = v({"prompt": "a cube", "data": good})
        self.assertEqual(st, 200)
        self.still_serving()


class ValidationMemoryBudget(GpuEnv):
    """The validation server's memory grows with the bodies it holds: past
    VALIDATION_BODIES_MAX of them at once it answers 503 without keeping the body."""

    def test_bodies_past_the_budget_wait_for_room(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(self.env, GPUCOORD_DISABLE="1", VALIDATION_MODEL_BYTES="64Mi",
                   VALIDATION_BODY_MAX="1Mi", VALIDATION_BODIES_MAX="1536Ki")
        self.start([os.path.join(BUILD, "validation-server"), "--host", "127.0.0.1", "--port",
                    str(port)], "validation", env=env)
        val = Http("http://127.0.0.1:%d" % port)
        wait_until(lambda: self._up(val), 15, what="validation server")
        # Not base64 of a PLY: a 400 once it is read, a 503 when it is not.
        junk = ('{"prompt":"a cube","data":"' + "A" * 600000 + '"}').encode()
        post = lambda: val.call("POST", "/validate_txt_to_3d_ply/", raw=junk, timeout=30,
                                headers={"Content-Type": "application/json"})
        # A 1 MiB upload under way holds 1 MiB of the 1.5 MiB.
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(b"POST /validate_txt_to_3d_ply/ HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
                     b'{"prompt":')
        time.sleep(0.5)  # its headers are read
        st, body = post()
        self.assertEqual(st, 503, body)
        self.assertIn("retry later", body["message"])
        st, body = val.post("/validate_txt_to_3d_ply/", {"prompt": "a cube"})
        self.assertEqual(st, 400, body)  # small bodies still fit
        slow.close()  # its room comes back
        wait_until(lambda: post()[0] == 400, 10, what="room for the upload")

    @staticmethod
    def _up(http):
        try:
            return http.get("/health/", timeout=2)[0] == 200
        except OSError:
            return False


class ExternalPipeline(FoundingSystem):
    """A real pipeline plugs in as a command stage (GENERATION_PIPELINE_CMD)."""

    gen_proc = None

    def restart_generation(self, env):
        if self.gen_proc is not None:
            self.gen_proc.stop()
        else:
            os.kill(self.pid("generation-server"), signal.SIGTERM)
        wait_until(lambda: not self._up(), 10, what="generation server stopped")
        e = dict(self.sys_env, GPUCOORD_URL="http://127.0.0.1:%d" % self.ports["coord"])
        if not REAL_GPU:
            e["LD_LIBRARY_PATH"] = os.path.join(BUILD, "sim")
        e.update(env)
        self.gen_proc = self.start([os.path.join(BUILD, "generation-server"), "--port",
                                    str(self.ports["gen"])], "generation-server-2", env=e)
        wait_until(self._up, 10, what="generation server restarted")

    def _up(self):
        try:
            return self.gen.get("/health/", timeout=1)[0] == 200
        except OSError:
            return False

    def test_command_stage_under_a_lease(self):
        st, ply = self.generate("a green cone", seed=5)
        self.assertEqual(st, 200)
        made = self.path("made.ply")
        with open(made, "wb") as f:
            f.write(ply)
        # The "pipeline": checks it has a lease, records its inputs, writes its PLY.
        self.restart_generation({"GENERATION_PIPELINE_CMD":
                                 'test -n "$GPUCOORD_LEASE_ID" && '
                                 'echo "$GEN_PROMPT/$GEN_SEED/$CUDA_VISIBLE_DEVICES" '
                                 '> %s && cp %s "$GEN_OUTPUT"' % (self.path("seen"), made),
                                 "CUDA_VISIBLE_DEVICES": "0"})
        st, out = self.generate("a cone by command", seed=9)
        self.assertEqual(st, 200, out)
        self.assertEqual(out, ply)
        # Bound to the granted GPU by its UUID, whatever the server's own value said.
        uuid = self.http.get("/v1/gpus")[1]["gpus"][0]["uuid"]
        with open(self.path("seen")) as f:
            self.assertEqual(f.read().strip(), "a cone by command/9/" + uuid)
        kinds = [e["kind"] for e in self.events()]
        self.assertGreaterEqual(kinds.count("lease_granted"), 2)
        self.assertEqual(self.http.get("/v1/leases")[1]["leases"], [])
        # A failing command is a 500 with the reason; its lease is released all the same.
        self.restart_generation({"GENERATION_PIPELINE_CMD": "exit 3"})
        st, body = self.generate("anything", seed=1)
        self.assertEqual(st, 500, body)
        self.assertIn("exit 3", body["detail"])
        self.assertEqual(self.http.get("/v1/leases")[1]["leases"], [])

    def test_a_timed_out_command_leaves_nothing_on_the_gpu(self):
        # The command starts a helper that holds GPU memory, then hangs. On the timeout
        # the whole process group dies: the helper does not outlive the lease.
        hold = os.path.join(BUILD, "src", "tools", "gpu-hold")
        self.restart_generation({"GENERATION_PIPELINE_CMD": "%s --bytes 1Gi & sleep 60" % hold,
                                 "GENERATION_PIPELINE_TIMEOUT_S": "2",
                                 "GENERATION_PEAK_BYTES": "2Gi"})
        st, body = self.generate("anything", seed=1)
        self.assertEqual(st, 504, body)
        self.assertEqual(self.http.get("/v1/leases")[1]["leases"], [])
        servers = {self.pid("validation-server"), self.gen_proc.pid}
        wait_until(lambda: {p["pid"] for p in self.gpu()["processes"]} <= servers, 5,
                   what="the command's helper gone from the GPU")


if __name__ == "__main__":
    unittest.main(verbosity=2)
