/*
 * alloc_prog.c - an unmodified CUDA program for the interposer's tests: it knows
 * nothing of gpucoord. It opens the driver as the CUDA runtime does (dlopen, then
 * dlsym, or cuGetProcAddress for everything) and allocates the ways real programs
 * do. Works on gpusim and on the real driver.
 *
 *   alloc-prog MODE SIZE [CHUNK] [--hold] [--repeat N] [--threads N]
 *
 * MODE: segments    cuMemAlloc_v2 in CHUNK segments (a caching allocator's blocks)
 *       vmm         one reserved range, cuMemCreate + cuMemMap + cuMemSetAccess per
 *                   CHUNK (PyTorch's expandable segments)
 *       procaddr    like segments, every function found through cuGetProcAddress_v2
 *       async       cuMemAllocAsync / cuMemFreeAsync on a stream
 *       pitch       cuMemAllocPitch_v2 rows of CHUNK bytes
 *       managed     cuMemAllocManaged
 *       loop        allocate SIZE and free it, --repeat times
 *       fork        allocate SIZE, fork: the child's allocation (4 x CHUNK) must not
 *                   reach the parent's lease; then the parent allocates CHUNK more
 *       ctx-v2, ctx-v3, ctx-v4
 *                   no allocation: a context made with cuCtxCreate_v2, _v3 (execution
 *                   affinity) or _v4 (creation parameters) instead of the primary one
 * --threads N: N threads each allocate SIZE/N in CHUNK pieces and free them.
 * --hold: after allocating print "ready" and wait for stdin to close.
 * Prints "ok <bytes>" and exits 0, or "error <step> <code>" and exits 2 when the
 * driver answers CUDA_ERROR_OUT_OF_MEMORY, 1 for any other failure.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu/gpu_abi.h"

#define MAX_PIECES 65536

static struct {
    cuInit_fn init;
    cuDeviceGet_fn device_get;
    cuDevicePrimaryCtxRetain_fn retain;
    cuCtxSetCurrent_fn set_current;
    cuMemAlloc_fn alloc;
    cuMemFree_fn free;
    cuMemAllocAsync_fn alloc_async;
    cuMemFreeAsync_fn free_async;
    cuMemAllocPitch_fn alloc_pitch;
    cuMemAllocManaged_fn alloc_managed;
    cuStreamCreate_fn stream_create;
    cuMemCreate_fn create;
    cuMemRelease_fn release;
    cuMemAddressReserve_fn reserve;
    cuMemMap_fn map;
    cuMemSetAccess_fn set_access;
    cuMemGetAllocationGranularity_fn granularity;
    cuCtxCreate_fn ctx_create_v2;
    cuCtxCreate_v3_fn ctx_create_v3;
    cuCtxCreate_v4_fn ctx_create_v4;
} cu;

static CUcontext ctx;

static int fail(const char *step, CUresult rc)
{
    printf("error %s %d\n", step, rc);
    fflush(stdout);
    exit(rc == CUDA_ERROR_OUT_OF_MEMORY ? 2 : 1);
}

#define CHECK(step, call)                                                                          \
    do {                                                                                           \
        CUresult rc_ = (call);                                                                     \
        if (rc_ != CUDA_SUCCESS)                                                                   \
            fail(step, rc_);                                                                       \
    } while (0)

static void load(const char *mode)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    cuGetProcAddress_v2_fn gpa;

    if (lib == NULL) {
        printf("error dlopen %s\n", dlerror());
        exit(1);
    }
#define FIND(field, name) *(void **)&cu.field = dlsym(lib, name)
    if (strcmp(mode, "procaddr") == 0) {
        /* The runtime's way: only cuGetProcAddress by name, the rest through it,
         * by plain name with the version the program was built for. */
        gpa = (cuGetProcAddress_v2_fn)dlsym(lib, "cuGetProcAddress_v2");
        if (gpa == NULL)
            fail("dlsym-cuGetProcAddress_v2", CUDA_ERROR_NOT_FOUND);
