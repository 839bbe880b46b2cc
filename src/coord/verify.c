/* verify.c - NVML's readings judged: did a step free or take its bytes? */
#include "coord/verify.h"

#include <stddef.h>

void gc_verify_mark(const struct gc_ledger *ledger, unsigned gpu, const char *name,
                    struct gc_verify *v)
{
    const struct gc_resident *r = gc_ledger_resident_find((struct gc_ledger *)ledger, name);
    struct gc_account acct;
    uint64_t self = r != NULL ? gc_ledger_resident_counted(ledger, r) : 0;

    gc_ledger_account(ledger, gpu, NULL, &acct);
    v->mark_used = ledger->gpus[gpu].used_bytes;
    v->mark_others = acct.residents + acct.leases > self ? acct.residents + acct.leases - self : 0;
}

bool gc_verify_by_device(const struct gc_ledger *ledger, unsigned gpu)
{
    return ledger->gpus[gpu].attribution == GC_ATTR_DEVICE;
}

uint64_t gc_verify_device_freed(const struct gc_ledger *ledger, const char *name,
                                const struct gc_verify *v)
{
    struct gc_verify now;
    uint64_t dropped, left;

    gc_verify_mark(ledger, v->gpu, name, &now);
    dropped = v->mark_used > now.mark_used ? v->mark_used - now.mark_used : 0;
    left = v->mark_others > now.mark_others ? v->mark_others - now.mark_others : 0;
    return dropped > left ? dropped - left : 0;
}

uint64_t gc_verify_device_taken(const struct gc_ledger *ledger, const char *name,
                                const struct gc_verify *v)
{
    struct gc_verify now;
    uint64_t risen, joined;

    gc_verify_mark(ledger, v->gpu, name, &now);
    risen = now.mark_used > v->mark_used ? now.mark_used - v->mark_used : 0;
    joined = now.mark_others > v->mark_others ? now.mark_others - v->mark_others : 0;
    return risen > joined ? risen - joined : 0;
}

bool gc_verify_unloaded(const struct gc_ledger *ledger, const char *name, const struct gc_verify *v,
                        uint64_t *ret_freed)
{
    uint64_t now_usage, freed, want;

    if (v->pid > 0 && !gc_verify_by_device(ledger, v->gpu)) {
        now_usage = gc_ledger_proc_usage(ledger, v->gpu, v->pid);
        freed = v->usage_before > now_usage ? v->usage_before - now_usage : 0;
        want = v->expected ? (uint64_t)((double)v->expected * GC_VERIFY_SHARE) : 1;
        if (want > v->usage_before)
            want = v->usage_before; /* cannot free more than it held */
    } else {
        /* Only the GPU's total use can tell. */
        freed = gc_verify_device_freed(ledger, name, v);
        want = (uint64_t)((double)v->expected * GC_VERIFY_SHARE);
        if (want == 0 && v->pid > 0)
            want = 1; /* bytes unknown: something must go, "nothing seen" is not "freed" */
    }
    *ret_freed = freed;
    return freed >= want;
}

bool gc_verify_reloaded(const struct gc_ledger *ledger, const char *name, const struct gc_verify *v)
{
    uint64_t want = (uint64_t)((double)v->expected * GC_VERIFY_SHARE);

    if (gc_verify_by_device(ledger, v->gpu))
        return gc_verify_device_taken(ledger, name, v) >= want;
    return gc_ledger_proc_usage(ledger, v->gpu, v->pid) >= v->usage_before + want;
}
