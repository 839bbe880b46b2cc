/*
 * score.h - the reference text-to-3D scorer: prompt + splats ->
 * {score, iqa, alignment_score, ssim, lpips} and a 512x512 preview.
 *
 * A small, deterministic stand-in for the CLIP-based validation models. It
 * first applies the structural rules every submission must pass (each makes
 * the score 0 and names itself in reason), then renders the model and
 * measures it. Formulas and thresholds: docs/scoring.md.
 *
 * The scorer holds its "weights", the reference shape descriptors of the
 * vocabulary (vocab.h), built once by gc_scorer_new(); a scorer is
 * read-only afterwards, so one may serve several threads at once.
 */
#ifndef GC_SERVERS_SCORE_H
#define GC_SERVERS_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "servers/common/splat.h"

/* Structural rules: fewer points than this score 0. */
#define GC_SCORE_POINTS_MIN 7000
/* More than this share of splats with alpha below GC_SCORE_ALPHA_MIN scores 0. */
#define GC_SCORE_TRANSPARENT_SHARE 0.80
#define GC_SCORE_ALPHA_MIN         0.01
/* A rotation is the identity when its normalised vector part is at most this long. */
#define GC_SCORE_IDENTITY_EPS 1e-4
/* Preview and measurement image sides. */
#define GC_SCORE_PREVIEW_SIZE 512
#define GC_SCORE_MEASURE_SIZE 256
/* A model generated for a prompt should score at least this for it. */
#define GC_SCORE_GOOD 0.6

enum gc_score_rule {
    GC_SCORE_RULE_NONE,               /* passed the structural rules */
    GC_SCORE_RULE_TOO_FEW_POINTS,     /* fewer than GC_SCORE_POINTS_MIN splats */
    GC_SCORE_RULE_TRANSPARENT,        /* too many nearly transparent splats */
    GC_SCORE_RULE_IDENTITY_ROTATIONS, /* every rotation is the identity */
};

struct gc_score_result {
    /* The answer of /validate_txt_to_3d_ply/, each in [0, 1] (lpips: lower is better). */
    double score, iqa, alignment_score, ssim, lpips;
    int rule;         /* enum gc_score_rule */
    char reason[192]; /* which rule fired and why; "" when none did */
    /* How alignment_score was made: -1 when the prompt names no colour (shape). */
    double colour_match, shape_match;
    int shape_guess; /* the vocabulary shape the model looks most like, or -1 */
    double coverage; /* share of the measurement view covered by the model */
    /* Preview (when asked for): GC_SCORE_PREVIEW_SIZE^2 RGB8, rows top to bottom. */
    uint8_t *preview;
};

struct gc_scorer;

/* gc_scorer_new: builds a scorer (free with gc_scorer_free()). Returns 0 or GC_ENOMEM. */
int gc_scorer_new(struct gc_scorer **ret_scorer);
/* Frees a scorer. NULL is a no-op. */
void gc_scorer_free(struct gc_scorer *scorer);

/*
 * gc_score: scores splats for prompt[0..prompt_len) into *ret (zeroed first;
 * release with gc_score_result_clear()). With want_preview, ret->preview is a
 * malloc'd RGB8 image, also when a rule fired. Returns 0 (a model that fails
 * a rule is a result, not an error), GC_EINVAL or GC_ENOMEM.
 */
int gc_score(const struct gc_scorer *scorer, const char *prompt, size_t prompt_len,
             const struct gc_splats *splats, bool want_preview, struct gc_score_result *ret);

/*
 * gc_score_at: gc_score at full or reduced precision. Reduced: the reference shape
 * descriptors (the scorer's weights) and the submission's descriptor are rounded to
 * bfloat16 before they are compared (docs/scoring.md); everything else is the same.
 */
int gc_score_at(const struct gc_scorer *scorer, const char *prompt, size_t prompt_len,
                const struct gc_splats *splats, bool want_preview, bool reduced,
                struct gc_score_result *ret);

/* Frees what a result holds (the preview); the numbers stay. */
void gc_score_result_clear(struct gc_score_result *result);

#endif
