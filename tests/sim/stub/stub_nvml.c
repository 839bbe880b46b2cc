/*
 * stub_nvml.c - an old-style libnvidia-ml.so.1 for the loader tests: only the
 * plain (unversioned) names, the 16-byte v1 process layout, 100 processes
 * (more than a first buffer holds), and a GetMemoryInfo_v2 that answers
 * NOT_SUPPORTED when its version word is right (and a mismatch otherwise).
 */
#include <string.h>

#include "gpu/gpu_abi.h"

#define STUB_PROCS 100

static struct nvmlDevice_st {
    int unused;
} stub_device;

nvmlReturn_t nvmlInit(void);
nvmlReturn_t nvmlShutdown(void);
const char *nvmlErrorString(nvmlReturn_t result);
nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length);
nvmlReturn_t nvmlDeviceGetCount(unsigned int *count);
nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory);
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                  nvmlProcessInfo_v1_t *infos);

nvmlReturn_t nvmlInit(void)
{
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void)
{
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
    return result == NVML_SUCCESS ? "Success" : "Stub Error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    if (length < 9)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(version, "stub-1.0", 9);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount(unsigned int *count)
{
    *count = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    if (index != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &stub_device;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    (void)device;
    if (length < 10)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(name, "stub GPU", 9);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    (void)device;
    if (length < 10)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(uuid, "GPU-stub", 9);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    (void)device;
    memory->total = 1000000;
    memory->free = 600000;
    memory->used = 400000;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    (void)device;
    if (memory->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    return NVML_ERROR_NOT_SUPPORTED;
}

/* Process i has pid 1000 + i and uses (i + 1) * 4096 bytes; process 7 cannot tell. */
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                  nvmlProcessInfo_v1_t *infos)
{
    (void)device;
    if (*infoCount < STUB_PROCS) {
        *infoCount = STUB_PROCS;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned i = 0; i < STUB_PROCS; i++) {
        infos[i].pid = 1000 + i;
        infos[i].usedGpuMemory = i == 7 ? NVML_VALUE_NOT_AVAILABLE_ULL : (i + 1) * 4096ULL;
    }
    *infoCount = STUB_PROCS;
    return NVML_SUCCESS;
}
