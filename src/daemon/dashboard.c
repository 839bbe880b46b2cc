/* dashboard.c - GET /: the dashboard page, compiled in. */
#include "daemon/dashboard.h"

#include <string.h>

#include "common/err.h"
#include "daemon/dashboard_html.h"

void gc_dashboard_serve(const struct gc_http_req *req, struct gc_http_resp *resp)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        gc_http_resp_header(resp, "Allow", "GET, HEAD");
        gc_http_resp_error(resp, GC_EMETHOD, "the dashboard answers GET only");
        return;
    }
    gc_http_resp_text(resp, 200, "text/html; charset=utf-8", (const char *)gc_dashboard_html);
    /* Inline script and style only, data from this origin only: the page must work
     * without a network and must not be made to send the API's data elsewhere. */
    gc_http_resp_header(resp, "Content-Security-Policy",
                        "default-src 'none'; script-src 'unsafe-inline'; "
                        "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    gc_http_resp_header(resp, "X-Content-Type-Options", "nosniff");
    gc_http_resp_header(resp, "Cache-Control", "no-cache");
}
