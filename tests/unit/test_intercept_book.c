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

/* ---- the lock-free fast path: counts and the table of live allocations ---- */

#include <pthread.h>
#include <time.h>

#include "intercept/ptrtab.h"

#define RACERS 4

struct race {
    struct gci_book *b;
    uint64_t bytes;
    unsigned wins;
};

static void *race_to_fill(void *arg)
{
    struct race *r = arg;

    while (gci_book_try_count(r->b, r->bytes))
        r->wins++;
    return NULL;
}

TEST(try_count_racing_past_the_lease_fills_it_exactly)
{
    for (int round = 0; round < 200; round++) {
        struct gci_book b = {.lease_bytes = 100 * MiB, .used_bytes = 3 * MiB};
        struct race r[RACERS];
        pthread_t t[RACERS];
        unsigned wins = 0;

        for (int i = 0; i < RACERS; i++) {
            r[i] = (struct race){.b = &b, .bytes = MiB};
            ASSERT_EQ_INT(pthread_create(&t[i], NULL, race_to_fill, &r[i]), 0);
        }
        for (int i = 0; i < RACERS; i++) {
            pthread_join(t[i], NULL);
            wins += r[i].wins;
        }
        /* Exactly the room there was: none counted twice, none lost, none beyond. */
        ASSERT_EQ_INT(wins, 97);
        ASSERT_EQ_U64(b.used_bytes, 100 * MiB);
        ASSERT_EQ_U64(b.peak_bytes, 100 * MiB);
        ASSERT(!gci_book_try_count(&b, 1));
        gci_book_release(&b, 97 * MiB);
        ASSERT_EQ_U64(b.used_bytes, 3 * MiB);
    }
}

TEST(try_count_never_counts_beyond_the_lease_or_wraps)
{
    struct gci_book b = {.lease_bytes = 0};

    ASSERT(!gci_book_try_count(&b, 1)); /* no lease: nothing fits */
    b.lease_bytes = GiB;
    b.used_bytes = GiB - MiB;
    ASSERT(!gci_book_try_count(&b, UINT64_MAX));
    ASSERT(!gci_book_try_count(&b, 2 * MiB));
    ASSERT_EQ_U64(b.used_bytes, GiB - MiB);
    ASSERT(gci_book_try_count(&b, MiB));
    gci_book_release(&b, 4 * GiB); /* more than counted: 0, not a wrap */
    ASSERT_EQ_U64(b.used_bytes, 0);
}

struct lowering {
    struct gci_book *b;
    uint64_t held; /* what the allocators hold right now (atomic) */
    int stop;      /* atomic */
};

static void *allocate_and_free(void *arg)
{
    struct lowering *l = arg;

    while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
        if (!gci_book_try_count(l->b, MiB))
            continue;
        __atomic_add_fetch(&l->held, MiB, __ATOMIC_SEQ_CST);
        __atomic_sub_fetch(&l->held, MiB, __ATOMIC_SEQ_CST);
        gci_book_release(l->b, MiB);
    }
    return NULL;
}

TEST_TIMEOUT(lower_stops_allocations_beyond_it, 60)
{
    struct gci_book b = {.lease_bytes = 64 * MiB};
    struct lowering l = {.b = &b};
    pthread_t t[RACERS];
    unsigned lowered = 0;

    for (int i = 0; i < RACERS; i++)
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, allocate_and_free, &l), 0);
    /* For 3 s of CPU time: the window is a few instructions wide. */
    for (int i = 0; i < 2000000 && (i % 1024 != 0 || clock() < 3 * CLOCKS_PER_SEC); i++) {
        uint64_t target = (uint64_t)(i % 4) * MiB;
        if (gci_book_lower(&b, target)) {
            /* Once lowered, what is held never exceeds it (the shrinker asks the
             * coordinator for target meanwhile). */
            lowered++;
            for (int k = 0; k < 50; k++)
                ASSERT_CMP_INT(__atomic_load_n(&l.held, __ATOMIC_SEQ_CST), <=, target);
        }
        __atomic_store_n(&b.lease_bytes, 64 * MiB, __ATOMIC_SEQ_CST);
    }
    __atomic_store_n(&l.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    ASSERT_CMP_INT(lowered, >, 0);
    ASSERT_EQ_U64(b.used_bytes, 0);
}

