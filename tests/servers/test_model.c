/* test_model.c - model weights in GPU memory (servers/common/model.c) on gpusim:
 * unload to the pinned host copy, verified reload, fallback when the copy is bad. */
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

#include "common/err.h"
#include "servers/common/bf16.h"
#include "servers/common/model.h"

#define MiB (1ULL << 20)

/* A private gpusim for this test process. */
static void sim(const char *devices, bool backed)
{
    char path[128];
    snprintf(path, sizeof(path), "/tmp/gpusim-test-model-%d", (int)getpid());
    unlink(path);
    setenv("GPUSIM_STATE", path, 1);
    setenv("GPUSIM_DEVICES", devices, 1);
    setenv("GPUSIM_BACKED", backed ? "1" : "0", 1);
    setenv("GPUSIM_CONTEXT_BYTES", "1Mi", 1);
}

static void close_store(struct gc_model_store *s)
{
    gc_model_store_close(s);
    unlink(getenv("GPUSIM_STATE"));
}

static uint64_t free_bytes(struct gc_model_store *s)
{
    struct gc_gpu_memory mem;
    gc_model_store_memory(s, &mem);
    return mem.free_bytes;
}

static void open_store(struct gc_model_store *s, uint64_t chunk)
{
    char err[256];
    if (gc_model_store_open(s, 0, chunk, err, sizeof(err)) != 0)
        harness_fail(__FILE__, __LINE__, "cannot open the store: %s", err);
}

