/*
 * hooks.c - the driver entry points libgpucoord-intercept.so exports in place of
 * libcuda.so.1's, and the two doors through which programs find driver functions
 * without linking them: cuGetProcAddress (the CUDA runtime) and dlsym (dlopen +
 * dlsym, as the runtime's loader and Python's ctypes do).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "intercept/intercept.h"

#define GCI_EXPORT __attribute__((visibility("default")))
/* dlsym is called by sanitizer runtimes while they start, before instrumented code may
 * run: the dlsym path stays uninstrumented (sanitizer builds only; no effect else). */
#define GCI_EARLY __attribute__((no_sanitize("address", "undefined")))

/* The entry points replaced: each hook has the driver's own name and signature. */
#define GCI_HOOKS(X)                                                                               \
    X(cuDevicePrimaryCtxRetain)                                                                    \
    X(cuCtxCreate_v2)                                                                              \
    X(cuCtxCreate_v3)                                                                              \
    X(cuCtxCreate_v4)                                                                              \
    X(cuMemAlloc_v2)                                                                               \
    X(cuMemAllocPitch_v2)                                                                          \
    X(cuMemAllocManaged)                                                                           \
    X(cuMemAllocAsync)                                                                             \
    X(cuMemAllocAsync_ptsz)                                                                        \
    X(cuMemAllocFromPoolAsync)                                                                     \
    X(cuMemAllocFromPoolAsync_ptsz)                                                                \
    X(cuMemFree_v2)                                                                                \
    X(cuMemFreeAsync)                                                                              \
    X(cuMemFreeAsync_ptsz)                                                                         \
    X(cuMemCreate)                                                                                 \
    X(cuMemRelease)                                                                                \
    X(cuGetProcAddress)                                                                            \
    X(cuGetProcAddress_v2)

GCI_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
GCI_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);
GCI_EXPORT CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params_array,
                                   int num_params, unsigned int flags, CUdevice dev);
GCI_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags,
                                   CUdevice dev);
GCI_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize);
GCI_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width_bytes,
                                       size_t height, unsigned int element_bytes);
GCI_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags);
GCI_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream stream);
GCI_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream stream);
GCI_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                            CUstream stream);
GCI_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                                 CUmemoryPool pool, CUstream stream);
GCI_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr);
GCI_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream);
GCI_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream);
GCI_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                                const CUmemAllocationProp *prop, unsigned long long flags);
GCI_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle);
GCI_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                     cuuint64_t flags);
GCI_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                        cuuint64_t flags,
                                        CUdriverProcAddressQueryResult *symbolStatus);
GCI_EXPORT void *dlsym(void *handle, const char *symbol);

/* ---- the real driver and the real dlsym ---- */

typedef void *(*dlsym_fn)(void *, const char *);

static pthread_once_t dlsym_once = PTHREAD_ONCE_INIT;
static dlsym_fn real_dlsym;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;
static struct gci_real real;

GCI_EARLY static void dlsym_load(void)
{
    /* dlvsym, not dlsym: dlsym is ours. glibc 2.34 moved dlsym into libc. */
    static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17", NULL};

    for (unsigned i = 0; versions[i] != NULL && real_dlsym == NULL; i++)
        real_dlsym = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", versions[i]);
}

GCI_EARLY static void *next_dlsym(void *handle, const char *symbol)
{
    pthread_once(&dlsym_once, dlsym_load);
    return real_dlsym != NULL ? real_dlsym(handle, symbol) : NULL;
}

static void real_load(void)
{
    const char *path = getenv("GPUCOORD_REAL_LIBCUDA");
    /* By name: the same instance the program opens itself (ld.so shares it). */
    void *lib =
        dlopen(path != NULL && path[0] != '\0' ? path : "libcuda.so.1", RTLD_NOW | RTLD_LOCAL);

    if (lib == NULL)
        return;
#define GCI_XX_LOAD(name, type) real.name = (type)next_dlsym(lib, #name);
    GCI_REAL_FUNCS(GCI_XX_LOAD)
#undef GCI_XX_LOAD
}

__attribute__((cold, noinline)) static void real_load_once(void)
{
    pthread_once(&real_once, real_load);
    __atomic_store_n(&real.loaded, 1, __ATOMIC_RELEASE);
}

/* Every hooked call comes through here: one load (of the line the allocation's and
 * the free's functions are in) once loaded. */
