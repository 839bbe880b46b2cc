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
    size_t size;
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
    size_t cap = 0;
    ssize_t n;
    unsigned skipped = 0;
    int rc = 0;

    f = fopen(store->path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : GC_EIO;
    while ((n = getline(&line, &cap, f)) >= 0) {
        json_t *rec;
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

int gc_store_append(struct gc_store *store, const json_t *rec, bool important)
{
    char *s = json_dumps(rec, JSON_COMPACT);
    size_t len;
    int rc;

    if (s == NULL)
        return GC_ENOMEM;
    len = strlen(s);
    s[len] = '\n'; /* json_dumps leaves room: the NUL becomes the newline */
    rc = write_all(store->fd, s, len + 1);
    free(s);
    if (rc == 0) {
        store->size += len + 1;
        if (store->sync == GC_SYNC_ALWAYS || (important && store->sync == GC_SYNC_RESIDENT))
            fdatasync(store->fd);
    }
    return rc;
}

int gc_store_compact(struct gc_store *store, const json_t *records)
{
    char tmp[640];
    size_t index, size = 0;
    json_t *rec;
    int fd, dfd, rc = 0;

    snprintf(tmp, sizeof(tmp), "%s.new", store->path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return GC_EIO;
    json_array_foreach(records, index, rec)
    {
        char *s = json_dumps(rec, JSON_COMPACT);
        size_t len;
        if (s == NULL) {
            rc = GC_ENOMEM;
            break;
        }
        len = strlen(s);
        s[len] = '\n';
        rc = write_all(fd, s, len + 1);
        free(s);
        if (rc < 0)
            break;
        size += len + 1;
    }
    if (rc == 0 && store->sync != GC_SYNC_NEVER && fsync(fd) < 0)
        rc = GC_EIO;
    close(fd);
    if (rc == 0 && rename(tmp, store->path) < 0)
        rc = GC_EIO;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    if (store->sync != GC_SYNC_NEVER) {
        dfd = open(store->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    fd = open(store->path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return GC_EIO;
    close(store->fd);
    store->fd = fd;
    store->size = size;
    return 0;
}

size_t gc_store_size(const struct gc_store *store)
{
    return store->size;
}
