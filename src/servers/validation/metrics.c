/* metrics.c - SSIM, gradients, and the no-reference image quality (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/err.h"

/* SSIM window radius (7x7) and constants for a dynamic range of 1. */
#define SSIM_RADIUS 3
#define SSIM_C1     (0.01 * 0.01)
#define SSIM_C2     (0.03 * 0.03)

/* IQA: a pixel is "object" above this alpha; thresholds of each part (docs/scoring.md). */
#define IQA_OBJECT_ALPHA   0.5
#define IQA_EDGE_MIN       0.05
#define IQA_INTERIOR_ALPHA 0.9
/* Histogram of local colour deviations for their median: bins over [0, range). */
#define RESIDUAL_BINS  512
#define RESIDUAL_RANGE 0.5

void gc_luma(const struct gc_image *image, float *out)
{
    size_t n = (size_t)image->width * (size_t)image->height;

    for (size_t i = 0; i < n; i++) {
        const float *c = image->rgb + i * 3;
        out[i] = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
    }
}

void gc_downsample2(const float *in, int w, int h, float *out)
{
    int ow = w / 2, oh = h / 2;

    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            const float *r0 = in + (size_t)(2 * y) * w + 2 * x, *r1 = r0 + w;
            out[(size_t)y * ow + x] = 0.25f * (r0[0] + r0[1] + r1[0] + r1[1]);
        }
}

void gc_gradient(const float *in, int w, int h, float *out)
{
    for (int y = 0; y < h; y++) {
        int ym = y > 0 ? y - 1 : 0, yp = y < h - 1 ? y + 1 : h - 1;
        for (int x = 0; x < w; x++) {
            int xm = x > 0 ? x - 1 : 0, xp = x < w - 1 ? x + 1 : w - 1;
#define AT(yy, xx) in[(size_t)(yy)*w + (xx)]
            float gx = (AT(ym, xp) + 2 * AT(y, xp) + AT(yp, xp)) -
                       (AT(ym, xm) + 2 * AT(y, xm) + AT(yp, xm));
            float gy = (AT(yp, xm) + 2 * AT(yp, x) + AT(yp, xp)) -
                       (AT(ym, xm) + 2 * AT(ym, x) + AT(ym, xp));
#undef AT
            out[(size_t)y * w + x] = 0.25f * sqrtf(gx * gx + gy * gy);
        }
    }
}

