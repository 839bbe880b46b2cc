/*
 * test_gpusim.c - gpusim's contract (DESIGN.md section 6): shared accounting
 * across processes, OOM, process death (zombies hold nothing), NVML layouts,
 * the lag and bandwidth knobs, backed and accounting-only memory, concurrency,
 * the robust lock, device-config rules and the driver API's error answers.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpusim.h"
#include "simtest.h"

#define CTX_300MI (300 * MiB)

/* A measured duration of about expect_s seconds: never shorter (less 10 ms of
 * clock slack), and not much longer even on a loaded machine. */
#define ASSERT_DURATION(seconds, expect_s)                                                         \
    do {                                                                                           \
        double d_ = (seconds);                                                                     \
        ASSERT_CMP_INT(d_ * 1000, >=, (expect_s)*1000 - 10);                                       \
        ASSERT_CMP_INT(d_ * 1000, <, (expect_s)*1000 + 400);                                       \
    } while (0)
/* GPUSIM_FREE_LAG_MS=300 measured from the free, polling every 10 ms. */
#define ASSERT_LAG(seconds) ASSERT_DURATION((seconds) + 0.02, 0.3)

/* cuInit, device dev, its primary context made current. */
static CUcontext cuda_setup(unsigned dev)
{
    CUcontext ctx = NULL;
    CUdevice d;

    ASSERT_EQ_INT(cuInit(0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuDeviceGet(&d, (int)dev), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuDevicePrimaryCtxRetain(&ctx, d), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    return ctx;
}

static size_t cuda_free_bytes(void)
{
    size_t f = 0, t = 0;

    ASSERT_EQ_INT(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    return f;
}

/* The one-letter state of pid in /proc/PID/stat ('Z' for a zombie). */
static char proc_state(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return '?';
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' ? p[2] : '?';
}

TEST(two_processes_see_each_other)
{
    struct simtest_report ra, rb;
    uint64_t cap = 24564ULL * MiB;
    pid_t a, b;

    simtest_env(NULL, NULL); /* the defaults: one RTX 4090, 300Mi contexts */
    a = simtest_holder(0, 1 * GiB, 0, &ra);
    b = simtest_holder(0, 2 * GiB, 0, &rb);
    ASSERT_EQ_INT(ra.rc, CUDA_SUCCESS);
    ASSERT_EQ_INT(rb.rc, CUDA_SUCCESS);
    /* b's cuMemGetInfo sees a's context and allocation as well as its own. */
    ASSERT_EQ_U64(rb.total_bytes, cap);
    ASSERT_EQ_U64(rb.free_bytes, cap - 2 * CTX_300MI - 3 * GiB);
    ASSERT_EQ_U64(ra.free_bytes, cap - CTX_300MI - 1 * GiB);

    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    ASSERT_EQ_U64(simtest_nvml_used(0), 2 * CTX_300MI + 3 * GiB);
    ASSERT_EQ_INT(simtest_nvml_nprocs(0), 2);
    ASSERT_EQ_U64(simtest_nvml_proc_bytes(0, a), CTX_300MI + 1 * GiB);
    ASSERT_EQ_U64(simtest_nvml_proc_bytes(0, b), CTX_300MI + 2 * GiB);

    simtest_holder_stop(a);
    ASSERT_EQ_U64(simtest_nvml_used(0), CTX_300MI + 2 * GiB);
    ASSERT_EQ_U64(simtest_nvml_proc_bytes(0, a), UINT64_MAX);
    simtest_holder_stop(b);
    ASSERT_EQ_U64(simtest_nvml_used(0), 0);
    ASSERT_EQ_INT(simtest_nvml_nprocs(0), 0);
    ASSERT_EQ_U64(simtest_oom_count(0), 0);
    simtest_cleanup();
}

TEST(allocation_past_capacity_is_oom_and_counted)
{
    struct simtest_report ra, rb;
    CUdeviceptr p, q, one;
    pid_t a, b;

    simtest_env("1Gi", "300Mi");
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    ASSERT_EQ_U64(simtest_oom_count(0), 0);
    /* A fills the card exactly; then B's context does not fit. */
    a = simtest_holder(0, 724 * MiB, 0, &ra);
    ASSERT_EQ_INT(ra.rc, CUDA_SUCCESS);
    ASSERT_EQ_U64(ra.free_bytes, 0);
    b = simtest_holder(0, 0, 0, &rb);
    ASSERT_EQ_INT(rb.rc, CUDA_ERROR_OUT_OF_MEMORY);
    ASSERT_EQ_U64(simtest_oom_count(0), 1);
    ASSERT_EQ_INT(simtest_nvml_nprocs(0), 1);
    simtest_holder_stop(b);
    simtest_holder_stop(a);

    /* Within one process (holders must fork before this process's cuInit). */
    cuda_setup(0);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 800 * MiB), CUDA_ERROR_OUT_OF_MEMORY);
    ASSERT_EQ_U64(simtest_oom_count(0), 2);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 700 * MiB), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemAlloc_v2(&q, 24 * MiB), CUDA_SUCCESS); /* exactly full */
    ASSERT_EQ_U64(cuda_free_bytes(), 0);
    ASSERT_EQ_INT(cuMemAlloc_v2(&one, 1), CUDA_ERROR_OUT_OF_MEMORY);
    ASSERT_EQ_U64(simtest_oom_count(0), 3);
    ASSERT_EQ_INT(cuMemFree_v2(q), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemAlloc_v2(&one, 1), CUDA_SUCCESS);
    ASSERT_EQ_U64(simtest_oom_count(0), 3);
    ASSERT_EQ_U64(simtest_nvml_used(0), 1000 * MiB + 1);
    simtest_cleanup();
}

