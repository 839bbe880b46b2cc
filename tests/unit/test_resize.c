/* test_resize.c - resizing a granted lease: shrinks at once, growths queued and
 * served by the scheduler like leases, with fake NVML snapshots and a fake clock. */
#include "harness.h"

#include <stdarg.h>

#include "common/err.h"
#include "coord/growth.h"
#include "coord/ledger.h"
#include "coord/sched.h"

#define MiB       (1ULL << 20)
#define GiB       (1ULL << 30)
#define CTX       (300 * MiB)
#define CARD      (24564 * MiB)
#define VAL_BYTES 5046586572ULL  /* 4.7Gi */
#define GEN_BYTES 21045339750ULL /* 19.6Gi */

static struct gc_ledger *new_ledger(void)
{
    struct gc_ledger_config cfg = {0};
    struct gc_ledger *l = calloc(1, sizeof(*l));
    gc_ledger_init(l, &cfg);
    ASSERT_EQ_INT(gc_ledger_add_gpu(l, "GPU-x", "test", CARD, 0, 512 * MiB), 0);
    return l;
}

static void free_ledger(struct gc_ledger *l)
{
    gc_ledger_free(l);
    free(l);
}

/* Fake NVML: (pid, bytes) pairs. */
static void snap(struct gc_ledger *l, int n, ...)
{
    struct gc_snapshot_proc procs[8] = {0};
    uint64_t used = 0;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        procs[i].pid = va_arg(ap, unsigned);
        procs[i].used_bytes = va_arg(ap, uint64_t);
        used += procs[i].used_bytes;
    }
    va_end(ap);
    gc_ledger_set_snapshot(l, 0, used, CARD - used, procs, (unsigned)n, 0);
}

static struct gc_resident *add_validation(struct gc_ledger *l)
{
    struct gc_resident *r = gc_ledger_resident_alloc(l);
    ASSERT(r != NULL);
    snprintf(r->name, sizeof(r->name), "validation");
    snprintf(r->protocol, sizeof(r->protocol), "seed");
    r->pid = 100;
    r->bytes = VAL_BYTES;
    r->priority = 10;
    r->state = GC_RES_LOADED;
    return r;
}

/* A lease for pid 200, granted; its id goes to id. */
static void granted_lease(struct gc_ledger *l, uint64_t bytes, char *id)
{
    struct gc_lease *lease = NULL;
    struct gc_actions a;
    ASSERT_EQ_INT(gc_ledger_lease_new(l, GC_KIND_HOLDER, "prog", 200, 0, bytes, 100, 0, 0, &lease),
                  0);
    snprintf(id, GC_LEASE_ID_MAX, "%s", lease->id);
    gc_sched_step(l, 1, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_GRANTED);
}

static bool has_action(const struct gc_actions *a, enum gc_action_kind kind, const char *who)
{
    for (unsigned i = 0; i < a->n; i++) {
        if (a->items[i].kind == kind &&
            (strcmp(a->items[i].lease_id, who) == 0 || strcmp(a->items[i].resident, who) == 0))
            return true;
    }
    return false;
}

TEST(growth_that_fits_is_granted_in_one_step)
{
    struct gc_ledger *l = new_ledger();
    struct gc_lease *g;
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX], gid[GC_LEASE_ID_MAX];

    snap(l, 1, 200u, CTX);
    granted_lease(l, CTX, id);
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 2 * GiB, 2, &g), 0);
    ASSERT(g != NULL);
    ASSERT_EQ_U64(g->bytes, 2 * GiB - CTX);
    ASSERT_EQ_INT(g->kind, GC_KIND_GROWTH);
    snprintf(gid, sizeof(gid), "%s", g->id);
    ASSERT(strncmp(gid, "growth-", 7) == 0);
    /* Not grown before the scheduler grants it. */
    ASSERT_EQ_U64(gc_ledger_lease_find(l, id)->bytes, CTX);
    gc_sched_step(l, 3, &a);
    ASSERT(has_action(&a, GC_ACT_RESIZED, id));
    ASSERT_EQ_U64(gc_ledger_lease_find(l, id)->bytes, 2 * GiB);
    /* The growth ended, merged: nothing counts twice. */
    ASSERT(gc_ledger_lease_find(l, gid) == NULL);
    ASSERT_EQ_INT(gc_ledger_lease_lookup(l, gid)->state, GC_LEASE_RELEASED);
    ASSERT_EQ_INT((int)l->nleases, 1);
    struct gc_account acct;
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.leases, 2 * GiB);
    free_ledger(l);
}

