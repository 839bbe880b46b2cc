/* ancestry.c - process parents from /proc, with a small time-bounded cache. */
#include "daemon/ancestry.h"

#include <pthread.h>
#include <string.h>

#include "common/clock.h"
#include "common/proc.h"

/* Cached parents. A pid's parent changes only when the parent dies (re-parenting)
 * or the pid is reused; a second of staleness is harmless for accounting. */
#define ANCESTRY_CACHE  512
#define ANCESTRY_TTL_MS 1000

struct parent_entry {
    pid_t pid;
    pid_t ppid;
    int64_t read_ms;
};

static struct parent_entry cache[ANCESTRY_CACHE];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static pid_t parent_of(pid_t pid, int64_t now)
{
    struct parent_entry *e = &cache[(unsigned)pid % ANCESTRY_CACHE];
    pid_t ppid;

    pthread_mutex_lock(&cache_lock);
    if (e->pid == pid && now - e->read_ms < ANCESTRY_TTL_MS) {
        ppid = e->ppid;
        pthread_mutex_unlock(&cache_lock);
        return ppid;
    }
    pthread_mutex_unlock(&cache_lock);
    ppid = gc_proc_parent(pid);
    pthread_mutex_lock(&cache_lock);
    e->pid = pid;
    e->ppid = ppid;
    e->read_ms = now;
    pthread_mutex_unlock(&cache_lock);
    return ppid;
}

void gc_ancestry_fill(struct gc_snapshot_proc *procs, unsigned n)
{
    int64_t now = gc_mono_ms();

    for (unsigned i = 0; i < n; i++) {
        pid_t p = (pid_t)procs[i].pid;
        memset(procs[i].chain, 0, sizeof(procs[i].chain));
        for (unsigned k = 0; k < GC_CHAIN_MAX; k++) {
            p = parent_of(p, now);
            if (p <= 1)
                break; /* init (or gone): no registered ancestor beyond */
            procs[i].chain[k] = (uint32_t)p;
        }
    }
}