TEST(killed_process_memory_returns_before_reap)
{
    struct simtest_report r;
    siginfo_t info;
    pid_t pid;

    simtest_env("8Gi", "300Mi");
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    pid = simtest_holder(0, 2 * GiB, 256 * MiB, &r);
    ASSERT_EQ_INT(r.rc, CUDA_SUCCESS);
    ASSERT_EQ_U64(simtest_nvml_used(0), CTX_300MI + 2 * GiB);

    ASSERT_EQ_INT(kill(pid, SIGKILL), 0);
    /* Wait for the death but leave the zombie unreaped. */
    memset(&info, 0, sizeof(info));
    ASSERT_EQ_INT(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
    ASSERT_EQ_INT(proc_state(pid), 'Z');
    ASSERT_EQ_U64(simtest_nvml_used(0), 0);
    ASSERT_EQ_INT(simtest_nvml_nprocs(0), 0);
    ASSERT_EQ_INT(proc_state(pid), 'Z'); /* still a zombie: nothing reaped it */
    waitpid(pid, NULL, 0);
    simtest_cleanup();
}

TEST(forked_child_without_exec_keeps_memory)
{
    int fds[2];
    pid_t holder, keeper, parent = getpid();

    simtest_env("8Gi", "300Mi");
    /* The keeper, orphaned below, becomes our child so that we can reap it. */
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ASSERT_EQ_INT(pipe(fds), 0);
    holder = fork();
    ASSERT(holder >= 0);
    if (holder == 0) {
        CUdeviceptr p;
        int st;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        cuda_setup(0);
        if (cuMemAlloc_v2(&p, 1 * GiB) != CUDA_SUCCESS)
            _exit(2);
        /* A child forked after cuInit cannot use the driver... */
        keeper = fork();
        if (keeper == 0)
            _exit(cuMemAlloc_v2(&p, 1) == CUDA_ERROR_NOT_INITIALIZED ? 0 : 9);
        waitpid(keeper, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            _exit(3);
        /* ...but shares the driver's descriptor, like the real /dev/nvidia*. */
        keeper = fork();
        if (keeper == 0) {
            alarm(30); /* never outlive a failed test for long */
            for (;;)
                pause();
        }
        if (write(fds[1], &keeper, sizeof(keeper)) != sizeof(keeper))
            _exit(4);
        for (;;)
            pause();
    }
    close(fds[1]);
    ASSERT_EQ_INT(read(fds[0], &keeper, sizeof(keeper)), sizeof(keeper));
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    ASSERT_EQ_U64(simtest_nvml_proc_bytes(0, holder), CTX_300MI + 1 * GiB);

    simtest_kill(holder);
    /* The keeper holds the descriptor, so the memory stays while it lives. */
    ASSERT_EQ_U64(simtest_nvml_proc_bytes(0, holder), CTX_300MI + 1 * GiB);
    simtest_kill(keeper);
    ASSERT_EQ_INT(simtest_nvml_nprocs(0), 0);
    ASSERT_EQ_U64(simtest_nvml_used(0), 0);
    simtest_cleanup();
}

TEST(nvml_process_lists_v1_v2_v3)
{
    struct simtest_report ra, rb;
    nvmlProcessInfo_v1_t v1[4];
    nvmlProcessInfo_t v3[4];
    nvmlDevice_t dev;
    unsigned count;
    pid_t a, b;

    _Static_assert(sizeof(nvmlProcessInfo_v1_t) == 16, "v1 layout");
    _Static_assert(sizeof(nvmlProcessInfo_t) == 24, "v2/v3 layout");
    simtest_env("8Gi", "100Mi");
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex_v2(0, &dev), NVML_SUCCESS);

    /* No process yet: a count of 0 and no buffer is a complete answer. */
    count = 0;
    ASSERT_EQ_INT(nvmlDeviceGetComputeRunningProcesses_v3(dev, &count, NULL), NVML_SUCCESS);
    ASSERT_EQ_INT(count, 0);

    a = simtest_holder(0, 1 * GiB, 0, &ra);
    b = simtest_holder(0, 512 * MiB, 0, &rb);
    ASSERT_EQ_INT(ra.rc, 0);
    ASSERT_EQ_INT(rb.rc, 0);

    nvmlReturn_t (*fns[2])(nvmlDevice_t, unsigned *, nvmlProcessInfo_t *) = {
        nvmlDeviceGetComputeRunningProcesses_v3, nvmlDeviceGetComputeRunningProcesses_v2};
    for (int f = 0; f < 2; f++) {
        count = 0;
        ASSERT_EQ_INT(fns[f](dev, &count, NULL), NVML_ERROR_INSUFFICIENT_SIZE);
        ASSERT_EQ_INT(count, 2);
        count = 1;
        ASSERT_EQ_INT(fns[f](dev, &count, v3), NVML_ERROR_INSUFFICIENT_SIZE);
        ASSERT_EQ_INT(count, 2);
        memset(v3, 0x5a, sizeof(v3));
        count = 4;
        ASSERT_EQ_INT(fns[f](dev, &count, v3), NVML_SUCCESS);
        ASSERT_EQ_INT(count, 2);
        for (unsigned i = 0; i < 2; i++) {
            ASSERT(v3[i].pid == (unsigned)a || v3[i].pid == (unsigned)b);
            ASSERT_EQ_U64(v3[i].usedGpuMemory,
                          v3[i].pid == (unsigned)a ? 100 * MiB + 1 * GiB : 612 * MiB);
            ASSERT_EQ_U64(v3[i].gpuInstanceId, 0xFFFFFFFFu);
            ASSERT_EQ_U64(v3[i].computeInstanceId, 0xFFFFFFFFu);
        }
        ASSERT(v3[0].pid != v3[1].pid);
        ASSERT_EQ_U64(v3[2].pid, 0x5a5a5a5au); /* nothing written past count */
    }

    count = 1;
    ASSERT_EQ_INT(nvmlDeviceGetComputeRunningProcesses(dev, &count, v1),
                  NVML_ERROR_INSUFFICIENT_SIZE);
    ASSERT_EQ_INT(count, 2);
    memset(v1, 0x5a, sizeof(v1));
    count = 4;
    ASSERT_EQ_INT(nvmlDeviceGetComputeRunningProcesses(dev, &count, v1), NVML_SUCCESS);
    ASSERT_EQ_INT(count, 2);
    for (unsigned i = 0; i < 2; i++)
        ASSERT_EQ_U64(v1[i].usedGpuMemory,
                      v1[i].pid == (unsigned)a ? 100 * MiB + 1 * GiB : 612 * MiB);
    ASSERT_EQ_U64(v1[2].pid, 0x5a5a5a5au);

    count = 4;
    ASSERT_EQ_INT(nvmlDeviceGetComputeRunningProcesses_v3(dev, &count, NULL),
                  NVML_ERROR_INVALID_ARGUMENT);
    ASSERT_EQ_INT(nvmlDeviceGetComputeRunningProcesses_v3(dev, NULL, v3),
                  NVML_ERROR_INVALID_ARGUMENT);
    simtest_holder_stop(a);
    simtest_holder_stop(b);
    simtest_cleanup();
}

/* GPUSIM_PIDS: the process list as a container without the host's PID namespace sees
 * it; the device's memory stays truthful in every mode. */
TEST(nvml_pids_modes_hide_attribution)
{
    static const char *const modes[] = {"host", "foreign", "unavailable", "zero"};
    struct simtest_report r;
    nvmlProcessInfo_t v3[4];
    nvmlMemory_t m1;
    nvmlDevice_t dev;
    unsigned count;
    pid_t a;

    simtest_env("8Gi", "100Mi");
    a = simtest_holder(0, 1 * GiB, 0, &r);
    ASSERT_EQ_INT(r.rc, 0);
    for (unsigned m = 0; m < 4; m++) {
        setenv("GPUSIM_PIDS", modes[m], 1);
        ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
        ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex_v2(0, &dev), NVML_SUCCESS);
        count = 4;
        ASSERT_EQ_INT(nvmlDeviceGetComputeRunningProcesses_v3(dev, &count, v3), NVML_SUCCESS);
        ASSERT_EQ_INT(count, 1);
        ASSERT_EQ_U64(v3[0].pid, m == 1 ? (unsigned)a + 4194304u : (unsigned)a);
        ASSERT_EQ_U64(v3[0].usedGpuMemory, m == 2   ? 0xFFFFFFFFFFFFFFFFull
                                           : m == 3 ? 0
                                                    : 100 * MiB + 1 * GiB);
        ASSERT_EQ_INT(nvmlDeviceGetMemoryInfo(dev, &m1), NVML_SUCCESS);
        ASSERT_EQ_U64(m1.used, 100 * MiB + 1 * GiB);
        ASSERT_EQ_INT(nvmlShutdown(), NVML_SUCCESS);
    }
    setenv("GPUSIM_PIDS", "container", 1);
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_ERROR_DRIVER_NOT_LOADED);
    simtest_holder_stop(a);
    simtest_cleanup();
}

