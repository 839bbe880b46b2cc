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
        const struct gc_lease *l = ledger->leases[i];
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

/* Nodes the exact search may visit before it settles for what it found (or greedy). */
#define SEARCH_BUDGET (1u << 18)

/* The search over candidates and their levels (depth-first, pruned by bytes). */
struct evict_search {
    unsigned n;
    struct gc_resident *cand[GC_EVICT_MAX];
    unsigned nopt[GC_EVICT_MAX]; /* levels it may go down to */
    unsigned opt_level[GC_EVICT_MAX][GC_LEVELS_MAX];
    uint64_t opt_freed[GC_EVICT_MAX][GC_LEVELS_MAX];
    uint64_t suffix_max[GC_EVICT_MAX + 1]; /* most the candidates from i on can free */
    uint64_t need;
    unsigned budget;
    int choice[GC_EVICT_MAX]; /* option taken, -1: left alone */
    int best_choice[GC_EVICT_MAX];
    struct evict_cost best;
    bool found;
};

static void search_dfs(struct evict_search *s, unsigned i, struct evict_cost cost)
{
    if (s->budget == 0)
        return;
    s->budget--;
    if (cost.bytes >= s->need) {
        /* More steps only take more bytes away. */
        if (!s->found || cost_less(&cost, &s->best)) {
            s->best = cost;
            s->found = true;
            memcpy(s->best_choice, s->choice, sizeof(s->choice));
        }
        return;
    }
    if (i == s->n || cost.bytes + s->suffix_max[i] < s->need)
        return;
    /* Still short, so any completion takes more than this: no better than the best. */
    if (s->found && cost.bytes >= s->best.bytes)
        return;
    s->choice[i] = -1;
    search_dfs(s, i + 1, cost);
    for (unsigned k = 0; k < s->nopt[i]; k++) {
        struct evict_cost c = cost;
        c.bytes += s->opt_freed[i][k];
        if (s->cand[i]->priority > c.max_priority)
            c.max_priority = s->cand[i]->priority;
        c.recency += s->cand[i]->last_used_ms;
        s->choice[i] = (int)k;
        search_dfs(s, i + 1, c);
    }
    s->choice[i] = -1;
}

/* The levels r may be moved down to and what each frees; returns how many. */
static unsigned resident_options(struct gc_ledger *ledger, struct gc_resident *r, unsigned *level,
                                 uint64_t *freed)
{
    unsigned cur = gc_resident_level(r), last = gc_resident_nlevels(r) - 1, n = 0;
    uint64_t held = gc_resident_level_bytes(r, cur);

    if (r->state == GC_RES_LOADED && r->bytes == 0) {
        /* Its size is still to be learned: only all the way, freeing its usage. */
        level[0] = last;
        freed[0] = gc_ledger_resident_freeable(ledger, r);
        return freed[0] > 0;
    }
    for (unsigned j = cur + 1; j <= last; j++) {
        uint64_t at = gc_resident_level_bytes(r, j);
        if (held <= at)
            continue;
        level[n] = j;
        freed[n++] = held - at;
    }
    return n;
}

/* May r be evicted although requests run through it? Only once a lease has waited
 * its drain timeout. */
static bool drained(const struct gc_resident *r, int64_t now_ms)
{
    return r->uses == 0 || (r->drain_since_ms > 0 &&
                            now_ms - r->drain_since_ms >= (int64_t)(r->drain_timeout_s * 1000.0));
}

