/* gen_splats.c - stage 3: coloured parts -> 3D Gaussian splats on their surfaces. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "gen_internal.h"
#include "servers/common/rng.h"

/* Baked lighting: albedo * (SHADE_AMBIENT + SHADE_DIFFUSE * max(0, n.l)). */
#define SHADE_AMBIENT 0.75
#define SHADE_DIFFUSE 0.25
/* Per-splat colour noise (standard deviation, 0..1 units). */
#define COLOUR_NOISE 0.012
/* Opacity logit: mean, spread and bounds (sigmoid(3) = 0.95). */
#define OPACITY_LOGIT  3.0
#define OPACITY_SPREAD 0.4
/* Splat size relative to the mean point spacing: along the surface, across it. */
#define TANGENT_SIGMA 0.85
#define NORMAL_SIGMA  0.15

static void cross3(const double a[3], const double b[3], double out[3])
{
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

static void normalize3(double v[3])
{
    double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);

    if (n > 0)
        for (int k = 0; k < 3; k++)
            v[k] /= n;
}

/* Quaternion (w, x, y, z) of the rotation whose columns are the unit axes u, v, n. */
static void axes_to_quat(const double u[3], const double v[3], const double n[3], float q[4])
{
    /* m[row][col] with columns u, v, n. */
    double m00 = u[0], m01 = v[0], m02 = n[0];
    double m10 = u[1], m11 = v[1], m12 = n[1];
    double m20 = u[2], m21 = v[2], m22 = n[2];
    double tr = m00 + m11 + m22, w, x, y, z, s;

    if (tr > 0) {
        s = sqrt(tr + 1.0) * 2;
        w = 0.25 * s;
        x = (m21 - m12) / s;
        y = (m02 - m20) / s;
        z = (m10 - m01) / s;
    } else if (m00 > m11 && m00 > m22) {
        s = sqrt(1.0 + m00 - m11 - m22) * 2;
        w = (m21 - m12) / s;
        x = 0.25 * s;
        y = (m01 + m10) / s;
        z = (m02 + m20) / s;
    } else if (m11 > m22) {
        s = sqrt(1.0 + m11 - m00 - m22) * 2;
        w = (m02 - m20) / s;
        x = (m01 + m10) / s;
        y = 0.25 * s;
        z = (m12 + m21) / s;
    } else {
        s = sqrt(1.0 + m22 - m00 - m11) * 2;
        w = (m10 - m01) / s;
        x = (m02 + m20) / s;
        y = (m12 + m21) / s;
        z = 0.25 * s;
    }
    if (w < 0) { /* one sign per rotation, for byte-stable output */
        w = -w;
        x = -x;
        y = -y;
        z = -z;
    }
    q[0] = (float)w;
    q[1] = (float)x;
    q[2] = (float)y;
    q[3] = (float)z;
}

static void mat3_apply(const double m[9], const double v[3], double out[3])
{
    for (int r = 0; r < 3; r++)
        out[r] = m[r * 3] * v[0] + m[r * 3 + 1] * v[1] + m[r * 3 + 2] * v[2];
}

