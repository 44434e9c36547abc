/* End to end: the vmsnap binary against live processes and real database files. */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static int cmp_row(const void *a, const void *b)
{
    const struct tu_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The regions view for one snapshot, in unsigned address order. */
static size_t db_rows(sqlite3 *db, int64_t snap, struct tu_range **out)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT start, \"end\", perms, path FROM regions WHERE "
                                        "snapshot_id = ?",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, snap);
    size_t n = 0, cap = 0;
    struct tu_range *v = NULL;
    while (sqlite3_step(s) == SQLITE_ROW)
        tu_ranges_push(&v, &n, &cap, (uint64_t)sqlite3_column_int64(s, 0),
                       (uint64_t)sqlite3_column_int64(s, 1),
                       (const char *)sqlite3_column_text(s, 2),
                       (const char *)sqlite3_column_text(s, 3));
    sqlite3_finalize(s);
    qsort(v, n, sizeof(*v), cmp_row);
    *out = v;
    return n;
}

static void assert_rows_equal(const struct tu_range *a, size_t na, const struct tu_range *b,
                              size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        if (a[i].start != b[i].start || a[i].end != b[i].end || strcmp(a[i].perms, b[i].perms))
            fail_msg("row %zu: %llx-%llx %s vs %llx-%llx %s", i, (unsigned long long)a[i].start,
                     (unsigned long long)a[i].end, a[i].perms, (unsigned long long)b[i].start,
                     (unsigned long long)b[i].end, b[i].perms);
    }
}

/* Exit 2 and exactly one line on stderr, starting "vmsnap: " and containing want. */
static void test_snap_stores_exactly_what_maps_shows(void **state)
{
    (void)state;
    struct tu_child c;
    char *db = tu_tmppath("v.db", NULL);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", db);
    *strrchr(dir, '/') = '\0';
    tu_child_start(&c);
    tu_child_ok(&c, "mapat 0x300000000 1048576 rw-");
    tu_child_ok(&c, "mapat 0x310000000 65536 ---");
    uint64_t f = tu_child_ok(&c, "mapfile %s/a\\sb\\nc.bin 8192 r-- p", dir);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);

    struct tu_range *before, *after, *stored;
    size_t nb = tu_proc_maps(c.pid, &before);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "1\n");
    assert_string_equal(r.err, "");
    size_t na = tu_proc_maps(c.pid, &after);
    assert_rows_equal(before, nb, after, na); /* the child held still */

    sqlite3 *h = tu_db_open(db);
    size_t ns = db_rows(h, 1, &stored);
    assert_rows_equal(before, nb, stored, ns);
    /* The true file name: a space and a newline, no escapes. */
    char want[4200];
    snprintf(want, sizeof(want), "%s/a b\nc.bin", dir);
    int found = 0;
    for (size_t i = 0; i < ns; i++)
        if (stored[i].start == f) {
            assert_string_equal(stored[i].path, want);
            found = 1;
        }
    assert_true(found);
    assert_int_equal(tu_q64(h, "SELECT size FROM regions WHERE path = '[vsyscall]'"), 4096);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM regions WHERE printf('%%x', start) = "
                               "'ffffffffff600000'"),
                     1);
    int64_t spans =
        tu_q64(h, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)");
    sqlite3_close(h);
    tu_run_release(&r);

    /* A second snapshot of the unchanged process adds no region rows. */
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "2\n");
    tu_run_release(&r);
    h = tu_db_open(db);
    assert_int_equal(
        tu_q64(h, "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM spans_open)"),
        spans);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM regions WHERE snapshot_id = 2"), (int64_t)nb);
    sqlite3_close(h);

    struct stat sb;
    assert_int_equal(stat(db, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    tu_ranges_free(before, nb);
    tu_ranges_free(after, na);
    tu_ranges_free(stored, ns);
    tu_child_stop(&c);
    free(db);
}

static void test_show_list_query_output(void **state)
{
    (void)state;
    struct tu_child c;
    char *db = tu_tmppath("v.db", NULL);
    tu_child_start(&c);
    tu_child_ok(&c, "mapat 0x320000000 65536 rw-");
    tu_child_ok(&c, "touch 0x320000000 8192");
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, "--label", "baseline", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", db, "-j", "show", "baseline", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out,
                           "\"start\":\"0x320000000\",\"end\":\"0x320010000\",\"size\":65536,"
                           "\"perms\":\"rw-p\""));
    assert_non_null(strstr(r.out, "\"rss\":8192"));
    assert_non_null(strstr(r.out, "\"start\":\"0xffffffffff600000\""));
    assert_non_null(strstr(r.out, "\"label\":\"baseline\""));
    assert_int_equal(tu_count_lines(r.out), 1);
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", db, "show", "last", "--category", "kernel", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "[vsyscall]"));
    assert_null(strstr(r.out, "[heap]"));
    assert_non_null(strstr(r.out, "total"));
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", db, "-j", "list", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"targets\":[{\"id\":1,\"pid\":"));
    assert_non_null(strstr(r.out, "\"snapshots\":[{\"id\":1,\"seq\":1,"));
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", db, "-j", "query",
              "SELECT size, perms, rss FROM regions WHERE start = 0x320000000", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[{\"size\":65536,\"perms\":\"rw-p\",\"rss\":8192}]\n");
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", db, "query", "SELECT 1 AS one, 'x' AS two", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "one  two\n  1  x\n");
    tu_run_release(&r);
    tu_child_stop(&c);
    free(db);
}

