/* test_steps.c - the engine's unloads and reloads (src/daemon/steps.c) driven
 * through a fake environment: fake NVML snapshots, a fake clock, and jobs that are
 * not run but answered by the test. */
#include "harness.h"

#include "common/err.h"
#include "coord/ledger.h"
#include "coord/transition.h"
#include "daemon/steps.h"

#define MiB  (1ULL << 20)
#define GiB  (1ULL << 30)
#define CTX  (300 * MiB)
#define CARD (24 * GiB)
#define VAL  (4 * GiB)

struct fake {
    struct gc_ledger ledger;
    struct gc_config config;
    struct gc_stats stats;
    struct gc_events events;
    struct gc_steps steps;
    struct gc_step_env env;
    struct gc_resident_spec spec;
    struct gc_job *jobs[16]; /* started, not yet answered */
    unsigned njobs, journaled, watched, unwatched;
    char evicted_id[GC_LEASE_ID_MAX];
    int evicted_error;
    unsigned evicted;
};

static const struct gc_resident_spec *fake_spec(void *engine, unsigned slot)
{
    (void)slot;
    return &((struct fake *)engine)->spec;
}

static void fake_journal(void *engine, const struct gc_resident *r)
{
    (void)r;
    ((struct fake *)engine)->journaled++;
}

static void fake_evicted(void *engine, const char *lease_id, int error, const char *why)
{
    struct fake *f = engine;

    (void)why;
    snprintf(f->evicted_id, sizeof(f->evicted_id), "%s", lease_id);
    f->evicted_error = error;
    f->evicted++;
}

static void fake_watch(void *engine, pid_t pid, uint64_t start_ticks)
{
    (void)pid;
    (void)start_ticks;
    ((struct fake *)engine)->watched++;
}

static void fake_unwatch(void *engine, pid_t pid)
{
    (void)pid;
    ((struct fake *)engine)->unwatched++;
}

static bool fake_start(void *engine, struct gc_job *job)
{
    struct fake *f = engine;

    ASSERT(f->njobs < 16);
    f->jobs[f->njobs++] = job;
    return true;
}

static struct fake *fake_new(void)
{
    struct gc_ledger_config lcfg = {0};
    struct fake *f = calloc(1, sizeof(*f));

    ASSERT(f != NULL);
    gc_ledger_init(&f->ledger, &lcfg);
    ASSERT_EQ_INT(gc_ledger_add_gpu(&f->ledger, "GPU-x", "test", CARD, 0, 512 * MiB), 0);
    gc_events_init(&f->events);
    f->config.verify_poll_s = 0.05;
    f->config.reload_attempts = 3;
    f->config.reload_backoff_s = 1;
    f->spec.unload_timeout_s = 10;
    f->spec.reload_timeout_s = 10;
    f->spec.verify_timeout_s = 2;
    f->spec.kill_grace_s = 1;
    f->env = (struct gc_step_env){
        .ledger = &f->ledger,
        .config = &f->config,
        .stats = &f->stats,
        .events = &f->events,
        .engine = f,
        .spec = fake_spec,
        .journal = fake_journal,
        .lease_evicted = fake_evicted,
        .watch = fake_watch,
        .unwatch = fake_unwatch,
        .start = fake_start,
    };
    return f;
}

static void fake_free(struct fake *f)
{
    for (unsigned i = 0; i < f->njobs; i++)
        free(f->jobs[i]);
    gc_events_free(&f->events);
    gc_ledger_free(&f->ledger);
    free(f);
}

/* NVML at time t: pid uses bytes (0: not listed). */
static void snap(struct fake *f, pid_t pid, uint64_t bytes, int64_t t)
{
    struct gc_snapshot_proc p = {.pid = (uint32_t)pid, .used_bytes = bytes};

    gc_ledger_set_snapshot(&f->ledger, 0, bytes, CARD - bytes, &p, bytes ? 1 : 0, t);
}

