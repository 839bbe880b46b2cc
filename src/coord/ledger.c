/* ledger.c - GPUs, residents, leases and the accounting over them (pure). */
#include "coord/ledger.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* Allocations left before they fail (tests), or -1. */
static int alloc_fail_after = -1;

void gc_ledger_fail_allocs_after(int after)
{
    alloc_fail_after = after;
}

/* realloc, unless a test has made allocations fail. */
static void *ledger_realloc(void *ptr, size_t bytes)
{
    if (alloc_fail_after == 0)
        return NULL;
    if (alloc_fail_after > 0)
        alloc_fail_after--;
    return realloc(ptr, bytes);
}

void gc_ledger_init(struct gc_ledger *ledger, const struct gc_ledger_config *config)
{
    memset(ledger, 0, sizeof(*ledger));
    ledger->config = *config;
    ledger->next_seq = 1;
    ledger->next_id = 1;
}

void gc_ledger_free(struct gc_ledger *ledger)
{
    struct gc_ledger_config config;

    if (ledger == NULL)
        return;
    for (unsigned i = 0; i < ledger->nleases; i++)
        free(ledger->leases[i]);
    for (unsigned i = 0; i < GC_LEASE_HISTORY; i++)
        free(ledger->history[i]);
    for (unsigned i = 0; i < GC_GPUS_MAX; i++)
        free(ledger->gpus[i].procs);
    free(ledger->leases);
    free(ledger->scratch_order);
    free(ledger->scratch_refused);
    free(ledger->scratch_owners);
    config = ledger->config;
    gc_ledger_init(ledger, &config);
}

/*
 * Makes room for want active leases in the table and the scratch space (and for the
 * residents' share of the scratch space, which the first call allocates), doubling
 * it. GC_ELIMIT past GC_LEASES_MAX, GC_ENOMEM when an allocation fails: the room is
 * then what it was (arrays already grown stay so, unused), nothing else changes.
 */
static int ledger_reserve(struct gc_ledger *ledger, unsigned want)
{
    unsigned cap = ledger->leases_cap;
    void *p;

    if (want > GC_LEASES_MAX)
        return GC_ELIMIT;
    if (want <= cap && ledger->scratch_owners != NULL)
        return 0;
    cap = cap < 8 ? 8 : cap;
    while (cap < want)
        cap *= 2;
    if (cap > GC_LEASES_MAX)
        cap = GC_LEASES_MAX;
    /* Each array is replaced as soon as it has grown (realloc freed the old one);
     * leases_cap says how much all of them hold. */
    p = ledger_realloc(ledger->leases, cap * sizeof(*ledger->leases));
    if (p == NULL)
        return GC_ENOMEM;
    ledger->leases = p;
    p = ledger_realloc(ledger->scratch_order, cap * sizeof(*ledger->scratch_order));
    if (p == NULL)
        return GC_ENOMEM;
    ledger->scratch_order = p;
    p = ledger_realloc(ledger->scratch_refused, cap * sizeof(*ledger->scratch_refused));
    if (p == NULL)
        return GC_ENOMEM;
    ledger->scratch_refused = p;
    p = ledger_realloc(ledger->scratch_owners,
                       (GC_RESIDENTS_MAX + cap) * sizeof(*ledger->scratch_owners));
    if (p == NULL)
        return GC_ENOMEM;
    ledger->scratch_owners = p;
    ledger->leases_cap = cap;
    return 0;
}

/* Room for one more active lease and the struct for it (zeroed), or an error as
 * ledger_reserve's, with nothing changed. The caller fills it and calls lease_insert. */
static int lease_alloc(struct gc_ledger *ledger, struct gc_lease **ret)
{
    struct gc_lease *l;
    int rc = ledger_reserve(ledger, ledger->nleases + 1);

    if (rc < 0)
        return rc;
    l = ledger_realloc(NULL, sizeof(*l));
    if (l == NULL)
        return GC_ENOMEM;
    memset(l, 0, sizeof(*l));
    *ret = l;
    return 0;
}

/* Appends l to the active leases (room reserved by lease_alloc). */
static void lease_insert(struct gc_ledger *ledger, struct gc_lease *l)
{
    l->in_use = true;
    l->slot = ledger->nleases;
    ledger->leases[ledger->nleases++] = l;
}

