/* registration.c - a resident's registration checked (registration.h). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/names.h"
#include "common/proc.h"
#include "common/url.h"
#include "daemon/registration.h"

#define RESIDENT_BYTES_MAX (1ULL << 50)
#define PRIORITY_LIMIT     1000000
#define TIMEOUT_MAX_S      3600.0
/* How long an eviction waits for requests in flight through a resident. */
#define GC_DRAIN_TIMEOUT_DEFAULT_S 30.0

static const char *const resident_fields[] = {"name",
                                              "protocol",
                                              "url",
                                              "pid",
                                              "gpu",
                                              "bytes",
                                              "priority",
                                              "restore",
                                              "on_stuck",
                                              "unload_timeout_s",
                                              "reload_timeout_s",
                                              "verify_timeout_s",
                                              "kill_grace_s",
                                              "unload",
                                              "reload",
                                              "cleanup",
                                              "health",
                                              "command",
                                              "model",
                                              "drain_timeout_s",
                                              "loaded",
                                              "levels",
                                              "level",
                                              NULL};

static const char *const level_fields[] = {"name", "bytes", NULL};

/* A level name: [A-Za-z0-9._-]{1,GC_LEVEL_NAME_MAX}. */
static bool level_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > GC_LEVEL_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/*
 * Reads the registration's "levels" into r (fullest first, bytes strictly
 * decreasing, names unique) and checks them against "bytes" (has_bytes: it was
 * given). Without "levels" a resident has two: "loaded" (bytes) and "off" (0).
 * GC_EINVAL with err filled when they are wrong; r is then partly written.
 */
static int levels_parse(const json_t *req, bool has_bytes, uint64_t *bytes, struct gc_resident *r,
                        struct gc_jerr *err)
{
    const json_t *levels = json_object_get(req, "levels");
    size_t n;

    if (levels == NULL) {
        r->nlevels = 2;
        snprintf(r->levels[0].name, sizeof(r->levels[0].name), "loaded");
        r->levels[0].bytes = *bytes;
        snprintf(r->levels[1].name, sizeof(r->levels[1].name), "off");
        r->levels[1].bytes = 0;
        return 0;
    }
    n = json_is_array(levels) ? json_array_size(levels) : 0;
    if (n < 2 || n > GC_LEVELS_MAX) {
        snprintf(err->msg, sizeof(err->msg),
                 "'levels' must be an array of 2 to %d {\"name\", \"bytes\"}, fullest first",
                 GC_LEVELS_MAX);
        return GC_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *lv = json_array_get(levels, i);
        const char *name = NULL;
        uint64_t b = 0;
        if (!json_is_object(lv)) {
            snprintf(err->msg, sizeof(err->msg), "levels[%zu] must be {\"name\", \"bytes\"}", i);
            return GC_EINVAL;
        }
        if (gc_json_only_keys(lv, level_fields, err) < 0 ||
            gc_json_get_str(lv, "name", true, GC_LEVEL_NAME_MAX, &name, err) < 0 ||
            gc_json_get_bytes(lv, "bytes", true, RESIDENT_BYTES_MAX, &b, err) < 0) {
            char msg[sizeof(err->msg)];
            memcpy(msg, err->msg, sizeof(msg));
            snprintf(err->msg, sizeof(err->msg), "levels[%zu]: %.200s", i, msg);
            return GC_EINVAL;
        }
        if (!level_name_valid(name)) {
            snprintf(err->msg, sizeof(err->msg),
                     "levels[%zu]: name must match [A-Za-z0-9._-]{1,%d}", i, GC_LEVEL_NAME_MAX);
            return GC_EINVAL;
        }
        if (i > 0 && b >= r->levels[i - 1].bytes) {
            snprintf(err->msg, sizeof(err->msg),
                     "levels[%zu] ('%s'): bytes must be fewer than the level before's", i, name);
            return GC_EINVAL;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(r->levels[k].name, name) == 0) {
                snprintf(err->msg, sizeof(err->msg), "levels[%zu]: name '%s' is used twice", i,
                         name);
                return GC_EINVAL;
            }
        }
        snprintf(r->levels[i].name, sizeof(r->levels[i].name), "%s", name);
        r->levels[i].bytes = b;
    }
    if (has_bytes && *bytes != r->levels[0].bytes) {
        snprintf(err->msg, sizeof(err->msg),
                 "'bytes' must equal the first level's bytes (or be left out)");
        return GC_EINVAL;
    }
    r->nlevels = (unsigned)n;
    *bytes = r->levels[0].bytes;
    return 0;
}

