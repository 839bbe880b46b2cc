/*
 * lease_bench.c - lease acquire+release round trips through libgpucoord against a
 * running gpucoordd, with a baseline of bare HTTP round trips (GET /health) over
 * the same transport in the same run.
 *
 *   lease-bench --url URL [--clients N] [--seconds S] [--bytes SIZE] [--baseline]
 *   lease-bench --pingpong [--seconds S]
 *
 * --pingpong measures the machine's own floor for one round trip: two threads
 * passing a byte over a socketpair (no HTTP, no coordinator).
 *
 * Prints one line: transport, clients, round trips/s, p50 and p99 in µs.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "gpucoord.h"

/* Samples kept per client (the rest are counted, not timed). */
#define BENCH_SAMPLES_MAX 2000000

struct worker {
    const char *url;
    uint64_t bytes;
    bool baseline;
    int id;
    int64_t stop_ns;
    uint32_t *samples_ns;
    size_t nsamples;
    uint64_t ops;
    int errors;
    char err[256];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    gpucoord_client *c;
    struct gpucoord_lease_request req;
    char holder[32];

    if (gpucoord_client_new(w->url, &c) < 0) {
        snprintf(w->err, sizeof(w->err), "cannot create a client for %s", w->url);
        w->errors++;
        return NULL;
    }
    snprintf(holder, sizeof(holder), "bench-%d", w->id);
    gpucoord_lease_request_init(&req);
    req.holder = holder;
    req.bytes = w->bytes;
    req.gpu = 0;
    req.heartbeat = 0; /* released within microseconds: no heartbeat thread */
    while (gc_mono_ns() < w->stop_ns) {
        int64_t t0 = gc_mono_ns();
        int rc;
        if (w->baseline) {
            long status = 0;
            char *body = NULL;
            rc = gpucoord_request(c, "GET", "/health", NULL, 5000, &status, &body);
            free(body);
            if (rc == 0 && status != 200)
                rc = -1;
        } else {
            gpucoord_lease *lease = NULL;
            rc = gpucoord_lease_acquire(c, &req, &lease);
            if (rc == 0)
                rc = gpucoord_lease_release(lease);
        }
        if (rc != 0) {
            if (w->errors++ == 0)
                snprintf(w->err, sizeof(w->err), "%s: %s", gpucoord_strerror(rc),
                         gpucoord_client_message(c));
            continue;
        }
        if (w->nsamples < BENCH_SAMPLES_MAX)
            w->samples_ns[w->nsamples++] = (uint32_t)(gc_mono_ns() - t0);
        w->ops++;
    }
    gpucoord_client_free(c);
    return NULL;
}

static int cmp_u32(const void *a, const void *b);

static void *pong_main(void *arg)
{
    int fd = *(int *)arg;
    char c;

    while (read(fd, &c, 1) == 1 && c != 'q') {
        if (write(fd, &c, 1) != 1)
            break;
    }
    return NULL;
}

/* The round-trip floor of this machine: thread to thread over a socketpair. */
static int pingpong(double seconds)
{
    static uint32_t samples[BENCH_SAMPLES_MAX];
    int sv[2];
    pthread_t tid;
    size_t n = 0;
    int64_t stop;
    char c = 'p';

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 1;
    pthread_create(&tid, NULL, pong_main, &sv[1]);
    stop = gc_mono_ns() + (int64_t)(seconds * 1e9);
    while (gc_mono_ns() < stop && n < BENCH_SAMPLES_MAX) {
        int64_t t0 = gc_mono_ns();
        if (write(sv[0], &c, 1) != 1 || read(sv[0], &c, 1) != 1)
            return 1;
        samples[n++] = (uint32_t)(gc_mono_ns() - t0);
    }
    c = 'q';
    if (write(sv[0], &c, 1) != 1)
        return 1;
    pthread_join(tid, NULL);
    qsort(samples, n, sizeof(samples[0]), cmp_u32);
    printf("| %-28s | %7d | %10.0f | %8.1f | %8.1f | %6d |\n", "socketpair ping-pong (floor)", 1,
           (double)n / seconds, samples[n / 2] / 1e3, samples[(size_t)((double)n * 0.99)] / 1e3, 0);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},     {"clients", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'}, {"bytes", required_argument, NULL, 'b'},
        {"baseline", no_argument, NULL, 'B'},      {"label", required_argument, NULL, 'l'},
        {"pingpong", no_argument, NULL, 'P'},      {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *label = NULL;
    int clients = 1, opt;
    double seconds = 3;
    uint64_t bytes = 1ULL << 30;
    bool baseline = false, ping = false;
    struct worker *ws;
    pthread_t *tids;
    uint32_t *all;
    size_t total = 0, k = 0;
    uint64_t ops = 0;
    int errors = 0;
    int64_t t0, t1;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'c':
            clients = atoi(optarg);
            break;
        case 's':
            seconds = atof(optarg);
            break;
        case 'b':
            if (gpucoord_size_parse(optarg, &bytes) < 0) {
                fprintf(stderr, "lease-bench: bad size '%s'\n", optarg);
                return 2;
            }
            break;
        case 'B':
            baseline = true;
            break;
        case 'l':
            label = optarg;
            break;
        case 'P':
            ping = true;
            break;
        default:
            fprintf(stderr, "usage: lease-bench --url URL [--clients N] [--seconds S] "
                            "[--bytes SIZE] [--baseline] [--label TEXT]\n");
            return 2;
        }
    }
    if (ping)
        return pingpong(seconds);
    if (url == NULL || clients < 1 || clients > 256 || seconds <= 0) {
        fprintf(stderr, "lease-bench: need --url, 1..256 clients, seconds > 0\n");
        return 2;
    }
    ws = calloc((size_t)clients, sizeof(*ws));
    tids = calloc((size_t)clients, sizeof(*tids));
    t0 = gc_mono_ns();
    for (int i = 0; i < clients; i++) {
        ws[i].url = url;
        ws[i].bytes = bytes;
        ws[i].baseline = baseline;
        ws[i].id = i;
        ws[i].stop_ns = t0 + (int64_t)(seconds * 1e9);
        ws[i].samples_ns = malloc(BENCH_SAMPLES_MAX * sizeof(uint32_t));
        pthread_create(&tids[i], NULL, worker_main, &ws[i]);
    }
    for (int i = 0; i < clients; i++)
        pthread_join(tids[i], NULL);
    t1 = gc_mono_ns();
    for (int i = 0; i < clients; i++) {
        total += ws[i].nsamples;
        ops += ws[i].ops;
        errors += ws[i].errors;
        if (ws[i].errors)
            fprintf(stderr, "lease-bench: client %d: %d errors, first: %s\n", i, ws[i].errors,
                    ws[i].err);
    }
    all = malloc((total ? total : 1) * sizeof(uint32_t));
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, ws[i].samples_ns, ws[i].nsamples * sizeof(uint32_t));
        k += ws[i].nsamples;
    }
    qsort(all, total, sizeof(uint32_t), cmp_u32);
    printf("| %-28s | %7d | %10.0f | %8.1f | %8.1f | %6d |\n",
           label ? label : (baseline ? "GET /health (baseline)" : "lease acquire+release"), clients,
           (double)ops / ((double)(t1 - t0) / 1e9), total ? all[total / 2] / 1e3 : 0.0,
           total ? all[(size_t)(total * 0.99)] / 1e3 : 0.0, errors);
    for (int i = 0; i < clients; i++)
        free(ws[i].samples_ns);
    free(all);
    free(ws);
    free(tids);
    return errors ? 1 : 0;
}
