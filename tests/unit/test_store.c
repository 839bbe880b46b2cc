/* test_store.c - the journal: append, replay, torn last line, failed writes,
 * compaction (in one call and in steps), the lock. */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "daemon/store.h"

static char dir[64];

static void fresh_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/gc-store-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ_INT(system(cmd), 0);
}

static int collect(void *ctx, json_t *rec)
{
    json_t *arr = ctx;
    json_array_append(arr, rec);
    return 0;
}

static json_t *replay(struct gc_store *s, unsigned *skipped)
{
    json_t *arr = json_array();
    ASSERT_EQ_INT(gc_store_replay(s, collect, arr, skipped), 0);
    return arr;
}

static int append_n(struct gc_store *s, int n)
{
    json_t *rec = json_pack("{s:s, s:i, s:s}", "op", "lease", "n", n, "pad", "0123456789abcdef");
    int rc = gc_store_append(s, rec, false);
    json_decref(rec);
    return rc;
}

static off_t file_size(const char *name)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Files this process writes may grow to at most bytes (as on a full disk, writes
 * stop short, then fail). */
static void limit_file_size(rlim_t bytes)
{
    struct rlimit rl;
    ASSERT_EQ_INT(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = bytes;
    ASSERT_EQ_INT(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

TEST(append_and_replay_in_order)
{
    struct gc_store *s;
    char err[256];
    unsigned skipped = 9;
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_RESIDENT, &s, err, sizeof(err)), 0);
    for (int i = 0; i < 5; i++) {
        json_t *rec = json_pack("{s:s, s:i}", "op", "lease", "n", i);
        ASSERT_EQ_INT(gc_store_append(s, rec, i % 2), 0);
        json_decref(rec);
    }
    json_t *all = replay(s, &skipped);
    ASSERT_EQ_INT(json_array_size(all), 5);
    ASSERT_EQ_INT(skipped, 0);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(all, i), "n")), i);
    json_decref(all);
    gc_store_close(s);
    remove_dir();
}

TEST(torn_last_line_is_skipped)
{
    struct gc_store *s;
    char err[256], path[128];
    unsigned skipped = 0;
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_NEVER, &s, err, sizeof(err)), 0);
    json_t *rec = json_pack("{s:s}", "op", "ids");
    gc_store_append(s, rec, false);
    json_decref(rec);
    /* A coordinator killed in the middle of a write leaves a line without its newline. */
    snprintf(path, sizeof(path), "%s/journal", dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    ASSERT(write(fd, "{\"op\":\"lease\",\"id\":\"lea", 23) == 23);
    close(fd);
    json_t *all = replay(s, &skipped);
    ASSERT_EQ_INT(json_array_size(all), 1);
    ASSERT_EQ_INT(skipped, 1);
    json_decref(all);
    gc_store_close(s);
    remove_dir();
}

TEST(torn_last_line_is_cut_so_the_next_record_stands_alone)
{
    struct gc_store *s;
    char err[256], path[128];
    unsigned skipped = 0;
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_NEVER, &s, err, sizeof(err)), 0);
    ASSERT_EQ_INT(append_n(s, 1), 0);
    snprintf(path, sizeof(path), "%s/journal", dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    ASSERT(write(fd, "{\"op\":\"lease\",\"id\":\"lea", 23) == 23);
    close(fd);
    json_decref(replay(s, &skipped));
    ASSERT_EQ_INT(skipped, 1);
    ASSERT_EQ_INT(file_size("journal"), gc_store_size(s));
    /* Glued onto the torn bytes, this record would be lost with them. */
    ASSERT_EQ_INT(append_n(s, 2), 0);
    json_t *all = replay(s, &skipped);
    ASSERT_EQ_INT(skipped, 0);
    ASSERT_EQ_INT(json_array_size(all), 2);
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(all, 1), "n")), 2);
    json_decref(all);
    gc_store_close(s);
    remove_dir();
}

TEST(failed_append_leaves_no_torn_bytes)
{
    struct gc_store *s;
    char err[256];
    unsigned skipped = 9;
    int ok = 0;
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_ALWAYS, &s, err, sizeof(err)), 0);
    signal(SIGXFSZ, SIG_IGN);
    limit_file_size(300); /* a record is 48 bytes: the seventh is written in part */
    while (append_n(s, ok) == 0)
        ok++;
    ASSERT_EQ_INT(ok, 6);
    ASSERT_EQ_INT(file_size("journal"), gc_store_size(s));
    ASSERT_EQ_INT(append_n(s, 99), GC_EIO); /* still full: refused, nothing left behind */
    ASSERT_EQ_INT(file_size("journal"), gc_store_size(s));
    limit_file_size(RLIM_INFINITY);
    ASSERT_EQ_INT(append_n(s, 6), 0);
    json_t *all = replay(s, &skipped);
    ASSERT_EQ_INT(skipped, 0);
    ASSERT_EQ_INT(json_array_size(all), 7);
    for (int i = 0; i < 7; i++)
        ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(all, i), "n")), i);
    json_decref(all);
    gc_store_close(s);
    remove_dir();
}

