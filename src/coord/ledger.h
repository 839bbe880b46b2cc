/*
 * ledger.h - the coordinator's book of GPU memory: GPUs (with their last NVML
 * snapshot), residents and leases, and the accounting over them.
 *
 * Pure logic: no I/O, no clocks (times are passed in as monotonic ms), no
 * locks. The daemon owns one ledger under its lock and performs the I/O the
 * scheduler (sched.h) asks for.
 */
#ifndef GC_LEDGER_H
#define GC_LEDGER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/names.h"

#define GC_GPUS_MAX      16
#define GC_RESIDENTS_MAX 64
/* Leases not yet ended (queued, preparing, granted). The table grows with use up to this. */
#define GC_LEASES_MAX 4096
/* Ended leases remembered for GET /v1/leases/{id}. */
#define GC_LEASE_HISTORY      256
#define GC_SNAPSHOT_PROCS_MAX 256
#define GC_LEASE_ID_MAX       32
/* The last lease id issued: ids never wrap (a reused id would name two leases), and the
 * journal keeps them as JSON integers, signed 64-bit. */
#define GC_LEASE_ID_LAST (INT64_MAX - 1)
#define GC_URL_MAX       512
#define GC_REASON_MAX    320
/* An owner key: "uid:4294967295", "token", "addr:" and an IPv6 address. */
#define GC_OWNER_MAX 64
/* Residents one lease may evict (the exact search covers this many). */
#define GC_EVICT_MAX 16

/* Levels one resident may declare (fullest first), and a level name's length. */
#define GC_LEVELS_MAX     8
#define GC_LEVEL_NAME_MAX 32

#define GC_LEASE_PRIORITY_DEFAULT    100
#define GC_RESIDENT_PRIORITY_DEFAULT 10

enum gc_resident_state {
    GC_RES_LOADED,
    GC_RES_UNLOADING,
    GC_RES_UNLOADED,
    GC_RES_RELOADING,
    GC_RES_FAILED,
    GC_RES_GONE,
};

enum gc_restore_policy {
    GC_RESTORE_AUTO,   /* reload as soon as nothing queued needs the memory */
    GC_RESTORE_DEMAND, /* stay unloaded until a demand */
    GC_RESTORE_NEVER,  /* stay unloaded until reloaded by hand */
};

enum gc_on_stuck {
    GC_STUCK_FAIL, /* the lease fails, the resident is restored */
    GC_STUCK_KILL, /* SIGTERM, SIGKILL, wait for the driver; the resident is gone */
};

enum gc_lease_state {
    GC_LEASE_QUEUED,
    GC_LEASE_PREPARING,
    GC_LEASE_GRANTED,
    GC_LEASE_RELEASED,
    GC_LEASE_EXPIRED,
    GC_LEASE_FAILED,
};

enum gc_lease_kind {
    GC_KIND_HOLDER, /* an ordinary lease for a holder */
    GC_KIND_DEMAND, /* a resident asking for its memory back: granting it reloads the resident */
    GC_KIND_GROWTH, /* more bytes for a granted lease (growth.h): granting it grows the parent */
};

/* Ancestors remembered per process (parent, grandparent, ...). */
#define GC_CHAIN_MAX 6

/*
 * A process NVML lists. Its memory belongs to the nearest of itself and its
 * ancestors that is a resident or a granted lease holder: a command started by
 * `gpucoord run`, or a server's worker processes, count for the pid that holds
 * the lease or registered the resident.
 */
struct gc_snapshot_proc {
    uint32_t pid;
    uint64_t used_bytes;          /* UINT64_MAX: unknown */
    uint32_t chain[GC_CHAIN_MAX]; /* ancestors, nearest first; 0 ends the list */
    bool absent;                  /* no such pid here: a host pid seen from a container */
};

/*
 * How a GPU's memory is attributed. Inside a container without the host's PID
 * namespace NVML lists host pids, or our pids without their usage: then nothing
 * can be told per process, and only the device's total tells the truth.
 */
enum gc_attribution {
    GC_ATTR_PROCESS, /* per process, from NVML's list (DESIGN.md section 3) */
    GC_ATTR_DEVICE,  /* by declaration: residents their bytes, leases theirs; the
                        rest of total - free is unexplained */
};

