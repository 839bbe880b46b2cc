/*
 * cli.h - what the gpucoord CLI's verbs share: exit codes, the connection to the
 * coordinator, argument parsing helpers and output helpers (tables, human sizes,
 * durations, error lines).
 *
 * Every verb is a function cmd_VERB(cli, argc, argv) that returns the process
 * exit code; argv[0] is the verb's name. Messages go to stderr as one line
 * "gpucoord: ..." (the boundary logs once); results go to stdout.
 */
#ifndef GC_CLI_H
#define GC_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gpucoord.h"

/* Exit codes (documented in docs/cli.md and `gpucoord --help`). */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,   /* local failure: fork, wait, out of memory */
    CLI_EXIT_USAGE = 2,     /* bad option, missing argument, bad size string; nothing sent */
    CLI_EXIT_REFUSED = 3,   /* the lease (or demand) was not granted */
    CLI_EXIT_COORD = 4,     /* the coordinator is unreachable or answered an error */
    CLI_EXIT_NOEXEC = 126,  /* run: the command exists but cannot be executed */
    CLI_EXIT_NOTFOUND = 127 /* run: the command was not found */
};

#define CLI_DEFAULT_URL "http://127.0.0.1:10010"
/* Longest the CLI waits for one quick exchange. */
#define CLI_TIMEOUT_MS 10000L
/* Longest the CLI waits for a step the coordinator bounds itself (unload, reload:
 * at most an hour of resident timeouts plus verification). */
#define CLI_STEP_TIMEOUT_MS (3700L * 1000L)
/* Longest a single long-poll asks the coordinator to hold (it allows 60 s for events). */
#define CLI_POLL_SLICE_S 30.0

struct cli {
    const char *url;         /* --url, else NULL ($GPUCOORD_URL, else the default) */
    gpucoord_client *client; /* made by cli_connect() */
};

/* Options every verb takes: --url URL ('U') and --help ('h'). */
#define CLI_COMMON_OPTIONS                                                                         \
    {"url", required_argument, NULL, 'U'},                                                         \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

/* The verbs (one file each). */
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_lease(struct cli *cli, int argc, char **argv);
int cmd_residents(struct cli *cli, int argc, char **argv);
int cmd_unload(struct cli *cli, int argc, char **argv);
int cmd_reload(struct cli *cli, int argc, char **argv);
int cmd_events(struct cli *cli, int argc, char **argv);
int cmd_top(struct cli *cli, int argc, char **argv);
int cmd_proxy(struct cli *cli, int argc, char **argv);

/* ---- the connection (cli.c) ---- */

/* The coordinator URL in use: --url, else $GPUCOORD_URL, else the default. */
const char *cli_url(const struct cli *cli);
/* Makes cli->client if not made yet. Returns 0, or prints why and returns an exit code. */
int cli_connect(struct cli *cli);
/* Frees cli->client. */
void cli_disconnect(struct cli *cli);

/* Flags for cli_call(). */
#define CLI_CALL_LEASE 1u /* a refusal (never fits, could not free, queue full) exits 3 */

/*
 * cli_call: one JSON exchange with the coordinator. body (borrowed, may be NULL)
 * is sent as JSON. On a 2xx answer returns 0, sets *ret_status and *ret_json (a new
 * reference, NULL for an empty body; ret_json may be NULL). Otherwise prints the
 * coordinator's message (or why it could not be reached) on stderr and returns
 * the exit code: CLI_EXIT_REFUSED for refusals when flags has CLI_CALL_LEASE,
 * CLI_EXIT_COORD for the rest.
 */
int cli_call(struct cli *cli, const char *method, const char *path, const json_t *body,
             long timeout_ms, unsigned flags, long *ret_status, json_t **ret_json);
/* The same, returning the raw 2xx body (malloc'd, caller frees) instead of JSON. */
int cli_call_raw(struct cli *cli, const char *method, const char *path, long timeout_ms,
                 char **ret_body);
/* The exit code for a library error code (rc < 0) in a lease context or not. */
int cli_exit_for(int rc, bool lease);

/* ---- messages and argument parsing (cli.c) ---- */

