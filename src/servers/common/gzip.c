/* gzip.c - one gzip member with zlib (see gzip.h). */
#include "servers/common/gzip.h"

#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

#include "common/err.h"

/* zlib's gzip wrapper: windowBits 15 plus 16. */
#define GZIP_WINDOW_BITS (15 + 16)
#define GZIP_MEM_LEVEL   8

int gc_gzip(const void *in, size_t len, uint8_t **ret_out, size_t *ret_len)
{
    z_stream zs = {0};
    uLong bound;
    uint8_t *out;
    int zrc;

    if ((in == NULL && len > 0) || len > UINT_MAX / 2)
        return GC_EINVAL;
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return GC_EINTERNAL;
    /* With the stream set up for gzip the bound counts its header and trailer. */
    bound = deflateBound(&zs, (uLong)len);
    out = malloc(bound);
    if (out == NULL) {
        deflateEnd(&zs);
        return GC_ENOMEM;
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)bound;
    zrc = deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    if (zrc != Z_STREAM_END) {
        free(out);
        return GC_EINTERNAL;
    }
    *ret_out = out;
    *ret_len = (size_t)zs.total_out;
    return 0;
}
