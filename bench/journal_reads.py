#!/usr/bin/env python3
"""What reads cost once the journal is past compact_bytes.

Starts gpucoordd on gpusim with compact_bytes = 4Ki, takes LEASES leases (kept, so the
live state itself is larger than compact_bytes), then times 20 GETs (/v1/status and
/v1/gpus, which run the scheduler) and counts the renames and fsyncs the daemon made
meanwhile (strace, when it is installed) and its journal compactions (the metric).
Baseline in the same run: 20 GET /health, which touch nothing.

Usage: bench/journal_reads.py [BUILD_DIR] [LEASES]
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                        os.path.join(os.path.dirname(__file__), "..", "build"))
LEASES = int(sys.argv[2]) if len(sys.argv) > 2 else 60


def main():
    tmp = tempfile.mkdtemp(prefix="journal-bench-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(os.path.join(tmp, "c.ini"), "w") as f:
        f.write("[coordinator]\ncompact_bytes = 4Ki\n")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(BUILD, "sim"),
               GPUSIM_STATE=os.path.join(tmp, "gpusim"))
    trace = os.path.join(tmp, "trace")
    argv = [os.path.join(BUILD, "gpucoordd"), "--listen", "127.0.0.1:%d" % port,
            "--state-dir", os.path.join(tmp, "state"), "--config", os.path.join(tmp, "c.ini")]
    strace = shutil.which("strace")
    if strace:
        argv = [strace, "-f", "-qq", "-o", trace,
                "-e", "trace=rename,renameat,renameat2,fsync,fdatasync"] + argv
    p = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    url = "http://127.0.0.1:%d" % port

    def call(method, path, body=None):
        req = urllib.request.Request(url + path, method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def syscalls():
        if not strace:
            return None, None
        with open(trace) as f:
            t = f.read()
        return len(re.findall(r"\brename", t)), len(re.findall(r"\bf(?:data)?sync\(", t))

    def compactions():
        m = re.search(rb"^gpucoord_journal_compactions_total (\d+)$", call("GET", "/metrics"),
                      re.M)
        return int(m.group(1)) if m else None

    def timed(paths):
        t0 = time.monotonic()
        for i in range(20):
            call("GET", paths[i % len(paths)])
        return (time.monotonic() - t0) * 1000

    try:
        for _ in range(100):
            try:
                call("GET", "/health")
                break
            except OSError:
                time.sleep(0.1)
        for i in range(LEASES):
            call("POST", "/v1/leases", {"holder": "h%d" % i, "bytes": 1 << 20, "ttl_s": 600})
        time.sleep(0.5)
        print("journal %d bytes, %d live leases, compact_bytes 4096" % (
            os.path.getsize(os.path.join(tmp, "state", "journal")), LEASES))
        print()
        print("| 20 requests | ms | renames | fsyncs | compactions |")
        print("|---|---|---|---|---|")
        for name, paths in (("GET /health (baseline)", ["/health"]),
                            ("GET /v1/status, /v1/gpus", ["/v1/status", "/v1/gpus"])):
            r0, f0 = syscalls()
            c0 = compactions()
            ms = timed(paths)
            time.sleep(0.3)
            r1, f1 = syscalls()
            c1 = compactions()
            print("| %s | %.1f | %s | %s | %s |" % (
                name, ms, "-" if r0 is None else r1 - r0, "-" if f0 is None else f1 - f0,
                "-" if c0 is None else c1 - c0))
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
