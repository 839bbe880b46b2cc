/* main.c - gpucoordd: the GPU memory coordinator daemon. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/http_server.h"
#include "common/log.h"
#include "daemon/api.h"
#include "daemon/config.h"
#include "daemon/engine.h"
#include "daemon/notify.h"
#include "daemon/store.h"
#include "gpu/gpu.h"

static volatile int stop_requested;
static struct gc_coord *signal_coord;

static void usage(FILE *out)
{
    fprintf(out, "usage: gpucoordd [--listen HOST:PORT] [--state-dir DIR] [--socket PATH]\n"
                 "                 [--config FILE] [--token-file FILE] [--log-level LEVEL]\n"
                 "\n"
                 "The gpucoord GPU memory coordinator. Runs in the foreground, logs to stderr.\n"
                 "\n"
                 "  --listen HOST:PORT   TCP address (default 127.0.0.1:$GPUCOORD_PORT or 10010);\n"
                 "                       'none' disables TCP\n"
                 "  --state-dir DIR      durable state (journal), default /var/lib/gpucoord\n"
                 "  --socket PATH        also listen on a Unix socket (mode 0660)\n"
                 "  --config FILE        INI configuration (GPUs, residents, limits)\n"
                 "  --token-file FILE    require 'Authorization: Bearer TOKEN' on TCP\n"
                 "  --log-level LEVEL    debug, info, warn or error\n"
                 "  --list-gpus          print the GPUs NVML reports and exit (1 if none)\n"
                 "  --version, --help\n"
                 "\n"
                 "NVML is found through the normal library search: LD_LIBRARY_PATH=build/sim\n"
                 "runs it on gpusim, the simulated GPU. GET / on the API is a live dashboard.\n"
                 "Under systemd (Type=notify, $NOTIFY_SOCKET) it reports READY=1 once it\n"
                 "serves, WATCHDOG=1 pings ($WATCHDOG_USEC) and STOPPING=1.\n");
}

/* Splits "HOST:PORT" / "[::1]:PORT" into host and port. */
static int split_listen(const char *listen, char *host, size_t host_len, int *port)
{
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t n;
    char *end;
    long p;

    if (colon == NULL)
        return GC_EINVAL;
    n = (size_t)(colon - listen);
    if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
        h = listen + 1;
        n -= 2;
    }
    if (n == 0 || n >= host_len)
        return GC_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535)
        return GC_EINVAL;
    *port = (int)p;
    return 0;
}

/* --list-gpus: what NVML finds, one line per GPU ("INDEX UUID TOTAL FREE NAME", bytes),
 * then "driver VERSION"; exit 1 when none (no driver). */
