/* test_transition.c - every change of a resident that a step's outcome or a process's
 * fate makes (coord/transition.c), and NVML's verdicts on steps (coord/verify.c). */
#include "harness.h"

#include "common/err.h"
#include "coord/ledger.h"
#include "coord/transition.h"
#include "coord/verify.h"

#define MiB  (1ULL << 20)
#define GiB  (1ULL << 30)
#define CTX  (300 * MiB)
#define CARD (24 * GiB)

static struct gc_ledger *new_ledger(void)
{
    struct gc_ledger_config cfg = {0};
    struct gc_ledger *l = calloc(1, sizeof(*l));

    ASSERT(l != NULL);
    gc_ledger_init(l, &cfg);
    ASSERT_EQ_INT(gc_ledger_add_gpu(l, "GPU-x", "test", CARD, 0, 512 * MiB), 0);
    return l;
}

/* One listed process using bytes (pid 0: none), and extra the list does not explain. */
static void snap(struct gc_ledger *l, pid_t pid, uint64_t bytes, uint64_t extra, int64_t t)
{
    struct gc_snapshot_proc p = {.pid = (uint32_t)pid, .used_bytes = bytes};

    gc_ledger_set_snapshot(l, 0, bytes + extra, CARD - bytes - extra, &p, pid > 0 ? 1 : 0, t);
}

static struct gc_resident *resident(struct gc_ledger *l, const char *name, pid_t pid,
                                    uint64_t bytes, bool restartable)
{
    struct gc_resident *r = gc_ledger_resident_alloc(l);

    ASSERT(r != NULL);
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->protocol, sizeof(r->protocol), "%s", restartable ? "process" : "seed");
    r->pid = pid;
    r->bytes = bytes;
    r->restartable = restartable;
    r->state = GC_RES_LOADED;
    return r;
}

/* Three levels: full (4Gi), reduced (2Gi), off. */
static void three_levels(struct gc_resident *r)
{
    r->nlevels = 3;
    snprintf(r->levels[0].name, sizeof(r->levels[0].name), "full");
    r->levels[0].bytes = r->bytes;
    snprintf(r->levels[1].name, sizeof(r->levels[1].name), "reduced");
    r->levels[1].bytes = 2 * GiB;
    snprintf(r->levels[2].name, sizeof(r->levels[2].name), "off");
    r->levels[2].bytes = 0;
}

TEST(exit_of_a_server_leaves_it_gone)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);

    gc_resident_exited(r, 100, 5);
    ASSERT_EQ_INT(r->state, GC_RES_GONE);
    ASSERT_STREQ(r->reason, "process 100 exited");
    gc_ledger_free(l);
    free(l);
}

TEST(exit_of_a_restartable_resident_leaves_it_unloaded_all_the_way_not_evicted)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "proc", 100, 4 * GiB, true);

    r->evicted = true;
    gc_resident_exited(r, 100, 7);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT(!r->evicted); /* it died: nothing to restore */
    ASSERT_EQ_INT(r->unloaded_since_ms, 7);
    ASSERT_EQ_INT(gc_resident_level(r), 1);
    /* Already unloaded (evicted): it stays to be restored, since when it was. */
    r = resident(l, "proc2", 101, 4 * GiB, true);
    r->state = GC_RES_UNLOADED;
    r->evicted = true;
    r->unloaded_since_ms = 3;
    gc_resident_exited(r, 101, 9);
    ASSERT(r->evicted);
    ASSERT_EQ_INT(r->unloaded_since_ms, 3);
    gc_ledger_free(l);
    free(l);
}

TEST(death_while_down_forgets_a_restartable_residents_pid)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "proc", 100, 4 * GiB, true);
    struct gc_resident *s = resident(l, "srv", 200, 4 * GiB, false);

    r->evicted = true;
    ASSERT_EQ_INT(gc_resident_died_while_down(r, GC_RES_LOADED), GC_RES_UNLOADED);
    ASSERT_EQ_INT(r->pid, 0);
    ASSERT_EQ_U64(r->pid_start_ticks, 0);
    ASSERT(!r->evicted);
    ASSERT_STREQ(r->reason, "process 100 exited while the coordinator was down");
    ASSERT_EQ_INT(gc_resident_died_while_down(s, GC_RES_LOADED), GC_RES_GONE);
    ASSERT_EQ_INT(s->pid, 200); /* kept: it names the process that died */
    gc_ledger_free(l);
    free(l);
}

TEST(unload_begins_busy_and_can_be_undone)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);
    enum gc_resident_state was;

    three_levels(r);
    was = gc_resident_unload_begin(r, 1, CTX + 4 * GiB);
    ASSERT_EQ_INT(was, GC_RES_LOADED);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADING);
    ASSERT(r->busy);
    ASSERT_EQ_INT(r->target_level, 1);
    ASSERT_EQ_U64(r->usage_before, CTX + 4 * GiB);
    gc_resident_step_undo(r, was);
    ASSERT_EQ_INT(r->state, GC_RES_LOADED);
    ASSERT(!r->busy);
    gc_ledger_free(l);
    free(l);
}

