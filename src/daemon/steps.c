/*
 * steps.c - the engine's unloads and reloads, one step per resident at a time
 * (steps.h).
 *
 * A step is a small state machine the engine drives: it starts a job to ask the
 * resident (jobs.c), takes the job's answer from the engine's queue, and verifies
 * the memory through NVML at each of the engine's readings (coord/verify.c).
 *
 * Unload: ask; verify until verify_timeout_s (plus free_lag_s where only the
 * device's total can tell); past it ask once to clean up and look again for half
 * as long; then escalate per on_stuck - fail: the lease fails and the resident is
 * reloaded where it stands; kill: SIGTERM, SIGKILL, and wait (bounded) for the
 * driver to release its memory. Reload: wait (bounded) until NVML shows room, ask,
 * retry with backoff, verify; then mark it loaded, or failed. Every change of the
 * resident is a transition of coord/transition.c, journaled, announced, counted.
 *
 * All of it runs with the engine's lock held, in whichever thread carries the
 * engine forward; nothing here waits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/size.h"
#include "coord/transition.h"
#include "daemon/steps.h"

/* How long a killed resident's memory may take to come back from the driver. */
#define KILL_RELEASE_WAIT_MS 30000

static int64_t seconds_ms(double s)
{
    return (int64_t)(s * 1000.0);
}

static unsigned slot_of(const struct gc_step_env *env, const struct gc_resident *r)
{
    return (unsigned)(r - env->ledger->residents);
}

/* The step ends: what a request waiting on it is told. */
static void step_end(struct gc_steps *st, struct gc_step *s, int rc, const char *why)
{
    s->phase = GC_STEP_IDLE;
    s->outcome_id = s->id;
    s->outcome_rc = rc;
    snprintf(s->outcome_why, sizeof(s->outcome_why), "%s", why ? why : "");
    st->ended++;
}

/* Starts a job of the step's resident. False when no thread could be started. */
static bool job_start(const struct gc_step_env *env, struct gc_step *s, struct gc_resident *r,
                      enum gc_job_kind kind)
{
    struct gc_job *job = calloc(1, sizeof(*job));

    if (job == NULL)
        return false;
    job->kind = kind;
    job->slot = slot_of(env, r);
    job->step = s->id;
    job->restartable = r->restartable;
    job->spec = s->spec;
    job->spec.pid = r->pid;
    job->spec.pid_start_ticks = r->pid_start_ticks;
    job->adapter = gc_adapter_find(r->protocol);
    if (job->adapter == NULL || !env->start(env->engine, job)) {
        gc_error("cannot start a %s job for resident '%s'", gc_job_kind_name(kind), r->name);
        free(job);
        return false;
    }
    return true;
}

/* No thread for the step's first job: the resident goes back where it was, the lease
 * waits for one eviction fewer (it is decided afresh). */
static void step_not_started(struct gc_steps *st, const struct gc_step_env *env,
                             struct gc_resident *r, struct gc_step *s)
{
    gc_resident_step_undo(r, s->unloading && s->from == 0 ? GC_RES_LOADED : GC_RES_UNLOADED);
    env->journal(env->engine, r);
    env->lease_evicted(env->engine, s->lease_id, 0, NULL);
    step_end(st, s, GC_EIO, "no thread to ask the resident");
}

uint64_t gc_step_unload_start(struct gc_steps *st, const struct gc_step_env *env,
                              struct gc_resident *r, const char *lease_id, int64_t now)
{
    struct gc_step *s = &st->slot[slot_of(env, r)];
    unsigned last = gc_resident_nlevels(r) - 1;

