/*
 * splat.h - an in-memory 3D Gaussian-splat model, as 3DGS stores it.
 *
 * Each splat carries the 62 float properties of the PLY format (ply.h) in
 * their stored form: opacity is a logit (alpha = sigmoid(opacity)), scale is
 * the log of the Gaussian's standard deviation along its three local axes,
 * rot is an unnormalised quaternion (w, x, y, z) = rot_0..3, f_dc is the
 * degree-0 spherical-harmonic colour (rgb = 0.5 + GC_SH_C0 * f_dc) and f_rest
 * the 45 higher-degree coefficients. The reference models use y as "up".
 */
#ifndef GC_SERVERS_SPLAT_H
#define GC_SERVERS_SPLAT_H

#include <stddef.h>

/* Most splats in one model (PLY files above this are refused). */
#define GC_SPLATS_MAX 2000000
/* Higher-degree SH coefficients per splat (degree 3, 15 per colour). */
#define GC_SPLAT_REST 45
/* Floats per splat in the PLY layout. */
#define GC_SPLAT_FLOATS 62
/* The SH degree-0 constant, 1 / (2 sqrt(pi)). */
#define GC_SH_C0 0.28209479177387814

struct gc_splat {
    float pos[3];
    float normal[3];
    float f_dc[3];
    float f_rest[GC_SPLAT_REST];
    float opacity;  /* logit */
    float scale[3]; /* log standard deviation */
    float rot[4];   /* w, x, y, z */
};

struct gc_splats {
    size_t count;
    struct gc_splat *v;
};

/*
 * gc_splats_new: count zeroed splats (count may be 0). Returns 0 with
 * *ret_splats set (free with gc_splats_free()), GC_ETOOBIG over
 * GC_SPLATS_MAX, or GC_ENOMEM.
 */
int gc_splats_new(size_t count, struct gc_splats **ret_splats);
/* Frees the model. NULL is a no-op. */
void gc_splats_free(struct gc_splats *splats);

/* alpha = sigmoid(opacity logit), computed without overflow. */
double gc_splat_alpha(const struct gc_splat *splat);
/* The logit that gives alpha (alpha clamped to [1e-6, 1 - 1e-6]). */
double gc_logit(double alpha);

#endif
