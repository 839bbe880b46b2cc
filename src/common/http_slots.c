/* http_slots.c - connection slots, per-peer caps, request deadlines and the reaper. */
#include "http_slots.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "err.h"

/* Connections with an unread request passed over before giving up on making way. */
#define EVICT_TRIES 16
/* How much of a connection's unread bytes is searched for the end of its headers. */
#define EVICT_PEEK_BYTES 2048

enum slot_kind {
    SLOT_GENERAL,
    SLOT_RESERVE,
    SLOT_NONE, /* refused or made to give way: shut down, closing */
};

struct gc_http_slot {
    struct gc_http_slot *prev, *next;
    int fd;
    struct gc_http_slot_peer peer;
    /* Written under the lock; read atomically by the connection's own thread. */
    enum slot_kind kind;
    /* When the connection began waiting for its request; 0 while a request is in
     * progress (it cannot be made to give way then). Atomic: set by the connection's
     * thread without the lock, so that a request costs no lock of its own. */
    int64_t waiting_since_ms;
    /* Shut down at this monotonic time; 0: no deadline. Atomic: set by the
     * connection's thread, read by the reaper. */
    int64_t deadline_ms;
    /* The admission round that passed over it (its request sat unread). */
    uint64_t passed_round;
};

struct gc_http_slots {
    struct gc_http_slots_config config;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t reaper;
    bool stopping;
    struct gc_http_slot *head;
    unsigned general, reserved;
    uint64_t refused, evicted, expired;
    uint64_t round; /* admissions that looked for a connection to make way */
    /* When the reaper will next look (atomic); INT64_MAX while it scans, so that a
     * deadline set meanwhile wakes it. */
    int64_t reap_at_ms;
};

static bool peer_equal(const struct gc_http_slot_peer *a, const struct gc_http_slot_peer *b)
{
    return memcmp(a->key, b->key, sizeof(a->key)) == 0;
}

/* Shuts the socket down: the connection's own thread then sees it closed and ends
 * it. The descriptor stays open until libmicrohttpd closes it, after close(). */
static void slot_shut_locked(struct gc_http_slots *s, struct gc_http_slot *slot)
{
    if (slot->kind == SLOT_GENERAL)
        s->general--;
    else if (slot->kind == SLOT_RESERVE)
        s->reserved--;
    __atomic_store_n(&slot->kind, SLOT_NONE, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->waiting_since_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->deadline_ms, 0, __ATOMIC_SEQ_CST);
    shutdown(slot->fd, SHUT_RDWR);
}

/* True when a whole request head waits unread in the connection's socket: the
 * client was prompt, and only its thread has not looked yet (a busy server). A slow
 * sender's unread bytes hold no end of headers. */
static bool slot_has_unread_request(const struct gc_http_slot *c)
{
    char buf[EVICT_PEEK_BYTES];
    ssize_t n = recv(c->fd, buf, EVICT_PEEK_BYTES, MSG_PEEK | MSG_DONTWAIT);

    return n >= 4 && memmem(buf, (size_t)n, "\r\n\r\n", 4) != NULL;
}

/* The connection waiting longest for its request, of kind, from peer (NULL: any),
 * passing over those whose whole request sits unread (at most EVICT_TRIES of them);
 * NULL when none. */
static struct gc_http_slot *oldest_waiting_locked(struct gc_http_slots *s, enum slot_kind kind,
                                                  const struct gc_http_slot_peer *peer)
{
    s->round++;
    for (int tries = 0; tries < EVICT_TRIES; tries++) {
        struct gc_http_slot *best = NULL;
        int64_t best_since = 0;
        for (struct gc_http_slot *c = s->head; c != NULL; c = c->next) {
            int64_t since = __atomic_load_n(&c->waiting_since_ms, __ATOMIC_RELAXED);
            if (c->kind != kind || since == 0 || c->passed_round == s->round)
                continue;
            if (peer != NULL && !peer_equal(&c->peer, peer))
                continue;
            /* <=: the list runs newest first, so of equal times the older one wins. */
            if (best == NULL || since <= best_since) {
                best = c;
                best_since = since;
            }
        }
        if (best == NULL || !slot_has_unread_request(best))
            return best;
        best->passed_round = s->round;
    }
    return NULL;
}

