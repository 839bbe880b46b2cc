/*
 * engine.c - the coordinator's engine: the one owner of its state.
 *
 * It holds the lock, the ledger (coord/ledger.h), the residents' specs, the
 * counters and histograms, the events, the process watches, the requests in flight,
 * the steps (steps.h) and the queue of the jobs' answers, and it is the only caller
 * of the scheduler. API threads call its operations (engine.h); jobs (jobs.h) only
 * talk to residents and hand their answers back through the queue; the engine loop
 * (gc_coord_run) reads NVML without the lock, takes the answers, watches pidfds and
 * timers, and settles. See docs/architecture.md.
 */
#include "daemon/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/names.h"
#include "common/proc.h"
#include "common/size.h"
#include "common/utf8.h"
#include "coord/growth.h"
#include "coord/ledger.h"
#include "coord/record.h"
#include "coord/sched.h"
#include "coord/transition.h"
#include "daemon/adapter.h"
#include "daemon/events.h"
#include "daemon/jobs.h"
#include "daemon/notify.h"
#include "daemon/readings.h"
#include "daemon/registration.h"
#include "daemon/requests.h"
#include "daemon/stats.h"
#include "daemon/steps.h"
#include "daemon/uses.h"
#include "daemon/views.h"
#include "daemon/watches.h"

/* A waiting request re-checks its client at least this often. */
#define WAIT_SLICE_MS 1000
/* An unload by request waits for its step this much past the sum of its timeouts
 * (a kill's wait for the driver is 30 s). */
#define STEP_SLACK_S 35.0

/* Daemon-side data of one resident slot (same index as ledger->residents). */
struct gc_resident_ext {
    struct gc_resident_spec spec;
    json_t *registration;     /* the validated registration, for the journal */
    char owner[GC_OWNER_MAX]; /* the caller that registered it (gc_caller key) */
};

struct gc_coord {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* any change; waits use it with deadlines (CLOCK_MONOTONIC) */
    const struct gc_config *config;
    struct gc_ledger *ledger;
    struct gc_resident_ext *ext; /* GC_RESIDENTS_MAX, by slot */
    struct gc_nvml *nvml;
    struct gc_store *store;
    struct gc_events events;
    struct gc_stats stats;
    struct gc_watches watches;
    struct gc_uses uses;
    struct gc_steps *steps;
    struct gc_step_env step_env;
    int epoll_fd;
    int wake_fd;
    unsigned jobs_running; /* job and compaction threads that still refer to the engine */
    struct gc_job *answers, **answers_tail; /* jobs' answers, for the engine loop */
    pthread_t engine_thread;
    int64_t engine_deadline_ms; /* when the sleeping engine loop wakes (0: awake) */
    int64_t engine_read_ms;     /* when the engine loop last read NVML */
    bool waits_hint;            /* something waited at the last settle (read unlocked) */
    bool stopping;              /* shutting down: waits end, loops exit */
    bool recovering;            /* replaying the journal: registrations skip the live-pid check */
    bool starting;              /* in gc_coord_recover: its final compaction records every change */
    /* A record could not be written: the journal lacks a change the ledger has, until
     * a compaction rewrites the whole state (retried from compact_retry_ms on). */
    bool journal_behind;
    int64_t compact_retry_ms;
    /* Lease ids below this are covered by the journal's high-water mark (an "ids"
     * record), so that a restart never issues one again, even if records were lost. */
    uint64_t ids_reserved;
    int64_t started_ms;
    char driver_version[96];
    struct gc_actions actions;       /* scratch for settling (under the lock) */
    struct gc_nvml_reading *reading; /* scratch for start-up */
    struct gc_readings readings;     /* buffers for readings, kept for reuse */
};

static json_t *view_lease_locked(struct gc_coord *coord, const struct gc_lease *l);
static json_t *view_resident_locked(struct gc_coord *coord, const struct gc_resident *r);
static void use_expired(void *ctx, const struct gc_use *use, bool deleted);
/* ---- the engine's own functions, in the order they come ---- */

static unsigned resident_index(const struct gc_coord *coord, const struct gc_resident *r);
static json_t *resident_record(struct gc_coord *coord, const struct gc_resident *r);
static int journal_locked(struct gc_coord *coord, json_t *rec, bool important);
static json_t *state_records_locked(struct gc_coord *coord);
static void compact_done_locked(struct gc_coord *coord, int rc, uint64_t errors_at_begin);
static void compact_locked(struct gc_coord *coord);
static void *compact_thread(void *arg);
static void compact_maybe_locked(struct gc_coord *coord, int64_t now);
static int journal_lease_locked(struct gc_coord *coord, const struct gc_lease *l);
static int journal_resident_locked(struct gc_coord *coord, const struct gc_resident *r);
static int ids_reserve_locked(struct gc_coord *coord);
static const struct gc_watch *watch_locked(struct gc_coord *coord, pid_t pid, uint64_t start_ticks);
static bool something_waits_locked(struct gc_coord *coord);
static bool pid_in_use_locked(struct gc_coord *coord, pid_t pid);
static void watch_release_locked(struct gc_coord *coord, pid_t pid);
static void pid_exited_locked(struct gc_coord *coord, pid_t pid);
static void lease_end_locked(struct gc_coord *coord, struct gc_lease *lease,
                             enum gc_lease_state state, int error, const char *reason);
static void refuse_unjournaled_locked(struct gc_coord *coord, struct gc_lease *l, const char *step);
static void apply_actions_locked(struct gc_coord *coord, const struct gc_actions *acts);
static void read_nvml(struct gc_coord *coord, struct gc_nvml_reading *r);
static struct gc_nvml_reading *reading_get(struct gc_coord *coord);
static void reading_put(struct gc_coord *coord, struct gc_nvml_reading *r);
static void apply_reading_locked(struct gc_coord *coord, const struct gc_nvml_reading *r);
static int64_t next_deadline_locked(struct gc_coord *coord, int64_t now);
static void settle_locked(struct gc_coord *coord);
static void kick_locked(struct gc_coord *coord);
static void lock_fresh(struct gc_coord *coord);
static bool waits_hint(struct gc_coord *coord);
static void job_done(void *engine, struct gc_job *job);
static void answers_take_locked(struct gc_coord *coord);
static bool wait_locked(struct gc_coord *coord, int64_t deadline_ms);
static bool wait_client_locked(struct gc_coord *coord, int64_t deadline_ms,
                               const struct gc_waiter *waiter);
static bool holder_alive(pid_t pid, uint64_t start_ticks);
static void recover_resident_locked(struct gc_coord *coord, const json_t *rec, unsigned *ret_n);
static void recover_lease_locked(struct gc_coord *coord, const json_t *rec, unsigned *adopted,
                                 unsigned *expired);
static void probe_interrupted_locked(struct gc_coord *coord);
static void lease_answer_locked(struct gc_coord *coord, const char *id, struct gc_api_answer *ans);
static void wait_lease_locked(struct gc_coord *coord, const char *id, int64_t deadline_ms,
                              const struct gc_waiter *waiter, bool keep_alive);
static void resize_answer_locked(struct gc_coord *coord, const char *id, const char *growth_id,
                                 uint64_t target, struct gc_api_answer *ans);
static int register_locked(struct gc_coord *coord, const struct gc_caller *caller,
                           const json_t *req, const struct gc_registration *reg,
                           struct gc_jerr *err, struct gc_resident **ret);
static int register_checked_locked(struct gc_coord *coord, const struct gc_caller *caller,
                                   const json_t *req, struct gc_jerr *err,
                                   struct gc_resident **ret);
static void end_demands_locked(struct gc_coord *coord, const char *name, const char *why);
static bool may_change_locked(struct gc_coord *coord, const struct gc_caller *caller,
                              const struct gc_resident *r, struct gc_api_answer *ans);
static bool step_allowed(const struct gc_resident *r, bool unload, unsigned level);
static struct gc_lease *demand_get_locked(struct gc_coord *coord, struct gc_resident *r,
                                          int priority, const char *why);
static bool demand_settled_locked(struct gc_coord *coord, const char *name, const char *id,
                                  struct gc_resident **ret_r, struct gc_api_answer *ans);
static struct gc_resident *probe_loaded_locked(struct gc_coord *coord, const char *name);
static void use_view(struct gc_api_answer *ans, int status, const struct gc_use *u);
static void use_touch(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                      const char *id, bool end, struct gc_api_answer *ans);

/* Longest the engine sleeps with nothing to wait for. */
#define ENGINE_MAX_SLEEP_MS 60000
/* How long shutdown waits for running jobs. */
#define SHUTDOWN_JOB_WAIT_MS 5000

void gc_api_error(struct gc_api_answer *ans, int err, const char *fmt, ...)
{
    char message[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    gc_utf8_clean(message); /* it may quote client bytes, or be cut inside a character */
    json_decref(ans->body);
    ans->status = gc_err_http_status(err);
    ans->body = json_pack("{s:s, s:s}", "error", gpucoord_err_name(err), "message", message);
}

static unsigned resident_index(const struct gc_coord *coord, const struct gc_resident *r)
{
    return (unsigned)(r - coord->ledger->residents);
}

/* ---- journal records ---- */

static json_t *resident_record(struct gc_coord *coord, const struct gc_resident *r)
{
    const struct gc_resident_ext *ext = &coord->ext[resident_index(coord, r)];

    return gc_record_resident(r, ext->registration, ext->owner);
}

static int journal_locked(struct gc_coord *coord, json_t *rec, bool important)
{
    int rc = rec == NULL ? GC_ENOMEM : gc_store_append(coord->store, rec, important);

    json_decref(rec);
    if (rc == 0)
        return 0;
    coord->stats.counters.journal_errors++;
    if (!coord->journal_behind)
        gc_error("cannot write the journal in '%s': changes that can wait are refused until "
                 "it can be written again",
                 coord->config->state_dir);
    coord->journal_behind = true;
    return GC_EJOURNAL;
}

static json_t *state_records_locked(struct gc_coord *coord)
{
    struct gc_ledger *ledger = coord->ledger;
    json_t *records = json_array();
    uint64_t next_id =
        ledger->next_id > coord->ids_reserved ? ledger->next_id : coord->ids_reserved;

    json_array_append_new(records, gc_record_ids(next_id, ledger->next_seq));
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        if (ledger->residents[i].in_use)
            json_array_append_new(records, resident_record(coord, &ledger->residents[i]));
    }
    for (unsigned i = 0; i < ledger->nleases; i++) {
        if (ledger->leases[i]->kind == GC_KIND_HOLDER)
            json_array_append_new(records, gc_record_lease(ledger->leases[i]));
    }
    return records;
}

/* A failed compaction is retried this much later (a full disk stays full a while). */
#define COMPACT_RETRY_MS 1000

/* A compaction has ended (lock held). errors_at_begin: journal_errors when its snapshot
 * was taken; a record lost since is in neither journal, so the journal stays behind. */