TEST(nvml_memory_info_names_and_versions)
{
    nvmlMemory_v2_t m2;
    nvmlMemory_t m1;
    nvmlDevice_t d0, d1;
    char name[96], uuid[96], tiny[4], ver[80];
    unsigned count, index;

    simtest_env("24564Mi,2Gi", NULL);
    ASSERT_EQ_INT(nvmlDeviceGetCount_v2(&count), NVML_ERROR_UNINITIALIZED);
    ASSERT_EQ_INT(nvmlInit(), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetCount(&count), NVML_SUCCESS);
    ASSERT_EQ_INT(count, 2);
    ASSERT_EQ_INT(nvmlSystemGetDriverVersion(ver, sizeof(ver)), NVML_SUCCESS);
    ASSERT_STREQ(ver, "gpusim-0.1.0");
    ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex(0, &d0), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex_v2(1, &d1), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex_v2(2, &d1), NVML_ERROR_INVALID_ARGUMENT);
    ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex_v2(1, &d1), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetIndex(d1, &index), NVML_SUCCESS);
    ASSERT_EQ_INT(index, 1);
    ASSERT_EQ_INT(nvmlDeviceGetName(d0, name, sizeof(name)), NVML_SUCCESS);
    ASSERT_STREQ(name, "NVIDIA GeForce RTX 4090 (gpusim)");
    ASSERT_EQ_INT(nvmlDeviceGetName(d1, name, sizeof(name)), NVML_SUCCESS);
    ASSERT_STREQ(name, "gpusim GPU");
    ASSERT_EQ_INT(nvmlDeviceGetName(d0, tiny, sizeof(tiny)), NVML_ERROR_INSUFFICIENT_SIZE);
    ASSERT_EQ_INT(nvmlDeviceGetUUID(d0, uuid, sizeof(uuid)), NVML_SUCCESS);
    ASSERT_STREQ(uuid, "GPU-67707573-696d-4000-8000-000000000000");
    ASSERT_EQ_INT(nvmlDeviceGetUUID(d1, uuid, sizeof(uuid)), NVML_SUCCESS);
    ASSERT_STREQ(uuid, "GPU-67707573-696d-4000-8000-000000000001");

    ASSERT_EQ_INT(nvmlDeviceGetMemoryInfo(d1, &m1), NVML_SUCCESS);
    ASSERT_EQ_U64(m1.total, 2 * GiB);
    ASSERT_EQ_U64(m1.free, 2 * GiB);
    ASSERT_EQ_U64(m1.used, 0);

    /* _v2 insists on its version word; 2 alone is not it. */
    memset(&m2, 0, sizeof(m2));
    m2.version = 2;
    ASSERT_EQ_INT(nvmlDeviceGetMemoryInfo_v2(d0, &m2), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    ASSERT_EQ_INT(NVML_ERROR_ARGUMENT_VERSION_MISMATCH, 25);
    m2.version = 0x02000028;
    ASSERT_EQ_INT(nvmlMemory_v2, 0x02000028);
    ASSERT_EQ_INT(nvmlDeviceGetMemoryInfo_v2(d0, &m2), NVML_SUCCESS);
    ASSERT_EQ_U64(m2.total, 24564ULL * MiB);
    ASSERT_EQ_U64(m2.free + m2.used + m2.reserved, m2.total);

    ASSERT_STREQ(nvmlErrorString(NVML_ERROR_INSUFFICIENT_SIZE), "Insufficient Size");
    ASSERT_STREQ(nvmlErrorString(NVML_ERROR_UNINITIALIZED), "Uninitialized");
    ASSERT_EQ_INT(nvmlShutdown(), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetMemoryInfo(d0, &m1), NVML_ERROR_UNINITIALIZED);
    ASSERT_EQ_INT(nvmlShutdown(), NVML_ERROR_UNINITIALIZED);
    simtest_cleanup();
}

