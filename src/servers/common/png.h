/* png.h - a minimal PNG encoder for the validation server's preview image. */
#ifndef GC_SERVERS_PNG_H
#define GC_SERVERS_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Largest width or height encoded. */
#define GC_PNG_DIM_MAX 8192

/*
 * gc_png_encode_rgb: encodes rgb (width * height * 3 bytes, rows top to
 * bottom) as an 8-bit truecolour PNG (IHDR, one IDAT compressed with zlib,
 * IEND; each row filtered with "Up") into a malloc'd buffer: caller frees
 * *ret_png, *ret_len is its size. Returns 0, GC_EINVAL (NULL, a zero or too
 * large dimension), GC_ENOMEM or GC_EINTERNAL (zlib failed).
 */
int gc_png_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height, uint8_t **ret_png,
                      size_t *ret_len);

#endif
