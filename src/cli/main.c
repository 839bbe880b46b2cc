/*
 * main.c - gpucoord, the command line for the gpucoord coordinator: global
 * options, the verb table and the top-level help. Each verb lives in its own
 * cmd_*.c file.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct verb {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
    const char *summary;
};

static const struct verb verbs[] = {
    {"status", cmd_status, "GPUs, residents, leases, queue and counters"},
    {"run", cmd_run, "run a command under a lease: run --need SIZE -- CMD [ARGS...]"},
    {"lease", cmd_lease, "acquire, release, heartbeat, list or show leases by hand"},
    {"residents", cmd_residents, "list, register, unload, reload, demand or delete residents"},
    {"unload", cmd_unload, "unload a resident now (residents unload NAME)"},
    {"reload", cmd_reload, "reload a resident now (residents reload NAME)"},
    {"events", cmd_events, "the coordinator's recent events; --follow to keep watching"},
    {"top", cmd_top, "a refreshing view of memory, residents, leases and events"},
    {"proxy", cmd_proxy, "an HTTP proxy that loads a resident for each request and keeps it"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: gpucoord [--url URL] VERB [OPTIONS] [ARGS]\n"
               "       gpucoord --help | --version | help VERB\n"
               "\n"
               "Talks to the gpucoord coordinator (gpucoordd), which shares GPU memory between\n"
               "services by unloading idle residents to make room for leases.\n"
               "\n"
               "Verbs:\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(f,
            "\n"
            "Every verb takes --help. Global options (also accepted after the verb):\n"
            "  --url URL    the coordinator: http://HOST:PORT or unix:/path/to.sock\n"
            "               (default: $GPUCOORD_URL, else %s)\n"
            "  --help       this text\n"
            "  --version    the CLI's version\n"
            "\n"
            "Sizes: 19.6Gi, 512Mi (powers of 1024), 20G, 1.5GB (powers of 1000), or bytes.\n"
            "$GPUCOORD_TOKEN, when set, is sent as a bearer token.\n"
            "\n"
            "Exit codes:\n"
            "  0    success (run: the command's own status)\n"
            "  1    local failure (fork, out of memory)\n"
            "  2    usage error: unknown option, missing argument, bad size or URL;\n"
            "       nothing was sent to the coordinator\n"
            "  3    lease not granted: never fits, could not free, queue full, or still\n"
            "       queued when --wait ran out (also: a demand still queued)\n"
            "  4    the coordinator is unreachable or answered another error\n"
            "  126  run: the command cannot be executed\n"
            "  127  run: the command was not found\n"
            "  128+N  run: the command died of signal N\n"
            "\n"
            "See docs/cli.md for every verb with examples.\n",
            CLI_DEFAULT_URL);
}

static const struct verb *find_verb(const char *name)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
    return NULL;
}

/* Runs verb with argv[0] = its name; getopt starts over for it. */
static int run_verb(struct cli *cli, const struct verb *v, int argc, char **argv)
{
    optind = 0; /* glibc: full reinitialisation, including the '+' mode */
    return v->run(cli, argc, argv);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct cli cli = {0};
    const struct verb *v;
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (c) {
        case 'U':
            cli.url = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("gpucoord %s\n", GPUCOORD_VERSION);
            return CLI_EXIT_OK;
        default:
            return cli_bad_option(NULL, c, argv);
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[optind], "help") == 0) {
        char help[] = "--help";
        char *args[3] = {NULL, help, NULL};
        if (optind + 1 >= argc) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        v = find_verb(argv[optind + 1]);
        if (v == NULL)
            return cli_usage_error(NULL, "unknown verb '%s'", argv[optind + 1]);
        args[0] = argv[optind + 1];
        return run_verb(&cli, v, 2, args);
    }
    v = find_verb(argv[optind]);
    if (v == NULL)
        return cli_usage_error(NULL, "unknown verb '%s'", argv[optind]);
    rc = run_verb(&cli, v, argc - optind, argv + optind);
    cli_disconnect(&cli);
    return rc;
}
