/* transition.c - a resident's changes, from facts to state. */
#include "coord/transition.h"

#include <stdio.h>

static unsigned last_level(const struct gc_resident *r)
{
    return gc_resident_nlevels(r) - 1;
}

void gc_resident_exited(struct gc_resident *r, pid_t pid, int64_t now_ms)
{
    if (r->restartable) {
        if (r->state == GC_RES_LOADED) {
            r->evicted = false; /* not evicted: it died */
            r->unloaded_since_ms = now_ms;
        }
        r->state = GC_RES_UNLOADED;
        r->level = last_level(r); /* nothing is left */
    } else {
        r->state = GC_RES_GONE;
    }
    snprintf(r->reason, sizeof(r->reason), "process %d exited", (int)pid);
}

enum gc_resident_state gc_resident_died_while_down(struct gc_resident *r,
                                                   enum gc_resident_state was)
{
    enum gc_resident_state state = GC_RES_GONE;

    snprintf(r->reason, sizeof(r->reason), "process %d exited while the coordinator was down",
             (int)r->pid);
    if (r->restartable) {
        if (was == GC_RES_LOADED)
            r->evicted = false; /* it was not evicted: it died */
        state = GC_RES_UNLOADED;
        r->level = last_level(r);
        r->pid = 0; /* its start command brings it back */
        r->pid_start_ticks = 0;
    }
    return state;
}

enum gc_resident_state gc_resident_unload_begin(struct gc_resident *r, unsigned level,
                                                uint64_t usage_before)
{
    enum gc_resident_state prev = r->state;

    r->usage_before = usage_before;
    r->level = gc_resident_level(r);
    r->target_level = level;
    r->state = GC_RES_UNLOADING;
    r->busy = true;
    return prev;
}

void gc_resident_step_undo(struct gc_resident *r, enum gc_resident_state state)
{
    r->state = state;
    r->busy = false;
}

void gc_resident_unloaded(struct gc_resident *r, unsigned level, uint64_t usage, uint64_t freed,
                          bool evicted, bool alive, double took_s, int64_t now_ms)
{
    uint64_t kept = gc_resident_level_bytes(r, level);

    if (r->pid > 0 && !alive && !r->restartable) {
        r->state = GC_RES_GONE;
        snprintf(r->reason, sizeof(r->reason), "process %d exited during unload", (int)r->pid);
    } else {
        r->state = GC_RES_UNLOADED;
    }
    r->busy = false;
    r->evicted = evicted;
    r->unloaded_since_ms = now_ms;
    r->unloads++;
    r->last_unload_s = took_s;
    r->level = level;
    /* Its floor is what it uses less what the level it reached keeps. */
    r->floor_bytes = usage > kept ? usage - kept : 0;
    if (r->bytes == 0)
        r->bytes = freed; /* learned */
}

void gc_resident_unload_failed(struct gc_resident *r, unsigned from, const char *why)
{
    /* Left where it was: it never let go. */
    r->state = from == 0 ? GC_RES_LOADED : GC_RES_UNLOADED;
    r->level = from;
    r->busy = false;
    snprintf(r->reason, sizeof(r->reason), "%s", why);
}

void gc_resident_killed(struct gc_resident *r, bool evicted, int64_t now_ms)
{
    r->busy = false;
    r->evicted = evicted;
    r->unloaded_since_ms = now_ms;
    r->level = last_level(r); /* killed: nothing is left */
    if (r->restartable) {
        r->state = GC_RES_UNLOADED; /* its start command brings it back */
    } else {
        r->state = GC_RES_GONE;
        snprintf(r->reason, sizeof(r->reason),
                 "killed: did not free its memory; waits for re-registration");
    }
}

void gc_resident_unload_stuck(struct gc_resident *r, const char *why, int64_t now_ms)
{
    r->state = GC_RES_RELOADING;
    r->evicted = true; /* if this reload cannot finish, it is retried */
    r->unloaded_since_ms = now_ms;
    snprintf(r->reason, sizeof(r->reason), "%s", why);
}

void gc_resident_reload_deferred(struct gc_resident *r, const char *why)
{
    r->state = GC_RES_UNLOADED;
    r->busy = false;
    snprintf(r->reason, sizeof(r->reason), "%s", why);
}

void gc_resident_pid_changed(struct gc_resident *r, pid_t pid, uint64_t start_ticks)
{
    r->pid = pid;
    r->pid_start_ticks = start_ticks;
    r->usage_before = 0;
}

enum gc_resident_state gc_resident_reload_done(struct gc_resident *r, bool ok, bool alive,
                                               const char *why, double took_s, int64_t now_ms,
                                               bool *ret_swap, pid_t *ret_dead)
{
    *ret_swap = false;
    *ret_dead = 0;
    r->busy = false;
    if (ok && r->pid > 0 && !alive) {
        /* It answered, then died before it was marked loaded. */
        snprintf(r->reason, sizeof(r->reason), "process %d exited during its reload", (int)r->pid);
        ok = false;
        why = NULL;
    }
    if (ok) {
        *ret_swap = r->evicted;
        r->state = GC_RES_LOADED;
        r->level = 0;
        r->evicted = false;
        r->reloads++;
        r->reload_failures = 0;
        r->last_used_ms = now_ms;
        r->last_reload_s = took_s;
        r->reason[0] = '\0';
        return r->state;
    }
    if (why != NULL)
        snprintf(r->reason, sizeof(r->reason), "%s", why);
    if (r->pid > 0 && !alive && !r->restartable) {
        r->state = GC_RES_GONE; /* died: only a restart and re-registration help */
        return r->state;
    }
    /* A process resident that died starting is failed too (no restart loop); a reload
     * by hand starts it again. */
    r->state = GC_RES_FAILED;
    if (r->pid > 0 && !alive) {
        *ret_dead = r->pid;
        r->pid = 0;
    }
    return r->state;
}

void gc_resident_restart(struct gc_resident *r, int64_t now_ms)
{
    r->state = GC_RES_UNLOADED;
    r->reload_failures = 0;
    r->reason[0] = '\0';
    r->unloaded_since_ms = now_ms;
}

void gc_resident_probed(struct gc_resident *r, int loaded, int level)
{
    r->busy = false;
    if (loaded != 1)
        return;
    /* Loaded, or part-way down at a level it names (then still to be restored). */
    if (level > 0) {
        r->level = (unsigned)level;
    } else {
        r->state = GC_RES_LOADED;
        r->level = 0;
        r->evicted = false;
    }
}

void gc_resident_reported(struct gc_resident *r, int level, int64_t now_ms)
{
    r->state = GC_RES_UNLOADED;
    r->level = level > 0 ? (unsigned)level : last_level(r);
    r->evicted = false;
    r->unloaded_since_ms = now_ms;
    snprintf(r->reason, sizeof(r->reason), "reported level '%s' while marked loaded",
             gc_resident_level_name(r, r->level));
}

void gc_lease_eviction_done(struct gc_lease *l)
{
    if (l->evicting > 0)
        l->evicting--;
}