#define GPA(field, name)                                                                           \
    CHECK("cuGetProcAddress " name, gpa(name, (void **)&cu.field, 12000, 0, NULL))
        GPA(init, "cuInit");
        GPA(device_get, "cuDeviceGet");
        GPA(retain, "cuDevicePrimaryCtxRetain");
        GPA(set_current, "cuCtxSetCurrent");
        GPA(alloc, "cuMemAlloc");
        GPA(free, "cuMemFree");
        return;
    }
    FIND(init, "cuInit");
    FIND(device_get, "cuDeviceGet");
    FIND(retain, "cuDevicePrimaryCtxRetain");
    FIND(set_current, "cuCtxSetCurrent");
    FIND(alloc, "cuMemAlloc_v2");
    FIND(free, "cuMemFree_v2");
    FIND(alloc_async, "cuMemAllocAsync");
    FIND(free_async, "cuMemFreeAsync");
    FIND(alloc_pitch, "cuMemAllocPitch_v2");
    FIND(alloc_managed, "cuMemAllocManaged");
    FIND(stream_create, "cuStreamCreate");
    FIND(create, "cuMemCreate");
    FIND(release, "cuMemRelease");
    FIND(reserve, "cuMemAddressReserve");
    FIND(map, "cuMemMap");
    FIND(set_access, "cuMemSetAccess");
    FIND(granularity, "cuMemGetAllocationGranularity");
    FIND(ctx_create_v2, "cuCtxCreate_v2");
    FIND(ctx_create_v3, "cuCtxCreate_v3");
    FIND(ctx_create_v4, "cuCtxCreate_v4");
}

static void setup(const char *mode)
{
    CUdevice dev;

    CHECK("cuInit", cu.init(0));
    CHECK("cuDeviceGet", cu.device_get(&dev, 0));
    if (strcmp(mode, "ctx-v2") == 0 && cu.ctx_create_v2 != NULL) {
        CHECK("cuCtxCreate_v2", cu.ctx_create_v2(&ctx, 0, dev));
        return;
    }
    if (strcmp(mode, "ctx-v3") == 0 && cu.ctx_create_v3 != NULL) {
        CHECK("cuCtxCreate_v3", cu.ctx_create_v3(&ctx, NULL, 0, 0, dev));
        return;
    }
    if (strcmp(mode, "ctx-v4") == 0 && cu.ctx_create_v4 != NULL) {
        CHECK("cuCtxCreate_v4", cu.ctx_create_v4(&ctx, NULL, 0, dev));
        return;
    }
    if (strncmp(mode, "ctx-", 4) == 0)
        fail("dlsym-cuCtxCreate", CUDA_ERROR_NOT_FOUND);
    CHECK("cuDevicePrimaryCtxRetain", cu.retain(&ctx, dev));
    CHECK("cuCtxSetCurrent", cu.set_current(ctx));
}

static uint64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    uint64_t unit = 1;

    if (strcmp(end, "Ki") == 0)
        unit = 1ULL << 10;
    else if (strcmp(end, "Mi") == 0)
        unit = 1ULL << 20;
    else if (strcmp(end, "Gi") == 0)
        unit = 1ULL << 30;
    return (uint64_t)(v * (double)unit);
}

static CUdeviceptr pieces[MAX_PIECES];

static uint64_t segments(uint64_t size, uint64_t chunk)
{
    uint64_t done = 0;
    unsigned n = 0;

    while (done < size && n < MAX_PIECES) {
        uint64_t b = size - done < chunk ? size - done : chunk;
        CHECK("cuMemAlloc", cu.alloc(&pieces[n++], b));
        done += b;
    }
    return done;
}

