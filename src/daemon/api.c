/* api.c - the coordinator's HTTP API v1 (DESIGN.md section 4): routing, request
 * bodies in, JSON out. The work is in coord_*.c. */
#include "daemon/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/jsonx.h"
#include "common/names.h"
#include "daemon/engine.h"
#include "daemon/dashboard.h"

/* Longest path accepted (names and ids are short). */
#define API_PATH_MAX 256
/* Most events in one answer. */
#define API_EVENTS_MAX 1000

static void answer(struct gc_http_resp *resp, struct gc_api_answer *ans)
{
    if (ans->status == 204 || ans->body == NULL) {
        json_decref(ans->body);
        gc_http_resp_text(resp, ans->status ? ans->status : 204, NULL, "");
        resp->content_type[0] = '\0';
        return;
    }
    gc_http_resp_json(resp, ans->status, ans->body);
    ans->body = NULL;
}

/* Parses a JSON body (an empty one is NULL, which callers treat as {}). */
static int parse_body(const struct gc_http_req *req, bool required, json_t **ret,
                      struct gc_http_resp *resp)
{
    struct gc_jerr err;
    int rc;

    *ret = NULL;
    if (req->body_len == 0 && !required)
        return 0;
    rc = gc_json_parse(req->body, req->body_len, GC_JSON_DEPTH_MAX, ret, &err);
    if (rc < 0) {
        gc_http_resp_error(resp, rc, "%s", err.msg);
        return rc;
    }
    return 0;
}

/* ?wait_s=N, bounded; -1 when malformed. */
static double query_seconds(const struct gc_http_req *req, const char *name, double max)
{
    const char *v = gc_http_req_arg(req, name);
    char *end;
    double d;

    if (v == NULL)
        return 0;
    d = strtod(v, &end);
    if (end == v || *end != '\0' || !(d >= 0 && d <= max))
        return -1;
    return d;
}

