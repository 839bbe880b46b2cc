/* http_server.c - libmicrohttpd wrapper: collect body, dispatch, answer. */
#include "http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "peer.h"
#include "http_slots.h"
#include "utf8.h"

/* Per-connection memory for request headers and I/O buffers. libmicrohttpd clears
 * it between requests, so it is kept modest: headers beyond it get 431. */
#define HTTP_CONN_MEMORY (16u * 1024)
/* Pending connections queued by listen(). */
#define HTTP_LISTEN_BACKLOG 512
/* Defaults of the connection slots' settings (see the config's comments). */
#define HTTP_HEADER_TIMEOUT_MS 10000u
#define HTTP_BODY_TIMEOUT_MS   30000u
/* Connections accepted beyond conn_limit only to be closed at once (refused, or shut
 * down to make way) while their threads end: a full server keeps accepting, so that
 * the kernel's backlog never holds a prompt client behind slow ones. */
#define HTTP_CLOSING_HEADROOM 64u

struct gc_http_server {
    struct gc_http_server_config config;
    char *bearer_token;
    char *unix_path;
    struct MHD_Daemon *tcp;
    struct MHD_Daemon *unix_daemon;
    struct gc_http_slots *tcp_slots;
    struct gc_http_slots *unix_slots;
    int tcp_port;
    /* Requests begun and not yet completed (atomic). On a cache line of its own: every
     * request writes it, and every request reads the fields above. */
    _Alignas(64) unsigned in_flight;
    size_t bodies_in_flight; /* bytes reserved by requests under bodies_max (atomic) */
    char pad_[64 - sizeof(unsigned) - sizeof(size_t)];
};

/* How long stopping waits for requests in flight to be answered. */
#define STOP_DRAIN_MS 3000

/* Per-request state kept across MHD's callbacks. */
struct http_request_state {
    char *body;
    size_t len;
    size_t cap;
    bool too_big;
    size_t reserved; /* of bodies_in_flight */
    bool busy;       /* bodies_max reached: answered 503 */
    bool refused;    /* answered 503 on a reserved slot */
};

/* Reserves room for a body of bytes under bodies_max (the request keeps it until it
 * completes); false, and the body is dropped, when others hold too much. */
static bool bodies_reserve(struct gc_http_server *srv, struct http_request_state *st, size_t bytes)
{
    size_t more, n;

    if (srv->config.bodies_max == 0 || st->busy || bytes <= st->reserved)
        return !st->busy;
    more = bytes - st->reserved;
    n = __atomic_load_n(&srv->bodies_in_flight, __ATOMIC_RELAXED);
    do {
        if (n + more > srv->config.bodies_max) {
            st->busy = true;
            free(st->body);
            st->body = NULL;
            st->len = st->cap = 0;
            return false;
        }
    } while (!__atomic_compare_exchange_n(&srv->bodies_in_flight, &n, n + more, true,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    st->reserved = bytes;
    return true;
}

static void set_err(char *errbuf, size_t errbuf_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errbuf, size_t errbuf_len, const char *fmt, ...)
{
    va_list ap;

    if (errbuf == NULL || errbuf_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errbuf_len, fmt, ap);
    va_end(ap);
}

void gc_http_resp_bytes(struct gc_http_resp *resp, int status, const char *content_type, char *data,
                        size_t len)
{
    free(resp->body);
    resp->status = status;
    resp->body = data;
    resp->body_len = len;
    snprintf(resp->content_type, sizeof(resp->content_type), "%s",
             content_type ? content_type : "application/octet-stream");
}

void gc_http_resp_text(struct gc_http_resp *resp, int status, const char *content_type,
                       const char *text)
{
    char *copy = strdup(text);

    gc_http_resp_bytes(resp, copy ? status : 500, content_type, copy, copy ? strlen(copy) : 0);
}

void gc_http_resp_json(struct gc_http_resp *resp, int status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;

    json_decref(obj);
    if (s == NULL) {
        gc_http_resp_text(resp, 500, "application/json",
                          "{\"error\":\"no_memory\",\"message\":\"cannot encode answer\"}");
        return;
    }
    gc_http_resp_bytes(resp, status, "application/json", s, strlen(s));
}

static void resp_error_v(struct gc_http_resp *resp, int status, const char *code, const char *fmt,
                         va_list ap)
{
    char message[1024];

    vsnprintf(message, sizeof(message), fmt, ap);
    gc_utf8_clean(message); /* it may quote client bytes, or be cut inside a character */
    gc_http_resp_json(resp, status, json_pack("{s:s, s:s}", "error", code, "message", message));
}

void gc_http_resp_error(struct gc_http_resp *resp, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    resp_error_v(resp, gc_err_http_status(err), gpucoord_err_name(err), fmt, ap);
    va_end(ap);
}

void gc_http_resp_error_code(struct gc_http_resp *resp, int status, const char *code,
                             const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    resp_error_v(resp, status, code, fmt, ap);
    va_end(ap);
}

void gc_http_resp_header(struct gc_http_resp *resp, const char *name, const char *value)
{
    if (resp->nheaders >= GC_HTTP_HEADERS_MAX)
        return;
    snprintf(resp->headers[resp->nheaders][0], sizeof(resp->headers[0][0]), "%s", name);
    snprintf(resp->headers[resp->nheaders][1], sizeof(resp->headers[0][1]), "%s", value);
    resp->nheaders++;
}

bool gc_http_path_normalize(const char *path, char *buf, size_t buflen)
{
    size_t n = strlen(path);

    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n + 1 > buflen)
        return false;
    memcpy(buf, path, n);
    buf[n] = '\0';
    return true;
}

const char *gc_http_req_header(const struct gc_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn_, MHD_HEADER_KIND, name);
}

