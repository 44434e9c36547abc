/* vmsnap's entry point: global options, then a table of subcommands (git's builtin/ style). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "store/store.h"

struct subcommand {
    const char *name;
    int (*fn)(struct cli *cli, int argc, char **argv);
    const char *summary;
};

static const struct subcommand commands[] = {
    {"snap", cmd_snap, "take one snapshot of a process now; prints its id"},
    {"record", cmd_record, "record a process (or a command) at an interval"},
    {"list", cmd_list, "list targets and their snapshots"},
    {"show", cmd_show, "show the regions of one snapshot"},
    {"diff", cmd_diff, "what changed between two snapshots (exit 0 same, 1 changed)"},
    {"growth", cmd_growth, "what keeps growing over a recording, how fast, since when"},
    {"mark", cmd_mark, "make every running recorder take a labelled snapshot now"},
    {"report", cmd_report, "write a self-contained HTML report of a recording"},
    {"query", cmd_query, "run read-only SQL on the database"},
    {"import", cmd_import, "turn saved maps, smaps, pmap -X text or core files into snapshots"},
    {"merge", cmd_merge, "copy other databases' targets and snapshots into this one"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vmsnap [-d|--db FILE] [-j|--json] COMMAND [ARGS]\n\n"
               "Records how a process's virtual address space changes over time.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\noptions:\n"
               "  -d, --db FILE   database (default: $VMSNAP_DB, or ./vmsnap.db)\n"
               "  -j, --json      JSON output\n"
               "  -h, --help      this help; 'vmsnap COMMAND --help' for a command's\n"
               "  -V, --version   print the version\n\n"
               "Snapshots are selected by id, 'first', 'last', 'last~N', or label.\n");
}

/* A migration that takes long is said, once, so the wait is not taken for a hang. */
static void slow_migration(const char *path, int from, int to)
{
    fputs("vmsnap: migrating '", stderr);
    cli_print_escaped(stderr, path, strlen(path));
    fprintf(stderr,
            "' from schema %d to %d, once: building its indexes takes a while for a long "
            "recording (about 30 s for a day at 1 s)\n",
            from, to);
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    store_on_slow_migration(slow_migration, 1000000);
    const char *env = getenv("VMSNAP_DB");
    cli.db_path = env && *env ? env : "vmsnap.db";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0) {
            cli.json = 1;
        } else if (strcmp(a, "-d") == 0 || strcmp(a, "--db") == 0) {
            if (i + 1 >= argc)
                return cli_fail("option '%s' needs a database file name", a);
            cli.db_path = argv[++i];
        } else if (strncmp(a, "--db=", 5) == 0) {
            cli.db_path = a + 5;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            cli_printf("vmsnap %s (schema %d)\n", VMSNAP_VERSION, store_schema_version());
            return EXIT_OK;
        } else {
            return cli_fail("unknown option '%s' -- see 'vmsnap --help'", a);
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_TROUBLE;
    }
    if (!*cli.db_path)
        return cli_fail("empty database file name");
    for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            return commands[k].fn(&cli, argc - i, argv + i);
    if (strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    return cli_fail("unknown command '%s' -- see 'vmsnap --help'", argv[i]);
}
