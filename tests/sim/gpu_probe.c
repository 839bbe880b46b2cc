/*
 * gpu_probe.c - opens NVML and the driver API through the loaders (gpu.h) and
 * prints what they found, one fact per line, for test_gpu_loaders to check
 * under a chosen LD_LIBRARY_PATH:
 *
 *   nvml: ok driver=VERSION count=N        or  nvml: error: MESSAGE
 *   gpu I: name=... uuid=... total=T free=F used=U reserved=R
 *   procs I: count=N pids=SUM bytes=SUM first=PID:BYTES
 *   cuda: ok version=V                      or  cuda: error: MESSAGE
 */
#include <stdio.h>

#include "gpu/gpu.h"

static void probe_nvml(void)
{
    static struct gc_gpu_proc procs[GC_GPU_PROCS_MAX];
    struct gc_nvml *nvml;
    char err[512];
    unsigned count;

    if (gc_nvml_open(&nvml, err, sizeof(err)) < 0) {
        printf("nvml: error: %s\n", err);
        return;
    }
    if (gc_nvml_device_count(nvml, &count) < 0) {
        printf("nvml: error: device count: %s\n", gc_nvml_last_error(nvml));
        gc_nvml_close(nvml);
        return;
    }
    printf("nvml: ok driver=%s count=%u\n", gc_nvml_driver_version(nvml), count);
    for (unsigned i = 0; i < count; i++) {
        struct gc_gpu_info info;
        unsigned long long pids = 0, bytes = 0;
        unsigned n;

        if (gc_nvml_device_info(nvml, i, &info) < 0) {
            printf("gpu %u: error: %s\n", i, gc_nvml_last_error(nvml));
            continue;
        }
        printf("gpu %u: name=%s uuid=%s total=%llu free=%llu used=%llu reserved=%llu\n", i,
               info.name, info.uuid, (unsigned long long)info.total_bytes,
               (unsigned long long)info.free_bytes, (unsigned long long)info.used_bytes,
               (unsigned long long)info.reserved_bytes);
        if (gc_nvml_processes(nvml, i, procs, GC_GPU_PROCS_MAX, &n) < 0) {
            printf("procs %u: error: %s\n", i, gc_nvml_last_error(nvml));
            continue;
        }
        for (unsigned j = 0; j < n; j++) {
            pids += procs[j].pid;
            bytes += procs[j].used_bytes;
        }
        printf("procs %u: count=%u pids=%llu bytes=%llu first=%u:%llu\n", i, n, pids, bytes,
               n > 0 ? procs[0].pid : 0, n > 0 ? (unsigned long long)procs[0].used_bytes : 0);
    }
    gc_nvml_close(nvml);
}

static void probe_cuda(void)
{
    struct gc_cuda cuda;
    char err[512];
    int version = 0;

    if (gc_cuda_open(&cuda, err, sizeof(err)) < 0) {
        printf("cuda: error: %s\n", err);
        return;
    }
    cuda.cuDriverGetVersion(&version);
    printf("cuda: ok version=%d\n", version);
    gc_cuda_close(&cuda);
}

int main(void)
{
    probe_nvml();
    probe_cuda();
    return 0;
}
