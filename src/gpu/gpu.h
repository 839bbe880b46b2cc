/*
 * gpu.h - NVML and CUDA driver API, loaded at run time with dlopen.
 *
 * No CUDA header or toolkit is needed: the types come from gpu_abi.h. The same
 * code runs on a real NVIDIA driver and on gpusim (build/sim on LD_LIBRARY_PATH).
 * Newest versioned symbols are looked up first, with fallback to older ones;
 * errors name the missing library or symbol. Nothing here logs.
 */
#ifndef GC_GPU_H
#define GC_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "gpu/gpu_abi.h"

/* ---- NVML (the coordinator's only view of the GPU) ---- */

#define GC_GPU_NAME_MAX 96
#define GC_GPU_UUID_MAX 96
/* Most processes reported per GPU. */
#define GC_GPU_PROCS_MAX 256
/* usedGpuMemory the driver could not tell. */
#define GC_GPU_BYTES_UNKNOWN UINT64_MAX

struct gc_nvml;

struct gc_gpu_info {
    unsigned index;
    char uuid[GC_GPU_UUID_MAX];
    char name[GC_GPU_NAME_MAX];
    uint64_t total_bytes;
    uint64_t free_bytes;
    uint64_t used_bytes;     /* v2: excludes reserved; v1: includes it */
    uint64_t reserved_bytes; /* 0 when only v1 is available */
};

struct gc_gpu_proc {
    uint32_t pid;
    uint64_t used_bytes; /* GC_GPU_BYTES_UNKNOWN when the driver cannot tell */
};

/*
 * gc_nvml_open: dlopen libnvidia-ml.so.1 (the normal library search, so
 * LD_LIBRARY_PATH=build/sim selects gpusim), resolve the symbols and nvmlInit.
 * On failure returns GC_EGPU and errbuf names the library or symbol at fault;
 * nothing stays loaded.
 */
int gc_nvml_open(struct gc_nvml **ret_nvml, char *errbuf, size_t errbuf_len);
/* nvmlShutdown, dlclose, free. NULL is a no-op. */
void gc_nvml_close(struct gc_nvml *nvml);
/* Driver version string ("550.54.14", or gpusim's). */
const char *gc_nvml_driver_version(const struct gc_nvml *nvml);
int gc_nvml_device_count(struct gc_nvml *nvml, unsigned *ret_count);
/* Name, UUID and memory of one GPU (memory through _v2 when present). */
int gc_nvml_device_info(struct gc_nvml *nvml, unsigned index, struct gc_gpu_info *ret_info);
/* Only the memory figures (faster than device_info: no name/UUID). */
int gc_nvml_device_memory(struct gc_nvml *nvml, unsigned index, struct gc_gpu_info *ret_info);
/*
 * Compute processes on GPU index, up to max entries (growing internally on
 * NVML_ERROR_INSUFFICIENT_SIZE); *ret_count gets the number written.
 */
int gc_nvml_processes(struct gc_nvml *nvml, unsigned index, struct gc_gpu_proc *procs, unsigned max,
                      unsigned *ret_count);
/* The last NVML error text for this handle's most recent failure. */
const char *gc_nvml_last_error(const struct gc_nvml *nvml);
/*
 * gpusim only (its gpusimGetOomCount extension): how many allocations or
 * contexts gpusim refused with CUDA_ERROR_OUT_OF_MEMORY on GPU index so far.
 * GC_ENOTFOUND on a real driver.
 */
int gc_nvml_gpusim_oom_count(struct gc_nvml *nvml, unsigned index, uint64_t *ret_count);
/*
 * gpusim only: the folder the loaded libnvidia-ml.so.1 came from (its
 * libcuda.so.1 lies beside it) and gpusim's state file, both absolute, so that
 * a client can start a program on the same simulated GPU. NULL on a real driver.
 * The strings live as long as the handle.
 */
const char *gc_nvml_gpusim_libdir(const struct gc_nvml *nvml);
const char *gc_nvml_gpusim_state(const struct gc_nvml *nvml);

/* ---- CUDA driver API (the servers' model memory) ---- */

/* Function table of the loaded driver, versioned names resolved. */
struct gc_cuda {
    void *handle;
    cuInit_fn cuInit;
    cuDriverGetVersion_fn cuDriverGetVersion;
    cuDeviceGetCount_fn cuDeviceGetCount;
    cuDeviceGet_fn cuDeviceGet;
    cuDeviceGetName_fn cuDeviceGetName;
    cuDeviceTotalMem_fn cuDeviceTotalMem;
    cuDeviceGetUuid_fn cuDeviceGetUuid;
    cuDevicePrimaryCtxRetain_fn cuDevicePrimaryCtxRetain;
    cuDevicePrimaryCtxRelease_fn cuDevicePrimaryCtxRelease;
    cuCtxSetCurrent_fn cuCtxSetCurrent;
    cuCtxGetCurrent_fn cuCtxGetCurrent;
    cuMemAlloc_fn cuMemAlloc;
    cuMemFree_fn cuMemFree;
    cuMemGetInfo_fn cuMemGetInfo;
    cuMemHostAlloc_fn cuMemHostAlloc;
    cuMemFreeHost_fn cuMemFreeHost;
    cuMemcpyHtoD_fn cuMemcpyHtoD;
    cuMemcpyDtoH_fn cuMemcpyDtoH;
    cuMemcpyHtoDAsync_fn cuMemcpyHtoDAsync;
    cuMemcpyDtoHAsync_fn cuMemcpyDtoHAsync;
    cuMemsetD8_fn cuMemsetD8;
    cuStreamCreate_fn cuStreamCreate;
    cuStreamSynchronize_fn cuStreamSynchronize;
    cuStreamDestroy_fn cuStreamDestroy;
    cuGetErrorString_fn cuGetErrorString; /* may be NULL on old drivers */
    cuGetErrorName_fn cuGetErrorName;     /* may be NULL on old drivers */
};

/*
 * gc_cuda_open: dlopen libcuda.so.1, resolve every symbol above (newest
 * versioned name first) and cuInit(0). On failure returns GC_EGPU, errbuf names
 * the library or symbol, and nothing stays loaded.
 */
int gc_cuda_open(struct gc_cuda *ret_cuda, char *errbuf, size_t errbuf_len);
/* dlclose; a zeroed struct is a no-op. */
void gc_cuda_close(struct gc_cuda *cuda);
/* "CUDA_ERROR_OUT_OF_MEMORY: out of memory" style text for rc (static storage). */
const char *gc_cuda_strerror(const struct gc_cuda *cuda, CUresult rc);

#endif
