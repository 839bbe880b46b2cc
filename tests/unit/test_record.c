/* test_record.c - the journal's records: encoded, decoded, folded on replay, and their
 * exact text (older and newer versions read the same journal). */
#include "harness.h"

#include <stdarg.h>

#include "common/err.h"
#include "coord/ledger.h"
#include "coord/record.h"

#define MiB       (1ULL << 20)
#define VAL_BYTES 5046586572ULL /* 4.7Gi */

/* A granted lease with every field set. */
static void sample_lease(struct gc_lease *l)
{
    memset(l, 0, sizeof(*l));
    l->in_use = true;
    snprintf(l->id, sizeof(l->id), "lease-42");
    l->seq = 7;
    l->kind = GC_KIND_HOLDER;
    snprintf(l->holder, sizeof(l->holder), "train");
    snprintf(l->owner, sizeof(l->owner), "uid:1000");
    l->pid = 4242;
    l->pid_start_ticks = 987654321ULL;
    l->gpu_req = -1;
    l->gpu = 1;
    l->bytes = 8ULL << 30;
    l->priority = 100;
    l->evict_priority = 100;
    l->ttl_s = 30;
    l->state = GC_LEASE_GRANTED;
    l->nevicted = 2;
    snprintf(l->evicted[0], sizeof(l->evicted[0]), "validation");
    snprintf(l->evicted[1], sizeof(l->evicted[1]), "generation");
}

/* An unloaded resident with three levels, at the middle one. */
static void sample_resident(struct gc_resident *r)
{
    memset(r, 0, sizeof(*r));
    r->in_use = true;
    snprintf(r->name, sizeof(r->name), "validation");
    snprintf(r->protocol, sizeof(r->protocol), "seed");
    r->pid = 100;
    r->pid_start_ticks = 5555;
    r->bytes = VAL_BYTES;
    r->nlevels = 3;
    snprintf(r->levels[0].name, sizeof(r->levels[0].name), "full");
    r->levels[0].bytes = VAL_BYTES;
    snprintf(r->levels[1].name, sizeof(r->levels[1].name), "reduced");
    r->levels[1].bytes = VAL_BYTES / 2;
    snprintf(r->levels[2].name, sizeof(r->levels[2].name), "off");
    r->levels[2].bytes = 0;
    r->level = 1;
    r->state = GC_RES_UNLOADED;
    r->evicted = true;
    r->floor_bytes = 300 * MiB;
    r->unloads = 3;
    r->reloads = 2;
    snprintf(r->reason, sizeof(r->reason), "evicted for lease-42");
}

/* rec's text as the store writes it (src/daemon/store.c: JSON_COMPACT). */
static char *dump(const json_t *rec)
{
    char *s;
    ASSERT(rec != NULL);
    s = json_dumps(rec, JSON_COMPACT);
    ASSERT(s != NULL);
    return s;
}

static void assert_dumps(json_t *rec, const char *want)
{
    char *s = dump(rec);
    ASSERT_STREQ(s, want);
    free(s);
    json_decref(rec);
}

static json_t *load(const char *text)
{
    json_error_t err;
    json_t *rec = json_loads(text, JSON_DECODE_ANY, &err);
    if (rec == NULL)
        harness_fail(__FILE__, __LINE__, "cannot parse '%s': %s", text, err.text);
    return rec;
}

/* Folds the records given as JSON text (each a record, NULL ends the list). */
static void fold(struct gc_replay *st, ...)
{
    va_list ap;
    const char *text;
    va_start(ap, st);
    while ((text = va_arg(ap, const char *)) != NULL) {
        json_t *rec = load(text);
        ASSERT_EQ_INT(gc_replay_record(st, rec), 0);
        json_decref(rec);
    }
    va_end(ap);
}

/* ---- exact text ---- */