static unsigned peer_general_locked(struct gc_http_slots *s, const struct gc_http_slot_peer *peer)
{
    unsigned n = 0;

    for (struct gc_http_slot *c = s->head; c != NULL; c = c->next)
        if (c->kind == SLOT_GENERAL && peer_equal(&c->peer, peer))
            n++;
    return n;
}

/* Wakes the reaper if deadline_ms comes before its next look. */
static void set_deadline(struct gc_http_slots *s, struct gc_http_slot *slot, int64_t deadline_ms)
{
    __atomic_store_n(&slot->deadline_ms, deadline_ms, __ATOMIC_SEQ_CST);
    if (deadline_ms != 0 && deadline_ms < __atomic_load_n(&s->reap_at_ms, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&s->lock);
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
    }
}

static enum slot_kind admit_locked(struct gc_http_slots *s, const struct gc_http_slot_peer *peer)
{
    unsigned general_max = s->config.limit - s->config.reserve;
    bool peer_full = peer_general_locked(s, peer) >= s->config.per_peer;
    struct gc_http_slot *victim;

    if (!peer_full && s->general < general_max)
        return SLOT_GENERAL;
    /* A peer at its cap makes way only among its own connections; otherwise the
     * general slots are full and the longest waiting connection of anyone makes way. */
    victim = oldest_waiting_locked(s, SLOT_GENERAL, peer_full ? peer : NULL);
    if (victim != NULL) {
        slot_shut_locked(s, victim);
        s->evicted++;
        return SLOT_GENERAL;
    }
    if (s->reserved < s->config.reserve)
        return SLOT_RESERVE;
    victim = oldest_waiting_locked(s, SLOT_RESERVE, NULL);
    if (victim != NULL) {
        slot_shut_locked(s, victim);
        s->evicted++;
        return SLOT_RESERVE;
    }
    return SLOT_NONE;
}

