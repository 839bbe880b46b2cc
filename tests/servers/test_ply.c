/* test_ply.c - 3DGS PLY: exact round trips, any property order, hostile input. */
#include "harness.h"

#include <math.h>
#include <stdbool.h>

#include "common/err.h"
#include "servers/common/ply.h"
#include "servers/common/rng.h"

static struct gc_splats *random_splats(size_t n, uint64_t seed)
{
    struct gc_splats *s = NULL;
    struct gc_rng rng;

    ASSERT_EQ_INT(gc_splats_new(n, &s), 0);
    gc_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        struct gc_splat *p = &s->v[i];
        for (int k = 0; k < 3; k++) {
            p->pos[k] = (float)gc_rng_normal(&rng);
            p->normal[k] = (float)gc_rng_normal(&rng);
            p->f_dc[k] = (float)gc_rng_normal(&rng);
            p->scale[k] = (float)gc_rng_range(&rng, -6, -2);
        }
        for (int k = 0; k < GC_SPLAT_REST; k++)
            p->f_rest[k] = (float)gc_rng_normal(&rng);
        for (int k = 0; k < 4; k++)
            p->rot[k] = (float)gc_rng_normal(&rng);
        p->opacity = (float)gc_rng_normal(&rng);
    }
    /* Values that must survive bit-exactly. */
    s->v[0].pos[0] = -0.0f;
    s->v[0].f_rest[3] = 1e-40f; /* subnormal */
    s->v[0].normal[1] = NAN;    /* optional properties are copied as they are */
    return s;
}

static struct gc_splats *parse_ok(const void *buf, size_t len)
{
    struct gc_splats *s = NULL;
    char err[256] = "";
    int rc = gc_ply_parse(buf, len, &s, err, sizeof(err));
    if (rc != 0)
        harness_fail(__FILE__, __LINE__, "parse failed (%d): %s", rc, err);
    return s;
}

/* Parses and expects failure; returns the code and leaves the reason in err. */
static int parse_fail(const void *buf, size_t len, char *err, size_t errlen)
{
    struct gc_splats *s = (struct gc_splats *)0x1;
    int rc;

    err[0] = '\0';
    rc = gc_ply_parse(buf, len, &s, err, errlen);
    if (rc == 0)
        harness_fail(__FILE__, __LINE__, "parse succeeded");
    if (s != (struct gc_splats *)0x1)
        harness_fail(__FILE__, __LINE__, "*ret_splats written on error");
    if (err[0] == '\0' || strchr(err, '\n') != NULL)
        harness_fail(__FILE__, __LINE__, "no one-line reason");
    return rc;
}

TEST(ply_round_trip_exact)
{
    struct gc_splats *s = random_splats(1000, 7), *back;
    uint8_t *buf;
    size_t len;

    ASSERT_EQ_INT(gc_ply_write(s, &buf, &len), 0);
    ASSERT_EQ_U64(len, gc_ply_size(1000));
    ASSERT(memcmp(buf, "ply\nformat binary_little_endian 1.0\nelement vertex 1000\n", 55) == 0);
    ASSERT(memcmp(buf + len - 1000 * 248 - 11, "end_header\n", 11) == 0);
    back = parse_ok(buf, len);
    ASSERT_EQ_U64(back->count, 1000);
    ASSERT(memcmp(back->v, s->v, 1000 * sizeof(struct gc_splat)) == 0);
    /* Little-endian on disk: the first float, x of splat 0, is -0.0f = 00 00 00 80. */
    const uint8_t *data = buf + len - 1000 * 248;
    ASSERT(data[0] == 0 && data[1] == 0 && data[2] == 0 && data[3] == 0x80);
    free(buf);
    gc_splats_free(back);
    gc_splats_free(s);
}

