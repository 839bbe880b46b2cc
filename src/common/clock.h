/* clock.h - monotonic and wall-clock time in the units the project uses. */
#ifndef GC_CLOCK_H
#define GC_CLOCK_H

#include <stdint.h>

/* Monotonic nanoseconds since an arbitrary start. */
int64_t gc_mono_ns(void);
/* Monotonic milliseconds. */
int64_t gc_mono_ms(void);
/* Wall-clock seconds since the epoch, with fraction. */
double gc_real_s(void);
/* Sleeps ms milliseconds (restarting on signals). */
void gc_sleep_ms(int64_t ms);
/* Fills abstime (CLOCK_MONOTONIC) for pthread_cond_timedwait ms from now. */
struct timespec;
void gc_abstime_after_ms(struct timespec *abstime, int64_t ms);

#endif
