#!/usr/bin/env python3
"""Every configuration in examples/ starts the coordinator (the command line
overrides its state_dir and listen address) with the residents it declares."""
import configparser
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import GpuEnv  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


class Examples(GpuEnv):
    def test_each_example_starts_with_its_residents(self):
        files = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".ini"))
        self.assertGreaterEqual(len(files), 3)
        for name in files:
            with self.subTest(example=name):
                path = os.path.join(EXAMPLES, name)
                with open(path) as f:
                    text = f.read()
                ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
                ini.read_string(text)
                declared = {s.split(".", 1)[1]: ini[s] for s in ini.sections()
                            if s.startswith("resident.")}
                self.assertTrue(declared, name)
                self.start_coordinator(config=text, state_dir=self.path("state-" + name))
                st, body = self.http.get("/v1/residents")
                self.assertEqual(st, 200)
                got = {r["name"]: r for r in body["residents"]}
                self.assertEqual(sorted(got), sorted(declared))
                for rname, sec in declared.items():
                    self.assertEqual(got[rname]["protocol"], sec["protocol"])
                    if "model" in sec:
                        self.assertEqual(got[rname]["model"], sec["model"])
                self.coord.stop()
                self.assertEqual(self.coord.p.returncode, 0, name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
