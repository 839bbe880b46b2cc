/* coord_leases.c - lease requests, waits, heartbeats and releases (API operations). */
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/names.h"
#include "common/proc.h"
#include "common/size.h"
#include "coord/growth.h"
#include "daemon/coord.h"

/* Largest lease accepted (a sanity cap, far above any GPU). */
#define LEASE_BYTES_MAX (1ULL << 50)
#define PRIORITY_LIMIT  1000000
/* A waiting request re-checks its client at least this often. */
#define WAIT_SLICE_MS 1000

static const char *const lease_fields[] = {"holder",   "bytes", "gpu",    "pid",
                                           "priority", "ttl_s", "wait_s", NULL};

/* Answers for a lease that is no longer waiting, or 202 while it still is. */
static void lease_answer_locked(struct gc_coord *coord, const char *id, struct gc_api_answer *ans)
{
    const struct gc_lease *l = gc_ledger_lease_lookup(coord->ledger, id);

    if (l == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no lease '%s'", id);
        return;
    }
    json_decref(ans->body);
    ans->body = NULL;
    switch (l->state) {
    case GC_LEASE_GRANTED:
        ans->status = 201;
        ans->body = gc_view_lease_locked(coord, l);
        break;
    case GC_LEASE_QUEUED:
    case GC_LEASE_PREPARING:
        ans->status = 202;
        ans->body = gc_view_lease_locked(coord, l);
        break;
    case GC_LEASE_FAILED:
        gc_api_error(ans, l->error ? l->error : GC_ECOULDNOTFREE, "%s", l->reason);
        json_object_set_new(ans->body, "id", json_string(l->id));
        break;
    default:
        ans->status = 410;
        ans->body = gc_view_lease_locked(coord, l);
        break;
    }
}

/* Waits while the lease queues or prepares, until deadline_ms; keeps it alive while
 * its client waits when keep_alive (the client is its owner: a client that left keeps
 * it alive no longer, its TTL runs; a stranger watching it never does). */
static void wait_lease_locked(struct gc_coord *coord, const char *id, int64_t deadline_ms,
                              const struct gc_waiter *waiter, bool keep_alive)
{
    for (;;) {
        struct gc_lease *l = gc_ledger_lease_find(coord->ledger, id);
        int64_t slice;
        if (l == NULL || (l->state != GC_LEASE_QUEUED && l->state != GC_LEASE_PREPARING))
            return;
        if (coord->stopping || (waiter != NULL && waiter->gone(waiter->ctx)))
            return;
        if (keep_alive)
            l->heartbeat_ms = gc_mono_ms(); /* a client waiting on it is alive */
        slice = gc_mono_ms() + WAIT_SLICE_MS;
        if (!gc_coord_wait_locked(coord, slice < deadline_ms ? slice : deadline_ms) &&
            gc_mono_ms() >= deadline_ms) {
            l = gc_ledger_lease_find(coord->ledger, id);
            if (l != NULL && keep_alive)
                l->heartbeat_ms = gc_mono_ms();
            return;
        }
    }
}

void gc_coord_lease_request(struct gc_coord *coord, const struct gc_caller *caller,
                            const json_t *req, const struct gc_waiter *waiter,
                            struct gc_api_answer *ans)
{
    const struct gc_config *cfg = coord->config;
    struct gc_jerr err;
    const char *holder = NULL;
    uint64_t bytes = 0;
    int64_t pid = 0, priority = GC_LEASE_PRIORITY_DEFAULT, gpu_req = -1;
    double ttl_s = cfg->default_ttl_s, wait_s = 0;
    uint64_t start_ticks = 0;
    struct gc_lease *l;
    json_t *gpu;
    char id[GC_LEASE_ID_MAX];
    struct gc_nvml_reading *reading;
    char why[GC_REASON_MAX];
    int rc;

