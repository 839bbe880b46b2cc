/* adapter_http.c - any HTTP service: "METHOD /path" per step from the registration;
 * success is a 2xx answer. */
#include "daemon/adapter.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"

/* Seconds allowed for a health probe. */
#define HTTP_HEALTH_TIMEOUT_S 5.0

static int http_step(const struct gc_resident_spec *spec, const char *req, double timeout_s,
                     struct gc_adapter_result *res)
{
    char method[16], path[GC_SPEC_REQ_MAX + GC_SPEC_LEVEL_MAX * 4];
    json_t *body = NULL;
    int rc;

    if (req[0] == '\0') {
        snprintf(res->detail, sizeof(res->detail), "step not configured for this resident");
        return GC_EINVAL;
    }
    if (sscanf(req, "%15s %291s", method, path) != 2) {
        snprintf(res->detail, sizeof(res->detail), "bad request spec '%s'", req);
        return GC_EINVAL;
    }
    rc = gc_adapter_http(spec, method, path, timeout_s, res, &body);
    json_decref(body);
    if (rc < 0)
        return rc;
    return res->http_status >= 200 && res->http_status < 300 ? 0 : GC_EIO;
}

/* The unload request with each "{level}" replaced by the level to go to (names are
 * [A-Za-z0-9._-]: nothing to escape). Cut short at the request cap. */
static void level_substitute(const char *req, const char *level, char *out, size_t out_len)
{
    static const char placeholder[] = "{level}";
    size_t n = 0, plen = sizeof(placeholder) - 1, llen = strlen(level);

    while (*req != '\0' && n + 1 < out_len) {
        if (strncmp(req, placeholder, plen) == 0) {
            size_t take = llen < out_len - 1 - n ? llen : out_len - 1 - n;
            memcpy(out + n, level, take);
            n += take;
            req += plen;
        } else {
            out[n++] = *req++;
        }
    }
    out[n] = '\0';
}

static int http_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    char req[GC_SPEC_REQ_MAX + GC_SPEC_LEVEL_MAX * 4];

    level_substitute(spec->unload_req, spec->level, req, sizeof(req));
    return http_step(spec, req, spec->unload_timeout_s, res);
}

static int http_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    return http_step(spec, spec->reload_req, spec->reload_timeout_s, res);
}

static int http_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    if (spec->cleanup_req[0] == '\0')
        return 0; /* nothing to ask: verification decides */
    return http_step(spec, spec->cleanup_req, spec->unload_timeout_s, res);
}

static int http_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    res->models_loaded = -1;
    if (spec->health_req[0] == '\0')
        return 0;
    return http_step(spec, spec->health_req, HTTP_HEALTH_TIMEOUT_S, res);
}

const struct gc_adapter gc_adapter_http_generic = {
    .protocol = "http",
    .needs_url = true,
    .takes_requests = true,
    .unload = http_unload,
    .reload = http_reload,
    .cleanup = http_cleanup,
    .health = http_health,
};
