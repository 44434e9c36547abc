/*
 * The recorder on real process trees (tests/helpers/forker.c): children forked by the command
 * are followed, each a target naming its parent, with their leaks; recording ends when the last
 * is gone and vmsnap exits with the command's status; a daemon's grandchild is found after its
 * parents exit; -p PID --follow finds a child forked later; --no-follow keeps to the command;
 * snap --follow takes a tree; and the command's first snapshot shows its libraries mapped.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define MiB (1024LL * 1024)

static int64_t q(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q(const char *db, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(h));
    if (sqlite3_step(s) != SQLITE_ROW)
        fail_msg("step %s: %s", sql, sqlite3_errmsg(h));
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}

/* The committed bytes of a target at its first and last snapshot (category_totals). */
static int64_t committed_growth(const char *db, int64_t target)
{
    return q(db,
             "SELECT (SELECT sum(committed) FROM category_totals WHERE snapshot_id = (SELECT "
             "max(id) FROM snapshots WHERE target_id = %lld)) - (SELECT sum(committed) FROM "
             "category_totals WHERE snapshot_id = (SELECT min(id) FROM snapshots WHERE target_id "
             "= %lld))",
             (long long)target, (long long)target);
}

/* How long a target was recorded: its first to its last snapshot, in ms. */
static int64_t recorded_ms(const char *db, int64_t target)
{
    return q(db,
             "SELECT CAST((julianday(max(taken_at)) - julianday(min(taken_at))) * 86400000 AS "
             "INTEGER) FROM snapshots WHERE target_id = %lld",
             (long long)target);
}

