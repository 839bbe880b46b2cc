/* test_common.c - size strings, names, JSON input, the error table. */
#include "harness.h"

#include "common/err.h"
#include "common/jsonx.h"
#include "common/names.h"
#include "common/size.h"

static uint64_t parse_ok(const char *s)
{
    uint64_t v = 12345;
    int rc = gc_size_parse(s, &v);
    if (rc != 0)
        harness_fail(__FILE__, __LINE__, "gc_size_parse(\"%s\") failed: %d", s, rc);
    return v;
}

TEST(size_units)
{
    ASSERT_EQ_U64(parse_ok("0"), 0);
    ASSERT_EQ_U64(parse_ok("1000"), 1000);
    ASSERT_EQ_U64(parse_ok("1Ki"), 1024);
    ASSERT_EQ_U64(parse_ok("512Mi"), 512ULL << 20);
    ASSERT_EQ_U64(parse_ok("20Gi"), 20ULL << 30);
    ASSERT_EQ_U64(parse_ok("2Ti"), 2ULL << 40);
    ASSERT_EQ_U64(parse_ok("1K"), 1000);
    ASSERT_EQ_U64(parse_ok("1KB"), 1000);
    ASSERT_EQ_U64(parse_ok("3M"), 3000000);
    ASSERT_EQ_U64(parse_ok("1G"), 1000000000ULL);
    ASSERT_EQ_U64(parse_ok("1GB"), 1000000000ULL);
    ASSERT_EQ_U64(parse_ok("1T"), 1000000000000ULL);
    ASSERT_EQ_U64(parse_ok("24564Mi"), 24564ULL << 20);
    ASSERT_EQ_U64(parse_ok("1GiB"), 1ULL << 30);
    ASSERT_EQ_U64(parse_ok("1 Gi"), 1ULL << 30);
}

TEST(size_fractions)
{
    ASSERT_EQ_U64(parse_ok("4.7Gi"), 5046586572ULL); /* floor(4.7 * 2^30) */
    ASSERT_EQ_U64(parse_ok("19.6Gi"), 21045339750ULL);
    ASSERT_EQ_U64(parse_ok("1.5G"), 1500000000ULL);
    ASSERT_EQ_U64(parse_ok("0.5Ki"), 512);
}

TEST(size_rejects)
{
    static const char *bad[] = {"",
                                "-1",
                                "-1Gi",
                                "abc",
                                "1X",
                                "1.5",
                                "1.",
                                ".5Gi",
                                "1e9",
                                "Gi",
                                "1Gi ",
                                " 1Gi",
                                "1 ",
                                "1  Gi",
                                "18446744073709551616",
                                "20000000Ti",
                                "1.0000000000001Gi",
                                "1..2Gi",
                                "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 777;
        int rc = gc_size_parse(bad[i], &v);
        if (rc != GC_EINVAL || v != 777)
            harness_fail(__FILE__, __LINE__, "\"%s\" accepted (rc %d, v %llu)", bad[i], rc,
                         (unsigned long long)v);
    }
    uint64_t v = 5;
    ASSERT_EQ_INT(gc_size_parse(NULL, &v), GC_EINVAL);
    ASSERT_EQ_U64(parse_ok("18446744073709551615"), UINT64_MAX);
}

TEST(size_format)
{
    char buf[GC_SIZE_BUF];
    ASSERT_STREQ(gc_size_format(0, buf, sizeof(buf)), "0");
    ASSERT_STREQ(gc_size_format(1023, buf, sizeof(buf)), "1023");
    ASSERT_STREQ(gc_size_format(1024, buf, sizeof(buf)), "1Ki");
    ASSERT_STREQ(gc_size_format(512ULL << 20, buf, sizeof(buf)), "512Mi");
    ASSERT_STREQ(gc_size_format(5046586572ULL, buf, sizeof(buf)), "4.7Gi");
    ASSERT_STREQ(gc_size_format(21045339750ULL, buf, sizeof(buf)), "19.6Gi");
    ASSERT_STREQ(gc_size_format(3ULL << 40, buf, sizeof(buf)), "3Ti");
    ASSERT_STREQ(gc_size_format((1ULL << 30) * 3 / 2, buf, sizeof(buf)), "1.5Gi");
    ASSERT_STREQ(gc_size_format(1023ULL << 20, buf, sizeof(buf)), "1023Mi");
    ASSERT_STREQ(gc_size_format((3ULL << 19) + 1, buf, sizeof(buf)), "1.5Mi");
}