static void compact_done_locked(struct gc_coord *coord, int rc, uint64_t errors_at_begin)
{
    if (rc < 0) {
        if (coord->compact_retry_ms == 0 && !coord->journal_behind) /* once, not per retry */
            gc_error("cannot compact the journal in '%s'", coord->config->state_dir);
        coord->compact_retry_ms = gc_mono_ms() + COMPACT_RETRY_MS;
        return;
    }
    coord->stats.counters.journal_compactions++;
    coord->compact_retry_ms = 0;
    if (coord->journal_behind && coord->stats.counters.journal_errors == errors_at_begin) {
        coord->journal_behind = false;
        gc_info("the journal in '%s' is complete again", coord->config->state_dir);
    }
}

/* Synchronous, under the lock: at recovery, when nothing else runs yet. */
static void compact_locked(struct gc_coord *coord)
{
    json_t *records = state_records_locked(coord);
    uint64_t errors = coord->stats.counters.journal_errors;

    compact_done_locked(coord, gc_store_compact(coord->store, records), errors);
    json_decref(records);
}

struct compact_job {
    struct gc_coord *coord;
    struct gc_store_compaction *c;
    uint64_t errors_at_begin;
};

/* Writes and syncs the new journal without the lock (requests go on, their records
 * copied to it), then renames it in under the lock. */
static void *compact_thread(void *arg)
{
    struct compact_job *job = arg;
    struct gc_coord *coord = job->coord;
    int rc;

    gc_store_compact_write(job->c);
    pthread_mutex_lock(&coord->lock);
    rc = gc_store_compact_finish(coord->store, job->c);
    compact_done_locked(coord, rc, job->errors_at_begin);
    coord->jobs_running--;
    pthread_cond_broadcast(&coord->changed);
    if (coord->journal_behind)
        gc_coord_wake(coord); /* to retry */
    pthread_mutex_unlock(&coord->lock);
    free(job);
    return NULL;
}

/* Starts a compaction in a thread of its own when the journal has outgrown the state
 * it records, or lacks a change (retried while it cannot be written). */
static void compact_maybe_locked(struct gc_coord *coord, int64_t now)
{
    struct compact_job *job;
    json_t *records;
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    if (gc_store_compacting(coord->store) || coord->stopping || now < coord->compact_retry_ms)
        return;
    if (!coord->journal_behind &&
        !gc_store_compaction_due(coord->store, coord->config->compact_bytes))
        return;
    job = calloc(1, sizeof(*job));
    if (job == NULL)
        return;
    job->coord = coord;
    job->errors_at_begin = coord->stats.counters.journal_errors;
    records = state_records_locked(coord);
    rc = gc_store_compact_begin(coord->store, records, &job->c);
    json_decref(records);
    if (rc < 0) {
        free(job);
        compact_done_locked(coord, rc, 0);
        return;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, compact_thread, job) != 0) {
        /* No thread: compact here, under the lock, rather than not at all. */
        gc_store_compact_write(job->c);
        compact_done_locked(coord, gc_store_compact_finish(coord->store, job->c),
                            job->errors_at_begin);
        free(job);
    } else {
        coord->jobs_running++;
    }
    pthread_attr_destroy(&attr);
}

static int journal_lease_locked(struct gc_coord *coord, const struct gc_lease *l)
{
    return journal_locked(coord, gc_record_lease(l), false);
}

static int journal_resident_locked(struct gc_coord *coord, const struct gc_resident *r)
{
    return journal_locked(coord, resident_record(coord, r), true);
}

/* Lease ids reserved by one "ids" record: one small write per this many leases. */
#define IDS_RESERVE_BLOCK 1024

static int ids_reserve_locked(struct gc_coord *coord)
{
    uint64_t next = coord->ledger->next_id, mark;
    int rc;

    if (next > GC_LEASE_ID_LAST)
        return GC_ELIMIT;
    if (next < coord->ids_reserved)
        return 0;
    mark = GC_LEASE_ID_LAST + 1 - next > IDS_RESERVE_BLOCK ? next + IDS_RESERVE_BLOCK
                                                           : GC_LEASE_ID_LAST + 1;
    rc = journal_locked(coord, gc_record_ids(mark, coord->ledger->next_seq), false);
    if (rc == 0)
        coord->ids_reserved = mark;
    return rc;
}

/* ---- process watchers ---- */

static const struct gc_watch *watch_locked(struct gc_coord *coord, pid_t pid, uint64_t start_ticks)
{
    return gc_watches_add(&coord->watches, pid, start_ticks);
}

static bool something_waits_locked(struct gc_coord *coord)
{
    struct gc_ledger *ledger = coord->ledger;

    for (unsigned i = 0; i < ledger->nleases; i++) {
        if (ledger->leases[i]->state == GC_LEASE_QUEUED ||
            ledger->leases[i]->state == GC_LEASE_PREPARING)
            return true;
    }
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && r->state == GC_RES_UNLOADED && r->evicted && r->restore == GC_RESTORE_AUTO)
            return true;
    }
    return false;
}

static bool pid_in_use_locked(struct gc_coord *coord, pid_t pid)
{
    struct gc_ledger *ledger = coord->ledger;

    for (unsigned i = 0; i < ledger->nleases; i++) {
        if (ledger->leases[i]->pid == pid)
            return true;
    }
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        if (ledger->residents[i].in_use && ledger->residents[i].pid == pid)
            return true;
    }
    return false;
}

static void watch_release_locked(struct gc_coord *coord, pid_t pid)
{
    struct gc_watch *w = gc_watches_find(&coord->watches, pid);

    if (w != NULL && !pid_in_use_locked(coord, pid))
        gc_watches_remove(&coord->watches, w);
}

/* A watched process exited (its pidfd, or the engine loop's polling, said so): its
 * leases end, a resident it was is unloaded or gone, a step of it sees the exit. */
static void pid_exited_locked(struct gc_coord *coord, pid_t pid)
{
    struct gc_ledger *ledger = coord->ledger;
    struct gc_watch *w = gc_watches_find(&coord->watches, pid);
    char reason[GC_REASON_MAX];
    double now = gc_real_s();

    snprintf(reason, sizeof(reason), "holder process %d exited", (int)pid);
    for (unsigned i = ledger->nleases; i-- > 0;) {
        if (ledger->leases[i]->pid == pid)
            lease_end_locked(coord, ledger->leases[i], GC_LEASE_EXPIRED, GC_EUNAVAIL, reason);
    }
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        if (!r->in_use || r->pid != pid || r->busy)
            continue; /* a running step judges the exit itself (below) */
        if (r->state == GC_RES_GONE)
            continue; /* known already (a kill by escalation): keep its reason */
        gc_resident_exited(r, pid, gc_mono_ms());
        gc_events_add(&coord->events, now, "resident_exited", r->name,
                      "process %d exited; resident is now %s", (int)pid,
                      gc_resident_state_name(r->state));
        journal_resident_locked(coord, r);
    }
    gc_steps_pid_exited(coord->steps, &coord->step_env, pid);
    /* The watch goes even if the pid is already reused: a pidfd stays readable, and
     * the engine would spin on it. */
    w = gc_watches_find(&coord->watches, pid);
    if (w != NULL)
        gc_watches_remove(&coord->watches, w);
}

/* ---- leases ---- */

static void lease_end_locked(struct gc_coord *coord, struct gc_lease *lease,
                             enum gc_lease_state state, int error, const char *reason)
{
    int64_t now = gc_mono_ms();
    pid_t pid = lease->pid;
    bool holder = lease->kind == GC_KIND_HOLDER;
    const struct gc_lease *h;

    h = gc_ledger_lease_end(coord->ledger, lease, state, error, reason, now);
    if (holder) {
        journal_locked(coord, gc_record_lease_end(h->id, state), false);
        if (state == GC_LEASE_RELEASED)
            coord->stats.counters.leases_released++;
        else if (state == GC_LEASE_EXPIRED)
            coord->stats.counters.leases_expired++;
        else if (state == GC_LEASE_FAILED)
            coord->stats.counters.leases_failed++;
    }
    gc_events_add(&coord->events, gc_real_s(),
                  state == GC_LEASE_RELEASED  ? "lease_released"
                  : state == GC_LEASE_EXPIRED ? "lease_expired"
                                              : "lease_failed",
                  h->id, "%s %s%s%s", h->holder,
                  h->state == GC_LEASE_RELEASED && h->granted_ms ? "released"
                                                                 : gc_lease_state_name(h->state),
                  h->reason[0] ? ": " : "", h->reason);
    if (pid > 0)
        watch_release_locked(coord, pid);
    pthread_cond_broadcast(&coord->changed);
}

/* ---- the scheduler's decisions, carried out ---- */

/* A lease whose next step could not be journaled: it fails (503 journal_failed) rather
 * than go on with a change a restart would not know of. */
static void refuse_unjournaled_locked(struct gc_coord *coord, struct gc_lease *l, const char *step)
{
    char why[GC_REASON_MAX];

    snprintf(why, sizeof(why), "cannot write the journal in '%.200s': %s refused",
             coord->config->state_dir, step);
    lease_end_locked(coord, l, GC_LEASE_FAILED, GC_EJOURNAL, why);
}

