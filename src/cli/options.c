/* The option parser every command uses, and the --help it makes (see options.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"

/* The options every command takes. */
static const struct cli_opt common[] = {
    {CLI_OPTION('d', "db", CLI_OPT_STRING, NULL, "FILE", "database")},
    {CLI_OPTION('j', "json", CLI_OPT_FLAG, NULL, NULL, "JSON output")},
    {CLI_OPTION('h', "help", CLI_OPT_FLAG, NULL, NULL, "this help")},
    CLI_OPT_TABLE_END,
};
enum { COMMON_DB, COMMON_JSON, COMMON_HELP };

/* "CMD: <what> -- see 'vmsnap CMD --help'": EXIT_TROUBLE. */
static int trouble(const struct cli_command *c, const char *fmt, ...) VMSNAP_PRINTF(2, 3);
static int trouble(const struct cli_command *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return cli_fail("%s: %s -- see 'vmsnap %s --help'", c->name, line, c->name);
}

/* The wording of an invalid value by kind: what is wrong, and what would be right. */
static const char *default_expected(const struct cli_opt *o)
{
    switch (o->kind) {
    case CLI_OPT_COUNT:
        return o->min > 0 ? "a whole number above 0" : "a whole number";
    case CLI_OPT_SIZE:
        return "bytes with an optional unit K, M or G";
    case CLI_OPT_DURATION:
        return o->min > 0 ? "a number above 0 with an optional unit ms, s, m or h"
                          : "a number with an optional unit ms, s, m or h";
    case CLI_OPT_PID:
        return "a positive whole number";
    case CLI_OPT_TARGET:
        return "a target id (a positive whole number; see 'vmsnap list')";
    default:
        return NULL;
    }
}

static int invalid(const struct cli_command *c, const struct cli_opt *o, const char *arg)
{
    const char *what = o->what ? o->what : o->kind == CLI_OPT_TARGET ? "target id" : o->long_name;
    const char *expected = o->expected ? o->expected : default_expected(o);
    if (expected)
        return cli_fail("%s: invalid %s '%s': expected %s", c->name, what, arg, expected);
    return cli_fail("%s: invalid %s '%s'", c->name, what, arg);
}

/* Stores arg for o: 0, or EXIT_TROUBLE after saying why not. */
static int take(const struct cli_command *c, const struct cli_opt *o, const char *arg)
{
    int ok = 1;
    switch (o->kind) {
    case CLI_OPT_FLAG:
        *(int *)o->value = 1;
        break;
    case CLI_OPT_STRING:
        *(const char **)o->value = arg;
        break;
    case CLI_OPT_COUNT:
        ok = cli_parse_count(arg, (int64_t *)o->value) == 0 && *(int64_t *)o->value >= o->min;
        break;
    case CLI_OPT_SIZE:
        ok = cli_parse_size(arg, (uint64_t *)o->value) == 0;
        break;
    case CLI_OPT_DURATION:
        ok = cli_parse_duration_ms(arg, (int64_t *)o->value) == 0 && *(int64_t *)o->value >= o->min;
        break;
    case CLI_OPT_PID:
    case CLI_OPT_TARGET:
        ok = cli_parse_pid(arg, (int64_t *)o->value) == 0;
        break;
    case CLI_OPT_LABEL: {
        struct err e = {0};
        if (store_label_check(arg, &e) < 0)
            return cli_fail("%s: %s", c->name, e.msg);
        *(const char **)o->value = arg;
        break;
    }
    case CLI_OPT_CHOICE: {
        int v = o->choose(arg);
        ok = v >= 0;
        if (ok)
            *(int *)o->value = v;
        break;
    }
    case CLI_OPT_CALL: {
        int rc = o->call(arg, o->value);
        if (rc > 0)
            return EXIT_TROUBLE;
        ok = rc == 0;
        break;
    }
    case CLI_OPT_END:
    case CLI_OPT_TEXT:
        break;
    }
    if (!ok)
        return invalid(c, o, arg);
    if (o->given)
        *o->given = 1;
    return 0;
}

/* The option named by the long name given (name[0..len)), exact or an unambiguous prefix. */
static const struct cli_opt *find_long(const struct cli_command *c,
                                       const struct cli_opt *const *tables, const char *name,
                                       size_t len, const char *given, int *rc)
{
    const struct cli_opt *found = NULL;
    int matches = 0;
    char which[256] = "";
    *rc = 0;
    for (int t = 0; t < 2; t++)
        for (const struct cli_opt *o = tables[t]; o->kind != CLI_OPT_END; o++) {
            if (!o->long_name || strncmp(o->long_name, name, len) != 0)
                continue;
            if (o->long_name[len] == '\0')
                return o;
            found = o;
            size_t used = strlen(which);
            snprintf(which + used, sizeof(which) - used, "%s--%s", matches ? ", " : "",
                     o->long_name);
            matches++;
        }
    if (matches == 1)
        return found;
    *rc = matches ? trouble(c, "ambiguous option '%s' (%s)", given, which)
                  : trouble(c, "unknown option '%s'", given);
    return NULL;
}

