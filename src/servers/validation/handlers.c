/* handlers.c - the validation server's endpoints (DESIGN.md section 7). Every path
 * answers with and without its trailing slash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/utf8.h"
#include "gpucoord.h"
#include "servers/common/ply.h"
#include "servers/common/png.h"
#include "servers/validation/validation.h"

/* Longest prompt in bytes (1024 characters of up to 4 UTF-8 bytes): a first, cheap
 * bound; the limit itself counts characters. */
#define PROMPT_MAX_BYTES (4 * VALIDATION_PROMPT_MAX_CHARS)

/* Uploads shorter than this are left to jansson: reading them in place saves little. */
#define DATA_LIFT_MIN_BYTES 4096

static double round3(double v)
{
    return round(v * 1000.0) / 1000.0;
}

/* Pause between demands the coordinator answered "loaded" while these models are not. */
#define DEMAND_BACKOFF_MIN_MS 20
#define DEMAND_BACKOFF_MAX_MS 1000

static void handle_health(struct validation_server *vs, struct gc_http_resp *resp)
{
    bool loaded;

    /* Never waits on the models lock: health answers while an unload runs. */
    loaded = __atomic_load_n(&vs->loaded, __ATOMIC_ACQUIRE);
    gc_http_resp_json(resp, 200,
                      json_pack("{s:s, s:b, s:s}", "status", "healthy", "models_loaded", loaded,
                                "level", validation_level_name(validation_level_now(vs))));
}

static void handle_gpu_status(struct validation_server *vs, struct gc_http_resp *resp)
{
    json_t *o;

    pthread_mutex_lock(&vs->store_lock);
    o = gc_gpu_status_json(&vs->store);
    pthread_mutex_unlock(&vs->store_lock);
    gc_http_resp_json(resp, 200, o);
}

static void memory_free_used(struct validation_server *vs, uint64_t *free_b, uint64_t *total_b)
{
    struct gc_gpu_memory mem;

    pthread_mutex_lock(&vs->store_lock);
    gc_model_store_memory(&vs->store, &mem);
    pthread_mutex_unlock(&vs->store_lock);
    *free_b = mem.free_bytes;
    *total_b = mem.total_bytes;
}

/* The level ?level=NAME names: 0 and *ret set, or an error answered in resp. */
static int unload_target(struct validation_server *vs, const struct gc_http_req *req,
                         enum validation_level *ret, struct gc_http_resp *resp)
{
    const char *name = gc_http_req_arg(req, "level");
    enum validation_level now = validation_level_now(vs);

    *ret = VALIDATION_OFF; /* no parameter: all the way, as the original */
    if (name == NULL)
        return 0;
    if (strcmp(name, "off") == 0)
        return 0;
    if (strcmp(name, "reduced") == 0 && vs->levels) {
        *ret = VALIDATION_REDUCED;
    } else if (strcmp(name, "full") == 0) {
        *ret = VALIDATION_FULL;
    } else {
        gc_http_resp_json(resp, 400,
                          json_pack("{s:s, s:s, s:b}", "status", "error", "error",
                                    vs->levels ? "unknown level: the levels are full, reduced, off"
                                               : "unknown level: levels are off here "
                                                 "(VALIDATION_LEVELS=0): full, off",
                                    "models_unloaded", 0));
        return GC_EINVAL;
    }
    if (*ret < now) {
        gc_http_resp_json(
            resp, 409,
            json_pack("{s:s, s:s, s:b}", "status", "error", "error",
                      "already below that level: /reload_models/ brings the models back",
                      "models_unloaded", 0));
        return GC_ECONFLICT;
    }
    return 0;
}

static void handle_unload(struct validation_server *vs, const struct gc_http_req *req,
                          struct gc_http_resp *resp)
{
    uint64_t free_before, free_after, total;
    int64_t t0 = gc_mono_ns();
    enum validation_level target, now;
    char err[256];
    int rc = 0;

