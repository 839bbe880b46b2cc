/* score.c - structural rules, render, measures, and the weighted score (see score.h). */
#include "score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "metrics.h"
#include "render.h"
#include "servers/common/bf16.h"
#include "servers/common/prim.h"
#include "servers/common/rng.h"
#include "servers/common/vocab.h"
#include "shapedesc.h"

/* The measurement camera: a 3/4 view from above, and a second view turned a little. */
#define VIEW_YAW       (M_PI / 4)
#define VIEW_ELEVATION (25.0 * M_PI / 180.0)
#define VIEW_FOV       (40.0 * M_PI / 180.0)
#define VIEW_TURN      (4.0 * M_PI / 180.0)
#define BACKGROUND     1.0f
/* Splats that count for the shape descriptor, and at most how many are used. */
#define SHAPE_ALPHA_MIN  0.1
#define SHAPE_POINTS_MAX 65536
/* Reference clouds: points per shape, vertical stretches tried. */
#define REF_POINTS   4096
#define REF_VARIANTS 3
/* Colour match: shading range allowed and tolerance (0..1 units). */
#define COLOUR_SHADE_MIN 0.70
#define COLOUR_SHADE_MAX 1.05
#define COLOUR_SIGMA     0.10
#define COLOUR_FULL      0.5
/* Shape match: softmax temperature over the vocabulary, distance scale of a fit. */
#define SHAPE_TEMPERATURE 0.2
#define SHAPE_FIT_SCALE   1.0
/* The final score: quality (a weighted sum) times a factor from the alignment. */
#define W_IQA       0.4
#define W_SSIM      0.3
#define W_LPIPS     0.3
#define ALIGN_FLOOR 0.25

struct gc_scorer {
    struct gc_shape_desc refs[GC_SHAPE_COUNT][REF_VARIANTS];
    /* The same, rounded to bfloat16: the weights of reduced precision. */
    struct gc_shape_desc refs_reduced[GC_SHAPE_COUNT][REF_VARIANTS];
};

/* A descriptor rounded to bfloat16 (8 significant bits), as reduced weights hold it. */
static void desc_reduce(const struct gc_shape_desc *in, struct gc_shape_desc *out)
{
    for (int k = 0; k < GC_SHAPEDESC_DIM; k++)
        out->f[k] = gc_f32_from_bf16(gc_bf16_from_f32((float)in->f[k]));
}

static const double ref_stretch[REF_VARIANTS] = {0.9, 1.0, 1.1};

int gc_scorer_new(struct gc_scorer **ret_scorer)
{
    struct gc_prim prims[GC_SHAPE_PRIMS_MAX];
    struct gc_scorer *scorer;
    double *pos, *normal;
    struct gc_rng rng;

    if (ret_scorer == NULL)
        return GC_EINVAL;
    scorer = calloc(1, sizeof(*scorer));
    pos = malloc(REF_POINTS * 3 * sizeof(double));
    normal = malloc(REF_POINTS * 3 * sizeof(double));
    if (scorer == NULL || pos == NULL || normal == NULL) {
        free(scorer);
        free(pos);
        free(normal);
        return GC_ENOMEM;
    }
    for (int shape = 0; shape < GC_SHAPE_COUNT; shape++) {
        int nprims = gc_shape_template(shape, prims);
        for (int v = 0; v < REF_VARIANTS; v++) {
            gc_rng_seed(&rng, (uint64_t)(shape * REF_VARIANTS + v) + 0x7265660000ULL);
            gc_shape_sample(prims, nprims, REF_POINTS, &rng, pos, normal, NULL);
            for (size_t i = 0; i < REF_POINTS; i++)
                pos[i * 3 + 1] *= ref_stretch[v];
            gc_shape_describe(pos, REF_POINTS, &scorer->refs[shape][v]);
            desc_reduce(&scorer->refs[shape][v], &scorer->refs_reduced[shape][v]);
        }
    }
    free(pos);
    free(normal);
    *ret_scorer = scorer;
    return 0;
}

void gc_scorer_free(struct gc_scorer *scorer)
{
    free(scorer);
}

void gc_score_result_clear(struct gc_score_result *result)
{
    if (result == NULL)
        return;
    free(result->preview);
    result->preview = NULL;
}

static double clamp01(double v)
{
    if (!(v > 0))
        return 0;
    return v > 1 ? 1 : v;
}

