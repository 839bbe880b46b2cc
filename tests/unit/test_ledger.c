/* test_ledger.c - the ledger's storage: the lease table grows with use up to
 * GC_LEASES_MAX, lease pointers stay valid while others come and go, and an
 * allocation that fails changes nothing. */
#include "harness.h"

#include "common/err.h"
#include "coord/ledger.h"
#include "coord/sched.h"

#define MiB  (1ULL << 20)
#define CARD (80ULL << 30)

static struct gc_ledger *new_ledger(const struct gc_ledger_config *cfg)
{
    struct gc_ledger_config none = {0};
    struct gc_ledger *l = calloc(1, sizeof(*l));
    ASSERT(l != NULL);
    gc_ledger_init(l, cfg ? cfg : &none);
    ASSERT_EQ_INT(gc_ledger_add_gpu(l, "GPU-x", "test", CARD, 0, 0), 0);
    return l;
}

static void free_ledger(struct gc_ledger *l)
{
    gc_ledger_free(l);
    free(l);
}

/* Small deterministic generator for the orders below. */
static uint32_t rng_next(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

/* The table is packed and every lease knows its index. */
static void check_table(const struct gc_ledger *l)
{
    ASSERT_CMP_INT(l->nleases, <=, l->leases_cap);
    ASSERT_CMP_INT(l->leases_cap, <=, GC_LEASES_MAX);
    for (unsigned i = 0; i < l->nleases; i++) {
        ASSERT(l->leases[i] != NULL);
        ASSERT_EQ_INT(l->leases[i]->slot, i);
        ASSERT(l->leases[i]->in_use);
    }
}

TEST(idle_ledger_allocates_nothing)
{
    struct gc_ledger *l = new_ledger(NULL);
    struct gc_account acct;
    struct gc_actions a;

    /* The fixed part is small: no table sized by the limits. */
    ASSERT_CMP_INT(sizeof(struct gc_ledger), <, 256 * 1024);
    gc_ledger_account(l, 0, NULL, &acct);
    gc_sched_step(l, 1, &a);
    ASSERT_EQ_INT(a.n, 0);
    ASSERT(l->leases == NULL && l->scratch_owners == NULL && l->gpus[0].procs == NULL);
    ASSERT_EQ_INT(l->leases_cap, 0);
    for (unsigned i = 0; i < GC_LEASE_HISTORY; i++)
        ASSERT(l->history[i] == NULL);
    ASSERT_EQ_U64(acct.headroom, CARD);
    free_ledger(l);
}

TEST_TIMEOUT(full_table_in_random_order_keeps_its_invariants, 60)
{
    struct gc_ledger *l = new_ledger(NULL);
    static struct gc_lease *made[GC_LEASES_MAX];
    static char ids[GC_LEASES_MAX][GC_LEASE_ID_MAX];
    static unsigned alive[GC_LEASES_MAX];
    struct gc_lease *extra = NULL;
    uint64_t next_id, next_seq;
    unsigned nalive = 0, nended = 0;
    uint32_t rng = 42;

    for (unsigned i = 0; i < GC_LEASES_MAX; i++) {
        ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "h", (pid_t)(1000 + i), -1, MiB, 100,
                                          0, i, &made[i]),
                      0);
        snprintf(ids[i], sizeof(ids[i]), "%s", made[i]->id);
        alive[nalive++] = i;
    }
    check_table(l);
    ASSERT_EQ_INT(l->nleases, GC_LEASES_MAX);
    /* Past the cap: refused, nothing changed. */
    next_id = l->next_id;
    next_seq = l->next_seq;
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "h", 1, -1, MiB, 100, 0, 0, &extra),
                  GC_ELIMIT);
    ASSERT(extra == NULL);
    ASSERT_EQ_INT(l->nleases, GC_LEASES_MAX);
    ASSERT_EQ_U64(l->next_id, next_id);
    ASSERT_EQ_U64(l->next_seq, next_seq);

    /* End them in random order; the others keep their pointers throughout. */
    while (nalive > 0) {
        unsigned k = rng_next(&rng) % nalive, victim = alive[k];
        const struct gc_lease *h;
        ASSERT(gc_ledger_lease_find(l, ids[victim]) == made[victim]);
        h = gc_ledger_lease_end(l, made[victim], GC_LEASE_RELEASED, 0, "done", 7);
        ASSERT(h == made[victim]);
        ASSERT_EQ_INT(h->state, GC_LEASE_RELEASED);
        ASSERT_STREQ(h->id, ids[victim]);
        alive[k] = alive[--nalive];
        nended++;
        ASSERT_EQ_INT(l->nleases, nalive);
        ASSERT(gc_ledger_lease_find(l, ids[victim]) == NULL);
        ASSERT(gc_ledger_lease_lookup(l, ids[victim]) == h);
        if (nalive % 256 == 0) {
            check_table(l);
            for (unsigned j = 0; j < nalive; j++) {
                ASSERT(gc_ledger_lease_find(l, ids[alive[j]]) == made[alive[j]]);
                ASSERT_STREQ(made[alive[j]]->id, ids[alive[j]]);
            }
        }
    }
    ASSERT_EQ_INT(nended, GC_LEASES_MAX);
    /* The history remembers the last GC_LEASE_HISTORY, no more. */
    {
        unsigned remembered = 0;
        for (unsigned i = 0; i < GC_LEASES_MAX; i++)
            remembered += gc_ledger_lease_lookup(l, ids[i]) != NULL;
        ASSERT_EQ_INT(remembered, GC_LEASE_HISTORY);
    }
    /* Full again after all ended: the table's room is reused. */
    for (unsigned i = 0; i < GC_LEASES_MAX; i++)
        ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "h", 1, -1, MiB, 100, 0, 9, &made[i]),
                      0);
    check_table(l);
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "h", 1, -1, MiB, 100, 0, 0, &extra),
                  GC_ELIMIT);
    free_ledger(l);
}

