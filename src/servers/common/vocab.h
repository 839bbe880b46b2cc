/*
 * vocab.h - the words the reference models understand, shared by the
 * generator (which builds what a prompt names) and the scorer (which checks a
 * model against what its prompt names), so the two cannot drift apart.
 *
 * A prompt is split into ASCII words (case-insensitive; anything but a
 * letter separates words; a plural "s"/"es" is dropped when the bare word is
 * known). The first shape word and the first colour word count; "dark",
 * "light"/"pale" and "bright"/"vivid" right before a colour word change it,
 * and "shiny"/"glossy"/"metallic"/"polished" anywhere mark the model shiny.
 */
#ifndef GC_SERVERS_VOCAB_H
#define GC_SERVERS_VOCAB_H

#include <stddef.h>

enum gc_shape_id {
    GC_SHAPE_CUBE,
    GC_SHAPE_SPHERE,
    GC_SHAPE_CONE,
    GC_SHAPE_CYLINDER,
    GC_SHAPE_TORUS,
    GC_SHAPE_PYRAMID,
    GC_SHAPE_CAPSULE,
    GC_SHAPE_CHAIR,
    GC_SHAPE_TABLE,
    GC_SHAPE_TREE,
    GC_SHAPE_CAR,
    GC_SHAPE_HOUSE,
    GC_SHAPE_MUSHROOM,
    GC_SHAPE_COUNT
};

enum gc_colour_id {
    GC_COLOUR_RED,
    GC_COLOUR_GREEN,
    GC_COLOUR_BLUE,
    GC_COLOUR_YELLOW,
    GC_COLOUR_ORANGE,
    GC_COLOUR_PURPLE,
    GC_COLOUR_PINK,
    GC_COLOUR_WHITE,
    GC_COLOUR_BLACK,
    GC_COLOUR_GRAY,
    GC_COLOUR_BROWN,
    GC_COLOUR_GOLD,
    GC_COLOUR_SILVER,
    GC_COLOUR_CYAN,
    GC_COLOUR_COUNT
};

/* Modifier flags. */
#define GC_MOD_DARK   0x1u
#define GC_MOD_LIGHT  0x2u
#define GC_MOD_BRIGHT 0x4u
#define GC_MOD_SHINY  0x8u

/* Bytes of a prompt that are looked at (prompts are capped at 1024 characters). */
#define GC_VOCAB_SCAN_MAX 8192

struct gc_prompt_spec {
    int shape;          /* enum gc_shape_id, or -1 when the prompt names none */
    int colour;         /* enum gc_colour_id, or -1 when the prompt names none */
    unsigned modifiers; /* GC_MOD_* */
    float rgb[3];       /* the named colour after modifiers (when colour >= 0), linear 0..1 */
};

/* gc_vocab_parse: reads prompt[0..len) (NULs are separators) into *ret. Never fails. */
void gc_vocab_parse(const char *prompt, size_t len, struct gc_prompt_spec *ret);

/* The colour (albedo, 0..1) of a colour id after modifiers (GC_MOD_DARK...). */
void gc_colour_rgb(int colour, unsigned modifiers, float rgb[3]);

/* Canonical names ("cube", "red"), or "unknown". */
const char *gc_shape_name(int shape);
const char *gc_colour_name(int colour);

#endif
