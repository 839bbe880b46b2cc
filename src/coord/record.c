/* record.c - the journal's records encoded and decoded (pure). The formats, key order
 * included, are those the daemon has always written: older and newer versions read
 * the same journal. */
#include "coord/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* ---- encoders ---- */

json_t *gc_record_ids(uint64_t next_id, uint64_t next_seq)
{
    return json_pack("{s:s, s:I, s:I}", "op", "ids", "next_id", (json_int_t)next_id, "next_seq",
                     (json_int_t)next_seq);
}

json_t *gc_record_lease(const struct gc_lease *l)
{
    json_t *evicted = json_array();

    for (unsigned i = 0; evicted != NULL && i < l->nevicted; i++) {
        /* A name lost here would be a wrong record, not a shorter one. */
        if (json_array_append_new(evicted, json_string(l->evicted[i])) < 0) {
            json_decref(evicted);
            return NULL;
        }
    }
    /* "o" steals evicted, on failure too. */
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:i, s:I, s:i, s:f, s:s, s:I, s:o}", "op",
                     "lease", "id", l->id, "holder", l->holder, "owner", l->owner, "pid",
                     (int)l->pid, "pid_start", (json_int_t)l->pid_start_ticks, "gpu_req",
                     l->gpu_req, "gpu", l->gpu, "bytes", (json_int_t)l->bytes, "priority",
                     l->priority, "ttl_s", l->ttl_s, "state", gc_lease_state_name(l->state), "seq",
                     (json_int_t)l->seq, "evicted", evicted);
}

json_t *gc_record_lease_end(const char *id, enum gc_lease_state state)
{
    return json_pack("{s:s, s:s, s:s}", "op", "lend", "id", id, "state",
                     gc_lease_state_name(state));
}

