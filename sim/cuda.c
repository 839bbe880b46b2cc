/*
 * cuda.c - gpusim's driver API (libcuda.so.1): contexts, device memory
 * accounted in the shared state, pinned host memory, timed copies, streams.
 *
 * Device pointers are addresses in a private range that is never reused
 * within the process, so they are unique, non-zero and checked on every use.
 * In accounting mode (GPUSIM_BACKED=0) no byte is kept and copies only take
 * their simulated time; with GPUSIM_BACKED=1 each allocation is backed by its
 * own anonymous mapping.
 *
 * A process forked after cuInit cannot use the driver (every call answers
 * CUDA_ERROR_NOT_INITIALIZED), as with the real one.
 *
 * Locks: g.lock (this process) is taken before the shared state's lock; no
 * lock is held while a copy sleeps.
 */
#include "gpusim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "common/err.h"

/* First device address handed out, and the alignment/gap between ranges. */
#define SIM_DPTR_BASE  (1ULL << 44)
#define SIM_DPTR_ALIGN 512ULL
/* Stream handles the real driver reserves for the legacy/per-thread streams. */
#define SIM_STREAM_LEGACY     ((CUstream)0x1)
#define SIM_STREAM_PER_THREAD ((CUstream)0x2)

struct CUctx_st {
    unsigned dev;
    unsigned refcount; /* cuDevicePrimaryCtxRetain count; 0 = inactive */
};

struct CUstream_st {
    struct CUstream_st *next;
    int64_t busy_until_ns; /* when the work queued so far completes */
};

