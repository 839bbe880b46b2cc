/*
 * nvml.c - NVML loaded with dlopen (gpu.h). Newest versioned symbols first,
 * with fallback; errors name the library or symbol at fault.
 *
 * Thread safety: after gc_nvml_open the handle is read-only except for
 * last_error, the lazily filled device handles and the "memory _v2 is not
 * supported" flag, all accessed atomically; NVML itself is thread-safe.
 */
#include "gpu/gpu.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define NVML_LIB "libnvidia-ml.so.1"
/* Device handles cached per handle; higher indexes are looked up every time. */
#define GC_NVML_DEVICES_MAX 64
/* Process-list entries on the stack before growing onto the heap. */
#define GC_NVML_PROCS_STACK 32
/* Largest process list asked for, and tries after INSUFFICIENT_SIZE. */
#define GC_NVML_PROCS_CAP   4096
#define GC_NVML_PROCS_TRIES 4

typedef nvmlReturn_t (*gpusimGetOomCount_fn)(unsigned int dev, unsigned long long *count);
typedef nvmlReturn_t (*gpusimGetStatePath_fn)(char *path, unsigned int length);

struct gc_nvml {
    void *handle;
    nvmlShutdown_fn shutdown;
    nvmlErrorString_fn error_string;
    nvmlDeviceGetCount_fn device_count;
    nvmlDeviceGetHandleByIndex_fn handle_by_index;
    nvmlDeviceGetName_fn get_name;
    nvmlDeviceGetUUID_fn get_uuid;
    nvmlDeviceGetMemoryInfo_fn memory_v1;
    nvmlDeviceGetMemoryInfo_v2_fn memory_v2;                 /* NULL when missing */
    nvmlDeviceGetComputeRunningProcesses_fn processes;       /* _v3 or _v2 */
    nvmlDeviceGetComputeRunningProcesses_v1_fn processes_v1; /* when neither exists */
    gpusimGetOomCount_fn gpusim_oom_count;                   /* gpusim only */
    int memory_v2_off;                         /* atomic: _v2 answered NOT_SUPPORTED */
    const char *last_error;                    /* atomic: static text */
    nvmlDevice_t devices[GC_NVML_DEVICES_MAX]; /* atomic, filled on first use */
    char driver_version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
    char *gpusim_libdir; /* gpusim only, else NULL */
    char *gpusim_state;
};

/* dlsym of the first name found among names[0..n); NULL if none. */
static void *sym_first(void *handle, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        void *p = dlsym(handle, names[i]);
        if (p != NULL)
            return p;
    }
    return NULL;
}

/* Fills errbuf with "missing symbol 'a' (and 'b') in LIB". */
static void missing_symbol(char *errbuf, size_t errbuf_len, const char *const *names, size_t n)
{
    int len = snprintf(errbuf, errbuf_len, "missing symbol '%s'", names[0]);

    for (size_t i = 1; i < n && len >= 0 && (size_t)len < errbuf_len; i++)
        len += snprintf(errbuf + len, errbuf_len - (size_t)len, " (and '%s')", names[i]);
    if (len >= 0 && (size_t)len < errbuf_len)
        snprintf(errbuf + len, errbuf_len - (size_t)len, " in %s", NVML_LIB);
}

#define NAMES(...)  ((const char *const[]){__VA_ARGS__})
#define NNAMES(...) (sizeof(NAMES(__VA_ARGS__)) / sizeof(const char *))
/* Resolves dst from the names (newest first) or fails the open. */
#define RESOLVE(dst, ...)                                                                          \
    do {                                                                                           \
        void *p_ = sym_first(nvml->handle, NAMES(__VA_ARGS__), NNAMES(__VA_ARGS__));               \
        if (p_ == NULL) {                                                                          \
            missing_symbol(errbuf, errbuf_len, NAMES(__VA_ARGS__), NNAMES(__VA_ARGS__));           \
            goto out_close;                                                                        \
        }                                                                                          \
        memcpy(&(dst), &p_, sizeof(p_));                                                           \
    } while (0)
