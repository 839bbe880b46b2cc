/*
 * lease.c - the interposer's leases: one per device the process makes a context
 * on, taken with the process's pid (so that its exit, however it happens, ends
 * the lease), grown before allocations that do not fit, shrunk lazily.
 *
 * Locks: an allocation within the lease and every free take none: the count
 * is atomic (gci_book_try_count) and the table of live allocations lock-free
 * (ptrtab.h). st.mu guards the rest of the books (lease ids, growth, the shrink
 * window) and is held only briefly, never across a call to the coordinator or
 * the driver; st.coord_mu serialises calls to the coordinator (one libgpucoord
 * client, used by one thread at a time) and is held across them, so that threads
 * growing at once ask once.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpu/gpu.h"
#include "gpucoord.h"
#include "intercept/intercept.h"

/* What a context costs before it is measured: GPU-FACTS says 100-550 MiB. */
#define GCI_CONTEXT_BYTES_DEFAULT (512ULL << 20)
/* A measured context larger than this is not believed (the estimate stays). */
#define GCI_CONTEXT_MEASURED_MAX (8ULL << 30)
#define GCI_WAIT_S_DEFAULT       60.0
#define GCI_WAIT_S_MAX           3600.0
#define GCI_SHRINK_WINDOW_S      2.0
/* Time for one exchange on top of the wait it asks the coordinator for. */
#define GCI_HTTP_SLACK_MS 10000
/* Slots in each table of live allocations (16 bytes each, mapped: pages cost
 * memory once used); more live allocations than fit go to a locked overflow. */
#define GCI_PTRTAB_LOG2 12

struct gci_dev {
    char lease_id[64];       /* "" : none */
    int gpu_index;           /* the coordinator's GPU index, -1 for "any" */
    bool context_counted;    /* the context is in the book (once per device) */
    bool context_to_measure; /* counted at the estimate; measured once it is made */
};

/* Its books are gci_hot.book[dev]. */
struct gci_hot gci_hot = {
    .only_dev = -1,
    .tables = {{.mu = PTHREAD_MUTEX_INITIALIZER}, {.mu = PTHREAD_MUTEX_INITIALIZER}}};

static struct {
    pthread_mutex_t mu;
    pthread_mutex_t coord_mu;
    bool fail_closed;
    struct gci_dev dev[GCI_DEVICES_MAX];
    bool tables_ready;       /* gci_hot.tables, set up once, under mu, before the first lease */
    gpucoord_client *client; /* under coord_mu */
    bool shrinker_started;
    /* Settings, read once. */
    bool configured;
    uint64_t context_bytes, need_bytes;
    bool context_bytes_given; /* GPUCOORD_CONTEXT_BYTES set: no measuring */
    double wait_s, shrink_window_s;
    int priority;
    char holder[65];
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .coord_mu = PTHREAD_MUTEX_INITIALIZER};

