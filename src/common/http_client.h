/*
 * http_client.h - blocking HTTP/1.1 client on libcurl, with a deadline on every call.
 *
 * A gc_http_client is one keep-alive connection's worth of state for one base
 * URL ("http://127.0.0.1:10010" or "unix:/run/gpucoord.sock"). Use it from one
 * thread at a time. It never logs.
 */
#ifndef GC_HTTP_CLIENT_H
#define GC_HTTP_CLIENT_H

#include <stddef.h>

/* Largest response body kept; larger ones fail with GC_ETOOBIG. */
#define GC_HTTP_RESPONSE_MAX (64u << 20)

struct gc_http_client;

struct gc_http_response {
    long status;
    char *body; /* NUL-terminated, malloc'd (never NULL after success) */
    size_t body_len;
    char content_type[128];
};

/* Creates a client for base_url. GC_EINVAL if the URL is not http:// or unix:. */
int gc_http_client_new(const char *base_url, struct gc_http_client **ret_client);
/* Frees the client; NULL is a no-op. */
void gc_http_client_free(struct gc_http_client *client);
/* Sends "Authorization: Bearer token" with every request (NULL: none). Copies token. */
int gc_http_client_set_bearer(struct gc_http_client *client, const char *token);

/*
 * gc_http_client_request: method path (joined to the base URL) with an optional
 * body of body_len bytes and content_type (NULL: application/json). Waits at most
 * timeout_ms for the whole exchange. On success fills *ret (free with
 * gc_http_response_free); any HTTP status counts as success. Errors: GC_ECONNECT
 * (refused, unreachable), GC_ETIMEDOUT, GC_ETOOBIG, GC_ENOMEM, GC_EIO; errbuf (may
 * be NULL) gets the transport's explanation.
 */
int gc_http_client_request(struct gc_http_client *client, const char *method, const char *path,
                           const char *body, size_t body_len, const char *content_type,
                           long timeout_ms, struct gc_http_response *ret, char *errbuf,
                           size_t errbuf_len);

/* Frees the body; safe on a zeroed or already-freed response. */
void gc_http_response_free(struct gc_http_response *resp);

/* One-shot request without a kept connection (convenience for rare calls). */
int gc_http_request_once(const char *base_url, const char *method, const char *path,
                         const char *body, long timeout_ms, struct gc_http_response *ret,
                         char *errbuf, size_t errbuf_len);

#endif
