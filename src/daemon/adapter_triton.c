/*
 * adapter_triton.c - one model of a Triton Inference Server started with
 * --model-control-mode=explicit (the load and unload routes answer errors in
 * the other modes). Unload: POST /v2/repository/models/{model}/unload; reload:
 * POST /v2/repository/models/{model}/load; state: GET /v2/models/{model}/ready
 * (200 when ready, an error status otherwise).
 * https://docs.nvidia.com/deeplearning/sdk/triton-inference-server-guide/docs/protocol/extension_model_repository.html
 * https://docs.nvidia.com/deeplearning/sdk/triton-inference-server-guide/docs/model_management.html
 *
 * Triton's unload is asynchronous: it answers before the model's memory is
 * released, so NVML verification decides.
 */
#include "daemon/adapter.h"

#include <stdio.h>

#include "common/err.h"

#define TRITON_HEALTH_TIMEOUT_S 5.0
#define TRITON_PATH_MAX         (GC_SPEC_MODEL_MAX * 3 + 64)

static int triton_repo(const struct gc_resident_spec *spec, const char *verb, double timeout_s,
                       struct gc_adapter_result *res)
{
    char path[TRITON_PATH_MAX];

    if (gc_adapter_path_model(path, sizeof(path), "/v2/repository/models/", spec->model, verb) <
        0) {
        snprintf(res->detail, sizeof(res->detail), "model name too long");
        return GC_EINVAL;
    }
    return gc_adapter_step(spec, "POST", path, NULL, timeout_s, res);
}

static int triton_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return triton_repo(spec, "/unload", spec->unload_timeout_s, res);
}

static int triton_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return triton_repo(spec, "/load", spec->reload_timeout_s, res);
}

static int triton_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    (void)spec;
    (void)res;
    return 0; /* nothing to flush: an unload in progress only needs time */
}

static int triton_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    char path[TRITON_PATH_MAX];
    json_t *body = NULL;
    int rc;

    res->models_loaded = -1;
    if (gc_adapter_path_model(path, sizeof(path), "/v2/models/", spec->model, "/ready") < 0)
        return GC_EINVAL;
    rc = gc_adapter_http(spec, "GET", path, TRITON_HEALTH_TIMEOUT_S, res, &body);
    json_decref(body);
    if (rc < 0)
        return rc;
    /* The server answered: ready or not, that is the model's state. */
    res->models_loaded = res->http_status == 200;
    return res->http_status < 500 ? 0 : GC_EIO;
}

const struct gc_adapter gc_adapter_triton = {
    .protocol = "triton",
    .needs_url = true,
    .needs_model = true,
    .unload = triton_unload,
    .reload = triton_reload,
    .cleanup = triton_cleanup,
    .health = triton_health,
};