    if (s->phase == GC_STEP_PROBE)
        step_end(st, s, 0, NULL); /* its answer no longer matters */
    s->id = ++st->next_id;
    s->recovery = false;
    s->unloading = true;
    snprintf(s->lease_id, sizeof(s->lease_id), "%s", lease_id);
    s->spec = *env->spec(env->engine, slot_of(env, r));
    s->from = gc_resident_level(r);
    s->to = r->target_level > s->from && r->target_level <= last ? r->target_level : last;
    snprintf(s->spec.level, sizeof(s->spec.level), "%s", gc_resident_level_name(r, s->to));
    s->spec.level_last = s->to == last;
    s->v.gpu = r->gpu;
    s->v.pid = r->pid;
    s->v.usage_before = r->usage_before;
    /* Unknown bytes (0: to be learned) stay unknown. */
    s->v.expected =
        r->bytes == 0 ? 0 : gc_resident_level_bytes(r, s->from) - gc_resident_level_bytes(r, s->to);
    gc_verify_mark(env->ledger, r->gpu, r->name, &s->v);
    /* Device-level verification waits for the driver, which may be slow to give the
     * memory back; per-process usage drops at once. */
    s->lag_ms = gc_verify_by_device(env->ledger, r->gpu) ? seconds_ms(env->config->free_lag_s) : 0;
    s->cleaned = false;
    s->pid_exited = false;
    s->t0 = now;
    s->phase = GC_STEP_UNLOAD_ASK;
    if (!job_start(env, s, r, GC_JOB_UNLOAD))
        step_not_started(st, env, r, s);
    return s->id;
}

uint64_t gc_step_reload_start(struct gc_steps *st, const struct gc_step_env *env,
                              struct gc_resident *r, int64_t now)
{
    struct gc_step *s = &st->slot[slot_of(env, r)];
    uint64_t present = 0;

    if (s->phase == GC_STEP_PROBE)
        step_end(st, s, 0, NULL); /* its answer no longer matters */
    s->id = ++st->next_id;
    s->recovery = false;
    s->unloading = false;
    s->lease_id[0] = '\0';
    s->spec = *env->spec(env->engine, slot_of(env, r));
    s->from = gc_resident_level(r);
    s->to = 0;
    s->v.gpu = r->gpu;
    s->v.pid = r->pid;
    s->v.usage_before = r->usage_before;
    s->v.expected = gc_resident_missing_bytes(r);
    s->full = r->bytes;
    s->pid_exited = false;
    s->attempt = 0;
    /* What it still holds above its floor needs no room: an unload that freed nothing
     * (on_stuck=fail) or only part. */
    if (r->pid > 0) {
        uint64_t held = gc_ledger_proc_usage(env->ledger, r->gpu, r->pid);
        present = held > r->floor_bytes ? held - r->floor_bytes : 0;
        if (s->full > 0 && present >= (uint64_t)((double)s->full * GC_VERIFY_SHARE)) {
            s->v.usage_before = r->floor_bytes; /* verified against its floor: all there */
            s->v.expected = s->full;
        }
    }
    s->need = s->full > present ? s->full - present : 0;
    s->t0 = s->since_ms = now;
    s->deadline_ms = s->t0 + seconds_ms(s->spec.reload_timeout_s);
    s->phase = GC_STEP_RELOAD_ROOM;
    return s->id;
}

uint64_t gc_step_probe_start(struct gc_steps *st, const struct gc_step_env *env,
                             struct gc_resident *r, int64_t now)
{
    struct gc_step *s = &st->slot[slot_of(env, r)];
    const struct gc_adapter *adapter = gc_adapter_find(r->protocol);

    if (s->phase != GC_STEP_IDLE || r->busy || adapter == NULL || adapter->restartable)
        return 0;
    s->id = ++st->next_id;
    s->recovery = false;
    s->unloading = false;
    s->lease_id[0] = '\0';
    s->spec = *env->spec(env->engine, slot_of(env, r));
    s->t0 = now;
    s->phase = GC_STEP_PROBE;
    if (!job_start(env, s, r, GC_JOB_HEALTH)) {
        step_end(st, s, GC_EIO, "no thread to ask the resident");
        return 0;
    }
    return s->id;
}