struct gc_gpu {
    unsigned index;
    char uuid[96];
    char name[96];
    uint64_t total_bytes;
    uint64_t budget_bytes; /* 0: none (use total) */
    uint64_t reserve_bytes;
    /* Last NVML reading. */
    uint64_t used_bytes;
    uint64_t free_bytes;
    unsigned nprocs;
    /* The reading's processes: allocated to the largest list read so far (at most
     * GC_SNAPSHOT_PROCS_MAX), owned by the ledger. */
    struct gc_snapshot_proc *procs;
    unsigned procs_cap;
    int64_t snapshot_ms; /* when the reading was taken (monotonic) */
    enum gc_attribution attribution;
    const char *attribution_why; /* the evidence for it (a static string) */
};

/* One level of a resident: what it holds above its floor there. */
struct gc_level {
    char name[GC_LEVEL_NAME_MAX + 1];
    uint64_t bytes;
};

struct gc_resident {
    bool in_use;
    char name[GC_NAME_MAX + 1];
    char protocol[16];
    char url[GC_URL_MAX];
    pid_t pid; /* 0: none */
    uint64_t pid_start_ticks;
    unsigned gpu;
    uint64_t bytes; /* freed by an unload (declared or learned); its first level's bytes */
    /* Levels, fullest first (levels[0].bytes is not read: bytes is). nlevels < 2: two,
     * "loaded" (bytes) and "off" (0). */
    unsigned nlevels;
    struct gc_level levels[GC_LEVELS_MAX];
    unsigned level;        /* where it is (see gc_resident_level); unloading: from */
    unsigned target_level; /* unloading: where to */
    int priority;
    enum gc_restore_policy restore;
    enum gc_on_stuck on_stuck;
    double unload_timeout_s, reload_timeout_s, verify_timeout_s;

    enum gc_resident_state state;
    bool evicted;          /* unloaded by the coordinator: to be restored */
    bool busy;             /* an unload/reload job is running */
    uint64_t usage_before; /* its NVML usage when the current job started */
    uint64_t floor_bytes;  /* its usage when last verified unloaded (context etc.); 0: unknown */
    int64_t unloaded_since_ms;
    int64_t last_used_ms;   /* last demand or load: for LRU */
    int64_t next_reload_ms; /* backoff: no restore before this */
    unsigned reload_failures;
    double last_unload_s, last_reload_s;
    unsigned unloads, reloads;
    char reason[GC_REASON_MAX]; /* why failed/gone, or the last problem */
    /* Its protocol can start it again after its process exits (process): an exit
     * leaves it unloaded instead of gone. */
    bool restartable;
    /* Requests in flight through it (gpucoord proxy): an in-use resident is not
     * evicted until they end, or until a lease has waited drain_timeout_s. */
    unsigned uses;
    double drain_timeout_s;
    int64_t drain_since_ms; /* a lease has waited for its uses since (0: none waits) */
};

struct gc_lease {
    bool in_use;
    unsigned slot; /* the ledger's bookkeeping: its index in ledger->leases while active */
    char id[GC_LEASE_ID_MAX];
    uint64_t seq; /* arrival order */
    enum gc_lease_kind kind;
    char holder[GC_NAME_MAX + 1]; /* demand: the resident's name */
    char owner[GC_OWNER_MAX];     /* who asked for it ("uid:1000"); "" internal */
    pid_t pid;                    /* 0: none */
    uint64_t pid_start_ticks;
    int gpu_req; /* index or -1 for any */
    int gpu;     /* assigned, -1 until preparing/granted */
    uint64_t bytes;
    int priority;       /* its place in the queue */
    int evict_priority; /* it may evict residents below this (a demand: its resident's) */
    double ttl_s;       /* 0: no TTL (only with a pid) */
    enum gc_lease_state state;
    int64_t created_ms, granted_ms, ended_ms, heartbeat_ms;
    int64_t lag_since_ms; /* preparing, evictions done, waiting for the driver (0: not) */
    unsigned nevicted;
    char evicted[GC_EVICT_MAX][GC_NAME_MAX + 1];
    unsigned evicting; /* evictions still running for it */
    char reason[GC_REASON_MAX];
    int error;                    /* GC_E* when failed */
    char parent[GC_LEASE_ID_MAX]; /* growth: the lease it grows */
    bool merged;                  /* growth: granted, its bytes moved into the parent */
};

