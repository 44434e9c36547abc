#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "json/forms.h"
#include "cli/taker.h"
#include "platform/platform.h"
#include "util/xalloc.h"

static const char usage[] =
    "usage: vmsnap record (-p PID | -- COMMAND [ARG...]) [-i INTERVAL] [-n COUNT] [-t DURATION]\n"
    "                     [--detail maps|rollup|smaps] [--label-prefix TEXT]\n\n"
    "Records snapshots of a process at an interval. Only what changed is stored.\n\n"
    "  -p, --pid PID          record a running process\n"
    "  -- COMMAND [ARG...]    start COMMAND, record it until it exits, exit with its status\n"
    "  -i, --interval T       time between snapshots (default 1s; 0 = back to back)\n"
    "  -n, --count N          stop after N snapshots\n"
    "  -t, --duration T       stop after this long\n"
    "  -D, --detail LEVEL     maps: layout only (cheapest; no mmap-lock contention)\n"
    "                         rollup: layout + process totals from smaps_rollup (default)\n"
    "                         smaps: layout + per-region rss/pss/swap; reading smaps holds the\n"
    "                         target's mmap lock and can slow a target that maps and unmaps\n"
    "                         heavily\n"
    "  -L, --label-prefix P   label snapshots P-SEQ\n"
    "  -d, --db FILE          database;  -j, --json  JSON summary on stdout\n\n"
    "T is a number with an optional unit ms, s, m, h (plain number = seconds).\n"
    "Stops at COUNT, at DURATION, when the target exits, or on SIGINT/SIGTERM, after committing\n"
    "the snapshot in progress. 'vmsnap mark [--label TEXT]' from another terminal, or SIGUSR1,\n"
    "takes one extra snapshot now, labelled TEXT or mark-N (P-mark-N with a label prefix).\n"
    "On Windows, Ctrl+C stops; the named events Local\\vmsnap-stop-PID and\n"
    "Local\\vmsnap-mark-PID (PID: vmsnap's) stop or mark from another process.\n";

struct rec {
    struct cli *cli;
    struct store *st;
    struct taker taker;
    int64_t pid;
    struct plat_recorder *events;
    int child; /* a COMMAND was started */
    int64_t interval_ms, duration_ms, count;
    int detail;
    const char *prefix;
    int64_t taken, marks;
    int64_t first_snap, last_snap;
    int progress;                   /* stderr is a terminal */
    const struct region_list *list; /* the last snapshot written */
    struct capture_info info;
    /* A walk that could not be written yet because another process held the database: it is
     * kept, and written before anything else is walked. */
    int pending;
    char pending_label[512];  /* its label; empty for none */
    int64_t pending_since_ms; /* when the pending walk was taken (monotonic) */
    int lock_reported;
    int64_t pending_mark; /* the mark the pending walk answers (STORE_NO_MARK: none) */
    /* Marks asked for and not taken yet, oldest first: id 0 for SIGUSR1, else the id of a
     * `vmsnap mark`. */
    struct store_mark *queue;
    size_t nqueue;
    int64_t recorder_id; /* this recorder's row, which lets `vmsnap mark` find it; 0: none */
    int64_t marks_after; /* the newest `vmsnap mark` queued */
    int stop_requested;  /* SIGINT, SIGTERM, Ctrl+C or the stop event ended the recording */
};

static int64_t mono_ms(void)
{
    return plat_monotonic_us() / 1000;
}

static void show_progress(struct rec *r)
{
    if (!r->progress)
        return;
    char mapped[16], rss[16], db[16];
    int64_t bytes = store_db_bytes(r->st);
    fprintf(stderr, "\rvmsnap: %lld snapshots  %zu regions  mapped %s  rss %s  db %s   ",
            (long long)r->taken, r->list ? r->list->n : 0,
            cli_human(r->list ? region_list_mapped(r->list) : 0, mapped),
            r->info.have_totals ? cli_human(r->info.totals.rss, rss) : "-",
            bytes >= 0 ? cli_human((uint64_t)bytes, db) : "?");
}

/*
 * Writes the pending walk. Returns 0 when written or still locked (r->pending stays set), or
 * EXIT_TROUBLE after printing.
 */
