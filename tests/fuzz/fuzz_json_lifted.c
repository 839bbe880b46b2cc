/*
 * fuzz_json_lifted.c - gc_json_parse_lifted() (src/common/jsonx.c), which finds a
 * top-level string member in the raw text and leaves it out of what jansson parses.
 *
 * Property: it agrees with gc_json_parse() on every input — the same result code,
 * and when both accept, the same object once the lifted text is put back in place of
 * its "" (so the scan never misplaces a member, drops one, or makes a broken body
 * acceptable). The lifted text lies inside the input.
 */
#include <string.h>

#include "common/jsonx.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data, *str = NULL;
    json_t *whole = NULL, *lifted = NULL;
    struct gc_jerr err;
    size_t len = 0;
    int rc_whole, rc_lifted;

    rc_whole = gc_json_parse(buf, size, GC_JSON_DEPTH_MAX, &whole, &err);
    rc_lifted =
        gc_json_parse_lifted(buf, size, GC_JSON_DEPTH_MAX, "data", 0, &lifted, &str, &len, &err);
    FUZZ_CHECK(rc_whole == rc_lifted);
    if (rc_whole == 0) {
        if (str != NULL) {
            FUZZ_CHECK(str >= buf && str + len <= buf + size);
            FUZZ_CHECK(json_is_string(json_object_get(lifted, "data")) &&
                       json_string_length(json_object_get(lifted, "data")) == 0);
            json_object_set_new(lifted, "data", json_stringn(str, len));
        }
        FUZZ_CHECK(json_equal(whole, lifted));
    }
    json_decref(whole);
    json_decref(lifted);
    return 0;
}
