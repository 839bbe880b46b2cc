/* models.c - the validation server's models in and out of GPU memory. */
#include <stdio.h>

#include "common/err.h"
#include "servers/validation/validation.h"

int validation_models_unload(struct validation_server *vs, char *err, size_t errlen)
{
    int rc = 0;

    pthread_mutex_lock(&vs->store_lock);
    /* Activations cached from earlier validations go too: the whole footprint leaves. */
    gc_model_store_cleanup(&vs->store);
    for (int i = 0; i < VALIDATION_MODELS && rc == 0; i++)
        rc = gc_model_unload(&vs->store, vs->models[i], err, errlen);
    pthread_mutex_unlock(&vs->store_lock);
    if (rc == 0) {
        __atomic_store_n(&vs->loaded, false, __ATOMIC_RELEASE);
        __atomic_store_n(&vs->reduced, false, __ATOMIC_RELEASE);
    }
    return rc;
}

int validation_models_reduce(struct validation_server *vs, char *err, size_t errlen)
{
    int rc = 0;

    pthread_mutex_lock(&vs->store_lock);
    /* Cached activations go too: what stays is the context and the reduced weights. */
    gc_model_store_cleanup(&vs->store);
    for (int i = 0; i < VALIDATION_MODELS && rc == 0; i++)
        rc = gc_model_reduce(&vs->store, vs->models[i], err, errlen);
    if (rc < 0) {
        /* Not half and half: all off (their host copies are kept), as an unload. */
        char ignored[64];
        for (int i = 0; i < VALIDATION_MODELS; i++)
            gc_model_unload(&vs->store, vs->models[i], ignored, sizeof(ignored));
    }
    pthread_mutex_unlock(&vs->store_lock);
    __atomic_store_n(&vs->loaded, rc == 0, __ATOMIC_RELEASE);
    __atomic_store_n(&vs->reduced, rc == 0, __ATOMIC_RELEASE);
    return rc;
}

enum validation_level validation_level_now(struct validation_server *vs)
{
    if (!__atomic_load_n(&vs->loaded, __ATOMIC_ACQUIRE))
        return VALIDATION_OFF;
    return __atomic_load_n(&vs->reduced, __ATOMIC_ACQUIRE) ? VALIDATION_REDUCED : VALIDATION_FULL;
}

const char *validation_level_name(enum validation_level level)
{
    static const char *const names[] = {"full", "reduced", "off"};
    return names[level];
}

int validation_models_reload(struct validation_server *vs, enum gc_model_origin *origin_ret,
                             char *err, size_t errlen)
{
    enum gc_model_origin worst = GC_ORIGIN_BACKUP;
    int rc = 0, i;

    pthread_mutex_lock(&vs->store_lock);
    for (i = 0; i < VALIDATION_MODELS && rc == 0; i++) {
        rc = gc_model_reload(&vs->store, vs->models[i], err, errlen);
        if (rc == 0 && vs->models[i]->last_origin > worst)
            worst = vs->models[i]->last_origin;
    }
    if (rc < 0) {
        /* All or nothing: what came back goes again, its host copy kept, and so do
         * models still at reduced precision. */
        char ignored[64];
        for (int j = 0; j < VALIDATION_MODELS; j++)
            gc_model_unload(&vs->store, vs->models[j], ignored, sizeof(ignored));
    }
    pthread_mutex_unlock(&vs->store_lock);
    if (rc < 0)
        __atomic_store_n(&vs->loaded, false, __ATOMIC_RELEASE); /* what came back went again */
    __atomic_store_n(&vs->reduced, false, __ATOMIC_RELEASE);
    if (rc == 0) {
        __atomic_store_n(&vs->loaded, true, __ATOMIC_RELEASE);
        *origin_ret = vs->ever_loaded ? worst : GC_ORIGIN_REINIT;
        __atomic_store_n(&vs->ever_loaded, true, __ATOMIC_RELEASE);
        vs->last_origin = *origin_ret;
    }
    return rc;
}