TEST(ply_empty_model)
{
    struct gc_splats *s, *back;
    uint8_t *buf;
    size_t len;

    ASSERT_EQ_INT(gc_splats_new(0, &s), 0);
    ASSERT_EQ_INT(gc_ply_write(s, &buf, &len), 0);
    back = parse_ok(buf, len);
    ASSERT_EQ_U64(back->count, 0);
    free(buf);
    gc_splats_free(back);
    gc_splats_free(s);
}

/* A little-endian PLY builder for hand-made headers. */
struct builder {
    uint8_t buf[1 << 16];
    size_t len;
};

static void b_text(struct builder *b, const char *text)
{
    size_t n = strlen(text);
    memcpy(b->buf + b->len, text, n);
    b->len += n;
}

static void b_bytes(struct builder *b, const void *p, size_t n)
{
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void b_f32(struct builder *b, float f)
{
    b_bytes(b, &f, 4); /* the tests run on little-endian machines */
}

/* Required properties in a scrambled order, plus extras of other types, then vertices. */
static void build_scrambled(struct builder *b, int vertices, bool crlf)
{
    static const char *const header[] = {
        "ply",
        "format binary_little_endian 1.0",
        "comment made by hand",
        "obj_info anything goes here",
        "element camera 2",
        "property double fx",
        "property uchar id",
        "element vertex %d",
        "property float rot_3",
        "property double extra_d",
        "property float opacity",
        "property float z",
        "property float y",
        "property uchar extra_u",
        "property float x",
        "property float f_dc_2",
        "property float f_dc_1",
        "property float f_dc_0",
        "property short extra_s",
        "property float scale_2",
        "property float scale_1",
        "property float scale_0",
        "property float rot_0",
        "property float rot_1",
        "property float rot_2",
        "property double nx",
        "property int f_rest_7",
        "element face 1",
        "property list uchar int vertex_indices",
        "end_header",
    };
    char line[128];

    for (size_t i = 0; i < sizeof(header) / sizeof(header[0]); i++) {
        snprintf(line, sizeof(line), header[i], vertices);
        b_text(b, line);
        b_text(b, crlf ? "\r\n" : "\n");
    }
    for (int c = 0; c < 2; c++) { /* cameras: 9 bytes each */
        double fx = 500.0;
        uint8_t id = (uint8_t)c;
        b_bytes(b, &fx, 8);
        b_bytes(b, &id, 1);
    }
    for (int i = 0; i < vertices; i++) {
        double extra_d = 1e300, nx = 0.25;
        uint8_t extra_u = 200;
        int16_t extra_s = -7;
        int32_t rest7 = -3;
        b_f32(b, 0.4f); /* rot_3 */
        b_bytes(b, &extra_d, 8);
        b_f32(b, 2.5f);            /* opacity */
        b_f32(b, 3.0f + (float)i); /* z */
        b_f32(b, 2.0f + (float)i); /* y */
        b_bytes(b, &extra_u, 1);
        b_f32(b, 1.0f + (float)i); /* x */
        b_f32(b, 0.6f);            /* f_dc_2 */
        b_f32(b, 0.5f);            /* f_dc_1 */
        b_f32(b, 0.4f);            /* f_dc_0 */
        b_bytes(b, &extra_s, 2);
        b_f32(b, -3.0f); /* scale_2 */
        b_f32(b, -2.0f); /* scale_1 */
        b_f32(b, -1.0f); /* scale_0 */
        b_f32(b, 0.1f);  /* rot_0 */
        b_f32(b, 0.2f);  /* rot_1 */
        b_f32(b, 0.3f);  /* rot_2 */
        b_bytes(b, &nx, 8);
        b_bytes(b, &rest7, 4);
    }
    /* One face with three indices. */
    uint8_t n3 = 3;
    int32_t idx[3] = {0, 1, 2};
    b_bytes(b, &n3, 1);
    b_bytes(b, idx, sizeof(idx));
}

static void check_scrambled(const struct gc_splats *s, int vertices)
{
    ASSERT_EQ_U64(s->count, (size_t)vertices);
    for (int i = 0; i < vertices; i++) {
        const struct gc_splat *p = &s->v[i];
        ASSERT(p->pos[0] == 1.0f + (float)i && p->pos[1] == 2.0f + (float)i &&
               p->pos[2] == 3.0f + (float)i);
        ASSERT(p->f_dc[0] == 0.4f && p->f_dc[1] == 0.5f && p->f_dc[2] == 0.6f);
        ASSERT(p->opacity == 2.5f);
        ASSERT(p->scale[0] == -1.0f && p->scale[1] == -2.0f && p->scale[2] == -3.0f);
        ASSERT(p->rot[0] == 0.1f && p->rot[1] == 0.2f && p->rot[2] == 0.3f && p->rot[3] == 0.4f);
        ASSERT(p->normal[0] == 0.25f && p->normal[1] == 0.0f && p->normal[2] == 0.0f);
        ASSERT(p->f_rest[7] == -3.0f && p->f_rest[0] == 0.0f);
    }
}

TEST(ply_reordered_and_extra_properties)
{
    static struct builder b;
    struct gc_splats *s;

    b.len = 0;
    build_scrambled(&b, 3, false);
    s = parse_ok(b.buf, b.len);
    check_scrambled(s, 3);
    gc_splats_free(s);
    b.len = 0;
    build_scrambled(&b, 2, true); /* CRLF header lines */
    s = parse_ok(b.buf, b.len);
    check_scrambled(s, 2);
    gc_splats_free(s);
}

TEST(ply_truncated_data)
{
    struct gc_splats *s = random_splats(100, 3);
    uint8_t *buf;
    size_t len;
    char err[256];

    ASSERT_EQ_INT(gc_ply_write(s, &buf, &len), 0);
    ASSERT_EQ_INT(parse_fail(buf, len - 1, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "truncated") != NULL);
    ASSERT_EQ_INT(parse_fail(buf, len - 248, err, sizeof(err)), GC_EINVAL);
    /* Cut inside the header. */
    ASSERT_EQ_INT(parse_fail(buf, 100, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "end_header") != NULL);
    /* Extra bytes after the last element. */
    uint8_t *longer = malloc(len + 3);
    memcpy(longer, buf, len);
    memset(longer + len, 0, 3);
    ASSERT_EQ_INT(parse_fail(longer, len + 3, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "unexpected bytes") != NULL);
    free(longer);
    free(buf);
    gc_splats_free(s);
}

static int header_only(const char *header, char *err, size_t errlen)
{
    return parse_fail(header, strlen(header), err, errlen);
}

#define REQUIRED_PROPS                                                                             \
    "property float x\nproperty float y\nproperty float z\nproperty float f_dc_0\n"                \
    "property float f_dc_1\nproperty float f_dc_2\nproperty float opacity\n"                       \
    "property float scale_0\nproperty float scale_1\nproperty float scale_2\n"                     \
    "property float rot_0\nproperty float rot_1\nproperty float rot_2\nproperty float rot_3\n"

TEST(ply_vertex_count_caps)
{
    char err[256];

    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement vertex 2000001\n" REQUIRED_PROPS
                    "end_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
    ASSERT(strstr(err, "limit") != NULL);
    ASSERT_EQ_INT(header_only("ply\nformat binary_little_endian 1.0\nelement vertex "
                              "99999999999999999999999\n" REQUIRED_PROPS "end_header\n",
                              err, sizeof(err)),
                  GC_EINVAL);
    /* N within the cap but larger than the data. */
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement vertex 2000000\n" REQUIRED_PROPS
                    "end_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
    ASSERT(strstr(err, "truncated") != NULL);
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement vertex -1\n" REQUIRED_PROPS
                    "end_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
    /* A huge element before the vertices cannot overflow the offset. */
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement junk 18446744073709551615\n"
                    "property double a\nelement vertex 1\n" REQUIRED_PROPS "end_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
}

TEST(ply_format_rejects)
{
    char err[256];

    ASSERT_EQ_INT(header_only("ply\nformat ascii 1.0\nelement vertex 1\n" REQUIRED_PROPS
                              "end_header\n0 0 0 0 0 0 0 0 0 0 1 0 0 0\n",
                              err, sizeof(err)),
                  GC_EINVAL);
    ASSERT(strstr(err, "ascii") != NULL);
    ASSERT_EQ_INT(header_only("ply\nformat binary_big_endian 1.0\nelement vertex 0\n" REQUIRED_PROPS
                              "end_header\n",
                              err, sizeof(err)),
                  GC_EINVAL);
    ASSERT(strstr(err, "big_endian") != NULL);
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 2.0\nelement vertex 0\nend_header\n", err,
                    sizeof(err)),
        GC_EINVAL);
    ASSERT_EQ_INT(header_only("ply\nelement vertex 0\nend_header\n", err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nend_header\n", err, sizeof(err)),
        GC_EINVAL);
    ASSERT(strstr(err, "no vertex") != NULL);
}