int gc_ledger_add_gpu(struct gc_ledger *ledger, const char *uuid, const char *name,
                      uint64_t total_bytes, uint64_t budget_bytes, uint64_t reserve_bytes)
{
    struct gc_gpu *g;

    if (ledger->ngpus >= GC_GPUS_MAX)
        return GC_ELIMIT;
    g = &ledger->gpus[ledger->ngpus];
    free(g->procs);
    memset(g, 0, sizeof(*g));
    g->index = ledger->ngpus;
    snprintf(g->uuid, sizeof(g->uuid), "%s", uuid);
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->total_bytes = total_bytes;
    g->budget_bytes = budget_bytes;
    g->reserve_bytes = reserve_bytes;
    g->free_bytes = total_bytes;
    g->attribution = GC_ATTR_PROCESS;
    g->attribution_why = "no process listed yet";
    ledger->ngpus++;
    return 0;
}

bool gc_ledger_set_snapshot(struct gc_ledger *ledger, unsigned gpu, uint64_t used_bytes,
                            uint64_t free_bytes, const struct gc_snapshot_proc *procs,
                            unsigned nprocs, int64_t taken_ms)
{
    struct gc_gpu *g = &ledger->gpus[gpu];

    if (taken_ms < g->snapshot_ms)
        return false;
    if (nprocs > GC_SNAPSHOT_PROCS_MAX)
        nprocs = GC_SNAPSHOT_PROCS_MAX;
    if (nprocs > g->procs_cap) {
        /* Grow to the longest list read so far, with some slack for a list that
         * changes by a process or two; when that fails, keep what fits. */
        unsigned cap = nprocs < GC_SNAPSHOT_PROCS_MAX - 8 ? nprocs + 8 : GC_SNAPSHOT_PROCS_MAX;
        struct gc_snapshot_proc *p = ledger_realloc(g->procs, cap * sizeof(*p));
        if (p != NULL) {
            g->procs = p;
            g->procs_cap = cap;
        } else {
            nprocs = g->procs_cap;
        }
    }
    g->used_bytes = used_bytes;
    g->free_bytes = free_bytes;
    g->nprocs = nprocs;
    if (nprocs > 0)
        memcpy(g->procs, procs, nprocs * sizeof(*procs));
    g->snapshot_ms = taken_ms;
    g->attribution = gc_ledger_attribution_detect(ledger, gpu, g->attribution, &g->attribution_why);
    return true;
}

/* A loaded resident with a pid on gpu whose bytes the GPU's use could hold: NVML
 * should list it (or a process of its). */
static bool resident_should_show(const struct gc_ledger *ledger, unsigned gpu)
{
    const struct gc_gpu *g = &ledger->gpus[gpu];

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && r->gpu == gpu && r->pid > 0 && r->state == GC_RES_LOADED && r->bytes > 0 &&
            g->used_bytes >= r->bytes)
            return true;
    }
    return false;
}

enum gc_attribution gc_ledger_attribution_detect(const struct gc_ledger *ledger, unsigned gpu,
                                                 enum gc_attribution current, const char **ret_why)
{
    const struct gc_gpu *g = &ledger->gpus[gpu];
    unsigned unknown = 0, zero = 0, absent = 0;

    for (unsigned i = 0; i < g->nprocs; i++) {
        unknown += g->procs[i].used_bytes == UINT64_MAX;
        zero += g->procs[i].used_bytes == 0;
        absent += g->procs[i].absent;
    }
    if (g->nprocs == 0) {
        /* An empty list proves nothing, unless something of ours should be on it. */
        if (resident_should_show(ledger, gpu)) {
            *ret_why = "NVML lists no process, yet a loaded resident's memory is in use";
            return GC_ATTR_DEVICE;
        }
        if (*ret_why == NULL)
            *ret_why = "no process listed";
        return current;
    }
    if (unknown > 0) {
        *ret_why = "NVML gives no per-process usage";
        return GC_ATTR_DEVICE;
    }
    /* A process with a context always uses some memory: 0 for all means unknown. */
    if (zero == g->nprocs && g->used_bytes > 0) {
        *ret_why = "NVML reports 0 bytes for every process";
        return GC_ATTR_DEVICE;
    }
    if (absent == g->nprocs) {
        *ret_why = "no pid NVML lists exists in this PID namespace";
        return GC_ATTR_DEVICE;
    }
    *ret_why = "NVML lists processes of this PID namespace with their usage";
    return GC_ATTR_PROCESS;
}

