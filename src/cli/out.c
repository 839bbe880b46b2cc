/* out.c - the CLI's output helpers: human sizes, durations, clock times, JSON
 * field access and text tables. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* Most columns and rows a table holds (the coordinator caps its lists far lower). */
#define TABLE_COLS_MAX 16
#define TABLE_ROWS_MAX 4096

struct cli_table {
    unsigned ncols;
    char *headers[TABLE_COLS_MAX];
    bool right[TABLE_COLS_MAX];
    char **cells; /* nrows * ncols, NULL for empty */
    unsigned nrows, cap_rows;
    unsigned cur_col; /* next cell in the last row; ncols = row ended */
};

const char *cli_size(uint64_t bytes, char *buf, size_t len)
{
    return gpucoord_size_format(bytes, buf, len);
}

const char *cli_jsize(const json_t *v, char *buf, size_t len)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    return cli_size((uint64_t)json_integer_value(v), buf, len);
}

const char *cli_duration(double s, char *buf, size_t len)
{
    if (!(s >= 0) || !isfinite(s))
        snprintf(buf, len, "-");
    else if (s < 1.0)
        snprintf(buf, len, "%.0fms", s * 1000.0);
    else if (s < 60.0)
        snprintf(buf, len, "%.1fs", s);
    else if (s < 3600.0)
        snprintf(buf, len, "%dm%02ds", (int)(s / 60.0), (int)fmod(s, 60.0));
    else if (s < 86400.0 * 100)
        snprintf(buf, len, "%dh%02dm", (int)(s / 3600.0), (int)fmod(s / 60.0, 60.0));
    else
        snprintf(buf, len, "%.0fd", s / 86400.0);
    return buf;
}

const char *cli_jduration(const json_t *v, char *buf, size_t len)
{
    if (!json_is_number(v)) {
        snprintf(buf, len, "-");
        return buf;
    }
    return cli_duration(json_number_value(v), buf, len);
}

const char *cli_clock(double epoch_s, char *buf, size_t len)
{
    time_t t = (time_t)epoch_s;
    struct tm tm;

    if (!(epoch_s > 0) || localtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "-");
        return buf;
    }
    snprintf(buf, len, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((epoch_s - floor(epoch_s)) * 1000.0));
    return buf;
}

const char *cli_jstr(const json_t *obj, const char *key, char *buf, size_t len)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%g", json_real_value(v));
    else if (json_is_true(v))
        snprintf(buf, len, "yes");
    else if (json_is_false(v))
        snprintf(buf, len, "no");
    else
        snprintf(buf, len, "-");
    return buf;
}

long long cli_jint(const json_t *obj, const char *key, long long dflt)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

double cli_jnum(const json_t *obj, const char *key, double dflt)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_number(v) ? json_number_value(v) : dflt;
}

int cli_print_json(const json_t *obj)
{
    if (json_dumpf(obj, stdout, JSON_INDENT(2)) < 0) {
        cli_error("cannot print JSON");
        return CLI_EXIT_FAILURE;
    }
    fputc('\n', stdout);
    return 0;
}

struct cli_table *cli_table_new(const char *const *headers)
{
    struct cli_table *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    while (headers[t->ncols] != NULL && t->ncols < TABLE_COLS_MAX) {
        t->headers[t->ncols] = strdup(headers[t->ncols]);
        if (t->headers[t->ncols] == NULL) {
            cli_table_free(t);
            return NULL;
        }
        t->ncols++;
    }
    t->cur_col = t->ncols;
    return t;
}

void cli_table_right(struct cli_table *t, unsigned col)
{
    if (t != NULL && col < t->ncols)
        t->right[col] = true;
}

static bool table_new_row(struct cli_table *t)
{
    if (t->nrows >= TABLE_ROWS_MAX)
        return false;
    if (t->nrows == t->cap_rows) {
        unsigned cap = t->cap_rows ? t->cap_rows * 2 : 16;
        char **cells = realloc(t->cells, (size_t)cap * t->ncols * sizeof(*cells));
        if (cells == NULL)
            return false;
        t->cells = cells;
        t->cap_rows = cap;
    }
    memset(&t->cells[(size_t)t->nrows * t->ncols], 0, t->ncols * sizeof(*t->cells));
    t->nrows++;
    t->cur_col = 0;
    return true;
}

void cli_table_cell(struct cli_table *t, const char *fmt, ...)
{
    va_list ap;
    char *cell = NULL;

    if (t == NULL || t->ncols == 0)
        return;
    if (t->cur_col >= t->ncols && !table_new_row(t))
        return;
    va_start(ap, fmt);
    if (vasprintf(&cell, fmt, ap) < 0)
        cell = NULL;
    va_end(ap);
    t->cells[(size_t)(t->nrows - 1) * t->ncols + t->cur_col] = cell;
    t->cur_col++;
}

void cli_table_end_row(struct cli_table *t)
{
    if (t != NULL)
        t->cur_col = t->ncols;
}

unsigned cli_table_rows(const struct cli_table *t)
{
    return t ? t->nrows : 0;
}

/* Display width of a UTF-8 string (code points; the CLI prints no wide characters). */
static size_t text_width(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Prints s padded to width (cut at max when max > 0). */
static void print_cell(FILE *f, const char *s, size_t width, bool right, bool last)
{
    size_t w = text_width(s);

    if (right)
        for (size_t i = w; i < width; i++)
            fputc(' ', f);
    if (w > width) {
        /* Cut: copy code points up to width - 1 and mark with '~'. */
        size_t shown = 0;
        for (const char *p = s; *p && shown < width - 1; p++) {
            fputc(*p, f);
            if (((unsigned char)p[1] & 0xC0) != 0x80)
                shown++;
        }
        fputc('~', f);
        w = width;
    } else {
        fputs(s, f);
    }
    if (!right && !last)
        for (size_t i = w; i < width; i++)
            fputc(' ', f);
}

void cli_table_print(const struct cli_table *t, FILE *f, unsigned indent, unsigned max_width)
{
    size_t width[TABLE_COLS_MAX];

    if (t == NULL)
        return;
    for (unsigned c = 0; c < t->ncols; c++) {
        width[c] = text_width(t->headers[c]);
        for (unsigned r = 0; r < t->nrows; r++) {
            const char *cell = t->cells[(size_t)r * t->ncols + c];
            size_t w = cell ? text_width(cell) : 0;
            if (w > width[c])
                width[c] = w;
        }
        if (max_width > 1 && width[c] > max_width)
            width[c] = max_width;
    }
    for (int r = -1; r < (int)t->nrows; r++) {
        fprintf(f, "%*s", (int)indent, "");
        for (unsigned c = 0; c < t->ncols; c++) {
            const char *cell = r < 0 ? t->headers[c] : t->cells[(size_t)r * t->ncols + c];
            if (c > 0)
                fputs("  ", f);
            print_cell(f, cell ? cell : "", width[c], t->right[c], c + 1 == t->ncols);
        }
        fputc('\n', f);
    }
}

void cli_table_free(struct cli_table *t)
{
    if (t == NULL)
        return;
    for (unsigned c = 0; c < t->ncols; c++)
        free(t->headers[c]);
    for (size_t i = 0; i < (size_t)t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