TEST(lease_record_text_is_the_journals)
{
    struct gc_lease l;
    sample_lease(&l);
    assert_dumps(
        gc_record_lease(&l),
        "{\"op\":\"lease\",\"id\":\"lease-42\",\"holder\":\"train\",\"owner\":\"uid:1000\","
        "\"pid\":4242,\"pid_start\":987654321,\"gpu_req\":-1,\"gpu\":1,"
        "\"bytes\":8589934592,\"priority\":100,\"ttl_s\":30.0,\"state\":\"granted\","
        "\"seq\":7,\"evicted\":[\"validation\",\"generation\"]}");
    l.nevicted = 0;
    l.state = GC_LEASE_QUEUED;
    l.ttl_s = 2.5;
    assert_dumps(
        gc_record_lease(&l),
        "{\"op\":\"lease\",\"id\":\"lease-42\",\"holder\":\"train\",\"owner\":\"uid:1000\","
        "\"pid\":4242,\"pid_start\":987654321,\"gpu_req\":-1,\"gpu\":1,"
        "\"bytes\":8589934592,\"priority\":100,\"ttl_s\":2.5,\"state\":\"queued\","
        "\"seq\":7,\"evicted\":[]}");
}

TEST(resident_record_text_is_the_journals)
{
    struct gc_resident r;
    json_t *spec = load("{\"name\":\"validation\",\"protocol\":\"seed\"}");
    json_t *rec;
    sample_resident(&r);
    rec = gc_record_resident(&r, spec, "uid:1000");
    /* The record holds a reference of its own to the registration, not a copy. */
    ASSERT(json_object_get(rec, "spec") == spec);
    ASSERT_EQ_INT(spec->refcount, 2);
    assert_dumps(rec,
                 "{\"op\":\"resident\",\"name\":\"validation\","
                 "\"spec\":{\"name\":\"validation\",\"protocol\":\"seed\"},\"owner\":\"uid:1000\","
                 "\"state\":\"unloaded\",\"evicted\":true,\"bytes\":5046586572,"
                 "\"floor\":314572800,\"pid\":100,\"pid_start\":5555,\"unloads\":3,"
                 "\"reloads\":2,\"reason\":\"evicted for lease-42\",\"level\":\"reduced\","
                 "\"levels\":[{\"name\":\"full\",\"bytes\":5046586572},"
                 "{\"name\":\"reduced\",\"bytes\":2523293286},{\"name\":\"off\",\"bytes\":0}]}");
    ASSERT_EQ_INT(spec->refcount, 1);
    json_decref(spec);

    /* No registration (null), no declared levels: "loaded" and "off". */
    r.nlevels = 0;
    r.state = GC_RES_LOADED;
    r.evicted = false;
    r.reason[0] = '\0';
    assert_dumps(gc_record_resident(&r, NULL, ""),
                 "{\"op\":\"resident\",\"name\":\"validation\",\"spec\":null,\"owner\":\"\","
                 "\"state\":\"loaded\",\"evicted\":false,\"bytes\":5046586572,"
                 "\"floor\":314572800,\"pid\":100,\"pid_start\":5555,\"unloads\":3,"
                 "\"reloads\":2,\"reason\":\"\",\"level\":\"loaded\","
                 "\"levels\":[{\"name\":\"loaded\",\"bytes\":5046586572},"
                 "{\"name\":\"off\",\"bytes\":0}]}");
}

TEST(small_records_text_is_the_journals)
{
    assert_dumps(gc_record_ids(1025, 9), "{\"op\":\"ids\",\"next_id\":1025,\"next_seq\":9}");
    assert_dumps(gc_record_ids((uint64_t)GC_LEASE_ID_LAST + 1, 1),
                 "{\"op\":\"ids\",\"next_id\":9223372036854775807,\"next_seq\":1}");
    assert_dumps(gc_record_lease_end("lease-42", GC_LEASE_EXPIRED),
                 "{\"op\":\"lend\",\"id\":\"lease-42\",\"state\":\"expired\"}");
    assert_dumps(gc_record_lease_end("lease-43", GC_LEASE_RELEASED),
                 "{\"op\":\"lend\",\"id\":\"lease-43\",\"state\":\"released\"}");
    assert_dumps(gc_record_resident_delete("validation"),
                 "{\"op\":\"rdel\",\"name\":\"validation\"}");
}