const char *gc_http_req_arg(const struct gc_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn_, MHD_GET_ARGUMENT_KIND, name);
}

bool gc_http_req_client_gone(const struct gc_http_req *req)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn_, MHD_CONNECTION_INFO_CONNECTION_FD);
    char c;
    ssize_t n;

    if (info == NULL)
        return false;
    n = recv(info->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

void gc_http_req_peer(const struct gc_http_req *req, struct gc_http_peer *ret)
{
    const union MHD_ConnectionInfo *fdi, *ai;
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    uid_t uid;

    memset(ret, 0, sizeof(*ret));
    ret->via_unix = req->via_unix;
    if (req->conn_ == NULL) {
        /* Handed to the handler by this process itself (tests, fuzzers): its own user. */
        ret->uid_known = true;
        ret->uid = geteuid();
        snprintf(ret->addr, sizeof(ret->addr), "local");
        return;
    }
    fdi = MHD_get_connection_info(req->conn_, MHD_CONNECTION_INFO_CONNECTION_FD);
    ai = MHD_get_connection_info(req->conn_, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (req->via_unix) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        snprintf(ret->addr, sizeof(ret->addr), "unix");
        if (fdi != NULL && getsockopt(fdi->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            ret->uid_known = true;
            ret->uid = cred.uid;
        }
        return;
    }
    if (ai == NULL || ai->client_addr == NULL)
        return;
    if (getnameinfo(ai->client_addr,
                    ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in),
                    ret->addr, sizeof(ret->addr), NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(ret->addr, sizeof(ret->addr), "unknown");
    if (fdi != NULL && getsockname(fdi->connect_fd, (struct sockaddr *)&local, &local_len) == 0 &&
        gc_peer_tcp_uid(ai->client_addr, (struct sockaddr *)&local, &uid) == 0) {
        ret->uid_known = true;
        ret->uid = uid;
    }
}

static enum MHD_Result queue_resp(struct MHD_Connection *conn, struct gc_http_resp *r)
{
    struct MHD_Response *mr;
    enum MHD_Result ret;

    mr = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
    if (mr == NULL) {
        free(r->body);
        return MHD_NO;
    }
    r->body = NULL;
    if (r->content_type[0] != '\0')
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    for (int i = 0; i < r->nheaders; i++)
        MHD_add_response_header(mr, r->headers[i][0], r->headers[i][1]);
    ret = MHD_queue_response(conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static bool bearer_ok(const struct gc_http_server *srv, struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    size_t want, got;
    unsigned char diff = 0;

    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    auth += 7;
    want = strlen(srv->bearer_token);
    got = strlen(auth);
    /* Compare every byte so timing does not reveal the matching prefix. */
    for (size_t i = 0; i < want; i++)
        diff |= (unsigned char)(srv->bearer_token[i] ^ (i < got ? auth[i] : 0));
    return diff == 0 && got == want;
}

bool gc_http_req_is_short(const struct gc_http_req *req)
{
    const char *wait = gc_http_req_arg(req, "wait_s");

    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return false;
    return wait == NULL || strtod(wait, NULL) == 0;
}

/* The connection's slot, set when it was accepted (NULL if that ran out of memory). */
static struct gc_http_slot *conn_slot(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info != NULL ? info->socket_context : NULL;
}

/* Headers are in. A connection on a reserved slot is answered 503 at once unless
 * its request is short; true when it was. */
static bool slot_refuses(struct gc_http_server *srv, bool via_unix, struct MHD_Connection *conn,
                         const char *url, const char *method)
{
    struct gc_http_slots *slots = via_unix ? srv->unix_slots : srv->tcp_slots;
    struct gc_http_slot *slot = conn_slot(conn);
    struct gc_http_req req = {.method = method, .path = url, .body = "", .via_unix = via_unix};
    struct gc_http_resp resp = {0};

    gc_http_slot_headers_in(slots, slot);
    if (!gc_http_slot_reserved(slot))
        return false;
    req.conn_ = conn;
    if ((srv->config.short_request ? srv->config.short_request : gc_http_req_is_short)(&req))
        return false;
    gc_http_resp_error(&resp, GC_EUNAVAIL,
                       "all %u connection slots are taken; only short requests (health, "
                       "heartbeats, reads without a wait) are served now: retry shortly",
                       srv->config.conn_limit);
    gc_http_resp_header(&resp, "Retry-After", "1");
    gc_http_resp_header(&resp, "Connection", "close");
    gc_http_slot_answering(slots, slot);
    queue_resp(conn, &resp);
    return true;
}

static enum MHD_Result on_request(struct gc_http_server *srv, bool via_unix,
                                  struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct http_request_state *st = *con_cls;
    struct gc_http_slots *slots = via_unix ? srv->unix_slots : srv->tcp_slots;
    struct gc_http_resp resp;
    struct gc_http_req req;
    enum MHD_Result ret;

    if (st == NULL) {
        const char *clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        st = calloc(1, sizeof(*st));
        if (st == NULL)
            return MHD_NO;
        *con_cls = st;
        __atomic_add_fetch(&srv->in_flight, 1, __ATOMIC_RELAXED);
        if (slot_refuses(srv, via_unix, conn, url, method)) {
            st->refused = true;
            return MHD_YES;
        }
        if (clen != NULL && strtoull(clen, NULL, 10) > srv->config.body_max)
            st->too_big = true;
        else if (clen != NULL)
            bodies_reserve(srv, st, (size_t)strtoull(clen, NULL, 10));
        return MHD_YES;
    }
    if (st->refused) { /* answered already; the body is not wanted */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (st->too_big || !bodies_reserve(srv, st, st->len + n))
            return MHD_YES;
        if (st->len + n > srv->config.body_max) {
            st->too_big = true;
            free(st->body);
            st->body = NULL;
            st->len = st->cap = 0;
            return MHD_YES;
        }
        if (st->len + n + 1 > st->cap) {
            /* Most bodies arrive whole: size for this chunk, grow by doubling. */
            size_t cap = st->cap ? st->cap : n + 1;
            char *p;
            while (cap < st->len + n + 1)
                cap *= 2;
            p = realloc(st->body, cap);
            if (p == NULL)
                return MHD_NO;
            st->body = p;
            st->cap = cap;
        }
        memcpy(st->body + st->len, upload_data, n);
        st->len += n;
        st->body[st->len] = '\0';
        return MHD_YES;
    }

    /* Not memset: the header table is large and only nheaders of it is read. */
    resp.status = 0;
    resp.body = NULL;
    resp.body_len = 0;
    resp.content_type[0] = '\0';
    resp.nheaders = 0;
    if (srv->bearer_token != NULL && !via_unix && !bearer_ok(srv, conn)) {
        gc_http_resp_error(&resp, GC_EUNAUTH, "this endpoint needs 'Authorization: Bearer TOKEN'");
    } else if (st->too_big) {
        gc_http_resp_error(&resp, GC_ETOOBIG, "request body larger than %zu bytes",
                           srv->config.body_max);
    } else if (st->busy) {
        gc_http_resp_error_code(&resp, 503, "busy",
                                "requests in progress hold the most request body bytes handled "
                                "at once (%zu): retry later",
                                srv->config.bodies_max);
        gc_http_resp_header(&resp, "Retry-After", "1");
    } else {
        memset(&req, 0, sizeof(req));
        req.method = method;
        req.path = url;
        req.body = st->body ? st->body : "";
        req.body_len = st->len;
        req.via_unix = via_unix;
        req.bearer_ok = srv->bearer_token != NULL && bearer_ok(srv, conn);
        req.conn_ = conn;
        resp.status = 500;
        gc_http_slot_handling(slots, conn_slot(conn));
        srv->config.handler(srv->config.ctx, &req, &resp);
        if (resp.body == NULL)
            gc_http_resp_text(&resp, resp.status, resp.content_type[0] ? resp.content_type : NULL,
                              "");
    }
    gc_http_slot_answering(slots, conn_slot(conn));
    ret = queue_resp(conn, &resp);
    return ret;
}

static enum MHD_Result on_request_tcp(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)version;
    return on_request(cls, false, conn, url, method, upload_data, upload_data_size, con_cls);
}

static enum MHD_Result on_request_unix(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **con_cls)
{
    (void)version;
    return on_request(cls, true, conn, url, method, upload_data, upload_data_size, con_cls);
}

static void on_completed(struct gc_http_server *srv, struct gc_http_slots *slots,
                         struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_request_state *st = *con_cls;

    /* Kept alive: the next request has its own deadline. */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        gc_http_slot_idle(slots, conn_slot(conn));
    if (st != NULL) {
        if (st->reserved > 0)
            __atomic_sub_fetch(&srv->bodies_in_flight, st->reserved, __ATOMIC_RELAXED);
        free(st->body);
        free(st);
        *con_cls = NULL;
        __atomic_sub_fetch(&srv->in_flight, 1, __ATOMIC_RELAXED);
    }
}

static void on_completed_tcp(void *cls, struct MHD_Connection *conn, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
    struct gc_http_server *srv = cls;

    on_completed(srv, srv->tcp_slots, conn, con_cls, toe);
}

static void on_completed_unix(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    struct gc_http_server *srv = cls;

    on_completed(srv, srv->unix_slots, conn, con_cls, toe);
}

/* Who is at the other end: the TCP address, or the uid on a Unix socket. */
static void conn_peer(struct MHD_Connection *conn, int fd, bool via_unix, struct gc_http_slot_peer *ret)
{
    const union MHD_ConnectionInfo *info;

    memset(ret, 0, sizeof(*ret));
    if (via_unix) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            memcpy(ret->key, &cred.uid, sizeof(cred.uid));
        return;
    }
    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL)
        return;
    if (info->client_addr->sa_family == AF_INET6) {
        memcpy(ret->key, &((const struct sockaddr_in6 *)info->client_addr)->sin6_addr, 16);
    } else if (info->client_addr->sa_family == AF_INET) {
        /* As ::ffff:a.b.c.d, so that both families of one address are one peer. */
        ret->key[10] = ret->key[11] = 0xff;
        memcpy(ret->key + 12, &((const struct sockaddr_in *)info->client_addr)->sin_addr, 4);
    }
}

static void on_connection(struct gc_http_slots *slots, bool via_unix, struct MHD_Connection *conn,
                          void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
    const union MHD_ConnectionInfo *info;
    struct gc_http_slot_peer peer;

    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        gc_http_slots_close(slots, *socket_context);
        *socket_context = NULL;
        return;
    }
    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == NULL)
        return;
    conn_peer(conn, info->connect_fd, via_unix, &peer);
    *socket_context = gc_http_slots_open(slots, info->connect_fd, &peer);
}

