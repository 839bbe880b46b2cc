/*
 * adapter_ollama.c - one model of an Ollama server. Unload: POST /api/generate
 * {"model", "keep_alive": 0} with no prompt; reload: POST /api/generate
 * {"model"} with no prompt, which loads it; state: GET /api/ps lists the
 * loaded models. https://github.com/ollama/ollama/blob/main/docs/api.md
 * ("Load a model", "Unload a model", "List Running Models").
 *
 * The memory is held by a runner child process of `ollama serve`, started when
 * the model loads: it counts for the registered pid as its descendant (see
 * docs/architecture.md), so register the server's pid, not a runner's.
 */
#include "daemon/adapter.h"

#include <string.h>

#include "common/err.h"

#define OLLAMA_HEALTH_TIMEOUT_S 5.0

static int ollama_generate(const struct gc_resident_spec *spec, bool unload, double timeout_s,
                           struct gc_adapter_result *res)
{
    json_t *body = json_pack("{s:s, s:b}", "model", spec->model, "stream", 0);
    int rc;

    if (body == NULL)
        return GC_ENOMEM;
    if (unload)
        json_object_set_new(body, "keep_alive", json_integer(0));
    rc = gc_adapter_step(spec, "POST", "/api/generate", body, timeout_s, res);
    json_decref(body);
    return rc;
}

static int ollama_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return ollama_generate(spec, true, spec->unload_timeout_s, res);
}

static int ollama_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return ollama_generate(spec, false, spec->reload_timeout_s, res);
}

static int ollama_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return ollama_generate(spec, true, spec->unload_timeout_s, res);
}

/* Is name the model this resident is? /api/ps lists "llama3:latest" for "llama3". */
static bool same_model(const char *listed, const char *model)
{
    size_t n = strlen(model);

    if (strcmp(listed, model) == 0)
        return true;
    return strchr(model, ':') == NULL && strncmp(listed, model, n) == 0 &&
           strcmp(listed + n, ":latest") == 0;
}

static int ollama_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    json_t *body, *list, *m;
    size_t i;
    int rc =
        gc_adapter_get_list(spec, "/api/ps", "models", OLLAMA_HEALTH_TIMEOUT_S, res, &body, &list);

    if (rc < 0)
        return rc;
    if (list != NULL) {
        res->models_loaded = 0;
        json_array_foreach(list, i, m)
        {
            const char *name = json_string_value(json_object_get(m, "name"));
            const char *model = json_string_value(json_object_get(m, "model"));
            if ((name && same_model(name, spec->model)) ||
                (model && same_model(model, spec->model)))
                res->models_loaded = 1;
        }
    }
    json_decref(body);
    return 0;
}

const struct gc_adapter gc_adapter_ollama = {
    .protocol = "ollama",
    .needs_url = true,
    .needs_model = true,
    .unload = ollama_unload,
    .reload = ollama_reload,
    .cleanup = ollama_cleanup,
    .health = ollama_health,
};
