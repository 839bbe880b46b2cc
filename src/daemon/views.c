/* views.c - the API's JSON views and the Prometheus text, from what the engine shows
 * them (views.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/size.h"
#include "coord/record.h"
#include "daemon/views.h"

#include "gpu/gpu.h"
#include "gpucoord.h"

/* The resident or holder a listed process counts for (itself or an ancestor). */
static const char *owner_of(const struct gc_view_src *src, unsigned gpu,
                            const struct gc_snapshot_proc *proc)
{
    const struct gc_ledger *ledger = src->ledger;
    pid_t pid = gc_ledger_proc_owner(ledger, gpu, proc);

    if (pid <= 0)
        return NULL;
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && r->gpu == gpu && r->pid == pid)
            return r->name;
    }
    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *l = ledger->leases[i];
        if (l->kind == GC_KIND_HOLDER && l->pid == pid)
            return l->holder;
    }
    return NULL;
}

json_t *gc_view_gpus(const struct gc_view_src *src)
{
    const struct gc_ledger *ledger = src->ledger;
    json_t *gpus = json_array();

    for (unsigned g = 0; g < ledger->ngpus; g++) {
        const struct gc_gpu *gpu = &ledger->gpus[g];
        struct gc_account acct;
        json_t *procs = json_array();
        gc_ledger_account(ledger, g, NULL, &acct);
        for (unsigned i = 0; i < gpu->nprocs; i++) {
            const char *owner = owner_of(src, g, &gpu->procs[i]);
            json_array_append_new(
                procs, json_pack("{s:i, s:o, s:s?}", "pid", (int)gpu->procs[i].pid, "used_bytes",
                                 gpu->procs[i].used_bytes == UINT64_MAX
                                     ? json_null()
                                     : json_integer((json_int_t)gpu->procs[i].used_bytes),
                                 "owner", owner));
        }
        json_array_append_new(
            gpus, json_pack("{s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:s, s:s}",
                            "index", (int)g, "uuid", gpu->uuid, "name", gpu->name, "total_bytes",
                            (json_int_t)gpu->total_bytes, "free_bytes", (json_int_t)gpu->free_bytes,
                            "used_bytes", (json_int_t)gpu->used_bytes, "budget_bytes",
                            (json_int_t)acct.cap, "reserve_bytes", (json_int_t)acct.reserve,
                            "committed_bytes", (json_int_t)acct.committed, "headroom_bytes",
                            (json_int_t)acct.headroom, "processes", procs, "attribution",
                            gc_attribution_name(gpu->attribution), "attribution_reason",
                            gpu->attribution_why ? gpu->attribution_why : ""));
    }
    return gpus;
}

json_t *gc_view_gpusim(const struct gc_view_src *src)
{
    const char *libdir = gc_nvml_gpusim_libdir(src->nvml);

    if (libdir == NULL)
        return json_null();
    return json_pack("{s:s, s:s}", "libdir", libdir, "state", gc_nvml_gpusim_state(src->nvml));
}

json_t *gc_view_resident(const struct gc_view_src *src, const struct gc_resident *r)
{
    const struct gc_resident_spec *spec =
        src->spec(src->ctx, (unsigned)(r - src->ledger->residents));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:o, s:i, s:s, s:I, s:i, s:s, s:s, s:f, s:f, s:i, s:i, s:b, s:I, s:f, "
        "s:f, s:f}",
        "name", r->name, "protocol", r->protocol, "url", r->url, "pid",
        r->pid > 0 ? json_integer(r->pid) : json_null(), "gpu", (int)r->gpu, "state",
        gc_resident_state_name(r->state), "bytes", (json_int_t)r->bytes, "priority", r->priority,
        "restore", gc_restore_name(r->restore), "on_stuck", gc_on_stuck_name(r->on_stuck),
        "last_unload_s", r->last_unload_s, "last_reload_s", r->last_reload_s, "unloads",
        (int)r->unloads, "reloads", (int)r->reloads, "evicted", r->evicted, "used_bytes",
        (json_int_t)gc_ledger_proc_usage(src->ledger, r->gpu, r->pid), "unload_timeout_s",
        spec->unload_timeout_s, "reload_timeout_s", spec->reload_timeout_s, "verify_timeout_s",
        spec->verify_timeout_s);

    json_object_set_new(o, "level", json_string(gc_resident_level_name(r, gc_resident_level(r))));
    json_object_set_new(o, "levels", gc_record_levels(r));
    if (r->state == GC_RES_UNLOADING)
        json_object_set_new(o, "target_level",
                            json_string(gc_resident_level_name(r, r->target_level)));
    if (r->reason[0] != '\0')
        json_object_set_new(o, "reason", json_string(r->reason));
    if (spec->model[0] != '\0')
        json_object_set_new(o, "model", json_string(spec->model));
    json_object_set_new(o, "uses", json_integer(r->uses));
    json_object_set_new(o, "drain_timeout_s", json_real(r->drain_timeout_s));
    /* A process resident not started yet was never unloaded: no time to show. */
    if (r->state == GC_RES_UNLOADED)
        json_object_set_new(o, "unloaded_for_s",
                            r->unloaded_since_ms > 0
                                ? json_real((double)(gc_mono_ms() - r->unloaded_since_ms) / 1000.0)
                                : json_null());
    return o;
}