static void on_connection_tcp(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    struct gc_http_server *srv = cls;

    on_connection(srv->tcp_slots, false, conn, socket_context, toe);
}

static void on_connection_unix(void *cls, struct MHD_Connection *conn, void **socket_context,
                               enum MHD_ConnectionNotificationCode toe)
{
    struct gc_http_server *srv = cls;

    on_connection(srv->unix_slots, true, conn, socket_context, toe);
}

static void mhd_quiet_logger(void *cls, const char *fmt, va_list ap)
{
    /* A library never logs; MHD's messages are dropped. */
    (void)cls;
    (void)fmt;
    (void)ap;
}

static int listen_tcp(const char *host, int port, int *ret_port, char *errbuf, size_t errbuf_len)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    int fd = -1, one = 1, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        set_err(errbuf, errbuf_len, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out_err;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, HTTP_LISTEN_BACKLOG) < 0)
        goto out_err;
    if (ret_port != NULL) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    freeaddrinfo(res);
    return fd;

out_err:
    set_err(errbuf, errbuf_len, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

/* True when something listens on sa. Non-blocking: a listener whose backlog is full
 * (EAGAIN) is alive too, and the check never waits. */
static bool unix_socket_live(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    bool live;

    if (fd < 0)
        return false;
    live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN;
    close(fd);
    return live;
}

static int listen_unix(const char *path, mode_t mode, char *errbuf, size_t errbuf_len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        set_err(errbuf, errbuf_len, "socket path too long: '%s'", path);
        return -1;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    /* Replace a stale socket left by a crash, but never another kind of file, nor the
     * socket of a server still listening on it (its clients would come to us). */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            set_err(errbuf, errbuf_len, "'%s' exists and is not a socket", path);
            return -1;
        }
        if (unix_socket_live(&sa)) {
            set_err(errbuf, errbuf_len, "'%s' is in use by a running server", path);
            return -1;
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out_err;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto out_close;
    if (chmod(path, mode) < 0 || listen(fd, HTTP_LISTEN_BACKLOG) < 0) {
        unlink(path);
        goto out_close;
    }
    return fd;

out_close:
    close(fd);
out_err:
    set_err(errbuf, errbuf_len, "cannot listen on '%s': %s", path, strerror(errno));
    return -1;
}

static struct MHD_Daemon *start_mhd(struct gc_http_server *srv, int fd, bool via_unix)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    const struct gc_http_server_config *c = &srv->config;
    struct gc_http_slots_config sc = {
        .limit = c->conn_limit,
        .reserve = c->conn_reserve ? c->conn_reserve : c->conn_limit / 16,
        .per_peer = c->conn_per_peer ? c->conn_per_peer : c->conn_limit / 2,
        .header_ms = c->header_timeout_ms ? c->header_timeout_ms : HTTP_HEADER_TIMEOUT_MS,
        .body_ms = c->body_timeout_ms ? c->body_timeout_ms : HTTP_BODY_TIMEOUT_MS,
        .keepalive_ms = c->idle_timeout_s * 1000u,
    };
    struct gc_http_slots **slots = via_unix ? &srv->unix_slots : &srv->tcp_slots;

    if (gc_http_slots_new(&sc, slots) < 0)
        return NULL;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, via_unix ? on_request_unix : on_request_tcp, srv,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_NOTIFY_COMPLETED,
        via_unix ? on_completed_unix : on_completed_tcp, srv, MHD_OPTION_NOTIFY_CONNECTION,
        via_unix ? on_connection_unix : on_connection_tcp, srv, MHD_OPTION_CONNECTION_LIMIT,
        c->conn_limit + HTTP_CLOSING_HEADROOM, MHD_OPTION_CONNECTION_TIMEOUT, c->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        srv->config.conn_memory ? srv->config.conn_memory : (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_quiet_logger, NULL, MHD_OPTION_END);
}

