/*
 * load_client.c - one holder of the load test: takes leases of random sizes through
 * libgpucoord, really allocates the granted bytes through the driver API (gpusim),
 * holds them a random while, frees and releases, until time is up or SIGTERM.
 *
 *   load-client --seconds S --max SIZE --seed N --stats PATH [--hold-ms MS]
 *
 * Writes {"granted","failed","timeouts","ooms","grant_ms":[...]} to PATH at exit.
 * Exit 3 if the GPU ever answered out-of-memory for granted bytes.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "gpu/gpu.h"
#include "gpucoord.h"

#define SAMPLES_MAX 100000
#define PRIORITIES  3

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"seconds", required_argument, NULL, 's'}, {"max", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 'r'},    {"stats", required_argument, NULL, 'o'},
        {"hold-ms", required_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    static const int priorities[PRIORITIES] = {50, 100, 150};
    static double samples[SAMPLES_MAX];
    double seconds = 10;
    uint64_t max_bytes = 8ULL << 30, seed = 1;
    int hold_ms = 200, opt;
    const char *stats = NULL;
    unsigned granted = 0, failed = 0, timeouts = 0, ooms = 0, nsamples = 0;
    struct gc_cuda cuda;
    CUcontext ctx;
    CUdevice dev;
    gpucoord_client *client;
    char err[256], holder[32];
    int64_t end;
    FILE *f;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            seconds = atof(optarg);
            break;
        case 'm':
            if (gpucoord_size_parse(optarg, &max_bytes) < 0)
                return 64;
            break;
        case 'r':
            seed = strtoull(optarg, NULL, 10) * 2654435761ULL + 1;
            break;
        case 'o':
            stats = optarg;
            break;
        case 'h':
            hold_ms = atoi(optarg);
            break;
        default:
            return 64;
        }
    }
    signal(SIGTERM, on_term);
    /* Like a real service: the CUDA context exists before any lease is asked for. */
    if (gc_cuda_open(&cuda, err, sizeof(err)) < 0 || cuda.cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        cuda.cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS) {
        fprintf(stderr, "load-client: no GPU: %s\n", err);
        return 1;
    }
    cuda.cuCtxSetCurrent(ctx);
    if (gpucoord_client_new(NULL, &client) < 0)
        return 1;
    snprintf(holder, sizeof(holder), "load-%d", (int)getpid());
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);
    end = gc_mono_ms() + (int64_t)(seconds * 1000.0);
    while (!stopping && gc_mono_ms() < end) {
        struct gpucoord_lease_request req;
        gpucoord_lease *lease = NULL;
        uint64_t bytes = (256ULL << 20) + rnd(&seed) % (max_bytes - (256ULL << 20));
        CUdeviceptr p = 0;
        int64_t t0 = gc_mono_ns();
        int rc;

        gpucoord_lease_request_init(&req);
        req.holder = holder;
        req.bytes = bytes;
        req.gpu = 0;
        req.priority = priorities[rnd(&seed) % PRIORITIES];
        req.ttl_s = 2;
        req.wait_s = 10;
        rc = gpucoord_lease_acquire(client, &req, &lease);
        if (rc == GPUCOORD_EQUEUED) { /* still queued when the wait ended: withdrawn */
            timeouts++;
            continue;
        }
        if (rc < 0) {
            failed++;
            usleep(20000);
            continue;
        }
        granted++;
        if (nsamples < SAMPLES_MAX)
            samples[nsamples++] = (double)(gc_mono_ns() - t0) / 1e6;
        if (cuda.cuMemAlloc(&p, (size_t)bytes) != CUDA_SUCCESS) {
            ooms++;
            fprintf(stderr, "load-client %d: OOM allocating %llu granted bytes (lease %s)\n",
                    (int)getpid(), (unsigned long long)bytes, gpucoord_lease_id(lease));
        }
        usleep((useconds_t)(rnd(&seed) % (uint64_t)(hold_ms + 1)) * 1000);
        if (p != 0)
            cuda.cuMemFree(p);
        gpucoord_lease_release(lease);
    }
    gpucoord_client_free(client);
    if (stats != NULL) {
        f = fopen(stats, "w");
        if (f != NULL) {
            fprintf(f, "{\"granted\":%u,\"failed\":%u,\"timeouts\":%u,\"ooms\":%u,\"grant_ms\":[",
                    granted, failed, timeouts, ooms);
            for (unsigned i = 0; i < nsamples; i++)
                fprintf(f, "%s%.3f", i ? "," : "", samples[i]);
            fprintf(f, "]}\n");
            fclose(f);
        }
    }
    return ooms ? 3 : 0;
}
