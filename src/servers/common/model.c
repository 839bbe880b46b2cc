/* model.c - model weights in GPU memory, moved to pinned host memory and back. */
#include "servers/common/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "servers/common/bf16.h"
#include "servers/common/rng.h"

/* Each chunk starts with this many pseudo-random bytes; the rest is one byte value
 * set on the device (cuMemsetD8), so initialisation is cheap at any size while
 * misplaced or shifted chunks still change the checksum. */
#define MODEL_HEADER_BYTES 4096u
#define MODEL_PROBE_BYTES  4096u

/* ---- checksum: Fletcher over 64-bit little-endian words, per chunk ---- */

struct fletcher {
    uint64_t s1, s2;
};

static void fl_words(struct fletcher *f, const uint8_t *p, uint64_t n)
{
    uint64_t s1 = f->s1, s2 = f->s2, w;
    uint64_t i = 0;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        s1 += w;
        s2 += s1;
    }
    if (i < n) {
        w = 0;
        memcpy(&w, p + i, (size_t)(n - i)); /* zero-padded last word */
        s1 += w;
        s2 += s1;
    }
    f->s1 = s1;
    f->s2 = s2;
}

/* k words all equal to w, in closed form. */
static void fl_const(struct fletcher *f, uint64_t w, uint64_t k)
{
    unsigned __int128 tri = (unsigned __int128)k * (k + 1) / 2;

    f->s2 += k * f->s1 + w * (uint64_t)tri;
    f->s1 += k * w;
}

static uint64_t fl_digest(const struct fletcher *f, unsigned chunk)
{
    return gc_mix64((f->s1 ^ (f->s2 << 32 | f->s2 >> 32)) + chunk);
}

uint64_t gc_checksum(const uint8_t *data, uint64_t n, uint64_t state)
{
    struct fletcher f = {state, 0};

    fl_words(&f, data, n);
    return fl_digest(&f, 0);
}

/* ---- the weights' source: what a chunk holds when initialised ---- */

static uint64_t chunk_len(const struct gc_model_store *s, const struct gc_model *m, unsigned i)
{
    uint64_t off = (uint64_t)i * s->chunk_bytes;
    uint64_t left = m->bytes - off;

    return left < s->chunk_bytes ? left : s->chunk_bytes;
}

static uint8_t chunk_fill(const struct gc_model *m, unsigned i)
{
    return (uint8_t)(gc_mix64(m->seed ^ gc_mix64(i + 1)) & 0xff);
}

static void chunk_header(const struct gc_model *m, unsigned i, uint8_t *out, uint64_t n)
{
    struct gc_rng rng;

    gc_rng_seed(&rng, m->seed ^ gc_mix64(0x9e3779b97f4a7c15ULL + i));
    for (uint64_t k = 0; k < n; k += 8) {
        uint64_t v = gc_rng_next(&rng);
        memcpy(out + k, &v, n - k < 8 ? (size_t)(n - k) : 8);
    }
}

/* Checksum of chunk i as initialised, without materialising it. */
static uint64_t chunk_expected(const struct gc_model_store *s, const struct gc_model *m, unsigned i)
{
    uint64_t len = chunk_len(s, m, i);
    uint64_t hdr = len < MODEL_HEADER_BYTES ? len : MODEL_HEADER_BYTES;
    uint8_t header[MODEL_HEADER_BYTES];
    struct fletcher f = {0, 0};
    uint64_t body = len - hdr, words = body / 8, tail = body % 8, w;
    uint8_t b = chunk_fill(m, i);

    chunk_header(m, i, header, hdr);
    fl_words(&f, header, hdr);
    memset(&w, b, sizeof(w));
    fl_const(&f, w, words);
    if (tail > 0) {
        w = 0;
        memset(&w, b, (size_t)tail);
        fl_const(&f, w, 1);
    }
    return fl_digest(&f, i);
}

static uint64_t model_expected(const struct gc_model_store *s, const struct gc_model *m)
{
    uint64_t sum = 0;

    for (unsigned i = 0; i < m->nchunks; i++)
        sum += chunk_expected(s, m, i);
    return sum;
}

static uint64_t chunk_digest(const uint8_t *p, uint64_t len, unsigned i)
{
    struct fletcher f = {0, 0};

    fl_words(&f, p, len);
    return fl_digest(&f, i);
}

