/*
 * gpucoord.h - client library for the gpucoord GPU memory coordinator.
 *
 * A process that needs GPU memory asks the coordinator (gpucoordd) for a lease
 * of N bytes; the coordinator makes room (unloading lower-priority residents and
 * verifying through NVML that the memory is really free) and grants it. The
 * lease lasts until it is released, its holder process exits, or its TTL passes
 * without a heartbeat; the library sends heartbeats from a background thread.
 *
 * Every function returns 0 or a negative GPUCOORD_E* code. Functions that talk
 * to the coordinator keep the server's human-readable reason; read it with
 * gpucoord_client_message(). The library never logs and never exits.
 *
 * Thread safety: one gpucoord_client may be used from one thread at a time;
 * leases may be released from any thread.
 */
#ifndef GPUCOORD_H
#define GPUCOORD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPUCOORD_VERSION "0.1.0"

/*
 * The one error table. Each entry: name, HTTP status, API error code, message.
 * The daemon answers errors as {"error": code, "message": ...} with the status;
 * the client library maps the code back to the enum value.
 */
#define GPUCOORD_ERRNO_MAP(XX)                                                                     \
    XX(EINVAL, 400, "bad_request", "invalid argument")                                             \
    XX(ETOOBIG, 413, "too_large", "request too large")                                             \
    XX(EUNAUTH, 401, "unauthorized", "missing or wrong bearer token")                              \
    XX(EFORBIDDEN, 403, "forbidden", "not allowed")                                                \
    XX(ENOTFOUND, 404, "not_found", "no such object")                                              \
    XX(EMETHOD, 405, "method_not_allowed", "method not allowed")                                   \
    XX(ECONFLICT, 409, "conflict", "conflicting state")                                            \
    XX(ENEVERFITS, 409, "never_fits", "request can never fit on the GPU")                          \
    XX(ELIMIT, 429, "limit_reached", "a configured limit was reached")                             \
    XX(ECOULDNOTFREE, 503, "could_not_free", "could not free enough GPU memory")                   \
    XX(EUNAVAIL, 503, "unavailable", "service unavailable")                                        \
    XX(ETIMEDOUT, 504, "timeout", "operation timed out")                                           \
    XX(EQUEUED, 202, "queued", "request is queued")                                                \
    XX(ENOMEM, 500, "no_memory", "out of host memory")                                             \
    XX(EIO, 500, "io_error", "input/output error")                                                 \
    XX(ECONNECT, 502, "connect_failed", "cannot reach the coordinator")                            \
    XX(EPROTO, 502, "bad_response", "malformed response")                                          \
    XX(EGPU, 500, "gpu_error", "GPU driver or NVML error")                                         \
    XX(EOOM, 507, "out_of_gpu_memory", "out of GPU memory")                                        \
    XX(EINTERNAL, 500, "internal", "internal error")                                               \
    XX(EJOURNAL, 503, "journal_failed", "cannot write the coordinator's durable state")

enum gpucoord_errno {
    GPUCOORD_OK = 0,
    GPUCOORD_ERRNO_BASE_ = -1000,
#define GPUCOORD_XX_ENUM_(name, status, code, msg) GPUCOORD_##name,
    GPUCOORD_ERRNO_MAP(GPUCOORD_XX_ENUM_)
#undef GPUCOORD_XX_ENUM_
        GPUCOORD_ERRNO_END_
};

/* gpucoord_strerror: the fixed message for an error code ("unknown error" if unknown). */
const char *gpucoord_strerror(int err);
/* gpucoord_err_name: the API error code string ("never_fits") for err, or "unknown". */
const char *gpucoord_err_name(int err);

/* Sizes: "20Gi", "4.7Gi", "512Mi", "1.5G", "1000". Ki/Mi/Gi/Ti are powers of 1024,
 * K/M/G/T and KB/MB/GB/TB powers of 1000, a bare number is bytes. Returns 0 and sets
 * *ret_bytes, or GPUCOORD_EINVAL (malformed, negative, overflow); *ret_bytes unchanged. */
int gpucoord_size_parse(const char *text, uint64_t *ret_bytes);
/* Formats bytes for humans ("19.6Gi", "512Mi", "17"); returns buf. */
char *gpucoord_size_format(uint64_t bytes, char *buf, size_t buflen);

typedef struct gpucoord_client gpucoord_client;
typedef struct gpucoord_lease gpucoord_lease;

/* Longest bearer token, in gpucoordd's token file and in $GPUCOORD_TOKEN alike. */
#define GPUCOORD_TOKEN_MAX 4096

/*
 * gpucoord_client_new: a client for the coordinator at url: "http://HOST:PORT" or
 * "unix:/path/to.sock". NULL means $GPUCOORD_URL, else http://127.0.0.1:10010.
 * A bearer token is read from $GPUCOORD_TOKEN when set. GPUCOORD_EINVAL for a URL of
 * 1024 characters or more or a token longer than GPUCOORD_TOKEN_MAX (never cut).
 * Free with gpucoord_client_free().
 */