    if (unload_target(vs, req, &target, resp) < 0)
        return;
    pthread_rwlock_wrlock(&vs->models_lock); /* waits for validations in flight */
    memory_free_used(vs, &free_before, &total);
    now = validation_level_now(vs);
    if (target == VALIDATION_REDUCED && now == VALIDATION_FULL)
        rc = validation_models_reduce(vs, err, sizeof(err));
    else if (target == VALIDATION_OFF && now != VALIDATION_OFF)
        rc = validation_models_unload(vs, err, sizeof(err));
    memory_free_used(vs, &free_after, &total);
    if (rc == 0)
        vs->unloads++;
    now = validation_level_now(vs);
    pthread_rwlock_unlock(&vs->models_lock);
    if (rc < 0) {
        gc_warn("unload failed: %s", err);
        gc_http_resp_json(
            resp, 500,
            json_pack("{s:s, s:s, s:b}", "status", "error", "error", err, "models_unloaded", 0));
        return;
    }
    gc_info("models %s: %.3f GiB freed in %.3f s",
            now == VALIDATION_REDUCED ? "at reduced precision" : "unloaded",
            gc_gib(free_after > free_before ? free_after - free_before : 0),
            (double)(gc_mono_ns() - t0) / 1e9);
    gc_http_resp_json(resp, 200,
                      json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:b, s:s}", "status",
                                "success", "memory_before_gb", gc_gib(total - free_before),
                                "memory_after_gb", gc_gib(total - free_after), "memory_freed_gb",
                                gc_gib(free_after > free_before ? free_after - free_before : 0),
                                "total_memory_gb", gc_gib(total), "free_memory_gb",
                                gc_gib(free_after), "unload_time",
                                round3((double)(gc_mono_ns() - t0) / 1e9),
                                /* the step asked for is done; "level" says how far */
                                "models_unloaded", 1, "level", validation_level_name(now)));
}

/* Longest a /reload_models/ sent straight to this server waits for the coordinator
 * to make room (the original's reload timeout). */
#define DIRECT_RELOAD_WAIT_MAX_S 60.0

/*
 * A /reload_models/ that is not the coordinator's own call (it was not reloading us)
 * would grow behind its back, into room a lease may hold: it becomes a demand, and
 * the coordinator performs the reload (through this handler) once there is room.
 * Returns 0 with the models loaded and *origin set, or an error answered in resp.
 */
static int reload_through_coordinator(struct validation_server *vs, enum gc_model_origin *origin,
                                      struct gc_http_resp *resp)
{
    double wait_s =
        vs->demand_wait_s < DIRECT_RELOAD_WAIT_MAX_S ? vs->demand_wait_s : DIRECT_RELOAD_WAIT_MAX_S;
    int64_t deadline = gc_mono_ms() + (int64_t)(wait_s * 1000.0);
    char why[512];
    int rc;

    gc_info("reload asked directly: asking the coordinator for room first");
    for (;;) {
        double left = (double)(deadline - gc_mono_ms()) / 1000.0;
        rc = validation_demand(vs, left > 0 ? left : 0, why, sizeof(why));
        pthread_rwlock_rdlock(&vs->models_lock);
        if (vs->loaded && !vs->reduced) {
            *origin = vs->last_origin;
            pthread_rwlock_unlock(&vs->models_lock);
            return 0;
        }
        pthread_rwlock_unlock(&vs->models_lock);
        if (rc == GC_ETIMEDOUT || (rc == 0 && left <= 0)) {
            snprintf(why, sizeof(why),
                     "no room on the GPU within %.0f s: the coordinator keeps the request "
                     "queued and reloads the models once there is room",
                     wait_s);
            break;
        }
        if (rc < 0)
            break;
        gc_sleep_ms(DEMAND_BACKOFF_MIN_MS); /* loaded per the coordinator: our reload lands */
    }
    gc_warn("reload not done: %s", why);
    gc_http_resp_json(
        resp, 503,
        json_pack("{s:s, s:s, s:b}", "status", "error", "error", why, "models_reloaded", 0));
    return rc < 0 ? rc : GC_ETIMEDOUT;
}

