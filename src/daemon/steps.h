/*
 * steps.h - the engine's unloads and reloads: one step per resident at a time, a
 * small state machine the engine drives. A step starts a job to ask the resident
 * (jobs.h), takes the job's answer, and judges the memory on the engine's NVML
 * readings (coord/verify.h); every change of the resident is a transition of
 * coord/transition.h.
 *
 * The steps own their state (struct gc_steps) and reach the rest of the engine only
 * through the environment it gives them (struct gc_step_env): the ledger, the
 * configuration, the stats and events to record in, and the engine's hands for
 * journaling, ending a lease's wait, watching a process and starting a job. The
 * engine calls every function here with its lock held; nothing here waits.
 */
#ifndef GC_STEPS_H
#define GC_STEPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "coord/ledger.h"
#include "coord/verify.h"
#include "daemon/adapter.h"
#include "daemon/config.h"
#include "daemon/events.h"
#include "daemon/jobs.h"
#include "daemon/stats.h"

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
    GC_STEP_PROBE,          /* a job asks a resident marked loaded what it holds */
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
    bool recovery;   /* a probe of a step a restart cut short */
    char why[GC_REASON_MAX];
    /* The last step that ended, for a request waiting on it. */
    uint64_t outcome_id;
    int outcome_rc;
    char outcome_why[GC_REASON_MAX];
};

struct gc_steps {
    struct gc_step slot[GC_RESIDENTS_MAX]; /* by resident slot */
    uint64_t next_id;
    uint64_t ended; /* steps ended so far */
};

struct gc_step_env {
    struct gc_ledger *ledger;
    const struct gc_config *config;
    struct gc_stats *stats;
    struct gc_events *events;
    void *engine;
    /* The resident's adapter spec, by slot. */
    const struct gc_resident_spec *(*spec)(void *engine, unsigned slot);
    /* Journals the resident's state (a failed write is the engine's to handle). */
    void (*journal)(void *engine, const struct gc_resident *r);
    /* One eviction fewer for lease_id ("" none) to wait for; error (not 0) fails it. */
    void (*lease_evicted)(void *engine, const char *lease_id, int error, const char *why);
    void (*watch)(void *engine, pid_t pid, uint64_t start_ticks);
    void (*unwatch)(void *engine, pid_t pid);
    /* Starts job in a thread of its own, its answer for gc_steps_job_answered; false
     * when none could be started (job still the caller's). */
    bool (*start)(void *engine, struct gc_job *job);
};

/* Starts unloading r (already marked unloading) for lease_id ("" by request).
 * Returns the step's id (its outcome, once it ends, carries it). */
uint64_t gc_step_unload_start(struct gc_steps *st, const struct gc_step_env *env,
                              struct gc_resident *r, const char *lease_id, int64_t now);
/* Starts reloading r (already marked reloading). Returns the step's id. */
uint64_t gc_step_reload_start(struct gc_steps *st, const struct gc_step_env *env,
                              struct gc_resident *r, int64_t now);
/* Asks r, marked loaded and idle, what it holds (its health): one that reports its
 * models unloaded, or a level below its first, is recorded there (unloaded, to be
 * brought back by a demand). r is not made busy: an unload or reload that starts
 * meanwhile ends the probe. Returns the step's id, or 0 when no probe was started (a
 * restartable resident is loaded while its process runs; a step runs already). */
uint64_t gc_step_probe_start(struct gc_steps *st, const struct gc_step_env *env,
                             struct gc_resident *r, int64_t now);
/* After a restart, asks r (busy: its step was cut short) what it holds; its answer
 * settles it (gc_resident_probed) and makes it idle. No answer (unreachable) leaves it
 * unloaded and to be restored. Returns the step's id. */
uint64_t gc_step_recovery_probe_start(struct gc_steps *st, const struct gc_step_env *env,
                                      struct gc_resident *r, int64_t now);
/* Every running step's look at the ledger's last reading (and the clock). */
void gc_steps_poll(struct gc_steps *st, const struct gc_step_env *env, int64_t now);
/* A job's answer moves its step on (an answer to a step that ended is dropped). */
void gc_steps_job_answered(struct gc_steps *st, const struct gc_step_env *env,
                           const struct gc_job *job, int64_t now);
/* pid exited: the steps of residents it was see it. */
void gc_steps_pid_exited(struct gc_steps *st, const struct gc_step_env *env, pid_t pid);
/* When a step must look again (INT64_MAX: none waits on time); last_read_ms: when the
 * engine last read NVML (a step with no reading since it began asks for one now). */
int64_t gc_steps_next_deadline(const struct gc_steps *st, const struct gc_step_env *env,
                               int64_t now, int64_t last_read_ms);
/* True when a step waits for NVML to show something. */
bool gc_steps_verifying(const struct gc_steps *st, const struct gc_step_env *env);

#endif
