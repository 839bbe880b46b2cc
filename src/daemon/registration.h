/*
 * registration.h - a resident's registration (POST /v1/residents, the config's
 * [resident] sections, the journal's records) checked and turned into the resident
 * it describes. Reads no engine state: it runs before the engine's lock is taken.
 */
#ifndef GC_REGISTRATION_H
#define GC_REGISTRATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/jsonx.h"
#include "coord/ledger.h"
#include "daemon/adapter.h"
#include "daemon/caller.h"
#include "daemon/config.h"

struct gc_registration {
    struct gc_resident r;         /* as registered: state and level where it says it is */
    struct gc_resident_spec spec; /* what its adapter needs */
    const struct gc_adapter *adapter;
    bool loaded;
};

/*
 * Checks req against the config's defaults and limits and the ngpus the engine has,
 * and what caller may register (a command needs a trusted caller; a pid must be the
 * caller's own, unless check_pid is false: recovery judges a journaled pid itself).
 * now_ms stamps it. GC_EINVAL, GC_EFORBIDDEN (or the pid check's error) with err
 * filled.
 */
int gc_registration_parse(const json_t *req, const struct gc_config *cfg, unsigned ngpus,
                          const struct gc_caller *caller, bool check_pid, int64_t now_ms,
                          struct gc_registration *ret, struct gc_jerr *err);

#endif