static bool method_is(const struct gc_http_req *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

static void method_not_allowed(struct gc_http_resp *resp, const char *allowed)
{
    gc_http_resp_error(resp, GC_EMETHOD, "use %s", allowed);
    gc_http_resp_header(resp, "Allow", allowed);
}

/* Who sent req (docs/security.md). Looked up only for requests that change
 * something: on TCP it reads /proc/net/tcp. */
static void caller_of(const struct gc_http_req *req, struct gc_caller *ret)
{
    struct gc_http_peer peer;

    gc_http_req_peer(req, &peer);
    gc_caller_from_peer(peer.uid_known, peer.uid, peer.addr, req->bearer_ok, geteuid(), ret);
}

static bool client_gone(const void *req)
{
    return gc_http_req_client_gone(req);
}

static void route_leases(struct gc_coord *coord, const struct gc_http_req *req, const char *rest,
                         struct gc_http_resp *resp)
{
    struct gc_api_answer ans = {0};
    struct gc_waiter waiter = {client_gone, req};
    struct gc_caller caller;
    char id[GC_LEASE_ID_MAX];
    const char *slash;
    json_t *body;
    double wait_s;

    if (*rest == '\0') {
        if (method_is(req, "GET")) {
            gc_http_resp_json(resp, 200, gc_coord_view_leases(coord));
        } else if (method_is(req, "POST")) {
            if (parse_body(req, true, &body, resp) < 0)
                return;
            caller_of(req, &caller);
            gc_coord_lease_request(coord, &caller, body, &waiter, &ans);
            json_decref(body);
            answer(resp, &ans);
        } else {
            method_not_allowed(resp, "GET, POST");
        }
        return;
    }
    rest++; /* the '/' */
    slash = strchr(rest, '/');
    if ((slash ? (size_t)(slash - rest) : strlen(rest)) >= sizeof(id)) {
        gc_http_resp_error(resp, GC_ENOTFOUND, "no such lease");
        return;
    }
    snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
    if (slash == NULL) {
        if (method_is(req, "GET")) {
            wait_s = query_seconds(req, "wait_s", gc_coord_config(coord)->max_wait_s);
            if (wait_s < 0) {
                gc_http_resp_error(resp, GC_EINVAL, "wait_s must be seconds between 0 and %g",
                                   gc_coord_config(coord)->max_wait_s);
                return;
            }
            /* Only a wait keeps a lease alive, and only its owner's: identify the
             * caller then (reads without a wait stay free of /proc lookups). */
            if (wait_s > 0)
                caller_of(req, &caller);
            gc_coord_lease_get(coord, wait_s > 0 ? &caller : NULL, id, wait_s, &waiter, &ans);
        } else if (method_is(req, "DELETE")) {
            caller_of(req, &caller);
            gc_coord_lease_release(coord, &caller, id, &ans);
        } else {
            method_not_allowed(resp, "GET, DELETE");
            return;
        }
        answer(resp, &ans);
        return;
    }
    if (strcmp(slash, "/heartbeat") == 0) {
        if (!method_is(req, "POST")) {
            method_not_allowed(resp, "POST");
            return;
        }
        caller_of(req, &caller);
        gc_coord_lease_heartbeat(coord, &caller, id, &ans);
        answer(resp, &ans);
        return;
    }
    if (strcmp(slash, "/resize") == 0) {
        if (!method_is(req, "POST")) {
            method_not_allowed(resp, "POST");
            return;
        }
        if (parse_body(req, true, &body, resp) < 0)
            return;
        caller_of(req, &caller);
        gc_coord_lease_resize(coord, &caller, id, body, &waiter, &ans);
        json_decref(body);
        answer(resp, &ans);
        return;
    }
    gc_http_resp_error(resp, GC_ENOTFOUND, "no such path");
}

/* /v1/residents/NAME/use[/ID]: requests in flight through a resident. */
static void route_use(struct gc_coord *coord, const struct gc_http_req *req, const char *name,
                      const char *rest, struct gc_http_resp *resp)
{
    struct gc_api_answer ans = {0};
    struct gc_caller caller;
    json_t *body;

    caller_of(req, &caller);
    if (*rest == '\0') {
        if (!method_is(req, "POST")) {
            method_not_allowed(resp, "POST");
            return;
        }
        if (parse_body(req, false, &body, resp) < 0)
            return;
        gc_coord_use_begin(coord, &caller, name, body, &ans);
        json_decref(body);
    } else {
        rest++;
        if (*rest == '\0' || strlen(rest) >= GC_LEASE_ID_MAX || strchr(rest, '/') != NULL) {
            gc_http_resp_error(resp, GC_ENOTFOUND, "no such use");
            return;
        }
        if (method_is(req, "POST")) {
            gc_coord_use_renew(coord, &caller, name, rest, &ans);
        } else if (method_is(req, "DELETE")) {
            gc_coord_use_end(coord, &caller, name, rest, &ans);
        } else {
            method_not_allowed(resp, "POST, DELETE");
            return;
        }
    }
    answer(resp, &ans);
}

static void route_residents(struct gc_coord *coord, const struct gc_http_req *req, const char *rest,
                            struct gc_http_resp *resp)
{
    struct gc_api_answer ans = {0};
    struct gc_caller caller;
    struct gc_waiter waiter = {client_gone, req};
    char name[GC_NAME_MAX + 1];
    const char *slash;
    json_t *body;
    size_t n;

    if (*rest == '\0') {
        if (method_is(req, "GET")) {
            gc_http_resp_json(resp, 200, gc_coord_view_residents(coord));
        } else if (method_is(req, "POST")) {
            if (parse_body(req, true, &body, resp) < 0)
                return;
            caller_of(req, &caller);
            gc_coord_resident_register(coord, &caller, body, &ans);
            json_decref(body);
            answer(resp, &ans);
        } else {
            method_not_allowed(resp, "GET, POST");
        }
        return;
    }
    rest++;
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n > GC_NAME_MAX) {
        gc_http_resp_error(resp, GC_ENOTFOUND, "no such resident");
        return;
    }
    memcpy(name, rest, n);
    name[n] = '\0';
    if (!gc_name_valid(name)) {
        gc_http_resp_error(resp, GC_ENOTFOUND, "no such resident");
        return;
    }
    if (slash == NULL) {
        if (method_is(req, "GET")) {
            gc_coord_view_resident(coord, name, &ans);
            answer(resp, &ans);
            return;
        }
        if (method_is(req, "DELETE")) {
            caller_of(req, &caller);
            gc_coord_resident_delete(coord, &caller, name, &ans);
            answer(resp, &ans);
            return;
        }
        method_not_allowed(resp, "GET, DELETE");
        return;
    }
    if (strncmp(slash, "/use", 4) == 0 && (slash[4] == '\0' || slash[4] == '/')) {
        route_use(coord, req, name, slash + 4, resp);
        return;
    }
    if (strcmp(slash, "/unload") && strcmp(slash, "/reload") && strcmp(slash, "/demand")) {
        gc_http_resp_error(resp, GC_ENOTFOUND, "no such path");
        return;
    }
    if (!method_is(req, "POST")) {
        method_not_allowed(resp, "POST");
        return;
    }
    caller_of(req, &caller);
    if (strcmp(slash, "/unload") == 0) {
        if (parse_body(req, false, &body, resp) < 0)
            return;
        gc_coord_resident_unload(coord, &caller, name, body, &ans);
        json_decref(body);
    } else if (strcmp(slash, "/reload") == 0) {
        gc_coord_resident_reload(coord, &caller, name, &ans);
    } else {
        if (parse_body(req, false, &body, resp) < 0)
            return;
        gc_coord_resident_demand(coord, name, body, &waiter, &ans);
        json_decref(body);
    }
    answer(resp, &ans);
}

static void route_events(struct gc_coord *coord, const struct gc_http_req *req,
                         struct gc_http_resp *resp)
{
    struct gc_waiter waiter = {client_gone, req};
    const char *since_s = gc_http_req_arg(req, "since");
    unsigned long long since = 0;
    double wait_s = query_seconds(req, "wait_s", 60);
    char *end;
    int64_t deadline;