const char *gc_attribution_name(enum gc_attribution attribution)
{
    return attribution == GC_ATTR_DEVICE ? "device" : "process";
}

static bool pid_is_granted_holder(const struct gc_ledger *ledger, unsigned gpu, pid_t pid)
{
    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *l = ledger->leases[i];
        if (l->state == GC_LEASE_GRANTED && l->kind == GC_KIND_HOLDER && l->gpu == (int)gpu &&
            l->pid == pid)
            return true;
    }
    return false;
}

static bool pid_is_resident(const struct gc_ledger *ledger, unsigned gpu, pid_t pid)
{
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && r->gpu == gpu && r->pid == pid)
            return true;
    }
    return false;
}

static bool pid_registered(const struct gc_ledger *ledger, unsigned gpu, pid_t pid)
{
    return pid > 0 &&
           (pid_is_resident(ledger, gpu, pid) || pid_is_granted_holder(ledger, gpu, pid));
}

/* The resident or holder pid a listed process counts for, or 0 (foreign). */
static pid_t proc_owner(const struct gc_ledger *ledger, unsigned gpu,
                        const struct gc_snapshot_proc *p)
{
    if (pid_registered(ledger, gpu, (pid_t)p->pid))
        return (pid_t)p->pid;
    for (unsigned k = 0; k < GC_CHAIN_MAX && p->chain[k] != 0; k++) {
        if (pid_registered(ledger, gpu, (pid_t)p->chain[k]))
            return (pid_t)p->chain[k];
    }
    return 0;
}

pid_t gc_ledger_proc_owner(const struct gc_ledger *ledger, unsigned gpu,
                           const struct gc_snapshot_proc *proc)
{
    return proc_owner(ledger, gpu, proc);
}

uint64_t gc_ledger_proc_usage(const struct gc_ledger *ledger, unsigned gpu, pid_t pid)
{
    const struct gc_gpu *g = &ledger->gpus[gpu];
    uint64_t sum = 0;

    if (pid <= 0 || g->attribution == GC_ATTR_DEVICE)
        return 0;
    for (unsigned i = 0; i < g->nprocs; i++) {
        const struct gc_snapshot_proc *p = &g->procs[i];
        if (p->used_bytes == UINT64_MAX)
            continue;
        /* Itself always; a descendant when pid is its nearest registered ancestor. */
        if (p->pid == (uint32_t)pid || proc_owner(ledger, gpu, p) == pid)
            sum += p->used_bytes;
    }
    return sum;
}

unsigned gc_resident_nlevels(const struct gc_resident *r)
{
    return r->nlevels >= 2 && r->nlevels <= GC_LEVELS_MAX ? r->nlevels : 2;
}

unsigned gc_resident_level(const struct gc_resident *r)
{
    unsigned last = gc_resident_nlevels(r) - 1;

    switch (r->state) {
    case GC_RES_LOADED:
        return 0;
    case GC_RES_UNLOADING:
        return r->level < last ? r->level : last;
    case GC_RES_UNLOADED:
    case GC_RES_RELOADING:
        /* Level 0 is never an unloaded resident's: it was unloaded all the way. */
        return r->level > 0 && r->level < last ? r->level : last;
    default:
        return last;
    }
}

uint64_t gc_resident_level_bytes(const struct gc_resident *r, unsigned level)
{
    if (level == 0)
        return r->bytes;
    if (r->nlevels < 2 || r->nlevels > GC_LEVELS_MAX || level >= r->nlevels)
        return 0;
    return r->levels[level].bytes;
}

const char *gc_resident_level_name(const struct gc_resident *r, unsigned level)
{
    if (r->nlevels < 2 || r->nlevels > GC_LEVELS_MAX)
        return level == 0 ? "loaded" : "off";
    return r->levels[level < r->nlevels ? level : r->nlevels - 1].name;
}