static void test_command_tree(void **state)
{
    (void)state;
    char *db = tu_tmppath("tree.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-i", "50ms", "--detail", "maps", "--", FORKER_BIN, "tree",
              NULL);
    /* The command's status is vmsnap's; recording ran until the last child exited. */
    if (r.status != 3)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_non_null(strstr(r.err, "and 2 processes it forked"));
    assert_non_null(strstr(r.err, "(target exited)"));
    tu_run_release(&r);
    assert_int_equal(q(db, "SELECT count(*) FROM targets"), 3);
    int64_t parent = q(db, "SELECT id FROM targets WHERE parent_target_id IS NULL");
    assert_int_equal(
        q(db, "SELECT count(*) FROM targets WHERE parent_target_id = %lld", (long long)parent), 2);
    /* Each child: its own leak, seen whole (first snapshot before 200 ms, last after the last
     * step), and it was recorded until it exited: the second for ~0.5 s longer. */
    int64_t c1 =
        q(db, "SELECT min(id) FROM targets WHERE parent_target_id = %lld", (long long)parent);
    int64_t c2 =
        q(db, "SELECT max(id) FROM targets WHERE parent_target_id = %lld", (long long)parent);
    int64_t g1 = committed_growth(db, c1), g2 = committed_growth(db, c2);
    int64_t small = g1 < g2 ? g1 : g2, big = g1 < g2 ? g2 : g1;
    if (small != 8 * MiB || big != 16 * MiB)
        fail_msg("children grew by %lld and %lld bytes; expected 8 and 16 MiB", (long long)small,
                 (long long)big);
    int64_t span1 = recorded_ms(db, g1 < g2 ? c1 : c2), span2 = recorded_ms(db, g1 < g2 ? c2 : c1);
    assert_true(span1 >= 600 && span1 <= 1100);
    assert_true(span2 >= span1 + 300);
    /* The parent holds still: it leaked nothing. */
    assert_int_equal(committed_growth(db, parent), 0);

    /* list shows the tree; JSON names the parent. */
    tu_vmsnap(&r, "-d", db, "list", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "process tree"));
    assert_non_null(strstr(r.out, "forked by target"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "-j", "list", NULL);
    assert_int_equal(r.status, 0);
    char want[64];
    snprintf(want, sizeof(want), "\"parent_target_id\":%lld", (long long)parent);
    assert_non_null(strstr(r.out, want));
    tu_run_release(&r);

    /* A label in every process (as a mark makes): alone it is refused, naming the processes;
     * --target picks one; a selector that counts within a target counts within the other
     * side's; and the default target is the tree's root. */
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "UPDATE snapshots SET label = 'm' WHERE id IN (SELECT min(id) "
                                  "FROM snapshots GROUP BY target_id)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    tu_vmsnap(&r, "-d", db, "diff", "m", "last", NULL);
    tu_assert_trouble(&r, "label 'm' names snapshots of 3 processes: targets ");
    assert_non_null(strstr(r.err, "--target"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "growth", "--from", "m", NULL);
    tu_assert_trouble(&r, "names snapshots of 3 processes");
    tu_run_release(&r);
    /* A range is one process's: ends in two are refused. */
    char f1[24], f2[24];
    snprintf(
        f1, sizeof(f1), "%lld",
        (long long)q(db, "SELECT min(id) FROM snapshots WHERE target_id = %lld", (long long)c1));
    snprintf(
        f2, sizeof(f2), "%lld",
        (long long)q(db, "SELECT max(id) FROM snapshots WHERE target_id = %lld", (long long)c2));
    tu_vmsnap(&r, "-d", db, "growth", "--from", f1, "--to", f2, NULL);
    tu_assert_trouble(&r, "are of two processes");
    tu_run_release(&r);
    char c1s[24], first1[24];
    snprintf(c1s, sizeof(c1s), "%lld", (long long)c1);
    snprintf(
        first1, sizeof(first1), "%lld",
        (long long)q(db, "SELECT min(id) FROM snapshots WHERE target_id = %lld", (long long)c1));
    int64_t last1 = q(db, "SELECT max(id) FROM snapshots WHERE target_id = %lld", (long long)c1);
    char want_to[64];
    snprintf(want_to, sizeof(want_to), "\"to\":{\"snapshot\":%lld,", (long long)last1);
    const char *pairs[][5] = {{"diff", "m", "last", "--target", c1s}, {"diff", first1, "last"}};
    for (int i = 0; i < 2; i++) {
        tu_vmsnap(&r, "-d", db, "-j", pairs[i][0], pairs[i][1], pairs[i][2], pairs[i][3],
                  pairs[i][4], NULL);
        if (r.status != 1 || !strstr(r.out, want_to))
            fail_msg("diff %s %s: status %d, not to snapshot %lld: %.300s %s", pairs[i][1],
                     pairs[i][2], r.status, (long long)last1, r.out, r.err);
        tu_run_release(&r);
    }
    char want_root[64];
    snprintf(want_root, sizeof(want_root), "\"target\":{\"id\":%lld,", (long long)parent);
    tu_vmsnap(&r, "-d", db, "-j", "show", "last", NULL);
    assert_int_equal(r.status, 0);
    if (!strstr(r.out, want_root))
        fail_msg("'show last' is not of the root (target %lld): %.200s", (long long)parent, r.out);
    tu_run_release(&r);

    /* --no-follow: the command alone. */
    char *db2 = tu_tmppath("alone.db", NULL);
    tu_vmsnap(&r, "-d", db2, "record", "-i", "50ms", "--no-follow", "--", FORKER_BIN, "tree", NULL);
    assert_int_equal(r.status, 3);
    tu_run_release(&r);
    assert_int_equal(q(db2, "SELECT count(*) FROM targets"), 1);
    free(db2);
    free(db);
}

/* A daemon: the command and its child are gone at once; the grandchild, handed to vmsnap,
 * is found and recorded until it exits. */
static void test_daemon(void **state)
{
    (void)state;
    char *db = tu_tmppath("daemon.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-i", "50ms", "--detail", "maps", "--", FORKER_BIN, "daemon",
              NULL);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    tu_run_release(&r);
    int64_t grandchild = q(db, "SELECT id FROM targets t WHERE (SELECT count(*) FROM snapshots "
                               "s WHERE s.target_id = t.id) > 5 AND parent_target_id IS NOT NULL");
    assert_true(grandchild > 0);
    assert_int_equal(committed_growth(db, grandchild), 8 * MiB);
    assert_true(recorded_ms(db, grandchild) >= 700);
    free(db);
}

/* -p PID --follow finds a child forked after recording began; -p A,B records both. */
static void test_follow_pids(void **state)
{
    (void)state;
    char *db = tu_tmppath("pids.db", NULL);
    char *argv[] = {FORKER_BIN, "later", NULL};
    struct tu_proc f;
    tu_spawn(&f, argv);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)f.pid);
    usleep(100 * 1000);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-p", pid, "--follow", "-i", "50ms", "--detail", "maps",
              NULL);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    tu_run_release(&r);
    struct tu_run fr;
    tu_wait(&f, &fr);
    tu_run_release(&fr);
    assert_int_equal(q(db, "SELECT count(*) FROM targets"), 2);
    int64_t kid = q(db, "SELECT id FROM targets WHERE parent_target_id IS NOT NULL");
    assert_int_equal(committed_growth(db, kid), 0); /* it mapped at once, before a snapshot */
    assert_true(q(db, "SELECT count(*) FROM snapshots WHERE target_id = %lld", (long long)kid) >=
                5);

    /* Children there before recording began are followed from the start. */
    char *db3 = tu_tmppath("before.db", NULL);
    char *targv[] = {FORKER_BIN, "tree", NULL};
    tu_spawn(&f, targv);
    snprintf(pid, sizeof(pid), "%d", (int)f.pid);
    usleep(100 * 1000);
    tu_vmsnap(&r, "-d", db3, "record", "-p", pid, "--follow", "-i", "50ms", "--detail", "maps",
              NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    tu_wait(&f, &fr);
    tu_run_release(&fr);
    assert_int_equal(q(db3, "SELECT count(*) FROM targets WHERE parent_target_id IS NOT NULL"), 2);
    free(db3);

    /* Two pids at once: two targets, neither a parent. */
    struct tu_child a, b;
    tu_child_start(&a);
    tu_child_start(&b);
    char both[40];
    snprintf(both, sizeof(both), "%d,%d", (int)a.pid, (int)b.pid);
    char *db2 = tu_tmppath("two.db", NULL);
    tu_vmsnap(&r, "-d", db2, "record", "-p", both, "-n", "3", "-i", "20ms", NULL);
    assert_int_equal(r.status, 0);
    /* The summary counts them as given, not as forked. */
    char said[80];
    snprintf(said, sizeof(said), "recorded 6 snapshots of pids %d and %d into", (int)a.pid,
             (int)b.pid);
    if (!strstr(r.err, said))
        fail_msg("the summary does not say '%s': %s", said, r.err);
    tu_run_release(&r);
    assert_int_equal(q(db2, "SELECT count(*) FROM targets WHERE parent_target_id IS NULL"), 2);
    assert_int_equal(q(db2, "SELECT count(*) FROM snapshots"), 6);
    /* A bad list is refused before anything is written. */
    tu_vmsnap(&r, "-d", db2, "record", "-p", "12,", NULL);
    tu_assert_trouble(&r, "invalid pid '12,'");
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db2, "record", "--no-follow", "-p", both, NULL);
    tu_assert_trouble(&r, "--no-follow goes with -- COMMAND");
    tu_run_release(&r);
    tu_child_stop(&a);
    tu_child_stop(&b);
    free(db2);
    free(db);
}

