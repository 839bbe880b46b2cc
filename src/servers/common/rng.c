/* rng.c - xoshiro256**, splitmix64, FNV-1a (see rng.h). */
#include "rng.h"

#include <math.h>

uint64_t gc_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void gc_rng_seed(struct gc_rng *rng, uint64_t seed)
{
    uint64_t x = seed;

    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        rng->s[i] = gc_mix64(x);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t gc_rng_next(struct gc_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double gc_rng_uniform(struct gc_rng *rng)
{
    return (double)(gc_rng_next(rng) >> 11) * 0x1.0p-53;
}

double gc_rng_range(struct gc_rng *rng, double lo, double hi)
{
    return lo + (hi - lo) * gc_rng_uniform(rng);
}

double gc_rng_normal(struct gc_rng *rng)
{
    double u1 = 1.0 - gc_rng_uniform(rng); /* (0, 1]: log is finite */
    double u2 = gc_rng_uniform(rng);

    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t gc_hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return gc_mix64(h ^ len);
}