int gc_resident_level_find(const struct gc_resident *r, const char *name)
{
    for (unsigned i = 0; i < gc_resident_nlevels(r); i++) {
        if (strcmp(gc_resident_level_name(r, i), name) == 0)
            return (int)i;
    }
    return -1;
}

uint64_t gc_resident_missing_bytes(const struct gc_resident *r)
{
    uint64_t held = gc_resident_level_bytes(r, gc_resident_level(r));

    return r->bytes > held ? r->bytes - held : 0;
}

/* Bytes r holds above its floor at its emptiest level (0 for most). */
static uint64_t resident_last_bytes(const struct gc_resident *r)
{
    return gc_resident_level_bytes(r, gc_resident_nlevels(r) - 1);
}

/* An unload all the way frees what the resident counts for above its floor and its
 * emptiest level: its bytes when they are known (it counts at least that much, see
 * resident_term_with), else its usage. */
static uint64_t resident_freeable_with(const struct gc_resident *r, uint64_t usage)
{
    uint64_t last = resident_last_bytes(r);

    if (r->pid <= 0 || r->bytes > 0)
        return r->bytes > last ? r->bytes - last : 0;
    return usage;
}

uint64_t gc_ledger_resident_freeable(const struct gc_ledger *ledger, const struct gc_resident *r)
{
    return resident_freeable_with(r, r->pid > 0 ? gc_ledger_proc_usage(ledger, r->gpu, r->pid) : 0);
}

static bool resident_holds_memory(enum gc_resident_state state)
{
    return state == GC_RES_LOADED || state == GC_RES_UNLOADING || state == GC_RES_RELOADING;
}

/*
 * What a resident counts for, given the usage of the processes that count for it.
 * From the moment it starts to reload until it is verified unloaded it counts at
 * least its floor plus its bytes, whatever NVML shows: a slow loader (or one whose
 * reload verification gave up) takes its memory later, and room leased out
 * meanwhile would be allocated twice. Unloaded to a level that keeps some bytes, it
 * counts at least its floor plus those.
 */
static uint64_t resident_term_with(const struct gc_resident *r, uint64_t usage)
{
    uint64_t claim, kept = 0;

    if (r->state == GC_RES_UNLOADED)
        kept = gc_resident_level_bytes(r, gc_resident_level(r));
    if (r->pid <= 0)
        return resident_holds_memory(r->state) ? r->bytes : kept;
    if (!resident_holds_memory(r->state)) {
        claim = r->floor_bytes + kept;
        return kept > 0 && claim > usage ? claim : usage;
    }
    /* A reload counts from what it held when it started (its floor and the level it
     * was at, or more) plus what it brings back. */
    if (r->state == GC_RES_RELOADING)
        claim = r->usage_before + gc_resident_missing_bytes(r);
    else
        claim = r->floor_bytes + r->bytes;
    return claim > usage ? claim : usage;
}

/* What a resident counts for in device attribution: its declaration, as one without a
 * pid (its bytes, or what the level it was unloaded to keeps). Its context and any
 * floor are in the unexplained rest of the device's use. */
static uint64_t resident_term_device(const struct gc_resident *r)
{
    if (resident_holds_memory(r->state))
        return r->bytes;
    return r->state == GC_RES_UNLOADED ? gc_resident_level_bytes(r, gc_resident_level(r)) : 0;
}

uint64_t gc_ledger_resident_counted(const struct gc_ledger *ledger, const struct gc_resident *r)
{
    if (ledger->gpus[r->gpu].attribution == GC_ATTR_DEVICE)
        return resident_term_device(r);
    return resident_term_with(r, r->pid > 0 ? gc_ledger_proc_usage(ledger, r->gpu, r->pid) : 0);
}

static int owner_cmp(const void *a, const void *b)
{
    pid_t x = ((const struct gc_owner_entry *)a)->pid, y = ((const struct gc_owner_entry *)b)->pid;
    return x < y ? -1 : x > y;
}

static struct gc_owner_entry *owner_find(struct gc_owner_entry *e, unsigned n, pid_t pid)
{
    struct gc_owner_entry key = {.pid = pid};

    return pid > 0 && n > 0 ? bsearch(&key, e, n, sizeof(*e), owner_cmp) : NULL;
}