int gpucoord_client_new(const char *url, gpucoord_client **ret_client);
/* Frees the client. Leases it acquired stay valid until released. NULL is a no-op. */
void gpucoord_client_free(gpucoord_client *client);
/* The last error message the coordinator (or the transport) gave, "" if none. */
const char *gpucoord_client_message(const gpucoord_client *client);
/* Timeout in ms for one HTTP exchange apart from requested waits (default 10000). */
void gpucoord_client_set_timeout_ms(gpucoord_client *client, long timeout_ms);

#define GPUCOORD_GPU_ANY (-1)

struct gpucoord_lease_request {
    const char *holder; /* name, [A-Za-z0-9._-]{1,64} (required) */
    uint64_t bytes;     /* bytes needed (required, > 0) */
    int gpu;            /* GPU index or GPUCOORD_GPU_ANY */
    int pid;            /* holder pid; 0 = the calling process, -1 = none */
    int priority;       /* 0 = server default (100) */
    double ttl_s;       /* heartbeat TTL; 0 = server default */
    double wait_s;      /* how long to wait for the grant; 0 = do not wait */
    int heartbeat;      /* nonzero: send heartbeats from a background thread */
};

/* Fills req with defaults: gpu any, pid 0, priority 0, ttl 0, wait 0, heartbeat on. */
void gpucoord_lease_request_init(struct gpucoord_lease_request *req);

/*
 * gpucoord_lease_acquire: asks for a lease and waits up to req->wait_s for the grant.
 * On success *ret_lease is granted; release it with gpucoord_lease_release().
 * If the wait ends while still queued, the queued request is withdrawn and
 * GPUCOORD_EQUEUED is returned (GPUCOORD_ETIMEDOUT means the coordinator did not
 * answer in time). GPUCOORD_ENEVERFITS: it can never fit (see the message for the
 * arithmetic); GPUCOORD_ECOULDNOTFREE: eviction failed; GPUCOORD_ENOTFOUND: the
 * request ended while it waited (its pid exited, or it was withdrawn elsewhere).
 */
int gpucoord_lease_acquire(gpucoord_client *client, const struct gpucoord_lease_request *req,
                           gpucoord_lease **ret_lease);
/* Releases the lease on the coordinator, stops its heartbeat and frees it.
 * The lease is freed even when the coordinator cannot be reached. NULL is a no-op. */
int gpucoord_lease_release(gpucoord_lease *lease);
/* Stops the heartbeats and frees the handle without releasing the lease: it lives
 * on at the coordinator until its pid exits, its TTL passes, or someone deletes it
 * (e.g. `gpucoord lease acquire`). NULL is a no-op. */
void gpucoord_lease_detach(gpucoord_lease *lease);
/*
 * gpucoord_lease_resize: asks for the lease to hold bytes (> 0) in all. Shrinking is
 * immediate. Growing is granted at once when it fits; otherwise the coordinator
 * makes room (evicting lower-priority residents, verifying through NVML) and the
 * call waits up to wait_s. Returns 0 when the lease holds bytes (read it back with
 * gpucoord_lease_bytes()); GPUCOORD_EQUEUED when the wait ran out: the lease keeps
 * its old size and the growth is withdrawn; GPUCOORD_ENEVERFITS when it can never
 * fit; GPUCOORD_ENOTFOUND when the lease has ended. Safe to call from any thread,
 * but not concurrently with itself on one lease.
 */
int gpucoord_lease_resize(gpucoord_lease *lease, uint64_t bytes, double wait_s);
/* Sends one heartbeat now (the background thread does this on its own). */
int gpucoord_lease_heartbeat(gpucoord_lease *lease);
const char *gpucoord_lease_id(const gpucoord_lease *lease);
uint64_t gpucoord_lease_bytes(const gpucoord_lease *lease);
int gpucoord_lease_gpu(const gpucoord_lease *lease);
double gpucoord_lease_waited_s(const gpucoord_lease *lease);
/* Comma-separated names of residents evicted for this lease ("" if none). */
const char *gpucoord_lease_evicted(const gpucoord_lease *lease);
/* Nonzero once the coordinator answered that the lease is gone (expired, released). */
int gpucoord_lease_lost(const gpucoord_lease *lease);

/*
 * gpucoord_request: one raw API call, for tools. method "GET"/"POST"/"DELETE", path
 * "/v1/status", body JSON or NULL. *ret_status gets the HTTP status and *ret_body a
 * malloc'd, NUL-terminated body (caller frees) whenever an answer came back.
 */
int gpucoord_request(gpucoord_client *client, const char *method, const char *path,
                     const char *body, long timeout_ms, long *ret_status, char **ret_body);

#ifdef __cplusplus
}
#endif
#endif
