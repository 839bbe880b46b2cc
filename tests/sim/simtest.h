/*
 * simtest.h - helpers for the gpusim tests: a private state file per test,
 * child processes that hold simulated GPU memory, running programs.
 *
 * The test binaries link libcuda.so.1 and libnvidia-ml.so.1 from build/sim
 * directly. The harness's main process never calls cuInit, so every forked
 * test (and every process forked by a test before it calls cuInit itself) is
 * a fresh driver client.
 */
#ifndef GPUSIM_SIMTEST_H
#define GPUSIM_SIMTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "gpu/gpu_abi.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/*
 * simtest_env: a fresh GPUSIM_STATE in a new temporary folder; every other
 * GPUSIM_* variable is unset, then GPUSIM_DEVICES = devices (NULL: unset) and
 * GPUSIM_CONTEXT_BYTES = context (NULL: unset). Returns the state path.
 */
const char *simtest_env(const char *devices, const char *context);
/* Removes the state file and its folder (best effort). */
void simtest_cleanup(void);

/* ---- simtest_holder.c: needs the gpusim libraries linked ---- */

/* What a holder reports once it has allocated (or failed to). */
struct simtest_report {
    int32_t rc; /* first failing CUresult, 0 = all allocated */
    int32_t pid;
    uint64_t allocated;  /* bytes it holds besides its context */
    uint64_t free_bytes; /* cuMemGetInfo after allocating */
    uint64_t total_bytes;
};

/*
 * simtest_holder: forks a process that creates a context on dev, allocates
 * bytes in chunks of chunk (0: one chunk; bytes 0: the context only), reports
 * into *ret_report, then waits: SIGUSR1 frees everything and exits 0. It dies
 * with the test (PR_SET_PDEATHSIG). Returns its pid.
 */
pid_t simtest_holder(unsigned dev, uint64_t bytes, uint64_t chunk,
                     struct simtest_report *ret_report);
/* SIGUSR1 and reap; asserts a clean exit 0. */
void simtest_holder_stop(pid_t pid);
/* SIGKILL and reap. */
void simtest_kill(pid_t pid);

/* NVML (nvmlInit done by the caller) for device 0..: used and process count. */
uint64_t simtest_nvml_used(unsigned dev);
unsigned simtest_nvml_nprocs(unsigned dev);
/* Bytes NVML lists for pid on dev, or UINT64_MAX if it is not listed. */
uint64_t simtest_nvml_proc_bytes(unsigned dev, pid_t pid);
uint64_t simtest_oom_count(unsigned dev);

/* ---- simtest.c ---- */

/* Monotonic seconds. */
double simtest_now(void);
/* Resident set size of this process in bytes. */
uint64_t simtest_rss_bytes(void);

/*
 * simtest_run: runs argv (argv[0] a path) with extra environment entries
 * ("NAME=value", NULL-terminated list or NULL), stdin from /dev/null; captures
 * stdout and stderr together into out (NUL-terminated, truncated to outlen).
 * Returns the exit status, or 128 + signal.
 */
int simtest_run(char *const argv[], char *const env_extra[], char *out, size_t outlen);

/* Path from environment variable name (set by meson), asserted present. */
const char *simtest_path_env(const char *name);

#endif
