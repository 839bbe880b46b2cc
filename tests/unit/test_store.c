/* test_store.c - the journal: append, replay, torn last line, compaction, the lock. */
#include "harness.h"

#include <fcntl.h>
#include <stdlib.h>
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
