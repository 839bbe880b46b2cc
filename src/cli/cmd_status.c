/* cmd_status.c - gpucoord status [--json]: the coordinator's whole state as tables,
 * or /v1/status verbatim. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: gpucoord status [--json] [--url URL]\n"
               "\n"
               "Shows the GPUs (used, total, free, committed, budget, reserve, headroom and\n"
               "the processes on them with their owner), the residents (state, size,\n"
               "priority, pid, unload/reload counts and how long the last ones took, reason),\n"
               "the leases (holder, state, size, GPU, waited, held, expires in), the queue in\n"
               "order and the counters.\n"
               "\n"
               "  --json   print the coordinator's GET /v1/status answer verbatim\n");
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool as_json = false;
    json_t *st = NULL;
    char *raw = NULL, up[48];
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            as_json = true;
            break;
        case 'U':
            cli->url = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        default:
            return cli_bad_option("status", c, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("status", "unexpected argument '%s'", argv[optind]);

    if (as_json) {
        size_t n;
        rc = cli_call_raw(cli, "GET", "/v1/status", CLI_TIMEOUT_MS, &raw);
        if (rc != 0)
            return rc;
        n = strlen(raw);
        fputs(raw, stdout);
        if (n == 0 || raw[n - 1] != '\n')
            fputc('\n', stdout);
        free(raw);
        return CLI_EXIT_OK;
    }
    rc = cli_call(cli, "GET", "/v1/status", NULL, CLI_TIMEOUT_MS, 0, NULL, &st);
    if (rc != 0)
        return rc;
    {
        char ver[48], drv[48];
        printf("coordinator %s  version %s  driver %s  up %s\n\n", cli_url(cli),
               cli_jstr(st, "version", ver, sizeof(ver)),
               cli_jstr(st, "driver_version", drv, sizeof(drv)),
               cli_duration(cli_jnum(st, "uptime_s", -1), up, sizeof(up)));
    }
    cli_show_gpus(stdout, json_object_get(st, "gpus"));
    putchar('\n');
    cli_show_processes(stdout, json_object_get(st, "gpus"));
    putchar('\n');
    cli_show_residents(stdout, json_object_get(st, "residents"));
    putchar('\n');
    cli_show_leases(stdout, json_object_get(st, "leases"));
    putchar('\n');
    cli_show_queue(stdout, json_object_get(st, "queue"));
    putchar('\n');
    cli_show_counters(stdout, json_object_get(st, "counters"));
    json_decref(st);
    return CLI_EXIT_OK;
}