static int commit(struct rec *r)
{
    struct err e = {0};
    int64_t snap;
    const struct store_snap_opts o = {r->pending_label[0] ? r->pending_label : NULL,
                                      STORE_LABEL_UNIQUE, r->pending_mark, r->recorder_id};
    int rc = taker_commit(&r->taker, &o, &snap, &e);
    if (rc == ERR_LOCKED) {
        if (!r->lock_reported) {
            r->lock_reported = 1;
            fprintf(stderr,
                    "%svmsnap: database '%s' is locked by another process; the snapshot is kept "
                    "and written when the lock is released\n",
                    r->progress ? "\n" : "", r->cli->db_path);
        }
        return 0;
    }
    if (rc < 0) {
        if (r->progress)
            fputc('\n', stderr);
        return cli_fail_err(&e);
    }
    if (r->lock_reported)
        fprintf(stderr,
                "%svmsnap: database unlocked; the snapshot taken %.1f s ago is written and "
                "recording goes on\n",
                r->progress ? "\n" : "", (double)(mono_ms() - r->pending_since_ms) / 1000);
    r->pending = 0;
    r->lock_reported = 0;
    r->list = r->taker.list;
    r->info = r->taker.info;
    if (!r->first_snap)
        r->first_snap = snap;
    r->last_snap = snap;
    r->taken++;
    if (r->info.flags & CAPTURE_TORN)
        fprintf(stderr,
                "%svmsnap: warning: snapshot %lld is torn (maps kept changing while "
                "read)\n",
                r->progress ? "\n" : "", (long long)snap);
    show_progress(r);
    return 0;
}

/*
 * A mark came (SIGUSR1 or `vmsnap mark`): queues the marks `vmsnap mark` added for us, or, when
 * there are none, one of our own.
 */
static void queue_marks(struct rec *r)
{
    struct store_mark *v = NULL;
    size_t n = 0;
    struct err e = {0};
    if (r->recorder_id &&
        store_marks_pending(r->st, r->recorder_id, r->marks_after, &v, &n, &e) < 0)
        fprintf(stderr, "%svmsnap: warning: %s\n", r->progress ? "\n" : "", e.msg);
    if (!n) {
        v = xcalloc(1, sizeof(*v));
        n = 1;
    }
    r->queue = xreallocarray(r->queue, r->nqueue + n, sizeof(*r->queue));
    memcpy(r->queue + r->nqueue, v, n * sizeof(*v));
    r->nqueue += n;
    if (v[n - 1].id)
        r->marks_after = v[n - 1].id;
    free(v);
}

/*
 * Takes one snapshot (for the oldest mark queued, if any), or first writes the one still
 * pending. Returns 0, 1 when the target is gone, or EXIT_TROUBLE after printing.
 */
static int tick(struct rec *r)
{
    if (r->pending)
        return commit(r);
    struct err e = {0};
    r->pending_label[0] = '\0';
    r->pending_mark = STORE_NO_MARK;
    if (r->nqueue) {
        struct store_mark m = r->queue[0];
        memmove(r->queue, r->queue + 1, --r->nqueue * sizeof(*r->queue));
        r->pending_mark = m.id;
        if (m.label)
            snprintf(r->pending_label, sizeof(r->pending_label), "%s", m.label);
        else
            snprintf(r->pending_label, sizeof(r->pending_label), "%s%smark-%lld",
                     r->prefix ? r->prefix : "", r->prefix ? "-" : "",
                     (long long)(m.id ? m.id : ++r->marks));
        free(m.label);
    } else if (r->prefix) {
        snprintf(r->pending_label, sizeof(r->pending_label), "%s-%lld", r->prefix,
                 (long long)(r->taken + 1));
    }
    int rc = taker_walk(&r->taker, &e);
    if (rc == ERR_EXITED || rc == ERR_ZOMBIE || rc == ERR_NOPROC) {
        r->list = NULL;
        return 1;
    }
    if (rc < 0) {
        if (r->progress)
            fputc('\n', stderr);
        return cli_fail_err(&e);
    }
    r->pending = 1;
    r->pending_since_ms = mono_ms();
    return commit(r);
}

/*
 * Recording is over but a walk is still pending: keep trying to write it until it is written
 * or a stop request comes (or came: it ended the recording), then try once more. Returns 0 or
 * EXIT_TROUBLE after printing.
 */
static int flush_pending(struct rec *r)
{
    int stop = r->stop_requested;
    while (r->pending) {
        int rc = commit(r);
        if (rc)
            return rc;
        if (!r->pending)
            break;
        if (stop)
            return cli_fail("record: database '%s' stayed locked by another process: the "
                            "snapshot in progress was not written (the %lld written before it are "
                            "kept)",
                            r->cli->db_path, (long long)r->taken);
        int64_t until = mono_ms() + (r->interval_ms > 100 ? r->interval_ms : 100);
        while (!stop && mono_ms() < until)
            stop = plat_recorder_wait(r->events, until * 1000) == PLAT_EV_STOP;
    }
    return 0;
}

