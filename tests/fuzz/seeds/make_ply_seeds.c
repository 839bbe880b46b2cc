/*
 * make_ply_seeds.c - PLY seeds for fuzz_ply made by the project's own generator
 * (src/servers/generation): real models, cut to a few splats so the corpus
 * stays small.
 *
 * usage: fuzz-make-ply-seeds OUT_DIR   (built on demand: ninja -C build
 *        tests/fuzz/fuzz-make-ply-seeds; see docs/fuzzing.md)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servers/common/ply.h"
#include "servers/generation/gen.h"

static const struct {
    const char *prompt;
    unsigned long long seed;
    size_t keep;
} seeds[] = {
    {"a red cube", 1, 1},
    {"a blue sphere on a table", 42, 3},
    {"a wooden chair", 7, 8},
    {"a tall green tree", 2024, 16},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        struct gc_splats *s = NULL;
        uint8_t *buf = NULL;
        size_t len = 0;
        char path[4096];
        FILE *f;

        if (gc_gen_run(seeds[i].prompt, strlen(seeds[i].prompt), seeds[i].seed, GC_GEN_POINTS_MIN,
                       &s) != 0) {
            fprintf(stderr, "cannot generate '%s'\n", seeds[i].prompt);
            return 1;
        }
        s->count = seeds[i].keep; /* the first splats of a real model */
        if (gc_ply_write(s, &buf, &len) != 0) {
            fprintf(stderr, "cannot write a PLY\n");
            return 1;
        }
        snprintf(path, sizeof(path), "%s/seed-gen-%zu.ply", argv[1], i);
        f = fopen(path, "wb");
        if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
            fprintf(stderr, "cannot write '%s'\n", path);
            return 1;
        }
        printf("%s: %zu splats of '%s', %zu bytes\n", path, seeds[i].keep, seeds[i].prompt, len);
        free(buf);
        gc_splats_free(s);
    }
    return 0;
}