/* Polls (10 ms) until cuMemGetInfo reports at least want free; seconds taken. */
static double wait_free(size_t want, double limit_s)
{
    double t0 = simtest_now();

    while (cuda_free_bytes() < want) {
        if (simtest_now() - t0 > limit_s)
            harness_fail(__FILE__, __LINE__, "memory not back after %.2f s", limit_s);
        usleep(10000);
    }
    return simtest_now() - t0;
}

/* Polls (10 ms) until NVML reports at most want used on device 0; seconds taken. */
static double wait_used(uint64_t want, double limit_s)
{
    double t0 = simtest_now();

    while (simtest_nvml_used(0) > want) {
        if (simtest_now() - t0 > limit_s)
            harness_fail(__FILE__, __LINE__, "memory not back after %.2f s", limit_s);
        usleep(10000);
    }
    return simtest_now() - t0;
}

TEST(free_lag_delays_availability)
{
    struct simtest_report r;
    unsigned long long lagged;
    CUdeviceptr p;
    size_t before;
    double waited;
    pid_t pid;

    simtest_env("2Gi", "100Mi");
    setenv("GPUSIM_FREE_LAG_MS", "300", 1);
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);

    /* A dead process: gone from the list at once, its bytes used until the lag passes. */
    pid = simtest_holder(0, 512 * MiB, 0, &r);
    ASSERT_EQ_INT(r.rc, 0);
    simtest_kill(pid);
    ASSERT_EQ_INT(simtest_nvml_nprocs(0), 0);
    ASSERT_EQ_U64(simtest_nvml_used(0), 612 * MiB);
    ASSERT_EQ_INT(gpusimGetLaggedBytes(0, &lagged), NVML_SUCCESS);
    ASSERT_EQ_U64(lagged, 612 * MiB);
    waited = wait_used(0, 3.0);
    ASSERT_LAG(waited);

    /* cuMemFree: neither allocations nor NVML get the bytes back before the lag. */
    cuda_setup(0);
    before = cuda_free_bytes();
    ASSERT_EQ_U64(before, 2 * GiB - 100 * MiB);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 1 * GiB), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFree_v2(p), CUDA_SUCCESS);
    ASSERT_EQ_U64(cuda_free_bytes(), before - 1 * GiB);
    ASSERT_EQ_U64(simtest_nvml_used(0), 100 * MiB + 1 * GiB);
    ASSERT_EQ_INT(gpusimGetLaggedBytes(0, &lagged), NVML_SUCCESS);
    ASSERT_EQ_U64(lagged, 1 * GiB);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 1 * GiB), CUDA_ERROR_OUT_OF_MEMORY);
    waited = wait_free(before, 3.0);
    ASSERT_LAG(waited);
    ASSERT_EQ_U64(simtest_nvml_used(0), 100 * MiB);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 1 * GiB), CUDA_SUCCESS);

    /* Releasing the context lags its bytes and the allocations it held too. */
    ASSERT_EQ_INT(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);
    ASSERT_EQ_INT(simtest_nvml_nprocs(0), 0);
    ASSERT_EQ_U64(simtest_nvml_used(0), 100 * MiB + 1 * GiB);
    waited = wait_used(0, 3.0);
    ASSERT_LAG(waited);
    simtest_cleanup();
}

