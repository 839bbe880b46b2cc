/* size.c - human size strings: parse "4.7Gi" / "20G" / "1000", format 19.6Gi. */
#include "size.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"

struct size_unit {
    const char *name;
    uint64_t multiplier;
};

static const struct size_unit size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1000ULL},
    {"kb", 1000ULL},
    {"m", 1000ULL * 1000},
    {"mb", 1000ULL * 1000},
    {"g", 1000ULL * 1000 * 1000},
    {"gb", 1000ULL * 1000 * 1000},
    {"t", 1000ULL * 1000 * 1000 * 1000},
    {"tb", 1000ULL * 1000 * 1000 * 1000},
    {"ki", 1ULL << 10},
    {"kib", 1ULL << 10},
    {"mi", 1ULL << 20},
    {"mib", 1ULL << 20},
    {"gi", 1ULL << 30},
    {"gib", 1ULL << 30},
    {"ti", 1ULL << 40},
    {"tib", 1ULL << 40},
};

static int size_unit_lookup(const char *name, uint64_t *ret_multiplier)
{
    for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        if (strcasecmp(name, size_units[i].name) == 0) {
            *ret_multiplier = size_units[i].multiplier;
            return 0;
        }
    }
    return GC_EINVAL;
}

int gpucoord_size_parse(const char *text, uint64_t *ret_bytes)
{
    uint64_t whole = 0, frac = 0, frac_scale = 1, multiplier, bytes;
    const char *p = text;
    int ndigits = 0, nfrac = 0;

    if (text == NULL || strlen(text) > GC_SIZE_TEXT_MAX)
        return GC_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++, ndigits++) {
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
            return GC_EINVAL;
    }
    if (*p == '.') {
        p++;
        for (; *p >= '0' && *p <= '9'; p++, nfrac++) {
            if (nfrac >= 12)
                return GC_EINVAL;
            frac = frac * 10 + (uint64_t)(*p - '0');
            frac_scale *= 10;
        }
        if (nfrac == 0)
            return GC_EINVAL;
    }
    if (ndigits == 0)
        return GC_EINVAL;
    if (*p == ' ' && p[1] != '\0')
        p++; /* "4.7 Gi": one space before a unit, never a trailing one */
    if (size_unit_lookup(p, &multiplier) < 0)
        return GC_EINVAL;
    if (nfrac > 0 && multiplier == 1)
        return GC_EINVAL; /* a fraction of a byte */
    if (__builtin_mul_overflow(whole, multiplier, &bytes))
        return GC_EINVAL;
    if (frac > 0) {
        /* frac/frac_scale * multiplier, exact in 128 bits. */
        unsigned __int128 part = (unsigned __int128)frac * multiplier / frac_scale;
        if (__builtin_add_overflow(bytes, (uint64_t)part, &bytes))
            return GC_EINVAL;
    }
    *ret_bytes = bytes;
    return 0;
}

char *gpucoord_size_format(uint64_t bytes, char *buf, size_t buflen)
{
    static const char *names[] = {"Ti", "Gi", "Mi", "Ki"};
    static const int shifts[] = {40, 30, 20, 10};

    for (size_t i = 0; i < 4; i++) {
        uint64_t unit = 1ULL << shifts[i];
        if (bytes >= unit) {
            /* Hundredths of the unit, rounded to nearest - but never to a value that
             * gpucoord_size_parse() could not read back (past 2^64 - 1). */
            unsigned __int128 h = ((unsigned __int128)bytes * 100 + unit / 2) >> shifts[i];
            if ((h * unit) / 100 > UINT64_MAX)
                h--;
            uint64_t whole = (uint64_t)(h / 100), frac = (uint64_t)(h % 100);
            if (frac == 0)
                snprintf(buf, buflen, "%llu%s", (unsigned long long)whole, names[i]);
            else if (frac % 10 == 0)
                snprintf(buf, buflen, "%llu.%llu%s", (unsigned long long)whole,
                         (unsigned long long)(frac / 10), names[i]);
            else
                snprintf(buf, buflen, "%llu.%02llu%s", (unsigned long long)whole,
                         (unsigned long long)frac, names[i]);
            return buf;
        }
    }
    snprintf(buf, buflen, "%llu", (unsigned long long)bytes);
    return buf;
}
