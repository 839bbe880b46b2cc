#!/usr/bin/env python3
"""llama-server router-mode emulator: each loaded model is a child process.
https://huggingface.co/blog/ggml-org/model-management-in-llamacpp
https://github.com/ggml-org/llama.cpp/tree/master/tools/server

POST /models/load {"model"} and POST /models/unload {"model"} -> {"success": true};
unknown model -> 404 {"error"}; GET /models -> {"data": [{id, status: {value}}]};
GET /health -> {"status": "ok"}.
"""
import emulator


def model_of(h):
    req = h.json_body()
    if not isinstance(req, dict) or not isinstance(req.get("model"), str):
        h.reply(400, {"error": {"code": 400, "message": "model is required"}})
        return None
    if req["model"] not in h.state.models:
        h.reply(404, {"error": {"code": 404, "message": "model not found"}})
        return None
    return req["model"]


def load(h):
    name = model_of(h)
    if name is None:
        return
    try:
        h.state.load(name)
    except MemoryError as e:
        return h.reply(500, {"error": {"code": 500, "message": str(e)}})
    h.reply(200, {"success": True})


def unload(h):
    name = model_of(h)
    if name is None:
        return
    h.state.unload(name)
    h.reply(200, {"success": True})


def models(h):
    data = [{"id": n, "object": "model",
             "status": {"value": "loaded" if h.state.loaded(n) else "unloaded"}}
            for n in sorted(h.state.models)]
    h.reply(200, {"object": "list", "data": data})


class Handler(emulator.Handler):
    routes = {
        ("POST", "/models/load"): load,
        ("POST", "/models/unload"): unload,
        ("GET", "/models"): models,
        ("GET", "/health"): lambda h: h.reply(200, {"status": "ok"}),
    }


if __name__ == "__main__":
    args = emulator.arguments(__doc__, models=True)
    state = emulator.Server(args, emulator.Runner, args.model or ["qwen3-8b"])
    for m in args.preload:
        state.load(m)
    emulator.serve(args, Handler, state)