json_t *gc_view_residents(const struct gc_view_src *src)
{
    json_t *arr = json_array();

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        if (src->ledger->residents[i].in_use)
            json_array_append_new(arr, gc_view_resident(src, &src->ledger->residents[i]));
    }
    return arr;
}

/* position: its place in the queue when it waits (-1: look it up). */
static json_t *lease_view(const struct gc_view_src *src, const struct gc_lease *l, int position)
{
    int64_t now = gc_mono_ms();
    json_t *evicted = json_array();
    json_t *o;
    bool active = l->state == GC_LEASE_QUEUED || l->state == GC_LEASE_PREPARING ||
                  l->state == GC_LEASE_GRANTED;
    int64_t end = active ? now : l->ended_ms;

    for (unsigned i = 0; i < l->nevicted; i++)
        json_array_append_new(evicted, json_string(l->evicted[i]));
    o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:i, s:f, s:s, s:o}", "id", l->id, "kind",
                  l->kind == GC_KIND_DEMAND   ? "demand"
                  : l->kind == GC_KIND_GROWTH ? "growth"
                                              : "holder",
                  "holder", l->holder, "pid", l->pid > 0 ? json_integer(l->pid) : json_null(),
                  "gpu", l->gpu >= 0 ? json_integer(l->gpu) : json_null(), "bytes",
                  (json_int_t)l->bytes, "priority", l->priority, "ttl_s", l->ttl_s, "state",
                  gc_lease_state_name(l->state), "evicted", evicted);
    json_object_set_new(o, "gpu_requested",
                        l->gpu_req >= 0 ? json_integer(l->gpu_req) : json_string("any"));
    json_object_set_new(
        o, "waited_s",
        json_real((double)((l->granted_ms ? l->granted_ms : end) - l->created_ms) / 1000.0));
    if (l->granted_ms)
        json_object_set_new(o, "held_s", json_real((double)(end - l->granted_ms) / 1000.0));
    if (l->state == GC_LEASE_QUEUED || l->state == GC_LEASE_PREPARING)
        json_object_set_new(
            o, "position",
            json_integer(position >= 0 ? position : (int)gc_ledger_queue_position(src->ledger, l)));
    if (active && l->ttl_s > 0 && l->kind == GC_KIND_HOLDER)
        json_object_set_new(o, "expires_in_s",
                            json_real(l->ttl_s - (double)(now - l->heartbeat_ms) / 1000.0));
    if (l->kind == GC_KIND_GROWTH)
        json_object_set_new(o, "grows", json_string(l->parent));
    if (l->reason[0] != '\0')
        json_object_set_new(o, "reason", json_string(l->reason));
    if (l->state == GC_LEASE_FAILED && l->error != 0)
        json_object_set_new(o, "error", json_string(gpucoord_err_name(l->error)));
    return o;
}

json_t *gc_view_lease(const struct gc_view_src *src, const struct gc_lease *l)
{
    return lease_view(src, l, -1);
}

json_t *gc_view_leases(const struct gc_view_src *src)
{
    const struct gc_ledger *ledger = src->ledger;
    json_t *arr = json_array();
    const struct gc_lease *order[GC_LEASES_MAX];
    int position[GC_LEASES_MAX];
    unsigned n = gc_ledger_queue_order(ledger, order);

    /* Every position at once: one lookup per lease would be quadratic. */
    for (unsigned pos = 0; pos < n; pos++)
        position[order[pos]->slot] = (int)pos;
    for (unsigned i = 0; i < ledger->nleases; i++)
        json_array_append_new(arr, lease_view(src, ledger->leases[i], position[i]));
    return arr;
}

json_t *gc_view_status(const struct gc_view_src *src)
{
    const struct gc_counters *c = &src->stats->counters;
    const struct gc_ledger *ledger = src->ledger;
    json_t *queue = json_array(), *counters;
    const struct gc_lease *waiting[GC_LEASES_MAX];
    unsigned n = gc_ledger_queue_order(ledger, waiting);

    for (unsigned pos = 0; pos < n; pos++)
        json_array_append_new(queue,
                              json_pack("{s:s, s:s, s:I, s:i, s:s}", "id", waiting[pos]->id,
                                        "holder", waiting[pos]->holder, "bytes",
                                        (json_int_t)waiting[pos]->bytes, "position", (int)pos,
                                        "state", gc_lease_state_name(waiting[pos]->state)));
    counters = json_object();
#define GC_COUNTER_JSON(name, help)                                                                \
    json_object_set_new(counters, #name, json_integer((json_int_t)c->name));
    GC_COUNTERS_MAP(GC_COUNTER_JSON)
#undef GC_COUNTER_JSON
    return json_pack("{s:s, s:s, s:f, s:o, s:o, s:o, s:o, s:o, s:I}", "version", GPUCOORD_VERSION,
                     "driver_version", src->driver_version, "uptime_s",
                     (double)(gc_mono_ms() - src->started_ms) / 1000.0, "gpus", gc_view_gpus(src),
                     "residents", gc_view_residents(src), "leases", gc_view_leases(src), "queue",
                     queue, "counters", counters, "last_event_seq",
                     (json_int_t)gc_events_last_seq(src->events));
}

/* ---- /metrics ---- */

struct text {
    char *buf;
    size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = t->cap - t->len;
        va_start(ap, fmt);
        n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->buf != NULL && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 8192;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(t->buf, cap);
        if (p == NULL)
            return;
        t->buf = p;
        t->cap = cap;
    }
}