    if (gc_json_only_keys(req, lease_fields, &err) < 0 ||
        gc_json_get_str(req, "holder", true, GC_NAME_MAX, &holder, &err) < 0 ||
        gc_json_get_bytes(req, "bytes", true, LEASE_BYTES_MAX, &bytes, &err) < 0 ||
        gc_json_get_int(req, "pid", false, 1, INT_MAX, &pid, &err) < 0 ||
        gc_json_get_int(req, "priority", false, -PRIORITY_LIMIT, PRIORITY_LIMIT, &priority, &err) <
            0 ||
        gc_json_get_seconds(req, "ttl_s", false, 0, cfg->max_ttl_s, &ttl_s, &err) < 0 ||
        gc_json_get_seconds(req, "wait_s", false, 0, cfg->max_wait_s, &wait_s, &err) < 0) {
        gc_api_error(ans, GC_EINVAL, "%s", err.msg);
        return;
    }
    if (!gc_name_valid(holder)) {
        gc_api_error(ans, GC_EINVAL, "holder must match [A-Za-z0-9._-]{1,%d}", GC_NAME_MAX);
        return;
    }
    if (bytes == 0) {
        gc_api_error(ans, GC_EINVAL, "field 'bytes' must be greater than 0");
        return;
    }
    gpu = json_object_get(req, "gpu");
    if (gpu != NULL && !json_is_null(gpu)) {
        if (json_is_string(gpu) && strcmp(json_string_value(gpu), "any") == 0) {
            gpu_req = -1;
        } else if (json_is_integer(gpu) && json_integer_value(gpu) >= 0 &&
                   json_integer_value(gpu) < GC_GPUS_MAX) {
            gpu_req = json_integer_value(gpu);
        } else {
            gc_api_error(ans, GC_EINVAL, "field 'gpu' must be a GPU index or \"any\"");
            return;
        }
    }
    if (ttl_s == 0 && pid == 0) {
        gc_api_error(ans, GC_EINVAL, "a lease without a pid needs a ttl_s above 0");
        return;
    }
    /* Without a pid nothing but its TTL ends a lease whose holder vanished. */
    if (pid == 0 && json_object_get(req, "ttl_s") == NULL && ttl_s > cfg->max_ttl_pidless_s)
        ttl_s = cfg->max_ttl_pidless_s;
    if (pid == 0 && ttl_s > cfg->max_ttl_pidless_s) {
        gc_api_error(ans, GC_EINVAL,
                     "a lease without a pid may have a ttl_s of at most %g s "
                     "(max_ttl_pidless_s): send heartbeats to keep it longer, or give its pid",
                     cfg->max_ttl_pidless_s);
        return;
    }
    /* The pid ties the lease's life to a process: only its owner may name it. */
    if (pid > 0) {
        rc = gc_caller_check_pid(caller, (pid_t)pid, &start_ticks, why, sizeof(why));
        if (rc < 0) {
            gc_api_error(ans, rc, "%s", why);
            return;
        }
    }

