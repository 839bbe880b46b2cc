#!/usr/bin/env python3
"""llama-swap emulator: one upstream child process per running model.
https://github.com/mostlygeek/llama-swap (README, "llama-swap API")

POST /api/models/unload/{model} unloads one; POST /api/models/unload and the
older GET /unload unload all; GET /upstream/{model}/... starts the model's
upstream and answers for it; GET /running -> {"running": [{model, state}]};
GET /health -> "OK".
"""
from urllib.parse import unquote

import emulator


def unload_one(h, rest):
    h.body()
    name = unquote(rest)
    if name not in h.state.models:
        return h.reply(404, text="model %s not found" % name)
    h.state.unload(name)
    h.reply(200, text="OK")


def unload_all(h):
    h.body()
    for name in sorted(h.state.models):
        if h.state.loaded(name):
            h.state.unload(name)
    h.reply(200, text="OK")


def upstream(h, rest):
    name, _, _ = rest.partition("/")
    name = unquote(name)
    if name not in h.state.models:
        return h.reply(404, text="model %s not found" % name)
    try:
        h.state.load(name)
    except MemoryError as e:
        return h.reply(502, text=str(e))
    h.reply(200, text="OK")


def running(h):
    h.reply(200, {"running": [{"model": n, "state": "ready"}
                              for n in sorted(h.state.models) if h.state.loaded(n)]})


class Handler(emulator.Handler):
    routes = {
        ("POST", "/api/models/unload"): unload_all,
        ("GET", "/unload"): unload_all,
        ("GET", "/running"): running,
        ("GET", "/health"): lambda h: h.reply(200, text="OK"),
    }
    prefix_routes = [("POST", "/api/models/unload/", unload_one),
                     ("GET", "/upstream/", upstream)]


if __name__ == "__main__":
    args = emulator.arguments(__doc__, models=True)
    state = emulator.Server(args, emulator.Runner, args.model or ["qwen"])
    for m in args.preload:
        state.load(m)
    emulator.serve(args, Handler, state)