TEST(ptrtab_put_take_duplicates_and_overflow)
{
    struct gci_ptrtab t;
    uint64_t bytes;
    size_t n;
    int dev;

    /* 16 slots: the 100 entries mostly overflow. */
    ASSERT_EQ_INT(gci_ptrtab_init(&t, 4), 0);
    ASSERT(!gci_ptrtab_take(&t, 0x1000, &bytes, &dev));
    ASSERT_EQ_INT(gci_ptrtab_put(&t, 0, 1, 0), -1);
    ASSERT_EQ_INT(gci_ptrtab_put(&t, 1, 1, GCI_PTRTAB_DEVICES), -1);
    for (uint64_t i = 1; i <= 100; i++)
        ASSERT_EQ_INT(gci_ptrtab_put(&t, (1ULL << 44) + i * (2 * MiB), i * MiB, (int)(i % 3)), 0);
    ASSERT_EQ_U64(gci_ptrtab_sum(&t, 1, &n), 1717 * MiB); /* 1+4+...+100 */
    ASSERT_EQ_U64(n, 100);
    for (uint64_t i = 1; i <= 100; i++) {
        ASSERT(gci_ptrtab_take(&t, (1ULL << 44) + i * (2 * MiB), &bytes, &dev));
        ASSERT_EQ_U64(bytes, i * MiB);
        ASSERT_EQ_INT(dev, (int)(i % 3));
        ASSERT(!gci_ptrtab_take(&t, (1ULL << 44) + i * (2 * MiB), &bytes, &dev));
    }
    ASSERT_EQ_U64(gci_ptrtab_sum(&t, 1, &n), 0);
    ASSERT_EQ_U64(n, 0);
    /* A key put twice (left by a destroyed context) is taken twice. */
    ASSERT_EQ_INT(gci_ptrtab_put(&t, 0x7000, 5, 0), 0);
    ASSERT_EQ_INT(gci_ptrtab_put(&t, 0x7000, 7, 0), 0);
    ASSERT(gci_ptrtab_take(&t, 0x7000, &bytes, &dev));
    ASSERT(gci_ptrtab_take(&t, 0x7000, &bytes, &dev));
    ASSERT(!gci_ptrtab_take(&t, 0x7000, &bytes, &dev));
    /* Churn through removed slots: they are reused, nothing overflows. */
    for (uint64_t k = 1; k < 100000; k++) {
        ASSERT_EQ_INT(gci_ptrtab_put(&t, k * 512, k, 0), 0);
        ASSERT(gci_ptrtab_take(&t, k * 512, &bytes, &dev));
        ASSERT_EQ_U64(bytes, k);
    }
    ASSERT_EQ_U64(t.overflow.n, 0);
    gci_ptrtab_free(&t);
    gci_ptrtab_free(NULL);
}

/*
 * A simulated driver that hands freed addresses out again (as a real one does),
 * allocator threads that count and record, and frees on other threads through a
 * queue, in the order hooks.c uses: take, free in the driver, release.
 */
#define SIM_ADDRS 96
#define QUEUE_LEN 32

struct sim {
    pthread_mutex_t mu;
    uint64_t free_addrs[SIM_ADDRS];
    unsigned nfree;
    uint64_t queue[QUEUE_LEN];
    unsigned qhead, qlen, qheld; /* qheld: places held by allocations under way */
    struct gci_book book;
    struct gci_ptrtab tab;
    unsigned allocs_left; /* under mu */
    unsigned frees_done;  /* under mu */
    unsigned misses;      /* frees that found no entry (under mu) */
};

static uint64_t sim_driver_alloc(struct sim *s)
{
    uint64_t a = 0;

    pthread_mutex_lock(&s->mu);
    if (s->nfree > 0)
        a = s->free_addrs[--s->nfree];
    pthread_mutex_unlock(&s->mu);
    return a;
}

static void sim_driver_free(struct sim *s, uint64_t a)
{
    pthread_mutex_lock(&s->mu);
    s->free_addrs[s->nfree++] = a;
    pthread_mutex_unlock(&s->mu);
}