TEST(bandwidth_knobs_time_copies)
{
    const size_t n = 256 * MiB; /* 0.268 s at 1 GB/s */
    CUstream s;
    CUdeviceptr d;
    void *h;
    double t0, dt;

    simtest_env(NULL, NULL);
    setenv("GPUSIM_H2D_GBPS", "1", 1);
    setenv("GPUSIM_D2H_GBPS", "2", 1);
    cuda_setup(0);
    ASSERT_EQ_INT(cuMemAlloc_v2(&d, 2 * n), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemHostAlloc(&h, n, 0), CUDA_SUCCESS);

    t0 = simtest_now();
    ASSERT_EQ_INT(cuMemcpyHtoD_v2(d, h, n), CUDA_SUCCESS);
    dt = simtest_now() - t0;
    ASSERT_DURATION(dt, 0.268);

    t0 = simtest_now();
    ASSERT_EQ_INT(cuMemcpyDtoH_v2(h, d + n, n), CUDA_SUCCESS);
    dt = simtest_now() - t0;
    ASSERT_DURATION(dt, 0.134);

    /* Async copies return at once and queue back to back on their stream. */
    ASSERT_EQ_INT(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
    t0 = simtest_now();
    ASSERT_EQ_INT(cuMemcpyHtoDAsync_v2(d, h, n, s), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemcpyHtoDAsync_v2(d + n, h, n, s), CUDA_SUCCESS);
    ASSERT_CMP_INT((simtest_now() - t0) * 1000, <, 100); /* a copy takes 268 */
    ASSERT_EQ_INT(cuStreamSynchronize(s), CUDA_SUCCESS);
    dt = simtest_now() - t0;
    ASSERT_DURATION(dt, 0.537);
    t0 = simtest_now();
    ASSERT_EQ_INT(cuMemcpyDtoHAsync_v2(h, d, n, s), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuStreamSynchronize(s), CUDA_SUCCESS);
    ASSERT_DURATION(simtest_now() - t0, 0.134);
    ASSERT_EQ_INT(cuStreamDestroy_v2(s), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuStreamDestroy_v2(s), CUDA_ERROR_INVALID_HANDLE);
    ASSERT_EQ_INT(cuMemFreeHost(h), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFree_v2(d), CUDA_SUCCESS);
    simtest_cleanup();
}

TEST(backed_mode_round_trips_bytes)
{
    const size_t n = 4 * MiB;
    unsigned char *src, *dst, *pinned;
    CUdeviceptr d, d2;
    CUstream s;

    simtest_env("256Mi", "16Mi");
    setenv("GPUSIM_BACKED", "1", 1);
    cuda_setup(0);
    ASSERT_EQ_INT(cuMemAlloc_v2(&d, 64 * MiB), CUDA_SUCCESS);
    src = malloc(n);
    dst = malloc(n);
    ASSERT(src != NULL && dst != NULL);
    for (size_t i = 0; i < n; i++)
        src[i] = (unsigned char)(i * 131 + 7);

    ASSERT_EQ_INT(cuMemcpyHtoD_v2(d + 1 * MiB, src, n), CUDA_SUCCESS);
    memset(dst, 0, n);
    ASSERT_EQ_INT(cuMemcpyDtoH_v2(dst, d + 1 * MiB, n), CUDA_SUCCESS);
    ASSERT(memcmp(src, dst, n) == 0);

    ASSERT_EQ_INT(cuMemsetD8_v2(d + 1 * MiB + 100, 0xAB, 1000), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemcpyDtoH_v2(dst, d + 1 * MiB, n), CUDA_SUCCESS);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ_INT(dst[i], i >= 100 && i < 1100 ? 0xAB : src[i]);

    /* Pinned memory and a stream. */
    ASSERT_EQ_INT(cuMemHostAlloc((void **)&pinned, n, CU_MEMHOSTALLOC_PORTABLE), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemAlloc_v2(&d2, n), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuStreamCreate(&s, 0), CUDA_SUCCESS);
    memcpy(pinned, src, n);
    ASSERT_EQ_INT(cuMemcpyHtoDAsync_v2(d2, pinned, n, s), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuStreamSynchronize(s), CUDA_SUCCESS);
    memset(pinned, 0, n);
    ASSERT_EQ_INT(cuMemcpyDtoHAsync_v2(pinned, d2, n, s), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuStreamSynchronize(s), CUDA_SUCCESS);
    ASSERT(memcmp(pinned, src, n) == 0);
    /* Fresh device memory reads as zeros. */
    ASSERT_EQ_INT(cuMemcpyDtoH_v2(dst, d + 32 * MiB, 4096), CUDA_SUCCESS);
    for (size_t i = 0; i < 4096; i++)
        ASSERT_EQ_INT(dst[i], 0);

    /* Ranges are checked. */
    ASSERT_EQ_INT(cuMemcpyHtoD_v2(d2 + 1, src, n), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemcpyDtoH_v2(dst, d2 - 1, 2), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemsetD8_v2(d + 64 * MiB, 0, 1), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemcpyHtoD_v2(12345, src, 1), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemcpyHtoDAsync_v2(d2, src, 1, (CUstream)src), CUDA_ERROR_INVALID_HANDLE);
    ASSERT_EQ_INT(cuMemFree_v2(d + 16), CUDA_ERROR_INVALID_VALUE);

    ASSERT_EQ_INT(cuStreamDestroy_v2(s), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFreeHost(pinned), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFreeHost(pinned), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemFree_v2(d2), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFree_v2(d), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFree_v2(d), CUDA_ERROR_INVALID_VALUE);
    free(src);
    free(dst);
    simtest_cleanup();
}

TEST(accounting_mode_touches_no_host_memory)
{
    uint64_t rss0, rss1;
    CUdeviceptr d;
    void *h;

    simtest_env(NULL, NULL); /* an RTX 4090, accounting only */
    cuda_setup(0);
    rss0 = simtest_rss_bytes();
    ASSERT_EQ_INT(cuMemAlloc_v2(&d, 20 * GiB), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemHostAlloc(&h, 4 * GiB, 0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemcpyHtoD_v2(d, h, 4 * GiB), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemcpyDtoH_v2(h, d + 16 * GiB, 4 * GiB), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemsetD8_v2(d, 1, 20 * GiB), CUDA_SUCCESS);
    rss1 = simtest_rss_bytes();
    ASSERT_CMP_INT(rss1, <, rss0 + 64 * MiB);
    ASSERT_EQ_INT(cuMemFreeHost(h), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFree_v2(d), CUDA_SUCCESS);
    simtest_cleanup();
}

#define RACERS 12

TEST(concurrent_allocations_never_exceed_capacity)
{
    struct simtest_report reports[RACERS];
    int gate[2], rep[2];
    pid_t pids[RACERS], parent = getpid();
    uint64_t chunks = 0, sum = 0;
    nvmlProcessInfo_t infos[RACERS + 4];
    nvmlDevice_t dev;
    unsigned count = RACERS + 4;

    simtest_env("1Gi", "16Mi");
    ASSERT_EQ_INT(pipe(gate), 0);
    ASSERT_EQ_INT(pipe(rep), 0);
    for (int i = 0; i < RACERS; i++) {
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0) {
            struct simtest_report r = {0};
            CUdeviceptr p;
            CUcontext ctx;
            CUdevice d;
            sigset_t usr1;
            char c;

            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            close(gate[1]);
            sigemptyset(&usr1);
            sigaddset(&usr1, SIGUSR1);
            sigprocmask(SIG_BLOCK, &usr1, NULL);
            r.pid = getpid();
            if (cuInit(0) || cuDeviceGet(&d, 0) || cuDevicePrimaryCtxRetain(&ctx, d) ||
                cuCtxSetCurrent(ctx))
                _exit(2);
            if (read(gate[0], &c, 1) != 0) /* everyone starts when the gate closes */
                _exit(3);
            while ((r.rc = cuMemAlloc_v2(&p, 16 * MiB)) == CUDA_SUCCESS)
                r.allocated += 16 * MiB;
            if (write(rep[1], &r, sizeof(r)) != sizeof(r))
                _exit(4);
            while (sigwaitinfo(&usr1, NULL) < 0)
                ;
            _exit(0);
        }
    }
    close(gate[0]);
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    /* All contexts are in (16Mi each) before the gate opens. */
    for (int i = 0; i < 500 && simtest_nvml_nprocs(0) < RACERS; i++)
        usleep(10000);
    ASSERT_EQ_INT(simtest_nvml_nprocs(0), RACERS);
    close(gate[1]);
    for (int i = 0; i < RACERS; i++) {
        ASSERT_EQ_INT(read(rep[0], &reports[i], sizeof(reports[i])), sizeof(reports[i]));
        ASSERT_EQ_INT(reports[i].rc, CUDA_ERROR_OUT_OF_MEMORY);
        chunks += reports[i].allocated / (16 * MiB);
    }
    /* (1024 - 12 * 16) / 16 chunks fit: all of them were handed out, no more. */
    ASSERT_EQ_U64(chunks, (1024 - RACERS * 16) / 16);
    ASSERT_EQ_U64(simtest_nvml_used(0), 1 * GiB);
    ASSERT_EQ_U64(simtest_oom_count(0), RACERS);
    ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex_v2(0, &dev), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetComputeRunningProcesses_v3(dev, &count, infos), NVML_SUCCESS);
    ASSERT_EQ_INT(count, RACERS);
    for (unsigned i = 0; i < count; i++)
        sum += infos[i].usedGpuMemory;
    ASSERT_EQ_U64(sum, 1 * GiB);
    for (int i = 0; i < RACERS; i++)
        simtest_holder_stop(pids[i]);
    ASSERT_EQ_U64(simtest_nvml_used(0), 0);
    simtest_cleanup();
}