TEST(unloaded_to_a_level_learns_its_floor)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);

    three_levels(r);
    gc_resident_unload_begin(r, 1, CTX + 4 * GiB);
    /* It uses its context and what "reduced" keeps: its floor is the context. */
    gc_resident_unloaded(r, 1, CTX + 2 * GiB, 2 * GiB, true, true, 1.5, 40);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT(!r->busy);
    ASSERT(r->evicted);
    ASSERT_EQ_INT(gc_resident_level(r), 1);
    ASSERT_EQ_U64(r->floor_bytes, CTX);
    ASSERT_EQ_INT(r->unloads, 1);
    ASSERT_NEAR(r->last_unload_s, 1.5, 1e-9);
    ASSERT_EQ_INT(r->unloaded_since_ms, 40);
    ASSERT_EQ_U64(r->bytes, 4 * GiB); /* known: not relearned */
    gc_ledger_free(l);
    free(l);
}

TEST(unloaded_learns_unknown_bytes_and_a_dead_server_is_gone)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 0, false);
    struct gc_resident *p = resident(l, "proc", 101, 0, true);

    gc_resident_unload_begin(r, 1, CTX + 3 * GiB);
    gc_resident_unloaded(r, 1, 0, 3 * GiB, false, false, 1, 2);
    ASSERT_EQ_U64(r->bytes, 3 * GiB);
    ASSERT_EQ_INT(r->state, GC_RES_GONE);
    ASSERT_STREQ(r->reason, "process 100 exited during unload");
    ASSERT(!r->evicted); /* by request */
    /* A restartable one whose process went is unloaded: its command brings it back. */
    gc_resident_unload_begin(p, 1, CTX + 3 * GiB);
    gc_resident_unloaded(p, 1, 0, 3 * GiB, true, false, 1, 2);
    ASSERT_EQ_INT(p->state, GC_RES_UNLOADED);
    gc_ledger_free(l);
    free(l);
}

TEST(unload_refused_leaves_it_where_it_was)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);

    three_levels(r);
    gc_resident_unload_begin(r, 2, CTX + 4 * GiB);
    gc_resident_unload_failed(r, 0, "HTTP 500");
    ASSERT_EQ_INT(r->state, GC_RES_LOADED);
    ASSERT(!r->busy);
    ASSERT_STREQ(r->reason, "HTTP 500");
    /* From part-way down: still unloaded there. */
    r->state = GC_RES_UNLOADED;
    r->level = 1;
    gc_resident_unload_begin(r, 2, CTX + 2 * GiB);
    gc_resident_unload_failed(r, 1, "timed out");
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT_EQ_INT(gc_resident_level(r), 1);
    gc_ledger_free(l);
    free(l);
}

TEST(killed_is_gone_unless_restartable)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);
    struct gc_resident *p = resident(l, "proc", 101, 4 * GiB, true);

    three_levels(r);
    gc_resident_unload_begin(r, 1, CTX + 4 * GiB);
    gc_resident_killed(r, true, 50);
    ASSERT_EQ_INT(r->state, GC_RES_GONE);
    ASSERT(!r->busy);
    ASSERT_EQ_INT(gc_resident_level(r), 2); /* nothing is left */
    ASSERT(strstr(r->reason, "killed") != NULL);
    gc_resident_unload_begin(p, 1, CTX + 4 * GiB);
    gc_resident_killed(p, true, 50);
    ASSERT_EQ_INT(p->state, GC_RES_UNLOADED);
    ASSERT(p->evicted);
    gc_ledger_free(l);
    free(l);
}

TEST(stuck_unload_is_reloaded_where_it_stands)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);

    gc_resident_unload_begin(r, 1, CTX + 4 * GiB);
    gc_resident_unload_stuck(r, "only 1Gi freed", 60);
    ASSERT_EQ_INT(r->state, GC_RES_RELOADING);
    ASSERT(r->busy); /* its reload follows */
    ASSERT(r->evicted);
    ASSERT_STREQ(r->reason, "only 1Gi freed");
    gc_ledger_free(l);
    free(l);
}

TEST(reload_without_room_is_deferred)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);

    r->state = GC_RES_RELOADING;
    r->busy = true;
    gc_resident_reload_deferred(r, "no room");
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT(!r->busy);
    ASSERT_STREQ(r->reason, "no room");
    gc_ledger_free(l);
    free(l);
}

