/* render.c - CPU Gaussian-splat rasteriser (see render.h). */
#include "render.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* Splats fainter than this are not drawn. */
#define ALPHA_MIN (1.0 / 255.0)
/* A pixel is finished when its transmittance drops below this. */
#define T_MIN 1e-4
/* Screen-space low-pass filter added to each projected covariance (px^2). */
#define LOWPASS 0.3
/* Log-scales are clamped to this range before exp(). */
#define LOG_SCALE_MAX 20.0
/* Visible splats for framing: alpha at least this. */
#define FRAME_ALPHA_MIN 0.01

struct projected {
    float u, v;       /* centre, pixels */
    float ca, cb, cc; /* conic: inverse 2D covariance */
    float rgb[3];
    float alpha;        /* sigmoid(opacity) */
    float cutoff;       /* fragments with -power above this are under 1/255 */
    int x0, x1, y0, y1; /* inclusive footprint, clipped to the image */
};

/* Maps a float to a uint32 whose unsigned order is the float order. */
static uint32_t float_key(float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Sorts idx[0..n) by keys (LSD radix, stable); tmp_keys/tmp_idx have room for n. */
static void radix_sort(uint32_t *keys, uint32_t *idx, size_t n, uint32_t *tmp_keys,
                       uint32_t *tmp_idx)
{
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((keys[i] >> shift) & 0xff) + 1]++;
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++) {
            size_t at = count[(keys[i] >> shift) & 0xff]++;
            tmp_keys[at] = keys[i];
            tmp_idx[at] = idx[i];
        }
        memcpy(keys, tmp_keys, n * sizeof(*keys));
        memcpy(idx, tmp_idx, n * sizeof(*idx));
    }
}

/* The k-th smallest (0-based) of keys[0..n), n > k, by radix selection: O(n), no reordering. */
static uint32_t radix_select(const uint32_t *keys, size_t n, size_t k)
{
    uint32_t prefix = 0, mask = 0;

    for (int shift = 24; shift >= 0; shift -= 8) {
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++)
            if ((keys[i] & mask) == prefix)
                count[(keys[i] >> shift) & 0xff]++;
        int b = 0;
        while (b < 255 && k >= count[b])
            k -= count[b++];
        prefix |= (uint32_t)b << shift;
        mask |= 0xffu << shift;
    }
    return prefix;
}

static float key_float(uint32_t key)
{
    uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
    float f;

    memcpy(&f, &u, 4);
    return f;
}

static bool splat_visible_for_frame(const struct gc_splat *s)
{
    return isfinite(s->pos[0]) && isfinite(s->pos[1]) && isfinite(s->pos[2]) &&
           isfinite(s->opacity) && gc_splat_alpha(s) >= FRAME_ALPHA_MIN;
}

int gc_frame_splats(const struct gc_splats *splats, struct gc_frame *ret)
{
    uint32_t *keys;
    size_t n = 0;
    double lo[3], hi[3], r2 = 0;

    if (splats == NULL || ret == NULL || (splats->v == NULL && splats->count > 0))
        return GC_EINVAL;
    for (size_t i = 0; i < splats->count; i++)
        n += splat_visible_for_frame(&splats->v[i]);
    if (n == 0)
        return GC_EINVAL;
    keys = malloc(n * sizeof(*keys));
    if (keys == NULL)
        return GC_ENOMEM;
    for (int axis = 0; axis < 3; axis++) {
        size_t j = 0;
        for (size_t i = 0; i < splats->count; i++)
            if (splat_visible_for_frame(&splats->v[i]))
                keys[j++] = float_key(splats->v[i].pos[axis]);
        lo[axis] = key_float(radix_select(keys, n, n / 100));
        hi[axis] = key_float(radix_select(keys, n, n - 1 - n / 100));
    }
    free(keys);
    for (int axis = 0; axis < 3; axis++) {
        ret->center[axis] = 0.5 * (lo[axis] + hi[axis]);
        r2 += 0.25 * (hi[axis] - lo[axis]) * (hi[axis] - lo[axis]);
    }
    ret->radius = sqrt(r2);
    /* A model collapsed to a point still gets a usable camera. */
    double floor_r =
        1e-6 * (1.0 + fabs(ret->center[0]) + fabs(ret->center[1]) + fabs(ret->center[2]));
    if (!(ret->radius > floor_r))
        ret->radius = floor_r;
    return 0;
}

static void normalize3(double v[3])
{
    double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);

    if (n > 0)
        for (int k = 0; k < 3; k++)
            v[k] /= n;
}

