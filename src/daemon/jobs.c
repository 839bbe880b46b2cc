/*
 * jobs.c - unloading and reloading one resident, verified through NVML.
 *
 * Unload: ask (adapter), then poll NVML until the resident's process usage has
 * dropped by what it should free; past the deadline ask it to clean up once,
 * then escalate per on_stuck (fail: the lease fails and the resident is
 * restored; kill: SIGTERM, SIGKILL, wait for the driver to release the memory).
 * Reload: wait (bounded) until NVML shows room, ask, verify; retry with
 * backoff, then mark the resident failed. A resident's word is never taken
 * for memory. Where NVML's list cannot be attributed (device attribution: a
 * container without the host's PID namespace) the GPU's total - free is verified
 * instead (device_mark and its helpers).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/size.h"
#include "daemon/coord.h"

/* How long a killed resident's memory may take to come back from the driver. */
#define KILL_RELEASE_WAIT_MS 30000
/* A reload counts as verified once this share of its bytes shows in NVML. */
#define VERIFY_SHARE 0.9

struct job {
    struct gc_coord *coord;
    char name[GC_NAME_MAX + 1];
    char lease_id[GC_LEASE_ID_MAX];
};

/* Snapshot of what a job needs, taken under the lock. */
struct job_view {
    struct gc_resident_spec spec;
    const struct gc_adapter *adapter;
    enum gc_on_stuck on_stuck;
    unsigned gpu;
    uint64_t usage_before;
    uint64_t floor;    /* its usage when last verified unloaded (0: unknown) */
    uint64_t expected; /* bytes it should free / take */
    uint64_t full;     /* bytes it holds at its first level */
    unsigned from, to; /* unload: its level and the one it goes to */
};

static int view_locked(struct gc_coord *coord, const char *name, enum gc_resident_state want,
                       struct job_view *ret)
{
    struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);

    if (r == NULL || r->state != want)
        return GC_ECONFLICT;
    memset(ret, 0, sizeof(*ret));
    ret->spec = coord->ext[gc_coord_resident_index(coord, r)].spec;
    ret->spec.pid = r->pid;
    ret->spec.pid_start_ticks = r->pid_start_ticks;
    ret->adapter = gc_adapter_find(r->protocol);
    ret->on_stuck = r->on_stuck;
    ret->gpu = r->gpu;
    ret->usage_before = r->usage_before;
    ret->floor = r->floor_bytes;
    ret->full = r->bytes;
    ret->from = gc_resident_level(r);
    if (want == GC_RES_UNLOADING) {
        uint64_t at;
        ret->to = r->target_level > ret->from && r->target_level < gc_resident_nlevels(r)
                      ? r->target_level
                      : gc_resident_nlevels(r) - 1;
        at = gc_resident_level_bytes(r, ret->to);
        /* Unknown bytes (0: to be learned) stay unknown. */
        ret->expected = r->bytes == 0 ? 0 : gc_resident_level_bytes(r, ret->from) - at;
        snprintf(ret->spec.level, sizeof(ret->spec.level), "%s",
                 gc_resident_level_name(r, ret->to));
        ret->spec.level_last = ret->to == gc_resident_nlevels(r) - 1;
    } else {
        ret->to = 0;
        ret->expected = gc_resident_missing_bytes(r);
    }
    return ret->adapter ? 0 : GC_EINVAL;
}

/*
 * The device-level view, for a resident without a pid or a GPU in device attribution
 * (a container without the host's PID namespace), where NVML's list cannot say whose
 * memory moved: the GPU's total - free, and what everything but the resident declares
 * on it (other residents' bytes, granted leases'). Taken before a step and compared
 * after it, the declarations' change is what the rest of the GPU did meanwhile.
 */
struct device_mark {
    uint64_t used;
    uint64_t others;
};

static void device_mark_locked(struct gc_coord *coord, unsigned gpu, const char *name,
                               struct device_mark *ret)
{
    struct gc_ledger *ledger = coord->ledger;
    const struct gc_resident *r = gc_ledger_resident_find(ledger, name);
    struct gc_account acct;
    uint64_t self = r != NULL ? gc_ledger_resident_counted(ledger, r) : 0;

