/* stats.c - the histograms' buckets. */
#include "daemon/stats.h"

const double gc_hist_bounds[GC_HIST_BUCKETS] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25,
                                                0.5,   1,     2.5,  5,    10,  30};

void gc_hist_add(struct gc_histogram *h, double seconds)
{
    unsigned i = 0;

    while (i < GC_HIST_BUCKETS && seconds > gc_hist_bounds[i])
        i++;
    h->counts[i]++;
    h->sum += seconds;
    h->count++;
}
