/*
 * metrics.h - image measures of the reference scorer: SSIM, gradients, and
 * the no-reference image quality (IQA) of a render. Formulas: docs/scoring.md.
 */
#ifndef GC_SERVERS_METRICS_H
#define GC_SERVERS_METRICS_H

#include "render.h"

/* Rec. 601 luma of image's rgb into out (width * height floats). */
void gc_luma(const struct gc_image *image, float *out);

/* 2x2 box downsample of in (w x h, both even) into out (w/2 x h/2). */
void gc_downsample2(const float *in, int w, int h, float *out);

/* Sobel gradient magnitude of in (w x h) into out, edges replicated; divided by 4. */
void gc_gradient(const float *in, int w, int h, float *out);

/*
 * gc_ssim: mean SSIM of a and b (w x h, values about 0..1) over 7x7 windows
 * (C1 = 0.01^2, C2 = 0.03^2), each window weighted by the mean of weight over
 * it (weight NULL: all equal). Returns a value in [-1, 1]; 0 when no window
 * has weight. Returns -2 when memory runs out.
 */
double gc_ssim(const float *a, const float *b, int w, int h, const float *weight);

/* The parts of the no-reference image quality, each in [0, 1]. */
struct gc_iqa {
    double coverage; /* share of pixels with alpha > 0.5 */
    double residual; /* median local (5x5) colour deviation inside the object */
    double solidity; /* share of touched pixels (alpha > 0.05) that are opaque (alpha > 0.95) */
    double q_coverage, q_contrast, q_sharpness, q_exposure, q_clean, q_solidity;
    double iqa; /* the weighted sum */
};

/* gc_iqa: measures a render (over any background). Returns 0 or GC_ENOMEM. */
int gc_iqa_measure(const struct gc_image *image, float bg, struct gc_iqa *ret);

#endif
