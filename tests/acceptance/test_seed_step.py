#!/usr/bin/env python3
"""The seed test step and the original client: automated_gpu_coordination_test.py run
against a started system (on this test's own ports) passes, and fails when the system
does not coordinate; /generate/ answers what the original client reads
(return_compressed=True: JSON with the PLY gzipped and base64-encoded) and, for a plain
form post, the raw PLY with the contract's headers."""
import base64
import gzip
import os
import subprocess
import sys
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from founding import REPO, FoundingSystem, ply_points  # noqa: E402

SCRIPT = os.path.join(REPO, "automated_gpu_coordination_test.py")


def run_script(system, *args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "GPUSIM_STATE")}  # a plain shell: HTTP only
    env.update(VALIDATION_PORT=str(system.ports["val"]), GENERATION_PORT=str(system.ports["gen"]),
               GPUCOORD_URL="http://127.0.0.1:%d" % system.ports["coord"])
    return subprocess.run([sys.executable, SCRIPT] + list(args), env=env, capture_output=True,
                          text=True, timeout=240, cwd=system.tmp)


class SeedTestScript(FoundingSystem):
    step_ms = 50

    def test_all_three_pass(self):
        out = run_script(self, "--generations", "3")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("3 of 3 tests passed", out.stdout)
        for line in ("PASS Validation unload/reload", "PASS Single generation with coordination",
                     "PASS Several generations in a row"):
            self.assertIn(line, " ".join(out.stdout.split()))
        self.assertIn("event resident_unloaded", out.stdout)
        self.assertIn("event resident_reloaded", out.stdout)
        self.assertEqual(self.oom_count(), 0)


class SeedTestScriptWithoutCoordination(FoundingSystem):
    """Coordination off brings the original OOM back: the script must say so."""

    coordinated = False

    def test_it_fails(self):
        out = run_script(self, "--generations", "1", "--timeout", "20")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        text = " ".join(out.stdout.split())
        self.assertIn("PASS Validation unload/reload", text)  # needs no coordinator
        self.assertIn("FAIL Single generation with coordination", text)
        self.assertIn("FAIL Several generations in a row", text)
        self.assertIn("out of memory", text.lower())  # the original failure, reported
        self.assertIn("1 of 3 tests passed", text)


class OriginalClient(FoundingSystem):
    def post_form(self, fields, headers=None):
        data = urllib.parse.urlencode(fields).encode()
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        return self.gen.call("POST", "/generate/", raw=data, headers=h, timeout=120)

    def test_return_compressed_answers_json_with_a_gzipped_ply(self):
        # What the original client does: requests.post(url, data={"prompt": ...,
        # "seed": ..., "return_compressed": True}).json()
        st, ans = self.post_form({"prompt": "a red cube", "seed": 42, "return_compressed": True})
        self.assertEqual(st, 200, ans)
        self.assertIsInstance(ans, dict, "not a JSON answer: %s" % repr(ans)[:100])
        self.assertEqual((ans["success"], ans["seed"], ans["prompt"], ans["compression"]),
                         (True, 42, "a red cube", "gzip"))
        self.assertGreater(ans["generation_time"], 0)
        ply = gzip.decompress(base64.b64decode(ans["data"]))
        self.assertEqual(len(ply), ans["ply_size_bytes"])
        self.assertEqual(len(base64.b64decode(ans["data"])), ans["compressed_size_bytes"])
        self.assertGreaterEqual(ply_points(ply), 7000)
        # The same generation, uncompressed: the same bytes.
        st, raw = self.post_form({"prompt": "a red cube", "seed": 42})
        self.assertEqual(st, 200)
        self.assertEqual(raw, ply)
        for off in ("False", "false", "0", ""):
            st, body = self.post_form({"prompt": "a red cube", "seed": 42,
                                       "return_compressed": off})
            self.assertEqual((st, body), (200, ply), off)
        st, body = self.post_form({"prompt": "a red cube", "return_compressed": "maybe"})
        self.assertEqual(st, 400, body)
        self.assertIn("return_compressed", body["message"])

    def test_raw_answer_has_the_contract_headers(self):
        for prompt, seed in (("a red cube", 42), ("a blue sphere", 7)):
            with self.subTest(prompt=prompt):
                st, headers, ply = self.raw_generate(prompt, seed)
                self.assertEqual(st, 200)
                self.assertEqual(headers["Content-Type"], "application/octet-stream")
                self.assertEqual(headers["Content-Disposition"],
                                 "attachment; filename=generated_model_%d.ply" % seed)
                self.assertEqual(headers["X-Generation-Seed"], str(seed))
                self.assertEqual(headers["X-Generation-Prompt"], prompt)
                self.assertEqual(headers["X-Model-Format"], "gaussian_splatting_ply")
                self.assertGreaterEqual(ply_points(ply), 7000)

    def raw_generate(self, prompt, seed):
        data = urllib.parse.urlencode({"prompt": prompt, "seed": seed}).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/generate/" % self.ports["gen"],
                                     data=data, method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read()


if __name__ == "__main__":
    unittest.main(verbosity=2)
