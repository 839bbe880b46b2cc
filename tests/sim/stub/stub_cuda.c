/*
 * stub_cuda.c - a libcuda.so.1 that lacks cuMemAlloc_v2 and cuMemAlloc, for
 * the loader's "missing symbol" error. Everything it has does nothing.
 */
#include "gpu/gpu_abi.h"

#define STUB(name, ...)                                                                            \
    CUresult name(__VA_ARGS__);                                                                    \
    CUresult name(__VA_ARGS__)                                                                     \
    {                                                                                              \
        return CUDA_SUCCESS;                                                                       \
    }

STUB(cuInit, unsigned int flags)
STUB(cuDriverGetVersion, int *version)
STUB(cuDeviceGetCount, int *count)
STUB(cuDeviceGet, CUdevice *device, int ordinal)
STUB(cuDeviceGetName, char *name, int len, CUdevice dev)
STUB(cuDeviceTotalMem_v2, size_t *bytes, CUdevice dev)
STUB(cuDeviceGetUuid, CUuuid *uuid, CUdevice dev)
STUB(cuDevicePrimaryCtxRetain, CUcontext *pctx, CUdevice dev)
STUB(cuDevicePrimaryCtxRelease, CUdevice dev)
STUB(cuCtxSetCurrent, CUcontext ctx)
STUB(cuCtxGetCurrent, CUcontext *pctx)
STUB(cuMemFree_v2, CUdeviceptr dptr)
