/*
 * intercept.h - libgpucoord-intercept.so internals (docs/intercept.md).
 *
 * hooks.c exports the driver entry points that create contexts, allocate and
 * free, finds the real ones (libcuda.so.1 opened by name, dlsym taken from the
 * next library), and answers cuGetProcAddress and dlsym with the hooks.
 * lease.c keeps the book of each device's lease and talks to the coordinator.
 */
#ifndef GCI_INTERCEPT_H
#define GCI_INTERCEPT_H

#include <stdbool.h>
#include <stdint.h>

#include "gpu/gpu_abi.h"
#include "intercept/book.h"
#include "intercept/ptrtab.h"

/* Which table a live allocation is in: device pointers, or cuMemCreate handles. */
enum gci_kind { GCI_PTR, GCI_HANDLE };

#define GCI_DEVICES_MAX 16

enum gci_mode {
    GCI_UNTOUCHED, /* no context yet: the coordinator has not been asked */
    GCI_ACTIVE,    /* leases are kept */
    GCI_PASSTHROUGH,
};

/*
 * What allocations within the lease and frees read and count without a lock.
 * lease.c owns it and changes mode, only_dev and the leases under its locks;
 * hooks.c counts through the inline functions below (an allocation within the
 * lease then touches this struct's first cache line, its device's book and one
 * table slot, and calls nothing but the driver).
 */
struct gci_hot {
    _Alignas(64) enum gci_mode mode; /* atomic */
    int only_dev;                    /* the one device leased, -1 for none or several (atomic) */
    struct gci_ptrtab tables[2];     /* by enum gci_kind; set up before the first lease */
    struct gci_book book[GCI_DEVICES_MAX];
};
extern struct gci_hot gci_hot __attribute__((visibility("hidden")));

static inline bool gci_coordinated(void)
{
    return __atomic_load_n(&gci_hot.mode, __ATOMIC_ACQUIRE) == GCI_ACTIVE;
}

/*
 * gci_context_begin: before the first context on device dev (an ordinal) is
 * made: takes the lease for the context (and GPUCOORD_NEED) unless the process
 * has one there. CUDA_SUCCESS, or CUDA_ERROR_OUT_OF_MEMORY when the coordinator
 * refuses (or, with GPUCOORD_INTERCEPT_FAIL_CLOSED=1, cannot be reached).
 */
CUresult gci_context_begin(int dev);
/*
 * gci_context_made: after the driver made a context on dev (or found one made):
 * the first time after gci_context_begin took the lease, measures what the context
 * really took (NVML's figure for this process) and counts that instead of the
 * estimate (GPUCOORD_CONTEXT_BYTES, when given, is never replaced). A no-op after.
 */
void gci_context_made(int dev);

/*
 * gci_alloc_begin: before the driver allocates bytes on dev: counts them and,
 * when they do not fit in the lease, grows it first. CUDA_SUCCESS, or
 * CUDA_ERROR_OUT_OF_MEMORY when the coordinator cannot make room (nothing counted).
 */
__attribute__((cold)) CUresult gci_alloc_begin(int dev, uint64_t bytes);
/*
 * gci_alloc_fast_begin: true when bytes fit in dev's lease as it is: they are
 * counted, without a lock (the cost of an allocation within the lease is the
 * point), and gci_alloc_fast_end records key (ok) or takes the count back.
 * false: nothing counted; use gci_alloc_begin.
 */
static inline bool gci_alloc_fast_begin(int dev, uint64_t bytes)
{
    /* No lease on dev: its lease_bytes is 0, nothing fits. */
    return gci_coordinated() && dev >= 0 && dev < GCI_DEVICES_MAX &&
           gci_book_try_count(&gci_hot.book[dev], bytes);
}

static inline void gci_alloc_fast_end(int dev, uint64_t bytes, bool ok, enum gci_kind kind,
                                      uint64_t key)
{
    if (__builtin_expect(!ok, 0))
        gci_book_release(&gci_hot.book[dev], bytes);
    else /* out of host memory for the table: the bytes stay counted (safe side) */
        (void)gci_ptrtab_put(&gci_hot.tables[kind], key, bytes, dev);
}

/* After the driver answered out of memory anyway: grows the lease by bytes; true to
 * retry the allocation once. */
__attribute__((cold)) bool gci_alloc_oom_grow(int dev, uint64_t bytes);
/* After the allocation: on success records key (bytes counted, actual the bytes the
 * driver really took); on failure takes the count back. */
__attribute__((cold)) void gci_alloc_end(int dev, uint64_t bytes, uint64_t actual, bool ok,
                                         enum gci_kind kind, uint64_t key);
