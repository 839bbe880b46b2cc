/*
 * gpu_hold.c - gpu-hold: a process that holds GPU memory until told to stop.
 *
 *   gpu-hold --bytes SIZE [--device N] [--chunk SIZE] [--seconds S] [--ready-file PATH]
 *
 * Loads the driver API (src/gpu/cuda.c: a real driver or gpusim), retains the
 * device's primary context, allocates SIZE in chunks of --chunk (default: one
 * chunk), then prints "ready pid=PID bytes=N" on stdout and, with
 * --ready-file, writes the same line to PATH (atomically: a temporary file
 * renamed). It then sleeps until SIGTERM or SIGINT, or S seconds, frees
 * everything, removes the ready file and exits 0. Exit 2: out of GPU memory;
 * 1: other errors; 64: bad arguments. Messages go to stderr, one line each.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/size.h"
#include "gpu/gpu.h"

#define HOLD_EXIT_ERROR 1
#define HOLD_EXIT_OOM   2
#define HOLD_EXIT_USAGE 64
/* Most chunks one run allocates. */
#define HOLD_CHUNKS_MAX (1u << 20)
#define HOLD_PATH_MAX   4096

struct hold_args {
    uint64_t bytes;
    uint64_t chunk; /* 0 = all in one */
    int device;
    double seconds; /* < 0 = until a signal */
    const char *ready_file;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: gpu-hold --bytes SIZE [--device N] [--chunk SIZE] [--seconds S] "
               "[--ready-file PATH]\n");
}

