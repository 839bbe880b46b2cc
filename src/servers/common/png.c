/* png.c - RGB8 to PNG bytes with zlib (see png.h). */
#include "png.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/err.h"

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes a chunk (length, type, data, CRC over type and data) at out; returns its size. */
static size_t put_chunk(uint8_t *out, const char type[4], const uint8_t *data, uint32_t len)
{
    uLong crc;

    put_be32(out, len);
    memcpy(out + 4, type, 4);
    if (len > 0)
        memcpy(out + 8, data, len);
    crc = crc32(0L, out + 4, 4 + len);
    put_be32(out + 8 + len, (uint32_t)crc);
    return 12 + (size_t)len;
}

int gc_png_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height, uint8_t **ret_png,
                      size_t *ret_len)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t row = (size_t)width * 3, raw_len, o = 0;
    uint8_t ihdr[13], *raw, *png;
    uLongf zlen;
    int rc = GC_ENOMEM;

    if (rgb == NULL || ret_png == NULL || ret_len == NULL || width == 0 || height == 0 ||
        width > GC_PNG_DIM_MAX || height > GC_PNG_DIM_MAX)
        return GC_EINVAL;
    raw_len = (row + 1) * height;
    raw = malloc(raw_len);
    if (raw == NULL)
        return GC_ENOMEM;
    /* Filter "Up" (2): each byte minus the byte above; the first row is unfiltered. */
    for (uint32_t y = 0; y < height; y++) {
        uint8_t *dst = raw + (size_t)y * (row + 1);
        const uint8_t *cur = rgb + (size_t)y * row;
        if (y == 0) {
            dst[0] = 0;
            memcpy(dst + 1, cur, row);
            continue;
        }
        dst[0] = 2;
        for (size_t i = 0; i < row; i++)
            dst[1 + i] = (uint8_t)(cur[i] - cur[i - row]);
    }
    zlen = compressBound((uLong)raw_len);
    png = malloc(8 + 25 + 12 + (size_t)zlen + 12);
    if (png == NULL)
        goto out_free_raw;
    memcpy(png, signature, 8);
    o = 8;
    put_be32(ihdr, width);
    put_be32(ihdr + 4, height);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: truecolour */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    o += put_chunk(png + o, "IHDR", ihdr, 13);
    /* Compress straight into the IDAT chunk's data field. */
    if (compress2(png + o + 8, &zlen, raw, (uLong)raw_len, 6) != Z_OK) {
        rc = GC_EINTERNAL;
        free(png);
        goto out_free_raw;
    }
    {
        uLong crc;
        put_be32(png + o, (uint32_t)zlen);
        memcpy(png + o + 4, "IDAT", 4);
        crc = crc32(0L, png + o + 4, 4 + (uInt)zlen);
        put_be32(png + o + 8 + zlen, (uint32_t)crc);
        o += 12 + (size_t)zlen;
    }
    o += put_chunk(png + o, "IEND", NULL, 0);
    *ret_png = png;
    *ret_len = o;
    rc = 0;
out_free_raw:
    free(raw);
    return rc;
}
