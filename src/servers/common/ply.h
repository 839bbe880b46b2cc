/*
 * ply.h - the 3D Gaussian-splat PLY format (binary little-endian, as 3DGS
 * writes it): a text header, then per vertex the float32 properties
 * x y z nx ny nz f_dc_0..2 f_rest_0..44 opacity scale_0..2 rot_0..3.
 *
 * The parser takes hostile input: it never reads past the buffer, caps the
 * header (GC_PLY_HEADER_MAX) and the vertex count (GC_SPLATS_MAX), and
 * checks every size computation for overflow. It finds the properties it
 * needs by name, in whatever order the header declares them; other
 * properties of any scalar type are skipped by size. Required: x y z
 * f_dc_0..2 opacity scale_0..2 rot_0..3, each a float (float32) and finite.
 * Optional (zero when absent, converted to float from any scalar type):
 * nx ny nz f_rest_0..44. Other elements (e.g. faces) may come before the
 * vertices only when their size is fixed (no list properties); elements
 * after the vertices are not read, but when all their properties are fixed
 * the file length must match exactly.
 */
#ifndef GC_SERVERS_PLY_H
#define GC_SERVERS_PLY_H

#include <stddef.h>
#include <stdint.h>

#include "splat.h"

/* Longest header accepted, "ply\n" to "end_header\n" inclusive. */
#define GC_PLY_HEADER_MAX 65536
/* Most elements and properties per element a header may declare. */
#define GC_PLY_ELEMENTS_MAX   16
#define GC_PLY_PROPERTIES_MAX 256

/*
 * gc_ply_write: writes splats as a 3DGS PLY into a malloc'd buffer (caller
 * frees *ret_buf; *ret_len its size). Returns 0, GC_EINVAL (NULL arguments),
 * GC_ETOOBIG (over GC_SPLATS_MAX) or GC_ENOMEM.
 */
int gc_ply_write(const struct gc_splats *splats, uint8_t **ret_buf, size_t *ret_len);

/* Bytes gc_ply_write() produces for count splats. */
size_t gc_ply_size(size_t count);

/*
 * gc_ply_parse: parses buf[0..len). On success *ret_splats is a new model
 * (gc_splats_free()). On error returns GC_EINVAL (malformed, unsupported,
 * truncated, non-finite values, more than GC_SPLATS_MAX vertices, a header
 * over GC_PLY_HEADER_MAX) or GC_ENOMEM, and writes a one-line reason into
 * errbuf (when errlen > 0).
 */
int gc_ply_parse(const void *buf, size_t len, struct gc_splats **ret_splats, char *errbuf,
                 size_t errlen);
/*
 * gc_ply_parse_in_place: gc_ply_parse for buf, a malloc'd buffer of the caller's. When
 * the vertex records are laid out as struct gc_splat (the 62 floats in order, as
 * gc_ply_write and 3DGS write them), the model takes buf over instead of copying
 * it: on success, if (*ret_splats)->v == (void *)buf, buf belongs to the model
 * (gc_splats_free frees it) and the caller must not free it; otherwise, and on error,
 * the caller still owns it. Its contents may have been moved either way.
 */
int gc_ply_parse_in_place(void *buf, size_t len, struct gc_splats **ret_splats, char *errbuf,
                          size_t errlen);

#endif
