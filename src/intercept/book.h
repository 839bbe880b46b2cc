/*
 * book.h - the interposer's book of one device's lease: what the coordinator
 * granted and what the process holds, and when to grow or shrink the lease.
 *
 * Pure logic: no I/O, no clock (times passed in). The counts are atomic, so that
 * an allocation within the lease costs no lock (gci_book_try_count, from any
 * thread); everything else changes the lease or the window and is called under
 * one lock of the caller's (gci_book_reserve, gci_book_shrink_target,
 * gci_book_lower and writes of lease_bytes).
 *
 * Growth asks for slack above the need (an eighth of it, at least 64 MiB) so
 * that a program growing in many small steps costs a logarithmic number of
 * round trips, not one per allocation. Shrinking waits for a whole window in
 * which the process used much less than its lease (hysteresis): a loop that
 * frees and allocates again never shrinks and regrows the lease.
 */
#ifndef GCI_BOOK_H
#define GCI_BOOK_H

#include <stdbool.h>
#include <stdint.h>

#define GCI_SLACK_MIN_BYTES (64ULL << 20)
/* Lease sizes are rounded up to this (the driver's allocation granularity). */
#define GCI_ROUND_BYTES (2ULL << 20)

struct gci_book {
    /* The fields allocations touch share one cache line, of their own. */
    _Alignas(64) uint64_t lease_bytes; /* granted by the coordinator; 0: no lease (atomic) */
    uint64_t used_bytes;  /* the context estimate plus live and reserved allocations (atomic) */
    uint64_t peak_bytes;  /* highest used_bytes since window_start_ms (atomic) */
    uint64_t floor_bytes; /* never shrink below (the context and GPUCOORD_NEED) */
    int64_t window_start_ms;
};

/* Slack kept above used bytes: max(used / 8, 64 MiB), rounded up to 2 MiB. */
uint64_t gci_book_slack(uint64_t used_bytes);

/*
 * gci_book_reserve: counts bytes about to be allocated. Returns 0 when they fit in
 * the lease; otherwise the lease size to ask for (with slack), and *ret_exact the
 * least that would do (to ask for when the coordinator refuses the larger one).
 * On overflow returns UINT64_MAX and counts nothing.
 */
uint64_t gci_book_reserve(struct gci_book *b, uint64_t bytes, uint64_t *ret_exact);

/* Raises peak_bytes to at least used (lock-free). */
static inline void gci_book_peak_raise(struct gci_book *b, uint64_t used)
{
    uint64_t peak = __atomic_load_n(&b->peak_bytes, __ATOMIC_RELAXED);

    while (used > peak && !__atomic_compare_exchange_n(&b->peak_bytes, &peak, used, true,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* gci_book_release: takes back bytes counted by gci_book_reserve or
 * gci_book_try_count (the allocation failed, or was freed). Lock-free; never
 * below 0. */
static inline void gci_book_release(struct gci_book *b, uint64_t bytes)
{
    uint64_t used = __atomic_sub_fetch(&b->used_bytes, bytes, __ATOMIC_RELEASE);

    /* More given back than counted (never, unless the caller erred): 0, not a
     * wrap that would make every allocation look beyond the lease. */
    if (__builtin_expect(used > UINT64_MAX - bytes, 0))
        __atomic_add_fetch(&b->used_bytes, -used, __ATOMIC_RELAXED);
}

/*
 * gci_book_try_count: lock-free, from any thread: counts bytes and returns true
 * when they fit in the lease as it is; else counts nothing and returns false
 * (then gci_book_reserve, under the lock). Two threads racing past the lease size
 * cannot both succeed beyond it: each adds first and checks the sum. Inline:
 * it is most of what an allocation within the lease costs.
 */
static inline bool gci_book_try_count(struct gci_book *b, uint64_t bytes)
{
    uint64_t lease = __atomic_load_n(&b->lease_bytes, __ATOMIC_RELAXED), used;

    /* Bounded by the lease, so that the sum cannot wrap (however many threads add). */
    if (__builtin_expect(bytes > lease, 0))
        return false;
    /* Add first, then check against the limit as it is now: a gci_book_lower that
     * the check does not see sees the addition (both are sequentially consistent). */
    used = __atomic_add_fetch(&b->used_bytes, bytes, __ATOMIC_SEQ_CST);
    if (__builtin_expect(used > __atomic_load_n(&b->lease_bytes, __ATOMIC_SEQ_CST), 0)) {
        /* Over, for a moment: a thread that looked then went the slow way, which
         * checks again under the lock. */
        gci_book_release(b, bytes);
        return false;
    }
    gci_book_peak_raise(b, used);
    return true;
}

/* Adds bytes to the count unconditionally (the driver took more than counted). */
void gci_book_add(struct gci_book *b, uint64_t bytes);

/*
 * gci_book_lower: before the lease shrinks to bytes: lowers the limit that
 * gci_book_try_count checks, then looks at the count. true: nothing counted
 * beyond bytes, and no gci_book_try_count can count beyond it from now on (each
 * checks the limit after adding, the order the two sides agree on). false: more
 * is in use than bytes; the limit is as it was.
 */
bool gci_book_lower(struct gci_book *b, uint64_t bytes);

/*
 * gci_book_shrink_target: once window_ms has passed since the window began, the
 * lease size to shrink to when the lease exceeded the window's peak by more than
 * twice the slack (peak plus slack, at least the floor), or 0; then a new window
 * begins.
 */
uint64_t gci_book_shrink_target(struct gci_book *b, int64_t now_ms, int64_t window_ms);

#endif