static struct {
    pthread_mutex_t lock;
    int initialized; /* read without the lock: __atomic */
    pid_t pid;       /* the process that called cuInit */
    struct sim_config cfg;
    struct sim_shm shm;
    struct CUctx_st ctx[SIM_DEVICES_MAX]; /* by physical index */
    /* CUDA_VISIBLE_DEVICES: ordinal -> physical index, fixed at cuInit. */
    unsigned visible[SIM_DEVICES_MAX];
    unsigned nvisible;
    struct sim_alloc_table dmem; /* device allocations */
    struct sim_alloc_table hmem; /* cuMemHostAlloc ranges */
    uint64_t next_dptr;
    /* The virtual-memory API: physical handles and reserved address ranges. */
    struct sim_vmm_handle *handles;
    size_t nhandles, caphandles;
    struct sim_vmm_range *ranges;
    size_t nranges, capranges;
    uint64_t next_handle;
    struct CUstream_st *streams;
    struct CUstream_st null_stream;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct sim_vmm_handle {
    uint64_t id;
    uint64_t bytes;
    unsigned dev;  /* physical */
    unsigned maps; /* cuMemMap ranges that use it */
    bool released; /* cuMemRelease came while mapped: freed at the last unmap */
};

struct sim_vmm_range {
    uint64_t base;
    uint64_t bytes;
};

static __thread struct CUctx_st *tls_ctx;

/* ---- errors ---- */

#define SIM_CU_ERRORS(XX)                                                                          \
    XX(CUDA_SUCCESS, "no error")                                                                   \
    XX(CUDA_ERROR_INVALID_VALUE, "invalid argument")                                               \
    XX(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")                                                  \
    XX(CUDA_ERROR_NOT_INITIALIZED, "initialization error")                                         \
    XX(CUDA_ERROR_DEINITIALIZED, "driver shutting down")                                           \
    XX(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected")                                 \
    XX(CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal")                                        \
    XX(CUDA_ERROR_INVALID_CONTEXT, "invalid device context")                                       \
    XX(CUDA_ERROR_INVALID_HANDLE, "invalid resource handle")                                       \
    XX(CUDA_ERROR_NOT_FOUND, "named symbol not found")                                             \
    XX(CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered")                     \
    XX(CUDA_ERROR_UNKNOWN, "unknown error")

SIM_API CUresult cuGetErrorString(CUresult error, const char **pstr)
{
    if (pstr == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
#define XX(code, text)                                                                             \
    case code:                                                                                     \
        *pstr = text;                                                                              \
        return CUDA_SUCCESS;
        SIM_CU_ERRORS(XX)
#undef XX
    }
    *pstr = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

SIM_API CUresult cuGetErrorName(CUresult error, const char **pstr)
{
    if (pstr == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
#define XX(code, text)                                                                             \
    case code:                                                                                     \
        *pstr = #code;                                                                             \
        return CUDA_SUCCESS;
        SIM_CU_ERRORS(XX)
#undef XX
    }
    *pstr = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

/* ---- state helpers ---- */

static CUresult check_init(void)
{
    if (!__atomic_load_n(&g.initialized, __ATOMIC_ACQUIRE) || g.pid != getpid())
        return CUDA_ERROR_NOT_INITIALIZED;
    return CUDA_SUCCESS;
}

/* The calling thread's active context, or NULL. Needs g.lock for refcount. */
static struct CUctx_st *current_ctx_locked(void)
{
    struct CUctx_st *c = tls_ctx;

    return c != NULL && c->refcount > 0 ? c : NULL;
}

/* check_init, then a current active context; on success g.lock is held. */
static CUresult enter_ctx(struct CUctx_st **ret_ctx)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&g.lock);
    *ret_ctx = current_ctx_locked();
    if (*ret_ctx == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    return CUDA_SUCCESS;
}

/* Devices this process sees (after CUDA_VISIBLE_DEVICES); needs check_init. */
static unsigned device_count(void)
{
    return g.nvisible;
}

/* check_init, then dev (an ordinal among the visible devices) as a physical index. */
static CUresult check_device(CUdevice dev, unsigned *ret_phys)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (dev < 0 || (unsigned)dev >= device_count())
        return CUDA_ERROR_INVALID_DEVICE;
    *ret_phys = g.visible[dev];
    return CUDA_SUCCESS;
}

static int64_t copy_ns(size_t n, double gbps)
{
    /* GB/s with GB = 1e9 bytes is bytes per nanosecond. */
    return gbps > 0 ? (int64_t)((double)n / gbps) : 0;
}

static CUresult from_gc(int err)
{
    switch (err) {
    case 0:
        return CUDA_SUCCESS;
    case GC_EOOM:
        return CUDA_ERROR_OUT_OF_MEMORY;
    case GC_EINVAL:
        return CUDA_ERROR_INVALID_VALUE;
    default:
        return CUDA_ERROR_UNKNOWN;
    }
}

/* ---- initialisation and devices ---- */

SIM_API CUresult cuInit(unsigned int flags)
{
    struct sim_config cfg;
    unsigned ndevices = 0;
    char err[256];
    int rc;

    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g.lock);
    if (g.initialized) {
        rc = g.pid == getpid() ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED;
        pthread_mutex_unlock(&g.lock);
        return rc;
    }
    if (sim_config_load(&cfg, err, sizeof(err)) < 0) {
        sim_debug("cuInit: %s", err);
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_NO_DEVICE;
    }
    rc = sim_shm_open(&g.shm, &cfg, true);
    if (rc < 0) {
        sim_debug("cuInit: cannot open state '%s': %s", cfg.state_path, gpucoord_strerror(rc));
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_NO_DEVICE;
    }
    if (sim_lock(&g.shm) == 0) {
        ndevices = sim_ndevices(g.shm.st);
        sim_unlock(&g.shm);
    }
    /* The driver API honours CUDA_VISIBLE_DEVICES; NVML (nvml.c) does not. */
    g.nvisible = sim_visible_devices(getenv("CUDA_VISIBLE_DEVICES"), ndevices, g.visible);
    if (g.nvisible == 0) {
        /* As the real driver: nothing visible fails cuInit itself. */
        sim_debug("cuInit: CUDA_VISIBLE_DEVICES leaves no device visible");
        sim_shm_close(&g.shm);
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_NO_DEVICE;
    }
    g.cfg = cfg;
    g.pid = getpid();
    g.next_dptr = SIM_DPTR_BASE;
    for (unsigned d = 0; d < SIM_DEVICES_MAX; d++)
        g.ctx[d].dev = d;
    __atomic_store_n(&g.initialized, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g.lock);
    sim_debug("cuInit: state '%s', %s mode", cfg.state_path,
              cfg.backed ? "backed" : "accounting-only");
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDriverGetVersion(int *version)
{
    if (version == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *version = SIM_CUDA_VERSION;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceGetCount(int *count)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (count == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *count = (int)device_count();
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (ordinal < 0 || (unsigned)ordinal >= device_count())
        return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    unsigned phys = 0;
    CUresult rc = check_device(dev, &phys);
    uint64_t cap = 0;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (name == NULL || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (sim_lock(&g.shm) == 0) {
        cap = g.shm.st->dev[phys].capacity_bytes;
        sim_unlock(&g.shm);
    }
    /* Like the real driver: truncated to len - 1 characters. */
    strncpy(name, sim_device_name(cap), (size_t)len - 1);
    name[len - 1] = '\0';
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    unsigned phys = 0;
    CUresult rc = check_device(dev, &phys);

    if (rc != CUDA_SUCCESS)
        return rc;
    if (bytes == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (sim_lock(&g.shm) < 0)
        return CUDA_ERROR_UNKNOWN;
    *bytes = g.shm.st->dev[phys].capacity_bytes;
    sim_unlock(&g.shm);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
    unsigned phys = 0;
    CUresult rc = check_device(dev, &phys);

    if (rc != CUDA_SUCCESS)
        return rc;
    if (uuid == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    sim_device_uuid(phys, (unsigned char *)uuid->bytes);
    return CUDA_SUCCESS;
}

/* ---- contexts ---- */

SIM_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    unsigned phys = 0;
    CUresult rc = check_device(dev, &phys);
    struct CUctx_st *c;
    int err = 0;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    c = &g.ctx[phys];
    pthread_mutex_lock(&g.lock);
    if (c->refcount == 0) {
        err = sim_lock(&g.shm);
        if (err == 0) {
            if (g.shm.own_slot < 0)
                err = sim_slot_claim(&g.shm, g.pid, g.cfg.free_lag_ns);
            if (err == 0)
                err = sim_charge(&g.shm, phys, g.cfg.context_bytes);
            if (err == 0)
                g.shm.st->slot[g.shm.own_slot].has_ctx[phys] = 1;
            sim_unlock(&g.shm);
        }
    }
    if (err == 0)
        c->refcount++;
    pthread_mutex_unlock(&g.lock);
    if (err < 0) {
        sim_debug("cuDevicePrimaryCtxRetain(%d): %s", dev, gpucoord_strerror(err));
        return from_gc(err);
    }
    *pctx = c;
    return CUDA_SUCCESS;
}

/* Under g.lock: the context of dev went inactive; free all it held. */
static void context_reset_locked(unsigned dev)
{
    struct sim_alloc_table *t = &g.dmem;

    for (size_t i = t->n; i-- > 0;) {
        if (t->v[i].dev != dev)
            continue;
        if (t->v[i].backing != NULL)
            munmap(t->v[i].backing, t->v[i].bytes);
        sim_alloc_remove(t, &t->v[i]);
    }
    /* Its virtual-memory handles go with it (the slot's bytes below include them). */
    for (size_t i = g.nhandles; i-- > 0;) {
        if (g.handles[i].dev == dev)
            g.handles[i] = g.handles[--g.nhandles];
    }
    if (sim_lock(&g.shm) == 0) {
        struct sim_slot *s = &g.shm.st->slot[g.shm.own_slot];
        sim_uncharge(&g.shm, dev, s->bytes[dev], g.cfg.free_lag_ns);
        s->has_ctx[dev] = 0;
        sim_unlock(&g.shm);
    }
}

SIM_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    unsigned phys = 0;
    CUresult rc = check_device(dev, &phys);
    struct CUctx_st *c;

    if (rc != CUDA_SUCCESS)
        return rc;
    c = &g.ctx[phys];
    pthread_mutex_lock(&g.lock);
    if (c->refcount == 0) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if (--c->refcount == 0)
        context_reset_locked(phys);
    pthread_mutex_unlock(&g.lock);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxSetCurrent(CUcontext ctx)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (ctx != NULL && ((uintptr_t)ctx < (uintptr_t)&g.ctx[0] ||
                        (uintptr_t)ctx >= (uintptr_t)&g.ctx[SIM_DEVICES_MAX] ||
                        ((uintptr_t)ctx - (uintptr_t)&g.ctx[0]) % sizeof(g.ctx[0]) != 0))
        return CUDA_ERROR_INVALID_CONTEXT;
    tls_ctx = ctx;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pctx = tls_ctx;
    return CUDA_SUCCESS;
}

/* ---- device memory ---- */

SIM_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    struct sim_alloc a = {0};
    struct CUctx_st *c;
    CUresult rc = enter_ctx(&c);
    uint64_t span;
    int err;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (dptr == NULL || bytesize == 0 ||
        __builtin_add_overflow((uint64_t)bytesize, 2 * SIM_DPTR_ALIGN - 1, &span) ||
        g.next_dptr + span < g.next_dptr) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    span &= ~(SIM_DPTR_ALIGN - 1); /* rounded up, plus a gap before the next range */
    err = sim_lock(&g.shm);
    if (err == 0) {
        err = sim_charge(&g.shm, c->dev, bytesize);
        sim_unlock(&g.shm);
    }
    if (err < 0) {
        pthread_mutex_unlock(&g.lock);
        return from_gc(err);
    }
    if (g.cfg.backed) {
        a.backing = mmap(NULL, bytesize, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (a.backing == MAP_FAILED) {
            a.backing = NULL;
            err = GC_ENOMEM;
        }
    }
    if (err == 0) {
        a.base = g.next_dptr;
        a.bytes = bytesize;
        a.dev = c->dev;
        err = sim_alloc_insert(&g.dmem, &a);
        if (err < 0 && a.backing != NULL)
            munmap(a.backing, bytesize);
    }
    if (err < 0) {
        /* Out of host memory: the device bytes were never handed out. */
        if (sim_lock(&g.shm) == 0) {
            sim_uncharge(&g.shm, c->dev, bytesize, 0);
            sim_unlock(&g.shm);
        }
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    g.next_dptr += span;
    pthread_mutex_unlock(&g.lock);
    *dptr = a.base;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    struct CUctx_st *c;
    CUresult rc = enter_ctx(&c);
    struct sim_alloc *a, copy;

    if (rc != CUDA_SUCCESS)
        return rc;
    a = sim_alloc_find(&g.dmem, dptr);
    if (a == NULL || a->mapped) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    copy = *a;
    sim_alloc_remove(&g.dmem, a);
    if (sim_lock(&g.shm) == 0) {
        sim_uncharge(&g.shm, copy.dev, copy.bytes, g.cfg.free_lag_ns);
        sim_unlock(&g.shm);
    }
    pthread_mutex_unlock(&g.lock);
    if (copy.backing != NULL)
        munmap(copy.backing, copy.bytes);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes)
{
    struct CUctx_st *c;
    CUresult rc = enter_ctx(&c);

    if (rc != CUDA_SUCCESS)
        return rc;
    if (free_bytes == NULL || total_bytes == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (sim_lock(&g.shm) < 0) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_UNKNOWN;
    }
    *free_bytes = sim_free_bytes(g.shm.st, c->dev);
    *total_bytes = g.shm.st->dev[c->dev].capacity_bytes;
    sim_unlock(&g.shm);
    pthread_mutex_unlock(&g.lock);
    return CUDA_SUCCESS;
}

/* ---- pinned host memory ---- */

SIM_API CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int flags)
{
    struct sim_alloc a = {0};
    struct CUctx_st *c;
    CUresult rc = enter_ctx(&c);
    void *p;

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_unlock(&g.lock);
    if (pp == NULL || bytesize == 0 ||
        (flags & ~(unsigned)(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP |
                             CU_MEMHOSTALLOC_WRITECOMBINED)) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    /* Untouched virtual memory: the pages cost nothing until written. */
    p = mmap(NULL, bytesize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
    if (p == MAP_FAILED)
        return CUDA_ERROR_OUT_OF_MEMORY;
    a.base = (uint64_t)(uintptr_t)p;
    a.bytes = bytesize;
    pthread_mutex_lock(&g.lock);
    if (sim_alloc_insert(&g.hmem, &a) < 0) {
        pthread_mutex_unlock(&g.lock);
        munmap(p, bytesize);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&g.lock);
    *pp = p;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemFreeHost(void *p)
{
    CUresult rc = check_init();
    struct sim_alloc *a;
    uint64_t bytes;

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&g.lock);
    a = sim_alloc_find(&g.hmem, (uint64_t)(uintptr_t)p);
    if (p == NULL || a == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    bytes = a->bytes;
    sim_alloc_remove(&g.hmem, a);
    pthread_mutex_unlock(&g.lock);
    munmap(p, bytes);
    return CUDA_SUCCESS;
}

/* ---- copies ---- */

/* Under g.lock: the stream for handle s, or NULL if it is unknown. */
static struct CUstream_st *stream_find_locked(CUstream s)
{
    if (s == NULL || s == SIM_STREAM_LEGACY || s == SIM_STREAM_PER_THREAD)
        return &g.null_stream;
    for (struct CUstream_st *p = g.streams; p != NULL; p = p->next)
        if (p == s)
            return p;
    return NULL;
}

/*
 * Checks [dptr, dptr + n) against the allocations of the calling thread's
 * context and queues the copy's time on stream (NULL: a synchronous copy,
 * which first waits for the default stream). On success *ret_dev is the host
 * address of the device bytes (NULL unless backed) and *ret_until_ns the time
 * the copy completes.
 */
static CUresult copy_begin(CUdeviceptr dptr, const void *host, size_t n, double gbps,
                           CUstream stream, bool async, void **ret_dev, int64_t *ret_until_ns)
{
    struct CUctx_st *c;
    CUresult rc = enter_ctx(&c);
    struct sim_alloc *a;
    struct CUstream_st *s;
    int64_t start;

    if (rc != CUDA_SUCCESS)
        return rc;
    s = stream_find_locked(async ? stream : NULL);
    if (s == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    a = sim_alloc_find_span(&g.dmem, dptr, n);
    if (host == NULL || a == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    *ret_dev = a->backing != NULL ? (char *)a->backing + (dptr - a->base) : NULL;
    start = sim_now_ns();
    if (s->busy_until_ns > start)
        start = s->busy_until_ns;
    *ret_until_ns = start + copy_ns(n, gbps);
    if (async)
        s->busy_until_ns = *ret_until_ns;
    pthread_mutex_unlock(&g.lock);
    return CUDA_SUCCESS;
}

static CUresult copy_htod(CUdeviceptr dst, const void *src, size_t n, CUstream stream, bool async)
{
    void *dev;
    int64_t until;
    CUresult rc;

    if (n == 0)
        return check_init();
    rc = copy_begin(dst, src, n, g.cfg.h2d_gbps, stream, async, &dev, &until);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (dev != NULL)
        memcpy(dev, src, n);
    if (!async)
        sim_sleep_until_ns(until);
    return CUDA_SUCCESS;
}

static CUresult copy_dtoh(void *dst, CUdeviceptr src, size_t n, CUstream stream, bool async)
{
    void *dev;
    int64_t until;
    CUresult rc;

    if (n == 0)
        return check_init();
    rc = copy_begin(src, dst, n, g.cfg.d2h_gbps, stream, async, &dev, &until);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (dev != NULL)
        memcpy(dst, dev, n);
    if (!async)
        sim_sleep_until_ns(until);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
    return copy_htod(dst, src, n, NULL, false);
}

SIM_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
    return copy_dtoh(dst, src, n, NULL, false);
}

SIM_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream stream)
{
    return copy_htod(dst, src, n, stream, true);
}

SIM_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream stream)
{
    return copy_dtoh(dst, src, n, stream, true);
}

SIM_API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t n)
{
    struct CUctx_st *c;
    CUresult rc;
    struct sim_alloc *a;
    void *dev;

    if (n == 0)
        return check_init();
    rc = enter_ctx(&c);
    if (rc != CUDA_SUCCESS)
        return rc;
    a = sim_alloc_find_span(&g.dmem, dst, n);
    if (a == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    dev = a->backing != NULL ? (char *)a->backing + (dst - a->base) : NULL;
    pthread_mutex_unlock(&g.lock);
    if (dev != NULL)
        memset(dev, value, n);
    return CUDA_SUCCESS;
}

/* ---- streams ---- */

SIM_API CUresult cuStreamCreate(CUstream *pstream, unsigned int flags)
{
    struct CUctx_st *c;
    CUresult rc;
    struct CUstream_st *s;

    if (pstream == NULL || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    rc = enter_ctx(&c);
    if (rc != CUDA_SUCCESS)
        return rc;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    s->next = g.streams;
    g.streams = s;
    pthread_mutex_unlock(&g.lock);
    *pstream = s;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuStreamSynchronize(CUstream stream)
{
    CUresult rc = check_init();
    struct CUstream_st *s;
    int64_t until;

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&g.lock);
    s = stream_find_locked(stream);
    until = s != NULL ? s->busy_until_ns : 0;
    pthread_mutex_unlock(&g.lock);
    if (s == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    sim_sleep_until_ns(until);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxSynchronize(void)
{
    struct CUctx_st *c;
    CUresult rc = enter_ctx(&c);
    int64_t until;

    if (rc != CUDA_SUCCESS)
        return rc;
    until = g.null_stream.busy_until_ns;
    for (struct CUstream_st *s = g.streams; s != NULL; s = s->next)
        if (s->busy_until_ns > until)
            until = s->busy_until_ns;
    pthread_mutex_unlock(&g.lock);
    sim_sleep_until_ns(until);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuStreamDestroy_v2(CUstream stream)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&g.lock);
    for (struct CUstream_st **pp = &g.streams; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == stream) {
            *pp = stream->next;
            pthread_mutex_unlock(&g.lock);
            /* Queued work is simulated time only: nothing to wait for. */
            free(stream);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&g.lock);
    return CUDA_ERROR_INVALID_HANDLE;
}

/* ---- contexts made with cuCtxCreate ---- */

/*
 * gpusim has one context per device: cuCtxCreate retains it (charging the context
 * memory on first use, as the real driver charges a new context) and makes it
 * current; cuCtxDestroy releases it. Enough for programs that create and destroy
 * one context per device, which is what allocating code does.
 */
SIM_API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    CUresult rc;

    if (pctx == NULL || flags > 0x1f)
        return check_init() != CUDA_SUCCESS ? check_init() : CUDA_ERROR_INVALID_VALUE;
    rc = cuDevicePrimaryCtxRetain(pctx, dev);
    if (rc == CUDA_SUCCESS)
        tls_ctx = *pctx;
    return rc;
}

/* Execution affinity and creation parameters are accepted and not applied: gpusim
 * has no SMs to partition. */
SIM_API CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params_array, int num_params,
                                unsigned int flags, CUdevice dev)
{
    if (num_params < 0 || (num_params > 0 && params_array == NULL))
        return check_init() != CUDA_SUCCESS ? check_init() : CUDA_ERROR_INVALID_VALUE;
    return cuCtxCreate_v2(pctx, flags, dev);
}

SIM_API CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags,
                                CUdevice dev)
{
    (void)params;
    return cuCtxCreate_v2(pctx, flags, dev);
}

static bool ctx_valid(CUcontext ctx)
{
    return ctx != NULL && (uintptr_t)ctx >= (uintptr_t)&g.ctx[0] &&
           (uintptr_t)ctx < (uintptr_t)&g.ctx[SIM_DEVICES_MAX] &&
           ((uintptr_t)ctx - (uintptr_t)&g.ctx[0]) % sizeof(g.ctx[0]) == 0;
}

SIM_API CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (!ctx_valid(ctx))
        return CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_lock(&g.lock);
    if (ctx->refcount == 0) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if (--ctx->refcount == 0)
        context_reset_locked(ctx->dev);
    pthread_mutex_unlock(&g.lock);
    if (tls_ctx == ctx)
        tls_ctx = NULL;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuCtxGetDevice(CUdevice *device)
{
    struct CUctx_st *c;
    CUresult rc;

    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    rc = enter_ctx(&c);
    if (rc != CUDA_SUCCESS)
        return rc;
    rc = CUDA_ERROR_INVALID_CONTEXT; /* its device is no longer visible */
    for (unsigned i = 0; i < g.nvisible; i++) {
        if (g.visible[i] == c->dev) {
            *device = (CUdevice)i;
            rc = CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&g.lock);
    return rc;
}

/* ---- more ways to allocate ---- */

/* Pitch alignment the real driver uses for cuMemAllocPitch on current cards. */
#define SIM_PITCH_ALIGN 512ULL

SIM_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width_bytes,
                                    size_t height, unsigned int element_bytes)
{
    uint64_t p, total;
    CUresult rc;

    if (dptr == NULL || pitch == NULL || width_bytes == 0 || height == 0 ||
        (element_bytes != 4 && element_bytes != 8 && element_bytes != 16))
        return check_init() != CUDA_SUCCESS ? check_init() : CUDA_ERROR_INVALID_VALUE;
    if (__builtin_add_overflow((uint64_t)width_bytes, SIM_PITCH_ALIGN - 1, &p))
        return CUDA_ERROR_INVALID_VALUE;
    p &= ~(SIM_PITCH_ALIGN - 1);
    if (__builtin_mul_overflow(p, (uint64_t)height, &total))
        return CUDA_ERROR_INVALID_VALUE;
    rc = cuMemAlloc_v2(dptr, total);
    if (rc == CUDA_SUCCESS)
        *pitch = p;
    return rc;
}

/*
 * Managed memory is charged to the device at allocation, in full: a simplification
 * (the real driver places pages on first touch and may oversubscribe), but the one
 * that matters to a coordinator, which must count what the program may use.
 */
SIM_API CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST)
        return check_init() != CUDA_SUCCESS ? check_init() : CUDA_ERROR_INVALID_VALUE;
    return cuMemAlloc_v2(dptr, bytesize);
}

static CUresult stream_check(CUstream stream)
{
    CUresult rc = check_init();
    bool ok;

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&g.lock);
    ok = stream_find_locked(stream) != NULL;
    pthread_mutex_unlock(&g.lock);
    return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* Stream-ordered allocation: gpusim has no pool that keeps freed memory, so the
 * memory is charged at the call and given back at the free (the real default pool,
 * with a release threshold of 0, gives it back at the next synchronisation). */
SIM_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream stream)
{
    CUresult rc = stream_check(stream);

    return rc != CUDA_SUCCESS ? rc : cuMemAlloc_v2(dptr, bytesize);
}

SIM_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                         CUstream stream)
{
    if (pool == NULL)
        return check_init() != CUDA_SUCCESS ? check_init() : CUDA_ERROR_INVALID_VALUE;
    return cuMemAllocAsync(dptr, bytesize, stream);
}

SIM_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream)
{
    CUresult rc = stream_check(stream);

    return rc != CUDA_SUCCESS ? rc : cuMemFree_v2(dptr);
}

