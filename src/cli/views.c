/* views.c - the CLI's tables and lines for the coordinator's JSON (shared by
 * status, lease, residents, events and top). Field names follow DESIGN.md
 * section 4 and src/daemon/views.c; a missing field prints as "-". */
#include <string.h>

#include "cli/cli.h"

#define S_LEN 48

static void print_title(FILE *f, const char *title, size_t n)
{
    fprintf(f, "%s (%zu)\n", title, n);
}

static void print_none(FILE *f)
{
    fputs("  (none)\n", f);
}

/* Prints t (or "(none)") and frees it. */
static void table_done(FILE *f, struct cli_table *t)
{
    if (cli_table_rows(t) == 0)
        print_none(f);
    else
        cli_table_print(t, f, 2, 48);
    cli_table_free(t);
}

void cli_show_gpus(FILE *f, const json_t *gpus)
{
    static const char *const head[] = {"GPU",       "NAME",   "USED",    "TOTAL",    "FREE",
                                       "COMMITTED", "BUDGET", "RESERVE", "HEADROOM", NULL};
    struct cli_table *t = cli_table_new(head);
    const json_t *g;
    size_t i;

    print_title(f, "GPUS", json_array_size(gpus));
    for (unsigned c = 2; c < 9; c++)
        cli_table_right(t, c);
    json_array_foreach(gpus, i, g)
    {
        char b[7][S_LEN], idx[S_LEN], name[S_LEN * 2];
        cli_table_cell(t, "%s", cli_jstr(g, "index", idx, sizeof(idx)));
        cli_table_cell(t, "%s", cli_jstr(g, "name", name, sizeof(name)));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(g, "used_bytes"), b[0], S_LEN));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(g, "total_bytes"), b[1], S_LEN));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(g, "free_bytes"), b[2], S_LEN));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(g, "committed_bytes"), b[3], S_LEN));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(g, "budget_bytes"), b[4], S_LEN));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(g, "reserve_bytes"), b[5], S_LEN));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(g, "headroom_bytes"), b[6], S_LEN));
        cli_table_end_row(t);
    }
    table_done(f, t);
}

void cli_show_processes(FILE *f, const json_t *gpus)
{
    static const char *const head[] = {"GPU", "PID", "USED", "OWNER", NULL};
    struct cli_table *t = cli_table_new(head);
    const json_t *g, *p;
    size_t i, j, n = 0;

    cli_table_right(t, 1);
    cli_table_right(t, 2);
    json_array_foreach(gpus, i, g)
    {
        json_array_foreach(json_object_get(g, "processes"), j, p)
        {
            char idx[S_LEN], pid[S_LEN], used[S_LEN], owner[S_LEN * 2];
            cli_table_cell(t, "%s", cli_jstr(g, "index", idx, sizeof(idx)));
            cli_table_cell(t, "%s", cli_jstr(p, "pid", pid, sizeof(pid)));
            cli_table_cell(t, "%s", cli_jsize(json_object_get(p, "used_bytes"), used, S_LEN));
            cli_table_cell(t, "%s", cli_jstr(p, "owner", owner, sizeof(owner)));
            cli_table_end_row(t);
            n++;
        }
    }
    print_title(f, "PROCESSES", n);
    table_done(f, t);
}

