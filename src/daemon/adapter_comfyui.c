/*
 * adapter_comfyui.c - ComfyUI: POST /free {"unload_models": true,
 * "free_memory": true} asks it to drop its models and caches; GET /system_stats
 * says it is alive. It has no load route: it loads what a workflow needs when
 * the next prompt runs, so a reload asks nothing (reloads_lazily) and the
 * memory comes back with the next request - which is safe when those requests
 * come through `gpucoord proxy`, which demands the resident first.
 * https://docs.comfy.org/development/comfyui-server/comms_routes
 *
 * /free only sets a flag that the prompt worker acts on later: the answer comes
 * before any memory is free, and NVML verification decides.
 */
#include "daemon/adapter.h"

#include "common/err.h"

#define COMFYUI_HEALTH_TIMEOUT_S 5.0

static int comfyui_free(const struct gc_resident_spec *spec, double timeout_s,
                        struct gc_adapter_result *res)
{
    json_t *body = json_pack("{s:b, s:b}", "unload_models", 1, "free_memory", 1);
    int rc;

    if (body == NULL)
        return GC_ENOMEM;
    rc = gc_adapter_step(spec, "POST", "/free", body, timeout_s, res);
    json_decref(body);
    return rc;
}

static int comfyui_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return comfyui_free(spec, spec->unload_timeout_s, res);
}

static int comfyui_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    res->models_loaded = -1; /* it does not say which models it holds */
    return gc_adapter_step(spec, "GET", "/system_stats", NULL, COMFYUI_HEALTH_TIMEOUT_S, res);
}

static int comfyui_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    /* Nothing to ask: it must only be there to load on its next prompt. */
    return comfyui_health(spec, res);
}

static int comfyui_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return comfyui_free(spec, spec->unload_timeout_s, res);
}

const struct gc_adapter gc_adapter_comfyui = {
    .protocol = "comfyui",
    .needs_url = true,
    .reloads_lazily = true,
    .unload = comfyui_unload,
    .reload = comfyui_reload,
    .cleanup = comfyui_cleanup,
    .health = comfyui_health,
};
