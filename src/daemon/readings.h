/*
 * readings.h - NVML read for every GPU at once: memory and the processes using it,
 * with their ancestors (from /proc) and whether their pids exist here. Taken by
 * whoever needs one without any lock of the engine's, then applied to the ledger
 * under it. Readings are large (the process lists of every GPU), so a pool keeps
 * a few for reuse.
 */
#ifndef GC_READINGS_H
#define GC_READINGS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "coord/ledger.h"
#include "gpu/gpu.h"

struct gc_nvml_reading {
    int64_t taken_ms; /* monotonic, when the reading began */
    unsigned ngpus;
    bool ok[GC_GPUS_MAX];
    uint64_t used_bytes[GC_GPUS_MAX], free_bytes[GC_GPUS_MAX];
    unsigned nprocs[GC_GPUS_MAX];
    struct gc_snapshot_proc procs[GC_GPUS_MAX][GC_SNAPSHOT_PROCS_MAX];
};

#define GC_READINGS_SPARE 8

struct gc_readings {
    pthread_mutex_t lock;
    struct gc_nvml_reading *spare[GC_READINGS_SPARE];
    unsigned n;
};

void gc_readings_init(struct gc_readings *pool);
void gc_readings_free(struct gc_readings *pool);
/* A reading buffer (reused when one is spare); NULL when out of memory. */
struct gc_nvml_reading *gc_readings_get(struct gc_readings *pool);
/* Gives it back (NULL: no-op). */
void gc_readings_put(struct gc_readings *pool, struct gc_nvml_reading *r);

/* Reads GPUs 0..ngpus-1 into r (NVML is thread-safe; no lock needed). A GPU whose
 * reading failed has ok[g] false. */
void gc_reading_take(struct gc_nvml *nvml, unsigned ngpus, struct gc_nvml_reading *r);

#endif
