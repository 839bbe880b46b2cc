/*
 * ptrmap.h - what each live allocation costs: device pointer (or memory handle)
 * to bytes and device, so that a free knows what it gives back. Open addressing
 * with linear probing; keys are never 0 (the driver hands out no 0 pointer or
 * handle). Not thread-safe: the caller locks.
 */
#ifndef GCI_PTRMAP_H
#define GCI_PTRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gci_ptr_entry {
    uint64_t key; /* 0: empty; GCI_PTR_TOMB: removed */
    uint64_t bytes;
    int dev;
};

struct gci_ptrmap {
    struct gci_ptr_entry *v;
    size_t cap;  /* a power of two, or 0 */
    size_t n;    /* live entries */
    size_t used; /* live + removed slots (probing stops only at empty ones) */
};

/* Adds key (replacing an entry of the same key). 0, or -1 out of memory (unchanged). */
int gci_ptrmap_put(struct gci_ptrmap *m, uint64_t key, uint64_t bytes, int dev);
/* Removes key; true with its bytes and dev when it was there. */
bool gci_ptrmap_take(struct gci_ptrmap *m, uint64_t key, uint64_t *ret_bytes, int *ret_dev);
/* Frees the storage; the map is empty and usable again. */
void gci_ptrmap_clear(struct gci_ptrmap *m);

#endif
