/* clock.c - time helpers. */
#include "clock.h"

#include <errno.h>
#include <time.h>

int64_t gc_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t gc_mono_ms(void)
{
    return gc_mono_ns() / 1000000;
}

double gc_real_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void gc_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void gc_abstime_after_ms(struct timespec *abstime, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, abstime);
    abstime->tv_sec += ms / 1000;
    abstime->tv_nsec += (ms % 1000) * 1000000;
    if (abstime->tv_nsec >= 1000000000) {
        abstime->tv_sec++;
        abstime->tv_nsec -= 1000000000;
    }
}
