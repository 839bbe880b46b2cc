/* vocab.c - shape and colour words (see vocab.h). */
#include "vocab.h"

#include <stdbool.h>
#include <string.h>

/* Longest word compared; longer words cannot be in the vocabulary. */
#define VOCAB_WORD_MAX 24

struct vocab_word {
    const char *word;
    int id;
};

static const struct vocab_word shape_words[] = {
    {"cube", GC_SHAPE_CUBE},
    {"box", GC_SHAPE_CUBE},
    {"crate", GC_SHAPE_CUBE},
    {"block", GC_SHAPE_CUBE},
    {"dice", GC_SHAPE_CUBE},
    {"die", GC_SHAPE_CUBE},
    {"sphere", GC_SHAPE_SPHERE},
    {"ball", GC_SHAPE_SPHERE},
    {"orb", GC_SHAPE_SPHERE},
    {"globe", GC_SHAPE_SPHERE},
    {"planet", GC_SHAPE_SPHERE},
    {"marble", GC_SHAPE_SPHERE},
    {"cone", GC_SHAPE_CONE},
    {"cylinder", GC_SHAPE_CYLINDER},
    {"tube", GC_SHAPE_CYLINDER},
    {"pillar", GC_SHAPE_CYLINDER},
    {"column", GC_SHAPE_CYLINDER},
    {"barrel", GC_SHAPE_CYLINDER},
    {"pipe", GC_SHAPE_CYLINDER},
    {"torus", GC_SHAPE_TORUS},
    {"ring", GC_SHAPE_TORUS},
    {"donut", GC_SHAPE_TORUS},
    {"doughnut", GC_SHAPE_TORUS},
    {"bagel", GC_SHAPE_TORUS},
    {"tire", GC_SHAPE_TORUS},
    {"tyre", GC_SHAPE_TORUS},
    {"pyramid", GC_SHAPE_PYRAMID},
    {"capsule", GC_SHAPE_CAPSULE},
    {"pill", GC_SHAPE_CAPSULE},
    {"chair", GC_SHAPE_CHAIR},
    {"stool", GC_SHAPE_CHAIR},
    {"table", GC_SHAPE_TABLE},
    {"desk", GC_SHAPE_TABLE},
    {"tree", GC_SHAPE_TREE},
    {"pine", GC_SHAPE_TREE},
    {"fir", GC_SHAPE_TREE},
    {"car", GC_SHAPE_CAR},
    {"truck", GC_SHAPE_CAR},
    {"vehicle", GC_SHAPE_CAR},
    {"automobile", GC_SHAPE_CAR},
    {"house", GC_SHAPE_HOUSE},
    {"hut", GC_SHAPE_HOUSE},
    {"cabin", GC_SHAPE_HOUSE},
    {"cottage", GC_SHAPE_HOUSE},
    {"building", GC_SHAPE_HOUSE},
    {"mushroom", GC_SHAPE_MUSHROOM},
    {"toadstool", GC_SHAPE_MUSHROOM},
};

static const struct vocab_word colour_words[] = {
    {"red", GC_COLOUR_RED},        {"crimson", GC_COLOUR_RED},   {"scarlet", GC_COLOUR_RED},
    {"green", GC_COLOUR_GREEN},    {"blue", GC_COLOUR_BLUE},     {"navy", GC_COLOUR_BLUE},
    {"yellow", GC_COLOUR_YELLOW},  {"orange", GC_COLOUR_ORANGE}, {"purple", GC_COLOUR_PURPLE},
    {"violet", GC_COLOUR_PURPLE},  {"pink", GC_COLOUR_PINK},     {"white", GC_COLOUR_WHITE},
    {"black", GC_COLOUR_BLACK},    {"gray", GC_COLOUR_GRAY},     {"grey", GC_COLOUR_GRAY},
    {"brown", GC_COLOUR_BROWN},    {"gold", GC_COLOUR_GOLD},     {"golden", GC_COLOUR_GOLD},
    {"silver", GC_COLOUR_SILVER},  {"cyan", GC_COLOUR_CYAN},     {"teal", GC_COLOUR_CYAN},
    {"turquoise", GC_COLOUR_CYAN},
};

static const char *const shape_names[GC_SHAPE_COUNT] = {
    "cube",  "sphere", "cone", "cylinder", "torus", "pyramid",  "capsule",
    "chair", "table",  "tree", "car",      "house", "mushroom",
};

