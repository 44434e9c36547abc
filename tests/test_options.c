/*
 * The one option parser: every kind of value, every way of giving an option, and every mistake,
 * on a table like a command's (the commands' own tables are driven through the CLI in test_cli).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "testutil.h"

struct parsed {
    int flag, summary, detail, category, given;
    int64_t count, ms, pid, target;
    uint64_t size;
    const char *text, *label;
};

static const struct cli_command command = {
    .name = "try", .synopsis = "usage: vmsnap try\n", .max_args = -1};
static const struct cli_command stopping = {
    .name = "try", .synopsis = "usage: vmsnap try\n", .stop_at_argument = 1, .max_args = -1};
static const struct cli_command two = {
    .name = "try", .synopsis = "usage: vmsnap try\n", .max_args = 2};
static const struct cli_command none = {.name = "try", .synopsis = "usage: vmsnap try\n"};

static int choose(const char *s)
{
    return strcmp(s, "one") == 0 ? 1 : strcmp(s, "two") == 0 ? 2 : -1;
}

/* Parses the words of line (space-separated) as `vmsnap try LINE`; returns what the parser did. */
static int parse(const struct cli_command *c, const char *line, struct parsed *p,
                 struct cli_args *args, struct cli *cli, char *buf, char **argv)
{
    memset(p, 0, sizeof(*p));
    p->detail = p->category = -1;
    cli->db_path = "default.db";
    cli->json = 0;
    snprintf(buf, 512, "%s", line);
    int argc = 0;
    argv[argc++] = "try";
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "))
        argv[argc++] = w;
    argv[argc] = NULL;
    const struct cli_opt opts[] = {
        {CLI_OPTION('f', "flag", CLI_OPT_FLAG, &p->flag, NULL, "a flag")},
        {CLI_OPTION('s', "summary", CLI_OPT_FLAG, &p->summary, NULL, "another")},
        {CLI_OPTION('n', "count", CLI_OPT_COUNT, &p->count, "N", "a count"), .min = 1},
        {CLI_OPTION('m', "min-size", CLI_OPT_SIZE, &p->size, "BYTES", "a size"),
         .given = &p->given},
        {CLI_OPTION('i', "interval", CLI_OPT_DURATION, &p->ms, "T", "a duration")},
        {CLI_OPTION('p', "pid", CLI_OPT_PID, &p->pid, "PID", "a pid")},
        {CLI_OPTION('x', "text", CLI_OPT_STRING, &p->text, "TEXT", "text")},
        {CLI_OPTION('l', "label", CLI_OPT_LABEL, &p->label, "TEXT", "a label")},
        {CLI_OPTION('D', "detail", CLI_OPT_CHOICE, &p->detail, "LEVEL", "a word"), .choose = choose,
         .expected = "one or two"},
        CLI_OPT_CATEGORY_ROW(&p->category, "a category"),
        CLI_OPT_TARGET_ROW(&p->target, "a target"),
        {CLI_OPTION(0, "summit", CLI_OPT_FLAG, &p->flag, NULL, "shares 'sum' with --summary")},
        CLI_OPT_TABLE_END,
    };
    return cli_parse_options(cli, c, opts, argc, argv, args);
}

#define PARSE(line) parse(&command, line, &p, &args, &cli, buf, argv)

static void test_every_way_of_giving_an_option(void **state)
{
    (void)state;
    struct parsed p;
    struct cli_args args;
    struct cli cli;
    char buf[512], *argv[64];
    assert_int_equal(PARSE("--count 3 --min-size=64K -i 1.5s -p12 -x hello --detail=two"), 0);
    assert_int_equal(p.count, 3);
    assert_int_equal(p.size, 65536);
    assert_int_equal(p.given, 1);
    assert_int_equal(p.ms, 1500);
    assert_int_equal(p.pid, 12);
    assert_string_equal(p.text, "hello");
    assert_int_equal(p.detail, 2);
    assert_int_equal(args.n, 0);
    /* Bundled flags, a short option's value in the next word, an unambiguous prefix. */
    assert_int_equal(PARSE("-fj -n 4 --inter 2m --cat heap -T 7"), 0);
    assert_true(p.flag && cli.json);
    assert_int_equal(p.count, 4);
    assert_int_equal(p.ms, 120000);
    assert_int_equal(p.category, region_category_parse("heap"));
    assert_int_equal(p.target, 7);
    /* The common options. */
    assert_int_equal(PARSE("-d other.db"), 0);
    assert_string_equal(cli.db_path, "other.db");
    assert_int_equal(PARSE("--db=x.db --json"), 0);
    assert_string_equal(cli.db_path, "x.db");
    assert_true(cli.json);
    assert_int_equal(PARSE("--help"), CLI_HELP_SHOWN);
    assert_int_equal(PARSE("-h"), CLI_HELP_SHOWN);
    assert_int_equal(cli_options_exit(CLI_HELP_SHOWN), EXIT_OK);
}

