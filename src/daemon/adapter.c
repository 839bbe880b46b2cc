/* adapter.c - the protocol table and the HTTP call the HTTP adapters share. */
#include "daemon/adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/http_client.h"

static const struct gc_adapter *const adapters[] = {
    &gc_adapter_seed,      &gc_adapter_http_generic, &gc_adapter_process, &gc_adapter_vllm,
    &gc_adapter_sglang,    &gc_adapter_ollama,       &gc_adapter_triton,  &gc_adapter_llamacpp,
    &gc_adapter_llamaswap, &gc_adapter_comfyui,
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
    return "seed, http, process, vllm, sglang, ollama, triton, llamacpp, llama-swap, comfyui";
}

bool gc_adapter_model_valid(const char *model)
{
    size_t n = strlen(model);

    if (n == 0 || n >= GC_SPEC_MODEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)model[i];
        /* It travels in URL paths and JSON: nothing that could change their shape. */
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '?' || c == '#' || c == '%')
            return false;
    }
    return true;
}

int gc_adapter_path_model(char *buf, size_t len, const char *prefix, const char *model,
                          const char *suffix)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (o + 1 >= len)                                                                          \
            return GC_EINVAL;                                                                      \
        buf[o++] = (ch);                                                                           \
    } while (0)
    for (const char *p = prefix; *p; p++)
        PUT(*p);
    for (const unsigned char *p = (const unsigned char *)model; *p; p++) {
        /* A '/' inside a name ("org/model") must stay one path segment. */
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == ':') {
            PUT((char)*p);
        } else {
            PUT('%');
            PUT(hex[*p >> 4]);
            PUT(hex[*p & 15]);
        }
    }
    for (const char *p = suffix; *p; p++)
        PUT(*p);
#undef PUT
    buf[o] = '\0';
    return 0;
}

int gc_adapter_http(const struct gc_resident_spec *spec, const char *method, const char *path,
                    double timeout_s, struct gc_adapter_result *res, json_t **ret_body)
{
    return gc_adapter_http_json(spec, method, path, NULL, timeout_s, res, ret_body);
}

int gc_adapter_get_list(const struct gc_resident_spec *spec, const char *path, const char *member,
                        double timeout_s, struct gc_adapter_result *res, json_t **ret_body,
                        json_t **ret_list)
{
    json_t *body = NULL, *list;
    int rc = gc_adapter_http(spec, "GET", path, timeout_s, res, &body);

    res->models_loaded = -1;
    if (rc < 0)
        return rc;
    if (res->http_status != 200) {
        json_decref(body);
        return GC_EIO;
    }
    list = json_object_get(body, member);
    *ret_list = json_is_array(list) ? list : NULL;
    *ret_body = body;
    return 0;
}

int gc_adapter_http_json(const struct gc_resident_spec *spec, const char *method, const char *path,
                         const json_t *body, double timeout_s, struct gc_adapter_result *res,
                         json_t **ret_body)
{
    struct gc_http_response resp = {0};
    char err[256] = "";
    long timeout_ms = (long)(timeout_s * 1000.0);
    char *text = NULL;
    int rc;

    *ret_body = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL)
            return GC_ENOMEM;
    }
    rc = gc_http_request_once(spec->url, method, path, text, timeout_ms > 0 ? timeout_ms : 1, &resp,
                              err, sizeof(err));
    free(text);
    if (rc < 0) {
        if (rc == GC_ETIMEDOUT)
            snprintf(res->detail, sizeof(res->detail), "%s %s: no answer within %.1f s", method,
                     path, timeout_s);
        else
            snprintf(res->detail, sizeof(res->detail), "%s %s: %s", method, path, err);
        return rc;
    }
    res->http_status = resp.status;
    *ret_body = json_loadb(resp.body, resp.body_len, JSON_DECODE_ANY, NULL);
    if (resp.status < 200 || resp.status >= 300) {
        const char *msg = NULL;
        if (json_is_object(*ret_body)) {
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

int gc_adapter_step(const struct gc_resident_spec *spec, const char *method, const char *path,
                    const json_t *body, double timeout_s, struct gc_adapter_result *res)
{
    json_t *answer = NULL;
    int rc = gc_adapter_http_json(spec, method, path, body, timeout_s, res, &answer);

    json_decref(answer);
    if (rc < 0)
        return rc;
    return res->http_status >= 200 && res->http_status < 300 ? 0 : GC_EIO;
}
