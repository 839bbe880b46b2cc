/* sched.c - the scheduling rules over a ledger (pure). */
#include "coord/sched.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/size.h"
#include "coord/growth.h"

/* Priority of the demand lease created for a resident unloaded past max_unloaded. */
#define SCHED_OVERDUE_PRIORITY (INT_MAX / 2)

static struct gc_action *action_add(struct gc_actions *out, enum gc_action_kind kind,
                                    const struct gc_lease *lease, const struct gc_resident *r,
                                    unsigned gpu)
{
    struct gc_action *a;

    if (out->n >= GC_ACTIONS_MAX) {
        out->truncated = true;
        return NULL;
    }
    a = &out->items[out->n++];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->gpu = gpu;
    if (lease != NULL)
        snprintf(a->lease_id, sizeof(a->lease_id), "%s", lease->id);
    if (r != NULL)
        snprintf(a->resident, sizeof(a->resident), "%s", r->name);
    return a;
}

static bool lease_waiting(const struct gc_lease *l)
{
    return l->state == GC_LEASE_QUEUED || l->state == GC_LEASE_PREPARING;
}

static bool lease_on_gpu(const struct gc_lease *l, unsigned gpu)
{
    return l->gpu_req < 0 || l->gpu_req == (int)gpu;
}

bool gc_sched_never_fits(const struct gc_ledger *ledger, const struct gc_lease *lease, unsigned gpu,
                         char *why, size_t why_len)
{
    struct gc_account acct;
    uint64_t avail;
    char b[GC_SIZE_BUF], c[GC_SIZE_BUF], r[GC_SIZE_BUF], f[GC_SIZE_BUF], a[GC_SIZE_BUF];

    gc_ledger_account(ledger, gpu, lease, &acct);
    avail = acct.cap > acct.reserve + acct.fixed ? acct.cap - acct.reserve - acct.fixed : 0;
    if (lease->bytes <= avail)
        return false;
    if (why != NULL)
        snprintf(why, why_len,
                 "%s needed but GPU %u can give at most %s: capacity %s - reserve %s - %s held "
                 "by processes and residents this request may not evict",
                 gc_size_format(lease->bytes, b, sizeof(b)), gpu,
                 gc_size_format(avail, a, sizeof(a)), gc_size_format(acct.cap, c, sizeof(c)),
                 gc_size_format(acct.reserve, r, sizeof(r)),
                 gc_size_format(acct.fixed, f, sizeof(f)));
    return true;
}

/* Granted leases named in gc_sched_room_why. */
#define ROOM_WHY_LEASES 3

void gc_sched_room_why(const struct gc_ledger *ledger, unsigned gpu, uint64_t need, char *why,
                       size_t why_len)
{
    const struct gc_lease *top[ROOM_WHY_LEASES] = {NULL};
    struct gc_account acct;
    uint64_t held = 0;
    unsigned nheld = 0;
    char n[GC_SIZE_BUF], r[GC_SIZE_BUF], h[GC_SIZE_BUF], b[GC_SIZE_BUF];
    size_t len;

    gc_ledger_account(ledger, gpu, NULL, &acct);
    for (unsigned i = 0; i < ledger->nleases; i++) {
        const struct gc_lease *l = &ledger->leases[i];
        if (l->state != GC_LEASE_GRANTED || l->kind != GC_KIND_HOLDER || l->gpu != (int)gpu)
            continue;
        held += l->bytes;
        nheld++;
        for (unsigned k = 0; k < ROOM_WHY_LEASES; k++) {
            if (top[k] == NULL || l->bytes > top[k]->bytes) {
                memmove(&top[k + 1], &top[k], (ROOM_WHY_LEASES - 1 - k) * sizeof(top[0]));
                top[k] = l;
                break;
            }
        }
    }
    snprintf(why, why_len, "%s needed on GPU %u, which has %s of room",
             gc_size_format(need, n, sizeof(n)), gpu,
             gc_size_format(acct.headroom > 0 ? (uint64_t)acct.headroom : 0, r, sizeof(r)));
    len = strlen(why);
    if (nheld > 0 && len < why_len)
        snprintf(why + len, why_len - len, ": %u granted lease%s hold%s %s", nheld,
                 nheld == 1 ? "" : "s", nheld == 1 ? "s" : "", gc_size_format(held, h, sizeof(h)));
    for (unsigned k = 0; k < ROOM_WHY_LEASES && top[k] != NULL; k++) {
        len = strlen(why);
        if (len < why_len)
            snprintf(why + len, why_len - len, "%s%s '%s' %s", k == 0 ? " (" : ", ", top[k]->id,
                     top[k]->holder, gc_size_format(top[k]->bytes, b, sizeof(b)));
    }
    len = strlen(why);
    if (top[0] != NULL && len < why_len)
        snprintf(why + len, why_len - len, "%s)", nheld > ROOM_WHY_LEASES ? ", ..." : "");
}

