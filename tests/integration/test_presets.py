#!/usr/bin/env python3
"""Protocol presets against emulators built from each server's documentation
(tests/emulators/): a lease that needs the memory evicts the server, NVML
verification passes, the lease is granted, and the server is restored after
release; servers that lie about freeing end in a known state. Exit 77 (skip)
when gpusim is sanitizer-built: Python cannot load it."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from gctest import CTX, GiB, GpuEnv, wait_until  # noqa: E402

EMULATORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "emulators")
MODEL_BYTES = 8 * GiB
LEASE_BYTES = 18 * GiB  # fits only once the 8Gi resident is gone (24Gi card)

# protocol -> (emulator, its arguments, registration extras)
PRESETS = {
    "vllm": ("vllm.py", [], {}),
    "sglang": ("sglang.py", [], {}),
    "ollama": ("ollama.py", ["--model", "llama3", "--preload", "llama3"], {"model": "llama3"}),
    "triton": ("triton.py", ["--model", "resnet", "--preload", "resnet"], {"model": "resnet"}),
    "llamacpp": ("llamacpp.py", ["--model", "qwen3-8b", "--preload", "qwen3-8b"],
                 {"model": "qwen3-8b"}),
    "llama-swap": ("llama_swap.py", ["--model", "qwen", "--preload", "qwen"], {"model": "qwen"}),
    "comfyui": ("comfyui.py", [], {}),
}


class PresetEnv(GpuEnv):
    def setUp(self):
        if os.environ.get("GPUSIM_SANITIZED") == "1":
            self.skipTest("sanitizer-built gpusim cannot be loaded by python")
        super().setUp()
        self.start_coordinator()

    def emulator(self, protocol, *extra, name=None):
        script, args, _ = PRESETS[protocol]
        argv = [sys.executable, os.path.join(EMULATORS, script), "--port", "0",
                "--bytes", "8Gi"] + args + list(extra)
        env = self.env
        preload = os.environ.get("GPUCOORD_PY_PRELOAD")
        if preload:  # sanitizer build: Python is not instrumented, gpusim is
            env = dict(self.env, LD_PRELOAD=preload)
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        p = self.start(argv, "emulator-" + (name or protocol), ready="ready", env=env)
        p.port = int(p.field("port"))
        return p

    def register(self, protocol, emu, name=None, **fields):
        body = {"name": name or protocol.replace("-", ""), "protocol": protocol,
                "url": "http://127.0.0.1:%d" % emu.port, "pid": emu.pid,
                "bytes": MODEL_BYTES, "verify_timeout_s": 3}
        body.update(PRESETS[protocol][2])
        body.update(fields)
        st, r = self.http.post("/v1/residents", body)
        self.assertEqual(st, 201, r)
        return r

    def usage(self, name):
        # What counts for the resident: the server and its runner children. GET
        # /v1/gpus takes a fresh NVML reading; a resident's view shows the last one.
        self.gpu()
        return self.resident(name)["used_bytes"]

    def lease(self, nbytes=LEASE_BYTES, wait_s=20):
        return self.http.post("/v1/leases", {"holder": "job", "bytes": nbytes, "ttl_s": 60,
                                             "wait_s": wait_s})

    def no_oom(self):
        self.assertEqual(self.sim_status()["devices"][0]["oom_count"], 0)


class Presets(PresetEnv):
    def evict_and_restore(self, protocol):
        emu = self.emulator(protocol)
        r = self.register(protocol, emu)
        name = r["name"]
        wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="model memory in NVML")
        st, lease = self.lease()
        self.assertEqual(st, 201, lease)
        self.assertEqual(lease["evicted"], [name])
        self.assertLess(self.usage(name), MODEL_BYTES // 2)
        self.assertIn("resident_unloaded", self.event_kinds(name))
        st, _ = self.http.delete("/v1/leases/" + lease["id"])
        self.assertEqual(st, 200)
        if protocol == "comfyui":
            # It reloads by itself on its next prompt: restored on demand only.
            self.assertEqual(self.resident(name)["state"], "unloaded")
            st, body = self.http.post("/v1/residents/%s/demand" % name, {"wait_s": 10})
            self.assertEqual(st, 200, body)
            self.assertLess(self.usage(name), MODEL_BYTES // 2)
            st, body = self.emu_http(emu).post("/prompt", {"prompt": {"1": {}}})
            self.assertEqual(st, 200, body)
        else:
            wait_until(lambda: self.resident(name)["state"] == "loaded", 15,
                       what="%s restored" % name)
        wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="memory back")
        self.no_oom()
        return emu, name

    def emu_http(self, emu):
        from gctest import Http
        return Http("http://127.0.0.1:%d" % emu.port)

    def test_a_model_unloaded_behind_its_back_is_found_by_the_health_check(self):
        """A demand asks a resident marked loaded what it holds (each preset's health
        check reads the server's model list): one unloaded behind the coordinator's
        back is reloaded, not taken for loaded."""
        behind = {"ollama": ("/api/generate", {"model": "llama3", "keep_alive": 0}),
                  "llamacpp": ("/models/unload", {"model": "qwen3-8b"}),
                  "llama-swap": ("/api/models/unload/qwen", {})}
        for protocol, (path, body) in behind.items():
            with self.subTest(protocol=protocol):
                emu = self.emulator(protocol)
                name = self.register(protocol, emu)["name"]
                wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="model memory")
                st, answer = self.emu_http(emu).post(path, body)
                self.assertEqual(st, 200, answer)
                wait_until(lambda: self.usage(name) < MODEL_BYTES // 2, 10, what="freed")
                self.assertEqual(self.resident(name)["state"], "loaded")  # not told
                st, answer = self.http.post("/v1/residents/%s/demand" % name, {"wait_s": 15})
                self.assertEqual(st, 200, answer)
                self.assertIn("resident_probed", self.event_kinds(name))
                wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="reloaded")
                self.http.delete("/v1/residents/" + name)
                emu.stop()  # its memory back for the next one (a 24Gi card)
        self.no_oom()

    def test_vllm(self):
        emu, _ = self.evict_and_restore("vllm")
        self.assertEqual(self.emu_http(emu).get("/is_sleeping")[1], {"is_sleeping": False})

    def test_sglang(self):
        self.evict_and_restore("sglang")

    def test_ollama_runner_child_started_after_registration_is_attributed(self):
        emu, name = self.evict_and_restore("ollama")
        # The runner now holding the model was started by the reload, after
        # registration: its memory counts for the server, so a second eviction
        # is verified through it.
        ps = self.emu_http(emu).get("/api/ps")[1]["models"]
        self.assertEqual([m["name"] for m in ps], ["llama3:latest"])
        st, lease = self.lease()
        self.assertEqual((st, lease.get("evicted")), (201, [name]), lease)
        self.assertEqual(self.emu_http(emu).get("/api/ps")[1]["models"], [])

    def test_triton(self):
        self.evict_and_restore("triton")

    def test_llamacpp_router(self):
        emu, _ = self.evict_and_restore("llamacpp")
        models = self.emu_http(emu).get("/models")[1]["data"]
        self.assertEqual(models[0]["status"]["value"], "loaded")

    def test_llama_swap_one_model(self):
        self.evict_and_restore("llama-swap")

    def test_comfyui_restored_by_its_next_prompt(self):
        self.evict_and_restore("comfyui")

    def test_comfyui_reloaded_but_not_yet_prompted_is_evicted_at_once(self):
        # Demanded back, ComfyUI holds only its context until a prompt loads its
        # models. A lease that needs the room evicts it again, and its unload is
        # verified at once: there is nothing above its floor to wait for.
        emu = self.emulator("comfyui")
        name = self.register("comfyui", emu)["name"]
        wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="model memory")
        st, lease = self.lease()
        self.assertEqual(st, 201, lease)
        self.http.delete("/v1/leases/" + lease["id"])
        st, body = self.http.post("/v1/residents/%s/demand" % name, {"wait_s": 10})
        self.assertEqual((st, body.get("state")), (200, "loaded"), body)
        t0 = time.monotonic()
        st, lease = self.lease()
        self.assertEqual((st, lease.get("evicted")), (201, [name]), lease)
        self.assertLess(time.monotonic() - t0, 2.5)  # not its verify_timeout_s (3 s) and more
        self.assertNotIn("verify_timeout", self.event_kinds(name))
        self.no_oom()

    def test_llama_swap_all_models(self):
        emu = self.emulator("llama-swap")
        name = "swap"
        st, r = self.http.post("/v1/residents", {
            "name": name, "protocol": "llama-swap", "url": "http://127.0.0.1:%d" % emu.port,
            "pid": emu.pid, "bytes": MODEL_BYTES, "verify_timeout_s": 3})
        self.assertEqual(st, 201, r)
        self.assertNotIn("model", r)
        wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="model memory")
        st, lease = self.lease()
        self.assertEqual((st, lease.get("evicted")), (201, ["swap"]), lease)
        self.assertEqual(self.emu_http(emu).get("/running")[1], {"running": []})

    def test_model_is_journaled_with_the_registration(self):
        emu = self.emulator("triton")
        self.register("triton", emu)
        self.coord.stop()
        self.start_coordinator(state_dir=self.state_dir)
        r = self.resident("triton")
        self.assertEqual(r["model"], "resnet")
        st, lease = self.lease()
        self.assertEqual((st, lease.get("evicted")), (201, ["triton"]), lease)


class Registration(PresetEnv):
    def test_model_required_refused_and_checked(self):
        url = "http://127.0.0.1:9"
        for protocol in ("ollama", "triton", "llamacpp"):
            st, body = self.http.post("/v1/residents", {"name": "m", "protocol": protocol,
                                                        "url": url})
            self.assertEqual(st, 400, body)
            self.assertIn("needs the 'model'", body["message"])
        for protocol in ("vllm", "sglang", "comfyui"):
            st, body = self.http.post("/v1/residents", {"name": "m", "protocol": protocol,
                                                        "url": url, "model": "x"})
            self.assertEqual(st, 400, body)
            self.assertIn("takes no 'model'", body["message"])
        for bad in ("a b", "x?y", 'q"', "", "z" * 300):
            st, body = self.http.post("/v1/residents", {"name": "m", "protocol": "triton",
                                                        "url": url, "model": bad})
            self.assertEqual(st, 400, (bad, body))
        st, body = self.http.post("/v1/residents", {"name": "m", "protocol": "vllm",
                                                    "url": "http://10.1.2.3:8000"})
        self.assertEqual(st, 400, body)
        st, body = self.http.post("/v1/residents", {"name": "m", "protocol": "ollama",
                                                    "url": url, "model": "library/llama3:8b"})
        self.assertEqual(st, 201, body)
        self.assertEqual(body["model"], "library/llama3:8b")
        st, body = self.http.post("/v1/residents", {"name": "c", "protocol": "comfyui",
                                                    "url": url})
        self.assertEqual((st, body["restore"]), (201, "demand"), body)


class Misbehaviour(PresetEnv):
    """Each lie ends in a known state; NVML, not the answer, decides."""

    def test_late_free_is_waited_for(self):
        for protocol in PRESETS:
            with self.subTest(protocol=protocol):
                emu = self.emulator(protocol, "--misbehave", "late", "--late-ms", "1200")
                name = self.register(protocol, emu, verify_timeout_s=5)["name"]
                wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="memory")
                t0 = time.monotonic()
                st, lease = self.lease()
                self.assertEqual(st, 201, lease)
                self.assertGreaterEqual(time.monotonic() - t0, 1.0)
                self.assertLess(self.usage(name), MODEL_BYTES // 2)
                self.http.delete("/v1/leases/" + lease["id"])
                self.http.delete("/v1/residents/" + name)
                emu.stop()
                self.no_oom()

    def test_never_free_on_stuck_fail_fails_the_lease_and_keeps_it_loaded(self):
        for protocol in PRESETS:
            with self.subTest(protocol=protocol):
                emu = self.emulator(protocol, "--misbehave", "never")
                name = self.register(protocol, emu, verify_timeout_s=0.5)["name"]
                wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="memory")
                st, body = self.lease()
                self.assertEqual((st, body.get("error")), (503, "could_not_free"), body)
                kinds = self.event_kinds(name)
                self.assertIn("cleanup_requested", kinds)
                self.assertIn("verify_timeout", kinds)
                wait_until(lambda: self.resident(name)["state"] == "loaded", 10,
                           what="%s loaded again" % name)
                self.assertGreaterEqual(self.usage(name), MODEL_BYTES)
                self.http.delete("/v1/residents/" + name)
                emu.stop()
                self.no_oom()

    def test_never_free_on_stuck_kill_kills_it(self):
        for protocol in PRESETS:
            with self.subTest(protocol=protocol):
                emu = self.emulator(protocol, "--misbehave", "never")
                name = self.register(protocol, emu, verify_timeout_s=0.5,
                                     on_stuck="kill")["name"]
                wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="memory")
                st, lease = self.lease()
                self.assertEqual(st, 201, lease)
                self.assertFalse(emu.alive())
                self.assertEqual(self.resident(name)["state"], "gone")
                self.assertIn("escalation_kill", self.event_kinds(name))
                self.http.delete("/v1/leases/" + lease["id"])
                self.http.delete("/v1/residents/" + name)
                self.no_oom()

    def test_crash_mid_unload_frees_and_the_resident_is_gone(self):
        for protocol in PRESETS:
            with self.subTest(protocol=protocol):
                emu = self.emulator(protocol, "--misbehave", "crash")
                name = self.register(protocol, emu)["name"]
                wait_until(lambda: self.usage(name) >= MODEL_BYTES, 10, what="memory")
                st, lease = self.lease()
                self.assertEqual(st, 201, lease)
                wait_until(lambda: not emu.alive(), 5, what="emulator exit")
                self.assertEqual(self.resident(name)["state"], "gone")
                self.http.delete("/v1/leases/" + lease["id"])
                self.http.delete("/v1/residents/" + name)
                self.no_oom()


if __name__ == "__main__":
    unittest.main(verbosity=2)