/*
 * The registered pids of a GPU (residents, granted holders), sorted, each with the
 * usage of the processes that count for it (itself or the nearest registered
 * ancestor) and its granted leases' bytes. One pass over the snapshot: accounting
 * stays linear in processes with hundreds of leases. Returns how many; *ret_foreign
 * gets the usage of processes that count for nobody.
 */
static unsigned owners_build(const struct gc_ledger *ledger, unsigned gpu, struct gc_owner_entry *e,
                             uint64_t *ret_foreign)
{
    const struct gc_gpu *g = &ledger->gpus[gpu];
    unsigned n = 0, m = 0;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && r->gpu == gpu && r->pid > 0)
            e[n++] = (struct gc_owner_entry){.pid = r->pid};
    }
    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *l = ledger->leases[i];
        if (l->state == GC_LEASE_GRANTED && l->kind == GC_KIND_HOLDER && l->gpu == (int)gpu &&
            l->pid > 0)
            e[n++] = (struct gc_owner_entry){.pid = l->pid, .leased = l->bytes};
    }
    if (n > 1) /* e is NULL while the ledger has held no resident or lease */
        qsort(e, n, sizeof(*e), owner_cmp);
    for (unsigned i = 0; i < n; i++) { /* merge duplicates */
        if (m > 0 && e[m - 1].pid == e[i].pid)
            e[m - 1].leased += e[i].leased;
        else
            e[m++] = e[i];
    }
    *ret_foreign = 0;
    if (g->attribution == GC_ATTR_DEVICE)
        return m; /* the list names no one: nothing counts for anybody */
    for (unsigned i = 0; i < g->nprocs; i++) {
        const struct gc_snapshot_proc *p = &g->procs[i];
        uint64_t used = p->used_bytes == UINT64_MAX ? 0 : p->used_bytes;
        struct gc_owner_entry *o = owner_find(e, m, (pid_t)p->pid);
        for (unsigned k = 0; o == NULL && k < GC_CHAIN_MAX && p->chain[k] != 0; k++)
            o = owner_find(e, m, (pid_t)p->chain[k]);
        if (o != NULL)
            o->usage += used;
        else
            *ret_foreign += used;
    }
    return m;
}

void gc_ledger_account(const struct gc_ledger *ledger, unsigned gpu,
                       const struct gc_lease *for_lease, struct gc_account *ret)
{
    const struct gc_gpu *g = &ledger->gpus[gpu];
    /* Scratch: callers serialise calls on one ledger (see struct gc_ledger). */
    struct gc_owner_entry *owners = ((struct gc_ledger *)ledger)->scratch_owners;
    bool device = g->attribution == GC_ATTR_DEVICE;
    uint64_t known = 0;
    unsigned nowners;
    int64_t headroom;

    memset(ret, 0, sizeof(*ret));
    ret->cap =
        g->budget_bytes && g->budget_bytes < g->total_bytes ? g->budget_bytes : g->total_bytes;
    ret->reserve = g->reserve_bytes;

    if (!device) {
        for (unsigned i = 0; i < g->nprocs; i++)
            known += g->procs[i].used_bytes == UINT64_MAX ? 0 : g->procs[i].used_bytes;
        ret->unattributed = g->used_bytes > known ? g->used_bytes - known : 0;
    }
    nowners = owners_build(ledger, gpu, owners, &ret->foreign);

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        const struct gc_resident *r = &ledger->residents[i];
        const struct gc_owner_entry *o;
        uint64_t term, freeable, usage;
        if (!r->in_use || r->gpu != gpu)
            continue;
        o = owner_find(owners, nowners, r->pid);
        usage = o ? o->usage : 0;
        term = device ? resident_term_device(r) : resident_term_with(r, usage);
        ret->residents += term;
        if (for_lease != NULL && r->priority < for_lease->evict_priority) {
            uint64_t stays = r->floor_bytes + resident_last_bytes(r);
            if (r->state == GC_RES_RELOADING)
                freeable = resident_freeable_with(r, 0); /* evictable once loaded */
            else if (resident_holds_memory(r->state))
                freeable = resident_freeable_with(r, usage);
            else /* unloaded, yet NVML may not show it yet: only its floor and emptiest
                    level stay */
                freeable = term > stays ? term - stays : 0;
            ret->fixed += term > freeable ? term - freeable : 0;
        } else {
            ret->fixed += term;
        }
    }

    /* Granted holder leases: per pid, max(its leases' bytes, what it uses). */
    for (unsigned i = 0; i < nowners; i++) {
        if (owners[i].leased > 0)
            ret->leases += owners[i].leased > owners[i].usage ? owners[i].leased : owners[i].usage;
    }
    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *l = ledger->leases[i];
        if (l->gpu != (int)gpu)
            continue;
        if (l->state == GC_LEASE_PREPARING)
            ret->claims += l->bytes;
        else if (l->state == GC_LEASE_GRANTED && l->kind == GC_KIND_HOLDER && l->pid <= 0)
            ret->leases += l->bytes; /* no pid: its memory cannot be seen, count it all */
    }

    /* A growth can never take its own lease's bytes: they are fixed for it. */
    if (for_lease != NULL && for_lease->kind == GC_KIND_GROWTH) {
        for (unsigned i = 0; i < ledger->nleases; i++) {
            if (strcmp(ledger->leases[i]->id, for_lease->parent) == 0)
                ret->fixed += ledger->leases[i]->bytes;
        }
    }
    if (device) {
        /* What declarations do not explain of the device's use: foreign processes,
         * contexts, memory the driver has yet to give back; none can be told apart.
         * Never negative: a declaration not yet allocated still counts in full. */
        uint64_t declared = ret->residents + ret->leases;
        ret->unattributed = g->used_bytes > declared ? g->used_bytes - declared : 0;
    }
    ret->committed = ret->unattributed + ret->foreign + ret->residents + ret->leases;
    /* Unattributed use is not fixed: it may be memory the driver has not yet given
     * back (a process just exited or freed), so a lease waits rather than fail. */
    ret->fixed += ret->foreign;
    headroom =
        (int64_t)ret->cap - (int64_t)ret->reserve - (int64_t)ret->committed - (int64_t)ret->claims;
    ret->headroom = headroom;
}