TEST(reload_done_loaded_counts_a_swap)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);
    bool swap;
    pid_t dead;

    r->state = GC_RES_RELOADING;
    r->busy = true;
    r->evicted = true;
    r->level = 1;
    r->reload_failures = 2;
    snprintf(r->reason, sizeof(r->reason), "old");
    ASSERT_EQ_INT(gc_resident_reload_done(r, true, true, NULL, 2.5, 70, &swap, &dead),
                  GC_RES_LOADED);
    ASSERT(swap);
    ASSERT_EQ_INT(dead, 0);
    ASSERT(!r->busy);
    ASSERT(!r->evicted);
    ASSERT_EQ_INT(gc_resident_level(r), 0);
    ASSERT_EQ_INT(r->reloads, 1);
    ASSERT_EQ_INT(r->reload_failures, 0);
    ASSERT_EQ_INT(r->last_used_ms, 70);
    ASSERT_STREQ(r->reason, "");
    /* By demand, not evicted: no swap. */
    r->state = GC_RES_RELOADING;
    gc_resident_reload_done(r, true, true, NULL, 1, 80, &swap, &dead);
    ASSERT(!swap);
    gc_ledger_free(l);
    free(l);
}

TEST(reload_answered_by_a_process_that_died_is_a_failure)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);
    struct gc_resident *p = resident(l, "proc", 101, 4 * GiB, true);
    bool swap;
    pid_t dead;

    r->state = GC_RES_RELOADING;
    ASSERT_EQ_INT(gc_resident_reload_done(r, true, false, NULL, 1, 5, &swap, &dead), GC_RES_GONE);
    ASSERT_STREQ(r->reason, "process 100 exited during its reload");
    ASSERT_EQ_INT(r->reloads, 0);
    /* A restartable one that died starting is failed (no restart loop); its pid goes. */
    p->state = GC_RES_RELOADING;
    ASSERT_EQ_INT(gc_resident_reload_done(p, true, false, NULL, 1, 5, &swap, &dead), GC_RES_FAILED);
    ASSERT_EQ_INT(dead, 101);
    ASSERT_EQ_INT(p->pid, 0);
    gc_ledger_free(l);
    free(l);
}

TEST(reload_refused_by_a_live_server_is_failed_with_why)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);
    bool swap;
    pid_t dead;

    r->state = GC_RES_RELOADING;
    r->busy = true;
    ASSERT_EQ_INT(gc_resident_reload_done(r, false, true, "failed 3 times", 0, 5, &swap, &dead),
                  GC_RES_FAILED);
    ASSERT_STREQ(r->reason, "failed 3 times");
    ASSERT_EQ_INT(r->pid, 100);
    ASSERT(!r->busy);
    /* Failed, reloaded by hand: a fresh start. */
    r->reload_failures = 3;
    gc_resident_restart(r, 90);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT_EQ_INT(r->reload_failures, 0);
    ASSERT_STREQ(r->reason, "");
    ASSERT_EQ_INT(r->unloaded_since_ms, 90);
    gc_ledger_free(l);
    free(l);
}

TEST(new_process_from_a_reload_is_its_pid_now)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "proc", 0, 4 * GiB, true);

    r->usage_before = 123;
    gc_resident_pid_changed(r, 555, 42);
    ASSERT_EQ_INT(r->pid, 555);
    ASSERT_EQ_U64(r->pid_start_ticks, 42);
    ASSERT_EQ_U64(r->usage_before, 0);
    gc_ledger_free(l);
    free(l);
}

TEST(probe_after_a_restart_settles_a_step_cut_short)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);

    three_levels(r);
    r->state = GC_RES_UNLOADED;
    r->evicted = true;
    r->busy = true;
    gc_resident_probed(r, 1, -1); /* loaded, no level named: at its first */
    ASSERT_EQ_INT(r->state, GC_RES_LOADED);
    ASSERT(!r->evicted);
    ASSERT(!r->busy);
    r->state = GC_RES_UNLOADED;
    r->evicted = true;
    r->busy = true;
    gc_resident_probed(r, 1, 1); /* serving at "reduced": still to be restored */
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT_EQ_INT(gc_resident_level(r), 1);
    ASSERT(r->evicted);
    r->busy = true;
    gc_resident_probed(r, -1, -1); /* unreachable: stays unloaded, to be restored */
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT(!r->busy);
    gc_ledger_free(l);
    free(l);
}

TEST(reported_below_its_level_while_marked_loaded)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *r = resident(l, "val", 100, 4 * GiB, false);

    three_levels(r);
    gc_resident_reported(r, 1, 33);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT_EQ_INT(gc_resident_level(r), 1);
    ASSERT(!r->evicted);
    ASSERT_STREQ(r->reason, "reported level 'reduced' while marked loaded");
    r->state = GC_RES_LOADED;
    gc_resident_reported(r, -1, 34); /* its models unloaded */
    ASSERT_EQ_INT(gc_resident_level(r), 2);
    gc_ledger_free(l);
    free(l);
}