#define RESOLVE_OPTIONAL(dst, ...)                                                                 \
    do {                                                                                           \
        void *p_ = sym_first(nvml->handle, NAMES(__VA_ARGS__), NNAMES(__VA_ARGS__));               \
        memcpy(&(dst), &p_, sizeof(p_));                                                           \
    } while (0)

static void find_gpusim(struct gc_nvml *nvml);

int gc_nvml_open(struct gc_nvml **ret_nvml, char *errbuf, size_t errbuf_len)
{
    struct gc_nvml *nvml;
    nvmlInit_fn init;
    nvmlSystemGetDriverVersion_fn driver_version;
    nvmlReturn_t rc;

    nvml = calloc(1, sizeof(*nvml));
    if (nvml == NULL) {
        snprintf(errbuf, errbuf_len, "out of memory");
        return GC_ENOMEM;
    }
    nvml->last_error = "";
    nvml->handle = dlopen(NVML_LIB, RTLD_NOW | RTLD_LOCAL);
    if (nvml->handle == NULL) {
        const char *e = dlerror();
        snprintf(errbuf, errbuf_len, "%s", e != NULL ? e : NVML_LIB ": cannot be loaded");
        free(nvml);
        return GC_EGPU;
    }
    RESOLVE(init, "nvmlInit_v2", "nvmlInit");
    RESOLVE(nvml->shutdown, "nvmlShutdown");
    RESOLVE(nvml->error_string, "nvmlErrorString");
    RESOLVE(driver_version, "nvmlSystemGetDriverVersion");
    RESOLVE(nvml->device_count, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    RESOLVE(nvml->handle_by_index, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    RESOLVE(nvml->get_name, "nvmlDeviceGetName");
    RESOLVE(nvml->get_uuid, "nvmlDeviceGetUUID");
    RESOLVE(nvml->memory_v1, "nvmlDeviceGetMemoryInfo");
    RESOLVE_OPTIONAL(nvml->memory_v2, "nvmlDeviceGetMemoryInfo_v2");
    RESOLVE_OPTIONAL(nvml->processes, "nvmlDeviceGetComputeRunningProcesses_v3",
                     "nvmlDeviceGetComputeRunningProcesses_v2");
    if (nvml->processes == NULL)
        RESOLVE(nvml->processes_v1, "nvmlDeviceGetComputeRunningProcesses_v3",
                "nvmlDeviceGetComputeRunningProcesses_v2", "nvmlDeviceGetComputeRunningProcesses");
    RESOLVE_OPTIONAL(nvml->gpusim_oom_count, "gpusimGetOomCount");

    rc = init();
    if (rc != NVML_SUCCESS) {
        snprintf(errbuf, errbuf_len, "nvmlInit failed in %s: %s (%d)", NVML_LIB,
                 nvml->error_string(rc), rc);
        goto out_close;
    }
    if (driver_version(nvml->driver_version, sizeof(nvml->driver_version)) != NVML_SUCCESS)
        snprintf(nvml->driver_version, sizeof(nvml->driver_version), "unknown");
    find_gpusim(nvml);
    *ret_nvml = nvml;
    return 0;

out_close:
    dlclose(nvml->handle);
    free(nvml);
    return GC_EGPU;
}

/* gpusim's library folder and state file, when the loaded NVML is gpusim's: clients
 * give both to the programs they start, which would otherwise not find the simulated
 * driver (or would use another state file) when started from a plain shell. */
static void find_gpusim(struct gc_nvml *nvml)
{
    gpusimGetStatePath_fn state_path;
    void *sym = dlsym(nvml->handle, "gpusimGetStatePath");
    char path[PATH_MAX];
    Dl_info info;
    char *slash;

    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL)
        return;
    memcpy(&state_path, &sym, sizeof(sym));
    /* Relative names (LD_LIBRARY_PATH=build/sim) are made absolute here, where
     * they were meant. */
    if (realpath(info.dli_fname, path) == NULL)
        return;
    slash = strrchr(path, '/');
    if (slash == NULL || slash == path)
        return;
    *slash = '\0';
    nvml->gpusim_libdir = strdup(path);
    if (state_path(path, sizeof(path)) == NVML_SUCCESS) {
        char abs[PATH_MAX];
        nvml->gpusim_state = strdup(realpath(path, abs) != NULL ? abs : path);
    }
    if (nvml->gpusim_libdir == NULL || nvml->gpusim_state == NULL) {
        free(nvml->gpusim_libdir);
        free(nvml->gpusim_state);
        nvml->gpusim_libdir = nvml->gpusim_state = NULL;
    }
}

const char *gc_nvml_gpusim_libdir(const struct gc_nvml *nvml)
{
    return nvml->gpusim_libdir;
}

const char *gc_nvml_gpusim_state(const struct gc_nvml *nvml)
{
    return nvml->gpusim_state;
}

void gc_nvml_close(struct gc_nvml *nvml)
{
    if (nvml == NULL)
        return;
    nvml->shutdown();
    dlclose(nvml->handle);
    free(nvml->gpusim_libdir);
    free(nvml->gpusim_state);
    free(nvml);
}

const char *gc_nvml_driver_version(const struct gc_nvml *nvml)
{
    return nvml->driver_version;
}

const char *gc_nvml_last_error(const struct gc_nvml *nvml)
{
    return __atomic_load_n(&nvml->last_error, __ATOMIC_ACQUIRE);
}

/* Records NVML's text for rc and answers GC_EGPU. */
static int nvml_fail(struct gc_nvml *nvml, nvmlReturn_t rc)
{
    __atomic_store_n(&nvml->last_error, nvml->error_string(rc), __ATOMIC_RELEASE);
    return GC_EGPU;
}

int gc_nvml_device_count(struct gc_nvml *nvml, unsigned *ret_count)
{
    unsigned count;
    nvmlReturn_t rc = nvml->device_count(&count);

    if (rc != NVML_SUCCESS)
        return nvml_fail(nvml, rc);
    *ret_count = count;
    return 0;
}

static int device_handle(struct gc_nvml *nvml, unsigned index, nvmlDevice_t *ret_dev)
{
    nvmlDevice_t dev = NULL;
    nvmlReturn_t rc;

    if (index < GC_NVML_DEVICES_MAX)
        dev = __atomic_load_n(&nvml->devices[index], __ATOMIC_ACQUIRE);
    if (dev == NULL) {
        rc = nvml->handle_by_index(index, &dev);
        if (rc == NVML_ERROR_INVALID_ARGUMENT || rc == NVML_ERROR_NOT_FOUND) {
            __atomic_store_n(&nvml->last_error, "no GPU with that index", __ATOMIC_RELEASE);
            return GC_EINVAL;
        }
        if (rc != NVML_SUCCESS)
            return nvml_fail(nvml, rc);
        if (index < GC_NVML_DEVICES_MAX)
            __atomic_store_n(&nvml->devices[index], dev, __ATOMIC_RELEASE);
    }
    *ret_dev = dev;
    return 0;
}

static int device_memory(struct gc_nvml *nvml, nvmlDevice_t dev, struct gc_gpu_info *info)
{
    nvmlMemory_t m1;
    nvmlReturn_t rc;

    if (nvml->memory_v2 != NULL && !__atomic_load_n(&nvml->memory_v2_off, __ATOMIC_RELAXED)) {
        nvmlMemory_v2_t m2;

        memset(&m2, 0, sizeof(m2));
        m2.version = nvmlMemory_v2;
        rc = nvml->memory_v2(dev, &m2);
        if (rc == NVML_SUCCESS) {
            info->total_bytes = m2.total;
            info->free_bytes = m2.free;
            info->used_bytes = m2.used;
            info->reserved_bytes = m2.reserved;
            return 0;
        }
        if (rc != NVML_ERROR_NOT_SUPPORTED && rc != NVML_ERROR_FUNCTION_NOT_FOUND)
            return nvml_fail(nvml, rc);
        __atomic_store_n(&nvml->memory_v2_off, 1, __ATOMIC_RELAXED);
    }
    rc = nvml->memory_v1(dev, &m1);
    if (rc != NVML_SUCCESS)
        return nvml_fail(nvml, rc);
    info->total_bytes = m1.total;
    info->free_bytes = m1.free;
    info->used_bytes = m1.used;
    info->reserved_bytes = 0;
    return 0;
}

int gc_nvml_device_memory(struct gc_nvml *nvml, unsigned index, struct gc_gpu_info *ret_info)
{
    nvmlDevice_t dev;
    int rc = device_handle(nvml, index, &dev);

    if (rc < 0)
        return rc;
    ret_info->index = index;
    return device_memory(nvml, dev, ret_info);
}

int gc_nvml_device_info(struct gc_nvml *nvml, unsigned index, struct gc_gpu_info *ret_info)
{
    struct gc_gpu_info info;
    nvmlDevice_t dev;
    nvmlReturn_t nrc;
    int rc = device_handle(nvml, index, &dev);

    if (rc < 0)
        return rc;
    memset(&info, 0, sizeof(info));
    info.index = index;
    nrc = nvml->get_name(dev, info.name, sizeof(info.name));
    if (nrc != NVML_SUCCESS)
        return nvml_fail(nvml, nrc);
    nrc = nvml->get_uuid(dev, info.uuid, sizeof(info.uuid));
    if (nrc != NVML_SUCCESS)
        return nvml_fail(nvml, nrc);
    rc = device_memory(nvml, dev, &info);
    if (rc < 0)
        return rc;
    *ret_info = info;
    return 0;
}

int gc_nvml_processes(struct gc_nvml *nvml, unsigned index, struct gc_gpu_proc *procs, unsigned max,
                      unsigned *ret_count)
{
    nvmlProcessInfo_t stack_buf[GC_NVML_PROCS_STACK];
    size_t entry =
        nvml->processes != NULL ? sizeof(nvmlProcessInfo_t) : sizeof(nvmlProcessInfo_v1_t);
    void *buf = stack_buf, *heap = NULL;
    unsigned cap = (unsigned)(sizeof(stack_buf) / entry), count = 0, n;
    nvmlReturn_t nrc = NVML_ERROR_INSUFFICIENT_SIZE;
    nvmlDevice_t dev;
    int rc = device_handle(nvml, index, &dev);

    if (rc < 0)
        return rc;
    for (int tries = 0; tries < GC_NVML_PROCS_TRIES; tries++) {
        count = cap;
        if (nvml->processes != NULL)
            nrc = nvml->processes(dev, &count, buf);
        else
            nrc = nvml->processes_v1(dev, &count, buf);
        if (nrc != NVML_ERROR_INSUFFICIENT_SIZE || cap >= GC_NVML_PROCS_CAP)
            break;
        /* Room for what NVML asked plus a few that may start meanwhile. */
        cap = count > cap ? count + 8 : cap * 2;
        if (cap > GC_NVML_PROCS_CAP)
            cap = GC_NVML_PROCS_CAP;
        free(heap);
        heap = malloc((size_t)cap * entry);
        if (heap == NULL) {
            __atomic_store_n(&nvml->last_error, "out of memory", __ATOMIC_RELEASE);
            return GC_ENOMEM;
        }
        buf = heap;
    }
    if (nrc != NVML_SUCCESS) {
        free(heap);
        return nvml_fail(nvml, nrc);
    }
    n = count < max ? count : max;
    for (unsigned i = 0; i < n; i++) {
        unsigned long long used;

        if (nvml->processes != NULL) {
            const nvmlProcessInfo_t *p = (const nvmlProcessInfo_t *)buf + i;
            procs[i].pid = p->pid;
            used = p->usedGpuMemory;
        } else {
            const nvmlProcessInfo_v1_t *p = (const nvmlProcessInfo_v1_t *)buf + i;
            procs[i].pid = p->pid;
            used = p->usedGpuMemory;
        }
        procs[i].used_bytes = used == NVML_VALUE_NOT_AVAILABLE_ULL ? GC_GPU_BYTES_UNKNOWN : used;
    }
    free(heap);
    *ret_count = n;
    return 0;
}

int gc_nvml_gpusim_oom_count(struct gc_nvml *nvml, unsigned index, uint64_t *ret_count)
{
    unsigned long long count;
    nvmlReturn_t rc;

    if (nvml->gpusim_oom_count == NULL)
        return GC_ENOTFOUND;
    rc = nvml->gpusim_oom_count(index, &count);
    if (rc != NVML_SUCCESS)
        return nvml_fail(nvml, rc);
    *ret_count = count;
    return 0;
}
