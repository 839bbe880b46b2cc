/*
 * sched.h - the scheduling rules of DESIGN.md section 3 over a ledger.
 *
 * gc_sched_step() looks at the whole ledger at time now_ms, changes what can
 * change without I/O (grants, refusals, expiries, leases moving to preparing,
 * residents marked unloading/reloading) and lists the I/O the daemon must now
 * start (unload or reload a resident) and the changes it must journal and
 * announce. Pure: no I/O, no clock, deterministic for a given ledger and time.
 */
#ifndef GC_SCHED_H
#define GC_SCHED_H

#include "coord/ledger.h"

#define GC_ACTIONS_MAX 256

enum gc_action_kind {
    GC_ACT_GRANTED,       /* lease was granted */
    GC_ACT_REFUSED,       /* lease can never fit: ended failed with GC_ENEVERFITS */
    GC_ACT_EXPIRED,       /* lease's TTL passed: ended expired */
    GC_ACT_PREPARING,     /* lease moved to preparing: evictions follow */
    GC_ACT_UNLOAD,        /* start unloading resident for lease (resident now unloading) */
    GC_ACT_RELOAD,        /* start reloading resident (resident now reloading) */
    GC_ACT_DEMAND,        /* a demand lease was created for an overdue resident */
    GC_ACT_DEMAND_MET,    /* a demand ended: its resident is loaded (released) */
    GC_ACT_DEMAND_FAILED, /* a demand ended: its resident failed or is gone */
    GC_ACT_DRAINING,      /* lease waits for requests in flight through resident to end */
    GC_ACT_RESIZED,       /* a growth was granted: lease (the parent) holds more bytes */
};

struct gc_action {
    enum gc_action_kind kind;
    char lease_id[GC_LEASE_ID_MAX];
    char resident[GC_NAME_MAX + 1];
    unsigned gpu;
    /* GC_ACT_RESIZED: the growth merged into the lease, and its bytes. */
    char growth_id[GC_LEASE_ID_MAX];
    uint64_t bytes;
};

struct gc_actions {
    unsigned n;
    bool truncated; /* more actions were due: call gc_sched_step again */
    struct gc_action items[GC_ACTIONS_MAX];
};

/* Runs the rules once. out is overwritten. */
void gc_sched_step(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out);

/*
 * gc_sched_never_fits: true when lease can never fit on gpu (rule 1): larger
 * than what remains after foreign processes, unattributed use and residents it
 * may not evict. why (may be NULL) gets the arithmetic in a sentence.
 */
bool gc_sched_never_fits(const struct gc_ledger *ledger, const struct gc_lease *lease, unsigned gpu,
                         char *why, size_t why_len);

/*
 * gc_sched_room_why: a sentence saying why need bytes do not fit on gpu now: the
 * room there and what the granted leases on it hold (the largest few by name).
 */
void gc_sched_room_why(const struct gc_ledger *ledger, unsigned gpu, uint64_t need, char *why,
                       size_t why_len);

/* One step of an eviction: resident r to go down to level (freeing freed bytes). */
struct gc_evict_step {
    struct gc_resident *r;
    unsigned level;
    uint64_t freed;
};

/*
 * gc_sched_choose_steps: the cheapest combination of residents on gpu and levels to
 * move them down to that frees at least need bytes for lease (rule 2: fewest bytes
 * taken away, then lower priority, then least recently used). Residents already
 * part-way down may go further. Residents in use (uses > 0) are left out until a
 * lease has waited their drain_timeout_s for them. Writes up to GC_EVICT_MAX steps
 * to ret; returns how many, 0 when no combination suffices.
 */
unsigned gc_sched_choose_steps(struct gc_ledger *ledger, const struct gc_lease *lease, unsigned gpu,
                               uint64_t need, struct gc_evict_step *ret);

/*
 * gc_sched_choose_evictions: the residents of gc_sched_choose_steps' answer (without
 * their levels). Writes up to GC_EVICT_MAX resident pointers to ret; returns how
 * many, 0 when no set suffices.
 */
unsigned gc_sched_choose_evictions(struct gc_ledger *ledger, const struct gc_lease *lease,
                                   unsigned gpu, uint64_t need, struct gc_resident **ret);

#endif
