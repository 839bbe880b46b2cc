/* coord.c - the engine: NVML readings, the scheduler's decisions carried out,
 * the journal, process watchers and the main loop. */
#include "daemon/coord.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/size.h"
#include "common/utf8.h"
#include "daemon/ancestry.h"
#include "daemon/notify.h"

/* Longest the engine sleeps with nothing to wait for. */
#define ENGINE_MAX_SLEEP_MS 60000
/* How long shutdown waits for running jobs. */
#define SHUTDOWN_JOB_WAIT_MS 5000

const double gc_hist_bounds[GC_HIST_BUCKETS] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25,
                                                0.5,   1,     2.5,  5,    10,  30};

void gc_hist_add(struct gc_histogram *h, double seconds)
{
    unsigned i = 0;

    while (i < GC_HIST_BUCKETS && seconds > gc_hist_bounds[i])
        i++;
    h->counts[i]++;
    h->sum += seconds;
    h->count++;
}

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

unsigned gc_coord_resident_index(const struct gc_coord *coord, const struct gc_resident *r)
{
    return (unsigned)(r - coord->ledger->residents);
}

/* ---- journal records ---- */

static json_t *lease_record(const struct gc_lease *l)
{
    json_t *evicted = json_array();

    for (unsigned i = 0; i < l->nevicted; i++)
        json_array_append_new(evicted, json_string(l->evicted[i]));
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:i, s:I, s:i, s:f, s:s, s:I, s:o}", "op",
                     "lease", "id", l->id, "holder", l->holder, "owner", l->owner, "pid",
                     (int)l->pid, "pid_start", (json_int_t)l->pid_start_ticks, "gpu_req",
                     l->gpu_req, "gpu", l->gpu, "bytes", (json_int_t)l->bytes, "priority",
                     l->priority, "ttl_s", l->ttl_s, "state", gc_lease_state_name(l->state), "seq",
                     (json_int_t)l->seq, "evicted", evicted);
}

json_t *gc_coord_resident_record(const struct gc_resident *r, const json_t *registration,
                                 const char *owner)
{
    return json_pack("{s:s, s:s, s:O?, s:s, s:s, s:b, s:I, s:I, s:i, s:I, s:I, s:I, s:s, s:s, "
                     "s:o}",
                     "op", "resident", "name", r->name, "spec", registration, "owner", owner,
                     "state", gc_resident_state_name(r->state), "evicted", r->evicted, "bytes",
                     (json_int_t)r->bytes, "floor", (json_int_t)r->floor_bytes, "pid", (int)r->pid,
                     "pid_start", (json_int_t)r->pid_start_ticks, "unloads", (json_int_t)r->unloads,
                     "reloads", (json_int_t)r->reloads, "reason", r->reason, "level",
                     gc_resident_level_name(r, gc_resident_level(r)), "levels", gc_view_levels(r));
}

static json_t *resident_record(struct gc_coord *coord, const struct gc_resident *r)
{
    const struct gc_resident_ext *ext = &coord->ext[gc_coord_resident_index(coord, r)];

    return gc_coord_resident_record(r, ext->registration, ext->owner);
}

int gc_coord_journal_locked(struct gc_coord *coord, json_t *rec, bool important)
{
    int rc = rec == NULL ? GC_ENOMEM : gc_store_append(coord->store, rec, important);

    json_decref(rec);
    if (rc == 0)
        return 0;
    coord->counters.journal_errors++;
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

    json_array_append_new(records,
                          json_pack("{s:s, s:I, s:I}", "op", "ids", "next_id", (json_int_t)next_id,
                                    "next_seq", (json_int_t)ledger->next_seq));
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        if (ledger->residents[i].in_use)
            json_array_append_new(records, resident_record(coord, &ledger->residents[i]));
    }
    for (unsigned i = 0; i < ledger->nleases; i++) {
        if (ledger->leases[i]->kind == GC_KIND_HOLDER)
            json_array_append_new(records, lease_record(ledger->leases[i]));
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
    coord->counters.journal_compactions++;
    coord->compact_retry_ms = 0;
    if (coord->journal_behind && coord->counters.journal_errors == errors_at_begin) {
        coord->journal_behind = false;
        gc_info("the journal in '%s' is complete again", coord->config->state_dir);
    }
}

