/* main.c - validation-server: scores text-to-3D models; a gpucoordd `seed` resident. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/size.h"
#include "gpucoord.h"
#include "servers/validation/validation.h"

static const char usage_extra[] =
    "The founding validation server (reference models; see README).\n"
    "Environment:\n"
    "  VALIDATION_PORT              port (default 10006; --port wins)\n"
    "  VALIDATION_MODEL_BYTES       GPU memory its models hold (default 4.7Gi)\n"
    "  VALIDATION_ACTIVATION_BYTES  scratch per validation, cached (default 64Mi)\n"
    "  VALIDATION_RESIDENT_NAME     its name at the coordinator (default validation)\n"
    "  VALIDATION_PRIORITY          its resident priority (default 10)\n"
    "  VALIDATION_DEMAND_WAIT_S     how long a request waits for unloaded models (default 300)\n"
    "  VALIDATION_DEVICE            GPU index (default 0)\n"
    "  VALIDATION_BODY_MAX          largest request body (default 64Mi)\n"
    "  VALIDATION_BODIES_MAX        request body bytes handled at once; past it, 503\n"
    "                               (default 128Mi: two of the largest)\n"
    "  VALIDATION_LEVELS            0: declare no levels (only loaded/off; default 1)\n"
    "  GPUCOORD_URL                 the coordinator (default http://127.0.0.1:10010)\n"
    "  GPUCOORD_DISABLE=1           run without the coordinator (no registration)\n";

/* The three reference models and their shares of VALIDATION_MODEL_BYTES. */
static const struct {
    const char *name;
    double share;
} model_layout[VALIDATION_MODELS] = {
    {"clip-alignment", 0.50},
    {"iqa", 0.30},
    {"renderer", 0.20},
};

static int setup(struct validation_server *vs, char *err, size_t errlen)
{
    const char *name = getenv("VALIDATION_RESIDENT_NAME");
    const char *url = getenv("GPUCOORD_URL");
    double priority, device;
    bool disable;
    uint64_t left;
    int rc;

    if (gc_env_size("VALIDATION_MODEL_BYTES", 5046586572ULL, &vs->model_bytes, err, errlen) < 0 ||
        gc_env_size("VALIDATION_ACTIVATION_BYTES", 64ULL << 20, &vs->activation_bytes, err,
                    errlen) < 0 ||
        gc_env_double("VALIDATION_DEMAND_WAIT_S", 300, 0, 86400, &vs->demand_wait_s, err, errlen) <
            0 ||
        gc_env_double("VALIDATION_PRIORITY", 10, -1e6, 1e6, &priority, err, errlen) < 0 ||
        gc_env_double("VALIDATION_DEVICE", 0, 0, 15, &device, err, errlen) < 0 ||
        gc_env_bool("GPUCOORD_DISABLE", false, &disable, err, errlen) < 0 ||
        gc_env_bool("VALIDATION_LEVELS", true, &vs->levels, err, errlen) < 0)
        return GC_EINVAL;
    if (vs->model_bytes < VALIDATION_MODELS * 4096ULL) {
        snprintf(err, errlen, "VALIDATION_MODEL_BYTES must be at least 12Ki");
        return GC_EINVAL;
    }
    vs->priority = (int)priority;
    vs->coordination = !disable;
    snprintf(vs->resident_name, sizeof(vs->resident_name), "%s",
             name && name[0] ? name : "validation");
    snprintf(vs->coordinator_url, sizeof(vs->coordinator_url), "%s",
             url && url[0] ? url : "http://127.0.0.1:10010");

    rc = gc_model_store_open(&vs->store, (int)device, 0, err, errlen);
    if (rc < 0)
        return rc;
    left = vs->model_bytes;
    for (int i = 0; i < VALIDATION_MODELS; i++) {
        uint64_t bytes = i == VALIDATION_MODELS - 1
                             ? left
                             : (uint64_t)((double)vs->model_bytes * model_layout[i].share);
        left -= bytes;
        /* keep_backup: the pinned host copy is allocated now, never on the unload path. */
        rc = gc_model_add(&vs->store, model_layout[i].name, bytes, 0x5eed, true, &vs->models[i],
                          err, errlen);
        if (rc < 0)
            return rc;
        vs->reduced_bytes += gc_model_reduced_bytes(&vs->store, vs->models[i]);
    }
    /* The models go on the GPU later: through the coordinator, or on their own. */
    return gc_scorer_new(&vs->scorer);
}

