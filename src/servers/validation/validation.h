/*
 * validation.h - the founding validation server: a `seed` resident that scores
 * text-to-3D Gaussian-splat models with reference models held in GPU memory.
 */
#ifndef GC_VALIDATION_H
#define GC_VALIDATION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/http_server.h"
#include "servers/common/model.h"
#include "servers/common/server.h"
#include "servers/validation/score.h"

#define VALIDATION_PORT   10006
#define VALIDATION_MODELS 3
/* Largest request body (a base64 PLY): about 190k splats. */
#define VALIDATION_BODY_MAX_DEFAULT (64ULL << 20)
#define VALIDATION_PROMPT_MAX_CHARS 1024

/* Its levels at the coordinator, fullest first (DESIGN.md section 10). */
enum validation_level {
    VALIDATION_FULL,    /* the models at full precision */
    VALIDATION_REDUCED, /* bfloat16 weights on the GPU, full precision on the host */
    VALIDATION_OFF,     /* nothing on the GPU */
};

struct validation_server {
    struct gc_server_args args;
    char self_url[160];
    char resident_name[65];
    char coordinator_url[512];
    bool coordination;         /* register and demand through gpucoordd */
    uint64_t model_bytes;      /* all models together (VALIDATION_MODEL_BYTES) */
    uint64_t activation_bytes; /* scratch per validation, cached (VALIDATION_ACTIVATION_BYTES) */
    double demand_wait_s;      /* how long a request waits for its models to come back */
    int priority;
    bool levels;            /* declare full/reduced/off (VALIDATION_LEVELS, default on) */
    uint64_t reduced_bytes; /* what the models hold at reduced precision */

    struct gc_model_store store;
    struct gc_model *models[VALIDATION_MODELS];
    struct gc_scorer *scorer;

    /* Validations hold it shared; unload/reload/cleanup hold it exclusively. */
    pthread_rwlock_t models_lock;
    bool loaded;                      /* guarded by models_lock: full or reduced (serving) */
    bool reduced;                     /* guarded by models_lock: at reduced precision */
    bool ever_loaded;                 /* set under models_lock (read atomically by the link) */
    enum gc_model_origin last_origin; /* guarded by models_lock: of the last reload */
    pthread_mutex_t store_lock;       /* the driver calls of the store (scratch) */

    /* Coordinator link. */
    pthread_t link_thread;
    volatile bool stopping;
    volatile bool registered;
    unsigned validations, unloads, reloads;
};

/* The HTTP handler (ctx: struct validation_server). */
void validation_handle(void *ctx, const struct gc_http_req *req, struct gc_http_resp *resp);

/* Coordinator link (resident_link.c): keeps this server registered as a seed
 * resident, re-registering when the coordinator forgot it (restart). */
void validation_link_start(struct validation_server *vs);
void validation_link_stop(struct validation_server *vs);
/* Asks the coordinator for the memory back and waits until it reloaded us, up to
 * wait_s. 0 when loaded; GC_ETIMEDOUT; GC_ECONNECT; GC_EUNAVAIL with why filled. */
int validation_demand(struct validation_server *vs, double wait_s, char *why, size_t why_len);
/* At start, before any model is on the GPU: registers as an unloaded resident and
 * queues a demand, so that the models are allocated only once the coordinator made
 * room (it calls /reload_models/). 0 when registered; an error when no coordinator
 * took the registration (then the server loads its models on its own). */
int validation_link_register_unloaded(struct validation_server *vs);
/* Does the coordinator let this reload happen now? True when it is reloading this
 * resident (the room is claimed), or when no coordinator answers (standalone). */
bool validation_link_reload_allowed(struct validation_server *vs);

/* The level it is at (read without the lock: for /health/ and answers). */
enum validation_level validation_level_now(struct validation_server *vs);
const char *validation_level_name(enum validation_level level);

/* Model operations (models.c), models_lock held exclusively. */
int validation_models_unload(struct validation_server *vs, char *err, size_t errlen);
/* Full -> reduced precision. On error the models are unloaded (off), host copies kept. */
int validation_models_reduce(struct validation_server *vs, char *err, size_t errlen);
/* origin_ret: the strongest fallback that happened (GC_ORIGIN_*). */
int validation_models_reload(struct validation_server *vs, enum gc_model_origin *origin_ret,
                             char *err, size_t errlen);

#endif
