/* form.c - urlencoded and multipart/form-data bodies (see form.h). */
#include "form.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

/* Longest parameter name in a header ("boundary", "filename"). */
#define FORM_PARAM_NAME_MAX 64
/* Longest parameter value kept (a filename is the longest we keep). */
#define FORM_PARAM_VALUE_MAX GC_FORM_FILENAME_MAX

static int form_err(char *errbuf, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int form_err(char *errbuf, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (errbuf != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* True when s[0..n) equals the lowercase word w, ignoring ASCII case. */
static bool span_ieq(const char *s, size_t n, const char *w)
{
    size_t wn = strlen(w);

    if (n != wn)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(s[i]) != w[i])
            return false;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* An RFC 2045 token character (not a control, space or tspecial). */
static bool is_token_char(char c)
{
    unsigned char u = (unsigned char)c;

    if (u <= 32 || u >= 127)
        return false;
    return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static void skip_space(const char **p, const char *end)
{
    while (*p < end && is_space(**p))
        (*p)++;
}

static void trim_span(const char **s, const char **end)
{
    while (*s < *end && is_space(**s))
        (*s)++;
    while (*end > *s && is_space((*end)[-1]))
        (*end)--;
}

/*
 * param_next: reads the next "; name=value" of a header's parameter list from
 * *p (value a token or a quoted-string with backslash escapes). Returns 1 with
 * name (lowercased) and value (NUL-terminated, *val_len bytes) filled, 0 at
 * the end of the list, GC_EINVAL when malformed or too long.
 */
static int param_next(const char **p, const char *end, char name[FORM_PARAM_NAME_MAX + 1],
                      char value[FORM_PARAM_VALUE_MAX + 1], size_t *val_len)
{
    size_t n = 0, v = 0;

    skip_space(p, end);
    if (*p == end)
        return 0;
    if (**p != ';')
        return GC_EINVAL;
    (*p)++;
    skip_space(p, end);
    if (*p == end)
        return 0; /* a trailing ';' is harmless */
    while (*p < end && is_token_char(**p)) {
        if (n == FORM_PARAM_NAME_MAX)
            return GC_EINVAL;
        name[n++] = ascii_lower(**p);
        (*p)++;
    }
    name[n] = '\0';
    skip_space(p, end);
    if (n == 0 || *p == end || **p != '=')
        return GC_EINVAL;
    (*p)++;
    skip_space(p, end);
    if (*p < end && **p == '"') {
        (*p)++;
        for (;;) {
            char c;
            if (*p == end)
                return GC_EINVAL; /* unterminated quoted-string */
            c = **p;
            (*p)++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (*p == end)
                    return GC_EINVAL;
                c = **p;
                (*p)++;
            }
            if (c == '\r' || c == '\n' || c == '\0')
                return GC_EINVAL;
            if (v == FORM_PARAM_VALUE_MAX)
                return GC_EINVAL;
            value[v++] = c;
        }
    } else {
        while (*p < end && is_token_char(**p)) {
            if (v == FORM_PARAM_VALUE_MAX)
                return GC_EINVAL;
            value[v++] = **p;
            (*p)++;
        }
        if (v == 0)
            return GC_EINVAL;
    }
    value[v] = '\0';
    *val_len = v;
    return 1;
}

/* RFC 2046 bchars; a boundary may not end in a space. */
static bool boundary_valid(const char *b, size_t n)
{
    if (n == 0 || n > GC_FORM_BOUNDARY_MAX || b[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

static int form_add(struct gc_form *form, struct gc_form_field *field, char *errbuf, size_t errlen)
{
    if (form->count == GC_FORM_FIELDS_MAX)
        return form_err(errbuf, errlen, GC_ETOOBIG, "more than %d form fields", GC_FORM_FIELDS_MAX);
    if (form->fields == NULL) {
        form->fields = calloc(GC_FORM_FIELDS_MAX, sizeof(*form->fields));
        if (form->fields == NULL)
            return form_err(errbuf, errlen, GC_ENOMEM, "out of memory");
    }
    form->fields[form->count++] = *field;
    memset(field, 0, sizeof(*field));
    return 0;
}

static void field_clear(struct gc_form_field *f)
{
    free(f->name);
    free(f->value);
    free(f->filename);
    free(f->content_type);
    memset(f, 0, sizeof(*f));
}

static char *dup_span(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d != NULL) {
        if (n > 0)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = ascii_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Percent-decodes s[0..n) ('+' is a space) into a malloc'd buffer (*ret, a
 * NUL after *ret_len bytes). GC_EINVAL on a bad escape, GC_ENOMEM.
 */
static int url_decode(const char *s, size_t n, char **ret, size_t *ret_len)
{
    char *out = malloc(n + 1);
    size_t o = 0;

    if (out == NULL)
        return GC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi, lo;
            if (n - i < 3) {
                free(out);
                return GC_EINVAL;
            }
            hi = hex_value(s[i + 1]);
            lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                free(out);
                return GC_EINVAL;
            }
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *ret = out;
    *ret_len = o;
    return 0;
}

static int parse_urlencoded(const char *body, size_t len, struct gc_form *form, char *errbuf,
                            size_t errlen)
{
    size_t i = 0;

    while (i < len) {
        const char *seg = body + i, *amp = memchr(seg, '&', len - i);
        size_t seg_len = amp != NULL ? (size_t)(amp - seg) : len - i;
        struct gc_form_field f = {0};
        const char *eq;
        size_t name_len;
        int rc;

        i += seg_len + 1;
        if (seg_len == 0)
            continue;
        eq = memchr(seg, '=', seg_len);
        rc = url_decode(seg, eq != NULL ? (size_t)(eq - seg) : seg_len, &f.name, &name_len);
        if (rc == 0 && eq != NULL)
            rc = url_decode(eq + 1, seg_len - (size_t)(eq + 1 - seg), &f.value, &f.value_len);
        else if (rc == 0)
            rc = (f.value = dup_span("", 0)) != NULL ? 0 : GC_ENOMEM;
        if (rc == GC_ENOMEM) {
            field_clear(&f);
            return form_err(errbuf, errlen, rc, "out of memory");
        }
        if (rc != 0) {
            field_clear(&f);
            return form_err(errbuf, errlen, rc, "bad percent-escape in form field %zu",
                            form->count + 1);
        }
        if (name_len == 0 || name_len > GC_FORM_NAME_MAX || strlen(f.name) != name_len) {
            field_clear(&f);
            return form_err(errbuf, errlen, GC_EINVAL,
                            "form field %zu: name must be 1 to %d bytes without NUL",
                            form->count + 1, GC_FORM_NAME_MAX);
        }
        rc = form_add(form, &f, errbuf, errlen);
        if (rc != 0) {
            field_clear(&f);
            return rc;
        }
    }
    return 0;
}

/*
 * Reads one part's header block [p, end) (lines separated by CRLF) into f:
 * Content-Disposition: form-data; name=...; filename=... and Content-Type.
 */
static int parse_part_headers(const char *p, const char *end, struct gc_form_field *f, size_t index,
                              char *errbuf, size_t errlen)
{
    char pname[FORM_PARAM_NAME_MAX + 1];
    char pvalue[FORM_PARAM_VALUE_MAX + 1];
    bool seen_disposition = false;

    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        const char *line_end = eol != NULL ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        const char *hname = p, *hname_end, *v, *v_end;
        int rc;

        if (colon == NULL || is_space(*p))
            return form_err(errbuf, errlen, GC_EINVAL, "part %zu: malformed header line", index);
        hname_end = colon;
        v = colon + 1;
        v_end = line_end;
        trim_span(&hname, &hname_end);
        trim_span(&v, &v_end);
        for (const char *q = v; q < v_end; q++)
            if (*q == '\0' || *q == '\r' || *q == '\n')
                return form_err(errbuf, errlen, GC_EINVAL, "part %zu: control byte in header",
                                index);
        if (span_ieq(hname, (size_t)(hname_end - hname), "content-disposition")) {
            const char *t = v;
            if (seen_disposition)
                return form_err(errbuf, errlen, GC_EINVAL,
                                "part %zu: more than one content-disposition", index);
            seen_disposition = true;
            while (t < v_end && is_token_char(*t))
                t++;
            if (!span_ieq(v, (size_t)(t - v), "form-data"))
                return form_err(errbuf, errlen, GC_EINVAL,
                                "part %zu: content-disposition is not form-data", index);
            size_t vlen = 0;
            while ((rc = param_next(&t, v_end, pname, pvalue, &vlen)) == 1) {
                char **slot = NULL;
                if (strcmp(pname, "name") == 0)
                    slot = &f->name;
                else if (strcmp(pname, "filename") == 0)
                    slot = &f->filename;
                if (slot == NULL)
                    continue;
                if (*slot != NULL)
                    return form_err(errbuf, errlen, GC_EINVAL, "part %zu: duplicate %s", index,
                                    pname);
                if (slot == &f->name && (vlen == 0 || vlen > GC_FORM_NAME_MAX))
                    return form_err(errbuf, errlen, GC_EINVAL,
                                    "part %zu: name must be 1 to %d bytes", index,
                                    GC_FORM_NAME_MAX);
                *slot = dup_span(pvalue, vlen);
                if (*slot == NULL)
                    return form_err(errbuf, errlen, GC_ENOMEM, "out of memory");
            }
            if (rc < 0)
                return form_err(errbuf, errlen, GC_EINVAL,
                                "part %zu: malformed content-disposition parameters", index);
        } else if (span_ieq(hname, (size_t)(hname_end - hname), "content-type")) {
            size_t n = (size_t)(v_end - v);
            if (f->content_type != NULL || n == 0 || n > GC_FORM_PART_CTYPE_MAX)
                return form_err(errbuf, errlen, GC_EINVAL, "part %zu: bad content-type", index);
            f->content_type = dup_span(v, n);
            if (f->content_type == NULL)
                return form_err(errbuf, errlen, GC_ENOMEM, "out of memory");
        }
        p = eol != NULL ? eol + 2 : end;
    }
    if (!seen_disposition || f->name == NULL)
        return form_err(errbuf, errlen, GC_EINVAL,
                        "part %zu: missing content-disposition with a name", index);
    return 0;
}

static int parse_multipart(const char *boundary, size_t blen, const char *body, size_t len,
                           struct gc_form *form, char *errbuf, size_t errlen)
{
    char delim[GC_FORM_BOUNDARY_MAX + 4]; /* CRLF "--" boundary */
    size_t dlen = blen + 4, pos;
    const char *end = body + len, *p, *found;

    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    /* The first delimiter may open the body, without the CRLF before it. */
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        pos = dlen - 2;
    } else {
        found = memmem(body, len, delim, dlen);
        if (found == NULL)
            return form_err(errbuf, errlen, GC_EINVAL, "multipart boundary not found in body");
        pos = (size_t)(found - body) + dlen;
    }
    for (;;) {
        struct gc_form_field f = {0};
        const char *hdr_end, *content;
        size_t index = form->count + 1;
        int rc;

        p = body + pos;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0; /* the closing delimiter; the epilogue is ignored */
        skip_space(&p, end);
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return form_err(errbuf, errlen, GC_EINVAL,
                            end - p < 2 ? "missing closing multipart boundary"
                                        : "malformed multipart boundary line");
        p += 2;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hdr_end = p;
            content = p + 2;
        } else {
            size_t window = (size_t)(end - p);
            if (window > GC_FORM_PART_HEADERS_MAX + 4)
                window = GC_FORM_PART_HEADERS_MAX + 4;
            hdr_end = memmem(p, window, "\r\n\r\n", 4);
            if (hdr_end == NULL)
                return form_err(errbuf, errlen, GC_EINVAL,
                                window == (size_t)(end - p)
                                    ? "part %zu: headers not terminated"
                                    : "part %zu: headers longer than the limit",
                                index);
            content = hdr_end + 4;
        }
        rc = parse_part_headers(p, hdr_end, &f, index, errbuf, errlen);
        if (rc != 0) {
            field_clear(&f);
            return rc;
        }
        found = memmem(content, (size_t)(end - content), delim, dlen);
        if (found == NULL) {
            field_clear(&f);
            return form_err(errbuf, errlen, GC_EINVAL,
                            "part %zu: missing closing multipart boundary", index);
        }
        f.value_len = (size_t)(found - content);
        f.value = dup_span(content, f.value_len);
        if (f.value == NULL) {
            field_clear(&f);
            return form_err(errbuf, errlen, GC_ENOMEM, "out of memory");
        }
        rc = form_add(form, &f, errbuf, errlen);
        if (rc != 0) {
            field_clear(&f);
            return rc;
        }
        pos = (size_t)(found - body) + dlen;
    }
}

int gc_form_parse(const char *content_type, const char *body, size_t len, struct gc_form **ret_form,
                  char *errbuf, size_t errlen)
{
    char pname[FORM_PARAM_NAME_MAX + 1], pvalue[FORM_PARAM_VALUE_MAX + 1];
    char boundary[GC_FORM_BOUNDARY_MAX + 1];
    const char *p, *end, *type, *type_end;
    size_t ct_len, blen = 0, vlen = 0;
    struct gc_form *form;
    bool multipart;
    int rc;

    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (ret_form == NULL || (body == NULL && len > 0))
        return form_err(errbuf, errlen, GC_EINVAL, "invalid arguments");
    if (content_type == NULL)
        return form_err(errbuf, errlen, GC_EINVAL, "missing content-type");
    if (len > GC_FORM_BODY_MAX)
        return form_err(errbuf, errlen, GC_ETOOBIG, "form body over %zu bytes",
                        (size_t)GC_FORM_BODY_MAX);
    ct_len = strnlen(content_type, GC_FORM_CTYPE_MAX + 1);
    if (ct_len > GC_FORM_CTYPE_MAX)
        return form_err(errbuf, errlen, GC_EINVAL, "content-type too long");
    p = content_type;
    end = content_type + ct_len;
    skip_space(&p, end);
    type = p;
    while (p < end && *p != ';')
        p++;
    type_end = p;
    trim_span(&type, &type_end);
    if (span_ieq(type, (size_t)(type_end - type), "application/x-www-form-urlencoded"))
        multipart = false;
    else if (span_ieq(type, (size_t)(type_end - type), "multipart/form-data"))
        multipart = true;
    else
        return form_err(errbuf, errlen, GC_EINVAL,
                        "unsupported content-type (expected application/x-www-form-urlencoded "
                        "or multipart/form-data)");
    while ((rc = param_next(&p, end, pname, pvalue, &vlen)) == 1) {
        if (strcmp(pname, "boundary") != 0)
            continue;
        if (blen != 0)
            return form_err(errbuf, errlen, GC_EINVAL, "content-type names two boundaries");
        if (!boundary_valid(pvalue, vlen))
            return form_err(errbuf, errlen, GC_EINVAL,
                            "invalid multipart boundary (1 to %d characters of RFC 2046)",
                            GC_FORM_BOUNDARY_MAX);
        memcpy(boundary, pvalue, vlen);
        blen = vlen;
    }
    if (rc < 0)
        return form_err(errbuf, errlen, GC_EINVAL, "malformed content-type parameters");
    if (multipart && blen == 0)
        return form_err(errbuf, errlen, GC_EINVAL, "multipart content-type without a boundary");

    form = calloc(1, sizeof(*form));
    if (form == NULL)
        return form_err(errbuf, errlen, GC_ENOMEM, "out of memory");
    if (multipart)
        rc = parse_multipart(boundary, blen, body, len, form, errbuf, errlen);
    else
        rc = parse_urlencoded(body, len, form, errbuf, errlen);
    if (rc != 0) {
        gc_form_free(form);
        return rc;
    }
    *ret_form = form;
    return 0;
}

const struct gc_form_field *gc_form_get(const struct gc_form *form, const char *name)
{
    if (form == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < form->count; i++)
        if (strcmp(form->fields[i].name, name) == 0)
            return &form->fields[i];
    return NULL;
}

int gc_form_get_text(const struct gc_form *form, const char *name, bool required, size_t max_chars,
                     const char **ret, char *errbuf, size_t errlen)
{
    const struct gc_form_field *f = gc_form_get(form, name);
    size_t chars;

    if (f == NULL) {
        if (required)
            return form_err(errbuf, errlen, GC_EINVAL, "missing form field '%s'", name);
        return 0;
    }
    chars = memchr(f->value, '\0', f->value_len) != NULL ? SIZE_MAX
                                                         : gc_utf8_chars(f->value, f->value_len);
    if (chars == SIZE_MAX)
        return form_err(errbuf, errlen, GC_EINVAL, "form field '%s' is not valid UTF-8 text", name);
    if (chars > max_chars)
        return form_err(errbuf, errlen, GC_EINVAL, "form field '%s' longer than %zu characters",
                        name, max_chars);
    *ret = f->value;
    return 0;
}

int gc_form_get_int(const struct gc_form *form, const char *name, bool required, int64_t min,
                    int64_t max, int64_t *ret, char *errbuf, size_t errlen)
{
    const struct gc_form_field *f = gc_form_get(form, name);
    const char *p, *end;
    bool neg = false;
    uint64_t mag = 0, limit;

    if (f == NULL) {
        if (required)
            return form_err(errbuf, errlen, GC_EINVAL, "missing form field '%s'", name);
        return 0;
    }
    p = f->value;
    end = f->value + f->value_len;
    trim_span(&p, &end);
    if (p == end) {
        if (required)
            return form_err(errbuf, errlen, GC_EINVAL, "form field '%s' is empty", name);
        return 0;
    }
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (p == end)
        goto out_bad;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            goto out_bad;
        if (mag > (limit - (uint64_t)(*p - '0')) / 10)
            goto out_range;
        mag = mag * 10 + (uint64_t)(*p - '0');
    }
    int64_t v = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    if (v < min || v > max)
        goto out_range;
    *ret = v;
    return 0;

out_bad:
    return form_err(errbuf, errlen, GC_EINVAL, "form field '%s' must be an integer", name);
out_range:
    return form_err(errbuf, errlen, GC_EINVAL, "form field '%s' must be an integer in [%lld, %lld]",
                    name, (long long)min, (long long)max);
}

void gc_form_free(struct gc_form *form)
{
    if (form == NULL)
        return;
    for (size_t i = 0; i < form->count; i++)
        field_clear(&form->fields[i]);
    free(form->fields);
    free(form);
}
