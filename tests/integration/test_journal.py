#!/usr/bin/env python3
"""The journal under pressure: a full disk never costs an acknowledged change or an id,
lease ids never wrap, and compaction rewrites the journal only when it has outgrown
the state it records - never for a read.

A full disk is made two ways: a 64 KiB tmpfs as the state directory (needs mount
rights: skipped where they are refused), and a file size limit (RLIMIT_FSIZE) on the
coordinator, which needs none."""
import ctypes
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import GpuEnv, MiB, wait_until  # noqa: E402

CLONE_NEWNS = 0x00020000


def lease_number(lease_id):
    return int(lease_id.rsplit("-", 1)[1])


class JournalEnv(GpuEnv):
    def restart(self, **kw):
        port = self.coord_port
        self.coord.signal(signal.SIGKILL)
        self.coord.p.wait(timeout=5)
        self.start_coordinator(port=port, state_dir=self.state_dir, **kw)

    def journal_bytes(self):
        with open(os.path.join(self.state_dir, "journal"), "rb") as f:
            return f.read()

    def metric(self, name):
        st, text = self.http.get("/metrics")
        self.assertEqual(st, 200)
        m = re.search(r"^gpucoord_%s (\d+)$" % name, text.decode(), re.M)
        self.assertIsNotNone(m, name)
        return int(m.group(1))