static void test_record_command_until_exit(void **state)
{
    (void)state;
    char *db = tu_tmppath("v.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-i", "50ms", "--label-prefix", "run", "--", "/bin/sh", "-c",
              "sleep 0.5; exit 7", NULL);
    assert_int_equal(r.status, 7); /* the command's own status */
    assert_non_null(strstr(r.err, "target exited"));
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(db);
    int64_t n = tu_q64(h, "SELECT count(*) FROM snapshots");
    assert_true(n >= 4);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM snapshots WHERE label = 'run-' || seq"), n);
    /* Every snapshot reads back whole through the view. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM snapshots s WHERE region_count != (SELECT "
                               "count(*) FROM regions r WHERE r.snapshot_id = s.id)"),
                     0);
    assert_int_equal(tu_q64(h,
                            "SELECT count(*) FROM targets WHERE cmdline = '/bin/sh -c sleep 0.5; "
                            "exit 7'"),
                     1);
    /* Process totals come from smaps_rollup by default. */
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM snapshots WHERE rss_bytes > 0 AND detail = "
                               "'rollup'"),
                     n);
    sqlite3_close(h);

    /* A command that execs another: each program is its own target, none left empty (the
     * shell's own child, sleep 0.2, is not followed here). */
    char *db2 = tu_tmppath("v.db", NULL);
    tu_vmsnap(&r, "-d", db2, "record", "-i", "20ms", "--no-follow", "--", "/bin/sh", "-c",
              "sleep 0.2; exec /bin/sleep 0.3", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    h = tu_db_open(db2);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets"), 2);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets t WHERE NOT EXISTS (SELECT 1 FROM "
                               "snapshots s WHERE s.target_id = t.id)"),
                     0);
    assert_int_equal(tu_q64(h, "SELECT count(DISTINCT pid) FROM targets"), 1);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM targets WHERE exe = '/usr/bin/sleep'"), 1);
    sqlite3_close(h);
    free(db2);

    tu_vmsnap(&r, "-d", db, "record", "-n", "2", "--", "/nonexistent/program", NULL);
    tu_assert_trouble(&r, "cannot run '/nonexistent/program'");
    tu_run_release(&r);
    free(db);
}

static pid_t spawn_vmsnap(const char *const *args)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)VMSNAP_BIN;
        for (; *args; args++)
            argv[n++] = (char *)*args;
        argv[n] = NULL;
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int64_t wait_for(const char *db, const char *sql, int64_t at_least)
{
    for (int i = 0; i < 1000; i++) {
        if (access(db, F_OK) == 0) {
            sqlite3 *h;
            if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
                sqlite3_busy_timeout(h, 1000);
                sqlite3_stmt *s;
                int64_t v = -1;
                if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK) {
                    if (sqlite3_step(s) == SQLITE_ROW)
                        v = sqlite3_column_int64(s, 0);
                    sqlite3_finalize(s);
                }
                sqlite3_close(h);
                if (v >= at_least)
                    return v;
            }
        }
        usleep(10000);
    }
    fail_msg("timed out waiting for %s >= %lld", sql, (long long)at_least);
    return -1;
}

