/* http_client.c - libcurl wrapper with deadlines and capped responses. */
#include "http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Longest base URL or Unix socket path accepted. */
#define HTTP_URL_MAX 1024

struct gc_http_client {
    CURL *curl;
    char base[HTTP_URL_MAX];      /* "http://host:port" without trailing slash */
    char unix_path[HTTP_URL_MAX]; /* "" for TCP */
    char *auth_header;            /* "Authorization: Bearer ..." or NULL */
};

struct body_sink {
    char *data;
    size_t len;
    size_t cap;
    int overflow;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_sink *sink = userdata;
    size_t n = size * nmemb;

    if (sink->len + n > GC_HTTP_RESPONSE_MAX) {
        sink->overflow = 1;
        return 0;
    }
    if (sink->len + n + 1 > sink->cap) {
        size_t cap = sink->cap ? sink->cap : 1024;
        char *p;
        while (cap < sink->len + n + 1)
            cap *= 2;
        p = realloc(sink->data, cap);
        if (p == NULL)
            return 0;
        sink->data = p;
        sink->cap = cap;
    }
    memcpy(sink->data + sink->len, ptr, n);
    sink->len += n;
    sink->data[sink->len] = '\0';
    return n;
}

int gc_http_client_new(const char *base_url, struct gc_http_client **ret_client)
{
    struct gc_http_client *c;
    size_t n;

    /* A user part ('@') would move the request, and the bearer token with it, to the
     * host after it: such a URL is refused, never half-understood. */
    if (base_url == NULL || strlen(base_url) >= HTTP_URL_MAX || strchr(base_url, '@') != NULL)
        return GC_EINVAL;
    pthread_once(&curl_once, curl_init_once);
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return GC_ENOMEM;
    if (strncmp(base_url, "unix:", 5) == 0) {
        const char *path = base_url + 5;
        if (path[0] != '/') {
            free(c);
            return GC_EINVAL;
        }
        snprintf(c->unix_path, sizeof(c->unix_path), "%s", path);
        snprintf(c->base, sizeof(c->base), "http://localhost");
    } else if (strncmp(base_url, "http://", 7) == 0 && base_url[7] != '\0') {
        snprintf(c->base, sizeof(c->base), "%s", base_url);
        n = strlen(c->base);
        while (n > 7 && c->base[n - 1] == '/')
            c->base[--n] = '\0';
    } else {
        free(c);
        return GC_EINVAL;
    }
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        free(c);
        return GC_ENOMEM;
    }
    /* Set once: kept across requests on this handle (and its kept-alive connection). */
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    if (c->unix_path[0] != '\0')
        curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
    *ret_client = c;
    return 0;
}

void gc_http_client_free(struct gc_http_client *client)
{
    if (client == NULL)
        return;
    curl_easy_cleanup(client->curl);
    free(client->auth_header);
    free(client);
}

int gc_http_client_set_bearer(struct gc_http_client *client, const char *token)
{
    char *h = NULL;

    if (token != NULL && asprintf(&h, "Authorization: Bearer %s", token) < 0)
        return GC_ENOMEM;
    free(client->auth_header);
    client->auth_header = h;
    return 0;
}

static int curl_code_to_err(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return GC_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return GC_ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return GC_ENOMEM;
    case CURLE_URL_MALFORMAT:
        return GC_EINVAL;
    default:
        return GC_EIO;
    }
}

int gc_http_client_request(struct gc_http_client *client, const char *method, const char *path,
                           const char *body, size_t body_len, const char *content_type,
                           long timeout_ms, struct gc_http_response *ret, char *errbuf,
                           size_t errbuf_len)
{
    CURL *curl = client->curl;
    struct curl_slist *headers = NULL;
    struct body_sink sink = {0};
    char url[HTTP_URL_MAX * 2];
    char ctype_header[160];
    char curl_err[CURL_ERROR_SIZE] = "";
    CURLcode code;
    char *ctype = NULL;
    int rc = 0;

    if (path == NULL || path[0] != '/')
        return GC_EINVAL;
    size_t base_len = strlen(client->base), path_len = strlen(path);
    if (base_len + path_len >= sizeof(url))
        return GC_EINVAL;
    memcpy(url, client->base, base_len);
    memcpy(url + base_len, path, path_len + 1);

    /* Options that never change were set once (client_setup); reset what varies. */
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L); /* clears a previous body and NOBODY */
    curl_easy_setopt(curl, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") == 0 ? NULL : method);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        snprintf(ctype_header, sizeof(ctype_header), "Content-Type: %s",
                 content_type ? content_type : "application/json");
        headers = curl_slist_append(headers, ctype_header);
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    /* No "Expect: 100-continue" round trip for larger bodies. */
    headers = curl_slist_append(headers, "Expect:");
    if (client->auth_header != NULL)
        headers = curl_slist_append(headers, client->auth_header);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

    code = curl_easy_perform(curl);
    /* Nothing on this stack may stay referenced by the handle. */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, NULL);
    curl_slist_free_all(headers);
    if (code != CURLE_OK) {
        rc = sink.overflow ? GC_ETOOBIG : curl_code_to_err(code);
        if (errbuf != NULL)
            snprintf(errbuf, errbuf_len, "%s", curl_err[0] ? curl_err : curl_easy_strerror(code));
        free(sink.data);
        return rc;
    }
    memset(ret, 0, sizeof(*ret));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &ret->status);
    if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype != NULL)
        snprintf(ret->content_type, sizeof(ret->content_type), "%s", ctype);
    if (sink.data == NULL) {
        sink.data = calloc(1, 1);
        if (sink.data == NULL)
            return GC_ENOMEM;
    }
    ret->body = sink.data;
    ret->body_len = sink.len;
    return 0;
}

void gc_http_response_free(struct gc_http_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

int gc_http_request_once(const char *base_url, const char *method, const char *path,
                         const char *body, long timeout_ms, struct gc_http_response *ret,
                         char *errbuf, size_t errbuf_len)
{
    struct gc_http_client *c;
    int rc = gc_http_client_new(base_url, &c);

    if (rc < 0)
        return rc;
    rc = gc_http_client_request(c, method, path, body, body ? strlen(body) : 0, NULL, timeout_ms,
                                ret, errbuf, errbuf_len);
    gc_http_client_free(c);
    return rc;
}
