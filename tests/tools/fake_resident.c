/*
 * fake_resident.c - a resident for tests: speaks the seed protocol, really holds
 * its bytes through the driver API (gpusim or a real GPU), and misbehaves on
 * request so that every failure the coordinator must survive can be staged.
 *
 *   fake-resident --port 0 --bytes 4.7Gi [--register URL --name NAME ...]
 *                 [--unload-mode ok|hang|error|lie|slow|crash]
 *                 [--reload-mode ok|hang|error|crash|die] [--reload-failures N]
 *                 [--free-delay-ms MS] [--cleanup-frees]
 *                 [--unload-delay-ms MS] [--reload-delay-ms MS]
 *                 [--levels NAME:SIZE,NAME:SIZE,...]
 *
 * With --levels (fullest first; the first's size is --bytes) it registers them and
 * POST /unload_models/?level=NAME frees down to that level's size; /health/ names
 * the level it is at.
 *
 * Reload mode die answers success, then exits without loading.
 *
 * Prints "ready port=P pid=PID" once it listens with its bytes loaded.
 * GET /stats answers {unloads, reloads, cleanups, loaded}.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/size.h"
#include "gpu/gpu.h"

#define CHUNKS_MAX 4096
#define LEVELS_MAX 8

enum mode { MODE_OK, MODE_HANG, MODE_ERROR, MODE_LIE, MODE_SLOW, MODE_CRASH, MODE_DIE };

static struct {
    struct gc_cuda cuda;
    CUcontext ctx;
    uint64_t bytes, chunk;
    CUdeviceptr ptrs[CHUNKS_MAX];
    size_t sizes[CHUNKS_MAX];
    unsigned nptrs;
    uint64_t held; /* bytes allocated now */
    unsigned nlevels, level;
    char level_names[LEVELS_MAX][33];
    uint64_t level_bytes[LEVELS_MAX];
    bool loaded;
    enum mode unload_mode, reload_mode;
    unsigned reload_failures; /* fail this many reloads first */
    int free_delay_ms;
    int unload_delay_ms, reload_delay_ms; /* work time before answering */
    bool cleanup_frees;
    unsigned unloads, reloads, cleanups;
    pthread_mutex_t lock;
} fr = {.chunk = 512ULL << 20, .lock = PTHREAD_MUTEX_INITIALIZER};

/* Exits a moment after the answer went out. */
static void *die_soon(void *arg)
{
    (void)arg;
    gc_sleep_ms(50);
    _exit(5);
}

static int parse_mode(const char *s, enum mode *ret)
{
    static const char *names[] = {"ok", "hang", "error", "lie", "slow", "crash", "die"};
    for (int i = 0; i < 7; i++) {
        if (strcmp(s, names[i]) == 0) {
            *ret = (enum mode)i;
            return 0;
        }
    }
    return -1;
}

/* Allocates what is missing of its full size. */
static int load_all(void)
{
    uint64_t left = fr.bytes - fr.held;

    fr.cuda.cuCtxSetCurrent(fr.ctx);
    while (left > 0 && fr.nptrs < CHUNKS_MAX) {
        size_t n = left < fr.chunk ? (size_t)left : (size_t)fr.chunk;
        if (fr.cuda.cuMemAlloc(&fr.ptrs[fr.nptrs], n) != CUDA_SUCCESS)
            return -1;
        fr.sizes[fr.nptrs++] = n;
        fr.held += n;
        left -= n;
    }
    fr.loaded = true;
    fr.level = 0;
    return 0;
}

/* Frees chunks, last first, until it holds at most keep bytes. */
static void free_down_to(uint64_t keep)
{
    fr.cuda.cuCtxSetCurrent(fr.ctx);
    while (fr.nptrs > 0 && fr.held > keep) {
        fr.nptrs--;
        fr.cuda.cuMemFree(fr.ptrs[fr.nptrs]);
        fr.held -= fr.sizes[fr.nptrs];
    }
}

