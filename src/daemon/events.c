/* events.c - ring of recent events. */
#include "daemon/events.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(GC_EVENTS_MAX % GC_EVENTS_CHUNK == 0, "chunks tile the ring");

void gc_events_init(struct gc_events *events)
{
    memset(events, 0, sizeof(*events));
    events->next_seq = 1;
}

void gc_events_free(struct gc_events *events)
{
    if (events == NULL)
        return;
    for (unsigned i = 0; i < GC_EVENTS_MAX / GC_EVENTS_CHUNK; i++)
        free(events->chunks[i]);
    gc_events_init(events);
}

/* The slot of event seq (its chunk allocated). */
static struct gc_event *event_slot(const struct gc_events *events, uint64_t seq)
{
    unsigned index = (unsigned)(seq % GC_EVENTS_MAX);

    return &events->chunks[index / GC_EVENTS_CHUNK][index % GC_EVENTS_CHUNK];
}

struct gc_event *gc_events_add(struct gc_events *events, double now, const char *kind,
                               const char *subject, const char *fmt, ...)
{
    struct gc_event **chunk = &events->chunks[(events->next_seq % GC_EVENTS_MAX) / GC_EVENTS_CHUNK];
    struct gc_event *ev;
    va_list ap;

    if (*chunk == NULL)
        *chunk = calloc(GC_EVENTS_CHUNK, sizeof(**chunk));
    if (*chunk == NULL) {
        memset(&events->dropped, 0, sizeof(events->dropped));
        return &events->dropped;
    }
    ev = event_slot(events, events->next_seq);
    memset(ev, 0, sizeof(*ev));
    ev->seq = events->next_seq++;
    ev->time = now;
    snprintf(ev->kind, sizeof(ev->kind), "%s", kind);
    snprintf(ev->subject, sizeof(ev->subject), "%s", subject ? subject : "");
    va_start(ap, fmt);
    vsnprintf(ev->detail, sizeof(ev->detail), fmt, ap);
    va_end(ap);
    return ev;
}

void gc_event_phase(struct gc_event *ev, const char *name, double seconds)
{
    if (ev->nphases >= GC_EVENT_PHASES_MAX)
        return;
    snprintf(ev->phase_names[ev->nphases], sizeof(ev->phase_names[0]), "%s", name);
    ev->phase_s[ev->nphases] = seconds;
    ev->nphases++;
}

uint64_t gc_events_last_seq(const struct gc_events *events)
{
    return events->next_seq - 1;
}

json_t *gc_events_since(const struct gc_events *events, uint64_t since, unsigned max)
{
    json_t *arr = json_array();
    uint64_t last = events->next_seq - 1;
    uint64_t oldest = last >= GC_EVENTS_MAX ? last - GC_EVENTS_MAX + 1 : 1;
    uint64_t first;

    if (since >= last)
        return arr; /* nothing newer; and since + 1 would wrap for the largest since */
    first = since + 1 > oldest ? since + 1 : oldest;
    if (last >= first && last - first + 1 > max)
        first = last - max + 1;
    for (uint64_t seq = first; seq <= last; seq++) {
        const struct gc_event *ev = event_slot(events, seq);
        json_t *durations = json_object();
        for (unsigned i = 0; i < ev->nphases; i++)
            json_object_set_new(durations, ev->phase_names[i], json_real(ev->phase_s[i]));
        json_array_append_new(arr, json_pack("{s:I, s:f, s:s, s:s, s:s, s:o}", "seq",
                                             (json_int_t)ev->seq, "time", ev->time, "kind",
                                             ev->kind, "subject", ev->subject, "detail", ev->detail,
                                             "durations", durations));
    }
    return arr;
}
