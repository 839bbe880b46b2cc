"""SeedServer: the coordinator's side of the `seed` resident protocol (DESIGN.md
section 5) for a Python service, on its own loopback port, with http.server.

    seed = SeedServer(unload=move_models_to_cpu, reload=move_models_to_gpu)
    Resident("scorer", seed.url, bytes="4.7Gi").keep_registered()

The coordinator calls POST /unload_models/, /reload_models/, /cleanup_gpu/ and
GET /health/; each runs your callable (one step at a time) and answers what the
protocol expects. Once a Resident is attached (Resident(..., seed=seed)), growth goes
through the coordinator: a /reload_models/ that is not the coordinator's own call (it
is not reloading this resident) becomes a demand, and the reload runs when the
coordinator has made room; with no coordinator reachable it runs at once. A callable that raises answers {"status": "error", ...} with HTTP
500, so the coordinator fails the step instead of trusting it. The coordinator
verifies through NVML that memory really went away: an unload must give the memory
back to the driver (with PyTorch: move the weights and call torch.cuda.empty_cache()).
"""
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .errors import CoordinatorUnavailable, DemandTimeout, GpucoordError

__all__ = ["SeedServer"]

log = logging.getLogger("gpucoord")


class SeedServer:
    """Serves the seed protocol in a daemon thread.

    unload(), reload(): required callables; cleanup(): optional (e.g. gc.collect() and
    torch.cuda.empty_cache()). host/port: where to listen (port 0 picks a free one).
    `loaded` tracks the state (True at start); `url` is what to register.
    """

    # Longest a /reload_models/ sent straight to the server waits for room.
    direct_reload_wait_s = 60.0

    def __init__(self, unload, reload, cleanup=None, host="127.0.0.1", port=0, loaded=True):
        self._unload, self._reload, self._cleanup = unload, reload, cleanup
        self.resident = None  # the Resident registered for it (set by Resident(seed=...))
        self._step = threading.Lock()  # one unload/reload/cleanup at a time
        self._state = threading.Condition()
        self._loaded = bool(loaded)
        self.ever_loaded = self._loaded  # False until the first load (Resident waits for it)
        self.unloads = self.reloads = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                log.debug("seed %s: " + fmt, self.address_string(), *args)

            def _answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _path(self):
                return self.path.split("?", 1)[0].rstrip("/") or "/"

            def do_GET(self):
                if self._path() == "/health":
                    self._answer(200, {"status": "healthy", "models_loaded": server.loaded})
                else:
                    self._answer(404, {"error": "not_found", "message": "no such path"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                path = self._path()
                if path == "/unload_models":
                    self._answer(*server._run("unload"))
                elif path == "/reload_models":
                    self._answer(*server._reload_asked())
                elif path == "/cleanup_gpu":
                    self._answer(*server._run("cleanup"))
                else:
                    self._answer(404, {"error": "not_found", "message": "no such path"})

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.host = host
        self.port = self._httpd.server_address[1]
        self.url = "http://%s:%d" % (host if ":" not in host else "[%s]" % host, self.port)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="gpucoord-seed-%d" % self.port)
        self._thread.start()

    def __repr__(self):
        return "<gpucoord.SeedServer %s %s>" % (self.url, "loaded" if self.loaded else "unloaded")

    @property
    def loaded(self):
        return self._loaded

    def wait_loaded(self, timeout=None):
        """Blocks until the models are loaded (True) or timeout passes (False)."""
        with self._state:
            return self._state.wait_for(lambda: self._loaded, timeout)

    def _set_loaded(self, value):
        with self._state:
            self._loaded = value
            self.ever_loaded = self.ever_loaded or value
            self._state.notify_all()

    def _reload_asked(self):
        """A /reload_models/: runs it when the coordinator is reloading this resident
        (the room is claimed) or cannot be asked; otherwise demands the room and
        answers once the coordinator's own reload has run."""
        res = self.resident
        if res is None or self._loaded:
            return self._run("reload")
        try:
            if res.state() in (None, "reloading"):
                return self._run("reload")
        except CoordinatorUnavailable:
            return self._run("reload")  # standalone
        t0 = time.monotonic()
        try:
            res.demand(self.direct_reload_wait_s)
            if self.wait_loaded(timeout=5.0):
                return 200, {"status": "success", "models_reloaded": True,
                             "reload_time": time.monotonic() - t0}
            error = "the coordinator reports the resident loaded, but the reload has not run"
        except DemandTimeout:
            error = ("no room on the GPU within %.0f s: the coordinator keeps the request "
                     "queued and reloads the models once there is room"
                     % self.direct_reload_wait_s)
        except GpucoordError as e:
            error = "the coordinator could not reload it: %s" % e
        return 503, {"status": "error", "error": error, "models_reloaded": False}

    def _run(self, step):
        with self._step:
            t0 = time.monotonic()
            try:
                if step == "unload":
                    self._unload()
                    self.unloads += 1
                    self._set_loaded(False)
                    return 200, {"status": "success", "models_unloaded": True,
                                 "unload_time": time.monotonic() - t0}
                if step == "reload":
                    self._reload()
                    self.reloads += 1
                    self._set_loaded(True)
                    return 200, {"status": "success", "models_reloaded": True,
                                 "reload_time": time.monotonic() - t0}
                if self._cleanup is not None:
                    self._cleanup()
                return 200, {"status": "success", "cleanup_time": time.monotonic() - t0}
            except Exception as e:  # the coordinator must hear about it, not a success
                log.exception("gpucoord seed %s failed", step)
                key = "models_unloaded" if step == "unload" else "models_reloaded"
                return 500, {"status": "error", "error": "%s: %s" % (type(e).__name__, e),
                             key: False}

    def stop(self):
        """Stops serving (the coordinator can no longer unload or reload it)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
