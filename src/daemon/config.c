/* config.c - defaults and the INI file. */
#include "daemon/config.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/log.h"
#include "common/names.h"
#include "common/size.h"
#include "common/utf8.h"

#define CONFIG_DEFAULT_PORT 10010

void gc_config_defaults(struct gc_config *cfg)
{
    const char *port = getenv("GPUCOORD_PORT");
    long p = port ? strtol(port, NULL, 10) : 0;

    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:%ld",
             p > 0 && p < 65536 ? p : (long)CONFIG_DEFAULT_PORT);
    cfg->socket_mode = 0660;
    snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/gpucoord");
    cfg->reserve_bytes = 512ULL << 20;
    cfg->max_unloaded_s = 300;
    cfg->starvation_s = 60;
    cfg->free_lag_s = 10;
    cfg->default_ttl_s = 30;
    cfg->max_ttl_s = 86400;
    /* A lease with no pid has no process whose exit ends it: only its TTL does, so
     * that TTL is short (heartbeats keep it as long as its holder lives). */
    cfg->max_ttl_pidless_s = 300;
    cfg->max_wait_s = 3600;
    cfg->queue_max = 1024;
    cfg->leases_per_holder_max = 64;
    /* A quarter of the lease table: one caller cannot take all of it. */
    cfg->leases_per_caller_max = GC_LEASES_MAX / 4;
    cfg->conn_limit = 512;
    cfg->conn_reserve = 32;
    cfg->conn_per_peer = 256;
    cfg->header_timeout_s = 10;
    cfg->body_timeout_s = 30;
    cfg->body_max = 64 * 1024;
    cfg->sync = GC_SYNC_RESIDENT;
    cfg->compact_bytes = 1u << 20;
    cfg->verify_poll_s = 0.05;
    cfg->idle_poll_s = 0.5;
    cfg->unload_timeout_s = 30;
    cfg->reload_timeout_s = 60;
    cfg->verify_timeout_s = 10;
    cfg->kill_grace_s = 5;
    cfg->reload_attempts = 3;
    cfg->reload_backoff_s = 1;
    cfg->log_level = GC_LOG_INFO;
    cfg->residents = json_array();
}

void gc_config_free(struct gc_config *cfg)
{
    json_decref(cfg->residents);
    cfg->residents = NULL;
}

struct ini_ctx {
    struct gc_config *cfg;
    char err[256];
    int line;
};

static int ini_fail(struct ini_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int ini_fail(struct ini_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
    va_end(ap);
    return 0; /* inih: stop with an error */
}

static int parse_seconds(const char *value, double min, double max, double *ret)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(value, &end);
    if (errno != 0 || end == value || *end != '\0' || !(d >= min && d <= max))
        return GC_EINVAL;
    *ret = d;
    return 0;
}

static int parse_uint(const char *value, unsigned long max, unsigned long *ret)
{
    char *end;
    unsigned long v;

    if (value[0] == '-')
        return GC_EINVAL;
    errno = 0;
    v = strtoul(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v > max)
        return GC_EINVAL;
    *ret = v;
    return 0;
}

static int parse_bool(const char *value, bool *ret)
{
    if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0)
        *ret = true;
    else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "0") == 0)
        *ret = false;
    else
        return GC_EINVAL;
    return 0;
}

