/*
 * fuzz_ply.c - the 3DGS PLY parser gc_ply_parse() (and gc_ply_parse_in_place())
 * and writer gc_ply_write()
 * (src/servers/common/ply.c).
 *
 * Properties, from ply.h: the parser never reads past the input (ASan), never
 * returns more than GC_SPLATS_MAX splats nor a non-finite required value, and
 * fills errbuf on error; when it accepts, writing the model gives
 * gc_ply_size(count) bytes that parse back to the same model, bit for bit.
 */
#include <math.h>
#include <string.h>

#include "common/err.h"
#include "fuzz.h"
#include "servers/common/ply.h"

static void check_finite(const struct gc_splat *s)
{
    FUZZ_CHECK(isfinite(s->pos[0]) && isfinite(s->pos[1]) && isfinite(s->pos[2]));
    FUZZ_CHECK(isfinite(s->f_dc[0]) && isfinite(s->f_dc[1]) && isfinite(s->f_dc[2]));
    FUZZ_CHECK(isfinite(s->opacity));
    FUZZ_CHECK(isfinite(s->scale[0]) && isfinite(s->scale[1]) && isfinite(s->scale[2]));
    for (int k = 0; k < 4; k++)
        FUZZ_CHECK(isfinite(s->rot[k]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gc_splats *splats = (struct gc_splats *)0x1, *again = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256];
    int rc;

    rc = gc_ply_parse(data, size, &splats, err, sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(rc == GC_EINVAL || rc == GC_ENOMEM);
        FUZZ_CHECK(splats == (struct gc_splats *)0x1);
        FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
        return 0;
    }
    FUZZ_CHECK(splats != NULL && splats->count <= GC_SPLATS_MAX);
    FUZZ_CHECK(splats->count == 0 || splats->v != NULL);
    for (size_t i = 0; i < splats->count; i++)
        check_finite(&splats->v[i]);

    FUZZ_CHECK(gc_ply_write(splats, &buf, &len) == 0);
    FUZZ_CHECK(len == gc_ply_size(splats->count));
    rc = gc_ply_parse(buf, len, &again, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "written PLY refused (%d): %s\n", rc, err);
        FUZZ_CHECK(!"parse(write(model)) succeeds");
    }
    FUZZ_CHECK(again->count == splats->count);
    FUZZ_CHECK(splats->count == 0 ||
               memcmp(again->v, splats->v, splats->count * sizeof(*splats->v)) == 0);
    gc_splats_free(again);
    /* In place, the written layout is taken over as it is: the same model again. */
    again = NULL;
    FUZZ_CHECK(gc_ply_parse_in_place(buf, len, &again, err, sizeof(err)) == 0);
    FUZZ_CHECK((void *)again->v == (void *)buf && again->count == splats->count);
    FUZZ_CHECK(splats->count == 0 ||
               memcmp(again->v, splats->v, splats->count * sizeof(*splats->v)) == 0);
    gc_splats_free(again); /* and buf with it */
    gc_splats_free(splats);
    return 0;
}
