/*
 * store.h - the coordinator's durable state: an append-only journal of JSON
 * lines in the state directory, compacted into a fresh journal from time to time.
 *
 * Every record is written with one write() before the change it records is acted
 * on or acknowledged, so a coordinator killed at any instant finds every change
 * it made on restart. A record that cannot be written whole (a full disk, a file
 * size limit) is cut off again, so that the next record never glues onto its
 * torn bytes; a torn last line (killed mid-write) is skipped and cut on replay.
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

/* Compaction waits until the journal is this many times the size of a fresh one. */
#define GC_STORE_GROWTH 4

struct gc_store;
struct gc_store_compaction;

/* Opens (creating) dir/journal and locks dir/lock so that one coordinator owns the
 * directory. GC_EIO with errbuf explaining (e.g. "another gpucoordd uses DIR"). */
int gc_store_open(const char *dir, enum gc_store_sync sync, struct gc_store **ret_store,
                  char *errbuf, size_t errbuf_len);
void gc_store_close(struct gc_store *store);

/* Calls fn for each complete record, in order; stops at fn's first error and returns it.
 * *ret_skipped (may be NULL) counts unreadable lines. A torn last line is cut off the
 * file, so that the next append starts a line of its own. */
int gc_store_replay(struct gc_store *store, int (*fn)(void *ctx, json_t *rec), void *ctx,
                    unsigned *ret_skipped);
/* Appends rec (not stolen) as one line; syncs when important (per the sync mode).
 * 0, or GC_EIO when the record could not be written (and synced) whole: then the
 * journal is as it was before the call (bytes written in part are cut off, now or, if
 * that fails, before the next append), and the change must be treated as unrecorded. */
int gc_store_append(struct gc_store *store, const json_t *rec, bool important);
/* Replaces the journal with records (an array, not stolen), atomically: begin, write
 * and finish in one call. */
int gc_store_compact(struct gc_store *store, const json_t *records);

/*
 * A compaction in three steps, so that the slow part runs without the caller's lock.
 * begin (lock held) serialises records (an array, not stolen) and from then on copies
 * every successful append, so that no record written meanwhile is lost; write (no lock
 * needed: it touches only the compaction) writes and syncs DIR/journal.new; finish
 * (lock held) adds the copied appends and renames the new journal over the old one, or
 * abandons it when a step failed, and frees c. The store's other calls must be
 * serialised with begin and finish as with each other.
 * begin: GC_ECONFLICT when a compaction is under way, GC_ENOMEM.
 * write, finish: 0 or GC_EIO (finish: the old journal stays, complete).
 */
int gc_store_compact_begin(struct gc_store *store, const json_t *records,
                           struct gc_store_compaction **ret_compaction);
int gc_store_compact_write(struct gc_store_compaction *c);
int gc_store_compact_finish(struct gc_store *store, struct gc_store_compaction *c);
/* True while a compaction is between begin and finish. */
bool gc_store_compacting(const struct gc_store *store);
/* True when the journal has outgrown both min_bytes and GC_STORE_GROWTH times its size
 * right after the last compaction: compacting earlier would rewrite about as much as
 * it saves. */
bool gc_store_compaction_due(const struct gc_store *store, size_t min_bytes);

/* Bytes in the journal now. */
size_t gc_store_size(const struct gc_store *store);
/* Parses "never" / "resident" / "always". */
int gc_store_sync_parse(const char *name, enum gc_store_sync *ret);

#endif
