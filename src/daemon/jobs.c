/*
 * jobs.c - one question to one resident, in a thread of its own (jobs.h).
 *
 * An unload that fails may have happened anyway (an answer lost, a timeout just
 * missed, or the process died on the way): the job asks once more before it says
 * so. The engine verifies every answer through NVML.
 */
#include "daemon/jobs.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/proc.h"

/* A connection cut mid-answer may be a process dying: how long to let it finish. */
#define DYING_WAIT_MS 500

struct job_thread {
    struct gc_job *job;
    gc_job_done_fn done;
    void *ctx;
};

/* True when pid has exited or exits within timeout_ms (zombies count as exited). */
static bool exited_within(pid_t pid, int64_t timeout_ms)
{
    int64_t deadline = gc_mono_ms() + timeout_ms;
    int fd = gc_pidfd_open(pid);
    bool gone;

    while (!(gone = !gc_proc_alive(pid)) && gc_mono_ms() < deadline) {
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, 20);
        } else {
            gc_sleep_ms(20);
        }
    }
    if (fd >= 0)
        close(fd);
    return gone;
}

static void job_unload(struct gc_job *job)
{
    const struct gc_resident_spec *spec = &job->spec;
    struct gc_adapter_result h = {0};

    job->rc = job->adapter->unload(spec, &job->res);
    if (job->rc == 0)
        return;
    /* Did it unload anyway? A resident that died frees everything. */
    if (spec->pid > 0 && exited_within(spec->pid, DYING_WAIT_MS)) {
        job->exited = true;
        job->rc = 0;
    } else if (job->adapter->health(spec, &h) == 0 && h.models_loaded == 0) {
        job->rc = 0;
    }
}

static void job_reload(struct gc_job *job)
{
    const struct gc_resident_spec *spec = &job->spec;

    if (spec->pid > 0 && !job->restartable && !gc_proc_alive(spec->pid)) {
        snprintf(job->res.detail, sizeof(job->res.detail), "process %d is gone", (int)spec->pid);
        job->rc = GC_EUNAVAIL;
        job->final = true;
        return;
    }
    job->rc = job->adapter->reload(spec, &job->res);
    if (job->rc == 0 && job->res.new_pid > 0)
        job->new_start_ticks = gc_proc_start_ticks(job->res.new_pid);
}

/* SIGTERM, its grace, SIGKILL: only the process registered (its start time), never a
 * later one with its pid. */
static void job_kill(struct gc_job *job)
{
    pid_t pid = job->spec.pid;
    int64_t deadline;

    gc_proc_signal(pid, job->spec.pid_start_ticks, SIGTERM);
    deadline = gc_mono_ms() + (int64_t)(job->spec.kill_grace_s * 1000.0);
    while (gc_proc_alive(pid) && gc_mono_ms() < deadline)
        gc_sleep_ms(20);
    if (gc_proc_alive(pid))
        gc_proc_signal(pid, job->spec.pid_start_ticks, SIGKILL);
    job->exited = exited_within(pid, DYING_WAIT_MS);
    job->rc = 0;
}

static void *job_main(void *arg)
{
    struct job_thread *t = arg;
    struct gc_job *job = t->job;

    switch (job->kind) {
    case GC_JOB_UNLOAD:
        job_unload(job);
        break;
    case GC_JOB_RELOAD:
        job_reload(job);
        break;
    case GC_JOB_CLEANUP:
        job->rc = job->adapter->cleanup(&job->spec, &job->res);
        break;
    case GC_JOB_HEALTH:
        job->res.models_loaded = -1;
        job->rc = job->adapter->health(&job->spec, &job->res);
        break;
    case GC_JOB_KILL:
        job_kill(job);
        break;
    }
    job->answered_ms = gc_mono_ms();
    t->done(t->ctx, job);
    free(t);
    return NULL;
}

int gc_job_start(struct gc_job *job, gc_job_done_fn done, void *ctx)
{
    struct job_thread *t = calloc(1, sizeof(*t));
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    if (t == NULL)
        return GC_EIO;
    t->job = job;
    t->done = done;
    t->ctx = ctx;
    job->rc = 0;
    job->next = NULL;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&tid, &attr, job_main, t);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(t);
        return GC_EIO;
    }
    return 0;
}

const char *gc_job_kind_name(enum gc_job_kind kind)
{
    switch (kind) {
    case GC_JOB_UNLOAD:
        return "unload";
    case GC_JOB_RELOAD:
        return "reload";
    case GC_JOB_CLEANUP:
        return "cleanup";
    case GC_JOB_HEALTH:
        return "health";
    case GC_JOB_KILL:
        return "kill";
    }
    return "?";
}
