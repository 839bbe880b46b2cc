/*
 * events.h - the coordinator's recent history: a ring of the last GC_EVENTS_MAX
 * events with increasing sequence numbers (GET /v1/events?since=SEQ). The ring
 * grows in chunks of GC_EVENTS_CHUNK as events arrive: an idle daemon holds none.
 * Not thread-safe: the daemon holds its lock around every call.
 */
#ifndef GC_EVENTS_H
#define GC_EVENTS_H

#include <jansson.h>
#include <stdint.h>

#define GC_EVENTS_MAX       2048
#define GC_EVENTS_CHUNK     64 /* events allocated at once; divides GC_EVENTS_MAX */
#define GC_EVENT_PHASES_MAX 4

struct gc_event {
    uint64_t seq;
    double time; /* wall clock, seconds since the epoch */
    char kind[32];
    char subject[72];
    char detail[400];
    unsigned nphases;
    char phase_names[GC_EVENT_PHASES_MAX][16];
    double phase_s[GC_EVENT_PHASES_MAX];
};

struct gc_events {
    /* Event seq is in chunks[(seq % GC_EVENTS_MAX) / GC_EVENTS_CHUNK], NULL until the
     * first event that falls there. */
    struct gc_event *chunks[GC_EVENTS_MAX / GC_EVENTS_CHUNK];
    uint64_t next_seq;       /* seq of the next event; the first is 1 */
    struct gc_event dropped; /* what gc_events_add returns when it cannot allocate */
};

/* Initialises an empty ring; it allocates nothing yet. */
void gc_events_init(struct gc_events *events);
/* Frees the ring's chunks (not events itself) and leaves it empty, as after
 * gc_events_init. NULL is a no-op. */
void gc_events_free(struct gc_events *events);
/* Appends an event and returns it, so phases can be added with gc_event_phase(). When
 * its chunk cannot be allocated the event is dropped: no seq is taken, and the
 * pointer returned is to a scratch event that nothing reads. */
struct gc_event *gc_events_add(struct gc_events *events, double now, const char *kind,
                               const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Records a phase duration ("unload", 1.23) on ev (ignored past the cap). */
void gc_event_phase(struct gc_event *ev, const char *name, double seconds);
/* The events with seq > since, oldest first, as a JSON array (new reference), at most max. */
json_t *gc_events_since(const struct gc_events *events, uint64_t since, unsigned max);
/* seq of the newest event (0 if none). */
uint64_t gc_events_last_seq(const struct gc_events *events);

#endif