static bool request_spec_valid(const char *req)
{
    char method[16], path[GC_SPEC_REQ_MAX];

    if (sscanf(req, "%15s %159s", method, path) != 2 || path[0] != '/')
        return false;
    return strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 ||
           strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
}

static int copy_str(const json_t *req, const char *key, size_t max, char *dst, struct gc_jerr *err)
{
    const char *s = NULL;
    int rc = gc_json_get_str(req, key, false, max - 1, &s, err);

    if (rc == 0 && s != NULL)
        snprintf(dst, max, "%s", s);
    return rc;
}

int gc_registration_parse(const json_t *req, const struct gc_config *cfg, unsigned ngpus,
                          const struct gc_caller *caller, bool check_pid, int64_t now_ms,
                          struct gc_registration *ret, struct gc_jerr *err)
{
    struct gc_resident r;
    struct gc_resident_spec spec;
    const struct gc_adapter *adapter;
    const char *name = NULL, *protocol = NULL, *restore = NULL, *on_stuck = NULL;
    const char *level_name = NULL;
    int level = -1;
    int64_t pid = 0, gpu = 0, priority = GC_RESIDENT_PRIORITY_DEFAULT;
    uint64_t bytes = 0, pid_start = 0;
    double drain_timeout_s = GC_DRAIN_TIMEOUT_DEFAULT_S;
    int rc;
    bool loaded = true;

    memset(&r, 0, sizeof(r));
    memset(&spec, 0, sizeof(spec));
    spec.unload_timeout_s = cfg->unload_timeout_s;
    spec.reload_timeout_s = cfg->reload_timeout_s;
    spec.verify_timeout_s = cfg->verify_timeout_s;
    spec.kill_grace_s = cfg->kill_grace_s;
    if (gc_json_only_keys(req, resident_fields, err) < 0 ||
        gc_json_get_str(req, "name", true, GC_NAME_MAX, &name, err) < 0 ||
        gc_json_get_str(req, "protocol", true, 15, &protocol, err) < 0 ||
        copy_str(req, "url", sizeof(spec.url), spec.url, err) < 0 ||
        gc_json_get_int(req, "pid", false, 1, INT_MAX, &pid, err) < 0 ||
        gc_json_get_int(req, "gpu", false, 0, GC_GPUS_MAX - 1, &gpu, err) < 0 ||
        gc_json_get_bytes(req, "bytes", false, RESIDENT_BYTES_MAX, &bytes, err) < 0 ||
        gc_json_get_int(req, "priority", false, -PRIORITY_LIMIT, PRIORITY_LIMIT, &priority, err) <
            0 ||
        gc_json_get_str(req, "restore", false, 16, &restore, err) < 0 ||
        gc_json_get_str(req, "on_stuck", false, 16, &on_stuck, err) < 0 ||
        gc_json_get_seconds(req, "unload_timeout_s", false, 0.1, TIMEOUT_MAX_S,
                            &spec.unload_timeout_s, err) < 0 ||
        gc_json_get_seconds(req, "reload_timeout_s", false, 0.1, TIMEOUT_MAX_S,
                            &spec.reload_timeout_s, err) < 0 ||
        gc_json_get_seconds(req, "verify_timeout_s", false, 0.1, TIMEOUT_MAX_S,
                            &spec.verify_timeout_s, err) < 0 ||
        gc_json_get_seconds(req, "kill_grace_s", false, 0, 600, &spec.kill_grace_s, err) < 0 ||
        copy_str(req, "unload", sizeof(spec.unload_req), spec.unload_req, err) < 0 ||
        copy_str(req, "reload", sizeof(spec.reload_req), spec.reload_req, err) < 0 ||
        copy_str(req, "cleanup", sizeof(spec.cleanup_req), spec.cleanup_req, err) < 0 ||
        copy_str(req, "health", sizeof(spec.health_req), spec.health_req, err) < 0 ||
        copy_str(req, "command", sizeof(spec.command), spec.command, err) < 0 ||
        copy_str(req, "model", sizeof(spec.model), spec.model, err) < 0 ||
        gc_json_get_seconds(req, "drain_timeout_s", false, 0, TIMEOUT_MAX_S, &drain_timeout_s,
                            err) < 0 ||
        gc_json_get_bool(req, "loaded", false, &loaded, err) < 0 ||
        gc_json_get_str(req, "level", false, GC_LEVEL_NAME_MAX, &level_name, err) < 0 ||
        levels_parse(req, json_object_get(req, "bytes") != NULL, &bytes, &r, err) < 0)
        return GC_EINVAL;

#define REG_FAIL(...)                                                                              \
    do {                                                                                           \
        snprintf(err->msg, sizeof(err->msg), __VA_ARGS__);                                         \
        return GC_EINVAL;                                                                          \
    } while (0)

