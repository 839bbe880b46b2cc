/* utf8.h - keeping text valid UTF-8 before it becomes a JSON string. */
#ifndef GC_UTF8_H
#define GC_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Replaces every byte that is not part of a valid UTF-8 sequence with '?', in place
 * (so a message that quotes client bytes, or was cut inside a character by a
 * "%.Ns", can always be sent as JSON). Returns s. */
char *gc_utf8_clean(char *s);
/* True when the first len bytes of s are valid UTF-8. */
bool gc_utf8_valid(const char *s, size_t len);
/* Characters (code points) in the first len bytes of s, or SIZE_MAX when they are not
 * valid UTF-8: limits that say "characters" count these, not bytes. */
size_t gc_utf8_chars(const char *s, size_t len);

#endif
