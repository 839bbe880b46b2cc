"""python3 -m gpucoord [--url URL] status [--json]
python3 -m gpucoord [--url URL] lease SIZE [--holder H] [--gpu N] [--priority P] [--ttl S]
                    [--wait S] -- CMD [ARGS...]

lease holds a lease while CMD runs, bound to the granted GPU as `gpucoord run` binds it
(CUDA_VISIBLE_DEVICES, GPUCOORD_LEASE_ID, GPUCOORD_GPU, GPUCOORD_GPU_UUID, GPUCOORD_URL),
releases it when CMD exits and exits with CMD's status; the exit codes are the C CLI's:
2 usage, 3 lease not granted (command not run), 4 coordinator unreachable or error,
126/127 command not executable/not found."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys

from . import Client, GpucoordError, format_size
from .errors import CouldNotFree, LeaseTimeout, LimitReached, NeverFits

# The exit codes of the C CLI (docs/cli.md): both front ends answer alike.
EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED, EXIT_COORD = 1, 2, 3, 4
EXIT_NOEXEC, EXIT_NOTFOUND = 126, 127
# Errors that mean the lease was not granted (the rest: the coordinator failed us).
REFUSED = (NeverFits, CouldNotFree, LimitReached, LeaseTimeout)


def _status(client, as_json):
    st = client.status()
    if as_json:
        json.dump(st, sys.stdout, indent=2)
        print()
        return 0
    print("gpucoordd %s, up %.0f s" % (st.get("version", "?"), st.get("uptime_s", 0)))
    for g in st.get("gpus", []):
        print("GPU %d %s: %s total, %s used, %s committed, %s reserve" % (
            g["index"], g["name"], format_size(g["total_bytes"]), format_size(g["used_bytes"]),
            format_size(g["committed_bytes"]), format_size(g["reserve_bytes"])))
    for r in st.get("residents", []):
        print("resident %-20s %-10s %8s  GPU %d  priority %d  pid %s" % (
            r["name"], r["state"], format_size(r["bytes"]), r["gpu"], r["priority"],
            r.get("pid") or "-"))
    for l in st.get("leases", []):
        print("lease    %-20s %-10s %8s  GPU %s  holder %s" % (
            l["id"], l["state"], format_size(l["bytes"]),
            "-" if l.get("gpu") is None else l["gpu"], l["holder"]))
    return 0


def _lease(client, args):
    cmd = args.cmd
    if not cmd:
        print("gpucoord lease: give a command after --", file=sys.stderr)
        return EXIT_USAGE
    exe = shutil.which(cmd[0])
    if exe is None:
        print("gpucoord: %s: command not found" % cmd[0], file=sys.stderr)
        return EXIT_NOTFOUND if not os.path.exists(cmd[0]) else EXIT_NOEXEC
    gpu = "any" if args.gpu == "any" else int(args.gpu)
    with client.lease(args.size, holder=args.holder or os.path.basename(cmd[0]), gpu=gpu,
                      priority=args.priority, ttl_s=args.ttl, wait_s=args.wait) as lease:
        print("gpucoord: lease %s granted: %s on GPU %s after %.2f s%s" % (
            lease.id, format_size(lease.bytes), lease.gpu, lease.waited_s or 0,
            ", evicted " + ", ".join(lease.evicted) if lease.evicted else ""), file=sys.stderr)
        proc = subprocess.Popen(cmd, env=lease.env())
        # Pass termination on to the command; the lease is released after it exits.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda s, f: proc.send_signal(s))
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
    return rc if rc >= 0 else 128 - rc


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m gpucoord",
                                 description="gpucoord client (Python)")
    ap.add_argument("--url", help="coordinator URL (default $GPUCOORD_URL or "
                    "http://127.0.0.1:10010; unix:/path works too)")
    sub = ap.add_subparsers(dest="verb", required=True)
    sp = sub.add_parser("status", help="GPUs, residents and leases")
    sp.add_argument("--json", action="store_true")
    lp = sub.add_parser("lease", help="hold a lease while a command runs")
    lp.add_argument("size", help="e.g. 8Gi")
    lp.add_argument("--holder")
    lp.add_argument("--gpu", default="any")
    lp.add_argument("--priority", type=int)
    lp.add_argument("--ttl", type=float)
    lp.add_argument("--wait", type=float, default=300.0)
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = []
    if "--" in argv:
        cut = argv.index("--")
        argv, cmd = argv[:cut], argv[cut + 1:]
    args = ap.parse_args(argv)
    args.cmd = cmd
    client = Client(args.url)
    try:
        if args.verb == "status":
            return _status(client, args.json)
        return _lease(client, args)
    except GpucoordError as e:
        refused = isinstance(e, REFUSED)
        print("gpucoord: %s%s" % ("lease not granted, command not run: " if refused else "", e),
              file=sys.stderr)
        return EXIT_REFUSED if refused else EXIT_COORD


if __name__ == "__main__":
    sys.exit(main())
