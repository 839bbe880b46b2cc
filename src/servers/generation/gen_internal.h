/* gen_internal.h - what the generator's stages share and nobody else needs. */
#ifndef GC_SERVERS_GEN_INTERNAL_H
#define GC_SERVERS_GEN_INTERNAL_H

#include <stdint.h>

#include "gen.h"

/* Stage salts, so each stage draws its own random numbers from the same seed. */
#define GEN_SALT_CONCEPT 0x636f6e63657074ULL
#define GEN_SALT_SHAPE   0x7368617065ULL
#define GEN_SALT_SPLATS  0x73706c617473ULL

/*
 * Draws parts (colours prim_rgb), stretched vertically by stretch_y, as an
 * orthographic front view on white into image (GC_GEN_IMAGE_RES square, RGB8).
 */
void gen_draw(const struct gc_prim *prims, int nprims, const float (*prim_rgb)[3], double stretch_y,
              uint8_t *image);

/* Height / width of the non-white pixels of image; 0 when it is blank. */
double gen_image_aspect(const uint8_t *image);

/* The colour of a part: the main colour or the part's fixed colour. */
void gen_part_rgb(const struct gc_prim *prim, const float main_rgb[3], float out[3]);

#endif
