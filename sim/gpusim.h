/*
 * gpusim.h - the functions gpusim exports: the driver API subset (libcuda.so.1),
 * the NVML subset (libnvidia-ml.so.1) and gpusim's own extensions. Types come
 * from src/gpu/gpu_abi.h, the same declarations the loaders use.
 *
 * Versioned names are the implementations; the plain names are aliases of
 * them (the real libraries export both).
 */
#ifndef GPUSIM_GPUSIM_H
#define GPUSIM_GPUSIM_H

#include "gpu/gpu_abi.h"
#include "sim.h"

/* ---- driver API ---- */

SIM_API CUresult cuInit(unsigned int flags);
SIM_API CUresult cuDriverGetVersion(int *version);
SIM_API CUresult cuDeviceGetCount(int *count);
SIM_API CUresult cuDeviceGet(CUdevice *device, int ordinal);
SIM_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
SIM_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev);
SIM_API CUresult cuDeviceTotalMem(size_t *bytes, CUdevice dev);
SIM_API CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev);
SIM_API CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev);
SIM_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
SIM_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev);
SIM_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev);
SIM_API CUresult cuCtxSetCurrent(CUcontext ctx);
SIM_API CUresult cuCtxGetCurrent(CUcontext *pctx);
SIM_API CUresult cuCtxSynchronize(void);
SIM_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize);
SIM_API CUresult cuMemAlloc(CUdeviceptr *dptr, size_t bytesize);
SIM_API CUresult cuMemFree_v2(CUdeviceptr dptr);
SIM_API CUresult cuMemFree(CUdeviceptr dptr);
SIM_API CUresult cuMemGetInfo_v2(size_t *free, size_t *total);
SIM_API CUresult cuMemGetInfo(size_t *free, size_t *total);
SIM_API CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int flags);
SIM_API CUresult cuMemFreeHost(void *p);
SIM_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n);
SIM_API CUresult cuMemcpyHtoD(CUdeviceptr dst, const void *src, size_t n);
SIM_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n);
SIM_API CUresult cuMemcpyDtoH(void *dst, CUdeviceptr src, size_t n);
SIM_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream stream);
SIM_API CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src, size_t n, CUstream stream);
SIM_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream stream);
SIM_API CUresult cuMemcpyDtoHAsync(void *dst, CUdeviceptr src, size_t n, CUstream stream);
SIM_API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t n);
SIM_API CUresult cuMemsetD8(CUdeviceptr dst, unsigned char value, size_t n);
SIM_API CUresult cuStreamCreate(CUstream *pstream, unsigned int flags);
SIM_API CUresult cuStreamSynchronize(CUstream stream);
SIM_API CUresult cuStreamDestroy_v2(CUstream stream);
SIM_API CUresult cuStreamDestroy(CUstream stream);
SIM_API CUresult cuGetErrorString(CUresult error, const char **pstr);
SIM_API CUresult cuGetErrorName(CUresult error, const char **pstr);
SIM_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                  cuuint64_t flags);
SIM_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                     cuuint64_t flags,
                                     CUdriverProcAddressQueryResult *symbolStatus);
SIM_API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);
SIM_API CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params_array, int num_params,
                                unsigned int flags, CUdevice dev);
SIM_API CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags,
                                CUdevice dev);
SIM_API CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev);
SIM_API CUresult cuCtxDestroy_v2(CUcontext ctx);
SIM_API CUresult cuCtxDestroy(CUcontext ctx);
SIM_API CUresult cuCtxGetDevice(CUdevice *device);
SIM_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width_bytes,
                                    size_t height, unsigned int element_bytes);
SIM_API CUresult cuMemAllocPitch(CUdeviceptr *dptr, size_t *pitch, size_t width_bytes,
                                 size_t height, unsigned int element_bytes);
SIM_API CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags);
SIM_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream stream);
SIM_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                         CUstream stream);
SIM_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream);
SIM_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                             const CUmemAllocationProp *prop, unsigned long long flags);
SIM_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle);
SIM_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment,
                                     CUdeviceptr addr, unsigned long long flags);
SIM_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size);
SIM_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                          CUmemGenericAllocationHandle handle, unsigned long long flags);
SIM_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size);
SIM_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,
                                size_t count);
SIM_API CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
                                               int option);

/* ---- NVML ---- */

SIM_API nvmlReturn_t nvmlInit_v2(void);
SIM_API nvmlReturn_t nvmlInit(void);
SIM_API nvmlReturn_t nvmlShutdown(void);
SIM_API const char *nvmlErrorString(nvmlReturn_t result);
SIM_API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length);
SIM_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count);
SIM_API nvmlReturn_t nvmlDeviceGetCount(unsigned int *count);
SIM_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device);
SIM_API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device);
SIM_API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index);
SIM_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length);
SIM_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length);
SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory);
SIM_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                             unsigned int *infoCount,
                                                             nvmlProcessInfo_t *infos);
SIM_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device,
                                                             unsigned int *infoCount,
                                                             nvmlProcessInfo_t *infos);
SIM_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device,
                                                          unsigned int *infoCount,
                                                          nvmlProcessInfo_v1_t *infos);

/* ---- gpusim extensions (libnvidia-ml.so.1; need nvmlInit) ---- */

/* OOM answers (allocations and contexts that did not fit) on device dev so far. */
SIM_API nvmlReturn_t gpusimGetOomCount(unsigned int dev, unsigned long long *count);
/* The shared state file this process uses (GPUSIM_STATE or its default), so that
 * a program can start others on the same simulated GPU. */
SIM_API nvmlReturn_t gpusimGetStatePath(char *path, unsigned int length);
/* Bytes freed on dev that are not available yet (GPUSIM_FREE_LAG_MS). */
SIM_API nvmlReturn_t gpusimGetLaggedBytes(unsigned int dev, unsigned long long *bytes);
/*
 * Test hook: locks the shared state, writes one byte to notify_fd (if >= 0),
 * holds the lock for hold_ms and unlocks. A test kills the caller meanwhile to
 * check that a dead lock holder does not wedge the others.
 */
SIM_API nvmlReturn_t gpusimTestHoldLock(int notify_fd, unsigned int hold_ms);

#endif