TEST(compaction_keeps_what_was_appended_while_it_ran)
{
    struct gc_store *s;
    struct gc_store_compaction *c;
    char err[256];
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_RESIDENT, &s, err, sizeof(err)), 0);
    for (int i = 0; i < 50; i++)
        ASSERT_EQ_INT(append_n(s, i), 0);
    json_t *now = json_pack("[{s:s, s:i}]", "op", "ids", "next_id", 51);
    ASSERT_EQ_INT(gc_store_compact_begin(s, now, &c), 0);
    json_decref(now);
    ASSERT(gc_store_compacting(s));
    ASSERT_EQ_INT(gc_store_compact_begin(s, now, &c) == GC_ECONFLICT, 1);
    ASSERT_EQ_INT(append_n(s, 100), 0); /* between the snapshot and the rename */
    ASSERT_EQ_INT(gc_store_compact_write(c), 0);
    ASSERT_EQ_INT(append_n(s, 101), 0);
    ASSERT_EQ_INT(gc_store_compact_finish(s, c), 0);
    ASSERT(!gc_store_compacting(s));
    ASSERT_EQ_INT(append_n(s, 102), 0);
    ASSERT_EQ_INT(file_size("journal"), gc_store_size(s));
    ASSERT_EQ_INT(file_size("journal.new"), -1);
    json_t *all = replay(s, NULL);
    ASSERT_EQ_INT(json_array_size(all), 4);
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(all, 0), "op")), "ids");
    for (int i = 1; i < 4; i++)
        ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(all, i), "n")), 99 + i);
    json_decref(all);
    gc_store_close(s);
    remove_dir();
}

TEST(failed_compaction_keeps_the_journal)
{
    struct gc_store *s;
    struct gc_store_compaction *c;
    char err[256];
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_NEVER, &s, err, sizeof(err)), 0);
    for (int i = 0; i < 20; i++)
        ASSERT_EQ_INT(append_n(s, i), 0);
    json_t *now = json_pack("[{s:s, s:s}]", "op", "ids", "pad", "a larger state than the limit");
    ASSERT_EQ_INT(gc_store_compact_begin(s, now, &c), 0);
    json_decref(now);
    signal(SIGXFSZ, SIG_IGN);
    limit_file_size(16);
    ASSERT_EQ_INT(gc_store_compact_write(c), GC_EIO);
    limit_file_size(RLIM_INFINITY);
    ASSERT_EQ_INT(append_n(s, 20), 0);
    size_t before = gc_store_size(s);
    ASSERT_EQ_INT(gc_store_compact_finish(s, c), GC_EIO);
    ASSERT_EQ_INT(file_size("journal.new"), -1);
    ASSERT_EQ_INT(gc_store_size(s), before);
    ASSERT_EQ_INT(file_size("journal"), before);
    json_t *all = replay(s, NULL);
    ASSERT_EQ_INT(json_array_size(all), 21);
    json_decref(all);
    gc_store_close(s);
    remove_dir();
}

TEST(compaction_is_due_only_when_the_journal_outgrows_the_state)
{
    struct gc_store *s;
    char err[256];
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_NEVER, &s, err, sizeof(err)), 0);
    ASSERT(!gc_store_compaction_due(s, 100));
    for (int i = 0; i < 10; i++)
        ASSERT_EQ_INT(append_n(s, i), 0);
    ASSERT(gc_store_compaction_due(s, 100));
    /* A state of 10 records compacts to itself: rewriting it again at once gains
     * nothing, whatever the minimum. */
    json_t *all = replay(s, NULL);
    ASSERT_EQ_INT(gc_store_compact(s, all), 0);
    json_decref(all);
    size_t state = gc_store_size(s);
    ASSERT(!gc_store_compaction_due(s, 100));
    while (gc_store_size(s) <= GC_STORE_GROWTH * state) {
        ASSERT(!gc_store_compaction_due(s, 100));
        ASSERT_EQ_INT(append_n(s, 0), 0);
    }
    ASSERT(gc_store_compaction_due(s, 100));
    ASSERT(!gc_store_compaction_due(s, 1u << 20));
    gc_store_close(s);
    remove_dir();
}

TEST(compaction_replaces_the_journal)
{
    struct gc_store *s;
    char err[256];
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_ALWAYS, &s, err, sizeof(err)), 0);
    for (int i = 0; i < 100; i++) {
        json_t *rec = json_pack("{s:s, s:i}", "op", "lease", "n", i);
        gc_store_append(s, rec, false);
        json_decref(rec);
    }
    size_t before = gc_store_size(s);
    json_t *now = json_pack("[{s:s, s:i}]", "op", "ids", "next_id", 101);
    ASSERT_EQ_INT(gc_store_compact(s, now), 0);
    json_decref(now);
    ASSERT(gc_store_size(s) < before);
    json_t *rec = json_pack("{s:s}", "op", "after");
    gc_store_append(s, rec, false); /* appends go to the new file */
    json_decref(rec);
    json_t *all = replay(s, NULL);
    ASSERT_EQ_INT(json_array_size(all), 2);
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(all, 1), "op")), "after");
    json_decref(all);
    gc_store_close(s);
    remove_dir();
}

TEST(one_coordinator_per_directory)
{
    struct gc_store *a, *b;
    char err[256];
    fresh_dir();
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_NEVER, &a, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_NEVER, &b, err, sizeof(err)), GC_EIO);
    ASSERT(strstr(err, "another gpucoordd") != NULL);
    gc_store_close(a);
    ASSERT_EQ_INT(gc_store_open(dir, GC_SYNC_NEVER, &b, err, sizeof(err)), 0);
    gc_store_close(b);
    remove_dir();
}
