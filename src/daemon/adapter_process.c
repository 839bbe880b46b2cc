/* adapter_process.c - a resident with no API (llama-swap style): unload stops the
 * process (SIGTERM, then SIGKILL after a grace period), reload runs its start
 * command and waits until it is healthy. */
#include "daemon/adapter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/proc.h"

/* How long a SIGKILLed process may take to exit before we give up. */
#define PROCESS_KILL_WAIT_MS 10000
/* Health polling interval while a started process comes up. */
#define PROCESS_HEALTH_POLL_MS 100

/* Waits up to timeout_ms for pid to exit (pidfd, or polling without one). */
static bool wait_exit(pid_t pid, int64_t timeout_ms)
{
    int64_t deadline = gc_mono_ms() + timeout_ms;
    int fd = gc_pidfd_open(pid);

    while (gc_proc_alive(pid)) {
        int64_t left = deadline - gc_mono_ms();
        if (left <= 0) {
            if (fd >= 0)
                close(fd);
            return false;
        }
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            /* Zombies count as exited; re-check at least every 50 ms. */
            poll(&p, 1, left < 50 ? (int)left : 50);
        } else {
            gc_sleep_ms(left < 20 ? left : 20);
        }
    }
    if (fd >= 0)
        close(fd);
    return true;
}

static int process_unload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    pid_t pid = spec->pid;

    if (pid <= 0 || !gc_proc_alive(pid))
        return 0; /* not running: nothing holds memory */
    /* Through its start time: a pid reused by another process is not signalled. */
    if (gc_proc_signal(pid, spec->pid_start_ticks, SIGTERM) < 0 && errno != ESRCH) {
        snprintf(res->detail, sizeof(res->detail), "cannot signal pid %d: %s", (int)pid,
                 strerror(errno));
        return GC_EIO;
    }
    if (wait_exit(pid, (int64_t)(spec->kill_grace_s * 1000.0)))
        return 0;
    gc_proc_signal(pid, spec->pid_start_ticks, SIGKILL);
    if (wait_exit(pid, PROCESS_KILL_WAIT_MS)) {
        snprintf(res->detail, sizeof(res->detail), "pid %d ignored SIGTERM for %.1f s: killed",
                 (int)pid, spec->kill_grace_s);
        return 0;
    }
    snprintf(res->detail, sizeof(res->detail), "pid %d did not exit after SIGKILL", (int)pid);
    return GC_ETIMEDOUT;
}

/* Starts spec->command detached (double fork, new session) and returns its pid. */
static pid_t spawn_detached(const struct gc_resident_spec *spec, char *why, size_t why_len)
{
    int pipefd[2];
    pid_t child, grandchild = -1;
    int status;

    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        snprintf(why, why_len, "pipe: %s", strerror(errno));
        return -1;
    }
    child = fork();
    if (child < 0) {
        snprintf(why, why_len, "fork: %s", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (child == 0) {
        pid_t gc;
        setsid();
        gc = fork();
        if (gc == 0) {
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL); /* the daemon blocks signals in threads */
            signal(SIGPIPE, SIG_DFL);
            signal(SIGXFSZ, SIG_DFL);
            int fd = open(spec->log_path[0] ? spec->log_path : "/dev/null",
                          O_WRONLY | O_CREAT | O_APPEND, 0640);
            int devnull = open("/dev/null", O_RDONLY);
            if (devnull >= 0)
                dup2(devnull, STDIN_FILENO);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
            }
            execl("/bin/sh", "sh", "-c", spec->command, (char *)NULL);
            _exit(127);
        }
        if (write(pipefd[1], &gc, sizeof(gc)) != (ssize_t)sizeof(gc))
            _exit(1);
        _exit(gc > 0 ? 0 : 1);
    }
    close(pipefd[1]);
    if (read(pipefd[0], &grandchild, sizeof(grandchild)) != (ssize_t)sizeof(grandchild))
        grandchild = -1;
    close(pipefd[0]);
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (grandchild <= 0)
        snprintf(why, why_len, "could not start '%.200s'", spec->command);
    return grandchild;
}

static int process_health(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    json_t *body = NULL;
    char method[16], path[GC_SPEC_REQ_MAX];
    int rc;

    res->models_loaded = -1;
    if (spec->url[0] != '\0' && spec->health_req[0] != '\0') {
        if (sscanf(spec->health_req, "%15s %159s", method, path) != 2)
            return GC_EINVAL;
        rc = gc_adapter_http(spec, method, path, 2.0, res, &body);
        json_decref(body);
        if (rc < 0)
            return rc;
        return res->http_status >= 200 && res->http_status < 300 ? 0 : GC_EIO;
    }
    return spec->pid > 0 && gc_proc_alive(spec->pid) ? 0 : GC_EUNAVAIL;
}

static int process_reload(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    struct gc_resident_spec started = *spec;
    int64_t deadline = gc_mono_ms() + (int64_t)(spec->reload_timeout_s * 1000.0);
    pid_t pid;

    if (spec->command[0] == '\0') {
        snprintf(res->detail, sizeof(res->detail), "no start command configured");
        return GC_EINVAL;
    }
    if (spec->pid > 0 && gc_proc_alive(spec->pid)) {
        res->new_pid = spec->pid; /* already running */
        return 0;
    }
    pid = spawn_detached(spec, res->detail, sizeof(res->detail));
    if (pid <= 0)
        return GC_EIO;
    res->new_pid = pid;
    started.pid = pid;
    for (;;) {
        struct gc_adapter_result h = {0};
        if (!gc_proc_alive(pid)) {
            snprintf(res->detail, sizeof(res->detail), "'%.200s' exited during start",
                     spec->command);
            return GC_EIO;
        }
        if (process_health(&started, &h) == 0)
            return 0;
        if (gc_mono_ms() >= deadline) {
            snprintf(res->detail, sizeof(res->detail), "not healthy within %.1f s",
                     spec->reload_timeout_s);
            return GC_ETIMEDOUT;
        }
        gc_sleep_ms(PROCESS_HEALTH_POLL_MS);
    }
}

static int process_cleanup(const struct gc_resident_spec *spec, struct gc_adapter_result *res)
{
    (void)spec;
    (void)res;
    return 0; /* a process has no cache to flush: only stopping it frees memory */
}

const struct gc_adapter gc_adapter_process = {
    .protocol = "process",
    .needs_url = false,
    .restartable = true,
    .runs_command = true,
    .unload = process_unload,
    .reload = process_reload,
    .cleanup = process_cleanup,
    .health = process_health,
};
