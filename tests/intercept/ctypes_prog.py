#!/usr/bin/env python3
"""An unmodified Python program that uses the GPU through ctypes (which looks
functions up with dlsym): allocates SIZE bytes on device 0. Standard library only.

    ctypes_prog.py BYTES [--hold]

Prints "ok BYTES" (and "ready" with --hold, then waits for stdin to close), or
"error STEP CODE" and exits 2 on CUDA_ERROR_OUT_OF_MEMORY, 1 otherwise."""
import ctypes
import sys


def main():
    size = int(sys.argv[1])
    hold = "--hold" in sys.argv
    cuda = ctypes.CDLL("libcuda.so.1")

    def check(step, rc):
        if rc != 0:
            print("error %s %d" % (step, rc), flush=True)
            sys.exit(2 if rc == 2 else 1)

    check("cuInit", cuda.cuInit(0))
    dev = ctypes.c_int()
    check("cuDeviceGet", cuda.cuDeviceGet(ctypes.byref(dev), 0))
    ctx = ctypes.c_void_p()
    check("cuDevicePrimaryCtxRetain", cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev))
    check("cuCtxSetCurrent", cuda.cuCtxSetCurrent(ctx))
    ptr = ctypes.c_ulonglong()
    alloc = cuda.cuMemAlloc_v2
    alloc.argtypes = [ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_size_t]
    check("cuMemAlloc", alloc(ctypes.byref(ptr), size))
    print("ok %d" % size, flush=True)
    if hold:
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