TEST(levels_are_listed_fullest_first)
{
    struct gc_resident r;
    sample_resident(&r);
    assert_dumps(gc_record_levels(&r), "[{\"name\":\"full\",\"bytes\":5046586572},"
                                       "{\"name\":\"reduced\",\"bytes\":2523293286},"
                                       "{\"name\":\"off\",\"bytes\":0}]");
}

/* ---- round trips ---- */

static void assert_lease_fields(const struct gc_lease *got, const struct gc_lease *want)
{
    ASSERT_STREQ(got->id, want->id);
    ASSERT_STREQ(got->holder, want->holder);
    ASSERT_STREQ(got->owner, want->owner);
    ASSERT_EQ_INT(got->kind, GC_KIND_HOLDER);
    ASSERT_EQ_INT(got->pid, want->pid);
    ASSERT_EQ_U64(got->pid_start_ticks, want->pid_start_ticks);
    ASSERT_EQ_INT(got->gpu_req, want->gpu_req);
    ASSERT_EQ_U64(got->bytes, want->bytes);
    ASSERT_EQ_INT(got->priority, want->priority);
    ASSERT_EQ_INT(got->evict_priority, want->priority);
    ASSERT_NEAR(got->ttl_s, want->ttl_s, 0);
    ASSERT_EQ_U64(got->seq, want->seq);
    ASSERT_EQ_INT(got->nevicted, want->nevicted);
    for (unsigned i = 0; i < want->nevicted; i++)
        ASSERT_STREQ(got->evicted[i], want->evicted[i]);
    /* Times are the caller's to set. */
    ASSERT_EQ_INT(got->created_ms, 0);
    ASSERT_EQ_INT(got->granted_ms, 0);
    ASSERT_EQ_INT(got->heartbeat_ms, 0);
}

TEST(lease_round_trips_in_each_state)
{
    static const enum gc_lease_state states[] = {
        GC_LEASE_QUEUED, GC_LEASE_GRANTED, GC_LEASE_RELEASED, GC_LEASE_EXPIRED, GC_LEASE_FAILED};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        struct gc_lease l, got;
        json_t *rec;
        sample_lease(&l);
        l.state = states[i];
        l.gpu = (int)i; /* each state keeps its own gpu */
        rec = gc_record_lease(&l);
        ASSERT(rec != NULL);
        memset(&got, 0xa5, sizeof(got));
        ASSERT_EQ_INT(gc_record_lease_parse(rec, &got), 0);
        assert_lease_fields(&got, &l);
        ASSERT_EQ_INT(got.state, states[i]);
        ASSERT_EQ_INT(got.gpu, (int)i);
        json_decref(rec);
    }
}

TEST(preparing_lease_is_queued_again_on_any_gpu)
{
    struct gc_lease l, got;
    json_t *rec;
    sample_lease(&l);
    l.state = GC_LEASE_PREPARING;
    l.gpu = 1;
    rec = gc_record_lease(&l);
    ASSERT_STREQ(json_string_value(json_object_get(rec, "state")), "preparing");
    ASSERT_EQ_INT(gc_record_lease_parse(rec, &got), 0);
    assert_lease_fields(&got, &l);
    ASSERT_EQ_INT(got.state, GC_LEASE_QUEUED);
    ASSERT_EQ_INT(got.gpu, -1);
    json_decref(rec);
}

