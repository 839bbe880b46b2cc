/* handlers.c - the generation server's endpoints (DESIGN.md section 7). Every path
 * answers with and without its trailing slash; /health/ and /status/ answer while
 * a generation runs (each connection has its own thread and they take no GPU lock). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/b64.h"
#include "common/err.h"
#include "common/form.h"
#include "common/log.h"
#include "common/size.h"
#include "gpucoord.h"
#include "servers/common/gzip.h"
#include "servers/generation/generation.h"

static double round3(double v)
{
    return round(v * 1000.0) / 1000.0;
}

static void handle_health(struct gc_http_resp *resp)
{
    gc_http_resp_json(
        resp, 200,
        json_pack("{s:s, s:I}", "status", "healthy", "timestamp", (json_int_t)time(NULL)));
}

static void handle_status(struct generation_server *gs, struct gc_http_resp *resp)
{
    json_t *mem, *o;
    unsigned total, ok, failed, running;
    double avg, last;
    bool loaded;
    char peak[GC_SIZE_BUF];

    pthread_mutex_lock(&gs->stats_lock);
    total = gs->total;
    ok = gs->successful;
    failed = gs->failed;
    running = gs->running;
    avg = gs->successful ? gs->total_time_s / gs->successful : 0;
    last = gs->last_time_s;
    pthread_mutex_unlock(&gs->stats_lock);
    pthread_mutex_lock(&gs->store_lock);
    mem = gc_gpu_status_json(&gs->store);
    loaded = gs->weights_loaded;
    pthread_mutex_unlock(&gs->store_lock);
    o = json_pack(
        "{s:s, s:b, s:{s:i, s:i, s:i, s:f, s:f, s:f, s:i}, s:{s:s, s:I, s:f, s:i, "
        "s:s, s:b, s:s, s:b}, s:o}",
        "status", running ? "generating" : "ready", "models_loaded", loaded, "metrics",
        "total_generations", (int)total, "successful_generations", (int)ok, "failed_generations",
        (int)failed, "success_rate", total ? round3((double)ok / total) : 0.0,
        "average_generation_time", round3(avg), "last_generation_time", round3(last), "running",
        (int)running, "config", "peak_memory", gc_size_format(gs->peak_bytes, peak, sizeof(peak)),
        "peak_memory_bytes", (json_int_t)gs->peak_bytes, "step_ms", gs->step_ms, "points",
        (int)gs->points, "coordinator", gs->coordinator_url, "coordination", gs->coordination,
        "pipeline", gs->pipeline_cmd[0] ? "external command" : "reference stages",
        "reference_models", gs->pipeline_cmd[0] == '\0', "gpu_memory", mem);
    gc_http_resp_json(resp, 200, o);
}

static void handle_clear_cache(struct generation_server *gs, struct gc_http_resp *resp)
{
    struct gc_gpu_memory mem;
    uint64_t freed;

    pthread_mutex_lock(&gs->store_lock);
    freed = gc_model_store_cleanup(&gs->store);
    gc_model_store_memory(&gs->store, &mem);
    pthread_mutex_unlock(&gs->store_lock);
    gc_http_resp_json(resp, 200,
                      json_pack("{s:s, s:f, s:f}", "status", "cache_cleared", "available_memory_gb",
                                gc_gib(mem.free_bytes), "freed_gb", gc_gib(freed)));
}

static bool wants_json(const struct gc_http_req *req)
{
    const char *accept = gc_http_req_header(req, "Accept");
    return accept != NULL && strstr(accept, "application/json") != NULL;
}

/*
 * The form field return_compressed (the original client sends "True"): absent, empty
 * or false answers the raw PLY (or JSON with Accept: application/json); true answers
 * JSON whose data is the PLY gzipped. Returns 0 and *ret, or GC_EINVAL with a reason.
 */
