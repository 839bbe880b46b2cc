/* ply.c - 3DGS PLY writer and hostile-input parser (see ply.h). */
#include "ply.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* Longest element or property name kept. */
#define PLY_NAME_MAX 63
/* Most whitespace-separated words on one header line that we look at. */
#define PLY_WORDS_MAX 6
/* Most lines in one header (comments included). */
#define PLY_LINES_MAX 4096

enum ply_type { PLY_I8, PLY_U8, PLY_I16, PLY_U16, PLY_I32, PLY_U32, PLY_F32, PLY_F64 };

static const struct {
    const char *name;
    enum ply_type type;
    size_t size;
} ply_types[] = {
    {"char", PLY_I8, 1},   {"int8", PLY_I8, 1},     {"uchar", PLY_U8, 1},   {"uint8", PLY_U8, 1},
    {"short", PLY_I16, 2}, {"int16", PLY_I16, 2},   {"ushort", PLY_U16, 2}, {"uint16", PLY_U16, 2},
    {"int", PLY_I32, 4},   {"int32", PLY_I32, 4},   {"uint", PLY_U32, 4},   {"uint32", PLY_U32, 4},
    {"float", PLY_F32, 4}, {"float32", PLY_F32, 4}, {"double", PLY_F64, 8}, {"float64", PLY_F64, 8},
};

struct ply_property {
    char name[PLY_NAME_MAX + 1];
    enum ply_type type;
    size_t offset; /* within the element's record */
};

struct ply_element {
    char name[PLY_NAME_MAX + 1];
    uint64_t count;
    size_t stride;
    bool has_list;
    size_t nprops;
    struct ply_property props[GC_PLY_PROPERTIES_MAX];
};

/* The 62 properties in gc_splat order; the first 14 listed in required[] are needed. */
static void slot_name(int slot, char buf[16])
{
    static const char *const fixed[] = {"x",  "y",      "z",      "nx",    "ny",
                                        "nz", "f_dc_0", "f_dc_1", "f_dc_2"};
    if (slot < 9)
        snprintf(buf, 16, "%s", fixed[slot]);
    else if (slot < 9 + GC_SPLAT_REST)
        snprintf(buf, 16, "f_rest_%d", slot - 9);
    else if (slot == 54)
        snprintf(buf, 16, "opacity");
    else if (slot < 58)
        snprintf(buf, 16, "scale_%d", slot - 55);
    else
        snprintf(buf, 16, "rot_%d", slot - 58);
}

/* Byte offset of slot's float inside struct gc_splat. */
static size_t slot_offset(int slot)
{
    if (slot < 3)
        return offsetof(struct gc_splat, pos) + (size_t)slot * sizeof(float);
    if (slot < 6)
        return offsetof(struct gc_splat, normal) + (size_t)(slot - 3) * sizeof(float);
    if (slot < 9)
        return offsetof(struct gc_splat, f_dc) + (size_t)(slot - 6) * sizeof(float);
    if (slot < 54)
        return offsetof(struct gc_splat, f_rest) + (size_t)(slot - 9) * sizeof(float);
    if (slot == 54)
        return offsetof(struct gc_splat, opacity);
    if (slot < 58)
        return offsetof(struct gc_splat, scale) + (size_t)(slot - 55) * sizeof(float);
    return offsetof(struct gc_splat, rot) + (size_t)(slot - 58) * sizeof(float);
}

static bool slot_required(int slot)
{
    return slot < 3 || (slot >= 6 && slot < 9) || slot >= 54;
}

size_t gc_ply_size(size_t count)
{
    char name[16];
    size_t header = 0;

    header += strlen("ply\nformat binary_little_endian 1.0\nelement vertex \nend_header\n");
    header += (size_t)snprintf(NULL, 0, "%zu", count);
    for (int slot = 0; slot < GC_SPLAT_FLOATS; slot++) {
        slot_name(slot, name);
        header += strlen("property float \n") + strlen(name);
    }
    return header + count * GC_SPLAT_FLOATS * 4;
}

