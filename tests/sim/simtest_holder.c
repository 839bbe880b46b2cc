/* simtest_holder.c - processes that hold gpusim memory, and NVML helpers (simtest.h). */
#include "simtest.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "gpusim.h"

#define SIMTEST_CHUNKS_MAX 4096

static void read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            harness_fail(__FILE__, __LINE__, "holder report: short read (%zu of %zu)", got, len);
        got += (size_t)n;
    }
}

static CUresult holder_setup(unsigned dev, CUcontext *ctx)
{
    CUdevice d;
    CUresult rc = cuInit(0);

    if (rc == CUDA_SUCCESS)
        rc = cuDeviceGet(&d, (int)dev);
    if (rc == CUDA_SUCCESS)
        rc = cuDevicePrimaryCtxRetain(ctx, d);
    if (rc == CUDA_SUCCESS)
        rc = cuCtxSetCurrent(*ctx);
    return rc;
}

static void __attribute__((noreturn))
holder_main(int report_fd, pid_t parent, unsigned dev, uint64_t bytes, uint64_t chunk)
{
    static CUdeviceptr ptrs[SIMTEST_CHUNKS_MAX];
    struct simtest_report r = {0};
    CUcontext ctx = NULL;
    size_t n = 0;
    sigset_t usr1;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    r.pid = getpid();
    r.rc = holder_setup(dev, &ctx);
    if (chunk == 0)
        chunk = bytes;
    while (r.rc == CUDA_SUCCESS && r.allocated < bytes && n < SIMTEST_CHUNKS_MAX) {
        uint64_t want = bytes - r.allocated < chunk ? bytes - r.allocated : chunk;
        r.rc = cuMemAlloc_v2(&ptrs[n], want);
        if (r.rc == CUDA_SUCCESS) {
            n++;
            r.allocated += want;
        }
    }
    if (ctx != NULL) {
        size_t f = 0, t = 0;
        cuMemGetInfo_v2(&f, &t);
        r.free_bytes = f;
        r.total_bytes = t;
    }
    if (write(report_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(3);
    close(report_fd);
    while (sigwaitinfo(&usr1, NULL) < 0)
        ;
    for (size_t i = 0; i < n; i++)
        if (cuMemFree_v2(ptrs[i]) != CUDA_SUCCESS)
            _exit(4);
    if (ctx != NULL && cuDevicePrimaryCtxRelease_v2((CUdevice)dev) != CUDA_SUCCESS)
        _exit(5);
    _exit(0);
}

pid_t simtest_holder(unsigned dev, uint64_t bytes, uint64_t chunk,
                     struct simtest_report *ret_report)
{
    pid_t parent = getpid(), pid;
    int fds[2];

    if (pipe(fds) < 0)
        harness_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        harness_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        holder_main(fds[1], parent, dev, bytes, chunk);
    }
    close(fds[1]);
    read_full(fds[0], ret_report, sizeof(*ret_report));
    close(fds[0]);
    return pid;
}

void simtest_holder_stop(pid_t pid)
{
    int status;

    kill(pid, SIGUSR1);
    if (waitpid(pid, &status, 0) != pid)
        harness_fail(__FILE__, __LINE__, "waitpid %d: %s", (int)pid, strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        harness_fail(__FILE__, __LINE__, "holder %d ended with status 0x%x", (int)pid, status);
}

void simtest_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static nvmlDevice_t nvml_dev(unsigned dev)
{
    nvmlDevice_t h;
    int rc = nvmlDeviceGetHandleByIndex_v2(dev, &h);

    if (rc != NVML_SUCCESS)
        harness_fail(__FILE__, __LINE__, "nvmlDeviceGetHandleByIndex(%u): %d", dev, rc);
    return h;
}

uint64_t simtest_nvml_used(unsigned dev)
{
    nvmlMemory_t m;
    int rc = nvmlDeviceGetMemoryInfo(nvml_dev(dev), &m);

    if (rc != NVML_SUCCESS)
        harness_fail(__FILE__, __LINE__, "nvmlDeviceGetMemoryInfo: %d", rc);
    return m.used;
}

unsigned simtest_nvml_nprocs(unsigned dev)
{
    unsigned count = 0;
    int rc = nvmlDeviceGetComputeRunningProcesses_v3(nvml_dev(dev), &count, NULL);

    if (rc != NVML_SUCCESS && rc != NVML_ERROR_INSUFFICIENT_SIZE)
        harness_fail(__FILE__, __LINE__, "GetComputeRunningProcesses: %d", rc);
    return count;
}

uint64_t simtest_nvml_proc_bytes(unsigned dev, pid_t pid)
{
    nvmlProcessInfo_t infos[64];
    unsigned count = 64;
    int rc = nvmlDeviceGetComputeRunningProcesses_v3(nvml_dev(dev), &count, infos);

    if (rc != NVML_SUCCESS)
        harness_fail(__FILE__, __LINE__, "GetComputeRunningProcesses: %d", rc);
    for (unsigned i = 0; i < count; i++)
        if (infos[i].pid == (unsigned)pid)
            return infos[i].usedGpuMemory;
    return UINT64_MAX;
}

uint64_t simtest_oom_count(unsigned dev)
{
    unsigned long long n = 0;
    int rc = gpusimGetOomCount(dev, &n);

    if (rc != NVML_SUCCESS)
        harness_fail(__FILE__, __LINE__, "gpusimGetOomCount: %d", rc);
    return n;
}
