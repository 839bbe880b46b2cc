/* test_gen.c - the reference generator: determinism, seeds, stages, structural soundness. */
#include "harness.h"

#include <math.h>

#include "common/err.h"
#include "servers/common/ply.h"
#include "servers/generation/gen.h"

static struct gc_splats *generate(const char *prompt, uint64_t seed, size_t count)
{
    struct gc_splats *s = NULL;
    int rc = gc_gen_run(prompt, strlen(prompt), seed, count, &s);
    if (rc != 0)
        harness_fail(__FILE__, __LINE__, "gc_gen_run(\"%s\", %llu) = %d", prompt,
                     (unsigned long long)seed, rc);
    return s;
}

static uint8_t *to_ply(const struct gc_splats *s, size_t *len)
{
    uint8_t *buf = NULL;
    ASSERT_EQ_INT(gc_ply_write(s, &buf, len), 0);
    return buf;
}

TEST(gen_deterministic_bytes)
{
    struct gc_splats *a = generate("a red cube", 42, GC_GEN_POINTS_DEFAULT);
    struct gc_splats *b = generate("a red cube", 42, GC_GEN_POINTS_DEFAULT);
    size_t la, lb;
    uint8_t *pa = to_ply(a, &la), *pb = to_ply(b, &lb);

    ASSERT_EQ_U64(la, lb);
    ASSERT(memcmp(pa, pb, la) == 0);
    free(pa);
    free(pb);
    gc_splats_free(a);
    gc_splats_free(b);
}

TEST(gen_seeds_and_prompts_differ)
{
    struct gc_splats *a = generate("a red cube", 1, GC_GEN_POINTS_DEFAULT);
    struct gc_splats *b = generate("a red cube", 2, GC_GEN_POINTS_DEFAULT);
    struct gc_splats *c = generate("a red  cube", 1, GC_GEN_POINTS_DEFAULT);
    size_t differ = 0;

    for (size_t i = 0; i < a->count; i++)
        differ += memcmp(a->v[i].pos, b->v[i].pos, sizeof(a->v[i].pos)) != 0;
    ASSERT_CMP_INT(differ, >, a->count * 9 / 10);
    /* Another prompt naming the same thing is still another model. */
    ASSERT(memcmp(a->v, c->v, a->count * sizeof(*a->v)) != 0);
    gc_splats_free(a);
    gc_splats_free(b);
    gc_splats_free(c);
}

TEST(gen_model_is_sound)
{
    static const char *const prompts[] = {"a red cube", "a tree", "a shiny gold car",
                                          "an unknown whatsit", ""};
    for (size_t p = 0; p < sizeof(prompts) / sizeof(prompts[0]); p++) {
        struct gc_splats *s = generate(prompts[p], 7, GC_GEN_POINTS_DEFAULT);
        size_t opaque = 0, rotated = 0;
        ASSERT_EQ_U64(s->count, GC_GEN_POINTS_DEFAULT);
        ASSERT_CMP_INT(s->count, >=, 7000);
        for (size_t i = 0; i < s->count; i++) {
            const struct gc_splat *v = &s->v[i];
            double qn = 0, nn = 0;
            for (int k = 0; k < 3; k++) {
                ASSERT(isfinite(v->pos[k]) && fabsf(v->pos[k]) < 2.0f);
                ASSERT(isfinite(v->f_dc[k]));
                ASSERT(v->scale[k] < -2.0f && v->scale[k] > -9.0f); /* log of small sizes */
                nn += (double)v->normal[k] * v->normal[k];
            }
            for (int k = 0; k < 4; k++)
                qn += (double)v->rot[k] * v->rot[k];
            ASSERT_NEAR(nn, 1.0, 1e-4);
            ASSERT_NEAR(qn, 1.0, 1e-4);
            ASSERT(v->rot[0] >= 0);
            /* The quaternion's z axis is the normal. */
            double w = v->rot[0], x = v->rot[1], y = v->rot[2], z = v->rot[3];
            double zax[3] = {2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)};
            double dot = zax[0] * v->normal[0] + zax[1] * v->normal[1] + zax[2] * v->normal[2];
            ASSERT_NEAR(dot, 1.0, 1e-3);
            /* The splat is flat along the normal. */
            ASSERT(v->scale[2] < v->scale[0] && v->scale[2] < v->scale[1]);
            opaque += 1.0 / (1.0 + exp(-v->opacity)) > 0.5;
            rotated += fabs(v->rot[1]) + fabs(v->rot[2]) + fabs(v->rot[3]) > 1e-3;
        }
        ASSERT_EQ_U64(opaque, s->count);
        ASSERT_CMP_INT(rotated, >, s->count * 99 / 100);
        gc_splats_free(s);
    }
}

