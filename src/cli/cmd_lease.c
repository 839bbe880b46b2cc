/*
 * cmd_lease.c - gpucoord lease acquire|release|heartbeat|list|show: leases by hand.
 *
 * A lease taken here outlives the CLI: it lasts until released, until the process
 * named by --pid exits, or until its TTL passes without a heartbeat. It is taken
 * with the raw API (not gpucoord_lease_acquire) because the CLI exits at once and
 * must not claim its own pid or run a heartbeat thread.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/names.h"

#define LEASE_DEFAULT_WAIT_S 600.0

static void usage(FILE *f)
{
    fprintf(f, "usage: gpucoord lease acquire --need SIZE [--holder NAME] [--gpu N|any]\n"
               "                              [--priority P] [--ttl S] [--wait S] [--pid PID]\n"
               "                              [--json]\n"
               "       gpucoord lease release ID\n"
               "       gpucoord lease heartbeat ID\n"
               "       gpucoord lease list [--json]\n"
               "       gpucoord lease show ID [--wait S] [--json]\n"
               "\n"
               "acquire   asks for SIZE of GPU memory and waits up to --wait seconds (default\n"
               "          600) for the grant; prints the lease id on stdout (details on stderr,\n"
               "          or everything with --json). If the wait runs out the request is\n"
               "          withdrawn and the exit code is 3.\n"
               "          A lease taken by hand is not kept alive by anyone: it ends when it is\n"
               "          released, when --pid PID exits, or when --ttl seconds pass without a\n"
               "          heartbeat (the coordinator's default TTL is 30 s). Choose a TTL long\n"
               "          enough, send 'gpucoord lease heartbeat ID' more often than the TTL, or\n"
               "          tie it to a process with --pid (with --ttl 0: no TTL at all).\n"
               "          --holder defaults to $USER; --gpu to any; --priority to 100.\n"
               "release   ends the lease (says so if it had already ended)\n"
               "heartbeat renews the lease's TTL once\n"
               "list      the active leases (queued, preparing, granted)\n"
               "show      one lease, also one that has ended; --wait S waits while it queues\n"
               "\n"
               "Exit: 0 done; 2 usage error; 3 not granted; 4 coordinator unreachable or\n"
               "error (e.g. no such lease).\n");
}

/* Parses the options a lease sub-verb takes; flags picks the allowed ones. */
struct lease_opts {
    bool json;
    bool have_need;
    uint64_t need_bytes;
    const char *holder;
    int gpu;
    long priority;
    bool have_priority;
    double ttl_s;
    bool have_ttl;
    double wait_s;
    bool have_wait;
    long pid;
};