static inline const struct gci_real *real_get(void)
{
    if (__builtin_expect(!__atomic_load_n(&real.loaded, __ATOMIC_ACQUIRE), 0))
        real_load_once();
    return &real;
}

const struct gci_real *gci_real(void)
{
    return real_get();
}

int gci_current_device(void)
{
    static __thread CUcontext cached_ctx;
    static __thread int cached_dev = -1;
    const struct gci_real *r = real_get();
    CUcontext c = NULL;
    CUdevice d = -1;

    if (r->cuCtxGetCurrent == NULL || r->cuCtxGetCurrent(&c) != CUDA_SUCCESS || c == NULL)
        return -1;
    if (c == cached_ctx)
        return cached_dev;
    if (r->cuCtxGetDevice == NULL || r->cuCtxGetDevice(&d) != CUDA_SUCCESS)
        return -1;
    cached_ctx = c;
    cached_dev = d;
    return d;
}

/* ---- contexts ---- */

GCI_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    const struct gci_real *r = real_get();
    CUresult rc;

    if (r->cuDevicePrimaryCtxRetain == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    rc = gci_context_begin(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = r->cuDevicePrimaryCtxRetain(pctx, dev);
    if (rc == CUDA_SUCCESS)
        gci_context_made(dev);
    return rc;
}

GCI_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    const struct gci_real *r = real_get();
    CUresult rc;

    if (r->cuCtxCreate_v2 == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    rc = gci_context_begin(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = r->cuCtxCreate_v2(pctx, flags, dev);
    if (rc == CUDA_SUCCESS)
        gci_context_made(dev);
    return rc;
}

/* With execution affinity (CUDA 11.4): the same lease at the first context. */
GCI_EXPORT CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params_array,
                                   int num_params, unsigned int flags, CUdevice dev)
{
    const struct gci_real *r = real_get();
    CUresult rc;

    if (r->cuCtxCreate_v3 == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    rc = gci_context_begin(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = r->cuCtxCreate_v3(pctx, params_array, num_params, flags, dev);
    if (rc == CUDA_SUCCESS)
        gci_context_made(dev);
    return rc;
}

/* With creation parameters (CUDA 12.5): what cuCtxCreate means from CUDA 13. */
GCI_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags,
                                   CUdevice dev)
{
    const struct gci_real *r = real_get();
    CUresult rc;

    if (r->cuCtxCreate_v4 == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    rc = gci_context_begin(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = r->cuCtxCreate_v4(pctx, params, flags, dev);
    if (rc == CUDA_SUCCESS)
        gci_context_made(dev);
    return rc;
}

/* ---- allocations ---- */

/* Runs one allocation of bytes on dev under the lease: CALL is the driver call, KEY
 * the pointer or handle it wrote. Within the lease: no round trip, no lock. */
#define GCI_ALLOCATE(dev, bytes, kind, CALL, KEY)                                                  \
    do {                                                                                           \
        CUresult rc_;                                                                              \
        if (__builtin_expect(gci_alloc_fast_begin((dev), (bytes)), 1)) {                           \
            rc_ = (CALL);                                                                          \
            gci_alloc_fast_end((dev), (bytes), rc_ == CUDA_SUCCESS, (kind),                        \
                               rc_ == CUDA_SUCCESS ? (uint64_t)(KEY) : 0);                         \
            if (rc_ != CUDA_ERROR_OUT_OF_MEMORY || !gci_alloc_oom_grow((dev), (bytes)))            \
                return rc_;                                                                        \
        } else {                                                                                   \
            rc_ = gci_alloc_begin((dev), (bytes));                                                 \
            if (rc_ != CUDA_SUCCESS)                                                               \
                return rc_;                                                                        \
            rc_ = (CALL);                                                                          \
            gci_alloc_end((dev), (bytes), (bytes), rc_ == CUDA_SUCCESS, (kind),                    \
                          rc_ == CUDA_SUCCESS ? (uint64_t)(KEY) : 0);                              \
            if (rc_ != CUDA_ERROR_OUT_OF_MEMORY || !gci_alloc_oom_grow((dev), (bytes)))            \
                return rc_;                                                                        \
        }                                                                                          \
        /* The driver refused what the lease allowed; the lease grew by it: once more. */          \
        rc_ = gci_alloc_begin((dev), (bytes));                                                     \
        if (rc_ != CUDA_SUCCESS)                                                                   \
            return rc_;                                                                            \
        rc_ = (CALL);                                                                              \
        gci_alloc_end((dev), (bytes), (bytes), rc_ == CUDA_SUCCESS, (kind),                        \
                      rc_ == CUDA_SUCCESS ? (uint64_t)(KEY) : 0);                                  \
        return rc_;                                                                                \
    } while (0)

GCI_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    const struct gci_real *r = real_get();
    int dev;

    if (r->cuMemAlloc_v2 == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    dev = gci_alloc_device();
    if (dptr == NULL || bytesize == 0 || dev < 0)
        return r->cuMemAlloc_v2(dptr, bytesize);
    GCI_ALLOCATE(dev, bytesize, GCI_PTR, r->cuMemAlloc_v2(dptr, bytesize), *dptr);
}

/* The pitch the driver will choose is not known before the call: count a 512-byte
 * alignment (the driver's on current cards), then what it really took. */
#define GCI_PITCH_ALIGN 512ULL

GCI_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width_bytes,
                                       size_t height, unsigned int element_bytes)
{
    const struct gci_real *r = real_get();
    uint64_t guess;
    CUresult rc;
    int dev;

    if (r->cuMemAllocPitch_v2 == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    dev = gci_alloc_device();
    if (dptr == NULL || pitch == NULL || dev < 0 || width_bytes == 0 || height == 0 ||
        width_bytes > UINT64_MAX / 2 ||
        __builtin_mul_overflow((width_bytes + GCI_PITCH_ALIGN - 1) & ~(GCI_PITCH_ALIGN - 1),
                               (uint64_t)height, &guess))
        return r->cuMemAllocPitch_v2(dptr, pitch, width_bytes, height, element_bytes);
    rc = gci_alloc_begin(dev, guess);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = r->cuMemAllocPitch_v2(dptr, pitch, width_bytes, height, element_bytes);
    if (rc == CUDA_ERROR_OUT_OF_MEMORY && gci_alloc_oom_grow(dev, guess))
        rc = r->cuMemAllocPitch_v2(dptr, pitch, width_bytes, height, element_bytes);
    gci_alloc_end(dev, guess, rc == CUDA_SUCCESS ? (uint64_t)*pitch * height : 0,
                  rc == CUDA_SUCCESS, GCI_PTR, rc == CUDA_SUCCESS ? *dptr : 0);
    return rc;
}

GCI_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    const struct gci_real *r = real_get();
    int dev;

    if (r->cuMemAllocManaged == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    dev = gci_alloc_device();
    if (dptr == NULL || bytesize == 0 || dev < 0)
        return r->cuMemAllocManaged(dptr, bytesize, flags);
    GCI_ALLOCATE(dev, bytesize, GCI_PTR, r->cuMemAllocManaged(dptr, bytesize, flags), *dptr);
}

static CUresult alloc_async(cuMemAllocAsync_fn fn, CUdeviceptr *dptr, size_t bytesize,
                            CUstream stream)
{
    int dev;

    if (fn == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    dev = gci_alloc_device();
    if (dptr == NULL || bytesize == 0 || dev < 0)
        return fn(dptr, bytesize, stream);
    GCI_ALLOCATE(dev, bytesize, GCI_PTR, fn(dptr, bytesize, stream), *dptr);
}

GCI_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    return alloc_async(real_get()->cuMemAllocAsync, dptr, bytesize, stream);
}

GCI_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    return alloc_async(real_get()->cuMemAllocAsync_ptsz, dptr, bytesize, stream);
}

static CUresult alloc_from_pool(cuMemAllocFromPoolAsync_fn fn, CUdeviceptr *dptr, size_t bytesize,
                                CUmemoryPool pool, CUstream stream)
{
    int dev;

    if (fn == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    dev = gci_alloc_device();
    if (dptr == NULL || bytesize == 0 || dev < 0)
        return fn(dptr, bytesize, pool, stream);
    GCI_ALLOCATE(dev, bytesize, GCI_PTR, fn(dptr, bytesize, pool, stream), *dptr);
}

GCI_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                            CUstream stream)
{
    return alloc_from_pool(real_get()->cuMemAllocFromPoolAsync, dptr, bytesize, pool, stream);
}

GCI_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                                 CUmemoryPool pool, CUstream stream)
{
    return alloc_from_pool(real_get()->cuMemAllocFromPoolAsync_ptsz, dptr, bytesize, pool, stream);
}

GCI_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                                const CUmemAllocationProp *prop, unsigned long long flags)
{
    const struct gci_real *r = real_get();
    int dev;

    if (r->cuMemCreate == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    /* Physical memory on a device: the one named in prop, not the current one. */
    if (handle == NULL || size == 0 || prop == NULL ||
        prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE || prop->location.id < 0)
        return r->cuMemCreate(handle, size, prop, flags);
    dev = prop->location.id;
    GCI_ALLOCATE(dev, size, GCI_HANDLE, r->cuMemCreate(handle, size, prop, flags), *handle);
}

/* ---- frees ---- */

GCI_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    const struct gci_real *r = real_get();
    struct gci_freeing f;
    CUresult rc;
    bool taken;

    if (r->cuMemFree_v2 == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    taken = gci_free_begin(GCI_PTR, dptr, &f);
    rc = r->cuMemFree_v2(dptr);
    if (taken)
        gci_free_end(&f, rc == CUDA_SUCCESS);
    return rc;
}

static CUresult free_async(cuMemFreeAsync_fn fn, CUdeviceptr dptr, CUstream stream)
{
    struct gci_freeing f;
    CUresult rc;
    bool taken;

    if (fn == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    taken = gci_free_begin(GCI_PTR, dptr, &f);
    rc = fn(dptr, stream);
    if (taken)
        gci_free_end(&f, rc == CUDA_SUCCESS);
    return rc;
}

GCI_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream)
{
    return free_async(real_get()->cuMemFreeAsync, dptr, stream);
}

GCI_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream)
{
    return free_async(real_get()->cuMemFreeAsync_ptsz, dptr, stream);
}

GCI_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    const struct gci_real *r = real_get();
    struct gci_freeing f;
    CUresult rc;
    bool taken;

    if (r->cuMemRelease == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    taken = gci_free_begin(GCI_HANDLE, handle, &f);
    rc = r->cuMemRelease(handle);
    if (taken)
        gci_free_end(&f, rc == CUDA_SUCCESS);
    return rc;
}

/* ---- finding functions: cuGetProcAddress and dlsym ---- */

/* The hook for a real driver function, or fn itself. */
static void *hook_for(void *fn)
{
    const struct gci_real *r = real_get();

    if (fn == NULL)
        return NULL;
#define GCI_XX_SWAP(name)                                                                          \
    if (fn == (void *)r->name)                                                                     \
        return (void *)name;
    GCI_HOOKS(GCI_XX_SWAP)
#undef GCI_XX_SWAP
    return fn;
}

GCI_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                     cuuint64_t flags)
{
    const struct gci_real *r = real_get();
    CUresult rc;

    if (r->cuGetProcAddress == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    rc = r->cuGetProcAddress(symbol, pfn, cudaVersion, flags);
    if (rc == CUDA_SUCCESS && pfn != NULL)
        *pfn = hook_for(*pfn);
    return rc;
}

GCI_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                        cuuint64_t flags,
                                        CUdriverProcAddressQueryResult *symbolStatus)
{
    const struct gci_real *r = real_get();
    CUresult rc;

    if (r->cuGetProcAddress_v2 == NULL)
        return CUDA_ERROR_NOT_INITIALIZED;
    rc = r->cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, symbolStatus);
    if (rc == CUDA_SUCCESS && pfn != NULL)
        *pfn = hook_for(*pfn);
    return rc;
}

/* Is fn defined in the driver library (libcuda.so*)? */
GCI_EARLY static bool in_driver(void *fn)
{
    Dl_info info;
    const char *base;

    if (dladdr(fn, &info) == 0 || info.dli_fname == NULL)
        return false;
    base = strrchr(info.dli_fname, '/');
    base = base != NULL ? base + 1 : info.dli_fname;
    return strncmp(base, "libcuda.so", 10) == 0;
}

/*
 * A program that opens the driver itself gets the hooks for the functions they
 * replace, and everything else (including RTLD_NEXT lookups, answered as seen
 * from this library, which comes first) as the next dlsym answers.
 */
GCI_EXPORT GCI_EARLY void *dlsym(void *handle, const char *symbol)
{
    void *fn = next_dlsym(handle, symbol);

    if (fn == NULL || symbol[0] != 'c' || symbol[1] != 'u')
        return fn;
#define GCI_XX_NAME(name)                                                                          \
    if (strcmp(symbol, #name) == 0)                                                                \
        return in_driver(fn) ? (void *)name : fn;
    GCI_HOOKS(GCI_XX_NAME)
#undef GCI_XX_NAME
    return fn;
}
