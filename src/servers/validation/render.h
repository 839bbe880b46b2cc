/*
 * render.h - a small CPU Gaussian-splat rasteriser (the 3DGS image model).
 *
 * Each splat's 3D covariance R S S^T R^T (rotation from its quaternion, S its
 * exp(scale)) is projected with the perspective Jacobian (EWA splatting, as
 * 3DGS does), 0.3 px^2 is added as a low-pass filter, and the resulting 2D
 * Gaussian is alpha-blended front to back in depth order:
 * alpha = min(0.99, sigmoid(opacity) * exp(-d^T S2^-1 d / 2)), fragments
 * under 1/255 are skipped, and a pixel stops once its transmittance is below
 * 1e-4. Colour is the SH DC term only: rgb = clamp(0.5 + C0 * f_dc, 0, 1).
 *
 * Work is bounded for hostile input: the total footprint of one render is
 * capped at GC_RENDER_WORK_MAX pixel updates by shrinking the largest
 * footprints (they are cut short, not dropped), and splats with non-finite
 * values, behind the camera or nearly transparent (alpha < 1/255) are skipped.
 */
#ifndef GC_SERVERS_RENDER_H
#define GC_SERVERS_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "servers/common/splat.h"

/* Largest image side. */
#define GC_RENDER_DIM_MAX 2048
/* Most pixel updates (summed footprints) in one render. */
#define GC_RENDER_WORK_MAX (48u << 20)

/* Where the object is: a centre and a radius that frame it. */
struct gc_frame {
    double center[3];
    double radius;
};

/* A perspective camera looking at a point. */
struct gc_view {
    double eye[3];
    double right[3], up[3], forward[3]; /* orthonormal, forward toward the target */
    double fov_y;                       /* radians */
    double near;                        /* nothing closer than this is drawn */
};

/* A rendered image: rgb composited over the background, and coverage (1 - T). */
struct gc_image {
    int width, height;
    float *rgb;   /* width * height * 3, rows top to bottom */
    float *alpha; /* width * height */
};

/*
 * gc_frame_splats: the frame of a model: the box between the 1st and 99th
 * percentile of each coordinate of its visible splats (alpha >= 0.01, finite
 * position), so a few stray splats cannot shrink the object to a dot. Returns
 * 0, GC_EINVAL (no visible splats) or GC_ENOMEM.
 */
int gc_frame_splats(const struct gc_splats *splats, struct gc_frame *ret);

/*
 * gc_view_orbit: a camera on a sphere around frame->center, at yaw and
 * elevation (radians; yaw 0 looks along -z, elevation > 0 looks down), far
 * enough that the frame's sphere fits the vertical field of view fov_y.
 */
void gc_view_orbit(const struct gc_frame *frame, double yaw, double elevation, double fov_y,
                   struct gc_view *ret);

/*
 * gc_render: renders splats from view into a new image (free with
 * gc_image_free()) of width x height over a grey background of level bg
 * (0..1). Returns 0, GC_EINVAL or GC_ENOMEM.
 */
int gc_render(const struct gc_splats *splats, const struct gc_view *view, int width, int height,
              float bg, struct gc_image **ret_image);

/* Frees an image. NULL is a no-op. */
void gc_image_free(struct gc_image *image);

/* The image as RGB8 (width * height * 3 bytes, caller-provided). */
void gc_image_to_rgb8(const struct gc_image *image, uint8_t *out);

#endif
