"""The coordinator client (API v1, DESIGN.md section 4) and leases.

Standard library only. Every call opens its own connection, so one Client may be used
from many threads at once (a lease's heartbeat thread uses it too).
"""
import http.client
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

from .errors import (CoordinatorUnavailable, DemandTimeout, GpucoordError,
                     LeaseLost, LeaseTimeout, NotFound, WaitTimeout, error_from_answer)
from .sizes import format_size, parse_size

__all__ = ["Client", "Lease", "DEFAULT_URL", "VERSION"]

VERSION = "0.1.0"
DEFAULT_URL = "http://127.0.0.1:10010"
# Longest single server-side wait; longer waits are chained (as libgpucoord does).
WAIT_SLICE_S = 30.0
# Heartbeats go out this many times per TTL.
HEARTBEATS_PER_TTL = 3
# Unload and reload answer once the step is verified: allow for slow residents.
RESIDENT_STEP_TIMEOUT_S = 300.0

log = logging.getLogger("gpucoord")

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)


class _Default:
    def __repr__(self):
        return "<this process>"


# "The calling process" for pid arguments, resolved when used (not at import or fork).
THIS_PROCESS = _Default()


def resolve_pid(pid):
    """THIS_PROCESS -> os.getpid(); None or 0 -> None (no pid); an int -> itself."""
    if pid is THIS_PROCESS:
        return os.getpid()
    if pid is None or pid == 0:
        return None
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
        raise ValueError("pid must be a positive int or None")
    return pid


def default_holder():
    """A holder name from the program name ("serve" for serve.py), else "python"."""
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if base.endswith(".py"):
        base = base[:-3]
    if base in ("", "-c", "-", "__main__"):
        base = "python"
    return re.sub(r"[^A-Za-z0-9._-]", "-", base)[:64]


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self._unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def _parse_url(url):
    """-> (kind, where, path_prefix): ("unix", path, ""), ("http"/"https", (host, port), prefix)."""
    if url.startswith("unix:"):
        path = url[5:]
        if path.startswith("//"):  # unix:///run/x.sock
            path = path[2:]
        if not path:
            raise ValueError("unix: URL without a socket path: %r" % url)
        return "unix", path, ""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("coordinator URL must look like http://HOST:PORT or unix:/path/to.sock,"
                         " not %r" % url)
    # "http://127.0.0.1:1@elsewhere" connects to elsewhere (and would send it the token).
    if "@" in parts.netloc:
        raise ValueError("coordinator URL must not contain a user part ('@'): %r" % url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname, port), parts.path.rstrip("/")


