#!/usr/bin/env python3
"""gpusim from Python with ctypes (stdlib only): libcuda.so.1 is found through
LD_LIBRARY_PATH like the real one; allocating and freeing moves cuMemGetInfo,
and NVML sees the process. Exit 77 (skip) when the libraries are
sanitizer-built and meson found no sanitizer runtime to preload
(GPUSIM_SANITIZED=1): ctypes cannot load them otherwise."""
import ctypes
import os
import shutil
import sys
import tempfile

MiB = 1 << 20
GiB = 1 << 30


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


class Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong)]


class ProcessInfo(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong),
                ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


def main():
    if os.environ.get("GPUSIM_SANITIZED") == "1":
        print("skip: sanitizer-built gpusim cannot be loaded by python")
        return 77
    tmp = tempfile.mkdtemp(prefix="gpusim-py-")
    for name in list(os.environ):
        if name.startswith("GPUSIM_"):
            del os.environ[name]
    os.environ["GPUSIM_STATE"] = os.path.join(tmp, "state")
    os.environ["GPUSIM_DEVICES"] = "8Gi"
    os.environ["GPUSIM_CONTEXT_BYTES"] = "300Mi"
    try:
        cu = ctypes.CDLL("libcuda.so.1")
        nv = ctypes.CDLL("libnvidia-ml.so.1")
        check(cu.cuInit(0) == 0, "cuInit")
        dev = ctypes.c_int()
        check(cu.cuDeviceGet(ctypes.byref(dev), 0) == 0, "cuDeviceGet")
        name = ctypes.create_string_buffer(96)
        check(cu.cuDeviceGetName(name, 96, dev) == 0, "cuDeviceGetName")
        check(name.value == b"gpusim GPU", "name %r" % name.value)
        ctx = ctypes.c_void_p()
        check(cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0, "retain")
        check(cu.cuCtxSetCurrent(ctx) == 0, "set current")

        free0, total = ctypes.c_size_t(), ctypes.c_size_t()
        check(cu.cuMemGetInfo_v2(ctypes.byref(free0), ctypes.byref(total)) == 0, "info")
        check(total.value == 8 * GiB, "total %d" % total.value)
        check(free0.value == 8 * GiB - 300 * MiB, "free %d" % free0.value)

        ptr = ctypes.c_ulonglong()
        check(cu.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(2 * GiB)) == 0, "alloc")
        check(ptr.value != 0, "non-zero pointer")
        free1 = ctypes.c_size_t()
        cu.cuMemGetInfo_v2(ctypes.byref(free1), ctypes.byref(total))
        check(free0.value - free1.value == 2 * GiB, "free dropped by 2Gi")

        check(nv.nvmlInit_v2() == 0, "nvmlInit")
        handle = ctypes.c_void_p()
        check(nv.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(handle)) == 0, "handle")
        mem = Memory()
        check(nv.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem)) == 0, "memory")
        check(mem.used == 300 * MiB + 2 * GiB, "nvml used %d" % mem.used)
        infos = (ProcessInfo * 4)()
        count = ctypes.c_uint(4)
        check(nv.nvmlDeviceGetComputeRunningProcesses_v3(handle, ctypes.byref(count), infos) == 0,
              "processes")
        check(count.value == 1 and infos[0].pid == os.getpid(), "process list")
        check(infos[0].usedGpuMemory == 300 * MiB + 2 * GiB, "process bytes")

        big = ctypes.c_ulonglong()
        check(cu.cuMemAlloc_v2(ctypes.byref(big), ctypes.c_size_t(8 * GiB)) == 2, "oom is 2")
        check(cu.cuMemFree_v2(ptr) == 0, "free")
        check(cu.cuMemFree_v2(ptr) == 1, "double free is 1")
        free2 = ctypes.c_size_t()
        cu.cuMemGetInfo_v2(ctypes.byref(free2), ctypes.byref(total))
        check(free2.value == free0.value, "free back after cuMemFree")
        print("ok: cuMemGetInfo free %d -> %d -> %d" % (free0.value, free1.value, free2.value))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
