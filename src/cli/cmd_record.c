#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/forms.h"
#include "platform/platform.h"
#include "record/recorder.h"
#include "util/xalloc.h"

static const struct cli_command record_command = {
    .name = "record",
    .max_args = -1,
    .synopsis =
        "usage: vmsnap record (-p PID[,PID...] [--follow] | -- COMMAND [ARG...] [--no-follow])\n"
        "                     [-i INTERVAL] [-n COUNT] [-t DURATION] [--detail maps|rollup|smaps]\n"
        "                     [--label-prefix TEXT] [--stacks]\n\n"
        "Records snapshots of processes at an interval. Only what changed is stored.\n",
    .json = "JSON summary on stdout",
    .epilog =
        "T is a number with an optional unit ms, s, m, h (plain number = seconds).\n"
        "Each process is a target; one forked by another names it as its parent ('vmsnap list').\n"
        "Stops at COUNT, at DURATION, when no recorded process is left, or on SIGINT/SIGTERM, "
        "after\n"
        "committing the snapshot in progress; killed outright, it loses no committed snapshot and\n"
        "COMMAND runs on (not under --stacks). If the database is moved or deleted meanwhile,\n"
        "it says where the recording is and stops (exit 2). 'vmsnap mark [--label TEXT]' from "
        "another terminal,\n"
        "or SIGUSR1, takes one extra snapshot now, labelled TEXT or mark-N (P-mark-N with a label\n"
        "prefix).\n"
        "On Windows, Ctrl+C stops; the named events Local\\vmsnap-stop-PID and\n"
        "Local\\vmsnap-mark-PID (PID: vmsnap's) stop or mark from another process.\n",
    .stop_at_argument = 1,
};

struct rec {
    struct cli *cli;
    struct store *st;
    struct recorder *r;
    struct recorder_opts o;
    int64_t *pids;
    size_t npids;
    char **command;
    int no_follow;
    int stacks;
    int progress;  /* stderr is a terminal */
    int line_open; /* a progress line is on the terminal */
};

/* Ends a progress line before a line of its own goes to stderr. */
static void end_line(struct rec *c)
{
    if (c->line_open)
        fputc('\n', stderr);
    c->line_open = 0;
}

static void show_progress(struct rec *c)
{
    if (!c->progress)
        return;
    char mapped[16], rss[16], db[16];
    int64_t bytes = store_db_bytes(c->st), taken, first, last;
    const struct capture_info *info;
    const struct region_list *list = recorder_last(c->r, &info);
    recorder_counts(c->r, &taken, &first, &last);
    size_t alive = 0, n = recorder_nprocs(c->r);
    for (size_t i = 0; i < n; i++)
        alive += !recorder_proc(c->r, i)->gone;
    fprintf(stderr, "\rvmsnap: %lld snapshots  %zu regions  mapped %s  rss %s  db %s",
            (long long)taken, list ? list->n : 0,
            cli_human(list ? region_list_mapped(list) : 0, mapped),
            info && info->have_totals ? cli_human(info->totals.rss, rss) : "-",
            bytes >= 0 ? cli_human((uint64_t)bytes, db) : "?");
    if (n > 1) {
        /* A tree: its processes alive, their totals (pss where read: shared memory counted
         * once), and the one that grew most since its first snapshot. */
        uint64_t committed = 0, pss = 0;
        int have_pss = 1;
        const struct recorder_proc *top = NULL;
        int64_t top_grew = 0;
        for (size_t i = 0; i < n; i++) {
            const struct recorder_proc *p = recorder_proc(c->r, i);
            if (p->gone || !p->taken)
                continue;
            committed += p->committed;
            pss += p->pss;
            have_pss &= p->have_mem;
            int64_t grew = (int64_t)(p->committed - p->committed_first);
            if (!top || grew > top_grew) {
                top = p;
                top_grew = grew;
            }
        }
        char com[16], ps[16], grew[24];
        fprintf(stderr, "  tree: %zu alive, committed %s, pss %s", alive, cli_human(committed, com),
                have_pss ? cli_human(pss, ps) : "-");
        if (top && top_grew > 0)
            fprintf(stderr, ", top pid %lld %s", (long long)top->pid,
                    cli_human_signed(top_grew, grew));
    }
    fputs("   ", stderr);
    c->line_open = 1;
}