static int parse_args(struct rec *r, int argc, char **argv, char ***command)
{
    static const struct option opts[] = {
        {"pid", required_argument, NULL, 'p'},    {"interval", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'n'},  {"duration", required_argument, NULL, 't'},
        {"detail", required_argument, NULL, 'D'}, {"label-prefix", required_argument, NULL, 'L'},
        {"db", required_argument, NULL, 'd'},     {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 0;
    opterr = 0;
    /* '+': stop at the first non-option, so COMMAND's own options are left alone. */
    while ((opt = getopt_long(argc, argv, "+:p:i:n:t:D:L:d:jh", opts, NULL)) != -1) {
        if (cli_common_opt(r->cli, opt, optarg))
            continue;
        switch (opt) {
        case 'p':
            if (cli_parse_pid(optarg, &r->pid) < 0)
                return cli_fail("record: invalid pid '%s': expected a positive whole number",
                                optarg);
            break;
        case 'i':
            if (cli_parse_duration_ms(optarg, &r->interval_ms) < 0)
                return cli_fail("record: invalid interval '%s': expected a number with an "
                                "optional unit ms, s, m or h",
                                optarg);
            break;
        case 't':
            if (cli_parse_duration_ms(optarg, &r->duration_ms) < 0 || r->duration_ms == 0)
                return cli_fail("record: invalid duration '%s': expected a number above 0 with "
                                "an optional unit ms, s, m or h",
                                optarg);
            break;
        case 'n':
            if (cli_parse_count(optarg, &r->count) < 0 || r->count == 0)
                return cli_fail("record: invalid count '%s': expected a whole number above 0",
                                optarg);
            break;
        case 'D':
            r->detail = capture_detail_parse(optarg);
            if (r->detail < 0)
                return cli_fail("record: invalid detail '%s': expected maps, rollup or smaps",
                                optarg);
            break;
        case 'L':
            if (!*optarg)
                return cli_fail("record: empty label prefix");
            r->prefix = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        case ':':
            return cli_fail("record: option '%s' needs a value -- see 'vmsnap record --help'",
                            argv[optind - 1]);
        default:
            return cli_fail("record: unknown option '%s' -- see 'vmsnap record --help'",
                            argv[optind - 1]);
        }
    }
    *command = optind < argc ? argv + optind : NULL;
    if (*command && strcmp(argv[optind - 1], "--") != 0)
        return cli_fail("record: unexpected argument '%s' -- put '--' before a command to run",
                        argv[optind]);
    if (r->pid && *command)
        return cli_fail("record: give either -p PID or -- COMMAND, not both");
    if (!r->pid && !*command)
        return cli_fail("record: what to record? give -p PID or -- COMMAND [ARG...]");
    return 0;
}

static void summary(struct rec *r, const char *why)
{
    if (r->progress && r->taken)
        fputc('\n', stderr);
    fprintf(stderr, "vmsnap: recorded %lld snapshot%s of pid %lld into '%s' (%s)\n",
            (long long)r->taken, r->taken == 1 ? "" : "s", (long long)r->pid, r->cli->db_path, why);
    if (r->cli->json) {
        struct json j;
        json_init(&j, stdout, 0);
        json_begin_object(&j);
        json_key(&j, "pid");
        json_int(&j, r->pid);
        json_key(&j, "target");
        json_int(&j, r->taker.target_id);
        json_key(&j, "snapshots");
        json_int(&j, r->taken);
        json_key(&j, "first_snapshot");
        if (r->first_snap)
            json_int(&j, r->first_snap);
        else
            json_null(&j);
        json_key(&j, "last_snapshot");
        if (r->last_snap)
            json_int(&j, r->last_snap);
        else
            json_null(&j);
        json_key(&j, "stopped");
        json_string(&j, why);
        json_end_object(&j);
        json_finish(&j);
    }
}

/* Says that we record, so `vmsnap mark` can find us; a recording goes on without it. */
static void register_recorder(struct rec *r)
{
    struct capture_proc self;
    struct err e = {0};
    int rc = capture_identify("/proc", plat_getpid(), &self, &e);
    if (rc == 0) {
        const struct store_proc p = {self.pid, self.start_time, self.host, self.boot_id};
        rc = store_recorder_register(r->st, &p, r->pid, &r->recorder_id, &e);
    }
    if (rc < 0)
        fprintf(stderr,
                "vmsnap: warning: 'vmsnap mark' cannot reach this recording (SIGUSR1 "
                "still takes a mark): %s\n",
                e.msg);
}

/* Waits for the next tick (or the deadline), taking marks as they come. Returns 0 to tick, or
 * 1 to stop with *why set; a tick that fails sets *trouble. */
static int wait_next(struct rec *r, int64_t next, int64_t deadline, const char **why, int *trouble)
{
    for (;;) {
        int64_t until = deadline >= 0 && deadline < next ? deadline : next;
        /* Wake at least twice a second to notice a target that exited meanwhile. */
        if (until - mono_ms() > 500)
            until = mono_ms() + 500;
        switch (plat_recorder_wait(r->events, until * 1000)) {
        case PLAT_EV_STOP:
            *why = plat_recorder_stop_reason(r->events);
            r->stop_requested = 1;
            /* A stop sent to vmsnap alone is passed on to the command, which then exits and
             * gives its status. */
            plat_recorder_forward_stop(r->events);
            return 1;
        case PLAT_EV_MARK: {
            queue_marks(r);
            /* Each mark is a snapshot of its own, now; a locked database keeps them waiting. */
            do {
                int rc = tick(r);
                if (rc) {
                    *trouble = rc != 1;
                    if (rc == 1)
                        *why = "target exited";
                    return 1;
                }
                if (r->count && r->taken >= r->count) {
                    *why = "count reached";
                    return 1;
                }
            } while (r->nqueue && !r->pending);
            continue;
        }
        case PLAT_EV_CHILD:
            if (plat_recorder_child_exited(r->events, 0, NULL)) {
                *why = "target exited";
                return 1;
            }
            continue;
        default:
            break;
        }
        if (!r->child && taker_check(&r->taker) < 0) {
            *why = "target exited";
            return 1;
        }
        int64_t now = mono_ms();
        if (deadline >= 0 && now >= deadline) {
            *why = "duration reached";
            return 1;
        }
        if (now >= next)
            return 0;
    }
}

int cmd_record(struct cli *cli, int argc, char **argv)
{
    struct rec r;
    memset(&r, 0, sizeof(r));
    r.cli = cli;
    r.interval_ms = 1000;
    r.detail = DETAIL_ROLLUP;
    char **command = NULL;
    int rc = parse_args(&r, argc, argv, &command);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;

    plat_recorder_init(&r.events);
    struct err e = {0};
    int status = EXIT_TROUBLE, trouble = 0;
    /* Open the process first, so a typo'd pid does not create an empty database. */
    struct capture *cap = NULL;
    if (!command && capture_open(&cap, "/proc", r.pid, &e) < 0) {
        status = cli_fail_err(&e);
        goto out_events;
    }
    if (cli_open_store(cli, STORE_WRITE, &r.st)) {
        capture_close(cap);
        goto out_events;
    }
    if (command) {
        char why_not[256];
        int64_t child = plat_recorder_spawn(r.events, command, why_not, sizeof(why_not));
        if (child < 0) {
            status = cli_fail("record: cannot run '%s': %s", command[0], why_not);
            goto out_store;
        }
        r.child = 1;
        r.pid = child;
    }
    if (taker_open(&r.taker, r.st, cap, r.pid, r.detail, &e) < 0) {
        if (plat_recorder_child_exited(r.events, 0, NULL) || e.code == ERR_EXITED ||
            e.code == ERR_ZOMBIE) {
            summary(&r, "target exited");
            status = EXIT_OK;
        } else {
            status = cli_fail_err(&e);
            trouble = 1;
        }
        goto out_child;
    }
    r.progress = plat_isatty(stderr);
    register_recorder(&r);

    const char *why = "stopped";
    int64_t start = mono_ms(), next = start;
    for (;;) {
        rc = tick(&r);
        if (rc == 1) {
            why = "target exited";
            break;
        }
        if (rc) {
            trouble = 1;
            break;
        }
        if (r.count && r.taken >= r.count) {
            why = "count reached";
            break;
        }
        next += r.interval_ms;
        int64_t now = mono_ms();
        if (next < now)
            next = now; /* a slow walk delays the schedule rather than bunching snapshots */
        int64_t deadline = r.duration_ms ? start + r.duration_ms : -1;
        if (deadline >= 0 && now >= deadline) {
            why = "duration reached";
            break;
        }
        if (wait_next(&r, next, deadline, &why, &trouble))
            break;
    }
    if (!trouble && flush_pending(&r))
        trouble = 1;
    if (!trouble)
        summary(&r, why);
    status = trouble ? EXIT_TROUBLE : EXIT_OK;
    if (r.recorder_id)
        store_recorder_unregister(r.st, r.recorder_id);
    store_marks_free(r.queue, r.nqueue);
    taker_close(&r.taker);
out_child:
    if (r.child) {
        /* Recording is over; the command runs on until it exits, and its status is ours.
         * Everything is committed, so signals may act as usual again while we wait. */
        plat_recorder_unblock(r.events);
        int child_status = 0;
        if (!plat_recorder_child_exited(r.events, 0, &child_status))
            fprintf(stderr,
                    "vmsnap: recording has stopped; waiting for '%s' (pid %lld) to exit, whose "
                    "status vmsnap exits with -- interrupt or kill it to end sooner\n",
                    command[0], (long long)r.pid);
        plat_recorder_child_exited(r.events, 1, &child_status);
        if (!trouble)
            status = child_status;
    }
out_store:
    store_close(r.st);
out_events:
    plat_recorder_release(r.events);
    return status;
}
