/* names.h - validation of client-chosen names (residents, holders). */
#ifndef GC_NAMES_H
#define GC_NAMES_H

#include <stdbool.h>

/* Longest name accepted: [A-Za-z0-9._-]{1,GC_NAME_MAX}. */
#define GC_NAME_MAX 64

/* True when name matches [A-Za-z0-9._-]{1,64}. */
bool gc_name_valid(const char *name);

#endif
