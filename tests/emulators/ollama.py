#!/usr/bin/env python3
"""Ollama emulator: each loaded model is a runner child process holding its memory.
https://github.com/ollama/ollama/blob/main/docs/api.md

POST /api/generate {"model"} with no prompt loads the model;
{"model", "keep_alive": 0} with no prompt unloads it (done_reason "unload");
unknown model -> 404 {"error"}; GET /api/ps -> {"models": [{name, model, size_vram, ...}]}.
"""
import time

import emulator


def canonical(name):
    return name if ":" in name else name + ":latest"


def generate(h):
    req = h.json_body()
    if not isinstance(req, dict) or not isinstance(req.get("model"), str):
        return h.reply(400, {"error": "model is required"})
    name = canonical(req["model"])
    if name not in h.state.models:
        return h.reply(404, {"error": "model '%s' not found" % req["model"]})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if req.get("keep_alive") in (0, "0", "0s", "0m") and not req.get("prompt"):
        h.state.unload(name)
        return h.reply(200, {"model": name, "created_at": now, "response": "", "done": True,
                             "done_reason": "unload"})
    try:
        h.state.load(name)
    except MemoryError as e:
        return h.reply(500, {"error": str(e)})
    h.reply(200, {"model": name, "created_at": now, "response": "", "done": True})


def ps(h):
    models = []
    for name, runner in sorted(h.state.models.items()):
        if runner.loaded():  # a runner that still runs is listed, whatever was answered
            models.append({"name": name, "model": name, "size": runner.nbytes,
                           "size_vram": runner.nbytes, "expires_at": "2099-01-01T00:00:00Z"})
    h.reply(200, {"models": models})


class Handler(emulator.Handler):
    routes = {
        ("POST", "/api/generate"): generate,
        ("GET", "/api/ps"): ps,
        ("GET", "/"): lambda h: h.reply(200, text="Ollama is running"),
    }


if __name__ == "__main__":
    args = emulator.arguments(__doc__, models=True)
    names = [canonical(m) for m in (args.model or ["llama3"])]
    state = emulator.Server(args, emulator.Runner, names)
    for m in args.preload:
        state.load(canonical(m))
    emulator.serve(args, Handler, state)
