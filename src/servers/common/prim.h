/*
 * prim.h - the solid primitives the reference models build shapes from, and
 * the canonical parts of each vocabulary shape (vocab.h).
 *
 * The generator samples these surfaces into splats; the scorer samples the
 * same canonical shapes to know what "a cube" or "a tree" should look like.
 * Local frames: y is up; boxes, ellipsoids, cylinders, capsules and tori are
 * centred on their origin (cylinders, capsules, tori around the y axis);
 * cones and pyramids have their base at y = -h/2 and apex at y = +h/2.
 */
#ifndef GC_SERVERS_PRIM_H
#define GC_SERVERS_PRIM_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

enum gc_prim_type {
    GC_PRIM_BOX,       /* size: half extents x, y, z */
    GC_PRIM_ELLIPSOID, /* size: radii x, y, z */
    GC_PRIM_CYLINDER,  /* size: radius, half height */
    GC_PRIM_CONE,      /* size: base radius, height */
    GC_PRIM_TORUS,     /* size: major radius, minor radius */
    GC_PRIM_PYRAMID,   /* size: half base, height (square base) */
    GC_PRIM_CAPSULE,   /* size: radius, half height of the straight part */
};

/* A primitive's colour: the model's main colour, or a fixed enum gc_colour_id. */
#define GC_PRIM_MAIN (-1)
/* Most parts in one shape. */
#define GC_SHAPE_PRIMS_MAX 12

struct gc_prim {
    int type;         /* enum gc_prim_type */
    double size[3];   /* see enum gc_prim_type */
    double center[3]; /* world = rot * local + center */
    double rot[9];    /* row-major rotation, local to world */
    int colour;       /* GC_PRIM_MAIN or an enum gc_colour_id */
};

/*
 * gc_shape_template: the canonical parts of shape (an enum gc_shape_id) in
 * prims: about one unit across, centred near the origin, y up. Returns the
 * number of parts, or 0 for an unknown shape.
 */
int gc_shape_template(int shape, struct gc_prim prims[GC_SHAPE_PRIMS_MAX]);

/* The default main colour of a shape (a tree is green), or -1 when it has none. */
int gc_shape_default_colour(int shape);

/* Surface area of the primitive. */
double gc_prim_area(const struct gc_prim *prim);

/* A signed distance bound: negative inside, positive outside (not exact for all types). */
double gc_prim_sdf(const struct gc_prim *prim, const double pos[3]);

/* A random point on the surface, roughly uniform by area, with its outward normal. */
void gc_prim_sample(const struct gc_prim *prim, struct gc_rng *rng, double pos[3],
                    double normal[3]);

/*
 * gc_shape_sample: count surface points of the union of prims: points per
 * part in proportion to area, points buried inside another part re-drawn (a
 * few times at most). Writes pos and normal (count * 3 doubles each) and, when
 * part is not NULL, the part index of each point. Deterministic for rng's state.
 */
void gc_shape_sample(const struct gc_prim *prims, int nprims, size_t count, struct gc_rng *rng,
                     double *pos, double *normal, int *part);

/* The 3x3 row-major rotation by angle (radians) about axis 0 (x), 1 (y) or 2 (z). */
void gc_rot_axis(int axis, double angle, double out[9]);
/* out = a * b (3x3 row-major); out may alias neither. */
void gc_mat3_mul(const double a[9], const double b[9], double out[9]);

#endif
