/*
 * resident_link.c - the validation server as a gpucoordd resident: it registers
 * itself (seed protocol, its pid, its model bytes and levels) and stays registered, and it
 * asks for its memory back (demand) when a request arrives while it is unloaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "gpucoord.h"
#include "servers/validation/validation.h"

/* How often the link checks that the coordinator still knows this resident. */
#define LINK_CHECK_MS   2000
#define LINK_TIMEOUT_MS 5000

/* Registers with the state the models are in: a server whose models are not on the
 * GPU (or not all: at reduced precision) must not be counted as holding them, nor take
 * them without asking. */
static int link_register(struct validation_server *vs, gpucoord_client *c)
{
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:i, s:I, s:i, s:f, s:f, s:b}", "name", vs->resident_name,
                  "protocol", "seed", "url", vs->self_url, "pid", (int)getpid(), "bytes",
                  (json_int_t)vs->model_bytes, "priority", vs->priority, "unload_timeout_s", 30.0,
                  "reload_timeout_s", 60.0, "loaded", validation_level_now(vs) == VALIDATION_FULL);
    char *text, *answer = NULL;
    long status = 0;
    int rc;

    /* Levels: a lease a little short of room costs reduced precision, not the models;
     * and the level it is at now (a coordinator that forgot it counts what it holds). */
    if (vs->levels) {
        json_object_set_new(body, "levels",
                            json_pack("[{s:s, s:I}, {s:s, s:I}, {s:s, s:i}]", "name", "full",
                                      "bytes", (json_int_t)vs->model_bytes, "name", "reduced",
                                      "bytes", (json_int_t)vs->reduced_bytes, "name", "off",
                                      "bytes", 0));
        json_object_set_new(body, "level",
                            json_string(validation_level_name(validation_level_now(vs))));
    }
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return GC_ENOMEM;
    rc = gpucoord_request(c, "POST", "/v1/residents", text, LINK_TIMEOUT_MS, &status, &answer);
    free(text);
    if (rc == 0 && status != 201) {
        gc_warn("coordinator refused the registration (HTTP %ld): %s", status,
                answer ? answer : "");
        rc = status == 409 ? GC_ECONFLICT : GC_EINVAL;
    }
    free(answer);
    return rc;
}

/* Is this process still the registered resident? (false also when unreachable) */
static bool link_known(struct validation_server *vs, gpucoord_client *c, bool *ret_reachable)
{
    char path[128], *answer = NULL;
    long status = 0;
    bool known = false;
    json_t *j;

    snprintf(path, sizeof(path), "/v1/residents/%s", vs->resident_name);
    *ret_reachable = gpucoord_request(c, "GET", path, NULL, LINK_TIMEOUT_MS, &status, &answer) == 0;
    if (*ret_reachable && status == 200) {
        j = json_loads(answer, 0, NULL);
        /* Known, with our pid, and not marked gone (a coordinator restart keeps it). */
        known = j && json_integer_value(json_object_get(j, "pid")) == getpid();
        json_decref(j);
    }
    free(answer);
    return known;
}

static void *link_main(void *arg)
{
    struct validation_server *vs = arg;
    gpucoord_client *c = NULL;
    bool warned = false;

    if (gpucoord_client_new(vs->coordinator_url, &c) < 0) {
        gc_error("bad coordinator URL '%s'", vs->coordinator_url);
        return NULL;
    }
    while (!vs->stopping) {
        bool reachable;
        if (!link_known(vs, c, &reachable)) {
            if (reachable && link_register(vs, c) == 0) {
                gc_info("registered with the coordinator at %s as resident '%s'",
                        vs->coordinator_url, vs->resident_name);
                vs->registered = true;
                warned = false;
                /* Registered unloaded (its models still wait for room, or are at
                 * reduced precision, where a coordinator that forgot it left them): ask
                 * for the room again. */
                if (validation_level_now(vs) != VALIDATION_FULL) {
                    char why[256];
                    validation_demand(vs, 0, why, sizeof(why));
                }
            } else if (!reachable && !warned) {
                gc_warn("coordinator at %s unreachable; will keep trying to register",
                        vs->coordinator_url);
                warned = true;
                vs->registered = false;
            }
        } else {
            vs->registered = true; /* known again after a restart that kept its state */
            if (!__atomic_load_n(&vs->ever_loaded, __ATOMIC_ACQUIRE)) {
                /* Still waiting for the first load: a coordinator restarted meanwhile
                 * has forgotten the queued demand. Asking again is harmless (one
                 * demand per resident). */
                char why[256];
                validation_demand(vs, 0, why, sizeof(why));
            }
        }
        for (int i = 0; i < LINK_CHECK_MS / 100 && !vs->stopping; i++)
            gc_sleep_ms(100);
    }
    gpucoord_client_free(c);
    return NULL;
}

