#include <stdlib.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/json.h"
#include "platform/platform.h"
#include "util/xalloc.h"

static const struct cli_command merge_command = {
    .name = "merge",
    .min_args = 1,
    .missing = "which databases? give one or more vmsnap database files",
    .max_args = -1,
    .synopsis =
        "usage: vmsnap merge OTHER.db...\n\n"
        "Copies the targets and snapshots of other vmsnap databases into this one (-d), keeping\n"
        "who they are (host, boot, pid, start time): a fleet records one file per host and\n"
        "analyses them together here. Merging the same file again adds nothing; a file that\n"
        "went on recording adds what it recorded since. The same process recorded apart into two\n"
        "files becomes two targets. Each OTHER.db is merged whole in one transaction, or not at\n"
        "all; every one is checked before any is merged. Older files are brought to this\n"
        "vmsnap's schema first (as any command does); newer ones are refused.\n",
    .db = "the database merged into (created when missing)",
    .json = "JSON on stdout",
};

struct merged {
    const char *file;
    struct store_merge_result r;
};

static const char *plural(int64_t n)
{
    return n == 1 ? "" : "s";
}

static void print_line(const struct merged *m)
{
    const struct store_merge_result *r = &m->r;
    cli_printf("merged '%s': %lld snapshot%s added; %lld new target%s, %lld extended, %lld already "
               "here",
               m->file, (long long)r->snapshots_added, plural(r->snapshots_added),
               (long long)r->targets_added, plural(r->targets_added),
               (long long)r->targets_extended, (long long)r->targets_present);
    if (r->targets_apart)
        cli_printf(", %lld recorded apart in both databases (kept as another target)",
                   (long long)r->targets_apart);
    putchar('\n');
}

static void print_json(const struct merged *v, size_t n)
{
    struct json j;
    json_init(&j, stdout);
    json_begin_object(&j);
    json_key(&j, "merged");
    json_begin_array(&j);
    for (size_t i = 0; i < n; i++) {
        const struct store_merge_result *r = &v[i].r;
        json_begin_object(&j);
        json_key(&j, "file");
        json_string(&j, v[i].file);
        json_key(&j, "snapshots_added");
        json_int(&j, r->snapshots_added);
        json_key(&j, "targets_added");
        json_int(&j, r->targets_added);
        json_key(&j, "targets_extended");
        json_int(&j, r->targets_extended);
        json_key(&j, "targets_present");
        json_int(&j, r->targets_present);
        json_key(&j, "targets_apart");
        json_int(&j, r->targets_apart);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_end_object(&j);
    json_finish(&j);
}

int cmd_merge(struct cli *cli, int argc, char **argv)
{
    const struct cli_opt opts[] = {CLI_OPT_TABLE_END};
    struct cli_args args;
    int rc = cli_parse_options(cli, &merge_command, opts, argc, argv, &args);
    if (rc)
        return cli_options_exit(rc);
    size_t n = (size_t)args.n;

    /* A missing, foreign or newer file among them is found before anything is merged. */
    struct err e = {0};
    for (size_t i = 0; i < n; i++) {
        struct store *other = NULL;
        rc = store_open(&other, args.v[i], STORE_READ, &e);
        store_close(other);
        if (rc == ERR_NOTFOUND)
            return cli_fail("merge: no database at '%s'", args.v[i]);
        if (rc < 0)
            return cli_fail("merge: %s -- nothing was merged", e.msg);
    }
    struct store *st = NULL;
    if (cli_open_store(cli, STORE_WRITE, &st))
        return EXIT_TROUBLE;
    struct merged *v = xcalloc(n, sizeof(*v));
    int status = EXIT_OK;
    size_t done = 0;
    for (; done < n; done++) {
        v[done].file = args.v[done];
        /* `merge *.db` names the database merged into too: it already holds itself. */
        if (plat_same_file(v[done].file, cli->db_path)) {
            fprintf(stderr, "vmsnap: note: '%s' is the database merged into: nothing to add\n",
                    v[done].file);
            continue;
        }
        if (store_merge(st, v[done].file, &v[done].r, &e) < 0) {
            status = EXIT_TROUBLE;
            break;
        }
        if (!cli->json)
            print_line(&v[done]);
    }
    if (cli->json)
        print_json(v, done);
    if (status != EXIT_OK)
        cli_fail("merge '%s': %s%s", v[done].file, e.msg,
                 done ? " -- the files before it are merged; merging them again adds nothing" : "");
    else if (fflush(stdout) != 0)
        status = cli_fail("merge: cannot write the output");
    free(v);
    store_close(st);
    return status;
}
