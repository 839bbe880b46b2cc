/*
 * test_gpusim_api.c - the driver surface real runtimes use beyond the basics:
 * cuGetProcAddress (both versions, versioned answers), cuCtxCreate/cuCtxDestroy,
 * the virtual-memory API, stream-ordered, pitched and managed allocation, each
 * charged in the shared accounting and answering the real driver's error codes.
 */
#include "harness.h"

#include "gpusim.h"
#include "simtest.h"

#define CTX_300MI (300 * MiB)
#define GRAN      (2 * MiB)

static CUcontext setup(void)
{
    CUcontext ctx = NULL;
    CUdevice d;

    simtest_env(NULL, NULL);
    ASSERT_EQ_INT(cuInit(0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuDeviceGet(&d, 0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuDevicePrimaryCtxRetain(&ctx, d), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    return ctx;
}

static uint64_t used_bytes(void)
{
    size_t f = 0, t = 0;

    ASSERT_EQ_INT(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    return t - f;
}

static CUmemAllocationProp device_prop(int dev)
{
    CUmemAllocationProp p;

    memset(&p, 0, sizeof(p));
    p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    p.location.id = dev;
    return p;
}

TEST(get_proc_address_answers_the_versioned_symbol)
{
    void *fn = NULL;
    CUdriverProcAddressQueryResult st = -1;

    simtest_env(NULL, NULL);
    /* Works before cuInit: a runtime finds cuInit with it. */
    ASSERT_EQ_INT(cuGetProcAddress_v2("cuInit", &fn, 12000, 0, &st), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuInit);
    ASSERT_EQ_INT(st, CU_GET_PROC_ADDRESS_SUCCESS);
    ASSERT_EQ_INT(cuGetProcAddress_v2("cuMemAlloc", &fn, 12000, 0, &st), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuMemAlloc_v2);
    ASSERT_EQ_INT(cuGetProcAddress("cuMemFree", &fn, 12000, 0), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuMemFree_v2);
    ASSERT_EQ_INT(cuGetProcAddress("cuGetProcAddress", &fn, 12000, 0), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuGetProcAddress_v2);
    ASSERT_EQ_INT(cuGetProcAddress("cuGetProcAddress", &fn, 11080, 0), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuGetProcAddress);
    ASSERT_EQ_INT(cuGetProcAddress("cuCtxCreate", &fn, 12000, 0), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuCtxCreate_v2);
    ASSERT_EQ_INT(cuGetProcAddress("cuCtxCreate", &fn, 13000, 0), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuCtxCreate_v4); /* what cuCtxCreate means from CUDA 13 */
    ASSERT_EQ_INT(cuGetProcAddress("cuCtxCreate", &fn, 3000, 0), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuCtxCreate);
    ASSERT_EQ_INT(cuGetProcAddress("cuMemCreate", &fn, 12000, 0), CUDA_SUCCESS);
    ASSERT(fn == (void *)cuMemCreate);
    ASSERT_EQ_INT(cuGetProcAddress("cuMemAllocAsync", &fn, 12000,
                                   CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM),
                  CUDA_SUCCESS);
    ASSERT(fn == (void *)cuMemAllocAsync);
    /* Unknown: NULL, CUDA_ERROR_NOT_FOUND and the status says why. */
    fn = (void *)1;
    ASSERT_EQ_INT(cuGetProcAddress_v2("cuNoSuchThing", &fn, 12000, 0, &st), CUDA_ERROR_NOT_FOUND);
    ASSERT(fn == NULL);
    ASSERT_EQ_INT(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    ASSERT_EQ_INT(cuGetProcAddress("cuInit", NULL, 12000, 0), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuGetProcAddress("cuInit", &fn, 12000, 7), CUDA_ERROR_INVALID_VALUE);
    simtest_cleanup();
}

TEST(ctx_create_charges_the_context_and_destroy_frees_it)
{
    CUcontext ctx = NULL, cur = NULL;
    CUdevice dev = -1;

    simtest_env(NULL, NULL);
    ASSERT_EQ_INT(cuInit(0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuCtxCreate_v2(&ctx, 0, 0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuCtxGetCurrent(&cur), CUDA_SUCCESS);
    ASSERT(cur == ctx);
    ASSERT_EQ_INT(cuCtxGetDevice(&dev), CUDA_SUCCESS);
    ASSERT_EQ_INT(dev, 0);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI);
    ASSERT_EQ_INT(cuCtxDestroy_v2(ctx), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuCtxDestroy_v2(ctx), CUDA_ERROR_INVALID_CONTEXT);
    ASSERT_EQ_INT(cuCtxDestroy_v2((CUcontext)&dev), CUDA_ERROR_INVALID_CONTEXT);
    ASSERT_EQ_INT(cuCtxGetDevice(&dev), CUDA_ERROR_INVALID_CONTEXT);
    ASSERT_EQ_INT(cuCtxCreate_v2(&ctx, 0, 7), CUDA_ERROR_INVALID_DEVICE);
    /* _v3 and _v4 make the same context; their parameters are checked, not applied. */
    ASSERT_EQ_INT(cuCtxCreate_v3(&ctx, NULL, 1, 0, 0), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuCtxCreate_v3(&ctx, NULL, 0, 0, 0), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI);
    ASSERT_EQ_INT(cuCtxDestroy_v2(ctx), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuCtxCreate_v4(&ctx, NULL, 0, 0), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI);
    ASSERT_EQ_INT(cuCtxDestroy_v2(ctx), CUDA_SUCCESS);
    simtest_cleanup();
}

TEST(vmm_create_map_unmap_release)
{
    CUmemAllocationProp prop;
    CUmemAccessDesc access;
    CUmemGenericAllocationHandle h1 = 0, h2 = 0;
    CUdeviceptr va = 0;
    size_t gran = 0;
    unsigned char byte = 0;

    setup();
    prop = device_prop(0);
    ASSERT_EQ_INT(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
                  CUDA_SUCCESS);
    ASSERT_EQ_U64(gran, GRAN);
    /* Physical memory is charged at cuMemCreate, as on the real card. */
    ASSERT_EQ_INT(cuMemCreate(&h1, 10 * GRAN, &prop, 0), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI + 10 * GRAN);
    ASSERT_EQ_INT(cuMemCreate(&h2, 6 * GRAN, &prop, 0), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI + 16 * GRAN);
    /* Address space costs nothing. */
    ASSERT_EQ_INT(cuMemAddressReserve(&va, 64 * GRAN, 0, 0, 0), CUDA_SUCCESS);
    ASSERT(va % GRAN == 0);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI + 16 * GRAN);
    ASSERT_EQ_INT(cuMemMap(va, 10 * GRAN, 0, h1, 0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemMap(va + 10 * GRAN, 6 * GRAN, 0, h2, 0), CUDA_SUCCESS);
    /* Overlap, outside the reservation, bad handle, offset: refused. */
    ASSERT_EQ_INT(cuMemMap(va, 2 * GRAN, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemMap(va + 63 * GRAN, 2 * GRAN, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemMap(va + 20 * GRAN, 2 * GRAN, 0, 999, 0), CUDA_ERROR_INVALID_HANDLE);
    ASSERT_EQ_INT(cuMemMap(va + 20 * GRAN, 2 * GRAN, GRAN, h2, 0), CUDA_ERROR_INVALID_VALUE);
    access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    access.location.id = 0;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    ASSERT_EQ_INT(cuMemSetAccess(va, 16 * GRAN, &access, 1), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemSetAccess(va, 16 * GRAN, NULL, 1), CUDA_ERROR_INVALID_VALUE);
    /* Mapped memory takes copies; it is not cuMemFree's to free. */
    ASSERT_EQ_INT(cuMemcpyHtoD_v2(va + 11 * GRAN, &byte, 1), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFree_v2(va), CUDA_ERROR_INVALID_VALUE);
    /* Released while mapped: freed only at the unmap. */
    ASSERT_EQ_INT(cuMemRelease(h1), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI + 16 * GRAN);
    ASSERT_EQ_INT(cuMemRelease(h1), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemAddressFree(va, 64 * GRAN), CUDA_ERROR_INVALID_VALUE); /* still mapped */
    ASSERT_EQ_INT(cuMemUnmap(va, 3 * GRAN), CUDA_ERROR_INVALID_VALUE);        /* part of one */
    ASSERT_EQ_INT(cuMemUnmap(va, 16 * GRAN), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI + 6 * GRAN);
    ASSERT_EQ_INT(cuMemRelease(h2), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI);
    ASSERT_EQ_INT(cuMemAddressFree(va, 64 * GRAN), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemAddressFree(va, 64 * GRAN), CUDA_ERROR_INVALID_VALUE);
    simtest_cleanup();
}

TEST(vmm_bad_arguments_and_out_of_memory)
{
    CUmemAllocationProp prop;
    CUmemGenericAllocationHandle h = 0;
    CUdeviceptr va = 0;
    size_t gran = 0;

    setup();
    prop = device_prop(0);
    ASSERT_EQ_INT(cuMemCreate(&h, GRAN + 1, &prop, 0), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemCreate(&h, GRAN, NULL, 0), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemCreate(&h, GRAN, &prop, 1), CUDA_ERROR_INVALID_VALUE);
    prop.location.id = 5;
    ASSERT_EQ_INT(cuMemCreate(&h, GRAN, &prop, 0), CUDA_ERROR_INVALID_DEVICE);
    ASSERT_EQ_INT(cuMemGetAllocationGranularity(&gran, &prop, 0), CUDA_ERROR_INVALID_DEVICE);
    prop = device_prop(0);
    ASSERT_EQ_INT(cuMemGetAllocationGranularity(&gran, &prop, 9), CUDA_ERROR_INVALID_VALUE);
    /* Beyond the card: out of memory, and nothing charged. */
    ASSERT_EQ_INT(cuMemCreate(&h, 12800 * GRAN, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI);
    ASSERT_EQ_INT(cuMemAddressReserve(&va, GRAN + 1, 0, 0, 0), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemAddressReserve(&va, GRAN, 3, 0, 0), CUDA_ERROR_INVALID_VALUE);
    /* Address space beyond the card's memory is fine: only mapping needs memory. */
    ASSERT_EQ_INT(cuMemAddressReserve(&va, 64 * GiB, 0, 0, 0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemAddressFree(va, 64 * GiB), CUDA_SUCCESS);
    simtest_cleanup();
}

TEST(stream_ordered_pitched_and_managed_allocations_are_charged)
{
    CUdeviceptr a = 0, b = 0, c = 0;
    CUstream s = NULL;
    size_t pitch = 0;

    setup();
    ASSERT_EQ_INT(cuStreamCreate(&s, 0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemAllocAsync(&a, 1 * GiB, s), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI + 1 * GiB);
    ASSERT_EQ_INT(cuMemAllocAsync(&b, 1 * GiB, (CUstream)&pitch), CUDA_ERROR_INVALID_HANDLE);
    ASSERT_EQ_INT(cuMemAllocFromPoolAsync(&b, 1 * GiB, NULL, s), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemFreeAsync(a, s), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFreeAsync(a, s), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI);
    ASSERT_EQ_INT(cuMemAllocPitch_v2(&b, &pitch, 1000, 1024, 4), CUDA_SUCCESS);
    ASSERT_EQ_U64(pitch, 1024);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI + 1024 * 1024);
    ASSERT_EQ_INT(cuMemAllocPitch_v2(&b, &pitch, 1000, 1024, 3), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemAllocManaged(&c, 1 * GiB, CU_MEM_ATTACH_GLOBAL), CUDA_SUCCESS);
    ASSERT_EQ_U64(used_bytes(), CTX_300MI + 1024 * 1024 + 1 * GiB);
    ASSERT_EQ_INT(cuMemAllocManaged(&c, 1 * GiB, 4), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemAllocManaged(&c, 30 * GiB, CU_MEM_ATTACH_GLOBAL), CUDA_ERROR_OUT_OF_MEMORY);
    ASSERT_EQ_INT(cuStreamDestroy_v2(s), CUDA_SUCCESS);
    simtest_cleanup();
}
