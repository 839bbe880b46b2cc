/*
 * verify.h - whether NVML's readings show that a resident's step happened: an
 * unload freed what it should, a reload took it back. A resident's word is never
 * taken for memory.
 *
 * Pure: judged over the ledger's last snapshot. Per process where NVML's list can
 * be attributed; where it cannot (device attribution: a container without the
 * host's PID namespace) by the GPU's total - free, corrected for what everything
 * else on the GPU stopped or started declaring meanwhile (a device mark taken
 * before the step and compared after it).
 */
#ifndef GC_VERIFY_H
#define GC_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "coord/ledger.h"

/* A step counts as verified once this share of its bytes shows in NVML. */
#define GC_VERIFY_SHARE 0.9

/* What a step is verified against, fixed when it starts. */
struct gc_verify {
    unsigned gpu;
    pid_t pid;             /* 0: none (device-level only) */
    uint64_t usage_before; /* its NVML usage when the step started */
    uint64_t expected;     /* bytes it should free (unload) or take (reload); 0: unknown */
    /* The device mark: the GPU's use, and what everything but the resident declares
     * on it (other residents' bytes, granted leases'). */
    uint64_t mark_used, mark_others;
};

/* Takes the device mark for resident name on gpu now (name may be absent). */
void gc_verify_mark(const struct gc_ledger *ledger, unsigned gpu, const char *name,
                    struct gc_verify *v);
/* True when the GPU's attribution is by device (its list cannot be attributed). */
bool gc_verify_by_device(const struct gc_ledger *ledger, unsigned gpu);

/*
 * Bytes the GPU gave back since the mark, less what others stopped declaring
 * meanwhile (a lease released, another resident verified unloaded: their memory
 * left too). Others that grew are not credited: a lease granted may not have
 * allocated yet. The rule's limit: a foreign process freeing memory at the same
 * moment looks like ours (and one allocating hides ours until it stops).
 */
uint64_t gc_verify_device_freed(const struct gc_ledger *ledger, const char *name,
                                const struct gc_verify *v);
/* Bytes the GPU took since the mark, less what others started declaring meanwhile. */
uint64_t gc_verify_device_taken(const struct gc_ledger *ledger, const char *name,
                                const struct gc_verify *v);

/* Has the unload freed what it should? *ret_freed gets what NVML shows freed. */
bool gc_verify_unloaded(const struct gc_ledger *ledger, const char *name, const struct gc_verify *v,
                        uint64_t *ret_freed);
/* Has the reload taken its bytes back? */
bool gc_verify_reloaded(const struct gc_ledger *ledger, const char *name,
                        const struct gc_verify *v);

#endif