static void apply_actions_locked(struct gc_coord *coord, const struct gc_actions *acts)
{
    struct gc_ledger *ledger = coord->ledger;
    double now = gc_real_s();
    char b[GC_SIZE_BUF];

    for (unsigned i = 0; i < acts->n; i++) {
        const struct gc_action *a = &acts->items[i];
        struct gc_lease *l = a->lease_id[0] ? gc_ledger_lease_find(ledger, a->lease_id) : NULL;
        const struct gc_lease *h = NULL;
        struct gc_resident *r =
            a->resident[0] ? gc_ledger_resident_find(ledger, a->resident) : NULL;
        struct gc_event *ev;

        switch (a->kind) {
        case GC_ACT_GRANTED:
            if (l == NULL)
                break;
            if (l->kind == GC_KIND_HOLDER) {
                double waited = (double)(l->granted_ms - l->created_ms) / 1000.0;
                if (journal_locked(coord, gc_record_lease(l), false) < 0) {
                    refuse_unjournaled_locked(coord, l, "grant");
                    break;
                }
                coord->stats.counters.leases_granted++;
                if (l->nevicted > 0)
                    coord->stats.counters.oom_avoided++;
                gc_hist_add(&coord->stats.grant_wait_s, waited);
                ev = gc_events_add(
                    &coord->events, now, "lease_granted", l->id, "%s: %s on GPU %d%s%s", l->holder,
                    gc_size_format(l->bytes, b, sizeof(b)), l->gpu,
                    l->nevicted ? " after evicting " : "", l->nevicted ? l->evicted[0] : "");
                gc_event_phase(ev, "wait", waited);
            }
            break;
        case GC_ACT_REFUSED:
            h = gc_ledger_lease_lookup(ledger, a->lease_id);
            if (h != NULL && h->kind == GC_KIND_GROWTH)
                break; /* never journaled; its resize request answers the refusal */
            coord->stats.counters.leases_refused++;
            coord->stats.counters.leases_failed++;
            if (h != NULL) {
                journal_locked(coord, gc_record_lease_end(h->id, GC_LEASE_FAILED), false);
                gc_events_add(&coord->events, now, "lease_refused", h->id, "%s: %s", h->holder,
                              h->reason);
                if (h->pid > 0)
                    watch_release_locked(coord, h->pid);
            }
            break;
        case GC_ACT_EXPIRED:
            h = gc_ledger_lease_lookup(ledger, a->lease_id);
            coord->stats.counters.leases_expired++;
            if (h != NULL) {
                journal_locked(coord, gc_record_lease_end(h->id, GC_LEASE_EXPIRED), false);
                gc_events_add(&coord->events, now, "lease_expired", h->id, "%s: %s", h->holder,
                              h->reason);
                if (h->pid > 0)
                    watch_release_locked(coord, h->pid);
            }
            break;
        case GC_ACT_PREPARING:
            /* Its evictions (the next actions) see it gone and are not started. */
            if (l != NULL && l->kind == GC_KIND_HOLDER &&
                journal_locked(coord, gc_record_lease(l), false) < 0)
                refuse_unjournaled_locked(coord, l, "evictions");
            break;
        case GC_ACT_UNLOAD:
            if (r == NULL)
                break;
            /* Never unload what the journal does not know is unloading: a restart would
             * believe it loaded and never restore it. Its lease cannot have the room. */
            if ((a->lease_id[0] && l == NULL) || journal_resident_locked(coord, r) < 0) {
                r->state = GC_RES_LOADED;
                r->busy = false;
                if (l != NULL)
                    refuse_unjournaled_locked(coord, l, "evictions");
                break;
            }
            gc_events_add(&coord->events, now, "resident_unloading", r->name,
                          "for %s (%s needed on GPU %u)", a->lease_id,
                          l ? gc_size_format(l->bytes, b, sizeof(b)) : "?", a->gpu);
            gc_step_unload_start(coord->steps, &coord->step_env, r, a->lease_id, gc_mono_ms());
            break;
        case GC_ACT_RELOAD:
            if (r == NULL)
                break;
            /* Not asked for until journaled: it stays unloaded, and the scheduler tries
             * again; a demand waiting for it is told why. */
            if (journal_resident_locked(coord, r) < 0) {
                r->state = GC_RES_UNLOADED;
                r->busy = false;
                if (l != NULL)
                    refuse_unjournaled_locked(coord, l, "reload");
                break;
            }
            gc_events_add(&coord->events, now, "resident_reloading", r->name, "%s",
                          a->lease_id[0] ? "on demand" : "restoring what was evicted");
            gc_step_reload_start(coord->steps, &coord->step_env, r, gc_mono_ms());
            break;
        case GC_ACT_DRAINING:
            gc_events_add(&coord->events, now, "resident_draining", a->resident,
                          "%s waits for %u request(s) in flight (at most %.0f s)", a->lease_id,
                          r ? r->uses : 0, r ? r->drain_timeout_s : 0.0);
            break;
        case GC_ACT_DEMAND:
            coord->stats.counters.demands++;
            gc_events_add(&coord->events, now, "resident_overdue", a->resident,
                          "unloaded longer than max_unloaded_s: reload goes first");
            break;
        case GC_ACT_DEMAND_MET:
            break;
        case GC_ACT_RESIZED:
            /* The growth was granted: the lease holds more, as the journal must say. A
             * growth a restart would not know of is undone and refused: the lease keeps
             * its size, and its resize request answers journal_failed. */
            if (l == NULL)
                break;
            if (journal_locked(coord, gc_record_lease(l), false) < 0) {
                char why[GC_REASON_MAX];
                snprintf(why, sizeof(why), "cannot write the journal in '%.200s': growth refused",
                         coord->config->state_dir);
                gc_growth_unmerge(ledger, a, GC_EJOURNAL, why);
                break;
            }
            coord->stats.counters.lease_growths++;
            gc_events_add(&coord->events, now, "lease_resized", l->id, "%s: grown to %s on GPU %d",
                          l->holder, gc_size_format(l->bytes, b, sizeof(b)), l->gpu);
            break;
        case GC_ACT_DEMAND_FAILED:
            h = gc_ledger_lease_lookup(ledger, a->lease_id);
            gc_events_add(&coord->events, now, "demand_failed", a->resident, "%s",
                          h ? h->reason : "");
            break;
        }
    }
}

static void read_nvml(struct gc_coord *coord, struct gc_nvml_reading *r)
{
    gc_reading_take(coord->nvml, coord->ledger->ngpus, r);
}

static struct gc_nvml_reading *reading_get(struct gc_coord *coord)
{
    return gc_readings_get(&coord->readings);
}

static void reading_put(struct gc_coord *coord, struct gc_nvml_reading *r)
{
    gc_readings_put(&coord->readings, r);
}

/* Applies a reading unless a later one is already in (a request thread reads before it
 * takes the lock: another thread may have read and applied since). */
static void apply_reading_locked(struct gc_coord *coord, const struct gc_nvml_reading *r)
{
    coord->stats.counters.nvml_readings++;
    for (unsigned g = 0; g < r->ngpus; g++) {
        if (!r->ok[g]) {
            if (coord->stats.counters.nvml_errors++ % 1000 == 0)
                gc_warn("NVML read of GPU %u failed: %s (keeping the last reading)", g,
                        gc_nvml_last_error(coord->nvml));
            continue;
        }
        enum gc_attribution was = coord->ledger->gpus[g].attribution;
        if (gc_ledger_set_snapshot(coord->ledger, g, r->used_bytes[g], r->free_bytes[g],
                                   r->procs[g], r->nprocs[g], r->taken_ms) &&
            coord->ledger->gpus[g].attribution != was) {
            const struct gc_gpu *gpu = &coord->ledger->gpus[g];
            char subject[16];
            snprintf(subject, sizeof(subject), "gpu%u", g);
            gc_events_add(&coord->events, gc_real_s(), "attribution_changed", subject,
                          "%s attribution: %s", gc_attribution_name(gpu->attribution),
                          gpu->attribution_why);
            gc_info("GPU %u: %s attribution: %s", g, gc_attribution_name(gpu->attribution),
                    gpu->attribution_why);
        }
    }
}

static int64_t next_deadline_locked(struct gc_coord *coord, int64_t now)
{
    struct gc_ledger *ledger = coord->ledger;
    int64_t next = now + ENGINE_MAX_SLEEP_MS;
    int64_t idle = now + (int64_t)(coord->config->idle_poll_s * 1000.0);
    int64_t verify = now + (int64_t)(coord->config->verify_poll_s * 1000.0);

    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *l = ledger->leases[i];
        if (l->ttl_s > 0 && l->kind == GC_KIND_HOLDER) {
            int64_t t = l->heartbeat_ms + (int64_t)(l->ttl_s * 1000.0) + 1;
            if (t < next)
                next = t;
        }
        /* Its evictions are done and the driver has yet to show the memory free: it
         * comes back any moment, so look as often as a verification does. */
        if (l->state == GC_LEASE_PREPARING && l->evicting == 0 && verify < next)
            next = verify;
        /* Something waits for memory that foreign processes may free: poll NVML. */
        if ((l->state == GC_LEASE_QUEUED || l->state == GC_LEASE_PREPARING) && idle < next)
            next = idle;
    }
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_resident *r = &ledger->residents[i];
        if (!r->in_use || r->state != GC_RES_UNLOADED || !r->evicted ||
            r->restore != GC_RESTORE_AUTO)
            continue;
        if (idle < next)
            next = idle;
        if (ledger->config.max_unloaded_ms > 0) {
            int64_t t = r->unloaded_since_ms + ledger->config.max_unloaded_ms;
            if (t < next)
                next = t;
        }
    }
    for (unsigned i = 0; i < coord->watches.n; i++) {
        if (coord->watches.v[i].fd < 0 && idle < next)
            next = idle; /* no pidfd: poll liveness */
    }
    /* The journal lacks a change: retry the compaction that writes it (one under way
     * wakes the loop when it ends). */
    if (coord->journal_behind && !gc_store_compacting(coord->store) &&
        coord->compact_retry_ms < next)
        next = coord->compact_retry_ms > now ? coord->compact_retry_ms : now;
    {
        int64_t t = gc_uses_next_expiry(&coord->uses);
        if (t != INT64_MAX && t + 1 < next)
            next = t + 1;
    }
    {
        int64_t t =
            gc_steps_next_deadline(coord->steps, &coord->step_env, now, coord->engine_read_ms);
        if (t < next)
            next = t;
    }
    return next;
}

/* Steps looked at, the scheduler run, its decisions carried out, until nothing more
 * follows (steps that end free memory or let a lease go on; a bound keeps it finite). */
#define SETTLE_ROUNDS_MAX 8

static void settle_locked(struct gc_coord *coord)
{
    struct gc_actions *acts = &coord->actions;
    int64_t now;
    unsigned rounds = 0;
    uint64_t steps_before, ended;

    do {
        now = gc_mono_ms();
        steps_before = coord->steps->next_id;
        gc_steps_poll(coord->steps, &coord->step_env, now);
        gc_uses_settle(&coord->uses, coord->ledger, now, use_expired, coord);
        gc_sched_step(coord->ledger, now, acts);
        apply_actions_locked(coord, acts);
        ended = coord->steps->ended;
        /* A step started by these decisions looks at the reading now; one that ends
         * there may let the scheduler go on. */
        if (coord->steps->next_id != steps_before)
            gc_steps_poll(coord->steps, &coord->step_env, now);
    } while ((acts->truncated || coord->steps->ended != ended) && ++rounds < SETTLE_ROUNDS_MAX);
    compact_maybe_locked(coord, now);
    __atomic_store_n(&coord->waits_hint, something_waits_locked(coord), __ATOMIC_RELAXED);
    pthread_cond_broadcast(&coord->changed);
    if (!pthread_equal(pthread_self(), coord->engine_thread) && coord->engine_deadline_ms != 0 &&
        next_deadline_locked(coord, now) < coord->engine_deadline_ms)
        gc_coord_wake(coord);
}

static void kick_locked(struct gc_coord *coord)
{
    settle_locked(coord);
    /* The engine loop reads NVML (without the lock) and settles again. */
    if (!pthread_equal(pthread_self(), coord->engine_thread))
        gc_coord_wake(coord);
}

static void lock_fresh(struct gc_coord *coord)
{
    struct gc_nvml_reading *reading = reading_get(coord);

    if (reading != NULL)
        read_nvml(coord, reading);
    pthread_mutex_lock(&coord->lock);
    if (reading != NULL)
        apply_reading_locked(coord, reading);
    reading_put(coord, reading);
}

static bool waits_hint(struct gc_coord *coord)
{
    return __atomic_load_n(&coord->waits_hint, __ATOMIC_RELAXED);
}

