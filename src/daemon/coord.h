/*
 * coord.h - the coordinator engine: the ledger under one lock, NVML readings,
 * the journal, events and counters, the jobs that unload and reload residents,
 * and the watchers of holder and resident processes.
 *
 * Threads: the main thread runs gc_coord_run() (pidfds, timers, idle NVML
 * polling); HTTP threads call the operations below; each unload or reload runs
 * in a job thread. Everything that reads or changes the ledger holds
 * coord->lock; waits use coord->changed (CLOCK_MONOTONIC) with deadlines.
 */
#ifndef GC_COORD_H
#define GC_COORD_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/jsonx.h"
#include "coord/ledger.h"
#include "coord/sched.h"
#include "coord/verify.h"
#include "daemon/adapter.h"
#include "daemon/caller.h"
#include "daemon/config.h"
#include "daemon/events.h"
#include "daemon/jobs.h"
#include "daemon/store.h"
#include "gpu/gpu.h"

/* Processes watched through pidfds at once. */
#define GC_WATCH_MAX    (GC_LEASES_MAX + GC_RESIDENTS_MAX)
#define GC_HIST_BUCKETS 12

/*
 * The counters, in one table: X(field, help). Each is a field of struct gc_counters,
 * a member of /v1/status's "counters" object and the metric gpucoord_FIELD_total, so
 * the three cannot drift.
 */
#define GC_COUNTERS_MAP(X)                                                                         \
    X(leases_granted, "Leases granted.")                                                           \
    X(leases_failed, "Leases that failed (refused or could not free).")                            \
    X(leases_refused, "Leases refused because they can never fit.")                                \
    X(leases_expired, "Leases ended by TTL or holder exit.")                                       \
    X(leases_released, "Leases released by their holder.")                                         \
    X(unloads, "Resident unloads verified by NVML.")                                               \
    X(reloads, "Resident reloads.")                                                                \
    X(unload_failures, "Unloads that failed or timed out.")                                        \
    X(reload_failures, "Reload attempts that failed.")                                             \
    X(verify_timeouts, "Unloads NVML did not confirm in time.")                                    \
    X(cleanups, "Cleanup requests sent to residents.")                                             \
    X(kills, "Residents killed for not freeing memory.")                                           \
    X(oom_avoided, "Leases granted after making room (an OOM avoided).")                           \
    X(swaps, "Residents evicted for a lease and restored afterwards.")                             \
    X(demands, "Requests from residents for their memory back.")                                   \
    X(lease_resizes, "Requests to resize a lease.")                                                \
    X(lease_growths, "Lease growths granted.")                                                     \
    X(journal_errors, "Failed journal writes.")                                                    \
    X(journal_compactions, "Journal rewrites (compactions).")                                      \
    X(nvml_errors, "Failed NVML readings.")                                                        \
    X(nvml_readings, "NVML readings applied to the ledger (how fast the engine polls).")

struct gc_counters {
#define GC_COUNTER_FIELD(name, help) uint64_t name;
    GC_COUNTERS_MAP(GC_COUNTER_FIELD)
#undef GC_COUNTER_FIELD
};

struct gc_histogram {
    uint64_t counts[GC_HIST_BUCKETS + 1];
    double sum;
    uint64_t count;
};

/* Where a resident's unload or reload stands (steps.c). */
enum gc_step_phase {
    GC_STEP_IDLE,
    GC_STEP_UNLOAD_ASK,     /* a job asks it to unload */
    GC_STEP_UNLOAD_VERIFY,  /* NVML must show the bytes freed by deadline_ms */
    GC_STEP_CLEANUP,        /* a job asks it to clean up */
    GC_STEP_KILL,           /* a job signals its process */
    GC_STEP_KILL_WAIT,      /* the driver must release its memory by deadline_ms */
    GC_STEP_RELOAD_ROOM,    /* NVML must show room for it by deadline_ms */
    GC_STEP_RELOAD_ASK,     /* a job asks it to reload */
    GC_STEP_RELOAD_BACKOFF, /* the next attempt at deadline_ms */
    GC_STEP_RELOAD_VERIFY,  /* NVML must show its bytes by deadline_ms */
    GC_STEP_RELOAD_HEALTH,  /* a job asks what it holds (device attribution) */
};

