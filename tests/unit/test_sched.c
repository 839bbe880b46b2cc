/* test_sched.c - the ledger's accounting and the scheduling rules, with fake NVML
 * snapshots and a fake clock. */
#include "harness.h"

#include <stdarg.h>

#include <limits.h>

#include "common/err.h"
#include "coord/ledger.h"
#include "coord/sched.h"
#include "coord/transition.h"

#define MiB       (1ULL << 20)
#define GiB       (1ULL << 30)
#define CTX       (300 * MiB)
#define CARD      (24564 * MiB)
#define VAL_BYTES 5046586572ULL  /* 4.7Gi */
#define GEN_BYTES 21045339750ULL /* 19.6Gi */

static struct gc_ledger *new_ledger(unsigned ngpus)
{
    struct gc_ledger_config cfg = {.max_unloaded_ms = 0, .starvation_ms = 0};
    struct gc_ledger *l = calloc(1, sizeof(*l));
    gc_ledger_init(l, &cfg);
    for (unsigned i = 0; i < ngpus; i++)
        ASSERT_EQ_INT(gc_ledger_add_gpu(l, "GPU-x", "test", CARD, 0, 512 * MiB), 0);
    return l;
}

static void free_ledger(struct gc_ledger *l)
{
    gc_ledger_free(l);
    free(l);
}

/* Fake NVML: the snapshot lists (pid, bytes) pairs; used = their sum + extra. */
static void snap(struct gc_ledger *l, unsigned gpu, uint64_t extra, int n, ...)
{
    struct gc_snapshot_proc procs[16] = {0};
    uint64_t used = extra;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        procs[i].pid = va_arg(ap, unsigned);
        procs[i].used_bytes = va_arg(ap, uint64_t);
        used += procs[i].used_bytes;
    }
    va_end(ap);
    gc_ledger_set_snapshot(l, gpu, used, CARD - used, procs, (unsigned)n, 0);
}

static struct gc_resident *add_resident(struct gc_ledger *l, const char *name, pid_t pid,
                                        unsigned gpu, uint64_t bytes, int priority)
{
    struct gc_resident *r = gc_ledger_resident_alloc(l);
    ASSERT(r != NULL);
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->protocol, sizeof(r->protocol), "seed");
    r->pid = pid;
    r->gpu = gpu;
    r->bytes = bytes;
    r->priority = priority;
    r->state = GC_RES_LOADED;
    return r;
}

static struct gc_lease *add_lease(struct gc_ledger *l, const char *holder, pid_t pid, int gpu,
                                  uint64_t bytes, int priority, int64_t now)
{
    struct gc_lease *lease = NULL;
    ASSERT_EQ_INT(
        gc_ledger_lease_new(l, GC_KIND_HOLDER, holder, pid, gpu, bytes, priority, 30, now, &lease),
        0);
    return lease;
}

/* The id of the active lease of holder. */
static const char *holder_lease_id(struct gc_ledger *l, const char *holder)
{
    for (unsigned i = 0; i < l->nleases; i++) {
        if (strcmp(l->leases[i]->holder, holder) == 0)
            return l->leases[i]->id;
    }
    return "";
}

/* A demand for resident r (as the daemon makes one: it evicts with r's priority);
 * its id goes to id (GC_LEASE_ID_MAX bytes). */
static void add_demand(struct gc_ledger *l, const struct gc_resident *r, int64_t now, char *id)
{
    struct gc_lease *d = NULL;
    ASSERT_EQ_INT(
        gc_ledger_lease_new(l, GC_KIND_DEMAND, r->name, 0, (int)r->gpu, r->bytes, 100, 0, now, &d),
        0);
    d->evict_priority = r->priority;
    snprintf(id, GC_LEASE_ID_MAX, "%s", d->id);
}

static const struct gc_action *find_action(const struct gc_actions *a, enum gc_action_kind kind,
                                           const char *who)
{
    for (unsigned i = 0; i < a->n; i++) {
        if (a->items[i].kind != kind)
            continue;
        if (who == NULL || strcmp(a->items[i].lease_id, who) == 0 ||
            strcmp(a->items[i].resident, who) == 0)
            return &a->items[i];
    }
    return NULL;
}

/* What the engine does when an unload step verified the memory is gone, at the level
 * the scheduler aimed for: the transitions of coord/transition.c. */
static void unload_done(struct gc_ledger *l, struct gc_resident *r, const char *lease_id,
                        int64_t now)
{
    struct gc_lease *lease = gc_ledger_lease_find(l, lease_id);

    unsigned to = r->target_level > 0 ? r->target_level : gc_resident_nlevels(r) - 1;

    gc_resident_unloaded(r, to, gc_ledger_proc_usage(l, r->gpu, r->pid), r->bytes, true, true, 1,
                         now);
    ASSERT(lease != NULL);
    gc_lease_eviction_done(lease);
}

TEST(founding_swap_cycle)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX];

    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES);
    struct gc_lease *gen = add_lease(l, "generation", 200, 0, GEN_BYTES, 100, 0);
    snprintf(id, sizeof(id), "%s", gen->id);

    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_PREPARING, id) != NULL);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "validation") != NULL);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) == NULL);
    ASSERT_EQ_INT(val->state, GC_RES_UNLOADING);
    ASSERT_EQ_U64(val->usage_before, CTX + VAL_BYTES);

    /* While the unload is being verified (NVML still shows the memory): no grant. */
    gc_sched_step(l, 3, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) == NULL);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_PREPARING);

    /* NVML shows it gone, the job marks it unloaded: granted, resident stays unloaded. */
    snap(l, 0, 0, 1, 100u, CTX);
    unload_done(l, val, id, 2);
    gc_sched_step(l, 4, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) != NULL);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") == NULL);
    gen = gc_ledger_lease_find(l, id);
    ASSERT_EQ_INT(gen->state, GC_LEASE_GRANTED);
    ASSERT_EQ_INT(gen->nevicted, 1);
    ASSERT_STREQ(gen->evicted[0], "validation");

    /* Holder uses its memory; after release and exit the resident is restored. */
    snap(l, 0, 0, 2, 100u, CTX, 200u, CTX + GEN_BYTES - 400 * MiB);
    gc_sched_step(l, 5, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL);
    gc_ledger_lease_end(l, gen, GC_LEASE_RELEASED, 0, NULL, 6);
    snap(l, 0, 0, 1, 100u, CTX);
    gc_sched_step(l, 7, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    ASSERT_EQ_INT(val->state, GC_RES_RELOADING);
    free_ledger(l);
}

TEST(restore_of_a_resident_still_holding_its_memory_needs_no_room)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    /* Its unload freed nothing (on_stuck=fail): 12Gi still held on a card with 11Gi
     * headroom. It is restored all the same: its memory is already there. */
    struct gc_resident *val = add_resident(l, "validation", 100, 0, 12 * GiB, 10);
    val->state = GC_RES_UNLOADED;
    val->evicted = true;
    val->floor_bytes = CTX;
    snap(l, 0, 0, 1, 100u, CTX + 12 * GiB);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    /* Half of it freed: the other half needs room, and there is none. */
    gc_resident_reload_deferred(val, "no room");
    snap(l, 0, 0, 2, 100u, CTX + 6 * GiB, 300u, 17 * GiB);
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL);
    snap(l, 0, 0, 2, 100u, CTX + 6 * GiB, 300u, 10 * GiB);
    gc_sched_step(l, 3, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    free_ledger(l);
}

TEST(released_holder_still_holding_blocks_restore)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    val->state = GC_RES_UNLOADED;
    val->evicted = true;
    /* The former holder (pid 200) has not freed yet: it is now foreign memory. */
    snap(l, 0, 0, 2, 100u, CTX, 200u, 20 * GiB);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL);
    /* Freed, but the driver has not given it back yet (unattributed used). */
    snap(l, 0, 20 * GiB, 1, 100u, CTX);
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL);
    snap(l, 0, 0, 1, 100u, CTX);
    gc_sched_step(l, 3, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    free_ledger(l);
}

