/*
 * fuzz_form.c - gc_form_parse() and its getters (src/common/form.c).
 *
 * Input layout: the first byte picks the request's Content-Type (its value
 * modulo 4, so '0'..'3' in the corpus):
 *   0  application/x-www-form-urlencoded
 *   1  multipart/form-data; boundary=gcfuzz
 *   2  multipart/form-data; boundary="gc fuzz'()+_,-./:=?" (quoted, every bchar)
 *   3  the Content-Type is the input up to the first '\n' (fuzzing the header
 *      parser itself), the body is the rest
 * and the rest of the input is the body.
 *
 * Properties, from form.h: every field is inside its caps, names hold no NUL,
 * values are NUL-terminated; the getters agree with the fields; an
 * urlencoded form re-encoded by hand parses back to the same fields, and so
 * does a multipart form rebuilt with a boundary absent from the values.
 */
#include <stdbool.h>
#include <string.h>

#include "common/err.h"
#include "common/form.h"
#include "fuzz.h"

#define URLENC "application/x-www-form-urlencoded"

static const char *const fixed_ctypes[] = {
    URLENC,
    "multipart/form-data; boundary=gcfuzz",
    "multipart/form-data; boundary=\"gc fuzz'()+_,-./:=?\"",
};

struct outbuf {
    char *p;
    size_t len, cap;
};

static void out_put(struct outbuf *o, const void *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *grown = realloc(o->p, cap);
        FUZZ_CHECK(grown != NULL);
        o->p = grown;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_str(struct outbuf *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void out_pct(struct outbuf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out_put(o, &s[i], 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            out_put(o, esc, 3);
        }
    }
}

/* A quoted-string with backslash escapes, as param_next() reads it. */
static void out_quoted(struct outbuf *o, const char *s)
{
    out_str(o, "\"");
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            out_str(o, "\\");
        out_put(o, s, 1);
    }
    out_str(o, "\"");
}

static bool same_fields(const struct gc_form *a, const struct gc_form *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        const struct gc_form_field *x = &a->fields[i], *y = &b->fields[i];
        if (strcmp(x->name, y->name) != 0 || x->value_len != y->value_len ||
            memcmp(x->value, y->value, x->value_len) != 0)
            return false;
        if ((x->filename == NULL) != (y->filename == NULL) ||
            (x->filename != NULL && strcmp(x->filename, y->filename) != 0))
            return false;
        if ((x->content_type == NULL) != (y->content_type == NULL) ||
            (x->content_type != NULL && strcmp(x->content_type, y->content_type) != 0))
            return false;
    }
    return true;
}

static void check_reparse(const struct gc_form *form, const char *ctype, const struct outbuf *body)
{
    struct gc_form *again = NULL;
    char err[256];
    int rc;

    if (body->len > GC_FORM_BODY_MAX)
        return;
    rc = gc_form_parse(ctype, body->p ? body->p : "", body->len, &again, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "rebuilt body refused (%d): %s\n", rc, err);
        FUZZ_CHECK(!"a rebuilt form parses");
    }
    FUZZ_CHECK(same_fields(form, again));
    gc_form_free(again);
}

static void check_urlencoded_round_trip(const struct gc_form *form)
{
    struct outbuf body = {0};

    for (size_t i = 0; i < form->count; i++)
        if (form->fields[i].filename != NULL || form->fields[i].content_type != NULL)
            return; /* not expressible in this encoding */
    for (size_t i = 0; i < form->count; i++) {
        const struct gc_form_field *f = &form->fields[i];
        if (i > 0)
            out_str(&body, "&");
        out_pct(&body, f->name, strlen(f->name));
        out_str(&body, "=");
        out_pct(&body, f->value, f->value_len);
    }
    check_reparse(form, URLENC, &body);
    free(body.p);
}

static void check_multipart_round_trip(const struct gc_form *form)
{
    struct outbuf body = {0};
    char boundary[32], delim[40], ctype[96];
    bool clash = true;

    for (unsigned attempt = 0; clash && attempt < 16; attempt++) {
        snprintf(boundary, sizeof(boundary), "gcfuzz-rebuilt-%u", attempt);
        snprintf(delim, sizeof(delim), "--%s", boundary);
        clash = false;
        for (size_t i = 0; i < form->count && !clash; i++)
            clash = memmem(form->fields[i].value, form->fields[i].value_len, delim,
                           strlen(delim)) != NULL;
    }
    if (clash)
        return;
    /* A header line cannot carry CR or LF (urlencoded names can). */
    for (size_t i = 0; i < form->count; i++)
        if (strpbrk(form->fields[i].name, "\r\n") != NULL ||
            (form->fields[i].filename != NULL && strpbrk(form->fields[i].filename, "\r\n")))
            return;
    for (size_t i = 0; i < form->count; i++) {
        const struct gc_form_field *f = &form->fields[i];
        out_str(&body, i == 0 ? "" : "\r\n");
        out_str(&body, delim);
        out_str(&body, "\r\nContent-Disposition: form-data; name=");
        out_quoted(&body, f->name);
        if (f->filename != NULL) {
            out_str(&body, "; filename=");
            out_quoted(&body, f->filename);
        }
        if (f->content_type != NULL) {
            out_str(&body, "\r\nContent-Type: ");
            out_str(&body, f->content_type);
        }
        out_str(&body, "\r\n\r\n");
        out_put(&body, f->value, f->value_len);
    }
    out_str(&body, form->count ? "\r\n" : "");
    out_str(&body, delim);
    out_str(&body, "--\r\n");
    snprintf(ctype, sizeof(ctype), "multipart/form-data; boundary=%s", boundary);
    check_reparse(form, ctype, &body);
    free(body.p);
}