static void job_done(void *engine, struct gc_job *job)
{
    struct gc_coord *coord = engine;

    pthread_mutex_lock(&coord->lock);
    job->next = NULL;
    *coord->answers_tail = job;
    coord->answers_tail = &job->next;
    coord->jobs_running--;
    pthread_cond_broadcast(&coord->changed);
    gc_coord_wake(coord);
    pthread_mutex_unlock(&coord->lock);
}

/* The jobs' answers move their steps on (engine loop, lock held). */
static void answers_take_locked(struct gc_coord *coord)
{
    struct gc_job *job = coord->answers, *next;

    coord->answers = NULL;
    coord->answers_tail = &coord->answers;
    for (; job != NULL; job = next) {
        next = job->next;
        gc_steps_job_answered(coord->steps, &coord->step_env, job, gc_mono_ms());
        free(job);
    }
}

void gc_coord_wake(struct gc_coord *coord)
{
    uint64_t one = 1;

    if (write(coord->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is already nonzero: the engine will wake anyway */
    }
}

static bool wait_locked(struct gc_coord *coord, int64_t deadline_ms)
{
    struct timespec abstime;
    int64_t left = deadline_ms - gc_mono_ms();

    if (left <= 0 || coord->stopping)
        return false;
    gc_abstime_after_ms(&abstime, left);
    pthread_cond_timedwait(&coord->changed, &coord->lock, &abstime);
    return !coord->stopping && gc_mono_ms() < deadline_ms;
}

static bool wait_client_locked(struct gc_coord *coord, int64_t deadline_ms,
                               const struct gc_waiter *waiter)
{
    int64_t slice;

    if (waiter != NULL && waiter->gone(waiter->ctx))
        return false;
    /* Nothing wakes a wait when its client leaves: look again after a slice. */
    slice = gc_mono_ms() + GC_WAITER_POLL_MS;
    wait_locked(coord, slice < deadline_ms ? slice : deadline_ms);
    return !coord->stopping && gc_mono_ms() < deadline_ms &&
           !(waiter != NULL && waiter->gone(waiter->ctx));
}

void gc_coord_stop(struct gc_coord *coord)
{
    if (coord == NULL)
        return;
    pthread_mutex_lock(&coord->lock);
    coord->stopping = true;
    pthread_cond_broadcast(&coord->changed);
    pthread_mutex_unlock(&coord->lock);
}

/* ---- lifecycle ---- */

/* ---- the steps' environment: the engine's hands, lent to steps.c ---- */

static const struct gc_resident_spec *step_spec(void *engine, unsigned slot)
{
    struct gc_coord *coord = engine;

    return &coord->ext[slot].spec;
}

static void step_journal(void *engine, const struct gc_resident *r)
{
    journal_resident_locked(engine, r);
}

/* One lease fewer waiting on an eviction; fails the lease when asked to. */
static void step_lease_evicted(void *engine, const char *lease_id, int error, const char *why)
{
    struct gc_coord *coord = engine;
    struct gc_lease *l;

    if (lease_id[0] == '\0' || (l = gc_ledger_lease_find(coord->ledger, lease_id)) == NULL)
        return;
    gc_lease_eviction_done(l);
    if (error != 0)
        lease_end_locked(coord, l, GC_LEASE_FAILED, error, why);
}

static void step_watch(void *engine, pid_t pid, uint64_t start_ticks)
{
    watch_locked(engine, pid, start_ticks);
}

static void step_unwatch(void *engine, pid_t pid)
{
    watch_release_locked(engine, pid);
}

static bool step_start(void *engine, struct gc_job *job)
{
    struct gc_coord *coord = engine;

    if (gc_job_start(job, job_done, coord) < 0)
        return false;
    coord->jobs_running++;
    return true;
}

int gc_coord_create(const struct gc_config *config, struct gc_nvml *nvml, struct gc_store *store,
                    struct gc_coord **ret_coord, char *errbuf, size_t errbuf_len)
{
    struct gc_ledger_config lcfg = {
        .max_unloaded_ms = (int64_t)(config->max_unloaded_s * 1000.0),
        .starvation_ms = (int64_t)(config->starvation_s * 1000.0),
        .free_lag_ms = (int64_t)(config->free_lag_s * 1000.0),
        .queue_max = config->queue_max,
        .leases_per_holder_max = config->leases_per_holder_max,
        .leases_per_owner_max = config->leases_per_caller_max,
    };
    struct gc_coord *coord;
    pthread_condattr_t cattr;
    struct epoll_event ev = {.events = EPOLLIN};
    unsigned count = 0;

    coord = calloc(1, sizeof(*coord));
    if (coord == NULL)
        return GC_ENOMEM;
    coord->ledger = calloc(1, sizeof(*coord->ledger));
    coord->reading = calloc(1, sizeof(*coord->reading));
    coord->ext = calloc(GC_RESIDENTS_MAX, sizeof(*coord->ext));
    coord->steps = calloc(1, sizeof(*coord->steps));
    if (coord->ledger == NULL || coord->reading == NULL || coord->ext == NULL ||
        coord->steps == NULL) {
        free(coord->ledger);
        free(coord->reading);
        free(coord->ext);
        free(coord->steps);
        free(coord);
        return GC_ENOMEM;
    }
    coord->step_env = (struct gc_step_env){
        .ledger = coord->ledger,
        .config = config,
        .stats = &coord->stats,
        .events = &coord->events,
        .engine = coord,
        .spec = step_spec,
        .journal = step_journal,
        .lease_evicted = step_lease_evicted,
        .watch = step_watch,
        .unwatch = step_unwatch,
        .start = step_start,
    };
    gc_uses_init(&coord->uses);
    coord->config = config;
    coord->nvml = nvml;
    coord->store = store;
    coord->started_ms = gc_mono_ms();
    coord->answers_tail = &coord->answers;
    snprintf(coord->driver_version, sizeof(coord->driver_version), "%s",
             gc_nvml_driver_version(nvml));
    gc_ledger_init(coord->ledger, &lcfg);
    gc_events_init(&coord->events);
    pthread_mutex_init(&coord->lock, NULL);
    gc_readings_init(&coord->readings);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&coord->changed, &cattr);
    pthread_condattr_destroy(&cattr);
    coord->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    coord->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    gc_watches_init(&coord->watches, coord->epoll_fd);
    ev.data.u64 = 0;
    if (coord->epoll_fd < 0 || coord->wake_fd < 0 ||
        epoll_ctl(coord->epoll_fd, EPOLL_CTL_ADD, coord->wake_fd, &ev) < 0) {
        snprintf(errbuf, errbuf_len, "cannot set up the event loop: %s", strerror(errno));
        gc_coord_destroy(coord);
        return GC_EIO;
    }

    if (gc_nvml_device_count(nvml, &count) < 0 || count == 0) {
        snprintf(errbuf, errbuf_len, "NVML reports no GPU%s%s", count ? "" : ": ",
                 gc_nvml_last_error(nvml));
        gc_coord_destroy(coord);
        return GC_EGPU;
    }
    if (count > GC_GPUS_MAX)
        count = GC_GPUS_MAX;
    for (unsigned i = 0; i < count; i++) {
        struct gc_gpu_info info;
        const struct gc_gpu_conf *gconf = &config->gpus[i];
        if (gc_nvml_device_info(nvml, i, &info) < 0) {
            snprintf(errbuf, errbuf_len, "cannot read GPU %u: %s", i, gc_nvml_last_error(nvml));
            gc_coord_destroy(coord);
            return GC_EGPU;
        }
        gc_ledger_add_gpu(coord->ledger, info.uuid, info.name, info.total_bytes,
                          gconf->budget_bytes,
                          gconf->has_reserve ? gconf->reserve_bytes : config->reserve_bytes);
    }
    read_nvml(coord, coord->reading);
    pthread_mutex_lock(&coord->lock);
    apply_reading_locked(coord, coord->reading);
    pthread_mutex_unlock(&coord->lock);
    *ret_coord = coord;
    return 0;
}

void gc_coord_destroy(struct gc_coord *coord)
{
    int64_t deadline;

    if (coord == NULL)
        return;
    pthread_mutex_lock(&coord->lock);
    coord->stopping = true;
    deadline = gc_mono_ms() + SHUTDOWN_JOB_WAIT_MS;
    while (coord->jobs_running > 0 && gc_mono_ms() < deadline) {
        struct timespec abstime;
        gc_abstime_after_ms(&abstime, deadline - gc_mono_ms());
        pthread_cond_timedwait(&coord->changed, &coord->lock, &abstime);
    }
    if (coord->jobs_running > 0) {
        /* Jobs still reference coord: leak it rather than free under them. */
        gc_warn("%u jobs still running at shutdown", coord->jobs_running);
        pthread_mutex_unlock(&coord->lock);
        return;
    }
    pthread_mutex_unlock(&coord->lock);
    while (coord->answers != NULL) {
        struct gc_job *next = coord->answers->next;
        free(coord->answers);
        coord->answers = next;
    }
    gc_watches_free(&coord->watches);
    gc_uses_free(&coord->uses);
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++)
        json_decref(coord->ext[i].registration);
    if (coord->epoll_fd >= 0)
        close(coord->epoll_fd);
    if (coord->wake_fd >= 0)
        close(coord->wake_fd);
    pthread_cond_destroy(&coord->changed);
    pthread_mutex_destroy(&coord->lock);
    gc_readings_free(&coord->readings);
    gc_events_free(&coord->events);
    gc_ledger_free(coord->ledger);
    free(coord->ledger);
    free(coord->reading);
    free(coord->ext);
    free(coord->steps);
    free(coord);
}

void gc_coord_run(struct gc_coord *coord, volatile int *stop)
{
    struct epoll_event evs[64];
    struct gc_nvml_reading *reading = reading_get(coord);

    pthread_mutex_lock(&coord->lock);
    coord->engine_thread = pthread_self();
    pthread_mutex_unlock(&coord->lock);
    while (!*stop) {
        int64_t now = gc_mono_ms(), timeout;
        pid_t *polled = NULL; /* watched without a pidfd: looked at in /proc */
        unsigned npolled = 0;
        int n;

        pthread_mutex_lock(&coord->lock);
        coord->engine_deadline_ms = next_deadline_locked(coord, now);
        timeout = coord->engine_deadline_ms - now;
        for (unsigned i = 0; i < coord->watches.n; i++) {
            if (coord->watches.v[i].fd >= 0)
                continue;
            if (polled == NULL)
                polled = calloc(coord->watches.n, sizeof(*polled));
            if (polled != NULL)
                polled[npolled++] = coord->watches.v[i].pid;
        }
        pthread_mutex_unlock(&coord->lock);
        if (timeout < 0)
            timeout = 0;
        /* The watchdog pings from here, so a stuck engine stops them. */
        timeout = gc_notify_watchdog_tick(now, timeout);
        n = epoll_wait(coord->epoll_fd, evs, 64, (int)timeout);
        if (n < 0 && errno != EINTR) {
            gc_error("epoll_wait: %s", strerror(errno));
            gc_sleep_ms(100);
        }
        /* NVML (and /proc, for the processes it lists) is read without the lock. */
        if (reading != NULL)
            read_nvml(coord, reading);
        for (unsigned i = 0; i < npolled; i++) {
            if (gc_proc_alive(polled[i]))
                polled[i] = 0;
        }
        pthread_mutex_lock(&coord->lock);
        if (reading != NULL)
            coord->engine_read_ms = reading->taken_ms;
        coord->engine_deadline_ms = 0; /* awake: nobody needs to wake us */
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == 0) {
                uint64_t v;
                if (read(coord->wake_fd, &v, sizeof(v)) < 0) {
                    /* already drained */
                }
            } else {
                pid_exited_locked(coord, (pid_t)evs[i].data.u64);
            }
        }
        for (unsigned i = 0; i < npolled; i++) {
            if (polled[i] > 0)
                pid_exited_locked(coord, polled[i]);
        }
        free(polled);
        if (reading != NULL)
            apply_reading_locked(coord, reading);
        answers_take_locked(coord);
        settle_locked(coord);
        pthread_mutex_unlock(&coord->lock);
    }
    reading_put(coord, reading);
}

