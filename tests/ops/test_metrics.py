#!/usr/bin/env python3
"""/metrics passes `promtool check metrics` (exposition format and naming lint) with
leases, a queue, residents and an eviction in it, and the Grafana dashboard in
examples/grafana/ asks only for metrics the daemon exports, in valid PromQL
(checked by `promtool check rules` on the panels' queries)."""
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from gctest import GiB, GpuEnv  # noqa: E402

SOURCE = os.environ.get("GPUCOORD_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARD = os.path.join(SOURCE, "examples", "grafana", "gpucoord.json")
PROMTOOL = shutil.which("promtool")


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return dash, [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


class Metrics(GpuEnv):
    def setUp(self):
        super().setUp()
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        st, self.lease = self.http.post("/v1/leases", {"holder": "gen", "bytes": int(19.6 * GiB),
                                                       "ttl_s": 60, "wait_s": 10})
        self.assertEqual(st, 201, self.lease)
        st, queued = self.http.post("/v1/leases", {"holder": "late", "bytes": 10 * GiB,
                                                   "ttl_s": 60, "wait_s": 0})
        self.assertEqual(st, 202, queued)
        st, text = self.http.get("/metrics")
        self.assertEqual(st, 200)
        self.metrics = text.decode()

    def test_promtool_check_metrics(self):
        if PROMTOOL is None:
            self.skipTest("promtool is not installed (Debian package prometheus)")
        out = subprocess.run([PROMTOOL, "check", "metrics"], input=self.metrics,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual((out.returncode, out.stdout + out.stderr), (0, ""))

    def test_dashboard_uses_exported_metrics(self):
        exported = set()
        for line in self.metrics.splitlines():
            m = re.match(r"# TYPE (\w+) (\w+)", line)
            if m:
                exported.add(m.group(1))
                if m.group(2) == "histogram":
                    exported |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
        dash, exprs = dashboard_exprs()
        self.assertTrue(exprs)
        for title, expr in exprs:
            names = set(re.findall(r"\b(gpucoord_\w+)", expr))
            self.assertTrue(names, title)
            self.assertLessEqual(names, exported, "%s: %s" % (title, expr))
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        for p in dash["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            self.assertEqual(p["datasource"]["uid"], "${datasource}")

    def test_dashboard_queries_parse(self):
        if PROMTOOL is None:
            self.skipTest("promtool is not installed (Debian package prometheus)")
        _, exprs = dashboard_exprs()
        rules = ["groups:", "  - name: grafana-dashboard", "    rules:"]
        for i, (_, expr) in enumerate(exprs):
            # Grafana's variables, as Grafana would fill them in.
            e = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
            rules.append("      - record: gpucoord:dashboard_query_%d" % i)
            rules.append("        expr: %s" % json.dumps(e))
        path = self.path("rules.yml")
        with open(path, "w") as f:
            f.write("\n".join(rules) + "\n")
        out = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("SUCCESS: %d rules found" % len(exprs), out.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