int gc_http_server_start(const struct gc_http_server_config *config,
                         struct gc_http_server **ret_server, char *errbuf, size_t errbuf_len)
{
    struct gc_http_server *srv;
    int fd;

    /* Aligned as the struct asks (calloc gives 16 bytes): see in_flight. */
    srv = aligned_alloc(_Alignof(struct gc_http_server), sizeof(*srv));
    if (srv == NULL)
        return GC_ENOMEM;
    memset(srv, 0, sizeof(*srv));
    srv->config = *config;
    srv->tcp_port = -1;
    if (srv->config.conn_limit == 0)
        srv->config.conn_limit = 256;
    if (srv->config.idle_timeout_s == 0)
        srv->config.idle_timeout_s = 120;
    if (config->bearer_token != NULL && config->bearer_token[0] != '\0') {
        srv->bearer_token = strdup(config->bearer_token);
        if (srv->bearer_token == NULL)
            goto out_nomem;
    }
    srv->config.bearer_token = NULL;
    if (config->host != NULL) {
        fd = listen_tcp(config->host, config->port, &srv->tcp_port, errbuf, errbuf_len);
        if (fd < 0)
            goto out_fail;
        srv->tcp = start_mhd(srv, fd, false);
        if (srv->tcp == NULL) {
            close(fd);
            set_err(errbuf, errbuf_len, "cannot start HTTP server on %s:%d", config->host,
                    config->port);
            goto out_fail;
        }
    }
    if (config->unix_path != NULL) {
        srv->unix_path = strdup(config->unix_path);
        if (srv->unix_path == NULL)
            goto out_nomem;
        fd = listen_unix(config->unix_path, config->unix_mode ? config->unix_mode : 0660, errbuf,
                         errbuf_len);
        if (fd < 0)
            goto out_fail;
        srv->unix_daemon = start_mhd(srv, fd, true);
        if (srv->unix_daemon == NULL) {
            close(fd);
            unlink(config->unix_path);
            set_err(errbuf, errbuf_len, "cannot start HTTP server on '%s'", config->unix_path);
            goto out_fail;
        }
    }
    srv->config.unix_path = srv->unix_path;
    *ret_server = srv;
    return 0;

out_nomem:
    set_err(errbuf, errbuf_len, "out of memory");
out_fail:
    gc_http_server_stop(srv);
    return GC_EIO;
}

