/* url.c - callback URL checks on libcurl's URL parser. */
#include "url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/* Longest host name looked at (a DNS name is at most 253 bytes). */
#define URL_HOST_MAX 256

bool gc_url_host_is_loopback(const char *host)
{
    char buf[URL_HOST_MAX];
    size_t n = strlen(host);
    struct in_addr a4;
    struct in6_addr a6;

    if (strcasecmp(host, "localhost") == 0)
        return true; /* libcurl answers localhost itself, never through DNS */
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= sizeof(buf))
            return false;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        return inet_pton(AF_INET6, buf, &a6) == 1 &&
               (IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127));
    }
    /* libcurl has normalized dotted forms ("127.1", "0x7f.1") to four decimal parts. */
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return false;
}

static bool part_present(CURLU *u, CURLUPart part)
{
    char *s = NULL;
    CURLUcode rc = curl_url_get(u, part, &s, 0);

    curl_free(s);
    return rc == CURLUE_OK;
}

int gc_url_check_callback(const char *url, bool allow_remote, char *why, size_t why_len)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    const char *problem = NULL;
    int rc = GC_EINVAL;

    if (why_len > 0)
        why[0] = '\0';
    if (u == NULL) {
        snprintf(why, why_len, "out of memory");
        return GC_ENOMEM;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        problem = "url is not a valid http://HOST[:PORT] URL";
    else if (strcmp(scheme, "http") != 0 || strncasecmp(url, "http://", 7) != 0)
        problem = "url must start with http://";
    /* Userinfo is where "http://127.0.0.1:1@elsewhere" hides the real host. */
    else if (part_present(u, CURLUPART_USER) || part_present(u, CURLUPART_PASSWORD) ||
             part_present(u, CURLUPART_OPTIONS) || memchr(url, '@', strlen(url)) != NULL)
        problem = "url must not contain a user or password ('@')";
    /* The adapters append their paths: a query or fragment would swallow them. */
    else if (part_present(u, CURLUPART_QUERY) || part_present(u, CURLUPART_FRAGMENT))
        problem = "url must not contain a query or fragment";
    else if (!allow_remote && !gc_url_host_is_loopback(host))
        problem = "url must be a loopback address (127.0.0.0/8, ::1, localhost) unless the "
                  "config sets allow_remote_callbacks";
    else
        rc = 0;
    if (problem != NULL)
        snprintf(why, why_len, "%s", problem);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}
