/* jsonx.c - strict, capped JSON input. */
#include "jsonx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "size.h"

static int jerr_set(struct gc_jerr *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int jerr_set(struct gc_jerr *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Nesting depth of buf, counting brackets outside strings; stops early past max. */
static int json_depth_exceeds(const char *buf, size_t len, int max_depth)
{
    int depth = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return 1;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

int gc_json_parse(const char *buf, size_t len, int max_depth, json_t **ret_obj, struct gc_jerr *err)
{
    json_error_t jerror;
    json_t *root;

    if (buf == NULL || len == 0)
        return jerr_set(err, GC_EINVAL, "request body must be a JSON object");
    if (json_depth_exceeds(buf, len, max_depth))
        return jerr_set(err, GC_ETOOBIG, "JSON nested deeper than %d levels", max_depth);
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerror);
    if (root == NULL)
        return jerr_set(err, GC_EINVAL, "malformed JSON at line %d column %d: %s", jerror.line,
                        jerror.column, jerror.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return jerr_set(err, GC_EINVAL, "request body must be a JSON object");
    }
    *ret_obj = root;
    return 0;
}

static bool json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && json_ws(*p))
        p++;
    return p;
}

/* Past the string whose opening quote is at p, or NULL when it does not end. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Past the value at p, or NULL. Only finds where it ends: jansson judges it. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;

    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        /* A number, true, false or null. Anything else (a stray quote or backslash
         * above all) ends the scan: it must read strings exactly where jansson and the
         * depth check do, or it could lift text that is not a string's. */
        const char *start = p;
        while (p < end && *p != '\0' && strchr("-+.0123456789eEtrufalsn", *p) != NULL)
            p++;
        return p > start ? p : NULL;
    }
    while (p < end) {
        if (*p == '"') {
            p = skip_string(p, end);
            if (p == NULL)
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0)
            return p + 1;
        p++;
    }
    return NULL;
}

/* The text of top-level member key, when it is a string of printable ASCII without
 * escapes (so that dropping it keeps the body's validity): [*ret_start, *ret_end). */
static bool find_plain_member(const char *buf, size_t len, const char *key, const char **ret_start,
                              const char **ret_end)
{
    const char *p = skip_ws(buf, buf + len), *end = buf + len;
    size_t klen = strlen(key);

    if (p >= end || *p != '{')
        return false;
    for (p++;;) {
        const char *k, *v;
        bool match;
        p = skip_ws(p, end);
        if (p >= end || *p != '"')
            return false;
        k = p + 1;
        p = skip_string(p, end);
        if (p == NULL)
            return false;
        match = (size_t)(p - 1 - k) == klen && memcmp(k, key, klen) == 0;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return false;
        v = skip_ws(p + 1, end);
        p = skip_value(v, end);
        if (p == NULL)
            return false;
        if (match) {
            if (*v != '"')
                return false;
            for (const char *q = v + 1; q < p - 1; q++) {
                unsigned char c = (unsigned char)*q;
                if (c < 0x20 || c > 0x7e || c == '\\')
                    return false;
            }
            *ret_start = v + 1;
            *ret_end = p - 1;
            return true;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',')
            return false;
        p++;
    }
}

int gc_json_parse_lifted(const char *buf, size_t len, int max_depth, const char *key,
                         size_t min_len, json_t **ret_obj, const char **ret_str, size_t *ret_len,
                         struct gc_jerr *err)
{
    const char *start, *stop;
    char *rest;
    size_t head, tail;
    int rc;

    *ret_str = NULL;
    *ret_len = 0;
    if (buf == NULL || !find_plain_member(buf, len, key, &start, &stop) ||
        (size_t)(stop - start) < min_len)
        return gc_json_parse(buf, len, max_depth, ret_obj, err);
    head = (size_t)(start - buf);
    tail = (size_t)(buf + len - stop);
    rest = malloc(head + tail + 1);
    if (rest == NULL)
        return jerr_set(err, GC_ENOMEM, "out of memory");
    memcpy(rest, buf, head);
    memcpy(rest + head, stop, tail);
    rest[head + tail] = '\0';
    rc = gc_json_parse(rest, head + tail, max_depth, ret_obj, err);
    free(rest);
    if (rc < 0)
        return rc;
    *ret_str = start;
    *ret_len = (size_t)(stop - start);
    return 0;
}