/* Is candidate set a cheaper than b? (bytes, then highest priority, then recency) */
struct evict_cost {
    uint64_t bytes;
    int max_priority;
    int64_t recency;
};

static bool cost_less(const struct evict_cost *a, const struct evict_cost *b)
{
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes;
    if (a->max_priority != b->max_priority)
        return a->max_priority < b->max_priority;
    return a->recency < b->recency;
}

unsigned gc_sched_choose_evictions(struct gc_ledger *ledger, const struct gc_lease *lease,
                                   unsigned gpu, uint64_t need, struct gc_resident **ret)
{
    struct gc_resident *cand[GC_RESIDENTS_MAX];
    uint64_t freeable[GC_RESIDENTS_MAX];
    struct evict_cost best = {UINT64_MAX, INT_MAX, INT64_MAX};
    uint32_t best_mask = 0;
    unsigned n = 0, nret = 0;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        if (!r->in_use || r->gpu != gpu || r->state != GC_RES_LOADED || r->busy ||
            r->priority >= lease->evict_priority)
            continue;
        if (gc_ledger_resident_freeable(ledger, r) == 0)
            continue;
        cand[n++] = r;
    }
    /* Past the exact search's reach, keep the cheapest by priority, then LRU. */
    for (unsigned i = 1; i < n; i++) {
        for (unsigned j = i; j > 0; j--) {
            struct gc_resident *x = cand[j - 1], *y = cand[j];
            if (x->priority < y->priority ||
                (x->priority == y->priority && x->last_used_ms <= y->last_used_ms))
                break;
            cand[j - 1] = y;
            cand[j] = x;
        }
    }
    if (n > GC_EVICT_MAX)
        n = GC_EVICT_MAX;
    for (unsigned i = 0; i < n; i++)
        freeable[i] = gc_ledger_resident_freeable(ledger, cand[i]);

    for (uint32_t mask = 1; mask < (1u << n); mask++) {
        struct evict_cost cost = {0, INT_MIN, 0};
        for (unsigned i = 0; i < n; i++) {
            if (!(mask & (1u << i)))
                continue;
            cost.bytes += freeable[i];
            if (cand[i]->priority > cost.max_priority)
                cost.max_priority = cand[i]->priority;
            cost.recency += cand[i]->last_used_ms;
        }
        if (cost.bytes >= need && cost_less(&cost, &best)) {
            best = cost;
            best_mask = mask;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (best_mask & (1u << i))
            ret[nret++] = cand[i];
    }
    return nret;
}

static void grant(struct gc_ledger *ledger, struct gc_lease *l, unsigned gpu, int64_t now_ms,
                  struct gc_actions *out)
{
    l->state = GC_LEASE_GRANTED;
    l->gpu = (int)gpu;
    l->granted_ms = now_ms;
    action_add(out, GC_ACT_GRANTED, l, NULL, gpu);
    if (l->kind == GC_KIND_GROWTH)
        gc_growth_merge(ledger, l);
    if (l->kind == GC_KIND_DEMAND) {
        struct gc_resident *r = gc_ledger_resident_find(ledger, l->holder);
        if (r != NULL) {
            r->state = GC_RES_RELOADING;
            r->busy = true;
            r->usage_before = gc_ledger_proc_usage(ledger, r->gpu, r->pid);
            action_add(out, GC_ACT_RELOAD, l, r, gpu);
        }
    }
}

/* A demand can be acted on only when its resident is unloaded and idle. */
static bool demand_ready(struct gc_ledger *ledger, const struct gc_lease *l)
{
    struct gc_resident *r;

    if (l->kind != GC_KIND_DEMAND)
        return true;
    r = gc_ledger_resident_find(ledger, l->holder);
    return r != NULL && r->state == GC_RES_UNLOADED && !r->busy;
}