static int coordinator_key(struct ini_ctx *ctx, const char *name, const char *value)
{
    struct gc_config *cfg = ctx->cfg;
    unsigned long u;
    uint64_t bytes;

#define STR_KEY(key, field)                                                                        \
    if (strcmp(name, key) == 0) {                                                                  \
        if (strlen(value) >= sizeof(cfg->field))                                                   \
            return ini_fail(ctx, "'%s' is too long", key);                                         \
        snprintf(cfg->field, sizeof(cfg->field), "%s", value);                                     \
        return 1;                                                                                  \
    }
#define SECONDS_KEY(key, field, min, max)                                                          \
    if (strcmp(name, key) == 0) {                                                                  \
        if (parse_seconds(value, min, max, &cfg->field) < 0)                                       \
            return ini_fail(ctx, "'%s' must be seconds between %g and %g", key, (double)(min),     \
                            (double)(max));                                                        \
        return 1;                                                                                  \
    }
#define UINT_KEY(key, field, max)                                                                  \
    if (strcmp(name, key) == 0) {                                                                  \
        if (parse_uint(value, max, &u) < 0)                                                        \
            return ini_fail(ctx, "'%s' must be an integer up to %lu", key, (unsigned long)(max));  \
        cfg->field = (unsigned)u;                                                                  \
        return 1;                                                                                  \
    }
    STR_KEY("listen", listen)
    STR_KEY("socket", socket_path)
    STR_KEY("state_dir", state_dir)
    STR_KEY("token_file", token_file)
    SECONDS_KEY("max_unloaded_s", max_unloaded_s, 0, 86400 * 7)
    SECONDS_KEY("starvation_s", starvation_s, 0, 86400)
    SECONDS_KEY("free_lag_s", free_lag_s, 0, 600)
    SECONDS_KEY("default_ttl_s", default_ttl_s, 0.1, 86400)
    SECONDS_KEY("max_wait_s", max_wait_s, 0, 86400)
    SECONDS_KEY("max_ttl_pidless_s", max_ttl_pidless_s, 1, 86400)
    SECONDS_KEY("verify_poll_s", verify_poll_s, 0.005, 10)
    SECONDS_KEY("idle_poll_s", idle_poll_s, 0.01, 60)
    SECONDS_KEY("unload_timeout_s", unload_timeout_s, 0.1, 3600)
    SECONDS_KEY("reload_timeout_s", reload_timeout_s, 0.1, 3600)
    SECONDS_KEY("verify_timeout_s", verify_timeout_s, 0.1, 3600)
    SECONDS_KEY("kill_grace_s", kill_grace_s, 0, 600)
    SECONDS_KEY("reload_backoff_s", reload_backoff_s, 0, 600)
    UINT_KEY("queue_max", queue_max, GC_LEASES_MAX)
    UINT_KEY("leases_per_holder_max", leases_per_holder_max, GC_LEASES_MAX)
    UINT_KEY("leases_per_caller_max", leases_per_caller_max, GC_LEASES_MAX)
    UINT_KEY("conn_limit", conn_limit, 65536)
    UINT_KEY("conn_reserve", conn_reserve, 65536)
    UINT_KEY("conn_per_peer", conn_per_peer, 65536)
    SECONDS_KEY("header_timeout_s", header_timeout_s, 0.1, 3600)
    SECONDS_KEY("body_timeout_s", body_timeout_s, 0.1, 3600)
    UINT_KEY("reload_attempts", reload_attempts, 100)
#undef STR_KEY
#undef SECONDS_KEY
#undef UINT_KEY
    if (strcmp(name, "socket_mode") == 0) {
        char *end;
        u = strtoul(value, &end, 8);
        if (*value == '\0' || *end != '\0' || u > 0777)
            return ini_fail(ctx, "'socket_mode' must be octal, like 0660");
        cfg->socket_mode = (unsigned)u;
        return 1;
    }
    if (strcmp(name, "reserve") == 0) {
        if (gc_size_parse(value, &bytes) < 0)
            return ini_fail(ctx, "'reserve' is not a size: '%s'", value);
        cfg->reserve_bytes = bytes;
        return 1;
    }
    if (strcmp(name, "body_max") == 0 || strcmp(name, "compact_bytes") == 0) {
        if (gc_size_parse(value, &bytes) < 0 || bytes < 1024 || bytes > (64ULL << 20))
            return ini_fail(ctx, "'%s' must be a size between 1Ki and 64Mi", name);
        if (name[0] == 'b')
            cfg->body_max = (size_t)bytes;
        else
            cfg->compact_bytes = (size_t)bytes;
        return 1;
    }
    if (strcmp(name, "allow_remote_callbacks") == 0) {
        if (parse_bool(value, &cfg->allow_remote_callbacks) < 0)
            return ini_fail(ctx, "'allow_remote_callbacks' must be true or false");
        return 1;
    }
    if (strcmp(name, "journal_sync") == 0) {
        if (gc_store_sync_parse(value, &cfg->sync) < 0)
            return ini_fail(ctx, "'journal_sync' must be never, resident or always");
        return 1;
    }
    if (strcmp(name, "log_level") == 0) {
        static const char *levels[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++) {
            if (strcmp(value, levels[i]) == 0) {
                cfg->log_level = i;
                return 1;
            }
        }
        return ini_fail(ctx, "'log_level' must be debug, info, warn or error");
    }
    return ini_fail(ctx, "unknown key '%s' in [coordinator]", name);
}

