/*
 * fuzz_size.c - gpucoord_size_parse() and gpucoord_size_format() (src/common/size.c).
 *
 * The input, as a NUL-terminated string, goes to the parser. Properties:
 * - a string of digits alone parses to exactly what strtoull reads;
 * - an accepted string is at most GC_SIZE_TEXT_MAX bytes;
 * - format() fits GC_SIZE_BUF and parse(format(x)) is x within format's
 *   rounding (two decimals of its unit), for the parsed x and for the input's
 *   first 8 bytes read as a number.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "common/size.h"
#include "fuzz.h"

static void check_round_trip(uint64_t bytes)
{
    char text[GC_SIZE_BUF];
    uint64_t back = 0, unit = 1, diff;
    size_t n;

    /* Fill first, so an unterminated result is seen. */
    memset(text, 'x', sizeof(text));
    FUZZ_CHECK(gpucoord_size_format(bytes, text, sizeof(text)) == text);
    n = strnlen(text, sizeof(text));
    FUZZ_CHECK(n > 0 && n < sizeof(text));
    if (gpucoord_size_parse(text, &back) != 0) {
        fprintf(stderr, "format(%llu) = '%s' does not parse\n", (unsigned long long)bytes, text);
        FUZZ_CHECK(!"parse(format(x)) succeeds");
    }
    for (int shift = 40; shift >= 10; shift -= 10) {
        if (bytes >= 1ULL << shift) {
            unit = 1ULL << shift;
            break;
        }
    }
    /* "%.2f" of the unit rounds by at most unit/200; allow unit/100 for the double. */
    diff = back > bytes ? back - bytes : bytes - back;
    if (diff > unit / 100) {
        fprintf(stderr, "format(%llu) = '%s' parses to %llu\n", (unsigned long long)bytes, text,
                (unsigned long long)back);
        FUZZ_CHECK(!"parse(format(x)) is close to x");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[256];
    uint64_t bytes = 0, raw = 0;
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    bool digits = n > 0;
    int rc;

    memcpy(text, data, n);
    text[n] = '\0';
    for (size_t i = 0; i < n; i++)
        digits = digits && text[i] >= '0' && text[i] <= '9';

    rc = gpucoord_size_parse(text, &bytes);
    FUZZ_CHECK(rc == 0 || rc < 0);
    if (rc == 0) {
        FUZZ_CHECK(strlen(text) <= GC_SIZE_TEXT_MAX);
        check_round_trip(bytes);
    }
    if (digits && strlen(text) == n) {
        char *end;
        unsigned long long v;
        errno = 0;
        v = strtoull(text, &end, 10);
        if (n <= GC_SIZE_TEXT_MAX && errno == 0)
            FUZZ_CHECK(rc == 0 && bytes == v);
        else if (errno == ERANGE)
            FUZZ_CHECK(rc < 0);
    }
    /* Format any 64-bit value, not only those a string can reach quickly. */
    memcpy(&raw, data, size < sizeof(raw) ? size : sizeof(raw));
    check_round_trip(raw);
    return 0;
}