/* with_in_use: residents with requests in flight are candidates too. */
static unsigned choose_steps(struct gc_ledger *ledger, const struct gc_lease *lease, unsigned gpu,
                             uint64_t need, bool with_in_use, struct gc_evict_step *ret)
{
    struct gc_resident *cand[GC_RESIDENTS_MAX];
    struct evict_search search, *s = &search;
    unsigned n = 0, nret = 0;

    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        if (!r->in_use || r->gpu != gpu || r->busy || r->priority >= lease->evict_priority)
            continue;
        if (r->uses > 0 && !with_in_use && r->drain_since_ms == 0)
            continue;
        /* Loaded, or part-way down with further to go. */
        if (r->state != GC_RES_LOADED &&
            !(r->state == GC_RES_UNLOADED && gc_resident_level(r) + 1 < gc_resident_nlevels(r)))
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
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < n && s->n < GC_EVICT_MAX; i++) {
        unsigned k = s->n;
        s->nopt[k] = resident_options(ledger, cand[i], s->opt_level[k], s->opt_freed[k]);
        if (s->nopt[k] > 0)
            s->cand[s->n++] = cand[i];
    }
    for (unsigned i = s->n; i-- > 0;) {
        uint64_t most = 0;
        for (unsigned k = 0; k < s->nopt[i]; k++)
            most = s->opt_freed[i][k] > most ? s->opt_freed[i][k] : most;
        s->suffix_max[i] = s->suffix_max[i + 1] + most;
    }
    if (s->suffix_max[0] < need)
        return 0;
    s->need = need;
    s->budget = SEARCH_BUDGET;
    for (unsigned i = 0; i < GC_EVICT_MAX; i++)
        s->choice[i] = s->best_choice[i] = -1;
    search_dfs(s, 0, (struct evict_cost){0, INT_MIN, 0});
    if (!s->found) {
        /* Out of budget before any answer: all the way, cheapest first, until enough. */
        uint64_t got = 0;
        for (unsigned i = 0; i < s->n && got < need; i++) {
            s->best_choice[i] = (int)s->nopt[i] - 1;
            got += s->opt_freed[i][s->nopt[i] - 1];
        }
    }
    for (unsigned i = 0; i < s->n; i++) {
        int k = s->best_choice[i];
        if (k < 0)
            continue;
        ret[nret].r = s->cand[i];
        ret[nret].level = s->opt_level[i][k];
        ret[nret].freed = s->opt_freed[i][k];
        nret++;
    }
    return nret;
}

unsigned gc_sched_choose_evictions(struct gc_ledger *ledger, const struct gc_lease *lease,
                                   unsigned gpu, uint64_t need, struct gc_resident **ret)
{
    struct gc_evict_step steps[GC_EVICT_MAX];
    unsigned n = choose_steps(ledger, lease, gpu, need, false, steps);

    for (unsigned i = 0; i < n; i++)
        ret[i] = steps[i].r;
    return n;
}

unsigned gc_sched_choose_steps(struct gc_ledger *ledger, const struct gc_lease *lease, unsigned gpu,
                               uint64_t need, struct gc_evict_step *ret)
{
    return choose_steps(ledger, lease, gpu, need, false, ret);
}

/*
 * The steps for l on gpu, minding requests in flight: a combination without in-use
 * residents if one suffices; else one with them, whose requests are waited for
 * (their drain starts now) until their drain timeout. Returns the combination's size
 * when it may start now, 0 otherwise (*ret_draining: it waits for requests).
 */
static unsigned evictions_minding_uses(struct gc_ledger *ledger, const struct gc_lease *l,
                                       unsigned gpu, uint64_t need, int64_t now_ms,
                                       struct gc_evict_step *set, bool *ret_draining,
                                       struct gc_actions *out)
{
    unsigned n = choose_steps(ledger, l, gpu, need, false, set);
    bool ready = true;

