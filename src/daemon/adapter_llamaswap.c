/*
 * adapter_llamaswap.c - llama-swap, the proxy that starts and stops one
 * upstream server per model. Unload one model: POST /api/models/unload/{model};
 * all of them (no 'model' registered): POST /api/models/unload, or the older
 * GET /unload on servers without it. Reload of one model: GET
 * /upstream/{model}/health, which makes llama-swap start that model's server;
 * with no model there is nothing to name, and llama-swap starts one on the next
 * request. State: GET /running lists {"running": [{"model", "state"}]}.
 * https://github.com/mostlygeek/llama-swap (README, "llama-swap API")
 *
 * The upstream servers are children of llama-swap: register llama-swap's pid.
 */
#include "daemon/adapter.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"

#define LLAMASWAP_HEALTH_TIMEOUT_S 5.0
#define LLAMASWAP_PATH_MAX         (GC_SPEC_MODEL_MAX * 3 + 64)

static int llamaswap_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    char path[LLAMASWAP_PATH_MAX];
    int rc;

    if (spec->model[0] != '\0') {
        if (gc_adapter_path_model(path, sizeof(path), "/api/models/unload/", spec->model, "") < 0)
            return GC_EINVAL;
        return gc_adapter_step(spec, "POST", path, NULL, spec->unload_timeout_s, res);
    }
    rc = gc_adapter_step(spec, "POST", "/api/models/unload", NULL, spec->unload_timeout_s, res);
    if (rc == GC_EIO && (res->http_status == 404 || res->http_status == 405))
        rc = gc_adapter_step(spec, "GET", "/unload", NULL, spec->unload_timeout_s, res);
    return rc;
}

static int llamaswap_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    char path[LLAMASWAP_PATH_MAX];

    if (spec->model[0] == '\0')
        return gc_adapter_step(spec, "GET", "/running", NULL, spec->reload_timeout_s, res);
    if (gc_adapter_path_model(path, sizeof(path), "/upstream/", spec->model, "/health") < 0)
        return GC_EINVAL;
    return gc_adapter_step(spec, "GET", path, NULL, spec->reload_timeout_s, res);
}

static int llamaswap_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return llamaswap_unload(spec, res);
}

static int llamaswap_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    json_t *body, *list, *m;
    size_t i;
    int rc = gc_adapter_get_list(spec, "/running", "running", LLAMASWAP_HEALTH_TIMEOUT_S, res,
                                 &body, &list);

    if (rc < 0)
        return rc;
    if (list != NULL) {
        res->models_loaded = 0;
        json_array_foreach(list, i, m)
        {
            const char *name = json_string_value(json_object_get(m, "model"));
            if (spec->model[0] == '\0' || (name != NULL && strcmp(name, spec->model) == 0))
                res->models_loaded = 1;
        }
    }
    json_decref(body);
    return 0;
}

const struct gc_adapter gc_adapter_llamaswap = {
    .protocol = "llama-swap",
    .needs_url = true,
    .needs_model = true,
    .model_optional = true,
    .unload = llamaswap_unload,
    .reload = llamaswap_reload,
    .cleanup = llamaswap_cleanup,
    .health = llamaswap_health,
};