static void cross3(const double a[3], const double b[3], double out[3])
{
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

void gc_view_orbit(const struct gc_frame *frame, double yaw, double elevation, double fov_y,
                   struct gc_view *ret)
{
    const double world_up[3] = {0, 1, 0};
    double dist = frame->radius / sin(fov_y / 2) * 1.05;
    double dir[3] = {sin(yaw) * cos(elevation), sin(elevation), cos(yaw) * cos(elevation)};

    for (int k = 0; k < 3; k++) {
        ret->eye[k] = frame->center[k] + dist * dir[k];
        ret->forward[k] = -dir[k];
    }
    cross3(ret->forward, world_up, ret->right);
    normalize3(ret->right);
    cross3(ret->right, ret->forward, ret->up);
    normalize3(ret->up);
    ret->fov_y = fov_y;
    ret->near = 0.02 * dist;
}

/* Projects one splat; false when it is not drawn. */
static bool project(const struct gc_splat *s, const struct gc_view *view, double focal, int width,
                    int height, struct projected *out)
{
    double d[3], cam[3], q[4], qn, rot[9], m[9], cov[9], wc[9], covc[9];
    double alpha, tan_half = tan(view->fov_y / 2), lim_x, lim_y;

    for (int k = 0; k < 3; k++)
        if (!isfinite(s->pos[k]) || !isfinite(s->scale[k]) || !isfinite(s->f_dc[k]))
            return false;
    for (int k = 0; k < 4; k++)
        if (!isfinite(s->rot[k]))
            return false;
    if (!isfinite(s->opacity))
        return false;
    alpha = gc_splat_alpha(s);
    if (alpha < ALPHA_MIN)
        return false;
    for (int k = 0; k < 3; k++)
        d[k] = (double)s->pos[k] - view->eye[k];
    cam[0] = d[0] * view->right[0] + d[1] * view->right[1] + d[2] * view->right[2];
    cam[1] = d[0] * view->up[0] + d[1] * view->up[1] + d[2] * view->up[2];
    cam[2] = d[0] * view->forward[0] + d[1] * view->forward[1] + d[2] * view->forward[2];
    if (!(cam[2] > view->near))
        return false;

    /* Rotation from the quaternion (w, x, y, z); a zero quaternion is the identity. */
    for (int k = 0; k < 4; k++)
        q[k] = s->rot[k];
    qn = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    if (!(qn > 1e-12)) {
        q[0] = 1;
        q[1] = q[2] = q[3] = 0;
    } else {
        for (int k = 0; k < 4; k++)
            q[k] /= qn;
    }
    double w = q[0], x = q[1], y = q[2], z = q[3];
    rot[0] = 1 - 2 * (y * y + z * z);
    rot[1] = 2 * (x * y - w * z);
    rot[2] = 2 * (x * z + w * y);
    rot[3] = 2 * (x * y + w * z);
    rot[4] = 1 - 2 * (x * x + z * z);
    rot[5] = 2 * (y * z - w * x);
    rot[6] = 2 * (x * z - w * y);
    rot[7] = 2 * (y * z + w * x);
    rot[8] = 1 - 2 * (x * x + y * y);
    /* M = R S; world covariance M M^T. */
    for (int c = 0; c < 3; c++) {
        double sc = exp(fmin(LOG_SCALE_MAX, fmax(-LOG_SCALE_MAX, (double)s->scale[c])));
        for (int r = 0; r < 3; r++)
            m[r * 3 + c] = rot[r * 3 + c] * sc;
    }
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            cov[r * 3 + c] =
                m[r * 3] * m[c * 3] + m[r * 3 + 1] * m[c * 3 + 1] + m[r * 3 + 2] * m[c * 3 + 2];
    /* Camera frame: rows right, up, forward. covc = W cov W^T. */
    const double *wr[3] = {view->right, view->up, view->forward};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            wc[r * 3 + c] =
                wr[r][0] * cov[0 * 3 + c] + wr[r][1] * cov[1 * 3 + c] + wr[r][2] * cov[2 * 3 + c];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            covc[r * 3 + c] =
                wc[r * 3] * wr[c][0] + wc[r * 3 + 1] * wr[c][1] + wc[r * 3 + 2] * wr[c][2];

    /* Perspective Jacobian at the (clamped) centre, image v pointing down. */
    double tz = cam[2];
    lim_x = 1.3 * tan_half * width / height;
    lim_y = 1.3 * tan_half;
    double tx = fmin(lim_x, fmax(-lim_x, cam[0] / tz)) * tz;
    double ty = fmin(lim_y, fmax(-lim_y, cam[1] / tz)) * tz;
    double j0[3] = {focal / tz, 0, -focal * tx / (tz * tz)};
    double j1[3] = {0, -focal / tz, focal * ty / (tz * tz)};
    double a = 0, b = 0, c = 0;
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++) {
            a += j0[r] * covc[r * 3 + k] * j0[k];
            b += j0[r] * covc[r * 3 + k] * j1[k];
            c += j1[r] * covc[r * 3 + k] * j1[k];
        }
    a += LOWPASS;
    c += LOWPASS;
    double det = a * c - b * b;
    if (!(det > 0) || !isfinite(det))
        return false;
    /*
     * The fragment is drawn while alpha * exp(power) >= 1/255, that is while
     * -power <= ln(255 alpha): the ellipse's bounding box is +-k sqrt(var).
     */
    double cutoff = log(255.0 * alpha);
    double reach = sqrt(2.0 * cutoff);
    double rx = ceil(reach * sqrt(a)), ry = ceil(reach * sqrt(c));
    double u = width / 2.0 + focal * cam[0] / tz;
    double v = height / 2.0 - focal * cam[1] / tz;
    if (!isfinite(u) || !isfinite(v) || !isfinite(rx) || !isfinite(ry))
        return false;
    double x0 = fmax(0, floor(u - rx)), x1 = fmin(width - 1, floor(u + rx));
    double y0 = fmax(0, floor(v - ry)), y1 = fmin(height - 1, floor(v + ry));
    if (x0 > x1 || y0 > y1)
        return false;
    out->u = (float)u;
    out->v = (float)v;
    out->ca = (float)(c / det);
    out->cb = (float)(-b / det);
    out->cc = (float)(a / det);
    for (int k = 0; k < 3; k++)
        out->rgb[k] = (float)fmin(1.0, fmax(0.0, 0.5 + GC_SH_C0 * s->f_dc[k]));
    out->alpha = (float)alpha;
    out->cutoff = (float)cutoff;
    out->x0 = (int)x0;
    out->x1 = (int)x1;
    out->y0 = (int)y0;
    out->y1 = (int)y1;
    return true;
}