struct gc_http_slot *gc_http_slots_open(struct gc_http_slots *s, int fd,
                                        const struct gc_http_slot_peer *peer)
{
    struct gc_http_slot *slot = calloc(1, sizeof(*slot));
    int64_t now = gc_mono_ms();

    if (slot == NULL) {
        shutdown(fd, SHUT_RDWR);
        return NULL;
    }
    slot->fd = fd;
    slot->peer = *peer;
    pthread_mutex_lock(&s->lock);
    __atomic_store_n(&slot->kind, admit_locked(s, peer), __ATOMIC_RELAXED);
    if (slot->kind == SLOT_GENERAL)
        s->general++;
    else if (slot->kind == SLOT_RESERVE)
        s->reserved++;
    slot->next = s->head;
    if (s->head != NULL)
        s->head->prev = slot;
    s->head = slot;
    if (slot->kind == SLOT_NONE) {
        s->refused++;
        shutdown(fd, SHUT_RDWR);
    } else {
        __atomic_store_n(&slot->waiting_since_ms, now, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&s->lock);
    if (slot->kind != SLOT_NONE)
        set_deadline(s, slot, now + s->config.header_ms);
    return slot;
}

void gc_http_slots_close(struct gc_http_slots *s, struct gc_http_slot *slot)
{
    if (slot == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (slot->kind == SLOT_GENERAL)
        s->general--;
    else if (slot->kind == SLOT_RESERVE)
        s->reserved--;
    if (slot->prev != NULL)
        slot->prev->next = slot->next;
    else
        s->head = slot->next;
    if (slot->next != NULL)
        slot->next->prev = slot->prev;
    pthread_mutex_unlock(&s->lock);
    free(slot);
}

bool gc_http_slot_reserved(const struct gc_http_slot *slot)
{
    return slot != NULL && __atomic_load_n(&slot->kind, __ATOMIC_RELAXED) == SLOT_RESERVE;
}

/* Lock-free: a connection that changes phase just as a newcomer picks it to make
 * way may still be closed; the newcomer found the slots full either way. */
static void slot_phase(struct gc_http_slots *s, struct gc_http_slot *slot, bool waiting,
                       unsigned timeout_ms)
{
    int64_t now = gc_mono_ms();

    if (slot == NULL || __atomic_load_n(&slot->kind, __ATOMIC_RELAXED) == SLOT_NONE)
        return;
    __atomic_store_n(&slot->waiting_since_ms, waiting ? now : 0, __ATOMIC_RELAXED);
    set_deadline(s, slot, timeout_ms ? now + timeout_ms : 0);
}

void gc_http_slot_headers_in(struct gc_http_slots *s, struct gc_http_slot *slot)
{
    slot_phase(s, slot, false, s->config.body_ms);
}

void gc_http_slot_handling(struct gc_http_slots *s, struct gc_http_slot *slot)
{
    slot_phase(s, slot, false, 0);
}

void gc_http_slot_answering(struct gc_http_slots *s, struct gc_http_slot *slot)
{
    slot_phase(s, slot, false, s->config.body_ms);
}

void gc_http_slot_idle(struct gc_http_slots *s, struct gc_http_slot *slot)
{
    slot_phase(s, slot, true, s->config.keepalive_ms);
}

static void *reaper_main(void *arg)
{
    struct gc_http_slots *s = arg;
    struct timespec abstime;

    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        int64_t now = gc_mono_ms(), next = INT64_MAX;
        __atomic_store_n(&s->reap_at_ms, INT64_MAX, __ATOMIC_SEQ_CST);
        for (struct gc_http_slot *c = s->head; c != NULL; c = c->next) {
            int64_t d = __atomic_load_n(&c->deadline_ms, __ATOMIC_SEQ_CST);
            if (d == 0 || c->kind == SLOT_NONE)
                continue;
            if (d <= now) {
                slot_shut_locked(s, c);
                s->expired++;
            } else if (d < next) {
                next = d;
            }
        }
        __atomic_store_n(&s->reap_at_ms, next, __ATOMIC_SEQ_CST);
        if (next == INT64_MAX) {
            pthread_cond_wait(&s->wake, &s->lock);
        } else {
            gc_abstime_after_ms(&abstime, next - now);
            pthread_cond_timedwait(&s->wake, &s->lock, &abstime);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int gc_http_slots_new(const struct gc_http_slots_config *config, struct gc_http_slots **ret)
{
    struct gc_http_slots *s = calloc(1, sizeof(*s));
    pthread_condattr_t cattr;

    if (s == NULL)
        return GC_ENOMEM;
    s->config = *config;
    if (s->config.limit == 0)
        s->config.limit = 1;
    if (s->config.reserve >= s->config.limit)
        s->config.reserve = s->config.limit - 1;
    if (s->config.per_peer == 0)
        s->config.per_peer = s->config.limit;
    s->reap_at_ms = INT64_MAX;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &cattr);
    pthread_condattr_destroy(&cattr);
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return GC_EIO;
    }
    *ret = s;
    return 0;
}

void gc_http_slots_free(struct gc_http_slots *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->reaper, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void gc_http_slots_stats(struct gc_http_slots *s, struct gc_http_slots_stats *ret)
{
    pthread_mutex_lock(&s->lock);
    ret->general = s->general;
    ret->reserved = s->reserved;
    ret->refused = s->refused;
    ret->evicted = s->evicted;
    ret->expired = s->expired;
    pthread_mutex_unlock(&s->lock);
}
