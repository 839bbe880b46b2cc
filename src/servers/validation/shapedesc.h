/*
 * shapedesc.h - a shape descriptor of a point cloud, for telling a cube from a
 * sphere or a tree without a neural network. y is up; the descriptor does not
 * change with the position, size or yaw (turn about y) of the cloud.
 * Features (docs/scoring.md): vertical aspect, horizontal anisotropy, spread
 * and hollowness of the distance from the centre, a 6-bin vertical profile
 * of width and of mass, emptiness around the vertical axis, 4-fold symmetry
 * about it, and vertical skew.
 */
#ifndef GC_SERVERS_SHAPEDESC_H
#define GC_SERVERS_SHAPEDESC_H

#include <stddef.h>

#define GC_SHAPEDESC_BINS 6
#define GC_SHAPEDESC_DIM  (7 + 2 * GC_SHAPEDESC_BINS)

struct gc_shape_desc {
    double f[GC_SHAPEDESC_DIM];
};

/*
 * gc_shape_describe: the descriptor of n points (pos: n * 3 doubles). Points
 * further than 3 RMS radii from the centroid are left out as strays.
 * Returns 0, or GC_EINVAL when fewer than 16 usable points remain.
 */
int gc_shape_describe(const double *pos, size_t n, struct gc_shape_desc *ret);

/* A weighted Euclidean distance between two descriptors. */
double gc_shape_desc_distance(const struct gc_shape_desc *a, const struct gc_shape_desc *b);

#endif