/* ---- crash recovery ---- */

static bool holder_alive(pid_t pid, uint64_t start_ticks)
{
    if (!gc_proc_alive(pid))
        return false;
    return start_ticks == 0 || gc_proc_start_ticks(pid) == start_ticks;
}

static void recover_resident_locked(struct gc_coord *coord, const json_t *rec, unsigned *ret_n)
{
    struct gc_resident_record rr;
    struct gc_resident *r;
    struct gc_jerr err;
    enum gc_resident_state state;
    int level;
    struct gc_caller registrant;

    if (gc_record_resident_parse(rec, &rr) < 0)
        return;
    r = gc_ledger_resident_find(coord->ledger, rr.name);
    /* Its registration was checked when it was made; it keeps its owner. */
    gc_caller_trusted(rr.owner, &registrant);
    /* A resident also declared in the config keeps the config's spec. */
    if (r == NULL) {
        if (rr.spec == NULL || register_checked_locked(coord, &registrant, rr.spec, &err, &r) < 0) {
            gc_warn("journal: dropping resident '%s': %s", rr.name,
                    rr.spec != NULL ? err.msg : "no registration");
            return;
        }
    }
    state = rr.state;
    r->evicted = rr.evicted;
    r->bytes = rr.bytes;
    r->floor_bytes = rr.floor_bytes;
    /* Its levels come with its registration; where it was among them from the record
     * (older journals: loaded or all the way, as its state says). */
    level = rr.level ? gc_resident_level_find(r, rr.level) : -1;
    r->level = level > 0 ? (unsigned)level : 0;
    r->unloads = rr.unloads;
    r->reloads = rr.reloads;
    /* The journaled pid is the one that was running (a process resident's is learned
     * when it starts); its journaled start time tells it from a later process. */
    if (rr.pid > 0 && rr.pid != r->pid) {
        pid_t old = r->pid;
        r->pid = rr.pid;
        watch_release_locked(coord, old);
    }
    if (rr.pid > 0)
        r->pid_start_ticks = rr.pid_start_ticks;
    if (r->pid > 0 && !holder_alive(r->pid, r->pid_start_ticks)) {
        pid_t dead = r->pid;
        state = gc_resident_died_while_down(r, state);
        watch_release_locked(coord, dead);
    } else if (r->pid > 0) {
        watch_locked(coord, r->pid, r->pid_start_ticks);
    }
    /* A step cut short: the resident is asked (below) what it holds now; until then
     * it is unloaded and to be restored (reload is idempotent). */
    if (state == GC_RES_UNLOADING || state == GC_RES_RELOADING) {
        state = GC_RES_UNLOADED;
        r->evicted = true;
        r->busy = true; /* probed before anything else touches it */
    }
    r->state = state;
    if (state == GC_RES_UNLOADED)
        r->unloaded_since_ms = gc_mono_ms();
    (*ret_n)++;
}

static void recover_lease_locked(struct gc_coord *coord, const json_t *rec, unsigned *adopted,
                                 unsigned *expired)
{
    struct gc_lease l;

    if (gc_record_lease_parse(rec, &l) < 0) {
        gc_warn("journal: dropping a lease record it cannot read (%s)",
                json_string_value(json_object_get(rec, "id")) ?: "no id");
        return;
    }
    if (l.gpu_req >= (int)coord->ledger->ngpus || l.gpu >= (int)coord->ledger->ngpus ||
        (l.pid > 0 && !holder_alive(l.pid, l.pid_start_ticks))) {
        gc_events_add(&coord->events, gc_real_s(), "lease_expired", l.id,
                      "%s: holder gone while the coordinator was down", l.holder);
        journal_locked(coord, gc_record_lease_end(l.id, GC_LEASE_EXPIRED), false);
        coord->stats.counters.leases_expired++;
        (*expired)++;
        return;
    }
    l.created_ms = l.heartbeat_ms = gc_mono_ms();
    if (l.state == GC_LEASE_GRANTED)
        l.granted_ms = l.created_ms;
    if (gc_ledger_lease_adopt(coord->ledger, &l) == 0) {
        watch_locked(coord, l.pid, l.pid_start_ticks);
        (*adopted)++;
    }
}

/* Residents whose unload or reload the crash cut short: a job asks each what it holds
 * (a probe step); until its answer it stays busy, unloaded and to be restored. */
static void probe_interrupted_locked(struct gc_coord *coord)
{
    struct gc_ledger *ledger = coord->ledger;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && r->busy)
            gc_step_recovery_probe_start(coord->steps, &coord->step_env, r, gc_mono_ms());
    }
}

int gc_coord_recover(struct gc_coord *coord, char *errbuf, size_t errbuf_len)
{
    struct gc_replay st;
    unsigned skipped = 0, nres = 0, adopted = 0, expired = 0;
    const char *key;
    json_t *rec;
    size_t i;
    int rc;

    gc_replay_init(&st);
    rc = gc_store_replay(coord->store, gc_replay_record, &st, &skipped);
    if (rc < 0) {
        snprintf(errbuf, errbuf_len, "cannot read the journal in '%s'", coord->config->state_dir);
        gc_replay_free(&st);
        return rc;
    }
    pthread_mutex_lock(&coord->lock);
    coord->starting = true;
    json_array_foreach(coord->config->residents, i, rec)
    {
        struct gc_jerr err;
        struct gc_resident *r;
        struct gc_caller config_file;
        gc_caller_trusted("config", &config_file);
        if (register_checked_locked(coord, &config_file, rec, &err, &r) < 0) {
            coord->starting = false;
            pthread_mutex_unlock(&coord->lock);
            snprintf(errbuf, errbuf_len, "config: resident '%s': %s",
                     json_string_value(json_object_get(rec, "name")), err.msg);
            gc_replay_free(&st);
            return GC_EINVAL;
        }
    }
    if (st.next_id > coord->ledger->next_id)
        coord->ledger->next_id = st.next_id;
    if (st.next_seq > coord->ledger->next_seq)
        coord->ledger->next_seq = st.next_seq;
    coord->recovering = true;
    json_object_foreach(st.residents, key, rec) recover_resident_locked(coord, rec, &nres);
    coord->recovering = false;
    json_object_foreach(st.leases, key, rec) recover_lease_locked(coord, rec, &adopted, &expired);
    probe_interrupted_locked(coord);
    if (nres + adopted + expired + skipped > 0) {
        gc_info("recovered from the journal: %u residents, %u leases re-adopted, %u expired%s",
                nres, adopted, expired, skipped ? " (torn records skipped)" : "");
        gc_events_add(&coord->events, gc_real_s(), "recovered", "",
                      "%u residents, %u leases re-adopted, %u expired, %u records skipped", nres,
                      adopted, expired, skipped);
    }
    /* Every id up to here came from the journal: it covers them. */
    coord->ids_reserved = coord->ledger->next_id;
    compact_locked(coord);
    coord->starting = false;
    kick_locked(coord);
    pthread_mutex_unlock(&coord->lock);
    gc_replay_free(&st);
    return 0;
}

/* ==== leases (API operations) ==== */

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
        ans->body = view_lease_locked(coord, l);
        break;
    case GC_LEASE_QUEUED:
    case GC_LEASE_PREPARING:
        ans->status = 202;
        ans->body = view_lease_locked(coord, l);
        break;
    case GC_LEASE_FAILED:
        gc_api_error(ans, l->error ? l->error : GC_ECOULDNOTFREE, "%s", l->reason);
        json_object_set_new(ans->body, "id", json_string(l->id));
        break;
    default:
        ans->status = 410;
        ans->body = view_lease_locked(coord, l);
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
        if (!wait_locked(coord, slice < deadline_ms ? slice : deadline_ms) &&
            gc_mono_ms() >= deadline_ms) {
            l = gc_ledger_lease_find(coord->ledger, id);
            if (l != NULL && keep_alive)
                l->heartbeat_ms = gc_mono_ms();
            return;
        }
    }
}

void gc_coord_lease_request(struct gc_coord *coord, const struct gc_caller *caller,
                            const json_t *body, const struct gc_waiter *waiter,
                            struct gc_api_answer *ans)
{
    const struct gc_config *cfg = coord->config;
    struct gc_lease_req req;
    struct gc_lease *l;
    char id[GC_LEASE_ID_MAX];
    char why[GC_REASON_MAX];
    int rc;