static uint64_t vmm(uint64_t size, uint64_t chunk)
{
    CUmemAllocationProp prop;
    CUmemAccessDesc access;
    CUdeviceptr base;
    size_t gran;
    uint64_t done = 0;

    memset(&prop, 0, sizeof(prop));
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    CHECK("cuMemGetAllocationGranularity",
          cu.granularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    chunk = (chunk + gran - 1) / gran * gran;
    size = (size + chunk - 1) / chunk * chunk;
    /* Expandable segments reserve far more address space than they map. */
    CHECK("cuMemAddressReserve", cu.reserve(&base, 2 * size, 0, 0, 0));
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    while (done < size) {
        CUmemGenericAllocationHandle h;
        CHECK("cuMemCreate", cu.create(&h, chunk, &prop, 0));
        CHECK("cuMemMap", cu.map(base + done, chunk, 0, h, 0));
        CHECK("cuMemSetAccess", cu.set_access(base + done, chunk, &access, 1));
        done += chunk;
    }
    return done;
}

struct thread_arg {
    uint64_t size, chunk;
    CUresult rc;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    CUdeviceptr mine[4096];
    unsigned n = 0;

    a->rc = cu.set_current(ctx);
    for (uint64_t done = 0; a->rc == CUDA_SUCCESS && done < a->size && n < 4096; done += a->chunk)
        a->rc = cu.alloc(&mine[n++], a->chunk);
    if (a->rc != CUDA_SUCCESS)
        n--;
    for (unsigned i = 0; i < n; i++)
        cu.free(mine[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode;
    uint64_t size, chunk, done = 0;
    int hold = 0, repeat = 1, threads = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: alloc-prog MODE SIZE [CHUNK] [--hold] [--repeat N] "
                        "[--threads N]\n");
        return 1;
    }
    mode = argv[1];
    size = parse_size(argv[2]);
    chunk = argc > 3 && argv[3][0] != '-' ? parse_size(argv[3]) : size;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--hold") == 0)
            hold = 1;
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
    }
    load(mode);
    setup(mode);

    if (threads > 0) {
        pthread_t t[64];
        struct thread_arg a[64];
        if (threads > 64)
            threads = 64;
        for (int k = 0; k < repeat; k++) {
            for (int i = 0; i < threads; i++) {
                a[i] = (struct thread_arg){size / (uint64_t)threads, chunk, 0};
                pthread_create(&t[i], NULL, thread_main, &a[i]);
            }
            for (int i = 0; i < threads; i++) {
                pthread_join(t[i], NULL);
                if (a[i].rc != CUDA_SUCCESS)
                    fail("thread-cuMemAlloc", a[i].rc);
            }
        }
        done = size;
    } else if (strncmp(mode, "ctx-", 4) == 0) {
        done = 0; /* the context alone */
    } else if (strcmp(mode, "segments") == 0 || strcmp(mode, "procaddr") == 0) {
        done = segments(size, chunk);
    } else if (strcmp(mode, "vmm") == 0) {
        done = vmm(size, chunk);
    } else if (strcmp(mode, "async") == 0) {
        CUstream s;
        CUdeviceptr p;
        CHECK("cuStreamCreate", cu.stream_create(&s, 0));
        CHECK("cuMemAllocAsync", cu.alloc_async(&p, size, s));
        done = size;
        if (!hold)
            CHECK("cuMemFreeAsync", cu.free_async(p, s));
    } else if (strcmp(mode, "pitch") == 0) {
        CUdeviceptr p;
        size_t pitch;
        CHECK("cuMemAllocPitch", cu.alloc_pitch(&p, &pitch, chunk, size / chunk, 4));
        done = (uint64_t)pitch * (size / chunk);
    } else if (strcmp(mode, "managed") == 0) {
        CUdeviceptr p;
        CHECK("cuMemAllocManaged", cu.alloc_managed(&p, size, CU_MEM_ATTACH_GLOBAL));
        done = size;
    } else if (strcmp(mode, "loop") == 0) {
        for (int i = 0; i < repeat; i++) {
            CUdeviceptr p;
            CHECK("cuMemAlloc", cu.alloc(&p, size));
            CHECK("cuMemFree", cu.free(p));
        }
        done = size;
    } else if (strcmp(mode, "fork") == 0) {
        CUdeviceptr p;
        pid_t child;
        int status = 0;
        done = segments(size, size);
        fflush(stdout);
        child = fork();
        if (child == 0) {
            /* The driver cannot be used across fork: this must fail, and must not
             * touch the parent's lease (four times the parent's last step, so that a
             * growth asked for by the child would show). */
            CUresult rc = cu.alloc(&p, 4 * chunk);
            printf("child %d\n", rc);
            fflush(stdout);
            _exit(rc == CUDA_SUCCESS ? 1 : 0);
        }
        waitpid(child, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail("fork-child", CUDA_ERROR_UNKNOWN);
        CHECK("cuMemAlloc-after-fork", cu.alloc(&p, chunk));
        done += chunk;
    } else {
        fprintf(stderr, "alloc-prog: unknown mode '%s'\n", mode);
        return 1;
    }
    printf("ok %llu\n", (unsigned long long)done);
    fflush(stdout);
    if (hold) {
        char buf[64];
        printf("ready pid=%d\n", (int)getpid());
        fflush(stdout);
        while (fread(buf, 1, sizeof(buf), stdin) > 0)
            ;
    }
    return 0;
}