TEST(killed_lock_holder_does_not_wedge_others)
{
    int fds[2];
    pid_t pid, parent = getpid();
    nvmlMemory_t m;
    nvmlDevice_t dev;
    double t0;
    char c;

    simtest_env("1Gi", NULL);
    ASSERT_EQ_INT(pipe(fds), 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        if (nvmlInit_v2() != NVML_SUCCESS)
            _exit(2);
        gpusimTestHoldLock(fds[1], 30000);
        _exit(0);
    }
    close(fds[1]);
    ASSERT_EQ_INT(read(fds[0], &c, 1), 1); /* it holds the lock now */
    simtest_kill(pid);
    t0 = simtest_now();
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex_v2(0, &dev), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetMemoryInfo(dev, &m), NVML_SUCCESS);
    ASSERT_CMP_INT((simtest_now() - t0) * 1000, <, 1000);
    ASSERT_EQ_U64(m.total, 1 * GiB);
    /* And the driver side still works. */
    cuda_setup(0);
    ASSERT_EQ_U64(simtest_nvml_used(0), 300 * MiB);
    simtest_cleanup();
}

/* In a fresh process: nvmlInit with GPUSIM_DEVICES=devices; exits with the count. */
static int device_count_with(const char *devices)
{
    int status;
    pid_t pid = fork();

    ASSERT(pid >= 0);
    if (pid == 0) {
        unsigned count = 0;
        setenv("GPUSIM_DEVICES", devices, 1);
        /* Drop the NVML inherited from the test, as if freshly started. */
        while (nvmlShutdown() == NVML_SUCCESS)
            ;
        if (nvmlInit_v2() != NVML_SUCCESS || nvmlDeviceGetCount_v2(&count) != NVML_SUCCESS)
            _exit(100);
        _exit((int)count);
    }
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    return WEXITSTATUS(status);
}