/* ---- store ---- */

static int cuda_err(struct gc_model_store *s, CUresult rc, const char *what, char *errbuf,
                    size_t errbuf_len)
{
    snprintf(errbuf, errbuf_len, "%s: %s", what, gc_cuda_strerror(&s->cuda, rc));
    return rc == CUDA_ERROR_OUT_OF_MEMORY ? GC_EOOM : GC_EGPU;
}

/* Does the device keep what is written to it? (gpusim's accounting mode does not.) */
static bool probe_retention(struct gc_model_store *s)
{
    uint8_t in[MODEL_PROBE_BYTES], out[MODEL_PROBE_BYTES];
    CUdeviceptr p;
    bool same;

    for (unsigned i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 131 + 7);
    memset(out, 0, sizeof(out));
    if (s->cuda.cuMemAlloc(&p, sizeof(in)) != CUDA_SUCCESS)
        return false;
    same = s->cuda.cuMemcpyHtoD(p, in, sizeof(in)) == CUDA_SUCCESS &&
           s->cuda.cuMemcpyDtoH(out, p, sizeof(out)) == CUDA_SUCCESS &&
           memcmp(in, out, sizeof(in)) == 0;
    s->cuda.cuMemFree(p);
    return same;
}

int gc_model_store_open(struct gc_model_store *s, int device, uint64_t chunk_bytes, char *errbuf,
                        size_t errbuf_len)
{
    CUresult rc;

    memset(s, 0, sizeof(*s));
    s->chunk_bytes = chunk_bytes ? chunk_bytes : GC_MODEL_CHUNK_DEFAULT;
    if (gc_cuda_open(&s->cuda, errbuf, errbuf_len) < 0)
        return GC_EGPU;
    rc = s->cuda.cuDeviceGet(&s->dev, device);
    if (rc == CUDA_SUCCESS)
        rc = s->cuda.cuDevicePrimaryCtxRetain(&s->ctx, s->dev);
    if (rc != CUDA_SUCCESS) {
        int err = cuda_err(s, rc, "cannot create a context", errbuf, errbuf_len);
        gc_cuda_close(&s->cuda);
        memset(s, 0, sizeof(*s));
        return err;
    }
    s->cuda.cuCtxSetCurrent(s->ctx);
    rc = s->cuda.cuStreamCreate(&s->stream, CU_STREAM_NON_BLOCKING);
    if (rc == CUDA_SUCCESS)
        rc = s->cuda.cuMemHostAlloc((void **)&s->staging, s->chunk_bytes, 0);
    if (rc != CUDA_SUCCESS) {
        int err = cuda_err(s, rc, "cannot set up copies", errbuf, errbuf_len);
        gc_model_store_close(s);
        return err;
    }
    s->retains_data = probe_retention(s);
    return 0;
}

void gc_model_store_bind(struct gc_model_store *s)
{
    s->cuda.cuCtxSetCurrent(s->ctx);
}

bool gc_model_store_retains_data(const struct gc_model_store *s)
{
    return s->retains_data;
}

void gc_model_store_close(struct gc_model_store *s)
{
    if (s->cuda.handle == NULL)
        return;
    gc_model_store_bind(s);
    for (unsigned i = 0; i < s->nmodels; i++) {
        struct gc_model *m = &s->models[i];
        gc_model_drop(s, m);
        if (m->backup != NULL)
            s->cuda.cuMemFreeHost(m->backup);
        free(m->chunks);
        free(m->half_chunks);
    }
    gc_model_store_cleanup(s);
    if (s->staging != NULL)
        s->cuda.cuMemFreeHost(s->staging);
    if (s->stream != NULL)
        s->cuda.cuStreamDestroy(s->stream);
    if (s->ctx != NULL)
        s->cuda.cuDevicePrimaryCtxRelease(s->dev);
    gc_cuda_close(&s->cuda);
    memset(s, 0, sizeof(*s));
}