    gc_ledger_account(ledger, gpu, NULL, &acct);
    ret->used = ledger->gpus[gpu].used_bytes;
    ret->others = acct.residents + acct.leases > self ? acct.residents + acct.leases - self : 0;
}

/*
 * Bytes the GPU gave back since before, less what others stopped declaring meanwhile
 * (a lease released, another resident verified unloaded: their memory left too).
 * Others that grew are not credited: a lease granted may not have allocated yet.
 * Device-level, so the rule's limit: a foreign process freeing memory at the same
 * moment looks like ours (and one allocating hides ours until it stops).
 */
static uint64_t device_freed_locked(struct gc_coord *coord, unsigned gpu, const char *name,
                                    const struct device_mark *before)
{
    struct device_mark now;
    uint64_t dropped, left;

    device_mark_locked(coord, gpu, name, &now);
    dropped = before->used > now.used ? before->used - now.used : 0;
    left = before->others > now.others ? before->others - now.others : 0;
    return dropped > left ? dropped - left : 0;
}

/* Bytes the GPU took since before, less what others started declaring meanwhile. */
static uint64_t device_taken_locked(struct gc_coord *coord, unsigned gpu, const char *name,
                                    const struct device_mark *before)
{
    struct device_mark now;
    uint64_t risen, joined;

    device_mark_locked(coord, gpu, name, &now);
    risen = now.used > before->used ? now.used - before->used : 0;
    joined = now.others > before->others ? now.others - before->others : 0;
    return risen > joined ? risen - joined : 0;
}

static bool device_attributed(const struct gc_coord *coord, unsigned gpu)
{
    return coord->ledger->gpus[gpu].attribution == GC_ATTR_DEVICE;
}

/* Has a reload taken its bytes, by the device's total? (lock held, snapshot fresh) */
static bool reload_taken_verified_locked(struct gc_coord *coord, const struct job_view *v,
                                         const struct device_mark *before)
{
    return device_taken_locked(coord, v->gpu, v->spec.name, before) >=
           (uint64_t)((double)v->expected * VERIFY_SHARE);
}

/*
 * After the verify timeout, in device attribution: foreign activity can hide a
 * reload's rise in the device's total, so a resident whose health says loaded is
 * taken as loaded (it counts its bytes in the ledger either way). Process
 * attribution never gets here: its usage is the truth.
 */
static bool device_verified_by_health(const struct job_view *v)
{
    struct gc_adapter_result h = {0};

    return v->adapter->health(&v->spec, &h) == 0 && h.models_loaded == 1;
}

/* Has the unload freed what it should? (lock held, snapshot fresh) */
static bool unload_verified_locked(struct gc_coord *coord, const struct job_view *v,
                                   const struct device_mark *before, uint64_t *ret_freed)
{
    struct gc_ledger *ledger = coord->ledger;
    uint64_t now_usage, freed, want;

    if (v->spec.pid > 0 && !device_attributed(coord, v->gpu)) {
        now_usage = gc_ledger_proc_usage(ledger, v->gpu, v->spec.pid);
        freed = v->usage_before > now_usage ? v->usage_before - now_usage : 0;
        want = v->expected ? (uint64_t)((double)v->expected * VERIFY_SHARE) : 1;
        if (want > v->usage_before)
            want = v->usage_before; /* cannot free more than it held */
    } else {
        /* Only the GPU's total use can tell. */
        freed = device_freed_locked(coord, v->gpu, v->spec.name, before);
        want = (uint64_t)((double)v->expected * VERIFY_SHARE);
        if (want == 0 && v->spec.pid > 0)
            want = 1; /* bytes unknown: something must go, "nothing seen" is not "freed" */
    }
    *ret_freed = freed;
    return freed >= want;
}

/* A connection cut mid-answer may be a process dying: how long to let it finish. */
#define DYING_WAIT_MS 500