TEST(backed_round_trip_restores_from_the_host_copy)
{
    struct gc_model_store s;
    struct gc_model *m;
    char err[256];

    sim("256Mi", true);
    open_store(&s, 1 * MiB);
    ASSERT(gc_model_store_retains_data(&s));
    uint64_t free0 = free_bytes(&s);
    ASSERT_EQ_INT(gc_model_add(&s, "clip", 8 * MiB + 12345, 7, true, &m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(m->nchunks, 9);
    ASSERT_EQ_INT(gc_model_load(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_U64(free0 - free_bytes(&s), 8 * MiB + 12345);
    ASSERT(gc_model_verify(&s, m));

    ASSERT_EQ_INT(gc_model_unload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_U64(free_bytes(&s), free0); /* all of it back */
    ASSERT(m->backup_valid);
    ASSERT_EQ_U64(m->backup_checksum, m->checksum);

    ASSERT_EQ_INT(gc_model_reload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(m->last_origin, GC_ORIGIN_BACKUP);
    ASSERT(gc_model_verify(&s, m));
    close_store(&s);
}

TEST(damaged_host_copy_falls_back_to_reinitialising)
{
    struct gc_model_store s;
    struct gc_model *m;
    char err[256];

    sim("256Mi", true);
    open_store(&s, 1 * MiB);
    ASSERT_EQ_INT(gc_model_add(&s, "iqa", 4 * MiB, 9, true, &m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_load(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_unload(&s, m, err, sizeof(err)), 0);
    m->backup[3 * MiB + 17] ^= 0x40; /* one flipped bit in host memory */
    ASSERT_EQ_INT(gc_model_reload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(m->last_origin, GC_ORIGIN_FALLBACK_REINIT);
    ASSERT(gc_model_verify(&s, m)); /* the weights are right again */

    /* No host copy at all (never unloaded since it was lost): also a fallback. */
    ASSERT_EQ_INT(gc_model_unload(&s, m, err, sizeof(err)), 0);
    m->backup_valid = false;
    ASSERT_EQ_INT(gc_model_reload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(m->last_origin, GC_ORIGIN_FALLBACK_REINIT);
    close_store(&s);
}

TEST(verify_notices_damaged_device_memory)
{
    struct gc_model_store s;
    struct gc_model *m;
    char err[256];
    uint8_t byte = 0x5a;

    sim("256Mi", true);
    open_store(&s, 1 * MiB);
    ASSERT_EQ_INT(gc_model_add(&s, "r", 2 * MiB, 1, false, &m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_load(&s, m, err, sizeof(err)), 0);
    ASSERT(gc_model_verify(&s, m));
    ASSERT_EQ_INT(s.cuda.cuMemcpyHtoD(m->chunks[1] + 100, &byte, 1), CUDA_SUCCESS);
    ASSERT(!gc_model_verify(&s, m));
    /* Without a host copy a reload reinitialises by design. */
    gc_model_drop(&s, m);
    ASSERT_EQ_INT(gc_model_reload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(m->last_origin, GC_ORIGIN_REINIT);
    ASSERT(gc_model_verify(&s, m));
    close_store(&s);
}

TEST(out_of_memory_leaves_nothing_allocated)
{
    struct gc_model_store s;
    struct gc_model *a, *b;
    char err[256];

    sim("64Mi", true);
    open_store(&s, 4 * MiB);
    uint64_t free0 = free_bytes(&s);
    ASSERT_EQ_INT(gc_model_add(&s, "a", 40 * MiB, 1, false, &a, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_add(&s, "b", 40 * MiB, 2, false, &b, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_load(&s, a, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_load(&s, b, err, sizeof(err)), GC_EOOM);
    ASSERT(strstr(err, "out of memory") != NULL || strstr(err, "OUT_OF_MEMORY") != NULL);
    ASSERT(!b->on_gpu);
    ASSERT_EQ_U64(free0 - free_bytes(&s), 40 * MiB); /* b's partial chunks went back */
    close_store(&s);
}

TEST(scratch_cache_is_given_back_by_cleanup)
{
    struct gc_model_store s;
    CUdeviceptr p, q;

    sim("256Mi", false);
    open_store(&s, 0);
    ASSERT(!gc_model_store_retains_data(&s)); /* accounting-only gpusim */
    uint64_t free0 = free_bytes(&s);
    ASSERT_EQ_INT(gc_model_scratch_get(&s, 16 * MiB, &p), 0);
    gc_model_scratch_put(&s, p, 16 * MiB);
    ASSERT_EQ_U64(free0 - free_bytes(&s), 16 * MiB); /* cached, still held */
    ASSERT_EQ_INT(gc_model_scratch_get(&s, 8 * MiB, &q), 0);
    ASSERT_EQ_U64(q, p); /* reused, not allocated again */
    gc_model_scratch_put(&s, q, 16 * MiB);
    ASSERT_EQ_U64(gc_model_store_cleanup(&s), 16 * MiB);
    ASSERT_EQ_U64(free_bytes(&s), free0);
    close_store(&s);
}

TEST(accounting_only_device_unloads_and_reloads)
{
    struct gc_model_store s;
    struct gc_model *m;
    char err[256];

    sim("24564Mi", false);
    open_store(&s, 0);
    uint64_t free0 = free_bytes(&s);
    /* A real-size model costs no host RAM: the pinned copy is untouched memory. */
    ASSERT_EQ_INT(gc_model_add(&s, "big", 4700 * MiB, 3, true, &m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_load(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_U64(free0 - free_bytes(&s), 4700 * MiB);
    ASSERT_EQ_INT(gc_model_unload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_U64(free_bytes(&s), free0);
    ASSERT_EQ_INT(gc_model_reload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(m->last_origin, GC_ORIGIN_BACKUP);
    close_store(&s);
}

TEST(checksum_sees_order_and_content)
{
    uint8_t a[64], b[64];
    for (int i = 0; i < 64; i++)
        a[i] = b[i] = (uint8_t)i;
    ASSERT_EQ_U64(gc_checksum(a, 64, 0), gc_checksum(b, 64, 0));
    b[10] ^= 1;
    ASSERT(gc_checksum(a, 64, 0) != gc_checksum(b, 64, 0));
    memcpy(b, a, 64);
    memcpy(b, a + 8, 8); /* two words swapped */
    memcpy(b + 8, a, 8);
    ASSERT(gc_checksum(a, 64, 0) != gc_checksum(b, 64, 0));
}

TEST(bf16_conversion_rounds_to_nearest_even)
{
    ASSERT_EQ_INT(gc_bf16_from_f32(1.0f), 0x3f80);
    ASSERT(gc_f32_from_bf16(gc_bf16_from_f32(1.0f)) == 1.0f);
    /* 1 + 2^-8 is halfway between two bfloat16 values: ties go to even (1.0). */
    ASSERT_EQ_INT(gc_bf16_from_f32(1.0f + 1.0f / 256), 0x3f80);
    /* 1 + 3 * 2^-8: halfway, rounds up to the even 1 + 2^-6. */
    ASSERT_EQ_INT(gc_bf16_from_f32(1.0f + 3.0f / 256), 0x3f82);
    ASSERT(gc_f32_from_bf16(gc_bf16_from_f32(-2.5f)) == -2.5f);
    float nan = gc_f32_from_bf16(gc_bf16_from_f32(__builtin_nanf("")));
    ASSERT(nan != nan);
}

TEST(backed_reduce_halves_the_device_memory_and_reload_restores_full_precision)
{
    struct gc_model_store s;
    struct gc_model *m;
    char err[256];

    sim("256Mi", true);
    open_store(&s, 1 * MiB);
    uint64_t free0 = free_bytes(&s);
    ASSERT_EQ_INT(gc_model_add(&s, "clip", 8 * MiB + 12346, 7, true, &m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_load(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_U64(gc_model_reduced_bytes(&s, m), 4 * MiB + 6174);

    ASSERT_EQ_INT(gc_model_reduce(&s, m, err, sizeof(err)), 0);
    ASSERT(m->reduced && m->on_gpu);
    ASSERT_EQ_U64(free0 - free_bytes(&s), 4 * MiB + 6174);
    /* The device holds the bfloat16 form of the weights: its checksum holds, and it is
     * not the full-precision one. */
    ASSERT(gc_model_verify(&s, m));
    ASSERT(m->reduced_checksum != m->checksum);
    /* Damage one reduced byte: verification sees it. */
    uint8_t b = 0x5a;
    ASSERT_EQ_INT(s.cuda.cuMemcpyHtoD(m->half_chunks[3] + 100, &b, 1), CUDA_SUCCESS);
    ASSERT(!gc_model_verify(&s, m));

    /* Back to full precision from the host copy, bit for bit. */
    ASSERT_EQ_INT(gc_model_reload(&s, m, err, sizeof(err)), 0);
    ASSERT(!m->reduced && m->on_gpu);
    ASSERT_EQ_INT(m->last_origin, GC_ORIGIN_BACKUP);
    ASSERT_EQ_U64(free0 - free_bytes(&s), 8 * MiB + 12346);
    ASSERT(gc_model_verify(&s, m));

    /* Reduced, then all the way off, then back: still from the host copy. */
    ASSERT_EQ_INT(gc_model_reduce(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_unload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_U64(free_bytes(&s), free0);
    ASSERT_EQ_INT(gc_model_reload(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(m->last_origin, GC_ORIGIN_BACKUP);
    ASSERT(gc_model_verify(&s, m));
    close_store(&s);
}

TEST(reduce_needs_a_host_copy)
{
    struct gc_model_store s;
    struct gc_model *m;
    char err[256];

    sim("256Mi", true);
    open_store(&s, 1 * MiB);
    ASSERT_EQ_INT(gc_model_add(&s, "nocopy", 2 * MiB, 1, false, &m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_load(&s, m, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_model_reduce(&s, m, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "host copy") != NULL);
    ASSERT(m->on_gpu && !m->reduced);
    close_store(&s);
}
