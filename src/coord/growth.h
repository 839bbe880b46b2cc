/*
 * growth.h - resizing a granted lease (POST /v1/leases/ID/resize).
 *
 * Shrinking is immediate. Growing by D bytes queues a *growth*: a lease of kind
 * GC_KIND_GROWTH for D bytes on the parent's GPU, at the parent's priority, that
 * the scheduler serves like any lease (FIFO within priority, backfill, evictions
 * verified through NVML). When it is granted its bytes move into the parent at
 * once (so the accounting never counts them twice or not at all) and it ends.
 * A growth has no pid and no TTL of its own: it ends with its parent.
 *
 * Pure logic like the ledger: no I/O, no clock, no locks.
 */
#ifndef GC_GROWTH_H
#define GC_GROWTH_H

#include "coord/sched.h"

/*
 * gc_growth_request: lease, an active holder lease, asks to hold bytes (> 0) in
 * all. A queued lease simply changes size. A granted lease that shrinks or keeps
 * its size changes at once, and a pending growth of it is withdrawn. A granted
 * lease that grows gets a growth for the difference (*ret_growth); a pending growth
 * of another size is withdrawn first, one of the same size is returned as is.
 * *ret_growth is NULL when nothing waits. GC_ECONFLICT: the lease is preparing
 * (evictions for it are running) or not a holder lease; GC_ELIMIT: the lease table
 * or queue is full. On error nothing changes.
 */
int gc_growth_request(struct gc_ledger *ledger, struct gc_lease *lease, uint64_t bytes,
                      int64_t now_ms, struct gc_lease **ret_growth);

/* The pending growth of the lease with id parent_id, or NULL. */
struct gc_lease *gc_growth_find(struct gc_ledger *ledger, const char *parent_id);

/* Withdraws a pending growth (ended released with reason); its parent keeps its size. */
void gc_growth_withdraw(struct gc_ledger *ledger, struct gc_lease *growth, const char *reason,
                        int64_t now_ms);

/* Called by the scheduler when it grants growth: moves its bytes into its parent. */
void gc_growth_merge(struct gc_ledger *ledger, struct gc_lease *growth);

/*
 * gc_growth_unmerge: undoes the growth a GC_ACT_RESIZED action reported (its record
 * could not be written): the lease holds its bytes before it, and the ended growth
 * is failed with error and reason, for its resize request to answer.
 */
void gc_growth_unmerge(struct gc_ledger *ledger, const struct gc_action *resized, int error,
                       const char *reason);

/*
 * gc_growth_settle: ends growths that were merged (GC_ACT_RESIZED for the parent)
 * and withdraws those whose parent ended or is no longer granted. Part of
 * gc_sched_step.
 */
void gc_growth_settle(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out);

#endif
