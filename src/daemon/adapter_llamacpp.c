/*
 * adapter_llamacpp.c - one model of a llama-server in router mode (started with
 * no model, e.g. `llama-server --models-dir DIR`): POST /models/unload
 * {"model"} and POST /models/load {"model"}; GET /models lists each model with
 * "status": {"value": "loaded" | "loading" | "unloaded"}. Each model runs in a
 * child process of the router, which counts for the router's registered pid.
 * https://huggingface.co/blog/ggml-org/model-management-in-llamacpp
 * https://github.com/ggml-org/llama.cpp/tree/master/tools/server
 *
 * A single-model llama-server has no unload route: register it as a `process`
 * resident (docs/integrations.md).
 */
#include "daemon/adapter.h"

#include <string.h>

#include "common/err.h"

#define LLAMACPP_HEALTH_TIMEOUT_S 5.0

static int llamacpp_call(const struct gc_resident_spec *spec, const char *path, double timeout_s,
                         struct gc_adapter_result *res)
{
    json_t *body = json_pack("{s:s}", "model", spec->model);
    int rc;

    if (body == NULL)
        return GC_ENOMEM;
    rc = gc_adapter_step(spec, "POST", path, body, timeout_s, res);
    json_decref(body);
    return rc;
}

static int llamacpp_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return llamacpp_call(spec, "/models/unload", spec->unload_timeout_s, res);
}

static int llamacpp_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return llamacpp_call(spec, "/models/load", spec->reload_timeout_s, res);
}

static int llamacpp_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    (void)spec;
    (void)res;
    return 0; /* the model's child process exiting is what frees it: only time helps */
}

static int llamacpp_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    json_t *body, *list, *m;
    size_t i;
    int rc =
        gc_adapter_get_list(spec, "/models", "data", LLAMACPP_HEALTH_TIMEOUT_S, res, &body, &list);

    if (rc < 0)
        return rc;
    json_array_foreach(list, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        const char *st = json_string_value(json_object_get(json_object_get(m, "status"), "value"));
        if (id != NULL && st != NULL && strcmp(id, spec->model) == 0)
            res->models_loaded = strcmp(st, "loaded") == 0;
    }
    json_decref(body);
    return 0;
}

const struct gc_adapter gc_adapter_llamacpp = {
    .protocol = "llamacpp",
    .needs_url = true,
    .needs_model = true,
    .unload = llamacpp_unload,
    .reload = llamacpp_reload,
    .cleanup = llamacpp_cleanup,
    .health = llamacpp_health,
};
