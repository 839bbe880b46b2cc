/*
 * config.h - gpucoordd's settings: defaults, then the INI file (--config), then
 * the command line. See docs/configuration.md for every key.
 */
#ifndef GC_CONFIG_H
#define GC_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/ledger.h"
#include "daemon/store.h"
#include "gpucoord.h"

/* Longest bearer token accepted from token_file; a longer one is refused at start. */
#define GC_TOKEN_MAX GPUCOORD_TOKEN_MAX

struct gc_gpu_conf {
    uint64_t budget_bytes; /* 0: none */
    uint64_t reserve_bytes;
    bool has_reserve;
};

struct gc_config {
    char listen[256];      /* "HOST:PORT"; "" disables TCP */
    char socket_path[256]; /* "" disables the Unix socket */
    unsigned socket_mode;
    char state_dir[512];
    char token_file[512];
    char token[GC_TOKEN_MAX + 1]; /* loaded from token_file */
    bool allow_remote_callbacks;

    uint64_t reserve_bytes; /* default per GPU */
    struct gc_gpu_conf gpus[GC_GPUS_MAX];

    double max_unloaded_s;
    double starvation_s;
    double free_lag_s; /* how long freed memory may take to show free in NVML */
    double default_ttl_s, max_ttl_s, max_wait_s;
    double max_ttl_pidless_s; /* the longest TTL of a lease without a pid */
    unsigned queue_max, leases_per_holder_max, conn_limit;
    unsigned leases_per_caller_max;          /* active leases of one caller identity (0: no cap) */
    unsigned conn_reserve;                   /* of conn_limit, slots kept for short requests */
    unsigned conn_per_peer;                  /* general slots per TCP address or Unix uid */
    double header_timeout_s, body_timeout_s; /* a request's headers, then its body */
    size_t body_max;
    enum gc_store_sync sync;
    size_t compact_bytes;

    double verify_poll_s; /* NVML polling while verifying */
    double idle_poll_s;   /* NVML polling while something waits for memory */
    double unload_timeout_s, reload_timeout_s, verify_timeout_s, kill_grace_s;
    unsigned reload_attempts;
    double reload_backoff_s;
    int log_level; /* enum gc_log_level */

    json_t *residents; /* registrations from [resident.NAME] sections (array) */
};

/* Fills the defaults (listen 127.0.0.1:$GPUCOORD_PORT or 10010, ...). */
void gc_config_defaults(struct gc_config *cfg);
/* Reads an INI file over cfg. GC_EINVAL with errbuf naming the line and key. */
int gc_config_load_file(struct gc_config *cfg, const char *path, char *errbuf, size_t errbuf_len);
/* Reads token_file into token (first line, trimmed): 16 to GC_TOKEN_MAX characters,
 * else GC_EINVAL with errbuf saying why. */
int gc_config_load_token(struct gc_config *cfg, char *errbuf, size_t errbuf_len);
/* Frees what the config owns. */
void gc_config_free(struct gc_config *cfg);

#endif
