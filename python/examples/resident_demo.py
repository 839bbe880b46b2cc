#!/usr/bin/env python3
"""A Python service that is a gpucoord resident: it keeps "model weights" on the GPU,
gives them back when the coordinator needs the memory, and asks for them back when a
request arrives while they are unloaded.

The weights are N bytes held through the CUDA driver API with ctypes (a stand-in for
model.to("cuda") / model.to("cpu"); no PyTorch needed), so the demo runs on a real GPU
and on gpusim alike:

    LD_LIBRARY_PATH=build/sim PYTHONPATH=python \\
        python3 python/examples/resident_demo.py --bytes 4.7Gi --name scorer --port 9000
    curl localhost:9000/infer

It registers before its weights go on the GPU and lets the coordinator load them
(Resident.start), so that it never takes memory a lease holds; without a coordinator
it loads them at once. Prints "ready port=P seed_port=S pid=PID" once it is
registered and its weights are loaded (or --wait seconds passed).
"""
import argparse
import ctypes
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gpucoord  # noqa: E402


class Weights:
    """N bytes of device memory: load() allocates, unload() frees (driver API)."""

    def __init__(self, nbytes):
        self.nbytes = nbytes
        self.cu = cu = ctypes.CDLL("libcuda.so.1")
        cu.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_size_t]
        cu.cuMemFree_v2.argtypes = [ctypes.c_ulonglong]
        self.ctx = ctypes.c_void_p()
        dev = ctypes.c_int()
        self._check(cu.cuInit(0), "cuInit")
        self._check(cu.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
        self._check(cu.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), dev),
                    "cuDevicePrimaryCtxRetain")
        self.ptr = None  # loaded when the coordinator made room (SeedServer reload)

    @staticmethod
    def _check(rc, what):
        if rc != 0:
            raise RuntimeError("%s failed: CUDA error %d%s" % (
                what, rc, " (out of memory)" if rc == 2 else ""))

    def load(self):
        if self.ptr is not None:
            return
        self._check(self.cu.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")  # per thread
        ptr = ctypes.c_ulonglong()
        self._check(self.cu.cuMemAlloc_v2(ctypes.byref(ptr), self.nbytes), "cuMemAlloc")
        self.ptr = ptr  # with PyTorch: model.to("cuda")

    def unload(self):
        if self.ptr is None:
            return
        self._check(self.cu.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")
        self._check(self.cu.cuMemFree_v2(self.ptr), "cuMemFree")
        self.ptr = None  # with PyTorch: model.to("cpu"); torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="py-resident")
    ap.add_argument("--bytes", default="1Gi")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--coordinator", help="coordinator URL (default $GPUCOORD_URL)")
    ap.add_argument("--priority", type=int)
    ap.add_argument("--wait", type=float, default=60.0,
                    help="seconds to wait for the weights before printing ready")
    args = ap.parse_args()

    weights = Weights(gpucoord.parse_size(args.bytes))
    # The coordinator's callbacks, on their own loopback port; nothing loaded yet.
    seed = gpucoord.SeedServer(unload=weights.unload, reload=weights.load, loaded=False)
    resident = gpucoord.Resident(args.name, seed=seed, bytes=weights.nbytes,
                                 priority=args.priority,
                                 client=gpucoord.Client(args.coordinator))
    # Registers (unloaded), asks for room, and keeps registered across restarts.
    resident.start(wait_s=args.wait, interval_s=2)

    class App(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path.rstrip("/") != "/infer":
                self.send_error(404)
                return
            demanded = False
            if not seed.loaded:
                # A request while unloaded: ask for the memory back and wait.
                resident.demand(wait_s=60)
                demanded = True
            ok = weights.ptr is not None  # "run the model"
            data = json.dumps({"ok": ok, "demanded": demanded}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    app = ThreadingHTTPServer(("127.0.0.1", args.port), App)
    app.daemon_threads = True

    def stop(signum, frame):
        threading.Thread(target=app.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready port=%d seed_port=%d pid=%d" % (app.server_address[1], seed.port, os.getpid()),
          flush=True)
    try:
        app.serve_forever()
    finally:
        resident.unregister()
        seed.stop()


if __name__ == "__main__":
    main()