static int wait_status(pid_t pid)
{
    int status;
    for (int i = 0; i < 1000; i++) {
        pid_t p = waitpid(pid, &status, WNOHANG);
        if (p == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    fail_msg("vmsnap did not exit");
    return -1;
}

static void test_sigint_mid_record_keeps_every_snapshot(void **state)
{
    (void)state;
    struct tu_child c;
    char *db = tu_tmppath("v.db", NULL);
    char pid[16];
    tu_child_start(&c);
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    tu_child_ok(&c, "many 2000");
    tu_child_ok(&c, "churn on"); /* something changes at every tick */
    const char *args[] = {"-d", db, "record", "-p", pid, "-i", "0", "--detail", "smaps", NULL};
    pid_t rec = spawn_vmsnap(args);
    wait_for(db, "SELECT count(*) FROM snapshots", 5);
    kill(rec, SIGINT);
    assert_int_equal(wait_status(rec), 0);
    tu_child_ok(&c, "churn off");

    sqlite3 *h = tu_db_open(db);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM snapshots s WHERE region_count != (SELECT "
                               "count(*) FROM regions r WHERE r.snapshot_id = s.id)"),
                     0);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM snapshots s WHERE rss_bytes != (SELECT "
                               "sum(rss) FROM regions r WHERE r.snapshot_id = s.id)"),
                     0);
    assert_true(tu_q64(h, "SELECT count(*) FROM snapshots") >= 5);
    sqlite3_close(h);

    /* Once the child holds still, a new recording's snapshot equals its maps exactly. */
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-p", pid, "-n", "1", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    struct tu_range *live, *stored;
    size_t nl = tu_proc_maps(c.pid, &live);
    h = tu_db_open(db);
    size_t ns = db_rows(h, tu_q64(h, "SELECT max(id) FROM snapshots"), &stored);
    assert_rows_equal(live, nl, stored, ns);
    sqlite3_close(h);
    tu_ranges_free(live, nl);
    tu_ranges_free(stored, ns);
    tu_child_stop(&c);
    free(db);
}

static void test_sigusr1_marks_and_target_exit_stops(void **state)
{
    (void)state;
    struct tu_child c;
    char *db = tu_tmppath("v.db", NULL);
    char pid[16];
    tu_child_start(&c);
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    const char *args[] = {"-d", db, "record", "-p", pid, "-i", "1h", NULL};
    pid_t rec = spawn_vmsnap(args);
    wait_for(db, "SELECT count(*) FROM snapshots", 1);
    tu_child_ok(&c, "mapat 0x330000000 4096 rw-");
    kill(rec, SIGUSR1);
    wait_for(db, "SELECT count(*) FROM snapshots WHERE label = 'mark-1'", 1);
    sqlite3 *h = tu_db_open(db);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM regions r JOIN snapshots s ON s.id = "
                               "r.snapshot_id WHERE s.label = 'mark-1' AND r.start = 0x330000000"),
                     1);
    sqlite3_close(h);
    /* The target exits: the recorder notices within its wait and stops cleanly. */
    tu_child_stop(&c);
    assert_int_equal(wait_status(rec), 0);
    free(db);
}

static void test_duration_and_sigterm_stop_cleanly(void **state)
{
    (void)state;
    struct tu_child c;
    char *db = tu_tmppath("v.db", NULL);
    char pid[16];
    tu_child_start(&c);
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    struct tu_run r;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tu_vmsnap(&r, "-d", db, "record", "-p", pid, "-i", "50ms", "-t", "400ms", NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "duration reached"));
    tu_run_release(&r);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs >= 0.4 && secs < 5);
    sqlite3 *h = tu_db_open(db);
    int64_t n = tu_q64(h, "SELECT count(*) FROM snapshots");
    assert_true(n >= 3 && n <= 9);
    sqlite3_close(h);

    const char *args[] = {"-d", db, "record", "-p", pid, "-i", "20ms", NULL};
    pid_t rec = spawn_vmsnap(args);
    wait_for(db, "SELECT count(*) FROM snapshots", n + 3);
    kill(rec, SIGTERM);
    assert_int_equal(wait_status(rec), 0);
    h = tu_db_open(db);
    assert_int_equal(tu_q64(h, "SELECT count(*) FROM snapshots s WHERE region_count != (SELECT "
                               "count(*) FROM regions r WHERE r.snapshot_id = s.id)"),
                     0);
    sqlite3_close(h);
    tu_child_stop(&c);
    free(db);
}

