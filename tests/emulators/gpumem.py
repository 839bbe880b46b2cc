"""gpumem - hold simulated (or real) GPU memory from Python through libcuda.so.1.

The driver library is found through LD_LIBRARY_PATH like the real one, so under
gpusim the memory shows in NVML for this process, exactly as a model server's
weights would. Standard library only (ctypes).
"""
import ctypes
import threading

GiB = 1 << 30
# Allocations are made in chunks, as a framework allocates tensors.
CHUNK = 1 * GiB


class GpuMemory:
    """Bytes held on GPU 0 by this process; hold() and release() are idempotent."""

    def __init__(self):
        self.cu = ctypes.CDLL("libcuda.so.1")
        self._check(self.cu.cuInit(0), "cuInit")
        dev = ctypes.c_int()
        self._check(self.cu.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
        ctx = ctypes.c_void_p()
        self._check(self.cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "ctx retain")
        self.ctx = ctx
        self.ptrs = []
        self.lock = threading.Lock()

    @staticmethod
    def _check(rc, what):
        if rc != 0:
            raise RuntimeError("%s failed: CUresult %d" % (what, rc))

    def held(self):
        return bool(self.ptrs)

    def hold(self, nbytes):
        """Allocates nbytes (in chunks); raises MemoryError on CUDA out of memory."""
        with self.lock:
            if self.ptrs:
                return
            self._check(self.cu.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")
            left = nbytes
            while left > 0:
                n = min(CHUNK, left)
                p = ctypes.c_ulonglong()
                rc = self.cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(n))
                if rc != 0:
                    for q in self.ptrs:
                        self.cu.cuMemFree_v2(q)
                    self.ptrs = []
                    raise MemoryError("CUDA out of memory (CUresult %d)" % rc)
                self.ptrs.append(p.value)
                left -= n

    def release(self):
        with self.lock:
            self._check(self.cu.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")
            for p in self.ptrs:
                self.cu.cuMemFree_v2(ctypes.c_ulonglong(p))
            self.ptrs = []
