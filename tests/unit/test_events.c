/* test_events.c - the ring of recent events: ids, since=, wrapping, and chunks
 * allocated only as events arrive. */
#include "harness.h"

#include "daemon/events.h"

#define CHUNKS (GC_EVENTS_MAX / GC_EVENTS_CHUNK)

static struct gc_events *new_events(void)
{
    struct gc_events *e = calloc(1, sizeof(*e));
    ASSERT(e != NULL);
    gc_events_init(e);
    return e;
}

static void free_events(struct gc_events *e)
{
    gc_events_free(e);
    free(e);
}

static unsigned chunks_allocated(const struct gc_events *e)
{
    unsigned n = 0;
    for (unsigned i = 0; i < CHUNKS; i++)
        n += e->chunks[i] != NULL;
    return n;
}

/* The seqs of gc_events_since(e, since, max), checked to be consecutive and to end
 * at the newest; returns the first (0 if none) and their number in *ret_n. */
static uint64_t since_range(const struct gc_events *e, uint64_t since, unsigned max, size_t *ret_n)
{
    json_t *arr = gc_events_since(e, since, max);
    uint64_t first = 0;
    size_t i;
    json_t *ev;

    json_array_foreach(arr, i, ev)
    {
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(ev, "seq"));
        if (i == 0)
            first = seq;
        ASSERT_EQ_U64(seq, first + i);
        ASSERT_EQ_U64(strtoull(json_string_value(json_object_get(ev, "detail")), NULL, 10), seq);
    }
    *ret_n = json_array_size(arr);
    if (*ret_n > 0)
        ASSERT_EQ_U64(first + *ret_n - 1, gc_events_last_seq(e));
    json_decref(arr);
    return first;
}

TEST(idle_ring_holds_no_chunk)
{
    struct gc_events *e = new_events();
    size_t n;

    ASSERT_EQ_INT(chunks_allocated(e), 0);
    ASSERT_EQ_U64(gc_events_last_seq(e), 0);
    ASSERT_EQ_U64(since_range(e, 0, 100, &n), 0);
    ASSERT_EQ_INT(n, 0);
    free_events(e);
}

TEST(chunks_grow_with_events_and_stop_at_the_cap)
{
    struct gc_events *e = new_events();
    size_t n;

    for (uint64_t seq = 1; seq <= GC_EVENTS_CHUNK / 2; seq++)
        gc_events_add(e, 1.0, "test", "s", "%llu", (unsigned long long)seq);
    ASSERT_EQ_INT(chunks_allocated(e), 1);
    for (uint64_t seq = GC_EVENTS_CHUNK / 2 + 1; seq <= 3 * GC_EVENTS_CHUNK; seq++)
        gc_events_add(e, 1.0, "test", "s", "%llu", (unsigned long long)seq);
    /* seq 1 is in slot 1: 3 chunks' worth of events spill into a fourth. */
    ASSERT_EQ_INT(chunks_allocated(e), 4);
    ASSERT_EQ_U64(since_range(e, 0, GC_EVENTS_MAX, &n), 1);
    ASSERT_EQ_INT(n, 3 * GC_EVENTS_CHUNK);
    for (uint64_t seq = 3 * GC_EVENTS_CHUNK + 1; seq <= 3 * GC_EVENTS_MAX; seq++)
        gc_events_add(e, 1.0, "test", "s", "%llu", (unsigned long long)seq);
    ASSERT_EQ_INT(chunks_allocated(e), CHUNKS);
    free_events(e);
}

TEST(since_and_max_across_the_wrap)
{
    struct gc_events *e = new_events();
    uint64_t last = GC_EVENTS_MAX + GC_EVENTS_MAX / 2 + 7;
    size_t n;

    for (uint64_t seq = 1; seq <= last; seq++)
        gc_events_add(e, 1.0, "test", "s", "%llu", (unsigned long long)seq);
    ASSERT_EQ_U64(gc_events_last_seq(e), last);
    /* Only the last GC_EVENTS_MAX are kept. */
    ASSERT_EQ_U64(since_range(e, 0, UINT32_MAX, &n), last - GC_EVENTS_MAX + 1);
    ASSERT_EQ_INT(n, GC_EVENTS_MAX);
    ASSERT_EQ_U64(since_range(e, last - 10, UINT32_MAX, &n), last - 9);
    ASSERT_EQ_INT(n, 10);
    /* max keeps the newest. */
    ASSERT_EQ_U64(since_range(e, 5, 3, &n), last - 2);
    ASSERT_EQ_INT(n, 3);
    since_range(e, last, 100, &n);
    ASSERT_EQ_INT(n, 0);
    since_range(e, UINT64_MAX, 100, &n);
    ASSERT_EQ_INT(n, 0);
    free_events(e);
}

TEST(phases_are_kept_with_their_event)
{
    struct gc_events *e = new_events();
    struct gc_event *ev = gc_events_add(e, 2.5, "resident_unloaded", "gen", "%d", 1);
    json_t *arr;

    gc_event_phase(ev, "unload", 1.25);
    arr = gc_events_since(e, 0, 10);
    ASSERT_EQ_INT(json_array_size(arr), 1);
    ASSERT_NEAR(json_real_value(json_object_get(
                    json_object_get(json_array_get(arr, 0), "durations"), "unload")),
                1.25, 1e-9);
    json_decref(arr);
    free_events(e);
}

TEST(free_leaves_an_empty_ring)
{
    struct gc_events *e = new_events();
    size_t n;

    gc_events_add(e, 1.0, "test", "s", "%d", 1);
    gc_events_free(e);
    ASSERT_EQ_INT(chunks_allocated(e), 0);
    ASSERT_EQ_U64(gc_events_last_seq(e), 0);
    gc_events_add(e, 1.0, "test", "s", "%d", 1);
    ASSERT_EQ_U64(since_range(e, 0, 10, &n), 1);
    gc_events_free(NULL);
    free_events(e);
}
