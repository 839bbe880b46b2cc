/* readings.c - NVML read for every GPU at once (readings.h). */
#include "daemon/readings.h"

#include <stdlib.h>

#include "common/clock.h"
#include "common/proc.h"
#include "daemon/ancestry.h"

void gc_readings_init(struct gc_readings *pool)
{
    pthread_mutex_init(&pool->lock, NULL);
    pool->n = 0;
}

void gc_readings_free(struct gc_readings *pool)
{
    for (unsigned i = 0; i < pool->n; i++)
        free(pool->spare[i]);
    pool->n = 0;
    pthread_mutex_destroy(&pool->lock);
}

struct gc_nvml_reading *gc_readings_get(struct gc_readings *pool)
{
    struct gc_nvml_reading *r = NULL;

    pthread_mutex_lock(&pool->lock);
    if (pool->n > 0)
        r = pool->spare[--pool->n];
    pthread_mutex_unlock(&pool->lock);
    return r != NULL ? r : malloc(sizeof(*r));
}

void gc_readings_put(struct gc_readings *pool, struct gc_nvml_reading *r)
{
    pthread_mutex_lock(&pool->lock);
    if (r != NULL && pool->n < GC_READINGS_SPARE) {
        pool->spare[pool->n++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&pool->lock);
    free(r);
}

void gc_reading_take(struct gc_nvml *nvml, unsigned ngpus, struct gc_nvml_reading *r)
{
    struct gc_gpu_proc procs[GC_SNAPSHOT_PROCS_MAX];

    r->taken_ms = gc_mono_ms();
    r->ngpus = ngpus;
    for (unsigned g = 0; g < r->ngpus; g++) {
        struct gc_gpu_info info;
        unsigned n = 0;
        r->ok[g] = gc_nvml_device_memory(nvml, g, &info) == 0 &&
                   gc_nvml_processes(nvml, g, procs, GC_SNAPSHOT_PROCS_MAX, &n) == 0;
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
