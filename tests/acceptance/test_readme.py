#!/usr/bin/env python3
"""The README's commands, run verbatim against the founding system started the way
the README says (./start_servers.sh), on the default ports.

The default ports may be taken by a system the user runs beside the tests (`make test`
with ./start_servers.sh up in another terminal), so the test runs in a network
namespace of its own (`unshare -n` as root, else `unshare -rn`), where they are free and
its loopback is its own. Where namespaces are not available it runs here, and needs
the ports free. --beside-a-system holds the three ports open here first, to show that
a running system does not disturb it."""
import fcntl
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import unittest

README_PORTS = (10010, 10006, 8095)
# Set in the namespace's copy of this test.
NETNS_MARK = "GPUCOORD_README_NETNS"
# ioctls and flag to bring an interface up (linux/sockios.h, linux/if.h).
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

sys.path.insert(0, os.path.dirname(__file__))
from founding import REPO, FoundingSystem  # noqa: E402


def readme_block():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- readme-test: begin -->\s*```sh\n(.*?)```\s*<!-- readme-test: end -->",
                  text, re.S)
    assert m, "README.md has no readme-test block"
    return m.group(1)


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def loopback_up():
    """In a new network namespace lo is down: bring it up (what `ip link set lo up`
    does, without needing iproute2)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def unshare_argv():
    """The unshare command line that works here, or None (with why)."""
    if os.environ.get("GPUCOORD_TEST_NO_NETNS") == "1":
        return None, "GPUCOORD_TEST_NO_NETNS=1"
    tool = shutil.which("unshare")
    if tool is None:
        return None, "no unshare(1)"
    why = ""
    for argv in ([tool, "-n"], [tool, "-r", "-n"]) if os.geteuid() == 0 else \
            ([tool, "-r", "-n"],):
        r = subprocess.run(argv + ["true"], capture_output=True, text=True, timeout=10)
        if r.returncode == 0:
            return argv, ""
        why = r.stderr.strip()
    return None, why


def hold_ports():
    """Listens on the README's ports here, as a running system would; returns the
    sockets (ports already taken are left to whatever holds them)."""
    held = []
    for port in README_PORTS:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            held.append(s)
        except OSError:
            s.close()
    return held


class ReadmeCommands(FoundingSystem):
    def setUp(self):
        taken = [p for p in README_PORTS if not port_free(p)]
        if taken:
            self.fail("the README's ports %s are in use and this test could not run in a "
                      "network namespace of its own (%s): stop what runs there first" % (
                          taken, os.environ.get("GPUCOORD_README_NO_NETNS", "")))
        self.system_env = {"GPUCOORD_PORT": "10010", "VALIDATION_PORT": "10006",
                           "GENERATION_PORT": "8095"}
        super().setUp()

    def test_commands_run_verbatim(self):
        block = readme_block()
        work = self.path("work")
        os.makedirs(work)
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work,
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        text = out.stdout
        for fragment in ('{"status":"ok"}', '"models_loaded":true', '"status":"healthy"',
                         '"score":', '"alignment_score":', '"success":true',
                         '"total_generations":', '"gpu_available":true',
                         '"models_unloaded":true', '"models_reloaded":true', '"gpus":'):
            self.assertIn(fragment, text)
        self.assertGreater(os.path.getsize(os.path.join(work, "cube.ply")), 7000 * 248)
        # Its own simulated GPU, not the one a running system uses (/dev/shm/gpusim-UID).
        sim = self.http.get("/v1/gpus")[1]["gpusim"]
        if sim is not None:
            self.assertTrue(sim["state"].startswith(os.path.realpath(self.tmp)), sim)


def main():
    args = sys.argv[1:]
    beside = "--beside-a-system" in args
    args = [a for a in args if a != "--beside-a-system"]
    if os.environ.get(NETNS_MARK) == "1":
        loopback_up()
    else:
        held = hold_ports() if beside else []
        argv, why = unshare_argv()
        if argv is not None:
            env = dict(os.environ, **{NETNS_MARK: "1"})
            print("running in a network namespace of its own (%s)" % " ".join(argv),
                  flush=True)
            rc = subprocess.call(argv + [sys.executable, os.path.abspath(__file__)] + args,
                                 env=env)
            for s in held:
                s.close()
            return rc
        print("network namespaces not available (%s): running on this host's loopback"
              % why, flush=True)
        os.environ["GPUCOORD_README_NO_NETNS"] = why or "unshare failed"
        for s in held:
            s.close()  # without a namespace the test needs the ports itself
    prog = unittest.main(argv=[sys.argv[0]] + args, verbosity=2, exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