static void expire_leases(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out)
{
    for (unsigned i = ledger->nleases; i-- > 0;) {
        struct gc_lease *l = &ledger->leases[i];
        char reason[GC_REASON_MAX];
        if (l->ttl_s <= 0 || l->kind != GC_KIND_HOLDER)
            continue;
        if (now_ms - l->heartbeat_ms <= (int64_t)(l->ttl_s * 1000.0))
            continue;
        snprintf(reason, sizeof(reason), "no heartbeat for %.1f s (ttl %.1f s)",
                 (double)(now_ms - l->heartbeat_ms) / 1000.0, l->ttl_s);
        if (action_add(out, GC_ACT_EXPIRED, l, NULL, l->gpu < 0 ? 0 : (unsigned)l->gpu) == NULL)
            return;
        gc_ledger_lease_end(ledger, l, GC_LEASE_EXPIRED, GC_ETIMEDOUT, reason, now_ms);
    }
}

static void demand_overdue(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out)
{
    if (ledger->config.max_unloaded_ms <= 0)
        return;
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        struct gc_lease *l;
        if (!r->in_use || r->state != GC_RES_UNLOADED || !r->evicted ||
            r->restore != GC_RESTORE_AUTO || r->busy)
            continue;
        if (now_ms - r->unloaded_since_ms < ledger->config.max_unloaded_ms)
            continue;
        if (gc_ledger_demand_find(ledger, r->name) != NULL)
            continue;
        if (gc_ledger_lease_new(ledger, GC_KIND_DEMAND, r->name, 0, (int)r->gpu, r->bytes,
                                SCHED_OVERDUE_PRIORITY, 0, now_ms, &l) == 0) {
            l->evict_priority = r->priority; /* first in line, but no right to evict more */
            action_add(out, GC_ACT_DEMAND, l, r, r->gpu);
        }
    }
}

/* Sorts waiting leases into scheduling order (priority, then arrival). */
static unsigned waiting_order(struct gc_ledger *ledger, unsigned *order)
{
    unsigned n = 0;

    for (unsigned i = 0; i < ledger->nleases; i++) {
        if (lease_waiting(&ledger->leases[i]))
            order[n++] = i;
    }
    for (unsigned i = 1; i < n; i++) {
        for (unsigned j = i; j > 0; j--) {
            const struct gc_lease *a = &ledger->leases[order[j - 1]];
            const struct gc_lease *b = &ledger->leases[order[j]];
            if (a->priority > b->priority || (a->priority == b->priority && a->seq < b->seq))
                break;
            unsigned t = order[j - 1];
            order[j - 1] = order[j];
            order[j] = t;
        }
    }
    return n;
}

static void start_evictions(struct gc_ledger *ledger, struct gc_lease *l, unsigned gpu,
                            struct gc_resident **set, unsigned nset, struct gc_actions *out)
{
    l->state = GC_LEASE_PREPARING;
    l->gpu = (int)gpu;
    l->evicting = nset;
    action_add(out, GC_ACT_PREPARING, l, NULL, gpu);
    for (unsigned k = 0; k < nset; k++) {
        struct gc_resident *r = set[k];
        if (l->nevicted < GC_EVICT_MAX)
            snprintf(l->evicted[l->nevicted++], sizeof(l->evicted[0]), "%s", r->name);
        /* What it counts for, not only what NVML shows: a resident still loading is
         * verified against the memory it was counted at. */
        r->usage_before = gc_ledger_resident_counted(ledger, r);
        r->state = GC_RES_UNLOADING;
        r->busy = true;
        action_add(out, GC_ACT_UNLOAD, l, r, gpu);
    }
}

