/*
 * fuzz.h - what every fuzz target defines, and the check the targets use.
 *
 * Each fuzz_*.c defines LLVMFuzzerTestOneInput() (and may define
 * LLVMFuzzerInitialize()). Linked with -fsanitize=fuzzer it is a libFuzzer
 * target (scripts/fuzz.sh); linked with replay.c it replays a corpus, which is
 * how the normal test suite runs it (meson test --suite fuzz).
 */
#ifndef GC_FUZZ_H
#define GC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* One input: 0 always (libFuzzer's convention); a finding aborts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Once, before the first input; may change argv. Optional (weak in replay.c). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * FUZZ_CHECK: a property the code under test promises. A violation is a finding:
 * say what broke and abort, so libFuzzer (and ASan) save the input.
 */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz property violated: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