int gc_json_only_keys(const json_t *obj, const char *const *allowed, struct gc_jerr *err)
{
    const char *key;
    json_t *value;

    json_object_foreach((json_t *)obj, key, value)
    {
        bool known = false;
        (void)value;
        for (size_t i = 0; allowed[i] != NULL; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                known = true;
                break;
            }
        }
        if (!known)
            return jerr_set(err, GC_EINVAL, "unknown field '%.64s'", key);
    }
    return 0;
}

static json_t *json_field(const json_t *obj, const char *key, bool required, int *ret_rc,
                          struct gc_jerr *err)
{
    json_t *v = json_object_get(obj, key);

    *ret_rc = 0;
    if (v == NULL || json_is_null(v)) {
        if (required)
            *ret_rc = jerr_set(err, GC_EINVAL, "missing field '%s'", key);
        return NULL;
    }
    return v;
}

int gc_json_get_str(const json_t *obj, const char *key, bool required, size_t max_len,
                    const char **ret, struct gc_jerr *err)
{
    int rc;
    json_t *v = json_field(obj, key, required, &rc, err);

    if (v == NULL)
        return rc;
    if (!json_is_string(v))
        return jerr_set(err, GC_EINVAL, "field '%s' must be a string", key);
    if (json_string_length(v) > max_len)
        return jerr_set(err, GC_EINVAL, "field '%s' is longer than %zu characters", key, max_len);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return jerr_set(err, GC_EINVAL, "field '%s' contains a NUL character", key);
    *ret = json_string_value(v);
    return 0;
}

int gc_json_get_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                    int64_t *ret, struct gc_jerr *err)
{
    int rc;
    json_t *v = json_field(obj, key, required, &rc, err);
    json_int_t n;

    if (v == NULL)
        return rc;
    if (!json_is_integer(v))
        return jerr_set(err, GC_EINVAL, "field '%s' must be an integer", key);
    n = json_integer_value(v);
    if (n < min || n > max)
        return jerr_set(err, GC_EINVAL, "field '%s' must be between %lld and %lld", key,
                        (long long)min, (long long)max);
    *ret = n;
    return 0;
}

int gc_json_get_bool(const json_t *obj, const char *key, bool required, bool *ret,
                     struct gc_jerr *err)
{
    int rc;
    json_t *v = json_field(obj, key, required, &rc, err);

    if (v == NULL)
        return rc;
    if (!json_is_boolean(v))
        return jerr_set(err, GC_EINVAL, "field '%s' must be true or false", key);
    *ret = json_is_true(v);
    return 0;
}

int gc_json_get_seconds(const json_t *obj, const char *key, bool required, double min, double max,
                        double *ret, struct gc_jerr *err)
{
    int rc;
    json_t *v = json_field(obj, key, required, &rc, err);
    double d;

    if (v == NULL)
        return rc;
    if (!json_is_number(v))
        return jerr_set(err, GC_EINVAL, "field '%s' must be a number of seconds", key);
    d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return jerr_set(err, GC_EINVAL, "field '%s' must be between %g and %g seconds", key, min,
                        max);
    *ret = d;
    return 0;
}

int gc_json_get_bytes(const json_t *obj, const char *key, bool required, uint64_t max,
                      uint64_t *ret, struct gc_jerr *err)
{
    int rc;
    json_t *v = json_field(obj, key, required, &rc, err);
    uint64_t bytes;

    if (v == NULL)
        return rc;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0)
            return jerr_set(err, GC_EINVAL, "field '%s' must not be negative", key);
        bytes = (uint64_t)n;
    } else if (json_is_string(v)) {
        if (gc_size_parse(json_string_value(v), &bytes) < 0)
            return jerr_set(err, GC_EINVAL,
                            "field '%s' is not a size (bytes, or a string like \"20Gi\")", key);
    } else {
        return jerr_set(err, GC_EINVAL, "field '%s' must be an integer number of bytes", key);
    }
    if (bytes > max)
        return jerr_set(err, GC_EINVAL, "field '%s' is larger than %llu bytes", key,
                        (unsigned long long)max);
    *ret = bytes;
    return 0;
}

char *gc_json_dump(const json_t *obj)
{
    return json_dumps(obj, JSON_COMPACT);
}
