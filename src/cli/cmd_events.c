/* cmd_events.c - gpucoord events [--since SEQ] [--follow] [--json]: the coordinator's
 * recent events, one line each; --follow long-polls GET /v1/events for new ones. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: gpucoord events [--since SEQ] [--follow] [--json]\n"
               "\n"
               "Prints the coordinator's recent events (it keeps the last 2048), oldest first,\n"
               "one per line: time, #sequence, kind, subject, detail and the duration of each\n"
               "phase (e.g. [unload 1.2s, verify 50ms]).\n"
               "\n"
               "  --since SEQ   only events after sequence number SEQ\n"
               "  -f, --follow  keep waiting for new events (until interrupted)\n"
               "  --json        one JSON object per line, as the coordinator gives them\n");
}

/* Prints the events of one answer; returns the highest seq printed (or since). */
static uint64_t print_events(const json_t *ans, uint64_t since, bool as_json)
{
    const json_t *ev;
    size_t i;

    json_array_foreach(json_object_get(ans, "events"), i, ev)
    {
        long long seq = cli_jint(ev, "seq", 0);
        if (seq <= 0 || (uint64_t)seq <= since)
            continue;
        if (as_json) {
            char *line = json_dumps(ev, JSON_COMPACT);
            if (line != NULL)
                puts(line);
            free(line);
        } else {
            cli_show_event(stdout, ev);
        }
        since = (uint64_t)seq;
    }
    fflush(stdout);
    return since;
}

int cmd_events(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"since", required_argument, NULL, 's'},
        {"follow", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool follow = false, as_json = false;
    uint64_t since = 0;
    long long v;
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hf", opts, NULL)) != -1) {
        switch (c) {
        case 's': {
            char *end;
            if (optarg[0] < '0' || optarg[0] > '9')
                return cli_usage_error("events", "--since: '%s' is not a sequence number", optarg);
            v = strtoll(optarg, &end, 10);
            if (*end != '\0' || v < 0)
                return cli_usage_error("events", "--since: '%s' is not a sequence number", optarg);
            since = (uint64_t)v;
            break;
        }
        case 'f':
            follow = true;
            break;
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
            return cli_bad_option("events", c, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("events", "unexpected argument '%s'", argv[optind]);

    for (;;) {
        char path[96];
        json_t *ans = NULL;
        uint64_t last, printed;

        snprintf(path, sizeof(path), "/v1/events?since=%" PRIu64 "%s", since,
                 follow ? "&wait_s=30" : "");
        rc = cli_call(cli, "GET", path, NULL,
                      CLI_TIMEOUT_MS + (follow ? (long)(CLI_POLL_SLICE_S * 1000.0) : 0), 0, NULL,
                      &ans);
        if (rc != 0)
            return rc;
        last = (uint64_t)cli_jint(ans, "last_seq", 0);
        if (last < since) {
            /* The coordinator restarted and counts from 1 again. */
            since = 0;
            json_decref(ans);
            continue;
        }
        printed = print_events(ans, since, as_json);
        json_decref(ans);
        if (printed == since && !follow)
            break; /* nothing new: done */
        since = printed;
        if (!follow && since >= last)
            break;
    }
    return CLI_EXIT_OK;
}