struct gc_step {
    enum gc_step_phase phase;
    uint64_t id; /* this step's number; its jobs carry it */
    bool unloading;
    char lease_id[GC_LEASE_ID_MAX]; /* unload: the lease it serves ("" by request) */
    struct gc_resident_spec spec;   /* what its jobs need */
    unsigned from, to;              /* levels */
    struct gc_verify v;
    uint64_t full, need, freed;
    int64_t lag_ms;
    int64_t t0, t1, t2; /* began; asked (unload) / found room (reload); answered */
    int64_t deadline_ms;
    int64_t since_ms; /* only a reading taken after this judges the phase done */
    unsigned attempt;
    bool cleaned;
    bool pid_exited; /* its process's exit was seen while the step ran */
    char why[GC_REASON_MAX];
    /* The last step that ended, for a request waiting on it. */
    uint64_t outcome_id;
    int outcome_rc;
    char outcome_why[GC_REASON_MAX];
};

/* Daemon-side data of one resident slot (same index as ledger->residents). */
struct gc_resident_ext {
    struct gc_resident_spec spec;
    struct gc_step step;
    json_t *registration;     /* the validated registration, for the journal */
    char owner[GC_OWNER_MAX]; /* the caller that registered it (gc_caller key) */
};

struct gc_watch {
    pid_t pid;
    int fd;
    uint64_t start_ticks; /* identifies this process, not a later one with its pid */
};

/* Requests in flight at once through residents (gpucoord proxy). */
#define GC_USES_MAX          1024
#define GC_USE_TTL_DEFAULT_S 30.0
#define GC_USE_TTL_MAX_S     3600.0

/* One request in flight through a resident (coord_uses.c). */
struct gc_use {
    bool in_use;
    char id[GC_LEASE_ID_MAX];
    char resident[GC_NAME_MAX + 1];
    char owner[GC_OWNER_MAX];
    double ttl_s;
    int64_t expires_ms; /* monotonic; renewed by its client */
};

/* One NVML reading of every GPU, taken without the lock. */
struct gc_nvml_reading {
    int64_t taken_ms; /* monotonic, when the reading began */
    unsigned ngpus;
    bool ok[GC_GPUS_MAX];
    uint64_t used_bytes[GC_GPUS_MAX], free_bytes[GC_GPUS_MAX];
    unsigned nprocs[GC_GPUS_MAX];
    struct gc_snapshot_proc procs[GC_GPUS_MAX][GC_SNAPSHOT_PROCS_MAX];
};

struct gc_coord {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    const struct gc_config *config;
    struct gc_ledger *ledger;
    struct gc_resident_ext ext[GC_RESIDENTS_MAX];
    struct gc_nvml *nvml;
    struct gc_store *store;
    struct gc_events events;
    struct gc_counters counters;
    struct gc_histogram grant_wait_s, unload_s, reload_s;
    int epoll_fd;
    int wake_fd;
    struct gc_watch watches[GC_WATCH_MAX];
    unsigned nwatches;
    unsigned jobs_running;
    struct gc_job *answers, **answers_tail; /* jobs' answers, for the engine loop */
    uint64_t next_step;
    uint64_t steps_ended;
    int64_t engine_read_ms; /* when the engine loop last read NVML */
    bool waits_hint; /* something waited at the last settle (read without the lock) */
    pthread_t engine_thread;
    bool engine_running;
    int64_t engine_deadline_ms; /* when the sleeping engine loop wakes (0: awake) */
    bool stopping;   /* shutting down: waits end, loops exit */
    bool recovering; /* replaying the journal: registrations skip the live-pid check */
    bool starting;   /* in gc_coord_recover: its final compaction records every change */
    /* A record could not be written: the journal lacks a change the ledger has, until
     * a compaction rewrites the whole state (retried from compact_retry_ms on). */
    bool journal_behind;
    int64_t compact_retry_ms;
    /* Lease ids below this are covered by the journal's high-water mark (an "ids"
     * record), so that a restart never issues one again, even if records were lost. */
    uint64_t ids_reserved;
    int64_t started_ms;
    char driver_version[96];
    struct gc_actions actions;       /* scratch for kicks (under the lock) */
    struct gc_nvml_reading *reading; /* scratch for kicks (under the lock) */
    /* Readings taken before the lock by request threads: kept for reuse (they are
     * large), under their own small lock. */
    pthread_mutex_t readings_lock;
    struct gc_nvml_reading *spare_readings[8];
    unsigned nspare_readings;
    struct gc_use uses[GC_USES_MAX];
    uint64_t next_use_id;
    /* The HTTP server, for its connection metrics; set (atomically) once it serves. */
    struct gc_http_server *http;
};