int gc_gen_splats(const struct gc_gen_shape *shape, size_t count, struct gc_splats **ret_splats)
{
    const double light[3] = {0.27, 0.89, 0.36}; /* from above, unit length */
    double *pos = NULL, *normal = NULL, area = 0, spacing;
    struct gc_splats *splats = NULL;
    int *part = NULL, rc;
    struct gc_rng rng;

    if (shape == NULL || ret_splats == NULL || shape->nprims <= 0 ||
        shape->nprims > GC_SHAPE_PRIMS_MAX || count < GC_GEN_POINTS_MIN ||
        count > GC_GEN_POINTS_MAX || !(shape->stretch_y > 0) || !(shape->object_scale > 0))
        return GC_EINVAL;
    rc = gc_splats_new(count, &splats);
    if (rc != 0)
        return rc;
    pos = malloc(count * 3 * sizeof(double));
    normal = malloc(count * 3 * sizeof(double));
    part = malloc(count * sizeof(int));
    if (pos == NULL || normal == NULL || part == NULL) {
        rc = GC_ENOMEM;
        goto out;
    }
    gc_rng_seed(&rng, shape->sample_seed);
    gc_shape_sample(shape->prims, shape->nprims, count, &rng, pos, normal, part);

    /* Mean spacing between neighbouring points sets the splat size. */
    for (int i = 0; i < shape->nprims; i++)
        area += gc_prim_area(&shape->prims[i]);
    area *= shape->object_scale * shape->object_scale * sqrt(shape->stretch_y);
    spacing = sqrt(area / (double)count);

    for (size_t i = 0; i < count; i++) {
        struct gc_splat *s = &splats->v[i];
        double p[3] = {pos[i * 3], pos[i * 3 + 1] * shape->stretch_y, pos[i * 3 + 2]};
        double n[3] = {normal[i * 3], normal[i * 3 + 1] / shape->stretch_y, normal[i * 3 + 2]};
        double wp[3], wn[3], t1[3], t2[3], u[3], v[3], a[3] = {0, 1, 0};
        const float *albedo = shape->prim_rgb[part[i]];

        normalize3(n);
        mat3_apply(shape->object_rot, p, wp);
        mat3_apply(shape->object_rot, n, wn);
        normalize3(wn);
        for (int k = 0; k < 3; k++) {
            s->pos[k] = (float)(wp[k] * shape->object_scale + shape->object_offset[k]);
            s->normal[k] = (float)wn[k];
        }

        /* Colour: albedo with the light baked in, as 3DGS captures bake it. */
        double ndotl = fmax(0.0, wn[0] * light[0] + wn[1] * light[1] + wn[2] * light[2]);
        double shade = SHADE_AMBIENT + SHADE_DIFFUSE * ndotl;
        double spec = (shape->modifiers & GC_MOD_SHINY) ? 0.25 * pow(ndotl, 12.0) : 0.0;
        for (int k = 0; k < 3; k++) {
            double c = albedo[k] * shade + spec + COLOUR_NOISE * gc_rng_normal(&rng);
            c = fmin(1.0, fmax(0.0, c));
            s->f_dc[k] = (float)((c - 0.5) / GC_SH_C0);
        }
        if (shape->modifiers & GC_MOD_SHINY)
            for (int k = 0; k < GC_SPLAT_REST; k++)
                s->f_rest[k] = (float)(0.02 * gc_rng_normal(&rng));

        double logit = OPACITY_LOGIT + OPACITY_SPREAD * gc_rng_normal(&rng);
        s->opacity = (float)fmin(4.5, fmax(1.5, logit));
        double st = spacing * TANGENT_SIGMA * exp(0.1 * gc_rng_normal(&rng));
        s->scale[0] = (float)log(st);
        s->scale[1] = (float)log(st * exp(0.1 * gc_rng_normal(&rng)));
        s->scale[2] = (float)log(spacing * NORMAL_SIGMA);

        /* Orientation: local z along the normal, spun by a random angle about it. */
        if (fabs(wn[1]) > 0.9) {
            a[0] = 1;
            a[1] = 0;
        }
        cross3(wn, a, t1);
        normalize3(t1);
        cross3(wn, t1, t2);
        double spin = gc_rng_range(&rng, 0.1, 2.0 * M_PI - 0.1);
        for (int k = 0; k < 3; k++)
            u[k] = cos(spin) * t1[k] + sin(spin) * t2[k];
        cross3(wn, u, v);
        axes_to_quat(u, v, wn, s->rot);
    }
    *ret_splats = splats;
    splats = NULL;
    rc = 0;
out:
    free(pos);
    free(normal);
    free(part);
    gc_splats_free(splats);
    return rc;
}