static void handle_reload(struct validation_server *vs, struct gc_http_resp *resp)
{
    enum gc_model_origin origin = GC_ORIGIN_NONE;
    int64_t t0 = gc_mono_ns();
    bool was_loaded, direct = false;
    char err[256];
    json_t *o;
    int rc = 0;

    /* Asked before the lock: the coordinator's own call must not wait behind it. */
    if (validation_level_now(vs) != VALIDATION_FULL && !validation_link_reload_allowed(vs))
        direct = true;
    if (direct) {
        if (reload_through_coordinator(vs, &origin, resp) < 0)
            return;
        was_loaded = false;
        goto out_answer;
    }
    pthread_rwlock_wrlock(&vs->models_lock);
    was_loaded = vs->loaded && !vs->reduced; /* at its first level already */
    if (!was_loaded)
        rc = validation_models_reload(vs, &origin, err, sizeof(err));
    if (rc == 0 && !was_loaded)
        vs->reloads++;
    pthread_rwlock_unlock(&vs->models_lock);
    if (rc < 0) {
        gc_warn("reload failed: %s", err);
        gc_http_resp_json(
            resp, rc == GC_EOOM ? 507 : 500,
            json_pack("{s:s, s:s, s:b}", "status", "error", "error", err, "models_reloaded", 0));
        return;
    }
out_answer:
    o = json_object();
    pthread_mutex_lock(&vs->store_lock);
    gc_gpu_status_add(o, &vs->store);
    pthread_mutex_unlock(&vs->store_lock);
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "reload_time", json_real(round3((double)(gc_mono_ns() - t0) / 1e9)));
    json_object_set_new(o, "models_reloaded", json_true());
    json_object_set_new(o, "restored_from_backup", json_boolean(origin == GC_ORIGIN_BACKUP));
    json_object_set_new(o, "reinitialized", json_boolean(origin == GC_ORIGIN_REINIT));
    json_object_set_new(o, "fallback_reinitialized",
                        json_boolean(origin == GC_ORIGIN_FALLBACK_REINIT));
    if (was_loaded)
        json_object_set_new(o, "already_loaded", json_true());
    if (!was_loaded)
        gc_info("models reloaded (%s) in %.3f s",
                origin == GC_ORIGIN_BACKUP            ? "restored from backup"
                : origin == GC_ORIGIN_FALLBACK_REINIT ? "host copy bad: reinitialized"
                                                      : "reinitialized",
                (double)(gc_mono_ns() - t0) / 1e9);
    gc_http_resp_json(resp, 200, o);
}

static void handle_cleanup(struct validation_server *vs, struct gc_http_resp *resp)
{
    int64_t t0 = gc_mono_ns();
    uint64_t freed;
    json_t *o;

    pthread_rwlock_wrlock(&vs->models_lock);
    pthread_mutex_lock(&vs->store_lock);
    freed = gc_model_store_cleanup(&vs->store);
    o = gc_gpu_status_json(&vs->store);
    pthread_mutex_unlock(&vs->store_lock);
    pthread_rwlock_unlock(&vs->models_lock);
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "freed_gb", json_real(gc_gib(freed)));
    json_object_set_new(o, "cleanup_time", json_real(round3((double)(gc_mono_ns() - t0) / 1e9)));
    gc_http_resp_json(resp, 200, o);
}

/* A demand waits at most this long at a time, so that a request whose client has
 * left stops waiting (and gives its connection back) soon after. */
#define DEMAND_SLICE_S 2.0

/* Holds models_lock shared with the models loaded, asking the coordinator for them
 * back when they are not. On failure answers resp and returns false. */
static bool acquire_loaded_models(struct validation_server *vs, const struct gc_http_req *req,
                                  struct gc_http_resp *resp)
{
    int64_t deadline = gc_mono_ms() + (int64_t)(vs->demand_wait_s * 1000.0);
    int64_t backoff_ms = DEMAND_BACKOFF_MIN_MS;
    char why[512];

