/* shapedesc.c - point-cloud shape descriptor (see shapedesc.h). */
#include "shapedesc.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/err.h"

/* Points usable for a descriptor at least. */
#define DESC_POINTS_MIN 16
/* Strays: further than this many RMS radii. */
#define DESC_STRAY_RMS 3.0

/* Weight of each feature in the distance (see the feature list in gc_shape_describe). */
static const double desc_weight[GC_SHAPEDESC_DIM] = {
    1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 0.3, /* aspect .. skew */
    0.6, 0.6, 0.6, 0.6, 0.6, 0.6,      /* width profile */
    3.0, 3.0, 3.0, 3.0, 3.0, 3.0,      /* mass profile */
};

/* Centroid and RMS radius of the points within limit of center (limit < 0: all). */
static size_t centre_of(const double *pos, size_t n, const double center_in[3], double limit,
                        double center[3], double *rms)
{
    double sum[3] = {0, 0, 0}, r2 = 0;
    size_t used = 0;

    for (size_t i = 0; i < n; i++) {
        const double *p = pos + i * 3;
        if (limit >= 0) {
            double dx = p[0] - center_in[0], dy = p[1] - center_in[1], dz = p[2] - center_in[2];
            if (dx * dx + dy * dy + dz * dz > limit * limit)
                continue;
        }
        for (int k = 0; k < 3; k++)
            sum[k] += p[k];
        used++;
    }
    if (used == 0)
        return 0;
    for (int k = 0; k < 3; k++)
        center[k] = sum[k] / (double)used;
    for (size_t i = 0; i < n; i++) {
        const double *p = pos + i * 3;
        double dx = p[0] - center[0], dy = p[1] - center[1], dz = p[2] - center[2];
        double d2 = dx * dx + dy * dy + dz * dz;
        if (limit >= 0) {
            double ex = p[0] - center_in[0], ey = p[1] - center_in[1], ez = p[2] - center_in[2];
            if (ex * ex + ey * ey + ez * ez > limit * limit)
                continue;
        }
        r2 += d2;
    }
    *rms = sqrt(r2 / (double)used);
    return used;
}

