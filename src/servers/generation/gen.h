/*
 * gen.h - the reference text-to-3D generator: prompt + seed -> Gaussian splats.
 *
 * A small, deterministic stand-in for FLUX (text -> image) and Hunyuan3D
 * (image -> 3D). It runs in the same three stages as the real pipeline, so the
 * generation server can run them one at a time, time them, and stop between
 * them; each is a pure function from one struct to the next:
 *
 *   gc_gen_concept  text -> "image":  the prompt's shape and colour words
 *                   (vocab.h) and a 64x64 front-view concept drawing;
 *   gc_gen_shape    image -> shape:   proportions read back from the drawing,
 *                   parts of the shape (prim.h), seeded pose and jitter;
 *   gc_gen_splats   shape -> splats:  surface sampling into 3DGS splats.
 *
 * The same (prompt, seed) always gives the same bytes. A prompt without a
 * known shape (colour) word gets one chosen by a hash of the prompt; the
 * seed changes the drawing's proportions, the pose, and every sample.
 */
#ifndef GC_SERVERS_GEN_H
#define GC_SERVERS_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "servers/common/prim.h"
#include "servers/common/splat.h"
#include "servers/common/vocab.h"

/* Longest prompt, in characters (the API's limit), and in bytes here. */
#define GC_GEN_PROMPT_MAX_CHARS 1024
#define GC_GEN_PROMPT_MAX_BYTES (4 * GC_GEN_PROMPT_MAX_CHARS)
/* Splats per model: the default, and the range gc_gen_splats() accepts. */
#define GC_GEN_POINTS_DEFAULT 12288
#define GC_GEN_POINTS_MIN     7000
#define GC_GEN_POINTS_MAX     262144
/* Side of the concept image, in pixels. */
#define GC_GEN_IMAGE_RES 64

/* Stage 1 output: what to build, and a drawing of it. */
struct gc_gen_concept {
    struct gc_prompt_spec spec; /* what the prompt named (-1: nothing) */
    int shape;                  /* the shape to build (named, or chosen by hash) */
    int colour;                 /* the main colour id (named, shape default, or by hash) */
    unsigned modifiers;         /* GC_MOD_* from the prompt */
    float rgb[3];               /* main colour, 0..1 */
    uint64_t seed;
    uint64_t prompt_hash;
    /* Orthographic front view on white, rows top to bottom, RGB8. */
    uint8_t image[GC_GEN_IMAGE_RES * GC_GEN_IMAGE_RES * 3];
};

/* Stage 2 output: the object as coloured parts, and where it stands. */
struct gc_gen_shape {
    int shape;
    int nprims;
    struct gc_prim prims[GC_SHAPE_PRIMS_MAX]; /* template frame, proportions jittered */
    float prim_rgb[GC_SHAPE_PRIMS_MAX][3];
    double stretch_y;     /* vertical stretch read from the concept image */
    double object_rot[9]; /* yaw and a small tilt */
    double object_scale;
    double object_offset[3];
    unsigned modifiers;
    uint64_t sample_seed; /* seeds stage 3 */
};

/*
 * gc_gen_concept: stage 1. prompt[0..prompt_len) (any bytes, at most
 * GC_GEN_PROMPT_MAX_BYTES) and seed -> *ret. Returns 0 or GC_EINVAL.
 */
int gc_gen_concept(const char *prompt, size_t prompt_len, uint64_t seed,
                   struct gc_gen_concept *ret);

/* gc_gen_shape: stage 2, concept -> *ret. Returns 0 or GC_EINVAL (a corrupt concept). */
int gc_gen_shape(const struct gc_gen_concept *concept, struct gc_gen_shape *ret);

/*
 * gc_gen_splats: stage 3, shape -> a new model of count splats
 * (GC_GEN_POINTS_MIN..GC_GEN_POINTS_MAX; free with gc_splats_free()).
 * Returns 0, GC_EINVAL or GC_ENOMEM.
 */
int gc_gen_splats(const struct gc_gen_shape *shape, size_t count, struct gc_splats **ret_splats);

/* gc_gen_run: the three stages in a row (tests, tools). Same returns as the stages. */
int gc_gen_run(const char *prompt, size_t prompt_len, uint64_t seed, size_t count,
               struct gc_splats **ret_splats);

#endif