static void on_event(void *ctx, int ev, const struct recorder_proc *p, int64_t snap,
                     int64_t waited_ms, const char *why)
{
    struct rec *c = ctx;
    switch (ev) {
    case REC_EV_SNAPSHOT:
        show_progress(c);
        return;
    case REC_EV_TORN:
        end_line(c);
        fprintf(stderr, "vmsnap: warning: snapshot %lld is torn (maps kept changing while read)\n",
                (long long)snap);
        return;
    case REC_EV_LOCKED:
        end_line(c);
        fprintf(stderr,
                "vmsnap: database '%s' is locked by another process; the snapshot is kept and "
                "written when the lock is released\n",
                c->cli->db_path);
        return;
    case REC_EV_UNLOCKED:
        end_line(c);
        fprintf(stderr,
                "vmsnap: database unlocked; the snapshot taken %.1f s ago is written and "
                "recording goes on\n",
                (double)waited_ms / 1000);
        return;
    case REC_EV_FOLLOWED:
        end_line(c);
        fprintf(stderr, "vmsnap: following pid %lld (target %lld), forked by a recorded process\n",
                (long long)p->pid, (long long)p->target_id);
        return;
    case REC_EV_EXITED:
        if (recorder_nprocs(c->r) > 1 && p->taken) {
            end_line(c);
            fprintf(stderr, "vmsnap: pid %lld exited (%lld snapshots)\n", (long long)p->pid,
                    (long long)p->taken);
        }
        return;
    case REC_EV_UNFOLLOWED:
        end_line(c);
        fprintf(stderr, "vmsnap: warning: %s\n", why);
        return;
    case REC_EV_UNMARKABLE:
        end_line(c);
        fprintf(stderr,
                "vmsnap: warning: 'vmsnap mark' cannot reach this recording (SIGUSR1 still "
                "takes a mark): %s\n",
                why);
        return;
    default:
        return;
    }
}

/* "123" or "123,456": each a pid. */
static int parse_pids(const char *arg, void *rec)
{
    struct rec *c = rec;
    const char *p = arg;
    while (*p) {
        char buf[32];
        size_t len = strcspn(p, ",");
        int64_t pid;
        if (len == 0 || len >= sizeof(buf))
            return -1;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (cli_parse_pid(buf, &pid) < 0)
            return -1;
        c->pids = xreallocarray(c->pids, c->npids + 1, sizeof(*c->pids));
        c->pids[c->npids++] = pid;
        p += len;
        if (*p == ',' && *++p == '\0')
            return -1;
    }
    return c->npids ? 0 : -1;
}

/* Its labels are P-SEQ: the rule for labels holds for them. */
static int check_prefix(const char *prefix, void *out)
{
    if (!*prefix) {
        cli_fail("record: empty label prefix");
        return 1;
    }
    char *first = xasprintf("%s-1", prefix);
    struct err e = {0};
    int bad = store_label_check(first, &e) < 0;
    free(first);
    if (bad) {
        cli_fail("record: --label-prefix '%s' makes labels that would read as a snapshot "
                 "selector (an id, first, last, last~N or FILE:SNAP) -- choose another",
                 prefix);
        return 1;
    }
    *(const char **)out = prefix;
    return 0;
}

