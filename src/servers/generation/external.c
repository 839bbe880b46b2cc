/*
 * external.c - a real pipeline plugged in as an external command stage.
 *
 * GENERATION_PIPELINE_CMD runs under /bin/sh with GEN_PROMPT, GEN_SEED, GEN_OUTPUT (a
 * path to write the PLY to) and GPUCOORD_LEASE_ID in its environment. Its declared
 * memory need is GENERATION_PEAK_BYTES, leased by the server before it starts the
 * command and released after it ends; the coordinator counts what the command (a
 * child of the lease holder) really uses against the lease. The command dies with
 * the server (PR_SET_PDEATHSIG), whose own death ends the lease; it runs in a process
 * group of its own, killed whole when it ends, times out or is abandoned: nothing it
 * started outlives its lease.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/size.h"
#include "gpucoord.h"
#include "servers/common/ply.h"
#include "servers/generation/generation.h"

/* Largest PLY accepted from the command. */
#define EXTERNAL_PLY_MAX (512ULL << 20)

/* The command's environment: this process's, with the four variables set. Built
 * before fork: a forked child of a threaded process may not allocate. */
static char **child_env(const struct generation_request *req, const char *out_path,
                        const char *lease_id)
{
    static const char *const names[] = {"GEN_PROMPT=", "GEN_SEED=", "GEN_OUTPUT=",
                                        "GPUCOORD_LEASE_ID="};
    const char *values[4];
    char seed[32];
    size_t n = 0, k = 0;
    char **env;

    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)req->seed);
    values[0] = req->prompt;
    values[1] = seed;
    values[2] = out_path;
    values[3] = lease_id;
    while (environ[n] != NULL)
        n++;
    env = calloc(n + 5, sizeof(*env));
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool ours = false;
        for (size_t j = 0; j < 4 && !ours; j++)
            ours = strncmp(environ[i], names[j], strlen(names[j])) == 0;
        if (!ours)
            env[k++] = environ[i]; /* borrowed */
    }
    for (size_t j = 0; j < 4; j++) {
        size_t len = strlen(names[j]) + strlen(values[j]) + 1;
        env[k] = malloc(len);
        if (env[k] == NULL) {
            while (j-- > 0)
                free(env[--k]);
            free(env);
            return NULL;
        }
        snprintf(env[k], len, "%s%s", names[j], values[j]);
        k++;
    }
    return env;
}

/* Frees what child_env allocated (its last four entries). */
static void child_env_free(char **env)
{
    size_t n = 0;

    if (env == NULL)
        return;
    while (env[n] != NULL)
        n++;
    for (size_t i = n - 4; i < n; i++)
        free(env[i]);
    free(env);
}

/* Starts the command in a process group of its own: a timeout or an abandoned
 * request kills the whole group (the shell and whatever it started). */
static pid_t start_child(const struct generation_server *gs, char **env)
{
    sigset_t none;
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execle("/bin/sh", "sh", "-c", gs->pipeline_cmd, (char *)NULL, env);
    _exit(127);
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
    struct stat st;
    uint8_t *buf;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    size_t off = 0;

    if (fd < 0)
        return GC_EIO;
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > EXTERNAL_PLY_MAX) {
        close(fd);
        return GC_ETOOBIG;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return GC_ENOMEM;
    }
    while (off < (size_t)st.st_size && (n = read(fd, buf + off, (size_t)st.st_size - off)) > 0)
        off += (size_t)n;
    close(fd);
    *ret = buf;
    *ret_len = off;
    return 0;
}

int generation_run_external(struct generation_server *gs, const struct generation_request *req,
                            struct generation_result *res)
{
    char out_path[] = "/tmp/gpucoord-gen-XXXXXX";
    char err[256];
    struct gc_splats *splats = NULL;
    gpucoord_lease *lease = NULL;
    gpucoord_client *c = NULL;
    int64_t t0 = gc_mono_ns(), deadline;
    int status = 0, rc = 0, tmp, fork_errno;
    char **env;
    pid_t pid;

    if (gs->coordination) {
        struct gpucoord_lease_request lr;
        gpucoord_lease_request_init(&lr);
        lr.holder = gs->holder;
        lr.bytes = gs->peak_bytes;
        lr.gpu = gs->device;
        lr.priority = gs->priority;
        lr.wait_s = gs->lease_wait_s;
        rc = gpucoord_client_new(gs->coordinator_url, &c);
        if (rc == 0)
            rc = gpucoord_lease_acquire(c, &lr, &lease);
        if (rc < 0 && !(rc == GPUCOORD_ECONNECT && !gs->require_coordinator)) {
            res->status = rc == GPUCOORD_ENEVERFITS ? 507 : 503;
            snprintf(res->error, sizeof(res->error), "no GPU memory lease: %s",
                     c ? gpucoord_client_message(c) : "bad GPUCOORD_URL");
            gpucoord_client_free(c);
            return rc;
        }
        rc = 0;
        if (lease != NULL)
            snprintf(res->lease_id, sizeof(res->lease_id), "%s", gpucoord_lease_id(lease));
    }
    tmp = mkstemp(out_path);
    if (tmp < 0) {
        res->status = 500;
        snprintf(res->error, sizeof(res->error), "cannot create the output file: %s",
                 strerror(errno));
        rc = GC_EIO;
        goto out_release;
    }
    close(tmp);
    env = child_env(req, out_path, res->lease_id);
    pid = env != NULL ? start_child(gs, env) : -1;
    fork_errno = errno;
    child_env_free(env);
    if (pid < 0) {
        res->status = 500;
        snprintf(res->error, sizeof(res->error), "cannot start the pipeline command: %s",
                 env != NULL ? strerror(fork_errno) : "out of memory");
        rc = GC_EIO;
        goto out_unlink;
    }
    deadline = gc_mono_ms() + (int64_t)(gs->pipeline_timeout_s * 1000.0);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (gc_mono_ms() >= deadline || (req->http != NULL && gc_http_req_client_gone(req->http))) {
            bool timed_out = gc_mono_ms() >= deadline;
            kill(-pid, SIGKILL); /* its group: the shell and what it started */
            waitpid(pid, &status, 0);
            res->status = timed_out ? 504 : 499;
            snprintf(res->error, sizeof(res->error), "pipeline command %s",
                     timed_out ? "timed out" : "abandoned: the client went away");
            rc = GC_ETIMEDOUT;
            goto out_unlink;
        }
        gc_sleep_ms(20);
    }
    kill(-pid, SIGKILL); /* anything it left running in its group: the lease ends below */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        res->status = 500;
        snprintf(res->error, sizeof(res->error), "pipeline command failed (%s %d)",
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        rc = GC_EIO;
    } else if (read_file(out_path, &res->ply, &res->ply_len) < 0 ||
               gc_ply_parse(res->ply, res->ply_len, &splats, err, sizeof(err)) < 0) {
        res->status = 500;
        snprintf(res->error, sizeof(res->error),
                 "pipeline command wrote no usable PLY to GEN_OUTPUT");
        free(res->ply);
        res->ply = NULL;
        rc = GC_EIO;
    }
    gc_splats_free(splats);
out_unlink:
    unlink(out_path);
out_release:
    gpucoord_lease_release(lease); /* after the command is gone: its memory is free */
    gpucoord_client_free(c);
    res->time_s = (double)(gc_mono_ns() - t0) / 1e9;
    return rc;
}
