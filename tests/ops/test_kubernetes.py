#!/usr/bin/env python3
"""deploy/kubernetes/: the DaemonSet and the example client are well-formed and keep
the promises docs/kubernetes.md makes (host PID namespace, GPU access without
claiming a GPU, the socket on a hostPath the clients mount, GPUCOORD_URL), with the
types Kubernetes expects. python3-yaml parses; the checks are ours."""
import os
import re
import sys
import unittest

try:
    import yaml
except ImportError:
    # python3-yaml is a Debian package: a python3 that is not Debian's does not see it.
    if sys.executable != "/usr/bin/python3" and os.access("/usr/bin/python3", os.X_OK):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("skip: python3-yaml is not installed (scripts/install-deps.sh)")
    sys.exit(77)

SOURCE = os.environ.get("GPUCOORD_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
KDIR = os.path.join(SOURCE, "deploy", "kubernetes")


def load(name):
    with open(os.path.join(KDIR, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def by_kind(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, "want one %s, got %d" % (kind, len(found))
    return found[0]


def flag(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


class Manifests(unittest.TestCase):
    def setUp(self):
        self.docs = load("daemonset.yaml")
        self.ds = by_kind(self.docs, "DaemonSet")
        self.pod = self.ds["spec"]["template"]["spec"]
        self.c = self.pod["containers"][0]

    def assertType(self, value, t, what):
        self.assertIsInstance(value, t, "%s: %r is not %s" % (what, value, t.__name__))

    def test_every_document_is_a_kubernetes_object(self):
        for d in self.docs + load("example-client.yaml"):
            self.assertType(d.get("apiVersion"), str, "apiVersion")
            self.assertType(d.get("kind"), str, "kind")
            self.assertType(d.get("metadata", {}).get("name"), str, "metadata.name")
            self.assertRegex(d["metadata"]["name"], r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        ns = by_kind(self.docs, "Namespace")["metadata"]["name"]
        for d in self.docs:
            if d["kind"] != "Namespace":
                self.assertEqual(d["metadata"].get("namespace"), ns, d["kind"])

    def test_daemonset_shape(self):
        self.assertEqual(self.ds["apiVersion"], "apps/v1")
        sel = self.ds["spec"]["selector"]["matchLabels"]
        labels = self.ds["spec"]["template"]["metadata"]["labels"]
        self.assertType(sel, dict, "selector.matchLabels")
        self.assertLessEqual(sel.items(), labels.items(), "selector must match the template")
        self.assertType(self.pod["containers"], list, "containers")
        for k in ["name", "image"]:
            self.assertType(self.c[k], str, "container " + k)
        for k in ["command"]:
            self.assertType(self.c[k], list, k)
            for a in self.c[k]:
                self.assertType(a, str, k + " item")
        for p in self.c["ports"]:
            self.assertType(p["containerPort"], int, "containerPort")
        for probe in ["readinessProbe", "livenessProbe"]:
            for a in self.c[probe]["exec"]["command"]:
                self.assertType(a, str, probe)
            self.assertType(self.c[probe]["periodSeconds"], int, probe)
        for e in self.c["env"]:
            self.assertType(e["name"], str, "env name")
            self.assertType(e["value"], str, "env " + e["name"])
        for key, value in self.ds["spec"]["template"]["metadata"].get("annotations", {}).items():
            self.assertType(value, str, "annotation " + key)
        self.assertType(self.pod["terminationGracePeriodSeconds"], int, "grace period")

    def test_node_local_coordinator(self):
        self.assertIs(self.pod["hostPID"], True)
        env = {e["name"]: e["value"] for e in self.c["env"]}
        # Every GPU of the node for NVML, none claimed from the device plugin.
        self.assertEqual(env["NVIDIA_VISIBLE_DEVICES"], "all")
        self.assertIn("utility", env["NVIDIA_DRIVER_CAPABILITIES"])
        for part in ["requests", "limits"]:
            self.assertNotIn("nvidia.com/gpu", self.c.get("resources", {}).get(part, {}))
        argv = self.c["command"]
        self.assertEqual(argv[0], "gpucoordd")
        self.assertEqual(int(flag(argv, "--listen").rsplit(":", 1)[1]),
                         self.c["ports"][0]["containerPort"])
        caps = self.c["securityContext"]["capabilities"]
        self.assertEqual(caps["drop"], ["ALL"])
        self.assertEqual(caps["add"], ["KILL"])
        self.assertIs(self.c["securityContext"]["allowPrivilegeEscalation"], False)

    def test_socket_and_state_on_host_paths(self):
        argv = self.c["command"]
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in self.c["volumeMounts"]}
        for path in [os.path.dirname(flag(argv, "--socket")), flag(argv, "--state-dir")]:
            self.assertIn(path, mounts, path)
            self.assertIn("hostPath", volumes[mounts[path]], path)
            self.assertType(volumes[mounts[path]]["hostPath"]["path"], str, path)
        # The config the command names is mounted from the ConfigMap, and its token
        # file from the Secret.
        conf = by_kind(self.docs, "ConfigMap")["data"]["gpucoord.conf"]
        self.assertIn("/etc/gpucoord/gpucoord.conf", mounts)
        token = re.search(r"^token_file = (\S+)", conf, re.M).group(1)
        self.assertIn(os.path.dirname(token), mounts)
        self.assertIn("secret", volumes[mounts[os.path.dirname(token)]])

    def test_client_reaches_the_socket(self):
        client = by_kind(load("example-client.yaml"), "Pod")
        spec = client["spec"]
        self.assertIs(spec["hostPID"], True)
        c = spec["containers"][0]
        env = {e["name"]: e["value"] for e in c["env"]}
        sock = flag(self.c["command"], "--socket")
        self.assertEqual(env["GPUCOORD_URL"], "unix:" + sock)
        host_socket_dir = {v["name"]: v for v in self.pod["volumes"]}[
            {m["mountPath"]: m["name"] for m in self.c["volumeMounts"]}[os.path.dirname(sock)]
        ]["hostPath"]["path"]
        cvols = {v["name"]: v for v in spec["volumes"]}
        mounted = {m["mountPath"]: cvols[m["name"]] for m in c["volumeMounts"]}
        self.assertEqual(mounted[os.path.dirname(sock)]["hostPath"]["path"], host_socket_dir)
        self.assertType(c["resources"]["limits"]["nvidia.com/gpu"], int, "GPU limit")


if __name__ == "__main__":
    unittest.main(verbosity=2)
