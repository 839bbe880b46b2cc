#!/usr/bin/env python3
"""gpucoord status, lease, residents, events and top against a real gpucoordd on
gpusim; every change the CLI makes is checked through the API."""
import json
import os
import select
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import (CLI, EXIT_COORD, EXIT_REFUSED, EXIT_USAGE, CliEnv,  # noqa: E402
                     wait_until)
from gctest import CTX, GiB, VAL_BYTES  # noqa: E402

# Fields that change between two reads of /v1/status.
VOLATILE = {"uptime_s", "held_s", "expires_in_s", "waited_s", "unloaded_for_s",
            "nvml_readings"}  # counts the engine's NVML readings: moves on its own


def strip_volatile(v):
    if isinstance(v, dict):
        return {k: strip_volatile(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [strip_volatile(x) for x in v]
    return v


class Status(CliEnv):
    def setUp(self):
        super().setUp()
        self.start_coordinator()
        self.res = self.start_resident("validation", "4.7Gi")
        st, self.lease_ = self.http.post("/v1/leases", {"holder": "trainer", "bytes": 2 * GiB,
                                                        "ttl_s": 60})
        self.assertEqual(st, 201, self.lease_)

    def test_table_shows_gpu_resident_lease(self):
        out = self.cli_ok("status").stdout
        gpu = self.gpu()
        self.assertIn(gpu["name"], out)
        self.assertIn("NVIDIA GeForce RTX 4090", out)
        gpu_row = [l for l in out.splitlines() if gpu["name"] in l][0]
        self.assertIn("23.99Gi", gpu_row)  # total 24564Mi
        self.assertIn("512Mi", gpu_row)    # reserve
        res_row = [l for l in out.splitlines() if l.strip().startswith("validation")][0]
        self.assertIn("loaded", res_row)
        self.assertIn("4.7Gi", res_row)
        self.assertIn(self.res.field("pid"), res_row)
        lease_row = [l for l in out.splitlines() if self.lease_["id"] in l][0]
        self.assertIn("trainer", lease_row)
        self.assertIn("granted", lease_row)
        self.assertIn("2Gi", lease_row)
        # The process table names the resident as the owner of its pid.
        proc_row = [l for l in out.splitlines()
                    if self.res.field("pid") in l.split() and "validation" in l]
        self.assertTrue(proc_row, out)
        for title in ("GPUS", "PROCESSES", "RESIDENTS", "LEASES", "QUEUE", "COUNTERS"):
            self.assertIn(title, out)
        self.assertIn("leases_granted 1", out)

    def test_json_is_v1_status_verbatim(self):
        mine = self.cli_json("status", "--json")
        st, api = self.http.get("/v1/status")
        self.assertEqual(strip_volatile(mine), strip_volatile(api))
        self.assertEqual(mine["residents"][0]["name"], "validation")
        self.assertEqual(mine["leases"][0]["id"], self.lease_["id"])

    def test_url_from_environment_and_unix_socket(self):
        env = dict(self.env, GPUCOORD_URL=self.url)
        self.assertIn("validation", self.cli_ok("status", url=False, env=env).stdout)
        out = self.cli_ok("status", "--json", url="unix:" + self.socket).stdout
        self.assertEqual(json.loads(out)["residents"][0]["name"], "validation")
        # --url after the verb works too.
        self.assertIn("validation", self.cli_ok("status", "--url", self.url, url=False).stdout)

    def test_top_once_renders_one_frame(self):
        out = self.cli_ok("top", "--once").stdout
        self.assertNotIn("\033[", out)  # no screen clearing
        self.assertIn("GPU 0", out)
        bar = [l for l in out.splitlines() if l.strip().startswith("[")][0]
        self.assertIn("#", bar)
        self.assertIn("validation", out)
        self.assertIn(self.lease_["id"], out)
        self.assertIn("EVENTS", out)
        self.assertIn("lease_granted", out)


class Leases(CliEnv):
    def test_acquire_show_heartbeat_release_by_hand(self):
        self.start_coordinator()
        r = self.cli_ok("lease", "acquire", "--need", "3Gi", "--holder", "manual", "--ttl", "60")
        lease_id = r.stdout.strip()
        self.assertRegex(lease_id, r"^lease-\d+$")
        self.assertIn("granted", r.stderr)
        l = self.lease(lease_id)
        self.assertEqual((l["state"], l["holder"], l["bytes"]), ("granted", "manual", 3 * GiB))
        self.assertIsNone(l["pid"])  # not tied to the short-lived CLI
        self.assertEqual(l["ttl_s"], 60)

        self.assertIn(lease_id, self.cli_ok("lease", "list").stdout)
        listed = self.cli_json("lease", "list", "--json")
        self.assertEqual([x["id"] for x in listed["leases"]], [lease_id])
        shown = self.cli_json("lease", "show", lease_id, "--json")
        self.assertEqual(shown["holder"], "manual")
        self.assertIn("manual", self.cli_ok("lease", "show", lease_id).stdout)

        time.sleep(0.2)
        before = self.lease(lease_id)["expires_in_s"]
        self.cli_ok("lease", "heartbeat", lease_id)
        self.assertGreater(self.lease(lease_id)["expires_in_s"], before)

        r = self.cli_ok("lease", "release", lease_id)
        self.assertIn("released", r.stdout)
        self.assertEqual(self.lease(lease_id)["state"], "released")
        self.assertEqual(self.active_lease_ids(), [])

        r = self.cli("lease", "heartbeat", lease_id)
        self.assertEqual(r.returncode, EXIT_COORD)
        self.assertIn("ended", r.stderr)
        r = self.cli("lease", "show", "lease-424242")
        self.assertEqual(r.returncode, EXIT_COORD)
        self.assertIn("no lease", r.stderr)

    def test_acquire_tied_to_a_pid_and_refusals(self):
        self.start_coordinator()
        sleeper = self.start(["sleep", "60"], "sleeper")
        out = self.cli_json("lease", "acquire", "--need", "1Gi", "--pid", str(sleeper.pid),
                            "--ttl", "0", "--json")
        self.assertEqual(out["pid"], sleeper.pid)
        self.assertEqual(out["state"], "granted")
        sleeper.kill()
        wait_until(lambda: self.lease(out["id"])["state"] == "expired", 2, what="lease expired")

        r = self.cli("lease", "acquire", "--need", "30Gi")
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn("30Gi needed", r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.cli("lease", "acquire", "--need", "1Gi", "--ttl", "0")
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)


class Residents(CliEnv):
    def test_unload_to_a_level(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4608Mi", "--chunk", "256Mi", "--levels",
                                  "full:4608Mi,reduced:2304Mi,off:0")
        rpid = int(res.field("pid"))
        r = self.cli_ok("unload", "validation", "--level", "reduced")
        self.assertIn("validation: unloaded at level reduced", r.stdout)
        self.assertEqual(self.proc_usage(rpid), CTX + 2304 * (1 << 20))
        r = self.cli("unload", "validation", "--level", "nope")
        self.assertEqual(r.returncode, EXIT_COORD)
        self.assertIn("its levels: full, reduced, off", r.stderr)
        r = self.cli("reload", "validation", "--level", "full")
        self.assertEqual(r.returncode, 2)
        r = self.cli_ok("reload", "validation")
        self.assertIn("validation: loaded at level full", r.stdout)

    def test_register_unload_reload_demand_delete(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi", register=False)
        rpid = int(res.field("pid"))
        r = self.cli_ok("residents", "register", "--name", "validation", "--protocol", "seed",
                        "--url", "http://127.0.0.1:%s" % res.field("port"), "--pid", str(rpid),
                        "--bytes", "4.7Gi", "--priority", "20", "--restore", "demand")
        self.assertIn("registered validation", r.stdout)
        v = self.resident("validation")
        self.assertEqual((v["pid"], v["bytes"], v["priority"], v["restore"], v["state"]),
                         (rpid, VAL_BYTES, 20, "demand", "loaded"))
        self.assertIn("validation", self.cli_ok("residents").stdout)
        self.assertEqual(self.cli_json("residents", "list", "--json")["residents"][0]["pid"], rpid)

        r = self.cli_ok("unload", "validation")
        self.assertIn("unloaded", r.stdout)
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        self.assertEqual(self.proc_usage(rpid), CTX)

        r = self.cli_ok("residents", "reload", "validation")
        self.assertIn("loaded", r.stdout)
        self.assertEqual(self.resident("validation")["state"], "loaded")
        self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)

        self.cli_ok("residents", "unload", "validation")
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        r = self.cli_ok("reload", "validation")
        self.assertEqual(self.resident("validation")["state"], "loaded")

        # Unloading twice is refused by the coordinator: exit 4 with its reason.
        self.cli_ok("unload", "validation")
        r = self.cli("unload", "validation")
        self.assertEqual(r.returncode, EXIT_COORD)
        self.assertIn("only a loaded resident can be unloaded", r.stderr)
        # restore=demand: it stays unloaded until demanded.
        r = self.cli_ok("residents", "demand", "validation", "--wait", "10")
        self.assertIn("loaded", r.stdout)
        self.assertEqual(self.resident("validation")["state"], "loaded")

        r = self.cli_ok("residents", "delete", "validation")
        self.assertEqual(self.http.get("/v1/residents/validation")[0], 404)
        r = self.cli("unload", "validation")
        self.assertEqual(r.returncode, EXIT_COORD)
        self.assertIn("no resident", r.stderr)

    def test_register_rejections(self):
        self.start_coordinator()
        r = self.cli("residents", "register", "--name", "x", "--protocol", "carrier-pigeon")
        self.assertEqual(r.returncode, EXIT_USAGE)
        r = self.cli("residents", "register", "--name", "x", "--protocol", "seed", "--bytes",
                     "4.7Qi")
        self.assertEqual(r.returncode, EXIT_USAGE)
        r = self.cli("residents", "register", "--name", "x", "--protocol", "seed")
        self.assertEqual(r.returncode, EXIT_COORD)  # the coordinator: seed needs a url
        self.assertIn("needs a 'url'", r.stderr)


class Events(CliEnv):
    def test_since_json_and_follow(self):
        self.start_coordinator()
        self.http.post("/v1/leases", {"holder": "a", "bytes": GiB, "ttl_s": 30})
        last = self.status()["last_event_seq"]
        lines = self.cli_ok("events", "--json").stdout.splitlines()
        evs = [json.loads(l) for l in lines]
        self.assertEqual(evs[-1]["seq"], last)
        self.assertEqual(evs[-1]["kind"], "lease_granted")
        self.assertEqual(self.cli_ok("events", "--since", str(last)).stdout, "")

        p = subprocess.Popen([CLI, "--url", self.url, "events", "--follow", "--json",
                              "--since", str(last)], env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)
            st, b = self.http.post("/v1/leases", {"holder": "b", "bytes": GiB, "ttl_s": 30})
            ready, _, _ = select.select([p.stdout], [], [], 5)
            self.assertTrue(ready, "no event line from --follow")
            ev = json.loads(p.stdout.readline())
            self.assertEqual((ev["seq"], ev["kind"], ev["subject"]),
                             (last + 1, "lease_granted", b["id"]))
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