struct gc_ledger_config {
    int64_t max_unloaded_ms;        /* restore overdue residents despite the queue (0: never) */
    int64_t starvation_ms;          /* a head lease waiting this long stops backfill on its GPU */
    int64_t free_lag_ms;            /* a preparing lease keeps its claim this long while memory its
                                       evictions freed still shows as used (driver lag) */
    unsigned queue_max;             /* queued leases at once */
    unsigned leases_per_holder_max; /* per owner and holder name */
    unsigned leases_per_owner_max;  /* per owner, whatever the holder names */
};

/* A registered pid in gc_ledger_account's scratch space. */
struct gc_owner_entry {
    pid_t pid;
    uint64_t usage;  /* NVML usage of the processes that count for it */
    uint64_t leased; /* its granted leases' bytes */
};

/*
 * The ledger allocates in proportion to what it holds: leases one by one, the table
 * of them and the scratch space below doubling as leases arrive (up to
 * GC_LEASES_MAX), ended leases as they are remembered, a GPU's process list as
 * long as its longest reading. An idle ledger holds almost nothing besides this
 * struct. gc_ledger_free gives it all back.
 */
struct gc_ledger {
    struct gc_ledger_config config;
    unsigned ngpus;
    struct gc_gpu gpus[GC_GPUS_MAX];
    struct gc_resident residents[GC_RESIDENTS_MAX];
    /* Active leases, packed: leases[0 .. nleases - 1], each allocated on its own, so
     * that a struct gc_lease * stays valid while other leases come and go; ending a
     * lease moves the last pointer into its place (and its slot). */
    struct gc_lease **leases;
    unsigned nleases;    /* leases active */
    unsigned leases_cap; /* room in leases and in the scratch space */
    /* Ended leases, oldest overwritten first once all GC_LEASE_HISTORY are in use
     * (NULL: not yet used). An ended lease moves here as it is (same pointer). */
    struct gc_lease *history[GC_LEASE_HISTORY];
    unsigned history_next;
    uint64_t next_seq;
    uint64_t next_id;
    /* Scratch space for gc_sched_step and gc_ledger_account (keeps them reentrant
     * across ledgers; callers serialise calls on one ledger). Reserved as leases and
     * residents are added, so that neither ever allocates or fails: order and
     * refused hold leases_cap, owners GC_RESIDENTS_MAX + leases_cap (NULL until the
     * first resident or lease). */
    unsigned *scratch_order;
    bool *scratch_refused;
    struct gc_owner_entry *scratch_owners;
};

/* The accounting of one GPU (DESIGN.md section 3), in bytes. */
struct gc_account {
    uint64_t cap; /* min(total, budget) */
    uint64_t reserve;
    uint64_t unattributed; /* NVML used that no listed process explains (device
                              attribution: all that declarations do not explain) */
    uint64_t foreign;      /* processes that are neither residents nor holders */
    uint64_t residents;    /* residents' usage (+ reloads in flight) */
    uint64_t leases;       /* granted leases: max(bytes, holder usage) */
    uint64_t committed;    /* sum of the four above */
    uint64_t claims;       /* preparing leases' bytes */
    int64_t headroom;      /* cap - reserve - committed - claims (may be negative) */
    uint64_t fixed;        /* what no eviction or release frees: foreign processes and
                              residents the lease may not evict (for never-fits) */
};

/* Initialises an empty ledger; it allocates nothing yet. The caller owns the struct
 * and frees what it comes to hold with gc_ledger_free. */
void gc_ledger_init(struct gc_ledger *ledger, const struct gc_ledger_config *config);
/* Frees what ledger holds (leases, history, scratch space, process lists), not the
 * struct itself, and leaves it empty as after gc_ledger_init (with the same config
 * and no GPU). NULL is a no-op. Pointers to its leases are invalid afterwards. */