struct gc_resident *gc_ledger_resident_find(struct gc_ledger *ledger, const char *name)
{
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        if (ledger->residents[i].in_use && strcmp(ledger->residents[i].name, name) == 0)
            return &ledger->residents[i];
    }
    return NULL;
}

struct gc_resident *gc_ledger_resident_alloc(struct gc_ledger *ledger)
{
    /* The accounting's scratch space has room for every resident once allocated. */
    if (ledger_reserve(ledger, ledger->nleases) < 0)
        return NULL;
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        if (!ledger->residents[i].in_use) {
            memset(&ledger->residents[i], 0, sizeof(ledger->residents[i]));
            ledger->residents[i].in_use = true;
            return &ledger->residents[i];
        }
    }
    return NULL;
}

void gc_ledger_resident_remove(struct gc_ledger *ledger, struct gc_resident *resident)
{
    (void)ledger;
    memset(resident, 0, sizeof(*resident));
}

static bool lease_active(enum gc_lease_state state)
{
    return state == GC_LEASE_QUEUED || state == GC_LEASE_PREPARING || state == GC_LEASE_GRANTED;
}

int gc_ledger_lease_new(struct gc_ledger *ledger, enum gc_lease_kind kind, const char *holder,
                        pid_t pid, int gpu_req, uint64_t bytes, int priority, double ttl_s,
                        int64_t now_ms, struct gc_lease **ret_lease)
{
    return gc_ledger_lease_new_owned(ledger, kind, "", holder, pid, gpu_req, bytes, priority, ttl_s,
                                     now_ms, ret_lease);
}

int gc_ledger_lease_new_owned(struct gc_ledger *ledger, enum gc_lease_kind kind, const char *owner,
                              const char *holder, pid_t pid, int gpu_req, uint64_t bytes,
                              int priority, double ttl_s, int64_t now_ms,
                              struct gc_lease **ret_lease)
{
    struct gc_lease *l;
    unsigned queued = 0, same_holder = 0, same_owner = 0;

    int rc;

