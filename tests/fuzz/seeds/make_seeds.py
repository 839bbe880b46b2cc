#!/usr/bin/env python3
"""make_seeds.py - writes the hand-made seed inputs of tests/fuzz/corpus/.

usage: tests/fuzz/seeds/make_seeds.py [CORPUS_DIR]   (default: tests/fuzz/corpus)

Each seed is a small real input (a lease or resident body the clients send, a
config like the tests use, a size string, a form body the generation server
gets, a base64 payload) or a near miss of one. Files are named seed-*, so
inputs libFuzzer added (named by their SHA-1) stay apart. The PLY seeds come
from the project's generator (make_ply_seeds.c) and are hand-made here
(make_seeds.py's ply(): property orders, types, extra elements, near misses).
"""
import base64
import struct
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "corpus")
GiB = 1 << 30


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def api_json():
    bodies = {
        # Leases, as libgpucoord, the Python client and the CLI send them.
        "lease-min": {"holder": "trainer", "bytes": 4 * GiB, "ttl_s": 30},
        "lease-size-string": {"holder": "job-1.a_b", "bytes": "4.7Gi", "ttl_s": 30.5},
        "lease-full": {"holder": "bench", "bytes": "512Mi", "gpu": 1, "pid": 1,
                       "priority": 100, "ttl_s": 0, "wait_s": 0},
        "lease-gpu-any": {"holder": "h", "bytes": 1, "gpu": "any", "ttl_s": 1},
        "lease-never-fits": {"holder": "huge", "bytes": "1Ti", "ttl_s": 5},
        "lease-wait": {"holder": "w", "bytes": GiB, "wait_s": 2.5, "ttl_s": 30},
        "lease-bad-holder": {"holder": "bad name!", "bytes": GiB},
        "lease-zero-bytes": {"holder": "z", "bytes": 0, "ttl_s": 3},
        "lease-negative": {"holder": "n", "bytes": -5, "priority": -1000001},
        "lease-unknown-field": {"holder": "u", "bytes": GiB, "colour": "red"},
        "lease-wrong-types": {"holder": 7, "bytes": True, "ttl_s": "soon", "gpu": [0]},
        "lease-no-ttl-no-pid": {"holder": "t", "bytes": GiB, "ttl_s": 0},
        "lease-nulls": {"holder": "x", "bytes": "20G", "pid": None, "gpu": None},
        "lease-gpu-out-of-range": {"holder": "g", "bytes": GiB, "gpu": 16, "ttl_s": 1},
        # Residents, as fake-resident, the integration tests and docs register them.
        "resident-seed": {"name": "validation", "protocol": "seed",
                          "url": "http://127.0.0.1:10006", "bytes": "4.7Gi", "priority": 10,
                          "restore": "auto"},
        "resident-http": {"name": "svc", "protocol": "http", "url": "http://localhost:8000/x",
                          "unload": "POST /sleep", "reload": "POST /wake_up",
                          "cleanup": "POST /cleanup", "health": "GET /health",
                          "unload_timeout_s": 30, "reload_timeout_s": 60,
                          "verify_timeout_s": 10, "kill_grace_s": 5, "on_stuck": "fail"},
        "resident-http-v6": {"name": "v6", "protocol": "http", "url": "http://[::1]:9/",
                             "unload": "PUT /a", "reload": "DELETE /b", "gpu": 1},
        "resident-process-pid": {"name": "llm", "protocol": "process", "pid": 1,
                                 "command": "sleep 1000", "bytes": "3Gi",
                                 "health": "GET /health", "on_stuck": "kill",
                                 "restore": "demand"},
        "resident-process-no-pid": {"name": "llm", "protocol": "process",
                                    "command": "exit 0", "restore": "never"},
        "resident-remote-url": {"name": "r", "protocol": "seed", "url": "http://192.0.2.7:8000"},
        "resident-bad-url": {"name": "r", "protocol": "seed", "url": "ftp://127.0.0.1/"},
        "resident-bad-restore": {"name": "r", "protocol": "seed", "url": "http://127.0.0.1:1",
                                 "restore": "sometimes", "on_stuck": "explode"},
        "resident-bad-name": {"name": "../../etc", "protocol": "seed",
                              "url": "http://127.0.0.1:1"},
        "resident-unknown-protocol": {"name": "r", "protocol": "smoke-signals"},
        "resident-gpu3": {"name": "r", "protocol": "seed", "url": "http://127.0.0.1:1", "gpu": 3},
        "resident-timeouts": {"name": "r", "protocol": "seed", "url": "http://127.0.0.1:1",
                              "unload_timeout_s": 0, "kill_grace_s": 601},
        # Demands (POST /v1/residents/NAME/demand).
        "demand": {"wait_s": 0, "priority": 5},
        "demand-wait": {"wait_s": 1.5},
        "demand-bad-priority": {"priority": "high"},
        "empty-object": {},
    }
    for name, body in bodies.items():
        put("fuzz_api_json", name + ".json", json.dumps(body))
    raw = {
        "not-object.json": "[1, 2, 3]",
        "malformed.json": '{"holder": "a", "bytes": ',
        "duplicate-key.json": '{"holder": "a", "holder": "b", "bytes": 1}',
        "deep.json": '{"a":' * 17 + "1" + "}" * 17,
        "deep-in-string.json": '{"holder": "' + "[" * 40 + '", "bytes": 1, "ttl_s": 1}',
        "nul-in-string.json": '{"holder": "a\\u0000b", "bytes": 1, "ttl_s": 1}',
        "unicode.json": '{"holder": "\\u00e9t\\u00e9", "bytes": "1\\u00a0Gi"}',
        "big-numbers.json": '{"holder": "a", "bytes": 18446744073709551616, "ttl_s": 1e400}',
        "empty": "",
    }
    for name, body in raw.items():
        put("fuzz_api_json", name, body)