TEST(ply_property_rejects)
{
    char err[256];

    /* A required property missing. */
    ASSERT_EQ_INT(header_only("ply\nformat binary_little_endian 1.0\nelement vertex 0\n"
                              "property float x\nproperty float y\nproperty float z\nend_header\n",
                              err, sizeof(err)),
                  GC_EINVAL);
    ASSERT(strstr(err, "missing vertex property 'f_dc_0'") != NULL);
    /* A required property with another type. */
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement vertex 0\n"
                    "property double x\nproperty float y\nproperty float z\n"
                    "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n"
                    "property float opacity\nproperty float scale_0\n"
                    "property float scale_1\nproperty float scale_2\nproperty float rot_0\n"
                    "property float rot_1\nproperty float rot_2\nproperty float rot_3\n"
                    "end_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
    ASSERT(strstr(err, "'x' is double; need float") != NULL);
    /* Duplicates, unknown types, lists in the vertex element, unknown keywords. */
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement vertex 0\n" REQUIRED_PROPS
                    "property float x\nend_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement vertex 0\n" REQUIRED_PROPS
                    "property half h\nend_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement vertex 0\n" REQUIRED_PROPS
                    "property list uchar int idx\nend_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
    ASSERT_EQ_INT(
        header_only("ply\nformat binary_little_endian 1.0\nelement vertex 0\n" REQUIRED_PROPS
                    "bogus line\nend_header\n",
                    err, sizeof(err)),
        GC_EINVAL);
    ASSERT(strstr(err, "unknown keyword") != NULL);
    ASSERT_EQ_INT(header_only("ply\nformat binary_little_endian 1.0\nproperty float x\n"
                              "element vertex 0\nend_header\n",
                              err, sizeof(err)),
                  GC_EINVAL);
    /* A list element before the vertices cannot be skipped. */
    ASSERT_EQ_INT(header_only("ply\nformat binary_little_endian 1.0\nelement face 1\n"
                              "property list uchar int idx\nelement vertex 0\n" REQUIRED_PROPS
                              "end_header\n\x01\x00\x00\x00\x00",
                              err, sizeof(err)),
                  GC_EINVAL);
}

