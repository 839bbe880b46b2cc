/*
 * coord_uses.c - requests in flight through a resident (gpucoord proxy): each is a
 * "use" with an id and a TTL. An in-use resident is not chosen for eviction; an
 * eviction that needs it waits for its uses to end, at most its drain_timeout_s
 * (sched.c). A use whose TTL passes without renewal ends by itself, so a proxy
 * that crashed never pins a resident.
 */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "daemon/coord.h"

static struct gc_use *use_find_locked(struct gc_coord *coord, const char *name, const char *id)
{
    for (unsigned i = 0; i < GC_USES_MAX; i++) {
        struct gc_use *u = &coord->uses[i];
        if (u->in_use && strcmp(u->id, id) == 0 && strcmp(u->resident, name) == 0)
            return u;
    }
    return NULL;
}

int64_t gc_coord_uses_settle_locked(struct gc_coord *coord, int64_t now_ms)
{
    struct gc_ledger *ledger = coord->ledger;
    int64_t next = INT64_MAX;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++)
        ledger->residents[i].uses = 0;
    for (unsigned i = 0; i < GC_USES_MAX; i++) {
        struct gc_use *u = &coord->uses[i];
        struct gc_resident *r;
        if (!u->in_use)
            continue;
        r = gc_ledger_resident_find(ledger, u->resident);
        if (r == NULL || now_ms >= u->expires_ms) {
            gc_events_add(&coord->events, gc_real_s(), "use_expired", u->resident, "%s: %s", u->id,
                          r ? "not renewed within its ttl (its client is gone)"
                            : "its resident was deleted");
            u->in_use = false;
            continue;
        }
        r->uses++;
        if (u->expires_ms < next)
            next = u->expires_ms;
    }
    return next;
}

static void use_view(struct gc_api_answer *ans, int status, const struct gc_use *u)
{
    json_decref(ans->body);
    ans->status = status;
    ans->body =
        json_pack("{s:s, s:s, s:f}", "id", u->id, "resident", u->resident, "ttl_s", u->ttl_s);
}

void gc_coord_use_begin(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                        const json_t *req, struct gc_api_answer *ans)
{
    static const char *const fields[] = {"ttl_s", NULL};
    struct gc_jerr err;
    struct gc_resident *r;
    struct gc_use *slot = NULL;
    double ttl_s = GC_USE_TTL_DEFAULT_S;

    if (req != NULL &&
        (gc_json_only_keys(req, fields, &err) < 0 ||
         gc_json_get_seconds(req, "ttl_s", false, 1, GC_USE_TTL_MAX_S, &ttl_s, &err) < 0)) {
        gc_api_error(ans, GC_EINVAL, "%s", err.msg);
        return;
    }
    pthread_mutex_lock(&coord->lock);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
        goto out_unlock;
    }
    /* A request may start only on a loaded resident that no eviction waits for:
     * new requests would keep a draining resident forever. */
    if (r->state != GC_RES_LOADED || r->busy || r->drain_since_ms > 0) {
        gc_api_error(ans, GC_ECONFLICT, "resident '%s' is %s: demand it, then try again", name,
                     r->drain_since_ms > 0 && r->state == GC_RES_LOADED
                         ? "draining for an eviction"
                         : gc_resident_state_name(r->state));
        goto out_unlock;
    }
    for (unsigned i = 0; i < GC_USES_MAX && slot == NULL; i++) {
        if (!coord->uses[i].in_use)
            slot = &coord->uses[i];
    }
    if (slot == NULL) {
        gc_api_error(ans, GC_ELIMIT, "at most %d requests in flight", GC_USES_MAX);
        goto out_unlock;
    }
    memset(slot, 0, sizeof(*slot));
    slot->in_use = true;
    snprintf(slot->id, sizeof(slot->id), "u-%llu", (unsigned long long)++coord->next_use_id);
    snprintf(slot->resident, sizeof(slot->resident), "%s", name);
    snprintf(slot->owner, sizeof(slot->owner), "%s", caller->key);
    slot->ttl_s = ttl_s;
    slot->expires_ms = gc_mono_ms() + (int64_t)(ttl_s * 1000.0);
    r->uses++;
    r->last_used_ms = gc_mono_ms();
    use_view(ans, 201, slot);
    gc_coord_wake(coord); /* the engine sleeps until its next deadline: this expiry is one */
out_unlock:
    pthread_mutex_unlock(&coord->lock);
}

/* Renews (end = false) or ends a use. */
static void use_touch(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                      const char *id, bool end, struct gc_api_answer *ans)
{
    struct gc_use *u;

    if (end && gc_coord_waits_hint(coord))
        gc_coord_lock_fresh(coord); /* an eviction may wait for it */
    else
        pthread_mutex_lock(&coord->lock);
    u = use_find_locked(coord, name, id);
    if (u == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no use '%s' of resident '%s' (ended or expired)", id,
                     name);
    } else if (!gc_caller_owns(caller, u->owner)) {
        gc_api_error(ans, GC_EFORBIDDEN, "use '%s' belongs to another caller", id);
    } else if (end) {
        u->in_use = false;
        gc_coord_kick_locked(coord); /* an eviction may have waited for it */
        json_decref(ans->body);
        ans->status = 204;
        ans->body = NULL;
    } else {
        u->expires_ms = gc_mono_ms() + (int64_t)(u->ttl_s * 1000.0);
        use_view(ans, 200, u);
        gc_coord_wake(coord);
    }
    pthread_mutex_unlock(&coord->lock);
}

void gc_coord_use_renew(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                        const char *id, struct gc_api_answer *ans)
{
    use_touch(coord, caller, name, id, false, ans);
}

void gc_coord_use_end(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                      const char *id, struct gc_api_answer *ans)
{
    use_touch(coord, caller, name, id, true, ans);
}