static int form_get_compressed(const struct gc_form *form, bool *ret, char *err, size_t errlen)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off", ""};
    const struct gc_form_field *f = gc_form_get(form, "return_compressed");

    *ret = false;
    if (f == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcasecmp(f->value, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (strcasecmp(f->value, no[i]) == 0)
            return 0;
    snprintf(err, errlen, "field 'return_compressed' must be true or false, not '%.40s'", f->value);
    return GC_EINVAL;
}

/* The JSON answer: data is the PLY in base64, gzipped first when compressed. */
static void answer_json(struct gc_http_resp *resp, const struct generation_result *res,
                        int64_t seed, const char *prompt, bool compressed)
{
    const uint8_t *payload = res->ply;
    size_t payload_len = res->ply_len;
    uint8_t *gz = NULL;
    char *b64 = NULL;
    size_t b64_len = 0;
    json_t *o;

    if (compressed) {
        if (gc_gzip(res->ply, res->ply_len, &gz, &payload_len) < 0) {
            gc_server_error(resp, 500, "internal", "cannot compress the PLY");
            return;
        }
        payload = gz;
    }
    if (gc_b64_encode(payload, payload_len, &b64, &b64_len) < 0) {
        gc_server_error(resp, 500, "internal", "cannot encode the PLY");
        free(gz);
        return;
    }
    o = json_pack("{s:b, s:I, s:s, s:f, s:I, s:s%, s:s}", "success", 1, "seed", (json_int_t)seed,
                  "prompt", prompt, "generation_time", round3(res->time_s), "ply_size_bytes",
                  (json_int_t)res->ply_len, "data", b64, b64_len, "compression",
                  compressed ? "gzip" : "none");
    if (o != NULL && compressed)
        json_object_set_new(o, "compressed_size_bytes", json_integer((json_int_t)payload_len));
    gc_http_resp_json(resp, 200, o);
    free(b64);
    free(gz);
}

/* Header-safe copy of the prompt: printable ASCII, others as '?', at most 200 bytes. */
static void header_prompt(const char *prompt, char *out, size_t len)
{
    size_t i = 0;

    for (; prompt[i] != '\0' && i + 1 < len && i < 200; i++) {
        unsigned char c = (unsigned char)prompt[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[i] = '\0';
}

static void handle_generate(struct generation_server *gs, const struct gc_http_req *req,
                            struct gc_http_resp *resp)
{
    const char *ctype = gc_http_req_header(req, "Content-Type");
    struct generation_request greq = {.http = req};
    struct generation_result res;
    struct gc_form *form = NULL;
    int64_t seed = -1;
    bool compressed = false;
    char err[256], hdr[256];
    int rc;

    if (ctype == NULL) {
        gc_server_error(resp, 400, "bad_request",
                        "send a form (multipart/form-data or x-www-form-urlencoded) with "
                        "'prompt' and optionally 'seed'");
        return;
    }
    if (gc_form_parse(ctype, req->body, req->body_len, &form, err, sizeof(err)) < 0) {
        gc_server_error(resp, 400, "bad_request", "%s", err);
        return;
    }
    if (gc_form_get_text(form, "prompt", true, GENERATION_PROMPT_MAX_CHARS, &greq.prompt, err,
                         sizeof(err)) < 0 ||
        gc_form_get_int(form, "seed", false, 0, INT64_MAX, &seed, err, sizeof(err)) < 0 ||
        form_get_compressed(form, &compressed, err, sizeof(err)) < 0) {
        gc_server_error(resp, 400, "bad_request", "%s", err);
        gc_form_free(form);
        return;
    }
    /* The form parser takes an empty number for an absent one (as browsers send empty
     * inputs); here that would silently turn a seed meant to be fixed into a random
     * one. */
    const struct gc_form_field *seed_field = gc_form_get(form, "seed");
    if (seed_field != NULL && seed_field->value[strspn(seed_field->value, " \t\r\n")] == '\0') {
        gc_server_error(resp, 400, "bad_request",
                        "field 'seed' is empty: send an integer, or leave the field out for a "
                        "random seed");
        gc_form_free(form);
        return;
    }
    if (greq.prompt[strspn(greq.prompt, " \t\r\n")] == '\0') {
        gc_server_error(resp, 400, "bad_request", "field 'prompt' must not be empty");
        gc_form_free(form);
        return;
    }
    if (seed < 0) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
            r = (uint64_t)time(NULL);
        seed = (int64_t)(r % 4294967296ULL); /* as the original: a 32-bit seed */
    }
    greq.seed = (uint64_t)seed;

    pthread_mutex_lock(&gs->stats_lock);
    gs->total++;
    gs->running++;
    pthread_mutex_unlock(&gs->stats_lock);
    rc = generation_run(gs, &greq, &res);
    pthread_mutex_lock(&gs->stats_lock);
    gs->running--;
    if (rc == 0) {
        gs->successful++;
        gs->total_time_s += res.time_s;
        gs->last_time_s = res.time_s;
    } else {
        gs->failed++;
    }
    pthread_mutex_unlock(&gs->stats_lock);

    if (rc < 0) {
        gc_warn("generation failed (%d): %s", res.status, res.error);
        gc_server_error(resp, res.status ? res.status : 500,
                        res.status == 503   ? "unavailable"
                        : res.status == 507 ? "out_of_gpu_memory"
                        : res.status == 400 ? "bad_request"
                                            : "generation_failed",
                        "%s", res.error);
    } else if (compressed || wants_json(req)) {
        answer_json(resp, &res, seed, greq.prompt, compressed);
    } else {
        gc_http_resp_bytes(resp, 200, "application/octet-stream", (char *)res.ply, res.ply_len);
        res.ply = NULL;
        snprintf(hdr, sizeof(hdr), "attachment; filename=generated_model_%lld.ply",
                 (long long)seed);
        gc_http_resp_header(resp, "Content-Disposition", hdr);
        snprintf(hdr, sizeof(hdr), "%lld", (long long)seed);
        gc_http_resp_header(resp, "X-Generation-Seed", hdr);
        header_prompt(greq.prompt, hdr, sizeof(hdr));
        gc_http_resp_header(resp, "X-Generation-Prompt", hdr);
        gc_http_resp_header(resp, "X-Model-Format", "gaussian_splatting_ply");
        snprintf(hdr, sizeof(hdr), "%.3f", res.time_s);
        gc_http_resp_header(resp, "X-Generation-Time", hdr);
    }
    free(res.ply);
    gc_form_free(form);
}

void generation_handle(void *ctx, const struct gc_http_req *req, struct gc_http_resp *resp)
{
    struct generation_server *gs = ctx;
    char path[128];
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    bool post = strcmp(req->method, "POST") == 0;

    if (!gc_http_path_normalize(req->path, path, sizeof(path))) {
        gc_server_error(resp, 404, "not_found", "no such path");
        return;
    }
    if (strcmp(path, "/health") == 0 && get) {
        handle_health(resp);
    } else if (strcmp(path, "/status") == 0 && get) {
        handle_status(gs, resp);
    } else if (strcmp(path, "/gpu_status") == 0 && get) {
        pthread_mutex_lock(&gs->store_lock);
        gc_http_resp_json(resp, 200, gc_gpu_status_json(&gs->store));
        pthread_mutex_unlock(&gs->store_lock);
    } else if (strcmp(path, "/clear_cache") == 0 && post) {
        handle_clear_cache(gs, resp);
    } else if (strcmp(path, "/generate") == 0 && post) {
        handle_generate(gs, req, resp);
    } else if (strcmp(path, "/health") == 0 || strcmp(path, "/status") == 0 ||
               strcmp(path, "/gpu_status") == 0 || strcmp(path, "/clear_cache") == 0 ||
               strcmp(path, "/generate") == 0) {
        gc_server_error(resp, 405, "method_not_allowed", "method %s not allowed on %s", req->method,
                        path);
    } else {
        gc_server_error(resp, 404, "not_found", "no such path: %.100s", path);
    }
}