static uint64_t capped_work(const struct projected *p, size_t n, uint64_t half)
{
    uint64_t total = 0, side = 2 * half + 1, cap = side * side;

    for (size_t i = 0; i < n; i++) {
        uint64_t area = (uint64_t)(p[i].x1 - p[i].x0 + 1) * (uint64_t)(p[i].y1 - p[i].y0 + 1);
        total += area < cap ? area : cap;
    }
    return total;
}

/* Shrinks footprints until their summed area fits GC_RENDER_WORK_MAX. */
static void cap_work(struct projected *p, size_t n, int width, int height)
{
    uint64_t lo = 0, hi = (uint64_t)(width > height ? width : height);

    if (capped_work(p, n, hi) <= GC_RENDER_WORK_MAX)
        return;
    while (lo < hi) { /* the largest half-size that fits */
        uint64_t mid = (lo + hi + 1) / 2;
        if (capped_work(p, n, mid) <= GC_RENDER_WORK_MAX)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (size_t i = 0; i < n; i++) {
        /* Footprints reach the image, so a clamped centre is close to the true one. */
        int cu = (int)fminf(fmaxf(p[i].u, -1.0f), (float)width);
        int cv = (int)fminf(fmaxf(p[i].v, -1.0f), (float)height);
        int h = (int)lo;
        if (p[i].x0 < cu - h)
            p[i].x0 = cu - h;
        if (p[i].x1 > cu + h)
            p[i].x1 = cu + h;
        if (p[i].y0 < cv - h)
            p[i].y0 = cv - h;
        if (p[i].y1 > cv + h)
            p[i].y1 = cv + h;
    }
}

int gc_render(const struct gc_splats *splats, const struct gc_view *view, int width, int height,
              float bg, struct gc_image **ret_image)
{
    struct projected *proj = NULL;
    uint32_t *keys = NULL, *idx = NULL, *tmp_keys = NULL, *tmp_idx = NULL;
    float *trans = NULL, *depth = NULL;
    struct gc_image *img = NULL;
    size_t n = 0, npix;
    double focal;
    int rc = GC_ENOMEM;

    if (splats == NULL || view == NULL || ret_image == NULL || width <= 0 || height <= 0 ||
        width > GC_RENDER_DIM_MAX || height > GC_RENDER_DIM_MAX ||
        (splats->v == NULL && splats->count > 0) || !(view->fov_y > 0.01 && view->fov_y < 3.0))
        return GC_EINVAL;
    npix = (size_t)width * (size_t)height;
    focal = (height / 2.0) / tan(view->fov_y / 2);
    img = calloc(1, sizeof(*img));
    if (img == NULL)
        goto out;
    img->width = width;
    img->height = height;
    img->rgb = calloc(npix * 3, sizeof(float));
    img->alpha = calloc(npix, sizeof(float));
    trans = malloc(npix * sizeof(float));
    proj = malloc((splats->count > 0 ? splats->count : 1) * sizeof(*proj));
    depth = malloc((splats->count > 0 ? splats->count : 1) * sizeof(*depth));
    if (img->rgb == NULL || img->alpha == NULL || trans == NULL || proj == NULL || depth == NULL)
        goto out;
    for (size_t i = 0; i < splats->count; i++) {
        const struct gc_splat *s = &splats->v[i];
        if (!project(s, view, focal, width, height, &proj[n]))
            continue;
        double d[3] = {s->pos[0] - view->eye[0], s->pos[1] - view->eye[1],
                       s->pos[2] - view->eye[2]};
        depth[n] =
            (float)(d[0] * view->forward[0] + d[1] * view->forward[1] + d[2] * view->forward[2]);
        n++;
    }
    cap_work(proj, n, width, height);

    keys = malloc((n > 0 ? n : 1) * sizeof(*keys));
    idx = malloc((n > 0 ? n : 1) * sizeof(*idx));
    tmp_keys = malloc((n > 0 ? n : 1) * sizeof(*tmp_keys));
    tmp_idx = malloc((n > 0 ? n : 1) * sizeof(*tmp_idx));
    if (keys == NULL || idx == NULL || tmp_keys == NULL || tmp_idx == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        keys[i] = float_key(depth[i]);
        idx[i] = (uint32_t)i;
    }
    radix_sort(keys, idx, n, tmp_keys, tmp_idx);

    for (size_t i = 0; i < npix; i++)
        trans[i] = 1.0f;
    for (size_t o = 0; o < n; o++) {
        const struct projected *p = &proj[idx[o]];
        for (int y = p->y0; y <= p->y1; y++) {
            float dy = (float)y + 0.5f - p->v;
            /* The row's span inside the cutoff ellipse: ca dx^2 + 2 cb dy dx + cc dy^2 <= 2 cutoff.
             */
            float disc = p->cb * dy * p->cb * dy - p->ca * (p->cc * dy * dy - 2.0f * p->cutoff);
            if (!(disc >= 0.0f))
                continue;
            float root = sqrtf(disc), lo = (-p->cb * dy - root) / p->ca;
            float hi = (-p->cb * dy + root) / p->ca;
            int xs = (int)fmaxf((float)p->x0, ceilf(p->u - 0.5f + lo) - 1.0f);
            int xe = (int)fminf((float)p->x1, floorf(p->u - 0.5f + hi) + 1.0f);
            for (int x = xs; x <= xe; x++) {
                size_t pix = (size_t)y * (size_t)width + (size_t)x;
                float t = trans[pix], dx, power, a;
                if (t < T_MIN)
                    continue;
                dx = (float)x + 0.5f - p->u;
                power = -0.5f * (p->ca * dx * dx + p->cc * dy * dy) - p->cb * dx * dy;
                if (power > 0.0f || power < -p->cutoff)
                    continue;
                a = p->alpha * expf(power);
                if (a > 0.99f)
                    a = 0.99f;
                if (a < (float)ALPHA_MIN)
                    continue;
                float *c = img->rgb + pix * 3;
                c[0] += t * a * p->rgb[0];
                c[1] += t * a * p->rgb[1];
                c[2] += t * a * p->rgb[2];
                trans[pix] = t * (1.0f - a);
            }
        }
    }
    for (size_t i = 0; i < npix; i++) {
        for (int k = 0; k < 3; k++)
            img->rgb[i * 3 + k] += trans[i] * bg;
        img->alpha[i] = 1.0f - trans[i];
    }
    *ret_image = img;
    img = NULL;
    rc = 0;
out:
    gc_image_free(img);
    free(proj);
    free(depth);
    free(trans);
    free(keys);
    free(idx);
    free(tmp_keys);
    free(tmp_idx);
    return rc;
}

void gc_image_free(struct gc_image *image)
{
    if (image == NULL)
        return;
    free(image->rgb);
    free(image->alpha);
    free(image);
}

void gc_image_to_rgb8(const struct gc_image *image, uint8_t *out)
{
    size_t n = (size_t)image->width * (size_t)image->height * 3;

    for (size_t i = 0; i < n; i++) {
        float v = image->rgb[i];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        out[i] = (uint8_t)lrintf(v * 255.0f);
    }
}