/* snap --follow: the process and its children, each a snapshot of a target naming its parent. */
static void test_snap_follow(void **state)
{
    (void)state;
    char *db = tu_tmppath("snap.db", NULL);
    char *argv[] = {FORKER_BIN, "tree", NULL};
    struct tu_proc f;
    tu_spawn(&f, argv);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)f.pid);
    usleep(400 * 1000);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, "--follow", "--detail", "maps", NULL);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_int_equal(tu_count_lines(r.out), 3);
    tu_run_release(&r);
    assert_int_equal(q(db,
                       "SELECT count(*) FROM targets WHERE parent_target_id = (SELECT id "
                       "FROM targets WHERE pid = %s)",
                       pid),
                     2);
    tu_vmsnap(&r, "-d", db, "-j", "snap", "-p", pid, "--follow", "--detail", "maps", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "{\"snapshots\":[{\"snapshot\":"));
    tu_run_release(&r);
    struct tu_run fr;
    tu_wait(&f, &fr);
    assert_int_equal(fr.status, 3);
    tu_run_release(&fr);
    free(db);
}

/*
 * The command's first snapshot shows the program loaded: its libraries mapped and their
 * constructors run. slowload's library takes 300 ms in its constructor, then maps 64 KiB at
 * 0x250000000: a first snapshot taken while the loader works would not have it.
 */