TEST(never_fits_is_refused_with_arithmetic)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX];
    add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES);
    struct gc_lease *big = add_lease(l, "big", 0, 0, 25 * GiB, 100, 0);
    snprintf(id, sizeof(id), "%s", big->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_REFUSED, id) != NULL);
    ASSERT(gc_ledger_lease_find(l, id) == NULL);
    const struct gc_lease *h = gc_ledger_lease_lookup(l, id);
    ASSERT(h != NULL);
    ASSERT_EQ_INT(h->state, GC_LEASE_FAILED);
    ASSERT_EQ_INT(h->error, GC_ENEVERFITS);
    ASSERT(strstr(h->reason, "25Gi needed") != NULL);
    ASSERT(strstr(h->reason, "reserve 512Mi") != NULL);
    /* Nothing was evicted for it. */
    ASSERT(find_action(&a, GC_ACT_UNLOAD, NULL) == NULL);
    free_ledger(l);
}

TEST(never_fits_counts_residents_it_may_not_evict)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    /* A resident of higher priority than the lease holds 10Gi. */
    add_resident(l, "important", 100, 0, 10 * GiB, 500);
    snap(l, 0, 0, 1, 100u, CTX + 10 * GiB);
    struct gc_lease *x = add_lease(l, "x", 0, 0, 14 * GiB, 100, 0);
    char id[GC_LEASE_ID_MAX];
    snprintf(id, sizeof(id), "%s", x->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_REFUSED, id) != NULL);
    /* The same request at a higher priority may evict it. */
    x = add_lease(l, "x", 0, 0, 14 * GiB, 1000, 0);
    snprintf(id, sizeof(id), "%s", x->id);
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "important") != NULL);
    free_ledger(l);
}

TEST(fifo_with_backfill)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    char ida[32], idb[32], idc[32], idd[32];
    snap(l, 0, 0, 0);
    struct gc_lease *la = add_lease(l, "a", 0, 0, 10 * GiB, 100, 0);
    snprintf(ida, sizeof(ida), "%s", la->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, ida) != NULL);

    snprintf(idb, sizeof(idb), "%s", add_lease(l, "b", 0, 0, 20 * GiB, 100, 2)->id);
    snprintf(idc, sizeof(idc), "%s", add_lease(l, "c", 0, 0, 1 * GiB, 100, 3)->id);
    snprintf(idd, sizeof(idd), "%s", add_lease(l, "d", 0, 0, 18 * GiB, 100, 4)->id);
    gc_sched_step(l, 5, &a);
    /* b waits for a; c fits without evicting anything and backfills; d waits behind b. */
    ASSERT(find_action(&a, GC_ACT_GRANTED, idb) == NULL);
    ASSERT(find_action(&a, GC_ACT_GRANTED, idc) != NULL);
    ASSERT(find_action(&a, GC_ACT_GRANTED, idd) == NULL);
    ASSERT_EQ_INT(gc_ledger_queue_position(l, gc_ledger_lease_find(l, idb)), 0);
    ASSERT_EQ_INT(gc_ledger_queue_position(l, gc_ledger_lease_find(l, idd)), 1);

    gc_ledger_lease_end(l, gc_ledger_lease_find(l, ida), GC_LEASE_RELEASED, 0, NULL, 6);
    gc_sched_step(l, 7, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, idb) != NULL);
    ASSERT(find_action(&a, GC_ACT_GRANTED, idd) == NULL);
    free_ledger(l);
}

TEST(starving_head_stops_backfill)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    l->config.starvation_ms = 1000;
    snap(l, 0, 0, 0);
    add_lease(l, "a", 0, 0, 10 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    add_lease(l, "b", 0, 0, 20 * GiB, 100, 2);
    char idc[32];
    snprintf(idc, sizeof(idc), "%s", add_lease(l, "c", 0, 0, 1 * GiB, 100, 3000)->id);
    gc_sched_step(l, 3000, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, idc) == NULL);
    free_ledger(l);
}

TEST(priority_orders_the_queue)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    snap(l, 0, 0, 0);
    struct gc_lease *first = add_lease(l, "a", 0, 0, 20 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    char idlow[32], idhigh[32];
    snprintf(idlow, sizeof(idlow), "%s", add_lease(l, "low", 0, 0, 20 * GiB, 50, 2)->id);
    snprintf(idhigh, sizeof(idhigh), "%s", add_lease(l, "high", 0, 0, 20 * GiB, 200, 3)->id);
    gc_ledger_lease_end(l, first, GC_LEASE_RELEASED, 0, NULL, 4);
    gc_sched_step(l, 5, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, idhigh) != NULL);
    ASSERT(find_action(&a, GC_ACT_GRANTED, idlow) == NULL);
    free_ledger(l);
}

TEST(queue_order_matches_each_position)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    const struct gc_lease *order[GC_LEASES_MAX];
    char holder[16];
    snap(l, 0, 0, 0);
    add_lease(l, "big", 0, 0, 20 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    /* Mixed priorities, and a hole in the table made by an ended lease. */
    for (int i = 0; i < 40; i++) {
        snprintf(holder, sizeof(holder), "h%d", i);
        add_lease(l, holder, 0, 0, 10 * GiB, 100 + (i * 7) % 5, 2 + i);
    }
    gc_ledger_lease_end(l, gc_ledger_lease_find(l, holder_lease_id(l, "h3")), GC_LEASE_RELEASED, 0,
                        NULL, 50);
    gc_sched_step(l, 51, &a);
    unsigned n = gc_ledger_queue_order(l, order);
    ASSERT_EQ_INT(n, 39);
    for (unsigned pos = 0; pos < n; pos++) {
        ASSERT_EQ_INT(gc_ledger_queue_position(l, order[pos]), pos);
        if (pos > 0)
            ASSERT(order[pos - 1]->priority >= order[pos]->priority);
    }
    free_ledger(l);
}

TEST(evicts_the_least)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_resident *set[GC_EVICT_MAX];
    add_resident(l, "r2g", 101, 0, 2 * GiB, 10);
    add_resident(l, "r5g", 102, 0, 5 * GiB, 10);
    add_resident(l, "r3g", 103, 0, 3 * GiB, 5);
    add_resident(l, "high", 104, 0, 8 * GiB, 150);
    snap(l, 0, 0, 4, 101u, CTX + 2 * GiB, 102u, CTX + 5 * GiB, 103u, CTX + 3 * GiB, 104u,
         CTX + 8 * GiB);
    struct gc_lease *lease = add_lease(l, "x", 0, 0, 1, 100, 0);

    /* 3Gi: r3g alone is the fewest bytes. */
    ASSERT_EQ_INT(gc_sched_choose_evictions(l, lease, 0, 3 * GiB, set), 1);
    ASSERT_STREQ(set[0]->name, "r3g");
    /* 2Gi: r2g. */
    ASSERT_EQ_INT(gc_sched_choose_evictions(l, lease, 0, 2 * GiB, set), 1);
    ASSERT_STREQ(set[0]->name, "r2g");
    /* 6Gi: {r3g, r5g}=8, {r2g, r5g}=7, {r2g,r3g}=5 too small, all three=10 -> r2g+r5g. */
    unsigned n = gc_sched_choose_evictions(l, lease, 0, 6 * GiB, set);
    ASSERT_EQ_INT(n, 2);
    ASSERT(strcmp(set[0]->name, "high") != 0 && strcmp(set[1]->name, "high") != 0);
    ASSERT_EQ_U64(set[0]->bytes + set[1]->bytes, 7 * GiB);
    /* 11Gi: only reachable with "high", which outranks the lease: no set. */
    ASSERT_EQ_INT(gc_sched_choose_evictions(l, lease, 0, 11 * GiB, set), 0);
    free_ledger(l);
}

TEST(eviction_ties_go_to_lower_priority_then_lru)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_resident *set[GC_EVICT_MAX];
    struct gc_resident *a = add_resident(l, "a", 101, 0, 4 * GiB, 20);
    struct gc_resident *b = add_resident(l, "b", 102, 0, 4 * GiB, 10);
    snap(l, 0, 0, 2, 101u, 4 * GiB, 102u, 4 * GiB);
    struct gc_lease *lease = add_lease(l, "x", 0, 0, 1, 100, 0);
    ASSERT_EQ_INT(gc_sched_choose_evictions(l, lease, 0, 3 * GiB, set), 1);
    ASSERT_STREQ(set[0]->name, "b");
    b->priority = 20;
    a->last_used_ms = 500;
    b->last_used_ms = 900;
    ASSERT_EQ_INT(gc_sched_choose_evictions(l, lease, 0, 3 * GiB, set), 1);
    ASSERT_STREQ(set[0]->name, "a");
    free_ledger(l);
}

