/*
 * caller.h - who asks the coordinator, and what they may do (docs/security.md).
 *
 * Reads are open to every caller that reaches the API. Starting a command or naming
 * a process that the coordinator may signal needs more: a trusted caller (the config
 * file, the journal, root or the daemon's own user as the kernel reports it on the
 * Unix socket or on loopback TCP, or the bearer token), or, for a pid, a caller whose
 * user owns that process. Quotas count per caller identity, not per holder name.
 */
#ifndef GC_CALLER_H
#define GC_CALLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "coord/ledger.h"

struct gc_caller {
    bool trusted;   /* may run commands and name any process */
    bool uid_known; /* uid is the kernel's word for who connected */
    uid_t uid;
    char key[GC_OWNER_MAX]; /* whom quotas and ownership count for: "uid:1000", "token",
                               "addr:192.0.2.7", "config" */
};

/*
 * gc_caller_from_peer: the caller of a request that came from a peer whose uid is
 * known (uid_known) or not, from address addr ("unix" or numeric), with (bearer_ok)
 * or without the bearer token, to a daemon running as daemon_uid.
 */
void gc_caller_from_peer(bool uid_known, uid_t uid, const char *addr, bool bearer_ok,
                         uid_t daemon_uid, struct gc_caller *ret);

/* A trusted caller with key (the config file: "config"; the journal: whoever the
 * record names). */
void gc_caller_trusted(const char *key, struct gc_caller *ret);

/*
 * gc_caller_check_pid: may caller name pid (for a lease or a resident: the
 * coordinator watches it and may signal it)? A trusted caller may name any live
 * process, others only one whose real uid is theirs. 0 with *ret_start_ticks (the
 * process's start time, which tells it from a later one with its pid);
 * GC_EINVAL when pid is gone, GC_EFORBIDDEN when it is another user's; why says so.
 */
int gc_caller_check_pid(const struct gc_caller *caller, pid_t pid, uint64_t *ret_start_ticks,
                        char *why, size_t why_len);
/* A process's owner, once read, is remembered while a pidfd says it runs (at most 128
 * processes, least recently used first out): this forgets them all. */
void gc_caller_forget_pids(void);

/* True when caller may change or end what owner registered or asked for (its own, or
 * anything for a trusted caller; "" is owned by no one but trusted callers). */
bool gc_caller_owns(const struct gc_caller *caller, const char *owner);

#endif