int gc_model_add(struct gc_model_store *s, const char *name, uint64_t bytes, uint64_t seed,
                 bool keep_backup, struct gc_model **ret_model, char *errbuf, size_t errbuf_len)
{
    struct gc_model *m;
    CUresult rc;

    if (s->nmodels >= GC_MODELS_MAX || bytes == 0) {
        snprintf(errbuf, errbuf_len, "cannot add model '%s'", name);
        return GC_EINVAL;
    }
    m = &s->models[s->nmodels];
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->bytes = bytes;
    m->seed = seed ^ gc_hash64(name, strlen(name));
    m->nchunks = (unsigned)((bytes + s->chunk_bytes - 1) / s->chunk_bytes);
    m->chunks = calloc(m->nchunks, sizeof(*m->chunks));
    m->half_chunks = calloc(m->nchunks, sizeof(*m->half_chunks));
    if (m->chunks == NULL || m->half_chunks == NULL) {
        free(m->chunks);
        free(m->half_chunks);
        return GC_ENOMEM;
    }
    m->keep_backup = keep_backup;
    if (keep_backup) {
        /* Pinned memory is slow to allocate: once, here, never on the unload path. */
        gc_model_store_bind(s);
        rc = s->cuda.cuMemHostAlloc((void **)&m->backup, bytes, 0);
        if (rc != CUDA_SUCCESS) {
            free(m->chunks);
            free(m->half_chunks);
            return cuda_err(s, rc, "cannot allocate pinned host memory", errbuf, errbuf_len);
        }
    }
    m->checksum = model_expected(s, m);
    s->nmodels++;
    *ret_model = m;
    return 0;
}

static int alloc_chunks(struct gc_model_store *s, struct gc_model *m, char *errbuf,
                        size_t errbuf_len)
{
    for (unsigned i = 0; i < m->nchunks; i++) {
        CUresult rc = s->cuda.cuMemAlloc(&m->chunks[i], chunk_len(s, m, i));
        if (rc != CUDA_SUCCESS) {
            for (unsigned j = 0; j < i; j++)
                s->cuda.cuMemFree(m->chunks[j]);
            memset(m->chunks, 0, m->nchunks * sizeof(*m->chunks));
            return cuda_err(s, rc, m->name, errbuf, errbuf_len);
        }
    }
    return 0;
}

/* Writes the initial weights into the allocated chunks. */
static int init_chunks(struct gc_model_store *s, struct gc_model *m, char *errbuf,
                       size_t errbuf_len)
{
    for (unsigned i = 0; i < m->nchunks; i++) {
        uint64_t len = chunk_len(s, m, i);
        uint64_t hdr = len < MODEL_HEADER_BYTES ? len : MODEL_HEADER_BYTES;
        CUresult rc = CUDA_SUCCESS;
        if (len > hdr)
            rc = s->cuda.cuMemsetD8(m->chunks[i] + hdr, chunk_fill(m, i), (size_t)(len - hdr));
        if (rc == CUDA_SUCCESS) {
            chunk_header(m, i, s->staging, hdr);
            rc = s->cuda.cuMemcpyHtoD(m->chunks[i], s->staging, (size_t)hdr);
        }
        if (rc != CUDA_SUCCESS)
            return cuda_err(s, rc, "cannot initialise weights", errbuf, errbuf_len);
    }
    return 0;
}

int gc_model_load(struct gc_model_store *s, struct gc_model *m, char *errbuf, size_t errbuf_len)
{
    int rc;

    if (m->on_gpu)
        return 0;
    gc_model_store_bind(s);
    rc = alloc_chunks(s, m, errbuf, errbuf_len);
    if (rc < 0)
        return rc;
    rc = init_chunks(s, m, errbuf, errbuf_len);
    if (rc < 0) {
        gc_model_drop(s, m);
        return rc;
    }
    m->on_gpu = true;
    m->last_origin = GC_ORIGIN_REINIT;
    return 0;
}

void gc_model_drop(struct gc_model_store *s, struct gc_model *m)
{
    if (!m->on_gpu && (m->nchunks == 0 || (m->chunks[0] == 0 && m->half_chunks[0] == 0)))
        return;
    gc_model_store_bind(s);
    for (unsigned i = 0; i < m->nchunks; i++) {
        if (m->chunks[i] != 0)
            s->cuda.cuMemFree(m->chunks[i]);
        if (m->half_chunks[i] != 0)
            s->cuda.cuMemFree(m->half_chunks[i]);
        m->chunks[i] = 0;
        m->half_chunks[i] = 0;
    }
    m->on_gpu = false;
    m->reduced = false;
}

/* Copies the weights on the device to the host copy and checksums it (the device
 * keeps them). */
