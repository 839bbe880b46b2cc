/* proc.h - process liveness, as the kernel sees it. */
#ifndef GC_PROC_H
#define GC_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* True when pid exists and is not a zombie (a zombie holds no GPU memory). */
bool gc_proc_alive(pid_t pid);
/* True when pid names a process of this PID namespace, zombies included: a pid NVML
 * lists that does not is a host pid seen from a container. */
bool gc_proc_exists(pid_t pid);
/* The process's start time in clock ticks since boot (from /proc/PID/stat), or 0. */
uint64_t gc_proc_start_ticks(pid_t pid);
/* The parent pid of pid (from /proc/PID/stat); -1 if pid is gone. */
pid_t gc_proc_parent(pid_t pid);
/*
 * gc_proc_owner: the real uid of pid (the Uid line of /proc/PID/status) and its start
 * time, read so that both describe one process: the start time is read before and
 * after the uid, and a pid reused in between fails. 0, or -1 when pid is gone.
 */
int gc_proc_owner(pid_t pid, uid_t *ret_uid, uint64_t *ret_start_ticks);
/*
 * gc_proc_signal: sends sig to pid only if it is still the process that started at
 * start_ticks (0: unknown, then any process with that pid), so that a pid reused by
 * another process after ours exited is never signalled. The check and the signal go
 * through one pidfd, which keeps naming the process it was opened for. 0, or -1 with
 * errno (ESRCH: gone or reused).
 */
int gc_proc_signal(pid_t pid, uint64_t start_ticks, int sig);
/* A pidfd for pid (readable once it exits), or -1 with errno set. */
int gc_pidfd_open(pid_t pid);

#endif