TEST(gen_stage_concept)
{
    struct gc_gen_concept c;
    const int res = GC_GEN_IMAGE_RES;
    double sum[3] = {0, 0, 0};
    size_t fg = 0;

    ASSERT_EQ_INT(gc_gen_concept("A dark RED cube!", 16, 5, &c), 0);
    ASSERT_EQ_INT(c.shape, GC_SHAPE_CUBE);
    ASSERT_EQ_INT(c.spec.shape, GC_SHAPE_CUBE);
    ASSERT_EQ_INT(c.colour, GC_COLOUR_RED);
    ASSERT(c.modifiers & GC_MOD_DARK);
    ASSERT(c.rgb[0] > 2 * c.rgb[1] && c.rgb[0] < 0.6f); /* dark red */
    for (int i = 0; i < res * res; i++) {
        const uint8_t *p = c.image + i * 3;
        if (p[0] == 255 && p[1] == 255 && p[2] == 255)
            continue;
        fg++;
        for (int k = 0; k < 3; k++)
            sum[k] += p[k];
    }
    /* A cube seen from the front fills a good part of the drawing, in red. */
    ASSERT_CMP_INT(fg, >, res * res / 5);
    ASSERT_CMP_INT(fg, <, res * res * 3 / 4);
    ASSERT(sum[0] > 3 * sum[1] && sum[0] > 3 * sum[2]);

    /* Without shape and colour words both come from the prompt's hash, not the seed. */
    struct gc_gen_concept u1, u2;
    ASSERT_EQ_INT(gc_gen_concept("a dragon", 8, 1, &u1), 0);
    ASSERT_EQ_INT(gc_gen_concept("a dragon", 8, 2, &u2), 0);
    ASSERT_EQ_INT(u1.spec.shape, -1);
    ASSERT_EQ_INT(u1.spec.colour, -1);
    ASSERT_EQ_INT(u1.shape, u2.shape);
    ASSERT_EQ_INT(u1.colour, u2.colour);
    ASSERT(u1.shape >= 0 && u1.shape < GC_SHAPE_COUNT);
    ASSERT(memcmp(u1.image, u2.image, sizeof(u1.image)) != 0); /* the seed changes the drawing */

    /* Shape defaults: a tree is green unless told otherwise. */
    ASSERT_EQ_INT(gc_gen_concept("a tree", 6, 1, &c), 0);
    ASSERT_EQ_INT(c.colour, GC_COLOUR_GREEN);
    ASSERT_EQ_INT(gc_gen_concept("a purple trees", 14, 1, &c), 0);
    ASSERT_EQ_INT(c.shape, GC_SHAPE_TREE);
    ASSERT_EQ_INT(c.colour, GC_COLOUR_PURPLE);
}

TEST(gen_stage_shape_reads_the_drawing)
{
    struct gc_gen_concept c;
    struct gc_gen_shape s;
    double lo = 10, hi = 0;

    for (uint64_t seed = 0; seed < 20; seed++) {
        ASSERT_EQ_INT(gc_gen_concept("a blue cylinder", 15, seed, &c), 0);
        ASSERT_EQ_INT(gc_gen_shape(&c, &s), 0);
        ASSERT_EQ_INT(s.shape, GC_SHAPE_CYLINDER);
        ASSERT_EQ_INT(s.nprims, 1);
        ASSERT(s.prim_rgb[0][2] > s.prim_rgb[0][0]);
        lo = fmin(lo, s.stretch_y);
        hi = fmax(hi, s.stretch_y);
    }
    /* The drawing's proportions vary with the seed and are read back within range. */
    ASSERT(lo > 0.8 && hi < 1.2);
    ASSERT(hi - lo > 0.08);
    c.shape = GC_SHAPE_COUNT;
    ASSERT_EQ_INT(gc_gen_shape(&c, &s), GC_EINVAL);
}

TEST(gen_rejects)
{
    struct gc_splats *s;
    struct gc_gen_concept c;
    static char long_prompt[GC_GEN_PROMPT_MAX_BYTES + 2];

    ASSERT_EQ_INT(gc_gen_run("a cube", 6, 1, GC_GEN_POINTS_MIN - 1, &s), GC_EINVAL);
    ASSERT_EQ_INT(gc_gen_run("a cube", 6, 1, GC_GEN_POINTS_MAX + 1, &s), GC_EINVAL);
    ASSERT_EQ_INT(gc_gen_run(NULL, 3, 1, GC_GEN_POINTS_DEFAULT, &s), GC_EINVAL);
    memset(long_prompt, 'a', sizeof(long_prompt) - 1);
    ASSERT_EQ_INT(gc_gen_concept(long_prompt, sizeof(long_prompt) - 1, 1, &c), GC_EINVAL);
    ASSERT_EQ_INT(gc_gen_concept(long_prompt, GC_GEN_PROMPT_MAX_BYTES, 1, &c), 0);
    /* Any bytes are a prompt. */
    ASSERT_EQ_INT(gc_gen_concept("\xff\x00\x80 cube", 9, 1, &c), 0);
    ASSERT_EQ_INT(c.shape, GC_SHAPE_CUBE);
}

TEST(gen_point_count_range)
{
    struct gc_splats *s = generate("a pink capsule", 3, GC_GEN_POINTS_MIN);
    ASSERT_EQ_U64(s->count, 7000);
    gc_splats_free(s);
    s = generate("a pink capsule", 3, 16384);
    ASSERT_EQ_U64(s->count, 16384);
    gc_splats_free(s);
}
