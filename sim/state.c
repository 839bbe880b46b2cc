/*
 * state.c - gpusim's shared state: creating and mapping the file, the robust
 * mutex, process liveness through OFD locks, the lag list and the accounting.
 */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"

int64_t sim_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void sim_sleep_until_ns(int64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = deadline_ns / 1000000000LL,
                          .tv_nsec = deadline_ns % 1000000000LL};

    if (deadline_ns <= 0)
        return;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

const char *sim_device_name(uint64_t capacity_bytes)
{
    return capacity_bytes == SIM_RTX4090_BYTES ? "NVIDIA GeForce RTX 4090 (gpusim)" : "gpusim GPU";
}

void sim_device_uuid(unsigned index, unsigned char ret_uuid[16])
{
    static const unsigned char base[16] = {'g',  'p',  'u',  's',  'i',  'm',  0x40, 0x00,
                                           0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

    memcpy(ret_uuid, base, 16);
    ret_uuid[14] = (unsigned char)(index >> 8);
    ret_uuid[15] = (unsigned char)index;
}

void sim_device_uuid_text(unsigned index, char *buf, size_t buflen)
{
    unsigned char u[16];

    sim_device_uuid(index, u);
    snprintf(buf, buflen,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
}

/* ---- liveness ---- */

static int slot_lock_op(int fd, int cmd, short type, unsigned i, struct flock *fl)
{
    memset(fl, 0, sizeof(*fl));
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = SIM_LOCK_BASE + (off_t)i;
    fl->l_len = 1;
    return fcntl(fd, cmd, fl);
}

/* True when some open file description other than ours holds slot i's lock. */
static bool slot_lock_held(int fd, unsigned i)
{
    struct flock fl;

    if (slot_lock_op(fd, F_OFD_GETLK, F_WRLCK, i, &fl) < 0)
        return true; /* cannot tell: never free a live process's memory */
    return fl.l_type != F_UNLCK;
}

bool sim_slot_live(const struct sim_shm *shm, unsigned i)
{
    const struct sim_slot *s = &shm->st->slot[i];

    if (s->state != SIM_SLOT_TAKEN)
        return false;
    if ((int)i == shm->own_slot)
        return true;
    return slot_lock_held(shm->fd, i);
}

unsigned sim_ndevices(const struct sim_state *st)
{
    return st->ndevices < SIM_DEVICES_MAX ? st->ndevices : SIM_DEVICES_MAX;
}

static unsigned state_nslots(const struct sim_state *st)
{
    return st->nslots < SIM_SLOTS_MAX ? st->nslots : SIM_SLOTS_MAX;
}

void sim_lag_add(struct sim_state *st, unsigned dev, uint64_t bytes, int64_t release_ns)
{
    struct sim_device *d = &st->dev[dev];

    if (bytes == 0)
        return;
    if (d->nlag < SIM_LAG_MAX) {
        d->lag[d->nlag].release_ns = release_ns;
        d->lag[d->nlag].bytes = bytes;
        d->nlag++;
        return;
    }
    /* Full: merge into the entry due last, which then waits for both. */
    unsigned last = 0;
    for (unsigned j = 1; j < SIM_LAG_MAX; j++)
        if (d->lag[j].release_ns > d->lag[last].release_ns)
            last = j;
    d->lag[last].bytes += bytes;
    if (release_ns > d->lag[last].release_ns)
        d->lag[last].release_ns = release_ns;
}

/* Frees slot i of a dead process: its bytes enter the lag list. */
static void slot_release(struct sim_state *st, unsigned i, int64_t now)
{
    struct sim_slot *s = &st->slot[i];
    int64_t lag_ns = s->lag_ns > 0 && s->lag_ns <= SIM_LAG_MS_MAX * 1000000LL ? s->lag_ns : 0;

    sim_debug("process %d (slot %u) is gone: releasing its memory", (int)s->pid, i);
    for (unsigned d = 0; d < sim_ndevices(st); d++) {
        if (lag_ns > 0)
            sim_lag_add(st, d, s->bytes[d], now + lag_ns);
    }
    memset(s, 0, sizeof(*s));
    s->state = SIM_SLOT_FREE;
}

static void state_collect(struct sim_shm *shm, int64_t now)
{
    struct sim_state *st = shm->st;
    unsigned n = state_nslots(st);

    for (unsigned i = 0; i < n; i++) {
        if (st->slot[i].state == SIM_SLOT_TAKEN && !sim_slot_live(shm, i))
            slot_release(st, i, now);
    }
    while (n > 0 && st->slot[n - 1].state != SIM_SLOT_TAKEN)
        n--;
    st->nslots = n;
}

static void state_expire(struct sim_state *st, int64_t now)
{
    for (unsigned d = 0; d < sim_ndevices(st); d++) {
        struct sim_device *dv = &st->dev[d];
        uint32_t kept = 0;

        if (dv->nlag > SIM_LAG_MAX)
            dv->nlag = SIM_LAG_MAX;
        for (uint32_t j = 0; j < dv->nlag; j++) {
            if (dv->lag[j].release_ns > now)
                dv->lag[kept++] = dv->lag[j];
        }
        dv->nlag = kept;
    }
}

/* After a dead owner: bring every count back into range. */
static void state_repair(struct sim_state *st)
{
    if (st->ndevices > SIM_DEVICES_MAX)
        st->ndevices = SIM_DEVICES_MAX;
    if (st->nslots > SIM_SLOTS_MAX)
        st->nslots = SIM_SLOTS_MAX;
    for (unsigned d = 0; d < SIM_DEVICES_MAX; d++)
        if (st->dev[d].nlag > SIM_LAG_MAX)
            st->dev[d].nlag = SIM_LAG_MAX;
}

int sim_lock(struct sim_shm *shm)
{
    int rc = pthread_mutex_lock(&shm->st->mutex);
    int64_t now;

    if (rc == EOWNERDEAD) {
        sim_debug("state lock owner died; recovering");
        state_repair(shm->st);
        pthread_mutex_consistent(&shm->st->mutex);
    } else if (rc != 0) {
        sim_debug("cannot lock the state: %s", strerror(rc));
        return GC_EIO;
    }
    now = sim_now_ns();
    state_collect(shm, now);
    state_expire(shm->st, now);
    return 0;
}

void sim_unlock(struct sim_shm *shm)
{
    pthread_mutex_unlock(&shm->st->mutex);
}

/* ---- accounting ---- */

uint64_t sim_charged_bytes(const struct sim_state *st, unsigned dev)
{
    uint64_t sum = 0;

    for (unsigned i = 0; i < state_nslots(st); i++)
        if (st->slot[i].state == SIM_SLOT_TAKEN)
            sum += st->slot[i].bytes[dev];
    return sum;
}

uint64_t sim_lagged_bytes(const struct sim_state *st, unsigned dev)
{
    const struct sim_device *d = &st->dev[dev];
    uint64_t sum = 0;

    for (uint32_t j = 0; j < d->nlag && j < SIM_LAG_MAX; j++)
        sum += d->lag[j].bytes;
    return sum;
}

uint64_t sim_free_bytes(const struct sim_state *st, unsigned dev)
{
    uint64_t used = sim_charged_bytes(st, dev) + sim_lagged_bytes(st, dev);
    uint64_t cap = st->dev[dev].capacity_bytes;

    return used < cap ? cap - used : 0;
}

int sim_slot_claim(struct sim_shm *shm, pid_t pid, int64_t lag_ns)
{
    struct sim_state *st = shm->st;

    for (unsigned i = 0; i < SIM_SLOTS_MAX; i++) {
        struct sim_slot *s = &st->slot[i];
        struct flock fl;

        if (s->state == SIM_SLOT_TAKEN)
            continue; /* live: sim_lock() released the dead ones */
        /* A free slot whose lock is still held belongs to a stray descriptor
         * (a forked child of a process whose slot was reset): skip it. */
        if (slot_lock_op(shm->fd, F_OFD_SETLK, F_WRLCK, i, &fl) < 0)
            continue;
        memset(s, 0, sizeof(*s));
        s->state = SIM_SLOT_TAKEN;
        s->pid = (int32_t)pid;
        s->generation = ++st->generation;
        s->lag_ns = lag_ns;
        if (i + 1 > st->nslots)
            st->nslots = i + 1;
        shm->own_slot = (int)i;
        return 0;
    }
    return GC_ELIMIT;
}

int sim_charge(struct sim_shm *shm, unsigned dev, uint64_t bytes)
{
    struct sim_state *st = shm->st;

    if (shm->own_slot < 0 || dev >= sim_ndevices(st))
        return GC_EINVAL;
    if (bytes > sim_free_bytes(st, dev)) {
        st->dev[dev].oom_count++;
        sim_debug("out of memory on device %u: %llu bytes asked, %llu free", dev,
                  (unsigned long long)bytes, (unsigned long long)sim_free_bytes(st, dev));
        return GC_EOOM;
    }
    st->slot[shm->own_slot].bytes[dev] += bytes;
    return 0;
}

void sim_uncharge(struct sim_shm *shm, unsigned dev, uint64_t bytes, int64_t lag_ns)
{
    struct sim_state *st = shm->st;
    struct sim_slot *s;

    if (shm->own_slot < 0 || dev >= sim_ndevices(st))
        return;
    s = &st->slot[shm->own_slot];
    if (bytes > s->bytes[dev])
        bytes = s->bytes[dev];
    s->bytes[dev] -= bytes;
    if (lag_ns > 0)
        sim_lag_add(st, dev, bytes, sim_now_ns() + lag_ns);
}

/* ---- the file ---- */

static void state_set_devices(struct sim_state *st, const struct sim_config *cfg)
{
    st->ndevices = cfg->ndevices;
    for (unsigned d = 0; d < SIM_DEVICES_MAX; d++) {
        memset(&st->dev[d], 0, sizeof(st->dev[d]));
        st->dev[d].capacity_bytes = d < cfg->ndevices ? cfg->capacity_bytes[d] : 0;
    }
}

static bool state_devices_equal(const struct sim_state *st, const struct sim_config *cfg)
{
    if (st->ndevices != cfg->ndevices)
        return false;
    for (unsigned d = 0; d < cfg->ndevices; d++)
        if (st->dev[d].capacity_bytes != cfg->capacity_bytes[d])
            return false;
    return true;
}

static int state_init(struct sim_state *st, const struct sim_config *cfg)
{
    pthread_mutexattr_t attr;
    int rc;

    memset(st, 0, sizeof(*st));
    st->version = SIM_VERSION;
    st->size = sizeof(*st);
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    rc = pthread_mutex_init(&st->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0)
        return GC_EIO;
    state_set_devices(st, cfg);
    __atomic_store_n(&st->magic, SIM_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

static bool state_valid(const struct sim_state *st)
{
    return __atomic_load_n(&st->magic, __ATOMIC_ACQUIRE) == SIM_MAGIC &&
           st->version == SIM_VERSION && st->size == sizeof(*st);
}

/* Under the flock: make the file a valid state, creating it if needed. */
static int state_file_prepare(int fd, const struct sim_config *cfg, bool create,
                              struct sim_state **ret_st)
{
    struct sim_state *st;
    struct stat sb;

    if (fstat(fd, &sb) < 0)
        return GC_EIO;
    if (sb.st_uid != geteuid())
        return GC_EFORBIDDEN;
    if ((size_t)sb.st_size != sizeof(struct sim_state)) {
        if (!create)
            return GC_EIO;
        /* New (size 0) or from another layout: start over. */
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, sizeof(struct sim_state)) < 0)
            return GC_EIO;
    }
    st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (st == MAP_FAILED)
        return GC_EIO;
    if (!state_valid(st)) {
        if (!create || state_init(st, cfg) < 0) {
            munmap(st, sizeof(*st));
            return GC_EIO;
        }
        sim_debug("created state '%s' with %u device(s)", cfg->state_path, cfg->ndevices);
    }
    *ret_st = st;
    return 0;
}

bool sim_in_use(const struct sim_shm *shm)
{
    const struct sim_state *st = shm->st;

    for (unsigned i = 0; i < state_nslots(st); i++) {
        const struct sim_slot *s = &st->slot[i];
        if (s->state != SIM_SLOT_TAKEN)
            continue;
        for (unsigned d = 0; d < SIM_DEVICES_MAX; d++)
            if (s->bytes[d] != 0 || s->has_ctx[d])
                return true;
    }
    return false;
}

int sim_shm_apply_devices(struct sim_shm *shm, const struct sim_config *cfg)
{
    int rc;

    if (!cfg->devices_set)
        return 0;
    rc = sim_lock(shm);
    if (rc < 0)
        return rc;
    if (!state_devices_equal(shm->st, cfg)) {
        if (sim_in_use(shm)) {
            sim_debug("GPUSIM_DEVICES differs from '%s', but live processes use it: kept",
                      shm->path);
        } else {
            sim_debug("GPUSIM_DEVICES differs from '%s': reinitialised", shm->path);
            state_set_devices(shm->st, cfg);
        }
    }
    sim_unlock(shm);
    return 0;
}

int sim_shm_open(struct sim_shm *ret_shm, const struct sim_config *cfg, bool create)
{
    struct sim_shm shm = {.fd = -1, .own_slot = -1};
    int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0);
    int rc;

    snprintf(shm.path, sizeof(shm.path), "%s", cfg->state_path);
    shm.fd = open(shm.path, flags, 0600);
    if (shm.fd < 0)
        return errno == ENOENT ? GC_ENOTFOUND : errno == EACCES ? GC_EFORBIDDEN : GC_EIO;
    while (flock(shm.fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            close(shm.fd);
            return GC_EIO;
        }
    }
    rc = state_file_prepare(shm.fd, cfg, create, &shm.st);
    flock(shm.fd, LOCK_UN);
    if (rc < 0) {
        close(shm.fd);
        return rc;
    }
    if (create) {
        rc = sim_shm_apply_devices(&shm, cfg);
        if (rc < 0) {
            sim_shm_close(&shm);
            return rc;
        }
    }
    *ret_shm = shm;
    return 0;
}

void sim_shm_close(struct sim_shm *shm)
{
    if (shm->st == NULL)
        return;
    munmap(shm->st, sizeof(*shm->st));
    close(shm->fd);
    shm->st = NULL;
    shm->fd = -1;
    shm->own_slot = -1;
}