/* Histogram bucket bounds in seconds, shared by the three histograms. */
extern const double gc_hist_bounds[GC_HIST_BUCKETS];

/*
 * gc_coord_create: builds the engine over an opened NVML and store, adds every
 * GPU NVML reports (with the config's budgets and reserves). GC_EGPU if NVML
 * reports no GPU.
 */
int gc_coord_create(const struct gc_config *config, struct gc_nvml *nvml, struct gc_store *store,
                    struct gc_coord **ret_coord, char *errbuf, size_t errbuf_len);
/* Shutdown, first step: every wait in a request ends now (they answer what they have),
 * so that the HTTP server can stop. NULL is a no-op. */
void gc_coord_stop(struct gc_coord *coord);
/* Waits for running jobs (bounded), frees. NULL is a no-op. */
void gc_coord_destroy(struct gc_coord *coord);
/* Replays the journal (crash recovery: re-adopts leases whose holders live,
 * expires the others, restores residents left unloaded), registers the config's
 * residents, and compacts the journal. */
int gc_coord_recover(struct gc_coord *coord, char *errbuf, size_t errbuf_len);
/* The engine loop; returns when *stop becomes nonzero. */
void gc_coord_run(struct gc_coord *coord, volatile int *stop);
/* Reads NVML (without the lock) and settles with it: for views that show it. */
void gc_coord_refresh(struct gc_coord *coord);
/* Takes the lock with a fresh NVML reading in the ledger (read before the lock): for
 * an operation whose decisions must see the memory as it is now. */
void gc_coord_lock_fresh(struct gc_coord *coord);
/* Whether anything waited at the last settle (no lock; may be stale): whether an
 * operation that frees room should take a fresh reading for it. */
bool gc_coord_waits_hint(struct gc_coord *coord);
/* Wakes the engine loop (from any thread, any context). */
void gc_coord_wake(struct gc_coord *coord);

/* ---- Used by the API, the jobs and the views, with coord->lock held ---- */

/* Runs the steps and the scheduler until they settle, acts on what they decided
 * (journal, events, jobs), wakes waiters, and asks the engine loop for a fresh NVML
 * reading (read without the lock) to settle again with. */
void gc_coord_kick_locked(struct gc_coord *coord);
/* Reads every GPU through NVML into r (no lock needed: NVML is thread-safe). */
void gc_coord_read_nvml(struct gc_coord *coord, struct gc_nvml_reading *r);
/* A reading buffer for a request thread (reused; give it back with put). NULL: no memory. */
struct gc_nvml_reading *gc_coord_reading_get(struct gc_coord *coord);
void gc_coord_reading_put(struct gc_coord *coord, struct gc_nvml_reading *r);
/* gc_coord_kick_locked with a reading taken just before the lock. */
void gc_coord_kick_with_locked(struct gc_coord *coord, const struct gc_nvml_reading *r);
/* Ends an active lease: journal, event, counters, process watch. */
void gc_coord_lease_end_locked(struct gc_coord *coord, struct gc_lease *lease,
                               enum gc_lease_state state, int error, const char *reason);
