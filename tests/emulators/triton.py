#!/usr/bin/env python3
"""Triton emulator, as started with --model-control-mode=explicit.
https://docs.nvidia.com/deeplearning/sdk/triton-inference-server-guide/docs/protocol/extension_model_repository.html

POST /v2/repository/models/{m}/load and /unload -> 200; unknown model -> 400
{"error"}; GET /v2/models/{m}/ready -> 200 when ready, 400 otherwise;
GET /v2/health/ready -> 200.
"""
from urllib.parse import unquote

import emulator


def repository(h, rest):
    h.body()
    name, _, verb = rest.rpartition("/")
    name = unquote(name)
    if name not in h.state.models or verb not in ("load", "unload"):
        return h.reply(400, {"error": "failed to load '%s', failed to poll from model "
                                      "repository" % name})
    if verb == "unload":
        h.state.unload(name)
        return h.reply(200)
    try:
        h.state.load(name)
    except MemoryError as e:
        return h.reply(400, {"error": "load failed for model '%s': %s" % (name, e)})
    h.reply(200)


def ready(h, rest):
    name, _, what = rest.rpartition("/")
    name = unquote(name)
    if what != "ready":
        return h.reply(404, {"error": "not found"})
    if name in h.state.models and h.state.loaded(name):
        return h.reply(200)
    h.reply(400, {"error": "model '%s' is not ready" % name})


class Handler(emulator.Handler):
    routes = {("GET", "/v2/health/ready"): lambda h: h.reply(200)}
    prefix_routes = [("POST", "/v2/repository/models/", repository),
                     ("GET", "/v2/models/", ready)]


if __name__ == "__main__":
    args = emulator.arguments(__doc__, models=True)
    state = emulator.Server(args, emulator.InProcess, args.model or ["resnet"])
    for m in args.preload:
        state.load(m)
    emulator.serve(args, Handler, state)