static void free_all(void)
{
    free_down_to(0);
    fr.loaded = false;
    fr.level = fr.nlevels > 0 ? fr.nlevels - 1 : 0;
}

/* Parses NAME:SIZE,NAME:SIZE,...; -1 when malformed. */
static int levels_parse(const char *spec)
{
    char buf[512], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (colon == NULL || fr.nlevels >= LEVELS_MAX)
            return -1;
        *colon = '\0';
        snprintf(fr.level_names[fr.nlevels], sizeof(fr.level_names[0]), "%s", tok);
        if (gc_size_parse(colon + 1, &fr.level_bytes[fr.nlevels]) < 0)
            return -1;
        fr.nlevels++;
    }
    return fr.nlevels >= 2 ? 0 : -1;
}

static void answer(struct gc_http_resp *resp, int status, json_t *obj)
{
    gc_http_resp_json(resp, status, obj);
}

static void handle(void *ctx, const struct gc_http_req *req, struct gc_http_resp *resp)
{
    char path[128];

    (void)ctx;
    gc_http_path_normalize(req->path, path, sizeof(path));
    pthread_mutex_lock(&fr.lock);
    if (strcmp(path, "/health") == 0) {
        json_t *h = json_pack("{s:s, s:b}", "status", "healthy", "models_loaded", fr.loaded);
        if (fr.nlevels > 0)
            json_object_set_new(h, "level", json_string(fr.level_names[fr.level]));
        answer(resp, 200, h);
    } else if (strcmp(path, "/stats") == 0) {
        answer(resp, 200,
               json_pack("{s:i, s:i, s:i, s:b}", "unloads", fr.unloads, "reloads", fr.reloads,
                         "cleanups", fr.cleanups, "loaded", fr.loaded));
    } else if (strcmp(path, "/unload_models") == 0) {
        fr.unloads++;
        if (fr.unload_delay_ms > 0) {
            pthread_mutex_unlock(&fr.lock);
            gc_sleep_ms(fr.unload_delay_ms);
            pthread_mutex_lock(&fr.lock);
        }
        switch (fr.unload_mode) {
        case MODE_HANG:
            pthread_mutex_unlock(&fr.lock);
            gc_sleep_ms(3600 * 1000);
            return;
        case MODE_ERROR:
            answer(resp, 500,
                   json_pack("{s:s, s:s, s:b}", "status", "error", "error",
                             "simulated unload failure", "models_unloaded", 0));
            break;
        case MODE_CRASH:
            _exit(3);
        case MODE_LIE:
            fr.loaded = false; /* says so, frees nothing */
            answer(resp, 200, json_pack("{s:s, s:b}", "status", "success", "models_unloaded", 1));
            break;
        case MODE_SLOW: {
            answer(resp, 200, json_pack("{s:s, s:b}", "status", "success", "models_unloaded", 1));
            fr.loaded = false;
            pthread_mutex_unlock(&fr.lock);
            /* Answer first, free later: like a server that returns before memory is free. */
            gc_sleep_ms(fr.free_delay_ms);
            pthread_mutex_lock(&fr.lock);
            free_all();
            break;
        }
        default: {
            const char *level = gc_http_req_arg(req, "level");
            unsigned to = fr.nlevels;
            for (unsigned i = 0; level != NULL && i < fr.nlevels; i++) {
                if (strcmp(level, fr.level_names[i]) == 0)
                    to = i;
            }
            if (level != NULL && to == fr.nlevels) {
                answer(resp, 400,
                       json_pack("{s:s, s:s, s:b}", "status", "error", "error", "unknown level",
                                 "models_unloaded", 0));
            } else if (level != NULL && to + 1 < fr.nlevels) {
                free_down_to(fr.level_bytes[to]);
                fr.level = to;
                answer(resp, 200,
                       json_pack("{s:s, s:b, s:s}", "status", "success", "models_unloaded", 0,
                                 "level", fr.level_names[to]));
            } else {
                free_all();
                answer(resp, 200,
                       json_pack("{s:s, s:b}", "status", "success", "models_unloaded", 1));
            }
        }
        }
    } else if (strcmp(path, "/reload_models") == 0) {
        fr.reloads++;
        if (fr.reload_delay_ms > 0) {
            pthread_mutex_unlock(&fr.lock);
            gc_sleep_ms(fr.reload_delay_ms);
            pthread_mutex_lock(&fr.lock);
        }
        if (fr.reload_mode == MODE_CRASH)
            _exit(4);
        if (fr.reload_mode == MODE_DIE) {
            pthread_t t;
            answer(resp, 200, json_pack("{s:s, s:b}", "status", "success", "models_reloaded", 1));
            pthread_mutex_unlock(&fr.lock);
            if (pthread_create(&t, NULL, die_soon, NULL) == 0)
                pthread_detach(t);
            return;
        }
        if (fr.reload_mode == MODE_HANG) {
            pthread_mutex_unlock(&fr.lock);
            gc_sleep_ms(3600 * 1000);
            return;
        }
        if (fr.reload_failures > 0 || fr.reload_mode == MODE_ERROR) {
            if (fr.reload_failures > 0)
                fr.reload_failures--;
            answer(resp, 500,
                   json_pack("{s:s, s:s, s:b}", "status", "error", "error",
                             "simulated reload failure", "models_reloaded", 0));
        } else if ((fr.nptrs > 0 && fr.nlevels == 0) || load_all() == 0) {
            fr.loaded = true;
            answer(resp, 200,
                   json_pack("{s:s, s:b, s:b}", "status", "success", "models_reloaded", 1,
                             "restored_from_backup", 1));
        } else {
            free_all();
            answer(resp, 500,
                   json_pack("{s:s, s:s, s:b}", "status", "error", "error", "CUDA out of memory",
                             "models_reloaded", 0));
        }
    } else if (strcmp(path, "/cleanup_gpu") == 0) {
        fr.cleanups++;
        if (fr.cleanup_frees && !fr.loaded)
            free_all();
        answer(resp, 200, json_pack("{s:s, s:f}", "status", "success", "cleanup_time", 0.0));
    } else {
        gc_http_resp_error(resp, GC_ENOTFOUND, "no such path");
    }
    pthread_mutex_unlock(&fr.lock);
}

