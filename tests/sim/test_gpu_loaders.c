/*
 * test_gpu_loaders.c - the NVML and driver-API loaders (src/gpu, gpu.h)
 * against gpusim, against stand-in libraries (fallbacks, a missing symbol)
 * and against no library at all; gpu-hold and gpusim-ctl end to end.
 *
 * This binary does not link gpusim: the loaders find it through
 * LD_LIBRARY_PATH (build/sim) as the daemon does.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "gpu/gpu.h"
#include "simtest.h"

#define OUT_MAX 8192

/* Starts argv with stdout on a pipe and reads its first line into line. */
static pid_t spawn_line(char *const argv[], char *line, size_t len)
{
    int fds[2];
    size_t got = 0;
    pid_t pid;

    ASSERT_EQ_INT(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    while (got + 1 < len) {
        ssize_t n = read(fds[0], line + got, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || line[got] == '\n')
            break;
        got++;
    }
    line[got] = '\0';
    close(fds[0]);
    return pid;
}

static int wait_status(pid_t pid)
{
    int status;

    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static struct gc_nvml *nvml_open(void)
{
    struct gc_nvml *nvml = NULL;
    char err[512];

    if (gc_nvml_open(&nvml, err, sizeof(err)) < 0)
        harness_fail(__FILE__, __LINE__, "gc_nvml_open: %s", err);
    return nvml;
}

TEST(nvml_loader_reads_gpusim)
{
    struct gc_gpu_proc procs[4];
    struct gc_gpu_info info;
    struct gc_nvml *nvml;
    char line[256], expect[256];
    unsigned count, n;
    uint64_t ooms;
    pid_t pid;

    simtest_env("24564Mi,8Gi", "300Mi");
    nvml = nvml_open();
    ASSERT_STREQ(gc_nvml_driver_version(nvml), "gpusim-0.1.0");
    ASSERT_EQ_INT(gc_nvml_device_count(nvml, &count), 0);
    ASSERT_EQ_INT(count, 2);
    ASSERT_EQ_INT(gc_nvml_device_info(nvml, 0, &info), 0);
    ASSERT_STREQ(info.name, "NVIDIA GeForce RTX 4090 (gpusim)");
    ASSERT_STREQ(info.uuid, "GPU-67707573-696d-4000-8000-000000000000");
    ASSERT_EQ_U64(info.total_bytes, 24564ULL * MiB);
    ASSERT_EQ_U64(info.free_bytes, 24564ULL * MiB);
    ASSERT_EQ_INT(gc_nvml_device_info(nvml, 2, &info), GC_EINVAL);

    pid = spawn_line((char *[]){(char *)simtest_path_env("GPU_HOLD"), "--bytes", "1Gi", "--device",
                                "1", "--chunk", "100Mi", NULL},
                     line, sizeof(line));
    snprintf(expect, sizeof(expect), "ready pid=%d bytes=%llu", (int)pid, 1ULL * GiB);
    ASSERT_STREQ(line, expect);

    ASSERT_EQ_INT(gc_nvml_device_memory(nvml, 1, &info), 0);
    ASSERT_EQ_U64(info.used_bytes, 300 * MiB + 1 * GiB);
    ASSERT_EQ_U64(info.free_bytes, 8 * GiB - 300 * MiB - 1 * GiB);
    ASSERT_EQ_U64(info.reserved_bytes, 0);
    ASSERT_EQ_INT(gc_nvml_processes(nvml, 1, procs, 4, &n), 0);
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_INT(procs[0].pid, pid);
    ASSERT_EQ_U64(procs[0].used_bytes, 300 * MiB + 1 * GiB);
    ASSERT_EQ_INT(gc_nvml_processes(nvml, 0, procs, 4, &n), 0);
    ASSERT_EQ_INT(n, 0);
    ASSERT_EQ_INT(gc_nvml_processes(nvml, 1, procs, 0, &n), 0); /* room for none */
    ASSERT_EQ_INT(n, 0);
    ASSERT_EQ_INT(gc_nvml_gpusim_oom_count(nvml, 1, &ooms), 0);
    ASSERT_EQ_U64(ooms, 0);

    kill(pid, SIGTERM);
    ASSERT_EQ_INT(wait_status(pid), 0);
    ASSERT_EQ_INT(gc_nvml_processes(nvml, 1, procs, 4, &n), 0);
    ASSERT_EQ_INT(n, 0);
    ASSERT_EQ_INT(gc_nvml_device_memory(nvml, 1, &info), 0);
    ASSERT_EQ_U64(info.used_bytes, 0);
    gc_nvml_close(nvml);
    gc_nvml_close(NULL);
    simtest_cleanup();
}

TEST(cuda_loader_drives_gpusim)
{
    struct gc_cuda cuda, zero;
    CUdeviceptr p;
    CUcontext ctx;
    size_t f0, f1, total;
    char err[512];
    int version;

    simtest_env("4Gi", "300Mi");
    if (gc_cuda_open(&cuda, err, sizeof(err)) < 0)
        harness_fail(__FILE__, __LINE__, "gc_cuda_open: %s", err);
    ASSERT(cuda.cuGetErrorName != NULL && cuda.cuGetErrorString != NULL);
    ASSERT_EQ_INT(cuda.cuDriverGetVersion(&version), CUDA_SUCCESS);
    ASSERT_EQ_INT(version, 12040);
    ASSERT_EQ_INT(cuda.cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuda.cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuda.cuMemGetInfo(&f0, &total), CUDA_SUCCESS);
    ASSERT_EQ_U64(total, 4 * GiB);
    ASSERT_EQ_U64(f0, 4 * GiB - 300 * MiB);
    ASSERT_EQ_INT(cuda.cuMemAlloc(&p, 1 * GiB), CUDA_SUCCESS);
    ASSERT_EQ_INT(cuda.cuMemGetInfo(&f1, &total), CUDA_SUCCESS);
    ASSERT_EQ_U64(f0 - f1, 1 * GiB);
    ASSERT_EQ_INT(cuda.cuMemAlloc(&p, 4 * GiB), CUDA_ERROR_OUT_OF_MEMORY);
    ASSERT_STREQ(gc_cuda_strerror(&cuda, CUDA_ERROR_OUT_OF_MEMORY),
                 "CUDA_ERROR_OUT_OF_MEMORY: out of memory");
    ASSERT_STREQ(gc_cuda_strerror(&cuda, 4242), "CUDA error 4242");
    ASSERT_STREQ(gc_cuda_strerror(NULL, CUDA_ERROR_INVALID_CONTEXT),
                 "CUDA_ERROR_INVALID_CONTEXT: invalid device context");
    ASSERT_EQ_INT(cuda.cuDevicePrimaryCtxRelease(0), CUDA_SUCCESS);
    gc_cuda_close(&cuda);
    ASSERT(cuda.handle == NULL);
    memset(&zero, 0, sizeof(zero));
    gc_cuda_close(&zero);
    simtest_cleanup();
}

/* Runs gpu-probe with LD_LIBRARY_PATH=dir. */
static void probe(const char *dir, char *out, size_t outlen)
{
    char env[1024];

    snprintf(env, sizeof(env), "LD_LIBRARY_PATH=%s", dir);
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)simtest_path_env("GPU_PROBE"), NULL},
                              (char *[]){env, NULL}, out, outlen),
                  0);
}

