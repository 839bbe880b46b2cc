/* client.c - libgpucoord: leases with waits and background heartbeats. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/http_client.h"
#include "gpucoord.h"

#define CLIENT_DEFAULT_URL        "http://127.0.0.1:10010"
#define CLIENT_DEFAULT_TIMEOUT_MS 10000
/* Longest single server-side wait; longer waits are chained. */
#define CLIENT_WAIT_SLICE_S 30.0
/* Heartbeats go out this many times per TTL. */
#define CLIENT_HEARTBEATS_PER_TTL 3
#define CLIENT_URL_MAX            1024

/* Idle connections kept for reuse per pool. */
#define CLIENT_POOL_IDLE_MAX 4

/*
 * Keep-alive connections shared by a client and the leases it acquired (a lease
 * may outlive its client and be released from another thread). Refcounted.
 */
struct conn_pool {
    pthread_mutex_t mu;
    int refs;
    char url[CLIENT_URL_MAX];
    char token[GPUCOORD_TOKEN_MAX + 1];
    struct gc_http_client *idle[CLIENT_POOL_IDLE_MAX];
    int nidle;
};

struct gpucoord_client {
    struct conn_pool *pool;
    struct gc_http_client *http; /* the client's own connection (one thread at a time) */
    char url[CLIENT_URL_MAX];
    char message[512];
    long timeout_ms;
};

struct gpucoord_lease {
    char id[64];
    uint64_t bytes;
    int gpu;
    double waited_s;
    double ttl_s;
    char evicted[512];

    pthread_mutex_t mu; /* guards stop, lost */
    pthread_cond_t cv;
    struct conn_pool *pool;
    pthread_t thread;
    bool thread_running;
    bool stop;
    int lost;
};

static void set_message(gpucoord_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_message(gpucoord_client *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->message, sizeof(c->message), fmt, ap);
    va_end(ap);
}

static int new_http(const char *url, const char *token, struct gc_http_client **ret)
{
    int rc = gc_http_client_new(url, ret);

    if (rc == 0 && token[0] != '\0')
        rc = gc_http_client_set_bearer(*ret, token);
    if (rc < 0 && rc != GPUCOORD_EINVAL) {
        gc_http_client_free(*ret);
        *ret = NULL;
    }
    return rc;
}

static struct conn_pool *pool_new(const char *url, const char *token)
{
    struct conn_pool *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->refs = 1;
    snprintf(p->url, sizeof(p->url), "%s", url);
    snprintf(p->token, sizeof(p->token), "%s", token ? token : "");
    return p;
}

static void pool_ref(struct conn_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->refs++;
    pthread_mutex_unlock(&p->mu);
}