/* Synchronous, under the lock: at recovery, when nothing else runs yet. */
static void compact_locked(struct gc_coord *coord)
{
    json_t *records = state_records_locked(coord);
    uint64_t errors = coord->counters.journal_errors;

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
    job->errors_at_begin = coord->counters.journal_errors;
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

int gc_coord_journal_lease_locked(struct gc_coord *coord, const struct gc_lease *l)
{
    return gc_coord_journal_locked(coord, lease_record(l), false);
}

int gc_coord_journal_resident_locked(struct gc_coord *coord, const struct gc_resident *r)
{
    return gc_coord_journal_locked(coord, resident_record(coord, r), true);
}

/* Lease ids reserved by one "ids" record: one small write per this many leases. */
#define IDS_RESERVE_BLOCK 1024

int gc_coord_ids_reserve_locked(struct gc_coord *coord)
{
    uint64_t next = coord->ledger->next_id, mark;
    int rc;

    if (next > GC_LEASE_ID_LAST)
        return GC_ELIMIT;
    if (next < coord->ids_reserved)
        return 0;
    mark = GC_LEASE_ID_LAST + 1 - next > IDS_RESERVE_BLOCK ? next + IDS_RESERVE_BLOCK
                                                           : GC_LEASE_ID_LAST + 1;
    rc = gc_coord_journal_locked(coord,
                                 json_pack("{s:s, s:I, s:I}", "op", "ids", "next_id",
                                           (json_int_t)mark, "next_seq",
                                           (json_int_t)coord->ledger->next_seq),
                                 false);
    if (rc == 0)
        coord->ids_reserved = mark;
    return rc;
}

/* ---- process watchers ---- */

static struct gc_watch *watch_find(struct gc_coord *coord, pid_t pid)
{
    for (unsigned i = 0; i < coord->nwatches; i++) {
        if (coord->watches[i].pid == pid)
            return &coord->watches[i];
    }
    return NULL;
}

const struct gc_watch *gc_coord_watch_locked(struct gc_coord *coord, pid_t pid)
{
    struct gc_watch *w;
    struct epoll_event ev = {.events = EPOLLIN};

    if (pid <= 0)
        return NULL;
    w = watch_find(coord, pid);
    if (w != NULL)
        return w;
    if (coord->nwatches >= GC_WATCH_MAX)
        return NULL;
    w = &coord->watches[coord->nwatches++];
    w->pid = pid;
    w->start_ticks = gc_proc_start_ticks(pid);
    w->fd = gc_pidfd_open(pid);
    if (w->fd >= 0) {
        ev.data.u64 = (uint64_t)pid;
        if (epoll_ctl(coord->epoll_fd, EPOLL_CTL_ADD, w->fd, &ev) < 0) {
            close(w->fd);
            w->fd = -1; /* falls back to polling in the engine loop */
        }
    }
    return w;
}

const struct gc_watch *gc_coord_watch_alive_locked(struct gc_coord *coord, pid_t pid)
{
    struct gc_watch *w = watch_find(coord, pid);

    /* A watched pid's exit is delivered by its pidfd: no need to read /proc again. */
    if (w != NULL && w->fd >= 0)
        return w;
    if (!gc_proc_alive(pid))
        return NULL;
    return gc_coord_watch_locked(coord, pid);
}

bool gc_coord_something_waits_locked(struct gc_coord *coord)
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

static void watch_remove(struct gc_coord *coord, struct gc_watch *w)
{
    if (w->fd >= 0) {
        epoll_ctl(coord->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
        close(w->fd);
    }
    *w = coord->watches[--coord->nwatches];
}

void gc_coord_watch_release_locked(struct gc_coord *coord, pid_t pid)
{
    struct gc_watch *w = watch_find(coord, pid);

    if (w != NULL && !pid_in_use_locked(coord, pid))
        watch_remove(coord, w);
}

/* A watched process exited: its leases end, a resident it was is gone. from_pidfd: its
 * pidfd said so (the watch goes even if the pid is already reused: the pidfd stays
 * readable, and the engine would spin on it). */
static void pid_exited_locked(struct gc_coord *coord, pid_t pid, bool from_pidfd)
{
    struct gc_ledger *ledger = coord->ledger;
    struct gc_watch *w = watch_find(coord, pid);
    char reason[GC_REASON_MAX];
    double now = gc_real_s();

    snprintf(reason, sizeof(reason), "holder process %d exited", (int)pid);
    for (unsigned i = ledger->nleases; i-- > 0;) {
        if (ledger->leases[i]->pid == pid)
            gc_coord_lease_end_locked(coord, ledger->leases[i], GC_LEASE_EXPIRED, GC_EUNAVAIL,
                                      reason);
    }
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        if (!r->in_use || r->pid != pid || r->busy)
            continue; /* a running job sees the exit itself */
        if (r->state == GC_RES_GONE)
            continue; /* known already (a kill by escalation): keep its reason */
        if (strcmp(r->protocol, "process") == 0) {
            if (r->state == GC_RES_LOADED) {
                r->evicted = false;
                r->unloaded_since_ms = gc_mono_ms();
            }
            r->state = GC_RES_UNLOADED;
            r->level = gc_resident_nlevels(r) - 1; /* nothing is left */
        } else {
            r->state = GC_RES_GONE;
        }
        snprintf(r->reason, sizeof(r->reason), "process %d exited", (int)pid);
        gc_events_add(&coord->events, now, "resident_exited", r->name,
                      "process %d exited; resident is now %s", (int)pid,
                      gc_resident_state_name(r->state));
        gc_coord_journal_resident_locked(coord, r);
    }
    w = watch_find(coord, pid);
    if (w != NULL && (from_pidfd || !gc_proc_alive(pid)))
        watch_remove(coord, w);
}

/* ---- leases ---- */

void gc_coord_lease_end_locked(struct gc_coord *coord, struct gc_lease *lease,
                               enum gc_lease_state state, int error, const char *reason)
{
    int64_t now = gc_mono_ms();
    pid_t pid = lease->pid;
    bool holder = lease->kind == GC_KIND_HOLDER;
    const struct gc_lease *h;

    h = gc_ledger_lease_end(coord->ledger, lease, state, error, reason, now);
    if (holder) {
        gc_coord_journal_locked(coord,
                                json_pack("{s:s, s:s, s:s}", "op", "lend", "id", h->id, "state",
                                          gc_lease_state_name(state)),
                                false);
        if (state == GC_LEASE_RELEASED)
            coord->counters.leases_released++;
        else if (state == GC_LEASE_EXPIRED)
            coord->counters.leases_expired++;
        else if (state == GC_LEASE_FAILED)
            coord->counters.leases_failed++;
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
        gc_coord_watch_release_locked(coord, pid);
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
    gc_coord_lease_end_locked(coord, l, GC_LEASE_FAILED, GC_EJOURNAL, why);
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
                if (gc_coord_journal_locked(coord, lease_record(l), false) < 0) {
                    refuse_unjournaled_locked(coord, l, "grant");
                    break;
                }
                coord->counters.leases_granted++;
                if (l->nevicted > 0)
                    coord->counters.oom_avoided++;
                gc_hist_add(&coord->grant_wait_s, waited);
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
            coord->counters.leases_refused++;
            coord->counters.leases_failed++;
            if (h != NULL) {
                gc_coord_journal_locked(
                    coord,
                    json_pack("{s:s, s:s, s:s}", "op", "lend", "id", h->id, "state", "failed"),
                    false);
                gc_events_add(&coord->events, now, "lease_refused", h->id, "%s: %s", h->holder,
                              h->reason);
                if (h->pid > 0)
                    gc_coord_watch_release_locked(coord, h->pid);
            }
            break;
        case GC_ACT_EXPIRED:
            h = gc_ledger_lease_lookup(ledger, a->lease_id);
            coord->counters.leases_expired++;
            if (h != NULL) {
                gc_coord_journal_locked(
                    coord,
                    json_pack("{s:s, s:s, s:s}", "op", "lend", "id", h->id, "state", "expired"),
                    false);
                gc_events_add(&coord->events, now, "lease_expired", h->id, "%s: %s", h->holder,
                              h->reason);
                if (h->pid > 0)
                    gc_coord_watch_release_locked(coord, h->pid);
            }
            break;
        case GC_ACT_PREPARING:
            /* Its evictions (the next actions) see it gone and are not started. */
            if (l != NULL && l->kind == GC_KIND_HOLDER &&
                gc_coord_journal_locked(coord, lease_record(l), false) < 0)
                refuse_unjournaled_locked(coord, l, "evictions");
            break;
        case GC_ACT_UNLOAD:
            if (r == NULL)
                break;
            /* Never unload what the journal does not know is unloading: a restart would
             * believe it loaded and never restore it. Its lease cannot have the room. */
            if ((a->lease_id[0] && l == NULL) || gc_coord_journal_resident_locked(coord, r) < 0) {
                r->state = GC_RES_LOADED;
                r->busy = false;
                if (l != NULL)
                    refuse_unjournaled_locked(coord, l, "evictions");
                break;
            }
            gc_events_add(&coord->events, now, "resident_unloading", r->name,
                          "for %s (%s needed on GPU %u)", a->lease_id,
                          l ? gc_size_format(l->bytes, b, sizeof(b)) : "?", a->gpu);
            coord->jobs_running++;
            gc_job_unload_spawn(coord, r->name, a->lease_id);
            break;
        case GC_ACT_RELOAD:
            if (r == NULL)
                break;
            /* Not asked for until journaled: it stays unloaded, and the scheduler tries
             * again; a demand waiting for it is told why. */
            if (gc_coord_journal_resident_locked(coord, r) < 0) {
                r->state = GC_RES_UNLOADED;
                r->busy = false;
                if (l != NULL)
                    refuse_unjournaled_locked(coord, l, "reload");
                break;
            }
            gc_events_add(&coord->events, now, "resident_reloading", r->name, "%s",
                          a->lease_id[0] ? "on demand" : "restoring what was evicted");
            coord->jobs_running++;
            gc_job_reload_spawn(coord, r->name);
            break;
        case GC_ACT_DRAINING:
            gc_events_add(&coord->events, now, "resident_draining", a->resident,
                          "%s waits for %u request(s) in flight (at most %.0f s)", a->lease_id,
                          r ? r->uses : 0, r ? r->drain_timeout_s : 0.0);
            break;
        case GC_ACT_DEMAND:
            coord->counters.demands++;
            gc_events_add(&coord->events, now, "resident_overdue", a->resident,
                          "unloaded longer than max_unloaded_s: reload goes first");
            break;
        case GC_ACT_DEMAND_MET:
            break;
        case GC_ACT_RESIZED:
            /* The growth was granted: the lease holds more, as the journal must say. */
            if (l == NULL)
                break;
            gc_coord_journal_locked(coord, lease_record(l), false);
            coord->counters.lease_growths++;
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

void gc_coord_read_nvml(struct gc_coord *coord, struct gc_nvml_reading *r)
{
    struct gc_gpu_proc procs[GC_SNAPSHOT_PROCS_MAX];

    r->taken_ms = gc_mono_ms();
    r->ngpus = coord->ledger->ngpus;
    for (unsigned g = 0; g < r->ngpus; g++) {
        struct gc_gpu_info info;
        unsigned n = 0;
        r->ok[g] = gc_nvml_device_memory(coord->nvml, g, &info) == 0 &&
                   gc_nvml_processes(coord->nvml, g, procs, GC_SNAPSHOT_PROCS_MAX, &n) == 0;
        if (!r->ok[g])
            continue;
        /* Memory not free is in use, whether a process or the driver holds it. */
        r->used_bytes[g] = info.total_bytes - info.free_bytes;
        r->free_bytes[g] = info.free_bytes;
        r->nprocs[g] = n;
        for (unsigned i = 0; i < n; i++) {
            r->procs[g][i].pid = procs[i].pid;
            r->procs[g][i].used_bytes = procs[i].used_bytes;
            /* A host pid seen from a container: the ledger's attribution needs to know. */
            r->procs[g][i].absent = !gc_proc_exists((pid_t)procs[i].pid);
        }
        gc_ancestry_fill(r->procs[g], n);
    }
}

struct gc_nvml_reading *gc_coord_reading_get(struct gc_coord *coord)
{
    struct gc_nvml_reading *r = NULL;

    pthread_mutex_lock(&coord->readings_lock);
    if (coord->nspare_readings > 0)
        r = coord->spare_readings[--coord->nspare_readings];
    pthread_mutex_unlock(&coord->readings_lock);
    return r != NULL ? r : malloc(sizeof(*r));
}

void gc_coord_reading_put(struct gc_coord *coord, struct gc_nvml_reading *r)
{
    pthread_mutex_lock(&coord->readings_lock);
    if (r != NULL && coord->nspare_readings < sizeof(coord->spare_readings) / sizeof(r)) {
        coord->spare_readings[coord->nspare_readings++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&coord->readings_lock);
    free(r);
}

/* Applies a reading unless a later one is already in (a request thread reads before it
 * takes the lock: another thread may have read and applied since). */
static void apply_reading_locked(struct gc_coord *coord, const struct gc_nvml_reading *r)
{
    coord->counters.nvml_readings++;
    for (unsigned g = 0; g < r->ngpus; g++) {
        if (!r->ok[g]) {
            if (coord->counters.nvml_errors++ % 1000 == 0)
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

static void refresh_locked(struct gc_coord *coord)
{
    gc_coord_read_nvml(coord, coord->reading);
    apply_reading_locked(coord, coord->reading);
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
    for (unsigned i = 0; i < coord->nwatches; i++) {
        if (coord->watches[i].fd < 0 && idle < next)
            next = idle; /* no pidfd: poll liveness */
    }
    /* The journal lacks a change: retry the compaction that writes it (one under way
     * wakes the loop when it ends). */
    if (coord->journal_behind && !gc_store_compacting(coord->store) &&
        coord->compact_retry_ms < next)
        next = coord->compact_retry_ms > now ? coord->compact_retry_ms : now;
    for (unsigned i = 0; i < GC_USES_MAX; i++) {
        if (coord->uses[i].in_use && coord->uses[i].expires_ms + 1 < next)
            next = coord->uses[i].expires_ms + 1;
    }
    return next;
}

static __thread bool in_engine_thread;
static int64_t engine_deadline_ms;

static void settle_locked(struct gc_coord *coord)
{
    struct gc_actions *acts = &coord->actions;
    int64_t now;

    do {
        now = gc_mono_ms();
        gc_coord_uses_settle_locked(coord, now);
        gc_sched_step(coord->ledger, now, acts);
        apply_actions_locked(coord, acts);
    } while (acts->truncated);
    compact_maybe_locked(coord, now);
    pthread_cond_broadcast(&coord->changed);
    if (!in_engine_thread && next_deadline_locked(coord, now) < engine_deadline_ms)
        gc_coord_wake(coord);
}

void gc_coord_kick_locked(struct gc_coord *coord)
{
    refresh_locked(coord);
    settle_locked(coord);
}

void gc_coord_kick_with_locked(struct gc_coord *coord, const struct gc_nvml_reading *r)
{
    apply_reading_locked(coord, r);
    settle_locked(coord);
}

void gc_coord_wake(struct gc_coord *coord)
{
    uint64_t one = 1;

    if (write(coord->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is already nonzero: the engine will wake anyway */
    }
}

bool gc_coord_wait_locked(struct gc_coord *coord, int64_t deadline_ms)
{
    struct timespec abstime;
    int64_t left = deadline_ms - gc_mono_ms();

    if (left <= 0 || coord->stopping)
        return false;
    gc_abstime_after_ms(&abstime, left);
    pthread_cond_timedwait(&coord->changed, &coord->lock, &abstime);
    return !coord->stopping && gc_mono_ms() < deadline_ms;
}

bool gc_coord_wait_client_locked(struct gc_coord *coord, int64_t deadline_ms,
                                 const struct gc_waiter *waiter)
{
    int64_t slice;

    if (waiter != NULL && waiter->gone(waiter->ctx))
        return false;
    /* Nothing wakes a wait when its client leaves: look again after a slice. */
    slice = gc_mono_ms() + GC_WAITER_POLL_MS;
    gc_coord_wait_locked(coord, slice < deadline_ms ? slice : deadline_ms);
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
    if (coord->ledger == NULL || coord->reading == NULL) {
        free(coord->ledger);
        free(coord->reading);
        free(coord);
        return GC_ENOMEM;
    }
    coord->config = config;
    coord->nvml = nvml;
    coord->store = store;
    coord->started_ms = gc_mono_ms();
    snprintf(coord->driver_version, sizeof(coord->driver_version), "%s",
             gc_nvml_driver_version(nvml));
    gc_ledger_init(coord->ledger, &lcfg);
    gc_events_init(&coord->events);
    pthread_mutex_init(&coord->lock, NULL);
    pthread_mutex_init(&coord->readings_lock, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&coord->changed, &cattr);
    pthread_condattr_destroy(&cattr);
    coord->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    coord->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
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
    pthread_mutex_lock(&coord->lock);
    refresh_locked(coord);
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
    for (unsigned i = 0; i < coord->nwatches; i++) {
        if (coord->watches[i].fd >= 0)
            close(coord->watches[i].fd);
    }
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++)
        json_decref(coord->ext[i].registration);
    if (coord->epoll_fd >= 0)
        close(coord->epoll_fd);
    if (coord->wake_fd >= 0)
        close(coord->wake_fd);
    pthread_cond_destroy(&coord->changed);
    pthread_mutex_destroy(&coord->lock);
    for (unsigned i = 0; i < coord->nspare_readings; i++)
        free(coord->spare_readings[i]);
    pthread_mutex_destroy(&coord->readings_lock);
    gc_events_free(&coord->events);
    gc_ledger_free(coord->ledger);
    free(coord->ledger);
    free(coord->reading);
    free(coord);
}

void gc_coord_run(struct gc_coord *coord, volatile int *stop)
{
    struct epoll_event evs[64];

    in_engine_thread = true;
    while (!*stop) {
        int64_t now = gc_mono_ms(), timeout;
        int n;

        pthread_mutex_lock(&coord->lock);
        engine_deadline_ms = next_deadline_locked(coord, now);
        pthread_mutex_unlock(&coord->lock);
        timeout = engine_deadline_ms - now;
        if (timeout < 0)
            timeout = 0;
        /* The watchdog pings from here, so a stuck engine stops them. */
        timeout = gc_notify_watchdog_tick(now, timeout);
        n = epoll_wait(coord->epoll_fd, evs, 64, (int)timeout);
        if (n < 0 && errno != EINTR) {
            gc_error("epoll_wait: %s", strerror(errno));
            gc_sleep_ms(100);
        }
        pthread_mutex_lock(&coord->lock);
        engine_deadline_ms = 0; /* awake: nobody needs to wake us */
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == 0) {
                uint64_t v;
                if (read(coord->wake_fd, &v, sizeof(v)) < 0) {
                    /* already drained */
                }
            } else {
                pid_exited_locked(coord, (pid_t)evs[i].data.u64, true);
            }
        }
        for (unsigned i = coord->nwatches; i-- > 0;) {
            if (coord->watches[i].fd < 0 && !gc_proc_alive(coord->watches[i].pid))
                pid_exited_locked(coord, coord->watches[i].pid, false);
        }
        gc_coord_kick_locked(coord);
        pthread_mutex_unlock(&coord->lock);
    }
    in_engine_thread = false;
}

/* ---- crash recovery ---- */

struct recover_state {
    json_t *residents; /* name -> last record */
    json_t *leases;    /* id -> last record */
    json_int_t next_id, next_seq;
};

static int recover_record(void *ctx, json_t *rec)
{
    struct recover_state *st = ctx;
    const char *op = json_string_value(json_object_get(rec, "op"));
    const char *key;

    if (op == NULL)
        return 0;
    if (strcmp(op, "resident") == 0 || strcmp(op, "rdel") == 0) {
        key = json_string_value(json_object_get(rec, "name"));
        if (key == NULL)
            return 0;
        if (strcmp(op, "resident") == 0)
            json_object_set(st->residents, key, rec);
        else
            json_object_del(st->residents, key);
    } else if (strcmp(op, "lease") == 0 || strcmp(op, "lend") == 0) {
        key = json_string_value(json_object_get(rec, "id"));
        if (key == NULL)
            return 0;
        /* Ids are never reused, ended leases included (an id past the last one, which
         * strtoll saturates, leaves none). */
        const char *dash = strrchr(key, '-');
        json_int_t n = dash ? (json_int_t)strtoll(dash + 1, NULL, 10) : 0;
        if (n > GC_LEASE_ID_LAST)
            n = GC_LEASE_ID_LAST;
        if (n >= st->next_id)
            st->next_id = n + 1;
        if (strcmp(op, "lease") == 0)
            json_object_set(st->leases, key, rec);
        else
            json_object_del(st->leases, key);
    } else if (strcmp(op, "ids") == 0) {
        /* A high-water mark: records lost after it (a full disk) cannot lower it. */
        json_int_t next_id = json_integer_value(json_object_get(rec, "next_id"));
        json_int_t next_seq = json_integer_value(json_object_get(rec, "next_seq"));
        if (next_id > st->next_id)
            st->next_id = next_id;
        if (next_seq > st->next_seq)
            st->next_seq = next_seq;
    }
    return 0;
}

static bool holder_alive(pid_t pid, uint64_t start_ticks)
{
    if (!gc_proc_alive(pid))
        return false;
    return start_ticks == 0 || gc_proc_start_ticks(pid) == start_ticks;
}

static void recover_resident_locked(struct gc_coord *coord, const json_t *rec, unsigned *ret_n)
{
    const char *name = json_string_value(json_object_get(rec, "name"));
    const json_t *spec = json_object_get(rec, "spec");
    struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
    struct gc_jerr err;
    enum gc_resident_state state = GC_RES_LOADED;
    const char *state_name = json_string_value(json_object_get(rec, "state"));
    pid_t pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
    uint64_t pid_start = (uint64_t)json_integer_value(json_object_get(rec, "pid_start"));
    const char *owner = json_string_value(json_object_get(rec, "owner"));
    const char *level_name;
    int level;
    struct gc_caller registrant;

    /* Its registration was checked when it was made; it keeps its owner. */
    gc_caller_trusted(owner ? owner : "", &registrant);
    /* A resident also declared in the config keeps the config's spec. */
    if (r == NULL) {
        if (!json_is_object(spec) ||
            gc_coord_register_locked(coord, &registrant, spec, &err, &r) < 0) {
            gc_warn("journal: dropping resident '%s': %s", name ? name : "?",
                    json_is_object(spec) ? err.msg : "no registration");
            return;
        }
    }
    if (state_name != NULL)
        gc_resident_state_parse(state_name, &state);
    r->evicted = json_is_true(json_object_get(rec, "evicted"));
    r->bytes = (uint64_t)json_integer_value(json_object_get(rec, "bytes"));
    r->floor_bytes = (uint64_t)json_integer_value(json_object_get(rec, "floor"));
    /* Its levels come with its registration; where it was among them from the record
     * (older journals: loaded or all the way, as its state says). */
    level_name = json_string_value(json_object_get(rec, "level"));
    level = level_name ? gc_resident_level_find(r, level_name) : -1;
    r->level = level > 0 ? (unsigned)level : 0;
    r->unloads = (unsigned)json_integer_value(json_object_get(rec, "unloads"));
    r->reloads = (unsigned)json_integer_value(json_object_get(rec, "reloads"));
    /* The journaled pid is the one that was running (a process resident's is learned
     * when it starts); its journaled start time tells it from a later process. */
    if (pid > 0 && pid != r->pid) {
        pid_t old = r->pid;
        r->pid = pid;
        gc_coord_watch_release_locked(coord, old);
    }
    if (pid > 0)
        r->pid_start_ticks = pid_start;
    if (r->pid > 0 && !holder_alive(r->pid, r->pid_start_ticks)) {
        pid_t dead = r->pid;
        if (strcmp(r->protocol, "process") == 0) {
            if (state == GC_RES_LOADED)
                r->evicted = false; /* it was not evicted: it died */
            state = GC_RES_UNLOADED;
            r->level = gc_resident_nlevels(r) - 1;
            r->pid = 0; /* its start command brings it back */
            r->pid_start_ticks = 0;
        } else {
            state = GC_RES_GONE;
        }
        snprintf(r->reason, sizeof(r->reason), "process %d exited while the coordinator was down",
                 (int)dead);
        gc_coord_watch_release_locked(coord, dead);
    } else if (r->pid > 0) {
        gc_coord_watch_locked(coord, r->pid);
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
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *holder = json_string_value(json_object_get(rec, "holder"));
    const char *state = json_string_value(json_object_get(rec, "state"));
    const char *owner = json_string_value(json_object_get(rec, "owner"));
    json_t *evicted = json_object_get(rec, "evicted");
    size_t i;
    json_t *v;

    if (id == NULL || holder == NULL || state == NULL)
        return;
    memset(&l, 0, sizeof(l));
    snprintf(l.id, sizeof(l.id), "%s", id);
    snprintf(l.holder, sizeof(l.holder), "%s", holder);
    snprintf(l.owner, sizeof(l.owner), "%s", owner ? owner : ""); /* "" in older journals */
    l.kind = GC_KIND_HOLDER;
    l.pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
    l.pid_start_ticks = (uint64_t)json_integer_value(json_object_get(rec, "pid_start"));
    l.gpu_req = (int)json_integer_value(json_object_get(rec, "gpu_req"));
    l.gpu = (int)json_integer_value(json_object_get(rec, "gpu"));
    l.bytes = (uint64_t)json_integer_value(json_object_get(rec, "bytes"));
    l.priority = (int)json_integer_value(json_object_get(rec, "priority"));
    l.evict_priority = l.priority;
    l.ttl_s = json_number_value(json_object_get(rec, "ttl_s"));
    l.seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
    gc_lease_state_parse(state, &l.state);
    if (l.state == GC_LEASE_PREPARING) {
        l.state = GC_LEASE_QUEUED; /* evictions are decided afresh */
        l.gpu = -1;
    }
    json_array_foreach(evicted, i, v)
    {
        if (l.nevicted < GC_EVICT_MAX && json_is_string(v))
            snprintf(l.evicted[l.nevicted++], sizeof(l.evicted[0]), "%s", json_string_value(v));
    }
    if (l.gpu_req >= (int)coord->ledger->ngpus || l.gpu >= (int)coord->ledger->ngpus ||
        (l.pid > 0 && !holder_alive(l.pid, l.pid_start_ticks))) {
        gc_events_add(&coord->events, gc_real_s(), "lease_expired", l.id,
                      "%s: holder gone while the coordinator was down", l.holder);
        gc_coord_journal_locked(
            coord, json_pack("{s:s, s:s, s:s}", "op", "lend", "id", l.id, "state", "expired"),
            false);
        coord->counters.leases_expired++;
        (*expired)++;
        return;
    }
    l.created_ms = l.heartbeat_ms = gc_mono_ms();
    if (l.state == GC_LEASE_GRANTED)
        l.granted_ms = l.created_ms;
    if (gc_ledger_lease_adopt(coord->ledger, &l) == 0) {
        gc_coord_watch_locked(coord, l.pid);
        (*adopted)++;
    }
}

/* Residents whose unload or reload the crash cut short: ask them what they hold.
 * Called with the lock held; drops it around the questions (nothing else runs yet). */
static void probe_interrupted_locked(struct gc_coord *coord)
{
    struct gc_ledger *ledger = coord->ledger;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        struct gc_resident_spec spec;
        struct gc_adapter_result res = {0};
        const struct gc_adapter *adapter;
        char name[GC_NAME_MAX + 1];
        int rc = -1;

        if (!r->in_use || !r->busy)
            continue;
        spec = coord->ext[i].spec;
        spec.pid = r->pid;
        adapter = gc_adapter_find(r->protocol);
        snprintf(name, sizeof(name), "%s", r->name);
        pthread_mutex_unlock(&coord->lock);
        if (adapter != NULL)
            rc = adapter->health(&spec, &res);
        pthread_mutex_lock(&coord->lock);
        r = gc_ledger_resident_find(ledger, name);
        if (r == NULL)
            continue;
        r->busy = false;
        if (rc == 0 && res.models_loaded == 1) {
            /* Loaded, or part-way down at a level it names (then still to be restored). */
            int level = res.level[0] ? gc_resident_level_find(r, res.level) : 0;
            if (level > 0) {
                r->level = (unsigned)level;
            } else {
                r->state = GC_RES_LOADED;
                r->level = 0;
                r->evicted = false;
            }
        }
        gc_events_add(&coord->events, gc_real_s(), "resident_probed", name,
                      "step cut short by a restart; it reports %s",
                      rc < 0                   ? "nothing (unreachable)"
                      : res.models_loaded == 1 ? "its models loaded"
                      : res.models_loaded == 0 ? "its models unloaded"
                                               : "no model state");
        gc_coord_journal_resident_locked(coord, r);
    }
}

int gc_coord_recover(struct gc_coord *coord, char *errbuf, size_t errbuf_len)
{
    struct recover_state st = {json_object(), json_object(), 0, 0};
    unsigned skipped = 0, nres = 0, adopted = 0, expired = 0;
    const char *key;
    json_t *rec;
    size_t i;
    int rc;

    rc = gc_store_replay(coord->store, recover_record, &st, &skipped);
    if (rc < 0) {
        snprintf(errbuf, errbuf_len, "cannot read the journal in '%s'", coord->config->state_dir);
        json_decref(st.residents);
        json_decref(st.leases);
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
        if (gc_coord_register_locked(coord, &config_file, rec, &err, &r) < 0) {
            coord->starting = false;
            pthread_mutex_unlock(&coord->lock);
            snprintf(errbuf, errbuf_len, "config: resident '%s': %s",
                     json_string_value(json_object_get(rec, "name")), err.msg);
            json_decref(st.residents);
            json_decref(st.leases);
            return GC_EINVAL;
        }
    }
    if (st.next_id > 0 && (uint64_t)st.next_id > coord->ledger->next_id)
        coord->ledger->next_id = (uint64_t)st.next_id;
    if (st.next_seq > 0 && (uint64_t)st.next_seq > coord->ledger->next_seq)
        coord->ledger->next_seq = (uint64_t)st.next_seq;
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
    gc_coord_kick_locked(coord);
    pthread_mutex_unlock(&coord->lock);
    json_decref(st.residents);
    json_decref(st.leases);
    return 0;
}
