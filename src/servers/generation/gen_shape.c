/* gen_shape.c - stage 2: concept drawing -> coloured parts in a seeded pose. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "gen_internal.h"
#include "servers/common/rng.h"

/* Bounds on the vertical stretch read back from a drawing. */
#define STRETCH_MIN 0.7
#define STRETCH_MAX 1.4
/* Seeded variation: per-part proportions, tilt (radians), overall scale, offset. */
#define PART_JITTER 0.05
#define TILT_MAX    0.05
#define SCALE_MIN   0.9
#define SCALE_MAX   1.1
#define OFFSET_MAX  0.05

int gc_gen_shape(const struct gc_gen_concept *concept, struct gc_gen_shape *ret)
{
    float template_rgb[GC_SHAPE_PRIMS_MAX][3];
    double aspect_drawn, aspect_template, yaw, tilt_x, tilt_z, r1[9], r2[9], r3[9];
    uint8_t *scratch;
    struct gc_rng rng;

    if (concept == NULL || ret == NULL || concept->shape < 0 || concept->shape >= GC_SHAPE_COUNT)
        return GC_EINVAL;
    memset(ret, 0, sizeof(*ret));
    ret->shape = concept->shape;
    ret->modifiers = concept->modifiers;
    ret->nprims = gc_shape_template(concept->shape, ret->prims);
    for (int i = 0; i < ret->nprims; i++) {
        gen_part_rgb(&ret->prims[i], concept->rgb, ret->prim_rgb[i]);
        memcpy(template_rgb[i], ret->prim_rgb[i], sizeof(template_rgb[i]));
    }

    /*
     * Read the proportions back from the drawing: compare its silhouette with
     * the template's own, drawn unstretched (analysis by synthesis).
     */
    scratch = malloc((size_t)GC_GEN_IMAGE_RES * GC_GEN_IMAGE_RES * 3);
    if (scratch == NULL)
        return GC_ENOMEM;
    gen_draw(ret->prims, ret->nprims, (const float(*)[3])template_rgb, 1.0, scratch);
    aspect_template = gen_image_aspect(scratch);
    free(scratch);
    aspect_drawn = gen_image_aspect(concept->image);
    ret->stretch_y = aspect_template > 0 && aspect_drawn > 0 ? aspect_drawn / aspect_template : 1.0;
    ret->stretch_y = fmin(STRETCH_MAX, fmax(STRETCH_MIN, ret->stretch_y));

    /* The seed's variations: proportions, pose, size, position. */
    gc_rng_seed(&rng, gc_mix64(concept->seed ^ GEN_SALT_SHAPE) ^ concept->prompt_hash);
    for (int i = 0; i < ret->nprims; i++)
        for (int k = 0; k < 3; k++)
            ret->prims[i].size[k] *= 1.0 + gc_rng_range(&rng, -PART_JITTER, PART_JITTER);
    yaw = gc_rng_range(&rng, 0, 2.0 * M_PI);
    tilt_x = gc_rng_range(&rng, -TILT_MAX, TILT_MAX);
    tilt_z = gc_rng_range(&rng, -TILT_MAX, TILT_MAX);
    gc_rot_axis(0, tilt_x, r1);
    gc_rot_axis(2, tilt_z, r2);
    gc_mat3_mul(r1, r2, r3);
    gc_rot_axis(1, yaw, r1);
    gc_mat3_mul(r3, r1, ret->object_rot);
    ret->object_scale = gc_rng_range(&rng, SCALE_MIN, SCALE_MAX);
    for (int k = 0; k < 3; k++)
        ret->object_offset[k] = gc_rng_range(&rng, -OFFSET_MAX, OFFSET_MAX);
    ret->sample_seed = gc_mix64(concept->seed ^ GEN_SALT_SPLATS) ^ concept->prompt_hash;
    return 0;
}