/* Tries to place one waiting lease; marks GPUs it blocks. Returns true to refuse it. */
static bool place_lease(struct gc_ledger *ledger, struct gc_lease *l, bool *blocked,
                        bool *no_backfill, int64_t now_ms, struct gc_actions *out)
{
    struct gc_account acct;
    int best_gpu = -1, evict_gpu = -1;
    int64_t best_headroom = INT64_MIN;
    uint64_t best_cost = UINT64_MAX;
    struct gc_resident *set[GC_EVICT_MAX], *best_set[GC_EVICT_MAX];
    unsigned nbest = 0;
    bool all_never = true;

    if (l->state == GC_LEASE_PREPARING) {
        if (l->evicting > 0) {
            blocked[l->gpu] = true;
            return false;
        }
        if (!demand_ready(ledger, l)) {
            blocked[l->gpu] = true; /* its resident is busy (a reload by hand): wait */
            return false;
        }
        gc_ledger_account(ledger, (unsigned)l->gpu, NULL, &acct);
        /* Its own claim is inside acct.claims: it fits when headroom >= 0. */
        if (acct.headroom >= 0) {
            grant(ledger, l, (unsigned)l->gpu, now_ms, out);
            return false;
        }
        /* Freed, but the driver does not show it free yet (NVML's used has no owner
         * for it): keep the claim for a while, so that no later lease takes the room. */
        if ((uint64_t)-acct.headroom <= acct.unattributed) {
            if (l->lag_since_ms == 0)
                l->lag_since_ms = now_ms;
            if (now_ms - l->lag_since_ms < ledger->config.free_lag_ms) {
                blocked[l->gpu] = true;
                return false;
            }
        }
        /* Freed less than hoped (or someone took it): back in the queue. */
        l->state = GC_LEASE_QUEUED;
        l->gpu = -1;
        l->lag_since_ms = 0;
    }
    if (!demand_ready(ledger, l)) {
        if (l->gpu_req >= 0)
            blocked[l->gpu_req] = true;
        return false;
    }

    for (unsigned g = 0; g < ledger->ngpus; g++) {
        if (!lease_on_gpu(l, g) || no_backfill[g])
            continue;
        gc_ledger_account(ledger, g, NULL, &acct);
        if ((int64_t)l->bytes <= acct.headroom && acct.headroom > best_headroom) {
            best_headroom = acct.headroom;
            best_gpu = (int)g;
        }
    }
    if (best_gpu >= 0) {
        grant(ledger, l, (unsigned)best_gpu, now_ms, out);
        return false;
    }

    for (unsigned g = 0; g < ledger->ngpus; g++) {
        if (!lease_on_gpu(l, g))
            continue;
        if (gc_sched_never_fits(ledger, l, g, NULL, 0))
            continue;
        all_never = false;
        if (blocked[g])
            continue;
        gc_ledger_account(ledger, g, NULL, &acct);
        uint64_t need = (uint64_t)((int64_t)l->bytes - acct.headroom);
        unsigned n = gc_sched_choose_evictions(ledger, l, g, need, set);
        if (n == 0)
            continue;
        uint64_t cost = 0;
        for (unsigned k = 0; k < n; k++)
            cost += gc_ledger_resident_freeable(ledger, set[k]);
        if (cost < best_cost) {
            best_cost = cost;
            evict_gpu = (int)g;
            nbest = n;
            memcpy(best_set, set, n * sizeof(set[0]));
        }
    }
    if (all_never)
        return true;
    if (evict_gpu >= 0) {
        start_evictions(ledger, l, (unsigned)evict_gpu, best_set, nbest, out);
        blocked[evict_gpu] = true;
        return false;
    }
    /* It waits for leases to end: later leases may only backfill around it. */
    for (unsigned g = 0; g < ledger->ngpus; g++) {
        if (!lease_on_gpu(l, g))
            continue;
        blocked[g] = true;
        if (ledger->config.starvation_ms > 0 &&
            now_ms - l->created_ms >= ledger->config.starvation_ms)
            no_backfill[g] = true;
    }
    return false;
}

static void refuse(struct gc_ledger *ledger, struct gc_lease *l, int64_t now_ms,
                   struct gc_actions *out)
{
    char why[GC_REASON_MAX] = "";
    unsigned g0 = l->gpu_req >= 0 ? (unsigned)l->gpu_req : 0;

    gc_sched_never_fits(ledger, l, g0, why, sizeof(why));
    if (action_add(out, GC_ACT_REFUSED, l, NULL, g0) == NULL)
        return;
    gc_ledger_lease_end(ledger, l, GC_LEASE_FAILED, GC_ENEVERFITS, why, now_ms);
}

static void schedule_queue(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out)
{
    unsigned *order = ledger->scratch_order;
    bool *refused = ledger->scratch_refused;
    bool blocked[GC_GPUS_MAX] = {false}, no_backfill[GC_GPUS_MAX] = {false};
    unsigned n = waiting_order(ledger, order);

    memset(refused, 0, ledger->nleases * sizeof(refused[0]));
    for (unsigned k = 0; k < n; k++) {
        if (out->n + GC_EVICT_MAX + 4 >= GC_ACTIONS_MAX) {
            out->truncated = true;
            break;
        }
        refused[order[k]] =
            place_lease(ledger, &ledger->leases[order[k]], blocked, no_backfill, now_ms, out);
    }
    /* End refused leases from the highest index down: ending moves the last slot. */
    for (unsigned i = ledger->nleases; i-- > 0;) {
        if (refused[i])
            refuse(ledger, &ledger->leases[i], now_ms, out);
    }
}