    /* Read NVML before taking the lock: the lock is held as briefly as possible. */
    reading = gc_coord_reading_get(coord);
    if (reading == NULL) {
        gc_api_error(ans, GC_ENOMEM, "out of memory");
        return;
    }
    gc_coord_read_nvml(coord, reading);
    pthread_mutex_lock(&coord->lock);
    if (pid > 0) {
        const struct gc_watch *w = gc_coord_watch_alive_locked(coord, (pid_t)pid);
        /* A different start time: the checked process exited and its pid was reused. */
        if (w == NULL || w->start_ticks != start_ticks) {
            gc_api_error(ans, GC_EINVAL, "process %lld does not exist", (long long)pid);
            if (w != NULL)
                gc_coord_watch_release_locked(coord, (pid_t)pid);
            pthread_mutex_unlock(&coord->lock);
            gc_coord_reading_put(coord, reading);
            return;
        }
    }
    if (gpu_req >= (int64_t)coord->ledger->ngpus) {
        gc_api_error(ans, GC_EINVAL, "no GPU %lld: this coordinator has %u", (long long)gpu_req,
                     coord->ledger->ngpus);
        gc_coord_watch_release_locked(coord, (pid_t)pid); /* nothing refers to it */
        pthread_mutex_unlock(&coord->lock);
        gc_coord_reading_put(coord, reading);
        return;
    }
    /* The id is covered by the journal before it is issued: never issued twice. */
    rc = gc_coord_ids_reserve_locked(coord);
    if (rc < 0) {
        if (rc == GC_ELIMIT)
            gc_api_error(ans, rc, "lease ids are exhausted (the last is %lld)",
                         (long long)GC_LEASE_ID_LAST);
        else
            gc_api_error(ans, rc, "cannot write the journal in '%s': lease refused",
                         cfg->state_dir);
        gc_coord_watch_release_locked(coord, (pid_t)pid);
        pthread_mutex_unlock(&coord->lock);
        gc_coord_reading_put(coord, reading);
        return;
    }
    rc = gc_ledger_lease_new_owned(coord->ledger, GC_KIND_HOLDER, caller->key, holder, (pid_t)pid,
                                   (int)gpu_req, bytes, (int)priority, ttl_s, gc_mono_ms(), &l);
    if (rc < 0) {
        gc_api_error(ans, GC_ELIMIT,
                     "too many leases (at most %u queued, %u per holder, %u per caller - you are "
                     "%s - and %d in all)",
                     cfg->queue_max, cfg->leases_per_holder_max, cfg->leases_per_caller_max,
                     caller->key, GC_LEASES_MAX);
        gc_coord_watch_release_locked(coord, (pid_t)pid);
        pthread_mutex_unlock(&coord->lock);
        gc_coord_reading_put(coord, reading);
        return;
    }
    l->pid_start_ticks = start_ticks;
    snprintf(id, sizeof(id), "%s", l->id);
    gc_coord_kick_with_locked(coord, reading);
    gc_coord_reading_put(coord, reading);
    /* Granted or preparing, it is journaled already; queued, it is journaled here, so
     * that a restart keeps its place for the client that polls it. */
    l = gc_ledger_lease_find(coord->ledger, id);
    if (l != NULL && l->state == GC_LEASE_QUEUED && gc_coord_journal_lease_locked(coord, l) < 0)
        gc_coord_lease_end_locked(coord, l, GC_LEASE_FAILED, GC_EJOURNAL,
                                  "cannot write the journal: lease refused");
    if (wait_s > 0)
        wait_lease_locked(coord, id, gc_mono_ms() + (int64_t)(wait_s * 1000.0), waiter, true);
    lease_answer_locked(coord, id, ans);
    pthread_mutex_unlock(&coord->lock);
}

void gc_coord_lease_get(struct gc_coord *coord, const struct gc_caller *caller, const char *id,
                        double wait_s, const struct gc_waiter *waiter, struct gc_api_answer *ans)
{
    const struct gc_lease *l;

    pthread_mutex_lock(&coord->lock);
    if (wait_s > 0) {
        l = gc_ledger_lease_find(coord->ledger, id);
        wait_lease_locked(coord, id, gc_mono_ms() + (int64_t)(wait_s * 1000.0), waiter,
                          l != NULL && caller != NULL && gc_caller_owns(caller, l->owner));
    }
    l = gc_ledger_lease_lookup(coord->ledger, id);
    if (l == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no lease '%s'", id);
    } else {
        json_decref(ans->body);
        ans->status = 200;
        ans->body = gc_view_lease_locked(coord, l);
    }
    pthread_mutex_unlock(&coord->lock);
}

void gc_coord_lease_heartbeat(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *id, struct gc_api_answer *ans)
{
    struct gc_lease *l;

    pthread_mutex_lock(&coord->lock);
    l = gc_ledger_lease_find(coord->ledger, id);
    if (l == NULL || l->kind != GC_KIND_HOLDER) {
        const struct gc_lease *h = gc_ledger_lease_lookup(coord->ledger, id);
        if (h != NULL)
            gc_api_error(ans, GC_ENOTFOUND, "lease '%s' has ended (%s%s%s)", id,
                         gc_lease_state_name(h->state), h->reason[0] ? ": " : "", h->reason);
        else
            gc_api_error(ans, GC_ENOTFOUND, "no lease '%s'", id);
    } else if (!gc_caller_owns(caller, l->owner)) {
        gc_api_error(ans, GC_EFORBIDDEN, "lease '%s' belongs to another caller", id);
    } else {
        l->heartbeat_ms = gc_mono_ms();
        json_decref(ans->body);
        ans->status = 200;
        ans->body = json_pack("{s:s, s:s, s:f}", "id", l->id, "state",
                              gc_lease_state_name(l->state), "ttl_s", l->ttl_s);
    }
    pthread_mutex_unlock(&coord->lock);
}

void gc_coord_lease_release(struct gc_coord *coord, const struct gc_caller *caller, const char *id,
                            struct gc_api_answer *ans)
{
    struct gc_lease *l;
    const struct gc_lease *h;
    double held_s;

