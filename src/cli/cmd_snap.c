#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/forms.h"
#include "record/taker.h"
#include "util/xalloc.h"

static const struct cli_command snap_command = {
    .name = "snap",
    .synopsis =
        "usage: vmsnap snap -p PID [--follow] [--label TEXT] [--detail maps|rollup|smaps]\n\n"
        "Takes one snapshot of process PID now and prints its id.\n",
};

/* Attempts at writing one snapshot while other processes hold the database. */
#define SNAP_LOCK_ATTEMPTS 6

/* One snapshot taken. */
struct taken {
    int64_t snap, target, pid, parent_target;
    size_t regions;
    int torn;
};

/* Takes one snapshot of the process open in cap (taken over); the target that forked it is
 * parent_target (0: none). */
static int snap_one(struct cli *cli, struct store *st, struct capture *cap, int64_t parent_target,
                    const char *label, int detail, struct taken *out, struct err *e)
{
    struct taker t;
    int64_t pid = capture_get_target(cap)->pid;
    int rc = taker_open(&t, st, cap, pid, detail, NULL, e);
    if (rc < 0)
        return rc;
    t.parent_target_id = parent_target;
    const struct store_snap_opts so = {label, STORE_LABEL_EXACT, STORE_NO_MARK, 0, 1, 0};
    rc = taker_take(&t, &so, &out->snap, e);
    /* Another writer holds the database: keep the walk and wait for our turn (each attempt
     * waits STORE_BUSY_MS). */
    for (int attempt = 1; rc == ERR_LOCKED && attempt < SNAP_LOCK_ATTEMPTS; attempt++) {
        if (attempt == 1)
            fprintf(stderr, "vmsnap: database '%s' is locked by another process; waiting\n",
                    cli->db_path);
        rc = taker_commit(&t, &so, &out->snap, e);
    }
    if (rc == 0) {
        out->target = t.target_id;
        out->pid = pid;
        out->parent_target = parent_target;
        out->regions = t.list->n;
        out->torn = (t.info.flags & CAPTURE_TORN) != 0;
        if (out->torn)
            fprintf(stderr,
                    "vmsnap: warning: the maps of process %lld kept changing while read; "
                    "overlapping lines were dropped and the snapshot is flagged torn\n",
                    (long long)pid);
    }
    taker_close(&t);
    return rc;
}

/* The processes descended from pid, parents before children: pids and parents' indexes into
 * the taken list (0 is pid itself). */
struct kin {
    int64_t pid;
    size_t parent;
};
static size_t descendants(int64_t pid, struct kin **out, struct err *e)
{
    struct capture_scan *scan = NULL;
    struct capture_seen *v = NULL;
    size_t n = 0, nk = 1, cap = 1;
    *out = xmalloc(sizeof(**out));
    (*out)[0] = (struct kin){pid, 0};
    if (capture_scan_open(&scan, e) < 0 || capture_scan_new(scan, &v, &n, e) < 0) {
        capture_scan_close(scan);
        return 1;
    }
    for (size_t i = 0; i < nk; i++)
        for (size_t k = 0; k < n; k++)
            if (v[k].ppid == (*out)[i].pid && v[k].pid != pid) {
                *out = xgrow(*out, &cap, nk + 1, sizeof(**out));
                (*out)[nk++] = (struct kin){v[k].pid, i};
            }
    free(v);
    capture_scan_close(scan);
    return nk;
}

static void print_taken(struct cli *cli, const struct taken *v, size_t n, int follow)
{
    if (!cli->json) {
        for (size_t i = 0; i < n; i++)
            cli_printf("%lld\n", (long long)v[i].snap);
        return;
    }
    struct json j;
    json_init(&j, stdout);
    if (follow) {
        json_begin_object(&j);
        json_key(&j, "snapshots");
        json_begin_array(&j);
    }
    for (size_t i = 0; i < n; i++) {
        json_begin_object(&j);
        json_key(&j, "snapshot");
        json_int(&j, v[i].snap);
        json_key(&j, "target");
        json_int(&j, v[i].target);
        if (follow) {
            json_key(&j, "pid");
            json_int(&j, v[i].pid);
            json_key(&j, "parent_target_id");
            if (v[i].parent_target)
                json_int(&j, v[i].parent_target);
            else
                json_null(&j);
        }
        json_key(&j, "region_count");
        json_uint(&j, v[i].regions);
        json_key(&j, "torn");
        json_bool(&j, v[i].torn);
        json_end_object(&j);
    }
    if (follow) {
        json_end_array(&j);
        json_end_object(&j);
    }
    json_finish(&j);
}

int cmd_snap(struct cli *cli, int argc, char **argv)
{
    int64_t pid = 0;
    const char *label = NULL;
    int detail = DETAIL_SMAPS, follow = 0;
    const struct cli_opt opts[] = {
        {CLI_OPTION('p', "pid", CLI_OPT_PID, &pid, "PID", "the process")},
        {CLI_OPTION('f', "follow", CLI_OPT_FLAG, &follow, NULL,
                    "and of every process it forked (each a target naming its\n"
                    "parent): one id per line, PID's first")},
        {CLI_OPTION('l', "label", CLI_OPT_LABEL, &label, "TEXT",
                    "label the snapshot (select it later by this name)")},
        {CLI_OPTION('D', "detail", CLI_OPT_CHOICE, &detail, "LEVEL",
                    "maps: layout only (cheapest)\n"
                    "rollup: layout + process totals from smaps_rollup\n"
                    "smaps: layout + per-region rss/pss/swap (default); reading smaps\n"
                    "holds the target's mmap lock and can slow a target that maps and\n"
                    "unmaps heavily (about 4 us per region: 0.25 s at 60,000)"),
         .expected = "maps, rollup or smaps", .choose = capture_detail_parse},
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    int rc = cli_parse_options(cli, &snap_command, opts, argc, argv, &args);
    if (rc)
        return cli_options_exit(rc);
    if (!pid)
        return cli_fail("snap: which process? give -p PID");

    struct err e = {0};
    struct store *st = NULL;
    int status = EXIT_TROUBLE;
    /* Open the process first, so a typo'd pid does not create an empty database. */
    struct capture *cap = NULL;
    if (capture_open(&cap, pid, &e) < 0)
        return cli_fail_err(&e);
    struct kin *kin = NULL;
    size_t nkin = follow ? descendants(pid, &kin, &e) : 1;
    struct taken *v = xcalloc(nkin ? nkin : 1, sizeof(*v));
    size_t n = 0;
    if (cli_open_store(cli, STORE_WRITE, &st)) {
        capture_close(cap);
        goto out;
    }
    if (snap_one(cli, st, cap, 0, label, detail, &v[n++], &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }
    for (size_t i = 1; i < nkin; i++) {
        /* A descendant that exited since the scan, or whose parent was not taken, is left. */
        if (!v[kin[i].parent].snap || capture_open(&cap, kin[i].pid, &e) < 0)
            continue;
        if (snap_one(cli, st, cap, v[kin[i].parent].target, label, detail, &v[i], &e) < 0 &&
            e.code != ERR_EXITED && e.code != ERR_NOPROC && e.code != ERR_ZOMBIE) {
            print_taken(cli, v, i, follow);
            cli_fail_err(&e);
            goto out;
        }
        n = i + 1;
    }
    /* Those that exited in between have no snapshot: keep only the taken. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].snap)
            v[kept++] = v[i];
    print_taken(cli, v, kept, follow);
    status = fflush(stdout) == 0 ? EXIT_OK : cli_fail("snap: cannot write the output");
out:
    free(v);
    free(kin);
    store_close(st);
    return status;
}