/* A step a restart cut short: what the resident holds settles it. */
static void recovery_probe_answered(struct gc_steps *st, const struct gc_step_env *env,
                                    struct gc_resident *r, struct gc_step *s, int rc,
                                    const struct gc_adapter_result *res)
{
    gc_resident_probed(r, rc == 0 ? res->models_loaded : -1,
                       res->level[0] ? gc_resident_level_find(r, res->level) : -1);
    gc_events_add(env->events, gc_real_s(), "resident_probed", r->name,
                  "step cut short by a restart; it reports %s",
                  rc < 0                    ? "nothing (unreachable)"
                  : res->models_loaded == 1 ? "its models loaded"
                  : res->models_loaded == 0 ? "its models unloaded"
                                            : "no model state");
    env->journal(env->engine, r);
    step_end(st, s, 0, NULL);
}

uint64_t gc_step_recovery_probe_start(struct gc_steps *st, const struct gc_step_env *env,
                                      struct gc_resident *r, int64_t now)
{
    struct gc_step *s = &st->slot[slot_of(env, r)];
    struct gc_adapter_result none = {.models_loaded = -1};

    s->id = ++st->next_id;
    s->recovery = true;
    s->unloading = false;
    s->lease_id[0] = '\0';
    s->spec = *env->spec(env->engine, slot_of(env, r));
    s->t0 = now;
    s->phase = GC_STEP_PROBE;
    if (!job_start(env, s, r, GC_JOB_HEALTH))
        recovery_probe_answered(st, env, r, s, GC_EIO, &none);
    return s->id;
}

/* A resident marked loaded answered what it holds. */
static void probe_answered(struct gc_steps *st, const struct gc_step_env *env,
                           struct gc_resident *r, struct gc_step *s, const struct gc_job *job,
                           int64_t now)
{
    int level = job->res.level[0] ? gc_resident_level_find(r, job->res.level) : -1;

    if (s->recovery) {
        recovery_probe_answered(st, env, r, s, job->rc, &job->res);
        return;
    }

    /* Serving, but at a level below its first (moved there by hand): also to reload. */
    if (job->rc == 0 && r->state == GC_RES_LOADED && !r->busy &&
        (job->res.models_loaded == 0 || level > 0)) {
        gc_resident_reported(r, level, now);
        gc_events_add(env->events, gc_real_s(), "resident_probed", r->name,
                      "marked loaded, but it reports level '%s': reloading it on demand",
                      gc_resident_level_name(r, r->level));
        env->journal(env->engine, r);
    }
    step_end(st, s, 0, NULL);
}

/* ---- unload ---- */

static void unload_verified(struct gc_steps *st, const struct gc_step_env *env,
                            struct gc_resident *r, struct gc_step *s, uint64_t freed, int64_t now)
{
    double unload_s = (double)(s->t1 - s->t0) / 1000.0, verify_s = (double)(now - s->t1) / 1000.0;
    uint64_t usage = gc_ledger_proc_usage(env->ledger, r->gpu, r->pid);
    bool alive = r->pid <= 0 || !s->pid_exited;
    struct gc_event *ev;
    char b[GC_SIZE_BUF];

    gc_resident_unloaded(r, s->to, usage, freed, s->lease_id[0] != '\0', alive, unload_s + verify_s,
                         now);
    env->journal(env->engine, r);
    env->stats->counters.unloads++;
    gc_hist_add(&env->stats->unload_s, unload_s + verify_s);
    ev = gc_events_add(env->events, gc_real_s(), "resident_unloaded", r->name,
                       "to level '%s': %s freed (verified by NVML)%s%s", s->spec.level,
                       gc_size_format(freed, b, sizeof(b)),
                       s->cleaned ? " after a cleanup request" : "",
                       s->lease_id[0] ? "" : " by request");
    gc_event_phase(ev, "unload", unload_s);
    gc_event_phase(ev, "verify", verify_s);
    env->lease_evicted(env->engine, s->lease_id, 0, NULL);
    step_end(st, s, 0, NULL);
}

static void unload_failed(struct gc_steps *st, const struct gc_step_env *env, struct gc_resident *r,
                          struct gc_step *s, const struct gc_job *job)
{
    char why[GC_REASON_MAX];