static int model_copy_to_host(struct gc_model_store *s, struct gc_model *m, char *errbuf,
                              size_t errbuf_len)
{
    uint64_t off = 0, sum = 0;
    CUresult rc = CUDA_SUCCESS;

    gc_model_store_bind(s);
    m->backup_valid = false;
    /* Chunked copies on the stream: queue them all, then wait once. */
    for (unsigned i = 0; i < m->nchunks && rc == CUDA_SUCCESS; i++) {
        uint64_t len = chunk_len(s, m, i);
        rc = s->cuda.cuMemcpyDtoHAsync(m->backup + off, m->chunks[i], (size_t)len, s->stream);
        off += len;
    }
    if (rc == CUDA_SUCCESS)
        rc = s->cuda.cuStreamSynchronize(s->stream);
    if (rc != CUDA_SUCCESS)
        return cuda_err(s, rc, "cannot copy weights to the host", errbuf, errbuf_len);
    if (s->retains_data) {
        off = 0;
        for (unsigned i = 0; i < m->nchunks; i++) {
            uint64_t len = chunk_len(s, m, i);
            sum += chunk_digest(m->backup + off, len, i);
            off += len;
        }
        m->backup_checksum = sum;
    } else {
        m->backup_checksum = m->checksum; /* nothing to read back on this device */
    }
    m->backup_valid = true;
    return 0;
}

int gc_model_unload(struct gc_model_store *s, struct gc_model *m, char *errbuf, size_t errbuf_len)
{
    int err;

    if (!m->on_gpu)
        return 0;
    if (m->reduced) {
        gc_model_drop(s, m); /* the full-precision host copy was taken when it was reduced */
        return 0;
    }
    if (m->keep_backup) {
        err = model_copy_to_host(s, m, errbuf, errbuf_len);
        if (err < 0)
            return err;
    }
    gc_model_drop(s, m);
    return 0;
}

/* ---- reduced precision: float32 weights held as bfloat16 ---- */

/* Bytes of a chunk of len bytes of float32 (a last partial word zero-padded) in bfloat16. */
static uint64_t half_len(uint64_t len)
{
    return (len + 3) / 4 * 2;
}

uint64_t gc_model_reduced_bytes(const struct gc_model_store *s, const struct gc_model *m)
{
    uint64_t sum = 0;

    for (unsigned i = 0; i < m->nchunks; i++)
        sum += half_len(chunk_len(s, m, i));
    return sum;
}

/* Converts len bytes of float32 at in to bfloat16 at out (half_len(len) bytes). */
static void convert_chunk(const uint8_t *in, uint64_t len, uint8_t *out)
{
    for (uint64_t k = 0, o = 0; k < len; k += 4, o += 2) {
        float f = 0;
        uint16_t h;
        memcpy(&f, in + k, len - k < 4 ? (size_t)(len - k) : 4);
        h = gc_bf16_from_f32(f);
        memcpy(out + o, &h, 2);
    }
}

int gc_model_reduce(struct gc_model_store *s, struct gc_model *m, char *errbuf, size_t errbuf_len)
{
    uint64_t off = 0, sum = 0;
    CUresult rc = CUDA_SUCCESS;
    int err;

    if (m->reduced)
        return 0;
    if (!m->on_gpu || !m->keep_backup) {
        snprintf(errbuf, errbuf_len, "model '%s' %s", m->name,
                 m->on_gpu ? "keeps no host copy to reduce from" : "is not on the GPU");
        return GC_EINVAL;
    }
    /* The full-precision host copy first: reduced weights are made from it, and a
     * reload restores full precision from it. */
    err = model_copy_to_host(s, m, errbuf, errbuf_len);
    if (err < 0)
        return err;
    for (unsigned i = 0; i < m->nchunks; i++) {
        uint64_t len = chunk_len(s, m, i), hlen = half_len(len);
        /* On a device that keeps no bytes there is nothing to convert: the copies
         * still go (they cost what they cost), the arithmetic is skipped. */
        if (s->retains_data) {
            convert_chunk(m->backup + off, len, s->staging);
            sum += chunk_digest(s->staging, hlen, i);
        }
        CUdeviceptr half = 0;
        rc = s->cuda.cuMemAlloc(&half, (size_t)hlen);
        if (rc == CUDA_SUCCESS) {
            m->half_chunks[i] = half;
            rc = s->cuda.cuMemcpyHtoDAsync(half, s->staging, (size_t)hlen, s->stream);
        }
        if (rc == CUDA_SUCCESS)
            rc = s->cuda.cuStreamSynchronize(s->stream); /* staging is reused next chunk */
        if (rc != CUDA_SUCCESS) {
            s->cuda.cuStreamSynchronize(s->stream);
            gc_model_drop(s, m);
            return cuda_err(s, rc, "cannot put reduced weights on the device", errbuf, errbuf_len);
        }
        s->cuda.cuMemFree(m->chunks[i]);
        m->chunks[i] = 0;
        off += len;
    }
    m->reduced = true;
    m->reduced_checksum = s->retains_data ? sum : m->checksum;
    if (!gc_model_verify(s, m)) {
        gc_model_drop(s, m);
        snprintf(errbuf, errbuf_len, "model '%s': reduced weights fail their checksum", m->name);
        return GC_EIO;
    }
    return 0;
}

