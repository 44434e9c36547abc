#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "import/import.h"
#include "json/json.h"
#include "platform/platform.h"
#include "util/xalloc.h"

static const struct cli_command import_command = {
    .name = "import",
    .min_args = 1,
    .missing = "which file? give one or more saved maps or smaps files",
    .max_args = -1,
    .synopsis =
        "usage: vmsnap import FILE... [--format maps|smaps|pmap|core] [--label TEXT]\n"
        "                    [--taken-at TIME] [--target-name NAME]\n\n"
        "Turns saved memory maps into snapshots, one per FILE, as if recorded: /proc/PID/maps or\n"
        "/proc/PID/smaps text kept from a process (a bug report's attachment, a ticket), or what\n"
        "'pmap -XX -p PID' printed (-X has no Private_Dirty: it reads 0), or an ELF core file\n"
        "(x86-64, aarch64: its segments, named by its NT_FILE note). They list, show, diff\n"
        "(against recorded snapshots too) and query like any other. Prints each new snapshot's\n"
        "id. The format is read from the content; every FILE is read before anything is written,\n"
        "and a file that is not a memory map, or is damaged, writes nothing.\n",
    .json = "JSON on stdout",
};

/* An ISO 8601 UTC time, as milliseconds since the epoch. */
static int parse_time(const char *arg, void *ms)
{
    return import_parse_time(arg, ms);
}

/* A target's name: any text but none. */
static int parse_name(const char *arg, void *name)
{
    if (!*arg) {
        cli_fail("import: the target name is empty");
        return 1;
    }
    *(const char **)name = arg;
    return 0;
}

struct imported {
    const char *file;
    struct import_map map;
    int64_t snap, target;
};