TEST(loaders_name_a_missing_library)
{
    char out[OUT_MAX], empty[512];
    const char *state = simtest_env(NULL, NULL);

    snprintf(empty, sizeof(empty), "%s", state);
    *strrchr(empty, '/') = '\0'; /* the test's own (empty) folder */
    probe(empty, out, sizeof(out));
    if (strstr(out, "nvml: ok") != NULL || strstr(out, "cuda: ok") != NULL) {
        /* A real driver is installed system-wide: the libraries cannot go missing. */
        printf("  skipped: a system libnvidia-ml/libcuda was found\n%s", out);
        simtest_cleanup();
        return;
    }
    ASSERT(strstr(out, "nvml: error: libnvidia-ml.so.1: cannot open shared object file") != NULL);
    ASSERT(strstr(out, "cuda: error: libcuda.so.1: cannot open shared object file") != NULL);
    simtest_cleanup();
}

TEST(loaders_fall_back_and_name_missing_symbols)
{
    char out[OUT_MAX];

    simtest_env(NULL, NULL);
    probe(simtest_path_env("GPU_STUB_DIR"), out, sizeof(out));
    /* Old NVML: plain names, v1 process layout, MemoryInfo_v2 NOT_SUPPORTED. */
    ASSERT(strstr(out, "nvml: ok driver=stub-1.0 count=1\n") != NULL);
    ASSERT(strstr(out, "gpu 0: name=stub GPU uuid=GPU-stub total=1000000 free=600000 "
                       "used=400000 reserved=0\n") != NULL);
    /* 100 processes: the buffer grew; pids 1000..1099; process 7 "unknown". */
    ASSERT(strstr(out, "procs 0: count=100 pids=104950 bytes=20652031 first=1000:4096\n") != NULL);
    ASSERT(strstr(out, "cuda: error: missing symbol 'cuMemAlloc_v2' (and 'cuMemAlloc') in "
                       "libcuda.so.1\n") != NULL);
    simtest_cleanup();
}

TEST(probe_finds_gpusim_through_library_path)
{
    char out[OUT_MAX];

    simtest_env("2Gi", NULL);
    probe(simtest_path_env("GPUSIM_DIR"), out, sizeof(out));
    ASSERT(strstr(out, "nvml: ok driver=gpusim-0.1.0 count=1\n") != NULL);
    ASSERT(strstr(out, "gpu 0: name=gpusim GPU") != NULL);
    ASSERT(strstr(out, "cuda: ok version=12040\n") != NULL);
    simtest_cleanup();
}