static void test_first_snapshot_loaded(void **state)
{
    (void)state;
    char *db = tu_tmppath("loaded.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-i", "1h", "--no-follow", "--", SLOWLOAD_BIN, NULL);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    tu_run_release(&r);
    assert_int_equal(q(db, "SELECT count(*) FROM snapshots"), 1);
    assert_int_equal(q(db, "SELECT count(*) FROM regions WHERE snapshot_id = 1 AND start = "
                           "0x250000000 AND size = 65536"),
                     1);
    assert_true(q(db, "SELECT count(*) FROM regions WHERE snapshot_id = 1 AND path LIKE "
                      "'%%/libc.so%%'") >= 1);
    free(db);
}

/*
 * Subshells that fork a process and exit at once, 200 times over, while recording back to back:
 * a subshell followed but gone before its first snapshot has no target of its own, and what it
 * forked names the nearest recorded ancestor. Every target but the command's has a parent (the
 * previous vmsnap left 4 to 8 of them without).
 */
static void test_every_process_names_its_parent(void **state)
{
    (void)state;
    char *db = tu_tmppath("parents.db", NULL);
    struct tu_run r;
    tu_vmsnap(&r, "-d", db, "record", "-i", "0", "--detail", "maps", "--", "/bin/bash", "-c",
              "for i in $(seq 200); do ( sleep 1.5 & ); sleep 0.01; done; sleep 2", NULL);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    tu_run_release(&r);
    int64_t targets = q(db, "SELECT count(*) FROM targets");
    /* The command's own targets (bash, and the `sleep 2` it execs last) have none. */
    int64_t orphans = q(db, "SELECT count(*) FROM targets WHERE parent_target_id IS NULL AND pid "
                            "!= (SELECT pid FROM targets WHERE id = 1)");
    print_message("%lld targets, %lld forked ones without a parent\n", (long long)targets,
                  (long long)orphans);
    assert_true(targets > 100);
    assert_int_equal(orphans, 0);
    free(db);
}

/*
 * A tree of 300 processes under a limit of 256 open files: with a soft limit only, vmsnap raises
 * it and follows them all; with a hard one, it follows what it can, says once that it cannot
 * follow more, and records the rest to the end.
 */
static void test_many_children_few_files(void **state)
{
    (void)state;
    for (int hard = 0; hard < 2; hard++) {
        char *db = tu_tmppath("many.db", NULL);
        char script[512];
        snprintf(script, sizeof(script),
                 "ulimit %s 256 && exec %s -d %s record -i 300ms -- /bin/sh -c 'for i in $(seq "
                 "300); do sleep 2 & done; wait'",
                 hard ? "-n" : "-Sn", VMSNAP_BIN, db);
        char *argv[] = {"/bin/bash", "-c", script, NULL};
        struct tu_run r;
        tu_run(&r, argv);
        if (r.status != 0)
            fail_msg("%s limit: exit %d: %s", hard ? "hard" : "soft", r.status, r.err);
        int64_t targets = q(db, "SELECT count(*) FROM targets");
        if (hard) {
            assert_non_null(strstr(r.err, "may open no more files"));
            assert_true(targets > 100 && targets < 301);
        } else {
            assert_null(strstr(r.err, "may open no more files"));
            assert_int_equal(targets, 301);
        }
        tu_run_release(&r);
        free(db);
    }
}

