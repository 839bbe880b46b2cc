#!/usr/bin/env python3
"""Levels end to end on gpusim: a resident that declares levels is moved down only as
far as a lease needs, verified through NVML at the level it reached, and restored to
its first level; registration and unload-by-hand check what they are given."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import CTX, GEN_BYTES, GiB, MiB, GpuEnv, wait_until  # noqa: E402

LEVELS = "full:4608Mi,reduced:2304Mi,off:0"
FULL, REDUCED = 4608 * MiB, 2304 * MiB


class Levels(GpuEnv):
    def start_leveled(self, name="validation", *args, register=True):
        return self.start_resident(name, "4608Mi", "--chunk", "256Mi", "--levels", LEVELS,
                                   *args, register=register)

    def test_a_lease_costs_one_level_and_the_resident_comes_back(self):
        self.start_coordinator()
        res = self.start_leveled()
        rpid = int(res.field("pid"))
        r = self.resident("validation")
        self.assertEqual(r["level"], "full")
        self.assertEqual([lv["name"] for lv in r["levels"]], ["full", "reduced", "off"])
        self.assertEqual([lv["bytes"] for lv in r["levels"]], [FULL, REDUCED, 0])

        # 19.6Gi beside 4.5Gi does not fit on a 24Gi card; beside 2.25Gi it does.
        st, lease = self.http.post("/v1/leases", {"holder": "generation", "bytes": GEN_BYTES,
                                                  "ttl_s": 30, "wait_s": 20})
        self.assertEqual(st, 201, lease)
        self.assertEqual(lease["evicted"], ["validation"])
        self.assertEqual(self.proc_usage(rpid), CTX + REDUCED)
        r = self.resident("validation")
        self.assertEqual((r["state"], r["level"]), ("unloaded", "reduced"))
        ev = [e for e in self.events() if e["kind"] == "resident_unloaded"]
        self.assertIn("to level 'reduced'", ev[-1]["detail"])
        self.assertIn("2.25Gi freed", ev[-1]["detail"])

        st, _ = self.http.delete("/v1/leases/" + lease["id"])
        self.assertEqual(st, 200)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 10,
                   what="validation back at full")
        self.assertEqual(self.resident("validation")["level"], "full")
        self.assertEqual(self.proc_usage(rpid), CTX + FULL)
        ev = [e for e in self.events() if e["kind"] == "resident_reloaded"]
        self.assertIn("to level 'full' from 'reduced'", ev[-1]["detail"])

    def test_a_larger_lease_takes_it_all_the_way(self):
        self.start_coordinator()
        res = self.start_leveled()
        rpid = int(res.field("pid"))
        st, lease = self.http.post("/v1/leases", {"holder": "big", "bytes": 22 * GiB,
                                                  "ttl_s": 30, "wait_s": 20})
        self.assertEqual(st, 201, lease)
        self.assertEqual(self.proc_usage(rpid), CTX)
        self.assertEqual(self.resident("validation")["level"], "off")

    def test_unload_by_hand_to_a_level_then_further_then_reload(self):
        self.start_coordinator()
        res = self.start_leveled()
        rpid = int(res.field("pid"))
        st, r = self.http.post("/v1/residents/validation/unload", {"level": "reduced"})
        self.assertEqual(st, 200, r)
        self.assertEqual((r["state"], r["level"]), ("unloaded", "reduced"))
        self.assertEqual(self.proc_usage(rpid), CTX + REDUCED)
        # The same level again changes nothing; a fuller one is refused.
        st, r = self.http.post("/v1/residents/validation/unload", {"level": "reduced"})
        self.assertEqual((st, r["level"]), (200, "reduced"))
        st, body = self.http.post("/v1/residents/validation/unload", {"level": "full"})
        self.assertEqual(st, 409, body)
        self.assertIn("a reload brings it back", body["message"])
        # No level: all the way.
        st, r = self.http.post("/v1/residents/validation/unload")
        self.assertEqual((st, r["level"]), (200, "off"))
        self.assertEqual(self.proc_usage(rpid), CTX)
        st, r = self.http.post("/v1/residents/validation/reload")
        self.assertEqual((st, r["level"], r["state"]), (200, "full", "loaded"))
        self.assertEqual(self.proc_usage(rpid), CTX + FULL)

    def test_bad_levels_are_refused_and_change_nothing(self):
        self.start_coordinator()
        base = {"name": "x", "protocol": "seed", "url": "http://127.0.0.1:9"}
        bad = [
            ([{"name": "a", "bytes": 1}], "2 to 8"),
            ([{"name": "l%d" % i, "bytes": 100 - i} for i in range(9)], "2 to 8"),
            ([{"name": "a", "bytes": 5}, {"name": "b", "bytes": 5}], "fewer than"),
            ([{"name": "a", "bytes": 5}, {"name": "b", "bytes": 9}], "fewer than"),
            ([{"name": "a b", "bytes": 5}, {"name": "b", "bytes": 0}], "name must match"),
            ([{"name": "a" * 33, "bytes": 5}, {"name": "b", "bytes": 0}], "levels[0]"),
            ([{"name": "a", "bytes": 5}, {"name": "a", "bytes": 0}], "used twice"),
            ([{"name": "a", "bytes": "lots"}, {"name": "b", "bytes": 0}], "levels[0]"),
            ([{"name": "a", "bytes": 5, "x": 1}, {"name": "b", "bytes": 0}], "unknown field"),
            ("full", "2 to 8"),
        ]
        for levels, why in bad:
            st, body = self.http.post("/v1/residents", dict(base, levels=levels))
            self.assertEqual(st, 400, (levels, body))
            self.assertIn(why, body["message"], levels)
        st, body = self.http.post("/v1/residents", dict(base, bytes=7, levels=[
            {"name": "a", "bytes": 5}, {"name": "b", "bytes": 0}]))
        self.assertEqual(st, 400, body)
        self.assertIn("first level", body["message"])
        st, body = self.http.post("/v1/residents", {
            "name": "p", "protocol": "process", "command": "true", "levels": [
                {"name": "a", "bytes": 5}, {"name": "b", "bytes": 2}, {"name": "c", "bytes": 0}]})
        self.assertEqual(st, 400, body)
        self.assertIn("no levels between", body["message"])
        st, body = self.http.get("/v1/residents")
        self.assertEqual(body["residents"], [])
        # Size strings are accepted as elsewhere; without levels: loaded and off.
        st, r = self.http.post("/v1/residents", dict(base, loaded=False, levels=[
            {"name": "big", "bytes": "2Gi"}, {"name": "small", "bytes": "512Mi"},
            {"name": "none", "bytes": 0}]))
        self.assertEqual(st, 201, r)
        self.assertEqual(r["bytes"], 2 * GiB)
        self.assertEqual(r["level"], "none")
        st, r = self.http.post("/v1/residents", dict(base, name="y", bytes="1Gi"))
        self.assertEqual(st, 201, r)
        self.assertEqual(r["levels"], [{"name": "loaded", "bytes": GiB},
                                       {"name": "off", "bytes": 0}])
        self.assertEqual(r["level"], "loaded")
        # Registered where it is now: part-way down is unloaded at that level.
        three = [{"name": "big", "bytes": "2Gi"}, {"name": "small", "bytes": "512Mi"},
                 {"name": "none", "bytes": 0}]
        st, r = self.http.post("/v1/residents", dict(base, name="z", levels=three,
                                                     level="small"))
        self.assertEqual((st, r["state"], r["level"]), (201, "unloaded", "small"), r)
        st, r = self.http.post("/v1/residents", dict(base, name="z", levels=three, level="big"))
        self.assertEqual((st, r["state"], r["level"]), (201, "loaded", "big"), r)
        for extra, why in (({"level": "huge"}, "one of its levels"),
                           ({"level": "big", "loaded": False}, "disagree")):
            st, body = self.http.post("/v1/residents", dict(base, name="w", levels=three,
                                                            **extra))
            self.assertEqual(st, 400, body)
            self.assertIn(why, body["message"])
        st, body = self.http.post("/v1/residents/y/unload", {"level": "nope"})
        self.assertEqual(st, 400, body)
        self.assertIn("its levels: loaded, off", body["message"])
        st, body = self.http.post("/v1/residents/y/unload", {"levle": "off"})
        self.assertEqual(st, 400, body)
        self.assertEqual(self.resident("y")["state"], "loaded")

    def test_the_level_survives_a_coordinator_restart(self):
        self.start_coordinator()
        res = self.start_leveled()
        rpid = int(res.field("pid"))
        st, r = self.http.post("/v1/residents/validation/unload", {"level": "reduced"})
        self.assertEqual(st, 200, r)
        self.coord.stop()
        self.start_coordinator(state_dir=self.state_dir)
        r = self.resident("validation")
        self.assertEqual(r["level"], "reduced")
        self.assertEqual([lv["name"] for lv in r["levels"]], ["full", "reduced", "off"])
        self.assertEqual(self.proc_usage(rpid), CTX + REDUCED)
        st, r = self.http.post("/v1/residents/validation/reload")
        self.assertEqual((st, r["level"]), (200, "full"))

    def test_http_protocol_fills_in_the_level(self):
        self.start_coordinator()
        res = self.start_leveled("svc", register=False)
        rpid = int(res.field("pid"))
        st, r = self.http.post("/v1/residents", {
            "name": "svc", "protocol": "http", "url": "http://127.0.0.1:%s" % res.field("port"),
            "pid": rpid, "unload": "POST /unload_models/?level={level}",
            "reload": "POST /reload_models/", "health": "GET /health/",
            "levels": [{"name": "full", "bytes": "4608Mi"}, {"name": "reduced",
                                                             "bytes": "2304Mi"},
                       {"name": "off", "bytes": 0}]})
        self.assertEqual(st, 201, r)
        st, r = self.http.post("/v1/residents/svc/unload", {"level": "reduced"})
        self.assertEqual((st, r["level"]), (200, "reduced"), r)
        self.assertEqual(self.proc_usage(rpid), CTX + REDUCED)
        st, r = self.http.post("/v1/residents/svc/unload")
        self.assertEqual((st, r["level"]), (200, "off"), r)
        self.assertEqual(self.proc_usage(rpid), CTX)


if __name__ == "__main__":
    unittest.main(verbosity=2)
