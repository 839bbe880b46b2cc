/*
 * model.h - model weights held in GPU memory through the driver API, shared by the
 * founding servers.
 *
 * A model is a named block of weights of a declared size, allocated in chunks
 * on the device. Unloading copies it to pinned host memory allocated once when
 * the model was added (never on the unload path), chunk by chunk on a stream,
 * and frees the device memory; reloading allocates and copies back, verifying a
 * checksum as it goes. A missing or corrupt host copy falls back to
 * re-initialising the weights from the model's source (its name and seed).
 *
 * On gpusim's accounting-only mode the device holds no bytes: the store notices
 * at open (a probe write/read) and then skips checksum verification, saying so
 * in gc_model_store_retains_data(). Thread-safety: the caller serialises calls
 * on one store (the servers hold their own lock).
 */
#ifndef GC_MODEL_H
#define GC_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gpu/gpu.h"

#define GC_MODELS_MAX     8
#define GC_MODEL_NAME_MAX 48
/* Copy chunk bounds (DESIGN.md: 64-256 MiB chunks on a stream). */
#define GC_MODEL_CHUNK_DEFAULT (128ULL << 20)

enum gc_model_origin {
    GC_ORIGIN_NONE,
    GC_ORIGIN_BACKUP,         /* restored_from_backup */
    GC_ORIGIN_REINIT,         /* reinitialized: no host copy by design */
    GC_ORIGIN_FALLBACK_REINIT /* fallback_reinitialized: host copy missing or corrupt */
};

struct gc_model {
    char name[GC_MODEL_NAME_MAX];
    uint64_t bytes;
    uint64_t seed;
    bool keep_backup; /* pinned host copy for unload/reload */
    bool on_gpu;
    unsigned nchunks;
    CUdeviceptr *chunks;
    uint8_t *backup; /* pinned, bytes long, allocated once */
    bool backup_valid;
    uint64_t checksum;        /* of the weights as initialised */
    uint64_t backup_checksum; /* of the host copy as it was taken */
    enum gc_model_origin last_origin;
    /* Reduced precision: the device holds bfloat16 weights (half chunks) made from the
     * full-precision host copy, which stays valid. */
    bool reduced;
    CUdeviceptr *half_chunks;
    uint64_t reduced_checksum; /* of the reduced weights as converted */
};

struct gc_model_store {
    struct gc_cuda cuda;
    CUdevice dev;
    CUcontext ctx;
    CUstream stream;
    bool retains_data;
    uint64_t chunk_bytes;
    uint8_t *staging; /* pinned, one chunk: initialisation and scratch patterns */
    struct gc_model models[GC_MODELS_MAX];
    unsigned nmodels;
    /* A cache of scratch buffers kept for reuse (as allocator caches do);
     * gc_model_store_cleanup() gives them back. */
    CUdeviceptr scratch[16];
    uint64_t scratch_bytes[16];
    unsigned nscratch;
};

struct gc_gpu_memory {
    bool available;
    uint64_t total_bytes, free_bytes, used_bytes;
};

/*
 * gc_model_store_open: loads the driver API, makes device `device` current with
 * its primary context, creates a stream, allocates a pinned staging chunk, and
 * probes whether device memory retains data. errbuf explains failures.
 */
int gc_model_store_open(struct gc_model_store *store, int device, uint64_t chunk_bytes,
                        char *errbuf, size_t errbuf_len);
/* Frees every model, buffer and the context. A zeroed store is a no-op. */
void gc_model_store_close(struct gc_model_store *store);
/* Makes the store's context current on the calling thread. */
void gc_model_store_bind(struct gc_model_store *store);
bool gc_model_store_retains_data(const struct gc_model_store *store);

/* Adds a model (not loaded). keep_backup allocates its pinned host copy now. */
int gc_model_add(struct gc_model_store *store, const char *name, uint64_t bytes, uint64_t seed,
                 bool keep_backup, struct gc_model **ret_model, char *errbuf, size_t errbuf_len);
/* Allocates and initialises the weights from the model's source. GC_EOOM when the
 * device has no room (nothing stays allocated). */
int gc_model_load(struct gc_model_store *store, struct gc_model *m, char *errbuf,
                  size_t errbuf_len);
/* Copies the weights to the host copy (if kept) and frees the device memory. */
int gc_model_unload(struct gc_model_store *store, struct gc_model *m, char *errbuf,
                    size_t errbuf_len);
/* Back on the device at full precision: from the verified host copy, else
 * re-initialised. A reduced model is restored chunk by chunk (its reduced chunks are
 * freed as the full ones arrive); on error it is left unloaded. */
int gc_model_reload(struct gc_model_store *store, struct gc_model *m, char *errbuf,
                    size_t errbuf_len);
/*
 * gc_model_reduce: from full precision on the device to reduced: copies the weights
 * to the host copy (kept at full precision, checksummed), then chunk by chunk
 * converts them from float32 to bfloat16 through the pinned staging buffer, puts
 * the half-size chunk on the device, verifies it by checksum and frees the full
 * one. Needs keep_backup. On error the model is left unloaded (host copy valid
 * when it was taken) and GC_E* is returned. A reduced model is a no-op.
 */
int gc_model_reduce(struct gc_model_store *store, struct gc_model *m, char *errbuf,
                    size_t errbuf_len);
/* Bytes m holds on the device at reduced precision. */
uint64_t gc_model_reduced_bytes(const struct gc_model_store *store, const struct gc_model *m);

/* Frees the device memory without keeping a copy. */
void gc_model_drop(struct gc_model_store *store, struct gc_model *m);
/* Reads the weights back from the device and checks them against the full or the
 * reduced checksum (false if they differ, or true when the device retains no data). */
bool gc_model_verify(struct gc_model_store *store, struct gc_model *m);

/* Scratch (activation) memory with a reuse cache. */
int gc_model_scratch_get(struct gc_model_store *store, uint64_t bytes, CUdeviceptr *ret);
void gc_model_scratch_put(struct gc_model_store *store, CUdeviceptr ptr, uint64_t bytes);
/* Multi-pass cleanup: frees cached scratch, synchronises the stream, frees again.
 * Returns the bytes given back. */
uint64_t gc_model_store_cleanup(struct gc_model_store *store);

/* The device's memory as the driver reports it (cuMemGetInfo). */
void gc_model_store_memory(struct gc_model_store *store, struct gc_gpu_memory *ret);

/* Fletcher-style 64-bit checksum over n bytes (n a multiple of 8 or not). */
uint64_t gc_checksum(const uint8_t *data, uint64_t n, uint64_t state);

#endif
