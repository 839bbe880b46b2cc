/*
 * server.h - what both founding servers share around their HTTP handlers:
 * command line, environment settings, the /gpu_status/ answer, JSON errors in
 * the shape their users' clients expect, and orderly shutdown.
 */
#ifndef GC_SERVERS_SERVER_H
#define GC_SERVERS_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/http_server.h"
#include "servers/common/model.h"

struct gc_server_args {
    char host[128];
    int port;
};

/*
 * Parses `--host H --port P` (as the originals: serve.py --host 0.0.0.0 --port N),
 * plus --help/--version. The host defaults to 127.0.0.1: /unload_models/ and the
 * like have no authentication, so reaching them from the network is asked for with
 * --host. The port defaults to $port_env, else default_port.
 * Returns 0, 1 when --help/--version was answered (exit 0), or GC_EINVAL after
 * printing a one-line error (exit 2).
 */
int gc_server_parse_args(int argc, char **argv, const char *prog, const char *usage_extra,
                         int default_port, const char *port_env, struct gc_server_args *ret);

/* Environment settings: unset or empty gives def; malformed is GC_EINVAL with errbuf
 * naming the variable. */
int gc_env_size(const char *name, uint64_t def, uint64_t *ret, char *errbuf, size_t errlen);
int gc_env_double(const char *name, double def, double min, double max, double *ret, char *errbuf,
                  size_t errlen);
int gc_env_bool(const char *name, bool def, bool *ret, char *errbuf, size_t errlen);

/* {gpu_available, memory_total_gb, memory_free_gb, memory_used_gb, memory_used_percent}
 * from the driver's view of the whole device (new reference). */
json_t *gc_gpu_status_json(struct gc_model_store *store);
/* Adds the gpu_status fields to obj. */
void gc_gpu_status_add(json_t *obj, struct gc_model_store *store);
/* Bytes as GiB rounded to 3 decimals, as the originals report memory. */
double gc_gib(uint64_t bytes);

/* A 4xx/5xx answer with {"error": code, "message": m, "detail": m} (detail: FastAPI
 * style, which the originals' clients read). */
void gc_server_error(struct gc_http_resp *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Blocks SIGINT/SIGTERM/SIGHUP in the calling thread (call before creating threads). */
void gc_server_block_signals(void);
/* Waits for one of them; returns the signal number. */
int gc_server_wait_signal(void);

/* The URL a local client reaches this server at ("0.0.0.0" becomes 127.0.0.1). */
void gc_server_self_url(const struct gc_server_args *args, int port, char *buf, size_t len);

#endif