/* ---- the virtual-memory API ---- */

/* Granularity of physical handles and mappings (2 MiB, as on current cards). */
#define SIM_VMM_GRANULARITY (2ULL << 20)

static CUresult prop_check(const CUmemAllocationProp *prop, unsigned *ret_phys)
{
    if (prop == NULL || prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
        prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    return check_device(prop->location.id, ret_phys);
}

SIM_API CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
                                               int option)
{
    unsigned phys;
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    if (granularity == NULL || (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM &&
                                option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
        return CUDA_ERROR_INVALID_VALUE;
    rc = prop_check(prop, &phys);
    if (rc != CUDA_SUCCESS)
        return rc;
    *granularity = SIM_VMM_GRANULARITY;
    return CUDA_SUCCESS;
}

static struct sim_vmm_handle *handle_find_locked(CUmemGenericAllocationHandle id)
{
    for (size_t i = 0; i < g.nhandles; i++) {
        if (g.handles[i].id == id)
            return &g.handles[i];
    }
    return NULL;
}

static void handle_free_locked(struct sim_vmm_handle *h)
{
    if (sim_lock(&g.shm) == 0) {
        sim_uncharge(&g.shm, h->dev, h->bytes, g.cfg.free_lag_ns);
        sim_unlock(&g.shm);
    }
    *h = g.handles[--g.nhandles];
}

SIM_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                             const CUmemAllocationProp *prop, unsigned long long flags)
{
    struct CUctx_st *c;
    unsigned phys = 0;
    CUresult rc = enter_ctx(&c);
    int err;

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_unlock(&g.lock);
    if (handle == NULL || flags != 0 || size == 0 || size % SIM_VMM_GRANULARITY != 0)
        return CUDA_ERROR_INVALID_VALUE;
    rc = prop_check(prop, &phys);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&g.lock);
    if (g.nhandles == g.caphandles) {
        size_t cap = g.caphandles ? 2 * g.caphandles : 64;
        struct sim_vmm_handle *v = realloc(g.handles, cap * sizeof(*v));
        if (v == NULL) {
            pthread_mutex_unlock(&g.lock);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        g.handles = v;
        g.caphandles = cap;
    }
    err = sim_lock(&g.shm);
    if (err == 0) {
        if (!g.shm.st->slot[g.shm.own_slot].has_ctx[phys])
            err = GC_EINVAL; /* no context on that device: nothing to charge it to */
        else
            err = sim_charge(&g.shm, phys, size);
        sim_unlock(&g.shm);
    }
    if (err < 0) {
        pthread_mutex_unlock(&g.lock);
        return err == GC_EINVAL ? CUDA_ERROR_INVALID_DEVICE : from_gc(err);
    }
    g.handles[g.nhandles] =
        (struct sim_vmm_handle){.id = ++g.next_handle, .bytes = size, .dev = phys};
    *handle = g.handles[g.nhandles++].id;
    pthread_mutex_unlock(&g.lock);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    CUresult rc = check_init();
    struct sim_vmm_handle *h;

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&g.lock);
    h = handle_find_locked(handle);
    if (h == NULL || h->released) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    /* As the real driver: mapped memory stays until its last mapping goes. */
    if (h->maps > 0)
        h->released = true;
    else
        handle_free_locked(h);
    pthread_mutex_unlock(&g.lock);
    return CUDA_SUCCESS;
}

