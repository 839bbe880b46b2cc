/* book.c - when the interposer grows and shrinks its lease (pure). */
#include "intercept/book.h"

static uint64_t round_up(uint64_t n)
{
    uint64_t r = (n + GCI_ROUND_BYTES - 1) & ~(GCI_ROUND_BYTES - 1);

    return r < n ? n : r;
}

uint64_t gci_book_slack(uint64_t used_bytes)
{
    uint64_t s = used_bytes / 8;

    return round_up(s > GCI_SLACK_MIN_BYTES ? s : GCI_SLACK_MIN_BYTES);
}

uint64_t gci_book_reserve(struct gci_book *b, uint64_t bytes, uint64_t *ret_exact)
{
    uint64_t used = __atomic_load_n(&b->used_bytes, __ATOMIC_RELAXED), need, target;

    do {
        if (__builtin_add_overflow(used, bytes, &need))
            return UINT64_MAX;
    } while (!__atomic_compare_exchange_n(&b->used_bytes, &used, need, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    gci_book_peak_raise(b, need);
    if (need <= __atomic_load_n(&b->lease_bytes, __ATOMIC_SEQ_CST))
        return 0;
    *ret_exact = round_up(need);
    if (__builtin_add_overflow(need, gci_book_slack(need), &target))
        target = need;
    return round_up(target);
}

void gci_book_add(struct gci_book *b, uint64_t bytes)
{
    gci_book_peak_raise(b, __atomic_add_fetch(&b->used_bytes, bytes, __ATOMIC_SEQ_CST));
}

bool gci_book_lower(struct gci_book *b, uint64_t bytes)
{
    uint64_t lease = __atomic_load_n(&b->lease_bytes, __ATOMIC_RELAXED);

    if (bytes >= lease)
        return true;
    __atomic_store_n(&b->lease_bytes, bytes, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&b->used_bytes, __ATOMIC_SEQ_CST) <= bytes)
        return true;
    __atomic_store_n(&b->lease_bytes, lease, __ATOMIC_SEQ_CST);
    return false;
}

uint64_t gci_book_shrink_target(struct gci_book *b, int64_t now_ms, int64_t window_ms)
{
    uint64_t slack, target = 0, peak, lease;

    if (now_ms - b->window_start_ms < window_ms)
        return 0;
    /* A new window begins with what is in use now; allocations counted meanwhile
     * raise it again (an allocation raises the peak after counting). */
    peak = __atomic_exchange_n(&b->peak_bytes, __atomic_load_n(&b->used_bytes, __ATOMIC_SEQ_CST),
                               __ATOMIC_SEQ_CST);
    lease = __atomic_load_n(&b->lease_bytes, __ATOMIC_RELAXED);
    slack = gci_book_slack(peak);
    if (lease > peak && lease - peak > 2 * slack)
        target = round_up(peak + slack);
    if (target != 0 && target < b->floor_bytes)
        target = b->floor_bytes < lease ? b->floor_bytes : 0;
    b->window_start_ms = now_ms;
    return target;
}
