/* splat.c - the in-memory splat model (see splat.h). */
#include "splat.h"

#include <math.h>
#include <stdlib.h>

#include "common/err.h"

int gc_splats_new(size_t count, struct gc_splats **ret_splats)
{
    struct gc_splats *s;

    if (ret_splats == NULL)
        return GC_EINVAL;
    if (count > GC_SPLATS_MAX)
        return GC_ETOOBIG;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return GC_ENOMEM;
    s->v = calloc(count > 0 ? count : 1, sizeof(*s->v));
    if (s->v == NULL) {
        free(s);
        return GC_ENOMEM;
    }
    s->count = count;
    *ret_splats = s;
    return 0;
}

void gc_splats_free(struct gc_splats *splats)
{
    if (splats == NULL)
        return;
    free(splats->v);
    free(splats);
}

double gc_splat_alpha(const struct gc_splat *splat)
{
    double x = splat->opacity;

    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

double gc_logit(double alpha)
{
    if (!(alpha >= 1e-6))
        alpha = 1e-6;
    if (alpha > 1.0 - 1e-6)
        alpha = 1.0 - 1e-6;
    return log(alpha / (1.0 - alpha));
}