/* alpha of a splat, 0 when its opacity is not a number. */
static double splat_alpha(const struct gc_splat *s)
{
    return isfinite(s->opacity) ? gc_splat_alpha(s) : 0.0;
}

static bool rotation_is_identity(const struct gc_splat *s)
{
    double w = s->rot[0], x = s->rot[1], y = s->rot[2], z = s->rot[3];
    double n2 = w * w + x * x + y * y + z * z, v2 = x * x + y * y + z * z;

    if (!isfinite(n2) || !(n2 > 0))
        return true; /* no usable rotation at all */
    return v2 <= GC_SCORE_IDENTITY_EPS * GC_SCORE_IDENTITY_EPS * n2;
}

/* Applies the structural rules; returns the rule that fired and fills reason. */
static int structural_rules(const struct gc_splats *splats, char *reason, size_t reason_len)
{
    size_t transparent = 0, rotated = 0;

    if (splats->count < GC_SCORE_POINTS_MIN) {
        snprintf(reason, reason_len, "fewer than %d points (%zu)", GC_SCORE_POINTS_MIN,
                 splats->count);
        return GC_SCORE_RULE_TOO_FEW_POINTS;
    }
    for (size_t i = 0; i < splats->count; i++) {
        transparent += splat_alpha(&splats->v[i]) < GC_SCORE_ALPHA_MIN;
        rotated += !rotation_is_identity(&splats->v[i]);
    }
    if ((double)transparent > GC_SCORE_TRANSPARENT_SHARE * (double)splats->count) {
        snprintf(reason, reason_len,
                 "%.1f%% of points are nearly transparent (alpha < %g; at most %.0f%% allowed)",
                 100.0 * (double)transparent / (double)splats->count, GC_SCORE_ALPHA_MIN,
                 100.0 * GC_SCORE_TRANSPARENT_SHARE);
        return GC_SCORE_RULE_TRANSPARENT;
    }
    if (rotated == 0) {
        snprintf(reason, reason_len, "all %zu rotations are the identity", splats->count);
        return GC_SCORE_RULE_IDENTITY_ROTATIONS;
    }
    reason[0] = '\0';
    return GC_SCORE_RULE_NONE;
}

/* How well the covered pixels of a render match the colour target (0..1 per pixel, mean). */
static double colour_similarity(const struct gc_image *img, const float target[3])
{
    size_t n = (size_t)img->width * (size_t)img->height, object = 0;
    double tt = (double)target[0] * target[0] + (double)target[1] * target[1] +
                (double)target[2] * target[2];
    double sum = 0;

    for (size_t i = 0; i < n; i++) {
        double a = img->alpha[i], c[3], ct = 0, k, d2 = 0;
        if (!(a > 0.5))
            continue;
        for (int j = 0; j < 3; j++) {
            c[j] = (img->rgb[i * 3 + j] - BACKGROUND * (1.0 - a)) / a;
            ct += c[j] * target[j];
        }
        /* The best shading factor within the range a lit surface shows. */
        k = tt > 0 ? ct / tt : 1.0;
        k = fmin(COLOUR_SHADE_MAX, fmax(COLOUR_SHADE_MIN, k));
        for (int j = 0; j < 3; j++) {
            double e = c[j] - k * target[j];
            d2 += e * e;
        }
        sum += exp(-d2 / (2.0 * COLOUR_SIGMA * COLOUR_SIGMA));
        object++;
    }
    return object > 0 ? sum / (double)object : 0.0;
}

/*
 * The model's descriptor and its match with shape: softmax over the vocabulary
 * (is it more this shape than any other?) times an absolute fit.
 */