static int usage_error(const char *what, const char *value)
{
    fprintf(stderr, "gpu-hold: bad %s '%s'\n", what, value);
    usage(stderr);
    return HOLD_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct hold_args *args)
{
    static const struct option opts[] = {
        {"bytes", required_argument, NULL, 'b'},
        {"device", required_argument, NULL, 'd'},
        {"chunk", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'},
        {"ready-file", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool have_bytes = false;
    char *end;
    long v;
    int opt;

    memset(args, 0, sizeof(*args));
    args->seconds = -1;
    while ((opt = getopt_long(argc, argv, "b:d:c:s:r:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            if (gc_size_parse(optarg, &args->bytes) < 0)
                return usage_error("--bytes", optarg);
            have_bytes = true;
            break;
        case 'c':
            if (gc_size_parse(optarg, &args->chunk) < 0 || args->chunk == 0)
                return usage_error("--chunk", optarg);
            break;
        case 'd':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || v < 0 || v > 1024)
                return usage_error("--device", optarg);
            args->device = (int)v;
            break;
        case 's':
            errno = 0;
            args->seconds = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !isfinite(args->seconds) ||
                args->seconds < 0 || args->seconds > 1e9)
                return usage_error("--seconds", optarg);
            break;
        case 'r':
            if (optarg[0] == '\0' || strlen(optarg) >= HOLD_PATH_MAX - 8)
                return usage_error("--ready-file", optarg);
            args->ready_file = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return HOLD_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "gpu-hold: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return HOLD_EXIT_USAGE;
    }
    if (!have_bytes) {
        fprintf(stderr, "gpu-hold: --bytes is required\n");
        usage(stderr);
        return HOLD_EXIT_USAGE;
    }
    if (args->chunk == 0 || args->chunk > args->bytes)
        args->chunk = args->bytes;
    if (args->chunk > 0 && args->bytes / args->chunk >= HOLD_CHUNKS_MAX) {
        fprintf(stderr, "gpu-hold: more than %u chunks\n", HOLD_CHUNKS_MAX);
        return HOLD_EXIT_USAGE;
    }
    if (args->chunk > SIZE_MAX) {
        fprintf(stderr, "gpu-hold: --chunk too large\n");
        return HOLD_EXIT_USAGE;
    }
    return 0;
}

/* Writes line to path through a temporary file and rename. */
static int write_ready_file(const char *path, const char *line)
{
    char tmp[HOLD_PATH_MAX];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    if (fputs(line, f) == EOF || fclose(f) == EOF) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Sleeps until SIGTERM/SIGINT (blocked in mask) arrives or seconds pass. */
static void wait_for_stop(const sigset_t *mask, double seconds)
{
    struct timespec ts;

    if (seconds < 0) {
        while (sigwaitinfo(mask, NULL) < 0 && errno == EINTR)
            ;
        return;
    }
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    /* Restarting after EINTR resumes the full wait: good enough for a holder. */
    while (sigtimedwait(mask, NULL, &ts) < 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    struct hold_args args;
    struct gc_cuda cuda;
    CUdeviceptr *chunks = NULL;
    CUcontext ctx = NULL;
    CUdevice dev;
    sigset_t mask;
    char err[512], line[128];
    size_t nchunks = 0, want;
    uint64_t done = 0;
    CUresult rc;
    int status = HOLD_EXIT_ERROR;

    status = parse_args(argc, argv, &args);
    if (status != 0)
        return status;
    status = HOLD_EXIT_ERROR;

    /* Block the stop signals first: one that arrives while allocating is
     * taken by the wait instead of killing us with memory half-allocated. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    if (gc_cuda_open(&cuda, err, sizeof(err)) < 0) {
        fprintf(stderr, "gpu-hold: %s\n", err);
        return HOLD_EXIT_ERROR;
    }
    rc = cuda.cuDeviceGet(&dev, args.device);
    if (rc != CUDA_SUCCESS) {
        fprintf(stderr, "gpu-hold: device %d: %s\n", args.device, gc_cuda_strerror(&cuda, rc));
        goto out_close;
    }
    rc = cuda.cuDevicePrimaryCtxRetain(&ctx, dev);
    if (rc != CUDA_SUCCESS) {
        fprintf(stderr, "gpu-hold: cannot create a context on device %d: %s\n", args.device,
                gc_cuda_strerror(&cuda, rc));
        if (rc == CUDA_ERROR_OUT_OF_MEMORY)
            status = HOLD_EXIT_OOM;
        goto out_close;
    }
    rc = cuda.cuCtxSetCurrent(ctx);
    if (rc != CUDA_SUCCESS) {
        fprintf(stderr, "gpu-hold: cuCtxSetCurrent: %s\n", gc_cuda_strerror(&cuda, rc));
        goto out_release;
    }
    want = args.chunk > 0 ? (size_t)((args.bytes + args.chunk - 1) / args.chunk) : 0;
    chunks = calloc(want > 0 ? want : 1, sizeof(*chunks));
    if (chunks == NULL) {
        fprintf(stderr, "gpu-hold: out of host memory\n");
        goto out_release;
    }
    while (done < args.bytes) {
        uint64_t n = args.bytes - done < args.chunk ? args.bytes - done : args.chunk;

        rc = cuda.cuMemAlloc(&chunks[nchunks], (size_t)n);
        if (rc != CUDA_SUCCESS) {
            fprintf(stderr,
                    "gpu-hold: allocating %" PRIu64 " bytes on device %d failed after %" PRIu64
                    " of %" PRIu64 ": %s\n",
                    n, args.device, done, args.bytes, gc_cuda_strerror(&cuda, rc));
            if (rc == CUDA_ERROR_OUT_OF_MEMORY)
                status = HOLD_EXIT_OOM;
            goto out_free;
        }
        nchunks++;
        done += n;
    }

    snprintf(line, sizeof(line), "ready pid=%d bytes=%" PRIu64 "\n", (int)getpid(), done);
    if (args.ready_file != NULL && write_ready_file(args.ready_file, line) < 0) {
        fprintf(stderr, "gpu-hold: cannot write '%s': %s\n", args.ready_file, strerror(errno));
        goto out_free;
    }
    fputs(line, stdout);
    fflush(stdout);

    wait_for_stop(&mask, args.seconds);
    status = 0;

out_free:
    for (size_t i = 0; i < nchunks; i++) {
        rc = cuda.cuMemFree(chunks[i]);
        if (rc != CUDA_SUCCESS && status == 0) {
            fprintf(stderr, "gpu-hold: cuMemFree: %s\n", gc_cuda_strerror(&cuda, rc));
            status = HOLD_EXIT_ERROR;
        }
    }
    free(chunks);
out_release:
    cuda.cuDevicePrimaryCtxRelease(dev);
out_close:
    gc_cuda_close(&cuda);
    if (args.ready_file != NULL && status == 0)
        unlink(args.ready_file);
    return status;
}