/* A free in progress: the entry taken out of the table before the driver frees. */
struct gci_freeing {
    enum gci_kind kind;
    uint64_t key;
    uint64_t bytes;
    int dev;
};

/*
 * gci_free_begin: before the driver frees key: takes its entry out of the table
 * (true, *ret filled) while the memory is still the program's, so that an
 * allocation on another thread that gets the same address from the driver right
 * after the free records its own entry, never finds this one. false: nothing
 * recorded for key (nothing to do after the free). Nothing was recorded before
 * the first lease; after a fall back to passing through, entries left are never
 * read again.
 */
static inline bool gci_free_begin(enum gci_kind kind, uint64_t key, struct gci_freeing *ret)
{
    if (!gci_coordinated())
        return false;
    ret->kind = kind;
    ret->key = key;
    return gci_ptrtab_take(&gci_hot.tables[kind], key, &ret->bytes, &ret->dev);
}

/* After the driver answered: ok, the bytes are given back to the book (the lease
 * shrinks later, see book.h); not ok, the entry is put back (the driver kept it). */
static inline void gci_free_end(const struct gci_freeing *f, bool ok)
{
    if (__builtin_expect(!ok, 0))
        (void)gci_ptrtab_put(&gci_hot.tables[f->kind], f->key, f->bytes, f->dev);
    else if (f->dev >= 0 && f->dev < GCI_DEVICES_MAX)
        gci_book_release(&gci_hot.book[f->dev], f->bytes);
}

/* The device ordinal of the calling thread's current context, or -1. */
int gci_current_device(void);
/* The device an allocation on the current context is charged to: the one leased
 * device when there is exactly one (no need to ask the driver which one is current
 * for every allocation), -1 while passing through, else gci_current_device(). */
static inline int gci_alloc_device(void)
{
    int only = __atomic_load_n(&gci_hot.only_dev, __ATOMIC_ACQUIRE);

    if (only >= 0)
        return only;
    /* Passing through: nothing to charge, so no call to the driver to find the device. */
    if (__atomic_load_n(&gci_hot.mode, __ATOMIC_ACQUIRE) == GCI_PASSTHROUGH)
        return -1;
    return gci_current_device();
}

/* The real driver's functions (NULL where it lacks one). */
/* The real driver's functions (NULL where it lacks one); those an allocation and a
 * free call first, so that they share a cache line. */
#define GCI_REAL_FUNCS(X)                                                                          \
    X(cuMemAlloc_v2, cuMemAlloc_fn)                                                                \
    X(cuMemFree_v2, cuMemFree_fn)                                                                  \
    X(cuMemAllocAsync, cuMemAllocAsync_fn)                                                         \
    X(cuMemFreeAsync, cuMemFreeAsync_fn)                                                           \
    X(cuMemCreate, cuMemCreate_fn)                                                                 \
    X(cuMemRelease, cuMemRelease_fn)                                                               \
    X(cuMemAllocManaged, cuMemAllocManaged_fn)                                                     \
    X(cuMemAllocPitch_v2, cuMemAllocPitch_fn)                                                      \
    X(cuMemAllocAsync_ptsz, cuMemAllocAsync_fn)                                                    \
    X(cuMemAllocFromPoolAsync, cuMemAllocFromPoolAsync_fn)                                         \
    X(cuMemAllocFromPoolAsync_ptsz, cuMemAllocFromPoolAsync_fn)                                    \
    X(cuMemFreeAsync_ptsz, cuMemFreeAsync_fn)                                                      \
    X(cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRetain_fn)                                       \
    X(cuCtxCreate_v2, cuCtxCreate_fn)                                                              \
    X(cuCtxCreate_v3, cuCtxCreate_v3_fn)                                                           \
    X(cuCtxCreate_v4, cuCtxCreate_v4_fn)                                                           \
    X(cuCtxGetCurrent, cuCtxGetCurrent_fn)                                                         \
    X(cuCtxGetDevice, cuCtxGetDevice_fn)                                                           \
    X(cuDeviceGetUuid_v2, cuDeviceGetUuid_fn)                                                      \
    X(cuGetProcAddress, cuGetProcAddress_fn)                                                       \
    X(cuGetProcAddress_v2, cuGetProcAddress_v2_fn)

struct gci_real {
    _Alignas(64) int loaded; /* atomic */
#define GCI_XX_FIELD(name, type) type name;
    GCI_REAL_FUNCS(GCI_XX_FIELD)
#undef GCI_XX_FIELD
};

/* The real functions, loaded at the first call (never NULL itself). */
const struct gci_real *gci_real(void);

#endif
