#!/usr/bin/env python3
"""The coordinator SIGKILLed at each step of a swap, then restarted on the same state
directory: it re-adopts leases whose holders live, expires the others, and restores
every resident it left unloaded. Nothing is lost; gpusim never reports an OOM."""
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import BUILD, CTX, GEN_BYTES, VAL_BYTES, GpuEnv, wait_until  # noqa: E402


def alive(pid):
    """True while pid runs (a zombie has exited)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class CoordinatorCrash(GpuEnv):
    def restart(self):
        port = self.coord_port
        self.coord.signal(signal.SIGKILL)
        self.coord.p.wait(timeout=5)
        self.start_coordinator(port=port, state_dir=self.state_dir)

    def request_in_background(self, body):
        """POST a lease in a thread (it may die with the coordinator); returns the thread."""
        out = {}

        def run():
            try:
                out["answer"] = self.http.post("/v1/leases", body, timeout=30)
            except OSError as e:
                out["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, out

    def my_lease(self):
        st, body = self.http.get("/v1/leases")
        mine = [l for l in body["leases"] if l["holder"] == "gen"]
        self.assertEqual(len(mine), 1, body)
        return mine[0]

    def finish_and_check(self, res, lease_id, holder_alloc=True):
        """Wait for the grant, use the memory, release; the resident comes back."""
        st, l = self.http.get("/v1/leases/%s?wait_s=15" % lease_id)
        self.assertEqual(l["state"], "granted", l)
        rpid = int(res.field("pid"))
        self.assertEqual(self.proc_usage(rpid), CTX)
        if holder_alloc:
            hold = self.start_holder("19.6Gi", name="generation")
            hold.stop()
        self.assertEqual(self.http.delete("/v1/leases/" + lease_id)[0], 200)
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15,
                   what="validation restored")
        wait_until(lambda: self.proc_usage(rpid) == CTX + VAL_BYTES, 5)
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    def gen_body(self):
        return {"holder": "gen", "bytes": GEN_BYTES, "pid": os.getpid(), "ttl_s": 60,
                "wait_s": 20}

    def test_killed_mid_unload(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi", "--unload-delay-ms", "1500")
        t, out = self.request_in_background(self.gen_body())
        wait_until(lambda: self.resident("validation")["state"] == "unloading", 5)
        self.restart()
        t.join(timeout=30)
        self.assertIn("error", out)  # the request died with the coordinator
        lease = self.my_lease()      # ... but the lease was re-adopted
        self.assertIn(lease["state"], ("queued", "preparing", "granted"))
        self.assertIn("recovered", [e["kind"] for e in self.events()])
        self.finish_and_check(res, lease["id"])

    def test_killed_mid_verification(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi", "--unload-mode", "slow",
                                  "--free-delay-ms", "1500")
        t, out = self.request_in_background(self.gen_body())
        wait_until(lambda: res.alive() and self.http.get("/v1/events")[1]["last_seq"] > 0 and
                   "resident_unloading" in self.event_kinds("validation"), 5)
        time.sleep(0.3)  # answered "success"; memory not yet free: verifying
        self.restart()
        t.join(timeout=30)
        lease = self.my_lease()
        self.finish_and_check(res, lease["id"])

    def test_killed_while_granted_holder_lives(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        st, lease = self.http.post("/v1/leases", self.gen_body())
        self.assertEqual(st, 201, lease)
        self.restart()
        st, l = self.http.get("/v1/leases/" + lease["id"])
        self.assertEqual(l["state"], "granted")  # re-adopted: its holder (we) lives
        time.sleep(0.5)
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        self.finish_and_check(res, lease["id"])

    def test_holder_dies_while_coordinator_is_down(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        holder = self.start(["sleep", "60"], "sleeper")
        body = dict(self.gen_body(), pid=holder.pid)
        st, lease = self.http.post("/v1/leases", body)
        self.assertEqual(st, 201, lease)
        port = self.coord_port
        self.coord.signal(signal.SIGKILL)
        self.coord.p.wait(timeout=5)
        holder.kill()
        self.start_coordinator(port=port, state_dir=self.state_dir)
        st, l = self.http.get("/v1/leases/" + lease["id"])
        self.assertEqual(st, 404)  # ended at recovery; the journal forgets ended leases
        kinds = [(e["kind"], e["subject"]) for e in self.events()]
        self.assertIn(("lease_expired", lease["id"]), kinds)
        rpid = int(res.field("pid"))
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15)
        self.assertEqual(self.proc_usage(rpid), CTX + VAL_BYTES)

    def test_resident_dies_while_coordinator_is_down(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi")
        rpid = int(res.field("pid"))
        port = self.coord_port
        self.coord.signal(signal.SIGKILL)
        self.coord.p.wait(timeout=5)
        res.kill()
        self.start_coordinator(port=port, state_dir=self.state_dir)
        r = self.resident("validation")  # kept, with the pid it had, and known dead
        self.assertEqual((r["state"], r["pid"]), ("gone", rpid), r)
        self.assertIn("exited while the coordinator was down", r["reason"])
        st, body = self.http.post("/v1/residents/validation/demand", {"wait_s": 0.2})
        self.assertEqual(st, 503, body)

    def start_process_resident(self):
        hold = os.path.join(BUILD, "src", "tools", "gpu-hold")
        st, body = self.http.post("/v1/residents", {
            "name": "llm", "protocol": "process", "command": "exec %s --bytes 3Gi" % hold,
            "bytes": "3Gi", "kill_grace_s": 2})
        self.assertEqual(st, 201, body)
        st, r = self.http.post("/v1/residents/llm/reload")
        self.assertEqual(st, 200, r)
        pid = r["pid"]
        self.addCleanup(lambda: os.path.exists("/proc/%d" % pid) and os.kill(pid, signal.SIGKILL))
        wait_until(lambda: self.proc_usage(pid) >= 3 << 30, 5)
        return pid

    def test_process_resident_keeps_its_pid_across_a_restart(self):
        self.start_coordinator()
        pid = self.start_process_resident()
        self.restart()
        r = self.resident("llm")
        self.assertEqual((r["state"], r["pid"]), ("loaded", pid), r)
        # Evicting it stops the process it started before the crash: the memory comes back.
        st, lease = self.http.post("/v1/leases", {"holder": "x", "bytes": "22Gi", "ttl_s": 30,
                                                  "wait_s": 20})
        self.assertEqual(st, 201, lease)
        self.assertEqual(lease["evicted"], ["llm"])
        self.assertEqual([p for p in self.gpu()["processes"] if p["pid"] == pid], [])
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    def test_process_resident_dies_while_coordinator_is_down(self):
        self.start_coordinator()
        pid = self.start_process_resident()
        port = self.coord_port
        self.coord.signal(signal.SIGKILL)
        self.coord.p.wait(timeout=5)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), 5, what="resident process dead")
        self.start_coordinator(port=port, state_dir=self.state_dir)
        r = self.resident("llm")  # not running: its command starts it again on demand
        self.assertEqual(r["state"], "unloaded", r)
        st, r = self.http.post("/v1/residents/llm/demand", {"wait_s": 10})
        self.assertEqual((st, r["state"]), (200, "loaded"), r)
        self.assertNotEqual(r["pid"], pid)
        self.addCleanup(lambda: os.path.exists("/proc/%d" % r["pid"]) and
                        os.kill(r["pid"], signal.SIGKILL))
        wait_until(lambda: self.proc_usage(r["pid"]) >= 3 << 30, 5)

    def test_sigterm_while_requests_wait_stops_at_once_and_keeps_the_leases(self):
        # A request waiting (wait_s 30) must not hold the shutdown up: it is answered
        # (still queued), the daemon exits promptly, and a restart has both leases.
        self.start_coordinator()
        holder = self.start(["sleep", "60"], "sleeper")
        st, a = self.http.post("/v1/leases", {"holder": "a", "bytes": 20 << 30,
                                              "pid": holder.pid})
        self.assertEqual(st, 201, a)
        t, out = self.request_in_background({"holder": "b", "bytes": 10 << 30,
                                             "pid": holder.pid, "wait_s": 30})
        wait_until(lambda: len(self.http.get("/v1/leases")[1]["leases"]) == 2, 5)
        t0 = time.monotonic()
        port = self.coord_port
        self.coord.signal(signal.SIGTERM)
        self.coord.p.wait(timeout=20)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(self.coord.p.returncode, 0)
        t.join(5)
        self.assertIn("answer", out, out)
        st, b = out["answer"]
        self.assertEqual((st, b["state"]), (202, "queued"), b)
        self.start_coordinator(port=port, state_dir=self.state_dir)
        states = {l["holder"]: l["state"] for l in self.http.get("/v1/leases")[1]["leases"]}
        self.assertEqual(states, {"a": "granted", "b": "queued"})

    def test_killed_mid_reload(self):
        self.start_coordinator()
        res = self.start_resident("validation", "4.7Gi", "--reload-delay-ms", "1500")
        st, lease = self.http.post("/v1/leases", self.gen_body())
        self.assertEqual(st, 201, lease)
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("validation")["state"] == "reloading", 5)
        self.restart()
        rpid = int(res.field("pid"))
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 15)
        wait_until(lambda: self.proc_usage(rpid) == CTX + VAL_BYTES, 5)
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)

    def test_restart_keeps_residents_and_counters(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        st, lease = self.http.post("/v1/leases", self.gen_body())
        self.http.delete("/v1/leases/" + lease["id"])
        wait_until(lambda: self.resident("validation")["state"] == "loaded", 10)
        self.restart()
        r = self.resident("validation")
        self.assertEqual((r["state"], r["unloads"], r["reloads"]), ("loaded", 1, 1))
        # New ids continue after the old ones (no reuse across restarts).
        st, l2 = self.http.post("/v1/leases", {"holder": "x", "bytes": 1 << 30, "ttl_s": 5})
        self.assertGreater(int(l2["id"].split("-")[1]), int(lease["id"].split("-")[1]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