TEST(lease_keeps_its_evicted_names_up_to_the_cap)
{
    struct gc_lease got;
    json_t *rec =
        load("{\"op\":\"lease\",\"id\":\"lease-1\",\"holder\":\"h\",\"state\":\"granted\","
             "\"evicted\":[\"a\",7,\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\","
             "\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\",\"r\"]}");
    ASSERT_EQ_INT(gc_record_lease_parse(rec, &got), 0);
    /* Names only (7 is skipped), at most GC_EVICT_MAX. */
    ASSERT_EQ_INT(got.nevicted, GC_EVICT_MAX);
    ASSERT_STREQ(got.evicted[0], "a");
    ASSERT_STREQ(got.evicted[1], "b");
    ASSERT_STREQ(got.evicted[GC_EVICT_MAX - 1], "p");
    json_decref(rec);
}

TEST(lease_without_owner_is_owned_by_nobody)
{
    struct gc_lease got;
    json_t *rec = load("{\"op\":\"lease\",\"id\":\"lease-1\",\"holder\":\"h\",\"pid\":77,"
                       "\"pid_start\":1234567890123,\"gpu_req\":0,\"gpu\":0,\"bytes\":1024,"
                       "\"priority\":50,\"ttl_s\":10,\"state\":\"granted\",\"seq\":3}");
    memset(&got, 0xa5, sizeof(got));
    ASSERT_EQ_INT(gc_record_lease_parse(rec, &got), 0);
    ASSERT_STREQ(got.owner, "");
    ASSERT_EQ_INT(got.pid, 77);
    ASSERT_EQ_U64(got.pid_start_ticks, 1234567890123ULL);
    ASSERT_NEAR(got.ttl_s, 10, 0); /* an integer where a real was written */
    ASSERT_EQ_INT(got.evict_priority, 50);
    ASSERT_EQ_INT(got.nevicted, 0);
    json_decref(rec);
}

TEST(resident_round_trips_with_its_levels)
{
    struct gc_resident r;
    struct gc_resident_record got;
    json_t *spec = load("{\"name\":\"validation\",\"protocol\":\"seed\"}");
    json_t *rec;
    sample_resident(&r);
    rec = gc_record_resident(&r, spec, "uid:1000");
    ASSERT(rec != NULL);
    ASSERT_EQ_INT(gc_record_resident_parse(rec, &got), 0);
    ASSERT_STREQ(got.name, "validation");
    ASSERT(json_equal((json_t *)got.spec, spec));
    ASSERT_STREQ(got.owner, "uid:1000");
    ASSERT_EQ_INT(got.state, GC_RES_UNLOADED);
    ASSERT(got.evicted);
    ASSERT_EQ_U64(got.bytes, VAL_BYTES);
    ASSERT_EQ_U64(got.floor_bytes, 300 * MiB);
    ASSERT_EQ_INT(got.pid, 100);
    ASSERT_EQ_U64(got.pid_start_ticks, 5555);
    ASSERT_EQ_INT(got.unloads, 3);
    ASSERT_EQ_INT(got.reloads, 2);
    ASSERT_STREQ(got.level, "reduced");
    ASSERT_EQ_INT(gc_resident_level_find(&r, got.level), 1);
    json_decref(rec);
    json_decref(spec);

    /* Each state comes back as itself. */
    for (int s = GC_RES_LOADED; s <= GC_RES_GONE; s++) {
        sample_resident(&r);
        r.state = (enum gc_resident_state)s;
        rec = gc_record_resident(&r, NULL, "");
        ASSERT_EQ_INT(gc_record_resident_parse(rec, &got), 0);
        ASSERT_EQ_INT(got.state, s);
        ASSERT(got.spec == NULL);
        json_decref(rec);
    }
}