/*
 * Appends a record to the journal (steals rec; NULL counts as a failed write).
 * 0, or GC_EJOURNAL when it could not be written. Then a change that can be refused
 * (a new lease, a grant, a registration, a deletion, an unload or reload not yet
 * asked for) must be undone and refused; a fact (a lease ended, a step's outcome) stays
 * in the ledger and reaches the journal with the next compaction, retried until one
 * succeeds. See docs/reliability.md.
 */
int gc_coord_journal_locked(struct gc_coord *coord, json_t *rec, bool important);
/* Writes a holder lease's state to the journal (0 or GC_EJOURNAL, as above). */
int gc_coord_journal_lease_locked(struct gc_coord *coord, const struct gc_lease *l);
/* Writes a resident's state to the journal (0 or GC_EJOURNAL, as above). */
int gc_coord_journal_resident_locked(struct gc_coord *coord, const struct gc_resident *r);
/* Makes sure the journal's high-water mark covers the next lease id before it is
 * issued. GC_ELIMIT when ids are exhausted (they never wrap), GC_EJOURNAL. */
int gc_coord_ids_reserve_locked(struct gc_coord *coord);
/* Starts watching pid for exit (no-op if watched already or pid <= 0); returns the
 * watch, or NULL when pid <= 0 or the table is full. */
const struct gc_watch *gc_coord_watch_locked(struct gc_coord *coord, pid_t pid);
/* The watch of a live process, or (checking /proc) a new one; NULL if pid is gone. */
const struct gc_watch *gc_coord_watch_alive_locked(struct gc_coord *coord, pid_t pid);
/* Stops watching pid when no lease or resident refers to it any more. */
void gc_coord_watch_release_locked(struct gc_coord *coord, pid_t pid);
/* True when a lease waits or an evicted resident waits to be restored. */
bool gc_coord_something_waits_locked(struct gc_coord *coord);
/* Waits on coord->changed until deadline_ms (monotonic); false when it passed or the
 * coordinator is stopping. */
bool gc_coord_wait_locked(struct gc_coord *coord, int64_t deadline_ms);
/* Adds a sample to a histogram. */
void gc_hist_add(struct gc_histogram *h, double seconds);
/* Slot index of a resident (for coord->ext). */
unsigned gc_coord_resident_index(const struct gc_coord *coord, const struct gc_resident *r);

/* ---- Steps (steps.c); lock held ---- */

/* Starts unloading r (already marked unloading) for lease_id ("" by request). */
void gc_step_unload_start(struct gc_coord *coord, struct gc_resident *r, const char *lease_id);
/* Starts reloading r (already marked reloading). */
void gc_step_reload_start(struct gc_coord *coord, struct gc_resident *r);
/* Every running step's look at the last reading. */
void gc_steps_poll(struct gc_coord *coord, int64_t now);
/* A job's answer moves its step on. */
void gc_steps_job_answered(struct gc_coord *coord, const struct gc_job *job, int64_t now);
/* pid exited: steps of residents it was see it. */
void gc_steps_pid_exited(struct gc_coord *coord, pid_t pid);
/* When a step must look again (INT64_MAX: none waits on time). */
int64_t gc_steps_next_deadline(struct gc_coord *coord, int64_t now);
/* True when a step waits for NVML to show something. */
bool gc_steps_verifying(struct gc_coord *coord);
/* A job's answer (from its thread, lock NOT held): queued for the engine loop. */
void gc_coord_job_done(struct gc_coord *coord, struct gc_job *job);

/* ---- Operations for the API (coord_leases.c, coord_residents.c); lock NOT held ---- */

struct gc_api_answer {
    int status;   /* HTTP status */
    json_t *body; /* owned */
};

/* The client a request waits for (NULL: none to watch). A wait (wait_s) keeps its
 * lease alive while the client is there, and ends once gone() says it left. */
struct gc_waiter {
    bool (*gone)(const void *ctx);
    const void *ctx;
};

/* How often a wait looks whether its client has left. */
#define GC_WAITER_POLL_MS 1000

/* As gc_coord_wait_locked, for a request's wait: false also once waiter (NULL: none)
 * says its client has left, which it is asked at least every GC_WAITER_POLL_MS. */
