#!/usr/bin/env python3
"""The README's commands, run verbatim against the founding system started the way
the README says (./start_servers.sh), on the default ports."""
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from founding import REPO, FoundingSystem  # noqa: E402


def readme_block():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- readme-test: begin -->\s*```sh\n(.*?)```\s*<!-- readme-test: end -->",
                  text, re.S)
    assert m, "README.md has no readme-test block"
    return m.group(1)


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ReadmeCommands(FoundingSystem):
    def setUp(self):
        taken = [p for p in (10010, 10006, 8095) if not port_free(p)]
        if taken:
            self.fail("the README's ports %s are in use: stop what runs there first" % taken)
        self.system_env = {"GPUCOORD_PORT": "10010", "VALIDATION_PORT": "10006",
                           "GENERATION_PORT": "8095"}
        super().setUp()

    def test_commands_run_verbatim(self):
        block = readme_block()
        work = self.path("work")
        os.makedirs(work)
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work,
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        text = out.stdout
        for fragment in ('{"status":"ok"}', '"models_loaded":true', '"status":"healthy"',
                         '"score":', '"alignment_score":', '"success":true',
                         '"total_generations":', '"gpu_available":true',
                         '"models_unloaded":true', '"models_reloaded":true', '"gpus":'):
            self.assertIn(fragment, text)
        self.assertGreater(os.path.getsize(os.path.join(work, "cube.ply")), 7000 * 248)


if __name__ == "__main__":
    unittest.main(verbosity=2)