/* True when pid has exited or exits within timeout_ms (zombies count as exited). */
static bool exited_within(pid_t pid, int64_t timeout_ms)
{
    int64_t deadline = gc_mono_ms() + timeout_ms;
    int fd = gc_pidfd_open(pid);
    bool gone;

    while (!(gone = !gc_proc_alive(pid)) && gc_mono_ms() < deadline) {
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, 20);
        } else {
            gc_sleep_ms(20);
        }
    }
    if (fd >= 0)
        close(fd);
    return gone;
}

/* One lease fewer waiting on this eviction; fails the lease when asked to. */
static void lease_eviction_done_locked(struct gc_coord *coord, const char *lease_id, int error,
                                       const char *reason)
{
    struct gc_lease *l;

    if (lease_id == NULL || lease_id[0] == '\0')
        return;
    l = gc_ledger_lease_find(coord->ledger, lease_id);
    if (l == NULL)
        return;
    if (l->evicting > 0)
        l->evicting--;
    if (error != 0)
        gc_coord_lease_end_locked(coord, l, GC_LEASE_FAILED, error, reason);
}

/* SIGTERM, grace, SIGKILL, then wait until NVML no longer shows the memory. */
static bool kill_and_wait(struct gc_coord *coord, const struct job_view *v)
{
    int64_t deadline;
    pid_t pid = v->spec.pid;

    /* Only the process registered (its start time): never a later one with its pid. */
    gc_proc_signal(pid, v->spec.pid_start_ticks, SIGTERM);
    deadline = gc_mono_ms() + (int64_t)(v->spec.kill_grace_s * 1000.0);
    while (gc_proc_alive(pid) && gc_mono_ms() < deadline)
        gc_sleep_ms(20);
    if (gc_proc_alive(pid))
        gc_proc_signal(pid, v->spec.pid_start_ticks, SIGKILL);
    deadline = gc_mono_ms() + KILL_RELEASE_WAIT_MS;
    for (;;) {
        bool gone;
        pthread_mutex_lock(&coord->lock);
        gc_coord_kick_locked(coord);
        gone = !gc_proc_alive(pid) && gc_ledger_proc_usage(coord->ledger, v->gpu, pid) == 0;
        pthread_mutex_unlock(&coord->lock);
        if (gone)
            return true;
        if (gc_mono_ms() >= deadline)
            return false;
        gc_sleep_ms((int64_t)(coord->config->verify_poll_s * 1000.0));
    }
}

static int unload_escalate(struct gc_coord *coord, const char *name, const char *lease_id,
                           const struct job_view *v, uint64_t freed, double elapsed, char *why,
                           size_t why_len)
{
    struct gc_resident *r;
    char b1[GC_SIZE_BUF], b2[GC_SIZE_BUF];

    snprintf(why, why_len,
             "resident '%s' said it unloaded, but after %.1f s NVML shows only %s freed of %s",
             name, elapsed, gc_size_format(freed, b1, sizeof(b1)),
             gc_size_format(v->expected, b2, sizeof(b2)));
    pthread_mutex_lock(&coord->lock);
    coord->counters.verify_timeouts++;
    gc_events_add(&coord->events, gc_real_s(), "verify_timeout", name, "%s", why);
    pthread_mutex_unlock(&coord->lock);

    if (v->on_stuck == GC_STUCK_KILL && v->spec.pid > 0) {
        bool released;
        pthread_mutex_lock(&coord->lock);
        coord->counters.kills++;
        gc_events_add(&coord->events, gc_real_s(), "escalation_kill", name,
                      "killing pid %d (on_stuck=kill)", (int)v->spec.pid);
        pthread_mutex_unlock(&coord->lock);
        released = kill_and_wait(coord, v);
        pthread_mutex_lock(&coord->lock);
        r = gc_ledger_resident_find(coord->ledger, name);
        if (r != NULL) {
            r->busy = false;
            r->evicted = lease_id[0] != '\0';
            r->unloaded_since_ms = gc_mono_ms();
            r->level = gc_resident_nlevels(r) - 1; /* killed: nothing is left */
            if (strcmp(r->protocol, "process") == 0) {
                r->state = GC_RES_UNLOADED; /* its start command brings it back */
            } else {
                r->state = GC_RES_GONE;
                snprintf(r->reason, sizeof(r->reason),
                         "killed: did not free its memory; waits for re-registration");
            }
            gc_coord_journal_resident_locked(coord, r);
        }
        if (!released)
            snprintf(why, why_len,
                     "killed resident '%s', but the driver has not released its "
                     "memory within %d s",
                     name, KILL_RELEASE_WAIT_MS / 1000);
        lease_eviction_done_locked(coord, lease_id, released ? 0 : GC_ECOULDNOTFREE, why);
        coord->jobs_running--;
        gc_coord_kick_locked(coord);
        pthread_mutex_unlock(&coord->lock);
        return released ? 0 : GC_ECOULDNOTFREE;
    }

    /* on_stuck=fail: the lease fails; the resident is restored. */
    pthread_mutex_lock(&coord->lock);
    lease_eviction_done_locked(coord, lease_id, GC_ECOULDNOTFREE, why);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r != NULL) {
        r->state = GC_RES_RELOADING;
        r->evicted = true; /* if this reload cannot finish, it is retried */
        r->unloaded_since_ms = gc_mono_ms();
        snprintf(r->reason, sizeof(r->reason), "%s", why);
        gc_coord_journal_resident_locked(coord, r);
    }
    pthread_mutex_unlock(&coord->lock);
    if (r != NULL) {
        char rwhy[GC_REASON_MAX];
        pthread_mutex_lock(&coord->lock);
        coord->jobs_running++; /* the reload below accounts for itself */
        pthread_mutex_unlock(&coord->lock);
        gc_job_reload_run(coord, name, rwhy, sizeof(rwhy));
    }
    pthread_mutex_lock(&coord->lock);
    coord->jobs_running--;
    pthread_mutex_unlock(&coord->lock);
    return GC_ECOULDNOTFREE;
}

