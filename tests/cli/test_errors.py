#!/usr/bin/env python3
"""gpucoord's usage errors (exit 2, nothing sent), an unreachable coordinator
(exit 4, a clear line) and --help/--version for every verb."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import EXIT_COORD, EXIT_USAGE, CliEnv, free_port  # noqa: E402

VERBS = ["status", "run", "lease", "residents", "unload", "reload", "events", "top"]


class UsageErrors(CliEnv):
    def assert_usage(self, r, fragment=None):
        self.assertEqual(r.returncode, EXIT_USAGE, "rc %d: %s" % (r.returncode, r.stderr))
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 2, r.stderr)  # the reason and a --help hint
        self.assertIn("--help", lines[1])
        if fragment:
            self.assertIn(fragment, lines[0])
        self.assertEqual(r.stdout, "")

    def test_bad_sizes_and_arguments_send_nothing(self):
        self.start_coordinator()
        before = self.status()
        marker = self.path("ran")
        cases = [
            (["run", "--need", "12Qi", "--", "touch", marker], "'12Qi' is not a size"),
            (["run", "--need", "-5Gi", "--", "touch", marker], "'-5Gi' is not a size"),
            (["run", "--need", "99999999999999Ti", "--", "touch", marker], "is not a size"),
            (["run", "--need", "", "--", "touch", marker], "'' is not a size"),
            (["run", "--need", "0", "--", "touch", marker], "more than 0"),
            (["run", "--need", "1Gi", "--wait", "soon", "--", "touch", marker], "--wait"),
            (["run", "--need", "1Gi", "--gpu", "first", "--", "touch", marker], "--gpu"),
            (["run", "--need", "1Gi", "--holder", "a b", "--", "touch", marker], "--holder"),
            (["run", "--need", "1Gi", "--bogus", "--", "touch", marker], "unknown option"),
            (["run", "--", "touch", marker], "--need SIZE is required"),
            (["run", "--need", "1Gi"], "no command"),
            (["run", "--need"], "needs a value"),
            (["lease", "acquire", "--need", "1.5.5Gi"], "is not a size"),
            (["lease", "release"], "missing the lease ID"),
            (["lease", "release", "lease-1", "lease-2"], "unexpected argument 'lease-2'"),
            (["lease", "heartbeat", "../v1/residents"], "lease ID: '../v1/residents' is not"),
            (["residents", "delete", "a/b"], "resident's NAME: 'a/b' is not a valid name"),
            (["lease", "frobnicate"], "unknown lease command"),
            (["residents", "unload"], "missing the resident"),
            (["residents", "register", "--name", "v"], "required"),
            (["events", "--since", "-1"], "--since"),
            (["top", "--interval", "0"], "--interval"),
            (["status", "--verbose"], "unknown option '--verbose'"),
            (["frobnicate"], "unknown verb"),
        ]
        dead = "http://127.0.0.1:%d" % free_port()
        for args, fragment in cases:
            with self.subTest(args=args):
                self.assert_usage(self.cli(*args), fragment)
                # Nothing is sent: the same error with no coordinator at all.
                self.assert_usage(self.cli(*args, url=dead), fragment)
        self.assertFalse(os.path.exists(marker))
        after = self.status()
        for counters in (after["counters"], before["counters"]):
            counters.pop("nvml_readings")  # the engine's readings: they move on their own
        self.assertEqual(after["counters"], before["counters"])
        self.assertEqual(after["leases"], [])

    def test_no_verb_prints_usage(self):
        r = self.cli(url=False)
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("usage: gpucoord", r.stderr)

    def test_bad_url(self):
        r = self.cli("status", url="ftp://example")
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("bad coordinator URL 'ftp://example'", r.stderr)


class Unreachable(CliEnv):
    def test_exit_4_with_a_clear_line(self):
        url = "http://127.0.0.1:%d" % free_port()
        marker = self.path("ran")
        for args in (["status"], ["status", "--json"], ["run", "--need", "1Gi", "--", "touch",
                                                        marker],
                     ["lease", "acquire", "--need", "1Gi"], ["lease", "list"],
                     ["residents"], ["unload", "validation"], ["events"], ["top", "--once"]):
            with self.subTest(args=args):
                r = self.cli(*args, url=url)
                self.assertEqual(r.returncode, EXIT_COORD, r.stderr)
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertTrue(lines[0].startswith(
                    "gpucoord: cannot reach the coordinator at %s (" % url), lines[0])
                self.assertEqual(r.stdout, "")
        self.assertFalse(os.path.exists(marker))
        r = self.cli("status", url="unix:" + self.path("no.sock"))
        self.assertEqual(r.returncode, EXIT_COORD)
        self.assertIn("cannot reach the coordinator at unix:", r.stderr)


class Help(CliEnv):
    def test_help_and_version(self):
        r = self.cli("--help", url=False)
        self.assertEqual(r.returncode, 0)
        for verb in VERBS:
            self.assertIn("  " + verb + " ", r.stdout)
        self.assertIn("Exit codes", r.stdout)
        for verb in VERBS:
            with self.subTest(verb=verb):
                r = self.cli(verb, "--help", url=False)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("usage: gpucoord", r.stdout)
                self.assertEqual(self.cli("help", verb, url=False).stdout, r.stdout)
        r = self.cli("--version", url=False)
        self.assertEqual((r.returncode, r.stdout.split()[0]), (0, "gpucoord"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
