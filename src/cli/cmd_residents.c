/*
 * cmd_residents.c - gpucoord residents [list|show|register|unload|reload|demand|delete]
 * and the top-level aliases gpucoord unload NAME / gpucoord reload NAME.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: gpucoord residents [list] [--json]\n"
               "       gpucoord residents show NAME [--json]\n"
               "       gpucoord residents register --name NAME --protocol seed|http|process\n"
               "                 [--url URL] [--pid PID] [--gpu N] [--bytes SIZE] [--priority P]\n"
               "                 [--restore auto|demand|never] [--on-stuck fail|kill]\n"
               "                 [--unload 'POST /path'] [--reload 'POST /path']\n"
               "                 [--cleanup 'POST /path'] [--health 'GET /path'] [--command CMD]\n"
               "                 [--unload-timeout S] [--reload-timeout S] [--verify-timeout S]\n"
               "                 [--kill-grace S] [--json]\n"
               "       gpucoord residents unload NAME [--level LEVEL] [--json]\n"
               "                 (also: gpucoord unload NAME)\n"
               "       gpucoord residents reload NAME [--json]   (also: gpucoord reload NAME)\n"
               "       gpucoord residents demand NAME [--wait S] [--priority P] [--json]\n"
               "       gpucoord residents delete NAME\n"
               "\n"
               "A resident is a service that holds GPU memory while idle and gives it back on\n"
               "request. register tells the coordinator how to unload and reload it:\n"
               "  seed     POST URL/unload_models/, URL/reload_models/ (the founding server)\n"
               "  http     --unload and --reload name a method and path on URL\n"
               "  process  unload = SIGTERM (then SIGKILL), reload = run --command\n"
               "--bytes is the memory it declares (used when it has no --pid to measure);\n"
               "--priority defaults to 10 (leases default to 100: higher wins); --restore says\n"
               "when it is reloaded after an eviction (auto: as soon as the memory is free);\n"
               "--on-stuck says what happens when it does not free its memory in time.\n"
               "Re-registering a name replaces it.\n"
               "\n"
               "unload runs the step now and answers once NVML confirms it; reload waits its\n"
               "turn for the memory (up to the resident's reload timeout, else 409 with what\n"
               "holds it), then answers once NVML confirms it.\n"
               "demand asks for a resident's memory back, as its own waiting requests do, and\n"
               "waits up to --wait seconds (default 0: just queue it) until it is loaded.\n"
               "\n"
               "Exit: 0 done; 2 usage error; 3 demand still queued when --wait ran out;\n"
               "4 coordinator unreachable or error (no such resident, step failed).\n");
}

struct res_opts {
    bool json;
    double wait_s;
    bool have_wait;
    long priority;
    bool have_priority;
    const char *level; /* unload: the level to go down to (NULL: the last) */
};

