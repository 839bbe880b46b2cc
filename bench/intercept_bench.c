/*
 * intercept_bench.c - the cost of an allocate+free pair as a program sees it:
 * cuMemAlloc_v2 + cuMemFree_v2 found through dlopen + dlsym, as the CUDA runtime
 * finds them. Run it bare and under LD_PRELOAD=libgpucoord-intercept.so
 * (bench/intercept.sh does both, alternating): within the lease the interposer
 * adds only its bookkeeping, no round trip to the coordinator.
 *
 *   intercept-bench [PAIRS] [SIZE_BYTES]
 *
 * Prints one line: "pairs N ns_per_pair X".
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gpu/gpu_abi.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 200000;
    size_t size = argc > 2 ? (size_t)atoll(argv[2]) : (size_t)1 << 20;
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    cuInit_fn init;
    cuDeviceGet_fn device_get;
    cuDevicePrimaryCtxRetain_fn retain;
    cuCtxSetCurrent_fn set_current;
    cuMemAlloc_fn alloc;
    cuMemFree_fn mfree;
    CUcontext ctx;
    CUdevice dev;
    CUdeviceptr p, warm;
    double t0, t1;

    if (lib == NULL) {
        fprintf(stderr, "intercept-bench: %s\n", dlerror());
        return 1;
    }
    *(void **)&init = dlsym(lib, "cuInit");
    *(void **)&device_get = dlsym(lib, "cuDeviceGet");
    *(void **)&retain = dlsym(lib, "cuDevicePrimaryCtxRetain");
    *(void **)&set_current = dlsym(lib, "cuCtxSetCurrent");
    *(void **)&alloc = dlsym(lib, "cuMemAlloc_v2");
    *(void **)&mfree = dlsym(lib, "cuMemFree_v2");
    if (init(0) != 0 || device_get(&dev, 0) != 0 || retain(&ctx, dev) != 0 ||
        set_current(ctx) != 0) {
        fprintf(stderr, "intercept-bench: no context\n");
        return 1;
    }
    /* The first allocation grows the lease (one round trip); the pairs then fit. */
    if (alloc(&warm, size) != 0 || mfree(warm) != 0) {
        fprintf(stderr, "intercept-bench: first allocation failed\n");
        return 1;
    }
    t0 = now_s();
    for (long i = 0; i < pairs; i++) {
        if (alloc(&p, size) != 0 || mfree(p) != 0) {
            fprintf(stderr, "intercept-bench: pair %ld failed\n", i);
            return 1;
        }
    }
    t1 = now_s();
    printf("pairs %ld ns_per_pair %.1f\n", pairs, (t1 - t0) * 1e9 / (double)pairs);
    return 0;
}