class Client:
    """A client for gpucoordd.

    url: "http://HOST:PORT" or "unix:/path/to.sock"; None means $GPUCOORD_URL, else
    http://127.0.0.1:10010. token: sent as "Authorization: Bearer TOKEN"; None means
    $GPUCOORD_TOKEN. timeout: seconds for one exchange, on top of any wait the request
    itself asks the coordinator for.
    """

    def __init__(self, url=None, token=None, timeout=10.0):
        if not url:
            url = os.environ.get("GPUCOORD_URL") or DEFAULT_URL
        if token is None:
            token = os.environ.get("GPUCOORD_TOKEN") or None
        self.url = url
        self.token = token
        self.timeout = float(timeout)
        self._kind, self._where, self._prefix = _parse_url(url)

    def __repr__(self):
        return "gpucoord.Client(%r)" % self.url

    # ---- transport ----

    def _connection(self, timeout):
        if self._kind == "unix":
            return _UnixHTTPConnection(self._where, timeout)
        host, port = self._where
        if self._kind == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method, path, body=None, timeout=None):
        """One raw exchange. Returns (status, answer): answer is the parsed JSON, the text
        of a non-JSON answer, or None when empty. Raises CoordinatorUnavailable when no
        answer came back; never raises for an HTTP error status."""
        timeout = self.timeout if timeout is None else timeout
        headers = {"Accept": "application/json", "Connection": "close",
                   "User-Agent": "gpucoord-python/" + VERSION}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        conn = self._connection(timeout)
        try:
            conn.request(method, self._prefix + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status, ctype = resp.status, resp.getheader("Content-Type", "")
        except socket.timeout as e:
            raise CoordinatorUnavailable(
                "no answer from the coordinator at %s within %.1f s (%s %s)"
                % (self.url, timeout, method, path), code="timeout") from e
        except (OSError, http.client.HTTPException) as e:
            raise CoordinatorUnavailable("cannot reach the coordinator at %s (%s: %s)"
                                         % (self.url, type(e).__name__, e)) from e
        finally:
            conn.close()
        if not raw:
            return status, None
        if "json" in ctype:
            try:
                return status, json.loads(raw)
            except ValueError:
                pass
        return status, raw.decode("utf-8", "replace")

    def call(self, method, path, body=None, timeout=None):
        """Like request() but raises the GpucoordError subclass for an error answer;
        returns (status, answer) for 2xx."""
        status, ans = self.request(method, path, body, timeout)
        if status >= 300:
            raise error_from_answer(status, ans, "%s %s" % (method, path))
        return status, ans

    def _get(self, path, timeout=None):
        return self.call("GET", path, timeout=timeout)[1]

    # ---- views ----

    def health(self):
        """GET /health: {"status": "ok"}."""
        return self._get("/health")

    def status(self):
        """GET /v1/status: gpus, residents, leases, queue, counters."""
        return self._get("/v1/status")

    def gpus(self):
        """GET /v1/gpus: the list of GPUs (total/free/used/committed bytes, processes)."""
        return self._get("/v1/gpus")["gpus"]

    def gpus_info(self):
        """GET /v1/gpus as a whole: {"gpus": [...], "gpusim": {libdir, state} or None}."""
        return self._get("/v1/gpus")

    def residents(self):
        """GET /v1/residents: the list of residents."""
        return self._get("/v1/residents")["residents"]

    def resident(self, name):
        """GET /v1/residents/{name}: one resident; NotFound if it is not registered."""
        return self._get("/v1/residents/" + _quote(name))

    def leases(self):
        """GET /v1/leases: the active leases (granted and waiting)."""
        return self._get("/v1/leases")["leases"]

    def lease_info(self, lease_id, wait_s=0):
        """GET /v1/leases/{id}[?wait_s=]: one lease, also after it ended."""
        path = "/v1/leases/" + _quote(lease_id)
        if wait_s:
            path += "?wait_s=%.3f" % wait_s
        return self._get(path, timeout=self.timeout + (wait_s or 0))

    def events(self, since=0, wait_s=0):
        """GET /v1/events: the list of recent events newer than seq `since` (each with seq,
        time, kind, subject, detail). wait_s (<= 60) long-polls until there is one."""
        path = "/v1/events?since=%d" % since
        if wait_s:
            path += "&wait_s=%.3f" % wait_s
        return self._get(path, timeout=self.timeout + (wait_s or 0))["events"]

    def iter_events(self, since=0, wait_s=30):
        """Yields events as they happen (long polls), forever."""
        while True:
            for ev in self.events(since, wait_s):
                since = max(since, ev.get("seq", since))
                yield ev

    def metrics(self):
        """GET /metrics: the Prometheus text."""
        return self._get("/metrics")

    # ---- residents ----

    def register_resident(self, name, url=None, protocol="seed", pid=None, bytes=None,
                          gpu=None, priority=None, restore=None, on_stuck=None, **extra):
        """POST /v1/residents; returns the resident (re-registering replaces it). extra:
        the other registration fields (unload_timeout_s, reload_timeout_s,
        verify_timeout_s, kill_grace_s, and unload/reload/cleanup/health/command for the
        http and process protocols)."""
        body = {"name": name, "protocol": protocol}
        if url is not None:
            body["url"] = url
        pid = resolve_pid(pid)
        if pid is not None:
            body["pid"] = pid
        if bytes is not None:
            body["bytes"] = parse_size(bytes)
        for key, value in (("gpu", gpu), ("priority", priority), ("restore", restore),
                           ("on_stuck", on_stuck)):
            if value is not None:
                body[key] = value
        body.update(extra)
        return self.call("POST", "/v1/residents", body)[1]

    def delete_resident(self, name):
        """DELETE /v1/residents/{name}."""
        self.call("DELETE", "/v1/residents/" + _quote(name))

    def unload(self, name, timeout=RESIDENT_STEP_TIMEOUT_S):
        """POST /v1/residents/{name}/unload: returns the resident once the unload is
        verified through NVML."""
        return self.call("POST", "/v1/residents/%s/unload" % _quote(name), timeout=timeout)[1]

    def reload(self, name, timeout=RESIDENT_STEP_TIMEOUT_S):
        """POST /v1/residents/{name}/reload: returns the resident once it is loaded."""
        return self.call("POST", "/v1/residents/%s/reload" % _quote(name), timeout=timeout)[1]

    def demand(self, name, wait_s=60.0, priority=None):
        """POST /v1/residents/{name}/demand: asks for the resident's memory back and waits
        until it is loaded; returns the resident. wait_s None waits without limit.
        Raises DemandTimeout when the wait ends first (the demand stays queued),
        Unavailable when the resident failed, NotFound when it is not registered."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        path = "/v1/residents/%s/demand" % _quote(name)
        while True:
            left = WAIT_SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
            w = min(left, WAIT_SLICE_S)
            body = {"wait_s": round(w, 3)}
            if priority is not None:
                body["priority"] = priority
            status, ans = self.call("POST", path, body, timeout=self.timeout + w)
            if status == 200:
                return ans
            if deadline is not None and time.monotonic() >= deadline:
                raise DemandTimeout("resident '%s' is still %s after %.1f s (its demand stays "
                                    "queued at position %s)" % (
                                        name, (ans or {}).get("state", "unloaded"), wait_s,
                                        (ans or {}).get("position", "?")),
                                    status=status, body=ans)

    # ---- leases ----

    def lease(self, bytes, holder=None, gpu="any", priority=None, ttl_s=None, wait_s=300.0,
              pid=THIS_PROCESS, heartbeat=True, on_lost=None, bind=True):
        """Asks for a lease of `bytes` (an int or "20Gi") and waits up to wait_s for the
        grant (None: no limit). Returns a granted Lease; use it as a context manager or
        call release(). bind=False: the context manager leaves os.environ alone. See
        Lease."""
        return Lease(self, bytes, holder=holder, gpu=gpu, priority=priority, ttl_s=ttl_s,
                     wait_s=wait_s, pid=pid, heartbeat=heartbeat, on_lost=on_lost, bind=bind)

    def heartbeat(self, lease_id):
        """POST /v1/leases/{id}/heartbeat; NotFound once the lease has ended."""
        return self.call("POST", "/v1/leases/%s/heartbeat" % _quote(lease_id))[1]

    def resize(self, lease_id, bytes, wait_s=0.0):
        """POST /v1/leases/{id}/resize: the lease is to hold `bytes` (an int or "8Gi") in
        all. Shrinking is immediate; growing waits up to wait_s while the coordinator
        makes room. Returns the lease's view (its new size in "bytes"); raises
        WaitTimeout when the wait ran out (the lease keeps its size, the growth is
        withdrawn), NeverFits, NotFound."""
        timeout = self.timeout + (wait_s or 0)
        status, ans = self.call("POST", "/v1/leases/%s/resize" % _quote(lease_id),
                                {"bytes": parse_size(bytes), "wait_s": wait_s}, timeout=timeout)
        if status == 202:
            raise WaitTimeout(ans.get("message", "the growth was not granted within wait_s"),
                              status=202)
        return ans

    def release(self, lease_id):
        """DELETE /v1/leases/{id}: ends a lease (or withdraws a waiting request);
        returns {id, state, held_s}."""
        return self.call("DELETE", "/v1/leases/" + _quote(lease_id))[1]


def _failed_lease_error(lease_id, ans):
    """The exception for a lease that failed after it was queued. GET /v1/leases/{id}
    does not carry the error code (only POST's answer does), so when it is absent a
    refusal is recognised by the never-fits arithmetic in its reason."""
    reason = ans.get("reason") or "failed"
    code = ans.get("error")
    if not isinstance(code, str):
        code = "never_fits" if "can give at most" in reason else "could_not_free"
    return error_from_answer(409 if code == "never_fits" else 503,
                             {"error": code, "message": reason, "id": lease_id})


def binding_env(base, lease_id, gpu, gpu_uuid, url, gpusim=None):
    """base (a mapping, not changed) plus the variables that bind a program to a lease:
    the rule `gpucoord run` follows (docs/cli.md, "GPU binding")."""
    env = dict(base)
    env.update({"CUDA_VISIBLE_DEVICES": gpu_uuid, "GPUCOORD_LEASE_ID": lease_id,
                "GPUCOORD_GPU": str(gpu), "GPUCOORD_GPU_UUID": gpu_uuid,
                "GPUCOORD_URL": url})
    if gpusim:
        paths = env.get("LD_LIBRARY_PATH", "")
        if gpusim["libdir"] not in paths.split(":"):
            env["LD_LIBRARY_PATH"] = gpusim["libdir"] + (":" + paths if paths else "")
        if not env.get("GPUSIM_STATE"):
            env["GPUSIM_STATE"] = gpusim["state"]
    return env


def _quote(s):
    return urllib.parse.quote(str(s), safe="")


class Lease:
    """A granted lease: `bytes` of GPU memory promised on GPU `gpu` until release().

    Created by Client.lease(), which waits for the grant: a POST with wait_s, then
    GET /v1/leases/{id}?wait_s= in slices; when the overall wait ends first the
    request is withdrawn (DELETE) and LeaseTimeout is raised. While held, a daemon
    thread sends a heartbeat every ttl_s/3. When a heartbeat answers 404 the lease is
    gone (it expired or someone ended it): `lost` becomes True and `on_lost(lease)` is
    called from that thread. As a context manager it releases on exit, exceptions
    included.

    Binding: env() gives the variables that bind a program to the granted GPU
    (CUDA_VISIBLE_DEVICES = its UUID, GPUCOORD_*; on gpusim its driver and state), the
    same ones `gpucoord run` sets; as a context manager (bind=True) the lease also puts
    them in os.environ on entry and restores the old values on exit, so that CUDA
    initialised inside the block, and programs started from it, use that GPU.

    Attributes: id, gpu, gpu_uuid, bytes, evicted (names of residents unloaded for
    it), waited_s, ttl_s, holder, info (the coordinator's last answer), gpusim, state,
    lost, lost_reason.
    """

    def __init__(self, client, bytes, holder=None, gpu="any", priority=None, ttl_s=None,
                 wait_s=300.0, pid=THIS_PROCESS, heartbeat=True, on_lost=None, bind=True):
        self._client = client
        self.bind = bind
        self.gpu_uuid = None
        self.gpusim = None
        self._saved_environ = None
        self.holder = holder or default_holder()
        self.requested_bytes = parse_size(bytes)
        self.id = None
        self.gpu = None
        self.bytes = None
        self.evicted = []
        self.waited_s = None
        self.ttl_s = None
        self.info = None
        self.state = "requesting"
        self.lost_reason = None
        self.on_lost = on_lost
        self._lost_flag = False
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._released = False
        self._thread = None
        self._acquire(gpu, priority, ttl_s, wait_s, resolve_pid(pid))
        try:
            self._find_binding()
        except BaseException:
            self.release()
            raise
        if heartbeat and self.ttl_s and self.ttl_s > 0:
            self._thread = threading.Thread(target=self._heartbeats, daemon=True,
                                            name="gpucoord-heartbeat-%s" % self.id)
            self._thread.start()

    def __repr__(self):
        return "<gpucoord.Lease %s %s on GPU %s, %s>" % (
            self.id, format_size(self.bytes or self.requested_bytes), self.gpu,
            "lost" if self.lost else self.state)

    # ---- acquiring ----

    def _acquire(self, gpu, priority, ttl_s, wait_s, pid):
        c = self._client
        if wait_s is not None and wait_s < 0:
            raise ValueError("wait_s must be >= 0 or None")
        deadline = None if wait_s is None else time.monotonic() + wait_s
        w = WAIT_SLICE_S if wait_s is None else min(wait_s, WAIT_SLICE_S)
        body = {"holder": self.holder, "bytes": self.requested_bytes,
                "gpu": "any" if gpu is None or gpu == "any" else gpu, "wait_s": round(w, 3)}
        if pid is not None:
            body["pid"] = pid
        if priority is not None:
            body["priority"] = priority
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        status, ans = c.call("POST", "/v1/leases", body, timeout=c.timeout + w)
        if status == 201:
            self._granted(ans)
            return
        lease_id = ans.get("id") if isinstance(ans, dict) else None
        if status != 202 or not lease_id:
            raise GpucoordError("unexpected answer %d from the coordinator: %r" % (status, ans),
                                code="bad_response", status=status)
        self.id = lease_id
        self.state = "queued"
        try:
            while True:
                left = WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    self._withdraw()
                    raise LeaseTimeout(
                        "lease of %s for '%s' still %s after %.1f s (queue position %s); "
                        "request withdrawn" % (format_size(self.requested_bytes), self.holder,
                                               ans.get("state", "queued"), wait_s,
                                               ans.get("position", "?")),
                        body=ans)
                w = min(left, WAIT_SLICE_S)
                ans = c.lease_info(lease_id, wait_s=w)
                self.info = ans
                state = ans.get("state")
                if state == "granted":
                    self._granted(ans)
                    return
                if state in ("queued", "preparing"):
                    self.state = state
                    continue
                reason = ans.get("reason") or state
                self.state = state
                if state == "failed":
                    raise _failed_lease_error(lease_id, ans)
                raise GpucoordError("lease %s ended while waiting (%s): %s"
                                    % (lease_id, state, reason), code="lease_" + str(state),
                                    body=ans)
        except LeaseTimeout:
            raise
        except BaseException:
            # Interrupted or failed while queued: never leave the request behind.
            if self.state in ("queued", "preparing"):
                self._withdraw()
            raise

    def _withdraw(self):
        try:
            self._client.release(self.id)
        except GpucoordError as e:
            log.warning("could not withdraw lease request %s: %s", self.id, e)
        self.state = "withdrawn"

    def _granted(self, ans):
        self.info = ans
        self.id = ans["id"]
        self.gpu = ans.get("gpu")
        self.bytes = ans.get("bytes", self.requested_bytes)
        self.evicted = list(ans.get("evicted") or [])
        self.waited_s = ans.get("waited_s")
        self.ttl_s = ans.get("ttl_s")
        self.state = "granted"

    def _find_binding(self):
        ans = self._client.gpus_info()
        for g in ans.get("gpus", []):
            if g.get("index") == self.gpu:
                self.gpu_uuid = g.get("uuid")
        sim = ans.get("gpusim")
        if isinstance(sim, dict) and sim.get("libdir") and sim.get("state"):
            self.gpusim = {"libdir": sim["libdir"], "state": sim["state"]}
        if not self.gpu_uuid:
            raise GpucoordError("the coordinator does not list GPU %s, which it granted"
                                % self.gpu, code="bad_response")

    def env(self, base=None):
        """A copy of base (default os.environ) with the variables that bind a program to
        this lease: CUDA_VISIBLE_DEVICES (the granted GPU's UUID, which names the same
        physical GPU whatever the user's own value said), GPUCOORD_LEASE_ID, GPUCOORD_GPU,
        GPUCOORD_GPU_UUID, GPUCOORD_URL; on gpusim also its library folder first in
        LD_LIBRARY_PATH (unless listed) and GPUSIM_STATE (unless set)."""
        return binding_env(os.environ if base is None else base, self.id, self.gpu,
                           self.gpu_uuid, self._client.url, self.gpusim)

    # ---- holding ----

    @property
    def lost(self):
        """True once a heartbeat was answered 404: the lease is no longer held."""
        return self._lost_flag

    def wait_lost(self, timeout=None):
        """Blocks until the lease is lost (True; on_lost has run) or timeout passes (False)."""
        return self._lost.wait(timeout)

    def check(self):
        """Raises LeaseLost if the lease was lost; call it between GPU steps."""
        if self._lost_flag:
            raise LeaseLost("lease %s was lost: %s" % (self.id, self.lost_reason),
                            status=404)

    def resize(self, bytes, wait_s=60.0):
        """Grows or shrinks the lease to `bytes` in all (Client.resize); on success
        lease.bytes is the new size."""
        ans = self._client.resize(self.id, bytes, wait_s=wait_s)
        self.bytes = ans.get("bytes", self.bytes)
        return self.bytes

    def heartbeat(self):
        """Sends one heartbeat now (the background thread does this on its own)."""
        try:
            return self._client.heartbeat(self.id)
        except NotFound as e:
            self._mark_lost(str(e))
            raise

    def _mark_lost(self, reason):
        with self._lock:
            if self._released or self._lost_flag:
                return
            self.lost_reason = reason
            self.state = "lost"
            self._lost_flag = True
        log.warning("gpucoord lease %s (%s) lost: %s", self.id, self.holder, reason)
        try:
            if self.on_lost is not None:
                self.on_lost(self)
        except Exception:  # a callback's bug must not kill the thread silently
            log.exception("on_lost callback for lease %s failed", self.id)
        finally:
            self._lost.set()  # wait_lost() returns once the callback has run

    def _heartbeats(self):
        interval = max(self.ttl_s / HEARTBEATS_PER_TTL, 0.05)
        path = "/v1/leases/%s/heartbeat" % _quote(self.id)
        next_t = time.monotonic() + interval
        complained = False
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            next_t += interval
            now = time.monotonic()
            if next_t < now:  # fell behind (a slow answer): do not burst
                next_t = now + interval
            try:
                status, ans = self._client.request(
                    "POST", path, timeout=max(self._client.timeout, interval))
            except CoordinatorUnavailable as e:
                if not complained:
                    log.warning("gpucoord heartbeat for lease %s: %s", self.id, e)
                    complained = True
                continue
            if status == 404:
                if not self._stop.is_set():
                    msg = ans.get("message") if isinstance(ans, dict) else None
                    self._mark_lost(msg or "the coordinator no longer knows it")
                return
            if status >= 300 and not complained:
                log.warning("gpucoord heartbeat for lease %s: HTTP %d %s", self.id, status, ans)
                complained = True
            elif status < 300:
                complained = False

    # ---- releasing ----

    def release(self):
        """Ends the lease on the coordinator and stops the heartbeats. Idempotent;
        returns the coordinator's answer ({id, state, held_s}) or None when the lease
        had already ended there."""
        with self._lock:
            if self._released:
                return None
            self._released = True
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=1.0)
        if self.id is None:
            return None
        try:
            ans = self._client.release(self.id)
        except NotFound:
            self.state = "gone"
            return None
        self.state = ans.get("state", "released") if isinstance(ans, dict) else "released"
        return ans

    @property
    def released(self):
        return self._released

    def __enter__(self):
        if self.bind:
            bound = self.env()
            self._saved_environ = {k: os.environ.get(k) for k in bound
                                   if os.environ.get(k) != bound[k]}
            for k in self._saved_environ:
                os.environ[k] = bound[k]
        return self

    def __exit__(self, exc_type, exc, tb):
        saved, self._saved_environ = self._saved_environ, None
        for k, v in (saved or {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            self.release()
        except GpucoordError as e:
            if exc_type is None:
                raise
            # Do not hide the exception that is leaving the block; the coordinator ends
            # the lease anyway when this process exits or its TTL passes.
            log.warning("could not release lease %s: %s", self.id, e)
        return False
