/*
 * stats.h - what the engine counts: its counters, in one table, and the
 * histograms of grant waits, unloads and reloads. Plain data the engine owns and
 * the views (views.c) show.
 */
#ifndef GC_STATS_H
#define GC_STATS_H

#include <stdint.h>

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

/* Histogram bucket bounds in seconds, shared by the three histograms. */
extern const double gc_hist_bounds[GC_HIST_BUCKETS];

/* Adds a sample to a histogram. */
void gc_hist_add(struct gc_histogram *h, double seconds);

struct gc_stats {
    struct gc_counters counters;
    struct gc_histogram grant_wait_s, unload_s, reload_s;
};

#endif