TEST(never_unloads_more_than_needed)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    add_resident(l, "r1", 101, 0, 4 * GiB, 10);
    add_resident(l, "r2", 102, 0, 4 * GiB, 10);
    add_resident(l, "r3", 103, 0, 4 * GiB, 10);
    snap(l, 0, 0, 3, 101u, 4 * GiB, 102u, 4 * GiB, 103u, 4 * GiB);
    /* 24564Mi - 512Mi - 12Gi = ~11.5Gi free: 14Gi needs one unload, not three. */
    add_lease(l, "x", 0, 0, 14 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    unsigned unloads = 0;
    for (unsigned i = 0; i < a.n; i++)
        unloads += a.items[i].kind == GC_ACT_UNLOAD;
    ASSERT_EQ_INT(unloads, 1);
    free_ledger(l);
}

TEST(ttl_expiry)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    snap(l, 0, 0, 0);
    struct gc_lease *x = add_lease(l, "x", 0, 0, GiB, 100, 0);
    x->ttl_s = 2;
    char id[32];
    snprintf(id, sizeof(id), "%s", x->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) != NULL);
    gc_ledger_lease_find(l, id)->heartbeat_ms = 1500;
    gc_sched_step(l, 3400, &a);
    ASSERT(find_action(&a, GC_ACT_EXPIRED, id) == NULL);
    gc_sched_step(l, 3600, &a);
    ASSERT(find_action(&a, GC_ACT_EXPIRED, id) != NULL);
    ASSERT_EQ_INT(gc_ledger_lease_lookup(l, id)->state, GC_LEASE_EXPIRED);
    free_ledger(l);
}

TEST(predictive_keeps_resident_unloaded_for_queued_leases)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    val->state = GC_RES_UNLOADED;
    val->evicted = true;
    snap(l, 0, 0, 2, 100u, CTX, 200u, CTX);
    struct gc_lease *g1 = add_lease(l, "gen", 200, 0, GEN_BYTES, 100, 0);
    gc_sched_step(l, 1, &a);
    ASSERT_EQ_INT(g1->state, GC_LEASE_GRANTED);
    add_lease(l, "gen", 201, 0, GEN_BYTES, 100, 2);
    gc_sched_step(l, 3, &a);
    /* g1 ends; g2 is granted, and the resident is not reloaded in between. */
    gc_ledger_lease_end(l, gc_ledger_lease_find(l, g1->id), GC_LEASE_RELEASED, 0, NULL, 4);
    gc_sched_step(l, 5, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, NULL) != NULL);
    ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL);
    ASSERT_EQ_INT(val->state, GC_RES_UNLOADED);
    free_ledger(l);
}

TEST(predictive_holds_while_a_lease_waits)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    val->state = GC_RES_UNLOADED;
    val->evicted = true;
    snap(l, 0, 0, 1, 100u, CTX);
    struct gc_lease *g1 = add_lease(l, "gen", 200, 0, GEN_BYTES, 100, 0);
    gc_sched_step(l, 1, &a);
    ASSERT_EQ_INT(g1->state, GC_LEASE_GRANTED);
    struct gc_lease *g2 = add_lease(l, "gen2", 201, 0, GEN_BYTES, 100, 2);
    (void)g2;
    gc_sched_step(l, 3, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL);
    free_ledger(l);
}

TEST(demand_whose_reload_gave_up_is_queued_again)
{
    /* The reload found no room after all (NVML disagreed with the ledger) and left the
     * resident unloaded: its granted demand must not hold its bytes forever. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    val->state = GC_RES_UNLOADED;
    val->restore = GC_RESTORE_DEMAND;
    snap(l, 0, 0, 1, 100u, CTX);
    char id[GC_LEASE_ID_MAX];
    add_demand(l, val, 1, id);
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    gc_resident_reload_deferred(val, "no room"); /* the step gave up */
    struct gc_lease *other = add_lease(l, "other", 999, 0, 20 * GiB, 100, 2);
    other->state = GC_LEASE_GRANTED; /* someone took the room */
    other->gpu = 0;
    snap(l, 0, 0, 2, 100u, CTX, 999u, 20 * GiB);
    gc_sched_step(l, 3, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_QUEUED);
    struct gc_account acct;
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.leases, 20 * GiB); /* the other lease's alone */
    gc_ledger_lease_end(l, gc_ledger_lease_find(l, other->id), GC_LEASE_RELEASED, 0, NULL, 4);
    snap(l, 0, 0, 1, 100u, CTX); /* the room is back: tried again */
    gc_sched_step(l, 5, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    free_ledger(l);
}

TEST(preparing_demand_waits_while_its_resident_is_reloaded_by_hand)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 50);
    struct gc_resident *low = add_resident(l, "low", 300, 0, 20 * GiB, 5);
    val->state = GC_RES_UNLOADED;
    val->restore = GC_RESTORE_DEMAND;
    snap(l, 0, 0, 2, 100u, CTX, 300u, CTX + 20 * GiB);
    char id[GC_LEASE_ID_MAX];
    add_demand(l, val, 1, id);
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "low") != NULL);
    /* Meanwhile someone reloads it by hand (the room is there by the time it runs). */
    val->state = GC_RES_RELOADING;
    val->busy = true;
    gc_resident_unloaded(low, 1, CTX, 20 * GiB, true, true, 1, 2);
    gc_lease_eviction_done(gc_ledger_lease_find(l, id));
    snap(l, 0, 0, 2, 100u, CTX, 300u, CTX);
    gc_sched_step(l, 3, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) == NULL);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") == NULL);
    bool swap;
    pid_t dead;
    gc_resident_reload_done(val, true, true, NULL, 1, 4, &swap, &dead);
    gc_sched_step(l, 4, &a);
    ASSERT(find_action(&a, GC_ACT_DEMAND_MET, id) != NULL);
    free_ledger(l);
}

TEST(demand_reloads_when_room_then_is_met)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    val->state = GC_RES_UNLOADED;
    val->restore = GC_RESTORE_DEMAND;
    snap(l, 0, 0, 1, 100u, CTX);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL); /* restore=demand waits */

    char id[GC_LEASE_ID_MAX];
    add_demand(l, val, 2, id);
    gc_sched_step(l, 3, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) != NULL);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    ASSERT_EQ_INT(val->state, GC_RES_RELOADING);
    /* The reload claims its bytes: a lease that now needs them waits. */
    struct gc_lease *gen = add_lease(l, "gen", 200, 0, GEN_BYTES, 100, 4);
    gc_sched_step(l, 5, &a);
    ASSERT_EQ_INT(gen->state, GC_LEASE_QUEUED);

    bool swap;
    pid_t dead;
    gc_resident_reload_done(val, true, true, NULL, 1, 6, &swap, &dead);
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES);
    gc_sched_step(l, 6, &a);
    ASSERT(find_action(&a, GC_ACT_DEMAND_MET, id) != NULL);
    ASSERT(gc_ledger_lease_find(l, id) == NULL);
    /* And now the generation lease evicts it again. */
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "validation") != NULL);
    free_ledger(l);
}

TEST(overdue_demand_evicts_nothing_its_resident_outranks_not)
{
    /* A (priority 10) is overdue while a lease holds the card; B (priority 50) is
     * loaded. A's demand goes first in the queue, but may not evict B. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    l->config.max_unloaded_ms = 10000;
    struct gc_resident *ra = add_resident(l, "A", 100, 0, VAL_BYTES, 10);
    struct gc_resident *rb = add_resident(l, "B", 200, 0, 10 * GiB, 50);
    add_resident(l, "C", 400, 0, 1 * GiB, 5);
    ra->state = GC_RES_UNLOADED;
    ra->evicted = true;
    struct gc_lease *g = add_lease(l, "gen", 300, 0, 8 * GiB, 100, 0);
    g->state = GC_LEASE_GRANTED;
    g->gpu = 0;
    snap(l, 0, 0, 4, 100u, CTX, 200u, CTX + 10 * GiB, 300u, 8 * GiB, 400u, CTX + 1 * GiB);
    gc_sched_step(l, 10001, &a);
    ASSERT(find_action(&a, GC_ACT_DEMAND, "A") != NULL);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "B") == NULL);
    ASSERT_EQ_INT(rb->state, GC_RES_LOADED);
    /* A lower-ranked resident it may evict, when that frees enough. */
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "C") == NULL); /* 1Gi: not enough */
    free_ledger(l);
}