static const struct cli_opt *find_short(const struct cli_opt *const *tables, char ch)
{
    for (int t = 0; t < 2; t++)
        for (const struct cli_opt *o = tables[t]; o->kind != CLI_OPT_END; o++)
            if (o->short_name && o->short_name == ch)
                return o;
    return NULL;
}

/* Acts on o with arg (NULL for a flag): the common ones touch cli. */
static int act(struct cli *cli, const struct cli_command *c, const struct cli_opt *opts,
               const struct cli_opt *o, const char *arg)
{
    if (o == &common[COMMON_DB]) {
        cli->db_path = arg;
        return 0;
    }
    if (o == &common[COMMON_JSON]) {
        cli->json = 1;
        return 0;
    }
    if (o == &common[COMMON_HELP]) {
        cli_print_help(c, opts);
        return CLI_HELP_SHOWN;
    }
    return take(c, o, arg);
}

int cli_parse_options(struct cli *cli, const struct cli_command *c, const struct cli_opt *opts,
                      int argc, char **argv, struct cli_args *args)
{
    const struct cli_opt *const tables[2] = {opts, common};
    int n = 0, rc = 0;
    args->v = argv + 1;
    args->dashdash = -1;
    int i = 1;
    for (; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            args->dashdash = n;
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (c->stop_at_argument)
                break;
            argv[1 + n++] = a; /* n <= i - 1: nothing unread is overwritten */
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            char given[128];
            snprintf(given, sizeof(given), "--%.*s", (int)len, name);
            const struct cli_opt *o = find_long(c, tables, name, len, given, &rc);
            if (!o)
                return rc;
            const char *arg = NULL;
            if (o->arg) {
                if (eq)
                    arg = eq + 1;
                else if (i + 1 < argc)
                    arg = argv[++i];
                else
                    return trouble(c, "option '%s' needs a value", given);
            } else if (eq) {
                return trouble(c, "option '%s' takes no value", given);
            }
            if ((rc = act(cli, c, opts, o, arg)) != 0)
                return rc;
            continue;
        }
        /* -x, -xVALUE, -x VALUE, -xyz (flags) */
        for (const char *p = a + 1; *p; p++) {
            char given[3] = {'-', *p, '\0'};
            const struct cli_opt *o = find_short(tables, *p);
            if (!o)
                return trouble(c, "unknown option '%s'", given);
            const char *arg = NULL;
            if (o->arg) {
                if (p[1])
                    arg = p + 1;
                else if (i + 1 < argc)
                    arg = argv[++i];
                else
                    return trouble(c, "option '%s' needs a value", given);
            }
            if ((rc = act(cli, c, opts, o, arg)) != 0)
                return rc;
            if (arg)
                break;
        }
    }
    for (; i < argc; i++)
        argv[1 + n++] = argv[i];
    argv[1 + n] = NULL; /* args.v ends as argv did (record runs it as a command) */
    args->n = n;
    if (args->dashdash < 0)
        args->dashdash = n;
    if (c->max_args >= 0 && n > c->max_args)
        return cli_unexpected_argument(c, args->v[c->max_args]);
    if (n < c->min_args)
        return cli_fail("%s: %s", c->name, c->missing);
    if (!*cli->db_path)
        return cli_fail("%s: empty database file name", c->name);
    return 0;
}

int cli_category_parse(const char *name)
{
    return region_category_parse(name);
}

int cli_unexpected_argument(const struct cli_command *c, const char *arg)
{
    return trouble(c, "unexpected argument '%s'", arg);
}

/* "  -p, --pid PID" or "      --no-follow" */
static int left_column(const struct cli_opt *o, char *out, size_t size)
{
    if (o->kind == CLI_OPT_TEXT)
        return snprintf(out, size, "  %s", o->arg);
    char names[8] = "    ";
    if (o->short_name)
        snprintf(names, sizeof(names), "-%c, ", o->short_name);
    return snprintf(out, size, "  %s--%s%s%s", names, o->long_name, o->arg ? " " : "",
                    o->arg ? o->arg : "");
}

void cli_print_help(const struct cli_command *c, const struct cli_opt *opts)
{
    char left[128];
    int width = 0;
    for (const struct cli_opt *o = opts; o->kind != CLI_OPT_END; o++) {
        int w = left_column(o, left, sizeof(left));
        width = w > width ? w : width;
    }
    width += 2;
    if (width < 18)
        width = 18;
    fputs(c->synopsis, stdout);
    fputs("\n", stdout);
    for (const struct cli_opt *o = opts; o->kind != CLI_OPT_END; o++) {
        left_column(o, left, sizeof(left));
        const char *h = o->help;
        int first = 1;
        do {
            size_t len = strcspn(h, "\n");
            printf("%-*s%.*s\n", width, first ? left : "", (int)len, h);
            h += len;
            first = 0;
        } while (*h && *++h);
    }
    printf("%-*s%s;  -j, --json  %s\n", width, "  -d, --db FILE", c->db ? c->db : "database",
           c->json ? c->json : "JSON output");
    if (c->epilog) {
        fputs("\n", stdout);
        fputs(c->epilog, stdout);
    }
}
