/*
 * ptrtab.h - the live allocations of the process (device pointer, or memory
 * handle, to bytes and device), safe to use from any thread without a global
 * lock: an allocation's entry is put by the thread that allocated and taken by
 * whichever thread frees.
 *
 * A fixed array of 2^cap_log2 slots, lock-free: a put claims the first empty or
 * removed slot of its probe sequence with one compare-and-swap, a take marks the
 * slot removed with one store. Slots never go back to empty, so a key's probe
 * sequence is never cut short under a concurrent take. A key that finds no free
 * slot within GCI_PTRTAB_PROBES slots (the array is full) goes to an overflow
 * gci_ptrmap under a mutex, which a take looks in only while it is not empty.
 *
 * Contract: a key is taken only after its put returned (the program passes a
 * pointer on only after the allocation returned). The same key put twice (an
 * entry left by a destroyed context, then the address handed out again) is kept
 * twice in the array (each take removes one) and once in the overflow (the
 * newer replaces the older); either way the bytes recorded never exceed what
 * was counted for them.
 */
#ifndef GCI_PTRTAB_H
#define GCI_PTRTAB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intercept/ptrmap.h"

/* How far a put or take probes before the array counts as full. */
#define GCI_PTRTAB_PROBES 32
/* Bytes recorded per entry are kept below 2^60 (the device in the low 4 bits). */
#define GCI_PTRTAB_DEVICES 16

struct gci_ptrtab_slot {
    uint64_t key; /* 0: never used; UINT64_MAX: removed */
    uint64_t val; /* bytes << 4 | device */
};

struct gci_ptrtab {
    struct gci_ptrtab_slot *slots; /* NULL: everything goes to the overflow */
    size_t mask;                   /* slots - 1 */
    unsigned shift;                /* 64 - cap_log2 */
    size_t overflow_n;             /* entries in overflow (atomic; written under mu) */
    pthread_mutex_t mu;
    struct gci_ptrmap overflow; /* under mu */
};

/*
 * gci_ptrtab_init: an empty table of 2^cap_log2 slots (mapped, so pages cost
 * memory only once used). 0, or -1 when the slots cannot be mapped: the table is
 * usable then, all in the overflow.
 */
int gci_ptrtab_init(struct gci_ptrtab *t, unsigned cap_log2);
#define GCI_PTRTAB_TOMB UINT64_MAX

/* The locked overflow (out of line: the array is not full in the common case). */
int gci_ptrtab_put_overflow(struct gci_ptrtab *t, uint64_t key, uint64_t bytes, int dev);
bool gci_ptrtab_take_overflow(struct gci_ptrtab *t, uint64_t key, uint64_t *ret_bytes,
                              int *ret_dev);

/* Fibonacci hashing: the product's high bits depend on all of the key's, so
 * pointers that share their low bits (alignment) and high bits still spread. */
static inline size_t gci_ptrtab_home(const struct gci_ptrtab *t, uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> t->shift);
}

/*
 * gci_ptrtab_put: records key (never 0 or UINT64_MAX). 0, or -1 out of host
 * memory (not recorded). Inline, as gci_ptrtab_take: they are most of what an
 * allocation within the lease and a free cost.
 */
static inline int gci_ptrtab_put(struct gci_ptrtab *t, uint64_t key, uint64_t bytes, int dev)
{
    uint64_t val = bytes << 4 | (uint64_t)dev;
    size_t h;

    if (__builtin_expect(key == 0 || key == GCI_PTRTAB_TOMB || dev < 0 ||
                             dev >= GCI_PTRTAB_DEVICES || bytes >> 60 != 0 || t->slots == NULL,
                         0))
        return gci_ptrtab_put_overflow(t, key, bytes, dev);
    h = gci_ptrtab_home(t, key);
    for (size_t i = 0; i < GCI_PTRTAB_PROBES; i++) {
        struct gci_ptrtab_slot *s = &t->slots[(h + i) & t->mask];
        uint64_t k = __atomic_load_n(&s->key, __ATOMIC_RELAXED);
        /* A slot lost to another put between the load and the swap: on to the next. */
        if ((k == 0 || k == GCI_PTRTAB_TOMB) &&
            __atomic_compare_exchange_n(&s->key, &k, key, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            /* Read only by the take of this entry, which comes after this put
             * returned (the contract above). */
            __atomic_store_n(&s->val, val, __ATOMIC_RELEASE);
            return 0;
        }
    }
    return gci_ptrtab_put_overflow(t, key, bytes, dev);
}

/* gci_ptrtab_take: removes one entry of key; true with its bytes and device when
 * there was one. */
static inline bool gci_ptrtab_take(struct gci_ptrtab *t, uint64_t key, uint64_t *ret_bytes,
                                   int *ret_dev)
{
    size_t h;

    if (__builtin_expect(key == 0 || key == GCI_PTRTAB_TOMB || t->slots == NULL, 0))
        return gci_ptrtab_take_overflow(t, key, ret_bytes, ret_dev);
    h = gci_ptrtab_home(t, key);
    for (size_t i = 0; i < GCI_PTRTAB_PROBES; i++) {
        struct gci_ptrtab_slot *s = &t->slots[(h + i) & t->mask];
        uint64_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);
        if (k == 0)
            break; /* the end of every probe sequence through here */
        if (k == key) {
            uint64_t val = __atomic_load_n(&s->val, __ATOMIC_ACQUIRE);
            /* A store, not a swap: the slot is this key's until then (two threads
             * freeing one pointer at once is the program's error; the driver
             * refuses one of them and its entry is put back). */
            __atomic_store_n(&s->key, GCI_PTRTAB_TOMB, __ATOMIC_RELEASE);
            *ret_bytes = val >> 4;
            *ret_dev = (int)(val & 15);
            return true;
        }
    }
    return gci_ptrtab_take_overflow(t, key, ret_bytes, ret_dev);
}

/* The bytes recorded on dev and the number of entries; only while no thread
 * puts or takes (tests, and the state after fork). */
uint64_t gci_ptrtab_sum(struct gci_ptrtab *t, int dev, size_t *ret_entries);
/* Unmaps and frees everything; the table must be initialised again before use.
 * gci_ptrtab_free(NULL) is a no-op. */
void gci_ptrtab_free(struct gci_ptrtab *t);

#endif
