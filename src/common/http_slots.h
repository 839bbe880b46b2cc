/*
 * http_slots.h - connection slots of one HTTP listener: who may hold a connection,
 * for how long a connection may take to send its request, and which connection
 * gives way when all are taken.
 *
 * Slots come in two kinds. General slots serve any request; the last `reserve`
 * slots serve only short requests (health checks, heartbeats, releases), so that
 * those get through while slow or waiting requests hold every general slot. One
 * peer (a TCP address, or a uid on a Unix socket) holds at most `per_peer` general
 * slots. When the slots are full, the connection that has waited longest for its
 * request makes way for a new one: a prompt client sends its request within a
 * millisecond, and one whose whole request sits unread (its thread has not looked
 * yet) is passed over, so slow senders reconnecting fast cannot push it out. A
 * connection that has not sent its headers (or its body) before its deadline is
 * shut down by a reaper thread.
 *
 * Thread-safe: open/close and the phase calls come from libmicrohttpd's threads.
 */
#ifndef GC_HTTP_SLOTS_H
#define GC_HTTP_SLOTS_H

#include <stdbool.h>
#include <stdint.h>

struct gc_http_slots_config {
    unsigned limit;        /* connections served at once (general + reserve) */
    unsigned reserve;      /* of limit, slots only for short requests */
    unsigned per_peer;     /* general slots one peer may hold */
    unsigned header_ms;    /* a new connection must send its headers within this */
    unsigned body_ms;      /* then its body (and take its answer) within this */
    unsigned keepalive_ms; /* a kept-alive connection's next request, within this */
};

/* One peer: a TCP address (IPv4 mapped into IPv6) or a uid, as 16 bytes. */
struct gc_http_slot_peer {
    unsigned char key[16];
};

struct gc_http_slots;
struct gc_http_slot;

/* Creates the table and starts its reaper thread. 0 or GC_ENOMEM/GC_EIO. */
int gc_http_slots_new(const struct gc_http_slots_config *config, struct gc_http_slots **ret);
/* Stops the reaper and frees the table (every slot must be closed). NULL: no-op. */
void gc_http_slots_free(struct gc_http_slots *slots);

/* Admits a new connection on socket fd from peer. Returns its slot (never NULL
 * unless out of memory); a connection that finds no slot is shut down at once and
 * its slot is marked refused. May shut down an older waiting connection. */
struct gc_http_slot *gc_http_slots_open(struct gc_http_slots *slots, int fd,
                                        const struct gc_http_slot_peer *peer);
/* Forgets a connection (before its socket is closed) and frees slot. NULL: no-op. */
void gc_http_slots_close(struct gc_http_slots *slots, struct gc_http_slot *slot);

/* True when the connection holds a reserved slot: only short requests are served. */
bool gc_http_slot_reserved(const struct gc_http_slot *slot);
/* Phases. Headers are in: the body's deadline starts. */
void gc_http_slot_headers_in(struct gc_http_slots *slots, struct gc_http_slot *slot);
/* The request is whole and handled: no deadline while the handler runs. */
void gc_http_slot_handling(struct gc_http_slots *slots, struct gc_http_slot *slot);
/* The answer is being sent: the client must take it within body_ms. */
void gc_http_slot_answering(struct gc_http_slots *slots, struct gc_http_slot *slot);
/* Answered; kept alive for the next request. */
void gc_http_slot_idle(struct gc_http_slots *slots, struct gc_http_slot *slot);

/* Counters for tests and metrics. */
struct gc_http_slots_stats {
    unsigned general, reserved;         /* slots held now */
    uint64_t refused, evicted, expired; /* connections shut down for each reason */
};
void gc_http_slots_stats(struct gc_http_slots *slots, struct gc_http_slots_stats *ret);

#endif