static int list_gpus(void)
{
    struct gc_nvml *nvml;
    char err[512];
    unsigned n = 0;

    if (gc_nvml_open(&nvml, err, sizeof(err)) < 0) {
        fprintf(stderr, "gpucoordd: no GPU: %s\n", err);
        return 1;
    }
    if (gc_nvml_device_count(nvml, &n) < 0)
        n = 0;
    for (unsigned i = 0; i < n; i++) {
        struct gc_gpu_info info;
        if (gc_nvml_device_info(nvml, i, &info) == 0)
            printf("%u %s %llu %llu %s\n", i, info.uuid, (unsigned long long)info.total_bytes,
                   (unsigned long long)info.free_bytes, info.name);
    }
    printf("driver %s\n", gc_nvml_driver_version(nvml));
    gc_nvml_close(nvml);
    return n > 0 ? 0 : 1;
}

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig;

    for (;;) {
        if (sigwait(set, &sig) == 0) {
            stop_requested = 1;
            if (signal_coord != NULL)
                gc_coord_wake(signal_coord);
            return NULL;
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},     {"state-dir", required_argument, NULL, 's'},
        {"socket", required_argument, NULL, 'u'},     {"config", required_argument, NULL, 'c'},
        {"token-file", required_argument, NULL, 't'}, {"log-level", required_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},          {"help", no_argument, NULL, 'h'},
        {"list-gpus", no_argument, NULL, 'G'},        {NULL, 0, NULL, 0},
    };
    static struct gc_config cfg;
    struct gc_http_server_config hcfg = {0};
    struct gc_http_server *http = NULL;
    struct gc_nvml *nvml = NULL;
    struct gc_store *store = NULL;
    struct gc_coord *coord = NULL;
    static struct gc_api api;
    char err[512] = "", host[256];
    const char *config_path = NULL;
    sigset_t sigs;
    pthread_t sig_tid;
    int port = 0, opt, rc = 1, notify_rc;

    gc_log_init("gpucoordd", GC_LOG_INFO);
    if (gc_notify_init(err, sizeof(err)) < 0)
        gc_warn("%s", err);
    gc_config_defaults(&cfg);
    /* The config file first, so the command line overrides it. */
    for (int i = 1; i < argc - 1; i++) {
        if (strcmp(argv[i], "--config") == 0)
            config_path = argv[i + 1];
    }
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--config=", 9) == 0)
            config_path = argv[i] + 9;
    }
    if (config_path != NULL && gc_config_load_file(&cfg, config_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "gpucoordd: %s\n", err);
        return 2;
    }
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            snprintf(cfg.listen, sizeof(cfg.listen), "%s", strcmp(optarg, "none") ? optarg : "");
            break;
        case 's':
            snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", optarg);
            break;
        case 'u':
            snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s", optarg);
            break;
        case 'c':
            break;
        case 't':
            snprintf(cfg.token_file, sizeof(cfg.token_file), "%s", optarg);
            break;
        case 'L':
            if (strcmp(optarg, "debug") == 0)
                cfg.log_level = GC_LOG_DEBUG;
            else if (strcmp(optarg, "info") == 0)
                cfg.log_level = GC_LOG_INFO;
            else if (strcmp(optarg, "warn") == 0)
                cfg.log_level = GC_LOG_WARN;
            else if (strcmp(optarg, "error") == 0)
                cfg.log_level = GC_LOG_ERROR;
            else {
                fprintf(stderr, "gpucoordd: --log-level must be debug, info, warn or error\n");
                return 2;
            }
            break;
        case 'V':
            printf("gpucoordd %s\n", GPUCOORD_VERSION);
            return 0;
        case 'G':
            return list_gpus();
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gpucoordd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (strcmp(cfg.listen, "none") == 0)
        cfg.listen[0] = '\0';
    gc_log_init("gpucoordd", (enum gc_log_level)cfg.log_level);
    if (cfg.listen[0] != '\0' && split_listen(cfg.listen, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "gpucoordd: --listen must be HOST:PORT, got '%s'\n", cfg.listen);
        return 2;
    }
    if (cfg.listen[0] == '\0' && cfg.socket_path[0] == '\0') {
        fprintf(stderr, "gpucoordd: nothing to listen on (--listen none and no --socket)\n");
        return 2;
    }
    if (gc_config_load_token(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "gpucoordd: %s\n", err);
        return 2;
    }

    /* Signals go to one thread; every other thread (and child) inherits them blocked. */
    signal(SIGPIPE, SIG_IGN);
    /* Past a file size limit, a journal write must fail (EFBIG) and be refused, not
     * kill the coordinator. */
    signal(SIGXFSZ, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    pthread_create(&sig_tid, NULL, signal_thread, &sigs);
    pthread_detach(sig_tid);

    if (gc_store_open(cfg.state_dir, cfg.sync, &store, err, sizeof(err)) < 0) {
        gc_error("%s", err);
        goto out;
    }
    if (gc_nvml_open(&nvml, err, sizeof(err)) < 0) {
        gc_error("cannot use NVML: %s (no NVIDIA driver? for the simulated GPU, put build/sim "
                 "on LD_LIBRARY_PATH)",
                 err);
        goto out;
    }
    if (gc_coord_create(&cfg, nvml, store, &coord, err, sizeof(err)) < 0) {
        gc_error("%s", err);
        goto out;
    }
    signal_coord = coord;
    if (gc_coord_recover(coord, err, sizeof(err)) < 0) {
        gc_error("%s", err);
        goto out;
    }

    hcfg.host = cfg.listen[0] ? host : NULL;
    hcfg.port = port;
    hcfg.unix_path = cfg.socket_path[0] ? cfg.socket_path : NULL;
    hcfg.unix_mode = cfg.socket_mode;
    hcfg.body_max = cfg.body_max;
    hcfg.conn_limit = cfg.conn_limit;
    hcfg.conn_reserve = cfg.conn_reserve;
    hcfg.conn_per_peer = cfg.conn_per_peer;
    hcfg.header_timeout_ms = (unsigned)(cfg.header_timeout_s * 1000.0);
    hcfg.body_timeout_ms = (unsigned)(cfg.body_timeout_s * 1000.0);
    hcfg.short_request = gc_api_is_short;
    hcfg.bearer_token = cfg.token[0] ? cfg.token : NULL;
    hcfg.handler = gc_api_handle;
    api.coord = coord;
    hcfg.ctx = &api;
    if (gc_http_server_start(&hcfg, &http, err, sizeof(err)) < 0) {
        gc_error("%s", err);
        goto out;
    }
    __atomic_store_n(&api.http, http, __ATOMIC_RELEASE);
    gc_coord_log_gpus(coord);
    if (hcfg.host != NULL)
        gc_info("listening on http://%s:%d%s", cfg.listen[0] == '[' ? cfg.listen : host,
                gc_http_server_port(http), cfg.token[0] ? " (bearer token required)" : "");
    if (hcfg.unix_path != NULL)
        gc_info("listening on unix:%s", hcfg.unix_path);
    if (hcfg.host != NULL && strcmp(host, "127.0.0.1") != 0 && strcmp(host, "::1") != 0 &&
        strcmp(host, "localhost") != 0 && cfg.token[0] == '\0')
        gc_warn("listening on %s without a bearer token: anyone who can reach it can evict "
                "residents",
                host);

    /* Ready only now: the journal is recovered and the API answers, so units
     * ordered after this one can register and take leases at once. */
    notify_rc = gc_notify_send("READY=1\nSTATUS=coordinating");
    if (notify_rc < 0)
        gc_warn("cannot notify the service manager: %s", strerror(-notify_rc));
    gc_coord_run(coord, &stop_requested);
    gc_info("stopping");
    gc_notify_send("STOPPING=1");
    rc = 0;

out:
    gc_coord_stop(coord);
    gc_http_server_stop(http);
    gc_coord_destroy(coord);
    gc_nvml_close(nvml);
    gc_store_close(store);
    gc_config_free(&cfg);
    return rc;
}