/* The reserved range that holds all of [p, p + n), or NULL. */
static struct sim_vmm_range *range_find_locked(uint64_t p, uint64_t n)
{
    for (size_t i = 0; i < g.nranges; i++) {
        struct sim_vmm_range *r = &g.ranges[i];
        if (p >= r->base && n <= r->bytes && p - r->base <= r->bytes - n)
            return r;
    }
    return NULL;
}

SIM_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment,
                                     CUdeviceptr addr, unsigned long long flags)
{
    CUresult rc = check_init();
    uint64_t align = alignment > SIM_VMM_GRANULARITY ? alignment : SIM_VMM_GRANULARITY;
    uint64_t base, end;

    (void)addr; /* a hint: gpusim places ranges itself */
    if (rc != CUDA_SUCCESS)
        return rc;
    if (ptr == NULL || flags != 0 || size == 0 || size % SIM_VMM_GRANULARITY != 0 ||
        (alignment & (alignment - 1)) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g.lock);
    base = (g.next_dptr + align - 1) & ~(align - 1);
    if (base < g.next_dptr || __builtin_add_overflow(base, (uint64_t)size, &end)) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (g.nranges == g.capranges) {
        size_t cap = g.capranges ? 2 * g.capranges : 16;
        struct sim_vmm_range *v = realloc(g.ranges, cap * sizeof(*v));
        if (v == NULL) {
            pthread_mutex_unlock(&g.lock);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        g.ranges = v;
        g.capranges = cap;
    }
    g.ranges[g.nranges++] = (struct sim_vmm_range){.base = base, .bytes = size};
    g.next_dptr = end + SIM_VMM_GRANULARITY; /* a gap before the next range */
    pthread_mutex_unlock(&g.lock);
    *ptr = base;
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    CUresult rc = check_init();

    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&g.lock);
    for (size_t i = 0; i < g.nranges; i++) {
        if (g.ranges[i].base != ptr || g.ranges[i].bytes != size)
            continue;
        /* Still mapped: unmap first. */
        for (size_t k = 0; k < g.dmem.n; k++) {
            if (g.dmem.v[k].mapped && g.dmem.v[k].base >= ptr && g.dmem.v[k].base < ptr + size) {
                pthread_mutex_unlock(&g.lock);
                return CUDA_ERROR_INVALID_VALUE;
            }
        }
        g.ranges[i] = g.ranges[--g.nranges];
        pthread_mutex_unlock(&g.lock);
        return CUDA_SUCCESS;
    }
    pthread_mutex_unlock(&g.lock);
    return CUDA_ERROR_INVALID_VALUE;
}

