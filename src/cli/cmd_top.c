/* cmd_top.c - gpucoord top [--interval S] [--once]: a refreshing terminal view of
 * GPU memory (bars), residents, leases, the queue and the last events. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"

/* Events shown at the bottom of a frame. */
#define TOP_EVENTS  8
#define TOP_BAR_MIN 20
#define TOP_BAR_MAX 60

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpucoord top [--interval SECONDS] [--once]\n"
            "\n"
            "Redraws every SECONDS (default 1): a memory bar per GPU ('#' used, '+'\n"
            "committed but not yet used, 'r' the reserve kept free, '.' free), the\n"
            "residents, the leases, the queue and the last %d events. Ctrl-C quits.\n"
            "\n"
            "  --interval S   seconds between frames (at least 0.1)\n"
            "  --once         print one frame without clearing the screen, then exit\n",
            TOP_EVENTS);
}

static unsigned term_columns(void)
{
    struct winsize ws;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 100;
}

/* Fraction of width for bytes of total, rounded. */
static unsigned cells(uint64_t bytes, uint64_t total, unsigned width)
{
    double c;

    if (total == 0)
        return 0;
    c = (double)bytes / (double)total * width + 0.5;
    return c > width ? width : (unsigned)c;
}

static void show_bars(FILE *f, const json_t *gpus, unsigned columns)
{
    unsigned width = columns > TOP_BAR_MIN + 10 ? columns - 10 : TOP_BAR_MIN;
    const json_t *g;
    size_t i;

    if (width > TOP_BAR_MAX)
        width = TOP_BAR_MAX;
    json_array_foreach(gpus, i, g)
    {
        uint64_t total = (uint64_t)cli_jint(g, "total_bytes", 0);
        uint64_t used = (uint64_t)cli_jint(g, "used_bytes", 0);
        uint64_t committed = (uint64_t)cli_jint(g, "committed_bytes", 0);
        uint64_t reserve = (uint64_t)cli_jint(g, "reserve_bytes", 0);
        unsigned u = cells(used, total, width);
        unsigned cm = cells(committed > used ? committed : used, total, width);
        unsigned r = width - cells(reserve, total, width);
        char name[128], b[5][32];

        fprintf(f, "GPU %lld  %s\n  [", cli_jint(g, "index", (long long)i),
                cli_jstr(g, "name", name, sizeof(name)));
        for (unsigned c = 0; c < width; c++)
            fputc(c < u ? '#' : c < cm ? '+' : c >= r ? 'r' : '.', f);
        fprintf(f, "]\n  used %s  committed %s  free %s  of %s  headroom %s\n",
                cli_size(used, b[0], 32), cli_size(committed, b[1], 32),
                cli_jsize(json_object_get(g, "free_bytes"), b[2], 32), cli_size(total, b[3], 32),
                cli_jsize(json_object_get(g, "headroom_bytes"), b[4], 32));
    }
    if (json_array_size(gpus) == 0)
        fputs("GPUS (none)\n", f);
}

/* Renders one frame into f. Returns 0 or an exit code (error already printed). */
static int render(struct cli *cli, FILE *f, double interval_s, bool once)
{
    json_t *st = NULL, *ev = NULL;
    char path[96], now[32], up[32];
    long long last;
    const json_t *e;
    size_t i, n;
    int rc;

    rc = cli_call(cli, "GET", "/v1/status", NULL, CLI_TIMEOUT_MS, 0, NULL, &st);
    if (rc != 0)
        return rc;
    last = cli_jint(st, "last_event_seq", 0);
    snprintf(path, sizeof(path), "/v1/events?since=%lld",
             last > TOP_EVENTS ? last - TOP_EVENTS : 0);
    rc = cli_call(cli, "GET", path, NULL, CLI_TIMEOUT_MS, 0, NULL, &ev);
    if (rc != 0) {
        json_decref(st);
        return rc;
    }
    fprintf(f, "gpucoord top  %s  %s  up %s", cli_url(cli), cli_clock(gc_real_s(), now, 32),
            cli_duration(cli_jnum(st, "uptime_s", -1), up, sizeof(up)));
    if (!once)
        fprintf(f, "  (every %gs, Ctrl-C quits)", interval_s);
    fputs("\n\n", f);
    show_bars(f, json_object_get(st, "gpus"), term_columns());
    fputc('\n', f);
    cli_show_residents(f, json_object_get(st, "residents"));
    fputc('\n', f);
    cli_show_leases(f, json_object_get(st, "leases"));
    if (json_array_size(json_object_get(st, "queue")) > 0) {
        fputc('\n', f);
        cli_show_queue(f, json_object_get(st, "queue"));
    }
    n = json_array_size(json_object_get(ev, "events"));
    fprintf(f, "\nEVENTS (last %zu)\n", n);
    json_array_foreach(json_object_get(ev, "events"), i, e)
    {
        fputs("  ", f);
        cli_show_event(f, e);
    }
    if (n == 0)
        fputs("  (none)\n", f);
    fputc('\n', f);
    cli_show_counters(f, json_object_get(st, "counters"));
    json_decref(ev);
    json_decref(st);
    return 0;
}

int cmd_top(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"interval", required_argument, NULL, 'i'},
        {"once", no_argument, NULL, '1'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    double interval_s = 1.0;
    bool once = false, tty = isatty(STDOUT_FILENO);
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (cli_parse_seconds("top", "--interval", optarg, 0.1, &interval_s) != 0)
                return CLI_EXIT_USAGE;
            break;
        case '1':
            once = true;
            break;
        case 'U':
            cli->url = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        default:
            return cli_bad_option("top", c, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("top", "unexpected argument '%s'", argv[optind]);
    if (once)
        return render(cli, stdout, interval_s, true);

    for (;;) {
        char *frame = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&frame, &len);

        if (mem == NULL) {
            cli_error("out of memory");
            return CLI_EXIT_FAILURE;
        }
        /* Drawn off screen, then written at once: no flicker. */
        rc = render(cli, mem, interval_s, false);
        fclose(mem);
        if (rc == CLI_EXIT_USAGE) {
            free(frame);
            return rc;
        }
        /* On an error the message stays under the last frame until the next one. */
        if (rc == 0 && tty)
            fputs("\033[H\033[2J", stdout);
        if (rc == 0)
            fwrite(frame, 1, len, stdout);
        fflush(stdout);
        free(frame);
        gc_sleep_ms((int64_t)(interval_s * 1000.0));
    }
}