/* "gpucoord: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "gpucoord VERB: <message>" and a hint to run VERB --help on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports getopt_long's '?' or ':' for verb (opterr must be 0); returns CLI_EXIT_USAGE. */
int cli_bad_option(const char *verb, int c, char **argv);

/* Parsers for option values: 0 and *ret on success, else a usage error was printed and
 * CLI_EXIT_USAGE is returned. what names the option ("--need"). */
int cli_parse_size(const char *verb, const char *what, const char *text, bool nonzero,
                   uint64_t *ret);
int cli_parse_seconds(const char *verb, const char *what, const char *text, double min,
                      double *ret);
int cli_parse_int(const char *verb, const char *what, const char *text, long min, long max,
                  long *ret);
/* A GPU index or "any" (GPUCOORD_GPU_ANY). */
int cli_parse_gpu(const char *verb, const char *what, const char *text, int *ret);
/* A holder or resident name, [A-Za-z0-9._-]{1,64}. */
int cli_check_name(const char *verb, const char *what, const char *text);
/* The verb's one operand after its options (a lease id or a resident name, checked like
 * cli_check_name); what names it in "missing the WHAT". 0 and *ret, or a usage error. */
int cli_one_operand(const char *verb, int argc, char **argv, const char *what, const char **ret);

/* ---- output (out.c) ---- */

/* Human size of bytes ("19.6Gi"). */
const char *cli_size(uint64_t bytes, char *buf, size_t len);
/* A JSON integer of bytes as a human size, "-" for null or missing. */
const char *cli_jsize(const json_t *v, char *buf, size_t len);
/* A duration for humans ("850ms", "12.3s", "5m12s", "2h03m"); "-" if negative or NaN. */
const char *cli_duration(double seconds, char *buf, size_t len);
/* A JSON number of seconds as a duration, "-" for null or missing. */
const char *cli_jduration(const json_t *v, char *buf, size_t len);
/* Wall-clock seconds since the epoch as local "HH:MM:SS.mmm". */
const char *cli_clock(double epoch_s, char *buf, size_t len);
/* obj[key] as a string ("-" when missing or null; numbers printed plainly). */
const char *cli_jstr(const json_t *obj, const char *key, char *buf, size_t len);
/* obj[key] as an integer (dflt when missing or not an integer). */
long long cli_jint(const json_t *obj, const char *key, long long dflt);
/* obj[key] as a number (dflt when missing or not a number). */
double cli_jnum(const json_t *obj, const char *key, double dflt);
/* Prints obj as indented JSON and a newline; returns 0 or CLI_EXIT_FAILURE. */
int cli_print_json(const json_t *obj);

/* A text table: columns sized to their widest cell, the header in capitals. */
struct cli_table;
/* A table with ncols columns named by the NULL-terminated header strings; NULL on ENOMEM. */
struct cli_table *cli_table_new(const char *const *headers);
/* Right-aligns column col (numbers). */
void cli_table_right(struct cli_table *t, unsigned col);
/* Adds one row of cells (printf each); missing cells stay empty. */
void cli_table_cell(struct cli_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Ends the current row (the next cli_table_cell starts a new one). */
void cli_table_end_row(struct cli_table *t);
/* Prints the table with indent spaces before each line; cells wider than max_width
 * (0: no limit) are cut. */
void cli_table_print(const struct cli_table *t, FILE *f, unsigned indent, unsigned max_width);
/* Number of rows. */
unsigned cli_table_rows(const struct cli_table *t);
/* Frees the table; NULL is a no-op. */
void cli_table_free(struct cli_table *t);

/* ---- shared views of the coordinator's JSON (views.c) ---- */

/* Tables of /v1/status parts, printed under a title; empty lists say "(none)". */
void cli_show_gpus(FILE *f, const json_t *gpus);
void cli_show_processes(FILE *f, const json_t *gpus);
void cli_show_residents(FILE *f, const json_t *residents);
void cli_show_leases(FILE *f, const json_t *leases);
void cli_show_queue(FILE *f, const json_t *queue);
void cli_show_counters(FILE *f, const json_t *counters);
/* One lease as "key: value" lines. */
void cli_show_lease_detail(FILE *f, const json_t *lease);
/* One event as one line: time, seq, kind, subject, detail, phase durations. */
void cli_show_event(FILE *f, const json_t *event);

#endif