TEST(overdue_resident_gets_a_demand)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    l->config.max_unloaded_ms = 10000;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    val->state = GC_RES_UNLOADED;
    val->evicted = true;
    val->unloaded_since_ms = 0;
    snap(l, 0, 0, 2, 100u, CTX, 200u, CTX);
    struct gc_lease *g1 = add_lease(l, "gen", 200, 0, GEN_BYTES, 100, 0);
    gc_sched_step(l, 1, &a);
    add_lease(l, "gen", 201, 0, GEN_BYTES, 100, 2);
    gc_sched_step(l, 9000, &a);
    ASSERT(find_action(&a, GC_ACT_DEMAND, NULL) == NULL);
    gc_sched_step(l, 10001, &a);
    ASSERT(find_action(&a, GC_ACT_DEMAND, "validation") != NULL);
    /* When g1 ends, the overdue demand goes before the queued lease. */
    gc_ledger_lease_end(l, gc_ledger_lease_find(l, g1->id), GC_LEASE_RELEASED, 0, NULL, 10002);
    snap(l, 0, 0, 1, 100u, CTX);
    gc_sched_step(l, 10003, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    free_ledger(l);
}

TEST(demand_fails_when_resident_fails)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    bool swap;
    pid_t dead;
    val->state = GC_RES_RELOADING;
    gc_resident_reload_done(val, false, true, "reload failed 3 times", 0, 0, &swap, &dead);
    ASSERT_EQ_INT(val->state, GC_RES_FAILED);
    char id[GC_LEASE_ID_MAX];
    add_demand(l, val, 0, id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_DEMAND_FAILED, id) != NULL);
    ASSERT(strstr(gc_ledger_lease_lookup(l, id)->reason, "reload failed 3 times") != NULL);
    free_ledger(l);
}

TEST(any_gpu_prefers_no_eviction_then_most_room)
{
    struct gc_ledger *l = new_ledger(3);
    struct gc_actions a;
    add_resident(l, "r0", 100, 0, 10 * GiB, 10);
    snap(l, 0, 0, 1, 100u, 10 * GiB);
    snap(l, 1, 0, 1, 101u, 20 * GiB); /* foreign */
    snap(l, 2, 0, 1, 102u, 5 * GiB);  /* foreign */
    struct gc_lease *x = add_lease(l, "x", 0, -1, 12 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    ASSERT_EQ_INT(x->state, GC_LEASE_GRANTED);
    ASSERT_EQ_INT(x->gpu, 2);
    /* Now GPU 2 has ~6Gi left, GPU 1 ~3.5Gi, GPU 0 ~13.5Gi: 13Gi fits on 0 only. */
    struct gc_lease *y = add_lease(l, "y", 0, -1, 13 * GiB, 100, 2);
    gc_sched_step(l, 3, &a);
    ASSERT_EQ_INT(y->state, GC_LEASE_GRANTED);
    ASSERT_EQ_INT(y->gpu, 0);
    /* 8Gi fits nowhere without eviction; only GPU 0 has a resident to evict. */
    struct gc_lease *z = add_lease(l, "z", 0, -1, 8 * GiB, 100, 4);
    gc_sched_step(l, 5, &a);
    ASSERT_EQ_INT(z->state, GC_LEASE_PREPARING);
    ASSERT_EQ_INT(z->gpu, 0);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "r0") != NULL);
    free_ledger(l);
}

TEST(accounting_holder_counts_max_of_lease_and_usage)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_account acct;
    struct gc_actions a;
    snap(l, 0, 0, 0);
    add_lease(l, "h", 300, 0, 4 * GiB, 100, 0);
    add_lease(l, "h", 300, 0, 2 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    /* Not yet visible in NVML: both leases count fully. */
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.leases, 6 * GiB);
    /* Visible with less usage than leased: the lease counts. */
    snap(l, 0, 0, 1, 300u, 1 * GiB);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.leases, 6 * GiB);
    ASSERT_EQ_U64(acct.foreign, 0);
    /* Using more than leased: the usage counts. */
    snap(l, 0, 0, 1, 300u, 7 * GiB);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.leases, 7 * GiB);
    ASSERT_EQ_U64(acct.committed, 7 * GiB);
    /* Unattributed NVML use (driver, other namespaces) counts too. */
    snap(l, 0, 1 * GiB, 1, 300u, 7 * GiB);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.unattributed, 1 * GiB);
    ASSERT_EQ_U64(acct.committed, 8 * GiB);
    ASSERT_EQ_INT(acct.headroom, (int64_t)CARD - (int64_t)(512 * MiB) - (int64_t)(8 * GiB));
    free_ledger(l);
}

TEST(budget_limits_capacity)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    l->gpus[0].budget_bytes = 10 * GiB;
    snap(l, 0, 0, 0);
    struct gc_lease *x = add_lease(l, "x", 0, 0, 10 * GiB, 100, 0);
    char id[32];
    snprintf(id, sizeof(id), "%s", x->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_REFUSED, id) != NULL); /* 10Gi + 512Mi reserve > 10Gi */
    x = add_lease(l, "x", 0, 0, 9 * GiB, 100, 0);
    snprintf(id, sizeof(id), "%s", x->id);
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) != NULL);
    free_ledger(l);
}

TEST(limits_on_queue_and_holder)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_lease *x;
    l->config.queue_max = 2;
    l->config.leases_per_holder_max = 3;
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "a", 0, 0, GiB, 100, 30, 0, &x), 0);
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "a", 0, 0, GiB, 100, 30, 0, &x), 0);
    unsigned before = l->nleases;
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "b", 0, 0, GiB, 100, 30, 0, &x),
                  GC_ELIMIT);
    ASSERT_EQ_INT(l->nleases, before);
    l->config.queue_max = 0;
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "a", 0, 0, GiB, 100, 30, 0, &x), 0);
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "a", 0, 0, GiB, 100, 30, 0, &x),
                  GC_ELIMIT);
    free_ledger(l);
}

TEST(lease_end_keeps_table_packed_and_history)
{
    struct gc_ledger *l = new_ledger(1);
    char ids[3][32];
    for (int i = 0; i < 3; i++)
        snprintf(ids[i], 32, "%s", add_lease(l, "a", 0, 0, GiB, 100, 0)->id);
    gc_ledger_lease_end(l, gc_ledger_lease_find(l, ids[0]), GC_LEASE_RELEASED, 0, "bye", 5);
    ASSERT_EQ_INT(l->nleases, 2);
    ASSERT(gc_ledger_lease_find(l, ids[1]) != NULL);
    ASSERT(gc_ledger_lease_find(l, ids[2]) != NULL);
    const struct gc_lease *h = gc_ledger_lease_lookup(l, ids[0]);
    ASSERT(h != NULL);
    ASSERT_EQ_INT(h->state, GC_LEASE_RELEASED);
    ASSERT_STREQ(h->reason, "bye");
    free_ledger(l);
}

TEST(pidless_resident_counts_declared_bytes)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_account acct;
    struct gc_resident *r = add_resident(l, "remote", 0, 0, 6 * GiB, 10);
    snap(l, 0, 0, 0);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, 6 * GiB);
    r->state = GC_RES_UNLOADED;
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, 0);
    free_ledger(l);
}

