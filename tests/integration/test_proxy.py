#!/usr/bin/env python3
"""gpucoord proxy: each request makes sure its resident is loaded and keeps it
from being evicted while it runs; answers stream through unchanged. Exit 77
(skip) when gpusim is sanitizer-built: the emulators cannot load it."""
import hashlib
import http.client
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import BUILD, GiB, Http, wait_until  # noqa: E402
from test_presets import LEASE_BYTES, MODEL_BYTES, PresetEnv  # noqa: E402


class Proxy(PresetEnv):
    def proxied(self, protocol, *emu_args, **reg):
        emu = self.emulator(protocol, *emu_args)
        name = self.register(protocol, emu, **reg)["name"]
        wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="model memory")
        px = self.start([os.path.join(BUILD, "gpucoord"), "proxy", "--url", self.url,
                         "--listen", "127.0.0.1:0", "--to", "http://127.0.0.1:%d" % emu.port,
                         "--resident", name, "--use-ttl", "3", "--wait", "30"],
                        "proxy", ready="proxy listening")
        port = int(px.ready.split()[3].rsplit(":", 1)[1])
        return emu, name, port

    def stream(self, port, n, delay_ms):
        """Events with their arrival times, through http.client (chunked decoded)."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/stream?n=%d&delay_ms=%d" % (n, delay_ms))
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Content-Type"), "text/event-stream")
        events = []
        while True:
            line = resp.readline()
            if not line:
                break
            if line.startswith(b"data:"):
                events.append((time.monotonic(), line.strip()))
        conn.close()
        return events

    def test_stream_arrives_intact_and_incrementally(self):
        _, name, port = self.proxied("vllm")
        t0 = time.monotonic()
        events = self.stream(port, 5, 300)
        self.assertEqual([e for _, e in events],
                         [b'data: {"token": %d}' % i for i in range(5)] + [b"data: [DONE]"])
        # The first event came long before the last: nothing was held back.
        self.assertLess(events[0][0] - t0, 1.0)
        self.assertGreater(events[-1][0] - events[0][0], 1.0)
        wait_until(lambda: self.resident(name)["uses"] == 0, 5, what="use ended")

    def test_large_bodies_both_ways(self):
        _, name, port = self.proxied("sglang")
        body = os.urandom(1 << 20) * 24  # 24 MiB up
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/echo", body=body,
                     headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(json.loads(resp.read()),
                         {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/blob?n=%d" % (40 << 20))  # 40 MiB down, chunked
        resp = conn.getresponse()
        data = resp.read()
        self.assertEqual(len(data), 40 << 20)
        self.assertEqual(data, (bytes(range(256)) * 256) * 640)
        conn.close()

    def test_client_gone_mid_stream_ends_the_use_at_once(self):
        _, name, port = self.proxied("vllm")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /stream?n=100&delay_ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"token" not in got:
            got += s.recv(4096)
        self.assertEqual(self.resident(name)["uses"], 1)
        s.close()
        # Well before the use's 3 s TTL: the proxy saw the client go.
        t0 = time.monotonic()
        wait_until(lambda: self.resident(name)["uses"] == 0, 2.5, what="use ended")
        self.assertLess(time.monotonic() - t0, 2.5)
        # And the resident can be evicted at once.
        st, lease = self.lease(wait_s=10)
        self.assertEqual((st, lease.get("evicted")), (201, [name]), lease)

    def test_eviction_waits_for_a_request_in_flight(self):
        _, name, port = self.proxied("vllm")
        result = {}

        def run():
            result["events"] = self.stream(port, 8, 250)
            result["done"] = time.monotonic()

        t = threading.Thread(target=run)
        t.start()
        wait_until(lambda: self.resident(name)["uses"] == 1, 5, what="request in flight")
        st, lease = self.lease(wait_s=30)
        granted = time.monotonic()
        t.join(30)
        self.assertEqual((st, lease.get("evicted")), (201, [name]), lease)
        self.assertEqual(len(result["events"]), 9)  # the stream was not cut
        self.assertGreaterEqual(granted, result["done"] - 0.05)
        self.assertIn("resident_draining", self.event_kinds(name))
        self.no_oom()

    def test_eviction_proceeds_after_the_drain_timeout(self):
        _, name, port = self.proxied("vllm", drain_timeout_s=1)
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("ev", self.stream(port, 30, 200)))
        t.start()
        wait_until(lambda: self.resident(name)["uses"] == 1, 5, what="request in flight")
        t0 = time.monotonic()
        st, lease = self.lease(wait_s=30)
        waited = time.monotonic() - t0
        self.assertEqual((st, lease.get("evicted")), (201, [name]), lease)
        self.assertGreaterEqual(waited, 0.9)
        self.assertLess(waited, 4.5)
        self.assertTrue(t.is_alive())  # its request still ran when the drain gave up
        t.join(30)

    def test_request_to_evicted_lazy_server_brings_it_back_first(self):
        emu, name, port = self.proxied("comfyui")
        st, lease = self.lease()
        self.assertEqual((st, lease.get("evicted")), (201, [name]), lease)
        self.assertEqual(self.resident(name)["state"], "unloaded")
        result = {}

        def run():
            result["answer"] = Http("http://127.0.0.1:%d" % port).post(
                "/prompt", {"prompt": {"3": {"class_type": "KSampler"}}}, timeout=30)

        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.0)
        self.assertNotIn("answer", result)  # waits: the lease holds the memory
        st, _ = self.http.delete("/v1/leases/" + lease["id"])
        self.assertEqual(st, 200)
        t.join(30)
        st, body = result["answer"]
        self.assertEqual(st, 200, body)
        self.assertIn("prompt_id", body)
        self.assertEqual(self.resident(name)["state"], "loaded")
        wait_until(lambda: self.usage(name) >= MODEL_BYTES, 5, what="its models back")
        self.no_oom()

    def test_lazy_server_loading_through_the_proxy_keeps_its_room(self):
        # Evicted ComfyUI, a prompt that takes a while before it allocates, and a lease
        # that would fit in the room meanwhile: the room stays the prompt's.
        emu, name, port = self.proxied("comfyui", "--load-ms", "1500")
        st, lease = self.lease()
        self.assertEqual((st, lease.get("evicted")), (201, [name]), lease)
        self.http.delete("/v1/leases/" + lease["id"])
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("answer", Http(
            "http://127.0.0.1:%d" % port).post("/prompt", {"prompt": {"1": {}}}, timeout=30)))
        t.start()
        wait_until(lambda: self.resident(name)["uses"] == 1, 10, what="prompt in flight")
        st, lease = self.lease(wait_s=30)
        t.join(30)
        self.assertEqual(result["answer"][0], 200, result["answer"])
        # The lease came after the prompt, by evicting ComfyUI again once it was done.
        self.assertEqual((st, lease.get("evicted")), (201, [name]), lease)
        self.no_oom()

    def test_bad_requests_and_arguments(self):
        _, name, port = self.proxied("vllm")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"garbage\r\n\r\n")
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400"))
        s.close()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 431"))
        s.close()
        gc = os.path.join(BUILD, "gpucoord")
        import subprocess
        for args in (["--listen", "127.0.0.1:0", "--to", "http://10.0.0.1:80", "--resident", "x"],
                     ["--listen", "nope", "--to", "http://127.0.0.1:1", "--resident", "x"],
                     ["--listen", "127.0.0.1:0", "--resident", "x"]):
            r = subprocess.run([gc, "proxy", "--url", self.url] + args, capture_output=True,
                               timeout=10, env=self.env)
            self.assertEqual(r.returncode, 2, (args, r.stderr))

    def test_unknown_resident_answers_502(self):
        emu = self.emulator("vllm")
        px = self.start([os.path.join(BUILD, "gpucoord"), "proxy", "--url", self.url,
                         "--listen", "127.0.0.1:0", "--to", "http://127.0.0.1:%d" % emu.port,
                         "--resident", "nobody"], "proxy", ready="proxy listening")
        port = int(px.ready.split()[3].rsplit(":", 1)[1])
        st, body = Http("http://127.0.0.1:%d" % port).get("/health")
        self.assertEqual(st, 502, body)


class UseApi(PresetEnv):
    def test_use_lifecycle_and_ttl(self):
        emu = self.emulator("vllm")
        name = self.register("vllm", emu)["name"]
        st, u = self.http.post("/v1/residents/%s/use" % name, {"ttl_s": 1})
        self.assertEqual(st, 201, u)
        self.assertEqual(self.resident(name)["uses"], 1)
        st, _ = self.http.post("/v1/residents/%s/use/%s" % (name, u["id"]))
        self.assertEqual(st, 200)
        # Not renewed: it lapses by itself.
        wait_until(lambda: self.resident(name)["uses"] == 0, 5, what="use expired")
        self.assertIn("use_expired", self.event_kinds(name))
        st, _ = self.http.delete("/v1/residents/%s/use/%s" % (name, u["id"]))
        self.assertEqual(st, 404)
        for bad in ({"ttl_s": 0}, {"ttl_s": 99999}, {"other": 1}):
            st, body = self.http.post("/v1/residents/%s/use" % name, bad)
            self.assertEqual(st, 400, (bad, body))
        st, body = self.http.post("/v1/residents/nobody/use")
        self.assertEqual(st, 404, body)
        # An unloaded resident cannot be used: it must be demanded first.
        st, _ = self.http.post("/v1/residents/%s/unload" % name)
        self.assertEqual(st, 200)
        st, body = self.http.post("/v1/residents/%s/use" % name)
        self.assertEqual((st, body["error"]), (409, "conflict"), body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