static void counter(struct text *t, const char *name, const char *help, uint64_t v)
{
    text_add(t, "# HELP gpucoord_%s %s\n# TYPE gpucoord_%s counter\ngpucoord_%s %llu\n", name, help,
             name, name, (unsigned long long)v);
}

static void histogram(struct text *t, const char *name, const char *help,
                      const struct gc_histogram *h)
{
    uint64_t cum = 0;

    text_add(t, "# HELP gpucoord_%s %s\n# TYPE gpucoord_%s histogram\n", name, help, name);
    for (unsigned i = 0; i < GC_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        text_add(t, "gpucoord_%s_bucket{le=\"%g\"} %llu\n", name, gc_hist_bounds[i],
                 (unsigned long long)cum);
    }
    cum += h->counts[GC_HIST_BUCKETS];
    text_add(t,
             "gpucoord_%s_bucket{le=\"+Inf\"} %llu\ngpucoord_%s_sum %.6f\ngpucoord_%s_count %llu\n",
             name, (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->count);
}

char *gc_view_metrics(const struct gc_view_src *src)
{
    const struct gc_counters *c = &src->stats->counters;
    const struct gc_ledger *ledger = src->ledger;
    struct text t = {0};
    unsigned queued = 0, granted = 0;

#define GC_COUNTER_METRIC(name, help) counter(&t, #name "_total", help, c->name);
    GC_COUNTERS_MAP(GC_COUNTER_METRIC)
#undef GC_COUNTER_METRIC
    histogram(&t, "grant_wait_seconds", "Time from request to grant.", &src->stats->grant_wait_s);
    histogram(&t, "unload_seconds", "Unload including NVML verification.", &src->stats->unload_s);
    histogram(&t, "reload_seconds", "Reload including verification.", &src->stats->reload_s);

    text_add(&t,
             "# HELP gpucoord_gpu_bytes GPU memory by kind.\n# TYPE gpucoord_gpu_bytes gauge\n");
    for (unsigned g = 0; g < ledger->ngpus; g++) {
        struct gc_account a;
        gc_ledger_account(ledger, g, NULL, &a);
        text_add(&t,
                 "gpucoord_gpu_bytes{gpu=\"%u\",kind=\"total\"} %llu\n"
                 "gpucoord_gpu_bytes{gpu=\"%u\",kind=\"used\"} %llu\n"
                 "gpucoord_gpu_bytes{gpu=\"%u\",kind=\"free\"} %llu\n"
                 "gpucoord_gpu_bytes{gpu=\"%u\",kind=\"committed\"} %llu\n"
                 "gpucoord_gpu_bytes{gpu=\"%u\",kind=\"reserve\"} %llu\n",
                 g, (unsigned long long)ledger->gpus[g].total_bytes, g,
                 (unsigned long long)ledger->gpus[g].used_bytes, g,
                 (unsigned long long)ledger->gpus[g].free_bytes, g, (unsigned long long)a.committed,
                 g, (unsigned long long)a.reserve);
    }
    for (unsigned i = 0; i < ledger->nleases; i++) {
        if (ledger->leases[i]->state == GC_LEASE_GRANTED)
            granted++;
        else
            queued++;
    }
    text_add(&t,
             "# HELP gpucoord_leases Active leases by state.\n# TYPE gpucoord_leases gauge\n"
             "gpucoord_leases{state=\"granted\"} %u\ngpucoord_leases{state=\"waiting\"} %u\n",
             granted, queued);
    text_add(&t,
             "# HELP gpucoord_watched_processes Holder and resident processes watched for exit.\n"
             "# TYPE gpucoord_watched_processes gauge\ngpucoord_watched_processes %u\n",
             src->watched);
    text_add(&t, "# HELP gpucoord_resident_loaded 1 when the resident is loaded.\n"
                 "# TYPE gpucoord_resident_loaded gauge\n");
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_resident *r = &ledger->residents[i];
        if (r->in_use)
            text_add(&t, "gpucoord_resident_loaded{name=\"%s\",state=\"%s\"} %d\n", r->name,
                     gc_resident_state_name(r->state), r->state == GC_RES_LOADED);
    }
    return t.buf;
}