TEST(device_config_kept_while_used_else_reinitialised)
{
    struct simtest_report r;
    pid_t pid;

    simtest_env("1Gi", "100Mi");
    pid = simtest_holder(0, 256 * MiB, 0, &r);
    ASSERT_EQ_INT(r.rc, 0);
    /* A live process holds memory: another config is ignored. */
    ASSERT_EQ_INT(device_count_with("2Gi,2Gi,2Gi"), 1);
    /* An unset GPUSIM_DEVICES accepts whatever is there. */
    unsetenv("GPUSIM_DEVICES");
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    unsigned count;
    ASSERT_EQ_INT(nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
    ASSERT_EQ_INT(count, 1);
    simtest_kill(pid);
    /* Nobody holds memory now: the new config takes over. */
    ASSERT_EQ_INT(device_count_with("2Gi,2Gi,2Gi"), 3);
    ASSERT_EQ_INT(nvmlDeviceGetCount_v2(&count), NVML_SUCCESS);
    ASSERT_EQ_INT(count, 3); /* seen by everyone sharing the file */
    ASSERT_EQ_INT(device_count_with("4Gi"), 1);
    simtest_cleanup();
}

TEST(concurrent_first_opens_agree)
{
    pid_t pids[8], parent = getpid();
    int gate[2];

    simtest_env("3Gi,1Gi", NULL);
    ASSERT_EQ_INT(pipe(gate), 0);
    for (int i = 0; i < 8; i++) {
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0) {
            unsigned count = 0;
            char c;
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            close(gate[1]);
            if (read(gate[0], &c, 1) != 0)
                _exit(2);
            if (i % 2 == 0) {
                CUdevice d;
                CUcontext ctx;
                if (cuInit(0) || cuDeviceGet(&d, 1) || cuDevicePrimaryCtxRetain(&ctx, d))
                    _exit(3);
                _exit(0);
            }
            if (nvmlInit_v2() != NVML_SUCCESS || nvmlDeviceGetCount_v2(&count) != NVML_SUCCESS)
                _exit(4);
            _exit(count == 2 ? 0 : 5);
        }
    }
    close(gate[0]);
    close(gate[1]);
    for (int i = 0; i < 8; i++) {
        int status;
        ASSERT_EQ_INT(waitpid(pids[i], &status, 0), pids[i]);
        ASSERT(WIFEXITED(status));
        ASSERT_EQ_INT(WEXITSTATUS(status), 0);
    }
    simtest_cleanup();
}

static void *thread_alloc(void *arg)
{
    CUdeviceptr p;

    (void)arg;
    /* A new thread has no current context. */
    return (void *)(intptr_t)cuMemAlloc_v2(&p, 1);
}

TEST(driver_api_contexts_and_errors)
{
    CUcontext ctx, cur;
    CUdeviceptr p, q;
    CUdevice d;
    CUuuid uu;
    char name[64], small[8];
    const char *s;
    size_t total;
    int v, count;
    pthread_t t;
    void *ret;

    simtest_env("24564Mi,2Gi", "300Mi");
    ASSERT_EQ_INT(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 1), CUDA_ERROR_NOT_INITIALIZED);
    ASSERT_EQ_INT(cuDriverGetVersion(&v), CUDA_SUCCESS);
    ASSERT_EQ_INT(v, 12040);
    ASSERT_EQ_INT(cuInit(1), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuInit(0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuInit(0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuDeviceGetCount(&count), CUDA_SUCCESS);
    ASSERT_EQ_INT(count, 2);
    ASSERT_EQ_INT(cuDeviceGet(&d, 2), CUDA_ERROR_INVALID_DEVICE);
    ASSERT_EQ_INT(cuDeviceGet(&d, 1), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuDeviceGetName(name, sizeof(name), 0), CUDA_SUCCESS);
    ASSERT_STREQ(name, "NVIDIA GeForce RTX 4090 (gpusim)");
    ASSERT_EQ_INT(cuDeviceGetName(small, sizeof(small), 0), CUDA_SUCCESS);
    ASSERT_STREQ(small, "NVIDIA ");
    ASSERT_EQ_INT(cuDeviceGetName(name, sizeof(name), d), CUDA_SUCCESS);
    ASSERT_STREQ(name, "gpusim GPU");
    ASSERT_EQ_INT(cuDeviceTotalMem_v2(&total, d), CUDA_SUCCESS);
    ASSERT_EQ_U64(total, 2 * GiB);
    ASSERT_EQ_INT(cuDeviceTotalMem(&total, 0), CUDA_SUCCESS);
    ASSERT_EQ_U64(total, 24564ULL * MiB);
    ASSERT_EQ_INT(cuDeviceGetUuid_v2(&uu, d), CUDA_SUCCESS);
    ASSERT(memcmp(uu.bytes, "gpusim", 6) == 0);
    ASSERT_EQ_INT((unsigned char)uu.bytes[15], 1);
    ASSERT_EQ_INT(cuDeviceGetUuid(&uu, 0), CUDA_SUCCESS);
    ASSERT_EQ_INT((unsigned char)uu.bytes[15], 0);

    /* No current context yet. */
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 1), CUDA_ERROR_INVALID_CONTEXT);
    ASSERT_EQ_INT(cuMemGetInfo_v2(&total, &total), CUDA_ERROR_INVALID_CONTEXT);
    ASSERT_EQ_INT(cuDevicePrimaryCtxRelease_v2(d), CUDA_ERROR_INVALID_CONTEXT);
    ASSERT_EQ_INT(cuDevicePrimaryCtxRetain(&ctx, d), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 1), CUDA_ERROR_INVALID_CONTEXT); /* retained, not current */
    ASSERT_EQ_INT(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuCtxGetCurrent(&cur), CUDA_SUCCESS);
    ASSERT(cur == ctx);
    ASSERT_EQ_INT(cuCtxSetCurrent((CUcontext)&v), CUDA_ERROR_INVALID_CONTEXT);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 0), CUDA_ERROR_INVALID_VALUE);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 100 * MiB), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemAlloc_v2(&q, 100 * MiB), CUDA_SUCCESS);
    ASSERT(p != 0 && q != 0 && p != q);
    ASSERT_EQ_INT(pthread_create(&t, NULL, thread_alloc, NULL), 0);
    ASSERT_EQ_INT(pthread_join(t, &ret), 0);
    ASSERT_EQ_INT((intptr_t)ret, CUDA_ERROR_INVALID_CONTEXT);

    /* Retain is counted; the last release frees the context and its memory. */
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    ASSERT_EQ_U64(simtest_nvml_used(1), 300 * MiB + 200 * MiB);
    ASSERT_EQ_INT(cuDevicePrimaryCtxRetain(&cur, d), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuDevicePrimaryCtxRelease(d), CUDA_SUCCESS);
    ASSERT_EQ_U64(simtest_nvml_used(1), 300 * MiB + 200 * MiB);
    ASSERT_EQ_INT(cuDevicePrimaryCtxRelease_v2(d), CUDA_SUCCESS);
    ASSERT_EQ_U64(simtest_nvml_used(1), 0);
    ASSERT_EQ_INT(simtest_nvml_nprocs(1), 0);
    ASSERT_EQ_INT(cuMemAlloc_v2(&p, 1), CUDA_ERROR_INVALID_CONTEXT);
    ASSERT_EQ_INT(cuDevicePrimaryCtxRelease_v2(d), CUDA_ERROR_INVALID_CONTEXT);

    /* A new context again: a fresh charge; old pointers are gone, never reused. */
    ASSERT_EQ_INT(cuDevicePrimaryCtxRetain(&ctx, d), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuMemFree_v2(p), CUDA_ERROR_INVALID_VALUE);
    CUdeviceptr r2;
    ASSERT_EQ_INT(cuMemAlloc_v2(&r2, 100 * MiB), CUDA_SUCCESS);
    ASSERT(r2 > q);
    ASSERT_EQ_U64(simtest_nvml_used(1), 400 * MiB);

    ASSERT_EQ_INT(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s), CUDA_SUCCESS);
    ASSERT_STREQ(s, "out of memory");
    ASSERT_EQ_INT(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s), CUDA_SUCCESS);
    ASSERT_STREQ(s, "CUDA_ERROR_OUT_OF_MEMORY");
    ASSERT_EQ_INT(cuGetErrorName(CUDA_ERROR_INVALID_CONTEXT, &s), CUDA_SUCCESS);
    ASSERT_STREQ(s, "CUDA_ERROR_INVALID_CONTEXT");
    ASSERT_EQ_INT(cuGetErrorString(12345, &s), CUDA_ERROR_INVALID_VALUE);
    simtest_cleanup();
}

