/*
 * jobs.h - the questions the engine asks residents, each in a thread of its own:
 * unload, reload, clean up, report health, or be killed. A job talks to one
 * resident through its adapter, on a copy of what it needs, and reports its answer
 * to whoever started it (the engine's queue); it reads no ledger, takes no lock
 * of the engine's and decides nothing about memory.
 */
#ifndef GC_JOBS_H
#define GC_JOBS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/adapter.h"

enum gc_job_kind {
    GC_JOB_UNLOAD,  /* ask it to unload (to spec.level) */
    GC_JOB_RELOAD,  /* ask it to reload */
    GC_JOB_CLEANUP, /* ask it to free what an unload left (caches, stray tensors) */
    GC_JOB_HEALTH,  /* ask what it holds */
    GC_JOB_KILL,    /* SIGTERM, kill_grace_s, SIGKILL its process */
};

struct gc_job {
    enum gc_job_kind kind;
    unsigned slot;    /* the resident's slot */
    uint64_t step;    /* the step it serves (a late answer to an older one is dropped) */
    bool restartable; /* its protocol starts it again: a dead process is no answer */
    struct gc_resident_spec spec;
    const struct gc_adapter *adapter;
    /* The answer. */
    int rc; /* 0 or GC_E* */
    struct gc_adapter_result res;
    bool exited;              /* unload, kill: its process is gone (an unload freed all) */
    bool final;               /* reload: no use trying again (its process is gone) */
    uint64_t new_start_ticks; /* reload: res.new_pid's start time */
    int64_t answered_ms;      /* monotonic, when the answer came */
    struct gc_job *next;      /* the engine's queue */
};

/* Where a job's answer goes (called in the job's thread; it owns job from then). */
typedef void (*gc_job_done_fn)(void *ctx, struct gc_job *job);

/* Runs job in a new thread. GC_EIO when no thread could be started (job untouched,
 * still the caller's). */
int gc_job_start(struct gc_job *job, gc_job_done_fn done, void *ctx);

const char *gc_job_kind_name(enum gc_job_kind kind);

#endif