/* Without a coordinator: the models go on the GPU now, as a standalone server. */
static int load_standalone(struct validation_server *vs, char *err, size_t errlen)
{
    enum gc_model_origin origin;
    char size[GC_SIZE_BUF];
    int rc;

    pthread_rwlock_wrlock(&vs->models_lock);
    rc = validation_models_reload(vs, &origin, err, errlen);
    pthread_rwlock_unlock(&vs->models_lock);
    if (rc == 0)
        gc_info("models loaded: %s on the GPU (%s)",
                gc_size_format(vs->model_bytes, size, sizeof(size)),
                gc_model_store_retains_data(&vs->store)
                    ? "checksummed"
                    : "device keeps no data: checksums skipped");
    return rc;
}

int main(int argc, char **argv)
{
    static struct validation_server vs;
    struct gc_http_server_config hc = {0};
    struct gc_http_server *http = NULL;
    char err[512];
    uint64_t body_max, bodies_max;
    int rc;

    gc_log_init("validation-server", GC_LOG_INFO);
    rc = gc_server_parse_args(argc, argv, "validation-server", usage_extra, VALIDATION_PORT,
                              "VALIDATION_PORT", &vs.args);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (gc_env_size("VALIDATION_BODY_MAX", VALIDATION_BODY_MAX_DEFAULT, &body_max, err,
                    sizeof(err)) < 0) {
        fprintf(stderr, "validation-server: %s\n", err);
        return 2;
    }
    if (gc_env_size("VALIDATION_BODIES_MAX", 2 * body_max, &bodies_max, err, sizeof(err)) < 0) {
        fprintf(stderr, "validation-server: %s\n", err);
        return 2;
    }
    if (bodies_max < body_max) {
        fprintf(stderr, "validation-server: VALIDATION_BODIES_MAX must be at least "
                        "VALIDATION_BODY_MAX (the largest body must fit)\n");
        return 2;
    }
    gc_server_block_signals();
    {
        /* Writer-preferring: an unload waits for validations in flight, not for a
         * stream of new ones that keeps the read side always held. */
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&vs.models_lock, &attr);
        pthread_rwlockattr_destroy(&attr);
    }
    pthread_mutex_init(&vs.store_lock, NULL);
    rc = setup(&vs, err, sizeof(err));
    if (rc < 0) {
        gc_error("%s", err);
        return rc == GC_EINVAL ? 2 : 1;
    }
    if (!vs.coordination) {
        gc_warn("GPUCOORD_DISABLE=1: not registering with a coordinator");
        /* Before listening: no request finds the models still coming. */
        if (load_standalone(&vs, err, sizeof(err)) < 0) {
            gc_error("%s", err);
            return 1;
        }
    }
    hc.host = vs.args.host;
    hc.port = vs.args.port;
    hc.body_max = (size_t)body_max;
    /* Each request costs about twice its body while it is scored (the body, its decoded
     * PLY or the splats parsed from it): the bodies in flight bound the memory. */
    hc.bodies_max = (size_t)bodies_max;
    hc.conn_limit = 256;
    hc.handler = validation_handle;
    hc.ctx = &vs;
    if (gc_http_server_start(&hc, &http, err, sizeof(err)) < 0) {
        gc_error("%s", err);
        return 1;
    }
    gc_server_self_url(&vs.args, gc_http_server_port(http), vs.self_url, sizeof(vs.self_url));
    gc_info("listening on %s:%d", vs.args.host, gc_http_server_port(http));
    /* Registered first, loaded after: models allocated before the coordinator made
     * room would take memory a lease may hold. The coordinator loads them through
     * /reload_models/ (listening already) once there is room. */
    if (vs.coordination) {
        if (validation_link_register_unloaded(&vs) < 0) {
            gc_warn("no coordinator at %s took the registration: loading the models standalone",
                    vs.coordinator_url);
            if (load_standalone(&vs, err, sizeof(err)) < 0) {
                gc_error("%s", err);
                gc_http_server_stop(http);
                return 1;
            }
        }
        validation_link_start(&vs);
    }

    gc_server_wait_signal();
    gc_info("stopping");
    if (vs.coordination)
        validation_link_stop(&vs);
    gc_http_server_stop(http);
    gc_scorer_free(vs.scorer);
    gc_model_store_close(&vs.store);
    return 0;
}
