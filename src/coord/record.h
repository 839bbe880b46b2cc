/*
 * record.h - the journal's records: the ledger's changes encoded as JSON objects,
 * and decoded again when the journal is replayed.
 *
 * Pure: no I/O, no clock. The daemon's store (src/daemon/store.c) writes and reads
 * the lines; this file says what they hold. The formats are those of DESIGN.md
 * section 5 and must stay readable by every later version:
 *
 *   {"op":"ids", "next_id", "next_seq"}            lease ids' high-water mark
 *   {"op":"lease", "id", "holder", "owner", "pid", "pid_start", "gpu_req", "gpu",
 *    "bytes", "priority", "ttl_s", "state", "seq", "evicted":[names]}
 *   {"op":"lend", "id", "state"}                   a lease ended
 *   {"op":"resident", "name", "spec", "owner", "state", "evicted", "bytes", "floor",
 *    "pid", "pid_start", "unloads", "reloads", "reason", "level", "levels"}
 *   {"op":"rdel", "name"}                          a resident deleted
 */
#ifndef GC_RECORD_H
#define GC_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "coord/ledger.h"

/* Encoders: a new reference, or NULL when out of memory. */
json_t *gc_record_ids(uint64_t next_id, uint64_t next_seq);
json_t *gc_record_lease(const struct gc_lease *l);
json_t *gc_record_lease_end(const char *id, enum gc_lease_state state);
/* registration: the validated registration the resident was made from (may be NULL). */
json_t *gc_record_resident(const struct gc_resident *r, const json_t *registration,
                           const char *owner);
json_t *gc_record_resident_delete(const char *name);
/* r's levels as [{"name", "bytes"}, ...], fullest first (also the API's view). */
json_t *gc_record_levels(const struct gc_resident *r);

/*
 * Replay: the journal folded into the last record of each resident and lease that
 * still exists, and the highest ids seen. Lease ids are never reused, ended leases
 * included: next_id passes every id seen (saturating at GC_LEASE_ID_LAST) and every
 * "ids" mark; next_seq every mark's.
 */
struct gc_replay {
    json_t *residents; /* name -> its last "resident" record (deleted: absent) */
    json_t *leases;    /* id -> its last "lease" record (ended: absent) */
    uint64_t next_id, next_seq;
};

void gc_replay_init(struct gc_replay *st);
void gc_replay_free(struct gc_replay *st);
/* Folds one record in (a gc_store_replay callback: ctx is the struct gc_replay).
 * Records it does not know, or without their key, are skipped. Always 0. */
int gc_replay_record(void *ctx, json_t *rec);

/*
 * A "lease" record decoded into *ret (zeroed first): kind holder, evict_priority its
 * priority, owner "" when absent (older journals). A lease that was preparing is
 * queued again with gpu -1 (its evictions are decided afresh). Times are left 0: the
 * caller sets them. GC_EINVAL when id, holder or state is missing or the state unknown.
 */
int gc_record_lease_parse(const json_t *rec, struct gc_lease *ret);

/* A "resident" record decoded; strings point into the record. */
struct gc_resident_record {
    const char *name;
    const json_t *spec;           /* the registration (NULL: none) */
    const char *owner;            /* "" when absent */
    enum gc_resident_state state; /* loaded when absent or unknown */
    bool evicted;
    uint64_t bytes, floor_bytes;
    pid_t pid; /* 0: none */
    uint64_t pid_start_ticks;
    unsigned unloads, reloads;
    const char *level; /* its level's name (NULL: older journals) */
};

/* GC_EINVAL when the name is missing. */
int gc_record_resident_parse(const json_t *rec, struct gc_resident_record *ret);

#endif