int gc_job_unload_run(struct gc_coord *coord, const char *name, const char *lease_id, char *why,
                      size_t why_len)
{
    struct job_view v;
    struct gc_adapter_result res = {0};
    struct gc_resident *r;
    struct device_mark before = {0};
    uint64_t freed = 0;
    int64_t t0 = gc_mono_ms(), t_unloaded, deadline, lag_ms = 0;
    bool cleaned = false;
    int rc;

    pthread_mutex_lock(&coord->lock);
    rc = view_locked(coord, name, GC_RES_UNLOADING, &v);
    if (rc == 0) {
        /* A fresh reading: a drop the last one missed is not the unload's. */
        gc_coord_kick_locked(coord);
        device_mark_locked(coord, v.gpu, name, &before);
        /* Device-level verification waits for the driver, which may be slow to give
         * the memory back; per-process usage drops at once. */
        if (device_attributed(coord, v.gpu))
            lag_ms = (int64_t)(coord->config->free_lag_s * 1000.0);
    }
    if (rc < 0) {
        snprintf(why, why_len, "resident '%s' is not being unloaded", name);
        coord->jobs_running--;
        pthread_cond_broadcast(&coord->changed);
        pthread_mutex_unlock(&coord->lock);
        return rc;
    }
    pthread_mutex_unlock(&coord->lock);

    rc = v.adapter->unload(&v.spec, &res);
    t_unloaded = gc_mono_ms();
    if (rc < 0) {
        /* Did it unload anyway (an answer lost, a timeout just missed)? Ask. A resident
         * that died frees everything: verification will see it. */
        struct gc_adapter_result h = {0};
        if (v.spec.pid > 0 && exited_within(v.spec.pid, DYING_WAIT_MS)) {
            rc = 0;
        } else if (v.adapter->health(&v.spec, &h) == 0 && h.models_loaded == 0) {
            rc = 0;
        } else {
            snprintf(why, why_len, "resident '%s' could not unload: %s", name, res.detail);
            pthread_mutex_lock(&coord->lock);
            r = gc_ledger_resident_find(coord->ledger, name);
            if (r != NULL) {
                /* Left where it was: it never let go. */
                r->state = v.from == 0 ? GC_RES_LOADED : GC_RES_UNLOADED;
                r->level = v.from;
                r->busy = false;
                snprintf(r->reason, sizeof(r->reason), "%s", res.detail);
                gc_coord_journal_resident_locked(coord, r);
            }
            coord->counters.unload_failures++;
            gc_events_add(&coord->events, gc_real_s(), "unload_failed", name, "%s", res.detail);
            lease_eviction_done_locked(coord, lease_id, GC_ECOULDNOTFREE, why);
            coord->jobs_running--;
            gc_coord_kick_locked(coord);
            pthread_mutex_unlock(&coord->lock);
            return rc == GC_ETIMEDOUT ? GC_ETIMEDOUT : GC_ECOULDNOTFREE;
        }
    }

    deadline = gc_mono_ms() + (int64_t)(v.spec.verify_timeout_s * 1000.0) + lag_ms;
    for (;;) {
        bool ok;
        pthread_mutex_lock(&coord->lock);
        gc_coord_kick_locked(coord);
        ok = unload_verified_locked(coord, &v, &before, &freed);
        if (ok) {
            double unload_s = (double)(t_unloaded - t0) / 1000.0;
            double verify_s = (double)(gc_mono_ms() - t_unloaded) / 1000.0;
            struct gc_event *ev;
            char b[GC_SIZE_BUF];
            r = gc_ledger_resident_find(coord->ledger, name);
            if (r != NULL) {
                if (r->pid > 0 && !gc_proc_alive(r->pid) && strcmp(r->protocol, "process")) {
                    r->state = GC_RES_GONE;
                    snprintf(r->reason, sizeof(r->reason), "process %d exited during unload",
                             (int)r->pid);
                } else {
                    r->state = GC_RES_UNLOADED;
                }
                uint64_t usage = gc_ledger_proc_usage(coord->ledger, r->gpu, r->pid);
                uint64_t kept = gc_resident_level_bytes(r, v.to);
                r->busy = false;
                r->evicted = lease_id[0] != '\0';
                r->unloaded_since_ms = gc_mono_ms();
                r->unloads++;
                r->last_unload_s = unload_s + verify_s;
                r->level = v.to;
                /* Its floor is what it uses less what the level it reached keeps. */
                r->floor_bytes = usage > kept ? usage - kept : 0;
                if (r->bytes == 0)
                    r->bytes = freed; /* learned */
                gc_coord_journal_resident_locked(coord, r);
            }
            coord->counters.unloads++;
            gc_hist_add(&coord->unload_s, unload_s + verify_s);
            ev = gc_events_add(&coord->events, gc_real_s(), "resident_unloaded", name,
                               "to level '%s': %s freed (verified by NVML)%s%s", v.spec.level,
                               gc_size_format(freed, b, sizeof(b)),
                               cleaned ? " after a cleanup request" : "",
                               lease_id[0] ? "" : " by request");
            gc_event_phase(ev, "unload", unload_s);
            gc_event_phase(ev, "verify", verify_s);
            lease_eviction_done_locked(coord, lease_id, 0, NULL);
            coord->jobs_running--;
            gc_coord_kick_locked(coord);
            pthread_mutex_unlock(&coord->lock);
            return 0;
        }
        pthread_mutex_unlock(&coord->lock);
        if (gc_mono_ms() >= deadline) {
            if (cleaned)
                break;
            /* Once: ask it to clean up (caches, stray tensors), then look again. */
            struct gc_adapter_result cres = {0};
            int crc = v.adapter->cleanup(&v.spec, &cres);
            pthread_mutex_lock(&coord->lock);
            coord->counters.cleanups++;
            gc_events_add(&coord->events, gc_real_s(), "cleanup_requested", name,
                          "memory not freed within %.1f s; cleanup %s%s%s", v.spec.verify_timeout_s,
                          crc == 0 ? "answered" : "failed", crc ? ": " : "",
                          crc ? cres.detail : "");
            pthread_mutex_unlock(&coord->lock);
            cleaned = true;
            deadline = gc_mono_ms() + (int64_t)(v.spec.verify_timeout_s * 500.0);
            continue;
        }
        gc_sleep_ms((int64_t)(coord->config->verify_poll_s * 1000.0));
    }
    return unload_escalate(coord, name, lease_id, &v, freed, (double)(gc_mono_ms() - t0) / 1000.0,
                           why, why_len);
}