TEST(gpu_hold_holds_until_sigterm_and_ctl_shows_it)
{
    char line[256], expect[256], ready[600], out[OUT_MAX], needle[128];
    const char *ctl = simtest_path_env("GPUSIM_CTL");
    const char *state = simtest_env("4Gi", "300Mi");
    struct stat sb;
    FILE *f;
    pid_t pid;

    snprintf(ready, sizeof(ready), "%s.ready", state);
    pid = spawn_line((char *[]){(char *)simtest_path_env("GPU_HOLD"), "--bytes", "1Gi", "--chunk",
                                "256Mi", "--ready-file", ready, NULL},
                     line, sizeof(line));
    snprintf(expect, sizeof(expect), "ready pid=%d bytes=%llu", (int)pid, 1ULL * GiB);
    ASSERT_STREQ(line, expect);
    f = fopen(ready, "r");
    ASSERT(f != NULL);
    ASSERT(fgets(line, sizeof(line), f) != NULL);
    fclose(f);
    ASSERT(strncmp(line, expect, strlen(expect)) == 0);

    ASSERT_EQ_INT(
        simtest_run((char *[]){(char *)ctl, "status", "--json", NULL}, NULL, out, sizeof(out)), 0);
    snprintf(needle, sizeof(needle), "\"processes\":[{\"pid\":%d,\"bytes\":%llu}]", (int)pid,
             300 * MiB + 1 * GiB);
    ASSERT(strstr(out, needle) != NULL);
    ASSERT(strstr(out, "\"capacity_bytes\":4294967296,\"used_bytes\":1388314624,"
                       "\"lagged_bytes\":0,\"free_bytes\":2906652672,\"oom_count\":0") != NULL);
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)ctl, "status", NULL}, NULL, out, sizeof(out)), 0);
    snprintf(needle, sizeof(needle), "pid %d  1.29Gi", (int)pid);
    ASSERT(strstr(out, needle) != NULL);
    ASSERT(strstr(out, "gpu 0: gpusim GPU") != NULL);
    /* Reset is refused while it holds memory. */
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)ctl, "reset", NULL}, NULL, out, sizeof(out)), 1);
    ASSERT(strstr(out, "live processes hold memory") != NULL);
    ASSERT_EQ_INT(stat(state, &sb), 0);

    kill(pid, SIGTERM);
    ASSERT_EQ_INT(wait_status(pid), 0);
    ASSERT(stat(ready, &sb) < 0); /* removed when it let go */
    ASSERT_EQ_INT(
        simtest_run((char *[]){(char *)ctl, "status", "--json", NULL}, NULL, out, sizeof(out)), 0);
    ASSERT(strstr(out, "\"used_bytes\":0,") != NULL);
    ASSERT(strstr(out, "\"processes\":[]") != NULL);
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)ctl, "reset", NULL}, NULL, out, sizeof(out)), 0);
    ASSERT(stat(state, &sb) < 0);
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)ctl, "status", NULL}, NULL, out, sizeof(out)), 1);
    ASSERT(strstr(out, "no gpusim state") != NULL);
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)ctl, "bogus", NULL}, NULL, out, sizeof(out)), 64);
    simtest_cleanup();
}

TEST(gpu_hold_exit_codes)
{
    const char *hold = simtest_path_env("GPU_HOLD");
    char out[OUT_MAX];
    double t0;

    simtest_env("2Gi", "300Mi");
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)hold, NULL}, NULL, out, sizeof(out)), 64);
    ASSERT_EQ_INT(
        simtest_run((char *[]){(char *)hold, "--bytes", "lots", NULL}, NULL, out, sizeof(out)), 64);
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)hold, "--bytes", "1Gi", "extra", NULL}, NULL, out,
                              sizeof(out)),
                  64);
    /* Out of memory: exit 2, one line naming it. */
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)hold, "--bytes", "3Gi", "--chunk", "512Mi", NULL},
                              NULL, out, sizeof(out)),
                  2);
    ASSERT(strstr(out, "CUDA_ERROR_OUT_OF_MEMORY") != NULL);
    ASSERT(strchr(out, '\n') == strrchr(out, '\n'));
    /* No such device: exit 1. */
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)hold, "--bytes", "1Mi", "--device", "3", NULL},
                              NULL, out, sizeof(out)),
                  1);
    ASSERT(strstr(out, "CUDA_ERROR_INVALID_DEVICE") != NULL);
    /* --seconds: lets go by itself. */
    t0 = simtest_now();
    ASSERT_EQ_INT(simtest_run((char *[]){(char *)hold, "--bytes", "1Gi", "--seconds", "0.2", NULL},
                              NULL, out, sizeof(out)),
                  0);
    ASSERT_CMP_INT((simtest_now() - t0) * 1000, >=, 190);
    ASSERT_CMP_INT((simtest_now() - t0) * 1000, <, 3000);
    ASSERT(strstr(out, "ready pid=") != NULL);
    simtest_cleanup();
}
