/*
 * uses.h - requests in flight through residents (gpucoord proxy): each is a "use"
 * with an id and a TTL. An in-use resident is not chosen for eviction; an eviction
 * that needs it waits for its uses to end, at most its drain_timeout_s (sched.c).
 * A use whose TTL passes without renewal ends by itself, so a proxy that crashed
 * never pins a resident. The table grows with the uses in flight.
 */
#ifndef GC_USES_H
#define GC_USES_H

#include <stdbool.h>
#include <stdint.h>

#include "coord/ledger.h"

/* Requests in flight at once through residents. */
#define GC_USES_MAX          1024
#define GC_USE_TTL_DEFAULT_S 30.0
#define GC_USE_TTL_MAX_S     3600.0

struct gc_use {
    char id[GC_LEASE_ID_MAX];
    char resident[GC_NAME_MAX + 1];
    char owner[GC_OWNER_MAX];
    double ttl_s;
    int64_t expires_ms; /* monotonic; renewed by its client */
};

struct gc_uses {
    struct gc_use *v;
    unsigned n, cap;
    uint64_t next_id;
};

void gc_uses_init(struct gc_uses *uses);
void gc_uses_free(struct gc_uses *uses);
/* A new use of resident by owner; GC_ELIMIT past GC_USES_MAX, GC_ENOMEM. The
 * pointer is valid until the table next changes. */
int gc_uses_begin(struct gc_uses *uses, const char *resident, const char *owner, double ttl_s,
                  int64_t now_ms, struct gc_use **ret);
struct gc_use *gc_uses_find(struct gc_uses *uses, const char *resident, const char *id);
void gc_uses_renew(struct gc_use *use, int64_t now_ms);
void gc_uses_end(struct gc_uses *uses, struct gc_use *use);
/*
 * Ends the uses past their TTL, or of residents no longer registered (each told to
 * expired, if not NULL, before it goes), and counts the others into their residents'
 * `uses` in the ledger. Returns the next expiry (INT64_MAX: none).
 */
int64_t gc_uses_settle(struct gc_uses *uses, struct gc_ledger *ledger, int64_t now_ms,
                       void (*expired)(void *ctx, const struct gc_use *use, bool deleted),
                       void *ctx);
/* The next expiry (INT64_MAX: none). */
int64_t gc_uses_next_expiry(const struct gc_uses *uses);

#endif
