#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/forms.h"
#include "record/taker.h"
#include "platform/platform.h"

static const struct cli_command mark_command = {
    .name = "mark",
    .max_args = -1,
    .synopsis =
        "usage: vmsnap mark [--label TEXT]\n\n"
        "Makes every 'vmsnap record' running on this database take a snapshot now, labelled TEXT\n"
        "(or mark-N, N being the mark's number), and prints the ids of the snapshots taken.\n",
    .epilog = "Exit status: 0 when every recorder took the mark; 2 when none runs on the database, "
              "or\none did not take it within 30 s.\n",
};

/* How long mark waits for the recorders: a recorder waits out another writer's lock too. */
#define MARK_WAIT_MS 30000

struct mark_ctx {
    struct cli *cli;
    struct json j;
    int64_t n;
};

/* Whether a recorder's row belongs to a live process: the same pid and start time. */
static int recorder_alive(void *ctx, const struct store_recorder *r)
{
    (void)ctx;
    struct capture_proc p;
    struct err e = {0};
    return capture_identify(r->pid, &p, &e) == 0 && p.start_time == r->start_time &&
           plat_runs_vmsnap(r->pid);
}

static int print_snapshot(void *ctx, const struct store_snapshot *s)
{
    struct mark_ctx *m = ctx;
    m->n++;
    if (!m->cli->json) {
        cli_printf("%lld\n", (long long)s->id);
        return 0;
    }
    json_begin_object(&m->j);
    json_snapshot_fields(&m->j, s);
    json_key(&m->j, "target_id");
    json_int(&m->j, s->target_id);
    json_end_object(&m->j);
    return 0;
}

static int parse_args(struct cli *cli, int argc, char **argv, const char **label)
{
    const struct cli_opt opts[] = {
        {CLI_OPTION('l', "label", CLI_OPT_LABEL, label, "TEXT",
                    "the snapshots' label (a recording that has it already gets TEXT-2, ...)")},
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    int rc = cli_parse_options(cli, &mark_command, opts, argc, argv, &args);
    if (rc)
        return rc;
    if (args.n)
        return cli_fail("mark: unexpected argument '%s' -- give a label with --label", args.v[0]);
    return 0;
}

/* Wakes each recorder; a recorder that cannot be woken is reported and counted in *failed. */
static void wake(struct store_recorder *v, size_t n, int *waiting, int *failed)
{
    for (size_t i = 0; i < n; i++) {
        waiting[i] = 0;
        if (!v[i].local) {
            (*failed)++;
            fprintf(stderr,
                    "vmsnap: mark: cannot wake the recorder of pid %lld: it runs on '%s' (or "
                    "before a reboot), not here -- run mark there\n",
                    (long long)v[i].target_pid, v[i].host);
            continue;
        }
        int rc = plat_wake_recorder(v[i].pid);
        if (rc == 0) {
            waiting[i] = 1;
        } else {
            (*failed)++;
            fprintf(stderr,
                    "vmsnap: mark: cannot wake the recorder of pid %lld (vmsnap pid %lld): %s\n",
                    (long long)v[i].target_pid, (long long)v[i].pid,
                    rc == -EPERM ? "it belongs to another user -- run mark as that user or root"
                                 : strerror(-rc));
        }
    }
}

int cmd_mark(struct cli *cli, int argc, char **argv)
{
    const char *label = NULL;
    int rc = parse_args(cli, argc, argv, &label);
    if (rc)
        return cli_options_exit(rc);
    struct store *st = NULL;
    struct store_recorder *v = NULL;
    int *waiting = NULL;
    size_t n = 0;
    int64_t mark = 0;
    int status = EXIT_TROUBLE, failed = 0;
    struct err e = {0};
    struct capture_proc here;
    if (cli_open_store(cli, STORE_READ, &st))
        return EXIT_TROUBLE;
    if (capture_identify(plat_getpid(), &here, &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }
    const struct store_proc hp = {here.pid, here.start_time, here.host, here.boot_id};
    if (store_mark_add(st, label, &hp, recorder_alive, NULL, &mark, &v, &n, &e) < 0) {
        if (e.code == ERR_READONLY || e.code == ERR_DB)
            err_wrap(&e, "mark: cannot add the mark to '%s'", cli->db_path);
        cli_fail_err(&e);
        goto out;
    }
    if (!n) {
        cli_fail("mark: no recorder is running on '%s' -- start one with 'vmsnap record -p PID'",
                 cli->db_path);
        goto out;
    }
    waiting = calloc(n, sizeof(*waiting));
    if (!waiting)
        goto out;
    wake(v, n, waiting, &failed);

    /* Each recorder notes the mark with the snapshot that takes it. */
    int64_t deadline = plat_monotonic_us() / 1000 + MARK_WAIT_MS;
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++) {
            if (!waiting[i])
                continue;
            int t = store_mark_taken(st, v[i].id, mark, &e);
            if (t == ERR_NOTFOUND) {
                waiting[i] = 0;
                failed++;
                fprintf(stderr,
                        "vmsnap: mark: the recorder of pid %lld stopped before it took the mark\n",
                        (long long)v[i].target_pid);
            } else if (t < 0) {
                cli_fail_err(&e);
                goto out;
            } else if (t == 1) {
                waiting[i] = 0;
            } else if (!recorder_alive(NULL, &v[i])) {
                /* Killed outright: its row stays, and it will never take the mark. */
                waiting[i] = 0;
                failed++;
                fprintf(stderr,
                        "vmsnap: mark: the recorder of pid %lld (vmsnap pid %lld) ended before it "
                        "took the mark\n",
                        (long long)v[i].target_pid, (long long)v[i].pid);
            } else {
                left++;
            }
        }
        if (!left)
            break;
        if (plat_monotonic_us() / 1000 >= deadline) {
            for (size_t i = 0; i < n; i++)
                if (waiting[i])
                    fprintf(stderr,
                            "vmsnap: mark: the recorder of pid %lld has not taken mark %lld within "
                            "%d s; it takes it when it gets to it (is the database locked?)\n",
                            (long long)v[i].target_pid, (long long)mark, MARK_WAIT_MS / 1000);
            failed += (int)left;
            break;
        }
        plat_sleep_ms(10);
    }

    struct mark_ctx m = {cli, {0}, 0};
    if (cli->json) {
        json_init(&m.j, stdout);
        json_begin_object(&m.j);
        json_key(&m.j, "mark");
        json_int(&m.j, mark);
        json_key(&m.j, "label");
        json_string(&m.j, label);
        json_key(&m.j, "snapshots");
        json_begin_array(&m.j);
    }
    if (store_mark_snapshots(st, mark, print_snapshot, &m, &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }
    if (cli->json) {
        json_end_array(&m.j);
        json_end_object(&m.j);
        json_finish(&m.j);
    }
    if (fflush(stdout) != 0) {
        cli_fail("mark: cannot write the output");
        goto out;
    }
    status = failed || !m.n ? EXIT_TROUBLE : EXIT_OK;
out:
    free(waiting);
    free(v);
    store_close(st);
    return status;
}
