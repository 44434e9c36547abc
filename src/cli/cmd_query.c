#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/forms.h"
#include "util/xalloc.h"

static const struct cli_command query_command = {
    .name = "query",
    .min_args = 1,
    .missing = "give the SQL to run, e.g. vmsnap query 'SELECT * FROM snapshots'",
    .max_args = -1,
    .synopsis =
        "usage: vmsnap query [--timeout DURATION] [--max-memory SIZE] [--max-rows N] SQL\n\n"
        "Runs one read-only SQL statement on the database and prints the rows as a table\n"
        "(or, with -j, as a JSON array of objects, like sqlite3 -json).\n"
        "Tables: targets, snapshots, and for a recording with call stacks events (a row a\n"
        "call) and stack_frames; views: regions (one row per region per snapshot) and\n"
        "category_totals (per snapshot and category). See the README for examples.\n",
    /* SQL may start with a '-' comment. */
    .stop_at_argument = 1,
};

/* At least 16 MiB of memory, or 0 for no limit. */
static int parse_memory(const char *arg, void *bytes)
{
    uint64_t *b = bytes;
    return cli_parse_size(arg, b) == 0 && *b <= (1ull << 62) && (!*b || *b >= (16u << 20)) ? 0 : -1;
}

/* Table output needs every row to size its columns, so cells are kept as text. */
struct table {
    int ncols;
    char **names;
    char **cells; /* row-major */
    int *numeric; /* per cell: right-align */
    size_t nrows, cap, numeric_cap;
};

struct query_ctx {
    int json;
    int64_t max_rows; /* table rows kept at most; 0: no limit */
    struct json j;
    struct table t;
};

static char *value_text(const struct store_value *v)
{
    switch (v->type) {
    case STORE_INT:
        return xasprintf("%" PRId64, v->i);
    case STORE_REAL:
        return xasprintf("%.15g", v->r);
    case STORE_TEXT:
        return cli_escape(v->s, (size_t)v->len);
    case STORE_BLOB:
        return xasprintf("<blob %d bytes>", v->len);
    default:
        return xstrdup("");
    }
}

static int on_columns(void *ctx, int n, const char *const *names)
{
    struct query_ctx *c = ctx;
    if (c->json) {
        c->t.names = xcalloc((size_t)n + 1, sizeof(char *));
        for (int i = 0; i < n; i++)
            c->t.names[i] = xstrdup(names[i]);
        c->t.ncols = n;
        json_begin_array(&c->j);
        return 0;
    }
    c->t.ncols = n;
    c->t.names = xcalloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++)
        c->t.names[i] = xstrdup(names[i]);
    return 0;
}

static int on_row(void *ctx, int n, const struct store_value *v)
{
    struct query_ctx *c = ctx;
    if (c->json) {
        json_begin_object(&c->j);
        for (int i = 0; i < n; i++) {
            json_key(&c->j, c->t.names[i]);
            switch (v[i].type) {
            case STORE_INT:
                json_int(&c->j, v[i].i);
                break;
            case STORE_REAL:
                json_double(&c->j, v[i].r);
                break;
            case STORE_TEXT:
                json_string_len(&c->j, v[i].s, (size_t)v[i].len);
                break;
            case STORE_BLOB: {
                char *s = value_text(&v[i]);
                json_string(&c->j, s);
                free(s);
                break;
            }
            default:
                json_null(&c->j);
            }
        }
        json_end_object(&c->j);
        return ferror(stdout) ? -1 : 0;
    }
    struct table *t = &c->t;
    /* A table keeps every row to size its columns: an endless result must not take all the
     * memory there is. */
    if (c->max_rows && t->nrows >= (size_t)c->max_rows)
        return 1;
    size_t need = (t->nrows + 1) * (size_t)n;
    t->cells = xgrow(t->cells, &t->cap, need, sizeof(char *));
    t->numeric = xgrow(t->numeric, &t->numeric_cap, need, sizeof(int));
    for (int i = 0; i < n; i++) {
        t->cells[t->nrows * (size_t)n + (size_t)i] = value_text(&v[i]);
        t->numeric[t->nrows * (size_t)n + (size_t)i] =
            v[i].type == STORE_INT || v[i].type == STORE_REAL;
    }
    t->nrows++;
    return 0;
}