    /* The room it frees is judged on a reading taken after its holder let go. */
    if (gc_coord_waits_hint(coord))
        gc_coord_lock_fresh(coord);
    else
        pthread_mutex_lock(&coord->lock);
    l = gc_ledger_lease_find(coord->ledger, id);
    if (l != NULL && l->kind == GC_KIND_HOLDER && !gc_caller_owns(caller, l->owner)) {
        gc_api_error(ans, GC_EFORBIDDEN, "lease '%s' belongs to another caller", id);
        pthread_mutex_unlock(&coord->lock);
        return;
    }
    if (l != NULL && l->kind == GC_KIND_HOLDER) {
        const char *why = l->state == GC_LEASE_GRANTED ? "released by its holder"
                                                       : "withdrawn before it was granted";
        gc_coord_lease_end_locked(coord, l, GC_LEASE_RELEASED, 0, why);
        /* The freed room matters only to someone waiting for it. */
        if (gc_coord_something_waits_locked(coord))
            gc_coord_kick_locked(coord);
    }
    h = gc_ledger_lease_lookup(coord->ledger, id);
    if (h == NULL || h->kind != GC_KIND_HOLDER) {
        gc_api_error(ans, GC_ENOTFOUND, "no lease '%s'", id);
    } else {
        held_s = h->granted_ms ? (double)(h->ended_ms - h->granted_ms) / 1000.0 : 0;
        json_decref(ans->body);
        ans->status = 200;
        ans->body = json_pack("{s:s, s:s, s:f}", "id", h->id, "state",
                              gc_lease_state_name(h->state), "held_s", held_s);
        if (h->reason[0] && h->state != GC_LEASE_RELEASED)
            json_object_set_new(ans->body, "reason", json_string(h->reason));
    }
    pthread_mutex_unlock(&coord->lock);
}

static const char *const resize_fields[] = {"bytes", "wait_s", NULL};

/* Answers a resize: 200 with the lease when it holds target bytes, else 202 with the
 * lease at its old size (the growth was withdrawn), or the growth's refusal. */
static void resize_answer_locked(struct gc_coord *coord, const char *id, const char *growth_id,
                                 uint64_t target, struct gc_api_answer *ans)
{
    const struct gc_lease *l = gc_ledger_lease_find(coord->ledger, id);
    const struct gc_lease *g =
        growth_id[0] ? gc_ledger_lease_lookup(coord->ledger, growth_id) : NULL;
    char b[GC_SIZE_BUF];

    if (l == NULL || l->state != GC_LEASE_GRANTED) {
        const struct gc_lease *h = gc_ledger_lease_lookup(coord->ledger, id);
        gc_api_error(ans, GC_ENOTFOUND, "lease '%s' has ended (%s%s%s)", id,
                     h ? gc_lease_state_name(h->state) : "gone", h && h->reason[0] ? ": " : "",
                     h ? h->reason : "");
        return;
    }
    if (g != NULL && g->state == GC_LEASE_FAILED && l->bytes < target) {
        gc_api_error(ans, g->error ? g->error : GC_ECOULDNOTFREE, "%s", g->reason);
        json_object_set_new(ans->body, "id", json_string(l->id));
        json_object_set_new(ans->body, "bytes", json_integer((json_int_t)l->bytes));
        return;
    }
    json_decref(ans->body);
    ans->body = gc_view_lease_locked(coord, l);
    if (l->bytes == target || l->state != GC_LEASE_GRANTED) {
        ans->status = 200;
        return;
    }
    ans->status = 202;
    json_object_set_new(ans->body, "requested_bytes", json_integer((json_int_t)target));
    json_object_set_new(
        ans->body, "message",
        json_sprintf("%s not available within the wait; the lease keeps its size and the growth "
                     "was withdrawn",
                     gc_size_format(target - l->bytes, b, sizeof(b))));
}

void gc_coord_lease_resize(struct gc_coord *coord, const struct gc_caller *caller, const char *id,
                           const json_t *req, const struct gc_waiter *waiter,
                           struct gc_api_answer *ans)
{
    const struct gc_config *cfg = coord->config;
    struct gc_jerr err;
    uint64_t bytes = 0, old_bytes;
    double wait_s = 0;
    struct gc_lease *l, *g = NULL;
    struct gc_nvml_reading *reading;
    char growth_id[GC_LEASE_ID_MAX] = "", b[GC_SIZE_BUF], o[GC_SIZE_BUF];
    int rc;