static int parse_opts(struct cli *cli, const char *verb, int argc, char **argv,
                      struct lease_opts *o)
{
    static const struct option opts[] = {
        {"need", required_argument, NULL, 'n'},
        {"holder", required_argument, NULL, 'H'},
        {"gpu", required_argument, NULL, 'g'},
        {"priority", required_argument, NULL, 'p'},
        {"ttl", required_argument, NULL, 't'},
        {"wait", required_argument, NULL, 'w'},
        {"pid", required_argument, NULL, 'P'},
        {"json", no_argument, NULL, 'j'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool acquire = strcmp(verb, "lease acquire") == 0;
    bool show = strcmp(verb, "lease show") == 0;
    int c;

    memset(o, 0, sizeof(*o));
    o->gpu = GPUCOORD_GPU_ANY;
    o->wait_s = acquire ? LEASE_DEFAULT_WAIT_S : 0;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        /* Options that only acquire (and show's --wait) take. */
        if ((c == 'n' || c == 'H' || c == 'g' || c == 'p' || c == 't' || c == 'P') && !acquire)
            return cli_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
        if (c == 'w' && !acquire && !show)
            return cli_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
        switch (c) {
        case 'n':
            if (cli_parse_size(verb, "--need", optarg, true, &o->need_bytes) != 0)
                return CLI_EXIT_USAGE;
            o->have_need = true;
            break;
        case 'H':
            if (cli_check_name(verb, "--holder", optarg) != 0)
                return CLI_EXIT_USAGE;
            o->holder = optarg;
            break;
        case 'g':
            if (cli_parse_gpu(verb, "--gpu", optarg, &o->gpu) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'p':
            if (cli_parse_int(verb, "--priority", optarg, -1000000, 1000000, &o->priority) != 0)
                return CLI_EXIT_USAGE;
            o->have_priority = true;
            break;
        case 't':
            if (cli_parse_seconds(verb, "--ttl", optarg, 0, &o->ttl_s) != 0)
                return CLI_EXIT_USAGE;
            o->have_ttl = true;
            break;
        case 'w':
            if (cli_parse_seconds(verb, "--wait", optarg, 0, &o->wait_s) != 0)
                return CLI_EXIT_USAGE;
            o->have_wait = true;
            break;
        case 'P':
            if (cli_parse_int(verb, "--pid", optarg, 1, 0x7fffffff, &o->pid) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'j':
            o->json = true;
            break;
        case 'U':
            cli->url = optarg;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            return cli_bad_option(verb, c, argv);
        }
    }
    return 0;
}

static void withdraw(struct cli *cli, const char *id)
{
    char path[128], *body = NULL;
    long status = 0;

    snprintf(path, sizeof(path), "/v1/leases/%s", id);
    /* Best effort: a queued lease without a pid also expires by its TTL. */
    if (gpucoord_request(cli->client, "DELETE", path, NULL, CLI_TIMEOUT_MS, &status, &body) == 0)
        free(body);
}

/* True while the answer shows the lease still queued or preparing. */
static bool lease_waiting(long status, const json_t *ans)
{
    const char *state = json_string_value(json_object_get(ans, "state"));

    if (status == 202)
        return true;
    return state != NULL && (strcmp(state, "queued") == 0 || strcmp(state, "preparing") == 0);
}

static void print_granted(const json_t *lease)
{
    char size[32], waited[32], ttl[32], idb[64], gpub[32];
    const json_t *ev = json_object_get(lease, "evicted"), *e;
    double ttl_s = cli_jnum(lease, "ttl_s", 0);
    size_t i;

    fflush(stdout);
    fprintf(stderr, "gpucoord: lease %s granted: %s on GPU %s after %s",
            cli_jstr(lease, "id", idb, sizeof(idb)),
            cli_jsize(json_object_get(lease, "bytes"), size, sizeof(size)),
            cli_jstr(lease, "gpu", gpub, sizeof(gpub)),
            cli_jduration(json_object_get(lease, "waited_s"), waited, sizeof(waited)));
    json_array_foreach(ev, i, e)
        fprintf(stderr, "%s%s", i ? ", " : ", evicted ", json_string_value(e));
    if (ttl_s > 0)
        fprintf(stderr, "; it expires %s after the last heartbeat",
                cli_duration(ttl_s, ttl, sizeof(ttl)));
    fputc('\n', stderr);
}

static int lease_acquire(struct cli *cli, int argc, char **argv)
{
    const char *verb = "lease acquire";
    struct lease_opts o;
    json_t *body, *ans = NULL;
    char id[128] = "", path[192];
    const char *user = getenv("USER");
    int64_t deadline;
    double slice;
    long status = 0;
    int rc;

    rc = parse_opts(cli, verb, argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (optind < argc)
        return cli_usage_error(verb, "unexpected argument '%s'", argv[optind]);
    if (!o.have_need)
        return cli_usage_error(verb, "--need SIZE is required");
    if (o.holder == NULL)
        o.holder = user != NULL && gc_name_valid(user) ? user : "gpucoord";
    if (o.have_ttl && o.ttl_s == 0 && o.pid == 0)
        return cli_usage_error(verb, "--ttl 0 needs --pid: a lease with neither would never end");

    slice = o.wait_s < CLI_POLL_SLICE_S ? o.wait_s : CLI_POLL_SLICE_S;
    deadline = gc_mono_ms() + (int64_t)(o.wait_s * 1000.0);
    body = json_pack("{s:s, s:I, s:f}", "holder", o.holder, "bytes", (json_int_t)o.need_bytes,
                     "wait_s", slice);
    if (body == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    json_object_set_new(body, "gpu", o.gpu >= 0 ? json_integer(o.gpu) : json_string("any"));
    if (o.pid > 0)
        json_object_set_new(body, "pid", json_integer(o.pid));
    if (o.have_priority)
        json_object_set_new(body, "priority", json_integer(o.priority));
    if (o.have_ttl)
        json_object_set_new(body, "ttl_s", json_real(o.ttl_s));
    rc = cli_call(cli, "POST", "/v1/leases", body, CLI_TIMEOUT_MS + (long)(slice * 1000.0),
                  CLI_CALL_LEASE, &status, &ans);
    json_decref(body);
    if (rc != 0)
        return rc;

    /* 202: still queued or preparing; wait in slices until granted or the deadline. */
    while (lease_waiting(status, ans)) {
        double left = (double)(deadline - gc_mono_ms()) / 1000.0;
        snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(ans, "id")));
        if (left <= 0) {
            long long pos = cli_jint(ans, "position", -1);
            json_decref(ans);
            withdraw(cli, id);
            cli_error("not granted: lease %s still queued (position %lld) after %.1f s; request "
                      "withdrawn",
                      id, pos, o.wait_s);
            return CLI_EXIT_REFUSED;
        }
        json_decref(ans);
        ans = NULL;
        if (left > CLI_POLL_SLICE_S)
            left = CLI_POLL_SLICE_S;
        snprintf(path, sizeof(path), "/v1/leases/%s?wait_s=%.3f", id, left);
        rc = cli_call(cli, "GET", path, NULL, CLI_TIMEOUT_MS + (long)(left * 1000.0),
                      CLI_CALL_LEASE, &status, &ans);
        if (rc != 0)
            return rc;
    }
    if (json_string_value(json_object_get(ans, "state")) == NULL ||
        strcmp(json_string_value(json_object_get(ans, "state")), "granted") != 0) {
        char state[32], reason[512];
        cli_error("not granted: lease %s %s: %s", id, cli_jstr(ans, "state", state, sizeof(state)),
                  cli_jstr(ans, "reason", reason, sizeof(reason)));
        json_decref(ans);
        return CLI_EXIT_REFUSED;
    }
    if (o.json) {
        rc = cli_print_json(ans);
    } else {
        char idb[128];
        printf("%s\n", cli_jstr(ans, "id", idb, sizeof(idb)));
        print_granted(ans);
    }
    json_decref(ans);
    return rc;
}

static int lease_release(struct cli *cli, int argc, char **argv)
{
    const char *verb = "lease release", *id;
    struct lease_opts o;
    char path[128], held[32], state[32], reason[512];
    json_t *ans = NULL;
    int rc;

    rc = parse_opts(cli, verb, argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = cli_one_operand(verb, argc, argv, "lease ID", &id);
    if (rc != 0)
        return rc;
    snprintf(path, sizeof(path), "/v1/leases/%s", id);
    rc = cli_call(cli, "DELETE", path, NULL, CLI_TIMEOUT_MS, 0, NULL, &ans);
    if (rc != 0)
        return rc;
    if (o.json) {
        rc = cli_print_json(ans);
    } else if (strcmp(cli_jstr(ans, "state", state, sizeof(state)), "released") == 0) {
        printf("%s released (held %s)\n", id,
               cli_jduration(json_object_get(ans, "held_s"), held, sizeof(held)));
    } else {
        printf(
            "%s had already ended: %s%s%s\n", id, state, json_object_get(ans, "reason") ? ": " : "",
            json_object_get(ans, "reason") ? cli_jstr(ans, "reason", reason, sizeof(reason)) : "");
    }
    json_decref(ans);
    return rc;
}

static int lease_heartbeat(struct cli *cli, int argc, char **argv)
{
    const char *verb = "lease heartbeat", *id;
    struct lease_opts o;
    char path[160], ttl[32];
    json_t *ans = NULL;
    int rc;

    rc = parse_opts(cli, verb, argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = cli_one_operand(verb, argc, argv, "lease ID", &id);
    if (rc != 0)
        return rc;
    snprintf(path, sizeof(path), "/v1/leases/%s/heartbeat", id);
    rc = cli_call(cli, "POST", path, NULL, CLI_TIMEOUT_MS, 0, NULL, &ans);
    if (rc != 0)
        return rc;
    if (o.json)
        rc = cli_print_json(ans);
    else if (cli_jnum(ans, "ttl_s", 0) > 0)
        printf("%s renewed: expires in %s without another heartbeat\n", id,
               cli_duration(cli_jnum(ans, "ttl_s", 0), ttl, sizeof(ttl)));
    else
        printf("%s renewed (it has no TTL)\n", id);
    json_decref(ans);
    return rc;
}

static int lease_list(struct cli *cli, int argc, char **argv)
{
    const char *verb = "lease list";
    struct lease_opts o;
    json_t *ans = NULL;
    int rc;

    rc = parse_opts(cli, verb, argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (optind < argc)
        return cli_usage_error(verb, "unexpected argument '%s'", argv[optind]);
    rc = cli_call(cli, "GET", "/v1/leases", NULL, CLI_TIMEOUT_MS, 0, NULL, &ans);
    if (rc != 0)
        return rc;
    if (o.json)
        rc = cli_print_json(ans);
    else
        cli_show_leases(stdout, json_object_get(ans, "leases"));
    json_decref(ans);
    return rc;
}

static int lease_show(struct cli *cli, int argc, char **argv)
{
    const char *verb = "lease show", *id;
    struct lease_opts o;
    char path[192];
    json_t *ans = NULL;
    int rc;

    rc = parse_opts(cli, verb, argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = cli_one_operand(verb, argc, argv, "lease ID", &id);
    if (rc != 0)
        return rc;
    if (o.wait_s > 3600)
        return cli_usage_error(verb, "--wait is at most 3600 seconds");
    if (o.have_wait && o.wait_s > 0)
        snprintf(path, sizeof(path), "/v1/leases/%s?wait_s=%.3f", id, o.wait_s);
    else
        snprintf(path, sizeof(path), "/v1/leases/%s", id);
    rc =
        cli_call(cli, "GET", path, NULL, CLI_TIMEOUT_MS + (long)(o.wait_s * 1000.0), 0, NULL, &ans);
    if (rc != 0)
        return rc;
    if (o.json)
        rc = cli_print_json(ans);
    else
        cli_show_lease_detail(stdout, ans);
    json_decref(ans);
    return rc;
}

int cmd_lease(struct cli *cli, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(struct cli *, int, char **);
    } subs[] = {
        {"acquire", lease_acquire}, {"release", lease_release}, {"heartbeat", lease_heartbeat},
        {"list", lease_list},       {"show", lease_show},
    };
    const char *sub = argc > 1 ? argv[1] : NULL;

    if (sub == NULL)
        return cli_usage_error("lease", "missing what to do: acquire, release, heartbeat, list "
                                        "or show");
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcmp(sub, subs[i].name) == 0)
            return subs[i].fn(cli, argc - 1, argv + 1);
    return cli_usage_error("lease",
                           "unknown lease command '%s' (acquire, release, heartbeat, "
                           "list, show)",
                           sub);
}