def config():
    files = {
        "full.ini": """# gpucoordd.ini
[coordinator]
listen = 127.0.0.1:10010
socket = /run/gpucoord/gpucoord.sock
socket_mode = 0660
state_dir = /var/lib/gpucoord
token_file = /etc/gpucoord/token
allow_remote_callbacks = false
reserve = 512Mi
max_unloaded_s = 300
starvation_s = 60
default_ttl_s = 30
max_wait_s = 3600
queue_max = 1024
leases_per_holder_max = 64
conn_limit = 512
body_max = 64Ki
compact_bytes = 1Mi
journal_sync = resident
verify_poll_s = 0.05
idle_poll_s = 0.5
unload_timeout_s = 30
reload_timeout_s = 60
verify_timeout_s = 10
kill_grace_s = 5
reload_attempts = 3
reload_backoff_s = 1
log_level = info

[gpu.0]
budget = 23Gi
reserve = 1Gi

[gpu.15]
budget = 80G

[resident.validation]
protocol = seed
url = http://127.0.0.1:10006
bytes = 4.7Gi
priority = 10
pid = 4242
restore = auto
unload_timeout_s = 30

[resident.llm]
protocol = process
command = llama-server --port 8081
health = GET /health
on_stuck = kill
kill_grace_s = 2.5
""",
        "loadtest.ini": "[coordinator]\nmax_unloaded_s = 5\nstarvation_s = 5\n"
                        "log_level = warn\n[gpu.0]\nbudget = 23Gi\n",
        "security.ini": "[coordinator]\nallow_remote_callbacks = true\n"
                        "leases_per_holder_max = 3\nqueue_max = 2\n",
        "empty.ini": "",
        "comments.ini": "; only comments\n# and blank lines\n\n[coordinator]\n; nothing\n",
        "bad-section.ini": "[nowhere]\nx = 1\n",
        "bad-gpu-index.ini": "[gpu.16]\nbudget = 1Gi\n",
        "bad-gpu-neg.ini": "[gpu.-1]\nbudget = 1Gi\n",
        "bad-key.ini": "[coordinator]\nlisten_addr = 0.0.0.0:1\n",
        "bad-seconds.ini": "[coordinator]\ndefault_ttl_s = nan\n",
        "bad-octal.ini": "[coordinator]\nsocket_mode = 0999\n",
        "bad-size.ini": "[coordinator]\nbody_max = 1Ti\n",
        "bad-bool.ini": "[coordinator]\nallow_remote_callbacks = maybe\n",
        "bad-sync.ini": "[coordinator]\njournal_sync = sometimes\n",
        "bad-resident-name.ini": "[resident.bad name]\nprotocol = seed\n",
        "resident-int.ini": "[resident.r]\npid = 12x\n",
        "resident-name-key.ini": "[resident.a]\nname = b\nprotocol = seed\n[resident.b]\nx_s = 1e3\n",
        "no-section.ini": "listen = 127.0.0.1:1\n",
        "long-value.ini": "[coordinator]\nlisten = " + "x" * 300 + "\n",
        "syntax.ini": "[coordinator\nlisten\n",
        "crlf.ini": "[coordinator]\r\nlisten = 127.0.0.1:7\r\nreserve = 2 Gi\r\n",
    }
    for name, text in files.items():
        put("fuzz_config", name, text)


