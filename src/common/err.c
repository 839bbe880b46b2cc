/* err.c - the error table's lookups (the table itself is GPUCOORD_ERRNO_MAP). */
#include "err.h"

#include <string.h>

const char *gpucoord_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define XX(name, status, code, msg)                                                                \
    case GPUCOORD_##name:                                                                          \
        return msg;
        GPUCOORD_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *gpucoord_err_name(int err)
{
    switch (err) {
    case 0:
        return "ok";
#define XX(name, status, code, msg)                                                                \
    case GPUCOORD_##name:                                                                          \
        return code;
        GPUCOORD_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown";
    }
}

int gc_err_http_status(int err)
{
    switch (err) {
    case 0:
        return 200;
#define XX(name, status, code, msg)                                                                \
    case GPUCOORD_##name:                                                                          \
        return status;
        GPUCOORD_ERRNO_MAP(XX)
#undef XX
    default:
        return 500;
    }
}

int gc_err_from_name(const char *code)
{
    if (code == NULL)
        return GPUCOORD_EPROTO;
#define XX(name, status, c, msg)                                                                   \
    if (strcmp(code, c) == 0)                                                                      \
        return GPUCOORD_##name;
    GPUCOORD_ERRNO_MAP(XX)
#undef XX
    return GPUCOORD_EINTERNAL;
}

int gc_err_from_http_status(long status)
{
    switch (status) {
    case 400:
        return GPUCOORD_EINVAL;
    case 401:
        return GPUCOORD_EUNAUTH;
    case 403:
        return GPUCOORD_EFORBIDDEN;
    case 404:
        return GPUCOORD_ENOTFOUND;
    case 405:
        return GPUCOORD_EMETHOD;
    case 409:
        return GPUCOORD_ECONFLICT;
    case 413:
        return GPUCOORD_ETOOBIG;
    case 429:
        return GPUCOORD_ELIMIT;
    case 503:
        return GPUCOORD_EUNAVAIL;
    case 504:
        return GPUCOORD_ETIMEDOUT;
    default:
        return status >= 200 && status < 300 ? 0 : GPUCOORD_EINTERNAL;
    }
}