TEST(ply_non_finite_positions)
{
    struct gc_splats *s = random_splats(10, 9);
    uint8_t *buf;
    size_t len;
    char err[256];

    s->v[4].pos[1] = INFINITY;
    ASSERT_EQ_INT(gc_ply_write(s, &buf, &len), 0);
    ASSERT_EQ_INT(parse_fail(buf, len, err, sizeof(err)), GC_EINVAL);
    ASSERT_STREQ(err, "vertex 4: non-finite y");
    free(buf);
    s->v[4].pos[1] = 0;
    s->v[2].opacity = NAN;
    ASSERT_EQ_INT(gc_ply_write(s, &buf, &len), 0);
    ASSERT_EQ_INT(parse_fail(buf, len, err, sizeof(err)), GC_EINVAL);
    ASSERT_STREQ(err, "vertex 2: non-finite opacity");
    free(buf);
    gc_splats_free(s);
}

TEST(ply_parse_in_place_takes_the_buffer_over)
{
    struct gc_splats *s = random_splats(500, 11), *back = NULL;
    static struct builder b;
    uint8_t *buf;
    size_t len;
    char err[256] = "";

    /* Written as gc_ply_write writes: the model takes the buffer, values exact. */
    ASSERT_EQ_INT(gc_ply_write(s, &buf, &len), 0);
    ASSERT_EQ_INT(gc_ply_parse_in_place(buf, len, &back, err, sizeof(err)), 0);
    ASSERT((void *)back->v == (void *)buf);
    ASSERT_EQ_U64(back->count, 500);
    ASSERT(memcmp(back->v, s->v, 500 * sizeof(struct gc_splat)) == 0);
    gc_splats_free(back); /* frees buf */
    /* A non-finite value is refused, and the buffer stays the caller's. */
    s->v[7].scale[2] = INFINITY;
    ASSERT_EQ_INT(gc_ply_write(s, &buf, &len), 0);
    back = NULL;
    ASSERT_EQ_INT(gc_ply_parse_in_place(buf, len, &back, err, sizeof(err)), GC_EINVAL);
    ASSERT_STREQ(err, "vertex 7: non-finite scale_2");
    ASSERT(back == NULL);
    free(buf);
    /* Another layout is copied, as by gc_ply_parse. */
    b.len = 0;
    build_scrambled(&b, 3, false);
    buf = malloc(b.len);
    memcpy(buf, b.buf, b.len);
    ASSERT_EQ_INT(gc_ply_parse_in_place(buf, b.len, &back, err, sizeof(err)), 0);
    ASSERT((void *)back->v != (void *)buf);
    check_scrambled(back, 3);
    gc_splats_free(back);
    free(buf);
    gc_splats_free(s);
}