    if (gc_json_only_keys(req, resize_fields, &err) < 0 ||
        gc_json_get_bytes(req, "bytes", true, LEASE_BYTES_MAX, &bytes, &err) < 0 ||
        gc_json_get_seconds(req, "wait_s", false, 0, cfg->max_wait_s, &wait_s, &err) < 0) {
        gc_api_error(ans, GC_EINVAL, "%s", err.msg);
        return;
    }
    if (bytes == 0) {
        gc_api_error(ans, GC_EINVAL,
                     "field 'bytes' must be greater than 0 (release the lease to hold nothing)");
        return;
    }

    reading = gc_coord_reading_get(coord);
    if (reading == NULL) {
        gc_api_error(ans, GC_ENOMEM, "out of memory");
        return;
    }
    gc_coord_read_nvml(coord, reading);
    pthread_mutex_lock(&coord->lock);
    l = gc_ledger_lease_find(coord->ledger, id);
    if (l == NULL || l->kind != GC_KIND_HOLDER) {
        gc_api_error(ans, GC_ENOTFOUND, "no active lease '%s'", id);
        goto out_unlock;
    }
    if (!gc_caller_owns(caller, l->owner)) {
        gc_api_error(ans, GC_EFORBIDDEN, "lease '%s' belongs to another caller", id);
        goto out_unlock;
    }
    old_bytes = l->bytes;
    rc = gc_growth_request(coord->ledger, l, bytes, gc_mono_ms(), &g);
    if (rc == GC_ECONFLICT) {
        gc_api_error(ans, GC_ECONFLICT,
                     "lease '%s' is being prepared (residents are unloading for it): resize it "
                     "once it is granted",
                     id);
        goto out_unlock;
    }
    if (rc < 0) {
        gc_api_error(ans, GC_ELIMIT, "too many leases waiting (at most %u queued, %d in all)",
                     cfg->queue_max, GC_LEASES_MAX);
        goto out_unlock;
    }
    coord->counters.lease_resizes++;
    l = gc_ledger_lease_find(coord->ledger, id);
    if (g == NULL) {
        /* Shrunk (or a queued lease resized): in force now, journaled like a grant. */
        if (l->bytes != old_bytes) {
            gc_coord_journal_lease_locked(coord, l);
            gc_events_add(&coord->events, gc_real_s(), "lease_resized", l->id, "%s: %s to %s",
                          l->holder, l->bytes < old_bytes ? "shrunk" : "queued size changed",
                          gc_size_format(l->bytes, b, sizeof(b)));
        }
        if (gc_coord_something_waits_locked(coord))
            gc_coord_kick_with_locked(coord, reading);
        if (l->state == GC_LEASE_QUEUED) {
            lease_answer_locked(coord, id, ans);
            goto out_unlock;
        }
        resize_answer_locked(coord, id, "", l->bytes, ans);
        goto out_unlock;
    }
    snprintf(growth_id, sizeof(growth_id), "%s", g->id);
    gc_events_add(&coord->events, gc_real_s(), "lease_growth", l->id, "%s: %s asked for, %s held",
                  l->holder, gc_size_format(bytes, b, sizeof(b)),
                  gc_size_format(old_bytes, o, sizeof(o)));
    gc_coord_kick_with_locked(coord, reading);
    if (wait_s > 0)
        wait_lease_locked(coord, growth_id, gc_mono_ms() + (int64_t)(wait_s * 1000.0), waiter,
                          false);
    /* Still waiting: withdrawn, so that memory nobody waits for any more is not taken
     * (and residents not evicted) behind the caller's back. */
    g = gc_ledger_lease_find(coord->ledger, growth_id);
    if (g != NULL && (g->state == GC_LEASE_QUEUED || g->state == GC_LEASE_PREPARING)) {
        gc_growth_withdraw(coord->ledger, g, "the resize request's wait ran out", gc_mono_ms());
        pthread_cond_broadcast(&coord->changed);
        gc_coord_kick_locked(coord);
    }
    resize_answer_locked(coord, id, growth_id, bytes, ans);
out_unlock:
    pthread_mutex_unlock(&coord->lock);
    gc_coord_reading_put(coord, reading);
}
