/* adapter_seed.c - the founding validation server's protocol (DESIGN.md section 5):
 * POST /unload_models/, /reload_models/, /cleanup_gpu/, GET /health/. */
#include "daemon/adapter.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"

/* Seconds allowed for a health probe. */
#define SEED_HEALTH_TIMEOUT_S 5.0

static int seed_step(const struct gc_resident_spec *spec, const char *path, double timeout_s,
                     const char *ok_key, const char *ok_string, struct gc_adapter_result *res)
{
    json_t *body = NULL;
    json_t *v;
    int rc = gc_adapter_http(spec, "POST", path, timeout_s, res, &body);

    if (rc < 0)
        return rc;
    if (res->http_status != 200) {
        json_decref(body);
        return GC_EIO;
    }
    if (ok_key != NULL) {
        v = body ? json_object_get(body, ok_key) : NULL;
        bool ok = ok_string ? (json_is_string(v) && strcmp(json_string_value(v), ok_string) == 0)
                            : json_is_true(v);
        if (!ok) {
            const char *err = body ? json_string_value(json_object_get(body, "error")) : NULL;
            snprintf(res->detail, sizeof(res->detail), "POST %s answered without %s%s%.200s", path,
                     ok_key, err ? ": " : "", err ? err : "");
            json_decref(body);
            return GC_EIO;
        }
    }
    json_decref(body);
    return 0;
}

static int seed_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    char path[64 + GC_SPEC_LEVEL_MAX];

    /* All the way is the plain request, as servers without levels know it. */
    if (spec->level_last || spec->level[0] == '\0')
        return seed_step(spec, "/unload_models/", spec->unload_timeout_s, "status", "success", res);
    snprintf(path, sizeof(path), "/unload_models/?level=%s", spec->level);
    return seed_step(spec, path, spec->unload_timeout_s, "status", "success", res);
}

static int seed_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return seed_step(spec, "/reload_models/", spec->reload_timeout_s, "models_reloaded", NULL, res);
}

static int seed_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return seed_step(spec, "/cleanup_gpu/", spec->unload_timeout_s, NULL, NULL, res);
}

static int seed_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    json_t *body = NULL;
    int rc = gc_adapter_http(spec, "GET", "/health/", SEED_HEALTH_TIMEOUT_S, res, &body);

    res->models_loaded = -1;
    if (rc < 0)
        return rc;
    if (body != NULL && json_is_boolean(json_object_get(body, "models_loaded")))
        res->models_loaded = json_is_true(json_object_get(body, "models_loaded"));
    if (body != NULL && json_is_string(json_object_get(body, "level")))
        snprintf(res->level, sizeof(res->level), "%.32s",
                 json_string_value(json_object_get(body, "level")));
    json_decref(body);
    return res->http_status == 200 ? 0 : GC_EIO;
}

const struct gc_adapter gc_adapter_seed = {
    .protocol = "seed",
    .needs_url = true,
    .unload = seed_unload,
    .reload = seed_reload,
    .cleanup = seed_cleanup,
    .health = seed_health,
};