    rc = gc_lease_req_parse(body, cfg, caller, &req, why, sizeof(why));
    if (rc < 0) {
        gc_api_error(ans, rc, "%s", why);
        return;
    }
    /* Read NVML before taking the lock: what it decides sees the memory as it is. */
    lock_fresh(coord);
    if (req.pid > 0) {
        const struct gc_watch *w = watch_locked(coord, req.pid, req.start_ticks);
        /* A different start time: the checked process exited and its pid was reused. */
        if (w == NULL || w->start_ticks != req.start_ticks) {
            gc_api_error(ans, GC_EINVAL, "process %d does not exist", (int)req.pid);
            if (w != NULL)
                watch_release_locked(coord, req.pid);
            pthread_mutex_unlock(&coord->lock);
            return;
        }
    }
    if (req.gpu_req >= (int)coord->ledger->ngpus) {
        gc_api_error(ans, GC_EINVAL, "no GPU %d: this coordinator has %u", req.gpu_req,
                     coord->ledger->ngpus);
        watch_release_locked(coord, req.pid); /* nothing refers to it */
        pthread_mutex_unlock(&coord->lock);
        return;
    }
    /* The id is covered by the journal before it is issued: never issued twice. */
    rc = ids_reserve_locked(coord);
    if (rc < 0) {
        if (rc == GC_ELIMIT)
            gc_api_error(ans, rc, "lease ids are exhausted (the last is %lld)",
                         (long long)GC_LEASE_ID_LAST);
        else
            gc_api_error(ans, rc, "cannot write the journal in '%s': lease refused",
                         cfg->state_dir);
        watch_release_locked(coord, req.pid);
        pthread_mutex_unlock(&coord->lock);
        return;
    }
    rc = gc_ledger_lease_new_owned(coord->ledger, GC_KIND_HOLDER, caller->key, req.holder, req.pid,
                                   req.gpu_req, req.bytes, req.priority, req.ttl_s, gc_mono_ms(),
                                   &l);
    if (rc == GC_ENOMEM)
        gc_api_error(ans, rc, "out of memory: lease refused");
    else if (rc < 0)
        gc_api_error(ans, GC_ELIMIT,
                     "too many leases (at most %u queued, %u per holder, %u per caller - you are "
                     "%s - and %d in all)",
                     cfg->queue_max, cfg->leases_per_holder_max, cfg->leases_per_caller_max,
                     caller->key, GC_LEASES_MAX);
    if (rc < 0) {
        watch_release_locked(coord, req.pid);
        pthread_mutex_unlock(&coord->lock);
        return;
    }
    l->pid_start_ticks = req.start_ticks;
    snprintf(id, sizeof(id), "%s", l->id);
    settle_locked(coord);
    /* Granted or preparing, it is journaled already; queued, it is journaled here, so
     * that a restart keeps its place for the client that polls it. */
    l = gc_ledger_lease_find(coord->ledger, id);
    if (l != NULL && l->state == GC_LEASE_QUEUED && journal_lease_locked(coord, l) < 0)
        lease_end_locked(coord, l, GC_LEASE_FAILED, GC_EJOURNAL,
                         "cannot write the journal: lease refused");
    if (req.wait_s > 0)
        wait_lease_locked(coord, id, gc_mono_ms() + (int64_t)(req.wait_s * 1000.0), waiter, true);
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
        ans->body = view_lease_locked(coord, l);
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
    if (waits_hint(coord))
        lock_fresh(coord);
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
        lease_end_locked(coord, l, GC_LEASE_RELEASED, 0, why);
        /* The freed room matters only to someone waiting for it. */
        if (something_waits_locked(coord))
            kick_locked(coord);
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
    ans->body = view_lease_locked(coord, l);
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
    char growth_id[GC_LEASE_ID_MAX] = "", b[GC_SIZE_BUF], o[GC_SIZE_BUF];
    int rc;

    if (gc_json_only_keys(req, resize_fields, &err) < 0 ||
        gc_json_get_bytes(req, "bytes", true, GC_LEASE_BYTES_MAX, &bytes, &err) < 0 ||
        gc_json_get_seconds(req, "wait_s", false, 0, cfg->max_wait_s, &wait_s, &err) < 0) {
        gc_api_error(ans, GC_EINVAL, "%s", err.msg);
        return;
    }
    if (bytes == 0) {
        gc_api_error(ans, GC_EINVAL,
                     "field 'bytes' must be greater than 0 (release the lease to hold nothing)");
        return;
    }

    /* Read NVML before taking the lock: what it decides sees the memory as it is. */
    lock_fresh(coord);
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
    if (rc == GC_ENOMEM) {
        gc_api_error(ans, rc, "out of memory: resize refused");
        goto out_unlock;
    }
    if (rc < 0) {
        gc_api_error(ans, GC_ELIMIT, "too many leases waiting (at most %u queued, %d in all)",
                     cfg->queue_max, GC_LEASES_MAX);
        goto out_unlock;
    }
    coord->stats.counters.lease_resizes++;
    l = gc_ledger_lease_find(coord->ledger, id);
    if (g == NULL) {
        /* Shrunk (or a queued lease resized): in force now, journaled like a grant. */
        if (l->bytes != old_bytes) {
            journal_lease_locked(coord, l);
            gc_events_add(&coord->events, gc_real_s(), "lease_resized", l->id, "%s: %s to %s",
                          l->holder, l->bytes < old_bytes ? "shrunk" : "queued size changed",
                          gc_size_format(l->bytes, b, sizeof(b)));
        }
        if (something_waits_locked(coord))
            settle_locked(coord);
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
    settle_locked(coord);
    if (wait_s > 0)
        wait_lease_locked(coord, growth_id, gc_mono_ms() + (int64_t)(wait_s * 1000.0), waiter,
                          false);
    /* Still waiting: withdrawn, so that memory nobody waits for any more is not taken
     * (and residents not evicted) behind the caller's back. */
    g = gc_ledger_lease_find(coord->ledger, growth_id);
    if (g != NULL && (g->state == GC_LEASE_QUEUED || g->state == GC_LEASE_PREPARING)) {
        gc_growth_withdraw(coord->ledger, g, "the resize request's wait ran out", gc_mono_ms());
        pthread_cond_broadcast(&coord->changed);
        kick_locked(coord);
    }
    resize_answer_locked(coord, id, growth_id, bytes, ans);
out_unlock:
    pthread_mutex_unlock(&coord->lock);
}

/* ==== residents (API operations) ==== */

/* Registers what reg (checked from req) describes: a new resident, or a new
 * registration of one the same caller made. */
static int register_locked(struct gc_coord *coord, const struct gc_caller *caller,
                           const json_t *req, const struct gc_registration *reg,
                           struct gc_jerr *err, struct gc_resident **ret)
{
    const struct gc_config *cfg = coord->config;
    struct gc_resident r = reg->r, *slot;
    struct gc_resident_spec spec = reg->spec;
    const char *name = reg->r.name;
    pid_t old_pid = 0;
    bool fresh;

    slot = gc_ledger_resident_find(coord->ledger, name);
    if (slot != NULL && !gc_caller_owns(caller, coord->ext[resident_index(coord, slot)].owner)) {
        snprintf(err->msg, sizeof(err->msg), "resident '%s' was registered by another caller",
                 name);
        return GC_EFORBIDDEN;
    }
    fresh = slot == NULL;
    if (slot != NULL && slot->busy) {
        snprintf(err->msg, sizeof(err->msg), "resident '%s' is %s; register again when it is done",
                 name, gc_resident_state_name(slot->state));
        return GC_ECONFLICT;
    }
    if (fresh) {
        slot = gc_ledger_resident_alloc(coord->ledger);
        if (slot == NULL) {
            snprintf(err->msg, sizeof(err->msg), "at most %d residents (or out of memory)",
                     GC_RESIDENTS_MAX);
            return GC_ELIMIT;
        }
    } else {
        /* Re-registration replaces it but keeps its history. */
        r.unloads = slot->unloads;
        r.reloads = slot->reloads;
        old_pid = slot->pid;
    }
    /* Journaled before the ledger changes: a registration a restart would not know of is
     * refused. At start, the recovery's compaction records it instead. */
    if (journal_locked(coord, gc_record_resident(&r, req, caller->key), true) < 0 &&
        !coord->starting) {
        snprintf(err->msg, sizeof(err->msg),
                 "cannot write the journal in '%.180s': registration refused", cfg->state_dir);
        if (fresh)
            gc_ledger_resident_remove(coord->ledger, slot);
        return GC_EJOURNAL;
    }
    *slot = r;
    {
        struct gc_resident_ext *ext = &coord->ext[resident_index(coord, slot)];
        json_decref(ext->registration);
        ext->registration = json_deep_copy(req);
        ext->spec = spec;
        if (fresh)
            memset(&coord->steps->slot[resident_index(coord, slot)], 0,
                   sizeof(coord->steps->slot[0]));
        snprintf(ext->owner, sizeof(ext->owner), "%s", caller->key);
    }
    watch_locked(coord, slot->pid, slot->pid_start_ticks);
    if (old_pid > 0 && old_pid != slot->pid)
        watch_release_locked(coord, old_pid); /* a restarted server's old process */
    gc_events_add(&coord->events, gc_real_s(), "resident_registered", name,
                  "%s at %s, pid %d, GPU %u, priority %d", slot->protocol,
                  spec.url[0] ? spec.url : "-", (int)slot->pid, slot->gpu, slot->priority);
    *ret = slot;
    return 0;
}

/* The same, checked here (at start-up, under the lock: nothing else runs yet). */
static int register_checked_locked(struct gc_coord *coord, const struct gc_caller *caller,
                                   const json_t *req, struct gc_jerr *err, struct gc_resident **ret)
{
    struct gc_registration reg;
    int rc = gc_registration_parse(req, coord->config, coord->ledger->ngpus, caller,
                                   !coord->recovering, gc_mono_ms(), &reg, err);

    return rc < 0 ? rc : register_locked(coord, caller, req, &reg, err, ret);
}

void gc_coord_resident_register(struct gc_coord *coord, const struct gc_caller *caller,
                                const json_t *req, struct gc_api_answer *ans)
{
    struct gc_registration reg;
    struct gc_jerr err;
    struct gc_resident *r;
    int rc;

    /* Checked before the lock (its pid is looked up in /proc); the GPUs are fixed. */
    rc = gc_registration_parse(req, coord->config, coord->ledger->ngpus, caller, true, gc_mono_ms(),
                               &reg, &err);
    if (rc < 0) {
        gc_api_error(ans, rc, "%s", err.msg);
        return;
    }
    lock_fresh(coord);
    rc = register_locked(coord, caller, req, &reg, &err, &r);
    if (rc < 0) {
        gc_api_error(ans, rc, "%s", err.msg);
    } else {
        kick_locked(coord);
        json_decref(ans->body);
        ans->status = 201;
        ans->body = view_resident_locked(coord, r);
    }
    pthread_mutex_unlock(&coord->lock);
}

/* Ends demand leases for a resident (it was deleted). */
static void end_demands_locked(struct gc_coord *coord, const char *name, const char *why)
{
    struct gc_lease *d;

    while ((d = gc_ledger_demand_find(coord->ledger, name)) != NULL)
        lease_end_locked(coord, d, GC_LEASE_FAILED, GC_EUNAVAIL, why);
}

/* Answers 403 unless caller may change resident r (its registrant, or trusted). */
static bool may_change_locked(struct gc_coord *coord, const struct gc_caller *caller,
                              const struct gc_resident *r, struct gc_api_answer *ans)
{
    if (gc_caller_owns(caller, coord->ext[resident_index(coord, r)].owner))
        return true;
    gc_api_error(ans, GC_EFORBIDDEN, "resident '%s' was registered by another caller", r->name);
    return false;
}

void gc_coord_resident_delete(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, struct gc_api_answer *ans)
{
    struct gc_resident *r;
    pid_t pid;

    lock_fresh(coord);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
    } else if (!may_change_locked(coord, caller, r, ans)) {
        /* answered */
    } else if (r->busy) {
        gc_api_error(ans, GC_ECONFLICT, "resident '%s' is %s; try again when it is done", name,
                     gc_resident_state_name(r->state));
    } else if (journal_locked(coord, gc_record_resident_delete(name), true) < 0) {
        /* A deletion a restart would not know of is refused: the resident stays. */
        gc_api_error(ans, GC_EJOURNAL, "cannot write the journal in '%s': deletion refused",
                     coord->config->state_dir);
    } else {
        unsigned idx = resident_index(coord, r);
        pid = r->pid;
        gc_ledger_resident_remove(coord->ledger, r);
        json_decref(coord->ext[idx].registration);
        memset(&coord->ext[idx], 0, sizeof(coord->ext[idx]));
        end_demands_locked(coord, name, "resident was deleted");
        gc_events_add(&coord->events, gc_real_s(), "resident_deleted", name, "pid %d", (int)pid);
        watch_release_locked(coord, pid);
        kick_locked(coord);
        json_decref(ans->body);
        ans->status = 204;
        ans->body = NULL;
    }
    pthread_mutex_unlock(&coord->lock);
}

