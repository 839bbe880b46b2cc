/* test_png.c - the PNG encoder's output decodes (chunks, CRCs, zlib, filters) to the input. */
#include "harness.h"

#include <stdbool.h>
#include <zlib.h>

#include "common/err.h"
#include "servers/common/png.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A strict little PNG reader for 8-bit RGB: returns the pixels (caller frees) or fails. */
static uint8_t *png_decode(const uint8_t *png, size_t len, uint32_t *ret_w, uint32_t *ret_h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *idat = NULL, *raw, *pixels;
    size_t idat_len = 0, o = 8;
    uint32_t w = 0, h = 0;
    bool seen_end = false;

    ASSERT(len > 8 && memcmp(png, sig, 8) == 0);
    while (o < len) {
        ASSERT(len - o >= 12);
        uint32_t n = be32(png + o);
        ASSERT(n <= len - o - 12);
        const uint8_t *type = png + o + 4, *data = png + o + 8;
        uint32_t crc = (uint32_t)crc32(0L, type, 4 + n);
        ASSERT_EQ_U64(crc, be32(data + n));
        if (memcmp(type, "IHDR", 4) == 0) {
            ASSERT_EQ_INT(n, 13);
            ASSERT_EQ_INT(o, 8); /* IHDR comes first */
            w = be32(data);
            h = be32(data + 4);
            ASSERT_EQ_INT(data[8], 8);  /* depth */
            ASSERT_EQ_INT(data[9], 2);  /* RGB */
            ASSERT_EQ_INT(data[10], 0); /* deflate */
            ASSERT_EQ_INT(data[11], 0);
            ASSERT_EQ_INT(data[12], 0); /* not interlaced */
        } else if (memcmp(type, "IDAT", 4) == 0) {
            idat = realloc(idat, idat_len + n);
            memcpy(idat + idat_len, data, n);
            idat_len += n;
        } else if (memcmp(type, "IEND", 4) == 0) {
            ASSERT_EQ_INT(n, 0);
            seen_end = true;
            ASSERT_EQ_U64(o + 12, len); /* nothing after IEND */
        }
        o += 12 + n;
    }
    ASSERT(seen_end && w > 0 && h > 0 && idat != NULL);
    uLongf raw_len = (uLongf)(w * 3 + 1) * h;
    raw = malloc(raw_len);
    ASSERT_EQ_INT(uncompress(raw, &raw_len, idat, (uLong)idat_len), Z_OK);
    ASSERT_EQ_U64(raw_len, (uLongf)(w * 3 + 1) * h);
    pixels = malloc((size_t)w * h * 3);
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *row = raw + (size_t)y * (w * 3 + 1);
        uint8_t *out = pixels + (size_t)y * w * 3;
        for (uint32_t i = 0; i < w * 3; i++) {
            uint8_t up = y > 0 ? out[(int64_t)i - (int64_t)w * 3] : 0;
            uint8_t left = i >= 3 ? out[i - 3] : 0;
            switch (row[0]) {
            case 0:
                out[i] = row[1 + i];
                break;
            case 1:
                out[i] = (uint8_t)(row[1 + i] + left);
                break;
            case 2:
                out[i] = (uint8_t)(row[1 + i] + up);
                break;
            default:
                harness_fail(__FILE__, __LINE__, "unexpected filter %d", row[0]);
            }
        }
    }
    free(raw);
    free(idat);
    *ret_w = w;
    *ret_h = h;
    return pixels;
}

TEST(png_decodes_to_input)
{
    const uint32_t w = 512, h = 512;
    uint8_t *rgb = malloc((size_t)w * h * 3), *png, *back;
    size_t len;
    uint32_t bw, bh;

    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)x;
            p[1] = (uint8_t)(y * 3);
            p[2] = (uint8_t)((x * y) ^ (x >> 2));
        }
    ASSERT_EQ_INT(gc_png_encode_rgb(rgb, w, h, &png, &len), 0);
    back = png_decode(png, len, &bw, &bh);
    ASSERT_EQ_INT(bw, 512);
    ASSERT_EQ_INT(bh, 512);
    ASSERT(memcmp(back, rgb, (size_t)w * h * 3) == 0);
    free(back);
    free(png);
    free(rgb);
}

TEST(png_small_and_odd_sizes)
{
    uint8_t rgb[7 * 3 * 3], *png, *back;
    size_t len;
    uint32_t bw, bh;

    for (size_t i = 0; i < sizeof(rgb); i++)
        rgb[i] = (uint8_t)(i * 29);
    ASSERT_EQ_INT(gc_png_encode_rgb(rgb, 7, 3, &png, &len), 0);
    back = png_decode(png, len, &bw, &bh);
    ASSERT_EQ_INT(bw, 7);
    ASSERT_EQ_INT(bh, 3);
    ASSERT(memcmp(back, rgb, sizeof(rgb)) == 0);
    free(back);
    free(png);
    ASSERT_EQ_INT(gc_png_encode_rgb(rgb, 1, 1, &png, &len), 0);
    free(png);
}

TEST(png_rejects)
{
    uint8_t rgb[3] = {0}, *png;
    size_t len;
    ASSERT_EQ_INT(gc_png_encode_rgb(NULL, 1, 1, &png, &len), GC_EINVAL);
    ASSERT_EQ_INT(gc_png_encode_rgb(rgb, 0, 1, &png, &len), GC_EINVAL);
    ASSERT_EQ_INT(gc_png_encode_rgb(rgb, 1, 0, &png, &len), GC_EINVAL);
    ASSERT_EQ_INT(gc_png_encode_rgb(rgb, GC_PNG_DIM_MAX + 1, 1, &png, &len), GC_EINVAL);
}
