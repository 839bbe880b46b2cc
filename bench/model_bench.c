/*
 * model_bench.c - unload/reload of model weights (servers/common/model.c) against the
 * floor: the pinned host<->device copy bandwidth of the same device, measured in the
 * same run with plain chunked copies of the same total size.
 *
 *   model-bench [--bytes 4.7Gi] [--cycles 5] [--chunk 128Mi]
 *
 * Runs on gpusim (set GPUSIM_H2D_GBPS / GPUSIM_D2H_GBPS) or a real GPU.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "gpucoord.h"
#include "servers/common/model.h"

#define BENCH_MODELS 3

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Seconds to copy bytes host->device (h2d) or back in chunks on one stream. */
static double copy_time(struct gc_model_store *s, CUdeviceptr *dev, uint8_t *host, uint64_t bytes,
                        bool h2d)
{
    int64_t t0 = gc_mono_ns();
    uint64_t off = 0;

    for (unsigned i = 0; off < bytes; i++) {
        uint64_t n = bytes - off < s->chunk_bytes ? bytes - off : s->chunk_bytes;
        if (h2d)
            s->cuda.cuMemcpyHtoDAsync(dev[i], host + off, (size_t)n, s->stream);
        else
            s->cuda.cuMemcpyDtoHAsync(host + off, dev[i], (size_t)n, s->stream);
        off += n;
    }
    s->cuda.cuStreamSynchronize(s->stream);
    return (double)(gc_mono_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"bytes", required_argument, NULL, 'b'},
        {"cycles", required_argument, NULL, 'c'},
        {"chunk", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    static const double shares[BENCH_MODELS] = {0.5, 0.3, 0.2};
    uint64_t bytes = 5046586572ULL, chunk = 128ULL << 20, left, nchunks;
    int cycles = 5, opt;
    struct gc_model_store s;
    struct gc_model *m[BENCH_MODELS];
    double t_un[64], t_re[64], t_h2d[64], t_d2h[64];
    CUdeviceptr *dev;
    uint8_t *host;
    char err[256], sz[32];

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'b' && gpucoord_size_parse(optarg, &bytes) == 0)
            continue;
        if (opt == 'c' && (cycles = atoi(optarg)) > 0 && cycles <= 64)
            continue;
        if (opt == 'k' && gpucoord_size_parse(optarg, &chunk) == 0 && chunk > 0)
            continue;
        fprintf(stderr, "usage: model-bench [--bytes SIZE] [--cycles 1..64] [--chunk SIZE]\n");
        return 2;
    }
    if (gc_model_store_open(&s, 0, chunk, err, sizeof(err)) < 0) {
        fprintf(stderr, "model-bench: %s\n", err);
        return 1;
    }
    left = bytes;
    for (int i = 0; i < BENCH_MODELS; i++) {
        uint64_t b = i == BENCH_MODELS - 1 ? left : (uint64_t)((double)bytes * shares[i]);
        left -= b;
        if (gc_model_add(&s,
                         i == 0   ? "a"
                         : i == 1 ? "b"
                                  : "c",
                         b, (uint64_t)i, true, &m[i], err, sizeof(err)) < 0 ||
            gc_model_load(&s, m[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "model-bench: %s\n", err);
            return 1;
        }
    }
    for (int c = 0; c < cycles; c++) {
        int64_t t0 = gc_mono_ns();
        for (int i = 0; i < BENCH_MODELS; i++)
            gc_model_unload(&s, m[i], err, sizeof(err));
        t_un[c] = (double)(gc_mono_ns() - t0) / 1e9;
        t0 = gc_mono_ns();
        for (int i = 0; i < BENCH_MODELS; i++)
            gc_model_reload(&s, m[i], err, sizeof(err));
        t_re[c] = (double)(gc_mono_ns() - t0) / 1e9;
    }
    for (int i = 0; i < BENCH_MODELS; i++)
        gc_model_drop(&s, m[i]);

    /* The floor: plain pinned copies of the same size in the same chunks. */
    nchunks = (bytes + chunk - 1) / chunk;
    dev = calloc(nchunks, sizeof(*dev));
    if (s.cuda.cuMemHostAlloc((void **)&host, bytes, 0) != CUDA_SUCCESS || dev == NULL) {
        fprintf(stderr, "model-bench: cannot allocate the copy buffers\n");
        return 1;
    }
    for (uint64_t i = 0; i < nchunks; i++) {
        uint64_t n = i == nchunks - 1 ? bytes - i * chunk : chunk;
        if (s.cuda.cuMemAlloc(&dev[i], (size_t)n) != CUDA_SUCCESS) {
            fprintf(stderr, "model-bench: no room for the copy test\n");
            return 1;
        }
    }
    for (int c = 0; c < cycles; c++) {
        t_d2h[c] = copy_time(&s, dev, host, bytes, false);
        t_h2d[c] = copy_time(&s, dev, host, bytes, true);
    }
    for (uint64_t i = 0; i < nchunks; i++)
        s.cuda.cuMemFree(dev[i]);
    s.cuda.cuMemFreeHost(host);
    free(dev);

    double un = median(t_un, cycles), re = median(t_re, cycles);
    double d2h = median(t_d2h, cycles), h2d = median(t_h2d, cycles);
    double gb = (double)bytes / 1e9;
    printf("| %-38s | %10s | %8s | %9s |\n", "what", "seconds", "GB/s", "vs floor");
    printf("|%s|%s|%s|%s|\n", "----------------------------------------", "------------",
           "----------", "-----------");
    printf("| %-38s | %10.4f | %8.2f | %9s |\n", "pinned copy device->host (floor)", d2h, gb / d2h,
           "1.00");
    printf("| %-38s | %10.4f | %8.2f | %9.3f |\n", "unload (to pinned host copy, free)", un,
           gb / un, un / d2h);
    printf("| %-38s | %10.4f | %8.2f | %9s |\n", "pinned copy host->device (floor)", h2d, gb / h2d,
           "1.00");
    printf("| %-38s | %10.4f | %8.2f | %9.3f |\n", "reload (allocate, copy back, verify)", re,
           gb / re, re / h2d);
    printf("\n%s in %d models, %d cycles (medians), %s chunks; data %s\n",
           gpucoord_size_format(bytes, sz, sizeof(sz)), BENCH_MODELS, cycles,
           gpucoord_size_format(chunk, err, sizeof(err)),
           gc_model_store_retains_data(&s) ? "retained and checksummed"
                                           : "not retained by this device (accounting only)");
    gc_model_store_close(&s);
    return 0;
}