static void test_help_and_version(void **state)
{
    (void)state;
    const char *cmds[] = {"snap", "record", "list", "show", "diff", "query"};
    struct tu_run r;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        tu_vmsnap(&r, cmds[i], "--help", NULL);
        assert_int_equal(r.status, 0);
        char want[64];
        snprintf(want, sizeof(want), "usage: vmsnap %s", cmds[i]);
        assert_non_null(strstr(r.out, want));
        tu_run_release(&r);
    }
    tu_vmsnap(&r, "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "record"));
    tu_run_release(&r);
    tu_vmsnap(&r, "--version", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "vmsnap "));
    tu_run_release(&r);
    /* smaps' cost to the target is said where the option is. */
    tu_vmsnap(&r, "record", "--help", NULL);
    assert_non_null(strstr(r.out, "mmap lock"));
    tu_run_release(&r);
}

static void test_errors_are_one_line_and_exit_2(void **state)
{
    (void)state;
    char *db = tu_tmppath("v.db", NULL);
    struct tu_run r;

    tu_vmsnap(&r, "-d", db, "snap", "-p", "2147483000", NULL);
    tu_assert_trouble(&r, "no such process '2147483000'");
    assert_int_equal(access(db, F_OK), -1); /* no empty database left behind */
    tu_run_release(&r);

    tu_vmsnap(&r, "-d", db, "snap", "-p", "abc", NULL);
    tu_assert_trouble(&r, "invalid pid 'abc'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "snap", "-p", "2", NULL);
    tu_assert_trouble(&r, "kernel thread");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "record", "-p", "1", "-i", "5x", NULL);
    tu_assert_trouble(&r, "invalid interval '5x'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "record", "-p", "1", "-t", "-3", NULL);
    tu_assert_trouble(&r, "invalid duration");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "snap", NULL);
    tu_assert_trouble(&r, "-p PID");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "list", NULL);
    tu_assert_trouble(&r, "no database at");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "frobnicate", NULL);
    tu_assert_trouble(&r, "unknown command 'frobnicate'");
    tu_run_release(&r);

    /* A zombie has no address space. */
    pid_t z = fork();
    if (z == 0)
        _exit(0);
    char zs[16];
    snprintf(zs, sizeof(zs), "%d", (int)z);
    usleep(100000);
    tu_vmsnap(&r, "-d", db, "snap", "-p", zs, NULL);
    tu_assert_trouble(&r, "zombie");
    tu_run_release(&r);
    waitpid(z, NULL, 0);

    /* A real recording, then bad selectors and bad SQL against it. */
    char self[16];
    snprintf(self, sizeof(self), "%d", (int)getpid());
    tu_vmsnap(&r, "-d", db, "snap", "-p", self, "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "show", "last~x", NULL);
    tu_assert_trouble(&r, "malformed snapshot selector 'last~x'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "show", "last~5", NULL);
    tu_assert_trouble(&r, "no snapshot 'last~5'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "show", "nosuchlabel", NULL);
    tu_assert_trouble(&r, "no snapshot matches 'nosuchlabel'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "show", "1", "--category", "heapish", NULL);
    tu_assert_trouble(&r, "invalid category 'heapish'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "query", "DROP TABLE spans", NULL);
    tu_assert_trouble(&r, "read-only");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "query", "SELECT nope FROM snapshots", NULL);
    tu_assert_trouble(&r, "no such column: nope");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "snap", "-p", self, "--label", "last", NULL);
    tu_assert_trouble(&r, "label 'last'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "list", "--target", "9", NULL);
    tu_assert_trouble(&r, "no target with id 9");
    assert_string_equal(r.out, "");
    tu_run_release(&r);
    free(db);
}

/* show: pmap -X's columns when the snapshot has per-region figures, each region's as its JSON
 * says; and a program's name with a newline in it is one header line still. */
static void test_show_pmap_columns_and_one_line_headers(void **state)
{
    (void)state;
    char *db = tu_tmppath("show.db", NULL);
    struct tu_run r;
    char self[16];
    snprintf(self, sizeof(self), "%d", (int)getpid());
    tu_vmsnap(&r, "-d", db, "snap", "-p", self, "--detail", "smaps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "show", "last", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "    RSS     PSS   DIRTY    SWAP PATH [OWNER]\n"));
    assert_non_null(
        strstr(r.out, "CATEGORY REGIONS    MAPPED       RSS       PSS     DIRTY      SWAP\n"));
    /* The most resident region's row has its figures, as the regions view has them (not the
     * [heap]: under AddressSanitizer there is none). */
    struct tu_run q;
    tu_vmsnap(&q, "-d", db, "query",
              "SELECT printf('%016x', start) || ' ' || rss || ' ' || pss || ' ' || private_dirty "
              "FROM regions WHERE snapshot_id = 1 ORDER BY rss DESC, start LIMIT 1",
              NULL);
    assert_int_equal(q.status, 0);
    const char *row = strchr(q.out, '\n');
    assert_non_null(row);
    unsigned long long start;
    long long rss, pss, dirty;
    assert_int_equal(sscanf(row + 1, " %llx %lld %lld %lld", &start, &rss, &pss, &dirty), 4);
    char addr[32], want[128];
    snprintf(addr, sizeof(addr), "\n%016llx ", start);
    const char *line = strstr(r.out, addr);
    assert_non_null(line);
    char h[3][16];
    snprintf(want, sizeof(want), " %7s %7s %7s ", cli_human((uint64_t)rss, h[0]),
             cli_human((uint64_t)pss, h[1]), cli_human((uint64_t)dirty, h[2]));
    const char *end = strchr(line + 1, '\n');
    char *copy = strndup(line, (size_t)(end - line));
    if (!strstr(copy, want))
        fail_msg("the region's row '%s' has not '%s'", copy, want);
    free(copy);
    tu_run_release(&q);
    tu_run_release(&r);

    /* Anyone's text in the header: a target named with a newline. */
    char *maps = tu_tmppath("self.maps", NULL);
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/%d/maps", (int)getpid());
    tu_copy_file(proc, maps);
    tu_vmsnap(&r, "-d", db, "import", maps, "--target-name", "two\nlines", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "show", "2", NULL);
    assert_int_equal(r.status, 0);
    const char *nl = strchr(r.out, '\n');
    assert_non_null(nl);
    char *first = strndup(r.out, (size_t)(nl - r.out));
    if (!strstr(first, "two\\nlines  taken "))
        fail_msg("show's header is not one line: '%s'", first);
    free(first);
    tu_run_release(&r);
    free(maps);
    free(db);
}

/* The man page says what --help says: every command has its section, and every option a
 * command's --help names is in the page (roff writes "--" as "\-\-"). */
/* --NAME as roff writes it: every '-' as "\-". */
static void roff_option(char *out, const char *name, size_t n)
{
    char *p = out + sprintf(out, "\\-\\-");
    for (size_t i = 0; i < n && i < 30; i++) {
        if (name[i] == '-')
            *p++ = '\\';
        *p++ = name[i];
    }
    *p = '\0';
}

static void test_man_page_names_every_command_and_option(void **state)
{
    (void)state;
    size_t len;
    char *man = tu_read_file(MAN_PAGE, &len);
    assert_non_null(man);
    struct tu_run r;
    tu_vmsnap(&r, "--help", NULL);
    assert_int_equal(r.status, 0);
    const char *list = strstr(r.out, "commands:\n");
    assert_non_null(list);
    int commands = 0;
    for (const char *line = strchr(list, '\n') + 1; *line == ' '; line = strchr(line, '\n') + 1) {
        char cmd[32], section[48];
        assert_int_equal(sscanf(line, " %31s", cmd), 1);
        snprintf(section, sizeof(section), "\n.SS %s\n", cmd);
        if (!strstr(man, section))
            fail_msg("the man page has no section for '%s'", cmd);
        commands++;
        struct tu_run h;
        tu_vmsnap(&h, cmd, "--help", NULL);
        assert_int_equal(h.status, 0);
        for (const char *o = strstr(h.out, "--"); o; o = strstr(o + 2, "--")) {
            size_t n = strspn(o + 2, "abcdefghijklmnopqrstuvwxyz-");
            if (n == 0 || o[2 + n] == '-' || n > 30)
                continue;
            char roff[96];
            roff_option(roff, o + 2, n);
            if (!strstr(man, roff))
                fail_msg("the man page does not name %s's --%.*s", cmd, (int)n, o + 2);
        }
        tu_run_release(&h);
    }
    assert_true(commands >= 11);
    for (const char *o = strstr(r.out, "--"); o; o = strstr(o + 2, "--")) {
        size_t n = strspn(o + 2, "abcdefghijklmnopqrstuvwxyz-");
        char roff[96];
        roff_option(roff, o + 2, n);
        if (n && n <= 30 && !strstr(man, roff))
            fail_msg("the man page does not name --%.*s", (int)n, o + 2);
    }
    assert_non_null(strstr(man, "\n.SH EXIT STATUS\n"));
    assert_non_null(strstr(man, "\n.SH ENVIRONMENT\n"));
    tu_run_release(&r);
    free(man);
}

static void test_foreign_and_newer_files_are_refused_untouched(void **state)
{
    (void)state;
    char *db = tu_tmppath("v.db", NULL);
    FILE *f = fopen(db, "w");
    fputs("not a database\n", f);
    fclose(f);
    struct tu_run r;
    char self[16];
    snprintf(self, sizeof(self), "%d", (int)getpid());
    tu_vmsnap(&r, "-d", db, "snap", "-p", self, NULL);
    tu_assert_trouble(&r, "is not a vmsnap database");
    tu_run_release(&r);
    char *text = tu_read_file(db, NULL);
    assert_string_equal(text, "not a database\n");
    free(text);

    unlink(db);
    tu_vmsnap(&r, "-d", db, "snap", "-p", self, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(h, "PRAGMA journal_mode = DELETE; PRAGMA user_version = 42", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(h);
    size_t before_len, after_len;
    char *before = tu_read_file(db, &before_len);
    tu_vmsnap(&r, "-d", db, "snap", "-p", self, NULL);
    tu_assert_trouble(&r, "newer vmsnap");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "list", NULL);
    tu_assert_trouble(&r, "newer vmsnap");
    tu_run_release(&r);
    char *after = tu_read_file(db, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
    free(db);
}

static void test_unprivileged_user(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char *db = tu_tmppath("v.db", NULL);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", db);
    *strrchr(dir, '/') = '\0';
    /* Others may create files here, not rename root's (sticky, like /tmp). */
    assert_int_equal(chmod(dir, 01777), 0);
    struct tu_run r;
    /* Someone else's process: root or CAP_SYS_PTRACE is needed. */
    char *as_nobody[] = {"/usr/bin/setpriv",
                         "--reuid=65534",
                         "--regid=65534",
                         "--clear-groups",
                         (char *)VMSNAP_BIN,
                         "-d",
                         db,
                         "snap",
                         "-p",
                         "1",
                         NULL};
    tu_run(&r, as_nobody);
    tu_assert_trouble(&r, "root or CAP_SYS_PTRACE is needed");
    tu_run_release(&r);

    /* A database the user may read but not write. */
    char self[16];
    snprintf(self, sizeof(self), "%d", (int)getpid());
    tu_vmsnap(&r, "-d", db, "snap", "-p", self, "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    assert_int_equal(chmod(db, 0644), 0);
    pid_t sleeper = fork();
    if (sleeper == 0) {
        if (setgid(65534) || setuid(65534))
            _exit(1);
        execl("/bin/sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    usleep(100000);
    char sp[16];
    snprintf(sp, sizeof(sp), "%d", (int)sleeper);
    char *ro[] = {"/usr/bin/setpriv",
                  "--reuid=65534",
                  "--regid=65534",
                  "--clear-groups",
                  (char *)VMSNAP_BIN,
                  "-d",
                  db,
                  "snap",
                  "-p",
                  sp,
                  NULL};
    tu_run(&r, ro);
    tu_assert_trouble(&r, "belongs to another user");
    tu_run_release(&r);
    char *list[] = {"/usr/bin/setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    (char *)VMSNAP_BIN,
                    "-d",
                    db,
                    "list",
                    NULL};
    tu_run(&r, list);
    assert_int_equal(r.status, 0); /* reading still works */
    tu_run_release(&r);
    kill(sleeper, SIGKILL);
    waitpid(sleeper, NULL, 0);
    free(db);
}

/* The same mistake reads the same in every command: one parser, one wording. */
static void test_one_wording_for_every_command(void **state)
{
    (void)state;
    static const char *const commands[] = {"snap", "record", "list",  "show",   "diff", "growth",
                                           "mark", "report", "query", "import", "merge"};
    static const char *const with_target[] = {"list", "show", "diff", "growth", "report"};
    char want[512];
    struct tu_run r;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const char *c = commands[i];
        tu_vmsnap(&r, c, "--bogus", NULL);
        snprintf(want, sizeof(want),
                 "vmsnap: %s: unknown option '--bogus' -- see 'vmsnap %s --help'\n", c, c);
        assert_int_equal(r.status, 2);
        assert_string_equal(r.err, want);
        tu_run_release(&r);
        tu_vmsnap(&r, c, "--db", NULL);
        snprintf(want, sizeof(want),
                 "vmsnap: %s: option '--db' needs a value -- see 'vmsnap %s --help'\n", c, c);
        assert_int_equal(r.status, 2);
        assert_string_equal(r.err, want);
        tu_run_release(&r);
        tu_vmsnap(&r, c, "--json=yes", NULL);
        snprintf(want, sizeof(want),
                 "vmsnap: %s: option '--json' takes no value -- see 'vmsnap %s --help'\n", c, c);
        assert_string_equal(r.err, want);
        tu_run_release(&r);
        /* --help is made from the table that parses: every option it names is one. */
        tu_vmsnap(&r, c, "--help", NULL);
        assert_int_equal(r.status, 0);
        snprintf(want, sizeof(want), "usage: vmsnap %s", c);
        assert_memory_equal(r.out, want, strlen(want));
        assert_non_null(strstr(r.out, "  -d, --db FILE "));
        for (const char *o = strstr(r.out, "--"); o; o = strstr(o + 2, "--")) {
            char name[40];
            size_t len = strspn(o + 2, "abcdefghijklmnopqrstuvwxyz-");
            if (len == 0 || len >= sizeof(name) - 8 || o[2 + len] == '-')
                continue;
            snprintf(name, sizeof(name), "--%.*s", (int)len, o + 2);
            struct tu_run h;
            tu_vmsnap(&h, c, name, "--help", NULL);
            if (strstr(h.err, "unknown option"))
                fail_msg("vmsnap %s --help names %s, which it does not take", c, name);
            tu_run_release(&h);
        }
        tu_run_release(&r);
    }
    for (size_t i = 0; i < sizeof(with_target) / sizeof(with_target[0]); i++) {
        const char *c = with_target[i];
        tu_vmsnap(&r, c, "--target", "x", NULL);
        snprintf(want, sizeof(want),
                 "vmsnap: %s: invalid target id 'x': expected a target id (a positive whole "
                 "number; see 'vmsnap list')\n",
                 c);
        assert_int_equal(r.status, 2);
        assert_string_equal(r.err, want);
        tu_run_release(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snap_stores_exactly_what_maps_shows),
        cmocka_unit_test(test_show_list_query_output),
        cmocka_unit_test(test_record_command_until_exit),
        cmocka_unit_test(test_sigint_mid_record_keeps_every_snapshot),
        cmocka_unit_test(test_sigusr1_marks_and_target_exit_stops),
        cmocka_unit_test(test_duration_and_sigterm_stop_cleanly),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_errors_are_one_line_and_exit_2),
        cmocka_unit_test(test_one_wording_for_every_command),
        cmocka_unit_test(test_show_pmap_columns_and_one_line_headers),
        cmocka_unit_test(test_man_page_names_every_command_and_option),
        cmocka_unit_test(test_foreign_and_newer_files_are_refused_untouched),
        cmocka_unit_test(test_unprivileged_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