    if (!gc_name_valid(name))
        REG_FAIL("name must match [A-Za-z0-9._-]{1,%d}", GC_NAME_MAX);
    adapter = gc_adapter_find(protocol);
    if (adapter == NULL)
        REG_FAIL("unknown protocol '%s' (known: %s)", protocol, gc_adapter_names());
    if (adapter->needs_url && spec.url[0] == '\0')
        REG_FAIL("protocol '%s' needs a 'url'", protocol);
    if (adapter->needs_model && !adapter->model_optional && spec.model[0] == '\0')
        REG_FAIL("protocol '%s' needs the 'model' this resident is (the server holds several)",
                 protocol);
    if (!adapter->needs_model && spec.model[0] != '\0')
        REG_FAIL("protocol '%s' takes no 'model': the server is one resident", protocol);
    if (spec.model[0] != '\0' && !gc_adapter_model_valid(spec.model))
        REG_FAIL("'model' must be printable ASCII without spaces, quotes, '\\', '?', '#' or '%%'");
    if (spec.url[0] != '\0' && gc_url_check_callback(spec.url, cfg->allow_remote_callbacks,
                                                     err->msg, sizeof(err->msg)) < 0)
        return GC_EINVAL;
    if (adapter->takes_requests) {
        if (!request_spec_valid(spec.unload_req) || !request_spec_valid(spec.reload_req))
            REG_FAIL("protocol 'http' needs 'unload' and 'reload' like \"POST /sleep\"");
        if ((spec.cleanup_req[0] && !request_spec_valid(spec.cleanup_req)) ||
            (spec.health_req[0] && !request_spec_valid(spec.health_req)))
            REG_FAIL("'cleanup' and 'health' must look like \"GET /health\"");
    }
    if (adapter->runs_command) {
        if (spec.command[0] == '\0')
            REG_FAIL("protocol 'process' needs a start 'command'");
        if (r.nlevels > 2)
            REG_FAIL("protocol 'process' can only stop the process: no levels between its "
                     "first and its last");
        if (spec.health_req[0] && !request_spec_valid(spec.health_req))
            REG_FAIL("'health' must look like \"GET /health\"");
    }
    if (level_name != NULL) {
        /* Where it is now among its levels: loaded at the first, else unloaded there. */
        level = gc_resident_level_find(&r, level_name);
        if (level < 0)
            REG_FAIL("'level' must name one of its levels");
        if (level == 0 && !loaded)
            REG_FAIL("'loaded': false and 'level' at its first level disagree");
        loaded = level == 0;
    }
    if (gpu >= (int64_t)ngpus)
        REG_FAIL("no GPU %lld: this coordinator has %u", (long long)gpu, ngpus);
    /* A lazy server comes back only when a request makes it load: restoring it ahead
     * of one would only tell the ledger its memory is back when it is not. */
    if (adapter->reloads_lazily)
        r.restore = GC_RESTORE_DEMAND;
    if (restore != NULL && gc_restore_parse(restore, &r.restore) < 0)
        REG_FAIL("restore must be auto, demand or never");
    if (on_stuck != NULL && gc_on_stuck_parse(on_stuck, &r.on_stuck) < 0)
        REG_FAIL("on_stuck must be fail or kill");
    if (r.on_stuck == GC_STUCK_KILL && pid == 0)
        REG_FAIL("on_stuck=kill needs the resident's pid");
#undef REG_FAIL
    /* A process resident's command runs as the coordinator's user. */
    if (adapter->runs_command && !caller->trusted) {
        snprintf(err->msg, sizeof(err->msg),
                 "protocol 'process' runs a command as the coordinator's user: declare it in the "
                 "config, or register it as root or that user (Unix socket or loopback), or with "
                 "the bearer token");
        return GC_EFORBIDDEN;
    }
    /* The coordinator may signal the pid (process, on_stuck=kill): only its owner may name
     * it. Recovery judges the journaled pid itself (with its start time). */
    if (pid > 0 && check_pid) {
        rc = gc_caller_check_pid(caller, (pid_t)pid, &pid_start, err->msg, sizeof(err->msg));
        if (rc < 0)
            return rc;
    }