    if (ledger->nleases >= GC_LEASES_MAX || ledger->next_id > GC_LEASE_ID_LAST)
        return GC_ELIMIT;
    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *o = ledger->leases[i];
        if (o->state == GC_LEASE_QUEUED || o->state == GC_LEASE_PREPARING)
            queued++;
        if (o->kind != kind || strcmp(o->owner, owner) != 0)
            continue;
        same_owner++;
        if (strcmp(o->holder, holder) == 0)
            same_holder++;
    }
    if (ledger->config.queue_max && queued >= ledger->config.queue_max)
        return GC_ELIMIT;
    if (kind == GC_KIND_HOLDER && ledger->config.leases_per_holder_max &&
        same_holder >= ledger->config.leases_per_holder_max)
        return GC_ELIMIT;
    if (kind == GC_KIND_HOLDER && owner[0] != '\0' && ledger->config.leases_per_owner_max &&
        same_owner >= ledger->config.leases_per_owner_max)
        return GC_ELIMIT;

    rc = lease_alloc(ledger, &l);
    if (rc < 0)
        return rc;
    snprintf(l->id, sizeof(l->id), "%s-%llu",
             kind == GC_KIND_DEMAND   ? "demand"
             : kind == GC_KIND_GROWTH ? "growth"
                                      : "lease",
             (unsigned long long)ledger->next_id++);
    l->seq = ledger->next_seq++;
    l->kind = kind;
    snprintf(l->holder, sizeof(l->holder), "%s", holder);
    snprintf(l->owner, sizeof(l->owner), "%s", owner);
    l->pid = pid;
    l->gpu_req = gpu_req;
    l->gpu = -1;
    l->bytes = bytes;
    l->priority = priority;
    l->evict_priority = priority;
    l->ttl_s = ttl_s;
    l->state = GC_LEASE_QUEUED;
    l->created_ms = now_ms;
    l->heartbeat_ms = now_ms;
    lease_insert(ledger, l);
    *ret_lease = l;
    return 0;
}

int gc_ledger_lease_adopt(struct gc_ledger *ledger, const struct gc_lease *lease)
{
    const char *dash = strrchr(lease->id, '-');
    unsigned long long n = dash ? strtoull(dash + 1, NULL, 10) : 0;
    struct gc_lease *l;
    int rc;

    if (ledger->nleases >= GC_LEASES_MAX)
        return GC_ELIMIT;
    if (gc_ledger_lease_find(ledger, lease->id) != NULL)
        return GC_ECONFLICT;
    rc = lease_alloc(ledger, &l);
    if (rc < 0)
        return rc;
    *l = *lease;
    lease_insert(ledger, l);
    if (lease->seq >= ledger->next_seq)
        ledger->next_seq = lease->seq + 1;
    if (n > GC_LEASE_ID_LAST)
        n = GC_LEASE_ID_LAST; /* ids past the last one: none is left */
    if (n >= ledger->next_id)
        ledger->next_id = n + 1;
    return 0;
}

struct gc_lease *gc_ledger_lease_find(struct gc_ledger *ledger, const char *id)
{
    for (unsigned i = 0; i < ledger->nleases; i++) {
        if (strcmp(ledger->leases[i]->id, id) == 0)
            return ledger->leases[i];
    }
    return NULL;
}

const struct gc_lease *gc_ledger_lease_lookup(const struct gc_ledger *ledger, const char *id)
{
    for (unsigned i = 0; i < ledger->nleases; i++) {
        if (strcmp(ledger->leases[i]->id, id) == 0)
            return ledger->leases[i];
    }
    for (unsigned i = 0; i < GC_LEASE_HISTORY; i++) {
        if (ledger->history[i] != NULL && strcmp(ledger->history[i]->id, id) == 0)
            return ledger->history[i];
    }
    return NULL;
}

const struct gc_lease *gc_ledger_lease_end(struct gc_ledger *ledger, struct gc_lease *lease,
                                           enum gc_lease_state state, int error, const char *reason,
                                           int64_t now_ms)
{
    struct gc_lease **h = &ledger->history[ledger->history_next];
    unsigned index = lease->slot;

    assert(index < ledger->nleases && ledger->leases[index] == lease);
    /* Keep active leases packed: the last one fills the hole. */
    ledger->nleases--;
    if (index != ledger->nleases) {
        ledger->leases[index] = ledger->leases[ledger->nleases];
        ledger->leases[index]->slot = index;
    }
    ledger->leases[ledger->nleases] = NULL;
    /* The lease itself moves to the history, in place of the oldest it remembers. */
    ledger->history_next = (ledger->history_next + 1) % GC_LEASE_HISTORY;
    free(*h);
    *h = lease;
    lease->slot = 0;
    lease->state = state;
    lease->error = error;
    lease->ended_ms = now_ms;
    if (reason != NULL)
        snprintf(lease->reason, sizeof(lease->reason), "%s", reason);
    return lease;
}