TEST(pointer_to_the_last_lease_survives_an_earlier_ones_end)
{
    struct gc_ledger *l = new_ledger(NULL);
    struct gc_lease *first, *last;
    char last_id[GC_LEASE_ID_MAX];

    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "a", 10, -1, MiB, 100, 0, 1, &first), 0);
    for (unsigned i = 0; i < 100; i++) /* the table grows under first */
        ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "b", 11, -1, MiB, 100, 0, 1, &last),
                      0);
    snprintf(last_id, sizeof(last_id), "%s", last->id);
    gc_ledger_lease_end(l, first, GC_LEASE_RELEASED, 0, NULL, 2);
    /* The last lease took the first's index, and is still where it was. */
    ASSERT(l->leases[0] == last);
    ASSERT(gc_ledger_lease_find(l, last_id) == last);
    ASSERT_STREQ(last->id, last_id);
    ASSERT_EQ_INT(last->state, GC_LEASE_QUEUED);
    check_table(l);
    free_ledger(l);
}

/* What an allocation failure must leave as it was (the room may have grown). */
struct ledger_view {
    unsigned nleases;
    uint64_t next_id, next_seq;
};

static struct ledger_view view_of(const struct gc_ledger *l)
{
    return (struct ledger_view){l->nleases, l->next_id, l->next_seq};
}

static void assert_same(const struct ledger_view *a, const struct gc_ledger *l)
{
    struct ledger_view now = view_of(l);
    const struct ledger_view *b = &now;

    ASSERT_EQ_INT(a->nleases, b->nleases);
    ASSERT_EQ_U64(a->next_id, b->next_id);
    ASSERT_EQ_U64(a->next_seq, b->next_seq);
}

TEST(failed_allocation_changes_nothing)
{
    struct gc_ledger *l = new_ledger(NULL);
    struct gc_lease *lease = NULL, copy;
    struct gc_actions a;
    struct ledger_view before;
    unsigned n = 0;

    /* Fill the first room exactly, so the next lease needs the table to grow. */
    do {
        ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "h", (pid_t)(100 + n), -1, MiB, 100, 0,
                                          1, &lease),
                      0);
        n++;
    } while (l->nleases < l->leases_cap);
    /* Each of the allocations a growing table makes, failing in turn. */
    for (int after = 0; after < 16; after++) {
        struct gc_lease *got = NULL;
        int rc;
        before = view_of(l);
        gc_ledger_fail_allocs_after(after);
        rc = gc_ledger_lease_new(l, GC_KIND_HOLDER, "h", 1, -1, MiB, 100, 0, 1, &got);
        gc_ledger_fail_allocs_after(-1);
        if (rc == 0) {
            ASSERT_CMP_INT(after, >, 0);
            ASSERT(got != NULL && gc_ledger_lease_find(l, got->id) == got);
            break;
        }
        ASSERT_EQ_INT(rc, GC_ENOMEM);
        ASSERT(got == NULL);
        assert_same(&before, l);
        check_table(l);
    }
    ASSERT_EQ_INT(l->nleases, n + 1);
    check_table(l);

    /* Adopting: the same. */
    copy = *l->leases[0];
    snprintf(copy.id, sizeof(copy.id), "lease-%d", 999999);
    before = view_of(l);
    gc_ledger_fail_allocs_after(0);
    ASSERT_EQ_INT(gc_ledger_lease_adopt(l, &copy), GC_ENOMEM);
    gc_ledger_fail_allocs_after(-1);
    assert_same(&before, l);
    ASSERT(gc_ledger_lease_find(l, copy.id) == NULL);
    ASSERT_EQ_INT(gc_ledger_lease_adopt(l, &copy), 0);
    ASSERT(gc_ledger_lease_find(l, copy.id) != NULL);
    check_table(l);

    /* The scheduler never allocates: it runs (and grants) with allocations failing. */
    gc_ledger_fail_allocs_after(0);
    gc_sched_step(l, 2, &a);
    gc_ledger_fail_allocs_after(-1);
    ASSERT_CMP_INT(a.n, >, 0);
    ASSERT_EQ_INT(a.items[0].kind, GC_ACT_GRANTED);
    free_ledger(l);
}