static struct gc_resident *resident(struct fake *f, enum gc_on_stuck on_stuck)
{
    struct gc_resident *r = gc_ledger_resident_alloc(&f->ledger);

    ASSERT(r != NULL);
    snprintf(r->name, sizeof(r->name), "val");
    snprintf(r->protocol, sizeof(r->protocol), "seed");
    r->pid = 100;
    r->bytes = VAL;
    r->on_stuck = on_stuck;
    r->state = GC_RES_LOADED;
    return r;
}

/* The oldest job not yet answered: it is answered with rc, at time t. */
static struct gc_job *answer(struct fake *f, enum gc_job_kind kind, int rc, int64_t t)
{
    struct gc_job *job;

    ASSERT(f->njobs > 0);
    job = f->jobs[0];
    memmove(f->jobs, f->jobs + 1, (f->njobs - 1) * sizeof(f->jobs[0]));
    f->njobs--;
    ASSERT_EQ_INT(job->kind, kind);
    job->rc = rc;
    job->answered_ms = t;
    return job;
}

static void answered(struct fake *f, struct gc_job *job, int64_t now)
{
    gc_steps_job_answered(&f->steps, &f->env, job, now);
    free(job);
}

/* Starts unloading r (all the way) for lease "lease-1" at time t. */
static uint64_t unload(struct fake *f, struct gc_resident *r, int64_t t)
{
    snap(f, 100, CTX + VAL, t - 1);
    gc_resident_unload_begin(r, 1, CTX + VAL);
    return gc_step_unload_start(&f->steps, &f->env, r, "lease-1", t);
}

TEST(unload_is_asked_then_verified_on_a_reading_taken_after_the_answer)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);
    uint64_t id = unload(f, r, 1000);

    ASSERT_EQ_INT(f->njobs, 1);
    ASSERT_STREQ(f->jobs[0]->spec.level, "off");
    ASSERT(f->jobs[0]->spec.level_last);
    answered(f, answer(f, GC_JOB_UNLOAD, 0, 1100), 1100);
    /* A reading from before the answer shows nothing, even a drop. */
    snap(f, 100, CTX, 1099);
    gc_steps_poll(&f->steps, &f->env, 1101);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADING);
    /* The next one does. */
    snap(f, 100, CTX, 1150);
    gc_steps_poll(&f->steps, &f->env, 1150);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT(!r->busy);
    ASSERT(r->evicted);
    ASSERT_EQ_U64(r->floor_bytes, CTX);
    ASSERT_EQ_INT(f->evicted, 1);
    ASSERT_STREQ(f->evicted_id, "lease-1");
    ASSERT_EQ_INT(f->evicted_error, 0);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_IDLE);
    ASSERT_EQ_U64(f->steps.slot[0].outcome_id, id);
    ASSERT_EQ_INT(f->steps.slot[0].outcome_rc, 0);
    ASSERT_EQ_U64(f->stats.counters.unloads, 1);
    ASSERT(f->journaled >= 1);
    fake_free(f);
}

TEST(unload_refused_fails_the_lease_and_leaves_it_loaded)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);
    struct gc_job *job;

    unload(f, r, 1000);
    job = answer(f, GC_JOB_UNLOAD, GC_EIO, 1100);
    snprintf(job->res.detail, sizeof(job->res.detail), "HTTP 500");
    answered(f, job, 1100);
    ASSERT_EQ_INT(r->state, GC_RES_LOADED);
    ASSERT(!r->busy);
    ASSERT_EQ_INT(f->evicted_error, GC_ECOULDNOTFREE);
    ASSERT_EQ_INT(f->steps.slot[0].outcome_rc, GC_ECOULDNOTFREE);
    ASSERT_EQ_U64(f->stats.counters.unload_failures, 1);
    fake_free(f);
}