    for (;;) {
        pthread_rwlock_rdlock(&vs->models_lock);
        if (vs->loaded)
            return true;
        pthread_rwlock_unlock(&vs->models_lock);
        if (!vs->coordination) {
            gc_server_error(resp, 503, "unavailable",
                            "the models are unloaded and coordination is off: reload them with "
                            "POST /reload_models/");
            return false;
        }
        double left = (double)(deadline - gc_mono_ms()) / 1000.0;
        if (left <= 0) {
            gc_server_error(resp, 503, "unavailable",
                            "the models are unloaded and did not come back within %.0f s",
                            vs->demand_wait_s);
            return false;
        }
        if (gc_http_req_client_gone(req)) {
            gc_server_error(resp, 503, "unavailable", "the client left while the models were away");
            return false;
        }
        int rc =
            validation_demand(vs, left < DEMAND_SLICE_S ? left : DEMAND_SLICE_S, why, sizeof(why));
        if (rc == GC_ECONNECT || rc == GC_EUNAVAIL || rc == GC_ENOTFOUND) {
            gc_server_error(resp, 503, "unavailable", "the models are unloaded: %s", why);
            return false;
        }
        /* 0: the coordinator says they are loaded; a reload lands in this process a
         * moment later, or the two disagree until the coordinator's next look: wait
         * a little before asking again rather than spin. Timeout: the loop ends on
         * the deadline. */
        if (rc == 0) {
            gc_sleep_ms(backoff_ms);
            backoff_ms =
                backoff_ms * 2 > DEMAND_BACKOFF_MAX_MS ? DEMAND_BACKOFF_MAX_MS : backoff_ms * 2;
        }
    }
}

static void handle_validate(struct validation_server *vs, const struct gc_http_req *req,
                            struct gc_http_resp *resp)
{
    static const char *const fields[] = {"prompt", "data", "compression", "generate_preview", NULL};
    struct gc_score_result result;
    struct gc_splats *splats = NULL;
    struct gc_jerr jerr;
    json_t *body = NULL, *ans;
    const char *prompt = NULL, *data = NULL, *lifted = NULL;
    size_t data_len = 0;
    int64_t compression = 0;
    bool preview = false;
    void *ply = NULL;
    size_t ply_len = 0;
    char err[256];
    CUdeviceptr scratch = 0;
    bool reduced;
    int rc;

    /* The upload is read where it lies in the request body: no copies of it. */
    rc = gc_json_parse_lifted(req->body, req->body_len, GC_JSON_DEPTH_MAX, "data",
                              DATA_LIFT_MIN_BYTES, &body, &lifted, &data_len, &jerr);
    if (rc == 0 && (gc_json_only_keys(body, fields, &jerr) < 0 ||
                    gc_json_get_str(body, "prompt", true, PROMPT_MAX_BYTES, &prompt, &jerr) < 0 ||
                    gc_json_get_str(body, "data", true, SIZE_MAX, &data, &jerr) < 0 ||
                    gc_json_get_int(body, "compression", false, INT32_MIN, INT32_MAX, &compression,
                                    &jerr) < 0 ||
                    gc_json_get_bool(body, "generate_preview", false, &preview, &jerr) < 0))
        rc = GC_EINVAL;
    if (rc < 0) {
        gc_server_error(resp, rc == GC_ETOOBIG ? 413 : 400, "bad_request", "%s", jerr.msg);
        goto out;
    }
    /* JSON strings are valid UTF-8 (jansson checks): count their characters. */
    if (gc_utf8_chars(prompt, strlen(prompt)) > VALIDATION_PROMPT_MAX_CHARS) {
        gc_server_error(resp, 400, "bad_request", "field 'prompt' is longer than %d characters",
                        VALIDATION_PROMPT_MAX_CHARS);
        goto out;
    }
    if (compression != 0) {
        gc_server_error(
            resp, 400, "bad_request",
            "unsupported compression code %lld (only 0, uncompressed PLY, is supported)",
            (long long)compression);
        goto out;
    }
    if (lifted != NULL)
        data = lifted;
    else
        data_len = strlen(data);
    if (gc_b64_decode(data, data_len, (size_t)VALIDATION_BODY_MAX_DEFAULT, &ply, &ply_len) < 0) {
        gc_server_error(resp, 400, "bad_request", "field 'data' is not valid base64");
        goto out;
    }
    rc = gc_ply_parse_in_place(ply, ply_len, &splats, err, sizeof(err));
    if (rc < 0 || (void *)splats->v != ply)
        free(ply); /* copied into the splats: not kept while scoring */
    ply = NULL;
    if (rc < 0) {
        gc_server_error(resp, 400, "bad_request", "field 'data' is not a usable PLY: %s", err);
        goto out;
    }
    if (!acquire_loaded_models(vs, req, resp))
        goto out;

