/* requests.c - API request bodies checked and read (requests.h). */
#include "daemon/requests.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/names.h"

static const char *const lease_fields[] = {"holder",   "bytes", "gpu",    "pid",
                                           "priority", "ttl_s", "wait_s", NULL};

int gc_lease_req_parse(const json_t *req, const struct gc_config *cfg,
                       const struct gc_caller *caller, struct gc_lease_req *ret, char *why,
                       size_t why_len)
{
    struct gc_jerr err;
    const char *holder = NULL;
    uint64_t bytes = 0;
    int64_t pid = 0, priority = GC_LEASE_PRIORITY_DEFAULT, gpu_req = -1;
    double ttl_s = cfg->default_ttl_s, wait_s = 0;
    uint64_t start_ticks = 0;
    json_t *gpu;
    int rc;

    if (gc_json_only_keys(req, lease_fields, &err) < 0 ||
        gc_json_get_str(req, "holder", true, GC_NAME_MAX, &holder, &err) < 0 ||
        gc_json_get_bytes(req, "bytes", true, GC_LEASE_BYTES_MAX, &bytes, &err) < 0 ||
        gc_json_get_int(req, "pid", false, 1, INT_MAX, &pid, &err) < 0 ||
        gc_json_get_int(req, "priority", false, -GC_PRIORITY_LIMIT, GC_PRIORITY_LIMIT, &priority,
                        &err) < 0 ||
        gc_json_get_seconds(req, "ttl_s", false, 0, cfg->max_ttl_s, &ttl_s, &err) < 0 ||
        gc_json_get_seconds(req, "wait_s", false, 0, cfg->max_wait_s, &wait_s, &err) < 0) {
        snprintf(why, why_len, "%s", err.msg);
        return GC_EINVAL;
    }
    if (!gc_name_valid(holder)) {
        snprintf(why, why_len, "holder must match [A-Za-z0-9._-]{1,%d}", GC_NAME_MAX);
        return GC_EINVAL;
    }
    if (bytes == 0) {
        snprintf(why, why_len, "field 'bytes' must be greater than 0");
        return GC_EINVAL;
    }
    gpu = json_object_get(req, "gpu");
    if (gpu != NULL && !json_is_null(gpu)) {
        if (json_is_string(gpu) && strcmp(json_string_value(gpu), "any") == 0) {
            gpu_req = -1;
        } else if (json_is_integer(gpu) && json_integer_value(gpu) >= 0 &&
                   json_integer_value(gpu) < GC_GPUS_MAX) {
            gpu_req = json_integer_value(gpu);
        } else {
            snprintf(why, why_len, "field 'gpu' must be a GPU index or \"any\"");
            return GC_EINVAL;
        }
    }
    if (ttl_s == 0 && pid == 0) {
        snprintf(why, why_len, "a lease without a pid needs a ttl_s above 0");
        return GC_EINVAL;
    }
    /* Without a pid nothing but its TTL ends a lease whose holder vanished. */
    if (pid == 0 && json_object_get(req, "ttl_s") == NULL && ttl_s > cfg->max_ttl_pidless_s)
        ttl_s = cfg->max_ttl_pidless_s;
    if (pid == 0 && ttl_s > cfg->max_ttl_pidless_s) {
        snprintf(why, why_len,
                 "a lease without a pid may have a ttl_s of at most %g s "
                 "(max_ttl_pidless_s): send heartbeats to keep it longer, or give its pid",
                 cfg->max_ttl_pidless_s);
        return GC_EINVAL;
    }
    /* The pid ties the lease's life to a process: only its owner may name it. */
    if (pid > 0) {
        rc = gc_caller_check_pid(caller, (pid_t)pid, &start_ticks, why, why_len);
        if (rc < 0)
            return rc;
    }

    ret->holder = holder;
    ret->bytes = bytes;
    ret->pid = (pid_t)pid;
    ret->priority = (int)priority;
    ret->gpu_req = (int)gpu_req;
    ret->ttl_s = ttl_s;
    ret->wait_s = wait_s;
    ret->start_ticks = start_ticks;
    return 0;
}
