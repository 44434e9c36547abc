#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/json.h"
#include "platform/platform.h"
#include "report/report.h"
#include "util/xalloc.h"

static const struct cli_command report_command = {
    .name = "report",
    .synopsis =
        "usage: vmsnap report [-o FILE] [--target ID] [--from SNAP] [--to SNAP]\n\n"
        "Writes one self-contained HTML file (nothing is fetched when it is opened): the target,\n"
        "a timeline of committed and rss bytes per category with labels and marks, the growth\n"
        "tables of 'vmsnap growth', the diff between --from and --to as a sortable, filterable\n"
        "table, and an address-space strip of the --to snapshot coloured by category. The data it\n"
        "draws is embedded as JSON in <script type=\"application/json\" id=\"vmsnap-data\">.\n",
    .json = "say what was written as JSON on stdout",
};

struct report_args {
    const char *output;
    struct report_opts o;
};

/* A file name, not an empty one. */
static int parse_output(const char *arg, void *out)
{
    if (!*arg) {
        cli_fail("report: empty output file name");
        return 1;
    }
    *(const char **)out = arg;
    return 0;
}

static int parse_args(struct cli *cli, int argc, char **argv, struct report_args *a)
{
    const struct cli_opt opts[] = {
        {CLI_OPTION('o', "output", CLI_OPT_CALL, &a->output, "FILE",
                    "where to write it (default vmsnap-report.html; '-': stdout);\n"
                    "created for its owner only, like the database: it holds an\n"
                    "address map"),
         .call = parse_output},
        CLI_OPT_TARGET_ROW(&a->o.target, "the target (default: that of the newest snapshot)"),
        {CLI_OPTION('F', "from", CLI_OPT_STRING, &a->o.from, "SNAP",
                    "first snapshot of the range (default: the target's first)")},
        {CLI_OPTION('t', "to", CLI_OPT_STRING, &a->o.to, "SNAP",
                    "last snapshot of the range (default: the target's last)")},
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    return cli_parse_options(cli, &report_command, opts, argc, argv, &args);
}

static void say(const struct cli *cli, const char *path, const struct report_info *ri,
                int64_t bytes)
{
    char size[16];
    fprintf(stderr,
            "vmsnap: report of target %lld, snapshots %lld to %lld (%zu), %zu change%s, written "
            "to '%s' (%s)\n",
            (long long)ri->target, (long long)ri->from, (long long)ri->to, ri->snapshots,
            ri->changes, ri->changes == 1 ? "" : "s", path,
            bytes >= 0 ? cli_human((uint64_t)bytes, size) : "?");
    if (!cli->json)
        return;
    struct json j;
    json_init(&j, stdout);
    json_begin_object(&j);
    json_key(&j, "file");
    json_string(&j, path);
    json_key(&j, "bytes");
    json_int(&j, bytes);
    json_key(&j, "target");
    json_int(&j, ri->target);
    json_key(&j, "from");
    json_int(&j, ri->from);
    json_key(&j, "to");
    json_int(&j, ri->to);
    json_key(&j, "snapshots");
    json_uint(&j, ri->snapshots);
    json_key(&j, "changes");
    json_uint(&j, ri->changes);
    json_key(&j, "changes_shown");
    json_uint(&j, ri->changes_shown);
    json_end_object(&j);
    json_finish(&j);
}

int cmd_report(struct cli *cli, int argc, char **argv)
{
    struct report_args a = {"vmsnap-report.html", {0, NULL, NULL}};
    int rc = parse_args(cli, argc, argv, &a);
    if (rc)
        return cli_options_exit(rc);
    int to_stdout = strcmp(a.output, "-") == 0;
    if (to_stdout && cli->json)
        return cli_fail("report: -j describes the file written: it cannot go with '-o -'");
    struct plat_file pf;
    if (!to_stdout && plat_file_stat(a.output, &pf) == 0 && pf.kind != PLAT_FILE_MISSING &&
        pf.kind != PLAT_FILE_REGULAR)
        return cli_fail("report: cannot write '%s': it is %s -- name a file with -o", a.output,
                        pf.kind == PLAT_FILE_DIR ? "a directory" : "not a regular file");
    if (!to_stdout && (rc = store_names_its_file(cli->db_path, a.output)) != 0)
        return cli_fail("report: '%s' is %s -- name another file with -o", a.output,
                        rc == 1 ? "the database" : "one of the database's own files");

    struct store *st = NULL;
    if (cli_open_store(cli, STORE_READ, &st))
        return EXIT_TROUBLE;
    int status = EXIT_TROUBLE;
    struct plat_output *po = NULL;
    FILE *out = stdout;
    if (!to_stdout && (rc = plat_output_open(a.output, &po, &out)) < 0) {
        cli_fail("report: cannot write '%s': %s", a.output, strerror(-rc));
        goto out;
    }
    struct err e = {0};
    struct report_info ri;
    rc = report_write(st, &a.o, out, &ri, &e);
    if (to_stdout) {
        if (rc == 0 && fflush(stdout) != 0)
            rc = err_set(&e, ERR_IO, "cannot write the report to stdout: %s", strerror(errno));
    } else if (rc < 0) {
        plat_output_discard(po, out);
    } else if ((rc = plat_output_commit(po, out)) < 0) {
        rc = err_set(&e, ERR_IO, "report: cannot write '%s': %s%s", a.output, strerror(-rc),
                     rc == -ENOSPC ? " -- free some space; the file is as it was" : "");
    }
    if (rc < 0) {
        if (e.code == ERR_USAGE)
            err_wrap(&e, "report");
        cli_fail_err(&e);
        goto out;
    }
    if (!to_stdout) {
        plat_file_stat(a.output, &pf);
        say(cli, a.output, &ri, pf.size);
    }
    status = EXIT_OK;
out:
    store_close(st);
    return status;
}