TEST(resident_from_an_older_journal_gets_the_defaults)
{
    struct gc_resident_record got;
    json_t *rec = load("{\"op\":\"resident\",\"name\":\"val\",\"spec\":{\"name\":\"val\"},"
                       "\"state\":\"unloaded\",\"pid\":9}");
    ASSERT_EQ_INT(gc_record_resident_parse(rec, &got), 0);
    ASSERT_STREQ(got.owner, "");
    ASSERT(got.level == NULL);
    ASSERT_EQ_INT(got.state, GC_RES_UNLOADED);
    ASSERT_EQ_INT(got.pid, 9);
    ASSERT_EQ_U64(got.pid_start_ticks, 0);
    ASSERT(!got.evicted);
    ASSERT_STREQ(json_string_value(json_object_get(got.spec, "name")), "val");
    json_decref(rec);

    /* No state, or one this version does not know: loaded. No object: no spec. */
    rec = load("{\"op\":\"resident\",\"name\":\"val\",\"spec\":\"x\"}");
    got.state = GC_RES_GONE;
    ASSERT_EQ_INT(gc_record_resident_parse(rec, &got), 0);
    ASSERT_EQ_INT(got.state, GC_RES_LOADED);
    ASSERT(got.spec == NULL);
    json_decref(rec);
    rec = load("{\"op\":\"resident\",\"name\":\"val\",\"state\":\"hibernating\"}");
    got.state = GC_RES_GONE;
    ASSERT_EQ_INT(gc_record_resident_parse(rec, &got), 0);
    ASSERT_EQ_INT(got.state, GC_RES_LOADED);
    json_decref(rec);
}

/* ---- parse errors ---- */

TEST(lease_without_id_holder_or_known_state_is_refused)
{
    static const char *const bad[] = {
        "{\"op\":\"lease\",\"holder\":\"h\",\"state\":\"granted\"}",
        "{\"op\":\"lease\",\"id\":\"lease-1\",\"state\":\"granted\"}",
        "{\"op\":\"lease\",\"id\":\"lease-1\",\"holder\":\"h\"}",
        "{\"op\":\"lease\",\"id\":\"lease-1\",\"holder\":\"h\",\"state\":\"sleeping\"}",
        "{\"op\":\"lease\",\"id\":1,\"holder\":\"h\",\"state\":\"granted\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gc_lease got;
        json_t *rec = load(bad[i]);
        memset(&got, 0x5a, sizeof(got));
        if (gc_record_lease_parse(rec, &got) != GC_EINVAL)
            harness_fail(__FILE__, __LINE__, "not refused: %s", bad[i]);
        ASSERT_EQ_INT(got.id[0], 0x5a); /* untouched on error */
        json_decref(rec);
    }
}

TEST(resident_without_name_is_refused)
{
    struct gc_resident_record got;
    json_t *rec = load("{\"op\":\"resident\",\"spec\":{},\"state\":\"loaded\"}");
    ASSERT_EQ_INT(gc_record_resident_parse(rec, &got), GC_EINVAL);
    json_decref(rec);
    rec = load("{\"op\":\"resident\",\"name\":null}");
    ASSERT_EQ_INT(gc_record_resident_parse(rec, &got), GC_EINVAL);
    json_decref(rec);
}

/* ---- the fold ---- */

TEST(replay_keeps_the_last_record_of_what_still_exists)
{
    struct gc_replay st;
    gc_replay_init(&st);
    fold(&st, "{\"op\":\"lease\",\"id\":\"lease-1\",\"holder\":\"a\",\"state\":\"queued\"}",
         "{\"op\":\"lease\",\"id\":\"lease-2\",\"holder\":\"b\",\"state\":\"queued\"}",
         "{\"op\":\"lease\",\"id\":\"lease-1\",\"holder\":\"a\",\"state\":\"granted\"}",
         "{\"op\":\"lend\",\"id\":\"lease-2\",\"state\":\"released\"}",
         "{\"op\":\"resident\",\"name\":\"val\",\"state\":\"loaded\"}",
         "{\"op\":\"resident\",\"name\":\"gen\",\"state\":\"loaded\"}",
         "{\"op\":\"resident\",\"name\":\"val\",\"state\":\"unloaded\"}",
         "{\"op\":\"rdel\",\"name\":\"gen\"}", NULL);
    ASSERT_EQ_INT(json_object_size(st.leases), 1);
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(st.leases, "lease-1"), "state")),
                 "granted");
    ASSERT(json_object_get(st.leases, "lease-2") == NULL);
    ASSERT_EQ_INT(json_object_size(st.residents), 1);
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(st.residents, "val"), "state")),
                 "unloaded");
    ASSERT(json_object_get(st.residents, "gen") == NULL);
    /* Ended, lease-2's id is still used. */
    ASSERT_EQ_U64(st.next_id, 3);
    ASSERT_EQ_U64(st.next_seq, 0);
    gc_replay_free(&st);

    /* Deleted and registered again: it exists. */
    gc_replay_init(&st);
    fold(&st, "{\"op\":\"resident\",\"name\":\"val\"}", "{\"op\":\"rdel\",\"name\":\"val\"}",
         "{\"op\":\"resident\",\"name\":\"val\",\"bytes\":5}", NULL);
    ASSERT_EQ_INT(
        json_integer_value(json_object_get(json_object_get(st.residents, "val"), "bytes")), 5);
    gc_replay_free(&st);
}