static int gpu_key(struct ini_ctx *ctx, unsigned index, const char *name, const char *value)
{
    struct gc_gpu_conf *g = &ctx->cfg->gpus[index];
    uint64_t bytes;

    if (gc_size_parse(value, &bytes) < 0)
        return ini_fail(ctx, "'%s' is not a size: '%s'", name, value);
    if (strcmp(name, "budget") == 0) {
        g->budget_bytes = bytes;
        return 1;
    }
    if (strcmp(name, "reserve") == 0) {
        g->reserve_bytes = bytes;
        g->has_reserve = true;
        return 1;
    }
    return ini_fail(ctx, "unknown key '%s' in [gpu.%u]", name, index);
}

/* "name:size, name:size, ..." -> [{"name", "bytes"}, ...] (sizes stay strings: the
 * registration parses and checks them); NULL when a part is not NAME:SIZE. */
static json_t *levels_from_ini(const char *value)
{
    json_t *levels = json_array();
    const char *p = value;

    while (*p != '\0') {
        const char *end = strchr(p, ','), *colon;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char part[128], *name, *size, *t;
        if (len >= sizeof(part))
            goto out_bad;
        memcpy(part, p, len);
        part[len] = '\0';
        colon = strchr(part, ':');
        if (colon == NULL)
            goto out_bad;
        name = part;
        size = part + (colon - part) + 1;
        part[colon - part] = '\0';
        /* Trim the spaces around each half. */
        while (*name == ' ' || *name == '\t')
            name++;
        for (t = name + strlen(name); t > name && (t[-1] == ' ' || t[-1] == '\t');)
            *--t = '\0';
        while (*size == ' ' || *size == '\t')
            size++;
        for (t = size + strlen(size); t > size && (t[-1] == ' ' || t[-1] == '\t');)
            *--t = '\0';
        if (*name == '\0' || *size == '\0')
            goto out_bad;
        json_array_append_new(levels, json_pack("{s:s, s:s}", "name", name, "bytes", size));
        p = end ? end + 1 : p + len;
    }
    return levels;

out_bad:
    json_decref(levels);
    return NULL;
}

/* [resident.NAME] keys become the fields of a registration (POST /v1/residents). */
static int resident_key(struct ini_ctx *ctx, const char *rname, const char *name, const char *value)
{
    static const char *const int_keys[] = {"pid", "gpu", "priority", NULL};
    json_t *reg = NULL, *v;
    size_t i;
    char *end;

    if (strcmp(name, "name") == 0)
        return ini_fail(ctx, "[resident.%s]: the name comes from the section, not a key", rname);
    if (!gc_utf8_valid(value, strlen(value)) || !gc_utf8_valid(name, strlen(name)))
        return ini_fail(ctx, "[resident.%s]: '%s' is not valid UTF-8", rname, name);
    json_array_foreach(ctx->cfg->residents, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "name")), rname) == 0) {
            reg = v;
            break;
        }
    }
    if (reg == NULL) {
        reg = json_pack("{s:s}", "name", rname);
        json_array_append_new(ctx->cfg->residents, reg);
    }
    v = NULL;
    for (i = 0; int_keys[i] != NULL; i++) {
        if (strcmp(name, int_keys[i]) == 0) {
            long long n;
            errno = 0;
            n = strtoll(value, &end, 10);
            if (*value == '\0' || *end != '\0' || errno == ERANGE)
                return ini_fail(ctx, "'%s' must be an integer", name);
            v = json_integer(n);
        }
    }
    if (strcmp(name, "levels") == 0) {
        v = levels_from_ini(value);
        if (v == NULL)
            return ini_fail(ctx, "'levels' must look like full:4.7Gi, reduced:2.35Gi, off:0");
    }
    if (v == NULL && strlen(name) > 2 && strcmp(name + strlen(name) - 2, "_s") == 0) {
        double d;
        if (parse_seconds(value, -1e12, 1e12, &d) < 0)
            return ini_fail(ctx, "'%s' must be a number of seconds", name);
        v = json_real(d);
    }
    if (v == NULL)
        v = json_string(value);
    json_object_set_new(reg, name, v);
    return 1;
}

