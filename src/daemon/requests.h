/*
 * requests.h - API request bodies checked against the config's limits and read
 * into what they ask for, before the engine's lock is taken. A refusal is a GC_E*
 * with the reason in why; nothing has changed.
 */
#ifndef GC_REQUESTS_H
#define GC_REQUESTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/jsonx.h"
#include "coord/ledger.h"
#include "daemon/caller.h"
#include "daemon/config.h"

/* Largest lease accepted (a sanity cap, far above any GPU). */
#define GC_LEASE_BYTES_MAX (1ULL << 50)
/* Priorities are within +- this. */
#define GC_PRIORITY_LIMIT 1000000

/* POST /v1/leases */
struct gc_lease_req {
    const char *holder; /* points into the request */
    uint64_t bytes;
    pid_t pid;            /* 0: none */
    uint64_t start_ticks; /* pid's start time, as checked */
    int priority;
    int gpu_req; /* -1: any */
    double ttl_s, wait_s;
};

/* Reads a lease request; a pid must be the caller's own (checked in /proc). GC_EINVAL
 * or the pid check's error, with why filled. */
int gc_lease_req_parse(const json_t *req, const struct gc_config *cfg,
                       const struct gc_caller *caller, struct gc_lease_req *ret, char *why,
                       size_t why_len);

#endif
