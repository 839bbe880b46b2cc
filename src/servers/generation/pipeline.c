/*
 * pipeline.c - one generation: take a lease of the pipeline's peak bytes, run the
 * reference stages (text-to-image with FLUX's share loaded on demand, image-to-shape
 * and shape-to-splats with Hunyuan3D's share), each holding its GPU memory while it
 * runs, then free everything and release the lease - on every path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/size.h"
#include "gpucoord.h"
#include "servers/common/ply.h"
#include "servers/generation/gen.h"
#include "servers/generation/generation.h"

static int fail(struct generation_result *res, int status, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct generation_result *res, int status, int rc, const char *fmt, ...)
{
    va_list ap;

    res->status = status;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
    return rc;
}

/* The lease around the GPU work. *ret_lease stays NULL when coordination is off. */
static int take_lease(struct generation_server *gs, int pid, gpucoord_lease **ret_lease,
                      struct generation_result *res)
{
    struct gpucoord_lease_request lr;
    gpucoord_client *c;
    char size[GC_SIZE_BUF];
    int rc;

    *ret_lease = NULL;
    if (!gs->coordination)
        return 0;
    if (gpucoord_client_new(gs->coordinator_url, &c) < 0)
        return fail(res, 500, GC_EINVAL, "bad GPUCOORD_URL '%s'", gs->coordinator_url);
    gpucoord_lease_request_init(&lr);
    lr.holder = gs->holder;
    lr.bytes = gs->peak_bytes;
    lr.gpu = gs->device;
    lr.pid = pid;
    lr.priority = gs->priority;
    lr.wait_s = gs->lease_wait_s;
    rc = gpucoord_lease_acquire(c, &lr, ret_lease);
    if (rc == GPUCOORD_ECONNECT && !gs->require_coordinator) {
        gc_warn("coordinator unreachable (%s); generating without a lease",
                gpucoord_client_message(c));
        rc = 0;
    } else if (rc < 0) {
        int status = rc == GPUCOORD_ENEVERFITS ? 507 : 503;
        fail(res, status, rc, "no GPU memory lease for %s: %s",
             gc_size_format(gs->peak_bytes, size, sizeof(size)), gpucoord_client_message(c));
    }
    gpucoord_client_free(c);
    return rc;
}

static void drop_weights(struct generation_server *gs)
{
    pthread_mutex_lock(&gs->store_lock);
    gc_model_drop(&gs->store, gs->flux);
    gc_model_drop(&gs->store, gs->hunyuan);
    gc_model_store_cleanup(&gs->store);
    gs->weights_loaded = false;
    pthread_mutex_unlock(&gs->store_lock);
}

static int load_weights(struct generation_server *gs, struct gc_model *m,
                        struct generation_result *res)
{
    char err[256], size[GC_SIZE_BUF];
    int rc;

    pthread_mutex_lock(&gs->store_lock);
    rc = gc_model_load(&gs->store, m, err, sizeof(err));
    if (rc == 0)
        gs->weights_loaded = true;
    pthread_mutex_unlock(&gs->store_lock);
    if (rc == GC_EOOM)
        return fail(res, 500, rc, "CUDA out of memory loading %s (%s): %s", m->name,
                    gc_size_format(m->bytes, size, sizeof(size)), err);
    if (rc < 0)
        return fail(res, 500, rc, "cannot load %s: %s", m->name, err);
    return 0;
}

/* Simulated compute of one stage; false when the client gave up meanwhile. */
static bool stage_compute(struct generation_server *gs, const struct generation_request *req)
{
    int64_t end = gc_mono_ms() + (int64_t)gs->step_ms;

    while (gc_mono_ms() < end) {
        int64_t left = end - gc_mono_ms();
        gc_sleep_ms(left < 50 ? left : 50);
        if (req->http != NULL && gc_http_req_client_gone(req->http))
            return false;
    }
    return req->http == NULL || !gc_http_req_client_gone(req->http);
}

static int run_stages(struct generation_server *gs, const struct generation_request *req,
                      struct generation_result *res)
{
    struct gc_gen_concept *concept = NULL;
    struct gc_gen_shape *shape = NULL;
    struct gc_splats *splats = NULL;
    size_t plen = strlen(req->prompt);
    int rc;

    concept = malloc(sizeof(*concept));
    shape = malloc(sizeof(*shape));
    if (concept == NULL || shape == NULL) {
        rc = fail(res, 500, GC_ENOMEM, "out of host memory");
        goto out;
    }
    /* Hunyuan3D's weights for the whole run; FLUX's only for stage 1. */
    rc = load_weights(gs, gs->hunyuan, res);
    if (rc == 0)
        rc = load_weights(gs, gs->flux, res);
    if (rc < 0)
        goto out;
    rc = gc_gen_concept(req->prompt, plen, req->seed, concept);
    if (rc < 0) {
        fail(res, 400, rc, "cannot read the prompt");
        goto out;
    }
    if (!stage_compute(gs, req))
        goto out_gone;
    pthread_mutex_lock(&gs->store_lock);
    gc_model_drop(&gs->store, gs->flux);
    pthread_mutex_unlock(&gs->store_lock);

    rc = gc_gen_shape(concept, shape);
    if (rc < 0) {
        fail(res, 500, rc, "shape stage failed");
        goto out;
    }
    if (!stage_compute(gs, req))
        goto out_gone;
    rc = gc_gen_splats(shape, gs->points, &splats);
    if (rc < 0) {
        fail(res, 500, rc, "splat stage failed");
        goto out;
    }
    if (!stage_compute(gs, req))
        goto out_gone;
    rc = gc_ply_write(splats, &res->ply, &res->ply_len);
    if (rc < 0)
        fail(res, 500, rc, "cannot write the PLY");
    goto out;

out_gone:
    rc = fail(res, 499, GC_EIO, "the client went away; generation abandoned");
out:
    drop_weights(gs);
    gc_splats_free(splats);
    free(concept);
    free(shape);
    return rc;
}

int generation_run(struct generation_server *gs, const struct generation_request *req,
                   struct generation_result *res)
{
    gpucoord_lease *lease = NULL;
    int64_t t0 = gc_mono_ns();
    int rc;

    memset(res, 0, sizeof(*res));
    if (gs->pipeline_cmd[0] != '\0')
        return generation_run_external(gs, req, res);
    rc = take_lease(gs, 0, &lease, res);
    if (rc < 0)
        return rc;
    if (lease != NULL) {
        snprintf(res->lease_id, sizeof(res->lease_id), "%s", gpucoord_lease_id(lease));
        if (gpucoord_lease_evicted(lease)[0] != '\0')
            gc_info("lease %s granted after %.2f s, evicted: %s", gpucoord_lease_id(lease),
                    gpucoord_lease_waited_s(lease), gpucoord_lease_evicted(lease));
    }
    pthread_mutex_lock(&gs->gpu_lock);
    rc = run_stages(gs, req, res);
    pthread_mutex_unlock(&gs->gpu_lock);
    /* The memory is freed above, before the lease goes back. */
    gpucoord_lease_release(lease);
    res->time_s = (double)(gc_mono_ns() - t0) / 1e9;
    return rc;
}