TEST(size_format_always_parses_back)
{
    /* Found by fuzzing: rounding up near 2^64 printed a size that does not parse. */
    static const uint64_t values[] = {UINT64_MAX,
                                      UINT64_MAX - 1,
                                      UINT64_MAX - (1ULL << 32),
                                      (1ULL << 63) + 12345,
                                      1ULL << 40,
                                      5046586572ULL,
                                      1024};
    char buf[GC_SIZE_BUF];
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint64_t back = 0;
        gc_size_format(values[i], buf, sizeof(buf));
        if (gc_size_parse(buf, &back) != 0)
            harness_fail(__FILE__, __LINE__, "format(%llu) = '%s' does not parse",
                         (unsigned long long)values[i], buf);
        /* Within half a hundredth of the unit it was printed in. */
        double rel =
            (double)(back > values[i] ? back - values[i] : values[i] - back) / (double)values[i];
        ASSERT(rel < 0.01);
    }
    ASSERT_STREQ(gc_size_format(UINT64_MAX, buf, sizeof(buf)), "16777215.99Ti");
}

TEST(names)
{
    ASSERT(gc_name_valid("validation"));
    ASSERT(gc_name_valid("gen-server_1.a"));
    ASSERT(!gc_name_valid(""));
    ASSERT(!gc_name_valid(NULL));
    ASSERT(!gc_name_valid("has space"));
    ASSERT(!gc_name_valid("slash/name"));
    ASSERT(!gc_name_valid("\xc3\xa9t\xc3\xa9"));
    char longname[66];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    ASSERT(!gc_name_valid(longname));
    longname[64] = '\0';
    ASSERT(gc_name_valid(longname));
}

TEST(error_table)
{
    ASSERT_STREQ(gpucoord_err_name(GC_ENEVERFITS), "never_fits");
    ASSERT_EQ_INT(gc_err_http_status(GC_ENEVERFITS), 409);
    ASSERT_EQ_INT(gc_err_http_status(GC_ECOULDNOTFREE), 503);
    ASSERT_EQ_INT(gc_err_from_name("could_not_free"), GC_ECOULDNOTFREE);
    ASSERT_EQ_INT(gc_err_from_name("no-such-code"), GC_EINTERNAL);
    ASSERT_STREQ(gpucoord_strerror(12345), "unknown error");
    ASSERT(gpucoord_strerror(GC_EINVAL)[0] != '\0');
}