def size():
    for i, s in enumerate(["0", "1", "17", "1000", "4.7Gi", "20G", "512Mi", "19.6Gi", "1.5 Ki",
                           "2tb", "3TiB", "0.001k", "1.000000000001Ti", "18446744073709551615",
                           "18446744073709551616", "16777216Ti", "16777215.99Ti", "1.5", "Gi",
                           ".5Gi", "5.Gi", "5 ", "5  Gi", "-1", "1e9", "x" * 65,
                           "0" * 64, "1kib", "7 b"]):
        put("fuzz_size", "%02d" % i, s)


def form():
    crlf = "\r\n"

    def multipart(parts, boundary="gcfuzz", close=True):
        out = ""
        for i, (headers, value) in enumerate(parts):
            out += ("" if i == 0 else crlf) + "--" + boundary + crlf
            out += crlf.join(headers) + crlf + crlf + value
        if close:
            out += crlf + "--" + boundary + "--" + crlf
        return out

    cd = 'Content-Disposition: form-data; name="%s"'
    seeds = {
        # '0': urlencoded, '1': boundary=gcfuzz, '2': the quoted boundary, '3': own ctype line.
        "urlenc-generate": "0prompt=a+red+cube&seed=42",
        "urlenc-escapes": "0prompt=%E2%9C%93%20ok%2B&seed=-7&&empty=&flag",
        "urlenc-bad-escape": "0prompt=%zz",
        "urlenc-nul-name": "0a%00b=1",
        "urlenc-big-seed": "0seed=9223372036854775808&prompt=x",
        "multipart-generate": "1" + multipart([([cd % "prompt"], "a red cube"),
                                                ([cd % "seed"], " 42 ")]),
        "multipart-file": "1" + multipart([
            ([cd % "ply" + '; filename="model.ply"', "Content-Type: application/octet-stream"],
             "ply\nformat binary_little_endian 1.0\n\x00\x01\xff"),
            (['content-disposition: form-data; name=prompt'], "caf\xc3\xa9")]),
        "multipart-escaped-name": "1" + multipart([([
            'Content-Disposition: form-data; name="a\\"b\\\\c"; filename=""'], "v")]),
        "multipart-unclosed": "1" + multipart([([cd % "prompt"], "x")], close=False),
        "multipart-no-crlf": "1--gcfuzz\nContent-Disposition: form-data; name=a\n\nx\n--gcfuzz--",
        "multipart-two-dispositions": "1" + multipart([([cd % "a", cd % "b"], "x")]),
        "multipart-empty": "1--gcfuzz--\r\n",
        "multipart-preamble": "1preamble\r\n--gcfuzz\r\n" + cd % "p" + "\r\n\r\nv\r\n--gcfuzz--",
        "multipart-quoted-boundary": "2" + multipart([([cd % "prompt"], "x")],
                                                     boundary="gc fuzz'()+_,-./:=?"),
        "ctype-urlenc-charset": "3application/x-www-form-urlencoded; charset=UTF-8\nprompt=x",
        "ctype-quoted-boundary": '3multipart/form-data; boundary="b\\"x"\n--b"x--',
        "ctype-two-boundaries": "3multipart/form-data; boundary=a; boundary=b\n--a--",
        "ctype-no-boundary": "3multipart/form-data\n--a--",
        "ctype-long-boundary": "3multipart/form-data; boundary=" + "b" * 71 + "\n",
        "ctype-json": "3application/json\n{}",
        "ctype-params": "3Multipart/Form-Data ; charset=utf-8 ; Boundary=XyZ ;\n"
                        "--XyZ\r\n" + cd % "seed" + "\r\n\r\n+12\r\n--XyZ--\r\n",
    }
    for name, text in seeds.items():
        put("fuzz_form", name, text.encode("latin-1") if "\xc3" in text or "\xff" in text
            else text)


