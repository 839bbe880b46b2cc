"""emulator - the shared body of the model-server emulators in this folder.

Each emulator follows one server's documented HTTP API (its module names the
page) and holds its model's memory on the GPU through gpumem (gpusim on CPU
machines). Misbehaviour switches reproduce how real servers lie about freeing
memory (see GPU-FACTS.md):

  --misbehave none    free, then answer (an honest server)
  --misbehave late    answer at once, free --late-ms later (vLLM /sleep, Triton, ComfyUI)
  --misbehave never   answer success, never free (a caching allocator that keeps it)
  --misbehave crash   exit abruptly in the middle of an unload, before answering

Every emulator prints "ready port=N pid=P" once it listens, and serves
GET /stream?n=N&delay_ms=D (server-sent events, chunked), POST /echo (the size
and SHA-256 of the body) and GET /blob?n=N (N bytes, chunked) for the proxy's
tests.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from gpumem import GpuMemory

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_size(text):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return int(float(text[:-len(suffix)]) * units[suffix])
    return int(text)


def arguments(description, models=False, extra=()):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bytes", default="4Gi", help="memory each model holds")
    ap.add_argument("--misbehave", choices=["none", "late", "never", "crash"], default="none")
    ap.add_argument("--late-ms", type=int, default=1500)
    if models:
        ap.add_argument("--model", action="append", default=[],
                        help="a model the server knows (repeatable)")
        ap.add_argument("--preload", action="append", default=[],
                        help="a model loaded at start (repeatable)")
    for flag, kind, default, what in extra:
        ap.add_argument(flag, type=kind, default=default, help=what)
    args = ap.parse_args()
    args.nbytes = parse_size(args.bytes)
    return args


class InProcess:
    """A model whose memory this process holds (vLLM, SGLang, Triton, ComfyUI)."""

    def __init__(self, nbytes):
        self.nbytes = nbytes
        self.mem = None

    def load(self):
        if self.mem is None:
            self.mem = GpuMemory()
        self.mem.hold(self.nbytes)

    def unload(self):
        if self.mem is not None:
            self.mem.release()

    def loaded(self):
        return self.mem is not None and self.mem.held()


class Runner:
    """A model held by a child process (Ollama's runners, llama.cpp's router,
    llama-swap's upstreams): loading starts one, unloading stops it. The child
    exits when this process dies (its stdin closes), as real runners do."""

    def __init__(self, nbytes):
        self.nbytes = nbytes
        self.proc = None

    def load(self):
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "runner.py"), str(self.nbytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line.startswith(b"loaded"):
            self.proc.wait(timeout=10)
            self.proc = None
            raise MemoryError("runner could not load: %r" % line)

    def unload(self):
        if self.proc is None:
            return
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc = None

    def loaded(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid if self.loaded() else None


class Server:
    """State shared by the handler threads: models by name and the misbehaviour."""

    def __init__(self, args, holder_cls, names):
        self.args = args
        self.models = {n: holder_cls(args.nbytes) for n in names}
        self.lock = threading.Lock()
        self.asleep = set()  # answered "unloaded" while still holding (late / never)

    def load(self, name):
        with self.lock:
            self.asleep.discard(name)
            self.models[name].load()

    def unload(self, name):
        """Unloads per --misbehave; returns once the answer may be sent."""
        mode = self.args.misbehave
        if mode == "crash":
            sys.stderr.write("emulator: crashing mid-unload\n")
            sys.stderr.flush()
            os._exit(3)
        with self.lock:
            if mode == "never":
                self.asleep.add(name)
                return
            if mode == "late":
                self.asleep.add(name)
                threading.Timer(self.args.late_ms / 1000.0, self._late_free, (name,)).start()
                return
            self.models[name].unload()

    def _late_free(self, name):
        with self.lock:
            if name in self.asleep:
                self.models[name].unload()

    def loaded(self, name):
        with self.lock:
            return self.models[name].loaded() and name not in self.asleep


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the emulator's ROUTES: {(method, path): fn(handler)} and
    PREFIX_ROUTES: [(method, prefix, fn(handler, rest))]."""

    protocol_version = "HTTP/1.1"
    server_version = "emulator/1"
    routes = {}
    prefix_routes = []
    state = None

    def log_message(self, fmt, *args):
        sys.stderr.write("emulator: " + (fmt % args) + "\n")

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self):
        raw = self.body()
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def reply(self, status, obj=None, text=None, ctype="application/json"):
        data = b""
        if obj is not None:
            data = json.dumps(obj).encode()
        elif text is not None:
            data = text.encode()
            ctype = "text/plain; charset=utf-8"
        self.send_response(status)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method):
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        fn = self.routes.get((method, url.path))
        if fn is not None:
            return fn(self)
        for m, prefix, pfn in self.prefix_routes:
            if m == method and url.path.startswith(prefix):
                return pfn(self, url.path[len(prefix):])
        if method == "GET" and url.path == "/stream":
            return self._stream()
        if method == "POST" and url.path == "/echo":
            return self._echo()
        if method == "GET" and url.path == "/blob":
            return self._blob()
        self.body()
        return self.reply(404, {"error": "no route %s %s" % (method, url.path)})

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self):
        """Server-sent events, one per delay, chunked: what a token stream looks like."""
        n = int(self.query.get("n", ["5"])[0])
        delay = int(self.query.get("delay_ms", ["100"])[0]) / 1000.0
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i in range(n):
                self._chunk(b"data: {\"token\": %d}\n\n" % i)
                time.sleep(delay)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            sys.stderr.write("emulator: stream client went away\n")
            self.close_connection = True

    def _echo(self):
        """Reads the body as it comes (without keeping it) and says what arrived."""
        n = int(self.headers.get("Content-Length") or 0)
        digest, got = hashlib.sha256(), 0
        while got < n:
            data = self.rfile.read(min(n - got, 1 << 16))
            if not data:
                break
            got += len(data)
            digest.update(data)
        self.reply(200, {"bytes": got, "sha256": digest.hexdigest()})

    def _blob(self):
        """n bytes of a known pattern, chunked: a large answer."""
        n = int(self.query.get("n", ["0"])[0])
        block = bytes(range(256)) * 256
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while n > 0:
            part = block[:min(n, len(block))]
            self._chunk(part)
            n -= len(part)
        self._chunk(b"")


def serve(args, handler_cls, state):
    handler_cls.state = state
    httpd = ThreadingHTTPServer((args.host, args.port), handler_cls)
    httpd.daemon_threads = True
    print("ready port=%d pid=%d" % (httpd.server_address[1], os.getpid()), flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