/* May this resident start an unload (to level) or a reload by hand in its state? */
static bool step_allowed(const struct gc_resident *r, bool unload, unsigned level)
{
    if (r->busy)
        return false;
    if (unload)
        return (r->state == GC_RES_LOADED || r->state == GC_RES_UNLOADED) &&
               gc_resident_level(r) < level;
    return r->state == GC_RES_UNLOADED || r->state == GC_RES_FAILED ||
           (r->state == GC_RES_GONE && r->restartable);
}

static const char *const unload_fields[] = {"level", NULL};

/* An unload asked for by hand: run in the calling thread, answered once verified (or
 * with why it could not be). */
void gc_coord_resident_unload(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, const json_t *req, struct gc_api_answer *ans)
{
    struct gc_resident *r;
    struct gc_jerr err;
    const char *level_name = NULL;
    enum gc_resident_state prev;
    const struct gc_step *step;
    uint64_t step_id;
    int64_t deadline;
    unsigned level;

    if (req != NULL &&
        (gc_json_only_keys(req, unload_fields, &err) < 0 ||
         gc_json_get_str(req, "level", false, GC_LEVEL_NAME_MAX, &level_name, &err) < 0)) {
        gc_api_error(ans, GC_EINVAL, "%s", err.msg);
        return;
    }
    /* Read NVML before taking the lock: what it decides sees the memory as it is. */
    lock_fresh(coord);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
        goto out_unlock;
    }
    if (!may_change_locked(coord, caller, r, ans))
        goto out_unlock;
    level = gc_resident_nlevels(r) - 1;
    if (level_name != NULL) {
        int found = gc_resident_level_find(r, level_name);
        if (found < 0) {
            char names[GC_LEVELS_MAX * (GC_LEVEL_NAME_MAX + 2)] = "";
            for (unsigned i = 0; i < gc_resident_nlevels(r); i++) {
                size_t len = strlen(names);
                snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
                         gc_resident_level_name(r, i));
            }
            gc_api_error(ans, GC_EINVAL, "resident '%s' has no level '%s' (its levels: %s)", name,
                         level_name, names);
            goto out_unlock;
        }
        level = (unsigned)found;
        if (!r->busy && gc_resident_level(r) == level &&
            (r->state == GC_RES_LOADED || r->state == GC_RES_UNLOADED)) {
            json_decref(ans->body); /* already there */
            ans->status = 200;
            ans->body = view_resident_locked(coord, r);
            goto out_unlock;
        }
    }
    if (!step_allowed(r, true, level)) {
        if (level_name != NULL && !r->busy &&
            (r->state == GC_RES_LOADED || r->state == GC_RES_UNLOADED))
            gc_api_error(ans, GC_ECONFLICT,
                         "resident '%s' is at level '%s', already below '%s'; a reload brings "
                         "it back up",
                         name, gc_resident_level_name(r, gc_resident_level(r)),
                         gc_resident_level_name(r, level));
        else
            gc_api_error(ans, GC_ECONFLICT,
                         "resident '%s' is %s%s; only a loaded resident can be unloaded", name,
                         gc_resident_state_name(r->state), r->busy ? " and busy" : "");
        goto out_unlock;
    }
    settle_locked(coord);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL || !step_allowed(r, true, level)) {
        gc_api_error(ans, GC_ECONFLICT, "resident '%s' changed state; try again", name);
        goto out_unlock;
    }
    prev = gc_resident_unload_begin(r, level, gc_ledger_resident_counted(coord->ledger, r));
    /* Not asked for until journaled: a restart must know a step may have begun. */
    if (journal_resident_locked(coord, r) < 0) {
        gc_resident_step_undo(r, prev);
        gc_api_error(ans, GC_EJOURNAL, "cannot write the journal in '%s': unload refused",
                     coord->config->state_dir);
        goto out_unlock;
    }
    gc_events_add(&coord->events, gc_real_s(), "resident_unloading", name,
                  "by request, to level '%s'", gc_resident_level_name(r, level));
    gc_step_unload_start(coord->steps, &coord->step_env, r, "", gc_mono_ms());
    step = &coord->steps->slot[resident_index(coord, r)];
    step_id = step->id;
    /* The step is bounded by its own timeouts: asking, verifying, a cleanup request,
     * then a kill and the driver's release, or a reload where it stands. */
    deadline =
        gc_mono_ms() +
        (int64_t)((r->unload_timeout_s * 2 + r->verify_timeout_s * 2 + coord->config->free_lag_s +
                   coord->ext[resident_index(coord, r)].spec.kill_grace_s + STEP_SLACK_S) *
                  1000.0);
    while (step->outcome_id != step_id && wait_locked(coord, deadline)) {
        r = gc_ledger_resident_find(coord->ledger, name);
        if (r == NULL)
            break;
    }
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "resident '%s' was deleted meanwhile", name);
    } else if (step->outcome_id != step_id) {
        gc_api_error(ans, GC_EUNAVAIL, "resident '%s' is %s: the unload did not finish in time",
                     name, gc_resident_state_name(r->state));
    } else if (step->outcome_rc < 0) {
        gc_api_error(ans, step->outcome_rc, "%s", step->outcome_why);
    } else {
        json_decref(ans->body);
        ans->status = 200;
        ans->body = view_resident_locked(coord, r);
    }
out_unlock:
    pthread_mutex_unlock(&coord->lock);
}

/* The active demand for resident r, made now (counted, announced) when it has none;
 * NULL when the queue is full. */
static struct gc_lease *demand_get_locked(struct gc_coord *coord, struct gc_resident *r,
                                          int priority, const char *why)
{
    struct gc_lease *d = gc_ledger_demand_find(coord->ledger, r->name);

    if (d != NULL)
        return d;
    if (gc_ledger_lease_new(
            coord->ledger, GC_KIND_DEMAND, r->name, 0, (int)r->gpu, gc_resident_missing_bytes(r),
            priority > r->priority ? priority : r->priority, 0, gc_mono_ms(), &d) < 0)
        return NULL;
    d->evict_priority = r->priority; /* it evicts only what ranks below it */
    coord->stats.counters.demands++;
    gc_events_add(&coord->events, gc_real_s(), "resident_demand", r->name, "%s", why);
    return d;
}

/*
 * Whether a wait for resident name to come back (its demand id, "" for none) has an
 * answer: loaded (200, the resident), deleted (404), or failed, gone or its demand
 * failed (503, or journal_failed when the journal refused it). True with ans set;
 * false while it should go on waiting, with *ret_r the resident.
 */
static bool demand_settled_locked(struct gc_coord *coord, const char *name, const char *id,
                                  struct gc_resident **ret_r, struct gc_api_answer *ans)
{
    struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
    const struct gc_lease *h;

    *ret_r = r;
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "resident '%s' was deleted meanwhile", name);
        return true;
    }
    if (r->state == GC_RES_LOADED) {
        json_decref(ans->body);
        ans->status = 200;
        ans->body = view_resident_locked(coord, r);
        return true;
    }
    h = id[0] ? gc_ledger_lease_lookup(coord->ledger, id) : NULL;
    /* A process resident that is gone comes back by its start command: it waits. */
    if (r->state == GC_RES_FAILED || (r->state == GC_RES_GONE && !r->restartable) ||
        (h != NULL && h->state == GC_LEASE_FAILED)) {
        gc_api_error(ans, h != NULL && h->error == GC_EJOURNAL ? GC_EJOURNAL : GC_EUNAVAIL,
                     "resident '%s' could not be reloaded: %s", name,
                     r->reason[0] ? r->reason : (h ? h->reason : ""));
        return true;
    }
    return false;
}

/*
 * A reload asked for by hand is a demand: it waits its turn in the queue like any
 * lease, so it never takes room a granted lease holds. It waits up to the resident's
 * reload_timeout_s for the room; when the room does not come, the demand it made is
 * withdrawn and the answer is 409 with what holds the room. Once the reload has
 * started, it waits for it to finish (the job is bounded by its own timeouts).
 */
void gc_coord_resident_reload(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, struct gc_api_answer *ans)
{
    struct gc_resident *r;
    struct gc_lease *d;
    int64_t deadline, hard_deadline;
    unsigned attempts;
    double backoff_s = 0, step_s;
    bool ours;
    char id[GC_LEASE_ID_MAX];

    lock_fresh(coord);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
        goto out_unlock;
    }
    if (!may_change_locked(coord, caller, r, ans))
        goto out_unlock;
    if (!step_allowed(r, false, 0)) {
        gc_api_error(ans, GC_ECONFLICT,
                     "resident '%s' is %s%s; only an unloaded or failed resident can be reloaded",
                     name, gc_resident_state_name(r->state), r->busy ? " and busy" : "");
        goto out_unlock;
    }
    if (r->state != GC_RES_UNLOADED) {
        /* Failed (or a process resident that is gone): a fresh start, from unloaded. */
        struct gc_resident before = *r;
        gc_resident_restart(r, gc_mono_ms());
        if (journal_resident_locked(coord, r) < 0) {
            *r = before;
            gc_api_error(ans, GC_EJOURNAL, "cannot write the journal in '%s': reload refused",
                         coord->config->state_dir);
            goto out_unlock;
        }
    }
    r->last_used_ms = gc_mono_ms();
    attempts = coord->config->reload_attempts ? coord->config->reload_attempts : 1;
    deadline = gc_mono_ms() + (int64_t)(r->reload_timeout_s * 1000.0);
    /* Past the wait for room, the job's own bounds: its attempts, their backoff, the
     * verification (each attempt waits twice as long as the one before). */
    step_s = coord->config->reload_backoff_s;
    for (unsigned a = 1; a < attempts; a++, step_s *= 2)
        backoff_s += step_s;
    hard_deadline =
        deadline +
        (int64_t)((r->reload_timeout_s * (attempts + 1) + backoff_s + r->verify_timeout_s) *
                  1000.0);
    ours = gc_ledger_demand_find(coord->ledger, name) == NULL;
    d = demand_get_locked(coord, r, GC_LEASE_PRIORITY_DEFAULT, "reload by request");
    if (d == NULL) {
        gc_api_error(ans, GC_ELIMIT, "the queue is full");
        goto out_unlock;
    }
    snprintf(id, sizeof(id), "%s", d->id);
    /* demand_get_locked announced it (resident_demand); resident_reloading comes when
     * the reload really starts, journaled first. */
    kick_locked(coord);
    for (;;) {
        if (demand_settled_locked(coord, name, id, &r, ans))
            goto out_unlock;
        d = gc_ledger_lease_find(coord->ledger, id);
        if (gc_mono_ms() >= deadline && r->state == GC_RES_UNLOADED && !r->busy &&
            (d == NULL || d->state == GC_LEASE_QUEUED)) {
            char why[GC_REASON_MAX];
            gc_sched_room_why(coord->ledger, r->gpu, gc_resident_missing_bytes(r), why,
                              sizeof(why));
            if (ours && d != NULL)
                lease_end_locked(coord, d, GC_LEASE_FAILED, GC_ECONFLICT, why);
            gc_api_error(ans, GC_ECONFLICT, "resident '%s' cannot come back within %.0f s: %s",
                         name, r->reload_timeout_s, why);
            goto out_unlock;
        }
        if (gc_mono_ms() < deadline)
            wait_locked(coord, deadline); /* the checks above judge its end */
        else if (!wait_locked(coord, hard_deadline))
            break;
        if (coord->stopping)
            break;
    }
    /* Stopping, or the reload job overran every bound it has. */
    gc_api_error(ans, GC_EUNAVAIL, "resident '%s' is %s: the reload did not finish in time", name,
                 gc_resident_state_name(r->state));
