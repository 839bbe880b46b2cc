/* growth.c - resizing a granted lease (pure). */
#include "coord/growth.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"

struct gc_lease *gc_growth_find(struct gc_ledger *ledger, const char *parent_id)
{
    for (unsigned i = 0; i < ledger->nleases; i++) {
        struct gc_lease *l = ledger->leases[i];
        if (l->kind == GC_KIND_GROWTH && strcmp(l->parent, parent_id) == 0 &&
            (l->state == GC_LEASE_QUEUED || l->state == GC_LEASE_PREPARING))
            return l;
    }
    return NULL;
}

void gc_growth_withdraw(struct gc_ledger *ledger, struct gc_lease *growth, const char *reason,
                        int64_t now_ms)
{
    gc_ledger_lease_end(ledger, growth, GC_LEASE_RELEASED, 0, reason, now_ms);
}

int gc_growth_request(struct gc_ledger *ledger, struct gc_lease *lease, uint64_t bytes,
                      int64_t now_ms, struct gc_lease **ret_growth)
{
    struct gc_lease *pending, *g;
    char parent_id[GC_LEASE_ID_MAX], growth_id[GC_LEASE_ID_MAX];
    int rc;

    *ret_growth = NULL;
    if (lease->kind != GC_KIND_HOLDER || lease->state == GC_LEASE_PREPARING)
        return GC_ECONFLICT;
    if (lease->state == GC_LEASE_QUEUED) {
        lease->bytes = bytes;
        return 0;
    }
    snprintf(parent_id, sizeof(parent_id), "%s", lease->id);
    pending = gc_growth_find(ledger, parent_id);
    if (bytes > lease->bytes && pending != NULL && pending->bytes == bytes - lease->bytes) {
        *ret_growth = pending;
        return 0;
    }
    if (bytes > lease->bytes) {
        /* Make the new growth before withdrawing the old one: on error nothing changes.
         * Its pid stays 0: the parent's pid already ties both to the process. */
        rc = gc_ledger_lease_new_owned(ledger, GC_KIND_GROWTH, lease->owner, lease->holder, 0,
                                       lease->gpu, bytes - lease->bytes, lease->priority, 0, now_ms,
                                       &g);
        if (rc < 0)
            return rc;
        snprintf(g->parent, sizeof(g->parent), "%s", parent_id);
        g->evict_priority = lease->evict_priority;
        snprintf(growth_id, sizeof(growth_id), "%s", g->id);
        if (pending != NULL)
            gc_growth_withdraw(ledger, pending, "replaced by a resize to another size", now_ms);
        /* Ending a lease moves the last slot into its place: find the growth again. */
        *ret_growth = gc_ledger_lease_find(ledger, growth_id);
        return 0;
    }
    if (pending != NULL)
        gc_growth_withdraw(ledger, pending, "withdrawn by a smaller resize", now_ms);
    lease = gc_ledger_lease_find(ledger, parent_id);
    lease->bytes = bytes;
    return 0;
}

void gc_growth_merge(struct gc_ledger *ledger, struct gc_lease *growth)
{
    struct gc_lease *parent = gc_ledger_lease_find(ledger, growth->parent);

    if (parent == NULL || parent->state != GC_LEASE_GRANTED)
        return; /* settled as withdrawn */
    parent->bytes += growth->bytes;
    for (unsigned k = 0; k < growth->nevicted && parent->nevicted < GC_EVICT_MAX; k++)
        snprintf(parent->evicted[parent->nevicted++], sizeof(parent->evicted[0]), "%s",
                 growth->evicted[k]);
    growth->merged = true;
}

void gc_growth_unmerge(struct gc_ledger *ledger, const struct gc_action *resized, int error,
                       const char *reason)
{
    struct gc_lease *parent = gc_ledger_lease_find(ledger, resized->lease_id);
    /* The ended growth is in the ledger's own history: it is told why it failed. */
    struct gc_lease *g = (struct gc_lease *)gc_ledger_lease_lookup(ledger, resized->growth_id);

    if (parent != NULL && parent->bytes >= resized->bytes)
        parent->bytes -= resized->bytes;
    if (g != NULL && g->kind == GC_KIND_GROWTH) {
        g->state = GC_LEASE_FAILED;
        g->error = error;
        g->merged = false;
        snprintf(g->reason, sizeof(g->reason), "%s", reason);
    }
}

void gc_growth_settle(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out)
{
    for (unsigned i = ledger->nleases; i-- > 0;) {
        struct gc_lease *g = ledger->leases[i];
        const struct gc_lease *parent;
        char reason[GC_REASON_MAX];
        if (g->kind != GC_KIND_GROWTH)
            continue;
        if (g->merged) {
            struct gc_action *a;
            if (out->n >= GC_ACTIONS_MAX) {
                out->truncated = true;
                return;
            }
            a = &out->items[out->n++];
            memset(a, 0, sizeof(*a));
            a->kind = GC_ACT_RESIZED;
            a->gpu = g->gpu < 0 ? 0 : (unsigned)g->gpu;
            snprintf(a->lease_id, sizeof(a->lease_id), "%s", g->parent);
            snprintf(a->growth_id, sizeof(a->growth_id), "%s", g->id);
            a->bytes = g->bytes;
            snprintf(reason, sizeof(reason), "merged into %s", g->parent);
            gc_ledger_lease_end(ledger, g, GC_LEASE_RELEASED, 0, reason, now_ms);
            continue;
        }
        parent = gc_ledger_lease_find(ledger, g->parent);
        if (parent == NULL || parent->state != GC_LEASE_GRANTED) {
            snprintf(reason, sizeof(reason), "lease %s ended", g->parent);
            gc_growth_withdraw(ledger, g, reason, now_ms);
        }
    }
}