    snprintf(why, sizeof(why), "resident '%s' could not unload: %.200s", r->name, job->res.detail);
    gc_resident_unload_failed(r, s->from, job->res.detail);
    env->journal(env->engine, r);
    env->stats->counters.unload_failures++;
    gc_events_add(env->events, gc_real_s(), "unload_failed", r->name, "%s", job->res.detail);
    env->lease_evicted(env->engine, s->lease_id, GC_ECOULDNOTFREE, why);
    step_end(st, s, job->rc == GC_ETIMEDOUT ? GC_ETIMEDOUT : GC_ECOULDNOTFREE, why);
}

/* Verification ran out, after a cleanup request: on_stuck decides. */
static void unload_escalate(struct gc_steps *st, const struct gc_step_env *env,
                            struct gc_resident *r, struct gc_step *s, int64_t now)
{
    char b1[GC_SIZE_BUF], b2[GC_SIZE_BUF];

    snprintf(s->why, sizeof(s->why),
             "resident '%s' said it unloaded, but after %.1f s NVML shows only %s freed of %s",
             r->name, (double)(now - s->t0) / 1000.0, gc_size_format(s->freed, b1, sizeof(b1)),
             gc_size_format(s->v.expected, b2, sizeof(b2)));
    env->stats->counters.verify_timeouts++;
    gc_events_add(env->events, gc_real_s(), "verify_timeout", r->name, "%s", s->why);

    if (r->on_stuck == GC_STUCK_KILL && r->pid > 0) {
        env->stats->counters.kills++;
        gc_events_add(env->events, gc_real_s(), "escalation_kill", r->name,
                      "killing pid %d (on_stuck=kill)", (int)r->pid);
        s->phase = GC_STEP_KILL;
        if (job_start(env, s, r, GC_JOB_KILL))
            return;
        s->deadline_ms = now; /* no thread: waits for nothing, judged at once */
        s->phase = GC_STEP_KILL_WAIT;
        return;
    }
    /* on_stuck=fail: the lease fails; the resident is reloaded where it stands. */
    env->lease_evicted(env->engine, s->lease_id, GC_ECOULDNOTFREE, s->why);
    gc_resident_unload_stuck(r, s->why, now);
    env->journal(env->engine, r);
    step_end(st, s, GC_ECOULDNOTFREE, s->why);
    gc_step_reload_start(st, env, r, now);
}

static void kill_done(struct gc_steps *st, const struct gc_step_env *env, struct gc_resident *r,
                      struct gc_step *s, bool released, int64_t now)
{
    char why[GC_REASON_MAX];

    gc_resident_killed(r, s->lease_id[0] != '\0', now);
    env->journal(env->engine, r);
    if (released) {
        env->lease_evicted(env->engine, s->lease_id, 0, NULL);
        step_end(st, s, 0, NULL);
        return;
    }
    snprintf(why, sizeof(why),
             "killed resident '%s', but the driver has not released its memory within %d s",
             r->name, KILL_RELEASE_WAIT_MS / 1000);
    env->lease_evicted(env->engine, s->lease_id, GC_ECOULDNOTFREE, why);
    step_end(st, s, GC_ECOULDNOTFREE, why);
}

/* ---- reload ---- */

static void reload_finish(struct gc_steps *st, const struct gc_step_env *env, struct gc_resident *r,
                          struct gc_step *s, bool ok, const char *why, bool verified, int64_t now)
{
    char from[GC_LEVEL_NAME_MAX + 1], to[GC_LEVEL_NAME_MAX + 1];
    double wait_s = (double)(s->t1 - s->t0) / 1000.0;
    double reload_s = ok ? (double)(s->t2 - s->t1) / 1000.0 : 0;
    double verify_s = ok ? (double)(now - s->t2) / 1000.0 : 0;
    bool alive = r->pid <= 0 || !s->pid_exited, swapped;
    enum gc_resident_state state;
    struct gc_event *ev;
    pid_t dead;