void gc_ledger_free(struct gc_ledger *ledger);

/* For tests of out-of-memory paths: the ledger's next after allocations succeed and
 * those after fail, in every ledger of the process, until called with -1 (never fail,
 * the default). Not thread-safe. */
void gc_ledger_fail_allocs_after(int after);

/* Adds a GPU (index = ledger->ngpus); GC_ELIMIT past GC_GPUS_MAX. */
int gc_ledger_add_gpu(struct gc_ledger *ledger, const char *uuid, const char *name,
                      uint64_t total_bytes, uint64_t budget_bytes, uint64_t reserve_bytes);
/* Stores an NVML reading of gpu taken at taken_ms; procs are copied (truncated at
 * GC_SNAPSHOT_PROCS_MAX, or at the room already allocated when more cannot be: the
 * rest then counts as unattributed) and the GPU's attribution follows
 * gc_ledger_attribution_detect. A reading older than the one stored is ignored
 * (false): readings taken in parallel may arrive out of order. */
bool gc_ledger_set_snapshot(struct gc_ledger *ledger, unsigned gpu, uint64_t used_bytes,
                            uint64_t free_bytes, const struct gc_snapshot_proc *procs,
                            unsigned nprocs, int64_t taken_ms);
/*
 * The attribution the last snapshot of gpu calls for, from current (what the GPU
 * uses now); *ret_why gets a static sentence saying why. Device when processes are
 * listed but their usage is unknown or 0 for all, or none of their pids exists here,
 * or when none is listed although a loaded resident with a pid should show; process
 * when listed processes of ours come with their usage; otherwise current stays.
 * gc_ledger_set_snapshot applies it.
 */
enum gc_attribution gc_ledger_attribution_detect(const struct gc_ledger *ledger, unsigned gpu,
                                                 enum gc_attribution current, const char **ret_why);
const char *gc_attribution_name(enum gc_attribution attribution);
/* The GPU memory pid accounts for in the last snapshot: its own and that of listed
 * descendants whose nearest resident or holder ancestor it is (0 if none, and always
 * 0 on a GPU in device attribution, where NVML's list means nothing). */
uint64_t gc_ledger_proc_usage(const struct gc_ledger *ledger, unsigned gpu, pid_t pid);

/* The resident or granted-holder pid a listed process counts for (itself or its
 * nearest such ancestor), or 0 when it is foreign. */
pid_t gc_ledger_proc_owner(const struct gc_ledger *ledger, unsigned gpu,
                           const struct gc_snapshot_proc *proc);

/* The accounting of gpu; for_lease (may be NULL) selects which residents count as
 * evictable in ret->fixed (those of lower priority than the lease). */
void gc_ledger_account(const struct gc_ledger *ledger, unsigned gpu,
                       const struct gc_lease *for_lease, struct gc_account *ret);

/* Residents. */
struct gc_resident *gc_ledger_resident_find(struct gc_ledger *ledger, const char *name);
/* A free slot (zeroed, in_use set) or NULL when full or out of memory (for the
 * scratch space it reserves). */
struct gc_resident *gc_ledger_resident_alloc(struct gc_ledger *ledger);
void gc_ledger_resident_remove(struct gc_ledger *ledger, struct gc_resident *resident);
/* Bytes an unload of r would free now in the accounting (its declared/learned bytes;
 * its usage when they are unknown). */
uint64_t gc_ledger_resident_freeable(const struct gc_ledger *ledger, const struct gc_resident *r);
/* What r counts for in the accounting now: its usage, but at least its floor plus its
 * bytes while it is loaded, unloading or reloading. */
uint64_t gc_ledger_resident_counted(const struct gc_ledger *ledger, const struct gc_resident *r);

/* Levels (fullest first; a resident without declared levels has "loaded" and "off"). */
unsigned gc_resident_nlevels(const struct gc_resident *r);
/* The level r is at: 0 when loaded, the last when failed or gone; an unloaded or
 * reloading resident whose level was never set (0) counts as at the last. */