static uint64_t sim_bytes_of(uint64_t addr)
{
    return ((addr >> 21) % 7 + 1) * MiB;
}

static void *sim_allocator(void *arg)
{
    struct sim *s = arg;

    for (;;) {
        uint64_t a, bytes;
        bool go;

        pthread_mutex_lock(&s->mu);
        go = s->allocs_left > 0 && s->qlen + s->qheld < QUEUE_LEN;
        if (go) {
            s->allocs_left--;
            s->qheld++;
        } else if (s->allocs_left == 0) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (!go)
            continue;
        a = sim_driver_alloc(s);
        if (a == 0) { /* every address live: give the turn back */
            pthread_mutex_lock(&s->mu);
            s->allocs_left++;
            s->qheld--;
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        bytes = sim_bytes_of(a);
        if (!gci_book_try_count(&s->book, bytes)) {
            uint64_t exact;
            (void)gci_book_reserve(&s->book, bytes, &exact); /* the slow path */
        }
        ASSERT_EQ_INT(gci_ptrtab_put(&s->tab, a, bytes, 2), 0);
        pthread_mutex_lock(&s->mu);
        s->queue[(s->qhead + s->qlen++) % QUEUE_LEN] = a; /* handed to a freeing thread */
        s->qheld--;
        pthread_mutex_unlock(&s->mu);
    }
}

static void *sim_freer(void *arg)
{
    struct sim *s = arg;

    for (;;) {
        uint64_t a = 0, bytes;
        bool done, found;
        int dev;

        pthread_mutex_lock(&s->mu);
        if (s->qlen > 0) {
            a = s->queue[s->qhead];
            s->qhead = (s->qhead + 1) % QUEUE_LEN;
            s->qlen--;
        }
        done = a == 0 && s->allocs_left == 0 && s->qheld == 0;
        pthread_mutex_unlock(&s->mu);
        if (done)
            return NULL;
        if (a == 0)
            continue;
        found = gci_ptrtab_take(&s->tab, a, &bytes, &dev);
        sim_driver_free(s, a);
        if (found)
            gci_book_release(&s->book, bytes);
        pthread_mutex_lock(&s->mu);
        s->misses += !found;
        s->frees_done++;
        pthread_mutex_unlock(&s->mu);
    }
}

static void run_cross_thread(unsigned tab_log2)
{
    static struct sim s;
    pthread_t t[RACERS];
    size_t n;

    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    for (unsigned i = 0; i < SIM_ADDRS; i++)
        s.free_addrs[s.nfree++] = (1ULL << 44) + (uint64_t)i * (2 * MiB);
    s.book.lease_bytes = 200 * MiB;
    s.allocs_left = 100000;
    ASSERT_EQ_INT(gci_ptrtab_init(&s.tab, tab_log2), 0);
    for (int i = 0; i < RACERS; i++)
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, i % 2 ? sim_freer : sim_allocator, &s), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    /* Drain what is still queued, on this thread. */
    for (; s.qlen > 0; s.qlen--, s.qhead = (s.qhead + 1) % QUEUE_LEN) {
        uint64_t bytes;
        int dev;
        ASSERT(gci_ptrtab_take(&s.tab, s.queue[s.qhead], &bytes, &dev));
        gci_book_release(&s.book, bytes);
        s.frees_done++;
    }
    ASSERT_EQ_U64(s.frees_done, 100000);
    ASSERT_EQ_U64(s.misses, 0);
    /* Everything freed: nothing recorded, nothing counted. */
    ASSERT_EQ_U64(gci_ptrtab_sum(&s.tab, 2, &n), 0);
    ASSERT_EQ_U64(n, 0);
    ASSERT_EQ_U64(s.book.used_bytes, 0);
    gci_ptrtab_free(&s.tab);
}

TEST_TIMEOUT(cross_thread_frees_with_address_reuse_account_exactly, 120)
{
    run_cross_thread(10);
}

TEST_TIMEOUT(cross_thread_frees_through_the_overflow_account_exactly, 120)
{
    run_cross_thread(3); /* 8 slots for up to 96 live: most overflow */
}