static int register_with(const char *url, const char *name, int port, int priority,
                         const char *restore, const char *on_stuck, double verify_s,
                         double unload_s)
{
    struct gc_http_response resp = {0};
    char err[256];
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:i, s:I, s:i, s:s, s:s, s:f, s:f}", "name", name, "protocol",
                  "seed", "url", "", "pid", (int)getpid(), "bytes", (json_int_t)fr.bytes,
                  "priority", priority, "restore", restore, "on_stuck", on_stuck,
                  "verify_timeout_s", verify_s, "unload_timeout_s", unload_s);
    char self[64], *text;
    int rc;

    if (fr.nlevels > 0) {
        json_t *levels = json_array();
        for (unsigned i = 0; i < fr.nlevels; i++)
            json_array_append_new(levels,
                                  json_pack("{s:s, s:I}", "name", fr.level_names[i], "bytes",
                                            (json_int_t)(i == 0 ? fr.bytes : fr.level_bytes[i])));
        json_object_set_new(body, "levels", levels);
    }
    snprintf(self, sizeof(self), "http://127.0.0.1:%d", port);
    json_object_set_new(body, "url", json_string(self));
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    rc = gc_http_request_once(url, "POST", "/v1/residents", text, 5000, &resp, err, sizeof(err));
    free(text);
    if (rc < 0) {
        fprintf(stderr, "fake-resident: cannot register: %s\n", err);
        return -1;
    }
    if (resp.status != 201) {
        fprintf(stderr, "fake-resident: register: HTTP %ld %s\n", resp.status, resp.body);
        gc_http_response_free(&resp);
        return -1;
    }
    gc_http_response_free(&resp);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"bytes", required_argument, NULL, 'b'},
        {"chunk", required_argument, NULL, 'c'},
        {"register", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"priority", required_argument, NULL, 'P'},
        {"restore", required_argument, NULL, 'R'},
        {"on-stuck", required_argument, NULL, 'S'},
        {"verify-timeout", required_argument, NULL, 'v'},
        {"unload-timeout", required_argument, NULL, 'u'},
        {"unload-mode", required_argument, NULL, 'U'},
        {"reload-mode", required_argument, NULL, 'L'},
        {"reload-failures", required_argument, NULL, 'F'},
        {"free-delay-ms", required_argument, NULL, 'd'},
        {"cleanup-frees", no_argument, NULL, 'C'},
        {"unload-delay-ms", required_argument, NULL, 'x'},
        {"reload-delay-ms", required_argument, NULL, 'y'},
        {"levels", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    struct gc_http_server_config hc = {.host = "127.0.0.1", .body_max = 1 << 20, .conn_limit = 64};
    struct gc_http_server *srv;
    const char *reg = NULL, *name = "fake", *restore = "auto", *on_stuck = "fail";
    int priority = 10, opt;
    double verify_s = 5, unload_s = 10;
    char err[256];
    CUdevice dev;
    sigset_t sigs;
    int sig;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            hc.port = atoi(optarg);
            break;
        case 'b':
            if (gc_size_parse(optarg, &fr.bytes) < 0)
                return 64;
            break;
        case 'c':
            if (gc_size_parse(optarg, &fr.chunk) < 0 || fr.chunk == 0)
                return 64;
            break;
        case 'r':
            reg = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'P':
            priority = atoi(optarg);
            break;
        case 'R':
            restore = optarg;
            break;
        case 'S':
            on_stuck = optarg;
            break;
        case 'v':
            verify_s = atof(optarg);
            break;
        case 'u':
            unload_s = atof(optarg);
            break;
        case 'U':
            if (parse_mode(optarg, &fr.unload_mode) < 0)
                return 64;
            break;
        case 'L':
            if (parse_mode(optarg, &fr.reload_mode) < 0)
                return 64;
            break;
        case 'F':
            fr.reload_failures = (unsigned)atoi(optarg);
            break;
        case 'd':
            fr.free_delay_ms = atoi(optarg);
            break;
        case 'C':
            fr.cleanup_frees = true;
            break;
        case 'x':
            fr.unload_delay_ms = atoi(optarg);
            break;
        case 'y':
            fr.reload_delay_ms = atoi(optarg);
            break;
        case 'l':
            if (levels_parse(optarg) < 0)
                return 64;
            break;
        default:
            return 64;
        }
    }
    if (gc_cuda_open(&fr.cuda, err, sizeof(err)) < 0) {
        fprintf(stderr, "fake-resident: %s\n", err);
        return 1;
    }
    if (fr.cuda.cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        fr.cuda.cuDevicePrimaryCtxRetain(&fr.ctx, dev) != CUDA_SUCCESS) {
        fprintf(stderr, "fake-resident: cannot create a context\n");
        return 1;
    }
    if (load_all() < 0) {
        fprintf(stderr, "fake-resident: out of GPU memory loading %llu bytes\n",
                (unsigned long long)fr.bytes);
        return 2;
    }
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    hc.handler = handle;
    if (gc_http_server_start(&hc, &srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "fake-resident: %s\n", err);
        return 1;
    }
    if (reg != NULL && register_with(reg, name, gc_http_server_port(srv), priority, restore,
                                     on_stuck, verify_s, unload_s) < 0)
        return 1;
    printf("ready port=%d pid=%d\n", gc_http_server_port(srv), (int)getpid());
    fflush(stdout);
    sigwait(&sigs, &sig);
    gc_http_server_stop(srv);
    return 0;
}