void gc_http_server_stop(struct gc_http_server *server)
{
    struct timespec pause = {0, 10 * 1000 * 1000};

    if (server == NULL)
        return;
    /* Requests in flight are answered first (bounded): stopping MHD cuts their
     * connections, answered or not. */
    for (int waited = 0;
         waited < STOP_DRAIN_MS && __atomic_load_n(&server->in_flight, __ATOMIC_RELAXED) > 0;
         waited += 10)
        nanosleep(&pause, NULL);
    /* MHD_stop_daemon closes the listening socket it was given. */
    if (server->tcp != NULL)
        MHD_stop_daemon(server->tcp);
    if (server->unix_daemon != NULL) {
        MHD_stop_daemon(server->unix_daemon);
        unlink(server->unix_path);
    }
    /* After the daemons: their connections are all closed now. */
    gc_http_slots_free(server->tcp_slots);
    gc_http_slots_free(server->unix_slots);
    free(server->unix_path);
    free(server->bearer_token);
    free(server);
}

int gc_http_server_port(const struct gc_http_server *server)
{
    return server->tcp_port;
}

void gc_http_server_stats(struct gc_http_server *server, struct gc_http_server_stats *ret)
{
    struct gc_http_slots *all[2] = {server->tcp_slots, server->unix_slots};

    memset(ret, 0, sizeof(*ret));
    for (int i = 0; i < 2; i++) {
        struct gc_http_slots_stats st;
        if (all[i] == NULL)
            continue;
        gc_http_slots_stats(all[i], &st);
        ret->general += st.general;
        ret->reserved += st.reserved;
        ret->expired += st.expired;
        ret->made_way += st.evicted;
        ret->refused += st.refused;
    }
}
