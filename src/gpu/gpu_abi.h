/*
 * gpu_abi.h - the few types, constants and signatures of the CUDA driver API
 * (libcuda.so.1) and NVML (libnvidia-ml.so.1) that gpucoord uses, declared here
 * so that no CUDA header or toolkit is needed. The loaders (nvml.c, cuda.c)
 * look these symbols up with dlsym; gpusim (sim/) exports them.
 *
 * Layouts follow the public headers: check any change against them.
 */
#ifndef GC_GPU_ABI_H
#define GC_GPU_ABI_H

#include <stddef.h>

/* ---- CUDA driver API ---- */

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct {
    char bytes[16];
} CUuuid;

#define CUDA_SUCCESS               0
#define CUDA_ERROR_INVALID_VALUE   1
#define CUDA_ERROR_OUT_OF_MEMORY   2
#define CUDA_ERROR_NOT_INITIALIZED 3
#define CUDA_ERROR_DEINITIALIZED   4
#define CUDA_ERROR_NO_DEVICE       100
#define CUDA_ERROR_INVALID_DEVICE  101
#define CUDA_ERROR_INVALID_CONTEXT 201
#define CUDA_ERROR_INVALID_HANDLE  400
#define CUDA_ERROR_NOT_FOUND       500
#define CUDA_ERROR_ILLEGAL_ADDRESS 700
#define CUDA_ERROR_UNKNOWN         999

#define CU_MEMHOSTALLOC_PORTABLE      0x01
#define CU_MEMHOSTALLOC_DEVICEMAP     0x02
#define CU_MEMHOSTALLOC_WRITECOMBINED 0x04
#define CU_STREAM_NON_BLOCKING        0x01

/* Virtual memory management (cuMemCreate ...) and stream-ordered allocation. */
typedef unsigned long long CUmemGenericAllocationHandle;
typedef struct CUmemPoolHandle_st *CUmemoryPool;
typedef unsigned long long cuuint64_t;

#define CU_MEM_ALLOCATION_TYPE_PINNED        1
#define CU_MEM_LOCATION_TYPE_DEVICE          1
#define CU_MEM_ACCESS_FLAGS_PROT_READWRITE   3
#define CU_MEM_ALLOC_GRANULARITY_MINIMUM     0
#define CU_MEM_ALLOC_GRANULARITY_RECOMMENDED 1
#define CU_MEM_ATTACH_GLOBAL                 0x1
#define CU_MEM_ATTACH_HOST                   0x2

typedef struct {
    int type; /* CU_MEM_LOCATION_TYPE_* */
    int id;   /* device ordinal for DEVICE */
} CUmemLocation;

typedef struct {
    int type;                 /* CU_MEM_ALLOCATION_TYPE_* */
    int requestedHandleTypes; /* CUmemAllocationHandleType bit set */
    CUmemLocation location;
    void *win32HandleMetaData;
    struct {
        unsigned char compressionType;
        unsigned char gpuDirectRDMACapable;
        unsigned short usage;
        unsigned char reserved[4];
    } allocFlags;
} CUmemAllocationProp;

typedef struct {
    CUmemLocation location;
    int flags; /* CU_MEM_ACCESS_FLAGS_* */
} CUmemAccessDesc;

/* cuGetProcAddress: flags and the _v2 query result. */
#define CU_GET_PROC_ADDRESS_DEFAULT                   0
#define CU_GET_PROC_ADDRESS_LEGACY_STREAM             1
#define CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM 2
#define CU_GET_PROC_ADDRESS_SUCCESS                   0
#define CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND          1
#define CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT    2
typedef int CUdriverProcAddressQueryResult;