TEST(unattributed_memory_makes_a_lease_wait_not_fail)
{
    /* Memory the driver has not given back yet (no process owns it) is transient. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    snap(l, 0, 20 * GiB, 0);
    struct gc_lease *x = add_lease(l, "x", 0, 0, 19 * GiB, 100, 0);
    char id[32];
    snprintf(id, sizeof(id), "%s", x->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_REFUSED, id) == NULL);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_QUEUED);
    snap(l, 0, 0, 0);
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) != NULL);
    /* A listed foreign process is fixed: that one fails fast. */
    snap(l, 0, 0, 1, 999u, 20 * GiB);
    x = add_lease(l, "y", 0, 0, 19 * GiB, 100, 3);
    snprintf(id, sizeof(id), "%s", x->id);
    gc_sched_step(l, 4, &a);
    ASSERT(find_action(&a, GC_ACT_REFUSED, id) != NULL);
    free_ledger(l);
}

TEST(unloaded_resident_not_yet_freed_does_not_make_a_lease_fail)
{
    /* After a restart the resident is known to be unloaded while NVML still shows its
     * memory: the lease waits for the driver instead of failing. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    val->state = GC_RES_UNLOADED;
    val->evicted = true;
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES);
    struct gc_lease *gen = add_lease(l, "generation", 200, 0, GEN_BYTES, 100, 0);
    char id[32];
    snprintf(id, sizeof(id), "%s", gen->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_REFUSED, id) == NULL);
    /* Once its floor (context) is known, only the floor is fixed. */
    val->floor_bytes = CTX + VAL_BYTES;
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_REFUSED, id) != NULL);
    free_ledger(l);
}

TEST(preparing_lease_keeps_its_claim_while_the_driver_lags)
{
    /* The resident is unloaded (its process shows only its context), but the driver
     * still counts the freed 4.7Gi as used. The lease keeps the room it evicted for:
     * a small lease arriving meanwhile must not take it. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    char id[32], small_id[32];
    l->config.free_lag_ms = 5000;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES);
    struct gc_lease *gen = add_lease(l, "generation", 200, 0, GEN_BYTES, 100, 0);
    snprintf(id, sizeof(id), "%s", gen->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "validation") != NULL);
    snap(l, 0, VAL_BYTES, 1, 100u, CTX); /* freed, not yet given back */
    unload_done(l, val, id, 2);
    gc_sched_step(l, 3, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_PREPARING);
    struct gc_lease *small = add_lease(l, "small", 300, 0, 4 * GiB, 100, 4);
    snprintf(small_id, sizeof(small_id), "%s", small->id);
    gc_sched_step(l, 5, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, small_id) == NULL);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_PREPARING);
    /* The driver gives it back: the lease that evicted is granted first. */
    snap(l, 0, 0, 1, 100u, CTX);
    gc_sched_step(l, 1000, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) != NULL);
    ASSERT(find_action(&a, GC_ACT_GRANTED, small_id) == NULL);
    free_ledger(l);
}

TEST(preparing_lease_claim_lapses_when_the_driver_never_gives_back)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    char id[32];
    l->config.free_lag_ms = 5000;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES);
    struct gc_lease *gen = add_lease(l, "generation", 200, 0, GEN_BYTES, 100, 0);
    snprintf(id, sizeof(id), "%s", gen->id);
    gc_sched_step(l, 1, &a);
    snap(l, 0, VAL_BYTES, 1, 100u, CTX);
    unload_done(l, val, id, 2);
    gc_sched_step(l, 3, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_PREPARING);
    gc_sched_step(l, 3 + 4999, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_PREPARING);
    gc_sched_step(l, 3 + 5000, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_QUEUED);
    /* A shortfall larger than what the driver holds is not lag: no claim kept. */
    struct gc_lease *other = add_lease(l, "other", 999, 0, 5 * GiB, 100, 5500);
    other->state = GC_LEASE_GRANTED;
    other->gpu = 0;
    snap(l, 0, 0, 2, 100u, CTX, 999u, 5 * GiB);
    gen = gc_ledger_lease_find(l, id);
    gen->state = GC_LEASE_PREPARING;
    gen->gpu = 0;
    gen->lag_since_ms = 0;
    gc_sched_step(l, 6000, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_QUEUED);
    free_ledger(l);
}

TEST(an_older_reading_never_replaces_a_newer_one)
{
    /* Request threads read NVML before they take the lock: a reading taken before the
     * one already applied must not roll the ledger back (to memory free that a holder
     * has taken since). */
    struct gc_ledger *l = new_ledger(1);
    struct gc_snapshot_proc now = {.pid = 200, .used_bytes = 20 * GiB};
    ASSERT(gc_ledger_set_snapshot(l, 0, 20 * GiB, CARD - 20 * GiB, &now, 1, 100));
    ASSERT(!gc_ledger_set_snapshot(l, 0, 0, CARD, NULL, 0, 99));
    ASSERT_EQ_U64(l->gpus[0].used_bytes, 20 * GiB);
    ASSERT_EQ_INT(l->gpus[0].nprocs, 1);
    ASSERT(gc_ledger_set_snapshot(l, 0, 0, CARD, NULL, 0, 100)); /* same time: taken */
    ASSERT_EQ_U64(l->gpus[0].used_bytes, 0);
    free_ledger(l);
}

/* A listed process with an ancestor chain: pid, usage, then up to 2 ancestors. */
static void snap_chain(struct gc_ledger *l, unsigned gpu, uint32_t pid, uint64_t used,
                       uint32_t parent, uint32_t grandparent)
{
    struct gc_snapshot_proc p = {.pid = pid, .used_bytes = used};
    p.chain[0] = parent;
    p.chain[1] = grandparent;
    gc_ledger_set_snapshot(l, gpu, used, CARD - used, &p, 1, 0);
}

TEST(descendants_count_for_their_holder)
{
    /* `gpucoord run` (pid 300) holds the lease; its command (pid 301) uses the memory. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_account acct;
    struct gc_actions a;
    add_lease(l, "run", 300, 0, 3 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    snap_chain(l, 0, 301, 3 * GiB + CTX, 300, 1);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.foreign, 0);
    ASSERT_EQ_U64(acct.leases, 3 * GiB + CTX);
    ASSERT_EQ_U64(acct.committed, 3 * GiB + CTX); /* not 6.3Gi */
    ASSERT_EQ_U64(gc_ledger_proc_usage(l, 0, 300), 3 * GiB + CTX);
    /* Without the chain it is a foreign process on top of the lease. */
    snap_chain(l, 0, 301, 3 * GiB + CTX, 0, 0);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.committed, 6 * GiB + CTX);
    free_ledger(l);
}

TEST(nearest_registered_ancestor_wins)
{
    /* A supervisor (500) holds a lease and started a resident (501), whose worker (502)
     * holds the model: the worker counts for the resident, not the supervisor. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_account acct;
    struct gc_actions a;
    add_resident(l, "vllm", 501, 0, 4 * GiB, 10);
    add_lease(l, "super", 500, 0, 1 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    snap_chain(l, 0, 502, 4 * GiB, 501, 500);
    ASSERT_EQ_U64(gc_ledger_proc_usage(l, 0, 501), 4 * GiB);
    ASSERT_EQ_U64(gc_ledger_proc_usage(l, 0, 500), 0);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, 4 * GiB);
    ASSERT_EQ_U64(acct.leases, 1 * GiB);
    ASSERT_EQ_U64(acct.foreign, 0);
    free_ledger(l);
}

TEST(in_use_resident_is_not_evicted_until_its_requests_drain)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX];

    struct gc_resident *vllm = add_resident(l, "vllm", 100, 0, 8 * GiB, 10);
    vllm->drain_timeout_s = 30;
    vllm->uses = 1; /* a request runs through it */
    snap(l, 0, 0, 1, 100u, CTX + 8 * GiB);
    snprintf(id, sizeof(id), "%s", add_lease(l, "job", 200, 0, 18 * GiB, 100, 0)->id);

    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "vllm") == NULL);
    ASSERT(find_action(&a, GC_ACT_DRAINING, "vllm") != NULL);
    ASSERT_EQ_INT(vllm->state, GC_RES_LOADED);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_QUEUED);
    ASSERT_EQ_INT((int)vllm->drain_since_ms, 1);

    /* Still in use a while later: still waits, and the drain is announced once. */
    gc_sched_step(l, 1000, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "vllm") == NULL);
    ASSERT(find_action(&a, GC_ACT_DRAINING, "vllm") == NULL);

    /* The request ends: evicted at once. */
    vllm->uses = 0;
    gc_sched_step(l, 1001, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "vllm") != NULL);
    ASSERT_EQ_INT(vllm->state, GC_RES_UNLOADING);
    ASSERT_EQ_INT((int)vllm->drain_since_ms, 0);
    free_ledger(l);
}