TEST(replay_next_id_passes_every_id_and_mark)
{
    struct gc_replay st;
    gc_replay_init(&st);
    ASSERT_EQ_U64(st.next_id, 0);
    fold(&st, "{\"op\":\"lend\",\"id\":\"pfx-123\",\"state\":\"expired\"}", NULL);
    ASSERT_EQ_U64(st.next_id, 124);
    /* The number after the last '-'. */
    fold(&st, "{\"op\":\"lease\",\"id\":\"my-holder-200\",\"holder\":\"h\",\"state\":\"queued\"}",
         NULL);
    ASSERT_EQ_U64(st.next_id, 201);
    /* A lower id does not lower it. */
    fold(&st, "{\"op\":\"lend\",\"id\":\"lease-5\",\"state\":\"released\"}", NULL);
    ASSERT_EQ_U64(st.next_id, 201);
    /* A mark above every id wins; next_seq is the marks'. */
    fold(&st, "{\"op\":\"ids\",\"next_id\":1225,\"next_seq\":40}", NULL);
    ASSERT_EQ_U64(st.next_id, 1225);
    ASSERT_EQ_U64(st.next_seq, 40);
    /* A mark lower than seen (records lost after it) lowers nothing. */
    fold(&st, "{\"op\":\"ids\",\"next_id\":300,\"next_seq\":12}", NULL);
    ASSERT_EQ_U64(st.next_id, 1225);
    ASSERT_EQ_U64(st.next_seq, 40);
    /* Nor do nonsense marks and ids. */
    fold(&st, "{\"op\":\"ids\",\"next_id\":-5,\"next_seq\":-5}",
         "{\"op\":\"ids\",\"next_id\":\"9999\",\"next_seq\":1e9}",
         "{\"op\":\"lend\",\"id\":\"lease-abc\",\"state\":\"released\"}",
         "{\"op\":\"lend\",\"id\":\"nodash\",\"state\":\"released\"}", NULL);
    ASSERT_EQ_U64(st.next_id, 1225);
    ASSERT_EQ_U64(st.next_seq, 40);
    /* An id above the marks wins again. */
    fold(&st, "{\"op\":\"lend\",\"id\":\"lease-5000\",\"state\":\"released\"}", NULL);
    ASSERT_EQ_U64(st.next_id, 5001);
    gc_replay_free(&st);
}

