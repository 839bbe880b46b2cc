/*
 * rng.h - the deterministic random numbers and hashes of the reference models.
 *
 * Everything the generator and scorer draw comes from here, so a (prompt,
 * seed) pair gives the same bytes on every run: xoshiro256** seeded through
 * splitmix64, and a 64-bit FNV-1a hash finished with a splitmix64 mix.
 */
#ifndef GC_SERVERS_RNG_H
#define GC_SERVERS_RNG_H

#include <stddef.h>
#include <stdint.h>

struct gc_rng {
    uint64_t s[4];
};

/* Seeds rng from seed (any value, 0 included). */
void gc_rng_seed(struct gc_rng *rng, uint64_t seed);
/* The next 64 random bits. */
uint64_t gc_rng_next(struct gc_rng *rng);
/* Uniform in [0, 1), 53 bits. */
double gc_rng_uniform(struct gc_rng *rng);
/* Uniform in [lo, hi). */
double gc_rng_range(struct gc_rng *rng, double lo, double hi);
/* Standard normal (Box-Muller). */
double gc_rng_normal(struct gc_rng *rng);

/* A well-mixed 64-bit hash of data[0..len). */
uint64_t gc_hash64(const void *data, size_t len);
/* Mixes x (the splitmix64 finaliser); gc_mix64(a ^ gc_mix64(b)) combines values. */
uint64_t gc_mix64(uint64_t x);

#endif