TEST(json_parse_and_getters)
{
    struct gc_jerr err;
    json_t *obj = NULL;
    const char *body = "{\"holder\":\"gen\",\"bytes\":1024,\"size\":\"2Gi\",\"ttl_s\":1.5,"
                       "\"neg\":-5,\"flag\":true}";
    ASSERT_EQ_INT(gc_json_parse(body, strlen(body), 4, &obj, &err), 0);
    const char *s = NULL;
    ASSERT_EQ_INT(gc_json_get_str(obj, "holder", true, 64, &s, &err), 0);
    ASSERT_STREQ(s, "gen");
    uint64_t b = 0;
    ASSERT_EQ_INT(gc_json_get_bytes(obj, "bytes", true, UINT64_MAX, &b, &err), 0);
    ASSERT_EQ_U64(b, 1024);
    ASSERT_EQ_INT(gc_json_get_bytes(obj, "size", true, UINT64_MAX, &b, &err), 0);
    ASSERT_EQ_U64(b, 2ULL << 30);
    ASSERT_EQ_INT(gc_json_get_bytes(obj, "neg", true, UINT64_MAX, &b, &err), GC_EINVAL);
    ASSERT(strstr(err.msg, "negative") != NULL);
    ASSERT_EQ_INT(gc_json_get_bytes(obj, "holder", true, UINT64_MAX, &b, &err), GC_EINVAL);
    ASSERT_EQ_INT(gc_json_get_bytes(obj, "missing", true, UINT64_MAX, &b, &err), GC_EINVAL);
    ASSERT(strstr(err.msg, "missing field 'missing'") != NULL);
    ASSERT_EQ_INT(gc_json_get_bytes(obj, "missing", false, UINT64_MAX, &b, &err), 0);
    double d = 0;
    ASSERT_EQ_INT(gc_json_get_seconds(obj, "ttl_s", true, 0, 10, &d, &err), 0);
    ASSERT_NEAR(d, 1.5, 1e-9);
    ASSERT_EQ_INT(gc_json_get_seconds(obj, "ttl_s", true, 0, 1, &d, &err), GC_EINVAL);
    int64_t i = 0;
    ASSERT_EQ_INT(gc_json_get_int(obj, "bytes", true, 0, 100, &i, &err), GC_EINVAL);
    ASSERT_EQ_INT(gc_json_get_int(obj, "ttl_s", true, 0, 100, &i, &err), GC_EINVAL);
    bool f = false;
    ASSERT_EQ_INT(gc_json_get_bool(obj, "flag", true, &f, &err), 0);
    ASSERT(f);
    static const char *const allowed[] = {"holder", "bytes", NULL};
    ASSERT_EQ_INT(gc_json_only_keys(obj, allowed, &err), GC_EINVAL);
    ASSERT(strstr(err.msg, "unknown field") != NULL);
    json_decref(obj);
}

TEST(json_rejects)
{
    struct gc_jerr err;
    json_t *obj = NULL;
    ASSERT_EQ_INT(gc_json_parse("{", 1, 4, &obj, &err), GC_EINVAL);
    ASSERT_EQ_INT(gc_json_parse("[1]", 3, 4, &obj, &err), GC_EINVAL);
    ASSERT_EQ_INT(gc_json_parse("", 0, 4, &obj, &err), GC_EINVAL);
    ASSERT_EQ_INT(gc_json_parse("{\"a\":1,\"a\":2}", 13, 4, &obj, &err), GC_EINVAL);
    const char *deep = "{\"a\":[[[[[1]]]]]}";
    ASSERT_EQ_INT(gc_json_parse(deep, strlen(deep), 4, &obj, &err), GC_ETOOBIG);
    const char *brackets_in_string = "{\"a\":\"[[[[[[[[[[\"}";
    ASSERT_EQ_INT(gc_json_parse(brackets_in_string, strlen(brackets_in_string), 2, &obj, &err), 0);
    json_decref(obj);
    const char *huge = "{\"bytes\":99999999999999999999999}";
    ASSERT_EQ_INT(gc_json_parse(huge, strlen(huge), 4, &obj, &err), GC_EINVAL);
}

/* body with "data" holding n copies of fill, between before and after. */
static char *lift_body(const char *before, char fill, size_t n, const char *after)
{
    size_t a = strlen(before), c = strlen(after);
    char *s = malloc(a + n + c + 1);
    memcpy(s, before, a);
    memset(s + a, fill, n);
    memcpy(s + a + n, after, c + 1);
    return s;
}