class FullDisk(JournalEnv):
    """Requests until the journal cannot be written, then a crash and a restart."""

    def fill(self):
        kept, seen, refused = [], [], []
        for i in range(3000):
            st, body = self.http.post("/v1/leases", {"holder": "h%d" % i, "bytes": MiB,
                                                     "ttl_s": 300})
            if st == 201:
                seen.append(body["id"])
                # Released leases keep the journal growing and the live state small.
                if not refused and i % 4:
                    st, body = self.http.delete("/v1/leases/" + body["id"])
                    self.assertEqual(st, 200, body)
                else:
                    kept.append(body["id"])
                continue
            self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
            self.assertIn("journal", body["message"])
            if "id" in body:
                seen.append(body["id"])
            refused.append(body)
            if len(refused) >= 5:
                break
        self.assertTrue(refused, "the journal never filled up")
        return kept, seen

    def check_journal_whole(self):
        data = self.journal_bytes()
        self.assertTrue(data.endswith(b"\n"), data[-200:])
        for line in data.splitlines():
            json.loads(line)  # no torn record, none glued onto another

    def check_after_restart(self, kept, seen):
        recovered = [e for e in self.events() if e["kind"] == "recovered"]
        self.assertTrue(recovered)
        self.assertIn("0 records skipped", recovered[0]["detail"])
        for lease_id in kept:
            st, body = self.http.get("/v1/leases/" + lease_id)
            self.assertEqual((st, body.get("state")), (200, "granted"), (lease_id, body))
        st, body = self.http.post("/v1/leases", {"holder": "after", "bytes": MiB, "ttl_s": 300})
        self.assertEqual(st, 201, body)
        self.assertGreater(lease_number(body["id"]), max(lease_number(i) for i in seen))

    def fill_with_kept_leases(self, seen):
        """Leases kept until the journal holds nothing but the live state, so that no
        compaction can make room: from then on every change that can wait is refused."""
        kept, refusals = [], 0
        for i in range(4000):
            st, body = self.http.post("/v1/leases", {"holder": "h%d" % i, "bytes": MiB,
                                                     "ttl_s": 300})
            if st == 201:
                kept.append(body["id"])
                seen.append(body["id"])
                continue
            self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
            seen.extend([body["id"]] if "id" in body else [])
            refusals += 1
            if refusals == 3:
                return kept
            # The compaction retried meanwhile drops superseded records: fill that too.
            time.sleep(1.2)
        self.fail("the journal never filled up")

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.coord.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def test_file_size_limit(self):
        self.start_coordinator()
        # Set on the running coordinator: gpusim's state file is in place by now.
        resource.prlimit(self.coord.pid, resource.RLIMIT_FSIZE, (24 * 1024, 24 * 1024))
        seen = []
        kept = self.fill_with_kept_leases(seen)
        self.assertEqual(len(seen), len(set(seen)))
        time.sleep(1.2)  # a compaction retried meanwhile cannot make room either
        st, body = self.http.post("/v1/leases", {"holder": "late", "bytes": MiB, "ttl_s": 300})
        self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
        seen.extend([body["id"]] if "id" in body else [])
        st, body = self.http.post("/v1/residents", {"name": "late", "protocol": "seed",
                                                    "url": "http://127.0.0.1:9"})
        self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
        self.assertEqual(self.http.get("/v1/residents/late")[0], 404)
        # A growth that fits is refused too, and the lease keeps its size: a restart
        # would re-adopt it at the size the journal knows.
        st, body = self.http.post("/v1/leases/%s/resize" % kept[0], {"bytes": 2 * MiB})
        self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
        st, body = self.http.get("/v1/leases/" + kept[0])
        self.assertEqual((st, body["bytes"]), (200, MiB), body)
        # Waiting for room costs nothing: no busy retrying.
        cpu = self.cpu_seconds()
        time.sleep(1.5)
        self.assertLess(self.cpu_seconds() - cpu, 0.3)
        # Releases cannot be refused: they happen, and the compaction retried in the
        # background writes them once the state fits again.
        released = kept[5:]
        del kept[5:]
        for lease_id in released:
            st, body = self.http.delete("/v1/leases/" + lease_id)
            self.assertEqual((st, body["state"]), (200, "released"), body)

        def grant():
            st, body = self.http.post("/v1/leases", {"holder": "again", "bytes": MiB,
                                                     "ttl_s": 300})
            if st == 201:
                return body["id"]
            self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
            seen.extend([body["id"]] if "id" in body else [])
            return None
        lease_id = wait_until(grant, timeout=15, interval=0.2, what="a writable journal")
        kept.append(lease_id)
        seen.append(lease_id)
        self.check_journal_whole()
        self.restart()
        self.check_after_restart(kept, seen)
        for lease_id in released:
            st, body = self.http.get("/v1/leases/" + lease_id)
            self.assertFalse(st == 200 and body.get("state") == "granted", (lease_id, body))

    def test_reloads_wait_for_a_writable_journal(self):
        self.start_coordinator()
        self.start_resident("validation", "1Gi")
        st, body = self.http.post("/v1/residents/validation/unload")
        self.assertEqual((st, body["state"]), (200, "unloaded"), body)
        resource.prlimit(self.coord.pid, resource.RLIMIT_FSIZE, (24 * 1024, 24 * 1024))
        kept = self.fill_with_kept_leases([])
        time.sleep(1.2)  # a compaction retried meanwhile cannot make room either
        # Neither a reload by hand nor a demand asks the resident before its
        # "reloading" record is written: a restart must know a reload may have begun.
        st, body = self.http.post("/v1/residents/validation/reload")
        self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
        st, body = self.http.post("/v1/residents/validation/demand", {"wait_s": 5})
        self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
        self.assertEqual(self.resident("validation")["state"], "unloaded")
        self.assertNotIn("resident_reloading", self.event_kinds("validation"))
        for lease_id in kept:
            self.http.delete("/v1/leases/" + lease_id)
        # Once the retried compaction has made room, the demand goes through.
        st, body = self.http.post("/v1/residents/validation/demand", {"wait_s": 20})
        if st == 503:
            time.sleep(2)
            st, body = self.http.post("/v1/residents/validation/demand", {"wait_s": 20})
        self.assertEqual((st, body.get("state")), (200, "loaded"), body)

    def test_tmpfs(self):
        state = self.path("state")
        os.mkdir(state)
        libc = ctypes.CDLL(None, use_errno=True)
        # A mount namespace of this test process's own: the mount vanishes with it.
        if libc.unshare(CLONE_NEWNS) != 0:
            self.skipTest("unshare(CLONE_NEWNS) refused: %s" % os.strerror(ctypes.get_errno()))
        for argv in (["mount", "--make-rprivate", "/"],
                     ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", state]):
            r = subprocess.run(argv, capture_output=True, timeout=10)
            if r.returncode != 0:
                self.skipTest("%s refused: %s" % (" ".join(argv), r.stderr.decode().strip()))
        self.addCleanup(subprocess.run, ["umount", "-l", state], capture_output=True, timeout=10)
        with open(os.path.join(state, "filler"), "wb") as f:
            f.write(b"x" * 8192)
        self.start_coordinator(state_dir=state)
        kept, seen = self.fill()
        self.assertEqual(len(seen), len(set(seen)))
        # Still full: nothing more gets in, reads still work, no busy retrying.
        st, body = self.http.post("/v1/leases", {"holder": "late", "bytes": MiB, "ttl_s": 300})
        self.assertEqual((st, body["error"]), (503, "journal_failed"), body)
        st, _ = self.http.get("/v1/status")
        self.assertEqual(st, 200)
        cpu = self.cpu_seconds()
        time.sleep(1.5)
        self.assertLess(self.cpu_seconds() - cpu, 0.3)
        self.check_journal_whole()
        os.unlink(os.path.join(state, "filler"))
        self.restart()
        self.check_after_restart(kept, seen)


class LeaseIds(JournalEnv):
    def test_exhausted_ids_are_refused_not_wrapped(self):
        os.makedirs(self.path("state"))
        last = (1 << 63) - 2
        with open(os.path.join(self.path("state"), "journal"), "w") as f:
            f.write(json.dumps({"op": "ids", "next_id": last, "next_seq": 1}) + "\n")
        self.start_coordinator()
        st, body = self.http.post("/v1/leases", {"holder": "a", "bytes": MiB, "ttl_s": 60})
        self.assertEqual((st, body["id"]), (201, "lease-%d" % last), body)
        for _ in range(2):
            st, body = self.http.post("/v1/leases", {"holder": "b", "bytes": MiB, "ttl_s": 60})
            self.assertEqual((st, body["error"]), (429, "limit_reached"), body)
            self.assertIn("exhausted", body["message"])
            self.restart()

    def test_restart_continues_past_every_id_issued(self):
        self.start_coordinator()
        ids = []
        for i in range(3):
            st, body = self.http.post("/v1/leases", {"holder": "a%d" % i, "bytes": MiB,
                                                     "ttl_s": 60})
            self.assertEqual(st, 201, body)
            ids.append(lease_number(body["id"]))
            self.http.delete("/v1/leases/" + body["id"])
        self.restart()
        st, body = self.http.post("/v1/leases", {"holder": "z", "bytes": MiB, "ttl_s": 60})
        self.assertEqual(st, 201, body)
        self.assertGreater(lease_number(body["id"]), max(ids))


class Compaction(JournalEnv):
    def test_reads_never_compact(self):
        self.start_coordinator(config="[coordinator]\ncompact_bytes = 4Ki\n")
        for i in range(60):
            st, body = self.http.post("/v1/leases", {"holder": "h%d" % i, "bytes": MiB,
                                                     "ttl_s": 300})
            self.assertEqual(st, 201, body)
            if i % 6:
                self.http.delete("/v1/leases/" + body["id"])
        before = self.metric("journal_compactions_total")
        self.assertGreaterEqual(before, 2)  # at start, and once the journal outgrew 4Ki
        for i in range(20):
            st, _ = self.http.get("/v1/status" if i % 2 else "/v1/gpus")
            self.assertEqual(st, 200)
        self.assertEqual(self.metric("journal_compactions_total"), before)

    def test_compaction_loses_no_lease_granted_meanwhile(self):
        self.start_coordinator(config="[coordinator]\ncompact_bytes = 1Ki\n"
                               "journal_sync = always\n")
        kept = []
        for i in range(200):
            st, body = self.http.post("/v1/leases", {"holder": "h%d" % i, "bytes": MiB,
                                                     "ttl_s": 300})
            self.assertEqual(st, 201, body)
            if i % 10 == 0:
                kept.append(body["id"])
            else:
                self.http.delete("/v1/leases/" + body["id"])
        self.assertGreater(self.metric("journal_compactions_total"), 2)
        self.restart()
        for lease_id in kept:
            st, body = self.http.get("/v1/leases/" + lease_id)
            self.assertEqual((st, body.get("state")), (200, "granted"), (lease_id, body))


if __name__ == "__main__":
    unittest.main(verbosity=2)