static int config_ini_line(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *ctx = user;
    unsigned long index;

    if (strcmp(section, "coordinator") == 0)
        return coordinator_key(ctx, name, value);
    if (strncmp(section, "gpu.", 4) == 0) {
        if (parse_uint(section + 4, GC_GPUS_MAX - 1, &index) < 0)
            return ini_fail(ctx, "bad section [%s]: GPU index 0..%d", section, GC_GPUS_MAX - 1);
        return gpu_key(ctx, (unsigned)index, name, value);
    }
    if (strncmp(section, "resident.", 9) == 0) {
        if (!gc_name_valid(section + 9))
            return ini_fail(ctx, "bad section [%s]: names are [A-Za-z0-9._-]{1,64}", section);
        return resident_key(ctx, section + 9, name, value);
    }
    return ini_fail(ctx, "unknown section [%s]", section);
}

int gc_config_load_file(struct gc_config *cfg, const char *path, char *errbuf, size_t errbuf_len)
{
    struct ini_ctx ctx = {.cfg = cfg};
    int rc = ini_parse(path, config_ini_line, &ctx);

    if (rc == -1) {
        snprintf(errbuf, errbuf_len, "cannot open config '%s': %s", path, strerror(errno));
        return GC_EIO;
    }
    if (rc != 0) {
        snprintf(errbuf, errbuf_len, "%s:%d: %s", path, rc, ctx.err[0] ? ctx.err : "syntax error");
        return GC_EINVAL;
    }
    if (cfg->conn_limit < 2 || cfg->conn_reserve == 0 || cfg->conn_reserve >= cfg->conn_limit ||
        cfg->conn_per_peer == 0) {
        snprintf(errbuf, errbuf_len,
                 "%s: need conn_limit >= 2, 1 <= conn_reserve < conn_limit and conn_per_peer >= 1 "
                 "(have %u, %u, %u)",
                 path, cfg->conn_limit, cfg->conn_reserve, cfg->conn_per_peer);
        return GC_EINVAL;
    }
    return 0;
}

int gc_config_load_token(struct gc_config *cfg, char *errbuf, size_t errbuf_len)
{
    char line[GC_TOKEN_MAX + 4];
    FILE *f;
    struct stat st;
    size_t n;

    if (cfg->token_file[0] == '\0')
        return 0;
    f = fopen(cfg->token_file, "re");
    if (f == NULL) {
        snprintf(errbuf, errbuf_len, "cannot read token file '%s': %s", cfg->token_file,
                 strerror(errno));
        return GC_EIO;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077) != 0) {
        fclose(f);
        snprintf(errbuf, errbuf_len, "token file '%s' must not be readable by group or others",
                 cfg->token_file);
        return GC_EINVAL;
    }
    /* Room for a token one character too long plus "\r\n": longer is refused, never
     * cut (a cut token would lock out every client that sends the whole one). */
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n > GC_TOKEN_MAX) {
        snprintf(errbuf, errbuf_len, "token in '%s' is longer than %d characters", cfg->token_file,
                 GC_TOKEN_MAX);
        return GC_EINVAL;
    }
    memcpy(cfg->token, line, n + 1);
    if (n < 16) {
        snprintf(errbuf, errbuf_len, "token in '%s' must be at least 16 characters",
                 cfg->token_file);
        return GC_EINVAL;
    }
    return 0;
}