static void print_imported(const struct cli *cli, const struct imported *v, size_t n)
{
    if (!cli->json) {
        for (size_t i = 0; i < n; i++)
            cli_printf("%lld\n", (long long)v[i].snap);
        return;
    }
    struct json j;
    json_init(&j, stdout);
    json_begin_object(&j);
    json_key(&j, "snapshots");
    json_begin_array(&j);
    for (size_t i = 0; i < n; i++) {
        json_begin_object(&j);
        json_key(&j, "snapshot");
        json_int(&j, v[i].snap);
        json_key(&j, "target");
        json_int(&j, v[i].target);
        json_key(&j, "file");
        json_string(&j, v[i].file);
        json_key(&j, "format");
        json_string(&j, import_format_name(v[i].map.format));
        json_key(&j, "region_count");
        json_uint(&j, v[i].map.regions.n);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_end_object(&j);
    json_finish(&j);
}

/* Writes one imported map as a snapshot of its target. */
static int write_one(struct store *st, struct imported *x, const char *name, const char *label,
                     int label_mode, int64_t taken_at_ms, struct err *e)
{
    struct capture_target t;
    import_target(&x->map, name, plat_basename(x->file), &t);
    struct store_writer *w = NULL;
    int rc = store_writer_open(st, &t, &w, e);
    if (rc == 0) {
        struct capture_info info = {0};
        static const char *const methods[] = {[IMPORT_MAPS] = "import-maps",
                                              [IMPORT_SMAPS] = "import-smaps",
                                              [IMPORT_PMAP] = "import-pmap",
                                              [IMPORT_CORE] = "import-core"};
        info.detail = x->map.detail;
        info.method = x->map.by_gdb ? "import-gcore" : methods[x->map.format];
        info.taken_at_ms = taken_at_ms;
        if (info.detail == DETAIL_SMAPS) {
            region_list_mem_totals(&x->map.regions, &info.totals);
            info.have_totals = 1;
        }
        const struct store_snap_opts o = {label, label_mode, STORE_NO_MARK, 0, 1, 0};
        rc = store_writer_write(w, &x->map.regions, &info, &o, 0, &x->snap, e);
        x->target = store_writer_target(w);
    }
    store_writer_close(w);
    import_target_release(&t);
    return rc;
}

int cmd_import(struct cli *cli, int argc, char **argv)
{
    int format = IMPORT_AUTO, taken_at = 0;
    const char *label = NULL, *name = NULL;
    int64_t taken_at_ms = 0;
    const struct cli_opt opts[] = {
        {CLI_OPTION('F', "format", CLI_OPT_CHOICE, &format, "F",
                    "read FILE as maps, smaps, pmap or core instead of detecting it"),
         .expected = "maps, smaps, pmap or core", .choose = import_format_parse},
        {CLI_OPTION('l', "label", CLI_OPT_LABEL, &label, "TEXT",
                    "label the snapshot (with several files: TEXT, TEXT-2, ...)")},
        {CLI_OPTION('T', "taken-at", CLI_OPT_CALL, &taken_at_ms, "TIME",
                    "when the map was saved, ISO 8601 UTC (2026-11-23T07:00:00Z);\n"
                    "default: the file's modification time. One FILE only."),
         .what = "time", .expected = "ISO 8601 UTC such as 2026-11-23T07:00:00Z",
         .call = parse_time, .given = &taken_at},
        {CLI_OPTION('N', "target-name", CLI_OPT_CALL, &name, "N",
                    "the target the snapshots belong to; default: the pid and\n"
                    "command pmap or the core names, else the file's name.\n"
                    "Files imported under one name are one target, in the order given."),
         .call = parse_name},
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    int rc = cli_parse_options(cli, &import_command, opts, argc, argv, &args);
    if (rc)
        return cli_options_exit(rc);
    size_t n = (size_t)args.n;
    if (taken_at && n > 1)
        return cli_fail("import: --taken-at names one moment: give one FILE with it");

    /* Every file is read before anything is written: a bad one among them writes nothing. */
    struct imported *v = xcalloc(n, sizeof(*v));
    struct err e = {0};
    int status = EXIT_TROUBLE;
    struct store *st = NULL;
    for (size_t i = 0; i < n; i++) {
        v[i].file = args.v[i];
        if (import_read(v[i].file, format, &v[i].map, &e) < 0) {
            cli_fail_err(&e);
            goto out;
        }
    }
    if (cli_open_store(cli, STORE_WRITE, &st))
        goto out;
    /* One transaction for all the files: killed or failing midway, the import adds nothing, and
     * running it again adds each file once. */
    if (store_begin(st, &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t at = taken_at ? taken_at_ms : v[i].map.taken_at_ms;
        if (write_one(st, &v[i], name, label, n > 1 ? STORE_LABEL_UNIQUE : STORE_LABEL_EXACT, at,
                      &e) < 0) {
            store_rollback(st);
            if (n > 1)
                err_wrap(&e, "nothing was imported: '%s'", v[i].file);
            cli_fail_err(&e);
            goto out;
        }
    }
    if (store_commit(st, &e) < 0) {
        err_wrap(&e, "nothing was imported");
        cli_fail_err(&e);
        goto out;
    }
    print_imported(cli, v, n);
    for (size_t i = 0; i < n; i++)
        if (v[i].map.no_private_dirty)
            fprintf(stderr,
                    "vmsnap: note: '%s' is pmap -X output, which has no Private_Dirty column: "
                    "snapshot %lld has 0 there (pmap -XX has it)\n",
                    v[i].file, (long long)v[i].snap);
    for (size_t i = 0; i < n; i++)
        if (v[i].map.left_out)
            fprintf(stderr,
                    "vmsnap: note: '%s' was written by gdb's gcore, which leaves out what it does "
                    "not dump: %zu file mappings its notes name are not in snapshot %lld\n",
                    v[i].file, v[i].map.left_out, (long long)v[i].snap);
    status = fflush(stdout) == 0 ? EXIT_OK : cli_fail("import: cannot write the output");
out:
    for (size_t i = 0; i < n; i++)
        import_map_release(&v[i].map);
    free(v);
    store_close(st);
    return status;
}