void cli_show_residents(FILE *f, const json_t *residents)
{
    static const char *const head[] = {
        "NAME",    "STATE",   "SIZE",        "USED",        "PRIO",    "PID",    "GPU",
        "UNLOADS", "RELOADS", "LAST UNLOAD", "LAST RELOAD", "RESTORE", "REASON", NULL};
    struct cli_table *t = cli_table_new(head);
    const json_t *r;
    size_t i;

    print_title(f, "RESIDENTS", json_array_size(residents));
    for (unsigned c = 2; c < 11; c++)
        cli_table_right(t, c);
    json_array_foreach(residents, i, r)
    {
        char b[12][S_LEN], name[S_LEN * 2], reason[512];
        const char *state = cli_jstr(r, "state", b[0], S_LEN);
        const json_t *since = json_object_get(r, "unloaded_for_s");

        cli_table_cell(t, "%s", cli_jstr(r, "name", name, sizeof(name)));
        if (json_is_number(since))
            cli_table_cell(t, "%s %s", state, cli_jduration(since, b[1], S_LEN));
        else
            cli_table_cell(t, "%s", state);
        cli_table_cell(t, "%s", cli_jsize(json_object_get(r, "bytes"), b[2], S_LEN));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(r, "used_bytes"), b[3], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(r, "priority", b[4], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(r, "pid", b[5], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(r, "gpu", b[6], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(r, "unloads", b[7], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(r, "reloads", b[8], S_LEN));
        /* The coordinator reports how long the last step took (0: never ran). */
        cli_table_cell(t, "%s",
                       cli_jint(r, "unloads", 0) > 0
                           ? cli_jduration(json_object_get(r, "last_unload_s"), b[9], S_LEN)
                           : "-");
        cli_table_cell(t, "%s",
                       cli_jint(r, "reloads", 0) > 0
                           ? cli_jduration(json_object_get(r, "last_reload_s"), b[10], S_LEN)
                           : "-");
        cli_table_cell(t, "%s", cli_jstr(r, "restore", b[11], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(r, "reason", reason, sizeof(reason)));
        cli_table_end_row(t);
    }
    table_done(f, t);
}

void cli_show_leases(FILE *f, const json_t *leases)
{
    static const char *const head[] = {"ID",  "HOLDER", "STATE", "SIZE",       "GPU",     "PRIO",
                                       "PID", "WAITED", "HELD",  "EXPIRES IN", "EVICTED", NULL};
    struct cli_table *t = cli_table_new(head);
    const json_t *l, *e;
    size_t i, j;

    print_title(f, "LEASES", json_array_size(leases));
    for (unsigned c = 3; c < 10; c++)
        cli_table_right(t, c);
    json_array_foreach(leases, i, l)
    {
        char b[9][S_LEN], holder[S_LEN * 2], evicted[256] = "";
        const char *kind = json_string_value(json_object_get(l, "kind"));
        const char *state = cli_jstr(l, "state", b[1], S_LEN);
        const json_t *gpu = json_object_get(l, "gpu");
        size_t off = 0;

        json_array_foreach(json_object_get(l, "evicted"), j, e)
        {
            int n = snprintf(evicted + off, sizeof(evicted) - off, "%s%s", j ? "," : "",
                             json_string_value(e) ? json_string_value(e) : "?");
            if (n < 0 || (size_t)n >= sizeof(evicted) - off)
                break;
            off += (size_t)n;
        }
        cli_table_cell(t, "%s", cli_jstr(l, "id", b[0], S_LEN));
        cli_table_cell(t, "%s%s", cli_jstr(l, "holder", holder, sizeof(holder)),
                       kind && strcmp(kind, "demand") == 0 ? " (demand)" : "");
        if (json_object_get(l, "position") != NULL)
            cli_table_cell(t, "%s #%lld", state, cli_jint(l, "position", 0));
        else
            cli_table_cell(t, "%s", state);
        cli_table_cell(t, "%s", cli_jsize(json_object_get(l, "bytes"), b[2], S_LEN));
        if (json_is_integer(gpu))
            cli_table_cell(t, "%lld", (long long)json_integer_value(gpu));
        else
            cli_table_cell(t, "%s", cli_jstr(l, "gpu_requested", b[3], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(l, "priority", b[4], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(l, "pid", b[5], S_LEN));
        cli_table_cell(t, "%s", cli_jduration(json_object_get(l, "waited_s"), b[6], S_LEN));
        cli_table_cell(t, "%s", cli_jduration(json_object_get(l, "held_s"), b[7], S_LEN));
        cli_table_cell(t, "%s", cli_jduration(json_object_get(l, "expires_in_s"), b[8], S_LEN));
        cli_table_cell(t, "%s", off ? evicted : "-");
        cli_table_end_row(t);
    }
    table_done(f, t);
}

void cli_show_queue(FILE *f, const json_t *queue)
{
    static const char *const head[] = {"POS", "ID", "HOLDER", "SIZE", "STATE", NULL};
    struct cli_table *t = cli_table_new(head);
    const json_t *q;
    size_t i;

    print_title(f, "QUEUE", json_array_size(queue));
    cli_table_right(t, 0);
    cli_table_right(t, 3);
    json_array_foreach(queue, i, q)
    {
        char b[4][S_LEN], holder[S_LEN * 2];
        cli_table_cell(t, "%s", cli_jstr(q, "position", b[0], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(q, "id", b[1], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(q, "holder", holder, sizeof(holder)));
        cli_table_cell(t, "%s", cli_jsize(json_object_get(q, "bytes"), b[2], S_LEN));
        cli_table_cell(t, "%s", cli_jstr(q, "state", b[3], S_LEN));
        cli_table_end_row(t);
    }
    table_done(f, t);
}

void cli_show_counters(FILE *f, const json_t *counters)
{
    const char *key;
    const json_t *v;
    size_t col = 0;

    fputs("COUNTERS\n", f);
    if (json_object_size(counters) == 0) {
        print_none(f);
        return;
    }
    json_object_foreach((json_t *)counters, key, v)
    {
        char num[S_LEN], item[160];
        int n =
            snprintf(item, sizeof(item), "%s %s", key, cli_jstr(counters, key, num, sizeof(num)));
        if (n < 0)
            continue;
        if (col > 0 && col + 3 + (size_t)n > 90) {
            fputc('\n', f);
            col = 0;
        }
        fprintf(f, "%s%s", col ? "   " : "  ", item);
        col += (col ? 3 : 2) + (size_t)n;
    }
    fputc('\n', f);
}

void cli_show_lease_detail(FILE *f, const json_t *lease)
{
    static const struct {
        const char *key, *label;
        char kind; /* s: string, b: bytes, d: duration */
    } rows[] = {
        {"id", "id", 's'},
        {"holder", "holder", 's'},
        {"kind", "kind", 's'},
        {"state", "state", 's'},
        {"bytes", "size", 'b'},
        {"gpu", "gpu", 's'},
        {"gpu_requested", "gpu requested", 's'},
        {"priority", "priority", 's'},
        {"pid", "pid", 's'},
        {"ttl_s", "ttl", 'd'},
        {"position", "queue position", 's'},
        {"waited_s", "waited", 'd'},
        {"held_s", "held", 'd'},
        {"expires_in_s", "expires in", 'd'},
        {"reason", "reason", 's'},
    };
    const json_t *e;
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const json_t *v = json_object_get(lease, rows[i].key);
        char buf[512];
        if (v == NULL)
            continue;
        if (rows[i].kind == 'b')
            cli_jsize(v, buf, sizeof(buf));
        else if (rows[i].kind == 'd')
            cli_jduration(v, buf, sizeof(buf));
        fprintf(f, "%-15s %s\n", rows[i].label,
                rows[i].kind == 's' ? cli_jstr(lease, rows[i].key, buf, sizeof(buf)) : buf);
    }
    fprintf(f, "%-15s ", "evicted");
    if (json_array_size(json_object_get(lease, "evicted")) == 0)
        fputc('-', f);
    json_array_foreach(json_object_get(lease, "evicted"), i, e)
        fprintf(f, "%s%s", i ? ", " : "", json_string_value(e) ? json_string_value(e) : "?");
    fputc('\n', f);
}

void cli_show_event(FILE *f, const json_t *ev)
{
    char when[S_LEN], seq[S_LEN], kind[S_LEN], subject[S_LEN * 2], detail[512];
    const json_t *durations = json_object_get(ev, "durations");
    const char *key;
    const json_t *v;
    bool first = true;

    fprintf(f, "%s  #%-5s %-20s %-16s %s", cli_clock(cli_jnum(ev, "time", 0), when, S_LEN),
            cli_jstr(ev, "seq", seq, S_LEN), cli_jstr(ev, "kind", kind, S_LEN),
            cli_jstr(ev, "subject", subject, sizeof(subject)),
            cli_jstr(ev, "detail", detail, sizeof(detail)));
    json_object_foreach((json_t *)durations, key, v)
    {
        char d[S_LEN];
        fprintf(f, "%s%s %s", first ? "  [" : ", ", key, cli_jduration(v, d, S_LEN));
        first = false;
    }
    fputs(first ? "\n" : "]\n", f);
}
