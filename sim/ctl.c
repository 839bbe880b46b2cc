/*
 * ctl.c - gpusim-ctl: look at and reset gpusim's shared state.
 *
 *   gpusim-ctl status [--json]   devices, capacity, used, lagged, free, OOM count,
 *                                processes (pid, bytes)
 *   gpusim-ctl reset [--force]   remove the state file; refused while a live
 *                                process holds memory in it, unless --force
 *
 * The state file is GPUSIM_STATE (default /dev/shm/gpusim-$UID); neither
 * command creates it. Exit status: 0 done, 1 error, 64 bad usage.
 */
#include "sim.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/size.h"

#define CTL_EXIT_USAGE 64

struct ctl_proc {
    int pid;
    uint64_t bytes;
};

struct ctl_device {
    uint64_t capacity, charged, lagged, free_bytes, ooms;
    unsigned nprocs;
    struct ctl_proc procs[SIM_SLOTS_MAX];
};

static struct ctl_device devices[SIM_DEVICES_MAX];

static void usage(FILE *f)
{
    fprintf(f, "usage: gpusim-ctl status [--json]\n"
               "       gpusim-ctl reset [--force]\n"
               "The state file is $GPUSIM_STATE (default /dev/shm/gpusim-$UID).\n");
}

static int open_state(struct sim_shm *shm, struct sim_config *cfg)
{
    char err[256];
    int rc = sim_config_load(cfg, err, sizeof(err));

    if (rc < 0) {
        fprintf(stderr, "gpusim-ctl: %s\n", err);
        return rc;
    }
    rc = sim_shm_open(shm, cfg, false);
    if (rc == GC_ENOTFOUND)
        fprintf(stderr, "gpusim-ctl: no gpusim state at '%s'\n", cfg->state_path);
    else if (rc < 0)
        fprintf(stderr, "gpusim-ctl: cannot open '%s': %s\n", cfg->state_path,
                gpucoord_strerror(rc));
    return rc;
}

/* Copies what status shows out of the state (under its lock). */
static unsigned snapshot(struct sim_shm *shm)
{
    const struct sim_state *st = shm->st;
    unsigned ndev = sim_ndevices(st);

    for (unsigned d = 0; d < ndev; d++) {
        struct ctl_device *cd = &devices[d];

        cd->capacity = st->dev[d].capacity_bytes;
        cd->charged = sim_charged_bytes(st, d);
        cd->lagged = sim_lagged_bytes(st, d);
        cd->free_bytes = sim_free_bytes(st, d);
        cd->ooms = st->dev[d].oom_count;
        cd->nprocs = 0;
        for (unsigned i = 0; i < SIM_SLOTS_MAX && i < st->nslots; i++) {
            const struct sim_slot *s = &st->slot[i];
            if (s->state == SIM_SLOT_TAKEN && s->has_ctx[d])
                cd->procs[cd->nprocs++] = (struct ctl_proc){s->pid, s->bytes[d]};
        }
    }
    return ndev;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(const char *path, unsigned ndev)
{
    printf("{\"state\":");
    json_string(path);
    printf(",\"devices\":[");
    for (unsigned d = 0; d < ndev; d++) {
        const struct ctl_device *cd = &devices[d];
        char uuid[SIM_UUID_TEXT_MAX];

        sim_device_uuid_text(d, uuid, sizeof(uuid));
        printf("%s{\"index\":%u,\"name\":", d ? "," : "", d);
        json_string(sim_device_name(cd->capacity));
        printf(",\"uuid\":");
        json_string(uuid);
        printf(",\"capacity_bytes\":%llu,\"used_bytes\":%llu,\"lagged_bytes\":%llu,"
               "\"free_bytes\":%llu,\"oom_count\":%llu,\"processes\":[",
               (unsigned long long)cd->capacity, (unsigned long long)cd->charged,
               (unsigned long long)cd->lagged, (unsigned long long)cd->free_bytes,
               (unsigned long long)cd->ooms);
        for (unsigned i = 0; i < cd->nprocs; i++)
            printf("%s{\"pid\":%d,\"bytes\":%llu}", i ? "," : "", cd->procs[i].pid,
                   (unsigned long long)cd->procs[i].bytes);
        printf("]}");
    }
    printf("]}\n");
}

static void print_text(const char *path, unsigned ndev)
{
    char a[GC_SIZE_BUF], b[GC_SIZE_BUF], c[GC_SIZE_BUF], e[GC_SIZE_BUF];

    printf("state %s\n", path);
    for (unsigned d = 0; d < ndev; d++) {
        const struct ctl_device *cd = &devices[d];
        char uuid[SIM_UUID_TEXT_MAX];

        sim_device_uuid_text(d, uuid, sizeof(uuid));
        printf("gpu %u: %s %s\n", d, sim_device_name(cd->capacity), uuid);
        printf("  capacity %s  used %s  lagged %s  free %s  ooms %llu\n",
               gc_size_format(cd->capacity, a, sizeof(a)),
               gc_size_format(cd->charged, b, sizeof(b)), gc_size_format(cd->lagged, c, sizeof(c)),
               gc_size_format(cd->free_bytes, e, sizeof(e)), (unsigned long long)cd->ooms);
        for (unsigned i = 0; i < cd->nprocs; i++)
            printf("  pid %d  %s (%llu bytes)\n", cd->procs[i].pid,
                   gc_size_format(cd->procs[i].bytes, a, sizeof(a)),
                   (unsigned long long)cd->procs[i].bytes);
    }
}

static int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    struct sim_config cfg;
    struct sim_shm shm;
    bool json = false;
    unsigned ndev;
    int opt;

    while ((opt = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
        if (opt != 'j') {
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
        json = true;
    }
    if (optind != argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (open_state(&shm, &cfg) < 0)
        return 1;
    if (sim_lock(&shm) < 0) {
        fprintf(stderr, "gpusim-ctl: cannot lock '%s'\n", cfg.state_path);
        sim_shm_close(&shm);
        return 1;
    }
    ndev = snapshot(&shm);
    sim_unlock(&shm);
    sim_shm_close(&shm);
    if (json)
        print_json(cfg.state_path, ndev);
    else
        print_text(cfg.state_path, ndev);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_reset(int argc, char **argv)
{
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
    struct sim_config cfg;
    struct sim_shm shm;
    bool force = false, in_use;
    int opt, rc = 0;

    while ((opt = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (opt != 'f') {
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
        force = true;
    }
    if (optind != argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    rc = open_state(&shm, &cfg);
    if (rc == GC_ENOTFOUND)
        return 0; /* nothing to reset */
    if (rc < 0)
        return 1;
    if (sim_lock(&shm) < 0) {
        fprintf(stderr, "gpusim-ctl: cannot lock '%s'\n", cfg.state_path);
        sim_shm_close(&shm);
        return 1;
    }
    in_use = sim_in_use(&shm);
    if (in_use && !force) {
        fprintf(stderr, "gpusim-ctl: live processes hold memory in '%s' (use --force)\n",
                cfg.state_path);
        rc = 1;
    } else if (unlink(cfg.state_path) < 0) {
        fprintf(stderr, "gpusim-ctl: cannot remove '%s': %s\n", cfg.state_path, strerror(errno));
        rc = 1;
    }
    sim_unlock(&shm);
    sim_shm_close(&shm);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "reset") == 0)
        return cmd_reset(argc - 1, argv + 1);
    fprintf(stderr, "gpusim-ctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
