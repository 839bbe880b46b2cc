/*
 * ancestry.h - the parents of the processes NVML lists, so that a process's memory
 * can count for the lease holder or resident that started it (`gpucoord run`'s
 * command, a server's workers). Parents are read from /proc and cached for a
 * second per pid: NVML is read on every lease request.
 */
#ifndef GC_ANCESTRY_H
#define GC_ANCESTRY_H

#include "coord/ledger.h"

/* Fills procs[i].chain (nearest ancestor first) for n processes. Thread-safe. */
void gc_ancestry_fill(struct gc_snapshot_proc *procs, unsigned n);

#endif