    snprintf(from, sizeof(from), "%s", gc_resident_level_name(r, gc_resident_level(r)));
    snprintf(to, sizeof(to), "%s", gc_resident_level_name(r, 0));
    state = gc_resident_reload_done(r, ok, alive, why, reload_s + verify_s, now, &swapped, &dead);
    if (dead > 0)
        env->unwatch(env->engine, dead);
    env->journal(env->engine, r);
    if (state == GC_RES_LOADED) {
        if (swapped)
            env->stats->counters.swaps++;
        env->stats->counters.reloads++;
        gc_hist_add(&env->stats->reload_s, reload_s + verify_s);
        ev = gc_events_add(env->events, gc_real_s(), "resident_reloaded", r->name,
                           "to level '%s' from '%s': %s", to, from,
                           verified ? "verified by NVML" : "NVML did not show its memory");
        gc_event_phase(ev, "wait_room", wait_s);
        gc_event_phase(ev, "reload", reload_s);
        gc_event_phase(ev, "verify", verify_s);
        step_end(st, s, 0, NULL);
    } else {
        gc_events_add(env->events, gc_real_s(),
                      state == GC_RES_GONE ? "resident_gone" : "resident_failed", r->name, "%s",
                      r->reason);
        step_end(st, s, GC_EUNAVAIL, r->reason);
    }
}

static void reload_ask(struct gc_steps *st, const struct gc_step_env *env, struct gc_resident *r,
                       struct gc_step *s, int64_t now)
{
    s->attempt++;
    s->phase = GC_STEP_RELOAD_ASK;
    if (!job_start(env, s, r, GC_JOB_RELOAD))
        reload_finish(st, env, r, s, false, "no thread to ask the resident", false, now);
}

static void reload_answered(struct gc_steps *st, const struct gc_step_env *env,
                            struct gc_resident *r, struct gc_step *s, const struct gc_job *job,
                            int64_t now)
{
    const struct gc_adapter *adapter = gc_adapter_find(r->protocol);
    unsigned attempts = env->config->reload_attempts ? env->config->reload_attempts : 1;
    char why[GC_REASON_MAX];

    if (job->rc < 0) {
        env->stats->counters.reload_failures++;
        gc_events_add(env->events, gc_real_s(), "reload_failed", r->name, "attempt %u of %u: %s",
                      s->attempt, job->final ? s->attempt : attempts, job->res.detail);
        if (s->attempt >= attempts || job->final) {
            snprintf(why, sizeof(why), "resident '%s' failed to reload %u times: %.200s", r->name,
                     s->attempt, job->res.detail);
            reload_finish(st, env, r, s, false, why, false, now);
            return;
        }
        s->phase = GC_STEP_RELOAD_BACKOFF;
        s->deadline_ms = now + (seconds_ms(env->config->reload_backoff_s) << (s->attempt - 1));
        return;
    }
    s->t2 = now;
    if (job->res.new_pid > 0 && job->res.new_pid != r->pid) {
        gc_resident_pid_changed(r, job->res.new_pid, job->new_start_ticks);
        env->watch(env->engine, job->res.new_pid, job->new_start_ticks);
        /* Journaled now: a crash during verification must not orphan the process. */
        env->journal(env->engine, r);
        s->v.pid = job->res.new_pid;
        s->v.usage_before = 0;
        s->pid_exited = false;
    }
    /* Verify: its memory shows in NVML (bounded; a lazy loader may take longer). A
     * server that loads only on its next request shows nothing until one comes. */
    if (r->pid > 0 && s->v.expected > 0 && adapter != NULL && !adapter->reloads_lazily) {
        s->phase = GC_STEP_RELOAD_VERIFY;
        s->since_ms = job->answered_ms;
        s->deadline_ms = now + seconds_ms(s->spec.verify_timeout_s);
        return;
    }
    reload_finish(st, env, r, s, true, NULL, adapter != NULL && !adapter->reloads_lazily, now);
}

/* ---- driving ---- */