/* A process that retitles itself while recorded (as nginx's workers and postgres's backends
 * do): the target says what ps says now, in the table and in list and growth. */
static void test_retitled_process(void **state)
{
    (void)state;
    struct tu_child c;
    tu_child_start(&c);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)c.pid);
    char *db = tu_tmppath("title.db", NULL);
    struct tu_proc rec;
    tu_spawn_vmsnap(&rec, "-d", db, "record", "-p", pid, "-i", "20ms", "-n", "25", "--detail",
                    "maps", NULL);
    usleep(150 * 1000);
    tu_child_ok(&c, "title worker-1"); /* argv holds "vm_child": 8 bytes */
    struct tu_run r;
    tu_wait(&rec, &r);
    if (r.status != 0)
        fail_msg("record: %d %s", r.status, r.err);
    tu_run_release(&r);
    sqlite3 *h = tu_db_open(db);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT cmdline FROM targets", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    const char *title = (const char *)sqlite3_column_text(s, 0);
    if (!title || strcmp(title, "worker-1") != 0)
        fail_msg("targets.cmdline is '%s'", title ? title : "(null)");
    sqlite3_finalize(s);
    sqlite3_close(h);
    tu_vmsnap(&r, "-d", db, "list", NULL);
    assert_non_null(strstr(r.out, "worker-1"));
    tu_run_release(&r);
    tu_vmsnap(&r, "-d", db, "growth", NULL);
    assert_non_null(strstr(r.out, "worker-1"));
    tu_run_release(&r);
    /* A later snap of the same process keeps the title too. */
    tu_child_ok(&c, "title idle");
    tu_vmsnap(&r, "-d", db, "snap", "-p", pid, NULL);
    assert_int_equal(r.status, 0);
    tu_run_release(&r);
    assert_int_equal(q(db, "SELECT count(*) FROM targets WHERE cmdline = 'idle'"), 1);
    tu_child_stop(&c);
    free(db);
}

/* On a terminal, a tree's progress line shows the tree: processes alive, their committed and
 * pss totals, and the process that grew most (the leaking worker, +24 MiB). */
static void test_tree_progress(void **state)
{
    (void)state;
    if (access("/usr/bin/script", X_OK) != 0)
        skip(); /* util-linux's script gives vmsnap a terminal */
    char *db = tu_tmppath("progress.db", NULL);
    char cmd[9000];
    snprintf(cmd, sizeof(cmd), "'%s' -d '%s' record -i 50ms --detail rollup -- '%s' workers",
             VMSNAP_BIN, db, FORKER_BIN);
    char *argv[] = {"/usr/bin/script", "-qec", cmd, "/dev/null", NULL};
    struct tu_run r;
    tu_run(&r, argv);
    assert_int_equal(r.status, 0);
    const char *line = strstr(r.out, "tree: 4 alive, committed ");
    if (!line)
        fail_msg("no tree progress: %.400s", r.out);
    assert_non_null(strstr(r.out, ", pss "));
    if (!strstr(r.out, ", top pid ") || !strstr(r.out, " +24M"))
        fail_msg("the leaker is never the top grower: %.600s", strstr(r.out, ", top pid "));
    tu_run_release(&r);
    free(db);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_tree),
        cmocka_unit_test(test_retitled_process),
        cmocka_unit_test(test_tree_progress),
        cmocka_unit_test(test_daemon),
        cmocka_unit_test(test_follow_pids),
        cmocka_unit_test(test_snap_follow),
        cmocka_unit_test(test_first_snapshot_loaded),
        cmocka_unit_test(test_many_children_few_files),
        cmocka_unit_test(test_every_process_names_its_parent),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