typedef CUresult (*cuInit_fn)(unsigned int flags);
typedef CUresult (*cuDriverGetVersion_fn)(int *version);
typedef CUresult (*cuDeviceGetCount_fn)(int *count);
typedef CUresult (*cuDeviceGet_fn)(CUdevice *device, int ordinal);
typedef CUresult (*cuDeviceGetName_fn)(char *name, int len, CUdevice dev);
typedef CUresult (*cuDeviceTotalMem_fn)(size_t *bytes, CUdevice dev);
typedef CUresult (*cuDeviceGetUuid_fn)(CUuuid *uuid, CUdevice dev);
typedef CUresult (*cuDevicePrimaryCtxRetain_fn)(CUcontext *pctx, CUdevice dev);
typedef CUresult (*cuDevicePrimaryCtxRelease_fn)(CUdevice dev);
typedef CUresult (*cuCtxSetCurrent_fn)(CUcontext ctx);
typedef CUresult (*cuCtxGetCurrent_fn)(CUcontext *pctx);
typedef CUresult (*cuMemAlloc_fn)(CUdeviceptr *dptr, size_t bytesize);
typedef CUresult (*cuMemFree_fn)(CUdeviceptr dptr);
typedef CUresult (*cuMemGetInfo_fn)(size_t *free, size_t *total);
typedef CUresult (*cuMemHostAlloc_fn)(void **pp, size_t bytesize, unsigned int flags);
typedef CUresult (*cuMemFreeHost_fn)(void *p);
typedef CUresult (*cuMemcpyHtoD_fn)(CUdeviceptr dst, const void *src, size_t n);
typedef CUresult (*cuMemcpyDtoH_fn)(void *dst, CUdeviceptr src, size_t n);
typedef CUresult (*cuMemcpyHtoDAsync_fn)(CUdeviceptr dst, const void *src, size_t n,
                                         CUstream stream);
typedef CUresult (*cuMemcpyDtoHAsync_fn)(void *dst, CUdeviceptr src, size_t n, CUstream stream);
typedef CUresult (*cuMemsetD8_fn)(CUdeviceptr dst, unsigned char value, size_t n);
typedef CUresult (*cuStreamCreate_fn)(CUstream *pstream, unsigned int flags);
typedef CUresult (*cuStreamSynchronize_fn)(CUstream stream);
typedef CUresult (*cuStreamDestroy_fn)(CUstream stream);
typedef CUresult (*cuGetErrorString_fn)(CUresult error, const char **pstr);
typedef CUresult (*cuGetErrorName_fn)(CUresult error, const char **pstr);
typedef CUresult (*cuGetProcAddress_fn)(const char *symbol, void **pfn, int cudaVersion,
                                        cuuint64_t flags);
typedef CUresult (*cuGetProcAddress_v2_fn)(const char *symbol, void **pfn, int cudaVersion,
                                           cuuint64_t flags,
                                           CUdriverProcAddressQueryResult *symbolStatus);
typedef CUresult (*cuCtxCreate_fn)(CUcontext *pctx, unsigned int flags, CUdevice dev);
/* Execution affinity (cuCtxCreate_v3, CUDA 11.4) and creation parameters
 * (cuCtxCreate_v4, CUDA 12.5; what cuCtxCreate means from CUDA 13): only passed on. */
typedef struct CUexecAffinityParam_st CUexecAffinityParam;
typedef struct CUctxCreateParams_st CUctxCreateParams;
typedef CUresult (*cuCtxCreate_v3_fn)(CUcontext *pctx, CUexecAffinityParam *params_array,
                                      int num_params, unsigned int flags, CUdevice dev);
typedef CUresult (*cuCtxCreate_v4_fn)(CUcontext *pctx, CUctxCreateParams *params,
                                      unsigned int flags, CUdevice dev);
typedef CUresult (*cuCtxDestroy_fn)(CUcontext ctx);
typedef CUresult (*cuCtxGetDevice_fn)(CUdevice *device);
typedef CUresult (*cuMemAllocPitch_fn)(CUdeviceptr *dptr, size_t *pitch, size_t width_bytes,
                                       size_t height, unsigned int element_bytes);
typedef CUresult (*cuMemAllocManaged_fn)(CUdeviceptr *dptr, size_t bytesize, unsigned int flags);
typedef CUresult (*cuMemAllocAsync_fn)(CUdeviceptr *dptr, size_t bytesize, CUstream stream);
typedef CUresult (*cuMemAllocFromPoolAsync_fn)(CUdeviceptr *dptr, size_t bytesize,
                                               CUmemoryPool pool, CUstream stream);