static void pool_unref(struct conn_pool *p)
{
    int left;

    pthread_mutex_lock(&p->mu);
    left = --p->refs;
    pthread_mutex_unlock(&p->mu);
    if (left > 0)
        return;
    for (int i = 0; i < p->nidle; i++)
        gc_http_client_free(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* A connection for one exchange; give it back with pool_put. */
static int pool_get(struct conn_pool *p, struct gc_http_client **ret)
{
    pthread_mutex_lock(&p->mu);
    if (p->nidle > 0) {
        *ret = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    pthread_mutex_unlock(&p->mu);
    return new_http(p->url, p->token, ret);
}

static void pool_put(struct conn_pool *p, struct gc_http_client *http)
{
    pthread_mutex_lock(&p->mu);
    if (p->nidle < CLIENT_POOL_IDLE_MAX) {
        p->idle[p->nidle++] = http;
        http = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    gc_http_client_free(http);
}

int gpucoord_client_new(const char *url, gpucoord_client **ret_client)
{
    gpucoord_client *c;
    const char *token = getenv("GPUCOORD_TOKEN");
    int rc;

    if (url == NULL || url[0] == '\0')
        url = getenv("GPUCOORD_URL");
    if (url == NULL || url[0] == '\0')
        url = CLIENT_DEFAULT_URL;
    if (strlen(url) >= CLIENT_URL_MAX || (token != NULL && strlen(token) > GPUCOORD_TOKEN_MAX))
        return GPUCOORD_EINVAL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return GPUCOORD_ENOMEM;
    snprintf(c->url, sizeof(c->url), "%s", url);
    c->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
    c->pool = pool_new(url, token);
    if (c->pool == NULL) {
        free(c);
        return GPUCOORD_ENOMEM;
    }
    rc = new_http(c->url, c->pool->token, &c->http);
    if (rc < 0) {
        pool_unref(c->pool);
        free(c);
        return rc;
    }
    *ret_client = c;
    return 0;
}

void gpucoord_client_free(gpucoord_client *client)
{
    if (client == NULL)
        return;
    gc_http_client_free(client->http);
    pool_unref(client->pool);
    free(client);
}

const char *gpucoord_client_message(const gpucoord_client *client)
{
    return client->message;
}

void gpucoord_client_set_timeout_ms(gpucoord_client *client, long timeout_ms)
{
    client->timeout_ms = timeout_ms > 0 ? timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
}

/* One exchange; parses a JSON answer into *ret_json when asked. Errors from the
 * server (non-2xx) are mapped to codes with their message kept. */
static int call(gpucoord_client *c, struct gc_http_client *http, const char *method,
                const char *path, json_t *body, long timeout_ms, long *ret_status,
                json_t **ret_json)
{
    struct gc_http_response resp = {0};
    char err[256] = "", *text = NULL;
    json_t *j;
    int rc;

    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL)
            return GPUCOORD_ENOMEM;
    }
    rc = gc_http_client_request(http, method, path, text, text ? strlen(text) : 0, NULL, timeout_ms,
                                &resp, err, sizeof(err));
    free(text);
    if (rc < 0) {
        set_message(c, "%s %s: %s", method, path,
                    rc == GPUCOORD_ECONNECT ? "cannot reach the coordinator" : err);
        if (rc == GPUCOORD_ECONNECT)
            set_message(c, "cannot reach the coordinator at %s (%s)", c->url, err);
        return rc;
    }
    *ret_status = resp.status;
    j = resp.body_len ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    gc_http_response_free(&resp);
    if (resp.status >= 300) {
        const char *code = j ? json_string_value(json_object_get(j, "error")) : NULL;
        const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
        set_message(c, "%s", msg ? msg : "the coordinator answered an error");
        rc = code ? gc_err_from_name(code) : gc_err_from_http_status(resp.status);
        if (ret_json != NULL)
            *ret_json = j;
        else
            json_decref(j);
        return rc;
    }
    c->message[0] = '\0';
    if (ret_json != NULL)
        *ret_json = j;
    else
        json_decref(j);
    return 0;
}

int gpucoord_request(gpucoord_client *client, const char *method, const char *path,
                     const char *body, long timeout_ms, long *ret_status, char **ret_body)
{
    struct gc_http_response resp = {0};
    char err[256] = "";
    int rc;

    rc = gc_http_client_request(client->http, method, path, body, body ? strlen(body) : 0, NULL,
                                timeout_ms > 0 ? timeout_ms : client->timeout_ms, &resp, err,
                                sizeof(err));
    if (rc < 0) {
        if (rc == GPUCOORD_ECONNECT)
            set_message(client, "cannot reach the coordinator at %s (%s)", client->url, err);
        else
            set_message(client, "%s", err);
        return rc;
    }
    *ret_status = resp.status;
    *ret_body = resp.body;
    return 0;
}

void gpucoord_lease_request_init(struct gpucoord_lease_request *req)
{
    memset(req, 0, sizeof(*req));
    req->gpu = GPUCOORD_GPU_ANY;
    req->heartbeat = 1;
}

static void *heartbeat_main(void *arg)
{
    gpucoord_lease *lease = arg;
    double interval = lease->ttl_s / CLIENT_HEARTBEATS_PER_TTL;
    char path[128];

    if (interval < 0.1)
        interval = 0.1;
    snprintf(path, sizeof(path), "/v1/leases/%s/heartbeat", lease->id);
    pthread_mutex_lock(&lease->mu);
    while (!lease->stop) {
        struct timespec abstime;
        struct gc_http_response resp = {0};
        int rc;

        struct gc_http_client *http;

        gc_abstime_after_ms(&abstime, (int64_t)(interval * 1000.0));
        if (pthread_cond_timedwait(&lease->cv, &lease->mu, &abstime) == 0 || lease->stop)
            continue;
        pthread_mutex_unlock(&lease->mu);
        rc = pool_get(lease->pool, &http);
        if (rc == 0) {
            rc = gc_http_client_request(http, "POST", path, NULL, 0, NULL,
                                        (long)(interval * 1000.0) + 1000, &resp, NULL, 0);
            pool_put(lease->pool, http);
        }
        pthread_mutex_lock(&lease->mu);
        if (rc == 0) {
            if (resp.status == 404)
                lease->lost = 1; /* expired or released elsewhere: nothing left to keep */
            gc_http_response_free(&resp);
            if (lease->lost)
                break;
        }
        /* Transport errors: try again next interval; the TTL covers a few misses. */
    }
    pthread_mutex_unlock(&lease->mu);
    return NULL;
}

static gpucoord_lease *lease_from_json(const json_t *j)
{
    gpucoord_lease *l = calloc(1, sizeof(*l));
    json_t *ev = json_object_get(j, "evicted");
    size_t i, off = 0;
    json_t *v;

    if (l == NULL)
        return NULL;
    snprintf(l->id, sizeof(l->id), "%s", json_string_value(json_object_get(j, "id")));
    l->bytes = (uint64_t)json_integer_value(json_object_get(j, "bytes"));
    l->gpu = json_is_integer(json_object_get(j, "gpu"))
                 ? (int)json_integer_value(json_object_get(j, "gpu"))
                 : -1;
    l->waited_s = json_number_value(json_object_get(j, "waited_s"));
    l->ttl_s = json_number_value(json_object_get(j, "ttl_s"));
    json_array_foreach(ev, i, v)
    {
        int n = snprintf(l->evicted + off, sizeof(l->evicted) - off, "%s%s", i ? "," : "",
                         json_string_value(v) ? json_string_value(v) : "");
        if (n < 0 || (size_t)n >= sizeof(l->evicted) - off)
            break;
        off += (size_t)n;
    }
    pthread_mutex_init(&l->mu, NULL);
    {
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&l->cv, &a);
        pthread_condattr_destroy(&a);
    }
    return l;
}

static void lease_destroy(gpucoord_lease *l)
{
    if (l->pool != NULL)
        pool_unref(l->pool);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void withdraw(gpucoord_client *c, const char *id)
{
    char path[128];
    long status;
    char saved[sizeof(c->message)];

    memcpy(saved, c->message, sizeof(saved));
    snprintf(path, sizeof(path), "/v1/leases/%s", id);
    call(c, c->http, "DELETE", path, NULL, c->timeout_ms, &status, NULL);
    memcpy(c->message, saved, sizeof(saved));
}

int gpucoord_lease_acquire(gpucoord_client *client, const struct gpucoord_lease_request *req,
                           gpucoord_lease **ret_lease)
{
    int64_t deadline = gc_mono_ms() + (int64_t)(req->wait_s * 1000.0);
    double slice = req->wait_s < CLIENT_WAIT_SLICE_S ? req->wait_s : CLIENT_WAIT_SLICE_S;
    json_t *body, *ans = NULL;
    gpucoord_lease *lease;
    char id[64] = "";
    long status = 0;
    int rc;

    if (req->holder == NULL || req->bytes == 0 || req->wait_s < 0) {
        set_message(client, "a lease needs a holder name and a size above 0");
        return GPUCOORD_EINVAL;
    }
    body = json_pack("{s:s, s:I, s:f}", "holder", req->holder, "bytes", (json_int_t)req->bytes,
                     "wait_s", slice);
    if (body == NULL)
        return GPUCOORD_ENOMEM;
    json_object_set_new(body, "gpu", req->gpu >= 0 ? json_integer(req->gpu) : json_string("any"));
    if (req->pid >= 0)
        json_object_set_new(body, "pid", json_integer(req->pid ? req->pid : getpid()));
    if (req->priority != 0)
        json_object_set_new(body, "priority", json_integer(req->priority));
    if (req->ttl_s > 0)
        json_object_set_new(body, "ttl_s", json_real(req->ttl_s));
    rc = call(client, client->http, "POST", "/v1/leases", body,
              client->timeout_ms + (long)(slice * 1000.0), &status, &ans);
    json_decref(body);

    while (rc == 0 && status == 202) {
        double left = (double)(deadline - gc_mono_ms()) / 1000.0;
        const char *qid = json_string_value(json_object_get(ans, "id"));
        char path[160];
        if (qid == NULL || strlen(qid) >= sizeof(id)) {
            json_decref(ans);
            set_message(client, "the coordinator answered a queued lease without an id");
            return GPUCOORD_EPROTO;
        }
        snprintf(id, sizeof(id), "%s", qid);
        json_decref(ans);
        ans = NULL;
        if (left <= 0) {
            withdraw(client, id);
            set_message(client, "still queued after %.1f s; request withdrawn", req->wait_s);
            return GPUCOORD_EQUEUED;
        }
        if (left > CLIENT_WAIT_SLICE_S)
            left = CLIENT_WAIT_SLICE_S;
        snprintf(path, sizeof(path), "/v1/leases/%s?wait_s=%.3f", id, left);
        rc = call(client, client->http, "GET", path, NULL,
                  client->timeout_ms + (long)(left * 1000.0), &status, &ans);
        if (rc == 0) {
            const char *state = json_string_value(json_object_get(ans, "state"));
            if (state != NULL && strcmp(state, "granted") == 0)
                status = 201;
            else if (state != NULL && strcmp(state, "queued") && strcmp(state, "preparing")) {
                const char *reason = json_string_value(json_object_get(ans, "reason"));
                const char *code = json_string_value(json_object_get(ans, "error"));
                set_message(client, "lease %s %s%s%s", id, state, reason ? ": " : "",
                            reason ? reason : "");
                json_decref(ans);
                /* failed: the daemon's code; expired/released while waiting: gone. */
                if (strcmp(state, "failed") == 0)
                    return code ? gc_err_from_name(code) : GPUCOORD_ECOULDNOTFREE;
                return GPUCOORD_ENOTFOUND;
            } else {
                status = 202;
            }
        }
    }
    if (rc < 0) {
        json_decref(ans);
        if (id[0] != '\0' && rc != GPUCOORD_ENEVERFITS && rc != GPUCOORD_ECOULDNOTFREE)
            withdraw(client, id);
        return rc;
    }
    if ((status != 201 && status != 200) || !json_is_string(json_object_get(ans, "id"))) {
        json_decref(ans);
        set_message(client, "unexpected answer %ld from the coordinator", status);
        return GPUCOORD_EPROTO;
    }
    lease = lease_from_json(ans);
    json_decref(ans);
    if (lease == NULL)
        return GPUCOORD_ENOMEM;
    pool_ref(client->pool);
    lease->pool = client->pool;
    if (req->heartbeat && lease->ttl_s > 0) {
        if (pthread_create(&lease->thread, NULL, heartbeat_main, lease) == 0)
            lease->thread_running = true;
    }
    *ret_lease = lease;
    return 0;
}

static void stop_heartbeats(gpucoord_lease *lease)
{
    pthread_mutex_lock(&lease->mu);
    lease->stop = true;
    pthread_cond_signal(&lease->cv);
    pthread_mutex_unlock(&lease->mu);
    if (lease->thread_running)
        pthread_join(lease->thread, NULL);
    lease->thread_running = false;
}

void gpucoord_lease_detach(gpucoord_lease *lease)
{
    if (lease == NULL)
        return;
    stop_heartbeats(lease);
    lease_destroy(lease);
}

int gpucoord_lease_heartbeat(gpucoord_lease *lease)
{
    struct gc_http_response resp = {0};
    char path[128];
    int rc;

    struct gc_http_client *http;

    snprintf(path, sizeof(path), "/v1/leases/%s/heartbeat", lease->id);
    rc = pool_get(lease->pool, &http);
    if (rc < 0)
        return rc;
    rc = gc_http_client_request(http, "POST", path, NULL, 0, NULL, CLIENT_DEFAULT_TIMEOUT_MS, &resp,
                                NULL, 0);
    pool_put(lease->pool, http);
    if (rc == 0) {
        pthread_mutex_lock(&lease->mu);
        if (resp.status == 404) {
            lease->lost = 1;
            rc = GPUCOORD_ENOTFOUND;
        } else if (resp.status != 200) {
            rc = gc_err_from_http_status(resp.status);
        }
        pthread_mutex_unlock(&lease->mu);
        gc_http_response_free(&resp);
    }
    return rc;
}

int gpucoord_lease_resize(gpucoord_lease *lease, uint64_t bytes, double wait_s)
{
    struct gc_http_response resp = {0};
    struct gc_http_client *http;
    char path[128], body[96];
    json_t *j;
    int rc;

    if (bytes == 0 || wait_s < 0)
        return GPUCOORD_EINVAL;
    snprintf(path, sizeof(path), "/v1/leases/%s/resize", lease->id);
    snprintf(body, sizeof(body), "{\"bytes\":%llu,\"wait_s\":%.3f}", (unsigned long long)bytes,
             wait_s);
    rc = pool_get(lease->pool, &http);
    if (rc < 0)
        return rc;
    rc =
        gc_http_client_request(http, "POST", path, body, strlen(body), NULL,
                               CLIENT_DEFAULT_TIMEOUT_MS + (long)(wait_s * 1000.0), &resp, NULL, 0);
    pool_put(lease->pool, http);
    if (rc < 0)
        return rc;
    j = resp.body_len ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    if (resp.status == 200 || resp.status == 202) {
        json_t *b = json_object_get(j, "bytes");
        if (json_is_integer(b))
            lease->bytes = (uint64_t)json_integer_value(b);
        rc = resp.status == 200 ? 0 : GPUCOORD_EQUEUED;
    } else {
        const char *code = json_string_value(json_object_get(j, "error"));
        rc = code ? gc_err_from_name(code) : gc_err_from_http_status(resp.status);
        if (resp.status == 404) {
            pthread_mutex_lock(&lease->mu);
            lease->lost = 1;
            pthread_mutex_unlock(&lease->mu);
        }
    }
    json_decref(j);
    gc_http_response_free(&resp);
    return rc;
}

int gpucoord_lease_release(gpucoord_lease *lease)
{
    struct gc_http_response resp = {0};
    char path[128];
    int rc;

    struct gc_http_client *http;

    if (lease == NULL)
        return 0;
    stop_heartbeats(lease);

    snprintf(path, sizeof(path), "/v1/leases/%s", lease->id);
    rc = pool_get(lease->pool, &http);
    if (rc == 0) {
        rc = gc_http_client_request(http, "DELETE", path, NULL, 0, NULL, CLIENT_DEFAULT_TIMEOUT_MS,
                                    &resp, NULL, 0);
        pool_put(lease->pool, http);
    }
    if (rc == 0) {
        if (resp.status == 404)
            rc = GPUCOORD_ENOTFOUND;
        gc_http_response_free(&resp);
    }
    lease_destroy(lease);
    return rc;
}

const char *gpucoord_lease_id(const gpucoord_lease *lease)
{
    return lease->id;
}

uint64_t gpucoord_lease_bytes(const gpucoord_lease *lease)
{
    return lease->bytes;
}

int gpucoord_lease_gpu(const gpucoord_lease *lease)
{
    return lease->gpu;
}

double gpucoord_lease_waited_s(const gpucoord_lease *lease)
{
    return lease->waited_s;
}

const char *gpucoord_lease_evicted(const gpucoord_lease *lease)
{
    return lease->evicted;
}

int gpucoord_lease_lost(const gpucoord_lease *lease)
{
    int lost;

    pthread_mutex_lock((pthread_mutex_t *)&lease->mu);
    lost = lease->lost;
    pthread_mutex_unlock((pthread_mutex_t *)&lease->mu);
    return lost;
}