TEST(in_use_resident_is_evicted_once_its_drain_timeout_passes)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;

    struct gc_resident *vllm = add_resident(l, "vllm", 100, 0, 8 * GiB, 10);
    vllm->drain_timeout_s = 2;
    vllm->uses = 3;
    snap(l, 0, 0, 1, 100u, CTX + 8 * GiB);
    add_lease(l, "job", 200, 0, 18 * GiB, 100, 0);
    gc_sched_step(l, 10, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "vllm") == NULL);
    gc_sched_step(l, 2009, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "vllm") == NULL);
    gc_sched_step(l, 2010, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "vllm") != NULL);
    free_ledger(l);
}

TEST(an_idle_resident_is_evicted_before_one_in_use)
{
    /* Two residents could each make room: the one without requests goes, although
     * the one in use would be cheaper to restore. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;

    struct gc_resident *busy = add_resident(l, "busy", 100, 0, 8 * GiB, 10);
    busy->uses = 1;
    busy->drain_timeout_s = 30;
    add_resident(l, "idle", 101, 0, 9 * GiB, 10);
    snap(l, 0, 0, 2, 100u, CTX + 8 * GiB, 101u, CTX + 9 * GiB);
    add_lease(l, "job", 200, 0, 12 * GiB, 100, 0);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "idle") != NULL);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "busy") == NULL);
    ASSERT(find_action(&a, GC_ACT_DRAINING, NULL) == NULL);
    free_ledger(l);
}

TEST(lazy_resident_reloaded_on_demand_keeps_its_room_while_its_request_loads)
{
    /* ComfyUI reloaded on demand holds only its context until the prompt that asked
     * for it loads the models: it counts its bytes all the same (as any loaded
     * resident), so a lease that would fit in the room waits - and, the prompt
     * being in flight, does not evict it either. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    struct gc_account acct;
    char id[GC_LEASE_ID_MAX];

    struct gc_resident *comfy = add_resident(l, "comfyui", 100, 0, 12 * GiB, 10);
    comfy->floor_bytes = CTX;
    comfy->drain_timeout_s = 30;
    comfy->uses = 1;
    snap(l, 0, 0, 1, 100u, CTX);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, CTX + 12 * GiB);
    snprintf(id, sizeof(id), "%s", add_lease(l, "job", 200, 0, 18 * GiB, 100, 0)->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) == NULL);
    ASSERT(find_action(&a, GC_ACT_REFUSED, id) == NULL); /* it could fit: not refused */
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "comfyui") == NULL);
    ASSERT(find_action(&a, GC_ACT_DRAINING, "comfyui") != NULL);

    /* The prompt loaded its models and ended: evicted for the lease now. */
    snap(l, 0, 0, 1, 100u, CTX + 12 * GiB);
    comfy->uses = 0;
    gc_sched_step(l, 2, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "comfyui") != NULL);
    free_ledger(l);
}

TEST(a_loading_resident_counts_its_bytes_before_nvml_shows_them)
{
    /* A process resident (6Gi) just started: its reload verification gave up while
     * it was still loading, so it is marked loaded with nothing in NVML. A 19Gi
     * lease must not be granted beside it: it has to wait for the resident's unload. */
    struct gc_ledger *l = new_ledger(1);
    struct gc_account acct;
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX];
    struct gc_resident *r = add_resident(l, "slow", 100, 0, 6 * GiB, 10);
    snap(l, 0, 0, 0);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, 6 * GiB);
    struct gc_lease *big = add_lease(l, "big", 200, 0, 19 * GiB, 100, 0);
    snprintf(id, sizeof(id), "%s", big->id);
    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) == NULL);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "slow") != NULL);
    /* Verified against what it was counted at, not against the nothing NVML showed. */
    ASSERT_EQ_U64(r->usage_before, 6 * GiB);
    /* Reloading, from an unloaded floor: counted before any byte shows. */
    r->state = GC_RES_RELOADING;
    r->usage_before = CTX;
    snap(l, 0, 0, 1, 100u, CTX);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, CTX + 6 * GiB);
    /* Unloaded: only what NVML shows. */
    r->state = GC_RES_UNLOADED;
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, CTX);
    free_ledger(l);
}

TEST(room_why_names_the_leases_holding_the_room)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    char why[GC_REASON_MAX];
    add_lease(l, "small", 0, 0, 1 * GiB, 100, 0);
    add_lease(l, "big", 0, 0, 19 * GiB, 100, 0);
    snap(l, 0, 0, 0);
    gc_sched_step(l, 1, &a);
    gc_sched_room_why(l, 0, VAL_BYTES, why, sizeof(why));
    ASSERT(strstr(why, "needed on GPU 0") != NULL);
    ASSERT(strstr(why, "2 granted leases hold 20Gi") != NULL);
    /* Largest first. */
    ASSERT(strstr(why, "'big'") != NULL && strstr(why, "'small'") != NULL);
    ASSERT(strstr(why, "'big'") < strstr(why, "'small'"));
    /* A buffer too short is cut, still terminated. */
    gc_sched_room_why(l, 0, VAL_BYTES, why, 24);
    ASSERT_EQ_INT((int)strlen(why), 23);
    free_ledger(l);
}

/* Gives r levels: n (name, bytes) pairs, fullest first; bytes becomes the first's. */
static void set_levels(struct gc_resident *r, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        snprintf(r->levels[i].name, sizeof(r->levels[i].name), "%s", va_arg(ap, const char *));
        r->levels[i].bytes = va_arg(ap, uint64_t);
    }
    va_end(ap);
    r->nlevels = (unsigned)n;
    r->bytes = r->levels[0].bytes;
}

TEST(levels_a_small_shortfall_costs_one_level)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_evict_step steps[GC_EVICT_MAX];
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    set_levels(val, 3, "full", VAL_BYTES, "reduced", VAL_BYTES / 2, "off", 0ULL);
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES);
    struct gc_lease *lease = add_lease(l, "x", 0, 0, 1, 100, 0);

    /* 0.3Gi short: one step down, not a whole unload. */
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, 3 * GiB / 10, steps), 1);
    ASSERT(steps[0].r == val);
    ASSERT_STREQ(gc_resident_level_name(val, steps[0].level), "reduced");
    ASSERT_EQ_U64(steps[0].freed, VAL_BYTES - VAL_BYTES / 2);
    /* More than the reduced level frees: all the way. */
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, 3 * GiB, steps), 1);
    ASSERT_STREQ(gc_resident_level_name(val, steps[0].level), "off");
    ASSERT_EQ_U64(steps[0].freed, VAL_BYTES);
    /* More than it holds: nothing suffices. */
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, 5 * GiB, steps), 0);
    free_ledger(l);
}

TEST(levels_of_several_residents_take_the_least)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_evict_step steps[GC_EVICT_MAX];
    struct gc_resident *a = add_resident(l, "a", 101, 0, 0, 10);
    struct gc_resident *b = add_resident(l, "b", 102, 0, 0, 10);
    set_levels(a, 3, "a6", 6 * GiB, "a4", 4 * GiB, "a0", 0ULL);
    set_levels(b, 3, "b5", 5 * GiB, "b1", 1 * GiB, "b0", 0ULL);
    snap(l, 0, 0, 2, 101u, 6 * GiB, 102u, 5 * GiB);
    struct gc_lease *lease = add_lease(l, "x", 0, 0, 1, 100, 0);

    /* 2Gi: a one step (2Gi) beats b one step (4Gi). */
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, 2 * GiB, steps), 1);
    ASSERT(steps[0].r == a);
    ASSERT_STREQ(gc_resident_level_name(a, steps[0].level), "a4");
    /* 3Gi: b one step (4Gi) is the least; a all the way would take 6Gi. */
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, 3 * GiB, steps), 1);
    ASSERT(steps[0].r == b);
    ASSERT_STREQ(gc_resident_level_name(b, steps[0].level), "b1");
    /* 5.5Gi: a one step + b one step = 6Gi ties a all the way (6Gi); b all the way is
     * too little (5Gi); a step + b off = 7Gi. The tie goes to the lower recency sum:
     * the single resident (a alone). */
    a->last_used_ms = 10;
    b->last_used_ms = 20;
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, 11 * GiB / 2, steps), 1);
    ASSERT(steps[0].r == a);
    ASSERT_STREQ(gc_resident_level_name(a, steps[0].level), "a0");
    /* 10Gi: both, a all the way (6) and b one step (4), not both all the way (11). */
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, 10 * GiB, steps), 2);
    ASSERT_EQ_U64(steps[0].freed + steps[1].freed, 10 * GiB);
    free_ledger(l);
}

