/* watches.c - processes watched for exit through pidfds (watches.h). */
#include "daemon/watches.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/proc.h" /* gc_pidfd_open */

void gc_watches_init(struct gc_watches *w, int epoll_fd)
{
    memset(w, 0, sizeof(*w));
    w->epoll_fd = epoll_fd;
}

void gc_watches_free(struct gc_watches *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (w->v[i].fd >= 0)
            close(w->v[i].fd);
    }
    free(w->v);
    w->v = NULL;
    w->n = w->cap = 0;
}

struct gc_watch *gc_watches_find(struct gc_watches *w, pid_t pid)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (w->v[i].pid == pid)
            return &w->v[i];
    }
    return NULL;
}

struct gc_watch *gc_watches_add(struct gc_watches *w, pid_t pid, uint64_t start_ticks)
{
    struct gc_watch *watch;
    struct epoll_event ev = {.events = EPOLLIN};

    if (pid <= 0)
        return NULL;
    watch = gc_watches_find(w, pid);
    if (watch != NULL)
        return watch;
    if (w->n >= GC_WATCH_MAX)
        return NULL;
    if (w->n == w->cap) {
        unsigned cap = w->cap ? w->cap * 2 : 16;
        struct gc_watch *v = realloc(w->v, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        w->v = v;
        w->cap = cap;
    }
    watch = &w->v[w->n++];
    watch->pid = pid;
    watch->start_ticks = start_ticks;
    watch->fd = gc_pidfd_open(pid);
    if (watch->fd >= 0) {
        ev.data.u64 = (uint64_t)pid;
        if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, watch->fd, &ev) < 0) {
            close(watch->fd);
            watch->fd = -1; /* polled by the engine loop instead */
        }
    }
    return watch;
}

void gc_watches_remove(struct gc_watches *w, struct gc_watch *watch)
{
    if (watch->fd >= 0) {
        epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, watch->fd, NULL);
        close(watch->fd);
    }
    *watch = w->v[--w->n];
}
