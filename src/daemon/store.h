/*
 * store.h - the coordinator's durable state: an append-only journal of JSON
 * lines in the state directory, compacted into a fresh journal from time to time.
 *
 * Every record is written with one write() before the change it records is acted
 * on or acknowledged, so a coordinator killed at any instant finds every change
 * it made on restart. A torn last line (killed mid-write) is skipped on replay.
 * See docs/state-format.md.
 */
#ifndef GC_STORE_H
#define GC_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum gc_store_sync {
    GC_SYNC_NEVER,    /* write() only: survives the coordinator's death, not the host's */
    GC_SYNC_RESIDENT, /* fdatasync resident changes (default) */
    GC_SYNC_ALWAYS,   /* fdatasync every record */
};

struct gc_store;

/* Opens (creating) dir/journal and locks dir/lock so that one coordinator owns the
 * directory. GC_EIO with errbuf explaining (e.g. "another gpucoordd uses DIR"). */
int gc_store_open(const char *dir, enum gc_store_sync sync, struct gc_store **ret_store,
                  char *errbuf, size_t errbuf_len);
void gc_store_close(struct gc_store *store);

/* Calls fn for each complete record, in order; stops at fn's first error and returns it.
 * *ret_skipped (may be NULL) counts unreadable lines. */
int gc_store_replay(struct gc_store *store, int (*fn)(void *ctx, json_t *rec), void *ctx,
                    unsigned *ret_skipped);
/* Appends rec (not stolen) as one line; syncs when important (per the sync mode). */
int gc_store_append(struct gc_store *store, const json_t *rec, bool important);
/* Replaces the journal with records (an array, not stolen), atomically. */
int gc_store_compact(struct gc_store *store, const json_t *records);
/* Bytes in the journal now. */
size_t gc_store_size(const struct gc_store *store);
/* Parses "never" / "resident" / "always". */
int gc_store_sync_parse(const char *name, enum gc_store_sync *ret);

#endif
