/*
 * b64.h - base64 (RFC 4648, standard alphabet, '=' padding).
 *
 * Used for the PLY payload the validation server receives and for the PNG
 * preview and PLY the servers send back. Decoding is strict: no whitespace is
 * tolerated inside the text, only one optional trailing newline ("\n" or
 * "\r\n"); the length must be a multiple of 4 and the unused bits of the last
 * group must be zero, so every accepted text is exactly what gc_b64_encode()
 * would produce for the decoded bytes.
 */
#ifndef GC_B64_H
#define GC_B64_H

#include <stddef.h>

/* Largest input gc_b64_encode() accepts (its output is 4/3 of that). */
#define GC_B64_ENCODE_MAX ((size_t)1 << 30)

/* Characters gc_b64_encode() writes for len bytes, not counting the NUL. */
size_t gc_b64_encoded_len(size_t len);

/*
 * gc_b64_encode: encodes data[0..len) into a malloc'd, NUL-terminated string
 * (caller frees *ret_text); *ret_len (may be NULL) gets its length without the
 * NUL. Returns 0, GC_ETOOBIG (len over GC_B64_ENCODE_MAX), GC_EINVAL (NULL
 * arguments) or GC_ENOMEM. Out-params are written only on success.
 */
int gc_b64_encode(const void *data, size_t len, char **ret_text, size_t *ret_len);

/*
 * gc_b64_decode: decodes text[0..len) into a malloc'd buffer (caller frees
 * *ret_data); a NUL is written after the *ret_len decoded bytes, so text
 * payloads can be used as C strings. Empty text decodes to zero bytes (a
 * non-NULL buffer). Returns 0, GC_EINVAL (a character outside the alphabet,
 * misplaced padding, a length not a multiple of 4, non-zero trailing bits),
 * GC_ETOOBIG (the decoded size would exceed max_out) or GC_ENOMEM.
 * Out-params are written only on success.
 */
int gc_b64_decode(const char *text, size_t len, size_t max_out, void **ret_data, size_t *ret_len);

#endif