TEST(replay_id_past_the_last_saturates)
{
    struct gc_replay st;
    gc_replay_init(&st);
    fold(&st, "{\"op\":\"lend\",\"id\":\"lease-99999999999999999999999\",\"state\":\"expired\"}",
         NULL);
    ASSERT_EQ_U64(st.next_id, (uint64_t)GC_LEASE_ID_LAST + 1);
    gc_replay_free(&st);

    gc_replay_init(&st);
    fold(&st,
         "{\"op\":\"lease\",\"id\":\"lease-9223372036854775807\",\"holder\":\"h\","
         "\"state\":\"queued\"}",
         NULL);
    ASSERT_EQ_U64(st.next_id, (uint64_t)GC_LEASE_ID_LAST + 1);
    /* The last id itself: the next is one past it, none left to issue. */
    fold(&st, "{\"op\":\"lend\",\"id\":\"lease-9223372036854775806\",\"state\":\"expired\"}", NULL);
    ASSERT_EQ_U64(st.next_id, (uint64_t)GC_LEASE_ID_LAST + 1);
    gc_replay_free(&st);

    gc_replay_init(&st);
    fold(&st, "{\"op\":\"lend\",\"id\":\"lease-9223372036854775805\",\"state\":\"expired\"}", NULL);
    ASSERT_EQ_U64(st.next_id, (uint64_t)GC_LEASE_ID_LAST);
    gc_replay_free(&st);
}

TEST(replay_skips_unknown_ops_and_records_without_their_key)
{
    struct gc_replay st;
    gc_replay_init(&st);
    fold(&st, "{\"op\":\"lease\",\"id\":\"lease-1\",\"holder\":\"a\",\"state\":\"queued\"}",
         "{\"op\":\"resident\",\"name\":\"val\"}", NULL);
    fold(&st, "{\"op\":\"frobnicate\",\"id\":\"lease-77\",\"name\":\"x\"}",
         "{\"op\":\"idz\",\"next_id\":5000,\"next_seq\":5000}",
         "{\"id\":\"lease-78\",\"name\":\"y\"}", "{\"op\":7,\"id\":\"lease-79\"}",
         "{\"op\":\"lease\",\"holder\":\"b\",\"state\":\"queued\"}",
         "{\"op\":\"lease\",\"id\":80,\"holder\":\"b\",\"state\":\"queued\"}",
         "{\"op\":\"lend\",\"state\":\"released\"}", "{\"op\":\"resident\",\"state\":\"loaded\"}",
         "{\"op\":\"rdel\"}", "{\"op\":\"rdel\",\"name\":7}", "[\"lease\",\"lease-81\"]",
         "\"rdel\"", NULL);
    ASSERT_EQ_INT(json_object_size(st.leases), 1);
    ASSERT(json_object_get(st.leases, "lease-1") != NULL);
    ASSERT_EQ_INT(json_object_size(st.residents), 1);
    ASSERT(json_object_get(st.residents, "val") != NULL);
    ASSERT_EQ_U64(st.next_id, 2);
    ASSERT_EQ_U64(st.next_seq, 0);
    gc_replay_free(&st);
}

TEST(replay_folds_what_the_encoders_write)
{
    struct gc_replay st;
    struct gc_lease l, got;
    struct gc_resident r;
    json_t *rec;
    sample_lease(&l);
    sample_resident(&r);
    gc_replay_init(&st);
    rec = gc_record_ids(1024, 6);
    gc_replay_record(&st, rec);
    json_decref(rec);
    rec = gc_record_lease(&l);
    gc_replay_record(&st, rec);
    json_decref(rec);
    rec = gc_record_resident(&r, NULL, "uid:1000");
    gc_replay_record(&st, rec);
    json_decref(rec);
    ASSERT_EQ_INT(gc_record_lease_parse(json_object_get(st.leases, "lease-42"), &got), 0);
    ASSERT_STREQ(got.holder, "train");
    ASSERT(json_object_get(st.residents, "validation") != NULL);
    ASSERT_EQ_U64(st.next_id, 1024);
    ASSERT_EQ_U64(st.next_seq, 6);

    rec = gc_record_lease_end(l.id, GC_LEASE_RELEASED);
    gc_replay_record(&st, rec);
    json_decref(rec);
    rec = gc_record_resident_delete(r.name);
    gc_replay_record(&st, rec);
    json_decref(rec);
    ASSERT_EQ_INT(json_object_size(st.leases), 0);
    ASSERT_EQ_INT(json_object_size(st.residents), 0);
    gc_replay_free(&st);
    gc_replay_free(&st); /* freeing twice is harmless */
}
