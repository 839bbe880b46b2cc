/*
 * alloc.h - a process's table of memory ranges (device allocations, pinned
 * host allocations): sorted by base, so that a pointer inside a range is
 * found by binary search. Not thread-safe: the caller locks.
 */
#ifndef GPUSIM_ALLOC_H
#define GPUSIM_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most ranges one table holds. */
#define SIM_ALLOCS_MAX (1u << 20)

struct sim_alloc {
    uint64_t base;
    uint64_t bytes;
    unsigned dev;
    void *backing;   /* host bytes behind a backed allocation, or NULL */
    bool mapped;     /* a cuMemMap of a cuMemCreate handle (charged on the handle) */
    uint64_t handle; /* mapped: the handle */
};

struct sim_alloc_table {
    struct sim_alloc *v;
    size_t n;
    size_t cap;
};

/* Adds a (non-overlapping) range. Returns 0, or GC_ENOMEM / GC_ELIMIT. */
int sim_alloc_insert(struct sim_alloc_table *t, const struct sim_alloc *a);
/* The range that starts exactly at base, or NULL. */
struct sim_alloc *sim_alloc_find(struct sim_alloc_table *t, uint64_t base);
/* The range that holds all of [p, p + n) (n >= 1), or NULL. */
struct sim_alloc *sim_alloc_find_span(struct sim_alloc_table *t, uint64_t p, uint64_t n);
/* Removes a (a pointer returned by a find); an emptied table frees its storage. */
void sim_alloc_remove(struct sim_alloc_table *t, struct sim_alloc *a);
/* Frees the table's storage (not the ranges' backing). */
void sim_alloc_table_free(struct sim_alloc_table *t);

#endif