SIM_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                          CUmemGenericAllocationHandle handle, unsigned long long flags)
{
    CUresult rc = check_init();
    struct sim_vmm_handle *h;
    struct sim_alloc a = {0};

    if (rc != CUDA_SUCCESS)
        return rc;
    if (flags != 0 || offset != 0 || size == 0 || size % SIM_VMM_GRANULARITY != 0 ||
        ptr % SIM_VMM_GRANULARITY != 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g.lock);
    h = handle_find_locked(handle);
    if (h == NULL || h->released) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (size > h->bytes || range_find_locked(ptr, size) == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    for (size_t k = 0; k < g.dmem.n; k++) {
        const struct sim_alloc *m = &g.dmem.v[k];
        if (m->base < ptr + size && ptr < m->base + m->bytes) {
            pthread_mutex_unlock(&g.lock);
            return CUDA_ERROR_INVALID_VALUE; /* already mapped */
        }
    }
    a.base = ptr;
    a.bytes = size;
    a.dev = h->dev;
    a.mapped = true;
    a.handle = h->id;
    if (sim_alloc_insert(&g.dmem, &a) < 0) {
        pthread_mutex_unlock(&g.lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    h->maps++;
    pthread_mutex_unlock(&g.lock);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    CUresult rc = check_init();
    uint64_t p = ptr;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g.lock);
    /* The range must be whole mappings, end to end: check all before changing any. */
    while (p < ptr + size) {
        struct sim_alloc *m = sim_alloc_find(&g.dmem, p);
        if (m == NULL || !m->mapped || m->bytes > ptr + size - p) {
            pthread_mutex_unlock(&g.lock);
            return CUDA_ERROR_INVALID_VALUE;
        }
        p += m->bytes;
    }
    for (p = ptr; p < ptr + size;) {
        struct sim_alloc *m = sim_alloc_find(&g.dmem, p);
        struct sim_vmm_handle *h = handle_find_locked(m->handle);
        p += m->bytes;
        sim_alloc_remove(&g.dmem, m);
        if (h != NULL && --h->maps == 0 && h->released)
            handle_free_locked(h);
    }
    pthread_mutex_unlock(&g.lock);
    return CUDA_SUCCESS;
}

SIM_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,
                                size_t count)
{
    CUresult rc = check_init();
    bool known;

    if (rc != CUDA_SUCCESS)
        return rc;
    if (desc == NULL || count == 0 || size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < count; i++) {
        unsigned phys;
        if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || desc[i].flags < 0 ||
            desc[i].flags > CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
            return CUDA_ERROR_INVALID_VALUE;
        rc = check_device(desc[i].location.id, &phys);
        if (rc != CUDA_SUCCESS)
            return rc;
    }
    pthread_mutex_lock(&g.lock);
    known = range_find_locked(ptr, size) != NULL && sim_alloc_find_span(&g.dmem, ptr, 1) != NULL;
    pthread_mutex_unlock(&g.lock);
    return known ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- plain names: aliases of the versioned implementations ---- */

SIM_ALIAS(cuDeviceTotalMem, cuDeviceTotalMem_v2);
SIM_ALIAS(cuDeviceGetUuid, cuDeviceGetUuid_v2);
SIM_ALIAS(cuDevicePrimaryCtxRelease, cuDevicePrimaryCtxRelease_v2);
SIM_ALIAS(cuMemAlloc, cuMemAlloc_v2);
SIM_ALIAS(cuMemFree, cuMemFree_v2);
SIM_ALIAS(cuMemGetInfo, cuMemGetInfo_v2);
SIM_ALIAS(cuMemcpyHtoD, cuMemcpyHtoD_v2);
SIM_ALIAS(cuMemcpyDtoH, cuMemcpyDtoH_v2);
SIM_ALIAS(cuMemcpyHtoDAsync, cuMemcpyHtoDAsync_v2);
SIM_ALIAS(cuMemcpyDtoHAsync, cuMemcpyDtoHAsync_v2);
SIM_ALIAS(cuMemsetD8, cuMemsetD8_v2);
SIM_ALIAS(cuStreamDestroy, cuStreamDestroy_v2);
SIM_ALIAS(cuCtxCreate, cuCtxCreate_v2);
SIM_ALIAS(cuCtxDestroy, cuCtxDestroy_v2);
SIM_ALIAS(cuMemAllocPitch, cuMemAllocPitch_v2);

/* ---- cuGetProcAddress ---- */

/*
 * The names a runtime asks for are the plain ones ("cuMemAlloc"); the driver answers
 * with the version the caller was built for: the versioned symbol when cudaVersion
 * is at least the version that introduced it, the plain one before.
 */
struct sim_proc {
    const char *name;
    void *plain;
    int versioned_since; /* 0: no versioned symbol */
    void *versioned;
};

#define SIM_PROC(name)                                                                             \
    {                                                                                              \
#name, (void *)name, 0, NULL                                                               \
    }
#define SIM_PROC_V(name, since, vname)                                                             \
    {                                                                                              \
#name, (void *)name, since, (void *)vname                                                  \
    }

static CUresult get_proc_address_impl(const char *symbol, void **pfn, int cuda_version,
                                      cuuint64_t flags, CUdriverProcAddressQueryResult *status);

SIM_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    return get_proc_address_impl(symbol, pfn, cudaVersion, flags, NULL);
}

SIM_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                     cuuint64_t flags, CUdriverProcAddressQueryResult *symbolStatus)
{
    return get_proc_address_impl(symbol, pfn, cudaVersion, flags, symbolStatus);
}

