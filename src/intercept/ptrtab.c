/* ptrtab.c - live allocations by pointer: set-up and the locked overflow (the
 * lock-free put and take are inline in ptrtab.h). */
#include "intercept/ptrtab.h"

#include <sys/mman.h>

int gci_ptrtab_init(struct gci_ptrtab *t, unsigned cap_log2)
{
    size_t cap = (size_t)1 << cap_log2;
    void *p;

    *t = (struct gci_ptrtab){.shift = 64 - cap_log2};
    pthread_mutex_init(&t->mu, NULL);
    if (cap_log2 == 0 || cap_log2 > 30)
        return -1;
    p = mmap(NULL, cap * sizeof(struct gci_ptrtab_slot), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    t->slots = p;
    t->mask = cap - 1;
    return 0;
}

int gci_ptrtab_put_overflow(struct gci_ptrtab *t, uint64_t key, uint64_t bytes, int dev)
{
    int rc;

    if (key == 0 || key == GCI_PTRTAB_TOMB || dev < 0 || dev >= GCI_PTRTAB_DEVICES ||
        bytes >> 60 != 0)
        return -1;
    pthread_mutex_lock(&t->mu);
    rc = gci_ptrmap_put(&t->overflow, key, bytes, dev);
    __atomic_store_n(&t->overflow_n, t->overflow.n, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

bool gci_ptrtab_take_overflow(struct gci_ptrtab *t, uint64_t key, uint64_t *ret_bytes, int *ret_dev)
{
    bool found;

    if (__atomic_load_n(&t->overflow_n, __ATOMIC_ACQUIRE) == 0)
        return false;
    pthread_mutex_lock(&t->mu);
    found = gci_ptrmap_take(&t->overflow, key, ret_bytes, ret_dev);
    __atomic_store_n(&t->overflow_n, t->overflow.n, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&t->mu);
    return found;
}

uint64_t gci_ptrtab_sum(struct gci_ptrtab *t, int dev, size_t *ret_entries)
{
    uint64_t sum = 0;
    size_t n = 0;

    for (size_t i = 0; t->slots != NULL && i <= t->mask; i++) {
        const struct gci_ptrtab_slot *s = &t->slots[i];
        if (s->key == 0 || s->key == GCI_PTRTAB_TOMB)
            continue;
        n++;
        if ((int)(s->val & 15) == dev)
            sum += s->val >> 4;
    }
    for (size_t i = 0; i < t->overflow.cap; i++) {
        const struct gci_ptr_entry *e = &t->overflow.v[i];
        if (e->key == 0 || e->key == GCI_PTRTAB_TOMB)
            continue;
        n++;
        if (e->dev == dev)
            sum += e->bytes;
    }
    *ret_entries = n;
    return sum;
}

void gci_ptrtab_free(struct gci_ptrtab *t)
{
    if (t == NULL)
        return;
    if (t->slots != NULL)
        munmap(t->slots, (t->mask + 1) * sizeof(struct gci_ptrtab_slot));
    gci_ptrmap_clear(&t->overflow);
    pthread_mutex_destroy(&t->mu);
    *t = (struct gci_ptrtab){.slots = NULL};
}