TEST(stuck_unload_asks_a_cleanup_then_fails_the_lease_and_reloads)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);

    unload(f, r, 1000);
    answered(f, answer(f, GC_JOB_UNLOAD, 0, 1100), 1100);
    snap(f, 100, CTX + VAL, 3000); /* nothing freed */
    gc_steps_poll(&f->steps, &f->env, 3000);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_UNLOAD_VERIFY); /* until 1100 + 2 s */
    snap(f, 100, CTX + VAL, 3101);
    gc_steps_poll(&f->steps, &f->env, 3101);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_CLEANUP);
    answered(f, answer(f, GC_JOB_CLEANUP, 0, 3200), 3200);
    ASSERT_EQ_U64(f->stats.counters.cleanups, 1);
    snap(f, 100, CTX + VAL, 4201); /* half the verify timeout later, still nothing */
    gc_steps_poll(&f->steps, &f->env, 4201);
    ASSERT_EQ_U64(f->stats.counters.verify_timeouts, 1);
    ASSERT_EQ_INT(f->evicted_error, GC_ECOULDNOTFREE);
    ASSERT_EQ_INT(f->steps.slot[0].outcome_rc, GC_ECOULDNOTFREE);
    /* Reloaded where it stands: all of it is there, so no room is needed. */
    ASSERT_EQ_INT(r->state, GC_RES_RELOADING);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_RELOAD_ROOM);
    ASSERT_EQ_U64(f->steps.slot[0].need, 0);
    fake_free(f);
}

TEST(stuck_unload_with_on_stuck_kill_waits_for_the_driver)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_KILL);
    struct gc_job *job;

    unload(f, r, 1000);
    answered(f, answer(f, GC_JOB_UNLOAD, 0, 1100), 1100);
    snap(f, 100, CTX + VAL, 3101);
    gc_steps_poll(&f->steps, &f->env, 3101);
    answered(f, answer(f, GC_JOB_CLEANUP, 0, 3200), 3200);
    snap(f, 100, CTX + VAL, 4201);
    gc_steps_poll(&f->steps, &f->env, 4201);
    ASSERT_EQ_U64(f->stats.counters.kills, 1);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_KILL);
    job = answer(f, GC_JOB_KILL, 0, 5300);
    job->exited = true;
    answered(f, job, 5300);
    /* Dead, but the driver still shows its memory: waits. */
    snap(f, 100, CTX + VAL, 5400);
    gc_steps_poll(&f->steps, &f->env, 5400);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_KILL_WAIT);
    snap(f, 0, 0, 5500);
    gc_steps_poll(&f->steps, &f->env, 5500);
    ASSERT_EQ_INT(r->state, GC_RES_GONE);
    ASSERT_EQ_INT(f->evicted_error, 0); /* the lease has its room */
    ASSERT_EQ_INT(f->steps.slot[0].outcome_rc, 0);
    fake_free(f);
}

TEST(a_process_that_died_during_its_unload_is_gone)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);

    unload(f, r, 1000);
    gc_steps_pid_exited(&f->steps, &f->env, 100);
    answered(f, answer(f, GC_JOB_UNLOAD, 0, 1100), 1100);
    snap(f, 0, 0, 1200);
    gc_steps_poll(&f->steps, &f->env, 1200);
    ASSERT_EQ_INT(r->state, GC_RES_GONE);
    ASSERT_EQ_INT(f->evicted_error, 0);
    fake_free(f);
}

TEST(an_answer_to_a_step_that_ended_is_dropped)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);
    struct gc_job *job;

    unload(f, r, 1000);
    job = answer(f, GC_JOB_UNLOAD, 0, 1100);
    job->step = 999; /* an older step's */
    answered(f, job, 1100);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_UNLOAD_ASK);
    fake_free(f);
}

/* Marks r reloading (as the scheduler does) and starts its reload at t. */
static void reload(struct fake *f, struct gc_resident *r, int64_t t)
{
    r->state = GC_RES_RELOADING;
    r->busy = true;
    r->evicted = true;
    r->floor_bytes = CTX;
    r->usage_before = CTX;
    snap(f, 100, CTX, t - 1);
    gc_step_reload_start(&f->steps, &f->env, r, t);
}

