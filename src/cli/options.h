/*
 * One option parser for every command (as git's parse-options): a command declares its options
 * in a table, cli_parse_options parses any table with the common ones (-d, -j, -h) added, and
 * --help is made from the same table, so usage text and parsing cannot drift apart. Every
 * mistake a user can make has one wording across commands.
 */
#ifndef VMSNAP_CLI_OPTIONS_H
#define VMSNAP_CLI_OPTIONS_H

#include <stdint.h>

struct cli;

enum cli_opt_kind {
    CLI_OPT_END,      /* ends a table */
    CLI_OPT_FLAG,     /* int *: set to 1 */
    CLI_OPT_STRING,   /* const char **: the argument as given */
    CLI_OPT_COUNT,    /* int64_t *: a whole number, at least .min */
    CLI_OPT_SIZE,     /* uint64_t *: bytes, units K, M, G */
    CLI_OPT_DURATION, /* int64_t *: milliseconds, units ms, s, m, h; at least .min */
    CLI_OPT_PID,      /* int64_t *: a positive whole number */
    CLI_OPT_TARGET,   /* int64_t *: a target id (a positive whole number) */
    CLI_OPT_LABEL,    /* const char **: a snapshot label, as the one label rule allows */
    CLI_OPT_CHOICE,   /* int *: .choose(argument), which is negative for a word it does not know */
    CLI_OPT_CALL,     /* .call(argument, value): 0; -1 for an invalid value; 1 when it said why */
    CLI_OPT_TEXT,     /* not an option: a line of --help, .arg its left column ("-- COMMAND") */
};

struct cli_opt {
    char short_name; /* 0: a long name only */
    const char *long_name;
    enum cli_opt_kind kind;
    void *value;
    const char *arg;  /* the argument in --help ("PID", "BYTES"); NULL for a flag */
    const char *help; /* its lines in --help, '\n' between them */
    /* An invalid value is "invalid WHAT 'V': expected EXPECTED"; both have defaults by kind
     * (WHAT: the long name). */
    const char *what, *expected;
    int64_t min;                               /* COUNT and DURATION */
    int (*choose)(const char *arg);            /* CHOICE */
    int (*call)(const char *arg, void *value); /* CALL */
    int *given; /* when not NULL, set to 1 when the option is given */
};

/* A row's first fields: {CLI_OPTION('p', "pid", CLI_OPT_PID, &pid, "PID", "the process")}, and
 * the others by name after it (.expected = ..., .min = 1). */
#define CLI_OPTION(s, l, k, dest, argname, helptext)                                               \
    .short_name = (s), .long_name = (l), .kind = (k), .value = (dest), .arg = (argname),           \
    .help = (helptext)
#define CLI_OPT_TABLE_END                                                                          \
    {                                                                                              \
        .kind = CLI_OPT_END                                                                        \
    }

/* --target ID, as every command that takes one spells it. */
#define CLI_OPT_TARGET_ROW(dest, helptext)                                                         \
    {                                                                                              \
        CLI_OPTION('T', "target", CLI_OPT_TARGET, dest, "ID", helptext)                            \
    }

/* --category C, as every command that takes one spells it. */
int cli_category_parse(const char *name);
#define CLI_OPT_CATEGORY_ROW(dest, helptext)                                                       \
    {                                                                                              \
        CLI_OPTION('c', "category", CLI_OPT_CHOICE, dest, "C", helptext),                          \
            .expected = "heap, stack, image, file, anon, shm, guard, reserve or kernel",           \
            .choose = cli_category_parse                                                           \
    }

struct cli_command {
    const char *name;     /* "snap" */
    const char *synopsis; /* "usage: ..." and what the command does, before the options */
    const char *epilog;   /* after the options; may be NULL */
    const char *db;       /* what -d names, in --help (NULL: "database") */
    const char *json;     /* what -j gives, in --help (NULL: "JSON output") */
    int stop_at_argument; /* options end at the first argument (record's COMMAND) */
    int max_args;         /* arguments it takes at most (beyond: "unexpected argument"); -1: any */
    int min_args;         /* and at least, or it says: */
    const char *missing;  /* "which snapshot? give ..." */
};

/* The arguments that are not options, in order: argv's own strings. */
struct cli_args {
    char **v;
    int n;
    int dashdash; /* how many of v came before "--" (n when there was none) */
};

/* What cli_parse_options returns when it printed --help: the command ends with EXIT_OK. */
#define CLI_HELP_SHOWN (-1)

/*
 * Parses argv[1..argc) (argv[0] is the command's name) against opts and -d/--db, -j/--json and
 * -h/--help, into their destinations and cli; the other arguments into args (argv is reordered
 * in place, args->v[n] is NULL). Long options may be abbreviated while unambiguous, and take
 * "--name=VALUE" or
 * "--name VALUE"; short flags bundle ("-sj"). Returns 0, CLI_HELP_SHOWN, or EXIT_TROUBLE after
 * printing one line.
 */
int cli_parse_options(struct cli *cli, const struct cli_command *c, const struct cli_opt *opts,
                      int argc, char **argv, struct cli_args *args);

/* The exit status for what cli_parse_options returned (not 0). */
static inline int cli_options_exit(int rc)
{
    return rc == CLI_HELP_SHOWN ? 0 : rc;
}

/* Prints the command's --help (synopsis, options, epilog) to stdout. */
void cli_print_help(const struct cli_command *c, const struct cli_opt *opts);

/* "CMD: unexpected argument 'X' -- see 'vmsnap CMD --help'": EXIT_TROUBLE. */
int cli_unexpected_argument(const struct cli_command *c, const char *arg);

#endif
