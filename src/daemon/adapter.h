/*
 * adapter.h - how the coordinator asks a resident to unload, reload, clean up and
 * report health: one adapter per protocol (adapter_seed.c, adapter_http.c,
 * adapter_process.c, and the presets for known servers: adapter_vllm.c,
 * adapter_sglang.c, adapter_ollama.c, adapter_triton.c, adapter_llamacpp.c,
 * adapter_llamaswap.c, adapter_comfyui.c). Adapters block with deadlines; they
 * run in job threads, never under the coordinator's lock, and never decide
 * anything about memory: the job verifies through NVML.
 */
#ifndef GC_ADAPTER_H
#define GC_ADAPTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/names.h"

#define GC_SPEC_REQ_MAX     160
#define GC_SPEC_URL_MAX     512
#define GC_SPEC_COMMAND_MAX 1024
#define GC_SPEC_LEVEL_MAX   33
/* A model name as servers spell them ("library/llama3:8b", "resnet50"). */
#define GC_SPEC_MODEL_MAX 256

/* What an adapter needs to reach one resident (copied out of the lock). */
struct gc_resident_spec {
    char name[GC_NAME_MAX + 1];
    char protocol[16];
    char url[GC_SPEC_URL_MAX];
    pid_t pid;
    uint64_t pid_start_ticks; /* tells pid from a later process with its number (0: unknown) */
    double unload_timeout_s, reload_timeout_s, verify_timeout_s, kill_grace_s;
    /* unload: the level to go down to, and whether it is the last (all the way). */
    char level[GC_SPEC_LEVEL_MAX];
    bool level_last;
    /* http: "METHOD /path" for each step ("" = not supported). */
    char unload_req[GC_SPEC_REQ_MAX], reload_req[GC_SPEC_REQ_MAX];
    char cleanup_req[GC_SPEC_REQ_MAX], health_req[GC_SPEC_REQ_MAX];
    /* process: start command (sh -c) and where its output goes. */
    char command[GC_SPEC_COMMAND_MAX];
    char log_path[640];
    /* Presets for servers that hold several models: the one this resident is ("" = all). */
    char model[GC_SPEC_MODEL_MAX];
};

struct gc_adapter_result {
    long http_status;              /* 0 when no HTTP answer */
    char detail[320];              /* why it failed, or what it said */
    pid_t new_pid;                 /* process adapter: the started process (0: unchanged) */
    int models_loaded;             /* health: 1 / 0, -1 unknown */
    char level[GC_SPEC_LEVEL_MAX]; /* health: the level it reports ("" unknown) */
};

struct gc_adapter {
    const char *protocol;
    bool needs_url;
    /* The server holds several models: the registration names one in 'model'. */
    bool needs_model;
    /* ... or, when 'model' is absent, the resident is all of them. */
    bool model_optional;
    /* Reload asks nothing: the server loads its models by itself on its next
     * request, so NVML cannot show them back until a request comes (ComfyUI). */
    bool reloads_lazily;
    /* The resident is the process the adapter starts and stops (process): its exit
     * leaves it unloaded, for its command to start it again, instead of gone; a
     * running one is loaded by definition. */
    bool restartable;
    /* It runs a command as the coordinator's user (only trusted callers may
     * register it), and can only stop its process: no levels between. */
    bool runs_command;
    /* Its steps are the requests the registration names ("unload": "POST /sleep"):
     * unload and reload are required, cleanup and health optional (http). */
    bool takes_requests;
    /* Each returns 0 or a negative GC_E* (GC_ETIMEDOUT past the deadline), filling res. */
    int (*unload)(const struct gc_resident_spec *spec, struct gc_adapter_result *res);
    int (*reload)(const struct gc_resident_spec *spec, struct gc_adapter_result *res);
    int (*cleanup)(const struct gc_resident_spec *spec, struct gc_adapter_result *res);
    int (*health)(const struct gc_resident_spec *spec, struct gc_adapter_result *res);
};

/* The adapter for a protocol name, or NULL. */
const struct gc_adapter *gc_adapter_find(const char *protocol);
/* Comma-separated list of known protocols (for error messages). */
const char *gc_adapter_names(void);

/* Shared by the HTTP-speaking adapters: method + path on spec->url within timeout_s.
 * 0 when an answer came (any status); the body lands in *ret_body (caller frees). */
int gc_adapter_http(const struct gc_resident_spec *spec, const char *method, const char *path,
                    double timeout_s, struct gc_adapter_result *res, json_t **ret_body);
/* The model-listing health checks: GET path within timeout_s, and its JSON answer's
 * array member. 0 with *ret_body (the caller frees it) and *ret_list (borrowed from
 * it; NULL when the answer has no such array); GC_EIO for a status other than 200;
 * res->models_loaded is -1 (unknown) until the caller decides. */
int gc_adapter_get_list(const struct gc_resident_spec *spec, const char *path, const char *member,
                        double timeout_s, struct gc_adapter_result *res, json_t **ret_body,
                        json_t **ret_list);

/* The same with a JSON body (not stolen; NULL: none) sent as application/json. */
int gc_adapter_http_json(const struct gc_resident_spec *spec, const char *method, const char *path,
                         const json_t *body, double timeout_s, struct gc_adapter_result *res,
                         json_t **ret_body);

/* One step of a preset: method path with an optional JSON body; 0 on a 2xx answer,
 * GC_EIO on another status (res->detail says which), or the transport's error. */
int gc_adapter_step(const struct gc_resident_spec *spec, const char *method, const char *path,
                    const json_t *body, double timeout_s, struct gc_adapter_result *res);

/* Appends model to buf (len bytes, NUL-terminated) as one percent-encoded path
 * segment. GC_EINVAL when it does not fit. */
int gc_adapter_path_model(char *buf, size_t len, const char *prefix, const char *model,
                          const char *suffix);

/* True when the model name is acceptable: printable ASCII, no spaces or quotes,
 * 1..GC_SPEC_MODEL_MAX-1 bytes. */
bool gc_adapter_model_valid(const char *model);

extern const struct gc_adapter gc_adapter_seed;
extern const struct gc_adapter gc_adapter_http_generic;
extern const struct gc_adapter gc_adapter_process;
extern const struct gc_adapter gc_adapter_vllm;
extern const struct gc_adapter gc_adapter_sglang;
extern const struct gc_adapter gc_adapter_ollama;
extern const struct gc_adapter gc_adapter_triton;
extern const struct gc_adapter gc_adapter_llamacpp;
extern const struct gc_adapter gc_adapter_llamaswap;
extern const struct gc_adapter gc_adapter_comfyui;

#endif