static const struct {
    const char *name;
    float rgb[3];
} colours[GC_COLOUR_COUNT] = {
    {"red", {0.80f, 0.10f, 0.08f}},    {"green", {0.15f, 0.65f, 0.20f}},
    {"blue", {0.12f, 0.25f, 0.85f}},   {"yellow", {0.95f, 0.85f, 0.10f}},
    {"orange", {0.98f, 0.50f, 0.05f}}, {"purple", {0.50f, 0.15f, 0.70f}},
    {"pink", {0.98f, 0.55f, 0.70f}},   {"white", {0.93f, 0.93f, 0.93f}},
    {"black", {0.06f, 0.06f, 0.06f}},  {"gray", {0.50f, 0.50f, 0.50f}},
    {"brown", {0.42f, 0.25f, 0.10f}},  {"gold", {0.85f, 0.65f, 0.15f}},
    {"silver", {0.75f, 0.76f, 0.80f}}, {"cyan", {0.10f, 0.75f, 0.80f}},
};

static int lookup(const struct vocab_word *table, size_t n, const char *w, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(table[i].word) == len && memcmp(table[i].word, w, len) == 0)
            return table[i].id;
    return -1;
}

/* Looks w up as is, then without a plural "s" or "es". */
static int lookup_plural(const struct vocab_word *table, size_t n, const char *w, size_t len)
{
    int id = lookup(table, n, w, len);

    if (id < 0 && len > 2 && w[len - 1] == 's')
        id = lookup(table, n, w, len - 1);
    if (id < 0 && len > 3 && w[len - 1] == 's' && w[len - 2] == 'e')
        id = lookup(table, n, w, len - 2);
    return id;
}

static bool word_eq(const char *w, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(w, s, len) == 0;
}

static unsigned colour_modifier(const char *w, size_t len)
{
    if (word_eq(w, len, "dark") || word_eq(w, len, "deep"))
        return GC_MOD_DARK;
    if (word_eq(w, len, "light") || word_eq(w, len, "pale"))
        return GC_MOD_LIGHT;
    if (word_eq(w, len, "bright") || word_eq(w, len, "vivid"))
        return GC_MOD_BRIGHT;
    return 0;
}

static bool is_shiny_word(const char *w, size_t len)
{
    return word_eq(w, len, "shiny") || word_eq(w, len, "glossy") || word_eq(w, len, "metallic") ||
           word_eq(w, len, "polished");
}

void gc_vocab_parse(const char *prompt, size_t len, struct gc_prompt_spec *ret)
{
    char word[VOCAB_WORD_MAX + 1];
    unsigned prev_modifier = 0;
    size_t i = 0;

    memset(ret, 0, sizeof(*ret));
    ret->shape = -1;
    ret->colour = -1;
    if (prompt == NULL)
        return;
    if (len > GC_VOCAB_SCAN_MAX)
        len = GC_VOCAB_SCAN_MAX;
    while (i < len) {
        size_t wl = 0;
        bool too_long = false;
        while (i < len) {
            char c = prompt[i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c < 'a' || c > 'z')
                break;
            if (wl < VOCAB_WORD_MAX)
                word[wl++] = c;
            else
                too_long = true;
            i++;
        }
        if (wl == 0) {
            i++;
            continue;
        }
        if (too_long) {
            prev_modifier = 0;
            continue;
        }
        if (is_shiny_word(word, wl))
            ret->modifiers |= GC_MOD_SHINY;
        if (ret->shape < 0)
            ret->shape =
                lookup_plural(shape_words, sizeof(shape_words) / sizeof(shape_words[0]), word, wl);
        if (ret->colour < 0) {
            int id = lookup(colour_words, sizeof(colour_words) / sizeof(colour_words[0]), word, wl);
            if (id >= 0) {
                ret->colour = id;
                ret->modifiers |= prev_modifier;
            }
        }
        prev_modifier = colour_modifier(word, wl);
    }
    if (ret->colour >= 0)
        gc_colour_rgb(ret->colour, ret->modifiers, ret->rgb);
}

void gc_colour_rgb(int colour, unsigned modifiers, float rgb[3])
{
    if (colour < 0 || colour >= GC_COLOUR_COUNT)
        colour = GC_COLOUR_GRAY;
    for (int k = 0; k < 3; k++) {
        float c = colours[colour].rgb[k];
        if (modifiers & GC_MOD_DARK)
            c *= 0.55f;
        if (modifiers & GC_MOD_LIGHT)
            c = 0.5f * c + 0.5f;
        if (modifiers & GC_MOD_BRIGHT)
            c = c * 1.1f > 1.0f ? 1.0f : c * 1.1f;
        rgb[k] = c;
    }
}

const char *gc_shape_name(int shape)
{
    return shape >= 0 && shape < GC_SHAPE_COUNT ? shape_names[shape] : "unknown";
}

const char *gc_colour_name(int colour)
{
    return colour >= 0 && colour < GC_COLOUR_COUNT ? colours[colour].name : "unknown";
}
