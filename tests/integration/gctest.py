"""gctest - real processes on loopback for gpucoord's integration tests.

Each test gets its own temporary directory, gpusim state file, ports and state
directory; every process it starts is killed at the end. Standard library only.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BUILD = os.path.abspath(os.environ.get("GPUCOORD_BUILD", os.path.join(
    os.path.dirname(__file__), "..", "..", "build")))
SIM = os.path.join(BUILD, "sim")
# GPUCOORD_REAL_GPU=1: run on the real driver (scripts/gpu-check.sh) instead of gpusim.
REAL_GPU = os.environ.get("GPUCOORD_REAL_GPU") == "1"


def _build_is_sanitized():
    """True for a build with -Db_sanitize (its code runs several times slower)."""
    try:
        with open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")) as f:
            options = json.load(f)
    except (OSError, ValueError):
        return False
    return any(o["name"] == "b_sanitize" and o["value"] not in ("none", "") for o in options)


SANITIZED = _build_is_sanitized()
GiB = 1 << 30
MiB = 1 << 20
CTX = 300 * MiB
CARD = 24564 * MiB
VAL_BYTES = 5046586572   # 4.7Gi
GEN_BYTES = 21045339750  # 19.6Gi


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Http:
    """A tiny JSON client: returns (status, parsed body or text)."""

    def __init__(self, base, token=None):
        self.base = base
        self.token = token

    def call(self, method, path, body=None, timeout=30, raw=None, headers=None):
        data = None
        h = dict(headers or {})
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, text, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        if "json" in ctype and text:
            return status, json.loads(text)
        return status, text

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


class Proc:
    """A started process whose first stdout line is awaited (e.g. 'ready ...')."""

    def __init__(self, argv, env, log_path, ready_prefix=None, timeout=15):
        self.log = open(log_path, "ab")
        self.argv = argv
        try:
            self.p = subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE if ready_prefix else self.log,
                stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            self.log.close()
            raise
        self.ready = None
        if ready_prefix is not None:
            deadline = time.monotonic() + timeout
            line = b""
            while time.monotonic() < deadline:
                line = self.p.stdout.readline()
                if not line:
                    break
                if line.startswith(ready_prefix.encode()):
                    self.ready = line.decode().strip()
                    break
            if self.ready is None:
                self.kill()
                raise AssertionError("%s did not become ready (exit %s); see %s" % (
                    argv[0], self.p.poll(), log_path))

    @property
    def pid(self):
        return self.p.pid

    def field(self, name):
        for tok in (self.ready or "").split():
            if tok.startswith(name + "="):
                return tok.split("=", 1)[1]
        return None

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        try:
            os.kill(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.p.wait(timeout=10)
        if self.p.stdout:
            self.p.stdout.close()
        self.log.close()

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.p.returncode


class GpuEnv(unittest.TestCase):
    """A test case with its own simulated GPU and helpers to start processes."""

    devices = "24564Mi"
    extra_env = {}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gctest-")
        self.procs = []
        self.env = dict(os.environ)
        if not REAL_GPU:
            self.env.update({
                "LD_LIBRARY_PATH": SIM,
                "GPUSIM_STATE": os.path.join(self.tmp, "gpusim"),
                "GPUSIM_DEVICES": self.devices,
            })
        self.env.pop("GPUCOORD_URL", None)
        # Sanitizer builds: reports go to files here, and any report fails the test.
        self.env["ASAN_OPTIONS"] = "log_path=%s:abort_on_error=0" % self.path("asan")
        self.env["UBSAN_OPTIONS"] = "log_path=%s:print_stacktrace=1" % self.path("ubsan")
        self.env.update(self.extra_env)
        self.coord = None
        self.http = None

    def tearDown(self):
        # Stop politely first, so that sanitizer builds check for leaks at exit.
        for p in reversed(self.procs):
            p.stop(timeout=5)
        reports = self.sanitizer_reports()
        if reports:
            self._dump_logs()
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.fail("sanitizer report:\n" + reports[:8000])
        if self._outcome_failed():
            self._dump_logs()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def sanitizer_reports(self):
        text = ""
        for name in sorted(os.listdir(self.tmp)):
            if name.startswith(("asan.", "ubsan.")):
                with open(os.path.join(self.tmp, name), errors="replace") as f:
                    text += "----- %s -----\n%s\n" % (name, f.read())
        return text

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        errors = getattr(outcome, "errors", None) or []
        result = getattr(outcome, "result", None)
        if result is not None:
            errors = list(getattr(result, "failures", [])) + list(getattr(result, "errors", []))
            return any(t is self for t, _ in errors)
        return any(e for _, e in errors)

    def _dump_logs(self):
        for name in sorted(os.listdir(self.tmp)):
            if name.endswith(".log"):
                with open(os.path.join(self.tmp, name), errors="replace") as f:
                    text = f.read()[-6000:]
                print("\n----- %s -----\n%s" % (name, text))

    def path(self, name):
        return os.path.join(self.tmp, name)

    def start(self, argv, name, ready=None, env=None, timeout=15):
        p = Proc(argv, env or self.env, self.path(name + ".log"), ready, timeout)
        self.procs.append(p)
        return p

    def start_coordinator(self, *args, config=None, state_dir=None, port=None, wait=True):
        port = port or free_port()
        self.coord_port = port
        self.state_dir = state_dir or self.path("state")
        self.socket = self.path("gpucoord.sock")
        argv = [os.path.join(BUILD, "gpucoordd"), "--listen", "127.0.0.1:%d" % port,
                "--state-dir", self.state_dir, "--socket", self.socket]
        if config is not None:
            cpath = self.path("gpucoord.ini")
            with open(cpath, "w") as f:
                f.write(config)
            argv += ["--config", cpath]
        argv += list(args)
        self.coord = self.start(argv, "gpucoordd")
        self.url = "http://127.0.0.1:%d" % port
        self.http = Http(self.url)
        if wait:
            wait_until(lambda: self._healthy(), timeout=10, what="gpucoordd /health")
        return self.coord

    def _healthy(self):
        if not self.coord.alive():
            raise AssertionError("gpucoordd exited with %s" % self.coord.p.returncode)
        try:
            return self.http.get("/health", timeout=2)[0] == 200
        except OSError:
            return False

    def start_resident(self, name="validation", bytes_="4.7Gi", *args, register=True):
        argv = [os.path.join(BUILD, "tests", "tools", "fake-resident"), "--port", "0",
                "--bytes", bytes_, "--name", name] + list(args)
        if register:
            argv += ["--register", self.url]
        return self.start(argv, "resident-" + name, ready="ready")

    def start_holder(self, bytes_, *args, name="holder"):
        argv = [os.path.join(BUILD, "src", "tools", "gpu-hold"), "--bytes", bytes_] + list(args)
        return self.start(argv, name, ready="ready")

    # Views of the truth.
    def gpu(self, index=0):
        st, body = self.http.get("/v1/gpus")
        self.assertEqual(st, 200)
        return body["gpus"][index]

    def proc_usage(self, pid, index=0):
        for p in self.gpu(index)["processes"]:
            if p["pid"] == pid:
                return p["used_bytes"]
        return 0

    def resident(self, name):
        st, body = self.http.get("/v1/residents/" + name)
        self.assertEqual(st, 200, body)
        return body

    def sim_status(self):
        out = subprocess.run([os.path.join(SIM, "gpusim-ctl"), "status", "--json"],
                             env=self.env, capture_output=True, timeout=10, check=True)
        return json.loads(out.stdout)

    def events(self, since=0):
        st, body = self.http.get("/v1/events?since=%d" % since)
        self.assertEqual(st, 200)
        return body["events"]

    def event_kinds(self, subject=None):
        return [e["kind"] for e in self.events() if subject is None or e["subject"] == subject]