void validation_link_start(struct validation_server *vs)
{
    if (pthread_create(&vs->link_thread, NULL, link_main, vs) != 0)
        gc_error("cannot start the coordinator link");
}

void validation_link_stop(struct validation_server *vs)
{
    gpucoord_client *c;
    char path[128], *answer = NULL;
    long status;

    vs->stopping = true;
    pthread_join(vs->link_thread, NULL);
    /* Leaving for good: the coordinator need not wait for this resident any more. */
    if (vs->registered && gpucoord_client_new(vs->coordinator_url, &c) == 0) {
        snprintf(path, sizeof(path), "/v1/residents/%s", vs->resident_name);
        if (gpucoord_request(c, "DELETE", path, NULL, 2000, &status, &answer) == 0)
            free(answer);
        gpucoord_client_free(c);
    }
}

int validation_demand(struct validation_server *vs, double wait_s, char *why, size_t why_len)
{
    gpucoord_client *c;
    char path[128], body[64], *answer = NULL;
    long status = 0;
    int rc;

    if (gpucoord_client_new(vs->coordinator_url, &c) < 0) {
        snprintf(why, why_len, "bad coordinator URL");
        return GC_EINVAL;
    }
    snprintf(path, sizeof(path), "/v1/residents/%s/demand", vs->resident_name);
    snprintf(body, sizeof(body), "{\"wait_s\":%.3f}", wait_s);
    rc = gpucoord_request(c, "POST", path, body, (long)(wait_s * 1000.0) + LINK_TIMEOUT_MS, &status,
                          &answer);
    if (rc < 0) {
        snprintf(why, why_len, "%s", gpucoord_client_message(c));
    } else if (status == 200) {
        rc = 0;
    } else if (status == 202) {
        snprintf(why, why_len, "still queued for memory");
        rc = GC_ETIMEDOUT;
    } else {
        json_t *j = json_loads(answer ? answer : "", 0, NULL);
        const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
        snprintf(why, why_len, "coordinator answered %ld: %s", status, m ? m : "");
        json_decref(j);
        rc = status == 404 ? GC_ENOTFOUND : GC_EUNAVAIL;
    }
    free(answer);
    gpucoord_client_free(c);
    return rc;
}

int validation_link_register_unloaded(struct validation_server *vs)
{
    gpucoord_client *c;
    char why[256];
    int rc;

    if (gpucoord_client_new(vs->coordinator_url, &c) < 0)
        return GC_EINVAL;
    /* The models are not loaded yet: registered unloaded. A coordinator still busy with
     * this name (a step on the previous process) is waited for a little. */
    for (int64_t deadline = gc_mono_ms() + LINK_TIMEOUT_MS;;) {
        rc = link_register(vs, c);
        if (rc != GC_ECONFLICT || gc_mono_ms() >= deadline)
            break;
        gc_sleep_ms(200);
    }
    gpucoord_client_free(c);
    if (rc < 0)
        return rc;
    vs->registered = true;
    gc_info("registered with the coordinator at %s as resident '%s' (unloaded); asking for "
            "room for the models",
            vs->coordinator_url, vs->resident_name);
    /* Queued, not awaited: the coordinator calls /reload_models/ once there is room. */
    rc = validation_demand(vs, 0, why, sizeof(why));
    if (rc < 0 && rc != GC_ETIMEDOUT)
        gc_warn("demand for the models failed: %s", why);
    return 0;
}

bool validation_link_reload_allowed(struct validation_server *vs)
{
    gpucoord_client *c;
    char path[128], *answer = NULL;
    long status = 0;
    bool allowed = true;
    json_t *j;

    if (!vs->coordination || !vs->registered)
        return true;
    if (gpucoord_client_new(vs->coordinator_url, &c) < 0)
        return true;
    snprintf(path, sizeof(path), "/v1/residents/%s", vs->resident_name);
    if (gpucoord_request(c, "GET", path, NULL, LINK_TIMEOUT_MS, &status, &answer) == 0 &&
        status == 200) {
        const char *state;
        j = json_loads(answer, 0, NULL);
        state = j ? json_string_value(json_object_get(j, "state")) : NULL;
        /* Reloading: the ledger has claimed the room (the coordinator's own call). */
        allowed = state == NULL || strcmp(state, "reloading") == 0;
        json_decref(j);
    }
    free(answer);
    gpucoord_client_free(c);
    return allowed;
}