TEST(growth_whose_record_failed_is_undone)
{
    struct gc_ledger *l = new_ledger();
    struct gc_lease *g;
    struct gc_actions a;
    const struct gc_action *resized = NULL;
    char id[GC_LEASE_ID_MAX], gid[GC_LEASE_ID_MAX];

    snap(l, 1, 200u, CTX);
    granted_lease(l, CTX, id);
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 2 * GiB, 2, &g), 0);
    snprintf(gid, sizeof(gid), "%s", g->id);
    gc_sched_step(l, 3, &a);
    for (unsigned i = 0; i < a.n; i++) {
        if (a.items[i].kind == GC_ACT_RESIZED)
            resized = &a.items[i];
    }
    ASSERT(resized != NULL);
    ASSERT_STREQ(resized->growth_id, gid);
    ASSERT_EQ_U64(resized->bytes, 2 * GiB - CTX);
    /* The engine could not journal it: the lease keeps its size, the growth failed. */
    gc_growth_unmerge(l, resized, GC_EJOURNAL, "cannot write the journal");
    ASSERT_EQ_U64(gc_ledger_lease_find(l, id)->bytes, CTX);
    ASSERT_EQ_INT(gc_ledger_lease_lookup(l, gid)->state, GC_LEASE_FAILED);
    ASSERT_EQ_INT(gc_ledger_lease_lookup(l, gid)->error, GC_EJOURNAL);
    struct gc_account acct;
    gc_ledger_account(l, 0, NULL, &acct);
    ASSERT_EQ_U64(acct.leases, CTX);
    free_ledger(l);
}

TEST(growth_evicts_and_waits_for_verification)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *val = add_validation(l);
    struct gc_lease *g;
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX], gid[GC_LEASE_ID_MAX];

    snap(l, 2, 100u, CTX + VAL_BYTES, 200u, CTX);
    granted_lease(l, CTX, id);
    /* The founding case: the program grows to 19.6Gi beside the validation server. */
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), GEN_BYTES, 2, &g), 0);
    snprintf(gid, sizeof(gid), "%s", g->id);
    gc_sched_step(l, 3, &a);
    ASSERT(has_action(&a, GC_ACT_PREPARING, gid));
    ASSERT(has_action(&a, GC_ACT_UNLOAD, "validation"));
    ASSERT(!has_action(&a, GC_ACT_RESIZED, id));
    ASSERT_EQ_U64(gc_ledger_lease_find(l, id)->bytes, CTX);
    /* Unloaded but NVML still shows it: no growth yet. */
    val->state = GC_RES_UNLOADED;
    val->busy = false;
    val->evicted = true;
    gc_ledger_lease_find(l, gid)->evicting = 0;
    gc_sched_step(l, 4, &a);
    ASSERT(!has_action(&a, GC_ACT_RESIZED, id));
    /* Verified free: the lease grows and names what was evicted for it. */
    snap(l, 2, 100u, CTX, 200u, CTX);
    gc_sched_step(l, 5, &a);
    ASSERT(has_action(&a, GC_ACT_RESIZED, id));
    struct gc_lease *p = gc_ledger_lease_find(l, id);
    ASSERT_EQ_U64(p->bytes, GEN_BYTES);
    ASSERT_EQ_INT((int)p->nevicted, 1);
    ASSERT_STREQ(p->evicted[0], "validation");
    /* The resident stays unloaded while the lease holds the room, comes back after. */
    gc_sched_step(l, 6, &a);
    ASSERT(!has_action(&a, GC_ACT_RELOAD, "validation"));
    gc_ledger_lease_end(l, p, GC_LEASE_RELEASED, 0, NULL, 7);
    snap(l, 1, 100u, CTX);
    gc_sched_step(l, 8, &a);
    ASSERT(has_action(&a, GC_ACT_RELOAD, "validation"));
    free_ledger(l);
}

TEST(shrink_is_immediate_and_withdraws_a_pending_growth)
{
    struct gc_ledger *l = new_ledger();
    struct gc_lease *g, *other = NULL;
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX], gid[GC_LEASE_ID_MAX];

    snap(l, 1, 200u, CTX);
    granted_lease(l, 4 * GiB, id);
    /* Another holder fills the card: a growth must wait. */
    ASSERT_EQ_INT(
        gc_ledger_lease_new(l, GC_KIND_HOLDER, "other", 300, 0, 19 * GiB, 100, 0, 0, &other), 0);
    gc_sched_step(l, 2, &a);
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 6 * GiB, 3, &g), 0);
    snprintf(gid, sizeof(gid), "%s", g->id);
    gc_sched_step(l, 4, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, gid)->state, GC_LEASE_QUEUED);
    /* The same request again returns the same growth. */
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 6 * GiB, 5, &g), 0);
    ASSERT_STREQ(g->id, gid);
    /* Shrinking: at once, and the growth is gone. */
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 1 * GiB, 6, &g), 0);
    ASSERT(g == NULL);
    ASSERT_EQ_U64(gc_ledger_lease_find(l, id)->bytes, 1 * GiB);
    ASSERT(gc_growth_find(l, id) == NULL);
    ASSERT_EQ_INT(gc_ledger_lease_lookup(l, gid)->state, GC_LEASE_RELEASED);
    free_ledger(l);
}

