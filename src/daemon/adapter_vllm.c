/*
 * adapter_vllm.c - vLLM's sleep mode: POST /sleep?level=1 offloads the weights
 * to CPU memory and drops the KV cache, POST /wake_up brings them back, GET
 * /is_sleeping answers {"is_sleeping": bool}. The server must run with
 * --enable-sleep-mode and VLLM_SERVER_DEV_MODE=1 (the routes exist only then).
 * https://docs.vllm.ai/en/latest/features/sleep_mode/
 * https://docs.vllm.ai/en/v0.14.0/api/vllm/entrypoints/serve/sleep/api_router/
 *
 * /sleep can answer before the memory is free (GPU-FACTS.md): the job's NVML
 * verification decides, never the answer.
 */
#include "daemon/adapter.h"

#include "common/err.h"

/* Seconds allowed for a health probe. */
#define VLLM_HEALTH_TIMEOUT_S 5.0

static int vllm_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return gc_adapter_step(spec, "POST", "/sleep?level=1", NULL, spec->unload_timeout_s, res);
}

static int vllm_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return gc_adapter_step(spec, "POST", "/wake_up", NULL, spec->reload_timeout_s, res);
}

static int vllm_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    /* Asking again is harmless on a sleeping engine and finishes a sleep that was
     * answered early; there is no separate cache-flush route. */
    return gc_adapter_step(spec, "POST", "/sleep?level=1", NULL, spec->unload_timeout_s, res);
}

static int vllm_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    json_t *body = NULL;
    json_t *v;
    int rc = gc_adapter_http(spec, "GET", "/is_sleeping", VLLM_HEALTH_TIMEOUT_S, res, &body);

    res->models_loaded = -1;
    if (rc < 0)
        return rc;
    v = json_object_get(body, "is_sleeping");
    if (json_is_boolean(v))
        res->models_loaded = !json_is_true(v);
    json_decref(body);
    return res->http_status == 200 ? 0 : GC_EIO;
}

const struct gc_adapter gc_adapter_vllm = {
    .protocol = "vllm",
    .needs_url = true,
    .unload = vllm_unload,
    .reload = vllm_reload,
    .cleanup = vllm_cleanup,
    .health = vllm_health,
};