/* Summed-area table of f(i) over a w x h grid into s ((w+1) x (h+1)). */
#define BUILD_SAT(s, expr)                                                                         \
    do {                                                                                           \
        for (int x = 0; x <= w; x++)                                                               \
            (s)[x] = 0;                                                                            \
        for (int y = 0; y < h; y++) {                                                              \
            double row = 0;                                                                        \
            (s)[(size_t)(y + 1) * (w + 1)] = 0;                                                    \
            for (int x = 0; x < w; x++) {                                                          \
                size_t i = (size_t)y * w + x;                                                      \
                row += (expr);                                                                     \
                (s)[(size_t)(y + 1) * (w + 1) + x + 1] = (s)[(size_t)y * (w + 1) + x + 1] + row;   \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static double sat_sum(const double *s, int w, int x0, int y0, int x1, int y1)
{
    size_t W = (size_t)w + 1;

    return s[(size_t)y1 * W + x1] - s[(size_t)y0 * W + x1] - s[(size_t)y1 * W + x0] +
           s[(size_t)y0 * W + x0];
}

double gc_ssim(const float *a, const float *b, int w, int h, const float *weight)
{
    size_t cells = (size_t)(w + 1) * (size_t)(h + 1);
    double *sa = malloc(cells * 6 * sizeof(double)), total = 0, wsum = 0;

    if (sa == NULL)
        return -2;
    double *sb = sa + cells, *saa = sb + cells, *sbb = saa + cells, *sab = sbb + cells,
           *sw = sab + cells;
    BUILD_SAT(sa, a[i]);
    BUILD_SAT(sb, b[i]);
    BUILD_SAT(saa, (double)a[i] * a[i]);
    BUILD_SAT(sbb, (double)b[i] * b[i]);
    BUILD_SAT(sab, (double)a[i] * b[i]);
    BUILD_SAT(sw, weight != NULL ? weight[i] : 1.0);
    for (int y = 0; y < h; y++) {
        int y0 = y - SSIM_RADIUS < 0 ? 0 : y - SSIM_RADIUS;
        int y1 = y + SSIM_RADIUS + 1 > h ? h : y + SSIM_RADIUS + 1;
        for (int x = 0; x < w; x++) {
            int x0 = x - SSIM_RADIUS < 0 ? 0 : x - SSIM_RADIUS;
            int x1 = x + SSIM_RADIUS + 1 > w ? w : x + SSIM_RADIUS + 1;
            double n = (double)(x1 - x0) * (y1 - y0);
            double wt = sat_sum(sw, w, x0, y0, x1, y1) / n;
            if (!(wt > 1e-6))
                continue;
            double ma = sat_sum(sa, w, x0, y0, x1, y1) / n;
            double mb = sat_sum(sb, w, x0, y0, x1, y1) / n;
            double va = fmax(0.0, sat_sum(saa, w, x0, y0, x1, y1) / n - ma * ma);
            double vb = fmax(0.0, sat_sum(sbb, w, x0, y0, x1, y1) / n - mb * mb);
            double cab = sat_sum(sab, w, x0, y0, x1, y1) / n - ma * mb;
            double s = ((2 * ma * mb + SSIM_C1) * (2 * cab + SSIM_C2)) /
                       ((ma * ma + mb * mb + SSIM_C1) * (va + vb + SSIM_C2));
            total += wt * s;
            wsum += wt;
        }
    }
    free(sa);
    if (!(wsum > 0))
        return 0;
    return fmax(-1.0, fmin(1.0, total / wsum));
}

/* 0 at or below lo, 1 at or above hi, linear between. */
static double ramp(double v, double lo, double hi)
{
    if (!(v > lo))
        return 0;
    if (v >= hi)
        return 1;
    return (v - lo) / (hi - lo);
}

int gc_iqa_measure(const struct gc_image *image, float bg, struct gc_iqa *ret)
{
    int w = image->width, h = image->height;
    size_t n = (size_t)w * (size_t)h, object = 0, clipped = 0, edges = 0, interior = 0;
    double lsum = 0, lsq = 0, gsum = 0;
    float *grad = malloc(n * sizeof(float));

    if (grad == NULL)
        return GC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        float a = image->alpha[i];
        if (!(a > IQA_OBJECT_ALPHA))
            continue;
        /* The object's own colour, with the background taken back out. */
        double c[3], l;
        int hi = 0, lo = 0;
        for (int k = 0; k < 3; k++) {
            c[k] = (image->rgb[i * 3 + k] - bg * (1.0 - a)) / a;
            hi += c[k] >= 0.98;
            lo += c[k] <= 0.02;
        }
        l = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
        lsum += l;
        lsq += l * l;
        clipped += hi == 3 || lo == 3;
        object++;
    }
    /*
     * Speckle: the median, over opaque pixels, of the colour's standard deviation
     * in the 5x5 window around each; a median ignores the edges between parts.
     */
    {
        size_t hist[RESIDUAL_BINS] = {0};
        for (int y = 2; y < h - 2; y++) {
            for (int x = 2; x < w - 2; x++) {
                double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0}, var = 0;
                bool inside = true;
                for (int dy = -2; dy <= 2 && inside; dy++)
                    for (int dx = -2; dx <= 2; dx++) {
                        size_t j = (size_t)(y + dy) * w + (size_t)(x + dx);
                        if (!(image->alpha[j] > IQA_INTERIOR_ALPHA)) {
                            inside = false;
                            break;
                        }
                        for (int k = 0; k < 3; k++) {
                            double v = image->rgb[j * 3 + k];
                            sum[k] += v;
                            sq[k] += v * v;
                        }
                    }
                if (!inside)
                    continue;
                for (int k = 0; k < 3; k++)
                    var += fmax(0.0, sq[k] / 25.0 - (sum[k] / 25.0) * (sum[k] / 25.0)) / 3.0;
                int bin = (int)(sqrt(var) / RESIDUAL_RANGE * RESIDUAL_BINS);
                hist[bin < RESIDUAL_BINS ? bin : RESIDUAL_BINS - 1]++;
                interior++;
            }
        }
        ret->residual = RESIDUAL_RANGE; /* no opaque interior at all: the worst */
        for (size_t b = 0, seen = 0; b < RESIDUAL_BINS && interior > 0; b++) {
            seen += hist[b];
            if (2 * seen >= interior) {
                ret->residual = (b + 0.5) * RESIDUAL_RANGE / RESIDUAL_BINS;
                break;
            }
        }
    }
    size_t touched = 0, opaque = 0;
    for (size_t i = 0; i < n; i++) {
        touched += image->alpha[i] > 0.05f;
        opaque += image->alpha[i] > 0.95f;
    }
    ret->solidity = touched > 0 ? (double)opaque / (double)touched : 0;
    gc_gradient(image->alpha, w, h, grad);
    for (size_t i = 0; i < n; i++) {
        if (grad[i] > IQA_EDGE_MIN) {
            gsum += grad[i];
            edges++;
        }
    }
    free(grad);

    ret->coverage = (double)object / (double)n;
    ret->q_coverage = ramp(ret->coverage, 0.02, 0.12) * (1.0 - ramp(ret->coverage, 0.80, 0.98));
    if (object > 0) {
        double mean = lsum / (double)object;
        double sd = sqrt(fmax(0.0, lsq / (double)object - mean * mean));
        ret->q_contrast = ramp(sd / fmax(mean, 0.05), 0.0, 0.10);
        ret->q_exposure = 1.0 - ramp((double)clipped / (double)object, 0.05, 0.5);
    } else {
        ret->q_contrast = 0;
        ret->q_exposure = 0;
    }
    ret->q_sharpness = edges > 0 ? ramp(gsum / (double)edges, 0.10, 0.30) : 0;
    ret->q_clean = 1.0 - ramp(ret->residual, 0.015, 0.05);
    ret->q_solidity = ramp(ret->solidity, 0.70, 0.85);
    ret->iqa = (0.25 * ret->q_coverage + 0.25 * ret->q_contrast + 0.35 * ret->q_sharpness +
                0.15 * ret->q_exposure) *
               ret->q_solidity * ret->q_clean;
    return 0;
}