    /* Activations for this validation, from the cache (given back on cleanup/unload). */
    pthread_mutex_lock(&vs->store_lock);
    if (vs->activation_bytes > 0 &&
        gc_model_scratch_get(&vs->store, vs->activation_bytes, &scratch) < 0)
        scratch = 0;
    pthread_mutex_unlock(&vs->store_lock);
    if (vs->activation_bytes > 0 && scratch == 0) {
        pthread_rwlock_unlock(&vs->models_lock);
        gc_server_error(resp, 507, "out_of_gpu_memory",
                        "CUDA out of memory: no room for %llu bytes of activations",
                        (unsigned long long)vs->activation_bytes);
        goto out;
    }
    /* Read under models_lock: the precision cannot change while this validation runs. */
    reduced = vs->reduced;
    rc = gc_score_at(vs->scorer, prompt, strlen(prompt), splats, preview, reduced, &result);
    pthread_mutex_lock(&vs->store_lock);
    if (scratch != 0)
        gc_model_scratch_put(&vs->store, scratch, vs->activation_bytes);
    pthread_mutex_unlock(&vs->store_lock);
    __atomic_add_fetch(&vs->validations, 1, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&vs->models_lock);
    if (rc < 0) {
        gc_server_error(resp, 500, "internal", "scoring failed: %s", gpucoord_strerror(rc));
        goto out;
    }

    ans = json_pack("{s:f, s:f, s:f, s:f, s:f, s:n}", "score", round3(result.score), "iqa",
                    round3(result.iqa), "alignment_score", round3(result.alignment_score), "ssim",
                    round3(result.ssim), "lpips", round3(result.lpips), "preview");
    json_object_set_new(ans, "precision", json_string(reduced ? "reduced" : "full"));
    if (result.reason[0] != '\0')
        json_object_set_new(ans, "reason", json_string(result.reason));
    if (preview && result.preview != NULL) {
        uint8_t *png = NULL;
        size_t png_len = 0;
        char *text = NULL;
        size_t text_len = 0;
        if (gc_png_encode_rgb(result.preview, GC_SCORE_PREVIEW_SIZE, GC_SCORE_PREVIEW_SIZE, &png,
                              &png_len) == 0 &&
            gc_b64_encode(png, png_len, &text, &text_len) == 0)
            json_object_set_new(ans, "preview", json_stringn(text, text_len));
        free(png);
        free(text);
    }
    gc_score_result_clear(&result);
    gc_http_resp_json(resp, 200, ans);

out:
    gc_splats_free(splats);
    free(ply);
    json_decref(body);
}

void validation_handle(void *ctx, const struct gc_http_req *req, struct gc_http_resp *resp)
{
    struct validation_server *vs = ctx;
    char path[128];
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    bool post = strcmp(req->method, "POST") == 0;

    if (!gc_http_path_normalize(req->path, path, sizeof(path))) {
        gc_server_error(resp, 404, "not_found", "no such path");
        return;
    }
    if (strcmp(path, "/health") == 0 && get) {
        handle_health(vs, resp);
    } else if (strcmp(path, "/version") == 0 && get) {
        gc_http_resp_json(
            resp, 200,
            json_string("gpucoord validation-server " GPUCOORD_VERSION " (reference models)"));
    } else if (strcmp(path, "/gpu_status") == 0 && get) {
        handle_gpu_status(vs, resp);
    } else if (strcmp(path, "/unload_models") == 0 && post) {
        handle_unload(vs, req, resp);
    } else if (strcmp(path, "/reload_models") == 0 && post) {
        handle_reload(vs, resp);
    } else if (strcmp(path, "/cleanup_gpu") == 0 && post) {
        handle_cleanup(vs, resp);
    } else if (strcmp(path, "/validate_txt_to_3d_ply") == 0 && post) {
        handle_validate(vs, req, resp);
    } else if (strcmp(path, "/health") == 0 || strcmp(path, "/version") == 0 ||
               strcmp(path, "/gpu_status") == 0 || strcmp(path, "/unload_models") == 0 ||
               strcmp(path, "/reload_models") == 0 || strcmp(path, "/cleanup_gpu") == 0 ||
               strcmp(path, "/validate_txt_to_3d_ply") == 0) {
        gc_server_error(resp, 405, "method_not_allowed", "method %s not allowed on %s", req->method,
                        path);
    } else {
        gc_server_error(resp, 404, "not_found", "no such path: %.100s", path);
    }
}
