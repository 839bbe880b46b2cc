/* ptrmap.c - live allocations by pointer (open addressing). */
#include "intercept/ptrmap.h"

#include <stdlib.h>

#define GCI_PTR_TOMB UINT64_MAX

static size_t slot_of(uint64_t key, size_t cap)
{
    /* Pointers share their low and high bits: mix them (splitmix64's finaliser). */
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    key ^= key >> 31;
    return (size_t)key & (cap - 1);
}

static int rehash(struct gci_ptrmap *m, size_t cap)
{
    struct gci_ptr_entry *v = calloc(cap, sizeof(*v));

    if (v == NULL)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        const struct gci_ptr_entry *e = &m->v[i];
        if (e->key == 0 || e->key == GCI_PTR_TOMB)
            continue;
        size_t s = slot_of(e->key, cap);
        while (v[s].key != 0)
            s = (s + 1) & (cap - 1);
        v[s] = *e;
    }
    free(m->v);
    m->v = v;
    m->cap = cap;
    m->used = m->n;
    return 0;
}

int gci_ptrmap_put(struct gci_ptrmap *m, uint64_t key, uint64_t bytes, int dev)
{
    size_t s, tomb = SIZE_MAX;

    if (key == 0 || key == GCI_PTR_TOMB)
        return -1;
    /* Keep at most half the slots used, so that probes stay short. */
    if ((m->used + 1) * 2 > m->cap && rehash(m, m->cap == 0               ? 64
                                                : (m->n + 1) * 4 > m->cap ? m->cap * 2
                                                                          : m->cap) < 0)
        return -1;
    s = slot_of(key, m->cap);
    while (m->v[s].key != 0) {
        if (m->v[s].key == key) {
            m->v[s].bytes = bytes;
            m->v[s].dev = dev;
            return 0;
        }
        if (m->v[s].key == GCI_PTR_TOMB && tomb == SIZE_MAX)
            tomb = s;
        s = (s + 1) & (m->cap - 1);
    }
    if (tomb != SIZE_MAX)
        s = tomb;
    else
        m->used++;
    m->v[s] = (struct gci_ptr_entry){.key = key, .bytes = bytes, .dev = dev};
    m->n++;
    return 0;
}

bool gci_ptrmap_take(struct gci_ptrmap *m, uint64_t key, uint64_t *ret_bytes, int *ret_dev)
{
    size_t s;

    if (m->cap == 0 || key == 0 || key == GCI_PTR_TOMB)
        return false;
    s = slot_of(key, m->cap);
    while (m->v[s].key != 0) {
        if (m->v[s].key == key) {
            *ret_bytes = m->v[s].bytes;
            *ret_dev = m->v[s].dev;
            m->v[s].key = GCI_PTR_TOMB;
            m->n--;
            return true;
        }
        s = (s + 1) & (m->cap - 1);
    }
    return false;
}

void gci_ptrmap_clear(struct gci_ptrmap *m)
{
    free(m->v);
    *m = (struct gci_ptrmap){0};
}