static void test_arguments_around_options(void **state)
{
    (void)state;
    struct parsed p;
    struct cli_args args;
    struct cli cli;
    char buf[512], *argv[64];
    /* Arguments may come before, between and after options, in their order; "-" is one. */
    assert_int_equal(PARSE("first -f last - --count 2"), 0);
    assert_int_equal(args.n, 3);
    assert_string_equal(args.v[0], "first");
    assert_string_equal(args.v[1], "last");
    assert_string_equal(args.v[2], "-");
    assert_null(args.v[3]);
    assert_int_equal(args.dashdash, 3);
    assert_true(p.flag);
    /* After "--" nothing is an option. */
    assert_int_equal(PARSE("a -- -f --count"), 0);
    assert_int_equal(args.n, 3);
    assert_int_equal(args.dashdash, 1);
    assert_string_equal(args.v[1], "-f");
    assert_false(p.flag);
    /* A command that runs a command: options end at the first argument. */
    assert_int_equal(parse(&stopping, "-f -- sh -c x", &p, &args, &cli, buf, argv), 0);
    assert_int_equal(args.n, 3);
    assert_int_equal(args.dashdash, 0);
    assert_string_equal(args.v[0], "sh");
    assert_string_equal(args.v[1], "-c");
    assert_null(args.v[3]);
    assert_int_equal(parse(&stopping, "sh -f", &p, &args, &cli, buf, argv), 0);
    assert_int_equal(args.n, 2);
    assert_int_equal(args.dashdash, 2); /* no "--": the caller says where it belongs */
    assert_false(p.flag);
    /* As many as the command takes. */
    assert_int_equal(parse(&two, "a -f b", &p, &args, &cli, buf, argv), 0);
    assert_int_equal(parse(&two, "a b c", &p, &args, &cli, buf, argv), EXIT_TROUBLE);
    assert_int_equal(parse(&none, "-f", &p, &args, &cli, buf, argv), 0);
    assert_int_equal(parse(&none, "-f a", &p, &args, &cli, buf, argv), EXIT_TROUBLE);
}

static void test_every_mistake_is_refused(void **state)
{
    (void)state;
    struct parsed p;
    struct cli_args args;
    struct cli cli;
    char buf[512], *argv[64];
    const char *bad[] = {
        "--bogus",    /* unknown */
        "-q",         /* unknown short */
        "--sum",      /* ambiguous: --summary, --summit */
        "--count",    /* no value */
        "-n",         /* no value */
        "--flag=yes", /* a flag takes none */
        "--count 0",  /* below its least */
        "--count -3", /* not a whole number */
        "--min-size lots",
        "-i 5x",
        "--pid 0",
        "--pid abc",
        "--target 0",
        "--detail three",
        "--category heapish",
        "--label 5", /* the one label rule: would read as a selector */
        "--label last~1",
        "--label first",
        "-d",    /* no file */
        "--db=", /* an empty name */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (PARSE(bad[i]) != EXIT_TROUBLE)
            fail_msg("'%s' was not refused", bad[i]);
    /* The exact ones. */
    assert_int_equal(PARSE("--summa"), 0);
    assert_true(p.summary);
    assert_int_equal(PARSE("--label release-1"), 0);
    assert_string_equal(p.label, "release-1");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_way_of_giving_an_option),
        cmocka_unit_test(test_arguments_around_options),
        cmocka_unit_test(test_every_mistake_is_refused),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