def b64():
    samples = [b"", b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", bytes(range(256)),
               b"ply\nformat binary_little_endian 1.0\n"]
    for i, s in enumerate(samples):
        put("fuzz_b64", "valid-%d" % i, base64.b64encode(s))
    put("fuzz_b64", "newline", base64.b64encode(b"hello") + b"\n")
    put("fuzz_b64", "crlf", base64.b64encode(b"hello!") + b"\r\n")
    for i, s in enumerate([b"Zg=", b"Zh==", b"Zm9=", b"Z===", b"====", b"Zg==Zg==", b"Zm 9v",
                           b"Zm9v\n\n", b"Zm9v-_8=", b"\r\n", b"Zg==\r"]):
        put("fuzz_b64", "invalid-%d" % i, s)


def ply():
    rest = ["f_rest_%d" % i for i in range(45)]
    canon = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + rest +
             ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
                "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    fmt = {"char": "b", "uchar": "B", "short": "h", "ushort": "H", "int": "i", "uint": "I",
           "float": "f", "double": "d", "int8": "b", "uint8": "B", "int16": "h",
           "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}

    def model(props, count, value=lambda i, name: 0.25 * i + 0.5, before="", before_data=b"",
              after="", fmt_line="format binary_little_endian 1.0", tail=b""):
        """A PLY: the header, before_data (elements ahead of the vertices), the
        vertices (values from value(); small numbers, so every type holds them),
        then tail."""
        head = "ply\n" + fmt_line + "\ncomment made by make_seeds.py\n" + before
        head += "element vertex %d\n" % count
        head += "".join("property %s %s\n" % (t, n) for t, n in props)
        head += after + "end_header\n"
        data = b""
        for i in range(count):
            for t, n in props:
                v = value(i, n)
                data += struct.pack("<" + fmt[t], v if fmt[t] in "fd" else int(v))
        return head.encode() + before_data + data + tail

    floats = [("float", n) for n in canon]
    put("fuzz_ply", "canonical-2.ply", model(floats, 2))
    put("fuzz_ply", "empty-model.ply", model(floats, 0))
    put("fuzz_ply", "required-only.ply", model([("float", n) for n in required], 3))
    mixed = ([("float", n) for n in reversed(required)] + [("double", "nx"), ("uchar", "ny"),
             ("short", "nz"), ("int", "f_rest_0"), ("uint", "f_rest_1"), ("char", "f_rest_2"),
             ("ushort", "f_rest_3"), ("float64", "f_rest_44"), ("int8", "red"),
             ("uint8", "green"), ("float32", "extra")])
    put("fuzz_ply", "reordered-mixed-types.ply", model(mixed, 2))
    put("fuzz_ply", "face-before.ply",
        model(floats, 1, before="element camera 2\nproperty float fx\nproperty uchar id\n",
              before_data=b"\0" * 10))
    put("fuzz_ply", "face-list-after.ply",
        model(floats, 1, after="element face 1\nproperty list uchar int vertex_indices\n",
              tail=b"\x03\0\0\0\0\0\0\0\0\0\0\0\0"))
    put("fuzz_ply", "fixed-after.ply",
        model(floats, 1, after="element extra 2\nproperty ushort a\n", tail=b"\1\0\2\0"))
    put("fuzz_ply", "nan-optional.ply", model(floats, 1, value=lambda i, n: float("nan")
                                               if n.startswith("f_rest") else 1.0))
    put("fuzz_ply", "bad-nan-required.ply", model(floats, 1, value=lambda i, n: float("inf")
                                                   if n == "opacity" else 1.0))
    put("fuzz_ply", "bad-double-required.ply", model([("double", "x")] + floats[1:], 1))
    put("fuzz_ply", "bad-missing-rot.ply", model([p for p in floats if p[1] != "rot_3"], 1))
    put("fuzz_ply", "bad-ascii.ply", model(floats, 0, fmt_line="format ascii 1.0"))
    put("fuzz_ply", "bad-big-endian.ply", model(floats, 1, fmt_line="format binary_big_endian 1.0"))
    put("fuzz_ply", "bad-truncated.ply", model(floats, 2)[:-5])
    put("fuzz_ply", "bad-trailing.ply", model(floats, 1, tail=b"xyz"))
    put("fuzz_ply", "bad-count.ply", model(floats, 0).replace(b"vertex 0", b"vertex 2000001"))
    put("fuzz_ply", "bad-list-vertex.ply",
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
        b"property list uchar float x\nend_header\n\x01\0\0\0\0")
    put("fuzz_ply", "bad-no-end.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n")
    put("fuzz_ply", "bad-magic.ply", b"PLY\r\nformat binary_little_endian 1.0\nend_header\n")


if __name__ == "__main__":
    api_json()
    config()
    size()
    form()
    b64()
    ply()
