/*
 * fuzz_config.c - gpucoordd's INI config, gc_config_load_file() (src/daemon/config.c)
 * over inih.
 *
 * The input is the whole file. It is written to a memfd and loaded through
 * /proc/self/fd/N, so the real entry point runs (fopen included) without
 * touching the disk. Properties: a failure is GC_EINVAL with a reason; a
 * success leaves every field inside the bounds config.c enforces (the daemon
 * relies on them), every string terminated, and every [resident.NAME]
 * registration an object with a string "name".
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "daemon/config.h"
#include "fuzz.h"

static int config_fd = -1;
static char config_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    config_fd = memfd_create("gc-fuzz-config", MFD_CLOEXEC);
    if (config_fd < 0) {
        perror("fuzz_config: memfd_create");
        exit(1);
    }
    snprintf(config_path, sizeof(config_path), "/proc/self/fd/%d", config_fd);
    return 0;
}

#define IN_RANGE(v, lo, hi) ((v) >= (lo) && (v) <= (hi))

static void check_sane(const struct gc_config *cfg)
{
    size_t i;
    json_t *reg;

    FUZZ_CHECK(strnlen(cfg->listen, sizeof(cfg->listen)) < sizeof(cfg->listen));
    FUZZ_CHECK(strnlen(cfg->socket_path, sizeof(cfg->socket_path)) < sizeof(cfg->socket_path));
    FUZZ_CHECK(strnlen(cfg->state_dir, sizeof(cfg->state_dir)) < sizeof(cfg->state_dir));
    FUZZ_CHECK(strnlen(cfg->token_file, sizeof(cfg->token_file)) < sizeof(cfg->token_file));
    FUZZ_CHECK(cfg->socket_mode <= 0777);
    FUZZ_CHECK(IN_RANGE(cfg->max_unloaded_s, 0, 86400 * 7));
    FUZZ_CHECK(IN_RANGE(cfg->starvation_s, 0, 86400));
    FUZZ_CHECK(IN_RANGE(cfg->default_ttl_s, 0.1, 86400));
    FUZZ_CHECK(IN_RANGE(cfg->max_wait_s, 0, 86400));
    FUZZ_CHECK(IN_RANGE(cfg->verify_poll_s, 0.005, 10));
    FUZZ_CHECK(IN_RANGE(cfg->idle_poll_s, 0.01, 60));
    FUZZ_CHECK(IN_RANGE(cfg->unload_timeout_s, 0.1, 3600));
    FUZZ_CHECK(IN_RANGE(cfg->reload_timeout_s, 0.1, 3600));
    FUZZ_CHECK(IN_RANGE(cfg->verify_timeout_s, 0.1, 3600));
    FUZZ_CHECK(IN_RANGE(cfg->kill_grace_s, 0, 600));
    FUZZ_CHECK(IN_RANGE(cfg->reload_backoff_s, 0, 600));
    FUZZ_CHECK(cfg->queue_max <= GC_LEASES_MAX);
    FUZZ_CHECK(cfg->leases_per_holder_max <= GC_LEASES_MAX);
    FUZZ_CHECK(cfg->conn_limit <= 65536);
    FUZZ_CHECK(cfg->reload_attempts <= 100);
    FUZZ_CHECK(IN_RANGE(cfg->body_max, 1024, (size_t)64 << 20));
    FUZZ_CHECK(IN_RANGE(cfg->compact_bytes, 1024, (size_t)64 << 20));
    FUZZ_CHECK(cfg->sync == GC_SYNC_NEVER || cfg->sync == GC_SYNC_RESIDENT ||
               cfg->sync == GC_SYNC_ALWAYS);
    FUZZ_CHECK(IN_RANGE(cfg->log_level, GC_LOG_DEBUG, GC_LOG_ERROR));
    FUZZ_CHECK(json_is_array(cfg->residents));
    for (i = 0; i < json_array_size(cfg->residents); i++) {
        reg = json_array_get(cfg->residents, i);
        FUZZ_CHECK(json_is_object(reg));
        FUZZ_CHECK(json_is_string(json_object_get(reg, "name")));
        /* What recovery sends to the registration: it must serialise. */
        char *dump = json_dumps(reg, JSON_COMPACT);
        FUZZ_CHECK(dump != NULL);
        free(dump);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gc_config cfg;
    char err[512];
    int rc;

    if (config_fd < 0)
        LLVMFuzzerInitialize(NULL, NULL);
    if (ftruncate(config_fd, 0) < 0 || pwrite(config_fd, data, size, 0) != (ssize_t)size) {
        perror("fuzz_config: cannot write the memfd");
        exit(1);
    }
    gc_config_defaults(&cfg);
    err[0] = '\0';
    rc = gc_config_load_file(&cfg, config_path, err, sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(rc == GC_EINVAL);
        FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
    } else {
        check_sane(&cfg);
    }
    gc_config_free(&cfg);
    return 0;
}
