#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "json/forms.h"
#include "cli/taker.h"

static const char usage[] =
    "usage: vmsnap snap -p PID [--label TEXT] [--detail maps|rollup|smaps]\n\n"
    "Takes one snapshot of process PID now and prints its id.\n\n"
    "  -p, --pid PID       the process\n"
    "  -l, --label TEXT    label the snapshot (select it later by this name)\n"
    "  -D, --detail LEVEL  maps: layout only (cheapest)\n"
    "                      rollup: layout + process totals from smaps_rollup\n"
    "                      smaps: layout + per-region rss/pss/swap (default); reading smaps\n"
    "                      holds the target's mmap lock and can slow a target that maps and\n"
    "                      unmaps heavily\n"
    "  -d, --db FILE       database;  -j, --json  JSON output\n";

/* Attempts at writing one snapshot while other processes hold the database. */
#define SNAP_LOCK_ATTEMPTS 6

int cmd_snap(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pid", required_argument, NULL, 'p'},
        {"label", required_argument, NULL, 'l'},
        {"detail", required_argument, NULL, 'D'},
        {"db", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t pid = 0;
    const char *label = NULL;
    int detail = DETAIL_SMAPS, opt;
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":p:l:D:d:jh", opts, NULL)) != -1) {
        if (cli_common_opt(cli, opt, optarg))
            continue;
        switch (opt) {
        case 'p':
            if (cli_parse_pid(optarg, &pid) < 0)
                return cli_fail("snap: invalid pid '%s': expected a positive whole number", optarg);
            break;
        case 'l':
            label = optarg;
            break;
        case 'D':
            detail = capture_detail_parse(optarg);
            if (detail < 0)
                return cli_fail("snap: invalid detail '%s': expected maps, rollup or smaps",
                                optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_fail("snap: option '%s' needs a value -- see 'vmsnap snap --help'",
                            argv[optind - 1]);
        default:
            return cli_fail("snap: unknown option '%s' -- see 'vmsnap snap --help'",
                            argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_fail("snap: unexpected argument '%s' -- see 'vmsnap snap --help'", argv[optind]);
    if (!pid)
        return cli_fail("snap: which process? give -p PID");
    if (label && (!*label || taker_label_is_selector(label)))
        return cli_fail("snap: label '%s' would read as a snapshot id or selector: choose "
                        "another",
                        label);

    struct err e = {0};
    struct store *st = NULL;
    struct taker t;
    int64_t snap = 0;
    int status = EXIT_TROUBLE;
    /* Open the process first, so a typo'd pid does not create an empty database. */
    struct capture *cap = NULL;
    if (capture_open(&cap, "/proc", pid, &e) < 0)
        return cli_fail_err(&e);
    if (cli_open_store(cli, STORE_WRITE, &st)) {
        capture_close(cap);
        return EXIT_TROUBLE;
    }
    if (taker_open(&t, st, cap, pid, detail, &e) < 0) {
        cli_fail_err(&e);
        goto out_store;
    }
    const struct store_snap_opts so = {label, STORE_LABEL_EXACT, STORE_NO_MARK, 0};
    int rc = taker_take(&t, &so, &snap, &e);
    /* Another writer holds the database: keep the walk and wait for our turn (each attempt
     * waits STORE_BUSY_MS). */
    for (int attempt = 1; rc == ERR_LOCKED && attempt < SNAP_LOCK_ATTEMPTS; attempt++) {
        if (attempt == 1)
            fprintf(stderr, "vmsnap: database '%s' is locked by another process; waiting\n",
                    cli->db_path);
        rc = taker_commit(&t, &so, &snap, &e);
    }
    if (rc < 0) {
        cli_fail_err(&e);
        goto out;
    }
    const struct region_list *list = t.list;
    const struct capture_info info = t.info;
    if (cli->json) {
        struct json j;
        json_init(&j, stdout, 0);
        json_begin_object(&j);
        json_key(&j, "snapshot");
        json_int(&j, snap);
        json_key(&j, "target");
        json_int(&j, t.target_id);
        json_key(&j, "region_count");
        json_uint(&j, list->n);
        json_key(&j, "torn");
        json_bool(&j, (info.flags & CAPTURE_TORN) != 0);
        json_end_object(&j);
        json_finish(&j);
    } else {
        printf("%lld\n", (long long)snap);
    }
    if (info.flags & CAPTURE_TORN)
        fprintf(stderr,
                "vmsnap: warning: the maps of process %lld kept changing while read; "
                "overlapping lines were dropped and the snapshot is flagged torn\n",
                (long long)pid);
    status = fflush(stdout) == 0 ? EXIT_OK : cli_fail("snap: cannot write the output");
out:
    taker_close(&t);
out_store:
    store_close(st);
    return status;
}
