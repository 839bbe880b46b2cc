/* caller.c - caller identity and the checks on what a caller may name. */
#include "daemon/caller.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/proc.h"

/*
 * Processes whose owner was read from /proc lately, each held by a pidfd: while the
 * pidfd says the process runs, it is the one that was read (a pid is not reused
 * before its process is gone), so the next lease it asks for needs no /proc read.
 * Least recently used first out.
 */
#define KNOWN_MAX 128

static struct {
    pthread_mutex_t mu;
    unsigned n;
    uint64_t clock;
    struct known {
        pid_t pid;
        int fd;
        uid_t uid;
        uint64_t start_ticks;
        uint64_t used;
    } v[KNOWN_MAX];
} known = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool pidfd_exited(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) != 0; /* readable (exited), or an error: not to be trusted */
}

static void known_drop(unsigned i)
{
    close(known.v[i].fd);
    known.v[i] = known.v[--known.n];
}

static bool known_find(pid_t pid, uid_t *ret_uid, uint64_t *ret_start_ticks)
{
    bool found = false;

    pthread_mutex_lock(&known.mu);
    for (unsigned i = 0; i < known.n; i++) {
        if (known.v[i].pid != pid)
            continue;
        if (pidfd_exited(known.v[i].fd)) {
            known_drop(i);
            break;
        }
        *ret_uid = known.v[i].uid;
        *ret_start_ticks = known.v[i].start_ticks;
        known.v[i].used = ++known.clock;
        found = true;
        break;
    }
    pthread_mutex_unlock(&known.mu);
    return found;
}

static void known_add(pid_t pid, uid_t uid, uint64_t start_ticks)
{
    int fd = gc_pidfd_open(pid);
    unsigned slot;

    if (fd < 0)
        return;
    /* The pidfd holds the process now at pid: the one that was read, unless the pid
     * was reused in between, which its start time tells. */
    if (gc_proc_start_ticks(pid) != start_ticks) {
        close(fd);
        return;
    }
    pthread_mutex_lock(&known.mu);
    for (unsigned i = 0; i < known.n; i++) {
        if (known.v[i].pid == pid) {
            known_drop(i); /* an older entry (its process may have gone) */
            break;
        }
    }
    if (known.n == KNOWN_MAX) {
        unsigned lru = 0;
        for (unsigned i = 1; i < known.n; i++) {
            if (known.v[i].used < known.v[lru].used)
                lru = i;
        }
        known_drop(lru);
    }
    slot = known.n++;
    known.v[slot] = (struct known){pid, fd, uid, start_ticks, ++known.clock};
    pthread_mutex_unlock(&known.mu);
}

void gc_caller_forget_pids(void)
{
    pthread_mutex_lock(&known.mu);
    while (known.n > 0)
        known_drop(0);
    pthread_mutex_unlock(&known.mu);
}

void gc_caller_from_peer(bool uid_known, uid_t uid, const char *addr, bool bearer_ok,
                         uid_t daemon_uid, struct gc_caller *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->uid_known = uid_known;
    ret->uid = uid_known ? uid : (uid_t)-1;
    /* Root could do anything anyway, and the daemon's own user could run the daemon
     * with any config: neither gains by it. */
    ret->trusted = bearer_ok || (uid_known && (uid == 0 || uid == daemon_uid));
    if (uid_known)
        snprintf(ret->key, sizeof(ret->key), "uid:%u", (unsigned)uid);
    else if (bearer_ok)
        snprintf(ret->key, sizeof(ret->key), "token");
    else
        snprintf(ret->key, sizeof(ret->key), "addr:%.50s", addr ? addr : "?");
}

void gc_caller_trusted(const char *key, struct gc_caller *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->trusted = true;
    ret->uid = (uid_t)-1;
    snprintf(ret->key, sizeof(ret->key), "%s", key);
}

int gc_caller_check_pid(const struct gc_caller *caller, pid_t pid, uint64_t *ret_start_ticks,
                        char *why, size_t why_len)
{
    uid_t owner;
    uint64_t start;

    if (!known_find(pid, &owner, &start)) {
        if (gc_proc_owner(pid, &owner, &start) < 0) {
            snprintf(why, why_len, "process %d does not exist", (int)pid);
            return GC_EINVAL;
        }
        known_add(pid, owner, start);
    }
    if (!caller->trusted && !(caller->uid_known && caller->uid == owner)) {
        if (caller->uid_known)
            snprintf(why, why_len,
                     "process %d belongs to another user: a pid must be a process of your own "
                     "(uid %u)",
                     (int)pid, (unsigned)caller->uid);
        else
            snprintf(why, why_len,
                     "a pid needs a caller the coordinator can identify: use the Unix socket, "
                     "loopback, or the bearer token");
        return GC_EFORBIDDEN;
    }
    *ret_start_ticks = start;
    return 0;
}

bool gc_caller_owns(const struct gc_caller *caller, const char *owner)
{
    return caller->trusted || (owner[0] != '\0' && strcmp(owner, caller->key) == 0);
}
