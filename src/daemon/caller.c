/* caller.c - caller identity and the checks on what a caller may name. */
#include "daemon/caller.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/proc.h"

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

    if (gc_proc_owner(pid, &owner, &start) < 0) {
        snprintf(why, why_len, "process %d does not exist", (int)pid);
        return GC_EINVAL;
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
