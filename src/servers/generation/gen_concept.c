/* gen_concept.c - stage 1: prompt + seed -> what to build and a drawing of it. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/err.h"
#include "gen_internal.h"
#include "servers/common/rng.h"

/* Half the width of the world square the concept image shows. */
#define DRAW_HALF_EXTENT 0.8
/* Sphere-tracing steps per pixel and the hit distance. */
#define DRAW_STEPS 96
#define DRAW_HIT   1e-3

void gen_part_rgb(const struct gc_prim *prim, const float main_rgb[3], float out[3])
{
    if (prim->colour == GC_PRIM_MAIN)
        memcpy(out, main_rgb, 3 * sizeof(float));
    else
        gc_colour_rgb(prim->colour, 0, out);
}

/* Distance to the union of parts, in a space stretched by sy along y; *which: nearest part. */
static double union_sdf(const struct gc_prim *prims, int nprims, double sy, const double p[3],
                        int *which)
{
    double q[3] = {p[0], p[1] / sy, p[2]}, best = 1e30;

    for (int i = 0; i < nprims; i++) {
        double d = gc_prim_sdf(&prims[i], q);
        if (d < best) {
            best = d;
            if (which != NULL)
                *which = i;
        }
    }
    /* Stretching can shrink distances by up to min(1, sy): stay conservative. */
    return best * fmin(1.0, sy);
}

void gen_draw(const struct gc_prim *prims, int nprims, const float (*prim_rgb)[3], double stretch_y,
              uint8_t *image)
{
    const double light[3] = {0.30, 0.60, 0.74}; /* toward the viewer and up, unit length */
    const int res = GC_GEN_IMAGE_RES;

    memset(image, 255, (size_t)res * res * 3);
    for (int py = 0; py < res; py++) {
        for (int px = 0; px < res; px++) {
            double p[3] = {((px + 0.5) / res * 2.0 - 1.0) * DRAW_HALF_EXTENT,
                           (1.0 - (py + 0.5) / res * 2.0) * DRAW_HALF_EXTENT, 1.0};
            int which = 0;
            bool hit = false;
            for (int s = 0; s < DRAW_STEPS && p[2] > -1.0; s++) {
                double d = union_sdf(prims, nprims, stretch_y, p, &which);
                if (d < DRAW_HIT) {
                    hit = true;
                    break;
                }
                p[2] -= fmax(d, DRAW_HIT);
            }
            if (!hit)
                continue;
            /* Shade with the distance field's gradient as the normal. */
            double n[3], e = 1e-3, lum = 0;
            for (int k = 0; k < 3; k++) {
                double a[3] = {p[0], p[1], p[2]}, b[3] = {p[0], p[1], p[2]};
                a[k] += e;
                b[k] -= e;
                n[k] = union_sdf(prims, nprims, stretch_y, a, NULL) -
                       union_sdf(prims, nprims, stretch_y, b, NULL);
            }
            double len = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
            if (len > 0)
                lum = (n[0] * light[0] + n[1] * light[1] + n[2] * light[2]) / len;
            double k = 0.75 + 0.25 * fmax(0.0, lum);
            uint8_t *px_out = image + ((size_t)py * res + (size_t)px) * 3;
            for (int c = 0; c < 3; c++) {
                /* Never pure white, so the background stays distinguishable. */
                double v = fmin(250.0, 255.0 * prim_rgb[which][c] * k);
                px_out[c] = (uint8_t)lround(fmax(0.0, v));
            }
        }
    }
}

double gen_image_aspect(const uint8_t *image)
{
    const int res = GC_GEN_IMAGE_RES;
    int x0 = res, x1 = -1, y0 = res, y1 = -1;

    for (int y = 0; y < res; y++) {
        for (int x = 0; x < res; x++) {
            const uint8_t *p = image + ((size_t)y * res + (size_t)x) * 3;
            if (p[0] == 255 && p[1] == 255 && p[2] == 255)
                continue;
            x0 = x < x0 ? x : x0;
            x1 = x > x1 ? x : x1;
            y0 = y < y0 ? y : y0;
            y1 = y > y1 ? y : y1;
        }
    }
    if (x1 < 0)
        return 0;
    return (double)(y1 - y0 + 1) / (double)(x1 - x0 + 1);
}

int gc_gen_concept(const char *prompt, size_t prompt_len, uint64_t seed, struct gc_gen_concept *ret)
{
    struct gc_prim prims[GC_SHAPE_PRIMS_MAX];
    float prim_rgb[GC_SHAPE_PRIMS_MAX][3];
    struct gc_rng rng;
    int nprims;

    if ((prompt == NULL && prompt_len > 0) || ret == NULL || prompt_len > GC_GEN_PROMPT_MAX_BYTES)
        return GC_EINVAL;
    memset(ret, 0, sizeof(*ret));
    gc_vocab_parse(prompt, prompt_len, &ret->spec);
    ret->seed = seed;
    ret->prompt_hash = gc_hash64(prompt, prompt_len);
    ret->modifiers = ret->spec.modifiers;

    /* What the prompt does not name is chosen by its hash (not the seed). */
    ret->shape = ret->spec.shape >= 0 ? ret->spec.shape
                                      : (int)(gc_mix64(ret->prompt_hash ^ 0x5348) % GC_SHAPE_COUNT);
    if (ret->spec.colour >= 0) {
        ret->colour = ret->spec.colour;
        memcpy(ret->rgb, ret->spec.rgb, sizeof(ret->rgb));
    } else {
        ret->colour = gc_shape_default_colour(ret->shape);
        if (ret->colour < 0)
            ret->colour = (int)(gc_mix64(ret->prompt_hash ^ 0x434f4c) % GC_COLOUR_COUNT);
        gc_colour_rgb(ret->colour, ret->modifiers, ret->rgb);
    }

    /* The drawing: the shape as the seed "imagines" it, a little taller or squatter. */
    gc_rng_seed(&rng, gc_mix64(seed ^ GEN_SALT_CONCEPT) ^ ret->prompt_hash);
    nprims = gc_shape_template(ret->shape, prims);
    for (int i = 0; i < nprims; i++)
        gen_part_rgb(&prims[i], ret->rgb, prim_rgb[i]);
    gen_draw(prims, nprims, (const float(*)[3])prim_rgb, gc_rng_range(&rng, 0.88, 1.12),
             ret->image);
    return 0;
}

int gc_gen_run(const char *prompt, size_t prompt_len, uint64_t seed, size_t count,
               struct gc_splats **ret_splats)
{
    struct gc_gen_concept concept;
    struct gc_gen_shape shape;
    int rc;

    rc = gc_gen_concept(prompt, prompt_len, seed, &concept);
    if (rc == 0)
        rc = gc_gen_shape(&concept, &shape);
    if (rc == 0)
        rc = gc_gen_splats(&shape, count, ret_splats);
    return rc;
}
