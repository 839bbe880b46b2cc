/* coord_residents.c - registering residents and unloading, reloading and demanding
 * them by request (API operations). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/names.h"
#include "common/proc.h"
#include "common/size.h"
#include "common/url.h"
#include "coord/record.h"
#include "coord/transition.h"
#include "daemon/coord.h"

#define RESIDENT_BYTES_MAX (1ULL << 50)
#define PRIORITY_LIMIT     1000000
#define TIMEOUT_MAX_S      3600.0
/* An unload by request waits for its step this much past the sum of its timeouts
 * (a kill's wait for the driver is 30 s). */
#define STEP_SLACK_S 35.0
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

int gc_coord_register_locked(struct gc_coord *coord, const struct gc_caller *caller,
                             const json_t *req, struct gc_jerr *err, struct gc_resident **ret)
{
    const struct gc_config *cfg = coord->config;
    struct gc_resident r, *slot;
    struct gc_resident_spec spec;
    pid_t old_pid = 0;
    bool fresh;
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
    if (strcmp(protocol, "http") == 0) {
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
    if (gpu >= (int64_t)coord->ledger->ngpus)
        REG_FAIL("no GPU %lld: this coordinator has %u", (long long)gpu, coord->ledger->ngpus);
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
    if (pid > 0 && !coord->recovering) {
        rc = gc_caller_check_pid(caller, (pid_t)pid, &pid_start, err->msg, sizeof(err->msg));
        if (rc < 0)
            return rc;
    }

    slot = gc_ledger_resident_find(coord->ledger, name);
    if (slot != NULL &&
        !gc_caller_owns(caller, coord->ext[gc_coord_resident_index(coord, slot)].owner)) {
        snprintf(err->msg, sizeof(err->msg), "resident '%s' was registered by another caller",
                 name);
        return GC_EFORBIDDEN;
    }
    fresh = slot == NULL;
    if (slot != NULL && slot->busy) {
        snprintf(err->msg, sizeof(err->msg), "resident '%s' is %s; register again when it is done",
                 name, gc_resident_state_name(slot->state));
        return GC_ECONFLICT;
    }
    if (fresh) {
        slot = gc_ledger_resident_alloc(coord->ledger);
        if (slot == NULL) {
            snprintf(err->msg, sizeof(err->msg), "at most %d residents", GC_RESIDENTS_MAX);
            return GC_ELIMIT;
        }
    } else {
        /* Re-registration replaces it but keeps its history. */
        r.unloads = slot->unloads;
        r.reloads = slot->reloads;
        old_pid = slot->pid;
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
    r.state =
        (adapter->restartable && pid == 0) || !loaded ? GC_RES_UNLOADED : GC_RES_LOADED;
    /* Unloaded: at the level it named, else all the way. */
    if (r.state == GC_RES_UNLOADED)
        r.level = level > 0 ? (unsigned)level : r.nlevels - 1;
    /* Never started: unloaded_for_s stays null (views.c). */
    r.unloaded_since_ms = loaded ? 0 : gc_mono_ms();
    r.last_used_ms = gc_mono_ms();
    /* Journaled before the ledger changes: a registration a restart would not know of is
     * refused. At start, the recovery's compaction records it instead. */
    if (gc_coord_journal_locked(coord, gc_record_resident(&r, req, caller->key), true) < 0 &&
        !coord->starting) {
        snprintf(err->msg, sizeof(err->msg),
                 "cannot write the journal in '%.180s': registration refused", cfg->state_dir);
        if (fresh)
            gc_ledger_resident_remove(coord->ledger, slot);
        return GC_EJOURNAL;
    }
    *slot = r;
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
    {
        struct gc_resident_ext *ext = &coord->ext[gc_coord_resident_index(coord, slot)];
        json_decref(ext->registration);
        ext->registration = json_deep_copy(req);
        ext->spec = spec;
        if (fresh)
            memset(&ext->step, 0, sizeof(ext->step));
        snprintf(ext->owner, sizeof(ext->owner), "%s", caller->key);
    }
    gc_coord_watch_locked(coord, slot->pid);
    if (old_pid > 0 && old_pid != slot->pid)
        gc_coord_watch_release_locked(coord, old_pid); /* a restarted server's old process */
    gc_events_add(&coord->events, gc_real_s(), "resident_registered", name,
                  "%s at %s, pid %d, GPU %u, priority %d", protocol, spec.url[0] ? spec.url : "-",
                  (int)pid, (unsigned)gpu, (int)priority);
    *ret = slot;
    return 0;
}

void gc_coord_resident_register(struct gc_coord *coord, const struct gc_caller *caller,
                                const json_t *req, struct gc_api_answer *ans)
{
    struct gc_jerr err;
    struct gc_resident *r;
    int rc;

    gc_coord_lock_fresh(coord);
    rc = gc_coord_register_locked(coord, caller, req, &err, &r);
    if (rc < 0) {
        gc_api_error(ans, rc, "%s", err.msg);
    } else {
        gc_coord_kick_locked(coord);
        json_decref(ans->body);
        ans->status = 201;
        ans->body = gc_view_resident_locked(coord, r);
    }
    pthread_mutex_unlock(&coord->lock);
}

/* Ends demand leases for a resident (it was deleted). */
static void end_demands_locked(struct gc_coord *coord, const char *name, const char *why)
{
    struct gc_lease *d;

    while ((d = gc_ledger_demand_find(coord->ledger, name)) != NULL)
        gc_coord_lease_end_locked(coord, d, GC_LEASE_FAILED, GC_EUNAVAIL, why);
}

/* Answers 403 unless caller may change resident r (its registrant, or trusted). */
static bool may_change_locked(struct gc_coord *coord, const struct gc_caller *caller,
                              const struct gc_resident *r, struct gc_api_answer *ans)
{
    if (gc_caller_owns(caller, coord->ext[gc_coord_resident_index(coord, r)].owner))
        return true;
    gc_api_error(ans, GC_EFORBIDDEN, "resident '%s' was registered by another caller", r->name);
    return false;
}

void gc_coord_resident_delete(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, struct gc_api_answer *ans)
{
    struct gc_resident *r;
    pid_t pid;

    gc_coord_lock_fresh(coord);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
    } else if (!may_change_locked(coord, caller, r, ans)) {
        /* answered */
    } else if (r->busy) {
        gc_api_error(ans, GC_ECONFLICT, "resident '%s' is %s; try again when it is done", name,
                     gc_resident_state_name(r->state));
    } else if (gc_coord_journal_locked(coord, gc_record_resident_delete(name),
                                       true) < 0) {
        /* A deletion a restart would not know of is refused: the resident stays. */
        gc_api_error(ans, GC_EJOURNAL, "cannot write the journal in '%s': deletion refused",
                     coord->config->state_dir);
    } else {
        unsigned idx = gc_coord_resident_index(coord, r);
        pid = r->pid;
        gc_ledger_resident_remove(coord->ledger, r);
        json_decref(coord->ext[idx].registration);
        memset(&coord->ext[idx], 0, sizeof(coord->ext[idx]));
        end_demands_locked(coord, name, "resident was deleted");
        gc_events_add(&coord->events, gc_real_s(), "resident_deleted", name, "pid %d", (int)pid);
        gc_coord_watch_release_locked(coord, pid);
        gc_coord_kick_locked(coord);
        json_decref(ans->body);
        ans->status = 204;
        ans->body = NULL;
    }
    pthread_mutex_unlock(&coord->lock);
}

/* May this resident start an unload (to level) or a reload by hand in its state? */
static bool step_allowed(const struct gc_resident *r, bool unload, unsigned level)
{
    if (r->busy)
        return false;
    if (unload)
        return (r->state == GC_RES_LOADED || r->state == GC_RES_UNLOADED) &&
               gc_resident_level(r) < level;
    return r->state == GC_RES_UNLOADED || r->state == GC_RES_FAILED ||
           (r->state == GC_RES_GONE && r->restartable);
}

static const char *const unload_fields[] = {"level", NULL};

/* An unload asked for by hand: run in the calling thread, answered once verified (or
 * with why it could not be). */
void gc_coord_resident_unload(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, const json_t *req, struct gc_api_answer *ans)
{
    struct gc_resident *r;
    struct gc_jerr err;
    const char *level_name = NULL;
    enum gc_resident_state prev;
    const struct gc_step *step;
    struct gc_nvml_reading *reading;
    uint64_t step_id;
    int64_t deadline;
    unsigned level;

    if (req != NULL &&
        (gc_json_only_keys(req, unload_fields, &err) < 0 ||
         gc_json_get_str(req, "level", false, GC_LEVEL_NAME_MAX, &level_name, &err) < 0)) {
        gc_api_error(ans, GC_EINVAL, "%s", err.msg);
        return;
    }
    /* A fresh reading for what it uses before (read before the lock). */
    reading = gc_coord_reading_get(coord);
    if (reading == NULL) {
        gc_api_error(ans, GC_ENOMEM, "out of memory");
        return;
    }
    gc_coord_read_nvml(coord, reading);
    pthread_mutex_lock(&coord->lock);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
        goto out_unlock;
    }
    if (!may_change_locked(coord, caller, r, ans))
        goto out_unlock;
    level = gc_resident_nlevels(r) - 1;
    if (level_name != NULL) {
        int found = gc_resident_level_find(r, level_name);
        if (found < 0) {
            char names[GC_LEVELS_MAX * (GC_LEVEL_NAME_MAX + 2)] = "";
            for (unsigned i = 0; i < gc_resident_nlevels(r); i++) {
                size_t len = strlen(names);
                snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
                         gc_resident_level_name(r, i));
            }
            gc_api_error(ans, GC_EINVAL, "resident '%s' has no level '%s' (its levels: %s)", name,
                         level_name, names);
            goto out_unlock;
        }
        level = (unsigned)found;
        if (!r->busy && gc_resident_level(r) == level &&
            (r->state == GC_RES_LOADED || r->state == GC_RES_UNLOADED)) {
            json_decref(ans->body); /* already there */
            ans->status = 200;
            ans->body = gc_view_resident_locked(coord, r);
            goto out_unlock;
        }
    }
    if (!step_allowed(r, true, level)) {
        if (level_name != NULL && !r->busy &&
            (r->state == GC_RES_LOADED || r->state == GC_RES_UNLOADED))
            gc_api_error(ans, GC_ECONFLICT,
                         "resident '%s' is at level '%s', already below '%s'; a reload brings "
                         "it back up",
                         name, gc_resident_level_name(r, gc_resident_level(r)),
                         gc_resident_level_name(r, level));
        else
            gc_api_error(ans, GC_ECONFLICT,
                         "resident '%s' is %s%s; only a loaded resident can be unloaded", name,
                         gc_resident_state_name(r->state), r->busy ? " and busy" : "");
        goto out_unlock;
    }
    gc_coord_kick_with_locked(coord, reading);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL || !step_allowed(r, true, level)) {
        gc_api_error(ans, GC_ECONFLICT, "resident '%s' changed state; try again", name);
        goto out_unlock;
    }
    prev = gc_resident_unload_begin(r, level, gc_ledger_resident_counted(coord->ledger, r));
    /* Not asked for until journaled: a restart must know a step may have begun. */
    if (gc_coord_journal_resident_locked(coord, r) < 0) {
        gc_resident_step_undo(r, prev);
        gc_api_error(ans, GC_EJOURNAL, "cannot write the journal in '%s': unload refused",
                     coord->config->state_dir);
        goto out_unlock;
    }
    gc_events_add(&coord->events, gc_real_s(), "resident_unloading", name,
                  "by request, to level '%s'", gc_resident_level_name(r, level));
    gc_step_unload_start(coord, r, "");
    step = &coord->ext[gc_coord_resident_index(coord, r)].step;
    step_id = step->id;
    /* The step is bounded by its own timeouts: asking, verifying, a cleanup request,
     * then a kill and the driver's release, or a reload where it stands. */
    deadline = gc_mono_ms() + (int64_t)((r->unload_timeout_s * 2 + r->verify_timeout_s * 2 +
                                         coord->config->free_lag_s + coord->ext[gc_coord_resident_index(coord, r)].spec.kill_grace_s +
                                         STEP_SLACK_S) *
                                        1000.0);
    while (step->outcome_id != step_id && gc_coord_wait_locked(coord, deadline)) {
        r = gc_ledger_resident_find(coord->ledger, name);
        if (r == NULL)
            break;
    }
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "resident '%s' was deleted meanwhile", name);
    } else if (step->outcome_id != step_id) {
        gc_api_error(ans, GC_EUNAVAIL, "resident '%s' is %s: the unload did not finish in time",
                     name, gc_resident_state_name(r->state));
    } else if (step->outcome_rc < 0) {
        gc_api_error(ans, step->outcome_rc, "%s", step->outcome_why);
    } else {
        json_decref(ans->body);
        ans->status = 200;
        ans->body = gc_view_resident_locked(coord, r);
    }
