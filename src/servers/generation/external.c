/*
 * external.c - a real pipeline plugged in as an external command stage.
 *
 * GENERATION_PIPELINE_CMD runs under /bin/sh with GEN_PROMPT, GEN_SEED, GEN_OUTPUT (a
 * path to write the PLY to) and GPUCOORD_LEASE_ID in its environment. Its declared
 * memory need is GENERATION_PEAK_BYTES. The lease is taken for the command's own
 * pid (the child is started stopped on a pipe, leased, then let go), so the
 * coordinator counts the memory the command really uses against the lease, and
 * the lease ends the moment the command exits, however it exits.
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

static pid_t start_child(const struct generation_server *gs,
                         const struct generation_request *req, const char *out_path, int go_fd,
                         char *lease_env)
{
    pid_t pid = fork();
    char seed[32], byte;
    sigset_t none;

    if (pid != 0)
        return pid;
    /* Child: die with the server, wait for the lease, then run the command. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (read(go_fd, &byte, 1) != 1 || byte != 'g')
        _exit(125);
    if (read(go_fd, lease_env, 63) < 0)
        _exit(125);
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)req->seed);
    setenv("GEN_PROMPT", req->prompt, 1);
    setenv("GEN_SEED", seed, 1);
    setenv("GEN_OUTPUT", out_path, 1);
    setenv("GPUCOORD_LEASE_ID", lease_env, 1);
    execl("/bin/sh", "sh", "-c", gs->pipeline_cmd, (char *)NULL);
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
    char lease_env[64] = "", err[256];
    struct gc_splats *splats = NULL;
    gpucoord_lease *lease = NULL;
    gpucoord_client *c = NULL;
    int64_t t0 = gc_mono_ns(), deadline;
    int pipefd[2], status = 0, rc = 0, tmp;
    pid_t pid;

    tmp = mkstemp(out_path);
    if (tmp < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
        res->status = 500;
        snprintf(res->error, sizeof(res->error), "cannot set up the pipeline: %s",
                 strerror(errno));
        if (tmp >= 0) {
            close(tmp);
            unlink(out_path);
        }
        return GC_EIO;
    }
    close(tmp);
    pid = start_child(gs, req, out_path, pipefd[0], lease_env);
    close(pipefd[0]);
    if (pid < 0) {
        close(pipefd[1]);
        unlink(out_path);
        res->status = 500;
        snprintf(res->error, sizeof(res->error), "fork: %s", strerror(errno));
        return GC_EIO;
    }

    if (gs->coordination) {
        struct gpucoord_lease_request lr;
        gpucoord_lease_request_init(&lr);
        lr.holder = gs->holder;
        lr.bytes = gs->peak_bytes;
        lr.gpu = gs->device;
        lr.pid = (int)pid;
        lr.priority = gs->priority;
        lr.wait_s = gs->lease_wait_s;
        rc = gpucoord_client_new(gs->coordinator_url, &c);
        if (rc == 0)
            rc = gpucoord_lease_acquire(c, &lr, &lease);
        if (rc < 0 && !(rc == GPUCOORD_ECONNECT && !gs->require_coordinator)) {
            res->status = rc == GPUCOORD_ENEVERFITS ? 507 : 503;
            snprintf(res->error, sizeof(res->error), "no GPU memory lease: %s",
                     c ? gpucoord_client_message(c) : "bad GPUCOORD_URL");
            kill(pid, SIGKILL);
            goto out_reap;
        }
        rc = 0;
        if (lease != NULL)
            snprintf(lease_env, sizeof(lease_env), "%s", gpucoord_lease_id(lease));
    }
    if (write(pipefd[1], "g", 1) != 1 ||
        write(pipefd[1], lease_env, strlen(lease_env) + 1) < 0) {
        kill(pid, SIGKILL);
    }

    deadline = gc_mono_ms() + (int64_t)(gs->pipeline_timeout_s * 1000.0);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (gc_mono_ms() >= deadline ||
            (req->http != NULL && gc_http_req_client_gone(req->http))) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            res->status = gc_mono_ms() >= deadline ? 504 : 499;
            snprintf(res->error, sizeof(res->error), "pipeline command %s",
                     res->status == 504 ? "timed out" : "abandoned: the client went away");
            rc = GC_ETIMEDOUT;
            goto out_release;
        }
        gc_sleep_ms(20);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        res->status = 500;
        snprintf(res->error, sizeof(res->error), "pipeline command failed (%s %d)",
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        rc = GC_EIO;
    } else if (read_file(out_path, &res->ply, &res->ply_len) < 0 ||
               gc_ply_parse(res->ply, res->ply_len, &splats, err, sizeof(err)) < 0) {
        res->status = 500;
        snprintf(res->error, sizeof(res->error), "pipeline command wrote no usable PLY to "
                 "GEN_OUTPUT");
        free(res->ply);
        res->ply = NULL;
        rc = GC_EIO;
    }
    gc_splats_free(splats);
    goto out_release;

out_reap:
    waitpid(pid, &status, 0);
    rc = rc < 0 ? rc : GC_EIO;
out_release:
    close(pipefd[1]);
    gpucoord_lease_release(lease);
    gpucoord_client_free(c);
    unlink(out_path);
    res->time_s = (double)(gc_mono_ns() - t0) / 1e9;
    return rc;
}
