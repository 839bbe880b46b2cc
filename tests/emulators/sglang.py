#!/usr/bin/env python3
"""SGLang emulator: the memory saver's routes (--enable-memory-saver).
https://docs.sglang.io/advanced_features/sglang_for_rl.html

POST /release_memory_occupation {tags?} and POST /resume_memory_occupation
{tags?} -> 200; POST /flush_cache -> 200; GET /health -> 200.
"""
import emulator

M = "model"


def release(h):
    if h.json_body() is None:
        return h.reply(400, {"error": "body must be JSON"})
    h.state.unload(M)
    h.reply(200, {"success": True, "message": "Succeeded to release memory occupation."})


def resume(h):
    if h.json_body() is None:
        return h.reply(400, {"error": "body must be JSON"})
    try:
        h.state.load(M)
    except MemoryError as e:
        return h.reply(500, {"success": False, "message": str(e)})
    h.reply(200, {"success": True, "message": "Succeeded to resume memory occupation."})


def flush(h):
    h.body()
    h.reply(200, text="Cache flushed.")


class Handler(emulator.Handler):
    routes = {
        ("POST", "/release_memory_occupation"): release,
        ("POST", "/resume_memory_occupation"): resume,
        ("POST", "/flush_cache"): flush,
        ("GET", "/health"): lambda h: h.reply(200),
    }


if __name__ == "__main__":
    args = emulator.arguments(__doc__)
    state = emulator.Server(args, emulator.InProcess, [M])
    state.load(M)
    emulator.serve(args, Handler, state)