/* Reduced -> full, chunk by chunk from the verified host copy, so that the device
 * never holds much more than the full model. */
static int reload_from_reduced(struct gc_model_store *s, struct gc_model *m, char *errbuf,
                               size_t errbuf_len)
{
    uint64_t off = 0, sum = 0;
    CUresult rc = CUDA_SUCCESS;
    bool from_backup = m->backup_valid && m->backup_checksum == m->checksum;

    gc_model_store_bind(s);
    for (unsigned i = 0; i < m->nchunks && rc == CUDA_SUCCESS; i++) {
        uint64_t len = chunk_len(s, m, i);
        CUdeviceptr full = 0;
        rc = s->cuda.cuMemAlloc(&full, (size_t)len);
        if (rc != CUDA_SUCCESS)
            break;
        m->chunks[i] = full;
        if (from_backup) {
            rc = s->cuda.cuMemcpyHtoDAsync(m->chunks[i], m->backup + off, (size_t)len, s->stream);
            if (s->retains_data)
                sum += chunk_digest(m->backup + off, len, i);
        }
        /* The copy reads the host copy, not the reduced chunk: it may go now. */
        s->cuda.cuMemFree(m->half_chunks[i]);
        m->half_chunks[i] = 0;
        off += len;
    }
    if (rc == CUDA_SUCCESS)
        rc = s->cuda.cuStreamSynchronize(s->stream);
    if (rc != CUDA_SUCCESS) {
        s->cuda.cuStreamSynchronize(s->stream); /* nothing in flight into what is freed */
        gc_model_drop(s, m);
        return cuda_err(s, rc, "cannot restore full-precision weights", errbuf, errbuf_len);
    }
    m->reduced = false;
    if (s->retains_data && from_backup && sum != m->checksum)
        from_backup = false; /* the host copy was damaged: start over from the source */
    if (!from_backup) {
        int err = init_chunks(s, m, errbuf, errbuf_len);
        if (err < 0) {
            gc_model_drop(s, m);
            return err;
        }
    }
    m->on_gpu = true;
    m->last_origin = from_backup ? GC_ORIGIN_BACKUP : GC_ORIGIN_FALLBACK_REINIT;
    return 0;
}

int gc_model_reload(struct gc_model_store *s, struct gc_model *m, char *errbuf, size_t errbuf_len)
{
    uint64_t off = 0, sum = 0;
    bool from_backup;
    CUresult rc = CUDA_SUCCESS;
    int err;

    if (m->reduced)
        return reload_from_reduced(s, m, errbuf, errbuf_len);
    if (m->on_gpu)
        return 0;
    gc_model_store_bind(s);
    err = alloc_chunks(s, m, errbuf, errbuf_len);
    if (err < 0)
        return err;
    from_backup = m->keep_backup && m->backup_valid && m->backup_checksum == m->checksum;
    if (from_backup) {
        /* Verify each chunk of the host copy while the previous one is in flight. */
        for (unsigned i = 0; i < m->nchunks && rc == CUDA_SUCCESS; i++) {
            uint64_t len = chunk_len(s, m, i);
            rc = s->cuda.cuMemcpyHtoDAsync(m->chunks[i], m->backup + off, (size_t)len, s->stream);
            if (s->retains_data)
                sum += chunk_digest(m->backup + off, len, i);
            off += len;
        }
        if (rc == CUDA_SUCCESS)
            rc = s->cuda.cuStreamSynchronize(s->stream);
        if (rc != CUDA_SUCCESS) {
            gc_model_drop(s, m);
            m->on_gpu = false;
            return cuda_err(s, rc, "cannot copy weights to the device", errbuf, errbuf_len);
        }
        if (s->retains_data && sum != m->checksum)
            from_backup = false; /* the host copy was damaged: start over from the source */
    }
    if (!from_backup) {
        err = init_chunks(s, m, errbuf, errbuf_len);
        if (err < 0) {
            gc_model_drop(s, m);
            return err;
        }
    }
    m->on_gpu = true;
    m->last_origin = from_backup      ? GC_ORIGIN_BACKUP
                     : m->keep_backup ? GC_ORIGIN_FALLBACK_REINIT
                                      : GC_ORIGIN_REINIT;
    return 0;
}