int gc_shape_describe(const double *pos, size_t n, struct gc_shape_desc *ret)
{
    double c0[3], c[3], rms0, rms, limit;
    double syy = 0, sxx = 0, szz = 0, sxz = 0, rsum = 0, rsq = 0, y3 = 0;
    double ymin = INFINITY, ymax = -INFINITY, re = 0, im = 0, rho_sum = 0;
    double bin_r2[GC_SHAPEDESC_BINS] = {0}, bin_n[GC_SHAPEDESC_BINS] = {0};
    size_t used, inner = 0, axis_near = 0;

    memset(ret, 0, sizeof(*ret));
    if (pos == NULL || n < DESC_POINTS_MIN)
        return GC_EINVAL;
    if (centre_of(pos, n, NULL, -1, c0, &rms0) == 0 || !isfinite(rms0) || !(rms0 > 0))
        return GC_EINVAL;
    limit = DESC_STRAY_RMS * rms0;
    used = centre_of(pos, n, c0, limit, c, &rms);
    if (used < DESC_POINTS_MIN || !(rms > 0) || !isfinite(rms))
        return GC_EINVAL;

#define KEPT(p)                                                                                    \
    ((p[0] - c0[0]) * (p[0] - c0[0]) + (p[1] - c0[1]) * (p[1] - c0[1]) +                           \
         (p[2] - c0[2]) * (p[2] - c0[2]) <=                                                        \
     limit * limit)
    for (size_t i = 0; i < n; i++) {
        const double *p = pos + i * 3;
        if (!KEPT(p))
            continue;
        double x = (p[0] - c[0]) / rms, y = (p[1] - c[1]) / rms, z = (p[2] - c[2]) / rms;
        double r = sqrt(x * x + y * y + z * z);
        sxx += x * x;
        szz += z * z;
        sxz += x * z;
        syy += y * y;
        y3 += y * y * y;
        rsum += r;
        rsq += r * r;
        inner += r < 0.5;
        ymin = fmin(ymin, y);
        ymax = fmax(ymax, y);
    }
    double un = (double)used;
    double sig_y = sqrt(syy / un), sig_h = sqrt((sxx + szz) / (2.0 * un));
    double h_rms = sqrt((sxx + szz) / un);
    /* 0: vertical aspect (log; a sphere gives 0). */
    ret->f[0] = log(fmax(sig_y, 1e-6) / fmax(sig_h, 1e-6));
    /* 1: horizontal anisotropy, small over large eigenvalue of the x-z covariance. */
    {
        double a = sxx / un, b = sxz / un, d = szz / un, mid = 0.5 * (a + d);
        double disc = sqrt(fmax(0.0, mid * mid - (a * d - b * b)));
        ret->f[1] = mid + disc > 0 ? (mid - disc) / (mid + disc) : 1.0;
    }
    /* 2: spread of the distance from the centre; 3: share of points near the centre. */
    {
        double mean = rsum / un;
        ret->f[2] = sqrt(fmax(0.0, rsq / un - mean * mean));
        ret->f[3] = (double)inner / un;
    }
    /* Second pass: vertical bins, the axis, 4-fold symmetry. */
    double span = ymax - ymin;
    for (size_t i = 0; i < n; i++) {
        const double *p = pos + i * 3;
        if (!KEPT(p))
            continue;
        double x = (p[0] - c[0]) / rms, y = (p[1] - c[1]) / rms, z = (p[2] - c[2]) / rms;
        double rho2 = x * x + z * z, rho = sqrt(rho2);
        /* Soft binning: a point shares itself between the two nearest bin centres, so
         * a small tilt moves mass smoothly instead of across a hard edge. */
        double at = span > 0 ? (y - ymin) / span * GC_SHAPEDESC_BINS - 0.5 : 0;
        at = fmin(GC_SHAPEDESC_BINS - 1.0, fmax(0.0, at));
        int bin = (int)at;
        if (bin > GC_SHAPEDESC_BINS - 2)
            bin = GC_SHAPEDESC_BINS - 2;
        double frac = at - bin;
        bin_r2[bin] += (1.0 - frac) * rho2;
        bin_n[bin] += 1.0 - frac;
        bin_r2[bin + 1] += frac * rho2;
        bin_n[bin + 1] += frac;
        axis_near += rho < 0.3 * h_rms;
        if (rho > 0.2 * h_rms) {
            double th = atan2(z, x);
            re += rho * cos(4 * th);
            im += rho * sin(4 * th);
            rho_sum += rho;
        }
    }
#undef KEPT
    /* 4: emptiness near the vertical axis; 5: 4-fold symmetry; 6: vertical skew. */
    ret->f[4] = (double)axis_near / un;
    ret->f[5] = rho_sum > 0 ? sqrt(re * re + im * im) / rho_sum : 0;
    ret->f[6] = fmax(-3.0, fmin(3.0, (y3 / un) / fmax(1e-9, sig_y * sig_y * sig_y)));
    /* 7..: width per height bin (RMS distance from the axis over the overall one); mass per bin. */
    for (int b = 0; b < GC_SHAPEDESC_BINS; b++) {
        ret->f[7 + b] = bin_n[b] > 0 && h_rms > 0 ? sqrt(bin_r2[b] / bin_n[b]) / h_rms : 0;
        ret->f[7 + GC_SHAPEDESC_BINS + b] = bin_n[b] / un;
    }
    for (int k = 0; k < GC_SHAPEDESC_DIM; k++)
        if (!isfinite(ret->f[k]))
            ret->f[k] = 0;
    return 0;
}

double gc_shape_desc_distance(const struct gc_shape_desc *a, const struct gc_shape_desc *b)
{
    double d = 0;

    for (int k = 0; k < GC_SHAPEDESC_DIM; k++) {
        double e = (a->f[k] - b->f[k]) * desc_weight[k];
        d += e * e;
    }
    return sqrt(d);
}
