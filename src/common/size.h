/* size.h - human size strings (the public gpucoord_size_* functions, internal names). */
#ifndef GC_SIZE_H
#define GC_SIZE_H

#include <stddef.h>
#include <stdint.h>

#include "gpucoord.h"

/* Longest size string accepted. */
#define GC_SIZE_TEXT_MAX 64
/* Buffer large enough for any gpucoord_size_format() result. */
#define GC_SIZE_BUF 32

#define gc_size_parse  gpucoord_size_parse
#define gc_size_format gpucoord_size_format

#endif
