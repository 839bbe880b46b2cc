/*
 * nvml.c - gpusim's NVML (libnvidia-ml.so.1): device names and UUIDs, memory
 * and per-process usage, read from the shared state; plus the gpusim*
 * extensions for tests and tools.
 *
 * A query costs one lock of the shared state and one F_OFD_GETLK per process
 * holding a slot (the liveness check), no /proc access.
 */
#include "gpusim.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"

struct nvmlDevice_st {
    unsigned index;
};

static struct {
    pthread_mutex_t lock;
    unsigned refcount; /* nvmlInit calls not yet shut down */
    int ready;         /* read without the lock: __atomic */
    struct sim_shm shm;
    struct nvmlDevice_st devices[SIM_DEVICES_MAX];
    enum sim_pids pids; /* GPUSIM_PIDS at init */
} n = {.lock = PTHREAD_MUTEX_INITIALIZER};

#define SIM_NVML_ERRORS(XX)                                                                        \
    XX(NVML_SUCCESS, "Success")                                                                    \
    XX(NVML_ERROR_UNINITIALIZED, "Uninitialized")                                                  \
    XX(NVML_ERROR_INVALID_ARGUMENT, "Invalid Argument")                                            \
    XX(NVML_ERROR_NOT_SUPPORTED, "Not Supported")                                                  \
    XX(NVML_ERROR_NO_PERMISSION, "Insufficient Permissions")                                       \
    XX(NVML_ERROR_NOT_FOUND, "Not Found")                                                          \
    XX(NVML_ERROR_INSUFFICIENT_SIZE, "Insufficient Size")                                          \
    XX(NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded")                                          \
    XX(NVML_ERROR_FUNCTION_NOT_FOUND, "Function Not Found")                                        \
    XX(NVML_ERROR_GPU_IS_LOST, "GPU is lost")                                                      \
    XX(NVML_ERROR_ARGUMENT_VERSION_MISMATCH, "Argument version mismatch")                          \
    XX(NVML_ERROR_UNKNOWN, "Unknown Error")

SIM_API const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
#define XX(code, text)                                                                             \
    case code:                                                                                     \
        return text;
        SIM_NVML_ERRORS(XX)
#undef XX
    }
    return "Unknown Error";
}

