/* server.c - command line, settings, /gpu_status/ and shutdown for the founding servers. */
#include "servers/common/server.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/size.h"
#include "common/utf8.h"
#include "gpucoord.h"

int gc_server_parse_args(int argc, char **argv, const char *prog, const char *usage_extra,
                         int default_port, const char *port_env, struct gc_server_args *ret)
{
    const char *env_port = getenv(port_env);
    char *end;
    long p;

    memset(ret, 0, sizeof(*ret));
    snprintf(ret->host, sizeof(ret->host), "127.0.0.1");
    ret->port = default_port;
    if (env_port != NULL && env_port[0] != '\0') {
        p = strtol(env_port, &end, 10);
        if (*end != '\0' || p <= 0 || p > 65535) {
            fprintf(stderr, "%s: %s must be a port number, got '%s'\n", prog, port_env, env_port);
            return GC_EINVAL;
        }
        ret->port = (int)p;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: %s [--host HOST] [--port PORT]\n\n"
                   "  --host HOST   address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n\n"
                   "%s",
                   prog, usage_extra);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("%s %s\n", prog, GPUCOORD_VERSION);
            return 1;
        }
        if ((strcmp(a, "--host") == 0 || strcmp(a, "--port") == 0) && i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return GC_EINVAL;
        }
        if (strcmp(a, "--host") == 0) {
            if (strlen(argv[i + 1]) >= sizeof(ret->host) || argv[i + 1][0] == '\0') {
                fprintf(stderr, "%s: bad --host '%s'\n", prog, argv[i + 1]);
                return GC_EINVAL;
            }
            snprintf(ret->host, sizeof(ret->host), "%s", argv[++i]);
        } else if (strcmp(a, "--port") == 0) {
            p = strtol(argv[i + 1], &end, 10);
            if (*argv[i + 1] == '\0' || *end != '\0' || p < 0 || p > 65535) {
                fprintf(stderr, "%s: --port must be 0..65535, got '%s'\n", prog, argv[i + 1]);
                return GC_EINVAL;
            }
            ret->port = (int)p;
            i++;
        } else {
            fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", prog, a);
            return GC_EINVAL;
        }
    }
    return 0;
}

int gc_env_size(const char *name, uint64_t def, uint64_t *ret, char *errbuf, size_t errlen)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0') {
        *ret = def;
        return 0;
    }
    if (gpucoord_size_parse(v, ret) < 0) {
        snprintf(errbuf, errlen, "%s is not a size: '%s' (examples: 4.7Gi, 512Mi, 20G)", name, v);
        return GC_EINVAL;
    }
    return 0;
}

int gc_env_double(const char *name, double def, double min, double max, double *ret, char *errbuf,
                  size_t errlen)
{
    const char *v = getenv(name);
    char *end;
    double d;

    if (v == NULL || v[0] == '\0') {
        *ret = def;
        return 0;
    }
    errno = 0;
    d = strtod(v, &end);
    if (errno != 0 || *end != '\0' || !(d >= min && d <= max)) {
        snprintf(errbuf, errlen, "%s must be a number between %g and %g, got '%s'", name, min, max,
                 v);
        return GC_EINVAL;
    }
    *ret = d;
    return 0;
}

int gc_env_bool(const char *name, bool def, bool *ret, char *errbuf, size_t errlen)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0') {
        *ret = def;
    } else if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0) {
        *ret = true;
    } else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0) {
        *ret = false;
    } else {
        snprintf(errbuf, errlen, "%s must be 1 or 0, got '%s'", name, v);
        return GC_EINVAL;
    }
    return 0;
}

double gc_gib(uint64_t bytes)
{
    return round((double)bytes / (double)(1ULL << 30) * 1000.0) / 1000.0;
}

void gc_gpu_status_add(json_t *obj, struct gc_model_store *store)
{
    struct gc_gpu_memory mem;

    gc_model_store_memory(store, &mem);
    json_object_set_new(obj, "gpu_available", json_boolean(mem.available));
    json_object_set_new(obj, "memory_total_gb", json_real(gc_gib(mem.total_bytes)));
    json_object_set_new(obj, "memory_free_gb", json_real(gc_gib(mem.free_bytes)));
    json_object_set_new(obj, "memory_used_gb", json_real(gc_gib(mem.used_bytes)));
    json_object_set_new(
        obj, "memory_used_percent",
        json_real(mem.total_bytes
                      ? round((double)mem.used_bytes * 1000.0 / (double)mem.total_bytes) / 10.0
                      : 0.0));
}

json_t *gc_gpu_status_json(struct gc_model_store *store)
{
    json_t *o = json_object();

    gc_gpu_status_add(o, store);
    return o;
}

void gc_server_error(struct gc_http_resp *resp, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gc_utf8_clean(msg);
    gc_http_resp_json(resp, status,
                      json_pack("{s:s, s:s, s:s}", "error", code, "message", msg, "detail", msg));
}

void gc_server_block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int gc_server_wait_signal(void)
{
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    while (sigwait(&set, &sig) != 0)
        ;
    return sig;
}

void gc_server_self_url(const struct gc_server_args *args, int port, char *buf, size_t len)
{
    const char *h = args->host;

    if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    if (strchr(h, ':') != NULL)
        snprintf(buf, len, "http://[%s]:%d", h, port);
    else
        snprintf(buf, len, "http://%s:%d", h, port);
}
