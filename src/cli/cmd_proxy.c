/*
 * cmd_proxy.c - gpucoord proxy --listen HOST:PORT --to URL --resident NAME
 *
 * An HTTP proxy in front of one resident's server. Each request first makes sure
 * the resident is loaded (POST /v1/residents/NAME/demand, waiting like a lease),
 * then marks it in use (POST /v1/residents/NAME/use, renewed while the request
 * runs, ended after), so that the coordinator does not evict it under the
 * request; then it relays the request and the answer byte for byte, as they come
 * (chunked, server-sent events, bodies of any size: nothing is held whole).
 *
 * One request per connection: the upstream is asked for "Connection: close", so
 * the answer ends where the upstream closes and needs no parsing. A client that
 * goes away ends its upstream request and its use at once; a proxy that dies
 * leaves uses that end by their TTL.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/names.h"
#include "common/url.h"

/* Largest request head (request line and headers) accepted. */
#define PROXY_HEAD_MAX (64 * 1024)
/* How long a client may take to send its request head. */
#define PROXY_HEAD_TIMEOUT_MS 30000
/* How long connecting to the upstream may take. */
#define PROXY_CONNECT_TIMEOUT_MS 10000
/* Longest one demand call asks the coordinator to hold. */
#define PROXY_DEMAND_SLICE_S 30.0
/* Pause before asking again when the resident is draining or just changed. */
#define PROXY_RETRY_MS 100
/* Relay buffer: bodies stream through it. */
#define PROXY_BUF 65536
/* Default limits. */
#define PROXY_WAIT_DEFAULT_S  300.0
#define PROXY_IDLE_DEFAULT_S  300.0
#define PROXY_USE_TTL_S       30.0
#define PROXY_CONNECTIONS_MAX 256
#define PROXY_NAME_PATH_MAX   (GC_NAME_MAX + 64)

struct proxy {
    struct cli *cli;
    const char *resident;
    char up_host[256];
    char up_port[16];
    double wait_s, idle_s, use_ttl_s;
    unsigned max_connections;
    atomic_uint active;
};

struct conn {
    struct proxy *px;
    int fd;
};

/* How often a relay looks whether the proxy is stopping, and how long a stopping
 * proxy waits for its requests to end. */
#define PROXY_STOP_POLL_MS 200
#define PROXY_STOP_WAIT_MS 3000

static volatile sig_atomic_t proxy_stop;

static void on_signal(int sig)
{
    (void)sig;
    proxy_stop = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int poll_left(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    return left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

/* Writes all of buf to a non-blocking socket before deadline; -1 when it cannot
 * (the peer is gone, or stopped reading). */
static int send_all(int fd, const char *buf, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int left = poll_left(deadline);
            if (left == 0 || poll(&p, 1, left) <= 0 || (p.revents & (POLLERR | POLLHUP)))
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

static void reply_error(int fd, int status, const char *reason, const char *code, const char *fmt,
                        ...) __attribute__((format(printf, 5, 6)));

/* A JSON error answer in the coordinator's shape, then the connection ends. */
static void reply_error(int fd, int status, const char *reason, const char *code, const char *fmt,
                        ...)
{
    char msg[512], body[768], head[256];
    json_t *j;
    char *text;
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    j = json_pack("{s:s, s:s}", "error", code, "message", msg);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    snprintf(body, sizeof(body), "%s", text ? text : "{}");
    free(text);
    json_decref(j);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 status, reason, strlen(body));
    if (send_all(fd, head, (size_t)n, now_ms() + 5000) == 0)
        send_all(fd, body, strlen(body), now_ms() + 5000);
}

/* Reads until the end of the request head; *ret_len is the head's length and
 * *ret_total what was read (the rest is body already received). */
static int read_head(int fd, char *buf, size_t cap, size_t *ret_len, size_t *ret_total)
{
    int64_t deadline = now_ms() + PROXY_HEAD_TIMEOUT_MS;
    size_t total = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char *end;
        ssize_t r;
        if (total > 0) {
            buf[total] = '\0';
            end = strstr(buf, "\r\n\r\n");
            if (end != NULL) {
                *ret_len = (size_t)(end - buf) + 4;
                *ret_total = total;
                return 0;
            }
        }
        if (total >= cap - 1)
            return -2; /* too large */
        if (poll(&p, 1, poll_left(deadline)) <= 0)
            return -1;
        r = recv(fd, buf + total, cap - 1 - total, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return -1;
        total += (size_t)r;
    }
}

/* Drops the hop-by-hop headers that would keep the upstream connection open. */
static bool hop_header(const char *line, size_t len)
{
    static const char *const names[] = {"connection:", "keep-alive:", "proxy-connection:"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (len >= n && strncasecmp(line, names[i], n) == 0)
            return true;
    }
    return false;
}

/* The head as sent upstream: the same, asking the upstream to close when done.
 * Returns its length in out (cap bytes), or -1 for a malformed head. */
static long rewrite_head(const char *head, size_t len, char *out, size_t cap)
{
    const char *p = head, *end = head + len - 2; /* stop before the final CRLF */
    size_t o = 0;
    bool first = true;

    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        size_t n;
        if (eol == NULL)
            return -1;
        n = (size_t)(eol - p);
        if (first) {
            /* METHOD SP TARGET SP HTTP/1.x */
            const char *sp1 = memchr(p, ' ', n), *sp2;
            if (sp1 == NULL || sp1 == p)
                return -1;
            sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
            if (sp2 == NULL || sp2[1] != 'H' || sp1[1] != '/')
                return -1;
            first = false;
        } else if (n == 0 || (memchr(p, ':', n) == NULL)) {
            return -1;
        }
        if (!hop_header(p, n)) {
            if (o + n + 2 > cap)
                return -1;
            memcpy(out + o, p, n);
            memcpy(out + o + n, "\r\n", 2);
            o += n + 2;
        }
        p = eol + 2;
    }
    if (first || o + 23 > cap)
        return -1;
    memcpy(out + o, "Connection: close\r\n\r\n", 21);
    return (long)(o + 21);
}

/* One call to the coordinator on this connection's client. */
static int coord_call(gpucoord_client *c, const char *method, const char *path, const json_t *body,
                      long timeout_ms, long *ret_status, json_t **ret_json)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char *answer = NULL;
    int rc = gpucoord_request(c, method, path, text, timeout_ms, ret_status, &answer);

    free(text);
    if (ret_json != NULL)
        *ret_json = rc == 0 && answer != NULL ? json_loads(answer, 0, NULL) : NULL;
    free(answer);
    return rc;
}