out_unlock:
    pthread_mutex_unlock(&coord->lock);
    gc_coord_reading_put(coord, reading);
}

/* The active demand for resident r, made now (counted, announced) when it has none;
 * NULL when the queue is full. */
static struct gc_lease *demand_get_locked(struct gc_coord *coord, struct gc_resident *r,
                                          int priority, const char *why)
{
    struct gc_lease *d = gc_ledger_demand_find(coord->ledger, r->name);

    if (d != NULL)
        return d;
    if (gc_ledger_lease_new(
            coord->ledger, GC_KIND_DEMAND, r->name, 0, (int)r->gpu, gc_resident_missing_bytes(r),
            priority > r->priority ? priority : r->priority, 0, gc_mono_ms(), &d) < 0)
        return NULL;
    d->evict_priority = r->priority; /* it evicts only what ranks below it */
    coord->counters.demands++;
    gc_events_add(&coord->events, gc_real_s(), "resident_demand", r->name, "%s", why);
    return d;
}

/*
 * Whether a wait for resident name to come back (its demand id, "" for none) has an
 * answer: loaded (200, the resident), deleted (404), or failed, gone or its demand
 * failed (503, or journal_failed when the journal refused it). True with ans set;
 * false while it should go on waiting, with *ret_r the resident.
 */