static const struct sim_proc sim_procs[] = {
    SIM_PROC(cuInit),
    SIM_PROC(cuDriverGetVersion),
    SIM_PROC(cuDeviceGetCount),
    SIM_PROC(cuDeviceGet),
    SIM_PROC(cuDeviceGetName),
    SIM_PROC_V(cuDeviceTotalMem, 3020, cuDeviceTotalMem_v2),
    SIM_PROC_V(cuDeviceGetUuid, 11040, cuDeviceGetUuid_v2),
    SIM_PROC(cuDevicePrimaryCtxRetain),
    SIM_PROC_V(cuDevicePrimaryCtxRelease, 11000, cuDevicePrimaryCtxRelease_v2),
    SIM_PROC_V(cuCtxCreate, 3020, cuCtxCreate_v2),
    SIM_PROC_V(cuCtxCreate, 13000, cuCtxCreate_v4), /* what cuCtxCreate means from CUDA 13 */
    SIM_PROC_V(cuCtxDestroy, 4000, cuCtxDestroy_v2),
    SIM_PROC(cuCtxSetCurrent),
    SIM_PROC(cuCtxGetCurrent),
    SIM_PROC(cuCtxGetDevice),
    SIM_PROC(cuCtxSynchronize),
    SIM_PROC_V(cuMemAlloc, 3020, cuMemAlloc_v2),
    SIM_PROC_V(cuMemAllocPitch, 3020, cuMemAllocPitch_v2),
    SIM_PROC(cuMemAllocManaged),
    SIM_PROC(cuMemAllocAsync),
    SIM_PROC(cuMemAllocFromPoolAsync),
    SIM_PROC_V(cuMemFree, 3020, cuMemFree_v2),
    SIM_PROC(cuMemFreeAsync),
    SIM_PROC_V(cuMemGetInfo, 3020, cuMemGetInfo_v2),
    SIM_PROC(cuMemHostAlloc),
    SIM_PROC(cuMemFreeHost),
    SIM_PROC(cuMemCreate),
    SIM_PROC(cuMemRelease),
    SIM_PROC(cuMemAddressReserve),
    SIM_PROC(cuMemAddressFree),
    SIM_PROC(cuMemMap),
    SIM_PROC(cuMemUnmap),
    SIM_PROC(cuMemSetAccess),
    SIM_PROC(cuMemGetAllocationGranularity),
    SIM_PROC_V(cuMemcpyHtoD, 3020, cuMemcpyHtoD_v2),
    SIM_PROC_V(cuMemcpyDtoH, 3020, cuMemcpyDtoH_v2),
    SIM_PROC_V(cuMemcpyHtoDAsync, 3020, cuMemcpyHtoDAsync_v2),
    SIM_PROC_V(cuMemcpyDtoHAsync, 3020, cuMemcpyDtoHAsync_v2),
    SIM_PROC_V(cuMemsetD8, 3020, cuMemsetD8_v2),
    SIM_PROC(cuStreamCreate),
    SIM_PROC(cuStreamSynchronize),
    SIM_PROC_V(cuStreamDestroy, 4000, cuStreamDestroy_v2),
    SIM_PROC(cuGetErrorString),
    SIM_PROC(cuGetErrorName),
    SIM_PROC_V(cuGetProcAddress, 12000, cuGetProcAddress_v2),
};

static CUresult get_proc_address_impl(const char *symbol, void **pfn, int cuda_version,
                                      cuuint64_t flags, CUdriverProcAddressQueryResult *status)
{
    /* Like the real driver this works before cuInit: runtimes look cuInit up with it. */
    if (symbol == NULL || pfn == NULL || flags > CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)
        return CUDA_ERROR_INVALID_VALUE;
    /* A name may have several versioned answers: the newest the caller was built for. */
    const struct sim_proc *found = NULL;
    void *fn = NULL;
    for (size_t i = 0; i < sizeof(sim_procs) / sizeof(sim_procs[0]); i++) {
        const struct sim_proc *p = &sim_procs[i];
        if (strcmp(p->name, symbol) != 0)
            continue;
        if (found == NULL)
            fn = p->plain;
        if (p->versioned != NULL && cuda_version >= p->versioned_since &&
            (found == NULL || p->versioned_since >= found->versioned_since))
            fn = p->versioned;
        found = p;
    }
    if (found != NULL) {
        *pfn = fn;
        if (status != NULL)
            *status = CU_GET_PROC_ADDRESS_SUCCESS;
        return CUDA_SUCCESS;
    }
    *pfn = NULL;
    if (status != NULL)
        *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
}
