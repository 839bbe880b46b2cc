/*
 * generation.h - the founding generation server: prompt -> Gaussian-splat PLY
 * through a staged reference pipeline that holds its declared GPU memory while it
 * runs, under a gpucoordd lease taken before the GPU work and released after it,
 * on every path.
 */
#ifndef GC_GENERATION_H
#define GC_GENERATION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/http_server.h"
#include "servers/common/model.h"
#include "servers/common/server.h"

#define GENERATION_PORT             8095
#define GENERATION_PROMPT_MAX_CHARS 1024
#define GENERATION_BODY_MAX_DEFAULT (1ULL << 20)

struct generation_server {
    struct gc_server_args args;
    char coordinator_url[512];
    char holder[65];
    bool coordination;        /* take leases from gpucoordd (GPUCOORD_DISABLE=0) */
    bool require_coordinator; /* refuse to run when it cannot be reached */
    uint64_t peak_bytes;      /* GENERATION_PEAK_BYTES */
    double step_ms;           /* GENERATION_STEP_MS: simulated compute per stage */
    double lease_wait_s;
    int priority;
    int device;
    unsigned points;
    char pipeline_cmd[1024]; /* GENERATION_PIPELINE_CMD: an external pipeline stage */
    double pipeline_timeout_s;

    struct gc_model_store store;
    struct gc_model *flux;    /* text-to-image, loaded on demand */
    struct gc_model *hunyuan; /* shape + paint */
    pthread_mutex_t gpu_lock; /* one generation on the GPU at a time */
    pthread_mutex_t store_lock;

    pthread_mutex_t stats_lock;
    unsigned total, successful, failed, running;
    double total_time_s, last_time_s;
    bool weights_loaded;
};

struct generation_request {
    const char *prompt;
    uint64_t seed;
    const struct gc_http_req *http; /* to notice a client that went away */
};

struct generation_result {
    int status; /* HTTP status when it failed */
    char error[512];
    uint8_t *ply; /* malloc'd */
    size_t ply_len;
    double time_s;
    char lease_id[64];
};

/* Runs one generation end to end: lease, stages, release. 0 or an error with
 * res->status and res->error set. */
int generation_run(struct generation_server *gs, const struct generation_request *req,
                   struct generation_result *res);
/* The external-command stage (pipeline_cmd). */
int generation_run_external(struct generation_server *gs, const struct generation_request *req,
                            struct generation_result *res);

void generation_handle(void *ctx, const struct gc_http_req *req, struct gc_http_resp *resp);

#endif