static void schedule_restores(struct gc_ledger *ledger, struct gc_actions *out)
{
    struct gc_resident *order[GC_RESIDENTS_MAX];
    unsigned n = 0;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && r->state == GC_RES_UNLOADED && r->evicted &&
            r->restore == GC_RESTORE_AUTO && !r->busy)
            order[n++] = r;
    }
    for (unsigned i = 1; i < n; i++) {
        for (unsigned j = i; j > 0 && order[j - 1]->priority < order[j]->priority; j--) {
            struct gc_resident *t = order[j - 1];
            order[j - 1] = order[j];
            order[j] = t;
        }
    }
    for (unsigned k = 0; k < n; k++) {
        struct gc_resident *r = order[k];
        struct gc_account acct;
        bool needed = false;
        /* Predictive: while leases wait on this GPU they need the memory; keep it free. */
        for (unsigned i = 0; i < ledger->nleases && !needed; i++) {
            const struct gc_lease *l = &ledger->leases[i];
            needed = lease_waiting(l) && lease_on_gpu(l, r->gpu);
        }
        if (needed)
            continue;
        gc_ledger_account(ledger, r->gpu, NULL, &acct);
        /* What it still holds above its floor (an unload that freed little) needs no room. */
        uint64_t usage = gc_ledger_proc_usage(ledger, r->gpu, r->pid);
        uint64_t present = r->pid > 0 && usage > r->floor_bytes ? usage - r->floor_bytes : 0;
        if (acct.headroom < (int64_t)(r->bytes > present ? r->bytes - present : 0))
            continue;
        if (action_add(out, GC_ACT_RELOAD, NULL, r, r->gpu) == NULL)
            return;
        r->state = GC_RES_RELOADING;
        r->busy = true;
        r->usage_before = gc_ledger_proc_usage(ledger, r->gpu, r->pid);
    }
}

/* Ends demands whose resident is loaded again, or can no longer be; requeues those
 * whose reload gave up without failing the resident (no room after all). */
static void settle_demands(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out)
{
    for (unsigned i = ledger->nleases; i-- > 0;) {
        struct gc_lease *l = &ledger->leases[i];
        struct gc_resident *r;
        if (l->kind != GC_KIND_DEMAND)
            continue;
        r = gc_ledger_resident_find(ledger, l->holder);
        if (r != NULL && r->state == GC_RES_LOADED) {
            if (action_add(out, GC_ACT_DEMAND_MET, l, r, r->gpu) == NULL)
                return;
            gc_ledger_lease_end(ledger, l, GC_LEASE_RELEASED, 0, "resident is loaded", now_ms);
        } else if (r == NULL || r->state == GC_RES_FAILED || r->state == GC_RES_GONE) {
            char reason[GC_REASON_MAX];
            snprintf(reason, sizeof(reason), "resident '%s' is %s%s%.200s", l->holder,
                     r ? gc_resident_state_name(r->state) : "not registered",
                     r && r->reason[0] ? ": " : "", r ? r->reason : "");
            if (action_add(out, GC_ACT_DEMAND_FAILED, l, r, r ? r->gpu : 0) == NULL)
                return;
            gc_ledger_lease_end(ledger, l, GC_LEASE_FAILED, GC_EUNAVAIL, reason, now_ms);
        } else if (l->state == GC_LEASE_GRANTED && r->state == GC_RES_UNLOADED && !r->busy) {
            l->state = GC_LEASE_QUEUED;
            l->gpu = -1;
            l->granted_ms = 0;
        }
    }
}

void gc_sched_step(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out)
{
    out->n = 0;
    out->truncated = false;
    settle_demands(ledger, now_ms, out);
    expire_leases(ledger, now_ms, out);
    gc_growth_settle(ledger, now_ms, out);
    demand_overdue(ledger, now_ms, out);
    schedule_queue(ledger, now_ms, out);
    gc_growth_settle(ledger, now_ms, out);
    schedule_restores(ledger, out);
}