TEST(bad_environment_fails_init)
{
    simtest_env("lots", NULL);
    ASSERT_EQ_INT(cuInit(0), CUDA_ERROR_NO_DEVICE);
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_ERROR_DRIVER_NOT_LOADED);
    simtest_env("1Gi", NULL);
    setenv("GPUSIM_FREE_LAG_MS", "-5", 1);
    ASSERT_EQ_INT(cuInit(0), CUDA_ERROR_NO_DEVICE);
    setenv("GPUSIM_FREE_LAG_MS", "5", 1);
    setenv("GPUSIM_H2D_GBPS", "fast", 1);
    ASSERT_EQ_INT(cuInit(0), CUDA_ERROR_NO_DEVICE);
    unsetenv("GPUSIM_H2D_GBPS");
    ASSERT_EQ_INT(cuInit(0), CUDA_SUCCESS);
    simtest_cleanup();
}

TEST(nvml_queries_are_fast)
{
    struct simtest_report r;
    pid_t pids[5];
    nvmlProcessInfo_t infos[8];
    nvmlMemory_v2_t m2;
    nvmlDevice_t dev;
    const int iters = 20000;
    double t0, mem_ns, procs_ns;

    simtest_env(NULL, NULL);
    for (int i = 0; i < 5; i++) {
        pids[i] = simtest_holder(0, 1 * GiB, 0, &r);
        ASSERT_EQ_INT(r.rc, 0);
    }
    ASSERT_EQ_INT(nvmlInit_v2(), NVML_SUCCESS);
    ASSERT_EQ_INT(nvmlDeviceGetHandleByIndex_v2(0, &dev), NVML_SUCCESS);
    t0 = simtest_now();
    for (int i = 0; i < iters; i++) {
        m2.version = nvmlMemory_v2;
        ASSERT_EQ_INT(nvmlDeviceGetMemoryInfo_v2(dev, &m2), NVML_SUCCESS);
    }
    mem_ns = (simtest_now() - t0) / iters * 1e9;
    t0 = simtest_now();
    for (int i = 0; i < iters; i++) {
        unsigned count = 8;
        ASSERT_EQ_INT(nvmlDeviceGetComputeRunningProcesses_v3(dev, &count, infos), NVML_SUCCESS);
        ASSERT_EQ_INT(count, 5);
    }
    procs_ns = (simtest_now() - t0) / iters * 1e9;
    printf("  with 5 processes: GetMemoryInfo_v2 %.0f ns, GetComputeRunningProcesses_v3 %.0f ns\n",
           mem_ns, procs_ns);
    /* Microseconds, generously bounded (sanitizer builds are slower). */
    ASSERT_CMP_INT(mem_ns, <, 100000);
    ASSERT_CMP_INT(procs_ns, <, 100000);
    for (int i = 0; i < 5; i++)
        simtest_holder_stop(pids[i]);
    simtest_cleanup();
}