static int parse_simple(struct cli *cli, const char *verb, int argc, char **argv, bool demand,
                        struct res_opts *o)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"wait", required_argument, NULL, 'w'},
        {"priority", required_argument, NULL, 'p'},
        {"level", required_argument, NULL, 'l'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (((c == 'w' || c == 'p') && !demand) || (c == 'l' && strstr(verb, "unload") == NULL))
            return cli_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
        switch (c) {
        case 'l':
            o->level = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'w':
            if (cli_parse_seconds(verb, "--wait", optarg, 0, &o->wait_s) != 0)
                return CLI_EXIT_USAGE;
            o->have_wait = true;
            break;
        case 'p':
            if (cli_parse_int(verb, "--priority", optarg, -1000000, 1000000, &o->priority) != 0)
                return CLI_EXIT_USAGE;
            o->have_priority = true;
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

/* "NAME: STATE (the step took X; it now uses Y on GPU N)". */
static void print_step(const json_t *r, const char *step_key)
{
    char name[80], state[32], took[32], used[32], gpu[16];

    char level[40];

    printf("%s: %s at level %s (%s took %s; it now uses %s on GPU %s)\n",
           cli_jstr(r, "name", name, 80), cli_jstr(r, "state", state, sizeof(state)),
           cli_jstr(r, "level", level, sizeof(level)),
           strcmp(step_key, "last_unload_s") == 0 ? "unload" : "reload",
           cli_jduration(json_object_get(r, step_key), took, sizeof(took)),
           cli_jsize(json_object_get(r, "used_bytes"), used, sizeof(used)),
           cli_jstr(r, "gpu", gpu, sizeof(gpu)));
}

static int res_list(struct cli *cli, int argc, char **argv)
{
    const char *verb = "residents list";
    struct res_opts o;
    json_t *ans = NULL;
    int rc;

    rc = parse_simple(cli, verb, argc, argv, false, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (optind < argc)
        return cli_usage_error(verb, "unexpected argument '%s'", argv[optind]);
    rc = cli_call(cli, "GET", "/v1/residents", NULL, CLI_TIMEOUT_MS, 0, NULL, &ans);
    if (rc != 0)
        return rc;
    if (o.json)
        rc = cli_print_json(ans);
    else
        cli_show_residents(stdout, json_object_get(ans, "residents"));
    json_decref(ans);
    return rc;
}

static int res_show(struct cli *cli, int argc, char **argv)
{
    const char *verb = "residents show", *name, *key;
    struct res_opts o;
    char path[128];
    json_t *ans = NULL, *v;
    int rc;

    rc = parse_simple(cli, verb, argc, argv, false, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = cli_one_operand(verb, argc, argv, "resident's NAME", &name);
    if (rc != 0)
        return rc;
    snprintf(path, sizeof(path), "/v1/residents/%s", name);
    rc = cli_call(cli, "GET", path, NULL, CLI_TIMEOUT_MS, 0, NULL, &ans);
    if (rc != 0)
        return rc;
    if (o.json) {
        rc = cli_print_json(ans);
    } else {
        json_object_foreach(ans, key, v)
        {
            char buf[512];
            size_t klen = strlen(key);
            if (klen > 6 && strcmp(key + klen - 6, "_bytes") == 0)
                cli_jsize(v, buf, sizeof(buf));
            else if (strcmp(key, "bytes") == 0)
                cli_jsize(v, buf, sizeof(buf));
            else if (klen > 2 && strcmp(key + klen - 2, "_s") == 0)
                cli_jduration(v, buf, sizeof(buf));
            else
                cli_jstr(ans, key, buf, sizeof(buf));
            printf("%-17s %s\n", key, json_is_string(v) ? json_string_value(v) : buf);
        }
    }
    json_decref(ans);
    return rc;
}

static int res_step(struct cli *cli, const char *verb, const char *step, int argc, char **argv)
{
    struct res_opts o;
    const char *name;
    char path[128];
    json_t *ans = NULL;
    int rc;

    rc = parse_simple(cli, verb, argc, argv, false, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = cli_one_operand(verb, argc, argv, "resident's NAME", &name);
    if (rc != 0)
        return rc;
    snprintf(path, sizeof(path), "/v1/residents/%s/%s", name, step);
    if (o.level != NULL) {
        json_t *body = json_pack("{s:s}", "level", o.level);
        rc = cli_call(cli, "POST", path, body, CLI_STEP_TIMEOUT_MS, 0, NULL, &ans);
        json_decref(body);
    } else {
        rc = cli_call(cli, "POST", path, NULL, CLI_STEP_TIMEOUT_MS, 0, NULL, &ans);
    }
    if (rc != 0)
        return rc;
    if (o.json)
        rc = cli_print_json(ans);
    else
        print_step(ans, strcmp(step, "unload") == 0 ? "last_unload_s" : "last_reload_s");
    json_decref(ans);
    return rc;
}

static int res_unload(struct cli *cli, int argc, char **argv)
{
    return res_step(cli, "residents unload", "unload", argc, argv);
}

static int res_reload(struct cli *cli, int argc, char **argv)
{
    return res_step(cli, "residents reload", "reload", argc, argv);
}

static int res_demand(struct cli *cli, int argc, char **argv)
{
    const char *verb = "residents demand", *name;
    struct res_opts o;
    char path[128], state[32];
    json_t *body, *ans = NULL;
    long status = 0;
    int rc;

    rc = parse_simple(cli, verb, argc, argv, true, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = cli_one_operand(verb, argc, argv, "resident's NAME", &name);
    if (rc != 0)
        return rc;
    if (o.wait_s > 3600)
        return cli_usage_error(verb, "--wait is at most 3600 seconds");
    body = json_object();
    if (body == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    if (o.have_wait)
        json_object_set_new(body, "wait_s", json_real(o.wait_s));
    if (o.have_priority)
        json_object_set_new(body, "priority", json_integer(o.priority));
    snprintf(path, sizeof(path), "/v1/residents/%s/demand", name);
    rc = cli_call(cli, "POST", path, body, CLI_TIMEOUT_MS + (long)(o.wait_s * 1000.0),
                  CLI_CALL_LEASE, &status, &ans);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (o.json)
        rc = cli_print_json(ans);
    if (status == 202) {
        if (!o.json)
            printf("%s: still %s; demand %s queued at position %lld\n", name,
                   cli_jstr(ans, "state", state, sizeof(state)),
                   json_string_value(json_object_get(ans, "id")), cli_jint(ans, "position", 0));
        rc = CLI_EXIT_REFUSED;
    } else if (!o.json) {
        printf("%s: %s\n", name, cli_jstr(ans, "state", state, sizeof(state)));
    }
    json_decref(ans);
    return rc;
}

static int res_delete(struct cli *cli, int argc, char **argv)
{
    const char *verb = "residents delete", *name;
    struct res_opts o;
    char path[128];
    int rc;

    rc = parse_simple(cli, verb, argc, argv, false, &o);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = cli_one_operand(verb, argc, argv, "resident's NAME", &name);
    if (rc != 0)
        return rc;
    snprintf(path, sizeof(path), "/v1/residents/%s", name);
    rc = cli_call(cli, "DELETE", path, NULL, CLI_TIMEOUT_MS, 0, NULL, NULL);
    if (rc != 0)
        return rc;
    printf("deleted %s\n", name);
    return CLI_EXIT_OK;
}

/* A value that must be one of the NULL-terminated choices. */
static int check_choice(const char *verb, const char *what, const char *value,
                        const char *const *choices)
{
    for (size_t i = 0; choices[i] != NULL; i++)
        if (strcmp(value, choices[i]) == 0)
            return 0;
    return cli_usage_error(verb, "%s: '%s' is not one of the choices (see --help)", what, value);
}

static int res_register(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"protocol", required_argument, NULL, 'P'},
        {"url", required_argument, NULL, 'u'}, /* the resident's URL, not the coordinator's */
        {"coordinator", required_argument, NULL, 'U'},
        {"pid", required_argument, NULL, 'i'},
        {"gpu", required_argument, NULL, 'g'},
        {"bytes", required_argument, NULL, 'b'},
        {"priority", required_argument, NULL, 'p'},
        {"restore", required_argument, NULL, 'r'},
        {"on-stuck", required_argument, NULL, 's'},
        {"unload", required_argument, NULL, '1'},
        {"reload", required_argument, NULL, '2'},
        {"cleanup", required_argument, NULL, '3'},
        {"health", required_argument, NULL, '4'},
        {"command", required_argument, NULL, 'c'},
        {"unload-timeout", required_argument, NULL, '5'},
        {"reload-timeout", required_argument, NULL, '6'},
        {"verify-timeout", required_argument, NULL, '7'},
        {"kill-grace", required_argument, NULL, '8'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const protocols[] = {"seed", "http", "process", NULL};
    static const char *const restores[] = {"auto", "demand", "never", NULL};
    static const char *const stucks[] = {"fail", "kill", NULL};
    static const char *const reqs[] = {"unload", "reload", "cleanup", "health"};
    static const char *const timeouts[] = {"unload_timeout_s", "reload_timeout_s",
                                           "verify_timeout_s", "kill_grace_s"};
    static const char *const timeout_opts[] = {"--unload-timeout", "--reload-timeout",
                                               "--verify-timeout", "--kill-grace"};
    const char *verb = "residents register";
    bool json_out = false, have_name = false, have_protocol = false;
    json_t *body = json_object(), *ans = NULL;
    char b[48], name[80], proto[32], url[300], state[32];
    uint64_t bytes;
    double secs;
    long v;
    int c, rc = 0;

    if (body == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    optind = 0;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            rc = cli_check_name(verb, "--name", optarg);
            json_object_set_new(body, "name", json_string(optarg));
            have_name = true;
            break;
        case 'P':
            rc = check_choice(verb, "--protocol", optarg, protocols);
            json_object_set_new(body, "protocol", json_string(optarg));
            have_protocol = true;
            break;
        case 'u':
            json_object_set_new(body, "url", json_string(optarg));
            break;
        case 'U':
            cli->url = optarg;
            break;
        case 'i':
            rc = cli_parse_int(verb, "--pid", optarg, 1, 0x7fffffff, &v);
            json_object_set_new(body, "pid", json_integer(v));
            break;
        case 'g':
            rc = cli_parse_int(verb, "--gpu", optarg, 0, 1023, &v);
            json_object_set_new(body, "gpu", json_integer(v));
            break;
        case 'b':
            rc = cli_parse_size(verb, "--bytes", optarg, false, &bytes);
            json_object_set_new(body, "bytes", json_integer((json_int_t)bytes));
            break;
        case 'p':
            rc = cli_parse_int(verb, "--priority", optarg, -1000000, 1000000, &v);
            json_object_set_new(body, "priority", json_integer(v));
            break;
        case 'r':
            rc = check_choice(verb, "--restore", optarg, restores);
            json_object_set_new(body, "restore", json_string(optarg));
            break;
        case 's':
            rc = check_choice(verb, "--on-stuck", optarg, stucks);
            json_object_set_new(body, "on_stuck", json_string(optarg));
            break;
        case '1':
        case '2':
        case '3':
        case '4':
            json_object_set_new(body, reqs[c - '1'], json_string(optarg));
            break;
        case 'c':
            json_object_set_new(body, "command", json_string(optarg));
            break;
        case '5':
        case '6':
        case '7':
        case '8':
            rc = cli_parse_seconds(verb, timeout_opts[c - '5'], optarg, 0, &secs);
            json_object_set_new(body, timeouts[c - '5'], json_real(secs));
            break;
        case 'j':
            json_out = true;
            break;
        case 'h':
            usage(stdout);
            json_decref(body);
            return CLI_EXIT_OK;
        default:
            rc = cli_bad_option(verb, c, argv);
            break;
        }
    }
    if (rc == 0 && optind < argc)
        rc = cli_usage_error(verb, "unexpected argument '%s'", argv[optind]);
    if (rc == 0 && (!have_name || !have_protocol))
        rc = cli_usage_error(verb, "--name and --protocol are required");
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    rc = cli_call(cli, "POST", "/v1/residents", body, CLI_TIMEOUT_MS, 0, NULL, &ans);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (json_out) {
        rc = cli_print_json(ans);
    } else {
        char pid[32], gpu[16], prio[16];
        printf("registered %s: %s at %s, pid %s, GPU %s, %s, priority %s; %s\n",
               cli_jstr(ans, "name", name, sizeof(name)),
               cli_jstr(ans, "protocol", proto, sizeof(proto)),
               json_string_value(json_object_get(ans, "url")) &&
                       json_string_value(json_object_get(ans, "url"))[0]
                   ? cli_jstr(ans, "url", url, sizeof(url))
                   : "-",
               cli_jstr(ans, "pid", pid, sizeof(pid)), cli_jstr(ans, "gpu", gpu, sizeof(gpu)),
               cli_jsize(json_object_get(ans, "bytes"), b, sizeof(b)),
               cli_jstr(ans, "priority", prio, sizeof(prio)),
               cli_jstr(ans, "state", state, sizeof(state)));
    }
    json_decref(ans);
    return rc;
}

int cmd_residents(struct cli *cli, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(struct cli *, int, char **);
    } subs[] = {
        {"list", res_list},     {"show", res_show},     {"register", res_register},
        {"unload", res_unload}, {"reload", res_reload}, {"demand", res_demand},
        {"delete", res_delete},
    };
    const char *sub = argc > 1 ? argv[1] : NULL;

    /* No sub-command, or options only: list. */
    if (sub == NULL || (sub[0] == '-' && strcmp(sub, "--help") && strcmp(sub, "-h")))
        return res_list(cli, argc, argv);
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcmp(sub, subs[i].name) == 0)
            return subs[i].fn(cli, argc - 1, argv + 1);
    return cli_usage_error("residents",
                           "unknown residents command '%s' (list, show, register, unload, "
                           "reload, demand, delete)",
                           sub);
}

int cmd_unload(struct cli *cli, int argc, char **argv)
{
    return res_step(cli, "unload", "unload", argc, argv);
}

int cmd_reload(struct cli *cli, int argc, char **argv)
{
    return res_step(cli, "reload", "reload", argc, argv);
}
