/*
 * form.h - HTML form bodies: application/x-www-form-urlencoded and
 * multipart/form-data (RFC 7578 / RFC 2046).
 *
 * The generation server reads `prompt` and `seed` this way, as the original
 * FastAPI `Form(...)` endpoint did; clients send either encoding. The parser
 * works on a body already in memory, never reads past it, and caps every
 * client-controlled quantity (below). Multipart lines must end in CRLF, as
 * RFC 2046 requires; a body whose closing delimiter ("--boundary--") is
 * missing is rejected, so a truncated upload is never taken for a whole one.
 */
#ifndef GC_FORM_H
#define GC_FORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest body accepted (GC_ETOOBIG above it). */
#define GC_FORM_BODY_MAX ((size_t)16 << 20)
/* Most fields in one body (GC_ETOOBIG above it). */
#define GC_FORM_FIELDS_MAX 64
/* Longest field name, in bytes after decoding. */
#define GC_FORM_NAME_MAX 256
/* Longest filename and part Content-Type kept from a multipart part. */
#define GC_FORM_FILENAME_MAX   1024
#define GC_FORM_PART_CTYPE_MAX 256
/* Longest header block of one multipart part. */
#define GC_FORM_PART_HEADERS_MAX 8192
/* Longest Content-Type header of the request. */
#define GC_FORM_CTYPE_MAX 1024
/* Longest multipart boundary (RFC 2046). */
#define GC_FORM_BOUNDARY_MAX 70

struct gc_form_field {
    char *name;  /* NUL-terminated, no NUL inside */
    char *value; /* value_len bytes, followed by a NUL (values may hold NULs) */
    size_t value_len;
    char *filename;     /* multipart file parts only, else NULL ("" when sent empty) */
    char *content_type; /* the part's Content-Type when sent, else NULL */
};

struct gc_form {
    size_t count;
    struct gc_form_field *fields; /* in body order */
};

/*
 * gc_form_parse: parses body[0..len) as content_type says (the request's
 * Content-Type header: "application/x-www-form-urlencoded[; charset=...]" or
 * "multipart/form-data; boundary=..." with the boundary quoted or not).
 * Urlencoded: pairs split on '&', '+' is a space, %XX is decoded (a bad escape
 * is an error), empty pairs are skipped, a pair without '=' has an empty value.
 * On success *ret_form is a new form (free with gc_form_free()). On error
 * returns GC_EINVAL (malformed, unsupported content type), GC_ETOOBIG (body
 * over GC_FORM_BODY_MAX, more than GC_FORM_FIELDS_MAX fields) or GC_ENOMEM,
 * and writes a one-line lowercase reason into errbuf (when errlen > 0).
 */
int gc_form_parse(const char *content_type, const char *body, size_t len, struct gc_form **ret_form,
                  char *errbuf, size_t errlen);

/* The first field called name, or NULL. The field belongs to form. */
const struct gc_form_field *gc_form_get(const struct gc_form *form, const char *name);

/*
 * gc_form_get_text: the value of field name as text: valid UTF-8, no NUL, at
 * most max_chars code points. *ret points into form. Absent and !required:
 * returns 0 and leaves *ret alone. Otherwise GC_EINVAL with a reason.
 */
int gc_form_get_text(const struct gc_form *form, const char *name, bool required, size_t max_chars,
                     const char **ret, char *errbuf, size_t errlen);

/*
 * gc_form_get_int: the value of field name as a decimal integer in [min, max]
 * (surrounding spaces allowed, an optional sign). Absent, or empty when not
 * required (browsers send empty inputs as ""): returns 0 and leaves *ret
 * alone. Otherwise GC_EINVAL with a reason.
 */
int gc_form_get_int(const struct gc_form *form, const char *name, bool required, int64_t min,
                    int64_t max, int64_t *ret, char *errbuf, size_t errlen);

/* Frees the form and its fields. NULL is a no-op. */
void gc_form_free(struct gc_form *form);

#endif
