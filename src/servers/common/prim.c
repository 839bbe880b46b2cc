/* prim.c - primitive surfaces, distances and the canonical shapes (see prim.h). */
#include "prim.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "vocab.h"

/* Tries to draw a point that is not buried inside another part. */
#define SAMPLE_TRIES 8
/* Depth (in template units) below which a point counts as buried. */
#define BURIED_DEPTH 1e-3

static const double identity3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};

void gc_rot_axis(int axis, double angle, double out[9])
{
    double c = cos(angle), s = sin(angle);

    memcpy(out, identity3, sizeof(identity3));
    if (axis == 0) {
        out[4] = c;
        out[5] = -s;
        out[7] = s;
        out[8] = c;
    } else if (axis == 1) {
        out[0] = c;
        out[2] = s;
        out[6] = -s;
        out[8] = c;
    } else {
        out[0] = c;
        out[1] = -s;
        out[3] = s;
        out[4] = c;
    }
}

void gc_mat3_mul(const double a[9], const double b[9], double out[9])
{
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            out[r * 3 + c] = a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
}

static struct gc_prim part(int type, double s0, double s1, double s2, double cx, double cy,
                           double cz, int colour)
{
    struct gc_prim p;

    p.type = type;
    p.size[0] = s0;
    p.size[1] = s1;
    p.size[2] = s2;
    p.center[0] = cx;
    p.center[1] = cy;
    p.center[2] = cz;
    memcpy(p.rot, identity3, sizeof(identity3));
    p.colour = colour;
    return p;
}

