/*
 * adapter_sglang.c - SGLang's memory saver: POST /release_memory_occupation
 * gives the weights and KV cache back, POST /resume_memory_occupation takes
 * them again (both with a JSON body; no "tags" = all of them). The server must
 * run with --enable-memory-saver. It has no route that says whether it is
 * released, so health is GET /health only.
 * https://docs.sglang.io/advanced_features/sglang_for_rl.html
 *
 * Its release can return before the memory is free: NVML decides.
 */
#include "daemon/adapter.h"

#include "common/err.h"

#define SGLANG_HEALTH_TIMEOUT_S 5.0

static int sglang_call(const struct gc_resident_spec *spec, const char *path, double timeout_s,
                       struct gc_adapter_result *res)
{
    json_t *body = json_object();
    int rc;

    if (body == NULL)
        return GC_ENOMEM;
    rc = gc_adapter_step(spec, "POST", path, body, timeout_s, res);
    json_decref(body);
    return rc;
}

static int sglang_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return sglang_call(spec, "/release_memory_occupation", spec->unload_timeout_s, res);
}

static int sglang_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return sglang_call(spec, "/resume_memory_occupation", spec->reload_timeout_s, res);
}

static int sglang_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    /* /flush_cache drops the radix cache, the one thing a release may leave. */
    return gc_adapter_step(spec, "POST", "/flush_cache", NULL, spec->unload_timeout_s, res);
}

static int sglang_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    res->models_loaded = -1;
    return gc_adapter_step(spec, "GET", "/health", NULL, SGLANG_HEALTH_TIMEOUT_S, res);
}

const struct gc_adapter gc_adapter_sglang = {
    .protocol = "sglang",
    .needs_url = true,
    .unload = sglang_unload,
    .reload = sglang_reload,
    .cleanup = sglang_cleanup,
    .health = sglang_health,
};
