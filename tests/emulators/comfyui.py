#!/usr/bin/env python3
"""ComfyUI emulator: /free only sets a flag; the prompt worker acts on it.
https://docs.comfy.org/development/comfyui-server/comms_routes

POST /free {"unload_models", "free_memory"} -> 200 at once (the worker frees
its models on its next turn); POST /prompt {"prompt"} loads the models the
workflow needs (allocating their memory; a failed allocation is an error in
the answer, as an out-of-memory workflow is) -> {"prompt_id", "number"};
GET /system_stats -> {"system", "devices"}.
"""
import threading
import time
import uuid

import emulator

M = "checkpoint"
# How often the prompt worker looks at its flags.
WORKER_TURN_S = 0.1


class Comfy(emulator.Server):
    def __init__(self, args):
        super().__init__(args, emulator.InProcess, [M])
        self.unload_flag = threading.Event()
        threading.Thread(target=self.worker, daemon=True).start()

    def worker(self):
        while True:
            if self.unload_flag.wait(WORKER_TURN_S):
                self.unload_flag.clear()
                # The flag is honoured per --misbehave (late frees later still).
                self.unload(M)


def free(h):
    req = h.json_body()
    if not isinstance(req, dict):
        return h.reply(400, {"error": "body must be a JSON object"})
    if h.state.args.misbehave == "crash":
        h.state.unload(M)  # exits
    if req.get("unload_models") or req.get("free_memory"):
        h.state.unload_flag.set()
    h.reply(200)


def prompt(h):
    req = h.json_body()
    if not isinstance(req, dict) or not isinstance(req.get("prompt"), dict):
        return h.reply(400, {"error": {"type": "no_prompt", "message": "No prompt provided"}})
    time.sleep(h.state.args.load_ms / 1000.0)  # reading the checkpoint from disk
    try:
        h.state.load(M)
    except MemoryError as e:
        return h.reply(500, {"error": {"type": "execution_error",
                                       "message": "torch.OutOfMemoryError: %s" % e}})
    h.reply(200, {"prompt_id": str(uuid.uuid4()), "number": 0, "node_errors": {}})


def system_stats(h):
    h.reply(200, {"system": {"os": "posix", "comfyui_version": "emulator"},
                  "devices": [{"name": "cuda:0", "type": "cuda", "index": 0}]})


class Handler(emulator.Handler):
    routes = {
        ("POST", "/free"): free,
        ("POST", "/prompt"): prompt,
        ("GET", "/system_stats"): system_stats,
    }


if __name__ == "__main__":
    args = emulator.arguments(__doc__, extra=[("--load-ms", int, 0,
                                               "time a prompt takes before it allocates")])
    state = Comfy(args)
    state.load(M)
    emulator.serve(args, Handler, state)