/* Parts overlap a little rather than touch, so no face is shared between two parts. */
int gc_shape_template(int shape, struct gc_prim prims[GC_SHAPE_PRIMS_MAX])
{
    int n = 0;

    switch (shape) {
    case GC_SHAPE_CUBE:
        prims[n++] = part(GC_PRIM_BOX, 0.45, 0.45, 0.45, 0, 0, 0, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_SPHERE:
        prims[n++] = part(GC_PRIM_ELLIPSOID, 0.5, 0.5, 0.5, 0, 0, 0, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_CONE:
        prims[n++] = part(GC_PRIM_CONE, 0.45, 1.0, 0, 0, 0, 0, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_CYLINDER:
        prims[n++] = part(GC_PRIM_CYLINDER, 0.35, 0.5, 0, 0, 0, 0, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_TORUS:
        prims[n++] = part(GC_PRIM_TORUS, 0.38, 0.14, 0, 0, 0, 0, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_PYRAMID:
        prims[n++] = part(GC_PRIM_PYRAMID, 0.5, 0.8, 0, 0, 0, 0, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_CAPSULE:
        prims[n++] = part(GC_PRIM_CAPSULE, 0.22, 0.3, 0, 0, 0, 0, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_CHAIR:
        prims[n++] = part(GC_PRIM_BOX, 0.25, 0.03, 0.25, 0, -0.02, 0, GC_PRIM_MAIN);
        for (int i = 0; i < 4; i++)
            prims[n++] = part(GC_PRIM_BOX, 0.025, 0.24, 0.025, (i & 1) ? 0.21 : -0.21, -0.27,
                              (i & 2) ? 0.21 : -0.21, GC_PRIM_MAIN);
        prims[n++] = part(GC_PRIM_BOX, 0.25, 0.29, 0.025, 0, 0.28, -0.225, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_TABLE:
        prims[n++] = part(GC_PRIM_BOX, 0.5, 0.035, 0.3, 0, 0.22, 0, GC_PRIM_MAIN);
        for (int i = 0; i < 4; i++)
            prims[n++] = part(GC_PRIM_BOX, 0.04, 0.26, 0.04, (i & 1) ? 0.42 : -0.42, -0.07,
                              (i & 2) ? 0.22 : -0.22, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_TREE:
        prims[n++] = part(GC_PRIM_CYLINDER, 0.08, 0.22, 0, 0, -0.43, 0, GC_COLOUR_BROWN);
        prims[n++] = part(GC_PRIM_CONE, 0.36, 0.85, 0, 0, 0.125, 0, GC_PRIM_MAIN);
        break;
    case GC_SHAPE_CAR:
        prims[n++] = part(GC_PRIM_BOX, 0.5, 0.12, 0.22, 0, -0.02, 0, GC_PRIM_MAIN);
        prims[n++] = part(GC_PRIM_BOX, 0.27, 0.1, 0.2, -0.05, 0.19, 0, GC_PRIM_MAIN);
        for (int i = 0; i < 4; i++) {
            struct gc_prim w = part(GC_PRIM_CYLINDER, 0.12, 0.04, 0, (i & 1) ? 0.3 : -0.3, -0.14,
                                    (i & 2) ? 0.23 : -0.23, GC_COLOUR_BLACK);
            gc_rot_axis(0, M_PI / 2, w.rot); /* wheel axle along z */
            prims[n++] = w;
        }
        break;
    case GC_SHAPE_HOUSE:
        prims[n++] = part(GC_PRIM_BOX, 0.4, 0.29, 0.35, 0, -0.14, 0, GC_PRIM_MAIN);
        prims[n++] = part(GC_PRIM_PYRAMID, 0.5, 0.4, 0, 0, 0.33, 0, GC_COLOUR_BROWN);
        break;
    case GC_SHAPE_MUSHROOM:
        prims[n++] = part(GC_PRIM_CYLINDER, 0.1, 0.25, 0, 0, -0.22, 0, GC_COLOUR_WHITE);
        prims[n++] = part(GC_PRIM_ELLIPSOID, 0.42, 0.22, 0.42, 0, 0.08, 0, GC_PRIM_MAIN);
        break;
    default:
        break;
    }
    return n;
}

int gc_shape_default_colour(int shape)
{
    if (shape == GC_SHAPE_TREE)
        return GC_COLOUR_GREEN;
    if (shape == GC_SHAPE_MUSHROOM)
        return GC_COLOUR_RED;
    return -1;
}

double gc_prim_area(const struct gc_prim *prim)
{
    const double *s = prim->size;

    switch (prim->type) {
    case GC_PRIM_BOX:
        return 8.0 * (s[0] * s[1] + s[1] * s[2] + s[2] * s[0]);
    case GC_PRIM_ELLIPSOID: {
        /* Knud Thomsen's approximation, within about 1%. */
        double p = 1.6075, ap = pow(s[0], p), bp = pow(s[1], p), cp = pow(s[2], p);
        return 4.0 * M_PI * pow((ap * bp + ap * cp + bp * cp) / 3.0, 1.0 / p);
    }
    case GC_PRIM_CYLINDER:
        return 4.0 * M_PI * s[0] * s[1] + 2.0 * M_PI * s[0] * s[0];
    case GC_PRIM_CONE:
        return M_PI * s[0] * sqrt(s[0] * s[0] + s[1] * s[1]) + M_PI * s[0] * s[0];
    case GC_PRIM_TORUS:
        return 4.0 * M_PI * M_PI * s[0] * s[1];
    case GC_PRIM_PYRAMID:
        return 4.0 * s[0] * sqrt(s[1] * s[1] + s[0] * s[0]) + 4.0 * s[0] * s[0];
    case GC_PRIM_CAPSULE:
        return 4.0 * M_PI * s[0] * s[1] + 4.0 * M_PI * s[0] * s[0];
    default:
        return 0;
    }
}

static void to_local(const struct gc_prim *prim, const double pos[3], double q[3])
{
    double d[3] = {pos[0] - prim->center[0], pos[1] - prim->center[1], pos[2] - prim->center[2]};
    const double *r = prim->rot;

    /* The transpose undoes a rotation. */
    q[0] = r[0] * d[0] + r[3] * d[1] + r[6] * d[2];
    q[1] = r[1] * d[0] + r[4] * d[1] + r[7] * d[2];
    q[2] = r[2] * d[0] + r[5] * d[1] + r[8] * d[2];
}

static void to_world(const struct gc_prim *prim, const double q[3], const double n[3],
                     double pos[3], double normal[3])
{
    const double *r = prim->rot;

    for (int i = 0; i < 3; i++) {
        pos[i] = r[i * 3] * q[0] + r[i * 3 + 1] * q[1] + r[i * 3 + 2] * q[2] + prim->center[i];
        normal[i] = r[i * 3] * n[0] + r[i * 3 + 1] * n[1] + r[i * 3 + 2] * n[2];
    }
}

static double max3(double a, double b, double c)
{
    return fmax(a, fmax(b, c));
}

double gc_prim_sdf(const struct gc_prim *prim, const double pos[3])
{
    const double *s = prim->size;
    double q[3];

    to_local(prim, pos, q);
    switch (prim->type) {
    case GC_PRIM_BOX: {
        double d[3] = {fabs(q[0]) - s[0], fabs(q[1]) - s[1], fabs(q[2]) - s[2]};
        double o = hypot(fmax(d[0], 0), hypot(fmax(d[1], 0), fmax(d[2], 0)));
        return o + fmin(max3(d[0], d[1], d[2]), 0);
    }
    case GC_PRIM_ELLIPSOID: {
        double k0 = hypot(q[0] / s[0], hypot(q[1] / s[1], q[2] / s[2]));
        double k1 = hypot(q[0] / (s[0] * s[0]), hypot(q[1] / (s[1] * s[1]), q[2] / (s[2] * s[2])));
        if (k1 == 0)
            return -fmin(s[0], fmin(s[1], s[2]));
        return k0 * (k0 - 1.0) / k1;
    }
    case GC_PRIM_CYLINDER: {
        double dr = hypot(q[0], q[2]) - s[0], dy = fabs(q[1]) - s[1];
        return fmin(fmax(dr, dy), 0) + hypot(fmax(dr, 0), fmax(dy, 0));
    }
    case GC_PRIM_CONE:
    case GC_PRIM_PYRAMID: {
        double r = s[0], h = s[1], t = (h / 2 - q[1]) / h;
        double radial =
            prim->type == GC_PRIM_CONE ? hypot(q[0], q[2]) : fmax(fabs(q[0]), fabs(q[2]));
        double side = (radial - r * t) * h / sqrt(h * h + r * r);
        return max3(side, -(q[1] + h / 2), q[1] - h / 2);
    }
    case GC_PRIM_TORUS:
        return hypot(hypot(q[0], q[2]) - s[0], q[1]) - s[1];
    case GC_PRIM_CAPSULE: {
        double y = fmax(-s[1], fmin(s[1], q[1]));
        return hypot(q[0], hypot(q[1] - y, q[2])) - s[0];
    }
    default:
        return 1e30;
    }
}

static void unit_direction(struct gc_rng *rng, double d[3])
{
    double z = 2.0 * gc_rng_uniform(rng) - 1.0, phi = 2.0 * M_PI * gc_rng_uniform(rng);
    double rho = sqrt(fmax(0.0, 1.0 - z * z));

    d[0] = rho * cos(phi);
    d[1] = z;
    d[2] = rho * sin(phi);
}

static void normalize3(double v[3])
{
    double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);

    if (n > 0) {
        v[0] /= n;
        v[1] /= n;
        v[2] /= n;
    } else {
        v[0] = 0;
        v[1] = 1;
        v[2] = 0;
    }
}

static void sample_box(const double *s, struct gc_rng *rng, double q[3], double n[3])
{
    double ax = s[1] * s[2], ay = s[0] * s[2], az = s[0] * s[1];
    double pick = gc_rng_uniform(rng) * (ax + ay + az);
    double sign = gc_rng_uniform(rng) < 0.5 ? -1.0 : 1.0;
    int axis = pick < ax ? 0 : pick < ax + ay ? 1 : 2;

    for (int k = 0; k < 3; k++) {
        q[k] = (2.0 * gc_rng_uniform(rng) - 1.0) * s[k];
        n[k] = 0;
    }
    q[axis] = sign * s[axis];
    n[axis] = sign;
}

static void sample_disc(double r, double y, double ny, struct gc_rng *rng, double q[3], double n[3])
{
    double rho = r * sqrt(gc_rng_uniform(rng)), th = 2.0 * M_PI * gc_rng_uniform(rng);

    q[0] = rho * cos(th);
    q[1] = y;
    q[2] = rho * sin(th);
    n[0] = 0;
    n[1] = ny;
    n[2] = 0;
}

static void sample_pyramid(const double *s, struct gc_rng *rng, double q[3], double n[3])
{
    double b = s[0], h = s[1], slant = sqrt(h * h + b * b);
    double lateral = 4.0 * b * slant, base = 4.0 * b * b;

    if (gc_rng_uniform(rng) * (lateral + base) < base) {
        q[0] = (2.0 * gc_rng_uniform(rng) - 1.0) * b;
        q[1] = -h / 2;
        q[2] = (2.0 * gc_rng_uniform(rng) - 1.0) * b;
        n[0] = 0;
        n[1] = -1;
        n[2] = 0;
        return;
    }
    /* Face +x in a local frame, then turned to one of four faces. */
    int face = (int)(gc_rng_uniform(rng) * 4.0) & 3;
    double u = gc_rng_uniform(rng), v = gc_rng_uniform(rng);
    if (u + v > 1.0) {
        u = 1.0 - u;
        v = 1.0 - v;
    }
    double fx = u * b + v * b, fy = h / 2 - (u + v) * h, fz = -u * b + v * b;
    double fn[3] = {h / slant, b / slant, 0};
    double c = face == 0 ? 1 : face == 2 ? -1 : 0, sn = face == 1 ? 1 : face == 3 ? -1 : 0;
    q[0] = c * fx - sn * fz;
    q[1] = fy;
    q[2] = sn * fx + c * fz;
    n[0] = c * fn[0];
    n[1] = fn[1];
    n[2] = sn * fn[0];
}

void gc_prim_sample(const struct gc_prim *prim, struct gc_rng *rng, double pos[3], double normal[3])
{
    const double *s = prim->size;
    double q[3] = {0, 0, 0}, n[3] = {0, 1, 0};

    switch (prim->type) {
    case GC_PRIM_BOX:
        sample_box(s, rng, q, n);
        break;
    case GC_PRIM_ELLIPSOID: {
        double d[3];
        unit_direction(rng, d);
        for (int k = 0; k < 3; k++) {
            q[k] = d[k] * s[k];
            n[k] = d[k] / s[k];
        }
        normalize3(n);
        break;
    }
    case GC_PRIM_CYLINDER: {
        double side = 4.0 * M_PI * s[0] * s[1], caps = 2.0 * M_PI * s[0] * s[0];
        if (gc_rng_uniform(rng) * (side + caps) < caps) {
            double sign = gc_rng_uniform(rng) < 0.5 ? -1.0 : 1.0;
            sample_disc(s[0], sign * s[1], sign, rng, q, n);
        } else {
            double th = 2.0 * M_PI * gc_rng_uniform(rng);
            q[0] = s[0] * cos(th);
            q[1] = (2.0 * gc_rng_uniform(rng) - 1.0) * s[1];
            q[2] = s[0] * sin(th);
            n[0] = cos(th);
            n[1] = 0;
            n[2] = sin(th);
        }
        break;
    }
    case GC_PRIM_CONE: {
        double r = s[0], h = s[1], slant = sqrt(r * r + h * h);
        if (gc_rng_uniform(rng) * (slant + r) < r) {
            sample_disc(r, -h / 2, -1.0, rng, q, n);
        } else {
            double t = sqrt(gc_rng_uniform(rng)), th = 2.0 * M_PI * gc_rng_uniform(rng);
            q[0] = r * t * cos(th);
            q[1] = h / 2 - h * t;
            q[2] = r * t * sin(th);
            n[0] = h / slant * cos(th);
            n[1] = r / slant;
            n[2] = h / slant * sin(th);
        }
        break;
    }
    case GC_PRIM_TORUS: {
        double th = 2.0 * M_PI * gc_rng_uniform(rng), phi = 0;
        /* Density along the minor circle grows with the distance from the axis. */
        for (int i = 0; i < 32; i++) {
            phi = 2.0 * M_PI * gc_rng_uniform(rng);
            if (gc_rng_uniform(rng) * (s[0] + s[1]) < s[0] + s[1] * cos(phi))
                break;
        }
        double rho = s[0] + s[1] * cos(phi);
        q[0] = rho * cos(th);
        q[1] = s[1] * sin(phi);
        q[2] = rho * sin(th);
        n[0] = cos(phi) * cos(th);
        n[1] = sin(phi);
        n[2] = cos(phi) * sin(th);
        break;
    }
    case GC_PRIM_PYRAMID:
        sample_pyramid(s, rng, q, n);
        break;
    case GC_PRIM_CAPSULE: {
        double side = 4.0 * M_PI * s[0] * s[1], ends = 4.0 * M_PI * s[0] * s[0];
        if (gc_rng_uniform(rng) * (side + ends) < ends) {
            unit_direction(rng, n);
            for (int k = 0; k < 3; k++)
                q[k] = n[k] * s[0];
            q[1] += n[1] >= 0 ? s[1] : -s[1];
        } else {
            double th = 2.0 * M_PI * gc_rng_uniform(rng);
            q[0] = s[0] * cos(th);
            q[1] = (2.0 * gc_rng_uniform(rng) - 1.0) * s[1];
            q[2] = s[0] * sin(th);
            n[0] = cos(th);
            n[1] = 0;
            n[2] = sin(th);
        }
        break;
    }
    default:
        break;
    }
    to_world(prim, q, n, pos, normal);
}

void gc_shape_sample(const struct gc_prim *prims, int nprims, size_t count, struct gc_rng *rng,
                     double *pos, double *normal, int *part_out)
{
    double total = 0, cum = 0;
    size_t done = 0;

    for (int i = 0; i < nprims; i++)
        total += gc_prim_area(&prims[i]);
    for (int i = 0; i < nprims && total > 0; i++) {
        size_t until;
        cum += gc_prim_area(&prims[i]);
        until = i == nprims - 1 ? count : (size_t)llround((double)count * cum / total);
        if (until > count)
            until = count;
        for (; done < until; done++) {
            double *p = pos + done * 3, *n = normal + done * 3;
            for (int t = 0; t < SAMPLE_TRIES; t++) {
                bool buried = false;
                gc_prim_sample(&prims[i], rng, p, n);
                for (int j = 0; j < nprims && !buried; j++)
                    buried = j != i && gc_prim_sdf(&prims[j], p) < -BURIED_DEPTH;
                if (!buried)
                    break;
            }
            if (part_out != NULL)
                part_out[done] = i;
        }
    }
    /* No parts (or no area): put the points at the origin rather than leave them unset. */
    for (; done < count; done++) {
        memset(pos + done * 3, 0, 3 * sizeof(double));
        normal[done * 3] = 0;
        normal[done * 3 + 1] = 1;
        normal[done * 3 + 2] = 0;
        if (part_out != NULL)
            part_out[done] = 0;
    }
}
