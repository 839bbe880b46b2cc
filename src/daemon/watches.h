/*
 * watches.h - the processes the engine watches for exit: holders of leases and
 * residents. Each has a pidfd in the engine's epoll set (its exit ends its leases at
 * once), or, where pidfds are missing, is polled. A watch remembers the process's
 * start time, which tells it from a later process given the same pid.
 */
#ifndef GC_WATCHES_H
#define GC_WATCHES_H

#include <stdint.h>
#include <sys/types.h>

#include "coord/ledger.h"

/* Processes watched at once. */
#define GC_WATCH_MAX (GC_LEASES_MAX + GC_RESIDENTS_MAX)

struct gc_watch {
    pid_t pid;
    int fd; /* its pidfd, -1: polled */
    uint64_t start_ticks;
};

struct gc_watches {
    int epoll_fd; /* a pidfd's event carries its pid */
    struct gc_watch *v;
    unsigned n, cap;
};

void gc_watches_init(struct gc_watches *w, int epoll_fd);
/* Closes every pidfd and frees the table. */
void gc_watches_free(struct gc_watches *w);
struct gc_watch *gc_watches_find(struct gc_watches *w, pid_t pid);
/* Watches pid, the process that started at start_ticks (its watch when watched
 * already: compare its start_ticks); NULL when pid <= 0, at GC_WATCH_MAX or out of
 * memory. A process that has exited by now is seen exiting at once (its pidfd), or
 * by the engine loop's polling where pidfds are missing. */
struct gc_watch *gc_watches_add(struct gc_watches *w, pid_t pid, uint64_t start_ticks);
void gc_watches_remove(struct gc_watches *w, struct gc_watch *watch);

#endif