/*
 * Makes sure the resident is loaded and marks it in use; the use's id goes to
 * use_id. 0, or -1 after answering the client why not.
 */
static int acquire_use(struct proxy *px, gpucoord_client *c, int fd, char *use_id, size_t len)
{
    int64_t deadline = now_ms() + (int64_t)(px->wait_s * 1000.0);
    char path[PROXY_NAME_PATH_MAX];
    const char *msg;

    for (;;) {
        double left = (double)(deadline - now_ms()) / 1000.0;
        double slice = left < PROXY_DEMAND_SLICE_S ? left : PROXY_DEMAND_SLICE_S;
        json_t *body, *ans = NULL;
        long status = 0;
        int rc;

        if (left <= 0) {
            reply_error(fd, 503, "Service Unavailable", "timed_out",
                        "resident '%s' was not loaded within %.0f s", px->resident, px->wait_s);
            return -1;
        }
        snprintf(path, sizeof(path), "/v1/residents/%s/demand", px->resident);
        body = json_pack("{s:f}", "wait_s", slice > 0 ? slice : 0);
        rc = coord_call(c, "POST", path, body, (long)(slice * 1000.0) + CLI_TIMEOUT_MS, &status,
                        &ans);
        json_decref(body);
        if (rc < 0) {
            json_decref(ans);
            reply_error(fd, 502, "Bad Gateway", "coordinator_unreachable",
                        "cannot reach the coordinator: %s", gpucoord_strerror(rc));
            return -1;
        }
        if (status == 202) {
            json_decref(ans);
            continue; /* still queued: ask again until the deadline */
        }
        if (status != 200) {
            msg = json_string_value(json_object_get(ans, "message"));
            reply_error(fd, status == 404 ? 502 : 503,
                        status == 404 ? "Bad Gateway" : "Service Unavailable", "unavailable",
                        "resident '%s': %s", px->resident, msg ? msg : "demand failed");
            json_decref(ans);
            return -1;
        }
        json_decref(ans);
        ans = NULL;
        snprintf(path, sizeof(path), "/v1/residents/%s/use", px->resident);
        body = json_pack("{s:f}", "ttl_s", px->use_ttl_s);
        rc = coord_call(c, "POST", path, body, CLI_TIMEOUT_MS, &status, &ans);
        json_decref(body);
        if (rc == 0 && status == 201 && json_is_string(json_object_get(ans, "id"))) {
            snprintf(use_id, len, "%s", json_string_value(json_object_get(ans, "id")));
            json_decref(ans);
            return 0;
        }
        json_decref(ans);
        if (rc < 0 || status != 409) {
            reply_error(fd, 502, "Bad Gateway", "coordinator_error",
                        "cannot mark resident '%s' in use (HTTP %ld)", px->resident, status);
            return -1;
        }
        /* Evicted or draining between the two calls: demand it again. */
        struct timespec ts = {0, PROXY_RETRY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void release_use(struct proxy *px, gpucoord_client *c, const char *use_id)
{
    char path[PROXY_NAME_PATH_MAX + 40];
    long status = 0;

    snprintf(path, sizeof(path), "/v1/residents/%s/use/%s", px->resident, use_id);
    coord_call(c, "DELETE", path, NULL, CLI_TIMEOUT_MS, &status, NULL);
}

/* A non-blocking connection to the upstream within the connect timeout; -1 if none. */
static int connect_upstream(const struct proxy *px)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    int fd = -1;

    if (getaddrinfo(px->up_host, px->up_port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        struct pollfd p;
        int err = 0;
        socklen_t elen = sizeof(err);
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        p.fd = fd;
        p.events = POLLOUT;
        if (errno == EINPROGRESS && poll(&p, 1, PROXY_CONNECT_TIMEOUT_MS) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Relays both ways until the upstream has answered and closed, the client has
 * gone, or nothing moved for the idle timeout; renews the use meanwhile. */
static void relay(struct proxy *px, gpucoord_client *c, int cfd, int ufd, const char *use_id)
{
    char *buf = malloc(PROXY_BUF);
    char path[PROXY_NAME_PATH_MAX + 40];
    int64_t idle_ms = (int64_t)(px->idle_s * 1000.0);
    int64_t renew_every = (int64_t)(px->use_ttl_s * 1000.0 / 3.0);
    int64_t last_io = now_ms(), next_renew = now_ms() + renew_every;
    bool client_open = true;

    if (buf == NULL)
        return;
    snprintf(path, sizeof(path), "/v1/residents/%s/use/%s", px->resident, use_id);
    for (;;) {
        struct pollfd p[2] = {{.fd = ufd, .events = POLLIN},
                              {.fd = cfd, .events = client_open ? POLLIN : 0}};
        int64_t wake = next_renew < last_io + idle_ms ? next_renew : last_io + idle_ms;
        int left = poll_left(wake);
        /* A stopping proxy ends its relays within PROXY_STOP_POLL_MS (uses released). */
        int n = poll(p, 2, left < PROXY_STOP_POLL_MS ? left : PROXY_STOP_POLL_MS);
        if (proxy_stop || (n < 0 && errno != EINTR))
            break;
        if (now_ms() >= next_renew) {
            long status = 0;
            coord_call(c, "POST", path, NULL, CLI_TIMEOUT_MS, &status, NULL);
            next_renew = now_ms() + renew_every;
        }
        if (n <= 0) {
            if (now_ms() - last_io >= idle_ms)
                break; /* neither side moved for the idle timeout */
            continue;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(ufd, buf, PROXY_BUF, 0);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r <= 0)
                break; /* the answer is complete (or the upstream failed): done */
            if (send_all(cfd, buf, (size_t)r, now_ms() + idle_ms) < 0)
                break; /* the client went away: end the upstream request now */
            last_io = now_ms();
        }
        if (client_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = recv(cfd, buf, PROXY_BUF, 0);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r <= 0) {
                /* The client closed its side: it may still read the answer (a half
                 * close) or be gone; the next write to it tells. */
                client_open = false;
                continue;
            }
            if (send_all(ufd, buf, (size_t)r, now_ms() + idle_ms) < 0)
                break;
            last_io = now_ms();
        }
    }
    free(buf);
}

static void *serve_conn(void *arg)
{
    struct conn *cn = arg;
    struct proxy *px = cn->px;
    int cfd = cn->fd, ufd = -1;
    char *head = malloc(PROXY_HEAD_MAX + 1), *out = malloc(PROXY_HEAD_MAX + 64);
    char use_id[64] = "";
    size_t head_len = 0, total = 0;
    gpucoord_client *c = NULL;
    long out_len;
    int rc;

    free(cn);
    if (head == NULL || out == NULL) {
        reply_error(cfd, 503, "Service Unavailable", "no_memory", "out of memory");
        goto out_close;
    }
    rc = read_head(cfd, head, PROXY_HEAD_MAX + 1, &head_len, &total);
    if (rc == -2) {
        reply_error(cfd, 431, "Request Header Fields Too Large", "too_big",
                    "request head larger than %d bytes", PROXY_HEAD_MAX);
        goto out_close;
    }
    if (rc < 0)
        goto out_close; /* the client sent nothing usable in time */
    out_len = rewrite_head(head, head_len, out, PROXY_HEAD_MAX + 64);
    if (out_len < 0) {
        reply_error(cfd, 400, "Bad Request", "bad_request", "malformed HTTP request head");
        goto out_close;
    }
    if (gpucoord_client_new(cli_url(px->cli), &c) < 0) {
        reply_error(cfd, 502, "Bad Gateway", "coordinator_unreachable",
                    "cannot set up a client for the coordinator");
        goto out_close;
    }
    if (acquire_use(px, c, cfd, use_id, sizeof(use_id)) < 0)
        goto out_close;
    ufd = connect_upstream(px);
    if (ufd < 0) {
        reply_error(cfd, 502, "Bad Gateway", "upstream_unreachable",
                    "cannot connect to %s:%s within %d s", px->up_host, px->up_port,
                    PROXY_CONNECT_TIMEOUT_MS / 1000);
        goto out_release;
    }
    if (send_all(ufd, out, (size_t)out_len, now_ms() + PROXY_CONNECT_TIMEOUT_MS) < 0 ||
        send_all(ufd, head + head_len, total - head_len, now_ms() + PROXY_CONNECT_TIMEOUT_MS) < 0) {
        reply_error(cfd, 502, "Bad Gateway", "upstream_failed", "the upstream closed early");
        goto out_release;
    }
    relay(px, c, cfd, ufd, use_id);

out_release:
    release_use(px, c, use_id);
out_close:
    if (ufd >= 0)
        close(ufd);
    close(cfd);
    gpucoord_client_free(c);
    free(head);
    free(out);
    atomic_fetch_sub(&px->active, 1);
    return NULL;
}

/* Splits "HOST:PORT" ("[::1]:8080" for IPv6) into host and port. */
static int split_hostport(const char *text, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;

    if (text[0] == '[') {
        const char *close_br = strchr(text, ']');
        if (close_br == NULL || close_br[1] != ':')
            return -1;
        snprintf(host, hlen, "%.*s", (int)(close_br - text - 1), text + 1);
        colon = close_br + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || colon == text)
            return -1;
        snprintf(host, hlen, "%.*s", (int)(colon - text), text);
    }
    if (colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        strlen(colon + 1) > 5 || atol(colon + 1) > 65535)
        return -1;
    snprintf(port, plen, "%s", colon + 1);
    return 0;
}

static int listen_on(const char *host, const char *port, char *shown, size_t shown_len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd, one = 1;
    char h[NI_MAXHOST], p[NI_MAXSERV];

    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    snprintf(shown, shown_len, strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, p);
    return fd;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpucoord proxy --listen HOST:PORT --to URL --resident NAME [options]\n"
            "\n"
            "An HTTP proxy in front of a resident's server: each request first makes sure the\n"
            "resident is loaded (a demand, waiting like a lease), marks it in use so that it is\n"
            "not evicted while the request runs (an eviction that must happen waits for it, at\n"
            "most the resident's drain_timeout_s), and streams the answer through unchanged.\n"
            "\n"
            "  --listen HOST:PORT   where to listen (port 0: any free port)\n"
            "  --to URL             the server, http://HOST:PORT on this machine (loopback)\n"
            "  --resident NAME      the registered resident that server is\n"
            "  --wait SECONDS       longest a request waits for the resident (default 300)\n"
            "  --idle-timeout SECONDS  end a request when nothing moved for this long "
            "(default 300)\n"
            "  --use-ttl SECONDS    a request's in-use mark lapses this long after the proxy\n"
            "                       stops renewing it (default 30)\n"
            "  --max-connections N  requests at once (default 256; more get 503)\n"
            "  --url URL            the coordinator (default $GPUCOORD_URL or %s)\n",
            CLI_DEFAULT_URL);
}

int cmd_proxy(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"to", required_argument, NULL, 't'},
        {"resident", required_argument, NULL, 'r'},
        {"wait", required_argument, NULL, 'w'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"use-ttl", required_argument, NULL, 'T'},
        {"max-connections", required_argument, NULL, 'm'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct proxy px = {.cli = cli,
                       .wait_s = PROXY_WAIT_DEFAULT_S,
                       .idle_s = PROXY_IDLE_DEFAULT_S,
                       .use_ttl_s = PROXY_USE_TTL_S,
                       .max_connections = PROXY_CONNECTIONS_MAX};
    const char *listen_arg = NULL, *to = NULL;
    char lhost[256], lport[16], shown[300], why[256];
    struct sigaction sa = {0};
    long maxc;
    int c, lfd;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen_arg = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'r':
            if (cli_check_name("proxy", "--resident", optarg) != 0)
                return CLI_EXIT_USAGE;
            px.resident = optarg;
            break;
        case 'w':
            if (cli_parse_seconds("proxy", "--wait", optarg, 1, &px.wait_s) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'i':
            if (cli_parse_seconds("proxy", "--idle-timeout", optarg, 0.1, &px.idle_s) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_seconds("proxy", "--use-ttl", optarg, 1, &px.use_ttl_s) != 0)
                return CLI_EXIT_USAGE;
            if (px.use_ttl_s > 3600)
                return cli_usage_error("proxy", "--use-ttl is at most 3600 seconds");
            break;
        case 'm':
            if (cli_parse_int("proxy", "--max-connections", optarg, 1, 65536, &maxc) != 0)
                return CLI_EXIT_USAGE;
            px.max_connections = (unsigned)maxc;
            break;
        case 'U':
            cli->url = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        default:
            return cli_bad_option("proxy", c, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("proxy", "unexpected argument '%s'", argv[optind]);
    if (listen_arg == NULL || to == NULL || px.resident == NULL)
        return cli_usage_error("proxy", "--listen, --to and --resident are required");
    if (split_hostport(listen_arg, lhost, sizeof(lhost), lport, sizeof(lport)) < 0)
        return cli_usage_error("proxy", "--listen wants HOST:PORT, not '%s'", listen_arg);
    /* The proxy forwards to a server on this machine, as the coordinator calls residents. */
    if (gc_url_check_callback(to, false, why, sizeof(why)) < 0)
        return cli_usage_error("proxy", "--to %s: %s", to, why);
    {
        const char *hp = to + strlen("http://");
        char hostport[300];
        size_t n = strcspn(hp, "/");
        if (hp[n] == '/' && hp[n + 1] != '\0')
            return cli_usage_error("proxy", "--to takes no path: requests keep their own");
        snprintf(hostport, sizeof(hostport), "%.*s", (int)n, hp);
        if (strchr(hostport, ':') == NULL || hostport[strlen(hostport) - 1] == ']')
            snprintf(hostport + strlen(hostport), sizeof(hostport) - strlen(hostport), ":80");
        if (split_hostport(hostport, px.up_host, sizeof(px.up_host), px.up_port,
                           sizeof(px.up_port)) < 0)
            return cli_usage_error("proxy", "--to wants http://HOST:PORT, not '%s'", to);
    }

    lfd = listen_on(lhost, lport, shown, sizeof(shown));
    if (lfd < 0) {
        cli_error("cannot listen on %s: %s", listen_arg, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("proxy listening on %s for resident %s -> %s\n", shown, px.resident, to);
    fflush(stdout);

    while (!proxy_stop) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        struct conn *cn;
        pthread_attr_t attr;
        pthread_t tid;
        int cfd, flags;
        if (poll(&p, 1, 500) <= 0)
            continue;
        cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        flags = fcntl(cfd, F_GETFL);
        fcntl(cfd, F_SETFL, flags | O_NONBLOCK);
        if (atomic_fetch_add(&px.active, 1) >= px.max_connections) {
            reply_error(cfd, 503, "Service Unavailable", "limit", "more than %u requests at once",
                        px.max_connections);
            close(cfd);
            atomic_fetch_sub(&px.active, 1);
            continue;
        }
        cn = malloc(sizeof(*cn));
        if (cn == NULL) {
            close(cfd);
            atomic_fetch_sub(&px.active, 1);
            continue;
        }
        cn->px = &px;
        cn->fd = cfd;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, serve_conn, cn) != 0) {
            reply_error(cfd, 503, "Service Unavailable", "limit", "cannot start a thread");
            close(cfd);
            free(cn);
            atomic_fetch_sub(&px.active, 1);
        }
        pthread_attr_destroy(&attr);
    }
    close(lfd);
    /* Relays see the stop and end, releasing their uses; a request still waiting for
     * its resident after PROXY_STOP_WAIT_MS ends with the process (its use lapses by
     * its TTL). Never return under running threads: exit's destructors would unload
     * libraries they still use. */
    for (int64_t until = now_ms() + PROXY_STOP_WAIT_MS;
         atomic_load(&px.active) > 0 && now_ms() < until;)
        poll(NULL, 0, 20);
    if (atomic_load(&px.active) > 0) {
        fflush(NULL);
        _exit(CLI_EXIT_OK);
    }
    return CLI_EXIT_OK;
}
