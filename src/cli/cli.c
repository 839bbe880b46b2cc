/* cli.c - the CLI's connection to the coordinator, its error lines and its
 * option-value parsers. */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/names.h"

const char *cli_url(const struct cli *cli)
{
    const char *env = getenv("GPUCOORD_URL");

    if (cli->url != NULL && cli->url[0] != '\0')
        return cli->url;
    if (env != NULL && env[0] != '\0')
        return env;
    return CLI_DEFAULT_URL;
}

int cli_connect(struct cli *cli)
{
    const char *token;
    int rc;

    if (cli->client != NULL)
        return 0;
    rc = gpucoord_client_new(cli_url(cli), &cli->client);
    token = getenv("GPUCOORD_TOKEN");
    if (rc == GPUCOORD_EINVAL && token != NULL && strlen(token) > GPUCOORD_TOKEN_MAX) {
        cli_error("$GPUCOORD_TOKEN is longer than %d characters", GPUCOORD_TOKEN_MAX);
        return CLI_EXIT_USAGE;
    }
    if (rc == GPUCOORD_EINVAL) {
        cli_error("bad coordinator URL '%s' (use http://HOST:PORT or unix:/path/to.sock)",
                  cli_url(cli));
        return CLI_EXIT_USAGE;
    }
    if (rc < 0) {
        cli_error("cannot set up a client for %s: %s", cli_url(cli), gpucoord_strerror(rc));
        return CLI_EXIT_FAILURE;
    }
    gpucoord_client_set_timeout_ms(cli->client, CLI_TIMEOUT_MS);
    return 0;
}

void cli_disconnect(struct cli *cli)
{
    gpucoord_client_free(cli->client);
    cli->client = NULL;
}

int cli_exit_for(int rc, bool lease)
{
    if (rc >= 0)
        return CLI_EXIT_OK;
    if (lease && (rc == GPUCOORD_ENEVERFITS || rc == GPUCOORD_ECOULDNOTFREE ||
                  rc == GPUCOORD_ELIMIT || rc == GPUCOORD_EQUEUED))
        return CLI_EXIT_REFUSED;
    if (rc == GPUCOORD_ENOMEM)
        return CLI_EXIT_FAILURE;
    return CLI_EXIT_COORD;
}

/* Prints why a transport-level call failed and returns the exit code. */
static int transport_failed(struct cli *cli, const char *method, const char *path, int rc)
{
    const char *msg = gpucoord_client_message(cli->client);

    if (rc == GPUCOORD_ECONNECT)
        cli_error("%s", msg[0] ? msg : "cannot reach the coordinator");
    else if (rc == GPUCOORD_ETIMEDOUT)
        cli_error("no answer from the coordinator at %s to %s %s in time (%s)", cli_url(cli),
                  method, path, msg);
    else
        cli_error("%s %s at %s: %s (%s)", method, path, cli_url(cli), gpucoord_strerror(rc), msg);
    return rc == GPUCOORD_ENOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_COORD;
}

/* Prints the coordinator's error answer and returns the exit code. */
static int answer_failed(long status, const char *body, unsigned flags)
{
    json_t *j = body != NULL ? json_loads(body, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(j, "error"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    int rc = code != NULL ? gc_err_from_name(code) : gc_err_from_http_status(status);
    int exit_code;

    exit_code = cli_exit_for(rc, flags & CLI_CALL_LEASE);
    if (msg != NULL && msg[0] != '\0')
        cli_error("%s%s", exit_code == CLI_EXIT_REFUSED ? "not granted: " : "", msg);
    else
        cli_error("the coordinator answered HTTP %ld%s%s", status, code ? " " : "",
                  code ? code : "");
    json_decref(j);
    return exit_code;
}

int cli_call(struct cli *cli, const char *method, const char *path, const json_t *body,
             long timeout_ms, unsigned flags, long *ret_status, json_t **ret_json)
{
    char *text = NULL, *answer = NULL;
    long status = 0;
    json_t *j = NULL;
    json_error_t jerr;
    int rc;

    rc = cli_connect(cli);
    if (rc != 0)
        return rc;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL) {
            cli_error("out of memory");
            return CLI_EXIT_FAILURE;
        }
    }
    rc = gpucoord_request(cli->client, method, path, text, timeout_ms, &status, &answer);
    free(text);
    if (rc < 0)
        return transport_failed(cli, method, path, rc);
    if (status < 200 || status >= 300) {
        rc = answer_failed(status, answer, flags);
        free(answer);
        return rc;
    }
    if (answer != NULL && answer[0] != '\0') {
        j = json_loads(answer, 0, &jerr);
        if (j == NULL) {
            cli_error("%s %s: the coordinator's answer is not JSON (%s)", method, path, jerr.text);
            free(answer);
            return CLI_EXIT_COORD;
        }
    }
    free(answer);
    if (ret_status != NULL)
        *ret_status = status;
    if (ret_json != NULL)
        *ret_json = j;
    else
        json_decref(j);
    return 0;
}