    if (since_s != NULL) {
        errno = 0;
        since = strtoull(since_s, &end, 10);
        if (*since_s == '\0' || *end != '\0' || since_s[0] == '-' || errno == ERANGE) {
            gc_http_resp_error(resp, GC_EINVAL, "since must be an event sequence number");
            return;
        }
    }
    if (wait_s < 0) {
        gc_http_resp_error(resp, GC_EINVAL, "wait_s must be seconds between 0 and 60");
        return;
    }
    deadline = gc_mono_ms() + (int64_t)(wait_s * 1000.0);
    /* Long poll: waits for something newer than since. */
    gc_http_resp_json(resp, 200,
                      gc_coord_view_events(coord, since, API_EVENTS_MAX, deadline, &waiter));
}

/* Appends the connection slots' metrics to text (freed); NULL when out of memory. */
static char *add_connection_metrics(struct gc_api *api, char *text)
{
    struct gc_http_server *http = __atomic_load_n(&api->http, __ATOMIC_ACQUIRE);
    struct gc_http_server_stats st;
    char *all = NULL;

    if (text == NULL || http == NULL)
        return text;
    gc_http_server_stats(http, &st);
    if (asprintf(&all,
                 "%s# HELP gpucoord_http_connections Connections held, by kind of slot.\n"
                 "# TYPE gpucoord_http_connections gauge\n"
                 "gpucoord_http_connections{slot=\"general\"} %u\n"
                 "gpucoord_http_connections{slot=\"reserved\"} %u\n"
                 "# HELP gpucoord_http_connections_closed_total Connections closed before "
                 "their request was whole: past a deadline, to make way, or for want of a "
                 "slot.\n"
                 "# TYPE gpucoord_http_connections_closed_total counter\n"
                 "gpucoord_http_connections_closed_total{reason=\"deadline\"} %llu\n"
                 "gpucoord_http_connections_closed_total{reason=\"made_way\"} %llu\n"
                 "gpucoord_http_connections_closed_total{reason=\"refused\"} %llu\n",
                 text, st.general, st.reserved, st.expired, st.made_way, st.refused) < 0)
        all = NULL;
    free(text);
    return all;
}

bool gc_api_is_short(const struct gc_http_req *req)
{
    const char *p = req->path;
    const char *slash;

    if (gc_http_req_is_short(req))
        return true;
    /* A heartbeat or a release keeps or frees a lease at once: exactly what must get
     * through when every general slot is taken. */
    if (strncmp(p, "/v1/leases/", 11) != 0)
        return false;
    p += 11;
    slash = strchr(p, '/');
    if (strcmp(req->method, "DELETE") == 0)
        return slash == NULL || strcmp(slash, "/") == 0;
    return strcmp(req->method, "POST") == 0 && slash != NULL &&
           (strcmp(slash, "/heartbeat") == 0 || strcmp(slash, "/heartbeat/") == 0);
}

void gc_api_handle(void *ctx, const struct gc_http_req *req, struct gc_http_resp *resp)
{
    struct gc_api *api = ctx;
    struct gc_coord *coord = api->coord;
    char path[API_PATH_MAX];

    if (!gc_http_path_normalize(req->path, path, sizeof(path))) {
        gc_http_resp_error(resp, GC_ENOTFOUND, "no such path");
        return;
    }
    if (strcmp(path, "/") == 0) {
        gc_dashboard_serve(req, resp);
    } else if (strcmp(path, "/health") == 0) {
        gc_http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(path, "/v1/gpus") == 0) {
        if (!method_is(req, "GET")) {
            method_not_allowed(resp, "GET");
            return;
        }
        gc_http_resp_json(resp, 200, gc_coord_view_gpus(coord));
    } else if (strcmp(path, "/v1/status") == 0) {
        if (!method_is(req, "GET")) {
            method_not_allowed(resp, "GET");
            return;
        }
        gc_http_resp_json(resp, 200, gc_coord_view_status(coord));
    } else if (strcmp(path, "/v1/events") == 0) {
        if (!method_is(req, "GET")) {
            method_not_allowed(resp, "GET");
            return;
        }
        route_events(coord, req, resp);
    } else if (strcmp(path, "/metrics") == 0) {
        char *text;
        if (!method_is(req, "GET")) {
            method_not_allowed(resp, "GET");
            return;
        }
        text = add_connection_metrics(api, gc_coord_view_metrics(coord));
        if (text == NULL)
            gc_http_resp_error(resp, GC_ENOMEM, "out of memory");
        else
            gc_http_resp_bytes(resp, 200, "text/plain; version=0.0.4", text, strlen(text));
    } else if (strncmp(path, "/v1/leases", 10) == 0 && (path[10] == '\0' || path[10] == '/')) {
        route_leases(coord, req, path + 10, resp);
    } else if (strncmp(path, "/v1/residents", 13) == 0 && (path[13] == '\0' || path[13] == '/')) {
        route_residents(coord, req, path + 13, resp);
    } else {
        gc_http_resp_error(resp, GC_ENOTFOUND, "no such path: %.100s", path);
    }
}