/* Waits until NVML shows room for need more bytes (bounded); false when it never came. */
static bool wait_room(struct gc_coord *coord, const struct job_view *v, uint64_t need,
                      int64_t deadline, char *why, size_t why_len)
{
    char b1[GC_SIZE_BUF], b2[GC_SIZE_BUF];

    for (;;) {
        uint64_t free_bytes;
        pthread_mutex_lock(&coord->lock);
        gc_coord_kick_locked(coord);
        free_bytes = coord->ledger->gpus[v->gpu].free_bytes;
        pthread_mutex_unlock(&coord->lock);
        /* NVML's free, not the ledger's: freed memory can take a while to come back. */
        if (free_bytes >= need)
            return true;
        if (gc_mono_ms() >= deadline) {
            snprintf(why, why_len, "no room to reload '%s': NVML shows %s free, it needs %s",
                     v->spec.name, gc_size_format(free_bytes, b1, sizeof(b1)),
                     gc_size_format(need, b2, sizeof(b2)));
            return false;
        }
        gc_sleep_ms((int64_t)(coord->config->verify_poll_s * 1000.0));
    }
}

static void reload_finish_locked(struct gc_coord *coord, const char *name, int rc, const char *why,
                                 double wait_s, double reload_s, double verify_s, bool verified)
{
    struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
    char died[GC_REASON_MAX], from[GC_LEVEL_NAME_MAX + 1] = "", to[GC_LEVEL_NAME_MAX + 1] = "";
    struct gc_event *ev;

    if (r != NULL) {
        snprintf(from, sizeof(from), "%s", gc_resident_level_name(r, gc_resident_level(r)));
        snprintf(to, sizeof(to), "%s", gc_resident_level_name(r, 0));
    }

    if (rc == 0 && r != NULL && r->pid > 0 && !gc_proc_alive(r->pid)) {
        /* It answered, then died before it was marked loaded: its exit was not seen
         * by the watcher (the job owned it), so it is judged here. */
        snprintf(died, sizeof(died), "process %d exited during its reload", (int)r->pid);
        why = died;
        rc = GC_EUNAVAIL;
    }
    if (r != NULL) {
        r->busy = false;
        if (rc == 0) {
            if (r->evicted)
                coord->counters.swaps++;
            r->state = GC_RES_LOADED;
            r->level = 0;
            r->evicted = false;
            r->reloads++;
            r->reload_failures = 0;
            r->last_used_ms = gc_mono_ms();
            r->last_reload_s = reload_s + verify_s;
            r->reason[0] = '\0';
        } else if (r->pid > 0 && !gc_proc_alive(r->pid) && strcmp(r->protocol, "process")) {
            r->state = GC_RES_GONE; /* died: only a restart and re-registration help */
            snprintf(r->reason, sizeof(r->reason), "%s", why);
        } else {
            /* A process resident that died starting is failed too (no restart loop);
             * a reload by hand starts it again. */
            r->state = GC_RES_FAILED;
            snprintf(r->reason, sizeof(r->reason), "%s", why);
            if (r->pid > 0 && !gc_proc_alive(r->pid)) {
                pid_t dead = r->pid;
                r->pid = 0;
                gc_coord_watch_release_locked(coord, dead);
            }
        }
        gc_coord_journal_resident_locked(coord, r);
    }
    if (rc == 0) {
        coord->counters.reloads++;
        gc_hist_add(&coord->reload_s, reload_s + verify_s);
        ev = gc_events_add(&coord->events, gc_real_s(), "resident_reloaded", name,
                           "to level '%s' from '%s': %s", to, from,
                           verified ? "verified by NVML" : "NVML did not show its memory");
        gc_event_phase(ev, "wait_room", wait_s);
        gc_event_phase(ev, "reload", reload_s);
        gc_event_phase(ev, "verify", verify_s);
    } else {
        gc_events_add(&coord->events, gc_real_s(),
                      r && r->state == GC_RES_GONE ? "resident_gone" : "resident_failed", name,
                      "%s", why);
    }
    coord->jobs_running--;
    gc_coord_kick_locked(coord);
}