TEST(first_resident_fails_cleanly_without_memory)
{
    struct gc_ledger *l = new_ledger(NULL);
    struct gc_account acct;

    gc_ledger_fail_allocs_after(0);
    ASSERT(gc_ledger_resident_alloc(l) == NULL);
    gc_ledger_fail_allocs_after(-1);
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++)
        ASSERT(!l->residents[i].in_use);
    ASSERT(gc_ledger_resident_alloc(l) != NULL);
    gc_ledger_account(l, 0, NULL, &acct);
    free_ledger(l);
}

TEST(demand_that_cannot_be_allocated_is_not_announced)
{
    struct gc_ledger_config cfg = {.max_unloaded_ms = 10};
    struct gc_ledger *l = new_ledger(&cfg);
    struct gc_resident *r = gc_ledger_resident_alloc(l);
    struct gc_actions a;

    ASSERT(r != NULL);
    snprintf(r->name, sizeof(r->name), "gen");
    r->bytes = 10 * MiB;
    r->state = GC_RES_UNLOADED;
    r->evicted = true;
    r->restore = GC_RESTORE_AUTO;
    r->unloaded_since_ms = 0;
    /* A lease waits on the GPU, so the restore is overdue, not free. */
    {
        struct gc_lease *w;
        ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "h", 0, 0, CARD, 100, 0, 0, &w), 0);
        w->state = GC_LEASE_GRANTED;
        w->gpu = 0;
        for (unsigned i = 1; l->nleases < l->leases_cap; i++) /* the demand must grow the table */
            ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "q", 0, 0, MiB, 100, 0, 0, &w), 0);
    }
    gc_ledger_fail_allocs_after(0);
    gc_sched_step(l, 100, &a);
    gc_ledger_fail_allocs_after(-1);
    for (unsigned i = 0; i < a.n; i++)
        ASSERT(a.items[i].kind != GC_ACT_DEMAND);
    ASSERT(gc_ledger_demand_find(l, "gen") == NULL);
    check_table(l);
    gc_sched_step(l, 101, &a);
    ASSERT(gc_ledger_demand_find(l, "gen") != NULL);
    check_table(l);
    free_ledger(l);
}

TEST(process_list_grows_with_the_reading)
{
    struct gc_ledger *l = new_ledger(NULL);
    static struct gc_snapshot_proc procs[GC_SNAPSHOT_PROCS_MAX + 10];
    struct gc_account acct;

    for (unsigned i = 0; i < GC_SNAPSHOT_PROCS_MAX + 10; i++) {
        procs[i].pid = 5000 + i;
        procs[i].used_bytes = MiB;
    }
    gc_ledger_set_snapshot(l, 0, 3 * MiB, CARD - 3 * MiB, procs, 3, 1);
    ASSERT_EQ_INT(l->gpus[0].nprocs, 3);
    ASSERT_CMP_INT(l->gpus[0].procs_cap, <, GC_SNAPSHOT_PROCS_MAX);
    /* Past the cap: truncated at it. */
    gc_ledger_set_snapshot(l, 0, 0, CARD, procs, GC_SNAPSHOT_PROCS_MAX + 10, 2);
    ASSERT_EQ_INT(l->gpus[0].nprocs, GC_SNAPSHOT_PROCS_MAX);
    ASSERT_EQ_INT(l->gpus[0].procs[GC_SNAPSHOT_PROCS_MAX - 1].pid,
                  5000 + GC_SNAPSHOT_PROCS_MAX - 1);
    free_ledger(l);

    /* Without memory for a longer list: what fits is kept, the rest is unattributed. */
    l = new_ledger(NULL);
    gc_ledger_set_snapshot(l, 0, 2 * MiB, CARD - 2 * MiB, procs, 2, 1);
    gc_ledger_fail_allocs_after(0);
    gc_ledger_set_snapshot(l, 0, 100 * MiB, CARD - 100 * MiB, procs, 100, 2);
    gc_ledger_fail_allocs_after(-1);
    ASSERT_EQ_INT(l->gpus[0].nprocs, l->gpus[0].procs_cap);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.foreign + acct.unattributed, 100 * MiB);
    free_ledger(l);
}
