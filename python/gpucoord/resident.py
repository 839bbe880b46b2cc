"""Resident: a service that keeps models on the GPU while idle and gives the memory
back when the coordinator asks (DESIGN.md sections 3 and 5).

A service registers itself at start with its pid, serves the protocol's callbacks
(for "seed": POST /unload_models/, /reload_models/, /cleanup_gpu/, GET /health/), and
when a request arrives while it is unloaded calls demand(), which returns once the
coordinator has made room and reloaded it.

A resident grows only through the coordinator: a service whose models are not on the
GPU yet registers first and lets the coordinator load them (start()), so that it never
allocates room a lease holds.
"""
import logging
import threading
import time

from .client import THIS_PROCESS, Client, resolve_pid
from .errors import Conflict, CoordinatorUnavailable, DemandTimeout, GpucoordError, NotFound
from .sizes import parse_size

__all__ = ["Resident"]

log = logging.getLogger("gpucoord")

# How long start() waits for the coordinator to finish a step on an earlier process.
START_CONFLICT_WAIT_S = 5.0


class Resident:
    """A resident's registration with the coordinator.

    name: [A-Za-z0-9._-]{1,64}; url: where the coordinator reaches its callbacks
    (http://127.0.0.1:PORT, loopback); bytes: the memory its models hold (int or
    "4.7Gi"); protocol: "seed", "http" or "process"; priority: higher wins (default
    10); pid: the process whose GPU memory NVML attributes to it (this process by
    default, None for none); client: a gpucoord.Client (default: Client() from
    $GPUCOORD_URL). extra: other registration fields, e.g. gpu=1, restore="demand",
    on_stuck="kill", unload_timeout_s=30, reload_timeout_s=60, verify_timeout_s=10,
    and for protocol "http": unload="POST /sleep", reload="POST /wake_up".
    seed: the SeedServer serving its callbacks (url defaults to its url): registrations
    then tell the coordinator whether the models are loaded, and a /reload_models/ sent
    to it directly goes through the coordinator.
    """

    def __init__(self, name, url=None, bytes=None, protocol="seed", priority=None,
                 pid=THIS_PROCESS, client=None, seed=None, **extra):
        if url is None and seed is None:
            raise TypeError("Resident needs a url or a seed server")
        self.name = name
        self.url = url if url is not None else seed.url
        self.seed = seed
        if seed is not None:
            seed.resident = self
        self.bytes = None if bytes is None else parse_size(bytes)
        self.protocol = protocol
        self.priority = priority
        self.pid = resolve_pid(pid)
        self.client = client if client is not None else Client()
        self.extra = dict(extra)
        self.registrations = 0
        self.on_reregistered = None  # callable(resident), called after keep_registered re-registers
        self._stop = threading.Event()
        self._thread = None

    def __repr__(self):
        return "<gpucoord.Resident %s %s at %s>" % (self.name, self.protocol, self.url)

    def register(self):
        """Registers (or re-registers, replacing) this resident; returns its view. With a
        seed server whose models are not loaded it registers unloaded and queues a demand:
        the coordinator loads the models (through /reload_models/) once there is room."""
        extra = dict(self.extra)
        if self.seed is not None:
            extra["loaded"] = self.seed.loaded
        ans = self.client.register_resident(
            self.name, url=self.url, protocol=self.protocol, pid=self.pid, bytes=self.bytes,
            priority=self.priority, **extra)
        self.registrations += 1
        if extra.get("loaded") is False:
            try:
                self.client.demand(self.name, wait_s=0)
            except DemandTimeout:
                pass  # queued: the coordinator reloads it once there is room
        return ans

    def start(self, wait_s=0.0, interval_s=5.0):
        """For a service whose models are not on the GPU yet (SeedServer(loaded=False)):
        registers unloaded and asks for room, so that the coordinator loads the models
        when a lease does not hold it; waits up to wait_s for them. Without a reachable
        coordinator it loads them now (standalone). Then keeps the registration
        (keep_registered). Returns True when the models are loaded."""
        if self.seed is None:
            raise TypeError("start() needs the resident's seed server")
        deadline = time.monotonic() + START_CONFLICT_WAIT_S
        while True:
            try:
                # Always registers: a registration left by an earlier process of this
                # service (a restart) names another pid and state.
                self.register()
                break
            except Conflict:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)  # a step on the earlier process is finishing
            except CoordinatorUnavailable as e:
                log.warning("gpucoord resident %s: %s; loading standalone", self.name, e)
                self.seed._run("reload")
                break
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep, args=(float(interval_s),),
                                        daemon=True, name="gpucoord-resident-%s" % self.name)
        self._thread.start()
        return self.seed.wait_loaded(timeout=wait_s)

    def unregister(self):
        """Stops keep_registered() and removes the registration (no error if it is gone)."""
        self.stop()
        try:
            self.client.delete_resident(self.name)
        except NotFound:
            pass

    def info(self):
        """The coordinator's view of this resident (state, bytes, unloads, ...), or None
        when it is not registered there."""
        try:
            return self.client.resident(self.name)
        except NotFound:
            return None

    def state(self):
        """"loaded", "unloading", "unloaded", "reloading", "failed", "gone", or None."""
        view = self.info()
        return None if view is None else view.get("state")

    def demand(self, wait_s=60.0):
        """Asks for this resident's memory back and returns (its view) once it is loaded.
        Call it when a request arrives while the models are unloaded. Raises
        DemandTimeout when wait_s passes first, Unavailable when it failed to reload,
        NotFound when it is not registered."""
        return self.client.demand(self.name, wait_s)

    def keep_registered(self, interval_s=5.0):
        """Starts a daemon thread that checks every interval_s that the coordinator still
        knows this resident and registers it again when not (the coordinator restarted
        with fresh state, or someone deleted it). Registers first if needed. Returns self;
        stop() ends the thread."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._ensure()
        self._thread = threading.Thread(target=self._keep, args=(float(interval_s),),
                                        daemon=True, name="gpucoord-resident-%s" % self.name)
        self._thread.start()
        return self

    def stop(self):
        """Stops the keep_registered() thread."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=max(self.client.timeout, 1.0) + 1.0)
        self._thread = None

    def _ensure(self):
        """Registers when the coordinator does not know the resident. True if it did."""
        try:
            self.client.resident(self.name)
            return False
        except NotFound:
            pass
        self.register()
        return True

    def _keep(self, interval_s):
        complained = False
        while not self._stop.wait(interval_s):
            try:
                if self._ensure():
                    log.warning("gpucoord resident %s was unknown to the coordinator: "
                                "registered again", self.name)
                    if self.on_reregistered is not None:
                        self.on_reregistered(self)
                elif self.seed is not None and not self.seed.ever_loaded:
                    # Still waiting for the first load: a coordinator restarted meanwhile
                    # has forgotten the queued demand; asking again is harmless.
                    try:
                        self.client.demand(self.name, wait_s=0)
                    except DemandTimeout:
                        pass
                complained = False
            except CoordinatorUnavailable as e:
                if not complained:  # restarting, probably: keep trying quietly
                    log.warning("gpucoord resident %s: %s", self.name, e)
                    complained = True
            except GpucoordError as e:
                log.warning("gpucoord resident %s: re-registering failed: %s", self.name, e)
            except Exception:
                log.exception("gpucoord resident %s: keep_registered callback failed",
                              self.name)

    def __enter__(self):
        self.register()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.unregister()
        except GpucoordError as e:
            log.warning("could not unregister resident %s: %s", self.name, e)
        return False
