/* adapter.c - the protocol table and the HTTP call the HTTP adapters share. */
#include "daemon/adapter.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/http_client.h"

static const struct gc_adapter *const adapters[] = {
    &gc_adapter_seed,
    &gc_adapter_http_generic,
    &gc_adapter_process,
};

const struct gc_adapter *gc_adapter_find(const char *protocol)
{
    for (size_t i = 0; i < sizeof(adapters) / sizeof(adapters[0]); i++) {
        if (strcmp(adapters[i]->protocol, protocol) == 0)
            return adapters[i];
    }
    return NULL;
}

const char *gc_adapter_names(void)
{
    return "seed, http, process";
}

int gc_adapter_http(const struct gc_resident_spec *spec, const char *method, const char *path,
                    double timeout_s, struct gc_adapter_result *res, json_t **ret_body)
{
    struct gc_http_response resp = {0};
    char err[256] = "";
    long timeout_ms = (long)(timeout_s * 1000.0);
    int rc;

    *ret_body = NULL;
    rc = gc_http_request_once(spec->url, method, path, NULL, timeout_ms > 0 ? timeout_ms : 1, &resp,
                              err, sizeof(err));
    if (rc < 0) {
        if (rc == GC_ETIMEDOUT)
            snprintf(res->detail, sizeof(res->detail), "%s %s: no answer within %.1f s", method,
                     path, timeout_s);
        else
            snprintf(res->detail, sizeof(res->detail), "%s %s: %s", method, path, err);
        return rc;
    }
    res->http_status = resp.status;
    *ret_body = json_loadb(resp.body, resp.body_len, 0, NULL);
    if (resp.status < 200 || resp.status >= 300) {
        const char *msg = NULL;
        if (*ret_body != NULL) {
            msg = json_string_value(json_object_get(*ret_body, "error"));
            if (msg == NULL)
                msg = json_string_value(json_object_get(*ret_body, "message"));
            if (msg == NULL)
                msg = json_string_value(json_object_get(*ret_body, "detail"));
        }
        snprintf(res->detail, sizeof(res->detail), "%s %s: HTTP %ld%s%.200s", method, path,
                 resp.status, msg ? ": " : "", msg ? msg : "");
    }
    gc_http_response_free(&resp);
    return 0;
}
