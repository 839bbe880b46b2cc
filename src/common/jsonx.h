/*
 * jsonx.h - strict, capped JSON input on top of jansson.
 *
 * Request bodies are parsed with gc_json_parse() (depth and size capped before
 * jansson sees them) and read with the typed getters, which explain exactly
 * what is wrong in a message fit for an API error.
 */
#ifndef GC_JSONX_H
#define GC_JSONX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of arrays/objects accepted in a request body. */
#define GC_JSON_DEPTH_MAX 16

struct gc_jerr {
    char msg[256];
};

/*
 * gc_json_parse: parses buf[0..len) as one JSON object. On success *ret_obj owns
 * a new reference. On error returns GC_EINVAL (or GC_ETOOBIG when nested deeper
 * than max_depth) and fills err.
 */
int gc_json_parse(const char *buf, size_t len, int max_depth, json_t **ret_obj,
                  struct gc_jerr *err);

/*
 * gc_json_parse_lifted: gc_json_parse for a body whose top-level member key holds a
 * long string (a base64 upload), without the copies jansson makes of it (its lexer's
 * and the string's own, each as long as the body). When that member is a string of
 * at least min_len bytes of printable ASCII without escapes, the object gets "" for
 * it and *ret_str / *ret_len point at its text inside buf; otherwise the whole body
 * is parsed as by gc_json_parse and *ret_str is NULL. Errors as gc_json_parse.
 */
int gc_json_parse_lifted(const char *buf, size_t len, int max_depth, const char *key,
                         size_t min_len, json_t **ret_obj, const char **ret_str, size_t *ret_len,
                         struct gc_jerr *err);

/* Fails with "unknown field 'x'" when obj has a key not in allowed (NULL-terminated). */
int gc_json_only_keys(const json_t *obj, const char *const *allowed, struct gc_jerr *err);

/*
 * Typed getters. required=false and the key absent: returns 0 and leaves *ret
 * alone. Present with the wrong type or out of range: GC_EINVAL and err says why.
 */
int gc_json_get_str(const json_t *obj, const char *key, bool required, size_t max_len,
                    const char **ret, struct gc_jerr *err);
int gc_json_get_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                    int64_t *ret, struct gc_jerr *err);
int gc_json_get_bool(const json_t *obj, const char *key, bool required, bool *ret,
                     struct gc_jerr *err);
/* Seconds as a number (integer or real) in [min, max]. */
int gc_json_get_seconds(const json_t *obj, const char *key, bool required, double min, double max,
                        double *ret, struct gc_jerr *err);
/* Bytes: a non-negative integer, or a size string ("20Gi"), at most max. */
int gc_json_get_bytes(const json_t *obj, const char *key, bool required, uint64_t max,
                      uint64_t *ret, struct gc_jerr *err);

/* Dumps obj compactly into a malloc'd string (caller frees); NULL on failure. */
char *gc_json_dump(const json_t *obj);

#endif