/* One step's look at the ledger's last reading (and the clock). */
static void step_poll(struct gc_steps *st, const struct gc_step_env *env, struct gc_resident *r,
                      struct gc_step *s, int64_t now)
{
    struct gc_ledger *ledger = env->ledger;
    /* Memory is judged on readings taken after the phase began: an older one may
     * show room a holder has taken since, or a drop that was not this step's. */
    bool fresh = ledger->gpus[r->gpu].snapshot_ms >= s->since_ms;
    char b1[GC_SIZE_BUF], b2[GC_SIZE_BUF];

    switch (s->phase) {
    case GC_STEP_UNLOAD_VERIFY:
        if (fresh && gc_verify_unloaded(ledger, r->name, &s->v, &s->freed)) {
            unload_verified(st, env, r, s, s->freed, now);
        } else if (now >= s->deadline_ms && !s->cleaned) {
            s->phase = GC_STEP_CLEANUP;
            if (!job_start(env, s, r, GC_JOB_CLEANUP)) {
                s->cleaned = true;
                unload_escalate(st, env, r, s, now);
            }
        } else if (now >= s->deadline_ms) {
            unload_escalate(st, env, r, s, now);
        }
        break;
    case GC_STEP_KILL_WAIT:
        /* Its exit is seen by the kill job, its pidfd or the engine loop's polling. */
        if (fresh && s->pid_exited && gc_ledger_proc_usage(ledger, r->gpu, r->pid) == 0)
            kill_done(st, env, r, s, true, now);
        else if (now >= s->deadline_ms)
            kill_done(st, env, r, s, false, now);
        break;
    case GC_STEP_RELOAD_ROOM:
        /* NVML's free, not the ledger's: freed memory can take a while to come back. */
        if (fresh && ledger->gpus[r->gpu].free_bytes >= s->need) {
            s->t1 = now;
            gc_verify_mark(ledger, r->gpu, r->name, &s->v);
            reload_ask(st, env, r, s, now);
        } else if (now >= s->deadline_ms) {
            /* Not a failure of the resident: it stays unloaded and is retried later. */
            snprintf(s->why, sizeof(s->why),
                     "no room to reload '%s': NVML shows %s free, it needs %s", r->name,
                     gc_size_format(ledger->gpus[r->gpu].free_bytes, b1, sizeof(b1)),
                     gc_size_format(s->need, b2, sizeof(b2)));
            gc_resident_reload_deferred(r, s->why);
            env->journal(env->engine, r);
            gc_events_add(env->events, gc_real_s(), "reload_waiting", r->name, "%s", s->why);
            gc_warn("%s", s->why);
            step_end(st, s, GC_EUNAVAIL, s->why);
        }
        break;
    case GC_STEP_RELOAD_BACKOFF:
        if (now >= s->deadline_ms)
            reload_ask(st, env, r, s, now);
        break;
    case GC_STEP_RELOAD_VERIFY:
        if (fresh && gc_verify_reloaded(ledger, r->name, &s->v)) {
            reload_finish(st, env, r, s, true, NULL, true, now);
        } else if (now >= s->deadline_ms) {
            /* In device attribution foreign activity can hide a reload's rise in the
             * device's total: a resident whose health says loaded is taken as loaded. */
            s->phase = GC_STEP_RELOAD_HEALTH;
            if (!gc_verify_by_device(ledger, r->gpu) || !job_start(env, s, r, GC_JOB_HEALTH))
                reload_finish(st, env, r, s, true, NULL, false, now);
        }
        break;
    default:
        break; /* a job is asking: its answer moves the step on */
    }
}

void gc_steps_poll(struct gc_steps *st, const struct gc_step_env *env, int64_t now)
{
    struct gc_ledger *ledger = env->ledger;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && st->slot[i].phase != GC_STEP_IDLE)
            step_poll(st, env, r, &st->slot[i], now);
    }
}

