/*
 * http_server.h - a small HTTP/1.1 server on libmicrohttpd.
 *
 * One thread per connection, so a handler may block (every wait it makes must
 * have a deadline, and should end when gc_http_req_client_gone says its client
 * left). The whole request body is collected, up to a cap, before the handler runs.
 * Listens on TCP, a Unix socket, or both. Connections hold slots (http_slots.h):
 * deadlines for a request's headers and body, a cap per peer, and a reserve that
 * serves only short requests.
 */
#ifndef GC_HTTP_SERVER_H
#define GC_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define GC_HTTP_HEADERS_MAX 8

struct gc_http_req {
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NUL-terminated; "" when empty */
    size_t body_len;
    bool via_unix;  /* arrived on the Unix socket */
    bool bearer_ok; /* carried the server's bearer token (false when none is set) */
    void *conn_;    /* internal */
};

struct gc_http_resp {
    int status;
    char *body; /* malloc'd, owned by the response */
    size_t body_len;
    char content_type[96];
    int nheaders;
    char headers[GC_HTTP_HEADERS_MAX][2][256];
};

typedef void (*gc_http_handler)(void *ctx, const struct gc_http_req *req,
                                struct gc_http_resp *resp);

struct gc_http_server_config {
    const char *host;         /* TCP address to bind ("127.0.0.1"); NULL: no TCP */
    int port;                 /* 0 picks a free port (see gc_http_server_port) */
    const char *unix_path;    /* Unix socket path; NULL: none */
    mode_t unix_mode;         /* e.g. 0660 */
    size_t body_max;          /* larger bodies get 413 */
    unsigned conn_limit;      /* concurrent connections */
    unsigned idle_timeout_s;  /* idle keep-alive connections are closed after this */
    size_t conn_memory;       /* per-connection buffer for headers (0: 16 KiB) */
    const char *bearer_token; /* when set, required on TCP requests */
    /* Most bytes of request bodies received or being handled at once (0: no limit).
     * A handler's memory grows with its body (a decoded copy, what it parses into):
     * this bounds the total, not only each request. A request whose body would pass
     * it is answered 503 at once, its body dropped as it arrives. */
    size_t bodies_max;
    gc_http_handler handler;
    void *ctx;
    /* Connection slots (src/common/http_slots.h); 0 picks the default named. */
    unsigned conn_reserve;      /* of conn_limit, kept for short requests (conn_limit / 16) */
    unsigned conn_per_peer;     /* general slots per TCP address or Unix uid (conn_limit / 2) */
    unsigned header_timeout_ms; /* headers must arrive within this of connecting (10 s) */
    unsigned body_timeout_ms;   /* then the body, and the answer must be taken (30 s) */
    /* Which requests the reserved slots serve (NULL: gc_http_req_is_short). */
    bool (*short_request)(const struct gc_http_req *req);
};

struct gc_http_server;

/* Starts listening. errbuf (may be NULL) explains failures ("cannot bind ..."). */
int gc_http_server_start(const struct gc_http_server_config *config,
                         struct gc_http_server **ret_server, char *errbuf, size_t errbuf_len);
/* Waits (at most 3 s) for requests in flight to be answered, stops, frees. A handler
 * that blocks must be told to return first. NULL is a no-op. */
void gc_http_server_stop(struct gc_http_server *server);
/* The TCP port actually bound (useful with port 0); -1 without TCP. */
int gc_http_server_port(const struct gc_http_server *server);

/* Connection slots over both listeners: held now, and connections closed before
 * their request was whole, by reason. */
struct gc_http_server_stats {
    unsigned general, reserved;
    unsigned long long expired;  /* past their header or body deadline */
    unsigned long long made_way; /* waiting longest when a newcomer found no slot */
    unsigned long long refused;  /* found no slot and nothing waiting to make way */
};
void gc_http_server_stats(struct gc_http_server *server, struct gc_http_server_stats *ret);

/* A request header (case-insensitive name) or NULL. */
const char *gc_http_req_header(const struct gc_http_req *req, const char *name);
/* A query-string argument or NULL. */
const char *gc_http_req_arg(const struct gc_http_req *req, const char *name);
/* Who sent a request, as the kernel knows it. */
struct gc_http_peer {
    bool via_unix;
    bool uid_known; /* Unix socket: SO_PEERCRED; TCP: a loopback client's socket owner */
    uid_t uid;
    char addr[64]; /* the TCP client's numeric address; "unix" on the Unix socket */
};
/* Fills *ret with the request's sender; uid_known is false when it cannot be told
 * (a remote TCP client, a client socket already closed). Reads /proc on TCP. */
void gc_http_req_peer(const struct gc_http_req *req, struct gc_http_peer *ret);
/* True once the client has closed its side (checked without blocking). */
bool gc_http_req_client_gone(const struct gc_http_req *req);
/* The default short request: GET or HEAD without a wait (no wait_s, or wait_s=0).
 * req->body is not yet read when this is asked. */
bool gc_http_req_is_short(const struct gc_http_req *req);

/* Sets a JSON answer; steals the reference to obj. */
void gc_http_resp_json(struct gc_http_resp *resp, int status, json_t *obj);
/* Sets {"error": code-of-err, "message": ...} with err's HTTP status. */
void gc_http_resp_error(struct gc_http_resp *resp, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets an error with an explicit status and code string. */
void gc_http_resp_error_code(struct gc_http_resp *resp, int status, const char *code,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sets a body; steals data (malloc'd). */
void gc_http_resp_bytes(struct gc_http_resp *resp, int status, const char *content_type, char *data,
                        size_t len);
/* Sets a text body (copied). */
void gc_http_resp_text(struct gc_http_resp *resp, int status, const char *content_type,
                       const char *text);
/* Adds a response header (truncated to 255 bytes; ignored past GC_HTTP_HEADERS_MAX). */
void gc_http_resp_header(struct gc_http_resp *resp, const char *name, const char *value);

/* Copies path without a trailing slash (except "/") into buf; false if it does not fit. */
bool gc_http_path_normalize(const char *path, char *buf, size_t buflen);

#endif