int cli_call_raw(struct cli *cli, const char *method, const char *path, long timeout_ms,
                 char **ret_body)
{
    char *answer = NULL;
    long status = 0;
    int rc;

    rc = cli_connect(cli);
    if (rc != 0)
        return rc;
    rc = gpucoord_request(cli->client, method, path, NULL, timeout_ms, &status, &answer);
    if (rc < 0)
        return transport_failed(cli, method, path, rc);
    if (status < 200 || status >= 300) {
        rc = answer_failed(status, answer, 0);
        free(answer);
        return rc;
    }
    *ret_body = answer;
    return 0;
}

void cli_error(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("gpucoord: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *verb, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "gpucoord%s%s: ", verb ? " " : "", verb ? verb : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'gpucoord%s%s --help'.\n", verb ? " " : "", verb ? verb : "");
    return CLI_EXIT_USAGE;
}

int cli_bad_option(const char *verb, int c, char **argv)
{
    const char *opt = optind > 0 ? argv[optind - 1] : "?";

    if (c == ':')
        return cli_usage_error(verb, "option '%s' needs a value", opt);
    if (optopt != 0 && strncmp(opt, "--", 2) != 0)
        return cli_usage_error(verb, "unknown option '-%c'", optopt);
    return cli_usage_error(verb, "unknown option '%s'", opt);
}

int cli_parse_size(const char *verb, const char *what, const char *text, bool nonzero,
                   uint64_t *ret)
{
    uint64_t bytes;

    if (gpucoord_size_parse(text, &bytes) < 0)
        return cli_usage_error(verb,
                               "%s: '%s' is not a size (like 19.6Gi, 512Mi, 20G or a number "
                               "of bytes; Ki/Mi/Gi/Ti are powers of 1024, K/M/G/T of 1000)",
                               what, text);
    if (nonzero && bytes == 0)
        return cli_usage_error(verb, "%s must be more than 0 bytes", what);
    *ret = bytes;
    return 0;
}

int cli_parse_seconds(const char *verb, const char *what, const char *text, double min, double *ret)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(text, &end);
    if (text[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(d) || d < min ||
        d > 86400.0 * 365)
        return cli_usage_error(verb, "%s: '%s' is not a number of seconds%s", what, text,
                               min > 0 ? " above 0" : "");
    *ret = d;
    return 0;
}

int cli_parse_int(const char *verb, const char *what, const char *text, long min, long max,
                  long *ret)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
        return cli_usage_error(verb, "%s: '%s' is not an integer from %ld to %ld", what, text, min,
                               max);
    *ret = v;
    return 0;
}

int cli_parse_gpu(const char *verb, const char *what, const char *text, int *ret)
{
    long v;

    if (strcmp(text, "any") == 0) {
        *ret = GPUCOORD_GPU_ANY;
        return 0;
    }
    if (cli_parse_int(verb, what, text, 0, 1023, &v) != 0)
        return CLI_EXIT_USAGE;
    *ret = (int)v;
    return 0;
}

int cli_check_name(const char *verb, const char *what, const char *text)
{
    if (!gc_name_valid(text))
        return cli_usage_error(verb,
                               "%s: '%s' is not a valid name ([A-Za-z0-9._-], 1 to %d "
                               "characters)",
                               what, text, GC_NAME_MAX);
    return 0;
}

int cli_one_operand(const char *verb, int argc, char **argv, const char *what, const char **ret)
{
    if (optind >= argc)
        return cli_usage_error(verb, "missing the %s", what);
    if (optind + 1 < argc)
        return cli_usage_error(verb, "unexpected argument '%s'", argv[optind + 1]);
    if (cli_check_name(verb, what, argv[optind]) != 0)
        return CLI_EXIT_USAGE;
    *ret = argv[optind];
    return 0;
}