TEST(growth_of_another_size_replaces_the_pending_one)
{
    struct gc_ledger *l = new_ledger();
    struct gc_lease *g, *other = NULL;
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX], gid[GC_LEASE_ID_MAX];

    snap(l, 1, 200u, CTX);
    granted_lease(l, 4 * GiB, id);
    ASSERT_EQ_INT(
        gc_ledger_lease_new(l, GC_KIND_HOLDER, "other", 300, 0, 19 * GiB, 100, 0, 0, &other), 0);
    gc_sched_step(l, 2, &a);
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 6 * GiB, 3, &g), 0);
    snprintf(gid, sizeof(gid), "%s", g->id);
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 8 * GiB, 4, &g), 0);
    ASSERT(strcmp(g->id, gid) != 0);
    ASSERT_EQ_U64(g->bytes, 4 * GiB);
    ASSERT(gc_ledger_lease_find(l, gid) == NULL);
    free_ledger(l);
}

TEST(growth_ends_with_its_parent)
{
    struct gc_ledger *l = new_ledger();
    struct gc_lease *g, *other = NULL;
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX], gid[GC_LEASE_ID_MAX];

    snap(l, 1, 200u, CTX);
    granted_lease(l, 4 * GiB, id);
    ASSERT_EQ_INT(
        gc_ledger_lease_new(l, GC_KIND_HOLDER, "other", 300, 0, 19 * GiB, 100, 0, 0, &other), 0);
    gc_sched_step(l, 2, &a);
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 6 * GiB, 3, &g), 0);
    snprintf(gid, sizeof(gid), "%s", g->id);
    gc_ledger_lease_end(l, gc_ledger_lease_find(l, id), GC_LEASE_EXPIRED, 0, NULL, 4);
    gc_sched_step(l, 5, &a);
    ASSERT(gc_ledger_lease_find(l, gid) == NULL);
    ASSERT(strstr(gc_ledger_lease_lookup(l, gid)->reason, "ended") != NULL);
    free_ledger(l);
}

TEST(resize_of_a_queued_lease_changes_its_size_and_preparing_is_a_conflict)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *val = add_validation(l);
    struct gc_lease *lease = NULL, *g;
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX];

    (void)val;
    snap(l, 1, 100u, CTX + VAL_BYTES);
    ASSERT_EQ_INT(
        gc_ledger_lease_new(l, GC_KIND_HOLDER, "prog", 200, 0, GEN_BYTES, 100, 0, 0, &lease), 0);
    snprintf(id, sizeof(id), "%s", lease->id);
    ASSERT_EQ_INT(gc_growth_request(l, lease, GEN_BYTES - GiB, 1, &g), 0);
    ASSERT(g == NULL);
    ASSERT_EQ_U64(gc_ledger_lease_find(l, id)->bytes, GEN_BYTES - GiB);
    gc_sched_step(l, 2, &a);
    ASSERT_EQ_INT(gc_ledger_lease_find(l, id)->state, GC_LEASE_PREPARING);
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), GEN_BYTES, 3, &g),
                  GC_ECONFLICT);
    ASSERT_EQ_U64(gc_ledger_lease_find(l, id)->bytes, GEN_BYTES - GiB);
    free_ledger(l);
}

TEST(growth_beyond_what_its_own_lease_leaves_is_refused)
{
    struct gc_ledger *l = new_ledger();
    struct gc_lease *g;
    struct gc_actions a;
    char id[GC_LEASE_ID_MAX], gid[GC_LEASE_ID_MAX];

    snap(l, 1, 200u, CTX);
    granted_lease(l, 20 * GiB, id);
    /* 20Gi more next to its own 20Gi on a 24Gi card: never, however long it waits. */
    ASSERT_EQ_INT(gc_growth_request(l, gc_ledger_lease_find(l, id), 40 * GiB, 2, &g), 0);
    snprintf(gid, sizeof(gid), "%s", g->id);
    gc_sched_step(l, 3, &a);
    ASSERT(has_action(&a, GC_ACT_REFUSED, gid));
    ASSERT_EQ_INT(gc_ledger_lease_lookup(l, gid)->error, GC_ENEVERFITS);
    ASSERT_EQ_U64(gc_ledger_lease_find(l, id)->bytes, 20 * GiB);
    free_ledger(l);
}