typedef CUresult (*cuMemFreeAsync_fn)(CUdeviceptr dptr, CUstream stream);
typedef CUresult (*cuMemCreate_fn)(CUmemGenericAllocationHandle *handle, size_t size,
                                   const CUmemAllocationProp *prop, unsigned long long flags);
typedef CUresult (*cuMemRelease_fn)(CUmemGenericAllocationHandle handle);
typedef CUresult (*cuMemAddressReserve_fn)(CUdeviceptr *ptr, size_t size, size_t alignment,
                                           CUdeviceptr addr, unsigned long long flags);
typedef CUresult (*cuMemAddressFree_fn)(CUdeviceptr ptr, size_t size);
typedef CUresult (*cuMemMap_fn)(CUdeviceptr ptr, size_t size, size_t offset,
                                CUmemGenericAllocationHandle handle, unsigned long long flags);
typedef CUresult (*cuMemUnmap_fn)(CUdeviceptr ptr, size_t size);
typedef CUresult (*cuMemSetAccess_fn)(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,
                                      size_t count);
typedef CUresult (*cuMemGetAllocationGranularity_fn)(size_t *granularity,
                                                     const CUmemAllocationProp *prop, int option);

/* ---- NVML ---- */

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;

#define NVML_SUCCESS                         0
#define NVML_ERROR_UNINITIALIZED             1
#define NVML_ERROR_INVALID_ARGUMENT          2
#define NVML_ERROR_NOT_SUPPORTED             3
#define NVML_ERROR_NO_PERMISSION             4
#define NVML_ERROR_NOT_FOUND                 6
#define NVML_ERROR_INSUFFICIENT_SIZE         7
#define NVML_ERROR_DRIVER_NOT_LOADED         9
#define NVML_ERROR_FUNCTION_NOT_FOUND        13
#define NVML_ERROR_GPU_IS_LOST               15
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN                   999

#define NVML_DEVICE_NAME_V2_BUFFER_SIZE        96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE        96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80

/* usedGpuMemory is this when the driver cannot tell (e.g. Windows WDDM). */
#define NVML_VALUE_NOT_AVAILABLE_ULL (~0ULL)

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

#define NVML_STRUCT_VERSION(type, ver) ((unsigned int)(sizeof(type) | ((ver) << 24U)))
#define nvmlMemory_v2                  NVML_STRUCT_VERSION(nvmlMemory_v2_t, 2)

/* _v2 and _v3 of GetComputeRunningProcesses share this 24-byte layout. */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

/* The original (v1) layout, 16 bytes. */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef nvmlReturn_t (*nvmlInit_fn)(void);
typedef nvmlReturn_t (*nvmlShutdown_fn)(void);
typedef const char *(*nvmlErrorString_fn)(nvmlReturn_t result);
typedef nvmlReturn_t (*nvmlSystemGetDriverVersion_fn)(char *version, unsigned int length);
typedef nvmlReturn_t (*nvmlDeviceGetCount_fn)(unsigned int *count);
typedef nvmlReturn_t (*nvmlDeviceGetHandleByIndex_fn)(unsigned int index, nvmlDevice_t *device);
typedef nvmlReturn_t (*nvmlDeviceGetName_fn)(nvmlDevice_t device, char *name, unsigned int length);
typedef nvmlReturn_t (*nvmlDeviceGetUUID_fn)(nvmlDevice_t device, char *uuid, unsigned int length);
typedef nvmlReturn_t (*nvmlDeviceGetMemoryInfo_fn)(nvmlDevice_t device, nvmlMemory_t *memory);
typedef nvmlReturn_t (*nvmlDeviceGetMemoryInfo_v2_fn)(nvmlDevice_t device, nvmlMemory_v2_t *memory);
typedef nvmlReturn_t (*nvmlDeviceGetComputeRunningProcesses_fn)(nvmlDevice_t device,
                                                                unsigned int *infoCount,
                                                                nvmlProcessInfo_t *infos);
typedef nvmlReturn_t (*nvmlDeviceGetComputeRunningProcesses_v1_fn)(nvmlDevice_t device,
                                                                   unsigned int *infoCount,
                                                                   nvmlProcessInfo_v1_t *infos);

#endif