static void put_le32(uint8_t *p, float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

int gc_ply_write(const struct gc_splats *splats, uint8_t **ret_buf, size_t *ret_len)
{
    char name[16];
    size_t size, o = 0;
    uint8_t *buf;

    if (splats == NULL || (splats->v == NULL && splats->count > 0) || ret_buf == NULL ||
        ret_len == NULL)
        return GC_EINVAL;
    if (splats->count > GC_SPLATS_MAX)
        return GC_ETOOBIG;
    size = gc_ply_size(splats->count);
    buf = malloc(size + 1); /* +1: room for snprintf's NUL */
    if (buf == NULL)
        return GC_ENOMEM;
    o += (size_t)snprintf((char *)buf, size + 1 - o,
                          "ply\nformat binary_little_endian 1.0\nelement vertex %zu\n",
                          splats->count);
    for (int slot = 0; slot < GC_SPLAT_FLOATS; slot++) {
        slot_name(slot, name);
        o += (size_t)snprintf((char *)buf + o, size + 1 - o, "property float %s\n", name);
    }
    o += (size_t)snprintf((char *)buf + o, size + 1 - o, "end_header\n");
    for (size_t i = 0; i < splats->count; i++) {
        const unsigned char *sp = (const unsigned char *)&splats->v[i];
        for (int slot = 0; slot < GC_SPLAT_FLOATS; slot++) {
            float f;
            memcpy(&f, sp + slot_offset(slot), sizeof(f));
            put_le32(buf + o, f);
            o += 4;
        }
    }
    *ret_buf = buf;
    *ret_len = o;
    return 0;
}

static int ply_err(char *errbuf, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int ply_err(char *errbuf, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (errbuf != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Splits line[0..n) into at most PLY_WORDS_MAX words; returns the count, or -1 for more. */
static int split_words(const char *line, size_t n, const char *words[PLY_WORDS_MAX],
                       size_t lens[PLY_WORDS_MAX])
{
    int count = 0;
    size_t i = 0;

    while (i < n) {
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (count == PLY_WORDS_MAX)
            return -1;
        size_t start = i;
        while (i < n && line[i] != ' ' && line[i] != '\t')
            i++;
        words[count] = line + start;
        lens[count] = i - start;
        count++;
    }
    return count;
}

static bool word_is(const char *w, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(w, s, n) == 0;
}

/* A decimal count without sign or leading garbage; false on overflow. */
static bool parse_count(const char *w, size_t n, uint64_t *ret)
{
    uint64_t v = 0;

    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (w[i] < '0' || w[i] > '9')
            return false;
        if (v > (UINT64_MAX - (uint64_t)(w[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(w[i] - '0');
    }
    *ret = v;
    return true;
}

static int lookup_type(const char *w, size_t n, enum ply_type *type, size_t *size)
{
    for (size_t i = 0; i < sizeof(ply_types) / sizeof(ply_types[0]); i++) {
        if (word_is(w, n, ply_types[i].name)) {
            *type = ply_types[i].type;
            *size = ply_types[i].size;
            return 0;
        }
    }
    return -1;
}

static const char *type_name(enum ply_type t)
{
    for (size_t i = 0; i < sizeof(ply_types) / sizeof(ply_types[0]); i++)
        if (ply_types[i].type == t)
            return ply_types[i].name;
    return "?";
}

/* Decodes one little-endian scalar of type t at p. */
static double read_scalar(const uint8_t *p, enum ply_type t)
{
    uint64_t u = 0;
    size_t size = 1;

    switch (t) {
    case PLY_I16:
    case PLY_U16:
        size = 2;
        break;
    case PLY_I32:
    case PLY_U32:
    case PLY_F32:
        size = 4;
        break;
    case PLY_F64:
        size = 8;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < size; i++)
        u |= (uint64_t)p[i] << (8 * i);
    switch (t) {
    case PLY_I8:
        return (double)(int8_t)u;
    case PLY_U8:
        return (double)(uint8_t)u;
    case PLY_I16:
        return (double)(int16_t)u;
    case PLY_U16:
        return (double)(uint16_t)u;
    case PLY_I32:
        return (double)(int32_t)u;
    case PLY_U32:
        return (double)(uint32_t)u;
    case PLY_F32: {
        uint32_t u32 = (uint32_t)u;
        float f;
        memcpy(&f, &u32, 4);
        return f;
    }
    case PLY_F64: {
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    }
    return 0;
}

/* d as a float; values past the float range become infinities (defined behaviour). */
static float to_float(double d)
{
    if (d > FLT_MAX)
        return INFINITY;
    if (d < -FLT_MAX)
        return -INFINITY;
    return (float)d;
}

struct ply_header {
    size_t nelements;
    struct ply_element *elements; /* GC_PLY_ELEMENTS_MAX of them */
    size_t data_offset;
};

/* Parses the header of buf[0..len) into h; see gc_ply_parse() for the errors. */
static int parse_header(const uint8_t *buf, size_t len, struct ply_header *h, char *errbuf,
                        size_t errlen)
{
    size_t pos = 0, limit = len < GC_PLY_HEADER_MAX ? len : GC_PLY_HEADER_MAX;
    bool seen_format = false;
    struct ply_element *cur = NULL;

    for (int lineno = 1;; lineno++) {
        const char *line = (const char *)buf + pos, *words[PLY_WORDS_MAX];
        const uint8_t *nl = memchr(buf + pos, '\n', limit - pos);
        size_t lens[PLY_WORDS_MAX], n;
        int nw;

        if (nl == NULL) {
            if (limit < len)
                return ply_err(errbuf, errlen, GC_EINVAL, "header longer than %d bytes",
                               GC_PLY_HEADER_MAX);
            return ply_err(errbuf, errlen, GC_EINVAL,
                           lineno == 1 ? "not a PLY file (no 'ply' line)" : "missing end_header");
        }
        if (lineno > PLY_LINES_MAX)
            return ply_err(errbuf, errlen, GC_EINVAL, "header has more than %d lines",
                           PLY_LINES_MAX);
        n = (size_t)((const char *)nl - line);
        pos += n + 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (memchr(line, '\0', n) != NULL)
            return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: NUL byte", lineno);
        if (lineno == 1) {
            if (!word_is(line, n, "ply"))
                return ply_err(errbuf, errlen, GC_EINVAL, "not a PLY file (no 'ply' line)");
            continue;
        }
        nw = split_words(line, n, words, lens);
        if (nw == 0)
            continue;
        if (word_is(words[0], lens[0], "comment") || word_is(words[0], lens[0], "obj_info"))
            continue;
        if (nw < 0)
            return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: too many words", lineno);
        if (word_is(words[0], lens[0], "end_header")) {
            if (nw != 1)
                return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: malformed end_header",
                               lineno);
            break;
        }
        if (word_is(words[0], lens[0], "format")) {
            if (seen_format || nw != 3)
                return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: malformed format line",
                               lineno);
            seen_format = true;
            if (word_is(words[1], lens[1], "ascii") ||
                word_is(words[1], lens[1], "binary_big_endian"))
                return ply_err(errbuf, errlen, GC_EINVAL,
                               "%s PLY is not supported; need binary_little_endian 1.0",
                               word_is(words[1], lens[1], "ascii") ? "ascii" : "binary_big_endian");
            if (!word_is(words[1], lens[1], "binary_little_endian") ||
                !(word_is(words[2], lens[2], "1.0") || word_is(words[2], lens[2], "1")))
                return ply_err(errbuf, errlen, GC_EINVAL,
                               "unknown PLY format; need binary_little_endian 1.0");
            continue;
        }
        if (!seen_format)
            return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: %s before the format line",
                           lineno, "declaration");
        if (word_is(words[0], lens[0], "element")) {
            if (nw != 3 || lens[1] > PLY_NAME_MAX)
                return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: malformed element",
                               lineno);
            if (h->nelements == GC_PLY_ELEMENTS_MAX)
                return ply_err(errbuf, errlen, GC_EINVAL, "more than %d elements",
                               GC_PLY_ELEMENTS_MAX);
            cur = &h->elements[h->nelements++];
            memset(cur, 0, sizeof(*cur));
            memcpy(cur->name, words[1], lens[1]);
            if (!parse_count(words[2], lens[2], &cur->count))
                return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: bad element count",
                               lineno);
            for (size_t e = 0; e + 1 < h->nelements; e++)
                if (strcmp(h->elements[e].name, cur->name) == 0)
                    return ply_err(errbuf, errlen, GC_EINVAL, "duplicate element '%s'", cur->name);
            continue;
        }
        if (word_is(words[0], lens[0], "property")) {
            struct ply_property *prop;
            enum ply_type type;
            size_t size;

            if (cur == NULL)
                return ply_err(errbuf, errlen, GC_EINVAL,
                               "header line %d: property before any element", lineno);
            if (nw == 5 && word_is(words[1], lens[1], "list")) {
                if (lookup_type(words[2], lens[2], &type, &size) != 0 ||
                    lookup_type(words[3], lens[3], &type, &size) != 0)
                    return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: unknown type",
                                   lineno);
                cur->has_list = true;
                continue;
            }
            if (nw != 3 || lens[2] > PLY_NAME_MAX)
                return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: malformed property",
                               lineno);
            if (lookup_type(words[1], lens[1], &type, &size) != 0)
                return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: unknown type '%.*s'",
                               lineno, (int)(lens[1] > 16 ? 16 : lens[1]), words[1]);
            if (cur->nprops == GC_PLY_PROPERTIES_MAX)
                return ply_err(errbuf, errlen, GC_EINVAL,
                               "element '%s' has more than %d properties", cur->name,
                               GC_PLY_PROPERTIES_MAX);
            prop = &cur->props[cur->nprops++];
            memcpy(prop->name, words[2], lens[2]);
            prop->name[lens[2]] = '\0';
            prop->type = type;
            prop->offset = cur->stride;
            cur->stride += size; /* at most 256 * 8: no overflow */
            for (size_t p = 0; p + 1 < cur->nprops; p++)
                if (strcmp(cur->props[p].name, prop->name) == 0)
                    return ply_err(errbuf, errlen, GC_EINVAL, "duplicate property '%s'",
                                   prop->name);
            continue;
        }
        return ply_err(errbuf, errlen, GC_EINVAL, "header line %d: unknown keyword '%.*s'", lineno,
                       (int)(lens[0] > 16 ? 16 : lens[0]), words[0]);
    }
    if (!seen_format)
        return ply_err(errbuf, errlen, GC_EINVAL, "missing format line");
    h->data_offset = pos;
    return 0;
}