    *ret_draining = false;
    if (n > 0) {
        for (unsigned k = 0; k < n; k++)
            ready = ready && drained(set[k].r, now_ms);
        if (ready)
            return n;
    } else {
        n = choose_steps(ledger, l, gpu, need, true, set);
        if (n == 0)
            return 0;
    }
    for (unsigned k = 0; k < n; k++) {
        if (set[k].r->uses > 0 && set[k].r->drain_since_ms == 0) {
            set[k].r->drain_since_ms = now_ms;
            action_add(out, GC_ACT_DRAINING, l, set[k].r, gpu);
        }
        ready = ready && drained(set[k].r, now_ms);
    }
    if (ready)
        return n;
    *ret_draining = true;
    return 0;
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
        struct gc_lease *l = ledger->leases[i];
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
        if (gc_ledger_lease_new(ledger, GC_KIND_DEMAND, r->name, 0, (int)r->gpu,
                                gc_resident_missing_bytes(r), SCHED_OVERDUE_PRIORITY, 0, now_ms,
                                &l) == 0) {
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
        if (lease_waiting(ledger->leases[i]))
            order[n++] = i;
    }
    for (unsigned i = 1; i < n; i++) {
        for (unsigned j = i; j > 0; j--) {
            const struct gc_lease *a = ledger->leases[order[j - 1]];
            const struct gc_lease *b = ledger->leases[order[j]];
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
                            const struct gc_evict_step *set, unsigned nset, struct gc_actions *out)
{
    l->state = GC_LEASE_PREPARING;
    l->gpu = (int)gpu;
    l->evicting = nset;
    action_add(out, GC_ACT_PREPARING, l, NULL, gpu);
    for (unsigned k = 0; k < nset; k++) {
        struct gc_resident *r = set[k].r;
        if (l->nevicted < GC_EVICT_MAX)
            snprintf(l->evicted[l->nevicted++], sizeof(l->evicted[0]), "%s", r->name);
        /* What it counts for, not only what NVML shows: a resident still loading is
         * verified against the memory it was counted at. */
        r->usage_before = gc_ledger_resident_counted(ledger, r);
        r->level = gc_resident_level(r);
        r->target_level = set[k].level;
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
    struct gc_evict_step set[GC_EVICT_MAX], best_set[GC_EVICT_MAX];
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
        bool draining;
        unsigned n = evictions_minding_uses(ledger, l, g, need, now_ms, set, &draining, out);
        if (n == 0)
            continue;
        uint64_t cost = 0;
        for (unsigned k = 0; k < n; k++)
            cost += set[k].freed;
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

    if (n == 0)
        return; /* and the scratch space may not be allocated yet */
    memset(refused, 0, ledger->nleases * sizeof(refused[0]));
    for (unsigned k = 0; k < n; k++) {
        if (out->n + GC_EVICT_MAX + 4 >= GC_ACTIONS_MAX) {
            out->truncated = true;
            break;
        }
        refused[order[k]] =
            place_lease(ledger, ledger->leases[order[k]], blocked, no_backfill, now_ms, out);
    }
    /* End refused leases from the highest index down: ending moves the last slot. */
    for (unsigned i = ledger->nleases; i-- > 0;) {
        if (refused[i])
            refuse(ledger, ledger->leases[i], now_ms, out);
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
            const struct gc_lease *l = ledger->leases[i];
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
        struct gc_lease *l = ledger->leases[i];
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

/* A drain ends when its requests have, or when its resident is no longer loaded. */
static void settle_drains(struct gc_ledger *ledger)
{
    for (unsigned i = 0; i < GC_RESIDENTS_MAX; i++) {
        struct gc_resident *r = &ledger->residents[i];
        if (r->in_use && (r->uses == 0 || r->state != GC_RES_LOADED))
            r->drain_since_ms = 0;
    }
}

void gc_sched_step(struct gc_ledger *ledger, int64_t now_ms, struct gc_actions *out)
{
    out->n = 0;
    out->truncated = false;
    settle_drains(ledger);
    settle_demands(ledger, now_ms, out);
    expire_leases(ledger, now_ms, out);
    gc_growth_settle(ledger, now_ms, out);
    demand_overdue(ledger, now_ms, out);
    schedule_queue(ledger, now_ms, out);
    gc_growth_settle(ledger, now_ms, out);
    schedule_restores(ledger, out);
}