static int parse_args(struct rec *c, int argc, char **argv)
{
    const struct cli_opt opts[] = {
        {CLI_OPTION('p', "pid", CLI_OPT_CALL, c, "PID[,PID...]", "record running processes"),
         .what = "pid", .expected = "a positive whole number, or several separated by commas",
         .call = parse_pids},
        {CLI_OPTION(0, NULL, CLI_OPT_TEXT, NULL, "-- COMMAND [ARG...]",
                    "start COMMAND, record it and every process it forks until none\n"
                    "is left, exit with COMMAND's status; the first snapshot shows\n"
                    "the program loaded (its libraries mapped)")},
        {CLI_OPTION('f', "follow", CLI_OPT_FLAG, &c->o.follow, NULL,
                    "with -p: also record every process they fork")},
        {CLI_OPTION(0, "no-follow", CLI_OPT_FLAG, &c->no_follow, NULL,
                    "with -- COMMAND: record COMMAND alone")},
        {CLI_OPTION('i', "interval", CLI_OPT_DURATION, &c->o.interval_ms, "T",
                    "time between snapshots (default 1s; 0 = back to back)")},
        {CLI_OPTION('n', "count", CLI_OPT_COUNT, &c->o.count, "N",
                    "stop after N snapshots (of each process)"),
         .min = 1},
        {CLI_OPTION('t', "duration", CLI_OPT_DURATION, &c->o.duration_ms, "T",
                    "stop after this long"),
         .min = 1},
        {CLI_OPTION('D', "detail", CLI_OPT_CHOICE, &c->o.detail, "LEVEL",
                    "maps: layout only (cheapest)\n"
                    "rollup: layout + process totals from smaps_rollup (default)\n"
                    "smaps: layout + per-region rss/pss/swap; reading smaps holds the\n"
                    "target's mmap lock and can slow a target that maps and unmaps\n"
                    "heavily: one with 60,000 regions doing nothing else ran 32%\n"
                    "slower under smaps at 1 s (7% under the default, 3% with maps)"),
         .expected = "maps, rollup or smaps", .choose = capture_detail_parse},
        {CLI_OPTION('L', "label-prefix", CLI_OPT_CALL, &c->o.prefix, "P", "label snapshots P-SEQ"),
         .call = check_prefix},
        {CLI_OPTION(0, "stacks", CLI_OPT_FLAG, &c->stacks, NULL,
                    "also record each mmap, munmap, mremap, mprotect, brk,\n"
                    "shmat and shmdt the processes and their children make, with\n"
                    "the calling thread's stack: which code made memory grow.\n"
                    "With -- COMMAND only those calls stop it, about 0.08 ms each\n"
                    "(what strace -f -e trace=memory costs); its other system calls\n"
                    "run at full speed. Once recording stops, COMMAND runs on\n"
                    "traced, recording nothing, until it exits; killed outright\n"
                    "(SIGKILL), vmsnap takes COMMAND with it: a traced program cannot\n"
                    "run on without its tracer. With -p every system call stops (a\n"
                    "program making 10 other calls a memory call ran 83x slower, as\n"
                    "under strace -f -p); the processes run on untraced once\n"
                    "recording stops. LeakSanitizer cannot run under a tracer: its\n"
                    "check at exit is turned off (detect_leaks=0 added to\n"
                    "ASAN_OPTIONS and LSAN_OPTIONS).\n"
                    "On Windows (-- COMMAND only, not its children): each\n"
                    "NtAllocateVirtualMemory, NtFreeVirtualMemory,\n"
                    "NtProtectVirtualMemory, NtMapViewOfSection and\n"
                    "NtUnmapViewOfSection, caught by debugger breakpoints (two\n"
                    "debug events a call: about 2 ms under Wine). Once recording\n"
                    "stops they are taken away and COMMAND runs on untraced;\n"
                    "killed outright, vmsnap takes COMMAND with it")},
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    int rc = cli_parse_options(c->cli, &record_command, opts, argc, argv, &args);
    if (rc)
        return rc;
    c->command = args.n ? args.v : NULL;
    if (c->command && args.dashdash != 0)
        return cli_fail("record: unexpected argument '%s' -- put '--' before a command to run",
                        args.v[0]);
    if (c->npids && c->command)
        return cli_fail("record: give either -p PID or -- COMMAND, not both");
    if (!c->npids && !c->command)
        return cli_fail("record: what to record? give -p PID or -- COMMAND [ARG...]");
    if (c->o.follow && c->no_follow)
        return cli_fail("record: give --follow or --no-follow, not both");
    if (c->no_follow && !c->command)
        return cli_fail("record: --no-follow goes with -- COMMAND (-p records only the pids "
                        "given unless --follow)");
    if (c->command && !c->no_follow)
        c->o.follow = 1;
    c->o.stacks = c->stacks;
    return 0;
}

static void summary(struct rec *c, const char *why)
{
    int64_t taken, first, last;
    recorder_counts(c->r, &taken, &first, &last);
    size_t n = recorder_nprocs(c->r);
    end_line(c);
    int64_t pid = n ? recorder_proc(c->r, 0)->pid : (c->npids ? c->pids[0] : 0);
    /* The processes given come first: the command, or each -p PID; the rest were forked. */
    size_t given = c->command ? 1 : c->npids;
    if (given > n)
        given = n ? n : 1;
    char whom[200];
    size_t len =
        (size_t)snprintf(whom, sizeof(whom), "pid%s %lld", given > 1 ? "s" : "", (long long)pid);
    for (size_t i = 1; i < given && len < sizeof(whom); i++)
        len += (size_t)snprintf(whom + len, sizeof(whom) - len, "%s%lld",
                                i + 1 == given ? " and " : ", ",
                                (long long)recorder_proc(c->r, i)->pid);
    if (n > given && len < sizeof(whom))
        snprintf(whom + len, sizeof(whom) - len, "%s %zu process%s %s forked",
                 given > 1 ? "," : " and", n - given, n - given == 1 ? "" : "es",
                 given > 1 ? "they" : "it");
    int64_t calls, stacks;
    recorder_calls(c->r, &calls, &stacks);
    char with[96] = "";
    if (c->stacks)
        snprintf(with, sizeof(with), ", %lld call%s with %lld stack%s", (long long)calls,
                 calls == 1 ? "" : "s", (long long)stacks, stacks == 1 ? "" : "s");
    fprintf(stderr, "vmsnap: recorded %lld snapshot%s%s of %s into '%s' (%s)\n", (long long)taken,
            taken == 1 ? "" : "s", with, whom, c->cli->db_path, why);
    if (!c->cli->json)
        return;
    struct json j;
    json_init(&j, stdout);
    json_begin_object(&j);
    json_key(&j, "pid");
    json_int(&j, pid);
    json_key(&j, "target");
    if (n && recorder_proc(c->r, 0)->target_id)
        json_int(&j, recorder_proc(c->r, 0)->target_id);
    else
        json_null(&j);
    json_key(&j, "snapshots");
    json_int(&j, taken);
    json_key(&j, "first_snapshot");
    if (first)
        json_int(&j, first);
    else
        json_null(&j);
    json_key(&j, "last_snapshot");
    if (last)
        json_int(&j, last);
    else
        json_null(&j);
    json_key(&j, "stopped");
    json_string(&j, why);
    if (c->stacks) {
        json_key(&j, "calls");
        json_int(&j, calls);
        json_key(&j, "stacks");
        json_int(&j, stacks);
    }
    json_key(&j, "processes");
    json_begin_array(&j);
    for (size_t i = 0; i < n; i++) {
        const struct recorder_proc *p = recorder_proc(c->r, i);
        json_begin_object(&j);
        json_key(&j, "pid");
        json_int(&j, p->pid);
        json_key(&j, "target");
        if (p->target_id)
            json_int(&j, p->target_id);
        else
            json_null(&j);
        json_key(&j, "snapshots");
        json_int(&j, p->taken);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_end_object(&j);
    json_finish(&j);
}

static void waiting(void *ctx, int64_t pid)
{
    struct rec *c = ctx;
    fprintf(stderr,
            "vmsnap: recording has stopped; waiting for '%s' (pid %lld) to exit, whose status "
            "vmsnap exits with -- interrupt or kill it to end sooner\n",
            c->command[0], (long long)pid);
}

int cmd_record(struct cli *cli, int argc, char **argv)
{
    struct rec c;
    memset(&c, 0, sizeof(c));
    c.cli = cli;
    c.o.interval_ms = 1000;
    c.o.detail = DETAIL_ROLLUP;
    int rc = parse_args(&c, argc, argv);
    if (rc) {
        free(c.pids);
        return cli_options_exit(rc);
    }
    struct err e = {0};
    int status = EXIT_TROUBLE;
    /* Open the processes first, so a typo'd pid does not create an empty database. */
    struct capture **caps = xcalloc(c.npids ? c.npids : 1, sizeof(*caps));
    for (size_t i = 0; i < c.npids; i++)
        if (capture_open(&caps[i], c.pids[i], &e) < 0) {
            status = cli_fail_err(&e);
            goto out_caps;
        }
    if (cli_open_store(cli, STORE_WRITE, &c.st))
        goto out_caps;
    c.progress = plat_isatty(stderr);
    const struct recorder_hooks h = {on_event, &c};
    rc = recorder_open(&c.r, c.st, &c.o, &h, c.command, caps, c.npids, &e);
    int trouble = rc < 0;
    const char *why = "target exited";
    if (!trouble && recorder_run(c.r, &why, &e) < 0)
        trouble = 1;
    if (trouble) {
        end_line(&c);
        cli_fail_err(&e);
    } else {
        summary(&c, why);
    }
    int child_status = recorder_close(c.r, c.command ? waiting : NULL, &c);
    status = trouble ? EXIT_TROUBLE : c.command ? child_status : EXIT_OK;
    store_close(c.st);
out_caps:
    for (size_t i = 0; i < c.npids; i++)
        capture_close(caps[i]);
    free(caps);
    free(c.pids);
    return status;
}
