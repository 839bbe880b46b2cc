#!/usr/bin/env python3
"""vLLM emulator: sleep mode as documented.
https://docs.vllm.ai/en/latest/features/sleep_mode/
https://docs.vllm.ai/en/v0.14.0/api/vllm/entrypoints/serve/sleep/api_router/

POST /sleep?level=1 -> 200 with an empty body; POST /wake_up -> 200;
GET /is_sleeping -> {"is_sleeping": bool}; GET /health -> 200.
"""
import emulator

M = "model"


def sleep(h):
    h.body()
    if h.query.get("level", ["1"])[0] not in ("1", "2"):
        return h.reply(400, {"error": "level must be 1 or 2"})
    h.state.unload(M)
    h.reply(200)


def wake_up(h):
    h.body()
    try:
        h.state.load(M)
    except MemoryError as e:
        return h.reply(500, {"error": str(e)})
    h.reply(200)


def is_sleeping(h):
    h.reply(200, {"is_sleeping": not h.state.loaded(M)})


class Handler(emulator.Handler):
    routes = {
        ("POST", "/sleep"): sleep,
        ("POST", "/wake_up"): wake_up,
        ("GET", "/is_sleeping"): is_sleeping,
        ("GET", "/health"): lambda h: h.reply(200),
    }


if __name__ == "__main__":
    args = emulator.arguments(__doc__)
    state = emulator.Server(args, emulator.InProcess, [M])
    state.load(M)
    emulator.serve(args, Handler, state)
