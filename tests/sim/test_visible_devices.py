#!/usr/bin/env python3
"""gpusim's driver API honours CUDA_VISIBLE_DEVICES as the real driver does (the CUDA
programming guide, "CUDA Environment Variables"): indices and GPU- UUIDs (a unique
prefix is enough), enumerated in the list's order, the first invalid entry ending the
list, an empty value hiding every GPU (cuInit fails); NVML ignores it. Each case runs in its own
process, since the driver reads the variable once, at cuInit. Exit 77 (skip) when the
libraries are sanitizer-built and cannot be loaded by Python."""
import ctypes
import os
import subprocess
import sys
import tempfile

# Four GPUs whose UUIDs differ only in their last digits, as gpusim makes them.
DEVICES = "1Gi,2Gi,3Gi,4Gi"
UUID = "GPU-67707573-696d-4000-8000-%012x"


def probe():
    """In the child: prints the visible devices as 'UUID:totalMiB ...' and NVML's count."""
    cu = ctypes.CDLL("libcuda.so.1")
    nv = ctypes.CDLL("libnvidia-ml.so.1")
    rc = cu.cuInit(0)
    if rc != 0:
        print("cuInit=%d" % rc)  # CUDA_ERROR_NO_DEVICE when none is visible
        return 0
    count = ctypes.c_int()
    assert cu.cuDeviceGetCount(ctypes.byref(count)) == 0
    seen = []
    for i in range(count.value):
        dev = ctypes.c_int()
        assert cu.cuDeviceGet(ctypes.byref(dev), i) == 0
        raw = ctypes.create_string_buffer(16)
        assert cu.cuDeviceGetUuid(raw, dev) == 0
        h = raw.raw.hex()
        total = ctypes.c_size_t()
        assert cu.cuDeviceTotalMem_v2(ctypes.byref(total), dev) == 0
        seen.append("GPU-%s-%s-%s-%s-%s:%d" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:],
                                               total.value >> 20))
    dev = ctypes.c_int()
    seen.append("get%d=%d" % (count.value, cu.cuDeviceGet(ctypes.byref(dev), count.value)))
    assert nv.nvmlInit_v2() == 0
    n = ctypes.c_uint()
    assert nv.nvmlDeviceGetCount_v2(ctypes.byref(n)) == 0
    seen.append("nvml=%d" % n.value)
    print(" ".join(seen))
    return 0


def visible(env, value):
    e = dict(env)
    if value is None:
        e.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        e["CUDA_VISIBLE_DEVICES"] = value
    out = subprocess.run([sys.executable, __file__, "--probe"], env=e, capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError("probe failed for %r: %s%s" % (value, out.stdout, out.stderr))
    return out.stdout.split()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        return probe()
    if os.environ.get("GPUSIM_SANITIZED") == "1":
        print("skip: sanitizer-built gpusim cannot be loaded by python")
        return 77
    tmp = tempfile.mkdtemp(prefix="gpusim-cvd-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUSIM_")}
    env.update(GPUSIM_STATE=os.path.join(tmp, "state"), GPUSIM_DEVICES=DEVICES)
    gpu = ["%s:%d" % (UUID % i, (i + 1) * 1024) for i in range(4)]
    cases = [
        (None, gpu),                                   # unset: all, in order
        ("", []),                                      # empty: none
        ("2,0", [gpu[2], gpu[0]]),                     # the list's order
        ("0,2,-1,1", [gpu[0], gpu[2]]),                # an invalid index ends the list
        ("1,7,2", [gpu[1]]),                           # out of range is invalid too
        ("3,3", [gpu[3]]),                             # a repeat ends it
        (UUID % 3, [gpu[3]]),                          # a full UUID
        ((UUID % 2)[:-2] + ",1", []),                  # a prefix of four UUIDs: invalid
        ((UUID % 2)[:-1].upper() + ",0", []),          # any case; still ambiguous
        (" 1 , GPU-67707573-696d-4000-8000-000000000002", [gpu[1], gpu[2]]),
        ("MIG-xyz,0", []),                             # not one of ours
    ]
    failed = 0
    for value, want in cases:
        got = visible(env, value)
        n = len(want)
        # CUDA_ERROR_INVALID_DEVICE past the end; with none visible cuInit fails.
        expect = want + ["get%d=101" % n, "nvml=4"] if want else ["cuInit=100"]
        if got != expect:
            print("FAIL: CUDA_VISIBLE_DEVICES=%r: got %s, want %s" % (value, got, expect))
            failed += 1
        else:
            print("ok: CUDA_VISIBLE_DEVICES=%r -> %d GPU(s)" % (value, n))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
