/*
 * sim.h - gpusim internals shared by libcuda.so.1, libnvidia-ml.so.1 and gpusim-ctl.
 *
 * All processes share one state file (GPUSIM_STATE), mapped MAP_SHARED and
 * guarded by a process-shared robust mutex: a process killed while holding it
 * leaves it EOWNERDEAD, and the next locker marks it consistent and goes on.
 *
 * A process that creates a context takes a *slot*: a record of its pid and the
 * bytes it holds per device. Slot i is owned through an OFD lock
 * (F_OFD_SETLK) on byte SIM_LOCK_BASE + i of the state file itself, taken on
 * an O_CLOEXEC descriptor. The kernel drops the lock when the process's files
 * close at exit -- before the process becomes a zombie -- so checking a slot's
 * owner is one F_OFD_GETLK, no /proc scan and no pid (which could be reused).
 * A forked child that does not exec shares the descriptor and so keeps the
 * lock, and the memory, alive: the real driver behaves the same way.
 *
 * Every entry point locks the state through sim_lock(), which first releases
 * the slots of dead processes and expires lagged frees. Freed bytes (cuMemFree,
 * a released context, a dead process) sit in a per-device lag list until
 * GPUSIM_FREE_LAG_MS has passed; until then they count as used.
 *
 * Functions return 0 or a negative GC_E* code (src/common/err.h).
 */
#ifndef GPUSIM_SIM_H
#define GPUSIM_SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Marks a symbol the libraries export (everything else is hidden). */
#define SIM_API __attribute__((visibility("default")))
/* Exports name as another name of target (same signature). */
#define SIM_ALIAS(name, target) __typeof__(target) name __attribute__((alias(#target)))

#define SIM_DEVICES_MAX 16
#define SIM_SLOTS_MAX   512
/* Pending frees per device; when full, new ones merge into the latest. */
#define SIM_LAG_MAX  256
#define SIM_PATH_MAX 1024
/* OFD lock of slot i: byte SIM_LOCK_BASE + i (past the end of the file). */
#define SIM_LOCK_BASE (1LL << 24)
/* Longest accepted GPUSIM_FREE_LAG_MS (one hour). */
#define SIM_LAG_MS_MAX 3600000LL
/* Largest accepted GPUSIM_*_GBPS. */
#define SIM_GBPS_MAX 1e6

#define SIM_MAGIC   0x31304d4953555047ULL /* "GPUSIM01" */
#define SIM_VERSION 1

#define SIM_DEFAULT_DEVICES "24564Mi"
#define SIM_DEFAULT_CONTEXT "300Mi"
/* A device of exactly this size is named like the card it imitates. */
#define SIM_RTX4090_BYTES  (24564ULL << 20)
#define SIM_DRIVER_VERSION "gpusim-0.1.0"
#define SIM_CUDA_VERSION   12040
#define SIM_NAME_MAX       96
#define SIM_UUID_TEXT_MAX  48

/* ---- configuration (environment) ---- */

/* How NVML's process list reports processes to the caller (GPUSIM_PIDS), as a
 * container without the host's PID namespace sees it. */
enum sim_pids {
    SIM_PIDS_HOST,        /* real pids, real usage (the host's view) */
    SIM_PIDS_FOREIGN,     /* pids shifted past PID_MAX_LIMIT: none exists here */
    SIM_PIDS_UNAVAILABLE, /* real pids, usage NVML_VALUE_NOT_AVAILABLE */
    SIM_PIDS_ZERO,        /* real pids, usage 0 */
};
/* What SIM_PIDS_FOREIGN adds to a pid: PID_MAX_LIMIT on 64-bit Linux, so that the
 * result is never a pid of this machine. */
#define SIM_FOREIGN_PID_SHIFT 4194304u

struct sim_config {
    char state_path[SIM_PATH_MAX];
    unsigned ndevices;
    bool devices_set; /* GPUSIM_DEVICES was given explicitly */
    uint64_t capacity_bytes[SIM_DEVICES_MAX];
    uint64_t context_bytes;
    bool backed;
    double h2d_gbps; /* 0 = instant */
    double d2h_gbps;
    int64_t free_lag_ns;
    enum sim_pids pids; /* how NVML's process list names processes (GPUSIM_PIDS) */
    bool debug;
};

/*
 * sim_config_load: reads the GPUSIM_* variables into *ret_cfg. Returns 0, or
 * GC_EINVAL when one is malformed (the variable is named in errbuf).
 */
int sim_config_load(struct sim_config *ret_cfg, char *errbuf, size_t errbuf_len);

/* Prints to stderr when GPUSIM_DEBUG=1; a library never prints otherwise. */
void sim_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * sim_visible_devices: the physical devices a CUDA_VISIBLE_DEVICES value (NULL:
 * unset) lets the driver API see among ndevices, in its order, into ret_phys
 * (SIM_DEVICES_MAX entries); returns how many. As the real driver: entries are
 * indices or "GPU-" UUIDs (a unique prefix is enough); the first invalid,
 * ambiguous or repeated entry ends the list; an empty value shows none.
 */
unsigned sim_visible_devices(const char *value, unsigned ndevices, unsigned *ret_phys);

/* ---- the shared state (the file's layout; all fields guarded by mutex) ---- */