bool gc_coord_wait_client_locked(struct gc_coord *coord, int64_t deadline_ms,
                                 const struct gc_waiter *waiter);

/* The operations that change something take the caller (caller.h): what it may
 * name, whose quota counts, and whose lease or resident it may end. */
void gc_coord_lease_request(struct gc_coord *coord, const struct gc_caller *caller,
                            const json_t *req, const struct gc_waiter *waiter,
                            struct gc_api_answer *ans);
/* A lease; wait_s > 0 waits while it is queued, keeping it alive only when caller (NULL
 * without a wait) owns it. */
void gc_coord_lease_get(struct gc_coord *coord, const struct gc_caller *caller, const char *id,
                        double wait_s, const struct gc_waiter *waiter, struct gc_api_answer *ans);
void gc_coord_lease_heartbeat(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *id, struct gc_api_answer *ans);
void gc_coord_lease_release(struct gc_coord *coord, const struct gc_caller *caller, const char *id,
                            struct gc_api_answer *ans);
/* POST /v1/leases/{id}/resize {bytes, wait_s}: shrinks at once; grows at once when it
 * fits, else queues a growth and waits up to wait_s (200 grown; 202 still at its old
 * size, the growth withdrawn). */
void gc_coord_lease_resize(struct gc_coord *coord, const struct gc_caller *caller, const char *id,
                           const json_t *req, const struct gc_waiter *waiter,
                           struct gc_api_answer *ans);

void gc_coord_resident_register(struct gc_coord *coord, const struct gc_caller *caller,
                                const json_t *req, struct gc_api_answer *ans);
/* Registration with the lock held (used by recovery and the config, as trusted
 * callers). GC_EINVAL, GC_EFORBIDDEN, GC_ECONFLICT or GC_ELIMIT with err filled. */
int gc_coord_register_locked(struct gc_coord *coord, const struct gc_caller *caller,
                             const json_t *req, struct gc_jerr *err, struct gc_resident **ret);
void gc_coord_resident_delete(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, struct gc_api_answer *ans);
/* req (may be NULL): {"level"}, the level to go down to (default: the last). */
void gc_coord_resident_unload(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, const json_t *req, struct gc_api_answer *ans);
void gc_coord_resident_reload(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, struct gc_api_answer *ans);
void gc_coord_resident_demand(struct gc_coord *coord, const char *name, const json_t *req,
                              const struct gc_waiter *waiter, struct gc_api_answer *ans);

/* Requests in flight (coord_uses.c). begin: 201 {id, resident, ttl_s} on a loaded
 * resident no eviction waits for, else 409; renew: 200; end: 204. */
void gc_coord_use_begin(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                        const json_t *req, struct gc_api_answer *ans);
void gc_coord_use_renew(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                        const char *id, struct gc_api_answer *ans);
void gc_coord_use_end(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                      const char *id, struct gc_api_answer *ans);
/* Lock held: ends uses past their TTL and counts each resident's uses into the
 * ledger; returns the next expiry (INT64_MAX: none). */
int64_t gc_coord_uses_settle_locked(struct gc_coord *coord, int64_t now_ms);

/* ---- Views (views.c); lock held ---- */

json_t *gc_view_gpus_locked(struct gc_coord *coord);
/* {libdir, state} when the coordinator runs on gpusim, else JSON null. */
json_t *gc_view_gpusim(const struct gc_coord *coord);
json_t *gc_view_resident_locked(struct gc_coord *coord, const struct gc_resident *r);
json_t *gc_view_residents_locked(struct gc_coord *coord);
json_t *gc_view_lease_locked(struct gc_coord *coord, const struct gc_lease *lease);
json_t *gc_view_leases_locked(struct gc_coord *coord);
json_t *gc_view_status_locked(struct gc_coord *coord);
/* Prometheus text (malloc'd). */
char *gc_view_metrics_locked(struct gc_coord *coord);

/* Sets ans to {"error": code-of-err, "message": ...}. */
void gc_api_error(struct gc_api_answer *ans, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