static bool demand_settled_locked(struct gc_coord *coord, const char *name, const char *id,
                                  struct gc_resident **ret_r, struct gc_api_answer *ans)
{
    struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
    const struct gc_lease *h;

    *ret_r = r;
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "resident '%s' was deleted meanwhile", name);
        return true;
    }
    if (r->state == GC_RES_LOADED) {
        json_decref(ans->body);
        ans->status = 200;
        ans->body = gc_view_resident_locked(coord, r);
        return true;
    }
    h = id[0] ? gc_ledger_lease_lookup(coord->ledger, id) : NULL;
    /* A process resident that is gone comes back by its start command: it waits. */
    if (r->state == GC_RES_FAILED ||
        (r->state == GC_RES_GONE && !r->restartable) ||
        (h != NULL && h->state == GC_LEASE_FAILED)) {
        gc_api_error(ans, h != NULL && h->error == GC_EJOURNAL ? GC_EJOURNAL : GC_EUNAVAIL,
                     "resident '%s' could not be reloaded: %s", name,
                     r->reason[0] ? r->reason : (h ? h->reason : ""));
        return true;
    }
    return false;
}

/*
 * A reload asked for by hand is a demand: it waits its turn in the queue like any
 * lease, so it never takes room a granted lease holds. It waits up to the resident's
 * reload_timeout_s for the room; when the room does not come, the demand it made is
 * withdrawn and the answer is 409 with what holds the room. Once the reload has
 * started, it waits for it to finish (the job is bounded by its own timeouts).
 */
