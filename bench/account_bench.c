/*
 * account_bench.c - cost of the scheduler's accounting (gc_ledger_account) as leases
 * and processes grow: every lease request runs it once per GPU and queued lease.
 * Baseline in the same run: an empty ledger. The process chains make every process
 * a child of a lease holder, the case `gpucoord run` creates.
 *
 *   account-bench [--reps N]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "coord/ledger.h"

static double time_account(struct gc_ledger *l, unsigned reps)
{
    struct gc_account acct;
    int64_t t0 = gc_mono_ns();
    uint64_t sink = 0;

    for (unsigned i = 0; i < reps; i++) {
        gc_ledger_account(l, 0, NULL, &acct);
        sink += acct.committed;
    }
    if (sink == 42)
        printf(" ");
    return (double)(gc_mono_ns() - t0) / reps / 1e3;
}

int main(int argc, char **argv)
{
    static const unsigned leases[] = {0, 16, 64, 256, 1024, 4096};
    struct gc_ledger_config cfg = {0};
    struct gc_ledger *l = calloc(1, sizeof(*l));
    struct gc_snapshot_proc *procs = calloc(GC_SNAPSHOT_PROCS_MAX, sizeof(*procs));
    unsigned reps = 2000;
    int opt;

    while ((opt = getopt(argc, argv, "r:")) != -1)
        reps = (unsigned)atoi(optarg);
    printf("| leases granted | processes listed | residents | µs per accounting |\n");
    printf("|---|---|---|---|\n");
    for (size_t k = 0; k < sizeof(leases) / sizeof(leases[0]); k++) {
        unsigned nl = leases[k], np = nl < GC_SNAPSHOT_PROCS_MAX ? nl : GC_SNAPSHOT_PROCS_MAX;
        gc_ledger_init(l, &cfg);
        gc_ledger_add_gpu(l, "GPU-b", "bench", 80ULL << 30, 0, 0);
        for (unsigned r = 0; r < 8; r++) {
            struct gc_resident *res = gc_ledger_resident_alloc(l);
            snprintf(res->name, sizeof(res->name), "r%u", r);
            res->pid = (pid_t)(100000 + r);
            res->bytes = 1ULL << 30;
            res->state = GC_RES_LOADED;
        }
        for (unsigned i = 0; i < nl; i++) {
            struct gc_lease *lease;
            gc_ledger_lease_new(l, GC_KIND_HOLDER, "h", (pid_t)(10000 + i), 0, 1 << 20, 100, 30, 0,
                                &lease);
            lease->state = GC_LEASE_GRANTED;
            lease->gpu = 0;
        }
        for (unsigned i = 0; i < np; i++) {
            memset(&procs[i], 0, sizeof(procs[i]));
            procs[i].pid = 50000 + i; /* a child ... */
            procs[i].used_bytes = 1 << 20;
            procs[i].chain[0] = 10000 + i; /* ... of a lease holder */
            procs[i].chain[1] = 1000;
        }
        gc_ledger_set_snapshot(l, 0, (uint64_t)np << 20, 0, procs, np, 0);
        printf("| %u | %u | 8 | %.2f |\n", nl, np, time_account(l, nl >= 1024 ? reps / 10 : reps));
        gc_ledger_free(l);
    }
    free(procs);
    free(l);
    return 0;
}
