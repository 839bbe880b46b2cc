/*
 * fuzz_api_json.c - the coordinator API's JSON input path, end to end: every
 * input is a request body handed to the real HTTP handler gc_api_handle()
 * (src/daemon/api.c) of an in-process coordinator on gpusim, as
 *   1. POST /v1/leases     (gc_json_parse with GC_JSON_DEPTH_MAX, then
 *                           gc_coord_lease_request's typed getters and checks)
 *   2. POST /v1/residents  (gc_coord_register_locked's getters and checks)
 *   3. POST /v1/residents/nobody/demand (gc_coord_resident_demand's getters,
 *                           which run before it looks the resident up: 404)
 * A request that succeeds is undone at once (DELETE), so inputs do not depend
 * on each other and no resident is ever unloaded or reloaded: the fuzzer must
 * never make the coordinator signal a process or run a command. For the same
 * reason a body registering a "process" resident without a pid (the
 * coordinator would start its command) goes only through step 1.
 *
 * Properties (DESIGN.md section 8: "bad input gets a 4xx with a reason and
 * changes nothing"): every answer is a JSON object with an expected status; an
 * error has "error" and "message" strings; after the undo no lease, resident
 * or job is left.
 *
 * Environment: the process needs gpusim's libnvidia-ml.so.1 on LD_LIBRARY_PATH
 * (GC_FUZZ_SIM_DIR, set by meson); without it the target
 * re-executes itself with it (first). It makes its own GPUSIM_STATE and state
 * directory under $TMPDIR (default /tmp) and removes them at exit.
 */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "daemon/api.h"
#include "daemon/coord.h"
#include "fuzz.h"
#include "gpu/gpu.h"

#ifndef GC_FUZZ_SIM_DIR
#error "GC_FUZZ_SIM_DIR must name the folder of gpusim's libnvidia-ml.so.1"
#endif