bool gc_model_verify(struct gc_model_store *s, struct gc_model *m)
{
    uint64_t sum = 0;

    if (!m->on_gpu)
        return false;
    if (!s->retains_data)
        return true;
    gc_model_store_bind(s);
    if (m->reduced) {
        for (unsigned i = 0; i < m->nchunks; i++) {
            uint64_t len = half_len(chunk_len(s, m, i));
            if (s->cuda.cuMemcpyDtoH(s->staging, m->half_chunks[i], (size_t)len) != CUDA_SUCCESS)
                return false;
            sum += chunk_digest(s->staging, len, i);
        }
        return sum == m->reduced_checksum;
    }
    for (unsigned i = 0; i < m->nchunks; i++) {
        uint64_t len = chunk_len(s, m, i);
        if (s->cuda.cuMemcpyDtoH(s->staging, m->chunks[i], (size_t)len) != CUDA_SUCCESS)
            return false;
        sum += chunk_digest(s->staging, len, i);
    }
    return sum == m->checksum;
}

int gc_model_scratch_get(struct gc_model_store *s, uint64_t bytes, CUdeviceptr *ret)
{
    for (unsigned i = 0; i < s->nscratch; i++) {
        if (s->scratch_bytes[i] >= bytes) {
            *ret = s->scratch[i];
            s->scratch[i] = s->scratch[s->nscratch - 1];
            s->scratch_bytes[i] = s->scratch_bytes[s->nscratch - 1];
            s->nscratch--;
            return 0;
        }
    }
    gc_model_store_bind(s);
    return s->cuda.cuMemAlloc(ret, (size_t)bytes) == CUDA_SUCCESS ? 0 : GC_EOOM;
}

void gc_model_scratch_put(struct gc_model_store *s, CUdeviceptr ptr, uint64_t bytes)
{
    if (s->nscratch < sizeof(s->scratch) / sizeof(s->scratch[0])) {
        s->scratch[s->nscratch] = ptr;
        s->scratch_bytes[s->nscratch] = bytes;
        s->nscratch++;
        return;
    }
    gc_model_store_bind(s);
    s->cuda.cuMemFree(ptr);
}

uint64_t gc_model_store_cleanup(struct gc_model_store *s)
{
    uint64_t freed = 0;

    gc_model_store_bind(s);
    /* Pass 1: give back the cache. Pass 2: wait for queued work that may still use
     * buffers, then give back what was returned meanwhile. */
    for (int pass = 0; pass < 2; pass++) {
        while (s->nscratch > 0) {
            s->nscratch--;
            s->cuda.cuMemFree(s->scratch[s->nscratch]);
            freed += s->scratch_bytes[s->nscratch];
        }
        if (pass == 0 && s->stream != NULL)
            s->cuda.cuStreamSynchronize(s->stream);
    }
    return freed;
}

void gc_model_store_memory(struct gc_model_store *s, struct gc_gpu_memory *ret)
{
    size_t free_b = 0, total_b = 0;

    memset(ret, 0, sizeof(*ret));
    if (s->cuda.handle == NULL)
        return;
    gc_model_store_bind(s);
    if (s->cuda.cuMemGetInfo(&free_b, &total_b) != CUDA_SUCCESS)
        return;
    ret->available = true;
    ret->total_bytes = total_b;
    ret->free_bytes = free_b;
    ret->used_bytes = total_b - free_b;
}
