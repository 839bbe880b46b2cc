/*
 * cuda.c - the CUDA driver API loaded with dlopen (gpu.h). Each entry of the
 * function table is resolved from its newest versioned name first (the
 * headers map cuMemAlloc to cuMemAlloc_v2), then older ones; errors name the
 * library or symbol at fault. The table is read-only after gc_cuda_open, so
 * any thread may call through it.
 */
#include "gpu/gpu.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

#define CUDA_LIB         "libcuda.so.1"
#define CUDA_ERRTEXT_MAX 160

struct cuda_sym {
    const char *names[2]; /* newest first; names[1] may be NULL */
    size_t offset;        /* of the function pointer in struct gc_cuda */
    bool optional;
};

#define SYM(field, ...)                                                                            \
    {                                                                                              \
        {__VA_ARGS__}, offsetof(struct gc_cuda, field), false                                      \
    }
#define SYM_OPTIONAL(field, ...)                                                                   \
    {                                                                                              \
        {__VA_ARGS__}, offsetof(struct gc_cuda, field), true                                       \
    }

static const struct cuda_sym cuda_syms[] = {
    SYM(cuInit, "cuInit"),
    SYM(cuDriverGetVersion, "cuDriverGetVersion"),
    SYM(cuDeviceGetCount, "cuDeviceGetCount"),
    SYM(cuDeviceGet, "cuDeviceGet"),
    SYM(cuDeviceGetName, "cuDeviceGetName"),
    SYM(cuDeviceTotalMem, "cuDeviceTotalMem_v2", "cuDeviceTotalMem"),
    SYM(cuDeviceGetUuid, "cuDeviceGetUuid_v2", "cuDeviceGetUuid"),
    SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    SYM(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
    SYM(cuCtxSetCurrent, "cuCtxSetCurrent"),
    SYM(cuCtxGetCurrent, "cuCtxGetCurrent"),
    SYM(cuMemAlloc, "cuMemAlloc_v2", "cuMemAlloc"),
    SYM(cuMemFree, "cuMemFree_v2", "cuMemFree"),
    SYM(cuMemGetInfo, "cuMemGetInfo_v2", "cuMemGetInfo"),
    SYM(cuMemHostAlloc, "cuMemHostAlloc"),
    SYM(cuMemFreeHost, "cuMemFreeHost"),
    SYM(cuMemcpyHtoD, "cuMemcpyHtoD_v2", "cuMemcpyHtoD"),
    SYM(cuMemcpyDtoH, "cuMemcpyDtoH_v2", "cuMemcpyDtoH"),
    SYM(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync"),
    SYM(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync"),
    SYM(cuMemsetD8, "cuMemsetD8_v2", "cuMemsetD8"),
    SYM(cuStreamCreate, "cuStreamCreate"),
    SYM(cuStreamSynchronize, "cuStreamSynchronize"),
    SYM(cuStreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy"),
    SYM_OPTIONAL(cuGetErrorString, "cuGetErrorString"),
    SYM_OPTIONAL(cuGetErrorName, "cuGetErrorName"),
};

/* Names and texts for when the driver lacks cuGetErrorName/String. */
static const struct {
    CUresult code;
    const char *name;
    const char *text;
} cuda_errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_DEINITIALIZED, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

const char *gc_cuda_strerror(const struct gc_cuda *cuda, CUresult rc)
{
    static __thread char buf[CUDA_ERRTEXT_MAX];
    const char *name = NULL, *text = NULL;

    if (cuda != NULL && cuda->cuGetErrorName != NULL && cuda->cuGetErrorName(rc, &name) != 0)
        name = NULL;
    if (cuda != NULL && cuda->cuGetErrorString != NULL && cuda->cuGetErrorString(rc, &text) != 0)
        text = NULL;
    for (size_t i = 0; i < sizeof(cuda_errors) / sizeof(cuda_errors[0]); i++) {
        if (cuda_errors[i].code != rc)
            continue;
        if (name == NULL)
            name = cuda_errors[i].name;
        if (text == NULL)
            text = cuda_errors[i].text;
    }
    if (name != NULL && text != NULL)
        snprintf(buf, sizeof(buf), "%s: %s", name, text);
    else
        snprintf(buf, sizeof(buf), "CUDA error %d", rc);
    return buf;
}

int gc_cuda_open(struct gc_cuda *ret_cuda, char *errbuf, size_t errbuf_len)
{
    struct gc_cuda cuda;
    CUresult rc;

    memset(&cuda, 0, sizeof(cuda));
    cuda.handle = dlopen(CUDA_LIB, RTLD_NOW | RTLD_LOCAL);
    if (cuda.handle == NULL) {
        const char *e = dlerror();
        snprintf(errbuf, errbuf_len, "%s", e != NULL ? e : CUDA_LIB ": cannot be loaded");
        return GC_EGPU;
    }
    for (size_t i = 0; i < sizeof(cuda_syms) / sizeof(cuda_syms[0]); i++) {
        const struct cuda_sym *s = &cuda_syms[i];
        void *p = dlsym(cuda.handle, s->names[0]);

        if (p == NULL && s->names[1] != NULL)
            p = dlsym(cuda.handle, s->names[1]);
        if (p == NULL && !s->optional) {
            if (s->names[1] != NULL)
                snprintf(errbuf, errbuf_len, "missing symbol '%s' (and '%s') in %s", s->names[0],
                         s->names[1], CUDA_LIB);
            else
                snprintf(errbuf, errbuf_len, "missing symbol '%s' in %s", s->names[0], CUDA_LIB);
            goto out_close;
        }
        memcpy((char *)&cuda + s->offset, &p, sizeof(p));
    }
    rc = cuda.cuInit(0);
    if (rc != CUDA_SUCCESS) {
        snprintf(errbuf, errbuf_len, "cuInit failed in %s: %s (%d)", CUDA_LIB,
                 gc_cuda_strerror(&cuda, rc), rc);
        goto out_close;
    }
    *ret_cuda = cuda;
    return 0;

out_close:
    dlclose(cuda.handle);
    return GC_EGPU;
}

void gc_cuda_close(struct gc_cuda *cuda)
{
    if (cuda == NULL || cuda->handle == NULL)
        return;
    dlclose(cuda->handle);
    memset(cuda, 0, sizeof(*cuda));
}