static void check_getters(const struct gc_form *form, const char *name)
{
    const struct gc_form_field *f = gc_form_get(form, name);
    const char *text = NULL;
    int64_t v = 0;
    char err[256];
    int rc;

    rc = gc_form_get_text(form, name, true, 1024, &text, err, sizeof(err));
    if (rc == 0) {
        FUZZ_CHECK(f != NULL && text == f->value);
        FUZZ_CHECK(strlen(text) == f->value_len); /* text: no NUL inside */
    } else {
        FUZZ_CHECK(rc == GC_EINVAL && err[0] != '\0' && text == NULL);
    }
    if (f == NULL) {
        FUZZ_CHECK(rc == GC_EINVAL);
        FUZZ_CHECK(gc_form_get_text(form, name, false, 1024, &text, err, sizeof(err)) == 0);
        FUZZ_CHECK(text == NULL);
        return;
    }
    rc = gc_form_get_int(form, name, true, INT64_MIN, INT64_MAX, &v, err, sizeof(err));
    if (rc == 0) {
        FUZZ_CHECK(f != NULL && strtoll(f->value, NULL, 10) == v);
        rc = gc_form_get_int(form, name, true, v, v, &v, err, sizeof(err));
        FUZZ_CHECK(rc == 0);
        if (v < INT64_MAX)
            FUZZ_CHECK(gc_form_get_int(form, name, true, v + 1, INT64_MAX, &v, err, sizeof(err)) ==
                       GC_EINVAL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gc_form *form = (struct gc_form *)0x1;
    char ctype_buf[GC_FORM_CTYPE_MAX + 64], err[256];
    const char *ctype, *body;
    size_t len, total = 0;
    int rc;

    if (size == 0)
        return 0;
    body = (const char *)data + 1;
    len = size - 1;
    if (data[0] % 4 < 3) {
        ctype = fixed_ctypes[data[0] % 4];
    } else {
        const char *nl = memchr(body, '\n', len);
        size_t n = nl != NULL ? (size_t)(nl - body) : len;
        if (n >= sizeof(ctype_buf))
            n = sizeof(ctype_buf) - 1;
        memcpy(ctype_buf, body, n);
        ctype_buf[n] = '\0';
        ctype = ctype_buf;
        if (nl != NULL) {
            len -= (size_t)(nl + 1 - body);
            body = nl + 1;
        } else {
            body += len;
            len = 0;
        }
    }

    rc = gc_form_parse(ctype, body, len, &form, err, sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(rc == GC_EINVAL || rc == GC_ETOOBIG || rc == GC_ENOMEM);
        FUZZ_CHECK(form == (struct gc_form *)0x1); /* untouched on error */
        FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
        return 0;
    }
    FUZZ_CHECK(form != NULL && form->count <= GC_FORM_FIELDS_MAX);
    for (size_t i = 0; i < form->count; i++) {
        const struct gc_form_field *f = &form->fields[i];
        size_t name_len = strlen(f->name);
        FUZZ_CHECK(name_len >= 1 && name_len <= GC_FORM_NAME_MAX);
        FUZZ_CHECK(f->value != NULL && f->value[f->value_len] == '\0');
        FUZZ_CHECK(f->filename == NULL || strlen(f->filename) <= GC_FORM_FILENAME_MAX);
        FUZZ_CHECK(f->content_type == NULL || strlen(f->content_type) <= GC_FORM_PART_CTYPE_MAX);
        total += f->value_len;
        check_getters(form, f->name);
    }
    /* Values are decoded from the body: they never add up to more than it. */
    FUZZ_CHECK(total <= len);
    check_getters(form, "prompt");
    check_getters(form, "seed");
    check_urlencoded_round_trip(form);
    check_multipart_round_trip(form);
    gc_form_free(form);
    return 0;
}