static int shape_similarity(const struct gc_scorer *scorer, const struct gc_splats *splats,
                            int shape, bool reduced, double *ret_match, int *ret_guess)
{
    const struct gc_shape_desc(*refs)[REF_VARIANTS] = reduced ? scorer->refs_reduced : scorer->refs;
    size_t visible = 0, n = 0, stride;
    struct gc_shape_desc desc;
    double *pos, dist[GC_SHAPE_COUNT], dmin = INFINITY, zsum = 0;
    int rc;

    for (size_t i = 0; i < splats->count; i++)
        visible += splat_alpha(&splats->v[i]) >= SHAPE_ALPHA_MIN;
    *ret_match = 0;
    *ret_guess = -1;
    if (visible == 0)
        return 0;
    stride = (visible + SHAPE_POINTS_MAX - 1) / SHAPE_POINTS_MAX;
    pos = malloc((visible / stride + 1) * 3 * sizeof(double));
    if (pos == NULL)
        return GC_ENOMEM;
    for (size_t i = 0, seen = 0; i < splats->count; i++) {
        const struct gc_splat *s = &splats->v[i];
        if (!(splat_alpha(s) >= SHAPE_ALPHA_MIN))
            continue;
        if (seen++ % stride != 0)
            continue;
        if (!isfinite(s->pos[0]) || !isfinite(s->pos[1]) || !isfinite(s->pos[2]))
            continue;
        for (int k = 0; k < 3; k++)
            pos[n * 3 + k] = s->pos[k];
        n++;
    }
    rc = gc_shape_describe(pos, n, &desc);
    free(pos);
    if (rc != 0)
        return 0; /* too few usable points: matches nothing */
    if (reduced)
        desc_reduce(&desc, &desc);
    for (int k = 0; k < GC_SHAPE_COUNT; k++) {
        dist[k] = INFINITY;
        for (int v = 0; v < REF_VARIANTS; v++)
            dist[k] = fmin(dist[k], gc_shape_desc_distance(&desc, &refs[k][v]));
        if (dist[k] < dmin) {
            dmin = dist[k];
            *ret_guess = k;
        }
    }
    for (int k = 0; k < GC_SHAPE_COUNT; k++)
        zsum += exp(-(dist[k] - dmin) / SHAPE_TEMPERATURE);
    if (shape >= 0 && shape < GC_SHAPE_COUNT) {
        double p = exp(-(dist[shape] - dmin) / SHAPE_TEMPERATURE) / zsum;
        double fit = exp(-(dist[shape] / SHAPE_FIT_SCALE) * (dist[shape] / SHAPE_FIT_SCALE));
        *ret_match = clamp01(p * fit);
    }
    return 0;
}

/* SSIM of two renders' luma and the gradient-SSIM perceptual-distance proxy. */
static int view_consistency(const struct gc_image *a, const struct gc_image *b, double *ret_ssim,
                            double *ret_lpips)
{
    int w = a->width, h = a->height;
    size_t n = (size_t)w * (size_t)h;
    float *buf = malloc(n * 7 * sizeof(float));
    double s, lp = 0;
    int rc = GC_ENOMEM;

    if (buf == NULL)
        return GC_ENOMEM;
    float *la = buf, *lb = la + n, *wt = lb + n, *ga = wt + n, *gb = ga + n, *tmp = gb + n;
    gc_luma(a, la);
    gc_luma(b, lb);
    for (size_t i = 0; i < n; i++)
        wt[i] = fmaxf(a->alpha[i], b->alpha[i]);
    s = gc_ssim(la, lb, w, h, wt);
    if (s < -1.5)
        goto out;
    *ret_ssim = clamp01(s);
    for (int scale = 0; scale < 3; scale++) {
        gc_gradient(la, w, h, ga);
        gc_gradient(lb, w, h, gb);
        s = gc_ssim(ga, gb, w, h, wt);
        if (s < -1.5)
            goto out;
        lp += clamp01(s);
        if (scale == 2)
            break;
        /* Halve la, lb and the weight in place (through tmp). */
        float *maps[3] = {la, lb, wt};
        for (int m = 0; m < 3; m++) {
            gc_downsample2(maps[m], w, h, tmp);
            memcpy(maps[m], tmp, (size_t)(w / 2) * (size_t)(h / 2) * sizeof(float));
        }
        w /= 2;
        h /= 2;
    }
    *ret_lpips = clamp01(1.0 - lp / 3.0);
    rc = 0;
out:
    free(buf);
    return rc;
}

static int render_preview(const struct gc_splats *splats, const struct gc_frame *frame, bool framed,
                          uint8_t **ret)
{
    size_t bytes = (size_t)GC_SCORE_PREVIEW_SIZE * GC_SCORE_PREVIEW_SIZE * 3;
    struct gc_image *img = NULL;
    struct gc_view view;
    uint8_t *out = malloc(bytes);
    int rc;

    if (out == NULL)
        return GC_ENOMEM;
    if (!framed) {
        memset(out, 255, bytes);
        *ret = out;
        return 0;
    }
    gc_view_orbit(frame, VIEW_YAW, VIEW_ELEVATION, VIEW_FOV, &view);
    rc = gc_render(splats, &view, GC_SCORE_PREVIEW_SIZE, GC_SCORE_PREVIEW_SIZE, BACKGROUND, &img);
    if (rc != 0) {
        free(out);
        return rc;
    }
    gc_image_to_rgb8(img, out);
    gc_image_free(img);
    *ret = out;
    return 0;
}