TEST(ply_header_cap)
{
    size_t len = GC_PLY_HEADER_MAX + 100, o = 0;
    char *buf = malloc(len + 200), err[256];

    o += (size_t)sprintf(buf, "ply\nformat binary_little_endian 1.0\n");
    while (o < len)
        o += (size_t)sprintf(buf + o, "comment padding padding padding padding\n");
    o += (size_t)sprintf(buf + o, "element vertex 0\nend_header\n");
    ASSERT_EQ_INT(parse_fail(buf, o, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "header longer than") != NULL);
    free(buf);
}

TEST(ply_garbage)
{
    char err[256];
    uint8_t junk[4096];
    struct gc_rng rng;

    ASSERT_EQ_INT(parse_fail("", 0, err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(parse_fail("ply", 3, err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(parse_fail("ply\n", 4, err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(parse_fail("PLY\n", 4, err, sizeof(err)), GC_EINVAL);
    static const char nul_in_header[] =
        "ply\nformat binary_little_endian 1.0\nelement vertex 0\0\nend_header\n";
    ASSERT_EQ_INT(parse_fail(nul_in_header, sizeof(nul_in_header) - 1, err, sizeof(err)),
                  GC_EINVAL);
    gc_rng_seed(&rng, 1);
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)(gc_rng_next(&rng) % sizeof(junk));
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)gc_rng_next(&rng);
        if (round % 2 == 0 && n > 4)
            memcpy(junk, "ply\n", 4);
        parse_fail(junk, n, err, sizeof(err));
    }
    /* Every prefix of a valid file fails cleanly. */
    struct gc_splats *s = random_splats(3, 5);
    uint8_t *buf;
    size_t len;
    ASSERT_EQ_INT(gc_ply_write(s, &buf, &len), 0);
    for (size_t cut = 0; cut < len; cut++)
        parse_fail(buf, cut, err, sizeof(err));
    free(buf);
    gc_splats_free(s);
}