void gc_coord_resident_reload(struct gc_coord *coord, const struct gc_caller *caller,
                              const char *name, struct gc_api_answer *ans)
{
    struct gc_resident *r;
    struct gc_lease *d;
    int64_t deadline, hard_deadline;
    unsigned attempts;
    double backoff_s = 0, step_s;
    bool ours;
    char id[GC_LEASE_ID_MAX];

    gc_coord_lock_fresh(coord);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
        goto out_unlock;
    }
    if (!may_change_locked(coord, caller, r, ans))
        goto out_unlock;
    if (!step_allowed(r, false, 0)) {
        gc_api_error(ans, GC_ECONFLICT,
                     "resident '%s' is %s%s; only an unloaded or failed resident can be reloaded",
                     name, gc_resident_state_name(r->state), r->busy ? " and busy" : "");
        goto out_unlock;
    }
    if (r->state != GC_RES_UNLOADED) {
        /* Failed (or a process resident that is gone): a fresh start, from unloaded. */
        struct gc_resident before = *r;
        gc_resident_restart(r, gc_mono_ms());
        if (gc_coord_journal_resident_locked(coord, r) < 0) {
            *r = before;
            gc_api_error(ans, GC_EJOURNAL, "cannot write the journal in '%s': reload refused",
                         coord->config->state_dir);
            goto out_unlock;
        }
    }
    r->last_used_ms = gc_mono_ms();
    attempts = coord->config->reload_attempts ? coord->config->reload_attempts : 1;
    deadline = gc_mono_ms() + (int64_t)(r->reload_timeout_s * 1000.0);
    /* Past the wait for room, the job's own bounds: its attempts, their backoff, the
     * verification (each attempt waits twice as long as the one before). */
    step_s = coord->config->reload_backoff_s;
    for (unsigned a = 1; a < attempts; a++, step_s *= 2)
        backoff_s += step_s;
    hard_deadline =
        deadline +
        (int64_t)((r->reload_timeout_s * (attempts + 1) + backoff_s + r->verify_timeout_s) *
                  1000.0);
    ours = gc_ledger_demand_find(coord->ledger, name) == NULL;
    d = demand_get_locked(coord, r, GC_LEASE_PRIORITY_DEFAULT, "reload by request");
    if (d == NULL) {
        gc_api_error(ans, GC_ELIMIT, "the queue is full");
        goto out_unlock;
    }
    snprintf(id, sizeof(id), "%s", d->id);
    /* demand_get_locked announced it (resident_demand); resident_reloading comes when
     * the reload really starts, journaled first. */
    gc_coord_kick_locked(coord);
    for (;;) {
        if (demand_settled_locked(coord, name, id, &r, ans))
            goto out_unlock;
        d = gc_ledger_lease_find(coord->ledger, id);
        if (gc_mono_ms() >= deadline && r->state == GC_RES_UNLOADED && !r->busy &&
            (d == NULL || d->state == GC_LEASE_QUEUED)) {
            char why[GC_REASON_MAX];
            gc_sched_room_why(coord->ledger, r->gpu, gc_resident_missing_bytes(r), why,
                              sizeof(why));
            if (ours && d != NULL)
                gc_coord_lease_end_locked(coord, d, GC_LEASE_FAILED, GC_ECONFLICT, why);
            gc_api_error(ans, GC_ECONFLICT, "resident '%s' cannot come back within %.0f s: %s",
                         name, r->reload_timeout_s, why);
            goto out_unlock;
        }
        if (gc_mono_ms() < deadline)
            gc_coord_wait_locked(coord, deadline); /* the checks above judge its end */
        else if (!gc_coord_wait_locked(coord, hard_deadline))
            break;
        if (coord->stopping)
            break;
    }
    /* Stopping, or the reload job overran every bound it has. */
    gc_api_error(ans, GC_EUNAVAIL, "resident '%s' is %s: the reload did not finish in time", name,
                 gc_resident_state_name(r->state));
