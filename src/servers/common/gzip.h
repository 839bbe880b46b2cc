/* gzip.h - bytes to a gzip member (RFC 1952), for answers that ask for compression. */
#ifndef GC_SERVERS_GZIP_H
#define GC_SERVERS_GZIP_H

#include <stddef.h>
#include <stdint.h>

/*
 * gc_gzip: compresses len bytes at in into one gzip member in a malloc'd buffer:
 * caller frees *ret_out, *ret_len is its size (written only on success). Returns
 * 0, GC_EINVAL (NULL input with len > 0, len too large for zlib), GC_ENOMEM or
 * GC_EINTERNAL (zlib failed).
 */
int gc_gzip(const void *in, size_t len, uint8_t **ret_out, size_t *ret_len);

#endif