static bool lease_before(const struct gc_lease *a, const struct gc_lease *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority;
    return a->seq < b->seq;
}

unsigned gc_ledger_queue_position(const struct gc_ledger *ledger, const struct gc_lease *lease)
{
    unsigned ahead = 0;

    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *o = ledger->leases[i];
        if (o != lease && (o->state == GC_LEASE_QUEUED || o->state == GC_LEASE_PREPARING) &&
            lease_before(o, lease))
            ahead++;
    }
    return ahead;
}

static int queue_cmp(const void *a, const void *b)
{
    const struct gc_lease *x = *(const struct gc_lease *const *)a;
    const struct gc_lease *y = *(const struct gc_lease *const *)b;

    return lease_before(x, y) ? -1 : lease_before(y, x) ? 1 : 0;
}

unsigned gc_ledger_queue_order(const struct gc_ledger *ledger, const struct gc_lease **ret)
{
    unsigned n = 0;

    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *l = ledger->leases[i];
        if (l->state == GC_LEASE_QUEUED || l->state == GC_LEASE_PREPARING)
            ret[n++] = l;
    }
    qsort(ret, n, sizeof(*ret), queue_cmp);
    return n;
}

struct gc_lease *gc_ledger_demand_find(struct gc_ledger *ledger, const char *name)
{
    for (unsigned i = 0; i < ledger->nleases; i++) {
        struct gc_lease *l = ledger->leases[i];
        if (l->kind == GC_KIND_DEMAND && lease_active(l->state) && strcmp(l->holder, name) == 0)
            return l;
    }
    return NULL;
}

static const char *const resident_state_names[] = {"loaded",    "unloading", "unloaded",
                                                   "reloading", "failed",    "gone"};
static const char *const lease_state_names[] = {"queued",   "preparing", "granted",
                                                "released", "expired",   "failed"};
static const char *const restore_names[] = {"auto", "demand", "never"};
static const char *const on_stuck_names[] = {"fail", "kill"};

const char *gc_resident_state_name(enum gc_resident_state state)
{
    return resident_state_names[state];
}

const char *gc_lease_state_name(enum gc_lease_state state)
{
    return lease_state_names[state];
}

const char *gc_restore_name(enum gc_restore_policy policy)
{
    return restore_names[policy];
}

const char *gc_on_stuck_name(enum gc_on_stuck on_stuck)
{
    return on_stuck_names[on_stuck];
}

static int name_lookup(const char *const *names, int n, const char *name, int *ret)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            *ret = i;
            return 0;
        }
    }
    return GC_EINVAL;
}

#define NAMES_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

int gc_resident_state_parse(const char *name, enum gc_resident_state *ret)
{
    int v, rc = name_lookup(resident_state_names, NAMES_COUNT(resident_state_names), name, &v);
    if (rc == 0)
        *ret = (enum gc_resident_state)v;
    return rc;
}

int gc_lease_state_parse(const char *name, enum gc_lease_state *ret)
{
    int v, rc = name_lookup(lease_state_names, NAMES_COUNT(lease_state_names), name, &v);
    if (rc == 0)
        *ret = (enum gc_lease_state)v;
    return rc;
}

int gc_restore_parse(const char *name, enum gc_restore_policy *ret)
{
    int v, rc = name_lookup(restore_names, NAMES_COUNT(restore_names), name, &v);
    if (rc == 0)
        *ret = (enum gc_restore_policy)v;
    return rc;
}

int gc_on_stuck_parse(const char *name, enum gc_on_stuck *ret)
{
    int v, rc = name_lookup(on_stuck_names, NAMES_COUNT(on_stuck_names), name, &v);
    if (rc == 0)
        *ret = (enum gc_on_stuck)v;
    return rc;
}