int gc_job_reload_run(struct gc_coord *coord, const char *name, char *why, size_t why_len)
{
    struct job_view v;
    struct gc_adapter_result res;
    struct device_mark before = {0};
    uint64_t present = 0;
    int64_t t0 = gc_mono_ms(), t1, t2;
    unsigned attempts;
    bool verified = false;
    int rc;

    pthread_mutex_lock(&coord->lock);
    rc = view_locked(coord, name, GC_RES_RELOADING, &v);
    attempts = coord->config->reload_attempts ? coord->config->reload_attempts : 1;
    if (rc < 0) {
        snprintf(why, why_len, "resident '%s' is not being reloaded", name);
        coord->jobs_running--;
        pthread_cond_broadcast(&coord->changed);
        pthread_mutex_unlock(&coord->lock);
        return rc;
    }
    /* What it still holds above its floor needs no room: an unload that freed nothing
     * (on_stuck=fail) or only part. */
    if (v.spec.pid > 0) {
        uint64_t held = gc_ledger_proc_usage(coord->ledger, v.gpu, v.spec.pid);
        present = held > v.floor ? held - v.floor : 0;
        if (v.full > 0 && present >= (uint64_t)((double)v.full * VERIFY_SHARE)) {
            v.usage_before = v.floor; /* verified against its floor: it is all there */
            v.expected = v.full;
        }
    }
    pthread_mutex_unlock(&coord->lock);

    if (!wait_room(coord, &v, v.full > present ? v.full - present : 0,
                   t0 + (int64_t)(v.spec.reload_timeout_s * 1000.0), why, why_len)) {
        /* Not a failure of the resident: it stays unloaded and is retried later. */
        pthread_mutex_lock(&coord->lock);
        struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
        if (r != NULL) {
            r->state = GC_RES_UNLOADED;
            r->busy = false;
            snprintf(r->reason, sizeof(r->reason), "%s", why);
            gc_coord_journal_resident_locked(coord, r);
        }
        gc_events_add(&coord->events, gc_real_s(), "reload_waiting", name, "%s", why);
        coord->jobs_running--;
        gc_coord_kick_locked(coord);
        pthread_mutex_unlock(&coord->lock);
        return GC_EUNAVAIL;
    }
    t1 = gc_mono_ms();
    pthread_mutex_lock(&coord->lock);
    gc_coord_kick_locked(coord);
    device_mark_locked(coord, v.gpu, name, &before);
    pthread_mutex_unlock(&coord->lock);

    for (unsigned attempt = 1;; attempt++) {
        memset(&res, 0, sizeof(res));
        if (v.spec.pid > 0 && !gc_proc_alive(v.spec.pid) && strcmp(v.spec.protocol, "process")) {
            snprintf(res.detail, sizeof(res.detail), "process %d is gone", (int)v.spec.pid);
            rc = GC_EUNAVAIL;
            attempt = attempts; /* no point retrying */
        } else {
            rc = v.adapter->reload(&v.spec, &res);
        }
        if (rc == 0)
            break;
        pthread_mutex_lock(&coord->lock);
        coord->counters.reload_failures++;
        gc_events_add(&coord->events, gc_real_s(), "reload_failed", name, "attempt %u of %u: %s",
                      attempt, attempts, res.detail);
        pthread_mutex_unlock(&coord->lock);
        if (attempt >= attempts) {
            snprintf(why, why_len, "resident '%s' failed to reload %u times: %s", name, attempts,
                     res.detail);
            pthread_mutex_lock(&coord->lock);
            reload_finish_locked(coord, name, rc, why, (double)(t1 - t0) / 1000.0, 0, 0, false);
            pthread_mutex_unlock(&coord->lock);
            return rc;
        }
        gc_sleep_ms((int64_t)(coord->config->reload_backoff_s * 1000.0) << (attempt - 1));
    }
    t2 = gc_mono_ms();

    if (res.new_pid > 0 && res.new_pid != v.spec.pid) {
        pthread_mutex_lock(&coord->lock);
        struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
        if (r != NULL) {
            r->pid = res.new_pid;
            r->pid_start_ticks = gc_proc_start_ticks(res.new_pid);
            r->usage_before = 0;
            gc_coord_watch_locked(coord, res.new_pid);
            /* Journaled now: a crash during verification must not orphan the process. */
            gc_coord_journal_resident_locked(coord, r);
        }
        pthread_mutex_unlock(&coord->lock);
        v.spec.pid = res.new_pid;
        v.usage_before = 0;
    }

    /* Verify: its memory shows in NVML (bounded; a lazy loader may take longer). A
     * server that loads only on its next request shows nothing until one comes. */
    if (v.spec.pid > 0 && v.expected > 0 && !v.adapter->reloads_lazily) {
        int64_t deadline = gc_mono_ms() + (int64_t)(v.spec.verify_timeout_s * 1000.0);
        uint64_t want = v.usage_before + (uint64_t)((double)v.expected * VERIFY_SHARE);
        bool device = false;
        for (;;) {
            pthread_mutex_lock(&coord->lock);
            gc_coord_kick_locked(coord);
            device = device_attributed(coord, v.gpu);
            if (device)
                verified = reload_taken_verified_locked(coord, &v, &before);
            else
                verified = gc_ledger_proc_usage(coord->ledger, v.gpu, v.spec.pid) >= want;
            pthread_mutex_unlock(&coord->lock);
            if (verified || gc_mono_ms() >= deadline)
                break;
            gc_sleep_ms((int64_t)(coord->config->verify_poll_s * 1000.0));
        }
        if (!verified && device && device_verified_by_health(&v))
            verified = true;
    } else {
        verified = !v.adapter->reloads_lazily; /* lazy: the event says NVML did not show it */
    }
    pthread_mutex_lock(&coord->lock);
    reload_finish_locked(coord, name, 0, NULL, (double)(t1 - t0) / 1000.0,
                         (double)(t2 - t1) / 1000.0, (double)(gc_mono_ms() - t2) / 1000.0,
                         verified);
    pthread_mutex_unlock(&coord->lock);
    return 0;
}