TEST(eviction_done_never_goes_below_zero)
{
    struct gc_lease lease = {.evicting = 1};

    gc_lease_eviction_done(&lease);
    ASSERT_EQ_INT(lease.evicting, 0);
    gc_lease_eviction_done(&lease);
    ASSERT_EQ_INT(lease.evicting, 0);
}

/* ---- verification ---- */

TEST(unload_is_verified_per_process_at_nine_tenths)
{
    struct gc_ledger *l = new_ledger();
    struct gc_verify v = {.gpu = 0, .pid = 100, .usage_before = CTX + 4 * GiB, .expected = 4 * GiB};
    uint64_t freed = 0;

    resident(l, "val", 100, 4 * GiB, false);
    snap(l, 100, CTX + 4 * GiB, 0, 1);
    ASSERT(!gc_verify_unloaded(l, "val", &v, &freed));
    ASSERT_EQ_U64(freed, 0);
    snap(l, 100, CTX + 4 * GiB - 3 * GiB, 0, 2); /* 3Gi of 4: 75 % */
    ASSERT(!gc_verify_unloaded(l, "val", &v, &freed));
    ASSERT_EQ_U64(freed, 3 * GiB);
    snap(l, 100, CTX + 200 * MiB, 0, 3); /* > 90 % */
    ASSERT(gc_verify_unloaded(l, "val", &v, &freed));
    gc_ledger_free(l);
    free(l);
}

TEST(unload_of_unknown_bytes_needs_something_to_go)
{
    struct gc_ledger *l = new_ledger();
    struct gc_verify v = {.gpu = 0, .pid = 100, .usage_before = CTX + GiB, .expected = 0};
    uint64_t freed;

    resident(l, "val", 100, 0, false);
    snap(l, 100, CTX + GiB, 0, 1);
    ASSERT(!gc_verify_unloaded(l, "val", &v, &freed));
    snap(l, 100, CTX, 0, 2);
    ASSERT(gc_verify_unloaded(l, "val", &v, &freed));
    ASSERT_EQ_U64(freed, GiB);
    gc_ledger_free(l);
    free(l);
}

TEST(device_level_unload_discounts_what_others_stopped_declaring)
{
    struct gc_ledger *l = new_ledger();
    struct gc_resident *val = resident(l, "val", 0, 4 * GiB, false);
    struct gc_resident *other = resident(l, "other", 0, 6 * GiB, false);
    struct gc_verify v = {.gpu = 0, .pid = 0, .expected = 4 * GiB};
    uint64_t freed;

    (void)val;
    snap(l, 0, 0, 10 * GiB + 2 * CTX, 1);
    gc_verify_mark(l, 0, "val", &v);
    ASSERT_EQ_U64(v.mark_others, 6 * GiB);
    /* The other resident goes away at the same time: its 6Gi are not val's. */
    other->state = GC_RES_UNLOADED;
    other->level = 1;
    snap(l, 0, 0, 4 * GiB + 2 * CTX, 2);
    ASSERT(!gc_verify_unloaded(l, "val", &v, &freed));
    ASSERT_EQ_U64(freed, 0);
    /* Now val's 4Gi go too. */
    snap(l, 0, 0, 2 * CTX, 3);
    ASSERT(gc_verify_unloaded(l, "val", &v, &freed));
    ASSERT_EQ_U64(freed, 4 * GiB);
    gc_ledger_free(l);
    free(l);
}

TEST(reload_is_verified_per_process_and_by_device)
{
    struct gc_ledger *l = new_ledger();
    struct gc_verify v = {.gpu = 0, .pid = 100, .usage_before = CTX, .expected = 4 * GiB};

    resident(l, "val", 100, 4 * GiB, false);
    snap(l, 100, CTX + GiB, 0, 1);
    ASSERT(!gc_verify_reloaded(l, "val", &v));
    snap(l, 100, CTX + 4 * GiB, 0, 2);
    ASSERT(gc_verify_reloaded(l, "val", &v));
    /* By device: the GPU's total must rise by its bytes. */
    ASSERT(!gc_verify_by_device(l, 0));
    l->gpus[0].attribution = GC_ATTR_DEVICE;
    ASSERT(gc_verify_by_device(l, 0));
    gc_verify_mark(l, 0, "val", &v);
    ASSERT(!gc_verify_reloaded(l, "val", &v));
    snap(l, 100, CTX + 8 * GiB, 0, 3);
    l->gpus[0].attribution = GC_ATTR_DEVICE;
    ASSERT_EQ_U64(gc_verify_device_taken(l, "val", &v), 4 * GiB);
    ASSERT(gc_verify_reloaded(l, "val", &v));
    gc_ledger_free(l);
    free(l);
}