json_t *gc_record_levels(const struct gc_resident *r)
{
    json_t *a = json_array();

    for (unsigned i = 0; a != NULL && i < gc_resident_nlevels(r); i++) {
        if (json_array_append_new(a, json_pack("{s:s, s:I}", "name", gc_resident_level_name(r, i),
                                               "bytes",
                                               (json_int_t)gc_resident_level_bytes(r, i))) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *gc_record_resident(const struct gc_resident *r, const json_t *registration,
                           const char *owner)
{
    /* "O?" takes a reference of its own (the record may outlive the registration);
     * a NULL registration is written as null. "o" steals the levels, on failure too. */
    return json_pack(
        "{s:s, s:s, s:O?, s:s, s:s, s:b, s:I, s:I, s:i, s:I, s:I, s:I, s:s, s:s, "
        "s:o}",
        "op", "resident", "name", r->name, "spec", (json_t *)registration, "owner",
        owner != NULL ? owner : "", "state", gc_resident_state_name(r->state), "evicted",
        r->evicted, "bytes", (json_int_t)r->bytes, "floor", (json_int_t)r->floor_bytes, "pid",
        (int)r->pid, "pid_start", (json_int_t)r->pid_start_ticks, "unloads", (json_int_t)r->unloads,
        "reloads", (json_int_t)r->reloads, "reason", r->reason, "level",
        gc_resident_level_name(r, gc_resident_level(r)), "levels", gc_record_levels(r));
}

json_t *gc_record_resident_delete(const char *name)
{
    return json_pack("{s:s, s:s}", "op", "rdel", "name", name);
}

/* ---- replay ---- */

void gc_replay_init(struct gc_replay *st)
{
    st->residents = json_object();
    st->leases = json_object();
    st->next_id = 0;
    st->next_seq = 0;
}

void gc_replay_free(struct gc_replay *st)
{
    json_decref(st->residents);
    json_decref(st->leases);
    st->residents = NULL;
    st->leases = NULL;
}

/* The number after the last '-' of a lease id, as the ledger issues them; ids past the
 * last one (strtoll saturates) count as the last, which leaves none to issue. */
static void replay_lease_id(struct gc_replay *st, const char *id)
{
    const char *dash = strrchr(id, '-');
    long long n = dash != NULL ? strtoll(dash + 1, NULL, 10) : 0;

    if (n > GC_LEASE_ID_LAST)
        n = GC_LEASE_ID_LAST;
    if (n >= 0 && (uint64_t)n >= st->next_id)
        st->next_id = (uint64_t)n + 1;
}

int gc_replay_record(void *ctx, json_t *rec)
{
    struct gc_replay *st = ctx;
    const char *op = json_string_value(json_object_get(rec, "op"));
    const char *key;

    if (op == NULL)
        return 0;
    if (strcmp(op, "resident") == 0 || strcmp(op, "rdel") == 0) {
        key = json_string_value(json_object_get(rec, "name"));
        if (key == NULL)
            return 0;
        if (strcmp(op, "resident") == 0)
            json_object_set(st->residents, key, rec);
        else
            json_object_del(st->residents, key);
    } else if (strcmp(op, "lease") == 0 || strcmp(op, "lend") == 0) {
        key = json_string_value(json_object_get(rec, "id"));
        if (key == NULL)
            return 0;
        /* Ids are never reused, ended leases included. */
        replay_lease_id(st, key);
        if (strcmp(op, "lease") == 0)
            json_object_set(st->leases, key, rec);
        else
            json_object_del(st->leases, key);
    } else if (strcmp(op, "ids") == 0) {
        /* A high-water mark: records lost after it (a full disk) cannot lower it. */
        json_int_t next_id = json_integer_value(json_object_get(rec, "next_id"));
        json_int_t next_seq = json_integer_value(json_object_get(rec, "next_seq"));

        if (next_id > 0 && (uint64_t)next_id > st->next_id)
            st->next_id = (uint64_t)next_id;
        if (next_seq > 0 && (uint64_t)next_seq > st->next_seq)
            st->next_seq = (uint64_t)next_seq;
    }
    return 0;
}

/* ---- decoders ---- */

static json_int_t record_int(const json_t *rec, const char *key)
{
    return json_integer_value(json_object_get(rec, key));
}

int gc_record_lease_parse(const json_t *rec, struct gc_lease *ret)
{
    struct gc_lease l;
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *holder = json_string_value(json_object_get(rec, "holder"));
    const char *state = json_string_value(json_object_get(rec, "state"));
    const char *owner = json_string_value(json_object_get(rec, "owner"));
    const json_t *evicted = json_object_get(rec, "evicted");

    if (id == NULL || holder == NULL || state == NULL)
        return GC_EINVAL;
    memset(&l, 0, sizeof(l));
    if (gc_lease_state_parse(state, &l.state) < 0)
        return GC_EINVAL;
    snprintf(l.id, sizeof(l.id), "%s", id);
    snprintf(l.holder, sizeof(l.holder), "%s", holder);
    snprintf(l.owner, sizeof(l.owner), "%s", owner != NULL ? owner : ""); /* older journals */
    l.kind = GC_KIND_HOLDER;
    l.pid = (pid_t)record_int(rec, "pid");
    l.pid_start_ticks = (uint64_t)record_int(rec, "pid_start");
    l.gpu_req = (int)record_int(rec, "gpu_req");
    l.gpu = (int)record_int(rec, "gpu");
    l.bytes = (uint64_t)record_int(rec, "bytes");
    l.priority = (int)record_int(rec, "priority");
    l.evict_priority = l.priority;
    l.ttl_s = json_number_value(json_object_get(rec, "ttl_s"));
    l.seq = (uint64_t)record_int(rec, "seq");
    if (l.state == GC_LEASE_PREPARING) {
        l.state = GC_LEASE_QUEUED; /* evictions are decided afresh */
        l.gpu = -1;
    }
    for (size_t i = 0; i < json_array_size(evicted) && l.nevicted < GC_EVICT_MAX; i++) {
        const char *name = json_string_value(json_array_get(evicted, i));
        if (name != NULL)
            snprintf(l.evicted[l.nevicted++], sizeof(l.evicted[0]), "%s", name);
    }
    *ret = l;
    return 0;
}

int gc_record_resident_parse(const json_t *rec, struct gc_resident_record *ret)
{
    struct gc_resident_record r;
    const char *state = json_string_value(json_object_get(rec, "state"));
    const char *owner = json_string_value(json_object_get(rec, "owner"));
    const json_t *spec = json_object_get(rec, "spec");

    memset(&r, 0, sizeof(r));
    r.name = json_string_value(json_object_get(rec, "name"));
    if (r.name == NULL)
        return GC_EINVAL;
    r.spec = json_is_object(spec) ? spec : NULL; /* null: written without one */
    r.owner = owner != NULL ? owner : "";
    r.state = GC_RES_LOADED; /* absent or unknown: parse leaves it */
    if (state != NULL)
        (void)gc_resident_state_parse(state, &r.state);
    r.evicted = json_is_true(json_object_get(rec, "evicted"));
    r.bytes = (uint64_t)record_int(rec, "bytes");
    r.floor_bytes = (uint64_t)record_int(rec, "floor");
    r.pid = (pid_t)record_int(rec, "pid");
    r.pid_start_ticks = (uint64_t)record_int(rec, "pid_start");
    r.unloads = (unsigned)record_int(rec, "unloads");
    r.reloads = (unsigned)record_int(rec, "reloads");
    r.level = json_string_value(json_object_get(rec, "level"));
    *ret = r;
    return 0;
}