void gc_steps_job_answered(struct gc_steps *st, const struct gc_step_env *env,
                           const struct gc_job *job, int64_t now)
{
    struct gc_resident *r = &env->ledger->residents[job->slot];
    struct gc_step *s = &st->slot[job->slot];

    if (!r->in_use || s->id != job->step || s->phase == GC_STEP_IDLE)
        return; /* its resident was deleted, or the step ended meanwhile */
    if (job->exited)
        s->pid_exited = true;
    switch (job->kind) {
    case GC_JOB_UNLOAD:
        s->t1 = now;
        if (job->rc < 0) {
            unload_failed(st, env, r, s, job);
            return;
        }
        s->phase = GC_STEP_UNLOAD_VERIFY;
        s->since_ms = job->answered_ms;
        s->deadline_ms = now + seconds_ms(s->spec.verify_timeout_s) + s->lag_ms;
        break;
    case GC_JOB_CLEANUP:
        env->stats->counters.cleanups++;
        gc_events_add(env->events, gc_real_s(), "cleanup_requested", r->name,
                      "memory not freed within %.1f s; cleanup %s%s%s", s->spec.verify_timeout_s,
                      job->rc == 0 ? "answered" : "failed", job->rc ? ": " : "",
                      job->rc ? job->res.detail : "");
        s->cleaned = true;
        s->phase = GC_STEP_UNLOAD_VERIFY;
        s->since_ms = job->answered_ms;
        s->deadline_ms = now + seconds_ms(s->spec.verify_timeout_s * 0.5);
        break;
    case GC_JOB_KILL:
        s->phase = GC_STEP_KILL_WAIT;
        s->since_ms = job->answered_ms;
        s->deadline_ms = now + KILL_RELEASE_WAIT_MS;
        break;
    case GC_JOB_RELOAD:
        reload_answered(st, env, r, s, job, now);
        return;
    case GC_JOB_HEALTH:
        if (s->phase == GC_STEP_PROBE)
            probe_answered(st, env, r, s, job, now);
        else
            reload_finish(st, env, r, s, true, NULL, job->rc == 0 && job->res.models_loaded == 1,
                          now);
        return;
    }
    step_poll(st, env, r, s, now);
}

void gc_steps_pid_exited(struct gc_steps *st, const struct gc_step_env *env, pid_t pid)
{
    struct gc_ledger *ledger = env->ledger;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        if (ledger->residents[i].in_use && ledger->residents[i].pid == pid &&
            st->slot[i].phase != GC_STEP_IDLE)
            st->slot[i].pid_exited = true;
    }
}

int64_t gc_steps_next_deadline(const struct gc_steps *st, const struct gc_step_env *env,
                               int64_t now, int64_t last_read_ms)
{
    int64_t next = INT64_MAX, poll = now + seconds_ms(env->config->verify_poll_s);

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_step *s = &st->slot[i];
        int64_t t = INT64_MAX;
        if (!env->ledger->residents[i].in_use)
            continue;
        switch (s->phase) {
        case GC_STEP_UNLOAD_VERIFY:
        case GC_STEP_KILL_WAIT:
        case GC_STEP_RELOAD_ROOM:
        case GC_STEP_RELOAD_VERIFY:
            t = s->deadline_ms < poll ? s->deadline_ms : poll; /* NVML, as often as that */
            /* No reading tried since the phase began: one now. */
            if (last_read_ms < s->since_ms)
                t = now;
            break;
        case GC_STEP_RELOAD_BACKOFF:
            t = s->deadline_ms;
            break;
        default:
            break;
        }
        if (t < next)
            next = t;
    }
    return next;
}

bool gc_steps_verifying(const struct gc_steps *st, const struct gc_step_env *env)
{
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        enum gc_step_phase p = st->slot[i].phase;
        if (env->ledger->residents[i].in_use &&
            (p == GC_STEP_UNLOAD_VERIFY || p == GC_STEP_KILL_WAIT || p == GC_STEP_RELOAD_ROOM ||
             p == GC_STEP_RELOAD_VERIFY))
            return true;
    }
    return false;
}
