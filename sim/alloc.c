/* alloc.c - sorted table of memory ranges, found by binary search. */
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* Index of the first range whose base is > p. */
static size_t upper_bound(const struct sim_alloc_table *t, uint64_t p)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int sim_alloc_insert(struct sim_alloc_table *t, const struct sim_alloc *a)
{
    size_t at;

    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct sim_alloc *v;

        if (t->n >= SIM_ALLOCS_MAX)
            return GC_ELIMIT;
        if (cap > SIM_ALLOCS_MAX)
            cap = SIM_ALLOCS_MAX;
        v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL)
            return GC_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    at = upper_bound(t, a->base);
    memmove(&t->v[at + 1], &t->v[at], (t->n - at) * sizeof(*t->v));
    t->v[at] = *a;
    t->n++;
    return 0;
}

struct sim_alloc *sim_alloc_find(struct sim_alloc_table *t, uint64_t base)
{
    size_t at = upper_bound(t, base);

    if (at == 0 || t->v[at - 1].base != base)
        return NULL;
    return &t->v[at - 1];
}

struct sim_alloc *sim_alloc_find_span(struct sim_alloc_table *t, uint64_t p, uint64_t n)
{
    size_t at = upper_bound(t, p);
    struct sim_alloc *a;

    if (at == 0 || n == 0)
        return NULL;
    a = &t->v[at - 1];
    /* p >= a->base here; the span must end inside a (no overflow: compare offsets). */
    if (p - a->base >= a->bytes || n > a->bytes - (p - a->base))
        return NULL;
    return a;
}

void sim_alloc_remove(struct sim_alloc_table *t, struct sim_alloc *a)
{
    size_t at = (size_t)(a - t->v);

    memmove(&t->v[at], &t->v[at + 1], (t->n - at - 1) * sizeof(*t->v));
    t->n--;
    if (t->n == 0)
        sim_alloc_table_free(t); /* nothing left behind after a clean shutdown */
}

void sim_alloc_table_free(struct sim_alloc_table *t)
{
    free(t->v);
    memset(t, 0, sizeof(*t));
}