TEST(json_parse_lifted_reads_a_long_string_in_place)
{
    struct gc_jerr err;
    json_t *obj = NULL;
    const char *str = NULL, *v = NULL;
    size_t len = 0;
    char *body = lift_body("{\"prompt\":\"a cube\", \"nested\":{\"data\":\"x\"}, \"data\" : \"",
                           'Q', 100000, "\", \"n\":[1,{\"a\":\"}\"}]}");

    ASSERT_EQ_INT(gc_json_parse_lifted(body, strlen(body), 4, "data", 1024, &obj, &str, &len, &err),
                  0);
    ASSERT_EQ_U64(len, 100000);
    ASSERT(str == strchr(body, 'Q')); /* points into the body: no copy */
    ASSERT_EQ_INT(gc_json_get_str(obj, "data", true, SIZE_MAX, &v, &err), 0);
    ASSERT_STREQ(v, "");
    ASSERT_EQ_INT(gc_json_get_str(obj, "prompt", true, 64, &v, &err), 0);
    ASSERT_STREQ(v, "a cube");
    json_decref(obj);
    free(body);
}

TEST(json_parse_lifted_leaves_the_rest_to_jansson)
{
    struct gc_jerr err;
    json_t *obj = NULL;
    const char *str = NULL, *v = NULL;
    size_t len = 0;
    char *body;

    /* Shorter than min_len: parsed whole. */
    body = lift_body("{\"data\":\"", 'A', 1000, "\"}");
    ASSERT_EQ_INT(gc_json_parse_lifted(body, strlen(body), 4, "data", 1024, &obj, &str, &len, &err),
                  0);
    ASSERT(str == NULL);
    ASSERT_EQ_INT(gc_json_get_str(obj, "data", true, SIZE_MAX, &v, &err), 0);
    ASSERT_EQ_U64(strlen(v), 1000);
    json_decref(obj);
    free(body);
    /* An escape inside: parsed whole, the string read from the object. */
    body = lift_body("{\"data\":\"\\/", 'A', 10000, "\"}");
    ASSERT_EQ_INT(gc_json_parse_lifted(body, strlen(body), 4, "data", 1024, &obj, &str, &len, &err),
                  0);
    ASSERT(str == NULL);
    ASSERT_EQ_INT(gc_json_get_str(obj, "data", true, SIZE_MAX, &v, &err), 0);
    ASSERT_EQ_U64(strlen(v), 10001);
    json_decref(obj);
    free(body);
    /* Not a string: jansson's answer, and the getter's complaint. */
    body = lift_body("{\"data\":[\"", 'A', 10000, "\"]}");
    ASSERT_EQ_INT(gc_json_parse_lifted(body, strlen(body), 4, "data", 1024, &obj, &str, &len, &err),
                  0);
    ASSERT(str == NULL);
    ASSERT_EQ_INT(gc_json_get_str(obj, "data", true, SIZE_MAX, &v, &err), GC_EINVAL);
    json_decref(obj);
    free(body);
    /* A duplicate is still refused, and broken JSON is still broken. */
    body = lift_body("{\"data\":\"", 'A', 10000, "\", \"data\":\"B\"}");
    ASSERT_EQ_INT(gc_json_parse_lifted(body, strlen(body), 4, "data", 1024, &obj, &str, &len, &err),
                  GC_EINVAL);
    free(body);
    body = lift_body("{\"data\":\"", 'A', 10000, "\", \"n\": tru}");
    ASSERT_EQ_INT(gc_json_parse_lifted(body, strlen(body), 4, "data", 1024, &obj, &str, &len, &err),
                  GC_EINVAL);
    free(body);
    body = lift_body("{\"data\":\"", 'A', 10000, "\"");
    ASSERT_EQ_INT(gc_json_parse_lifted(body, strlen(body), 4, "data", 1024, &obj, &str, &len, &err),
                  GC_EINVAL);
    free(body);
    /* Too deep stays too deep. */
    body = lift_body("{\"data\":\"", 'A', 10000, "\", \"d\":[[[[[1]]]]]}");
    ASSERT_EQ_INT(gc_json_parse_lifted(body, strlen(body), 4, "data", 1024, &obj, &str, &len, &err),
                  GC_ETOOBIG);
    free(body);
}