struct sim_lag {
    int64_t release_ns; /* CLOCK_MONOTONIC time the bytes become free */
    uint64_t bytes;
};

struct sim_device {
    uint64_t capacity_bytes;
    uint64_t oom_count;
    uint32_t nlag;
    uint32_t pad_;
    struct sim_lag lag[SIM_LAG_MAX];
};

enum { SIM_SLOT_FREE = 0, SIM_SLOT_TAKEN = 1 };

struct sim_slot {
    uint32_t state;
    int32_t pid;
    uint64_t generation; /* bumped at every claim */
    int64_t lag_ns;      /* the owner's GPUSIM_FREE_LAG_MS, for its death */
    uint8_t has_ctx[SIM_DEVICES_MAX];
    uint64_t bytes[SIM_DEVICES_MAX]; /* context + allocations, per device */
};

struct sim_state {
    uint64_t magic; /* written last at creation */
    uint32_t version;
    uint32_t size;
    pthread_mutex_t mutex;
    uint32_t ndevices;
    uint32_t nslots; /* slots [0, nslots) may be taken */
    uint64_t generation;
    struct sim_device dev[SIM_DEVICES_MAX];
    struct sim_slot slot[SIM_SLOTS_MAX];
};

/* One process's handle on the state (each library has its own). */
struct sim_shm {
    int fd;
    struct sim_state *st;
    int own_slot; /* the slot this handle owns through its OFD lock, or -1 */
    char path[SIM_PATH_MAX];
};

/*
 * sim_shm_open: maps the state file cfg->state_path. With create, a missing or
 * invalid file is created and initialised from cfg under an flock, so that
 * processes starting together agree on one file; without, a missing file is
 * GC_ENOTFOUND. When cfg->devices_set and the file holds another device config,
 * it is reinitialised in place if no live process holds memory in it, and kept
 * otherwise. Returns 0, GC_ENOTFOUND, GC_EFORBIDDEN (not ours) or GC_EIO.
 */
int sim_shm_open(struct sim_shm *ret_shm, const struct sim_config *cfg, bool create);
/*
 * sim_shm_apply_devices: when cfg->devices_set and the state holds another
 * device config, reinitialises the devices if no live process holds memory
 * (keeps them otherwise). Called by sim_shm_open(create) and on a re-init.
 */
int sim_shm_apply_devices(struct sim_shm *shm, const struct sim_config *cfg);
/* Unmaps and closes (dropping any slot lock). A zeroed or closed shm is a no-op. */
void sim_shm_close(struct sim_shm *shm);

/*
 * sim_lock: locks the state (recovering from a dead owner), releases the slots
 * of dead processes into the lag list and expires lag entries that are due.
 * Returns 0 or GC_EIO (the mutex is unrecoverable).
 */
int sim_lock(struct sim_shm *shm);
void sim_unlock(struct sim_shm *shm);

/* The rest need the lock held. */

/* Number of devices (bounded by SIM_DEVICES_MAX). */
unsigned sim_ndevices(const struct sim_state *st);
/* Bytes charged on dev to live processes. */
uint64_t sim_charged_bytes(const struct sim_state *st, unsigned dev);
/* Bytes freed on dev but not yet available (GPUSIM_FREE_LAG_MS). */
uint64_t sim_lagged_bytes(const struct sim_state *st, unsigned dev);
/* capacity - charged - lagged, never below 0. */
uint64_t sim_free_bytes(const struct sim_state *st, unsigned dev);
/* True when slot i is taken and its owner alive (our own slot counts as alive). */
bool sim_slot_live(const struct sim_shm *shm, unsigned i);
/* True when a live process holds memory or a context on any device. */
bool sim_in_use(const struct sim_shm *shm);

/*
 * sim_slot_claim: takes a free (or dead) slot for this process: OFD-locks it,
 * records pid and lag. Sets shm->own_slot. Returns 0 or GC_ELIMIT (all taken).
 */
int sim_slot_claim(struct sim_shm *shm, pid_t pid, int64_t lag_ns);
/*
 * sim_charge: adds bytes to the own slot on dev if they fit in the free
 * memory; otherwise counts an OOM on dev and returns GC_EOOM.
 */
int sim_charge(struct sim_shm *shm, unsigned dev, uint64_t bytes);
/* Takes bytes off the own slot on dev; they come back after lag_ns. */
void sim_uncharge(struct sim_shm *shm, unsigned dev, uint64_t bytes, int64_t lag_ns);
/* Queues bytes on dev to become free at release_ns (0 bytes: nothing). */
void sim_lag_add(struct sim_state *st, unsigned dev, uint64_t bytes, int64_t release_ns);

/* ---- small helpers ---- */

int64_t sim_now_ns(void);
/* Sleeps until CLOCK_MONOTONIC reaches deadline_ns (restarting on signals). */
void sim_sleep_until_ns(int64_t deadline_ns);
/* Device name: the RTX 4090 name for exactly 24564Mi, else "gpusim GPU". */
const char *sim_device_name(uint64_t capacity_bytes);
/* The 16 UUID bytes of device index. */
void sim_device_uuid(unsigned index, unsigned char ret_uuid[16]);
/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into buf (>= SIM_UUID_TEXT_MAX). */
void sim_device_uuid_text(unsigned index, char *buf, size_t buflen);

#endif
