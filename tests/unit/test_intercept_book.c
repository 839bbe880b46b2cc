/* test_intercept_book.c - the interposer's lease arithmetic (when to grow, how much,
 * when to shrink) and its table of live allocations. */
#include "harness.h"

#include "intercept/book.h"
#include "intercept/ptrmap.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

TEST(within_the_lease_needs_no_growth)
{
    struct gci_book b = {.lease_bytes = 2 * GiB, .used_bytes = 512 * MiB};
    uint64_t exact = 0;

    ASSERT_EQ_U64(gci_book_reserve(&b, 1 * GiB, &exact), 0);
    ASSERT_EQ_U64(b.used_bytes, 1536 * MiB);
    ASSERT_EQ_U64(gci_book_reserve(&b, 512 * MiB, &exact), 0); /* exactly full */
    ASSERT_EQ_U64(gci_book_reserve(&b, 1, &exact), 2 * GiB + 1 + 256 * MiB + 2 * MiB - 1);
    ASSERT_EQ_U64(exact, 2 * GiB + 2 * MiB);
}

TEST(growth_asks_for_an_eighth_more_at_least_64mi)
{
    struct gci_book b = {.lease_bytes = 512 * MiB, .used_bytes = 512 * MiB};
    uint64_t exact = 0;

    ASSERT_EQ_U64(gci_book_reserve(&b, 20 * MiB, &exact), 532 * MiB + 68 * MiB);
    ASSERT_EQ_U64(exact, 532 * MiB);
    ASSERT_EQ_U64(gci_book_slack(0), 64 * MiB);
    ASSERT_EQ_U64(gci_book_slack(16 * GiB), 2 * GiB);
}

TEST(growth_in_small_steps_costs_few_resizes)
{
    struct gci_book b = {.lease_bytes = 512 * MiB, .used_bytes = 512 * MiB};
    unsigned resizes = 0;

    /* 1000 allocations of 20Mi: a caching allocator's blocks. */
    for (int i = 0; i < 1000; i++) {
        uint64_t exact, t = gci_book_reserve(&b, 20 * MiB, &exact);
        if (t != 0) {
            resizes++;
            b.lease_bytes = t;
        }
    }
    ASSERT_EQ_U64(b.used_bytes, 512 * MiB + 1000 * 20 * MiB);
    ASSERT_CMP_INT(resizes, <=, 40);
}

TEST(overflow_counts_nothing)
{
    struct gci_book b = {.lease_bytes = GiB, .used_bytes = GiB};
    uint64_t exact;

    ASSERT_EQ_U64(gci_book_reserve(&b, UINT64_MAX, &exact), UINT64_MAX);
    ASSERT_EQ_U64(b.used_bytes, GiB);
}

TEST(shrink_waits_a_whole_window_and_keeps_slack)
{
    struct gci_book b = {.lease_bytes = 10 * GiB, .used_bytes = 512 * MiB};
    uint64_t exact;

    ASSERT_EQ_U64(gci_book_reserve(&b, 8 * GiB, &exact), 0);
    gci_book_release(&b, 8 * GiB);
    /* The window that saw 8.5Gi in use: no shrink. */
    ASSERT_EQ_U64(gci_book_shrink_target(&b, 1000, 2000), 0);
    ASSERT_EQ_U64(gci_book_shrink_target(&b, 2000, 2000), 0);
    /* A whole window at 512Mi: shrink to it plus slack. */
    ASSERT_EQ_U64(gci_book_shrink_target(&b, 4000, 2000), 576 * MiB);
}

TEST(free_and_allocate_again_never_shrinks)
{
    struct gci_book b = {.lease_bytes = 4 * GiB, .used_bytes = 512 * MiB};
    uint64_t exact;

    for (int64_t t = 0; t < 20000; t += 100) {
        ASSERT_EQ_U64(gci_book_reserve(&b, 3 * GiB, &exact), 0);
        gci_book_release(&b, 3 * GiB);
        ASSERT_EQ_U64(gci_book_shrink_target(&b, t, 2000), 0);
    }
}

TEST(shrink_keeps_the_floor)
{
    struct gci_book b = {.lease_bytes = 10 * GiB, .used_bytes = 512 * MiB, .floor_bytes = 4 * GiB};

    ASSERT_EQ_U64(gci_book_shrink_target(&b, 5000, 2000), 4 * GiB);
    b.lease_bytes = 4 * GiB;
    ASSERT_EQ_U64(gci_book_shrink_target(&b, 10000, 2000), 0);
}

TEST(ptrmap_put_take_and_grow)
{
    struct gci_ptrmap m = {0};
    uint64_t bytes;
    int dev;

    ASSERT(!gci_ptrmap_take(&m, 0x1000, &bytes, &dev));
    ASSERT_EQ_INT(gci_ptrmap_put(&m, 0, 1, 0), -1);
    for (uint64_t i = 1; i <= 100000; i++)
        ASSERT_EQ_INT(gci_ptrmap_put(&m, (1ULL << 44) + i * 512, i, (int)(i % 3)), 0);
    ASSERT_EQ_U64(m.n, 100000);
    for (uint64_t i = 1; i <= 100000; i += 2) {
        ASSERT(gci_ptrmap_take(&m, (1ULL << 44) + i * 512, &bytes, &dev));
        ASSERT_EQ_U64(bytes, i);
        ASSERT_EQ_INT(dev, (int)(i % 3));
    }
    ASSERT(!gci_ptrmap_take(&m, (1ULL << 44) + 512, &bytes, &dev));
    ASSERT(gci_ptrmap_take(&m, (1ULL << 44) + 1024, &bytes, &dev));
    /* Churn through tombstones without growing without bound. */
    for (uint64_t k = 0; k < 200000; k++) {
        ASSERT_EQ_INT(gci_ptrmap_put(&m, 7 + k, k, 0), 0);
        ASSERT(gci_ptrmap_take(&m, 7 + k, &bytes, &dev));
    }
    ASSERT_CMP_INT(m.cap, <=, 1 << 19);
    gci_ptrmap_clear(&m);
    ASSERT_EQ_U64(m.n, 0);
}