static struct gc_config api_cfg;
static struct gc_store *api_store;
static struct gc_nvml *api_nvml;
static struct gc_coord *api_coord;
static char api_tmp[256];
static bool api_verbose; /* GC_FUZZ_VERBOSE=1: print each request's answer */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void api_teardown(void)
{
    gc_coord_destroy(api_coord);
    api_coord = NULL;
    gc_nvml_close(api_nvml);
    gc_store_close(api_store);
    gc_config_free(&api_cfg);
    if (api_tmp[0] != '\0')
        nftw(api_tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Puts gpusim first on LD_LIBRARY_PATH; the loader reads it only at start, so re-exec. */
static void ensure_gpusim(char **argv)
{
    const char *have = getenv("LD_LIBRARY_PATH");
    size_t n = strlen(GC_FUZZ_SIM_DIR);
    char *want;

    for (const char *p = have; p != NULL; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
        if (strncmp(p, GC_FUZZ_SIM_DIR, n) == 0 && (p[n] == '\0' || p[n] == ':'))
            return;
    }
    if (getenv("GC_FUZZ_REEXEC") != NULL || argv == NULL) {
        fprintf(stderr, "fuzz_api_json: put %s first on LD_LIBRARY_PATH\n", GC_FUZZ_SIM_DIR);
        exit(1);
    }
    if (asprintf(&want, "%s%s%s", GC_FUZZ_SIM_DIR, have ? ":" : "", have ? have : "") < 0)
        exit(1);
    setenv("LD_LIBRARY_PATH", want, 1);
    setenv("GC_FUZZ_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "fuzz_api_json: cannot re-execute: %s\n", strerror(errno));
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmpdir = getenv("TMPDIR");
    char path[600], err[512];

    (void)argc;
    ensure_gpusim(argv ? *argv : NULL);
    snprintf(api_tmp, sizeof(api_tmp), "%s/gc-fuzz-api-XXXXXX",
             tmpdir && tmpdir[0] ? tmpdir : "/tmp");
    if (mkdtemp(api_tmp) == NULL) {
        fprintf(stderr, "fuzz_api_json: mkdtemp '%s': %s\n", api_tmp, strerror(errno));
        exit(1);
    }
    atexit(api_teardown);
    /* A private simulated machine with two GPUs, whatever the caller's environment. */
    snprintf(path, sizeof(path), "%s/gpusim", api_tmp);
    setenv("GPUSIM_STATE", path, 1);
    setenv("GPUSIM_DEVICES", "24564Mi,8Gi", 1);

    api_verbose = getenv("GC_FUZZ_VERBOSE") != NULL;
    gc_log_init("fuzz_api_json", GC_LOG_ERROR);
    gc_config_defaults(&api_cfg);
    snprintf(api_cfg.state_dir, sizeof(api_cfg.state_dir), "%s/state", api_tmp);
    api_cfg.sync = GC_SYNC_NEVER;
    /* No request may wait: a wait_s above 0 is refused (and still validated). */
    api_cfg.max_wait_s = 0;
    if (mkdir(api_cfg.state_dir, 0700) < 0 ||
        gc_store_open(api_cfg.state_dir, api_cfg.sync, &api_store, err, sizeof(err)) < 0 ||
        gc_nvml_open(&api_nvml, err, sizeof(err)) < 0 ||
        gc_coord_create(&api_cfg, api_nvml, api_store, &api_coord, err, sizeof(err)) < 0 ||
        gc_coord_recover(api_coord, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_api_json: cannot start the coordinator: %s\n", err);
        exit(1);
    }
    return 0;
}

/* One request through the handler; the answer's JSON body (new reference) or NULL. */
static json_t *api_call(const char *method, const char *path, const char *body, size_t len,
                        int *ret_status)
{
    struct gc_http_req req = {
        .method = method, .path = path, .body = body, .body_len = len, .via_unix = true};
    struct gc_http_resp resp;
    json_t *answer = NULL;

    memset(&resp, 0, sizeof(resp));
    resp.status = 500; /* as http_server.c does */
    gc_api_handle(api_coord, &req, &resp);
    *ret_status = resp.status;
    if (api_verbose)
        fprintf(stderr, "  %s %s -> %d %.*s\n", method, path, resp.status,
                resp.body ? (int)resp.body_len : 0, resp.body ? resp.body : "");
    if (resp.body != NULL && resp.body_len > 0) {
        answer = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (answer == NULL || !json_is_object(answer)) {
            fprintf(stderr, "%s %s answered %d with non-JSON: %.*s\n", method, path, resp.status,
                    (int)resp.body_len, resp.body);
            FUZZ_CHECK(!"answers are JSON objects");
        }
    }
    if (resp.status >= 400) {
        FUZZ_CHECK(answer != NULL);
        FUZZ_CHECK(json_is_string(json_object_get(answer, "error")));
        FUZZ_CHECK(json_is_string(json_object_get(answer, "message")));
    }
    free(resp.body);
    return answer;
}

static bool status_expected(int status)
{
    static const int ok[] = {200, 201, 202, 204, 400, 404, 409, 413, 429, 503};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (status == ok[i])
            return true;
    return false;
}

static void lease_round(const char *body, size_t len)
{
    char path[128];
    json_t *ans, *rel;
    const char *id;
    int status, rel_status;

    ans = api_call("POST", "/v1/leases", body, len, &status);
    if (!status_expected(status)) {
        fprintf(stderr, "POST /v1/leases answered %d\n", status);
        FUZZ_CHECK(!"an expected status");
    }
    id = json_string_value(json_object_get(ans, "id"));
    if (status == 201 || status == 202) {
        FUZZ_CHECK(id != NULL && strlen(id) < 64);
        snprintf(path, sizeof(path), "/v1/leases/%s", id);
        rel = api_call("DELETE", path, "", 0, &rel_status);
        FUZZ_CHECK(rel_status == 200);
        json_decref(rel);
    }
    json_decref(ans);
}

/* True when registering body cannot make the coordinator start a process. */
static bool resident_body_inert(const char *body, size_t len)
{
    struct gc_jerr err;
    json_t *obj = NULL, *pid;
    const char *protocol;
    bool inert = true;

    if (gc_json_parse(body, len, GC_JSON_DEPTH_MAX, &obj, &err) < 0)
        return true; /* refused before registration, the same way */
    protocol = json_string_value(json_object_get(obj, "protocol"));
    pid = json_object_get(obj, "pid");
    if (protocol != NULL && strcmp(protocol, "process") == 0 &&
        !(json_is_integer(pid) && json_integer_value(pid) > 0))
        inert = false;
    json_decref(obj);
    return inert;
}

static void resident_round(const char *body, size_t len)
{
    char path[128];
    json_t *ans, *del;
    const char *name;
    int status, del_status;

    ans = api_call("POST", "/v1/residents", body, len, &status);
    if (!status_expected(status)) {
        fprintf(stderr, "POST /v1/residents answered %d\n", status);
        FUZZ_CHECK(!"an expected status");
    }
    if (status == 201) {
        name = json_string_value(json_object_get(ans, "name"));
        FUZZ_CHECK(name != NULL && strlen(name) <= 64);
        snprintf(path, sizeof(path), "/v1/residents/%s", name);
        del = api_call("DELETE", path, "", 0, &del_status);
        FUZZ_CHECK(del_status == 204);
        json_decref(del);
    }
    json_decref(ans);
}

/* A demand for a resident that does not exist: the body is checked, then 404. */
static void demand_round(const char *body, size_t len)
{
    json_t *ans;
    int status;

    ans = api_call("POST", "/v1/residents/nobody/demand", body, len, &status);
    if (status != 400 && status != 404 && status != 413) {
        fprintf(stderr, "POST /v1/residents/nobody/demand answered %d\n", status);
        FUZZ_CHECK(!"400, 404 or 413");
    }
    json_decref(ans);
}

/* Nothing survives an input: every success was undone, every refusal changed nothing. */
static void check_idle(void)
{
    pthread_mutex_lock(&api_coord->lock);
    FUZZ_CHECK(api_coord->jobs_running == 0);
    for (unsigned i = 0; i < api_coord->ledger->nleases; i++)
        FUZZ_CHECK(!api_coord->ledger->leases[i]->in_use ||
                   (api_coord->ledger->leases[i]->state != GC_LEASE_QUEUED &&
                    api_coord->ledger->leases[i]->state != GC_LEASE_PREPARING &&
                    api_coord->ledger->leases[i]->state != GC_LEASE_GRANTED));
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++)
        FUZZ_CHECK(!api_coord->ledger->residents[i].in_use);
    pthread_mutex_unlock(&api_coord->lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body;

    if (api_coord == NULL)
        LLVMFuzzerInitialize(NULL, NULL);
    /* The server hands the handler a NUL-terminated copy. */
    body = malloc(size + 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, data, size);
    body[size] = '\0';
    lease_round(body, size);
    if (resident_body_inert(body, size))
        resident_round(body, size);
    demand_round(body, size);
    check_idle();
    free(body);
    return 0;
}
