/*
 * external.c - a real pipeline plugged in as an external command stage.
 *
 * GENERATION_PIPELINE_CMD runs under /bin/sh with GEN_PROMPT, GEN_SEED, GEN_OUTPUT (a
 * path to write the PLY to), GPUCOORD_LEASE_ID and CUDA_VISIBLE_DEVICES (the granted
 * GPU's UUID, so that it allocates where its lease is) in its environment. Its declared
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

#include <jansson.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/size.h"
#include "gpucoord.h"
#include "servers/common/ply.h"
#include "servers/generation/generation.h"

/* Largest PLY accepted from the command. */
#define EXTERNAL_PLY_MAX (512ULL << 20)
/* A GPU UUID as NVML writes it ("GPU-" and 36 characters), with room to spare. */
#define EXTERNAL_UUID_MAX 96
/* Longest the server waits for the coordinator's list of GPUs. */
#define EXTERNAL_GPUS_TIMEOUT_MS 10000L

/* The UUID of the coordinator's GPU index gpu (GET /v1/gpus) into buf. 0 or < 0. */
static int granted_gpu_uuid(gpucoord_client *c, int gpu, char *buf, size_t len)
{
    json_t *ans, *g;
    char *body = NULL;
    long status = 0;
    size_t i;
    int rc;

    rc = gpucoord_request(c, "GET", "/v1/gpus", NULL, EXTERNAL_GPUS_TIMEOUT_MS, &status, &body);
    if (rc < 0 || status != 200 || body == NULL) {
        free(body);
        return rc < 0 ? rc : GC_EIO;
    }
    ans = json_loads(body, 0, NULL);
    free(body);
    rc = GC_ENOTFOUND;
    json_array_foreach(json_object_get(ans, "gpus"), i, g)
    {
        const char *uuid = json_string_value(json_object_get(g, "uuid"));
        if (json_integer_value(json_object_get(g, "index")) == gpu && uuid != NULL &&
            strlen(uuid) < len) {
            snprintf(buf, len, "%s", uuid);
            rc = 0;
        }
    }
    json_decref(ans);
    return rc;
}

/* Frees env and its entries from owned on (what child_env allocated). */
static void child_env_free(char **env, size_t owned)
{
    if (env == NULL)
        return;
    for (size_t i = owned; env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

/* The variables the command gets from us (the rest of the environment is ours). */
#define CHILD_VARS 5

/* The command's environment: this process's, with our variables set (one without a
 * value, CUDA_VISIBLE_DEVICES when nothing was leased, is left as it is). Built
 * before fork: a forked child of a threaded process may not allocate. Entries from
 * *ret_owned on are ours to free (child_env_free). */
static char **child_env(const struct generation_request *req, const char *out_path,
                        const char *lease_id, const char *gpu_uuid, size_t *ret_owned)
{
    static const char *const names[CHILD_VARS] = {
        "GEN_PROMPT=", "GEN_SEED=", "GEN_OUTPUT=", "GPUCOORD_LEASE_ID=", "CUDA_VISIBLE_DEVICES="};
    const char *values[CHILD_VARS];
    char seed[32];
    size_t n = 0, k = 0, owned;
    char **env;

    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)req->seed);
    values[0] = req->prompt;
    values[1] = seed;
    values[2] = out_path;
    values[3] = lease_id;
    values[4] = gpu_uuid[0] != '\0' ? gpu_uuid : NULL;
    while (environ[n] != NULL)
        n++;
    env = calloc(n + CHILD_VARS + 1, sizeof(*env));
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool ours = false;
        for (size_t j = 0; j < CHILD_VARS && !ours; j++)
            ours = values[j] != NULL && strncmp(environ[i], names[j], strlen(names[j])) == 0;
        if (!ours)
            env[k++] = environ[i]; /* borrowed */
    }
    owned = k;
    for (size_t j = 0; j < CHILD_VARS; j++) {
        size_t len;
        if (values[j] == NULL)
            continue;
        len = strlen(names[j]) + strlen(values[j]) + 1;
        env[k] = malloc(len);
        if (env[k] == NULL) {
            child_env_free(env, owned);
            return NULL;
        }
        snprintf(env[k], len, "%s%s", names[j], values[j]);
        k++;
    }
    *ret_owned = owned;
    return env;
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
    char gpu_uuid[EXTERNAL_UUID_MAX] = "";
    size_t owned = 0;
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
        if (lease != NULL) {
            snprintf(res->lease_id, sizeof(res->lease_id), "%s", gpucoord_lease_id(lease));
            if (granted_gpu_uuid(c, gpucoord_lease_gpu(lease), gpu_uuid, sizeof(gpu_uuid)) < 0) {
                /* Unbound, the command would allocate on whatever GPU it sees first. */
                res->status = 503;
                snprintf(res->error, sizeof(res->error),
                         "cannot learn the UUID of GPU %d, where the lease was granted",
                         gpucoord_lease_gpu(lease));
                rc = GC_EIO;
                goto out_release;
            }
        }
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
    env = child_env(req, out_path, res->lease_id, gpu_uuid, &owned);
    pid = env != NULL ? start_child(gs, env) : -1;
    fork_errno = errno;
    child_env_free(env, owned);
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