out_unlock:
    pthread_mutex_unlock(&coord->lock);
}

/* A health question is bounded by 5 s in every adapter: a probe is waited for this long. */
#define PROBE_WAIT_MS 10000

/*
 * A resident demanded while the ledger says it is loaded: a job asks it what it holds
 * (the lock is let go while the engine takes the answer). One that reports its models
 * unloaded - it was unloaded outside the coordinator, or finished an unload the
 * coordinator had given up on - is marked unloaded, so that the demand reloads it.
 * Returns the resident again, or NULL when it was deleted meanwhile.
 */
static struct gc_resident *probe_loaded_locked(struct gc_coord *coord, const char *name)
{
    struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
    unsigned slot = resident_index(coord, r);
    uint64_t probe = gc_step_probe_start(coord->steps, &coord->step_env, r, gc_mono_ms());
    int64_t until = gc_mono_ms() + PROBE_WAIT_MS;

    while (probe != 0 && coord->steps->slot[slot].outcome_id < probe &&
           gc_ledger_resident_find(coord->ledger, name) == r && wait_locked(coord, until))
        ;
    return gc_ledger_resident_find(coord->ledger, name);
}

void gc_coord_resident_demand(struct gc_coord *coord, const char *name, const json_t *req,
                              const struct gc_waiter *waiter, struct gc_api_answer *ans)
{
    static const char *const fields[] = {"wait_s", "priority", NULL};
    struct gc_jerr err;
    struct gc_resident *r;
    struct gc_lease *d;
    double wait_s = 0;
    int64_t priority = GC_LEASE_PRIORITY_DEFAULT, deadline;
    char id[GC_LEASE_ID_MAX] = "";

    if (req != NULL && (gc_json_only_keys(req, fields, &err) < 0 ||
                        gc_json_get_seconds(req, "wait_s", false, 0, coord->config->max_wait_s,
                                            &wait_s, &err) < 0 ||
                        gc_json_get_int(req, "priority", false, -GC_PRIORITY_LIMIT,
                                        GC_PRIORITY_LIMIT, &priority, &err) < 0)) {
        gc_api_error(ans, GC_EINVAL, "%s", err.msg);
        return;
    }
    deadline = gc_mono_ms() + (int64_t)(wait_s * 1000.0);
    lock_fresh(coord);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
        goto out_unlock;
    }
    r->last_used_ms = gc_mono_ms();
    if (r->state == GC_RES_LOADED && !r->busy)
        r = probe_loaded_locked(coord, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "resident '%s' was deleted", name);
        goto out_unlock;
    }
    if (r->state == GC_RES_FAILED || (r->state == GC_RES_GONE && !r->restartable)) {
        gc_api_error(ans, GC_EUNAVAIL, "resident '%s' is %s%s%s", name,
                     gc_resident_state_name(r->state), r->reason[0] ? ": " : "", r->reason);
        goto out_unlock;
    }
    if (r->state != GC_RES_LOADED && r->state != GC_RES_RELOADING) {
        d = demand_get_locked(coord, r, (int)priority, "requests are waiting for it");
        if (d == NULL) {
            gc_api_error(ans, GC_ELIMIT, "the queue is full");
            goto out_unlock;
        }
        snprintf(id, sizeof(id), "%s", d->id);
        kick_locked(coord);
    }
    for (;;) {
        if (demand_settled_locked(coord, name, id, &r, ans))
            goto out_unlock;
        if (!wait_client_locked(coord, deadline, waiter))
            break;
    }
    d = id[0] ? gc_ledger_lease_find(coord->ledger, id) : NULL;
    json_decref(ans->body);
    ans->status = 202;
    ans->body =
        json_pack("{s:s, s:s, s:s, s:i}", "name", name, "state", gc_resident_state_name(r->state),
                  "id", id, "position", d ? (int)gc_ledger_queue_position(coord->ledger, d) : 0);
out_unlock:
    pthread_mutex_unlock(&coord->lock);
}

/* ==== requests in flight (API operations) ==== */

/* A use ended by itself: its client did not renew it, or its resident went. */
static void use_expired(void *ctx, const struct gc_use *use, bool deleted)
{
    struct gc_coord *coord = ctx;

    gc_events_add(&coord->events, gc_real_s(), "use_expired", use->resident, "%s: %s", use->id,
                  deleted ? "its resident was deleted"
                          : "not renewed within its ttl (its client is gone)");
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
    int rc;

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
    rc = gc_uses_begin(&coord->uses, name, caller->key, ttl_s, gc_mono_ms(), &slot);
    if (rc < 0) {
        gc_api_error(ans, rc, rc == GC_ELIMIT ? "at most %d requests in flight" : "out of memory",
                     GC_USES_MAX);
        goto out_unlock;
    }
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

    if (end && waits_hint(coord))
        lock_fresh(coord); /* an eviction may wait for it */
    else
        pthread_mutex_lock(&coord->lock);
    u = gc_uses_find(&coord->uses, name, id);
    if (u == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no use '%s' of resident '%s' (ended or expired)", id,
                     name);
    } else if (!gc_caller_owns(caller, u->owner)) {
        gc_api_error(ans, GC_EFORBIDDEN, "use '%s' belongs to another caller", id);
    } else if (end) {
        gc_uses_end(&coord->uses, u);
        kick_locked(coord); /* an eviction may have waited for it */
        json_decref(ans->body);
        ans->status = 204;
        ans->body = NULL;
    } else {
        gc_uses_renew(u, gc_mono_ms());
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

/* ==== views ==== */

static const struct gc_resident_spec *spec_of_slot(const void *ctx, unsigned slot)
{
    const struct gc_coord *coord = ctx;

    return &coord->ext[slot].spec;
}

static void view_src(struct gc_coord *coord, struct gc_view_src *src)
{
    src->ledger = coord->ledger;
    src->spec = spec_of_slot;
    src->ctx = coord;
    src->stats = &coord->stats;
    src->events = &coord->events;
    src->nvml = coord->nvml;
    src->driver_version = coord->driver_version;
    src->started_ms = coord->started_ms;
    src->watched = coord->watches.n;
}

static json_t *view_lease_locked(struct gc_coord *coord, const struct gc_lease *l)
{
    struct gc_view_src src;

    view_src(coord, &src);
    return gc_view_lease(&src, l);
}

static json_t *view_resident_locked(struct gc_coord *coord, const struct gc_resident *r)
{
    struct gc_view_src src;

    view_src(coord, &src);
    return gc_view_resident(&src, r);
}

/* Builds a view under the lock; fresh: on an NVML reading taken for it (settled, so
 * that what it shows is what the scheduler made of that reading). */
static json_t *view(struct gc_coord *coord, bool fresh,
                    json_t *(*build)(const struct gc_view_src *src))
{
    struct gc_view_src src;
    json_t *o;

    if (fresh) {
        lock_fresh(coord);
        settle_locked(coord); /* on the reading just taken: the engine need not read again */
    } else {
        pthread_mutex_lock(&coord->lock);
    }
    view_src(coord, &src);
    o = build(&src);
    pthread_mutex_unlock(&coord->lock);
    return o;
}

static json_t *build_gpus(const struct gc_view_src *src)
{
    return json_pack("{s:o, s:o}", "gpus", gc_view_gpus(src), "gpusim", gc_view_gpusim(src));
}

static json_t *build_leases(const struct gc_view_src *src)
{
    return json_pack("{s:o}", "leases", gc_view_leases(src));
}

static json_t *build_residents(const struct gc_view_src *src)
{
    return json_pack("{s:o}", "residents", gc_view_residents(src));
}

json_t *gc_coord_view_gpus(struct gc_coord *coord)
{
    return view(coord, true, build_gpus);
}

json_t *gc_coord_view_status(struct gc_coord *coord)
{
    return view(coord, true, gc_view_status);
}

json_t *gc_coord_view_leases(struct gc_coord *coord)
{
    return view(coord, false, build_leases);
}

json_t *gc_coord_view_residents(struct gc_coord *coord)
{
    return view(coord, false, build_residents);
}

void gc_coord_view_resident(struct gc_coord *coord, const char *name, struct gc_api_answer *ans)
{
    const struct gc_resident *r;

    pthread_mutex_lock(&coord->lock);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
    } else {
        json_decref(ans->body);
        ans->status = 200;
        ans->body = view_resident_locked(coord, r);
    }
    pthread_mutex_unlock(&coord->lock);
}

char *gc_coord_view_metrics(struct gc_coord *coord)
{
    struct gc_view_src src;
    char *text;

    pthread_mutex_lock(&coord->lock);
    view_src(coord, &src);
    text = gc_view_metrics(&src);
    pthread_mutex_unlock(&coord->lock);
    return text;
}

json_t *gc_coord_view_events(struct gc_coord *coord, uint64_t since, unsigned max,
                             int64_t deadline_ms, const struct gc_waiter *waiter)
{
    json_t *o;

    pthread_mutex_lock(&coord->lock);
    while (gc_events_last_seq(&coord->events) <= since &&
           wait_client_locked(coord, deadline_ms, waiter))
        ;
    o = json_pack("{s:o, s:I}", "events", gc_events_since(&coord->events, since, max), "last_seq",
                  (json_int_t)gc_events_last_seq(&coord->events));
    pthread_mutex_unlock(&coord->lock);
    return o;
}

const struct gc_config *gc_coord_config(const struct gc_coord *coord)
{
    return coord->config;
}

void gc_coord_log_gpus(struct gc_coord *coord)
{
    pthread_mutex_lock(&coord->lock);
    for (unsigned g = 0; g < coord->ledger->ngpus; g++)
        gc_info("GPU %u: %s, %llu MiB (NVML %s)", g, coord->ledger->gpus[g].name,
                (unsigned long long)(coord->ledger->gpus[g].total_bytes >> 20),
                coord->driver_version);
    pthread_mutex_unlock(&coord->lock);
}
