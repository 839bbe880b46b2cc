/*
 * engine.h - the coordinator's engine: the one owner of the ledger, the journal's
 * records, the counters, the events and the process watches, and the only caller
 * of the scheduler (engine.c). It exports operations; its state is its own.
 *
 * Threads: the main thread runs gc_coord_run() (NVML readings, pidfds, timers, the
 * jobs' answers); HTTP threads call the operations below, each of which takes the
 * engine's lock for as long as it needs and waits (with a deadline) for what it
 * asked for; jobs (jobs.h) run in threads of their own and only talk to residents.
 */
#ifndef GC_ENGINE_H
#define GC_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/caller.h"
#include "daemon/config.h"
#include "daemon/store.h"
#include "gpu/gpu.h"

struct gc_coord;

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
/* Wakes the engine loop (from any thread, any context). */
void gc_coord_wake(struct gc_coord *coord);
/* The configuration it runs with (fixed for its life). */
const struct gc_config *gc_coord_config(const struct gc_coord *coord);
/* Logs the GPUs it coordinates (at start). */
void gc_coord_log_gpus(struct gc_coord *coord);

/* ---- Operations for the API ---- */

struct gc_api_answer {
    int status;   /* HTTP status */
    json_t *body; /* owned */
};

/* Sets ans to {"error": code-of-err, "message": ...}. */
void gc_api_error(struct gc_api_answer *ans, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The client a request waits for (NULL: none to watch). A wait (wait_s) keeps its
 * lease alive while the client is there, and ends once gone() says it left. */
struct gc_waiter {
    bool (*gone)(const void *ctx);
    const void *ctx;
};

/* How often a wait looks whether its client has left. */
#define GC_WAITER_POLL_MS 1000

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
void gc_coord_resident_delete(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, struct gc_api_answer *ans);
/* req (may be NULL): {"level"}, the level to go down to (default: the last). */
void gc_coord_resident_unload(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, const json_t *req, struct gc_api_answer *ans);
void gc_coord_resident_reload(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, struct gc_api_answer *ans);
void gc_coord_resident_demand(struct gc_coord *coord, const char *name, const json_t *req,
                              const struct gc_waiter *waiter, struct gc_api_answer *ans);

/* Requests in flight. begin: 201 {id, resident, ttl_s} on a loaded resident no
 * eviction waits for, else 409; renew: 200; end: 204. */
void gc_coord_use_begin(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                        const json_t *req, struct gc_api_answer *ans);
void gc_coord_use_renew(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                        const char *id, struct gc_api_answer *ans);
void gc_coord_use_end(struct gc_coord *coord, const struct gc_caller *caller, const char *name,
                      const char *id, struct gc_api_answer *ans);

/* ---- Views (views.h), each under the lock; gpus and status from a fresh reading ---- */

/* {"gpus": [...], "gpusim": ...} */
json_t *gc_coord_view_gpus(struct gc_coord *coord);
json_t *gc_coord_view_status(struct gc_coord *coord);
/* {"leases": [...]}, {"residents": [...]} */
json_t *gc_coord_view_leases(struct gc_coord *coord);
json_t *gc_coord_view_residents(struct gc_coord *coord);
/* One resident: 200, or 404. */
void gc_coord_view_resident(struct gc_coord *coord, const char *name, struct gc_api_answer *ans);
/* Prometheus text (malloc'd; NULL: out of memory). */
char *gc_coord_view_metrics(struct gc_coord *coord);
/* {"events": [...], "last_seq"}: those after since, at most max; waits until one
 * comes or deadline_ms passes (or the client leaves). */
json_t *gc_coord_view_events(struct gc_coord *coord, uint64_t since, unsigned max,
                             int64_t deadline_ms, const struct gc_waiter *waiter);

#endif