out_unlock:
    pthread_mutex_unlock(&coord->lock);
}

/*
 * A resident demanded while the ledger says it is loaded: asks it (the lock is
 * dropped around the question). One that reports its models unloaded - it was
 * unloaded outside the coordinator, or finished an unload the coordinator had
 * given up on - is marked unloaded, so that the demand reloads it. Returns the
 * resident again, or NULL when it was deleted meanwhile.
 */
static struct gc_resident *probe_loaded_locked(struct gc_coord *coord, const char *name)
{
    struct gc_resident *r = gc_ledger_resident_find(coord->ledger, name);
    const struct gc_adapter *adapter = gc_adapter_find(r->protocol);
    struct gc_resident_spec spec = coord->ext[gc_coord_resident_index(coord, r)].spec;
    struct gc_adapter_result res = {.models_loaded = -1};
    int rc, level;

    if (adapter == NULL || adapter->restartable)
        return r; /* a running process resident is loaded by definition */
    spec.pid = r->pid;
    pthread_mutex_unlock(&coord->lock);
    rc = adapter->health(&spec, &res);
    pthread_mutex_lock(&coord->lock);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL || rc < 0 || r->state != GC_RES_LOADED || r->busy)
        return r;
    /* Serving, but at a level below its first (moved there by hand): also to reload. */
    level = res.level[0] ? gc_resident_level_find(r, res.level) : -1;
    if (res.models_loaded != 0 && level <= 0)
        return r;
    gc_resident_reported(r, level, gc_mono_ms());
    gc_events_add(&coord->events, gc_real_s(), "resident_probed", name,
                  "marked loaded, but it reports level '%s': reloading it on demand",
                  gc_resident_level_name(r, r->level));
    gc_coord_journal_resident_locked(coord, r);
    return r;
}

