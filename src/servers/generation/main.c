/* main.c - generation-server: prompt -> 3D Gaussian-splat PLY, under gpucoordd leases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/size.h"
#include "gpucoord.h"
#include "servers/generation/gen.h"
#include "servers/generation/generation.h"

static const char usage_extra[] =
    "The founding generation server (reference models; see README).\n"
    "Environment:\n"
    "  GENERATION_PORT            port (default 8095; --port wins)\n"
    "  GENERATION_PEAK_BYTES      GPU memory at the pipeline's peak (default 19.6Gi)\n"
    "  GENERATION_STEP_MS         simulated compute per pipeline stage (default 0)\n"
    "  GENERATION_POINTS          splats per model (default 12288, at least 7000)\n"
    "  GENERATION_LEASE_WAIT_S    how long a request waits for its lease (default 600)\n"
    "  GENERATION_PRIORITY        lease priority (default 100)\n"
    "  GENERATION_HOLDER          holder name at the coordinator (default generation)\n"
    "  GENERATION_PIPELINE_CMD    run this command as the pipeline instead (see README)\n"
    "  GENERATION_PIPELINE_TIMEOUT_S  its time limit (default 600)\n"
    "  GENERATION_DEVICE          GPU index (default 0)\n"
    "  GPUCOORD_URL               the coordinator (default http://127.0.0.1:10010)\n"
    "  GPUCOORD_DISABLE=1         run without leases (reproduces the original OOM)\n"
    "  GPUCOORD_REQUIRED=0        generate without a lease when the coordinator is down\n";

/* Shares of GENERATION_PEAK_BYTES: FLUX (text-to-image, loaded on demand) and
 * Hunyuan3D (shape + paint). Both are on the GPU at the peak, during stage 1. */
#define FLUX_SHARE 0.6

static int setup(struct generation_server *gs, char *err, size_t errlen)
{
    const char *url = getenv("GPUCOORD_URL"), *holder = getenv("GENERATION_HOLDER");
    const char *cmd = getenv("GENERATION_PIPELINE_CMD");
    double priority, device, points;
    bool disable;
    uint64_t flux;
    int rc;

    if (gc_env_size("GENERATION_PEAK_BYTES", 21045339750ULL, &gs->peak_bytes, err, errlen) < 0 ||
        gc_env_double("GENERATION_STEP_MS", 0, 0, 3600000, &gs->step_ms, err, errlen) < 0 ||
        gc_env_double("GENERATION_POINTS", GC_GEN_POINTS_DEFAULT, GC_GEN_POINTS_MIN,
                      GC_GEN_POINTS_MAX, &points, err, errlen) < 0 ||
        gc_env_double("GENERATION_LEASE_WAIT_S", 600, 0, 86400, &gs->lease_wait_s, err, errlen) <
            0 ||
        gc_env_double("GENERATION_PRIORITY", 100, -1e6, 1e6, &priority, err, errlen) < 0 ||
        gc_env_double("GENERATION_DEVICE", 0, 0, 15, &device, err, errlen) < 0 ||
        gc_env_double("GENERATION_PIPELINE_TIMEOUT_S", 600, 1, 86400, &gs->pipeline_timeout_s, err,
                      errlen) < 0 ||
        gc_env_bool("GPUCOORD_DISABLE", false, &disable, err, errlen) < 0 ||
        gc_env_bool("GPUCOORD_REQUIRED", true, &gs->require_coordinator, err, errlen) < 0)
        return GC_EINVAL;
    if (gs->peak_bytes < 8192) {
        snprintf(err, errlen, "GENERATION_PEAK_BYTES must be at least 8Ki");
        return GC_EINVAL;
    }
    if (holder != NULL && holder[0] != '\0' && strlen(holder) >= sizeof(gs->holder)) {
        snprintf(err, errlen, "GENERATION_HOLDER is longer than 64 characters");
        return GC_EINVAL;
    }
    if (cmd != NULL && strlen(cmd) >= sizeof(gs->pipeline_cmd)) {
        snprintf(err, errlen, "GENERATION_PIPELINE_CMD is longer than %zu bytes",
                 sizeof(gs->pipeline_cmd) - 1);
        return GC_EINVAL;
    }
    snprintf(gs->pipeline_cmd, sizeof(gs->pipeline_cmd), "%s", cmd ? cmd : "");
    gs->points = (unsigned)points;
    gs->priority = (int)priority;
    gs->device = (int)device;
    gs->coordination = !disable;
    snprintf(gs->holder, sizeof(gs->holder), "%s", holder && holder[0] ? holder : "generation");
    snprintf(gs->coordinator_url, sizeof(gs->coordinator_url), "%s",
             url && url[0] ? url : "http://127.0.0.1:10010");

    /* The CUDA context is made now, at start: its cost shows in NVML before any lease. */
    rc = gc_model_store_open(&gs->store, gs->device, 0, err, errlen);
    if (rc < 0)
        return rc;
    flux = (uint64_t)((double)gs->peak_bytes * FLUX_SHARE);
    rc = gc_model_add(&gs->store, "flux-t2i", flux, 0xf1, false, &gs->flux, err, errlen);
    if (rc == 0)
        rc = gc_model_add(&gs->store, "hunyuan3d", gs->peak_bytes - flux, 0x3d, false, &gs->hunyuan,
                          err, errlen);
    return rc;
}

int main(int argc, char **argv)
{
    static struct generation_server gs;
    struct gc_http_server_config hc = {0};
    struct gc_http_server *http = NULL;
    char err[512], size[GC_SIZE_BUF];
    uint64_t body_max;
    int rc;

    gc_log_init("generation-server", GC_LOG_INFO);
    rc = gc_server_parse_args(argc, argv, "generation-server", usage_extra, GENERATION_PORT,
                              "GENERATION_PORT", &gs.args);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (gc_env_size("GENERATION_BODY_MAX", GENERATION_BODY_MAX_DEFAULT, &body_max, err,
                    sizeof(err)) < 0) {
        fprintf(stderr, "generation-server: %s\n", err);
        return 2;
    }
    gc_server_block_signals();
    pthread_mutex_init(&gs.gpu_lock, NULL);
    pthread_mutex_init(&gs.store_lock, NULL);
    pthread_mutex_init(&gs.stats_lock, NULL);
    rc = setup(&gs, err, sizeof(err));
    if (rc < 0) {
        gc_error("%s", err);
        return rc == GC_EINVAL ? 2 : 1;
    }
    hc.host = gs.args.host;
    hc.port = gs.args.port;
    hc.body_max = (size_t)body_max;
    hc.conn_limit = 256;
    hc.handler = generation_handle;
    hc.ctx = &gs;
    if (gc_http_server_start(&hc, &http, err, sizeof(err)) < 0) {
        gc_error("%s", err);
        return 1;
    }
    gc_info("listening on %s:%d; pipeline %s, peak %s, %s", gs.args.host, gc_http_server_port(http),
            gs.pipeline_cmd[0] ? "external command" : "reference stages",
            gc_size_format(gs.peak_bytes, size, sizeof(size)),
            gs.coordination ? "leases from the coordinator"
                            : "GPUCOORD_DISABLE=1: no coordination");
    gc_server_wait_signal();
    gc_info("stopping");
    gc_http_server_stop(http);
    gc_model_store_close(&gs.store);
    return 0;
}