/* Under st.mu: only_dev after a lease was taken or dropped. */
static void only_dev_update(void)
{
    int only = -1, n = 0;

    for (int i = 0; i < GCI_DEVICES_MAX; i++) {
        if (st.dev[i].lease_id[0] != '\0') {
            only = i;
            n++;
        }
    }
    __atomic_store_n(&gci_hot.only_dev, n == 1 ? only : -1, __ATOMIC_RELEASE);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The one warning the library prints: the program runs uncoordinated. */
static void warn_once(const char *fmt, const char *detail)
{
    static bool warned;

    if (warned)
        return;
    warned = true;
    fprintf(stderr, "gpucoord-intercept: ");
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
}

/* Under coord_mu: why the coordinator could not be reached, as the client says it. */
static const char *unreachable_message(void)
{
    const char *m = st.client != NULL ? gpucoord_client_message(st.client) : "";

    return m[0] != '\0' ? m : "cannot reach the coordinator";
}

static double env_seconds(const char *name, double def)
{
    const char *v = getenv(name);
    char *end;
    double d;

    if (v == NULL || v[0] == '\0')
        return def;
    errno = 0;
    d = strtod(v, &end);
    return errno == 0 && *end == '\0' && d >= 0 && d <= GCI_WAIT_S_MAX ? d : def;
}

static uint64_t env_size(const char *name, uint64_t def)
{
    const char *v = getenv(name);
    uint64_t n;

    return v != NULL && v[0] != '\0' && gpucoord_size_parse(v, &n) == 0 ? n : def;
}

/* Under coord_mu, once: settings from the environment. */
static void configure(void)
{
    const char *v;
    char comm[32] = "";
    FILE *f;
    size_t o = 0;

    if (st.configured)
        return;
    st.configured = true;
    st.context_bytes = env_size("GPUCOORD_CONTEXT_BYTES", 0);
    st.context_bytes_given = st.context_bytes != 0;
    if (!st.context_bytes_given)
        st.context_bytes = GCI_CONTEXT_BYTES_DEFAULT;
    st.need_bytes = env_size("GPUCOORD_NEED", 0);
    st.wait_s = env_seconds("GPUCOORD_WAIT_S", GCI_WAIT_S_DEFAULT);
    st.shrink_window_s = env_seconds("GPUCOORD_SHRINK_WINDOW_S", GCI_SHRINK_WINDOW_S);
    v = getenv("GPUCOORD_PRIORITY");
    st.priority = v != NULL ? atoi(v) : 0;
    v = getenv("GPUCOORD_INTERCEPT_FAIL_CLOSED");
    st.fail_closed = v != NULL && strcmp(v, "1") == 0;
    /* Holder: GPUCOORD_HOLDER, else the program's name, kept to the allowed characters. */
    v = getenv("GPUCOORD_HOLDER");
    if (v == NULL || v[0] == '\0') {
        f = fopen("/proc/self/comm", "re");
        if (f != NULL) {
            if (fgets(comm, sizeof(comm), f) == NULL)
                comm[0] = '\0';
            fclose(f);
        }
        v = comm;
    }
    for (const char *p = v; *p != '\0' && o < 64; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-')
            st.holder[o++] = c;
    }
    st.holder[o] = '\0';
    if (o == 0)
        snprintf(st.holder, sizeof(st.holder), "intercept");
}

/* Under coord_mu: one call; *ret_json the parsed answer (caller frees). Returns the
 * HTTP status, or a negative GPUCOORD_E* when no answer came. */
static long coord_call(const char *method, const char *path, json_t *body, double wait_s,
                       json_t **ret_json)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    char *answer = NULL;
    long status = 0;
    int rc;

    *ret_json = NULL;
    if (st.client == NULL && gpucoord_client_new(NULL, &st.client) < 0) {
        free(text);
        return GPUCOORD_ECONNECT;
    }
    rc = gpucoord_request(st.client, method, path, text,
                          GCI_HTTP_SLACK_MS + (long)(wait_s * 1000.0), &status, &answer);
    free(text);
    if (rc < 0)
        return rc;
    *ret_json = answer != NULL ? json_loads(answer, 0, NULL) : NULL;
    free(answer);
    return status;
}

/* Under coord_mu: the coordinator's index of device dev ("GPU-..." UUID match), or -1
 * (any) when it cannot tell. Without CUDA_VISIBLE_DEVICES ordinals are indices. */