static void *unload_thread(void *arg)
{
    struct job *job = arg;
    char why[GC_REASON_MAX];

    gc_job_unload_run(job->coord, job->name, job->lease_id, why, sizeof(why));
    free(job);
    return NULL;
}

static void *reload_thread(void *arg)
{
    struct job *job = arg;
    char why[GC_REASON_MAX];

    if (gc_job_reload_run(job->coord, job->name, why, sizeof(why)) < 0)
        gc_warn("%s", why);
    free(job);
    return NULL;
}

static void spawn(struct gc_coord *coord, const char *name, const char *lease_id,
                  void *(*fn)(void *))
{
    struct job *job = calloc(1, sizeof(*job));
    pthread_attr_t attr;
    pthread_t tid;

    if (job == NULL)
        goto out_fail;
    job->coord = coord;
    snprintf(job->name, sizeof(job->name), "%s", name);
    snprintf(job->lease_id, sizeof(job->lease_id), "%s", lease_id ? lease_id : "");
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, fn, job) != 0) {
        pthread_attr_destroy(&attr);
        free(job);
        goto out_fail;
    }
    pthread_attr_destroy(&attr);
    return;

out_fail:
    /* Cannot even start a thread: undo the mark so the resident is not stuck busy. */
    gc_error("cannot start a job for resident '%s'", name);
    {
        struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
        if (r != NULL) {
            r->busy = false;
            if (fn == unload_thread && r->level == 0)
                r->state = GC_RES_LOADED;
            else
                r->state = GC_RES_UNLOADED; /* where it was */
            gc_coord_journal_resident_locked(coord, r);
        }
        /* The lease waits for one eviction fewer (it is decided afresh). */
        lease_eviction_done_locked(coord, lease_id, 0, NULL);
        coord->jobs_running--;
    }
}

/* Called with coord->lock held: the thread starts working once the lock is released. */
void gc_job_unload_spawn(struct gc_coord *coord, const char *name, const char *lease_id)
{
    spawn(coord, name, lease_id, unload_thread);
}

void gc_job_reload_spawn(struct gc_coord *coord, const char *name)
{
    spawn(coord, name, NULL, reload_thread);
}
