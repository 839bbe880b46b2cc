/* config.c - gpusim's GPUSIM_* environment, and its debug output. */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/err.h"
#include "common/size.h"

static int config_error(char *errbuf, size_t errbuf_len, const char *name, const char *value)
{
    snprintf(errbuf, errbuf_len, "bad %s '%s'", name, value);
    return GC_EINVAL;
}

/* Comma-separated sizes, 1..SIM_DEVICES_MAX of them, each > 0. */
static int parse_devices(const char *text, struct sim_config *cfg)
{
    char item[GC_SIZE_TEXT_MAX + 1];
    const char *p = text;
    unsigned n = 0;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        uint64_t bytes;

        if (len == 0 || len > GC_SIZE_TEXT_MAX || n >= SIM_DEVICES_MAX)
            return GC_EINVAL;
        memcpy(item, p, len);
        item[len] = '\0';
        if (gc_size_parse(item, &bytes) < 0 || bytes == 0)
            return GC_EINVAL;
        cfg->capacity_bytes[n++] = bytes;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    cfg->ndevices = n;
    return 0;
}

static int parse_gbps(const char *text, double *ret)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v < 0 || v > SIM_GBPS_MAX)
        return GC_EINVAL;
    *ret = v;
    return 0;
}

static int parse_bool(const char *text, bool *ret)
{
    if (strcmp(text, "1") == 0 || strcmp(text, "true") == 0 || strcmp(text, "yes") == 0) {
        *ret = true;
        return 0;
    }
    if (strcmp(text, "0") == 0 || strcmp(text, "false") == 0 || strcmp(text, "no") == 0 ||
        text[0] == '\0') {
        *ret = false;
        return 0;
    }
    return GC_EINVAL;
}

int sim_config_load(struct sim_config *ret_cfg, char *errbuf, size_t errbuf_len)
{
    struct sim_config cfg;
    const char *v;

    memset(&cfg, 0, sizeof(cfg));
    v = getenv("GPUSIM_STATE");
    if (v != NULL && v[0] != '\0') {
        if (strlen(v) >= sizeof(cfg.state_path))
            return config_error(errbuf, errbuf_len, "GPUSIM_STATE", v);
        snprintf(cfg.state_path, sizeof(cfg.state_path), "%s", v);
    } else {
        snprintf(cfg.state_path, sizeof(cfg.state_path), "/dev/shm/gpusim-%u", (unsigned)getuid());
    }

    v = getenv("GPUSIM_DEVICES");
    cfg.devices_set = v != NULL && v[0] != '\0';
    if (parse_devices(cfg.devices_set ? v : SIM_DEFAULT_DEVICES, &cfg) < 0)
        return config_error(errbuf, errbuf_len, "GPUSIM_DEVICES", v);

    v = getenv("GPUSIM_CONTEXT_BYTES");
    if (gc_size_parse(v != NULL && v[0] != '\0' ? v : SIM_DEFAULT_CONTEXT, &cfg.context_bytes) < 0)
        return config_error(errbuf, errbuf_len, "GPUSIM_CONTEXT_BYTES", v);

    v = getenv("GPUSIM_BACKED");
    if (v != NULL && parse_bool(v, &cfg.backed) < 0)
        return config_error(errbuf, errbuf_len, "GPUSIM_BACKED", v);

    v = getenv("GPUSIM_H2D_GBPS");
    if (v != NULL && v[0] != '\0' && parse_gbps(v, &cfg.h2d_gbps) < 0)
        return config_error(errbuf, errbuf_len, "GPUSIM_H2D_GBPS", v);
    v = getenv("GPUSIM_D2H_GBPS");
    if (v != NULL && v[0] != '\0' && parse_gbps(v, &cfg.d2h_gbps) < 0)
        return config_error(errbuf, errbuf_len, "GPUSIM_D2H_GBPS", v);

    v = getenv("GPUSIM_FREE_LAG_MS");
    if (v != NULL && v[0] != '\0') {
        char *end;
        long long ms;

        errno = 0;
        ms = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || ms < 0 || ms > SIM_LAG_MS_MAX)
            return config_error(errbuf, errbuf_len, "GPUSIM_FREE_LAG_MS", v);
        cfg.free_lag_ns = ms * 1000000LL;
    }

    v = getenv("GPUSIM_PIDS");
    if (v != NULL && v[0] != '\0') {
        if (strcmp(v, "host") == 0)
            cfg.pids = SIM_PIDS_HOST;
        else if (strcmp(v, "foreign") == 0)
            cfg.pids = SIM_PIDS_FOREIGN;
        else if (strcmp(v, "unavailable") == 0)
            cfg.pids = SIM_PIDS_UNAVAILABLE;
        else if (strcmp(v, "zero") == 0)
            cfg.pids = SIM_PIDS_ZERO;
        else
            return config_error(errbuf, errbuf_len, "GPUSIM_PIDS", v);
    }

    v = getenv("GPUSIM_DEBUG");
    if (v != NULL)
        (void)parse_bool(v, &cfg.debug);

    *ret_cfg = cfg;
    return 0;
}

/* One CUDA_VISIBLE_DEVICES entry (len bytes at item) as a physical index, or -1. */
static int visible_entry(const char *item, size_t len, unsigned ndevices)
{
    int found = -1;

    while (len > 0 && (*item == ' ' || *item == '\t')) {
        item++;
        len--;
    }
    while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
        len--;
    if (len == 0)
        return -1;
    if (len > 4 && strncasecmp(item, "GPU-", 4) == 0) {
        for (unsigned d = 0; d < ndevices; d++) {
            char uuid[SIM_UUID_TEXT_MAX];
            sim_device_uuid_text(d, uuid, sizeof(uuid));
            if (len <= strlen(uuid) && strncasecmp(uuid, item, len) == 0) {
                if (found >= 0)
                    return -1; /* a prefix of more than one GPU's UUID */
                found = (int)d;
            }
        }
        return found;
    }
    for (size_t i = 0; i < len; i++)
        if (item[i] < '0' || item[i] > '9' || i >= 9)
            return -1;
    found = atoi(item);
    return (unsigned)found < ndevices ? found : -1;
}

unsigned sim_visible_devices(const char *value, unsigned ndevices, unsigned *ret_phys)
{
    const char *p = value;
    unsigned n = 0;

    if (ndevices > SIM_DEVICES_MAX)
        ndevices = SIM_DEVICES_MAX;
    if (value == NULL) {
        for (unsigned d = 0; d < ndevices; d++)
            ret_phys[d] = d;
        return ndevices;
    }
    while (*p != '\0' && n < ndevices) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int phys = visible_entry(p, len, ndevices);
        bool repeated = false;

        for (unsigned i = 0; i < n; i++)
            repeated = repeated || ret_phys[i] == (unsigned)phys;
        if (phys < 0 || repeated)
            break;
        ret_phys[n++] = (unsigned)phys;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return n;
}

void sim_debug(const char *fmt, ...)
{
    static int enabled = -1; /* read once; threads may race to the same answer */
    int on = __atomic_load_n(&enabled, __ATOMIC_RELAXED);
    va_list ap;

    if (on < 0) {
        const char *v = getenv("GPUSIM_DEBUG");
        on = v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
        __atomic_store_n(&enabled, on, __ATOMIC_RELAXED);
    }
    if (!on)
        return;
    fprintf(stderr, "gpusim[%d]: ", (int)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