int gc_score(const struct gc_scorer *scorer, const char *prompt, size_t prompt_len,
             const struct gc_splats *splats, bool want_preview, struct gc_score_result *ret)
{
    return gc_score_at(scorer, prompt, prompt_len, splats, want_preview, false, ret);
}

int gc_score_at(const struct gc_scorer *scorer, const char *prompt, size_t prompt_len,
                const struct gc_splats *splats, bool want_preview, bool reduced,
                struct gc_score_result *ret)
{
    struct gc_image *view_a = NULL, *view_b = NULL;
    struct gc_prompt_spec spec;
    struct gc_frame frame;
    struct gc_view view;
    struct gc_iqa iqa;
    bool framed;
    int rc;

    if (ret != NULL)
        memset(ret, 0, sizeof(*ret));
    if (scorer == NULL || ret == NULL || splats == NULL || (prompt == NULL && prompt_len > 0) ||
        (splats->v == NULL && splats->count > 0))
        return GC_EINVAL;
    ret->lpips = 1.0;
    ret->colour_match = -1;
    ret->shape_match = -1;
    ret->shape_guess = -1;
    framed = gc_frame_splats(splats, &frame) == 0;
    if (want_preview) {
        rc = render_preview(splats, &frame, framed, &ret->preview);
        if (rc != 0)
            return rc;
    }
    ret->rule = structural_rules(splats, ret->reason, sizeof(ret->reason));
    if (ret->rule != GC_SCORE_RULE_NONE)
        return 0;
    if (!framed) { /* cannot happen after the transparency rule, but stay safe */
        ret->rule = GC_SCORE_RULE_TRANSPARENT;
        snprintf(ret->reason, sizeof(ret->reason), "no visible points");
        return 0;
    }

    gc_view_orbit(&frame, VIEW_YAW, VIEW_ELEVATION, VIEW_FOV, &view);
    rc =
        gc_render(splats, &view, GC_SCORE_MEASURE_SIZE, GC_SCORE_MEASURE_SIZE, BACKGROUND, &view_a);
    if (rc != 0)
        goto out;
    gc_view_orbit(&frame, VIEW_YAW + VIEW_TURN, VIEW_ELEVATION, VIEW_FOV, &view);
    rc =
        gc_render(splats, &view, GC_SCORE_MEASURE_SIZE, GC_SCORE_MEASURE_SIZE, BACKGROUND, &view_b);
    if (rc != 0)
        goto out;

    rc = gc_iqa_measure(view_a, BACKGROUND, &iqa);
    if (rc != 0)
        goto out;
    ret->iqa = clamp01(iqa.iqa);
    ret->coverage = iqa.coverage;
    rc = view_consistency(view_a, view_b, &ret->ssim, &ret->lpips);
    if (rc != 0)
        goto out;

    /* Alignment: what the prompt names, checked; what it does not name is neutral (0.5). */
    gc_vocab_parse(prompt, prompt_len, &spec);
    double colour_term = 0.5, shape_term = 0.5, shape_match = 0;
    if (spec.colour >= 0) {
        ret->colour_match = clamp01(colour_similarity(view_a, spec.rgb) / COLOUR_FULL);
        colour_term = ret->colour_match;
    }
    rc = shape_similarity(scorer, splats, spec.shape, reduced, &shape_match, &ret->shape_guess);
    if (rc != 0)
        goto out;
    if (spec.shape >= 0) {
        ret->shape_match = shape_match;
        shape_term = shape_match;
    }
    ret->alignment_score = clamp01(0.5 * colour_term + 0.5 * shape_term);
    double quality = W_IQA * ret->iqa + W_SSIM * ret->ssim + W_LPIPS * (1.0 - ret->lpips);
    ret->score = clamp01(quality * (ALIGN_FLOOR + (1.0 - ALIGN_FLOOR) * ret->alignment_score));
    rc = 0;
out:
    gc_image_free(view_a);
    gc_image_free(view_b);
    if (rc != 0) {
        gc_score_result_clear(ret);
        memset(ret, 0, sizeof(*ret));
    }
    return rc;
}
