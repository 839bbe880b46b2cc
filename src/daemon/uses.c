/* uses.c - requests in flight through residents (uses.h). */
#include "daemon/uses.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

void gc_uses_init(struct gc_uses *uses)
{
    memset(uses, 0, sizeof(*uses));
}

void gc_uses_free(struct gc_uses *uses)
{
    free(uses->v);
    memset(uses, 0, sizeof(*uses));
}

int gc_uses_begin(struct gc_uses *uses, const char *resident, const char *owner, double ttl_s,
                  int64_t now_ms, struct gc_use **ret)
{
    struct gc_use *u;

    if (uses->n >= GC_USES_MAX)
        return GC_ELIMIT;
    if (uses->n == uses->cap) {
        unsigned cap = uses->cap ? uses->cap * 2 : 8;
        struct gc_use *v = realloc(uses->v, cap * sizeof(*v));
        if (v == NULL)
            return GC_ENOMEM;
        uses->v = v;
        uses->cap = cap;
    }
    u = &uses->v[uses->n++];
    memset(u, 0, sizeof(*u));
    snprintf(u->id, sizeof(u->id), "u-%llu", (unsigned long long)++uses->next_id);
    snprintf(u->resident, sizeof(u->resident), "%s", resident);
    snprintf(u->owner, sizeof(u->owner), "%s", owner);
    u->ttl_s = ttl_s;
    gc_uses_renew(u, now_ms);
    *ret = u;
    return 0;
}

struct gc_use *gc_uses_find(struct gc_uses *uses, const char *resident, const char *id)
{
    for (unsigned i = 0; i < uses->n; i++) {
        if (strcmp(uses->v[i].id, id) == 0 && strcmp(uses->v[i].resident, resident) == 0)
            return &uses->v[i];
    }
    return NULL;
}

void gc_uses_renew(struct gc_use *use, int64_t now_ms)
{
    use->expires_ms = now_ms + (int64_t)(use->ttl_s * 1000.0);
}

void gc_uses_end(struct gc_uses *uses, struct gc_use *use)
{
    *use = uses->v[--uses->n];
}

int64_t gc_uses_settle(struct gc_uses *uses, struct gc_ledger *ledger, int64_t now_ms,
                       void (*expired)(void *ctx, const struct gc_use *use, bool deleted),
                       void *ctx)
{
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++)
        ledger->residents[i].uses = 0;
    for (unsigned i = uses->n; i-- > 0;) {
        struct gc_use *u = &uses->v[i];
        struct gc_resident *r = gc_ledger_resident_find(ledger, u->resident);
        if (r == NULL || now_ms >= u->expires_ms) {
            if (expired != NULL)
                expired(ctx, u, r == NULL);
            gc_uses_end(uses, u);
            continue;
        }
        r->uses++;
    }
    return gc_uses_next_expiry(uses);
}

int64_t gc_uses_next_expiry(const struct gc_uses *uses)
{
    int64_t next = INT64_MAX;

    for (unsigned i = 0; i < uses->n; i++) {
        if (uses->v[i].expires_ms < next)
            next = uses->v[i].expires_ms;
    }
    return next;
}
