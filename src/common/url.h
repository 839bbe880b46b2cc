/*
 * url.h - callback URLs, judged by the same parser that will connect to them
 * (libcurl's URL API), so that what is checked is what is called.
 */
#ifndef GC_URL_H
#define GC_URL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * gc_url_check_callback: accepts url when it is http://HOST[:PORT][/PATH] with no
 * user, password, query or fragment and, unless allow_remote, HOST is loopback
 * (127.0.0.0/8, ::1, localhost) as libcurl parses it. Returns 0, or GC_EINVAL with
 * the reason in why (why_len bytes, may be 0).
 */
int gc_url_check_callback(const char *url, bool allow_remote, char *why, size_t why_len);

/* True when host (as a URL names it: "127.0.0.1", "[::1]", "localhost") is loopback. */
bool gc_url_host_is_loopback(const char *host);

#endif