TEST(reload_waits_for_room_on_a_fresh_reading_then_is_deferred)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);
    struct gc_snapshot_proc p[2] = {{.pid = 100, .used_bytes = CTX},
                                    {.pid = 300, .used_bytes = 22 * GiB}};

    r->state = GC_RES_UNLOADED;
    reload(f, r, 1000);
    /* The reading taken before the step began showed room: not trusted. */
    ASSERT_EQ_INT(f->njobs, 0);
    gc_steps_poll(&f->steps, &f->env, 1001);
    ASSERT_EQ_INT(f->njobs, 0);
    /* A holder has taken the room since. */
    gc_ledger_set_snapshot(&f->ledger, 0, CTX + 22 * GiB, CARD - CTX - 22 * GiB, p, 2, 1500);
    gc_steps_poll(&f->steps, &f->env, 1500);
    ASSERT_EQ_INT(f->njobs, 0);
    gc_steps_poll(&f->steps, &f->env, 11001); /* past reload_timeout_s */
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT(!r->busy);
    ASSERT(strstr(r->reason, "no room to reload") != NULL);
    ASSERT_EQ_INT(f->steps.slot[0].outcome_rc, GC_EUNAVAIL);
    fake_free(f);
}

TEST(reload_retries_with_backoff_then_is_failed)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);

    r->state = GC_RES_UNLOADED;
    reload(f, r, 1000);
    snap(f, 100, CTX, 1010);
    gc_steps_poll(&f->steps, &f->env, 1010);
    answered(f, answer(f, GC_JOB_RELOAD, GC_EIO, 1100), 1100);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_RELOAD_BACKOFF);
    gc_steps_poll(&f->steps, &f->env, 2000); /* 1 s backoff not yet over */
    ASSERT_EQ_INT(f->njobs, 0);
    gc_steps_poll(&f->steps, &f->env, 2100);
    answered(f, answer(f, GC_JOB_RELOAD, GC_EIO, 2200), 2200);
    gc_steps_poll(&f->steps, &f->env, 4100); /* 2 s the second time */
    ASSERT_EQ_INT(f->njobs, 0);
    gc_steps_poll(&f->steps, &f->env, 4200);
    answered(f, answer(f, GC_JOB_RELOAD, GC_EIO, 4300), 4300);
    ASSERT_EQ_INT(r->state, GC_RES_FAILED);
    ASSERT(strstr(r->reason, "failed to reload 3 times") != NULL);
    ASSERT_EQ_U64(f->stats.counters.reload_failures, 3);
    fake_free(f);
}

TEST(reload_is_verified_then_counts_a_swap)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);

    r->state = GC_RES_UNLOADED;
    reload(f, r, 1000);
    snap(f, 100, CTX, 1010);
    gc_steps_poll(&f->steps, &f->env, 1010);
    answered(f, answer(f, GC_JOB_RELOAD, 0, 1100), 1100);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_RELOAD_VERIFY);
    snap(f, 100, CTX + VAL, 1099); /* before the answer: not trusted */
    gc_steps_poll(&f->steps, &f->env, 1120);
    ASSERT_EQ_INT(r->state, GC_RES_RELOADING);
    snap(f, 100, CTX + VAL, 1150);
    gc_steps_poll(&f->steps, &f->env, 1150);
    ASSERT_EQ_INT(r->state, GC_RES_LOADED);
    ASSERT_EQ_U64(f->stats.counters.swaps, 1);
    ASSERT_EQ_U64(f->stats.counters.reloads, 1);
    fake_free(f);
}