/* True when a vertex record is a struct gc_splat as it lies in memory: every property
 * a float of this (little-endian) host, in the struct's order, and nothing else. */
static bool layout_is_native(const struct ply_element *vertex, const int *slot_prop)
{
    _Static_assert(sizeof(struct gc_splat) == GC_SPLAT_FLOATS * sizeof(float),
                   "struct gc_splat has padding");
    if (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ || vertex->stride != sizeof(struct gc_splat))
        return false;
    for (int slot = 0; slot < GC_SPLAT_FLOATS; slot++) {
        if (slot_prop[slot] < 0 || vertex->props[slot_prop[slot]].type != PLY_F32 ||
            vertex->props[slot_prop[slot]].offset != slot_offset(slot))
            return false;
    }
    return true;
}

/* in_place: buf is the caller's malloc'd buffer, which the splats may take over. */
static int ply_parse(void *buf, size_t len, bool in_place, struct gc_splats **ret_splats,
                     char *errbuf, size_t errlen)
{
    struct ply_header h = {0};
    struct ply_element *vertex = NULL;
    int slot_prop[GC_SPLAT_FLOATS]; /* property index per slot, -1 when absent */
    const uint8_t *data = buf;
    size_t offset, vertex_bytes, vertex_index = 0;
    struct gc_splats *splats = NULL;
    char name[16];
    int rc;

    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if ((buf == NULL && len > 0) || ret_splats == NULL)
        return ply_err(errbuf, errlen, GC_EINVAL, "invalid arguments");
    h.elements = calloc(GC_PLY_ELEMENTS_MAX, sizeof(*h.elements));
    if (h.elements == NULL)
        return ply_err(errbuf, errlen, GC_ENOMEM, "out of memory");
    rc = parse_header(data, len, &h, errbuf, errlen);
    if (rc != 0)
        goto out;

    /* Skip fixed-size elements before the vertices. */
    offset = h.data_offset;
    for (size_t e = 0; e < h.nelements; e++) {
        struct ply_element *el = &h.elements[e];
        if (strcmp(el->name, "vertex") == 0) {
            vertex = el;
            vertex_index = e;
            break;
        }
        if (el->has_list && el->count > 0) {
            rc = ply_err(errbuf, errlen, GC_EINVAL,
                         "element '%s' before the vertices has list properties", el->name);
            goto out;
        }
        if (el->stride != 0 && el->count > (len - offset) / el->stride) {
            rc = ply_err(errbuf, errlen, GC_EINVAL, "truncated: element '%s' runs past the end",
                         el->name);
            goto out;
        }
        offset += (size_t)el->count * el->stride;
    }
    if (vertex == NULL) {
        rc = ply_err(errbuf, errlen, GC_EINVAL, "no vertex element");
        goto out;
    }
    if (vertex->count > GC_SPLATS_MAX) {
        rc = ply_err(errbuf, errlen, GC_EINVAL, "%llu vertices, over the limit of %d",
                     (unsigned long long)vertex->count, GC_SPLATS_MAX);
        goto out;
    }
    if (vertex->has_list) {
        rc = ply_err(errbuf, errlen, GC_EINVAL, "vertex element has list properties");
        goto out;
    }
    for (int slot = 0; slot < GC_SPLAT_FLOATS; slot++) {
        slot_prop[slot] = -1;
        slot_name(slot, name);
        for (size_t p = 0; p < vertex->nprops; p++)
            if (strcmp(vertex->props[p].name, name) == 0)
                slot_prop[slot] = (int)p;
        if (!slot_required(slot))
            continue;
        if (slot_prop[slot] < 0) {
            rc = ply_err(errbuf, errlen, GC_EINVAL, "missing vertex property '%s'", name);
            goto out;
        }
        if (vertex->props[slot_prop[slot]].type != PLY_F32) {
            rc = ply_err(errbuf, errlen, GC_EINVAL, "vertex property '%s' is %s; need float", name,
                         type_name(vertex->props[slot_prop[slot]].type));
            goto out;
        }
    }
    /* stride > 0: the required properties exist. count <= 2e6, stride <= 2048. */
    vertex_bytes = (size_t)vertex->count * vertex->stride;
    if (vertex_bytes > len - offset) {
        rc = ply_err(errbuf, errlen, GC_EINVAL,
                     "truncated: %llu vertices need %zu bytes, %zu bytes follow",
                     (unsigned long long)vertex->count, vertex_bytes, len - offset);
        goto out;
    }
    /* When everything after the vertices has a fixed size, the length must match. */
    {
        size_t end = offset + vertex_bytes;
        bool fixed = true;
        for (size_t e = vertex_index + 1; e < h.nelements && fixed; e++) {
            struct ply_element *el = &h.elements[e];
            if (el->has_list && el->count > 0) {
                fixed = false;
            } else if (el->stride != 0 && el->count > (len - end) / el->stride) {
                rc = ply_err(errbuf, errlen, GC_EINVAL, "truncated: element '%s' runs past the end",
                             el->name);
                goto out;
            } else {
                end += (size_t)el->count * el->stride;
            }
        }
        if (fixed && end != len) {
            rc = ply_err(errbuf, errlen, GC_EINVAL, "%zu unexpected bytes after the data",
                         len - end);
            goto out;
        }
    }

    if (in_place && layout_is_native(vertex, slot_prop)) {
        /* The records are the splats already: move them to the front of the buffer and
         * let the model own it, rather than hold two copies. */
        struct gc_splat *v = buf;
        memmove(buf, data + offset, vertex_bytes);
        for (size_t i = 0; i < (size_t)vertex->count; i++) {
            for (int slot = 0; slot < GC_SPLAT_FLOATS; slot++) {
                float f;
                if (!slot_required(slot))
                    continue;
                memcpy(&f, (unsigned char *)&v[i] + slot_offset(slot), sizeof(f));
                if (!isfinite(f)) {
                    slot_name(slot, name);
                    rc = ply_err(errbuf, errlen, GC_EINVAL, "vertex %zu: non-finite %s", i, name);
                    goto out;
                }
            }
        }
        splats = calloc(1, sizeof(*splats));
        if (splats == NULL) {
            rc = ply_err(errbuf, errlen, GC_ENOMEM, "out of memory");
            goto out;
        }
        splats->v = v;
        splats->count = (size_t)vertex->count;
        *ret_splats = splats;
        rc = 0;
        free(h.elements);
        return rc;
    }
    rc = gc_splats_new((size_t)vertex->count, &splats);
    if (rc != 0) {
        rc = ply_err(errbuf, errlen, rc, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < splats->count; i++) {
        const uint8_t *rec = data + offset + i * vertex->stride;
        unsigned char *sp = (unsigned char *)&splats->v[i];
        for (int slot = 0; slot < GC_SPLAT_FLOATS; slot++) {
            const struct ply_property *prop;
            float f;
            if (slot_prop[slot] < 0)
                continue;
            prop = &vertex->props[slot_prop[slot]];
            if (prop->type == PLY_F32) { /* bit-exact, NaN payloads included */
                const uint8_t *b = rec + prop->offset;
                uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24;
                memcpy(&f, &u, sizeof(f));
            } else {
                f = to_float(read_scalar(rec + prop->offset, prop->type));
            }
            if (slot_required(slot) && !isfinite(f)) {
                slot_name(slot, name);
                rc = ply_err(errbuf, errlen, GC_EINVAL, "vertex %zu: non-finite %s", i, name);
                goto out;
            }
            memcpy(sp + slot_offset(slot), &f, sizeof(f));
        }
    }
    *ret_splats = splats;
    splats = NULL;
    rc = 0;
out:
    gc_splats_free(splats);
    free(h.elements);
    return rc;
}

int gc_ply_parse(const void *buf, size_t len, struct gc_splats **ret_splats, char *errbuf,
                 size_t errlen)
{
    return ply_parse((void *)buf, len, false, ret_splats, errbuf, errlen);
}

int gc_ply_parse_in_place(void *buf, size_t len, struct gc_splats **ret_splats, char *errbuf,
                          size_t errlen)
{
    return ply_parse(buf, len, true, ret_splats, errbuf, errlen);
}
