/* store.c - append-only JSON-lines journal with atomic compaction. */
#include "daemon/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"

/* Longest journal line read back. */
#define STORE_LINE_MAX (1u << 20)

struct gc_store {
    char dir[512];
    char path[600];
    int fd;
    int lock_fd;
    enum gc_store_sync sync;
    size_t size;          /* bytes of complete records */
    size_t snapshot_size; /* size right after the last compaction */
    bool torn;            /* a failed append may have left bytes past size */
    struct gc_store_compaction *compacting;
};

struct gc_store_compaction {
    char tmp[640];
    enum gc_store_sync sync;
    char *buf; /* the serialised records */
    size_t len;
    int fd;
    int rc;
    /* Records appended while it runs, added to the new journal before the rename. */
    char *pending;
    size_t pending_len, pending_cap;
    bool pending_failed;
};

static void store_err(char *errbuf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void store_err(char *errbuf, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (errbuf == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, len, fmt, ap);
    va_end(ap);
}

int gc_store_sync_parse(const char *name, enum gc_store_sync *ret)
{
    if (strcmp(name, "never") == 0)
        *ret = GC_SYNC_NEVER;
    else if (strcmp(name, "resident") == 0)
        *ret = GC_SYNC_RESIDENT;
    else if (strcmp(name, "always") == 0)
        *ret = GC_SYNC_ALWAYS;
    else
        return GC_EINVAL;
    return 0;
}

int gc_store_open(const char *dir, enum gc_store_sync sync, struct gc_store **ret_store,
                  char *errbuf, size_t errbuf_len)
{
    struct gc_store *s;
    char lock_path[600];
    struct stat st;

    if (strlen(dir) >= sizeof(s->dir)) {
        store_err(errbuf, errbuf_len, "state directory path too long");
        return GC_EINVAL;
    }
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        store_err(errbuf, errbuf_len, "cannot create state directory '%s': %s", dir,
                  strerror(errno));
        return GC_EIO;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return GC_ENOMEM;
    s->fd = s->lock_fd = -1;
    s->sync = sync;
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    snprintf(s->path, sizeof(s->path), "%s/journal", dir);
    snprintf(lock_path, sizeof(lock_path), "%s/lock", dir);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        store_err(errbuf, errbuf_len, "cannot open '%s': %s", lock_path, strerror(errno));
        goto out_fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        store_err(errbuf, errbuf_len, "another gpucoordd uses state directory '%s'", dir);
        goto out_fail;
    }
    s->fd = open(s->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (s->fd < 0) {
        store_err(errbuf, errbuf_len, "cannot open '%s': %s", s->path, strerror(errno));
        goto out_fail;
    }
    if (fstat(s->fd, &st) == 0)
        s->size = (size_t)st.st_size;
    *ret_store = s;
    return 0;

out_fail:
    gc_store_close(s);
    return GC_EIO;
}

void gc_store_close(struct gc_store *store)
{
    if (store == NULL)
        return;
    if (store->fd >= 0)
        close(store->fd);
    if (store->lock_fd >= 0)
        close(store->lock_fd);
    free(store);
}

int gc_store_replay(struct gc_store *store, int (*fn)(void *ctx, json_t *rec), void *ctx,
                    unsigned *ret_skipped)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0, offset = 0, complete = 0;
    ssize_t n;
    unsigned skipped = 0;
    int rc = 0;

    f = fopen(store->path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : GC_EIO;
    while ((n = getline(&line, &cap, f)) >= 0) {
        json_t *rec;
        offset += (size_t)n;
        if (n > 0 && line[n - 1] == '\n')
            complete = offset;
        /* A line without its newline was cut short by a crash mid-write. */
        if (n == 0 || line[n - 1] != '\n' || (size_t)n > STORE_LINE_MAX) {
            skipped++;
            continue;
        }
        rec = json_loadb(line, (size_t)n, 0, NULL);
        if (rec == NULL || !json_is_object(rec)) {
            json_decref(rec);
            skipped++;
            continue;
        }
        rc = fn(ctx, rec);
        json_decref(rec);
        if (rc < 0)
            break;
    }
    /* Cut a torn last line, or the next record would glue onto it and both be lost. */
    if (rc >= 0 && ferror(f) == 0 && complete < offset && !gc_store_compacting(store)) {
        if (ftruncate(store->fd, (off_t)complete) == 0)
            store->size = complete;
        else
            store->torn = true; /* retried before the next append */
    }
    free(line);
    fclose(f);
    if (ret_skipped != NULL)
        *ret_skipped = skipped;
    return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return GC_EIO;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Cuts what a failed append left past the last complete record. */
static int cut_torn(struct gc_store *store)
{
    if (ftruncate(store->fd, (off_t)store->size) < 0)
        return GC_EIO;
    store->torn = false;
    return 0;
}

static void pending_add(struct gc_store_compaction *c, const char *line, size_t len)
{
    if (c->pending_failed)
        return;
    if (c->pending_len + len > c->pending_cap) {
        size_t cap = c->pending_cap ? c->pending_cap : 4096;
        char *p;
        while (cap < c->pending_len + len)
            cap *= 2;
        p = realloc(c->pending, cap);
        if (p == NULL) {
            c->pending_failed = true; /* the compaction is abandoned; the journal has it */
            return;
        }
        c->pending = p;
        c->pending_cap = cap;
    }
    memcpy(c->pending + c->pending_len, line, len);
    c->pending_len += len;
}

int gc_store_append(struct gc_store *store, const json_t *rec, bool important)
{
    char *s = json_dumps(rec, JSON_COMPACT);
    size_t len;
    int rc;

    if (s == NULL)
        return GC_ENOMEM;
    len = strlen(s);
    s[len] = '\n'; /* json_dumps leaves room: the NUL becomes the newline */
    rc = store->torn ? cut_torn(store) : 0;
    if (rc == 0)
        rc = write_all(store->fd, s, len + 1);
    /* After a failed sync the data's fate is unknown: the record counts as unwritten. */
    if (rc == 0 &&
        (store->sync == GC_SYNC_ALWAYS || (important && store->sync == GC_SYNC_RESIDENT)) &&
        fdatasync(store->fd) < 0)
        rc = GC_EIO;
    if (rc < 0) {
        store->torn = true;
        cut_torn(store); /* if this fails too, the next append tries again first */
        free(s);
        return rc;
    }
    store->size += len + 1;
    if (store->compacting != NULL)
        pending_add(store->compacting, s, len + 1);
    free(s);
    return 0;
}

int gc_store_compact_begin(struct gc_store *store, const json_t *records,
                           struct gc_store_compaction **ret_compaction)
{
    struct gc_store_compaction *c;
    size_t index, cap = 0;
    json_t *rec;

    if (store->compacting != NULL)
        return GC_ECONFLICT;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return GC_ENOMEM;
    c->fd = -1;
    c->sync = store->sync;
    snprintf(c->tmp, sizeof(c->tmp), "%s.new", store->path);
    json_array_foreach(records, index, rec)
    {
        char *s = json_dumps(rec, JSON_COMPACT);
        size_t len;
        if (s == NULL)
            goto out_nomem;
        len = strlen(s);
        if (c->len + len + 1 > cap) {
            char *p;
            cap = cap ? cap : 4096;
            while (cap < c->len + len + 1)
                cap *= 2;
            p = realloc(c->buf, cap);
            if (p == NULL) {
                free(s);
                goto out_nomem;
            }
            c->buf = p;
        }
        memcpy(c->buf + c->len, s, len);
        c->buf[c->len + len] = '\n';
        c->len += len + 1;
        free(s);
    }
    store->compacting = c;
    *ret_compaction = c;
    return 0;

out_nomem:
    free(c->buf);
    free(c);
    return GC_ENOMEM;
}

int gc_store_compact_write(struct gc_store_compaction *c)
{
    /* O_APPEND: once renamed, this descriptor becomes the journal's. */
    c->fd = open(c->tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
    if (c->fd < 0)
        return c->rc = GC_EIO;
    c->rc = write_all(c->fd, c->buf, c->len);
    if (c->rc == 0 && c->sync != GC_SYNC_NEVER && fsync(c->fd) < 0)
        c->rc = GC_EIO;
    return c->rc;
}

int gc_store_compact_finish(struct gc_store *store, struct gc_store_compaction *c)
{
    int rc = c->fd < 0 ? GC_EIO : c->rc, dfd;

    store->compacting = NULL;
    if (rc == 0 && c->pending_failed)
        rc = GC_ENOMEM;
    if (rc == 0 && c->pending_len > 0) {
        rc = write_all(c->fd, c->pending, c->pending_len);
        if (rc == 0 && c->sync != GC_SYNC_NEVER && fdatasync(c->fd) < 0)
            rc = GC_EIO;
    }
    if (rc == 0 && rename(c->tmp, store->path) < 0)
        rc = GC_EIO;
    if (rc < 0) {
        if (c->fd >= 0)
            close(c->fd);
        unlink(c->tmp);
    } else {
        /* The rename is durable before any later record is acknowledged. */
        if (c->sync != GC_SYNC_NEVER) {
            dfd = open(store->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
        close(store->fd);
        store->fd = c->fd;
        store->size = c->len + c->pending_len;
        store->snapshot_size = c->len;
        store->torn = false;
    }
    free(c->buf);
    free(c->pending);
    free(c);
    return rc < 0 ? GC_EIO : 0;
}

int gc_store_compact(struct gc_store *store, const json_t *records)
{
    struct gc_store_compaction *c;
    int rc = gc_store_compact_begin(store, records, &c);

    if (rc < 0)
        return rc;
    gc_store_compact_write(c);
    return gc_store_compact_finish(store, c);
}

bool gc_store_compacting(const struct gc_store *store)
{
    return store->compacting != NULL;
}

bool gc_store_compaction_due(const struct gc_store *store, size_t min_bytes)
{
    size_t grown = store->snapshot_size * GC_STORE_GROWTH;

    return store->compacting == NULL && store->size > min_bytes && store->size > grown;
}

size_t gc_store_size(const struct gc_store *store)
{
    return store->size;
}
