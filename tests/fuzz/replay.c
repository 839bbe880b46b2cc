/*
 * replay.c - runs a fuzz target over files, without libFuzzer.
 *
 * usage: fuzz-replay-TARGET PATH...   (a PATH is a file or a directory of files)
 *
 * Every file is passed once to LLVMFuzzerTestOneInput(), in name order, so the
 * committed corpora go through the real parsers in every build (gcc included)
 * and under the ASan build's sanitizers. A finding aborts, as under libFuzzer;
 * the file being replayed is named on stderr first.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Largest input replayed (libFuzzer's own inputs are far smaller). */
#define REPLAY_FILE_MAX ((size_t)64 << 20)

/* Weak: targets without an initializer leave it NULL. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf;
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "fuzz-replay: cannot open '%s': %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || (size_t)st.st_size > REPLAY_FILE_MAX) {
        fprintf(stderr, "fuzz-replay: '%s' is not a readable file up to %zu bytes\n", path,
                REPLAY_FILE_MAX);
        fclose(f);
        return -1;
    }
    /* An exact-size copy, so ASan catches a read one past the input. */
    buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }
    n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        fprintf(stderr, "fuzz-replay: short read on '%s'\n", path);
        free(buf);
        return -1;
    }
    fprintf(stderr, "fuzz-replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    (*count)++;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "fuzz-replay: cannot open '%s': %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **grown = realloc(names, (cap ? cap * 2 : 64) * sizeof(*names));
            if (grown == NULL) {
                rc = -1;
                break;
            }
            names = grown;
            cap = cap ? cap * 2 : 64;
        }
        if (asprintf(&names[n], "%s/%s", dir, e->d_name) < 0) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0)
        qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = replay_file(names[i], count);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    struct stat st;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        int rc;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "fuzz-replay: cannot stat '%s': %s\n", argv[i], strerror(errno));
            return 1;
        }
        rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count) : replay_file(argv[i], &count);
        if (rc < 0)
            return 1;
    }
    if (count == 0) {
        fprintf(stderr, "fuzz-replay: no input files (a wrong corpus path?)\n");
        return 1;
    }
    printf("fuzz-replay: %zu inputs, no finding\n", count);
    return 0;
}