    snprintf(r.name, sizeof(r.name), "%s", name);
    snprintf(r.protocol, sizeof(r.protocol), "%s", protocol);
    snprintf(r.url, sizeof(r.url), "%s", spec.url);
    r.in_use = true;
    r.pid = (pid_t)pid;
    r.pid_start_ticks = pid_start ? pid_start : pid ? gc_proc_start_ticks((pid_t)pid) : 0;
    r.gpu = (unsigned)gpu;
    r.bytes = bytes;
    r.priority = (int)priority;
    r.unload_timeout_s = spec.unload_timeout_s;
    r.reload_timeout_s = spec.reload_timeout_s;
    r.verify_timeout_s = spec.verify_timeout_s;
    r.drain_timeout_s = drain_timeout_s;
    r.restartable = adapter->restartable;
    /* A process resident with no pid given is not running yet; a server registering
     * before it allocates its models (loaded: false) asks for them with a demand. */
    r.state = (adapter->restartable && pid == 0) || !loaded ? GC_RES_UNLOADED : GC_RES_LOADED;
    /* Unloaded: at the level it named, else all the way. */
    if (r.state == GC_RES_UNLOADED)
        r.level = level > 0 ? (unsigned)level : r.nlevels - 1;
    /* Never started: unloaded_for_s stays null (views.c). */
    r.unloaded_since_ms = loaded ? 0 : now_ms;
    r.last_used_ms = now_ms;
    snprintf(spec.name, sizeof(spec.name), "%s", name);
    snprintf(spec.protocol, sizeof(spec.protocol), "%s", protocol);
    if (adapter->runs_command) {
        size_t dlen = strlen(cfg->state_dir), nlen = strlen(name);
        /* state_dir is at most 511 bytes and name 64: the path always fits. */
        memcpy(spec.log_path, cfg->state_dir, dlen);
        spec.log_path[dlen] = '/';
        memcpy(spec.log_path + dlen + 1, name, nlen);
        memcpy(spec.log_path + dlen + 1 + nlen, ".log", 5);
    }
    ret->r = r;
    ret->spec = spec;
    ret->adapter = adapter;
    ret->loaded = loaded;
    return 0;
}