void gc_coord_resident_demand(struct gc_coord *coord, const char *name, const json_t *req,
                              const struct gc_waiter *waiter, struct gc_api_answer *ans)
{
    static const char *const fields[] = {"wait_s", "priority", NULL};
    struct gc_jerr err;
    struct gc_resident *r;
    struct gc_lease *d;
    double wait_s = 0;
    int64_t priority = GC_LEASE_PRIORITY_DEFAULT, deadline;
    char id[GC_LEASE_ID_MAX] = "";

    if (req != NULL && (gc_json_only_keys(req, fields, &err) < 0 ||
                        gc_json_get_seconds(req, "wait_s", false, 0, coord->config->max_wait_s,
                                            &wait_s, &err) < 0 ||
                        gc_json_get_int(req, "priority", false, -PRIORITY_LIMIT, PRIORITY_LIMIT,
                                        &priority, &err) < 0)) {
        gc_api_error(ans, GC_EINVAL, "%s", err.msg);
        return;
    }
    deadline = gc_mono_ms() + (int64_t)(wait_s * 1000.0);
    gc_coord_lock_fresh(coord);
    r = gc_ledger_resident_find(coord->ledger, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "no resident '%s'", name);
        goto out_unlock;
    }
    r->last_used_ms = gc_mono_ms();
    if (r->state == GC_RES_LOADED && !r->busy)
        r = probe_loaded_locked(coord, name);
    if (r == NULL) {
        gc_api_error(ans, GC_ENOTFOUND, "resident '%s' was deleted", name);
        goto out_unlock;
    }
    if (r->state == GC_RES_FAILED ||
        (r->state == GC_RES_GONE && !r->restartable)) {
        gc_api_error(ans, GC_EUNAVAIL, "resident '%s' is %s%s%s", name,
                     gc_resident_state_name(r->state), r->reason[0] ? ": " : "", r->reason);
        goto out_unlock;
    }
    if (r->state != GC_RES_LOADED && r->state != GC_RES_RELOADING) {
        d = demand_get_locked(coord, r, (int)priority, "requests are waiting for it");
        if (d == NULL) {
            gc_api_error(ans, GC_ELIMIT, "the queue is full");
            goto out_unlock;
        }
        snprintf(id, sizeof(id), "%s", d->id);
        gc_coord_kick_locked(coord);
    }
    for (;;) {
        if (demand_settled_locked(coord, name, id, &r, ans))
            goto out_unlock;
        if (!gc_coord_wait_client_locked(coord, deadline, waiter))
            break;
    }
    d = id[0] ? gc_ledger_lease_find(coord->ledger, id) : NULL;
    json_decref(ans->body);
    ans->status = 202;
    ans->body =
        json_pack("{s:s, s:s, s:s, s:i}", "name", name, "state", gc_resident_state_name(r->state),
                  "id", id, "position", d ? (int)gc_ledger_queue_position(coord->ledger, d) : 0);
out_unlock:
    pthread_mutex_unlock(&coord->lock);
}
