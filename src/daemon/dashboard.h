/*
 * dashboard.h - the page gpucoordd serves at GET /: a live view of memory per GPU,
 * residents, leases, the queue and recent events, drawn by the browser from the
 * API. The page (src/daemon/dashboard/index.html) is compiled into the daemon.
 */
#ifndef GC_DASHBOARD_H
#define GC_DASHBOARD_H

#include "common/http_server.h"

/* Answers req with the page (200 text/html), or 405 for a method other than GET
 * or HEAD. The page may only talk to this daemon: its Content-Security-Policy
 * forbids every other origin. */
void gc_dashboard_serve(const struct gc_http_req *req, struct gc_http_resp *resp);

#endif