SIM_API nvmlReturn_t nvmlInit_v2(void)
{
    struct sim_config cfg;
    char err[256];
    int rc;

    pthread_mutex_lock(&n.lock);
    if (n.refcount > 0) {
        n.refcount++;
        pthread_mutex_unlock(&n.lock);
        return NVML_SUCCESS;
    }
    if (sim_config_load(&cfg, err, sizeof(err)) < 0) {
        sim_debug("nvmlInit: %s", err);
        pthread_mutex_unlock(&n.lock);
        return NVML_ERROR_DRIVER_NOT_LOADED;
    }
    /* A mapping kept from an earlier init is reused (a racing query may still
     * read it); a new GPUSIM_STATE gets a new one. */
    if (n.shm.st != NULL && strcmp(n.shm.path, cfg.state_path) != 0)
        sim_shm_close(&n.shm);
    if (n.shm.st == NULL)
        rc = sim_shm_open(&n.shm, &cfg, true);
    else
        rc = sim_shm_apply_devices(&n.shm, &cfg);
    if (rc < 0) {
        sim_debug("nvmlInit: cannot open state '%s': %s", cfg.state_path, gpucoord_strerror(rc));
        pthread_mutex_unlock(&n.lock);
        return rc == GC_EFORBIDDEN ? NVML_ERROR_NO_PERMISSION : NVML_ERROR_DRIVER_NOT_LOADED;
    }
    for (unsigned d = 0; d < SIM_DEVICES_MAX; d++)
        n.devices[d].index = d;
    n.pids = cfg.pids;
    n.refcount = 1;
    __atomic_store_n(&n.ready, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&n.lock);
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t nvmlShutdown(void)
{
    pthread_mutex_lock(&n.lock);
    if (n.refcount == 0) {
        pthread_mutex_unlock(&n.lock);
        return NVML_ERROR_UNINITIALIZED;
    }
    if (--n.refcount == 0)
        __atomic_store_n(&n.ready, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&n.lock);
    return NVML_SUCCESS;
}

/* Locks the state for a query; NVML_SUCCESS means sim_unlock() is due. */
static nvmlReturn_t enter(void)
{
    if (!__atomic_load_n(&n.ready, __ATOMIC_ACQUIRE))
        return NVML_ERROR_UNINITIALIZED;
    if (sim_lock(&n.shm) < 0)
        return NVML_ERROR_UNKNOWN;
    return NVML_SUCCESS;
}

/* enter(), then checks the handle; on success *ret_dev is its index. */
static nvmlReturn_t enter_device(nvmlDevice_t device, unsigned *ret_dev)
{
    nvmlReturn_t rc = enter();
    uintptr_t p = (uintptr_t)device, base = (uintptr_t)&n.devices[0];

    if (rc != NVML_SUCCESS)
        return rc;
    if (p < base || p >= base + sizeof(n.devices) || (p - base) % sizeof(n.devices[0]) != 0 ||
        device->index >= sim_ndevices(n.shm.st)) {
        sim_unlock(&n.shm);
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *ret_dev = device->index;
    return NVML_SUCCESS;
}

/* Copies text into buf of length; INSUFFICIENT_SIZE when it does not fit. */
static nvmlReturn_t copy_text(const char *text, char *buf, unsigned length)
{
    size_t len = strlen(text);

    if (buf == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (len + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, text, len + 1);
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    if (!__atomic_load_n(&n.ready, __ATOMIC_ACQUIRE))
        return NVML_ERROR_UNINITIALIZED;
    return copy_text(SIM_DRIVER_VERSION, version, length);
}

SIM_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    nvmlReturn_t rc;

    if (count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    rc = enter();
    if (rc != NVML_SUCCESS)
        return rc;
    *count = sim_ndevices(n.shm.st);
    sim_unlock(&n.shm);
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    nvmlReturn_t rc;

    if (device == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    rc = enter();
    if (rc != NVML_SUCCESS)
        return rc;
    if (index >= sim_ndevices(n.shm.st)) {
        sim_unlock(&n.shm);
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    sim_unlock(&n.shm);
    *device = &n.devices[index];
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    unsigned dev;
    nvmlReturn_t rc;

    if (index == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    rc = enter_device(device, &dev);
    if (rc != NVML_SUCCESS)
        return rc;
    sim_unlock(&n.shm);
    *index = dev;
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    unsigned dev;
    uint64_t cap;
    nvmlReturn_t rc = enter_device(device, &dev);

    if (rc != NVML_SUCCESS)
        return rc;
    cap = n.shm.st->dev[dev].capacity_bytes;
    sim_unlock(&n.shm);
    return copy_text(sim_device_name(cap), name, length);
}

SIM_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    char text[SIM_UUID_TEXT_MAX];
    unsigned dev;
    nvmlReturn_t rc = enter_device(device, &dev);

    if (rc != NVML_SUCCESS)
        return rc;
    sim_unlock(&n.shm);
    sim_device_uuid_text(dev, text, sizeof(text));
    return copy_text(text, uuid, length);
}

/* Total, used (charged + lagged) and free bytes of dev. */
static nvmlReturn_t memory_query(nvmlDevice_t device, unsigned long long *ret_total,
                                 unsigned long long *ret_used, unsigned long long *ret_free)
{
    unsigned dev;
    uint64_t total, used;
    nvmlReturn_t rc = enter_device(device, &dev);

    if (rc != NVML_SUCCESS)
        return rc;
    total = n.shm.st->dev[dev].capacity_bytes;
    used = sim_charged_bytes(n.shm.st, dev) + sim_lagged_bytes(n.shm.st, dev);
    sim_unlock(&n.shm);
    *ret_total = total;
    *ret_used = used;
    *ret_free = used < total ? total - used : 0;
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    unsigned long long total, used, free_bytes;
    nvmlReturn_t rc;

    if (memory == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    rc = memory_query(device, &total, &used, &free_bytes);
    if (rc != NVML_SUCCESS)
        return rc;
    memory->total = total;
    memory->used = used;
    memory->free = free_bytes;
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    unsigned long long total, used, free_bytes;
    nvmlReturn_t rc;

    if (memory == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    rc = memory_query(device, &total, &used, &free_bytes);
    if (rc != NVML_SUCCESS)
        return rc;
    memory->total = total;
    memory->reserved = 0; /* gpusim reserves nothing: total = free + used */
    memory->used = used;
    memory->free = free_bytes;
    return NVML_SUCCESS;
}

/* A process as this caller's NVML reports it (GPUSIM_PIDS): device-level memory
 * stays truthful whatever the process list says. */
static void pids_view(unsigned *pid, unsigned long long *used)
{
    switch (n.pids) {
    case SIM_PIDS_HOST:
        break;
    case SIM_PIDS_FOREIGN:
        *pid += SIM_FOREIGN_PID_SHIFT;
        break;
    case SIM_PIDS_UNAVAILABLE:
        *used = NVML_VALUE_NOT_AVAILABLE_ULL;
        break;
    case SIM_PIDS_ZERO:
        *used = 0;
        break;
    }
}

/*
 * The processes with a context on the device, in the v1 (16-byte) or v2/v3
 * (24-byte) layout. NVML's contract: when *infoCount is too small it is set to
 * the number needed and INSUFFICIENT_SIZE is answered; infos may then be NULL.
 */
static nvmlReturn_t processes_query(nvmlDevice_t device, unsigned *info_count, void *infos, bool v1)
{
    nvmlProcessInfo_v1_t *out1 = infos;
    nvmlProcessInfo_t *out3 = infos;
    unsigned dev, found = 0;
    nvmlReturn_t rc;

    if (info_count == NULL || (infos == NULL && *info_count > 0))
        return NVML_ERROR_INVALID_ARGUMENT;
    rc = enter_device(device, &dev);
    if (rc != NVML_SUCCESS)
        return rc;
    for (unsigned i = 0; i < SIM_SLOTS_MAX && i < n.shm.st->nslots; i++) {
        const struct sim_slot *s = &n.shm.st->slot[i];

        if (s->state != SIM_SLOT_TAKEN || !s->has_ctx[dev])
            continue;
        if (found < *info_count) {
            unsigned pid = (unsigned)s->pid;
            unsigned long long used = s->bytes[dev];
            pids_view(&pid, &used);
            if (v1) {
                out1[found].pid = pid;
                out1[found].usedGpuMemory = used;
            } else {
                out3[found].pid = pid;
                out3[found].usedGpuMemory = used;
                out3[found].gpuInstanceId = 0xFFFFFFFFu; /* not a MIG instance */
                out3[found].computeInstanceId = 0xFFFFFFFFu;
            }
        }
        found++;
    }
    sim_unlock(&n.shm);
    if (found > *info_count) {
        *info_count = found;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    *info_count = found;
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                             unsigned int *infoCount,
                                                             nvmlProcessInfo_t *infos)
{
    return processes_query(device, infoCount, infos, false);
}

SIM_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device,
                                                          unsigned int *infoCount,
                                                          nvmlProcessInfo_v1_t *infos)
{
    return processes_query(device, infoCount, infos, true);
}

/* ---- gpusim extensions ---- */

/* enter(), then checks dev. */
static nvmlReturn_t enter_index(unsigned dev)
{
    nvmlReturn_t rc = enter();

    if (rc != NVML_SUCCESS)
        return rc;
    if (dev >= sim_ndevices(n.shm.st)) {
        sim_unlock(&n.shm);
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t gpusimGetOomCount(unsigned int dev, unsigned long long *count)
{
    nvmlReturn_t rc;

    if (count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    rc = enter_index(dev);
    if (rc != NVML_SUCCESS)
        return rc;
    *count = n.shm.st->dev[dev].oom_count;
    sim_unlock(&n.shm);
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t gpusimGetStatePath(char *path, unsigned int length)
{
    if (path == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!__atomic_load_n(&n.ready, __ATOMIC_ACQUIRE))
        return NVML_ERROR_UNINITIALIZED;
    return copy_text(n.shm.path, path, length);
}

SIM_API nvmlReturn_t gpusimGetLaggedBytes(unsigned int dev, unsigned long long *bytes)
{
    nvmlReturn_t rc;

    if (bytes == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    rc = enter_index(dev);
    if (rc != NVML_SUCCESS)
        return rc;
    *bytes = sim_lagged_bytes(n.shm.st, dev);
    sim_unlock(&n.shm);
    return NVML_SUCCESS;
}

SIM_API nvmlReturn_t gpusimTestHoldLock(int notify_fd, unsigned int hold_ms)
{
    nvmlReturn_t rc = enter();
    char byte = 'L';

    if (rc != NVML_SUCCESS)
        return rc;
    if (notify_fd >= 0 && write(notify_fd, &byte, 1) != 1)
        sim_debug("gpusimTestHoldLock: cannot notify");
    sim_sleep_until_ns(sim_now_ns() + (int64_t)hold_ms * 1000000LL);
    sim_unlock(&n.shm);
    return NVML_SUCCESS;
}

/* ---- plain and older names ---- */

SIM_ALIAS(nvmlInit, nvmlInit_v2);
SIM_ALIAS(nvmlDeviceGetCount, nvmlDeviceGetCount_v2);
SIM_ALIAS(nvmlDeviceGetHandleByIndex, nvmlDeviceGetHandleByIndex_v2);
SIM_ALIAS(nvmlDeviceGetComputeRunningProcesses_v2, nvmlDeviceGetComputeRunningProcesses_v3);