TEST(a_new_process_from_a_reload_is_watched_and_verified)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);
    struct gc_job *job;

    r->state = GC_RES_UNLOADED;
    reload(f, r, 1000);
    snap(f, 100, CTX, 1010);
    gc_steps_poll(&f->steps, &f->env, 1010);
    job = answer(f, GC_JOB_RELOAD, 0, 1100);
    job->res.new_pid = 777;
    job->new_start_ticks = 5;
    answered(f, job, 1100);
    ASSERT_EQ_INT(r->pid, 777);
    ASSERT_EQ_U64(r->pid_start_ticks, 5);
    ASSERT_EQ_INT(f->watched, 1);
    snap(f, 777, CTX + VAL, 1200);
    gc_steps_poll(&f->steps, &f->env, 1200);
    ASSERT_EQ_INT(r->state, GC_RES_LOADED);
    fake_free(f);
}

TEST(the_next_deadline_asks_for_a_reading_when_none_came_since_the_phase_began)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);

    ASSERT_EQ_INT(gc_steps_next_deadline(&f->steps, &f->env, 1000, 0), INT64_MAX);
    unload(f, r, 1000);
    ASSERT_EQ_INT(gc_steps_next_deadline(&f->steps, &f->env, 1000, 0), INT64_MAX); /* asking */
    answered(f, answer(f, GC_JOB_UNLOAD, 0, 1100), 1100);
    ASSERT_EQ_INT(gc_steps_next_deadline(&f->steps, &f->env, 1100, 1050), 1100);
    ASSERT_EQ_INT(gc_steps_next_deadline(&f->steps, &f->env, 1100, 1100), 1150);
    ASSERT(gc_steps_verifying(&f->steps, &f->env));
    fake_free(f);
}

TEST(probe_of_a_resident_marked_loaded_records_what_it_reports)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);
    struct gc_job *job;
    uint64_t id;

    id = gc_step_probe_start(&f->steps, &f->env, r, 1000);
    ASSERT(id != 0);
    ASSERT(!r->busy); /* a probe holds nothing back */
    ASSERT_EQ_INT(gc_step_probe_start(&f->steps, &f->env, r, 1001), 0); /* one at a time */
    job = answer(f, GC_JOB_HEALTH, 0, 1100);
    job->res.models_loaded = 0;
    answered(f, job, 1100);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADED);
    ASSERT(!r->evicted);
    ASSERT(strstr(r->reason, "while marked loaded") != NULL);
    ASSERT_EQ_U64(f->steps.slot[0].outcome_id, id);
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_IDLE);
    /* Loaded as marked: nothing changes. */
    r->state = GC_RES_LOADED;
    id = gc_step_probe_start(&f->steps, &f->env, r, 2000);
    job = answer(f, GC_JOB_HEALTH, 0, 2100);
    job->res.models_loaded = 1;
    answered(f, job, 2100);
    ASSERT_EQ_INT(r->state, GC_RES_LOADED);
    ASSERT_EQ_U64(f->steps.slot[0].outcome_id, id);
    fake_free(f);
}

TEST(probe_overtaken_by_an_unload_ends_and_its_answer_is_dropped)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);
    uint64_t probe = gc_step_probe_start(&f->steps, &f->env, r, 1000);
    struct gc_job *health;

    ASSERT(probe != 0);
    unload(f, r, 1050);
    ASSERT_EQ_U64(f->steps.slot[0].outcome_id, probe); /* a waiter on the probe is told */
    health = answer(f, GC_JOB_HEALTH, 0, 1100);
    health->res.models_loaded = 0;
    answered(f, health, 1100);
    ASSERT_EQ_INT(r->state, GC_RES_UNLOADING); /* the unload goes on */
    ASSERT_EQ_INT(f->steps.slot[0].phase, GC_STEP_UNLOAD_ASK);
    fake_free(f);
}

TEST(a_restartable_resident_is_not_probed)
{
    struct fake *f = fake_new();
    struct gc_resident *r = resident(f, GC_STUCK_FAIL);

    snprintf(r->protocol, sizeof(r->protocol), "process");
    r->restartable = true;
    ASSERT_EQ_INT(gc_step_probe_start(&f->steps, &f->env, r, 1000), 0);
    ASSERT_EQ_INT(f->njobs, 0);
    fake_free(f);
}