unsigned gc_resident_level(const struct gc_resident *r);
/* Bytes r holds above its floor at level (level 0: r->bytes). */
uint64_t gc_resident_level_bytes(const struct gc_resident *r, unsigned level);
const char *gc_resident_level_name(const struct gc_resident *r, unsigned level);
/* The index of level name, or -1. */
int gc_resident_level_find(const struct gc_resident *r, const char *name);
/* Bytes a reload must bring back: its first level's less what its level holds. */
uint64_t gc_resident_missing_bytes(const struct gc_resident *r);

/* Leases. */
/* Creates a lease (state queued, new id and seq); *ret_lease stays valid until the
 * lease ends (and while it is remembered in the history after). GC_ELIMIT when the
 * table (GC_LEASES_MAX), the queue or the holder's lease count is full, or ids are
 * exhausted (past GC_LEASE_ID_LAST); GC_ENOMEM when memory for it cannot be
 * allocated; on error nothing changes. */
int gc_ledger_lease_new(struct gc_ledger *ledger, enum gc_lease_kind kind, const char *holder,
                        pid_t pid, int gpu_req, uint64_t bytes, int priority, double ttl_s,
                        int64_t now_ms, struct gc_lease **ret_lease);
/* The same for a lease asked for by owner: the per-holder cap counts the leases of
 * that owner under that holder name, and the per-owner cap all of its active leases,
 * so that new holder names do not get round it. GC_ELIMIT as above. */
int gc_ledger_lease_new_owned(struct gc_ledger *ledger, enum gc_lease_kind kind, const char *owner,
                              const char *holder, pid_t pid, int gpu_req, uint64_t bytes,
                              int priority, double ttl_s, int64_t now_ms,
                              struct gc_lease **ret_lease);
/* Re-creates a lease exactly as given (crash recovery): same id, seq and state (a
 * copy: lease stays the caller's). GC_ELIMIT when the table is full, GC_ECONFLICT
 * when the id exists, GC_ENOMEM when memory cannot be allocated; on error nothing
 * changes. */
int gc_ledger_lease_adopt(struct gc_ledger *ledger, const struct gc_lease *lease);
/* An active lease by id, or NULL. */
struct gc_lease *gc_ledger_lease_find(struct gc_ledger *ledger, const char *id);
/* An active or remembered ended lease by id, or NULL. */
const struct gc_lease *gc_ledger_lease_lookup(const struct gc_ledger *ledger, const char *id);
/* Ends a lease (released / expired / failed), moving it to the history, where the
 * oldest remembered lease is forgotten (freed) when all GC_LEASE_HISTORY are in use.
 * Returns the ended lease: lease itself, valid as long as it is remembered. The last
 * active lease takes its index in ledger->leases. Never fails, never allocates. */
const struct gc_lease *gc_ledger_lease_end(struct gc_ledger *ledger, struct gc_lease *lease,
                                           enum gc_lease_state state, int error, const char *reason,
                                           int64_t now_ms);
/* Number of queued/preparing leases ahead of lease in scheduling order (0-based). */
unsigned gc_ledger_queue_position(const struct gc_ledger *ledger, const struct gc_lease *lease);
/* Fills ret (room for GC_LEASES_MAX) with the queued/preparing leases in scheduling
 * order, first in line first, so that ret[i] is at position i; returns their number.
 * O(n log n): for views of the whole queue, where one position per lease would be
 * quadratic. */
unsigned gc_ledger_queue_order(const struct gc_ledger *ledger, const struct gc_lease **ret);
/* Active demand lease for resident name, or NULL. */
struct gc_lease *gc_ledger_demand_find(struct gc_ledger *ledger, const char *name);

/* Names. */
const char *gc_resident_state_name(enum gc_resident_state state);
const char *gc_lease_state_name(enum gc_lease_state state);
const char *gc_restore_name(enum gc_restore_policy policy);
const char *gc_on_stuck_name(enum gc_on_stuck on_stuck);
/* Parse a name back; GC_EINVAL if unknown. */
int gc_resident_state_parse(const char *name, enum gc_resident_state *ret);
int gc_lease_state_parse(const char *name, enum gc_lease_state *ret);
int gc_restore_parse(const char *name, enum gc_restore_policy *ret);
int gc_on_stuck_parse(const char *name, enum gc_on_stuck *ret);

#endif
