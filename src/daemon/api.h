/* api.h - the coordinator's HTTP API v1, as a gc_http_server handler. */
#ifndef GC_API_H
#define GC_API_H

#include "common/http_server.h"

struct gc_coord;

/* What the handler serves: the engine, and the HTTP server (for its connection
 * metrics; set once it serves, atomically). */
struct gc_api {
    struct gc_coord *coord;
    struct gc_http_server *http;
};

/* Handles one request; ctx is the struct gc_api. */
void gc_api_handle(void *ctx, const struct gc_http_req *req, struct gc_http_resp *resp);

/* True for the requests served on reserved connection slots: those the default
 * counts short, and a lease's heartbeat and release. */
bool gc_api_is_short(const struct gc_http_req *req);

#endif
