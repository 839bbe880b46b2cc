/* err.h - internal view of the one error table (include/gpucoord.h). */
#ifndef GC_ERR_H
#define GC_ERR_H

#include "gpucoord.h"

/* Short internal names for the table's codes. */
#define GC_EINVAL        GPUCOORD_EINVAL
#define GC_ETOOBIG       GPUCOORD_ETOOBIG
#define GC_EUNAUTH       GPUCOORD_EUNAUTH
#define GC_EFORBIDDEN    GPUCOORD_EFORBIDDEN
#define GC_ENOTFOUND     GPUCOORD_ENOTFOUND
#define GC_EMETHOD       GPUCOORD_EMETHOD
#define GC_ECONFLICT     GPUCOORD_ECONFLICT
#define GC_ENEVERFITS    GPUCOORD_ENEVERFITS
#define GC_ELIMIT        GPUCOORD_ELIMIT
#define GC_ECOULDNOTFREE GPUCOORD_ECOULDNOTFREE
#define GC_EUNAVAIL      GPUCOORD_EUNAVAIL
#define GC_ETIMEDOUT     GPUCOORD_ETIMEDOUT
#define GC_EQUEUED       GPUCOORD_EQUEUED
#define GC_ENOMEM        GPUCOORD_ENOMEM
#define GC_EIO           GPUCOORD_EIO
#define GC_ECONNECT      GPUCOORD_ECONNECT
#define GC_EPROTO        GPUCOORD_EPROTO
#define GC_EGPU          GPUCOORD_EGPU
#define GC_EOOM          GPUCOORD_EOOM
#define GC_EINTERNAL     GPUCOORD_EINTERNAL
#define GC_EJOURNAL      GPUCOORD_EJOURNAL

/* The HTTP status that answers err (200 for 0, 500 for unknown codes). */
int gc_err_http_status(int err);
/* The code for an API error string ("never_fits"); GC_EINTERNAL if unknown. */
int gc_err_from_name(const char *code);
/* A code for a bare HTTP status when the body names none. */
int gc_err_from_http_status(long status);

#endif
