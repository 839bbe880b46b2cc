/*
 * views.h - the API's JSON views of GPUs, residents, leases and status, and the
 * Prometheus text of /metrics, built from what the engine shows them (struct
 * gc_view_src). The views read; they change nothing and take no lock: the engine
 * calls them with its lock held.
 */
#ifndef GC_VIEWS_H
#define GC_VIEWS_H

#include <jansson.h>
#include <stdint.h>

#include "coord/ledger.h"
#include "daemon/adapter.h"
#include "daemon/events.h"
#include "daemon/stats.h"

struct gc_nvml;

struct gc_view_src {
    const struct gc_ledger *ledger;
    /* A resident's adapter spec (timeouts, model), by its slot. */
    const struct gc_resident_spec *(*spec)(const void *ctx, unsigned slot);
    const void *ctx;
    const struct gc_stats *stats;
    const struct gc_events *events;
    struct gc_nvml *nvml;
    const char *driver_version;
    int64_t started_ms;
    unsigned watched; /* processes watched for exit */
};

json_t *gc_view_gpus(const struct gc_view_src *src);
/* {libdir, state} when the coordinator runs on gpusim, else JSON null. */
json_t *gc_view_gpusim(const struct gc_view_src *src);
json_t *gc_view_resident(const struct gc_view_src *src, const struct gc_resident *r);
json_t *gc_view_residents(const struct gc_view_src *src);
json_t *gc_view_lease(const struct gc_view_src *src, const struct gc_lease *lease);
json_t *gc_view_leases(const struct gc_view_src *src);
json_t *gc_view_status(const struct gc_view_src *src);
/* Prometheus text (malloc'd; NULL when out of memory). */
char *gc_view_metrics(const struct gc_view_src *src);

#endif
