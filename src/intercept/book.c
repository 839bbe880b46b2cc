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
    uint64_t need, target;

    if (__builtin_add_overflow(b->used_bytes, bytes, &need))
        return UINT64_MAX;
    b->used_bytes = need;
    if (need > b->peak_bytes)
        b->peak_bytes = need;
    if (need <= b->lease_bytes)
        return 0;
    *ret_exact = round_up(need);
    if (__builtin_add_overflow(need, gci_book_slack(need), &target))
        target = need;
    return round_up(target);
}

void gci_book_release(struct gci_book *b, uint64_t bytes)
{
    b->used_bytes = b->used_bytes > bytes ? b->used_bytes - bytes : 0;
}

uint64_t gci_book_shrink_target(struct gci_book *b, int64_t now_ms, int64_t window_ms)
{
    uint64_t slack, target = 0;

    if (now_ms - b->window_start_ms < window_ms)
        return 0;
    slack = gci_book_slack(b->peak_bytes);
    if (b->lease_bytes > b->peak_bytes && b->lease_bytes - b->peak_bytes > 2 * slack)
        target = round_up(b->peak_bytes + slack);
    if (target != 0 && target < b->floor_bytes)
        target = b->floor_bytes < b->lease_bytes ? b->floor_bytes : 0;
    b->peak_bytes = b->used_bytes;
    b->window_start_ms = now_ms;
    return target;
}