TEST(levels_ties_go_to_lower_priority_then_lru)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_evict_step steps[GC_EVICT_MAX];
    struct gc_resident *a = add_resident(l, "a", 101, 0, 0, 20);
    struct gc_resident *b = add_resident(l, "b", 102, 0, 0, 10);
    set_levels(a, 3, "full", 4 * GiB, "half", 2 * GiB, "off", 0ULL);
    set_levels(b, 3, "full", 4 * GiB, "half", 2 * GiB, "off", 0ULL);
    snap(l, 0, 0, 2, 101u, 4 * GiB, 102u, 4 * GiB);
    struct gc_lease *lease = add_lease(l, "x", 0, 0, 1, 100, 0);
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, GiB, steps), 1);
    ASSERT(steps[0].r == b);
    ASSERT_STREQ(gc_resident_level_name(b, steps[0].level), "half");
    b->priority = 20;
    a->last_used_ms = 500;
    b->last_used_ms = 900;
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, GiB, steps), 1);
    ASSERT(steps[0].r == a);
    free_ledger(l);
}

TEST(levels_a_level_that_frees_too_little_is_skipped)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_evict_step steps[GC_EVICT_MAX];
    struct gc_resident *r = add_resident(l, "r", 101, 0, 0, 10);
    set_levels(r, 4, "full", 8 * GiB, "most", 7 * GiB, "some", 3 * GiB, "off", 0ULL);
    snap(l, 0, 0, 1, 101u, CTX + 8 * GiB);
    struct gc_lease *lease = add_lease(l, "x", 0, 0, 1, 100, 0);
    /* 2Gi: "most" frees 1Gi, too little; straight to "some" (5Gi), not "off". */
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, 2 * GiB, steps), 1);
    ASSERT_STREQ(gc_resident_level_name(r, steps[0].level), "some");
    ASSERT_EQ_U64(steps[0].freed, 5 * GiB);
    free_ledger(l);
}

TEST(levels_a_resident_part_way_down_goes_further)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_evict_step steps[GC_EVICT_MAX];
    struct gc_account acct;
    struct gc_resident *r = add_resident(l, "r", 101, 0, 0, 10);
    set_levels(r, 3, "full", 8 * GiB, "half", 4 * GiB, "off", 0ULL);
    r->state = GC_RES_UNLOADED;
    r->level = 1;
    r->floor_bytes = CTX;
    snap(l, 0, 0, 1, 101u, CTX + 4 * GiB);
    /* At "half" it counts its floor and that level, and is missing the rest. */
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, CTX + 4 * GiB);
    ASSERT_EQ_U64(gc_resident_missing_bytes(r), 4 * GiB);
    struct gc_lease *lease = add_lease(l, "x", 0, 0, 1, 100, 0);
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, GiB, steps), 1);
    ASSERT_STREQ(gc_resident_level_name(r, steps[0].level), "off");
    ASSERT_EQ_U64(steps[0].freed, 4 * GiB);
    /* At the last level there is nothing further. */
    r->level = 2;
    ASSERT_EQ_INT(gc_sched_choose_steps(l, lease, 0, GiB, steps), 0);
    free_ledger(l);
}

TEST(levels_founding_generation_costs_one_step_and_restores)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX];
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    set_levels(val, 3, "full", VAL_BYTES, "reduced", VAL_BYTES / 2, "off", 0ULL);
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES);
    struct gc_lease *gen = add_lease(l, "generation", 200, 0, GEN_BYTES, 100, 0);
    snprintf(id, sizeof(id), "%s", gen->id);

    gc_sched_step(l, 1, &a);
    ASSERT(find_action(&a, GC_ACT_UNLOAD, "validation") != NULL);
    ASSERT_EQ_INT(val->state, GC_RES_UNLOADING);
    ASSERT_STREQ(gc_resident_level_name(val, val->target_level), "reduced");

    /* The step verified it at "reduced": the generation fits beside it. */
    snap(l, 0, 0, 1, 100u, CTX + VAL_BYTES / 2);
    unload_done(l, val, id, 2);
    ASSERT_EQ_U64(val->floor_bytes, CTX);
    gc_sched_step(l, 3, &a);
    ASSERT(find_action(&a, GC_ACT_GRANTED, id) != NULL);
    ASSERT_EQ_INT(gc_resident_level(val), 1);
    /* Released: restored to its first level. */
    gc_ledger_lease_end(l, gc_ledger_lease_find(l, id), GC_LEASE_RELEASED, 0, NULL, 4);
    gc_sched_step(l, 5, &a);
    ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
    ASSERT_EQ_INT(val->state, GC_RES_RELOADING);
    /* While reloading it counts what it held plus what it brings back, not twice. */
    struct gc_account acct;
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, CTX + VAL_BYTES);
    free_ledger(l);
}

TEST(lease_ids_are_refused_when_exhausted_never_wrapped)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_lease *lease = NULL, adopted;
    l->next_id = GC_LEASE_ID_LAST;
    lease = add_lease(l, "a", 0, 0, 1 * GiB, 100, 0);
    ASSERT_STREQ(lease->id, "lease-9223372036854775806");
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "b", 0, 0, 1 * GiB, 100, 30, 0, &lease),
                  GC_ELIMIT);
    ASSERT_EQ_U64(l->next_id, (uint64_t)GC_LEASE_ID_LAST + 1);
    ASSERT_EQ_INT(l->nleases, 1);
    /* A journaled id beyond every id (as strtoull saturates it) leaves none either. */
    l->next_id = 5;
    memset(&adopted, 0, sizeof(adopted));
    snprintf(adopted.id, sizeof(adopted.id), "lease-99999999999999999999");
    snprintf(adopted.holder, sizeof(adopted.holder), "c");
    adopted.state = GC_LEASE_QUEUED;
    ASSERT_EQ_INT(gc_ledger_lease_adopt(l, &adopted), 0);
    ASSERT_EQ_U64(l->next_id, (uint64_t)GC_LEASE_ID_LAST + 1);
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "d", 0, 0, 1 * GiB, 100, 30, 0, &lease),
                  GC_ELIMIT);
    free_ledger(l);
}

/* How a container without the host's PID namespace sees NVML's list. */
enum ns_view { NS_HOST, NS_FOREIGN, NS_UNAVAILABLE, NS_ZERO };

/* Fake NVML as seen from a container: the truth is the (pid, bytes) pairs plus extra;
 * device used is truthful, the list shows them as view says. */
static void snap_ns(struct gc_ledger *l, unsigned gpu, enum ns_view view, uint64_t extra, int n,
                    ...)
{
    struct gc_snapshot_proc procs[16] = {0};
    uint64_t used = extra;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        procs[i].pid = va_arg(ap, unsigned);
        procs[i].used_bytes = va_arg(ap, uint64_t);
        used += procs[i].used_bytes;
        if (view == NS_FOREIGN) {
            procs[i].pid += 4194304u;
            procs[i].absent = true;
        } else if (view == NS_UNAVAILABLE) {
            procs[i].used_bytes = UINT64_MAX;
        } else if (view == NS_ZERO) {
            procs[i].used_bytes = 0;
        }
    }
    va_end(ap);
    gc_ledger_set_snapshot(l, gpu, used, CARD - used, procs, (unsigned)n, 0);
}