static int gpu_index_of(int dev)
{
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    const struct gci_real *r = gci_real();
    unsigned char u[16];
    char uuid[48];
    json_t *j = NULL, *g;
    size_t i;
    int index = -1;

    if (cvd == NULL)
        return dev;
    if (r->cuDeviceGetUuid_v2 == NULL || r->cuDeviceGetUuid_v2((CUuuid *)u, dev) != CUDA_SUCCESS)
        return -1;
    snprintf(uuid, sizeof(uuid),
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    if (coord_call("GET", "/v1/gpus", NULL, 0, &j) == 200) {
        json_array_foreach(json_object_get(j, "gpus"), i, g)
        {
            const char *id = json_string_value(json_object_get(g, "uuid"));
            if (id != NULL && strcasecmp(id, uuid) == 0)
                index = (int)json_integer_value(json_object_get(g, "index"));
        }
    }
    json_decref(j);
    return index;
}

static void *shrinker_main(void *arg);

/* Under coord_mu: asks for a lease of bytes on dev. CUDA_SUCCESS (leased, or passing
 * through) or CUDA_ERROR_OUT_OF_MEMORY. */
static CUresult lease_take(int dev, uint64_t bytes)
{
    struct gci_dev *d = &st.dev[dev];
    json_t *body, *j = NULL;
    const char *id;
    long status;
    char path[128];

    d->gpu_index = gpu_index_of(dev);
    body = json_pack("{s:s, s:I, s:i, s:f, s:f}", "holder", st.holder, "bytes", (json_int_t)bytes,
                     "pid", (int)getpid(), "ttl_s", 0.0, "wait_s", st.wait_s);
    if (body == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    json_object_set_new(body, "gpu",
                        d->gpu_index >= 0 ? json_integer(d->gpu_index) : json_string("any"));
    if (st.priority != 0)
        json_object_set_new(body, "priority", json_integer(st.priority));
    status = coord_call("POST", "/v1/leases", body, st.wait_s, &j);
    json_decref(body);
    if (status < 0) {
        json_decref(j);
        if (st.fail_closed) {
            warn_once("%s: allocations fail (GPUCOORD_INTERCEPT_FAIL_CLOSED=1)",
                      unreachable_message());
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        warn_once("%s: running uncoordinated", unreachable_message());
        pthread_mutex_lock(&st.mu);
        __atomic_store_n(&gci_hot.mode, GCI_PASSTHROUGH, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&st.mu);
        return CUDA_SUCCESS;
    }
    id = json_string_value(json_object_get(j, "id"));
    if (status == 202 && id != NULL) {
        /* Still queued when the wait ran out: withdraw it, the context cannot wait more. */
        json_t *ignored = NULL;
        snprintf(path, sizeof(path), "/v1/leases/%s", id);
        coord_call("DELETE", path, NULL, 0, &ignored);
        json_decref(ignored);
    }
    if (status != 201 || id == NULL) {
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (status >= 400 && status < 500 && status != 409) {
            /* The coordinator refused the request itself: a configuration problem. */
            warn_once("the coordinator refused the lease (%s): running uncoordinated",
                      msg ? msg : "no reason given");
            pthread_mutex_lock(&st.mu);
            __atomic_store_n(&gci_hot.mode, GCI_PASSTHROUGH, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&st.mu);
            json_decref(j);
            return CUDA_SUCCESS;
        }
        json_decref(j);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_lock(&st.mu);
    if (!st.tables_ready) {
        /* Under mu, so that a fork (which takes mu first) never sees them half made.
         * A table whose slots cannot be mapped works in its overflow, locked. */
        (void)gci_ptrtab_init(&gci_hot.tables[GCI_PTR], GCI_PTRTAB_LOG2);
        (void)gci_ptrtab_init(&gci_hot.tables[GCI_HANDLE], GCI_PTRTAB_LOG2);
        st.tables_ready = true;
    }
    snprintf(d->lease_id, sizeof(d->lease_id), "%s", id);
    __atomic_store_n(&gci_hot.book[dev].lease_bytes,
                     (uint64_t)json_integer_value(json_object_get(j, "bytes")), __ATOMIC_SEQ_CST);
    gci_hot.book[dev].window_start_ms = now_ms();
    __atomic_store_n(&gci_hot.mode, GCI_ACTIVE, __ATOMIC_RELEASE);
    only_dev_update();
    pthread_mutex_unlock(&st.mu);
    json_decref(j);
    if (!st.shrinker_started && st.shrink_window_s > 0) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, shrinker_main, NULL) == 0)
            st.shrinker_started = true;
        pthread_attr_destroy(&a);
    }
    return CUDA_SUCCESS;
}

/* Under coord_mu: resizes dev's lease to bytes, waiting up to wait_s. true when the
 * lease holds bytes now. A lease that ended is taken again. */
static bool lease_resize(int dev, uint64_t bytes, double wait_s)
{
    struct gci_dev *d = &st.dev[dev];
    json_t *body, *j = NULL;
    char path[128];
    long status;
    bool ok;

    if (d->lease_id[0] == '\0')
        return lease_take(dev, bytes) == CUDA_SUCCESS && d->lease_id[0] != '\0';
    snprintf(path, sizeof(path), "/v1/leases/%s/resize", d->lease_id);
    body = json_pack("{s:I, s:f}", "bytes", (json_int_t)bytes, "wait_s", wait_s);
    if (body == NULL)
        return false;
    status = coord_call("POST", path, body, wait_s, &j);
    json_decref(body);
    if (status == 404) {
        /* The lease ended under us (ended by hand, or the coordinator lost it). */
        json_decref(j);
        pthread_mutex_lock(&st.mu);
        d->lease_id[0] = '\0';
        __atomic_store_n(&gci_hot.book[dev].lease_bytes, 0, __ATOMIC_SEQ_CST);
        only_dev_update();
        pthread_mutex_unlock(&st.mu);
        return lease_take(dev, bytes) == CUDA_SUCCESS && d->lease_id[0] != '\0';
    }
    if (status < 0) {
        json_decref(j);
        if (st.fail_closed) {
            warn_once("%s: allocations beyond the lease fail (GPUCOORD_INTERCEPT_FAIL_CLOSED=1)",
                      unreachable_message());
            return false;
        }
        warn_once("%s: running uncoordinated", unreachable_message());
        pthread_mutex_lock(&st.mu);
        __atomic_store_n(&gci_hot.mode, GCI_PASSTHROUGH, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&st.mu);
        return false;
    }
    ok = status == 200;
    if (status == 200 || status == 202) {
        pthread_mutex_lock(&st.mu);
        __atomic_store_n(&gci_hot.book[dev].lease_bytes,
                         (uint64_t)json_integer_value(json_object_get(j, "bytes")),
                         __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&st.mu);
    }
    json_decref(j);
    return ok;
}

CUresult gci_context_begin(int dev)
{
    CUresult rc = CUDA_SUCCESS;

    if (dev < 0 || dev >= GCI_DEVICES_MAX)
        return CUDA_SUCCESS;
    pthread_mutex_lock(&st.coord_mu);
    configure();
    if (gci_hot.mode != GCI_PASSTHROUGH && st.dev[dev].lease_id[0] == '\0') {
        rc = lease_take(dev, st.context_bytes + st.need_bytes);
        if (rc == CUDA_SUCCESS && st.dev[dev].lease_id[0] != '\0' && !st.dev[dev].context_counted) {
            pthread_mutex_lock(&st.mu);
            /* The context counts from now on; GPUCOORD_NEED is room kept, not use. */
            gci_book_add(&gci_hot.book[dev], st.context_bytes);
            gci_hot.book[dev].floor_bytes = st.context_bytes + st.need_bytes;
            st.dev[dev].context_counted = true;
            __atomic_store_n(&st.dev[dev].context_to_measure, !st.context_bytes_given,
                             __ATOMIC_RELEASE);
            pthread_mutex_unlock(&st.mu);
        }
    }
    pthread_mutex_unlock(&st.coord_mu);
    return rc;
}

/* Under coord_mu: what this process holds on NVML GPU index gpu_index, as NVML
 * reports it per process; right after the process's first context there, before
 * any allocation, that is what the context costs. 0 when NVML cannot tell (no
 * NVML, an unknown GPU, a pid namespace NVML does not see into). */
static uint64_t context_measure(int gpu_index)
{
    struct gc_gpu_proc procs[GC_GPU_PROCS_MAX];
    struct gc_nvml *nvml;
    uint64_t bytes = 0;
    unsigned n = 0;
    char err[160];

    if (gpu_index < 0 || gc_nvml_open(&nvml, err, sizeof(err)) < 0)
        return 0;
    if (gc_nvml_processes(nvml, (unsigned)gpu_index, procs, GC_GPU_PROCS_MAX, &n) == 0) {
        for (unsigned i = 0; i < n; i++)
            if (procs[i].pid == (uint32_t)getpid() && procs[i].used_bytes != GC_GPU_BYTES_UNKNOWN)
                bytes = procs[i].used_bytes;
    }
    gc_nvml_close(nvml);
    return bytes <= GCI_CONTEXT_MEASURED_MAX ? bytes : 0;
}

void gci_context_made(int dev)
{
    struct gci_book *b;
    uint64_t measured;

    if (dev < 0 || dev >= GCI_DEVICES_MAX ||
        !__atomic_load_n(&st.dev[dev].context_to_measure, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&st.coord_mu);
    if (st.dev[dev].context_to_measure) {
        __atomic_store_n(&st.dev[dev].context_to_measure, false, __ATOMIC_RELEASE);
        measured = context_measure(st.dev[dev].gpu_index);
        if (measured != 0) {
            b = &gci_hot.book[dev];
            pthread_mutex_lock(&st.mu);
            /* The estimate counted at the lease gives way to what the context took. */
            if (measured > st.context_bytes)
                gci_book_add(b, measured - st.context_bytes);
            else
                gci_book_release(b, st.context_bytes - measured);
            b->floor_bytes = measured + st.need_bytes;
            pthread_mutex_unlock(&st.mu);
        }
    }
    pthread_mutex_unlock(&st.coord_mu);
}

CUresult gci_alloc_begin(int dev, uint64_t bytes)
{
    struct gci_dev *d;
    uint64_t target = 0, exact = 0;
    bool ok, leased;

    if (dev < 0 || dev >= GCI_DEVICES_MAX ||
        __atomic_load_n(&gci_hot.mode, __ATOMIC_ACQUIRE) == GCI_PASSTHROUGH)
        return CUDA_SUCCESS;
    d = &st.dev[dev];
    pthread_mutex_lock(&st.mu);
    leased = d->lease_id[0] != '\0';
    if (leased && gci_hot.mode == GCI_ACTIVE)
        target = gci_book_reserve(&gci_hot.book[dev], bytes, &exact);
    pthread_mutex_unlock(&st.mu);
    if (!leased) {
        /* A context not made through a hook (cuCtxCreate_v3/_v4, a context made
         * before the library was loaded): its first allocation takes the lease. */
        if (gci_context_begin(dev) != CUDA_SUCCESS)
            return CUDA_ERROR_OUT_OF_MEMORY;
        gci_context_made(dev); /* the context is there already */
        pthread_mutex_lock(&st.mu);
        if (gci_hot.mode == GCI_ACTIVE && d->lease_id[0] != '\0')
            target = gci_book_reserve(&gci_hot.book[dev], bytes, &exact);
        pthread_mutex_unlock(&st.mu);
    }
    if (!gci_coordinated())
        return CUDA_SUCCESS;
    if (target == 0)
        return CUDA_SUCCESS; /* within the lease: no round trip */
    if (target == UINT64_MAX)
        return CUDA_ERROR_OUT_OF_MEMORY;

    pthread_mutex_lock(&st.coord_mu);
    /* Another thread may have grown the lease meanwhile: ask for what is missing now. */
    pthread_mutex_lock(&st.mu);
    exact = __atomic_load_n(&gci_hot.book[dev].used_bytes, __ATOMIC_SEQ_CST);
    ok = exact <= __atomic_load_n(&gci_hot.book[dev].lease_bytes, __ATOMIC_SEQ_CST);
    target = exact + gci_book_slack(exact);
    pthread_mutex_unlock(&st.mu);
    if (!ok) {
        ok = lease_resize(dev, target, st.wait_s);
        /* The slack is a convenience: settle for exactly what is needed. */
        if (!ok && gci_coordinated())
            ok = lease_resize(dev, exact, st.wait_s);
    }
    pthread_mutex_unlock(&st.coord_mu);
    if (ok || !gci_coordinated())
        return CUDA_SUCCESS; /* grown, or the coordinator is gone: passing through */
    pthread_mutex_lock(&st.mu);
    gci_book_release(&gci_hot.book[dev], bytes);
    pthread_mutex_unlock(&st.mu);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

bool gci_alloc_oom_grow(int dev, uint64_t bytes)
{
    uint64_t target;
    bool ok;

    if (!gci_coordinated() || dev < 0 || dev >= GCI_DEVICES_MAX)
        return false;
    pthread_mutex_lock(&st.coord_mu);
    pthread_mutex_lock(&st.mu);
    /* The driver knows better than the book (a context larger than estimated, memory
     * the program took another way): the lease grows by what was asked. */
    target = __atomic_load_n(&gci_hot.book[dev].lease_bytes, __ATOMIC_SEQ_CST) + bytes;
    pthread_mutex_unlock(&st.mu);
    ok = lease_resize(dev, target, st.wait_s);
    pthread_mutex_unlock(&st.coord_mu);
    return ok && gci_coordinated();
}

void gci_alloc_end(int dev, uint64_t bytes, uint64_t actual, bool ok, enum gci_kind kind,
                   uint64_t key)
{
    struct gci_book *b;

    if (dev < 0 || dev >= GCI_DEVICES_MAX || !gci_coordinated())
        return;
    b = &gci_hot.book[dev];
    if (!ok) {
        gci_book_release(b, bytes);
        return;
    }
    if (actual > bytes)
        gci_book_add(b, actual - bytes);
    else
        gci_book_release(b, bytes - actual);
    /* Out of host memory for the table: the bytes stay counted (safe side). */
    (void)gci_ptrtab_put(&gci_hot.tables[kind], key, actual, dev);
}

/* Gives back what the process has not needed for a whole window. A thread, so that
 * a program that freed its memory and went idle still lets residents come back. */
static void *shrinker_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {
            (time_t)st.shrink_window_s,
            (long)((st.shrink_window_s - (double)(time_t)st.shrink_window_s) * 1e9)};
        nanosleep(&ts, NULL);
        if (!gci_coordinated())
            continue;
        for (int dev = 0; dev < GCI_DEVICES_MAX; dev++) {
            uint64_t target = 0, lease, used;
            pthread_mutex_lock(&st.mu);
            if (st.dev[dev].lease_id[0] != '\0')
                target = gci_book_shrink_target(&gci_hot.book[dev], now_ms(),
                                                (int64_t)(st.shrink_window_s * 1000.0));
            pthread_mutex_unlock(&st.mu);
            if (target == 0)
                continue;
            pthread_mutex_lock(&st.coord_mu);
            pthread_mutex_lock(&st.mu);
            lease = __atomic_load_n(&gci_hot.book[dev].lease_bytes, __ATOMIC_SEQ_CST);
            /* Used more since: never below what is in use now. Then no allocation
             * within the lease may count beyond the target while the coordinator is
             * asked (they go the slow way, and wait for coord_mu). */
            used = __atomic_load_n(&gci_hot.book[dev].used_bytes, __ATOMIC_SEQ_CST);
            if (target < used)
                target = used;
            if (target >= lease || !gci_book_lower(&gci_hot.book[dev], target))
                target = 0;
            pthread_mutex_unlock(&st.mu);
            if (target != 0 && !lease_resize(dev, target, 0)) {
                /* Not shrunk (and not ended: that took a new lease): the old limit. */
                pthread_mutex_lock(&st.mu);
                __atomic_compare_exchange_n(&gci_hot.book[dev].lease_bytes, &target, lease, false,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
                pthread_mutex_unlock(&st.mu);
            }
            pthread_mutex_unlock(&st.coord_mu);
        }
    }
    return NULL;
}

/* ---- fork ---- */

static void atfork_prepare(void)
{
    pthread_mutex_lock(&st.mu);
    if (st.tables_ready) {
        pthread_mutex_lock(&gci_hot.tables[GCI_PTR].mu);
        pthread_mutex_lock(&gci_hot.tables[GCI_HANDLE].mu);
    }
}

static void atfork_parent(void)
{
    if (st.tables_ready) {
        pthread_mutex_unlock(&gci_hot.tables[GCI_HANDLE].mu);
        pthread_mutex_unlock(&gci_hot.tables[GCI_PTR].mu);
    }
    pthread_mutex_unlock(&st.mu);
}

/* The child holds no context (the driver cannot be used across fork) and none of
 * the parent's leases: it starts untouched, and leases for itself if it makes a
 * context. The parent's client is its copy: forgotten, not freed (its connections
 * belong to the parent); the tables (consistent: their locks were held) are freed. */
static void atfork_child(void)
{
    pthread_mutex_init(&st.mu, NULL);
    pthread_mutex_init(&st.coord_mu, NULL);
    if (gci_hot.mode == GCI_ACTIVE)
        gci_hot.mode = GCI_UNTOUCHED;
    memset(st.dev, 0, sizeof(st.dev));
    memset(gci_hot.book, 0, sizeof(gci_hot.book));
    gci_hot.only_dev = -1;
    if (st.tables_ready) {
        for (int k = GCI_PTR; k <= GCI_HANDLE; k++) {
            pthread_mutex_init(&gci_hot.tables[k].mu, NULL);
            gci_ptrtab_free(&gci_hot.tables[k]);
            pthread_mutex_init(&gci_hot.tables[k].mu, NULL);
        }
        st.tables_ready = false;
    }
    st.client = NULL;
    st.shrinker_started = false;
}

__attribute__((constructor)) static void gci_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}