/* Display width in characters (UTF-8 continuation bytes take no column). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void print_cell(const char *s, size_t w, int right, int last)
{
    size_t pad = w > width(s) ? w - width(s) : 0;
    if (right)
        cli_printf("%*s", (int)pad, "");
    cli_puts(s);
    if (!right && !last)
        cli_printf("%*s", (int)pad, "");
}

static void print_table(const struct table *t)
{
    size_t *w = xcalloc((size_t)t->ncols + 1, sizeof(size_t));
    for (int i = 0; i < t->ncols; i++)
        w[i] = width(t->names[i]);
    for (size_t r = 0; r < t->nrows; r++)
        for (int i = 0; i < t->ncols; i++) {
            size_t cw = width(t->cells[r * (size_t)t->ncols + (size_t)i]);
            if (cw > w[i])
                w[i] = cw;
        }
    for (int i = 0; i < t->ncols; i++) {
        print_cell(t->names[i], w[i], 0, i == t->ncols - 1);
        fputs(i == t->ncols - 1 ? "\n" : "  ", stdout);
    }
    for (size_t r = 0; r < t->nrows; r++)
        for (int i = 0; i < t->ncols; i++) {
            size_t k = r * (size_t)t->ncols + (size_t)i;
            print_cell(t->cells[k], w[i], t->numeric[k], i == t->ncols - 1);
            fputs(i == t->ncols - 1 ? "\n" : "  ", stdout);
        }
    free(w);
}

static void table_release(struct table *t)
{
    for (int i = 0; i < t->ncols; i++)
        free(t->names ? t->names[i] : NULL);
    for (size_t k = 0; k < t->nrows * (size_t)t->ncols; k++)
        free(t->cells[k]);
    free(t->names);
    free(t->cells);
    free(t->numeric);
}

int cmd_query(struct cli *cli, int argc, char **argv)
{
    int64_t timeout_ms = 5 * 60 * 1000, max_rows = 1000000;
    uint64_t max_memory = 1ull << 30;
    const struct cli_opt opts[] = {
        {CLI_OPTION(0, "timeout", CLI_OPT_DURATION, &timeout_ms, "DURATION",
                    "stop the statement after this long (default 5m; 0: never)"),
         .expected = "a duration such as 30s or 5m (0: never)"},
        {CLI_OPTION(0, "max-memory", CLI_OPT_CALL, &max_memory, "SIZE",
                    "memory SQLite may use, temporary results included, which stay\n"
                    "in memory rather than filling a disk (default 1G; 0: no limit,\n"
                    "and temporary files as sqlite3 uses them)"),
         .expected = "a size such as 512M or 4G, at least 16M (0: no limit)", .call = parse_memory},
        {CLI_OPTION(0, "max-rows", CLI_OPT_COUNT, &max_rows, "N",
                    "rows a table holds before it is printed (default 1000000; more\n"
                    "is refused: use -j, which streams, or LIMIT; 0: no limit)"),
         .expected = "a whole number (0: no limit)"},
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    int rc = cli_parse_options(cli, &query_command, opts, argc, argv, &args);
    if (rc)
        return cli_options_exit(rc);
    if (args.n > 1)
        return cli_fail("query: give the SQL as one argument (quote it)");
    struct store *st = NULL;
    if (max_memory)
        store_count_memory();
    if (cli_open_store(cli, STORE_READ, &st))
        return EXIT_TROUBLE;
    struct query_ctx c;
    memset(&c, 0, sizeof(c));
    c.json = cli->json;
    c.max_rows = max_rows;
    if (c.json)
        json_init(&c.j, stdout);
    struct store_query_cb cb = {on_columns, on_row, &c, timeout_ms, (int64_t)max_memory};
    struct err e = {0};
    rc = store_query(st, args.v[0], &cb, &e);
    if (rc < 0 && !c.json && c.max_rows && c.t.nrows >= (size_t)c.max_rows)
        err_set(&e, ERR_USAGE,
                "query: more than %lld rows, more than a table holds (--max-rows) -- add a "
                "LIMIT, or use -j, which streams them",
                (long long)c.max_rows);
    store_close(st);
    int status = EXIT_OK;
    if (rc < 0) {
        if (c.json && c.t.names)
            fputc('\n', stdout);
        status = cli_fail_err(&e);
    } else if (c.json) {
        json_end_array(&c.j);
        json_finish(&c.j);
    } else {
        print_table(&c.t);
    }
    table_release(&c.t);
    if (fflush(stdout) != 0 && status == EXIT_OK)
        status = cli_fail("query: cannot write the output");
    return status;
}