TEST(attribution_follows_what_nvml_can_tell)
{
    struct gc_ledger *l = new_ledger(1);
    const char *why = NULL;

    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_PROCESS);
    snap_ns(l, 0, NS_HOST, 0, 1, 100u, CTX + VAL_BYTES);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_PROCESS);
    snap_ns(l, 0, NS_FOREIGN, 0, 2, 100u, CTX + VAL_BYTES, 200u, CTX);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_DEVICE);
    ASSERT(strstr(l->gpus[0].attribution_why, "PID namespace") != NULL);
    snap_ns(l, 0, NS_HOST, 0, 1, 100u, CTX + VAL_BYTES);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_PROCESS);
    snap_ns(l, 0, NS_UNAVAILABLE, 0, 1, 100u, CTX + VAL_BYTES);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_DEVICE);
    ASSERT(strstr(l->gpus[0].attribution_why, "no per-process usage") != NULL);
    snap_ns(l, 0, NS_HOST, 0, 1, 100u, CTX + VAL_BYTES);
    snap_ns(l, 0, NS_ZERO, 0, 2, 100u, CTX + VAL_BYTES, 200u, CTX);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_DEVICE);
    ASSERT_STREQ(gc_attribution_name(l->gpus[0].attribution), "device");

    /* One unknown usage among known ones is enough: nothing adds up any more. */
    snap_ns(l, 0, NS_HOST, 0, 1, 100u, CTX + VAL_BYTES);
    struct gc_snapshot_proc mixed[2] = {{.pid = 100, .used_bytes = CTX},
                                        {.pid = 200, .used_bytes = UINT64_MAX}};
    gc_ledger_set_snapshot(l, 0, 2 * CTX, CARD - 2 * CTX, mixed, 2, 0);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_DEVICE);

    /* An empty list proves nothing either way: the mode stays. */
    ASSERT_EQ_INT(gc_ledger_attribution_detect(l, 0, GC_ATTR_PROCESS, &why), GC_ATTR_DEVICE);
    snap_ns(l, 0, NS_HOST, 0, 0);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_DEVICE);
    snap_ns(l, 0, NS_HOST, 0, 1, 100u, CTX);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_PROCESS);
    snap_ns(l, 0, NS_HOST, 0, 0);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_PROCESS);

    /* ... unless a loaded resident with a pid should be on it: the list hides it. */
    add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    snap_ns(l, 0, NS_HOST, CTX + VAL_BYTES, 0);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_DEVICE);
    ASSERT(strstr(l->gpus[0].attribution_why, "lists no process") != NULL);
    free_ledger(l);
}

TEST(device_attribution_counts_declarations_and_the_unexplained_rest)
{
    static const enum ns_view views[] = {NS_FOREIGN, NS_UNAVAILABLE, NS_ZERO};

    for (unsigned v = 0; v < 3; v++) {
        struct gc_ledger *l = new_ledger(1);
        struct gc_account acct;
        struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
        struct gc_lease *gen = add_lease(l, "generation", 200, 0, GEN_BYTES, 100, 0);
        gen->state = GC_LEASE_GRANTED;
        gen->gpu = 0;

        /* The holder has not allocated yet: its lease counts in full all the same. */
        snap_ns(l, 0, views[v], 500 * MiB, 2, 100u, CTX + VAL_BYTES, 200u, CTX);
        gc_ledger_account(l, 0, NULL, &acct);
        ASSERT_EQ_U64(acct.residents, VAL_BYTES);
        ASSERT_EQ_U64(acct.leases, GEN_BYTES);
        ASSERT_EQ_U64(acct.foreign, 0);
        ASSERT_EQ_U64(acct.unattributed, 0); /* declarations explain more than is used */
        ASSERT_EQ_U64(acct.committed, VAL_BYTES + GEN_BYTES);
        ASSERT_EQ_U64(gc_ledger_proc_usage(l, 0, 100), 0);
        ASSERT_EQ_U64(gc_ledger_resident_counted(l, val), VAL_BYTES);

        /* It allocates: what declarations do not explain is the rest of the device. */
        snap_ns(l, 0, views[v], 500 * MiB, 2, 100u, CTX + VAL_BYTES, 200u, CTX + GEN_BYTES);
        gc_ledger_account(l, 0, NULL, &acct);
        ASSERT_EQ_U64(acct.unattributed, 2 * CTX + 500 * MiB);
        ASSERT_EQ_U64(acct.committed, l->gpus[0].used_bytes);

        /* Unloaded and verified: it counts nothing, and what the device still shows is
         * not taken as free. */
        val->state = GC_RES_UNLOADED;
        gc_ledger_account(l, 0, NULL, &acct);
        ASSERT_EQ_U64(acct.residents, 0);
        ASSERT_EQ_U64(acct.committed, l->gpus[0].used_bytes);
        free_ledger(l);
    }
}

/* A lease that needs an eviction gets one in a container, where the resident's pid is
 * not on NVML's list (host pids) or its usage is unknown: not never-fits, and not
 * granted before the device shows the room. */
TEST(device_attribution_swap_cycle)
{
    static const enum ns_view views[] = {NS_FOREIGN, NS_UNAVAILABLE, NS_ZERO};

    for (unsigned v = 0; v < 3; v++) {
        struct gc_ledger *l = new_ledger(1);
        struct gc_actions a;
        char id[GC_LEASE_ID_MAX];
        struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
        snap_ns(l, 0, views[v], 0, 2, 100u, CTX + VAL_BYTES, 200u, CTX);
        struct gc_lease *gen = add_lease(l, "generation", 200, 0, GEN_BYTES, 100, 0);
        snprintf(id, sizeof(id), "%s", gen->id);

        gc_sched_step(l, 1, &a);
        ASSERT(find_action(&a, GC_ACT_REFUSED, id) == NULL);
        ASSERT(find_action(&a, GC_ACT_UNLOAD, "validation") != NULL);
        ASSERT_EQ_INT(val->state, GC_RES_UNLOADING);

        /* Unloaded by its word, the device still full: no grant. */
        val->state = GC_RES_UNLOADED;
        gc_sched_step(l, 2, &a);
        ASSERT(find_action(&a, GC_ACT_GRANTED, id) == NULL);

        /* The device shows the room: granted; the resident stays out while it is held. */
        snap_ns(l, 0, views[v], 0, 2, 100u, CTX, 200u, CTX);
        unload_done(l, val, id, 3);
        gc_sched_step(l, 4, &a);
        ASSERT(find_action(&a, GC_ACT_GRANTED, id) != NULL);
        gen = gc_ledger_lease_find(l, id);
        snap_ns(l, 0, views[v], 0, 2, 100u, CTX, 200u, CTX + GEN_BYTES);
        gc_sched_step(l, 5, &a);
        ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL);

        /* Released, but the device still shows the holder's memory: no restore yet. */
        gc_ledger_lease_end(l, gen, GC_LEASE_RELEASED, 0, NULL, 6);
        gc_sched_step(l, 7, &a);
        ASSERT(find_action(&a, GC_ACT_RELOAD, NULL) == NULL);
        snap_ns(l, 0, views[v], 0, 2, 100u, CTX, 200u, CTX);
        gc_sched_step(l, 8, &a);
        ASSERT(find_action(&a, GC_ACT_RELOAD, "validation") != NULL);
        ASSERT_EQ_INT(val->state, GC_RES_RELOADING);
        free_ledger(l);
    }
}

/* Unloaded to a level that keeps some bytes, a resident counts those in device
 * attribution too: they are declared, not seen. */
TEST(device_attribution_counts_the_level_a_resident_kept)
{
    struct gc_ledger *l = new_ledger(1);
    struct gc_account acct;
    struct gc_resident *val = add_resident(l, "validation", 100, 0, VAL_BYTES, 10);
    set_levels(val, 3, "full", VAL_BYTES, "reduced", VAL_BYTES / 2, "off", 0ULL);
    val->state = GC_RES_UNLOADED;
    val->level = 1;
    snap_ns(l, 0, NS_FOREIGN, 0, 1, 100u, CTX + VAL_BYTES / 2);
    ASSERT_EQ_INT(l->gpus[0].attribution, GC_ATTR_DEVICE);
    ASSERT_EQ_U64(gc_ledger_resident_counted(l, val), VAL_BYTES / 2);
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.residents, VAL_BYTES / 2);
    ASSERT_EQ_U64(acct.unattributed, CTX);
    free_ledger(l);
}
